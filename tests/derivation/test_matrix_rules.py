"""Matrix calculus: the Matrix Cookbook's identities, the seeds' network and ‖Wx‖², each
result cross-checked against SymPy's diff of the explicit entries at a small size."""

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.errors import SymgradLimit
from symgrad.catalog.rows import sq_frobenius
from symgrad.printing.plain import text

n = sp.Symbol("n", integer=True, positive=True)
m = sp.Symbol("m", integer=True, positive=True)
A, B, X = (sp.MatrixSymbol(s, n, n) for s in "ABX")
a, b, x = (sp.MatrixSymbol(s, n, 1) for s in "abx")
C = sp.MatrixSymbol("C", m, n)
c = sp.MatrixSymbol("c", m, 1)

# Matrix Cookbook, section 2 (equation numbers of the 2012 edition)
COOKBOOK = [
    ("(69) d aᵀx/dx = a", a.T * x, x, a),
    ("(81) d xᵀAx/dx = (A + Aᵀ)x", x.T * A * x, x, A * x + A.T * x),
    ("(70) d aᵀXb/dX = abᵀ", a.T * X * b, X, a * b.T),
    ("(71) d aᵀXᵀb/dX = baᵀ", a.T * X.T * b, X, b * a.T),
    ("(100) d tr(AX)/dX = Aᵀ", sp.Trace(A * X), X, A.T),
    ("(102) d tr(AXB)/dX = AᵀBᵀ", sp.Trace(A * X * B), X, A.T * B.T),
    ("(103) d tr(XᵀA)/dX = A", sp.Trace(X.T * A), X, A),
    ("(111) d tr(XᵀX)/dX = 2X", sp.Trace(X.T * X), X, 2 * X),
    ("(84) d ‖Cx − c‖²/dx = 2Cᵀ(Cx − c)", sq_frobenius(C * x - c), x, 2 * C.T * (C * x - c)),
    ("(77) d aᵀXᵀXb/dX = X(abᵀ + baᵀ)", a.T * X.T * X * b, X, X * a * b.T + X * b * a.T),
    ("(49) d det(X)/dX = det(X)X⁻ᵀ", sp.Determinant(X), X, sp.Determinant(X) * sp.Inverse(X).T),
    ("(57) d log det(X)/dX = X⁻ᵀ", sp.log(sp.Determinant(X)), X, sp.Inverse(X).T),
    ("(61) d aᵀX⁻¹b/dX = −X⁻ᵀabᵀX⁻ᵀ", a.T * sp.Inverse(X) * b, X, -sp.Inverse(X).T * a * b.T * sp.Inverse(X).T),
    ("(106) d tr(X²)/dX = 2Xᵀ", sp.Trace(X * X), X, 2 * X.T),
    ("power rule: d tr(X³)/dX = 3(X²)ᵀ", sp.Trace(X ** 3), X, 3 * X.T * X.T),
    ("(107) d tr(X²A)/dX = (XA + AX)ᵀ", sp.Trace(X * X * A), X, A.T * X.T + X.T * A.T),
]


@pytest.mark.parametrize("name,expr,wrt,expected", COOKBOOK, ids=[c[0] for c in COOKBOOK])
def test_matrix_cookbook(name, expr, wrt, expected):
    d = sg.derive(expr, wrt)
    assert d.result.shape == wrt.shape
    difference = sp.expand((d.result - expected).doit()).doit()
    assert difference == sp.ZeroMatrix(*wrt.shape) or d.result == expected.doit() or d.result == expected
    check = d.check()
    assert check.ok and check.max_rel_error < 1e-10, str(check)


def test_sympy_gets_the_one_by_one_case_wrong_and_symgrad_does_not():
    W, v = sp.MatrixSymbol("W", n, n), sp.MatrixSymbol("v", n, 1)
    quadratic = ((W * v).T * (W * v))[0, 0]
    wrong = quadratic.diff(W)
    assert wrong == 0 or isinstance(wrong, sp.ZeroMatrix)  # SymPy's answer
    assert sg.derive(quadratic, W).result == 2 * W * v * v.T
    assert sg.derive((W * v).T * (W * v), v).result == 2 * W.T * W * v
    assert sg.derive(quadratic, [W, v]).check().ok


def test_sq_norm_linear_with_matrix_symbols_reproduces_the_seeds_numbers():
    W, v = sp.MatrixSymbol("W", 2, 2), sp.MatrixSymbol("x", 2, 1)
    d = sg.derive((W * v).T * (W * v), [W, v])
    gw, gx = d.compile()(W=np.array([[0.1, 0.5], [-0.3, 0.8]]), x=np.array([[0.2], [0.4]]))
    np.testing.assert_allclose(gw, [[0.088, 0.176], [0.104, 0.208]], rtol=1e-12)
    np.testing.assert_allclose(gx.ravel(), [-0.112, 0.636], rtol=1e-12)


N, D, H, O = sp.symbols("N D H O", integer=True, positive=True)
xs, W1, W2, ys = (sp.MatrixSymbol("x", N, D), sp.MatrixSymbol("W1", D, H), sp.MatrixSymbol("W2", H, O),
                  sp.MatrixSymbol("y", N, O))


def test_the_seeds_two_layer_network():
    h = sg.sigmoid(xs * W1)
    d = sg.derive(sq_frobenius(h * W2 - ys), [W1, W2])
    hs = sp.MatrixSymbol("h", N, H)
    assert d.intermediates == {hs: h}
    assert d.named[1] == 2 * hs.T * (hs * W2 - ys)
    assert sg.latex(d.named[0]) == (r"2 x^{T} \left(\left(\left(h W_{2} - y\right) W_{2}^{T}\right) \circ h "
                                    r"\circ \left(1 - h\right)\right)")
    assert d.check().ok


def test_the_network_matches_the_seeds_hand_written_numpy():
    d = sg.derive(sq_frobenius(sg.sigmoid(xs * W1) * W2 - ys), [W1, W2])
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(64, 30)), rng.normal(size=(64, 10))
    w1, w2 = rng.normal(size=(30, 20)), rng.normal(size=(20, 10))
    g1, g2 = d.compile()(x=x, y=y, W1=w1, W2=w2)
    # the seeds' 20-line network, verbatim
    h = 1 / (1 + np.exp(-x.dot(w1)))
    y_pred = h.dot(w2)
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h.T.dot(grad_y_pred)
    grad_h = grad_y_pred.dot(w2.T)
    grad_w1 = x.T.dot(grad_h * h * (1 - h))
    np.testing.assert_allclose(g1, grad_w1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g2, grad_w2, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("act", [sg.relu, sg.tanh, sg.softplus, lambda z: sg.leaky_relu(z, 0.1), sg.elu])
def test_networks_through_other_elementwise_blocks(act):
    d = sg.derive(sq_frobenius(act(xs * W1) * W2 - ys), [W1, W2])
    assert d.check().ok


def test_tanh_derivative_is_written_through_the_output():
    d = sg.derive(sq_frobenius(sg.tanh(xs * W1) * W2 - ys), W1)
    assert "1 - h ∘ h" in text(d.named)


def test_bce_logistic_regression_in_matrix_form():
    w, xv = sp.MatrixSymbol("w", D, 1), sp.MatrixSymbol("x", D, 1)
    bb, y = sp.symbols("b y", real=True)
    loss = sg.bce(sg.sigmoid((w.T * xv)[0, 0] + bb), y)
    d = sg.derive(loss, w)
    assert d.check().ok


def test_compiled_matrix_gradient_is_readable_and_shares_work():
    d = sg.derive(sq_frobenius(sg.sigmoid(xs * W1) * W2 - ys), [W1, W2])
    src = d.compile().source
    assert "h = sigmoid_np(" in src and src.count("sigmoid_np(") == 1


def test_errors():
    with pytest.raises(ValueError, match="a gradient needs a scalar"):
        sg.derive(A * X, X)
    with pytest.raises(ValueError, match="does not appear"):
        sg.derive(sp.Trace(A), X)
    with pytest.raises(ValueError, match="does not appear"):
        sg.derive(sp.Trace(A * X), sp.Symbol("q"))
    with pytest.raises(TypeError, match="MatrixSymbol or a scalar Symbol"):
        sg.derive(sp.Trace(A * X), sp.Matrix([1]))
    i = sp.Symbol("i", integer=True)
    with pytest.raises(SymgradLimit, match="symbolic"):
        sg.derive(X[i, i], X)


# --- compact Jacobians of vector blocks ------------------------------------------------------------
Cn, Pn = sp.symbols("C P", integer=True, positive=True)
zv, Wv, xv, bv = (sp.MatrixSymbol("z", Cn, 1), sp.MatrixSymbol("W", Cn, Pn), sp.MatrixSymbol("x", Pn, 1),
                  sp.MatrixSymbol("b", Cn, 1))
JACOBIANS = [
    ("softmax", lambda: sg.softmax(zv), zv, r"\operatorname{diag}\left(\mathbf{a}\right) - \mathbf{a} \mathbf{a}^{T}"),
    ("log_softmax", lambda: sg.log_softmax(zv), zv, r"I - \mathbf{1} \mathbf{a}^{T}"),
    ("sigmoid", lambda: sg.sigmoid(zv), zv,
     r"\operatorname{diag}\left(\mathbf{a} \circ \left(\mathbf{1} - \mathbf{a}\right)\right)"),
    ("softmax∘dense", lambda: sg.softmax(Wv * xv + bv), xv,
     r"\left(\operatorname{diag}\left(\mathbf{a}\right) - \mathbf{a} \mathbf{a}^{T}\right) W"),
    ("tanh∘dense", lambda: sg.tanh(Wv * xv), xv,
     r"\operatorname{diag}\left(\mathbf{1} - \mathbf{a}^{\circ {2}}\right) W"),
]


@pytest.mark.parametrize("name,build,wrt,tex", JACOBIANS, ids=[j[0] for j in JACOBIANS])
def test_vector_block_jacobians_are_compact_and_right(name, build, wrt, tex):
    d = sg.derive(build(), wrt)
    assert d.result.shape == (Cn, wrt.shape[0])
    assert sg.latex(d.named) == tex
    check = d.check()
    assert check.ok and check.max_rel_error < 1e-10


def test_softmax_regression_in_matrix_form_is_a_minus_y():
    N = sp.Symbol("N", integer=True, positive=True)
    Xm, Wm, Ym, bm = (sp.MatrixSymbol("X", N, Pn), sp.MatrixSymbol("W", Pn, Cn), sp.MatrixSymbol("Y", N, Cn),
                      sp.MatrixSymbol("b", 1, Cn))
    logits = Xm * Wm + sp.OneMatrix(N, 1) * bm
    d = sg.derive(sg.softmax_cross_entropy(logits, Ym), [Wm, bm])
    A = sg.softmax(logits)
    assert d.result[0] == Xm.T * (A - Ym)
    assert d.result[1] == sp.OneMatrix(1, N) * (A - Ym)
    assert "rows of Y sum to 1" in d.assumptions[0]
    assert d.check().ok


def test_row_softmax_inside_a_trace_uses_the_general_adjoint():
    N = sp.Symbol("N", integer=True, positive=True)
    Xm, Wm, Ym = sp.MatrixSymbol("X", N, Pn), sp.MatrixSymbol("W", Pn, Cn), sp.MatrixSymbol("Y", N, Cn)
    assert sg.derive(sp.Trace(Ym.T * sg.softmax(Xm * Wm)), Wm).check().ok
    assert sg.derive(sp.Trace(Ym.T * sg.log_softmax(Xm * Wm)), Wm).check().ok


def test_dense_layer_vjp_in_matrix_form():
    g = sp.MatrixSymbol("g", Cn, 1)
    d = sg.derive(Wv * xv + bv, [Wv, xv, bv], upstream=g)
    assert d.result == (g * xv.T, Wv.T * g, g)
    assert d.check().ok


def test_catalog_blocks_accept_matrix_expressions():
    W, v = sp.MatrixSymbol("W", n, n), sp.MatrixSymbol("v", n, 1)
    assert sg.derive(sg.sq_norm_linear(W, v), W).result == 2 * W * v * v.T
    assert sg.derive(sg.l2(W, 3), W).result == 6 * W
    g = sg.derive(sg.squared_l2(sg.sigmoid(xs * W1) * W2, ys), W2)
    assert g.named == 2 * sp.MatrixSymbol("h", N, H).T * (sp.MatrixSymbol("h", N, H) * W2 - ys)
    row = sp.MatrixSymbol("w", 1, D)
    bb, y = sp.symbols("b y", real=True)
    d = sg.derive(sg.bce(sg.sigmoid((row * sp.MatrixSymbol("x", D, 1))[0, 0] + bb), y), row)
    assert text(d.named) == "(a - y)*x.T"  # BCE∘σ∘dense → (a − y) xᵀ
    assert d.check().ok


def test_an_L_layer_graph_is_linear_in_depth():
    import time

    Nn = sp.Symbol("N", integer=True, positive=True)
    nodes, prev, weights = [], sp.MatrixSymbol("x", Nn, 3), []
    for layer in range(1, 5):
        Wl = sp.MatrixSymbol(f"W{layer}", 3, 3)
        weights.append(Wl)
        nodes.append((f"h{layer}", sg.sigmoid(prev * Wl)))
        prev = sp.MatrixSymbol(f"h{layer}", Nn, 3)
    nodes.append(("L", sg.sq_frobenius(prev - sp.MatrixSymbol("y", Nn, 3))))
    t0 = time.perf_counter()
    d = sg.derive(sg.Graph(nodes), weights)
    assert time.perf_counter() - t0 < 2.0  # measured ≈ 0.1 s; the benchmark prints the figures
    assert sum(sp.count_ops(g) for g in d.backprop.gradients.values()) < 60
    # reference: a hand-written NumPy backward pass (explicit entries would blow up, see benchmarks/)
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    ws = [rng.normal(size=(3, 3)) for _ in range(4)]
    got = d.compile()(x=x, y=y, **{f"W{i + 1}": w for i, w in enumerate(ws)})
    hs = [x]
    for w in ws:
        hs.append(1 / (1 + np.exp(-hs[-1] @ w)))
    grad = 2 * (hs[-1] - y)
    expected = []
    for i in reversed(range(4)):
        grad_z = grad * hs[i + 1] * (1 - hs[i + 1])
        expected.insert(0, hs[i].T @ grad_z)
        grad = grad_z @ ws[i].T
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)


def test_a_lost_gradient_raises_instead_of_returning_zero(monkeypatch):
    """The old matrix-power rule sent its adjoint to a node outside the graph, so d tr(X²)/dX came
    out 0; any such rule now raises."""
    import symgrad.derivation.matrix_rules as mx

    original = mx._push

    def lossy(node, G, add, wrt):
        if isinstance(node, sp.MatPow):
            add(sp.MatMul(*([node.base] * int(node.exp)), evaluate=False), G)
            return
        original(node, G, add, wrt)

    monkeypatch.setattr(mx, "_push", lossy)
    with pytest.raises(SymgradLimit, match="lost the gradient"):
        mx.matrix_gradient(sp.Trace(X * X), X)


MORE = [
    ("tr(X A Xᵀ)", sp.Trace(X * A * X.T), X), ("tr((XA)²)", sp.Trace((X * A) ** 2), X),
    ("‖X ∘ A‖²", sq_frobenius(sp.HadamardProduct(X, A)), X), ("tr((X ∘ X) A)", sp.Trace(sp.HadamardProduct(X, X) * A), X),
    ("‖X∘³‖²", sq_frobenius(sp.HadamardPower(X, 3)), X), ("‖tanh(X a)‖²", sq_frobenius(sg.tanh(X * a)), X),
    ("‖softplus(A x) − b‖²", sq_frobenius(sg.softplus(A * x) - b), x), ("log det(X²)", sp.log(sp.Determinant(X * X)), X),
    ("aᵀX²b", a.T * X ** 2 * b, X), ("(xᵀAx)², a scalar factor that depends on x", (x.T * A * x)[0, 0] ** 2, x),
    ("tr(AX) tr(BX)", sp.Trace(A * X) * sp.Trace(B * X), X),
]


@pytest.mark.parametrize("name,expr,wrt", MORE, ids=[c[0] for c in MORE])
def test_more_matrix_gradients_agree_with_explicit_entries(name, expr, wrt):
    check = sg.derive(expr, wrt).check()
    assert check.ok and check.max_rel_error < 1e-10, str(check)


# --- matrix expressions people write (each derives, compiles and matches its forward) -----------
def _central_differences(forward, values, name, eps=1e-6):
    """∂forward/∂values[name] by central differences, entry by entry (float64)."""
    base = np.asarray(values[name], dtype=float)
    grad = np.zeros_like(base)
    for idx in np.ndindex(base.shape):
        plus = {**values, name: base.copy()}
        minus = {**values, name: base.copy()}
        plus[name][idx] += eps
        minus[name][idx] -= eps
        grad[idx] = (forward(**plus) - forward(**minus)) / (2 * eps)
    return grad if base.shape else float(grad)


Nn, Dn = sp.symbols("N D", integer=True, positive=True)
Xb, wb, yb = sp.MatrixSymbol("X", Nn, Dn), sp.MatrixSymbol("w", Dn, 1), sp.MatrixSymbol("y", Nn, 1)
xb = sp.MatrixSymbol("x", Dn, 1)
lam_b, b_b, t_b = sp.Symbol("lam", positive=True), sp.Symbol("b", real=True), sp.Symbol("t", real=True)


def _np_sigmoid(u):
    return 1 / (1 + np.exp(-u))


def _np_bce(a, y):
    return -(y * np.log(a) + (1 - y) * np.log(1 - a))


WRITTEN = [
    ("bce(sigmoid(X*w), y)", lambda: sg.bce(sg.sigmoid(Xb * wb), yb), [wb],
     lambda X, w, y: float(np.sum(_np_bce(_np_sigmoid(X @ w), y)))),
    ("softplus logistic loss + lam*||w||^2",
     lambda: ((sp.OneMatrix(Nn, 1).T * sg.softplus(Xb * wb) - yb.T * Xb * wb) / Nn)[0, 0] + lam_b * (wb.T * wb)[0, 0],
     [wb, lam_b],
     lambda X, w, y, lam: float((np.sum(np.logaddexp(0, X @ w)) - (y.T @ X @ w)[0, 0]) / X.shape[0]
                                + lam * (w.T @ w)[0, 0])),
    ("bce(sigmoid(w.T*x + b), t), wrt [w, b]", lambda: sg.bce(sg.sigmoid((wb.T * xb)[0, 0] + b_b), t_b), [wb, b_b],
     lambda w, x, b, t: float(_np_bce(_np_sigmoid((w.T @ x)[0, 0] + b), t))),
    ("bce(sigmoid(w.T*x), y 1x1)", lambda: sg.bce(sg.sigmoid(wb.T * xb), sp.MatrixSymbol("y", 1, 1)), [wb],
     lambda w, x, y: float(_np_bce(_np_sigmoid((w.T @ x)[0, 0]), y[0, 0]))),
]


@pytest.mark.parametrize("name,build,wrt,forward", WRITTEN, ids=[c[0] for c in WRITTEN])
def test_matrix_expressions_people_write_derive_compile_and_match_their_forward(name, build, wrt, forward):
    rng = np.random.default_rng(3)
    d = sg.derive(build(), wrt)
    f = d.compile()
    sizes = {Nn: 5, Dn: 3}
    values = {}
    for s in f.params:
        sym = next((m for m in d.expr.atoms(sp.MatrixSymbol) if m.name == s), None)
        if sym is not None:
            shape = tuple(int(sp.sympify(k).xreplace(sizes)) for k in sym.shape)
            values[s] = rng.uniform(0.1, 0.9, size=shape) if s in ("y",) else rng.normal(size=shape)
        else:
            values[s] = float(rng.uniform(0.1, 0.9)) if s in ("t", "lam") else float(rng.normal())
    got = f(**values)
    got = got if isinstance(got, tuple) else (got,)
    for w, g in zip(wrt, got):
        want = _central_differences(forward, {k: values[k] for k in forward.__code__.co_varnames[:forward.__code__.co_argcount]}, w.name)
        np.testing.assert_allclose(np.asarray(g, dtype=float).reshape(np.shape(want)), want, rtol=1e-6, atol=1e-8)
    text = sg.latex(d.named if d.single else sp.Tuple(*d.named)) + str(d.named)
    assert "Lambda" not in text and "_entry" not in text


def test_batch_bce_is_the_textbook_xt_a_minus_y_and_equals_torch():
    torch = pytest.importorskip("torch")
    d = sg.derive(sg.bce(sg.sigmoid(Xb * wb), yb) / Nn, wb)
    assert sg.latex(d.named) == r"\frac{1}{N} X^{T} \left(\sigma\left(X \mathbf{w}\right) - \mathbf{y}\right)"
    rng = np.random.default_rng(4)
    X, w, y = rng.normal(size=(7, 3)) * 4, rng.normal(size=(3, 1)), rng.integers(0, 2, size=(7, 1)).astype(float)
    wt = torch.tensor(w, requires_grad=True)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(X) @ wt, torch.tensor(y))
    loss.backward()
    np.testing.assert_allclose(d.compile()(X=X, w=w, y=y), wt.grad.numpy(), rtol=1e-12)


def test_a_bias_row_is_broadcast_over_the_batch_and_its_gradient_sums_the_rows():
    torch = pytest.importorskip("torch")
    H = sp.Symbol("H", integer=True, positive=True)
    X, W, b, Y = (sp.MatrixSymbol("X", Nn, Dn), sp.MatrixSymbol("W", Dn, H), sp.MatrixSymbol("b", 1, H),
                  sp.MatrixSymbol("Y", Nn, H))
    r = sg.tanh(X * W + b) - Y
    d = sg.derive(sp.Trace(r.T * r), [W, b])
    rng = np.random.default_rng(5)
    v = dict(X=rng.normal(size=(6, 3)), W=rng.normal(size=(3, 4)), b=rng.normal(size=(1, 4)), Y=rng.normal(size=(6, 4)))
    gW, gb = d.compile()(**v)
    t = {k: torch.tensor(a, requires_grad=k in ("W", "b")) for k, a in v.items()}
    loss = ((torch.tanh(t["X"] @ t["W"] + t["b"]) - t["Y"]) ** 2).sum()
    loss.backward()
    np.testing.assert_allclose(gW, t["W"].grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(np.reshape(gb, (1, 4)), t["b"].grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("row_first", [True, False])
def test_a_row_added_to_a_matrix_is_spread_over_its_rows(row_first):
    # SymPy gives X − a (a: 1×D) its first term's shape when sizes are symbols; the gradient of the
    # N×D matrix must still be N×D: 2(X − 1a), and the row's the column sum −2·1ᵀ(X − 1a) (torch)
    import torch

    N, D = sp.symbols("N D", integer=True, positive=True)
    X, a = sp.MatrixSymbol("X", N, D), sp.MatrixSymbol("a", 1, D)
    d = sg.derive(sg.sq_frobenius(a - X if row_first else X - a), [X, a])
    assert d.result[0].shape == (N, D) and d.result[1].shape == (1, D)
    rng = np.random.default_rng(1)
    Xv, av = rng.normal(size=(4, 3)), rng.normal(size=(1, 3))
    gX, ga = d.compile()(X=Xv, a=av)
    Xt, at = torch.tensor(Xv, requires_grad=True), torch.tensor(av, requires_grad=True)
    ((at - Xt) ** 2).sum().backward()
    assert gX.shape == (4, 3) and np.allclose(gX, Xt.grad.numpy(), rtol=1e-12)
    assert np.allclose(ga, at.grad.numpy(), rtol=1e-12)


def test_a_constant_elementwise_derivative_is_a_matrix_of_ones():
    # ∂/∂c of ‖(x ↦ x + c)(X)‖²: the elementwise derivative (x ↦ 1)(X) is the all-ones matrix (it
    # compiled to the number 1 and failed in matmul); values against torch
    import torch

    N, D = sp.symbols("N D", integer=True, positive=True)
    X, c = sp.MatrixSymbol("X", N, D), sp.Symbol("c", real=True)
    d = sg.derive(sq_frobenius(sg.elementwise(lambda u: sp.tanh(u) + c, X)), [X, c])
    Xv = np.random.default_rng(2).normal(size=(3, 2))
    gX, gc = d.compile()(X=Xv, c=0.4)
    Xt, ct = torch.tensor(Xv, requires_grad=True), torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    ((torch.tanh(Xt) + ct) ** 2).sum().backward()
    assert np.allclose(gX, Xt.grad.numpy(), rtol=1e-12) and np.isclose(gc, ct.grad.item(), rtol=1e-12)
