"""symgrad.trace: ordinary NumPy forwards traced to graphs of the user's names, derived, compiled, and
compared with torch.autograd and central finite differences of the user's own NumPy forward."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.printing.plain import text

torch = pytest.importorskip("torch")


# --- oracles ---------------------------------------------------------------------------------------
def finite_differences(forward, args: dict, name: str, h: float = 1e-6) -> np.ndarray:
    """Central differences of the user's NumPy forward in the argument ``name``."""
    x = np.array(args[name], dtype=float)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += h
        minus[idx] -= h
        grad[idx] = (forward(**{**args, name: plus}) - forward(**{**args, name: minus})) / (2 * h)
    return grad


class TorchNamespace:
    """The forward's NumPy calls, on torch tensors (so that torch.autograd differentiates the same code)."""

    def __getattr__(self, name):
        table = {"exp": torch.exp, "log": torch.log, "tanh": torch.tanh, "sqrt": torch.sqrt,
                 "square": torch.square, "maximum": lambda a, b: torch.clamp(a, min=b) if not torch.is_tensor(b)
                 else torch.clamp(b, min=a), "dot": torch.matmul, "arange": torch.arange, "sum": torch.sum,
                 "abs": torch.abs, "where": torch.where}
        return table[name]


def torch_gradients(forward_xp, args: dict, wrt: list) -> dict:
    def tensor(k, v):
        if isinstance(v, float) or (isinstance(v, np.ndarray) and v.dtype.kind == "f"):
            return torch.tensor(v, dtype=torch.float64, requires_grad=k in wrt)
        return torch.tensor(v) if isinstance(v, np.ndarray) else v

    tensors = {k: tensor(k, v) for k, v in args.items()}
    out = forward_xp(torch, **tensors)
    out.backward()
    return {k: tensors[k].grad.numpy() for k in wrt}


def compiled_gradients(traced, derivation, args: dict, wrt: list) -> dict:
    grads = derivation.compile()(**traced.values(**args))
    grads = grads if isinstance(grads, tuple) else (grads,)
    return {k: traced.gradient_of(k, g) for k, g in zip(wrt, grads)}


def assert_close(got: dict, expected: dict, rtol=1e-6, atol=1e-8):
    for k in expected:
        np.testing.assert_allclose(got[k], expected[k], rtol=rtol, atol=atol, err_msg=k)


# --- the lecture notes' 20-line network --------------------------------------------------------------
def twenty_line(x, w1, w2, y, xp=np):
    h = 1 / (1 + xp.exp(-x @ w1)) if xp is torch else 1 / (1 + np.exp(-x.dot(w1)))
    y_pred = h @ w2 if xp is torch else h.dot(w2)
    return ((y_pred - y) ** 2).sum() if xp is torch else np.square(y_pred - y).sum()


def twenty_line_np(x, w1, w2, y):
    h = 1 / (1 + np.exp(-x.dot(w1)))
    y_pred = h.dot(w2)
    return np.square(y_pred - y).sum()


def test_twenty_line_network_derives_to_the_notes_backward_in_the_users_names():
    traced = sg.trace(twenty_line_np, x=("N", "D"), w1=("D", "H"), w2=("H", "O"), y=("N", "O"))
    assert [n.name for n in traced.names] == ["h", "y_pred", "L"]
    assert repr(traced) == ("<traced twenty_line_np: h = sigmoid(x*w1); y_pred = h*w2; "
                            "L = Trace((y_pred - y).T*(y_pred - y))>")
    assert text(traced.exprs[traced.names[0]]) == "sigmoid(x*w1)"  # 1/(1 + exp(-x w1)) is σ
    d = sg.derive(traced, ["w1", "w2"])
    g1, g2 = (text(g) for g in d.named)
    assert "h" in g1 and "y_pred" in g1 and "h" in g2 and "y_pred" in g2
    assert g2 == "2*h.T*(y_pred - y)"
    rng = np.random.default_rng(0)
    args = dict(x=rng.normal(size=(5, 4)), w1=rng.normal(size=(4, 6)) * 0.5, w2=rng.normal(size=(6, 3)),
                y=rng.normal(size=(5, 3)))
    got = compiled_gradients(traced, d, args, ["w1", "w2"])
    assert_close(got, {k: finite_differences(twenty_line_np, args, k) for k in ("w1", "w2")}, rtol=1e-6)
    assert_close(got, torch_gradients(lambda xp, **a: twenty_line(xp=xp, **a), args, ["w1", "w2"]), rtol=1e-10)
    # the notes' hand-written backward
    h = 1 / (1 + np.exp(-args["x"].dot(args["w1"])))
    grad_y_pred = 2.0 * (h.dot(args["w2"]) - args["y"])
    np.testing.assert_allclose(got["w2"], h.T.dot(grad_y_pred), rtol=1e-12)
    np.testing.assert_allclose(got["w1"], args["x"].T.dot(grad_y_pred.dot(args["w2"].T) * h * (1 - h)), rtol=1e-12)


# --- forwards written once, run by NumPy (traced, finite differences) and by torch (autograd) ----------
xt = pytest.importorskip("array_api_compat.torch")


def cs231n_two_layer(X, y, W1, b1, W2, b2, reg, xp=np):
    """CS231n's two-layer net: affine, ReLU, affine, stable softmax, mean cross-entropy, L2."""
    N = X.shape[0]
    hidden = xp.maximum(X @ W1 + b1, 0.0) if xp is xt else np.maximum(0, X @ W1 + b1)
    scores = hidden @ W2 + b2
    shifted = scores - xp.max(scores, axis=1, keepdims=True)
    exp_scores = xp.exp(shifted)
    probs = exp_scores / xp.sum(exp_scores, axis=1, keepdims=True)
    data_loss = -xp.mean(xp.log(probs[xp.arange(N), y]))
    reg_loss = reg * (xp.sum(W1 * W1) + xp.sum(W2 * W2))
    loss = data_loss + reg_loss
    return loss


def layer_norm(x, gamma, beta, G, xp=np):
    mu = xp.mean(x, axis=-1, keepdims=True)
    var = xp.var(x, axis=-1, keepdims=True)
    xhat = (x - mu) / xp.sqrt(var + 1e-5)
    out = gamma * xhat + beta
    return xp.sum(out * G)


def batch_norm(x, gamma, beta, G, xp=np):
    mu = xp.mean(x, axis=0)
    var = xp.mean((x - mu) ** 2, axis=0)
    xhat = (x - mu) / xp.sqrt(var + 1e-5)
    out = gamma * xhat + beta
    return xp.sum(out * G)


def layer_norm_by_product(x, gamma, beta, G, xp=np):
    """Layer norm written with the inverse standard deviation: still the LN block."""
    mu = xp.mean(x, axis=1, keepdims=True)
    inv_std = (xp.mean((x - mu) ** 2, axis=1, keepdims=True) + 1e-3) ** -0.5
    out = (x - mu) * inv_std * gamma + beta
    return xp.sum(out * G)


def rms_norm(x, gamma, G, xp=np):
    """RMS norm in plain NumPy: no block is recognised, the elementwise path is derived."""
    rms = xp.sqrt(xp.mean(x ** 2, axis=-1, keepdims=True) + 1e-6)
    out = x / rms * gamma
    return xp.sum(out * G)


def attention(Q, K, V, G, xp=np):
    d = Q.shape[-1]
    scores = Q @ K.T / d ** 0.5
    scores = scores - xp.max(scores, axis=-1, keepdims=True)
    weights = xp.exp(scores)
    weights = weights / xp.sum(weights, axis=-1, keepdims=True)
    out = weights @ V
    return xp.sum(out * G)


def two_layer_args(rng, N=7, D=4, H=5, C=3):
    return dict(X=rng.normal(size=(N, D)), y=rng.integers(0, C, size=N), W1=rng.normal(size=(D, H)),
                b1=rng.normal(size=H), W2=rng.normal(size=(H, C)), b2=rng.normal(size=C), reg=0.3)


def norm_args(rng, N=6, D=4):
    return dict(x=rng.normal(size=(N, D)) * 2 + 1, gamma=rng.normal(size=D), beta=rng.normal(size=D),
                G=rng.normal(size=(N, D)))


def attention_args(rng, T=4, S=5, d=3, E=2):
    return dict(Q=rng.normal(size=(T, d)), K=rng.normal(size=(S, d)), V=rng.normal(size=(S, E)),
                G=rng.normal(size=(T, E)))


CASES = {
    "cs231n": (cs231n_two_layer, dict(X=("N", "D"), y=sg.labels("N", classes="C"), W1=("D", "H"), b1=("H",),
                                      W2=("H", "C"), b2=("C",), reg=()), ["W1", "b1", "W2", "b2", "reg"],
               two_layer_args, ["hidden", "scores"]),
    "layer_norm": (layer_norm, dict(x=("N", "D"), gamma=("D",), beta=("D",), G=("N", "D")), ["x", "gamma", "beta"],
                   norm_args, ["out"]),
    "layer_norm_by_product": (layer_norm_by_product, dict(x=("N", "D"), gamma=("D",), beta=("D",), G=("N", "D")),
                              ["x", "gamma", "beta"], norm_args, ["out"]),
    "batch_norm": (batch_norm, dict(x=("N", "D"), gamma=("D",), beta=("D",), G=("N", "D")), ["x", "gamma", "beta"],
                   norm_args, ["out"]),
    "rms_norm": (rms_norm, dict(x=("N", "D"), gamma=("D",), G=("N", "D")), ["x", "gamma"],
                 lambda rng: {k: v for k, v in norm_args(rng).items() if k != "beta"}, ["rms", "out"]),
    "attention": (attention, dict(Q=("T", "d"), K=("S", "d"), V=("S", "E"), G=("T", "E")), ["Q", "K", "V"],
                  attention_args, ["weights"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_traced_gradients_agree_with_torch_and_finite_differences(case):
    forward, shapes, wrt, make_args, names = CASES[case]
    traced = sg.trace(forward, **shapes)
    d = sg.derive(traced, wrt)
    assert set(names) <= {n.name for n in traced.names}  # the user's own names are the intermediates
    shown = " ".join(text(g) for g in d.named) + " " + str(d.latex())
    assert any(n in shown for n in names)
    for seed in (0, 1):
        args = make_args(np.random.default_rng(seed))
        got = compiled_gradients(traced, d, args, wrt)
        for k in wrt:  # the gradient has the shape of the user's argument
            assert np.shape(got[k]) == np.shape(args[k]), k
        numeric = {k: finite_differences(forward, args, k) if np.ndim(args[k]) else
                   np.array(finite_differences(lambda **a: forward(**{**a, k: float(a[k])}), args, k)) for k in wrt}
        assert_close(got, numeric, rtol=1e-5, atol=1e-7)
        assert_close(got, torch_gradients(lambda xp, **a: forward(xp=xt, **a), args, wrt), rtol=1e-9, atol=1e-11)


def test_cs231n_derivation_is_the_textbook_softmax_minus_targets_over_N():
    forward, shapes, wrt, _, _ = CASES["cs231n"]
    traced = sg.trace(forward, **shapes)
    by_name = {n.name: text(traced.exprs[n]) for n in traced.names}
    assert by_name["hidden"] == "relu(X*W1 + 1*b1)"  # the bias row spread over the rows: 1 b1
    assert by_name["data_loss"] == "SoftmaxCrossEntropy(scores, y)/N"  # the max shift dropped: shift-invariant
    d = sg.derive(traced, ["W2", "b2"])
    assert text(d.named[0]) == "(2*reg)*W2 + 1/N*hidden.T*(softmax(scores) - y)"
    assert text(d.named[1]) == "1/N*1ᵀ*(softmax(scores) - y)"


# --- symgrad.nn blocks inside a forward ----------------------------------------------------------------
def nn_forward(x, w1, w2, y):
    import symgrad.nn as nn

    h = nn.sigmoid(x @ w1)
    z = nn.tanh(h @ w2)
    p = nn.softmax(z)
    return np.sum(p * y)


def test_symgrad_nn_calls_become_their_catalog_blocks():
    traced = sg.trace(nn_forward, x=("N", "D"), w1=("D", "H"), w2=("H", "O"), y=("N", "O"))
    assert [text(traced.exprs[n]) for n in traced.names[:3]] == ["sigmoid(x*w1)", "tanh(h*w2)", "softmax(z)"]
    d = sg.derive(traced, ["w1", "w2"])
    rng = np.random.default_rng(5)
    args = dict(x=rng.normal(size=(4, 3)), w1=rng.normal(size=(3, 5)), w2=rng.normal(size=(5, 2)),
                y=rng.normal(size=(4, 2)))
    got = compiled_gradients(traced, d, args, ["w1", "w2"])
    assert_close(got, {k: finite_differences(nn_forward, args, k) for k in ("w1", "w2")}, rtol=1e-6)

    def after_block(x):  # the block's result is an ordinary stand-in once the nn function returned
        import symgrad.nn as nn

        return np.sum(np.exp(nn.relu(x)) * 2)

    traced = sg.trace(after_block, x=(3, 2))
    assert "relu" in text(traced.exprs[traced.output])
    x = rng.normal(size=(3, 2))
    got = sg.derive(traced, "x").compile()(x=x)
    np.testing.assert_allclose(got, finite_differences(after_block, {"x": x}, "x"), rtol=1e-6)


def nn_layers(x, gamma, beta, W, b, K, V, G):
    import symgrad.nn as nn

    h = nn.layer_norm(x, gamma, beta)
    z = nn.dense(W, h, b)
    a = nn.scaled_dot_product_attention(z, K, V)
    return np.sum(a * G) + 2.0 * np.sum(nn.logsumexp(a)) + np.mean(nn.squared_l2(z, 0.5 * z))


def test_symgrad_nn_layers_and_losses_become_their_batched_blocks():
    shapes = dict(x=("N", "D"), gamma=("D",), beta=("D",), W=("H", "D"), b=("H",), K=("S", "H"), V=("S", "F"),
                  G=("N", "F"))
    traced = sg.trace(nn_layers, **shapes)
    by_name = {n.name: text(traced.exprs[n]) for n in traced.names}
    assert by_name["h"] == "LN(x; gamma, beta)" and by_name["a"] == "attention(z, K, V)"
    wrt = ["x", "gamma", "beta", "W", "b", "K", "V"]
    d = sg.derive(traced, wrt)
    rng = np.random.default_rng(16)
    args = dict(x=rng.normal(size=(4, 3)), gamma=rng.normal(size=3), beta=rng.normal(size=3), W=rng.normal(size=(5, 3)),
                b=rng.normal(size=5), K=rng.normal(size=(6, 5)), V=rng.normal(size=(6, 2)), G=rng.normal(size=(4, 2)))
    got = compiled_gradients(traced, d, args, wrt)
    assert_close(got, {k: finite_differences(nn_layers, args, k) for k in wrt}, rtol=1e-6, atol=1e-8)


# --- what trace refuses, with the user's line -----------------------------------------------------------
def branching(x):
    if x.sum() > 0:  # refused: a Python if on a value
        return x.sum()
    return -x.sum()


def inverting(W):
    return np.linalg.inv(W).sum()


def sorting(x):
    return np.sort(x, axis=1).sum()


def floating(x):
    return float(x.sum()) * x.sum()


def slicing(x):
    return x[0].sum()


def unknown_ufunc(x):
    return np.arctan2(x, x).sum()


def contracting(x):
    return np.einsum("ij,ij->", x, x)


@pytest.mark.parametrize("forward, what", [
    (branching, "Python `if`"), (inverting, "np.linalg.inv"), (sorting, "np.sort"), (floating, "float()"),
    (slicing, "indexing"), (unknown_ufunc, "np.arctan2"), (contracting, "np.einsum"),
])
def test_unsupported_calls_name_the_call_and_the_line(forward, what):
    import inspect

    with pytest.raises(sg.TraceError) as info:
        sg.trace(forward, **{p: ("N", "N") for p in inspect.signature(forward).parameters})
    message = str(info.value)
    assert what in message
    assert "test_tracing.py:" in message  # the forward's own line
    line = int(message.split("test_tracing.py:")[1].split(":")[0])
    source = inspect.getsource(forward).splitlines()
    first = forward.__code__.co_firstlineno
    assert first <= line < first + len(source)


def test_shapes_are_checked_against_the_forward():
    with pytest.raises(TypeError, match="no shape for w2"):
        sg.trace(twenty_line_np, x=("N", "D"), w1=("D", "H"), y=("N", "O"))
    with pytest.raises(TypeError, match="not an argument"):
        sg.trace(twenty_line_np, x=("N", "D"), w1=("D", "H"), w2=("H", "O"), y=("N", "O"), z=())
    with pytest.raises(sg.TraceError, match="returns a tuple"):
        sg.trace(lambda x: (x.sum(), x.sum()), x=(2, 2))


def test_concrete_sizes_and_the_symbolic_ones_give_the_same_numbers():
    rng = np.random.default_rng(2)
    args = dict(x=rng.normal(size=(5, 4)), w1=rng.normal(size=(4, 6)), w2=rng.normal(size=(6, 3)),
                y=rng.normal(size=(5, 3)))
    out = []
    for shapes in (dict(x=("N", "D"), w1=("D", "H"), w2=("H", "O"), y=("N", "O")),
                   dict(x=(5, 4), w1=(4, 6), w2=(6, 3), y=(5, 3))):
        traced = sg.trace(twenty_line_np, **shapes)
        out.append(compiled_gradients(traced, sg.derive(traced, ["w1", "w2"]), args, ["w1", "w2"]))
    assert_close(out[0], out[1], rtol=1e-12)


def test_a_wrong_size_in_the_values_is_refused():
    traced = sg.trace(twenty_line_np, x=("N", "D"), w1=("D", "H"), w2=("H", "O"), y=("N", "O"))
    with pytest.raises(ValueError, match="size N"):
        traced.values(x=np.zeros((5, 4)), w1=np.zeros((4, 6)), w2=np.zeros((6, 3)), y=np.zeros((6, 3)))


@pytest.mark.parametrize("case, block", [("layer_norm", "LN"), ("layer_norm_by_product", "LN"), ("batch_norm", "BN")])
def test_a_standardisation_written_out_is_the_catalog_norm_block(case, block):
    forward, shapes, wrt, _, _ = CASES[case]
    traced = sg.trace(forward, **shapes)
    assert text(traced.exprs[sp.MatrixSymbol("out", *traced.exprs[traced.names[0]].shape)]) == f"{block}(x; gamma, beta)"
    d = sg.derive(traced, ["x", "gamma", "beta"])
    assert text(d.named[1]) == f"1ᵀ*({block}(x) ∘ G)" and text(d.named[2]) == "1ᵀ*G"  # dγ = Σ_n G ∘ x̂, dβ = Σ_n G


# --- the rest of what layer code writes -----------------------------------------------------------------
def many_ops(x, W, b, v, c):
    z = x @ W + b  # a bias row
    a = np.where(z > 0, z, 0.01 * z)  # leaky ReLU
    m = z * (z > 0)  # ReLU by a mask
    q = np.minimum(a, 1.0) + np.abs(m) + np.tanh(z) ** 2
    s = np.sqrt(np.exp(q) + 1.0)
    col = s.sum(axis=1, keepdims=True)  # an N × 1 column, broadcast over the columns
    r = s / col
    u = r.mean(axis=0)  # (H,)
    w = u @ W.T  # 1-D @ 2-D
    k = (w.reshape(-1, 1) * v.reshape(-1, 1)).sum()
    return k * c + np.log1p(np.square(r - 0.5)).sum() / x.shape[0] + (z.T @ z).mean() * 1e-3


def test_broadcasting_masks_where_reductions_and_reshapes_agree_with_finite_differences():
    traced = sg.trace(many_ops, x=("N", "D"), W=("D", "H"), b=("H",), v=("D",), c=())
    by_name = {n.name: text(traced.exprs[n]) for n in traced.names}
    assert by_name["a"] == "leaky_relu(z, 1/100)" and by_name["m"] == "relu(z)"
    wrt = ["W", "b", "v", "c", "x"]
    d = sg.derive(traced, wrt)
    rng = np.random.default_rng(4)
    args = dict(x=rng.normal(size=(5, 3)), W=rng.normal(size=(3, 4)), b=rng.normal(size=4), v=rng.normal(size=3),
                c=0.7)
    got = compiled_gradients(traced, d, args, wrt)
    numeric = {k: finite_differences(many_ops, args, k) for k in wrt if k != "c"}
    numeric["c"] = finite_differences(lambda **a: many_ops(**{**a, "c": float(a["c"])}), args, "c")
    assert_close(got, numeric, rtol=1e-6, atol=1e-8)


def log_softmax_classifier(X, W, y):
    N = X.shape[0]
    scores = X @ W
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    return -log_probs[np.arange(N), y].sum() / N


def test_a_log_softmax_written_out_is_the_cross_entropy_with_its_textbook_gradient():
    traced = sg.trace(log_softmax_classifier, X=("N", "D"), W=("D", "C"), y=sg.labels("N", classes="C"))
    d = sg.derive(traced, "W")
    assert text(d.named) == "1/N*X.T*(softmax(scores) - y)"
    rng = np.random.default_rng(8)
    args = dict(X=rng.normal(size=(6, 3)), W=rng.normal(size=(3, 4)), y=rng.integers(0, 4, size=6))
    got = traced.gradient_of("W", d.compile()(**traced.values(**args)))
    np.testing.assert_allclose(got, finite_differences(log_softmax_classifier, args, "W"), rtol=1e-6)


def test_a_cross_entropy_of_symgrad_nn_against_labels_is_refused_with_the_numpy_form():
    import symgrad.nn as nn

    def forward(z, y):
        return nn.softmax_cross_entropy(z, y).mean()

    with pytest.raises(sg.TraceError, match=r"np\.log\(probs\[np\.arange\(N\), y\]\)"):
        sg.trace(forward, z=("N", "C"), y=sg.labels("N", classes="C"))


def deep_tanh(x, W1, W2, W3, y):
    h = x
    for W in (W1, W2, W3):
        h = np.tanh(h @ W)
    return np.square(h - y).sum()


def test_a_name_rebound_in_a_loop_numbers_the_layers():
    traced = sg.trace(deep_tanh, x=("N", "D"), y=("N", "D"), W1=("D", "D"), W2=("D", "D"), W3=("D", "D"))
    assert [f"{n.name} = {text(traced.exprs[n])}" for n in traced.names[:3]] == [
        "h1 = tanh(x*W1)", "h2 = tanh(h1*W2)", "h3 = tanh(h2*W3)"]
    d = sg.derive(traced, ["W1", "W2", "W3"])
    assert text(d.named[2]) == "2*h2.T*((1 - h3 ∘ h3) ∘ (h3 - y))"  # tanh' = 1 − tanh², through the names
    rng = np.random.default_rng(6)
    args = dict(x=rng.normal(size=(4, 3)), y=rng.normal(size=(4, 3)),
                **{f"W{i}": rng.normal(size=(3, 3)) for i in (1, 2, 3)})
    got = compiled_gradients(traced, d, args, ["W1", "W2", "W3"])
    assert_close(got, {k: finite_differences(deep_tanh, args, k) for k in ("W1", "W2", "W3")}, rtol=1e-6)
    def in_torch(xp, x, W1, W2, W3, y):
        return ((xp.tanh(xp.tanh(xp.tanh(x @ W1) @ W2) @ W3) - y) ** 2).sum()

    assert_close(got, torch_gradients(in_torch, args, ["W1", "W2", "W3"]), rtol=1e-10)


def svm_like(X, W, y):
    """The new axes of layer code: a picked column against every score, a row sum as a column."""
    N = X.shape[0]
    scores = X @ W
    correct = scores[np.arange(N), y]
    margins = np.maximum(0, scores - correct[:, None] + 1.0)
    totals = margins.sum(axis=1)
    return (totals / (1.0 + totals)[None, :].sum()).sum()


def test_new_axes_and_a_picked_score_against_finite_differences():
    traced = sg.trace(svm_like, X=("N", "D"), W=("D", "C"), y=sg.labels("N", classes="C"))
    d = sg.derive(traced, "W")
    rng = np.random.default_rng(9)
    args = dict(X=rng.normal(size=(6, 3)), W=rng.normal(size=(3, 4)), y=rng.integers(0, 4, size=6))
    got = traced.gradient_of("W", d.compile()(**traced.values(**args)))
    np.testing.assert_allclose(got, finite_differences(svm_like, args, "W"), rtol=1e-6, atol=1e-9)


def piecewise(x, W):
    z = x @ W
    a = np.where(z < 0, np.exp(z) - 1.0, z)  # ELU written out: the branches swap for <
    b = np.where(z > 0.5, np.tanh(z), z ** 2)
    return (a * b).sum()


def test_where_with_other_branches_is_a_piecewise_function():
    traced = sg.trace(piecewise, x=("N", "D"), W=("D", "H"))
    d = sg.derive(traced, "W")
    rng = np.random.default_rng(10)
    args = dict(x=rng.normal(size=(5, 3)), W=rng.normal(size=(3, 4)))
    got = d.compile()(**traced.values(**args))
    np.testing.assert_allclose(got, finite_differences(piecewise, args, "W"), rtol=1e-6, atol=1e-9)


def array_api_classifier(X, y, W, b):
    """Written against the Array API: the namespace comes from the arrays themselves."""
    import array_api_compat

    xp = array_api_compat.array_namespace(X, W)
    N = X.shape[0]
    scores = xp.matmul(X, W) + b
    e = xp.exp(scores - xp.max(scores, axis=1, keepdims=True))
    probs = e / xp.sum(e, axis=1, keepdims=True)
    return -xp.mean(xp.log(probs[xp.arange(N), y])) + 0.5 * xp.sum(xp.matrix_transpose(W) ** 2)


def test_a_forward_written_against_the_array_api_traces_and_runs_on_numpy_and_torch():
    traced = sg.trace(array_api_classifier, X=("N", "D"), y=sg.labels("N", classes="C"), W=("D", "C"), b=("C",))
    d = sg.derive(traced, ["W", "b"])
    assert text(d.named[1]) == "1/N*1ᵀ*(softmax(scores) - y)"
    rng = np.random.default_rng(12)
    args = dict(X=rng.normal(size=(5, 3)), y=rng.integers(0, 4, size=5), W=rng.normal(size=(3, 4)),
                b=rng.normal(size=4))
    got = compiled_gradients(traced, d, args, ["W", "b"])
    assert_close(got, {k: finite_differences(array_api_classifier, args, k) for k in ("W", "b")}, rtol=1e-6)
    assert_close(got, torch_gradients(lambda xp, **a: array_api_classifier(**a), args, ["W", "b"]), rtol=1e-10)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_traced_graph_computes_the_users_forward(case):
    """The graph itself (not its gradient) evaluated by symgrad equals the user's NumPy forward."""
    forward, shapes, _, make_args, _ = CASES[case]
    traced = sg.trace(forward, **shapes)
    for seed in (3, 4):
        args = make_args(np.random.default_rng(seed))
        values = traced.values(**args)
        values.update({s.name: n for s, n in traced.bind_sizes(**args).items() if s in traced.inputs})
        got = traced.forward({k: v for k, v in values.items() if any(getattr(s, "name", None) == k
                                                                      for s in traced.inputs)})[traced.output]
        assert float(np.asarray(got).reshape(-1)[0]) == pytest.approx(forward(**args), rel=1e-10)


def test_float32_arguments_give_float32_gradients():
    forward, shapes, wrt, make_args, _ = CASES["cs231n"]
    traced = sg.trace(forward, **shapes)
    d = sg.derive(traced, wrt[:4])
    args = {k: v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
            for k, v in make_args(np.random.default_rng(0)).items()}
    values = traced.values(**args)
    assert values["y"].dtype == np.float32 and values["b1"].shape == (1, 5)
    grads = d.compile()(**values)
    assert all(g.dtype == np.float32 for g in grads)
    exact = d.compile()(**traced.values(**{k: v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f"
                                             else v for k, v in args.items()}))
    for g, e in zip(grads, exact):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


def max_pooled(x, W, v):
    z = np.tanh(x @ W)
    pooled = z.max(axis=1)  # (N,): max over the hidden units, the gradient to the first largest
    top = np.max(z, axis=0, keepdims=True)  # 1 × H
    return pooled @ v + (top * top).sum() + z.max()


def test_a_max_over_an_axis_is_the_catalog_row_maximum():
    traced = sg.trace(max_pooled, x=("N", "D"), W=("D", "H"), v=("N",))
    d = sg.derive(traced, ["W", "v"])
    rng = np.random.default_rng(13)
    args = dict(x=rng.normal(size=(5, 3)), W=rng.normal(size=(3, 4)), v=rng.normal(size=5))
    got = compiled_gradients(traced, d, args, ["W", "v"])
    assert_close(got, {k: finite_differences(max_pooled, args, k) for k in ("W", "v")}, rtol=1e-6, atol=1e-9)

    def in_torch(xp, x, W, v):
        z = torch.tanh(x @ W)
        return z.max(dim=1).values @ v + (z.max(dim=0).values ** 2).sum() + z.max()

    assert_close(got, torch_gradients(in_torch, args, ["W", "v"]), rtol=1e-10)


@pytest.mark.parametrize("forward", [lambda X, G: np.sum((np.abs(X) - X) * G),
                                     lambda X, G: np.sum(np.tanh(X) / X * G),
                                     lambda X, G: np.sum(((1.0 + np.exp(X)) @ G.T) * 2.0)])
def test_an_elementwise_sum_times_a_matrix_compiles_with_its_parentheses(forward):
    """(sign(X) − 1) ∘ G once compiled to sign(X) − 1 * G (found by tracing random forwards)."""
    traced = sg.trace(forward, X=("N", "D"), G=("N", "D"))
    rng = np.random.default_rng(14)
    args = dict(X=rng.normal(size=(4, 3)), G=rng.normal(size=(4, 3)))
    got = sg.derive(traced, "X").compile()(**traced.values(**args))
    np.testing.assert_allclose(got, finite_differences(forward, args, "X"), rtol=1e-6, atol=1e-8)


# --- random forwards: compositions of the supported calls, against finite differences -------------------
UNARY = [np.tanh, np.square, np.abs, lambda a: np.exp(0.3 * a), lambda a: 1 / (1 + np.exp(-a)),
         lambda a: np.maximum(0, a), lambda a: np.sqrt(a * a + 1.0), lambda a: -a, lambda a: np.log(1.0 + a * a),
         lambda a: np.where(a > 0, a, 0.1 * a), lambda a: a - a.mean(axis=1, keepdims=True),
         lambda a: a - a.mean(axis=0),
         lambda a: np.exp(a - a.max(axis=1, keepdims=True)) / np.exp(a - a.max(axis=1, keepdims=True)).sum(
             axis=1, keepdims=True),
         lambda a: a / np.sqrt((a * a).sum(axis=1, keepdims=True) + 1.0), lambda a: np.clip(a, -0.3, 0.6),
         lambda a: a * (a > 0), lambda a: np.minimum(a, 0.5), lambda a: a.sum(axis=1)[:, None] * a,
         lambda a: a * a.max(axis=0), lambda a: a + a.mean(), lambda a: a ** 3, lambda a: 2.0 ** a,
         lambda a: np.log1p(np.exp(a)), lambda a: a / np.sqrt(a.var(axis=0) + 1.0)]
BINARY = [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a - b, lambda a, b: a / (1.5 + b * b)]


def random_forward(seed: int):
    r = np.random.default_rng(seed)
    program = [(UNARY[r.integers(len(UNARY))], BINARY[r.integers(len(BINARY))], ["X", "b", "c", "s", "XW"][r.integers(5)])
               for _ in range(r.integers(1, 5))]

    def forward(X, W, b, c, s, G):
        h = X
        for unary, binary, other in program:
            h = binary(unary(h), {"X": X, "b": b, "c": c, "s": s, "XW": X @ W}[other])
        return np.sum(h * G)

    return forward


@pytest.mark.parametrize("seed", range(16))
def test_random_compositions_of_the_supported_calls_agree_with_finite_differences(seed):
    forward = random_forward(seed)
    traced = sg.trace(forward, X=("N", "D"), W=("D", "D"), b=("D",), c=("N", 1), s=(), G=("N", "D"))
    wrt = [w for w in ("X", "W", "b", "c", "s") if any(getattr(i, "name", None) == w for i in traced.inputs)]
    d = sg.derive(traced, wrt)
    rng = np.random.default_rng(100 + seed)
    args = dict(X=rng.normal(size=(4, 3)), W=rng.normal(size=(3, 3)), b=rng.normal(size=3), c=rng.normal(size=(4, 1)),
                s=0.7, G=rng.normal(size=(4, 3)))
    got = compiled_gradients(traced, d, args, wrt)
    for w in wrt:
        numeric = finite_differences(forward if w != "s" else (lambda **a: forward(**{**a, "s": float(a["s"])})),
                                     args, w)
        np.testing.assert_allclose(got[w], numeric, rtol=1e-5, atol=1e-7, err_msg=w)


def test_a_rebound_argument_and_a_local_named_like_a_size_get_names_of_their_own():
    def centred(x, W):
        x = x - x.mean(axis=0)  # the argument rebound
        D = x @ W  # a local named like the size D
        return np.sum(np.tanh(D))

    traced = sg.trace(centred, x=("N", "D"), W=("D", "H"))
    assert [n.name for n in traced.names] == ["x2", "D2", "L"]
    d = sg.derive(traced, ["x", "W"])
    rng = np.random.default_rng(15)
    args = dict(x=rng.normal(size=(4, 3)), W=rng.normal(size=(3, 2)))
    got = compiled_gradients(traced, d, args, ["x", "W"])
    assert_close(got, {k: finite_differences(centred, args, k) for k in ("x", "W")}, rtol=1e-6)


DATA = np.ones((4, 3))


def reads_a_global(w1):
    return (1 / (1 + np.exp(-DATA.dot(w1)))).sum()


def test_a_global_data_array_is_refused_with_the_fix():
    with pytest.raises(sg.TraceError, match=r"must be arguments of the forward.*") as info:
        sg.trace(reads_a_global, w1=(3, 5))
    assert "DATA.dot(w1)" in str(info.value)


def norms_and_clips(x, W):
    z = x @ W
    rows = np.linalg.norm(z, axis=1, keepdims=True)  # the 2-norm of each row
    p = np.clip(z / rows, -0.5, 0.8) + z.clip(0.1)
    return np.log(np.clip(np.exp(p), 1e-3, None)).sum() + np.linalg.norm(W)


def test_norms_and_clips_are_written_through_relu():
    traced = sg.trace(norms_and_clips, x=("N", "D"), W=("D", "H"))
    d = sg.derive(traced, ["x", "W"])
    rng = np.random.default_rng(17)
    args = dict(x=rng.normal(size=(5, 3)), W=rng.normal(size=(3, 4)))
    got = compiled_gradients(traced, d, args, ["x", "W"])
    assert_close(got, {k: finite_differences(norms_and_clips, args, k) for k in ("x", "W")}, rtol=1e-6, atol=1e-8)

    def in_torch(xp, x, W):
        z = x @ W
        p = torch.clamp(z / torch.linalg.norm(z, dim=1, keepdim=True), -0.5, 0.8) + torch.clamp(z, min=0.1)
        return torch.log(torch.clamp(torch.exp(p), min=1e-3)).sum() + torch.linalg.norm(W)

    assert_close(got, torch_gradients(in_torch, args, ["x", "W"]), rtol=1e-10, atol=1e-12)


def reductions_as_factors(X, W):
    """Scalars made of reductions multiplying arrays: a mean, a function of a sum, a norm."""
    z = X @ W * (X * X).mean()
    z = z / (1.0 + X.sum() ** 2)
    return (np.tanh(z) * np.sqrt((W * W).sum())).sum()


def test_a_reduction_multiplying_an_array_is_differentiated_as_part_of_it():
    traced = sg.trace(reductions_as_factors, X=("N", "D"), W=("D", "H"))
    d = sg.derive(traced, ["X", "W"])
    rng = np.random.default_rng(18)
    args = dict(X=rng.normal(size=(4, 3)), W=rng.normal(size=(3, 2)))
    got = compiled_gradients(traced, d, args, ["X", "W"])
    assert_close(got, {k: finite_differences(reductions_as_factors, args, k) for k in ("X", "W")}, rtol=1e-6)
