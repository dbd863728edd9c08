"""Fused stable forms the compiler rewrites to (never shown in derivations, never registered as
blocks): each is a Primitive with its elementary form (for checks) and a NumPy form that computes
with one exp and no cancellation, so compiled code is accurate over the whole float64 range."""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from .rows import Entrywise
from .activations import SoftmaxEntry, pick_entry, sigmoid
from .base import Primitive

__all__ = ["sigmoid_grad", "sigmoid_shift", "sigmoid_minus", "sech2", "SigmoidShiftEntries", "softmax_entry_shift",
           "COMPLEMENTS", "complement_pair", "monotone_comparison"]


def sigmoid_grad_np(u, xp=np):
    """σ(u)σ(−u) = e/(1 + e)² with e = exp(−|u|): one exp, no 1 − σ cancellation."""
    if isinstance(u, np.ndarray) and u.ndim and u.dtype.kind == "f":  # in place: two arrays, not six
        e = np.abs(u)
        np.negative(e, out=e)
        np.exp(e, out=e)
        t = e + 1.0
        t *= t
        e /= t
        return e
    e = xp.exp(-xp.abs(u))
    t = 1.0 + e
    return e / (t * t)


def sigmoid_shift_np(u, c, xp=np):
    """σ(u) + c = ((1 + c)σ(u) + c σ(−u)): exact at c = −1 (−σ(−u)) and c = 0, one exp."""
    e = xp.exp(-xp.abs(u))
    pos = u >= 0
    return ((1 + c) * xp.where(pos, 1.0, e) + c * xp.where(pos, e, 1.0)) / (1.0 + e)


def _blocks(*arrays):
    """Whether the fast NumPy loop applies: float arrays of one shape, dtype and C order."""
    first = arrays[0]
    return all(isinstance(a, np.ndarray) and a.shape == first.shape and a.dtype == first.dtype
               and a.flags.c_contiguous for a in arrays) and first.ndim > 0 and first.dtype.kind == "f"


def sigmoid_minus_np(u, y, scale=None, xp=np):
    """(σ(u) − y)·scale = (e^u (1 − y) − y) / (1 + e^u)·scale: one exp, exact at y = 1 (−σ(−u)) and
    y = 0 (σ(u)); no cancellation but the one in σ(u) ≈ y itself. Where e^u would overflow
    (u > 700), the form in e = e^{−|u|}; ±inf give the limits 1 − y and −y.

    NumPy arrays of one shape go through blocks of 2¹⁴ entries (a few such temporaries stay in cache), in place
    (``scale``, the upstream gradient, is multiplied in while the block is in cache)."""
    if _blocks(u, y) and (scale is None or _blocks(u, scale)):
        out = np.empty_like(u)
        fu, fy, fo = u.reshape(-1), y.reshape(-1), out.reshape(-1)
        fs = scale.reshape(-1) if scale is not None else None
        step = min(fu.size, 1 << 14)
        e = np.empty(step, u.dtype)
        limit = 700.0 if u.dtype.itemsize >= 8 else 85.0  # e^u stays finite below it
        for i in range(0, fu.size, step):
            ui, yi, oi = fu[i:i + step], fy[i:i + step], fo[i:i + step]
            if not ui.max() <= limit:  # e^u could overflow, or a NaN: the careful form
                oi[...] = _sigmoid_minus_wide(ui, yi, np)
            else:
                ei = np.exp(ui, out=e[:ui.size])
                np.subtract(1.0, yi, out=oi)
                oi *= ei
                oi -= yi
                ei += 1.0
                oi /= ei
            if fs is not None:
                oi *= fs[i:i + step]
        return out
    out = _sigmoid_minus_wide(u, y, xp)
    return out if scale is None else out * scale


def _sigmoid_minus_wide(u, y, xp=np):
    """σ(u) − y from e = e^{−|u|} ≤ 1 (no overflow anywhere): ((1 − y)·[1 or e] − y·[e or 1])/(1 + e)."""
    e = xp.exp(-xp.abs(u))
    pos = u >= 0
    return ((1 - y) * xp.where(pos, 1.0, e) - y * xp.where(pos, e, 1.0)) / (1.0 + e)


def sech2_np(u, xp=np):
    """1 − tanh²(u) = 4e/(1 + e)² with e = exp(−2|u|): accurate in the tails."""
    if isinstance(u, np.ndarray) and u.ndim and u.dtype.kind == "f":  # in place: two arrays
        e = np.abs(u)
        e *= -2.0
        np.exp(e, out=e)
        t = e + 1.0
        t *= t
        e *= 4.0
        e /= t
        return e
    e = xp.exp(-2.0 * xp.abs(u))
    t = 1.0 + e
    return 4.0 * e / (t * t)


class sigmoid_grad(Primitive):
    """σ(u)σ(−u) = σ'(u)."""

    nargs = 1
    latex_name = r"\sigma'"
    numpy_form = staticmethod(sigmoid_grad_np)

    def fdiff(self, argindex=1):
        u = self.args[0]
        return sigmoid(u) * sigmoid(-u) * (sigmoid(-u) - sigmoid(u))

    @staticmethod
    def elementary(u):
        return sp.exp(-u) / (1 + sp.exp(-u)) ** 2


class sigmoid_shift(Primitive):
    """σ(u) + c."""

    nargs = 2
    numpy_form = staticmethod(sigmoid_shift_np)

    def fdiff(self, argindex=1):
        u = self.args[0]
        return sigmoid_grad(u) if argindex == 1 else sp.S.One

    @staticmethod
    def elementary(u, c):
        return 1 / (1 + sp.exp(-u)) + c


class sigmoid_minus(Primitive):
    """σ(u) − y (the BCE-on-logits gradient), fused: one exp, no cancellation where σ(u) ≈ y = 1."""

    nargs = 2
    numpy_form = staticmethod(sigmoid_minus_np)

    def fdiff(self, argindex=1):
        return sigmoid_grad(self.args[0]) if argindex == 1 else sp.S.NegativeOne

    @staticmethod
    def elementary(u, y):
        return 1 / (1 + sp.exp(-u)) - y


class sech2(Primitive):
    """1 − tanh²(u)."""

    nargs = 1
    numpy_form = staticmethod(sech2_np)

    def fdiff(self, argindex=1):
        u = self.args[0]
        return -2 * sp.tanh(u) * sech2(u)

    @staticmethod
    def elementary(u):
        return 1 - sp.tanh(u) ** 2


class SigmoidShiftEntries(Entrywise):
    """σ(U) + C entry by entry (σ(z) − y for BCE on logits): one exp, exact where σ ≈ −c."""

    function = sigmoid_shift
    numpy_form = staticmethod(sigmoid_shift_np)

    precedence = PRECEDENCE["Add"]  # printed as the sum it is: Xᵀ(σ(Xw) − y)

    def plain(self) -> sp.MatrixExpr:
        """The textbook form it computes: σ(U) + C."""
        U, C = self.args
        return sp.MatAdd(sigmoid(U), C)

    def _latex(self, printer, **kwargs):
        return printer._print(self.plain())

    def _sympystr(self, printer):
        return printer._print(self.plain())


def softmax_entry_shift_np(i, c, *z, xp=np):
    """a_i + c for a_i = softmax(z)_i (1-based i): where z_i is the largest, a_i + c = (1 + c) − r/(1 + r)
    with r = Σ_{j ≠ i} e^{z_j − z_i}, so a_i − 1 keeps its digits (−Σ_{j≠i} a_j); elsewhere a_i ≤ 1/2."""
    z = xp.stack(xp.broadcast_arrays(*[xp.asarray(v) for v in z]), axis=-1)
    m = xp.max(z, axis=-1, keepdims=True)
    e = xp.exp(z - m)
    position = xp.reshape(xp.arange(z.shape[-1]), (1,) * (z.ndim - 1) + (-1,))
    mine = position == xp.asarray(i)[..., None] - 1
    others = xp.sum(xp.where(mine, 0.0, e), axis=-1)  # Σ_{j ≠ i} e_j, summed as such
    e_i = pick_entry(e, i, xp=xp)
    total = others + e_i
    return xp.where(pick_entry(z, i, xp=xp) == m[..., 0], (1 + c) - others / total, e_i / total + c)


class softmax_entry_shift(Primitive):
    """softmax(z)_i + c: the cross-entropy gradient a_i − y_i, written without cancellation."""

    numpy_form = staticmethod(softmax_entry_shift_np)

    def fdiff(self, argindex=1):
        i, z = self.args[0], self.args[2:]
        if argindex == 1:
            return sp.S.Zero
        if argindex == 2:
            return sp.S.One
        return SoftmaxEntry(i, *z).fdiff(argindex - 1)

    @staticmethod
    def elementary(i, c, *z):
        return SoftmaxEntry.elementary(i, *z) + c


# --- complements: A − A·g(u) = A·(1 − g(u)) loses every digit where g(u) rounds to 1 ---------------------
def _tanh_square(f):
    """(u, tanh²u) when the factor f is tanh(u)ⁿ, n ≥ 2 (2t − 2t³ = 2t(1 − t²))."""
    if isinstance(f, sp.Pow) and f.exp.is_Integer and f.exp >= 2 and isinstance(f.base, sp.tanh):
        return f.base.args[0], f.base ** 2
    return None


def _factor(kind):
    return lambda f: (f.args[0], f) if isinstance(f, kind) else None


#: g(u) → ((u, the part g of the factor), the complement 1 − g(u) computed without the cancellation),
#: by kind: "sigmoid": 1 − σ(u) = σ(−u); "tanh": 1 ∓ tanh(u) = 2σ(∓2u); "tanh2": 1 − tanh²(u) = sech²(u)
COMPLEMENTS = {
    "sigmoid": (_factor(sigmoid), lambda u, sign: sigmoid(-u)),
    "tanh": (_factor(sp.tanh), lambda u, sign: 2 * sigmoid(-2 * sign * u)),
    "tanh2": (_tanh_square, lambda u, sign: sech2(u)),
}


def complement_pair(node, kind: str):
    r"""``node`` (a sum) with a pair of terms A and ∓A·g(u) written A·(1 ∓ g(u)) in its complement's
    stable form (:data:`COMPLEMENTS`), or None when it has no such pair:

    .. math:: A - A\,\sigma(u) = A\,\sigma(-u),\quad A \mp A\tanh u = 2A\,\sigma(\mp 2u),\quad
              A - A\tanh^2 u = A\,\mathrm{sech}^2 u
    """
    if not isinstance(node, sp.Add):
        return None
    match, build = COMPLEMENTS[kind]
    terms = list(node.args)
    for i, term in enumerate(terms):
        for f in sp.Mul.make_args(term):
            found = match(f)
            if found is None:
                continue
            u, g = found
            rest = term / g  # term = rest · g(u): the pair is A = −rest (or A = rest for 1 + tanh)
            for sign in ((1, -1) if kind == "tanh" else (1,)):
                a = -rest if sign == 1 else rest
                j = next((j for j, t in enumerate(terms) if j != i and t == a), None)
                if j is not None:
                    others = [t for k, t in enumerate(terms) if k not in (i, j)]
                    return sp.Add(a * build(u, sign), *others)
    return None


def monotone_comparison(node):
    r"""A comparison of tanh(u) or σ(u) with a number c, written as one of u with the inverse at c
    (tanh(u) < 1 is False in float64 once tanh(u) rounds to 1, at u > 19.1; u < ∞ is not), or None:

    .. math:: \tanh u < c \iff u < \operatorname{atanh} c\ (|c| < 1),\qquad \tanh u < c \iff
              \text{true}\ (c \ge 1);\qquad \sigma(u) < c \iff u < \log\tfrac{c}{1 - c}
    """
    if not isinstance(node, (sp.StrictLessThan, sp.LessThan, sp.StrictGreaterThan, sp.GreaterThan)):
        return None
    if node.lhs.is_number and not node.rhs.is_number:
        node = node.reversed
    f, c = node.lhs, node.rhs
    if not c.is_number or not c.is_real:
        return None
    for kind, low, high, inverse in ((sp.tanh, -1, 1, sp.atanh), (sigmoid, 0, 1, lambda v: sp.log(v / (1 - v)))):
        if isinstance(f, kind):
            below = isinstance(node, (sp.StrictLessThan, sp.LessThan))  # f < c or f ≤ c
            if c >= high:
                return sp.true if below else sp.false
            if c <= low:
                return sp.false if below else sp.true
            at = inverse(c)  # a number: as a float literal in compiled code (xp.atanh(0.5) fails on torch)
            return node.func(f.args[0], at if at.is_Rational else sp.Float(sp.N(at, 20), 17))
    return None
