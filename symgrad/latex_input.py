r"""Read a subset of LaTeX math in ML notation into SymPy objects, without ``eval``.

Understood: numbers; single-letter names, Greek letters (``\alpha``), names with digit
subscripts (``w_1`` → ``w1``) and letter subscripts (``x_i`` → the indexed entry x[i]);
``+ - \cdot \times /``, implicit products (``2x``, ``\sigma(x)(1-\sigma(x))``), ``^``,
``\frac{a}{b}``, ``\sqrt{a}``, ``e^{x}`` (exp), ``\exp``, ``\log``, ``\ln``, ``\tanh``,
``\sigma`` (the sigmoid), ``\max``/``\min``, ``\operatorname{ReLU}``, ``\operatorname{softplus}``,
``\delta_{ij}``, ``\mathbf{1}[u > 0]`` (the step), ``\sum_i`` and ``\sum_{i=1}^{n}``, and the
spacing/sizing commands (``\left``, ``\right``, ``\,``). Anything else is refused with a
:class:`~symgrad.errors.ParseError` naming it — never guessed.
"""

from __future__ import annotations

import re
from typing import Mapping

import sympy as sp

from . import catalog as C
from .errors import ParseError
from .parse import MAX_DEPTH, MAX_EXPONENT, MAX_LENGTH

__all__ = ["parse_latex"]

_TOKEN = re.compile(r"\\[A-Za-z]+|\\[,;:! ]|\d+(?:\.\d+)?|[A-Za-z]|[+\-*/^_(){}\[\],=<>|'!]|\s+")
_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "eta", "theta", "lambda", "mu", "nu", "rho", "tau",
          "phi", "psi", "omega", "xi", "zeta", "kappa"}
_SPACING = {r"\,", r"\;", r"\:", r"\!", "\\ ", r"\left", r"\right", r"\big", r"\Big", r"\bigl", r"\bigr",
            r"\Bigl", r"\Bigr", r"\displaystyle", r"\quad"}
_FUNCS = {r"\sigma": C.sigmoid, r"\exp": sp.exp, r"\log": sp.log, r"\ln": sp.log, r"\tanh": sp.tanh,
          r"\sinh": sp.sinh, r"\cosh": sp.cosh, r"\sin": sp.sin, r"\cos": sp.cos}
_NAMED = {"ReLU": C.relu, "relu": C.relu, "softplus": C.softplus, "sigmoid": C.sigmoid, "tanh": sp.tanh,
          "ELU": C.elu, "LeakyReLU": C.leaky_relu}


def parse_latex(text: str, *, symbols: Mapping[str, sp.Basic] | None = None) -> sp.Basic:
    r"""The SymPy expression written in LaTeX ``text``: ``parse_latex(r"\sigma(x)(1-\sigma(x))")``.

    ``symbols`` maps names to existing symbols (or IndexedBases) so the claim uses the same
    objects as the expression it is compared with."""
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
    return value


class _Parser:
    def __init__(self, tokens: list[str], symbols: dict):
        self.t = tokens
        self.i = 0
        self.symbols = symbols
        self.depth = 0

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
            out.append(self.take())
        self.take("}")
        return "".join(out)

    # -- grammar ---------------------------------------------------------------------------------
    def expr(self) -> sp.Basic:
        self.enter()
        try:
            value = self.term()
            while self.peek() in ("+", "-"):
                op = self.take()
                rhs = self.term()
                value = value + rhs if op == "+" else value - rhs
            return value
        finally:
            self.depth -= 1

    def term(self) -> sp.Basic:
        value = self.unary()
        while True:
            tok = self.peek()
            if tok in ("*", r"\cdot", r"\times"):
                self.take()
                value = value * self.unary()
            elif tok == "/":
                self.take()
                value = value / self.unary()
            elif tok is not None and self._starts_atom(tok):
                value = value * self.power()  # implicit product
            else:
                return value

    def _starts_atom(self, tok: str) -> bool:
        return (tok in ("(", "{") or tok[0].isalnum() or
                (tok.startswith("\\") and tok not in (r"\cdot", r"\times", r"\right")))

    def unary(self) -> sp.Basic:
        if self.peek() == "-":
            self.take()
            return -self.unary()
        if self.peek() == "+":
            self.take()
            return self.unary()
        return self.power()

    def power(self) -> sp.Basic:
        base = self.atom()
        if self.peek() == "^":
            self.take()
            exponent = self.group()
            if exponent.is_number and abs(float(exponent)) > MAX_EXPONENT:
                raise ParseError(f"an exponent beyond ±{MAX_EXPONENT} in the LaTeX")
            if base == sp.E:
                return sp.exp(exponent)
            return sp.Pow(base, exponent)
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
        if re.fullmatch(r"\d+(?:\.\d+)?", tok):
            return sp.Integer(int(tok)) if tok.isdigit() else sp.Float(tok)
        if tok in (r"\frac", r"\dfrac", r"\tfrac"):
            num = self.group()
            den = self.group()
            return num / den
        if tok == r"\sqrt":
            if self.peek() == "[":
                self.take("[")
                n = self.expr()
                self.take("]")
                return sp.Pow(self.group(), 1 / n)
            return sp.sqrt(self.group())
        if tok in _FUNCS:
            return self.call(_FUNCS[tok])
        if tok in (r"\max", r"\min"):
            args = self.arguments()
            return (sp.Max if tok == r"\max" else sp.Min)(*args)
        if tok in (r"\operatorname", r"\mathrm", r"\text"):
            name = self.raw_group()
            if name not in _NAMED:
                raise ParseError(f"unknown function \\operatorname{{{name}}} (known: {', '.join(sorted(_NAMED))})")
            return self.call(_NAMED[name])
        if tok in (r"\mathbf", r"\mathbb", r"\mathbbm"):
            inner = self.raw_group()
            if inner == "1" and self.peek() == "[":
                return self.indicator()
            return self.name(inner)
        if tok == r"\delta":
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
            if tok == "e" and self.peek() == "^":
                return sp.E
            return self.with_subscript(tok)
        raise ParseError(f"unexpected {tok!r} in the LaTeX")

    def call(self, fn):
        args = self.arguments()
        return fn(*args)

    def arguments(self) -> list:
        opener = self.peek()
        if opener not in ("(", "{"):
            return [self.power()]  # \log x
        self.take()
        args = [self.expr()]
        while self.peek() == ",":
            self.take(",")
            args.append(self.expr())
        self.take(")" if opener == "(" else "}")
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
        existing = self.symbols.get(tok)
        if existing is not None and not isinstance(existing, sp.IndexedBase):
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
                base = sp.IndexedBase(name, real=True)
                self.symbols[name] = base
            return base[self.index(sub)]
        raise ParseError(f"cannot read the subscript {sub!r} of {name}")

    def name(self, name: str) -> sp.Basic:
        if name in self.symbols:
            return self.symbols[name]
        if name == "e":
            return sp.E
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
            body = body * self.power()
        return sp.Sum(body, (i, lower, upper))
