"""pipeline and report: the whole path on one expression and on the catalog."""

import sympy as sp

import symgrad as sg
from symgrad.report import build_report, format_table, write_latex

x = sp.Symbol("x", real=True)


def test_run_gives_every_stage():
    out = sg.run(sg.softplus(x), x)
    assert out.derivation.result == sg.sigmoid(x)
    assert out.function(x=0.0) == 0.5
    assert out.check.ok
    assert "\\operatorname{softplus}" in out.latex or "\\sigma" in out.latex


def test_report_rows_and_table(tmp_path):
    report = build_report([sg.get_block("relu"), sg.get_block("lp_pool")])
    assert report.ok and [r.block for r in report.rows] == ["relu", "lp_pool"]
    table = format_table(report)
    assert "step(x)" in table and "2/2 blocks" in table
    tex = write_latex(report, tmp_path).read_text()
    assert r"\section*{lp pool}" in tex and "\\begin{align*}" in tex
