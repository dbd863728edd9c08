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
