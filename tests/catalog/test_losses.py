"""The losses and layers of issue 12 in symgrad.nn against PyTorch: forward with torch.nn.functional
(reduction='none'), the backward of every differentiable input with torch.autograd (float64,
rtol 1e-10) at ordinary inputs, at ×30 inputs and at the kinks; float32 in → float32 out; per-sample
shapes; and against 40-digit mpmath where torch's own formula loses digits (the focal loss at ×30)."""

from __future__ import annotations

import zlib

import mpmath
import numpy as np
import pytest

import symgrad.nn as nn
from symgrad.catalog import get_block

torch = pytest.importorskip("torch")
F = torch.nn.functional

N, K = 6, 5
RTOL, ATOL = 1e-10, 1e-12


def _focal_torch(z, y, gamma, alpha):
    """torchvision.ops.sigmoid_focal_loss (reduction='none'), line by line."""
    p = torch.sigmoid(z)
    ce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * ((1 - p_t) ** gamma)
    return (alpha * y + (1 - alpha) * (1 - y)) * loss


def _probs(rng, *shape):
    e = np.exp(rng.normal(size=shape))
    return e / e.sum(-1, keepdims=True)


# name: (inputs(rng, scale) → (arrays, params), torch reference, indices of the differentiable inputs)
CASES = {
    "huber": (lambda r, s: ([s * r.normal(size=(N, K)), s * r.normal(size=(N, K))], {"delta": 0.7}),
              lambda x, y, delta: F.huber_loss(x, y, reduction="none", delta=delta), (0, 1)),
    "smooth_l1": (lambda r, s: ([s * r.normal(size=(N, K)), s * r.normal(size=(N, K))], {"beta": 0.6}),
                  lambda x, y, beta: F.smooth_l1_loss(x, y, reduction="none", beta=beta), (0, 1)),
    "l1_loss": (lambda r, s: ([s * r.normal(size=(N, K)), s * r.normal(size=(N, K))], {}),
                lambda x, y: F.l1_loss(x, y, reduction="none"), (0, 1)),
    "margin_ranking": (lambda r, s: ([s * r.normal(size=N), s * r.normal(size=N), r.choice([-1.0, 1.0], N)],
                                     {"margin": 0.3}),
                       lambda x1, x2, y, margin: F.margin_ranking_loss(x1, x2, y, margin=margin, reduction="none"),
                       (0, 1, 2)),
    "binary_focal": (lambda r, s: ([s * r.normal(size=(N, K)), r.uniform(0, 1, (N, K))], {"gamma": 2.0, "alpha": 0.25}),
                     _focal_torch, (0, 1)),
    "kl_div": (lambda r, s: ([s * np.log(_probs(r, N, K)), _probs(r, N, K)], {}),
               lambda x, t: F.kl_div(x, t, reduction="none", log_target=False).sum(-1), (0, 1)),
    "kl_div_log_target": (lambda r, s: ([s * np.log(_probs(r, N, K)), np.log(_probs(r, N, K))], {}),
                          lambda x, t: F.kl_div(x, t, reduction="none", log_target=True).sum(-1), (0, 1)),
    "nll": (lambda r, s: ([s * np.log(_probs(r, N, K)), r.integers(0, K, N)], {}),
            lambda x, y: F.nll_loss(x, y, reduction="none"), (0,)),
    "cosine_similarity": (lambda r, s: ([s * r.normal(size=(N, K)), s * r.normal(size=(N, K))], {}),
                          lambda x1, x2: F.cosine_similarity(x1, x2, dim=-1), (0, 1)),
    "cosine_embedding": (lambda r, s: ([s * r.normal(size=(N, K)), s * r.normal(size=(N, K)),
                                        r.choice([-1.0, 1.0], N)], {"margin": 0.1}),
                         lambda x1, x2, y, margin: F.cosine_embedding_loss(x1, x2, y, margin=margin, reduction="none"),
                         (0, 1)),
    "triplet_margin": (lambda r, s: ([s * r.normal(size=(N, K)) for _ in range(3)], {"margin": 0.5 * s}),
                       lambda a, p, n, margin: F.triplet_margin_loss(a, p, n, margin=margin, reduction="none"),
                       (0, 1, 2)),
    "max_pool": (lambda r, s: ([s * r.normal(size=(N, K))], {}), lambda x: torch.max(x, dim=-1).values, (0,)),
    "logsumexp": (lambda r, s: ([s * r.normal(size=(N, K))], {}), lambda x: torch.logsumexp(x, -1), (0,)),
}
NAMES = sorted(CASES) + ["dropout"]


def _torch_args(args, wrt):
    return [torch.tensor(a, requires_grad=(i in wrt)) if np.issubdtype(np.asarray(a).dtype, np.floating)
            else torch.tensor(a) for i, a in enumerate(args)]


def _as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


def _compare(name, args, params, reference, wrt, rtol=RTOL, atol=ATOL, upstream=None):
    """symgrad.nn's forward and every gradient against torch's forward and torch.autograd."""
    t_args = _torch_args(args, wrt)
    ref = reference(*t_args, **params)
    out = getattr(nn, name)(*args, **params)
    assert np.shape(out) == tuple(ref.shape), name  # reduction='none': one loss per sample (or entry)
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=rtol, atol=atol, err_msg=f"{name} forward")
    grad = upstream if upstream is not None else np.random.default_rng(2).normal(size=np.shape(out))
    expected = torch.autograd.grad(ref, [t_args[i] for i in wrt], grad_outputs=torch.tensor(grad))
    got = _as_tuple(getattr(nn, f"{name}_backward")(*args, grad, **params))
    assert len(got) == len(wrt), name
    for k, (g, e) in enumerate(zip(got, expected)):
        assert np.shape(g) == tuple(e.shape)
        np.testing.assert_allclose(g, e.numpy(), rtol=rtol, atol=atol, err_msg=f"{name} gradient {wrt[k]}")


@pytest.mark.parametrize("scale", [1.0, 30.0], ids=["ordinary", "x30"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_and_every_gradient_match_torch(name, scale):
    if name == "binary_focal" and scale > 1:
        pytest.skip("torch's 1 - p_t cancels at |z| ~ 30: checked against mpmath below")
    inputs, reference, wrt = CASES[name]
    args, params = inputs(np.random.default_rng(zlib.crc32(name.encode())), scale)
    _compare(name, args, params, reference, wrt)


def test_dropout_with_torchs_own_mask():
    """torch.nn.functional.dropout in training mode; its mask (out ≠ 0) given to symgrad.nn."""
    x = np.random.default_rng(3).normal(size=(N, K))
    for p in (0.2, 0.5, 0.9):
        def reference(t, p):
            torch.manual_seed(11)
            return F.dropout(t, p, training=True)

        mask = (reference(torch.tensor(x), p).numpy() != 0).astype(np.float64)
        assert 0 < mask.sum() < mask.size
        _compare("dropout", [x, mask], {"p": p}, lambda t, m, p: reference(t, p), (0,))


# --- kinks: PyTorch's conventions -------------------------------------------------------------------
def test_huber_and_smooth_l1_at_the_kink():
    y = np.full(5, 0.25)
    x = y + np.array([-0.75, 0.0, 0.75, 1.5, -1.5])  # |d| = δ, d = 0, |d| = 2δ (all exact)
    _compare("huber", [x, y], {"delta": 0.75}, lambda a, b, delta: F.huber_loss(a, b, reduction="none", delta=delta),
             (0, 1), rtol=0, atol=0, upstream=np.ones(5))
    _compare("smooth_l1", [x, y], {"beta": 0.75}, lambda a, b, beta: F.smooth_l1_loss(a, b, reduction="none", beta=beta),
             (0, 1), rtol=1e-15, atol=0, upstream=np.ones(5))
    assert nn.huber_backward(x, y, np.ones(5), delta=0.75)[0].tolist() == [-0.75, 0.0, 0.75, 0.75, -0.75]


def test_l1_at_zero_has_gradient_zero():
    x, y = np.array([0.5, 2.0, -1.0]), np.array([0.5, 1.0, 0.0])
    _compare("l1_loss", [x, y], {}, lambda a, b: F.l1_loss(a, b, reduction="none"), (0, 1), rtol=0, atol=0,
             upstream=np.ones(3))
    assert nn.l1_loss_backward(x, y, np.ones(3))[0].tolist() == [0.0, 1.0, -1.0]


def test_margin_losses_pass_the_gradient_at_the_hinge():
    # margin ranking: -y (x1 - x2) + m = 0 exactly in the first entry; clamp_min passes the gradient there
    x1, x2, y = np.array([1.5, 0.0, 2.0]), np.array([1.0, 1.0, 0.0]), np.array([1.0, 1.0, -1.0])
    _compare("margin_ranking", [x1, x2, y], {"margin": 0.5},
             lambda a, b, t, margin: F.margin_ranking_loss(a, b, t, margin=margin, reduction="none"), (0, 1, 2),
             rtol=0, atol=0, upstream=np.ones(3))
    assert nn.margin_ranking_backward(x1, x2, y, np.ones(3), margin=0.5)[0][0] == -1.0
    # triplet: margin + ‖a − p‖ − ‖a − n‖ = 1 + 5 − 6 = 0 (eps = 0), and an ordinary row
    a, p, n = np.array([[0.0, 0.0], [0.3, -1.2]]), np.array([[3.0, 4.0], [1.0, 1.0]]), np.array([[0.0, 6.0], [0.2, -1.0]])
    _compare("triplet_margin", [a, p, n], {"margin": 1.0, "eps": 0.0},
             lambda a, p, n, margin, eps: F.triplet_margin_loss(a, p, n, margin=margin, eps=eps, reduction="none"),
             (0, 1, 2), rtol=1e-13, atol=0, upstream=np.ones(2))
    assert np.any(nn.triplet_margin_backward(a, p, n, np.ones(2), margin=1.0, eps=0.0)[1][0] != 0)
    # cosine embedding, y = -1: cos - margin = 0 - 0 (orthogonal rows)
    u, v = np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 2.0, 0.0]])
    _compare("cosine_embedding", [u, v, np.array([-1.0])], {"margin": 0.0},
             lambda a, b, t, margin: F.cosine_embedding_loss(a, b, t, margin=margin, reduction="none"), (0, 1),
             upstream=np.ones(1))
    assert np.any(nn.cosine_embedding_backward(u, v, np.array([-1.0]), np.ones(1))[0] != 0)


def test_max_pool_routes_ties_as_torch_max():
    x = np.array([[1.0, 2.0, 2.0, 0.0], [3.0, 3.0, 3.0, 3.0], [np.nan, 1.0, 5.0, 0.0]])
    grad = np.array([1.0, 2.0, 3.0])
    for reference in (lambda t: torch.max(t, dim=-1).values,
                      lambda t: F.max_pool1d(t.unsqueeze(0), t.shape[-1]).reshape(-1)):
        t = torch.tensor(x, requires_grad=True)
        out = reference(t)
        (g,) = torch.autograd.grad(out, [t], torch.tensor(grad))
        np.testing.assert_array_equal(nn.max_pool(x), out.detach().numpy())
        np.testing.assert_array_equal(nn.max_pool_backward(x, grad), g.numpy())


def test_logsumexp_rows_with_infinities_give_the_limits():
    inf = np.inf
    x = np.array([[inf, 0.0], [-inf, -inf], [-inf, 1.0], [1000.0, 0.0], [np.nan, 0.0]])
    with np.errstate(invalid="ignore"):
        got = nn.logsumexp(x)
    np.testing.assert_array_equal(got, torch.logsumexp(torch.tensor(x), -1).numpy())
    assert nn.logsumexp(np.array([0.0, -800.0])) == np.log1p(np.exp(-800.0))  # not 0: the tail kept
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np.testing.assert_allclose(nn.logsumexp_backward(np.array([[800.0, 0.0]]), np.ones(1)), [[1.0, np.exp(-800.0)]])


def test_kl_div_with_zero_targets_is_finite_as_torch():
    x, t = np.log(_probs(np.random.default_rng(4), 3, 4)), np.array([[0.0, 1.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0], [0.25] * 4])
    tx, tt = torch.tensor(x, requires_grad=True), torch.tensor(t)
    ref = F.kl_div(tx, tt, reduction="none").sum(-1)
    with np.errstate(divide="raise", invalid="raise"):
        np.testing.assert_allclose(nn.kl_div(x, t), ref.detach().numpy(), rtol=RTOL)
    (gx,) = torch.autograd.grad(ref, [tx], torch.ones(3, dtype=torch.float64))
    with np.errstate(divide="ignore"):  # ∂/∂t = log t + 1 − x diverges at t = 0 (torch: NaN)
        np.testing.assert_allclose(nn.kl_div_backward(x, t, np.ones(3))[0], gx.numpy(), rtol=RTOL)


def test_cosine_similarity_of_a_zero_row_and_of_huge_rows():
    x1, x2 = np.zeros((1, 3)), np.array([[1.0, 2.0, 3.0]])
    _compare("cosine_similarity", [x1, x2], {}, lambda a, b: F.cosine_similarity(a, b, dim=-1), (0, 1),
             upstream=np.ones(1))
    big = np.array([[1e200, -2e200, 3e200]])  # torch's norm overflows to inf here; symgrad scales
    np.testing.assert_allclose(nn.cosine_similarity(big, big), [1.0], rtol=1e-15)
    np.testing.assert_allclose(nn.triplet_margin(big, 0 * big, 2 * big, margin=0.0), [0.0])
    assert np.all(np.isfinite(nn.cosine_similarity_backward(big, x2 * 1e-200, np.ones(1))[0]))


# --- the focal loss at ×30 against mpmath (torch's 1 − p_t cancels there) --------------------------------
def _focal_mp(z, y, gamma=2, alpha=mpmath.mpf("0.25")):
    s = lambda v: 1 / (1 + mpmath.exp(-v))  # noqa: E731
    ce = mpmath.log1p(mpmath.exp(z)) - y * z
    return (alpha * y + (1 - alpha) * (1 - y)) * ((1 - y) * s(z) + y * s(-z)) ** gamma * ce


def test_binary_focal_at_x30_against_mpmath():
    rng = np.random.default_rng(5)
    z, y = 30 * rng.normal(size=12), np.concatenate([rng.uniform(0, 1, 6), [0.0, 1.0] * 3])
    grad = rng.normal(size=12)
    out = nn.binary_focal(z, y)
    gz, gy = nn.binary_focal_backward(z, y, grad)
    with mpmath.workdps(40):
        for k in range(12):
            zk, yk = mpmath.mpf(z[k]), mpmath.mpf(y[k])
            f = _focal_mp(zk, yk)
            dz = mpmath.diff(lambda v: _focal_mp(v, yk), zk)
            dy = mpmath.diff(lambda v: _focal_mp(zk, v), yk)
            for got, ref in ((out[k], f), (gz[k], grad[k] * dz), (gy[k], grad[k] * dy)):
                assert abs(got - float(ref)) <= 1e-12 * abs(float(ref)) + 1e-300, (k, z[k], y[k], got, float(ref))
    # torch's own formula at the same points: 1 − p_t rounds to 0 where y = 1 and z ≫ 0
    t = _focal_torch(torch.tensor(z), torch.tensor(y), 2.0, 0.25).numpy()
    assert np.any(np.abs(t - out) > 1e-6 * np.abs(out))


# --- dtypes, shapes, non-differentiable inputs -------------------------------------------------------
def _inputs(name, rng):
    if name == "dropout":
        return [rng.normal(size=(N, K)), rng.choice([0.0, 1.0], (N, K))], {"p": 0.3}, (0,)
    inputs, _, wrt = CASES[name]
    args, params = inputs(rng, 1.0)
    return args, params, wrt


@pytest.mark.parametrize("name", NAMES)
def test_float32_in_float32_out(name):
    args, params, wrt = _inputs(name, np.random.default_rng(6))
    out = getattr(nn, name)(*args, **params)
    grad = np.random.default_rng(7).normal(size=np.shape(out))
    back = _as_tuple(getattr(nn, f"{name}_backward")(*args, grad, **params))
    args32 = [a.astype(np.float32) if np.asarray(a).dtype == np.float64 else a for a in args]
    out32 = getattr(nn, name)(*args32, **params)
    back32 = _as_tuple(getattr(nn, f"{name}_backward")(*args32, grad.astype(np.float32), **params))
    assert np.asarray(out32).dtype == np.float32, name
    np.testing.assert_allclose(out32, out, rtol=1e-4, atol=1e-5)
    for g32, g in zip(back32, back):
        assert np.asarray(g32).dtype == np.float32, name
        np.testing.assert_allclose(g32, g, rtol=1e-3, atol=1e-4)


PER_SAMPLE = {"kl_div", "kl_div_log_target", "nll", "cosine_similarity", "cosine_embedding", "triplet_margin",
              "max_pool", "logsumexp"}


@pytest.mark.parametrize("name", NAMES)
def test_reduction_none_shapes_with_leading_batch_axes(name):
    """Elementwise losses keep the input's shape; vector blocks give one number per sample (...,);
    samples split over leading axes (6 → (2, 3)) give the same numbers."""
    args, params, wrt = _inputs(name, np.random.default_rng(8))
    out = getattr(nn, name)(*args, **params)
    assert np.shape(out) == (np.shape(args[0])[:-1] if name in PER_SAMPLE else np.shape(args[0]))
    split = [np.reshape(a, (2, 3) + np.shape(a)[1:]) for a in args]
    out_s = getattr(nn, name)(*split, **params)
    np.testing.assert_allclose(np.reshape(out_s, np.shape(out)), out, rtol=1e-15)
    grad = np.random.default_rng(9).normal(size=np.shape(out))
    back = _as_tuple(getattr(nn, f"{name}_backward")(*args, grad, **params))
    back_s = _as_tuple(getattr(nn, f"{name}_backward")(*split, np.reshape(grad, np.shape(out_s)), **params))
    for g, gs, i in zip(back, back_s, wrt):
        assert np.shape(gs) == np.shape(split[i])
        np.testing.assert_allclose(np.reshape(gs, np.shape(g)), g, rtol=1e-15)


NOT_DIFFERENTIATED = {"nll": "y", "cosine_embedding": "y", "dropout": "mask"}


@pytest.mark.parametrize("name", sorted(NOT_DIFFERENTIATED))
def test_data_inputs_are_not_differentiated_and_say_so(name):
    block = get_block(name)
    data = NOT_DIFFERENTIATED[name]
    wrt = block.batched().wrt if block.batched is not None else tuple(
        k for k, v in block.build().inputs.items() if v in block.build().wrt)
    assert data not in wrt and len(wrt) == len(_inputs(name, np.random.default_rng(0))[2])
    assert "not differentiated" in block.domain
    assert "gradients with respect to" in getattr(nn, f"{name}_backward").__doc__ or \
        "gradient with respect to" in getattr(nn, f"{name}_backward").__doc__


# --- over the float64 range --------------------------------------------------------------------------
GRID = np.array([-1000.0, -745.0, -710.0, -40.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 40.0, 710.0, 745.0, 1000.0])


@pytest.mark.parametrize("y", [0.0, 1.0, 0.3])
def test_binary_focal_over_the_float64_range_against_mpmath(y):
    """Finite without floating-point warnings (q = 1 − p_t underflows to 0 beyond ±745: the gradient
    never divides by it), and within 1e-12 of mpmath (or correctly 0)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            out = nn.binary_focal(GRID, np.full_like(GRID, y))
            gz, gy = nn.binary_focal_backward(GRID, np.full_like(GRID, y), np.ones_like(GRID))
    for k, v in enumerate(GRID):
        with mpmath.workdps(60 + int(abs(v) / 2.3)):
            zk, yk = mpmath.mpf(v), mpmath.mpf(y)
            refs = (_focal_mp(zk, yk), mpmath.diff(lambda u: _focal_mp(u, yk), zk),
                    mpmath.diff(lambda u: _focal_mp(zk, u), yk))
            refs = [float(r) for r in refs]
        for got, ref, what in zip((out[k], gz[k], gy[k]), refs, ("forward", "d/dz", "d/dy")):
            assert np.isfinite(got), (v, y, what)
            assert (abs(got) < 1e-300) if abs(ref) < 1e-300 else abs(got - ref) <= 1e-12 * abs(ref), (v, y, what, got, ref)


def test_huber_and_l1_at_huge_differences_do_not_overflow():
    x = np.array([1e300, -1e300, 1e200])
    with np.errstate(over="raise", invalid="raise"):
        np.testing.assert_array_equal(nn.huber(x, 0 * x, delta=2.0), 2.0 * (np.abs(x) - 1.0))
        np.testing.assert_array_equal(nn.smooth_l1(x, 0 * x, beta=2.0), np.abs(x) - 1.0)
        np.testing.assert_array_equal(nn.huber_backward(x, 0 * x, np.ones(3), delta=2.0)[0], [2.0, -2.0, 2.0])
        np.testing.assert_array_equal(nn.l1_loss(x, 0 * x), np.abs(x))


# --- each new primitive's stable NumPy form equals its elementary form ---------------------------------
def _primitives():
    from symgrad.catalog.layers import LogSumExp
    from symgrad.catalog.losses import BinaryFocal, ClampMin, Clip, Huber, StepAtLeast, XLogX

    return [(BinaryFocal, (1.3, 0.2, 2.0, 0.25)), (BinaryFocal, (-4.0, 1.0, 1.5, 0.6)), (Huber, (0.3, 1.0)),
            (Huber, (-2.5, 0.7)), (Clip, (-2.5, 0.7)), (Clip, (0.2, 0.7)), (ClampMin, (-0.4,)), (ClampMin, (0.4,)),
            (StepAtLeast, (0.0,)), (StepAtLeast, (-1e-9,)), (XLogX, (0.0,)), (XLogX, (0.37,)),
            (LogSumExp, (0.5, -1.0, 2.0))]


@pytest.mark.parametrize("cls,values", _primitives(), ids=lambda v: getattr(v, "__name__", str(v)))
def test_primitive_numpy_forms_equal_their_elementary_forms(cls, values):
    import sympy as sp

    got = cls.numpy_form(*[np.array([v]) for v in values], xp=np)
    expected = sp.limit(cls.elementary(sp.Symbol("t"), *values[1:]), sp.Symbol("t"), 0, "+") \
        if cls.__name__ == "XLogX" and values[0] == 0 else cls.elementary(*[sp.Float(v, 30) for v in values])
    np.testing.assert_allclose(got, [float(expected)], rtol=1e-14, atol=0)
