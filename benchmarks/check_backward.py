"""check_backward's cost on the five layers of its tests (the 20-line network, the CS231n classifier,
layer norm, batch norm, attention): method "auto" (symbolic where forward and backward trace) against
"numeric" (finite differences through check_grad), for the correct hand backward and its planted bug.

    python benchmarks/check_backward.py

Each row: the method actually used, seconds for the correct and the buggy backward, the statuses of the
correct one, and where the bug was located. Symbolic: trace both, derive, expand, compile, 3 points;
numeric: check_grad at 2 points (sizes 3, 4, 5, … and one larger).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import symgrad as sg  # noqa: E402
from tests.test_backcheck import CASES  # noqa: E402 - the layers, their hand backwards and planted bugs


def main() -> None:
    forward, backward, wrt, shapes, _, _ = CASES["twenty-line net"]
    sg.check_backward(forward, backward, wrt, **shapes)  # imports and first compilations out of the timings
    print(f"{'forward':<16} {'method':<9} {'correct':>8} {'bug':>8}  statuses | the bug located at")
    for name in ["twenty-line net", "classifier", "layer norm", "batch norm", "attention"]:
        forward, backward, wrt, shapes, bug, _ = CASES[name]
        for method in ("auto", "numeric"):
            t0 = time.perf_counter()
            good = sg.check_backward(forward, backward, wrt, method=method, **shapes)
            t1 = time.perf_counter()
            bad = sg.check_backward(forward, lambda bug=bug, **kw: backward(**kw, bug=bug), wrt, method=method,
                                    **shapes)
            t2 = time.perf_counter()
            assert good.ok and not bad.ok
            print(f"{name:<16} {good.method:<9} {t1 - t0:7.2f}s {t2 - t1:7.2f}s  "
                  f"{','.join(g.status for g in good.gradients)} | {bad.failure.name}{bad.failure.entry}")


if __name__ == "__main__":
    main()
