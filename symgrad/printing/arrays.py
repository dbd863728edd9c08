"""Array printers: SymPy → NumPy / Array API source (blocks as their stable NumPy forms, names safe).
"""

from __future__ import annotations

import inspect
import re
from typing import Callable
import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from ..catalog.activations import step
from ..catalog.activations import erf_np, erfc_np
from ..catalog.base import Primitive
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

__all__ = ["SymgradNumPyPrinter", "ArrayAPIPrinter", "DisplayPrinter"]


# --- the printer --------------------------------------------------------------------------------
def _one_call(code: str) -> bool:
    """Whether printed code is one call ``f(...)`` (its first parenthesis closes at the end)."""
    head = re.match(r"[\w.]+\(", code)
    if head is None:
        return False
    depth = 0
    for i, ch in enumerate(code[head.end() - 1:], start=head.end() - 1):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            return i == len(code) - 1
    return False


class SymgradNumPyPrinter(NumPyPrinter):
    """Prints blocks as calls of their stable NumPy forms and names symbols safely.

    Blocks reach :meth:`print_block` through their ``_symgrad_numpy`` hook (SymPy's
    ``_print_<Class>`` dispatch skips base classes of ``Function`` subclasses)."""

    printmethod = "_symgrad_numpy"

    def __init__(self, names: dict[sp.Basic, str], settings: dict | None = None):
        super().__init__(settings or {})
        self.printmethod = "_symgrad_numpy"  # NumPyPrinter.__init__ sets its own
        self.names = names
        self.helpers: dict[str, Callable] = {}
        self._sums: list[tuple[sp.Symbol, str]] = []

    def _print_Symbol(self, expr):
        if expr in self.names:
            return self.names[expr]
        for index, upper in self._sums:
            if expr == index:
                raise NotImplementedError("a summation index outside an indexed entry cannot be compiled")
        return super()._print_Symbol(expr)

    _print_Dummy = _print_Symbol

    def shape_of(self, code: str) -> str:
        return f"{self._module}.shape({code})"

    @staticmethod
    def numpy_form_of(expr) -> Callable:
        fn = type(expr).numpy_form
        if isinstance(expr, sp.MatrixExpr) or not hasattr(fn, "__name__"):
            fn = type(expr).__dict__.get("numpy_form", fn)
            fn = getattr(fn, "__func__", fn)
        return fn

    def print_block(self, expr, **keywords: str):
        """The call of the block's stable form; ``keywords`` are printed code (``scale=grad``)."""
        fn = self.numpy_form_of(expr)
        self.helpers[fn.__name__] = fn
        args = [self._print(a) for a in expr.args] + [f"{k}={v}" for k, v in keywords.items()]
        return f"{fn.__name__}({', '.join(args)})"

    # -- matrix expressions: arrays with the matrix in the last two axes -------------------------
    def _print_MatrixSymbol(self, expr):
        if expr in self.names:
            return self.names[expr]
        raise NotImplementedError(f"no input named {expr.name}")

    def _operand(self, m):
        code = self._print(m)
        atomic = isinstance(m, (sp.MatrixSymbol, sp.Transpose)) or (  # f(X) is a call; sign(X) - 1 is not
            isinstance(m, ElementwiseApplyFunction) and _one_call(code))
        return code if atomic else f"({code})"

    def _sum(self, mats, axis: int) -> str:
        inner = mats[0] if len(mats) == 1 else sp.MatMul(*mats)
        return f"{self._module}.sum({self._print(inner)}, axis={axis}, keepdims=True)"

    def _print_MatMul(self, expr):
        coeff, mats = expr.as_coeff_matrices()
        mats = list(mats)
        if len(mats) > 1 and isinstance(mats[-1], sp.OneMatrix) and mats[-1].cols == 1:
            body = self._sum(mats[:-1], -1)  # M 1_C: the row sums
        elif len(mats) > 1 and isinstance(mats[0], sp.OneMatrix) and mats[0].rows == 1:
            body = self._sum(mats[1:], -2)  # 1ᵀ_N M: the column sums
        else:
            body = " @ ".join(self._operand(m) for m in mats)
        if coeff == 1:
            return body
        if coeff == -1:
            return f"-{body}" if len(mats) == 1 else f"-({body})"
        return f"{self.parenthesize(coeff, 50)}*{body if len(mats) == 1 else f'({body})'}"

    @staticmethod
    def _spread(m) -> tuple | None:
        """(kind, rest, coefficient) when m only spreads a smaller array over its shape: M 1ᵀ
        (a column repeated), 1 M (a row repeated), M 1_{C×K} (row sums repeated), the all-ones
        matrix; None for a full-shape operand."""
        if isinstance(m, sp.OneMatrix):
            return ("ones", [], sp.S.One)
        if not isinstance(m, sp.MatMul):
            return None
        coeff, mats = m.as_coeff_matrices()
        mats = list(mats)
        if len(mats) == 1 and isinstance(mats[0], sp.OneMatrix):
            return ("ones", [], coeff)
        if len(mats) > 1 and isinstance(mats[-1], sp.OneMatrix) and mats[-1].rows == 1:
            return ("column", mats[:-1], coeff)
        if len(mats) > 1 and isinstance(mats[0], sp.OneMatrix) and mats[0].cols == 1:
            return ("row", mats[1:], coeff)
        if len(mats) > 1 and isinstance(mats[-1], sp.OneMatrix):
            return ("sums", mats[:-1], coeff)
        return None

    def _broadcast(self, m):
        """An operand of an entrywise operation whose other operands have the full shape:
        what only spreads a smaller array is printed as that array (NumPy broadcasts it)."""
        spread = self._spread(m)
        if spread is None:
            return self._operand(m)
        kind, rest, coeff = spread
        if kind == "ones":
            return self._print(sp.Float(coeff) if coeff.is_Integer else coeff) if coeff.is_number else f"({self._print(coeff)})"
        if kind == "sums":
            code = self._sum(rest, -1)
        else:
            code = self._operand(rest[0] if len(rest) == 1 else sp.MatMul(*rest))
        if coeff == 1:
            return code
        if coeff == -1:
            return f"(-{code})"
        return f"({self.parenthesize(coeff, 50)}*{code})"

    def _print_MatAdd(self, expr):
        coeffs = [t.as_coeff_mmul()[0] if isinstance(t, sp.MatMul) else sp.S.One for t in expr.args]
        common = abs(coeffs[0])
        if common.is_number and common not in (0, 1) and all(abs(c) == common for c in coeffs):  # 2*a - 2*b → 2*(a - b)
            inner = sp.MatAdd(*[sp.MatMul(sp.sign(c), *t.as_coeff_mmul()[1].args).doit() if isinstance(t, sp.MatMul) else t
                                for c, t in zip(coeffs, expr.args)], evaluate=False)
            return f"{self._print(common)}*({self._print_MatAdd(inner)})"
        terms = [a for a in expr.args if not a.could_extract_minus_sign()] + \
                [a for a in expr.args if a.could_extract_minus_sign()]
        if not any(self._spread(t) is None for t in terms):  # nothing to broadcast against: full shapes
            out = self._print(terms[0])
            for t in terms[1:]:
                out += f" - {self._operand(-t)}" if t.could_extract_minus_sign() else f" + {self._operand(t)}"
            return out
        out = self._print(terms[0]) if self._spread(terms[0]) is None else self._broadcast(terms[0])
        for t in terms[1:]:
            out += f" - {self._broadcast(-t)}" if t.could_extract_minus_sign() else f" + {self._broadcast(t)}"
        return out

    def _print_Transpose(self, expr):
        return f"numpy.swapaxes({self._print(expr.arg)}, -1, -2)"

    def _print_HadamardProduct(self, expr):
        if all(self._spread(a) is not None for a in expr.args):
            return " * ".join(self._operand(a) for a in expr.args)
        return " * ".join(self._broadcast(a) for a in expr.args)

    def _print_HadamardPower(self, expr):
        base, exp = expr.args
        power = self._print(exp)
        if not (exp.is_Symbol or (exp.is_Integer and exp >= 0)):
            power = f"({power})"
        return f"{self._operand(base)}**{power}"

    def _print_ElementwiseApplyFunction(self, expr):
        (var,), body = expr.function.variables, expr.function.expr
        saved = self.names.get(var)
        self.names[var] = f"({self._print(expr.expr)})"
        try:
            return self._print(body)
        finally:
            if saved is None:
                self.names.pop(var)
            else:
                self.names[var] = saved

    def _print_OneMatrix(self, expr):
        return f"{self._module}.ones(({self._print(expr.rows)}, {self._print(expr.cols)}))"

    def _print_ZeroMatrix(self, expr):
        return "0.0"

    def _print_Identity(self, expr):
        return f"{self._module}.eye({self._print(expr.rows)})"

    def _print_DiagMatrix(self, expr):
        n = expr.shape[0]
        return f"({self._print(expr.args[0])}) * {self._module}.eye({self._print(n)})"

    def _print_Inverse(self, expr):
        return f"{self._module}.linalg.inv({self._print(expr.arg)})"

    def _print_Determinant(self, expr):
        return f"{self._module}.linalg.det({self._print(expr.arg)})"

    def _print_Trace(self, expr):
        return f"numpy.trace({self._print(expr.arg)}, axis1=-2, axis2=-1)"

    def _print_MatrixElement(self, expr):
        parent, i, j = expr.args
        return f"({self._print(parent)})[..., {self._print(i)}, {self._print(j)}]"

    def _print_Heaviside(self, expr):
        """H(u) with SymPy's default H(0) = 1/2 is the kink convention's step 1[u > 0] (derivative 0
        at a kink, as PyTorch); an explicit H(0) = 0 or 1 is kept."""
        u, h0 = expr.args[0], (expr.args[1] if len(expr.args) > 1 else sp.S.Half)
        if h0 == sp.S.Half or h0 == 0:
            return self._print(step(u))
        return self._print(sp.Piecewise((1, u > 0), (h0, sp.Eq(u, 0)), (0, True)))

    def _print_Min(self, expr):
        return self._fold(f"{self._module}.minimum", expr.args)

    def _print_Max(self, expr):
        return self._fold(f"{self._module}.maximum", expr.args)

    def _fold(self, fn, args):
        code = self._print(args[0])
        for a in args[1:]:
            code = f"{fn}({code}, {self._print(a)})"
        return code

    def _print_KroneckerDelta(self, expr):
        a, b = (self._print(x) for x in expr.args)
        return f"{self._module}.where({self._module}.equal({a}, {b}), 1.0, 0.0)"

    def _print_Indexed(self, expr):
        base = self._print(expr.base.label)
        (index,) = expr.indices
        for summed, upper in self._sums:
            if index == summed:
                return f"{base}[..., :{upper}]"
        return f"{base}[..., ({self._print(index)}) - 1]"

    def _print_Sum(self, expr):
        if len(expr.limits) != 1 or expr.limits[0][1] != 1:
            raise NotImplementedError("only sums Σ_{i=1}^{n} compile")
        i, _, upper = expr.limits[0]
        up = self._print(upper)
        if not any(idx.indices == (i,) for idx in expr.function.atoms(sp.Indexed)):
            return f"({up})*({self._print(expr.function)})"
        self._sums.append((i, up))
        try:
            body = self._print(expr.function)
        finally:
            self._sums.pop()
        return f"{self._module}.sum({body}, axis=-1)"

    def _print_Pow(self, expr, rational=False):
        if expr.exp == -1:
            return f"1/{self.parenthesize(expr.base, 60)}"
        return super()._print_Pow(expr, rational=rational)


_ARRAY_API_RENAMED = {"arccos": "acos", "arccosh": "acosh", "arcsin": "asin", "arcsinh": "asinh",
                      "arctan": "atan", "arctan2": "atan2", "arctanh": "atanh", "power": "pow"}


class ArrayAPIPrinter(SymgradNumPyPrinter):
    """Prints for the namespace ``xp`` of the inputs (the Array API standard: NumPy, PyTorch, CuPy,
    JAX, Dask through array-api-compat): ``xp.exp``, comparisons as operators, ``Piecewise`` as
    nested ``xp.where``, blocks as their stable forms called with ``xp=xp``. Matrices are 2-D
    (``symgrad.nn`` flattens the batch axes first)."""

    _module = "xp"
    _kf = {k: "xp." + _ARRAY_API_RENAMED.get(v[len("numpy."):], v[len("numpy."):])
           for k, v in NumPyPrinter._kf.items() if v.startswith("numpy.")}
    _kc = {"Exp1": "math.e", "Pi": "math.pi", "NaN": "math.nan", "Infinity": "math.inf"}

    display = False  # the executed form (DisplayPrinter writes the formula form)

    def __init__(self, names: dict[sp.Basic, str], stacks: bool = False, settings: dict | None = None):
        super().__init__(names, settings)
        self.stacks = stacks  # matrices may carry leading batch axes: transpose the last two (.mT)
        self.definitions: dict[sp.Basic, sp.Basic] = {}  # common-subexpression temporaries → their values

    def inputs_of(self, expr: sp.Basic) -> list:
        """The named inputs ``expr`` depends on, through any temporaries (``_t0 = x > 0``); real
        inputs before integer ones (sizes)."""
        found, stack, seen = set(), list(expr.free_symbols), set()
        while stack:
            s = stack.pop()
            if s in seen:
                continue
            seen.add(s)
            if s in self.definitions:
                stack.extend(self.definitions[s].free_symbols)
            elif s in self.names:
                found.add(s)
        return sorted(found, key=lambda s: (bool(getattr(s, "is_integer", False)), str(s)))

    def shape_of(self, code: str) -> str:
        return f"{code}.shape"

    def print_block(self, expr, **keywords: str):
        return super().print_block(expr, **keywords, xp="xp")

    def _print_Mul(self, expr):
        """A fused form that takes ``scale`` (σ(u) − y times the upstream gradient) multiplies the
        other factors in while its blocks are in cache: one pass over the output less."""
        fused = [f for f in expr.args if isinstance(f, Primitive)
                 and "scale" in inspect.signature(self.numpy_form_of(f)).parameters]
        if len(fused) == 1 and len(expr.args) > 1:
            rest = sp.Mul(*[f for f in expr.args if f is not fused[0]])
            return self.print_block(fused[0], scale=self._print(rest))
        return super()._print_Mul(expr)

    def _print_Transpose(self, expr):
        if self.stacks:  # the last two axes, by the namespace's function (Dask arrays have no .mT)
            return f"xp.matrix_transpose({self._print(expr.arg)})"
        return f"{self._operand(expr.arg)}.T"

    def _print_Trace(self, expr):
        return f"xp.linalg.trace({self._print(expr.arg)})"

    def _print_Relational(self, expr):
        if expr.rel_op in ("==", "!=", "<", "<=", ">", ">="):
            return f"({self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)})"
        return super()._print_Relational(expr)

    def _print_Piecewise(self, expr):
        pieces = list(expr.args)
        if pieces[-1].cond is not sp.true:
            raise NotImplementedError("a Piecewise without a default branch cannot be compiled")
        code = self._print(pieces[-1].expr)
        inputs = self.inputs_of(sp.Tuple(*(p.cond for p in pieces)))
        if all(p.expr.is_number for p in pieces):  # where() needs one array operand: shape it like the input
            # (the input itself, never a shared boolean condition; zeros_like + c is float for integer input)
            if inputs:
                code = f"(xp.zeros_like({self._print(inputs[0])}) + {code})"
        if inputs:  # every comparison with NaN is False: a NaN input (v != v) gives NaN (the sum of the
            # inputs, in their dtype), never the default branch
            nan = " | ".join(f"({self._print(i)} != {self._print(i)})" for i in inputs)
            code = f"xp.where({nan}, {' + '.join(self._print(i) for i in inputs)}, {code})"
        for value, cond in reversed(pieces[:-1]):
            code = f"xp.where({self._print(cond)}, {self._print(value)}, {code})"
        return code

    def _print_Pow(self, expr, rational=False):
        if expr.is_number and expr.is_extended_real:  # √2, 1/√π: a Python float (xp.sqrt(2) fails on torch, is float64)
            if expr.exp in (sp.S.Half, -sp.S.Half):
                root = f"math.sqrt({self._print(expr.base)})"
                return root if expr.exp > 0 else f"1/{root}"
            return repr(float(expr))
        return super()._print_Pow(expr, rational=rational)

    def _print_erf(self, expr):  # vectorised (SciPy's for NumPy, the library's own otherwise), never math.erf
        return self._special(erf_np, expr)

    def _print_erfc(self, expr):
        return self._special(erfc_np, expr)

    def _special(self, fn, expr):
        self.helpers[fn.__name__] = fn
        return f"{fn.__name__}({self._print(expr.args[0])}, xp=xp)"

    def _print_log(self, expr):
        if expr.args[0].is_integer:  # the log of a size (log C): a Python number
            return f"math.log({self._print(expr.args[0])})"
        return f"xp.log({self._print(expr.args[0])})"


class DisplayPrinter(ArrayAPIPrinter):
    """The formula form of generated code, for latexify: blocks called without ``xp``, fused
    ``scale`` forms written as products, transposes as ``transpose(x)``; the function it prints
    is the same formula as the executed one, without the array-namespace plumbing."""

    display = True

    def print_block(self, expr, **keywords: str):
        return SymgradNumPyPrinter.print_block(self, expr, **keywords)

    def _print_Mul(self, expr):
        return SymgradNumPyPrinter._print_Mul(self, expr)

    def _print_Transpose(self, expr):
        return f"transpose({self._print(expr.arg)})"

    def _special(self, fn, expr):
        self.helpers[fn.__name__] = fn
        return f"{fn.__name__}({self._print(expr.args[0])})"
