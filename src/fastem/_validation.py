"""Input and parameter checks shared by the estimator and the kernels' callers.

Messages follow scikit-learn's wording where users (and scikit-learn's
estimator checks) rely on it; every failure is a ValueError or TypeError that
names the problem.
"""
import numbers
import warnings

import numpy as np

# Rows checked for NaN/inf at a time when the fast whole-array test fails; keeps
# the check from allocating a boolean copy of X.
_FINITE_CHECK_ROWS = 65536


def check_random_state(seed):
    """Turn None, an int or a RandomState into a RandomState (None: NumPy's global one)."""
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return np.random.RandomState(seed)
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(
        f"random_state must be None, an int or a numpy.random.RandomState, got {seed!r}"
    )


def _feature_names(X):
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, np.ndarray):
        return None
    names = np.asarray(list(columns), dtype=object)
    if len(names) == 0 or not all(isinstance(name, str) for name in names):
        return None
    return names


def _assert_all_finite(X, name):
    # np.sum is one buffered pass with no temporary; only when it is not finite
    # (NaN/inf in X, or finite values whose sum overflows) are rows checked.
    if np.isfinite(np.sum(X, dtype=np.float64)):
        return
    for start in range(0, X.shape[0], _FINITE_CHECK_ROWS):
        block = X[start:start + _FINITE_CHECK_ROWS]
        if np.isnan(block).any():
            raise ValueError(f"Input {name} contains NaN.")
        if np.isinf(block).any():
            raise ValueError(f"Input {name} contains infinity or a value too large for {X.dtype!r}.")


def check_array(X, *, estimator_name, ensure_min_samples=1, name="X"):
    """Validate a data matrix and return it as a C-contiguous float32/float64 array.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    estimator_name : str
        Used in error messages.
    ensure_min_samples : int, default=1
    name : str, default="X"

    Returns
    -------
    ndarray of shape (n_samples, n_features)
        float32 stays float32; every other real dtype becomes float64.  Only
        non-contiguous or non-float input is copied.

    Raises
    ------
    TypeError
        For sparse matrices.
    ValueError
        For complex, non-numeric, non-2-D, empty or non-finite input.
    """
    if hasattr(X, "tocsr") or hasattr(X, "toarray"):
        raise TypeError(
            f"Sparse data was passed for {name}, but dense data is required. "
            "Use '.toarray()' to convert to a dense numpy array."
        )
    array = np.asarray(X)
    if np.iscomplexobj(array):
        raise ValueError(f"Complex data not supported: {name} has dtype {array.dtype}.")
    if array.dtype not in (np.float32, np.float64):
        try:
            array = array.astype(np.float64)
        except ValueError as exc:  # e.g. strings; a TypeError (a dict in X) passes through
            raise ValueError(f"{name} must contain numbers: {exc}") from None
    if array.ndim == 0:
        raise ValueError(
            f"Expected 2D array, got scalar array instead:\n{name}={array}.\n"
            "Reshape your data either using array.reshape(-1, 1) if your data has a "
            "single feature or array.reshape(1, -1) if it contains a single sample."
        )
    if array.ndim == 1:
        raise ValueError(
            f"Expected 2D array, got 1D array instead:\narray={array}.\n"
            "Reshape your data either using array.reshape(-1, 1) if your data has a "
            "single feature or array.reshape(1, -1) if it contains a single sample."
        )
    if array.ndim > 2:
        raise ValueError(f"Found array with dim {array.ndim}. {estimator_name} expected <= 2.")
    n_samples, n_features = array.shape
    if n_samples < ensure_min_samples:
        raise ValueError(
            f"Found array with {n_samples} sample(s) (shape={array.shape}) while a "
            f"minimum of {ensure_min_samples} is required by {estimator_name}."
        )
    if n_features < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={array.shape}) while a minimum of 1 "
            f"is required by {estimator_name}."
        )
    array = np.ascontiguousarray(array)
    _assert_all_finite(array, name)
    return array


def check_sample_weight(sample_weight, n_samples):
    """Validate sample weights; None stays None (unit weights, the fast path).

    Returns
    -------
    ndarray of shape (n_samples,), float64, or None

    Raises
    ------
    ValueError
        If the weights have the wrong shape, are negative or non-finite, or all zero.
    """
    if sample_weight is None:
        return None
    weights = np.asarray(sample_weight)
    if weights.ndim == 0:
        weights = np.full(n_samples, weights, dtype=np.float64)
    if np.iscomplexobj(weights) or weights.dtype.kind not in "biuf":
        raise ValueError(f"sample_weight must be real numbers, got dtype {weights.dtype}.")
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    if weights.shape != (n_samples,):
        raise ValueError(f"sample_weight.shape == {weights.shape}, expected ({n_samples},)!")
    if not np.all(np.isfinite(weights)):
        raise ValueError("sample_weight contains NaN or infinity.")
    if np.any(weights < 0):
        raise ValueError("sample_weight must be non-negative; negative weights were given.")
    if not weights.sum() > 0:
        raise ValueError("sample_weight sums to zero: at least one row needs a positive weight.")
    return weights


def check_feature_names(estimator, X, *, reset):
    """Record (reset=True) or compare the column names of a DataFrame-like X."""
    names = _feature_names(X)
    if reset:
        if names is None:
            if hasattr(estimator, "feature_names_in_"):
                del estimator.feature_names_in_
        else:
            estimator.feature_names_in_ = names
        return
    fitted = getattr(estimator, "feature_names_in_", None)
    cls = type(estimator).__name__
    if fitted is None and names is not None:
        warnings.warn(f"X has feature names, but {cls} was fitted without feature names", UserWarning, stacklevel=3)
    elif fitted is not None and names is None:
        warnings.warn(f"X does not have valid feature names, but {cls} was fitted with feature names", UserWarning, stacklevel=3)
    elif fitted is not None and (len(fitted) != len(names) or np.any(fitted != names)):
        raise ValueError(
            "The feature names should match those that were passed during fit.\n"
            f"Fitted with: {list(fitted)}\nGot: {list(names)}"
        )
