r"""Sampling: the one policy by which every numeric judgement picks its points and its tolerance.

``verify`` (refutation), ``cross_check`` (compiled code against finite differences) and
``check_grad`` (fast mode's directions and its floors) read it from here.

**Points.** A wrong claim may be wrong only far from the origin (``2x + relu(x − 4)``), only
near 0, only on one side of a kink, or only off the integers (``+ sin(πx)``). So values are
drawn across magnitudes — log-uniform over ``decades`` (10⁻⁸ … 10⁸ by default), both signs,
plus moderate values and values near 0 — and every *breakpoint* of the expressions is visited:
at it and on both sides. Breakpoints are the zeros of the arguments u that switch a branch:
Piecewise conditions (u = lhs − rhs), Heaviside(u), sign(u), |u|, Max/Min (pairwise
differences), and the blocks' kinks, found in their elementary forms (ReLU is Max(0, x)), so a
new block needs nothing here. Each value respects its symbol's domain (an ``Interval``/
``Choice``/``Simplex`` declared by the block, else the assumptions: integer → small integers,
positive → (0, ∞)).

**Tolerance.** Exact claims are compared at :data:`EXACT_RTOL` (relative, with values correct
to :data:`DIGITS` digits); a claim with a floating-point number the truth does not have (or
the reverse: the truth's α = 0.01 against the claim's 1/100) is a floating-point statement,
compared at :data:`FLOAT_RTOL` ≈ 256 ε of float64. Compiled float
code is compared with :func:`rtol_for` its dtype and the floor :data:`FLOOR` of the result's
largest entry:

.. math:: \text{err} = \frac{|a - r|}{\max(|r|,\ \text{FLOOR}\cdot\max_j |r_j|)}
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import sympy as sp

from ..catalog.registry import Choice, Interval
from ..simplify.rules import elementary
from .tolerance import DIGITS, EXACT_RTOL, FLOAT_RTOL, FLOOR, RTOL, directions, rtol_for

__all__ = ["DIGITS", "EXACT_RTOL", "FLOAT_RTOL", "FLOOR", "RTOL", "rtol_for", "claim_tolerance",
           "Policy", "DEFAULT", "breakpoints", "kink_roots", "draw", "points", "exact", "value",
           "by_name", "unify", "directions"]

def claim_tolerance(claim, truth=None) -> float:
    """:data:`FLOAT_RTOL` when the claim is a floating-point statement, else :data:`EXACT_RTOL`.

    With ``truth``: when a floating-point number appears on one side only (the claim's 0.333…
    for 1/3, the truth's α = 0.01 for the claim's 1/100); floats the claim shares with the truth
    (a block's constants copied) are exact. Without: when ``claim`` contains any float.
    ``claim``/``truth`` may be lists of expressions."""

    def floats(obj):
        items = obj if isinstance(obj, (list, tuple)) else [obj]
        return {f for e in items if isinstance(e, (sp.Basic, sp.MatrixBase)) for f in e.atoms(sp.Float)}

    mine = floats(claim)
    if truth is None:
        return FLOAT_RTOL if mine else EXACT_RTOL
    return FLOAT_RTOL if mine ^ floats(truth) else EXACT_RTOL


@dataclass(frozen=True)
class Policy:
    """How many points and over which magnitudes (``decades`` = (lo, hi) of log10 |value|)."""

    decades: tuple[float, float] = (-8.0, 8.0)
    moderate: float = 3.0  # half-width of the moderate range
    near_kink: tuple[float, ...] = (1e-9, 1e-3, 0.5)  # offsets (relative to max(1, |kink|))
    at_kink: bool = True  # the kink itself (a convention); off for finite differences
    max_kink_points: int = 60


DEFAULT = Policy()


# --- symbols: one object per name -----------------------------------------------------------------
def by_name(*objs) -> dict[str, sp.Basic]:
    """name → the first symbol (or IndexedBase / MatrixSymbol) of that name in ``objs``."""
    out: dict[str, sp.Basic] = {}
    for obj in objs:
        if not isinstance(obj, (sp.Basic, sp.MatrixBase)):
            continue
        for node in sp.preorder_traversal(obj):
            if isinstance(node, sp.Indexed):
                out.setdefault(node.base.label.name, node.base)
            elif isinstance(node, (sp.Symbol, sp.MatrixSymbol)) and not isinstance(node, sp.Dummy):
                out.setdefault(node.name, node)
    return out


def unify(obj, names: Mapping[str, sp.Basic]):
    """``obj`` with every symbol, IndexedBase and MatrixSymbol replaced by the one of its name in
    ``names`` (whatever its assumptions): ``a`` and positive ``a`` are one variable."""
    if not isinstance(obj, (sp.Basic, sp.MatrixBase)):
        return obj
    subs = {}
    for node in sp.preorder_traversal(obj):
        if isinstance(node, sp.Indexed):
            target = names.get(node.base.label.name)
            if isinstance(target, sp.IndexedBase) and target != node.base:
                subs[node.base] = target
        elif isinstance(node, (sp.Symbol, sp.MatrixSymbol)) and not isinstance(node, sp.Dummy):
            target = names.get(node.name)
            if target is not None and target != node and type(target) is type(node) and \
                    getattr(target, "shape", None) == getattr(node, "shape", None):
                subs[node] = target
    return obj.xreplace(subs) if subs else obj


# --- breakpoints --------------------------------------------------------------------------------
def breakpoints(*exprs: sp.Basic) -> list[sp.Expr]:
    """The arguments u whose zeros switch a branch of ``exprs`` (blocks read in elementary form)."""
    found: list[sp.Expr] = []

    def add(u):
        u = sp.sympify(u, strict=True)  # SymPy subtrees and numbers only, never text
        if u.free_symbols and u not in found and -u not in found:
            found.append(u)

    def relation(cond):
        if isinstance(cond, sp.core.relational.Relational):
            add(cond.lhs - cond.rhs)
        elif isinstance(cond, (sp.And, sp.Or, sp.Not)):
            for c in cond.args:
                relation(c)

    for e in exprs:
        if not isinstance(e, sp.Basic):
            continue
        for node in sp.preorder_traversal(elementary(e)):
            if isinstance(node, sp.Piecewise):
                for piece in node.args:
                    relation(piece.cond)
            elif isinstance(node, (sp.Heaviside, sp.sign, sp.Abs)):
                add(node.args[0])
            elif isinstance(node, (sp.Max, sp.Min)):
                for a, b in itertools.combinations(node.args, 2):
                    add(a - b)
            elif isinstance(node, (sp.floor, sp.ceiling)):
                add(node.args[0] - sp.floor(node.args[0]))
    return found


def _branches(u: sp.Expr, limit: int = 16) -> list[sp.Expr]:
    """u with each Max/Min/|·|/Piecewise inside replaced by one of its branches (all combinations,
    at most ``limit``): a zero of u is a zero of one of them."""
    out = [u]
    for _ in range(4):
        nxt = []
        for v in out:
            node = next((n for n in sp.preorder_traversal(v) if isinstance(n, (sp.Max, sp.Min, sp.Abs, sp.Piecewise))), None)
            if node is None:
                nxt.append(v)
                continue
            if isinstance(node, sp.Abs):
                options = [node.args[0], -node.args[0]]
            elif isinstance(node, sp.Piecewise):
                options = [p.expr for p in node.args]
            else:
                options = list(node.args)
            nxt += [v.xreplace({node: o}) for o in options]
        out = nxt[:limit]
    return out


def kink_roots(u: sp.Expr, s: sp.Basic, fixed: Mapping[sp.Basic, sp.Expr]) -> list[sp.Expr]:
    """Real zeros of u in ``s`` with the other symbols at ``fixed`` (exact when linear)."""
    roots: list[sp.Expr] = []
    for v in _branches(u.xreplace({k: w for k, w in fixed.items() if k != s})):
        if not v.has(s) or v.free_symbols - {s} - s.free_symbols:
            continue
        try:
            poly = sp.Poly(v, s)
        except (sp.PolynomialError, sp.GeneratorsNeeded):
            continue
        if poly.degree() < 1 or poly.degree() > 4 or not all(c.is_number for c in poly.all_coeffs()):
            continue
        if poly.degree() == 1:
            a, b = poly.all_coeffs()
            r = -b / a
            if r.is_real:
                roots.append(sp.nsimplify(r) if r.is_Float else r)
            continue
        import mpmath

        poly = poly.sqf_part()  # a double root (2(x + 1)²) stalls the numeric root finder
        try:
            for r in poly.nroots(n=DIGITS, maxsteps=200):
                if abs(sp.im(r)) < 1e-20 * max(1, abs(sp.re(r))):
                    roots.append(sp.Rational(float(sp.re(r))))
        except (sp.PolynomialError, ValueError, TypeError, mpmath.libmp.NoConvergence):  # noqa: PERF203
            try:  # the exact real roots (isolated by intervals), as floats
                roots += [sp.Rational(float(r.evalf(DIGITS))) for r in sp.real_roots(poly)]
            except (sp.PolynomialError, ValueError, TypeError, NotImplementedError):
                continue
    out = []
    for r in roots:
        if r not in out:
            out.append(r)
    return out


# --- values -------------------------------------------------------------------------------------
def _default_domain(sym: sp.Basic):
    if isinstance(sym, sp.Indexed):
        sym = sym.base
    label = sym.label if isinstance(sym, sp.IndexedBase) else sym
    if getattr(label, "is_integer", False):
        return Choice((1, 2, 3))
    return None


def _positive(sym) -> bool:
    base = sym.base if isinstance(sym, sp.Indexed) else sym
    label = base.label if isinstance(base, sp.IndexedBase) else base
    for s in (base, label):
        if getattr(s, "is_positive", False) or getattr(s, "assumptions0", {}).get("positive"):
            return True
    return False


def _nonnegative(sym) -> bool:
    base = sym.base if isinstance(sym, sp.Indexed) else sym
    label = base.label if isinstance(base, sp.IndexedBase) else base
    return bool(getattr(base, "is_nonnegative", False) or getattr(label, "is_nonnegative", False))


def draw(sym: sp.Basic, rng: np.random.Generator, spec=None, policy: Policy = DEFAULT, kind: str | None = None,
         stratum: float | None = None, sign: int | None = None):
    """One value of ``sym`` (a Python float, or an int for integers) under ``policy``.

    ``kind``: "moderate" (|v| ≲ 3), "wide" (|v| log-uniform over 10⁰ … 10^hi of the decades),
    "tiny" (10^lo … 10⁻², near 0) or None (any). ``stratum`` in [0, 1) picks the decade (so a
    series of points covers them all); ``sign`` (±1) the sign of a real symbol."""
    spec = spec or _default_domain(sym)
    if isinstance(spec, Choice):
        return int(rng.choice(spec.values))
    kind = kind or str(rng.choice(["moderate", "moderate", "wide", "wide", "tiny"]))
    u = float(rng.random()) if stratum is None else float(stratum) % 1.0
    sign = sign if sign in (-1, 1) else (1 if rng.random() < 0.5 else -1)
    if isinstance(spec, Interval):
        lo, hi = float(spec.low), float(spec.high)
        if kind == "wide" and lo > 0 and hi / lo > 10:  # log-uniform across the interval's decades
            return float(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))
        if kind == "tiny" and lo < 0 < hi:
            return float(sign * 10 ** (-8 + 6 * u))
        return float(lo + u * (hi - lo)) if stratum is not None else float(rng.uniform(lo, hi))
    lo, hi = policy.decades
    positive, nonneg = _positive(sym), _nonnegative(sym)
    if kind == "moderate":
        v = float(np.exp(rng.uniform(-2.3, 1.6))) if (positive or nonneg) else float(rng.uniform(-policy.moderate, policy.moderate))
    elif kind == "tiny":
        v = float(10 ** (lo + u * (-2 - lo)))
    else:
        v = float(10 ** (u * hi))
    if not (positive or nonneg) and kind != "moderate":
        v = sign * v
    return v


def points(symbols: Sequence[sp.Basic], exprs: Iterable[sp.Basic], count: int, rng: np.random.Generator,
           domain: Mapping | None = None, policy: Policy = DEFAULT) -> list[dict]:
    """``count`` random points (moderate first, then across the decades and near 0), then points at
    and on both sides of every breakpoint of ``exprs`` in each symbol (with the others at a random
    point), each {symbol: value} inside the symbols' domains. Values are Python floats/ints."""
    domain = dict(domain or {})
    symbols = list(symbols)
    kinds = ["moderate", "wide", "moderate", "wide", "tiny", "wide"]

    def spec(s):
        if s in domain:
            return domain[s]
        if isinstance(s, sp.Indexed) and s.base in domain:
            return domain[s.base]
        return None

    offset = float(rng.random())

    def base_point(kind, i=0):
        # the i-th wide/tiny point takes the decade i·φ (mod 1) along the range, signs alternating
        # (the first symbol; the others independently, so that no two inputs move in step)
        return {s: draw(s, rng, spec(s), policy, kind, stratum=offset + i * 0.6180339887 if k == 0 else None,
                        sign=(1 if i % 2 == 0 else -1) if k == 0 else None) for k, s in enumerate(symbols)}

    out = [base_point(kinds[i % len(kinds)], i // 2) for i in range(count)]
    kinks = breakpoints(*exprs)
    extra: list[dict] = []
    for u in kinks:
        for s in sorted(u.free_symbols & set(symbols), key=str) + [i for i in u.atoms(sp.Indexed) if i in symbols]:
            if isinstance(spec(s), Choice) or getattr(s, "is_integer", False):
                continue
            base = base_point("moderate")
            fixed = {k: sp.Rational(v) for k, v in base.items()}
            for r in kink_roots(u, s, fixed):
                try:
                    rv = float(r)
                except (TypeError, ValueError):
                    continue
                if not math.isfinite(rv):
                    continue
                width = max(1.0, abs(rv))
                offsets = ([0.0] if policy.at_kink else []) + [d * width * sign for d in policy.near_kink
                                                               for sign in (-1, 1)]
                for d in offsets:
                    v = rv + d
                    if _inside(s, v, spec(s)):
                        p = dict(base)
                        p[s] = r if d == 0.0 else v  # the kink itself exactly (a SymPy number)
                        extra.append(p)
    # moderate points, then the breakpoints' neighbourhoods (targeted and cheap to evaluate), then
    # the points across the decades (far out, evaluation may cost more of the budget)
    kinds_of = [kinds[i % len(kinds)] for i in range(count)]
    moderate = [pt for pt, k in zip(out, kinds_of) if k == "moderate"]
    far = [pt for pt, k in zip(out, kinds_of) if k != "moderate"]
    return moderate[:2] + extra[:policy.max_kink_points] + far[:2] + moderate[2:] + far[2:]


def _inside(sym, v: float, spec) -> bool:
    if isinstance(spec, Interval):
        return spec.low <= v <= spec.high
    if _positive(sym):
        return v > 0
    if _nonnegative(sym):
        return v >= 0
    return True


# --- exact evaluation ------------------------------------------------------------------------
def exact(v) -> sp.Expr:
    """A sampled value as an exact SymPy number (a float's exact binary value)."""
    if isinstance(v, sp.Float):
        return sp.Rational(v)
    if isinstance(v, sp.Basic):
        return v
    if isinstance(v, (int, np.integer)):
        return sp.Integer(int(v))
    return sp.Rational(float(v))


def exact_floats(expr):
    """``expr`` with each Float replaced by the exact rational it stores (evaluation stays exact)."""
    if not isinstance(expr, sp.Basic):
        return expr
    floats = expr.atoms(sp.Float)
    return expr.xreplace({f: sp.Rational(f) for f in floats}) if floats else expr


def value(expr: sp.Expr, subs: Mapping, digits: int = DIGITS, maxn: int = 500):
    """``expr`` at the exact point ``subs`` to ``digits`` correct digits (SymPy's evalf tracks the
    accuracy of every step), as an mpmath number (mpf or mpc), or None when that accuracy cannot
    be reached (a cancellation beyond ``maxn`` digits) or the value is not a finite number."""
    import mpmath

    try:
        plain = exact_floats(expr)
        others = {k: sp.Dummy() for k in subs if not isinstance(k, sp.Symbol)}  # x[1]: a symbol for evalf
        if others:
            plain = plain.xreplace(others)
            subs = {others.get(k, k): v for k, v in subs.items()}
        if plain.free_symbols - set(subs):
            return None
        # numbers enter through evalf's subs (never into the tree: x**p at p = 1e8 stays a number)
        at = _decide_branches(plain, subs, digits, maxn)
        if at is None or at.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
            return None
        num = sp.N(at, digits, maxn=maxn, subs=dict(subs)) if not at.is_Rational else at
        if num.has(sp.zoo, sp.nan, sp.oo, -sp.oo) or num.free_symbols:
            return None
        low = any(f._prec < int((digits - 6) * 3.33) for f in num.atoms(sp.Float))
        if low or num == 0:  # evalf's zeros (exact or of no precision) are trusted only when exact arithmetic agrees
            if _structural_zero(at, subs):  # 9 + 9 sign(−3) = 0; log(1 + e^{−416}) is no 0
                return mpmath.mpf(0)
            return None
        re_, im_ = num.as_real_imag()
        if re_.free_symbols or im_.free_symbols or not (re_.is_number and im_.is_number):
            return None
        # evalf gives each part the precision it could guarantee (1 bit after a cancellation it
        # could not resolve within maxn digits): fewer correct digits than asked is no value
        need = int((digits - 6) * 3.33)
        if any(isinstance(part, sp.Float) and part._prec < need for part in (re_, im_)):
            return None
        prec = int(digits * 3.33) + 20
        with mpmath.workprec(prec):
            z = mpmath.mpc(_mpf(re_, prec), _mpf(im_, prec))
        if not mpmath.isfinite(z):
            return None
        return z.real if z.imag == 0 else z
    except (sp.core.evalf.PrecisionExhausted, TypeError, ValueError, ZeroDivisionError, ArithmeticError,
            RecursionError, NotImplementedError, AttributeError, MemoryError):  # evalf of e^{−x²/2} at x = 10⁷
        return None


_BRANCHING = ("sign", "Heaviside", "Abs", "Max", "Min", "Piecewise")


def _decide_branches(expr, subs, digits: int, maxn: int):
    """``expr`` with every sign, Heaviside, |·|, Max/Min and Piecewise decided at the point from the
    precision-tracked value of its argument (evalf takes the sign of a cancelled argument at face
    value: sign(x + x·erf(9x/√2)) at x = −2.9 came out +1), or None when an argument cannot be
    resolved (the point is then not judged)."""
    kinds = tuple(getattr(sp, k) for k in _BRANCHING)
    if not expr.has(*kinds):
        return expr

    import mpmath

    def sign_of(u):
        v = value(u, subs, digits, maxn)
        if v is None or isinstance(v, mpmath.mpc):
            raise _Unresolved
        return (v > 0) - (v < 0)

    def holds(cond):
        if cond in (sp.true, sp.false):
            return bool(cond)
        if isinstance(cond, sp.core.relational.Relational):
            s = sign_of(cond.lhs - cond.rhs)
            return {"<": s < 0, "<=": s <= 0, ">": s > 0, ">=": s >= 0, "==": s == 0, "!=": s != 0}[cond.rel_op]
        if isinstance(cond, sp.And):
            return all(holds(c) for c in cond.args)
        if isinstance(cond, sp.Or):
            return any(holds(c) for c in cond.args)
        if isinstance(cond, sp.Not):
            return not holds(cond.args[0])
        raise _Unresolved

    def walk(e):
        if not e.args or not e.has(*kinds):
            return e
        if isinstance(e, sp.Piecewise):  # only the chosen branch is evaluated further
            for piece in e.args:
                if holds(piece.cond):
                    return walk(piece.expr)
            raise _Unresolved
        e = e.func(*[walk(a) for a in e.args]) if not isinstance(e, (sp.Max, sp.Min)) else e
        if isinstance(e, sp.sign):
            return sp.Integer(sign_of(e.args[0]))
        if isinstance(e, sp.Heaviside):
            s = sign_of(e.args[0])
            return sp.Integer(1) if s > 0 else sp.Integer(0) if s < 0 else \
                (e.args[1] if len(e.args) > 1 else sp.S.Half)
        if isinstance(e, sp.Abs):
            return e.args[0] * sign_of(e.args[0])
        if isinstance(e, (sp.Max, sp.Min)):
            args = [walk(a) for a in e.args]
            best = args[0]
            for a in args[1:]:
                s = sign_of(a - best)
                if (s > 0) if isinstance(e, sp.Max) else (s < 0):
                    best = a
            return best
        return e

    try:
        return walk(expr)
    except _Unresolved:
        return None


class _Unresolved(Exception):
    """A branch whose argument cannot be resolved at the point."""


def _mpf(x: sp.Expr, prec: int):
    import mpmath

    if x == 0:
        return mpmath.mpf(0)
    if x.is_Rational:
        return mpmath.mpf(x.p) / x.q
    return mpmath.mpf(sp.Float(x, max(15, int(prec / 3.33)))._mpf_)


def bound(expr, subs: Mapping, digits: int = DIGITS):
    """An upper bound of |expr| at the exact point ``subs`` by interval arithmetic (mpmath.iv), for
    a real expression in exp/log/sqrt/powers (tanh & co. rewritten through exp), or None. Where
    evaluation to ``digits`` digits fails in a cancellation, this still bounds the value."""
    import mpmath

    try:
        e = exact_floats(expr).rewrite(sp.exp)
        if e.has(sp.Piecewise, sp.Heaviside, sp.Max, sp.Min, sp.sign, sp.Sum, sp.Abs) or e.is_real is False:
            return None
        args = sorted(subs, key=str)
        iv = mpmath.iv
        f = sp.lambdify(args, e, modules=[{"exp": iv.exp, "log": iv.log, "sqrt": iv.sqrt, "mpf": iv.mpf}, "mpmath"])
        saved = iv.dps
        iv.dps = digits + 10
        try:
            vals = [iv.mpf(int(sp.Rational(subs[a]).p)) / int(sp.Rational(subs[a]).q) for a in args]
            out = f(*vals)
            out = out if isinstance(out, type(iv.mpf(0))) else iv.mpf(out)
            hi = max(abs(mpmath.mpf(out.a)), abs(mpmath.mpf(out.b)))
        finally:
            iv.dps = saved
        return hi * (1 + mpmath.mpf(10) ** (-digits)) if mpmath.isfinite(hi) else None
    except Exception:  # noqa: BLE001 - any failure: no bound (the point is skipped, never guessed)
        return None


def _structural_zero(expr, subs: Mapping) -> bool:
    """Whether ``expr`` at the point is 0 by SymPy's own exact evaluation (a Piecewise branch 0,
    Max(0, −1), 0·…): evalf's exact zeros are trusted only then. Powers with a variable exponent
    are not expanded (x**p at p = 1e8 would be a huge exact number): no vouching there."""
    if any(p.exp.free_symbols & set(subs) for p in expr.atoms(sp.Pow)):
        return False
    try:
        return expr.xreplace(dict(subs)) == 0
    except Exception:  # noqa: BLE001 - no exact opinion: not a zero we can vouch for
        return False
