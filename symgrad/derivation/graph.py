"""Computational graphs: named intermediates differentiated in reverse mode, step by step.

A :class:`Graph` is an ordered list of named nodes (``q = x + y``, ``f = q·z``); later
expressions refer to earlier nodes by name. :meth:`Graph.backprop` walks it backwards the
way the seeds do: every node receives its **upstream** gradient ∂out/∂node (named
``grad_<node>``), multiplies it by each **local** gradient ∂node/∂input (written through the
node's own output where a block declares an identity: σ' = a(1 − a)), and passes the
product on; **gradients add at branches**. Each edge is an :class:`Edge` with the gate's
pattern named (add distributes, mul swaps, max routes). With values, every local, upstream
and global gradient gets its number — the seeds' forward/backward tables.

Matrix nodes (MatrixSymbol expressions) use the matrix chain rule on the node alone, with
the upstream gradient as a named matrix: grad_h = grad_y W2ᵀ, grad_W1 = xᵀ(grad_z) … — so
each step stays small and the whole derivation grows linearly with depth.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from ..catalog.activations import Maxout, relu
from ..catalog.base import Primitive
from ..catalog.rows import Entrywise, RowLogMeanExp, RowLogSoftmax, RowSoftmax, RowSoftmaxCrossEntropy, is_matrix_expression
from .matrix_rules import matrix_doit, matrix_gradient
from ..compiler.function import compile_expr
from ..parsing.python import parse
from ..printing.tex import backprop_latex
from ..printing.plain import text
from ..simplify.budget import Budget
from ..simplify.textbook import textbook

__all__ = ["Graph", "Edge", "Backprop", "expression_graph", "expanded_size", "is_block_output"]


@dataclass(frozen=True)
class Edge:
    """One backward step: ``node`` sends upstream × local to one of its ``input``s."""

    node: sp.Basic
    input: sp.Basic
    local: sp.Basic | None  # ∂node/∂input (scalar nodes), written through the node's name
    upstream: sp.Basic  # ∂out/∂node: 1 at the output, else the name grad_<node>
    product: sp.Basic  # this edge's contribution to ∂out/∂input
    gate: str  # "add gate: distributes", …


@dataclass
class Backprop:
    """The reverse pass over a graph (see the module docstring)."""

    graph: "Graph"
    output: sp.Basic
    edges: list[Edge]
    gradients: dict  # variable → ∂out/∂variable in terms of grad_<node> names (sums at branches)
    upstream_names: dict  # node → its grad_<node> symbol
    values: dict = field(default_factory=dict)  # forward values (when given)
    gradient_values: dict = field(default_factory=dict)  # variable → number or array
    seconds: float = 0.0

    def expanded(self, variable: sp.Basic) -> sp.Basic:
        """∂out/∂variable with every grad_<node> replaced by its definition (in node names)."""
        expr = self.gradients[variable]
        defs = {g: self.gradients[n] for n, g in self.upstream_names.items() if n in self.gradients}
        for _ in range(len(defs) + 1):
            new = expr.xreplace(defs)
            if new == expr:
                break
            expr = new
        return _doit(expr)

    def global_gradient(self, variable: sp.Basic) -> sp.Basic:
        """∂out/∂variable in the graph's inputs only (every name substituted), textbook form."""
        expr = self.graph.substitute(self.expanded(variable))
        return expr if isinstance(expr, sp.MatrixExpr) else textbook(expr)

    def value(self, obj: sp.Basic):
        """The number (or array) of a local/upstream/product expression at the given values."""
        return _evaluate(obj, {**self.values, **{self.upstream_names[n]: v for n, v in self.gradient_values.items()
                                                  if n in self.upstream_names}})

    def latex(self, digits: int = 4) -> str:
        """The table as an ``align*`` (forward values, edges, global gradients)."""
        return backprop_latex(self, digits=digits)

    def _repr_latex_(self) -> str:
        return "$$" + self.latex().replace("align*", "aligned") + "$$"

    def table(self, digits: int = 4) -> str:
        """The seeds' table: forward values, then each edge's local × upstream = product, then
        the global gradients (numbers when values were given)."""
        fmt = lambda v: _fmt(v, digits)  # noqa: E731
        lines = ["forward:"]
        for name in self.graph.names:
            val = f" = {fmt(self.values[name])}" if name in self.values else ""
            lines.append(f"  {text(name)} = {text(self.graph.exprs[name])}{val}")
        lines.append("backward (local gradient × upstream gradient):")
        for e in self.edges:
            local = text(e.local) if e.local is not None else "(matrix rule)"
            nums = ""
            if self.values:
                lv = fmt(self.value(e.local)) if e.local is not None else ""
                uv = fmt(self.value(e.upstream))
                pv = fmt(self.value(e.product))
                nums = f"   [{lv + ' × ' if lv else ''}{uv} = {pv}]"
            lines.append(f"  d{text(self.output)}/d{text(e.input)} += ∂{text(e.node)}/∂{text(e.input)} × "
                         f"d{text(self.output)}/d{text(e.node)} = {local} × {text(e.upstream)}{nums}   ({e.gate})")
        lines.append("global gradients:")
        for v in self.graph.inputs:
            if v in self.gradients:
                val = f" = {fmt(self.gradient_values[v])}" if v in self.gradient_values else ""
                lines.append(f"  d{text(self.output)}/d{text(v)} = {text(self.expanded(v))}{val}")
        return "\n".join(lines)


class Graph:
    r"""Named intermediates in evaluation order: ``Graph({"q": x + y, "f": q*z})``.

    .. math:: \frac{\partial f}{\partial x} = \sum_{\text{paths}} \prod \frac{\partial\,\text{node}}{\partial\,\text{input}}

    Keys are names (text) or symbols; values are SymPy expressions or text (parsed safely).
    Expressions refer to earlier nodes by their names. The last node is the output.
    """

    def __init__(self, nodes: Mapping[Any, Any] | Sequence[tuple[Any, Any]], *, output: Any = None):
        items = list(nodes.items()) if isinstance(nodes, Mapping) else list(nodes)
        if not items:
            raise ValueError("a graph needs at least one node, e.g. Graph({'f': 'x*y'})")
        self.names: list[sp.Basic] = []
        self.exprs: dict[sp.Basic, sp.Basic] = {}
        by_name: dict[str, sp.Basic] = {}
        for key, expr in items:
            if isinstance(expr, str):
                expr = parse(expr, symbols=dict(by_name))
            expr = expr.xreplace({s: by_name[s.name] for s in expr.free_symbols
                                  if getattr(s, "name", None) in by_name and s != by_name[s.name]})
            name = key if isinstance(key, str) else getattr(key, "name", None)
            if not isinstance(name, str) or not name:
                raise TypeError(f"node names must be text or symbols, got {key!r}")
            if name in by_name:
                raise ValueError(f"node {name!r} is defined twice; every node is defined once")
            if any(getattr(s, "name", None) == name for s in expr.free_symbols):
                raise ValueError(f"node {name!r} refers to itself")
            symbol = (sp.MatrixSymbol(name, *expr.shape) if isinstance(expr, sp.MatrixExpr)
                      else key if isinstance(key, sp.Symbol) else sp.Symbol(name, real=True))
            by_name[name] = symbol
            self.names.append(symbol)
            self.exprs[symbol] = expr
        self.output = self.names[-1] if output is None else by_name[getattr(output, "name", output)]
        seen: list = []
        for n in self.names:
            for s in sorted(self.exprs[n].free_symbols, key=lambda s: getattr(s, "name", "")):
                if s not in self.exprs and s not in seen:
                    seen.append(s)
        self.inputs: list[sp.Basic] = seen

    # -- forward ------------------------------------------------------------------------
    def substitute(self, expr: sp.Basic) -> sp.Basic:
        """``expr`` with every node name replaced by its definition (down to the inputs)."""
        for name in reversed(self.names):
            expr = expr.xreplace({name: self.exprs[name]})
        return _doit(expr) if isinstance(expr, sp.MatrixExpr) else expr

    def expression(self, name: Any = None) -> sp.Basic:
        """A node (default: the output) written in the inputs only."""
        node = self.output if name is None else self._node(name)
        return self.substitute(node)

    def forward(self, values: Mapping) -> dict:
        """Every node's value for input values given by symbol or name."""
        vals = self._values(values)
        for name in self.names:
            vals[name] = _evaluate(self.exprs[name], vals)
        return vals

    def _values(self, values: Mapping) -> dict:
        by_name = {getattr(s, "name", str(s)): s for s in self.inputs}
        out = {}
        for k, v in values.items():
            key = by_name.get(k, k) if isinstance(k, str) else k
            if key not in self.inputs:
                raise ValueError(f"{k!r} is not an input of the graph (inputs: {', '.join(map(str, self.inputs))})")
            out[key] = v
        missing = [s for s in self.inputs if s not in out]
        if missing:
            raise ValueError(f"missing values for {', '.join(map(str, missing))}")
        return out

    def _node(self, name):
        for n in self.names:
            if n == name or n.name == getattr(name, "name", name):
                return n
        raise ValueError(f"no node {name!r} in the graph")

    # -- backward -----------------------------------------------------------------------
    def backprop(self, values: Mapping | None = None, budget: Budget | None = None,
                 wrt: Sequence | None = None) -> Backprop:
        """Reverse mode over the graph (symbolic; numbers too when ``values`` are given).

        One pass from the output down: each node's adjoint is the sum over its uses of local ×
        upstream, and every local gradient is simplified on its own (within ``budget``). With
        ``wrt``, only the paths that lead to those inputs are followed (targets get no gradient)."""
        started = time.perf_counter()
        out = self.output
        order = self.names[: self.names.index(out) + 1]
        wanted = None
        if wrt is not None:  # the nodes that depend on some wrt, and the wrts themselves
            wanted = set(wrt)
            for node in order:
                if any(s in wanted for s in self.exprs[node].free_symbols):
                    wanted.add(node)
        grad_names = {n: (sp.MatrixSymbol(f"grad_{n.name}", *n.shape) if isinstance(n, sp.MatrixSymbol)
                          else sp.Symbol(f"grad_{n.name}", real=True)) for n in order if n != out}
        contributions: dict = {}
        edges: list[Edge] = []
        for node in reversed(order):
            if node != out and node not in contributions:
                continue  # does not reach the output
            upstream = sp.S.One if node == out else grad_names[node]
            expr = self.exprs[node]
            for s in _inputs_of(expr, self):
                if wanted is not None and s not in wanted:
                    continue
                if isinstance(s, sp.MatrixSymbol) or is_matrix_expression(expr):
                    local = None
                    target = expr if node == out else sp.Trace(upstream.T * expr) if isinstance(expr, sp.MatrixExpr) \
                        else upstream * expr
                    product = matrix_gradient(target, s)
                    if isinstance(expr, sp.MatrixExpr):  # written through the node's own name (h, hᵀ)
                        product = _doit(product.xreplace({expr: node, sp.Transpose(expr).doit(): node.T}))
                    elif node != out:  # a scalar block of matrices: σ' through a = σ(wᵀx + b)
                        product = product.xreplace({expr: node})
                        product = _doit(product) if isinstance(product, sp.MatrixExpr) else product
                else:
                    local = textbook(sp.diff(expr, s), budget=budget).xreplace({expr: node})
                    product = local if upstream == 1 else upstream * local
                edges.append(Edge(node, s, local, upstream, product, _gate(expr, s)))
                contributions.setdefault(s, []).append(product)
        gradients = {v: _total(terms) for v, terms in contributions.items()}
        bp = Backprop(self, out, edges, gradients, grad_names, seconds=time.perf_counter() - started)
        if values is not None:
            bp.values = self.forward(values)
            env = dict(bp.values)
            for node in reversed(order):
                if node in gradients:
                    if node != out:
                        bp.gradient_values[node] = _evaluate(gradients[node], env)
                        env[grad_names[node]] = bp.gradient_values[node]
            for v in self.inputs:
                if v in gradients:
                    bp.gradient_values[v] = _evaluate(gradients[v], env)
        return bp


# --- helpers ------------------------------------------------------------------------------------
def _inputs_of(expr: sp.Basic, graph: Graph) -> list:
    dims = {d for m in expr.atoms(sp.MatrixSymbol) for d in m.shape if isinstance(d, sp.Symbol)}
    syms = [s for s in expr.free_symbols if (s in graph.exprs or s in graph.inputs) and s not in dims]
    return sorted(syms, key=lambda s: getattr(s, "name", ""))


def _gate(expr: sp.Basic, s: sp.Basic) -> str:
    """The seeds' names for the gate patterns."""
    if isinstance(expr, (sp.Add, sp.MatAdd)) and all(a.is_Symbol or isinstance(a, sp.MatrixSymbol)
                                                     or (a.could_extract_minus_sign() and (-a).is_Symbol)
                                                     for a in expr.args):
        return "add gate: distributes the upstream gradient"
    if isinstance(expr, sp.Mul) and len(expr.args) == 2 and all(a.is_Symbol for a in expr.args):
        return "mul gate: swaps the inputs"
    if isinstance(expr, (sp.Max, relu, Maxout)):
        return "max gate: routes the gradient to the larger input"
    if isinstance(expr, sp.MatMul):
        return "matrix product: multiplies by the other factor, transposed"
    if isinstance(expr, Primitive) or isinstance(expr, sp.Function):
        return f"{type(expr).__name__} gate: local gradient"
    return "local gradient"


def _total(terms: list) -> sp.Basic:
    if len(terms) == 1:
        return terms[0]
    if isinstance(terms[0], sp.MatrixExpr):
        return _doit(sp.MatAdd(*terms))
    return sp.Add(*terms)


_doit = matrix_doit


def _evaluate(expr: sp.Basic, env: Mapping):
    """The value of ``expr`` for the values in ``env`` (float for scalars, arrays for matrices)."""
    if expr is None:
        return None
    if is_matrix_expression(expr) or any(isinstance(v, np.ndarray) for v in env.values()):
        dims = {d for m in expr.atoms(sp.MatrixSymbol) for d in m.shape}
        args = sorted((a for a in expr.free_symbols if a not in dims), key=lambda s: getattr(s, "name", ""))
        missing = [a for a in args if a not in env]
        if missing:
            raise ValueError(f"no value for {', '.join(map(str, missing))}")
        fn = compile_expr(expr, args)
        return fn(**{a.name: env[a] for a in args})
    subs = {k: sp.Float(v, 30) if not isinstance(v, (int, np.integer)) else sp.Integer(int(v))
            for k, v in env.items() if not isinstance(v, np.ndarray)}
    value = sp.N(expr.xreplace(subs), 30)
    if value.free_symbols:
        raise ValueError(f"no value for {', '.join(map(str, value.free_symbols))}")
    return float(value)


def _fmt(v, digits: int) -> str:
    if v is None:
        return ""
    if isinstance(v, np.ndarray):
        return np.array2string(v, precision=digits, suppress_small=True)
    return f"{v:.{digits}g}"


# --- an expression as a graph of named intermediates -------------------------------------------
_SCALAR_LETTERS = ("a", "h", "u", "q")
_MATRIX_LETTERS = ("h", "a", "U", "Q")


def _transposes(expr: sp.Basic) -> int:
    return sum(isinstance(n, sp.Transpose) for n in sp.preorder_traversal(expr))


def expression_graph(expr: sp.Basic, output: str | None = None) -> Graph:
    """``expr`` as a :class:`Graph`: every block output (σ(z), σ(XW), …) and every subexpression
    used more than once becomes a named intermediate, defined through the names below it, so that
    the graph's size (and the cost of its reverse pass) grows linearly with the expression's depth.

    Scalar outputs are named a1, a2, … and matrix outputs h1, h2, … (letters the expression does
    not use); an elementwise block met in both orientations (σ(XW) and σ(WᵀXᵀ)) is one node."""
    taken = {getattr(s, "name", "") for s in expr.free_symbols} | {m.name for m in expr.atoms(sp.MatrixSymbol)}
    uses: dict = {}

    def count(node):
        if not isinstance(node, sp.Basic) or node.is_Atom or isinstance(node, (sp.MatrixSymbol, sp.Lambda)):
            return
        uses[node] = uses.get(node, 0) + 1
        if uses[node] == 1:
            for a in node.args:
                count(a)

    count(expr)
    letters = {kind: next(c for c in pool if not any(t == c or (t.startswith(c) and t[len(c):].isdigit())
                                                      for t in taken))
               for kind, pool in (("scalar", _SCALAR_LETTERS), ("matrix", _MATRIX_LETTERS))}
    defs: list = []
    by_value: dict = {}
    memo: dict = {}

    def name(value):
        if value in by_value:
            return by_value[value]
        letter = letters["matrix" if isinstance(value, sp.MatrixExpr) else "scalar"]
        label = f"{letter}{sum(1 for s, _ in defs if isinstance(s, sp.MatrixSymbol) == isinstance(value, sp.MatrixExpr)) + 1}"
        symbol = sp.MatrixSymbol(label, *value.shape) if isinstance(value, sp.MatrixExpr) \
            else sp.Symbol(label, real=True)
        defs.append((symbol, value))
        by_value[value] = symbol
        return symbol

    def rebuild(node):
        if node in memo:
            return memo[node]
        if node.is_Atom or isinstance(node, (sp.MatrixSymbol, sp.Lambda)) or not node.args:
            memo[node] = node
            return node
        args = [rebuild(a) if isinstance(a, sp.Basic) else a for a in node.args]
        new = node.func(*args) if args != list(node.args) else node
        out = new
        if node is not expr:
            if isinstance(new, ElementwiseApplyFunction):
                twin = new.func(new.function, sp.Transpose(new.expr).doit())
                out = name(twin).T if _transposes(twin) < _transposes(new) else name(new)
            elif isinstance(new, sp.MatrixExpr):
                if uses.get(node, 0) > 1 and not isinstance(new, sp.Transpose) or isinstance(new, _NAMED_MATRIX_NODES):
                    out = name(new)
            elif isinstance(new, sp.Expr) and not new.is_number and (
                    (isinstance(new, sp.Function) and not isinstance(new, _UNNAMED_FUNCTIONS)) or uses.get(node, 0) > 1):
                out = name(new)
        memo[node] = out
        return out

    top = rebuild(expr)
    for kind in (True, False):  # one name of a kind is the bare letter (h, a), several are numbered
        same = [(s, v) for s, v in defs if isinstance(s, sp.MatrixSymbol) == kind]
        if len(same) == 1:
            s0, _ = same[0]
            bare = s0.func(s0.name.rstrip("0123456789"), *s0.args[1:]) if kind else sp.Symbol(s0.name.rstrip("0123456789"), real=True)
            defs = [(bare if s is s0 else s, v.xreplace({s0: bare})) for s, v in defs]
            top = top.xreplace({s0: bare})
    label = output or next(c for c in ("L", "f", "out", "F") if c not in taken)
    defs.append((sp.MatrixSymbol(label, *top.shape) if isinstance(top, sp.MatrixExpr) else sp.Symbol(label, real=True),
                 top))
    return Graph(defs)


def is_block_output(value: sp.Basic) -> bool:
    """Whether a named intermediate is a block's output (σ(XW), softmax rows, …) rather than a shared
    subexpression named only so that the graph stays small (W x used twice)."""
    return isinstance(value, (ElementwiseApplyFunction,) + _NAMED_MATRIX_NODES) or (
        isinstance(value, sp.Function) and not isinstance(value, _UNNAMED_FUNCTIONS))


_NAMED_MATRIX_NODES = (RowSoftmax, RowLogSoftmax, RowLogMeanExp, RowSoftmaxCrossEntropy, Entrywise, sp.Inverse)
_UNNAMED_FUNCTIONS = (sp.KroneckerDelta, sp.Piecewise)


def expanded_size(bp: Backprop, variables: Sequence[sp.Basic], limit: int) -> int:
    """The largest tree size of ∂out/∂v (v in ``variables``) with every name substituted, counted
    on the DAG (so it costs the DAG's size, once for all of them); counting stops past ``limit``."""
    defs = dict(bp.graph.exprs)
    defs.update({g: bp.gradients[n] for n, g in bp.upstream_names.items() if n in bp.gradients})
    memo: dict = {}

    def size(node):
        if node in memo:
            return memo[node]
        if node in defs:
            out = size(defs[node])
        elif not getattr(node, "args", ()):
            out = 1
        else:
            out = 1
            for a in node.args:
                if isinstance(a, sp.Basic):
                    out += size(a)
                    if out > limit:
                        break
        memo[node] = min(out, limit + 1)
        return memo[node]

    return max(size(bp.gradients.get(v, sp.S.Zero)) for v in variables)
