"""The seeds' logistic regression: z = w^T x + b, a = sigmoid(z), L = BCE(a, y).

The chain rule dL/dw = dL/da * da/dz * dz/dw collapses to (a - y) x, and dL/db to a - y."""

import sympy as sp

import symgrad as sg
from symgrad.printing.plain import text

p = sp.Symbol("p", integer=True, positive=True)
w, x = sp.MatrixSymbol("w", p, 1), sp.MatrixSymbol("x", p, 1)   # vectors of any size p
b, y = sp.Symbol("b", real=True), sp.Symbol("y", real=True)
d = sg.derive(sg.logistic_regression(w, x, b, y), [w, b])
print("dL/dw =", text(d.named[0]), " dL/db =", text(d.named[1]))   # (a - y)*x   a - y
print("where", {k: text(v) for k, v in d.intermediates.items()})
print(d.latex())
print(d.check(domain={y: sg.catalog.Interval(0, 1)}))

# one weight at a time, as the notes first do: dL/dw_0 = x_0 (a - y)
w0, x0 = sp.symbols("w0 x0", real=True)
print(sg.derive(sg.bce(sg.sigmoid(w0 * x0 + b), y), w0).latex())
