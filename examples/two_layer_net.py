"""The seeds' 2-layer network L = ||sigmoid(x W1) W2 - y||^2, derived in matrix form, as a graph of
named intermediates (the backward table), compiled, and checked against the seeds' 20-line NumPy.

Expected: dL/dW2 = h^T 2(h W2 - y),  dL/dW1 = x^T ((2(h W2 - y) W2^T) o h o (1 - h)),  h = sigmoid(x W1)."""

import numpy as np
import sympy as sp

import symgrad as sg

N, D, H, O = sp.symbols("N D H O", integer=True, positive=True)
x, W1, W2, y = (sp.MatrixSymbol("x", N, D), sp.MatrixSymbol("W1", D, H), sp.MatrixSymbol("W2", H, O),
                sp.MatrixSymbol("y", N, O))

# 1. one matrix expression: symgrad's own matrix chain rule
d = sg.derive(sg.squared_l2(sg.sigmoid(x * W1) * W2, y), [W1, W2])
print(d.latex())

# 2. the same network as a graph of named intermediates: local gradient x upstream gradient
h, y_pred = sp.MatrixSymbol("h", N, H), sp.MatrixSymbol("y_pred", N, O)
graph = sg.Graph([("h", sg.sigmoid(x * W1)), ("y_pred", h * W2), ("L", sg.squared_l2(y_pred, y))])
g = sg.derive(graph, [W1, W2])
backward = g.compile()
print(backward.source)

# 3. the seeds' 20-line NumPy network, one step, as the reference
rng = np.random.default_rng(0)
xs, ys = rng.normal(size=(64, 1000)), rng.normal(size=(64, 10))
w1, w2 = rng.normal(size=(1000, 100)) * 0.01, rng.normal(size=(100, 10)) * 0.1
hh = 1 / (1 + np.exp(-xs.dot(w1)))
grad_y_pred = 2.0 * (hh.dot(w2) - ys)
grad_w2 = hh.T.dot(grad_y_pred)
grad_w1 = xs.T.dot(grad_y_pred.dot(w2.T) * hh * (1 - hh))
for name, fn in (("matrix expression", d.compile()), ("graph", backward)):
    g1, g2 = fn(x=xs, y=ys, W1=w1, W2=w2)
    err = max(np.abs(g1 - grad_w1).max() / np.abs(grad_w1).max(), np.abs(g2 - grad_w2).max() / np.abs(grad_w2).max())
    print(f"{name}: max relative difference to the seeds' NumPy {err:.1e}")
    assert err < 1e-12
print(d.check())
