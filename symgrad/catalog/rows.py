"""Matrix blocks: SymPy matrix expressions for the catalog's vector blocks, and their NumPy kernels.

Elementwise functions of a matrix (``Elementwise``: σ(X W)), row-wise softmax and log softmax,
softmax cross-entropy, two-argument losses entry by entry (``Entrywise``), the fused forms the
compiler prints (``SoftmaxVJP``, ``SoftmaxMinusTargets``, …), and the stable NumPy / Array API
kernels they compile to. Each block declares its own adjoint (``adjoints(G)``); the chain rule that
calls them is in :mod:`symgrad.derivation.matrix_rules`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.hadamard import HadamardProduct
from sympy.matrices.expressions.matexpr import MatrixElement

from ..errors import SymgradLimit
from ..runtime import device

__all__ = ["Elementwise", "is_matrix_expression", "elementwise", "sq_frobenius", "ENTRY",
           "RowBlock", "RowSoftmax", "SoftmaxCrossEntropy", "row_softmax", "row_simplex_targets", "RowLogSoftmax",
           "vector_softmax", "RowLogMeanExp", "RowSoftmaxCrossEntropy", "Entrywise", "SoftmaxMinusTargets",
           "SoftmaxVJP", "LogSoftmaxVJP"]

ENTRY = sp.Symbol("_entry", real=True)  # the bound variable of every elementwise function (equal terms stay equal)


def is_matrix_expression(expr: sp.Basic) -> bool:
    """Whether ``expr`` involves symbolic matrices (MatrixSymbol)."""
    return isinstance(expr, sp.MatrixExpr) or bool(expr.atoms(sp.MatrixSymbol))


class Elementwise(ElementwiseApplyFunction):
    """f applied to every entry of a matrix: SymPy's ElementwiseApplyFunction, printed the way it
    is written (sigmoid(X*W), not a Lambda of an internal variable). A constant function is its
    constant everywhere: (x ↦ c)(X) = c·1 (a matrix of the shape of X, never a bare number)."""

    def __new__(cls, function, expr):
        body, variables = function.expr, function.variables
        if not body.has(*variables):
            return body * sp.OneMatrix(*expr.shape)
        return super().__new__(cls, function, expr)

    def _sympystr(self, printer):
        body, (var,) = self.function.expr, self.function.variables
        if isinstance(body, sp.Function) and body.args == (var,):
            return f"{printer._print(sp.Symbol(type(body).__name__))}({printer._print(self.expr)})"
        taken = {getattr(a, "name", "") for a in self.atoms(sp.Symbol, sp.MatrixSymbol)}
        u = sp.Symbol(next(n for n in ("u", "v", "s", "r", "q", "p", "u0", "u1", "u2") if n not in taken))
        return f"({u} -> {printer._print(body.xreplace({var: u}))})({printer._print(self.expr)})"


def elementwise(function: Callable, arg: sp.MatrixExpr) -> sp.MatrixExpr:
    """f applied to every entry of a matrix expression: σ(X W) as a matrix."""
    return Elementwise(sp.Lambda(ENTRY, function(ENTRY)), arg)


def sq_frobenius(A: sp.MatrixExpr) -> sp.Expr:
    """‖A‖² = Σ_ij A_ij² = tr(Aᵀ A) (for a vector: ‖a‖² = aᵀa)."""
    return sp.Trace(A.T * A)


# --- row-wise softmax and its cross-entropy (matrix blocks) --------------------------------------
def row_shift_np(Z, xp=np):
    """(m, Z − m) by rows, m the row maximum: e^{Z − m} never overflows. A row whose maximum is +inf
    gets 0 at its +inf entries and −inf elsewhere (the limit: softmax([inf, 0]) = [1, 0]); NaN stays
    NaN, and a row of −inf, which has no limit, gives NaN."""
    if isinstance(Z, np.ndarray):
        m = Z.max(axis=-1, keepdims=True)
        if np.isfinite(m).all():  # one number per row: cheap
            return m, Z - m
        with np.errstate(invalid="ignore"):  # inf − inf, replaced by the limit
            shifted = Z - m
        np.copyto(shifted, 0.0, where=(Z == m) & (m > 0))
        return m, shifted
    m = xp.max(Z, axis=-1, keepdims=True)
    return m, xp.where((Z == m) & (m > 0), 0.0, Z - m)


def row_softmax_np(Z, xp=np):
    """softmax over the last axis, shifted by the row maximum (never overflows; +inf entries take
    the whole mass)."""
    e = row_shift_np(Z, xp)[1]
    if isinstance(e, np.ndarray):
        np.exp(e, out=e)
        e /= e.sum(axis=-1, keepdims=True)
        return e
    e = xp.exp(e)
    return e / xp.sum(e, axis=-1, keepdims=True)


def softmax_cross_entropy_np(Z, Y, xp=np):
    """−Σ_ij Y_ij log softmax(Z)_ij with the log-sum-exp shift."""
    return -xp.sum(Y * row_log_softmax_np(Z, xp=xp), axis=(-2, -1))


class RowBlock(sp.MatrixExpr):
    """A block applied to each row of a matrix expression (shape kept)."""

    numpy_form = None
    name = ""

    def __new__(cls, arg):
        return super().__new__(cls, arg)

    @property
    def arg(self):
        return self.args[0]

    @property
    def shape(self):
        return self.arg.shape

    def _sympystr(self, printer):
        return f"{self.name}({printer._print(self.arg)})"

    def _symgrad_numpy(self, printer):
        return printer.print_block(self)

    def _entry(self, i, j, **kwargs):
        """An entry stays an entry of the block (SymPy's (yᵀ log softmax(z))[0, 0] is then a sum over
        the block's entries, which ``as_scalar`` writes back as the product)."""
        return MatrixElement(self, i, j)

    @staticmethod
    def explicit_row(row: list) -> list:  # pragma: no cover - every row block declares it
        raise NotImplementedError

    def adjoint(self, G):  # pragma: no cover - every row block declares it
        raise NotImplementedError

    def adjoints(self, G) -> list:
        """(argument, its adjoint) for each argument the block is differentiable in."""
        return [(self.arg, self.adjoint(G))]

    def doit(self, **hints):
        arg = self.arg.doit(**hints) if hints.get("deep", True) else self.arg
        if isinstance(arg, sp.MatrixBase):
            return sp.ImmutableMatrix([self.explicit_row(list(arg.row(i))) for i in range(arg.rows)])
        return type(self)(arg)


def _softmax_row(row: list) -> list:
    e = [sp.exp(v) for v in row]
    return [v / sp.Add(*e) for v in e]


class RowSoftmax(RowBlock):
    r"""A = softmax(Z) row by row (Z: N × C);  G_Z = A ∘ (G − (G ∘ A) 1_{C×C})."""

    numpy_form = staticmethod(row_softmax_np)
    name = "softmax"

    def adjoint(self, G):
        C = self.shape[1]
        return HadamardProduct(self, sp.MatAdd(G, sp.MatMul(-1, HadamardProduct(G, self), sp.OneMatrix(C, C))))

    explicit_row = staticmethod(_softmax_row)

    def _latex(self, printer, **kwargs):
        return rf"\operatorname{{softmax}}\left({printer._print(self.arg)}\right)"


class SoftmaxCrossEntropy(sp.Function):
    r"""L = −Σ_ij Y_ij log softmax(Z)_ij (rows of Y one-hot or probabilities);
    ∂L/∂Z = softmax(Z) − Y, the textbook identity (it uses Σ_j Y_ij = 1)."""

    nargs = 2
    numpy_form = staticmethod(softmax_cross_entropy_np)

    @classmethod
    def eval(cls, Z, Y):
        if isinstance(Z, sp.MatrixBase) and isinstance(Y, sp.MatrixBase):
            A = RowSoftmax(Z).doit()
            return -sp.Add(*[Y[i, j] * sp.log(A[i, j]) for i in range(Z.rows) for j in range(Z.cols)])
        return None

    def gradient(self, wrt_index: int):
        Z, Y = self.args
        if wrt_index == 0:
            return sp.MatAdd(RowSoftmax(Z), sp.MatMul(-1, Y))
        raise SymgradLimit("the gradient of a cross-entropy with respect to its targets is not supported")

    def _latex(self, printer, exp=None):
        Z, Y = self.args
        return rf"\operatorname{{CE}}\left(\operatorname{{softmax}}\left({printer._print(Z)}\right), {printer._print(Y)}\right)"

    def _symgrad_numpy(self, printer):
        return printer.print_block(self)


def row_softmax(Z: sp.MatrixExpr, log: bool = False) -> sp.MatrixExpr:
    """softmax (or log softmax) over the rows of a matrix expression; a column vector
    (C × 1) is one vector of C entries."""
    if Z.shape[1] == 1 and Z.shape[0] != 1:
        return vector_softmax(Z, log=log)
    return RowLogSoftmax(Z) if log else RowSoftmax(Z)


def row_simplex_targets(expr: sp.Basic) -> list:
    """Target matrices whose rows the blocks in ``expr`` take to lie on the simplex."""
    return [atom.args[1] for atom in expr.atoms(SoftmaxCrossEntropy, RowSoftmaxCrossEntropy)]


def log_sum_shifted_np(shifted, xp=np):
    """log Σ_j e^{s_j} for rows whose maximum is 0, as log1p of the sum without one maximum: a sum
    close to 1 keeps its digits (log(1 + 4.2e−18) is 4.2e−18, not 0). NumPy rows whose sums are all
    at least 1.5 take log of the sum (nothing to lose there)."""
    e = xp.exp(shifted)
    if isinstance(e, np.ndarray):
        total = e.sum(axis=-1, keepdims=True)
        if total.min() >= 1.5:  # NaN compares False: the careful path
            return np.log(total, out=total)
    top = xp.argmax(shifted, axis=-1, keepdims=True)
    return xp.log1p(_without_top(e, top, xp))


def row_log_softmax_np(Z, xp=np):
    """log softmax over the last axis: (Z − m) − log1p(Σ_{j ≠ argmax} e^{Z_j − m}), m = max Z."""
    shifted = row_shift_np(Z, xp)[1]
    return shifted - log_sum_shifted_np(shifted, xp=xp)


class RowLogSoftmax(RowBlock):
    r"""log softmax(Z) row by row;  G_Z = G − softmax(Z) ∘ (G 1_{C×C})."""

    numpy_form = staticmethod(row_log_softmax_np)
    name = "log_softmax"

    def adjoint(self, G):
        C = self.shape[1]
        return sp.MatAdd(G, sp.MatMul(-1, HadamardProduct(RowSoftmax(self.arg), sp.MatMul(G, sp.OneMatrix(C, C)))))

    explicit_row = staticmethod(lambda row: [sp.log(v) for v in _softmax_row(row)])

    def _latex(self, printer, **kwargs):
        return rf"\log\operatorname{{softmax}}\left({printer._print(self.arg)}\right)"


# --- two-argument primitives entry by entry (a loss against per-entry targets) ------------------
class Entrywise(sp.MatrixExpr):
    """f(A_ij, B_ij) for a two-argument catalog primitive f (``function``), B a target that varies
    per entry (BCE on logits against labels y). G_A = G ∘ ``partial(A, B)``, another Entrywise block
    (so that the stable fused form is printed); G_B = G ∘ ∂f/∂b when that is affine in a (−A for
    BCE on logits). Subclasses declare ``function``, ``numpy_form`` and ``partial``."""

    function = None  # the scalar Primitive
    numpy_form = None

    def __new__(cls, A, B):
        return super().__new__(cls, A, B)

    @property
    def shape(self):
        return self.args[0].shape

    @staticmethod
    def partial(A, B):  # pragma: no cover - every differentiated subclass declares it
        raise NotImplementedError

    def adjoints(self, G) -> list:
        A, B = self.args
        out = [(A, HadamardProduct(G, self.partial(A, B)))]
        a, b = sp.Dummy("a"), sp.Dummy("b")
        d = sp.expand(self.function(a, b).diff(b))
        if d.free_symbols <= {a} and sp.diff(d, a, 2) == 0:  # c₁ a + c₀ entry by entry
            c1, c0 = d.coeff(a, 1), d.coeff(a, 0)
            terms = ([sp.MatMul(c1, HadamardProduct(G, A))] if c1 != 0 else []) + ([sp.MatMul(c0, G)] if c0 != 0 else [])
            if terms:
                out.append((B, sp.MatAdd(*terms) if len(terms) > 1 else terms[0]))
        elif d != 0:
            raise SymgradLimit(f"the gradient of {self.function.__name__} in its second argument is not affine: {d}")
        return out

    def doit(self, **hints):
        A, B = (a.doit(**hints) for a in self.args)
        if isinstance(A, sp.MatrixBase) and isinstance(B, sp.MatrixBase):
            return sp.ImmutableMatrix(A.rows, A.cols, [self.function(a, b) for a, b in zip(A, B)])
        return type(self)(A, B)

    def _sympystr(self, printer):
        return f"{self.function.__name__}({printer._print(self.args[0])}, {printer._print(self.args[1])})"

    def _latex(self, printer, **kwargs):
        A, B = (printer._print(a) for a in self.args)
        return rf"{self.function.latex_name or self.function.__name__}\left({A}, {B}\right)"

    def _symgrad_numpy(self, printer):
        return printer.print_block(self)


# --- per-row reductions (N × C → N × 1): the per-sample losses of symgrad.nn ---------------------
def row_log_mean_exp_np(Z, xp=np):
    """log((1/C) Σ_j exp(Z_ij)) over the last axis (keeping it) = m + log1p(Σ_{j ≠ max} expm1(Z_j − m) / C),
    m the row maximum: no overflow, and no cancellation against log C when the entries are close."""
    m, shifted = row_shift_np(Z, xp)
    top = xp.argmax(shifted, axis=-1, keepdims=True)
    return m + xp.log1p(_without_top(xp.expm1(shifted), top, xp) / Z.shape[-1])


class RowLogMeanExp(RowBlock):
    r"""log((1/C) Σ_j exp(Z_ij)) for each row (N × C → N × 1);  G_Z = softmax(Z) ∘ (G 1ᵀ_C)."""

    numpy_form = staticmethod(row_log_mean_exp_np)
    name = "log_mean_exp"

    @property
    def shape(self):
        return (self.arg.shape[0], sp.S.One)

    def adjoint(self, G):
        return HadamardProduct(RowSoftmax(self.arg), sp.MatMul(G, sp.OneMatrix(1, self.arg.shape[1])))

    explicit_row = staticmethod(lambda row: [sp.log(sp.Add(*[sp.exp(v) for v in row]) / len(row))])

    def _latex(self, printer, **kwargs):
        return rf"\log \operatorname{{mean}} \exp\left({printer._print(self.arg)}\right)"


def _spread_rows(Z):
    """For NumPy: e = e^{Z − m} and its row sums when every row sum is at least 1.5 (the row maximum's
    share a_max ≤ 2/3: the textbook forms lose no digits); None otherwise (NaN, ±inf, a peaked row)."""
    m = Z.max(axis=-1, keepdims=True)
    if not -np.inf < m.sum() < np.inf:  # a row maximum ±inf or NaN (one reduction: cheap)
        return None
    e = Z - m
    np.exp(e, out=e)
    total = e.sum(axis=-1, keepdims=True)
    return (e, total) if total.min() >= 1.5 else None


def _plain_numpy(Z, G) -> bool:
    return isinstance(Z, np.ndarray) and isinstance(G, np.ndarray) and G.shape == Z.shape and Z.dtype.kind == "f"


def softmax_minus_targets_np(Z, Y, xp=np):
    """softmax(Z) − Y by rows, without cancellation where softmax(Z)_j ≈ Y_j = 1: at the row maximum
    it is (1 − y) − r/(1 + r) with r = Σ_{j ≠ max} e^{Z_j − m}; elsewhere softmax ≤ 1/2."""
    spread = _spread_rows(Z) if _plain_numpy(Z, Y) else None
    if spread is not None:
        e, total = spread
        e /= total
        e -= Y
        return e
    top, e, r = _top_split(Z, xp)
    e /= 1.0 + r  # softmax(Z), in place for NumPy
    e -= Y
    y_top = _at_top(xp.broadcast_to(Y, e.shape), top, xp)
    return _set_top(e, top, (1.0 - y_top) - r / (1.0 + r), xp)


def _top_split(Z, xp=np):
    """Rows shifted by their maximum, the maximum's index, e^{shifted} and r = Σ_{j ≠ max} e^{shifted_j}."""
    shifted = row_shift_np(Z, xp)[1]
    top = xp.argmax(shifted, axis=-1, keepdims=True)
    e = np.exp(shifted, out=shifted) if isinstance(shifted, np.ndarray) else xp.exp(shifted)
    return top, e, _without_top(e, top, xp)


def _is_top(values, top, xp):
    """True at ``top`` in each row (for namespaces without put_along_axis)."""
    positions = xp.arange(values.shape[-1], device=device(values))
    return xp.reshape(positions, (1,) * (values.ndim - 1) + (-1,)) == top


def _without_top(values, top, xp=np):
    """Σ_j of ``values`` over each row without the entry at ``top``."""
    if isinstance(values, np.ndarray):
        saved = np.take_along_axis(values, top, axis=-1)
        np.put_along_axis(values, top, 0.0, axis=-1)
        total = np.sum(values, axis=-1, keepdims=True)
        np.put_along_axis(values, top, saved, axis=-1)
        return total
    return xp.sum(xp.where(_is_top(values, top, xp), 0.0, values), axis=-1, keepdims=True)


def _at_top(values, top, xp=np):
    """The entry at ``top`` of each row (keeping the axis)."""
    if isinstance(values, np.ndarray):
        return np.take_along_axis(values, top, axis=-1)
    return xp.sum(xp.where(_is_top(values, top, xp), values, 0.0), axis=-1, keepdims=True)


def _set_top(values, top, new, xp=np):
    if isinstance(values, np.ndarray):
        np.put_along_axis(values, top, new, axis=-1)
        return values
    return xp.where(_is_top(values, top, xp), new, values)


def softmax_vjp_np(Z, G, xp=np):
    """softmax(Z) ∘ (G − Σ_k G_k a_k) by rows (the softmax backward), accurate where a_max ≈ 1: with
    q = Σ_{k ≠ max} a_k and s = Σ_{k ≠ max} G_k a_k, G_j − Σ_k G_k a_k = G_j − G_max + (G_max q − s),
    so 1 − a_max is never formed."""
    spread = _spread_rows(Z) if _plain_numpy(Z, G) else None
    if spread is not None:  # a_max ≤ 2/3: the textbook form, in place
        a, total = spread
        a /= total
        out = G * a
        s = out.sum(axis=-1, keepdims=True)
        np.subtract(G, s, out=out)
        out *= a
        return out
    G = xp.broadcast_to(G, Z.shape) if G.shape != Z.shape else G
    top, e, r = _top_split(Z, xp)
    a = e / (1.0 + r)
    q = r / (1.0 + r)
    g_top = _at_top(G, top, xp)
    s = _without_top(G * a, top, xp)
    return a * ((G - g_top) + (g_top * q - s))


def log_softmax_vjp_np(Z, G, xp=np):
    """G − softmax(Z) Σ_k G_k by rows (the log-softmax backward), accurate where a_max ≈ 1: at the
    maximum G_max − a_max S = −Σ_{k ≠ max} G_k + q S, q = Σ_{k ≠ max} a_k."""
    spread = _spread_rows(Z) if _plain_numpy(Z, G) else None
    if spread is not None:  # a_max ≤ 2/3: the textbook form, in place
        a, s = spread
        a /= s
        a *= -G.sum(axis=-1, keepdims=True)
        a += G
        return a
    G = xp.broadcast_to(G, Z.shape) if G.shape != Z.shape else G
    top, e, r = _top_split(Z, xp)
    a = e / (1.0 + r)
    total = xp.sum(G, axis=-1, keepdims=True)
    out = G - a * total
    return _set_top(out, top, -_without_top(G, top, xp) + r / (1.0 + r) * total, xp)


class SoftmaxVJP(RowBlock):
    r"""softmax(Z) ∘ (G − (G ∘ softmax(Z)) 1 1ᵀ), computed without 1 − a_max (the compiler's fused form)."""

    numpy_form = staticmethod(softmax_vjp_np)
    name = "softmax_vjp"

    def __new__(cls, Z, G):
        return sp.MatrixExpr.__new__(cls, Z, G)

    def _sympystr(self, printer):
        return f"softmax_vjp({printer._print(self.args[0])}, {printer._print(self.args[1])})"

    def doit(self, **hints):
        return type(self)(*(a.doit(**hints) for a in self.args))


class LogSoftmaxVJP(SoftmaxVJP):
    r"""G − softmax(Z) ∘ (G 1 1ᵀ), computed without 1 − a_max (the compiler's fused form)."""

    numpy_form = staticmethod(log_softmax_vjp_np)
    name = "log_softmax_vjp"

    def _sympystr(self, printer):
        return f"log_softmax_vjp({printer._print(self.args[0])}, {printer._print(self.args[1])})"


class SoftmaxMinusTargets(RowBlock):
    r"""softmax(Z) − Y (N × C), the cross-entropy gradient, computed without cancellation."""

    numpy_form = staticmethod(softmax_minus_targets_np)
    name = "softmax_minus_targets"

    def __new__(cls, Z, Y):
        return sp.MatrixExpr.__new__(cls, Z, Y)

    def _sympystr(self, printer):
        return f"softmax({printer._print(self.args[0])}) - {printer._print(self.args[1])}"

    def doit(self, **hints):
        Z, Y = (a.doit(**hints) for a in self.args)
        if isinstance(Z, sp.MatrixBase) and isinstance(Y, sp.MatrixBase):
            return RowSoftmax(Z).doit() - Y
        return type(self)(Z, Y)

    def _latex(self, printer, **kwargs):
        Z, Y = (printer._print(a) for a in self.args)
        return rf"\operatorname{{softmax}}\left({Z}\right) - {Y}"


def row_softmax_cross_entropy_np(Z, Y, xp=np):
    """−Σ_j Y_ij log softmax(Z)_ij for each row (keeping the last axis), with the shift; a target
    0 against log softmax = −inf (a row with a +inf logit) counts 0 (the limit), not NaN."""
    logs = row_log_softmax_np(Z, xp=xp)
    if isinstance(logs, np.ndarray):
        with np.errstate(invalid="ignore"):  # 0 · (−inf), replaced by the limit 0
            terms = Y * logs
        if np.isnan(terms).any():
            np.copyto(terms, 0.0, where=(Y == 0) & np.isinf(logs))
    else:
        terms = xp.where((Y == 0) & (logs == -np.inf), 0.0, Y * logs)
    return -xp.sum(terms, axis=-1, keepdims=True)


class RowSoftmaxCrossEntropy(RowBlock):
    r"""L_i = −Σ_j Y_ij log softmax(Z)_ij for each row (N × C → N × 1), rows of Y one-hot or
    probabilities;  G_Z = (softmax(Z) − Y) ∘ (G 1ᵀ_C), the textbook identity (it uses Σ_j Y_ij = 1)."""

    numpy_form = staticmethod(row_softmax_cross_entropy_np)
    name = "softmax_cross_entropy"

    def __new__(cls, Z, Y):
        return sp.MatrixExpr.__new__(cls, Z, Y)

    @property
    def shape(self):
        return (self.arg.shape[0], sp.S.One)

    def _sympystr(self, printer):
        return f"{self.name}({printer._print(self.args[0])}, {printer._print(self.args[1])})"

    def adjoint(self, G):
        Z, Y = self.args
        return HadamardProduct(sp.MatAdd(RowSoftmax(Z), sp.MatMul(-1, Y)), sp.MatMul(G, sp.OneMatrix(1, Z.shape[1])))

    def adjoints(self, G) -> list:
        Z, Y = self.args  # ∂L_i/∂Y_ij = −log softmax(Z)_ij (as torch differentiates probability targets)
        spread = sp.MatMul(G, sp.OneMatrix(1, Z.shape[1]))
        return [(Z, self.adjoint(G)), (Y, sp.MatMul(-1, HadamardProduct(RowLogSoftmax(Z), spread)))]

    def doit(self, **hints):
        Z, Y = (a.doit(**hints) for a in self.args)
        if isinstance(Z, sp.MatrixBase) and isinstance(Y, sp.MatrixBase):
            rows = [[-sp.Add(*[y * sp.log(a) for y, a in zip(Y.row(i), _softmax_row(list(Z.row(i))))])]
                    for i in range(Z.rows)]
            return sp.ImmutableMatrix(rows)
        return type(self)(Z, Y)

    def _latex(self, printer, **kwargs):
        Z, Y = self.args
        return rf"\operatorname{{CE}}\left(\operatorname{{softmax}}\left({printer._print(Z)}\right), {printer._print(Y)}\right)"


def vector_softmax(z: sp.MatrixExpr, log: bool = False) -> sp.MatrixExpr:
    """softmax (or log softmax) of a column vector z (C × 1): the row block on zᵀ, transposed."""
    block = RowLogSoftmax if log else RowSoftmax
    return sp.Transpose(block(sp.Transpose(z)))


