"""Fold rules: elementary forms of catalog blocks in user expressions become the blocks
(``1/(1+exp(-x))`` → ``sigmoid(x)``), so that their derivative identities apply; and back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence
import sympy as sp
from ..catalog.activations import relu, sigmoid, softplus
from ..catalog.base import Primitive

__all__ = ["Rule", "FOLD_RULES", "fold", "elementary"]


@dataclass(frozen=True)
class Rule:
    """A rewrite rule as data: where ``query`` holds, a node becomes ``value(node)``."""

    name: str
    query: Callable[[sp.Basic], bool]
    value: Callable[[sp.Basic], sp.Basic]

    def __call__(self, expr: sp.Basic) -> sp.Basic:
        return expr.replace(self.query, self.value)


def _one_plus_exp(node) -> sp.Expr | None:
    """u when node is 1 + exp(u), else None."""
    if isinstance(node, sp.Add) and len(node.args) == 2 and sp.S.One in node.args:
        other = node.args[0] if node.args[1] == 1 else node.args[1]
        if isinstance(other, sp.exp):
            return other.args[0]
    return None


def _is_inverse_one_plus_exp(node) -> bool:
    return isinstance(node, sp.Pow) and node.exp == -1 and _one_plus_exp(node.base) is not None


def _exp_times_sigmoid(node) -> tuple | None:
    """(exp factor, sigmoid factor) when node = exp(u)·σ(−u)·rest (which is σ(u)·rest)."""
    if not isinstance(node, sp.Mul):
        return None
    for e in node.args:
        if isinstance(e, sp.exp):
            for s in node.args:
                if isinstance(s, sigmoid) and sp.expand(s.args[0] + e.args[0]) == 0:
                    return e, s
    return None


def _fold_exp_sigmoid(node):
    e, s = _exp_times_sigmoid(node)
    rest = [a for a in node.args if a is not e and a is not s]
    return sp.Mul(sigmoid(e.args[0]), *rest)


def _tanh_parts(node) -> sp.Expr | None:
    """u when node = (e^u − e^{−u}) / (e^u + e^{−u})."""
    if not (isinstance(node, sp.Mul) and len(node.args) == 2):
        return None
    num, den = node.args
    if isinstance(num, sp.Pow):
        num, den = den, num
    if not (isinstance(den, sp.Pow) and den.exp == -1 and isinstance(den.base, sp.Add)):
        return None
    terms = den.base.args
    if len(terms) != 2 or not all(isinstance(t, sp.exp) for t in terms):
        return None
    u = terms[0].args[0]
    if sp.expand(terms[1].args[0] + u) != 0:
        return None
    for cand in (u, -u):
        if sp.expand(num - (sp.exp(cand) - sp.exp(-cand))) == 0 and {sp.exp(cand), sp.exp(-cand)} == set(terms):
            return cand
    return None


FOLD_RULES: tuple[Rule, ...] = (
    Rule("1/(1 + exp(-u)) -> sigmoid(u)", _is_inverse_one_plus_exp,
         lambda n: sigmoid(-_one_plus_exp(n.base))),
    Rule("exp(u)*sigmoid(-u) -> sigmoid(u)", lambda n: _exp_times_sigmoid(n) is not None, _fold_exp_sigmoid),
    Rule("log(1 + exp(u)) -> softplus(u)",
         lambda n: isinstance(n, sp.log) and _one_plus_exp(n.args[0]) is not None,
         lambda n: softplus(_one_plus_exp(n.args[0]))),
    Rule("max(0, u) -> relu(u)",
         lambda n: isinstance(n, sp.Max) and len(n.args) == 2 and sp.S.Zero in n.args,
         lambda n: relu(n.args[1] if n.args[0] == 0 else n.args[0])),
    Rule("(exp(u) - exp(-u))/(exp(u) + exp(-u)) -> tanh(u)",
         lambda n: _tanh_parts(n) is not None, lambda n: sp.tanh(_tanh_parts(n))),
)


def fold(expr: sp.Basic, rules: Sequence[Rule] = FOLD_RULES) -> sp.Basic:
    """Apply the fold rules until nothing changes (at most 4 passes)."""
    for _ in range(4):
        before = expr
        for rule in rules:
            expr = rule(expr)
        if expr == before:
            break
    return expr


def elementary(expr: sp.Basic) -> sp.Basic:
    """``expr`` with every catalog block written in elementary functions (plain SymPy)."""

    for _ in range(8):  # blocks may produce blocks (bce_with_logits → softplus → log/exp)
        nodes = [n for n in sp.preorder_traversal(expr) if isinstance(n, Primitive)]
        if not nodes:
            return expr
        expr = expr.replace(lambda n: isinstance(n, Primitive), lambda n: n.elementary(*n.args))
    return expr


# --- textbook form ---------------------------------------------------------------------------
