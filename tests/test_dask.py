"""Chunked Dask arrays: every symgrad.nn block and an exported matrix-gradient module build a lazy
graph (nothing is computed until ``.compute()``) whose result equals the NumPy one (the NumPy
functions are themselves checked against torch.autograd and finite differences in test_nn.py)."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
import symgrad.nn as nn

from tests.test_nn import NAMES, _as_tuple, _spec

da = pytest.importorskip("dask.array")
pytest.importorskip("array_api_compat")
from dask.callbacks import Callback  # noqa: E402


class _Computes(Callback):
    """Counts the graphs Dask executes while it is active."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def _start(self, dsk):
        self.count += 1


def _chunked(a, chunks=2):
    return da.from_array(np.asarray(a), chunks=chunks)


@pytest.mark.parametrize("name", NAMES)
def test_every_nn_block_is_lazy_on_dask_and_equals_numpy(name):
    args, params, _ = _spec(name, np.random.default_rng(11))
    out = getattr(nn, name)(*args, **params)
    grad = np.random.default_rng(12).normal(size=np.shape(out))
    back = _as_tuple(getattr(nn, f"{name}_backward")(*args, grad, **params))
    with _Computes() as computes:  # chunks of 2 along every axis: reductions cross chunks
        d_out = getattr(nn, name)(*[_chunked(a) for a in args], **params)
        d_back = _as_tuple(getattr(nn, f"{name}_backward")(*[_chunked(a) for a in args], _chunked(grad), **params))
    assert computes.count == 0, f"{name}: computed {computes.count} graph(s) before .compute()"
    assert isinstance(d_out, da.Array) and len(d_back) == len(back)
    np.testing.assert_allclose(d_out.compute(), out, rtol=1e-13, atol=1e-15, err_msg=name)
    for d, g in zip(d_back, back):
        if g is None:
            assert d is None, name
            continue
        assert isinstance(d, da.Array), name
        np.testing.assert_allclose(d.compute(), g, rtol=1e-13, atol=1e-15, err_msg=name)


def test_class_indices_out_of_range_raise_when_computed():
    z = _chunked(np.zeros((4, 3)))
    with _Computes() as computes:
        loss = nn.softmax_cross_entropy(z, _chunked(np.array([0, 1, 2, 3])))
    assert computes.count == 0
    with pytest.raises(ValueError, match="0-based"):
        loss.compute()


def test_row_blocks_at_extreme_logits_on_dask():
    """The stable forms keep their digits on Dask too: a spread of 2000 in a row, ±inf entries."""
    z = np.array([[1000.0, 0.0, -1000.0], [0.0, 1.0, 2.0], [np.inf, 0.0, 1.0], [-np.inf, 0.0, 0.0]])
    g = np.array([[1.0, 2.0, 3.0]] * 4)
    for f, args in ((nn.softmax, (z,)), (nn.softmax_backward, (z, g)), (nn.log_softmax_backward, (z, g))):
        np.testing.assert_array_equal(f(*[_chunked(a, (2, 3)) for a in args]).compute(), f(*args))


def test_an_exported_matrix_module_is_lazy_on_dask(tmp_path):
    import importlib.util

    x, y = sp.MatrixSymbol("x", 64, 30), sp.MatrixSymbol("y", 64, 5)
    W1, W2 = sp.MatrixSymbol("W1", 30, 20), sp.MatrixSymbol("W2", 20, 5)
    r = sg.sigmoid(x * W1) * W2 - y
    path = sg.export_module(sg.derive(sp.Trace(r.T * r), [W1, W2]), tmp_path / "net_dask.py", name="net_grad")
    spec = importlib.util.spec_from_file_location("net_dask", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(13)
    v = dict(x=rng.normal(size=(64, 30)), y=rng.normal(size=(64, 5)), W1=rng.normal(size=(30, 20)) * 0.1,
             W2=rng.normal(size=(20, 5)))
    want = module.net_grad(**v)
    with _Computes() as computes:
        got = module.net_grad(**{k: _chunked(a, (16, a.shape[1])) for k, a in v.items()})
    assert computes.count == 0 and all(isinstance(t, da.Array) for t in got)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.compute(), b, rtol=1e-12)
    # the reference for the NumPy numbers: the hand-written backward of the seeds' 2-layer net
    h = 1 / (1 + np.exp(-v["x"] @ v["W1"]))
    e = 2 * (h @ v["W2"] - v["y"])
    np.testing.assert_allclose(want[1], h.T @ e, rtol=1e-12)
    np.testing.assert_allclose(want[0], v["x"].T @ ((e @ v["W2"].T) * h * (1 - h)), rtol=1e-12)
