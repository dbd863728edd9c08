"""The registry every catalog block is declared into (one ``register`` call per block).

A :class:`Block` gathers what symgrad knows about one building block of ML math:
its forward formula, its derivative identity (written in terms of its own output
where one exists), its LaTeX name, its domain, its convention at kinks, and how to
build a small worked example that the report derives, compiles and cross-checks.
The symbolic forward and the stable NumPy form live on the block's
``sympy.Function`` subclass when it is a primitive (see ``catalog/base.py``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import sympy as sp

from ..errors import UnknownBlockError

__all__ = [
    "Arg",
    "Batched",
    "N",
    "size",
    "ones",
    "Interval",
    "Simplex",
    "Choice",
    "Example",
    "Block",
    "register",
    "get_block",
    "blocks",
    "functions",
]


# --- domains: how the cross-checks sample a block's inputs ----------------------------
@dataclass(frozen=True)
class Interval:
    """Real values drawn uniformly from (low, high)."""

    low: float
    high: float


@dataclass(frozen=True)
class Simplex:
    """A group of symbols drawn jointly: a one-hot vector (``onehot=True``) or a point of
    the probability simplex (entries positive, summing to 1)."""

    onehot: bool = False


@dataclass(frozen=True)
class Choice:
    """Integer values drawn from a finite set (class indices)."""

    values: tuple[int, ...]


Domain = Interval | Simplex | Choice


@dataclass(frozen=True)
class Example:
    """A worked instance of a block: what the report derives and cross-checks.

    ``wrt`` lists the default differentiation variables (symbols, indexed entries or
    matrices of symbols); ``inputs`` names them (and any other input) for the CLI's
    ``--wrt``; ``domain`` maps a symbol, an ``IndexedBase`` or a tuple of symbols to
    the domain it is sampled from; ``upstream`` is the upstream gradient symbol (or
    vector) the derivative is multiplied with (the seeds' y'), if any; ``sizes``
    substitutes a symbolic size (``n``) and index (``k``) for the numeric checks.
    """

    expr: sp.Basic
    wrt: tuple[sp.Basic, ...]
    inputs: Mapping[str, sp.Basic] = field(default_factory=dict)
    domain: Mapping[object, Domain] = field(default_factory=dict)
    upstream: sp.Basic | None = None
    sizes: Mapping[sp.Symbol, int] = field(default_factory=dict)


ARG_KINDS = {
    "rows": "an array (..., K): a batch of vectors along the last axis",
    "samples": "an array (...,): one number per sample",
    "labels": "class indices (...,), 0-based, or target rows (..., C) (one-hot or probabilities)",
    "weight": "a matrix, shared by the whole batch",
    "row": "a vector (K,) applied to every sample, entry by entry (a bias, a scale)",
    "column": "a vector (K,) that multiplies every sample (a weight vector)",
    "scalar": "a number shared by the whole batch (a scalar bias)",
    "param": "a number: a hyper-parameter, not differentiated",
}


@dataclass(frozen=True)
class Arg:
    """One input of a block's batched form: its Python name, its symbol in the batched
    expression (a MatrixSymbol with N rows = samples, or a Symbol for a parameter) and its
    kind (one of ``ARG_KINDS``); ``default`` is a parameter's default value."""

    name: str
    symbol: sp.Basic
    kind: str
    default: float | None = None

    def __post_init__(self):
        if self.kind not in ARG_KINDS:
            raise ValueError(f"argument {self.name!r}: kind must be one of {', '.join(ARG_KINDS)}")


@dataclass(frozen=True)
class Batched:
    """A block on a batch, for ``symgrad.nn``: rows are samples (the leading axes flattened),
    the last axis is the block's vector axis. ``forward`` is a matrix expression with N rows
    (N × 1 for one number per sample); ``wrt`` names the differentiable inputs, in the order
    the backward returns their gradients."""

    forward: sp.MatrixExpr
    args: tuple[Arg, ...]
    wrt: tuple[str, ...]


N = sp.Symbol("N", integer=True, positive=True)  # the number of samples (rows) in a batched form


def size(name: str) -> sp.Symbol:
    """A symbolic size (C classes, D inputs, H units) of a batched form."""
    return sp.Symbol(name, integer=True, positive=True)


def ones(rows, cols) -> sp.OneMatrix:
    """The all-ones matrix: ``M ones(C, 1)`` sums the rows of M, ``ones(N, 1) b`` repeats a row b."""
    return sp.OneMatrix(rows, cols)


@dataclass(frozen=True)
class Block:
    """One catalog entry, declared once with :func:`register`."""

    name: str
    family: str  # "activation" | "loss" | "layer" | "composition"
    formula: str  # the forward, in plain text (``symgrad catalog``)
    latex: str  # the forward, in LaTeX
    derivative: str  # the textbook derivative identity, in LaTeX
    example: Callable[[], Example]
    domain: str = "x real"  # where the forward is defined (plain text)
    kink: str = "smooth: differentiable everywhere"
    function: type | None = None  # the sympy.Function subclass, for primitives
    params: Mapping[str, float] = field(default_factory=dict)  # parameters and defaults
    batched: Callable[[], Batched] | None = None  # the batch form for symgrad.nn (vector blocks)
    entries: Callable[[], Example] | None = None  # the example on explicit entries (derive --entries)

    def build(self, entries: bool = False) -> Example:
        """The block's worked example (built fresh each time); ``entries=True``: the same block
        on explicit entries at a small size, when it declares one (else the example itself)."""
        return self.entries() if entries and self.entries is not None else self.example()


_REGISTRY: dict[str, Block] = {}
FAMILIES: Sequence[str] = ("activation", "loss", "layer", "composition")


def register(block: Block) -> Block:
    """Add ``block`` to the catalog; a name can be declared only once."""
    if block.name in _REGISTRY:
        raise ValueError(f"block {block.name!r} is declared twice; every block is declared once")
    if block.family not in FAMILIES:
        raise ValueError(f"block {block.name!r}: family must be one of {', '.join(FAMILIES)}")
    _REGISTRY[block.name] = block
    return block


def get_block(name: str) -> Block:
    """The block called ``name``; an :class:`UnknownBlockError` suggests close names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownBlockError(
            f"unknown block {name!r}{hint} (`symgrad catalog` lists the blocks)"
        ) from None


def blocks(family: str | None = None) -> list[Block]:
    """All blocks, in declaration order (optionally one family)."""
    return [b for b in _REGISTRY.values() if family is None or b.family == family]


def functions(family: str) -> tuple[type, ...]:
    """The ``sympy.Function`` classes of a family's primitive blocks (``functions("activation")``:
    σ, tanh, ReLU, …): what the engine names a/h and the printers know, read from the declarations."""
    return tuple(dict.fromkeys(b.function for b in blocks(family) if isinstance(b.function, type)))
