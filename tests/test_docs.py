"""The README, the guide and the examples say what the code does: their code runs."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


SNIPPETS = [(p.name, i, code) for p in DOCS for i, code in enumerate(python_blocks(p))]


@pytest.mark.parametrize("name,index,code", SNIPPETS, ids=[f"{n}-{i}" for n, i, _ in SNIPPETS])
def test_doc_snippet_runs(name, index, code):
    exec(compile(code, f"{name}[{index}]", "exec"), {"__name__": "__doc_snippet__"})  # noqa: S102 - our docs


def test_every_doc_has_snippets():
    assert len(python_blocks(ROOT / "README.md")) >= 1
    assert len(python_blocks(ROOT / "docs" / "guide.md")) >= 5


def test_readme_gives_the_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    assert 'pip install -e ".[test]" && symgrad report' in text
    assert re.search(r"^pytest\b", text, flags=re.M)
    assert "pytest" in (ROOT / ".ci" / "run").read_text()


EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script):
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ok: max relative error" in out.stdout
