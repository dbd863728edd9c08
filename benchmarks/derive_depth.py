"""Derivation cost against network depth: symgrad's one reverse pass vs naive ``sympy.diff``, side by
side in one run, for the two workloads of the engine issue:

* matrix: the full gradient (every weight) of a sigmoid net written as ONE matrix expression —
  ``h = sigmoid(h*W)``, X, Y 8×4, W 4×4, ``L = tr(rᵀr)``, ``r = h*W_last − Y`` — depths 1…16;
* scalar: the lecture notes' neuron stacked (width-2 sigmoid layers on explicit symbols, every weight),
  depths 1…6.

    python benchmarks/derive_depth.py [--matrix-depth 16] [--scalar-depth 6] [--naive-budget 60]

"nodes" is the size of what the derivation produced (SymPy's count_ops over the reverse pass's
assignments: forward intermediates and adjoints). "naive" differentiates the inlined elementary loss
once per weight with ``sympy.diff`` (every ∂L/∂w); it is skipped once it has used its time budget.
Each row also prints the time relative to the first depth (linear growth = depth / first depth).
"""

from __future__ import annotations

import argparse
import time

import sympy as sp

import symgrad as sg
from symgrad.simplify.rules import elementary


def matrix_net(depth: int, n: int = 4):
    X, Y = sp.MatrixSymbol("X", 8, n), sp.MatrixSymbol("Y", 8, n)
    Ws = [sp.MatrixSymbol(f"W{i}", n, n) for i in range(1, depth + 1)]
    h = X
    for W in Ws[:-1]:
        h = sg.sigmoid(h * W)
    r = h * Ws[-1] - Y
    return sp.Trace(r.T * r), Ws


def scalar_net(depth: int, width: int = 2):
    xs = sp.symbols(f"x1:{width + 1}", real=True)
    h, ws = list(xs), []
    for layer in range(1, depth + 1):
        W = [[sp.Symbol(f"w{layer}_{i}{j}", real=True) for j in range(width)] for i in range(width)]
        ws += [e for row in W for e in row]
        h = [sg.sigmoid(sum(W[i][j] * h[j] for j in range(width))) for i in range(width)]
    v = [sp.Symbol(f"v{j}", real=True) for j in range(width)]
    y = sp.Symbol("y", real=True)
    return (sum(v[j] * h[j] for j in range(width)) - y) ** 2, ws + v


def program_size(d) -> int:
    bp = d.program
    return sum(sp.count_ops(v) for v in list(bp.graph.exprs.values()) + list(bp.gradients.values()))


def naive_matrix(L, Ws):
    """SymPy alone: the loss on explicit entries, differentiated entry by entry."""
    explicit = L.subs({W: sp.Matrix(W) for W in L.atoms(sp.MatrixSymbol)}).doit()
    explicit = elementary(explicit)
    return [sp.diff(explicit, e) for W in Ws for e in sp.Matrix(W)]


def naive_scalar(L, ws):
    plain = elementary(L)
    return [sp.diff(plain, w) for w in ws]


def run(name, build, depths, naive, budget):
    print(f"\n{name}")
    print(f"{'depth':>5} {'symgrad ms':>11} {'x first':>8} {'nodes':>7} {'naive ms':>10} {'naive ops':>10} {'naive/symgrad':>14}")
    first, spent, last = None, 0.0, 0.0
    for depth in depths:
        sp.core.cache.clear_cache()
        L, ws = build(depth)
        t0 = time.perf_counter()
        d = sg.derive(L, ws)
        t = time.perf_counter() - t0
        first = first or t
        row = f"{depth:>5} {t * 1e3:>11.1f} {t / first:>8.1f} {program_size(d):>7}"
        if spent + 8 * last < budget:  # naive cost grows several-fold per layer
            sp.core.cache.clear_cache()
            t0 = time.perf_counter()
            grads = naive(L, ws)
            nt = time.perf_counter() - t0
            spent, last = spent + nt, nt
            row += f" {nt * 1e3:>10.1f} {sum(sp.count_ops(g) for g in grads):>10} {nt / t:>13.1f}x"
        else:
            row += f" {'skipped (over budget)':>36}"
        print(row, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matrix-depth", type=int, default=16)
    ap.add_argument("--scalar-depth", type=int, default=6)
    ap.add_argument("--naive-budget", type=float, default=60.0, help="seconds for all naive runs of a workload")
    args = ap.parse_args()
    sg.derive(*matrix_net(2))  # warm-up: imports and first-use caches
    run("matrix expression (X, Y 8×4, W 4×4): every weight", matrix_net,
        [d for d in (1, 2, 4, 8, 12, 16) if d <= args.matrix_depth], naive_matrix, args.naive_budget)
    run("scalar path (width-2 sigmoid layers on explicit symbols): every weight", scalar_net,
        range(1, args.scalar_depth + 1), naive_scalar, args.naive_budget)


if __name__ == "__main__":
    main()
