"""report: the catalog's derivations laid out for the page (no overfull line in the PDF), the
vectorized textbook forms in it, and cross-checks that pass for right forms and fail for wrong ones."""

import re
import shutil
import subprocess

import pytest
import sympy as sp

import symgrad as sg
from symgrad.catalog import get_block
from symgrad.export.document import compile_pdf
from symgrad.printing.tex import latex_width
from symgrad.report import WIDTH, _PREAMBLE, _top_level_parts, build_report, display, write_latex

needs_latex = pytest.mark.skipif(shutil.which("pdflatex") is None or shutil.which("pdftotext") is None,
                                 reason="pdflatex/pdftotext not installed")


def _overfull(log: str, over: float = 5.0) -> list[float]:
    """The widths (pt) by which lines stick out of the page, as pdflatex reports them."""
    return [float(w) for w in re.findall(r"Overfull \\hbox \(([0-9.]+)pt too wide\)", log) if float(w) > over]


def test_display_splits_a_wide_identity_where_its_author_separated_the_parts():
    narrow = r"\frac{\partial L}{\partial W} = \mathbf{g}\,\mathbf{x}^{\top}"
    assert display(narrow) == rf"\[ {narrow} \]"
    wide = ",\\quad ".join([r"\frac{\partial L}{\partial W_{%d}} = 2 W_{%d} \mathbf{x}\mathbf{x}^{\top}" % (i, i)
                            for i in range(1, 9)])
    shown = display(wide)
    assert shown.startswith("\\begin{gather*}") and shown.count("\\\\\n") >= 1
    rows = shown.splitlines()[1:-1]
    assert all(latex_width(r.rstrip(" \\")) <= WIDTH for r in rows)
    assert "".join(shown.split()).count("W_{8}") == 2  # nothing lost


def test_parts_are_split_at_the_top_level_only():
    tex = r"a \left(x \quad y\right),\quad b {c \quad d}\qquad e"
    assert _top_level_parts(tex) == [("", r"a \left(x \quad y\right)"), (r",\quad ", r"b {c \quad d}"),
                                     (r"\qquad ", "e")]


def test_the_report_derives_and_cross_checks_the_vector_blocks():
    names = ["softmax", "log_softmax", "dense", "sq_norm_linear", "lp_pool", "log_avg_pool",
             "logistic_regression", "softmax_regression", "mlp"]
    report = build_report([get_block(n) for n in names])
    assert [r.status for r in report.rows] == ["ok"] * len(names), [r.detail for r in report.rows]
    shown = {r.block: r.derivative for r in report.rows}
    assert shown["sq_norm_linear"] == "2*W*x*x.T" and shown["dense"] == "g*x.T"
    assert shown["softmax"] == "diag(a) - a*a.T" and shown["logistic_regression"] == "(a - y)*x"
    assert "Matrix(" not in "".join(shown.values())


def test_the_matrix_cross_check_rejects_a_wrong_form():
    """Both the matrix gradient and the scalar bias next to it are compared, entry by entry."""
    ex = get_block("logistic_regression").build()
    d = sg.derive(ex.expr, list(ex.wrt))
    assert d.check(domain=ex.domain).ok
    (gw, gb) = d.result
    d.result = (gw, gb + sp.Rational(1, 1000))
    assert not d.check(domain=ex.domain).ok
    ex = get_block("softmax_regression").build()
    d = sg.derive(ex.expr, list(ex.wrt))
    assert d.check().ok
    gW, gb = d.result
    d.result = (2 * gW, gb)
    assert not d.check().ok


def _document(body: str) -> str:
    return _PREAMBLE + body + "\n\\end{document}\n"


@needs_latex
def test_long_lines_are_broken_so_that_nothing_sticks_out(tmp_path):
    xs = sp.symbols("x1:13", real=True)
    d = sg.derive(sp.Add(*[sg.sigmoid(xs[0] * v) * v ** 2 for v in xs]), xs[0])
    (tmp_path / "one_line.tex").write_text(_document("{\\small\n" + d.latex() + "\n}"))
    (tmp_path / "paged.tex").write_text(_document("{\\small\n" + d.latex(width=WIDTH) + "\n}"))
    compile_pdf(tmp_path / "one_line.tex")
    compile_pdf(tmp_path / "paged.tex")
    assert _overfull((tmp_path / "one_line.log").read_text(errors="replace"))  # the check can fail
    assert not _overfull((tmp_path / "paged.log").read_text(errors="replace"))


@needs_latex
def test_the_report_pdf_has_no_overfull_line_and_shows_the_vectorized_forms(tmp_path):
    names = ["softmax", "dense", "sq_norm_linear", "lp_pool", "logistic_regression", "softmax_regression", "mlp"]
    report = build_report([get_block(n) for n in names])
    pdf = compile_pdf(write_latex(report, tmp_path))
    assert not _overfull((tmp_path / "report.log").read_text(errors="replace"))
    text = "".join(subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                                  check=True).stdout.split())
    for expected in ["=2Wxx", "=diag(a)−aa", "=(a−y)x", "◦h◦(1−h)", "textbookform"]:
        assert expected in text, expected
