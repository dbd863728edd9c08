"""Code as LaTeX: compiled and exported functions rendered by latexify-py, with the math names
of the blocks (σ for the sigmoid) and Greek letters for Greek names, so that the code a user
imports and the formula it implements can be shown side by side."""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["function_latex"]


def _identifiers() -> dict[str, str]:
    from .catalog.base import Primitive

    names = {"sigmoid_np": "sigma", "relu_np": "ReLU", "step_np": "step", "leaky_relu_np": "LeakyReLU",
             "elu_np": "ELU", "softplus_np": "softplus", "softmax_entry_np": "softmax",
             "log_softmax_entry_np": "logsoftmax", "bce_np": "BCE", "bce_with_logits_np": "BCE",
             "cross_entropy_np": "CE", "route_np": "route", "maxout_np": "max", "row_softmax_np": "softmax"}
    for cls in Primitive.__subclasses__():  # every block's helper gets a name, even new ones
        fn = getattr(cls, "numpy_form", None)
        if fn is not None and fn.__name__ not in names:
            names[fn.__name__] = cls.__name__
    return names


def function_latex(fn: Callable[..., Any] | Any, **options: Any) -> str:
    r"""The LaTeX of a compiled or exported function, by latexify-py:
    ``\mathrm{gradient}(x) = \sigma(x) \cdot \sigma(-x)``."""
    import latexify

    from .compiler import CompiledFunction

    target = fn._fn if isinstance(fn, CompiledFunction) else fn
    settings = {"use_math_symbols": True, "reduce_assignments": True, "identifiers": _identifiers()}
    settings.update(options)
    try:
        return latexify.get_latex(target, **settings)
    except OSError as exc:
        raise ValueError(f"latexify needs the function's source code: {exc}") from None
