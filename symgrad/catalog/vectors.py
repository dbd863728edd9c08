"""Helpers for vectors and matrices: of symbolic size (``column("x", n)``, a MatrixSymbol: the
vectorized textbook forms), or explicit entries of real symbols (``vector("x", 3)``, the seeds'
grids of entries)."""

from __future__ import annotations

from typing import Iterable

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement

__all__ = ["vector", "matrix", "column", "is_symbolic", "scalar", "as_vector", "to_sympy"]


def column(name: str, n: sp.Expr) -> sp.MatrixSymbol:
    """The column vector x ∈ R^n of symbolic size: ``column("x", size("n"))`` (n × 1)."""
    return sp.MatrixSymbol(name, n, 1)


def is_symbolic(obj: object) -> bool:
    """Whether ``obj`` is a matrix expression (MatrixSymbol products, sums…), not explicit entries."""
    return isinstance(obj, sp.MatrixExpr) and not isinstance(obj, sp.MatrixBase)


def scalar(M: sp.MatrixExpr) -> sp.Expr:
    """The only entry of a 1 × 1 matrix expression (wᵀx as a number), kept unexpanded: it
    prints as wᵀx, not as a sum over indices."""
    if M.shape != (1, 1):
        raise ValueError(f"expected a 1×1 matrix expression, got a {M.shape[0]}×{M.shape[1]} one")
    return MatrixElement(M, 0, 0)


def vector(name: str, n: int, **assumptions) -> sp.Matrix:
    """The column vector (name_1, …, name_n) of real symbols: ``vector("x", 3)``."""
    _check_size(n, "n")
    assumptions.setdefault("real", True)
    return sp.Matrix([sp.Symbol(f"{name}{i}", **assumptions) for i in range(1, n + 1)])


def matrix(name: str, rows: int, cols: int, **assumptions) -> sp.Matrix:
    """The rows × cols matrix of real symbols name_{ij} (1-based, as in the seeds)."""
    _check_size(rows, "rows")
    _check_size(cols, "cols")
    assumptions.setdefault("real", True)
    return sp.Matrix(
        rows, cols, lambda i, j: sp.Symbol(f"{name}{i + 1}{j + 1}" if max(rows, cols) < 10
                                           else f"{name}{i + 1}_{j + 1}", **assumptions)
    )


def as_vector(v: Iterable | sp.MatrixBase, what: str = "argument") -> sp.Matrix:
    """A column Matrix from a list, tuple or Matrix (row, column or 1-D)."""
    if isinstance(v, sp.MatrixBase):
        if v.rows != 1 and v.cols != 1:
            raise ValueError(f"{what} must be a vector, got a {v.rows}×{v.cols} matrix")
        return sp.Matrix(list(v))
    if isinstance(v, (list, tuple)):
        if not v:
            raise ValueError(f"{what} must not be empty")
        return sp.Matrix([to_sympy(e, what) for e in v])
    raise TypeError(f"{what} must be a list or a sympy Matrix, got {type(v).__name__}")


def to_sympy(value: object, what: str = "value") -> sp.Basic:
    """A SymPy object from a SymPy object or a Python number; text is refused (it would
    be evaluated): parse it with :func:`symgrad.parse` first."""
    if isinstance(value, sp.Basic):
        return value
    if isinstance(value, bool):
        raise TypeError(f"{what}: booleans are not numbers here")
    if isinstance(value, int):
        return sp.Integer(value)
    if isinstance(value, float):
        return sp.Float(value)
    if isinstance(value, str):
        raise TypeError(f"{what}: got the text {value!r}; parse text with symgrad.parse(...) first")
    raise TypeError(f"{what}: expected a sympy expression or a number, got {type(value).__name__}")


def _check_size(n: int, what: str) -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"{what} must be a positive integer, got {n!r}")
    if n > 256:
        raise ValueError(f"{what} = {n} is too large for explicit entries (at most 256)")
