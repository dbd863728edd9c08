"""Code as LaTeX: compiled and exported functions rendered by latexify-py, with the math names
of the blocks (σ for the sigmoid) and Greek letters for Greek names, so that the code a user
imports and the formula it implements can be shown side by side."""

from __future__ import annotations

import ast
import inspect
import linecache
import textwrap
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


class _DropNamespace(ast.NodeTransformer):
    """Removes the array-namespace plumbing of generated code (``xp = namespace(x)``,
    ``x = xp.asarray(x)``, ``xp=xp``): it is not part of the formula."""

    def visit_Assign(self, node):
        value = node.value
        if isinstance(value, ast.Call) and (
                (isinstance(value.func, ast.Name) and value.func.id == "namespace")
                or (isinstance(value.func, ast.Attribute) and value.func.attr == "asarray")):
            return None
        return self.generic_visit(node)

    def visit_Call(self, node):
        node.keywords = [k for k in node.keywords if k.arg != "xp"]
        if isinstance(node.func, ast.Attribute) and node.func.attr == "matrix_transpose":  # xp.matrix_transpose(x)
            node.func = ast.Name(id="transpose", ctx=ast.Load())
        scale = [k.value for k in node.keywords if k.arg == "scale"]  # f(u, scale=s): the product s · f(u)
        if scale:
            node.keywords = [k for k in node.keywords if k.arg != "scale"]
            return ast.BinOp(left=self.visit(scale[0]), op=ast.Mult(), right=self.generic_visit(node))
        return self.generic_visit(node)

    def visit_Attribute(self, node):  # x.mT / x.T → transpose(x), a function latexify can show
        node = self.generic_visit(node)
        if node.attr in ("T", "mT"):
            return ast.Call(func=ast.Name(id="transpose", ctx=ast.Load()), args=[node.value], keywords=[])
        return node


def _without_namespace(target: Callable[..., Any]) -> Callable[..., Any]:
    """The function rebuilt from its source without the namespace plumbing (its own generated
    code; the rebuilt source is registered with linecache so that latexify can read it)."""
    source = textwrap.dedent(inspect.getsource(target))
    if "xp = namespace(" not in source:  # only symgrad's generated code is rebuilt
        return target
    tree = ast.fix_missing_locations(_DropNamespace().visit(ast.parse(source)))
    text = ast.unparse(tree) + "\n"
    filename = f"<symgrad-latex-{target.__name__}-{abs(hash(text))}>"
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    scope = dict(target.__globals__)
    exec(compile(text, filename, "exec"), scope)  # noqa: S102 - symgrad's generated code, names as generated
    return scope[target.__name__]


def function_latex(fn: Callable[..., Any] | Any, **options: Any) -> str:
    r"""The LaTeX of a compiled or exported function, by latexify-py:
    ``\mathrm{gradient}(x) = \sigma(x) \cdot \sigma(-x)``."""
    import latexify

    from .compiler import CompiledFunction

    target = fn._fn if isinstance(fn, CompiledFunction) else fn
    try:
        target = _without_namespace(target)
    except (OSError, TypeError):
        pass  # no source: latexify says so below
    settings = {"use_math_symbols": True, "reduce_assignments": True, "identifiers": _identifiers()}
    settings.update(options)
    try:
        return latexify.get_latex(target, **settings)
    except OSError as exc:
        raise ValueError(f"latexify needs the function's source code: {exc}") from None
