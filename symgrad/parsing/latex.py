r"""Read a subset of LaTeX math in ML notation into SymPy objects, without ``eval``.

Understood: numbers; single-letter names, Greek letters (``\alpha``, ``\lambda``), names with
digit subscripts (``w_1`` → ``w1``) and letter subscripts (``x_i`` → the indexed entry x[i]),
``\mathbf{x}``/``\mathrm{lr}`` as names; ``+ - \cdot \times /``, implicit products (``2x``,
``\sigma(x)(1-\sigma(x))``), ``^``, ``\frac{a}{b}``, ``\sqrt{a}``, ``\sqrt[n]{a}``, ``e^{x}``
(exp); the elementary functions (``\exp \log \ln \tanh \sech \erf \sgn`` …, also as
``\operatorname{sech}``) and every catalog block by its name or its LaTeX name
(``\sigma``, ``\operatorname{ReLU}``, ``\operatorname{LeakyReLU}_{0.2}(x)``), read from the
registry — a new block is typeable the day it is declared; function powers
(``\tanh^2(x)``, ``\operatorname{sech}^2(x)``); ``\max``/``\min``, ``|x|``, ``\delta_{ij}``,
``\mathbf{1}[u > 0]`` (the step), ``\sum_i`` and ``\sum_{i=1}^{n}``. For matrices (passed as
MatrixSymbols in ``symbols``): ``X^\top``, ``X^T``, ``X^{\mathsf{T}}``, ``\|Wx\|^2`` (the
squared Frobenius / Euclidean norm), ``\odot``/``\circ`` (entrywise product),
``\operatorname{diag}(v)``, ``\mathbf{1}`` (the ones vector, sized by its neighbour:
``\mathbf{1}^\top x``). Spacing/sizing commands (``\left``, ``\right``, ``\,``) are ignored.
Anything else, and anything ambiguous (``x^T`` for a scalar x, ``\tanh^{-1}``), is refused
with a :class:`~symgrad.errors.ParseError` naming it — never guessed. Sizes are bounded as in
:mod:`symgrad.parsing.python` (length, depth, exponents, the bit size of powers).
"""

from __future__ import annotations

import re
from typing import Callable, Mapping

import sympy as sp

from .. import catalog as C
from ..errors import ParseError
from .python import ELEMENTARY, MAX_DEPTH, MAX_LENGTH, block_builders, bounded_power, check_name, finite
from ..catalog.registry import blocks

__all__ = ["parse_latex", "latex_functions"]

_TOKEN = re.compile(r"\\[A-Za-z]+|\\[,;:! |_]|\d+(?:\.\d+)?|[A-Za-z]|[+\-*/^_(){}\[\],=<>|'!]|\s+")
_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta", "iota",
          "kappa", "lambda", "mu", "nu", "xi", "pi", "rho", "varrho", "tau", "upsilon", "phi", "varphi", "chi",
          "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi", "Psi",
          "Omega", "ell"}
_SPACING = {r"\,", r"\;", r"\:", r"\!", "\\ ", r"\left", r"\right", r"\big", r"\Big", r"\bigl", r"\bigr",
            r"\Bigl", r"\Bigr", r"\bigg", r"\Bigg", r"\biggl", r"\biggr", r"\displaystyle", r"\quad", r"\qquad"}
_TOP = {r"\top", r"\intercal", r"\mathsf", r"\mathrm"}  # X^\top, X^\intercal, X^{\mathsf{T}}
_NORMS = {r"\|": r"\|", r"\lVert": r"\rVert", r"\Vert": r"\Vert"}
_MATRIX = (sp.MatrixBase, sp.MatrixExpr)


def _diag(v):
    return ELEMENTARY["diag"][0](v)


_COMMANDS: dict[str, Callable] = {  # elementary commands
    r"\exp": sp.exp, r"\log": sp.log, r"\ln": sp.log, r"\tanh": sp.tanh, r"\sinh": sp.sinh, r"\cosh": sp.cosh,
    r"\sin": sp.sin, r"\cos": sp.cos, r"\tan": sp.tan, r"\sech": sp.sech, r"\csch": sp.csch, r"\coth": sp.coth,
    r"\arctan": sp.atan, r"\erf": sp.erf, r"\erfc": sp.erfc, r"\sgn": sp.sign,
}
_OPERATORS: dict[str, Callable] = {  # \operatorname{…} of elementary functions
    "sech": sp.sech, "csch": sp.csch, "erf": sp.erf, "erfc": sp.erfc, "sign": sp.sign, "sgn": sp.sign,
    "diag": _diag, "tr": sp.Trace, "Tr": sp.Trace, "trace": sp.Trace, "tanh": sp.tanh, "exp": sp.exp,
    "log": sp.log,
}


def latex_functions() -> tuple[dict[str, Callable], dict[str, Callable]]:
    r"""(commands such as ``\sigma`` → builder, ``\operatorname`` names → builder): the elementary
    functions and every catalog block — its registry name and the ``\operatorname{…}`` of its
    LaTeX — read from the registry at each call."""
    commands, named = dict(_COMMANDS), {}

    builders = block_builders()
    for b in blocks():
        fn = builders.get(b.name)
        if fn is None:
            continue
        named.setdefault(b.name, fn)
        sources = [b.latex.split("=")[0].strip(), getattr(b.function, "latex_name", "") or ""]
        for src in sources:
            m = re.fullmatch(r"\\operatorname\{([A-Za-z][A-Za-z0-9]*)\}(?:_\{?\\?[A-Za-z]+\}?)?(?:\(.*\))?", src)
            if m:
                named.setdefault(m.group(1), fn)
        latex_name = getattr(b.function, "latex_name", "") or ""
        if re.fullmatch(r"\\[A-Za-z]+", latex_name) and latex_name not in (r"\max", r"\min") \
                and latex_name[1:] not in ("log", "exp"):
            commands.setdefault(latex_name, fn)
    for k, v in _OPERATORS.items():
        named.setdefault(k, v)
    return commands, named


class _Ones:
    """``\\mathbf{1}`` before its size is known (a column, or a row when transposed)."""

    def __init__(self, row: bool = False):
        self.row = row


def parse_latex(text: str, *, symbols: Mapping[str, sp.Basic] | None = None) -> sp.Basic:
    r"""The SymPy expression written in LaTeX ``text``: ``parse_latex(r"\sigma(x)(1-\sigma(x))")``.

    ``symbols`` maps names to existing symbols (or IndexedBases, or MatrixSymbols) so the claim
    uses the same objects as the expression it is compared with."""
    if not isinstance(text, str):
        raise TypeError("parse_latex() takes text")
    if len(text) > MAX_LENGTH:
        raise ParseError(f"the LaTeX is {len(text)} characters long; at most {MAX_LENGTH} are read")
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ParseError(f"cannot read {text[pos:pos + 10]!r} at column {pos + 1} of the LaTeX")
        tok = m.group(0)
        pos = m.end()
        if tok.isspace() or tok in _SPACING:
            continue
        tokens.append(tok)
    if not tokens:
        raise ParseError("the LaTeX expression is empty")
    parser = _Parser(tokens, dict(symbols or {}))
    value = parser.expr()
    if parser.i != len(tokens):
        raise ParseError(f"cannot read the LaTeX from {' '.join(tokens[parser.i:parser.i + 5])!r} on")
    if isinstance(value, _Ones):
        raise ParseError(r"cannot tell the size of \mathbf{1}: write it next to a matrix, as in \mathbf{1}^\top x")
    return finite(value, "LaTeX expression")


class _Parser:
    def __init__(self, tokens: list[str], symbols: dict):
        self.t = tokens
        self.i = 0
        self.symbols = symbols
        self.depth = 0
        self.closers: list[str] = []  # the norm/abs bars that close an open |…| or \|…\|
        self.commands, self.named = latex_functions()

    # -- helpers -------------------------------------------------------------------------------
    def peek(self, k: int = 0) -> str | None:
        return self.t[self.i + k] if self.i + k < len(self.t) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None:
            raise ParseError(f"the LaTeX ends early{' (expected ' + repr(expected) + ')' if expected else ''}")
        if expected is not None and tok != expected:
            raise ParseError(f"expected {expected!r} in the LaTeX, found {tok!r}")
        self.i += 1
        return tok

    def enter(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ParseError(f"the LaTeX nests more than {MAX_DEPTH} deep")

    def group(self) -> sp.Basic:
        """{…} or a single token (as in x^2, \\frac12)."""
        if self.peek() == "{":
            self.take("{")
            value = self.expr()
            self.take("}")
            return value
        return self.atom(allow_call=False)

    def raw_group(self) -> str:
        self.take("{")
        out = []
        while self.peek() != "}":
            tok = self.take()
            out.append("_" if tok == "\\_" else tok)  # \operatorname{kl\_div}: LaTeX's escaped underscore
            if len(out) > 64:
                raise ParseError("a name in braces longer than 64 tokens")
        self.take("}")
        return "".join(out)

    # -- arithmetic, with matrices and the ones vector -----------------------------------------------
    def add(self, a, b, sign: int):
        if isinstance(a, _Ones) and isinstance(b, _MATRIX):
            a = sp.OneMatrix(*b.shape)
        if isinstance(b, _Ones) and isinstance(a, _MATRIX):
            b = sp.OneMatrix(*a.shape)
        if isinstance(a, _Ones) or isinstance(b, _Ones):
            raise ParseError(r"cannot tell the size of \mathbf{1} in a sum with a scalar")
        if isinstance(a, _MATRIX) != isinstance(b, _MATRIX) and not (_is_zero(a) or _is_zero(b)):
            raise ParseError("cannot add a scalar and a matrix in the LaTeX (the shapes differ)")
        try:
            return a + b if sign > 0 else a - b
        except (sp.ShapeError, TypeError, ValueError) as exc:
            raise ParseError(f"cannot add these shapes in the LaTeX: {exc}") from None

    def mul(self, a, b):
        if isinstance(a, _Ones) and isinstance(b, _MATRIX) and a.row:  # 1^T B
            a = sp.OneMatrix(1, b.shape[0])
        elif isinstance(b, _Ones) and isinstance(a, _MATRIX) and not b.row:  # B 1
            b = sp.OneMatrix(a.shape[1], 1)
        if isinstance(a, _Ones) or isinstance(b, _Ones):
            raise ParseError(r"cannot tell the size of \mathbf{1} here: write \mathbf{1}^\top x or W \mathbf{1}")
        try:
            return a * b
        except (sp.ShapeError, TypeError, ValueError) as exc:
            raise ParseError(f"cannot multiply these shapes in the LaTeX: {exc}") from None

    def hadamard(self, a, b):
        if isinstance(a, _Ones) and isinstance(b, _MATRIX):  # x ⊙ 1: the ones take the other's shape
            a = sp.OneMatrix(*b.shape)
        elif isinstance(b, _Ones) and isinstance(a, _MATRIX):
            b = sp.OneMatrix(*a.shape)
        if isinstance(a, _MATRIX) and isinstance(b, _MATRIX):
            if a.shape != b.shape:
                raise ParseError(f"an entrywise product of shapes {a.shape} and {b.shape}")
            return sp.hadamard_product(a, b)
        if isinstance(a, _Ones) or isinstance(b, _Ones):
            raise ParseError(r"cannot tell the size of \mathbf{1} in an entrywise product")
        return a * b

    # -- grammar ---------------------------------------------------------------------------------
    def expr(self) -> sp.Basic:
        self.enter()
        try:
            value = self.term()
            while self.peek() in ("+", "-"):
                op = self.take()
                rhs = self.term()
                value = self.add(value, rhs, 1 if op == "+" else -1)
            return value
        finally:
            self.depth -= 1

    def term(self) -> sp.Basic:
        value = self.unary()
        while True:
            tok = self.peek()
            if tok in ("*", r"\cdot", r"\times"):
                self.take()
                value = self.mul(value, self.unary())
            elif tok in (r"\odot", r"\circ"):
                self.take()
                value = self.hadamard(value, self.unary())
            elif tok == "/":
                self.take()
                value = self.divide(value, self.unary())
            elif tok is not None and self._starts_atom(tok):
                value = self.mul(value, self.power())  # implicit product
            else:
                return value

    def divide(self, a, b):
        if isinstance(b, _MATRIX) or isinstance(b, _Ones) or isinstance(a, _Ones):
            raise ParseError("a division by a matrix in the LaTeX")
        if getattr(b, "is_zero", False):
            raise ParseError("a division by zero in the LaTeX")
        return a / b

    def _starts_atom(self, tok: str) -> bool:
        if self.closers and tok == self.closers[-1]:
            return False
        if tok == "|" or tok in _NORMS.values():
            return False  # a bar opens |x| only at the start of a factor (never an implicit product)
        return (tok in ("(", "{") or tok[0].isalnum() or
                (tok.startswith("\\") and tok not in (r"\cdot", r"\times", r"\right", r"\odot", r"\circ", r"\top")))

    def unary(self) -> sp.Basic:
        if self.peek() == "-":
            self.take()
            value = self.unary()
            if isinstance(value, _Ones):
                raise ParseError(r"cannot tell the size of -\mathbf{1}")
            return -value
        if self.peek() == "+":
            self.take()
            return self.unary()
        return self.power()

    def transpose_mark(self) -> bool:
        """After ^: is the exponent a transpose mark (\\top, T, {\\top}, {T}, {\\mathsf{T}})?"""
        j = 0
        braced = self.peek() == "{"
        if braced:
            j = 1
        tok = self.peek(j)
        if tok in (r"\top", r"\intercal"):
            length = 1
        elif tok == "T":
            length = 1
        elif tok in (r"\mathsf", r"\mathrm") and self.peek(j + 1) == "{" and self.peek(j + 2) == "T" and self.peek(j + 3) == "}":
            length = 4
        else:
            return False
        return not braced or self.peek(j + length) == "}"

    def skip_transpose_mark(self) -> str:
        braced = self.peek() == "{"
        if braced:
            self.take("{")
        tok = self.take()
        if tok in (r"\mathsf", r"\mathrm"):
            self.raw_group()
            tok = "T"
        if braced:
            self.take("}")
        return tok

    def power(self) -> sp.Basic:
        base = self.atom()
        while self.peek() == "^":
            self.take()
            if self.transpose_mark():
                start = self.i
                mark = self.skip_transpose_mark()
                if isinstance(base, _Ones):
                    base = _Ones(row=not base.row)
                elif isinstance(base, _MATRIX):
                    base = base.T
                elif mark == "T" and not isinstance(self.symbols.get("T"), sp.Symbol):
                    self.i = start
                    raise ParseError("ambiguous ^T: the base is not a matrix (declare it as one, or write "
                                     "^{T} with a symbol T of the expression for a power)")
                elif mark == "T":
                    base = bounded_power(base, self.symbols["T"])
                continue  # the transpose of a scalar is the scalar
            exponent = self.group()
            if isinstance(base, (_Ones,) + _MATRIX) or isinstance(exponent, _MATRIX):
                raise ParseError("a power of a matrix or vector in the LaTeX (write X^\\top for a transpose)")
            if base == sp.E:
                base = sp.exp(exponent)
            else:
                base = bounded_power(base, exponent)
        return base

    def atom(self, allow_call: bool = True) -> sp.Basic:
        tok = self.take()
        if tok in ("(", "["):
            value = self.expr()
            self.take(")" if tok == "(" else "]")
            return value
        if tok == "{":
            value = self.expr()
            self.take("}")
            return value
        if tok == "|" or tok in _NORMS:
            return self.norm(tok)
        if re.fullmatch(r"\d+(?:\.\d+)?", tok):
            return sp.Integer(int(tok)) if tok.isdigit() else sp.Float(tok)
        if tok in (r"\frac", r"\dfrac", r"\tfrac"):
            num = self.group()
            den = self.group()
            return self.divide(num, den)
        if tok == r"\sqrt":
            if self.peek() == "[":
                self.take("[")
                n = self.expr()
                self.take("]")
                if getattr(n, "is_zero", False):
                    raise ParseError(r"a root of index 0 (\sqrt[0]{…}) in the LaTeX")
                return bounded_power(self.group(), 1 / n)
            return sp.sqrt(self.group())
        if tok in self.commands:
            return self.call(self.commands[tok], tok)
        if tok in (r"\max", r"\min"):
            args = self.arguments()
            return (sp.Max if tok == r"\max" else sp.Min)(*args)
        if tok in (r"\operatorname", r"\mathrm", r"\text", r"\mathit"):
            name = self.raw_group()
            if name in self.named:
                return self.call(self.named[name], name)
            if tok == r"\operatorname":
                close = ", ".join(sorted(self.named))
                raise ParseError(f"unknown function \\operatorname{{{name}}} (known: {close})")
            return self.with_subscript(check_name(name, "LaTeX name"))
        if tok in (r"\mathbf", r"\mathbb", r"\mathbbm", r"\boldsymbol", r"\bm", r"\vec"):
            inner = self.raw_group()
            if inner == "1":
                if self.peek() == "[":
                    return self.indicator()
                return _Ones()
            if inner.startswith("\\") and inner[1:] in _GREEK:
                inner = inner[1:]
            return self.with_subscript(check_name(inner, "LaTeX name"))
        if tok == r"\delta" and self.peek() == "_":
            self.take("_")
            i, j = self.subscript_pair()
            return sp.KroneckerDelta(i, j)
        if tok == r"\sum":
            return self.sum()
        if tok.startswith("\\"):
            if tok[1:] in _GREEK:
                return self.with_subscript(tok[1:])
            raise ParseError(f"cannot read the LaTeX command {tok} (it is not in the supported subset)")
        if tok.isalpha():
            if tok == "e" and self.peek() == "^" and "e" not in self.symbols:
                return sp.E
            return self.with_subscript(tok)
        raise ParseError(f"unexpected {tok!r} in the LaTeX")

    def norm(self, opener: str):
        closer = "|" if opener == "|" else _NORMS[opener]
        self.closers.append(closer)
        try:
            inner = self.expr()
        finally:
            self.closers.pop()
        self.take(closer)
        if self.peek() == "_" and opener != "|":  # \|v\|_2, \|W\|_F
            self.take("_")
            sub = self.raw_group() if self.peek() == "{" else self.take()
            if sub not in ("2", "F"):
                raise ParseError(f"the norm \\|·\\|_{sub} is not supported (‖·‖₂ and ‖·‖_F are)")
        if isinstance(inner, _Ones):
            raise ParseError(r"cannot tell the size of \mathbf{1} inside a norm")
        if isinstance(inner, sp.MatrixBase):
            return sp.sqrt(sum(e ** 2 for e in inner))
        if isinstance(inner, sp.MatrixExpr):
            return sp.sqrt(sp.Trace(inner.T * inner))
        if opener != "|":
            return sp.Abs(inner)
        return sp.Abs(inner)

    def call(self, fn, name: str = ""):
        exponent = None
        if self.peek() == "^":  # \tanh^2(x) = (\tanh x)^2
            self.take("^")
            exponent = self.group()
            if exponent == -1:
                raise ParseError(f"ambiguous {name}^{{-1}}: the inverse function or the reciprocal? Write "
                                 f"1/{name}(x) or the inverse by name")
        extra = []
        if self.peek() == "_" and name and name[0].isalpha():  # \operatorname{LeakyReLU}_{0.2}(x): a parameter
            self.take("_")
            extra = [self.group()]
        args = self.arguments()
        if any(isinstance(a, _Ones) for a in args):
            raise ParseError(rf"cannot tell the size of \mathbf{{1}} as the argument of {name}")
        try:
            value = fn(*args, *extra)
        except (TypeError, ValueError, AttributeError, IndexError, NotImplementedError, sp.ShapeError) as exc:
            raise ParseError(f"cannot apply {name or fn} in the LaTeX: {exc}") from None
        return value if exponent is None else bounded_power(value, exponent)

    def arguments(self) -> list:
        opener = self.peek()
        if opener not in ("(", "{", "["):
            return [self.power()]  # \log x
        self.take()
        args = [self.expr()]
        while self.peek() == ",":
            self.take(",")
            args.append(self.expr())
        self.take({"(": ")", "{": "}", "[": "]"}[opener])
        return args

    def indicator(self) -> sp.Basic:
        self.take("[")
        lhs = self.expr()
        op = self.take()
        rhs = self.expr()
        self.take("]")
        if op == ">":
            return C.step(lhs - rhs)
        if op == "<":
            return C.step(rhs - lhs)
        raise ParseError(f"an indicator must read 1[u > v] or 1[u < v], found {op!r}")

    def subscript_pair(self):
        if self.peek() == "{":
            self.take("{")
            parts = []
            while self.peek() != "}":
                tok = self.take()
                if tok != ",":
                    parts.append(tok)
            self.take("}")
        else:
            parts = [self.take()]
        if len(parts) != 2:
            raise ParseError("\\delta needs two indices, e.g. \\delta_{ij}")
        return [self.index(p) for p in parts]

    def index(self, tok: str):
        if tok.isdigit():
            return sp.Integer(int(tok))
        check_name(tok, "index")
        existing = self.symbols.get(tok)
        if existing is not None and not isinstance(existing, (sp.IndexedBase, sp.MatrixSymbol)):
            return existing
        sym = sp.Symbol(tok, integer=True, positive=True)
        self.symbols.setdefault(tok, sym)
        return sym

    def with_subscript(self, name: str) -> sp.Basic:
        if self.peek() != "_":
            return self.name(name)
        self.take("_")
        if self.peek() == "{":
            sub = self.raw_group()
        else:
            sub = self.take()
        if sub.isdigit():
            return self.name(f"{name}{sub}")
        if re.fullmatch(r"[A-Za-z]", sub):
            full = f"{name}_{sub}"
            if full in self.symbols and not isinstance(self.symbols[full], sp.IndexedBase):
                return self.symbols[full]
            base = self.symbols.get(name)
            if not isinstance(base, sp.IndexedBase):
                base = sp.IndexedBase(check_name(name), real=True)
                self.symbols[name] = base
            return base[self.index(sub)]
        raise ParseError(f"cannot read the subscript {sub!r} of {name}")

    def name(self, name: str) -> sp.Basic:
        check_name(name, "LaTeX name")
        if name in self.symbols:
            return self.symbols[name]
        if name == "e":
            return sp.E
        if name == "pi":
            return sp.pi
        sym = sp.Symbol(name, real=True)
        self.symbols[name] = sym
        return sym

    def sum(self) -> sp.Basic:
        self.take("_")
        if self.peek() == "{":
            self.take("{")
            var_tok = self.take()
            lower = sp.Integer(1)
            if self.peek() == "=":
                self.take("=")
                lower = self.expr()
            self.take("}")
        else:
            var_tok = self.take()
            lower = sp.Integer(1)
        i = self.index(var_tok)
        if self.peek() == "^":
            self.take("^")
            upper = self.group()
        else:
            upper = self.symbols.get("n") or sp.Symbol("n", integer=True, positive=True)
        body = self.power()
        while self.peek() is not None and self._starts_atom(self.peek()):
            body = self.mul(body, self.power())
        return sp.Sum(body, (i, lower, upper))


def _is_zero(x) -> bool:
    return isinstance(x, sp.Basic) and not isinstance(x, _MATRIX) and x.is_zero is True
