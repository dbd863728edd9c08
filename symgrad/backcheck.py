r"""Check a hand-written NumPy backward against its forward: ``check_backward(forward, backward, wrt, **shapes)``.

``forward(**inputs)`` returns a scalar loss L; ``backward(**inputs)`` returns ∂L/∂w for each name w
of ``wrt``, in that order (one array when ``wrt`` has one name), each of the shape of w.

.. math:: \texttt{backward}(\ldots)_k \overset{?}{=} \frac{\partial\, \texttt{forward}(\ldots)}{\partial w_k}

**Symbolically** where both functions trace (:func:`symgrad.trace` with the same stand-ins): the
forward's derivation (``symgrad.derive``) is the truth and each traced gradient is compared with it —
*proven* when both matrix expressions expand to the same sum of monomials (:func:`proven_equal`, within
the time bound), which holds for every size. Whether proven or not, both are evaluated at random
concrete inputs at small sizes: the derivation compiled by symgrad (trusted only after it agrees with
finite differences of the forward) against the user's backward run on the same arrays. A difference
beyond the tolerance refutes the gradient, with the entry, the two values and the point; agreement
without a proof is *consistent* (never *proven*).

**Numerically** where the forward or the backward does not trace (item assignment, an unsupported
call): random concrete inputs at small sizes, and at sizes one larger, through :func:`symgrad.check_grad`
(finite differences of the forward, with its diagnoses: a constant factor, a sign flip, a transpose, a
single entry, a missing term). A gradient that agrees at both is *consistent*.

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
from .errors import SymgradLimit
from .gradcheck import GradReport, check_grad

__all__ = ["check_backward", "BackwardReport", "GradientResult", "proven_equal", "expansion", "UntrustedDerivation"]

SIZES = (3, 4, 5, 6, 7, 2, 8, 9)  # concrete values of symbolic sizes, in order of first appearance
RTOL = 1e-9  # float64 evaluations of the same math by two programs (the derivation, the user's backward)
METHODS = ("auto", "symbolic", "numeric")
# values of order 1: beyond (−1, 1) a softmax of products of several inputs (attention's Q Kᵀ) saturates,
# and the gradient of a saturated softmax is rounding noise that no check can judge
POLICY = sampling.Policy(moderate=1.0)
POINTS = 3  # random points the symbolic method evaluates (two at the sizes, one at sizes one larger)


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
    max_rel_error: float = float("nan")  # over the entries, |got − expected| / max(|expected|, FLOOR·max|expected|)
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
            lines.append(f"- ${_partial(g.name)}$: ${_math_status(g)}$")
            lines += [f"  - diagnosis: {d}" for d in g.diagnosis]
        lines += [f"- note: {n}" for n in self.notes]
        return "\n".join(lines)

    def _repr_latex_(self) -> str:
        rows = [rf"{_partial(g.name)}:\ {_math_status(g)}" for g in self.gradients]
        return "$" + r",\quad ".join(rows) + "$"


def _partial(name: str) -> str:
    from sympy import Symbol

    from .printing import latex

    return rf"\frac{{\partial L}}{{\partial {latex(Symbol(name))}}}"


def _math_status(g: GradientResult) -> str:
    r"""``\text{proven}``, or ``\text{refuted at (1, 0)}:\ got \neq expected`` (math, without the $)."""
    from .printing import escape_text

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
    _check_arguments(forward, specs)
    inputs = {name: _Input.of(name, spec) for name, spec in specs.items()}
    for name in wrt_names:
        if inputs[name].labels is not None:
            raise ValueError(f"{name} is a label array (integers); it has no gradient")
    points = _points(inputs, _concrete_sizes(inputs.values(), sizes), np.random.default_rng(seed), POINTS)
    notes: list[str] = []
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
                                      notes + traced.notes, at.arrays)
    gradients, at = _judge_numeric(forward, backward, wrt_names, [points[0], points[-1]], seed)
    return BackwardReport("numeric", gradients, at.sizes, time.perf_counter() - started, notes, at.arrays)


def _check_arguments(forward: Callable[..., Any], specs: Mapping[str, Any]) -> None:
    """Every argument of the forward has a shape, and every shape names an argument (a ValueError)."""
    import inspect

    try:
        params = inspect.signature(forward).parameters
    except (TypeError, ValueError):  # a builtin or C callable: nothing to compare
        return
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    missing = [n for n, p in params.items() if p.default is p.empty and n not in specs
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing:
        raise ValueError(f"no shape for {', '.join(missing)}: give every argument of the forward its shape, "
                         f"e.g. {missing[0]}=('N', 'D'), or () for a scalar")
    extra = [n for n in specs if n not in params]
    if extra:
        raise ValueError(f"{', '.join(extra)}: not an argument of the forward (its arguments: {', '.join(params)})")


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
        count = int(np.prod(shape, dtype=int))
        values = [sampling.draw(symbol, rng, policy=POLICY, kind="moderate") for _ in range(count)]
        arr = np.array(values, dtype=np.float64).reshape(shape)
        return float(arr) if shape == () else arr


def _shape_and_labels(name: str, spec: Any) -> tuple[tuple, str | int | None]:
    """("N", "D") → (("N", "D"), None); ``labels("N", classes="C")`` → (("N",), "C")."""
    from .tracing import Labels

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
    out = backward(**{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in point.items()})
    return [np.asarray(_pick(out, k, wrt), dtype=np.float64) for k in range(len(wrt))]


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
    from .derivation import derive
    from .tracing import trace

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
    """Concrete sizes and the inputs drawn at them."""

    sizes: dict[str, int]
    arrays: dict[str, Any]

    def where(self) -> str:
        return ", ".join(f"{k} = {v}" for k, v in self.sizes.items()) or "the given sizes"


def _points(inputs: Mapping[str, "_Input"], sizes: Mapping[str, int], rng: np.random.Generator, count: int
            ) -> list[_Point]:
    """``count`` random points: two at ``sizes``, then at sizes one larger (a size-dependent slip shows)."""
    out = []
    for i in range(count):
        at = dict(sizes) if i < 2 else {k: v + i - 1 for k, v in sizes.items()}
        out.append(_Point(at, {name: inp.draw(at, rng) for name, inp in inputs.items()}))
    return out


def _judge_symbolic(traced: _Symbolic, forward, backward, wrt, points: list[_Point], timeout: float, seed: int
                    ) -> tuple[list[GradientResult], _Point]:
    """Per gradient: a proof for every size, then the numbers at ``points`` (the first disagreement refutes,
    and check_grad diagnoses it there). Returns the results and the point of the refutation (else the first)."""
    from .simplify import Budget

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
    refuted_at = points[0]
    for i, point in enumerate(points):
        expected = _truth_values(compiled, traced, wrt, point)
        if i == 0:
            _trust(forward, wrt, expected, point, seed)
        got = _gradients(backward, point.arrays, wrt)
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
            rel = _relative_errors(got[k], expected[k])
            worst[k] = max(worst[k], float(rel.max()) if rel.size else 0.0)
            if rel.size and not rel.max() <= RTOL:
                entry = tuple(int(i) for i in np.unravel_index(int(np.argmax(rel)), rel.shape))
                diagnosis = _numeric_diagnosis(forward, name, got[k], point, seed)
                if proofs[k]:  # the expansions matched but the user's own numbers do not: the numbers win
                    diagnosis.append("the traced expressions matched but the backward's numbers do not "
                                     "(a bug of symgrad: please report it)")
                results[k] = GradientResult(name, "refuted", f"float64 evaluation at {point.where()}",
                                            shape=got[k].shape, entry=entry, expected=float(expected[k][entry]),
                                            got=float(got[k][entry]), truth=traced.truths[k],
                                            claim=traced.claims[k], max_rel_error=worst[k], diagnosis=diagnosis)
                refuted_at = point
    out = []
    for k, name in enumerate(wrt):
        if results[k] is not None:
            out.append(results[k])
            continue
        status, how = (("proven", "the traced backward equals the derivation for every size") if proofs[k] else
                       ("consistent", f"not proven symbolically; agrees at {len(points)} random points, "
                                      f"relative error ≤ {RTOL:g}"))
        out.append(GradientResult(name, status, how, shape=np.shape(points[0].arrays[name]), truth=traced.truths[k],
                                  claim=traced.claims[k], max_rel_error=worst[k]))
    return out, refuted_at


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
    from .tracing import Labels

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
    values = compiled(**{k: v for k, v in kwargs.items() if k in compiled.params})
    values = values if isinstance(values, tuple) else (values,)
    return [np.asarray(traced.graph.gradient_of(name, v), dtype=np.float64).reshape(np.shape(point.arrays[name]))
            for name, v in zip(wrt, values)]


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
    """Per gradient, check_grad at each point (the first refutation stands). Returns the results and the
    point of the first refutation (else the first point)."""
    results: dict[str, GradientResult] = {}
    refuted_at = None
    for point in points:
        arrays = point.arrays
        for name, g in zip(wrt, _gradients(backward, arrays, wrt)):
            if name in results and not results[name].ok:
                continue
            result = _check_one(forward, name, g, arrays, seed, point)
            if name not in results or not result.ok:
                results[name] = result
            if not result.ok and refuted_at is None:
                refuted_at = point
    return [results[name] for name in wrt], refuted_at or points[0]


def _check_one(forward, name: str, g: np.ndarray, arrays: Mapping[str, Any], seed: int, point: _Point
               ) -> GradientResult:
    reason = _wrong_shape(name, g, arrays[name])
    if reason:
        return GradientResult(name, "refuted", "its shape", shape=np.shape(arrays[name]), reason=reason,
                              max_rel_error=float("inf"))

    def f(w):
        return forward(**{**arrays, name: w})

    report = check_grad(f, lambda w: g, arrays[name], seed=seed)
    how = (f"finite differences at {point.where()}, {report.checked} entries, max relative error "
           f"{report.max_rel_error:.1e}")
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

    c = sp.sympify(c)
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
