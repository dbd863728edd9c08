"""A block is declared once: a new one, declared in one place (its Function and one ``register``), is
typeable in both readers, named by the engine, rendered by latexify, listed by the CLI — with no other
file touched. (The block is declared here, in the test, and removed from the registry afterwards.)"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.catalog import registry
from symgrad.catalog.base import Primitive
from symgrad.catalog.registry import Block, Example, register

x = sp.Symbol("x", real=True)


def softclip_np(x, xp=np):
    return x / (1 + xp.abs(x))


class softclip(Primitive):
    r"""softclip(x) = x/(1 + |x|);   softclip'(x) = 1/(1 + |x|)² = (1 − |softclip(x)|)²."""

    nargs = 1
    elementwise = True
    latex_name = r"\operatorname{SoftClip}"
    numpy_form = staticmethod(softclip_np)

    def fdiff(self, argindex=1):
        return (1 - sp.Abs(self)) ** 2

    @staticmethod
    def elementary(u):
        return u / (1 + sp.Abs(u))


@pytest.fixture
def declared():
    block = register(Block(
        name="softclip", family="activation", function=softclip, formula="softclip(x) = x/(1 + |x|)",
        latex=r"\operatorname{SoftClip}(x) = \frac{x}{1 + |x|}",
        derivative=r"\operatorname{SoftClip}'(x) = (1 - |\operatorname{SoftClip}(x)|)^2",
        example=lambda: Example(softclip(x), (x,), {"x": x})))
    yield block
    registry._REGISTRY.pop("softclip")


def test_a_new_block_is_typeable_in_text_and_latex(declared):
    typed = sg.parse("softclip(2*x)")
    assert typed.func is softclip and str(typed.args[0]) == "2*x"
    assert sg.parse_latex(r"\operatorname{SoftClip}(x)").func is softclip


def test_the_engine_names_its_output_like_every_activation(declared):
    w = sp.Symbol("w", real=True)
    d = sg.derive(softclip(w * x) ** 2, w)
    assert softclip(w * x) in d.intermediates.values()  # named (a), like σ's output
    f = d.compile()
    h = 1e-6
    num = (softclip_np(0.7 * (1.3 + h)) ** 2 - softclip_np(0.7 * (1.3 - h)) ** 2) / (2 * h)
    assert f(w=1.3, x=0.7) == pytest.approx(num, rel=1e-7)


def test_latexify_knows_its_name(declared):
    from symgrad.printing.latexify import _identifiers

    assert _identifiers()["softclip_np"] == "SoftClip"


def test_the_cli_lists_it(declared, capsys):
    from symgrad.cli import main

    assert main(["catalog", "--family", "activation"]) == 0
    assert "softclip" in capsys.readouterr().out
