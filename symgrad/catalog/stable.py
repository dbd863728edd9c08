"""Fused stable forms the compiler rewrites to (never shown in derivations, never registered as
blocks): each is a Primitive with its elementary form (for checks) and a NumPy form that computes
with one exp and no cancellation, so compiled code is accurate over the whole float64 range."""

from __future__ import annotations

import numpy as np
import sympy as sp

from ..matrices import Entrywise
from .activations import SoftmaxEntry, _pick, sigmoid
from .base import Primitive

__all__ = ["sigmoid_grad", "sigmoid_shift", "sech2", "SigmoidShiftEntries", "softmax_entry_shift"]


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


def softmax_entry_shift_np(i, c, *z, xp=np):
    """a_i + c for a_i = softmax(z)_i (1-based i): where z_i is the largest, a_i + c = (1 + c) − r/(1 + r)
    with r = Σ_{j ≠ i} e^{z_j − z_i}, so a_i − 1 keeps its digits (−Σ_{j≠i} a_j); elsewhere a_i ≤ 1/2."""
    z = xp.stack(xp.broadcast_arrays(*[xp.asarray(v) for v in z]), axis=-1)
    m = xp.max(z, axis=-1, keepdims=True)
    e = xp.exp(z - m)
    position = xp.reshape(xp.arange(z.shape[-1]), (1,) * (z.ndim - 1) + (-1,))
    mine = position == xp.asarray(i)[..., None] - 1
    others = xp.sum(xp.where(mine, 0.0, e), axis=-1)  # Σ_{j ≠ i} e_j, summed as such
    e_i = _pick(e, i, xp=xp)
    total = others + e_i
    return xp.where(_pick(z, i, xp=xp) == m[..., 0], (1 + c) - others / total, e_i / total + c)


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
