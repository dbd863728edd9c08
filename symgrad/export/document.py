"""Documents: the seeds' worked examples, LaTeX → PDF (run safely), and Markdown.

``compile_pdf`` runs ``pdflatex`` with no shell escape, with file access restricted to the output
folder (``openin_any=p``, ``openout_any=p``), in that folder, under a time limit; without pdflatex it
raises :class:`~symgrad.errors.SymgradLimit` saying how to install it (the .tex is still written).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import sympy as sp

from ..errors import SymgradLimit
from .. import catalog as C
from ..derivation import derive
from ..derivation import Graph

__all__ = ["worked_examples", "compile_pdf", "latex_to_markdown"]


def worked_examples(width: float | None = None) -> list[tuple[str, str]]:
    """(title, LaTeX) for the lecture notes' worked examples, derived and evaluated by symgrad;
    ``width``: lay the derivations out for a page of that many characters (see ``derivation_latex``)."""

    out: list[tuple[str, str]] = []
    x, y, z = sp.symbols("x y z", real=True)
    bp = Graph({"q": x + y, "f": "q*z"}).backprop({"x": -2, "y": 5, "z": -4})
    out.append(("The circuit f(x, y, z) = (x + y) z at (-2, 5, -4)", bp.latex()))
    w0, w1, w2, x0, x1 = sp.symbols("w0 w1 w2 x0 x1", real=True)
    neuron = Graph([("a", w0 * x0), ("b", w1 * x1), ("c", "a + b"), ("d", "c + w2"), ("f", "sigmoid(d)")])
    bp = neuron.backprop({"w0": 2, "x0": -1, "w1": -3, "x1": -2, "w2": -3})
    out.append(("The sigmoid neuron at w = (2, -3, -3), x = (-1, -2)", bp.latex()))
    wl, xl, bl, yl = sp.symbols("w x b y", real=True)
    out.append(("Logistic regression: the chain rule for the cross-entropy of sigma(w x + b)",
                derive(C.bce(C.sigmoid(wl * xl + bl), yl), wl).latex(width=width)))
    n = sp.Symbol("n", integer=True, positive=True)  # x ∈ R^n, W ∈ R^{n×n}, as the notes
    W, v = sp.MatrixSymbol("W", n, n), sp.MatrixSymbol("x", n, 1)
    d = derive((W * v).T * (W * v), [W, v])
    gw, gx = d.compile()(W=np.array([[0.1, 0.5], [-0.3, 0.8]]), x=np.array([[0.2], [0.4]]))
    numbers = (rf"\[ \nabla_W f = {sp.latex(sp.Matrix(np.round(gw, 3)))},\quad "
               rf"\nabla_{{\mathbf{{x}}}} f = {sp.latex(sp.Matrix(np.round(gx, 3)))} \]")
    out.append(("The vectorized example: the squared norm of W x at W = ((0.1, 0.5), (-0.3, 0.8)), x = (0.2, 0.4)",
                d.latex(width=width) + "\n" + numbers))
    xs = sp.IndexedBase("x", positive=True)
    n, k = sp.symbols("n k", integer=True, positive=True)
    p, beta = sp.symbols("p beta", positive=True)
    up = sp.Symbol("y'", real=True)
    out.append(("Lp pooling", derive(C.lp_pool(xs, p, n), xs[k], upstream=up).latex(width=width)))
    out.append(("Log-average pooling", derive(C.log_avg_pool(sp.IndexedBase("x", real=True), beta, n),
                                              sp.IndexedBase("x", real=True)[k], upstream=up).latex(width=width)))
    N, D, H, O = sp.symbols("N D H O", integer=True, positive=True)
    X, W1, W2, Y = (sp.MatrixSymbol("x", N, D), sp.MatrixSymbol("W1", D, H), sp.MatrixSymbol("W2", H, O),
                    sp.MatrixSymbol("y", N, O))
    out.append(("The two-layer network: the squared error of sigma(x W1) W2 against y",
                derive(C.squared_l2(C.sigmoid(X * W1) * W2, Y), [W1, W2]).latex(width=width)))
    return out


def compile_pdf(tex: Path, *, timeout: float = 120.0) -> Path:
    """Compile ``tex`` with pdflatex, safely (see the module docstring); the PDF's path."""
    exe = shutil.which("pdflatex")
    if exe is None:
        raise SymgradLimit("pdflatex is not installed; the .tex was written. Install a LaTeX engine, e.g. "
                           "`apt-get install --no-install-recommends texlive-latex-base texlive-latex-recommended`")
    tex = Path(tex).resolve()
    env = {**os.environ, "openin_any": "p", "openout_any": "p", "shell_escape": "f", "TEXMFOUTPUT": str(tex.parent)}
    cmd = [exe, "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", tex.name]
    try:
        run = subprocess.run(cmd, cwd=tex.parent, env=env, capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise SymgradLimit(f"pdflatex did not finish within {timeout:g} s; the .tex is {tex}") from None
    pdf = tex.with_suffix(".pdf")
    if run.returncode != 0 or not pdf.exists():
        errors = [line for line in run.stdout.splitlines() if line.startswith("!")][:3]
        raise SymgradLimit(f"pdflatex failed on {tex.name}: {' '.join(errors) or 'see ' + str(tex.with_suffix('.log'))}")
    return pdf


def latex_to_markdown(title: str, blocks: list[tuple[str, str]]) -> str:
    """A Markdown document with ``$$…$$`` math (for docs, blogs and notebooks)."""
    parts = [f"# {title}", ""]
    for heading, tex in blocks:
        parts += [f"## {heading}", "", "$$", tex.replace("align*", "aligned").replace("{align}", "{aligned}"), "$$", ""]
    return "\n".join(parts)
