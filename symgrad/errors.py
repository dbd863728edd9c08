"""The small exception tree of symgrad.

Bad input raises built-in exceptions (``ValueError``, ``TypeError``, ``KeyError``
subclasses below) whose message says what was wrong and how to fix it; limits of the
engine raise :class:`SymgradLimit`. The CLI turns both into one line and exit code 2.
"""

from __future__ import annotations

__all__ = ["SymgradError", "ParseError", "UnknownBlockError", "SymgradLimit", "BudgetExceeded", "TraceError"]


class SymgradError(Exception):
    """Base class of every error symgrad raises on purpose."""


class ParseError(SymgradError, ValueError):
    """User text that the whitelisting parser refused; the message names the offending part."""


class UnknownBlockError(SymgradError, KeyError):
    """A catalog name that does not exist (the message suggests the closest names)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SymgradLimit(SymgradError, RuntimeError):
    """The engine cannot do this (yet): the message says what is missing."""


class BudgetExceeded(SymgradError, TimeoutError):
    """A bounded symbolic step ran out of its time budget."""


class TraceError(SymgradLimit):
    """symgrad.trace cannot follow a call of the traced forward: the message names it and its line."""
