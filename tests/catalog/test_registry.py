"""The catalog: every block declared once, its identity right, its example cross-checked."""

import math

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.catalog import LogSoftmaxEntry, SoftmaxEntry, blocks, get_block, register, route, step, vector
from symgrad.catalog.base import Primitive
from symgrad.errors import UnknownBlockError
from symgrad.pipeline import run_block

from tests.conftest import mp_derivative, mp_value

x = sp.Symbol("x", real=True)
alpha = sp.Symbol("alpha", positive=True)

REQUIRED = {
    "activation": {"sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "softmax", "log_softmax", "maxout",
                   "gelu", "gelu_tanh", "silu", "mish", "selu", "celu", "softsign", "hardtanh", "hardsigmoid",
                   "hardswish", "relu6", "prelu", "logsigmoid", "softmin", "glu"},
    "loss": {"bce", "bce_with_logits", "cross_entropy", "softmax_cross_entropy", "squared_l2", "hinge",
             "multiclass_svm", "l2", "huber", "smooth_l1", "l1_loss", "margin_ranking", "binary_focal", "kl_div",
             "kl_div_log_target", "nll", "cosine_similarity", "cosine_embedding", "triplet_margin"},
    "layer": {"dense", "lp_pool", "log_avg_pool", "sq_norm_linear", "dropout", "max_pool", "logsumexp",
              "layer_norm", "rms_norm", "batch_norm", "scaled_dot_product_attention", "masked_attention"},
    "composition": {"logistic_regression", "softmax_regression", "mlp"},
}


@pytest.mark.parametrize("family", sorted(REQUIRED))
def test_catalog_has_every_required_block(family):
    assert {b.name for b in blocks(family)} == REQUIRED[family]


@pytest.mark.parametrize("block", blocks(), ids=lambda b: b.name)
def test_every_block_declares_everything(block):
    assert block.formula and block.latex and block.derivative and block.domain and block.kink
    if block.function is not None and issubclass(block.function, Primitive):
        fn = block.function
        assert callable(fn.numpy_form) and fn.fdiff is not Primitive.fdiff


def test_a_block_is_declared_once():
    with pytest.raises(ValueError, match="declared twice"):
        register(get_block("sigmoid"))


def test_unknown_block_suggests_close_names():
    with pytest.raises(UnknownBlockError, match="did you mean sigmoid"):
        get_block("sigmod")


@pytest.mark.parametrize("block", blocks(), ids=lambda b: b.name)
def test_every_block_derives_compiles_and_cross_checks(block):
    outcome = run_block(block)
    assert outcome.check.ok, str(outcome.check)
    assert outcome.check.max_rel_error < 1e-9
    assert outcome.latex.startswith("\\begin{align*}")


# --- each primitive's derivative identity against SymPy's diff of its elementary form ------------
SCALAR_PRIMITIVES = [
    (sg.sigmoid(x), {}), (sg.softplus(x), {}), (sg.relu(x), {}), (sg.leaky_relu(x, alpha), {alpha: 0.2}),
    (sg.elu(x, alpha), {alpha: 1.7}), (sp.tanh(x), {}),
]


@pytest.mark.parametrize("expr,params", SCALAR_PRIMITIVES, ids=lambda e: str(e))
@pytest.mark.parametrize("value", [-3.7, -0.4, 0.6, 2.9])
def test_primitive_identity_matches_numeric_derivative(expr, params, value):
    identity = expr.diff(x)  # the block's fdiff
    point = {x: value, **params}
    assert mp_value(identity, point) == pytest.approx(mp_derivative(expr, x, point), rel=1e-12, abs=1e-15)


def test_identities_are_written_through_the_output():
    assert sg.sigmoid(x).diff(x) == sg.sigmoid(x) * (1 - sg.sigmoid(x))
    assert sp.tanh(x).diff(x) == 1 - sp.tanh(x) ** 2
    assert sg.softplus(x).diff(x) == sg.sigmoid(x)
    assert sg.relu(x).diff(x) == step(x)
    elu = sg.elu(x, alpha)
    assert elu.diff(x) == sp.Piecewise((1, x > 0), (elu + alpha, True))


def test_kink_conventions_are_the_frameworks_not_sympys():
    assert sp.Heaviside(0) == sp.S.Half  # what we must not use
    assert step(0) == 0 and sg.relu(x).diff(x).subs(x, 0) == 0
    assert sg.leaky_relu(x).diff(x).subs(x, 0) == sp.Float(0.01)
    assert sg.elu(x, alpha).diff(x).subs(x, 0) == alpha  # the x <= 0 branch, as PyTorch
    f = sg.derive(sg.relu(x), x).compile()
    assert f(x=np.array([-1.0, 0.0, 2.0])).tolist() == [0.0, 0.0, 1.0]


def test_defaults_follow_pytorch():
    assert sg.leaky_relu(x).args[1] == sp.Float(0.01)
    assert sg.elu(x).args[1] == 1
    assert dict(get_block("leaky_relu").params) == {"alpha": 0.01}


def test_softmax_jacobian_entries_are_textbook():
    z = vector("z", 3)
    a = sg.softmax(z)
    for i in range(3):
        for j in range(3):
            delta = 1 if i == j else 0
            assert a[i].diff(z[j]) == a[i] * (delta - a[j])
            assert sg.log_softmax(z)[i].diff(z[j]) == delta - a[j]


def test_softmax_is_numerically_right(rng):
    z = vector("z", 4)
    point = {s: float(v) for s, v in zip(z, rng.normal(size=4))}
    exps = [math.exp(point[s]) for s in z]
    for i, entry in enumerate(sg.softmax(z)):
        assert mp_value(entry, point) == pytest.approx(exps[i] / sum(exps), rel=1e-14)
        assert mp_value(LogSoftmaxEntry(i + 1, *z), point) == pytest.approx(math.log(exps[i] / sum(exps)), rel=1e-13)


def test_maxout_routes_to_the_first_largest_piece():
    u1, u2 = sp.symbols("u1 u2", real=True)
    m = sg.maxout(u1, u2)
    assert m.diff(u1) == route(1, u1, u2)
    assert route(1, 2, 2).rewrite("elementary") == 1 and route(2, 2, 2).rewrite("elementary") == 0
    assert route(2, 1, 3).rewrite("elementary") == 1


def test_elementwise_blocks_map_over_vectors():
    v = vector("v", 3)
    assert sg.sigmoid(v) == v.applyfunc(sg.sigmoid)
    with pytest.raises(TypeError):
        SoftmaxEntry(1, sp.Matrix([1, 2]), x)


def test_exact_values():
    assert sg.sigmoid(0) == sp.S.Half and sg.softplus(0) == sp.log(2)
    assert sg.relu(-3) == 0 and sg.relu(sp.Rational(5, 2)) == sp.Rational(5, 2)
    assert float(sg.sigmoid(sp.Float(1.0))) == pytest.approx(1 / (1 + math.exp(-1)), rel=1e-15)


@pytest.mark.parametrize("cls", [c for c in Primitive.__subclasses__() if c.__module__.startswith("symgrad.")],
                         ids=lambda c: c.__name__)  # the catalog's own (a test may declare one)
def test_every_primitive_declares_a_stable_numpy_form(cls):
    assert callable(cls.numpy_form)
    assert cls.numpy_form.__module__.startswith("symgrad.catalog")


def test_cross_entropy_class_index_and_errors():
    z = vector("z", 3)
    assert sg.cross_entropy(sg.softmax(z), 2) == -sp.log(SoftmaxEntry(2, *z))
    with pytest.raises(ValueError, match="out of range"):
        sg.cross_entropy(sg.softmax(z), 4)
    with pytest.raises(ValueError, match="3 probabilities but 2 targets"):
        sg.cross_entropy(sg.softmax(z), [1, 0])
    with pytest.raises(TypeError, match="parse text"):
        sg.bce("a", 1)


def test_mlp_builder_validates_its_arguments():
    xv, yv = vector("x", 2), vector("y", 1)
    loss, params = sg.mlp(xv, yv, (2, 3, 1), "tanh")
    assert set(params) == {"W1", "b1", "W2", "b2"} and params["W1"].shape == (3, 2)
    with pytest.raises(ValueError, match="unknown activation"):
        sg.mlp(xv, yv, (2, 3, 1), "swish")
    with pytest.raises(ValueError, match="widths"):
        sg.mlp(xv, yv, (2,), "tanh")


# --- vectorized textbook forms: vectors of symbolic size, checked against torch.autograd ---------
from symgrad.printing.tex import latex as _latex  # noqa: E402

torch = pytest.importorskip("torch")

# block, wrt, the exact LaTeX of the named textbook result, a torch forward of the named inputs
VECTORIZED = [
    ("sq_norm_linear", "W", r"2 W \mathbf{x} \mathbf{x}^{T}", lambda W, x: ((W @ x) ** 2).sum()),
    ("sq_norm_linear", "x", r"2 W^{T} W \mathbf{x}", lambda W, x: ((W @ x) ** 2).sum()),
    ("dense", "W", r"\mathbf{g} \mathbf{x}^{T}", lambda W, x, b, g: (g * (W @ x + b)).sum()),
    ("dense", "x", r"W^{T} \mathbf{g}", lambda W, x, b, g: (g * (W @ x + b)).sum()),
    ("dense", "b", r"\mathbf{g}", lambda W, x, b, g: (g * (W @ x + b)).sum()),
    ("logistic_regression", "w", r"\left(a - y\right) \mathbf{x}",
     lambda w, x, b, y: torch.nn.functional.binary_cross_entropy(torch.sigmoid(w[:, 0] @ x[:, 0] + b), y)),
    ("logistic_regression", "b", "a - y",
     lambda w, x, b, y: torch.nn.functional.binary_cross_entropy(torch.sigmoid(w[:, 0] @ x[:, 0] + b), y)),
    ("softmax_regression", "W", r"\left(\mathbf{a} - \mathbf{y}\right) \mathbf{x}^{T}",
     lambda W, x, b, y: -(y[:, 0] * torch.log_softmax((W @ x + b)[:, 0], 0)).sum()),
    ("softmax_regression", "b", r"\mathbf{a} - \mathbf{y}",
     lambda W, x, b, y: -(y[:, 0] * torch.log_softmax((W @ x + b)[:, 0], 0)).sum()),
    ("mlp", "W1",
     r"2 \left(\left(W_{2}^{T} \left(W_{2} \mathbf{h} + \mathbf{b}_{2} - \mathbf{y}\right)\right) \circ \mathbf{h}"
     r" \circ \left(\mathbf{1} - \mathbf{h}\right)\right) \mathbf{x}^{T}",
     lambda W1, b1, W2, b2, x, y: ((W2 @ torch.sigmoid(W1 @ x + b1) + b2 - y) ** 2).sum()),
    ("mlp", "b1",
     r"2 \left(\left(W_{2}^{T} \left(W_{2} \mathbf{h} + \mathbf{b}_{2} - \mathbf{y}\right)\right) \circ \mathbf{h}"
     r" \circ \left(\mathbf{1} - \mathbf{h}\right)\right)",
     lambda W1, b1, W2, b2, x, y: ((W2 @ torch.sigmoid(W1 @ x + b1) + b2 - y) ** 2).sum()),
    ("mlp", "W2", r"2 \left(W_{2} \mathbf{h} + \mathbf{b}_{2} - \mathbf{y}\right) \mathbf{h}^{T}",
     lambda W1, b1, W2, b2, x, y: ((W2 @ torch.sigmoid(W1 @ x + b1) + b2 - y) ** 2).sum()),
    ("log_avg_pool", "x", r"y' \mathbf{a}",  # where a = softmax(βx)
     lambda x, beta, yp: yp * torch.log(torch.exp(beta * x).mean()) / beta),
    ("lp_pool", "x",
     r"y' \left(\mathbf{1}^{T} \mathbf{x}^{\circ {p}}\right)^{\frac{1 - p}{p}} \mathbf{x}^{\circ \left({p - 1}\right)}",
     lambda x, p, yp: yp * (x ** p).sum() ** (1 / p)),
]
SIZES = {"m": 2, "n": 3, "p": 4, "C": 3, "D": 3, "H": 4, "O": 2}  # unequal, so a transposition shows


def _arrays(ex, rng, onehot=False):
    """Values for the example's inputs (arrays for matrices, at SIZES; numbers in their domains)."""
    values = {}
    for name, sym in ex.inputs.items():
        if isinstance(sym, sp.MatrixSymbol):
            shape = tuple(SIZES[d.name] if isinstance(d, sp.Symbol) else int(d) for d in sym.shape)
            spec = ex.domain.get(sym)
            values[name] = rng.uniform(spec.low, spec.high, shape) if spec else rng.normal(size=shape)
        else:
            spec = ex.domain.get(sym)
            values[name] = float(rng.uniform(spec.low, spec.high)) if spec else float(rng.uniform(0.5, 2.0))
    if onehot:
        values["y"] = np.eye(values["y"].shape[0])[:, [rng.integers(values["y"].shape[0])]]
    return values


@pytest.mark.parametrize("name,wrt,tex,forward", VECTORIZED, ids=lambda v: v if isinstance(v, str) else "")
def test_vectorized_textbook_forms_match_torch(name, wrt, tex, forward, rng):
    ex = get_block(name).build()
    d = sg.derive(ex.expr, ex.inputs[wrt], upstream=ex.upstream)
    assert _latex(d.named) == tex
    for _ in range(3):
        values = _arrays(ex, rng, onehot=name == "softmax_regression")
        got = d.compile()(**{k: v for k, v in values.items() if k in d.compile().params})
        tensors = {k: torch.tensor(v, dtype=torch.float64, requires_grad=(k == wrt)) for k, v in values.items()}
        forward(*[tensors[k] for k in _torch_names(forward)]).backward()
        want = tensors[wrt].grad.numpy()
        np.testing.assert_allclose(np.broadcast_to(np.asarray(got, dtype=float), want.shape), want, rtol=1e-10, atol=1e-12)


def _torch_names(forward):
    """The example's input names in the order of the forward's parameters (yp is the upstream y')."""
    import inspect

    return [{"yp": "y'"}.get(p, p) for p in inspect.signature(forward).parameters]


@pytest.mark.parametrize("name,tex", [
    ("softmax", r"\operatorname{diag}\left(\mathbf{a}\right) - \mathbf{a} \mathbf{a}^{T}"),
    ("log_softmax", r"I - \mathbf{1} \mathbf{a}^{T}"),
])
def test_vector_block_jacobians_are_compact_and_match_torch(name, tex, rng):
    ex = get_block(name).build()
    d = sg.derive(ex.expr, ex.wrt[0])
    assert _latex(d.named) == tex
    fn = torch.softmax if name == "softmax" else torch.log_softmax
    for _ in range(3):
        z = rng.normal(size=(4, 1)) * 3
        want = torch.autograd.functional.jacobian(lambda t: fn(t[:, 0], 0), torch.tensor(z, dtype=torch.float64))
        np.testing.assert_allclose(d.compile()(z=z), want.numpy()[:, :, 0], rtol=1e-10, atol=1e-14)


def test_vector_blocks_declare_an_explicit_instance():
    for name in ["softmax", "log_softmax", "dense", "sq_norm_linear", "lp_pool", "log_avg_pool",
                 "logistic_regression", "softmax_regression", "mlp"]:
        block = get_block(name)
        vectorized, explicit = block.build(), block.build(entries=True)
        assert any(isinstance(v, sp.MatrixSymbol) for v in vectorized.inputs.values()), name
        assert not explicit.expr.atoms(sp.MatrixSymbol), name
    assert get_block("sigmoid").build(entries=True).expr == get_block("sigmoid").build().expr


def test_explicit_instance_agrees_with_the_vectorized_form(rng):
    """∂‖Wx‖²/∂W on a 2×2 grid of entries (SymPy's diff) equals 2Wxxᵀ evaluated at the same numbers."""
    ex = get_block("sq_norm_linear").build(entries=True)
    W, x = ex.inputs["W"], ex.inputs["x"]
    values = {s: float(v) for s, v in zip(list(W) + list(x), rng.normal(size=len(W) + len(x)))}
    grid = np.array(sp.Matrix(2, 2, lambda i, j: sp.diff(ex.expr, W[i, j])).xreplace(values), dtype=float)
    vec = get_block("sq_norm_linear").build()
    d = sg.derive(vec.expr, vec.inputs["W"])
    Wv = np.array(W.xreplace(values), dtype=float)
    xv = np.array(x.xreplace(values), dtype=float)
    np.testing.assert_allclose(d.compile()(W=Wv, x=xv), grid, rtol=1e-12)
    np.testing.assert_allclose(grid, 2 * Wv @ xv @ xv.T, rtol=1e-12)  # the notes' 2 W x xᵀ


def test_symbolic_mlp_builder_validates_sizes():
    from symgrad.catalog.registry import size
    from symgrad.catalog.vectors import column

    D, H, O = size("D"), size("H"), size("O")
    loss, params = sg.mlp(column("x", D), column("y", O), (D, H, O), "tanh")
    assert params["W1"].shape == (H, D) and params["b2"].shape == (O, 1)
    with pytest.raises(ValueError, match="widths"):
        sg.mlp(column("x", D), column("y", O), (D, 3, O))
    with pytest.raises(ValueError, match="widths"):
        sg.mlp(column("x", D), column("y", O), (H, O))


def test_every_block_with_a_helper_is_reachable_from_the_package():
    import importlib

    found = 0
    for block in sg.blocks():
        for family in ("activations", "losses", "layers", "norms", "compositions"):
            module = importlib.import_module(f"symgrad.catalog.{family}")
            if block.name in getattr(module, "__all__", ()):
                assert getattr(sg, block.name) is getattr(module, block.name)
                found += 1
                break
    assert found >= 40
    with pytest.raises(AttributeError, match="no attribute 'not_a_block'"):
        sg.not_a_block
