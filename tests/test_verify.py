"""verify: the seeds' hand derivations are proven, wrong variants refuted with counterexamples."""

import time

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.catalog import vector
from symgrad.cli import main
from symgrad.errors import ParseError
from symgrad.latex_input import parse_latex

x, w, b, y, t, s = sp.symbols("x w b y t s", real=True)
Xp = sp.IndexedBase("x", positive=True)
n, k = sp.symbols("n k", integer=True, positive=True)
p = sp.Symbol("p", positive=True)

CORRECT = [
    ("σ' textbook", sg.sigmoid(x), x, "sigmoid(x)*(1-sigmoid(x))"),
    ("σ' seeds' LaTeX", sg.sigmoid(x), x, r"\frac{e^{-x}}{(1+e^{-x})^2}"),
    ("σ' LaTeX", sg.sigmoid(x), x, r"\sigma(x)(1-\sigma(x))"),
    ("σ via tanh", sg.sigmoid(x), x, (1 + sp.tanh(x / 2)) / 2 * (1 - (1 + sp.tanh(x / 2)) / 2)),
    ("tanh'", sp.tanh(x), x, "1 - tanh(x)**2"),
    ("BCE∘σ", sg.bce(sg.sigmoid(w * x + b), y), w, r"(\sigma(w x + b) - y) x"),
    ("BCE local", sg.bce(sp.Symbol("a", real=True), y), "a", "-y/a + (1-y)/(1-a)"),
    ("Lp pooling", sg.lp_pool(Xp, p, n), Xp[k], r"x_k^{p-1} \left(\sum_i x_i^p\right)^{\frac{1-p}{p}}"),
    ("hinge at the kink", sg.hinge(s, t), s, "-t*Heaviside(1-t*s)"),
    ("relu", sg.relu(x), x, "Heaviside(x)"),
]


@pytest.mark.parametrize("name,expr,wrt,claim", CORRECT, ids=[c[0] for c in CORRECT])
def test_correct_claims_are_proven(name, expr, wrt, claim):
    v = sg.verify(expr, wrt, claim)
    assert v.status == "proven" and v.ok, str(v)


WRONG = [
    ("σ' squared", sg.sigmoid(x), x, "sigmoid(x)**2"),
    ("σ' sign", sg.sigmoid(x), x, "-sigmoid(x)*(1-sigmoid(x))"),
    ("σ' off by 1e-6", sg.sigmoid(x), x, "sigmoid(x)*(1-sigmoid(x))*(1 + 1e-6)"),
    ("σ' off by 1e-20", sg.sigmoid(x), x, sg.sigmoid(x) * (1 - sg.sigmoid(x)) * (1 + sp.Rational(1, 10**20))),
    ("agrees at integers only", sp.exp(x), x, sp.exp(x) + sp.sin(sp.pi * x) / 10),
    ("BCE∘σ missing x", sg.bce(sg.sigmoid(w * x + b), y), w, "sigmoid(w*x+b) - y"),
    ("BCE∘σ sign", sg.bce(sg.sigmoid(w * x + b), y), w, "(y - sigmoid(w*x+b))*x"),
    ("Lp exponent", sg.lp_pool(Xp, p, n), Xp[k], r"x_k^{p-1} \left(\sum_i x_i^p\right)^{\frac{1}{p}}"),
    ("relu shifted kink", sg.relu(x), x, "Heaviside(x - 1/2)"),
]


@pytest.mark.parametrize("name,expr,wrt,claim", WRONG, ids=[c[0] for c in WRONG])
def test_wrong_claims_are_refuted_with_a_counterexample(name, expr, wrt, claim):
    v = sg.verify(expr, wrt, claim)
    assert v.status == "refuted" and not v.ok, str(v)
    ce = v.counterexample
    assert ce["claim_digits"] != ce["truth_digits"] and ce["point"]


def test_claims_about_vectors_and_matrices():
    z = vector("z", 3)
    a = sg.softmax(z)
    good = sp.Matrix(3, 3, lambda i, j: a[i] * ((1 if i == j else 0) - a[j]))
    assert sg.verify(sg.softmax(z), z, good).status == "proven"
    bad = good.copy()
    bad[0, 1] = -bad[0, 1]
    v = sg.verify(sg.softmax(z), z, bad)
    assert v.status == "refuted" and v.counterexample["entry"] == 1
    W, v_ = sp.MatrixSymbol("W", n, n), sp.MatrixSymbol("v", n, 1)
    assert sg.verify((W * v_).T * (W * v_), W, 2 * W * v_ * v_.T).status == "proven"
    assert sg.verify((W * v_).T * (W * v_), W, W * v_ * v_.T).status == "refuted"
    assert sg.verify((W * v_).T * (W * v_), W, 2 * W * v_ * v_.T + W - W.T + W.T - W).ok


def test_numpy_function_claims():
    assert sg.verify("x**4 + sin(x)", "x", lambda x: 4 * x ** 3 + np.cos(x)).status == "numerically-consistent"
    v = sg.verify("x**4 + sin(x)", "x", lambda x: 4 * x ** 3 + np.cos(x) * (1 + 1e-7))
    assert v.status == "refuted"


def test_positive_assumptions_are_sampled():
    assert sg.verify("sqrt(a)", "a", "1/(2*sqrt(a))", positive=["a"]).ok
    assert sg.verify("log(a)", "a", "1/a", positive=["a"]).status == "proven"


def test_verification_is_bounded_in_time():
    hard = "sigmoid(x)*(1-sigmoid(x)) + (tanh(x)**2 + 1/cosh(x)**2 - 1)*exp(sin(x))"
    t0 = time.perf_counter()
    v = sg.verify(sg.sigmoid(x), x, hard, timeout=1.0)
    assert time.perf_counter() - t0 < 10 and v.ok


def test_latex_reader_understands_ml_notation_and_refuses_the_rest():
    assert parse_latex(r"e^{x}") == sp.exp(sp.Symbol("x", real=True))
    assert parse_latex(r"\max(0, x)", symbols={"x": x}) == sp.Max(0, x)
    assert parse_latex(r"\delta_{ij} - a_j").has(sp.KroneckerDelta)
    assert parse_latex(r"\mathbf{1}[x > 0]", symbols={"x": x}) == sg.step(x)
    for hostile in [r"\input{/etc/passwd}", r"\write18{rm -rf /}", r"\def\x{1}", r"\foo(x)", r"x^{", r"\frac{1}",
                    "x" * 3000, r"\left(" * 60 + "x" + r"\right)" * 60]:
        with pytest.raises(ParseError):
            parse_latex(hostile)


@pytest.mark.parametrize("argv,code", [
    (["verify", "hinge", "--wrt", "s", "--claim", "-t*Heaviside(1-t*s)"], 0),
    (["verify", "sigmoid(x)", "--wrt", "x", "--claim", "sigmoid(x)**2"], 1),
    (["verify", "sigmoid(x)", "--wrt", "x", "--claim", "__import__('os')"], 2),
    (["verify", "sigmoid(x)", "--wrt", "x", "--claim", r"\input{x}"], 2),
    (["verify", "log(a)", "--wrt", "a", "--claim", "1/a", "--positive", "a", "--json"], 0),
])
def test_cli_exit_codes(capsys, argv, code):
    assert main(argv) == code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if code == 1:
        assert "counterexample" in out


def test_cli_undecided_exits_3(capsys, monkeypatch):
    import sys

    V = sys.modules["symgrad.verify"]  # the package's verify is the function

    monkeypatch.setattr(V, "_refute", lambda *a, **k: ("unevaluable", "forced for the test"))
    monkeypatch.setattr(V, "_prove", lambda *a, **k: False)
    assert main(["verify", "sigmoid(x)", "--wrt", "x", "--claim", "sigmoid(x)"]) == 3


def test_verdicts_render_in_notebooks():
    v = sg.verify(sg.sigmoid(x), x, "sigmoid(x)*(1-sigmoid(x))")
    assert v._repr_latex_().startswith("$") and "proven" in v._repr_latex_()
    assert "proven" in v._repr_markdown_()
