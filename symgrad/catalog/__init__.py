"""The catalog: every block declared once (activations, losses, layers, compositions)."""

from .registry import Block, Choice, Example, Interval, Simplex, blocks, get_block, register
from .base import Primitive, constraints_of
from .vectors import as_vector, matrix, to_sympy, vector
from .activations import LogSoftmaxEntry, Maxout, SoftmaxEntry, elu, leaky_relu, log_softmax, maxout, relu, route, sigmoid, softmax, softplus, step, tanh
from .losses import BCE, BCEWithLogits, CrossEntropy, bce, bce_with_logits, cross_entropy, hinge, l2, multiclass_svm, softmax_cross_entropy, squared_l2
from .layers import dense, log_avg_pool, lp_pool, sq_norm_linear
from .compositions import ACTIVATIONS, LOSSES, logistic_regression, mlp, softmax_regression
from .norms import batch_norm, layer_norm, rms_norm, scaled_dot_product_attention

__all__ = [
    "Block", "Choice", "Example", "Interval", "Simplex", "blocks", "get_block", "register",
    "Primitive", "constraints_of", "as_vector", "matrix", "to_sympy", "vector",
    "LogSoftmaxEntry", "Maxout", "SoftmaxEntry", "elu", "leaky_relu", "log_softmax", "maxout",
    "relu", "route", "sigmoid", "softmax", "softplus", "step", "tanh",
    "BCE", "BCEWithLogits", "CrossEntropy", "bce", "bce_with_logits", "cross_entropy", "hinge",
    "l2", "multiclass_svm", "softmax_cross_entropy", "squared_l2",
    "dense", "log_avg_pool", "lp_pool", "sq_norm_linear",
    "ACTIVATIONS", "LOSSES", "logistic_regression", "mlp", "softmax_regression",
]
