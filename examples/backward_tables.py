"""The seeds' backward tables, filled in by symgrad: the (x + y) z circuit, the sigmoid neuron,
and logistic regression's table (dL/da = -1.9, da/dz = 0.24, dz/dw1 = 0.5, dL/dw1 = 0.5 x 0.24 x -1.9)."""

import math

import sympy as sp

import symgrad as sg

x, y, z = sp.symbols("x y z", real=True)
print(sg.Graph({"q": x + y, "f": "q*z"}).backprop({"x": -2, "y": 5, "z": -4}).table())

w0, w1, w2, x0, x1 = sp.symbols("w0 w1 w2 x0 x1", real=True)
neuron = sg.Graph([("a", w0 * x0), ("b", w1 * x1), ("c", "a + b"), ("d", "c + w2"), ("f", "sigmoid(d)")])
print(neuron.backprop({"w0": 2, "x0": -1, "w1": -3, "x1": -2, "w2": -3}).table(digits=2))

# logistic regression with y = 1 and a = 1/1.9, so that dL/da = -1/a = -1.9
a = 1 / 1.9
logistic = sg.Graph([("z", "w1*x1 + w2*x2 + b"), ("a", "sigmoid(z)"), ("L", "bce(a, y)")])
bp = logistic.backprop({"w1": math.log(a / (1 - a)) / 0.5, "x1": 0.5, "w2": 0.0, "x2": 0.6, "b": 0.0, "y": 1.0})
print(bp.table(digits=2))
print(bp.latex())
d = sg.derive(logistic, ["w1", "w2", "b"])
print(d.check(domain={sp.Symbol("y", real=True): sg.catalog.Interval(0, 1)}))
