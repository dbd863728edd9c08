"""compiler: readable, stable NumPy code; standalone modules without SymPy."""

import subprocess
import sys
import warnings

import mpmath
import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.catalog import vector
from symgrad.compiler.function import compile_expr
from symgrad.compiler.module import module_source
from symgrad.simplify.stable import stabilise

x, y = sp.symbols("x y", real=True)
GRID = np.array([-1000.0, -745.0, -710.0, -40.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 40.0, 710.0, 745.0, 1000.0])


def mp_sigmoid_prime(v):
    with mpmath.workdps(60):  # e^{-|v|}/(1 + e^{-|v|})^2: no cancellation in the reference either
        e = mpmath.exp(-abs(mpmath.mpf(v)))
        return float(e / (1 + e) ** 2)


def test_sigmoid_gradient_is_accurate_and_finite_over_the_float64_range():
    f = sg.derive(sg.sigmoid(x), x).compile()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = f(x=GRID)
    assert np.all(np.isfinite(got))
    ref = np.array([mp_sigmoid_prime(v) for v in GRID])
    nonzero = ref > 0
    np.testing.assert_allclose(got[nonzero], ref[nonzero], rtol=1e-13)
    assert np.all(got[~nonzero] == 0)  # correctly underflows (e.g. at ±1000)


def test_stability_rules_rewrite_what_is_compiled():
    from symgrad.catalog.stable import sech2, sigmoid_grad, sigmoid_minus, sigmoid_shift

    s = sg.sigmoid(x)
    assert stabilise(s * (1 - s)) == sigmoid_grad(x)
    assert stabilise(sp.log(s)) == -sg.softplus(-x)
    assert stabilise(s - y) == sigmoid_minus(x, y)  # no negated copy of y
    assert stabilise(s + y) == sigmoid_shift(x, y)
    assert stabilise(1 - sp.tanh(x) ** 2) == sech2(x)
    elu_grad = sg.elu(x, 2).diff(x)
    assert stabilise(elu_grad) == sp.Piecewise((1, x > 0), (2 * sp.exp(sp.Min(x, 0)), True))
    for fused, plain in ((sigmoid_grad(x), s * (1 - s)), (sigmoid_minus(x, y), s - y), (sigmoid_shift(x, y), s + y), (sech2(x), 1 - sp.tanh(x) ** 2)):
        for v in (-3.1, 0.4, 2.2):
            pt = {x: v, y: 0.3}
            assert float(fused.rewrite("elementary").subs(pt)) == pytest.approx(float(plain.rewrite("elementary").subs(pt)), rel=1e-14)


def _reference(expr, v):
    """expr at v with enough digits to resolve e^{-|v|} next to 1 (60 + |v|/2.3 digits)."""
    from symgrad.simplify.rules import elementary

    dps = 60 + int(abs(v) / 2.3)
    with mpmath.workdps(dps):
        return float(sp.N(elementary(expr).xreplace({x: sp.Float(v, dps)}), dps))


SCALAR_BLOCKS = {
    "sigmoid": sg.sigmoid(x), "tanh": sp.tanh(x), "relu": sg.relu(x), "leaky_relu": sg.leaky_relu(x),
    "elu": sg.elu(x), "softplus": sg.softplus(x), "bce_with_logits y=1": sg.bce_with_logits(x, 1),
    "bce_with_logits y=0": sg.bce_with_logits(x, 0), "hinge t=1": sg.hinge(x, 1),
    "log sigmoid": sp.log(sg.sigmoid(x)), "user log(1+e^x)": sp.log(1 + sp.exp(x)),
    "user 1/(1+e^-x)": 1 / (1 + sp.exp(-x)),
}


@pytest.mark.parametrize("name", list(SCALAR_BLOCKS))
@pytest.mark.parametrize("kind", ["forward", "backward"])
def test_compiled_blocks_are_accurate_over_the_float64_range(name, kind):
    """Within 1e-13 of a high-precision mpmath reference (or correctly underflowing to 0) on a
    grid including ±1e-8, 0, ±40, ±710, ±745, ±1000, with floating-point warnings as errors."""
    expr = SCALAR_BLOCKS[name]
    if kind == "forward":
        target, fn = expr, compile_expr(sg.simplify.fold(expr), [x])
    else:
        d = sg.derive(expr, x)
        target, fn = d.result, d.compile()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is correct
            got = np.broadcast_to(np.asarray(fn(x=GRID), dtype=float), GRID.shape)
    assert np.all(np.isfinite(got))
    for v, g in zip(GRID, got):
        if v == 0 and kind == "backward" and name in ("relu", "leaky_relu", "elu"):
            continue  # the kink: its convention is tested in test_catalog
        if kind == "backward" and name == "hinge t=1" and v == 1:
            continue
        r = _reference(target, v)
        if abs(r) < 5e-324:
            assert g == 0, (v, g, r)
        else:
            assert abs(g - r) <= 1e-13 * abs(r), (v, g, r)


def test_bce_with_logits_gradient_is_stable():
    z = sp.Symbol("z", real=True)
    f = sg.derive(sg.bce(sg.sigmoid(z), y), z).compile()
    got = f(z=GRID, y=1.0)
    assert np.all(np.isfinite(got))
    assert got[0] == pytest.approx(-1.0) and got[-1] == pytest.approx(0.0, abs=1e-300)


def test_softmax_entries_survive_a_logit_spread_of_1000():
    zv = vector("z", 3)
    f = sg.derive(sg.softmax_cross_entropy(zv, vector("y", 3)), zv).compile()
    out = f(z1=1000.0, z2=0.0, z3=-1000.0, y1=0.0, y2=1.0, y3=0.0)
    np.testing.assert_allclose(out.ravel(), [1.0, -1.0, 0.0], atol=1e-300)


def test_generated_source_is_readable():
    d = sg.derive(sg.bce(sg.sigmoid(sp.Symbol("w", real=True) * x), y), sp.Symbol("w", real=True))
    src = d.compile().source
    assert src.startswith("def gradient(w, x, y):")
    assert "sigmoid_minus_np(w*x, y, scale=x, xp=xp)" in src and "lambda" not in src  # x multiplied in, in cache
    assert r"\sigma" in src  # the formula in the docstring


def test_user_names_never_reach_the_generated_code():
    evil = sp.Symbol("__import__('os').system('true')", real=True)
    f = compile_expr(evil * 2 + x, [evil, x])
    assert "__import__" not in f.source and "arg0" in f.source
    assert f(**{evil.name: 1.0, "x": 2.0}) == 4.0


def test_module_source_is_standalone_and_imports_no_sympy(tmp_path):
    zv = vector("z", 3)
    d = sg.derive(sg.softmax_cross_entropy(zv, vector("y", 3)), zv)
    path = tmp_path / "ce_grad.py"
    path.write_text(module_source(d))
    code = ("import sys, importlib.util; spec = importlib.util.spec_from_file_location('m', sys.argv[1]); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            "print(m.gradient(0.0, 1.0, 0.0, 1.0, 2.0, 3.0).ravel().round(6).tolist()); "
            "print('sympy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    first, second = out.stdout.strip().splitlines()
    e = np.exp([1.0, 2.0, 3.0])
    np.testing.assert_allclose(eval(first), (e / e.sum() - [0, 1, 0]).round(6))  # noqa: S307 - our own output
    assert second == "False"


def test_indexed_sums_compile_with_a_default_size():
    xs = sp.IndexedBase("x")
    i = sp.Symbol("i", integer=True, positive=True)
    n = sp.Symbol("n", integer=True, positive=True)
    f = compile_expr(sp.Sum(xs[i] ** 2, (i, 1, n)))
    assert f(x=np.array([1.0, 2.0, 3.0])) == 14.0
    assert f(x=np.array([1.0, 2.0, 3.0]), n=2) == 5.0


def test_export_module_writes_an_importable_checked_module(tmp_path):
    N, D, H, O = sp.symbols("N D H O", integer=True, positive=True)
    X, W1, W2, Y = (sp.MatrixSymbol("x", N, D), sp.MatrixSymbol("W1", D, H), sp.MatrixSymbol("W2", H, O),
                    sp.MatrixSymbol("y", N, O))
    d = sg.derive(sg.squared_l2(sg.sigmoid(X * W1) * W2, Y), [W1, W2])
    path = sg.export_module(d, tmp_path / "net_grad.py", name="net_gradient")
    code = ("import sys, numpy as np, importlib.util; spec = importlib.util.spec_from_file_location('m', sys.argv[1]); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            "r = np.random.default_rng(0); x, y = r.normal(size=(4, 5)), r.normal(size=(4, 3)); "
            "w1, w2 = r.normal(size=(5, 6)), r.normal(size=(6, 3)); g1, g2 = m.net_gradient(w1, w2, x, y); "
            "print(g1.shape, g2.shape, 'sympy' in sys.modules, m.net_gradient.__doc__[:8])\n"
            "try:\n    m.net_gradient(w1, w2, x, np.ones((4, 2)))\nexcept ValueError as e:\n    print('ValueError:', e)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    first, second = out.stdout.strip().splitlines()
    assert first.rstrip() == "(5, 6) (6, 3) False d/dW1 ="
    assert second.startswith("ValueError: y: axis -1 has length 2, expected O")


def test_cli_export(tmp_path, capsys):
    from symgrad.cli import main

    out = tmp_path / "g.py"
    assert main(["export", "softplus", "-o", str(out)]) == 0
    namespace: dict = {}
    exec(compile(out.read_text(), str(out), "exec"), namespace)  # noqa: S102 - our own generated module
    assert namespace["gradient"](0.0) == 0.5
    assert main(["export", "x**2", "-o", str(out), "--name", "class"]) == 2


def _load(path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_exported_modules_take_the_namespace_of_their_inputs(tmp_path):
    """The same exported function on NumPy, array-api-strict and torch arrays: equal results,
    each in its own array type (matrix stacks transpose with .mT)."""
    xp = pytest.importorskip("array_api_strict")
    pytest.importorskip("array_api_compat")
    N, D, H, O = sp.symbols("N D H O", integer=True, positive=True)
    X, W1, W2, Y = (sp.MatrixSymbol("x", N, D), sp.MatrixSymbol("W1", D, H), sp.MatrixSymbol("W2", H, O),
                    sp.MatrixSymbol("y", N, O))
    d = sg.derive(sg.squared_l2(sg.sigmoid(X * W1) * W2, Y), [W1, W2])
    m = _load(sg.export_module(d, tmp_path / "net_xp.py"))
    r = np.random.default_rng(0)
    values = [r.normal(size=s) for s in ((5, 6), (6, 3), (4, 5), (4, 3))]
    expected = m.gradient(*values)
    got = m.gradient(*[xp.asarray(v) for v in values])
    for g, e in zip(got, expected):
        assert type(g).__module__.startswith("array_api_strict")
        np.testing.assert_allclose(np.asarray(g), e, rtol=1e-13)
    # the reference: SymPy's own diff of the explicit entries, through the in-process compiler
    np.testing.assert_allclose(expected[0], d.compile()(W1=values[0], W2=values[1], x=values[2], y=values[3])[0], rtol=1e-13)
    # scalars, a Piecewise of constants (leaky ReLU'), and an explicit Matrix result
    leaky = _load(sg.export_module(sg.derive(sg.leaky_relu(x, 0.1), x), tmp_path / "leaky.py"))
    out = leaky.gradient(xp.asarray([-1.0, 2.0], dtype=xp.float32))
    assert out.dtype == xp.float32 and np.asarray(out).tolist() == pytest.approx([0.1, 1.0])
    zv = vector("z", 3)
    ce = _load(sg.export_module(sg.derive(sg.softmax_cross_entropy(zv, vector("y", 3)), zv), tmp_path / "ce.py"))
    args = [0.0, 1.0, 0.0, 1.0, 2.0, 3.0]
    np.testing.assert_allclose(np.asarray(ce.gradient(*[xp.asarray(a) for a in args])), ce.gradient(*args), rtol=1e-15)
    torch = pytest.importorskip("torch")
    t = m.gradient(*[torch.tensor(v) for v in values])
    assert isinstance(t[0], torch.Tensor)
    np.testing.assert_allclose(t[0].numpy(), expected[0], rtol=1e-13)


@pytest.mark.parametrize("lead", [-1000.0, -40.0, -1e-8, 0.0, 1e-8, 1.0, 40.0, 710.0, 745.0, 1000.0])
def test_softmax_cross_entropy_gradient_keeps_its_digits(lead):
    """a − y for explicit vectors at z = (lead, 0, 0), y = e₁: a₁ − 1 = −(a₂ + a₃) is computed as
    such (as a₁ − 1 it is 0 in float64 from lead ≈ 37 on); within 1e-13 of mpmath."""
    zv = vector("z", 3)
    f = sg.derive(sg.softmax_cross_entropy(zv, vector("y", 3)), zv).compile()
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        got = f(z1=lead, z2=0.0, z3=0.0, y1=1.0, y2=0.0, y3=0.0).ravel()
    with mpmath.workdps(60 + int(abs(lead) / 2.3)):
        v = mpmath.mpf(lead)
        total = mpmath.exp(v) + 2
        ref = [float(-2 / total), float(1 / total), float(1 / total)]
    tiny = np.finfo(float).tiny  # below it (subnormals) a relative bound means nothing: 1e-13 of tiny
    for g, r in zip(got, ref):
        assert abs(g - r) <= 1e-13 * max(abs(r), tiny), (lead, g, r)


def test_compiled_functions_take_the_namespace_of_their_inputs():
    """d.compile() and a graph's compiled backward run on array-api-strict (and torch) arrays and
    return them; NumPy inputs keep the NumPy path and its dtype handling."""
    xp = pytest.importorskip("array_api_strict")
    pytest.importorskip("array_api_compat")
    f = sg.derive(sg.sigmoid(x), x).compile()
    out = f(x=xp.asarray([0.0, 40.0, -1000.0], dtype=xp.float32))
    assert type(out).__module__.startswith("array_api_strict") and out.dtype == xp.float32
    np.testing.assert_allclose(np.asarray(out), f(x=np.array([0.0, 40.0, -1000.0], dtype=np.float32)), rtol=1e-6)
    N, D, H = sp.symbols("N D H", integer=True, positive=True)
    X, W, Y = sp.MatrixSymbol("x", N, D), sp.MatrixSymbol("W", D, H), sp.MatrixSymbol("y", N, H)
    g = sg.derive(sg.squared_l2(sg.tanh(X * W), Y), W).compile()
    r = np.random.default_rng(0)
    values = {"x": r.normal(size=(4, 3)), "W": r.normal(size=(3, 2)), "y": r.normal(size=(4, 2))}
    expected = g(**values)
    got = g(**{k: xp.asarray(v) for k, v in values.items()})
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-13)
    torch = pytest.importorskip("torch")
    t = g(**{k: torch.tensor(v) for k, v in values.items()})
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-13)


def test_the_softmax_rewrites_are_the_same_functions():
    """softmax_entry_shift(i, c, z) = softmax(z)_i + c (and its derivative), and the matrix forms
    the compiler rewrites to equal the textbook expressions entry by entry."""
    from symgrad.catalog.activations import SoftmaxEntry
    from symgrad.catalog.stable import softmax_entry_shift
    from symgrad.catalog.rows import RowLogSoftmax, RowSoftmax, log_softmax_vjp_np, softmax_minus_targets_np, softmax_vjp_np

    z = sp.symbols("z1:4", real=True)
    fused, plain = softmax_entry_shift(2, -y, *z), SoftmaxEntry(2, *z) - y
    assert stabilise(plain) == fused
    pt = {z[0]: 0.3, z[1]: -1.2, z[2]: 2.0, y: 0.7}
    for a, b in ((fused, plain), (fused.diff(z[0]), plain.diff(z[0])), (fused.diff(z[1]), plain.diff(z[1]))):
        assert float(a.rewrite("elementary").subs(pt)) == pytest.approx(float(b.rewrite("elementary").subs(pt)), rel=1e-13)
    r = np.random.default_rng(0)
    Z, G, Y = r.normal(size=(4, 5)), r.normal(size=(4, 5)), np.eye(5)[[0, 3, 2, 4]]
    A = np.exp(Z) / np.exp(Z).sum(-1, keepdims=True)
    np.testing.assert_allclose(softmax_minus_targets_np(Z, Y), A - Y, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(softmax_vjp_np(Z, G), A * (G - (G * A).sum(-1, keepdims=True)), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(log_softmax_vjp_np(Z, G), G - A * G.sum(-1, keepdims=True), rtol=1e-12, atol=1e-15)
    N, C = sp.symbols("N C", integer=True, positive=True)
    Zs, Gs = sp.MatrixSymbol("Z", N, C), sp.MatrixSymbol("G", N, C)
    assert type(stabilise(RowSoftmax(Zs).adjoint(Gs))).__name__ == "SoftmaxVJP"
    assert type(stabilise(RowLogSoftmax(Zs).adjoint(Gs))).__name__ == "LogSoftmaxVJP"


def test_exported_vector_blocks_take_arrays(tmp_path, capsys):
    """`symgrad export` of a block given entry by entry takes one array per vector (a, y: (..., 3)),
    returns the gradient shaped like its vector, and refuses a wrong length naming the argument;
    a column vector (p × 1) may come as a 1-D array. References: torch.autograd, hand NumPy."""
    from symgrad.cli import main

    assert main(["export", "cross_entropy", "-o", str(tmp_path / "ce.py")]) == 0
    assert capsys.readouterr().out.strip().endswith("gradient(a, y)")
    ce = _load(tmp_path / "ce.py")
    r = np.random.default_rng(3)
    a = r.uniform(0.1, 0.9, (4, 3))
    t = r.dirichlet(np.ones(3), 4)
    np.testing.assert_allclose(ce.gradient(a, t), -t / a, rtol=1e-15)  # ∂(−Σ y log a)/∂a = −y/a
    with pytest.raises(ValueError, match=r"a: shape \(4, 4\), expected \(\.\.\., 3\)"):
        ce.gradient(np.ones((4, 4)), t)
    torch = pytest.importorskip("torch")
    assert main(["export", "logistic_regression", "-o", str(tmp_path / "lr.py"), "--name", "lr_grad"]) == 0
    assert capsys.readouterr().out.strip().endswith("lr_grad(b, w, x, y)")
    lr = _load(tmp_path / "lr.py")
    w, xv, b = r.normal(size=3), r.normal(size=3), 0.4
    g_w, g_b = lr.lr_grad(b, w, xv, 1.0)
    tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(b, dtype=torch.float64, requires_grad=True)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(tw @ torch.tensor(xv) + tb, torch.tensor(1.0, dtype=torch.float64))
    ew, eb = torch.autograd.grad(loss, [tw, tb])
    assert np.shape(g_w) == (3,)
    np.testing.assert_allclose(g_w, ew.numpy(), rtol=1e-13)
    np.testing.assert_allclose(g_b, eb.numpy(), rtol=1e-13)


def test_compiled_functions_name_the_argument_and_the_shape_it_needs():
    N, D, H = sp.symbols("N D H", integer=True, positive=True)
    X, W = sp.MatrixSymbol("x", N, D), sp.MatrixSymbol("W", D, H)
    f = sg.derive(sp.Trace((X * W).T * (X * W)), W).compile()
    r = np.random.default_rng(4)
    xv, wv = r.normal(size=(4, 3)), r.normal(size=(3, 2))
    np.testing.assert_allclose(f(x=xv, W=wv), 2 * xv.T @ xv @ wv, rtol=1e-13)
    with pytest.raises(ValueError, match=r"x: axis -1 has length 3, expected D = 2"):
        f(x=xv, W=np.ones((2, 2)))


@pytest.mark.parametrize("lead", [-800.0, -1.0, 0.0, 3.0, 800.0, 1000.0])
def test_a_naive_log_sum_exp_compiles_to_the_shifted_one(lead):
    """log(e^{z1} + e^{z2} + e^{z3}) and its gradient e^{z_i}/Σ e^{z_j}, as a user writes them, stay
    finite and accurate at logits near 800 (within 1e-14 of 40-digit mpmath, no warning)."""
    zs = sp.symbols("z1 z2 z3", real=True)
    L = sp.log(sum(sp.exp(v) for v in zs))
    value = compile_expr(L, list(zs))
    grad = sg.derive(L, list(zs)).compile()
    point = {"z1": lead, "z2": 0.0, "z3": 1.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            got_value, got_grad = float(value(**point)), [float(g) for g in grad(**point)]
    with mpmath.workdps(40):
        e = [mpmath.exp(mpmath.mpf(v)) for v in point.values()]
        ref_value, ref_grad = float(mpmath.log(sum(e))), [float(v / sum(e)) for v in e]
    assert got_value == pytest.approx(ref_value, rel=1e-14, abs=1e-300)
    for g, r in zip(got_grad, ref_grad):
        assert g == pytest.approx(r, rel=1e-14, abs=1e-300)
