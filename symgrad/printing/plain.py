"""Plain text of SymPy objects (``x*(a - y)``, sums positive terms first) and the layout helpers
the text and LaTeX printers share.
"""

from __future__ import annotations

import re
import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixElement
from sympy.printing.str import StrPrinter

__all__ = ["PLAIN_NAME", "LAYER_NAME", "escape_text", "add_terms", "textbook_add", "textbook_mul", "is_sum", "sums_last", "matadd", "applied", "one_by_one", "column_view", "row_view", "diag_vector", "BOUND", "renamed_function", "names_in", "SymgradStrPrinter", "text"]


PLAIN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)*'*$")
LAYER_NAME = re.compile(r"^([A-Za-z]+)(\d+)_(\d+)$")
_TEXT_ESCAPES = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "_": r"\_", "^": r"\textasciicircum{}",
    "$": r"\$", "&": r"\&", "#": r"\#", "%": r"\%", "~": r"\textasciitilde{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
}


def escape_text(text: str) -> str:
    """``text`` made safe inside ``\\text{…}``: no character keeps a LaTeX meaning."""
    return "".join(_TEXT_ESCAPES.get(ch, ch) if ch.isprintable() else "?" for ch in text)


def add_terms(printer, expr, order=None) -> list:
    """The terms of a sum in textbook order: positive terms first (σ − y rather than −y + σ),
    products of vectors before the other terms (wᵀx + b rather than b + wᵀx)."""
    if isinstance(expr, sp.MatAdd):
        terms = list(expr.args)
        return [t for t in terms if not t.could_extract_minus_sign()] + [t for t in terms if t.could_extract_minus_sign()]
    terms = list(printer._as_ordered_terms(expr, order=order))
    products = [t for t in terms if t.has(MatrixElement)]
    if products and len(products) < len(terms) and terms[0] not in products:
        terms = products + [t for t in terms if t not in products]
    positive = [t for t in terms if not t.could_extract_minus_sign()]
    if positive and terms[0].could_extract_minus_sign():
        terms = positive + [t for t in terms if t.could_extract_minus_sign()]
    return terms


def textbook_add(printer, expr, parent_print_add, order=None):
    """Sums in textbook order (see :func:`add_terms`)."""
    terms = add_terms(printer, expr, order)
    if terms != list(printer._as_ordered_terms(expr, order=order)):
        return parent_print_add(printer, sp.Add(*terms, evaluate=False), order="none")
    return parent_print_add(printer, expr, order=order)


def textbook_mul(printer, expr, parent_print_mul):
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


def is_sum(f) -> bool:
    return isinstance(f, (sp.Add, sp.MatAdd)) or (isinstance(f, sp.Pow) and isinstance(f.base, sp.Add))


def sums_last(args) -> list:
    return [a for a in args if not is_sum(a)] + [a for a in args if is_sum(a)]


def matadd(printer, expr, paren) -> str:
    """Matrix sums with positive terms first: 1 − h rather than −h + 1."""
    terms = add_terms(printer, expr)
    out = printer._print(terms[0])
    for t in terms[1:]:
        out += f" - {paren(-t)}" if t.could_extract_minus_sign() else f" + {printer._print(t)}"
    return out


def applied(expr):
    """σ(XW) for an elementwise block: its function applied, unevaluated, to the matrix."""
    d = sp.Dummy("d")
    body = expr.function(d)
    if isinstance(body, sp.Function) and d in body.args and not any(a.has(d) for a in body.args if a != d):
        args = [expr.expr if a == d else a for a in body.args]
        return sp.Function.__new__(type(body), *args, evaluate=False)
    coeff, rest = body.as_coeff_Mul()
    if rest == d and coeff.is_number and coeff != 0:  # (u ↦ c u)(X) is the product c X
        return sp.MatMul(coeff, expr.expr)
    if body.is_Pow and body.base == d and body.exp.is_Integer and body.exp > 1:  # (u ↦ u²)(X) is X∘²
        return sp.HadamardPower(expr.expr, body.exp)
    return None


BOUND = ("u", "v", "s", "r", "q", "p")


def renamed_function(printer, expr):
    """``expr`` (f applied entry by entry) with its bound variable renamed to the first of u, v, s …
    that names nothing in what the printer prints (never the user's x, nor symgrad's internal _entry)."""
    taken = set(getattr(printer, "_taken", ())) | {getattr(a, "name", "") for a in expr.atoms(sp.Symbol, sp.MatrixSymbol)}
    name = next((n for n in BOUND if n not in taken), None)
    k = 0
    while name is None or name in taken:
        name, k = f"u{k}", k + 1
    (var,), body = expr.function.variables, expr.function.expr
    u = sp.Symbol(name, **({"real": True} if var.is_real else {}))
    return ElementwiseApplyFunction(sp.Lambda(u, body.xreplace({var: u})), expr.expr), u


def names_in(expr) -> set:
    """The names of the symbols and matrix symbols of ``expr``."""
    return {getattr(a, "name", "") for a in expr.atoms(sp.Symbol, sp.MatrixSymbol)} if isinstance(expr, sp.Basic) else set()


def one_by_one(expr) -> bool:
    """A 1 × 1 matrix expression's only entry (wᵀx as a number): printed as the product itself."""
    return isinstance(expr, sp.MatrixExpr) and expr.shape == (1, 1)


def column_view(expr):
    """softmax(zᵀ)ᵀ for a column z is the vector block softmax(z): the row block (a ``name``d
    matrix block with one argument) rebuilt on the column, for printing only; else None."""
    arg = expr.arg
    if getattr(arg, "name", "") in ("softmax", "log_softmax") and len(arg.args) == 1 \
            and arg.args[0].shape[0] == 1 and arg.args[0].shape[1] != 1:
        return type(arg)(sp.Transpose(arg.args[0]).doit())
    return None


def row_view(expr):
    """softmax(zᵀ) for a column z is the row softmax(z)ᵀ: the transpose of the vector block, for
    printing only (a block prints itself first, so the printers look before dispatching); else None."""
    if getattr(expr, "name", "") in ("softmax", "log_softmax") and isinstance(expr, sp.MatrixExpr) \
            and len(expr.args) == 1 and isinstance(expr.args[0], sp.Transpose) and expr.args[0].arg.shape[1] == 1 \
            and expr.args[0].arg.shape[0] != 1:
        return sp.Transpose(type(expr)(expr.args[0].arg))
    return None


def diag_vector(expr):
    """The vector of diag(v), as a column: diag(a) for a = softmax(z), whichever way SymPy stored it."""
    v = expr.args[0]
    if v.shape[0] == 1 and v.shape[1] != 1:
        column = sp.Transpose(v)
        return column if column_view(column) is not None else column.doit()
    return v


class SymgradStrPrinter(StrPrinter):
    """SymPy's text printer with the textbook order of terms and factors."""

    def doprint(self, expr):
        self._taken = names_in(expr)  # an elementwise function's bound variable is none of these
        return super().doprint(expr)

    def _print(self, expr, **kwargs):
        row = row_view(expr)
        if isinstance(expr, ElementwiseApplyFunction):  # before the class's own _sympystr: (u -> 2*u), not x
            return self._print_ElementwiseApplyFunction(expr)
        return super()._print(row if row is not None else expr, **kwargs)

    def _print_Add(self, expr, order=None):
        return textbook_add(self, expr, StrPrinter._print_Add, order)


    def _print_MatAdd(self, expr):
        return matadd(self, expr, lambda t: self.parenthesize(t, 40))

    def _print_DiagMatrix(self, expr):
        return f"diag({self._print(diag_vector(expr))})"

    def _print_OneMatrix(self, expr):
        if expr.rows == 1 and expr.cols != 1:
            return "1ᵀ"
        return "1"

    def _print_HadamardPower(self, expr):
        base, e = expr.args
        b = self.parenthesize(base, 60)
        power = self._print(e) if e.is_Atom else f"({self._print(e)})"  # x∘^(p - 1), not x∘^p - 1
        return " ∘ ".join([b] * int(e)) if e.is_Integer and 1 < e <= 3 else f"{b}∘^{power}"

    def _print_HadamardProduct(self, expr):
        return " ∘ ".join(self.parenthesize(a, 50) for a in sums_last(expr.args))

    def _print_ElementwiseApplyFunction(self, expr):
        form = applied(expr)
        if form is not None:
            return self._print(form)
        renamed, u = renamed_function(self, expr)
        return f"({self._print(u)} -> {self._print(renamed.function.expr)})({self._print(expr.expr)})"

    def _print_MatrixElement(self, expr):
        if one_by_one(expr.parent):  # wᵀx as a number: w.T*x
            return self._print(expr.parent)
        return super()._print_MatrixElement(expr)

    def _print_Pow(self, expr, rational=False):
        base = expr.base
        if isinstance(base, MatrixElement) and one_by_one(base.parent) and not isinstance(base.parent, sp.MatrixSymbol):
            return f"({self._print(base.parent)})**{self.parenthesize(expr.exp, 60)}"
        return super()._print_Pow(expr, rational=rational)

    def _print_Mul(self, expr):
        products = [f for f in expr.args if isinstance(f, MatrixElement) and one_by_one(f.parent)
                    and not isinstance(f.parent, sp.MatrixSymbol)]
        if products and len(expr.args) > 1:  # 2*(w.T*x), not 2*w.T*x (a scalar times a product)
            shown = {f: sp.Symbol(f"({self._print(f.parent)})") for f in products}
            return textbook_mul(self, expr.xreplace(shown), StrPrinter._print_Mul)
        return textbook_mul(self, expr, StrPrinter._print_Mul)

    def _print_Transpose(self, expr):
        if isinstance(expr.arg, sp.Transpose):  # (aᵀ)ᵀ is a
            return self._print(expr.arg.arg)
        column = column_view(expr)
        return self._print(column) if column is not None else super()._print_Transpose(expr)


def text(expr: sp.Basic) -> str:
    """Plain text of ``expr`` (SymPy syntax, sums positive terms first): ``x*(a - y)``."""
    return SymgradStrPrinter().doprint(expr)


