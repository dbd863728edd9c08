"""The ``symgrad`` command: catalog, derive, report.

Bad input gets one line on stderr and exit code 2; a failed cross-check exits 1; nothing
prints a traceback. User text is parsed by the whitelisting parser (``symgrad.parse``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from typing import Sequence

_STARTED = time.perf_counter()  # the command's start, before SymPy loads (--timeout bounds verify's whole run)

import sympy as sp

from . import __version__
from .catalog.registry import FAMILIES, blocks, get_block
from .errors import SymgradError
from .derivation import derive
from .parsing.python import parse
from .compiler.module import export_module
from .printing.plain import text
from .export.plot import plot_block
from .parsing.python import check_name
from .claims import verify
from .report import build_report
from .report import format_table
from .report import write_latex
from .report import write_markdown
from .compiler.module import module_source
from .export.document import compile_pdf
from .printing.tex import latex
from .tracing import labels
from .tracing import trace
from .backcheck import user_error
from .backcheck import check_backward

__all__ = ["main"]

_BARE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _UsageError(Exception):
    """argparse's complaint, turned into one line and exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print the usage and exit
        raise _UsageError(f"{message} (see `{self.prog} --help`)")


def _seconds(text: str) -> float:
    """--timeout: a positive finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the timeout must be a positive finite number of seconds")
    return value


def _matrix_spec(text: str) -> tuple[str, tuple[str, str]]:
    """--matrix W:n,n → ("W", ("n", "n")): a matrix name and its two sizes (names or numbers)."""
    m = re.fullmatch(r"\s*([A-Za-z][A-Za-z0-9_]*)\s*:\s*([A-Za-z0-9_]+)\s*,\s*([A-Za-z0-9_]+)\s*", text)
    if not m or "__" in text:
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME:ROWS,COLS, e.g. W:n,n or x:n,1")
    dims = (m.group(2), m.group(3))
    for d in dims:
        if not (d.isdigit() and 0 < int(d) <= 64) and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", d):
            raise argparse.ArgumentTypeError(f"{text!r}: a size is a name (n) or a number from 1 to 64")
    return m.group(1), dims


def _shape_spec(text: str) -> tuple[str, tuple]:
    """--shape x=N,D → ("x", ("N", "D")); lam= → ("lam", ()) (a scalar); sizes are names or numbers."""
    m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([A-Za-z0-9_,\s]*)", text)
    if not m or "__" in text:
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=SIZES, e.g. x=N,D (a scalar: lam=)")
    sizes = [d.strip() for d in m.group(2).split(",")] if m.group(2).strip() else []
    for d in sizes:
        if not (d.isdigit() and 0 < int(d) <= 4096) and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", d):
            raise argparse.ArgumentTypeError(f"{text!r}: a size is a name (N) or a number from 1 to 4096")
    return m.group(1), tuple(int(d) if d.isdigit() else d for d in sizes)


def _labels_spec(text: str) -> tuple[str, tuple]:
    """--labels y=N,C → ("y", ("N", "C")): N labels in 0 … C−1."""
    try:
        name, sizes = _shape_spec(text)
    except argparse.ArgumentTypeError:
        sizes = ()
    if len(sizes) != 2:
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=N,C (N labels of C classes), e.g. y=N,C")
    return name, sizes


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="symgrad", description="Derive, verify and compile the gradients of ML math.")
    parser.add_argument("--version", action="version", version=f"symgrad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    cat = sub.add_parser("catalog", help="list the catalog's blocks with their formulas")
    cat.add_argument("--family", choices=list(FAMILIES))
    cat.add_argument("--json", action="store_true", help="print JSON")
    cat.add_argument("--markdown", action="store_true", help="print the catalog reference (docs/catalog.md)")

    der = sub.add_parser("derive", help="derive a catalog block or an expression in textbook form")
    der.add_argument("target", metavar="NAME|EXPR", help="a catalog block name or an expression such as 'sigmoid(w*x + b)'")
    der.add_argument("--wrt", help="comma-separated variables (symbols, or a block's inputs such as W)")
    fmt = der.add_mutually_exclusive_group()
    fmt.add_argument("--latex", action="store_true", help="print the align* derivation")
    fmt.add_argument("--python", action="store_true", help="print a standalone NumPy module")
    fmt.add_argument("--json", action="store_true", help="print JSON")
    der.add_argument("--timeout", type=_seconds, default=5.0, help="seconds for the bounded simplification (default 5)")
    der.add_argument("--entries", action="store_true", help="a vector block on explicit entries at a small size "
                     "(a grid of entries) instead of its vectorized textbook form")

    ver = sub.add_parser("verify", help="judge a hand-derived derivative: proven, refuted (with a "
                         "counterexample), numerically consistent or undecided")
    ver.add_argument("target", metavar="NAME|EXPR", help="a catalog block name or an expression")
    ver.add_argument("--wrt", required=True, help="the variable")
    ver.add_argument("--claim", required=True, help="the claimed derivative (Python syntax or LaTeX)")
    ver.add_argument("--positive", help="comma-separated symbols that are positive")
    ver.add_argument("--matrix", action="append", type=_matrix_spec, default=[], metavar="NAME:ROWS,COLS",
                     help="declare a matrix symbol and its shape, e.g. --matrix W:n,n --matrix x:n,1 (repeatable)")
    ver.add_argument("--timeout", type=_seconds, default=5.0, help="seconds for the whole verdict (default 5)")
    vfmt = ver.add_mutually_exclusive_group()
    vfmt.add_argument("--latex", action="store_true", help="print the verdict as LaTeX")
    vfmt.add_argument("--json", action="store_true", help="print JSON")

    exp = sub.add_parser("export", help="write a derivative as a standalone NumPy module (no SymPy import)")
    exp.add_argument("target", metavar="NAME|EXPR", help="a catalog block name or an expression")
    exp.add_argument("--wrt", help="comma-separated variables (default: the block's inputs)")
    exp.add_argument("-o", "--output", help="the .py file to write (default gradient_NAME.py or gradient.py)")
    exp.add_argument("--name", default="gradient", help="the function's name (default gradient)")

    plo = sub.add_parser("plot", help="draw a block and its derivative (needs the plot extra)")
    plo.add_argument("name", metavar="NAME", help="a catalog block of one scalar input")
    plo.add_argument("-o", "--output", help="the PNG to write (default NAME.png)")

    tra = sub.add_parser("trace", help="trace a NumPy forward function of your own file, derive it, check its backward")
    tra.add_argument("target", metavar="FILE.py:FUNCTION", help="the forward: a function of your file returning a scalar")
    tra.add_argument("--shape", action="append", type=_shape_spec, default=[], metavar="NAME=SIZES",
                     help="an argument and its shape: x=N,D (sizes are names or numbers), lam= for a scalar (repeatable)")
    tra.add_argument("--labels", action="append", type=_labels_spec, default=[], metavar="NAME=N,C",
                     help="an argument of N integer class labels in 0 … C-1, e.g. y=N,C (repeatable)")
    tra.add_argument("--wrt", help="comma-separated arguments to differentiate with respect to")
    tra.add_argument("--latex", action="store_true", help="print LaTeX")
    tra.add_argument("--backward", metavar="FILE.py:FUNCTION", help="a hand-written backward (same arguments, "
                     "returns the gradients for --wrt in order) to check with check_backward")
    tra.add_argument("--method", choices=["auto", "symbolic", "numeric"],
                     help="how --backward is checked (default auto: symbolic where both trace)")

    rep = sub.add_parser("report", help="the main job: derive, compile and cross-check the whole catalog")
    rep.add_argument("-o", "--output", default="symgrad-report", help="folder for report.tex and report.json")
    rep.add_argument("--only", help="comma-separated block names")
    rep.add_argument("--quiet", action="store_true", help="no progress lines")
    rep.add_argument("--format", choices=["tex", "md"], default="tex", help="LaTeX (default) or Markdown")
    rep.add_argument("--pdf", action="store_true", help="also compile report.tex with pdflatex (safely)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``symgrad`` console script; returns the exit code."""
    started = _STARTED if argv is None else time.perf_counter()  # the command's start (console: the process's)
    parser = _build_parser()
    try:
        args = parser.parse_args(_values_with_minus(list(sys.argv[1:] if argv is None else argv), parser))
    except _UsageError as exc:
        print(f"symgrad: error: {exc}", file=sys.stderr)
        return 2
    args.started = started
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if getattr(args, "output", None) is not None:
            _check_output(args.output, folder=args.command == "report")
        return {"catalog": _catalog, "derive": _derive, "report": _report, "verify": _verify,
                "plot": _plot, "export": _export, "trace": _trace}[args.command](args)
    except (SymgradError, ValueError, TypeError, KeyError, NotImplementedError) as exc:
        print(f"symgrad: error: {exc}", file=sys.stderr)
        return 2
    except RecursionError:
        print("symgrad: error: the expression is too deeply nested", file=sys.stderr)
        return 2
    except OSError as exc:  # an output that cannot be written
        print(f"symgrad: error: cannot write {exc.filename or 'the output'}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("symgrad: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback for the user
        print(f"symgrad: internal error ({type(exc).__name__}: {exc}); please report it", file=sys.stderr)
        return 70


def _check_output(path: str, folder: bool = False) -> None:
    """-o: a file (or, for ``folder``, a folder) that can be written, else a ValueError saying why."""
    if not path or "\0" in path:
        raise ValueError("-o needs a path")
    target = os.path.abspath(path)
    parent = os.path.dirname(target) or "."
    if folder:
        if os.path.exists(target) and not os.path.isdir(target):
            raise ValueError(f"-o {path}: it is a file, not a folder")
        probe = target if os.path.isdir(target) else parent
    else:
        if os.path.isdir(target):
            raise ValueError(f"-o {path}: it is a folder; name a file, e.g. {os.path.join(path, 'gradient.py')}")
        probe = parent
    if not os.path.isdir(probe):
        raise ValueError(f"-o {path}: the folder {probe} does not exist")
    if not os.access(probe, os.W_OK) or probe.startswith(("/proc", "/sys")):
        raise ValueError(f"-o {path}: the folder {probe} is not writable")


def _options(parser: argparse.ArgumentParser) -> tuple[set, set]:
    """(every option string, the options that take a value), read from the parser itself."""
    parsers = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers += list(action.choices.values())
    flags, takes_value = set(), set()
    for p in parsers:
        for option, action in p._option_string_actions.items():
            (flags if action.nargs == 0 else takes_value).add(option)
    return flags, takes_value


def _values_with_minus(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """Values that begin with a minus are values, not options: ``--claim -t*s`` becomes
    ``--claim=-t*s``, and a positional ``-x**3`` moves behind ``--``."""
    flags, takes_value = _options(parser)
    out: list[str] = []
    trailing: list[str] = []
    for item in argv:
        if out and out[-1] in takes_value and item.startswith("-"):
            out[-1] = f"{out[-1]}={item}"
        elif item.startswith("-") and item not in flags | takes_value and item.split("=")[0] not in takes_value:
            trailing.append(item)
        else:
            out.append(item)
    return out + (["--"] + trailing if trailing else [])


# --- commands -----------------------------------------------------------------------------
def _catalog(args) -> int:
    chosen = blocks(args.family)
    if args.markdown:
        print(catalog_markdown(chosen), end="")
        return 0
    if args.json:
        print(json.dumps([{"name": b.name, "family": b.family, "formula": b.formula, "latex": b.latex,
                           "derivative": b.derivative, "domain": b.domain, "kink": b.kink,
                           "params": dict(b.params)}
                          for b in chosen], indent=2))
        return 0
    family = None
    for b in chosen:
        if b.family != family:
            family = b.family
            print(f"{family}{'es' if family.endswith('s') else 's'}:")
        print(f"  {b.name:<22} {b.formula}")
    return 0


def catalog_markdown(chosen=None) -> str:
    """The catalog reference: every block's formula, derivative identity, domain and kink."""
    lines = ["# The symgrad catalog", "",
             "Generated by `symgrad catalog --markdown` from the registry (a test keeps it current).", ""]
    family = None
    for b in chosen if chosen is not None else blocks():
        if b.family != family:
            family = b.family
            lines += [f"## {family.capitalize()}s", ""]
        params = ", ".join(f"{k} = {v:g}" for k, v in b.params.items())
        lines += [f"### `{b.name}`", "", f"$$ {b.latex} $$", "", f"$$ {b.derivative} $$", "",
                  f"- domain: {b.domain}", f"- at kinks: {b.kink}"] + ([f"- parameters: {params}"] if params else []) + [""]
    return "\n".join(lines)


def _derivation_for(args):
    """The Derivation named on the command line: a catalog block's example or an expression."""

    target = args.target.strip()
    upstream = None
    if _BARE_NAME.match(target):
        block = get_block(target)
        if getattr(args, "entries", False) and block.entries is None:
            raise ValueError(f"{target} has no entries form: it is a scalar block (--entries is for vector blocks)")
        example = block.build(entries=getattr(args, "entries", False))
        expr, inputs, upstream = example.expr, dict(example.inputs), example.upstream
        wrt = list(example.wrt)
        if args.wrt:
            wrt = [_lookup_wrt(name, inputs, expr) for name in _split(args.wrt)]
    else:
        if getattr(args, "entries", False):
            raise ValueError("--entries is for a catalog block's example (e.g. `symgrad derive softmax --entries`)")
        expr = parse(target)
        if args.wrt:
            wrt = [_lookup_wrt(name, {}, expr) for name in _split(args.wrt)]
        else:
            free = sorted(expr.free_symbols, key=lambda s: s.name)
            if len(free) != 1:
                names = ", ".join(s.name for s in free) or "none"
                raise ValueError(f"say which variable to differentiate with respect to: --wrt NAME (symbols: {names})")
            wrt = free
    return derive(expr, wrt if len(wrt) > 1 else wrt[0], upstream=upstream, timeout=getattr(args, "timeout", 5.0))


def _export(args) -> int:

    d = _derivation_for(args)
    target = args.target.strip()
    path = args.output or (f"gradient_{target}.py" if _BARE_NAME.match(target) else "gradient.py")
    arrays = None  # a catalog block's vectors given entry by entry (w1, w2, w3) become one array w
    if _BARE_NAME.match(target) and target in {b.name for b in blocks()}:
        example = get_block(target).build(entries=bool(getattr(args, "entries", False)))
        arrays = {k: list(v) for k, v in example.inputs.items() if isinstance(v, sp.MatrixBase)}
    export_module(d, path, name=args.name, arrays=arrays)
    with open(path, encoding="utf-8") as written:
        source = written.read()
    signature = re.search(rf"^def {re.escape(args.name)}\((.*)\):", source, re.M)
    print(f"wrote {path}: {args.name}({signature.group(1) if signature else ''})")
    return 0


def _derive(args) -> int:
    d = _derivation_for(args)
    if args.latex:
        print(d.latex())
    elif args.python:

        print(module_source(d), end="")
    elif args.json:

        def js(obj):  # matrices as nested lists of strings
            return [[text(e) for e in row] for row in obj.tolist()] if isinstance(obj, sp.MatrixBase) else text(obj)

        named = d.named if not d.single else (d.named,)
        print(json.dumps({
            "expression": js(d.expr), "wrt": [js(w) for w in d.wrt],
            "result": [js(r) for r in d.results], "named": [js(r) for r in named],
            "intermediates": {k.name: text(v) for k, v in d.intermediates.items()},
            "raw": [js(r) for r in d.raws], "latex": [latex(r) for r in d.results],
            "assumptions": d.assumptions, "notes": d.notes,
        }, indent=2))
    else:
        _print_human(d)
    return 0


def _print_human(d) -> None:

    named = d.named if not d.single else (d.named,)
    for w, r, n in zip(d.wrt, d.results, named):
        name = text(w) if not isinstance(w, sp.MatrixBase) else "[" + ", ".join(text(e) for e in w) + "]"
        print(f"d/d{name} = {text(r)}")
        if n != r:
            print(f"  = {text(n)}")
    if d.intermediates:
        print("  where " + ", ".join(f"{k} = {text(v)}" for k, v in d.intermediates.items()))
    for a in d.assumptions:
        print(f"  using {a}")
    for n in d.notes:
        print(f"  note: {n}")


def _lookup_wrt(name: str, inputs: dict, expr):
    if name in inputs:
        return inputs[name]
    symbols = {s.name: s for s in expr.free_symbols if isinstance(s, sp.Symbol)}
    if name in symbols:
        return symbols[name]
    known = sorted(set(inputs) | set(symbols))
    raise ValueError(f"unknown variable {name!r} for --wrt; choose from: {', '.join(known) or 'none'}")


def _split(text: str, option: str = "--wrt") -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError(f"{option} is empty")
    return names


def _matrices(specs) -> dict[str, sp.MatrixSymbol]:
    """--matrix W:n,n → {"W": MatrixSymbol W of shape (n, n)}; sizes that are names are positive integers."""
    out: dict[str, sp.MatrixSymbol] = {}
    for name, dims in specs:
        if name in out:
            raise ValueError(f"--matrix {name} is declared twice")
        shape = [sp.Integer(int(d)) if d.isdigit() else sp.Symbol(d, integer=True, positive=True) for d in dims]
        out[name] = sp.MatrixSymbol(name, *shape)
    return out


def _plot(args) -> int:

    get_block(args.name)  # unknown names fail before matplotlib is loaded
    path = args.output or f"{args.name}.png"
    plot_block(args.name, path)
    print(f"wrote {path}")
    return 0


def _verify(args) -> int:

    target = args.target.strip()
    positive = [check_name(n, "--positive name") for n in _split(args.positive, "--positive")] if args.positive else []
    matrices = _matrices(args.matrix)
    defaults = []
    if _BARE_NAME.match(target) and target not in matrices:
        block = get_block(target)
        expr = block.build().expr
        # a parameter the claim does not name takes the block's declared default (said in a note)
        present = {s.name: s for s in expr.free_symbols if isinstance(s, sp.Symbol)}
        for name, value in block.params.items():
            if name in present and not re.search(rf"\b{re.escape(name)}\b|\\{re.escape(name)}\b", args.claim):
                expr = expr.xreplace({present[name]: sp.Float(value)})
                defaults.append(f"{name} = {value:g} (the block's default; name {name} in the claim to keep it symbolic)")
    else:
        expr = parse(target, symbols=matrices, assumptions={n: {"positive": True} for n in positive})
    wrt = [check_name(n, "--wrt name") for n in _split(args.wrt)]
    if len(wrt) != 1:
        raise ValueError("verify takes one variable: --wrt NAME")
    unused = sorted(set(matrices) - {m.name for m in expr.atoms(sp.MatrixSymbol)})
    if unused:
        raise ValueError(f"--matrix {', '.join(unused)}: not in the expression")
    verdict = verify(expr, matrices.get(wrt[0], wrt[0]), args.claim, timeout=args.timeout, positive=positive,
                     deadline=args.started + args.timeout)  # --timeout bounds the whole command
    verdict.notes[:0] = defaults
    if args.json:
        print(json.dumps(verdict.to_json(), indent=2, default=str))
    elif args.latex:
        print(verdict._repr_latex_().strip("$"))
    else:
        print(verdict)
    return {"proven": 0, "numerically-consistent": 0, "refuted": 1}.get(verdict.status, 3)


def _load_function(target: str, option: str = "FILE.py:FUNCTION"):
    """The function FUNCTION of the user's own file FILE.py, imported by path (the file runs: it is
    the user's code, called as they ask; nothing is evaluated from text)."""
    import importlib.util

    path, sep, name = target.rpartition(":")
    if not sep or not path or not name:
        raise ValueError(f"{option} {target!r}: write FILE.py:FUNCTION, e.g. model.py:loss")
    if not name.isidentifier():
        raise ValueError(f"{option} {target!r}: {name!r} is not a function name")
    if not os.path.isfile(path):
        raise ValueError(f"{option}: no such file: {path}")
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    spec = importlib.util.spec_from_file_location(f"symgrad_user_{stem}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{option}: {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)  # the file may import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's file failed to run: one line, exit 2
        raise ValueError(f"{option}: importing {path} failed ({type(exc).__name__}: {exc})") from None
    finally:
        sys.path.remove(folder)
    fn = getattr(module, name, None)
    if not callable(fn):
        names = sorted(k for k, v in vars(module).items() if callable(v) and getattr(v, "__module__", None) == spec.name)
        raise ValueError(f"{option}: {path} has no function {name!r} (functions: {', '.join(names) or 'none'})")
    return fn


def _trace(args) -> int:
    forward = _load_function(args.target)

    shapes: dict[str, object] = {}
    for option, name, sizes in [("--shape", *s) for s in args.shape] + [("--labels", *s) for s in args.labels]:
        if name in shapes:
            raise ValueError(f"{option} {name}: {name} is given twice")
        shapes[name] = labels(sizes[0], classes=sizes[1]) if option == "--labels" else sizes
    wrt = _split(args.wrt) if args.wrt else []
    for name in wrt:
        if name not in shapes:
            raise ValueError(f"unknown variable {name!r} for --wrt; choose from: {', '.join(shapes) or 'none'}")
    if args.backward:
        if not wrt:
            raise ValueError("--backward needs --wrt: the arguments whose gradients the backward returns, in order")

        backward = _load_function(args.backward, "--backward")
        try:
            report = check_backward(forward, backward, wrt, method=args.method or "auto", shapes=shapes)
        except Exception as exc:  # the user's own code raised: its type, message and line
            _raise_user_error(exc, forward, backward)
        print(report._repr_latex_() if args.latex else report)
        return 0 if report.ok else 1
    if args.method:
        raise ValueError("--method is for --backward: how the hand-written backward is checked")

    try:
        traced = trace(forward, **shapes)
    except Exception as exc:  # the user's own code raised: its type, message and line
        _raise_user_error(exc, forward)
    if not wrt:  # the graph: one line per named intermediate

        rows = [(latex(n), latex(traced.exprs[n])) if args.latex else (text(n), text(traced.exprs[n]))
                for n in traced.names]
        print("\\begin{align*}\n" + " \\\\\n".join(f"{a} &= {b}" for a, b in rows) + "\n\\end{align*}"
              if args.latex else "\n".join(f"{a} = {b}" for a, b in rows))
        return 0
    d = derive(traced, wrt if len(wrt) > 1 else wrt[0])
    if args.latex:
        print(d.latex())
    else:
        _print_human(d)
    return 0


def _raise_user_error(exc: Exception, *functions) -> None:
    """Re-raise ``exc``; one raised in the user's code (not symgrad's) as a ValueError with its line."""

    where = None if isinstance(exc, SymgradError) else user_error(exc, *functions)
    if where is None:
        raise exc
    raise ValueError(f"the user's code raised {where}") from None


def _report(args) -> int:

    selection = [get_block(n) for n in _split(args.only)] if args.only else None

    def progress(i: int, n: int, name: str) -> None:
        if not args.quiet:
            print(f"[{i:>2}/{n}] {name} …", file=sys.stderr, flush=True)

    report = build_report(selection, progress)
    print(format_table(report))
    if args.format == "md":
        print(f"Markdown of every derivation: {write_markdown(report, args.output)}")
    else:
        tex = write_latex(report, args.output)
        print(f"LaTeX of every derivation: {tex}")
        if args.pdf:

            print(f"PDF: {compile_pdf(tex)}")
    return 0 if report.ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
