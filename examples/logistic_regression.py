"""The seeds' logistic regression: z = w.x + b, a = sigmoid(z), L = BCE(a, y).

The chain rule dL/dw_i = dL/da * da/dz * dz/dw_i collapses to (a - y) x_i."""

import symgrad as sg

w, x = sg.vector("w", 3), sg.vector("x", 3)
b, y = sg.parse("b"), sg.parse("y")
loss = sg.logistic_regression(w, x, b, y)
d = sg.derive(loss, [w, b])
print("dL/dw =", d.named[0].T, " dL/db =", d.named[1])
print("where", d.intermediates)
print(sg.derive(sg.bce(sg.sigmoid(w[0] * x[0] + b), y), w[0]).latex())
print(d.check(domain={y: sg.catalog.Interval(0, 1)}))
