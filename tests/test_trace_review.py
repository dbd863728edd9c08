"""symgrad.trace under a new user's review: no placeholder size, aliased in-place update, label array or
argument named like a size may give wrong numbers; each either matches central finite differences of
the user's own NumPy forward or is a TraceError naming the call and the line."""

from __future__ import annotations

import re

import numpy as np
import pytest

import symgrad as sg
import symgrad.nn  # noqa: F401 - sg.nn
from symgrad.errors import TraceError
from tests.test_tracing import finite_differences  # the one oracle of the trace tests


def arrays(rng, **shapes) -> dict:
    return {k: rng.uniform(-1, 1, size=s) for k, s in shapes.items()}


# --- in-place updates of an aliased stand-in --------------------------------------------------------
def alias_add(x, W):
    z = x @ W
    a = z
    z += 1.0
    return np.sum(a ** 2)


def alias_scale(x, W):
    h = np.tanh(x @ W)
    out = h
    out *= 3.0
    return np.sum(h)


def alias_list(x, W):
    z = x @ W
    zs = [z]
    z -= 0.5
    return np.sum(zs[0] ** 2)


@pytest.mark.parametrize("forward, op", [(alias_add, "+="), (alias_scale, "*="), (alias_list, "-=")])
def test_an_in_place_update_is_refused_with_its_line(forward, op):
    escaped = re.escape(op)
    with pytest.raises(TraceError, match=rf"`{escaped}`.*test_trace_review.py:\d+: .*{escaped}.*z = z"):
        sg.trace(forward, x=("N", "D"), W=("D", "H"))


def test_the_in_place_refusal_is_not_a_wrong_gradient():
    """What the refusal prevents: the NumPy forward's gradient differs from the rebinding's."""
    rng = np.random.default_rng(0)
    args = arrays(rng, x=(3, 4), W=(4, 5))
    rebound = 2 * args["x"].T @ (args["x"] @ args["W"])  # d/dW Σ (xW)² : what tracing z += 1 as a rebinding gave
    assert not np.allclose(finite_differences(alias_add, args, "W"), rebound, rtol=1e-3)


def test_blocks_with_in_place_bodies_still_trace():
    """symgrad.nn bodies update their own temporaries in place (xhat *= gamma): not the user's arrays."""
    def forward(x, g, b):
        return np.sum(sg.nn.layer_norm(x, g, b) ** 2)

    rng = np.random.default_rng(1)
    args = {**arrays(rng, x=(3, 4)), "g": rng.uniform(0.5, 1.5, 4), "b": rng.uniform(-1, 1, 4)}
    traced = sg.trace(forward, x=("N", "D"), g=("D",), b=("D",))
    d = sg.derive(traced, ["x"])
    got = d.compile()(**traced.values(**args))
    np.testing.assert_allclose(got, finite_differences(forward, args, "x"), rtol=1e-5, atol=1e-7)


# --- an argument named like a size; a size as wrt ---------------------------------------------------
def test_an_argument_named_like_a_size_is_refused():
    def forward(N, D):
        return np.exp(N @ D).sum() / N.shape[0]

    with pytest.raises(ValueError, match="argument N has the name of the size 'N'.*rename the size"):
        sg.trace(forward, N=("N", "D"), D=("D", "N"))


def test_renamed_sizes_give_the_gradient_of_both_arguments():
    def forward(N, D):
        return np.exp(N @ D).sum() / N.shape[0]

    rng = np.random.default_rng(2)
    args = {"N": rng.uniform(-1, 1, (3, 4)), "D": rng.uniform(-1, 1, (4, 3))}
    traced = sg.trace(forward, N=("n", "d"), D=("d", "n"))
    got = sg.derive(traced, ["N", "D"]).compile()(**traced.values(**args))
    for name, g in zip(["N", "D"], got):
        np.testing.assert_allclose(g, finite_differences(forward, args, name), rtol=1e-6, atol=1e-8)


def test_a_size_is_not_a_variable_to_differentiate():
    def forward(x, W):
        return np.sum(np.tanh(x @ W)) / x.shape[0]

    with pytest.raises(ValueError, match="'N' is not an input"):
        sg.derive(sg.trace(forward, x=("N", "D"), W=("D", "H")), ["N"])


# --- the compiled gradient of a forward with labels ---------------------------------------------------
def softmax_classifier(X, y, W, b, lam):
    N = X.shape[0]
    logits = X.dot(W) + b
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    p = e / e.sum(axis=1, keepdims=True)
    return -np.log(p[np.arange(N), y]).mean() + lam * np.sum(np.square(W))


CLASSIFIER = dict(X=("N", "D"), y=sg.labels("N", classes="C"), W=("D", "C"), b=("C",), lam=())


@pytest.mark.parametrize("n", [3, 4])  # N == C (3) broadcast the labels against the one-hot rows
def test_the_compiled_gradient_takes_the_forwards_own_labels(n):
    rng = np.random.default_rng(n)
    args = dict(X=rng.uniform(-1, 1, (n, 4)), y=rng.integers(0, 3, n), W=rng.uniform(-1, 1, (4, 3)),
                b=rng.uniform(-1, 1, 3), lam=0.3)
    traced = sg.trace(softmax_classifier, **CLASSIFIER)
    f = sg.derive(traced, ["W", "b"]).compile()
    assert "def backward" in f.source and {"X", "y", "W"} <= set(f.params)  # still the compiled function
    for given in (args, traced.values(**args)):  # the forward's arguments, or the derivation's
        gW, gb = f(**given)
        np.testing.assert_allclose(gW, finite_differences(softmax_classifier, args, "W"), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(np.reshape(gb, -1), finite_differences(softmax_classifier, args, "b"),
                                   rtol=1e-6, atol=1e-8)


def test_float_labels_are_refused_by_the_compiled_gradient():
    rng = np.random.default_rng(5)
    args = dict(X=rng.uniform(-1, 1, (3, 4)), y=np.array([0.0, 2.0, 1.0]), W=rng.uniform(-1, 1, (4, 3)),
                b=rng.uniform(-1, 1, 3), lam=0.3)
    traced = sg.trace(softmax_classifier, **CLASSIFIER)
    with pytest.raises(ValueError, match="labels must be integers"):
        sg.derive(traced, ["W"]).compile()(**args)


# --- a placeholder size never reaches a result or a message ----------------------------------------
def tanh_sum(x, W):
    return np.sum(np.tanh(x @ W))


SIZE_NUMBERS = {
    "arange_sum": lambda x, W: tanh_sum(x, W) * np.arange(x.shape[0]).sum(),
    "len_range": lambda x, W: tanh_sum(x, W) / len(range(x.shape[0])),
    "sum_range": lambda x, W: tanh_sum(x, W) * sum(range(x.shape[0])),
    "arange_size": lambda x, W: tanh_sum(x, W) / np.arange(x.shape[0]).size,
    "ones_sum": lambda x, W: tanh_sum(x, W) / np.ones(x.shape[0]).sum(),
    "ones_sum_of_rows": lambda x, W: tanh_sum(x, W) / np.ones((x.shape[0], W.shape[1])).sum(),
}


@pytest.mark.parametrize("case", sorted(SIZE_NUMBERS))
def test_a_number_made_from_a_size_by_a_concrete_call_is_refused(case):
    with pytest.raises(TraceError, match=r"computed from the symbolic sizes.*test_trace_review.py:\d+") as info:
        sg.trace(SIZE_NUMBERS[case], x=("N", "D"), W=("D", "H"))
    assert "1009" not in str(info.value) and "1025" not in str(info.value)


def test_a_concrete_array_of_the_sizes_is_named_by_them_in_the_error():
    def forward(x, W):
        out = np.zeros((x.shape[0], W.shape[1]))
        return np.sum(out + x @ W)

    with pytest.raises(TraceError, match=r"shape \(N, H\)"):
        sg.trace(forward, x=("N", "D"), W=("D", "H"))


def test_the_size_itself_stays_symbolic_and_right():
    """x.shape[0] (the symbol N), N * D, W.size: the same numbers as the NumPy forward at any size."""
    def forward(x, W):
        N, D = x.shape
        return np.sum(np.tanh(x @ W)) / (N * D) + np.sum(W ** 2) / W.size

    traced = sg.trace(forward, x=("N", "D"), W=("D", "H"))
    f = sg.derive(traced, ["W"]).compile()
    rng = np.random.default_rng(6)
    for n in (2, 5):
        args = arrays(rng, x=(n, 3), W=(3, 4))
        np.testing.assert_allclose(f(**args), finite_differences(forward, args, "W"), rtol=1e-6, atol=1e-9)


# --- bare Python exceptions become TraceErrors; the simple cases trace -----------------------------
UNSUPPORTED = {
    "round": (lambda x, W: round(np.sum(x @ W), 3), r"round\(\)"),
    "tolist": (lambda x, W: sum(sum(r) for r in (x @ W).tolist()), r"\.tolist"),
    "ravel_matrix": (lambda x, W: np.sum((x @ W).ravel() ** 2), r"\.ravel\(\) of a matrix"),
    "floordiv": (lambda x, W: np.sum(x @ W) / (x.shape[0] // 2), r"N // 2"),
    "mod": (lambda x, W: np.sum(x @ W) / (x.shape[0] % 2 + 1), r"N % 2"),
    "unknown_method": (lambda x, W: np.sum((x @ W).cumsum(axis=1)), r"\.cumsum"),
    "comparison_method": (lambda x, W: np.sum(x @ W) * (x @ W > 0).sum(), r"\.sum of a comparison"),
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_an_unsupported_call_is_a_trace_error_with_its_line(case):
    forward, what = UNSUPPORTED[case]
    with pytest.raises(TraceError, match=rf"{what}.*test_trace_review.py:\d+"):
        sg.trace(forward, x=("N", "D"), W=("D", "H"))


def test_a_missing_attribute_is_still_an_attribute_error_for_hasattr():
    seen = {}

    def forward(x, W):
        seen["has"] = hasattr(x, "tolist")
        return np.sum(x @ W)

    sg.trace(forward, x=("N", "D"), W=("D", "H"))
    assert seen["has"] is False


def test_ravel_of_a_vector_and_arange_of_len_labels_trace():
    def forward(X, y, W, v):
        s = X @ W
        e = np.exp(s)
        p = e / e.sum(axis=1, keepdims=True)
        return -np.sum(np.log(p[np.arange(len(y)), y])) + np.sum(v.ravel() ** 2) + np.sum(v.flatten())

    rng = np.random.default_rng(7)
    args = dict(X=rng.uniform(-1, 1, (4, 3)), y=rng.integers(0, 5, 4), W=rng.uniform(-1, 1, (3, 5)),
                v=rng.uniform(-1, 1, 5))
    traced = sg.trace(forward, X=("N", "D"), y=sg.labels("N", classes="C"), W=("D", "C"), v=("C",))
    gW, gv = sg.derive(traced, ["W", "v"]).compile()(**args)
    np.testing.assert_allclose(gW, finite_differences(forward, args, "W"), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(traced.gradient_of("v", gv), finite_differences(forward, args, "v"), rtol=1e-6)


def test_len_of_labels_as_a_number_is_refused():
    def forward(X, y, W):
        s = X @ W
        return np.sum(s[np.arange(len(y)), y]) / len(y)

    with pytest.raises(TraceError, match="computed from the symbolic sizes"):
        sg.trace(forward, X=("N", "D"), y=sg.labels("N", classes="C"), W=("D", "C"))


@pytest.mark.parametrize("block", ["gelu", "log_softmax"])
def test_nn_blocks_with_scipy_or_device_calls_trace(block):
    def forward(X, W):
        return np.sum(getattr(sg.nn, block)(X @ W) * (X @ W))

    rng = np.random.default_rng(8)
    args = arrays(rng, X=(3, 4), W=(4, 5))
    traced = sg.trace(forward, X=("N", "D"), W=("D", "C"))
    got = sg.derive(traced, ["W"]).compile()(**args)
    np.testing.assert_allclose(got, finite_differences(forward, args, "W"), rtol=1e-6, atol=1e-8)


# --- the textbook form: no internal lambdas, no bound variable named like the user's ---------------
def mlp(x, t, W1, b1, W2, b2):
    h1 = np.tanh(x @ W1 + b1)
    h2 = np.maximum(h1 @ W2 + b2, 0)
    return np.mean(np.sum((h2 - t) ** 2, axis=1))


def test_a_linear_elementwise_map_is_printed_as_a_product():
    from symgrad.printing.plain import text

    shapes = dict(x=("N", "D"), t=("N", "O"), W1=("D", "H"), b1=("H",), W2=("H", "O"), b2=("O",))
    d = sg.derive(sg.trace(mlp, **shapes), ["W1"])
    assert "2*(h2 - t)" in text(d.named)
    assert r"2 \left(h_{2} - t\right)" in sg.latex(d.named)
    assert "entry" not in d.latex() and "mapsto" not in sg.latex(d.named)


def test_the_bound_variable_is_no_name_of_the_users():
    from symgrad.printing.plain import text

    def forward(x, W):
        return np.sum(np.sqrt((x @ W) ** 2 + 1.0))

    d = sg.derive(sg.trace(forward, x=("N", "D"), W=("D", "H")), ["W"])
    assert text(d.named[0]) == "x.T*(u -> u/sqrt(u**2 + 1))(x*W)"
    assert sg.latex(d.named[0]) == r"x^{T} {\left( u \mapsto \frac{u}{\sqrt{u^{2} + 1}} \right)}_{\circ}\left({x W}\right)"

    def with_u(u, W):
        return np.sum(np.sqrt((u @ W) ** 2 + 1.0))

    assert text(sg.derive(sg.trace(with_u, u=("N", "D"), W=("D", "H")), ["W"]).named[0]) == \
        "u.T*(v -> v/sqrt(v**2 + 1))(u*W)"


def test_an_index_array_of_the_sizes_is_named_by_them_in_the_error():
    def forward(x, W):
        return np.sum((x @ W)[np.arange(x.shape[0]), 0])

    with pytest.raises(TraceError, match=r"an array of shape \(N,\), 0") as info:
        sg.trace(forward, x=("N", "D"), W=("D", "H"))
    assert "1008" not in str(info.value)


# --- a comparison as a 0/1 mask of another array: dh * (z > 0) --------------------------------------
def test_where_and_masks_of_other_arrays_agree_with_finite_differences():
    def forward(x, W, V):  # (a named z would get the adjoint 0.0, which the compiled code multiplies: a crash)
        g = x @ V
        return np.sum(np.where(x @ W > 0.1, g ** 2, np.tanh(g))) + np.sum(g * (x @ W < 0)) + \
            np.sum(g * (x @ W >= 0.2))

    rng = np.random.default_rng(9)
    args = arrays(rng, x=(4, 3), W=(3, 5), V=(3, 5))
    traced = sg.trace(forward, x=("N", "D"), W=("D", "H"), V=("D", "H"))
    gx, gW, gV = sg.derive(traced, ["x", "W", "V"]).compile()(**args)
    for name, g in (("x", gx), ("W", gW), ("V", gV)):
        np.testing.assert_allclose(g, finite_differences(forward, args, name), rtol=1e-6, atol=1e-8, err_msg=name)


def relu_net(x, W1, W2):
    z = x @ W1
    h = np.maximum(z, 0)
    return np.sum(np.square(h @ W2))


def relu_backward(x, W1, W2, flip=False):
    z = x @ W1
    h = np.maximum(z, 0)
    g = 2 * (h @ W2)
    dh = g @ W2.T
    return x.T @ (dh * ((z < 0) if flip else (z > 0))), h.T @ g


def test_the_hand_relu_backward_with_a_mask_is_proven_and_a_flipped_mask_refuted():
    shapes = dict(x=("N", "D"), W1=("D", "H"), W2=("H", "H"))
    report = sg.check_backward(relu_net, relu_backward, ["W1", "W2"], **shapes)
    assert report.ok and report.method == "symbolic", str(report)
    assert [g.status for g in report.gradients] == ["proven", "proven"], str(report)
    bad = sg.check_backward(relu_net, lambda **kw: relu_backward(**kw, flip=True), ["W1", "W2"], **shapes)
    assert not bad.ok and bad.failure.name == "W1", str(bad)


@pytest.mark.parametrize("update", ["out", "item"])
def test_other_in_place_writes_are_refused_with_their_line(update):
    def forward(x, W):
        z = x @ W
        a = z
        if update == "out":
            np.add(z, 1.0, out=z)
        else:
            z[0, 0] = 0.0
        return np.sum(a ** 2)

    with pytest.raises(TraceError, match=r"test_trace_review.py:\d+: (np.add|z\[0, 0\])"):
        sg.trace(forward, x=("N", "D"), W=("D", "H"))


def test_a_random_number_is_refused_not_frozen():
    def forward(x, W):
        return np.sum(x @ W) * np.random.default_rng().uniform()

    with pytest.raises(TraceError, match="or a random one"):
        sg.trace(forward, x=("N", "D"), W=("D", "H"))


# --- clipped activations keep every digit; a proven gradient is never refuted by rounding ----------------
def _relu6_net(x, W, V):
    h = np.minimum(np.maximum(x @ W, 0), 6.0)
    return np.sum(np.square(h @ V))


@pytest.mark.parametrize("scale", [1e-6, 1e-3, 1.0, 30.0])
def test_a_clipped_activation_is_accurate_at_every_scale(scale):
    # min(max(u, 0), 6) was traced as 6 − relu(6 − relu(u)): at u ≈ 1e-12 it kept 4 digits (1e-4 error)
    d = sg.derive(sg.trace(_relu6_net, x=("N", "D"), W=("D", "H"), V=("H", "O")), ["W", "V"])
    rng = np.random.default_rng(3)
    x, W, V = (rng.normal(size=s) * scale for s in ((3, 4), (4, 5), (5, 6)))
    gW, gV = d.compile()(x=x, W=W, V=V)
    z = x @ W
    h = np.clip(z, 0, 6)
    G = 2 * (h @ V)
    assert np.max(np.abs(gV - h.T @ G)) <= 1e-13 * np.max(np.abs(h.T @ G))
    ref_W = x.T @ ((G @ V.T) * ((z > 0) & (z < 6)))
    assert np.max(np.abs(gW - ref_W)) <= 1e-13 * max(np.max(np.abs(ref_W)), 1e-300)


def test_a_proven_gradient_is_not_refuted_by_rounding():
    def backward(x, W, V):  # V right; W forgets the clip at 6
        z = x @ W
        h = np.minimum(np.maximum(z, 0), 6.0)
        g = 2 * (h @ V)
        return x.T @ ((g @ V.T) * (z > 0)), h.T @ g

    report = sg.check_backward(_relu6_net, backward, ["W", "V"], x=("N", "D"), W=("D", "H"), V=("H", "O"))
    assert not report.ok and report["W"].status == "refuted" and report["V"].status == "proven"
