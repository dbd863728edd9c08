"""symgrad.trace: ordinary NumPy forwards traced to graphs of the user's names, derived, compiled, and
compared with torch.autograd and central finite differences of the user's own NumPy forward."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.printing import text

torch = pytest.importorskip("torch")


# --- oracles ---------------------------------------------------------------------------------------
def finite_differences(forward, args: dict, name: str, h: float = 1e-6) -> np.ndarray:
    """Central differences of the user's NumPy forward in the argument ``name``."""
    x = np.array(args[name], dtype=float)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += h
        minus[idx] -= h
        grad[idx] = (forward(**{**args, name: plus}) - forward(**{**args, name: minus})) / (2 * h)
    return grad


class TorchNamespace:
    """The forward's NumPy calls, on torch tensors (so that torch.autograd differentiates the same code)."""

    def __getattr__(self, name):
        table = {"exp": torch.exp, "log": torch.log, "tanh": torch.tanh, "sqrt": torch.sqrt,
                 "square": torch.square, "maximum": lambda a, b: torch.clamp(a, min=b) if not torch.is_tensor(b)
                 else torch.clamp(b, min=a), "dot": torch.matmul, "arange": torch.arange, "sum": torch.sum,
                 "abs": torch.abs, "where": torch.where}
        return table[name]


def torch_gradients(forward_xp, args: dict, wrt: list) -> dict:
    tensors = {k: torch.tensor(v, dtype=torch.float64, requires_grad=k in wrt) if isinstance(v, np.ndarray) and v.dtype.kind == "f"
               else (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in args.items()}
    out = forward_xp(torch, **tensors)
    out.backward()
    return {k: tensors[k].grad.numpy() for k in wrt}


def compiled_gradients(traced, derivation, args: dict, wrt: list) -> dict:
    grads = derivation.compile()(**traced.values(**args))
    grads = grads if isinstance(grads, tuple) else (grads,)
    return {k: traced.gradient_of(k, g) for k, g in zip(wrt, grads)}


def assert_close(got: dict, expected: dict, rtol=1e-6, atol=1e-8):
    for k in expected:
        np.testing.assert_allclose(got[k], expected[k], rtol=rtol, atol=atol, err_msg=k)


# --- the lecture notes' 20-line network --------------------------------------------------------------
def twenty_line(x, w1, w2, y, xp=np):
    h = 1 / (1 + xp.exp(-x @ w1)) if xp is torch else 1 / (1 + np.exp(-x.dot(w1)))
    y_pred = h @ w2 if xp is torch else h.dot(w2)
    return ((y_pred - y) ** 2).sum() if xp is torch else np.square(y_pred - y).sum()


def twenty_line_np(x, w1, w2, y):
    h = 1 / (1 + np.exp(-x.dot(w1)))
    y_pred = h.dot(w2)
    return np.square(y_pred - y).sum()


def test_twenty_line_network_derives_to_the_notes_backward_in_the_users_names():
    traced = sg.trace(twenty_line_np, x=("N", "D"), w1=("D", "H"), w2=("H", "O"), y=("N", "O"))
    assert [n.name for n in traced.names] == ["h", "y_pred", "L"]
    assert text(traced.exprs[traced.names[0]]) == "sigmoid(x*w1)"  # 1/(1 + exp(-x w1)) is σ
    d = sg.derive(traced, ["w1", "w2"])
    g1, g2 = (text(g) for g in d.named)
    assert "h" in g1 and "y_pred" in g1 and "h" in g2 and "y_pred" in g2
    assert g2 == "h.T*(2*(y_pred - y))"
    rng = np.random.default_rng(0)
    args = dict(x=rng.normal(size=(5, 4)), w1=rng.normal(size=(4, 6)) * 0.5, w2=rng.normal(size=(6, 3)),
                y=rng.normal(size=(5, 3)))
    got = compiled_gradients(traced, d, args, ["w1", "w2"])
    assert_close(got, {k: finite_differences(twenty_line_np, args, k) for k in ("w1", "w2")}, rtol=1e-6)
    assert_close(got, torch_gradients(lambda xp, **a: twenty_line(xp=xp, **a), args, ["w1", "w2"]), rtol=1e-10)
    # the notes' hand-written backward
    h = 1 / (1 + np.exp(-args["x"].dot(args["w1"])))
    grad_y_pred = 2.0 * (h.dot(args["w2"]) - args["y"])
    np.testing.assert_allclose(got["w2"], h.T.dot(grad_y_pred), rtol=1e-12)
    np.testing.assert_allclose(got["w1"], args["x"].T.dot(grad_y_pred.dot(args["w2"].T) * h * (1 - h)), rtol=1e-12)
