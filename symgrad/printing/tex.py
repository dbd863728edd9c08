"""LaTeX: symgrad's printer (a SymPy ``LatexPrinter`` subclass) and derivations as ``align*``.

Blocks print through their own ``_latex`` methods (σ, ReLU, softmax…); this printer adds
what SymPy lacks: symbol names are escaped (a name can never inject LaTeX commands),
layer-indexed names print in the seeds' notation (``W1_11`` → ``W^{[1]}_{11}``), and
``derivation_latex`` writes a derivation as an ``align*``, one step per line.
"""

from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement
from .plain import LAYER_NAME
from .plain import PLAIN_NAME
from .plain import add_terms
from .plain import applied
from .plain import names_in
from .plain import renamed_function
from .plain import column_view
from .plain import diag_vector
from .plain import escape_text
from .plain import is_sum
from .plain import matadd
from .plain import one_by_one
from .plain import row_view
from .plain import sums_last
from .plain import textbook_add
from .plain import textbook_mul
from sympy.printing.latex import LatexPrinter
from ..simplify.rules import elementary

__all__ = ["SymgradLatexPrinter", "latex", "derivation_latex", "latex_width", "backprop_latex"]


class SymgradLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer with safe symbol names and the seeds' notation.

    Settings beyond SymPy's: ``bold_vectors`` (column-vector MatrixSymbols as \\mathbf{x}),
    ``upright_matrices`` (matrices as \\mathrm{W})."""

    _default_settings = {**LatexPrinter._default_settings, "bold_vectors": True, "upright_matrices": False}

    def doprint(self, expr):
        self._taken = names_in(expr)  # an elementwise function's bound variable is none of these
        return super().doprint(expr)

    def _print(self, expr, **kwargs):
        row = row_view(expr)
        return super()._print(row if row is not None else expr, **kwargs)

    def _print_MatrixSymbol(self, expr, style="plain"):
        name = self._print(sp.Symbol(expr.name))
        rows, cols = expr.shape
        if self._settings["bold_vectors"] and cols == 1 and rows != 1:
            base, sub, rest = name.partition("_{")  # b1 → \mathbf{b}_{1}: the index is not bold
            return rf"\mathbf{{{base}}}_{{{rest}" if sub and base.isalpha() else rf"\mathbf{{{name}}}"
        if self._settings["upright_matrices"] and cols != 1 and rows != 1 and "{" not in name:
            return rf"\mathrm{{{name}}}"
        return name

    def _print_Add(self, expr, order=None):
        return textbook_add(self, expr, LatexPrinter._print_Add, order)

    def _print_Mul(self, expr):
        return textbook_mul(self, expr, LatexPrinter._print_Mul)

    def _print_MatAdd(self, expr):
        return matadd(self, expr, lambda t: rf"\left({self._print(t)}\right)" if isinstance(t, sp.MatAdd) else self._print(t))

    def _print_HadamardProduct(self, expr):
        def paren(a):
            tex = self._print(a)
            return rf"\left({tex}\right)" if isinstance(a, (sp.MatAdd, sp.MatMul, sp.HadamardProduct)) else tex
        return r" \circ ".join(paren(a) for a in sums_last(expr.args))

    def _print_ElementwiseApplyFunction(self, expr):
        form = applied(expr)
        if form is not None:
            return self._print(form)
        return super()._print_ElementwiseApplyFunction(renamed_function(self, expr)[0])  # u ↦ …, not _entry ↦ …

    def _print_DiagMatrix(self, expr):
        return rf"\operatorname{{diag}}\left({self._print(diag_vector(expr))}\right)"

    def _print_Identity(self, expr):
        return "I"

    def _print_MatrixElement(self, expr):
        if one_by_one(expr.parent):  # wᵀx as a number: no subscript 0,0
            return self._print(expr.parent)
        return super()._print_MatrixElement(expr)

    def _print_Pow(self, expr):
        base = expr.base
        if isinstance(base, MatrixElement) and one_by_one(base.parent) and not isinstance(base.parent, sp.MatrixSymbol):
            tex = self._print(base.parent)  # (1ᵀx^{∘p})^{1/p}: SymPy parenthesizes a base with a superscript
            shown = _Shown(tex if "^" in tex else rf"\left({tex}\right)")
            return super()._print_Pow(sp.Pow(shown, expr.exp, evaluate=False))
        return super()._print_Pow(expr)

    def _print_Transpose(self, expr):
        if isinstance(expr.arg, sp.Transpose):  # (aᵀ)ᵀ is a
            return self._print(expr.arg.arg)
        column = column_view(expr)
        return self._print(column) if column is not None else super()._print_Transpose(expr)

    def _print_OneMatrix(self, expr):
        if expr.rows == 1 and expr.cols != 1:
            return r"\mathbf{1}^{T}"
        return r"\mathbf{1}" if expr.cols == 1 and expr.rows != 1 else "1"

    def _print_Symbol(self, expr, style="plain"):
        name = expr.name
        layer = LAYER_NAME.match(name)
        if layer:
            base, lay, idx = layer.groups()
            return f"{self._deal_with_super_sub(base)}^{{[{lay}]}}_{{{idx}}}"
        if PLAIN_NAME.match(name):
            return super()._print_Symbol(expr, style=style)
        return rf"\text{{{escape_text(name)}}}"

    _print_Dummy = _print_Symbol

    def _print_IndexedBase(self, expr):
        return self._print(expr.label)


def latex(expr: sp.Basic, **settings) -> str:
    r"""The LaTeX of ``expr`` with symgrad's printer: ``latex(sigmoid(x))`` → ``\sigma\left(x\right)``."""
    return SymgradLatexPrinter(settings).doprint(expr)


def _tex(obj: sp.Basic, d: str = r"\partial", **settings) -> str:
    if isinstance(obj, sp.Derivative):  # ∂L/∂w: a fraction of names, not SymPy's d/dx form
        (var, count), = obj.variable_count
        num = latex(obj.expr, **settings) if isinstance(obj.expr, (sp.Symbol, sp.MatrixSymbol)) else ""
        if num:
            return rf"\frac{{{d} {num}}}{{{d} {latex(var, **settings)}}}"
        return rf"\frac{{{d}}}{{{d} {latex(var, **settings)}}} {latex(obj.expr, **settings)}"
    return latex(obj, **settings)


def derivation_latex(derivation, *, numbered: bool = False, raw: bool = True,
                     form: str = "textbook", partial: bool = True, bold_vectors: bool = True,
                     upright_matrices: bool = False, width: float | None = None) -> str:
    r"""The derivation as an ``align*`` (``align`` when numbered), one step per line:
    local gradients, their product, the plain SymPy form (``raw=True``) and the textbook
    form, for each variable; then the intermediates that appear and the assumptions.

    ``form="expanded"`` writes the blocks out (σ(z) → 1/(1 + e^{−z})); ``partial=False`` uses
    d instead of ∂; ``bold_vectors`` and ``upright_matrices`` style matrix symbols.
    ``width`` (about the number of characters of a line, see :func:`latex_width`) lays the
    derivation out for a page: a longer line is broken after a term of its sum or between the
    factors of its product, a grid wider than the page is written entry by entry, the notes move
    to the margin (``\tag*``), the "where" clause becomes a list, and what still cannot be broken
    is scaled to the line (``\resizebox``: the document needs graphicx)."""

    if form not in ("textbook", "expanded"):
        raise ValueError("form must be 'textbook' or 'expanded'")
    env = "align" if numbered else "align*"
    settings = {"bold_vectors": bold_vectors, "upright_matrices": upright_matrices}
    d = r"\partial" if partial else "d"
    show = (lambda e: elementary(e)) if form == "expanded" else (lambda e: e)  # noqa: E731
    steps = [st for st in derivation.steps if st.kind != "goal" and (raw or st.kind != "raw")]
    lines = _render(_step_rows(steps, show, d, settings, width), width)
    shown = set().union(*[st.rhs.free_symbols | st.lhs.free_symbols for st in steps])
    used = {k: v for k, v in derivation.intermediates.items() if k in shown}
    if used:
        lines += _where_lines(used, show, d, settings, width)
    for assumption in derivation.assumptions:
        for part in _wrap_text(f"using {assumption}", None if width is None else width - 2):
            lines.append(rf"&\text{{{escape_text(part)}}}")
    body = " \\\\\n".join(lines)
    return f"\\begin{{{env}}}\n{body}\n\\end{{{env}}}"


def _step_rows(steps, show, d: str, settings: dict, width: float | None) -> list[tuple[str, list[str], str]]:
    """(lhs, the rhs in lines, note) for each step; a repeated lhs is left out."""
    rows: list[tuple[str, list[str], str]] = []
    previous_lhs = None
    for step in steps:
        lhs = _tex(step.lhs, d, **settings)
        budget = None if width is None else width - latex_width(lhs) - 3
        rhs = step.rhs if step.kind == "factorisation" else show(step.rhs)
        if step.kind == "factorisation":
            pieces = _pack([_tex(f, d, **settings) for f in rhs], budget, r" \cdot ")
        elif budget is not None and isinstance(rhs, sp.MatrixBase) and latex_width(_tex(rhs, d, **settings)) > budget:
            rows += _entry_rows(lhs, rhs, width, d, settings, _note(step))  # a grid wider than the page
            previous_lhs = None
            continue
        else:
            pieces = _pieces(rhs, budget, d, settings)
        rows.append(("" if lhs == previous_lhs else lhs, pieces, _note(step)))
        previous_lhs = lhs
    return rows


def _render(rows, width: float | None) -> list[str]:
    """Rows as align lines: the note in a column (one line per step), or in the margin (paged)."""
    lines = []
    for lhs, pieces, note in rows:
        if width is None:
            lines.append(rf"{lhs} &= {' '.join(pieces)} && \text{{{escape_text(note)}}}")
            continue
        tag = rf" \tag*{{\text{{{escape_text(note)}}}}}" if note else ""
        lines.append(rf"{lhs} &= {_fit(pieces[0], width - latex_width(lhs) - 3, width)}{tag}")
        lines += [rf"&\quad {{}} {_fit(p, width - 6, width)}" for p in pieces[1:]]
    return lines


def _where_lines(used: dict, show, d: str, settings: dict, width: float | None) -> list[str]:
    """"where a = …, h = …": one line, or — longer than the page — a list, one definition a line."""
    definitions = [f"{latex(k, **settings)} = {latex(show(v), **settings)}" for k, v in used.items()]
    one_line = ",\\ ".join(definitions)
    if width is None or latex_width(one_line) <= width - 6:
        return [rf"&\text{{where }} {one_line}"]
    lines = []
    for i, (k, v) in enumerate(used.items()):
        name = f"{latex(k, **settings)} = "
        pieces = _pieces(show(v), width - 8 - latex_width(name), d, settings)
        lead = r"\text{where }" if i == 0 else r"\phantom{\text{where }}"
        comma = "," if i < len(used) - 1 else ""
        pieces[-1] += comma
        lines.append(rf"&{lead} {name}{_fit(pieces[0], width - 8 - latex_width(name), width)}")
        lines += [rf"&\phantom{{\text{{where }}}} \quad {{}} {_fit(p, width - 12, width)}" for p in pieces[1:]]
    return lines


def _entry_rows(lhs: str, M: sp.MatrixBase, width: float, d: str, settings: dict, note: str) -> list:
    """A matrix too wide for the page as one row per entry: (∂f/∂u)_{i} = …, each broken if long."""
    rows = []
    for k, entry in enumerate(M):
        i, j = divmod(k, M.cols)
        index = str(k + 1) if 1 in M.shape else f"{i + 1}{j + 1}"
        name = rf"\left({lhs}\right)_{{{index}}}" if lhs else rf"(\cdot)_{{{index}}}"
        rows.append((name, _pieces(entry, width - latex_width(name) - 3, d, settings), note if k == 0 else ""))
    return rows


def _note(step) -> str:
    """The note of a step; the textbook line says so (``textbook form``) whatever its method."""
    if step.kind != "textbook" or "textbook" in step.note:
        return step.note
    return f"textbook form ({step.note})" if step.note else "textbook form"


def _pieces(expr: sp.Basic, budget: float | None, d: str, settings: dict) -> list[str]:
    """The LaTeX of ``expr`` in lines of at most ``budget`` (one line when it fits or ``budget`` is
    None): a sum is broken after a term, the next line starting with the term's sign; a product
    between its factors (the next line starting with ·), a long sum factor inside \\Bigl( … \\Bigr)."""
    tex = _tex(expr, d, **settings)
    if budget is None or latex_width(tex) <= budget:
        return [tex]
    if isinstance(expr, (sp.Add, sp.MatAdd)):
        parts = []
        for k, t in enumerate(add_terms(SymgradLatexPrinter(settings), expr)):
            negative = k > 0 and t.could_extract_minus_sign()
            body = -t if negative else t
            sign = "- " if negative else ("+ " if k > 0 else "")
            if negative and isinstance(body, (sp.Add, sp.MatAdd)):
                parts.append(_wrapped(body, budget - 2, d, settings, sign))
            else:
                lines = _pieces(body, budget - 2, d, settings)
                parts.append([sign + lines[0]] + lines[1:])
        return _pack_lines(parts, budget, "")
    if isinstance(expr, sp.Mul) and not expr.could_extract_minus_sign():
        num, den = sp.fraction(expr)
        factors = list(num.args) if isinstance(num, sp.Mul) else [num]
        if den != 1 or len(factors) > 1:
            parts = [[rf"\frac{{1}}{{{latex(den, **settings)}}}"]] if den != 1 else []
            for f in sorted(factors, key=is_sum):  # sums last, as the printer writes them
                if f == 1:
                    continue
                if isinstance(f, (sp.Add, sp.MatAdd)):
                    parts.append(_wrapped(f, budget - 4, d, settings, ""))
                else:  # a power, a function, a symbol or a number: juxtaposed as it prints
                    parts.append([latex(f, **settings)])
            return _pack_lines(parts, budget, r"\cdot ")
    if expr.could_extract_minus_sign() and isinstance(expr, sp.Mul):
        lines = _pieces(-expr, budget - 2, d, settings)
        return ["- " + lines[0]] + lines[1:]
    return [tex]


def _wrapped(expr: sp.Basic, budget: float, d: str, settings: dict, sign: str) -> list[str]:
    """A sum in parentheses, over several lines when long (\\Bigl( … \\Bigr) may span lines)."""
    lines = _pieces(expr, budget, d, settings)
    if len(lines) == 1:
        return [rf"{sign}\left({lines[0]}\right)"]
    return [rf"{sign}\Bigl({lines[0]}"] + lines[1:-1] + [rf"{lines[-1]}\Bigr)"]


def _pack_lines(parts: list[list[str]], budget: float, lead: str) -> list[str]:
    """Parts (each one line, or several) joined greedily into lines of at most ``budget``; a line
    that continues a product starts with ``lead`` (·)."""
    lines: list[str] = []
    for part in parts:
        if len(part) == 1 and lines and latex_width(lines[-1] + " " + part[0]) <= budget:
            lines[-1] += " " + part[0]
        else:
            lines += [(lead if lines and i == 0 else "") + text for i, text in enumerate(part)]
    return lines


def _pack(parts: list[str], budget: float | None, joiner: str) -> list[str]:
    """Parts joined greedily into lines of at most ``budget`` (a part longer than a line stays whole)."""
    if budget is None:
        return [joiner.join(parts)]
    lines = [parts[0]]
    for part in parts[1:]:
        candidate = lines[-1] + joiner + part
        if latex_width(candidate) <= budget:
            lines[-1] = candidate
        else:
            lines.append(part if joiner == " " else joiner.strip() + " " + part)
    return lines


def _fit(tex: str, budget: float, width: float) -> str:
    """``tex`` itself, or — wider than the ``budget`` left on a line of ``width`` — scaled to that
    room (the part of \\linewidth the budget is): what no break could shorten."""
    if latex_width(tex) <= budget:
        return tex
    return rf"\resizebox{{{max(0.2, budget / width) * 0.95:.2f}\linewidth}}{{!}}{{$\displaystyle {tex}$}}"


def _wrap_text(words: str, budget: float | None) -> list[str]:
    if budget is None:
        return [words]
    lines = [""]
    for word in words.split():
        if lines[-1] and len(lines[-1]) + 1 + len(word) > budget:
            lines.append(word)
        else:
            lines[-1] = f"{lines[-1]} {word}".strip()
    return lines


# --- how wide LaTeX math prints, roughly, in characters (for line breaking) ----------------------
_SPACES = {"quad": 2.0, "qquad": 4.0, ",": 0.3, ":": 0.4, ";": 0.5, " ": 0.5, "!": -0.2}
_SILENT = {"left", "right", "displaystyle", "textstyle", "limits", "nolimits", "bigl", "bigr", "Bigl",
           "Bigr", "biggl", "biggr", "big", "Big", "mathrel", "mathop", "mathbin", "phantom"}
_BINARY = {"cdot", "circ", "times", "odot", "otimes", "pm", "mp", "leq", "geq", "neq", "to", "mapsto",
           "approx", "equiv", "in", "mid"}
_TEXT = {"text", "textrm", "texttt", "textbf", "mathrm", "operatorname"}
_GRIDS = ("matrix", "pmatrix", "bmatrix", "vmatrix", "smallmatrix", "cases", "array", "aligned")


def latex_width(tex: str) -> float:
    r"""About how many characters wide ``tex`` (math) prints: a fraction is as wide as its wider
    part, scripts are 0.7 wide, a grid is the sum of its columns, \left/\right are silent."""
    return _width(tex, 0, len(tex))[0]


def _group(tex: str, i: int) -> tuple[int, int]:
    """(start, end) of the brace group (or single token) at i, skipping spaces."""
    while i < len(tex) and tex[i] == " ":
        i += 1
    if i >= len(tex):
        return i, i
    if tex[i] != "{":
        if tex[i] == "\\":
            j = i + 1
            while j < len(tex) and tex[j].isalpha():
                j += 1
            return i, max(j, i + 2)
        return i, i + 1
    depth, j = 0, i
    while j < len(tex):
        depth += {"{": 1, "}": -1}.get(tex[j], 0)
        if tex[j] == "\\":
            j += 1
        elif depth == 0:
            return i + 1, j
        j += 1
    return i + 1, len(tex)


def _width(tex: str, i: int, end: int) -> tuple[float, int]:
    total = 0.0
    while i < end:
        ch = tex[i]
        if ch == "\\":
            j = i + 1
            while j < end and tex[j].isalpha():
                j += 1
            name = tex[i + 1:j] if j > i + 1 else tex[i + 1:i + 2]
            i = j if j > i + 1 else i + 2
            if name in ("frac", "dfrac", "tfrac"):
                a0, a1 = _group(tex, i)
                b0, b1 = _group(tex, a1 + (1 if tex[a0 - 1:a0] == "{" else 0))
                total += max(_width(tex, a0, a1)[0], _width(tex, b0, b1)[0]) + 1.0
                i = b1 + (1 if tex[b0 - 1:b0] == "{" else 0)
            elif name in _TEXT:  # upright letters are wider than the italic average
                g0, g1 = _group(tex, i)
                total += (1.15 if name in ("operatorname", "mathrm") else 0.9) * len(tex[g0:g1].replace("\\", ""))
                i = g1 + 1
            elif name == "begin":
                g0, g1 = _group(tex, i)
                env = tex[g0:g1]
                close = tex.find(rf"\end{{{env}}}", g1)
                close = end if close < 0 else close
                body = tex[g1 + 1:close]
                if env.rstrip("*") in _GRIDS:
                    rows = [[_width(c, 0, len(c))[0] for c in r.split("&")] for r in body.split(r"\\")]
                    cols = max(len(r) for r in rows)
                    total += sum(max((r[k] for r in rows if k < len(r)), default=0) for k in range(cols)) + 1.5 * cols
                else:
                    total += _width(body, 0, len(body))[0]
                i = close + len(rf"\end{{{env}}}")
            elif name in _SPACES:
                total += _SPACES[name]
            elif name in _SILENT:
                if name in ("left", "right") and i < end and tex[i] == ".":
                    i += 1
            elif name in _BINARY:
                total += 2.0
            elif name in ("{", "}", "|", "_", "%", "#", "&", "$"):
                total += 1.0
            elif name in ("log", "exp", "sin", "cos", "tan", "tanh", "max", "min", "det", "lim", "sup", "inf"):
                total += 1.15 * len(name)
            elif name in ("sum", "prod", "int", "bigcup", "bigcap"):
                total += 2.0
            else:
                total += 1.0  # a Greek letter, \partial, \sum, \mathbf{…}'s content below
                if name in ("mathbf", "mathbb", "mathcal", "boldsymbol", "mathit", "sqrt", "overline", "hat", "bar"):
                    g0, g1 = _group(tex, i)
                    bold = 1.15 if name in ("mathbf", "boldsymbol") else 1.0  # bold letters are wider
                    total += bold * _width(tex, g0, g1)[0] - 1.0 + (1.0 if name == "sqrt" else 0.0)
                    i = g1 + (1 if tex[g0 - 1:g0] == "{" else 0)
        elif ch in "^_":
            g0, g1 = _group(tex, i + 1)
            total += 0.7 * _width(tex, g0, g1)[0]
            i = g1 + (1 if tex[g0 - 1:g0] == "{" else 0)
        elif ch in "{}":
            i += 1
        elif ch in "+-=<>":
            total += 2.0
            i += 1
        elif ch in " &":
            i += 1
        else:
            total += 1.0
            i += 1
    return total, i


class _Shown(sp.Symbol):
    """A display-only symbol whose name is already safe LaTeX (built by this module)."""

    def _latex(self, printer, **kwargs):
        return self.name


class _ShownMatrix(sp.MatrixSymbol):
    def _latex(self, printer, **kwargs):
        return self.name


def backprop_latex(bp, *, digits: int = 4) -> str:
    """A graph's reverse pass as an ``align*``: the forward values, then each edge's local
    gradient × upstream gradient (= its number, when values were given) with the gate's
    pattern, then the global gradients — the seeds' backward tables."""
    import numpy as np

    def num(v) -> str:
        if v is None:
            return ""
        if isinstance(v, np.ndarray):
            return rf"\text{{({'×'.join(map(str, v.shape))} array)}}" if v.ndim else f"{float(v):.{digits}g}"
        return f"{v:.{digits}g}"

    out = bp.output
    shown = {}
    for node, g in bp.upstream_names.items():
        tex = rf"\frac{{\partial {latex(out)}}}{{\partial {latex(node)}}}"
        shown[g] = _ShownMatrix(tex, *g.shape) if isinstance(g, sp.MatrixSymbol) else _Shown(tex)

    def show(e):
        return e.xreplace(shown)

    lines = [r"&\text{forward}"]
    for name in bp.graph.names:
        value = f" &&= {num(bp.values[name])}" if name in bp.values else ""
        lines.append(rf"{latex(name)} &= {latex(bp.graph.exprs[name])}{value}")
    lines.append(r"&\text{backward: local gradient} \times \text{upstream gradient}")
    for e in bp.edges:
        lhs = rf"\frac{{\partial {latex(out)}}}{{\partial {latex(e.input)}}}"
        local = rf"\frac{{\partial {latex(e.node)}}}{{\partial {latex(e.input)}}}"
        body = rf"{local} \cdot {latex(show(e.upstream))} = {latex(show(e.product))}" if e.local is None else \
            rf"{latex(e.local)} \cdot {latex(show(e.upstream))}"
        value = ""
        if bp.values:
            value = rf" = {num(bp.value(e.product))}"
        lines.append(rf"{lhs} &\mathrel{{+}}= {body}{value} && \text{{{escape_text(e.gate)}}}")
    lines.append(r"&\text{global gradients}")
    for v in bp.graph.inputs:
        if v in bp.gradients:
            value = rf" = {num(bp.gradient_values[v])}" if v in bp.gradient_values else ""
            lines.append(rf"\frac{{\partial {latex(out)}}}{{\partial {latex(v)}}} &= {latex(bp.expanded(v))}{value}")
    return "\\begin{align*}\n" + " \\\\\n".join(lines) + "\n\\end{align*}"
