"""Foundations: which symbols of an expression are its inputs, and which are sizes.

Every stage asks this (the compiler for a function's arguments, the engine for ``wrt`` names, the
checks for what to sample), so it lives on the bottom floor and imports nothing of symgrad."""

from __future__ import annotations

import sympy as sp

__all__ = ["free_inputs", "is_dimension", "dimensions"]


def free_inputs(obj: sp.Basic) -> set:
    """The inputs of ``obj``: its free symbols, an IndexedBase's name standing for its entries
    (x for x[k]), bound summation indices left out."""
    out = set()
    for s in obj.free_symbols:
        if isinstance(s, sp.Indexed):
            continue
        out.add(s)
    for idx in obj.atoms(sp.Indexed):
        out.discard(idx.base.label)
        out.add(idx.base)
        out.discard(idx.base)
        out.add(idx.base.label)
    for s in obj.atoms(sp.Sum):
        for lim in s.limits:
            out.discard(lim[0])
    return out


def dimensions(expr: sp.Basic) -> set:
    """The symbolic sizes of the matrices in ``expr`` (n in W: n × n)."""
    return {d for m in expr.atoms(sp.MatrixSymbol) for d in m.shape if isinstance(d, sp.Symbol)}


def is_dimension(sym: sp.Basic, expr: sp.Basic) -> bool:
    """Whether ``sym`` is the size of a matrix of ``expr`` (not an input to sample or pass)."""
    return any(sym in m.shape for m in expr.atoms(sp.MatrixSymbol))
