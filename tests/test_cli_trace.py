"""cli: ``symgrad trace FILE.py:FUNCTION --shape … [--wrt …] [--latex] [--backward FILE.py:FUNCTION]``."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from symgrad.cli import main

NET = textwrap.dedent('''
    import numpy as np


    def loss(x, y, w1, w2):
        h = 1 / (1 + np.exp(-x.dot(w1)))
        y_pred = h.dot(w2)
        return np.square(y_pred - y).sum()


    def backward(x, y, w1, w2):
        h = 1 / (1 + np.exp(-x.dot(w1)))
        grad_y_pred = 2.0 * (h.dot(w2) - y)
        return x.T.dot(grad_y_pred.dot(w2.T) * h * (1 - h)), h.T.dot(grad_y_pred)


    def buggy(x, y, w1, w2):
        h = 1 / (1 + np.exp(-x.dot(w1)))
        grad_y_pred = 2.0 * (h.dot(w2) - y)
        return x.T.dot(grad_y_pred.dot(w2.T) * h * (1 - h)), h.T.dot(grad_y_pred) / 2


    def in_place(x, y, w1, w2):
        g1, g2 = backward(x, y, w1, w2)
        out = np.zeros_like(g2)
        out[...] = g2
        return g1, out


    def ridge(x, y, w, lam):
        return np.square(x.dot(w) - y).sum() + lam * np.sum(w * w)


    def ridge_backward(x, y, w, lam):
        return 2 * x.T.dot(x.dot(w) - y) + 2 * lam * w
''')
CLASSIFIER = textwrap.dedent('''
    import numpy as np


    def loss(X, y, W1, b1, W2, b2, reg):
        N = X.shape[0]
        hidden = np.maximum(0, X.dot(W1) + b1)
        scores = hidden.dot(W2) + b2
        shifted = scores - np.max(scores, axis=1, keepdims=True)
        probs = np.exp(shifted) / np.sum(np.exp(shifted), axis=1, keepdims=True)
        return -np.sum(np.log(probs[np.arange(N), y])) / N + 0.5 * reg * np.sum(W2 * W2)


    def backward(X, y, W1, b1, W2, b2, reg, scale=1.0):
        N = X.shape[0]
        hidden = np.maximum(0, X.dot(W1) + b1)
        scores = hidden.dot(W2) + b2
        probs = np.exp(scores - scores.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        probs[np.arange(N), y] -= 1
        dscores = probs / N
        return hidden.T.dot(dscores) + scale * reg * W2, dscores.sum(axis=0)


    def buggy(X, y, W1, b1, W2, b2, reg):
        return backward(X, y, W1, b1, W2, b2, reg, scale=2.0)
''')
CLF = ["--shape", "X=N,D", "--labels", "y=N,C", "--shape", "W1=D,H", "--shape", "b1=H", "--shape", "W2=H,C",
       "--shape", "b2=C", "--shape", "reg=", "--wrt", "W2,b2"]
SHAPES = ["--shape", "x=N,D", "--shape", "y=N,O", "--shape", "w1=D,H", "--shape", "w2=H,O"]


@pytest.fixture()
def net(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(NET)
    return str(path)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_trace_prints_the_graph_and_its_derivation(capsys, net):
    code, out, err = run(capsys, "trace", f"{net}:loss", *SHAPES)
    assert code == 0, err
    assert out.splitlines()[:2] == ["h = sigmoid(x*w1)", "y_pred = h*w2"]
    code, out, _ = run(capsys, "trace", f"{net}:loss", *SHAPES, "--latex")
    assert out.startswith("\\begin{align*}\nh &= \\sigma\\left(x w_{1}\\right) \\\\\ny_{pred} &= h w_{2}")
    code, out, _ = run(capsys, "trace", f"{net}:loss", *SHAPES, "--wrt", "w1,w2")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("d/dw1 = x.T*") and any(l.startswith("d/dw2 = ") for l in lines)
    assert "where h = sigmoid(x*w1), y_pred = h*w2" in out
    code, out, _ = run(capsys, "trace", f"{net}:loss", *SHAPES, "--wrt", "w2", "--latex")
    assert code == 0 and out.startswith("\\begin{align*}") and "\\frac{\\partial L}{\\partial w_{2}}" in out


def test_backward_checked_symbolically_from_the_shell(capsys, net):
    code, out, err = run(capsys, "trace", f"{net}:loss", *SHAPES, "--wrt", "w1,w2", "--backward", f"{net}:backward")
    assert code == 0, err
    assert out.startswith("backward ok: symbolic") and "w1: proven" in out and "w2: proven" in out
    code, out, _ = run(capsys, "trace", f"{net}:loss", *SHAPES, "--wrt", "w1,w2", "--backward", f"{net}:buggy")
    assert code == 1 and "w1: proven" in out and "w2: refuted at entry" in out


def test_labels_and_an_in_place_backward(capsys, tmp_path):
    path = tmp_path / "clf.py"
    path.write_text(CLASSIFIER)
    code, out, err = run(capsys, "trace", f"{path}:loss", *CLF, "--backward", f"{path}:backward")
    assert code == 0, err
    assert out.startswith("backward ok: numeric") and "W2: consistent" in out and "not traced" in out
    code, out, _ = run(capsys, "trace", f"{path}:loss", *CLF, "--backward", f"{path}:buggy")
    assert code == 1 and "W2: refuted at entry" in out and "b2: consistent" in out
    code, out, _ = run(capsys, "trace", f"{path}:loss", *CLF)
    assert code == 0 and "d/dW2 = " in out and "softmax" in out


def test_a_forced_symbolic_check_that_cannot_trace_is_one_line(capsys, tmp_path):
    path = tmp_path / "clf.py"
    path.write_text(CLASSIFIER)
    code, _, err = run(capsys, "trace", f"{path}:loss", *CLF, "--backward", f"{path}:backward", "--method", "symbolic")
    assert code == 2 and "method='symbolic'): not traced" in err and err.count("\n") == 1


def test_backward_checked_numerically_from_the_shell(capsys, net):
    code, out, err = run(capsys, "trace", f"{net}:loss", *SHAPES, "--wrt", "w1,w2", "--backward", f"{net}:backward",
                         "--method", "numeric")
    assert code == 0, err
    assert out.startswith("backward ok: numeric") and "w1: consistent" in out and "w2: consistent" in out
    code, out, _ = run(capsys, "trace", f"{net}:loss", *SHAPES, "--wrt", "w1,w2", "--backward", f"{net}:buggy",
                       "--method", "numeric")
    assert code == 1 and "w1: consistent" in out and "w2: refuted at entry" in out and "constant factor 1/2" in out
    code, out, _ = run(capsys, "trace", f"{net}:loss", *SHAPES, "--wrt", "w1,w2", "--backward", f"{net}:buggy",
                       "--method", "numeric", "--latex")
    assert code == 1 and out.startswith("$") and r"\frac{\partial L}{\partial w_{2}}" in out


def test_a_scalar_shape_and_one_gradient(capsys, net):
    code, out, err = run(capsys, "trace", f"{net}:ridge", "--shape", "x=N,D", "--shape", "y=N,1", "--shape", "w=D,1",
                         "--shape", "lam=", "--wrt", "w", "--backward", f"{net}:ridge_backward", "--method", "numeric")
    assert code == 0 and "w: consistent" in out, err


@pytest.mark.parametrize("argv,message", [
    (["trace", "missing.py:loss", "--shape", "x=N"], "no such file: missing.py"),
    (["trace", "{net}:nope", "--shape", "x=N"], "has no function 'nope' (functions: backward, buggy, in_place, loss"),
    (["trace", "{net}", "--shape", "x=N"], "write FILE.py:FUNCTION"),
    (["trace", "{net}:loss", "--shape", "x:N,D"], "write NAME=SIZES, e.g. x=N,D (a scalar: lam=)"),
    (["trace", "{net}:loss", "--shape", "x=N,0"], "a size is a name (N) or a number"),
    (["trace", "{net}:loss", "--shape", "x=N", "--shape", "x=D"], "--shape x: x is given twice"),
    (["trace", "{net}:loss", "--labels", "y=N"], "write NAME=N,C (N labels of C classes)"),
    (["trace", "{net}:loss", *SHAPES, "--wrt", "W"], "unknown variable 'W' for --wrt; choose from: x, y, w1, w2"),
    (["trace", "{net}:loss", *SHAPES, "--backward", "{net}:backward"], "--backward needs --wrt"),
    (["trace", "{net}:loss", *SHAPES, "--method", "numeric"], "--method is for --backward"),
    (["trace", "{net}:loss", *SHAPES, "--wrt", "w1", "--backward", "{net}:gone"], "--backward: "),
])
def test_bad_input_is_one_line_and_exit_2(capsys, net, argv, message):
    code, out, err = run(capsys, *[a.replace("{net}", net) for a in argv])
    assert code == 2 and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_file_that_fails_to_import_is_one_line(capsys, tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("import numpy as np\nraise RuntimeError('boom')\n")
    code, _, err = run(capsys, "trace", f"{bad}:f", "--shape", "x=N")
    assert code == 2 and "importing" in err and "RuntimeError: boom" in err


def test_the_console_script_runs_it(net):
    out = subprocess.run([sys.executable, "-m", "symgrad", "trace", f"{net}:loss", *SHAPES, "--wrt", "w1,w2",
                          "--backward", f"{net}:buggy", "--method", "numeric"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "w2: refuted" in out.stdout, out.stderr
    assert np.isfinite(float(out.stdout.split("expected ")[1].split(",")[0]))
