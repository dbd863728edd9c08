"""check: the numeric cross-check passes right results and catches wrong ones."""

import dataclasses

import pytest
import sympy as sp

import symgrad as sg
from symgrad.catalog import Choice, Interval, Simplex, vector
from symgrad.checks.crosscheck import cross_check, sample_point

x, y = sp.symbols("x y", real=True)


def test_right_result_passes():
    r = cross_check(sg.derive(sg.sigmoid(x) * y, [x, y]))
    assert r.ok and r.max_rel_error < 1e-12 and r.max_rel_error_raw < 1e-12


@pytest.mark.parametrize("wrong", [
    lambda s: 2 * s * (1 - s),  # a factor 2
    lambda s: -s * (1 - s),  # a sign
    lambda s: s * (1 - s) * (1 + sp.Rational(1, 10 ** 6)),  # a tiny relative error
    lambda s: s,  # a missing term
])
def test_wrong_results_are_caught(wrong):
    d = sg.derive(sg.sigmoid(x), x)
    bad = dataclasses.replace(d, result=wrong(sg.sigmoid(x)))
    r = cross_check(bad)
    assert not r.ok and r.max_rel_error > 1e-8
    assert r.worst["wrt"] == "x"


def test_wrong_matrix_entry_is_caught():
    W = sg.matrix("W", 2, 2)
    d = sg.derive(sg.sq_norm_linear(W, vector("x", 2)), W)
    tampered = d.result.copy()
    tampered[1, 0] = tampered[1, 0] * (1 + sp.Rational(1, 1000))
    assert not cross_check(dataclasses.replace(d, result=tampered)).ok


def test_sampling_respects_domains(rng):
    p, t = sp.symbols("p t", positive=True)
    ys = tuple(vector("y", 3))
    for _ in range(20):
        pt = sample_point([p, t, *ys], {t: Choice((-1, 1)), ys: Simplex(onehot=True), p: Interval(0.5, 0.6)},
                          {}, rng)
        assert 0.5 <= pt[p] <= 0.6 and pt[t] in (-1, 1)
        assert sorted(pt[s] for s in ys) == [0.0, 0.0, 1.0]


# --- issue 11: one sampling policy -------------------------------------------------------------------
def test_a_result_wrong_only_far_from_zero_is_caught():
    d = sg.derive(x ** 2, x)
    bad = dataclasses.replace(d, result=2 * x + sg.relu(x - 50))
    assert not cross_check(bad, points=8).ok


def test_a_result_wrong_only_just_right_of_a_kink_is_caught():
    d = sg.derive(sg.relu(x), x)
    bad = dataclasses.replace(d, result=sg.step(x) + sg.step(x) * sg.step(sp.Rational(1, 10 ** 4) - x))
    assert not cross_check(bad).ok
    assert cross_check(d).ok  # the kink itself is never a sample point of a finite difference


def test_points_beyond_float64_are_skipped_not_passed_silently():
    d = sg.derive(sp.exp(x), x)
    assert cross_check(d, points=12).ok
    bad = dataclasses.replace(d, result=sp.exp(x) * (1 + sp.Rational(1, 10 ** 6)))
    assert not cross_check(bad, points=12).ok
