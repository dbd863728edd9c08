"""simplify: fold rules, index sums, simplex constraints, signs, budgets."""

import time

import pytest
import sympy as sp

import symgrad as sg
from symgrad.simplify.rules import FOLD_RULES, fold
from symgrad.simplify.budget import Budget
from symgrad.simplify.textbook import apply_simplex, resolve_delta_sums, textbook, normalise_sign

x, y, u = sp.symbols("x y u", real=True)


@pytest.mark.parametrize("plain,block", [
    (1 / (1 + sp.exp(-x)), sg.sigmoid(x)),
    (1 / (sp.exp(-2 * x) + 1), sg.sigmoid(2 * x)),
    (sp.exp(x) / (1 + sp.exp(x)), sg.sigmoid(x)),
    (sp.log(1 + sp.exp(x * y)), sg.softplus(x * y)),
    (sp.Max(0, x - y), sg.relu(x - y)),
    ((sp.exp(x) - sp.exp(-x)) / (sp.exp(x) + sp.exp(-x)), sp.tanh(x)),
])
def test_fold_rules_recognise_blocks(plain, block):
    assert fold(plain) == block


def test_fold_leaves_other_expressions_alone():
    for e in (1 / (2 + sp.exp(-x)), sp.log(2 + sp.exp(x)), sp.Max(1, x), sp.exp(x) * sg.sigmoid(x)):
        assert fold(e) == e
    assert all(rule.name for rule in FOLD_RULES)


def test_delta_sums_resolve_with_the_index_range_noted():
    i, k, n = sp.symbols("i k n", integer=True, positive=True)
    xs = sp.IndexedBase("x")
    notes = []
    out = resolve_delta_sums(sp.Sum(sp.KroneckerDelta(i, k) * xs[i] ** 2 + xs[i], (i, 1, n)), notes)
    assert out == xs[k] ** 2 + sp.Sum(xs[i], (i, 1, n))
    assert notes == ["1 <= k <= n"]


def test_simplex_constraint_collects_the_full_sum_only():
    y1, y2, y3, a = sp.symbols("y1 y2 y3 a")
    group = [(y1, y2, y3)]
    assert apply_simplex(a * y1 + a * y2 + a * y3 - y2, group) == a - y2
    partial = a * y1 + a * y2 - y2  # y3 missing: nothing may be substituted
    assert apply_simplex(partial, group) == partial


@pytest.mark.parametrize("given,expected", [
    (-x * (y - u), x * (u - y)),
    ((y - u) / (u * (u - 1)), (u - y) / (u * (1 - u))),
    (x * (u - y), x * (u - y)),
])
def test_signs_are_normalised_the_textbook_way(given, expected):
    out = normalise_sign(given)
    assert sp.simplify(out - given) == 0
    assert sp.srepr(out) == sp.srepr(expected) or out == expected


def test_budget_skips_and_says_so():
    budget = Budget(seconds=0.0)
    assert budget.run("slow step", lambda: sp.factor(x ** 2 - 1)) is None
    assert "budget" in budget.hits[0]


def test_budget_interrupts_a_long_step():
    budget = Budget(seconds=0.3)

    def slow():
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 5:
            sp.expand((x + y + u) ** 8)
        return x

    t0 = time.perf_counter()
    assert budget.run("slow step", slow) is None
    assert time.perf_counter() - t0 < 2
    assert "time bound" in budget.hits[0]


def test_textbook_keeps_block_outputs_as_atoms():
    s = sg.sigmoid(x)
    assert textbook(s - s ** 2) == s * (1 - s)
    assert textbook(1 - sp.tanh(x) ** 2) == 1 - sp.tanh(x) ** 2
