"""Cross-check: every symbolic result is compared with independent numbers.

For a :class:`~symgrad.derive.Derivation`, at random points of the inputs' domains:

* the compiled textbook result (float64 NumPy, what users import) is compared with a
  central finite difference of the *forward* expression evaluated at 40 digits (mpmath),
  which uses none of symgrad's derivative identities;
* the plain-SymPy derivative (``raw``) evaluated at 40 digits is compared with the same.

Points and floors follow :mod:`symgrad.checks.sampling` (the policy every check shares): moderate
values, magnitudes across decades (10⁻³ … 10³ here, float64 code), values near 0, and both
sides of every breakpoint of the forward expression (never the kink itself: a finite
difference there is no derivative); declared domains (``Interval``, ``Simplex``, ``Choice``)
are respected. Relative errors are per entry with a floor tied to the derivative's scale
(:data:`~symgrad.checks.sampling.FLOOR` of its largest entry), so that entries near zero are neither
excused nor blown up. A point where the reference lies beyond float64's range is skipped; a
compiled value that is not finite where the reference is fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import mpmath
import numpy as np
import sympy as sp

from . import sampling
from .tolerance import latex_number
from ..catalog.registry import Choice, Interval, Simplex
from ..simplify.rules import elementary
from ..catalog.rows import row_simplex_targets

__all__ = ["CheckResult", "cross_check", "sample_point"]

DIGITS = 40


@dataclass
class CheckResult:
    """The outcome of a numeric cross-check."""

    ok: bool
    max_rel_error: float  # compiled textbook result vs the reference
    max_rel_error_raw: float  # plain SymPy derivative vs the reference (nan when there is none)
    points: int
    tolerance: float
    worst: dict[str, Any] = field(default_factory=dict)
    method: str = "40-digit finite differences"

    def _repr_markdown_(self) -> str:
        """Markdown with math (Jupyter prefers Markdown to LaTeX)."""
        rel = r"\le" if self.ok else ">"
        raw = "" if self.max_rel_error_raw != self.max_rel_error_raw else \
            rf", plain SymPy ${latex_number(self.max_rel_error_raw)}$"
        return (f"**cross-check {'ok' if self.ok else 'FAILED'}** — {self.method}, {self.points} points\n\n"
                rf"$$\max_i \frac{{|g_i - \hat g_i|}}{{\max(|\hat g_i|,\ 10^{{-7}} \max_j |\hat g_j|)}} = "
                rf"{latex_number(self.max_rel_error)} \;{rel}\; {latex_number(self.tolerance)}$$" + f"\n\n(compiled textbook form{raw})")

    def _repr_latex_(self) -> str:
        rel = r"\le" if self.ok else ">"
        return rf"$\text{{max relative error}} = {latex_number(self.max_rel_error)} \;{rel}\; {latex_number(self.tolerance)}$"

    def __str__(self) -> str:
        status = "ok" if self.ok else "FAILED"
        raw = "" if self.max_rel_error_raw != self.max_rel_error_raw else \
            f" and {self.max_rel_error_raw:.2e} (plain SymPy)"
        return (f"{status}: max relative error {self.max_rel_error:.2e} (compiled textbook form){raw} against "
                f"{self.method} at {self.points} points (tolerance {self.tolerance:g})")




POLICY = sampling.Policy(decades=(-3.0, 3.0), at_kink=False, near_kink=(1e-6, 1e-2, 0.5), max_kink_points=6)
KINDS = ("moderate", "wide", "moderate", "tiny")


def _default_domain(sym: sp.Basic):
    if getattr(sym, "is_integer", False):
        return Choice((1, 2, 3))
    return None  # the sampling policy, by the symbol's assumptions


def sample_point(symbols, domain: Mapping, sizes: Mapping, rng: np.random.Generator,
                 arrays: Mapping[sp.Symbol, sp.IndexedBase] | None = None, length: int = 4,
                 kind: str | None = "moderate", stratum: float | None = None) -> dict:
    """One random point: {symbol: value}; labels of indexed bases (``arrays``) get arrays.
    ``kind``: the sampling policy's "moderate", "wide" or "tiny" values (None: any); ``stratum``
    in [0, 1) picks their decade (and alternates signs), so a series of points covers them."""
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
            point[sym] = np.array([_draw(spec, rng, base.label, kind) for _ in range(length)])
        else:
            point[sym] = _draw(domain.get(sym) or _default_domain(sym), rng, sym, kind, stratum)
            stratum = None  # the first symbol takes the stratum; the others move independently
    return point


def _draw(spec, rng, sym=None, kind: str | None = "moderate", stratum: float | None = None):
    sign = None if stratum is None else (1 if int(stratum / 0.6180339887 + 0.5) % 2 == 0 else -1)
    return sampling.draw(sym if sym is not None else sp.Symbol("_"), rng, spec, POLICY, kind, stratum, sign)


def _kink_points(exprs, inputs, domain, rng, count: int) -> list[dict]:
    """Scalar values on both sides of the breakpoints of the forward and of the results (the
    sampling policy's)."""
    scalars = [s for s in inputs if isinstance(s, sp.Symbol) and not s.is_integer and
               not isinstance(domain.get(s), (Choice, Simplex))]
    if not scalars or not sampling.breakpoints(*exprs):
        return []
    spec = {s: domain[s] for s in scalars if s in domain}
    found = sampling.points(scalars, exprs, 0, rng, spec, POLICY)
    return [{s: float(v) for s, v in p.items()} for p in found[:count]]


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
    if derivation.is_matrix:
        return _cross_check_matrices(derivation, compiled, points, rng, tolerance, sizes, domain)
    inputs = derivation.free_symbols()
    arrays = {idx.base.label: idx.base for idx in derivation.expr.atoms(sp.Indexed)}
    arrays.update({b.label: b for b in derivation.expr.atoms(sp.IndexedBase)})
    length = max((int(v) for v in sizes.values()), default=4)  # indices never exceed the size
    forward = _concrete(elementary(derivation.expr), sizes)  # already weighted by any upstream
    worst_rel, worst_raw, worst = 0.0, 0.0, {}
    offset = float(rng.random())
    chosen = [sample_point(inputs, domain, sizes, rng, arrays, length, KINDS[k % len(KINDS)],
                           offset + (k // 2) * 0.6180339887) for k in range(points)]
    results = [r for r in derivation.results if isinstance(r, sp.Basic)]
    for near in _kink_points([forward, *results], inputs, domain, rng, max(points, 2)):
        chosen.append({**sample_point(inputs, domain, sizes, rng, arrays, length), **near})
    evaluated = 0
    for point in chosen:
        kwargs = {s.name: v for s, v in point.items() if s.name in compiled.params}
        got = compiled(**kwargs)
        got = (got,) if derivation.single else got
        subs = _mp_subs(point, arrays)
        for w, result, raw, value in zip(derivation.wrt, derivation.results, derivation.raws, got):
            w_c = _concrete(w, sizes)
            pairs = _pairs(forward, w_c)
            raw_entries = _entries(_concrete(raw, sizes)) if raw is not None else [None] * len(pairs)
            values = np.asarray(value, dtype=float).reshape(-1)
            refs = [_finite_difference(out, var, subs) for out, var in pairs]
            if not all(np.isfinite(refs)):
                continue  # beyond float64's range at this point: nothing to compare
            evaluated += 1
            scale = max([abs(r) for r in refs] + [1e-300])
            for index, ((out, var), ref, raw_e, val) in enumerate(zip(pairs, refs, raw_entries, values)):
                floor = max(abs(ref), sampling.FLOOR * scale, 1e-300)
                rel = abs(val - ref) / floor if np.isfinite(val) else float("inf")
                if raw_e is None:
                    raw_val, rel_raw = float("nan"), 0.0
                else:
                    exact = sampling.value(raw_e, {k: sampling.exact(v) for k, v in subs.items()}) \
                        if raw_e.free_symbols else raw_e
                    raw_val = _float(exact) if exact is not None else float("nan")
                    # plain SymPy's form is judged where it can be evaluated to 30 correct digits
                    rel_raw = abs(raw_val - ref) / floor if np.isfinite(raw_val) else 0.0
                if rel > worst_rel or not worst:
                    worst = {"wrt": sp.sstr(var), "compiled": float(val), "reference": float(ref),
                             "plain_sympy": raw_val,
                             "point": {sp.sstr(k): (v.tolist() if isinstance(v, np.ndarray) else v)
                                       for k, v in point.items()}}
                worst_rel = max(worst_rel, rel)
                worst_raw = max(worst_raw, rel_raw)
    ok = bool(worst_rel <= tolerance and worst_raw <= tolerance and evaluated)
    return CheckResult(ok, float(worst_rel), float(worst_raw), len(chosen), tolerance, worst)


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, OverflowError):  # complex or beyond float64
        return float("nan")


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
    # digits grow with the inputs' size: tanh'(−81) = 4e^{−163} next to tanh = −1 needs 71 more
    size = max([abs(float(v)) for v in subs.values() if getattr(v, "is_number", False)] + [0.0])
    dps = DIGITS + min(int(0.9 * size), 1500)
    if dps > DIGITS:
        others = {k: (sp.Float(v, dps) if isinstance(v, sp.Float) else v) for k, v in others.items()}
    fixed = out.xreplace(others)
    if not fixed.has(var):
        return 0.0
    t = sp.Dummy("t")
    f = sp.lambdify(t, fixed.xreplace({var: t}), modules="mpmath")
    with mpmath.workdps(dps):
        try:
            return float(mpmath.diff(f, mpmath.mpf(str(subs[var]))))
        except (OverflowError, TypeError, ValueError, ZeroDivisionError):
            return float("nan")  # beyond float64 (or undefined) here


# --- matrix expressions: differentiate the explicit entries at a small size ------------------------
def _cross_check_matrices(derivation, compiled, points, rng, tolerance, sizes, domain) -> CheckResult:
    """Every MatrixSymbol becomes a small matrix of entry symbols (sizes 2, 3, 4, … so that a
    transposition shows); SymPy's plain diff of the explicit, elementary scalar is the reference."""
    L = derivation.expr
    matrices = sorted(L.atoms(sp.MatrixSymbol), key=lambda m: m.name)
    dims = sorted({d for m in matrices for d in m.shape if isinstance(d, sp.Symbol)}, key=lambda d: d.name)
    sizes = {d: int(sizes.get(d, 2 + i % 3)) for i, d in enumerate(dims)}
    concrete = {m: sp.MatrixSymbol(m.name, *(int(sizes.get(x, x)) for x in m.shape)) for m in matrices}
    entries = {m: sp.ImmutableMatrix(*c.shape, lambda i, j, n=m.name: sp.Symbol(f"{n}_{i}_{j}", real=True))
               for m, c in concrete.items()}
    explicit = L.xreplace(sizes).xreplace({concrete[m]: entries[m] for m in matrices})
    explicit = elementary(explicit_entries(explicit))
    scalars = sorted((x for x in explicit.free_symbols if x.name in compiled.params), key=lambda x: x.name)
    symbols = [e for m in matrices for e in entries[m]] + scalars
    refs, shapes = [], []
    for w in derivation.wrt:
        if w not in entries:  # a scalar wrt beside the matrices (b in σ(wᵀx + b))
            refs.append(sp.lambdify(symbols, [sp.diff(explicit, w)], modules="numpy"))
            shapes.append((1, 1))
        elif isinstance(explicit, sp.MatrixBase):  # a vector: its Jacobian, rows = outputs
            J = explicit.jacobian(list(entries[w]))
            refs.append(sp.lambdify(symbols, list(J), modules="numpy"))
            shapes.append(J.shape)
        else:
            refs.append(sp.lambdify(symbols, [sp.diff(explicit, e) for e in entries[w]], modules="numpy"))
            shapes.append(concrete[w].shape)
    worst_rel, worst = 0.0, {}

    square = {m for m in matrices if concrete[m].shape[0] == concrete[m].shape[1]}
    simplex_rows = set(row_simplex_targets(L))
    simplex_columns = {t.arg for t in simplex_rows if isinstance(t, sp.Transpose)}  # y of CE(softmax(zᵀ), yᵀ)
    for _ in range(points):
        arrays = {}
        for m in matrices:
            r, c = concrete[m].shape
            noise = rng.normal(size=(r, c))
            if m in simplex_rows:  # one-hot rows: the targets of a cross-entropy
                arrays[m] = np.eye(c)[rng.integers(c, size=r)]
            elif m in simplex_columns:  # one-hot columns: a target vector, given as the row yᵀ
                arrays[m] = np.eye(r)[:, rng.integers(r, size=c)]
            elif isinstance(domain.get(m), Interval):  # entries from the block's domain (x_i > 0)
                arrays[m] = rng.uniform(domain[m].low, domain[m].high, size=(r, c))
            else:
                arrays[m] = np.eye(r) * 2 + 0.3 * noise if m in square else noise  # well-conditioned squares
        scalar_values = {x: _draw(domain.get(x) or _default_domain(x), rng, x) for x in scalars}
        got = compiled(**{m.name: arrays[m] for m in matrices if m.name in compiled.params},
                       **{x.name: v for x, v in scalar_values.items()})
        got = (got,) if derivation.single else got
        values = [float(v) for m in matrices for v in arrays[m].ravel()] + [float(scalar_values[x]) for x in scalars]
        for w, ref_fn, value, shape in zip(derivation.wrt, refs, got, shapes):
            ref = np.asarray(ref_fn(*values), dtype=float)
            val = np.broadcast_to(np.asarray(value, dtype=float), shape).ravel()
            scale = max(np.abs(ref).max(), 1e-300)
            rel = np.abs(val - ref) / np.maximum(np.abs(ref), sampling.FLOOR * scale)
            k = int(np.argmax(rel))
            if rel[k] > worst_rel or not worst:
                worst = {"wrt": w.name, "entry": [int(i) for i in np.unravel_index(k, shape)],
                         "compiled": float(val[k]), "reference": float(ref[k]),
                         "sizes": {d.name: v for d, v in sizes.items()}}
            worst_rel = max(worst_rel, float(rel[k]))
    return CheckResult(bool(worst_rel <= tolerance), worst_rel, float("nan"), points, tolerance, worst,
                       method="SymPy's diff of the explicit entries")


def explicit_entries(expr):
    """Matrix expressions over explicit matrices, evaluated to explicit entries."""
    from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

    def walk(node):
        if isinstance(node, sp.MatrixBase) or not getattr(node, "args", None):
            return node
        args = [walk(a) if isinstance(a, sp.Basic) else a for a in node.args]
        if isinstance(node, ElementwiseApplyFunction):
            return sp.ImmutableMatrix(args[1]).applyfunc(node.function)
        rebuilt = node.func(*args) if args != list(node.args) else node
        if isinstance(rebuilt, sp.MatrixExpr) and not isinstance(rebuilt, sp.MatrixBase):
            rebuilt = rebuilt.doit()
            if not isinstance(rebuilt, sp.MatrixBase) and all(isinstance(d, int) or d.is_Integer for d in rebuilt.shape):
                rebuilt = rebuilt.as_explicit()
            return rebuilt
        return rebuilt.doit() if isinstance(rebuilt, (sp.Trace, sp.Determinant)) else rebuilt
    out = walk(expr)
    return out[0, 0] if isinstance(out, sp.MatrixBase) and out.shape == (1, 1) else out
