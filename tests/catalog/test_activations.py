"""The activations of issue 12 against PyTorch: symgrad.nn's forward and backward (every
differentiable input) and symgrad.derive(...).compile() against torch.nn.functional and
torch.autograd in float64 at ordinary and ×30 inputs and exactly at the kinks, float32 in →
float32 out; where torch itself loses digits (1 + erf cancelling in GELU's tail, float32 constants
in hardsigmoid' and in CELU' for α not a float32 number), against 40-digit mpmath instead. The derivative identities are checked
against mpmath's numerical differentiation of each block's elementary form."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp

import symgrad as sg
import symgrad.nn as nn
from symgrad.catalog import activations as act

from tests.conftest import mp_derivative, mp_value

torch = pytest.importorskip("torch")
F = torch.nn.functional

x = sp.Symbol("x", real=True)
alpha = sp.Symbol("alpha", real=True)
RTOL, ATOL = 1e-10, 1e-12


# --- the table: one row per elementwise block --------------------------------------------------------
# name: (torch forward f(x) with the params bound, nn keyword params, the SymPy expression with the same
#        params, kink points, torch's backward tolerance where torch rounds (else RTOL))
ELEMENTWISE = {
    "gelu": (F.gelu, {}, act.gelu(x), [0.0], RTOL),
    "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"), {}, act.gelu_tanh(x), [0.0], RTOL),
    "silu": (F.silu, {}, act.silu(x), [0.0], RTOL),
    "mish": (F.mish, {}, act.mish(x), [0.0], RTOL),
    "selu": (F.selu, {}, act.selu(x), [0.0], RTOL),
    "celu": (lambda t: F.celu(t, alpha=0.5), {"alpha": 0.5}, act.celu(x, 0.5), [0.0], RTOL),  # α = 0.5: see TAILS
    "softsign": (F.softsign, {}, act.softsign(x), [0.0], RTOL),
    "hardtanh": (lambda t: F.hardtanh(t, -0.5, 2.0), {"min_val": -0.5, "max_val": 2.0},
                 act.hardtanh(x, -0.5, 2.0), [-0.5, 2.0], RTOL),
    "relu6": (F.relu6, {}, act.relu6(x), [0.0, 6.0], RTOL),
    "hardsigmoid": (F.hardsigmoid, {}, act.hardsigmoid(x), [-3.0, 3.0], 1e-7),  # torch: 1/6 in float32
    "hardswish": (F.hardswish, {}, act.hardswish(x), [-3.0, 3.0], RTOL),
    "logsigmoid": (F.logsigmoid, {}, act.logsigmoid(x), [0.0], RTOL),
}
NEW = sorted(ELEMENTWISE) + ["prelu", "softmin", "glu"]


def _inputs(scale: float, kinks=(), seed: int = 0) -> np.ndarray:
    """Normal draws × scale (5 × 4), the kink points and their neighbours one ulp away appended."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=20) * scale
    extra = [v for k in kinks for v in (k, np.nextafter(k, -np.inf), np.nextafter(k, np.inf))]
    return np.concatenate([base, np.array(extra, dtype=float)])


def _torch_vjp(fn, arrays, grad, wrt):
    tensors = [torch.tensor(a, requires_grad=(i in wrt)) for i, a in enumerate(arrays)]
    out = fn(*tensors)
    grads = torch.autograd.grad(out, [tensors[i] for i in wrt], grad_outputs=torch.tensor(grad))
    return out.detach().numpy(), [g.numpy() for g in grads]


def test_every_new_activation_is_in_the_catalog_and_nn():
    names = {b.name for b in sg.catalog.blocks("activation")}
    assert set(NEW) <= names
    for name in NEW:
        assert callable(getattr(nn, name)) and callable(getattr(nn, f"{name}_backward"))


# --- symgrad.nn against torch ------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1.0, 30.0], ids=["ordinary", "x30"])
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_nn_forward_and_backward_match_torch(name, scale):
    fn, params, _, kinks, back_rtol = ELEMENTWISE[name]
    v = _inputs(scale, kinks, seed=len(name))
    grad = np.random.default_rng(1).normal(size=v.shape)
    ref, (ref_grad,) = _torch_vjp(fn, [v], grad, (0,))
    np.testing.assert_allclose(getattr(nn, name)(v, **params), ref, rtol=RTOL, atol=ATOL, err_msg=name)
    got = getattr(nn, f"{name}_backward")(v, grad, **params)
    np.testing.assert_allclose(got, ref_grad, rtol=back_rtol, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_nn_equals_torch_exactly_at_the_kinks(name):
    """At each kink the derivative is PyTorch's convention (hardtanh' = 0 at ±1, relu6' = 0 at 0 and 6,
    hardswish' = 0 at −3 and 1 at 3, …): exactly torch's number (where torch rounds a constant to
    float32, its number to 1e-7, and the exact convention to 1e-15)."""
    fn, params, expr, kinks, back_rtol = ELEMENTWISE[name]
    v = np.array(kinks, dtype=float)
    ones = np.ones_like(v)
    _, (ref,) = _torch_vjp(fn, [v], ones, (0,))
    got = getattr(nn, f"{name}_backward")(v, ones, **params)
    np.testing.assert_allclose(got, ref, rtol=back_rtol, atol=0, err_msg=name)
    exact = [float(expr.diff(x).subs(x, k)) for k in kinks]  # the block's own convention, in SymPy
    np.testing.assert_allclose(got, exact, rtol=1e-15, atol=0, err_msg=name)
    compiled = sg.derive(expr, x).compile()
    np.testing.assert_array_equal(compiled(x=v), got, err_msg=name)


def test_the_kink_conventions_are_pytorchs():
    ones = np.ones(2)
    np.testing.assert_array_equal(nn.hardtanh_backward(np.array([-1.0, 1.0]), ones), [0.0, 0.0])
    np.testing.assert_array_equal(nn.relu6_backward(np.array([0.0, 6.0]), ones), [0.0, 0.0])
    np.testing.assert_array_equal(nn.hardsigmoid_backward(np.array([-3.0, 3.0]), ones), [0.0, 0.0])
    np.testing.assert_array_equal(nn.hardswish_backward(np.array([-3.0, 3.0]), ones), [0.0, 1.0])
    assert nn.selu_backward(np.array([0.0]), np.ones(1))[0] == pytest.approx(1.0507009873554805 * 1.6732632423543772, rel=1e-15)
    gx, ga = nn.prelu_backward(np.array([0.0]), np.array([0.3]), np.ones(1))
    assert gx[0] == 0.3 and ga[0] == 0.0
    assert sp.Heaviside(0) == sp.S.Half  # SymPy's value, which none of these uses:
    for expr in (act.hardtanh(x), act.relu6(x), act.hardsigmoid(x), act.hardswish(x), act.prelu(x, alpha)):
        assert not expr.diff(x).has(sp.Heaviside)


@pytest.mark.parametrize("scale", [1.0, 30.0], ids=["ordinary", "x30"])
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_compiled_derivative_matches_torch(name, scale):
    """symgrad.derive(block(x), x).compile(), the path users take with their own expressions."""
    fn, params, expr, kinks, back_rtol = ELEMENTWISE[name]
    v = _inputs(scale, kinks, seed=len(name) + 7)
    _, (ref,) = _torch_vjp(fn, [v], np.ones_like(v), (0,))
    got = sg.derive(expr, x).compile()(x=v)
    np.testing.assert_allclose(got, ref, rtol=back_rtol, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("name", NEW)
def test_float32_in_float32_out(name):
    args, params, wrt = _case(name, np.random.default_rng(3))
    out = getattr(nn, name)(*args, **params)
    grad = np.random.default_rng(4).normal(size=np.shape(out))
    back = _as_tuple(getattr(nn, f"{name}_backward")(*args, grad, **params))
    args32 = [a.astype(np.float32) for a in args]
    out32 = getattr(nn, name)(*args32, **params)
    back32 = _as_tuple(getattr(nn, f"{name}_backward")(*args32, grad.astype(np.float32), **params))
    assert np.asarray(out32).dtype == np.float32, name
    np.testing.assert_allclose(out32, out, rtol=1e-5, atol=1e-6)
    for g32, g in zip(back32, back):
        assert np.asarray(g32).dtype == np.float32, name
        np.testing.assert_allclose(g32, g, rtol=1e-5, atol=1e-6)


def _as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


def _case(name, rng):
    """(inputs, params, differentiable inputs) for nn, the vector blocks included."""
    if name in ELEMENTWISE:
        return [rng.normal(size=(5, 4))], ELEMENTWISE[name][1], (0,)
    if name == "prelu":
        return [rng.normal(size=(5, 4)), rng.uniform(-0.5, 0.5, size=4)], {}, (0, 1)
    if name == "glu":
        return [rng.normal(size=(5, 6))], {}, (0,)
    return [rng.normal(size=(5, 4))], {}, (0,)


# --- PReLU: the slope is a second differentiable input ---------------------------------------------------
@pytest.mark.parametrize("scale", [1.0, 30.0], ids=["ordinary", "x30"])
def test_prelu_both_gradients_match_torch(scale):
    """F.prelu with one slope per channel (weight (C,), x (N, C)): symgrad.nn's ∂/∂α is summed over the
    axes α was broadcast along, shaped like α, as torch's; the compiled derivative is per entry."""
    rng = np.random.default_rng(11)
    v = rng.normal(size=(6, 4)) * scale
    v[0] = 0.0  # the kink, in every channel
    a = rng.uniform(-0.5, 0.5, size=4)
    grad = rng.normal(size=v.shape)
    ref, (ref_x, ref_a) = _torch_vjp(F.prelu, [v, a], grad, (0, 1))
    np.testing.assert_allclose(nn.prelu(v, a), ref, rtol=RTOL, atol=ATOL)
    gx, ga = nn.prelu_backward(v, a, grad)
    np.testing.assert_allclose(gx, ref_x, rtol=RTOL, atol=ATOL)
    assert np.shape(gx) == v.shape and np.shape(ga) == a.shape
    np.testing.assert_allclose(ga, ref_a, rtol=RTOL, atol=ATOL * scale)
    fx, fa = sg.derive(act.prelu(x, alpha), [x, alpha]).compile()(x=v, alpha=a)
    np.testing.assert_allclose(grad * fx, ref_x, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose((grad * fa).sum(axis=0), ref_a, rtol=RTOL, atol=ATOL * scale)


def test_prelu_with_one_shared_slope():
    v = np.array([-2.0, 0.0, 3.0, -0.5])
    a = np.array([0.25])
    ref, (ref_x, ref_a) = _torch_vjp(F.prelu, [v, a], np.ones(4), (0, 1))
    gx, ga = nn.prelu_backward(v, a, np.ones(4))
    np.testing.assert_allclose(gx, ref_x, rtol=RTOL)
    assert np.shape(ga) == (1,)
    np.testing.assert_allclose(ga, ref_a, rtol=RTOL)


# --- the vector blocks: softmin and GLU (last axis) -------------------------------------------------------
VECTOR = {
    "softmin": (lambda t: F.softmin(t, dim=-1), 4),
    "glu": (lambda t: F.glu(t, dim=-1), 6),
}


@pytest.mark.parametrize("scale", [1.0, 30.0], ids=["ordinary", "x30"])
@pytest.mark.parametrize("name", sorted(VECTOR))
def test_vector_blocks_match_torch(name, scale):
    fn, width = VECTOR[name]
    rng = np.random.default_rng(len(name))
    z = rng.normal(size=(2, 5, width)) * scale  # leading batch axes (2, 5)
    out = getattr(nn, name)(z)
    grad = rng.normal(size=np.shape(out))
    ref, (ref_grad,) = _torch_vjp(fn, [z], grad, (0,))
    assert np.shape(out) == ref.shape
    np.testing.assert_allclose(out, ref, rtol=RTOL, atol=ATOL)
    got = getattr(nn, f"{name}_backward")(z, grad)
    assert np.shape(got) == z.shape
    np.testing.assert_allclose(got, ref_grad, rtol=RTOL, atol=ATOL * scale)


@pytest.mark.parametrize("name", sorted(VECTOR))
def test_vector_blocks_compiled_jacobian_matches_torch(name):
    """symgrad.derive(block(z), z).compile() on an explicit vector: the Jacobian torch gives."""
    fn, width = VECTOR[name]
    z = sg.catalog.vector("z", width)
    expr = act.softmin(z) if name == "softmin" else act.glu(z)
    f = sg.derive(expr, z).compile()
    point = np.random.default_rng(5).normal(size=width)
    got = np.asarray(f(**{f"z{i + 1}": point[i] for i in range(width)}), dtype=float)
    ref = torch.autograd.functional.jacobian(fn, torch.tensor(point)).numpy()
    np.testing.assert_allclose(got.reshape(ref.shape), ref, rtol=RTOL, atol=ATOL)


def test_glu_inside_a_matrix_expression_matches_torch():
    """‖GLU(X W)‖² by symgrad's matrix chain rule (the row block's adjoint J_GLU(XW)ᵀ[G]), compiled."""
    from symgrad.catalog.rows import sq_frobenius

    n, d, h = sp.symbols("N D H", integer=True, positive=True)
    X, W = sp.MatrixSymbol("X", n, d), sp.MatrixSymbol("W", d, 2 * h)
    f = sg.derive(sq_frobenius(act.glu(X * W)), W).compile()
    rng = np.random.default_rng(9)
    Xv, Wv = rng.normal(size=(5, 3)), rng.normal(size=(3, 8))
    Wt = torch.tensor(Wv, requires_grad=True)
    (F.glu(torch.tensor(Xv) @ Wt, dim=-1) ** 2).sum().backward()
    np.testing.assert_allclose(f(X=Xv, W=Wv), Wt.grad.numpy(), rtol=RTOL, atol=ATOL)


def test_softmin_is_softmax_of_minus_z_and_stays_finite():
    z = np.array([[1000.0, 0.0, -1000.0], [3.0, 3.0, 3.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = nn.softmin(z)
        back = nn.softmin_backward(z, np.array([[1.0, 0.0, 0.0], [1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(out, nn.softmax(-z), rtol=1e-15)
    np.testing.assert_allclose(out[0], [0.0, 0.0, 1.0], atol=1e-300)
    assert np.all(np.isfinite(back))
    np.testing.assert_allclose(back[1], -(np.array([1.0, 2.0, 3.0]) - 2.0) / 3, rtol=1e-14, atol=1e-16)


def test_glu_needs_an_even_last_axis():
    with pytest.raises(ValueError, match="even"):
        nn.glu(np.ones((2, 5)))
    with pytest.raises(ValueError, match="even"):
        act.glu(sg.catalog.vector("z", 3))


# --- where torch loses digits: 40-digit mpmath --------------------------------------------------------
def _mp_gelu(v):
    return v * mpmath.ncdf(v)


TAILS = {  # name: (mpmath forward, points where torch rounds or cancels[, nn params])
    "gelu": (_mp_gelu, [-40.0, -30.0, -10.0, -8.5, 8.5, 30.0]),
    "gelu_tanh": (lambda v: v * (1 + mpmath.tanh(mpmath.sqrt(2 / mpmath.pi) * (v + mpmath.mpf("0.044715") * v ** 3))) / 2,
                  [-12.0, -6.0, -4.0, 4.0, 12.0]),
    "silu": (lambda v: v / (1 + mpmath.exp(-v)), [-700.0, -40.0, 40.0, 700.0]),
    "mish": (lambda v: v * mpmath.tanh(mpmath.log1p(mpmath.exp(v))), [-700.0, -40.0, 20.0, 40.0]),
    "logsigmoid": (lambda v: -mpmath.log1p(mpmath.exp(-v)), [-1000.0, -40.0, 40.0, 700.0]),
    "selu": (lambda v: mpmath.mpf("1.0507009873554804934193349852946") * (v if v > 0 else
             mpmath.mpf("1.6732632423543772848170429916717") * mpmath.expm1(v)), [-700.0, -40.0, -1e-8, 1e-8, 40.0]),
    # α = 0.7: torch's CELU' rounds 1/α to float32 (relative error ~|x|·1e-8), so not compared with torch
    "celu": (lambda v: v if v > 0 else mpmath.mpf(0.7) * mpmath.expm1(v / mpmath.mpf(0.7)),
             [-400.0, -20.0, -2.3, -1e-8, 0.0, 1.5], {"alpha": 0.7}),
    "softsign": (lambda v: v / (1 + abs(v)), [-1e12, -1e6, 1e6, 1e12]),
    "hardsigmoid": (lambda v: min(max(v / 6 + mpmath.mpf(1) / 2, 0), 1), [-2.9, -1.0, 0.5, 2.9]),
}


@pytest.mark.parametrize("name", sorted(TAILS))
def test_tails_against_mpmath(name):
    """Forward and derivative within 1e-13 of mpmath (derivative by 40+-digit numerical differentiation
    of the forward), no floating-point warnings: the points where torch's own formula cancels (GELU's
    1 + erf(x/√2) is 0 below x ≈ −8.3, so torch's GELU(−10) is −0.0, not −7.6e−23) or rounds."""
    forward, points, *rest = TAILS[name]
    params = rest[0] if rest else ELEMENTWISE[name][1]
    v = np.array(points)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = getattr(nn, name)(v, **params)
        back = getattr(nn, f"{name}_backward")(v, np.ones_like(v), **params)
    for p, o, b in zip(points, out, back):
        with mpmath.workdps(100 + int(min(abs(p), 1000))):  # f' ~ e^{-|p|} next to f ~ 1: digits for the difference
            ref = forward(mpmath.mpf(p))
            dref = mpmath.diff(forward, mpmath.mpf(p)) if p != 0 else mpmath.mpf(1)  # CELU'(0) = 1 (C¹)
        assert o == pytest.approx(float(ref), rel=1e-13, abs=1e-300), (name, p, "forward")
        assert b == pytest.approx(float(dref), rel=1e-13, abs=1e-300), (name, p, "backward")


GRID = np.array([-1000.0, -745.0, -710.0, -40.0, -1.0, -1e-8, 1e-8, 1.0, 40.0, 710.0, 745.0, 1000.0])


@pytest.mark.parametrize("name", ["gelu", "gelu_tanh", "silu", "mish", "selu", "softsign", "logsigmoid"])
def test_smooth_blocks_over_the_float64_range(name):
    """Forward and derivative on ±1e-8 … ±1000 within 1e-13 of mpmath (60 + |v|/2.3 digits: SELU' ~
    e^{-1000} next to SELU ~ −λα), or correctly 0 where the value underflows; a subnormal value (|f| < 2.3e-308,
    where float64 itself has few digits) within 1e-320. No floating-point warnings."""
    forward = TAILS[name][0]
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = getattr(nn, name)(GRID)
        back = getattr(nn, f"{name}_backward")(GRID, np.ones_like(GRID))
    for v, o, b in zip(GRID, out, back):
        with mpmath.workdps(60 + int(abs(v) / 2.3)):
            ref, dref = forward(mpmath.mpf(v)), mpmath.diff(forward, mpmath.mpf(v))
        for got, want, what in ((o, float(ref), "forward"), (b, float(dref), "backward")):
            assert np.isfinite(got), (name, v, what)
            if abs(want) < 5e-324:
                assert got == 0, (name, v, what, got)
            elif abs(want) < 2.3e-308:
                assert abs(got - want) < 1e-320, (name, v, what, got, want)
            else:
                assert abs(got - want) <= 1e-13 * abs(want), (name, v, what, got, want)


def test_torch_gelu_tail_cancels_where_symgrad_does_not():
    """The reason for the mpmath test above: torch's GELU at −10 is 0 (its 1 + erf cancels)."""
    t = F.gelu(torch.tensor([-10.0], dtype=torch.float64)).item()
    ours = float(nn.gelu(np.array([-10.0]))[0])
    with mpmath.workdps(40):
        exact = float(_mp_gelu(mpmath.mpf(-10)))
    assert t == 0.0 and exact < -1e-23
    assert ours == pytest.approx(exact, rel=1e-14)


# --- the derivative identities against mpmath's numerical derivative of the elementary forms ---------------
IDENTITIES = [
    (act.gelu(x), x, {}), (act.gelu_tanh(x), x, {}), (act.silu(x), x, {}), (act.mish(x), x, {}),
    (act.selu(x), x, {}), (act.celu(x, alpha), x, {alpha: 0.7}), (act.celu(x, alpha), alpha, {alpha: 0.7}),
    (act.softsign(x), x, {}), (act.hardtanh(x), x, {}), (act.relu6(x), x, {}), (act.hardsigmoid(x), x, {}),
    (act.hardswish(x), x, {}), (act.prelu(x, alpha), x, {alpha: 0.3}), (act.prelu(x, alpha), alpha, {alpha: 0.3}),
    (act.logsigmoid(x), x, {}), (act.normal_cdf(x), x, {}),
]
POINTS = [-3.7, -2.2, -0.4, 0.6, 1.3, 2.9, 4.4, 7.1]  # none on a kink (±1, 0, ±3, 6)


@pytest.mark.parametrize("expr,var,params", IDENTITIES, ids=lambda e: str(e))
@pytest.mark.parametrize("value", POINTS)
def test_identity_matches_mpmath_numeric_derivative(expr, var, params, value):
    point = {x: value, **params}
    if var is not x:
        point = {x: value, var: params[var]}
    identity = expr.diff(var)  # the block's fdiff
    assert mp_value(identity, point) == pytest.approx(mp_derivative(expr, var, point), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("name", ["hardtanh_lo", "hardtanh_hi"])
def test_hardtanh_bound_derivatives(name):
    lo, hi = sp.symbols("lo hi", real=True)
    expr = act.hardtanh(x, lo, hi)
    var = lo if name == "hardtanh_lo" else hi
    for value in (-2.0, -0.3, 0.4, 1.8):
        point = {x: value, lo: -1.0, hi: 1.0}
        assert mp_value(expr.diff(var), point) == pytest.approx(mp_derivative(expr, var, point), abs=1e-12)


@pytest.mark.parametrize("name", sorted(VECTOR))
def test_vector_jacobian_entries_match_mpmath(name):
    width = VECTOR[name][1]
    z = sg.catalog.vector("z", width)
    out = act.softmin(z) if name == "softmin" else act.glu(z)
    point = dict(zip(z, np.random.default_rng(2).normal(size=width)))
    for entry in out:
        for v in z:
            assert mp_value(entry.diff(v), point) == pytest.approx(mp_derivative(entry, v, point), rel=1e-12, abs=1e-15)


def test_identities_are_written_through_the_output_where_stable():
    s = act.silu(x)
    assert s.diff(x) == act.sigmoid(x) + s * act.sigmoid(-x)
    assert act.logsigmoid(x).diff(x) == act.sigmoid(-x)
    assert act.gelu(x).diff(x).has(act.normal_cdf)


# --- erf: vectorised, never math.erf ---------------------------------------------------------------------
def test_user_written_gelu_with_erf_compiles_on_arrays():
    """The issue's example: derive(x/2·(1 + erf(x/√2)), x).compile() on an array (was "only 0-dimensional
    arrays can be converted to Python scalars": math.erf)."""
    f = sg.derive(x / 2 * (1 + sp.erf(x / sp.sqrt(2))), x).compile()
    assert "math.erf" not in f.source
    v = np.linspace(-4, 4, 9)
    _, (ref,) = _torch_vjp(F.gelu, [v], np.ones_like(v), (0,))
    np.testing.assert_allclose(f(x=v), ref, rtol=RTOL, atol=ATOL)


def test_gelu_on_torch_tensors_and_array_api_strict():
    pytest.importorskip("array_api_compat")
    v = np.linspace(-5, 5, 11)
    ref = nn.gelu(v)
    t = nn.gelu(torch.tensor(v))
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), ref, rtol=1e-14)  # torch.special.erfc, not SciPy's: an ulp or two
    np.testing.assert_allclose(nn.gelu_backward(torch.tensor(v), torch.ones(11, dtype=torch.float64)).numpy(),
                               nn.gelu_backward(v, np.ones(11)), rtol=1e-14)
    xps = pytest.importorskip("array_api_strict")
    s = nn.gelu(xps.asarray(v))
    assert type(s).__module__.startswith("array_api_strict")
    np.testing.assert_allclose(np.asarray(s), ref, rtol=1e-15)


def test_gelu_on_dask_is_lazy():
    da = pytest.importorskip("dask.array")
    pytest.importorskip("array_api_compat")
    v = np.linspace(-6, 6, 40)
    lazy = nn.gelu_backward(da.from_array(v, chunks=10), da.ones(40, chunks=10))
    assert type(lazy).__module__.startswith("dask")
    np.testing.assert_allclose(lazy.compute(), nn.gelu_backward(v, np.ones(40)), rtol=1e-15)


def test_gelu_float32_uses_scipy_erf_in_float32():
    v = np.linspace(-3, 3, 7, dtype=np.float32)
    assert nn.gelu(v).dtype == np.float32 and nn.gelu_backward(v, np.ones_like(v)).dtype == np.float32
    ref = np.array([float(_mp_gelu(mpmath.mpf(float(e)))) for e in v])
    np.testing.assert_allclose(nn.gelu(v), ref, rtol=1e-6, atol=1e-7)
    assert math.isclose(float(nn.gelu(np.float64(1.0))), 1.0 * 0.5 * (1 + math.erf(1 / math.sqrt(2))), rel_tol=1e-15)
