"""symgrad: derive, verify and compile the gradients of machine-learning math.

The floor plan is the data flow, bottom floor first (imports only go down; ``tests/test_layering.py``
keeps it so): foundations (``errors``, ``runtime``, ``symbols``) → ``catalog`` (define) →
``simplify``, then ``printing`` and ``parsing`` → ``compiler`` and ``checks`` → ``derivation`` (one
reverse pass over named intermediates) → the verbs (``claims``: verify; ``testing``, ``export``,
``pipeline``, ``nnbuild``) → ``report`` → ``cli``. ``pipeline.run`` shows the whole path in one
function.
"""

__version__ = "0.1.0"

# name → the module that defines it. The names load on first use (PEP 562), so that
# ``import symgrad.nn`` (the pre-compiled catalog) never imports SymPy.
_EXPORTS = {
    "BackwardReport": "backcheck",
    "Backprop": "derivation",
    "Block": "catalog",
    "CheckResult": "checks.crosscheck",
    "CompiledFunction": "compiler",
    "Derivation": "derivation",
    "Edge": "derivation",
    "GradReport": "checks.gradcheck",
    "Graph": "derivation",
    "Outcome": "pipeline",
    "ParseError": "errors",
    "Step": "derivation",
    "SymgradError": "errors",
    "SymgradLimit": "errors",
    "TraceError": "errors",
    "UnknownBlockError": "errors",
    "Verdict": "claims",
    "bce": "catalog",
    "bce_with_logits": "catalog",
    "blocks": "catalog",
    "check_backward": "backcheck",
    "check_grad": "checks.gradcheck",
    "compile_expr": "compiler",
    "cross_check": "checks.crosscheck",
    "cross_entropy": "catalog",
    "dense": "catalog",
    "derive": "derivation",
    "elementwise": "catalog.rows",
    "elu": "catalog",
    "export_module": "compiler",
    "get_block": "catalog",
    "hessian": "derivation",
    "hinge": "catalog",
    "hvp": "derivation",
    "l2": "catalog",
    "labels": "tracing",
    "latex": "printing",
    "leaky_relu": "catalog",
    "log_avg_pool": "catalog",
    "log_softmax": "catalog",
    "logistic_regression": "catalog",
    "lp_pool": "catalog",
    "matrix": "catalog",
    "maxout": "catalog",
    "mlp": "catalog",
    "multiclass_svm": "catalog",
    "parse": "parsing",
    "parse_latex": "parsing",
    "plot_block": "export.plot",
    "relu": "catalog",
    "run": "pipeline",
    "sigmoid": "catalog",
    "softmax": "catalog",
    "softmax_cross_entropy": "catalog",
    "softmax_regression": "catalog",
    "softplus": "catalog",
    "sq_frobenius": "catalog.rows",
    "sq_norm_linear": "catalog",
    "squared_l2": "catalog",
    "step": "catalog",
    "tanh": "catalog",
    "trace": "tracing",
    "vector": "catalog",
    "verify": "claims",
}

__all__ = sorted(_EXPORTS)


_CATALOG_FAMILIES = ("activations", "losses", "layers", "norms", "compositions")


def __getattr__(name: str):
    import importlib

    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    from pathlib import Path

    here = Path(__file__).parent
    if not name.startswith("_") and not (here / f"{name}.py").exists() and not (here / name).is_dir():
        for family in _CATALOG_FAMILIES:  # every block the catalog declares: sg.gelu, sg.huber, sg.layer_norm …
            module = importlib.import_module(f".catalog.{family}", __name__)
            if name in getattr(module, "__all__", ()):
                value = getattr(module, name)
                globals()[name] = value
                return value
    raise AttributeError(f"module 'symgrad' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
