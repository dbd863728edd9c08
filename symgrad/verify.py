"""Verify: is a hand-derived derivative right? ``verify(expr, wrt, claim)`` → :class:`Verdict`.

The claim may be a SymPy object (scalar, Matrix, MatrixSymbol expression), text in Python
syntax with the catalog's names (``"sigmoid(x)*(1-sigmoid(x))"``), LaTeX
(``\\sigma(x)(1-\\sigma(x))``), or a NumPy callable. symgrad derives the truth itself, then:

1. **proof** (bounded): Heaviside is read with the kink convention H(0) = 0 (said in the notes),
   both sides are written in elementary functions, and the difference goes through cheap
   targeted rewrites (cancel, expand, together) before a time-limited ``simplify``;
2. **refutation**: both sides are evaluated at varied random points of the symbols' domains
   (never only "nice" ones) with 50-digit arithmetic; any relative difference above 1e-30 (1e-9
   for NumPy callables, evaluated in float64) refutes the claim, with the point and both values.

Status: ``proven``, ``refuted``, ``numerically-consistent`` (no counterexample, no proof) or
``undecided`` (the budget ran out or nothing could be evaluated). ``ok`` is True for the first
and the third.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import mpmath
import numpy as np
import sympy as sp

from .catalog.activations import step
from .derive import Derivation, derive
from .errors import SymgradError
from .simplify import Budget, elementary

__all__ = ["verify", "Verdict"]

DIGITS = 50


@dataclass
class Verdict:
    """The judgement of a claim (see the module docstring)."""

    status: str  # "proven" | "refuted" | "numerically-consistent" | "undecided"
    claim: Any
    truth: Any
    method: str
    seconds: float
    counterexample: dict | None = None
    notes: list[str] = field(default_factory=list)
    points: int = 0

    @property
    def ok(self) -> bool:
        return self.status in ("proven", "numerically-consistent")

    def __str__(self) -> str:
        from .printing import text

        lines = [f"{self.status}: {self.method} ({self.seconds:.2f} s)"]
        if self.counterexample:
            ce = self.counterexample
            point = ", ".join(f"{k} = {v}" for k, v in ce["point"].items())
            lines.append(f"  counterexample at {point}{' (entry ' + str(ce['entry']) + ')' if ce.get('entry') is not None else ''}:")
            lines.append(f"    claim  = {ce.get('claim_digits', ce['claim'])}")
            lines.append(f"    truth  = {ce.get('truth_digits', ce['truth'])}")
        if not callable(self.claim) or isinstance(self.claim, sp.Basic):
            lines.append(f"  claim: {text(self.claim) if isinstance(self.claim, sp.Basic) else self.claim}")
        lines.append(f"  truth: {text(self.truth) if isinstance(self.truth, sp.Basic) else self.truth}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_json(self) -> dict:
        from .printing import text

        return {"status": self.status, "ok": self.ok, "method": self.method, "seconds": self.seconds,
                "claim": text(self.claim) if isinstance(self.claim, sp.Basic) else repr(self.claim),
                "truth": text(self.truth) if isinstance(self.truth, sp.Basic) else str(self.truth),
                "counterexample": self.counterexample, "notes": self.notes, "points": self.points}

    def _repr_markdown_(self) -> str:
        return "```\n" + str(self) + "\n```"

    def _repr_latex_(self) -> str:
        from .printing import latex

        claim = latex(self.claim) if isinstance(self.claim, sp.Basic) else r"\text{(a NumPy function)}"
        rel = {"proven": "=", "refuted": r"\neq", "numerically-consistent": r"\approx"}.get(self.status, "?")
        return rf"$\displaystyle {claim} \;{rel}\; {latex(self.truth)}\quad\text{{({self.status})}}$"


def verify(expr: Any, wrt: Any, claim: Any, *, timeout: float = 5.0, points: int = 12, seed: int = 0,
           positive: Sequence[str] = ()) -> Verdict:
    r"""Judge the claim ∂expr/∂wrt = claim (see the module docstring for the method).

    .. math:: \text{claim} - \frac{\partial\,\text{expr}}{\partial\,\text{wrt}} \overset{?}{=} 0

    ``positive``: names of symbols to treat as positive (sampled from positive values).
    """
    started = time.perf_counter()
    budget = Budget(timeout)
    expr, wrt = _with_assumptions(expr, wrt, positive)
    derivation = derive(expr, wrt, timeout=max(timeout / 3, 0.5))
    truth = derivation.result
    symbols = _symbols_by_name(derivation)
    if callable(claim) and not isinstance(claim, (sp.Basic, str)):
        return _verify_callable(derivation, claim, points, seed, started)
    parsed = _as_claim(claim, symbols)
    notes: list[str] = []
    parsed, truth_cmp = _conform(parsed, truth)
    if parsed.has(sp.Heaviside):
        parsed = parsed.replace(lambda n: isinstance(n, sp.Heaviside), lambda n: step(n.args[0]))
        notes.append("Heaviside(u) read as the step 1[u > 0] (the kink convention ReLU'(0) = 0); claims "
                     "that differ only where u = 0 are judged equal")
    if isinstance(truth_cmp, sp.MatrixExpr) and not isinstance(truth_cmp, sp.MatrixBase):
        return _verify_matrix_expr(derivation, parsed, truth_cmp, notes, points, seed, started)
    # 1. numbers first: a wrong claim is refuted fast, before any expensive simplification
    refuted = _refute(parsed, truth_cmp, derivation, points, seed, budget)
    if refuted is not None:
        kind, info = refuted
        if kind == "counterexample":
            return Verdict("refuted", parsed, truth_cmp, f"50-digit evaluation at {info['evaluated']} random points",
                           time.perf_counter() - started, info, notes, info["evaluated"])
        notes.append(info)
    # 2. a proof
    if _prove(parsed, truth_cmp, budget):
        return Verdict("proven", parsed, truth_cmp, "symbolic: the difference simplifies to 0",
                       time.perf_counter() - started, None, notes, points)
    notes += budget.hits
    if refuted is not None and refuted[0] == "unevaluable":
        return Verdict("undecided", parsed, truth_cmp, "neither proven nor evaluated",
                       time.perf_counter() - started, None, notes, 0)
    return Verdict("numerically-consistent", parsed, truth_cmp,
                   f"no counterexample at {points} random points (50 digits); not proven symbolically",
                   time.perf_counter() - started, None, notes, points)


# --- inputs ------------------------------------------------------------------------------------------
def _with_assumptions(expr, wrt, positive):
    if not positive:
        return expr, wrt
    from .parse import parse

    names = set(positive)
    if isinstance(expr, str):
        expr = parse(expr, assumptions={n: {"positive": True} for n in names})
        return expr, wrt
    subs = {s: sp.Symbol(s.name, positive=True) for s in expr.free_symbols
            if isinstance(s, sp.Symbol) and s.name in names}
    expr = expr.xreplace(subs)
    if isinstance(wrt, sp.Symbol) and wrt in subs:
        wrt = subs[wrt]
    return expr, wrt


def _symbols_by_name(derivation: Derivation) -> dict:
    out = {}
    for s in derivation.expr.free_symbols | set().union(*(getattr(r, "free_symbols", set()) for r in derivation.results)):
        if hasattr(s, "name"):
            out[s.name] = s
    for idx in derivation.expr.atoms(sp.Indexed):
        out[idx.base.label.name] = idx.base
    return out


def _as_claim(claim: Any, symbols: Mapping[str, sp.Basic]) -> Any:
    if isinstance(claim, str):
        text = claim.strip()
        if "\\" in text or "{" in text:
            from .latex_input import parse_latex

            return parse_latex(text, symbols=symbols)
        from .parse import parse

        return parse(text, symbols=dict(symbols))
    if isinstance(claim, (list, tuple)):
        return sp.Matrix([_as_claim(c, symbols) for c in claim])
    if isinstance(claim, (sp.Basic, sp.MatrixBase)):
        return claim
    if isinstance(claim, (int, float)):
        return sp.Float(claim) if isinstance(claim, float) else sp.Integer(claim)
    raise TypeError(f"a claim is a SymPy expression, text (Python or LaTeX) or a NumPy function; got {type(claim).__name__}")


def _conform(claim, truth):
    """Shapes: a vector claim against a vector gradient, transposes forgiven only if exact."""
    if isinstance(truth, sp.MatrixBase):
        if not isinstance(claim, sp.MatrixBase):
            raise ValueError(f"the derivative is a {truth.rows}×{truth.cols} matrix; the claim must be one too")
        if claim.shape != truth.shape:
            if claim.shape == truth.T.shape and 1 in claim.shape:
                claim = claim.T  # a row for a column vector
            else:
                raise ValueError(f"the claim has shape {claim.shape} but the derivative has shape {truth.shape}")
    elif isinstance(claim, sp.MatrixBase):
        raise ValueError("the derivative is a scalar but the claim is a matrix")
    return claim, truth


# --- proof ----------------------------------------------------------------------------------------
def _prove(claim, truth, budget: Budget) -> bool:
    entries = list(zip(claim, truth)) if isinstance(truth, sp.MatrixBase) else [(claim, truth)]
    for c, t in entries:
        diff = elementary(c) - elementary(t)
        if diff == 0:
            continue
        done = False
        for name, fn in (("cancel", sp.cancel), ("expand", lambda e: sp.expand(sp.powsimp(e))),
                         ("together", lambda e: sp.cancel(sp.together(sp.expand(e)))),
                         ("rewrite(exp)", lambda e: sp.cancel(sp.expand(e.rewrite(sp.exp)))),
                         ("simplify", sp.simplify)):
            out = budget.run(f"proof ({name})", lambda fn=fn: fn(diff), cap=max(budget.remaining() / 2, 0.05))
            if out is not None and out == 0:
                done = True
                break
            if budget.remaining() <= 0:
                break
        if not done:
            return False
    return True


# --- refutation -----------------------------------------------------------------------------------
def _sample(symbols, rng) -> dict:
    point = {}
    for s in symbols:
        if isinstance(s, sp.Indexed):
            base_positive = s.base.label.is_positive or getattr(s.base, "assumptions0", {}).get("positive")
            point[s] = float(np.exp(rng.uniform(-2.0, 1.5))) if base_positive else float(rng.uniform(-3.0, 3.0))
        elif getattr(s, "is_integer", False):
            point[s] = int(rng.integers(1, 4))
        elif getattr(s, "is_positive", False) or getattr(s, "is_nonnegative", False):
            point[s] = float(np.exp(rng.uniform(-2.0, 1.5)))  # log-uniform, never 1 exactly
        else:
            point[s] = float(rng.uniform(-3.0, 3.0)) * (10.0 ** rng.integers(-1, 1))
    return point


def _refute(claim, truth, derivation, points, seed, budget):
    rng = np.random.default_rng(seed)
    pairs = list(zip(claim, truth)) if isinstance(truth, sp.MatrixBase) else [(claim, truth)]
    plain = [(elementary(c), elementary(t)) for c, t in pairs]
    sizes = {lim[2] for c, t in plain for node in (c, t) for sm in node.atoms(sp.Sum) for lim in sm.limits
             if isinstance(lim[2], sp.Symbol)}
    evaluated = 0
    for _ in range(points):
        if budget.remaining() <= 0:
            break
        concrete = plain
        if sizes or any(c.atoms(sp.Indexed) or t.atoms(sp.Indexed) for c, t in plain):
            concrete = _at_a_size(plain, sizes, rng)  # symbolic n → 4, indices k → 1..4
        syms = sorted(set().union(*[c.free_symbols | t.free_symbols for c, t in concrete]), key=str)
        syms = [x for x in syms if not (isinstance(x, sp.Symbol) and any(x in i.indices for c, t in concrete
                                                                         for i in (c.atoms(sp.Indexed) | t.atoms(sp.Indexed))))]
        point = _sample(syms, rng)
        subs = {s: sp.Float(v, DIGITS) if isinstance(v, float) else sp.Integer(v) for s, v in point.items()}
        for k, (c, t) in enumerate(concrete):
            try:
                with mpmath.workdps(DIGITS):
                    cv, tv = _mp(sp.N(c.xreplace(subs), DIGITS)), _mp(sp.N(t.xreplace(subs), DIGITS))
                    finite = all(mpmath.isfinite(v) for v in (cv, tv))
                    gap = abs(cv - tv)
                    scale = max(abs(tv), abs(cv), mpmath.mpf("1e-300"))
            except (TypeError, ValueError, ZeroDivisionError):
                continue
            if not finite:
                continue
            if gap > mpmath.mpf("1e-30") * scale and gap > mpmath.mpf("1e-40"):
                return ("counterexample", {
                    "point": {str(s): v for s, v in point.items()},
                    "claim": _real(cv), "truth": _real(tv),
                    "claim_digits": mpmath.nstr(cv, 25), "truth_digits": mpmath.nstr(tv, 25),
                    "entry": k if len(plain) > 1 else None, "evaluated": evaluated + 1})
        evaluated += 1
    if evaluated == 0:
        return ("unevaluable", "no point could be evaluated (outside every domain?)")
    return None


def _at_a_size(plain, sizes, rng):
    """Sums over a symbolic size written out at n = 4; free integer indices drawn from 1..4."""
    n = 4
    subs = {s: sp.Integer(n) for s in sizes}
    free_ints = {x for c, t in plain for x in (c.free_symbols | t.free_symbols)
                 if isinstance(x, sp.Symbol) and x.is_integer and x not in sizes}
    subs.update({x: sp.Integer(int(rng.integers(1, n + 1))) for x in free_ints})
    out = []
    for c, t in plain:
        c, t = c.xreplace(subs), t.xreplace(subs)
        out.append((c.replace(lambda e: isinstance(e, sp.Sum), lambda e: e.doit()),
                    t.replace(lambda e: isinstance(e, sp.Sum), lambda e: e.doit())))
    return out


def _mp(value):
    """A 50-digit mpmath number from a SymPy number (no detour through float)."""
    re_, im_ = value.as_real_imag()
    if re_.free_symbols or im_.free_symbols:
        raise ValueError("not a number")
    return mpmath.mpc(mpmath.mpf(sp.Float(re_, DIGITS)._mpf_), mpmath.mpf(sp.Float(im_, DIGITS)._mpf_))


def _real(z):
    z = complex(z)
    return z.real if abs(z.imag) <= 1e-30 * max(abs(z.real), 1e-300) else str(z)


# --- claims as NumPy functions, and matrix expressions -----------------------------------------------------------
def _verify_callable(derivation, fn, points, seed, started) -> Verdict:
    compiled = derivation.compile()
    rng = np.random.default_rng(seed)
    syms = derivation.free_symbols()
    for k in range(points):
        if derivation.is_matrix:
            raise SymgradError("NumPy claims for matrix-symbol derivatives: compare with symgrad.check_grad")
        point = _sample(syms, rng)
        kwargs = {s.name: v for s, v in point.items()}
        try:
            got = fn(**kwargs)
        except TypeError:
            got = fn(*[kwargs[s.name] for s in syms])
        truth = compiled(**{k2: v for k2, v in kwargs.items() if k2 in compiled.params})
        got_arr = np.asarray(got, dtype=float).reshape(-1)
        truth_arr = np.concatenate([np.asarray(t, dtype=float).reshape(-1) for t in
                                    (truth if isinstance(truth, tuple) else (truth,))])
        if got_arr.shape != truth_arr.shape:
            raise ValueError(f"the claimed function returned {got_arr.size} values; the derivative has {truth_arr.size}")
        scale = max(np.abs(truth_arr).max(), 1e-300)
        rel = np.abs(got_arr - truth_arr) / np.maximum(np.abs(truth_arr), 1e-7 * scale)
        if rel.max() > 1e-9:
            i = int(rel.argmax())
            return Verdict("refuted", fn, derivation.result, f"float64 evaluation at {k + 1} random points",
                           time.perf_counter() - started,
                           {"point": kwargs, "claim": float(got_arr[i]), "truth": float(truth_arr[i]),
                            "entry": i if got_arr.size > 1 else None}, [], k + 1)
    return Verdict("numerically-consistent", fn, derivation.result,
                   f"agrees at {points} random points (float64, relative error ≤ 1e-9)",
                   time.perf_counter() - started, None, [], points)


def _verify_matrix_expr(derivation, claim, truth, notes, points, seed, started) -> Verdict:
    from .compiler import compile_expr

    if not isinstance(claim, sp.MatrixExpr) or claim.shape != truth.shape:
        raise ValueError(f"the derivative is a {truth.shape} matrix expression; the claim must have that shape")
    if (claim - truth).doit() == sp.ZeroMatrix(*truth.shape):
        return Verdict("proven", claim, truth, "symbolic: the matrix expressions are equal",
                       time.perf_counter() - started, None, notes, 0)
    mats = sorted(derivation.expr.atoms(sp.MatrixSymbol) | claim.atoms(sp.MatrixSymbol), key=lambda m: m.name)
    dims = sorted({d for m in mats for d in m.shape if isinstance(d, sp.Symbol)}, key=lambda d: d.name)
    f_claim, f_truth = compile_expr(claim, mats), compile_expr(truth, mats)
    rng = np.random.default_rng(seed)
    for k in range(points):
        sizes = {d: int(rng.integers(2, 5)) for d in dims}
        arrays = {m.name: rng.normal(size=tuple(int(sizes.get(x, x)) for x in m.shape)) for m in mats}
        a, b = np.asarray(f_claim(**arrays), float), np.asarray(f_truth(**arrays), float)
        scale = max(np.abs(b).max(), 1e-300)
        if a.shape != b.shape or np.abs(a - b).max() > 1e-9 * scale:
            return Verdict("refuted", claim, truth, f"float64 evaluation at {k + 1} random sizes and values",
                           time.perf_counter() - started,
                           {"point": {d.name: v for d, v in sizes.items()}, "claim": a.tolist(), "truth": b.tolist(),
                            "entry": None}, notes, k + 1)
    return Verdict("numerically-consistent", claim, truth, f"agrees at {points} random sizes and values (float64)",
                   time.perf_counter() - started, None, notes, points)
