"""Losses (per sample, no reduction). Primitives carry their derivative identity; the rest
are written through primitives, so their derivatives follow from the chain rule."""

from __future__ import annotations

import numpy as np
import sympy as sp

from .activations import SoftmaxEntry, relu, sigmoid, sigmoid_np, softmax, softplus
from .rows import Entrywise, RowBlock
from .base import Primitive, elementwise_of, sum_entries
from .registry import Arg, Batched, Block, Choice, Example, Interval, N, Simplex, ones, register, size
from .vectors import as_vector, matrix, to_sympy, vector
from .rows import RowSoftmaxCrossEntropy
from .rows import elementwise
from .stable import SigmoidShiftEntries
from .rows import SoftmaxCrossEntropy
from .rows import sq_frobenius

__all__ = [
    "bce", "bce_with_logits", "cross_entropy", "softmax_cross_entropy",
    "squared_l2", "hinge", "multiclass_svm", "l2", "BCE", "BCEWithLogits", "BCEWithLogitsEntries", "CrossEntropy",
    "huber", "smooth_l1", "l1_loss", "margin_ranking", "binary_focal", "kl_div", "nll", "cosine_similarity",
    "cosine_embedding", "triplet_margin", "BinaryFocal", "Huber", "Clip", "ClampMin", "StepAtLeast", "XLogX",
    "RowDistance", "DistanceVJP", "RowCosine", "CosineVJP",
]


# --- binary cross-entropy on probabilities ----------------------------------------------------
def bce_np(a, y, xp=np):
    """−(y log a + (1 − y) log(1 − a)), with log1p for the second term."""
    return -(y * xp.log(a) + (1 - y) * xp.log1p(-a))


class BCE(Primitive):
    r"""BCE(a, y) = −(y log a + (1 − y) log(1 − a));   ∂/∂a = −y/a + (1 − y)/(1 − a)."""

    nargs = 2
    latex_name = r"\operatorname{BCE}"
    numpy_form = staticmethod(bce_np)

    def fdiff(self, argindex=1):
        a, y = self.args
        if argindex == 1:
            return -y / a + (1 - y) / (1 - a)
        return sp.log(1 - a) - sp.log(a)

    @staticmethod
    def elementary(a, y):
        return -(y * sp.log(a) + (1 - y) * sp.log(1 - a))

    @classmethod
    def on_matrices(cls, a, y):
        """Σ_ij BCE(A_ij, Y_ij) over a batch, for probabilities written A = σ(Z): on the logits Z."""
        logits = elementwise_of(a, sigmoid)
        if logits is None:
            raise TypeError("bce of a matrix needs its probabilities written as sigmoid(Z) (e.g. "
                            "bce(sigmoid(X*w), y)); or use bce_with_logits(Z, y)")
        return BCEWithLogits.on_matrices(logits, y)


def bce(a, y) -> sp.Expr:
    """Binary cross-entropy of a probability ``a`` against a label ``y`` in [0, 1]."""
    return BCE(to_sympy(a, "a"), to_sympy(y, "y"))


_a, _z = sp.Symbol("a", real=True), sp.Symbol("z", real=True)
_y = sp.Symbol("y", real=True)

register(Block(
    name="bce", domain="a in (0, 1), y in [0, 1]", family="loss", function=BCE,
    formula="bce(a, y) = -(y*log(a) + (1 - y)*log(1 - a))",
    latex=r"\mathcal{L}_{\mathrm{BCE}}(a, y) = -\bigl(y \log a + (1 - y)\log(1 - a)\bigr)",
    derivative=r"\frac{\partial \mathcal{L}}{\partial a} = -\frac{y}{a} + \frac{1 - y}{1 - a}",
    example=lambda: Example(bce(_a, _y), (_a,), {"a": _a, "y": _y},
                            domain={_a: Interval(0.05, 0.95), _y: Interval(0.0, 1.0)}),
))


# --- binary cross-entropy on logits -------------------------------------------------------------
def bce_with_logits_np(z, y, xp=np):
    """BCE(σ(z), y) = c·z + log1p(e^{−|z|}), c = 1 − y for z ≥ 0 and −y below: finite for every finite
    z; at ±inf the limit (inf, or 0 where c = 0: y = 1 at +inf, y = 0 at −inf)."""
    c = xp.where(z >= 0, 1 - y, -y)
    with np.errstate(invalid="ignore"):  # 0 · inf where c = 0: replaced by the limit 0
        cz = c * z
    return xp.where(c == 0, 0.0, cz) + xp.log1p(xp.exp(-xp.abs(z)))


class BCEWithLogits(Primitive):
    r"""BCE(σ(z), y) = softplus(z) − y z;   ∂/∂z = σ(z) − y."""

    nargs = 2
    latex_name = r"\operatorname{BCE}_{\mathrm{logits}}"
    numpy_form = staticmethod(bce_with_logits_np)

    def fdiff(self, argindex=1):
        z, y = self.args
        return sigmoid(z) - y if argindex == 1 else -z

    @staticmethod
    def elementary(z, y):
        return softplus.elementary(z) - y * z

    @classmethod
    def on_matrices(cls, z, y):
        """Σ_ij BCE(σ(Z_ij), Y_ij) over a batch (reduction "sum"; divide by N for the mean)."""
        if getattr(y, "shape", None) != z.shape:
            raise ValueError(f"the targets must have the logits' shape {z.shape}, got {getattr(y, 'shape', 'a scalar')}")
        return sum_entries(BCEWithLogitsEntries(z, y))


class BCEWithLogitsEntries(Entrywise):
    r"""BCE(σ(Z), Y) entry by entry (logistic regression on a batch); G_Z = G ∘ (σ(Z) − Y), fused."""

    function = BCEWithLogits
    numpy_form = staticmethod(bce_with_logits_np)

    @staticmethod
    def partial(Z, Y):

        return SigmoidShiftEntries(Z, sp.MatMul(-1, Y))


def bce_with_logits(z, y) -> sp.Expr:
    """Binary cross-entropy of σ(z) against y, written on the logit z."""
    return BCEWithLogits(to_sympy(z, "z"), to_sympy(y, "y"))


register(Block(
    name="bce_with_logits", domain="z real, y in [0, 1]", family="loss", function=BCEWithLogits,
    formula="bce_with_logits(z, y) = bce(sigmoid(z), y) = softplus(z) - y*z",
    latex=r"\mathcal{L}(z, y) = \operatorname{BCE}(\sigma(z), y) = \log(1 + e^{z}) - y z",
    derivative=r"\frac{\partial \mathcal{L}}{\partial z} = \sigma(z) - y",
    example=lambda: Example(bce_with_logits(_z, _y), (_z,), {"z": _z, "y": _y},
                            domain={_y: Interval(0.0, 1.0)}),
))


# --- multi-class cross-entropy -------------------------------------------------------------
def cross_entropy_np(*args, xp=np):
    """−Σ_k y_k log a_k for a = args[:C], y = args[C:]."""
    c = len(args) // 2
    return -sum(y * xp.log(a) for a, y in zip(args[:c], args[c:]))


class CrossEntropy(Primitive):
    r"""CE(a, y) = −Σ_k y_k log a_k with targets y on the simplex (one-hot or probabilities);
    ∂/∂a_k = −y_k/a_k. Arguments: a_1, …, a_C, y_1, …, y_C."""

    latex_name = r"\operatorname{CE}"
    numpy_form = staticmethod(cross_entropy_np)

    @classmethod
    def eval(cls, *args):
        if len(args) % 2:
            raise TypeError("CrossEntropy takes a_1, …, a_C, y_1, …, y_C (an even number of arguments)")
        return super().eval(*args)

    def fdiff(self, argindex=1):
        c = len(self.args) // 2
        a, y = self.args[:c], self.args[c:]
        if argindex <= c:
            return -y[argindex - 1] / a[argindex - 1]
        return -sp.log(a[argindex - c - 1])

    @staticmethod
    def elementary(*args):
        c = len(args) // 2
        return -sp.Add(*[y * sp.log(a) for a, y in zip(args[:c], args[c:])])

    def constraints(self):
        c = len(self.args) // 2
        return [tuple(self.args[c:])]

    def latex_args(self):
        c = len(self.args) // 2
        return (sp.Matrix(self.args[:c]).T, sp.Matrix(self.args[c:]).T)


def cross_entropy(a, y) -> sp.Expr:
    """Multi-class cross-entropy of probabilities ``a`` (list or Matrix).

    ``y`` is a class index (1-based, as the seeds' a_y; an int or an integer Symbol) or a
    target vector on the simplex (one-hot or probabilities): −log a_y or −Σ_k y_k log a_k.
    """
    a = as_vector(a, "cross_entropy probabilities")
    if isinstance(y, (list, tuple, sp.MatrixBase)):
        y = as_vector(y, "cross_entropy targets")
        if len(y) != len(a):
            raise ValueError(f"cross_entropy: {len(a)} probabilities but {len(y)} targets")
        return CrossEntropy(*a, *y)
    y = to_sympy(y, "class index y")
    if y.is_Integer:
        if not 1 <= int(y) <= len(a):
            raise ValueError(f"class index y = {y} is out of range 1..{len(a)} (indices start at 1)")
        return -sp.log(a[int(y) - 1])
    if y.is_integer is not True:
        raise TypeError("a symbolic class index must be an integer Symbol, e.g. Symbol('y', integer=True)")
    if all(isinstance(e, SoftmaxEntry) and e.args[1:] == a[0].args[1:] for e in a):
        return -sp.log(SoftmaxEntry(y, *a[0].args[1:]))
    deltas = [sp.KroneckerDelta(k, y) for k in range(1, len(a) + 1)]
    return CrossEntropy(*a, *deltas)


def softmax_cross_entropy(z, y) -> sp.Expr:
    """Cross-entropy of softmax(z) (z: logits) against a class index or target vector; for
    matrix expressions Z (N × C) and Y (rows one-hot), the summed loss over the rows."""
    if isinstance(z, sp.MatrixExpr) and not isinstance(z, sp.MatrixBase):

        if getattr(y, "shape", None) != z.shape:
            raise ValueError(f"softmax_cross_entropy: targets must have the logits' shape {z.shape}")
        return SoftmaxCrossEntropy(z, y)
    return cross_entropy(softmax(z), y)


def _ce_example() -> Example:
    a, y = vector("a", 3), vector("y", 3)
    return Example(cross_entropy(a, y), (a,), {"a": a, "y": y},
                   domain={**{s: Interval(0.05, 1.0) for s in a}, tuple(y): Simplex()})


def _class_loss_batched(name: str) -> Batched:
    """Per-sample losses over C classes: scores / probabilities (N × C) against targets Y (N × C:
    one-hot rows made from 0-based class indices, or probability rows)."""

    C = size("C")
    first = "a" if name == "cross_entropy" else ("z" if name == "softmax_cross_entropy" else "s")
    Z, Y = sp.MatrixSymbol(first, N, C), sp.MatrixSymbol("y", N, C)
    if name == "cross_entropy":  # −Σ_j y_j log a_j
        forward = -sp.HadamardProduct(Y, elementwise(sp.log, Z)) * ones(C, 1)
    elif name == "softmax_cross_entropy":
        forward = RowSoftmaxCrossEntropy(Z, Y)
    else:  # Σ_{j ≠ y} max(0, s_j − s_y + 1): the margins, with the true class masked out
        margins = Z - sp.HadamardProduct(Z, Y) * ones(C, C) + ones(N, C)
        forward = sp.HadamardProduct(elementwise(relu, margins), ones(N, C) - Y) * ones(C, 1)
    wrt = (first,) if name == "multiclass_svm" else (first, "y")  # torch: y rows differentiable, SVM y indices only
    return Batched(forward, (Arg(first, Z, "rows"), Arg("y", Y, "labels")), wrt)


register(Block(
    name="cross_entropy", domain="a_k in (0, 1]; targets y on the simplex (sum y_k = 1) or a class index in 1..C", family="loss", function=CrossEntropy,
    formula="cross_entropy(a, y) = -sum_k y_k*log(a_k)   (or -log(a_y) for a class index y)",
    latex=r"\mathcal{L}_{\mathrm{CE}}(\mathbf{a}, \mathbf{y}) = -\sum_k y_k \log a_k",
    derivative=r"\frac{\partial \mathcal{L}}{\partial a_k} = -\frac{y_k}{a_k}",
    example=_ce_example,
    batched=lambda: _class_loss_batched("cross_entropy"),
))


def _softmax_ce_example() -> Example:
    z, y = vector("z", 3), vector("y", 3)
    return Example(softmax_cross_entropy(z, y), (z,), {"z": z, "y": y},
                   domain={tuple(y): Simplex(onehot=True)})


register(Block(
    name="softmax_cross_entropy", domain="z in R^C; targets y on the simplex (sum y_k = 1) or a class index in 1..C", family="loss", function=None,
    formula="softmax_cross_entropy(z, y) = cross_entropy(softmax(z), y)",
    latex=r"\mathcal{L}(\mathbf{z}, \mathbf{y}) = -\sum_k y_k \log \operatorname{softmax}(\mathbf{z})_k",
    derivative=r"\frac{\partial \mathcal{L}}{\partial \mathbf{z}} = \mathbf{a} - \mathbf{y}"
               r" \quad (\textstyle\sum_k y_k = 1)",
    example=_softmax_ce_example,
    batched=lambda: _class_loss_batched("softmax_cross_entropy"),
))


# --- squared L2, hinge, multi-class SVM, L2 regularisation -------------------------------------
def squared_l2(y_hat, y) -> sp.Expr:
    """‖ŷ − y‖² = Σ_i (ŷ_i − y_i)² (scalars, vectors, or matrix expressions: tr((ŷ − y)ᵀ(ŷ − y)))."""
    if isinstance(y_hat, sp.MatrixExpr) and not isinstance(y_hat, sp.MatrixBase):

        return sq_frobenius(y_hat - y)
    if isinstance(y_hat, (list, tuple, sp.MatrixBase)):
        y_hat, y = as_vector(y_hat, "y_hat"), as_vector(y, "y")
        if y_hat.shape != y.shape:
            raise ValueError(f"squared_l2: y_hat has {len(y_hat)} entries but y has {len(y)}")
        return sp.Add(*[(p - t) ** 2 for p, t in zip(y_hat, y)])
    return (to_sympy(y_hat, "y_hat") - to_sympy(y, "y")) ** 2


def _sq_l2_example() -> Example:
    p, t = vector("p", 2), vector("y", 2)
    return Example(squared_l2(p, t), (p,), {"p": p, "y": t})


def _sq_l2_batched() -> Batched:
    """Σ_j (p_j − y_j)² for each row p of a batch (N × K)."""
    K = size("K")
    P, Y = sp.MatrixSymbol("p", N, K), sp.MatrixSymbol("y", N, K)
    return Batched(sp.HadamardPower(P - Y, 2) * ones(K, 1), (Arg("p", P, "rows"), Arg("y", Y, "rows")), ("p", "y"))


register(Block(
    name="squared_l2", domain="y_hat, y in R^n", family="loss",
    formula="squared_l2(p, y) = sum_i (p_i - y_i)^2",
    latex=r"\mathcal{L}(\hat{\mathbf{y}}, \mathbf{y}) = \lVert \hat{\mathbf{y}} - \mathbf{y} \rVert_2^2",
    derivative=r"\frac{\partial \mathcal{L}}{\partial \hat{\mathbf{y}}} = 2(\hat{\mathbf{y}} - \mathbf{y})",
    example=_sq_l2_example,
    batched=_sq_l2_batched,
))


def hinge(s, t) -> sp.Expr:
    """max(0, 1 − t·s) for a score s and a label t ∈ {−1, +1}."""
    return relu(1 - to_sympy(t, "t") * to_sympy(s, "s"))


_s, _t = sp.Symbol("s", real=True), sp.Symbol("t", real=True)
register(Block(
    name="hinge", domain="s real, t in {-1, +1}", family="loss",
    formula="hinge(s, t) = max(0, 1 - t*s)",
    latex=r"\ell(s, t) = \max(0, 1 - t s)",
    derivative=r"\frac{\partial \ell}{\partial s} = -t\,\mathbf{1}[1 - t s > 0]",
    kink="t*s = 1: derivative 0 (the max gate routes to the constant 0)",
    example=lambda: Example(hinge(_s, _t), (_s,), {"s": _s, "t": _t},
                            domain={_t: Choice((-1, 1))}),
))


def multiclass_svm(s, y, margin=1) -> sp.Expr:
    """The seeds' SVM loss Σ_{j≠y} max(0, s_j − s_y + margin), y a class index (1-based int)."""
    s = as_vector(s, "scores")
    if not isinstance(y, int) or isinstance(y, bool):
        raise TypeError("multiclass_svm: y must be a Python int class index (1-based)")
    if not 1 <= y <= len(s):
        raise ValueError(f"class index y = {y} is out of range 1..{len(s)} (indices start at 1)")
    margin = to_sympy(margin, "margin")
    return sp.Add(*[relu(s[j] - s[y - 1] + margin) for j in range(len(s)) if j != y - 1])


def _svm_example() -> Example:
    s = vector("s", 3)
    return Example(multiclass_svm(s, 2), (s,), {"s": s})


register(Block(
    name="multiclass_svm", domain="s in R^C, y in 1..C", family="loss",
    formula="multiclass_svm(s, y) = sum_{j != y} max(0, s_j - s_y + 1)",
    latex=r"L_i = \sum_{j \ne y_i} \max(0, s_j - s_{y_i} + 1)",
    derivative=r"\frac{\partial L_i}{\partial s_j} = \mathbf{1}[s_j - s_{y_i} + 1 > 0],\quad"
               r" \frac{\partial L_i}{\partial s_{y_i}} = -\sum_{j \ne y_i} \mathbf{1}[s_j - s_{y_i} + 1 > 0]",
    kink="margin exactly 0: derivative 0 (the max gate routes to the constant 0)",
    example=_svm_example,
    batched=lambda: _class_loss_batched("multiclass_svm"),
))


def l2(w, lam=1) -> sp.Expr:
    """L2 regularisation λ Σ_k w_k² over every entry of ``w`` (scalar, vector or matrix)."""
    lam = to_sympy(lam, "lambda")
    if isinstance(w, sp.MatrixExpr) and not isinstance(w, sp.MatrixBase):

        return lam * sq_frobenius(w)
    entries = list(w) if isinstance(w, (list, tuple, sp.MatrixBase)) else [to_sympy(w, "w")]
    return lam * sp.Add(*[to_sympy(e, "w entry") ** 2 for e in entries])


def _l2_example() -> Example:
    w, lam = matrix("W", 2, 2), sp.Symbol("lambda", positive=True)
    return Example(l2(w, lam), (w,), {"W": w, "lambda": lam})


def _l2_batched() -> Batched:
    """λ Σ_k W_k² over the last axis of W (sum the result for a whole weight matrix)."""
    K = size("K")
    W, lam = sp.MatrixSymbol("W", N, K), sp.Symbol("lam", real=True)
    return Batched(lam * sp.HadamardPower(W, 2) * ones(K, 1), (Arg("W", W, "rows"), Arg("lam", lam, "param")), ("W",))


register(Block(
    name="l2", domain="W real, lambda >= 0", family="loss",
    formula="l2(W, lambda) = lambda * sum_k W_k^2",
    latex=r"R(W) = \lambda \sum_{k} W_k^2",
    derivative=r"\frac{\partial R}{\partial W} = 2\lambda W",
    example=_l2_example,
    batched=_l2_batched,
))


# === the losses of PyTorch (torch.nn.functional, reduction='none') ============================
# --- the hinge of margin losses: max(u, 0) with torch.clamp_min's gradient, 1 at u = 0 ----------
def step_at_least_np(u, xp=np):
    """1 where u ≥ 0, else 0 (torch.clamp_min(u, 0)'s gradient: it passes at u = 0; 0 at NaN)."""
    return xp.where(u >= 0, 1.0, xp.zeros_like(u))


class StepAtLeast(Primitive):
    r"""𝟙[u ≥ 0] (1 at u = 0, unlike :class:`step`): the gradient of torch.clamp_min(u, 0)."""

    nargs = 1
    elementwise = True
    numpy_form = staticmethod(step_at_least_np)

    def fdiff(self, argindex=1):
        return sp.S.Zero

    @staticmethod
    def elementary(u):
        return sp.Piecewise((1, u >= 0), (0, True))

    @classmethod
    def exact(cls, u):
        return sp.S.One if u.is_nonnegative else (sp.S.Zero if u.is_negative else None)

    def _latex(self, printer, exp=None):
        tex = rf"\mathbf{{1}}\left[{printer._print(self.args[0])} \ge 0\right]"
        return tex if exp is None else rf"{tex}^{{{exp}}}"


def clamp_min_np(u, xp=np):
    """max(u, 0) (NaN stays NaN)."""
    return xp.maximum(u, 0)


class ClampMin(Primitive):
    r"""[u]₊ = max(u, 0) as the margin losses of PyTorch take it (``clamp_min(u, 0)``);
    [u]₊' = 𝟙[u ≥ 0]: at the hinge u = 0 the gradient passes (ReLU'(0) = 0 does not)."""

    nargs = 1
    elementwise = True
    numpy_form = staticmethod(clamp_min_np)

    def fdiff(self, argindex=1):
        return StepAtLeast(self.args[0])

    @staticmethod
    def elementary(u):
        return sp.Max(0, u)

    @classmethod
    def exact(cls, u):
        return u if u.is_nonnegative else (sp.S.Zero if u.is_negative else None)

    def _latex(self, printer, exp=None):
        tex = rf"\left[{printer._print(self.args[0])}\right]_{{+}}"
        return tex if exp is None else rf"{tex}^{{{exp}}}"


# --- Huber, smooth L1, L1 ---------------------------------------------------------------------
def huber_np(d, delta=1.0, xp=np):
    """½d² for |d| < δ, δ(|d| − ½δ) otherwise, as m(|d| − ½m) with m = min(|d|, δ): one branch,
    no d² overflow for large |d| (the same roundings as torch.nn.functional.huber_loss)."""
    a = xp.abs(d)
    m = xp.minimum(a, delta)
    return m * (a - 0.5 * m)


def clip_np(d, delta=1.0, xp=np):
    """d clipped to [−δ, δ] (NaN stays NaN): the Huber derivative in one pass."""
    return xp.clip(d, -delta, delta)


class Clip(Primitive):
    r"""clip(d, −δ, δ) = max(−δ, min(d, δ)), the Huber derivative;  clip' = 𝟙[|d| < δ] (0 beyond δ)."""

    nargs = 2
    elementwise = True
    numpy_form = staticmethod(clip_np)

    def fdiff(self, argindex=1):
        d, delta = self.args
        if argindex == 1:
            return sp.Piecewise((1, sp.Abs(d) < delta), (0, True))
        return sp.Piecewise((-1, d < -delta), (1, d > delta), (0, True))

    @staticmethod
    def elementary(d, delta):
        return sp.Piecewise((-delta, d < -delta), (delta, d > delta), (d, True))

    def _latex(self, printer, exp=None):
        d, delta = (printer._print(a) for a in self.args)
        tex = rf"\operatorname{{clip}}\left({d}, -{delta}, {delta}\right)"
        return tex if exp is None else rf"{tex}^{{{exp}}}"


class Huber(Primitive):
    r"""Huber_δ(d) = ½d² for |d| < δ, δ(|d| − ½δ) otherwise;  Huber_δ'(d) = clip(d, −δ, δ)
    (C¹: both branches give ±δ at |d| = δ)."""

    nargs = 2
    elementwise = True
    latex_name = r"\operatorname{Huber}"
    latex_parameters = 1
    numpy_form = staticmethod(huber_np)

    def fdiff(self, argindex=1):
        d, delta = self.args
        if argindex == 1:
            return Clip(d, delta)
        return sp.Piecewise((0, sp.Abs(d) < delta), (sp.Abs(d) - delta, True))

    @staticmethod
    def elementary(d, delta):
        return sp.Piecewise((d ** 2 / 2, sp.Abs(d) < delta), (delta * (sp.Abs(d) - delta / 2), True))


def huber(x, y, delta=1) -> sp.Expr:
    """Huber_δ(x − y) of a prediction x against a target y (torch's huber_loss, reduction='none')."""
    return Huber(to_sympy(x, "x") - to_sympy(y, "y"), to_sympy(delta, "delta"))


def smooth_l1(x, y, beta=1) -> sp.Expr:
    """Huber_β(x − y)/β: ½d²/β for |d| < β, |d| − ½β otherwise (torch's smooth_l1_loss, β > 0)."""
    beta = to_sympy(beta, "beta")
    return Huber(to_sympy(x, "x") - to_sympy(y, "y"), beta) / beta


def l1_loss(x, y) -> sp.Expr:
    """|x − y| (torch's l1_loss, reduction='none'); its derivative sign(x − y) is 0 at x = y."""
    return sp.Abs(to_sympy(x, "x") - to_sympy(y, "y"))


_x, _delta, _beta = sp.Symbol("x", real=True), sp.Symbol("delta", positive=True), sp.Symbol("beta", positive=True)

register(Block(
    name="huber", domain="x, y real, delta > 0", family="loss", function=Huber, params={"delta": 1.0},
    formula="huber(x, y, delta=1) = 0.5*(x - y)^2 if |x - y| < delta else delta*(|x - y| - 0.5*delta)",
    latex=r"\ell_{\delta}(x, y) = \begin{cases} \tfrac12 (x - y)^2 & |x - y| < \delta \\"
          r" \delta\bigl(|x - y| - \tfrac12\delta\bigr) & \text{otherwise} \end{cases}",
    derivative=r"\frac{\partial \ell}{\partial x} = -\frac{\partial \ell}{\partial y}"
               r" = \operatorname{clip}(x - y, -\delta, \delta)",
    kink="|x - y| = delta: derivative ±delta from both branches (C^1, as PyTorch)",
    example=lambda: Example(huber(_x, _y, _delta), (_x, _y), {"x": _x, "y": _y, "delta": _delta},
                            domain={_delta: Interval(0.3, 2.0)}),
))

register(Block(
    name="smooth_l1", domain="x, y real, beta > 0", family="loss", function=Huber, params={"beta": 1.0},
    formula="smooth_l1(x, y, beta=1) = huber(x, y, beta)/beta = 0.5*(x - y)^2/beta if |x - y| < beta else |x - y| - 0.5*beta",
    latex=r"\ell_{\beta}(x, y) = \frac{\operatorname{Huber}_{\beta}(x - y)}{\beta} = \begin{cases}"
          r" \tfrac{1}{2\beta} (x - y)^2 & |x - y| < \beta \\ |x - y| - \tfrac12\beta & \text{otherwise} \end{cases}",
    derivative=r"\frac{\partial \ell}{\partial x} = -\frac{\partial \ell}{\partial y}"
               r" = \operatorname{clip}\Bigl(\frac{x - y}{\beta}, -1, 1\Bigr)",
    kink="|x - y| = beta: derivative ±1 from both branches (C^1, as PyTorch); beta = 0 (torch's L1) is excluded",
    example=lambda: Example(smooth_l1(_x, _y, _beta), (_x, _y), {"x": _x, "y": _y, "beta": _beta},
                            domain={_beta: Interval(0.3, 2.0)}),
))

register(Block(
    name="l1_loss", domain="x, y real", family="loss",
    formula="l1_loss(x, y) = |x - y|",
    latex=r"\ell(x, y) = |x - y|",
    derivative=r"\frac{\partial \ell}{\partial x} = -\frac{\partial \ell}{\partial y} = \operatorname{sign}(x - y)",
    kink="x = y: derivative 0 (sign(0) = 0, as PyTorch)",
    example=lambda: Example(l1_loss(_x, _y), (_x, _y), {"x": _x, "y": _y}),
))


# --- margin ranking --------------------------------------------------------------------------
def margin_ranking(x1, x2, y, margin=0) -> sp.Expr:
    """[−y(x1 − x2) + margin]₊ for a label y ∈ {−1, +1} (x1 should rank higher when y = 1)."""
    x1, x2, y = to_sympy(x1, "x1"), to_sympy(x2, "x2"), to_sympy(y, "y")
    return ClampMin(-y * (x1 - x2) + to_sympy(margin, "margin"))


_x1, _x2, _margin = sp.symbols("x1 x2 margin", real=True)
register(Block(
    name="margin_ranking", domain="x1, x2 real, y in {-1, +1}, margin real", family="loss", params={"margin": 0.0},
    formula="margin_ranking(x1, x2, y, margin=0) = max(0, -y*(x1 - x2) + margin)",
    latex=r"\ell(x_1, x_2, y) = \max\bigl(0, -y(x_1 - x_2) + m\bigr)",
    derivative=r"\frac{\partial \ell}{\partial x_1} = -\frac{\partial \ell}{\partial x_2} = -y\,g,\quad"
               r" \frac{\partial \ell}{\partial y} = -(x_1 - x_2)\,g,\quad g = \mathbf{1}[-y(x_1 - x_2) + m \ge 0]",
    kink="-y*(x1 - x2) + margin = 0: the gradient passes (torch.clamp_min's convention, not ReLU'(0) = 0)",
    example=lambda: Example(margin_ranking(_x1, _x2, _t, _margin), (_x1, _x2, _t),
                            {"x1": _x1, "x2": _x2, "y": _t, "margin": _margin},
                            domain={_t: Choice((-1, 1)), _margin: Interval(0.0, 1.0)}),
))


# --- binary focal loss on logits (torchvision.ops.sigmoid_focal_loss) --------------------------
def binary_focal_np(z, y, gamma=2.0, alpha=0.25, xp=np):
    """α_t q^γ BCE(σ(z), y), q = 1 − p_t = (1 − y)σ(z) + yσ(−z) from the stable sigmoids (torchvision's
    1 − (p y + (1 − p)(1 − y)) cancels where σ(z) rounds to 1)."""
    q = (1 - y) * sigmoid_np(z, xp=xp) + y * sigmoid_np(-z, xp=xp)
    return (alpha * y + (1 - alpha) * (1 - y)) * q ** gamma * bce_with_logits_np(z, y, xp=xp)


class BinaryFocal(Primitive):
    r"""FL(z, y) = α_t q^γ CE with CE = BCE(σ(z), y), q = 1 − p_t = (1 − y)σ(z) + yσ(−z),
    α_t = αy + (1 − α)(1 − y);   ∂FL/∂z = α_t (q^γ (σ(z) − y) + γ(1 − 2y) σ(z)σ(−z) CE q^{γ−1}),
    ∂FL/∂y = q^γ((2α − 1) CE − α_t z) + α_t γ (σ(−z) − σ(z)) CE q^{γ−1} — never divided by q, which
    underflows to 0 at logits beyond ±745."""

    nargs = 4
    latex_name = r"\operatorname{FL}"
    latex_parameters = 2
    numpy_form = staticmethod(binary_focal_np)

    def fdiff(self, argindex=1):
        z, y, gamma, alpha = self.args
        s, t, ce = sigmoid(z), sigmoid(-z), BCEWithLogits(z, y)
        q = (1 - y) * s + y * t
        alpha_t = alpha * y + (1 - alpha) * (1 - y)
        if argindex == 1:
            return alpha_t * (q ** gamma * (s - y) + gamma * (1 - 2 * y) * s * t * ce * q ** (gamma - 1))
        if argindex == 2:
            return q ** gamma * ((2 * alpha - 1) * ce - alpha_t * z) + alpha_t * gamma * (t - s) * ce * q ** (gamma - 1)
        if argindex == 3:
            return alpha_t * q ** gamma * sp.log(q) * ce
        return (2 * y - 1) * q ** gamma * ce

    @staticmethod
    def elementary(z, y, gamma, alpha):
        q = (1 - y) * sigmoid.elementary(z) + y * sigmoid.elementary(-z)
        return (alpha * y + (1 - alpha) * (1 - y)) * q ** gamma * BCEWithLogits.elementary(z, y)


def binary_focal(z, y, gamma=2, alpha=0.25) -> sp.Expr:
    """α_t (1 − p_t)^γ BCE(σ(z), y) on a logit z against y ∈ [0, 1]: torchvision's sigmoid_focal_loss,
    reduction='none', for α ≥ 0 (torchvision's α < 0, no weighting, is α_t = 1: not this block)."""
    return BinaryFocal(to_sympy(z, "z"), to_sympy(y, "y"), to_sympy(gamma, "gamma"), to_sympy(alpha, "alpha"))


_gamma, _alpha = sp.Symbol("gamma", positive=True), sp.Symbol("alpha", positive=True)
register(Block(
    name="binary_focal", domain="z real, y in [0, 1], gamma >= 1 (gamma < 1: q^(gamma-1) diverges where q underflows), alpha in [0, 1]",
    family="loss", function=BinaryFocal,
    params={"gamma": 2.0, "alpha": 0.25},
    formula="binary_focal(z, y, gamma=2, alpha=0.25) = alpha_t*(1 - p_t)^gamma*bce_with_logits(z, y),"
            " 1 - p_t = (1 - y)*sigmoid(z) + y*sigmoid(-z), alpha_t = alpha*y + (1 - alpha)*(1 - y)",
    latex=r"\mathcal{L}(z, y) = \alpha_t (1 - p_t)^{\gamma}\,\operatorname{BCE}(\sigma(z), y),\quad"
          r" 1 - p_t = (1 - y)\,\sigma(z) + y\,\sigma(-z)",
    derivative=r"\frac{\partial \mathcal{L}}{\partial z} = \alpha_t \bigl(q^{\gamma} (\sigma(z) - y)"
               r" + \gamma (1 - 2y)\,\sigma(z)\sigma(-z)\,\mathrm{CE}\,q^{\gamma - 1}\bigr),\quad"
               r" \frac{\partial \mathcal{L}}{\partial y} = q^{\gamma}\bigl((2\alpha - 1)\mathrm{CE} - \alpha_t z\bigr)"
               r" + \alpha_t \gamma (\sigma(-z) - \sigma(z))\,\mathrm{CE}\,q^{\gamma - 1},\quad q = 1 - p_t",
    example=lambda: Example(binary_focal(_z, _y, _gamma, _alpha), (_z, _y),
                            {"z": _z, "y": _y, "gamma": _gamma, "alpha": _alpha},
                            domain={_y: Interval(0.0, 1.0), _gamma: Interval(1.0, 3.0), _alpha: Interval(0.1, 0.9)}),
))


# --- KL divergence (input: log-probabilities, as torch.nn.functional.kl_div) -------------------
def xlogx_np(t, xp=np):
    """t log t, 0 at t = 0 (torch.xlogy(t, t)): one-hot targets give a finite loss."""
    return t * xp.log(xp.where(t == 0, 1.0, t))


class XLogX(Primitive):
    r"""t log t, with 0 at t = 0 (the limit);   (t log t)' = log t + 1."""

    nargs = 1
    elementwise = True
    numpy_form = staticmethod(xlogx_np)

    def fdiff(self, argindex=1):
        return sp.log(self.args[0]) + 1

    @staticmethod
    def elementary(t):
        return t * sp.log(t)

    @classmethod
    def exact(cls, t):
        return sp.S.Zero if t.is_zero or t == 1 else None

    def _latex(self, printer, exp=None):
        t = printer.parenthesize(self.args[0], 50)
        tex = rf"{t} \log {t}"
        return tex if exp is None else rf"\left({tex}\right)^{{{exp}}}"


def kl_div(x, t, log_target: bool = False) -> sp.Expr:
    """Σ_j t_j (log t_j − x_j) (``log_target``: Σ_j e^{t_j}(t_j − x_j)) for log-probabilities x
    and targets t (lists or Matrices): torch's kl_div(x, t, reduction='none') summed over classes."""
    x, t = as_vector(x, "kl_div input"), as_vector(t, "kl_div target")
    if len(x) != len(t):
        raise ValueError(f"kl_div: {len(x)} log-probabilities but {len(t)} targets")
    if log_target:
        return sp.Add(*[sp.exp(b) * (b - a) for a, b in zip(x, t)])
    return sp.Add(*[XLogX(b) - b * a for a, b in zip(x, t)])


def kl_div_log_target(x, t) -> sp.Expr:
    """Σ_j e^{t_j}(t_j − x_j): :func:`kl_div` with ``log_target`` (the block of that name, typeable)."""
    return kl_div(x, t, log_target=True)


def _kl_example(log_target: bool) -> Example:
    x, t = vector("x", 3), vector("t", 3)
    domain = {} if log_target else {s: Interval(0.05, 1.0) for s in t}
    return Example(kl_div(x, t, log_target), (x, t), {"x": x, "t": t}, domain=domain)


def _kl_batched(log_target: bool) -> Batched:
    """Per-sample KL(t ‖ e^x) over rows x, t (N × C): both differentiated, as torch does."""

    C = size("C")
    X, T = sp.MatrixSymbol("x", N, C), sp.MatrixSymbol("t", N, C)
    if log_target:
        pointwise = sp.HadamardProduct(elementwise(sp.exp, T), T - X)
    else:
        pointwise = elementwise(XLogX, T) - sp.HadamardProduct(T, X)
    return Batched(pointwise * ones(C, 1), (Arg("x", X, "rows"), Arg("t", T, "rows")), ("x", "t"))


register(Block(
    name="kl_div", domain="x real (log-probabilities); t >= 0 (t > 0 for the gradient in t)", family="loss",
    formula="kl_div(x, t) = sum_j t_j*(log(t_j) - x_j)   (0 log 0 = 0; torch's kl_div summed over classes)",
    latex=r"\mathcal{L}(\mathbf{x}, \mathbf{t}) = \sum_j t_j (\log t_j - x_j)",
    derivative=r"\frac{\partial \mathcal{L}}{\partial x_j} = -t_j,\quad"
               r" \frac{\partial \mathcal{L}}{\partial t_j} = \log t_j + 1 - x_j",
    kink="t_j = 0: the term is 0 (t log t -> 0), as torch.xlogy; its gradient in t_j is not finite there",
    example=lambda: _kl_example(False),
    batched=lambda: _kl_batched(False),
))

register(Block(
    name="kl_div_log_target", domain="x, t real (log-probabilities)", family="loss",
    formula="kl_div_log_target(x, t) = sum_j exp(t_j)*(t_j - x_j)   (torch's kl_div(..., log_target=True) summed over classes)",
    latex=r"\mathcal{L}(\mathbf{x}, \mathbf{t}) = \sum_j e^{t_j} (t_j - x_j)",
    derivative=r"\frac{\partial \mathcal{L}}{\partial x_j} = -e^{t_j},\quad"
               r" \frac{\partial \mathcal{L}}{\partial t_j} = e^{t_j}(t_j - x_j + 1)",
    example=lambda: _kl_example(True),
    batched=lambda: _kl_batched(True),
))


# --- negative log-likelihood on log-probabilities --------------------------------------------
def nll(x, y) -> sp.Expr:
    """−x_y for log-probabilities x and a class index y (1-based int, as cross_entropy), or
    −Σ_j y_j x_j for a target vector y (torch's nll_loss, reduction='none')."""
    x = as_vector(x, "nll log-probabilities")
    if isinstance(y, (list, tuple, sp.MatrixBase)):
        y = as_vector(y, "nll targets")
        if len(y) != len(x):
            raise ValueError(f"nll: {len(x)} log-probabilities but {len(y)} targets")
        return -sp.Add(*[a * b for a, b in zip(x, y)])
    if isinstance(y, sp.Integer):
        y = int(y)
    if not isinstance(y, int) or isinstance(y, bool):
        raise TypeError("nll: y must be an integer class index (1-based) or a target vector")
    if not 1 <= y <= len(x):
        raise ValueError(f"class index y = {y} is out of range 1..{len(x)} (indices start at 1)")
    return -x[y - 1]


def _nll_example() -> Example:
    x, y = vector("x", 3), vector("y", 3)
    return Example(nll(x, y), (x,), {"x": x, "y": y}, domain={tuple(y): Simplex(onehot=True)})


def _nll_batched() -> Batched:
    """−Σ_j y_j x_j per row; y (class indices or rows) is data, not differentiated."""
    C = size("C")
    X, Y = sp.MatrixSymbol("x", N, C), sp.MatrixSymbol("y", N, C)
    return Batched(-sp.HadamardProduct(Y, X) * ones(C, 1), (Arg("x", X, "rows"), Arg("y", Y, "labels")), ("x",))


register(Block(
    name="nll", domain="x real (log-probabilities); y a class index or target rows (not differentiated)",
    family="loss",
    formula="nll(x, y) = -x_y   (or -sum_j y_j*x_j for target rows; y is not differentiated)",
    latex=r"\mathcal{L}(\mathbf{x}, y) = -x_y = -\sum_j y_j x_j",
    derivative=r"\frac{\partial \mathcal{L}}{\partial x_j} = -y_j",
    example=_nll_example,
    batched=_nll_batched,
))


# --- row norms and cosines (row blocks of the batched forms) -----------------------------------
def row_norm_np(D, xp=np):
    """‖d‖₂ of each row (keeping the last axis), scaled by the row's largest |d_j| so that d² can
    neither overflow nor underflow (‖(1e200, 2e200)‖ = 2.24e200, not inf). A NumPy array whose
    plain norms are all finite and far from underflow keeps them (one pass, no temporary)."""
    if isinstance(D, np.ndarray) and D.dtype.kind == "f" and D.size:
        n = np.sqrt(np.einsum("...j,...j->...", D, D))[..., None]
        if np.isfinite(n).all() and n.min() > 1e4 * np.sqrt(np.finfo(D.dtype).tiny):
            return n
    s = xp.max(xp.abs(D), axis=-1, keepdims=True)
    safe = xp.where((s == 0) | xp.isinf(s), 1.0, s)
    q = D / safe
    return xp.where(xp.isinf(s), s, safe * xp.sqrt(xp.sum(q * q, axis=-1, keepdims=True)))


def distance_np(X1, X2, eps=0.0, xp=np):
    """‖x1 − x2 + ε‖₂ for each pair of rows (keeping the last axis): torch's pairwise_distance (p = 2)."""
    return row_norm_np(X1 - X2 + eps, xp=xp)


def distance_vjp_np(X1, X2, G, eps=0.0, xp=np):
    """g (d/‖d‖), d = x1 − x2 + ε, by rows: ∂‖d‖/∂x1 times the upstream g; 0 where d = 0 (torch's norm at 0)."""
    d = X1 - X2 + eps
    n = row_norm_np(d, xp=xp)
    return G * (d / xp.where(n == 0, 1.0, n))


def cosine_np(X1, X2, eps=1e-8, xp=np):
    """Σ_j x1_j x2_j / (max(‖x1‖, ε) max(‖x2‖, ε)) for each row (keeping the last axis), as the sum
    of the normalised rows (torch.nn.functional.cosine_similarity)."""
    m1 = xp.maximum(row_norm_np(X1, xp=xp), eps)
    m2 = xp.maximum(row_norm_np(X2, xp=xp), eps)
    if isinstance(X1, np.ndarray) and isinstance(X2, np.ndarray) and X1.shape == X2.shape and X1.dtype.kind == "f":
        with np.errstate(over="ignore", under="ignore"):  # the dot product directly, where it cannot
            scale = m1 * m2                                # overflow nor underflow
            fits = X1.size and np.isfinite(scale).all() and scale.min() > 1e8 * np.finfo(X1.dtype).tiny \
                and np.abs(X1).max() * np.abs(X2).max() < np.finfo(X1.dtype).max
        if fits:
            return np.einsum("...j,...j->...", X1, X2)[..., None] / scale
    return xp.sum((X1 / m1) * (X2 / m2), axis=-1, keepdims=True)


def cosine_vjp_np(X, O, G, eps=1e-8, xp=np):
    """g (o/m_o − cos · x/‖x‖)/m_x by rows, m = max(‖·‖, ε): ∂cos(x, o)/∂x times the upstream g, as
    torch (the clamp at ε is not differentiated; a zero row x has x/‖x‖ = 0)."""
    nx, no = row_norm_np(X, xp=xp), row_norm_np(O, xp=xp)
    mx, mo = xp.maximum(nx, eps), xp.maximum(no, eps)
    uo = O / mo
    c = xp.sum((X / mx) * uo, axis=-1, keepdims=True)
    return G * (uo - c * (X / xp.where(nx == 0, 1.0, nx))) / mx


class _LossRows(RowBlock):
    """A row block of several arguments (matrices first, then scalar parameters)."""

    def __new__(cls, *args):
        return sp.MatrixExpr.__new__(cls, *args)

    def _sympystr(self, printer):
        return f"{self.name}({', '.join(printer._print(a) for a in self.args)})"

    def doit(self, **hints):
        return type(self)(*(a.doit(**hints) for a in self.args))


class RowDistance(_LossRows):
    r"""‖x1 − x2 + ε‖₂ of each pair of rows (N × K, N × K, ε → N × 1);
    G_{X1} = −G_{X2} = distance_vjp(X1, X2, G) = (D/‖D‖) ∘ (G 1ᵀ), D = X1 − X2 + ε (0 where D = 0)."""

    numpy_form = staticmethod(distance_np)
    name = "distance"

    @property
    def shape(self):
        return (self.args[0].shape[0], sp.S.One)

    def adjoints(self, G) -> list:
        X1, X2, eps = self.args
        vjp = DistanceVJP(X1, X2, G, eps)
        return [(X1, vjp), (X2, sp.MatMul(-1, vjp))]

    def _latex(self, printer, **kwargs):
        X1, X2, eps = (printer._print(a) for a in self.args)
        return rf"\left\lVert {X1} - {X2} + {eps} \right\rVert_2"


class DistanceVJP(_LossRows):
    r"""(D/‖D‖) ∘ (G 1ᵀ), D = X1 − X2 + ε, by rows (N × K): the gradient of RowDistance in X1."""

    numpy_form = staticmethod(distance_vjp_np)
    name = "distance_vjp"

    def _latex(self, printer, **kwargs):
        X1, X2, G, eps = (printer._print(a) for a in self.args)
        return rf"\operatorname{{distance\_vjp}}\left({X1}, {X2}, {G}, {eps}\right)"


class RowCosine(_LossRows):
    r"""cos(x1, x2) of each pair of rows (N × K, N × K, ε → N × 1), norms clamped at ε;
    G_{X1} = cosine_vjp(X1, X2, G), G_{X2} = cosine_vjp(X2, X1, G)."""

    numpy_form = staticmethod(cosine_np)
    name = "cosine"

    @property
    def shape(self):
        return (self.args[0].shape[0], sp.S.One)

    def adjoints(self, G) -> list:
        X1, X2, eps = self.args
        return [(X1, CosineVJP(X1, X2, G, eps)), (X2, CosineVJP(X2, X1, G, eps))]

    def _latex(self, printer, **kwargs):
        X1, X2 = (printer._print(a) for a in self.args[:2])
        return rf"\cos\left({X1}, {X2}\right)"


class CosineVJP(_LossRows):
    r"""g ∘ (x2/‖x2‖ − cos · x1/‖x1‖)/‖x1‖ by rows (N × K): the gradient of RowCosine in its first argument."""

    numpy_form = staticmethod(cosine_vjp_np)
    name = "cosine_vjp"

    def _latex(self, printer, **kwargs):
        X, O, G = (printer._print(a) for a in self.args[:3])
        return rf"\operatorname{{cosine\_vjp}}\left({X}, {O}, {G}\right)"


# --- cosine similarity, cosine embedding -----------------------------------------------------
COSINE_EPS = 1e-8  # torch's default: each norm is clamped at eps


def cosine_similarity(u, v) -> sp.Expr:
    """uᵀv / (‖u‖ ‖v‖) for vectors u, v (lists or Matrices); symgrad.nn clamps each norm at ε as torch."""
    u, v = as_vector(u, "cosine_similarity u"), as_vector(v, "cosine_similarity v")
    if len(u) != len(v):
        raise ValueError(f"cosine_similarity: u has {len(u)} entries but v has {len(v)}")
    return u.dot(v) / (sp.sqrt(u.dot(u)) * sp.sqrt(v.dot(v)))


def cosine_embedding(u, v, y, margin=0) -> sp.Expr:
    """1 − cos(u, v) for y = 1, [cos(u, v) − margin]₊ for y = −1 (torch's cosine_embedding_loss)."""
    y, c = to_sympy(y, "y"), cosine_similarity(u, v)
    return (1 + y) / 2 * (1 - c) + (1 - y) / 2 * ClampMin(c - to_sympy(margin, "margin"))


def _cosine_example(embedding: bool) -> Example:
    u, v = vector("u", 3), vector("v", 3)
    # u and v never parallel (signs + + + against + − +): there the gradient is 0 and a relative check is noise
    apart = {**{s: Interval(0.2, 2.0) for s in u}, v[0]: Interval(0.2, 2.0), v[1]: Interval(-2.0, -0.2),
             v[2]: Interval(0.2, 2.0)}
    if not embedding:
        return Example(cosine_similarity(u, v), (u, v), {"u": u, "v": v}, domain=apart)
    return Example(cosine_embedding(u, v, _t, _margin), (u, v), {"u": u, "v": v, "y": _t, "margin": _margin},
                   domain={**apart, _t: Choice((-1, 1)), _margin: Interval(-0.5, 0.5)})


def _cosine_batched(embedding: bool) -> Batched:
    """cos(x1, x2) per pair of rows (norms clamped at eps); the embedding loss on it, y (N,) being data."""

    K = size("K")
    X1, X2 = sp.MatrixSymbol("x1", N, K), sp.MatrixSymbol("x2", N, K)
    if not embedding:
        eps = sp.Symbol("eps", positive=True)
        return Batched(RowCosine(X1, X2, eps), (Arg("x1", X1, "rows"), Arg("x2", X2, "rows"),
                                                Arg("eps", eps, "param", COSINE_EPS)), ("x1", "x2"))
    Y, margin, one = sp.MatrixSymbol("y", N, 1), sp.Symbol("margin", real=True), ones(N, 1)
    c = RowCosine(X1, X2, sp.Float(COSINE_EPS))
    forward = (sp.HadamardProduct(one + Y, one - c) + sp.HadamardProduct(one - Y, elementwise(ClampMin, c - margin * one))) / 2
    args = (Arg("x1", X1, "rows"), Arg("x2", X2, "rows"), Arg("y", Y, "samples"), Arg("margin", margin, "param", 0.0))
    return Batched(forward, args, ("x1", "x2"))


register(Block(
    name="cosine_similarity", domain="x1, x2 in R^K (norms clamped at eps = 1e-8, as torch)", family="loss",
    formula="cosine_similarity(x1, x2, eps=1e-8) = x1.x2 / (max(||x1||, eps) * max(||x2||, eps))",
    latex=r"\cos(\mathbf{x}_1, \mathbf{x}_2) = \frac{\mathbf{x}_1^{\top}\mathbf{x}_2}{\lVert \mathbf{x}_1 \rVert\,\lVert \mathbf{x}_2 \rVert}",
    derivative=r"\frac{\partial \cos}{\partial \mathbf{x}_1} = \frac{1}{\lVert \mathbf{x}_1 \rVert}"
               r"\Bigl(\frac{\mathbf{x}_2}{\lVert \mathbf{x}_2 \rVert} - \cos \frac{\mathbf{x}_1}{\lVert \mathbf{x}_1 \rVert}\Bigr)",
    kink="||x|| < eps: the norm is clamped at eps and the clamp is not differentiated (as torch); a zero row has x/||x|| = 0",
    example=lambda: _cosine_example(False),
    batched=lambda: _cosine_batched(False),
))

register(Block(
    name="cosine_embedding", domain="x1, x2 in R^K, y in {-1, +1} (not differentiated), margin in [-1, 1]",
    family="loss",
    formula="cosine_embedding(x1, x2, y, margin=0) = 1 - cos(x1, x2) if y = 1 else max(0, cos(x1, x2) - margin)",
    latex=r"\ell(\mathbf{x}_1, \mathbf{x}_2, y) = \begin{cases} 1 - \cos(\mathbf{x}_1, \mathbf{x}_2) & y = 1 \\"
          r" \max\bigl(0, \cos(\mathbf{x}_1, \mathbf{x}_2) - m\bigr) & y = -1 \end{cases}",
    derivative=r"\frac{\partial \ell}{\partial \mathbf{x}_1} = \Bigl(-\tfrac{1 + y}{2}"
               r" + \tfrac{1 - y}{2}\,\mathbf{1}[\cos - m \ge 0]\Bigr) \frac{\partial \cos}{\partial \mathbf{x}_1}",
    kink="cos - margin = 0 (y = -1): the gradient passes (torch.clamp_min); torch adds 1e-12 to each squared norm"
         " where symgrad clamps the norms at 1e-8 (relative difference ~1e-12/||x||^2)",
    example=lambda: _cosine_example(True),
    batched=lambda: _cosine_batched(True),
))


# --- triplet margin ----------------------------------------------------------------------------
TRIPLET_EPS = 1e-6  # torch's pairwise_distance adds eps to the difference


def triplet_margin(a, p, n, margin=1, eps=TRIPLET_EPS) -> sp.Expr:
    """[margin + ‖a − p + ε‖ − ‖a − n + ε‖]₊ for an anchor a, a positive p and a negative n (vectors)."""
    a, p, n = (as_vector(v, f"triplet_margin {w}") for v, w in ((a, "anchor"), (p, "positive"), (n, "negative")))
    if not len(a) == len(p) == len(n):
        raise ValueError(f"triplet_margin: the anchor, positive and negative have {len(a)}, {len(p)}, {len(n)} entries")
    eps = to_sympy(eps, "eps")
    dist = lambda d: sp.sqrt(sp.Add(*[(e + eps) ** 2 for e in d]))  # noqa: E731
    return ClampMin(to_sympy(margin, "margin") + dist(a - p) - dist(a - n))


def _triplet_example() -> Example:
    a, p, n = vector("a", 2), vector("p", 2), vector("n", 2)
    eps = sp.Symbol("eps", positive=True)
    return Example(triplet_margin(a, p, n, _margin, eps), (a, p, n),
                   {"a": a, "p": p, "n": n, "margin": _margin, "eps": eps},
                   domain={_margin: Interval(0.5, 2.0), eps: Interval(1e-7, 1e-5)})


def _triplet_batched() -> Batched:
    """[m + ‖a − p + ε‖ − ‖a − n + ε‖]₊ per sample (rows a, p, n: N × K), all three differentiated."""

    K = size("K")
    A, P, Q = (sp.MatrixSymbol(s, N, K) for s in ("a", "p", "n"))
    margin, eps = sp.Symbol("margin", real=True), sp.Symbol("eps", positive=True)
    forward = elementwise(ClampMin, margin * ones(N, 1) + RowDistance(A, P, eps) - RowDistance(A, Q, eps))
    args = (Arg("a", A, "rows"), Arg("p", P, "rows"), Arg("n", Q, "rows"),
            Arg("margin", margin, "param", 1.0), Arg("eps", eps, "param", TRIPLET_EPS))
    return Batched(forward, args, ("a", "p", "n"))


register(Block(
    name="triplet_margin", domain="a, p, n in R^K, margin real, eps >= 0 (torch's p = 2, swap = False)",
    family="loss",
    formula="triplet_margin(a, p, n, margin=1, eps=1e-6) = max(0, margin + ||a - p + eps|| - ||a - n + eps||)",
    latex=r"\ell(\mathbf{a}, \mathbf{p}, \mathbf{n}) = \max\bigl(0, m + \lVert \mathbf{a} - \mathbf{p} + \epsilon \rVert_2"
          r" - \lVert \mathbf{a} - \mathbf{n} + \epsilon \rVert_2\bigr)",
    derivative=r"\frac{\partial \ell}{\partial \mathbf{p}} = -g\,\frac{\mathbf{a} - \mathbf{p} + \epsilon}{\lVert \mathbf{a} - \mathbf{p} + \epsilon \rVert},\quad"
               r" \frac{\partial \ell}{\partial \mathbf{n}} = g\,\frac{\mathbf{a} - \mathbf{n} + \epsilon}{\lVert \mathbf{a} - \mathbf{n} + \epsilon \rVert},\quad"
               r" \frac{\partial \ell}{\partial \mathbf{a}} = -\frac{\partial \ell}{\partial \mathbf{p}} - \frac{\partial \ell}{\partial \mathbf{n}},\quad"
               r" g = \mathbf{1}[\ell\text{'s argument} \ge 0]",
    kink="at the hinge the gradient passes (torch.clamp_min); a zero difference has gradient 0 (torch's norm at 0)",
    example=_triplet_example,
    batched=_triplet_batched,
))
