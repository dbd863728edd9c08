"""Compositions: logistic regression, softmax regression and multi-layer networks, built
from the blocks so that their gradients follow from the blocks' identities."""

from __future__ import annotations

from typing import Sequence

import sympy as sp

from .activations import elu, leaky_relu, relu, sigmoid, softplus
from .layers import dense
from .losses import bce, bce_with_logits, softmax_cross_entropy, squared_l2
from .registry import Arg, Batched, Block, Example, Simplex, Interval, N, ones, register, size
from .vectors import as_vector, column, is_symbolic, matrix, scalar, to_sympy, vector
from .losses import BCEWithLogitsEntries
from .rows import RowSoftmaxCrossEntropy
from .rows import elementwise

__all__ = ["logistic_regression", "softmax_regression", "mlp", "ACTIVATIONS", "LOSSES"]

ACTIVATIONS = {"sigmoid": sigmoid, "tanh": sp.tanh, "relu": relu, "softplus": softplus,
               "leaky_relu": leaky_relu, "elu": elu, "identity": lambda z: z}


def _logits_loss(z, y):
    """BCE on the logit z (one output): explicit entries, or a 1 × 1 matrix expression."""
    if is_symbolic(z):
        return bce_with_logits(scalar(z), scalar(y) if is_symbolic(y) else y)
    return bce_with_logits(as_vector(z)[0], y)


def _class_loss(z, y):
    """Cross-entropy of softmax(z): a column z of symbolic size is one row zᵀ of the row block."""
    return softmax_cross_entropy(z.T, y.T) if is_symbolic(z) else softmax_cross_entropy(z, y)


LOSSES = {"squared_l2": squared_l2, "softmax_cross_entropy": _class_loss, "bce_with_logits": _logits_loss}


def logistic_regression(w, x, b, y) -> sp.Expr:
    """L = BCE(σ(wᵀx + b), y): the seeds' single neuron with cross-entropy loss (w, x lists,
    Matrices, or column vectors of symbolic size p)."""
    if is_symbolic(w) or is_symbolic(x):
        if w.shape != x.shape or w.shape[1] != 1:
            raise ValueError(f"logistic_regression: w ({w.shape[0]}×{w.shape[1]}) and x ({x.shape[0]}×"
                             f"{x.shape[1]}) must be column vectors of one size")
        return bce(sigmoid(scalar(w.T * x) + to_sympy(b, "b")), y)
    w, x = as_vector(w, "w"), as_vector(x, "x")
    if len(w) != len(x):
        raise ValueError(f"logistic_regression: w has {len(w)} entries but x has {len(x)}")
    return bce(sigmoid(w.dot(x) + to_sympy(b, "b")), y)


def softmax_regression(W, x, b, y) -> sp.Expr:
    """L = CE(softmax(W x + b), y) for a class index or a one-hot target vector y (for W, x of
    symbolic size: y a column vector C × 1)."""
    return _class_loss(dense(W, x, b), y)


def mlp(x, y, widths: Sequence, activations: Sequence[str] | str = "sigmoid",
        loss: str = "squared_l2", bias: bool = True) -> tuple[sp.Expr, dict[str, sp.Basic]]:
    """A fully connected network h_l = f_l(W_l h_{l−1} + b_l) with a linear last layer and a loss.

    ``widths`` = (input, hidden…, output): positive integers (explicit entries W1_11…), or
    symbolic sizes (``size("H")``) when x is a column vector of symbolic size (W1 ∈ R^{H×D});
    ``activations``: one name for every hidden layer or one per hidden layer (names of
    :data:`ACTIVATIONS`); ``loss``: a name of :data:`LOSSES`. Returns (L, {"W1": W1, "b1": b1, …}).
    """
    widths = tuple(widths)
    symbolic = is_symbolic(x)
    valid = (lambda w: isinstance(w, sp.Expr) and w.is_integer and w.is_positive) if symbolic else \
        (lambda w: isinstance(w, int) and w >= 1)
    if len(widths) < 2 or not all(valid(w) for w in widths):
        raise ValueError("mlp: widths must be at least (input, output) positive integers, e.g. (2, 3, 1)"
                         + (" or sizes, e.g. (size('D'), size('H'), size('O'))" if symbolic else ""))
    hidden = len(widths) - 2
    acts = [activations] * hidden if isinstance(activations, str) else list(activations)
    if len(acts) != hidden:
        raise ValueError(f"mlp: {hidden} hidden layers but {len(acts)} activations")
    for name in acts:
        if name not in ACTIVATIONS:
            raise ValueError(f"mlp: unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")
    if loss not in LOSSES:
        raise ValueError(f"mlp: unknown loss {loss!r}; choose from {', '.join(LOSSES)}")
    h = x if symbolic else as_vector(x, "x")
    if (h.shape[0] if symbolic else len(h)) != widths[0]:
        raise ValueError(f"mlp: x has {h.shape[0] if symbolic else len(h)} entries but widths[0] = {widths[0]}")
    params: dict[str, sp.Basic] = {}
    for layer, (n_in, n_out) in enumerate(zip(widths, widths[1:]), start=1):
        if symbolic:
            W = params[f"W{layer}"] = sp.MatrixSymbol(f"W{layer}", n_out, n_in)
            b = params[f"b{layer}"] = column(f"b{layer}", n_out) if bias else None
        else:
            W = params[f"W{layer}"] = matrix(f"W{layer}_", n_out, n_in)
            b = params[f"b{layer}"] = vector(f"b{layer}_", n_out) if bias else None
        z = dense(W, h, b)
        if layer > hidden:
            h = z
        elif symbolic:

            h = z if acts[layer - 1] == "identity" else elementwise(ACTIVATIONS[acts[layer - 1]], z)
        else:
            h = z.applyfunc(ACTIVATIONS[acts[layer - 1]])
    return LOSSES[loss](h, y), params


# --- batched forms (rows = samples) for symgrad.nn: the loss per sample ---------------------------
def _logistic_batched() -> Batched:
    """BCE(σ(z), y) per sample on the logits z = x·w + b (the stable form; ∂/∂z = σ(z) − y, fused)."""

    D = size("D")
    w, X, b, y = sp.MatrixSymbol("w", D, 1), sp.MatrixSymbol("x", N, D), sp.MatrixSymbol("b", 1, 1), sp.MatrixSymbol("y", N, 1)
    z = X * w + ones(N, 1) * b
    args = (Arg("w", w, "column"), Arg("x", X, "rows"), Arg("b", b, "scalar"), Arg("y", y, "samples"))
    return Batched(BCEWithLogitsEntries(z, y), args, ("w", "x", "b", "y"))


def _softmax_reg_batched() -> Batched:
    """CE(softmax(W x + b), y) per sample; y as 0-based class indices or target rows."""

    D, C = size("D"), size("C")
    W, X, b, Y = sp.MatrixSymbol("W", C, D), sp.MatrixSymbol("x", N, D), sp.MatrixSymbol("b", 1, C), sp.MatrixSymbol("y", N, C)
    args = (Arg("W", W, "weight"), Arg("x", X, "rows"), Arg("b", b, "row"), Arg("y", Y, "labels"))
    return Batched(RowSoftmaxCrossEntropy(X * W.T + ones(N, 1) * b, Y), args, ("W", "x", "b", "y"))


def _mlp_batched() -> Batched:
    """‖W2 σ(W1 x + b1) + b2 − y‖² per sample (any widths)."""

    D, H, O = size("D"), size("H"), size("O")
    W1, b1, W2, b2 = sp.MatrixSymbol("W1", H, D), sp.MatrixSymbol("b1", 1, H), sp.MatrixSymbol("W2", O, H), sp.MatrixSymbol("b2", 1, O)
    X, Y = sp.MatrixSymbol("x", N, D), sp.MatrixSymbol("y", N, O)
    hidden = elementwise(sigmoid, X * W1.T + ones(N, 1) * b1)
    err = hidden * W2.T + ones(N, 1) * b2 - Y
    args = (Arg("W1", W1, "weight"), Arg("b1", b1, "row"), Arg("W2", W2, "weight"), Arg("b2", b2, "row"),
            Arg("x", X, "rows"), Arg("y", Y, "rows"))
    return Batched(sp.HadamardProduct(err, err) * ones(O, 1), args, ("W1", "b1", "W2", "b2", "x", "y"))


# --- examples: vectors and matrices of symbolic size; ``entries``: the same on a grid of entries ----
def _logistic_example(entries: bool = False) -> Example:
    w, x = (vector("w", 3), vector("x", 3)) if entries else (column("w", size("p")), column("x", size("p")))
    b, y = sp.Symbol("b", real=True), sp.Symbol("y", real=True)
    return Example(logistic_regression(w, x, b, y), (w, b), {"w": w, "x": x, "b": b, "y": y},
                   domain={y: Interval(0.0, 1.0)})


register(Block(
    name="logistic_regression", domain="w, x in R^p, b real, y in [0, 1]", family="composition",
    formula="L = bce(sigmoid(w.x + b), y)",
    latex=r"z = \mathbf{w}^{\top}\mathbf{x} + b,\quad a = \sigma(z),\quad \mathcal{L} = \operatorname{BCE}(a, y)",
    derivative=r"\frac{\partial \mathcal{L}}{\partial \mathbf{w}} = (a - y)\,\mathbf{x},\quad"
               r" \frac{\partial \mathcal{L}}{\partial b} = a - y",
    example=_logistic_example,
    entries=lambda: _logistic_example(entries=True),
    batched=_logistic_batched,
))


def _softmax_reg_example(entries: bool = False) -> Example:
    C, p = size("C"), size("p")
    W, x, b, y = ((matrix("W", 3, 2), vector("x", 2), vector("b", 3), vector("y", 3)) if entries else
                  (sp.MatrixSymbol("W", C, p), column("x", p), column("b", C), column("y", C)))
    return Example(softmax_regression(W, x, b, y), (W, b), {"W": W, "x": x, "b": b, "y": y},
                   domain={tuple(y): Simplex(onehot=True)} if entries else {})


register(Block(
    name="softmax_regression", domain="W in R^{C x p}, x in R^p, b in R^C, y one-hot or a class index", family="composition",
    formula="L = cross_entropy(softmax(W x + b), y)",
    latex=r"\mathbf{z} = W\mathbf{x} + \mathbf{b},\quad \mathbf{a} = \operatorname{softmax}(\mathbf{z}),"
          r"\quad \mathcal{L} = -\sum_k y_k \log a_k",
    derivative=r"\frac{\partial \mathcal{L}}{\partial W} = (\mathbf{a} - \mathbf{y})\,\mathbf{x}^{\top},\quad"
               r" \frac{\partial \mathcal{L}}{\partial \mathbf{b}} = \mathbf{a} - \mathbf{y}",
    example=_softmax_reg_example,
    entries=lambda: _softmax_reg_example(entries=True),
    batched=_softmax_reg_batched,
))


def _mlp_example(entries: bool = False) -> Example:
    if entries:
        x, y, widths = vector("x", 2), vector("y", 2), (2, 2, 2)
    else:
        widths = (size("D"), size("H"), size("O"))
        x, y = column("x", widths[0]), column("y", widths[2])
    loss, params = mlp(x, y, widths, "sigmoid", "squared_l2")
    return Example(loss, tuple(params.values()), {**params, "x": x, "y": y})


register(Block(
    name="mlp", domain="weights and inputs real; y in R^out", family="composition",
    formula="L = ||W2 sigmoid(W1 x + b1) + b2 - y||^2",
    latex=r"\mathbf{h} = \sigma(W_1\mathbf{x} + \mathbf{b}_1),\quad \hat{\mathbf{y}} = W_2\mathbf{h} + \mathbf{b}_2,"
          r"\quad \mathcal{L} = \lVert \hat{\mathbf{y}} - \mathbf{y} \rVert^2",
    derivative=r"\frac{\partial \mathcal{L}}{\partial W_2} = 2(\hat{\mathbf{y}} - \mathbf{y})\mathbf{h}^{\top},\quad"
               r" \frac{\partial \mathcal{L}}{\partial W_1} = \bigl(W_2^{\top} 2(\hat{\mathbf{y}} - \mathbf{y})"
               r" \circ \mathbf{h} \circ (1 - \mathbf{h})\bigr)\mathbf{x}^{\top}",
    example=_mlp_example,
    entries=lambda: _mlp_example(entries=True),
    batched=_mlp_batched,
))
