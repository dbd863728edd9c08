"""Layer norm, RMSNorm, batch norm (training mode) and scaled dot-product attention (catalog/norms.py).

* symgrad.nn against torch: forward with torch.nn.functional, the backward of every differentiable
  input with torch.autograd (float64, rtol 1e-10) at ordinary and ×30 inputs, with leading batch axes,
  boolean and additive masks; float32 in → float32 out. Where torch's softmax backward loses digits
  (attention at ×30) the reference is mpmath at 450 digits.
* The symbolic results: derive() of each block's worked example gives the textbook closed form (exact
  LaTeX pinned below), equal to SymPy's diff of the explicit forward at a small size, with no internal
  Lambda / dummy in any output.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp

import symgrad
import symgrad.nn as nn
from symgrad.catalog import get_block, norms
from symgrad.catalog.registry import N
from symgrad.checks.crosscheck import explicit_entries
from symgrad.pipeline import run
from symgrad.printing.tex import latex
from symgrad.printing.plain import text

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL = 1e-10
BLOCKS = ("layer_norm", "rms_norm", "batch_norm", "scaled_dot_product_attention", "masked_attention")


def _close(ours, ref, rtol=RTOL):
    """Entrywise rtol; entries that cancel to ~0 are judged against the array's scale."""
    ref = np.asarray(ref)
    assert np.asarray(ours).shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=1e-12 * max(float(np.abs(ref).max()), 1e-300))


def _torch_vjp(fn, arrays, grad, differentiable):
    """torch's forward and the gradients of the inputs at ``differentiable`` for the upstream ``grad``."""
    ts = [torch.tensor(a, requires_grad=i in differentiable) if isinstance(a, np.ndarray) else a
          for i, a in enumerate(arrays)]
    out = fn(*ts)
    out.backward(torch.tensor(grad))
    return out.detach().numpy(), [ts[i].grad.numpy() for i in differentiable]


# --- norms: (symgrad.nn name, torch reference on (x, *params), number of parameters, eps) ----------------
NORMS = {
    "layer_norm": (lambda x, g, b, eps: F.layer_norm(x, (x.shape[-1],), g, b, eps=eps), 2, 1e-5),
    "rms_norm": (lambda x, g, eps: F.rms_norm(x, (x.shape[-1],), g, eps=eps), 1, 1e-6),
    "batch_norm": (lambda x, g, b, eps: F.batch_norm(x.reshape(-1, x.shape[-1]), None, None, g, b, training=True,
                                                     eps=eps).reshape(x.shape), 2, 1e-5),
}


@pytest.mark.parametrize("scale", [1.0, 30.0])
@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 5)])
@pytest.mark.parametrize("name", list(NORMS))
def test_norms_equal_torch(name, shape, scale):
    ref, n_params, eps = NORMS[name]
    rng = np.random.default_rng(7)
    x = scale * rng.normal(size=shape) + scale * 0.5
    params = [scale * rng.normal(size=shape[-1]) for _ in range(n_params)]
    grad = scale * rng.normal(size=shape)
    want, want_grads = _torch_vjp(lambda *a: ref(*a, eps), [x, *params], grad, range(1 + n_params))
    _close(getattr(nn, name)(x, *params, eps=eps), want)
    got = getattr(nn, f"{name}_backward")(x, *params, grad, eps=eps)
    assert len(got) == 1 + n_params  # x, γ (and β): every differentiable input
    for ours, theirs in zip(got, want_grads):
        _close(ours, theirs)


@pytest.mark.parametrize("name", list(NORMS))
def test_norms_float32_stays_float32(name):
    ref, n_params, eps = NORMS[name]
    rng = np.random.default_rng(3)
    x, grad = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    params = [rng.normal(size=5) for _ in range(n_params)]
    f32 = [a.astype(np.float32) for a in (x, *params)]
    out = getattr(nn, name)(*f32, eps=eps)
    back = getattr(nn, f"{name}_backward")(*f32, grad.astype(np.float32), eps=eps)
    assert out.dtype == np.float32 and all(g.dtype == np.float32 for g in back)
    _close(out, getattr(nn, name)(x, *params, eps=eps), rtol=1e-4)
    t_out = getattr(nn, name)(*[torch.tensor(a) for a in f32], eps=eps)
    assert t_out.dtype == torch.float32


@pytest.mark.parametrize("name", list(NORMS))
def test_norms_finite_over_the_float64_range(name):
    """Statistics on x/max|x|: at |x| ~ 1e200 (x² overflows) the result is the scale-free one; at
    |x| ~ 1e-200 σ is √ε and x̂ stays finite (as small as it should be)."""
    _, n_params, eps = NORMS[name]
    rng = np.random.default_rng(5)
    x, grad = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    params = [rng.normal(size=5) for _ in range(n_params)]
    forward, backward = getattr(nn, name), getattr(nn, f"{name}_backward")
    _close(forward(1e200 * x, *params, eps=eps), forward(x, *params, eps=0.0), rtol=1e-13)
    _close(backward(1e200 * x, *params, grad, eps=eps)[0] * 1e200, backward(x, *params, grad, eps=0.0)[0], rtol=1e-12)
    tiny = forward(1e-200 * x, *params, eps=eps)
    assert np.isfinite(tiny).all()
    if n_params == 2:  # x̂ ≈ (x − μ)·1e-200/√ε: the output is β to every digit
        _close(tiny, np.broadcast_to(params[1], tiny.shape), rtol=1e-15)
    assert np.isfinite(backward(1e-200 * x, *params, grad, eps=eps)[0]).all()


# --- attention ----------------------------------------------------------------------------------
def _attention_inputs(rng, scale, L=4, S=5, d=3, Fv=2, lead=()):
    return (scale * rng.normal(size=lead + (L, d)), scale * rng.normal(size=(S, d)),
            scale * rng.normal(size=(S, Fv)), scale * rng.normal(size=lead + (L, Fv)))


@pytest.mark.parametrize("lead", [(), (2,)])
def test_attention_equals_torch(lead):
    rng = np.random.default_rng(11)
    q, k, v, grad = _attention_inputs(rng, 1.0, lead=lead)

    def ref(q, k, v):  # one key/value set shared by every query
        return F.scaled_dot_product_attention(q, k.expand(*lead, *k.shape), v.expand(*lead, *v.shape))

    want, want_grads = _torch_vjp(ref, [q, k, v], grad, (0, 1, 2))
    _close(nn.scaled_dot_product_attention(q, k, v), want)
    got = nn.scaled_dot_product_attention_backward(q, k, v, grad)
    assert [g.shape for g in got] == [q.shape, k.shape, v.shape]
    for ours, theirs in zip(got, want_grads):
        _close(ours, theirs)


def _masks(rng, L=4, S=5):
    boolean = rng.uniform(size=(L, S)) < 0.6
    boolean[0] = False  # a query that attends to nothing: weights 0, gradients 0 (as torch)
    boolean[1] = True
    additive = rng.normal(size=(L, S))
    additive[2, :3] = -np.inf
    return {"boolean": boolean, "additive": additive}


@pytest.mark.parametrize("kind", ["boolean", "additive"])
def test_masked_attention_equals_torch(kind):
    rng = np.random.default_rng(13)
    q, k, v, grad = _attention_inputs(rng, 1.0)
    mask = _masks(rng)[kind]
    ref = lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m)  # noqa: E731
    want, want_grads = _torch_vjp(ref, [q, k, v, torch.tensor(mask)], grad, (0, 1, 2))
    _close(nn.masked_attention(q, k, v, mask), want)
    got = nn.masked_attention_backward(q, k, v, mask, grad)
    assert len(got) == 3  # q, k, v; the mask is data
    for ours, theirs in zip(got, want_grads):
        _close(ours, theirs)
    if kind == "boolean":
        assert (nn.masked_attention(q, k, v, mask)[0] == 0).all() and (got[0][0] == 0).all()


def _mp_attention_grads(q, k, v, grad, dps=450):
    """∂⟨grad, softmax(q kᵀ/√d) v⟩ / ∂(q, k, v) by mpmath's numerical differentiation at ``dps`` digits
    (enough for the e^{−Δ} ≈ 1e−200 entries of a saturated softmax)."""
    with mpmath.workdps(dps):
        conv = lambda a: [[mpmath.mpf(float(x)) for x in row] for row in a]  # noqa: E731
        arrays, g = [conv(a) for a in (q, k, v)], conv(grad)

        def loss(q, k, v):
            total = mpmath.mpf(0)
            for qi, gi in zip(q, g):
                s = [mpmath.fsum(a * b for a, b in zip(qi, kj)) / mpmath.sqrt(len(qi)) for kj in k]
                e = [mpmath.exp(x - max(s)) for x in s]
                total += mpmath.fsum(e[j] * mpmath.fsum(v[j][c] * gi[c] for c in range(len(gi)))
                                     for j in range(len(k))) / mpmath.fsum(e)
            return total

        out = []
        for which, A in enumerate(arrays):
            G = np.zeros((len(A), len(A[0])))
            for i in range(len(A)):
                for j in range(len(A[0])):
                    def f(t, i=i, j=j, which=which):
                        B = [row[:] for row in arrays[which]]
                        B[i][j] = t
                        return loss(*[B if w == which else arrays[w] for w in range(3)])
                    G[i, j] = float(mpmath.diff(f, A[i][j]))
            out.append(G)
    return out


@pytest.mark.parametrize("scale", [3.0, 30.0])
def test_attention_backward_against_mpmath_where_torch_loses_digits(scale):
    """At ×3 torch's softmax backward (a (g − Σ g a)) is off by ~5e−4 in one entry of dQ, at ×30 by
    factors (the true gradients are ~1e−200); symgrad's never forms 1 − a_max."""
    rng = np.random.default_rng(2)
    q, k, v, grad = _attention_inputs(rng, scale, L=3, S=4, d=3, Fv=2)
    for ours, ref in zip(nn.scaled_dot_product_attention_backward(q, k, v, grad), _mp_attention_grads(q, k, v, grad)):
        np.testing.assert_allclose(ours, ref, rtol=1e-11, atol=0)


def test_attention_float32_and_shape_errors():
    rng = np.random.default_rng(17)
    q, k, v, grad = (a.astype(np.float32) for a in _attention_inputs(rng, 1.0))
    mask = _masks(rng)["boolean"]
    assert nn.scaled_dot_product_attention(q, k, v).dtype == np.float32
    assert all(g.dtype == np.float32 for g in nn.masked_attention_backward(q, k, v, mask, grad))
    assert nn.masked_attention(*(torch.tensor(a) for a in (q, k, v, mask))).dtype == torch.float32
    with pytest.raises(ValueError, match="k: shape"):
        nn.scaled_dot_product_attention(q, np.stack([k, k]), v)
    with pytest.raises(ValueError, match="mask"):
        nn.masked_attention(q, k, v, mask[:, :3])


def test_masks_are_documented_as_data():
    assert "Not differentiated (data): mask." in nn.masked_attention_backward.__doc__
    assert "Returns the gradients with respect to q, k, v" in nn.masked_attention_backward.__doc__


# --- the symbolic closed forms ------------------------------------------------------------------------
CLOSED_FORMS = {
    "layer_norm": (
        r"\operatorname{LN}_{\gamma, \beta}\left(X\right)",
        [r"\frac{1}{D}\,\sigma_{X}^{-1}\left(D\,\left(G \circ \gamma\right) - \sum_{j} \left(G \circ \gamma\right)"
         r" - \hat{X} \circ \sum_{j} \left(G \circ \gamma \circ \hat{X}\right)\right)",
         r"\mathbf{1}^{T} \left(\operatorname{LN}\left(X\right) \circ G\right)",
         r"\mathbf{1}^{T} G"]),
    "rms_norm": (
        r"\operatorname{RMSNorm}_{\gamma}\left(X\right)",
        [r"\frac{1}{D}\,\operatorname{rms}_{X}^{-1}\left(D\,\left(G \circ \gamma\right)"
         r" - \hat{X} \circ \sum_{j} \left(G \circ \gamma \circ \hat{X}\right)\right)",
         r"\mathbf{1}^{T} \left(G \circ \operatorname{RMSNorm}\left(X\right)\right)"]),
    "batch_norm": (
        r"\operatorname{BN}_{\gamma, \beta}\left(X\right)",
        [r"\frac{1}{N}\,\gamma\,\sigma_{X}^{-1}\left(N\,G - \sum_{n} G - \hat{X} \circ \sum_{n} \left(G \circ \hat{X}\right)\right)",
         r"\mathbf{1}^{T} \left(\operatorname{BN}\left(X\right) \circ G\right)",
         r"\mathbf{1}^{T} G"]),
    "scaled_dot_product_attention": (
        r"\operatorname{Attention}\left(Q, K, V\right)",
        [r"\frac{\left(\operatorname{softmax}\left(\frac{Q K^{T}}{\sqrt{d}}\right) \circ \left(G V^{T} - \sum_{j} "
         r"\left(G V^{T} \circ \operatorname{softmax}\left(\frac{Q K^{T}}{\sqrt{d}}\right)\right)\right)\right) K}{\sqrt{d}}",
         r"\frac{\left(\operatorname{softmax}\left(\frac{Q K^{T}}{\sqrt{d}}\right) \circ \left(G V^{T} - \sum_{j} "
         r"\left(G V^{T} \circ \operatorname{softmax}\left(\frac{Q K^{T}}{\sqrt{d}}\right)\right)\right)\right)^{T} Q}{\sqrt{d}}",
         r"\left(\operatorname{softmax}\left(\frac{Q K^{T}}{\sqrt{d}}\right)\right)^{T} G"]),
    "masked_attention": (
        r"\operatorname{Attention}\left(Q, K, V; M\right)",
        [r"\frac{\left(\operatorname{softmax}\left(\frac{Q K^{T}}{\sqrt{d}} + M\right) \circ \left(G V^{T} - \sum_{j} "
         r"\left(G V^{T} \circ \operatorname{softmax}\left(\frac{Q K^{T}}{\sqrt{d}} + M\right)\right)\right)\right) K}{\sqrt{d}}",
         r"\frac{\left(\operatorname{softmax}\left(\frac{Q K^{T}}{\sqrt{d}} + M\right) \circ \left(G V^{T} - \sum_{j} "
         r"\left(G V^{T} \circ \operatorname{softmax}\left(\frac{Q K^{T}}{\sqrt{d}} + M\right)\right)\right)\right)^{T} Q}{\sqrt{d}}",
         r"\left(\operatorname{softmax}\left(\frac{Q K^{T}}{\sqrt{d}} + M\right)\right)^{T} G"]),
}
LEAKS = ("Lambda", "_entry", "Dummy", r"\text{\_")


def _derived(name):
    ex = get_block(name).build()
    return ex, symgrad.derive(ex.expr, list(ex.wrt), upstream=ex.upstream)


@pytest.mark.parametrize("name", BLOCKS)
def test_derive_gives_the_closed_form(name):
    forward, results = CLOSED_FORMS[name]
    ex, d = _derived(name)
    assert latex(ex.expr) == forward
    assert [latex(r) for r in d.results] == results


TEXT_FORMS = {
    "layer_norm": "(1/D)*σ(X)⁻¹∘(D*(G∘gamma) - Σ_j (G∘gamma) - X̂∘Σ_j (G∘gamma∘X̂))",
    "rms_norm": "(1/D)*rms(X)⁻¹∘(D*(G∘gamma) - X̂∘Σ_j (G∘gamma∘X̂))",
    "batch_norm": "(1/N)*gamma∘σ(X)⁻¹∘(N*G - Σ_n G - X̂∘Σ_n (G∘X̂))",
    "scaled_dot_product_attention": "softmax(Q*K.T/sqrt(d)).T*G",
}


@pytest.mark.parametrize("name", list(TEXT_FORMS))
def test_plain_text_is_the_closed_form_too(name):
    _, d = _derived(name)
    assert text(d.results[-1] if "attention" in name else d.results[0]) == TEXT_FORMS[name]


@pytest.mark.parametrize("name", BLOCKS)
def test_no_internal_symbol_in_any_output(name):
    ex, d = _derived(name)
    shown = [latex(ex.expr), d.latex(), *(latex(r) for r in d.results), *(text(r) for r in d.results),
             *(f"{text(k)} = {text(v)}" for k, v in d.intermediates.items()),
             *(f"{text(s.lhs)} = {text(s.rhs)}" for s in d.steps), d.compile().source]
    for out in shown:
        assert not any(leak in out for leak in LEAKS), out


def _explicit_check(name, results=None, seed=0):
    """Max relative difference between the derived results, written out on explicit entries at the
    example's small sizes, and SymPy's diff of the explicit forward ⟨G, Y⟩ at a random point."""
    ex, d = _derived(name)
    sizes = {k: sp.Integer(v) for k, v in ex.sizes.items()}
    concrete = {m: sp.MatrixSymbol(m.name, *(sizes.get(s, s) for s in m.shape)) for m in d.expr.atoms(sp.MatrixSymbol)}
    entries = {m: sp.ImmutableMatrix(*c.shape, lambda i, j, n=m.name: sp.Symbol(f"{n}{i}{j}", real=True))
               for m, c in concrete.items()}
    to_entries = lambda e: explicit_entries(e.xreplace(sizes).xreplace({concrete[m]: entries[m] for m in concrete}))  # noqa: E731
    loss = to_entries(d.expr)
    rng = np.random.default_rng(seed)
    point = {s: sp.Float(rng.normal(), 30) for m in entries.values() for s in m}
    point.update({s: sp.Float(0.05, 30) for s in loss.free_symbols if s.name == "epsilon"})
    worst = 0.0
    for w, result in zip(d.wrt, results or d.results):
        got = to_entries(result)
        for i in range(got.rows):
            for j in range(got.cols):
                ref = sp.N(sp.diff(loss, entries[w][i, j]).xreplace(point), 30)
                val = sp.N(got[i, j].xreplace(point), 30)
                worst = max(worst, float(abs(val - ref) / max(abs(ref), sp.Float(1e-12))))
    return worst


@pytest.mark.parametrize("name", BLOCKS)
def test_closed_forms_equal_sympy_diff_of_the_explicit_forward(name):
    assert _explicit_check(name) < 1e-20


def test_the_explicit_check_catches_a_wrong_closed_form():
    """RMSNorm's dX in place of layer norm's (the centering forgotten, a classic slip) is refuted."""
    _, d = _derived("layer_norm")
    wrong = norms.RMSNormVJP(*d.results[0].args)
    assert _explicit_check("layer_norm", [wrong, *d.results[1:]]) > 1e-3


def test_layer_norm_without_affine_and_the_batch_norm_formula():
    """LN without γ, β has dX = (1/D) σ⁻¹ (D G − Σ G − x̂ Σ G ∘ x̂); torch agrees with weight=None."""
    D = sp.Symbol("D", integer=True, positive=True)
    X, G = sp.MatrixSymbol("X", N, D), sp.MatrixSymbol("G", N, D)
    d = symgrad.derive(norms.layer_norm(X, eps=sp.Symbol("epsilon", positive=True)), X, upstream=G)
    assert latex(d.result) == (r"\frac{1}{D}\,\sigma_{X}^{-1}\left(D\,G - \sum_{j} G - \hat{X} \circ "
                               r"\sum_{j} \left(G \circ \hat{X}\right)\right)")
    rng = np.random.default_rng(1)
    x, grad = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    want, (want_x,) = _torch_vjp(lambda x: F.layer_norm(x, (6,), eps=1e-5), [x], grad, (0,))
    _close(d.compile()(X=x, G=grad, epsilon=1e-5), want_x)


def test_blocks_compose_through_their_arguments():
    """LN(X W; γ, β) fitted to Y, and self-attention (X Wq, X Wk, X Wv): the derived gradients of the
    weights, compiled, equal torch.autograd."""
    D, H = sp.Symbol("D", integer=True, positive=True), sp.Symbol("H", integer=True, positive=True)
    X, W, Y = sp.MatrixSymbol("X", N, D), sp.MatrixSymbol("W", D, H), sp.MatrixSymbol("Y", N, H)
    gamma, beta = sp.MatrixSymbol("gamma", 1, H), sp.MatrixSymbol("beta", 1, H)
    R = norms.layer_norm(X * W, gamma, beta, eps=sp.Symbol("epsilon", positive=True)) - Y
    d = symgrad.derive(sp.Trace(R.T * R), [W, gamma, beta])
    rng = np.random.default_rng(23)
    x, w, y, g, b = rng.normal(size=(5, 3)), rng.normal(size=(3, 4)), rng.normal(size=(5, 4)), \
        rng.normal(size=(1, 4)), rng.normal(size=(1, 4))
    ts = [torch.tensor(a, requires_grad=True) for a in (w, g, b)]
    loss = ((F.layer_norm(torch.tensor(x) @ ts[0], (4,), ts[1][0], ts[2][0], eps=1e-5) - torch.tensor(y)) ** 2).sum()
    for ours, theirs in zip(d.compile()(X=x, W=w, Y=y, gamma=g, beta=b, epsilon=1e-5), torch.autograd.grad(loss, ts)):
        _close(ours, theirs.numpy())

    E = sp.Symbol("E", integer=True, positive=True)
    Wq, Wk, Wv = (sp.MatrixSymbol(n, D, E) for n in ("Wq", "Wk", "Wv"))
    G = sp.MatrixSymbol("G", N, E)
    d = symgrad.derive(norms.scaled_dot_product_attention(X * Wq, X * Wk, X * Wv), [Wq, Wk, Wv], upstream=G)
    ws = [rng.normal(size=(3, 2)) for _ in range(3)]
    grad = rng.normal(size=(5, 2))
    ts = [torch.tensor(a, requires_grad=True) for a in ws]
    xt = torch.tensor(x)
    out = F.scaled_dot_product_attention(xt @ ts[0], xt @ ts[1], xt @ ts[2])
    expected = torch.autograd.grad(out, ts, grad_outputs=torch.tensor(grad))
    got = d.compile()(X=x, Wq=ws[0], Wk=ws[1], Wv=ws[2], G=grad)
    for ours, theirs in zip(got, expected):
        _close(ours, theirs.numpy())


@pytest.mark.parametrize("name", ["layer_norm", "rms_norm"])
def test_nn_without_the_affine_part_is_gamma_one_beta_zero(name):
    """torch's weight=None, bias=None is symgrad.nn's γ = 1, β = 0 (the documented spelling)."""
    rng = np.random.default_rng(29)
    x, grad = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    ref = (lambda x: F.layer_norm(x, (6,), eps=1e-5)) if name == "layer_norm" else \
        (lambda x: F.rms_norm(x, (6,), eps=1e-6))
    params = [np.ones(6), np.zeros(6)] if name == "layer_norm" else [np.ones(6)]
    want, (want_x,) = _torch_vjp(ref, [x], grad, (0,))
    _close(getattr(nn, name)(x, *params), want)
    _close(getattr(nn, f"{name}_backward")(x, *params, grad)[0], want_x)


@pytest.mark.parametrize("name", ["layer_norm", "rms_norm", "batch_norm"])
def test_eps_is_a_constant_never_a_silent_zero(name):
    ex = get_block(name).build()
    with pytest.raises(symgrad.SymgradLimit, match="eps is a constant"):
        symgrad.derive(ex.expr, ex.inputs["epsilon"], upstream=ex.upstream).result


def test_an_additive_mask_gets_its_gradient_symbolically():
    """dM = dS = A ∘ (dA − Σ_j dA ∘ A) (symgrad.nn treats masks as data), cross-checked on explicit entries."""
    ex = get_block("masked_attention").build()
    outcome = run(ex.expr, [ex.inputs["M"]], upstream=ex.upstream, sizes=ex.sizes)
    assert outcome.check.ok, str(outcome.check)
    assert text(outcome.derivation.results[0]) == "softmax(Q*K.T/sqrt(d) + M)∘(G*V.T - Σ_j (G*V.T∘softmax(Q*K.T/sqrt(d) + M)))"


@pytest.mark.parametrize("name", BLOCKS)
def test_exported_modules_import_and_agree(name, tmp_path):
    """The standalone module (NumPy only: the stable forms copied in) gives the compiled gradient."""
    import importlib.util

    from symgrad.compiler.module import export_module

    _, d = _derived(name)
    path = export_module(d, tmp_path / f"{name}_grad.py")
    spec = importlib.util.spec_from_file_location(f"{name}_grad", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(31)
    shapes = {"X": (4, 3), "G": (4, 3), "gamma": (1, 3), "beta": (1, 3)} if "norm" in name else \
        {"Q": (4, 3), "K": (5, 3), "V": (5, 2), "G": (4, 2), "M": (4, 5)}
    inputs = {k: rng.normal(size=v) for k, v in shapes.items()}
    inputs = {k: v for k, v in inputs.items() if k in d.compile().params} | \
        ({"epsilon": 1e-5} if "norm" in name else {})
    for ours, compiled in zip(module.gradient(**inputs), d.compile()(**inputs)):
        _close(ours, compiled, rtol=1e-14)
