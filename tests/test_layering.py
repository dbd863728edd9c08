"""The house follows the data flow: every ``from .x import`` in the package goes down a floor (or stays
inside its own package), no import circle, no private name imported across modules, and imports
inside functions only where the floor plan allows them. Read with the stdlib ``ast``, from the files.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "symgrad"

# the floor of each top-level part of the package, bottom first (ARCHITECTURE.md; README "What is in the box")
FLOORS = {
    "symgrad": 0,  # the facade: its names load lazily, it imports nothing at import time
    "errors": 0, "runtime": 0, "symbols": 0,  # foundations
    "catalog": 1,  # DEFINE: every block declared once
    "simplify": 2,  # rewrite rules as data, textbook form, stability rewrites, budgets
    "printing": 3, "parsing": 3,  # text / LaTeX / array source out; text / LaTeX in
    "compiler": 4, "checks": 4,  # code generation and its loader; sampling, cross-checks, gradcheck
    "derivation": 5,  # DERIVE: the graph and its one reverse sweep, records
    "claims": 6, "testing": 6, "export": 6, "pipeline": 6, "nnbuild": 6, "tracing": 6,  # the verbs
    "backcheck": 7, "report": 7,
    "cli": 8, "__main__": 9,
    "nn": 0,  # generated; imports only symgrad.runtime... and NumPy
}

# imports inside functions: only for optional dependencies and start-up time (counted, relative ones)
FUNCTION_LEVEL_LIMIT = 15  # the bound; the package has none today


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def read_imports(package: Path = PACKAGE) -> list[tuple[str, str, list[str], bool, int]]:
    """(importer, imported module, names, inside a function?, line) for every relative import."""
    found = []
    for path in sorted(package.rglob("*.py")):
        me = _module_name(path)
        here = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [a.name for a in node.names]
                folder = PACKAGE.parent.joinpath(*target.split("."))
                submodules = [n for n in names if (folder / f"{n}.py").exists() or (folder / n).is_dir()]
                if not node.module and submodules:  # from . import sampling: the submodules themselves
                    for name in submodules:
                        found.append((me, f"{target}.{name}", [], id(node) not in top, node.lineno))
                    continue
                found.append((me, target, names, id(node) not in top, node.lineno))
    return found


def part(module: str) -> str:
    """symgrad.compiler.codegen → compiler; symgrad → symgrad."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else pieces[0]


def violations(imports, floors: dict[str, int]) -> list[str]:
    """What breaks the rules of the house, one line each (empty: the house stands)."""
    out = []
    graph: dict[str, set[str]] = {}
    for importer, target, names, inner, line in imports:
        a, b = part(importer), part(target)
        if a not in floors or b not in floors:
            out.append(f"{importer}:{line}: {a if a not in floors else b} has no floor in the table")
            continue
        if a != b and floors[b] >= floors[a] and b != "symgrad":
            out.append(f"{importer}:{line} imports {target} (floor {floors[b]} >= its own {floors[a]})")
        if a != b and b == "symgrad" and names != ["__version__"]:
            out.append(f"{importer}:{line} imports from the facade (import from the module that defines it)")
        private = [n for n in names if n.startswith("_") and n != "__version__"]
        if private:
            out.append(f"{importer}:{line} imports private {', '.join(private)} from {target}")
        if not inner:
            graph.setdefault(importer, set()).add(target)
    # circles among module-level imports (a package's __init__ counts as its own node)
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                out.append("import circle: " + " -> ".join(path[path.index(nxt):] + [nxt]) if nxt in path else nxt)
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return out


def test_imports_go_down_without_circles_or_private_names():
    problems = violations(read_imports(), FLOORS)
    assert not problems, "\n".join(problems)


def test_function_level_imports_are_few():
    inner = [f"{m}:{line} {t}" for m, t, _, is_inner, line in read_imports() if is_inner]
    assert len(inner) <= FUNCTION_LEVEL_LIMIT, "\n".join(inner)


def test_the_facade_imports_nothing_at_import_time():
    facade = [i for i in read_imports() if i[0] == "symgrad" and not i[3]]
    assert facade == []


def test_every_part_of_the_package_has_a_floor():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p / "__init__.py").exists()) and p.name != "__init__.py"}
    assert parts <= set(FLOORS), sorted(parts - set(FLOORS))


# --- the checker itself fails on a house that does not stand (a synthetic module table) --------------
GOOD = [("symgrad.compiler.function", "symgrad.printing.tex", ["latex"], False, 1),
        ("symgrad.printing.tex", "symgrad.catalog.base", ["Primitive"], False, 1)]


def test_a_sound_table_passes():
    assert violations(GOOD, FLOORS) == []


@pytest.mark.parametrize("bad, reason", [
    ([("symgrad.printing.latexify", "symgrad.compiler.function", ["CompiledFunction"], True, 7)], "floor 4 >= its own 3"),
    ([("symgrad.catalog.rows", "symgrad.catalog.base", ["Primitive"], False, 1),
      ("symgrad.catalog.base", "symgrad.catalog.rows", ["elementwise"], False, 2)], "import circle"),
    ([("symgrad.derivation.engine", "symgrad.compiler.function", ["_formula"], False, 3)], "imports private _formula"),
    ([("symgrad.printing.tex", "symgrad.parsing.python", ["parse"], False, 3)], "floor 3 >= its own 3"),
    ([("symgrad.compiler.codegen", "symgrad.newpart", ["x"], False, 3)], "newpart has no floor"),
])
def test_a_house_that_does_not_stand_is_refused(bad, reason):
    problems = violations(GOOD + bad, FLOORS)
    assert any(reason in p for p in problems), problems


def test_no_module_is_named_like_a_public_function():
    # a submodule named like a public name would replace it on the package when it loads (the old
    # module class swap in __init__ existed for that): module names are not function names
    import symgrad

    modules = {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py"} | {p.name for p in PACKAGE.iterdir() if p.is_dir()}
    assert not modules & set(symgrad.__all__), sorted(modules & set(symgrad.__all__))
    assert type(symgrad).__name__ == "module"  # no class swap
    import symgrad.claims  # noqa: F401 - loading every module keeps the functions in place
    import symgrad.parsing  # noqa: F401

    assert callable(symgrad.verify) and callable(symgrad.parse) and callable(symgrad.derive)
