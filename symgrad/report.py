"""The main job: derive, simplify, compile and cross-check every catalog block, print a
table, and write the LaTeX of every derivation (``symgrad report``)."""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence


from .catalog.registry import Block, blocks
from .pipeline import Outcome, run_block
import sympy as sp

from .printing.plain import escape_text, text
from .printing.tex import latex_width
from .export.document import worked_examples
from .export.document import latex_to_markdown

__all__ = ["Row", "Report", "build_report", "format_table", "write_latex", "write_markdown", "display",
           "derivation_tex", "WIDTH"]


@dataclass
class Row:
    """One line of the report table."""

    block: str
    family: str
    derivative: str
    max_rel_error: float | None
    status: str  # "ok" | "FAILED" | "ERROR"
    seconds: float
    detail: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.status == "ok" for r in self.rows)


def _short(text: str, width: int = 48) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def build_report(selection: Sequence[Block] | None = None,
                 progress: Callable[[int, int, str], None] | None = None) -> Report:
    """Run the pipeline on every block (or ``selection``), calling ``progress(i, n, name)``."""
    chosen = list(selection) if selection is not None else blocks()
    report = Report()
    started = time.perf_counter()
    for i, block in enumerate(chosen, start=1):
        if progress:
            progress(i, len(chosen), block.name)
        t0 = time.perf_counter()
        try:
            outcome = run_block(block)
        except Exception as exc:  # a block that cannot be derived is a failed row, not a crash
            report.rows.append(Row(block.name, block.family, "", None, "ERROR",
                                   time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"))
            continue
        d = outcome.derivation
        # the shorter of the result and the result written with the intermediates' names (a = σ(z))
        shown = min(text(d.results[0]), text(d.named if d.single else d.named[0]), key=len)
        check = outcome.check
        report.outcomes[block.name] = outcome
        report.rows.append(Row(block.name, block.family, shown, check.max_rel_error,
                               "ok" if check.ok else "FAILED", time.perf_counter() - t0,
                               "" if check.ok else str(check)))
    report.seconds = time.perf_counter() - started
    return report


def format_table(report: Report) -> str:
    """The report as an aligned text table."""
    header = f"{'block':<22} {'derivative (textbook form)':<48} {'max rel err':>11}  status"
    lines = [header, "-" * len(header)]
    for r in report.rows:
        err = f"{r.max_rel_error:.1e}" if r.max_rel_error is not None else "-"
        lines.append(f"{r.block:<22} {_short(r.derivative):<48} {err:>11}  {r.status}")
        if r.detail:
            lines.append(f"    {r.detail}")
    passed = sum(r.status == "ok" for r in report.rows)
    lines.append(f"{passed}/{len(report.rows)} blocks cross-checked in {report.seconds:.1f} s")
    return "\n".join(lines)


_PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage[margin=2cm]{geometry}
\usepackage{amsmath,amssymb,graphicx}
\allowdisplaybreaks
\title{symgrad: the catalog's derivatives}
\date{}
\begin{document}
\maketitle
Every derivative below was derived symbolically, brought to textbook form, compiled to
NumPy and cross-checked against 40-digit finite differences of the forward expression.
"""


WIDTH = 72  # characters of math on a line of the report (\small, A4 with 2 cm margins: 484 pt, ≤ 6.7 pt each)


def display(tex: str, width: float = WIDTH) -> str:
    r"""A declared formula as a display: one line, or — wider than the page — one line per
    part, split where its author separated the parts (``,\quad``)."""
    parts = _top_level_parts(tex)
    if latex_width(tex) <= width or len(parts) == 1:
        return rf"\[ {tex} \]"
    lines = [parts[0][1]]
    for sep, part in parts[1:]:
        if latex_width(lines[-1] + part) + 3 <= width:
            lines[-1] += f"{sep}{part}"
        else:
            lines.append(part)
    return "\\begin{gather*}\n" + " \\\\\n".join(lines) + "\n\\end{gather*}"


def _top_level_parts(tex: str) -> list[tuple[str, str]]:
    """``tex`` split at its top-level ``\\quad`` separators (outside braces and \\left…\\right):
    (the separator before, the part) for each part."""
    parts, depth, start, sep = [], 0, 0, ""
    for match in re.finditer(r"\\left\b|\\right\b|[{}]|,?\s*\\q?quad(?![a-zA-Z])", tex):
        token = match.group()
        if token in ("{", r"\left"):
            depth += 1
        elif token in ("}", r"\right"):
            depth -= 1
        elif depth == 0:
            parts.append((sep, tex[start:match.start()].strip()))
            start, sep = match.end(), token + " "
    parts.append((sep, tex[start:].strip()))
    return [(sep, part) for sep, part in parts if part]


def derivation_tex(outcome: Outcome, width: float = WIDTH) -> str:
    """The derivation of an outcome laid out for the page (broken lines, notes in the margin)."""
    d = outcome.derivation
    raw = all(r is None or sp.count_ops(r) <= 120 for r in d.raws)
    return d.latex(raw=raw, width=width)


def write_latex(report: Report, out_dir: str | Path) -> Path:
    """Write ``report.tex`` (a standalone article) and ``report.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = [_PREAMBLE]
    by_name = {b.name: b for b in blocks()}
    for row in report.rows:
        block = by_name.get(row.block)
        parts.append(rf"\section*{{{escape_text(row.block.replace('_', ' '))}}}")
        if block is not None:
            parts.append(display(block.latex))
            parts.append("Declared identity: " + display(block.derivative))
        outcome = report.outcomes.get(row.block)
        if outcome is not None:
            parts.append("Derivation:")
            parts.append(r"{\small" + "\n" + derivation_tex(outcome) + "\n}")
            err = f"{row.max_rel_error:.1e}" if row.max_rel_error is not None else "n/a"
            parts.append(rf"Cross-check: \texttt{{{row.status}}}, maximum relative error {err}.")
        else:  # ragged: a long message breaks between words (typewriter spaces do not stretch)
            parts.append(rf"{{\raggedright\textbf{{Error}}: \texttt{{{escape_text(row.detail)}}}\par}}")

    parts.append(r"\section*{The lecture notes' worked examples}")
    for title, body in worked_examples(WIDTH):
        parts.append(rf"\subsection*{{{escape_text(title)}}}")
        parts.append(r"{\small" + "\n" + body + "\n}")
    parts.append(r"\end{document}")
    tex = out / "report.tex"
    tex.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    (out / "report.json").write_text(json.dumps(
        {"ok": report.ok, "seconds": report.seconds, "rows": [asdict(r) for r in report.rows]},
        indent=2), encoding="utf-8")
    return tex


def write_markdown(report: Report, out_dir: str | Path) -> Path:
    """``report.md``: the same derivations as Markdown with $$…$$ math."""

    blocks = [(row.block, report.outcomes[row.block].latex) for row in report.rows if row.block in report.outcomes]
    blocks += worked_examples()
    path = Path(out_dir) / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(latex_to_markdown("symgrad: the catalog's derivatives", blocks), encoding="utf-8")
    return path
