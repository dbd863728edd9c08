"""Code as LaTeX through latexify-py, and notebook renderings."""

import importlib.util
import inspect
from pathlib import Path

import sympy as sp

import symgrad as sg
from symgrad.cli import catalog_markdown
from symgrad.compiler.module import module_source
from symgrad.printing.latexify import function_latex

x, alpha, w, b, y = sp.symbols("x alpha w b y", real=True)


def test_compiled_functions_render_with_sigma_and_greek_names():
    tex = sg.derive(sg.sigmoid(x), x).compile().latex()
    assert tex == r"\mathrm{gradient}(x) = \sigma \mathopen{}\left( -x \mathclose{}\right) \cdot \sigma \mathopen{}\left( x \mathclose{}\right)"
    tex2 = sg.derive(sg.leaky_relu(x, alpha) * x, x).compile().latex()
    assert r"\alpha" in tex2 and "LeakyReLU" in tex2


def test_the_formula_form_is_generated_not_rewritten(tmp_path):
    # the LaTeX comes from the same code generated in formula form (no namespace lines): it renders
    # the exported module's formula, and the exported module computes the same numbers
    d = sg.derive(sg.bce(sg.sigmoid(w * x + b), y), w)
    compiled = d.compile()
    shown = compiled.display_function(exact=True)
    assert "namespace(" not in inspect.getsource(shown) and "namespace(" in compiled.source
    assert compiled.latex(exact=True) == r"\mathrm{gradient}(b, w, x, y) = x \cdot \mathrm{sigmoid\_minus} \mathopen{}\left( b + w x, y \mathclose{}\right)"
    path = tmp_path / "bce_grad.py"
    path.write_text(module_source(d))
    spec = importlib.util.spec_from_file_location("bce_grad", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    values = dict(b=0.3, w=-1.2, x=0.7, y=1.0)
    assert module.gradient(**values) == compiled(**values)
    assert function_latex(compiled) == compiled.latex()


def test_notebook_renderings():
    d = sg.derive(sg.sigmoid(x), x)
    assert d._repr_latex_().startswith("$") and "aligned" in d._repr_markdown_()
    assert "ok" in d.check()._repr_markdown_()
    bp = sg.Graph({"q": x + y, "f": "q*w"}).backprop({"x": 1, "y": 2, "w": 3})
    assert bp._repr_latex_().startswith("$$") and "aligned" in bp._repr_latex_()
    assert d.compile()._repr_latex_().startswith("$")


def test_the_catalog_reference_is_current():
    committed = (Path(__file__).resolve().parents[2] / "docs" / "catalog.md").read_text()
    assert committed == catalog_markdown(), "regenerate it: symgrad catalog --markdown > docs/catalog.md"
    for block in sg.blocks():
        assert f"### `{block.name}`" in committed and block.derivative in committed
