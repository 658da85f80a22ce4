"""Bad input is refused with a ValueError that names the problem.

Never a crash, a hang, or a model with NaN parameters. The `match=` patterns
ask for the name of what is wrong (the parameter, NaN, the shape), not for any
particular wording: test_sklearn_parity.py holds fastem to scikit-learn's exact
texts.
"""
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import sklearn.exceptions

import fastem
from _helpers import COVARIANCE_TYPES, PARAMETER_NAMES


def both(*words):
    """A regex that matches when every word occurs somewhere (any order, any case)."""
    return "(?is)" + "".join(f"(?=.*{w})" for w in words)


@pytest.fixture
def X(make_blobs):
    data, _, _, _ = make_blobs(120, 2, 2)
    return data


@pytest.fixture
def fitted(X):
    return fastem.GaussianMixture(2, random_state=0).fit(X)


def _with(X, row, col, value):
    bad = X.copy()
    bad[row, col] = value
    return bad


# ---------------------------------------------------------------------------
# X
# ---------------------------------------------------------------------------

NON_FINITE = [
    pytest.param(np.nan, r"(?i)nan", id="nan"),
    pytest.param(np.inf, r"(?i)inf", id="inf"),
    pytest.param(-np.inf, r"(?i)inf", id="-inf"),
]


@pytest.mark.parametrize("value, pattern", NON_FINITE)
@pytest.mark.parametrize("method", ["fit", "fit_predict"])
def test_non_finite_X_at_fit(X, method, value, pattern):
    gm = fastem.GaussianMixture(2, random_state=0)
    with pytest.raises(ValueError, match=pattern):
        getattr(gm, method)(_with(X, 17, 1, value))
    assert not hasattr(gm, "means_") or np.all(np.isfinite(gm.means_))


@pytest.mark.parametrize("value, pattern", NON_FINITE)
@pytest.mark.parametrize(
    "method", ["predict", "predict_proba", "score_samples", "score", "bic", "aic"]
)
def test_non_finite_X_after_fit(X, fitted, method, value, pattern):
    with pytest.raises(ValueError, match=pattern):
        getattr(fitted, method)(_with(X, 3, 0, value))


DIMENSION_PATTERN = r"(?i)2d|2-d|two.dim|dimension|dim\b|ndim|reshape"


@pytest.mark.parametrize("method", ["fit", "fit_predict"])
def test_wrong_dimensionality_at_fit(X, method):
    with pytest.raises(ValueError, match=DIMENSION_PATTERN):
        getattr(fastem.GaussianMixture(2), method)(X[:, 0])
    with pytest.raises(ValueError, match=DIMENSION_PATTERN):
        getattr(fastem.GaussianMixture(2), method)(X.reshape(30, 4, 2))
    with pytest.raises(ValueError, match=DIMENSION_PATTERN):
        getattr(fastem.GaussianMixture(1), method)(np.float64(3.0))


@pytest.mark.parametrize(
    "method", ["predict", "predict_proba", "score_samples", "score", "bic", "aic"]
)
def test_wrong_shape_after_fit(X, fitted, method):
    with pytest.raises(ValueError, match=DIMENSION_PATTERN):
        getattr(fitted, method)(X[:, 0])
    with pytest.raises(ValueError, match=DIMENSION_PATTERN):
        getattr(fitted, method)(X.reshape(30, 4, 2))
    with pytest.raises(ValueError, match=r"(?i)features?"):
        getattr(fitted, method)(np.hstack([X, X[:, :1]]))
    with pytest.raises(ValueError, match=r"(?i)features?"):
        getattr(fitted, method)(X[:, :1])


def test_empty_X(X):
    with pytest.raises(ValueError, match=r"(?i)sample"):
        fastem.GaussianMixture(1).fit(X[:0])


def test_more_components_than_samples(X):
    with pytest.raises(ValueError, match=both("n_components", "samples")):
        fastem.GaussianMixture(5).fit(X[:3])


def test_non_numeric_X():
    with pytest.raises(ValueError):
        fastem.GaussianMixture(1).fit([["a", "b"], ["c", "d"], ["e", "f"]])


# ---------------------------------------------------------------------------
# Initial parameters
# ---------------------------------------------------------------------------

GOOD_PRECISIONS = {
    "full": np.stack([np.eye(2), 2.0 * np.eye(2)]),
    "tied": np.eye(2),
    "diag": np.ones((2, 2)),
    "spherical": np.ones(2),
}

NOT_POSITIVE_DEFINITE = [
    # eigenvalues 3 and -1
    pytest.param("full", np.stack([np.eye(2), [[1.0, 2.0], [2.0, 1.0]]]), id="full-indefinite"),
    pytest.param("full", np.stack([np.eye(2), np.zeros((2, 2))]), id="full-zero"),
    pytest.param("tied", np.array([[1.0, 2.0], [2.0, 1.0]]), id="tied-indefinite"),
    pytest.param("tied", np.array([[1.0, 1.0], [1.0, 1.0]]), id="tied-singular"),
    pytest.param("diag", np.array([[1.0, 1.0], [1.0, -1.0]]), id="diag-negative"),
    pytest.param("diag", np.array([[1.0, 0.0], [1.0, 1.0]]), id="diag-zero"),
    pytest.param("spherical", np.array([1.0, -2.0]), id="spherical-negative"),
    pytest.param("spherical", np.array([0.0, 1.0]), id="spherical-zero"),
]


@pytest.mark.parametrize("covariance_type, precisions", NOT_POSITIVE_DEFINITE)
def test_precisions_init_not_positive_definite(X, covariance_type, precisions):
    gm = fastem.GaussianMixture(2, covariance_type=covariance_type, precisions_init=precisions)
    with pytest.raises(ValueError, match=r"(?i)positive"):
        gm.fit(X)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_precisions_init_not_symmetric(X, covariance_type):
    bad = np.array([[2.0, 0.5], [0.0, 2.0]])
    precisions = np.stack([np.eye(2), bad]) if covariance_type == "full" else bad
    gm = fastem.GaussianMixture(2, covariance_type=covariance_type, precisions_init=precisions)
    with pytest.raises(ValueError, match=r"(?i)symmetric"):
        gm.fit(X)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_precisions_init_wrong_shape(X, covariance_type):
    good = GOOD_PRECISIONS[covariance_type]
    wrong_shapes = [good[..., :1], np.concatenate([good, good[:1]]), good[None]]
    for wrong in wrong_shapes:
        gm = fastem.GaussianMixture(2, covariance_type=covariance_type, precisions_init=wrong)
        # (as scikit-learn, a 3-D array where at most 2-D fits is refused by its dimension)
        with pytest.raises(ValueError, match=both("precision", "shape") + "|dim 3"):
            gm.fit(X)


def test_weights_init_wrong_shape(X):
    for wrong in [np.array([0.2, 0.3, 0.5]), np.array([1.0]), np.array([[0.5, 0.5]])]:
        with pytest.raises(ValueError, match=both("weights", "shape")):
            fastem.GaussianMixture(2, weights_init=wrong).fit(X)


def test_means_init_wrong_shape(X):
    for wrong in [np.zeros((3, 2)), np.zeros((2, 3)), np.zeros(2), np.zeros((1, 2, 2))]:
        with pytest.raises(ValueError, match=both("means", "shape") + "|dim 3"):
            fastem.GaussianMixture(2, means_init=wrong).fit(X)


@pytest.mark.parametrize(
    "weights, pattern",
    [([0.3, 0.3], "weights"), ([0.7, 0.7], "weights"), ([1.5, -0.5], "weights"),
     ([0.5, np.nan], "weights|nan")],
)
def test_weights_init_not_a_distribution(X, weights, pattern):
    with pytest.raises(ValueError, match="(?i)" + pattern):
        fastem.GaussianMixture(2, weights_init=np.array(weights)).fit(X)


def test_weights_init_not_summing_to_one_is_named(X):
    with pytest.raises(ValueError, match=r"(?i)sum|normali"):
        fastem.GaussianMixture(2, weights_init=np.array([0.3, 0.3])).fit(X)


@pytest.mark.parametrize("name", ["means_init", "precisions_init"])
def test_non_finite_initial_parameters(X, name):
    value = {"means_init": np.array([[0.0, np.nan], [1.0, 1.0]]),
             "precisions_init": np.stack([np.eye(2), [[np.inf, 0.0], [0.0, 1.0]]])}[name]
    with pytest.raises(ValueError, match=r"(?i)nan|inf|finite"):
        fastem.GaussianMixture(2, **{name: value}).fit(X)


# ---------------------------------------------------------------------------
# Hyper-parameters
# ---------------------------------------------------------------------------

INVALID_PARAMETERS = [
    ("n_components", 0),
    ("n_components", -1),
    ("covariance_type", "bogus"),
    ("tol", -1e-3),
    ("reg_covar", -1e-6),
    ("max_iter", -1),
    ("n_init", 0),
    ("init_params", "bogus"),
    ("n_threads", 0),
    ("verbose_interval", 0),
]


@pytest.mark.parametrize("name, value", INVALID_PARAMETERS)
def test_invalid_parameter_value(X, name, value):
    with pytest.raises(ValueError, match=name):
        fastem.GaussianMixture(**{name: value}).fit(X)


@pytest.mark.parametrize("name, value", INVALID_PARAMETERS)
def test_invalid_parameter_value_via_set_params(X, name, value):
    gm = fastem.GaussianMixture(1)
    with pytest.raises(ValueError, match=name):
        gm.set_params(**{name: value}).fit(X)


# ---------------------------------------------------------------------------
# sample_weight
# ---------------------------------------------------------------------------

def _weights(n, where=None, value=None):
    w = np.ones(n)
    if where is not None:
        w[where] = value
    return w


BAD_SAMPLE_WEIGHTS = [
    pytest.param(lambda n: _weights(n, 4, -1.0),
                 both("sample_weight", "(negative|non-negative|nonnegative|>= ?0)"),
                 id="negative"),
    pytest.param(lambda n: _weights(n, 4, np.nan), both("sample_weight", "(nan|finite)"),
                 id="nan"),
    pytest.param(lambda n: _weights(n, 4, np.inf), both("sample_weight", "(inf|finite)"),
                 id="inf"),
    pytest.param(lambda n: np.ones(n - 1),
                 both("sample_weight", "(shape|length|samples|size|entries|elements)"),
                 id="too-short"),
    pytest.param(lambda n: np.ones(n + 3),
                 both("sample_weight", "(shape|length|samples|size|entries|elements)"),
                 id="too-long"),
    pytest.param(lambda n: np.ones((n, 2)),
                 both("sample_weight", "(shape|1d|1-d|dim)"),
                 id="2-D"),
    pytest.param(lambda n: np.zeros(n), both("sample_weight", "(zero|positive|sum)"),
                 id="all-zero"),
]


@pytest.mark.parametrize("make_weights, pattern", BAD_SAMPLE_WEIGHTS)
@pytest.mark.parametrize("method", ["fit", "fit_predict"])
def test_bad_sample_weight_at_fit(X, method, make_weights, pattern):
    gm = fastem.GaussianMixture(2, random_state=0)
    with pytest.raises(ValueError, match=pattern):
        getattr(gm, method)(X, sample_weight=make_weights(len(X)))
    assert not hasattr(gm, "means_") or np.all(np.isfinite(gm.means_))


@pytest.mark.parametrize("make_weights, pattern", BAD_SAMPLE_WEIGHTS)
@pytest.mark.parametrize("method", ["score", "bic", "aic"])
def test_bad_sample_weight_when_scoring(X, fitted, method, make_weights, pattern):
    with pytest.raises(ValueError, match=pattern):
        getattr(fitted, method)(X, sample_weight=make_weights(len(X)))


def test_fewer_weighted_rows_than_components(X):
    # Only one row carries weight: two components cannot be estimated from it.
    # Either refused, naming the problem, or fitted with finite parameters.
    w = _weights(len(X), slice(1, None), 0.0)
    gm = fastem.GaussianMixture(2, random_state=0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fastem.ConvergenceWarning)
            gm.fit(X, sample_weight=w)
    except ValueError as error:
        assert any(word in str(error) for word in ("sample_weight", "n_components", "reg_covar"))
    else:
        for name in PARAMETER_NAMES:
            assert np.all(np.isfinite(getattr(gm, name))), name


# ---------------------------------------------------------------------------
# Degenerate data
# ---------------------------------------------------------------------------

def _fit_or_reg_covar_error(gm, X):
    """Fit; a ValueError is acceptable only if it points at reg_covar."""
    try:
        with warnings.catch_warnings():
            # Degenerate data may legitimately stop k-means or EM early.
            warnings.simplefilter("ignore", fastem.ConvergenceWarning)
            gm.fit(X)
    except ValueError as error:
        assert "reg_covar" in str(error), f"ValueError without reg_covar: {error}"
        return
    for name in PARAMETER_NAMES:
        assert np.all(np.isfinite(getattr(gm, name))), name
    assert np.isfinite(gm.lower_bound_)
    assert np.all(np.isfinite(gm.score_samples(X)))


def _identical_rows():
    return np.tile([0.1, -0.7], (40, 1))


def _constant_feature(rng):
    X = rng.normal(size=(200, 3))
    X[:, 1] = 2.5
    X[:100, 0] += 6.0
    return X


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_components", [1, 2])
def test_identical_rows_with_default_reg_covar(covariance_type, n_components):
    gm = fastem.GaussianMixture(n_components, covariance_type=covariance_type, random_state=0)
    _fit_or_reg_covar_error(gm, _identical_rows())


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_components", [1, 2])
def test_constant_feature_with_default_reg_covar(rng, covariance_type, n_components):
    gm = fastem.GaussianMixture(n_components, covariance_type=covariance_type, random_state=0)
    _fit_or_reg_covar_error(gm, _constant_feature(rng))


DUPLICATED_POINTS = [
    pytest.param(1, np.tile([1.0, 2.0], (30, 1)), id="identical-rows-K1"),
    pytest.param(2, np.tile([1.0, 2.0], (30, 1)), id="identical-rows-K2"),
    pytest.param(1, np.tile([0.1, -0.7], (30, 1)), id="identical-inexact-rows-K1"),
    pytest.param(
        2, np.vstack([np.tile([1.0, 2.0], (20, 1)), np.tile([5.0, -3.0], (20, 1))]),
        id="two-points-K2",
    ),
    pytest.param(
        2, np.vstack([np.tile([0.1, 0.3], (20, 1)), np.tile([5.3, -3.7], (20, 1))]),
        id="two-inexact-points-K2",
    ),
]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_components, X_dup", DUPLICATED_POINTS)
def test_duplicated_points_without_reg_covar(covariance_type, n_components, X_dup):
    # Every component sits on copies of one point and only reg_covar could
    # make its covariance positive definite. Whether the computed covariance
    # is exactly zero (the factorisation fails: scikit-learn's error, which
    # points at reg_covar) or rounding noise of ~1e-32 (a fit, as scikit-learn
    # carries on too) is up to rounding; either way nothing is NaN or inf.
    gm = fastem.GaussianMixture(
        n_components, covariance_type=covariance_type, reg_covar=0.0, random_state=0
    )
    _fit_or_reg_covar_error(gm, X_dup)


def test_exactly_zero_covariance_raises_sklearns_error():
    # Copies of one exactly representable point: the full covariance is
    # exactly zero and has no Cholesky factor.
    gm = fastem.GaussianMixture(1, reg_covar=0.0)
    with pytest.raises(ValueError, match=r"ill-defined empirical covariance.*reg_covar"):
        gm.fit(np.tile([1.0, 2.0], (30, 1)))
    with pytest.raises(ValueError, match=r"passing float64 data instead of float32"):
        gm.fit(np.tile([1.0, 2.0], (30, 1)).astype(np.float32))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_tiny_positive_variance_without_reg_covar_fits(covariance_type):
    # Two values 16 ulps apart at 1000: a variance of ~1e-24, far below the
    # resolution of the mean but positive, so the factorisation succeeds and
    # EM carries on (as scikit-learn does) instead of raising.
    values = 1000.0 + np.arange(2) * 16 * np.spacing(1000.0)
    X_tiny = np.column_stack([np.repeat(values, 20), np.linspace(-1.0, 1.0, 40)])
    gm = fastem.GaussianMixture(1, covariance_type=covariance_type, reg_covar=0.0).fit(X_tiny)
    for name in PARAMETER_NAMES:
        assert np.all(np.isfinite(getattr(gm, name))), name
    if covariance_type in ("full", "diag"):
        variance = gm.covariances_[0, 0, 0] if covariance_type == "full" else gm.covariances_[0, 0]
        assert 0.0 < variance < 1e-20


# ---------------------------------------------------------------------------
# Not fitted
# ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "method, args",
    [
        ("predict", "X"), ("predict_proba", "X"), ("score_samples", "X"), ("score", "X"),
        ("bic", "X"), ("aic", "X"), ("sample", None),
    ],
)
def test_not_fitted(X, method, args):
    gm = fastem.GaussianMixture(2)
    call = (lambda: getattr(gm, method)(X)) if args else (lambda: getattr(gm, method)(5))
    with pytest.raises(fastem.NotFittedError, match=r"(?i)fit"):
        call()
    # scikit-learn is imported here, so the same error is also its NotFittedError.
    with pytest.raises(sklearn.exceptions.NotFittedError):
        call()


def test_not_fitted_error_is_sklearns_in_either_import_order():
    body = """
        import numpy as np
        gm = fastem.GaussianMixture(2)
        try:
            gm.predict(np.zeros((3, 2)))
        except sklearn.exceptions.NotFittedError as error:
            assert isinstance(error, fastem.NotFittedError)
            assert isinstance(error, ValueError) and isinstance(error, AttributeError)
        else:
            raise AssertionError("predict before fit did not raise")
    """
    for imports in ("import fastem\nimport sklearn.exceptions",
                    "import sklearn.exceptions\nimport fastem"):
        code = imports + "\n" + textwrap.dedent(body)
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, f"{imports!r}:\n{result.stderr}"


def test_sample_needs_a_positive_count(fitted):
    for bad in [0, -3]:
        with pytest.raises(ValueError, match=r"(?i)n_samples|sample"):
            fitted.sample(bad)


def test_sklearn_compatible_exceptions_pickle():
    # joblib and multiprocessing send a worker's exception back by pickling it.
    import pickle
    import subprocess
    import sys

    code = (
        "import pickle, sklearn.exceptions, sklearn.utils._param_validation, fastem\n"
        "from fastem.exceptions import invalid_parameter_error, not_fitted_error\n"
        "for error in (not_fitted_error(fastem.GaussianMixture()), invalid_parameter_error('bad')):\n"
        "    back = pickle.loads(pickle.dumps(error))\n"
        "    assert type(back) is type(error), (type(back), type(error))\n"
        "    assert back.args == error.args\n"
        "    assert isinstance(back, (sklearn.exceptions.NotFittedError,\n"
        "                             sklearn.utils._param_validation.InvalidParameterError))\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("lower", [True, False])
def test_upper_factor_keeps_the_precision(lower):
    from fastem._covariance import upper_factor

    rng = np.random.default_rng(3)
    a = rng.normal(size=(4, 4))
    precision = a @ a.T + 4 * np.eye(4)
    factor = np.linalg.cholesky(precision)
    if not lower:
        factor = np.linalg.cholesky(precision[::-1, ::-1])[::-1, ::-1]   # an upper factor
    upper = upper_factor(factor)
    np.testing.assert_array_equal(np.tril(upper, -1), 0.0)
    np.testing.assert_allclose(upper @ upper.T, precision, rtol=1e-12)
    if not lower:
        assert upper is factor   # already upper: passed through untouched
