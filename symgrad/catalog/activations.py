"""Activations: each block is its ``sympy.Function`` (forward, derivative identity, LaTeX
name, stable NumPy form) followed by its ``register`` call (domain, kink, example)."""

from __future__ import annotations

import numpy as np
import sympy as sp

from .rows import RowBlock
from .base import Primitive
from .registry import Arg, Batched, Block, Example, Interval, N, ones, register, size
from .vectors import as_vector, column, to_sympy, vector
from .rows import RowLogSoftmax
from .rows import RowSoftmax
from .rows import elementwise
from .rows import row_softmax

__all__ = [
    "sigmoid", "tanh", "relu", "step", "leaky_relu", "elu", "softplus",
    "softmax", "log_softmax", "maxout",
    "SoftmaxEntry", "IndexedSoftmax", "LogSoftmaxEntry", "Maxout", "route",
    "normal_cdf", "gelu", "gelu_tanh", "silu", "mish", "selu", "celu", "softsign", "hardtanh",
    "hardsigmoid", "hardswish", "relu6", "prelu", "logsigmoid", "softmin", "glu", "RowGLU", "GLUVJP",
    "erf_np", "erfc_np",
]

def tanh(x):
    """SymPy's own tanh (tanh' = 1 − tanh², printed \\tanh, compiled to np.tanh), mapped over
    explicit matrices and applied elementwise to matrix expressions."""
    if isinstance(x, sp.MatrixBase):
        return x.applyfunc(sp.tanh)
    if isinstance(x, sp.MatrixExpr):

        return elementwise(sp.tanh, x)
    return sp.tanh(to_sympy(x, "tanh argument"))
_x = sp.Symbol("x", real=True)
# The report's check differentiates the forward numerically at 40 digits: for ELU, SELU and CELU beyond
# x ≈ −90 the derivative (~e^x) is below 1e−40 of the forward (≈ −α), out of its reach; their tails
# are tested against mpmath at up to 500 digits in tests/test_activations_torch.py.
_ELU_TAILS = Interval(-30.0, 30.0)


# --- sigmoid ----------------------------------------------------------------------------
def sigmoid_np(x, xp=np):
    """σ(x) = 1/(1 + e^{-x}) without overflow: with e = exp(-|x|), σ = 1/(1+e) or e/(1+e).

    A NumPy array with every entry above −708 takes the plain form, in place: e^{−x} cannot
    overflow there and σ ≥ e^{−708} is a normal number, so it is as accurate, with fewer passes."""
    if isinstance(x, np.ndarray) and x.dtype == np.float64 and x.ndim and x.size and x.min() > -708.0:
        s = np.negative(x)
        np.exp(s, out=s)
        s += 1.0
        np.divide(1.0, s, out=s)
        return s
    e = xp.exp(-xp.abs(x))
    num = xp.where(x >= 0, 1.0, e)
    if isinstance(num, np.ndarray) and num.ndim:
        e += 1.0
        num /= e
        return num
    return num / (1.0 + e)


class sigmoid(Primitive):
    r"""σ(x) = 1/(1 + e^{-x});   σ'(x) = σ(x)(1 − σ(x))."""

    nargs = 1
    elementwise = True
    latex_name = r"\sigma"
    numpy_form = staticmethod(sigmoid_np)

    def fdiff(self, argindex=1):
        return self * (1 - self)

    @staticmethod
    def elementary(x):
        return 1 / (1 + sp.exp(-x))

    @classmethod
    def exact(cls, x):
        return sp.S.Half if x.is_zero else None


register(Block(
    name="sigmoid", domain="x real", family="activation", function=sigmoid,
    formula="σ(x) = 1/(1 + exp(-x))",
    latex=r"\sigma(x) = \frac{1}{1 + e^{-x}}",
    derivative=r"\sigma'(x) = \sigma(x)\,(1 - \sigma(x))",
    example=lambda: Example(sigmoid(_x), (_x,), {"x": _x}),
))

register(Block(
    name="tanh", domain="x real", family="activation", function=sp.tanh,
    formula="tanh(x) = (exp(x) - exp(-x))/(exp(x) + exp(-x))",
    latex=r"\tanh(x) = \frac{e^{x} - e^{-x}}{e^{x} + e^{-x}}",
    derivative=r"\tanh'(x) = 1 - \tanh^{2}(x)",
    example=lambda: Example(sp.tanh(_x), (_x,), {"x": _x}),
))


# --- relu and its derivative, the step ----------------------------------------------------
def step_np(x, xp=np):
    """1 where x > 0, else 0 (the ReLU derivative; 0 at the kink); NaN stays NaN: sign(max(x, 0))."""
    return xp.sign(xp.maximum(x, 0))


class step(Primitive):
    r"""𝟙[x > 0]: 1 for x > 0 and 0 otherwise, *including 0* (unlike SymPy's Heaviside(0) = 1/2).

    Its derivative is taken as 0 (almost everywhere), as autodiff frameworks do."""

    nargs = 1
    elementwise = True
    numpy_form = staticmethod(step_np)

    def fdiff(self, argindex=1):
        return sp.S.Zero

    @staticmethod
    def elementary(x):
        return sp.Piecewise((1, x > 0), (0, True))

    @classmethod
    def exact(cls, x):
        if x.is_positive:
            return sp.S.One
        if x.is_nonpositive:
            return sp.S.Zero
        return None

    def _eval_rewrite_as_Heaviside(self, x, **kwargs):
        return sp.Heaviside(x, 0)

    def _latex(self, printer, exp=None):
        tex = rf"\mathbf{{1}}\left[{printer._print(self.args[0])} > 0\right]"
        return tex if exp is None else rf"{tex}^{{{exp}}}"


def relu_np(x, xp=np):
    """max(x, 0)."""
    return xp.maximum(x, 0)


class relu(Primitive):
    r"""ReLU(x) = max(0, x);   ReLU'(x) = 𝟙[x > 0]  (0 at x = 0, as PyTorch and JAX)."""

    nargs = 1
    elementwise = True
    latex_name = r"\operatorname{ReLU}"
    numpy_form = staticmethod(relu_np)

    def fdiff(self, argindex=1):
        return step(self.args[0])

    @staticmethod
    def elementary(x):
        return sp.Max(0, x)

    @classmethod
    def exact(cls, x):
        if x.is_nonnegative:
            return x
        if x.is_nonpositive:
            return sp.S.Zero
        return None


register(Block(
    name="relu", domain="x real", family="activation", function=relu,
    formula="relu(x) = max(0, x)",
    latex=r"\operatorname{ReLU}(x) = \max(0, x)",
    derivative=r"\operatorname{ReLU}'(x) = \mathbf{1}[x > 0]",
    kink="x = 0: derivative 0 (as PyTorch and JAX; SymPy's Heaviside(0) = 1/2 is not used)",
    example=lambda: Example(relu(_x), (_x,), {"x": _x}),
))


# --- leaky relu ---------------------------------------------------------------------------
LEAKY_ALPHA = sp.Float(0.01)


def leaky_relu_np(x, alpha=0.01, xp=np):
    """x for x > 0, alpha·x otherwise."""
    return xp.where(x > 0, x, alpha * x)


class leaky_relu(Primitive):
    r"""LeakyReLU(x; α) = x if x > 0 else αx;   derivative 1 if x > 0 else α (α at 0)."""

    nargs = 2
    elementwise = True
    latex_name = r"\operatorname{LeakyReLU}"
    latex_parameters = 1
    numpy_form = staticmethod(leaky_relu_np)

    def __new__(cls, x, alpha=LEAKY_ALPHA, **kwargs):
        return super().__new__(cls, x, to_sympy(alpha, "alpha"), **kwargs)

    def fdiff(self, argindex=1):
        x, alpha = self.args
        if argindex == 1:
            return sp.Piecewise((1, x > 0), (alpha, True))
        return sp.Piecewise((0, x > 0), (x, True))

    @staticmethod
    def elementary(x, alpha=LEAKY_ALPHA):
        return sp.Piecewise((x, x > 0), (alpha * x, True))

    @classmethod
    def exact(cls, x, alpha):
        if x.is_nonnegative:
            return x
        if x.is_nonpositive and x.is_number:
            return alpha * x
        return None


_alpha = sp.Symbol("alpha", positive=True)
register(Block(
    name="leaky_relu", domain="x real, alpha > 0", family="activation", function=leaky_relu, params={"alpha": 0.01},
    formula="leaky_relu(x, alpha=0.01) = x if x > 0 else alpha*x",
    latex=r"\operatorname{LeakyReLU}_{\alpha}(x) = \begin{cases} x & x > 0 \\ \alpha x & x \le 0 \end{cases}",
    derivative=r"\operatorname{LeakyReLU}_{\alpha}'(x) = \begin{cases} 1 & x > 0 \\ \alpha & x \le 0 \end{cases}",
    kink="x = 0: derivative alpha (the x <= 0 branch, as PyTorch)",
    example=lambda: Example(leaky_relu(_x, _alpha), (_x,), {"x": _x, "alpha": _alpha},
                            domain={_alpha: Interval(0.01, 0.5)}),
))


# --- elu ----------------------------------------------------------------------------------
def elu_np(x, alpha=1.0, xp=np):
    """x for x > 0, alpha·(e^x − 1) otherwise (expm1, no overflow for large x)."""
    return xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0)))


class elu(Primitive):
    r"""ELU(x; α) = x if x > 0 else α(e^x − 1);  derivative 1 if x > 0 else ELU(x) + α."""

    latex_name = r"\operatorname{ELU}"
    latex_parameters = 1

    nargs = 2
    elementwise = True
    numpy_form = staticmethod(elu_np)

    def __new__(cls, x, alpha=sp.S.One, **kwargs):
        return super().__new__(cls, x, to_sympy(alpha, "alpha"), **kwargs)

    def fdiff(self, argindex=1):
        x, alpha = self.args
        if argindex == 1:
            return sp.Piecewise((1, x > 0), (self + alpha, True))
        return sp.Piecewise((0, x > 0), (sp.exp(x) - 1, True))

    @staticmethod
    def elementary(x, alpha=sp.S.One):
        return sp.Piecewise((x, x > 0), (alpha * (sp.exp(x) - 1), True))

    @classmethod
    def exact(cls, x, alpha):
        if x.is_nonnegative:
            return x
        if x.is_negative and x.is_number:
            return alpha * (sp.exp(x) - 1)
        return None


register(Block(
    name="elu", domain="x real, alpha > 0", family="activation", function=elu, params={"alpha": 1.0},
    formula="elu(x, alpha=1) = x if x > 0 else alpha*(exp(x) - 1)",
    latex=r"\operatorname{ELU}_{\alpha}(x) = \begin{cases} x & x > 0 \\ \alpha (e^{x} - 1) & x \le 0 \end{cases}",
    derivative=r"\operatorname{ELU}_{\alpha}'(x) = \begin{cases} 1 & x > 0 \\ \operatorname{ELU}_{\alpha}(x) + \alpha & x \le 0 \end{cases}",
    kink="x = 0: derivative alpha (the x <= 0 branch, as PyTorch); continuous when alpha = 1",
    example=lambda: Example(elu(_x, _alpha), (_x,), {"x": _x, "alpha": _alpha},
                            domain={_alpha: Interval(0.5, 2.0), _x: _ELU_TAILS}),
))


# --- softplus -----------------------------------------------------------------------------
def softplus_np(x, xp=np):
    """log(1 + e^x) = logaddexp(0, x): no overflow at large x, exact log1p at small x."""
    return xp.logaddexp(0.0, x)


class softplus(Primitive):
    r"""softplus(x) = log(1 + e^x);   softplus'(x) = σ(x)."""

    nargs = 1
    elementwise = True
    latex_name = r"\operatorname{softplus}"
    numpy_form = staticmethod(softplus_np)

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    @staticmethod
    def elementary(x):
        return sp.log(1 + sp.exp(x))

    @classmethod
    def exact(cls, x):
        return sp.log(2) if x.is_zero else None


register(Block(
    name="softplus", domain="x real", family="activation", function=softplus,
    formula="softplus(x) = log(1 + exp(x))",
    latex=r"\operatorname{softplus}(x) = \log(1 + e^{x})",
    derivative=r"\operatorname{softplus}'(x) = \sigma(x)",
    example=lambda: Example(softplus(_x), (_x,), {"x": _x}),
))


# --- softmax and log-softmax (vector blocks: entries indexed from 1, as the seeds) -----------
def pick_entry(values, i, xp=np):
    """values[..., i − 1] for a 1-based class index i (a number, or one index per sample)."""
    i = xp.asarray(i)
    if i.ndim == 0:
        return values[..., int(i) - 1]
    index = xp.broadcast_to(xp.astype(i[..., None], xp.int64) - 1, values.shape[:-1] + (1,))
    return xp.take_along_axis(values, index, axis=-1)[..., 0]


def softmax_entry_np(i, *z, xp=np):
    """a_i = exp(z_i − max z) / Σ_j exp(z_j − max z): the shifted softmax never overflows."""
    z = xp.stack(xp.broadcast_arrays(*[xp.asarray(v) for v in z]), axis=-1)
    e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
    return pick_entry(e, i, xp=xp) / xp.sum(e, axis=-1)


def log_softmax_entry_np(i, *z, xp=np):
    """log a_i = (z_i − m) − log Σ_j exp(z_j − m) with m = max z."""
    z = xp.stack(xp.broadcast_arrays(*[xp.asarray(v) for v in z]), axis=-1)
    shifted = z - xp.max(z, axis=-1, keepdims=True)
    return pick_entry(shifted, i, xp=xp) - xp.log(xp.sum(xp.exp(shifted), axis=-1))


class SoftmaxEntry(Primitive):
    r"""a_i = softmax(z)_i = e^{z_i} / Σ_j e^{z_j};   ∂a_i/∂z_j = a_i(δ_ij − a_j).

    Arguments: the (1-based) index i, then z_1, …, z_C."""

    latex_name = r"\operatorname{softmax}"

    numpy_form = staticmethod(softmax_entry_np)

    def fdiff(self, argindex=1):
        if argindex == 1:
            return sp.S.Zero  # the index
        j = argindex - 1
        i, z = self.args[0], self.args[1:]
        return self * (sp.KroneckerDelta(i, j) - SoftmaxEntry(j, *z))

    @staticmethod
    def elementary(i, *z):
        terms = [sp.exp(zj) for zj in z]
        if i.is_Integer:
            return terms[int(i) - 1] / sp.Add(*terms)
        return sp.Add(*[sp.KroneckerDelta(i, j + 1) * t for j, t in enumerate(terms)]) / sp.Add(*terms)

    def _latex(self, printer, exp=None):
        i, z = self.args[0], self.args[1:]
        tex = (rf"\operatorname{{softmax}}\left({', '.join(printer._print(a) for a in z)}\right)"
               rf"_{{{printer._print(i)}}}")
        return tex if exp is None else rf"{tex}^{{{exp}}}"


class LogSoftmaxEntry(Primitive):
    r"""log_softmax(z)_i = z_i − log Σ_j e^{z_j};   ∂/∂z_j = δ_ij − a_j."""

    numpy_form = staticmethod(log_softmax_entry_np)

    def fdiff(self, argindex=1):
        if argindex == 1:
            return sp.S.Zero
        j = argindex - 1
        i, z = self.args[0], self.args[1:]
        return sp.KroneckerDelta(i, j) - SoftmaxEntry(j, *z)

    @staticmethod
    def elementary(i, *z):
        return sp.log(SoftmaxEntry.elementary(i, *z))

    def _latex(self, printer, exp=None):
        i, z = self.args[0], self.args[1:]
        tex = (rf"\operatorname{{log\,softmax}}\left({', '.join(printer._print(a) for a in z)}\right)"
               rf"_{{{printer._print(i)}}}")
        return tex if exp is None else rf"{tex}^{{{exp}}}"


def indexed_softmax_np(k, z, n=None, xp=np):
    """a_k of the shifted softmax over the last axis of z (its first n entries)."""
    z = xp.asarray(z)[..., : (z.shape[-1] if n is None else int(n))]
    e = xp.exp(z - xp.max(z, axis=-1, keepdims=True))
    return e[..., int(k) - 1] / xp.sum(e, axis=-1)


class IndexedSoftmax(Primitive):
    r"""a_k = e^{z_k} / Σ_{i=1}^{C} e^{z_i} for an IndexedBase z and a symbolic size C;
    ∂a_k/∂z_j = a_k(δ_kj − a_j) — derived in constant time, whatever C."""

    numpy_form = staticmethod(indexed_softmax_np)

    def _eval_derivative(self, s):
        k, z, n = self.args
        if isinstance(s, sp.Indexed) and s.base == z:
            (j,) = s.indices
            return self * (sp.KroneckerDelta(k, j) - IndexedSoftmax(j, z, n))
        if self.has(s):
            raise NotImplementedError("an indexed softmax is differentiated with respect to its entries z[j]")
        return sp.S.Zero

    @staticmethod
    def elementary(k, z, n):
        i = sp.Dummy("i", integer=True, positive=True)
        return sp.exp(z[k]) / sp.Sum(sp.exp(z[i]), (i, 1, n))

    def _latex(self, printer, exp=None):
        k, z, n = self.args
        tex = rf"\operatorname{{softmax}}\left(\mathbf{{{printer._print(z)}}}\right)_{{{printer._print(k)}}}"
        return tex if exp is None else rf"{tex}^{{{exp}}}"


def softmax(z, k=None, n=None):
    """The vector a = softmax(z), a_i = e^{z_i}/Σ_j e^{z_j} (z: list or Matrix); for an
    ``IndexedBase`` z with a symbolic size ``n``, the entry a_k: ``softmax(z, k, n)``."""
    if isinstance(z, sp.IndexedBase):
        if k is None or n is None:
            raise ValueError("an indexed softmax needs its entry and size: softmax(z, k, C)")
        return IndexedSoftmax(to_sympy(k, "k"), z, to_sympy(n, "n"))
    if isinstance(z, sp.MatrixExpr) and not isinstance(z, sp.MatrixBase):

        return row_softmax(z)
    z = as_vector(z, "softmax input")
    return sp.Matrix([SoftmaxEntry(i, *z) for i in range(1, len(z) + 1)])


def log_softmax(z) -> sp.Matrix:
    """The vector log softmax(z), entries z_i − log Σ_j e^{z_j} (rows of a matrix expression)."""
    if isinstance(z, sp.MatrixExpr) and not isinstance(z, sp.MatrixBase):

        return row_softmax(z, log=True)
    z = as_vector(z, "log_softmax input")
    return sp.Matrix([LogSoftmaxEntry(i, *z) for i in range(1, len(z) + 1)])


def _vector_block_example(block, z) -> Example:
    """The Jacobian of a vector block at z ∈ R^C (symbolic C: diag(a) − a aᵀ), or on entries."""
    return Example(block(z), (z,), {"z": z})


def _row_block_batched(log: bool) -> Batched:
    """softmax / log softmax of each row z (N × C)."""

    z = sp.MatrixSymbol("z", N, size("C"))
    return Batched((RowLogSoftmax if log else RowSoftmax)(z), (Arg("z", z, "rows"),), ("z",))


register(Block(
    name="softmax", domain="z in R^C", family="activation", function=SoftmaxEntry,
    formula="softmax(z)_i = exp(z_i) / sum_j exp(z_j)",
    latex=r"a_i = \operatorname{softmax}(\mathbf{z})_i = \frac{e^{z_i}}{\sum_j e^{z_j}}",
    derivative=r"\frac{\partial \mathbf{a}}{\partial \mathbf{z}} = \operatorname{diag}(\mathbf{a})"
               r" - \mathbf{a}\mathbf{a}^{\top}, \quad \frac{\partial a_i}{\partial z_j} = a_i(\delta_{ij} - a_j)",
    example=lambda: _vector_block_example(softmax, column("z", size("C"))),
    entries=lambda: _vector_block_example(softmax, vector("z", 3)),
    batched=lambda: _row_block_batched(log=False),
))

register(Block(
    name="log_softmax", domain="z in R^C", family="activation", function=LogSoftmaxEntry,
    formula="log_softmax(z)_i = z_i - log(sum_j exp(z_j))",
    latex=r"\log a_i = z_i - \log \sum_j e^{z_j}",
    derivative=r"\frac{\partial \log \mathbf{a}}{\partial \mathbf{z}} = I - \mathbf{1}\mathbf{a}^{\top},"
               r" \quad \frac{\partial \log a_i}{\partial z_j} = \delta_{ij} - a_j",
    example=lambda: _vector_block_example(log_softmax, column("z", size("C"))),
    entries=lambda: _vector_block_example(log_softmax, vector("z", 3)),
    batched=lambda: _row_block_batched(log=True),
))


# --- maxout and the max gate's router -------------------------------------------------------
def route_np(k, *u, xp=np):
    """1 where u_k is the (first) largest of u, else 0: the max gate routes the gradient."""
    u = xp.stack(xp.broadcast_arrays(*[xp.asarray(v) for v in u]), axis=-1)
    dtype = u.dtype if xp.isdtype(u.dtype, "real floating") else xp.float64
    return xp.astype(xp.argmax(u, axis=-1) == int(k) - 1, dtype)


def maxout_np(*u, xp=np):
    """max(u_1, …, u_m), elementwise."""
    out = u[0]
    for v in u[1:]:
        out = xp.maximum(out, v)
    return out


class route(Primitive):
    r"""𝟙[k = argmax_j u_j]: the max gate routes its upstream gradient to the largest input
    (to the first of equal largest inputs, as PyTorch and NumPy's argmax)."""

    numpy_form = staticmethod(route_np)

    def fdiff(self, argindex=1):
        return sp.S.Zero

    @staticmethod
    def elementary(k, *u):
        k = int(k)
        conds = [u[k - 1] > u[j] for j in range(k - 1)] + [u[k - 1] >= u[j] for j in range(k, len(u))]
        return sp.Piecewise((1, sp.And(*conds)), (0, True))

    def _latex(self, printer, exp=None):
        k, u = self.args[0], self.args[1:]
        tex = (rf"\mathbf{{1}}\left[{printer._print(k)} = \operatorname{{argmax}}"
               rf"\left({', '.join(printer._print(a) for a in u)}\right)\right]")
        return tex if exp is None else rf"{tex}^{{{exp}}}"


class Maxout(Primitive):
    r"""maxout(u_1, …, u_m) = max_k u_k;   ∂/∂u_k = 𝟙[k = argmax] (the max gate routes)."""

    latex_name = r"\max"
    numpy_form = staticmethod(maxout_np)

    def fdiff(self, argindex=1):
        return route(argindex, *self.args)

    @staticmethod
    def elementary(*u):
        return sp.Max(*u)


def maxout(*pieces) -> sp.Expr:
    """max(w_1ᵀx + b_1, …, w_mᵀx + b_m): pass the pieces (scalars) or one list of them."""
    if len(pieces) == 1 and isinstance(pieces[0], (list, tuple, sp.MatrixBase)):
        pieces = tuple(as_vector(pieces[0], "maxout pieces"))
    if len(pieces) < 2:
        raise ValueError("maxout needs at least two pieces, e.g. maxout(w1.dot(x) + b1, w2.dot(x) + b2)")
    return Maxout(*[to_sympy(p, "maxout piece") for p in pieces])


def _maxout_example() -> Example:
    x, w1, w2 = vector("x", 2), vector("w", 2), vector("v", 2)
    b1, b2 = sp.symbols("b c", real=True)
    expr = maxout(w1.dot(x) + b1, w2.dot(x) + b2)
    return Example(expr, (w1, b1, w2, b2), {"x": x, "w": w1, "b": b1, "v": w2, "c": b2})


def _maxout_batched() -> Batched:
    """max(u, v) = u + ReLU(v − u) per sample, u = x w + b, v = x v + c: at a tie ReLU'(0) = 0
    sends the gradient to the first piece, the catalog's convention."""

    D = size("D")
    x, w, v = sp.MatrixSymbol("x", N, D), sp.MatrixSymbol("w", D, 1), sp.MatrixSymbol("v", D, 1)
    b, c = sp.MatrixSymbol("b", 1, 1), sp.MatrixSymbol("c", 1, 1)
    u1, u2 = x * w + ones(N, 1) * b, x * v + ones(N, 1) * c
    args = (Arg("x", x, "rows"), Arg("w", w, "column"), Arg("b", b, "scalar"), Arg("v", v, "column"), Arg("c", c, "scalar"))
    return Batched(u1 + elementwise(relu, u2 - u1), args, ("x", "w", "b", "v", "c"))


register(Block(
    name="maxout", domain="pieces real", family="activation", function=Maxout,
    formula="maxout(x) = max(w^T x + b, v^T x + c)",
    latex=r"\max(\mathbf{w}^{\top}\mathbf{x} + b,\ \mathbf{v}^{\top}\mathbf{x} + c)",
    derivative=r"\frac{\partial}{\partial \mathbf{w}} = \mathbf{1}[\text{piece 1 is the max}]\,\mathbf{x}",
    kink="ties: the gradient goes to the first largest piece (as PyTorch and numpy.argmax)",
    example=_maxout_example,
    batched=_maxout_batched,
))


# --- erf and the normal CDF (for GELU): a vectorised erf, never math.erf or a series ---------------
def _special(name, x, xp):
    """scipy.special's ``name`` for a non-NumPy array, from its own library: torch.special,
    jax.scipy.special, cupyx.scipy.special, Dask chunk by chunk (lazily); SciPy through DLPack for
    other CPU libraries without one (array-api-strict)."""
    import array_api_compat as compat

    if compat.is_torch_namespace(xp):
        import torch

        return getattr(torch.special, name)(x)
    if compat.is_jax_namespace(xp):
        import jax.scipy.special

        return getattr(jax.scipy.special, name)(x)
    if compat.is_cupy_namespace(xp):
        import cupyx.scipy.special

        return getattr(cupyx.scipy.special, name)(x)
    import scipy.special

    if compat.is_dask_namespace(xp):
        return x.map_blocks(getattr(scipy.special, name), dtype=x.dtype)
    return xp.from_dlpack(getattr(scipy.special, name)(np.from_dlpack(x)))


def erf_np(x, xp=np):
    """erf(x) entry by entry: scipy.special.erf for NumPy, the array library's own otherwise."""
    if xp is np or isinstance(x, (np.ndarray, np.generic, float, int)):
        from scipy.special import erf

        return erf(x)
    return _special("erf", x, xp)


def erfc_np(x, xp=np):
    """erfc(x) = 1 − erf(x) without cancellation: scipy.special.erfc for NumPy, the library's own otherwise."""
    if xp is np or isinstance(x, (np.ndarray, np.generic, float, int)):
        from scipy.special import erfc

        return erfc(x)
    return _special("erfc", x, xp)


def normal_cdf_np(x, xp=np):
    """Φ(x) = erfc(−x/√2)/2: 1 + erf(x/√2) would cancel to 0 below x ≈ −8; erfc keeps every digit."""
    return 0.5 * erfc_np(-0.7071067811865476 * x, xp=xp)


class normal_cdf(Primitive):
    r"""Φ(x) = (1 + erf(x/√2))/2, the standard normal CDF;   Φ'(x) = φ(x) = e^{−x²/2}/√(2π)."""

    nargs = 1
    elementwise = True
    latex_name = r"\Phi"
    numpy_form = staticmethod(normal_cdf_np)

    def fdiff(self, argindex=1):
        x = self.args[0]
        return sp.exp(-x ** 2 / 2) / sp.sqrt(2 * sp.pi)

    @staticmethod
    def elementary(x):
        return (1 + sp.erf(x / sp.sqrt(2))) / 2

    @classmethod
    def exact(cls, x):
        return sp.S.Half if x.is_zero else None


# --- gelu (exact) -------------------------------------------------------------------------
def gelu_np(x, xp=np):
    """x Φ(x), with Φ from erfc (accurate for very negative x, where x Φ(x) is tiny but not 0)."""
    return x * normal_cdf_np(x, xp=xp)


class gelu(Primitive):
    r"""GELU(x) = x Φ(x);   GELU'(x) = Φ(x) + x φ(x),  φ(x) = e^{−x²/2}/√(2π)."""

    nargs = 1
    elementwise = True
    latex_name = r"\operatorname{GELU}"
    numpy_form = staticmethod(gelu_np)

    def fdiff(self, argindex=1):
        x = self.args[0]
        return normal_cdf(x) + x * normal_cdf(x).fdiff()

    @staticmethod
    def elementary(x):
        return x * (1 + sp.erf(x / sp.sqrt(2))) / 2

    @classmethod
    def exact(cls, x):
        return sp.S.Zero if x.is_zero else None


register(Block(
    name="gelu", domain="x real", family="activation", function=gelu,
    formula="gelu(x) = x/2 * (1 + erf(x/sqrt(2)))",
    latex=r"\operatorname{GELU}(x) = x\,\Phi(x) = \frac{x}{2}\left(1 + \operatorname{erf}\frac{x}{\sqrt{2}}\right)",
    derivative=r"\operatorname{GELU}'(x) = \Phi(x) + x\,\varphi(x), \quad \varphi(x) = \frac{e^{-x^{2}/2}}{\sqrt{2\pi}}",
    example=lambda: Example(gelu(_x), (_x,), {"x": _x}),
))


# --- gelu, tanh approximation -----------------------------------------------------------------
_GELU_C = sp.Float("0.044715")


def _gelu_tanh_u(x):
    return sp.sqrt(2 / sp.pi) * x * (1 + _GELU_C * x ** 2)  # x(1 + c x²), not x + c x³: x**3 is a slow pow


def gelu_tanh_np(x, xp=np):
    """x (1 + tanh u)/2 = x σ(2u), u = √(2/π)(x + 0.044715 x³): 1 + tanh u cancels for u ≪ 0, σ does not."""
    u = 1.5957691216057308 * (x + 0.044715 * (x * x * x))  # 2u (x·x·x: NumPy's x**3 is a slow pow)
    return x * sigmoid_np(u, xp=xp)


class gelu_tanh(Primitive):
    r"""GELU_tanh(x) = x(1 + tanh u)/2 = x σ(2u), u = √(2/π)(x + 0.044715x³);
    GELU_tanh'(x) = σ(2u)(1 + 2x u'(x) σ(−2u))  (since (1 + tanh u)/2 = σ(2u) and σ' = σ(u)σ(−u))."""

    nargs = 1
    elementwise = True
    latex_name = r"\operatorname{GELU}_{\tanh}"
    numpy_form = staticmethod(gelu_tanh_np)

    def fdiff(self, argindex=1):
        x, t = self.args[0], sp.Dummy("t")
        u = _gelu_tanh_u(x)  # u'(x) from a dummy: x may be an expression (GELU_tanh(σ(x)))
        return sigmoid(2 * u) * (1 + 2 * x * _gelu_tanh_u(t).diff(t).subs(t, x) * sigmoid(-2 * u))

    @staticmethod
    def elementary(x):
        return x * (1 + sp.tanh(_gelu_tanh_u(x))) / 2

    @classmethod
    def exact(cls, x):
        return sp.S.Zero if x.is_zero else None


register(Block(
    name="gelu_tanh", domain="x real", family="activation", function=gelu_tanh,
    formula="gelu_tanh(x) = x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715*x**3)))",
    latex=r"\operatorname{GELU}_{\tanh}(x) = \frac{x}{2}\left(1 + \tanh u\right) = x\,\sigma(2u), \quad u = \sqrt{2/\pi}\,(x + 0.044715\,x^{3})",
    derivative=r"\operatorname{GELU}_{\tanh}'(x) = \sigma(2u)\,\bigl(1 + 2x\,u'(x)\,\sigma(-2u)\bigr)",
    kink="smooth: differentiable everywhere (PyTorch's gelu(approximate='tanh'))",
    example=lambda: Example(gelu_tanh(_x), (_x,), {"x": _x}),
))


# --- silu / swish ---------------------------------------------------------------------------
def silu_np(x, xp=np):
    """x σ(x) (σ without overflow)."""
    return x * sigmoid_np(x, xp=xp)


class silu(Primitive):
    r"""SiLU(x) = x σ(x) (swish);   SiLU'(x) = σ(x) + SiLU(x)(1 − σ(x)) = σ(x) + SiLU(x)σ(−x)
    (σ(−x): no 1 − σ to cancel, and no σ + x − xσ for large x)."""

    nargs = 1
    elementwise = True
    latex_name = r"\operatorname{SiLU}"
    numpy_form = staticmethod(silu_np)

    def fdiff(self, argindex=1):
        x = self.args[0]
        return sigmoid(x) + self * sigmoid(-x)

    @staticmethod
    def elementary(x):
        return x / (1 + sp.exp(-x))

    @classmethod
    def exact(cls, x):
        return sp.S.Zero if x.is_zero else None


register(Block(
    name="silu", domain="x real", family="activation", function=silu,
    formula="silu(x) = x * sigmoid(x)  (swish)",
    latex=r"\operatorname{SiLU}(x) = x\,\sigma(x)",
    derivative=r"\operatorname{SiLU}'(x) = \sigma(x) + \operatorname{SiLU}(x)\,(1 - \sigma(x)) = \sigma(x) + \operatorname{SiLU}(x)\,\sigma(-x)",
    example=lambda: Example(silu(_x), (_x,), {"x": _x}),
))


# --- mish -----------------------------------------------------------------------------------
def mish_np(x, xp=np):
    """x tanh(softplus x) = x n/(n + 2) with n = e^x(e^x + 2): one exp, no cancellation (n/(n + 2) ≈ e^x
    for x ≪ 0); e^x is capped at e^20, beyond which the ratio rounds to 1 anyway (1 − 2e^{−2x})."""
    e = xp.exp(xp.minimum(x, 20.0))
    n = e * (e + 2.0)
    return x * n / (n + 2.0)


class mish(Primitive):
    r"""Mish(x) = x tanh(softplus(x));   Mish'(x) = tanh(softplus x) + x σ(x)(1 − tanh²(softplus x))."""

    nargs = 1
    elementwise = True
    latex_name = r"\operatorname{Mish}"
    numpy_form = staticmethod(mish_np)

    def fdiff(self, argindex=1):
        x = self.args[0]
        t = sp.tanh(softplus(x))
        return t + x * sigmoid(x) * (1 - t ** 2)

    @staticmethod
    def elementary(x):
        return x * sp.tanh(sp.log(1 + sp.exp(x)))

    @classmethod
    def exact(cls, x):
        return sp.S.Zero if x.is_zero else None


register(Block(
    name="mish", domain="x real", family="activation", function=mish,
    formula="mish(x) = x * tanh(softplus(x))",
    latex=r"\operatorname{Mish}(x) = x \tanh(\operatorname{softplus}(x))",
    derivative=r"\operatorname{Mish}'(x) = \tanh(\operatorname{softplus} x) + x\,\sigma(x)\,\bigl(1 - \tanh^{2}(\operatorname{softplus} x)\bigr)",
    example=lambda: Example(mish(_x), (_x,), {"x": _x}),
))


# --- selu and celu (ELU relatives) ---------------------------------------------------------------
SELU_ALPHA = sp.Float("1.6732632423543772", 17)  # PyTorch's doubles (Klambauer et al. 2017: 1.6732632423543772848…)
SELU_SCALE = sp.Float("1.0507009873554805", 17)  # (1.0507009873554804934…)


def selu_np(x, xp=np):
    """λ·(x if x > 0 else α(e^x − 1)) with PyTorch's λ, α (expm1 of min(x, 0): no overflow)."""
    return 1.0507009873554805 * xp.where(x > 0, x, 1.6732632423543772 * xp.expm1(xp.minimum(x, 0)))


class selu(Primitive):
    r"""SELU(x) = λ(x if x > 0 else α(e^x − 1));  derivative λ if x > 0 else λα e^x (λα at 0).

    The x ≤ 0 branch is written λα e^{min(x, 0)} (equal there) so that the branch not taken cannot
    overflow; through the output it would be SELU(x) + λα, which cancels for x ≪ 0."""

    nargs = 1
    elementwise = True
    latex_name = r"\operatorname{SELU}"
    numpy_form = staticmethod(selu_np)

    def fdiff(self, argindex=1):
        x = self.args[0]
        return sp.Piecewise((SELU_SCALE, x > 0), (SELU_SCALE * SELU_ALPHA * sp.exp(sp.Min(x, 0)), True))

    @staticmethod
    def elementary(x):
        return SELU_SCALE * sp.Piecewise((x, x > 0), (SELU_ALPHA * (sp.exp(x) - 1), True))

    @classmethod
    def exact(cls, x):
        return sp.S.Zero if x.is_zero else None


register(Block(
    name="selu", domain="x real", family="activation", function=selu,
    formula="selu(x) = scale * (x if x > 0 else alpha*(exp(x) - 1)), alpha = 1.6732632423543772, scale = 1.0507009873554805",
    latex=r"\operatorname{SELU}(x) = \lambda \begin{cases} x & x > 0 \\ \alpha (e^{x} - 1) & x \le 0 \end{cases}",
    derivative=r"\operatorname{SELU}'(x) = \begin{cases} \lambda & x > 0 \\ \lambda\alpha e^{x} & x \le 0 \end{cases}",
    kink="x = 0: derivative scale*alpha (the x <= 0 branch, as PyTorch)",
    example=lambda: Example(selu(_x), (_x,), {"x": _x}, domain={_x: _ELU_TAILS}),
))


def celu_np(x, alpha=1.0, xp=np):
    """x for x > 0, α(e^{x/α} − 1) otherwise (expm1 of min(x, 0)/α: no overflow)."""
    return xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0) / alpha))


class celu(Primitive):
    r"""CELU(x; α) = x if x > 0 else α(e^{x/α} − 1);  derivative 1 if x > 0 else e^{x/α} (1 at 0: C¹)."""

    latex_name = r"\operatorname{CELU}"
    latex_parameters = 1

    nargs = 2
    elementwise = True
    numpy_form = staticmethod(celu_np)

    def __new__(cls, x, alpha=sp.S.One, **kwargs):
        return super().__new__(cls, x, to_sympy(alpha, "alpha"), **kwargs)

    def fdiff(self, argindex=1):
        x, alpha = self.args
        e = sp.exp(sp.Min(x, 0) / alpha)  # = e^{x/α} on the x <= 0 branch; cannot overflow on the other
        if argindex == 1:
            return sp.Piecewise((1, x > 0), (e, True))
        return sp.Piecewise((0, x > 0), (e - 1 - x / alpha * e, True))

    @staticmethod
    def elementary(x, alpha=sp.S.One):
        return sp.Piecewise((x, x > 0), (alpha * (sp.exp(x / alpha) - 1), True))

    @classmethod
    def exact(cls, x, alpha):
        return sp.S.Zero if x.is_zero else None


register(Block(
    name="celu", domain="x real, alpha > 0", family="activation", function=celu, params={"alpha": 1.0},
    formula="celu(x, alpha=1) = x if x > 0 else alpha*(exp(x/alpha) - 1)",
    latex=r"\operatorname{CELU}_{\alpha}(x) = \begin{cases} x & x > 0 \\ \alpha (e^{x/\alpha} - 1) & x \le 0 \end{cases}",
    derivative=r"\operatorname{CELU}_{\alpha}'(x) = \begin{cases} 1 & x > 0 \\ e^{x/\alpha} & x \le 0 \end{cases}",
    kink="x = 0: derivative 1 from both sides (continuously differentiable; the x <= 0 branch, as PyTorch)",
    example=lambda: Example(celu(_x, _alpha), (_x,), {"x": _x, "alpha": _alpha},
                            domain={_alpha: Interval(0.5, 2.0), _x: _ELU_TAILS}),
))


# --- softsign -------------------------------------------------------------------------------
def softsign_np(x, xp=np):
    """x/(1 + |x|)."""
    return x / (1.0 + xp.abs(x))


class softsign(Primitive):
    r"""softsign(x) = x/(1 + |x|);   softsign'(x) = 1/(1 + |x|)²  (= (1 − |softsign x|)², which
    would cancel for large |x|)."""

    nargs = 1
    elementwise = True
    latex_name = r"\operatorname{softsign}"
    numpy_form = staticmethod(softsign_np)

    def fdiff(self, argindex=1):
        return 1 / (1 + sp.Abs(self.args[0])) ** 2

    @staticmethod
    def elementary(x):
        return x / (1 + sp.Abs(x))

    @classmethod
    def exact(cls, x):
        return sp.S.Zero if x.is_zero else None


register(Block(
    name="softsign", domain="x real", family="activation", function=softsign,
    formula="softsign(x) = x / (1 + |x|)",
    latex=r"\operatorname{softsign}(x) = \frac{x}{1 + |x|}",
    derivative=r"\operatorname{softsign}'(x) = \frac{1}{(1 + |x|)^{2}} = \bigl(1 - |\operatorname{softsign}(x)|\bigr)^{2}",
    kink="x = 0: |x| has a kink but softsign' is continuous there (1, as PyTorch)",
    example=lambda: Example(softsign(_x), (_x,), {"x": _x}),
))


# --- the clipped family: hardtanh, relu6, hardsigmoid, hardswish (PyTorch's kinks) ------------------
def _numbers(*args):
    return all(a.is_Number for a in args)


def hardtanh_np(x, min_val=-1.0, max_val=1.0, xp=np):
    """min(max(x, min_val), max_val), by clip (one pass; NaN stays NaN)."""
    return xp.clip(x, min_val, max_val)


class hardtanh(Primitive):
    r"""hardtanh(x; lo, hi) = min(max(x, lo), hi);  derivative 1 for lo < x < hi, else 0 (0 at the
    kinks x = lo, hi, as PyTorch); ∂/∂lo = 𝟙[x ≤ lo], ∂/∂hi = 𝟙[x ≥ hi] (the three sum to 1)."""

    latex_name = r"\operatorname{hardtanh}"
    latex_parameters = 2

    nargs = 3
    elementwise = True
    numpy_form = staticmethod(hardtanh_np)

    def __new__(cls, x, min_val=-sp.S.One, max_val=sp.S.One, **kwargs):
        return super().__new__(cls, x, to_sympy(min_val, "min_val"), to_sympy(max_val, "max_val"), **kwargs)

    def fdiff(self, argindex=1):
        x, lo, hi = self.args
        if argindex == 1:
            return sp.Piecewise((0, x <= lo), (1, x < hi), (0, True))  # ordered branches: no And to print
        if argindex == 2:
            return sp.Piecewise((1, x <= lo), (0, True))
        return sp.Piecewise((1, x >= hi), (0, True))

    @staticmethod
    def elementary(x, min_val=-sp.S.One, max_val=sp.S.One):
        return sp.Min(sp.Max(x, min_val), max_val)

    @classmethod
    def exact(cls, x, lo, hi):
        return cls.elementary(x, lo, hi) if _numbers(x, lo, hi) else None


_lo, _hi = sp.Symbol("min_val", real=True), sp.Symbol("max_val", real=True)
register(Block(
    name="hardtanh", domain="x real, min_val < max_val", family="activation", function=hardtanh,
    params={"min_val": -1.0, "max_val": 1.0},
    formula="hardtanh(x, min_val=-1, max_val=1) = min(max(x, min_val), max_val)",
    latex=r"\operatorname{hardtanh}(x) = \min(\max(x, m), M)",
    derivative=r"\operatorname{hardtanh}'(x) = \mathbf{1}[m < x < M]",
    kink="x = min_val, max_val: derivative 0 (as PyTorch)",
    example=lambda: Example(hardtanh(_x, _lo, _hi), (_x,), {"x": _x, "min_val": _lo, "max_val": _hi},
                            domain={_lo: Interval(-2.0, -0.5), _hi: Interval(0.5, 2.0)}),
))


def relu6_np(x, xp=np):
    """min(max(x, 0), 6), by clip."""
    return xp.clip(x, 0.0, 6.0)


class relu6(Primitive):
    r"""ReLU6(x) = min(max(x, 0), 6);  derivative 𝟙[0 < x < 6] (0 at x = 0 and 6, as PyTorch)."""

    nargs = 1
    elementwise = True
    latex_name = r"\operatorname{ReLU6}"
    numpy_form = staticmethod(relu6_np)

    def fdiff(self, argindex=1):
        x = self.args[0]
        return sp.Piecewise((0, x <= 0), (1, x < 6), (0, True))

    @staticmethod
    def elementary(x):
        return sp.Min(sp.Max(x, 0), 6)

    @classmethod
    def exact(cls, x):
        return cls.elementary(x) if x.is_Number else None


register(Block(
    name="relu6", domain="x real", family="activation", function=relu6,
    formula="relu6(x) = min(max(x, 0), 6)",
    latex=r"\operatorname{ReLU6}(x) = \min(\max(x, 0), 6)",
    derivative=r"\operatorname{ReLU6}'(x) = \mathbf{1}[0 < x < 6]",
    kink="x = 0, 6: derivative 0 (as PyTorch)",
    example=lambda: Example(relu6(_x), (_x,), {"x": _x}, domain={_x: Interval(-2.0, 8.0)}),
))


def hardsigmoid_np(x, xp=np):
    """min(max(x + 3, 0), 6)/6 = clip(x/6 + 1/2, 0, 1) (PyTorch's order of operations)."""
    t = x + 3.0
    t = np.clip(t, 0.0, 6.0, out=t) if isinstance(t, np.ndarray) and t.ndim else xp.clip(t, 0.0, 6.0)
    t /= 6.0
    return t


class hardsigmoid(Primitive):
    r"""hardsigmoid(x) = min(max(x/6 + 1/2, 0), 1);  derivative 1/6 for −3 < x < 3, else 0 (0 at ±3,
    as PyTorch)."""

    nargs = 1
    elementwise = True
    latex_name = r"\operatorname{hardsigmoid}"
    numpy_form = staticmethod(hardsigmoid_np)

    def fdiff(self, argindex=1):
        x = self.args[0]
        return sp.Piecewise((0, x <= -3), (sp.Rational(1, 6), x < 3), (0, True))

    @staticmethod
    def elementary(x):
        return sp.Min(sp.Max(x / 6 + sp.S.Half, 0), 1)

    @classmethod
    def exact(cls, x):
        return cls.elementary(x) if x.is_Number else None


register(Block(
    name="hardsigmoid", domain="x real", family="activation", function=hardsigmoid,
    formula="hardsigmoid(x) = min(max(x/6 + 1/2, 0), 1)",
    latex=r"\operatorname{hardsigmoid}(x) = \min\left(\max\left(\frac{x}{6} + \frac{1}{2}, 0\right), 1\right)",
    derivative=r"\operatorname{hardsigmoid}'(x) = \tfrac{1}{6}\,\mathbf{1}[-3 < x < 3]",
    kink="x = -3, 3: derivative 0 (as PyTorch)",
    example=lambda: Example(hardsigmoid(_x), (_x,), {"x": _x}, domain={_x: Interval(-5.0, 5.0)}),
))


def hardswish_np(x, xp=np):
    """x·min(max(x + 3, 0), 6)/6 (PyTorch's order of operations)."""
    t = x + 3.0
    t = np.clip(t, 0.0, 6.0, out=t) if isinstance(t, np.ndarray) and t.ndim else xp.clip(t, 0.0, 6.0)
    t *= x
    t /= 6.0
    return t


class hardswish(Primitive):
    r"""hardswish(x) = x·hardsigmoid(x);  derivative 0 for x ≤ −3, x/3 + 1/2 for −3 < x < 3, 1 for
    x ≥ 3 (PyTorch's branches: 0 at −3, 1 at 3)."""

    nargs = 1
    elementwise = True
    latex_name = r"\operatorname{hardswish}"
    numpy_form = staticmethod(hardswish_np)

    def fdiff(self, argindex=1):
        x = self.args[0]
        return sp.Piecewise((0, x <= -3), (x / 3 + sp.S.Half, x < 3), (1, True))

    @staticmethod
    def elementary(x):
        return x * sp.Min(sp.Max(x + 3, 0), 6) / 6

    @classmethod
    def exact(cls, x):
        return cls.elementary(x) if x.is_Number else None


register(Block(
    name="hardswish", domain="x real", family="activation", function=hardswish,
    formula="hardswish(x) = x * min(max(x + 3, 0), 6) / 6",
    latex=r"\operatorname{hardswish}(x) = \frac{x \min(\max(x + 3, 0), 6)}{6}",
    derivative=r"\operatorname{hardswish}'(x) = \begin{cases} 0 & x \le -3 \\ \frac{x}{3} + \frac{1}{2} & -3 < x < 3 \\ 1 & x \ge 3 \end{cases}",
    kink="x = -3: derivative 0; x = 3: derivative 1 (as PyTorch)",
    example=lambda: Example(hardswish(_x), (_x,), {"x": _x}, domain={_x: Interval(-5.0, 5.0)}),
))


# --- prelu: leaky ReLU with a learnable slope -------------------------------------------------------
def prelu_np(x, alpha, xp=np):
    """x for x > 0, α·x otherwise (α broadcasts: one slope, or one per channel)."""
    return xp.where(x > 0, x, alpha * x)


class prelu(Primitive):
    r"""PReLU(x; α) = x if x > 0 else αx, α learnable;  ∂/∂x = 1 if x > 0 else α (α at 0),
    ∂/∂α = 0 if x > 0 else x."""

    latex_name = r"\operatorname{PReLU}"
    latex_parameters = 1

    nargs = 2
    elementwise = True
    numpy_form = staticmethod(prelu_np)

    def fdiff(self, argindex=1):
        x, alpha = self.args
        if argindex == 1:
            return sp.Piecewise((1, x > 0), (alpha, True))
        return sp.Piecewise((0, x > 0), (x, True))

    @staticmethod
    def elementary(x, alpha):
        return sp.Piecewise((x, x > 0), (alpha * x, True))

    @classmethod
    def exact(cls, x, alpha):
        if x.is_nonnegative:
            return x
        if x.is_nonpositive and x.is_number:
            return alpha * x
        return None


_slope = sp.Symbol("alpha", real=True)
register(Block(
    name="prelu", domain="x real, alpha real (learnable)", family="activation", function=prelu,
    formula="prelu(x, alpha) = x if x > 0 else alpha*x  (alpha learnable)",
    latex=r"\operatorname{PReLU}_{\alpha}(x) = \begin{cases} x & x > 0 \\ \alpha x & x \le 0 \end{cases}",
    derivative=r"\frac{\partial \operatorname{PReLU}}{\partial x} = \begin{cases} 1 & x > 0 \\ \alpha & x \le 0 \end{cases}, \quad "
               r"\frac{\partial \operatorname{PReLU}}{\partial \alpha} = \begin{cases} 0 & x > 0 \\ x & x \le 0 \end{cases}",
    kink="x = 0: d/dx = alpha and d/dalpha = 0 (the x <= 0 branch, as PyTorch)",
    example=lambda: Example(prelu(_x, _slope), (_x, _slope), {"x": _x, "alpha": _slope},
                            domain={_slope: Interval(-0.5, 0.5)}),
))


# --- logsigmoid -------------------------------------------------------------------------------
def logsigmoid_np(x, xp=np):
    """log σ(x) = min(x, 0) − log1p(e^{−|x|}): finite for every x, exact in both tails."""
    return xp.minimum(x, 0.0) - xp.log1p(xp.exp(-xp.abs(x)))


class logsigmoid(Primitive):
    r"""log σ(x) = −softplus(−x);   (log σ)'(x) = 1 − σ(x) = σ(−x)."""

    nargs = 1
    elementwise = True
    latex_name = r"\log\sigma"
    numpy_form = staticmethod(logsigmoid_np)

    def fdiff(self, argindex=1):
        return sigmoid(-self.args[0])

    @staticmethod
    def elementary(x):
        return -sp.log(1 + sp.exp(-x))

    @classmethod
    def exact(cls, x):
        return -sp.log(2) if x.is_zero else None


register(Block(
    name="logsigmoid", domain="x real", family="activation", function=logsigmoid,
    formula="logsigmoid(x) = log(sigmoid(x)) = -log(1 + exp(-x))",
    latex=r"\log \sigma(x) = -\log(1 + e^{-x})",
    derivative=r"(\log\sigma)'(x) = 1 - \sigma(x) = \sigma(-x)",
    example=lambda: Example(logsigmoid(_x), (_x,), {"x": _x}),
))


# --- softmin: softmax of −z --------------------------------------------------------------------
def softmin(z):
    """The vector softmin(z) = softmax(−z), entries e^{−z_i}/Σ_j e^{−z_j} (rows of a matrix expression)."""
    if isinstance(z, sp.MatrixExpr) and not isinstance(z, sp.MatrixBase):

        return row_softmax(-z)
    z = as_vector(z, "softmin input")
    return softmax([-v for v in z])


def _softmin_batched() -> Batched:
    """softmin of each row z (N × C) as RowSoftmax(−z): the backward is −softmax_vjp(−z, G)."""

    z = sp.MatrixSymbol("z", N, size("C"))
    return Batched(RowSoftmax(-z), (Arg("z", z, "rows"),), ("z",))


register(Block(
    name="softmin", domain="z in R^C", family="activation", function=None,
    formula="softmin(z)_i = exp(-z_i) / sum_j exp(-z_j) = softmax(-z)_i",
    latex=r"\operatorname{softmin}(\mathbf{z})_i = \frac{e^{-z_i}}{\sum_j e^{-z_j}} = \operatorname{softmax}(-\mathbf{z})_i",
    derivative=r"\frac{\partial \mathbf{b}}{\partial \mathbf{z}} = -\bigl(\operatorname{diag}(\mathbf{b}) - \mathbf{b}\mathbf{b}^{\top}\bigr), \quad "
               r"\frac{\partial b_i}{\partial z_j} = -b_i(\delta_{ij} - b_j), \quad \mathbf{b} = \operatorname{softmin}(\mathbf{z})",
    example=lambda: _vector_block_example(softmin, column("z", size("C"))),
    entries=lambda: _vector_block_example(softmin, vector("z", 3)),
    batched=_softmin_batched,
))


# --- glu: the gated linear unit over the last axis ---------------------------------------------------
def glu_np(Z, xp=np):
    """a ∘ σ(b) for the halves a = Z[..., :H], b = Z[..., H:] of the last axis (of even length 2H)."""
    if Z.shape[-1] % 2:
        raise ValueError(f"glu splits the last axis in halves: its length must be even, got shape {tuple(Z.shape)}")
    h = Z.shape[-1] // 2
    return Z[..., :h] * sigmoid_np(Z[..., h:], xp=xp)


def glu_vjp_np(Z, G, xp=np):
    """[G ∘ σ(b), G ∘ a ∘ σ(b)σ(−b)] along the last axis: the GLU backward (σ(−b), not 1 − σ(b))."""
    if Z.shape[-1] % 2 or G.shape[-1] * 2 != Z.shape[-1]:
        raise ValueError(f"glu backward: z of shape {tuple(Z.shape)} needs an even last axis and grad with half "
                         f"of it, got grad of shape {tuple(G.shape)}")
    h = Z.shape[-1] // 2
    a, b = Z[..., :h], Z[..., h:]
    s = sigmoid_np(b, xp=xp)
    grad_a = G * s
    return xp.concat([grad_a, grad_a * a * sigmoid_np(-b, xp=xp)], axis=-1)


class RowGLU(RowBlock):
    r"""GLU(Z) = A ∘ σ(B) row by row, Z = [A B] (N × 2H → N × H);  G_Z = [G ∘ σ(B), G ∘ A ∘ σ(B) ∘ σ(−B)]."""

    numpy_form = staticmethod(glu_np)
    name = "glu"

    @property
    def shape(self):
        rows, cols = self.arg.shape
        return (rows, cols / 2)

    def adjoint(self, G):
        return GLUVJP(self.arg, G)

    @staticmethod
    def explicit_row(row: list) -> list:
        h = len(row) // 2
        return [a * sigmoid(b) for a, b in zip(row[:h], row[h:])]

    def _latex(self, printer, **kwargs):
        return rf"\operatorname{{GLU}}\left({printer._print(self.arg)}\right)"


class GLUVJP(RowBlock):
    r"""The GLU backward [G ∘ σ(B), G ∘ A ∘ σ(B) ∘ σ(−B)] for Z = [A B] (shape of Z)."""

    numpy_form = staticmethod(glu_vjp_np)
    name = "glu_vjp"

    def __new__(cls, Z, G):
        return sp.MatrixExpr.__new__(cls, Z, G)

    def _sympystr(self, printer):
        return f"glu_vjp({printer._print(self.args[0])}, {printer._print(self.args[1])})"

    def _latex(self, printer, **kwargs):  # J_GLU(Z)ᵀ[G]: the Jacobian's transpose applied to G, row by row
        Z, G = (printer._print(a) for a in self.args)
        return rf"J_{{\operatorname{{GLU}}}}\left({Z}\right)^{{\top}}\left[{G}\right]"

    def doit(self, **hints):
        Z, G = (a.doit(**hints) for a in self.args)
        if isinstance(Z, sp.MatrixBase) and isinstance(G, sp.MatrixBase):
            h = Z.cols // 2
            rows = []
            for i in range(Z.rows):
                a, b, g = Z.row(i)[:h], Z.row(i)[h:], G.row(i)
                rows.append([gj * sigmoid(bj) for gj, bj in zip(g, b)]
                            + [gj * aj * sigmoid(bj) * sigmoid(-bj) for gj, aj, bj in zip(g, a, b)])
            return sp.ImmutableMatrix(rows)
        return type(self)(Z, G)


def glu(z):
    """GLU(z) = a ∘ σ(b) for the halves a, b of z (a vector of even length, or the rows of a matrix
    expression N × 2H)."""
    if isinstance(z, sp.MatrixExpr) and not isinstance(z, sp.MatrixBase):
        return RowGLU(z)
    z = as_vector(z, "glu input")
    if len(z) % 2:
        raise ValueError(f"glu splits its input in halves: it needs an even number of entries, got {len(z)}")
    return sp.Matrix(RowGLU.explicit_row(list(z)))


def _glu_batched() -> Batched:
    """GLU of each row z (N × 2H)."""
    z = sp.MatrixSymbol("z", N, 2 * size("H"))
    return Batched(RowGLU(z), (Arg("z", z, "rows"),), ("z",))


register(Block(
    name="glu", domain="z in R^(2H) (the last axis split in halves a, b)", family="activation", function=None,
    formula="glu(z) = a * sigmoid(b), (a, b) = the halves of z along the last axis",
    latex=r"\operatorname{GLU}(\mathbf{z}) = \mathbf{a} \odot \sigma(\mathbf{b}), \quad \mathbf{z} = (\mathbf{a}, \mathbf{b})",
    derivative=r"\frac{\partial\,\mathrm{GLU}_i}{\partial a_i} = \sigma(b_i), \quad \frac{\partial\,\mathrm{GLU}_i}{\partial b_i} = a_i\,\sigma(b_i)\,(1 - \sigma(b_i))",
    example=lambda: (lambda z: Example(glu(z), (z,), {"z": z}))(vector("z", 4)),
    batched=_glu_batched,
))
