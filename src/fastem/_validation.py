"""Input and parameter checks shared by the estimators and the kernels' callers.

Code written against scikit-learn catches and matches scikit-learn's errors, so
every condition scikit-learn checks fails here with scikit-learn 1.9's
exception class and message text (fastem may append to a message, never reword
it).  The logic is fastem's own; only the texts are shared.

Three groups:

- hyper-parameters: a table of constraints per estimator parameter
  (:data:`MIXTURE_PARAMETERS`, :data:`GAUSSIAN_MIXTURE_PARAMETERS`) checked by
  :func:`check_parameters`;
- arrays: :func:`check_array` (X at fit and at predict, and the initial
  parameters), :func:`check_feature_names`, :func:`validate_fit_data`,
  :func:`validate_predict_data`;
- initial parameters and results: :func:`check_initial_parameters`,
  :func:`check_sample_count`, :func:`check_storable`.
"""
import numbers
import sys
import warnings

import numpy as np
from scipy import sparse

from fastem import _covariance as cov_table
from fastem.exceptions import invalid_parameter_error, not_fitted_error

# Rows checked for NaN/inf at a time when the fast whole-array test fails; keeps
# the check from allocating a boolean copy of X.
_FINITE_CHECK_ROWS = 65536

_RESHAPE_HINT = (
    "Reshape your data either using array.reshape(-1, 1) if your data has a "
    "single feature or array.reshape(1, -1) if it contains a single sample."
)

_NAN_IN_X_HINT = (
    "\n{estimator} does not accept missing values encoded as NaN natively. For "
    "supervised learning, you might want to consider "
    "sklearn.ensemble.HistGradientBoostingClassifier and Regressor which accept "
    "missing values encoded as NaNs natively. Alternatively, it is possible to "
    "preprocess the data, for instance by using an imputer transformer in a "
    "pipeline or drop samples with missing values. See "
    "https://scikit-learn.org/stable/modules/impute.html You can find a list of "
    "all estimators that handle NaN values at the following page: "
    "https://scikit-learn.org/stable/modules/impute.html"
    "#estimators-that-handle-nan-values"
)


# ---------------------------------------------------------------------------
# Hyper-parameters: one constraint object per accepted kind of value
# ---------------------------------------------------------------------------

def _type_label(cls):
    # How scikit-learn names a type in its messages: builtins bare, others dotted.
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


class Interval:
    """Numbers of one kind (``numbers.Integral`` or ``numbers.Real``) in a range.

    A bound of None is infinite; `closed` says which finite ends belong to the
    range ("left", "right", "both" or "neither").  NaN is never inside.
    """

    def __init__(self, kind, low, high, closed):
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def accepts(self, value):
        if not isinstance(value, self.kind):
            return False
        if not isinstance(value, numbers.Integral) and np.isnan(value):
            return False
        low = -np.inf if self.low is None else self.low
        high = np.inf if self.high is None else self.high
        low_ok = value >= low if self.closed in ("left", "both") else value > low
        high_ok = value <= high if self.closed in ("right", "both") else value < high
        return bool(low_ok and high_ok)

    def __str__(self):
        integral = self.kind is numbers.Integral
        low = "-inf" if self.low is None else (self.low if integral else float(self.low))
        high = "inf" if self.high is None else (self.high if integral else float(self.high))
        left = "[" if self.closed in ("left", "both") else "("
        right = "]" if self.closed in ("right", "both") else ")"
        return f"{'an int' if integral else 'a float'} in the range {left}{low}, {high}{right}"


class StrOptions:
    """One of a set of strings.

    The message lists the options in a set's iteration order, as scikit-learn
    does.  That order depends on string hashing (random per process) and on how
    the set was built, so it cannot be reproduced from our own set: when the
    scikit-learn class named by `mirror` (module, class, parameter) is already
    imported, the options are listed in the order of that parameter's own set,
    so the two messages agree in this process; otherwise in our set's order.
    """

    def __init__(self, options, mirror=None):
        self.options = frozenset(options)
        self.mirror = mirror

    def accepts(self, value):
        return isinstance(value, str) and value in self.options

    def _ordered(self):
        if self.mirror is None or self.mirror[0] not in sys.modules:
            return list(self.options)
        module, cls, parameter = self.mirror
        their_class = getattr(sys.modules[module], cls, None)
        for constraint in getattr(their_class, "_parameter_constraints", {}).get(parameter, ()):
            theirs = getattr(constraint, "options", None)
            if isinstance(theirs, (set, frozenset)) and theirs == self.options:
                return list(theirs)
        return list(self.options)

    def __str__(self):
        return f"a str among {{{', '.join(repr(o) for o in self._ordered())}}}"


class InstanceOf:
    """An instance of one type."""

    def __init__(self, cls):
        self.cls = cls

    def accepts(self, value):
        return isinstance(value, self.cls)

    def __str__(self):
        return f"an instance of {_type_label(self.cls)!r}"


class _NoneValue:
    def accepts(self, value):
        return value is None

    def __str__(self):
        return "None"


class _ArrayLike:
    # Anything with a length, a shape or __array__, except scalars and sparse matrices.
    def accepts(self, value):
        if sparse.issparse(value) or np.isscalar(value):
            return False
        return hasattr(value, "__len__") or hasattr(value, "shape") or hasattr(value, "__array__")

    def __str__(self):
        return "an array-like"


class _Callable:
    def accepts(self, value):
        return callable(value)

    def __str__(self):
        return "a callable"


NONE = _NoneValue()
CALLABLE = _Callable()
ARRAY_LIKE = _ArrayLike()
BOOLEAN = (InstanceOf(bool), InstanceOf(np.bool_))
RANDOM_STATE = (
    Interval(numbers.Integral, 0, 2**32 - 1, "both"),
    InstanceOf(np.random.RandomState),
    NONE,
)
VERBOSE = (Interval(numbers.Integral, 0, None, "left"), *BOOLEAN)


def _describe(constraints):
    words = [str(c) for c in constraints]
    if len(words) == 1:
        return words[0]
    return f"{', '.join(words[:-1])} or {words[-1]}"


# The scikit-learn class whose option order the messages follow (see StrOptions).
_SKLEARN_GM = ("sklearn.mixture._gaussian_mixture", "GaussianMixture")

# Constraints of the parameters every mixture model shares, as scikit-learn's
# BaseMixture declares them; a parameter is valid if any of its constraints
# accepts it.
MIXTURE_PARAMETERS = {
    "n_components": (Interval(numbers.Integral, 1, None, "left"),),
    "tol": (Interval(numbers.Real, 0.0, None, "left"),),
    "reg_covar": (Interval(numbers.Real, 0.0, None, "left"),),
    "max_iter": (Interval(numbers.Integral, 0, None, "left"),),
    "n_init": (Interval(numbers.Integral, 1, None, "left"),),
    "init_params": (StrOptions({"kmeans", "random", "random_from_data", "k-means++"},
                              (*_SKLEARN_GM, "init_params")),),
    "random_state": RANDOM_STATE,
    "warm_start": BOOLEAN,
    "verbose": VERBOSE,
    "verbose_interval": (Interval(numbers.Integral, 1, None, "left"),),
    # fastem's own: OpenMP threads (None: the current OpenMP limit).
    "n_threads": (Interval(numbers.Integral, 1, None, "left"), NONE),
    # fastem's own: called after every EM iteration (fastem._base).
    "callback": (CALLABLE, NONE),
}

GAUSSIAN_MIXTURE_PARAMETERS = {
    **MIXTURE_PARAMETERS,
    "covariance_type": (StrOptions({"full", "tied", "diag", "spherical"},
                                  (*_SKLEARN_GM, "covariance_type")),),
    "weights_init": (ARRAY_LIKE, NONE),
    "means_init": (ARRAY_LIKE, NONE),
    "precisions_init": (ARRAY_LIKE, NONE),
    # fastem's own: partial_fit's step sizes (t + learning_offset) ** -learning_decay.
    # (0.5, 1] is where stepwise EM converges; offset > 0 keeps every step below 1.
    "learning_decay": (Interval(numbers.Real, 0.5, 1.0, "right"),),
    "learning_offset": (Interval(numbers.Real, 0.0, None, "neither"),),
    # fastem's own: "em" reads NaN as a missing value (fastem._missing).
    "missing": (StrOptions({"error", "em"}),),
}


def check_parameters(estimator, constraints):
    """Check every parameter of `estimator` that `constraints` names.

    Parameters are checked in the order of ``estimator.get_params()`` (sorted
    by name), so with several invalid ones the first is reported, as in
    scikit-learn.

    Parameters
    ----------
    estimator : object with ``get_params()``
    constraints : dict
        Parameter name to a tuple of constraint objects (anything with
        ``accepts(value)`` and a ``str()`` that completes "must be ...").

    Raises
    ------
    fastem.exceptions.InvalidParameterError
        A ValueError and TypeError (and scikit-learn's InvalidParameterError
        once scikit-learn has loaded it), for the first parameter no
        constraint accepts.
    """
    name_of_estimator = type(estimator).__name__
    for name, value in estimator.get_params(deep=False).items():
        allowed = constraints.get(name)
        if allowed is None or any(c.accepts(value) for c in allowed):
            continue
        raise invalid_parameter_error(
            f"The {name!r} parameter of {name_of_estimator} must be "
            f"{_describe(allowed)}. Got {value!r} instead."
        )


def check_random_state(seed):
    """Turn None, an int or a RandomState into a RandomState (None: NumPy's global one)."""
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return np.random.RandomState(seed)
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(f"{seed!r} cannot be used to seed a numpy.random.RandomState instance")


# ---------------------------------------------------------------------------
# Arrays
# ---------------------------------------------------------------------------

def _assert_all_finite(X, input_name, estimator_name, allow_nan=False):
    # np.sum is one buffered pass with no temporary; only when it is not finite
    # (NaN/inf in X, or finite values whose sum overflows) is X checked, in
    # blocks of rows so that no boolean copy of all of X is made.
    # `allow_nan`: NaN marks a missing value (missing="em"); infinity is still refused.
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(X, dtype=np.float64)):
            return
    flat = X.reshape(-1)
    step = _FINITE_CHECK_ROWS * max(1, X.shape[-1] if X.ndim else 1)
    has_nan = has_inf = False
    for start in range(0, flat.shape[0], step):
        block = flat[start:start + step]
        has_nan = has_nan or bool(np.isnan(block).any())
        has_inf = has_inf or bool(np.isinf(block).any())
    if allow_nan:
        has_nan = False
    if not (has_nan or has_inf):
        return
    padded = f"{input_name} " if input_name else ""
    if has_nan:
        message = f"Input {padded}contains NaN."
        if estimator_name and input_name == "X":
            message += _NAN_IN_X_HINT.format(estimator=estimator_name)
    else:
        message = f"Input {padded}contains infinity or a value too large for {X.dtype!r}."
    raise ValueError(message)


# Above this magnitude a squared value overflows float64 (sqrt of its largest
# finite value): the covariances of such data cannot be represented, and EM
# would end in overflow warnings and a misleading "ill-defined covariance".
_LARGEST_FIT_MAGNITUDE = float(np.sqrt(np.finfo(np.float64).max))


def _assert_squares_finite(X, input_name):
    # float32 stops at 3.4e38, far below: only float64 data need the two passes.
    # (nanmax: a missing value must not hide a huge observed one.)
    if X.size == 0 or X.dtype != np.float64:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # an all-NaN X: nanmax warns, gives NaN
        peak = max(abs(float(np.nanmax(X))), abs(float(np.nanmin(X))))
    if peak > _LARGEST_FIT_MAGNITUDE:
        raise ValueError(
            f"Input {input_name} contains values of magnitude {peak:.3g}, above "
            f"{_LARGEST_FIT_MAGNITUDE:.3g}: their squares, and so the covariances, overflow "
            "float64. Rescale the data (for instance with sklearn.preprocessing.StandardScaler)."
        )


def _numeric_array(X, for_fit):
    """X as an ndarray: float32/float64 for fit, any numeric dtype otherwise."""
    dtype = getattr(X, "dtype", None)
    if not hasattr(dtype, "kind"):
        dtype = None  # e.g. a DataFrame column named "dtype"
    column_dtypes = getattr(X, "dtypes", None)
    if dtype is None and column_dtypes is not None and hasattr(X, "columns"):
        # A DataFrame. Nullable numeric columns (pandas Int64, Float64, boolean)
        # become float64 first, so that pd.NA is NaN and reported as such.
        column_dtypes = list(column_dtypes)
        if any(not isinstance(d, np.dtype) and getattr(d, "kind", "O") in "biuf"
               for d in column_dtypes):
            X = X.astype(np.float64)
            column_dtypes = list(X.dtypes)
        # Then the common dtype of its columns, when they are NumPy dtypes.
        if column_dtypes and all(isinstance(d, np.dtype) for d in column_dtypes):
            dtype = np.result_type(*column_dtypes)
    if dtype is not None and dtype.kind == "c":
        raise ValueError(f"Complex data not supported\n{X}\n")
    if for_fit:
        if dtype is not None and dtype in (np.float32, np.float64):
            return np.asarray(X, dtype=dtype)
        # numpy's own error (ValueError or TypeError) for strings, dicts, ragged rows
        return np.asarray(X, dtype=np.float64)
    if dtype is not None and dtype.kind == "O":
        return np.asarray(X, dtype=np.float64)
    array = np.asarray(X)
    if array.dtype.kind == "c":
        raise ValueError(f"Complex data not supported\n{array}\n")
    if array.dtype.kind in "USV":
        raise ValueError(
            "dtype='numeric' is not compatible with arrays of bytes/strings."
            "Convert your data to numeric values explicitly instead."
        )
    if array.dtype.kind == "O":
        array = array.astype(np.float64)
    return array


def check_array(
    X, *, estimator_name, input_name="X", for_fit=True, ensure_2d=True, allow_nd=False,
    ensure_min_samples=1, allow_nan=False,
):
    """Validate an array as scikit-learn's ``check_array`` does, with its messages.

    Parameters
    ----------
    X : array-like
    estimator_name : str or None
        Named in the messages ("... required by GaussianMixture"); None for
        arrays that are not an estimator's input (the initial parameters).
    input_name : str, default="X"
        "X" for data, "" for the initial parameters (as scikit-learn names them).
    for_fit : bool, default=True
        True: float32 stays, anything else becomes float64 (strings fail with
        NumPy's conversion error).  False (predict): any numeric dtype is
        accepted, strings are refused, and the result is float64 unless float32.
    ensure_2d, allow_nd : bool
    ensure_min_samples : int, default=1
    allow_nan : bool, default=False
        Accept NaN (a missing value, for ``missing="em"``); infinity is still refused.

    Returns
    -------
    ndarray
        C-contiguous; only copied when X was not already float and contiguous.

    Raises
    ------
    TypeError
        For np.matrix, sparse matrices, and what NumPy cannot convert to floats
        (complex Python numbers, dicts).
    ValueError
        For complex, string, non-2-D (or >2-D), empty or non-finite input.
    """
    if isinstance(X, np.matrix):
        raise TypeError(
            "np.matrix is not supported. Please convert to a numpy array with "
            "np.asarray. For more information see: "
            "https://numpy.org/doc/stable/reference/generated/numpy.matrix.html"
        )
    by = f" by {estimator_name}" if estimator_name else ""
    if sparse.issparse(X):
        if X.dtype.kind == "c":
            raise ValueError(f"Complex data not supported\n{X}\n")
        padded = f" for {input_name}" if input_name else ""
        raise TypeError(
            f"Sparse data was passed{padded}, but dense data is required. "
            "Use '.toarray()' to convert to a dense numpy array."
        )
    is_series = hasattr(X, "iloc") and hasattr(X, "dtype") and getattr(X, "ndim", 2) == 1
    array = _numeric_array(X, for_fit)
    if ensure_2d and array.ndim == 0:
        raise ValueError(f"Expected 2D array, got scalar array instead:\narray={array}.\n{_RESHAPE_HINT}")
    if ensure_2d and array.ndim == 1:
        if is_series:
            raise ValueError(
                f"Expected a 2-dimensional container but got {type(X)} instead. Pass a "
                "DataFrame containing a single row (i.e. single sample) or a single "
                "column (i.e. single feature) instead."
            )
        raise ValueError(f"Expected 2D array, got 1D array instead:\narray={array}.\n{_RESHAPE_HINT}")
    if not allow_nd and array.ndim >= 3:
        raise ValueError(f"Found array with dim {array.ndim}, while dim <= 2 is required{by}.")
    if array.dtype.kind == "f":
        _assert_all_finite(array, input_name, estimator_name, allow_nan)
        if for_fit and estimator_name is not None:
            _assert_squares_finite(array, input_name)
    if ensure_min_samples > 0:
        if array.ndim == 0:
            raise TypeError(
                "Input should have at least 1 dimension i.e. satisfy `len(x.shape) > 0`, "
                f"got scalar `{array!r}` instead."
            )
        if array.shape[0] < ensure_min_samples:
            raise ValueError(
                f"Found array with {array.shape[0]} sample(s) (shape={array.shape}) while a "
                f"minimum of {ensure_min_samples} is required{by}."
            )
    if array.ndim == 2 and array.shape[1] < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={array.shape}) while a minimum of 1 "
            f"is required{by}."
        )
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float64)
    return np.ascontiguousarray(array)


def check_sample_weight(sample_weight, n_samples, allow_zero_sum=False):
    """Validate sample weights; None stays None (unit weights, the fast path).

    `allow_zero_sum` accepts all-zero weights: for one chunk of a fit, whose
    other chunks may carry the weight.

    ``sample_weight`` is fastem's own addition (scikit-learn's GaussianMixture
    has none), so these messages are fastem's.

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
    if not (allow_zero_sum or weights.sum() > 0):
        raise ValueError("sample_weight sums to zero: at least one row needs a positive weight.")
    return weights


def _feature_names(X):
    """String column names of a DataFrame-like X, or None (no names, or not all strings)."""
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, np.ndarray) or sparse.issparse(X):
        return None
    names = np.asarray(list(columns), dtype=object)
    if len(names) == 0:
        return None
    types = sorted({type(name).__qualname__ for name in names})
    if len(types) > 1 and "str" in types:
        raise TypeError(
            "Feature names are only supported if all input features have string names, "
            f"but your input has {types} as feature name / column name types. "
            "If you want feature names to be stored and validated, you must convert "
            "them all to strings, by using X.columns = X.columns.astype(str) for "
            "example. Otherwise you can remove feature / column names from your input "
            "data, or convert them all to a non-string data type."
        )
    return names if types == ["str"] else None


def _listed(names):
    # At most five names, one per line, then "- ..." for the rest.
    lines = [f"- {name}\n" for name in names[:5]]
    if len(names) > 5:
        lines.append("- ...\n")
    return "".join(lines)


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
        warnings.warn(f"X has feature names, but {cls} was fitted without feature names",
                      UserWarning, stacklevel=5)
    elif fitted is not None and names is None:
        warnings.warn(f"X does not have valid feature names, but {cls} was fitted with feature names",
                      UserWarning, stacklevel=5)
    elif fitted is not None and (len(fitted) != len(names) or np.any(fitted != names)):
        unseen = sorted(set(names) - set(fitted))
        missing = sorted(set(fitted) - set(names))
        message = "The feature names should match those that were passed during fit.\n"
        if unseen:
            message += "Feature names unseen at fit time:\n" + _listed(unseen)
        if missing:
            message += "Feature names seen at fit time, yet now missing:\n" + _listed(missing)
        if not unseen and not missing:
            message += "Feature names must be in the same order as they were in fit.\n"
        raise ValueError(message)


def check_enough_rows(n_samples, n_features, n_positive, n_components, estimator_name):
    """A fit's row counts: >= 2 rows, >= n_components rows, >= n_components of positive weight.

    Parameters
    ----------
    n_samples, n_features : int
    n_positive : int
        Rows with a positive weight (n_samples without weights).
    n_components : int
    estimator_name : str
    """
    if n_samples < 2:
        raise ValueError(
            f"Found array with {n_samples} sample(s) (shape=({n_samples}, {n_features})) while a "
            f"minimum of 2 is required by {estimator_name}."
        )
    if n_samples < n_components:
        raise ValueError(
            "Expected n_samples >= n_components "
            f"but got n_components = {n_components}, n_samples = {n_samples}"
        )
    if n_positive < n_components:
        raise ValueError(
            f"Expected at least n_components = {n_components} rows with a positive "
            f"sample_weight, got {n_positive}"
        )


def validate_fit_data(X, sample_weight, n_components, estimator_name, allow_nan=False):
    """X and sample_weight for fit: a float array of >= 2 rows and >= n_components rows.

    `allow_nan` accepts NaN as a missing value.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float32 or float64
    sample_weight : ndarray of shape (n_samples,) or None
    """
    X = check_array(X, estimator_name=estimator_name, ensure_min_samples=2, allow_nan=allow_nan)
    sample_weight = check_sample_weight(sample_weight, X.shape[0]) if X.shape[0] >= n_components else None
    n_positive = X.shape[0] if sample_weight is None else np.count_nonzero(sample_weight)
    check_enough_rows(X.shape[0], X.shape[1], n_positive, n_components, estimator_name)
    return X, sample_weight


def validate_predict_data(estimator, X, allow_nan=False):
    """X for a fitted estimator's predict/score methods (fitted, same features).

    `allow_nan` accepts NaN as a missing value.

    Returns
    -------
    ndarray of shape (n_samples, n_features_in_), float32 or float64
    """
    if not estimator.__sklearn_is_fitted__():
        raise not_fitted_error(estimator)
    check_feature_names(estimator, X, reset=False)
    name = type(estimator).__name__
    X = check_array(X, estimator_name=name, for_fit=False, allow_nan=allow_nan)
    if X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {name} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    return X


# ---------------------------------------------------------------------------
# Initial parameters, sample counts and fitted results
# ---------------------------------------------------------------------------

def _initial_array(value, name, shape, allow_nd=False):
    array = check_array(value, estimator_name=None, input_name="", ensure_2d=False,
                        allow_nd=allow_nd)
    if array.shape != shape:
        raise ValueError(
            f"The parameter '{name}' should have the shape of {shape}, but got {array.shape}"
        )
    return array


def _check_weights(weights, n_components):
    weights = _initial_array(weights, "weights", (n_components,))
    if np.any(weights < 0.0) or np.any(weights > 1.0):
        # (scikit-learn's text names the minimum "max value" and the maximum "min value")
        raise ValueError(
            "The parameter 'weights' should be in the range [0, 1], but got max value "
            f"{np.min(weights):.5f}, min value {np.max(weights):.5f}"
        )
    # float32 weights can only sum to 1 within float32's resolution.
    atol = 1e-6 if weights.dtype == np.float32 else 1e-8
    total = np.sum(weights)
    if not abs(1.0 - float(total)) <= atol:
        raise ValueError(
            f"The parameter 'weights' should be normalized, but got sum(weights) = {total:.5f}"
        )
    return weights.astype(np.float64)


def _check_precisions(precisions, covariance_type, n_components, n_features):
    shape = {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]
    precisions = _initial_array(precisions, f"{covariance_type} precision", shape,
                                allow_nd=covariance_type == "full")
    if covariance_type in ("full", "tied"):
        blocks = precisions if covariance_type == "full" else precisions[None]
        for block in blocks:
            symmetric = np.all(np.isclose(block, block.T))
            if not (symmetric and np.all(np.linalg.eigvalsh(block) > 0.0)):
                raise ValueError(f"'{covariance_type} precision' should be symmetric, positive-definite")
    elif np.any(precisions <= 0.0):
        raise ValueError(f"'{covariance_type} precision' should be positive")
    return precisions.astype(np.float64)


def check_initial_parameters(weights_init, means_init, precisions_init, *,
                             n_components, n_features, covariance_type):
    """Validate the user's initial parameters (each may be None) in scikit-learn's order.

    Returns
    -------
    weights : ndarray of shape (n_components,), float64, or None
    means : ndarray of shape (n_components, n_features), float64, or None
    precisions_cholesky : ndarray or None
        Lower-triangular factors of `precisions_init` for full/tied (as
        scikit-learn keeps them), square roots for diag/spherical.

    Raises
    ------
    ValueError
        With scikit-learn's message, for a wrong shape, NaN/inf, weights
        outside [0, 1] or not summing to 1, or precisions that are not
        symmetric positive definite (full/tied) or not positive (diag/spherical).
    """
    weights = means = factor = None
    if weights_init is not None:
        weights = _check_weights(weights_init, n_components)
    if means_init is not None:
        means = _initial_array(means_init, "means", (n_components, n_features)).astype(np.float64)
    if precisions_init is not None:
        precisions = _check_precisions(precisions_init, covariance_type, n_components, n_features)
        factor = cov_table.precision_cholesky_from_precisions(precisions, covariance_type)
    return weights, means, factor


def check_sample_count(n_samples, n_components):
    """Refuse ``sample(n_samples)`` for n_samples < 1, with scikit-learn's message.

    (scikit-learn's text shows n_components where n_samples belongs; the value
    actually given is appended.)  A value that cannot be compared with 1 fails
    with Python's TypeError, as in scikit-learn.
    """
    if n_samples < 1:
        raise ValueError(
            f"Invalid value for 'n_samples': {int(n_components)} . The sampling requires at "
            f"least one sample. Got n_samples={n_samples!r}."
        )


def check_storable(dtype, **arrays):
    """Refuse fitted parameters that overflow X's dtype (float32 data far from 1).

    EM runs in float64, where the covariances of data at 1e30 (1e60) are
    finite; stored as float32 they would be inf.  scikit-learn, which computes
    in float32, ends such fits with inf/NaN parameters; fastem refuses.

    Parameters
    ----------
    dtype : dtype
        The dtype the parameters are stored in.
    **arrays : ndarray
        The float64 parameters, by attribute name.

    Raises
    ------
    ValueError
        Naming the first array whose largest magnitude does not fit in `dtype`.
    """
    largest = np.finfo(dtype).max
    for name, array in arrays.items():
        peak = np.max(np.abs(array)) if np.size(array) else 0.0
        if not peak <= largest:
            raise ValueError(
                f"The fitted {name} do not fit in {np.dtype(dtype).name}: their largest "
                f"magnitude is {peak:.3g}, above {largest:.3g}. Rescale the data (for "
                "instance with sklearn.preprocessing.StandardScaler) or pass float64 data."
            )
