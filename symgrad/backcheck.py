r"""Check a hand-written NumPy backward against its forward: ``check_backward(forward, backward, wrt, **shapes)``.

``forward(**inputs)`` returns a scalar loss L; ``backward(**inputs)`` returns ∂L/∂w for each name w
of ``wrt``, in that order (one array when ``wrt`` has one name), each of the shape of w.

.. math:: \texttt{backward}(\ldots)_k \overset{?}{=} \frac{\partial\, \texttt{forward}(\ldots)}{\partial w_k}

**Symbolically** where both functions trace (:func:`symgrad.trace` with the same stand-ins): the
forward's derivation (``symgrad.derive``) is the truth and each traced gradient is compared with it —
*proven* when the matrix expressions are equal after a bounded simplification, for every size.
Whether proven or not, both are evaluated at random concrete inputs at small sizes: the derivation
compiled by symgrad against the user's backward run on the same arrays. A difference beyond the
tolerance refutes the gradient, with the entry, the two values and the point; agreement without a
proof is *consistent* (never *proven*).

**Numerically** where the forward or the backward does not trace (item assignment, an unsupported
call): random concrete inputs at small sizes through :func:`symgrad.check_grad` (finite differences of
the forward, with its diagnoses: a constant factor, a sign flip, a transpose, a single entry, a missing
term). A gradient that agrees is *consistent*.

Sizes: symbolic sizes get distinct small values (3, 4, 5, …, so that a transposition shows and a
missing 1/N reads as 1/3); inputs are drawn by :mod:`symgrad.sampling` (its moderate values, in (−1, 1)
here); label arrays get integers in [0, C). A gradient of the wrong shape is refuted with
the reason; a backward returning the wrong number of gradients is a ``ValueError`` (a usage error, not a
claim about the math); an exception raised by the user's code propagates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import sampling
from .gradcheck import GradReport, check_grad

__all__ = ["check_backward", "BackwardReport", "GradientResult"]

SIZES = (3, 4, 5, 6, 7, 2, 8, 9)  # concrete values of symbolic sizes, in order of first appearance
RTOL = 1e-9  # float64 evaluations of the same math by two programs (the derivation, the user's backward)
METHODS = ("auto", "symbolic", "numeric")
# values of order 1: beyond (−1, 1) a softmax of products of several inputs (attention's Q Kᵀ) saturates,
# and the gradient of a saturated softmax is rounding noise that no check can judge
POLICY = sampling.Policy(moderate=1.0)


# --- results ------------------------------------------------------------------------------------------
@dataclass
class GradientResult:
    """The judgement of one gradient ∂L/∂name returned by the backward."""

    name: str
    status: str  # "proven" | "consistent" | "refuted"
    how: str  # how it was judged, one phrase
    shape: tuple = ()
    entry: tuple | None = None  # the located entry of a refuted gradient
    expected: float | None = None  # ∂L/∂name at that entry (the truth)
    got: float | None = None  # what the backward returned there
    reason: str | None = None  # why it is refuted without an entry (a wrong shape)
    diagnosis: list[str] = field(default_factory=list)
    truth: Any = None  # the derivation's symbolic gradient (symbolic method)
    claim: Any = None  # the traced backward's symbolic gradient (symbolic method)
    report: GradReport | None = field(default=None, repr=False)  # check_grad's report (numeric method)

    @property
    def ok(self) -> bool:
        return self.status != "refuted"

    def line(self) -> str:
        """One line: ``W2: refuted at entry (1, 0): expected 2.5, got 1.25``."""
        if self.status != "refuted":
            return f"{self.name}: {self.status} ({self.how})"
        if self.reason:
            return f"{self.name}: refuted: {self.reason}"
        return (f"{self.name}: refuted at entry {self.entry}: expected {self.expected:.10g}, got {self.got:.10g} "
                f"({self.how})")


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
    def failure(self) -> GradientResult | None:
        """The first refuted gradient (its name, entry, expected and got values), or None."""
        return next((g for g in self.gradients if not g.ok), None)

    def __getitem__(self, name: str) -> GradientResult:
        for g in self.gradients:
            if g.name == name:
                return g
        raise KeyError(f"no gradient {name!r}; the backward returned {', '.join(g.name for g in self.gradients)}")

    def _sizes(self) -> str:
        return ", ".join(f"{k} = {v}" for k, v in self.sizes.items()) or "the given sizes"

    def __str__(self) -> str:
        head = "backward ok" if self.ok else "backward REFUTED"
        lines = [f"{head}: {self.method} check of {len(self.gradients)} gradient(s) ({self.seconds:.2f} s; "
                 f"numbers at {self._sizes()})"]
        for g in self.gradients:
            lines.append(f"  {g.line()}")
            lines += [f"    diagnosis: {d}" for d in g.diagnosis]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        """Markdown with math (Jupyter prefers Markdown to LaTeX)."""
        head = "backward ok" if self.ok else "backward REFUTED"
        lines = [f"**{head}** — {self.method} check ({self.seconds:.2f} s; numbers at {self._sizes()})", ""]
        for g in self.gradients:
            lines.append(f"- ${_partial(g.name)}$: {_math_status(g)}")
            lines += [f"  - diagnosis: {d}" for d in g.diagnosis]
        lines += [f"- note: {n}" for n in self.notes]
        return "\n".join(lines)

    def _repr_latex_(self) -> str:
        rows = [rf"{_partial(g.name)}:\ {_math_status(g).replace('$', '')}" for g in self.gradients]
        return "$" + r",\quad ".join(rows) + "$"


def _partial(name: str) -> str:
    from sympy import Symbol

    from .printing import latex

    return rf"\frac{{\partial L}}{{\partial {latex(Symbol(name))}}}"


def _math_status(g: GradientResult) -> str:
    from .printing import escape_text

    if g.status != "refuted":
        return rf"$\text{{{g.status}}}$"
    if g.reason:
        return rf"$\text{{refuted: {escape_text(g.reason)}}}$"
    return (rf"$\text{{refuted at {escape_text(str(g.entry))}}}:\ "
            rf"{_number(g.got)} \neq {_number(g.expected)}$")


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
    inputs = {name: _Input.of(name, spec) for name, spec in specs.items()}
    for name in wrt_names:
        if inputs[name].labels is not None:
            raise ValueError(f"{name} is a label array (integers); it has no gradient")
    concrete_sizes = _concrete_sizes(inputs.values(), sizes)
    rng = np.random.default_rng(seed)
    point = {name: inp.draw(concrete_sizes, rng) for name, inp in inputs.items()}
    notes: list[str] = []
    if method != "numeric":
        try:
            symbolic = _symbolic(forward, backward, wrt_names, specs, timeout)
        except Exception as exc:  # noqa: BLE001 - any tracing failure sends us to the numbers
            if method == "symbolic":
                raise
            notes.append(f"not traced ({_one_line(exc)}); checked numerically")
        else:
            gradients = _judge_symbolic(symbolic, backward, wrt_names, point, concrete_sizes, inputs)
            return BackwardReport("symbolic", gradients, _used(concrete_sizes, inputs), time.perf_counter() - started,
                                  notes + symbolic.notes, point)
    gradients = _judge_numeric(forward, backward, wrt_names, point, seed)
    return BackwardReport("numeric", gradients, _used(concrete_sizes, inputs), time.perf_counter() - started,
                          notes, point)


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

    def draw(self, sizes: Mapping[str, int], rng: np.random.Generator) -> np.ndarray | float:
        shape = self.concrete_shape(sizes)
        if self.labels is not None:
            classes = sizes[self.labels] if isinstance(self.labels, str) else self.labels
            return rng.integers(0, classes, size=shape)
        symbol = _real_symbol(self.name)
        values = [sampling.draw(symbol, rng, policy=POLICY, kind="moderate") for _ in range(int(np.prod(shape, dtype=int)))]
        arr = np.array(values, dtype=np.float64).reshape(shape)
        return float(arr) if shape == () else arr


def _shape_and_labels(name: str, spec: Any) -> tuple[tuple, str | int | None]:
    """("N", "D") → (("N", "D"), None); a label array → ((sizes…), classes) (the trace's spelling)."""
    try:
        from . import tracing
    except ImportError:  # the tracer is not there yet: plain shapes only
        tracing = None
    labels = tracing.label_classes(spec) if hasattr(tracing, "label_classes") else None
    if labels is not None:
        return tuple(tracing.label_shape(spec)), labels
    if isinstance(spec, (str, bytes)) or not isinstance(spec, (tuple, list)):
        raise ValueError(f"{name}={spec!r}: a shape is a tuple of sizes, e.g. {name}=('N', 'D'), or () for a scalar")
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


def _used(sizes: Mapping[str, int], inputs: Mapping[str, _Input]) -> dict[str, int]:
    return dict(sizes)


def _gradients(backward: Callable[..., Any], point: Mapping[str, Any], wrt: Sequence[str]) -> list[np.ndarray]:
    """The backward's arrays at ``point``, one per name of ``wrt`` (a ValueError for a wrong count)."""
    out = backward(**{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in point.items()})
    if len(wrt) == 1 and not isinstance(out, (tuple, list)):
        out = [out]
    if not isinstance(out, (tuple, list)):
        raise ValueError(f"backward returned one array for wrt {list(wrt)}; return one per name, in that order (a tuple)")
    if len(out) != len(wrt):
        raise ValueError(f"backward returned {len(out)} arrays for wrt {list(wrt)}; return one per name, in that order")
    return [np.asarray(g, dtype=np.float64) if np.isrealobj(np.asarray(g)) else np.asarray(g) for g in out]


def _wrong_shape(name: str, g: np.ndarray, x: Any) -> str | None:
    shape = np.shape(x)
    if g.shape == shape:
        return None
    return f"the backward's gradient for {name} has shape {g.shape} but {name} has shape {shape}"


# --- numeric: finite differences through check_grad ---------------------------------------------------
def _judge_numeric(forward, backward, wrt, point, seed) -> list[GradientResult]:
    grads = _gradients(backward, point, wrt)
    out = []
    for name, g in zip(wrt, grads):
        reason = _wrong_shape(name, g, point[name])
        if reason:
            out.append(GradientResult(name, "refuted", "its shape", shape=np.shape(point[name]), reason=reason))
            continue

        def f(w, name=name):
            return forward(**{**point, name: w})

        report = check_grad(f, lambda w, g=g: g, point[name], seed=seed)
        how = f"finite differences, {report.checked} entries, max relative error {report.max_rel_error:.1e}"
        diagnosis = [d.removeprefix("input 0: ") for d in report.diagnosis]
        if report.ok:
            out.append(GradientResult(name, "consistent", how, shape=g.shape, report=report))
            continue
        worst = max(report.failures, key=lambda c: c.rel_error) if report.failures else None
        out.append(GradientResult(name, "refuted", how, shape=g.shape, diagnosis=diagnosis, report=report,
                                  entry=worst.index if worst else None,
                                  expected=worst.numeric if worst else None, got=worst.analytic if worst else None,
                                  reason=None if worst else "random directions disagree with the gradient"))
    return out
