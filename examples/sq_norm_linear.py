"""The seeds' vectorized example f(x, W) = ||W x||^2, x in R^n, W in R^{n x n}: df/dW = 2 W x x^T,
df/dx = 2 W^T W x. At W = [[0.1, 0.5], [-0.3, 0.8]], x = [0.2, 0.4] the notes get
grad_W = [[0.088, 0.176], [0.104, 0.208]], grad_x = [-0.112, 0.636]."""

import numpy as np
import sympy as sp

import symgrad as sg
from symgrad.printing.plain import text

n = sp.Symbol("n", integer=True, positive=True)
W, x = sp.MatrixSymbol("W", n, n), sp.MatrixSymbol("x", n, 1)
d = sg.derive(sg.sq_norm_linear(W, x), [W, x])
print("df/dW =", text(d.result[0]), "  df/dx =", text(d.result[1]))   # 2*W*x*x.T   2*W.T*W*x
grad_W, grad_x = d.compile()(W=np.array([[0.1, 0.5], [-0.3, 0.8]]), x=np.array([[0.2], [0.4]]))
print("grad_W =", grad_W.round(3).tolist(), " grad_x =", grad_x.ravel().round(3).tolist())
print(d.check())
np.testing.assert_allclose(grad_W, [[0.088, 0.176], [0.104, 0.208]], rtol=1e-12)
np.testing.assert_allclose(grad_x.ravel(), [-0.112, 0.636], rtol=1e-12)

# the same on explicit entries (the notes' grid: df/dW_ij = 2 q_i x_j)
We, xe = sg.matrix("W", 2, 2), sg.vector("x", 2)
grid = sg.derive(sg.sq_norm_linear(We, xe), [We, xe])
print("entry by entry: df/dW =", grid.result[0].tolist())
gW, gx = grid.compile()(W11=0.1, W12=0.5, W21=-0.3, W22=0.8, x1=0.2, x2=0.4)
np.testing.assert_allclose(gW, grad_W, rtol=1e-12)
