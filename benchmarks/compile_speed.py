"""Compiled gradients against hand-written NumPy (the baseline), naive lambdify, and torch /
JAX when installed — measured side by side in one run, threads pinned to 1.

    python benchmarks/compile_speed.py [--repeat 7] [--only compiled|perf|blocks]

Ratios are time / hand-NumPy time (lower is better; ≤ 1.0 is the goal); the last section compares
every symgrad.nn block's backward with torch.autograd (inputs and references from tests/test_nn.py).
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
            "symgrad.nn, one-hot rows (× grad; ∂z, ∂y)": best(lambda: nn.softmax_cross_entropy_backward(z, y, ones), repeat),
            "symgrad.nn, class indices (× grad; ∂z)": best(lambda: nn.softmax_cross_entropy_backward(z, idx, ones), repeat)}
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


def perf_nn(repeat):
    """The two figures of ../shared/checks/perf_nn.py: the stable BCE-on-logits backward at 10⁶
    entries (symgrad.nn returns ∂/∂z and ∂/∂y = −z·g; the hand version ∂/∂z only, and loses every
    digit of σ(z) − 1 from z ≈ 37 on) and a row softmax VJP at (32, 32) (per-call overhead)."""
    rng = np.random.default_rng(3)
    z, y, g = rng.normal(size=10**6) * 4, rng.uniform(size=10**6), rng.normal(size=10**6)
    zs, gs = rng.normal(size=(32, 32)), rng.normal(size=(32, 32))

    def hand_bce():
        return (1.0 / (1.0 + np.exp(-z)) - y) * g

    def hand_vjp():
        a = np.exp(zs - zs.max(axis=-1, keepdims=True))
        a /= a.sum(axis=-1, keepdims=True)
        return a * (gs - (gs * a).sum(axis=-1, keepdims=True))

    rows = {}
    with np.errstate(over="ignore"):
        rows["bce_with_logits backward, 10^6"] = (best(hand_bce, repeat), best(lambda: nn.bce_with_logits_backward(z, y, g), repeat))
    rows["softmax VJP, (32, 32)"] = (best(hand_vjp, repeat), best(lambda: nn.softmax_backward(zs, gs), repeat))
    torch = _torch()
    if torch is not None:
        tz, ty, tg, tzs, tgs = (torch.from_numpy(a) for a in (z, y, g, zs, gs))

        def run_bce():
            v, w = tz.clone().requires_grad_(True), ty.clone().requires_grad_(True)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(v, w, reduction="none")
            return torch.autograd.grad(loss, (v, w), tg)

        def run_vjp():
            v = tzs.clone().requires_grad_(True)
            return torch.autograd.grad(torch.softmax(v, -1), v, tgs)

        rows["bce_with_logits backward, 10^6"] += (best(run_bce, repeat),)
        rows["softmax VJP, (32, 32)"] += (best(run_vjp, repeat),)
    return rows


def every_block(repeat, n=2048, c=64):
    """Each symgrad.nn block's backward (every differentiable input) against torch.autograd's forward
    and backward of the same function, on the inputs (and torch references) of tests/test_nn.py at
    n samples of c entries."""
    torch = _torch()
    if torch is None:
        return {}
    spec = importlib.util.spec_from_file_location("test_nn", Path(__file__).parents[1] / "tests" / "test_nn.py")
    tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tests)
    tests.N, tests.C, tests.D, tests.H = n, c, c, c
    F = torch.nn.functional
    rows = {}
    for name in tests.NAMES:
        try:
            args, params, wrt = tests._spec(name, np.random.default_rng(5))
            ref = tests._torch_reference(name, torch, F)
        except KeyError:  # a block the tests do not compare with torch yet
            continue
        out = getattr(nn, name)(*args, **params)
        grad = np.random.default_rng(6).normal(size=np.shape(out))
        floats = [i for i in wrt if not np.issubdtype(np.asarray(args[i]).dtype, np.integer)]
        t_args = [torch.from_numpy(np.asarray(a)) for a in args]
        t_grad = torch.from_numpy(grad)

        def run_torch():
            leaves = [a.clone().requires_grad_(True) if i in floats else a for i, a in enumerate(t_args)]
            return torch.autograd.grad(ref(*leaves, **params), [leaves[i] for i in floats], t_grad)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows[name] = (best(lambda: getattr(nn, f"{name}_backward")(*args, grad, **params), repeat), best(run_torch, repeat))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--only", choices=["compiled", "perf", "blocks"], help="one section only")
    args = ap.parse_args()
    if args.only in (None, "compiled"):
        for title, bench in (("sigmoid backward, 10^6 float64", sigmoid_backward),
                             ("softmax cross-entropy gradient, (1024, 1000)", softmax_ce),
                             ("the seeds' 2-layer net gradient, (64, 1000, 100, 10)", two_layer_net)):
            rows = bench(args.repeat)
            base = rows["hand NumPy"]
            print(title)
            for name, t in rows.items():
                print(f"  {name:<38} {t * 1e3:9.3f} ms   {t / base:6.2f}x")
    if args.only in (None, "perf"):
        print("symgrad.nn against hand NumPy (and torch autograd), ratios to hand NumPy")
        for name, times in perf_nn(args.repeat).items():
            hand, ours = times[:2]
            extra = f"   torch {times[2] * 1e3:9.3f} ms {times[2] / hand:6.2f}x" if len(times) > 2 else ""
            print(f"  {name:<34} hand {hand * 1e3:9.3f} ms   symgrad.nn {ours * 1e3:9.3f} ms {ours / hand:6.2f}x{extra}")
    if args.only in (None, "blocks"):
        print("every symgrad.nn backward (all differentiable inputs) against torch autograd, (2048, 64)")
        for name, (ours, theirs) in every_block(args.repeat).items():
            print(f"  {name:<28} symgrad.nn {ours * 1e3:8.3f} ms   torch {theirs * 1e3:8.3f} ms   {ours / theirs:6.2f}x torch")


if __name__ == "__main__":
    main()
