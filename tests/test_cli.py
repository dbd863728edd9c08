"""cli: catalog, derive, report; bad input is one line and exit code 2."""

import json
import subprocess
import sys

import pytest

from symgrad.catalog import blocks
from symgrad.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_catalog_lists_every_block(capsys):
    code, out, _ = run(capsys, "catalog")
    assert code == 0
    for b in blocks():
        assert b.name in out and b.formula in out
    code, out, _ = run(capsys, "catalog", "--json", "--family", "loss")
    assert {e["name"] for e in json.loads(out)} == {b.name for b in blocks("loss")}


def test_derive_a_block(capsys):
    code, out, _ = run(capsys, "derive", "sigmoid")
    assert code == 0 and out.splitlines()[0] == "d/dx = sigmoid(x)*(1 - sigmoid(x))"


def test_derive_an_expression_in_every_format(capsys):
    code, out, _ = run(capsys, "derive", "bce(sigmoid(w*x + b), y)", "--wrt", "w")
    assert code == 0 and "x*(a - y)" in out and "a = sigmoid(b + w*x)" in out
    code, out, _ = run(capsys, "derive", "1/(1+exp(-x))", "--latex")
    assert out.startswith("\\begin{align*}") and "\\sigma" in out
    code, out, _ = run(capsys, "derive", "relu(x)*y", "--wrt", "x,y", "--json")
    data = json.loads(out)
    assert data["result"] == ["y*step(x)", "relu(x)"] and data["wrt"] == ["x", "y"]
    code, out, _ = run(capsys, "derive", "softplus(x)", "--python")
    namespace: dict = {}
    exec(compile(out, "generated", "exec"), namespace)  # noqa: S102 - our own generated module
    assert namespace["gradient"](0.0) == 0.5


def test_derive_a_block_input_by_name(capsys):
    code, out, _ = run(capsys, "derive", "sq_norm_linear", "--wrt", "x")
    assert code == 0 and out.startswith("d/dx = 2*W.T*W*x")
    code, out, _ = run(capsys, "derive", "sq_norm_linear", "--wrt", "x", "--entries")
    assert code == 0 and out.startswith("d/d[x1, x2] = Matrix(")


@pytest.mark.parametrize("argv,message", [
    (["derive", "sigmod"], "unknown block 'sigmod'; did you mean sigmoid"),
    (["derive", "x**2 + y", "--wrt", "q"], "unknown variable 'q' for --wrt; choose from: x, y"),
    (["derive", "sigmoid", "--nope"], "unrecognized arguments"),
    (["frobnicate"], "invalid choice"),
    (["derive", "x**2 +", "--wrt", "x"], "malformed expression"),
    (["derive", "x.__class__", "--wrt", "x"], "refused attribute access"),
    (["derive", "foo(x)", "--wrt", "x"], "unknown function 'foo'"),
    (["derive", "x*y"], "--wrt"),
    (["derive", "sigmoid", "--wrt", "nope"], "unknown variable 'nope'"),
    (["report", "--only", "nothing_here"], "unknown block"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_values_beginning_with_minus_are_values(capsys):
    code, out, _ = run(capsys, "derive", "-x**3", "--wrt", "x")
    assert code == 0 and "-3*x**2" in out


def test_report_writes_latex_and_exits_0(capsys, tmp_path):
    code, out, err = run(capsys, "report", "-o", str(tmp_path), "--only", "sigmoid,softmax_regression")
    assert code == 0
    assert "1/2] sigmoid" in err and "2/2 blocks cross-checked" in out
    tex = (tmp_path / "report.tex").read_text()
    assert tex.startswith("\\documentclass") and tex.rstrip().endswith("\\end{document}")
    assert json.loads((tmp_path / "report.json").read_text())["ok"] is True


def test_report_exits_1_when_a_cross_check_fails(capsys, tmp_path, monkeypatch):
    import symgrad.report as report

    real = report.run_block

    def broken(block, **kw):
        outcome = real(block, **kw)
        outcome.check.ok = False
        return outcome

    monkeypatch.setattr(report, "run_block", broken)
    code, out, _ = run(capsys, "report", "-o", str(tmp_path), "--only", "relu", "--quiet")
    assert code == 1 and "FAILED" in out


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "symgrad", "derive", "tanh"], capture_output=True, text=True)
    assert out.returncode == 0 and "1 - tanh(x)**2" in out.stdout


@pytest.mark.parametrize("argv,line", [
    (["sq_norm_linear", "--wrt", "W"], r"\frac{\partial L}{\partial W} &= 2 W \mathbf{x} \mathbf{x}^{T}"),
    (["softmax"], r"&= \operatorname{diag}\left(\mathbf{a}\right) - \mathbf{a} \mathbf{a}^{T}"),
    (["logistic_regression", "--wrt", "w"], r"\frac{\partial L}{\partial \mathbf{w}} &= \left(a - y\right) \mathbf{x}"),
    (["mlp", "--wrt", "W1"], r"\circ \mathbf{h} \circ \left(\mathbf{1} - \mathbf{h}\right)\right) \mathbf{x}^{T}"),
])
def test_derive_prints_the_vectorized_textbook_line(capsys, argv, line):
    code, out, _ = run(capsys, "derive", *argv, "--latex")
    textbook = [ln for ln in out.splitlines() if "textbook form" in ln]
    assert code == 0 and len(textbook) == (1 if "--wrt" in argv or argv == ["softmax"] else 2)
    assert line in textbook[-1] and "begin{matrix}" not in out


def test_derive_entries_gives_the_grid_and_wrt_names_the_whole_vector(capsys):
    code, out, _ = run(capsys, "derive", "logistic_regression", "--wrt", "w")
    assert code == 0 and out.splitlines()[:2] == ["d/dw = (sigmoid(w.T*x + b) - y)*x", "  = (a - y)*x"]
    code, out, _ = run(capsys, "derive", "softmax", "--entries")
    assert code == 0 and out.startswith("d/d[z1, z2, z3] = Matrix(") and "a1*(1 - a1)" in out
    code, _, err = run(capsys, "derive", "sigmoid", "--entries")
    assert code == 2 and "no entries form" in err
    code, _, err = run(capsys, "derive", "x**2", "--wrt", "x", "--entries")
    assert code == 2 and "--entries is for a catalog block" in err


# --- issue 11: every bound honoured, every input validated ----------------------------------------
def _one_line_error(code, out, err):
    assert code == 2 and "Traceback" not in out + err and "internal error" not in err
    assert err.startswith("symgrad: error:") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [
    ["verify", "x**2", "--wrt", "x", "--claim", "2*x", "--timeout", "nan"],
    ["verify", "x**2", "--wrt", "x", "--claim", "2*x", "--timeout", "-1"],
    ["verify", "x**2", "--wrt", "x", "--claim", "2*x", "--timeout", "0"],
    ["verify", "x**2", "--wrt", "x", "--claim", "2*x", "--timeout", "inf"],
    ["derive", "x**2", "--timeout", "nan"],
    ["verify", "x**2", "--wrt", "x", "--claim", "2*x", "--positive", "3$"],
    ["verify", "x**2", "--wrt", "x", "--claim", "2*x", "--positive", "b"],
    ["verify", "x**2", "--wrt", "x", "--claim", "2*x", "--positive", ","],
    ["verify", "x**2", "--wrt", "x", "--claim", "1/0"],
    ["verify", "x**2", "--wrt", "x", "--claim", r"\frac{1}{0}"],
    ["verify", "x**2", "--wrt", "x", "--claim", r"\sqrt[0]{x}"],
    ["verify", "x**2", "--wrt", "x", "--claim", r"\mathbf{__import__}"],
    ["verify", "x**2", "--wrt", "__x", "--claim", "2*x"],
    ["verify", "x.T*x", "--wrt", "x", "--matrix", "x:n", "--claim", "2*x"],
    ["derive", "x/0"],
    ["derive", "log(0)*x"],
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv):
    _one_line_error(*run(capsys, *argv))


@pytest.mark.parametrize("where", ["folder", "missing", "proc"])
def test_unwritable_outputs_are_one_line_and_exit_2(capsys, tmp_path, where):
    path = {"folder": str(tmp_path), "missing": str(tmp_path / "no" / "g.py"), "proc": "/proc/g.py"}[where]
    _one_line_error(*run(capsys, "export", "x**2", "--wrt", "x", "-o", path))
    if where != "folder":
        _one_line_error(*run(capsys, "plot", "relu", "-o", path.replace(".py", ".png")))


def test_report_output_that_is_a_file_is_refused(capsys, tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    _one_line_error(*run(capsys, "report", "--only", "relu", "-o", str(f)))


@pytest.mark.parametrize("claim", [r"\sum_{i=1}^{10^{12}} x_i", r"{{10^{999}}^{999}}^{999}"])
def test_verify_honours_the_timeout(capsys, claim):
    import time

    t0 = time.perf_counter()
    code, out, err = run(capsys, "verify", "x**2", "--wrt", "x", "--claim", claim, "--timeout", "3")
    assert time.perf_counter() - t0 < 4.0
    assert code in (1, 2, 3) and "Traceback" not in out + err


def test_verify_matrix_claims_with_declared_shapes(capsys):
    base = ["verify", "x.T*W*x", "--wrt", "x", "--matrix", "W:n,n", "--matrix", "x:n,1"]
    code, out, _ = run(capsys, *base, "--claim", r"(W + W^\top) x")
    assert code == 0, out
    code, out, _ = run(capsys, *base, "--claim", "2 W x")
    assert code == 1 and "counterexample" in out
    code, out, _ = run(capsys, *base, "--claim", "W.T*x + transpose(W)*x + W*x - W.T*x")
    assert code == 0, out
    code, out, _ = run(capsys, "verify", "lambda/2*sq_frobenius(W)", "--wrt", "W", "--matrix", "W:n,n",
                       "--claim", r"\lambda W")
    assert code == 0, out
    code, out, _ = run(capsys, "verify", "sq_frobenius(W*x)", "--wrt", "W", "--matrix", "W:n,n", "--matrix", "x:n,1",
                       "--claim", r"\|Wx\|^2")
    assert code == 1 and "shape" in out


def test_verify_far_from_zero_relu_claim_exits_1(capsys):
    code, out, _ = run(capsys, "verify", "x**2", "--wrt", "x", "--claim", "2*x + relu(x-4)")
    assert code == 1 and "counterexample" in out and "j)" not in out


def test_a_symbol_named_self_compiles(capsys):
    import symgrad as sg

    f = sg.derive("self*x**2", "x").compile()
    assert f(self=2.0, x=3.0) == 12.0


def test_verify_a_block_with_its_default_parameter(capsys):
    code, out, _ = run(capsys, "verify", "leaky_relu", "--wrt", "x", "--claim", "Piecewise((1, x > 0), (1/100, True))")
    assert code == 0 and "default" in out, out
    code, out, _ = run(capsys, "verify", "leaky_relu", "--wrt", "x", "--claim", "Piecewise((1, x > 0), (alpha, True))")
    assert code == 0, out
    code, out, _ = run(capsys, "verify", "leaky_relu", "--wrt", "x", "--claim", "Piecewise((1, x > 0), (1/10, True))")
    assert code == 1, out
