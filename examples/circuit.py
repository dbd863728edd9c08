"""The seeds' first circuit: f(x, y, z) = (x + y) z at x, y, z = -2, 5, -4.

Expected (the lecture's numbers): df/dx = -4, df/dy = -4, df/dz = 3."""

import sympy as sp

import symgrad as sg

x, y, z = sp.symbols("x y z", real=True)
d = sg.derive((x + y) * z, [x, y, z])
print(d.latex())
grads = d.compile()(x=-2.0, y=5.0, z=-4.0)
print("df/dx, df/dy, df/dz =", tuple(float(g) for g in grads))
print(d.check())
assert grads == (-4.0, -4.0, 3.0)
