"""Parse user text into SymPy objects with a whitelisting parser — never ``eval``.

``parse("sigmoid(w*x + b)")`` reads Python math syntax with :mod:`ast` (which only parses)
and builds SymPy objects node by node. Allowed: numbers, names (real symbols), ``+ - * /``,
``**`` (and ``^`` as a power), unary minus, ``x[k]`` (an indexed entry), lists (vectors) as
function arguments, calls of the functions in :data:`FUNCTIONS` — the elementary ones and
every catalog block by its name, read from the registry (a block is typeable the day it is
declared) — and, for matrices (MatrixSymbols passed in ``symbols``), ``X.T``, ``transpose(X)``,
``X^T`` and ``@``. ``lambda`` and Greek letters (``λ``) are symbol names. Anything else —
other attributes, imports, lambdas, comprehensions, strings, dunder names, a division by zero
— is refused with a :class:`~symgrad.errors.ParseError` naming the offending part. Sizes are
bounded: text length, nesting depth, node count, integer size and numeric exponents
(``9**9**9`` is refused before anything is computed).
"""

from __future__ import annotations

import ast
import difflib
import inspect
import math
import re
import sys
from typing import Any, Callable, Iterator, Mapping

import sympy as sp

from .. import catalog as C
from ..errors import ParseError, SymgradError
from ..catalog.registry import Block
from ..catalog.registry import blocks

__all__ = ["parse", "FUNCTIONS", "CONSTANTS", "GREEK", "MAX_LENGTH", "MAX_DEPTH", "MAX_NODES", "MAX_EXPONENT",
           "bounded_power", "check_name", "block_builders", "finite"]

MAX_LENGTH = 2000  # characters
MAX_DEPTH = 40  # nesting of brackets and operators
MAX_NODES = 600  # syntax-tree nodes
MAX_EXPONENT = 1000  # |numeric exponent|
MAX_INT_DIGITS = 60
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def _sum(*args):
    if len(args) > 1 and any(isinstance(a, (sp.MatrixBase, sp.MatrixExpr)) for a in args):
        raise ParseError("sum(a, b, …) adds its arguments: a range such as (i, 1, n) is not one (write "
                         r"the sum over an index in LaTeX: \sum_{i=1}^{n} …, or sum([…]) of a list)")
    if len(args) == 1 and isinstance(args[0], sp.MatrixBase):
        return sp.Add(*args[0])
    if len(args) == 1 and isinstance(args[0], sp.MatrixExpr):  # Σ_ij A_ij = 1ᵀ A 1 (a 1×1 matrix)
        A = args[0]
        return sp.OneMatrix(1, A.shape[0]) * A * sp.OneMatrix(A.shape[1], 1)
    return sp.Add(*args)


def _sq_frobenius(A):
    """‖A‖² = Σ_ij A_ij² = tr(Aᵀ A)."""
    if isinstance(A, sp.MatrixBase):
        return sp.Add(*[e ** 2 for e in A])
    if isinstance(A, sp.MatrixExpr):
        return sp.Trace(A.T * A)
    return A ** 2


def _transpose(x):
    return x.T if isinstance(x, (sp.MatrixBase, sp.MatrixExpr)) else x


def _diag(v):
    if isinstance(v, sp.MatrixBase):
        return sp.diag(*v)
    if isinstance(v, sp.MatrixExpr):
        return sp.DiagMatrix(v)
    raise ValueError("diag takes a vector")


# name → (builder, minimum arity, maximum arity, allowed keywords): the elementary functions
ELEMENTARY: dict[str, tuple[Callable, int, int, frozenset]] = {
    "exp": (sp.exp, 1, 1, frozenset()), "log": (sp.log, 1, 1, frozenset()),
    "ln": (sp.log, 1, 1, frozenset()), "sqrt": (sp.sqrt, 1, 1, frozenset()),
    "sin": (sp.sin, 1, 1, frozenset()), "cos": (sp.cos, 1, 1, frozenset()),
    "tan": (sp.tan, 1, 1, frozenset()), "tanh": (sp.tanh, 1, 1, frozenset()),
    "sinh": (sp.sinh, 1, 1, frozenset()), "cosh": (sp.cosh, 1, 1, frozenset()),
    "sech": (sp.sech, 1, 1, frozenset()), "csch": (sp.csch, 1, 1, frozenset()),
    "coth": (sp.coth, 1, 1, frozenset()), "atan": (sp.atan, 1, 1, frozenset()),
    "arctan": (sp.atan, 1, 1, frozenset()), "asinh": (sp.asinh, 1, 1, frozenset()),
    "erf": (sp.erf, 1, 1, frozenset()), "erfc": (sp.erfc, 1, 1, frozenset()),
    "sign": (sp.sign, 1, 1, frozenset()), "sgn": (sp.sign, 1, 1, frozenset()),
    "abs": (sp.Abs, 1, 1, frozenset()), "Abs": (sp.Abs, 1, 1, frozenset()),
    "max": (sp.Max, 2, 16, frozenset()), "Max": (sp.Max, 2, 16, frozenset()),
    "min": (sp.Min, 2, 16, frozenset()), "Min": (sp.Min, 2, 16, frozenset()),
    "Heaviside": (sp.Heaviside, 1, 2, frozenset()), "sum": (_sum, 1, 64, frozenset()),
    "Piecewise": (sp.Piecewise, 1, 16, frozenset()),  # built by _Builder.piecewise (conditions allowed there only)
    "transpose": (_transpose, 1, 1, frozenset()), "diag": (_diag, 1, 1, frozenset()),
    "trace": (sp.Trace, 1, 1, frozenset()), "sq_frobenius": (_sq_frobenius, 1, 1, frozenset()),
}


def _arity(fn: Callable) -> tuple[int, int, frozenset]:
    """(minimum, maximum positional arguments, keywords) of a block's builder, from its signature."""
    target = fn
    if isinstance(fn, type) and issubclass(fn, sp.Function):
        own_new = next((c for c in fn.__mro__ if "__new__" in vars(c) and c.__module__.startswith("symgrad")), None)
        if own_new is not None:  # leaky_relu(x, alpha=0.01): the declared signature
            target = own_new.__new__
        else:
            nargs = getattr(fn, "nargs", None)
            counts = sorted(int(n) for n in nargs) if isinstance(nargs, sp.FiniteSet) else [1, 16]
            return counts[0], counts[-1], frozenset()
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return 1, 16, frozenset()
    if target is not fn and params:
        params = params[1:]  # cls
    lo = sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty)
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    hi = 16 if any(p.kind is p.VAR_POSITIONAL for p in params) else len(positional)
    keywords = frozenset(p.name for p in params if p.default is not p.empty and p.kind is not p.VAR_KEYWORD)
    return max(lo, 1 if hi else 0), max(hi, lo), keywords


_BLOCK_CACHE: dict = {}


def block_builders() -> dict[str, Callable]:
    """name → the callable that builds the block: every catalog block by its registry name (the
    catalog's function of that name, else the declaring module's, else the block's ``sympy.Function``)."""

    declared = blocks()
    key = (tuple(b.name for b in declared), len(C.Primitive.__subclasses__()))
    if _BLOCK_CACHE.get("key") != key:
        out = {}
        for b in declared:
            home = sys.modules.get(getattr(b.example, "__module__", ""), None)  # the module declaring it
            for fn in (getattr(C, b.name, None), getattr(home, b.name, None), b.function):
                if callable(fn) and not isinstance(fn, Block):
                    out[b.name] = fn
                    break
        # the catalog's SymPy functions by the names they print as (normal_cdf, SoftmaxEntry, …),
        # so that every derivative symgrad prints reads back
        stack = list(C.Primitive.__subclasses__())
        while stack:
            cls = stack.pop()
            stack.extend(cls.__subclasses__())
            name = cls.__name__
            if cls.__module__.startswith("symgrad.") and _NAME.match(name) and "__" not in name:
                out.setdefault(name, cls)
        _BLOCK_CACHE.update(key=key, builders=out, table=None)
    return _BLOCK_CACHE["builders"]


class _Functions(Mapping):
    """The elementary functions and every catalog block (read from the registry at each use)."""

    def _table(self) -> dict[str, tuple[Callable, int, int, frozenset]]:
        builders = block_builders()
        if _BLOCK_CACHE.get("table") is None:
            table = {}
            for name, fn in builders.items():
                if name not in ELEMENTARY and _NAME.match(name):
                    lo, hi, keywords = _arity(fn)
                    table[name] = (fn, lo, hi, keywords)
            _BLOCK_CACHE["table"] = {**table, **ELEMENTARY}
        return _BLOCK_CACHE["table"]

    def __getitem__(self, name: str):
        return self._table()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


FUNCTIONS: Mapping[str, tuple[Callable, int, int, frozenset]] = _Functions()
CONSTANTS: dict[str, sp.Basic] = {"pi": sp.pi, "E": sp.E}
GREEK = {"α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon", "ζ": "zeta", "η": "eta",
         "θ": "theta", "ι": "iota", "κ": "kappa", "λ": "lambda", "μ": "mu", "ν": "nu", "ξ": "xi", "π": "pi",
         "ρ": "rho", "σ": "sigma", "τ": "tau", "υ": "upsilon", "φ": "phi", "χ": "chi", "ψ": "psi", "ω": "omega",
         "Γ": "Gamma", "Δ": "Delta", "Θ": "Theta", "Λ": "Lambda", "Ξ": "Xi", "Π": "Pi", "Σ": "Sigma",
         "Φ": "Phi", "Ψ": "Psi", "Ω": "Omega"}


def check_name(name: str, what: str = "name") -> str:
    """``name`` when it is a plain identifier (letters, digits, _; no ``__``), else a ParseError."""
    if not isinstance(name, str) or not _NAME.match(name) or "__" in name:
        raise ParseError(f"refused the {what} {name!r}: names are letters, digits and single underscores, "
                         "beginning with a letter")
    return name


def bounded_power(base: Any, exponent: Any) -> sp.Basic:
    """base**exponent, refused (ParseError) when the exponent or the value's size is beyond bounds."""
    if exponent.is_number:
        if exponent.is_real is False or exponent.has(sp.zoo, sp.nan) or _magnitude(exponent) > MAX_EXPONENT:
            raise ParseError(f"refused an exponent beyond ±{MAX_EXPONENT}")
        if base.is_number and base.is_real and not base.has(sp.zoo, sp.nan):
            size = abs(float(exponent)) * math.log2(max(_magnitude(base), 2.0))
            if size > 4096:
                raise ParseError("refused a power whose value has more than 4096 bits")
            if base == 0 and exponent.is_negative:
                raise ParseError("refused a division by zero (0 to a negative power)")
    return sp.Pow(base, exponent)


def _magnitude(number: sp.Expr) -> float:
    try:
        value = abs(float(number))
    except (OverflowError, TypeError, ValueError):
        return float("inf")
    return value if math.isfinite(value) else float("inf")


def finite(value: Any, what: str = "expression") -> Any:
    """``value`` unless it contains zoo, nan or ∞ (a division by zero, an undefined number)."""
    if isinstance(value, (sp.Basic, sp.MatrixBase)) and value.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        raise ParseError(f"the {what} is undefined: it divides by zero or evaluates to zoo/nan/oo")
    return value

_BINOPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.MatMult: lambda a, b: a * b, ast.Div: lambda a, b: a / b, ast.Pow: None}
_MATRIX = (sp.MatrixBase, sp.MatrixExpr)


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
    text = re.sub(r"\blambda\b", "λ", text)  # a symbol named lambda (a Python keyword)
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
    return finite(_Builder(text, symbols or {}, assumptions or {}).build(tree.body))


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
            left = self.build(node.left)
            if isinstance(node.op, ast.Pow) and isinstance(left, _MATRIX) and isinstance(node.right, ast.Name) \
                    and node.right.id == "T" and not isinstance(self.symbols.get("T"), sp.Symbol):
                return left.T  # X^T: the transpose
            right = self.build(node.right)
            if isinstance(node.op, ast.Pow):
                return self.power(node, left, right)
            if isinstance(left, _MATRIX) or isinstance(right, _MATRIX):
                if isinstance(node.op, (ast.Add, ast.Sub)) and not (isinstance(left, _MATRIX) and isinstance(right, _MATRIX)):
                    raise self.refuse(node, "adding a scalar to a vector")
                if isinstance(node.op, ast.Div) and isinstance(right, _MATRIX):
                    raise self.refuse(node, "a division by a matrix")
            if isinstance(node.op, ast.Div) and getattr(right, "is_zero", False):
                raise self.refuse(node, "a division by zero")
            if isinstance(node.op, ast.MatMult) and not (isinstance(left, _MATRIX) and isinstance(right, _MATRIX)):
                raise self.refuse(node, "@ between things that are not both matrices")
            try:
                return _BINOPS[type(node.op)](left, right)
            except (sp.ShapeError, TypeError, ValueError) as exc:
                raise self.refuse(node, f"an operation on incompatible shapes ({exc})") from None
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
            if node.attr == "T":
                value = self.build(node.value)
                if not isinstance(value, _MATRIX):
                    raise self.refuse(node, ".T of something that is not a matrix (declare matrices, e.g. --matrix X:n,n)")
                return value.T
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
        ident = GREEK.get(node.id, node.id)  # λ → lambda
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
        if isinstance(base, _MATRIX) or isinstance(exponent, _MATRIX):
            raise self.refuse(node, "a power of a vector or matrix (write X.T for a transpose)")
        try:
            return bounded_power(base, exponent)
        except ParseError as exc:
            raise self.refuse(node, str(exc).removeprefix("refused ")) from None

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
        except (TypeError, ValueError, AttributeError, IndexError, KeyError, NotImplementedError,
                sp.ShapeError, SymgradError) as exc:
            raise ParseError(f"cannot apply {fname}: {exc}") from None
