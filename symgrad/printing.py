"""Printing: symgrad's LaTeX printer (a SymPy ``LatexPrinter`` subclass) and derivations.

Blocks print through their own ``_latex`` methods (σ, ReLU, softmax…); this printer adds
what SymPy lacks: symbol names are escaped (a name can never inject LaTeX commands),
layer-indexed names print in the seeds' notation (``W1_11`` → ``W^{[1]}_{11}``), and
``derivation_latex`` writes a derivation as an ``align*``, one step per line.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

if TYPE_CHECKING:  # pragma: no cover
    from .derive import Derivation

__all__ = ["SymgradLatexPrinter", "SymgradStrPrinter", "latex", "text", "derivation_latex", "escape_text"]

_PLAIN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)*'*$")
_LAYER_NAME = re.compile(r"^([A-Za-z]+)(\d+)_(\d+)$")
_TEXT_ESCAPES = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "_": r"\_", "^": r"\textasciicircum{}",
    "$": r"\$", "&": r"\&", "#": r"\#", "%": r"\%", "~": r"\textasciitilde{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
}


def escape_text(text: str) -> str:
    """``text`` made safe inside ``\\text{…}``: no character keeps a LaTeX meaning."""
    return "".join(_TEXT_ESCAPES.get(ch, ch) if ch.isprintable() else "?" for ch in text)


def _textbook_add(printer, expr, parent_print_add, order=None):
    """Sums with their positive terms first: σ − y rather than −y + σ."""
    terms = list(printer._as_ordered_terms(expr, order=order))
    positive = [t for t in terms if not t.could_extract_minus_sign()]
    if positive and terms[0].could_extract_minus_sign():
        terms = positive + [t for t in terms if t.could_extract_minus_sign()]
        return parent_print_add(printer, sp.Add(*terms, evaluate=False), order="none")
    return parent_print_add(printer, expr, order=order)


def _textbook_mul(printer, expr, parent_print_mul):
    """Products with their sum factors last: σ(x)(1 − σ(x)) rather than (1 − σ(x))σ(x)."""
    if sp.fraction(expr)[1] != 1:
        return parent_print_mul(printer, expr)
    factors = list(expr.as_ordered_factors())
    is_sum = [isinstance(f, sp.Add) or (isinstance(f, sp.Pow) and isinstance(f.base, sp.Add)) for f in factors]
    reordered = [f for f, b in zip(factors, is_sum) if not b] + [f for f, b in zip(factors, is_sum) if b]
    if reordered == factors:
        return parent_print_mul(printer, expr)
    saved = printer._settings.get("order")
    printer._settings["order"] = "none"
    try:
        return parent_print_mul(printer, sp.Mul(*reordered, evaluate=False))
    finally:
        printer._settings["order"] = saved


def _is_sum(f) -> bool:
    return isinstance(f, (sp.Add, sp.MatAdd)) or (isinstance(f, sp.Pow) and isinstance(f.base, sp.Add))


def _sums_last(args) -> list:
    return [a for a in args if not _is_sum(a)] + [a for a in args if _is_sum(a)]


def _matadd(printer, expr, paren) -> str:
    """Matrix sums with positive terms first: 1 − h rather than −h + 1."""
    terms = list(expr.args)
    terms = [t for t in terms if not t.could_extract_minus_sign()] + [t for t in terms if t.could_extract_minus_sign()]
    out = printer._print(terms[0])
    for t in terms[1:]:
        out += f" - {paren(-t)}" if t.could_extract_minus_sign() else f" + {printer._print(t)}"
    return out


def _applied(expr):
    """σ(XW) for an elementwise block: its function applied, unevaluated, to the matrix."""
    from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction  # noqa: F401

    d = sp.Dummy("d")
    body = expr.function(d)
    if isinstance(body, sp.Function) and d in body.args and not any(a.has(d) for a in body.args if a != d):
        args = [expr.expr if a == d else a for a in body.args]
        return sp.Function.__new__(type(body), *args, evaluate=False)
    return None


class SymgradStrPrinter(StrPrinter):
    """SymPy's text printer with the textbook order of terms and factors."""

    def _print_Add(self, expr, order=None):
        return _textbook_add(self, expr, StrPrinter._print_Add, order)

    def _print_Mul(self, expr):
        return _textbook_mul(self, expr, StrPrinter._print_Mul)

    def _print_MatAdd(self, expr):
        return _matadd(self, expr, lambda t: self.parenthesize(t, 40))

    def _print_DiagMatrix(self, expr):
        v = expr.args[0]
        return f"diag({self._print(v.arg if isinstance(v, sp.Transpose) else v)})"

    def _print_OneMatrix(self, expr):
        if expr.rows == 1 and expr.cols != 1:
            return "1ᵀ"
        return "1"

    def _print_HadamardPower(self, expr):
        base, e = expr.args
        b = self.parenthesize(base, 60)
        return " ∘ ".join([b] * int(e)) if e.is_Integer and 1 < e <= 3 else f"{b}∘^{self._print(e)}"

    def _print_HadamardProduct(self, expr):
        return " ∘ ".join(self.parenthesize(a, 50) for a in _sums_last(expr.args))

    def _print_ElementwiseApplyFunction(self, expr):
        applied = _applied(expr)
        return self._print(applied) if applied is not None else super()._print_ElementwiseApplyFunction(expr)


def text(expr: sp.Basic) -> str:
    """Plain text of ``expr`` (SymPy syntax, sums positive terms first): ``x*(a - y)``."""
    return SymgradStrPrinter().doprint(expr)


class SymgradLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer with safe symbol names and the seeds' notation.

    Settings beyond SymPy's: ``bold_vectors`` (column-vector MatrixSymbols as \\mathbf{x}),
    ``upright_matrices`` (matrices as \\mathrm{W})."""

    _default_settings = {**LatexPrinter._default_settings, "bold_vectors": True, "upright_matrices": False}

    def _print_MatrixSymbol(self, expr, style="plain"):
        name = self._print(sp.Symbol(expr.name))
        rows, cols = expr.shape
        if self._settings["bold_vectors"] and cols == 1 and rows != 1:
            return rf"\mathbf{{{name}}}"
        if self._settings["upright_matrices"] and cols != 1 and rows != 1 and "{" not in name:
            return rf"\mathrm{{{name}}}"
        return name

    def _print_Add(self, expr, order=None):
        return _textbook_add(self, expr, LatexPrinter._print_Add, order)

    def _print_Mul(self, expr):
        return _textbook_mul(self, expr, LatexPrinter._print_Mul)

    def _print_MatAdd(self, expr):
        return _matadd(self, expr, lambda t: rf"\left({self._print(t)}\right)" if isinstance(t, sp.MatAdd) else self._print(t))

    def _print_HadamardProduct(self, expr):
        def paren(a):
            tex = self._print(a)
            return rf"\left({tex}\right)" if isinstance(a, (sp.MatAdd, sp.MatMul, sp.HadamardProduct)) else tex
        return r" \circ ".join(paren(a) for a in _sums_last(expr.args))

    def _print_ElementwiseApplyFunction(self, expr):
        applied = _applied(expr)
        return self._print(applied) if applied is not None else super()._print_ElementwiseApplyFunction(expr)

    def _print_DiagMatrix(self, expr):
        v = expr.args[0]
        v = v.arg if isinstance(v, sp.Transpose) else v
        return rf"\operatorname{{diag}}\left({self._print(v)}\right)"

    def _print_OneMatrix(self, expr):
        if expr.rows == 1 and expr.cols != 1:
            return r"\mathbf{1}^{T}"
        return r"\mathbf{1}" if expr.cols == 1 and expr.rows != 1 else "1"

    def _print_Symbol(self, expr, style="plain"):
        name = expr.name
        layer = _LAYER_NAME.match(name)
        if layer:
            base, lay, idx = layer.groups()
            return f"{self._deal_with_super_sub(base)}^{{[{lay}]}}_{{{idx}}}"
        if _PLAIN_NAME.match(name):
            return super()._print_Symbol(expr, style=style)
        return rf"\text{{{escape_text(name)}}}"

    _print_Dummy = _print_Symbol

    def _print_IndexedBase(self, expr):
        return self._print(expr.label)


def latex(expr: sp.Basic, **settings) -> str:
    r"""The LaTeX of ``expr`` with symgrad's printer: ``latex(sigmoid(x))`` → ``\sigma\left(x\right)``."""
    return SymgradLatexPrinter(settings).doprint(expr)


def _tex(obj: sp.Basic, d: str = r"\partial", **settings) -> str:
    if isinstance(obj, sp.Derivative):  # ∂L/∂w: a fraction of names, not SymPy's d/dx form
        (var, count), = obj.variable_count
        num = latex(obj.expr, **settings) if isinstance(obj.expr, (sp.Symbol, sp.MatrixSymbol)) else ""
        if num:
            return rf"\frac{{{d} {num}}}{{{d} {latex(var, **settings)}}}"
        return rf"\frac{{{d}}}{{{d} {latex(var, **settings)}}} {latex(obj.expr, **settings)}"
    return latex(obj, **settings)


def derivation_latex(derivation: "Derivation", *, numbered: bool = False, raw: bool = True,
                     form: str = "textbook", partial: bool = True, bold_vectors: bool = True,
                     upright_matrices: bool = False) -> str:
    r"""The derivation as an ``align*`` (``align`` when numbered), one step per line:
    local gradients, their product, the plain SymPy form (``raw=True``) and the textbook
    form, for each variable; then the intermediates that appear and the assumptions.

    ``form="expanded"`` writes the blocks out (σ(z) → 1/(1 + e^{−z})); ``partial=False`` uses
    d instead of ∂; ``bold_vectors`` and ``upright_matrices`` style matrix symbols."""
    from .simplify import elementary

    if form not in ("textbook", "expanded"):
        raise ValueError("form must be 'textbook' or 'expanded'")
    env = "align" if numbered else "align*"
    settings = {"bold_vectors": bold_vectors, "upright_matrices": upright_matrices}
    d = r"\partial" if partial else "d"
    show = (lambda e: elementary(e)) if form == "expanded" else (lambda e: e)  # noqa: E731
    lines: list[str] = []
    shown: set = set()
    previous_lhs = None
    for step in derivation.steps:
        if step.kind == "goal" or (step.kind == "raw" and not raw):
            continue
        lhs = _tex(step.lhs, d, **settings)
        rhs = (r" \cdot ".join(_tex(f, d, **settings) for f in step.rhs) if step.kind == "factorisation"
               else _tex(show(step.rhs), d, **settings))
        lines.append(rf"{'' if lhs == previous_lhs else lhs} &= {rhs} && \text{{{escape_text(step.note)}}}")
        previous_lhs = lhs
        shown |= step.rhs.free_symbols | step.lhs.free_symbols
    used = {k: v for k, v in derivation.intermediates.items() if k in shown}
    if used:
        where = ",\\ ".join(f"{latex(k, **settings)} = {latex(show(v), **settings)}" for k, v in used.items())
        lines.append(rf"&\text{{where }} {where}")
    for assumption in derivation.assumptions:
        lines.append(rf"&\text{{using {escape_text(assumption)}}}")
    body = " \\\\\n".join(lines)
    return f"\\begin{{{env}}}\n{body}\n\\end{{{env}}}"


class _Shown(sp.Symbol):
    """A display-only symbol whose name is already safe LaTeX (built by this module)."""

    def _latex(self, printer, **kwargs):
        return self.name


class _ShownMatrix(sp.MatrixSymbol):
    def _latex(self, printer, **kwargs):
        return self.name


def backprop_latex(bp, *, digits: int = 4) -> str:
    """A graph's reverse pass as an ``align*``: the forward values, then each edge's local
    gradient × upstream gradient (= its number, when values were given) with the gate's
    pattern, then the global gradients — the seeds' backward tables."""
    import numpy as np

    def num(v) -> str:
        if v is None:
            return ""
        if isinstance(v, np.ndarray):
            return rf"\text{{({'×'.join(map(str, v.shape))} array)}}" if v.ndim else f"{float(v):.{digits}g}"
        return f"{v:.{digits}g}"

    out = bp.output
    shown = {}
    for node, g in bp.upstream_names.items():
        tex = rf"\frac{{\partial {latex(out)}}}{{\partial {latex(node)}}}"
        shown[g] = _ShownMatrix(tex, *g.shape) if isinstance(g, sp.MatrixSymbol) else _Shown(tex)

    def show(e):
        return e.xreplace(shown)

    lines = [r"&\text{forward}"]
    for name in bp.graph.names:
        value = f" &&= {num(bp.values[name])}" if name in bp.values else ""
        lines.append(rf"{latex(name)} &= {latex(bp.graph.exprs[name])}{value}")
    lines.append(r"&\text{backward: local gradient} \times \text{upstream gradient}")
    for e in bp.edges:
        lhs = rf"\frac{{\partial {latex(out)}}}{{\partial {latex(e.input)}}}"
        local = rf"\frac{{\partial {latex(e.node)}}}{{\partial {latex(e.input)}}}"
        body = rf"{local} \cdot {latex(show(e.upstream))} = {latex(show(e.product))}" if e.local is None else \
            rf"{latex(e.local)} \cdot {latex(show(e.upstream))}"
        value = ""
        if bp.values:
            value = rf" = {num(bp.value(e.product))}"
        lines.append(rf"{lhs} &\mathrel{{+}}= {body}{value} && \text{{{escape_text(e.gate)}}}")
    lines.append(r"&\text{global gradients}")
    for v in bp.graph.inputs:
        if v in bp.gradients:
            value = rf" = {num(bp.gradient_values[v])}" if v in bp.gradient_values else ""
            lines.append(rf"\frac{{\partial {latex(out)}}}{{\partial {latex(v)}}} &= {latex(bp.expanded(v))}{value}")
    return "\\begin{align*}\n" + " \\\\\n".join(lines) + "\n\\end{align*}"
