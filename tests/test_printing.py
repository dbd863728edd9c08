"""printing: exact LaTeX for the key identities, safe names, derivations."""

import pytest
import sympy as sp

import symgrad as sg
from symgrad.catalog import vector
from symgrad.printing import escape_text, latex, text

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
