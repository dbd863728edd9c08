"""A CS231n-style two-layer softmax classifier as ordinary NumPy (affine, ReLU, affine, stable softmax
cross-entropy through probs[np.arange(N), y], L2 regularisation): traced, derived to its textbook gradient,
its in-place hand backward checked — and a bug planted in it caught and located.

Expected: with P = softmax(scores) and Y the one-hot labels, dscores = (P − Y)/N,
dW2 = hiddenᵀ dscores + reg W2, db2 = 1ᵀ dscores, dW1 = Xᵀ((dscores W2ᵀ) ∘ step(X W1 + b1)) + reg W1."""

import numpy as np

import symgrad as sg


def loss(X, y, W1, b1, W2, b2, reg):
    N = X.shape[0]
    hidden = np.maximum(0, X.dot(W1) + b1)
    scores = hidden.dot(W2) + b2
    shifted = scores - np.max(scores, axis=1, keepdims=True)
    probs = np.exp(shifted) / np.sum(np.exp(shifted), axis=1, keepdims=True)
    data_loss = -np.sum(np.log(probs[np.arange(N), y])) / N
    return data_loss + 0.5 * reg * (np.sum(W1 * W1) + np.sum(W2 * W2))


def backward(X, y, W1, b1, W2, b2, reg, bug=False):
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
    dhidden[hidden <= 0] = 0
    dW1 = X.T.dot(dhidden) + (2 if bug else 1) * reg * W1  # the bug: the 1/2 of the L2 term forgotten
    db1 = np.sum(dhidden, axis=0)
    return dW1, db1, dW2, db2


shapes = dict(X=("N", "D"), y=sg.labels("N", classes="C"), W1=("D", "H"), b1=("H",), W2=("H", "C"), b2=("C",),
              reg=())
wrt = ["W1", "b1", "W2", "b2"]

# 1. traced and derived: softmax cross-entropy and ReLU recognised, the gradient in the code's own names
d = sg.derive(sg.trace(loss, **shapes), wrt)
print(d.latex())
for name, g in zip(wrt, d.named):
    print(f"dL/d{name} =", g)

# 2. the hand backward writes into arrays (dscores[np.arange(N), y] -= 1), which a trace cannot follow:
#    check_backward says so and checks it numerically, through check_grad at small sizes
good = sg.check_backward(loss, backward, wrt, **shapes)
print(good)
assert good.ok and good.method == "numeric" and "not traced" in good.notes[0]

# 3. the planted bug: refuted at W1 only, located, and diagnosed
bad = sg.check_backward(loss, lambda **kw: backward(**kw, bug=True), wrt, **shapes)
print(bad)
fail = bad.failure
assert not bad.ok and fail.name == "W1" and [g.name for g in bad.gradients if not g.ok] == ["W1"]
# the located entry, independently: the bug adds reg·W1 once more, so got − expected = reg·W1 there
point = bad.point
assert abs((fail.got - fail.expected) - point["reg"] * point["W1"][fail.entry]) < 1e-6
print(f"W1{fail.entry}: expected {fail.expected:.6g}, got {fail.got:.6g} = expected + reg·W1{fail.entry}")
print("ok: max relative error", f"{good.max_rel_error:.1e}", "(the correct backward)")
