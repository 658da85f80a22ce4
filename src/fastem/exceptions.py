"""Exceptions and warnings, compatible with scikit-learn's without importing it.

scikit-learn users catch ``sklearn.exceptions.NotFittedError``, filter
``sklearn.exceptions.ConvergenceWarning`` and sometimes catch
``InvalidParameterError`` (from ``sklearn.utils._param_validation``).
Importing scikit-learn costs more than a second, so fastem never imports it.
Instead, whenever the scikit-learn module that defines a class is already
loaded (it must be, for a user to name the class), fastem raises a subclass of
*both* its own class and scikit-learn's.  ``except fastem.NotFittedError``
therefore always works, and ``except sklearn.exceptions.NotFittedError`` works
wherever it can be written.

The message texts are scikit-learn 1.9's, word for word, so that
``pytest.raises(match=...)`` and warning filters written against scikit-learn
keep matching; fastem only ever appends to them.
"""
import functools
import sys
import warnings

__all__ = ["NotFittedError", "ConvergenceWarning", "InvalidParameterError"]


class NotFittedError(ValueError, AttributeError):
    """Raised when a method that needs a fitted model is called before ``fit``."""


class ConvergenceWarning(UserWarning):
    """Warned when EM stops at ``max_iter`` before reaching ``tol``."""


class InvalidParameterError(ValueError, TypeError):
    """Raised when a constructor parameter has an invalid type or value.

    Both a ValueError and a TypeError, as scikit-learn's class of the same name.
    """


# Where scikit-learn defines the class of the same name.
_SKLEARN_MODULES = {
    "NotFittedError": "sklearn.exceptions",
    "ConvergenceWarning": "sklearn.exceptions",
    "InvalidParameterError": "sklearn.utils._param_validation",
}

# The warning scikit-learn's BaseMixture.fit emits when the best initialisation
# did not reach `tol` within `max_iter` iterations.
EM_NOT_CONVERGED = (
    "Best performing initialization did not converge. "
    "Try different init parameters, or increase max_iter, "
    "tol, or check for degenerate data."
)


@functools.lru_cache(maxsize=None)
def _with_sklearn_base(ours, module_name):
    sk_class = getattr(sys.modules[module_name], ours.__name__)

    def __reduce__(self):
        # The made class cannot be found by name, so pickle rebuilds it in the
        # receiving process (joblib and multiprocessing send errors back this way).
        return _rebuild, (ours.__name__, self.args)

    return type(ours.__name__, (ours, sk_class),
                {"__module__": ours.__module__, "__reduce__": __reduce__})


def _rebuild(name, args):
    """Unpickle an exception of a class made by _with_sklearn_base."""
    return _compatible(globals()[name])(*args)


def _compatible(ours):
    module_name = _SKLEARN_MODULES[ours.__name__]
    if module_name in sys.modules:
        return _with_sklearn_base(ours, module_name)
    return ours


def not_fitted_error(estimator):
    """Return the NotFittedError to raise for `estimator` (an instance, not raised)."""
    name = type(estimator).__name__
    return _compatible(NotFittedError)(
        f"This {name} instance is not fitted yet. Call 'fit' with appropriate "
        "arguments before using this estimator."
    )


def invalid_parameter_error(message):
    """Return the InvalidParameterError to raise with `message` (not raised)."""
    return _compatible(InvalidParameterError)(message)


def warn_convergence(message=EM_NOT_CONVERGED, stacklevel=3):
    """Emit a ConvergenceWarning that scikit-learn's filters also match."""
    warnings.warn(message, _compatible(ConvergenceWarning), stacklevel=stacklevel)
