"""check_backward: hand-written NumPy backwards judged against their forwards.

Five layers written as ordinary NumPy, each with its correct hand backward and one with a planted bug.
The correct backwards are first checked against torch.autograd (independently of symgrad), then
check_backward must accept them (symbolically where they trace, and numerically when forced) and refute
every planted bug at the right gradient and entry.
"""

import numpy as np
import pytest

import symgrad as sg
from symgrad.backcheck import proven_equal
from symgrad.tracing import labels

EPS = 1e-5


# --- the layers: forward, hand backward, planted bugs -------------------------------------------------
def net_forward(x, y, w1, w2):
    """The lecture notes' 20-line network: L = ||σ(x W1) W2 − y||²."""
    h = 1 / (1 + np.exp(-x.dot(w1)))
    y_pred = h.dot(w2)
    return np.square(y_pred - y).sum()


def net_backward(x, y, w1, w2, bug=None):
    h = 1 / (1 + np.exp(-x.dot(w1)))
    y_pred = h.dot(w2)
    grad_y_pred = (1.0 if bug == "factor 2" else 2.0) * (y_pred - y)  # the bug: a forgotten 2
    grad_w2 = h.T.dot(grad_y_pred)
    grad_h = grad_y_pred.dot(w2.T)
    grad_w1 = x.T.dot(grad_h * h * (1 - h))
    return grad_w1, grad_w2


def clf_forward(X, y, W1, b1, W2, b2, reg):
    """CS231n's two-layer classifier: affine, ReLU, affine, stable softmax cross-entropy (mean), L2."""
    N = X.shape[0]
    hidden = np.maximum(0, X.dot(W1) + b1)
    scores = hidden.dot(W2) + b2
    shifted = scores - np.max(scores, axis=1, keepdims=True)
    probs = np.exp(shifted) / np.sum(np.exp(shifted), axis=1, keepdims=True)
    data_loss = -np.sum(np.log(probs[np.arange(N), y])) / N
    return data_loss + 0.5 * reg * (np.sum(W1 * W1) + np.sum(W2 * W2))


def clf_backward(X, y, W1, b1, W2, b2, reg, bug=None):
    """CS231n's backward, in place (dscores[arange(N), y] -= 1; dhidden[hidden <= 0] = 0)."""
    N = X.shape[0]
    hidden = np.maximum(0, X.dot(W1) + b1)
    scores = hidden.dot(W2) + b2
    shifted = scores - np.max(scores, axis=1, keepdims=True)
    probs = np.exp(shifted) / np.sum(np.exp(shifted), axis=1, keepdims=True)
    dscores = probs.copy()
    dscores[np.arange(N), y] -= 1
    dscores /= N
    dW2 = hidden.T.dot(dscores) + reg * W2
    db2 = np.sum(dscores, axis=0)
    dhidden = dscores.dot(W2.T)
    if bug == "wrong mask":
        dhidden[hidden > 0] = 0  # the bug: the mask inverted
    else:
        dhidden[hidden <= 0] = 0
    dW1 = X.T.dot(dhidden) + reg * W1
    db1 = np.sum(dhidden, axis=0)
    return dW1, db1, dW2, db2


def clf_backward_where(X, y, W1, b1, W2, b2, reg, bug=None):
    """The same backward without item assignment: np.where for the ReLU mask, a one-hot for the labels."""
    N = X.shape[0]
    hidden = np.maximum(0, X.dot(W1) + b1)
    scores = hidden.dot(W2) + b2
    shifted = scores - np.max(scores, axis=1, keepdims=True)
    probs = np.exp(shifted) / np.sum(np.exp(shifted), axis=1, keepdims=True)
    onehot = np.zeros_like(probs)
    onehot[np.arange(N), y] = 1
    dscores = (probs - onehot) / N
    dW2 = hidden.T.dot(dscores) + reg * W2
    db2 = np.sum(dscores, axis=0)
    dhidden = np.where(hidden > 0, dscores.dot(W2.T), 0)
    dW1 = X.T.dot(dhidden) + reg * W1
    db1 = np.sum(dhidden, axis=0)
    return dW1, db1, dW2, db2


def ln_forward(x, gamma, beta, dout):
    """Layer norm over the features (rows), with gain and bias; L = Σ out ∘ dout."""
    mu = np.mean(x, axis=1, keepdims=True)
    xc = x - mu
    var = np.mean(xc ** 2, axis=1, keepdims=True)
    xhat = xc / np.sqrt(var + EPS)
    return np.sum((gamma * xhat + beta) * dout)


def ln_backward(x, gamma, beta, dout, bug=None):
    mu = np.mean(x, axis=1, keepdims=True)
    xc = x - mu
    var = np.mean(xc ** 2, axis=1, keepdims=True)
    inv = 1 / np.sqrt(var + EPS)
    xhat = xc * inv
    dxhat = dout * gamma
    proj = xhat * np.mean(dxhat * xhat, axis=1, keepdims=True)
    dx = (dxhat - np.mean(dxhat, axis=1, keepdims=True) + (proj if bug == "sign" else -proj)) * inv
    dgamma = np.sum(dout * xhat, axis=0)
    dbeta = np.sum(dout, axis=0)
    return dx, dgamma, dbeta


def bn_forward(x, gamma, beta, dout):
    """Batch norm in training mode (statistics over the batch, axis 0); L = Σ out ∘ dout."""
    mu = np.mean(x, axis=0)
    xc = x - mu
    var = np.mean(xc ** 2, axis=0)
    xhat = xc / np.sqrt(var + EPS)
    return np.sum((gamma * xhat + beta) * dout)


def bn_backward(x, gamma, beta, dout, bug=None):
    N = x.shape[0]
    mu = np.mean(x, axis=0)
    xc = x - mu
    var = np.mean(xc ** 2, axis=0)
    inv = 1 / np.sqrt(var + EPS)
    xhat = xc * inv
    dxhat = dout * gamma
    mean_term = np.sum(dxhat, axis=0) if bug == "mean" else np.sum(dxhat, axis=0) / N  # the bug: 1/N dropped
    dx = (dxhat - mean_term - xhat * np.sum(dxhat * xhat, axis=0) / N) * inv
    dgamma = np.sum(dout * xhat, axis=0)
    dbeta = np.sum(dout, axis=0)
    return dx, dgamma, dbeta


def attn_forward(X, Wq, Wk, Wv, dout):
    """Single-head self-attention softmax(Q Kᵀ / √d) V with Q, K, V = X Wq, X Wk, X Wv; L = Σ out ∘ dout."""
    Q, K, V = X.dot(Wq), X.dot(Wk), X.dot(Wv)
    S = Q.dot(K.T) * 0.5  # 1/√d with d = 4
    S = S - np.max(S, axis=1, keepdims=True)
    P = np.exp(S) / np.sum(np.exp(S), axis=1, keepdims=True)
    return np.sum(P.dot(V) * dout)


def attn_backward(X, Wq, Wk, Wv, dout, bug=None):
    Q, K, V = X.dot(Wq), X.dot(Wk), X.dot(Wv)
    S = Q.dot(K.T) * 0.5
    S = S - np.max(S, axis=1, keepdims=True)
    P = np.exp(S) / np.sum(np.exp(S), axis=1, keepdims=True)
    dV = P.T.dot(dout)
    dP = dout.dot(V.T)
    dS = P * (dP - np.sum(dP * P, axis=1, keepdims=True)) * 0.5
    dQ = dS.dot(K)
    dK = dS.dot(Q) if bug == "transpose" else dS.T.dot(Q)  # the bug: dS instead of dSᵀ
    return X.T.dot(dQ), X.T.dot(dK), X.T.dot(dV)


NET = dict(x=("N", "D"), y=("N", "O"), w1=("D", "H"), w2=("H", "O"))
NORM = dict(x=("N", "D"), gamma=("D",), beta=("D",), dout=("N", "D"))
ATTN = dict(X=("T", "D"), Wq=("D", 4), Wk=("D", 4), Wv=("D", "E"), dout=("T", "E"))
CLF = dict(X=("N", "D"), y=labels("N", classes="C"), W1=("D", "H"), b1=("H",), W2=("H", "C"), b2=("C",), reg=())
CASES = {  # name: forward, backward, wrt, shapes, bug, the gradients the bug breaks
    "classifier": (clf_forward, clf_backward, ["W1", "b1", "W2", "b2"], CLF, "wrong mask", ("W1", "b1")),
    "twenty-line net": (net_forward, net_backward, ["w1", "w2"], NET, "factor 2", ("w1", "w2")),
    "layer norm": (ln_forward, ln_backward, ["x", "gamma", "beta"], NORM, "sign", ("x",)),
    "batch norm": (bn_forward, bn_backward, ["x", "gamma", "beta"], NORM, "mean", ("x",)),
    "attention": (attn_forward, attn_backward, ["Wq", "Wk", "Wv"], ATTN, "transpose", ("Wk",)),
}


# --- the hand backwards are right: torch.autograd, independently of symgrad ------------------------------
torch = pytest.importorskip("torch")


def _arrays(shapes, sizes, rng):
    out = {}
    for name, shape in shapes.items():
        out[name] = rng.normal(size=tuple(sizes.get(d, d) for d in shape))
    return out


@pytest.mark.parametrize("case", sorted(set(CASES) - {"classifier"}))
def test_hand_backwards_agree_with_torch_autograd(case):
    forward, backward, wrt, shapes, bug, broken = CASES[case]
    rng = np.random.default_rng(1)
    point = _arrays(shapes, {"N": 5, "D": 4, "H": 3, "O": 2, "T": 5, "E": 3}, rng)
    ours = backward(**point)
    ours_bug = backward(**point, bug=bug)
    leaves = {k: torch.tensor(v, requires_grad=k in wrt) for k, v in point.items()}
    torch_forward = TORCH[case]
    torch_forward(**leaves).backward()
    for name, g, gb in zip(wrt, ours, ours_bug):
        reference = leaves[name].grad.numpy()
        np.testing.assert_allclose(g, reference, rtol=1e-10, atol=1e-12)
        assert np.allclose(gb, reference, rtol=1e-6, atol=1e-9) == (name not in broken), name


def test_the_classifier_backwards_agree_with_torch_autograd():
    rng = np.random.default_rng(2)
    point = dict(X=rng.normal(size=(5, 4)), y=rng.integers(0, 3, size=5), W1=rng.normal(size=(4, 6)),
                 b1=rng.normal(size=6), W2=rng.normal(size=(6, 3)), b2=rng.normal(size=3), reg=0.3)
    leaves = {k: torch.tensor(v, requires_grad=k in ("W1", "b1", "W2", "b2")) for k, v in point.items()}
    hidden = torch.relu(leaves["X"] @ leaves["W1"] + leaves["b1"])
    scores = hidden @ leaves["W2"] + leaves["b2"]
    loss = torch.nn.functional.cross_entropy(scores, leaves["y"]) + 0.5 * 0.3 * (
        (leaves["W1"] ** 2).sum() + (leaves["W2"] ** 2).sum())
    loss.backward()
    assert np.isclose(clf_forward(**point), loss.item(), rtol=1e-12)
    reference = [leaves[k].grad.numpy() for k in ("W1", "b1", "W2", "b2")]
    for backward in (clf_backward, clf_backward_where):
        for g, r in zip(backward(**point), reference):
            np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)
    wrong = clf_backward(**point, bug="wrong mask")
    assert not np.allclose(wrong[0], reference[0]) and np.allclose(wrong[2], reference[2])


def _t_net(x, y, w1, w2):
    return ((torch.sigmoid(x @ w1) @ w2 - y) ** 2).sum()


def _t_ln(x, gamma, beta, dout):
    return (torch.nn.functional.layer_norm(x, (x.shape[1],), gamma, beta, eps=EPS) * dout).sum()


def _t_bn(x, gamma, beta, dout):
    return (torch.nn.functional.batch_norm(x, None, None, gamma, beta, training=True, eps=EPS) * dout).sum()


def _t_attn(X, Wq, Wk, Wv, dout):
    Q, K, V = X @ Wq, X @ Wk, X @ Wv
    return (torch.softmax(Q @ K.T / 2.0, dim=1) @ V * dout).sum()


def _t_clf(X, y, W1, b1, W2, b2, reg):
    scores = torch.relu(X @ W1 + b1) @ W2 + b2
    return torch.nn.functional.cross_entropy(scores, y) + 0.5 * reg * ((W1 ** 2).sum() + (W2 ** 2).sum())


TORCH = {"classifier": _t_clf, "twenty-line net": _t_net, "layer norm": _t_ln, "batch norm": _t_bn,
         "attention": _t_attn}


# --- check_backward: symbolically where both trace, numerically otherwise ----------------------------------
TRACEABLE = {"twenty-line net", "attention", "layer norm", "batch norm"}  # the classifier's backward assigns in place
# the derivation of a norm's ∂L/∂x is the catalog's norm-backward block, an atom the expansion does not open
NOT_PROVEN = {("layer norm", "x"), ("batch norm", "x")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_correct_backward_is_accepted(case):
    forward, backward, wrt, shapes, _, _ = CASES[case]
    report = sg.check_backward(forward, backward, wrt, **shapes)
    assert report.ok, str(report)
    assert [g.name for g in report.gradients] == wrt
    if case in TRACEABLE:
        assert report.method == "symbolic", str(report)
        assert [g.status for g in report.gradients] == [
            "consistent" if (case, w) in NOT_PROVEN else "proven" for w in wrt], str(report)
    else:
        assert report.method == "numeric" and "not traced" in report.notes[0], str(report)
        assert all(g.status == "consistent" for g in report.gradients)
    assert report.max_rel_error < 1e-6


def test_a_wrong_truth_never_judges_the_backward(monkeypatch):
    """The compiled derivation is trusted only after finite differences agree: a wrong one sends the check
    to the numbers (it neither refutes the right backward nor confirms one that is wrong like it)."""
    from symgrad import backcheck

    real = backcheck._truth_values
    monkeypatch.setattr(backcheck, "_truth_values", lambda *args: [2 * v for v in real(*args)])
    report = sg.check_backward(net_forward, net_backward, ["w1", "w2"], **NET)
    assert report.ok and report.method == "numeric" and "disagrees with finite differences" in report.notes[0]
    doubled = sg.check_backward(net_forward, lambda **kw: tuple(2 * g for g in net_backward(**kw)), ["w1", "w2"], **NET)
    assert not doubled.ok and doubled.method == "numeric"
    with pytest.raises(sg.SymgradLimit, match="disagrees with finite differences"):
        sg.check_backward(net_forward, net_backward, ["w1", "w2"], method="symbolic", **NET)


@pytest.mark.parametrize("case", sorted(CASES))
def test_numeric_accepts_the_correct_backward(case):
    forward, backward, wrt, shapes, _, _ = CASES[case]
    report = sg.check_backward(forward, backward, wrt, method="numeric", **shapes)
    assert report.method == "numeric" and report.ok, str(report)
    assert all("skipped: the forward is not finite there" in n for n in report.notes), report.notes
    assert all(g.status == "consistent" for g in report.gradients)


@pytest.mark.parametrize("method", ["auto", "numeric"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_planted_bug_is_refuted_where_it_is(case, method):
    forward, backward, wrt, shapes, bug, broken = CASES[case]
    report = sg.check_backward(forward, lambda **kw: backward(**kw, bug=bug), wrt, method=method, **shapes)
    assert not report.ok and report.failure.name == broken[0], str(report)
    assert [g.name for g in report.gradients if not g.ok] == list(broken)
    assert report.method == ("symbolic" if method == "auto" and case in TRACEABLE else "numeric")
    assert_located(case, report, backward, bug, wrt)


def assert_located(case, report, backward, bug, wrt):
    """The located entry is really wrong: the truth there from torch.autograd at the report's own point."""
    fail = report.failure
    leaves = {k: torch.tensor(np.asarray(v), requires_grad=k == fail.name) for k, v in report.point.items()}
    TORCH[case](**leaves).backward()
    truth = leaves[fail.name].grad.numpy()
    got = backward(**report.point, bug=bug)[wrt.index(fail.name)]
    assert np.isclose(fail.expected, truth[fail.entry], rtol=1e-6)
    assert fail.got == got[fail.entry] and not np.isclose(got[fail.entry], truth[fail.entry], rtol=1e-6)
    assert fail.name in str(report) and str(fail.entry) in str(report)


def test_a_forced_symbolic_check_of_an_untraceable_backward_says_why():
    with pytest.raises(sg.SymgradLimit, match="method='symbolic'.*not traced"):
        sg.check_backward(clf_forward, clf_backward, ["W1"], method="symbolic", **CLF)


def test_the_symbolic_refutation_is_diagnosed():
    report = sg.check_backward(net_forward, lambda **kw: net_backward(**kw, bug="factor 2"), ["w1", "w2"], **NET)
    assert report.method == "symbolic" and [g.status for g in report.gradients] == ["refuted", "refuted"]
    assert any("constant factor 1/2" in d for d in report["w2"].diagnosis)
    assert report["w2"].expected == pytest.approx(2 * report["w2"].got, rel=1e-12)


def test_numeric_diagnoses_the_forgotten_factor_two():
    report = sg.check_backward(net_forward, lambda **kw: net_backward(**kw, bug="factor 2"), ["w1", "w2"],
                               method="numeric", **NET)
    assert [g.status for g in report.gradients] == ["refuted", "refuted"]
    assert any("constant factor 1/2" in d for d in report["w2"].diagnosis)


@pytest.mark.parametrize("method", ["auto", "numeric"])
def test_wrong_count_is_an_error_and_wrong_shape_is_refuted(method):
    with pytest.raises(ValueError, match="returned 1 arrays for wrt"):
        sg.check_backward(net_forward, lambda **kw: net_backward(**kw)[:1], ["w1", "w2"], method=method, **NET)
    with pytest.raises(ValueError, match="one per name"):
        sg.check_backward(net_forward, lambda **kw: net_backward(**kw)[0], ["w1", "w2"], method=method, **NET)
    report = sg.check_backward(net_forward, lambda **kw: (net_backward(**kw)[0].T, net_backward(**kw)[1]),
                               ["w1", "w2"], method=method, **NET)
    assert not report.ok and report.failure.name == "w1" and "shape" in report.failure.reason
    assert report.failure.reason.endswith("but w1 has shape D×H" if method == "auto" else "but w1 has shape (4, 6)")
    assert report["w2"].ok and report.method == ("symbolic" if method == "auto" else "numeric")


@pytest.mark.parametrize("kwargs,message", [
    (dict(wrt=["W"]), "unknown wrt name 'W'"),
    (dict(wrt=[]), "wrt is empty"),
    (dict(wrt=["w1", "w1"]), "twice"),
    (dict(wrt=["w1"], method="guess"), "method must be one of"),
    (dict(wrt=["w1"], sizes={"N": 0}), "positive integer"),
])
def test_bad_input_is_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sg.check_backward(net_forward, net_backward, **kwargs, **NET)


def test_every_argument_needs_a_shape_and_every_shape_an_argument():
    with pytest.raises(TypeError, match=r"check_backward\(net_forward, ...\): no shape for w2"):
        sg.check_backward(net_forward, net_backward, ["w1"], **{k: v for k, v in NET.items() if k != "w2"})
    with pytest.raises(TypeError, match=r"lam is not an argument of the forward \(its arguments: x, y, w1, w2\)"):
        sg.check_backward(net_forward, net_backward, ["w1"], lam=(), **NET)


def test_one_name_takes_one_array_and_the_report_renders():
    report = sg.check_backward(net_forward, lambda **kw: net_backward(**kw)[1], "w2", method="numeric", **NET)
    assert report.ok and report["w2"].status == "consistent"
    bad = sg.check_backward(net_forward, lambda **kw: net_backward(**kw, bug="factor 2")[1], "w2",
                            method="numeric", **NET)
    text = str(bad)
    assert text.startswith("backward REFUTED: numeric") and "w2: refuted at entry" in text
    assert len(text.splitlines()) < 25
    assert r"\frac{\partial L}{\partial w_{2}}" in bad._repr_latex_() and r"\neq" in bad._repr_latex_()
    assert "**backward REFUTED**" in bad._repr_markdown_()


# --- the proof: expansions equal only when the matrix expressions are -------------------------------------
def _matrices():
    import sympy as sp

    n, m = sp.symbols("n m", integer=True, positive=True)
    return sp, n, m, sp.MatrixSymbol("A", n, n), sp.MatrixSymbol("B", n, n), sp.MatrixSymbol("C", n, m)


def test_identities_of_matrix_algebra_are_proven():
    sp, n, m, A, B, C = _matrices()
    v = sp.MatrixSymbol("v", n, 1)
    s = sg.sigmoid(A * C)
    assert proven_equal(sp.hadamard_product(A, B), sp.hadamard_product(B, A))
    assert proven_equal((A * B).T, B.T * A.T)
    assert proven_equal(2.0 * (A + B) * C, 2 * A * C + 2 * B * C)
    assert proven_equal(sg.sigmoid(A * C).T, sg.sigmoid(C.T * A.T))
    assert proven_equal(sp.hadamard_product(s, sp.OneMatrix(n, m) - s), s - sp.HadamardProduct(s, s))
    assert proven_equal(sp.HadamardPower(s, 2), sp.HadamardProduct(s, s))
    assert proven_equal(v * sp.OneMatrix(1, n) * sp.OneMatrix(n, m), n * v * sp.OneMatrix(1, m))


def test_what_is_not_an_identity_is_not_proven():
    sp, n, m, A, B, C = _matrices()
    assert not proven_equal(A, A.T)
    assert not proven_equal(sp.hadamard_product(A, B), A * B)
    assert not proven_equal(A * B, B * A)
    assert not proven_equal(2 * A * C, A * C)
    assert not proven_equal(sg.sigmoid(A * C), sg.sigmoid(C.T * A.T).T * 1.0000001)
    assert not proven_equal(A * C, C.T * A)  # shapes differ


def test_sizes_and_arguments_named_like_keywords():
    report = sg.check_backward(net_forward, net_backward, ["w1", "w2"], sizes={"N": 8, "H": 2}, **NET)
    assert report.ok and report.sizes["N"] == 8 and report.point["w1"].shape[1] == 2

    def ridge(x, y, w, seed):  # an argument named like a keyword of check_backward: pass shapes=
        return np.square(x.dot(w) - y).sum() + seed * np.sum(w * w)

    def ridge_backward(x, y, w, seed):
        return 2 * x.T.dot(x.dot(w) - y) + 2 * seed * w

    shapes = dict(x=("N", "D"), y=("N", 1), w=("D", 1), seed=())
    report = sg.check_backward(ridge, ridge_backward, "w", shapes=shapes)
    assert report.ok and report.method == "symbolic" and report["w"].status == "proven", str(report)
    wrong = sg.check_backward(ridge, lambda **kw: ridge_backward(**kw) - kw["seed"] * kw["w"], "w", shapes=shapes)
    assert not wrong.ok and wrong.failure.name == "w" and wrong.failure.entry[1] == 0


def test_a_scalar_gradient_is_judged_too():
    def ridge(x, y, w, lam):
        return np.square(x.dot(w) - y).sum() + lam * np.sum(w * w)

    shapes = dict(x=("N", "D"), y=("N", 1), w=("D", 1), lam=())
    right = sg.check_backward(ridge, lambda x, y, w, lam: (2 * x.T.dot(x.dot(w) - y) + 2 * lam * w, np.sum(w * w)),
                              ["w", "lam"], **shapes)
    assert right.ok and [g.status for g in right.gradients] == ["proven", "proven"], str(right)
    wrong = sg.check_backward(ridge, lambda x, y, w, lam: (2 * x.T.dot(x.dot(w) - y) + 2 * lam * w, np.sum(w)),
                              ["w", "lam"], **shapes)
    fail = wrong.failure
    assert fail.name == "lam" and fail.entry == () and "lam: refuted: expected" in str(wrong)
    assert fail.expected == pytest.approx(float(np.sum(wrong.point["w"] ** 2)), rel=1e-12)


def test_a_slip_of_one_in_ten_million_is_refuted_symbolically():
    report = sg.check_backward(net_forward, lambda **kw: (net_backward(**kw)[0], net_backward(**kw)[1] * (1 + 1e-7)),
                               ["w1", "w2"], **NET)
    assert report.method == "symbolic" and report["w1"].status == "proven", str(report)
    assert report.failure.name == "w2" and report["w2"].max_rel_error == pytest.approx(1e-7, rel=1e-3)


def test_a_slip_in_one_entry_is_located_numerically():
    def slipped(**kw):  # item assignment: not traced, checked by finite differences
        g1, g2 = net_backward(**kw)
        g2 = g2.copy()
        g2[1, 2] *= 1 + 1e-4
        return g1, g2

    report = sg.check_backward(net_forward, slipped, ["w1", "w2"], **NET)
    assert report.method == "numeric" and report.failure.name == "w2" and report.failure.entry == (1, 2), str(report)
    assert report["w1"].ok and any("single wrong entry at (1, 2)" in d for d in report["w2"].diagnosis)


def test_elementwise_functions_of_one_argument_multiply():
    sp, n, m, A, B, C = _matrices()
    t = sp.Symbol("t", real=True)
    f = lambda body, X: sp.matrices.expressions.applyfunc.ElementwiseApplyFunction(sp.Lambda(t, body), X)  # noqa: E731
    assert proven_equal(sp.HadamardProduct(f(sp.tanh(t), A), f(sp.tanh(t), A)), f(sp.tanh(t) ** 2, A))
    assert proven_equal(f(2 * t, A), 2 * A)
    assert proven_equal(sp.HadamardProduct(A, f(1 / t, A)), sp.OneMatrix(n, n))
    assert proven_equal(sp.HadamardProduct(A, f(2 / t, A)), 2 * sp.OneMatrix(n, n))
    assert not proven_equal(sp.HadamardProduct(A, f(2 / t, A)), sp.OneMatrix(n, n))
    assert not proven_equal(sp.HadamardProduct(A, f(1 / t, B)), sp.OneMatrix(n, n))
    assert not proven_equal(sp.HadamardProduct(f(sp.tanh(t), A), f(sp.tanh(t), A)), f(sp.tanh(t), A))


def test_a_tanh_network_is_proven_however_the_square_is_written():
    def loss(x, y, w1, w2):
        return np.square(np.tanh(x.dot(w1)).dot(w2) - y).sum()

    def backward(x, y, w1, w2, power=2):
        h = np.tanh(x.dot(w1))
        g = 2 * (h.dot(w2) - y)
        return x.T.dot(g.dot(w2.T) * (1 - (h * h if power == "hh" else h ** power))), h.T.dot(g)

    for power in (2, "hh"):
        report = sg.check_backward(loss, lambda **kw: backward(**kw, power=power), ["w1", "w2"], **NET)
        assert [g.status for g in report.gradients] == ["proven", "proven"], str(report)
    wrong = sg.check_backward(loss, lambda **kw: backward(**kw, power=3), ["w1", "w2"], **NET)
    assert wrong.failure.name == "w1" and wrong["w2"].status == "proven"


# --- verdicts are promises: nan is never "ok", a point outside the domain never refutes -------------------
def _tanh_loss(x, W):
    return np.sum(np.tanh(x @ W))


def _tanh_grad(x, W):
    return x.T @ (1 - np.tanh(x @ W) ** 2)


TANH = dict(x=("N", "D"), W=("D", "H"))


def _poisoned(kind):
    def backward(x, W):
        g = _tanh_grad(x, W).copy()  # item assignment: checked numerically
        if kind == "all nan":
            g[:] = np.nan
        else:
            g[1, 1] = np.nan if kind == "one nan" else np.inf
        return g
    return backward


@pytest.mark.parametrize("method", ["auto", "numeric"])
@pytest.mark.parametrize("kind", ["one nan", "one inf", "all nan"])
def test_a_non_finite_gradient_is_refuted(kind, method):
    report = sg.check_backward(_tanh_loss, _poisoned(kind), "W", method=method, **TANH)
    assert not report.ok and report.failure.name == "W" and report.max_rel_error == np.inf, str(report)
    assert any("not finite" in d for d in report.failure.diagnosis), str(report)
    assert report.failure.entry == ((0, 0) if kind == "all nan" else (1, 1)) and not np.isfinite(report.failure.got)


def test_a_traced_backward_that_is_nan_somewhere_is_refuted_and_says_so():
    def backward(x, W):  # traced: nan from 0/0 at every entry
        t = np.tanh(x @ W) ** 2
        return x.T @ ((1 - t) * np.sqrt(t - 4.0) / np.sqrt(t - 4.0))

    report = sg.check_backward(_tanh_loss, backward, "W", **TANH)
    assert report.method == "symbolic" and not report.ok and "returns nan" in str(report), str(report)


def test_none_for_a_gradient_is_a_clear_error():
    def loss(x, W, lam):
        return _tanh_loss(x, W) + lam * np.sum(W ** 2)

    shapes = dict(TANH, lam=())
    for method in ("auto", "numeric"):
        with pytest.raises(ValueError, match="backward returned None for lam"):
            sg.check_backward(loss, lambda x, W, lam: (_tanh_grad(x, W) + 2 * lam * W, None), ["W", "lam"],
                              method=method, **shapes)
    nan = sg.check_backward(loss, lambda x, W, lam: (_tanh_grad(x, W) + 2 * lam * W, np.nan), ["W", "lam"], **shapes)
    assert not nan.ok and nan.failure.name == "lam" and nan["W"].ok, str(nan)


@pytest.mark.parametrize("returned,message", [
    (lambda x, W: (np.sum(np.tanh(x @ W)), np.tanh(x @ W)), "returned tuple"),
    (lambda x, W: None, "returned NoneType"),
    (lambda x, W: {"loss": np.sum(np.tanh(x @ W))}, "returned dict"),
    (lambda x, W: np.tanh(x @ W), r"an array of shape \(3, 5\)"),
])
def test_the_forward_must_return_a_scalar_loss(returned, message):
    for method in ("auto", "numeric"):
        with pytest.raises(ValueError, match="the forward must return a scalar loss.*" + message):
            sg.check_backward(returned, _tanh_grad, "W", method=method, **TANH)


def _ln_eps(x, g, eps):
    mu = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    return np.sum(np.tanh(g * (x - mu) / np.sqrt(var + eps)))


def _ln_eps_backward(x, g, eps, factor=1.0):
    D = x.shape[1]
    mu = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    inv = 1 / np.sqrt(var + eps)
    xh = (x - mu) * inv
    dout = 1 - np.tanh(g * xh) ** 2
    dxh = dout * g
    dx = inv / D * (D * dxh - dxh.sum(axis=1, keepdims=True) - xh * (dxh * xh).sum(axis=1, keepdims=True))
    return factor * dx, np.sum(dout * xh, axis=0)


def test_a_scalar_outside_the_forwards_domain_never_refutes():
    """ε under a square root: a negative draw makes the forward nan; such points are drawn again (ε > 0), the
    correct backward is accepted (checked here against torch), the wrong one refuted at a point with ε > 0."""
    shapes = dict(x=("N", "D"), g=("D",), eps=())
    rng = np.random.default_rng(3)
    x, g, eps = rng.normal(size=(3, 4)), rng.normal(size=4), 0.3
    tx, tg = torch.tensor(x, requires_grad=True), torch.tensor(g, requires_grad=True)
    torch.tanh(tg * torch.nn.functional.layer_norm(tx, (4,), eps=eps)).sum().backward()
    for ours, reference in zip(_ln_eps_backward(x, g, eps), (tx.grad, tg.grad)):
        np.testing.assert_allclose(ours, reference.numpy(), rtol=1e-10, atol=1e-12)
    for method in ("auto", "numeric"):
        right = sg.check_backward(_ln_eps, _ln_eps_backward, ["x", "g"], method=method, **shapes)
        assert right.ok, str(right)
        assert "symgrad" not in str(right) and "nan" not in str(right)
        wrong = sg.check_backward(_ln_eps, lambda **kw: _ln_eps_backward(**kw, factor=3.0), ["x", "g"],
                                  method=method, **shapes)
        assert wrong.failure.name == "x" and wrong["g"].ok and wrong.point["eps"] > 0, str(wrong)


def test_a_forward_never_finite_is_undecided_never_refuted():
    def nowhere(x, W):
        return np.sum(np.sqrt(-1.0 - (x @ W) ** 2))

    report = sg.check_backward(nowhere, _tanh_grad, "W", **TANH)
    assert report["W"].status == "undecided" and report.failure is None and not report.ok, str(report)
    assert str(report).startswith("backward UNDECIDED")


def _hinge(X, t, w):
    return np.mean(np.maximum(0, 1 - t * (X @ w)))


def _hinge_backward(X, t, w, mask=True):
    m = (1 - t * (X @ w)) > 0 if mask else 1.0
    return -X.T @ (t * m) / X.shape[0]


def _relu6(x, W, V):
    return np.sum(np.square(np.minimum(np.maximum(x @ W, 0), 6.0) @ V))


def _relu6_backward(x, W, V, clip=True):
    z = x @ W
    h = np.minimum(np.maximum(z, 0), 6.0)
    g = 2 * (h @ V)
    mask = (z > 0) & (z < 6) if clip else z > 0
    return x.T @ ((g @ V.T) * mask), h.T @ g


@pytest.mark.parametrize("case", ["hinge", "relu6"])
def test_a_bug_that_shows_only_past_a_threshold_is_refuted(case):
    """The hinge's margin mask (wrong where t·s > 1) and ReLU6's clip (wrong where z > 6) never show at inputs
    in (−1, 1): inputs across magnitudes find them. The right backwards agree with torch and are accepted."""
    if case == "hinge":
        forward, backward, wrt, shapes = _hinge, _hinge_backward, "w", dict(X=("N", "D"), t=("N", 1), w=("D", 1))
        broken = lambda **kw: _hinge_backward(**kw, mask=False)  # noqa: E731
        t_forward = lambda X, t, w: torch.clamp(1 - t * (X @ w), min=0).mean()  # noqa: E731
    else:
        forward, backward, wrt = _relu6, _relu6_backward, ["W", "V"]
        shapes = dict(x=("N", "D"), W=("D", "H"), V=("H", "O"))
        broken = lambda **kw: _relu6_backward(**kw, clip=False)  # noqa: E731
        t_forward = lambda x, W, V: (torch.nn.functional.relu6(x @ W) @ V).square().sum()  # noqa: E731
    names = [wrt] if isinstance(wrt, str) else wrt
    right = sg.check_backward(forward, backward, wrt, **shapes)
    assert right.ok, str(right)
    wrong = sg.check_backward(forward, broken, wrt, **shapes)
    assert not wrong.ok and wrong.failure.name == names[0], str(wrong)
    fail = wrong.failure  # the located entry is wrong by torch's gradient at the report's own point
    leaves = {k: torch.tensor(np.asarray(v, dtype=float), requires_grad=k == fail.name) for k, v in wrong.point.items()}
    t_forward(**leaves).backward()
    truth = leaves[fail.name].grad.numpy()
    ours = backward(**wrong.point)
    ours = ours if isinstance(ours, tuple) else (ours,)
    np.testing.assert_allclose(ours[names.index(fail.name)], truth, rtol=1e-9, atol=1e-12 * np.abs(truth).max())
    assert np.isclose(fail.expected, truth[fail.entry], rtol=1e-6) and not np.isclose(fail.got, truth[fail.entry])


def test_a_symbolic_check_without_a_proof_says_not_proven():
    forward, backward, wrt, shapes, _, _ = CASES["layer norm"]
    report = sg.check_backward(forward, backward, wrt, **shapes)
    line = next(line for line in str(report).splitlines() if line.strip().startswith("x:"))
    assert report["x"].status == "consistent" and "x: consistent, not proven" in line and "x: proven" not in line
    assert r"\text{consistent (not proven)}" in report._repr_latex_()


@pytest.mark.parametrize("slip", [1e-6, 1e-7])
def test_a_slip_in_one_entry_of_one_in_a_million_is_refuted_numerically(slip):
    def slipped(x, W):
        g = _tanh_grad(x, W).copy()
        g[2, 3] *= 1 + slip
        return g

    report = sg.check_backward(_tanh_loss, slipped, "W", method="numeric", **TANH)
    assert not report.ok and report.failure.entry == (2, 3), str(report)
    right = sg.check_backward(_tanh_loss, _tanh_grad, "W", method="numeric", **TANH)
    assert right.ok and "resolution" in right["W"].how, str(right)


def test_the_cli_shows_the_users_own_exception_with_its_line(tmp_path, capsys):
    from symgrad.cli import main

    model = tmp_path / "model.py"
    model.write_text("import numpy as np\n\n\ndef loss(x, w):\n    raise KeyError('no such layer')\n\n\n"
                     "def fine(x, w):\n    return np.sum(np.tanh(x @ w))\n\n\n"
                     "def backward(x, w):\n    raise ValueError('user error inside')\n")
    assert main(["trace", f"{model}:loss", "--shape", "x=N,D", "--shape", "w=D,H"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("symgrad: error: the user's code raised KeyError: 'no such layer'"), err
    assert f"{model}:5: raise KeyError('no such layer')" in err and len(err.splitlines()) == 1
    assert main(["trace", f"{model}:fine", "--shape", "x=N,D", "--shape", "w=D,H", "--wrt", "w",
                 "--backward", f"{model}:backward"]) == 2
    err = capsys.readouterr().err
    assert "ValueError: user error inside" in err and f"{model}:13: raise ValueError('user error inside')" in err


def test_points_beside_the_breakpoints_find_a_forgotten_mask(monkeypatch):
    """With moderate values only (the old sampling) the hinge's forgotten margin mask never shows at N = 3,
    D = 4; the points moved beside the margin's breakpoint (1 − t·s = 0) find it, and the right backward
    stays accepted."""
    from symgrad import backcheck

    monkeypatch.setattr(backcheck, "SCHEDULE", ((0, "moderate"),) * 3)
    shapes = dict(X=("N", "D"), t=("N", 1), w=("D", 1))
    wrong = sg.check_backward(_hinge, lambda **kw: _hinge_backward(**kw, mask=False), "w", **shapes)
    assert wrong.method == "symbolic" and wrong.failure is not None, str(wrong)
    margin = 1 - wrong.point["t"] * (wrong.point["X"] @ wrong.point["w"])
    assert np.min(np.abs(margin)) < 1e-5  # refuted at a point beside the breakpoint
    right = sg.check_backward(_hinge, _hinge_backward, "w", **shapes)
    assert right.ok, str(right)


def _bn_eps(x, gamma, beta, W):
    xc = x - np.mean(x, axis=0, keepdims=True)
    std = np.sqrt(np.mean(xc ** 2, axis=0, keepdims=True) + EPS)
    return np.sum(np.tanh((gamma * xc / std + beta) @ W))


def _bn_eps_staged_backward(x, gamma, beta, W):
    """A staged batch-norm backward (dstd, dvar, dxc, dmu): at tiny inputs its ∂L/∂x is a cancellation that
    leaves rounding residue ~1e-20 where the truth is ~1e-24."""
    N = x.shape[0]
    xc = x - np.mean(x, axis=0, keepdims=True)
    std = np.sqrt(np.mean(xc ** 2, axis=0, keepdims=True) + EPS)
    xh = xc / std
    y = gamma * xh + beta
    dyW = 1 - np.tanh(y @ W) ** 2
    dy = dyW @ W.T
    dxh = dy * gamma
    dvar = 0.5 * (-np.sum(dxh * xc, axis=0) / std ** 2) / std
    dxc = dxh / std + 2 * xc * dvar / N
    return dxc - np.sum(dxc, axis=0) / N, (dy * xh).sum(axis=0), dy.sum(axis=0), y.T @ dyW


def test_rounding_residue_at_tiny_inputs_never_refutes(monkeypatch):
    from symgrad import backcheck

    shapes = dict(x=("N", "D"), gamma=("D",), beta=("D",), W=("D", "H"))
    rng = np.random.default_rng(4)
    point = dict(x=rng.normal(size=(3, 4)), gamma=rng.normal(size=4), beta=rng.normal(size=4), W=rng.normal(size=(4, 5)))
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in point.items()}
    out = torch.nn.functional.batch_norm(leaves["x"], None, None, leaves["gamma"], leaves["beta"], training=True, eps=EPS)
    torch.tanh(out @ leaves["W"]).sum().backward()
    for ours, name in zip(_bn_eps_staged_backward(**point), ("x", "gamma", "beta", "W")):
        np.testing.assert_allclose(ours, leaves[name].grad.numpy(), rtol=1e-9, atol=1e-12)
    monkeypatch.setattr(backcheck, "SCHEDULE", ((0, "moderate"),) + ((0, "tiny"),) * 4)
    report = sg.check_backward(_bn_eps, _bn_eps_staged_backward, ["x", "gamma", "beta", "W"], **shapes)
    assert report.ok, str(report)
    slipped = sg.check_backward(_bn_eps, lambda **kw: (_bn_eps_staged_backward(**kw)[0] * (1 + 1e-6),
                                                       *_bn_eps_staged_backward(**kw)[1:]),
                                ["x", "gamma", "beta", "W"], **shapes)
    assert slipped.failure.name == "x", str(slipped)
