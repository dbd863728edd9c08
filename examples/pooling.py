"""The seeds' pooling exercise, with a symbolic number of inputs n and upstream gradient y'.

Lp pooling  y = (sum_i x_i^p)^(1/p):        x_k' = y' x_k^(p-1) (sum_i x_i^p)^((1-p)/p)
log-average y = (1/b) log((1/n) sum exp(b x_i)): x_k' = y' exp(b x_k) / sum_i exp(b x_i)"""

import numpy as np
import sympy as sp

import symgrad as sg

x = sp.IndexedBase("x", positive=True)
n, k = sp.symbols("n k", integer=True, positive=True)
p, beta = sp.symbols("p beta", positive=True)
upstream = sp.Symbol("y'", real=True)

lp = sg.derive(sg.lp_pool(x, p, n), x[k], upstream=upstream)
print(lp.latex())
print("assumes", lp.assumptions)
lae = sg.derive(sg.log_avg_pool(x, beta, n), x[k], upstream=upstream)
print(lae.latex())

values = np.array([0.5, 1.0, 2.0, 4.0])
got = lp.compile()(x=values, p=3.0, k=2, **{"y'": 1.0})
print("Lp pooling, p = 3, k = 2:", float(got))
np.testing.assert_allclose(got, 1.0 ** 2 * (values ** 3).sum() ** (-2 / 3), rtol=1e-14)
print(lp.check(sizes={n: 4, k: 2}))
print(lae.check(sizes={n: 4, k: 3}))
