"""printing: exact LaTeX for the key identities, safe names, derivations."""

import pytest
import sympy as sp

import symgrad as sg
from symgrad.catalog import vector
from symgrad.printing.plain import escape_text, text
from symgrad.printing.tex import latex

x, y, w, b = sp.symbols("x y w b", real=True)


@pytest.mark.parametrize("expr,tex", [
    (sg.sigmoid(x) * (1 - sg.sigmoid(x)), r"\sigma\left(x\right) \left(1 - \sigma\left(x\right)\right)"),
    (1 - sp.tanh(x) ** 2, r"1 - \tanh^{2}{\left(x \right)}"),
    (x * (sg.sigmoid(w * x + b) - y), r"x \left(\sigma\left(b + w x\right) - y\right)"),
    (sg.relu(x).diff(x), r"\mathbf{1}\left[x > 0\right]"),
    (sg.softplus(x), r"\operatorname{softplus}\left(x\right)"),
    (sp.Symbol("W1_11"), r"W^{[1]}_{11}"),
])
def test_key_latex_strings(expr, tex):
    assert latex(expr) == tex


def test_softmax_derivative_latex():
    zv = vector("z", 2)
    d = sg.derive(sg.softmax(zv)[0], zv[1])
    assert latex(d.named) == r"- a_{1} a_{2}"


@pytest.mark.parametrize("name", [r"\input{/etc/passwd}", r"\write18{rm -rf /}", "$x$", "a^b_c{", "\\def\\x{1}"])
def test_symbol_names_cannot_inject_latex(name):
    tex = latex(sp.Symbol(name) + 1)
    assert "\\input" not in tex and "\\write" not in tex and "\\def" not in tex
    assert "$" not in tex.replace(r"\$", "")


def test_escape_text_neutralises_every_special_character():
    assert escape_text("\\{}$&#^_%~") == r"\textbackslash{}\{\}\$\&\#\textasciicircum{}\_\%\textasciitilde{}"
    assert escape_text("1 <= k | n") == r"1 \textless{}= k \textbar{} n"


def test_text_writes_positive_terms_first():
    assert text(sg.sigmoid(x) - y) == "sigmoid(x) - y"
    assert text((1 - sg.sigmoid(x)) * sg.sigmoid(x)) == "sigmoid(x)*(1 - sigmoid(x))"


def test_derivation_latex_has_the_seeds_chain():
    d = sg.derive(sg.bce(sg.sigmoid(w * x + b), y), w)
    tex = d.latex()
    assert tex.startswith("\\begin{align*}") and tex.endswith("\\end{align*}")
    assert (r"\frac{\partial L}{\partial w} &= \frac{\partial L}{\partial a} \cdot \frac{\partial a}{\partial z} "
            r"\cdot \frac{\partial z}{\partial w} && \text{chain rule}") in tex
    assert r"\frac{\partial L}{\partial a} &= \frac{1 - y}{1 - a} - \frac{y}{a}" in tex
    assert r"\frac{\partial a}{\partial z} &= a \left(1 - a\right)" in tex
    assert r"\frac{\partial z}{\partial w} &= x" in tex
    assert r" &= x \left(a - y\right) && \text{textbook form}" in tex
    assert r"a = \sigma\left(b + w x\right)" in tex
    assert "\\begin{align}" in d.latex(numbered=True)


def test_display_options():
    d = sg.derive(sg.sigmoid(x), x)
    expanded = d.latex(form="expanded", raw=False)
    assert r"\sigma" not in expanded and "e^{- x}" in expanded
    assert r"\frac{d f}{d x}" in d.latex(partial=False)
    assert d.latex(numbered=True).startswith("\\begin{align}")
    W, v = sp.MatrixSymbol("W", 3, 3), sp.MatrixSymbol("v", 3, 1)
    m = sg.derive((W * v).T * (W * v), W)
    assert r"2 \mathrm{W} \mathbf{v} \mathbf{v}^{T}" in m.latex(upright_matrices=True)
    assert r"2 W v v^{T}" in m.latex(bold_vectors=False)
    with pytest.raises(ValueError):
        d.latex(form="fancy")


# --- vectors of symbolic size: 1×1 products as numbers, softmax of a column, bold vectors ---------
from sympy.matrices.expressions.matexpr import MatrixElement  # noqa: E402

from symgrad.catalog.registry import size  # noqa: E402
from symgrad.catalog.vectors import column, scalar  # noqa: E402
from symgrad.printing.tex import derivation_latex, latex_width  # noqa: E402

_n, _C = size("n"), size("C")
_w, _x, _z, _b1 = column("w", _n), column("x", _n), column("z", _C), column("b1", _C)
_W = sp.MatrixSymbol("W", _C, _n)
_p = sp.Symbol("p", positive=True)


@pytest.mark.parametrize("expr,tex,plain", [
    (scalar(_w.T * _x), r"\mathbf{w}^{T} \mathbf{x}", "w.T*x"),
    (sg.sigmoid(sp.Symbol("b") + scalar(_w.T * _x)), r"\sigma\left(\mathbf{w}^{T} \mathbf{x} + b\right)",
     "sigmoid(w.T*x + b)"),
    (scalar(_w.T * _x) ** 2, r"\left(\mathbf{w}^{T} \mathbf{x}\right)^{2}", "(w.T*x)**2"),
    (2 * scalar(_w.T * _x), r"2 \mathbf{w}^{T} \mathbf{x}", "2*(w.T*x)"),
    (sg.softmax(_W * _x + _b1), r"\operatorname{softmax}\left(W \mathbf{x} + \mathbf{b}_{1}\right)", "softmax(W*x + b1)"),
    (sp.DiagMatrix(sg.softmax(_z)), r"\operatorname{diag}\left(\operatorname{softmax}\left(\mathbf{z}\right)\right)",
     "diag(softmax(z))"),
    (sg.log_softmax(_z), r"\log\operatorname{softmax}\left(\mathbf{z}\right)", "log_softmax(z)"),
    (sg.softmax(_z).T, r"\left(\operatorname{softmax}\left(\mathbf{z}\right)\right)^{T}", "softmax(z).T"),
    (sp.Identity(_C) - sp.OneMatrix(_C, 1) * _z.T, r"I - \mathbf{1} \mathbf{z}^{T}", "I - 1*z.T"),
    (sp.HadamardPower(_x, _p - 1), r"\mathbf{x}^{\circ \left({p - 1}\right)}", "x∘^(p - 1)"),
    (MatrixElement(_W, 0, 1), r"{W}_{0,1}", "W[0, 1]"),  # a true entry keeps its indices
])
def test_vector_expressions_print_as_the_notes_write_them(expr, tex, plain):
    assert latex(expr) == tex
    assert text(expr) == plain


def test_1x1_products_stay_products_under_powers():
    y = sg.lp_pool(_x, _p)
    assert latex(y) == r"\left(\mathbf{1}^{T} \mathbf{x}^{\circ {p}}\right)^{\frac{1}{p}}"
    u = sp.MatrixSymbol("u", 1, _n)  # no superscript in the product: parentheses are added
    assert latex(scalar(u * _x) ** 2) == r"\left(u \mathbf{x}\right)^{2}"


def test_latex_width_counts_what_prints():
    assert latex_width(r"\frac{\partial L}{\partial W}") < latex_width(r"\partial L \partial W")
    assert latex_width(r"\left(a\right)") == latex_width("(a)")
    assert latex_width(r"\operatorname{softmax}") == pytest.approx(1.15 * 7)
    assert latex_width("x^{T}") == pytest.approx(1.7)
    grid = r"\left[\begin{matrix}a & b\\c & dddd\end{matrix}\right]"
    assert latex_width(grid) == pytest.approx(2 + 1 + 4 + 2 * 1.5)  # brackets, columns of width 1 and 4, gaps


def _long_sum_derivation():
    xs = sp.symbols("x1:13", real=True)
    expr = sp.Add(*[sg.sigmoid(xs[0] * v) * v ** 2 for v in xs])
    return sg.derive(expr, xs[0])


def test_derivation_latex_breaks_long_lines_for_a_page():
    d = _long_sum_derivation()
    one_line = d.latex(raw=False)
    assert max(latex_width(ln) for ln in one_line.splitlines()) > 120  # the unbroken textbook line
    paged = d.latex(raw=False, width=60)
    rows = paged.splitlines()[1:-1]
    assert all(latex_width(r.split(r"\tag*")[0]) <= 62 for r in rows), "a row is wider than the page"
    assert sum(r.startswith(r"&\quad {} + ") or r.startswith(r"&\quad {} - ") for r in rows) >= 2
    assert r"\tag*{\text{textbook form}}" in paged
    # the broken lines add up to the same expression: same terms, none lost
    assert paged.count(r"\sigma") == one_line.count(r"\sigma")


def test_long_where_clauses_become_a_list():
    xs = sp.symbols("x1:7", real=True)
    expr = sp.Add(*[sg.sigmoid(sg.sigmoid(xs[0] * v) * v) for v in xs])
    d = sg.derive(expr, xs[0])
    paged = derivation_latex(d, raw=False, width=50)
    where = [r for r in paged.splitlines() if r.startswith(r"&\text{where }")]
    listed = [r for r in paged.splitlines() if r.startswith(r"&\phantom{\text{where }}")]
    assert len(where) == 1 and len(listed) >= 3
    assert all(latex_width(r) <= 52 for r in where + listed)
    assert d.latex(raw=False).count(r"\text{where }") == 1 and r"\phantom" not in d.latex(raw=False)


def test_wide_grids_go_entry_by_entry_and_long_products_break_between_factors():
    xs = sp.symbols("x1:4", real=True)
    big = sp.Add(*[sg.sigmoid(xs[0] * v + k) * v ** k for k, v in enumerate(xs * 3)])
    F = sp.Matrix([big * xs[1], big * xs[2]])  # a column of long entries: a Jacobian column
    d = sg.derive(F, xs[0])
    paged = d.latex(raw=False, width=60)
    rows = paged.splitlines()[1:-1]
    assert any(r.startswith(r"\left(\frac{\partial \mathbf{f}}{\partial x_{1}}\right)_{2} &= ") for r in rows)
    assert "begin{matrix}" not in paged and r"\resizebox" not in paged
    assert all(latex_width(r.split(r"\tag*")[0]) <= 62 for r in rows)
    product = sp.Mul(*[(sg.sigmoid(v) + v ** 2 + sp.exp(v)) for v in xs * 2], evaluate=False)
    d = sg.derive(product.subs(xs[1], 2 * xs[0]), xs[2])
    paged = d.latex(raw=False, width=50)
    assert r"\cdot " in paged and all(latex_width(r.split(r"\tag*")[0]) <= 52 for r in paged.splitlines()[1:-1])
    assert paged.count(r"\Bigl(") == paged.count(r"\Bigr)")
