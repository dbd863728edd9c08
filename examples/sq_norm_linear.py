"""The seeds' vectorized example f(x, W) = ||W x||^2 with W = [[0.1, 0.5], [-0.3, 0.8]],
x = [0.2, 0.4]. Expected: grad_W = [[0.088, 0.176], [0.104, 0.208]], grad_x = [-0.112, 0.636]."""

import numpy as np

import symgrad as sg

W, x = sg.matrix("W", 2, 2), sg.vector("x", 2)
d = sg.derive(sg.sq_norm_linear(W, x), [W, x])
print("df/dW =", d.result[0])
print("df/dx =", d.result[1])
grad_W, grad_x = d.compile()(W11=0.1, W12=0.5, W21=-0.3, W22=0.8, x1=0.2, x2=0.4)
print("grad_W =", grad_W.round(3).tolist(), " grad_x =", grad_x.ravel().round(3).tolist())
print(d.check())
np.testing.assert_allclose(grad_W, [[0.088, 0.176], [0.104, 0.208]], rtol=1e-12)
np.testing.assert_allclose(grad_x.ravel(), [-0.112, 0.636], rtol=1e-12)
