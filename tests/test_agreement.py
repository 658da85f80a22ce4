"""fastem against scikit-learn, started from identical initial parameters.

Both estimators are given the same weights_init, means_init and precisions_init
(so neither runs its own, differently seeded, k-means), the same max_iter and a
tol that makes both run the same iterations. Same EM semantics then means the
same sequence of parameters up to rounding: the data are a few well-separated
blobs, where the EM map is contractive and rounding differences do not grow.
"""
import warnings

import numpy as np
import pytest
import sklearn.exceptions
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import fastem
from _helpers import (
    COVARIANCE_TYPES,
    PARAMETER_NAMES,
    RTOL,
    assert_agree,
    assert_bounds_agree,
    assert_log_densities_agree,
    init_kwargs,
    initial_parameters,
)


def fit_recording(estimator, X):
    """Fit, returning the warnings raised (all of them, recorded, none raised)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator.fit(X)
    return caught


def fit_both(X, n_components, covariance_type, init, **params):
    common = dict(
        n_components=n_components,
        covariance_type=covariance_type,
        n_init=1,
        random_state=0,
        **params,
    )
    sk = SkGaussianMixture(**common, **init_kwargs(init))
    fe = fastem.GaussianMixture(**common, **init_kwargs(init))
    sk_warnings = fit_recording(sk, X)
    fe_warnings = fit_recording(fe, X)
    return sk, sk_warnings, fe, fe_warnings


def assert_same_warnings(sk, sk_warnings, fe, fe_warnings):
    """Both warn exactly when EM did not converge, and only ConvergenceWarning."""
    fe_other = [w for w in fe_warnings if not issubclass(w.category, fastem.ConvergenceWarning)]
    assert not fe_other, f"unexpected warnings from fastem: {[str(w.message) for w in fe_other]}"
    sk_conv = any(
        issubclass(w.category, sklearn.exceptions.ConvergenceWarning) for w in sk_warnings
    )
    fe_conv = bool(fe_warnings)
    assert fe.converged_ == sk.converged_
    assert fe_conv == sk_conv, (
        f"scikit-learn warned={sk_conv}, fastem warned={fe_conv} "
        f"(converged_={fe.converged_}, max_iter={fe.max_iter})"
    )


def assert_same_fit(sk, fe):
    assert fe.n_iter_ == sk.n_iter_, f"n_iter_: fastem {fe.n_iter_}, sklearn {sk.n_iter_}"
    assert fe.n_features_in_ == sk.n_features_in_
    assert_bounds_agree(fe.lower_bound_, sk.lower_bound_, "lower_bound_")
    assert len(fe.lower_bounds_) == len(sk.lower_bounds_)
    assert_bounds_agree(fe.lower_bounds_, sk.lower_bounds_, "lower_bounds_")
    for name in PARAMETER_NAMES:
        assert_agree(getattr(fe, name), getattr(sk, name), name)


def sklearn_holding(fe, covariance_type):
    """A scikit-learn model that holds fastem's fitted parameters, bit for bit."""
    sk = SkGaussianMixture(n_components=fe.n_components, covariance_type=covariance_type)
    for name in PARAMETER_NAMES + ["converged_", "n_iter_", "lower_bound_", "n_features_in_"]:
        value = getattr(fe, name)
        setattr(sk, name, np.array(value, copy=True) if isinstance(value, np.ndarray) else value)
    return sk


def evaluation_points(rng, X):
    """The training data plus points spread over (and beyond) its bounding box.

    The far points have responsibilities that underflow for all but one
    component and large negative log-densities: the numerically hard cases.
    """
    low, high = X.min(axis=0), X.max(axis=0)
    span = np.maximum(high - low, 1.0)
    extra = rng.uniform(low - span, high + span, size=(200, X.shape[1]))
    return np.vstack([X, extra])


def assert_same_predictions(rng, fe, covariance_type, X):
    """Every scoring method agrees with scikit-learn holding the same parameters."""
    sk = sklearn_holding(fe, covariance_type)
    Z = evaluation_points(rng, X)

    assert_log_densities_agree(fe.score_samples(Z), sk.score_samples(Z), sk, "score_samples")
    # Responsibilities are probabilities: below 1e-12 they are exp() of large
    # negative numbers whose last bits differ, so they are compared absolutely.
    np.testing.assert_allclose(
        fe.predict_proba(Z), sk.predict_proba(Z), rtol=RTOL, atol=1e-12,
        err_msg="predict_proba",
    )

    # Labels must match wherever the best component is not a numerical tie
    # (the two largest responsibilities differ by more than rounding).
    top2 = np.sort(sk.predict_proba(Z), axis=1)[:, -2:]
    decided = top2[:, -1] - top2[:, 0] > 1e-8 if top2.shape[1] > 1 else np.ones(len(Z), bool)
    assert decided.mean() > 0.95
    np.testing.assert_array_equal(fe.predict(Z)[decided], sk.predict(Z)[decided])

    assert_log_densities_agree(fe.score(X), sk.score(X), sk, "score")
    assert_agree(fe.bic(X), sk.bic(X), "bic")
    assert_agree(fe.aic(X), sk.aic(X), "aic")


# (n_samples, n_features, n_components, max_iter, tol)
AGREEMENT_CASES = [
    pytest.param(400, 1, 3, 15, 0.0, id="D1"),
    pytest.param(300, 3, 1, 10, 0.0, id="K1"),
    pytest.param(5, 1, 2, 10, 0.0, id="tiny-N5-K2"),
    pytest.param(8, 2, 2, 10, 0.0, id="tiny-N8-D2-K2"),
    pytest.param(1500, 5, 4, 25, 0.0, id="D5-K4"),
    pytest.param(20000, 4, 3, 8, 0.0, id="N20000-many-chunks"),
    pytest.param(600, 2, 3, 1, 0.0, id="max_iter1"),
    # The kernels switch code paths with the feature count: per-feature columns
    # below 8, one GEMM for all components up to 16 (full), BLAS per component
    # above; each is held to the same agreement.
    pytest.param(3000, 8, 3, 10, 0.0, id="D8-blas-blocks"),
    pytest.param(2500, 12, 4, 10, 0.0, id="D12-K4"),
    pytest.param(2000, 20, 3, 10, 0.0, id="D20-per-component-blas"),
    # A tiny positive tol: both converge, at the same iteration.
    pytest.param(600, 3, 3, 500, 1e-10, id="converges-tol1e-10"),
]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_samples, n_features, n_components, max_iter, tol", AGREEMENT_CASES)
def test_same_iterations_as_sklearn(
    rng, make_blobs, covariance_type, n_samples, n_features, n_components, max_iter, tol
):
    X, _, centers, _ = make_blobs(n_samples, n_features, n_components)
    init = initial_parameters(rng, centers, covariance_type)
    sk, sk_warnings, fe, fe_warnings = fit_both(
        X, n_components, covariance_type, init, max_iter=max_iter, tol=tol
    )
    if tol == 0.0:
        # |change| < 0 never holds: every iteration runs and both must warn.
        assert sk.n_iter_ == max_iter and not sk.converged_
    else:
        assert sk.converged_, "test premise: scikit-learn converges on this problem"
    assert_same_warnings(sk, sk_warnings, fe, fe_warnings)
    assert_same_fit(sk, fe)
    assert_same_predictions(rng, fe, covariance_type, X)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("max_iter", [0, 3])
@pytest.mark.parametrize("init_params", ["kmeans", "random"])
def test_single_component_default_init_matches_sklearn(
    make_blobs, covariance_type, max_iter, init_params
):
    # With K=1, "kmeans" and "random" give every row responsibility 1, so the
    # two libraries start from the same parameters without any *_init.
    # max_iter=0 returns those initial parameters untouched (scikit-learn
    # allows it, does not warn, and reports lower_bound_=-inf, n_iter_=0).
    X, _, _, _ = make_blobs(500, 3, 1)
    params = dict(
        n_components=1, covariance_type=covariance_type, max_iter=max_iter, tol=0.0,
        init_params=init_params, random_state=0,
    )
    sk = SkGaussianMixture(**params)
    fe = fastem.GaussianMixture(**params)
    sk_warnings = fit_recording(sk, X)
    fe_warnings = fit_recording(fe, X)
    assert_same_warnings(sk, sk_warnings, fe, fe_warnings)
    if max_iter == 0:
        assert not fe_warnings
        assert fe.n_iter_ == 0
        assert list(np.asarray(fe.lower_bounds_)) == []
        assert fe.lower_bound_ == sk.lower_bound_ == -np.inf
    assert_same_fit(sk, fe)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", ["k-means++", "random_from_data"])
def test_single_seed_point_initialisation_matches_sklearn(
    make_blobs, covariance_type, init_params
):
    # "k-means++" and "random_from_data" give responsibility 1 to one seed row
    # per component; with K=1 and max_iter=0 the model is that row as mean,
    # weight n_k / n_samples = 1 / n_samples (scikit-learn does not normalise
    # initial weights computed from responsibilities), and a covariance that is
    # reg_covar alone. scikit-learn draws the seed from random_state, so the
    # same seed row is expected. Its covariance is computed as E[x^2] - E[x]^2,
    # which leaves an error of ~eps * x^2 on the 1e-6 result, so the
    # covariance is checked against its exact value instead of against
    # scikit-learn's.
    X, _, _, _ = make_blobs(500, 3, 1)
    reg_covar = 1e-6
    params = dict(
        n_components=1, covariance_type=covariance_type, max_iter=0,
        init_params=init_params, random_state=0, reg_covar=reg_covar,
    )
    sk = SkGaussianMixture(**params).fit(X)
    fe = fastem.GaussianMixture(**params).fit(X)
    assert fe.n_iter_ == 0 and fe.lower_bound_ == -np.inf
    assert_agree(fe.means_, sk.means_, "means_")
    # (n_k carries scikit-learn's +10 eps guard, so the mean is the row to ~1e-15.)
    nearest = np.min(np.max(np.abs(X - fe.means_[0]), axis=1))
    assert nearest <= 1e-12 * np.max(np.abs(X)), "the mean is not a data row"
    assert_agree(fe.weights_, sk.weights_, "weights_")
    if covariance_type == "tied":
        # scikit-learn's tied scatter is X^T X - sum_k n_k m_k m_k^T over all
        # rows, whatever their responsibilities, so with one seed row it is
        # not reg_covar but the scatter of the other rows about the origin:
        # no cancellation there, so scikit-learn's value is accurate.
        assert_agree(fe.covariances_, sk.covariances_, "covariances_")
    else:
        exact = {
            "full": reg_covar * np.eye(3)[None],
            "diag": np.full((1, 3), reg_covar),
            "spherical": np.full(1, reg_covar),
        }[covariance_type]
        np.testing.assert_allclose(fe.covariances_, exact, rtol=1e-12, atol=1e-20)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_predictions_agree_on_converged_default_fit(rng, make_blobs, covariance_type):
    # fastem's own k-means initialisation, run to convergence: whatever
    # parameters it reached, scikit-learn given those parameters must score
    # and label every point the same way.
    X, _, _, _ = make_blobs(3000, 3, 3)
    fe = fastem.GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    assert fe.converged_
    assert_same_predictions(rng, fe, covariance_type, X)


# ---------------------------------------------------------------------------
# float32
# ---------------------------------------------------------------------------

FLOAT32_ARRAYS = PARAMETER_NAMES


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_dtypes_follow_sklearn(make_blobs, covariance_type):
    X, _, _, _ = make_blobs(1000, 3, 3)
    X32 = X.astype(np.float32)
    sk = SkGaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X32)
    fe = fastem.GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X32)
    for name in FLOAT32_ARRAYS:
        assert getattr(fe, name).dtype == getattr(sk, name).dtype, name
    assert fe.score_samples(X32).dtype == sk.score_samples(X32).dtype
    assert fe.predict_proba(X32).dtype == sk.predict_proba(X32).dtype
    assert np.issubdtype(fe.predict(X32).dtype, np.integer)


def _float32_and_float64_fits(rng, X32, centers, covariance_type):
    """Fits of X32 and of its exact float64 copy from one start, 20 iterations each."""
    # The float64 fit sees exactly the same (float32-representable) values, so
    # only the arithmetic precision differs between the two fits.
    X64 = X32.astype(np.float64)
    weights, means, precisions = initial_parameters(rng, centers, covariance_type)
    fits = []
    for data in (X32, X64):
        gm = fastem.GaussianMixture(
            centers.shape[0], covariance_type=covariance_type, max_iter=20, tol=0.0,
            weights_init=weights.copy(), means_init=means.copy(),
            precisions_init=precisions.copy(),
        )
        with pytest.warns(fastem.ConvergenceWarning):
            gm.fit(data)
        fits.append(gm)
    return fits


def _assert_float32_fit_close(f32, f64, X32, rtol, score_rtol=None):
    assert f32.n_iter_ == f64.n_iter_
    assert_bounds_agree(f32.lower_bound_, f64.lower_bound_, "lower_bound_", rtol=rtol)
    assert_bounds_agree(f32.lower_bounds_, f64.lower_bounds_, "lower_bounds_", rtol=rtol)
    for name in PARAMETER_NAMES:
        assert_agree(getattr(f32, name), getattr(f64, name), name, rtol=rtol)
    assert_log_densities_agree(
        f32.score_samples(X32), f64.score_samples(X32.astype(np.float64)), f64,
        "score_samples", rtol=rtol if score_rtol is None else score_rtol,
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_fit_close_to_float64_fit(rng, make_blobs, covariance_type):
    X, _, centers, _ = make_blobs(4000, 3, 3)
    X32 = X.astype(np.float32)
    f32, f64 = _float32_and_float64_fits(rng, X32, centers, covariance_type)
    _assert_float32_fit_close(f32, f64, X32, rtol=1e-4)


# From 8 features on, the E-step goes through BLAS, and float32 input takes the
# chunk products of full (above 16 features), diag and spherical models in single
# precision: each term rounded to float32 (6e-8 relative), summed in single
# precision over D features or a chunk's rows, then in float64 across chunks.
# Diag and spherical expand about the mean of the means, which multiplies that
# rounding by the squared spread of the blobs in standard deviations (~8 here).
# These fits agree to 1e-5 for several seeds, so the float32 tolerance above,
# 1e-4, holds with a margin of ten and is kept.  12 features take the one-GEMM
# full path (its float32 chunks are widened to float64), 24 the per-component one.
@pytest.mark.parametrize("n_features", [12, 24])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_blas_path_close_to_float64_fit(rng, make_blobs, covariance_type, n_features):
    X, _, centers, _ = make_blobs(4000, n_features, 3)
    X32 = X.astype(np.float32)
    f32, f64 = _float32_and_float64_fits(rng, X32, centers, covariance_type)
    _assert_float32_fit_close(f32, f64, X32, rtol=1e-4)


@pytest.mark.parametrize("n_features", [12, 24])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_blas_path_far_from_origin(rng, make_blobs, covariance_type, n_features):
    # Blobs at 1e4: float32 products of uncentred data would cancel every digit of
    # the variances.  Centred in float64 before the products, the float32 fit
    # stays as close to the float64 fit of the same values as near the origin.
    # Only score_samples needs more room, and not for the arithmetic: it runs with
    # the fitted float32 means_, which at 1e4 are rounded by up to 5e-4, and that
    # moves log-densities by ~|x - m| / sigma^2 * 5e-4, a few 1e-3.
    X, _, centers, _ = make_blobs(4000, n_features, 3)
    X32 = (X + 1e4).astype(np.float32)
    f32, f64 = _float32_and_float64_fits(rng, X32, centers + 1e4, covariance_type)
    assert np.all(_all_variances(f32, covariance_type) > 0.0)
    _assert_float32_fit_close(f32, f64, X32, rtol=1e-4, score_rtol=1e-3)


def _all_variances(gm, covariance_type):
    cov = np.asarray(gm.covariances_, dtype=np.float64)
    if covariance_type == "full":
        return np.concatenate([np.linalg.eigvalsh(c) for c in cov])
    if covariance_type == "tied":
        return np.linalg.eigvalsh(cov)
    return cov.ravel()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_large_offset_keeps_positive_variances(rng, covariance_type):
    # Two unit-variance blobs sitting at 1e4: in float32, E[x^2] - E[x]^2
    # would cancel every significant digit (1e8 - 1e8 with a 24-bit mantissa).
    n, d = 4000, 3
    labels = rng.integers(0, 2, size=n)
    X = 1e4 + 6.0 * labels[:, None] + rng.normal(size=(n, d))
    X32 = X.astype(np.float32)
    gm = fastem.GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X32)
    variances = _all_variances(gm, covariance_type)
    assert np.all(np.isfinite(variances))
    assert np.all(variances > 0.0)
    # The blobs have unit variance; the float32 data still resolve it to
    # ~1e-3, so a fit that lost it to cancellation is caught here as well.
    assert np.all((variances > 0.5) & (variances < 2.0)), variances
    for name in PARAMETER_NAMES:
        assert np.all(np.isfinite(getattr(gm, name))), name
    assert np.isfinite(gm.lower_bound_)
    assert np.all(np.isfinite(gm.score_samples(X32)))
