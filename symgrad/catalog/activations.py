"""Activations: each block is its ``sympy.Function`` (forward, derivative identity, LaTeX
name, stable NumPy form) followed by its ``register`` call (domain, kink, example)."""

from __future__ import annotations

import numpy as np
import sympy as sp

from .base import Primitive
from .registry import Arg, Batched, Block, Example, Interval, N, ones, register, size
from .vectors import as_vector, to_sympy, vector

__all__ = [
    "sigmoid", "tanh", "relu", "step", "leaky_relu", "elu", "softplus",
    "softmax", "log_softmax", "maxout",
    "SoftmaxEntry", "IndexedSoftmax", "LogSoftmaxEntry", "Maxout", "route",
]

def tanh(x):
    """SymPy's own tanh (tanh' = 1 − tanh², printed \\tanh, compiled to np.tanh), mapped over
    explicit matrices and applied elementwise to matrix expressions."""
    if isinstance(x, sp.MatrixBase):
        return x.applyfunc(sp.tanh)
    if isinstance(x, sp.MatrixExpr):
        from ..matrices import elementwise

        return elementwise(sp.tanh, x)
    return sp.tanh(to_sympy(x, "tanh argument"))
_x = sp.Symbol("x", real=True)


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
    """1 where x > 0, else 0 (the ReLU derivative; 0 at the kink)."""
    return xp.where(x > 0, 1.0, xp.zeros_like(x))


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
    latex_name = r"\operatorname{LeakyReLU}_{\alpha}"
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

    def _latex(self, printer, exp=None):
        x, alpha = self.args
        tex = rf"\operatorname{{LeakyReLU}}_{{{printer._print(alpha)}}}\left({printer._print(x)}\right)"
        return tex if exp is None else rf"{tex}^{{{exp}}}"


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

    def _latex(self, printer, exp=None):
        x, alpha = self.args
        tex = rf"\operatorname{{ELU}}_{{{printer._print(alpha)}}}\left({printer._print(x)}\right)"
        return tex if exp is None else rf"{tex}^{{{exp}}}"


register(Block(
    name="elu", domain="x real, alpha > 0", family="activation", function=elu, params={"alpha": 1.0},
    formula="elu(x, alpha=1) = x if x > 0 else alpha*(exp(x) - 1)",
    latex=r"\operatorname{ELU}_{\alpha}(x) = \begin{cases} x & x > 0 \\ \alpha (e^{x} - 1) & x \le 0 \end{cases}",
    derivative=r"\operatorname{ELU}_{\alpha}'(x) = \begin{cases} 1 & x > 0 \\ \operatorname{ELU}_{\alpha}(x) + \alpha & x \le 0 \end{cases}",
    kink="x = 0: derivative alpha (the x <= 0 branch, as PyTorch); continuous when alpha = 1",
    example=lambda: Example(elu(_x, _alpha), (_x,), {"x": _x, "alpha": _alpha},
                            domain={_alpha: Interval(0.5, 2.0)}),
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
def _pick(values, i, xp=np):
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
    return _pick(e, i, xp=xp) / xp.sum(e, axis=-1)


def log_softmax_entry_np(i, *z, xp=np):
    """log a_i = (z_i − m) − log Σ_j exp(z_j − m) with m = max z."""
    z = xp.stack(xp.broadcast_arrays(*[xp.asarray(v) for v in z]), axis=-1)
    shifted = z - xp.max(z, axis=-1, keepdims=True)
    return _pick(shifted, i, xp=xp) - xp.log(xp.sum(xp.exp(shifted), axis=-1))


class SoftmaxEntry(Primitive):
    r"""a_i = softmax(z)_i = e^{z_i} / Σ_j e^{z_j};   ∂a_i/∂z_j = a_i(δ_ij − a_j).

    Arguments: the (1-based) index i, then z_1, …, z_C."""

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
        from ..matrices import row_softmax

        return row_softmax(z)
    z = as_vector(z, "softmax input")
    return sp.Matrix([SoftmaxEntry(i, *z) for i in range(1, len(z) + 1)])


def log_softmax(z) -> sp.Matrix:
    """The vector log softmax(z), entries z_i − log Σ_j e^{z_j} (rows of a matrix expression)."""
    if isinstance(z, sp.MatrixExpr) and not isinstance(z, sp.MatrixBase):
        from ..matrices import row_softmax

        return row_softmax(z, log=True)
    z = as_vector(z, "log_softmax input")
    return sp.Matrix([LogSoftmaxEntry(i, *z) for i in range(1, len(z) + 1)])


def _row_block_batched(log: bool) -> Batched:
    """softmax / log softmax of each row z (N × C)."""
    from ..matrices import RowLogSoftmax, RowSoftmax

    z = sp.MatrixSymbol("z", N, size("C"))
    return Batched((RowLogSoftmax if log else RowSoftmax)(z), (Arg("z", z, "rows"),), ("z",))


register(Block(
    name="softmax", domain="z in R^C", family="activation", function=SoftmaxEntry,
    formula="softmax(z)_i = exp(z_i) / sum_j exp(z_j)",
    latex=r"a_i = \operatorname{softmax}(\mathbf{z})_i = \frac{e^{z_i}}{\sum_j e^{z_j}}",
    derivative=r"\frac{\partial a_i}{\partial z_j} = a_i(\delta_{ij} - a_j)",
    example=lambda: (lambda z: Example(softmax(z), (z,), {"z": z}))(vector("z", 3)),
    batched=lambda: _row_block_batched(log=False),
))

register(Block(
    name="log_softmax", domain="z in R^C", family="activation", function=LogSoftmaxEntry,
    formula="log_softmax(z)_i = z_i - log(sum_j exp(z_j))",
    latex=r"\log a_i = z_i - \log \sum_j e^{z_j}",
    derivative=r"\frac{\partial \log a_i}{\partial z_j} = \delta_{ij} - a_j",
    example=lambda: (lambda z: Example(log_softmax(z), (z,), {"z": z}))(vector("z", 3)),
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
    from ..matrices import elementwise

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
