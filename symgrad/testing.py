"""Testing helpers: ``assert_grad`` and a pytest fixture (registered through the ``pytest11``
entry point, so ``def test_x(grad_check): grad_check(f, grad, x)`` works once symgrad is installed)."""

from __future__ import annotations

from typing import Any, Callable

from .checks.gradcheck import GradReport, check_grad

__all__ = ["assert_grad", "grad_check"]


def assert_grad(f: Callable[..., Any], grad: Callable[..., Any], *inputs: Any, **options: Any) -> GradReport:
    r"""Raise ``AssertionError`` (with the report and its diagnosis) unless ``grad`` is ∇f.

    .. math:: \max_i \frac{|g_i - \hat g_i|}{\max(|\hat g_i|, 10^{-7}\max_j |\hat g_j|)} \le \text{rtol}
    """
    report = check_grad(f, grad, *inputs, **options)
    if not report.ok:
        raise AssertionError(str(report))
    return report


try:  # the fixture exists only where pytest is installed
    import pytest

    @pytest.fixture
    def grad_check() -> Callable[..., GradReport]:
        """``grad_check(f, grad, *inputs, **options)``: :func:`assert_grad` as a fixture."""
        return assert_grad

except ImportError:  # pragma: no cover
    pass
