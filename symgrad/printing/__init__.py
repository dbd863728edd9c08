"""PRINT: SymPy objects as text and LaTeX (``plain``, ``tex``), as NumPy / Array API source
(``arrays``), and generated code as LaTeX through latexify-py (``latexify``)."""

from .plain import SymgradStrPrinter, escape_text, text
from .tex import SymgradLatexPrinter, backprop_latex, derivation_latex, latex, latex_width

__all__ = ["SymgradLatexPrinter", "SymgradStrPrinter", "backprop_latex", "derivation_latex", "escape_text",
           "latex", "latex_width", "text"]
