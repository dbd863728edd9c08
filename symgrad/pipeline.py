"""The whole path in one place: define → derive → simplify → compile → verify → export."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .catalog.registry import Block
from .checks.crosscheck import CheckResult, cross_check
from .compiler.function import CompiledFunction
from .derivation import Derivation, derive

__all__ = ["Outcome", "run", "run_block"]


@dataclass
class Outcome:
    """Everything symgrad produces for one derivative."""

    derivation: Derivation  # textbook result, plain SymPy result, chain-rule steps
    function: CompiledFunction  # the NumPy function users import
    check: CheckResult  # numeric cross-check against 40-digit finite differences
    latex: str  # the align* derivation


def run(expr: Any, wrt: Any, *, upstream: Any = None, domain: Mapping | None = None,
        sizes: Mapping | None = None, timeout: float = 5.0, points: int = 4) -> Outcome:
    r"""Derive, simplify, compile, cross-check and typeset ∂expr/∂wrt.

    .. math:: \text{expr} \xrightarrow{\text{derive}} \frac{\partial\,\text{expr}}{\partial w}
              \xrightarrow{\text{textbook}} \xrightarrow{\text{compile}} \text{NumPy}
              \xrightarrow{\text{check}} \text{max rel. error} \xrightarrow{\text{export}} \LaTeX
    """
    derivation = derive(expr, wrt, upstream=upstream, timeout=timeout)  # derive + simplify
    function = derivation.compile()  # compile
    check = cross_check(derivation, domain=domain, sizes=sizes, points=points, compiled=function)  # verify
    latex = derivation.latex(raw=_small(derivation))  # export
    return Outcome(derivation, function, check, latex)


def run_block(block: Block, **options) -> Outcome:
    """:func:`run` on a catalog block's worked example."""
    ex = block.build()
    return run(ex.expr, list(ex.wrt), upstream=ex.upstream, domain=ex.domain, sizes=ex.sizes, **options)


def _small(derivation: Derivation, limit: int = 120) -> bool:
    """Whether the plain-SymPy form is short enough to be worth printing."""
    import sympy as sp

    return all(sp.count_ops(r) <= limit for r in derivation.raws)
