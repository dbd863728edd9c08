"""symgrad: derive, verify and compile the gradients of machine-learning math.

The data flow, one module each: ``catalog`` (define) → ``derive`` → ``simplify`` →
``compiler`` → ``check`` (verify) → ``printing``/``report`` (export); ``pipeline.run``
shows the whole path in one function.
"""

__version__ = "0.1.0"

from .catalog import (
    Block as Block,
    bce as bce,
    bce_with_logits as bce_with_logits,
    blocks as blocks,
    cross_entropy as cross_entropy,
    dense as dense,
    elu as elu,
    get_block as get_block,
    hinge as hinge,
    l2 as l2,
    leaky_relu as leaky_relu,
    log_avg_pool as log_avg_pool,
    log_softmax as log_softmax,
    logistic_regression as logistic_regression,
    lp_pool as lp_pool,
    matrix as matrix,
    maxout as maxout,
    mlp as mlp,
    multiclass_svm as multiclass_svm,
    relu as relu,
    sigmoid as sigmoid,
    softmax as softmax,
    softmax_cross_entropy as softmax_cross_entropy,
    softmax_regression as softmax_regression,
    softplus as softplus,
    sq_norm_linear as sq_norm_linear,
    squared_l2 as squared_l2,
    step as step,
    tanh as tanh,
    vector as vector,
)
from .check import CheckResult as CheckResult, cross_check as cross_check
from .compiler import CompiledFunction as CompiledFunction, compile_expr as compile_expr, export_module as export_module
from .derive import Derivation as Derivation, Step as Step, derive as derive
from .gradcheck import GradReport as GradReport, check_grad as check_grad
from .graph import Backprop as Backprop, Edge as Edge, Graph as Graph
from .matrices import elementwise as elementwise, sq_frobenius as sq_frobenius
from .errors import (
    ParseError as ParseError,
    SymgradError as SymgradError,
    SymgradLimit as SymgradLimit,
    UnknownBlockError as UnknownBlockError,
)
from .parse import parse as parse
from .pipeline import Outcome as Outcome, run as run
from .plot import plot_block as plot_block
from .verify import Verdict as Verdict, verify as verify
from .latex_input import parse_latex as parse_latex
from .printing import latex as latex

__all__ = [
    "Backprop", "Block", "CheckResult", "GradReport", "check_grad", "Verdict", "verify", "parse_latex", "plot_block", "export_module", "CompiledFunction", "Derivation", "Edge", "Graph", "Outcome",
    "ParseError", "Step", "elementwise", "sq_frobenius",
    "SymgradError", "SymgradLimit", "UnknownBlockError",
    "bce", "bce_with_logits", "blocks", "compile_expr", "cross_check", "cross_entropy", "dense",
    "derive", "elu", "get_block", "hinge", "l2", "latex", "leaky_relu", "log_avg_pool",
    "log_softmax", "logistic_regression", "lp_pool", "matrix", "maxout", "mlp", "multiclass_svm",
    "parse", "relu", "run", "sigmoid", "softmax", "softmax_cross_entropy", "softmax_regression",
    "softplus", "sq_norm_linear", "squared_l2", "step", "tanh", "vector",
]
