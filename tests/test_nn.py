"""symgrad.nn, the pre-compiled catalog: regenerated file identical, no SymPy at import, every
block's backward against central finite differences of its forward, forward and backward
against torch.autograd (where installed), batch axes, dtypes, labels, the Array API, stability."""

from __future__ import annotations

import subprocess
import sys
import warnings
import zlib

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgrad.nn as nn
from symgrad.catalog import blocks
from symgrad.nnbuild import NN_PATH, build_source

RNG = np.random.default_rng(7)
N, C, D, H = 5, 4, 3, 6


def _spec(name: str, rng: np.random.Generator, dtype=np.float64):
    """(positional inputs, keyword params, indices of the inputs whose gradients the backward returns,
    in order; the gradient of class indices is None) for one block."""
    r = lambda *shape: rng.normal(size=shape).astype(dtype)  # noqa: E731
    idx = rng.integers(0, C, size=N)
    probs = lambda *shape: (lambda e: e / e.sum(-1, keepdims=True))(np.exp(r(*shape)))  # noqa: E731
    table = {
        "sigmoid": ((r(N, C),), {}), "tanh": ((r(N, C),), {}), "relu": ((r(N, C),), {}),
        "leaky_relu": ((r(N, C),), {"alpha": 0.2}), "elu": ((r(N, C),), {"alpha": 0.7}),
        "softplus": ((r(N, C),), {}), "softmax": ((r(N, C),), {}), "log_softmax": ((r(N, C),), {}),
        **{n: ((r(N, C),), {}) for n in ("gelu", "gelu_tanh", "silu", "mish", "selu", "softsign", "relu6",
                                         "hardsigmoid", "hardswish", "logsigmoid", "softmin")},
        "celu": ((r(N, C),), {"alpha": 0.5}), "hardtanh": ((r(N, C),), {"min_val": -0.5, "max_val": 2.0}),
        "prelu": ((r(N, C), rng.uniform(-0.5, 0.5, (N, C)).astype(dtype)), {}), "glu": ((r(N, 2 * C),), {}),
        "maxout": ((r(N, D), r(D), r(), r(D), r()), {}),
        "bce": ((rng.uniform(0.05, 0.95, (N, C)).astype(dtype), rng.uniform(0, 1, (N, C)).astype(dtype)), {}),
        "bce_with_logits": ((r(N, C), rng.uniform(0, 1, (N, C)).astype(dtype)), {}),
        "cross_entropy": ((probs(N, C), idx), {}),
        "softmax_cross_entropy": ((r(N, C), idx), {}),
        "squared_l2": ((r(N, C), r(N, C)), {}),
        "hinge": ((r(N, C), rng.choice([-1.0, 1.0], (N, C)).astype(dtype)), {}),
        "multiclass_svm": ((r(N, C), idx), {}),
        "l2": ((r(N, C),), {"lam": 0.3}),
        "dense": ((r(H, D), r(N, D), r(H)), {}),
        "lp_pool": ((rng.uniform(0.2, 2.0, (N, C)).astype(dtype),), {"p": 3.0}),
        "log_avg_pool": ((r(N, C),), {"beta": 1.7}),
        "sq_norm_linear": ((r(H, D), r(N, D)), {}),
        "logistic_regression": ((r(D), r(N, D), r(), rng.uniform(0, 1, N).astype(dtype)), {}),
        "softmax_regression": ((r(C, D), r(N, D), r(C), idx), {}),
        "mlp": ((r(H, D), r(H), r(C, H), r(C), r(N, D), r(N, C)), {}),
        "huber": ((r(N, C), r(N, C)), {"delta": 0.7}), "smooth_l1": ((r(N, C), r(N, C)), {"beta": 0.6}),
        "l1_loss": ((r(N, C), r(N, C)), {}),
        "margin_ranking": ((r(N), r(N), rng.choice([-1.0, 1.0], N).astype(dtype)), {"margin": 0.3}),
        "binary_focal": ((r(N, C), rng.uniform(0, 1, (N, C)).astype(dtype)), {}),
        "kl_div": ((np.log(probs(N, C)), rng.uniform(0.5, 1.5, (N, C)).astype(dtype)), {}),  # t ≫ the FD step
        "kl_div_log_target": ((np.log(probs(N, C)), np.log(probs(N, C))), {}),
        "nll": ((np.log(probs(N, C)), idx), {}),
        "cosine_similarity": ((r(N, C), r(N, C)), {}),
        "cosine_embedding": ((r(N, C), r(N, C), rng.choice([-1.0, 1.0], N).astype(dtype)), {"margin": 0.1}),
        "triplet_margin": ((r(N, C), r(N, C), r(N, C)), {}),
        "dropout": ((r(N, C), rng.choice([0.0, 1.0], (N, C)).astype(dtype)), {"p": 0.3}),
        "max_pool": ((r(N, C),), {}), "logsumexp": ((r(N, C),), {}),
        "layer_norm": ((r(N, C), r(C), r(C)), {}), "rms_norm": ((r(N, C), r(C)), {}),
        "batch_norm": ((r(N, C), r(C), r(C)), {}), "scaled_dot_product_attention": ((r(N, D), r(C, D), r(C, H)), {}),
        "masked_attention": ((r(N, D), r(C, D), r(C, H), np.arange(N * C).reshape(N, C) % 3 != 1), {}),
    }
    wrt = {"prelu": (0, 1), "maxout": (0, 1, 2, 3, 4), "dense": (0, 1, 2), "sq_norm_linear": (0, 1),
           "logistic_regression": (0, 1, 2, 3), "softmax_regression": (0, 1, 2, 3), "mlp": (0, 1, 2, 3, 4, 5),
           # targets too, as torch differentiates them (class indices: None; hinge's ±1, SVM indices: data)
           **{n: (0, 1) for n in ("bce", "bce_with_logits", "cross_entropy", "softmax_cross_entropy", "squared_l2")},
           **{n: (0, 1) for n in ("huber", "smooth_l1", "l1_loss", "binary_focal", "kl_div", "kl_div_log_target",
                                  "cosine_similarity", "cosine_embedding")},
           "margin_ranking": (0, 1, 2), "triplet_margin": (0, 1, 2),
           **{n: (0, 1, 2) for n in ("layer_norm", "batch_norm", "scaled_dot_product_attention", "masked_attention")},
           "rms_norm": (0, 1)}
    args, params = table[name]
    return list(args), params, wrt.get(name, (0,))


NAMES = [b.name for b in blocks()]


def test_every_catalog_block_is_in_nn():
    assert sorted(NAMES) == sorted(n for n in nn.__all__ if not n.endswith("_backward"))
    for name in NAMES:
        assert callable(getattr(nn, name)) and callable(getattr(nn, f"{name}_backward"))


def test_regenerating_gives_the_committed_file():
    import sympy

    committed = NN_PATH.read_text(encoding="utf-8")
    assert build_source() == committed, (
        f"symgrad/nn.py is stale: run `python -m symgrad.nnbuild` (it says: {committed.splitlines()[0]}; "
        f"this SymPy is {sympy.__version__})")


def test_import_does_not_import_sympy():
    code = ("import sys, numpy as np; import symgrad.nn as nn; "
            "nn.softmax_cross_entropy_backward(np.zeros((2, 3)), np.array([0, 2]), np.ones(2)); "
            "assert 'sympy' not in sys.modules, 'sympy imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def _as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_finite_differences(name):
    """⟨grad, ∂f/∂x_k⟩ by 4th-order central differences of the forward, every coordinate."""
    args, params, wrt = _spec(name, np.random.default_rng(zlib.crc32(name.encode())))
    f = getattr(nn, name)
    out = f(*args, **params)
    grad = np.random.default_rng(1).normal(size=np.shape(out))
    got = _as_tuple(getattr(nn, f"{name}_backward")(*args, grad, **params))
    assert len(got) == len(wrt)
    for g, i in zip(got, wrt):
        if _indices(args[i]):
            assert g is None, (name, i)
            continue
        x = np.array(args[i], dtype=float)
        assert np.shape(g) == x.shape, (name, i)
        fd = np.zeros(x.shape)
        for k in np.ndindex(*x.shape):
            def at(delta):
                moved = x.copy()
                moved[k] += delta
                return float(np.sum(grad * f(*args[:i], moved, *args[i + 1:], **params)))
            h = 1e-3 * max(1.0, abs(x[k]))
            fd[k] = (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h)
        np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-8 * max(1.0, np.abs(fd).max()), err_msg=name)


# --- torch.autograd as the oracle ---------------------------------------------------------------
def _torch_reference(name, torch, F):
    C_ = float(C)
    return {
        "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": F.relu,
        "leaky_relu": lambda x, alpha: F.leaky_relu(x, alpha),
        "elu": lambda x, alpha: F.elu(x, alpha),
        "softplus": lambda x: F.softplus(x, beta=1.0, threshold=1e6),
        "softmax": lambda z: torch.softmax(z, -1), "log_softmax": lambda z: torch.log_softmax(z, -1),
        "gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "silu": F.silu, "mish": F.mish,
        "selu": F.selu, "celu": lambda x, alpha: F.celu(x, alpha), "softsign": F.softsign,
        "hardtanh": lambda x, min_val, max_val: F.hardtanh(x, min_val, max_val), "relu6": F.relu6,
        "hardsigmoid": lambda x: torch.clamp(x / 6 + 0.5, 0, 1),  # F.hardsigmoid' rounds 1/6 to float32
        "hardswish": F.hardswish, "logsigmoid": F.logsigmoid, "softmin": lambda z: F.softmin(z, -1),
        "prelu": lambda x, a: torch.where(x > 0, x, a * x),  # F.prelu takes one slope per channel only
        "glu": lambda z: F.glu(z, -1),
        "maxout": lambda x, w, b, v, c: torch.maximum(x @ w + b, x @ v + c),
        "bce": lambda a, y: F.binary_cross_entropy(a, y, reduction="none"),
        "bce_with_logits": lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction="none"),
        "cross_entropy": lambda a, y: F.nll_loss(torch.log(a), y, reduction="none"),
        "softmax_cross_entropy": lambda z, y: F.cross_entropy(z, y, reduction="none"),
        "squared_l2": lambda p, y: ((p - y) ** 2).sum(-1),
        "hinge": lambda s, t: torch.clamp(1 - t * s, min=0),
        "multiclass_svm": lambda s, y: F.multi_margin_loss(s, y, reduction="none") * C_,  # torch divides by C
        "l2": lambda W, lam: lam * (W ** 2).sum(-1),
        "dense": lambda W, x, b: F.linear(x, W, b),
        "lp_pool": lambda x, p: F.lp_pool1d(x.unsqueeze(0), p, kernel_size=x.shape[-1]).reshape(-1),
        "log_avg_pool": lambda x, beta: (torch.logsumexp(beta * x, -1) - np.log(x.shape[-1])) / beta,
        "sq_norm_linear": lambda W, x: ((x @ W.T) ** 2).sum(-1),
        "logistic_regression": lambda w, x, b, y: F.binary_cross_entropy_with_logits(x @ w + b, y, reduction="none"),
        "softmax_regression": lambda W, x, b, y: F.cross_entropy(F.linear(x, W, b), y, reduction="none"),
        "mlp": lambda W1, b1, W2, b2, x, y: ((F.linear(torch.sigmoid(F.linear(x, W1, b1)), W2, b2) - y) ** 2).sum(-1),
        "huber": lambda x, y, delta: F.huber_loss(x, y, reduction="none", delta=delta),
        "smooth_l1": lambda x, y, beta: F.smooth_l1_loss(x, y, reduction="none", beta=beta),
        "l1_loss": lambda x, y: F.l1_loss(x, y, reduction="none"),
        "margin_ranking": lambda x1, x2, y, margin: F.margin_ranking_loss(x1, x2, y, margin=margin, reduction="none"),
        "binary_focal": lambda z, y: (0.25 * y + 0.75 * (1 - y)) * F.binary_cross_entropy_with_logits(z, y, reduction="none")
        * (1 - (torch.sigmoid(z) * y + (1 - torch.sigmoid(z)) * (1 - y))) ** 2,  # torchvision's sigmoid_focal_loss
        "kl_div": lambda x, t: F.kl_div(x, t, reduction="none").sum(-1),
        "kl_div_log_target": lambda x, t: F.kl_div(x, t, reduction="none", log_target=True).sum(-1),
        "nll": lambda x, y: F.nll_loss(x, y, reduction="none"),
        "cosine_similarity": lambda x1, x2: F.cosine_similarity(x1, x2, dim=-1),
        "cosine_embedding": lambda x1, x2, y, margin: F.cosine_embedding_loss(x1, x2, y, margin=margin, reduction="none"),
        "triplet_margin": lambda a, p, n: F.triplet_margin_loss(a, p, n, reduction="none"),
        "dropout": lambda x, mask, p: x * mask / (1 - p),
        "max_pool": lambda x: torch.max(x, dim=-1).values, "logsumexp": lambda x: torch.logsumexp(x, -1),
        "layer_norm": lambda x, g, b: F.layer_norm(x, (x.shape[-1],), g, b, eps=1e-5),
        "rms_norm": lambda x, g: F.rms_norm(x, (x.shape[-1],), g, eps=1e-6),
        "batch_norm": lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True, eps=1e-5),
        "scaled_dot_product_attention": F.scaled_dot_product_attention,
        "masked_attention": lambda q, k, v, mask: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
    }[name]


@pytest.mark.parametrize("name", NAMES)
def test_forward_and_backward_match_torch_autograd(name):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    args, params, wrt = _spec(name, np.random.default_rng(zlib.crc32(name.encode()) + 1))
    t_args = [torch.tensor(a, requires_grad=(i in wrt)) if np.issubdtype(np.asarray(a).dtype, np.floating)
              else torch.tensor(a) for i, a in enumerate(args)]
    ref = _torch_reference(name, torch, F)(*t_args, **params)
    out = getattr(nn, name)(*args, **params)
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
    grad = np.random.default_rng(2).normal(size=np.shape(out))
    floats = [i for i in wrt if not _indices(args[i])]
    expected = torch.autograd.grad(ref, [t_args[i] for i in floats], grad_outputs=torch.tensor(grad))
    got = _as_tuple(getattr(nn, f"{name}_backward")(*args, grad, **params))
    assert len(got) == len(wrt)
    got = [g for g, i in zip(got, wrt) if not _indices(args[i])]
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


def _indices(a) -> bool:
    return np.issubdtype(np.asarray(a).dtype, np.integer)


@pytest.mark.parametrize("name", ["cross_entropy", "softmax_cross_entropy", "softmax_regression"])
def test_probability_targets_get_torch_gradients(name):
    """Target rows (probabilities) are differentiated as torch.autograd differentiates them."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    args, params, wrt = _spec(name, np.random.default_rng(21))
    rng = np.random.default_rng(22)
    e = np.exp(rng.normal(size=(N, C)))
    args[-1] = e / e.sum(-1, keepdims=True)
    t_args = [torch.tensor(a, requires_grad=True) for a in args]
    if name == "cross_entropy":
        ref = -(t_args[1] * torch.log(t_args[0])).sum(-1)
    elif name == "softmax_cross_entropy":
        ref = F.cross_entropy(t_args[0], t_args[1], reduction="none")
    else:
        ref = F.cross_entropy(F.linear(t_args[1], t_args[0], t_args[2]), t_args[3], reduction="none")
    grad = rng.normal(size=N)
    expected = torch.autograd.grad(ref, t_args, grad_outputs=torch.tensor(grad))
    got = getattr(nn, f"{name}_backward")(*args, grad)
    for g, t in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, t.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


# --- shapes, dtypes, labels ----------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_leading_batch_axes_and_float32(name):
    args, params, wrt = _spec(name, np.random.default_rng(3))
    out = getattr(nn, name)(*args, **params)
    grad = np.random.default_rng(4).normal(size=np.shape(out))
    back = _as_tuple(getattr(nn, f"{name}_backward")(*args, grad, **params))
    # float32 in, float32 out (forward and every gradient), and close to the float64 result
    args32 = [a.astype(np.float32) if np.asarray(a).dtype == np.float64 else a for a in args]
    out32 = getattr(nn, name)(*args32, **params)
    back32 = _as_tuple(getattr(nn, f"{name}_backward")(*args32, grad.astype(np.float32), **params))
    assert np.asarray(out32).dtype == np.float32, name
    np.testing.assert_allclose(out32, out, rtol=2e-4, atol=2e-4)
    for g32, g in zip(back32, back):
        if g is None:
            assert g32 is None
            continue
        assert np.asarray(g32).dtype == np.float32, name
        np.testing.assert_allclose(g32, g, rtol=2e-3, atol=2e-3)
    # samples split over two leading axes (N = 5 → (1, 5)): the same numbers, shapes kept
    batched = [np.asarray(a)[None] if _is_batched(name, i) else a for i, a in enumerate(args)]
    out_b = getattr(nn, name)(*batched, **params)
    assert np.shape(out_b) == (1,) + np.shape(out)
    np.testing.assert_allclose(np.asarray(out_b)[0], out, rtol=1e-14)
    back_b = _as_tuple(getattr(nn, f"{name}_backward")(*batched, np.asarray(grad)[None], **params))
    for gb, g, i in zip(back_b, back, wrt):
        if g is None:
            continue
        assert np.shape(gb) == np.shape(batched[i])
        np.testing.assert_allclose(gb, np.asarray(g)[None] if _is_batched(name, i) else g, rtol=1e-12, atol=1e-14)


def _is_batched(name, i):
    """Whether input i carries the samples (the others are parameters shared by the batch)."""
    shared = {"maxout": {1, 2, 3, 4}, "dense": {0, 2}, "sq_norm_linear": {0},
              "logistic_regression": {0, 2}, "softmax_regression": {0, 2}, "mlp": {0, 1, 2, 3},
              "layer_norm": {1, 2}, "rms_norm": {1}, "batch_norm": {1, 2},
              "scaled_dot_product_attention": {1, 2}, "masked_attention": {1, 2}}
    return i not in shared.get(name, set())


def test_class_indices_are_zero_based_and_match_one_hot_rows():
    z = RNG.normal(size=(N, C))
    idx = np.array([0, 3, 1, 2, 3])
    onehot = np.eye(C)[idx]
    for name in ("softmax_cross_entropy", "multiclass_svm"):
        np.testing.assert_allclose(getattr(nn, name)(z, idx), getattr(nn, name)(z, onehot), rtol=1e-15)
    a = nn.softmax(z)
    np.testing.assert_allclose(nn.cross_entropy(a, idx), -np.log(a[np.arange(N), idx]), rtol=1e-14)
    grad_z, grad_y = nn.softmax_cross_entropy_backward(z, idx, np.ones(N))
    np.testing.assert_allclose(grad_z, a - onehot, atol=1e-15)
    assert grad_y is None  # class indices are not differentiable
    with pytest.raises(ValueError, match="0-based"):
        nn.softmax_cross_entropy(z, np.array([0, 1, 2, 3, 4]))
    with pytest.raises(ValueError, match="class indices .* or rows of 4"):
        nn.softmax_cross_entropy(z, np.ones((N, 3)))


def test_pytorch_defaults_and_kinks():
    x = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(nn.leaky_relu(x), [-0.02, 0.0, 3.0])
    np.testing.assert_allclose(nn.elu(x), [np.expm1(-2.0), 0.0, 3.0])
    np.testing.assert_array_equal(nn.relu_backward(x, np.ones(3)), [0.0, 0.0, 1.0])  # ReLU'(0) = 0
    np.testing.assert_allclose(nn.leaky_relu_backward(x, np.ones(3)), [0.01, 0.01, 1.0])
    np.testing.assert_allclose(nn.elu_backward(x, np.ones(3)), [np.exp(-2.0), 1.0, 1.0])


# --- stability over the float64 range -------------------------------------------------------------
GRID = np.array([-1000.0, -745.0, -710.0, -40.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 40.0, 710.0, 745.0, 1000.0])


def _mp(fn, v):
    with mpmath.workdps(60 + int(abs(v) / 2.3)):
        return float(fn(mpmath.mpf(v)))


MP = {
    "sigmoid": (lambda v: 1 / (1 + mpmath.exp(-v)), lambda v: mpmath.exp(-abs(v)) / (1 + mpmath.exp(-abs(v))) ** 2),
    "tanh": (mpmath.tanh, lambda v: 1 / mpmath.cosh(v) ** 2),
    "softplus": (lambda v: mpmath.log(1 + mpmath.exp(v)), lambda v: 1 / (1 + mpmath.exp(-v))),
    "elu": (lambda v: v if v > 0 else mpmath.expm1(v), lambda v: 1 if v > 0 else mpmath.exp(v)),
}


@pytest.mark.parametrize("name", list(MP))
def test_elementwise_blocks_are_accurate_over_the_float64_range(name):
    forward, derivative = MP[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            out = getattr(nn, name)(GRID)
            back = getattr(nn, f"{name}_backward")(GRID, np.ones_like(GRID))
    for got, ref_fn in ((out, forward), (back, derivative)):
        for v, g in zip(GRID, got):
            r = _mp(ref_fn, v)
            assert (g == 0) if abs(r) < 5e-324 else abs(g - r) <= 1e-13 * abs(r), (name, v, g, r)


def test_losses_on_logits_stay_finite_at_extreme_logits():
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        z = np.array([[1000.0, 0.0, -1000.0]])
        assert nn.softmax_cross_entropy(z, np.array([1]))[0] == pytest.approx(1000.0)
        np.testing.assert_allclose(nn.softmax_cross_entropy_backward(z, np.array([1]), np.ones(1))[0], [[1.0, -1.0, 0.0]])
        np.testing.assert_allclose(nn.log_softmax(z), [[0.0, -1000.0, -2000.0]])
        assert nn.log_avg_pool(z, beta=1.0)[0] == pytest.approx(1000.0 - np.log(3.0), rel=1e-15)
        out = nn.bce_with_logits(GRID, np.ones_like(GRID))
        assert np.all(np.isfinite(out)) and out[0] == pytest.approx(1000.0)
        g, g_y = nn.bce_with_logits_backward(GRID, np.ones_like(GRID), np.ones_like(GRID))
        np.testing.assert_array_equal(g_y, -GRID)  # ∂/∂y = −z, as torch
        assert g[0] == -1.0 and g[-1] == 0.0 and g[9] == pytest.approx(-np.exp(-40.0) / (1 + np.exp(-40.0)), rel=1e-14)


# --- the Array API ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_array_api_strict_inputs_give_the_numpy_results(name):
    xp = pytest.importorskip("array_api_strict")
    pytest.importorskip("array_api_compat")
    args, params, wrt = _spec(name, np.random.default_rng(5))
    out = getattr(nn, name)(*args, **params)
    grad = np.random.default_rng(6).normal(size=np.shape(out))
    back = _as_tuple(getattr(nn, f"{name}_backward")(*args, grad, **params))
    x_args = [xp.asarray(np.asarray(a)) for a in args]
    x_out = getattr(nn, name)(*x_args, **params)
    x_back = _as_tuple(getattr(nn, f"{name}_backward")(*x_args, xp.asarray(grad), **params))
    assert type(x_out).__module__.startswith("array_api_strict")
    np.testing.assert_allclose(np.asarray(x_out), out, rtol=1e-14, atol=1e-15)
    for xg, g in zip(x_back, back):
        if g is None:
            assert xg is None
            continue
        assert type(xg).__module__.startswith("array_api_strict")
        np.testing.assert_allclose(np.asarray(xg), g, rtol=1e-14, atol=1e-15)


def _library(name):
    """(module, to_array, to_numpy) for a third-party array library, or a skip."""
    pytest.importorskip("array_api_compat")
    if name == "torch":
        torch = pytest.importorskip("torch")
        return torch, torch.tensor, lambda t: t.numpy()
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax, jax.numpy.asarray, np.asarray


@pytest.mark.parametrize("library", ["torch", "jax"])
def test_other_array_libraries_run_every_block(library):
    """The same functions on PyTorch tensors and JAX arrays (where installed): the NumPy results,
    in the library's own array type."""
    module, to_array, to_numpy = _library(library)
    for name in NAMES:
        args, params, wrt = _spec(name, np.random.default_rng(8))
        out = getattr(nn, name)(*args, **params)
        grad = np.random.default_rng(9).normal(size=np.shape(out))
        back = _as_tuple(getattr(nn, f"{name}_backward")(*args, grad, **params))
        l_args = [to_array(np.asarray(a)) for a in args]
        l_out = getattr(nn, name)(*l_args, **params)
        l_back = _as_tuple(getattr(nn, f"{name}_backward")(*l_args, to_array(grad), **params))
        assert type(l_out).__module__.split(".")[0] in (library, "jaxlib"), (name, type(l_out))
        np.testing.assert_allclose(to_numpy(l_out), out, rtol=1e-13, atol=1e-15, err_msg=name)
        for lg, g in zip(l_back, back):
            if g is None:
                assert lg is None, name
                continue
            np.testing.assert_allclose(to_numpy(lg), g, rtol=1e-13, atol=1e-15, err_msg=name)


# --- property: the VJP of every smooth elementwise block is grad · f'(x), f' by mpmath --------
MP_ELEMENTWISE = {  # name: (f as an mpmath function, params)
    "sigmoid": (lambda v: 1 / (1 + mpmath.exp(-v)), {}),
    "tanh": (mpmath.tanh, {}),
    "softplus": (lambda v: mpmath.log(1 + mpmath.exp(v)), {}),
    "leaky_relu": (lambda v: v if v > 0 else 0.3 * v, {"alpha": 0.3}),
    "elu": (lambda v: v if v > 0 else 0.5 * mpmath.expm1(v), {"alpha": 0.5}),
}


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(MP_ELEMENTWISE)),
       v=st.floats(-60, 60).filter(lambda v: abs(v) > 1e-6),
       g=st.floats(-10, 10).filter(lambda g: abs(g) > 1e-3))
def test_elementwise_vjp_matches_mpmath_derivative(name, v, g):
    f, params = MP_ELEMENTWISE[name]
    with mpmath.workdps(40 + int(abs(v))):  # f' ~ e^{-2|v|} next to f ~ 1: digits for the difference
        expected = g * float(mpmath.diff(f, mpmath.mpf(v)))
    got = float(getattr(nn, f"{name}_backward")(np.array([v]), np.array([g]), **params)[0])
    assert got == pytest.approx(expected, rel=1e-13, abs=1e-300)


# --- every block with a scalar (or two-class) slice on the float64 grid, against mpmath -------------
def _sig(v):
    return 1 / (1 + mpmath.exp(-v))


def _softplus(v):
    return mpmath.log1p(mpmath.exp(v)) if v < 0 else v + mpmath.log1p(mpmath.exp(-v))


# name: (call(v) → forward, backward as arrays; reference(v) → (forward, backward) in mpmath)
SLICES = {
    "relu": (lambda v: (nn.relu(v), nn.relu_backward(v, 1.0)), lambda v: (max(v, 0), 1 if v > 0 else 0)),
    "leaky_relu": (lambda v: (nn.leaky_relu(v), nn.leaky_relu_backward(v, 1.0)),
                   lambda v: (v if v > 0 else mpmath.mpf("0.01") * v, 1 if v > 0 else mpmath.mpf("0.01"))),
    "hinge t=1": (lambda v: (nn.hinge(v, 1.0), nn.hinge_backward(v, 1.0, 1.0)), lambda v: (max(1 - v, 0), -1 if v < 1 else 0)),
    "bce_with_logits y=1": (lambda v: (nn.bce_with_logits(v, 1.0), nn.bce_with_logits_backward(v, 1.0, 1.0)[0]),
                            lambda v: (_softplus(-v), -_sig(-v))),
    "bce_with_logits y=0": (lambda v: (nn.bce_with_logits(v, 0.0), nn.bce_with_logits_backward(v, 0.0, 1.0)[0]),
                            lambda v: (_softplus(v), _sig(v))),
    "logistic_regression y=1": (lambda v: (nn.logistic_regression(np.ones(1), np.full((1, 1), v), 0.0, np.ones(1))[0],
                                           nn.logistic_regression_backward(np.ones(1), np.full((1, 1), v), 0.0, np.ones(1), np.ones(1))[1]),
                                lambda v: (_softplus(-v), -_sig(-v))),
    "softmax_cross_entropy y=0": (lambda v: (nn.softmax_cross_entropy(np.array([[v, 0.0]]), np.array([0]))[0],
                                             nn.softmax_cross_entropy_backward(np.array([[v, 0.0]]), np.array([0]), np.ones(1))[0][0, 0]),
                                  lambda v: (_softplus(-v), -_sig(-v))),
    "softmax_cross_entropy y=1": (lambda v: (nn.softmax_cross_entropy(np.array([[v, 0.0]]), np.array([1]))[0],
                                             nn.softmax_cross_entropy_backward(np.array([[v, 0.0]]), np.array([1]), np.ones(1))[0][0, 0]),
                                  lambda v: (_softplus(v), _sig(v))),
    "softmax": (lambda v: (nn.softmax(np.array([v, 0.0]))[0], nn.softmax_backward(np.array([v, 0.0]), np.array([1.0, 0.0]))[0]),
                lambda v: (_sig(v), _sig(v) * _sig(-v))),
    "log_softmax": (lambda v: (nn.log_softmax(np.array([v, 0.0]))[0], nn.log_softmax_backward(np.array([v, 0.0]), np.array([1.0, 0.0]))[0]),
                    lambda v: (-_softplus(-v), _sig(-v))),
    "log_avg_pool": (lambda v: (nn.log_avg_pool(np.array([v, 0.0]), beta=1.0), nn.log_avg_pool_backward(np.array([v, 0.0]), 1.0, beta=1.0)[0]),
                     lambda v: (_softplus(v) - mpmath.log(2), _sig(v))),
}


@pytest.mark.parametrize("name", list(SLICES))
def test_every_block_slice_is_accurate_over_the_float64_range(name):
    """Forward and backward within 1e-13 of 60+-digit mpmath (or correctly 0) on ±1e-8, 0, ±40,
    ±710, ±745, ±1000, with floating-point warnings as errors (kinks skipped: their conventions
    are tested above)."""
    call, reference = SLICES[name]
    for v in GRID:
        if v == 0 and name in ("relu", "leaky_relu"):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with np.errstate(over="raise", divide="raise", invalid="raise"):
                got = [float(np.asarray(g).reshape(-1)[0]) for g in call(np.float64(v) if "(" not in name else v)]
        with mpmath.workdps(60 + int(abs(v) / 2.3)):
            ref = [float(r) for r in reference(mpmath.mpf(v))]
        for g, r, what in zip(got, ref, ("forward", "backward")):
            assert np.isfinite(g), (name, v, what)
            assert (g == 0) if abs(r) < 5e-324 else abs(g - r) <= 1e-13 * abs(r), (name, what, v, g, r)


# --- ±inf gives the limits, NaN stays NaN ------------------------------------------------------------
BIG = 1e300  # a stand-in for ±inf where torch's (shifted) results are already the limits


def test_rows_holding_inf_give_the_limits_of_torch_at_huge_logits():
    """softmax([inf, 0]) = [1, 0]: every row block at ±inf equals torch at ±1e300 (where the
    shifted forms have reached their limits), with no floating-point warning; a row of −inf has no
    limit (NaN, as torch)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    inf = np.inf
    z = np.array([[inf, 0.0, 1.0], [inf, inf, 0.0], [-inf, 0.0, 1.0], [2.0, -inf, -inf], [1.0, 2.0, 3.0]])
    zt = torch.tensor(np.clip(z, -BIG, BIG))
    g = np.random.default_rng(31).normal(size=z.shape)
    idx = np.array([0, 2, 1, 0, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            a = nn.softmax(z)
            vjp = nn.softmax_backward(z, g)
            log_vjp = nn.log_softmax_backward(z, g)
            ce_grad, _ = nn.softmax_cross_entropy_backward(z, idx, np.ones(5))
            ce = nn.softmax_cross_entropy(z, idx)
            logs = nn.log_softmax(z)
    np.testing.assert_allclose(a, torch.softmax(zt, -1).numpy(), rtol=1e-15, atol=0)
    zr = zt.clone().requires_grad_(True)
    ref_vjp, = torch.autograd.grad(torch.softmax(zr, -1), zr, torch.tensor(g))
    np.testing.assert_allclose(vjp, ref_vjp.numpy(), rtol=1e-14, atol=1e-300)
    ref_log_vjp, = torch.autograd.grad(torch.log_softmax(zr, -1), zr, torch.tensor(g))
    np.testing.assert_allclose(log_vjp, ref_log_vjp.numpy(), rtol=1e-14, atol=1e-300)
    ref_ce = F.cross_entropy(zr, torch.tensor(idx), reduction="none")
    ref_ce_grad, = torch.autograd.grad(ref_ce.sum(), zr)
    np.testing.assert_allclose(ce_grad, ref_ce_grad.numpy(), rtol=1e-14, atol=1e-300)
    # infinite losses are inf where torch's are 1e300; finite ones equal
    finite = ref_ce.detach().numpy() < 1e299
    np.testing.assert_allclose(ce[finite], ref_ce.detach().numpy()[finite], rtol=1e-14)
    assert np.all(np.isposinf(ce[~finite])) and (~finite).sum() == 1  # row 3: its class sits at −inf
    assert np.array_equal(np.isneginf(logs), np.isinf(z) & ~np.isposinf(z) | (np.isposinf(z).any(-1, keepdims=True) & ~np.isposinf(z)))
    for f in (nn.softmax, nn.log_softmax):
        assert np.all(np.isnan(f(np.array([[-inf, -inf], [np.nan, 0.0]]))))


def test_bce_with_logits_at_inf_gives_the_limits():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    z = np.array([np.inf, np.inf, -np.inf, -np.inf, np.inf, -np.inf])
    y = np.array([0.3, 1.0, 0.3, 0.0, 0.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            loss = nn.bce_with_logits(z, y)
            g_z, g_y = nn.bce_with_logits_backward(z, y, np.ones(6))
    zt = torch.tensor(np.clip(z, -BIG, BIG), requires_grad=True)
    ref = F.binary_cross_entropy_with_logits(zt, torch.tensor(y), reduction="none")
    ref_g, = torch.autograd.grad(ref.sum(), zt)
    np.testing.assert_array_equal(loss, np.where(ref.detach().numpy() > 1e299, np.inf, ref.detach().numpy()))
    np.testing.assert_array_equal(g_z, ref_g.numpy())  # σ(±inf) − y = 1 − y or −y
    np.testing.assert_array_equal(g_y, -z)


def test_nan_stays_nan_through_the_backward():
    x = np.array([np.nan, -1.0, 0.0, 2.0])
    for name in ("relu", "sigmoid", "tanh", "softplus"):  # (blocks printed as where(x > 0, …) map NaN to a branch)
        back = getattr(nn, f"{name}_backward")(x, np.ones(4))
        assert np.isnan(back[0]) and np.all(np.isfinite(back[1:])), (name, back)
    np.testing.assert_array_equal(nn.relu_backward(x, np.ones(4))[1:], [0.0, 0.0, 1.0])
    g_z, g_y = nn.bce_with_logits_backward(np.array([np.nan, 1.0]), np.array([1.0, np.nan]), np.ones(2))
    assert np.all(np.isnan(g_z)) and np.isnan(g_y[0])
    assert np.all(np.isnan(nn.softmax_backward(np.array([[np.nan, 0.0]]), np.ones((1, 2)))))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_sigmoid_minus_in_blocks_matches_mpmath(dtype):
    """(σ(u) − y)·g over three NumPy blocks of 2¹⁴ entries, one holding u < −700 (the e^{−|u|} form),
    one a NaN, one ±inf: within a few ulps of 40-digit mpmath where y is 0 or 1 (no cancellation
    allowed), within float rounding of y elsewhere."""
    from symgrad.catalog.stable import sigmoid_minus_np

    rng = np.random.default_rng(41)
    n = 3 * 2 ** 14 + 17
    u = (rng.normal(size=n) * 30).astype(dtype)
    y = rng.choice([0.0, 1.0, 0.25, 0.9], n).astype(dtype)
    g = rng.normal(size=n).astype(dtype)
    u[5], u[2 ** 14 + 3], u[2 ** 15 + 1], u[2 ** 15 + 2] = -720.0 if dtype == np.float64 else -90.0, np.nan, np.inf, -np.inf
    got = sigmoid_minus_np(u, y, scale=g)
    assert got.dtype == dtype and got.shape == u.shape
    assert np.isnan(got[2 ** 14 + 3]) and got[2 ** 15 + 1] == (1 - y[2 ** 15 + 1]) * g[2 ** 15 + 1]
    assert got[2 ** 15 + 2] == -y[2 ** 15 + 2] * g[2 ** 15 + 2]
    eps = np.finfo(dtype).eps
    for i in list(rng.choice(n, 300, replace=False)) + [5, 2 ** 14, 2 ** 15]:
        if not np.isfinite(u[i]):
            continue
        with mpmath.workdps(40 + int(abs(float(u[i])) / 2.3)):
            v = mpmath.mpf(float(u[i]))
            ref = float((1 / (1 + mpmath.exp(-v)) - mpmath.mpf(float(y[i]))) * mpmath.mpf(float(g[i])))
        tol = 8 * eps * abs(ref) if y[i] in (0.0, 1.0) else 8 * eps * abs(float(g[i]))
        assert abs(float(got[i]) - ref) <= max(tol, np.finfo(dtype).tiny), (i, u[i], y[i], got[i], ref)
    strided = sigmoid_minus_np(u[:400:2], y[:400:2]) * g[:400:2]  # not contiguous: the e^{−|u|} form throughout
    np.testing.assert_allclose(strided, got[:400:2], rtol=8 * eps, atol=np.finfo(dtype).tiny)


def test_shape_errors_name_the_argument_and_the_shape():
    """A grad or input of the wrong shape is refused, never broadcast into a wrong gradient."""
    z = np.zeros((5, 4))
    with pytest.raises(ValueError, match=r"grad: shape \(5, 3\), expected that of z, \(5, 4\)"):
        nn.softmax_backward(z, np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"grad: shape \(6,\): 6 samples, expected 5 \(as z, shape \(5, 4\)\)"):
        nn.softmax_cross_entropy_backward(z, np.zeros(5, dtype=int), np.ones(6))
    with pytest.raises(ValueError, match=r"x: shape \(5, 2\): axis -1 should be D = 3 \(axis -1 of W"):
        nn.dense(np.ones((4, 3)), np.ones((5, 2)), np.ones(4))
    with pytest.raises(ValueError, match=r"b: shape \(3,\): its length should be H = 4"):
        nn.dense_backward(np.ones((4, 3)), np.ones((5, 3)), np.ones(3), np.ones((5, 4)))
    with pytest.raises(ValueError, match=r"grad: shape \(3, 1\), expected \(3,\), the output's \(z \(3,\), y \(3,\) broadcast\)"):
        nn.bce_with_logits_backward(np.ones(3), np.ones(3), np.ones((3, 1)))  # would broadcast to (3, 3)
    with pytest.raises(ValueError, match=r"do not broadcast together: z \(3,\), y \(4,\)"):
        nn.bce_with_logits(np.ones(3), np.ones(4))
    # a number is the same upstream gradient everywhere; a broadcast input gets the summed gradient
    g_z, g_y = nn.bce_with_logits_backward(np.array([1.0, -2.0]), 0.5, 1.0)
    np.testing.assert_allclose(g_z, 1 / (1 + np.exp(-np.array([1.0, -2.0]))) - 0.5, rtol=1e-15)
    assert np.shape(g_y) == () and g_y == pytest.approx(-(1.0 - 2.0))  # Σ −z over the broadcast axis


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_row_vjps_match_40_digit_mpmath_where_torch_loses_digits(scale):
    """softmax / log-softmax backward with an NLL upstream (grad = −one-hot) and the CE gradient at
    ordinary and ×30 logits, every entry within 1e-13 (relative, or of the row's largest entry for
    the inherent cancellation in G_j − a_j ΣG) of 40-digit mpmath: the in-place fast path (spread
    rows) and the careful one (peaked rows, a_max ≈ 1) both."""
    rng = np.random.default_rng(51)
    z = rng.normal(size=(40, 6)) * scale
    idx = rng.integers(0, 6, 40)
    g = -np.eye(6)[idx]
    got = {"log_softmax": nn.log_softmax_backward(z, g), "softmax": nn.softmax_backward(z, g),
           "ce": nn.softmax_cross_entropy_backward(z, idx, np.ones(40))[0]}
    with mpmath.workdps(40):
        for r in range(40):
            e = [mpmath.exp(mpmath.mpf(float(v))) for v in z[r]]
            a = [v / sum(e) for v in e]
            gs = [mpmath.mpf(float(v)) for v in g[r]]
            dot = sum(x * y for x, y in zip(gs, a))
            want = {"log_softmax": [gj - aj * sum(gs) for gj, aj in zip(gs, a)],
                    "softmax": [aj * (gj - dot) for gj, aj in zip(gs, a)],
                    "ce": [aj - (1 if j == idx[r] else 0) for j, aj in enumerate(a)]}
            for name, ref in want.items():
                ref = [float(v) for v in ref]
                for j, v in enumerate(ref):
                    assert abs(got[name][r, j] - v) <= 1e-13 * abs(v) + 1e-300, (name, scale, r, j, got[name][r, j], v)
