"""Cross-check: every symbolic result is compared with independent numbers.

For a :class:`~symgrad.derive.Derivation`, at random points of the inputs' domains:

* the compiled textbook result (float64 NumPy, what users import) is compared with a
  central finite difference of the *forward* expression evaluated at 40 digits (mpmath),
  which uses none of symgrad's derivative identities;
* the plain-SymPy derivative (``raw``) evaluated at 40 digits is compared with the same.

Relative errors are per entry with a floor tied to the derivative's scale (1e-6 of its
largest entry), so that entries near zero are neither excused nor blown up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import mpmath
import numpy as np
import sympy as sp

from .catalog.registry import Choice, Interval, Simplex
from .simplify import elementary

__all__ = ["CheckResult", "cross_check", "sample_point"]

DIGITS = 40


@dataclass
class CheckResult:
    """The outcome of a numeric cross-check."""

    ok: bool
    max_rel_error: float  # compiled textbook result vs finite differences
    max_rel_error_raw: float  # plain SymPy derivative vs finite differences
    points: int
    tolerance: float
    worst: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        status = "ok" if self.ok else "FAILED"
        return (f"{status}: max relative error {self.max_rel_error:.2e} (compiled textbook form) and "
                f"{self.max_rel_error_raw:.2e} (plain SymPy) against 40-digit finite differences "
                f"at {self.points} points (tolerance {self.tolerance:g})")


def _default_domain(sym: sp.Basic):
    if getattr(sym, "is_integer", False):
        return Choice((1, 2, 3))
    if getattr(sym, "is_positive", False):
        return Interval(0.2, 3.0)
    return Interval(-2.0, 2.0)


def sample_point(symbols, domain: Mapping, sizes: Mapping, rng: np.random.Generator,
                 arrays: Mapping[sp.Symbol, sp.IndexedBase] | None = None, length: int = 4) -> dict:
    """One random point: {symbol: value}; labels of indexed bases (``arrays``) get arrays."""
    arrays = dict(arrays or {})
    point: dict = {}
    for key, spec in domain.items():
        if isinstance(key, tuple) and isinstance(spec, Simplex):
            if spec.onehot:
                hot = rng.integers(len(key))
                values = [1.0 if i == hot else 0.0 for i in range(len(key))]
            else:
                values = list(rng.dirichlet(np.ones(len(key))))
            point.update(dict(zip(key, values)))
    for sym, value in sizes.items():
        point[sym] = int(value)
    for sym in symbols:
        if sym in point:
            continue
        if sym in arrays:
            base = arrays[sym]
            spec = domain.get(base) or _default_domain(base.label)
            point[sym] = np.array([_draw(spec, rng) for _ in range(length)])
        else:
            point[sym] = _draw(domain.get(sym) or _default_domain(sym), rng)
    return point


def _draw(spec, rng):
    if isinstance(spec, Choice):
        return int(rng.choice(spec.values))
    return float(rng.uniform(spec.low, spec.high))


def _pairs(expr: sp.Basic, w: sp.Basic) -> list[tuple[sp.Expr, sp.Basic]]:
    """(output entry, input entry) for every entry of ∂expr/∂w, in the result's order."""
    if not isinstance(expr, sp.MatrixBase):
        return [(expr, v) for v in w] if isinstance(w, sp.MatrixBase) else [(expr, w)]
    if not isinstance(w, sp.MatrixBase):
        return [(e, w) for e in expr]
    return [(e, v) for e in expr for v in w]


def cross_check(derivation, *, points: int = 4, seed: int = 0, tolerance: float = 1e-8,
                domain: Mapping | None = None, sizes: Mapping | None = None,
                compiled=None) -> CheckResult:
    """Compare ``derivation`` with 40-digit finite differences at ``points`` random points.

    ``domain`` maps symbols (IndexedBase, or tuples of target symbols) to
    :class:`Interval`/:class:`Simplex`/:class:`Choice`; unlisted symbols are drawn from
    (0.2, 3) when positive, from (−2, 2) otherwise. ``sizes`` gives symbolic sizes and
    indices (``{n: 4, k: 2}``) their values."""
    domain = dict(domain or {})
    sizes = dict(sizes or {})
    rng = np.random.default_rng(seed)
    compiled = compiled or derivation.compile()
    inputs = derivation.free_symbols()
    arrays = {idx.base.label: idx.base for idx in derivation.expr.atoms(sp.Indexed)}
    length = next((int(v) for k, v in sizes.items() if any(
        k in s.limits[0] for s in derivation.expr.atoms(sp.Sum))), 4)
    forward = _concrete(elementary(derivation.expr), sizes)  # already weighted by any upstream
    worst_rel, worst_raw, worst = 0.0, 0.0, {}
    for _ in range(points):
        point = sample_point(inputs, domain, sizes, rng, arrays, length)
        kwargs = {s.name: v for s, v in point.items() if s.name in compiled.params}
        got = compiled(**kwargs)
        got = (got,) if derivation.single else got
        subs = _mp_subs(point, arrays)
        for w, result, raw, value in zip(derivation.wrt, derivation.results, derivation.raws, got):
            w_c = _concrete(w, sizes)
            pairs = _pairs(forward, w_c)
            raw_entries = _entries(_concrete(raw, sizes))
            values = np.asarray(value, dtype=float).reshape(-1)
            refs = [_finite_difference(out, var, subs) for out, var in pairs]
            scale = max([abs(r) for r in refs] + [1e-300])
            for index, ((out, var), ref, raw_e, val) in enumerate(zip(pairs, refs, raw_entries, values)):
                floor = max(abs(ref), 1e-6 * scale, 1e-300)
                rel = abs(val - ref) / floor
                raw_val = float(sp.N(raw_e.xreplace(subs), DIGITS)) if raw_e.free_symbols else float(raw_e)
                rel_raw = abs(raw_val - ref) / floor
                if rel > worst_rel or not worst:
                    worst = {"wrt": sp.sstr(var), "compiled": float(val), "reference": float(ref),
                             "plain_sympy": raw_val,
                             "point": {sp.sstr(k): (v.tolist() if isinstance(v, np.ndarray) else v)
                                       for k, v in point.items()}}
                worst_rel = max(worst_rel, rel)
                worst_raw = max(worst_raw, rel_raw)
    ok = bool(worst_rel <= tolerance and worst_raw <= tolerance)
    return CheckResult(ok, float(worst_rel), float(worst_raw), points, tolerance, worst)


def _concrete(obj, sizes: Mapping):
    """Substitute sizes/indices and write indexed sums out (Σ_{i=1}^{4} …)."""
    if not sizes:
        return obj
    obj = obj.xreplace({k: sp.Integer(v) for k, v in sizes.items()})
    return obj.replace(lambda n: isinstance(n, sp.Sum), lambda n: n.doit())


def _entries(obj):
    return list(obj) if isinstance(obj, sp.MatrixBase) else [obj]


def _mp_subs(point: Mapping, arrays: Mapping) -> dict:
    subs = {}
    for sym, value in point.items():
        if isinstance(value, np.ndarray):
            base = arrays[sym]
            for i, v in enumerate(value, start=1):
                subs[base[i]] = sp.Float(float(v), DIGITS)
        elif isinstance(value, int):
            subs[sym] = sp.Integer(value)
        else:
            subs[sym] = sp.Float(float(value), DIGITS)
    return subs


def _finite_difference(out: sp.Expr, var: sp.Basic, subs: Mapping) -> float:
    """∂out/∂var at the point, by mpmath's high-precision numerical differentiation."""
    others = {k: v for k, v in subs.items() if k != var}
    fixed = out.xreplace(others)
    if not fixed.has(var):
        return 0.0
    t = sp.Dummy("t")
    f = sp.lambdify(t, fixed.xreplace({var: t}), modules="mpmath")
    with mpmath.workdps(DIGITS):
        return float(mpmath.diff(f, mpmath.mpf(str(subs[var]))))
