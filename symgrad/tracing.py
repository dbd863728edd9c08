r"""Trace: a user's NumPy forward function, called on symbolic stand-ins, becomes a :class:`Graph`.

``trace(forward, x=("N", "D"), W=("D", "H"), ...)`` calls ``forward`` once with stand-in arrays
(:class:`Tracer`) that record, instead of numbers, the SymPy matrix expression each NumPy call
computes — through NumPy's functions (``__array_ufunc__``/``__array_function__``), the Array API
(``array_api_compat.array_namespace(x)``: the same rules) and the operators — mapped to symgrad's
blocks so that the derivation comes out in textbook form:

=====================================================  ==========================================
what the forward writes                                what it becomes
=====================================================  ==========================================
``x @ W``, ``x.dot(W)``, ``np.dot``, ``W.T``           X W, Wᵀ (matrix products)
``+ − * / **`` with broadcasting                       sums, ∘ products, the broadcast written out
                                                       (a bias row b: X W + 1 b, ∂/∂b = 1ᵀG)
``np.exp log tanh sqrt square abs`` …                  elementwise functions f(X) (one node)
``1/(1 + np.exp(-z))``, ``symgrad.nn.sigmoid(z)``      σ(z) (catalog block)
``symgrad.nn.layer_norm(x, g, b)``, ``nn.dense`` …     the catalog block of that name (its batch
                                                       form; a loss against labels: write it in
                                                       NumPy, as below)
``np.maximum(0, z)``, ``np.where(z > 0, z, 0)``        ReLU(z) (catalog block; ReLU'(0) = 0)
``dh * (z > 0)``, ``np.where(z > 0, a, b)``            dh ∘ step(z), a ∘ step(z) + b ∘ (1 − step(z))
                                                       (step(z) = 𝟙[z > 0], derivative 0)
``e = np.exp(z); e / e.sum(axis=1, keepdims=True)``    softmax(z) by rows (the row maximum
                                                       subtracted first, ``z - z.max(axis=1,
                                                       keepdims=True)``, is dropped: softmax is
                                                       shift-invariant)
``-np.log(probs[np.arange(N), y]).mean()``             CE(softmax(z), Y)/N, Y the one-hot rows of
                                                       the labels y (``labels("N", classes="C")``)
``.sum()/.mean()/.var()`` over an axis (keepdims)      1ᵀX, X 1, ‖X‖² = tr(XᵀX) for a sum of squares
``.max(axis=1)``, ``np.max(x, axis=0)``                the row maximum (gradient to the first largest)
``np.clip(x, a, b)``, ``np.linalg.norm(x, axis=1)``    a + ReLU(x − a) − ReLU(x − b), √(Σ_j x²)
``(x - mu) / np.sqrt(var + eps) * gamma + beta``       LN(x; γ, β) or BN(x; γ, β) (catalog blocks)
=====================================================  ==========================================

Conventions: a size is an int or a name (the same name is the same positive integer symbol); a
shape ``()`` is a real scalar, ``(n, m)`` a matrix, and a 1-D shape ``(H,)`` a row 1 × H — NumPy's
broadcasting adds it to every row (a bias: ∂/∂b = 1ᵀG); ``labels(N, classes=C)`` declares integer
labels y ∈ {0 … C−1}, which enter the math as the one-hot matrix Y (N × C); the compiled gradient
of a traced derivation takes the forward's own arguments (the labels y, converted to Y inside, or Y
itself: :class:`TracedFunction`). After the call, the
forward's local variables name the intermediates they held (h, scores, probs …; a name rebound in
a loop numbers them: h1, h2, …): the result is a :class:`~symgrad.derivation.graph.Graph` whose
nodes are those names, so that ``derive(trace(f, ...), wrt=["W1", "b1"])`` is written in them.

The forward is only *called*, never read or parsed: twice where sizes are symbolic, at two sets
of placeholder numbers, so that a number a concrete call makes from a size (``len(range(N))``,
``np.ones(N).sum()``) is refused at its line instead of reaching the result. Anything trace
cannot follow — a Python ``if`` on a stand-in, ``float()`` of one, ``np.linalg.inv``, ``np.sort``, indexing other than
``a[np.arange(N), y]`` — raises :class:`~symgrad.errors.TraceError` naming the call and the line of
the forward that made it.
"""

from __future__ import annotations

import inspect
import linecache
import os
import sys
from fractions import Fraction
from typing import Any, Callable, Mapping

import numpy as np
import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.hadamard import HadamardProduct
from sympy.matrices.expressions.matexpr import MatrixElement

from .catalog.activations import leaky_relu, relu, step
from .catalog.base import sum_entries
from .catalog.layers import RowMax
from .catalog.norms import BatchNorm, LayerNorm
from .derivation.graph import Graph
from .errors import TraceError
from .catalog.rows import ENTRY, Elementwise, RowLogSoftmax, RowSoftmax, RowSoftmaxCrossEntropy, SoftmaxCrossEntropy
from .simplify.rules import fold
from .catalog import get_block
from .printing.plain import text

__all__ = ["trace", "labels", "Labels", "Tracer", "Traced"]

_HERE = os.path.dirname(os.path.abspath(__file__))
_NUMPY = os.path.dirname(os.path.abspath(np.__file__))
t = ENTRY  # the bound variable of every elementwise function


# --- where the user's code is ---------------------------------------------------------------------
def _user_frame():
    """The innermost frame outside symgrad, NumPy and array-api-compat: the forward's (or its helper's)."""
    frame = sys._getframe(1)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not (path.startswith(_HERE) or path.startswith(_NUMPY) or "array_api_compat" in path):
            return frame
        frame = frame.f_back
    return None


def _user_line() -> str:
    """``file:line: source`` of the forward's line that is running."""
    frame = _user_frame()
    if frame is None:
        return "<unknown line>"
    source = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    return f"{frame.f_code.co_filename}:{frame.f_lineno}: {source}"


def _is_named(value) -> bool:
    """Whether the forward holds ``value`` in a local variable (then it stays a node of its own)."""
    frame = _user_frame()
    return frame is not None and any(v is value for v in frame.f_locals.values())


class _UnsupportedAttribute(TraceError, AttributeError):
    """A method or attribute a stand-in does not have: a TraceError with the line (hasattr is False)."""


def _refuse(what: str, hint: str = "") -> TraceError:
    return TraceError(f"symgrad.trace cannot follow {what} (at {_user_line()})" + (f"; {hint}" if hint else ""))


# --- declarations ---------------------------------------------------------------------------------
class Labels:
    r"""Integer class labels y ∈ {0 … C−1} of N samples: they enter the math as one-hot rows Y (N × C).

    .. math:: Y_{ic} = [\,y_i = c\,]"""

    def __init__(self, n: int | str, classes: int | str):
        self.n, self.classes = n, classes

    def __repr__(self) -> str:
        return f"labels({self.n!r}, classes={self.classes!r})"


def labels(n: int | str, *, classes: int | str) -> Labels:
    r"""Declare an argument of integer labels for :func:`trace`: ``y=labels("N", classes="C")``.

    .. math:: Y_{ic} = [\,y_i = c\,] \quad (Y \in \{0, 1\}^{N \times C})"""
    return Labels(n, classes)


class Size(int):
    r"""A symbolic size seen through ``x.shape``: arithmetic with it stays symbolic (``1/N``,
    ``d ** -0.5``); ``np.arange(N)`` works (for the label pattern); ``float``/``int`` refuse.

    .. math:: \texttt{x.shape[0]} = N \in \mathbb{Z}_{>0}"""

    symbol: sp.Symbol

    def __new__(cls, symbol: sp.Symbol, placeholder: int):
        out = super().__new__(cls, placeholder)
        out.symbol = symbol
        return out

    def __repr__(self) -> str:
        return self.symbol.name

    def _scalar(self) -> "Tracer":
        return Tracer(self.symbol, 0)

    def __float__(self):
        raise _refuse(f"float({self.symbol}) of the symbolic size {self.symbol}", "use it in array arithmetic")

    def __int__(self):
        raise _refuse(f"int({self.symbol}) of the symbolic size {self.symbol}")

    def __bool__(self):
        return True

    def _compare(self, other):
        raise _refuse(f"a comparison with the symbolic size {self.symbol}", "give a concrete size instead")

    __lt__ = __le__ = __gt__ = __ge__ = _compare

    def __eq__(self, other):
        if isinstance(other, Size):
            return self.symbol == other.symbol
        return int.__eq__(self, other)  # NumPy compares sizes (np.arange); a symbolic size equals no number

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = int.__hash__

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = tuple(i._scalar() if isinstance(i, Size) else i for i in inputs)
        return Tracer.__array_ufunc__(Tracer(sp.S.One, 0), ufunc, method, *inputs, **kwargs)


def _binary_size(name: str):
    def op(self, other):
        if type(other) is int and other == 0 and name in ("__add__", "__radd__", "__sub__"):
            return int.__add__(self, 0)  # N − 0 (the placeholder): what np.arange(N) computes
        if name in ("__floordiv__", "__rfloordiv__", "__mod__"):  # ⌊N/2⌋, N mod 2: no symbol of symgrad's
            what = {"__floordiv__": f"{self.symbol} // {other!r}", "__rfloordiv__": f"{other!r} // {self.symbol}",
                    "__mod__": f"{self.symbol} % {other!r}"}[name]
            raise _refuse(f"{what} of the symbolic size {self.symbol}", "give a concrete size instead")
        return getattr(self._scalar(), name)(other)
    return op


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
              "__pow__", "__rpow__", "__neg__", "__floordiv__", "__rfloordiv__", "__mod__"):
    setattr(Size, _name, _binary_size(_name) if _name != "__neg__" else (lambda self: -self._scalar()))


# --- the stand-in array ---------------------------------------------------------------------------
_counter = [0]


def _number(value) -> sp.Expr:
    """A Python/NumPy number as an exact SymPy number where it is a short decimal (0.5, 1e-5)."""
    if isinstance(value, (bool, np.bool_)):
        raise _refuse("a boolean constant in arithmetic")
    if isinstance(value, (int, np.integer)):
        return sp.Integer(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not np.isfinite(value):
            return sp.Float(value)
        exact = Fraction(value).limit_denominator(10**9)
        if abs(float(exact) - value) <= 1e-15 * abs(value):
            return sp.Rational(exact.numerator, exact.denominator)
        return sp.Float(value)
    raise _refuse(f"a constant of type {type(value).__name__}")


def _is_constant(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)) or (
        isinstance(value, np.ndarray) and value.ndim == 0)


_CONSTANTS: list = []  # (number, line) of every constant the running trace lifted, in order


def _shape_text(shape) -> str:
    """A concrete array's shape with a placeholder size written as its name: (N, H), never (1009, 1025)."""
    names = {int.__add__(size, 0): size.symbol.name for size in _SIZES.values()}
    dims = [names.get(int(d), str(int(d))) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _lift(value) -> "Tracer":
    if isinstance(value, Tracer):
        return value
    if isinstance(value, Size):
        return value._scalar()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if _is_constant(value):
        number = _number(value)
        _CONSTANTS.append((number, _user_line()))  # compared with a run at other placeholder sizes
        return Tracer(number, 0)
    if isinstance(value, np.ndarray):
        raise _refuse(f"a constant NumPy array of shape {_shape_text(value.shape)}", "pass it as an argument of the forward, "
                      "with its shape, so that it is a symbol")
    if isinstance(value, LabelTracer):
        raise _refuse(f"labels {value.name} in arithmetic", "index with them: a[np.arange(N), y]")
    raise _refuse(f"a value of type {type(value).__name__}")


class Tracer:
    r"""A stand-in array: the SymPy expression of what the forward computed so far.

    .. math:: \texttt{np.exp(x @ W + b)} \;\mapsto\; \exp^{\circ}(X W + \mathbf{1} b)

    ``expr`` is a matrix expression (a 1-D array of n entries is the row 1 × n) or, for a scalar
    (``ndim == 0``), a SymPy scalar. NumPy functions reach it through ``__array_ufunc__`` and
    ``__array_function__``; the Array API-ish methods (``.T``, ``@``, ``.sum(axis=, keepdims=)`` …)
    are its own."""

    __array_priority__ = 1000
    dtype = np.dtype(np.float64)

    def __init__(self, expr: sp.Basic, ndim: int, tag: tuple | None = None):
        self.expr, self.ndim, self.tag = expr, ndim, tag
        _counter[0] += 1
        self.serial = _counter[0]

    # -- shape --------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        if self.ndim == 0:
            return ()
        dims = self.expr.shape if self.ndim == 2 else self.expr.shape[1:]
        return tuple(_as_size(d) for d in dims)

    @property
    def size(self):
        out = 1
        for d in self.shape:
            out = out * d
        return out

    def __len__(self) -> int:
        if not self.ndim:
            raise _refuse("len() of a scalar")
        first = self.shape[0]
        if isinstance(first, Size):
            raise _refuse(f"len() of an array of symbolic size {first}", "use x.shape[0]")
        return int(first)

    def __repr__(self) -> str:
        return f"Tracer({sp.sstr(self.expr)}, shape={self.shape})"

    # -- what a stand-in cannot do ------------------------------------------------------------
    def __bool__(self):
        raise _refuse(f"a Python `if`/`and`/`or` on the value of {sp.sstr(self.expr)}",
                      "write branches with np.where(condition, a, b)")

    def __float__(self):
        raise _refuse(f"float() of {sp.sstr(self.expr)}")

    def __int__(self):
        raise _refuse(f"int() of {sp.sstr(self.expr)}")

    def __index__(self):
        raise _refuse(f"using {sp.sstr(self.expr)} as an index")

    def __iter__(self):
        raise _refuse("a loop over the entries of a stand-in array", "write it with array operations")

    def __round__(self, *args):
        raise _refuse(f"round() of {sp.sstr(self.expr)}")

    def __getattr__(self, name):  # only for names a stand-in does not have
        if name.startswith("_"):
            raise AttributeError(name)
        raise _UnsupportedAttribute(f"symgrad.trace cannot follow .{name} of a traced array (at {_user_line()}); "
                                    "trace follows .T, .dot, .sum, .mean, .var, .std, .max, .clip, .reshape, "
                                    ".ravel, .copy, .astype")

    device = "cpu"  # array_api_compat.device(x), asked by symgrad.nn's bodies

    def __dlpack__(self, *args, **kwargs):
        """Inside a symgrad.nn body (nn.gelu's SciPy call through DLPack) a dummy array: the block's
        result absorbs what is computed from it. Anywhere else: refused."""
        if _nn_frame() is None or not _PENDING_BLOCKS:
            raise _refuse("np.from_dlpack of a stand-in array")
        return np.zeros(()).__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return np.zeros(()).__dlpack_device__()

    def __array__(self, *args, **kwargs):
        raise _refuse(f"converting {sp.sstr(self.expr)} to a NumPy array (np.asarray, np.array, a method of a "
                      "concrete array such as data.dot(W))", "arrays the forward reads from outside (globals) must "
                      "be arguments of the forward, with their shapes, so that they are symbols")

    def __setitem__(self, key, value):
        raise _refuse("assignment into a stand-in array (a[...] = v)", "build the array with np.where")

    def _in_place(op):  # z += 1 changes every name bound to z's array (a = z): refused, never rebound
        def method(self, other):
            if _nn_frame() is not None:  # inside a symgrad.nn body its block's result absorbs it
                return NotImplemented
            raise _refuse(f"the in-place update `{op}=` of a stand-in array",
                          f"write it as a new value, z = z {op} …; an in-place update changes every name "
                          "that shares the array, which trace does not follow")
        return method

    __iadd__, __isub__, __imul__, __itruediv__ = _in_place("+"), _in_place("-"), _in_place("*"), _in_place("/")
    __ipow__, __imatmul__, __ifloordiv__, __imod__ = _in_place("**"), _in_place("@"), _in_place("//"), _in_place("%")
    del _in_place

    # -- arithmetic -----------------------------------------------------------------------------
    def __add__(self, other):
        return _add(self, _lift(other))

    def __radd__(self, other):
        return _add(_lift(other), self)

    def __sub__(self, other):
        return _add(self, _neg(_lift(other)))

    def __rsub__(self, other):
        return _add(_lift(other), _neg(self))

    def __mul__(self, other):
        if isinstance(other, Condition):
            return other.__mul__(self)
        return _mul(self, _lift(other))

    def __rmul__(self, other):
        return _mul(_lift(other), self)

    def __truediv__(self, other):
        return _div(self, _lift(other))

    def __rtruediv__(self, other):
        return _div(_lift(other), self)

    def __pow__(self, other):
        return _pow(self, _lift(other))

    def __rpow__(self, other):
        base = _lift(other)
        if base.ndim == 0 and base.expr.is_number:
            return _unary(lambda u: base.expr ** u, self, f"{other} ** x")
        raise _refuse("a power with an array exponent")

    def __neg__(self):
        return _neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _unary(sp.Abs, self, "abs")

    def __matmul__(self, other):
        return _matmul(self, _lift(other))

    def __rmatmul__(self, other):
        return _matmul(_lift(other), self)

    def dot(self, other):
        return _matmul(self, _lift(other))

    def _compare(op):
        def compare(self, other):
            return Condition(self, op, _lift(other))
        return compare

    __gt__, __ge__, __lt__, __le__ = _compare(">"), _compare(">="), _compare("<"), _compare("<=")
    del _compare

    def __eq__(self, other):
        raise _refuse("== on a stand-in array")

    __hash__ = object.__hash__

    # -- methods ---------------------------------------------------------------------------------
    @property
    def T(self):
        return _transpose(self)

    def transpose(self, *axes):
        if axes not in ((), (1, 0), ((1, 0),)):
            raise _refuse(f"transpose{axes}")
        return _transpose(self)

    def sum(self, axis=None, keepdims=False, **kwargs):
        _no_extra("sum", kwargs)
        return _reduce(self, axis, keepdims, "sum")

    def mean(self, axis=None, keepdims=False, **kwargs):
        _no_extra("mean", kwargs)
        return _reduce(self, axis, keepdims, "mean")

    def var(self, axis=None, keepdims=False, ddof=0, **kwargs):
        _no_extra("var", kwargs)
        return _var(self, axis, keepdims, ddof)

    def std(self, axis=None, keepdims=False, ddof=0, **kwargs):
        _no_extra("std", kwargs)
        return _unary(sp.sqrt, _var(self, axis, keepdims, ddof), "sqrt")

    def max(self, axis=None, keepdims=False, **kwargs):
        _no_extra("max", kwargs)
        return _row_max(self, axis, keepdims)

    def clip(self, lo=None, hi=None, **kwargs):
        return _fn_clip(self, lo, hi, **kwargs)

    def reshape(self, *shape, **kwargs):
        _no_extra("reshape", kwargs)
        return _reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)

    def copy(self):
        return Tracer(self.expr, self.ndim, self.tag)

    def ravel(self, order="C"):  # a vector, a row or a column: the 1-D array of its entries
        if self.ndim == 2 and 1 not in tuple(self.expr.shape):
            raise _refuse(f".ravel() of a matrix of shape {self.shape}", "trace flattens vectors, rows and columns")
        return _reshape(self, (-1,))

    flatten = ravel

    def astype(self, dtype, **kwargs):
        if np.dtype(dtype).kind != "f":
            raise _refuse(f"astype({dtype})")
        return self

    def __getitem__(self, key):
        return _index(self, key)

    # -- NumPy's protocols -----------------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs.get("out") is not None:
            raise _refuse(f"np.{ufunc.__name__}.{method}" if method != "__call__" else f"np.{ufunc.__name__}(out=...)")
        if kwargs:
            raise _refuse(f"np.{ufunc.__name__} with {', '.join(kwargs)}")
        rule = _UFUNCS.get(ufunc.__name__)
        if rule is None:
            raise _refuse(f"np.{ufunc.__name__}", "supported: " + ", ".join(sorted(_UFUNCS)))
        return rule(*inputs)

    def __array_function__(self, func, types, args, kwargs):
        rule = _FUNCTIONS.get(func.__name__)
        modules = ("numpy.linalg",) if func.__name__ == "norm" else ("numpy", "numpy.core.fromnumeric",
                                                                         "numpy.core.multiarray")
        if rule is None or func.__module__ not in modules:
            name = f"{func.__module__}.{func.__name__}".replace("numpy", "np", 1)
            raise _refuse(name, "trace follows @, dot, sum, mean, var, std, max, where, "
                                "maximum, minimum, exp, log, tanh, sqrt, square, abs, transpose, reshape")
        return rule(*args, **kwargs)

    def __array_namespace__(self, api_version=None):
        return _block_namespace()


def _no_extra(name: str, kwargs: dict) -> None:
    if kwargs:
        raise _refuse(f".{name}() with {', '.join(kwargs)}")


def _as_size(d):
    if isinstance(d, sp.Integer) or (isinstance(d, sp.Expr) and d.is_Integer):
        return int(d)
    return _SIZES.get(d, d)


_SIZES: dict = {}  # size symbol → its Size while a trace runs


class LabelTracer:
    """Integer labels y (shape (N,)): they only index, ``a[np.arange(N), y]``."""

    def __init__(self, name: str, Y: sp.MatrixSymbol):
        self.name, self.Y = name, Y

    @property
    def shape(self):
        return (_as_size(self.Y.shape[0]),)

    ndim = 1

    def __len__(self) -> int:  # np.arange(len(y)) for the label pattern (a number from it is refused)
        return _placeholder(self.Y.shape[0])

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        raise _UnsupportedAttribute(f"symgrad.trace cannot follow .{name} of the labels {self.name} (at "
                                    f"{_user_line()}); labels only index: a[np.arange(N), y]")

    def _refused(self, *args, **kwargs):
        raise _refuse(f"arithmetic on the labels {self.name}", "labels only index: a[np.arange(N), y]")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _refused
    __bool__ = __float__ = __int__ = __index__ = __iter__ = __array__ = __eq__ = _refused
    __hash__ = object.__hash__

    def __array_ufunc__(self, *args, **kwargs):
        self._refused()

    def __array_function__(self, *args, **kwargs):
        self._refused()

    def __array_namespace__(self, api_version=None):
        return _block_namespace()


class Condition:
    r"""``a > b`` of stand-ins (``a − b > 0`` entry by entry): usable in ``np.where`` and as a 0/1 mask.

    .. math:: \texttt{np.where(z > 0, z, 0)} = \operatorname{ReLU}(z)"""

    def __init__(self, left: Tracer, op: str, right: Tracer):
        self.left, self.op, self.right = left, op, right

    def __bool__(self):
        raise _refuse(f"a Python `if` on the comparison {sp.sstr(self.left.expr)} {self.op} {sp.sstr(self.right.expr)}",
                      "write branches with np.where(condition, a, b)")

    def __mul__(self, other):  # z * (z > 0)
        return _where(self, _lift(other), _lift(0))

    __rmul__ = __mul__

    def astype(self, dtype, **kwargs):
        return _where(self, _lift(1), _lift(0))

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        raise _UnsupportedAttribute(f"symgrad.trace cannot follow .{name} of a comparison (at {_user_line()}); "
                                    "use it in np.where(condition, a, b), as a mask a * (z > 0) or .astype(float)")

    def __array_ufunc__(self, *args, **kwargs):
        raise _refuse("NumPy arithmetic on a comparison", "use np.where(condition, a, b)")


# --- building expressions -------------------------------------------------------------------------
def _shape2(a: Tracer) -> tuple:
    return tuple(a.expr.shape) if a.ndim else (sp.S.One, sp.S.One)


def _parts(expr: sp.MatrixExpr) -> tuple:
    """(body in t, base X) for an elementwise function of X (X itself: (t, X)); a numeric multiple
    c X is (c t, X), so that exp(−X W) keeps X W as its base."""
    if isinstance(expr, ElementwiseApplyFunction):
        (var,), body = expr.function.variables, expr.function.expr
        return (body if var == t else body.xreplace({var: t})), expr.expr
    if isinstance(expr, sp.MatMul):
        coeff, rest = expr.as_coeff_mmul()
        if coeff != 1 and coeff.is_number:
            rest = rest.args[0] if isinstance(rest, sp.MatMul) and len(rest.args) == 1 else rest
            body, base = _parts(rest)
            return coeff * body, base
    return t, expr


def _elementwise(body: sp.Expr, base: sp.MatrixExpr) -> sp.MatrixExpr:
    body = fold(body)
    if body == t:
        return base
    if not body.has(t):  # a constant matrix
        return sp.MatMul(body, sp.OneMatrix(*base.shape)) if body != 0 else sp.ZeroMatrix(*base.shape)
    if isinstance(body, sp.Mul):  # c·f(t): keep c outside (2 σ(X), not (x -> 2σ(x))(X))
        coeff, rest = body.as_coeff_Mul()
        if coeff != 1 and coeff.is_number and rest != t:
            return sp.MatMul(coeff, Elementwise(sp.Lambda(t, rest), base))
    return Elementwise(sp.Lambda(t, body), base)


def _unary(f: Callable, a, what: str) -> Tracer:
    a = _lift(a)
    if a.ndim == 0:
        return Tracer(fold(f(a.expr)), 0)
    if isinstance(f, type) and f is sp.log and a.tag and a.tag[0] == "pick_softmax":
        Z, Y = a.tag[1:]  # log softmax(Z)[i, y_i] = −CE_i
        return Tracer(sp.MatMul(-1, sp.Transpose(RowSoftmaxCrossEntropy(Z, Y))), 1)
    if f is sp.log and isinstance(a.expr, RowSoftmax):
        return Tracer(RowLogSoftmax(a.expr.arg), a.ndim)
    body, base = _parts(a.expr) if not _is_named(a) else (t, a.expr)  # f(h) of a named h keeps h
    return Tracer(_elementwise(f(body), base), a.ndim)


def _neg(a: Tracer) -> Tracer:
    if a.ndim == 0:
        return Tracer(-a.expr, 0)
    if isinstance(a.expr, sp.MatMul) and a.expr.args[0] == -1:
        rest = a.expr.args[1:]
        return Tracer(rest[0] if len(rest) == 1 else sp.MatMul(*rest), a.ndim)
    return Tracer(sp.MatMul(-1, a.expr), a.ndim)  # −μ keeps μ whole (so that its name is found)


def _out_ndim(a: Tracer, b: Tracer) -> int:
    return max(a.ndim, b.ndim)


def _broadcast_shape(a: Tracer, b: Tracer) -> tuple:
    (r1, c1), (r2, c2) = _shape2(a), _shape2(b)

    def one(x, y, axis):
        if x == y or y == 1:
            return x
        if x == 1:
            return y
        raise _refuse(f"broadcasting shapes {a.shape} and {b.shape} (axis {axis}: {x} against {y})")

    return one(r1, r2, 0), one(c1, c2, 1)


def _entry_matrix(atom: sp.Basic):
    """The 1 × 1 matrix whose entry is the scalar ``atom`` (a reduction), or None."""
    if isinstance(atom, MatrixElement) and atom.args[0].shape == (1, 1):
        return atom.args[0]
    if isinstance(atom, sp.Trace) and isinstance(atom.arg, sp.MatMul) and len(atom.arg.args) == 2 \
            and isinstance(atom.arg.args[0], sp.Transpose):  # tr(BᵀC) = 1ᵀ (B ∘ C) 1
        B, C = atom.arg.args[0].arg, atom.arg.args[1]
        return sp.MatMul(sp.OneMatrix(1, B.shape[0]), HadamardProduct(B, C), sp.OneMatrix(B.shape[1], 1))
    if isinstance(atom, SoftmaxCrossEntropy):  # Σ_i CE_i = 1ᵀ (CE_i)_i
        Z, Y = atom.args
        return sp.MatMul(sp.OneMatrix(1, Z.shape[0]), RowSoftmaxCrossEntropy(Z, Y))
    return None


def _spread_scalar(value: sp.Expr, shape: tuple) -> sp.MatrixExpr:
    """A scalar repeated over a matrix of ``shape``. A scalar made of reductions (a mean, a norm) is
    written with matrices, 1 S 1ᵀ for the 1 × 1 matrix S of its value, so that the matrix chain rule
    differentiates it as part of the array (it refuses such scalars as factors)."""
    kinds = (MatrixElement, sp.Trace, SoftmaxCrossEntropy)
    atoms: list = []

    def collect(node):  # the outermost reductions of arrays (not (1ᵀ 1)₀₀ = N)
        if isinstance(node, kinds):
            atoms.append(node) if node not in atoms and node.atoms(sp.MatrixSymbol) else None
        else:
            for a in node.args:
                collect(a)

    collect(value)
    if not atoms:
        return sp.MatMul(value, sp.OneMatrix(*shape)) if value != 1 else sp.OneMatrix(*shape)
    matrices = [_entry_matrix(a) for a in atoms]
    if any(m is None for m in matrices):
        return sp.MatMul(value, sp.OneMatrix(*shape))  # as it is: the chain rule's scalar factor
    dummies = [sp.Dummy("r") for _ in atoms]
    plain = sp.expand(value.xreplace(dict(zip(atoms, dummies))))
    if plain.free_symbols & set(dummies) and all(sp.diff(plain, d, 2) == 0 for d in dummies) and \
            not any(sp.diff(plain, d).free_symbols & set(dummies) for d in dummies):  # Σ c_k a_k + c₀
        terms = [_scaled(sp.diff(plain, d), m) for d, m in zip(dummies, matrices) if sp.diff(plain, d) != 0]
        constant = plain.xreplace({d: 0 for d in dummies})
        if constant != 0:
            terms.append(sp.MatMul(constant, sp.OneMatrix(1, 1)))
        S = terms[0] if len(terms) == 1 else sp.MatAdd(*terms)
        return S if tuple(shape) == (1, 1) else sp.MatMul(sp.OneMatrix(shape[0], 1), S, sp.OneMatrix(1, shape[1]))
    if len(atoms) == 1 and tuple(shape) != (1, 1):  # f(a): f entry by entry of the spread 1 a 1ᵀ
        spread = sp.MatMul(sp.OneMatrix(shape[0], 1), matrices[0], sp.OneMatrix(1, shape[1]))
        return _elementwise(value.xreplace({atoms[0]: t}), spread)
    return sp.MatMul(value, sp.OneMatrix(*shape))  # as it is: the chain rule's scalar factor


def _spread(a: Tracer, shape: tuple) -> sp.MatrixExpr:
    """a as a matrix of ``shape``: a row repeated over the rows (1 r), a column over the columns (c 1ᵀ)."""
    expr = a.expr
    if a.ndim == 0:
        return _spread_scalar(expr, shape)
    rows, cols = expr.shape
    if rows == 1 and shape[0] != 1 and cols == 1 and shape[1] != 1:
        return sp.MatMul(MatrixElement(expr, 0, 0), sp.OneMatrix(*shape))
    if rows == 1 and shape[0] != 1:
        expr = sp.MatMul(sp.OneMatrix(shape[0], 1), expr)
    if cols == 1 and shape[1] != 1:
        expr = sp.MatMul(expr, sp.OneMatrix(1, shape[1]))
    return expr


def _numeric(a: Tracer) -> bool:
    """A numeric scalar: it may enter an elementwise function's body (1 + e^{−t}); a scalar argument
    (reg, s) stays outside, as a factor or a term, where the matrix chain rule differentiates it."""
    return a.ndim == 0 and a.expr.is_number


def _free_constant(a: Tracer) -> bool:
    return a.ndim == 0 and not a.expr.atoms(sp.MatrixSymbol)


def _fusable(a: Tracer, b: Tracer):
    """The common base X when both are elementwise functions of X (or b a free scalar), else None."""
    if a.ndim and b.ndim and _shape2(a) == _shape2(b):
        (fa, xa), (fb, xb) = _parts(a.expr), _parts(b.expr)
        if xa == xb:
            return fa, fb, xa
    return None


def _add(a: Tracer, b: Tracer) -> Tracer:
    if a.ndim == 0 and b.ndim == 0:
        return Tracer(a.expr + b.expr, 0)
    if a.ndim == 0 or b.ndim == 0:
        m, s = (b, a) if a.ndim == 0 else (a, b)
        if _numeric(s) and isinstance(m.expr, ElementwiseApplyFunction):
            fm, xm = _parts(m.expr)
            return Tracer(_elementwise(fm + s.expr, xm), m.ndim)
        if s.expr == 0:
            return m
        terms = [m.expr, _spread_scalar(s.expr, m.expr.shape)]
        return Tracer(_matadd(*(terms if m is a else terms[::-1])), m.ndim)
    fused = _fusable(a, b)
    if fused and (isinstance(a.expr, ElementwiseApplyFunction) or isinstance(b.expr, ElementwiseApplyFunction)):
        fa, fb, x = fused
        return Tracer(_elementwise(fa + fb, x), _out_ndim(a, b))
    for m, o in ((a, b), (b, a)):
        shifted = _affine(m.expr, o, "shift")
        if shifted is not None:
            return Tracer(shifted, 2)
    shape = _broadcast_shape(a, b)
    log_softmax = _log_softmax(a, b)
    if log_softmax is not None:
        return Tracer(log_softmax, _out_ndim(a, b))
    # the broadcast written out (X W + 1 b): SymPy's MatAdd of mismatched symbolic shapes takes the
    # shape of its first term, which may be the row
    return Tracer(_matadd(_spread(a, shape), _spread(b, shape)), _out_ndim(a, b))


def _matadd(*terms) -> sp.MatrixExpr:
    flat = []
    for term in terms:
        flat.extend(term.args if isinstance(term, sp.MatAdd) else [term])
    return sp.MatAdd(*flat)


def _mul(a: Tracer, b: Tracer) -> Tracer:
    if a.ndim == 0 and b.ndim == 0:
        return Tracer(a.expr * b.expr, 0)
    if a.ndim == 0 or b.ndim == 0:
        m, s = (b, a) if a.ndim == 0 else (a, b)
        if _free_constant(s):
            return Tracer(_scaled(s.expr, m.expr), m.ndim)
        return Tracer(HadamardProduct(_spread_scalar(s.expr, m.expr.shape), m.expr), m.ndim)  # by a reduction
    fused = _fusable(a, b)
    if fused:
        fa, fb, x = fused
        return Tracer(_elementwise(fa * fb, x), _out_ndim(a, b))
    for m, o in ((a, b), (b, a)):
        known = _standardized(m, o, 1 / sp.sqrt(t)) if m.ndim == 2 else None
        known = known if known is not None else _affine(m.expr, o, "scale")
        if known is not None:
            return Tracer(known, 2)
    shape = _broadcast_shape(a, b)
    return Tracer(HadamardProduct(_spread(a, shape), _spread(b, shape)), _out_ndim(a, b))


def _scaled(c: sp.Expr, M: sp.MatrixExpr) -> sp.MatrixExpr:
    """c M, one coefficient in front (2 (3 M) → 6 M), M itself kept whole (c (A + B), not cA + cB)."""
    if c == 1:
        return M
    if isinstance(M, sp.MatMul) and M.args[0].is_number and c.is_number:  # symbols stay apart: 0.1 (s A)
        c, rest = c * M.args[0], M.args[1:]
        M = rest[0] if len(rest) == 1 else sp.MatMul(*rest)
        if c == 1:
            return M
    return sp.MatMul(c, M)


def _reciprocal(b: Tracer) -> Tracer:
    return _unary(lambda u: 1 / u, b, "1/x")


def _div(a: Tracer, b: Tracer) -> Tracer:
    if b.ndim == 0:
        if a.ndim == 0:
            return Tracer(a.expr / b.expr, 0)
        return _mul(a, Tracer(1 / b.expr, 0))
    softmax = _softmax(a, b)
    if softmax is not None:
        return Tracer(softmax, _out_ndim(a, b))
    norm = _standardized(a, b, sp.sqrt(t))
    if norm is not None:
        return Tracer(norm, 2)
    fused = _fusable(a, b)
    if fused:
        fa, fb, x = fused
        return Tracer(_elementwise(fa / fb, x), _out_ndim(a, b))
    if _numeric(a):
        fb, xb = _parts(b.expr)
        return Tracer(_elementwise(a.expr / fb, xb), b.ndim)
    return _mul(a, _reciprocal(b))


def _pow(a: Tracer, b: Tracer) -> Tracer:
    if b.ndim:
        raise _refuse("a power with an array exponent")
    if a.ndim == 0:
        return Tracer(a.expr ** b.expr, 0)
    return _unary(lambda u: u ** b.expr, a, "power")


def _matmul(a: Tracer, b: Tracer) -> Tracer:
    if a.ndim == 0 or b.ndim == 0:
        raise _refuse("a matrix product with a scalar", "use * for scaling")
    A = a.expr if a.ndim == 2 else a.expr  # a 1-D left factor is the row v (1 × n)
    B = b.expr if b.ndim == 2 else sp.Transpose(b.expr)  # a 1-D right factor is the column vᵀ (n × 1)
    if A.shape[1] != B.shape[0]:
        raise _refuse(f"a matrix product of shapes {a.shape} and {b.shape}")
    product = sp.MatMul(A, B)
    if a.ndim == 1 and b.ndim == 1:
        return Tracer(MatrixElement(product, 0, 0), 0)
    if b.ndim == 1:
        return Tracer(sp.Transpose(product), 1)
    return Tracer(product, 1 if a.ndim == 1 else 2)


def _transpose(a: Tracer) -> Tracer:
    if a.ndim < 2:
        return a
    return Tracer(sp.Transpose(a.expr), 2)


def _axes(a: Tracer, axis) -> tuple:
    if axis is None:
        return tuple(range(a.ndim))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for ax in axes:
        if not isinstance(ax, (int, np.integer)) or isinstance(ax, Size) or not -a.ndim <= ax < a.ndim:
            raise _refuse(f"axis={axis!r} of an array of shape {a.shape}")
        out.append(int(ax) % a.ndim)
    return tuple(sorted(set(out)))


def _sum_all(expr: sp.MatrixExpr) -> sp.Expr:
    """Σ of every entry, in the catalog's forms: ‖A‖² = tr(AᵀA) for a sum of squares, the summed
    cross-entropy CE(softmax(Z), Y) for the rows' losses, 1ᵀ A 1 otherwise."""
    if isinstance(expr, sp.MatMul):
        coeff, rest = expr.as_coeff_mmul()
        if coeff != 1:
            rest = rest.args[0] if isinstance(rest, sp.MatMul) and len(rest.args) == 1 else rest
            return coeff * _sum_all(rest)
    if isinstance(expr, sp.Transpose):
        return _sum_all(expr.arg)
    if isinstance(expr, RowSoftmaxCrossEntropy):
        return SoftmaxCrossEntropy(*expr.args)
    if isinstance(expr, sp.MatAdd) and len({a.shape for a in expr.args}) == 1:
        return sp.Add(*[_sum_all(a) for a in expr.args])
    body, base = _parts(expr)
    if body == t ** 2 and not isinstance(base, sp.MatMul) or (
            isinstance(expr, HadamardProduct) and len(expr.args) == 2 and expr.args[0] == expr.args[1]):
        base = base if body == t ** 2 else expr.args[0]
        return sp.Trace(sp.MatMul(sp.Transpose(base), base))
    if body == t ** 2:
        return sp.Trace(sp.MatMul(sp.Transpose(base), base))
    if expr.shape == (1, 1):
        return MatrixElement(expr, 0, 0)
    return sum_entries(expr)


def _reduce(a, axis, keepdims: bool, kind: str) -> Tracer:
    a = _lift(a)
    if a.ndim == 0:
        return a
    axes = _axes(a, axis)
    rows, cols = a.expr.shape
    if a.ndim == 1 or axes == (0, 1):
        total = _sum_all(a.expr)
        count = cols if a.ndim == 1 else rows * cols
        value = total if kind == "sum" else total / count
        if keepdims:
            return Tracer(sp.MatMul(value, sp.OneMatrix(1, 1)), a.ndim)
        return Tracer(value, 0)
    if axes == (0,):
        out, count = sp.MatMul(sp.OneMatrix(1, rows), a.expr), rows
        ndim = 2 if keepdims else 1
    else:
        out, count = sp.MatMul(a.expr, sp.OneMatrix(cols, 1)), cols
        ndim = 2
        if not keepdims:
            out, ndim = sp.Transpose(out), 1
    if kind == "mean":
        out = sp.MatMul(1 / count, out)
    return Tracer(out, ndim)


def _var(a, axis, keepdims, ddof=0) -> Tracer:
    a = _lift(a)
    if ddof:
        raise _refuse(f"var(ddof={ddof})")
    centred = a - _reduce(a, axis, True, "mean")
    return _reduce(centred ** 2, axis, keepdims, "mean")


def _row_max(a, axis=None, keepdims=False) -> Tracer:
    """max over an axis as the catalog's row maximum (its gradient goes to the first largest entry, as
    torch.max(dim)); subtracted before a softmax's exp, it is dropped (softmax is shift-invariant)."""
    a = _lift(a)
    if a.ndim == 0:
        return a
    axes = _axes(a, axis)
    if a.ndim == 1 or axes == (0, 1):  # every entry: the maximum of the row maxima
        inner = RowMax(a.expr) if a.ndim == 1 else sp.Transpose(RowMax(sp.Transpose(RowMax(a.expr))))
        value = MatrixElement(inner, 0, 0)
        return Tracer(sp.MatMul(value, sp.OneMatrix(1, 1)), a.ndim) if keepdims else Tracer(value, 0)
    if axes == (1,):
        node = RowMax(a.expr)  # N × 1
        return Tracer(node, 2) if keepdims else Tracer(sp.Transpose(node), 1)
    return Tracer(sp.Transpose(RowMax(sp.Transpose(a.expr))), 2 if keepdims else 1)  # 1 × D


def _factors(expr: sp.Basic) -> tuple:
    """(scalar coefficient, matrix factors) of a product, nested products flattened."""
    if isinstance(expr, sp.MatMul):
        coeff, mats = sp.S.One, []
        for a in expr.args:
            c, m = _factors(a)
            coeff, mats = coeff * c, mats + m
        return coeff, mats
    if isinstance(expr, sp.MatrixExpr):
        return sp.S.One, [expr]
    return expr, []


def _unshifted(X: sp.MatrixExpr) -> sp.MatrixExpr:
    """Z for Z − rowmax(Z) (softmax is shift-invariant: the shift cancels), else X."""
    if isinstance(X, sp.MatAdd):
        for term in X.args:
            coeff, mats = _factors(term)
            if coeff != -1 or not mats or not isinstance(mats[0], RowMax) or \
                    not all(isinstance(m, sp.OneMatrix) for m in mats[1:]):
                continue
            rest = [s for s in X.args if s is not term]
            Z = rest[0] if len(rest) == 1 else sp.MatAdd(*rest)
            if mats[0].args[0] == Z:
                return Z
    return X


def _row_sum_of(D: sp.MatrixExpr):
    """E when D is E 1 (the row sums of E, kept as a column)."""
    if isinstance(D, sp.MatMul) and len(D.args) == 2 and isinstance(D.args[1], sp.OneMatrix) \
            and D.args[1].shape[1] == 1:
        return D.args[0]
    return None


def _standardized(a: Tracer, b: Tracer, body: sp.Expr):
    """LN(X) (over the rows) or BN(X) (over the samples, axis 0) for (X − mean X) / √(var X + ε)
    (``body`` √t: a quotient) or (X − mean X) ∘ (var X + ε)^(−1/2) (``body`` t^(−1/2): a product)."""
    if a.ndim != 2 or not b.ndim or not isinstance(a.expr, sp.MatAdd):
        return None
    fb, base = _parts(b.expr)
    if fb != body or not isinstance(base, sp.MatAdd):
        return None
    eps, rest = None, []
    for term in base.args:
        coeff, mats = _factors(term)
        if eps is None and len(mats) == 1 and isinstance(mats[0], sp.OneMatrix) and coeff.is_number:
            eps = coeff
        else:
            rest.append(term)
    if eps is None or not rest:
        return None
    variance = rest[0] if len(rest) == 1 else sp.MatAdd(*rest)
    for X in a.expr.args:
        if not isinstance(X, sp.MatrixExpr) or X.shape != a.expr.shape:
            continue
        x = Tracer(X, 2)
        for axis, block in ((1, LayerNorm), (0, BatchNorm)):
            if _add(x, _neg(_reduce(x, axis, True, "mean"))).expr == a.expr and \
                    _var(x, axis, True).expr == variance:
                return block(X, 1, 0, eps)
    return None


def _affine(norm: sp.MatrixExpr, other: Tracer, role: str):
    """LN/BN(X; γ, β) when a row γ scales (``role`` "scale") or a row β shifts ("shift") the block."""
    if not isinstance(norm, (LayerNorm, BatchNorm)) or other.ndim == 0:
        return None
    X, gamma, beta, eps = norm.args
    row = other.expr
    if row.shape != (1, X.shape[1]) or (role == "scale" and (gamma != 1 or beta != 0)) or \
            (role == "shift" and beta != 0):
        return None
    return type(norm)(X, row, beta, eps) if role == "scale" else type(norm)(X, gamma, row, eps)


def _softmax(a: Tracer, b: Tracer):
    """softmax(Z) by rows for e / e.sum(axis=1, keepdims=True) with e = exp(Z) (or exp(Z − max Z))."""
    if a.ndim != 2 or b.ndim != 2:
        return None
    E = _row_sum_of(b.expr)
    if E is None or E != a.expr:
        return None
    body, base = _parts(E)
    if body != sp.exp(t):
        return None
    return RowSoftmax(_unshifted(base))


def _log_softmax(a: Tracer, b: Tracer):
    """log softmax(Z) by rows for S − log(exp(S).sum(axis=1, keepdims=True)), S = Z or Z − max Z."""
    for S, L in ((a.expr, b.expr), (b.expr, a.expr)):
        if not (isinstance(L, sp.MatMul) and L.args[0] == -1 and len(L.args) == 2):
            continue
        body, inner = _parts(L.args[1])
        E = _row_sum_of(inner)
        if body != sp.log(t) or E is None:
            continue
        fe, xe = _parts(E)
        if fe == sp.exp(t) and xe == S:
            return RowLogSoftmax(_unshifted(S))
    return None


def _reshape(a: Tracer, shape) -> Tracer:
    shape = tuple(shape)
    want = []
    for d in shape:
        want.append(d.symbol if isinstance(d, Size) else d)
    if a.ndim == 0:
        raise _refuse(f"reshape{shape} of a scalar")
    current = tuple(a.expr.shape)
    total = current[0] * current[1]
    resolved = []
    for d in want:
        resolved.append(None if (isinstance(d, int) and d == -1) else sp.Integer(d) if isinstance(d, int) else d)
    if resolved.count(None) > 1:
        raise _refuse(f"reshape{shape}")
    if None in resolved:
        known = 1
        for d in resolved:
            if d is not None:
                known *= d
        resolved[resolved.index(None)] = sp.simplify(total / known)
    if len(resolved) == 1:  # to 1-D
        if resolved[0] != total or 1 not in current:
            raise _refuse(f"reshape{shape} of shape {a.shape}")
        return Tracer(a.expr if current[0] == 1 else sp.Transpose(a.expr), 1)
    if len(resolved) == 2:
        target = tuple(resolved)
        if target == current:
            return Tracer(a.expr, 2)
        if target == current[::-1] and 1 in current:
            return Tracer(sp.Transpose(a.expr), 2)
    raise _refuse(f"reshape{shape} of shape {a.shape}", "trace reshapes only between (n,), (1, n) and (n, 1)")


def _index(a: Tracer, key) -> Tracer:
    def whole(k) -> bool:  # ':'
        return isinstance(k, slice) and k.start is None and k.stop is None and k.step is None

    if a.ndim == 1 and isinstance(key, tuple) and len(key) == 2 and any(k is None for k in key) and \
            all(k is None or whole(k) for k in key):  # v[:, None] is a column, v[None, :] a row
        return Tracer(sp.Transpose(a.expr) if key[1] is None else a.expr, 2)
    if a.ndim == 1 and key is None:
        return Tracer(a.expr, 2)
    if key is Ellipsis or whole(key):
        return a
    if isinstance(key, tuple) and len(key) == 2 and isinstance(key[1], LabelTracer) and a.ndim == 2:
        rows, lab = key
        N = a.expr.shape[0]
        count = _placeholder(N)
        if isinstance(rows, range):
            rows = np.arange(rows.start, rows.stop, rows.step)
        if not (isinstance(rows, np.ndarray) and rows.ndim == 1 and rows.shape[0] == count
                and np.array_equal(rows, np.arange(count))):
            raise _refuse("a[rows, y] with rows other than np.arange(N)")
        Y = lab.Y
        if Y.shape != a.expr.shape:
            raise _refuse(f"labels {lab.name} of {Y.shape[1]} classes indexing an array of shape {a.shape}")
        if isinstance(a.expr, RowLogSoftmax):  # log softmax(Z)[i, y_i] = −CE_i
            return Tracer(sp.MatMul(-1, sp.Transpose(RowSoftmaxCrossEntropy(a.expr.arg, Y))), 1)
        picked = sp.Transpose(sp.MatMul(HadamardProduct(a.expr, Y), sp.OneMatrix(Y.shape[1], 1)))
        tag = ("pick_softmax", a.expr.arg, Y) if isinstance(a.expr, RowSoftmax) else None
        return Tracer(picked, 1, tag)
    shown = key if isinstance(key, tuple) else (key,)  # an index array by its shape, never its placeholder length
    shown = ", ".join(f"an array of shape {_shape_text(k.shape)}" if isinstance(k, np.ndarray) else repr(k) for k in shown)
    raise _refuse(f"indexing a stand-in array with {shown}",
                  "trace indexes only by labels, a[np.arange(N), y] with y declared labels(N, classes=C)")


def _placeholder(N) -> int:
    size = _as_size(N)
    return int.__add__(size, 0) if isinstance(size, Size) else int(size)


# --- NumPy's functions -------------------------------------------------------------------------------
def _where(cond, a, b) -> Tracer:
    if not isinstance(cond, Condition):
        raise _refuse("np.where with a condition that is not a comparison of stand-ins")
    a, b = _lift(a), _lift(b)
    left = cond.left
    if left.ndim == 0:
        raise _refuse("np.where on a scalar condition")
    fz, xz = _parts(left.expr)
    if _free_constant(cond.right):  # z > c: the condition z − c > 0 on z itself
        fz = fz - cond.right.expr
    else:
        fused = _fusable(left, cond.right)
        if fused is None:
            raise _refuse("np.where on a comparison of two different arrays")
        fz = fused[0] - fused[1]
    pieces = []
    for branch in (a, b):
        if branch.ndim == 0 and _free_constant(branch):
            pieces.append(branch.expr)
            continue
        fb, xb = _parts(branch.expr)
        if xb != xz or _shape2(branch) != _shape2(left):
            return _masked(a, b, fz, cond.op, xz, left.ndim)
        pieces.append(fb)
    ops = {">": sp.StrictGreaterThan, ">=": sp.GreaterThan, "<": sp.StrictLessThan, "<=": sp.LessThan}
    op = cond.op
    u = fz
    if op in ("<", "<="):  # u < 0: the other branch first
        pieces, op = pieces[::-1], {"<": ">=", "<=": ">"}[op]
    fa, fb = pieces
    if u == t and fb == 0 and fa == t:  # z > 0 ? z : 0 (and z ≥ 0: the same function, derivative 0 at 0)
        body = relu(t)
    elif u == t and fa == t and fb.is_Mul and fb.as_coeff_Mul()[1] == t and op == ">":
        body = leaky_relu(t, fb.as_coeff_Mul()[0])
    elif {fa, fb} == {0, 1}:  # a 0/1 mask: the catalog's step (its derivative 0)
        body = _mask_body(u, op) if fa == 1 else 1 - _mask_body(u, op)
    else:
        body = sp.Piecewise((fa, ops[op](u, 0)), (fb, True))
    return Tracer(_elementwise(body, xz), left.ndim)


def _mask_body(u: sp.Expr, op: str) -> sp.Expr:
    """[u > 0], [u ≥ 0], [u < 0], [u ≤ 0] with the catalog's step(u) = [u > 0] (ReLU'(0) = 0)."""
    return {">": step(u), ">=": 1 - step(-u), "<": step(-u), "<=": 1 - step(u)}[op]


def _masked(a: Tracer, b: Tracer, u: sp.Expr, op: str, base: sp.MatrixExpr, ndim: int) -> Tracer:
    """np.where(z > 0, a, b) for branches that are not functions of z: a ∘ M + b ∘ (1 − M), M the
    0/1 mask of the condition (dh * (z > 0), the hand-written ReLU backward, is dh ∘ step(z))."""
    mask = Tracer(_elementwise(_mask_body(u, op), base), ndim)
    terms = [_mul(v, m) for v, m in ((a, mask), (b, _add(_lift(1), _neg(mask))))
             if not (v.ndim == 0 and v.expr == 0)]
    if not terms:
        return _mul(_lift(0), mask)
    return terms[0] if len(terms) == 1 else _add(*terms)


def _maximum(a, b) -> Tracer:
    a, b = _lift(a), _lift(b)
    if _free_constant(a):
        a, b = b, a
    if not _free_constant(b) or a.ndim == 0:
        raise _refuse("np.maximum of two arrays", "trace follows np.maximum(z, c) for a constant c (ReLU)")
    c = b.expr
    # max(u, c) as u where u > c (derivative 0 at the kink, like ReLU'(0)); relu(u − c) + c would lose
    # the digits of a small u beside a large c (u − c rounds): relu6(1e-12) came out 1e-12 ± 1e-16·6
    return _unary(lambda u: sp.Piecewise((u, u > c), (c, True)) if c != 0 else relu(u), a, "maximum")


def _minimum(a, b) -> Tracer:
    a, b = _lift(a), _lift(b)
    if _free_constant(a):
        a, b = b, a
    if not _free_constant(b) or a.ndim == 0:
        raise _refuse("np.minimum of two arrays", "trace follows np.minimum(z, c) for a constant c")
    c = b.expr
    # min(u, c) as u where u < c (derivative 0 at the kink); c − relu(c − u) would lose a small u's digits
    return _unary(lambda u: sp.Piecewise((u, u < c), (c, True)) if c != 0 else -relu(-u), a, "minimum")


def _ufunc_unary(f, name):
    return lambda x: _unary(f, x, name)


def _compare_ufunc(op):
    return lambda x, y: Condition(_lift(x), op, _lift(y))


_UFUNCS: dict[str, Callable] = {
    "exp": _ufunc_unary(sp.exp, "exp"), "log": _ufunc_unary(sp.log, "log"), "tanh": _ufunc_unary(sp.tanh, "tanh"),
    "sqrt": _ufunc_unary(sp.sqrt, "sqrt"), "square": _ufunc_unary(lambda u: u ** 2, "square"),
    "absolute": _ufunc_unary(sp.Abs, "abs"), "negative": lambda x: -_lift(x), "positive": lambda x: _lift(x),
    "reciprocal": _ufunc_unary(lambda u: 1 / u, "reciprocal"), "log1p": _ufunc_unary(lambda u: sp.log(1 + u), "log1p"),
    "expm1": _ufunc_unary(lambda u: sp.exp(u) - 1, "expm1"), "sin": _ufunc_unary(sp.sin, "sin"),
    "cos": _ufunc_unary(sp.cos, "cos"),
    "add": lambda x, y: _lift(x) + y, "subtract": lambda x, y: _lift(x) - y, "multiply": lambda x, y: _lift(x) * y,
    "divide": lambda x, y: _lift(x) / y, "true_divide": lambda x, y: _lift(x) / y,
    "power": lambda x, y: _lift(x) ** y, "matmul": lambda x, y: _matmul(_lift(x), _lift(y)),
    "maximum": _maximum, "minimum": _minimum,
    "greater": _compare_ufunc(">"), "greater_equal": _compare_ufunc(">="), "less": _compare_ufunc("<"),
    "less_equal": _compare_ufunc("<="),
}


def _fn_reduce(kind):
    def rule(a, axis=None, keepdims=False, **kwargs):
        _no_extra(f"np.{kind}", {k: v for k, v in kwargs.items() if v is not np._NoValue})
        return _reduce(a, axis, keepdims, kind)
    return rule


def _fn_var(a, axis=None, keepdims=False, ddof=0, **kwargs):
    return _var(a, axis, keepdims, ddof)


def _fn_std(a, axis=None, keepdims=False, ddof=0, **kwargs):
    return _unary(sp.sqrt, _var(a, axis, keepdims, ddof), "sqrt")


def _fn_max(a, axis=None, keepdims=False, **kwargs):
    return _row_max(a, axis, keepdims)


def _fn_norm(x, ord=None, axis=None, keepdims=False):
    """‖x‖₂ over an axis (or Frobenius): √(Σ x²)."""
    if ord not in (None, 2, "fro") or (ord == 2 and axis is None and _lift(x).ndim == 2):
        raise _refuse(f"np.linalg.norm(ord={ord!r})", "trace follows the 2-norm of vectors and rows, and Frobenius")
    x = _lift(x)
    return _unary(sp.sqrt, _reduce(x * x, axis, keepdims, "sum"), "sqrt")


def _fn_clip(x, lo=None, hi=None, **kwargs):
    """clip(x, a, b) = a + ReLU(x − a) − ReLU(x − b) entry by entry (a, b numbers or None)."""
    lo = kwargs.pop("a_min", kwargs.pop("min", lo))
    hi = kwargs.pop("a_max", kwargs.pop("max", hi))
    if kwargs or not all(v is None or _is_constant(v) for v in (lo, hi)) or (lo is None and hi is None):
        raise _refuse("np.clip with array or missing bounds", "trace follows np.clip(x, a, b) for numbers a, b")
    a, b = (None if v is None else _number(v) for v in (lo, hi))

    def clipped(u):
        out = u if a is None else a + relu(u - a)
        return out if b is None else out - relu(out - b) if a is None else out - relu(u - b)
    return _unary(clipped, x, "clip")


_FUNCTIONS: dict[str, Callable] = {
    "norm": _fn_norm, "clip": _fn_clip,
    "dot": lambda a, b, **kw: _matmul(_lift(a), _lift(b)),
    "sum": _fn_reduce("sum"), "mean": _fn_reduce("mean"), "var": _fn_var, "std": _fn_std,
    "max": _fn_max, "amax": _fn_max,
    "transpose": lambda a, axes=None: _lift(a).transpose(*(() if axes is None else (tuple(axes),))),
    "where": lambda cond, a, b: _where(cond, a, b),
    "copy": lambda a, **kw: _lift(a).copy(), "ravel": lambda a, order="C": _lift(a).ravel(),
    "reshape": lambda a, *shape, **kw: _lift(a).reshape(*(shape or (kw.get("newshape", kw.get("shape")),))),
}


# --- symgrad.nn blocks inside a forward -------------------------------------------------------------
class _BlockResult(Tracer):
    """The catalog block's own expression for a ``symgrad.nn`` call, computed when the function asks
    for its array namespace. While that function runs, everything it computes from it is the result
    itself (its stable NumPy body is not followed); once it returns, it is an ordinary stand-in."""

    active = True

    def _absorb(self, *args, **kwargs):
        return self if self.active else NotImplemented


def _absorbing(name: str):
    plain = getattr(Tracer, name)

    def method(self, *args, **kwargs):
        if self.active:
            return self
        return plain(self, *args, **kwargs)
    return method


def _meeting_block(name: str):
    """Tracer's ``name``, except that an operand that is a running block's result absorbs it."""
    plain = getattr(Tracer, name)

    def method(self, *args, **kwargs):
        for a in list(args) + [x for a in args if isinstance(a, (tuple, list)) for x in a]:
            if isinstance(a, _BlockResult) and a.active:
                return a
        return plain(self, *args, **kwargs)
    return method


_ABSORBED = ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
             "__pow__", "__rpow__", "__neg__", "__abs__", "__matmul__", "__rmatmul__", "__gt__", "__ge__", "__lt__",
             "__le__", "__eq__", "__getitem__", "sum", "mean", "max", "reshape", "astype", "__array_ufunc__",
             "__array_function__")
for _name in _ABSORBED:
    setattr(Tracer, _name, _meeting_block(_name))
for _name in _ABSORBED:
    setattr(_BlockResult, _name, _absorbing(_name))
_BlockResult.__hash__ = object.__hash__
_BlockResult.__and__ = _BlockResult.__rand__ = _BlockResult.__or__ = _BlockResult.__ror__ = (
    lambda self, other: self)


class _BlockNamespace:
    """What a ``symgrad.nn`` function gets as its array namespace: structural calls (asarray) give
    back their argument, every other call the block's result."""

    __name__ = "symgrad.tracing.block_namespace"

    def __init__(self, result: _BlockResult):
        self.result = result

    def __getattr__(self, name):
        if name in ("asarray",):
            return lambda x, *args, **kwargs: x
        return lambda *args, **kwargs: self.result


_PENDING_BLOCKS: dict = {}  # the symgrad.nn frame → its block result (released when the frame returns)


def _nn_frame():
    frame = sys._getframe(1)
    found = None
    while frame is not None:
        if frame.f_globals.get("__name__") == "symgrad.nn":
            found = frame
        elif found is not None:
            break
        frame = frame.f_back
    return found


class _ArrayNamespace:
    r"""The Array API namespace of stand-ins (``x.__array_namespace__()``,
    ``array_api_compat.array_namespace(x)``): the same rules as NumPy's functions.

    .. math:: \texttt{xp.sum(xp.exp(x), axis=1, keepdims=True)} = \exp^{\circ}(X)\,\mathbf{1}"""

    __name__ = "symgrad.tracing.array_namespace"
    float64 = np.float64
    float32 = np.float32
    newaxis = None

    def __getattr__(self, name):
        rule = _UFUNCS.get({"abs": "absolute", "pow": "power"}.get(name, name))
        if rule is not None:
            return rule
        raise _refuse(f"xp.{name} (Array API)", "trace follows the Array API's elementwise functions, matmul, "
                      "matrix_transpose, sum, mean, var, std, max, where, reshape, arange")

    @staticmethod
    def asarray(x, *args, **kwargs):
        return x if isinstance(x, (Tracer, LabelTracer)) else _lift(x)

    @staticmethod
    def astype(x, dtype, **kwargs):
        return _lift(x).astype(dtype)

    @staticmethod
    def matrix_transpose(x):
        return _transpose(_lift(x))

    @staticmethod
    def permute_dims(x, axes):
        return _lift(x).transpose(tuple(axes))

    @staticmethod
    def reshape(x, shape, **kwargs):
        return _lift(x).reshape(shape)

    @staticmethod
    def sum(x, axis=None, keepdims=False, **kwargs):
        return _reduce(x, axis, keepdims, "sum")

    @staticmethod
    def mean(x, axis=None, keepdims=False, **kwargs):
        return _reduce(x, axis, keepdims, "mean")

    @staticmethod
    def var(x, axis=None, correction=0, keepdims=False, **kwargs):
        return _var(x, axis, keepdims, correction)

    @staticmethod
    def std(x, axis=None, correction=0, keepdims=False, **kwargs):
        return _unary(sp.sqrt, _var(x, axis, keepdims, correction), "sqrt")

    @staticmethod
    def max(x, axis=None, keepdims=False, **kwargs):
        return _row_max(x, axis, keepdims)

    @staticmethod
    def where(cond, a, b):
        return _where(cond, a, b)

    @staticmethod
    def arange(*args, **kwargs):
        return np.arange(*args)


def _block_namespace():
    frame = _nn_frame()
    if frame is None:
        return _ArrayNamespace()
    if frame in _PENDING_BLOCKS:
        return _BlockNamespace(_PENDING_BLOCKS[frame])
    name = frame.f_code.co_name
    code = frame.f_code
    names = list(code.co_varnames[:code.co_argcount + code.co_kwonlyargcount])
    result = _nn_block(name, [frame.f_locals[v] for v in names], names)
    block = _BlockResult(result.expr, result.ndim, result.tag)
    _PENDING_BLOCKS[frame] = block
    return _BlockNamespace(block)


def _batched_block(name: str, batched, values: dict) -> Tracer:
    """A block's batch form (rows = samples) with the stand-ins in place of its inputs, its sizes
    matched to theirs: nn.layer_norm(x, gamma, beta) → LN(x; γ, β)."""
    replace, first = {}, None
    for arg in batched.args:
        value = values.get(arg.name, arg.default)
        if arg.kind == "param":
            if not (_is_constant(value) or (isinstance(value, Tracer) and _free_constant(value))):
                raise _refuse(f"symgrad.nn.{name} with {arg.name}={value!r}", "its parameters must be numbers")
            replace[arg.symbol] = _lift(value).expr
            continue
        if not isinstance(value, Tracer):
            raise _refuse(f"symgrad.nn.{name} with {arg.name} of type {type(value).__name__}")
        expr = value.expr if value.ndim else sp.MatMul(value.expr, sp.OneMatrix(1, 1))
        if arg.kind == "rows" and first is None:
            first = value
        if len(expr.shape) != 2 or not isinstance(arg.symbol, sp.MatrixExpr):
            raise _refuse(f"symgrad.nn.{name} with {arg.name} of shape {value.shape}")
        for mine, theirs in zip(expr.shape, arg.symbol.shape):
            if theirs.is_Symbol:
                if replace.setdefault(theirs, mine) != mine:
                    raise _refuse(f"symgrad.nn.{name}: the shapes of its inputs do not match ({arg.name}: {value.shape})")
            elif theirs != mine and not theirs.free_symbols:
                raise _refuse(f"symgrad.nn.{name} with {arg.name} of shape {value.shape}")
        replace[arg.symbol] = expr
    out = batched.forward.xreplace(replace)
    if out.free_symbols & {s for a in batched.args for s in getattr(a.symbol, "free_symbols", ())} - set(replace):
        raise _refuse(f"symgrad.nn.{name}: its sizes could not be matched to its inputs'")
    one_sample = first is not None and first.ndim == 1
    if out.shape[1] == 1 and not (first is not None and first.ndim == 2 and batched.forward.shape[1] != 1):
        return Tracer(MatrixElement(out, 0, 0), 0) if one_sample else Tracer(sp.Transpose(out), 1)
    return Tracer(out, 1 if one_sample else 2)


def _nn_block(name: str, args: list, names: list | None = None) -> Tracer:
    """symgrad.nn.NAME(*args) as the catalog block's expression."""

    if name.endswith("_backward"):
        raise _refuse(f"symgrad.nn.{name} (a backward) inside a traced forward")
    block = get_block(name)
    fn = block.function
    x, rest = args[0], args[1:]
    if not isinstance(x, Tracer):
        raise _refuse(f"symgrad.nn.{name} of a {type(x).__name__}")
    if fn is not None and (getattr(fn, "elementwise", False) or fn is sp.tanh):
        if not all(_is_constant(r) for r in rest):
            raise _refuse(f"symgrad.nn.{name} with array parameters")
        params = [_number(r) for r in rest]
        return _unary(lambda u: fn(u, *params), x, name)
    if name in ("softmax", "log_softmax") and x.ndim == 2 and not rest:
        return Tracer(RowSoftmax(x.expr) if name == "softmax" else RowLogSoftmax(x.expr), 2)
    if block.batched is not None and not any(isinstance(a, LabelTracer) for a in args):
        return _batched_block(name, block.batched(), dict(zip(names, args)))
    hint = ("trace follows symgrad.nn's blocks on arrays; write the others in NumPy"
            + (" (a cross-entropy against labels: -np.log(probs[np.arange(N), y]).mean())" if "entropy" in name else ""))
    raise _refuse(f"symgrad.nn.{name} inside a traced forward", hint)


def _release_block(frame, value) -> None:
    """The symgrad.nn function of ``frame`` returned ``value``: its result is an ordinary stand-in now."""
    block = _PENDING_BLOCKS.pop(frame)
    block.active = False
    if value is not block:
        raise TraceError(f"symgrad.trace could not follow symgrad.nn.{frame.f_code.co_name}: it did not return "
                         "its block's result")


# --- the call --------------------------------------------------------------------------------------
class Traced(Graph):
    r"""The graph a forward function computes, its nodes named by the forward's local variables.

    .. math:: L = f(x, W, \dots) \;\text{as named intermediates}\; h = \sigma(x W_1),\ \hat y = h W_2,\ \dots

    Besides the :class:`Graph`: ``function`` (the traced forward), ``arguments`` (each argument's symbol:
    a MatrixSymbol, a scalar Symbol, or the one-hot Y of labels), ``sizes`` (name → size symbol),
    and :meth:`values` to turn the forward's concrete arguments into the compiled gradient's."""

    function: Callable
    arguments: dict
    sizes: dict
    declared: dict

    def __repr__(self) -> str:

        lines = "; ".join(f"{text(n)} = {text(self.exprs[n])}" for n in self.names)
        return f"<traced {getattr(self.function, '__name__', 'forward')}: {lines}>"

    def adapt_compiled(self, compiled) -> "TracedFunction":
        r"""The compiled derivation of this graph, callable with the forward's own arguments too.

        .. math:: f(X, y, W, b) = f(X, Y, W, b) \quad (Y_{ic} = [\,y_i = c\,])"""
        return TracedFunction(compiled, self)

    def values(self, **arrays) -> dict:
        r"""The compiled derivation's keyword arguments for the forward's concrete arguments:
        labels become one-hot rows (N × C), 1-D arrays rows (1 × n), scalars stay numbers.

        .. math:: y \mapsto Y_{ic} = [\,y_i = c\,], \quad b \in \mathbb{R}^{H} \mapsto b \in \mathbb{R}^{1 \times H}"""
        out = {}
        bound = self.bind_sizes(**arrays)
        used = {getattr(s, "name", None) for s in self.inputs}
        floats = [v.dtype for v in arrays.values() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
        dtype = np.result_type(*floats) if floats else np.dtype(np.float64)  # float32 stays float32
        for name, value in arrays.items():
            if name not in self.arguments:
                raise ValueError(f"{name!r} is not an argument of the traced forward (its arguments: "
                                 f"{', '.join(self.arguments)})")
            spec = self.declared[name]
            symbol = self.arguments[name]
            if symbol.name not in used:  # an argument the output does not depend on
                continue
            if isinstance(spec, Labels):
                y = np.asarray(value)
                classes = symbol.shape[1]
                C = int(classes) if classes.is_Integer else bound.get(classes)
                if C is None:
                    raise ValueError(f"{name}: the number of classes {classes} is not the size of another "
                                     f"argument; pass the one-hot matrix {symbol.name} (N × {classes}) yourself")
                if y.dtype.kind not in "iu" or y.ndim != 1 or (y.size and not 0 <= y.min() <= y.max() < C):
                    raise ValueError(f"{name}: labels must be integers in 0 … {C - 1} of shape (N,), got {y!r}")
                out[symbol.name] = np.eye(C, dtype=dtype)[y]
            elif len(spec) == 1:
                row = np.asarray(value)
                out[symbol.name] = (row if row.dtype.kind == "f" else row.astype(np.float64)).reshape(1, -1)
            else:
                out[symbol.name] = value
        return out

    def bind_sizes(self, **arrays) -> dict:
        r"""Each symbolic size's value in the given concrete arguments (a mismatch raises ValueError).

        .. math:: x \in \mathbb{R}^{5 \times 4},\ x{:}\,(N, D) \;\Rightarrow\; N = 5,\ D = 4"""
        bound: dict = {}
        for name, value in arrays.items():
            spec = self.declared.get(name)
            if spec is None:
                continue
            dims = (spec.n,) if isinstance(spec, Labels) else tuple(spec)
            shape = np.shape(value)
            if len(shape) != len(dims):
                raise ValueError(f"{name}: shape {shape}, declared {dims}")
            for d, n in zip(dims, shape):
                key = self.sizes.get(d) if isinstance(d, str) else None
                if key is None:
                    if int(d) != n:
                        raise ValueError(f"{name}: shape {shape}, declared {dims}")
                elif bound.setdefault(key, n) != n:
                    raise ValueError(f"{name}: size {d} is {n} here but {bound[key]} in another argument")
        return bound

    def gradient_of(self, name: str, array):
        r"""A compiled gradient (or a value of the derivation) back in the shape of the forward's
        argument ``name``: (1, n) → (n,) for a 1-D argument, a 1×1 array → a number for a scalar.

        .. math:: \frac{\partial L}{\partial b} = \mathbf{1}^\top G \in \mathbb{R}^{1 \times H} \;\mapsto\; \mathbb{R}^{H}"""
        spec = self.declared[name]
        array = np.asarray(array)
        if isinstance(spec, Labels):
            return array
        if len(spec) == 1:
            return array.reshape(-1)
        if len(spec) == 0:
            return float(array.reshape(-1)[0]) if array.size == 1 else array
        return array


class TracedFunction:
    r"""A traced derivation's compiled gradient. It takes the forward's own arguments (integer labels
    y of shape (N,), 1-D arrays) and turns them into the derivation's through :meth:`Traced.values`,
    or the derivation's own (one-hot Y, rows 1 × n) as they are; the gradients come back in the
    derivation's shapes (:meth:`Traced.gradient_of` gives the forward's).

    .. math:: y \mapsto Y_{ic} = [\,y_i = c\,]"""

    def __init__(self, compiled, graph: Traced):
        self.compiled, self.graph = compiled, graph
        self.__doc__ = compiled.__doc__

    def __call__(self, /, *args, **kwargs):
        declared = self.graph.declared
        if any(isinstance(declared.get(k), Labels) and np.ndim(v) == 1 for k, v in kwargs.items()):
            kwargs = self.graph.values(**kwargs)  # the forward's arguments: labels, 1-D rows
        return self.compiled(*args, **kwargs)

    def __getattr__(self, name):  # source, params, latex(), … of the compiled function
        if name == "compiled":
            raise AttributeError(name)
        return getattr(self.compiled, name)

    def __repr__(self) -> str:
        return repr(self.compiled)


def _size_symbol(d, cache: dict):
    if isinstance(d, bool) or not isinstance(d, (int, np.integer, str)):
        raise TypeError(f"a size must be an int or a name (text), got {d!r}")
    if isinstance(d, str):
        if not d.isidentifier():
            raise ValueError(f"a symbolic size must be a name like 'N', got {d!r}")
        if d not in cache:
            cache[d] = sp.Symbol(d, integer=True, positive=True)
        return cache[d]
    if int(d) < 1:
        raise ValueError(f"a size must be positive, got {d}")
    return sp.Integer(int(d))


def _stand_in(name: str, spec, sizes: dict):
    if isinstance(spec, Labels):
        n, C = _size_symbol(spec.n, sizes), _size_symbol(spec.classes, sizes)
        Y = sp.MatrixSymbol(name, n, C)
        return LabelTracer(name, Y), Y
    if not isinstance(spec, (tuple, list)):
        raise TypeError(f"{name}: a shape is a tuple of sizes, e.g. {name}=('N', 'D'), () for a scalar, "
                        f"or labels('N', classes='C'); got {spec!r}")
    dims = [_size_symbol(d, sizes) for d in spec]
    if len(dims) == 0:
        symbol = sp.Symbol(name, real=True)
        return Tracer(symbol, 0), symbol
    if len(dims) == 1:
        symbol = sp.MatrixSymbol(name, 1, dims[0])
        return Tracer(symbol, 1), symbol
    if len(dims) == 2:
        symbol = sp.MatrixSymbol(name, *dims)
        return Tracer(symbol, 2), symbol
    raise TypeError(f"{name}: trace takes scalars, 1-D and 2-D arrays; got {len(dims)} dimensions")


class _LocalsCatcher:
    """Watches the forward's local variables (sys.setprofile, without changing what it does): each
    stand-in the forward binds to a name, at any time, is remembered with that name (so that a loop
    ``h = np.tanh(h @ W)`` names every layer), and the locals at its return."""

    def __init__(self, code):
        self.code, self.locals, self.previous, self.failures = code, None, None, []
        self.bindings: dict = {}  # serial → (name, tracer), the first name each stand-in was bound to

    def __enter__(self):
        self.previous = sys.getprofile()
        sys.setprofile(self)
        return self

    def _note(self, frame) -> None:
        for name, value in frame.f_locals.items():
            if isinstance(value, Tracer) and value.serial not in self.bindings and not name.startswith("_"):
                self.bindings[value.serial] = (name, value)

    def __call__(self, frame, event, arg):
        caller = frame.f_back
        if event == "call" and caller is not None and caller.f_code is self.code:
            self._note(caller)  # the statements before this call have bound their names
        if event == "return" and frame.f_code is self.code and self.locals is None:
            self._note(frame)
            self.locals = dict(frame.f_locals)
        if event == "return" and frame in _PENDING_BLOCKS:
            try:
                _release_block(frame, arg)
            except TraceError as exc:
                self.failures.append(exc)
        if self.previous is not None:
            self.previous(frame, event, arg)

    def __exit__(self, *exc):
        sys.setprofile(self.previous)
        return False


def _code_of(forward) -> Any:
    target = forward
    while hasattr(target, "func") and not hasattr(target, "__code__"):  # functools.partial
        target = target.func
    return getattr(target, "__code__", None) or getattr(getattr(target, "__call__", None), "__code__", None)


def check_arguments(forward: Callable, shapes: Mapping[str, Any], caller: str = "trace") -> None:
    """Every argument of ``forward`` without a default has a shape, and every shape names an argument
    (else a TypeError naming them); a builtin without a signature is not checked."""
    try:
        params = inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return
    name = getattr(forward, "__name__", "forward")
    missing = [n for n, p in params.items() if p.default is p.empty and n not in shapes
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing:
        raise TypeError(f"{caller}({name}, ...): no shape for {', '.join(missing)} (give e.g. "
                        f"{missing[0]}=('N', 'D'), or () for a scalar)")
    extra = [n for n in shapes if n not in params]
    if extra and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        raise TypeError(f"{caller}({name}, ...): {', '.join(extra)} is not an argument of the forward "
                        f"(its arguments: {', '.join(params)})")


def trace(forward: Callable, **shapes: Any) -> Traced:
    r"""Call ``forward`` on symbolic stand-ins of the given shapes and return the graph it computes.

    .. math:: \texttt{forward}(x, W_1, \dots) \;\mapsto\; L(x, W_1, \dots) \text{ as a Graph of the
              forward's names, e.g. } h = \sigma(x W_1),\ \hat y = h W_2,\ L = \lVert \hat y - y \rVert^2

    ``shapes``: one keyword per argument of ``forward``: a tuple of sizes (ints or names:
    ``x=("N", "D")``; ``()`` a scalar; a 1-D ``("H",)`` a row 1 × H, broadcast over the rows), or
    :func:`labels` for integer class labels. Returns a :class:`Traced` graph: pass it to
    :func:`symgrad.derive` with ``wrt`` the argument names. Raises :class:`~symgrad.errors.TraceError`
    (with the forward's line) for calls trace cannot follow; see the module docstring for what it
    follows and the conventions."""
    if not callable(forward):
        raise TypeError(f"trace(forward, ...): forward must be a function, got {type(forward).__name__}")
    check_arguments(forward, shapes)
    sizes: dict = {}
    stand_ins, arguments = {}, {}
    for name, spec in shapes.items():
        stand_ins[name], arguments[name] = _stand_in(name, spec, sizes)
    clash = [name for name in shapes if name in sizes]
    if clash:  # an argument N and a size N would be one symbol: its gradient lost, its code broken
        raise ValueError(f"trace: the argument {clash[0]} has the name of the size {clash[0]!r} in the shapes "
                         f"(the two would be one symbol); rename the size, e.g. '{clash[0]}_size'")
    _SIZES.clear()
    _CONSTANTS.clear()
    for k, symbol in enumerate(sizes.values()):
        _SIZES[symbol] = Size(symbol, 1009 + 16 * k)
    code = _code_of(forward)
    try:
        with _LocalsCatcher(code) as catcher:
            out = forward(**stand_ins)
    except TraceError:
        raise
    except Exception as exc:
        pending = next(iter(_PENDING_BLOCKS), None)
        if pending is None:
            raise
        raise TraceError(f"symgrad.trace could not follow symgrad.nn.{pending.f_code.co_name} "
                         f"({type(exc).__name__}: {exc})") from exc
    finally:
        _SIZES.clear()
        _PENDING_BLOCKS.clear()
    if catcher.failures:
        raise catcher.failures[0]
    if isinstance(out, tuple):
        raise TraceError(f"{getattr(forward, '__name__', 'forward')} returns a tuple; trace follows a function "
                         "with one output (return the loss)")
    if isinstance(out, Size):
        out = out._scalar()
    if not isinstance(out, Tracer):
        raise TraceError(f"{getattr(forward, '__name__', 'forward')} returned {type(out).__name__}, not an array "
                         "computed from its arguments")
    if sizes:
        _refuse_placeholders(forward, code, stand_ins, sizes, out, list(_CONSTANTS))
    graph = _assemble(out, catcher, stand_ins, arguments, sizes)
    graph.function, graph.arguments, graph.sizes = forward, arguments, dict(sizes)
    graph.declared = dict(shapes)
    return graph


def _refuse_placeholders(forward, code, stand_ins: dict, sizes: dict, out: Tracer, constants: list) -> None:
    """Run the forward again at other placeholder sizes. A number that a concrete call made from a
    size (len(range(N)), np.ones(N).sum(), np.arange(N).size) differs between the two runs: it is
    refused at its line, so that a placeholder never reaches a result."""
    _SIZES.clear()
    _CONSTANTS.clear()
    for k, symbol in enumerate(sizes.values()):
        _SIZES[symbol] = Size(symbol, 1511 + 16 * k)  # never one of the first run's 1009 + 16 k
    again, failure = None, None
    try:
        with _LocalsCatcher(code):
            again = forward(**stand_ins)
    except Exception as exc:  # noqa: BLE001 - the first run succeeded: a size changed what it does
        failure = exc
    finally:
        _SIZES.clear()
        _PENDING_BLOCKS.clear()
    seen = list(_CONSTANTS)
    name = getattr(forward, "__name__", "forward")
    names = ", ".join(sizes)
    for k in range(max(len(constants), len(seen))):
        first, second = (constants[k] if k < len(constants) else None), (seen[k] if k < len(seen) else None)
        if first is None or second is None or first[0] != second[0]:
            line = (first or second)[1]
            raise TraceError(f"symgrad.trace cannot follow a number computed from the symbolic sizes ({names}) "
                             f"by a concrete call, or a random one (at {line}); use x.shape[0] itself (the size "
                             "N) in the arithmetic, not len(), range() or a NumPy array made from the sizes")
    again = again._scalar() if isinstance(again, Size) else again
    if failure is not None or not isinstance(again, Tracer) or again.expr != out.expr:
        why = f" ({type(failure).__name__}: {failure})" if failure is not None else ""
        raise TraceError(f"symgrad.trace cannot follow {name}: it computes something else at other values of "
                         f"the symbolic sizes ({names}): a value made from a size by a concrete call (len(), "
                         f"range(), a NumPy array of the sizes){why}; use x.shape[0] itself in the arithmetic")


def _assemble(out: Tracer, catcher: _LocalsCatcher, stand_ins: dict, arguments: dict, sizes: dict) -> Traced:
    """The output and the forward's named intermediates as a Graph, each node written through the
    names defined before it. A name bound to several values in turn (a loop's h) numbers the ones
    the graph uses: h1, h2, …; a value never bound to a name stays inside the node that uses it."""
    taken = {s.name for s in arguments.values()} | set(sizes)
    inputs = {id(v) for v in stand_ins.values()}
    bindings = dict(catcher.bindings)
    for name, value in (catcher.locals or {}).items():  # (a forward that is not a Python function)
        if isinstance(value, Tracer) and value.serial not in bindings and not name.startswith("_"):
            bindings[value.serial] = (name, value)
    order = sorted(((n, v) for n, v in bindings.values() if id(v) not in inputs and v.serial <= out.serial
                    and not (v.ndim == 0 and not v.expr.free_symbols)), key=lambda item: item[1].serial)
    if not order or order[-1][1] is not out:
        order.append((next(c for c in ("L", "loss", "f", "out") if c not in taken), out))
    # every node through the nodes before it (xreplace matches whole subtrees, largest first), under
    # provisional names; the final names once it is known which nodes the output uses
    replacements, nodes = {}, []  # nodes: (provisional symbol, base name, expr)
    for k, (name, tracer) in enumerate(order):
        full = tracer.expr
        if full in replacements and tracer is not out:
            continue  # two names for one value: the first one is the node
        expr = fold(full.xreplace(replacements)) if full not in replacements else replacements[full]
        label = f"_node{k}"
        symbol = sp.MatrixSymbol(label, *full.shape) if isinstance(full, sp.MatrixExpr) else sp.Symbol(label, real=True)
        nodes.append((symbol, name, expr))
        replacements.setdefault(full, symbol)
    used = {nodes[-1][0]}
    for symbol, _, expr in reversed(nodes):
        if symbol in used:
            used |= expr.free_symbols | expr.atoms(sp.MatrixSymbol)
    nodes = [node for node in nodes if node[0] in used]
    counts: dict = {}
    for _, name, _ in nodes:
        counts[name] = counts.get(name, 0) + 1
    seen: dict = {}
    renaming = {}
    for symbol, name, _ in nodes:
        seen[name] = seen.get(name, 0) + 1
        label = name if counts[name] == 1 else f"{name}{seen[name]}"
        k = 2
        while label in taken:  # a rebound argument (x = x - mu) or a size's name: x2, the second x
            label, k = f"{name}{k}", k + 1
        taken.add(label)
        renaming[symbol] = (sp.MatrixSymbol(label, *symbol.shape) if isinstance(symbol, sp.MatrixSymbol)
                            else sp.Symbol(label, real=True))
    final = [(renaming[symbol].name, expr.xreplace(renaming)) for symbol, _, expr in nodes]
    graph = Traced.__new__(Traced)
    Graph.__init__(graph, final)
    graph.inputs = [s for s in graph.inputs if s not in set(sizes.values())]  # a size is no variable: not a wrt
    return graph
