"""COMPILE: SymPy results → readable, numerically stable Array API functions.

The pipeline: stability rewrites (``simplify.stable``) → common-subexpression elimination and the
one source builder (``codegen``) → the one loader and :class:`CompiledFunction`, which takes the
inputs by name (``function``); standalone ``.py`` modules (``module``); a graph's reverse pass as
a program (``backprop``). Names in generated code are generated, never taken from user text."""

from .backprop import compile_backprop
from .function import CompiledFunction, compile_derivation, compile_expr
from .module import export_module, module_source

__all__ = ["CompiledFunction", "compile_backprop", "compile_derivation", "compile_expr", "export_module",
           "module_source"]
