"""check_grad: correct gradients pass, every kind of planted bug is caught and diagnosed."""

import numpy as np
import pytest

from symgrad.checks.gradcheck import check_grad
from symgrad.testing import assert_grad

RNG = np.random.default_rng(0)
N, D, H, O = 16, 12, 8, 3
X, Y = RNG.normal(size=(N, D)), RNG.normal(size=(N, O))
W1, W2 = RNG.normal(size=(D, H)) * 0.3, RNG.normal(size=(H, O)) * 0.3


def loss(w1, w2, x=X, y=Y):
    """The seeds' 20-line network: h = σ(x w1), y_pred = h w2, L = Σ (y_pred − y)²."""
    h = 1 / (1 + np.exp(-x.dot(w1)))
    return np.square(h.dot(w2) - y).sum()


def grad(w1, w2, bug=None, x=X, y=Y):
    h = 1 / (1 + np.exp(-x.dot(w1)))
    grad_y_pred = 2.0 * (h.dot(w2) - y)
    if bug == "factor":
        grad_y_pred = grad_y_pred / 2  # the missing 2
    grad_w2 = h.T.dot(grad_y_pred)
    grad_h = grad_y_pred.dot(w2.T)
    grad_w1 = x.T.dot(grad_h * h * (1 - h))
    if bug == "sign":
        grad_w2 = -grad_w2
    if bug == "missing":
        grad_w1 = x.T.dot(grad_h * h)  # forgot the (1 − h) factor
    if bug == "entry":
        grad_w1 = grad_w1.copy()
        grad_w1[3, 4] *= 1.001  # a 0.1 % error in one entry
    if bug == "mean":
        grad_w1, grad_w2 = grad_w1 / len(x), grad_w2 / len(x)
    return grad_w1, grad_w2


def test_the_correct_network_gradient_passes():
    report = check_grad(loss, grad, W1, W2)
    assert report.ok and report.max_rel_error < 1e-6 and report.checked == W1.size + W2.size


@pytest.mark.parametrize("bug,expected", [
    ("factor", "constant factor 1/2"),
    ("mean", "1/N with N = 16"),
    ("sign", "sign is flipped"),
    ("missing", "missing or extra term"),
    ("entry", "single wrong entry at (3, 4)"),
])
def test_planted_bugs_are_caught_and_diagnosed(bug, expected):
    report = check_grad(loss, lambda a, b: grad(a, b, bug), W1, W2)
    assert not report.ok
    assert any(expected in d for d in report.diagnosis), report.diagnosis


def test_a_transposed_gradient_is_diagnosed():
    A = RNG.normal(size=(4, 4))
    f = lambda W: np.sum((W @ A) * W)  # noqa: E731  ∂/∂W = W Aᵀ + W A
    g = lambda W: (W @ A.T + W @ A).T  # noqa: E731  transposed by mistake
    W = RNG.normal(size=(4, 4))
    report = check_grad(f, g, W)
    assert not report.ok and any("transposed" in d for d in report.diagnosis)


def test_a_50_percent_error_on_a_tiny_entry_is_caught():
    c = np.array([1.0, 2.0, 4e-6, 3.0])  # one gradient entry of size ~4e-6 next to entries of size ~1
    f = lambda x: 0.5 * np.sum(c * x ** 2)  # noqa: E731
    x0 = np.ones(4)
    assert check_grad(f, lambda x: c * x, x0).ok
    bad = lambda x: c * x * np.array([1, 1, 1.5, 1])  # noqa: E731
    report = check_grad(f, bad, x0)
    assert not report.ok and report.failures[0].index == (2,)


def test_relu_network_near_kinks_raises_no_false_alarm():
    x = np.array([[1.0, -1.0], [0.5, 2.0], [-1.0, 1.0]])
    w = np.array([[1.0, 1.0], [1.0, -1.0]])  # x @ w has exact zeros: kinks of the ReLU
    f = lambda w: np.sum(np.maximum(x @ w, 0) ** 2 + np.maximum(x @ w, 0))  # noqa: E731

    def g(w):
        z = x @ w
        return x.T @ ((2 * np.maximum(z, 0) + 1) * (z > 0))

    report = check_grad(f, g, w)
    assert report.ok, str(report)
    assert report.kinks  # and it says which coordinates were judged one-sidedly
    assert check_grad(f, lambda w: x.T @ ((2 * np.maximum(x @ w, 0) + 1) * (x @ w >= 0)), w).ok  # other convention
    wrong = lambda w: x.T @ ((2 * np.maximum(x @ w, 0)) * (x @ w > 0))  # noqa: E731  the "+1" term is missing
    assert not check_grad(f, wrong, w).ok


def test_float32_gradients_of_correct_code_pass():
    w1, w2 = W1.astype(np.float32), W2.astype(np.float32)
    x32, y32 = X.astype(np.float32), Y.astype(np.float32)
    report = check_grad(lambda a, b: loss(a, b, x32, y32), lambda a, b: grad(a, b, None, x32, y32), w1, w2)
    assert report.ok, str(report)
    assert report.rtol == 1e-3


def test_functions_that_compute_in_float32_internally_pass():
    x32 = X.astype(np.float32)
    f = lambda w: np.float32(np.square(np.tanh(x32 @ w.astype(np.float32))).sum())  # noqa: E731
    g = lambda w: (x32.T @ (2 * np.tanh(x32 @ w) * (1 - np.tanh(x32 @ w) ** 2))).astype(np.float32)  # noqa: E731
    w0 = (W1 * 0.5).astype(np.float32)
    report = check_grad(f, g, w0)
    assert report.ok, str(report)
    wrong = lambda w: g(w) * np.float32(1.1)  # noqa: E731
    assert not check_grad(f, wrong, w0).ok


def test_fast_mode_locates_a_single_wrong_entry_in_a_large_input():
    big = RNG.normal(size=(60, 80))
    c = RNG.uniform(0.5, 2.0, size=big.shape)
    f = lambda w: np.sum(c * np.sin(w))  # noqa: E731

    def bad(w):
        g = c * np.cos(w)
        g[17, 33] *= 1.01
        return g

    report = check_grad(f, bad, big)
    assert report.mode.startswith("random directions") and not report.ok
    assert [c.index for c in report.failures] == [(17, 33)]
    assert check_grad(f, lambda w: c * np.cos(w), big).ok


def test_assert_grad_and_the_fixture(grad_check):
    assert_grad(loss, grad, W1, W2)
    grad_check(loss, grad, W1, W2)
    with pytest.raises(AssertionError, match="constant factor 1/2"):
        assert_grad(loss, lambda a, b: grad(a, b, "factor"), W1, W2)


def test_bad_usage_is_explained():
    with pytest.raises(ValueError, match="one per input"):
        check_grad(loss, lambda a, b: grad(a, b)[0], W1, W2)
    with pytest.raises(ValueError, match="shape"):
        check_grad(loss, lambda a, b: (a.T, b), W1, W2)
    with pytest.raises(ValueError, match="scalar"):
        check_grad(lambda a: a * 2, lambda a: 2 * np.ones_like(a), np.ones(3))


# --- non-finite gradients, None, odd returns: never "passed" ----------------------------------------------
def _tanh_case():
    x = RNG.normal(size=(3, 4))
    return (lambda w: np.sum(np.tanh(x @ w))), (lambda w: x.T @ (1 - np.tanh(x @ w) ** 2)), RNG.normal(size=(4, 5))


@pytest.mark.parametrize("poison", ["one nan", "one inf", "one -inf", "all nan"])
@pytest.mark.parametrize("fast", [False, True])
def test_a_non_finite_gradient_entry_fails(poison, fast):
    f, g, w = _tanh_case()

    def bad(w):
        out = g(w).copy()
        if poison == "all nan":
            out[:] = np.nan
        else:
            out[1, 1] = {"one nan": np.nan, "one inf": np.inf, "one -inf": -np.inf}[poison]
        return out

    assert check_grad(f, g, w, fast=fast).ok
    report = check_grad(f, bad, w, fast=fast)
    assert not report.ok and report.max_rel_error == np.inf, str(report)
    where = "(0, 0)" if poison == "all nan" else "(1, 1)"
    assert where in str(report) and any("not finite" in d for d in report.diagnosis), str(report)
    assert "passed" not in str(report)


def test_none_for_a_gradient_is_an_error():
    f = lambda a, b: np.sum(a * b)  # noqa: E731
    with pytest.raises(ValueError, match="grad returned None for input 1"):
        check_grad(f, lambda a, b: (b, None), np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="not numeric"):
        check_grad(f, lambda a, b: (b, {"b": a}), np.ones(3), np.ones(3))


@pytest.mark.parametrize("value", [None, (1.0, 2.0), {"loss": 1.0}])
def test_f_must_return_a_scalar_loss(value):
    with pytest.raises(ValueError, match="scalar loss"):
        check_grad(lambda a: value, lambda a: a, np.ones(3))


def test_a_tiny_common_factor_and_a_zero_gradient_are_diagnosed_as_such():
    report = check_grad(loss, lambda a, b: tuple(1.0001 * g for g in grad(a, b)), W1, W2)
    assert not report.ok and all("constant factor 1.0001" in d for d in report.diagnosis), report.diagnosis
    zero = check_grad(loss, lambda a, b: (np.zeros_like(a), grad(a, b)[1]), W1, W2)
    assert not zero.ok and len(zero.diagnosis) == 1, zero.diagnosis
    assert "0 at every entry" in zero.diagnosis[0] and "1/N" not in zero.diagnosis[0]


def test_the_complex_step_resolves_a_slip_of_one_in_ten_million():
    """Where f takes complex input the numbers are exact to rounding: a single entry off by 1e-7 relative
    fails (central differences alone resolve 1e-6), and the report says what it resolved."""
    f, g, w = _tanh_case()
    report = check_grad(f, g, w)
    assert report.ok and report.resolution < 1e-8 and "resolution" in str(report), str(report)

    def slipped(w):
        out = g(w).copy()
        out[2, 3] *= 1 + 1e-7
        return out

    bad = check_grad(f, slipped, w)
    assert not bad.ok and [c.index for c in bad.failures] == [(2, 3)], str(bad)
    real_only = check_grad(f, slipped, w, complex_step=False)  # central differences: 1e-6, and it says so
    assert real_only.ok and real_only.resolution > 1e-7 and "resolution" in str(real_only), str(real_only)


def test_a_non_holomorphic_term_never_tightens_the_tolerance():
    """np.abs of a complex number is its modulus (no derivative): the complex step is wrong by the |·| term
    and must not be taken as exact, so the right gradient still passes."""
    x = RNG.normal(size=(3, 4))
    f = lambda w: np.sum(np.tanh(x @ w)) + 1e-6 * np.sum(np.abs(w - 3))  # noqa: E731
    g = lambda w: x.T @ (1 - np.tanh(x @ w) ** 2) + 1e-6 * np.sign(w - 3)  # noqa: E731
    assert check_grad(f, g, RNG.normal(size=(4, 5))).ok
