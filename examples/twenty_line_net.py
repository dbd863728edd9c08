"""The seeds' 20-line NumPy network, its hand-written gradient checked by symgrad — and a bug
planted in it caught and diagnosed."""

import numpy as np

import symgrad as sg

rng = np.random.default_rng(0)
N, D_in, H, D_out = 64, 100, 30, 10
x, y = rng.normal(size=(N, D_in)), rng.normal(size=(N, D_out))
w1, w2 = rng.normal(size=(D_in, H)) * 0.1, rng.normal(size=(H, D_out)) * 0.1


def loss(w1, w2):
    h = 1 / (1 + np.exp(-x.dot(w1)))
    y_pred = h.dot(w2)
    return np.square(y_pred - y).sum()


def backward(w1, w2, bug=False):
    h = 1 / (1 + np.exp(-x.dot(w1)))
    y_pred = h.dot(w2)
    grad_y_pred = (1.0 if bug else 2.0) * (y_pred - y)  # the bug: a forgotten 2
    grad_w2 = h.T.dot(grad_y_pred)
    grad_h = grad_y_pred.dot(w2.T)
    grad_w1 = x.T.dot(grad_h * h * (1 - h))
    return grad_w1, grad_w2


# the symbolic derivation of the same network, as the seeds write it
import sympy as sp  # noqa: E402

Ns, Ds, Hs, Os = sp.symbols("N D H O", integer=True, positive=True)
X, W1, W2, Y = (sp.MatrixSymbol("x", Ns, Ds), sp.MatrixSymbol("W1", Ds, Hs), sp.MatrixSymbol("W2", Hs, Os),
                sp.MatrixSymbol("y", Ns, Os))
print(sg.derive(sg.squared_l2(sg.sigmoid(X * W1) * W2, Y), [W1, W2]).latex())

good = sg.check_grad(loss, backward, w1, w2)
print(good)
bad = sg.check_grad(loss, lambda a, b: backward(a, b, bug=True), w1, w2)
print(bad)
assert good.ok and not bad.ok
print("ok: max relative error", f"{good.max_rel_error:.1e}", "(the correct gradient)")
