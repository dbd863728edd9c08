r"""Normalization layers and attention: layer norm, RMSNorm, batch norm (training mode) and scaled
dot-product attention, each a SymPy matrix-expression block whose declared VJP is the textbook
closed form (the matrix chain rule calls ``adjoints(G)``; G = ∂L/∂Y has the output's shape).

    layer norm (each row):     Y = x̂ ∘ γ + β,  x̂ = (x − μ)/σ,  σ = √(var x + ε)
                               dx = (1/D) σ⁻¹ (D g − Σ_j g − x̂ Σ_j (g ∘ x̂)),  g = G ∘ γ
    RMSNorm (each row):        Y = x̂ ∘ γ,  x̂ = x / rms,  rms = √(mean x² + ε)
                               dx = (1/D) rms⁻¹ (D g − x̂ Σ_j (g ∘ x̂)),  g = G ∘ γ
    batch norm (each column):  Y = x̂ ∘ γ + β over the N samples
                               dx = (1/N) γ σ⁻¹ (N G − Σ_n G − x̂ Σ_n (G ∘ x̂))
    every affine norm:         dγ = Σ_n (G ∘ x̂),  dβ = Σ_n G
    attention:                 O = A V,  A = softmax(S),  S = Q Kᵀ/√d (+ M)
                               dV = Aᵀ G,  dA = G Vᵀ,  dS = A ∘ (dA − Σ_j (dA ∘ A)),
                               dQ = dS K/√d,  dK = dSᵀ Q/√d

The mask M of attention is boolean (True = attend, as torch) or additive; a row that attends to
nothing gets weights 0 (as torch). symgrad.nn treats masks as data (no gradient returned); derived
symbolically, an additive mask gets dM = dS. ε is a constant (∂/∂ε raises). Variances are biased
(divided by D or N). The stable forms take any Array API namespace; the statistics are computed on
x/max|x| (no square overflows or underflows), or for NumPy by the textbook two passes when those
are exact enough.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement
from sympy.printing.precedence import PRECEDENCE

from ..errors import SymgradLimit
from .rows import row_softmax_np, softmax_vjp_np
from .registry import Arg, Batched, Block, Example, Interval, N, register, size

__all__ = ["LayerNorm", "LayerNormVJP", "RMSNorm", "RMSNormVJP", "BatchNorm", "BatchNormVJP",
           "AttentionScores", "KeyScaled", "AttentionWeights", "AttentionWeightsVJP", "Attention",
           "layer_norm", "rms_norm", "batch_norm", "scaled_dot_product_attention"]


# --- stable kernels (NumPy or any Array API namespace) ---------------------------------------------
def _scale_np(X, axis, xp=np):
    """s = max |x| along ``axis`` (1 where that is 0 or not finite): x/s has entries in [−1, 1]."""
    s = xp.max(xp.abs(X), axis=axis, keepdims=True)
    return xp.where((s > 0) & xp.isfinite(s), s, xp.ones_like(s))


def _plain_enough(v, eps) -> bool:
    """Whether the plain mean of squares ``v`` (NumPy) is accurate: finite (no square overflowed, no
    NaN) and either ε dominates where it is tiny or no square underflowed."""
    return bool(np.isfinite(v).all()) and (eps >= 1e-200 or v.min() >= np.finfo(v.dtype).tiny / np.finfo(v.dtype).eps)


def standardize_np(X, eps, axis=-1, xp=np):
    """(x̂, σ) along ``axis``: x̂ = (x − μ)/σ, σ = √(var x + ε) (biased variance). NumPy arrays take the
    textbook two-pass form when its squares neither overflow nor underflow; otherwise (and for other
    namespaces) it is computed from u = x/s (s = max |x|): σ = hypot(s √var u, √ε)."""
    if isinstance(X, np.ndarray) and X.dtype.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow here means: the careful path
            c = X - X.mean(axis=axis, keepdims=True)
            v = np.mean(np.square(c), axis=axis, keepdims=True)
        if _plain_enough(v, eps):
            v += eps
            sigma = np.sqrt(v, out=v)
            c /= sigma
            return c, sigma
    s = _scale_np(X, axis, xp)
    u = X / s
    c = u - xp.mean(u, axis=axis, keepdims=True)
    t = s * xp.sqrt(xp.mean(c * c, axis=axis, keepdims=True))
    sigma = xp.hypot(t, xp.zeros_like(t) + eps ** 0.5)
    return (c * s) / sigma, sigma


def root_mean_square_np(X, eps, xp=np):
    """(x̂, rms) over the last axis: x̂ = x / rms, rms = √(mean x² + ε); as :func:`standardize_np`, the
    plain form for NumPy when it is accurate, else hypot(s √mean (x/s)², √ε), s = max |x|."""
    if isinstance(X, np.ndarray) and X.dtype.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow here means: the careful path
            v = np.mean(np.square(X), axis=-1, keepdims=True)
        if _plain_enough(v, eps):
            v += eps
            r = np.sqrt(v, out=v)
            return X / r, r
    s = _scale_np(X, -1, xp)
    u = X / s
    t = s * xp.sqrt(xp.mean(u * u, axis=-1, keepdims=True))
    r = xp.hypot(t, xp.zeros_like(t) + eps ** 0.5)
    return X / r, r


def _affine_np(xhat, gamma, beta):
    """x̂ ∘ γ + β (γ = 1, β = 0: no affine part); in place for a NumPy x̂ (always a new array here)
    when that keeps the dtype NumPy's promotion gives."""
    scale = not (isinstance(gamma, (int, float)) and gamma == 1)
    shift = not (isinstance(beta, (int, float)) and beta == 0)
    if isinstance(xhat, np.ndarray) and np.result_type(xhat, gamma, beta) == xhat.dtype:
        if scale:
            xhat *= gamma
        if shift:
            xhat += beta
        return xhat
    out = xhat * gamma if scale else xhat
    return out + beta if shift else out


def layer_norm_np(X, gamma=1, beta=0, eps=1e-5, xp=np):
    """x̂ ∘ γ + β, x̂ = (x − μ)/√(var x + ε) over the last axis."""
    return _affine_np(standardize_np(X, eps, -1, xp)[0], gamma, beta)


def _scaled(G, gamma):
    return G if isinstance(gamma, (int, float)) and gamma == 1 else G * gamma


def layer_norm_vjp_np(X, gamma, G, eps=1e-5, xp=np):
    """σ⁻¹ (g − mean_j g − x̂ mean_j (g ∘ x̂)), g = G ∘ γ, over the last axis."""
    xhat, sigma = standardize_np(X, eps, -1, xp)
    G = _scaled(G, gamma)
    return (G - xp.mean(G, axis=-1, keepdims=True) - xhat * xp.mean(G * xhat, axis=-1, keepdims=True)) / sigma


def rms_norm_np(X, gamma=1, eps=1e-6, xp=np):
    """x̂ ∘ γ, x̂ = x/√(mean x² + ε) over the last axis."""
    return _affine_np(root_mean_square_np(X, eps, xp)[0], gamma, 0)


def rms_norm_vjp_np(X, gamma, G, eps=1e-6, xp=np):
    """rms⁻¹ (g − x̂ mean_j (g ∘ x̂)), g = G ∘ γ, over the last axis."""
    xhat, r = root_mean_square_np(X, eps, xp)
    G = _scaled(G, gamma)
    return (G - xhat * xp.mean(G * xhat, axis=-1, keepdims=True)) / r


def batch_norm_np(X, gamma=1, beta=0, eps=1e-5, xp=np):
    """x̂ ∘ γ + β, x̂ = (x − μ)/√(var x + ε) over the samples (axis −2): training mode."""
    return _affine_np(standardize_np(X, eps, -2, xp)[0], gamma, beta)


def batch_norm_vjp_np(X, gamma, G, eps=1e-5, xp=np):
    """γ σ⁻¹ (G − mean_n G − x̂ mean_n (G ∘ x̂)) over the samples (axis −2)."""
    xhat, sigma = standardize_np(X, eps, -2, xp)
    out = (G - xp.mean(G, axis=-2, keepdims=True) - xhat * xp.mean(G * xhat, axis=-2, keepdims=True)) / sigma
    return _scaled(out, gamma)


def attention_scores_np(Q, K, M=None, xp=np):
    """Q Kᵀ/√d (d = the key size), then the mask: a boolean M keeps the scores where it is True and
    sets −inf elsewhere (as torch); any other M is added."""
    if K.ndim != Q.ndim:
        raise ValueError(f"k: shape {tuple(K.shape)}: keys must be a matrix (S, d) shared by every query "
                         f"(q has shape {tuple(Q.shape)})")
    S = Q @ xp.matrix_transpose(K)
    if isinstance(S, np.ndarray):
        S *= Q.shape[-1] ** -0.5
    else:
        S = S * (Q.shape[-1] ** -0.5)
    if M is None:
        return S
    if xp.isdtype(M.dtype, "bool"):
        return xp.where(M, S, xp.full_like(S, -np.inf))
    return S + M


def key_scaled_np(M, K, xp=np):
    """M/√d, d = the number of columns of K (the key size)."""
    return M * (K.shape[-1] ** -0.5)


def _masked_rows(S, out, xp=np):
    """``out`` with 0 in the rows where every score is −inf (they attend to nothing, as torch)."""
    dead = xp.max(S, axis=-1, keepdims=True) == -np.inf
    if isinstance(out, np.ndarray):
        if dead.any():
            np.copyto(out, 0.0, where=dead)
        return out
    return xp.where(dead, xp.zeros_like(out), out)


def attention_weights_np(S, xp=np):
    """softmax(S) over the last axis (shifted), rows of −inf giving 0."""
    return _masked_rows(S, row_softmax_np(S, xp), xp)


def attention_weights_vjp_np(S, P, xp=np):
    """A ∘ (P − Σ_j P ∘ A), A = softmax(S), without 1 − a_max; rows of −inf scores give 0."""
    return _masked_rows(S, softmax_vjp_np(S, P, xp), xp)


def attention_np(Q, K, V, M=None, xp=np):
    """softmax(Q Kᵀ/√d + M) V."""
    S = attention_scores_np(Q, K, M, xp)
    if V.ndim != Q.ndim:
        raise ValueError(f"v: shape {tuple(V.shape)}: values must be a matrix (S, F) shared by every query "
                         f"(q has shape {tuple(Q.shape)})")
    return attention_weights_np(S, xp) @ V


# --- shared pieces of the blocks ----------------------------------------------------------------------
def _explicit(M) -> bool:
    return isinstance(M, sp.MatrixBase)


def _hat(printer, X) -> str:
    """x̂ of an input: \\hat{X} for a symbol, \\widehat{…} otherwise."""
    body = printer._print(X)
    return rf"\hat{{{body}}}" if isinstance(X, sp.MatrixSymbol) else rf"\widehat{{{body}}}"


def _sub(printer, X) -> str:
    body = printer._print(X)
    return body if isinstance(X, sp.MatrixSymbol) else rf"\left({body}\right)"


def _paren(printer, G) -> str:
    body = printer._print(G)
    return body if isinstance(G, (sp.MatrixSymbol, sp.Transpose, sp.MatMul)) else rf"\left({body}\right)"


def _scaled_tex(printer, G, gamma, xhat: str) -> tuple[str, str]:
    """(g, g ∘ x̂) in LaTeX, g = G ∘ γ (γ broadcast over the rows) or G itself without a scale."""
    body = _paren(printer, G) if not isinstance(gamma, sp.MatrixExpr) else \
        rf"{_paren(printer, G)} \circ {printer._print(gamma)}"
    g = body if not isinstance(gamma, sp.MatrixExpr) else rf"\left({body}\right)"
    return g, rf"\left({body} \circ {xhat}\right)"


def _text_hat(printer, X) -> str:
    return f"{X.name}\u0302" if isinstance(X, sp.MatrixSymbol) else f"hat({printer._print(X)})"


def _text_paren(printer, G) -> str:
    body = printer._print(G)
    return body if isinstance(G, (sp.MatrixSymbol, sp.Transpose, sp.MatMul)) else f"({body})"


def _text_scaled(printer, G, gamma, xhat: str) -> tuple[str, str]:
    """(g, g ∘ x̂) in plain text, g = G ∘ γ or G."""
    body = _text_paren(printer, G) if not isinstance(gamma, sp.MatrixExpr) else \
        f"{_text_paren(printer, G)}∘{printer._print(gamma)}"
    return (body if not isinstance(gamma, sp.MatrixExpr) else f"({body})"), f"({body}∘{xhat})"


def _text_affine(printer, X, *params) -> str:
    shown = [printer._print(p) for p in params if isinstance(p, sp.MatrixExpr)]
    return printer._print(X) + (f"; {', '.join(shown)}" if shown else "")


def _affine_tex(printer, gamma, beta) -> str:
    params = [printer._print(p) for p in (gamma, beta) if isinstance(p, sp.MatrixExpr)]
    return f"_{{{', '.join(params)}}}" if params else ""


def _row_stats(values: list, eps, squares_only: bool = False):
    """(entries normalized, σ) of an explicit list: (x − μ)/√(var + ε), or x/√(mean x² + ε)."""
    n = len(values)
    if squares_only:
        r = sp.sqrt(sp.Add(*[v ** 2 for v in values]) / n + eps)
        return [v / r for v in values], r
    mu = sp.Add(*values) / n
    sigma = sp.sqrt(sp.Add(*[(v - mu) ** 2 for v in values]) / n + eps)
    return [(v - mu) / sigma for v in values], sigma


def _param_entry(p, j):
    """γ_j of an explicit 1 × D parameter, or the constant 1 / 0 of a norm without it."""
    return p[0, j] if _explicit(p) else p


def _column_sums(M):
    """Σ_n M_n: the 1 × D row of column sums, 1ᵀ M."""
    return sp.MatMul(sp.OneMatrix(1, M.shape[0]), M)


class _Block(sp.MatrixExpr):
    """A matrix block shaped like its first argument; printed by its stable NumPy form."""

    name = ""

    @property
    def shape(self):
        return self.args[0].shape

    def _sympystr(self, printer):
        return f"{self.name}({', '.join(printer._print(a) for a in self.args)})"

    def _symgrad_numpy(self, printer):
        return printer.print_block(self)

    def doit(self, **hints):
        args = [a.doit(**hints) for a in self.args] if hints.get("deep", True) else list(self.args)
        if all(_explicit(a) for a in args if isinstance(a, sp.MatrixExpr)):  # explicit entries: the formula
            return self.explicit(*args)
        return type(self)(*args)

    def explicit(self, *args):  # pragma: no cover - every block declares it
        raise NotImplementedError


def _constant_eps(block: str, eps) -> None:
    """ε is a constant of the block: asked for ∂/∂ε (the matrix chain rule has put an entry in its
    place), say so rather than return 0."""
    if isinstance(eps, sp.Basic) and eps.has(MatrixElement):
        raise SymgradLimit(f"{block}: the gradient with respect to eps is not declared (eps is a constant of the block)")


def _parameter_adjoints(gamma, beta, G, xhat) -> list:
    """dγ = Σ_n G ∘ x̂ and dβ = Σ_n G (the column sums), for the parameters that are matrices."""
    out = [(gamma, _column_sums(sp.HadamardProduct(G, xhat)))] if isinstance(gamma, sp.MatrixExpr) else []
    return out + ([(beta, _column_sums(G))] if isinstance(beta, sp.MatrixExpr) else [])


# === layer norm ==========================================================================================
class LayerNorm(_Block):
    r"""LN(X) = x̂ ∘ γ + β for each row x of X (N × D): x̂ = (x − μ)/σ, σ = √(var x + ε); γ, β are
    1 × D (or 1, 0: no affine part).  dX = (1/D) σ⁻¹ (D g − Σ_j g − x̂ Σ_j g ∘ x̂), g = G ∘ γ."""

    name = "layer_norm"
    numpy_form = staticmethod(layer_norm_np)

    def adjoints(self, G) -> list:
        X, gamma, beta, eps = self.args
        _constant_eps("layer_norm", eps)
        return [(X, LayerNormVJP(X, gamma, G, eps))] + _parameter_adjoints(gamma, beta, G, LayerNorm(X, 1, 0, eps))

    def explicit(self, X, gamma, beta, eps):
        rows = [_row_stats(list(X.row(i)), eps)[0] for i in range(X.rows)]
        return sp.ImmutableMatrix([[v * _param_entry(gamma, j) + _param_entry(beta, j) for j, v in enumerate(r)]
                                   for r in rows])

    def _sympystr(self, printer):
        return f"LN({_text_affine(printer, *self.args[:3])})"

    def _latex(self, printer, **kwargs):
        X, gamma, beta, _ = self.args
        return rf"\operatorname{{LN}}{_affine_tex(printer, gamma, beta)}\left({printer._print(X)}\right)"


class LayerNormVJP(_Block):
    r"""(1/D) σ⁻¹ (D g − Σ_j g − x̂ Σ_j g ∘ x̂), g = G ∘ γ, for each row (x̂, σ of X's rows): layer norm's dX."""

    name = "layer_norm_vjp"
    precedence = PRECEDENCE["Mul"]  # a product: parenthesized inside another one
    numpy_form = staticmethod(layer_norm_vjp_np)

    def explicit(self, X, gamma, G, eps):
        rows = []
        for i in range(X.rows):
            xhat, sigma = _row_stats(list(X.row(i)), eps)
            g = [v * _param_entry(gamma, j) for j, v in enumerate(G.row(i))]
            total, dot = sp.Add(*g), sp.Add(*[a * b for a, b in zip(g, xhat)])
            rows.append([(len(g) * gj - total - xj * dot) / (len(g) * sigma) for gj, xj in zip(g, xhat)])
        return sp.ImmutableMatrix(rows)

    def _sympystr(self, printer):
        X, gamma, G, _ = self.args
        D, xhat = printer._print(X.shape[1]), _text_hat(printer, X)
        g, gx = _text_scaled(printer, G, gamma, xhat)
        return f"(1/{D})*σ({printer._print(X)})⁻¹∘({D}*{g} - Σ_j {g} - {xhat}∘Σ_j {gx})"

    def _latex(self, printer, **kwargs):
        X, gamma, G, _ = self.args
        D, xhat = printer._print(X.shape[1]), _hat(printer, X)
        g, gx = _scaled_tex(printer, G, gamma, xhat)
        return (rf"\frac{{1}}{{{D}}}\,\sigma_{{{_sub(printer, X)}}}^{{-1}}\left({D}\,{g} - \sum_{{j}} {g}"
                rf" - {xhat} \circ \sum_{{j}} {gx}\right)")


def layer_norm(X, gamma=None, beta=None, eps=1e-5) -> sp.MatrixExpr:
    """LN(X) over the rows of X (N × D), with the scale γ and shift β (1 × D) when given."""
    return LayerNorm(X, 1 if gamma is None else gamma, 0 if beta is None else beta, eps)


# === RMSNorm =============================================================================================
class RMSNorm(_Block):
    r"""RMSNorm(X) = x̂ ∘ γ for each row x of X (N × D): x̂ = x / rms, rms = √(mean x² + ε); γ is 1 × D
    (or 1).  dX = (1/D) rms⁻¹ (D g − x̂ Σ_j g ∘ x̂), g = G ∘ γ;  dγ = Σ_n G ∘ x̂."""

    name = "rms_norm"
    numpy_form = staticmethod(rms_norm_np)

    def adjoints(self, G) -> list:
        X, gamma, eps = self.args
        _constant_eps("rms_norm", eps)
        return [(X, RMSNormVJP(X, gamma, G, eps))] + _parameter_adjoints(gamma, 0, G, RMSNorm(X, 1, eps))

    def explicit(self, X, gamma, eps):
        rows = [_row_stats(list(X.row(i)), eps, squares_only=True)[0] for i in range(X.rows)]
        return sp.ImmutableMatrix([[v * _param_entry(gamma, j) for j, v in enumerate(r)] for r in rows])

    def _sympystr(self, printer):
        return f"RMSNorm({_text_affine(printer, *self.args[:2])})"

    def _latex(self, printer, **kwargs):
        X, gamma, _ = self.args
        return rf"\operatorname{{RMSNorm}}{_affine_tex(printer, gamma, 0)}\left({printer._print(X)}\right)"


class RMSNormVJP(_Block):
    r"""(1/D) rms⁻¹ (D g − x̂ Σ_j g ∘ x̂), g = G ∘ γ, for each row: RMSNorm's dX."""

    name = "rms_norm_vjp"
    precedence = PRECEDENCE["Mul"]  # a product: parenthesized inside another one
    numpy_form = staticmethod(rms_norm_vjp_np)

    def explicit(self, X, gamma, G, eps):
        rows = []
        for i in range(X.rows):
            xhat, r = _row_stats(list(X.row(i)), eps, squares_only=True)
            g = [v * _param_entry(gamma, j) for j, v in enumerate(G.row(i))]
            dot = sp.Add(*[a * b for a, b in zip(g, xhat)])
            rows.append([(len(g) * gj - xj * dot) / (len(g) * r) for gj, xj in zip(g, xhat)])
        return sp.ImmutableMatrix(rows)

    def _sympystr(self, printer):
        X, gamma, G, _ = self.args
        D, xhat = printer._print(X.shape[1]), _text_hat(printer, X)
        g, gx = _text_scaled(printer, G, gamma, xhat)
        return f"(1/{D})*rms({printer._print(X)})⁻¹∘({D}*{g} - {xhat}∘Σ_j {gx})"

    def _latex(self, printer, **kwargs):
        X, gamma, G, _ = self.args
        D, xhat = printer._print(X.shape[1]), _hat(printer, X)
        g, gx = _scaled_tex(printer, G, gamma, xhat)
        return (rf"\frac{{1}}{{{D}}}\,\operatorname{{rms}}_{{{_sub(printer, X)}}}^{{-1}}\left({D}\,{g}"
                rf" - {xhat} \circ \sum_{{j}} {gx}\right)")


def rms_norm(X, gamma=None, eps=1e-6) -> sp.MatrixExpr:
    """RMSNorm(X) over the rows of X (N × D), with the scale γ (1 × D) when given."""
    return RMSNorm(X, 1 if gamma is None else gamma, eps)


# === batch norm (training mode: the batch's own statistics) ==============================================
class BatchNorm(_Block):
    r"""BN(X) = x̂ ∘ γ + β for each column of X (N samples × D features): x̂ = (x − μ)/σ over the N
    samples, σ = √(var + ε).  dX = (1/N) γ σ⁻¹ (N G − Σ_n G − x̂ Σ_n G ∘ x̂);  dγ = Σ_n G ∘ x̂, dβ = Σ_n G."""

    name = "batch_norm"
    numpy_form = staticmethod(batch_norm_np)

    def adjoints(self, G) -> list:
        X, gamma, beta, eps = self.args
        _constant_eps("batch_norm", eps)
        return [(X, BatchNormVJP(X, gamma, G, eps))] + _parameter_adjoints(gamma, beta, G, BatchNorm(X, 1, 0, eps))

    def explicit(self, X, gamma, beta, eps):
        cols = [_row_stats(list(X.col(j)), eps)[0] for j in range(X.cols)]
        return sp.ImmutableMatrix(X.rows, X.cols,
                                  lambda i, j: cols[j][i] * _param_entry(gamma, j) + _param_entry(beta, j))

    def _sympystr(self, printer):
        return f"BN({_text_affine(printer, *self.args[:3])})"

    def _latex(self, printer, **kwargs):
        X, gamma, beta, _ = self.args
        return rf"\operatorname{{BN}}{_affine_tex(printer, gamma, beta)}\left({printer._print(X)}\right)"


class BatchNormVJP(_Block):
    r"""(1/N) γ σ⁻¹ (N G − Σ_n G − x̂ Σ_n G ∘ x̂) for each column (x̂, σ over the samples): batch norm's dX."""

    name = "batch_norm_vjp"
    precedence = PRECEDENCE["Mul"]  # a product: parenthesized inside another one
    numpy_form = staticmethod(batch_norm_vjp_np)

    def explicit(self, X, gamma, G, eps):
        out = sp.zeros(X.rows, X.cols)
        for j in range(X.cols):
            xhat, sigma = _row_stats(list(X.col(j)), eps)
            g = list(G.col(j))
            total, dot = sp.Add(*g), sp.Add(*[a * b for a, b in zip(g, xhat)])
            for i, (gi, xi) in enumerate(zip(g, xhat)):
                out[i, j] = _param_entry(gamma, j) * (len(g) * gi - total - xi * dot) / (len(g) * sigma)
        return sp.ImmutableMatrix(out)

    def _sympystr(self, printer):
        X, gamma, G, _ = self.args
        n, g, xhat = printer._print(X.shape[0]), _text_paren(printer, G), _text_hat(printer, X)
        scale = f"{printer._print(gamma)}∘" if isinstance(gamma, sp.MatrixExpr) else ""
        return f"(1/{n})*{scale}σ({printer._print(X)})⁻¹∘({n}*{g} - Σ_n {g} - {xhat}∘Σ_n ({g}∘{xhat}))"

    def _latex(self, printer, **kwargs):
        X, gamma, G, _ = self.args
        n, g, xhat = printer._print(X.shape[0]), _paren(printer, G), _hat(printer, X)
        scale = rf"\,{printer._print(gamma)}" if isinstance(gamma, sp.MatrixExpr) else ""
        return (rf"\frac{{1}}{{{n}}}{scale}\,\sigma_{{{_sub(printer, X)}}}^{{-1}}\left({n}\,{g} - \sum_{{n}} {g}"
                rf" - {xhat} \circ \sum_{{n}} \left({g} \circ {xhat}\right)\right)")


def batch_norm(X, gamma=None, beta=None, eps=1e-5) -> sp.MatrixExpr:
    """BN(X) over the samples (rows) of X (N × D), training mode, with γ, β (1 × D) when given."""
    return BatchNorm(X, 1 if gamma is None else gamma, 0 if beta is None else beta, eps)


# === scaled dot-product attention ========================================================================
class AttentionScores(_Block):
    r"""S = Q Kᵀ/√d (+ M) for queries Q (L × d), keys K (S × d) and an optional mask M (L × S: boolean,
    True = attend, or additive).  dQ = G K/√d, dK = Gᵀ Q/√d, and dM = G for an additive mask (symgrad.nn
    treats masks as data and returns no gradient for them)."""

    name = "attention_scores"
    numpy_form = staticmethod(attention_scores_np)

    @property
    def shape(self):
        return (self.args[0].shape[0], self.args[1].shape[0])

    def adjoints(self, G) -> list:
        Q, K, *mask = self.args
        return [(Q, KeyScaled(sp.MatMul(G, K), K)), (K, KeyScaled(sp.MatMul(sp.Transpose(G), Q), K))] + \
            [(M, G) for M in mask]

    def explicit(self, Q, K, *mask):
        S = (Q * K.T / sp.sqrt(K.shape[1])).as_explicit()
        return sp.ImmutableMatrix(S + mask[0] if mask else S)

    def _sympystr(self, printer):
        Q, K = self.args[:2]
        text = f"{printer._print(Q)}*{printer._print(sp.Transpose(K))}/sqrt({printer._print(K.shape[1])})"
        return text + "".join(f" + {printer._print(m)}" for m in self.args[2:])

    def _latex(self, printer, **kwargs):
        Q, K = self.args[:2]
        tex = rf"\frac{{{printer._print(Q)} {printer._print(sp.Transpose(K))}}}{{\sqrt{{{printer._print(K.shape[1])}}}}}"
        return tex + "".join(f" + {printer._print(m)}" for m in self.args[2:])


class KeyScaled(_Block):
    r"""M/√d, d the key size (the columns of K): the scale of the attention scores and their gradients."""

    name = "key_scaled"
    numpy_form = staticmethod(key_scaled_np)

    def adjoints(self, G) -> list:
        return [(self.args[0], KeyScaled(G, self.args[1]))]

    def explicit(self, M, K):
        return sp.ImmutableMatrix(M / sp.sqrt(K.shape[1]))

    def _sympystr(self, printer):
        return f"({printer._print(self.args[0])})/sqrt({printer._print(self.args[1].shape[1])})"

    def _latex(self, printer, **kwargs):
        M, K = self.args
        return rf"\frac{{{printer._print(M)}}}{{\sqrt{{{printer._print(K.shape[1])}}}}}"


class AttentionWeights(_Block):
    r"""A = softmax(S) row by row (a row of −inf scores: 0).  dS = A ∘ (G − Σ_j G ∘ A)."""

    name = "attention_weights"
    numpy_form = staticmethod(attention_weights_np)

    def adjoints(self, G) -> list:
        return [(self.args[0], AttentionWeightsVJP(self.args[0], G))]

    def explicit(self, S):
        rows = []
        for i in range(S.rows):
            e = [sp.exp(v) for v in S.row(i)]
            rows.append([v / sp.Add(*e) for v in e])
        return sp.ImmutableMatrix(rows)

    def _sympystr(self, printer):
        return f"softmax({printer._print(self.args[0])})"

    def _latex(self, printer, **kwargs):
        return rf"\operatorname{{softmax}}\left({printer._print(self.args[0])}\right)"


class AttentionWeightsVJP(_Block):
    r"""A ∘ (P − Σ_j P ∘ A), A = softmax(S) by rows: the softmax backward (P = ∂L/∂A)."""

    name = "attention_weights_vjp"
    precedence = PRECEDENCE["Mul"]  # a product: parenthesized inside another one
    numpy_form = staticmethod(attention_weights_vjp_np)

    def explicit(self, S, P):
        A = AttentionWeights(S).explicit(S)
        rows = []
        for i in range(S.rows):
            dot = sp.Add(*[P[i, j] * A[i, j] for j in range(S.cols)])
            rows.append([A[i, j] * (P[i, j] - dot) for j in range(S.cols)])
        return sp.ImmutableMatrix(rows)

    def _sympystr(self, printer):
        A, P = printer._print(AttentionWeights(self.args[0])), _text_paren(printer, self.args[1])
        return f"{A}∘({P} - Σ_j ({P}∘{A}))"

    def _latex(self, printer, **kwargs):
        A, P = printer._print(AttentionWeights(self.args[0])), _paren(printer, self.args[1])
        return rf"{A} \circ \left({P} - \sum_{{j}} \left({P} \circ {A}\right)\right)"


class Attention(_Block):
    r"""softmax(Q Kᵀ/√d + M) V for queries Q (L × d), keys K (S × d), values V (S × F) and an optional
    mask M (data).  dV = Aᵀ G, dA = G Vᵀ, dS = A ∘ (dA − Σ_j dA ∘ A), dQ = dS K/√d, dK = dSᵀ Q/√d."""

    name = "attention"
    numpy_form = staticmethod(attention_np)

    @property
    def shape(self):
        return (self.args[0].shape[0], self.args[2].shape[1])

    def adjoints(self, G) -> list:
        Q, K, V, *mask = self.args
        S = AttentionScores(Q, K, *mask)
        dS = AttentionWeightsVJP(S, sp.MatMul(G, sp.Transpose(V)))
        return S.adjoints(dS) + [(V, sp.MatMul(sp.Transpose(AttentionWeights(S)), G))]

    def explicit(self, Q, K, V, *mask):
        S = AttentionScores(Q, K, *mask).explicit(Q, K, *mask)
        return sp.ImmutableMatrix(AttentionWeights(S).explicit(S) * V)

    def _sympystr(self, printer):
        Q, K, V, *mask = (printer._print(a) for a in self.args)
        return f"attention({Q}, {K}, {V}{''.join(f'; {m}' for m in mask)})"

    def _latex(self, printer, **kwargs):
        Q, K, V, *mask = (printer._print(a) for a in self.args)
        return rf"\operatorname{{Attention}}\left({Q}, {K}, {V}{''.join(f'; {m}' for m in mask)}\right)"


def scaled_dot_product_attention(Q, K, V, mask=None) -> sp.MatrixExpr:
    """softmax(Q Kᵀ/√d + mask) V (queries Q: L × d, keys K: S × d, values V: S × F; mask L × S)."""
    return Attention(Q, K, V) if mask is None else Attention(Q, K, V, mask)


def masked_attention(Q, K, V, mask) -> sp.MatrixExpr:
    """softmax(Q Kᵀ/√d + mask) V: :func:`scaled_dot_product_attention` with a mask (the block of that name)."""
    return Attention(Q, K, V, mask)


# === the catalog entries: worked examples over matrices of symbolic size, and the batched forms ========
_EPS = sp.Symbol("epsilon", positive=True)
_EPS_DOMAIN = Interval(0.001, 0.5)


def _norm_symbols():
    D = size("D")
    return (sp.MatrixSymbol("X", N, D), sp.MatrixSymbol("gamma", 1, D), sp.MatrixSymbol("beta", 1, D),
            sp.MatrixSymbol("G", N, D), D)


def _norm_example(block, affine: tuple[str, ...]) -> Example:
    X, gamma, beta, G, D = _norm_symbols()
    params = {"gamma": gamma, "beta": beta}
    chosen = {k: params[k] for k in affine}
    expr = block(X, *chosen.values(), eps=_EPS)
    return Example(expr, (X, *chosen.values()), {"X": X, **chosen, "G": G, "epsilon": _EPS},
                   domain={_EPS: _EPS_DOMAIN}, upstream=G, sizes={N: 3, D: 4})


def _norm_batched(block, affine: tuple[str, ...], eps: float) -> Batched:
    """Rows are samples (leading axes flattened), the last axis the features; γ, β have one entry per feature."""
    D = size("D")
    X, params = sp.MatrixSymbol("x", N, D), {k: sp.MatrixSymbol(k, 1, D) for k in affine}
    args = (Arg("x", X, "rows"), *(Arg(k, v, "row") for k, v in params.items()), Arg("eps", _EPS, "param", eps))
    return Batched(block(X, *params.values(), eps=_EPS), args, ("x", *affine))


register(Block(
    name="layer_norm", family="layer", domain="x in R^{N x D} (rows normalized), gamma, beta in R^D, eps > 0",
    params={"eps": 1e-5},
    formula="layer_norm(x, gamma, beta, eps=1e-5) = (x - mean(x)) / sqrt(var(x) + eps) * gamma + beta   "
            "(over the last axis, biased variance: torch.nn.functional.layer_norm; without the affine part: "
            "gamma = 1, beta = 0)",
    latex=r"\operatorname{LN}(\mathbf{x}) = \hat{\mathbf{x}} \circ \gamma + \beta,\quad"
          r" \hat{\mathbf{x}} = \frac{\mathbf{x} - \mu}{\sigma},\quad \sigma = \sqrt{\operatorname{var}\mathbf{x} + \epsilon}",
    derivative=r"\frac{\partial L}{\partial \mathbf{x}} = \frac{1}{D}\,\sigma^{-1}\Bigl(D\,\mathbf{g} - \sum_j g_j"
               r" - \hat{\mathbf{x}} \sum_j g_j \hat{x}_j\Bigr),\ \mathbf{g} = \mathbf{y}' \circ \gamma;\quad"
               r" \frac{\partial L}{\partial \gamma} = \sum_n \mathbf{y}'_n \circ \hat{\mathbf{x}}_n,\quad"
               r" \frac{\partial L}{\partial \beta} = \sum_n \mathbf{y}'_n",
    example=lambda: _norm_example(layer_norm, ("gamma", "beta")),
    batched=lambda: _norm_batched(layer_norm, ("gamma", "beta"), 1e-5),
))

register(Block(
    name="rms_norm", family="layer", domain="x in R^{N x D} (rows normalized), gamma in R^D, eps > 0",
    params={"eps": 1e-6},
    formula="rms_norm(x, gamma, eps=1e-6) = x / sqrt(mean(x^2) + eps) * gamma   (over the last axis: "
            "torch.nn.functional.rms_norm, whose default eps is the dtype's machine epsilon; without the scale: "
            "gamma = 1)",
    latex=r"\operatorname{RMSNorm}(\mathbf{x}) = \hat{\mathbf{x}} \circ \gamma,\quad"
          r" \hat{\mathbf{x}} = \frac{\mathbf{x}}{\operatorname{rms}},\quad"
          r" \operatorname{rms} = \sqrt{\tfrac{1}{D}\textstyle\sum_j x_j^2 + \epsilon}",
    derivative=r"\frac{\partial L}{\partial \mathbf{x}} = \frac{1}{D}\,\operatorname{rms}^{-1}\Bigl(D\,\mathbf{g}"
               r" - \hat{\mathbf{x}} \sum_j g_j \hat{x}_j\Bigr),\ \mathbf{g} = \mathbf{y}' \circ \gamma;\quad"
               r" \frac{\partial L}{\partial \gamma} = \sum_n \mathbf{y}'_n \circ \hat{\mathbf{x}}_n",
    example=lambda: _norm_example(rms_norm, ("gamma",)),
    batched=lambda: _norm_batched(rms_norm, ("gamma",), 1e-6),
))

register(Block(
    name="batch_norm", family="layer",
    domain="x in R^{N x D} (N samples, columns normalized), gamma, beta in R^D, eps > 0",
    params={"eps": 1e-5},
    formula="batch_norm(x, gamma, beta, eps=1e-5) = (x - mean(x)) / sqrt(var(x) + eps) * gamma + beta   "
            "(training mode: statistics of the batch, over every leading axis, features on the last axis; "
            "biased variance: torch.nn.functional.batch_norm(training=True) on (N, D))",
    latex=r"\operatorname{BN}(X) = \hat{X} \circ \gamma + \beta,\quad \hat{X} = \frac{X - \mu}{\sigma},\quad"
          r" \mu = \tfrac{1}{N}\textstyle\sum_n \mathbf{x}_n,\ \sigma = \sqrt{\tfrac{1}{N}\textstyle\sum_n (\mathbf{x}_n - \mu)^2 + \epsilon}",
    derivative=r"\frac{\partial L}{\partial X} = \frac{1}{N}\,\gamma\,\sigma^{-1}\Bigl(N\,Y' - \sum_n \mathbf{y}'_n"
               r" - \hat{X} \circ \sum_n \mathbf{y}'_n \circ \hat{\mathbf{x}}_n\Bigr);\quad"
               r" \frac{\partial L}{\partial \gamma} = \sum_n \mathbf{y}'_n \circ \hat{\mathbf{x}}_n,\quad"
               r" \frac{\partial L}{\partial \beta} = \sum_n \mathbf{y}'_n",
    example=lambda: _norm_example(batch_norm, ("gamma", "beta")),
    batched=lambda: _norm_batched(batch_norm, ("gamma", "beta"), 1e-5),
))


def _attention_example(masked: bool) -> Example:
    L, S, d, F = size("L"), size("S"), size("d"), size("F")
    Q, K, V = sp.MatrixSymbol("Q", L, d), sp.MatrixSymbol("K", S, d), sp.MatrixSymbol("V", S, F)
    G, M = sp.MatrixSymbol("G", L, F), sp.MatrixSymbol("M", L, S)
    inputs = {"Q": Q, "K": K, "V": V, "G": G, **({"M": M} if masked else {})}
    return Example(scaled_dot_product_attention(Q, K, V, M if masked else None), (Q, K, V), inputs, upstream=G,
                   sizes={L: 2, S: 3, d: 2, F: 2})


def _attention_batched(masked: bool) -> Batched:
    """Queries are rows (leading axes flattened: each query attends on its own); k, v are one matrix
    of keys and values shared by every query; the mask has a row per query."""
    S, d, F = size("S"), size("d"), size("F")
    Q, K, V, M = sp.MatrixSymbol("q", N, d), sp.MatrixSymbol("k", S, d), sp.MatrixSymbol("v", S, F), \
        sp.MatrixSymbol("mask", N, S)
    args = (Arg("q", Q, "rows"), Arg("k", K, "weight"), Arg("v", V, "weight")) + \
        ((Arg("mask", M, "rows"),) if masked else ())
    return Batched(scaled_dot_product_attention(Q, K, V, M if masked else None), args, ("q", "k", "v"))


_ATTENTION_LATEX = r"\operatorname{Attention}(Q, K, V) = \operatorname{softmax}\Bigl(\frac{Q K^{\top}}{\sqrt{d}}{mask}\Bigr) V"
_ATTENTION_VJP = (r"\frac{\partial L}{\partial V} = A^{\top} G,\ dA = G V^{\top},\ "
                  r"dS = A \circ \Bigl(dA - \sum_j dA \circ A\Bigr),\ "
                  r"\frac{\partial L}{\partial Q} = \frac{dS\,K}{\sqrt{d}},\ \frac{\partial L}{\partial K} = \frac{dS^{\top} Q}{\sqrt{d}}")

register(Block(
    name="scaled_dot_product_attention", family="layer",
    domain="q in R^{L x d} (queries), k in R^{S x d} (keys), v in R^{S x F} (values)",
    formula="scaled_dot_product_attention(q, k, v) = softmax(q k^T / sqrt(d)) v   "
            "(torch.nn.functional.scaled_dot_product_attention, default scale)",
    latex=_ATTENTION_LATEX.replace("{mask}", ""),
    derivative=_ATTENTION_VJP,
    example=lambda: _attention_example(False),
    batched=lambda: _attention_batched(False),
))

register(Block(
    name="masked_attention", family="layer",
    domain="q in R^{L x d}, k in R^{S x d}, v in R^{S x F}; mask (L x S): boolean (True = attend) or additive, "
           "data (not differentiated)",
    formula="masked_attention(q, k, v, mask) = softmax(q k^T / sqrt(d) + mask) v   (a boolean mask: -inf where False; "
            "a query that attends to nothing gets 0, as torch's scaled_dot_product_attention with attn_mask)",
    latex=_ATTENTION_LATEX.replace("{mask}", " + M"),
    derivative=_ATTENTION_VJP,
    kink="a row whose scores are all -inf (masked out) has weights 0 and gradient 0 (as torch)",
    example=lambda: _attention_example(True),
    batched=lambda: _attention_batched(True),
))
