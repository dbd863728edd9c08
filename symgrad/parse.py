"""Parse user text into SymPy objects with a whitelisting parser — never ``eval``.

``parse("sigmoid(w*x + b)")`` reads Python math syntax with :mod:`ast` (which only parses)
and builds SymPy objects node by node. Allowed: numbers, names (real symbols), ``+ - * /``,
``**`` (and ``^`` as a power), unary minus, ``x[k]`` (an indexed entry), lists (vectors) as
function arguments, and calls of the whitelisted functions in :data:`FUNCTIONS`. Anything
else — attributes, imports, lambdas, comprehensions, strings, dunder names — is refused with
a :class:`~symgrad.errors.ParseError` naming the offending part. Sizes are bounded: text
length, nesting depth, node count, integer size and numeric exponents (``9**9**9`` is
refused before anything is computed).
"""

from __future__ import annotations

import ast
import difflib
import math
import re
from typing import Any, Callable, Mapping

import sympy as sp

from . import catalog as C
from .errors import ParseError

__all__ = ["parse", "FUNCTIONS", "CONSTANTS", "MAX_LENGTH", "MAX_DEPTH", "MAX_NODES", "MAX_EXPONENT"]

MAX_LENGTH = 2000  # characters
MAX_DEPTH = 40  # nesting of brackets and operators
MAX_NODES = 600  # syntax-tree nodes
MAX_EXPONENT = 1000  # |numeric exponent|
MAX_INT_DIGITS = 60
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def _sum(*args):
    if len(args) == 1 and isinstance(args[0], sp.MatrixBase):
        return sp.Add(*args[0])
    return sp.Add(*args)


# name → (builder, minimum arity, maximum arity, allowed keywords)
FUNCTIONS: dict[str, tuple[Callable, int, int, frozenset]] = {
    "exp": (sp.exp, 1, 1, frozenset()), "log": (sp.log, 1, 1, frozenset()),
    "ln": (sp.log, 1, 1, frozenset()), "sqrt": (sp.sqrt, 1, 1, frozenset()),
    "sin": (sp.sin, 1, 1, frozenset()), "cos": (sp.cos, 1, 1, frozenset()),
    "tan": (sp.tan, 1, 1, frozenset()), "tanh": (sp.tanh, 1, 1, frozenset()),
    "sinh": (sp.sinh, 1, 1, frozenset()), "cosh": (sp.cosh, 1, 1, frozenset()),
    "abs": (sp.Abs, 1, 1, frozenset()), "Abs": (sp.Abs, 1, 1, frozenset()),
    "max": (sp.Max, 2, 16, frozenset()), "Max": (sp.Max, 2, 16, frozenset()),
    "min": (sp.Min, 2, 16, frozenset()), "Min": (sp.Min, 2, 16, frozenset()),
    "Heaviside": (sp.Heaviside, 1, 2, frozenset()), "sum": (_sum, 1, 64, frozenset()),
    "Piecewise": (sp.Piecewise, 1, 16, frozenset()),  # built by _Builder.piecewise (conditions allowed there only)
    "sigmoid": (C.sigmoid, 1, 1, frozenset()), "relu": (C.relu, 1, 1, frozenset()),
    "step": (C.step, 1, 1, frozenset()), "softplus": (C.softplus, 1, 1, frozenset()),
    "leaky_relu": (C.leaky_relu, 1, 2, frozenset({"alpha"})), "elu": (C.elu, 1, 2, frozenset({"alpha"})),
    "softmax": (C.softmax, 1, 1, frozenset()), "log_softmax": (C.log_softmax, 1, 1, frozenset()),
    "maxout": (C.maxout, 1, 16, frozenset()),
    "bce": (C.bce, 2, 2, frozenset()), "bce_with_logits": (C.bce_with_logits, 2, 2, frozenset()),
    "cross_entropy": (C.cross_entropy, 2, 2, frozenset()),
    "softmax_cross_entropy": (C.softmax_cross_entropy, 2, 2, frozenset()),
    "squared_l2": (C.squared_l2, 2, 2, frozenset()), "hinge": (C.hinge, 2, 2, frozenset()),
    "l2": (C.l2, 1, 2, frozenset({"lam"})),
    "lp_pool": (C.lp_pool, 2, 2, frozenset()), "log_avg_pool": (C.log_avg_pool, 2, 2, frozenset()),
}
CONSTANTS: dict[str, sp.Basic] = {"pi": sp.pi, "E": sp.E}

_BINOPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b, ast.Pow: None}


def parse(text: str, *, symbols: Mapping[str, sp.Basic] | None = None,
          assumptions: Mapping[str, Mapping[str, bool]] | None = None) -> sp.Basic:
    """The SymPy object written in ``text`` (Python math syntax, catalog names allowed).

    ``symbols``: name → existing SymPy symbol to use; ``assumptions``: name → assumptions for
    new symbols (default ``real=True``), e.g. ``{"a": {"positive": True}}``.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse() takes text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ParseError(f"the text is {len(text)} characters long; at most {MAX_LENGTH} are read")
    if not text.strip():
        raise ParseError("the expression is empty")
    _check_nesting(text)
    text = text.replace("^", "**")  # math's power; Python's ^ would bind looser than +
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        where = f" at column {exc.offset}" if exc.offset else ""
        raise ParseError(f"malformed expression{where}: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise ParseError("the expression is too deeply nested to read") from None
    count = sum(1 for _ in ast.walk(tree))
    if count > MAX_NODES:
        raise ParseError(f"the expression has {count} parts; at most {MAX_NODES} are read")
    return _Builder(text, symbols or {}, assumptions or {}).build(tree.body)


def _check_nesting(text: str) -> None:
    depth = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ParseError(f"the expression nests brackets more than {MAX_DEPTH} deep")
        elif ch in ")]}":
            depth -= 1


class _Builder:
    def __init__(self, text: str, symbols: Mapping[str, sp.Basic], assumptions: Mapping):
        self.text = text
        self.symbols = dict(symbols)
        self.assumptions = assumptions
        self.depth = 0

    def refuse(self, node: ast.AST, what: str) -> ParseError:
        part = ast.get_source_segment(self.text.strip(), node) or type(node).__name__
        if len(part) > 60:
            part = part[:57] + "..."
        allowed = "numbers, names, + - * / ** ^, x[k], [lists] and calls of whitelisted functions"
        return ParseError(f"refused {what}: {part!r} (allowed: {allowed})")

    def build(self, node: ast.AST) -> Any:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ParseError(f"the expression nests more than {MAX_DEPTH} operations deep")
        try:
            return self._build(node)
        finally:
            self.depth -= 1

    def _build(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return self.number(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = self.build(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = self.build(node.left), self.build(node.right)
            if isinstance(node.op, ast.Pow):
                return self.power(node, left, right)
            if isinstance(left, sp.MatrixBase) or isinstance(right, sp.MatrixBase):
                if isinstance(node.op, (ast.Add, ast.Sub)) and not (isinstance(left, sp.MatrixBase) and isinstance(right, sp.MatrixBase)):
                    raise self.refuse(node, "adding a scalar to a vector")
            return _BINOPS[type(node.op)](left, right)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Subscript):
            return self.indexed(node)
        if isinstance(node, (ast.List, ast.Tuple)):
            if not node.elts:
                raise self.refuse(node, "an empty list")
            entries = [self.build(e) for e in node.elts]
            if any(isinstance(e, sp.MatrixBase) for e in entries):
                raise self.refuse(node, "nested lists")
            return sp.Matrix(entries)
        if isinstance(node, ast.Attribute):
            raise self.refuse(node, "attribute access")
        if isinstance(node, ast.Lambda):
            raise self.refuse(node, "a lambda")
        if isinstance(node, (ast.ListComp, ast.GeneratorExp, ast.SetComp, ast.DictComp)):
            raise self.refuse(node, "a comprehension")
        raise self.refuse(node, f"the construct {type(node).__name__}")

    def number(self, node: ast.Constant) -> sp.Basic:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.refuse(node, f"a {type(value).__name__} literal")
        if isinstance(value, int):
            if len(str(abs(value))) > MAX_INT_DIGITS:
                raise self.refuse(node, f"an integer of more than {MAX_INT_DIGITS} digits")
            return sp.Integer(value)
        if not math.isfinite(value):
            raise self.refuse(node, "a non-finite number")
        return sp.Float(value)

    def name(self, node: ast.Name) -> sp.Basic:
        ident = node.id
        if not _NAME.match(ident) or "__" in ident:
            raise self.refuse(node, "the name")
        if ident in self.symbols:
            return self.symbols[ident]
        if ident in CONSTANTS:
            return CONSTANTS[ident]
        if ident in FUNCTIONS:
            raise self.refuse(node, f"the function name {ident!r} without a call")
        opts = dict(self.assumptions.get(ident, {"real": True}))
        sym = sp.Symbol(ident, **opts)
        self.symbols[ident] = sym
        return sym

    def power(self, node: ast.BinOp, base: Any, exponent: Any) -> sp.Basic:
        if isinstance(base, sp.MatrixBase) or isinstance(exponent, sp.MatrixBase):
            raise self.refuse(node, "a power of a vector")
        if exponent.is_number:
            if exponent.is_real is False or abs(float(exponent)) > MAX_EXPONENT:
                raise self.refuse(node, f"an exponent beyond ±{MAX_EXPONENT}")
            if base.is_number and base.is_real:
                size = abs(float(exponent)) * math.log2(max(abs(float(base)), 2.0))
                if size > 4096:
                    raise self.refuse(node, "a power whose value has more than 4096 bits")
        return sp.Pow(base, exponent)

    def indexed(self, node: ast.Subscript) -> sp.Basic:
        if not isinstance(node.value, ast.Name):
            raise self.refuse(node, "indexing of something other than a name")
        base_name = node.value.id
        if not _NAME.match(base_name) or "__" in base_name or base_name in FUNCTIONS:
            raise self.refuse(node, "the indexed name")
        index_node = node.slice
        if isinstance(index_node, ast.Name):
            if not _NAME.match(index_node.id):
                raise self.refuse(node, "the index")
            index = self.symbols.get(index_node.id) or sp.Symbol(index_node.id, integer=True, positive=True)
            self.symbols.setdefault(index_node.id, index)
        elif isinstance(index_node, ast.Constant) and isinstance(index_node.value, int) and not isinstance(index_node.value, bool) and 0 < index_node.value < 10**6:
            index = sp.Integer(index_node.value)
        else:
            raise self.refuse(node, "an index that is not a name or a positive integer")
        base = self.symbols.get(base_name)
        if not isinstance(base, sp.IndexedBase):
            base = sp.IndexedBase(base_name, **dict(self.assumptions.get(base_name, {"real": True})))
            self.symbols[base_name] = base
        return base[index]

    _COMPARE = {ast.Lt: sp.StrictLessThan, ast.LtE: sp.LessThan, ast.Gt: sp.StrictGreaterThan,
                ast.GtE: sp.GreaterThan}

    def piecewise(self, node: ast.Call) -> sp.Basic:
        """Piecewise((value, condition), …, (value, True)): comparisons are allowed only here."""
        if node.keywords or not 1 <= len(node.args) <= 16:
            raise self.refuse(node, "a Piecewise that is not Piecewise((value, condition), ..., (value, True))")
        pieces = []
        for arg in node.args:
            if not (isinstance(arg, ast.Tuple) and len(arg.elts) == 2):
                raise self.refuse(arg, "a Piecewise piece that is not (value, condition)")
            value, cond = arg.elts
            pieces.append((self.build(value), self.condition(cond)))
        return sp.Piecewise(*pieces)

    def condition(self, node: ast.AST) -> sp.Basic:
        if isinstance(node, ast.Constant) and node.value is True:
            return sp.true
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in self._COMPARE:
            return self._COMPARE[type(node.ops[0])](self.build(node.left), self.build(node.comparators[0]))
        raise self.refuse(node, "a condition other than one comparison (<, <=, >, >=) or True")

    def call(self, node: ast.Call) -> sp.Basic:
        if not isinstance(node.func, ast.Name):
            raise self.refuse(node, "a call of something other than a whitelisted function name")
        fname = node.func.id
        if fname == "Piecewise":
            return self.piecewise(node)
        if fname not in FUNCTIONS:
            close = ", ".join(difflib.get_close_matches(fname, list(FUNCTIONS), n=3))
            hint = f"; did you mean {close}?" if close else ""
            raise ParseError(f"unknown function {fname!r}{hint} (whitelisted: {', '.join(sorted(FUNCTIONS))})")
        builder, lo, hi, keywords = FUNCTIONS[fname]
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.refuse(node, "starred arguments")
        if not lo <= len(node.args) <= hi:
            arity = str(lo) if lo == hi else f"{lo} to {hi}"
            raise self.refuse(node, f"a call of {fname} with {len(node.args)} arguments ({arity} expected)")
        kwargs = {}
        for kw in node.keywords:
            if kw.arg not in keywords:
                raise self.refuse(node, f"the keyword {kw.arg!r} for {fname}")
            kwargs[kw.arg] = self.build(kw.value)
        args = [self.build(a) for a in node.args]
        try:
            return builder(*args, **kwargs)
        except (TypeError, ValueError) as exc:
            raise ParseError(f"cannot apply {fname}: {exc}") from None
