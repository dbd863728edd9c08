"""Stability rewrites: rules as data, applied to what is compiled (never to what is shown).

Each rule names the unstable form it replaces and why: 1 − σ(u) cancels where σ rounds to 1, so it
becomes σ(−u); σ(u)σ(−u) is one fused exp; log Σ exp is shifted by its max; …
"""

from __future__ import annotations

import sympy as sp
from ..catalog.activations import elu, sigmoid, softplus
from ..catalog.activations import SoftmaxEntry
from ..catalog.stable import sech2, sigmoid_grad, sigmoid_minus, sigmoid_shift, softmax_entry_shift
from ..catalog.stable import complement_pair, monotone_comparison
from ..catalog.layers import LogSumExp
from .rules import Rule
from ..catalog.rows import RowSoftmax
from ..catalog.rows import SoftmaxMinusTargets
from ..catalog.rows import LogSoftmaxVJP
from ..catalog.rows import SoftmaxVJP

__all__ = ["STABLE_RULES", "FUSION_RULES", "stabilise"]


# --- stability rewrites (applied to what is compiled, not to what is shown) ------------------------
def _one_minus_sigmoid(node) -> sp.Expr | None:
    if isinstance(node, sp.Add) and len(node.args) == 2 and sp.S.One in node.args:
        other = node.args[0] if node.args[1] == 1 else node.args[1]
        if other.could_extract_minus_sign() and isinstance(-other, sigmoid):
            return (-other).args[0]
    return None


def _sigmoid_pair(node) -> tuple | None:
    """(σ(u), σ(−u)) when both are factors of the product ``node``."""
    if not isinstance(node, sp.Mul):
        return None
    sigs = [f for f in node.args if isinstance(f, sigmoid)]
    for a in sigs:
        for b in sigs:
            if a is not b and sp.expand(a.args[0] + b.args[0]) == 0:
                return a, b
    return None


def _fuse_sigmoid_pair(node):
    a, b = _sigmoid_pair(node)
    u = a.args[0] if not a.args[0].could_extract_minus_sign() else b.args[0]
    rest = list(node.args)
    rest.remove(a)
    rest.remove(b)
    return sp.Mul(sigmoid_grad(u), *rest)


def _sigmoid_plus_constant(node) -> tuple | None:
    """(u, c) when node = σ(u) + c with c free of sigmoids (and not 1 − σ, handled above)."""
    if not isinstance(node, sp.Add):
        return None
    sigs = [t for t in node.args if isinstance(t, sigmoid)]
    if len(sigs) != 1:
        return None
    rest = sp.Add(*[t for t in node.args if t is not sigs[0]])
    if rest.has(sigmoid) or rest == 0:
        return None
    return sigs[0].args[0], rest


def _fuse_sigmoid_plus_constant(u, c):
    """σ(u) − y as sigmoid_minus(u, y) (no negated copy of y), σ(u) + c otherwise."""
    return sigmoid_minus(u, -c) if c.could_extract_minus_sign() else sigmoid_shift(u, c)


def _softmax_entry_plus_constant(node) -> tuple | None:
    """(a_i, c) when node = softmax(z)_i + c with c free of softmax entries."""
    if not isinstance(node, sp.Add):
        return None
    entries = [t for t in node.args if isinstance(t, SoftmaxEntry)]
    if len(entries) != 1:
        return None
    rest = sp.Add(*[t for t in node.args if t is not entries[0]])
    if rest.has(SoftmaxEntry) or rest == 0:
        return None
    return entries[0], rest


def _fuse_softmax_entry(node):
    entry, c = _softmax_entry_plus_constant(node)
    return softmax_entry_shift(entry.args[0], c, *entry.args[1:])


def _one_minus_tanh_squared(node) -> sp.Expr | None:
    if isinstance(node, sp.Add) and len(node.args) == 2 and sp.S.One in node.args:
        other = node.args[0] if node.args[1] == 1 else node.args[1]
        if other.could_extract_minus_sign():
            sq = -other
            if isinstance(sq, sp.Pow) and sq.exp == 2 and isinstance(sq.base, sp.tanh):
                return sq.base.args[0]
    return None


def _elu_left_branch(node) -> bool:
    """Piecewise((…, u > 0), (ELU(u, α) + α, True)): the x ≤ 0 branch of ELU'."""
    if not isinstance(node, sp.Piecewise) or len(node.args) != 2:
        return False
    (_, cond), (value, last) = node.args
    if last is not sp.true or not isinstance(cond, (sp.StrictGreaterThan, sp.StrictLessThan)):
        return False
    elus = [t for t in sp.Add.make_args(value) if isinstance(t, elu)]
    if len(elus) != 1:
        return False
    ratio = sp.cancel(elus[0].args[0] / (cond.gts - cond.lts))  # 2x > 0 reads x > 0, −3x > 0 reads x < 0
    return ratio.is_number and bool(ratio.is_positive) and sp.simplify(value - elus[0] - elus[0].args[1]) == 0


def _fix_elu_left_branch(node):
    (first, cond), (value, _) = node.args
    u, alpha = next(t for t in sp.Add.make_args(value) if isinstance(t, elu)).args
    return sp.Piecewise((first, cond), (alpha * sp.exp(sp.Min(u, 0)), True))


def _sum_of_exps(node) -> list | None:
    """[z_1, …, z_n] when node = e^{z_1} + … + e^{z_n} (n ≥ 2, nothing else)."""
    if isinstance(node, sp.Add) and len(node.args) >= 2 and all(isinstance(t, sp.exp) for t in node.args):
        return [t.args[0] for t in node.args]
    return None


def _log_sum_exp(node) -> list | None:
    """The exponents when node = log(e^{z_1} + … + e^{z_n}) (written naively by the user)."""
    return _sum_of_exps(node.args[0]) if isinstance(node, sp.log) else None


def _exp_over_sum(node) -> tuple | None:
    """(i, [z_1, …, z_n]) when node = e^{z_i} / Σ_j e^{z_j} times other factors (the derivative of
    a naive log-sum-exp)."""
    if not isinstance(node, sp.Mul):
        return None
    for f in node.args:
        if isinstance(f, sp.Pow) and f.exp == -1:
            z = _sum_of_exps(f.base)
            if z is not None:
                for g in node.args:
                    if isinstance(g, sp.exp) and g.args[0] in z:
                        return z.index(g.args[0]) + 1, z
    return None


def _fuse_exp_over_sum(node):
    i, z = _exp_over_sum(node)
    rest = list(node.args)
    rest.remove(sp.Pow(sp.Add(*[sp.exp(v) for v in z]), -1))
    rest.remove(sp.exp(z[i - 1]))
    return sp.Mul(SoftmaxEntry(i, *z), *rest)


def _softmax_minus_targets(node) -> tuple | None:
    """(Z, Y, transposed) when node = softmax(Z) − Y (rows), or its transpose softmax(Z)ᵀ − Yᵀ:
    a ≈ y = 1 cancels; the fused form does not."""

    if isinstance(node, sp.MatAdd) and len(node.args) == 2:
        for a, b in (node.args, node.args[::-1]):
            if not b.could_extract_minus_sign():
                continue
            if isinstance(a, RowSoftmax):
                return a.arg, -b, False
            if isinstance(a, sp.Transpose) and isinstance(a.arg, RowSoftmax):
                return a.arg.arg, sp.Transpose(-b).doit(), True
    return None


def _fuse_softmax_minus_targets(node):

    Z, Y, transposed = _softmax_minus_targets(node)
    return sp.Transpose(SoftmaxMinusTargets(Z, Y)) if transposed else SoftmaxMinusTargets(Z, Y)


def _negated(term):
    return -term if term.could_extract_minus_sign() else None


def _softmax_vjp(node) -> tuple | None:
    """(Z, G) when node = A ∘ (G − (G ∘ A) 1 1ᵀ), A = softmax(Z): the softmax backward."""

    if not isinstance(node, sp.HadamardProduct) or len(node.args) != 2:
        return None
    for A, M in (node.args, node.args[::-1]):
        if isinstance(A, RowSoftmax) and isinstance(M, sp.MatAdd) and len(M.args) == 2:
            for G, t in (M.args, M.args[::-1]):
                inner = _negated(t)
                if isinstance(inner, sp.MatMul) and len(inner.args) == 2 and isinstance(inner.args[1], sp.OneMatrix) \
                        and inner.args[0] == sp.HadamardProduct(G, A):
                    return A.arg, G
    return None


def _log_softmax_vjp(node) -> tuple | None:
    """(Z, G) when node = G − softmax(Z) ∘ (G 1 1ᵀ): the log-softmax backward."""

    if not isinstance(node, sp.MatAdd) or len(node.args) != 2:
        return None
    for G, t in (node.args, node.args[::-1]):
        inner = _negated(t)
        if isinstance(inner, sp.HadamardProduct) and len(inner.args) == 2:
            for A, S in (inner.args, inner.args[::-1]):
                if isinstance(A, RowSoftmax) and isinstance(S, sp.MatMul) and len(S.args) == 2 \
                        and S.args[0] == G and isinstance(S.args[1], sp.OneMatrix):
                    return A.arg, G
    return None


def _fused(kind: str):
    def build(node):

        return (SoftmaxVJP if kind == "softmax" else LogSoftmaxVJP)(*(
            _softmax_vjp(node) if kind == "softmax" else _log_softmax_vjp(node)))
    return build


STABLE_RULES: tuple[Rule, ...] = (
    # log Σ e^{z_j} overflows from z ≈ 710 on; the shifted log-sum-exp does not
    Rule("log(sum exp(z_j)) -> logsumexp(z)", lambda n: _log_sum_exp(n) is not None,
         lambda n: LogSumExp(*_log_sum_exp(n))),
    # its gradient e^{z_i}/Σ e^{z_j} is inf/inf there; softmax shifted by the maximum is not
    Rule("exp(z_i)/sum exp(z_j) -> softmax(z)_i", lambda n: _exp_over_sum(n) is not None, _fuse_exp_over_sum),
    # 1 − σ(u) loses every digit once σ(u) rounds to 1 (u > 37); σ(−u) keeps them all
    Rule("1 - sigmoid(u) -> sigmoid(-u)", lambda n: _one_minus_sigmoid(n) is not None,
         lambda n: sigmoid(-_one_minus_sigmoid(n))),
    # A − A·σ(u) and A ∓ A·tanh(u) inside a longer sum: A·σ(−u), 2A·σ(∓2u) keep the digits
    Rule("A - A*sigmoid(u) -> A*sigmoid(-u)", lambda n: complement_pair(n, "sigmoid") is not None,
         lambda n: complement_pair(n, "sigmoid")),
    Rule("A -+ A*tanh(u) -> 2*A*sigmoid(-+2u)", lambda n: complement_pair(n, "tanh") is not None,
         lambda n: complement_pair(n, "tanh")),
    # tanh(u) < 1 (a hardtanh of a tanh) is False in float64 where tanh(u) rounds to 1: compare u
    Rule("tanh(u) < c -> u < atanh(c)", lambda n: monotone_comparison(n) is not None, monotone_comparison),
    # log σ(u) = −softplus(−u): finite where σ(u) underflows
    Rule("log(sigmoid(u)) -> -softplus(-u)", lambda n: isinstance(n, sp.log) and isinstance(n.args[0], sigmoid),
         lambda n: -softplus(-n.args[0].args[0])),
    # softmax(Z) − Y: at the row maximum a − 1 = −Σ_{j≠max} a_j, computed as such
    Rule("softmax(Z) - Y -> softmax_minus_targets(Z, Y)", lambda n: _softmax_minus_targets(n) is not None,
         _fuse_softmax_minus_targets),
    # the softmax and log-softmax backward: 1 − a_max is 0 in float64 where a_max rounds to 1
    Rule("A ∘ (G - (G ∘ A) 1 1ᵀ) -> softmax_vjp(Z, G)", lambda n: _softmax_vjp(n) is not None, _fused("softmax")),
    Rule("G - A ∘ (G 1 1ᵀ) -> log_softmax_vjp(Z, G)", lambda n: _log_softmax_vjp(n) is not None, _fused("log_softmax")),
)

FUSION_RULES: tuple[Rule, ...] = (
    # σ(u)σ(−u) = e/(1 + e)²: one exp instead of two
    Rule("sigmoid(u)*sigmoid(-u) -> sigmoid_grad(u)", lambda n: _sigmoid_pair(n) is not None, _fuse_sigmoid_pair),
    # σ(u) − y loses every digit when σ(u) ≈ y = 1: (1 − y)σ(u) − y σ(−u) keeps them
    Rule("sigmoid(u) + c -> sigmoid_shift(u, c)", lambda n: _sigmoid_plus_constant(n) is not None,
         lambda n: _fuse_sigmoid_plus_constant(*_sigmoid_plus_constant(n))),
    # 1 − tanh²(u) is 0 in float64 beyond |u| ≈ 19; 4e/(1 + e)² is not
    Rule("1 - tanh(u)**2 -> sech2(u)", lambda n: _one_minus_tanh_squared(n) is not None,
         lambda n: sech2(_one_minus_tanh_squared(n))),
    Rule("A - A*tanh(u)**2 -> A*sech2(u)", lambda n: complement_pair(n, "tanh2") is not None,
         lambda n: complement_pair(n, "tanh2")),
    # a_i − y_i: a_i − 1 is 0 in float64 once z_i leads by 37; −Σ_{j≠i} a_j is not
    Rule("softmax(z)_i + c -> softmax_entry_shift(i, c, z)", lambda n: _softmax_entry_plus_constant(n) is not None,
         _fuse_softmax_entry),
    # ELU'(u) = ELU(u) + α = α e^u for u ≤ 0 (no cancellation; min keeps exp from overflowing)
    Rule("ELU(u) + alpha -> alpha*exp(min(u, 0))", _elu_left_branch, _fix_elu_left_branch),
)


def stabilise(expr: sp.Basic, fuse: bool = True) -> sp.Basic:
    """The stability rules, then (``fuse``) the fused one-exp forms."""
    for rule in STABLE_RULES + (FUSION_RULES if fuse else ()):
        expr = rule(expr)
    return expr


