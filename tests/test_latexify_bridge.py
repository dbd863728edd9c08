"""Code as LaTeX through latexify-py, and notebook renderings."""

import importlib.util
from pathlib import Path

import sympy as sp

import symgrad as sg
from symgrad.cli import catalog_markdown
from symgrad.compiler import module_source

x, alpha, w, b, y = sp.symbols("x alpha w b y", real=True)


def test_compiled_functions_render_with_sigma_and_greek_names():
    tex = sg.derive(sg.sigmoid(x), x).compile().latex()
    assert tex == r"\mathrm{gradient}(x) = \sigma \mathopen{}\left( -x \mathclose{}\right) \cdot \sigma \mathopen{}\left( x \mathclose{}\right)"
    tex2 = sg.derive(sg.leaky_relu(x, alpha) * x, x).compile().latex()
    assert r"\alpha" in tex2 and "LeakyReLU" in tex2


def test_exported_modules_render_too(tmp_path):
    d = sg.derive(sg.bce(sg.sigmoid(w * x + b), y), w)
    path = tmp_path / "bce_grad.py"
    path.write_text(module_source(d))
    spec = importlib.util.spec_from_file_location("bce_grad", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from symgrad.latexify_bridge import function_latex

    tex = function_latex(module.gradient)
    assert tex == r"\mathrm{gradient}(b, w, x, y) = x \cdot \mathrm{sigmoid\_minus} \mathopen{}\left( b + w x, y \mathclose{}\right)"  # no namespace plumbing; scale=x as x ·


def test_notebook_renderings():
    d = sg.derive(sg.sigmoid(x), x)
    assert d._repr_latex_().startswith("$") and "aligned" in d._repr_markdown_()
    assert "ok" in d.check()._repr_markdown_()
    bp = sg.Graph({"q": x + y, "f": "q*w"}).backprop({"x": 1, "y": 2, "w": 3})
    assert bp._repr_latex_().startswith("$$") and "aligned" in bp._repr_latex_()
    assert d.compile()._repr_latex_().startswith("$")


def test_the_catalog_reference_is_current():
    committed = (Path(__file__).resolve().parents[1] / "docs" / "catalog.md").read_text()
    assert committed == catalog_markdown(), "regenerate it: symgrad catalog --markdown > docs/catalog.md"
    for block in sg.blocks():
        assert f"### `{block.name}`" in committed and block.derivative in committed
