"""Computational graphs: the seeds' circuits and tables, branches, gates, matrix nodes."""

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.printing.plain import text
from symgrad.derivation import Graph
from symgrad.catalog.rows import sq_frobenius

x, y, z = sp.symbols("x y z", real=True)


def test_add_mul_circuit_table():
    bp = Graph({"q": x + y, "f": "q*z"}).backprop({"x": -2, "y": 5, "z": -4})
    q, f = sp.symbols("q f", real=True)
    assert bp.values[q] == 3 and bp.values[f] == -12
    assert bp.gradient_values == {q: -4.0, z: 3.0, x: -4.0, y: -4.0}
    gates = {(str(e.node), str(e.input)): e.gate for e in bp.edges}
    assert gates[("q", "x")].startswith("add gate") and gates[("f", "z")].startswith("mul gate")
    table = bp.table()
    assert "df/dx = z = -4" in table and "[1 × -4 = -4]" in table


def test_sigmoid_neuron_circuit():
    w0, w1, w2, x0, x1 = sp.symbols("w0 w1 w2 x0 x1", real=True)
    g = Graph([("a", w0 * x0), ("b", w1 * x1), ("c", "a + b"), ("d", "c + w2"), ("f", "sigmoid(d)")])
    bp = g.backprop({"w0": 2, "x0": -1, "w1": -3, "x1": -2, "w2": -3})
    got = [bp.gradient_values[s] for s in (w0, w1, w2, x0, x1)]
    np.testing.assert_allclose(got, [-0.20, -0.39, 0.20, 0.39, -0.59], atol=0.005)
    local = next(e.local for e in bp.edges if str(e.node) == "f")
    f = sp.Symbol("f", real=True)
    assert local == f * (1 - f)  # the local gradient through the gate's own output


def test_logistic_regression_backward_table():
    w1, w2, x1, x2, b, y_ = sp.symbols("w1 w2 x1 x2 b y", real=True)
    g = Graph([("z", w1 * x1 + w2 * x2 + b), ("a", "sigmoid(z)"), ("L", "bce(a, y)")])
    a_val = 1 / 1.9
    z_val = float(np.log(a_val / (1 - a_val)))
    bp = g.backprop({"w1": z_val / 0.5, "x1": 0.5, "w2": 0.0, "x2": 0.6, "b": 0.0, "y": 1.0})
    by_edge = {(str(e.node), str(e.input)): e for e in bp.edges}
    assert bp.value(by_edge[("L", "a")].local) == pytest.approx(-1.9)
    assert bp.value(by_edge[("a", "z")].local) == pytest.approx(0.24, abs=0.01)
    assert bp.value(by_edge[("z", "w1")].local) == 0.5 and bp.value(by_edge[("z", "w2")].local) == 0.6
    assert bp.gradient_values[w1] == pytest.approx(0.5 * a_val * (1 - a_val) * -1.9)
    assert bp.gradient_values[b] == pytest.approx(a_val - 1)


def test_gradients_add_at_branches():
    g = Graph({"u": x * y, "v": x + y, "f": "u*v"})
    bp = g.backprop({"x": 3.0, "y": 2.0})
    assert len([e for e in bp.edges if e.input == x]) == 2
    assert bp.gradient_values[x] == pytest.approx(2 * 3.0 * 2.0 + 2.0 ** 2)  # d(x²y + xy²)/dx
    d = sg.derive(g, [x, y])
    assert sp.expand(d.result[0] - (2 * x * y + y ** 2)) == 0
    assert d.check().ok


def test_max_gate_routes():
    bp = Graph({"m": sp.Max(x, y), "f": "2*m"}).backprop({"x": 1.0, "y": 3.0})
    assert bp.gradient_values[y] == 2.0 and bp.gradient_values[x] == 0.0
    assert any(e.gate.startswith("max gate") for e in bp.edges)


N, D, H, O = sp.symbols("N D H O", integer=True, positive=True)
X, W1, W2, Y = (sp.MatrixSymbol("x", N, D), sp.MatrixSymbol("W1", D, H), sp.MatrixSymbol("W2", H, O),
                sp.MatrixSymbol("y", N, O))
h, y_pred = sp.MatrixSymbol("h", N, H), sp.MatrixSymbol("y_pred", N, O)


def two_layer():
    return Graph([("h", sg.sigmoid(X * W1)), ("y_pred", h * W2), ("L", sq_frobenius(y_pred - Y))])


def test_matrix_graph_is_the_seeds_backward_pass():
    bp = two_layer().backprop()
    g_h = bp.upstream_names[h]
    g_y = bp.upstream_names[y_pred]
    assert bp.gradients[W2] == h.T * g_y
    assert bp.gradients[h] == g_y * W2.T
    assert bp.gradients[W1].has(g_h) and not bp.gradients[W1].has(g_y)  # grad_W1 uses grad_h only
    assert text(bp.gradients[W1]) == "x.T*(grad_h ∘ h ∘ (1 - h))"


def test_compiled_graph_matches_hand_written_numpy():
    d = sg.derive(two_layer(), [W1, W2])
    f = d.compile()
    assert "grad_h = " in f.source and "# backward" in f.source
    rng = np.random.default_rng(3)
    x, yv = rng.normal(size=(16, 8)), rng.normal(size=(16, 3))
    w1, w2 = rng.normal(size=(8, 5)), rng.normal(size=(5, 3))
    g1, g2 = f(x=x, y=yv, W1=w1, W2=w2)
    hh = 1 / (1 + np.exp(-x.dot(w1)))
    grad_y_pred = 2.0 * (hh.dot(w2) - yv)
    np.testing.assert_allclose(g2, hh.T.dot(grad_y_pred), rtol=1e-12)
    np.testing.assert_allclose(g1, x.T.dot(grad_y_pred.dot(w2.T) * hh * (1 - hh)), rtol=1e-12)
    assert d.check().ok


def test_graph_errors():
    with pytest.raises(ValueError, match="defined twice"):
        Graph([("q", x + y), ("q", x)])
    with pytest.raises(ValueError, match="refers to itself"):
        Graph({"q": sp.Symbol("q") + x})
    with pytest.raises(ValueError, match="not an input"):
        sg.derive(Graph({"f": x * y}), "w")
    with pytest.raises(ValueError, match="missing values"):
        Graph({"f": x * y}).backprop({"x": 1.0})


# --- an expression as a graph of named intermediates: the engine's one reverse pass -----------------
def _matrix_net(depth, n=3):
    X, Y = sp.MatrixSymbol("X", 5, n), sp.MatrixSymbol("Y", 5, n)
    Ws = [sp.MatrixSymbol(f"W{i}", n, n) for i in range(1, depth + 1)]
    h = X
    for W in Ws[:-1]:
        h = sg.sigmoid(h * W)
    r = h * Ws[-1] - Y
    return sp.Trace(r.T * r), Ws


def _scalar_net(depth, width=2):
    xs = sp.symbols(f"x1:{width + 1}", real=True)
    h, ws = list(xs), []
    for layer in range(1, depth + 1):
        W = [[sp.Symbol(f"w{layer}_{i}{j}", real=True) for j in range(width)] for i in range(width)]
        ws += [e for row in W for e in row]
        h = [sg.sigmoid(sum(W[i][j] * h[j] for j in range(width))) for i in range(width)]
    v = [sp.Symbol(f"v{j}", real=True) for j in range(width)]
    y = sp.Symbol("y", real=True)
    return (sum(v[j] * h[j] for j in range(width)) - y) ** 2, ws + v, xs, y


def test_expression_graph_names_each_block_output_once_and_grows_linearly():
    from symgrad.derivation import expression_graph

    sizes = []
    for depth in (2, 4, 8):
        L, _ = _matrix_net(depth)
        g = expression_graph(L)
        sizes.append(len(g.names))
        # σ(XW1) and its transposed twin σ(W1ᵀXᵀ) (from rᵀ r) are one node
        assert len([v for v in g.exprs.values() if "sigmoid" in str(v)]) == depth - 1
    assert sizes == [2, 4, 8]  # depth − 1 hidden layers + the loss
    L, ws, _, _ = _scalar_net(3)
    g = expression_graph(L)
    assert [str(n) for n in g.names] == ["a1", "a2", "a3", "a4", "a5", "a6", "L"]


def test_deep_matrix_net_every_weight_in_one_pass_equals_torch():
    torch = pytest.importorskip("torch")
    L, Ws = _matrix_net(10)
    d = sg.derive(L, Ws)
    assert not [n for n in d.notes if "bound" in n or "budget" in n]
    assert list(d.intermediates)[:2] == [sp.MatrixSymbol("h1", 5, 3), sp.MatrixSymbol("h2", 5, 3)]
    assert d.intermediates[sp.MatrixSymbol("h2", 5, 3)] == sg.sigmoid(sp.MatrixSymbol("h1", 5, 3) * Ws[1])
    rng = np.random.default_rng(7)
    v = {"X": rng.normal(size=(5, 3)), "Y": rng.normal(size=(5, 3))}
    v.update({W.name: rng.normal(size=(3, 3)) for W in Ws})
    got = d.compile()(**v)
    t = {k: torch.tensor(a, requires_grad=k.startswith("W")) for k, a in v.items()}
    h = t["X"]
    for W in Ws[:-1]:
        h = torch.sigmoid(h @ t[W.name])
    ((h @ t[Ws[-1].name] - t["Y"]) ** 2).sum().backward()
    for W, g in zip(Ws, got):
        np.testing.assert_allclose(g, t[W.name].grad.numpy(), rtol=1e-11, atol=1e-14)
    assert "Lambda" not in sg.latex(d.named[0]) and "_entry" not in str(d.named[0])


def test_deep_scalar_net_compiles_its_named_program_and_matches_mpmath_differences():
    import mpmath

    L, ws, xs, y = _scalar_net(5)
    d = sg.derive(L, ws)
    assert d.large  # the substituted result would be large: the program is compiled, not expanded
    assert not [n for n in d.notes if "bound" in n or "budget" in n]
    f = d.compile()
    assert "# backward" in f.source and "grad_a1" in f.source
    rng = np.random.default_rng(8)
    point = {s: float(rng.uniform(-1.5, 1.5)) for s in list(ws) + list(xs) + [y]}
    got = f(**{s.name: v for s, v in point.items()})
    plain = sp.lambdify(list(point), L.replace(sg.sigmoid, lambda u: 1 / (1 + sp.exp(-u))), "mpmath")
    mpmath.mp.dps = 40
    for s, g in zip(ws, got):
        def at(e, s=s):
            return plain(*[mpmath.mpf(v) + (e if k == s else 0) for k, v in point.items()])
        fd = (at(mpmath.mpf("1e-15")) - at(mpmath.mpf("-1e-15"))) / mpmath.mpf("2e-15")
        assert abs(float(g) - float(fd)) <= 1e-12 * max(1.0, abs(float(fd)))
    assert "Lambda" not in str(d.named)


def test_small_expressions_keep_their_textbook_form_through_the_pass():
    w, x, b, y = sp.symbols("w x b y", real=True)
    d = sg.derive(sg.bce(sg.sigmoid(w * x + b), y), [w, b])
    assert not d.large
    assert d.named == (x * (sp.Symbol("a") - y), sp.Symbol("a") - y) or \
        sp.simplify(d.named[0] - x * (sp.Symbol("a", real=True) - y)) == 0
    assert d.check().ok


def test_a_compiled_graph_fuses_single_use_adjoints_and_stays_finite_where_sigmoid_rounds_to_one():
    logistic = sg.Graph([("z", "w*x + b"), ("a", "sigmoid(z)"), ("L", "bce(a, y)")])
    f = sg.derive(logistic, ["w", "b"]).compile()
    assert "grad_a" not in f.source  # used once: written into grad_z = a − y
    with np.errstate(all="raise"):
        gw, gb = f(w=40.0, x=1.0, b=0.0, y=0.0)  # a = σ(40) is 1 in float64
    np.testing.assert_allclose([gw, gb], [1.0, 1.0], rtol=1e-15)
    gw, gb = f(w=0.3, x=2.0, b=-0.1, y=1.0)
    a = 1 / (1 + np.exp(-0.5))
    np.testing.assert_allclose([gw, gb], [2.0 * (a - 1.0), a - 1.0], rtol=1e-14)
