"""Compiled values and verdicts against independent references (mpmath at high precision).

The compiled derivative feeds verification and users alike: a wrong compiled value is a silent
wrong number. These tests compare compiled code with mpmath evaluations of the forward's
one-sided difference quotients / the elementary formula, never with numbers taken from symgrad.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp

from symgrad import derive
from symgrad.catalog import elu, leaky_relu

x = sp.Symbol("x", real=True)


def test_shared_boolean_condition_does_not_turn_a_constant_branch_into_1():
    # elu' and leaky_relu' share the condition x > 0 (one CSE temporary, a boolean array)
    f = derive(elu(x) + leaky_relu(x), x).compile()
    truth = float(mpmath.exp(-1) + mpmath.mpf("0.01"))
    assert f(x=-1.0) == pytest.approx(truth, rel=1e-15)
    assert f(x=np.array([-1.0, -2.0]))[1] == pytest.approx(float(mpmath.exp(-2) + mpmath.mpf("0.01")), rel=1e-15)


def test_integer_input_keeps_a_fractional_constant_branch():
    f = derive(leaky_relu(x), x).compile()
    assert f(x=-1) == pytest.approx(0.01, rel=1e-15)
    assert np.allclose(f(x=np.array([-1, 2])), [0.01, 1.0], rtol=1e-15)


@pytest.mark.parametrize("at", [-1.0, 1.0])
def test_hardtanh_derivative_is_zero_at_its_kinks(at):
    # the kink convention (and torch.nn.functional.hardtanh): 0 at x = ±1, not Heaviside(0) = 1/2
    f = derive(sp.Min(1, sp.Max(-1, x)), x).compile()
    assert f(x=at) == 0.0
    assert f(x=0.5) == 1.0 and f(x=1.5) == 0.0 and f(x=-1.5) == 0.0


def test_hardtanh_matches_torch_at_the_kinks():
    torch = pytest.importorskip("torch")
    t = torch.tensor([-1.0, -0.5, 1.0, 2.0], dtype=torch.float64, requires_grad=True)
    torch.nn.functional.hardtanh(t).sum().backward()
    f = derive(sp.Min(1, sp.Max(-1, x)), x).compile()
    assert np.array_equal(f(x=t.detach().numpy()), t.grad.numpy())
