"""Compiled functions: the one loader of generated code (``exec`` + ``linecache``) and
:class:`CompiledFunction`, which takes its inputs by name.
"""

from __future__ import annotations

import itertools
import linecache
import math
from ..printing.latexify import function_latex
from .codegen import generate_source
from typing import Any, Callable, Sequence
import numpy as np
import sympy as sp
from .. import runtime
from ..symbols import free_inputs
from ..printing.tex import latex

__all__ = ["CompiledFunction", "compile_expr", "compile_derivation", "load", "formula_of", "wrt_name", "matrix_names_of"]


class CompiledFunction:
    """A compiled NumPy function taking its inputs by name: ``f(x=…, y=…)``.

    ``source`` is the generated code; ``params`` the input names (symbol names); sizes of
    indexed sums (``n``) default to the length of the summed array's last axis. Outputs
    have the floating dtype of the inputs (float32 in, float32 out)."""

    def __init__(self, fn: Callable, source: str, params: Sequence[str], defaults: dict[str, Callable],
                 formula: str = "", display: Callable[[bool], Callable] | None = None):
        self._fn = fn
        self._display = display  # fuse → the formula form of this function (generated, see codegen)
        self.source = source
        self.params = tuple(params)
        self._keys = set(self.params)
        self._defaults = defaults
        self.formula = formula
        self.__doc__ = fn.__doc__

    def __call__(self, /, *args, **kwargs):  # positional-only self: an input may be named self
        if args:
            raise TypeError(f"pass the inputs by name, e.g. f({', '.join(p + '=…' for p in self.params)})")
        if kwargs.keys() == self._keys:  # the common call: every input, nothing else
            values = [kwargs[p] for p in self.params]
            if not all(isinstance(v, _NUMPY_LIKE) for v in values):  # another array library: its own types
                return self._fn(*values)
            return _cast(self._fn(*values), runtime.result_dtype([v for v in values if not isinstance(v, (int, np.integer))]))
        unknown = sorted(set(kwargs) - set(self.params))
        if unknown:
            raise TypeError(f"unexpected input(s) {', '.join(unknown)}; this function takes {', '.join(self.params) or 'no inputs'}")
        for name, default in self._defaults.items():
            if name not in kwargs:
                kwargs[name] = default(kwargs)
        missing = [p for p in self.params if p not in kwargs]
        if missing:
            raise TypeError(f"missing input(s) {', '.join(missing)}; this function takes {', '.join(self.params)}")
        values = [kwargs[p] for p in self.params]
        if not all(isinstance(v, _NUMPY_LIKE) for v in values):
            return self._fn(*values)
        dtype = runtime.result_dtype([v for v in values if not isinstance(v, (int, np.integer))])
        out = self._fn(*values)  # stable forms: no floating-point warning is hidden here
        return _cast(out, dtype)

    def __repr__(self) -> str:
        return f"<symgrad compiled function ({', '.join(self.params)}): {self.formula}>"

    def latex(self, exact: bool = False, **options) -> str:
        """The generated code as LaTeX, by latexify-py (σ for the sigmoid, Greek names).

        By default the code is rendered with its fused one-exp helpers written out (σ(x)·σ(−x)
        for σ'(x)), which is the formula it implements; ``exact=True`` renders the executed code's
        formula form (its fused helpers kept)."""
        return function_latex(self.display_function(exact), **options)

    def display_function(self, exact: bool = False) -> Callable:
        """The same function generated in formula form (no array-namespace lines), for latexify."""
        return self._fn if self._display is None else self._display(exact)

    def _repr_latex_(self) -> str:
        return "$" + self.latex() + "$"


_NUMPY_LIKE = (np.ndarray, np.generic, int, float, list, tuple)


def _cast(out, dtype):
    if isinstance(out, tuple):
        return tuple(_cast(o, dtype) for o in out)
    if isinstance(out, np.ndarray) and out.ndim and out.dtype == dtype:
        return out
    arr = np.asarray(out)
    if arr.dtype != dtype and np.issubdtype(arr.dtype, np.number):
        arr = arr.astype(dtype)
    return arr if arr.ndim else arr[()]


_COUNTER = itertools.count(1)


def _generated_globals(helpers: dict[str, Callable]) -> dict[str, Any]:
    """What generated code may refer to besides its inputs."""
    return {"numpy": np, "np": np, "math": math, "assemble": runtime.assemble, "namespace": runtime.namespace,
            "transpose": np.transpose, **helpers}


def load(source: str, name: str, helpers: dict[str, Callable]) -> Callable:
    """The one loader of generated code: ``source`` registered with linecache (so tracebacks,
    ``inspect.getsource`` and latexify read it) and executed; returns its function ``name``."""
    filename = f"<symgrad-generated-{next(_COUNTER)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = _generated_globals(helpers)
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - source built from SymPy trees with generated names only
    return namespace[name]


def compile_expr(outputs: sp.Basic | Sequence[sp.Basic], args: Sequence[sp.Basic] | None = None, *,
                 name: str = "f", stable: bool = True, formula: str = "",
                 matrix_names: dict | None = None, fuse: bool = True) -> CompiledFunction:
    """Compile one expression/Matrix (or a tuple of them) to a :class:`CompiledFunction`."""

    single = not isinstance(outputs, (list, tuple))
    outs = [outputs] if single else list(outputs)
    if args is None:
        found: set = set()
        for o in outs:
            found |= free_inputs(o)
        args = sorted(found, key=lambda s: s.name)
    args = list(args)
    formula = formula.replace('"', "'").rstrip("\\")  # safe inside a raw docstring
    source, helpers, names = generate_source(name, outs, args, doc=formula, stable=stable,
                                             as_tuple=not single, matrix_names=matrix_names, fuse=fuse)

    def display(exact: bool) -> Callable:
        text, used, _ = generate_source(name, outs, args, doc=formula, stable=stable, as_tuple=not single,
                                        matrix_names=matrix_names, fuse=fuse and exact, display=True)
        return load(text, name, used)

    return CompiledFunction(load(source, name, helpers), source, [a.name for a in args], _size_defaults(outs, args),
                            formula, display)


def _size_defaults(outs, args) -> dict[str, Callable]:
    """n in Σ_{i=1}^{n} x[i] defaults to len(x) along the last axis."""
    defaults: dict[str, Callable] = {}
    arg_names = {a.name for a in args}
    for o in outs:
        for s in o.atoms(sp.Sum):
            i, _, upper = s.limits[0]
            if isinstance(upper, sp.Symbol) and upper.name in arg_names:
                bases = [idx.base.label.name for idx in s.function.atoms(sp.Indexed) if idx.indices == (i,)]
                if bases:
                    defaults[upper.name] = lambda kw, b=bases[0]: np.shape(kw[b])[-1]
    return defaults


def compile_derivation(derivation, *, stable: bool = True) -> CompiledFunction:
    """The derivation's textbook result as a NumPy function (a tuple for a list ``wrt``)."""

    args = derivation.free_symbols()
    formula = formula_of(derivation)
    outputs = derivation.result if derivation.single else tuple(derivation.result)
    return compile_expr(outputs, args, name="gradient", stable=stable, formula=formula,
                        matrix_names=matrix_names_of(derivation))


def matrix_names_of(derivation) -> dict:
    return {v: k for k, v in derivation.intermediates.items() if isinstance(v, sp.MatrixExpr)}


def formula_of(derivation) -> str:
    """The docstring formula: each result with the intermediates' names, then where they stand."""

    named = (derivation.named,) if derivation.single else derivation.named
    text = "; ".join(f"d/d{wrt_name(w)} = {latex(r)}" for w, r in zip(derivation.wrt, named))
    shown = set().union(*(getattr(r, "free_symbols", set()) for r in named))
    where = [f"{latex(k)} = {latex(v)}" for k, v in derivation.intermediates.items() if k in shown]
    return text + (f", where {', '.join(where)}" if where else "")


def wrt_name(w) -> str:
    if isinstance(w, sp.MatrixBase):
        return "[" + ", ".join(sp.sstr(e) for e in w) + "]"
    return sp.sstr(w)


