"""Backprop by hand with the pre-compiled catalog: a two-layer classifier built from
symgrad.nn's forward and backward functions (local gradient × upstream gradient, layer by
layer, as in the seeds' backward tables), trained for a few steps, its gradient checked by
symgrad's numerical gradient checker. Only NumPy and symgrad.nn are needed to train."""

import numpy as np

from symgrad.nn import dense, dense_backward, relu, relu_backward, softmax_cross_entropy, softmax_cross_entropy_backward

rng = np.random.default_rng(0)
N, D, H, C = 32, 5, 16, 3
x = rng.normal(size=(N, D))
y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 1).astype(int)  # three classes, 0-based
W1, b1 = rng.normal(size=(H, D)) * 0.5, np.zeros(H)
W2, b2 = rng.normal(size=(C, H)) * 0.5, np.zeros(C)


def loss(W1, b1, W2, b2):
    return softmax_cross_entropy(dense(W2, relu(dense(W1, x, b1)), b2), y).mean()


def gradients(W1, b1, W2, b2):
    z1 = dense(W1, x, b1)                   # forward, keeping what the backward pass needs
    h = relu(z1)
    z2 = dense(W2, h, b2)
    g_z2, _ = softmax_cross_entropy_backward(z2, y, np.full(N, 1.0 / N))  # upstream: d mean / d loss_n (y: indices)
    g_W2, g_h, g_b2 = dense_backward(W2, h, b2, g_z2)                    # local gradient × upstream
    g_z1 = relu_backward(z1, g_h)
    g_W1, _, g_b1 = dense_backward(W1, x, b1, g_z1)
    return g_W1, g_b1, g_W2, g_b2


params = [W1, b1, W2, b2]
print(f"loss before: {loss(*params):.4f}")
for step in range(200):
    params = [p - 0.5 * g for p, g in zip(params, gradients(*params))]
print(f"loss after 200 steps: {loss(*params):.4f}")
accuracy = (dense(params[2], relu(dense(params[0], x, params[1])), params[3]).argmax(-1) == y).mean()
print(f"training accuracy: {accuracy:.2f}")

import symgrad as sg  # noqa: E402 - the checker only; training above needed NumPy and symgrad.nn

report = sg.check_grad(loss, gradients, *params)
print(report)
assert report.ok and loss(*params) < loss(W1, b1, W2, b2)
print("ok: max relative error", f"{report.max_rel_error:.1e}", "(the hand-assembled backward pass)")
