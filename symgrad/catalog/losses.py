"""Losses (per sample, no reduction). Primitives carry their derivative identity; the rest
are written through primitives, so their derivatives follow from the chain rule."""

from __future__ import annotations

import numpy as np
import sympy as sp

from .activations import SoftmaxEntry, relu, sigmoid, softmax, softplus
from ..matrices import Entrywise
from .base import Primitive
from .registry import Arg, Batched, Block, Choice, Example, Interval, N, Simplex, ones, register, size
from .vectors import as_vector, matrix, to_sympy, vector

__all__ = [
    "bce", "bce_with_logits", "cross_entropy", "softmax_cross_entropy",
    "squared_l2", "hinge", "multiclass_svm", "l2", "BCE", "BCEWithLogits", "BCEWithLogitsEntries", "CrossEntropy",
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
    """BCE(σ(z), y) = max(z, 0) − z·y + log1p(e^{−|z|}): finite for every z."""
    return xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z)))


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


class BCEWithLogitsEntries(Entrywise):
    r"""BCE(σ(Z), Y) entry by entry (logistic regression on a batch); G_Z = G ∘ (σ(Z) − Y), fused."""

    function = BCEWithLogits
    numpy_form = staticmethod(bce_with_logits_np)

    @staticmethod
    def partial(Z, Y):
        from .stable import SigmoidShiftEntries

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
        from ..matrices import SoftmaxCrossEntropy

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
    from ..matrices import RowSoftmaxCrossEntropy, elementwise

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
    return Batched(forward, (Arg(first, Z, "rows"), Arg("y", Y, "labels")), (first,))


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
        from ..matrices import sq_frobenius

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
    return Batched(sp.HadamardPower(P - Y, 2) * ones(K, 1), (Arg("p", P, "rows"), Arg("y", Y, "rows")), ("p",))


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
        from ..matrices import sq_frobenius

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
