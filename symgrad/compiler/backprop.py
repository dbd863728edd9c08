"""The reverse pass of a graph as a program: one line per intermediate and per adjoint.
"""

from __future__ import annotations

from ..printing.arrays import ArrayAPIPrinter, DisplayPrinter
from ..printing.plain import text
from .codegen import function_def
from .function import load
from .function import CompiledFunction
from .codegen import IDENT
from .codegen import RESERVED
from .codegen import dimension_lines
from .codegen import safe_names
from .codegen import namespace_lines
from ..simplify.stable import stabilise
import re
import sympy as sp
from ..simplify.textbook import textbook

__all__ = ["fused_gradients", "compile_backprop", "backprop_source"]


def fused_gradients(bp) -> tuple[dict, set]:
    """The reverse pass's gradients with every scalar adjoint used once written into its one use and
    simplified there: BCE(a, y) then a = σ(z) gives grad_z = a − y, not a(1 − a)·(a − y)/(a(1 − a)),
    which divides by zero where a rounds to 1. Adjoints used more than once keep their line (so the
    program stays linear in the depth). Returns (gradients, the nodes whose adjoint was inlined)."""
    gradients = dict(bp.gradients)
    by_name = {g: n for n, g in bp.upstream_names.items() if n in gradients}
    consumers: dict = {}
    for key, value in gradients.items():
        for s in value.free_symbols:
            if s in by_name:
                consumers.setdefault(s, []).append(key)
    inlined: set = set()
    order = bp.graph.names[: bp.graph.names.index(bp.output) + 1]
    for node in reversed(order):  # parents first: an inlined adjoint is already fused itself
        g = bp.upstream_names.get(node)
        if g not in by_name or len(consumers.get(g, ())) != 1 or isinstance(g, sp.MatrixSymbol):
            continue
        if sp.count_ops(gradients[node]) > 60:
            continue
        key = consumers[g][0]
        fused = gradients[key].xreplace({g: gradients[node]})
        gradients[key] = fused if isinstance(fused, sp.MatrixExpr) else textbook(fused)  # a matrix use: as is
        for s in gradients[node].free_symbols:  # the names it used are now used by the consumer
            if s in consumers:
                consumers[s] = [key if k == node else k for k in consumers[s]]
        inlined.add(node)
    return gradients, inlined


def compile_backprop(bp, wrt, *, stable: bool = True) -> CompiledFunction:
    """A graph's reverse pass as a program: the forward nodes, then one line per gradient
    (local gradient × upstream gradient, summed over uses), each with its formula as a comment."""
    source, helpers, params, doc = backprop_source(bp, wrt, stable=stable)

    def display(exact: bool):
        text, used, _, _ = backprop_source(bp, wrt, stable=stable, display=True)
        return load(text, "backward", used)

    return CompiledFunction(load(source, "backward", helpers), source, params, {}, doc, display)


def backprop_source(bp, wrt, *, stable: bool = True, display: bool = False) -> tuple[str, dict, list, str]:
    """The source of ``backward(inputs)`` (see :func:`compile_backprop`), its helpers, its parameter
    names and its docstring; ``display=True`` writes the formula form (no namespace lines)."""
    graph = bp.graph
    sizes = {d for e in graph.exprs.values() for m in e.atoms(sp.MatrixSymbol) for d in m.shape}  # read from shapes
    inputs = sorted((s for s in graph.inputs if s not in sizes), key=lambda s: s.name)
    names = safe_names(inputs, RESERVED | {"backward"})
    taken = set(names.values())

    def name_for(sym):
        candidate = sym.name if IDENT.match(sym.name) and "__" not in sym.name else f"v{len(taken)}"
        while candidate in taken:
            candidate += "_"
        taken.add(candidate)
        return candidate

    for node in graph.names:
        names[node] = name_for(node)
    for node, g in bp.upstream_names.items():
        names[g] = name_for(g)
    printer = (DisplayPrinter if display else ArrayAPIPrinter)(names, stacks=True)
    body: list[str] = []
    order = graph.names[: graph.names.index(bp.output) + 1]
    gradients, inlined = fused_gradients(bp)
    needed = set().union(*(g.free_symbols for g in gradients.values())) if gradients else set()
    printed = [graph.exprs[n] for n in order if n != bp.output or n in needed] + list(gradients.values())
    dims = dimension_lines(inputs, names, printed, printer)
    body.append("# forward")
    for node in order:
        if node == bp.output and node not in needed:
            continue  # the loss itself is not needed for its gradient
        expr = stabilise(graph.exprs[node]) if stable else graph.exprs[node]
        body.append(f"{names[node]} = {printer.doprint(expr)}  # {text(node)} = {text(graph.exprs[node])}")
    body.append("# backward: each gradient is the sum over uses of local gradient × upstream gradient")
    for node in reversed(order):
        if node in bp.upstream_names and node in gradients and node not in inlined:
            g = bp.upstream_names[node]
            value = stabilise(gradients[node]) if stable else gradients[node]
            body.append(f"{names[g]} = {printer.doprint(value)}  # d{text(bp.output)}/d{text(node)}")
    returned = []
    for w in wrt:
        value = gradients.get(w, sp.S.Zero)
        value = stabilise(value) if stable else value
        returned.append(printer.doprint(value))
    code = "\n".join(body + returned)
    body = ([] if display else namespace_lines([names[a] for a in inputs])) + \
        [d for d in dims if re.search(rf"\b{re.escape(d.split(' = ')[0])}\b", code)] + body
    doc = "Gradient of " + text(bp.output) + " with respect to " + ", ".join(text(w) for w in wrt) + \
        " by reverse mode over the graph " + "; ".join(f"{text(n)} = {text(graph.exprs[n])}" for n in order)
    doc = doc.replace('"', "'").replace("\\", "/")
    ret = returned[0] if len(returned) == 1 else "(" + ", ".join(returned) + ",)"
    source = function_def("backward", [names[a] for a in inputs], doc, body, ret)
    return source, printer.helpers, [a.name for a in inputs], doc
