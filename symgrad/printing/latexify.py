"""Code as LaTeX: compiled and exported functions rendered by latexify-py, with the math names
of the blocks (σ for the sigmoid) and Greek letters for Greek names, so that the code a user
imports and the formula it implements can be shown side by side."""

from __future__ import annotations

import re
from typing import Any, Callable

from ..catalog.base import Primitive
from ..catalog.rows import RowBlock

__all__ = ["function_latex"]


def _identifiers() -> dict[str, str]:
    """Each block's NumPy helper → its math name, read from the catalog (``latex_name``
    ``\\sigma`` → ``sigma``, which latexify prints as σ; ``\\operatorname{ReLU}`` → ``ReLU``)."""
    names: dict[str, str] = {}
    todo = [Primitive, RowBlock]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        fn = cls.__dict__.get("numpy_form")
        fn = getattr(fn, "__func__", fn)
        if fn is None or not hasattr(fn, "__name__") or fn.__name__ in names:
            continue
        tex = getattr(cls, "latex_name", None) or rf"\operatorname{{{getattr(cls, 'name', '')}}}"
        name = re.fullmatch(r"\\operatorname\{(\w+)\}(_\{.*\})?|\\(\w+)", tex)
        names[fn.__name__] = (name.group(1) or name.group(3)) if name else cls.__name__
    return names


def function_latex(fn: Callable[..., Any] | Any, **options: Any) -> str:
    r"""The LaTeX of a compiled or exported function, by latexify-py:
    ``\mathrm{gradient}(x) = \sigma(x) \cdot \sigma(-x)``."""
    import latexify

    display = getattr(fn, "display_function", None)  # a compiled function: its generated formula form
    target = display() if callable(display) else fn
    settings = {"use_math_symbols": True, "reduce_assignments": True, "identifiers": _identifiers()}
    settings.update(options)
    try:
        return latexify.get_latex(target, **settings)
    except OSError as exc:
        raise ValueError(f"latexify needs the function's source code: {exc}") from None
