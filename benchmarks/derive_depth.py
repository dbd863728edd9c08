"""Derivation cost against network depth: symgrad's graph of named intermediates vs naive
``sympy.diff`` of the expanded loss (explicit entries), measured side by side in one run.

    python benchmarks/derive_depth.py [--max-depth 8] [--width 4] [--naive-budget 60]

For depth L: input width w, L hidden sigmoid layers of width w, a linear output of width 2,
squared L2 loss. "ops" is SymPy's count_ops of everything the derivation produced (for the
graph: every gradient definition, written with grad_<node> names; for naive: every ∂L/∂W_ij
of the expanded loss). Naive differentiation is skipped once it has used its time budget.
"""

from __future__ import annotations

import argparse
import time

import sympy as sp

import symgrad as sg
from symgrad.graph import Graph
from symgrad.matrices import sq_frobenius


def graph_network(depth: int, width: int, out: int = 2) -> tuple[Graph, list]:
    N = sp.Symbol("N", integer=True, positive=True)
    x = sp.MatrixSymbol("x", N, width)
    nodes, weights, prev = [], [], x
    for layer in range(1, depth + 1):
        W = sp.MatrixSymbol(f"W{layer}", width, width)
        weights.append(W)
        nodes.append((f"h{layer}", sg.sigmoid(prev * W)))
        prev = sp.MatrixSymbol(f"h{layer}", N, width)
    W_out = sp.MatrixSymbol(f"W{depth + 1}", width, out)
    weights.append(W_out)
    y = sp.MatrixSymbol("y", N, out)
    nodes.append(("y_pred", prev * W_out))
    nodes.append(("L", sq_frobenius(sp.MatrixSymbol("y_pred", N, out) - y)))
    return Graph(nodes), weights


def explicit_network(depth: int, width: int, out: int = 2) -> tuple[sp.Expr, list]:
    h = sg.vector("x", width)
    weights = []
    for layer in range(1, depth + 1):
        W = sg.matrix(f"W{layer}_", width, width)
        weights.append(W)
        h = (W * h).applyfunc(lambda e: sg.sigmoid(e).rewrite(sp.exp))
    W_out = sg.matrix(f"W{depth + 1}_", out, width)
    weights.append(W_out)
    return sg.squared_l2(W_out * h, sg.vector("y", out)), weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-depth", type=int, default=8)
    ap.add_argument("--width", type=int, default=4)
    ap.add_argument("--naive-budget", type=float, default=60.0, help="seconds for all naive runs")
    args = ap.parse_args()
    print(f"{'depth':>5} {'graph s':>9} {'graph ops':>10} {'matrix s':>9} {'naive s':>9} {'naive ops':>10} "
          f"{'naive/graph':>12}")
    spent, last = 0.0, 0.0
    for depth in range(1, args.max_depth + 1):
        t0 = time.perf_counter()
        graph, weights = graph_network(depth, args.width)
        d = sg.derive(graph, weights)
        g_time = time.perf_counter() - t0
        g_ops = sum(sp.count_ops(v) for v in d.backprop.gradients.values())
        t0 = time.perf_counter()
        sg.derive(graph.expression(), weights)  # the same network as one matrix expression
        m_time = time.perf_counter() - t0
        naive = "skipped (over budget)"
        if spent + 10 * last < args.naive_budget:  # naive cost grows about tenfold per layer
            t0 = time.perf_counter()
            loss, ws = explicit_network(depth, args.width)
            grads = [sp.diff(loss, e) for W in ws for e in W]
            n_time = time.perf_counter() - t0
            spent, last = spent + n_time, n_time
            n_ops = sum(sp.count_ops(g) for g in grads)
            naive = f"{n_time:>9.3f} {n_ops:>10} {n_time / g_time:>11.1f}x"
        print(f"{depth:>5} {g_time:>9.3f} {g_ops:>10} {m_time:>9.3f} {naive}", flush=True)


if __name__ == "__main__":
    main()
