"""The LaTeX reader: the notation users type, read into the same SymPy objects as the expression;
the rest (and anything ambiguous) refused with a reason."""

import time

import pytest
import sympy as sp

import symgrad as sg
from symgrad.catalog import Block, Example, register
from symgrad.catalog.registry import _REGISTRY
from symgrad.errors import ParseError
from symgrad.parsing.latex import parse_latex

x = sp.Symbol("x", real=True)
n = sp.Symbol("n", integer=True, positive=True)
W, v = sp.MatrixSymbol("W", n, n), sp.MatrixSymbol("x", n, 1)
S = {"x": x}
M = {"W": W, "x": v}


@pytest.mark.parametrize("tex,expected", [
    (r"1-\tanh^2(x)", 1 - sp.tanh(x) ** 2),
    (r"\operatorname{sech}^2(x)", sp.sech(x) ** 2),
    (r"\sech^{2}(x)", sp.sech(x) ** 2),
    (r"\sech x", sp.sech(x)),
    (r"\operatorname{erf}(x)", sp.erf(x)),
    (r"\erf(x)", sp.erf(x)),
    (r"\operatorname{sign}(x)", sp.sign(x)),
    (r"\sgn(x)", sp.sign(x)),
    (r"\sigma^2(x)", sg.sigmoid(x) ** 2),
    (r"\operatorname{ReLU}(x)", sg.relu(x)),
    (r"\operatorname{LeakyReLU}_{0.2}(x)", sg.leaky_relu(x, sp.Float(0.2))),
    (r"\operatorname{softplus}(x)", sg.softplus(x)),
    (r"\lambda x", sp.Symbol("lambda", real=True) * x),
    (r"\alpha_1 + \beta", sp.Symbol("alpha1", real=True) + sp.Symbol("beta", real=True)),
    (r"|x - 1|", sp.Abs(x - 1)),
    (r"\left| x \right|", sp.Abs(x)),
    (r"\mathbf{1}[x > 0]", sg.step(x)),
])
def test_scalar_notation(tex, expected):
    assert parse_latex(tex, symbols=dict(S)) == expected


@pytest.mark.parametrize("tex,expected", [
    (r"W^\top x", W.T * v),
    (r"W^T x", W.T * v),
    (r"W^{\top} x", W.T * v),
    (r"W^{\mathsf{T}} x", W.T * v),
    (r"W^\intercal x", W.T * v),
    (r"\mathbf{x}^\top W", v.T * W),
    (r"2 W x x^\top", 2 * W * v * v.T),
    (r"\|Wx\|^2", sp.Trace((W * v).T * (W * v))),
    (r"\lVert W x \rVert_2^2", sp.Trace((W * v).T * (W * v))),
    (r"x \odot x", sp.hadamard_product(v, v)),
    (r"x \circ (W x)", sp.hadamard_product(v, W * v)),
    (r"\operatorname{diag}(x)", sp.DiagMatrix(v)),
    (r"\mathbf{1}^\top x", sp.OneMatrix(1, n) * v),
    (r"W \mathbf{1}", W * sp.OneMatrix(n, 1)),
])
def test_matrix_notation(tex, expected):
    assert parse_latex(tex, symbols=dict(M)) == expected


def test_the_function_table_comes_from_the_registry():
    class wobble(sp.Function):  # a block declared now, after the reader was imported
        @classmethod
        def eval(cls, u):
            return None

    register(Block(name="wobble_test_block", family="activation", formula="wobble(x)",
                   latex=r"\operatorname{Wobble}(x) = x", derivative="1", function=wobble,
                   example=lambda: Example(wobble(x), (x,), {"x": x})))
    try:
        assert parse_latex(r"\operatorname{Wobble}(x)", symbols=dict(S)) == wobble(x)
        assert parse_latex(r"\operatorname{wobble_test_block}(x)", symbols=dict(S)) == wobble(x)
        assert sg.parse("wobble_test_block(x)", symbols=dict(S)) == wobble(x)
    finally:
        del _REGISTRY["wobble_test_block"]
    with pytest.raises(ParseError):
        parse_latex(r"\operatorname{Wobble}(x)")


@pytest.mark.parametrize("tex,reason", [
    (r"x^T", "ambiguous"),
    (r"\tanh^{-1}(x)", "ambiguous"),
    (r"\mathbf{1}", "size"),
    (r"\mathbf{1} + 2", "size"),
    (r"\mathbf{__import__}", "refused"),
    (r"\mathrm{__class__}", "refused"),
    (r"x_{__a}", "subscript"),
    (r"\frac{1}{0}", "zero"),
    (r"\sqrt[0]{x}", "index 0"),
    (r"{{10^{999}}^{999}}^{999}", "bits"),
    (r"2^{10^{6}}", "exponent"),
    (r"\operatorname{frobnicate}(x)", "unknown"),
    (r"\input{x}", "command"),
])
def test_refused_with_the_reason(tex, reason):
    with pytest.raises(ParseError, match=reason):
        parse_latex(tex, symbols=dict(S))


def test_huge_powers_are_refused_fast():
    t0 = time.perf_counter()
    with pytest.raises(ParseError):
        parse_latex(r"{{10^{999}}^{999}}^{999}")
    assert time.perf_counter() - t0 < 1.0


def test_adding_a_scalar_to_a_matrix_is_refused():
    with pytest.raises(ParseError, match="shape"):
        parse_latex(r"W + 1", symbols=dict(M))
