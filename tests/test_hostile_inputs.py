"""The hostile-input matrix: every entry point against inputs users really send.

Each row of the tables below is one input (data, a parameter, an initial
parameter or a sample weight) and what must come of it: a fit whose every
parameter is finite, or a ValueError/TypeError whose message names the problem
(a regular expression).  Every row is tried on every fitting entry point
(``fit``, ``fit_predict``, ``fit_chunks``, ``partial_fit``, ``fastem.select``)
or, for data given to a fitted model, on every scoring entry point
(``predict``, ``predict_proba``, ``score_samples``, ``score``).  Whatever the
outcome, the input must come back unchanged (a copy is taken before and
compared after, read-only and memory-mapped inputs included), and nothing may
crash, hang or return NaN.

The README's "Hostile-input report" gives the counts by kind;
``test_matrix_size`` keeps them honest.
"""
import re
import warnings

import numpy as np
import pytest

import fastem
from fastem import GaussianMixture
from fastem.exceptions import ConvergenceWarning

FIT_ENTRIES = ["fit", "fit_predict", "fit_chunks", "partial_fit", "select"]
SCORE_ENTRIES = ["predict", "predict_proba", "score_samples", "score"]

N, D = 40, 3


def _blobs(n=N, d=D, seed=0):
    # Two separated blobs: a well-posed problem for K <= 2.
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, d))
    X[: n // 2] += 6.0
    return X


def _memmap(X, tmp_path):
    path = tmp_path / "x.dat"
    m = np.memmap(path, dtype=X.dtype, mode="w+", shape=X.shape)
    m[:] = X
    m.flush()
    return np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape)


def _matrix(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.asmatrix(X)


def _read_only(X):
    X = X.copy()
    X.flags.writeable = False
    return X


def _with(X, rows, cols, value):
    X = X.copy()
    X[rows, cols] = value
    return X


# ---------------------------------------------------------------------------
# The tables.  OK means a fit with finite parameters; otherwise (exception
# classes, pattern the message must match).
# ---------------------------------------------------------------------------
OK = "ok"
VE = (ValueError,)
TE = (TypeError,)
VTE = (ValueError, TypeError)
NAN_MSG = "contains NaN"
INF_MSG = "contains infinity"


def _frame(X):
    pd = pytest.importorskip("pandas")
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])


# (kind, id, make_X(tmp_path), n_components, expectation)
DATA_CASES = [
    # non-finite values
    ("non-finite", "nan", lambda t: _with(_blobs(), 3, 1, np.nan), 2, (VE, NAN_MSG)),
    ("non-finite", "+inf", lambda t: _with(_blobs(), 5, 0, np.inf), 2, (VE, INF_MSG)),
    ("non-finite", "-inf", lambda t: _with(_blobs(), 0, 2, -np.inf), 2, (VE, INF_MSG)),
    ("non-finite", "all-nan", lambda t: np.full((N, D), np.nan), 2, (VE, NAN_MSG)),
    ("non-finite", "nan-float32", lambda t: _with(_blobs(), 7, 1, np.nan).astype(np.float32), 2,
     (VE, NAN_MSG)),
    ("non-finite", "inf-float32", lambda t: _with(_blobs(), 7, 1, np.inf).astype(np.float32), 2,
     (VE, INF_MSG)),
    # shapes and sizes
    ("shape", "empty-rows", lambda t: np.empty((0, D)), 2, (VE, "0 sample")),
    ("shape", "empty-features", lambda t: np.empty((N, 0)), 2, (VE, "0 feature")),
    ("shape", "empty-list", lambda t: [], 2, (VE, "Expected 2D array")),
    ("shape", "one-sample", lambda t: _blobs()[:1], 1, (VE, "1 sample")),
    ("shape", "k-above-n", lambda t: _blobs()[:5], 6, (VE, "n_samples >= n_components")),
    ("shape", "k-equals-n", lambda t: _blobs()[:4], 4, OK),
    ("shape", "k1", lambda t: _blobs(), 1, OK),
    ("shape", "d1", lambda t: _blobs(d=1), 2, OK),
    ("shape", "1-d", lambda t: _blobs()[:, 0], 2, (VE, "Expected 2D array, got 1D")),
    ("shape", "3-d", lambda t: _blobs().reshape(N // 2, 2, D), 2, (VE, "dim 3")),
    ("shape", "scalar", lambda t: np.float64(3.0), 1, (VE, "scalar")),
    ("shape", "ragged-list", lambda t: [[1.0, 2.0], [3.0]], 1, (VE, "inhomogeneous|sequence")),
    # degenerate values
    ("degenerate", "constant-feature", lambda t: _with(_blobs(), slice(None), 1, 4.0), 2, OK),
    ("degenerate", "all-rows-identical", lambda t: np.ones((N, D)), 2, OK),
    ("degenerate", "all-zero", lambda t: np.zeros((N, D)), 3, OK),
    ("degenerate", "duplicated-rows", lambda t: np.repeat(_blobs()[:10], 4, axis=0), 2, OK),
    ("degenerate", "two-distinct-rows-k3", lambda t: np.repeat(np.eye(2, D), N // 2, axis=0), 3, OK),
    ("degenerate", "collinear", lambda t: np.outer(np.arange(N, dtype=float), [1.0, 2.0, -1.0]), 2, OK),
    # extreme magnitudes
    ("magnitude", "1e150", lambda t: _blobs() * 1e150, 2, OK),
    ("magnitude", "1e-150", lambda t: _blobs() * 1e-150, 2, OK),
    ("magnitude", "offset-1e150", lambda t: _blobs() + 1e150, 2, OK),
    ("magnitude", "mixed-1e150-1e-150", lambda t: _blobs() * np.array([1e150, 1.0, 1e-150]), 2, OK),
    ("magnitude", "float32-1e18", lambda t: (_blobs() * 1e18).astype(np.float32), 2, OK),
    ("magnitude", "float32-1e30", lambda t: (_blobs() * 1e30).astype(np.float32), 2,
     (VE, "do not fit in float32")),
    ("magnitude", "float32-near-max", lambda t: (_blobs() * 3e37).astype(np.float32), 2,
     (VE, "do not fit in float32")),
    ("magnitude", "float32-subnormal", lambda t: (_blobs() * 1e-40).astype(np.float32), 2, OK),
    ("magnitude", "float64-1e300-overflowing-sum", lambda t: _blobs() * 1e300, 2, (VE, "overflow float64")),
    # dtypes
    ("dtype", "int64", lambda t: np.round(_blobs() * 10).astype(np.int64), 2, OK),
    ("dtype", "int8", lambda t: np.clip(np.round(_blobs() * 10), -100, 100).astype(np.int8), 2, OK),
    ("dtype", "uint16", lambda t: np.round(np.abs(_blobs()) * 10).astype(np.uint16), 2, OK),
    ("dtype", "bool", lambda t: _blobs() > 1.0, 2, OK),
    ("dtype", "float16", lambda t: _blobs().astype(np.float16), 2, OK),
    ("dtype", "object-numbers", lambda t: _blobs().astype(object), 2, OK),
    ("dtype", "object-mixed", lambda t: _with(_blobs().astype(object), 0, 0, "a"), 2, (VE, "'a'")),
    ("dtype", "object-none", lambda t: _with(_blobs().astype(object), 0, 0, None), 2, (VE, NAN_MSG)),
    ("dtype", "string", lambda t: _blobs().astype(str), 2, OK),
    ("dtype", "string-words", lambda t: np.full((N, D), "x"), 2, (VE, "'x'")),
    ("dtype", "bytes", lambda t: np.full((N, D), b"x"), 2, (VE, "x")),
    ("dtype", "complex", lambda t: _blobs() + 1j, 2, (VE, "Complex data not supported")),
    # containers and memory layouts
    ("container", "list", lambda t: _blobs().tolist(), 2, OK),
    ("container", "tuple", lambda t: tuple(map(tuple, _blobs())), 2, OK),
    ("container", "non-contiguous-rows", lambda t: np.repeat(_blobs(), 2, axis=0)[::2], 2, OK),
    ("container", "non-contiguous-cols", lambda t: np.repeat(_blobs(), 2, axis=1)[:, ::2], 2, OK),
    ("container", "negative-strides", lambda t: _blobs()[::-1, ::-1], 2, OK),
    ("container", "fortran", lambda t: np.asfortranarray(_blobs()), 2, OK),
    ("container", "read-only", lambda t: _read_only(_blobs()), 2, OK),
    ("container", "read-only-float32", lambda t: _read_only(_blobs().astype(np.float32)), 2, OK),
    ("container", "memmap", lambda t: _memmap(_blobs(), t), 2, OK),
    ("container", "memmap-float32", lambda t: _memmap(_blobs().astype(np.float32), t), 2, OK),
    ("container", "np-matrix", lambda t: _matrix(_blobs()), 2, (TE, "np.matrix")),
    ("container", "dataframe", lambda t: _frame(_blobs()), 2, OK),
    ("container", "dataframe-float32", lambda t: _frame(_blobs().astype(np.float32)), 2, OK),
    ("container", "dataframe-nan", lambda t: _frame(_with(_blobs(), 1, 1, np.nan)), 2, (VE, NAN_MSG)),
]

# (kind, id, constructor parameters, expectation) on the well-posed blobs.
PARAMETER_CASES = [
    ("parameter", "tol-negative", {"tol": -1.0}, (VE, "'tol' parameter")),
    ("parameter", "tol-nan", {"tol": float("nan")}, (VE, "'tol' parameter")),
    ("parameter", "tol-string", {"tol": "1e-3"}, (VE, "'tol' parameter")),
    ("parameter", "max-iter-negative", {"max_iter": -1}, (VE, "'max_iter' parameter")),
    ("parameter", "max-iter-float", {"max_iter": 10.0}, (VE, "'max_iter' parameter")),
    ("parameter", "max-iter-zero", {"max_iter": 0}, OK),
    ("parameter", "n-components-zero", {"n_components": 0}, (VE, "n_components")),
    ("parameter", "n-components-negative", {"n_components": -2}, (VE, "n_components")),
    ("parameter", "n-init-zero", {"n_init": 0}, (VE, "'n_init' parameter")),
    ("parameter", "reg-covar-negative", {"reg_covar": -1e-6}, (VE, "'reg_covar' parameter")),
    ("parameter", "reg-covar-inf", {"reg_covar": float("inf")}, (VE, "reg_covar")),
    ("parameter", "covariance-type-unknown", {"covariance_type": "banana"},
     (VE, "covariance_type")),
    ("parameter", "covariance-type-none", {"covariance_type": None}, (VE, "covariance_type")),
    ("parameter", "init-params-unknown", {"init_params": "banana"}, (VE, "'init_params' parameter")),
    ("parameter", "random-state-negative", {"random_state": -1}, (VE, "random_state|[Ss]eed")),
    ("parameter", "random-state-string", {"random_state": "x"}, (VE, "random_state|[Ss]eed")),
    ("parameter", "n-threads-zero", {"n_threads": 0}, (VE, "'n_threads' parameter")),
    ("parameter", "verbose-interval-zero", {"verbose_interval": 0}, (VE, "'verbose_interval' parameter")),
    ("parameter", "learning-decay-out", {"learning_decay": 2.0}, (VE, "'learning_decay' parameter")),
    ("parameter", "learning-offset-zero", {"learning_offset": 0.0}, (VE, "'learning_offset' parameter")),
    ("parameter", "callback-not-callable", {"callback": 3}, (VE, "'callback' parameter")),
    ("parameter", "warm-start-string", {"warm_start": "yes"}, (VE, "'warm_start' parameter")),
]

_EYE = np.eye(D)
_NOT_PD = np.diag([1.0, -1.0, 1.0])
# (kind, id, constructor parameters, expectation); K = 2 and covariance type in the parameters.
INIT_CASES = [
    ("initial", "weights-not-summing-to-1", {"weights_init": [0.3, 0.3]}, (VE, "normalized")),
    ("initial", "weights-negative", {"weights_init": [1.5, -0.5]}, (VE, "range \\[0, 1\\]")),
    ("initial", "weights-wrong-shape", {"weights_init": [1.0]}, (VE, "'weights' should have the shape")),
    ("initial", "weights-nan", {"weights_init": [np.nan, 1.0]}, (VE, NAN_MSG)),
    ("initial", "weights-string", {"weights_init": ["a", "b"]}, (VE, "'a'")),
    ("initial", "weights-zero-component", {"weights_init": [1.0, 0.0]}, OK),
    ("initial", "means-wrong-shape", {"means_init": np.zeros((3, D))}, (VE, "'means' should have the shape")),
    ("initial", "means-1d", {"means_init": np.zeros(D)}, (VE, "'means' should have the shape|1D")),
    ("initial", "means-inf", {"means_init": [[np.inf] * D, [0.0] * D]}, (VE, INF_MSG)),
    ("initial", "means-nan", {"means_init": [[np.nan] * D, [0.0] * D]}, (VE, NAN_MSG)),
    ("initial", "means-far-away", {"means_init": [[1e150] * D, [0.0] * D]}, OK),
    ("initial", "full-precisions-not-pd", {"precisions_init": np.stack([_EYE, _NOT_PD])},
     (VE, "symmetric, positive-definite")),
    ("initial", "full-precisions-not-symmetric",
     {"precisions_init": np.stack([_EYE, _EYE + np.triu(np.ones((D, D)), 1)])},
     (VE, "symmetric, positive-definite")),
    ("initial", "full-precisions-wrong-shape", {"precisions_init": np.stack([_EYE] * 3)},
     (VE, "'full precision' should have the shape")),
    ("initial", "full-precisions-nan", {"precisions_init": np.stack([_EYE, _EYE * np.nan])},
     (VE, NAN_MSG)),
    ("initial", "tied-precisions-not-pd", {"covariance_type": "tied", "precisions_init": _NOT_PD},
     (VE, "symmetric, positive-definite")),
    ("initial", "tied-precisions-singular", {"covariance_type": "tied", "precisions_init": np.zeros((D, D))},
     (VE, "symmetric, positive-definite")),
    ("initial", "diag-precisions-zero", {"covariance_type": "diag", "precisions_init": np.zeros((2, D))},
     (VE, "'diag precision' should be positive")),
    ("initial", "diag-precisions-inf", {"covariance_type": "diag",
                                        "precisions_init": np.full((2, D), np.inf)}, (VE, INF_MSG)),
    ("initial", "spherical-precisions-negative", {"covariance_type": "spherical",
                                                  "precisions_init": [1.0, -1.0]},
     (VE, "'spherical precision' should be positive")),
    ("initial", "spherical-precisions-wrong-shape", {"covariance_type": "spherical",
                                                     "precisions_init": [1.0, 1.0, 1.0]},
     (VE, "'spherical precision' should have the shape")),
    ("initial", "precisions-huge", {"covariance_type": "diag", "precisions_init": np.full((2, D), 1e300)},
     OK),
]

# (kind, id, make_weights(n), expectation)
WEIGHT_CASES = [
    ("sample_weight", "negative", lambda n: np.r_[-1.0, np.ones(n - 1)], (VE, "non-negative")),
    ("sample_weight", "all-zero", lambda n: np.zeros(n), (VE, "sums to zero|positive sample_weight")),
    ("sample_weight", "one-positive", lambda n: np.r_[1.0, np.zeros(n - 1)], (VE, "positive sample_weight")),
    ("sample_weight", "nan", lambda n: np.r_[np.nan, np.ones(n - 1)], (VE, "NaN or infinity")),
    ("sample_weight", "inf", lambda n: np.r_[np.inf, np.ones(n - 1)], (VE, "NaN or infinity")),
    ("sample_weight", "wrong-length", lambda n: np.ones(n + 1), (VE, "sample_weight.shape")),
    ("sample_weight", "2-d", lambda n: np.ones((n, 1)), (VE, "sample_weight")),
    ("sample_weight", "string", lambda n: np.full(n, "a"), (VE, "sample_weight|'a'")),
    ("sample_weight", "scalar", lambda n: 2.0, OK),
    ("sample_weight", "integers", lambda n: np.arange(n) % 3, OK),
    ("sample_weight", "tiny", lambda n: np.full(n, 1e-300), OK),
    ("sample_weight", "huge", lambda n: np.full(n, 1e300), OK),
    ("sample_weight", "read-only", lambda n: _read_only(np.ones(n)), OK),
]

# (kind, id, make_X(tmp_path), expectation) given to a model fitted on D features.
PREDICT_CASES = [
    ("predict", "nan", lambda t: _with(_blobs(), 0, 0, np.nan), (VE, NAN_MSG)),
    ("predict", "inf", lambda t: _with(_blobs(), 0, 0, np.inf), (VE, INF_MSG)),
    ("predict", "empty", lambda t: np.empty((0, D)), (VE, "0 sample")),
    ("predict", "one-sample", lambda t: _blobs()[:1], OK),
    ("predict", "1-d", lambda t: _blobs()[0], (VE, "Expected 2D array, got 1D")),
    ("predict", "3-d", lambda t: _blobs().reshape(N // 2, 2, D), (VE, "dim 3")),
    ("predict", "wrong-features", lambda t: _blobs(d=D + 1), (VE, f"{D + 1} features")),
    ("predict", "far-1e150", lambda t: _blobs() * 1e150, OK),
    ("predict", "far-1e200", lambda t: _blobs() * 1e200, "underflow"),
    ("predict", "float32-max", lambda t: np.full((3, D), np.finfo(np.float32).max, np.float32), OK),
    ("predict", "int", lambda t: np.round(_blobs()).astype(np.int32), OK),
    ("predict", "bool", lambda t: _blobs() > 0, OK),
    ("predict", "object", lambda t: _blobs().astype(object), OK),
    ("predict", "string", lambda t: _blobs().astype(str), (VE, "bytes/strings")),
    ("predict", "list", lambda t: _blobs().tolist(), OK),
    ("predict", "non-contiguous", lambda t: np.repeat(_blobs(), 2, axis=1)[:, ::2], OK),
    ("predict", "fortran", lambda t: np.asfortranarray(_blobs()), OK),
    ("predict", "read-only", lambda t: _read_only(_blobs()), OK),
    ("predict", "memmap", lambda t: _memmap(_blobs(), t), OK),
    ("predict", "float32", lambda t: _blobs().astype(np.float32), OK),
    ("predict", "complex", lambda t: _blobs() + 1j, (VE, "Complex")),
]

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


# ---------------------------------------------------------------------------
# Driving one entry point
# ---------------------------------------------------------------------------

def _snapshot(value):
    """A deep copy of an input, to compare with after the call."""
    if isinstance(value, np.ndarray):
        return np.array(value, copy=True)
    if hasattr(value, "copy") and hasattr(value, "columns"):
        return value.copy(deep=True)
    if isinstance(value, (list, tuple)):
        return [_snapshot(v) for v in value]
    return value


def _assert_unchanged(before, after, what):
    if isinstance(before, np.ndarray):
        assert isinstance(after, np.ndarray)
        assert before.dtype == after.dtype and before.shape == after.shape, what
        if before.dtype.kind in "fc":
            np.testing.assert_array_equal(before, after, err_msg=f"{what} was modified")
        else:
            assert np.array_equal(before, after), f"{what} was modified"
    elif hasattr(before, "columns"):
        pd = pytest.importorskip("pandas")
        pd.testing.assert_frame_equal(before, after)
    elif isinstance(before, list):
        assert len(before) == len(after), f"{what} changed length"
        for b, a in zip(before, after):
            _assert_unchanged(b, a, what)
    else:
        assert before is after or before == after, f"{what} was modified"


def _assert_finite_model(est):
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        value = np.asarray(getattr(est, name))
        assert np.all(np.isfinite(value)), f"{name} is not finite: {value}"
    assert np.isclose(np.sum(est.weights_), 1.0)
    # max_iter=0 stops before the first E-step, so (as in scikit-learn) no bound yet
    assert np.isfinite(est.lower_bound_) or (est.max_iter == 0 and est.lower_bound_ == -np.inf)


def _fit(entry, X, params, sample_weight=None):
    """Run one fitting entry point; return the fitted estimators (to be checked)."""
    params = {"max_iter": 5, "random_state": 0, "n_threads": 1, **params}
    if entry == "select":
        k = params.pop("n_components", 1)
        cov = params.pop("covariance_type", "full")
        kwargs = {key: params[key] for key in ("max_iter", "random_state", "n_threads", "tol",
                                               "reg_covar", "init_params", "n_init") if key in params}
        result = fastem.select(X, n_components=[k], covariance_types=[cov],
                               sample_weight=sample_weight, **kwargs)
        return list(result.estimators_)
    est = GaussianMixture(**params)
    if entry == "fit":
        est.fit(X, sample_weight=sample_weight)
    elif entry == "fit_predict":
        labels = est.fit_predict(X, sample_weight=sample_weight)
        assert labels.shape == (np.asarray(X).shape[0],)
    elif entry == "partial_fit":
        est.partial_fit(X, sample_weight=sample_weight)
    elif entry == "fit_chunks":
        def chunks():
            # the same rows in two chunks (a shape check of its own applies first)
            arr = X
            if sample_weight is None:
                return [arr]
            return [(arr, sample_weight)]
        est.fit_chunks(chunks)
    return [est]


def _run_fit_case(entry, make_input, expectation, check_inputs):
    """Call `make_input` for fresh inputs, run `entry`, check outcome and inputs."""
    X, params, sample_weight = make_input()
    before = [_snapshot(X), _snapshot(sample_weight)]
    before_params = {k: _snapshot(v) for k, v in params.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if expectation == OK:
            estimators = _fit(entry, X, dict(params), sample_weight)
            for est in estimators:
                _assert_finite_model(est)
        else:
            kinds, pattern = expectation
            with pytest.raises(kinds) as info:
                _fit(entry, X, dict(params), sample_weight)
            assert re.search(pattern, str(info.value)), (
                f"message does not name the problem ({pattern!r}): {info.value}")
    if check_inputs:
        _assert_unchanged(before[0], X, "X")
        _assert_unchanged(before[1], sample_weight, "sample_weight")
        for key, value in params.items():
            _assert_unchanged(before_params[key], value, key)


def _fit_expectation(entry, case_id, expectation):
    # Entry points that cannot be given some inputs, and where the answer differs.
    if entry == "partial_fit" and case_id in ("offset-1e150", "means-far-away"):
        # Online EM recentres its running sums by 1e150 for a component that
        # holds (almost) no weight; their variances are lost to rounding, and
        # the step is refused with the ill-defined-covariance message (the
        # batch entry points fit these).
        return (VE, "ill-defined empirical covariance")
    if entry == "fit_chunks" and case_id == "tuple":
        # a tuple chunk is read as the pair (X, sample_weight)
        return (VE, "a chunk is X or \\(X, sample_weight\\)")
    return expectation


# ---------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("entry", FIT_ENTRIES)
@pytest.mark.parametrize("kind, case_id, make_X, k, expectation", DATA_CASES,
                         ids=[c[1] for c in DATA_CASES])
def test_data(tmp_path, entry, kind, case_id, make_X, k, expectation):
    X = make_X(tmp_path)
    expectation = _fit_expectation(entry, case_id, expectation)
    _run_fit_case(entry, lambda: (X, {"n_components": k}, None), expectation, check_inputs=True)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("kind, case_id, make_X, k, expectation",
                         [c for c in DATA_CASES if c[0] in ("degenerate", "magnitude")],
                         ids=[c[1] for c in DATA_CASES if c[0] in ("degenerate", "magnitude")])
def test_data_every_covariance_type(tmp_path, covariance_type, kind, case_id, make_X, k, expectation):
    X = make_X(tmp_path)
    _run_fit_case("fit", lambda: (X, {"n_components": k, "covariance_type": covariance_type}, None),
                  expectation, check_inputs=True)


# select takes the estimator's fitting parameters, not the constructor-only ones
# (callback, warm_start, ...): those cases go to the other entry points only.
_SELECT_PARAMETERS = {"n_components", "covariance_type", "max_iter", "random_state", "n_threads",
                      "tol", "reg_covar", "init_params", "n_init"}
PARAMETER_CALLS = [(entry, *case) for case in PARAMETER_CASES for entry in FIT_ENTRIES
                   if entry != "select" or set(case[2]) <= _SELECT_PARAMETERS]


@pytest.mark.parametrize("entry, kind, case_id, params, expectation", PARAMETER_CALLS,
                         ids=[f"{c[0]}-{c[2]}" for c in PARAMETER_CALLS])
def test_parameters(entry, kind, case_id, params, expectation):
    X = _blobs()
    _run_fit_case(entry, lambda: (X, {"n_components": 2, **params}, None), expectation,
                  check_inputs=True)


@pytest.mark.parametrize("entry", ["fit", "fit_predict", "fit_chunks", "partial_fit"])
@pytest.mark.parametrize("kind, case_id, params, expectation", INIT_CASES,
                         ids=[c[1] for c in INIT_CASES])
def test_initial_parameters(entry, kind, case_id, params, expectation):
    X = _blobs()
    expectation = _fit_expectation(entry, case_id, expectation)
    _run_fit_case(entry, lambda: (X, {"n_components": 2, **params}, None), expectation,
                  check_inputs=True)


@pytest.mark.parametrize("entry", ["fit", "fit_predict", "fit_chunks", "partial_fit", "select"])
@pytest.mark.parametrize("kind, case_id, make_weights, expectation", WEIGHT_CASES,
                         ids=[c[1] for c in WEIGHT_CASES])
def test_sample_weight(entry, kind, case_id, make_weights, expectation):
    X = _blobs()
    _run_fit_case(entry, lambda: (X, {"n_components": 2}, make_weights(N)), expectation,
                  check_inputs=True)


@pytest.fixture(scope="module", params=COVARIANCE_TYPES)
def fitted(request):
    return GaussianMixture(2, covariance_type=request.param, random_state=0, n_threads=1).fit(_blobs())


@pytest.mark.parametrize("entry", SCORE_ENTRIES)
@pytest.mark.parametrize("kind, case_id, make_X, expectation", PREDICT_CASES,
                         ids=[c[1] for c in PREDICT_CASES])
def test_scoring(tmp_path, fitted, entry, kind, case_id, make_X, expectation):
    X = make_X(tmp_path)
    before = _snapshot(X)
    state = {k: _snapshot(v) for k, v in fitted.__dict__.items() if isinstance(v, np.ndarray)}
    if expectation == "underflow":
        # every density underflows: the log-likelihood is -inf, the posterior undefined
        if entry in ("predict", "predict_proba"):
            expectation = (VE, "underflow to zero")
        else:
            expectation = OK
    if expectation is OK:
        out = getattr(fitted, entry)(X)
        out = np.asarray(out)
        if entry == "predict":
            assert np.all((out >= 0) & (out < fitted.n_components))
        elif entry == "predict_proba":
            assert np.all(np.isfinite(out)), "predict_proba returned NaN/inf"
            np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
        else:
            # a log-density may be -inf far from every component, never NaN or +inf
            assert not np.any(np.isnan(out)) and not np.any(out == np.inf)
    else:
        kinds, pattern = expectation
        with pytest.raises(kinds) as info:
            getattr(fitted, entry)(X)
        assert re.search(pattern, str(info.value)), str(info.value)
    _assert_unchanged(before, X, "X")
    for key, value in state.items():
        np.testing.assert_array_equal(getattr(fitted, key), value, err_msg=f"{key} changed")


def _matrix_counts():
    """Inputs the matrix tries, by kind: (kind -> calls)."""
    counts = {}

    def add(kind, n):
        counts[kind] = counts.get(kind, 0) + n

    for c in DATA_CASES:
        add(c[0], len(FIT_ENTRIES) + (len(COVARIANCE_TYPES) if c[0] in ("degenerate", "magnitude") else 0))
    for c in PARAMETER_CALLS:
        add(c[1], 1)
    for c in INIT_CASES:
        add(c[0], 4)
    for c in WEIGHT_CASES:
        add(c[0], 5)
    for c in PREDICT_CASES:
        add(c[0], len(SCORE_ENTRIES) * len(COVARIANCE_TYPES))
    return counts


# The README's "Hostile-input report" quotes these numbers: update both together.
README_ROWS = {"non-finite": 6, "shape": 12, "degenerate": 6, "magnitude": 9, "dtype": 12,
               "container": 14, "parameter": 22, "initial": 22, "sample_weight": 13, "predict": 21}
README_CALLS = {"non-finite": 30, "shape": 60, "degenerate": 54, "magnitude": 81, "dtype": 60,
                "container": 70, "parameter": 105, "initial": 88, "sample_weight": 65,
                "predict": 336}


def test_matrix_size():
    rows = {}
    for table in (DATA_CASES, PARAMETER_CASES, INIT_CASES, WEIGHT_CASES, PREDICT_CASES):
        for c in table:
            rows[c[0]] = rows.get(c[0], 0) + 1
    assert rows == README_ROWS
    assert _matrix_counts() == README_CALLS


# ---------------------------------------------------------------------------
# missing="em": NaN marks a missing value.  The same driver (input unchanged,
# finite model or a message naming the problem) on the entry points that read
# NaN as missing (fastem.select does not take `missing`).
# ---------------------------------------------------------------------------
MISSING_ENTRIES = ["fit", "fit_predict", "fit_chunks", "partial_fit"]
UNOBSERVED_MSG = "column {} of X has no observed value"


def _gappy(X=None, every=3):
    """_blobs with every `every`-th value of column 1 and a few of column 0 missing, one row empty."""
    X = _blobs() if X is None else X.copy()
    X[::every, 1] = np.nan
    X[1::7, 0] = np.nan
    X[5] = np.nan
    return X


def _empty_but(rows, d=D):
    X = np.full((N, d), np.nan)
    for n, row in rows.items():
        X[n] = row
    return X


def _wide(n=12, d=200, seed=3):
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, d))
    X[: n // 2] += 3.0
    X[r.random(X.shape) < 0.1] = np.nan
    return X


def _near_singular(n=400, seed=4):
    # Columns 0 and 1 equal to 1e-9: Sigma is nearly singular, and Lambda_mm of
    # a row missing one of them is huge and ill-conditioned.
    r = np.random.default_rng(seed)
    z = r.normal(size=n)
    X = np.column_stack([z, z + 1e-9 * r.normal(size=n), r.normal(size=n)])
    X[: n // 2] += 5.0
    X[::3, 1] = np.nan
    X[1::3, 0] = np.nan
    return X


# (id, make_X(tmp_path), n_components, expectation)
MISSING_DATA_CASES = [
    ("gaps", lambda t: _gappy(), 2, OK),
    ("all-nan", lambda t: np.full((N, D), np.nan), 2, (VE, UNOBSERVED_MSG.format(0))),
    ("one-column-all-nan", lambda t: _with(_gappy(), slice(None), 2, np.nan), 2,
     (VE, UNOBSERVED_MSG.format(2))),
    # One row with an observed value and K = 2: as few rows as components is refused.
    ("one-observed-value-in-all", lambda t: _with(np.full((N, 1), np.nan), 3, 0, 1.5), 2,
     (VE, "at least n_components = 2 rows with an observed value")),
    ("every-row-empty-but-one-k1", lambda t: _empty_but({7: [1.0, 2.0, 3.0]}), 1, OK),
    ("every-row-empty-but-one-k2", lambda t: _empty_but({7: [1.0, 2.0, 3.0]}), 2,
     (VE, "at least n_components = 2 rows with an observed value")),
    ("every-row-empty-but-two-k2", lambda t: _empty_but({7: [1.0, 2.0, 3.0], 30: [4.0, 0.0, 1.0]}),
     2, OK),
    ("inf-and-nan", lambda t: _with(_gappy(), 4, 0, np.inf), 2, (VE, INF_MSG)),
    ("-inf-and-nan", lambda t: _with(_gappy(), 4, 2, -np.inf), 2, (VE, INF_MSG)),
    ("inf-in-a-row-with-nan", lambda t: _with(_gappy(), 3, 0, np.inf), 2, (VE, INF_MSG)),
    ("huge-next-to-nan", lambda t: _with(_gappy(), 3, 0, 1e200), 2, (VE, "magnitude 1e\\+200")),
    ("huge-in-a-column-of-nan", lambda t: _with(_gappy(), 6, 1, -1e300), 2, (VE, "overflow float64")),
    ("float32-nan", lambda t: _gappy().astype(np.float32), 2, OK),
    ("float32-nan-and-inf", lambda t: _with(_gappy(), 4, 0, np.inf).astype(np.float32), 2,
     (VE, INF_MSG)),
    ("memmap-nan", lambda t: _memmap(_gappy(), t), 2, OK),
    ("memmap-fortran-nan", lambda t: _fortran_memmap(_gappy(), t), 2, OK),
    ("read-only-nan", lambda t: _read_only(_gappy()), 2, OK),
    ("wide-d200", lambda t: _wide(), 2, OK),
    ("near-singular-lambda-mm", lambda t: _near_singular(), 2, OK),
]


def _fortran_memmap(X, tmp_path):
    path = tmp_path / "fortran.dat"
    m = np.memmap(path, dtype=X.dtype, mode="w+", shape=X.shape, order="F")
    m[:] = X
    m.flush()
    return np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape, order="F")


@pytest.mark.parametrize("entry", MISSING_ENTRIES)
@pytest.mark.parametrize("case_id, make_X, k, expectation", MISSING_DATA_CASES,
                         ids=[c[0] for c in MISSING_DATA_CASES])
def test_missing_em_data(tmp_path, entry, case_id, make_X, k, expectation):
    X = make_X(tmp_path)
    _run_fit_case(entry, lambda: (X, {"n_components": k, "missing": "em"}, None), expectation,
                  check_inputs=True)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("case_id", ["gaps", "one-observed-value-in-all", "every-row-empty-but-two-k2",
                                     "wide-d200", "near-singular-lambda-mm", "float32-nan"])
def test_missing_em_data_every_covariance_type(tmp_path, covariance_type, case_id):
    _, make_X, k, expectation = next(c for c in MISSING_DATA_CASES if c[0] == case_id)
    X = make_X(tmp_path)
    for reg_covar in (1e-6, 0.0):
        params = {"n_components": k, "missing": "em", "covariance_type": covariance_type,
                  "reg_covar": reg_covar}
        try:
            _run_fit_case("fit", lambda: (X, params, None), expectation, check_inputs=True)
        except ValueError as error:
            # Without regularisation a collapsed component is scikit-learn's error:
            # a clear refusal, never a crash, a hang or NaN in the model.
            assert reg_covar == 0.0 and "ill-defined empirical covariance" in str(error), error


def test_missing_em_empty_rows_are_counted_and_left_out(tmp_path):
    X = _gappy()
    est = GaussianMixture(2, missing="em", random_state=0).fit(X)
    assert est.n_empty_rows_ == 1
    single = GaussianMixture(1, missing="em", random_state=0).fit(_empty_but({7: [1.0, 2.0, 3.0]}))
    assert single.n_empty_rows_ == N - 1
    # (the M-step's count floor of 10 eps moves it by rounding)
    np.testing.assert_allclose(single.means_, [[1.0, 2.0, 3.0]], rtol=1e-13)
    # the one row's log-density, not diluted by the N - 1 empty ones
    assert single.lower_bound_ == pytest.approx(single.score_samples([[1.0, 2.0, 3.0]])[0])


# (kind, id, make_weights(n), expectation)
MISSING_WEIGHT_CASES = [
    ("sample_weight", "nan-weight", lambda n: np.where(np.arange(n) == 4, np.nan, 1.0),
     (VE, "sample_weight contains NaN")),
    ("sample_weight", "inf-weight", lambda n: np.where(np.arange(n) == 4, np.inf, 1.0),
     (VE, "sample_weight contains NaN or infinity")),
    ("sample_weight", "zero-weight-on-the-gappy-rows",
     lambda n: np.where(np.arange(n) % 3 == 0, 0.0, 1.0), OK),
    ("sample_weight", "zero-weight-on-every-row-observing-column-1",
     lambda n: np.where(np.arange(n) % 3 == 0, 1.0, 0.0),
     (VE, UNOBSERVED_MSG.format(1) + ".*zero weight")),
]


@pytest.mark.parametrize("entry", MISSING_ENTRIES)
@pytest.mark.parametrize("kind, case_id, make_weights, expectation", MISSING_WEIGHT_CASES,
                         ids=[c[1] for c in MISSING_WEIGHT_CASES])
def test_missing_em_sample_weight(entry, kind, case_id, make_weights, expectation):
    X = _gappy()
    _run_fit_case(entry, lambda: (X, {"n_components": 2, "missing": "em"}, make_weights(N)),
                  expectation, check_inputs=True)


@pytest.mark.parametrize("entry", MISSING_ENTRIES)
def test_missing_bogus_names_the_parameter(entry):
    X = _gappy()
    with pytest.raises(fastem.exceptions.InvalidParameterError, match="'missing' parameter"):
        _fit(entry, X, {"n_components": 2, "missing": "bogus"})
    with pytest.raises(fastem.exceptions.InvalidParameterError, match="'missing' parameter"):
        _fit(entry, _blobs(), {"n_components": 2, "missing": None})


@pytest.fixture(scope="module", params=COVARIANCE_TYPES)
def fitted_with_gaps(request):
    return GaussianMixture(2, covariance_type=request.param, random_state=0, n_threads=1,
                           missing="em").fit(_gappy())


MISSING_SCORE_ENTRIES = SCORE_ENTRIES + ["impute"]

# (id, make_X(tmp_path), expectation): "empty" checks what an all-NaN row gets.
MISSING_PREDICT_CASES = [
    ("gaps", lambda t: _gappy(), OK),
    ("empty-row-after-observed-rows", lambda t: _with(_blobs()[:6], 4, slice(None), np.nan), OK),
    ("all-nan", lambda t: np.full((5, D), np.nan), OK),
    ("inf-and-nan", lambda t: _with(_gappy(), 4, 0, np.inf), (VE, INF_MSG)),
    ("wrong-feature-count", lambda t: _gappy()[:, :2], (VE, "expecting 3 features")),
    ("float32-nan", lambda t: _gappy().astype(np.float32), OK),
    ("memmap-nan", lambda t: _memmap(_gappy(), t), OK),
    ("huge-next-to-nan", lambda t: _with(_with(_blobs()[:4], 0, 1, np.nan), 0, 0, 1e200), "underflow"),
]


@pytest.mark.parametrize("entry", MISSING_SCORE_ENTRIES)
@pytest.mark.parametrize("case_id, make_X, expectation", MISSING_PREDICT_CASES,
                         ids=[c[0] for c in MISSING_PREDICT_CASES])
def test_missing_em_scoring(tmp_path, fitted_with_gaps, entry, case_id, make_X, expectation):
    est = fitted_with_gaps
    X = make_X(tmp_path)
    before = _snapshot(X)
    state = {k: _snapshot(v) for k, v in est.__dict__.items() if isinstance(v, np.ndarray)}
    if expectation == "underflow":
        # row 0 is 1e200 from every component: its density is 0 (never the mean's),
        # its posterior and fill undefined
        undefined = entry in ("predict", "predict_proba", "impute")
        expectation = (VE, "underflow to zero") if undefined else OK
    if case_id == "all-nan" and entry == "score":
        expectation = (VE, "no row of X has an observed value")
    if expectation is OK:
        out = np.asarray(getattr(est, entry)(X))
        empty = np.isnan(np.asarray(X)).all(axis=1)
        if entry == "predict_proba":
            assert np.all(np.isfinite(out))
            np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
            np.testing.assert_array_equal(
                out[empty], np.broadcast_to(est.weights_.astype(out.dtype), out[empty].shape))
        elif entry == "predict":
            np.testing.assert_array_equal(out[empty], np.argmax(est.weights_))
        elif entry == "impute":
            assert out.shape == np.shape(X) and out.dtype == np.asarray(X).dtype
            assert np.all(np.isfinite(out)), "impute left NaN/inf"
            observed = ~np.isnan(np.asarray(X))
            np.testing.assert_array_equal(out[observed], np.asarray(X)[observed])
            mixture_mean = (est.weights_.astype(np.float64) @ est.means_).astype(out.dtype)
            np.testing.assert_allclose(out[empty], np.broadcast_to(mixture_mean, out[empty].shape),
                                       rtol=1e-6 if out.dtype == np.float32 else 1e-12)
        elif entry == "score_samples":
            assert not np.any(np.isnan(out)) and not np.any(out == np.inf)
            np.testing.assert_array_equal(out[empty], 0.0)
            if case_id == "huge-next-to-nan":
                assert out[0] == -np.inf
        else:
            # -inf for a row whose density is 0 (as without gaps), never NaN
            assert np.isfinite(out) or (case_id == "huge-next-to-nan" and out == -np.inf)
    else:
        kinds, pattern = expectation
        with pytest.raises(kinds) as info:
            getattr(est, entry)(X)
        assert re.search(pattern, str(info.value)), str(info.value)
    _assert_unchanged(before, X, "X")
    for key, value in state.items():
        np.testing.assert_array_equal(getattr(est, key), value, err_msg=f"{key} changed")


def test_impute_needs_a_fitted_model_of_the_same_features():
    with pytest.raises(fastem.NotFittedError):
        GaussianMixture(2, missing="em").impute(_gappy())
    est = GaussianMixture(2, random_state=0).fit(_blobs())   # missing="error": impute still works
    filled = est.impute(_gappy())
    assert not np.isnan(filled).any()
    with pytest.raises(ValueError, match="expecting 3 features"):
        est.impute(_gappy()[:, :2])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_missing_em_model_with_an_extreme_precision_gives_a_result_or_a_clear_error(covariance_type):
    # A component whose precision underflows in the missing coordinates (Lambda_mm
    # numerically singular): a finite answer or a ValueError, never NaN.
    est = GaussianMixture(2, covariance_type=covariance_type, random_state=0,
                          missing="em").fit(_gappy())
    factor = np.array(est.precisions_cholesky_, copy=True)
    if covariance_type == "full":
        factor[0] = np.triu(factor[0])
        factor[0, 0, 0] = 1e-170
    elif covariance_type == "tied":
        factor[0, 0] = 1e-170
    elif covariance_type == "diag":
        factor[0, 0] = 1e-170
    else:
        factor[0] = 1e-170
    est.precisions_cholesky_ = factor
    rows = np.array([[np.nan, 0.3, 6.0], [6.2, np.nan, 5.9], [0.1, 0.2, 0.3], [np.nan] * 3])
    for entry in ("score_samples", "predict_proba", "impute"):
        try:
            with np.errstate(over="ignore", under="ignore", divide="ignore"):
                out = np.asarray(getattr(est, entry)(rows))
        except ValueError as error:
            assert covariance_type in ("full", "tied"), error
            assert "not finite" in str(error) or "underflow" in str(error), error
        else:
            assert not np.isnan(out).any(), f"{entry} gave NaN"


def test_missing_em_row_too_far_to_whiten_under_one_component():
    # Component 0 is so tight that the row's whitened square overflows under it:
    # its posterior goes to component 1, and the fill comes from component 1 alone.
    est = GaussianMixture(2, random_state=0, missing="em").fit(_gappy())
    far = int(np.argmin(np.abs(est.means_[:, 0])))   # the component near 0 ...
    factor = np.array(est.precisions_cholesky_, copy=True)
    factor[far] = np.eye(D) * 1e150                   # ... made of variance 1e-300,
    factor[far, 0, 1] = 5e149                         # coupling the gap to column 0
    est.precisions_cholesky_ = factor
    row = np.array([[1e10, np.nan, 0.0]])
    resp = est.predict_proba(row)
    assert resp[0, far] == 0.0
    filled, std = est.impute(row, return_std=True)
    assert np.all(np.isfinite(filled)) and np.all(np.isfinite(std))
    assert np.isfinite(est.score_samples(row)[0])
