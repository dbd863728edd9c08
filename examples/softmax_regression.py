"""The seeds' softmax regression: z = W x + b, a = softmax(z), L = -log a_y (one-hot y).

Expected: dL/dz = a - y (the seeds' chain through the softmax Jacobian a_i(delta_ij - a_j)),
dL/dW = (a - y) x^T, dL/db = a - y — with explicit entries and in matrix form."""

import numpy as np
import sympy as sp

import symgrad as sg

# explicit entries: 3 classes, 2 features
W, x, b, y = sg.matrix("W", 3, 2), sg.vector("x", 2), sg.vector("b", 3), sg.vector("y", 3)
d = sg.derive(sg.softmax_regression(W, x, b, y), [W, b])
print("dL/dW =", d.named[0])
print("dL/db =", d.named[1].T)
print("using", d.assumptions)
print(d.check(domain={tuple(y): sg.catalog.Simplex(onehot=True)}))

# vectors of symbolic size (the catalog's example): dL/dW = (softmax(W x + b) - y) x^T
C, P1 = sp.Symbol("C", integer=True, positive=True), sp.Symbol("p", integer=True, positive=True)
Wv_, xv_, bv_, yv_ = (sp.MatrixSymbol("W", C, P1), sp.MatrixSymbol("x", P1, 1), sp.MatrixSymbol("b", C, 1),
                      sp.MatrixSymbol("y", C, 1))
v = sg.derive(sg.softmax_regression(Wv_, xv_, bv_, yv_), [Wv_, bv_])
print("vectorized: dL/dW =", sg.latex(v.named[0]))
print(v.check())

# the softmax Jacobian the seeds write out, in compact form
z = sp.MatrixSymbol("z", C, 1)
J = sg.derive(sg.softmax(z), z)
print("softmax Jacobian:", sg.latex(J.named))
print(J.check())

# matrix form for a batch: Z = X W + 1 b, L = sum of the rows' cross-entropies
N, P = sp.symbols("N P", integer=True, positive=True)
X, Wm, Y, bm = (sp.MatrixSymbol("X", N, P), sp.MatrixSymbol("W", P, C), sp.MatrixSymbol("Y", N, C),
                sp.MatrixSymbol("b", 1, C))
m = sg.derive(sg.softmax_cross_entropy(X * Wm + sp.OneMatrix(N, 1) * bm, Y), [Wm, bm])
print(m.latex())
rng = np.random.default_rng(0)
Xv, Wv, bv = rng.normal(size=(5, 4)), rng.normal(size=(4, 3)), rng.normal(size=(1, 3))
Yv = np.eye(3)[[0, 2, 1, 1, 0]]
gW, gb = m.compile()(X=Xv, W=Wv, b=bv, Y=Yv)
A = np.exp(Xv @ Wv + bv)
A /= A.sum(axis=1, keepdims=True)
assert np.allclose(gW, Xv.T @ (A - Yv)) and np.allclose(gb, (A - Yv).sum(axis=0, keepdims=True))
print(m.check())
