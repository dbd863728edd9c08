"""READ: the input language users type — Python syntax (``python``) and LaTeX (``latex``) — into
SymPy, without ``eval``; the function tables come from the catalog's registry."""

from .latex import parse_latex
from .python import parse

__all__ = ["parse", "parse_latex"]
