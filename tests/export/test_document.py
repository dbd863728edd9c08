"""Documents: the report compiles with the real pdflatex, safely; Markdown; worked examples."""

import shutil
import subprocess

import pytest

from symgrad.cli import main
from symgrad.export.document import compile_pdf, worked_examples
from symgrad.errors import SymgradLimit

import os

_missing = shutil.which("pdflatex") is None or shutil.which("pdftotext") is None
if _missing and os.environ.get("SYMGRAD_REQUIRE_LATEX"):
    raise RuntimeError("SYMGRAD_REQUIRE_LATEX is set but pdflatex/pdftotext are missing")
needs_latex = pytest.mark.skipif(_missing, reason="pdflatex/pdftotext not installed (CI installs them)")


def test_worked_examples_carry_the_seeds_numbers():
    examples = dict(worked_examples())
    circuit = next(v for k, v in examples.items() if k.startswith("The circuit"))
    assert r"\frac{\partial f}{\partial x} &= z = -4" in circuit
    vectorized = next(v for k, v in examples.items() if k.startswith("The vectorized"))
    assert "0.088" in vectorized and "0.636" in vectorized


@needs_latex
def test_the_report_compiles_and_its_pdf_contains_the_derivations(tmp_path, capsys):
    assert main(["report", "-o", str(tmp_path), "--quiet", "--pdf"]) == 0
    text = subprocess.run(["pdftotext", str(tmp_path / "report.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    squeezed = "".join(text.split())  # pdftotext's spacing varies
    for expected in ["σ′(x)=σ(x)(1−σ(x))", "=σ(x)(1−σ(x))", "textbookform", "x(a−y)",
                     "notes’workedexamples", "0.088", "−0.112", "localgradient", "2hT(hW2−y)"]:
        assert expected in squeezed, expected


@needs_latex
def test_pdflatex_runs_without_shell_escape_and_reads_nothing_outside(tmp_path):
    tex = tmp_path / "evil.tex"
    tex.write_text("\\documentclass{article}\\begin{document}\\immediate\\write18{touch pwned}"
                   "\\input{/etc/hostname}\\end{document}\n")
    with pytest.raises(SymgradLimit):
        compile_pdf(tex, timeout=60)
    assert not (tmp_path / "pwned").exists()


def test_without_pdflatex_the_message_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    tex = tmp_path / "r.tex"
    tex.write_text("x")
    with pytest.raises(SymgradLimit, match="apt-get install"):
        compile_pdf(tex)


def test_markdown_report(tmp_path, capsys):
    assert main(["report", "-o", str(tmp_path), "--quiet", "--format", "md", "--only", "sigmoid"]) == 0
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# symgrad") and "$$" in md and "\\begin{aligned}" in md and "align*" not in md
