"""``Primitive``: the ``sympy.Function`` subclass every primitive block extends.

A primitive declares, on one screen:

* ``elementary(*args)``  its forward in elementary functions (exp, log, Piecewise) —
  used for ``rewrite(sp.exp)``, high-precision evaluation and the plain-SymPy ``raw``;
* ``fdiff``              its derivative identity, written through its own output where
  one exists (``σ' = σ(1 − σ)``); SymPy's ``diff`` calls it for the chain rule;
* ``latex_name``         how it prints (``\\sigma``);
* ``numpy_form``         its numerically stable NumPy implementation (a plain function
  that imports nothing but NumPy, so that generated modules can inline it);
* ``kink``               its convention where it is not differentiable (on the Block).

Elementwise primitives map over explicit matrices (``sigmoid(Matrix([x, y]))``).
"""

from __future__ import annotations

from typing import Callable, ClassVar

import sympy as sp
from .rows import elementwise

__all__ = ["Primitive", "constraints_of", "sum_entries", "elementwise_of"]


def sum_entries(M: sp.MatrixExpr) -> sp.Expr:
    """Σ_ij M_ij = (1ᵀ M 1): a loss over a batch (reduction "sum"; divide by N for the mean)."""
    from sympy.matrices.expressions.matexpr import MatrixElement

    rows, cols = M.shape
    return MatrixElement(sp.MatMul(sp.OneMatrix(1, rows), M, sp.OneMatrix(cols, 1)), 0, 0)


def elementwise_of(M: sp.Basic, function: type) -> sp.MatrixExpr | None:
    """Z when ``M`` is ``function`` applied to every entry of Z (σ(Z) → Z), else None."""
    from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

    if isinstance(M, ElementwiseApplyFunction):
        body, (var,) = M.function.expr, M.function.variables
        if isinstance(body, function) and body.args == (var,):
            return M.expr
    return None


class Primitive(sp.Function):
    """Base of the catalog's SymPy functions."""

    latex_name: ClassVar[str] = ""
    latex_parameters: ClassVar[int] = 0  # how many trailing arguments print as a subscript (α of ELU_α)
    numpy_form: ClassVar[Callable | None] = None  # wrapped in staticmethod by subclasses
    elementwise: ClassVar[bool] = False

    @classmethod
    def eval(cls, *args):
        if any(isinstance(a, sp.MatrixExpr) and a.shape == (1, 1) for a in args):  # 1×1 matrices are scalars
            from sympy.matrices.expressions.matexpr import MatrixElement

            return cls(*[MatrixElement(a, 0, 0) if isinstance(a, sp.MatrixExpr) and a.shape == (1, 1) else a
                         for a in args])
        if cls.elementwise and len(args) >= 1 and isinstance(args[0], sp.MatrixBase):
            first, rest = args[0], args[1:]
            return first.applyfunc(lambda entry: cls(entry, *rest))
        if cls.elementwise and len(args) >= 1 and isinstance(args[0], sp.MatrixExpr):

            first, rest = args[0], args[1:]
            return elementwise(lambda entry: cls(entry, *rest), first)
        if any(isinstance(a, sp.MatrixExpr) for a in args) and hasattr(cls, "on_matrices"):
            return cls.on_matrices(*args)
        if any(isinstance(a, (sp.MatrixBase, sp.MatrixExpr)) for a in args):
            raise TypeError(
                f"{cls.__name__} takes scalar arguments here; pass a list or Matrix only as "
                f"its first argument (elementwise) or use the vector helper"
            )
        exact = cls.exact(*args)
        if exact is not None:
            return exact
        if all(a.is_number for a in args) and any(a.is_Float for a in args):
            return cls.elementary(*args).evalf()
        return None

    # -- to be declared by each primitive ---------------------------------------------
    @classmethod
    def exact(cls, *args) -> sp.Expr | None:
        """The exact value where the arguments decide it (σ(0) = 1/2, relu of a known sign), or None."""
        return None

    @staticmethod
    def elementary(*args) -> sp.Expr:  # pragma: no cover - every primitive overrides it
        raise NotImplementedError

    def constraints(self) -> list[tuple[sp.Expr, ...]]:
        """Groups of arguments that sum to 1 in the block's domain (targets)."""
        return []

    # -- what SymPy sees ----------------------------------------------------------------
    def _eval_rewrite_as_exp(self, *args, **kwargs):
        return self.elementary(*args)

    def _eval_rewrite(self, rule, args, **hints):
        # rewrite(sp.exp), rewrite("elementary") and rewrite(sp.Piecewise) all give the
        # elementary form; other targets are left to SymPy.
        if rule in (sp.exp, "exp", "elementary", sp.Piecewise, "Piecewise", sp.log, "log"):
            return self.elementary(*args)
        return super()._eval_rewrite(rule, args, **hints)

    def _eval_evalf(self, prec):
        return self.elementary(*self.args).evalf(prec_to_dps(prec))

    def _eval_is_real(self):
        if all(a.is_extended_real for a in self.args):
            return True
        return None

    def _latex(self, printer, exp=None):
        name, args = self.latex_name, self.latex_args()
        if self.latex_parameters:  # the last arguments are parameters, written as a subscript: ELU_α(x)
            k = len(args) - self.latex_parameters
            name = name.split("_{")[0] + "_{" + ", ".join(printer._print(a) for a in args[k:]) + "}"
            args = args[:k]
        tex = rf"{name}\left({', '.join(printer._print(a) for a in args)}\right)"
        return tex if exp is None else rf"{tex}^{{{exp}}}"

    def _symgrad_numpy(self, printer):
        return printer.print_block(self)

    def latex_args(self) -> tuple:
        return self.args

    def _sympystr(self, printer):
        return f"{self.func.__name__}({', '.join(printer._print(a) for a in self.args)})"


def prec_to_dps(prec: int) -> int:
    return max(1, int(round(prec * 0.30103)) - 1)


def constraints_of(expr: sp.Basic) -> list[tuple[sp.Expr, ...]]:
    """Every sum-to-one group declared by the primitives inside ``expr``."""
    groups: list[tuple[sp.Expr, ...]] = []
    for node in sp.preorder_traversal(expr):
        if isinstance(node, Primitive):
            for group in node.constraints():
                if group not in groups:
                    groups.append(group)
    return groups
