"""The sampling policy: magnitudes across decades, both signs, near 0, breakpoints visited at and
on both sides, domains respected, exact evaluation that never guesses, float-aware tolerances."""

import subprocess
import sys

import mpmath
import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.checks import sampling as S
from symgrad.catalog import Interval

x, y = sp.symbols("x y", real=True)
p = sp.Symbol("p", positive=True)


def test_points_span_many_decades_both_signs_and_near_zero(rng):
    pts = S.points([x], [x ** 2], 60, rng)
    values = np.array([float(pt[x]) for pt in pts])
    assert values.max() > 1e5 and values.min() < -1e5
    assert np.abs(values).min() < 1e-6
    assert np.any((np.abs(values) > 0.1) & (np.abs(values) < 3))


def test_positive_symbols_and_declared_intervals_are_respected(rng):
    for pt in S.points([p, y], [sg.relu(p - 4) + sg.relu(y - 2)], 40, rng, domain={y: Interval(1.0, 3.0)}):
        assert float(pt[p]) > 0 and 1.0 <= float(pt[y]) <= 3.0


@pytest.mark.parametrize("expr,kink", [
    (sg.relu(x - 4), 4), (sp.Heaviside(x + 3), -3), (sp.Abs(x - 7), 7), (sp.Max(x, 5), 5),
    (sp.Min(1, sp.Max(-1, x)), 1), (sp.Min(1, sp.Max(-1, x)), -1),
    (sp.Piecewise((x, x > 2), (0, True)), 2), (sg.leaky_relu(x - 9), 9), (sg.elu(x + 11), -11),
    (sp.sign(x - 0.5), 0.5), (sp.Min(sp.Max(x / 6 + sp.Rational(1, 2), 0), 1), 3),
])
def test_every_breakpoint_is_visited_at_and_on_both_sides(expr, kink, rng):
    values = [float(pt[x]) for pt in S.points([x], [expr], 0, rng)]
    assert any(v == kink for v in values)
    assert any(kink < v < kink + 1e-6 * max(1, abs(kink)) for v in values)
    assert any(kink - 1e-6 * max(1, abs(kink)) < v < kink for v in values)


def test_breakpoints_of_a_block_come_from_its_elementary_form():
    # no block name is known to the sampler: hardtanh's kinks come from its Min/Max
    hardtanh = sg.parse("hardtanh(x)", symbols={"x": x})
    roots = {r for u in S.breakpoints(hardtanh) for r in S.kink_roots(u, x, {})}
    assert {-1, 1} <= roots


def test_breakpoints_in_several_symbols_are_solved_for_each(rng):
    pts = S.points([x, y], [sg.relu(x * y - 4)], 0, rng)
    assert any(abs(float(pt[x]) * float(pt[y]) - 4) < 1e-12 for pt in pts)


def test_exact_evaluation_never_guesses_through_a_cancellation():
    ugly = 1 - 1 / (1 + sp.exp(-x))  # σ(−x) written with a cancellation
    assert S.value(ugly, {x: sp.Integer(10 ** 8)}) is None  # 43 million digits would be needed
    got = S.value(ugly, {x: sp.Integer(1000)})
    with mpmath.workdps(50):
        ref = 1 / (1 + mpmath.exp(1000))
    assert abs(got - ref) <= mpmath.mpf("1e-28") * ref
    assert S.value(sp.log(x), {x: sp.Integer(-2)}).imag != 0
    assert S.value(sp.tanh(x) ** 2 + sp.sech(x) ** 2 - 1, {x: sp.Rational(1, 3)}) is None  # 0, undecidable
    # evalf reads log(1 + e^{-81}) as a zero of precision -1: no value, never 0
    for at in (-81, -416):
        got = S.value(sp.log(1 + sp.exp(x)), {x: sp.Integer(at)})
        with mpmath.workdps(60):
            assert got is None or abs(got - mpmath.log1p(mpmath.exp(at))) < mpmath.mpf("1e-25") * mpmath.exp(at)


def test_tolerances_depend_on_the_input_precision():
    assert S.claim_tolerance(2 * x) == S.EXACT_RTOL
    assert S.claim_tolerance(sp.Float(0.01) * x) == S.FLOAT_RTOL
    # a float on one side only is a floating-point statement; floats copied from the truth are exact
    assert S.claim_tolerance(x / 100, sp.Float(0.01) * x) == S.FLOAT_RTOL
    assert S.claim_tolerance(sp.Float(0.3333333333333333) * x, x / 3) == S.FLOAT_RTOL
    assert S.claim_tolerance(sp.Float(0.044715) * x * (1 + sp.Rational(1, 10 ** 18)), sp.Float(0.044715) * x) == S.EXACT_RTOL
    assert 1e-15 < S.FLOAT_RTOL < 1e-12 and S.EXACT_RTOL < 1e-18
    assert S.rtol_for(np.float32) > S.rtol_for(np.float64)


def test_one_symbol_per_name():
    a_plain, a_pos = sp.Symbol("a"), sp.Symbol("a", positive=True)
    names = S.by_name(a_pos * x)
    assert S.unify(2 * a_plain * sp.Symbol("x"), names) == 2 * a_pos * x


def test_check_grad_imports_no_sympy():
    code = "import sys, symgrad.testing, symgrad.checks.gradcheck; assert 'sympy' not in sys.modules, 'sympy imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_breakpoints_at_a_double_root_are_found(rng):
    # softsign((2x + 2)·Max(−3, x + 1)): the kink of |·| at 2(x + 1)² = 0 stalled the root finder (NoConvergence)
    assert S.kink_roots((2 * x + 2) * (x + 1), x, {}) == [-1]
    assert sorted(S.kink_roots((x - 1) ** 2 * (x + 3), x, {})) == [-3, 1]
    values = [float(pt[x]) for pt in S.points([x], [sp.Abs((2 * x + 2) * sp.Max(-3, x + 1))], 0, rng)]
    assert -1.0 in values


def test_a_sign_of_a_cancelled_argument_is_never_taken_at_face_value():
    # sign(x + x·erf(9x/√2)) at x = −2.9: the argument is −10⁻¹⁴⁷·…; evalf alone said +1 (a false reject)
    u = x + x * sp.erf(9 * sp.sqrt(2) * x / 2)
    at = {x: S.exact(-2.9008341868288254)}
    assert S.value(sp.sign(u), at) == -1
    assert S.value(sp.Heaviside(u), at) == 0 and S.value(sp.Max(u, 0), at) == 0
    assert S.value(sp.sign(u), {x: S.exact(-60.0)}) is None  # 10⁴ digits: unresolved, never guessed
