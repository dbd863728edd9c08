"""The seeds' sigmoid neuron: f(w, x) = 1 / (1 + exp(-(w0 x0 + w1 x1 + w2))),
at w = (2, -3, -3), x = (-1, -2). Expected: dw = (-0.20, -0.39, 0.20), dx = (0.39, -0.59)."""

import sympy as sp

import symgrad as sg

w0, w1, w2, x0, x1 = sp.symbols("w0 w1 w2 x0 x1", real=True)
f = 1 / (1 + sp.exp(-(w0 * x0 + w1 * x1 + w2)))  # plain SymPy: symgrad recognises the sigmoid
d = sg.derive(f, [w0, w1, w2, x0, x1])
print("textbook form:", d.named)
print("where", d.intermediates)
print(sg.derive(f, w0).latex())
grads = d.compile()(w0=2.0, w1=-3.0, w2=-3.0, x0=-1.0, x1=-2.0)
print("dw =", [round(float(g), 2) for g in grads[:3]], " dx =", [round(float(g), 2) for g in grads[3:]])
print(d.check())
assert [round(float(g), 2) for g in grads] == [-0.2, -0.39, 0.2, 0.39, -0.59]
