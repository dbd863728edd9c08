"""Plots: a block and its derivative on one figure, with the kink convention marked.

matplotlib is an optional extra (``pip install "symgrad[plot]"``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sympy as sp

from ..catalog.registry import get_block
from ..errors import SymgradLimit
from ..compiler.function import compile_expr
from ..derivation import derive
from ..printing.tex import latex
from ..printing.plain import text
from ..checks.sampling import breakpoints

__all__ = ["plot_block"]

# values for a block's other inputs when it is drawn as a function of its first one
_DEFAULTS = {"alpha": None, "t": 1.0, "y": 1.0, "beta": 1.0}


def plot_block(name: str, path: str | Path | None = None, *, x_range: tuple[float, float] = (-4.0, 4.0),
               points: int = 801):
    r"""Draw block ``name`` and its derivative on one figure (saved to ``path`` when given).

    .. math:: x \mapsto f(x),\quad x \mapsto f'(x)\ \text{(compiled from symgrad's derivation)}

    Kinks are marked: a filled dot at the value the convention takes, an open circle at the other
    one-sided limit. Returns the matplotlib Figure."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise SymgradLimit('plotting needs matplotlib: pip install "symgrad[plot]"') from None

    block = get_block(name)
    ex = block.build()
    if isinstance(ex.expr, sp.MatrixBase) or len(ex.wrt) != 1 or not isinstance(ex.wrt[0], sp.Symbol):
        raise SymgradLimit(f"plot draws blocks of one scalar input; {name!r} is a vector block (try derive)")
    (x,) = ex.wrt
    fixed = {}
    for s in ex.expr.free_symbols - {x}:
        default = block.params.get(s.name, _DEFAULTS.get(s.name, 1.0))
        value = float(default if default is not None else block.params.get(s.name, 0.1))
        fixed[s] = sp.Integer(int(value)) if value.is_integer() else sp.Float(value)
    expr = ex.expr.xreplace(fixed)
    d = derive(expr, x)
    f = compile_expr(expr, [x])
    g = d.compile()
    xs = np.linspace(*x_range, points)
    at_x = lambda fn, v: fn(**{x.name: v})  # noqa: E731
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(xs, at_x(f, xs), label=_label(expr))
    ax.plot(xs, np.broadcast_to(at_x(g, xs), xs.shape), label="derivative: " + _label(d.result))
    for k in _kinks(expr, x, x_range):
        at = float(at_x(g, k))
        h = 1e-9 * max(1.0, abs(k))
        left, right = float(at_x(g, k - h)), float(at_x(g, k + h))
        other = right if abs(at - left) < abs(at - right) else left
        ax.plot([k], [at], "o", color="black", zorder=5, label=f"kink at {k + 0.0:g}: derivative {at + 0.0:g} (convention)")
        ax.plot([k], [other], "o", mfc="white", color="black", zorder=5)
    ax.axhline(0, color="0.85", lw=0.8)
    ax.set_xlabel(f"${latex(x)}$")
    ax.set_title(name)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def _label(expr: sp.Expr) -> str:
    """Math for matplotlib's mathtext, or text where mathtext cannot typeset it (cases)."""

    tex = latex(expr)
    return text(expr) if "\\begin" in tex else f"${tex}$"


def _kinks(expr: sp.Expr, x: sp.Symbol, x_range) -> list[float]:
    """Where a branch of ``expr`` switches (the sampling policy's breakpoints: ReLU, Max,
    Piecewise conditions, |·| …), inside the plotted range."""

    points = set()
    for u in breakpoints(expr):
        for root in sp.solve(sp.Eq(u, 0), x):
            if root.is_real and x_range[0] < float(root) < x_range[1]:
                points.add(float(root))
    return sorted(points)
