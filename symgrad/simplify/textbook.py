"""Textbook form: a chain-rule product as a textbook writes it — indexed Kronecker-delta sums
resolved, the domain's sum-to-one constraints applied, factored with every block output held as
an atom (σ stays σ), the shortest form kept; bounded by a :class:`Budget`.
"""

from __future__ import annotations

from .budget import Budget
from typing import Iterable, Sequence
import sympy as sp

__all__ = ["resolve_delta_sums", "apply_simplex", "normalise_sign", "FACTOR_OPS_LIMIT", "textbook"]


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
