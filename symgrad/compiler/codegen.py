"""Code generation: the one source builder shared by compiled functions, exported modules and the
reverse-pass programs (names, shape checks, common subexpressions, accumulated sums, the
array-namespace lines).
"""

from __future__ import annotations

import dis
import inspect
import keyword
import re
from typing import Callable, Sequence
import sympy as sp
from ..printing.arrays import ArrayAPIPrinter, DisplayPrinter
from ..printing.arrays import SymgradNumPyPrinter
from ..simplify.stable import stabilise
from ..catalog.base import Primitive
from sympy.matrices.expressions.hadamard import HadamardProduct

__all__ = ["IDENT", "RESERVED", "safe_names", "dimension_lines", "shape_checks", "vector_groups", "vector_lines", "function_def", "namespace_lines", "generate_source", "scale_inner", "accumulate", "accumulate_scalar", "program", "matrix_cse", "helper_closure"]


# --- code generation ----------------------------------------------------------------------------
IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
RESERVED = {"numpy", "np", "assemble", "xp", "namespace", "math"}


def namespace_lines(arrays: Sequence[str]) -> list[str]:
    """``xp = namespace(x, y)`` and ``x = xp.asarray(x)``: generated code computes in the array
    namespace of its inputs (NumPy for NumPy arrays and numbers)."""
    if not arrays:
        return []
    return [f"xp = namespace({', '.join(arrays)})"] + [f"{a} = xp.asarray({a})" for a in arrays]


def safe_names(symbols: Sequence[sp.Basic], reserved: set[str]) -> dict[sp.Basic, str]:
    names: dict[sp.Basic, str] = {}
    used = set(reserved)
    for position, s in enumerate(symbols):
        name = getattr(s, "name", "")
        candidate = name if IDENT.match(name) and not keyword.iskeyword(name) and "__" not in name else f"arg{position}"
        while candidate in used:
            candidate += "_"
        used.add(candidate)
        names[s] = candidate
    return names


def generate_source(fn_name: str, outputs: Sequence[sp.Basic], args: Sequence[sp.Symbol],
                    doc: str = "", stable: bool = True, as_tuple: bool = False,
                    matrix_names: dict | None = None, fuse: bool = True, display: bool = False,
                    arrays: dict[str, Sequence[sp.Symbol]] | None = None,
                    wrt: Sequence[sp.Basic] = ()) -> tuple[str, dict[str, Callable], dict[sp.Basic, str]]:
    """The source of ``def fn_name(args): … return outputs`` and the helpers it calls: the one
    source builder of compiled functions, exported modules and their formula forms.

    ``display=True`` writes the formula form of the same function — no array-namespace lines,
    helpers called without ``xp``, transposes as ``transpose(x)`` — which latexify renders.
    ``arrays`` (exported modules) takes vectors given entry by entry as one array each
    (``{"w": [w1, w2, w3]}``: ``w`` of shape (..., 3)), and ``wrt`` (the outputs' variables) shapes
    each gradient like its variable; with ``arrays`` given, a column-vector MatrixSymbol (n × 1)
    also takes a 1-D array (n,) and its gradient comes back 1-D."""
    outputs = [stabilise(o, fuse) if stable else o for o in outputs]
    helper_names = {type(p).numpy_form.__name__ for out in outputs for p in out.atoms(Primitive)}
    names = safe_names(args, RESERVED | helper_names | {fn_name})
    printer = (DisplayPrinter if display else ArrayAPIPrinter)(names, stacks=True)
    body, returned = program(outputs, args, names, printer, matrix_names=matrix_names)
    standalone = arrays is not None
    groups = vector_groups(arrays, args, names, RESERVED | helper_names | {fn_name}) if standalone else []
    grouped = {e for _, entries in groups for e in entries}
    params = sorted([p for p, _ in groups] + [names[a] for a in args if a not in grouped]) if standalone \
        else [names[a] for a in args]
    columns = [a for a in args if isinstance(a, sp.MatrixSymbol) and a.shape[1] == 1 and a.shape[0] != 1] \
        if standalone else []
    preamble = [] if display else namespace_lines(params)
    for a in columns:  # a column vector (n × 1) may come as a 1-D array (n,)
        preamble += [f"{names[a]}_1d = {names[a]}.ndim == 1",
                     f"{names[a]} = xp.reshape({names[a]}, (-1, 1)) if {names[a]}_1d else {names[a]}"]
    preamble += vector_lines(groups, names) + shape_checks(args, names, printer)
    for k, w in enumerate(list(wrt)[:len(returned)] if standalone else []):
        entries = list(w) if isinstance(w, sp.MatrixBase) else None
        param = next((p for p, e in groups if entries == e), None)
        if param is not None:  # the gradient of a vector argument, shaped like it
            returned[k] = f"xp.reshape({returned[k]}, {param}.shape)"
        elif w in columns:
            body.append(f"grad_{names[w]} = {returned[k]}")
            returned[k] = f"xp.reshape(grad_{names[w]}, (-1,)) if {names[w]}_1d else grad_{names[w]}"
    ret = returned[0] if len(returned) == 1 and not as_tuple else "(" + ", ".join(returned) + ",)"
    return function_def(fn_name, params, doc, preamble + body, ret), printer.helpers, names


def function_def(name: str, params: Sequence[str], doc: str, body: Sequence[str], returned: str) -> str:
    """``def name(params):`` with its raw docstring, body lines and return: every generated function's frame."""
    lines = [f"def {name}({', '.join(params)}):"]
    if doc:
        lines.append(f'    r"""{doc}"""')
    lines += [f"    {line}" for line in body]
    lines.append(f"    return {returned}")
    return "\n".join(lines) + "\n"


def _leaf(node) -> bool:
    return isinstance(node, _LEAVES) or (isinstance(node, sp.Transpose) and isinstance(node.arg, _LEAVES))


def scale_inner(expr: sp.Basic) -> sp.Basic:
    """c·(A ⋯ G) → A ⋯ (c·G): a number multiplies the innermost computed factor (in a gradient,
    the upstream one: 2(ŷ − y) of N × O) instead of the product (∂L/∂W1 of D × H), as hand-written
    backprop does; a factor shared by several outputs then becomes one temporary."""
    if not isinstance(expr, sp.MatMul):
        return expr
    coeff, mats = expr.as_coeff_matrices()
    if coeff == 1 or not coeff.is_number or len(mats) < 2:
        return expr
    mats = list(mats)
    for i in reversed(range(len(mats))):
        if not _leaf(mats[i]):
            mats[i] = _scaled(coeff, mats[i])
            return sp.MatMul(*mats, evaluate=False)
    return expr


def _scaled(coeff, node):
    if isinstance(node, HadamardProduct):
        args = list(node.args)
        for i, a in enumerate(args):
            if not _leaf(a) and SymgradNumPyPrinter._spread(a) is None:
                args[i] = _scaled(coeff, a)
                return HadamardProduct(*args, evaluate=False)
    if isinstance(node, sp.MatMul) and node.as_coeff_matrices()[0] == 1:
        return scale_inner(sp.MatMul(coeff, *node.args, evaluate=False))
    return sp.MatMul(coeff, node, evaluate=False)


def _fresh(node) -> bool:
    """Whether the printed ``node`` is a new array (so it may be updated in place): not an input,
    a temporary used elsewhere, a view (a transpose), or an input spread by broadcasting."""
    if isinstance(node, (sp.MatrixSymbol, sp.Transpose, sp.OneMatrix, sp.ZeroMatrix, sp.Identity)):
        return False
    return SymgradNumPyPrinter._spread(node) is None


def accumulate(expr: sp.Basic, name: str, printer) -> list[str] | None:
    """Lines that compute a matrix expression into a new array ``name`` with in-place operators
    (``name = softmax(z)``, ``name -= y``, ``name *= grad``): one allocation instead of one per
    operation (each new large array costs page faults). None when no operand is a new array."""
    if isinstance(expr, sp.MatMul):
        coeff, mats = expr.as_coeff_matrices()
        if coeff == 1 or len(mats) != 1 or not _fresh(mats[0]):
            return None
        return (accumulate(mats[0], name, printer) or [f"{name} = {printer._print(mats[0])}"]) + \
            [f"{name} *= {printer._print(coeff)}"]
    if isinstance(expr, HadamardProduct):
        first = next((a for a in expr.args if _fresh(a)), None)
        if first is None:
            return None
        lines = accumulate(first, name, printer) or [f"{name} = {printer._print(first)}"]
        return lines + [f"{name} *= {printer._broadcast(a)}" for a in expr.args if a is not first]
    if isinstance(expr, sp.MatAdd):
        first = next((a for a in expr.args if _fresh(a) and not a.could_extract_minus_sign()), None)
        if first is None:
            return None
        lines = accumulate(first, name, printer) or [f"{name} = {printer._print(first)}"]
        for t in expr.args:
            if t is not first:
                lines.append(f"{name} -= {printer._broadcast(-t)}" if t.could_extract_minus_sign()
                             else f"{name} += {printer._broadcast(t)}")
        return lines
    return None


def accumulate_scalar(expr: sp.Basic, name: str, printer, full: Sequence[sp.Basic]) -> list[str] | None:
    """A product with a number, one of whose factors has the output's whole shape (``full``: the
    upstream gradient of symgrad.nn), as the product then the number in place (−grad·z: one new
    array, not two). None otherwise."""
    if not isinstance(expr, sp.Mul):
        return None
    coeff, factors = expr.as_coeff_mul()
    if coeff == 1 or len(factors) < 2 or not any(f in full for f in factors):
        return None
    if len(factors) == 2:  # c·a·b in one pass (symgrad.runtime.product)
        return [f"{name} = product({printer.doprint(coeff)}, {', '.join(printer.doprint(f) for f in factors)}, xp)"]
    return [f"{name} = {printer.doprint(sp.Mul(*factors))}", f"{name} *= {printer.doprint(coeff)}"]


def program(outputs: Sequence[sp.Basic], args: Sequence[sp.Basic], names: dict, printer,
            matrix_names: dict | None = None, out_names: Sequence[str] | None = None,
            full: Sequence[sp.Basic] = ()) -> tuple[list[str], list[str]]:
    """The body that computes ``outputs`` (already stabilised): one line per common
    subexpression (matrix CSE for matrix expressions), then the printed outputs. Sizes the
    code uses (``C = numpy.shape(z)[-1]``) are bound first. With ``out_names`` (2-D matrices
    only: symgrad.nn, whose batch is flattened), matrix temporaries and outputs are computed in
    place where an operand is a new array (:func:`accumulate`); with leading batch axes an
    in-place update could not broadcast, so other callers leave it off. Returns (lines, output codes)."""
    flat: list[sp.Expr] = []
    shapes: list[tuple[int, int] | None] = []
    for out in outputs:
        if isinstance(out, sp.MatrixBase):
            shapes.append(out.shape)
            flat.extend(list(out))
        else:
            shapes.append(None)
            flat.append(out)
    summation = {lim[0] for e in flat for s in e.atoms(sp.Sum) for lim in s.limits}
    temps = sp.numbered_symbols("_t")
    if any(isinstance(e, sp.MatrixExpr) or e.atoms(sp.MatrixSymbol) for e in flat):
        flat = [scale_inner(e) for e in flat]
        replacements, reduced = matrix_cse(flat, names=matrix_names or {}, taken=set(names.values()))
    else:
        replacements, reduced = sp.cse(flat, symbols=temps, ignore=tuple(summation), order="none")
    for temp, value in replacements:
        names[temp] = temp.name
        if hasattr(printer, "definitions"):
            printer.definitions[temp] = value
    dims = dimension_lines(args, names, [v for _, v in replacements] + list(reduced), printer)
    lines = []
    for temp, value in replacements:
        lines += (accumulate(value, temp.name, printer) if out_names and isinstance(value, sp.MatrixExpr) else None) \
            or [f"{temp.name} = {printer.doprint(value)}"]
    returned, pos = [], 0
    for k, shape in enumerate(shapes):
        if shape is None:
            steps = None
            if out_names and isinstance(reduced[pos], sp.MatrixExpr):
                steps = accumulate(reduced[pos], out_names[k], printer)
            elif out_names and full:
                steps = accumulate_scalar(reduced[pos], out_names[k], printer, full)
            if steps:
                lines += steps
                returned.append(out_names[k])
            else:
                returned.append(printer.doprint(reduced[pos]))
            pos += 1
        else:
            size = shape[0] * shape[1]
            entries = ", ".join(printer.doprint(e) for e in reduced[pos:pos + size])
            xp = ", xp=xp" if isinstance(printer, ArrayAPIPrinter) and not printer.display else ""
            returned.append(f"assemble({shape}, [{entries}]{xp})")
            pos += size
    code = "\n".join(lines + returned)
    used = [line for line in dims if re.search(rf"\b{re.escape(line.split(' = ')[0])}\b", code)]
    return used + lines, returned


_LEAVES = (sp.MatrixSymbol, sp.Identity, sp.ZeroMatrix, sp.OneMatrix)


def _spreads_leaf(node) -> bool:
    """1 gᵀ, g 1ᵀ, 1 b: an input spread over a shape, printed as the input itself (broadcast)."""
    if not isinstance(node, sp.MatMul):
        return False
    mats = node.as_coeff_matrices()[1]
    others = [m for m in mats if not isinstance(m, sp.OneMatrix)]
    return len(mats) == 2 and len(others) == 1 and (
        isinstance(others[0], _LEAVES) or (isinstance(others[0], sp.Transpose) and isinstance(others[0].arg, _LEAVES)))


def matrix_cse(outputs: Sequence[sp.Basic], names: dict | None = None,
               taken: set | None = None) -> tuple[list, list]:
    """Common subexpressions of matrix expressions, transposed twins included:
    σ(x W1) and σ(W1ᵀ xᵀ) become one temporary h and hᵀ. ``names`` suggests names
    (value → name) for some of them (the derivation's intermediates)."""
    names = dict(names or {})
    counts: dict = {}
    order: list = []

    def key(node):
        twin = sp.Transpose(node).doit()
        return (twin, True) if twin in counts else (node, False)

    def visit(node):
        if isinstance(node, sp.Transpose) and not isinstance(node.arg, _LEAVES):
            visit(node.arg)  # a transpose is a view: count what it transposes (so its insides are shared)
            return
        if isinstance(node, sp.MatrixExpr) and not isinstance(node, _LEAVES) and not (
                isinstance(node, sp.Transpose) and isinstance(node.arg, _LEAVES)) and not _spreads_leaf(node):
            k, _ = key(node)
            if k in counts:
                counts[k] += 1
                return  # its insides were counted the first time
            counts[k] = 1
            for a in node.args:
                visit(a)
            order.append(k)
            return
        for a in getattr(node, "args", ()):
            if isinstance(a, sp.Basic):
                visit(a)

    for o in outputs:
        visit(o)
    repeated = [n for n in order if counts[n] > 1 or n in names]  # children before parents
    replacements, mapping, used = [], {}, set(taken or ())
    for k, node in enumerate(repeated):
        label = names.get(node)
        label = label.name if label is not None and label.name not in used else f"_t{k}"
        used.add(label)
        temp = sp.MatrixSymbol(label, *node.shape)
        replacements.append((temp, node.xreplace(mapping)))
        mapping[node] = temp
        mapping[sp.Transpose(node).doit()] = temp.T
    return replacements, [o.xreplace(mapping) for o in outputs]


def _code_symbols(expr: sp.Basic) -> set:
    """Symbols the printed code refers to (not the sizes that only shape a matrix)."""
    if isinstance(expr, (sp.Identity, sp.OneMatrix)):
        return set(expr.rows.free_symbols) | set(expr.cols.free_symbols)
    if isinstance(expr, sp.DiagMatrix):
        return set(expr.shape[0].free_symbols) | _code_symbols(expr.args[0])
    if isinstance(expr, (sp.MatrixSymbol, sp.ZeroMatrix)):
        return set()
    if isinstance(expr, sp.Symbol):
        return {expr}
    out: set = set()
    for a in getattr(expr, "args", ()):
        if isinstance(a, sp.Basic):
            out |= _code_symbols(a)
    return out


def dimension_lines(args, names, outputs, printer=None) -> list[str]:
    """``n = numpy.shape(A)[-2]`` for every symbolic size the printed code may use."""
    used = set().union(*(_code_symbols(o) for o in outputs)) if outputs else set()
    lines, bound = [], set()
    for a in args:
        if not isinstance(a, sp.MatrixSymbol):
            continue
        for axis, dim in ((-2, a.shape[0]), (-1, a.shape[1])):
            if isinstance(dim, sp.Symbol) and dim in used and dim not in bound and dim not in names:
                names[dim] = dim.name if IDENT.match(dim.name) else f"dim{len(bound)}"
                shape = printer.shape_of(names[a]) if printer is not None else f"numpy.shape({names[a]})"
                lines.append(f"{names[dim]} = {shape}[{axis}]")
                bound.add(dim)
    return lines


def helper_closure(helpers: dict[str, Callable]) -> dict[str, Callable]:
    """The helpers and every symgrad function they call (``softmax_entry_np`` → ``pick_entry``), by
    name, so that a standalone module copies them all."""
    out: dict[str, Callable] = {}
    todo = list(helpers.values())
    while todo:
        fn = todo.pop()
        if fn.__name__ in out:
            continue
        out[fn.__name__] = fn
        for name in {i.argval for i in dis.get_instructions(fn) if i.opname == "LOAD_GLOBAL"}:
            used = fn.__globals__.get(name)
            if inspect.isfunction(used) and used.__module__.startswith("symgrad.") and used.__name__ not in out:
                todo.append(used)
    return dict(sorted(out.items()))


def shape_checks(args, names, printer) -> list[str]:
    """Lines that check every matrix input's trailing shape (and that equal sizes agree)."""
    lines, seen = [], {}
    for a in args:
        if not isinstance(a, sp.MatrixSymbol):
            continue
        shape = printer.shape_of(names[a])
        for axis, dim in ((-2, a.shape[0]), (-1, a.shape[1])):
            got = f"{shape}[{axis}]"
            if dim.is_Integer:
                want, what = str(int(dim)), str(int(dim))
            elif dim in seen:
                want, what = seen[dim], f"{dim} = {{{seen[dim]}}} (as {seen[dim]})"
            else:
                seen[dim] = got
                continue
            lines.append(f"if len({shape}) < 2 or {got} != {want}:")
            lines.append(f"    raise ValueError(f\"{a.name}: axis {axis} has length {{{got}}}, expected {what} "
                         f"(shape {tuple(map(str, a.shape))})\")")
    return lines


def vector_groups(arrays, args, names, reserved) -> list[tuple[str, list]]:
    """(parameter name, its entry symbols) for each group of ``arrays`` whose entries are inputs."""
    groups, taken = [], set(names.values()) | set(reserved)
    for label, entries in (arrays or {}).items():
        entries = list(entries)
        if not entries or not all(isinstance(e, sp.Symbol) for e in entries) or not any(e in args for e in entries):
            continue
        param = label if IDENT.match(label) and label not in taken - {names[e] for e in entries if e in names} else f"{label}_"
        while param in taken:
            param += "_"
        taken.add(param)
        groups.append((param, entries))
    return groups


def vector_lines(groups, names) -> list[str]:
    """The entries of each vector argument: a shape check, then ``a1 = a[..., 0]`` for each."""
    lines = []
    for param, entries in groups:
        n = len(entries)
        lines.append(f"if len({param}.shape) < 1 or {param}.shape[-1] != {n}:")
        lines.append(f'    raise ValueError(f"{param}: shape {{tuple({param}.shape)}}, expected (..., {n}): '
                     f'the entries {entries[0].name} … {entries[-1].name}")')
        lines += [f"{names[e]} = {param}[..., {k}]" for k, e in enumerate(entries) if e in names]
    return lines


