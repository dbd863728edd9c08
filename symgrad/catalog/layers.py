"""Layers: dense, Lp pooling, log-average pooling and ‖Wx‖². Written through SymPy and the
primitives, over vectors and matrices of symbolic size (MatrixSymbol: the vectorized textbook
forms 2Wxxᵀ, Wᵀg), over explicit entries, or (pooling) over an ``IndexedBase`` with a size n."""

from __future__ import annotations

import numpy as np
import sympy as sp

from .activations import Maxout, SoftmaxEntry
from .base import Primitive
from .registry import Arg, Batched, Block, Choice, Example, Interval, N, ones, register, size
from .vectors import as_vector, column, is_symbolic, matrix, scalar, to_sympy, vector
from .rows import RowSoftmax, RowBlock
from .rows import RowLogMeanExp
from .rows import sq_frobenius

__all__ = ["dense", "lp_pool", "log_avg_pool", "sq_norm_linear", "pool_index",
           "dropout", "max_pool", "logsumexp", "LogSumExp", "RowMax", "RowLogSumExp"]

pool_index = sp.Symbol("i", integer=True, positive=True)  # the summation index of pooled sums


def dense(W, x, b=None) -> sp.Matrix:
    """z = W x + b for a matrix W (m × n), a vector x (n) and a bias vector b (m) — explicit
    matrices, or MatrixSymbol expressions."""
    if is_symbolic(W):
        return W * x if b is None else W * x + b
    if not isinstance(W, sp.MatrixBase):
        raise TypeError("dense: W must be a sympy Matrix, e.g. symgrad.matrix('W', 2, 3)")
    x = as_vector(x, "dense input x")
    if W.cols != len(x):
        raise ValueError(f"dense: W is {W.rows}×{W.cols} but x has {len(x)} entries")
    z = W * x
    if b is not None:
        b = as_vector(b, "dense bias b")
        if len(b) != W.rows:
            raise ValueError(f"dense: W has {W.rows} rows but b has {len(b)} entries")
        z = z + b
    return z


def _pooled_sum(x, term, n, what: str) -> tuple[sp.Expr, sp.Expr]:
    """(Σ_i term(x_i), n) over explicit entries or over x[i], i = 1..n (IndexedBase)."""
    if isinstance(x, sp.IndexedBase):
        if n is None:
            raise ValueError(f"{what}: an IndexedBase input needs its size, e.g. n=Symbol('n', integer=True, positive=True)")
        n = to_sympy(n, "n")
        return sp.Sum(term(x[pool_index]), (pool_index, 1, n)), n
    entries = as_vector(x, f"{what} input")
    return sp.Add(*[term(e) for e in entries]), sp.Integer(len(entries))


def _column(x, what: str) -> sp.MatrixExpr:
    if x.shape[1] != 1:
        raise ValueError(f"{what}: x must be a column vector (n × 1), got {x.shape[0]}×{x.shape[1]}")
    return x


def lp_pool(x, p, n=None) -> sp.Expr:
    """y = (Σ_i x_i^p)^{1/p} for positive inputs x (entries, IndexedBase with size n, or a
    column vector x of symbolic size: (1ᵀ x^{∘p})^{1/p})."""
    p = to_sympy(p, "p")
    if is_symbolic(x):
        x = _column(x, "lp_pool")
        return scalar(ones(1, x.shape[0]) * sp.HadamardPower(x, p)) ** (1 / p)
    total, _ = _pooled_sum(x, lambda e: e ** p, n, "lp_pool")
    return total ** (1 / p)


def log_avg_pool(x, beta, n=None) -> sp.Expr:
    """y = (1/β) log((1/n) Σ_i exp(β x_i)) (entries, IndexedBase with size n, or a column
    vector x of symbolic size: its gradient is softmax(βx))."""
    beta = to_sympy(beta, "beta")
    if is_symbolic(x):

        return scalar(RowLogMeanExp(beta * _column(x, "log_avg_pool").T)) / beta
    total, count = _pooled_sum(x, lambda e: sp.exp(beta * e), n, "log_avg_pool")
    return sp.log(total / count) / beta


def sq_norm_linear(W, x) -> sp.Expr:
    """f(x, W) = ‖W x‖² = Σ_i (W x)_i²: the seeds' vectorized example (explicit or MatrixSymbol)."""
    if is_symbolic(W):

        return sq_frobenius(W * x)
    q = dense(W, x)
    return sp.Add(*[qi ** 2 for qi in q])


# --- batched forms (rows = samples) for symgrad.nn ------------------------------------------------
def _dense_batched() -> Batched:
    """z = W x + b for each sample x (a row of X, N × D): Z = X Wᵀ + 1 bᵀ."""
    D, H = size("D"), size("H")
    W, X, b = sp.MatrixSymbol("W", H, D), sp.MatrixSymbol("x", N, D), sp.MatrixSymbol("b", 1, H)
    return Batched(X * W.T + ones(N, 1) * b, (Arg("W", W, "weight"), Arg("x", X, "rows"), Arg("b", b, "row")),
                   ("W", "x", "b"))


def _pool_batched(kind: str) -> Batched:
    """(Σ_i x_i^p)^{1/p}, or (1/β) log((1/C) Σ_i e^{β x_i}), per row."""

    C = size("C")
    X = sp.MatrixSymbol("x", N, C)
    if kind == "lp":
        p = sp.Symbol("p", positive=True)
        forward = sp.HadamardPower(sp.HadamardPower(X, p) * ones(C, 1), 1 / p)
        return Batched(forward, (Arg("x", X, "rows"), Arg("p", p, "param")), ("x",))
    beta = sp.Symbol("beta", positive=True)
    forward = RowLogMeanExp(beta * X) / beta
    return Batched(forward, (Arg("x", X, "rows"), Arg("beta", beta, "param")), ("x",))


def _sq_norm_batched() -> Batched:
    """‖W x‖² for each sample x (a row of X): the row sums of (X Wᵀ) ∘ (X Wᵀ)."""
    D, H = size("D"), size("H")
    W, X = sp.MatrixSymbol("W", H, D), sp.MatrixSymbol("x", N, D)
    Q = X * W.T
    return Batched(sp.HadamardProduct(Q, Q) * ones(H, 1), (Arg("W", W, "weight"), Arg("x", X, "rows")), ("W", "x"))


# --- examples: vectors of symbolic size (m, n); ``entries``: the same on a grid of entries --------
def _dense_example(entries: bool = False) -> Example:
    m, n = size("m"), size("n")
    W, x, b, g = ((matrix("W", 2, 3), vector("x", 3), vector("b", 2), vector("g", 2)) if entries else
                  (sp.MatrixSymbol("W", m, n), column("x", n), column("b", m), column("g", m)))
    return Example(dense(W, x, b), (W, x, b), {"W": W, "x": x, "b": b, "g": g}, upstream=g)


register(Block(
    name="dense", domain="W in R^{m x n}, x in R^n, b in R^m", family="layer",
    formula="dense(W, x, b) = W x + b",
    latex=r"\mathbf{z} = W\mathbf{x} + \mathbf{b}",
    derivative=r"\frac{\partial L}{\partial W} = \mathbf{g}\,\mathbf{x}^{\top},\quad"
               r" \frac{\partial L}{\partial \mathbf{x}} = W^{\top}\mathbf{g},\quad"
               r" \frac{\partial L}{\partial \mathbf{b}} = \mathbf{g}"
               r" \quad (\mathbf{g} = \partial L / \partial \mathbf{z})",
    example=_dense_example,
    entries=lambda: _dense_example(entries=True),
    batched=lambda: _dense_batched(),
))


def _lp_example(entries: bool = False) -> Example:
    n, up, p = size("n"), sp.Symbol("y'", real=True), sp.Symbol("p", positive=True)
    x = vector("x", 3, positive=True) if entries else sp.MatrixSymbol("x", n, 1)
    return Example(up * lp_pool(x, p), (x,), {"x": x, "p": p, "y'": up},
                   domain={x if not entries else tuple(x): Interval(0.1, 3.0), p: Interval(1.0, 4.0)})


register(Block(
    name="lp_pool", domain="x in R^n, x_i > 0, p >= 1", family="layer",
    formula="lp_pool(x, p) = (sum_i x_i^p)^(1/p)",
    latex=r"y = \Bigl(\sum_{i=1}^{n} x_i^{p}\Bigr)^{1/p}",
    derivative=r"\frac{\partial L}{\partial \mathbf{x}} = y' \bigl(\mathbf{1}^{\top}\mathbf{x}^{\circ p}\bigr)^{\frac{1-p}{p}}"
               r" \mathbf{x}^{\circ (p-1)}, \quad x_k' = y' \, x_k^{p-1} \Bigl(\sum_{i} x_i^{p}\Bigr)^{\frac{1-p}{p}}",
    example=_lp_example,
    entries=lambda: _lp_example(entries=True),
    batched=lambda: _pool_batched("lp"),
))


def _log_avg_example(entries: bool = False) -> Example:
    n, up, beta = size("n"), sp.Symbol("y'", real=True), sp.Symbol("beta", positive=True)
    x = vector("x", 3) if entries else column("x", n)
    return Example(up * log_avg_pool(x, beta), (x,), {"x": x, "beta": beta, "y'": up},
                   domain={beta: Interval(0.2, 3.0)})


register(Block(
    name="log_avg_pool", domain="x in R^n, beta > 0", family="layer",
    formula="log_avg_pool(x, beta) = (1/beta) log((1/n) sum_i exp(beta x_i))",
    latex=r"y = \frac{1}{\beta}\log\Bigl(\frac{1}{n}\sum_{i=1}^{n} e^{\beta x_i}\Bigr)",
    derivative=r"\frac{\partial L}{\partial \mathbf{x}} = y' \operatorname{softmax}(\beta\mathbf{x}),"
               r" \quad x_k' = y' \, \frac{e^{\beta x_k}}{\sum_{i} e^{\beta x_i}}",
    example=_log_avg_example,
    entries=lambda: _log_avg_example(entries=True),
    batched=lambda: _pool_batched("log_avg"),
))


def _sq_norm_example(entries: bool = False) -> Example:
    m, n = size("m"), size("n")
    W, x = (matrix("W", 2, 2), vector("x", 2)) if entries else (sp.MatrixSymbol("W", m, n), column("x", n))
    return Example(sq_norm_linear(W, x), (W, x), {"W": W, "x": x})


register(Block(
    name="sq_norm_linear", domain="W in R^{m x n}, x in R^n", family="layer",
    formula="sq_norm_linear(W, x) = ||W x||^2",
    latex=r"f(\mathbf{x}, W) = \lVert W\mathbf{x} \rVert^2 = \sum_i (W\mathbf{x})_i^2",
    derivative=r"\frac{\partial f}{\partial W} = 2 W\mathbf{x}\mathbf{x}^{\top},\quad"
               r" \frac{\partial f}{\partial \mathbf{x}} = 2 W^{\top} W \mathbf{x}",
    example=_sq_norm_example,
    entries=lambda: _sq_norm_example(entries=True),
    batched=_sq_norm_batched,
))


# === dropout with a given mask, max pooling, log-sum-exp ======================================
def dropout(x, mask, p=sp.S.Half) -> sp.Expr:
    """x · mask/(1 − p) for a given mask (0 = dropped, 1 = kept) and drop probability p ∈ [0, 1):
    torch's dropout in training mode with its random mask made an input. The mask is data."""
    return to_sympy(x, "x") * to_sympy(mask, "mask") / (1 - to_sympy(p, "p"))


_x, _mask, _p = sp.Symbol("x", real=True), sp.Symbol("mask", real=True), sp.Symbol("p", nonnegative=True)
register(Block(
    name="dropout", domain="x real, mask in {0, 1} (data, not differentiated), p in [0, 1)", family="layer",
    params={"p": 0.5},
    formula="dropout(x, mask, p=0.5) = x*mask/(1 - p)   (the mask is given and not differentiated)",
    latex=r"y = \frac{m\,x}{1 - p},\quad m \in \{0, 1\}",
    derivative=r"\frac{\partial y}{\partial x} = \frac{m}{1 - p}",
    example=lambda: Example(dropout(_x, _mask, _p), (_x,), {"x": _x, "mask": _mask, "p": _p},
                            domain={_mask: Choice((0, 1)), _p: Interval(0.0, 0.8)}),
))


# --- max pooling over n inputs: the gradient goes to the (first) largest ------------------------
def row_max_np(X, xp=np):
    """The largest entry of each row (keeping the last axis); NaN if the row holds one (as torch)."""
    return xp.max(X, axis=-1, keepdims=True)


def max_vjp_np(X, G, xp=np):
    """G at the first largest entry of each row of X and 0 elsewhere (torch.max(x, dim)'s gradient;
    a NaN counts as the largest, as in torch and numpy.argmax)."""
    top = xp.argmax(X, axis=-1, keepdims=True)
    if isinstance(X, np.ndarray) and isinstance(G, np.ndarray):
        out = np.zeros(X.shape, dtype=np.result_type(X.dtype, G.dtype))
        np.put_along_axis(out, top, np.broadcast_to(G, top.shape), axis=-1)
        return out
    positions = xp.arange(X.shape[-1], device=getattr(X, "device", None))
    return xp.where(xp.reshape(positions, (1,) * (X.ndim - 1) + (-1,)) == top, G, xp.zeros_like(X))


class RowMax(RowBlock):
    r"""max_j Z_ij for each row (N × C → N × 1);  G_Z = G at the first argmax of each row, 0 elsewhere."""

    numpy_form = staticmethod(row_max_np)
    name = "row_max"

    @property
    def shape(self):
        return (self.arg.shape[0], sp.S.One)

    def adjoint(self, G):
        return MaxVJP(self.arg, G)

    explicit_row = staticmethod(lambda row: [Maxout(*row)])

    def _latex(self, printer, **kwargs):
        return rf"\max_{{\mathrm{{row}}}}\left({printer._print(self.arg)}\right)"


class MaxVJP(RowBlock):
    r"""G routed to the first largest entry of each row of Z (N × C): the gradient of RowMax."""

    numpy_form = staticmethod(max_vjp_np)
    name = "max_vjp"

    def __new__(cls, Z, G):
        return sp.MatrixExpr.__new__(cls, Z, G)

    def _sympystr(self, printer):
        return f"max_vjp({printer._print(self.args[0])}, {printer._print(self.args[1])})"

    def doit(self, **hints):
        return type(self)(*(a.doit(**hints) for a in self.args))


def max_pool(x) -> sp.Expr:
    """max_i x_i over explicit entries (a list or Matrix): the gradient goes to the first largest."""
    entries = as_vector(x, "max_pool input")
    if len(entries) < 2:
        raise ValueError("max_pool needs at least two inputs")
    return Maxout(*entries)


def _row_reduction_batched(block) -> Batched:
    X = sp.MatrixSymbol("x", N, size("C"))
    return Batched(block(X), (Arg("x", X, "rows"),), ("x",))


register(Block(
    name="max_pool", domain="x_i real, n inputs", family="layer", function=Maxout,
    formula="max_pool(x) = max_i x_i",
    latex=r"y = \max_{i} x_i",
    derivative=r"x_k' = y' \, \mathbf{1}[k = \operatorname{argmax}_i x_i]",
    kink="ties: the gradient goes to the first largest input (as torch.max(x, dim) and max_pool1d); a NaN is the largest",
    example=lambda: (lambda x: Example(max_pool(x), (x,), {"x": x}))(vector("x", 3)),
    batched=lambda: _row_reduction_batched(RowMax),
))


# --- log-sum-exp (stable); its gradient is the softmax ---------------------------------------
def row_logsumexp_np(Z, xp=np):
    """log Σ_j exp(Z_ij) for each row (keeping the last axis) = m + log1p(Σ_{j ≠ max} e^{Z_j − m}),
    m the row maximum: no overflow, full digits when one entry dominates; a row whose maximum is
    ±inf (or NaN) gives that maximum (logsumexp([inf, 0]) = inf, of all −inf = −inf)."""
    m = xp.max(Z, axis=-1, keepdims=True)
    finite = xp.isfinite(m)
    shifted = Z - xp.where(finite, m, 0.0)
    top = xp.argmax(shifted, axis=-1, keepdims=True)
    e = xp.exp(shifted)
    if isinstance(e, np.ndarray):
        np.put_along_axis(e, top, 0.0, axis=-1)
    else:
        positions = xp.arange(Z.shape[-1], device=getattr(Z, "device", None))
        e = xp.where(xp.reshape(positions, (1,) * (Z.ndim - 1) + (-1,)) == top, 0.0, e)
    return xp.where(finite, m + xp.log1p(xp.sum(e, axis=-1, keepdims=True)), m)


def logsumexp_np(*z, xp=np):
    """log Σ_j e^{z_j} of scalar (or broadcasting) arguments z_1, …, z_C, stably."""
    stacked = xp.stack(xp.broadcast_arrays(*[xp.asarray(v) for v in z]), axis=-1)
    return row_logsumexp_np(stacked, xp=xp)[..., 0]


class LogSumExp(Primitive):
    r"""LSE(z) = log Σ_j e^{z_j};   ∂LSE/∂z_j = softmax(z)_j."""

    latex_name = r"\operatorname{LSE}"
    numpy_form = staticmethod(logsumexp_np)

    def fdiff(self, argindex=1):
        return SoftmaxEntry(argindex, *self.args)

    @staticmethod
    def elementary(*z):
        return sp.log(sp.Add(*[sp.exp(v) for v in z]))


class RowLogSumExp(RowBlock):
    r"""log Σ_j exp(Z_ij) for each row (N × C → N × 1);  G_Z = softmax(Z) ∘ (G 1ᵀ_C)."""

    numpy_form = staticmethod(row_logsumexp_np)
    name = "logsumexp"

    @property
    def shape(self):
        return (self.arg.shape[0], sp.S.One)

    def adjoint(self, G):
        return sp.HadamardProduct(RowSoftmax(self.arg), sp.MatMul(G, sp.OneMatrix(1, self.arg.shape[1])))

    explicit_row = staticmethod(lambda row: [LogSumExp(*row)])

    def _latex(self, printer, **kwargs):
        return rf"\operatorname{{LSE}}\left({printer._print(self.arg)}\right)"


def logsumexp(z) -> sp.Expr:
    """log Σ_j e^{z_j} of explicit entries (a list or Matrix), computed stably; its gradient is softmax(z)."""
    return LogSumExp(*as_vector(z, "logsumexp input"))


register(Block(
    name="logsumexp", domain="z in R^C", family="layer", function=LogSumExp,
    formula="logsumexp(z) = log(sum_j exp(z_j))   (stable: max z + log1p of the rest)",
    latex=r"\operatorname{LSE}(\mathbf{z}) = \log \sum_j e^{z_j}",
    derivative=r"\frac{\partial \operatorname{LSE}}{\partial z_j} = \operatorname{softmax}(\mathbf{z})_j",
    example=lambda: (lambda z: Example(logsumexp(z), (z,), {"z": z}))(vector("z", 3)),
    batched=lambda: _row_reduction_batched(RowLogSumExp),
))
