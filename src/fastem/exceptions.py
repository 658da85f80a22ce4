"""Exceptions and warnings, compatible with scikit-learn's without importing it.

scikit-learn users catch ``sklearn.exceptions.NotFittedError`` and filter
``sklearn.exceptions.ConvergenceWarning``.  Importing scikit-learn costs more
than a second, so fastem never imports it.  Instead, whenever
``sklearn.exceptions`` is already loaded (it must be, for a user to name its
classes), fastem raises a subclass of *both* its own class and scikit-learn's.
``except fastem.NotFittedError`` therefore always works, and
``except sklearn.exceptions.NotFittedError`` works wherever it can be written.
"""
import functools
import sys
import warnings

__all__ = ["NotFittedError", "ConvergenceWarning"]


class NotFittedError(ValueError, AttributeError):
    """Raised when a method that needs a fitted model is called before ``fit``."""


class ConvergenceWarning(UserWarning):
    """Warned when EM (or k-means) stops at ``max_iter`` before reaching ``tol``."""


@functools.lru_cache(maxsize=None)
def _with_sklearn_base(ours, name):
    sk_class = getattr(sys.modules["sklearn.exceptions"], name)
    return type(ours.__name__, (ours, sk_class), {"__module__": ours.__module__})


def _compatible(ours):
    if "sklearn.exceptions" in sys.modules:
        return _with_sklearn_base(ours, ours.__name__)
    return ours


def not_fitted_error(estimator):
    """Return the NotFittedError to raise for `estimator` (an instance, not raised)."""
    name = type(estimator).__name__
    return _compatible(NotFittedError)(
        f"This {name} instance is not fitted yet: call 'fit' before using it."
    )


def warn_convergence(message, stacklevel=3):
    """Emit a ConvergenceWarning that scikit-learn's filters also match."""
    warnings.warn(message, _compatible(ConvergenceWarning), stacklevel=stacklevel)
