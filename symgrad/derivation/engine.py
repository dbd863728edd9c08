"""Derive: derivatives, gradients and Jacobians in textbook form.

``derive(expr, wrt)`` folds elementary forms into catalog blocks, lets SymPy's chain
rule call each block's derivative identity (``fdiff``), then brings the product to
textbook form (``simplify.textbook``). It also keeps the plain-SymPy derivative of the
elementary expression (``raw``) and the seeds' chain of local gradients (``steps``).

Shapes: the gradient of a scalar has the shape of ``wrt`` (a symbol, or a Matrix of
symbols); the derivative of a vector expression with respect to a vector is its
Jacobian (rows: outputs, columns: inputs); with ``upstream=g`` the result is the
vector–Jacobian product gᵀ ∂expr/∂wrt (the seeds' "local gradient × upstream gradient").
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Any, Sequence, Union

import sympy as sp
from sympy.matrices.expressions.hadamard import HadamardProduct

from ..catalog.base import constraints_of
from ..errors import SymgradLimit
from ..symbols import free_inputs, is_dimension
from ..catalog.rows import RowLogSoftmax, RowSoftmax, is_matrix_expression, row_simplex_targets
from .matrix_rules import as_scalar, tidy, vector_jacobian
from .graph import Graph, expanded_size, expression_graph, is_block_output
from ..catalog.activations import IndexedSoftmax, SoftmaxEntry
from ..catalog.registry import functions
from ..catalog.losses import BCE, BCEWithLogits, CrossEntropy
from ..catalog.vectors import as_vector, to_sympy
from ..checks.crosscheck import cross_check
from ..compiler.backprop import compile_backprop
from ..compiler.function import compile_derivation
from ..parsing.python import parse
from ..printing.tex import derivation_latex, latex
from ..simplify.budget import Budget
from ..simplify.rules import elementary, fold
from ..simplify.textbook import textbook

__all__ = ["derive", "hessian", "hvp", "Derivation", "Step"]

WrtLike = Union[sp.Symbol, sp.Indexed, sp.MatrixBase, str]
Result = Union[sp.Expr, sp.MatrixBase]


@dataclass(frozen=True)
class Step:
    """One line of a derivation: ``lhs = rhs``, with what was done (``kind``)."""

    kind: str  # "goal" | "local" | "chain" | "raw" | "textbook"
    lhs: sp.Basic
    rhs: sp.Basic
    note: str = ""


class _Pending:
    """A Derivation field not computed yet (it is, from the reverse pass, on first read)."""

    def __repr__(self) -> str:
        return "<pending>"


PENDING = _Pending()


@dataclass
class Derivation:
    """The derivative of ``expr`` with respect to ``wrt``, in textbook and plain form.

    ``expr`` is what was differentiated: the user's expression after folding (and, with
    an ``upstream`` gradient g, the contraction gᵀ·expr).

    ``result``/``raw`` are one expression (or Matrix) for a single ``wrt`` and a tuple,
    in the order given, for a list. ``assumptions`` lists what the textbook form uses
    (Σ y = 1 for targets, 1 ≤ k ≤ n for indices); ``notes`` lists bounds that were hit.

    ``program`` is the reverse pass itself (a :class:`~symgrad.derivation.graph.Backprop` over the
    expression's named intermediates, one pass for every wrt). ``result``, ``raw``, ``steps`` and
    ``intermediates`` are built from it the first time one of them is read, and kept; when the
    fully substituted result would be large (``large``: a deep network), ``named`` and
    ``compile()`` use the program's own names instead of expanding it.
    """

    expr: sp.Basic
    wrt: tuple[sp.Basic, ...]
    result: Any = PENDING
    raw: Any = PENDING
    upstream: sp.Basic | None = None
    steps: list[Step] = PENDING
    intermediates: dict[sp.Symbol, sp.Expr] = PENDING
    assumptions: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    single: bool = True
    backprop: Any = None  # the graph's reverse pass, when derived from a user's Graph
    program: Any = None  # the reverse pass over the expression's named intermediates
    large: bool = False
    fill: Any = dataclasses.field(default=None, repr=False, compare=False)
    named_results: Any = dataclasses.field(default=None, repr=False)  # set when the program names them

    def __getattribute__(self, name: str):
        value = object.__getattribute__(self, name)
        if value is PENDING:
            for key, computed in object.__getattribute__(self, "fill")().items():
                object.__setattr__(self, key, computed)
            value = object.__getattribute__(self, name)
        return value

    # -- views ------------------------------------------------------------------------
    @property
    def results(self) -> tuple:
        """The textbook results as a tuple (one per ``wrt``)."""
        return (self.result,) if self.single else tuple(self.result)

    @property
    def raws(self) -> tuple:
        return (self.raw,) if self.single else tuple(self.raw)

    @property
    def is_matrix(self) -> bool:
        """Whether this is a matrix-expression derivation (MatrixSymbol inputs)."""
        return is_matrix_expression(self.expr)

    @property
    def named(self) -> Any:
        """The result written with the intermediates' names (a = σ(z), h = σ(XW), …)."""
        if self.backprop is not None:
            out = tuple(self.backprop.expanded(w) if w in self.backprop.gradients else
                        sp.ZeroMatrix(*w.shape) if isinstance(w, sp.MatrixSymbol) else sp.S.Zero for w in self.wrt)
            out = tuple(_coefficients_first(tidy(g)) if isinstance(g, sp.MatrixExpr) else g for g in out)
            return out[0] if self.single else out
        if self.named_results is not None:
            return self.named_results
        if self.large:  # the reverse pass's own names: linear in the depth
            out = tuple(_named_from_program(self.program, w) for w in self.wrt)
            return out[0] if self.single else out
        back = _renaming(self.intermediates)
        out = tuple(r.xreplace(back) for r in self.results)
        return out[0] if self.single else out

    def free_symbols(self) -> list[sp.Symbol]:
        """Every input symbol, sorted by name: the compiled function's keyword arguments."""
        if self.large:
            return sorted(self.program.graph.inputs, key=lambda s: s.name)
        syms = set(free_inputs(self.expr))
        for r in self.results:
            syms |= free_inputs(r)
        if self.is_matrix:  # sizes come from the arrays' shapes
            syms = {s for s in syms if isinstance(s, sp.MatrixSymbol) or not is_dimension(s, self.expr)}
        if self.upstream is not None:
            syms |= free_inputs(self.upstream)
        return sorted(syms, key=lambda s: s.name)

    # -- the next stages of the pipeline ----------------------------------------------
    def compile(self, *, stable: bool = True):
        """A NumPy function of the free symbols (keywords, by name) computing ``result``.

        For a list ``wrt`` it returns a tuple in the same order; matrix results come back
        as arrays of the matrix's shape (after any broadcast batch axes)."""
        if self.backprop is not None:
            compiled = compile_backprop(self.backprop, self.wrt, stable=stable)
            adapt = getattr(self.backprop.graph, "adapt_compiled", None)  # a traced forward: its own arguments
            return compiled if adapt is None else adapt(compiled)
        if self.large:  # the named program: one line per intermediate and per adjoint
            return compile_backprop(self.program, self.wrt, stable=stable)
        return compile_derivation(self, stable=stable)

    def latex(self, **options) -> str:
        """An ``align*`` derivation: goal, local gradients, chain rule, plain SymPy, textbook."""
        return derivation_latex(self, **options)

    def check(self, **options):
        """Cross-check ``result`` numerically (finite differences and plain SymPy)."""
        return cross_check(self, **options)

    def _repr_markdown_(self) -> str:
        return "$$\n" + self.latex().replace("align*", "aligned") + "\n$$"

    def _repr_latex_(self) -> str:
        return "$\\displaystyle " + latex(self.named if self.single else sp.Tuple(*self.named)) + "$"

    def __str__(self) -> str:
        names = ", ".join(_name(w) for w in self.wrt)
        body = self.result if self.single else tuple(self.result)
        return f"d/d({names}) {sp.sstr(self.expr)} = {sp.sstr(body)}"


def _coefficients_first(G: sp.MatrixExpr) -> sp.MatrixExpr:
    """Numeric factors in front, the textbook way: hᵀ(2(ŷ − y)) → 2hᵀ(ŷ − y), (2A) ∘ B → 2(A ∘ B)."""
    def pull(node):
        coeff, rest = sp.S.One, []
        for a in node.args:
            if isinstance(a, sp.MatMul) and a.args[0].is_number and len(a.args) > 1:
                coeff, inner = coeff * a.args[0], a.args[1:]
                a = inner[0] if len(inner) == 1 else sp.MatMul(*inner)
            elif isinstance(node, sp.MatMul) and a.is_number:
                coeff, a = coeff * a, None
            if a is not None:
                rest.append(a)
        if coeff == 1:
            return node
        body = node.func(*rest) if len(rest) > 1 or isinstance(node, sp.MatMul) else rest[0]
        return sp.MatMul(coeff, *(body.args if isinstance(body, sp.MatMul) else (body,)))

    return G.replace(lambda n: isinstance(n, (sp.MatMul, HadamardProduct)), pull)


# --- the pipeline step ----------------------------------------------------------------------
def derive(expr: Any, wrt: WrtLike | Sequence[WrtLike], *, upstream: Any = None,
           timeout: float = 5.0) -> Derivation:
    r"""Differentiate ``expr`` with respect to ``wrt`` and bring the result to textbook form.

    .. math:: \frac{\partial f}{\partial w} = \prod_k \frac{\partial u_k}{\partial u_{k+1}}
              \quad\text{e.g.}\quad \frac{d\sigma}{dx} = \sigma(x)\,(1 - \sigma(x))

    ``expr``: a SymPy expression or Matrix (catalog blocks or plain SymPy), or text parsed
    by symgrad's whitelisting parser. ``wrt``: a symbol, an indexed entry ``x[k]``, a Matrix
    of symbols, a symbol name, or a list of these. ``upstream``: an upstream gradient of the
    shape of ``expr`` (gives the vector–Jacobian product). ``timeout``: seconds for the
    bounded simplification steps (a bound that is hit is listed in ``notes``).
    """
    started = time.perf_counter()
    single = not isinstance(wrt, (list, tuple))
    wrts = [wrt] if single else list(wrt)
    if not wrts:
        raise ValueError("wrt is empty: name at least one variable to differentiate with respect to")
    if isinstance(expr, Graph):
        return _derive_graph(expr, wrts, single, started)
    expr = _as_expression(expr)
    if is_matrix_expression(expr):
        return _derive_matrices(expr, wrts, single, upstream, started, timeout)
    wrts = [_resolve_wrt(w, expr) for w in wrts]
    target = expr if upstream is None else _contract(expr, upstream)

    folded = fold(target)
    groups = constraints_of(folded)
    budget = Budget(timeout)
    if _sweepable(folded, wrts):
        return _derive_sweep(folded, target, wrts, single, upstream, groups, budget, started)
    return _derive_entrywise(folded, target, wrts, single, upstream, groups, budget, started)


def _sweepable(folded: sp.Basic, wrts: Sequence) -> bool:
    """Scalar expressions of scalar symbols (or of matrices of them) go through the reverse pass over
    named intermediates."""
    return isinstance(folded, sp.Expr) and not folded.has(sp.Indexed, sp.Sum, sp.IndexedBase) and all(
        isinstance(w, sp.Symbol) or (isinstance(w, sp.MatrixBase) and all(isinstance(e, sp.Symbol) for e in w))
        for w in wrts)


# Past this many nodes (every name substituted) a result is kept in the reverse pass's names: it is
# compiled as the named program and shown with its intermediates, never expanded unless asked.
EXPANDED_LIMIT = 1500


def _derive_sweep(folded, target, wrts, single, upstream, groups, budget, started) -> Derivation:
    """One reverse pass over the expression's named intermediates for every wrt at once."""
    graph = expression_graph(folded)
    flat = [e for w in wrts for e in (w if isinstance(w, sp.MatrixBase) else [w])]
    bp = graph.backprop(budget=budget, wrt=flat)
    large = all(isinstance(w, sp.Symbol) for w in wrts) and expanded_size(bp, flat, EXPANDED_LIMIT) > EXPANDED_LIMIT

    def gradient(w):  # in the shape of w
        if isinstance(w, sp.MatrixBase):
            return w.applyfunc(lambda e: textbook(_substituted(bp, e), groups, budget))
        return textbook(_substituted(bp, w), groups, budget)

    def fill():
        results = [gradient(w) for w in wrts]
        plain = elementary(target)
        raws = [sp.diff(plain, w) for w in wrts]
        steps, names = _scalar_steps(folded, wrts, results, raws)
        return dict(result=results[0] if single else tuple(results), raw=raws[0] if single else tuple(raws),
                    steps=steps, intermediates=names)

    d = Derivation(folded, tuple(wrts), upstream=_as_upstream(upstream), assumptions=_simplex_notes(groups),
                   notes=budget.hits, single=single, program=bp, fill=fill, large=large)
    d.seconds = time.perf_counter() - started
    return d


def _substituted(bp, w) -> sp.Basic:
    """∂out/∂w in the inputs: every adjoint and intermediate name replaced by its definition."""
    if w not in bp.gradients:
        return sp.ZeroMatrix(*w.shape) if isinstance(w, sp.MatrixSymbol) else sp.S.Zero
    return bp.graph.substitute(bp.expanded(w))


def _named_from_program(bp, w) -> sp.Basic:
    """∂out/∂w in the reverse pass's intermediates (a1 = σ(…), h1 = σ(X W1), …), adjoints substituted."""
    if w not in bp.gradients:
        return sp.ZeroMatrix(*w.shape) if isinstance(w, sp.MatrixSymbol) else sp.S.Zero
    out = bp.expanded(w)
    return tidy(out) if isinstance(out, sp.MatrixExpr) else textbook(out)


def _program_names(bp, wrts, budget) -> tuple[tuple, dict]:
    """The results in the program's names for block outputs (h = σ(XW), a = softmax(z), …), other
    shared subexpressions written out (2Wxxᵀ, not 2uxᵀ); and those names with their definitions,
    each through the earlier names (h2 = σ(h1 W2))."""
    graph = bp.graph
    inline = {k: v for k, v in graph.exprs.items() if k != graph.output and not is_block_output(v)}

    def written(expr):
        for _ in range(len(inline) + 1):
            new = expr.xreplace(inline)
            if new == expr:
                break
            expr = new
        return expr

    named = []
    for w in wrts:
        out = written(bp.expanded(w)) if w in bp.gradients else (
            sp.ZeroMatrix(*w.shape) if isinstance(w, sp.MatrixSymbol) else sp.S.Zero)
        named.append(tidy(out) if isinstance(out, sp.MatrixExpr) else textbook(out, budget=budget))
    named, probabilities = _name_probabilities(named, graph)
    shown: set = set()
    for r in named:
        shown |= {m for m in r.atoms(sp.MatrixSymbol)} | set(r.free_symbols)
    names: dict = {}
    for k, v in graph.exprs.items():  # in evaluation order: h1 before h2
        if k in inline or k == graph.output:
            continue
        definition = written(v)
        names[k] = definition
    names.update(probabilities)
    # keep the names the results use and those their definitions use
    used = {k for k in names if k in shown}
    for k in reversed(list(names)):
        if k in used:
            used |= {s for s in names[k].atoms(sp.MatrixSymbol) | names[k].free_symbols if s in names}
    return tuple(named), {k: v for k, v in names.items() if k in used}


def _name_probabilities(named: list, graph) -> tuple[list, dict]:
    """a = softmax(z) for the softmax outputs that appear only in the gradient (CE∘softmax → a − y)."""
    taken = {m.name for r in named for m in r.atoms(sp.MatrixSymbol)} | {getattr(k, "name", "") for k in graph.exprs}
    taken |= {m.name for v in graph.exprs.values() for m in v.atoms(sp.MatrixSymbol)}
    found: dict = {}
    for r in named:
        for node in sp.preorder_traversal(r):
            if isinstance(node, sp.Transpose) and isinstance(node.arg, RowSoftmax) and node.shape[1] == 1:
                found.setdefault(node, None)  # the softmax of a column vector: a
            elif isinstance(node, RowSoftmax) and node.shape[0] != 1:
                found.setdefault(node, None)  # softmax of each row of a matrix: A
    names = {}
    for node in found:
        base = "a" if node.shape[1] == 1 else "A"
        label = next(c for c in (base, base + "1", base + "2", base + "3") if c not in taken) if base in taken else base
        taken.add(label)
        names[sp.MatrixSymbol(label, *node.shape)] = node
    back = _renaming(names)
    return [r.xreplace(back) for r in named], names


def _simplex_notes(groups) -> list[str]:
    return [f"{' + '.join(sp.sstr(g) for g in group)} = 1 (targets lie on the simplex)" for group in groups]


def _scalar_steps(folded, wrts, results, raws) -> tuple[list, dict]:
    """The seeds' chain of local gradients for each wrt, and the names of the block outputs."""
    steps, chain_names = [], {}
    for w, result, raw in zip(wrts, results, raws):
        w_steps, w_names = _chain_steps(folded, w, result, raw)
        steps += w_steps
        for name, value in w_names.items():
            chain_names.setdefault(name, value)
    names = _name_outputs(results, folded, chain_names)
    back = {value: name for name, value in names.items()}
    steps = [dataclasses.replace(st, rhs=st.rhs.xreplace(back)) if st.kind in ("local", "chain", "textbook") else st
             for st in steps]
    return steps, names


def _derive_entrywise(folded, target, wrts, single, upstream, groups, budget, started) -> Derivation:
    """Explicit vectors and matrices of symbols, and indexed sums: each entry differentiated."""
    plain = elementary(target)
    index_notes: list[str] = []
    results, raws = [], []
    for w in wrts:
        results.append(_entrywise(folded, w, lambda e, v: textbook(sp.diff(e, v), groups, budget, index_notes)))
        raws.append(_entrywise(plain, w, lambda e, v: sp.diff(e, v)))
    assumptions = _simplex_notes(groups)
    assumptions += [f"{note} (the index lies in the summation range)" for note in index_notes]
    steps, names = _scalar_steps(folded, wrts, results, raws)
    return Derivation(
        expr=folded, wrt=tuple(wrts), result=results[0] if single else tuple(results),
        raw=raws[0] if single else tuple(raws), upstream=_as_upstream(upstream),
        steps=steps, intermediates=names, assumptions=assumptions, notes=list(budget.hits),
        seconds=time.perf_counter() - started, single=single,
    )


# --- matrix expressions ---------------------------------------------------------------------------
def _derive_matrices(expr, wrts, single, upstream, started, timeout=5.0) -> Derivation:
    """derive() for MatrixSymbol expressions: symgrad's own matrix chain rule (matrices.py)."""
    expr = fold(expr)
    dims = {d for m in expr.atoms(sp.MatrixSymbol) for d in m.shape}
    inputs = {m.name: m for m in expr.atoms(sp.MatrixSymbol)}
    inputs.update({s.name: s for s in expr.free_symbols if isinstance(s, sp.Symbol) and s not in dims})
    listing = ", ".join(sorted(inputs))
    resolved = []
    for w in wrts:
        if isinstance(w, str):
            if w not in inputs:
                raise ValueError(f"cannot differentiate with respect to {w!r}: not an input of the expression "
                                 f"(its inputs: {listing})")
            w = inputs[w]
        if not isinstance(w, (sp.MatrixSymbol, sp.Symbol)):
            raise TypeError("with matrix expressions, wrt must be a MatrixSymbol or a scalar Symbol of the "
                            f"expression, or its name (its inputs: {listing}); got {type(w).__name__}")
        if w in dims:
            raise ValueError(f"cannot differentiate with respect to {w.name!r}: it is a size of the matrices")
        if not expr.has(w):
            raise ValueError(f"cannot differentiate with respect to {w.name!r}: it does not appear in the "
                             f"expression (its inputs: {listing})")
        resolved.append(w)
    if upstream is not None:
        if not isinstance(expr, sp.MatrixExpr) or getattr(upstream, "shape", None) != expr.shape:
            raise ValueError("upstream must be a matrix of the expression's shape")
        expr = sp.Trace(upstream.T * expr)
    if isinstance(expr, sp.MatrixExpr) and expr.shape[1] == 1 and expr.shape[0] != 1 \
            and all(w.shape[1] == 1 for w in resolved):
        jacobians = [vector_jacobian(expr, w) for w in resolved]
        names = _name_vector_outputs(expr)
        back = _renaming(names)
        steps = [Step("textbook", sp.Derivative(VectorName("f"), w, evaluate=False), J.xreplace(back),
                      "Jacobian (rows: outputs)") for w, J in zip(resolved, jacobians)]
        return Derivation(expr=expr, wrt=tuple(resolved), result=jacobians[0] if single else tuple(jacobians),
                          raw=None if single else tuple(None for _ in jacobians), steps=steps, intermediates=names,
                          seconds=time.perf_counter() - started, single=single)
    L = as_scalar(expr)
    budget = Budget(timeout)
    graph = expression_graph(L)
    bp = graph.backprop(budget=budget, wrt=resolved)
    large = expanded_size(bp, resolved, EXPANDED_LIMIT) > EXPANDED_LIMIT

    def fill():
        results = [tidy(r) if isinstance(r, sp.MatrixExpr) else textbook(r, budget=budget)
                   for r in (_substituted(bp, w) for w in resolved)]
        named, names = _program_names(bp, resolved, budget)
        var = lambda w: sp.Derivative(sp.Symbol("L"), w, evaluate=False)  # noqa: E731
        steps = [Step("goal", var(w), sp.Derivative(L, w, evaluate=False), "what we want") for w in resolved]
        steps += [Step("textbook", var(w), r, "matrix chain rule") for w, r in zip(resolved, named)]
        return dict(result=results[0] if single else tuple(results), named_results=named[0] if single else named,
                    raw=None if single else tuple(None for _ in results), steps=steps, intermediates=names)

    assumptions = [f"the entries of {Y.arg} sum to 1 (targets lie on the simplex)"
                   if isinstance(Y, sp.Transpose) and Y.shape[0] == 1 else
                   f"the rows of {Y} sum to 1 (targets lie on the simplex)" for Y in row_simplex_targets(L)]
    budget.hits.append("SymPy's own matrix derivative is not used (it returns 0 for ((W*x).T*(W*x))[0, 0] and a "
                       "wrong term through elementwise functions); raw is None")
    d = Derivation(L, tuple(resolved), upstream=upstream, assumptions=assumptions, notes=budget.hits,
                   single=single, program=bp, fill=fill, large=large, named_results=PENDING)
    d.seconds = time.perf_counter() - started
    return d


def _derive_graph(graph, wrts, single, started) -> Derivation:
    """derive() on a computational graph: reverse mode over its named intermediates."""
    by_name = {getattr(v, "name", str(v)): v for v in graph.inputs}
    resolved = []
    for w in wrts:
        key = by_name.get(w) if isinstance(w, str) else w
        if key not in graph.inputs:
            raise ValueError(f"{w!r} is not an input of the graph (inputs: {', '.join(sorted(by_name))})")
        resolved.append(key)
    budget = Budget(5.0)
    bp = graph.backprop(budget=budget, wrt=resolved)  # only the paths to wrt (targets get no gradient)
    top = graph.output
    expr = graph.expression()

    def fill():  # the global (fully substituted) forms, built from the names when first read
        d = lambda v: sp.Derivative(top, v, evaluate=False)  # noqa: E731
        steps = [Step("edge", sp.Derivative(e.node, e.input, evaluate=False),
                      e.local if e.local is not None else e.product, e.gate) for e in bp.edges]
        steps += [Step("upstream", g, bp.gradients[node], f"upstream gradient of {node}: sum over its uses")
                  for node, g in bp.upstream_names.items() if node in bp.gradients]
        results = []
        for w in resolved:
            if w not in bp.gradients:
                results.append(sp.ZeroMatrix(*w.shape) if isinstance(w, sp.MatrixSymbol) else sp.S.Zero)
                continue
            steps.append(Step("chain", d(w), bp.gradients[w], "local gradient × upstream gradient"))
            named = bp.expanded(w)
            steps.append(Step("named", d(w), _coefficients_first(tidy(named)) if isinstance(named, sp.MatrixExpr) else named,
                              "in the graph's names"))
            results.append(bp.global_gradient(w))
            steps.append(Step("textbook", d(w), results[-1], "in the inputs"))
        raws = [None if is_matrix_expression(expr) else sp.diff(elementary(expr), w) for w in resolved]
        return dict(result=results[0] if single else tuple(results), raw=raws[0] if single else tuple(raws),
                    steps=steps, intermediates=dict(graph.exprs))

    derivation = Derivation(expr=expr, wrt=tuple(resolved), notes=budget.hits, single=single, backprop=bp,
                            program=bp, fill=fill)
    derivation.seconds = time.perf_counter() - started
    return derivation


def _name_vector_outputs(F) -> dict:
    """a for a vector block's output (softmax(z), σ(Wx)), written back through the name."""
    from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

    names: dict = {}
    taken = {m.name for m in F.atoms(sp.MatrixSymbol)}
    letters = (c for c in ("a", "h", "p", "q") if c not in taken)
    for node in sp.preorder_traversal(F):
        is_vector_block = isinstance(node, sp.Transpose) and isinstance(node.arg, (RowSoftmax, RowLogSoftmax))
        if (is_vector_block or isinstance(node, ElementwiseApplyFunction)) and node not in names.values():
            if isinstance(node, sp.Transpose) and isinstance(node.arg, RowLogSoftmax):
                node = sp.Transpose(RowSoftmax(node.arg.arg))  # name the probabilities a
            letter = next(letters, None)
            if letter is None:
                break
            names[sp.MatrixSymbol(letter, *node.shape)] = node
    return names


def _name_matrix_outputs(results, L) -> dict:
    """h, h1, h2, … for the elementwise blocks' outputs σ(XW) left in the results."""
    from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

    taken = {m.name for m in L.atoms(sp.MatrixSymbol)}
    forward = set(L.atoms(ElementwiseApplyFunction))
    forward |= {sp.Transpose(n).doit() for n in forward}
    found: list = []

    def transposes(node):
        return sum(isinstance(n, sp.Transpose) for n in sp.preorder_traversal(node.expr))

    for r in results:
        for node in sp.preorder_traversal(r):
            if isinstance(node, ElementwiseApplyFunction) and node in forward:
                twin = sp.Transpose(node).doit()
                if node not in found and twin not in found:
                    # name the orientation the user wrote: σ(x W1), not σ(W1ᵀ xᵀ)
                    found.append(node if transposes(node) <= transposes(twin) else twin)
    letter = next(c for c in ("h", "a", "g", "u") if c not in taken)
    names = {}
    for k, node in enumerate(found, start=1):
        names[sp.MatrixSymbol(letter if len(found) == 1 else f"{letter}{k}", *node.shape)] = node
    return names


def _renaming(intermediates: dict) -> dict:
    """value → name, with the transposed twins of matrix intermediates (σ(XW)ᵀ → hᵀ)."""
    back = {v: k for k, v in intermediates.items()}
    for k, v in intermediates.items():
        if isinstance(v, sp.MatrixExpr):
            back[sp.Transpose(v).doit()] = k.T
            if isinstance(v, sp.Transpose):
                back[v.arg] = k.T
    return back


# --- inputs ------------------------------------------------------------------------------------
def _as_expression(expr: Any) -> sp.Basic:
    if isinstance(expr, str):
        return parse(expr)
    if isinstance(expr, (list, tuple)):
        return as_vector(expr, "expression")
    if isinstance(expr, sp.MatrixBase):
        return sp.Matrix(expr)
    if isinstance(expr, (sp.Expr, sp.MatrixExpr)):
        return explicit_broadcasts(expr)
    if isinstance(expr, (int, float)):
        return to_sympy(expr, "expression")
    raise TypeError(f"cannot differentiate a {type(expr).__name__}; pass a SymPy expression, a Matrix or text")


def explicit_broadcasts(expr: sp.Basic) -> sp.Basic:
    """A sum of an N×D matrix and a 1×D row (or N×1 column) with the broadcast written out, X − 1a:
    SymPy gives such a sum its first term's shape when the sizes are symbols, so ‖a − X‖² would
    differentiate to a 1×D "gradient" of the N×D matrix X; written out, it is 2(X − 1a), N×D."""
    if not isinstance(expr, sp.Basic) or not expr.has(sp.MatAdd):
        return expr

    def full(node):
        rows = next((a.shape[0] for a in node.args if a.shape[0] != 1), 1)
        cols = next((a.shape[1] for a in node.args if a.shape[1] != 1), 1)
        return rows, cols

    def spread(node):
        rows, cols = full(node)
        terms = []
        for a in node.args:
            if a.shape[0] == 1 and rows != 1:
                a = sp.OneMatrix(rows, 1) * a
            if a.shape[1] == 1 and cols != 1:
                a = a * sp.OneMatrix(1, cols)
            terms.append(a)
        return sp.MatAdd(*terms)

    return expr.replace(lambda n: isinstance(n, sp.MatAdd) and any(a.shape != full(n) for a in n.args), spread)


def _as_upstream(upstream: Any) -> sp.Basic | None:
    if upstream is None:
        return None
    if isinstance(upstream, (list, tuple, sp.MatrixBase)):
        return sp.Matrix(upstream) if isinstance(upstream, sp.MatrixBase) else as_vector(upstream, "upstream")
    return to_sympy(upstream, "upstream")


def _contract(expr: sp.Basic, upstream: Any) -> sp.Expr:
    """gᵀ expr: the scalar whose gradient is the vector–Jacobian product."""
    g = _as_upstream(upstream)
    if isinstance(expr, sp.MatrixBase):
        if not isinstance(g, sp.MatrixBase) or len(g) != len(expr):
            raise ValueError(f"upstream must have the shape of the expression ({expr.rows}×{expr.cols})")
        return sp.Add(*[gi * ei for gi, ei in zip(g, expr)])
    if isinstance(g, sp.MatrixBase):
        raise ValueError("the expression is a scalar: its upstream gradient must be a scalar too")
    return g * expr


def _name(w: sp.Basic) -> str:
    return sp.sstr(w) if not isinstance(w, sp.MatrixBase) else f"[{', '.join(sp.sstr(e) for e in w)}]"


def _resolve_wrt(w: WrtLike, expr: sp.Basic) -> sp.Basic:
    symbols = sorted({s for s in expr.free_symbols if isinstance(s, sp.Symbol)}, key=lambda s: s.name)
    listing = ", ".join(s.name for s in symbols) or "none"
    if isinstance(w, str):
        matches = [s for s in symbols if s.name == w]
        if not matches:
            raise ValueError(f"cannot differentiate with respect to {w!r}: it is not a symbol of the expression (its symbols: {listing})")
        return matches[0]
    if isinstance(w, (list, tuple)):
        w = as_vector(w, "wrt")
    if isinstance(w, sp.MatrixBase):
        if not all(isinstance(e, (sp.Symbol, sp.Indexed)) for e in w):
            raise TypeError("a matrix wrt must hold symbols only (e.g. symgrad.matrix('W', 2, 2))")
        if not any(expr.has(e) for e in w):
            raise ValueError(f"none of the entries of wrt appear in the expression (its symbols: {listing})")
        return sp.Matrix(w)
    if isinstance(w, sp.Indexed):
        if not expr.has(w.base):
            raise ValueError(f"cannot differentiate with respect to {w}: {w.base} does not appear in the expression")
        return w
    if isinstance(w, sp.Symbol):
        if not expr.has(w):
            hint = ""
            same = [s for s in symbols if s.name == w.name]
            if same:
                hint = (f"; the expression has a symbol {w.name!r} with other assumptions "
                        f"({'real' if same[0].is_real else 'no assumptions'}): use that symbol or its name")
            raise ValueError(f"cannot differentiate with respect to {w.name!r}: it does not appear in the expression (its symbols: {listing}){hint}")
        return w
    raise TypeError(f"wrt must be a symbol, an indexed entry, a Matrix of symbols or a name, got {type(w).__name__}")


def _entrywise(expr: sp.Basic, w: sp.Basic, d) -> Result:
    """∂expr/∂w with the documented shapes (gradient in the shape of w; Jacobian m × n)."""
    if not isinstance(expr, sp.MatrixBase):
        if isinstance(w, sp.MatrixBase):
            return w.applyfunc(lambda v: d(expr, v))
        return d(expr, w)
    if not isinstance(w, sp.MatrixBase):
        return expr.applyfunc(lambda e: d(e, w))
    if 1 in expr.shape and 1 in w.shape:
        return sp.Matrix(len(expr), len(w), lambda i, j: d(list(expr)[i], list(w)[j]))
    raise SymgradLimit(
        f"the derivative of a {expr.rows}×{expr.cols} matrix with respect to a {w.rows}×{w.cols} "
        "matrix is a 4-way tensor; pass upstream=G (same shape as the expression) for the "
        "vector–Jacobian product, as backprop does"
    )


# --- the seeds' chain of local gradients ---------------------------------------------------------
class VectorName(sp.Symbol):
    """A vector's name for display: printed bold (\\mathbf{x})."""

    def _latex(self, printer, **kwargs):
        return rf"\mathbf{{{printer._print(sp.Symbol(self.name))}}}"


class MatrixName(sp.Symbol):
    """A matrix's name for display (W, or W^{[1]} for a layer's W1_ij)."""

    def _latex(self, printer, **kwargs):
        name = self.name
        if name[-1:].isdigit() and name.rstrip("0123456789"):
            base = name.rstrip("0123456789")
            return rf"{printer._print(sp.Symbol(base))}^{{[{name[len(base):]}]}}"
        return printer._print(sp.Symbol(name))


def variable_name(w: sp.Basic) -> sp.Basic:
    """What to write under ∂ for w: itself, or the common name of a matrix's entries."""
    if not isinstance(w, sp.MatrixBase):
        return w
    prefix = os.path.commonprefix([getattr(e, "name", "") for e in w]).rstrip("_")
    prefix = prefix.rstrip("0123456789") if 1 in w.shape and len(w) > 1 else prefix
    if not prefix or not prefix[0].isalpha():
        prefix = "w"
    if 1 in w.shape:
        return VectorName(prefix.rstrip("_"))
    return MatrixName(prefix)


_NAMES = ("u", "v", "r", "s")


def _chain_steps(expr: sp.Basic, w: sp.Basic, result, raw) -> tuple[list[Step], dict]:
    """Goal, the local gradient of each block on the path to w, their product, the results.

    Intermediates on the path get the seeds' names (L or f at the top, then a, z, …), so
    ∂L/∂a = −y/a + (1 − y)/(1 − a), ∂a/∂z = a(1 − a), ∂z/∂w = x for BCE(σ(wx + b), y)."""
    var = variable_name(w)
    d = lambda top: sp.Derivative(top, var, evaluate=False)  # noqa: E731
    if isinstance(expr, sp.MatrixBase) or isinstance(w, sp.MatrixBase):
        top = VectorName("f") if isinstance(expr, sp.MatrixBase) else sp.Symbol("L" if _is_loss(expr) else "f")
        return [Step("raw", d(top), raw, "plain SymPy, elementary form"),
                Step("textbook", d(top), result, "textbook form")], {}
    top = sp.Symbol("L" if _is_loss(expr) else "f")
    chain: list[tuple[sp.Symbol, sp.Basic]] = [(top, expr)]
    taken = {s.name for s in expr.free_symbols if isinstance(s, sp.Symbol)} | {top.name}
    node = expr
    while isinstance(node, sp.Function) and len(chain) <= len(_NAMES):
        moving = [a for a in node.args if a.has(w)]
        if len(moving) != 1 or moving[0] == w:
            break
        node = moving[0]
        name = _role_name(node, taken)
        if name is None:
            break
        taken.add(name)
        chain.append((sp.Symbol(name), node))
    rename = {value: name for name, value in chain[1:]}
    steps = [Step("goal", d(top), d(expr), "what we want")]
    if len(chain) > 1:  # ∂L/∂w = ∂L/∂a · ∂a/∂z · ∂z/∂w
        names_in_order = [name for name, _ in chain] + [w]
        factors = sp.Tuple(*[sp.Derivative(a, b, evaluate=False) for a, b in zip(names_in_order, names_in_order[1:])])
        steps.append(Step("factorisation", d(top), factors, "chain rule"))
    locals_: list[sp.Expr] = []
    for position, (name, value) in enumerate(chain):
        inner_name, inner_value = chain[position + 1] if position + 1 < len(chain) else (w, w)
        local = sp.diff(value, w) if inner_value is w else _local(value, inner_value)
        local = local.xreplace(rename)
        locals_.append(local)
        steps.append(Step("local", sp.Derivative(name, inner_name, evaluate=False), local, "local gradient"))
    if len(locals_) > 1:
        steps.append(Step("chain", d(top), sp.Mul(*locals_, evaluate=False),
                          "chain rule: product of the local gradients"))
    steps.append(Step("raw", d(top), raw, "plain SymPy, elementary form"))
    steps.append(Step("textbook", d(top), result.xreplace(rename), "textbook form"))
    return steps, {name: value for name, value in chain[1:]}


def _role_name(node: sp.Basic, taken: set) -> str | None:
    """The seeds' name for an intermediate: a for an activation's output, z for a
    pre-activation, else u, v, …; None when every candidate is taken."""
    if isinstance(node, functions("activation") + (SoftmaxEntry,)):
        preferred = ("a", "h")
    elif not isinstance(node, sp.Function):
        preferred = ("z", "q")
    else:
        preferred = ()
    for name in preferred + _NAMES:
        if name not in taken:
            return name
    return None


def _name_outputs(results: Sequence, expr: sp.Basic, names: dict) -> dict:
    """Give the block outputs left in the results the seeds' names: softmax entries a_1 … a_C,
    other activations a (or a1, a2, … when there are several), avoiding the expression's names."""
    outputs = functions("activation")
    taken = {s.name for s in expr.free_symbols if hasattr(s, "name")} | {k.name for k in names}
    known = set(names.values())
    groups: dict[tuple, dict[int, sp.Basic]] = {}
    scalars: list[sp.Basic] = []
    for r in results:
        for node in sp.preorder_traversal(r):
            if isinstance(node, SoftmaxEntry) and node.args[0].is_Integer:
                groups.setdefault(node.args[1:], {})[int(node.args[0])] = node
            elif (isinstance(node, outputs) and node not in known and node not in scalars
                  and not all(a.is_Atom for a in node.args)):  # σ(x) stays σ(x)
                scalars.append(node)
    letters = (c for c in "ahpquv" if not any(t == c or (t.startswith(c) and t[1:].isdigit()) for t in taken))
    named = dict(names)
    indexed = [n for r in results for n in sp.preorder_traversal(r) if isinstance(n, IndexedSoftmax)]
    if indexed:
        letter = next(letters, None)
        if letter is not None:
            base = sp.IndexedBase(letter)
            named.update({base[n.args[0]]: n for n in dict.fromkeys(indexed)})
    for entries in groups.values():
        letter = next(letters, None)
        if letter is None:
            return named
        named.update({sp.Symbol(f"{letter}{i}"): e for i, e in sorted(entries.items())})
    if scalars:
        letter = next(letters, None)
        if letter is not None:
            if len(scalars) == 1:
                named[sp.Symbol(letter)] = scalars[0]
            else:
                named.update({sp.Symbol(f"{letter}{k}"): node for k, node in enumerate(scalars, start=1)})
    return named


def _local(node: sp.Basic, arg: sp.Basic) -> sp.Expr:
    """∂node/∂arg where arg is one argument of the function node (its fdiff)."""
    idx = list(node.args).index(arg) + 1
    return node.fdiff(idx) if isinstance(node, sp.Function) else sp.diff(node, arg)


def _is_loss(expr: sp.Basic) -> bool:
    return isinstance(expr, (BCE, BCEWithLogits, CrossEntropy))


# --- second order ---------------------------------------------------------------------------------
def hessian(expr: Any, wrt: WrtLike | Sequence[WrtLike], *, timeout: float = 5.0) -> Derivation:
    r"""The Hessian ∂²f/∂w∂wᵀ, in textbook form: the Jacobian of the gradient.

    .. math:: H_{ij} = \frac{\partial^2 f}{\partial w_i \partial w_j}
              \quad\text{e.g.}\quad \nabla^2_x\, x^\top A x = A + A^\top,\;
              \nabla^2_z \operatorname{CE}(\operatorname{softmax}(z), y) = \operatorname{diag}(a) - a a^\top

    ``wrt``: a list of scalar symbols (H is len(wrt) × len(wrt)), a Matrix of symbols, or one column
    vector ``MatrixSymbol`` of a matrix expression (H is n × n, in compact matrix form). The result
    compiles and cross-checks like a gradient (``.compile()``, ``.check()``)."""
    started = time.perf_counter()
    expr = _as_expression(expr)
    if is_matrix_expression(expr):
        x = wrt[0] if isinstance(wrt, (list, tuple)) and len(wrt) == 1 else wrt
        if isinstance(x, str):
            x = next((m for m in expr.atoms(sp.MatrixSymbol) if m.name == x), x)
        if not (isinstance(x, sp.MatrixSymbol) and x.shape[1] == 1):
            raise TypeError("the Hessian of a matrix expression is taken with respect to one column vector "
                            "(a MatrixSymbol n×1); for a matrix W use hvp(expr, W, V)")
        gradient = derive(expr, x, timeout=timeout)
        H = vector_jacobian_of(gradient.result, x)
        names = {**gradient.intermediates, **_name_vector_outputs(H)}
        back = _renaming(names)
        step = Step("textbook", sp.Derivative(sp.Symbol("L"), x, x, evaluate=False), H.xreplace(back),
                    "the Jacobian of the gradient")
        # what is differentiated is the gradient: .check() compares H with differences of ∇f
        return Derivation(expr=gradient.result, wrt=(x,), result=H, raw=None, steps=list(gradient.steps) + [step],
                          intermediates=names, assumptions=gradient.assumptions, notes=gradient.notes,
                          seconds=time.perf_counter() - started, single=True)
    symbols = list(wrt) if isinstance(wrt, (list, tuple)) else list(wrt) if isinstance(wrt, sp.MatrixBase) else [wrt]
    symbols = [_resolve_wrt(w, expr) for w in symbols]
    if not all(isinstance(w, sp.Symbol) for w in symbols):
        raise TypeError("hessian(expr, wrt): wrt must be scalar symbols (or their names) for a scalar expression")
    first = derive(expr, symbols, timeout=timeout)
    budget = Budget(timeout)
    rows = []
    for g in first.results:
        if g == 0:
            rows.append([sp.S.Zero] * len(symbols))
            continue
        second = derive(g, [w for w in symbols if g.has(w)], timeout=timeout) if any(g.has(w) for w in symbols) else None
        by_symbol = dict(zip(second.wrt, second.results)) if second is not None else {}
        rows.append([by_symbol.get(w, sp.S.Zero) for w in symbols])
        if second is not None:
            budget.hits.extend(second.notes)
    H = sp.Matrix(rows)
    plain = elementary(first.expr)
    raw = sp.Matrix(len(symbols), len(symbols), lambda i, j: sp.diff(plain, symbols[i], symbols[j]))
    steps = [Step("goal", sp.Symbol("H"), sp.hessian(sp.Function("f")(*symbols), symbols), "what we want"),
             Step("raw", sp.Symbol("H"), raw, "plain SymPy, elementary form"),
             Step("textbook", sp.Symbol("H"), H, "textbook form")]
    # what is differentiated is the gradient: .check() compares H with differences of ∇f
    return Derivation(expr=sp.Matrix(first.results), wrt=(sp.Matrix(symbols),), result=H, raw=raw, steps=steps,
                      intermediates=dict(first.intermediates), assumptions=first.assumptions,
                      notes=first.notes + budget.hits, seconds=time.perf_counter() - started, single=True)


def hvp(expr: Any, wrt: Any, direction: Any, *, timeout: float = 5.0) -> Derivation:
    r"""The Hessian-vector product H v = ∂/∂w ⟨∇_w f, v⟩ (w and v of one shape), without forming H.

    .. math:: H v = \nabla_w \left( \nabla_w f \cdot v \right)

    Scalar expressions: ``wrt`` a list of symbols and ``direction`` a list of numbers or symbols of
    the same length. Matrix expressions: ``wrt`` a MatrixSymbol W and ``direction`` a matrix V of
    W's shape (a MatrixSymbol), giving ∂/∂W tr((∂L/∂W)ᵀ V)."""
    expr = _as_expression(expr)
    if is_matrix_expression(expr):
        if not (isinstance(wrt, sp.MatrixSymbol) and getattr(direction, "shape", None) == wrt.shape):
            raise ValueError("hvp of a matrix expression: wrt must be a MatrixSymbol and direction a matrix "
                             f"of the same shape {getattr(wrt, 'shape', '')}")
        gradient = derive(expr, wrt, timeout=timeout).result
        return derive(sp.Trace(sp.Transpose(gradient) * direction), wrt, timeout=timeout)
    symbols = list(wrt) if isinstance(wrt, (list, tuple, sp.MatrixBase)) else [wrt]
    vector = list(direction) if isinstance(direction, (list, tuple, sp.MatrixBase)) else [direction]
    if len(vector) != len(symbols):
        raise ValueError(f"the direction has {len(vector)} entries; wrt has {len(symbols)}")
    first = derive(expr, symbols, timeout=timeout)
    contraction = sp.Add(*[g * to_sympy(v, "direction") for g, v in zip(first.results, vector)])
    return derive(contraction, symbols, timeout=timeout)


def vector_jacobian_of(F: sp.MatrixExpr, x: sp.MatrixSymbol) -> sp.MatrixExpr:
    """∂F/∂x for a column vector F of the column vector x (rows: outputs), in compact form."""
    return vector_jacobian(F, x)
