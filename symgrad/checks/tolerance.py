"""Tolerances and floors of the one sampling policy — the half that needs only NumPy, so that
``check_grad`` (and the pytest plugin ``symgrad.testing``, loaded by every pytest run) stays free of
SymPy; ``sampling`` re-exports them beside the points it draws."""

from __future__ import annotations

import numpy as np

__all__ = ["DIGITS", "EXACT_RTOL", "FLOAT_RTOL", "FLOOR", "RTOL", "rtol_for", "directions", "latex_number"]

DIGITS = 30  # correct digits of every exact evaluation
EXACT_RTOL = 1e-20  # an exact claim: far above the evaluation error (1e-30), far below any real mistake
FLOAT_RTOL = 256 * float(np.finfo(np.float64).eps)  # a claim with floats: float64 rounding (≈ 5.7e-14)
FLOOR = 1e-7  # of the result's largest entry: entries near 0 are neither excused nor blown up
RTOL = {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-3, np.dtype(np.float16): 3e-2}


def rtol_for(dtype) -> float:
    """The relative tolerance of a numerical derivative computed in ``dtype``."""
    return RTOL.get(np.dtype(dtype), 1e-6)


def directions(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random ±1 direction (Rademacher) of ``size`` entries, for directional derivative checks."""
    return rng.choice([-1.0, 1.0], size=size)


def latex_number(x: float) -> str:
    r"""A number for a verdict's LaTeX: ``1.20\times 10^{-9}``, ``0``, ``\text{nan}``."""
    if x != x:
        return r"\text{nan}"
    if x == 0:
        return "0"
    mant, exp = f"{x:.2e}".split("e")
    return rf"{mant}\times 10^{{{int(exp)}}}"
