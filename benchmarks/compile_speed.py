"""Compiled gradients against hand-written NumPy (the baseline), naive lambdify, and torch /
JAX when installed — measured side by side in one run, threads pinned to 1.

    python benchmarks/compile_speed.py [--repeat 7]

Ratios are time / hand-NumPy time (lower is better; ≤ 1.0 is the goal).
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS"):
    os.environ.setdefault(var, "1" if var != "XLA_FLAGS" else "--xla_cpu_multi_thread_eigen=false")

import argparse  # noqa: E402
import timeit  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402

import symgrad as sg  # noqa: E402


def best(fn, repeat: int) -> float:
    fn()  # warm up
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def sigmoid_backward(repeat):
    rng = np.random.default_rng(0)
    x = rng.normal(scale=3.0, size=1_000_000)
    xs = sp.Symbol("x", real=True)
    compiled = sg.derive(sg.sigmoid(xs), xs).compile()
    naive = sp.lambdify(xs, sp.diff(1 / (1 + sp.exp(-xs)), xs), "numpy")

    def hand():
        s = 1 / (1 + np.exp(-x))
        return s * (1 - s)

    rows = {"hand NumPy": best(hand, repeat), "symgrad": best(lambda: compiled(x=x), repeat)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows["naive lambdify"] = best(lambda: naive(x), repeat)
    rows.update(_torch_sigmoid(x, repeat))
    return rows


def _torch_sigmoid(x, repeat):
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(1)
    t = torch.from_numpy(x)

    def run():
        v = t.clone().requires_grad_(True)
        torch.sigmoid(v).backward(torch.ones_like(v))
        return v.grad

    return {"torch autograd": best(run, repeat)}


def softmax_ce(repeat):
    rng = np.random.default_rng(1)
    z = rng.normal(scale=3.0, size=(1024, 1000))
    y = np.eye(1000)[rng.integers(1000, size=1024)]
    N, C = sp.symbols("N C", integer=True, positive=True)
    Z, Y = sp.MatrixSymbol("Z", N, C), sp.MatrixSymbol("Y", N, C)
    compiled = sg.derive(sg.softmax_cross_entropy(Z, Y), Z).compile()

    def hand():
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True) - y

    return {"hand NumPy": best(hand, repeat), "symgrad": best(lambda: compiled(Z=z, Y=y), repeat)}


def two_layer_net(repeat):
    rng = np.random.default_rng(2)
    n, d_in, h_, d_out = 64, 1000, 100, 10
    x, y = rng.normal(size=(n, d_in)), rng.normal(size=(n, d_out))
    w1, w2 = rng.normal(size=(d_in, h_)), rng.normal(size=(h_, d_out))
    N, D, H, O = sp.symbols("N D H O", integer=True, positive=True)
    X, W1, W2, Y = (sp.MatrixSymbol("x", N, D), sp.MatrixSymbol("W1", D, H), sp.MatrixSymbol("W2", H, O),
                    sp.MatrixSymbol("y", N, O))
    hs, yp = sp.MatrixSymbol("h", N, H), sp.MatrixSymbol("y_pred", N, O)
    graph = sg.Graph([("h", sg.sigmoid(X * W1)), ("y_pred", hs * W2), ("L", sg.squared_l2(yp, Y))])
    compiled = sg.derive(graph, [W1, W2]).compile()
    matrix = sg.derive(sg.squared_l2(sg.sigmoid(X * W1) * W2, Y), [W1, W2]).compile()

    def hand():  # the seeds' 20-line network's backward pass
        h = 1 / (1 + np.exp(-x.dot(w1)))
        y_pred = h.dot(w2)
        grad_y_pred = 2.0 * (y_pred - y)
        grad_w2 = h.T.dot(grad_y_pred)
        grad_h = grad_y_pred.dot(w2.T)
        grad_w1 = x.T.dot(grad_h * h * (1 - h))
        return grad_w1, grad_w2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the hand version overflows exp for large logits
        return {"hand NumPy": best(hand, repeat),
                "symgrad (graph)": best(lambda: compiled(x=x, y=y, W1=w1, W2=w2), repeat),
                "symgrad (matrix expression)": best(lambda: matrix(x=x, y=y, W1=w1, W2=w2), repeat)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    for title, bench in (("sigmoid backward, 10^6 float64", sigmoid_backward),
                         ("softmax cross-entropy gradient, (1024, 1000)", softmax_ce),
                         ("the seeds' 2-layer net gradient, (64, 1000, 100, 10)", two_layer_net)):
        rows = bench(args.repeat)
        base = rows["hand NumPy"]
        print(title)
        for name, t in rows.items():
            print(f"  {name:<30} {t * 1e3:9.3f} ms   {t / base:6.2f}x")


if __name__ == "__main__":
    main()
