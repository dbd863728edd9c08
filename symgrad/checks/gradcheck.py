"""Numerical gradient checking that catches what gradcheck misses.

``check_grad(f, grad, *inputs)`` compares an analytic gradient with numerical derivatives,
coordinate by coordinate:

* **steps per coordinate, per dtype**: h = ε^{1/3}·max(1, |x|) for central differences, with a
  Richardson extrapolation D = (4 D(h/2) − D(h))/3 whose difference |D(h/2) − D(h)| is an
  estimate of the numerical error; where the function accepts complex input and agrees with its
  real evaluation, the complex step Im f(x + i·h)/h (no cancellation, h = 1e-30) is used instead;
* **relative error with a floor tied to the gradient's scale**: |a − n| / max(|n|, τ·max|n|),
  with τ = 1e-7, never an absolute tolerance that swallows small entries and never a tolerance
  that grows with the size; a coordinate fails when that error exceeds rtol (1e-6 for float64
  central differences, :data:`COMPLEX_RTOL` = 1e-9 for a float64 complex step, 1e-3 for float32)
  *and* the difference exceeds the numerical error estimate. The report's ``resolution`` is the
  smallest difference the check could see anywhere, as a fraction of the gradient's largest entry
  (``max(tolerance · floor, 4 · error estimate) / max|g|`` over the entries), and its verdict says so;
* **non-finite values**: an analytic entry that is nan or ±inf where the numerical derivative is
  finite (or the reverse) fails, with the entries named; ``None`` for a gradient is an error;
* **kinks**: where the one-sided differences disagree at two step sizes (ReLU, max, hinge), the
  coordinate is reported as near a kink and accepted when the analytic value lies between the
  one-sided derivatives (as every framework convention at a kink does);
* **diagnosis**: a constant factor (a missing 2 or 1/N), a sign flip, a transpose, a single wrong
  entry, or a missing term;
* **large inputs**: ``fast=True`` checks random directions ⟨∇f, v⟩ and bisects the coordinates to
  locate the failing ones.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable

import numpy as np

from .tolerance import FLOOR, directions as _rademacher, latex_number, rtol_for

__all__ = ["check_grad", "GradReport", "Coordinate", "COMPLEX_RTOL"]
COMPLEX_RTOL = 1e-9  # a float64 complex step is exact to rounding: relative errors down to this are seen
# FLOOR (of the gradient's largest entry) and RTOL (per dtype) are the sampling policy's, shared
# with cross_check and verify's NumPy claims


@dataclass
class Coordinate:
    """One checked entry of one input."""

    input: int
    index: tuple
    analytic: float
    numeric: float
    rel_error: float
    error_estimate: float
    near_kink: bool = False
    method: str = "central"


@dataclass
class GradReport:
    """The outcome of :func:`check_grad` (``ok``, worst coordinates, diagnosis)."""

    ok: bool
    max_rel_error: float
    worst: list[Coordinate]
    failures: list[Coordinate]
    kinks: list[Coordinate]
    diagnosis: list[str]
    checked: int
    mode: str
    rtol: float
    coordinates: list[Coordinate] = field(default_factory=list, repr=False)
    # the smallest difference the check could see, as a fraction of the gradient's largest entry: the
    # largest over the entries (not at a kink) of max(tolerance · floor, 4 · numerical error) / max|g|
    resolution: float = float("nan")

    def __str__(self) -> str:
        head = "gradient check passed" if self.ok else "gradient check FAILED"
        lines = [f"{head}: {self.checked} coordinates ({self.mode}), max relative error "
                 f"{self.max_rel_error:.2e} (rtol {self.rtol:g}; "
                 f"resolution {self.resolution:.0e} × max|g|)"]
        for c in self.worst[:5]:
            lines.append(f"  input {c.input} {c.index}: analytic {c.analytic:.10g}, numeric {c.numeric:.10g}, "
                         f"rel. error {c.rel_error:.2e}{' (near a kink)' if c.near_kink else ''}")
        if self.kinks:
            lines.append(f"  {len(self.kinks)} coordinate(s) near a kink, judged by their one-sided derivatives: "
                         + ", ".join(f"input {c.input} {c.index}" for c in self.kinks[:5]))
        lines += [f"  diagnosis: {d}" for d in self.diagnosis]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        """Markdown with math (Jupyter prefers Markdown to LaTeX)."""
        rel = r"\le" if self.ok else ">"
        head = "gradient check passed" if self.ok else "gradient check FAILED"
        lines = [f"**{head}** — {self.checked} coordinates ({self.mode})", "",
                 rf"$$\max_i \frac{{|g_i - \hat g_i|}}{{\max(|\hat g_i|,\ 10^{{-7}}\max_j|\hat g_j|)}} = "
                 rf"{latex_number(self.max_rel_error)} \;{rel}\; {latex_number(self.rtol)}$$", ""]
        for c in self.worst[:5]:
            lines.append(f"- input {c.input} {c.index}: analytic ${c.analytic:.10g}$, numeric ${c.numeric:.10g}$, "
                         f"rel. error ${latex_number(c.rel_error)}${' (near a kink)' if c.near_kink else ''}")
        lines += [f"- diagnosis: {d}" for d in self.diagnosis]
        return "\n".join(lines)

    def _repr_latex_(self) -> str:
        rel = r"\le" if self.ok else ">"
        return rf"$\text{{max relative error}} = {latex_number(self.max_rel_error)} \;{rel}\; {latex_number(self.rtol)}$"




# --- the checker ----------------------------------------------------------------------------------
def check_grad(f: Callable[..., Any], grad: Callable[..., Any], *inputs: Any, rtol: float | None = None,
               fast: bool | None = None, directions: int = 8, seed: int = 0,
               complex_step: bool | None = None) -> GradReport:
    r"""Check ``grad`` against numerical derivatives of ``f`` at ``inputs``.

    .. math:: \text{err}_i = \frac{|g_i - \hat g_i|}{\max(|\hat g_i|,\ 10^{-7}\max_j|\hat g_j|)}

    ``f(*inputs)`` returns a scalar; ``grad(*inputs)`` one array per input (a tuple, or one array
    for one input), each of its input's shape. ``fast`` (default: more than 4096 coordinates)
    checks random directions and bisects to the failing coordinates. ``complex_step``: None
    tries it where ``f`` accepts complex input.
    """
    if not inputs:
        raise ValueError("check_grad needs at least one input: check_grad(f, grad, x, ...)")
    xs = [_as_array(x, i) for i, x in enumerate(inputs)]
    g = grad(*[x.copy() for x in xs])
    gs = list(g) if isinstance(g, (tuple, list)) else [g]
    if len(gs) != len(xs):
        raise ValueError(f"grad returned {len(gs)} arrays for {len(xs)} inputs; return one per input (a tuple)")
    for i, gi in enumerate(gs):
        if gi is None:
            raise ValueError(f"grad returned None for input {i}; return an array of its shape (zeros if it "
                             "has no effect)")
    gs = [np.asarray(gi) for gi in gs]
    for i, (x, gi) in enumerate(zip(xs, gs)):
        if not (np.issubdtype(gi.dtype, np.number) or gi.dtype == bool):
            raise ValueError(f"grad's array {i} is not numeric (dtype {gi.dtype}); return one array of numbers "
                             "per input")
        if gi.shape != x.shape:
            raise ValueError(f"grad's array {i} has shape {gi.shape} but input {i} has shape {x.shape}")
    _check_scalar(f(*xs))
    dtype = np.result_type(*[gi.dtype for gi in gs if np.issubdtype(gi.dtype, np.floating)] or [np.float64])
    given, rtol = rtol, rtol_for(dtype) if rtol is None else rtol
    total = sum(x.size for x in xs)
    fast = total > 4096 if fast is None else fast
    evaluator = _Evaluator(f, xs, complex_step)
    tight = COMPLEX_RTOL if given is None and evaluator.eps <= float(np.finfo(np.float64).eps) and \
        dtype == np.float64 else None
    if fast:
        return _fast_check(evaluator, xs, gs, rtol, directions, np.random.default_rng(seed), tight)
    coords = []
    for i, x in enumerate(xs):
        for index in np.ndindex(x.shape):
            coords.append(evaluator.derivative(i, index, float(gs[i][index])))
    return _report(coords, gs, rtol, "every coordinate", tight)


def _as_array(x, i) -> np.ndarray:
    arr = np.array(x, dtype=float) if np.isscalar(x) else np.array(x)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr


def _check_scalar(value) -> float:
    if value is None or isinstance(value, (tuple, list, dict, str, bytes)):
        raise ValueError(f"f must return a scalar loss, got {type(value).__name__}; return the loss only "
                         "(a number or a 0-d array)")
    arr = np.asarray(value)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"f must return a scalar loss, got {type(value).__name__}")
    if arr.size != 1:
        raise ValueError(f"f must return a scalar, got an array of shape {arr.shape}; sum or average it first")
    return float(arr.real.reshape(()))


class _Evaluator:
    """Numerical derivatives of f along coordinates or directions, in float64 where f allows."""

    def __init__(self, f, xs, complex_step):
        self.f = f
        # numerical derivatives in float64 (float32 code given float64 arrays computes in float64)
        self.xs = [x.astype(np.float64) for x in xs]
        self.calls = 0
        # the step follows the precision f actually computes in (float32 code may cast back)
        out = np.asarray(f(*[x.copy() for x in self.xs]))
        self.eps = float(np.finfo(out.dtype if np.issubdtype(out.dtype, np.floating) else np.float64).eps)
        self.complex_ok = self._complex_works() if complex_step is None else complex_step
        self.sizes = [float(np.abs(x).mean()) if x.size else 0.0 for x in self.xs]  # typical |x| per input

    def value(self, xs) -> float:
        self.calls += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _check_scalar(self.f(*xs))

    def _complex_works(self) -> bool:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                zs = [x.astype(np.complex128) for x in self.xs]
                out = np.asarray(self.f(*zs))
            base = self.value(self.xs)
            return np.iscomplexobj(out) and abs(out.real.reshape(()) - base) <= 1e-12 * max(1.0, abs(base))
        except Exception:  # any failure: the function does not take complex input
            return False

    def shifted(self, i, index, delta):
        xs = [x.copy() for x in self.xs]
        xs[i] = xs[i].astype(np.result_type(xs[i].dtype, type(delta)))
        xs[i][index] += delta
        return xs

    def derivative(self, i, index, analytic) -> Coordinate:
        x0 = float(self.xs[i][index])
        eps = self.eps
        h = eps ** (1 / 3) * max(1.0, abs(x0))
        central = lambda step: (self.value(self.shifted(i, index, step)) - self.value(self.shifted(i, index, -step))) / (2 * step)  # noqa: E731
        d1, d2 = central(h), central(h / 2)
        rich = (4 * d2 - d1) / 3
        f0 = self.value(self.xs)
        rounding = 4 * eps * max(abs(f0), 1e-300) / (h / 2)  # what f's own rounding does to a difference
        err = abs(d2 - d1) + rounding + 4 * eps * abs(rich)

        def sides(step):
            return ((self.value(self.shifted(i, index, step)) - f0) / step,
                    (f0 - self.value(self.shifted(i, index, -step))) / step)

        # a kink is a jump in slope that stays as the step shrinks; curvature shrinks with it
        fwd_h, bwd_h = sides(h)
        fwd, bwd = sides(h / 8)
        noise = 64 * eps * max(abs(f0), 1e-300) / (h / 8)
        jump, jump_h = abs(fwd - bwd), abs(fwd_h - bwd_h)
        kink = jump > 0.5 * jump_h and jump > 100 * noise and jump > 1e-8 * max(abs(fwd), abs(bwd))
        numeric, method = rich, "central (Richardson)"
        if self.complex_ok and not kink:
            try:
                cs = np.asarray(self.f(*self.shifted(i, index, 1e-30j))).imag.reshape(()) / 1e-30
                if abs(cs - rich) <= 10 * err + 1e-5 * max(abs(rich), 1e-300):  # holomorphic here
                    # exact to rounding where f is holomorphic; never claimed closer than it agrees with
                    # the real differences (a non-holomorphic |·| inside would make it wrong)
                    # and never below what f's own value resolves: moving x by its size changes f by g·x,
                    # invisible under ε|f| (an analytic gradient computed in floats carries that much)
                    size = max(abs(x0), self.sizes[i]) or 1.0
                    numeric, method = float(cs), "complex step"
                    err = max(4 * eps * abs(cs), abs(cs - rich), 16 * eps * abs(f0) / size)
            except Exception:  # noqa: S110 - fall back to the central difference
                pass
        if kink:  # any value between the one-sided derivatives is a valid (sub)gradient there
            lo, hi = min(fwd, bwd), max(fwd, bwd)
            numeric = min(max(analytic, lo), hi)
            err = max(err, 8 * noise)
            method = "between the one-sided derivatives (near a kink)"
        return Coordinate(i, tuple(int(k) for k in index), analytic, float(numeric), 0.0, float(err), bool(kink), method)

    def directional(self, direction: list[np.ndarray]) -> tuple[float, float]:
        """(⟨∇f, v⟩ by a Richardson central difference, its error estimate)."""
        norm = np.sqrt(sum(float((d ** 2).sum()) for d in direction)) or 1.0
        eps = self.eps
        scale = max(1.0, max(float(np.abs(x).max()) if x.size else 0.0 for x in self.xs))
        h = eps ** (1 / 3) * scale / norm

        def at(step):
            xs = [x + step * d.astype(x.dtype) for x, d in zip(self.xs, direction)]
            return self.value(xs)

        d1 = (at(h) - at(-h)) / (2 * h)
        d2 = (at(h / 2) - at(-h / 2)) / h
        return (4 * d2 - d1) / 3, abs(d2 - d1) + 4 * eps * abs(d2)


# --- judging and diagnosis ----------------------------------------------------------------------------
def _report(coords: list[Coordinate], gs, rtol: float, mode: str, tight: float | None = None) -> GradReport:
    """Judge each coordinate: it fails when |a − n| / max(|n|, FLOOR·scale) exceeds its tolerance (rtol, or
    ``tight`` for a complex step) and 4× the numerical error estimate; a non-finite value on one side only
    (or on the numeric side) fails with rel_error inf."""
    finite = [abs(v) for c in coords for v in (c.numeric, c.analytic) if np.isfinite(v)]
    scale = max(finite + [1e-300])
    failures, resolution = [], 0.0
    for c in coords:
        floor = max(abs(c.numeric), FLOOR * scale)
        tol = tight if tight is not None and c.method == "complex step" else rtol
        if not (np.isfinite(c.analytic) and np.isfinite(c.numeric)):
            c.rel_error = 0.0 if c.analytic == c.numeric else float("inf")  # the same infinity is no error
            if c.rel_error:
                failures.append(c)
            continue
        diff = abs(c.analytic - c.numeric)
        c.rel_error = diff / floor
        if not c.near_kink:
            resolution = max(resolution, max(tol * floor, 4 * c.error_estimate) / scale)
        if c.rel_error > tol and diff > 4 * c.error_estimate:
            failures.append(c)
    worst = sorted(coords, key=lambda c: c.rel_error, reverse=True)
    return GradReport(ok=not failures, max_rel_error=worst[0].rel_error if worst else 0.0,
                      worst=worst[:10], failures=failures, kinks=[c for c in coords if c.near_kink],
                      diagnosis=_diagnose(coords, failures, gs, scale), checked=len(coords), mode=mode,
                      rtol=rtol, coordinates=coords, resolution=resolution or rtol)


def _diagnose(coords: list[Coordinate], failures: list[Coordinate], gs, scale: float) -> list[str]:
    if not failures:
        return []
    out: list[str] = []
    by_input: dict[int, list[Coordinate]] = {}
    for c in coords:
        by_input.setdefault(c.input, []).append(c)
    failing_inputs = sorted({c.input for c in failures})
    for i in failing_inputs:
        cs = by_input[i]
        fails = [c for c in failures if c.input == i]
        broken = [c for c in fails if not (np.isfinite(c.analytic) and np.isfinite(c.numeric))]
        if broken:
            side = [c for c in broken if not np.isfinite(c.analytic)]
            shown = ", ".join(f"{c.index} (analytic {c.analytic:g}, numeric {c.numeric:.6g})" for c in broken[:3])
            more = f" and {len(broken) - 3} more" if len(broken) > 3 else ""
            out.append(f"input {i}: {len(broken)} of {len(cs)} entries not finite: {shown}{more} — "
                       + ("the gradient is nan/inf where the numerical derivative is finite (an overflow, "
                          "0/0, or a missing value?)" if len(side) == len(broken) else
                          "the numerical derivative is not finite there (f is nan/inf near this point)"))
            continue
        a = np.array([c.analytic for c in cs])
        n = np.array([c.numeric for c in cs])
        big = np.abs(n) > 1e-3 * max(np.abs(n).max(), 1e-300)
        if len(fails) == 1 and (len(cs) > 1 or gs[i].size > 1):
            c = fails[0]
            out.append(f"input {i}: a single wrong entry at {c.index} (analytic {c.analytic:.6g}, "
                       f"numeric {c.numeric:.6g}); every other entry agrees")
            continue
        if big.sum() >= 2:
            ratios = a[big] / n[big]
            r = float(np.median(ratios))
            spread = float(np.abs(ratios - r).max())
            if r == 0 and spread == 0:
                out.append(f"input {i}: the gradient is 0 at every entry where the numerical derivative is not "
                           "(a term never added, or the gradient not returned)")
                continue
            # one factor for every entry: the ratios agree far more closely than they differ from 1
            if abs(r - 1) > 0 and spread <= 1e-3 * abs(r - 1) + 1e-9 * abs(r):
                if abs(r + 1) < 1e-6:
                    out.append(f"input {i}: the sign is flipped (analytic = −numeric)")
                else:
                    out.append(f"input {i}: off by a constant factor {_nice(r)} (analytic = {_nice(r)} × numeric)"
                               f"{_hint(r)}")
                continue
        shape = gs[i].shape
        if len(shape) == 2 and shape[0] == shape[1] and shape[0] > 1:
            A, Nm = a.reshape(shape), n.reshape(shape)
            if np.allclose(A.T, Nm, rtol=1e-5, atol=1e-7 * scale) and not np.allclose(A, Nm, rtol=1e-5, atol=1e-7 * scale):
                out.append(f"input {i}: the gradient is transposed (analytic.T matches the numeric gradient)")
                continue
        if not np.any(n):
            out.append(f"input {i}: the numerical derivative is 0 at every entry (the loss does not change with "
                       f"input {i} here) but {len(fails)} entries of the gradient are not: a term that should "
                       "vanish here (a missing mask or clip?)")
            continue
        rel = float(np.linalg.norm(a - n) / max(np.linalg.norm(n), 1e-300))
        out.append(f"input {i}: {len(fails)} of {len(cs)} entries wrong with no common factor — a missing or "
                   f"extra term (relative size of the difference {rel:.2g})")
    return out


def _nice(r: float) -> str:
    frac = Fraction(r).limit_denominator(64)
    return str(frac) if abs(float(frac) - r) < 1e-6 * max(1.0, abs(r)) else f"{r:.6g}"


def _hint(r: float) -> str:
    if abs(r - 2) < 1e-6 or abs(r - 0.5) < 1e-6:
        return " — a missing or extra 2 (as in d(x²)/dx = 2x)?"
    frac = Fraction(r).limit_denominator(10000)
    if abs(float(frac) - r) < 1e-6 and frac > 0 and frac != 1 and 1 in (frac.numerator, frac.denominator):
        return f" — a missing or extra 1/N with N = {max(frac.numerator, frac.denominator)} (a mean vs a sum)?"
    return ""


# --- fast mode: random directions, then bisection ---------------------------------------------------
def _fast_check(ev: _Evaluator, xs, gs, rtol, directions, rng, tight=None) -> GradReport:
    sizes = [x.size for x in xs]
    total = sum(sizes)
    bad_values = [(i, index) for i, g in enumerate(gs) for index in zip(*np.nonzero(~np.isfinite(g)))]
    if bad_values:  # a nan/inf entry poisons every direction: judge those entries themselves
        coords = [ev.derivative(i, tuple(index), float(gs[i][tuple(index)])) for i, index in bad_values[:16]]
        report = _report(coords, gs, rtol, f"non-finite entries ({len(bad_values)})", tight)
        report.checked = total
        if report.ok:  # the same infinities as the numerical derivative: the rest is not checked here
            report.ok = False
            report.diagnosis.append("the gradient has non-finite entries; the others were not checked")
        return report

    def direction_for(mask: np.ndarray) -> list[np.ndarray]:
        v = _rademacher(rng, total) * mask
        out, start = [], 0
        for x, n in zip(xs, sizes):
            out.append(v[start:start + n].reshape(x.shape))
            start += n
        return out

    flat_g = np.concatenate([g.reshape(-1).astype(np.float64) for g in gs])

    def bad(mask: np.ndarray) -> bool:
        for _ in range(2):
            d = direction_for(mask)
            numeric, err = ev.directional(d)
            analytic = float(np.dot(flat_g, np.concatenate([v.reshape(-1) for v in d])))
            scale = float(np.abs(flat_g * mask).sum()) or 1e-300
            if abs(analytic - numeric) > rtol * max(abs(numeric), FLOOR * scale) + 8 * err:
                return True
        return False

    everything = np.ones(total)
    failing = any(bad(everything) for _ in range(max(1, directions // 2)))
    located: list[int] = []
    if failing:
        stack = [np.arange(total)]
        while stack and len(located) < 16:
            idx = stack.pop()
            if len(idx) == 1:
                located.append(int(idx[0]))
                continue
            for half in (idx[: len(idx) // 2], idx[len(idx) // 2:]):
                mask = np.zeros(total)
                mask[half] = 1.0
                if bad(mask):
                    stack.append(half)
    coords = []
    for flat in sorted(located):
        i = int(np.searchsorted(np.cumsum(sizes), flat, side="right"))
        local = flat - (int(np.cumsum(sizes)[i - 1]) if i else 0)
        index = np.unravel_index(local, xs[i].shape)
        coords.append(ev.derivative(i, index, float(gs[i][index])))
    report = _report(coords, gs, rtol, f"random directions, bisected ({ev.calls} evaluations)", tight)
    report.checked = total
    if failing and not report.failures:  # directions disagreed but no single coordinate was found
        report.ok = False
        report.diagnosis.append("random directions disagree with the gradient, but no single coordinate "
                                "could be isolated: many small errors (re-run with fast=False)")
    return report
