"""Computational graphs: the seeds' circuits and tables, branches, gates, matrix nodes."""

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.printing import text
from symgrad.graph import Graph
from symgrad.matrices import sq_frobenius

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
