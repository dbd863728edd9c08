"""SIMPLIFY: rewrite rules as data — fold rules (elementary forms → blocks, ``rules``), the
textbook form (``textbook``), the stability rewrites applied to compiled code (``stable``) — and
the time budget every slow symbolic step runs under (``budget``)."""

from .budget import Budget
from .rules import FOLD_RULES, Rule, elementary, fold
from .stable import FUSION_RULES, STABLE_RULES, stabilise
from .textbook import apply_simplex, normalise_sign, resolve_delta_sums, textbook

__all__ = ["Budget", "FOLD_RULES", "FUSION_RULES", "Rule", "STABLE_RULES", "apply_simplex", "elementary", "fold",
           "normalise_sign", "resolve_delta_sums", "stabilise", "textbook"]
