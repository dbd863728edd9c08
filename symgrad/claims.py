"""Verify: is a hand-derived derivative right? ``verify(expr, wrt, claim)`` → :class:`Verdict`.

The claim may be a SymPy object (scalar, Matrix, MatrixSymbol expression), text in Python
syntax with the catalog's names (``"sigmoid(x)*(1-sigmoid(x))"``), LaTeX
(``\\sigma(x)(1-\\sigma(x))``, ``2\\lambda W``, ``W^\\top x``), or a NumPy callable. symgrad
derives the truth itself; every symbol is one object per name (``a`` and a positive ``a`` are
the same variable). Then:

1. **refutation** (first: a wrong claim is refuted fast): both sides are evaluated *exactly* at
   the points of :mod:`symgrad.checks.sampling` — magnitudes across many decades, both signs, near 0,
   and at and on both sides of every breakpoint of claim and truth — to 30 correct digits
   (a value that cannot be resolved is never guessed). Every point is required: one left
   unchecked (not resolved, or not reached in the budget) makes the verdict ``undecided``
   ("k of n sample points checked"), never consistent on the near points alone. Each point
   first gets a share of the budget (a slow one is deferred and tried again after the proof,
   so that it hides no counterexample at the next). A relative difference
   above the tolerance (1e-20, or float64 rounding ≈ 5.7e-14 when a floating-point number
   appears on one side only) refutes the claim, with the point and both values. Where the
   truth's textbook form cancels beyond reach (far in the tails), plain SymPy's form, the
   difference claim − truth, and an interval bound on |truth| decide. Matrix expressions are
   written out at small sizes (2, 3, 4, … so a transposition shows);
2. **proof** (bounded): Heaviside is read with the kink convention H(0) = 0 (said in the
   notes), both sides are written in elementary functions, and the difference goes through
   cheap targeted rewrites (cancel, expand, together) before a time-limited ``simplify``.

Status: ``proven``, ``refuted``, ``numerically-consistent`` (no counterexample at any of the
points, no proof) or ``undecided`` (the budget ran out, or a point could not be evaluated).
``ok`` is True for the first and the third. A claim of the wrong shape is refuted with the reason.

The time bound is hard: the verdict is computed in a forked worker process (memory-limited),
stopped at ``timeout`` + 0.5 s whatever SymPy is doing (steps in C, such as a huge exact power,
ignore the alarm that bounds each step).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import mpmath
import numpy as np
import sympy as sp

from .checks import sampling
from .catalog.activations import step
from .derivation import Derivation, derive
from .errors import SymgradError
from .simplify.budget import Budget
from .simplify.rules import elementary
from .printing.plain import text
from .printing.tex import latex
from .parsing.python import parse
from .errors import ParseError
from .parsing.latex import parse_latex
from .checks.crosscheck import explicit_entries

__all__ = ["verify", "Verdict"]

DIGITS = sampling.DIGITS
MAX_TERMS = 256  # a numeric sum is written out only up to this many terms
DIFF_MAXN = 150  # digits evalf may spend on claim − truth (a disguised zero costs that much, then gives up)
ROUNDING_AT_MOST = 1e-6  # a float claim's relative difference beyond this is never float64 rounding


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

    def _where(self) -> str | None:
        ce = self.counterexample
        if not ce:
            return None
        if ce.get("reason"):
            return ce["reason"]
        point = ", ".join(f"{k} = {_show(v)}" for k, v in ce.get("point", {}).items())
        entry = f" (entry {ce['entry']})" if ce.get("entry") is not None else ""
        return f"counterexample at {point}{entry}"

    def __str__(self) -> str:

        lines = [f"{self.status}: {self.method} ({self.seconds:.2f} s)"]
        if self.counterexample:
            ce = self.counterexample
            lines.append(f"  {self._where()}" + (":" if "claim" in ce else ""))
            if "claim" in ce:
                lines.append(f"    claim  = {ce.get('claim_digits', _show(ce['claim']))}")
                lines.append(f"    truth  = {ce.get('truth_digits', _show(ce['truth']))}")
        if not callable(self.claim) or isinstance(self.claim, sp.Basic):
            lines.append(f"  claim: {text(self.claim) if isinstance(self.claim, sp.Basic) else self.claim}")
        lines.append(f"  truth: {text(self.truth) if isinstance(self.truth, sp.Basic) else self.truth}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_json(self) -> dict:

        return {"status": self.status, "ok": self.ok, "method": self.method, "seconds": self.seconds,
                "claim": text(self.claim) if isinstance(self.claim, sp.Basic) else repr(self.claim),
                "truth": text(self.truth) if isinstance(self.truth, sp.Basic) else str(self.truth),
                "counterexample": self.counterexample, "notes": self.notes, "points": self.points}

    def _math(self) -> str:

        claim = latex(self.claim) if isinstance(self.claim, sp.Basic) else r"\text{(a NumPy function)}"
        rel = {"proven": "=", "refuted": r"\neq", "numerically-consistent": r"\approx"}.get(self.status, r"\overset{?}{=}")
        return rf"\displaystyle {claim} \;{rel}\; {latex(self.truth)}"

    def _repr_markdown_(self) -> str:
        """Markdown with display math (Jupyter prefers Markdown to LaTeX, so the math is here)."""
        lines = [f"**{self.status}** — {self.method} ({self.seconds:.2f} s)", "", f"$${self._math()}$$", ""]
        ce = self.counterexample
        if ce:
            lines.append(f"- {self._where()}" + (f": claim = {ce.get('claim_digits', _show(ce.get('claim')))}, "
                                                 f"truth = {ce.get('truth_digits', _show(ce.get('truth')))}"
                                                 if "claim" in ce else ""))
        lines += [f"- note: {n}" for n in self.notes]
        return "\n".join(lines)

    def _repr_latex_(self) -> str:
        return rf"${self._math()}\quad\text{{({self.status})}}$"


def verify(expr: Any, wrt: Any, claim: Any, *, timeout: float = 5.0, points: int = 12, seed: int = 0,
           positive: Sequence[str] = (), deadline: float | None = None) -> Verdict:
    r"""Judge the claim ∂expr/∂wrt = claim (see the module docstring for the method).

    .. math:: \text{claim} - \frac{\partial\,\text{expr}}{\partial\,\text{wrt}} \overset{?}{=} 0

    ``positive``: names of symbols of ``expr`` to treat as positive (sampled from positive values).
    ``points``: random points (the breakpoints' neighbourhoods come on top). ``timeout``: seconds
    for the whole verdict (reading the claim, derivation, refutation and proof). The bound is
    hard: the work runs in a worker process (fork) that is stopped at ``timeout`` + 0.5 s, when
    the verdict is ``undecided`` (budget exhausted, with how many points were checked); SymPy
    steps that no signal can interrupt (a huge exact power, a long sum) cannot overrun it.
    ``deadline``: a ``time.perf_counter()`` instant the verdict must not pass (the CLI's start +
    ``--timeout``: the time spent starting the command is taken from the budget).
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a positive finite number of seconds, got {timeout!r}")
    seconds = float(timeout) if deadline is None else max(min(float(timeout), deadline - time.perf_counter()), 0.05)
    if _WORKER["inside"] or not _can_fork():
        return _verify(expr, wrt, claim, timeout=seconds, points=points, seed=seed, positive=positive)
    verdict = _bounded(lambda: _verify(expr, wrt, claim, timeout=seconds, points=points, seed=seed,
                                       positive=positive), seconds, claim, float(timeout))
    if callable(claim) and not isinstance(claim, (sp.Basic, str)):
        verdict.claim = claim  # a function does not cross the process boundary: the caller's own
    return verdict


# --- the hard time bound: a worker process stopped at the deadline --------------------------------------
GRACE = 0.5  # seconds past the budget before the worker is stopped (the promise: timeout + 1 s)
MEMORY = 2 << 30  # bytes the worker may allocate beyond what it inherits (SymPy's exact powers can ask for more)
_WORKER = {"inside": False, "progress": None}  # in the worker: a shared [checked, planned] pair


def _can_fork() -> bool:
    import multiprocessing as mp

    return "fork" in mp.get_all_start_methods() and not mp.current_process().daemon


def _bounded(fn, timeout: float, claim, asked: float) -> Verdict:
    """``fn()`` (a Verdict) run in a forked worker, stopped at ``timeout`` + :data:`GRACE` s
    (``asked``: the bound the caller named, for the message)."""
    import multiprocessing as mp
    import pickle

    started = time.perf_counter()
    ctx = mp.get_context("fork")
    progress = ctx.RawArray("l", 2)  # points checked, points planned (shared, written by the worker)
    receive, send = ctx.Pipe(duplex=False)
    worker = ctx.Process(target=_work, args=(fn, send, progress), daemon=True)
    worker.start()
    send.close()
    message = None
    try:
        if receive.poll(max(started + timeout + GRACE - time.perf_counter(), 0.0)):
            message = pickle.loads(receive.recv_bytes())
    except (EOFError, OSError, pickle.UnpicklingError, AttributeError, ImportError):
        message = None
    finally:
        receive.close()
        if worker.is_alive():
            worker.kill()
        worker.join()
    if message is None or message[0] == "memory":
        checked, planned = progress[0], progress[1]
        counted = f"{checked} of {planned} sample points checked" if planned else "no sample point checked"
        limit = (f"the {asked:g} s bound was reached" if message is None else
                 f"the worker's memory limit ({MEMORY >> 30} GiB beyond its start) was reached")
        return Verdict("undecided", claim if isinstance(claim, (sp.Basic, sp.MatrixBase)) else str(claim),
                       "(not known: the work was stopped)",
                       f"budget exhausted: {limit} and the work stopped ({counted}, no counterexample among them)",
                       time.perf_counter() - started, None, [], int(checked))
    kind, payload = message
    if kind == "error":
        raise payload
    return payload


def _work(fn, send, progress) -> None:
    """In the worker: run ``fn`` and send back ("ok", verdict) or ("error", exception), pickled."""
    import pickle

    _WORKER["inside"], _WORKER["progress"] = True, progress
    _limit_memory()
    try:
        message = ("ok", fn())
    except MemoryError:
        message = ("memory", None)
    except Exception as exc:  # noqa: BLE001 - every error goes back to the caller, who raises it
        message = ("error", exc)
    try:
        data = pickle.dumps(message)
        pickle.loads(data)
    except Exception:  # noqa: BLE001 - a result that does not cross the boundary: its text does
        kind, payload = message
        if kind == "error":
            cls = type(payload) if isinstance(payload, (ValueError, TypeError, KeyError)) else RuntimeError
            try:
                data = pickle.dumps(("error", cls(str(payload))))
            except Exception:  # noqa: BLE001
                data = pickle.dumps(("error", RuntimeError(str(payload))))
        else:
            payload.claim, payload.truth = _text_of(payload.claim), _text_of(payload.truth)
            data = pickle.dumps(("ok", payload))
    send.send_bytes(data)
    send.close()


def _limit_memory() -> None:
    """At most :data:`MEMORY` bytes of address space beyond the worker's inherited size (the host
    is shared: a runaway exact power gets a MemoryError, not the machine's memory)."""
    try:
        import resource

        with open("/proc/self/statm") as f:
            size = int(f.read().split()[0]) * resource.getpagesize()
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        want = size + MEMORY
        if hard == resource.RLIM_INFINITY or want < hard:
            resource.setrlimit(resource.RLIMIT_AS, (want, hard))
    except (ImportError, OSError, ValueError):  # not Linux: no limit
        pass


def _text_of(obj) -> str:

    return text(obj) if isinstance(obj, sp.Basic) else str(obj)


def _progress(checked: int | None = None, planned: int | None = None) -> None:
    shared = _WORKER["progress"]
    if shared is None:
        return
    if checked is not None:
        shared[0] = checked
    if planned is not None:
        shared[1] = planned


def _verify(expr, wrt, claim, *, timeout, points, seed, positive) -> Verdict:
    started = time.perf_counter()
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a positive finite number of seconds, got {timeout!r}")
    budget = Budget(float(timeout))
    expr, wrt = _with_assumptions(expr, wrt, positive)
    derivation = derive(expr, wrt, timeout=max(timeout / 3, 0.2))
    truth = derivation.result
    symbols = _symbols_by_name(derivation)
    if callable(claim) and not isinstance(claim, (sp.Basic, str)):
        return _verify_callable(derivation, claim, points, seed, started)
    parsed = sampling.unify(_as_claim(claim, symbols), symbols)
    _refuse_non_finite(parsed)
    notes: list[str] = []
    free = parsed.free_symbols if isinstance(parsed, (sp.Basic, sp.MatrixBase)) else set()
    foreign = sorted({getattr(s, "name", str(s)) for s in free if not isinstance(s, sp.Indexed)} - set(symbols))
    if foreign:
        notes.append(f"the claim has symbols the expression does not: {', '.join(foreign)} (sampled as free variables)")
    if _has_heaviside(parsed) or _has_heaviside(truth):
        notes.append("Heaviside(u) read as the step 1[u > 0] (the kink convention ReLU'(0) = 0); claims "
                     "that differ only where u = 0 are judged equal")
    parsed, truth_cmp = _kink_convention(parsed), _kink_convention(truth)
    if isinstance(truth_cmp, sp.MatrixExpr) and isinstance(parsed, sp.MatrixExpr) and \
            not isinstance(truth_cmp, sp.MatrixBase) and not isinstance(parsed, sp.MatrixBase) and \
            parsed.shape == truth_cmp.shape and _equal_matrix_expressions(parsed, truth_cmp, budget):
        return Verdict("proven", parsed, truth_cmp, "symbolic: the matrix expressions are equal",
                       time.perf_counter() - started, None, notes, 0)
    concrete = _explicit_pair(parsed, truth_cmp, derivation.expr)
    if isinstance(concrete, str):  # the shapes differ
        return Verdict("refuted", parsed, truth_cmp, "the shapes differ", time.perf_counter() - started,
                       {"reason": concrete}, notes, 0)
    pairs, sized, shape_note = concrete
    if shape_note:
        notes.append(shape_note)
    # 0. the same expression (a claim copied from the truth, or typed as SymPy prints it): equal
    if not sized and budget.run("proof (identical)", lambda: all(elementary(c) - elementary(t) == 0 for c, t in pairs),
                                cap=max(budget.remaining() / 10, 0.05)):
        return Verdict("proven", parsed, truth_cmp, "symbolic: the difference simplifies to 0",
                       time.perf_counter() - started, None, notes, 0)
    # 1. numbers first: a wrong claim is refuted fast, before any expensive simplification; the
    # proof runs between the cheap points and the points that cost more (2.)
    tried = []

    def prove() -> bool:
        tried.append(True)
        share = Budget(max(budget.remaining() / 2, 0.05))
        done = _prove(pairs, share)
        budget.hits.extend(share.hits)
        return done

    refuted = _refute(pairs, points, seed, budget, _alternatives(derivation, pairs, sized),
                      prove=None if sized else prove)
    if refuted[0] == "proven":
        return Verdict("proven", parsed, truth_cmp, "symbolic: the difference simplifies to 0",
                       time.perf_counter() - started, None, notes, 0)
    tol = sampling.claim_tolerance([c for c, _ in pairs], [t for _, t in pairs])
    where = "at small sizes " + ", ".join(f"{d} = {v}" for d, v in sized.items()) + "; " if sized else ""
    if refuted[0] == "counterexample":
        info = refuted[1]
        return Verdict("refuted", parsed, truth_cmp,
                       f"{DIGITS}-digit evaluation {where}at {_count(info['evaluated'])} (relative tolerance {tol:.2g})",
                       time.perf_counter() - started, info, notes, info["evaluated"])
    kind = refuted[0]
    evaluated = refuted[1] if kind in ("consistent", "incomplete") else 0
    if kind == "consistent" and len(refuted) > 2:
        notes.append(refuted[2])
    if kind == "unevaluable":
        notes.append(refuted[1])
    # 2. a proof (of the entries: a proof for every size only when no size was chosen)
    if not sized and not tried and _prove(pairs, budget):
        return Verdict("proven", parsed, truth_cmp, "symbolic: the difference simplifies to 0",
                       time.perf_counter() - started, None, notes, evaluated)
    notes += budget.hits
    if kind == "incomplete":  # no counterexample among the points checked, but not every point was
        exhausted = "budget exhausted: " if "budget" in refuted[3] else ""
        return Verdict("undecided", parsed, truth_cmp,
                       f"{exhausted}{refuted[3]}; no counterexample among them ({DIGITS} digits, {where}relative "
                       f"tolerance {tol:.2g}); not proven symbolically", time.perf_counter() - started, None,
                       notes, evaluated)
    if not evaluated:
        return Verdict("undecided", parsed, truth_cmp, "neither proven nor evaluated (budget exhausted or no "
                       "point in the domain could be evaluated)", time.perf_counter() - started, None, notes, 0)
    return Verdict("numerically-consistent", parsed, truth_cmp,
                   f"no counterexample at {_count(evaluated)} ({DIGITS} digits, {where}relative tolerance {tol:.2g}); "
                   "not proven symbolically", time.perf_counter() - started, None, notes, evaluated)


# --- inputs ------------------------------------------------------------------------------------------
def _names_of(expr) -> dict[str, sp.Basic]:
    return sampling.by_name(expr) if isinstance(expr, (sp.Basic, sp.MatrixBase)) else {}


def _with_assumptions(expr, wrt, positive):
    if isinstance(positive, str):
        positive = [positive]
    names = list(positive or ())
    for n in names:
        if not isinstance(n, str) or not n.isidentifier() or n.startswith("__") or "__" in n:
            raise ValueError(f"positive names must be symbol names (identifiers); got {n!r}")
    if isinstance(expr, str):

        expr = parse(expr, assumptions={n: {"positive": True} for n in names})
    if not names:
        return expr, wrt
    present = _names_of(expr)
    missing = [n for n in names if n not in present]
    if missing:
        raise ValueError(f"--positive names {', '.join(missing)}, which the expression does not contain "
                         f"(its symbols: {', '.join(sorted(present)) or 'none'})")
    subs = {}
    for n in names:
        old = present[n]
        if isinstance(old, sp.Symbol) and not old.is_positive:
            subs[old] = sp.Symbol(n, positive=True)
        elif isinstance(old, sp.IndexedBase) and not old.label.is_positive:
            subs[old] = sp.IndexedBase(n, positive=True)
    if subs:
        expr = expr.xreplace(subs)
        if isinstance(wrt, sp.Symbol) and wrt in subs:
            wrt = subs[wrt]
        elif isinstance(wrt, sp.Indexed) and wrt.base in subs:
            wrt = subs[wrt.base][wrt.indices]
        elif isinstance(wrt, (sp.Basic, sp.MatrixBase)):
            wrt = wrt.xreplace(subs)
    return expr, wrt


def _symbols_by_name(derivation: Derivation) -> dict:
    names = sampling.by_name(derivation.expr, *derivation.results)
    for w in derivation.wrt:
        for k, v in sampling.by_name(w).items():
            names.setdefault(k, v)
    return names


def _as_claim(claim: Any, symbols: Mapping[str, sp.Basic]) -> Any:
    if isinstance(claim, str):

        text = claim.strip()
        if "\\" in text or "{" in text:
            return parse_latex(text, symbols=symbols)
        try:
            return parse(text, symbols=dict(symbols))
        except ParseError as exc:
            if "malformed" not in str(exc):
                raise
            try:  # not Python syntax: LaTeX's implicit products (2 W x)
                return parse_latex(text, symbols=symbols)
            except ParseError:
                raise exc from None
    if isinstance(claim, (list, tuple)):
        return sp.Matrix([_as_claim(c, symbols) for c in claim])
    if isinstance(claim, (sp.Basic, sp.MatrixBase)):
        return claim
    if isinstance(claim, bool):
        raise TypeError("a claim is a SymPy expression, text (Python or LaTeX) or a NumPy function; got a bool")
    if isinstance(claim, (int, float)):
        if isinstance(claim, float) and not math.isfinite(claim):
            raise ValueError(f"the claim {claim} is not a finite number")
        return sp.Float(claim) if isinstance(claim, float) else sp.Integer(claim)
    raise TypeError(f"a claim is a SymPy expression, text (Python or LaTeX) or a NumPy function; got {type(claim).__name__}")


def _refuse_non_finite(claim) -> None:
    if isinstance(claim, (sp.Basic, sp.MatrixBase)) and claim.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        raise ValueError("the claim is not a finite expression (it divides by zero or is undefined: "
                         "SymPy reads it as zoo/nan/oo)")


def _has_heaviside(obj) -> bool:
    return isinstance(obj, (sp.Basic, sp.MatrixBase)) and obj.has(sp.Heaviside)


def _kink_convention(obj):
    """Heaviside(u) with SymPy's H(0) = 1/2 (or H(0) = 0) → the step 1[u > 0]."""
    if not _has_heaviside(obj):
        return obj
    return obj.replace(lambda n: isinstance(n, sp.Heaviside) and (len(n.args) == 1 or n.args[1] in (sp.S.Half, 0)),
                       lambda n: step(n.args[0]))


def _equal_matrix_expressions(a, b, budget: Budget) -> bool:
    zero = sp.ZeroMatrix(*b.shape)
    if (a - b).doit() == zero:
        return True
    out = budget.run("proof (matrix expand)", lambda: sp.expand((a - b).doit()).doit(), cap=max(budget.remaining() / 4, 0.05))
    return out is not None and (out == zero or out == 0)


# --- shapes: matrix expressions written out at small sizes -----------------------------------------------
def _is_matrix(obj) -> bool:
    return isinstance(obj, (sp.MatrixBase, sp.MatrixExpr))


def _explicit_pair(claim, truth, expr):
    """(entry pairs, the sizes chosen for symbolic dimensions, a note) — or the reason the shapes
    differ. MatrixSymbols become matrices of entry symbols named W[i, j]."""
    mats = sorted({m for obj in (claim, truth, expr) if isinstance(obj, sp.Basic) for m in obj.atoms(sp.MatrixSymbol)},
                  key=lambda m: m.name)
    dims = sorted({d for m in mats for d in m.shape if isinstance(d, sp.Symbol)}, key=lambda d: d.name)
    sizes = {d: sp.Integer(2 + i % 3) for i, d in enumerate(dims)}
    entries = {}
    for m in mats:
        r, c = (int(sp.sympify(x, strict=True).xreplace(sizes)) for x in m.shape)
        entries[m.xreplace(sizes)] = sp.ImmutableMatrix(r, c, lambda i, j, n=m.name: sp.Symbol(f"{n}[{i}, {j}]", real=True))

    def explicit(obj):
        if not isinstance(obj, (sp.Basic, sp.MatrixBase)) or not (mats or _is_matrix(obj)):
            return obj

        obj = obj.xreplace(sizes)
        out = explicit_entries(obj.xreplace(entries))
        if isinstance(out, sp.MatrixExpr) and not isinstance(out, sp.MatrixBase):
            out = out.as_explicit()
        return out

    try:
        c, t = explicit(claim), explicit(truth)
    except (TypeError, ValueError, sp.ShapeError, AttributeError, NotImplementedError) as exc:
        raise ValueError(f"cannot write the claim out entry by entry: {exc}") from None
    note = None
    if isinstance(t, sp.MatrixBase) and isinstance(c, sp.MatrixBase):
        if c.shape != t.shape:
            if c.shape == t.T.shape and 1 in c.shape:
                c, note = c.T, "the claim is the transpose of the derivative's vector shape (read as the same vector)"
            else:
                return (f"the claim has shape {_shape(claim, c)} but the derivative has shape {_shape(truth, t)}")
        pairs = list(zip(c, t))
    elif isinstance(t, sp.MatrixBase):
        if t.shape == (1, 1):
            pairs = [(c, t[0, 0])]
        else:
            return f"the derivative is a {_shape(truth, t)} matrix but the claim is a scalar"
    elif isinstance(c, sp.MatrixBase):
        if c.shape == (1, 1):
            pairs = [(c[0, 0], t)]
        else:
            return f"the derivative is a scalar but the claim is a {_shape(claim, c)} matrix"
    else:
        pairs = [(c, t)]
    return pairs, {d.name: int(v) for d, v in sizes.items()}, note


def _shape(obj, explicit) -> str:
    shape = obj.shape if _is_matrix(obj) else explicit.shape
    return "×".join(str(d) for d in shape)


# --- proof ----------------------------------------------------------------------------------------
MAX_EXPANDED_TERMS = 10_000  # a numeric sum longer than this is never expanded by a proof


def _huge_sum(expr: sp.Basic) -> bool:
    """Whether ``expr`` holds a sum with numeric bounds over more than MAX_EXPANDED_TERMS terms
    (SymPy's simplify would expand it term by term, where no time bound can interrupt it)."""
    for s in expr.atoms(sp.Sum):
        for _, low, high in s.limits:
            span = high - low
            if span.is_number and span > MAX_EXPANDED_TERMS:
                return True
    return False


def _prove(pairs, budget: Budget) -> bool:
    if any(_huge_sum(e) for pair in pairs for e in pair):
        budget.hits.append(f"proof: skipped, a sum over more than {MAX_EXPANDED_TERMS} terms is not expanded")
        return False
    for c, t in pairs:
        diff = budget.run("proof (elementary forms)", lambda c=c, t=t: elementary(c) - elementary(t),
                          cap=max(budget.remaining() / 2, 0.05))
        if diff is None:
            return False
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
def _alternatives(derivation, pairs, sized) -> list:
    """Plain SymPy's derivative entries (``raw``), an equivalent form of the truth evaluated where
    the textbook form cancels beyond the evaluation's reach (far in the tails)."""
    raw = derivation.raws[0] if derivation.single and derivation.raws else None
    if raw is None or sized:
        return [None] * len(pairs)
    entries = list(raw) if isinstance(raw, sp.MatrixBase) else [raw]
    if len(entries) != len(pairs) or any(isinstance(e, sp.MatrixExpr) for e in entries):
        return [None] * len(pairs)
    return [_kink_convention(e) for e in entries]


def _refute(pairs, points, seed, budget, alternatives=None, prove=None):
    """("counterexample", info) | ("consistent", points evaluated[, note]) | ("unevaluable", why) |
    ("incomplete", points evaluated, points required, why) | ("proven",).

    Every point the policy asks for (moderate, breakpoints, far) is required: a point is *checked*
    when claim and truth were compared there, or when it lies outside the truth's domain. A point
    left unchecked (the budget ran out before it, or its values could not be resolved) makes the
    refutation incomplete — never "consistent" on the near points alone.

    A first pass gives each point a share of the budget (a point that costs more is deferred, so
    that one slow point does not hide a counterexample at the next); then ``prove()`` (when given:
    its True ends the refutation as "proven"); then the deferred points get what remains."""
    rng = np.random.default_rng(seed)
    alternatives = alternatives or [None] * len(pairs)
    plain = [(elementary(c), elementary(t), elementary(a) if a is not None else None)
             for (c, t), a in zip(pairs, alternatives)]
    tol = mpmath.mpf(sampling.claim_tolerance([pair[0] for pair in plain], [pair[1] for pair in plain]))
    rounds = _sizes_and_indices(plain, rng)
    if isinstance(rounds, str):
        return ("unevaluable", rounds)
    tasks, unreached = [], 0
    for concrete in rounds:
        syms = _inputs(concrete)
        exprs = [e for pair in concrete for e in pair[:2]]
        chosen = budget.run("sample points (breakpoints)", lambda: sampling.points(syms, exprs, points, rng),
                            cap=max(budget.remaining() / 4, 0.05))
        if chosen is None:  # finding the breakpoints ran out of time: the random points alone, and
            unreached += 1  # the breakpoints count as unchecked
            chosen = budget.run("sample points", lambda: sampling.points(syms, [], points, rng),
                                cap=max(budget.remaining() / 4, 0.05)) or []
        tasks += [(concrete, point) for point in chosen]
    count = {"evaluated": 0, "outside": 0, "unresolved": 0}
    kink_only: list = []
    _progress(planned=len(tasks) + unreached)

    def check(concrete, point, cap):
        """None (done), "deferred" (out of time), or the counterexample."""
        outcome = Budget(cap).run("refutation", lambda: _compare(concrete, point, tol))
        if outcome is None:
            return "deferred"
        if outcome in ("outside", "unresolved"):
            count[outcome] += 1
            return None
        count["evaluated"] += 1
        _progress(checked=count["evaluated"] + count["outside"])
        if outcome != "equal" and any(isinstance(v, sp.Basic) for v in point.values()):
            # a breakpoint itself: a different convention there (relu'(0)) is not a mistake
            kink_only.append((point, outcome))
            return None
        if outcome == "equal":
            return None
        k, cv, tv, *bounded = outcome
        truth_digits = _digits(tv) if not bounded else f"within ±{mpmath.nstr(bounded[0], 3)} of 0 (interval bound)"
        claim_digits = _digits(cv) if not bounded else f"{_digits(cv)} (± {mpmath.nstr(bounded[0], 3)})"
        return ("counterexample", {
            "point": {str(s): _number(v) for s, v in point.items()},
            "claim": _real(cv), "truth": _real(tv),
            "claim_digits": claim_digits, "truth_digits": truth_digits,
            "entry": k if len(concrete) > 1 else None, "evaluated": count["evaluated"]})

    deferred = []
    for i, (concrete, point) in enumerate(tasks):  # first pass: a share of the budget each
        share = budget.remaining() * (0.5 if prove is not None else 1.0) / max(len(tasks) - i, 1)
        out = check(concrete, point, max(2 * share, 0.02)) if budget.remaining() > 0 else "deferred"
        if out == "deferred":
            deferred.append((concrete, point))
        elif out is not None:
            return out
    if prove is not None and prove():
        return ("proven",)
    for concrete, point in deferred:  # the deferred points, with what remains
        out = check(concrete, point, budget.remaining()) if budget.remaining() > 0 else "deferred"
        if out == "deferred":
            unreached += 1
        elif out is not None:
            return out
    evaluated, outside, unresolved = count["evaluated"], count["outside"], count["unresolved"]
    if budget.remaining() <= 0 and unreached:
        budget.hits.append(f"refutation: the {budget.seconds:g} s budget ran out before {unreached} sample points")
    if evaluated == 0 and not (unresolved or unreached):
        return ("unevaluable", "no point could be evaluated (every point is outside the domain)")
    if unresolved or unreached:
        why = []
        if unreached:
            why.append(f"the budget ran out before {unreached}")
        if unresolved:
            why.append(f"{unresolved} could not be evaluated to {DIGITS} digits")
        return ("incomplete", evaluated, evaluated + outside + unresolved + unreached,
                f"{evaluated + outside} of {evaluated + outside + unresolved + unreached} sample points checked "
                f"({'; '.join(why)})")
    if kink_only:
        where = ", ".join(f"{s} = {_show(_number(v))}" for s, v in kink_only[0][0].items() if isinstance(v, sp.Basic))
        return ("consistent", evaluated, f"claim and truth differ only at breakpoints (first at {where}): a "
                "different convention where the derivative does not exist, not judged a mistake")
    return ("consistent", evaluated)


def _compare(concrete, point, tol):
    """"equal", "outside" (the point lies outside the truth's domain: complex or undefined there),
    "unresolved" (an entry could not be evaluated to the digits asked) or (entry, claim value,
    truth value[, bound])."""
    subs = {s: sampling.exact(v) for s, v in point.items()}
    status = "outside"
    for k, (c, t, a) in enumerate(concrete):
        truth_form = t
        tv = sampling.value(t, subs)
        if tv is None and a is not None:  # the textbook form cancels here: plain SymPy's form
            truth_form, tv = a, sampling.value(a, subs)
        if isinstance(tv, mpmath.mpc):  # outside the truth's (real) domain
            continue
        if tv is None and _no_value(t, subs) and (a is None or _no_value(a, subs)):
            continue  # the derivative does not exist here (a division by zero)
        cv = sampling.value(c, subs)
        dv = None
        if cv is None or tv is None:  # terms the claim shares with the truth cancel before evaluation
            dv = sampling.value(c - t, subs, maxn=DIFF_MAXN)
            if dv is None and truth_form is not t:
                dv = sampling.value(c - truth_form, subs, maxn=DIFF_MAXN)
            if isinstance(dv, mpmath.mpc):
                dv = None
        if tv is None:  # the truth cancels beyond reach here
            if dv is not None and dv == 0:  # claim − truth is exactly 0 at the point
                status = "equal" if status != "unresolved" else status
                continue
            if dv is not None and cv is not None:  # |truth| ≤ |claim| + |claim − truth| decides
                margin = 1 + mpmath.mpf(10) ** (5 - DIGITS)
                if abs(dv) * margin < tol * max(abs(cv) - abs(dv), 0) or (  # equal, or within float64 rounding
                        tol > sampling.EXACT_RTOL and _within_rounding(abs(dv), tol, mpmath.mpf(0), c, t, subs)):
                    status = "equal" if status != "unresolved" else status
                    continue
                if abs(dv) > tol * (abs(cv) + abs(dv)) * margin:
                    return (k, cv, cv - dv)
            # an interval bound |truth| ≤ B may still decide
            B = sampling.bound(t, subs) if dv is not None else None
            if B is None and dv is not None and a is not None:
                B = sampling.bound(a, subs)
            if B is not None and abs(dv) * (1 - tol) > tol * B and abs(dv) > 2 * B:
                return (k, dv, mpmath.mpf(0), B)
            status = "unresolved"
            continue
        if cv is None and dv is not None:
            cv = tv + dv
        if cv is None:
            if _undefined(c, subs):  # the claim has no value where the derivative has one
                return (k, mpmath.mpf("nan"), tv)
            status = "unresolved"
            continue
        gap = abs(dv) if dv is not None else abs(cv - tv)
        scale = max(abs(cv), abs(tv))
        if tol > sampling.EXACT_RTOL and _same_in_float64(cv, tv):
            status = "equal" if status != "unresolved" else status  # a float claim: both round to 0 (or
            continue  # overflow alike) in float64, where a floating-point statement has no other meaning
        if gap > tol * scale:
            if tol > sampling.EXACT_RTOL and _within_rounding(gap, tol, scale, c, t, subs):
                status = "equal" if status != "unresolved" else status
                continue  # within float64 rounding of the terms' sizes and of the floats' effect
            return (k, cv, tv)
        status = "equal" if status != "unresolved" else status
    return status


def _no_value(expr, subs) -> bool:
    """Whether SymPy's exact arithmetic finds zoo/nan in ``expr`` at the point (a division by zero:
    the derivative does not exist there); any failure to decide is no such finding."""
    try:
        return _exact_floats_at(expr, subs).has(sp.zoo, sp.nan)
    except Exception:  # noqa: BLE001 - no exact opinion
        return False


def _undefined(expr, subs) -> bool:
    """Whether ``expr`` has no value at the point (a division by zero: zoo/nan appear)."""
    try:
        return _exact_floats_at(expr, subs).has(sp.zoo, sp.nan)
    except (TypeError, ValueError, ZeroDivisionError):
        return True


def _exact_floats_at(expr, subs):
    return sampling.exact_floats(expr).xreplace(subs)


TINY = mpmath.mpf(2) ** -1075  # below it, a number rounds to 0 in float64 (half the smallest subnormal)
HUGE = mpmath.mpf(np.finfo(np.float64).max)


def _same_in_float64(a, b) -> bool:
    """Whether a and b are the same float64: both round to 0, or both overflow with one sign."""
    if abs(a) < TINY and abs(b) < TINY:
        return True
    return abs(a) > HUGE and abs(b) > HUGE and mpmath.sign(a) == mpmath.sign(b)


def _within_rounding(gap, tol, scale, c, t, subs) -> bool:
    """Whether a floating-point claim's difference ``gap`` is float64 rounding: at most ``tol`` times
    the sizes of the terms (a cancellation) or the first-order effect of rounding its float constants,
    Σ_f |f · ∂expr/∂f| (a float in an exponent e^{0.08943 x³} at x = −110 moves the value by 10⁵ ε)."""
    size = max(scale, _term_scale(c, subs), _term_scale(t, subs))
    if gap <= tol * size:
        return True
    if gap > ROUNDING_AT_MOST * size:  # a difference no float64 rounding makes: no need to look closer
        return False
    return gap <= tol * max(_float_sensitivity(c, subs), _float_sensitivity(t, subs))


def _float_sensitivity(expr, subs):
    """|Σ_f f · ∂expr/∂f| over the Float constants f of ``expr`` at the point, by a central difference
    of the value with every f scaled by 1 ± 10⁻¹² (values to 30 digits leave 18 for the difference;
    0 when it cannot be evaluated: no excuse is made then)."""
    floats = expr.atoms(sp.Float)
    if not floats:
        return mpmath.mpf(0)
    delta = sp.Rational(1, 10 ** 12)
    sides = [sampling.value(expr.xreplace({f: sp.Rational(f) * (1 + s * delta) for f in floats}), subs)
             for s in (1, -1)]
    if any(v is None or isinstance(v, mpmath.mpc) for v in sides):
        return mpmath.mpf(0)
    return abs(sides[0] - sides[1]) / (2 * mpmath.mpf(10) ** -12)


def _term_scale(expr, subs):
    terms = sp.Add.make_args(expr)
    total = mpmath.mpf(0)
    for term in terms:
        v = sampling.value(term, subs)
        if v is not None:
            total += abs(v)
    return total


def _sizes_and_indices(plain, rng):
    """Rounds of concrete pairs: sums over a symbolic size written out at n = 4 (numeric sums up to
    MAX_TERMS terms), free integer indices drawn from 1..4 (two draws)."""
    sizes = {lim[2] for pair in plain for node in pair[:2] for sm in node.atoms(sp.Sum) for lim in sm.limits
             if isinstance(lim[2], sp.Symbol)}
    free_ints = {x for pair in plain for node in pair[:2] for x in node.free_symbols
                 if isinstance(x, sp.Symbol) and x.is_integer and x not in sizes}
    if not sizes and not free_ints and not any(node.has(sp.Sum) for pair in plain for node in pair[:2]):
        return [plain]
    n = 4
    rounds = []
    for _ in range(2 if free_ints else 1):
        subs = {s: sp.Integer(n) for s in sizes}
        subs.update({x: sp.Integer(int(rng.integers(1, n + 1))) for x in free_ints})
        out = []
        for c, t, _ in plain:
            pair = []
            for e in (c.xreplace(subs), t.xreplace(subs)):
                for sm in e.atoms(sp.Sum):
                    for _, lo, hi in sm.limits:
                        span = hi - lo
                        if not span.is_number:
                            return "a sum whose limits are not numbers cannot be evaluated"
                        if span + 1 > MAX_TERMS:
                            return f"a sum of {span + 1} terms is not written out (at most {MAX_TERMS})"
                pair.append(e.replace(lambda x: isinstance(x, sp.Sum), lambda x: x.doit()))
            out.append((*pair, None))
        rounds.append(out)
    return rounds


def _number(v):
    """A point's coordinate as a plain real number (an int for integers)."""
    if isinstance(v, (int, np.integer)) or (isinstance(v, sp.Integer)):
        return int(v)
    return float(v)


def _real(z):
    if isinstance(z, mpmath.mpc):
        return str(complex(z))
    return float(z)


def _digits(z) -> str:
    if isinstance(z, mpmath.mpc):
        return f"{mpmath.nstr(z.real, 25)} + {mpmath.nstr(z.imag, 25)}i"
    return mpmath.nstr(z, 25)


def _inputs(concrete) -> list:
    """The scalar inputs of the pairs: symbols and indexed entries x[1] (not their bases' labels)."""
    nodes = [e for pair in concrete for e in pair if e is not None]
    indexed = {i for e in nodes for i in e.atoms(sp.Indexed)}
    labels = {i.base.label for i in indexed}
    scalars = {s for e in nodes for s in e.free_symbols if isinstance(s, sp.Symbol) and s not in labels}
    return sorted(scalars, key=str) + sorted(indexed, key=str)


def _count(n: int) -> str:
    return f"{n} point" + ("" if n == 1 else "s")


def _show(v) -> str:
    return repr(v) if isinstance(v, float) else str(v)


# --- claims as NumPy functions ----------------------------------------------------------------------
FLOAT_POLICY = sampling.Policy(decades=(-4.0, 4.0), at_kink=False)


def _verify_callable(derivation, fn, points, seed, started) -> Verdict:
    if derivation.is_matrix:
        raise SymgradError("NumPy claims for matrix-symbol derivatives: compare with symgrad.check_grad")
    compiled = derivation.compile()
    rng = np.random.default_rng(seed)
    syms = derivation.free_symbols()
    results = [derivation.result] if derivation.single else list(derivation.results)
    tried = 0
    for k, point in enumerate(sampling.points(syms, [derivation.expr, *results], points, rng, policy=FLOAT_POLICY)):
        kwargs = {s.name: (float(v) if not isinstance(v, int) else v) for s, v in point.items()}
        truth = compiled(**{k2: v for k2, v in kwargs.items() if k2 in compiled.params})
        truth_arr = np.concatenate([np.asarray(t, dtype=float).reshape(-1) for t in
                                    (truth if isinstance(truth, tuple) else (truth,))])
        if not np.all(np.isfinite(truth_arr)):
            continue  # beyond float64's range here
        try:
            got = fn(**kwargs)
        except TypeError:
            got = fn(*[kwargs[s.name] for s in syms])
        got_arr = np.asarray(got, dtype=float).reshape(-1)
        if got_arr.shape != truth_arr.shape:
            raise ValueError(f"the claimed function returned {got_arr.size} values; the derivative has {truth_arr.size}")
        tried += 1
        scale = max(np.abs(truth_arr).max(), 1e-300)
        rel = np.abs(got_arr - truth_arr) / np.maximum(np.abs(truth_arr), sampling.FLOOR * scale)
        if not np.all(np.isfinite(got_arr)) or rel.max() > 1e-9:
            i = int(np.nanargmax(np.where(np.isfinite(rel), rel, np.inf)))
            return Verdict("refuted", fn, derivation.result, f"float64 evaluation at {tried} points",
                           time.perf_counter() - started,
                           {"point": kwargs, "claim": float(got_arr[i]), "truth": float(truth_arr[i]),
                            "entry": i if got_arr.size > 1 else None}, [], tried)
    if not tried:
        return Verdict("undecided", fn, derivation.result, "no point could be evaluated in float64",
                       time.perf_counter() - started, None, [], 0)
    return Verdict("numerically-consistent", fn, derivation.result,
                   f"agrees at {tried} points (float64, relative error ≤ 1e-9)",
                   time.perf_counter() - started, None, [], tried)
