r"""Check a hand-written NumPy backward against its forward: ``check_backward(forward, backward, wrt, **shapes)``.

``forward(**inputs)`` returns a scalar loss L; ``backward(**inputs)`` returns ∂L/∂w for each name w
of ``wrt``, in that order (one array when ``wrt`` has one name), each of the shape of w.

.. math:: \texttt{backward}(\ldots)_k \overset{?}{=} \frac{\partial\, \texttt{forward}(\ldots)}{\partial w_k}

**Symbolically** where both functions trace (:func:`symgrad.trace` with the same stand-ins): the
forward's derivation (``symgrad.derive``) is the truth and each traced gradient is compared with it —
*proven* when both matrix expressions expand to the same sum of monomials (:func:`proven_equal`, within
the time bound), which holds for every size. Whether proven or not, both are evaluated at concrete
inputs: the derivation compiled by symgrad (trusted only after it agrees with finite differences of the
forward) against the user's backward run on the same arrays. A difference beyond the tolerance refutes
the gradient, with the entry, the two values and the point. Without a proof, points beside the
breakpoints of the traced expressions are added (an input entry moved so that the argument of a step,
a max or a clip sits just below and just above its kink). Agreement without a proof is *consistent,
not proven* (never *proven*).

**Numerically** where the forward or the backward does not trace (item assignment, an unsupported
call): :func:`symgrad.check_grad` at four of the points (finite differences of the forward, with a
complex step where the forward takes complex input, and its diagnoses: a constant factor, a sign flip,
a transpose, a single entry, a missing term). Its verdict states the resolution it reached (the
smallest difference it could see, as a fraction of the gradient's largest entry).

**Points** (:data:`SCHEDULE`): moderate values in (−1, 1), then values drawn by :mod:`symgrad.sampling`
across magnitudes (log-uniform over 10⁻⁶ … 10⁶, both signs; each input its own magnitude in "mixed"
points), at the base sizes and at sizes larger by 1, 2 and 3. Symbolic sizes get distinct small values
(3, 4, 5, …, so that a transposition shows and a missing 1/N reads as 1/3); label arrays integers in
[0, C). A draw where the forward is not finite (a negative ε under a square root, log 0 after a softmax
underflows) is drawn again — scalars positive, then every input, decades narrowed — and is never
evidence; with no valid point at all the gradient is *undecided* (``ok`` is False, nothing is refuted).

**Tolerance**: relative, :data:`RTOL` of max(|expected|, FLOOR·max|expected|) for the symbolic method,
and never below the rounding noise of the two programs (their change when the inputs move by a few
ulps: a saturated softmax's gradient is noise) or float64's underflow. A nan or inf where the gradient is
finite is refuted. A gradient of the wrong shape is refuted with the reason; a backward returning the
wrong number of gradients, or None for one, and a forward that does not return one number, are
``ValueError`` s (usage errors, not claims about the math); other exceptions of the user's code propagate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .checks import sampling
from .errors import SymgradLimit
from .checks.gradcheck import GradReport, check_grad
from .printing.tex import latex
from .printing.plain import escape_text
from .tracing import check_arguments
from .tracing import Labels
from .derivation import derive
from .tracing import trace
from .simplify.budget import Budget
from .compiler.function import compile_expr

__all__ = ["check_backward", "BackwardReport", "GradientResult", "proven_equal", "expansion", "UntrustedDerivation",
           "user_error"]

SIZES = (3, 4, 5, 6, 7, 2, 8, 9)  # concrete values of symbolic sizes, in order of first appearance
RTOL = 1e-9  # float64 evaluations of the same math by two programs (the derivation, the user's backward)
METHODS = ("auto", "symbolic", "numeric")
# the sampling policy's magnitudes: moderate values in (−1, 1), and log-uniform over 10⁻⁶ … 10⁶ of both
# signs (a bug that shows only past a threshold: a hinge's margin, ReLU6's clip at 6)
POLICY = sampling.Policy(moderate=1.0, decades=(-6.0, 6.0))
# the points: (sizes added to the base sizes, the kind of every input's values); "mixed" gives each input
# its own kind. The first is moderate (the derivation is trusted there, against finite differences).
SCHEDULE = (
    (0, "moderate"), (0, "moderate"), (0, "wide"), (1, "moderate"), (0, "mixed"), (0, "tiny"), (2, "wide"),
    (1, "mixed"), (0, "wide"), (3, "moderate"),
)
NUMERIC_POINTS = (0, 2, 3, 4)  # the numeric method's points (finite differences cost more), from SCHEDULE
ATTEMPTS = 8  # draws per point until the forward is finite there (scalars, then every input, made positive)
# the noise of a value: its change when the inputs move by a few ulps (a saturated softmax's gradient is
# rounding noise: it jumps by its own size, and is no evidence either way)
JITTER = 64 * float(np.finfo(np.float64).eps)
# below the smallest normal number / ε float64 has lost its relative precision (products underflow to
# subnormals and 0): a difference smaller than this is underflow, not a wrong gradient
UNDERFLOW = float(np.finfo(np.float64).tiny / np.finfo(np.float64).eps)


# --- results ------------------------------------------------------------------------------------------
@dataclass
class GradientResult:
    """The judgement of one gradient ∂L/∂name returned by the backward."""

    name: str
    status: str  # "proven" | "consistent" (not proven; no counterexample) | "refuted" | "undecided" (no valid point)
    how: str  # how it was judged, one phrase
    shape: tuple = ()
    entry: tuple | None = None  # the located entry of a refuted gradient
    expected: float | None = None  # ∂L/∂name at that entry (the truth)
    got: float | None = None  # what the backward returned there
    reason: str | None = None  # why it is refuted without an entry (a wrong shape)
    diagnosis: list[str] = field(default_factory=list)
    max_rel_error: float = float("nan")  # over the entries, |got − expected| / max(|expected|, FLOOR·max|expected|)
    truth: Any = None  # the derivation's symbolic gradient (symbolic method)
    claim: Any = None  # the traced backward's symbolic gradient (symbolic method)
    report: GradReport | None = field(default=None, repr=False)  # check_grad's report (numeric method)

    @property
    def ok(self) -> bool:
        """Proven or consistent: never said of an undecided gradient."""
        return self.status in ("proven", "consistent")

    def line(self) -> str:
        """One line: ``W2: refuted at entry (1, 0): expected 2.5, got 1.25``."""
        if self.status == "consistent":
            return f"{self.name}: consistent, not proven ({self.how})"
        if self.status != "refuted":
            return f"{self.name}: {self.status} ({self.how})"
        if self.reason:
            return f"{self.name}: refuted: {self.reason}"
        where = f" at entry {self.entry}" if self.entry else ""  # a scalar has no entry to name
        return f"{self.name}: refuted{where}: expected {self.expected:.10g}, got {self.got:.10g} ({self.how})"


@dataclass
class BackwardReport:
    """The outcome of :func:`check_backward`: one :class:`GradientResult` per name of ``wrt``."""

    method: str  # "symbolic" | "numeric"
    gradients: list[GradientResult]
    sizes: dict[str, int]  # the concrete sizes of the numbers
    seconds: float
    notes: list[str] = field(default_factory=list)
    point: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # the concrete inputs

    @property
    def ok(self) -> bool:
        return all(g.ok for g in self.gradients)

    @property
    def max_rel_error(self) -> float:
        """The largest relative error of any gradient's entry (inf for a gradient of the wrong shape)."""
        return max((g.max_rel_error for g in self.gradients), default=0.0)

    @property
    def failure(self) -> GradientResult | None:
        """The first refuted gradient (its name, entry, expected and got values), or None."""
        return next((g for g in self.gradients if g.status == "refuted"), None)

    def _head(self) -> str:
        if self.failure is not None:
            return "backward REFUTED"
        return "backward ok" if self.ok else "backward UNDECIDED"

    def __getitem__(self, name: str) -> GradientResult:
        for g in self.gradients:
            if g.name == name:
                return g
        raise KeyError(f"no gradient {name!r}; the backward returned {', '.join(g.name for g in self.gradients)}")

    def _sizes(self) -> str:
        return ", ".join(f"{k} = {v}" for k, v in self.sizes.items()) or "the given sizes"

    def __str__(self) -> str:
        head = self._head()
        lines = [f"{head}: {self.method} check of {len(self.gradients)} gradient(s) ({self.seconds:.2f} s; "
                 f"numbers at {self._sizes()})"]
        for g in self.gradients:
            lines.append(f"  {g.line()}")
            lines += [f"    diagnosis: {d}" for d in g.diagnosis]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        """Markdown with math (Jupyter prefers Markdown to LaTeX)."""
        head = self._head()
        lines = [f"**{head}** — {self.method} check ({self.seconds:.2f} s; numbers at {self._sizes()})", ""]
        for g in self.gradients:
            lines.append(f"- ${_partial(g.name)}$: ${_math_status(g)}$")
            lines += [f"  - diagnosis: {d}" for d in g.diagnosis]
        lines += [f"- note: {n}" for n in self.notes]
        return "\n".join(lines)

    def _repr_latex_(self) -> str:
        rows = [rf"{_partial(g.name)}:\ {_math_status(g)}" for g in self.gradients]
        return "$" + r",\quad ".join(rows) + "$"


def _partial(name: str) -> str:
    from sympy import Symbol


    return rf"\frac{{\partial L}}{{\partial {latex(Symbol(name))}}}"


def _math_status(g: GradientResult) -> str:
    r"""``\text{proven}``, or ``\text{refuted at (1, 0)}:\ got \neq expected`` (math, without the $)."""

    if g.status == "consistent":
        return r"\text{consistent (not proven)}"
    if g.status != "refuted":
        return rf"\text{{{g.status}}}"
    if g.reason:
        return rf"\text{{refuted: {escape_text(g.reason)}}}"
    where = f" at {escape_text(str(g.entry))}" if g.entry else ""
    return rf"\text{{refuted{where}}}:\ {_number(g.got)} \neq {_number(g.expected)}"


def _number(x: float) -> str:
    mant, _, exp = f"{x:.6g}".partition("e")
    return rf"{mant}\times 10^{{{int(exp)}}}" if exp else mant


# --- the checker --------------------------------------------------------------------------------------
def check_backward(forward: Callable[..., Any], backward: Callable[..., Any], wrt: str | Sequence[str], *,
                   method: str = "auto", sizes: Mapping[str, int] | None = None, seed: int = 0,
                   timeout: float = 10.0, shapes: Mapping[str, Any] | None = None,
                   **more_shapes: Any) -> BackwardReport:
    r"""Judge ``backward`` as the gradient of ``forward`` with respect to ``wrt`` (see the module docstring).

    .. math:: \texttt{backward}(x)_k \overset{?}{=} \frac{\partial\,\texttt{forward}(x)}{\partial w_k},
              \qquad k = 1, \dots, |\texttt{wrt}|

    ``**shapes``: every argument of ``forward`` and its shape, as for :func:`symgrad.trace`
    (``x=("N", "D")``, ``W=("D", "H")``, a scalar ``lam=()``); ``shapes=`` takes them as a mapping when
    an argument is named like a keyword of this function. ``method``: "auto" (symbolic where both
    trace, else numeric), "symbolic" (an error when tracing fails) or "numeric". ``sizes``: concrete
    values for symbolic sizes (default 3, 4, 5, … in order of appearance). ``timeout``: seconds for the
    symbolic derivation and proof.
    """
    started = time.perf_counter()
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    wrt_names = [wrt] if isinstance(wrt, str) else list(wrt)
    specs = {**dict(shapes or {}), **more_shapes}
    if not wrt_names:
        raise ValueError("wrt is empty: name at least one input of the forward")
    for name in wrt_names:
        if name not in specs:
            raise ValueError(f"unknown wrt name {name!r}; the inputs are: {', '.join(specs) or 'none'}")
    if len(set(wrt_names)) != len(wrt_names):
        raise ValueError(f"wrt names a variable twice: {', '.join(wrt_names)}")

    check_arguments(forward, specs, "check_backward")
    inputs = {name: _Input.of(name, spec) for name, spec in specs.items()}
    for name in wrt_names:
        if inputs[name].labels is not None:
            raise ValueError(f"{name} is a label array (integers); it has no gradient")
    points, skipped = _points(forward, inputs, _concrete_sizes(inputs.values(), sizes), np.random.default_rng(seed))
    notes: list[str] = []
    skip_note = [f"{skipped} draw(s) skipped: the forward is not finite there (outside its domain, or an "
                 "overflow); never evidence either way"] if skipped else []
    if not points:
        undecided = [GradientResult(name, "undecided", f"no point among {len(SCHEDULE) * ATTEMPTS} draws where "
                                    "the forward is finite", shape=()) for name in wrt_names]
        return BackwardReport(method, undecided, _concrete_sizes(inputs.values(), sizes),
                              time.perf_counter() - started, skip_note)
    if method != "numeric":
        try:
            traced = _symbolic(forward, backward, wrt_names, specs, timeout)
        except Exception as exc:  # noqa: BLE001 - any tracing failure sends us to the numbers
            if method == "symbolic":
                raise SymgradLimit(f"check_backward(method='symbolic'): not traced ({_one_line(exc)})") from exc
            notes.append(f"not traced ({_one_line(exc)}); checked numerically")
        else:
            try:
                gradients, at = _judge_symbolic(traced, forward, backward, wrt_names, points, timeout, seed)
            except UntrustedDerivation as exc:
                if method == "symbolic":
                    raise
                notes.append(f"{exc}; checked numerically")
            else:
                return BackwardReport("symbolic", gradients, at.sizes, time.perf_counter() - started,
                                      notes + traced.notes + skip_note, at.arrays)
    chosen = [p for p in points if p.index in NUMERIC_POINTS] or points[:1]
    gradients, at = _judge_numeric(forward, backward, wrt_names, chosen, seed)
    return BackwardReport("numeric", gradients, at.sizes, time.perf_counter() - started, notes + skip_note, at.arrays)


def user_error(exc: BaseException, *functions: Callable[..., Any]) -> str | None:
    """``ValueError: msg (at model.py:7: <the line>)``: an exception raised inside the code of one of the
    user's ``functions`` (the innermost line of their files in its traceback), or None when it did not pass
    through them (then it is symgrad's own)."""
    import traceback

    files = {getattr(getattr(f, "__code__", None), "co_filename", None) for f in functions} - {None}
    frames = [fr for fr in traceback.extract_tb(exc.__traceback__) if fr.filename in files]
    if not frames:
        return None
    fr = frames[-1]
    return f"{_one_line(exc)} (at {fr.filename}:{fr.lineno}: {(fr.line or '').strip()})"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


# --- inputs: shapes, sizes, concrete arrays -------------------------------------------------------------
@dataclass(frozen=True)
class _Input:
    """One argument: its name, its shape (sizes are names or numbers) and, for a label array, the name or
    number of its classes."""

    name: str
    shape: tuple
    labels: str | int | None = None

    @staticmethod
    def of(name: str, spec: Any) -> "_Input":
        shape, labels = _shape_and_labels(name, spec)
        for d in shape:
            if isinstance(d, bool) or not (isinstance(d, str) and d.isidentifier() or isinstance(d, int) and d > 0):
                raise ValueError(f"{name}={spec!r}: a size is a name such as 'N' or a positive integer")
        return _Input(name, shape, labels)

    def concrete_shape(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        return tuple(sizes[d] if isinstance(d, str) else d for d in self.shape)

    def draw(self, sizes: Mapping[str, int], rng: np.random.Generator, kind: str = "moderate",
             positive: bool = False, policy: "sampling.Policy" = POLICY) -> np.ndarray | float:
        """Values of ``kind`` under the sampling ``policy``: "moderate" (in (−1, 1)), "wide" (10⁰ … 10⁶) or
        "tiny" (10⁻⁶ … 10⁻²), both signs (``positive``: their magnitudes); one array spans about a quarter
        of the decades, from a point drawn for it."""
        shape = self.concrete_shape(sizes)
        if self.labels is not None:
            classes = sizes[self.labels] if isinstance(self.labels, str) else self.labels
            return rng.integers(0, classes, size=shape)
        symbol = _real_symbol(self.name)
        count = int(np.prod(shape, dtype=int))
        decade = float(rng.random())
        values = [sampling.draw(symbol, rng, policy=policy, kind=kind,
                                stratum=None if kind == "moderate" else decade + 0.25 * float(rng.random()))
                  for _ in range(count)]
        arr = np.array(values, dtype=np.float64).reshape(shape)
        if positive:
            arr = np.abs(arr)
        return float(arr) if shape == () else arr


def _shape_and_labels(name: str, spec: Any) -> tuple[tuple, str | int | None]:
    """("N", "D") → (("N", "D"), None); ``labels("N", classes="C")`` → (("N",), "C")."""

    if isinstance(spec, Labels):
        return (spec.n,), spec.classes
    if isinstance(spec, (str, bytes)) or not isinstance(spec, (tuple, list)):
        raise ValueError(f"{name}={spec!r}: a shape is a tuple of sizes, e.g. {name}=('N', 'D'), () for a scalar, "
                         f"or labels('N', classes='C')")
    return tuple(spec), None


def _real_symbol(name: str):
    import sympy as sp

    return sp.Symbol(name, real=True)


def _concrete_sizes(inputs, given: Mapping[str, int] | None) -> dict[str, int]:
    """Every symbolic size → a small distinct integer (``given`` first)."""
    given = dict(given or {})
    for k, v in given.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"sizes[{k!r}] must be a positive integer, got {v!r}")
    out: dict[str, int] = {}
    free = iter(s for s in SIZES if s not in given.values())
    for inp in inputs:
        for d in (*inp.shape, *([inp.labels] if isinstance(inp.labels, str) else [])):
            if isinstance(d, str) and d not in out:
                out[d] = int(given[d]) if d in given else next(free, 2 + len(out))
    return out


def _gradients(backward: Callable[..., Any], point: Mapping[str, Any], wrt: Sequence[str]) -> list[np.ndarray]:
    """The backward's arrays at ``point`` (copies in: a backward may write into its inputs), one per name of
    ``wrt`` (a ValueError for a wrong count)."""
    with np.errstate(all="ignore"):
        out = backward(**{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in point.items()})
    arrays = []
    for k, name in enumerate(wrt):
        g = _pick(out, k, wrt)
        if g is None:
            raise ValueError(f"backward returned None for {name}; return an array of its shape (zeros if the loss "
                             "does not depend on it)")
        arr = np.asarray(g)
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ValueError(f"backward returned {type(g).__name__} for {name}, not an array of numbers")
        arrays.append(arr.astype(np.float64))
    return arrays


def _wrong_shape(name: str, g: np.ndarray, x: Any) -> str | None:
    shape = np.shape(x)
    if g.shape == shape:
        return None
    return f"the backward's gradient for {name} has shape {g.shape} but {name} has shape {shape}"


# --- symbolic: trace both, derive the forward, compare; the numbers locate ----------------------------------
@dataclass
class _Symbolic:
    graph: Any  # the traced forward (symgrad.tracing.Traced)
    derivation: Any
    truths: tuple  # ∂L/∂w from the derivation, one per wrt
    claims: list  # the traced backward's expressions, one per wrt
    notes: list[str]


def _symbolic(forward, backward, wrt: Sequence[str], specs: Mapping[str, Any], timeout: float) -> _Symbolic:
    """Trace the forward and derive it; trace the backward (one output at a time) with the same stand-ins."""

    graph = trace(forward, **specs)
    derivation = derive(graph, list(wrt))
    truths = derivation.results
    claims = []
    for k in range(len(wrt)):
        def output(_k=k, **arguments):
            return _pick(backward(**arguments), _k, wrt)

        claims.append(trace(output, **specs).expression())
    return _Symbolic(graph, derivation, truths, claims, list(derivation.notes))


def _pick(out, k: int, wrt: Sequence[str]):
    """The k-th gradient the backward returned (a ValueError when it returned another number of them)."""
    if len(wrt) == 1 and not isinstance(out, (tuple, list)):
        return out
    if not isinstance(out, (tuple, list)):
        raise ValueError(f"backward returned one array for wrt {list(wrt)}; return one per name, in that order "
                         "(a tuple)")
    if len(out) != len(wrt):
        raise ValueError(f"backward returned {len(out)} arrays for wrt {list(wrt)}; return one per name, in that order")
    return out[k]


def _symbolic_shape(expr) -> tuple:
    return tuple(expr.shape) if _is_matrix(expr) else ()


@dataclass
class _Point:
    """Concrete sizes and the inputs drawn at them (``index``: its row of SCHEDULE)."""

    sizes: dict[str, int]
    arrays: dict[str, Any]
    index: int = 0
    kind: str = "moderate"
    loss: float = float("nan")  # the forward's value there

    def where(self) -> str:
        return ", ".join(f"{k} = {v}" for k, v in self.sizes.items()) or "the given sizes"

    def jittered(self, rng: np.random.Generator) -> dict[str, Any]:
        """The arrays moved by a few ulps (labels unchanged): what rounding alone does to a value."""
        out = {}
        for k, v in self.arrays.items():
            if isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.integer):
                out[k] = v
            else:
                out[k] = v * (1 + JITTER * rng.uniform(-1, 1, size=np.shape(v)))
                out[k] = float(out[k]) if np.ndim(v) == 0 else out[k]
        return out


def _points(forward, inputs: Mapping[str, "_Input"], sizes: Mapping[str, int], rng: np.random.Generator
            ) -> tuple[list[_Point], int]:
    """The points of SCHEDULE where the forward is finite (with the number of draws skipped): moderate
    values, then across magnitudes, at the base sizes and at larger ones (a size-dependent slip shows).
    A draw where the forward is not finite (a negative ε under a square root, a softmax that underflows to
    log 0) is drawn again, with the scalars positive, then every input, and the decades narrowed step by
    step; a point never found is left out."""
    out, skipped = [], 0
    lo, hi = POLICY.decades
    for index, (grow, kind) in enumerate(SCHEDULE):
        at = {k: v + grow for k, v in sizes.items()}
        for attempt in range(ATTEMPTS):
            narrow = 1 - attempt / ATTEMPTS
            policy = sampling.Policy(moderate=POLICY.moderate, decades=(lo * narrow, hi * narrow))
            kinds = {name: (str(rng.choice(["moderate", "wide", "tiny"])) if kind == "mixed" else kind)
                     for name in inputs}
            arrays = {name: inp.draw(at, rng, kinds[name], positive=attempt % 3 == 2 or
                                     (attempt % 3 == 1 and not inp.shape), policy=policy)
                      for name, inp in inputs.items()}
            loss = _loss(forward, arrays)
            if np.isfinite(loss):
                out.append(_Point(at, arrays, index, kind, loss))
                break
            skipped += 1
    return out, skipped


def _loss(forward, arrays: Mapping[str, Any]) -> float:
    """The forward's loss at ``arrays`` (copies in), a ValueError when it is not one number."""
    with np.errstate(all="ignore"):
        value = forward(**{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in arrays.items()})
    name = getattr(forward, "__name__", "forward")
    if value is None or isinstance(value, (tuple, list, dict, str, bytes)):
        raise ValueError(f"the forward must return a scalar loss; {name} returned {type(value).__name__}"
                         + (" (return the loss alone, not the loss and a cache)" if isinstance(value, tuple)
                            else ""))
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.number) or arr.size != 1:
        raise ValueError(f"the forward must return a scalar loss; {name} returned "
                         + (f"an array of shape {arr.shape} (sum or average it)" if arr.size != 1
                            else type(value).__name__))
    return float(arr.real.reshape(()))


def _judge_symbolic(traced: _Symbolic, forward, backward, wrt, points: list[_Point], timeout: float, seed: int
                    ) -> tuple[list[GradientResult], _Point]:
    """Per gradient: a proof for every size, then the numbers at ``points`` (the first disagreement refutes,
    and check_grad diagnoses it there). An entry counts only where the truth is finite and beyond the
    rounding noise of both programs (their change when the inputs move by a few ulps). Returns the results
    and the point of the refutation (else the first)."""

    budget = Budget(timeout)
    compiled = traced.derivation.compile()
    results: list[GradientResult | None] = [None] * len(wrt)
    proofs = []
    for k, (name, truth, claim) in enumerate(zip(wrt, traced.truths, traced.claims)):
        if _symbolic_shape(claim) != _symbolic_shape(truth):
            results[k] = GradientResult(name, "refuted", "its shape", shape=_symbolic_shape(truth), truth=truth,
                                        claim=claim, max_rel_error=float("inf"),
                                        reason=f"the backward's gradient for {name} has shape {_show_shape(claim)} "
                                               f"but {name} has shape {_show_shape(truth)}")
        proofs.append(results[k] is None and bool(budget.run(
            f"proof of {name}", lambda c=claim, t=truth: _attempt(proven_equal, c, t),
            cap=max(budget.remaining() / 2, 0.05))))
    worst = [0.0] * len(wrt)
    notes: list[str | None] = [None] * len(wrt)  # a proven gradient's float64 disagreement (rounding)
    evidence = [0] * len(wrt)  # points where the gradient was compared (finite truth)
    refuted_at = points[0]
    rng = np.random.default_rng(seed + 1)
    schedule, kinks = list(points), 0
    for i, point in enumerate(schedule):  # (grows once, after the random points)
        if all(r is not None for r in results):
            break
        with np.errstate(all="ignore"):
            expected = _truth_values(compiled, traced, wrt, point)
        if i == 0:
            _trust(forward, wrt, expected, point, seed)
        got = _gradients(backward, point.arrays, wrt)
        moved = _Point(point.sizes, point.jittered(rng), point.index, point.kind)
        with np.errstate(all="ignore"):
            expected2 = _truth_values(compiled, traced, wrt, moved)
        got2 = _gradients(backward, moved.arrays, wrt)
        for k, name in enumerate(wrt):
            if results[k] is not None:
                continue
            reason = _wrong_shape(name, got[k], point.arrays[name])
            if reason:
                results[k] = GradientResult(name, "refuted", "its shape", shape=np.shape(point.arrays[name]),
                                            reason=reason, truth=traced.truths[k], claim=traced.claims[k],
                                            max_rel_error=float("inf"))
                refuted_at = point
                continue
            if not np.all(np.isfinite(expected[k])):  # the truth is not a number here: no evidence
                continue
            evidence[k] += 1
            noise = np.abs(expected[k] - expected2[k]) + np.abs(got[k] - got2[k])
            rel = _relative_errors(got[k], expected[k])
            beyond = (rel > RTOL) & ~(np.abs(got[k] - expected[k]) <= 8 * noise + UNDERFLOW +
                                      _loss_precision(point, name))
            judged = np.where(beyond | ~np.isfinite(got[k]), rel, np.minimum(rel, RTOL))
            worst[k] = max(worst[k], float(judged.max()) if judged.size else 0.0)
            if judged.size and not judged.max() <= RTOL:
                entry = tuple(int(i) for i in np.unravel_index(int(np.argmax(judged)), judged.shape))
                if proofs[k] and np.isfinite(got[k][entry]):  # equal expressions: the difference is rounding
                    notes[k] = (f"the float64 numbers differ by {float(judged.max()):.1e} (relative) at "
                                f"{point.where()} ({point.kind} values): rounding in one of the two programs, "
                                "as the expressions are equal")
                    continue
                diagnosis = _numeric_diagnosis(forward, name, got[k], point, seed)
                if not np.isfinite(got[k][entry]):
                    diagnosis.insert(0, f"the backward returns {got[k][entry]:g} where the gradient is finite "
                                        "(an overflow, 0/0, or a missing value?)")
                results[k] = GradientResult(name, "refuted", f"float64 evaluation at {point.where()} "
                                            f"({point.kind} values)", shape=got[k].shape, entry=entry,
                                            expected=float(expected[k][entry]), got=float(got[k][entry]),
                                            truth=traced.truths[k], claim=traced.claims[k], max_rel_error=worst[k],
                                            diagnosis=diagnosis)
                refuted_at = point
        if i == len(points) - 1 and any(r is None and not p for r, p in zip(results, proofs)):
            try:  # no proof and no counterexample yet: beside the breakpoints, where a forgotten mask shows
                extra = _kink_points(traced, forward, points, rng)
            except Exception:  # noqa: BLE001 - a breakpoint that cannot be solved for leaves the random points
                extra = []
            schedule += extra
            kinks = len(extra)
    out = []
    for k, name in enumerate(wrt):
        if results[k] is not None:
            out.append(results[k])
            continue
        shape = np.shape(points[0].arrays[name])
        if proofs[k]:
            out.append(GradientResult(name, "proven", "the traced backward equals the derivation for every size",
                                      shape=shape, truth=traced.truths[k], claim=traced.claims[k],
                                      max_rel_error=worst[k], diagnosis=[notes[k]] if notes[k] else []))
        elif evidence[k] == 0:
            out.append(GradientResult(name, "undecided", "not proven symbolically, and the derivation is not finite "
                                      "at any point drawn", shape=shape, truth=traced.truths[k],
                                      claim=traced.claims[k]))
        else:
            beside = f", {kinks} of them beside breakpoints" if kinks else ""
            out.append(GradientResult(name, "consistent", f"the expressions differ in form; they agree at {evidence[k]} "
                                      f"points across magnitudes and sizes{beside}, relative error ≤ {RTOL:g}",
                                      shape=shape,
                                      truth=traced.truths[k], claim=traced.claims[k], max_rel_error=worst[k]))
    return out, refuted_at


def _loss_precision(point: _Point, name: str) -> np.ndarray:
    r"""The smallest gradient difference the loss itself can show, entry by entry:
    :math:`64\,\varepsilon\,|L| / \max(|w_{ij}|, \overline{|w|})` — moving :math:`w_{ij}` by its own size
    changes L by g·w, and float64 does not resolve changes of L below ε|L| (a batch norm at tiny inputs
    computes its ∂L/∂x by a cancellation that leaves exactly that much). Finite differences (check_grad)
    have the same floor."""
    w = np.abs(np.asarray(point.arrays[name], dtype=np.float64))
    size = np.maximum(w, float(w.mean()) if w.size else 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 64 * float(np.finfo(np.float64).eps) * abs(point.loss) / size
    return np.where(np.isfinite(out), out, 0.0)


def _attempt(prove, claim, truth) -> bool:
    """A proof that cannot be carried out (an expression the expansion cannot rebuild) is no proof."""
    try:
        return prove(claim, truth)
    except Exception:  # noqa: BLE001 - ShapeError, TypeError …: not proven, the numbers still decide
        return False


class UntrustedDerivation(SymgradLimit):
    """symgrad's compiled derivation of the traced forward disagrees with finite differences of the forward."""


def _trust(forward, wrt, expected, point: _Point, seed: int) -> None:
    """The derivation's numbers are the truth only after they agree with finite differences of the forward
    (check_grad at the first point): a wrong truth must never refute a right backward, nor confirm a wrong one."""
    for name, value in zip(wrt, expected):
        def f(w, name=name):
            return forward(**{**point.arrays, name: w})

        report = check_grad(f, lambda w, value=value: value, point.arrays[name], seed=seed)
        if not report.ok:
            raise UntrustedDerivation(f"symgrad's compiled derivation of ∂L/∂{name} disagrees with finite "
                                      f"differences of the forward (max relative error "
                                      f"{report.max_rel_error:.1e}; a symgrad bug)")


def _show_shape(expr) -> str:
    return "×".join(str(d) for d in _symbolic_shape(expr)) or "scalar"


def _truth_values(compiled, traced: _Symbolic, wrt, point: _Point) -> list[np.ndarray]:
    """∂L/∂w from the compiled derivation at ``point``, each in the shape of the forward's argument
    (labels enter as one-hot rows, a 1-D argument as a row 1 × n)."""
    kwargs = _arguments(traced, point)
    values = compiled(**{k: v for k, v in kwargs.items() if k in compiled.params})
    values = values if isinstance(values, tuple) else (values,)
    return [np.asarray(traced.graph.gradient_of(name, v), dtype=np.float64).reshape(np.shape(point.arrays[name]))
            for name, v in zip(wrt, values)]


def _arguments(traced: _Symbolic, point: _Point) -> dict[str, Any]:
    """The compiled code's keyword arguments at ``point``: its symbols' arrays and the sizes."""

    kwargs: dict[str, Any] = dict(point.sizes)  # sizes the derivation names (1/N of a mean)
    for name, value in point.arrays.items():
        symbol, spec = traced.graph.arguments[name], traced.graph.declared[name]
        if isinstance(spec, Labels):
            classes = point.sizes[spec.classes] if isinstance(spec.classes, str) else int(spec.classes)
            kwargs[symbol.name] = np.eye(classes)[np.asarray(value)]
        elif len(spec) == 1:
            kwargs[symbol.name] = np.asarray(value, dtype=np.float64).reshape(1, -1)
        else:
            kwargs[symbol.name] = value
    return kwargs


def _kink_points(traced: _Symbolic, forward, points: list[_Point], rng: np.random.Generator, count: int = 6
                 ) -> list[_Point]:
    r"""Points beside the breakpoints of the traced expressions: for an elementwise function f(A) with a kink
    at A = r (a step, a ReLU's max, a clip — :func:`symgrad.sampling.breakpoints` and its roots), one input
    entry is moved (a secant solve) so that an entry of A sits just below, then just above, r. A bug that
    shows only on one side of a threshold (a forgotten mask) shows there. Exactly at r conventions differ:
    never sampled."""
    import sympy as sp
    from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction


    targets: list = []
    for e in [*traced.truths, *traced.claims]:
        if not isinstance(e, sp.Basic):
            continue
        for node in sp.preorder_traversal(e):
            if isinstance(node, ElementwiseApplyFunction) and node.expr.free_symbols:
                t = node.function.variables[0]
                for u in sampling.breakpoints(node.function.expr):
                    for r in sampling.kink_roots(u, t, {}):
                        if (node.expr, r) not in targets and len(targets) < 8:
                            targets.append((node.expr, r))
    symbols = {s.name: name for name, s in traced.graph.arguments.items()}
    out: list[_Point] = []
    for argument, root in targets:
        r = float(root)
        movable = [symbols[s.name] for s in argument.free_symbols if s.name in symbols
                   and not (isinstance(points[0].arrays[symbols[s.name]], np.ndarray)
                            and np.issubdtype(points[0].arrays[symbols[s.name]].dtype, np.integer))]
        if not movable:
            continue
        try:
            evaluate = compile_expr(argument)
        except Exception:  # noqa: BLE001 - an argument the compiler cannot print: no targeted points
            continue
        for base in points[:2]:
            for side in (-1, 1):
                for _ in range(6):  # a random entry of A may not depend on the random input entry moved
                    moved = _solve_entry(evaluate, traced, forward, base, movable, r + side * 1e-6 * max(1.0, abs(r)),
                                         rng)
                    if moved is not None:
                        out.append(moved)
                        break
            if len(out) >= count:
                return out
    return out


def _solve_entry(evaluate, traced, forward, base: _Point, movable, target: float, rng) -> _Point | None:
    """``base`` with one entry of one movable input changed so that a random entry of ``evaluate`` equals
    ``target`` (a secant solve), or None (no solution found, or the forward is not finite there)."""
    name = movable[int(rng.integers(len(movable)))]
    value = np.array(base.arrays[name], dtype=np.float64)
    index = tuple(int(rng.integers(n)) for n in value.shape)

    def at(s):
        arrays = dict(base.arrays)
        moved = value.copy()
        moved[index] += s
        arrays[name] = float(moved) if moved.shape == () else moved
        point = _Point(base.sizes, arrays, base.index, "beside a breakpoint")
        with np.errstate(all="ignore"):
            a = np.asarray(evaluate(**{k: v for k, v in _arguments(traced, point).items() if k in evaluate.params}),
                           dtype=np.float64)
        return point, a

    _, a0 = at(0.0)
    if a0.size == 0:
        return None
    entry = tuple(int(rng.integers(n)) for n in a0.shape)
    s0, f0 = 0.0, float(a0[entry]) - target
    s1 = 0.5 * max(1.0, abs(float(value[index])))
    for _ in range(12):
        point, a1 = at(s1)
        f1 = float(a1[entry]) - target
        if not np.isfinite(f1):
            return None
        if abs(f1) <= 1e-9 * max(1.0, abs(target)):
            point.loss = _loss(forward, point.arrays)
            return point if np.isfinite(point.loss) else None
        if f1 == f0:
            return None
        s0, s1, f0 = s1, s1 - f1 * (s1 - s0) / (f1 - f0), f1
    return None


def _relative_errors(got: np.ndarray, expected: np.ndarray) -> np.ndarray:
    r""":math:`|g - \hat g| / \max(|\hat g|,\ \text{FLOOR} \max_j |\hat g_j|)` entry by entry; inf where the
    backward is not finite, or where the truth is 0 everywhere and the backward is not."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    floor = np.maximum(np.abs(expected), sampling.FLOOR * scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(floor > 0, np.abs(got - expected) / np.where(floor > 0, floor, 1.0),
                       np.where(got == expected, 0.0, np.inf))
    return np.where(np.isfinite(got), rel, np.inf)


def _numeric_diagnosis(forward, name: str, got: np.ndarray, point: _Point, seed: int) -> list[str]:
    """check_grad's diagnosis of a refuted gradient (a constant factor, a sign flip, a transpose, a single
    entry, a missing term), from finite differences of the forward at the point of the refutation."""
    def f(w):
        return forward(**{**point.arrays, name: w})

    try:
        report = check_grad(f, lambda w: got, point.arrays[name], seed=seed)
    except Exception:  # noqa: BLE001 - a diagnosis is a courtesy; the refutation stands without it
        return []
    return [d.removeprefix("input 0: ") for d in report.diagnosis]


# --- numeric: finite differences through check_grad ---------------------------------------------------
def _judge_numeric(forward, backward, wrt, points: list[_Point], seed: int) -> tuple[list[GradientResult], _Point]:
    """Per gradient, check_grad at each point (the first refutation stands; a point where the numerical
    derivative is not finite is no evidence). Returns the results and the point of the first refutation
    (else the first point)."""
    refuted: dict[str, GradientResult] = {}
    agreed: dict[str, list[GradientResult]] = {name: [] for name in wrt}
    refuted_at = None
    for point in points:
        arrays = point.arrays
        for name, g in zip(wrt, _gradients(backward, arrays, wrt)):
            if name in refuted:
                continue
            result = _check_one(forward, name, g, arrays, seed, point)
            if result is None:
                continue
            if result.status == "refuted":
                refuted[name] = result
                refuted_at = refuted_at or point
            else:
                agreed[name].append(result)
    out = []
    for name in wrt:
        if name in refuted:
            out.append(refuted[name])
        elif not agreed[name]:
            out.append(GradientResult(name, "undecided", "the numerical derivative is not finite at any point "
                                      "drawn", shape=np.shape(points[0].arrays[name])))
        else:
            results = agreed[name]
            resolution = max(r.report.resolution for r in results)
            entries = sum(r.report.checked for r in results)
            err = max(r.max_rel_error for r in results)
            how = (f"finite differences at {len(results)} points across magnitudes and sizes, {entries} entries, max "
                   f"relative error {err:.1e}; resolution {resolution:.0e} of the largest entry")
            out.append(GradientResult(name, "consistent", how, shape=results[0].shape, report=results[0].report,
                                      max_rel_error=err))
    return out, refuted_at or points[0]


def _check_one(forward, name: str, g: np.ndarray, arrays: Mapping[str, Any], seed: int, point: _Point
               ) -> GradientResult | None:
    """check_grad of one gradient at one point (None: no evidence, the numerical derivative is not finite)."""
    reason = _wrong_shape(name, g, arrays[name])
    if reason:
        return GradientResult(name, "refuted", "its shape", shape=np.shape(arrays[name]), reason=reason,
                              max_rel_error=float("inf"))

    def f(w):
        return forward(**{**arrays, name: w})

    with np.errstate(all="ignore"):
        report = check_grad(f, lambda w: g, arrays[name], seed=seed)
    if any(not np.isfinite(c.numeric) for c in report.failures):
        return None
    how = (f"finite differences at {point.where()} ({point.kind} values), {report.checked} entries, max relative "
           f"error {report.max_rel_error:.1e}; resolution {report.resolution:.0e} of the largest entry")
    if report.ok:
        return GradientResult(name, "consistent", how, shape=g.shape, report=report, max_rel_error=report.max_rel_error)
    worst = max(report.failures, key=lambda c: c.rel_error) if report.failures else None
    return GradientResult(name, "refuted", how, shape=g.shape, report=report, max_rel_error=report.max_rel_error,
                          diagnosis=[d.removeprefix("input 0: ") for d in report.diagnosis],
                          entry=worst.index if worst else None, expected=worst.numeric if worst else None,
                          got=worst.analytic if worst else None,
                          reason=None if worst else "random directions disagree with the gradient")


# --- symbolic: a proof for every size -----------------------------------------------------------------
# Both gradients are expanded into Σ c_k M_k: matrix monomials M_k (matrix products of atoms, Hadamard
# products with their factors sorted, transposes pushed down to the symbols, elementwise functions
# transposed inside and multiplied when they share an argument, broadcasts written out, 1 ∘ A = A,
# I A = A, 1ᵀ1 = n) with scalar coefficients c_k (floats read as the exact binary fractions they are).
# Every step is an identity of matrix algebra, so equal expansions prove the gradients equal for every
# size; unequal ones prove nothing (σ(−z) = 1 − σ(z) is not seen) and the numbers decide.
def _is_matrix(e: Any) -> bool:
    return bool(getattr(e, "is_Matrix", False))


def _scalar(c):
    import sympy as sp

    c = sp.sympify(c, strict=True)  # a coefficient of a traced expression, never text
    floats = c.atoms(sp.Float)
    return sp.expand(c.xreplace({f: sp.Rational(float(f)) for f in floats}) if floats else c)


def expansion(e) -> dict:
    r"""``e`` as :math:`\sum_k c_k M_k`: {monomial M_k: scalar c_k} (see the comment above)."""
    import sympy as sp
    from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

    if isinstance(e, sp.ZeroMatrix):
        return {}
    if isinstance(e, sp.MatAdd):  # terms broadcast as NumPy does (a column added to a matrix: v 1ᵀ)
        out: dict = {}
        for a in e.args:
            _merge(out, expansion(_broadcast(a, _shape(e))))
        return out
    if isinstance(e, (sp.MatMul, sp.HadamardProduct)):
        kind = type(e)
        matrices = [a for a in e.args if _is_matrix(a)]
        shape = e.shape
        if kind is sp.HadamardProduct:  # a column (row) among full matrices is broadcast: v ∘ A = (v 1ᵀ) ∘ A
            shape = _shape(e)
            matrices = [_broadcast(a, shape) for a in matrices]
        partial = [(_scalar(sp.Mul(*[a for a in e.args if not _is_matrix(a)])), [])]
        for m in matrices:
            partial = [(c0 * c, f0 + (list(k.args) if isinstance(k, kind) else [k]))
                       for k, c in expansion(m).items() for c0, f0 in partial]
        out = {}
        for c, factors in partial:
            key, scale = _product(factors, kind is sp.HadamardProduct, shape)
            _merge(out, {key: c * scale})
        return out
    if isinstance(e, sp.Transpose):
        return {_transposed(k): c for k, c in expansion(e.arg).items()}
    if isinstance(e, sp.HadamardPower) and e.exp.is_Integer and 0 < e.exp <= 8:
        return expansion(sp.HadamardProduct(*[e.base] * int(e.exp)))
    if isinstance(e, ElementwiseApplyFunction):
        return _elementwise(e.function(_T()), _rebuilt(expansion(e.expr), _shape(e.expr)))
    if isinstance(e, sp.MatrixExpr) and e.args and not isinstance(e, (sp.MatrixSymbol, sp.OneMatrix, sp.Identity)):
        # another block (a row softmax …): an atom of canonical arguments
        args = [_rebuilt(expansion(a), _shape(a)) if _is_matrix(a) else a for a in e.args]
        return {e.func(*args): sp.S.One}
    return {e: sp.S.One}


def _shape(e) -> tuple:
    """The shape of ``e`` with broadcasting inside Hadamard products and sums (SymPy reports the first
    factor's shape)."""
    import sympy as sp

    if isinstance(e, (sp.HadamardProduct, sp.MatAdd)):
        shapes = [_shape(a) for a in e.args if _is_matrix(a)]
        return tuple(next((s[i] for s in shapes if s[i] != 1), 1) for i in (0, 1))
    if isinstance(e, sp.MatMul):
        matrices = [a for a in e.args if _is_matrix(a)]
        return (_shape(matrices[0])[0], _shape(matrices[-1])[1])
    if isinstance(e, sp.Transpose):
        return _shape(e.arg)[::-1]
    return tuple(e.shape)


def _broadcast(a, shape):
    """``a`` spread to ``shape`` as NumPy broadcasts it: a column v → v 1ᵀ, a row r → 1 r."""
    import sympy as sp

    own = _shape(a)
    if own[1] == 1 and shape[1] != 1:
        a = sp.MatMul(a, sp.OneMatrix(1, shape[1]))
    if own[0] == 1 and shape[0] != 1:
        a = sp.MatMul(sp.OneMatrix(shape[0], 1), a)
    return a


def _T():
    """The bound variable of every elementwise function in an expansion (one symbol: bodies compare)."""
    import sympy as sp

    return sp.Symbol("_t", real=True)


def _elementwise(body, arg) -> dict:
    """f(A) for the body f(t): f affine in t is c₁A + c₀1 (expanded); otherwise one atom, its body in a
    fixed form (tanh(t)·tanh(t) and (x ↦ tanh(x)²) alike)."""
    import sympy as sp
    from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

    t = _T()
    body = _scalar(sp.powsimp(body))
    poly = body.as_poly(t) if body.has(t) else None
    if not body.has(t) or (poly is not None and poly.degree() <= 1 and not any(c.has(t) for c in poly.all_coeffs())):
        c1 = body.diff(t) if body.has(t) else sp.S.Zero
        c0 = body.subs(t, 0)
        out: dict = {}
        if c0 != 0:
            out[sp.OneMatrix(*_shape(arg))] = c0
        if c1 != 0:
            _merge(out, {k: c1 * c for k, c in expansion(arg).items()})
        return out
    return {ElementwiseApplyFunction(sp.Lambda(t, body), arg): sp.S.One}


def _merged_by_argument(factors: list) -> tuple[list, Any]:
    """(factors, scale): f(A) ∘ g(A) ∘ A = (f·g·t)(A) — Hadamard factors that are elementwise functions of
    one argument (or the argument itself) become one elementwise function of it, when that is one term."""
    import sympy as sp
    from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

    t = _T()
    groups: dict = {}
    for f in factors:
        arg, body = (f.expr, f.function(t)) if isinstance(f, ElementwiseApplyFunction) else (f, t)
        groups.setdefault(arg, []).append((f, body))
    out, scale = [], sp.S.One
    for arg, members in groups.items():
        if len(members) == 1:
            out.append(members[0][0])
            continue
        merged = _elementwise(sp.Mul(*[body for _, body in members]), arg)
        if len(merged) == 1:
            (key, c), = merged.items()
            out.append(key)
            scale *= c
        elif not merged:  # the product is 0
            return [], sp.S.Zero
        else:  # an affine product of two terms (1/t · t + t …) is no monomial: keep the factors
            out += [f for f, _ in members]
    return out, scale


def _merge(out: dict, terms: dict) -> None:
    for k, c in terms.items():
        out[k] = out.get(k, 0) + c


def _product(factors: list, hadamard: bool, shape) -> tuple[Any, Any]:
    """(the monomial, a scalar it brought out): 1 ∘ A = A, I A = A, 1_{a×b} 1_{b×c} = b 1_{a×c}."""
    import sympy as sp

    if hadamard:
        factors, scale = _merged_by_argument([f for f in factors if not isinstance(f, sp.OneMatrix)])
        factors = sorted((f for f in factors if not isinstance(f, sp.OneMatrix)), key=sp.default_sort_key)
        if not factors:
            return sp.OneMatrix(*shape), scale
        return (factors[0] if len(factors) == 1 else sp.HadamardProduct(*factors)), scale
    merged, scale = [], sp.S.One
    for f in factors:
        if isinstance(f, sp.Identity):
            continue
        if merged and isinstance(f, sp.OneMatrix) and isinstance(merged[-1], sp.OneMatrix):
            scale *= f.shape[0]
            merged[-1] = sp.OneMatrix(merged[-1].shape[0], f.shape[1])
            continue
        merged.append(f)
    if not merged:
        return sp.Identity(shape[0]), scale
    return (merged[0] if len(merged) == 1 else sp.MatMul(*merged)), scale


def _transposed(k):
    import sympy as sp
    from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

    if isinstance(k, sp.MatMul):  # a monomial: its OneMatrix factors are merged already (scale 1)
        return _product([_transposed(f) for f in reversed(k.args)], False, k.shape[::-1])[0]
    if isinstance(k, sp.HadamardProduct):
        key, scale = _product([_transposed(f) for f in k.args], True, _shape(k)[::-1])
        return key if scale == 1 else sp.MatMul(scale, key)
    if isinstance(k, sp.Transpose):
        return k.arg
    if isinstance(k, sp.OneMatrix):
        return sp.OneMatrix(*k.shape[::-1])
    if isinstance(k, sp.Identity):
        return k
    if isinstance(k, ElementwiseApplyFunction):
        return k.func(k.function, _rebuilt({_transposed(m): c for m, c in expansion(k.expr).items()}, k.shape[::-1]))
    return sp.Transpose(k)


def _rebuilt(terms: dict, shape):
    """Σ c_k M_k as one matrix expression, its terms in a fixed order."""
    import sympy as sp

    items = sorted(((k, c) for k, c in terms.items() if c != 0), key=lambda kc: sp.default_sort_key(kc[0]))
    if not items:
        return sp.ZeroMatrix(*shape)
    terms = [k if c == 1 else sp.MatMul(c, k) for k, c in items]
    return terms[0] if len(terms) == 1 else sp.MatAdd(*terms)


def proven_equal(claim, truth) -> bool:
    """Whether the expansions of ``claim`` and ``truth`` agree term by term (a proof for every size)."""
    if getattr(claim, "shape", ()) != getattr(truth, "shape", ()):
        return False
    if not _is_matrix(claim) or not _is_matrix(truth):
        return not _is_matrix(claim) and not _is_matrix(truth) and _scalar(claim - truth) == 0
    difference = expansion(claim)
    _merge(difference, {k: -c for k, c in expansion(truth).items()})
    return all(_scalar(c) == 0 for c in difference.values())
