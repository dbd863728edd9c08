"""Budgets: a time bound shared by the slow symbolic steps of one derivation; a step that runs out
is skipped and the budget records it, so the caller can say so.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable
import sympy as sp
from ..errors import BudgetExceeded

__all__ = ["Budget"]


@dataclass
class Budget:
    """A time budget shared by the bounded steps of one derivation."""

    seconds: float = 5.0
    started: float = field(default_factory=time.perf_counter)
    hits: list[str] = field(default_factory=list)

    def remaining(self) -> float:
        return self.seconds - (time.perf_counter() - self.started)

    def run(self, what: str, fn: Callable[[], sp.Basic], cap: float | None = None):
        """``fn()`` within the remaining budget (at most ``cap`` s); None when it ran out."""
        left = self.remaining() if cap is None else min(cap, self.remaining())
        if left <= 0:
            self.hits.append(f"{what}: skipped, the {self.seconds:g} s budget was used up")
            return None
        try:
            with _alarm(left):
                return fn()
        except BudgetExceeded:
            self.hits.append(f"{what}: stopped after {left:.2g} s (time bound)")
            return None


@contextmanager
def _alarm(seconds: float):
    """Raise BudgetExceeded after ``seconds`` (SIGALRM on the main thread; elsewhere unbounded
    in time but every caller also caps expression size)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def handler(signum, frame):
        raise BudgetExceeded(f"time bound of {seconds:.3g} s reached")

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- fold rules: elementary forms → catalog blocks ---------------------------------------------
