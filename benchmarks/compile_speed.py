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
import importlib.util  # noqa: E402
import tempfile  # noqa: E402
import timeit  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402

import symgrad as sg  # noqa: E402
import symgrad.nn as nn  # noqa: E402


def best(fn, repeat: int) -> float:
    """The best, over ``repeat`` runs, of the mean time per call of a run lasting ~20 ms or more."""
    t0 = timeit.default_timer()
    fn()  # warm up (and JIT compile)
    once = max(timeit.default_timer() - t0, 1e-6)
    number = max(1, int(0.02 / once))
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def _torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    return torch


def _jax():
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)  # float64, like the others
    return jax


def sigmoid_backward(repeat):
    rng = np.random.default_rng(0)
    x = rng.normal(scale=3.0, size=1_000_000)
    ones = np.ones_like(x)
    xs = sp.Symbol("x", real=True)
    compiled = sg.derive(sg.sigmoid(xs), xs).compile()
    naive = sp.lambdify(xs, sp.diff(1 / (1 + sp.exp(-xs)), xs), "numpy")

    def hand():
        s = 1 / (1 + np.exp(-x))
        return s * (1 - s)

    rows = {"hand NumPy": best(hand, repeat), "symgrad compiled": best(lambda: compiled(x=x), repeat),
            "symgrad.nn.sigmoid_backward (x grad)": best(lambda: nn.sigmoid_backward(x, ones), repeat)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows["naive lambdify"] = best(lambda: naive(x), repeat)
    torch = _torch()
    if torch is not None:
        t = torch.from_numpy(x)

        def run():
            v = t.clone().requires_grad_(True)
            torch.sigmoid(v).backward(torch.ones_like(v))
            return v.grad

        rows["torch autograd"] = best(run, repeat)
    jax = _jax()
    if jax is not None:
        grad = jax.jit(jax.grad(lambda v: jax.numpy.sum(jax.nn.sigmoid(v))))
        xj = jax.numpy.asarray(x)
        rows["JAX jit(grad)"] = best(lambda: grad(xj).block_until_ready(), repeat)
    return rows


def softmax_ce(repeat):
    rng = np.random.default_rng(1)
    z = rng.normal(scale=3.0, size=(1024, 1000))
    idx = rng.integers(1000, size=1024)
    y = np.eye(1000)[idx]
    ones = np.ones(1024)
    N, C = sp.symbols("N C", integer=True, positive=True)
    Z, Y = sp.MatrixSymbol("Z", N, C), sp.MatrixSymbol("Y", N, C)
    compiled = sg.derive(sg.softmax_cross_entropy(Z, Y), Z).compile()

    def hand():
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True) - y

    rows = {"hand NumPy": best(hand, repeat), "symgrad compiled": best(lambda: compiled(Z=z, Y=y), repeat),
            "symgrad.nn, one-hot rows (x grad)": best(lambda: nn.softmax_cross_entropy_backward(z, y, ones), repeat),
            "symgrad.nn, class indices (x grad)": best(lambda: nn.softmax_cross_entropy_backward(z, idx, ones), repeat)}
    torch = _torch()
    if torch is not None:
        t, ti = torch.from_numpy(z), torch.from_numpy(idx)

        def run():
            v = t.clone().requires_grad_(True)
            torch.nn.functional.cross_entropy(v, ti, reduction="sum").backward()
            return v.grad

        rows["torch autograd"] = best(run, repeat)
    jax = _jax()
    if jax is not None:
        jnp = jax.numpy
        yj = jnp.asarray(y)
        grad = jax.jit(jax.grad(lambda v: -jnp.sum(yj * jax.nn.log_softmax(v, axis=-1))))
        zj = jnp.asarray(z)
        rows["JAX jit(grad)"] = best(lambda: grad(zj).block_until_ready(), repeat)
    return rows


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
    derivation = sg.derive(sg.squared_l2(sg.sigmoid(X * W1) * W2, Y), [W1, W2])
    matrix = derivation.compile()
    with tempfile.TemporaryDirectory() as tmp:  # the module a user would import
        path = sg.export_module(derivation, Path(tmp) / "net_gradient.py")
        spec = importlib.util.spec_from_file_location("net_gradient", path)
        exported = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(exported)
    try:  # the same formula, without symgrad's printer (CSE, stable forms, elementwise blocks)
        naive = sp.lambdify([W1, W2, X, Y], list(derivation.result), "numpy")
    except SyntaxError:  # lambdify prints σ∘(x W1) as `Lambda(_entry, sigmoid(_entry)).(…)`
        naive = None

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
        rows = {"hand NumPy": best(hand, repeat),
                "symgrad exported module": best(lambda: exported.gradient(w1, w2, x, y), repeat),
                "symgrad compiled (graph)": best(lambda: compiled(x=x, y=y, W1=w1, W2=w2), repeat),
                "symgrad compiled (matrix expr.)": best(lambda: matrix(x=x, y=y, W1=w1, W2=w2), repeat)}
        if naive is not None:
            rows["naive lambdify (same formula)"] = best(lambda: naive(w1, w2, x, y), repeat)
        else:
            print("  (naive lambdify of the same formula: SyntaxError, it cannot print elementwise σ of a matrix)")
    torch = _torch()
    if torch is not None:
        tx, ty, tw1, tw2 = (torch.from_numpy(a) for a in (x, y, w1, w2))

        def run():
            a, b = tw1.clone().requires_grad_(True), tw2.clone().requires_grad_(True)
            loss = ((torch.sigmoid(tx @ a) @ b - ty) ** 2).sum()
            return torch.autograd.grad(loss, (a, b))

        rows["torch autograd"] = best(run, repeat)
    jax = _jax()
    if jax is not None:
        jnp = jax.numpy
        xj, yj = jnp.asarray(x), jnp.asarray(y)
        grad = jax.jit(jax.grad(lambda a, b: jnp.sum((jax.nn.sigmoid(xj @ a) @ b - yj) ** 2), argnums=(0, 1)))
        a, b = jnp.asarray(w1), jnp.asarray(w2)
        rows["JAX jit(grad)"] = best(lambda: [g.block_until_ready() for g in grad(a, b)], repeat)
    return rows


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
            print(f"  {name:<38} {t * 1e3:9.3f} ms   {t / base:6.2f}x")


if __name__ == "__main__":
    main()
