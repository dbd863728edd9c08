"""Shared helpers: independent numeric references for the tests."""

import mpmath
import numpy as np
import pytest
import sympy as sp

from symgrad.simplify.rules import elementary


def mp_derivative(expr: sp.Expr, var: sp.Symbol, point: dict, dps: int = 40) -> float:
    """∂expr/∂var at ``point`` by mpmath's numerical differentiation of the elementary form
    (uses none of symgrad's derivative identities)."""
    plain = elementary(expr)
    fixed = plain.xreplace({k: sp.Float(v, dps) for k, v in point.items() if k != var})
    t = sp.Dummy("t")
    f = sp.lambdify(t, fixed.xreplace({var: t}), modules="mpmath")
    with mpmath.workdps(dps):
        return float(mpmath.diff(f, mpmath.mpf(point[var])))


def mp_value(expr: sp.Expr, point: dict, dps: int = 40) -> float:
    """The value of ``expr`` at ``point``, evaluated at ``dps`` digits."""
    return float(sp.N(elementary(expr).xreplace({k: sp.Float(v, dps) for k, v in point.items()}), dps))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
