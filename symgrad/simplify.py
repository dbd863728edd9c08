"""Simplify: rule tables that fold raw SymPy into textbook form, and a bounded tidy step.

* :data:`FOLD_RULES` recognise elementary forms of catalog blocks in user expressions
  (``1/(1+exp(-x))`` → ``sigmoid(x)``), so that their derivative identities apply.
* :func:`textbook` turns a chain-rule product into the form a textbook writes: it resolves
  indexed Kronecker-delta sums, applies the domain's sum-to-one constraints, then factors
  with every block output held as an atom (so ``σ`` stays ``σ``) and keeps the shortest form.

Every potentially slow step runs under a :class:`Budget`; a step that runs out is skipped
and the budget records it, so the caller can say so.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import sympy as sp

from .catalog.activations import relu, sigmoid, softplus
from .errors import BudgetExceeded

__all__ = ["Rule", "FOLD_RULES", "fold", "textbook", "Budget", "resolve_delta_sums",
           "apply_simplex", "elementary", "normalise_sign"]


# --- budgets ------------------------------------------------------------------------------
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
    from .catalog.base import Primitive

    for _ in range(8):  # blocks may produce blocks (bce_with_logits → softplus → log/exp)
        nodes = [n for n in sp.preorder_traversal(expr) if isinstance(n, Primitive)]
        if not nodes:
            return expr
        expr = expr.replace(lambda n: isinstance(n, Primitive), lambda n: n.elementary(*n.args))
    return expr


# --- textbook form ---------------------------------------------------------------------------
def resolve_delta_sums(expr: sp.Basic, notes: list[str] | None = None) -> sp.Basic:
    """Σ_{i=a}^{b} f(i)·δ_{ik} → f(k), for k in a..b (recorded in ``notes``)."""

    def query(node):
        return isinstance(node, sp.Sum) and len(node.limits) == 1 and node.has(sp.KroneckerDelta)

    def value(node):
        i, lo, hi = node.limits[0]
        out = []
        for term in sp.Add.make_args(sp.expand(node.function)):
            deltas = [f for f in sp.Mul.make_args(term)
                      if isinstance(f, sp.KroneckerDelta) and i in f.free_symbols]
            if len(deltas) == 1:
                k = deltas[0].args[1] if deltas[0].args[0] == i else deltas[0].args[0]
                if i not in k.free_symbols:
                    out.append((term / deltas[0]).subs(i, k))
                    if notes is not None:
                        note = f"{sp.sstr(lo)} <= {sp.sstr(k)} <= {sp.sstr(hi)}"
                        if note not in notes:
                            notes.append(note)
                    continue
            out.append(sp.Sum(term, (i, lo, hi)))
        return sp.Add(*out)

    return expr.replace(query, value)


def apply_simplex(expr: sp.Expr, groups: Iterable[tuple[sp.Expr, ...]]) -> sp.Expr:
    """Use Σ_k y_k = 1 for each group: terms c·y_1 + … + c·y_C become c."""
    for group in groups:
        if not all(expr.has(g) for g in group):
            continue
        expanded = sp.expand(expr)
        parts = sp.collect(expanded, list(group), evaluate=False)
        coeffs = {g: sp.Add.make_args(parts.get(g, sp.S.Zero)) for g in group}
        common = set(coeffs[group[0]])
        for g in group[1:]:
            common &= set(coeffs[g])
        common.discard(sp.S.Zero)
        if not common:
            continue
        rest = [v for k, v in parts.items() if k not in group]
        new = sp.Add(*rest) + sp.Add(*common)
        for g in group:
            new += g * sp.Add(*[t for t in coeffs[g] if t not in common])
        expr = new
    return expr


def _atomize(expr: sp.Expr) -> tuple[sp.Expr, dict]:
    """Replace block outputs, sums and other function applications by dummy symbols."""
    mapping: dict[sp.Basic, sp.Dummy] = {}

    from sympy.matrices.expressions.matexpr import MatrixElement

    atom_types = (sp.Function, sp.Sum, sp.Piecewise, MatrixElement, sp.Trace, sp.Determinant)

    def walk(node):  # top-down: an atom's insides are left alone (and never rebuilt)
        if isinstance(node, atom_types) and not node.is_number:
            if node not in mapping:
                mapping[node] = sp.Dummy("u")
            return mapping[node]
        if not node.args or node.is_Atom:
            return node
        return node.func(*[walk(a) for a in node.args])

    return walk(expr), {d: n for n, d in mapping.items()}


def _leads_negative(add: sp.Add) -> bool:
    return sp.sstr(add).startswith("-")


def normalise_sign(expr: sp.Expr) -> sp.Expr:
    """Signs the textbook way: −x(y − σ) → x(σ − y), (y − a)/(a(a − 1)) → (a − y)/(a(1 − a)).

    Every sum factor is written with a positive leading term; a leftover minus sign is
    absorbed by a sum factor (preferring one that then starts with a number, like 1 − a)."""
    if not isinstance(expr, sp.Mul):
        return expr
    sign, factors = 1, []
    for f in expr.args:
        if f.is_Number and f.is_negative:
            sign, f = -sign, -f
        base, e = (f.base, f.exp) if isinstance(f, sp.Pow) and f.exp.is_Integer else (f, sp.S.One)
        if isinstance(base, sp.Add) and _leads_negative(base):
            f = sp.Pow(-base, e)
            sign = -sign if int(e) % 2 else sign
        factors.append(f)
    if sign < 0:
        odd = [i for i, f in enumerate(factors)
               if isinstance(f, sp.Add) or (isinstance(f, sp.Pow) and isinstance(f.base, sp.Add)
                                            and f.exp.is_Integer and int(f.exp) % 2)]
        if not odd:
            return sp.Mul(-1, *factors)
        def flipped(i):
            f = factors[i]
            return -f if isinstance(f, sp.Add) else sp.Pow(-f.base, f.exp)
        def reads_well(i):  # 1 − a, not −a − 1
            g = flipped(i)
            g = g.base if isinstance(g, sp.Pow) else g
            return g.args[0].is_Number and not _leads_negative(g)
        starts_with_number = [i for i in odd if reads_well(i)]
        pick = (starts_with_number or odd)[0]
        factors[pick] = flipped(pick)
    return sp.Mul(*factors)


def _tidy_exponents(expr: sp.Expr) -> sp.Expr:
    """S**(-1 + 1/p) → S**((1 - p)/p): exponents over a common denominator."""
    return expr.replace(
        lambda n: isinstance(n, sp.Pow) and isinstance(n.exp, sp.Add) and not n.exp.is_number,
        lambda n: sp.Pow(n.base, sp.together(n.exp)),
    )


def _score(expr: sp.Basic) -> tuple[int, int]:
    """Fewer operations first, then shorter text."""
    return sp.count_ops(expr), len(sp.sstr(expr))


FACTOR_OPS_LIMIT = 600  # larger expressions are not factored (factor can take minutes)


def textbook(expr: sp.Expr, groups: Sequence[tuple[sp.Expr, ...]] = (), budget: Budget | None = None,
             notes: list[str] | None = None) -> sp.Expr:
    """The textbook form of a derivative (see the module docstring)."""
    budget = budget or Budget()
    if expr.is_number:
        return expr
    expr = resolve_delta_sums(expr, notes)
    expr = apply_simplex(expr, groups)
    atoms, back = _atomize(expr)
    candidates = []
    if sp.count_ops(atoms) <= FACTOR_OPS_LIMIT:
        steps = (("factor", sp.factor), ("cancel", sp.cancel), ("factor_terms", sp.factor_terms))
        for name, fn in steps:
            out = budget.run(f"textbook form ({name})", lambda fn=fn: fn(atoms), cap=max(budget.seconds / 4, 0.5))
            if out is not None:
                candidates.append(out)
    else:
        budget.hits.append(f"textbook form: not factored ({sp.count_ops(atoms)} operations > {FACTOR_OPS_LIMIT})")
    candidates.append(atoms)  # ties go to the factored forms, listed first
    best = min((normalise_sign(c) for c in candidates), key=_score)
    # powers of one base always combine (S^{1/p}/S → S^{(1-p)/p}), the textbook way
    best = sp.powsimp(best, combine="exp")
    return _tidy_exponents(best).xreplace(back)
