"""The lecture notes' 20-line NumPy network as ordinary NumPy: traced, derived to its textbook gradient,
its hand-written backward checked — and a bug planted in it caught and located.

Expected: dL/dw2 = hᵀ 2(y_pred − y),  dL/dw1 = xᵀ((2(y_pred − y) w2ᵀ) ∘ h ∘ (1 − h)),  h = σ(x w1)."""

import numpy as np

import symgrad as sg


def loss(x, y, w1, w2):
    h = 1 / (1 + np.exp(-x.dot(w1)))
    y_pred = h.dot(w2)
    return np.square(y_pred - y).sum()


def backward(x, y, w1, w2):
    h = 1 / (1 + np.exp(-x.dot(w1)))
    y_pred = h.dot(w2)
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h.T.dot(grad_y_pred)
    grad_h = grad_y_pred.dot(w2.T)
    grad_w1 = x.T.dot(grad_h * h * (1 - h))
    return grad_w1, grad_w2


def backward_with_bug(x, y, w1, w2):
    h = 1 / (1 + np.exp(-x.dot(w1)))
    y_pred = h.dot(w2)
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h.T.dot(grad_y_pred)
    grad_h = grad_y_pred.dot(w2)  # the bug: w2 where w2ᵀ belongs (H = O here, so the shapes still fit)
    grad_w1 = x.T.dot(grad_h * h * (1 - h))
    return grad_w1, grad_w2


shapes = dict(x=("N", "D"), y=("N", "H"), w1=("D", "H"), w2=("H", "H"))

# 1. the NumPy forward, traced: a graph named by its own variables (h, y_pred)
graph = sg.trace(loss, **shapes)
# 2. derived: the textbook gradient, with its LaTeX
d = sg.derive(graph, ["w1", "w2"])
print(d.latex())
print(sg.latex(d.named[1]))  # h^{T} … (y_pred − y)

# 3. the hand backward, checked symbolically: both functions traced, each gradient proven for every size
good = sg.check_backward(loss, backward, ["w1", "w2"], **shapes)
print(good)
assert good.ok and good.method == "symbolic" and [g.status for g in good.gradients] == ["proven", "proven"]

# 4. the planted bug: refuted, located (which gradient, which entry, expected against got)
bad = sg.check_backward(loss, backward_with_bug, ["w1", "w2"], **shapes)
print(bad)
fail = bad.failure
assert not bad.ok and fail.name == "w1" and bad["w2"].status == "proven"
# the located entry, independently: a central difference of the forward at the report's own point
point, (i, j), step = bad.point, fail.entry, 1e-6
up, down = dict(point, w1=point["w1"].copy()), dict(point, w1=point["w1"].copy())
up["w1"][i, j] += step
down["w1"][i, j] -= step
numeric = (loss(**up) - loss(**down)) / (2 * step)
assert abs(numeric - fail.expected) < 1e-6 * max(1.0, abs(numeric)) and abs(fail.got - fail.expected) > 1e-3
assert fail.got == backward_with_bug(**point)[0][i, j]
print(f"w1{fail.entry}: the truth {fail.expected:.6g} (central difference {numeric:.6g}), "
      f"the buggy backward {fail.got:.6g}")
print("ok: max relative error", f"{good.max_rel_error:.1e}", "(the correct backward)")
