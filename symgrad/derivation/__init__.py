"""DERIVE: expressions become a graph of named intermediates and one reverse pass differentiates them.

* :mod:`.graph` — :class:`Graph` (named intermediates), :func:`expression_graph` (an expression as
  one: each block output and shared subexpression named once) and the reverse pass
  :meth:`Graph.backprop`, whose local gradients come from each block's declared rule;
* :mod:`.matrix_rules` — the matrix chain rule each matrix node's local VJP is computed with;
* :mod:`.engine` — :func:`derive`, :func:`hessian`, :func:`hvp` and the record they return,
  :class:`Derivation` (``result``, ``named``, ``intermediates``, ``steps``; ``compile()``,
  ``latex()``, ``check()`` call the lower floors).

Imports go down only: catalog, simplify and the matrix blocks below; the compiler, the checks and
the printers are called from the record's methods.
"""

from .engine import Derivation, Step, derive, hessian, hvp
from .graph import Backprop, Edge, Graph, expression_graph
from .matrix_rules import matrix_gradient

__all__ = ["Backprop", "Derivation", "Edge", "Graph", "Step", "derive", "expression_graph", "hessian", "hvp",
           "matrix_gradient"]
