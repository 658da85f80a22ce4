"""Numerical edge cases EM meets on ordinary data, against scikit-learn where it copes.

- a component that loses all responsibility (what happens is in the
  GaussianMixture docstring's Notes: it is kept, at the count floor);
- well-separated data whose responsibilities underflow to exactly 0 and 1;
- float32 data far from the origin;
- as many features as samples, nearly;
- the two problems on which oneDAL's ``em_gmm`` ("ill-conditioned
  covariance") and pomegranate's Cholesky fail and scikit-learn, with
  ``reg_covar``, fits: fastem fits them and agrees with scikit-learn from the
  same start.

The longer run of the peer-breaking problems (ten iterations against
scikit-learn, which takes ~15 s on two cores) carries the ``soak`` marker: ``-m soak``.
"""
import warnings

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from fastem import GaussianMixture
from fastem.exceptions import ConvergenceWarning

from _helpers import COVARIANCE_TYPES, PARAMETER_NAMES, assert_agree

# Float64 fits from the same start agree to rounding; 1e-6 leaves room for the
# few iterations of chaotic growth a random problem allows.
RTOL = 1e-6
COUNT_FLOOR = 10 * np.finfo(np.float64).eps


def _both(X, **params):
    """The same fit by fastem and by scikit-learn (ConvergenceWarnings ignored)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = GaussianMixture(**params).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's own ConvergenceWarning class
        theirs = SkGaussianMixture(**params).fit(X)
    return ours, theirs


def _assert_finite_spd(est):
    for name in PARAMETER_NAMES:
        assert np.all(np.isfinite(getattr(est, name))), f"{name} is not finite"
    np.testing.assert_allclose(est.weights_.sum(), 1.0, rtol=1e-12)
    cov = est.covariances_
    if est.covariance_type in ("full", "tied"):
        blocks = cov if est.covariance_type == "full" else cov[None]
        for block in blocks:
            np.testing.assert_array_equal(block, block.T)
            assert np.linalg.eigvalsh(block).min() > 0.0
    else:
        assert np.all(cov > 0.0)


def _assert_same(ours, theirs, rtol=RTOL):
    for name in PARAMETER_NAMES:
        assert_agree(getattr(ours, name), getattr(theirs, name), name, rtol=rtol)
    np.testing.assert_allclose(ours.lower_bound_, theirs.lower_bound_, rtol=rtol)


# ---------------------------------------------------------------------------
# A component that loses all responsibility
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_component_losing_all_responsibility_is_kept_at_the_floor(rng, covariance_type):
    # One blob, and a second component started 1e3 away: its responsibilities
    # underflow to exactly 0 at the first E-step.
    X = rng.normal(size=(60, 2))
    params = dict(n_components=2, covariance_type=covariance_type,
                  means_init=[[0.0, 0.0], [1e3, 1e3]], weights_init=[0.5, 0.5],
                  max_iter=5, random_state=0)
    ours, theirs = _both(X, **params)
    _assert_finite_spd(ours)
    # Kept, with the count floor: weight about 10 eps / N, mean at the origin
    # (its sums, ~0, over the floor), and (for its own covariance) reg_covar
    # alone.  A tied component shares the live one's covariance, so at the
    # origin, inside the data, it picks up responsibility again, slowly.
    if covariance_type == "tied":
        assert 0.0 < ours.weights_[1] < 1e-12
    else:
        np.testing.assert_allclose(ours.weights_[1], COUNT_FLOOR / (len(X) + 2 * COUNT_FLOOR),
                                   rtol=1e-6)
        np.testing.assert_allclose(ours.means_[1], 0.0, atol=1e-200)
    if covariance_type == "full":
        np.testing.assert_allclose(ours.covariances_[1], 1e-6 * np.eye(2), rtol=1e-12, atol=1e-200)
    elif covariance_type in ("diag", "spherical"):
        np.testing.assert_array_equal(ours.covariances_[1], 1e-6)
    _assert_same(ours, theirs)
    # Predictions stay defined: every row goes to the live component.
    proba = ours.predict_proba(X)
    assert np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.all(ours.predict(X) == 0)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_empty_component_without_reg_covar_is_a_named_error(rng, covariance_type):
    # With reg_covar=0 the empty component's covariance is exactly 0:
    # scikit-learn's ill-defined-covariance error, never NaN parameters.
    X = rng.normal(size=(60, 2))
    est = GaussianMixture(2, covariance_type=covariance_type, reg_covar=0.0,
                          means_init=[[0.0, 0.0], [1e3, 1e3]], random_state=0)
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        est.fit(X)
    assert not hasattr(est, "means_")


# ---------------------------------------------------------------------------
# Responsibilities that underflow
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_well_separated_blobs_whose_responsibilities_underflow(rng, covariance_type):
    # Blobs 1e4 standard deviations apart: every responsibility is exactly 0
    # or 1 (exp(-5e7) underflows), the log-sum-exp must not produce NaN.
    centres = np.array([[0.0, 0.0, 0.0], [1e4, 0.0, 0.0], [0.0, -1e4, 1e4]])
    X = np.concatenate([c + rng.normal(size=(40, 3)) for c in centres])
    params = dict(n_components=3, covariance_type=covariance_type, means_init=centres + 0.5,
                  max_iter=20, random_state=0)
    ours, theirs = _both(X, **params)
    _assert_finite_spd(ours)
    _assert_same(ours, theirs)
    proba = ours.predict_proba(X)
    assert set(np.unique(proba)) <= {0.0, 1.0}
    np.testing.assert_array_equal(proba.sum(axis=1), 1.0)
    assert np.all(np.isfinite(ours.score_samples(X)))


# ---------------------------------------------------------------------------
# float32 far from the origin
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("offset", [1e4, 1e6])
def test_float32_with_a_large_offset(make_blobs, covariance_type, offset):
    # Unit-variance blobs at 1e4 (1e6) keep about 3 (1) significant digits of
    # their spread in float32.  fastem sums in float64 about the component
    # means, so the float32 fit is the float64 fit of the same (rounded)
    # values, to float32 rounding of the stored parameters, where a fit summed
    # about the origin would lose the variances to cancellation.
    X, *_ = make_blobs(600, 3, 2)
    X32 = (X + offset).astype(np.float32)
    params = dict(n_components=2, covariance_type=covariance_type, random_state=0, max_iter=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours32 = GaussianMixture(**params).fit(X32)
        ours64 = GaussianMixture(**params).fit(X32.astype(np.float64))
    assert ours32.means_.dtype == np.float32
    _assert_finite_spd(ours32)
    np.testing.assert_allclose(ours32.means_, ours64.means_, rtol=1e-6)
    np.testing.assert_allclose(ours32.covariances_, ours64.covariances_, rtol=1e-4,
                               atol=1e-4 * np.abs(ours64.covariances_).max())
    np.testing.assert_array_equal(ours32.predict(X32), ours64.predict(X32.astype(np.float64)))


# ---------------------------------------------------------------------------
# D close to N
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_samples, n_features", [(40, 36), (40, 40), (30, 45)])
def test_features_close_to_or_above_samples(rng, covariance_type, n_samples, n_features):
    # Each component's scatter has rank below D: reg_covar alone keeps it
    # positive definite.  Same start as scikit-learn, same result.
    X = rng.normal(size=(n_samples, n_features))
    X[: n_samples // 2] += 3.0
    params = dict(n_components=2, covariance_type=covariance_type, init_params="random_from_data",
                  random_state=0, max_iter=5, tol=0.0)
    ours, theirs = _both(X, **params)
    _assert_finite_spd(ours)
    _assert_same(ours, theirs)


# ---------------------------------------------------------------------------
# The peer-breaking problems
# ---------------------------------------------------------------------------

PEER_PROBLEMS = [
    # (covariance_type, N, D, K): oneDAL's em_gmm raises "ill-conditioned
    # covariance" on both, pomegranate's Cholesky fails; started from random
    # data points on standard normal data.
    ("full", 2000, 128, 8),
    ("diag", 10000, 64, 64),
]


def _peer_data(seed, n, d):
    return np.random.default_rng(seed).normal(size=(n, d))


# Two iterations keep scikit-learn's share of the default run short; the soak
# run compares ten.
@pytest.mark.parametrize("max_iter", [2, pytest.param(10, marks=pytest.mark.soak)])
@pytest.mark.parametrize("covariance_type, n, d, k", PEER_PROBLEMS,
                         ids=[f"{p[0]}-N{p[1]}-D{p[2]}-K{p[3]}" for p in PEER_PROBLEMS])
def test_peer_breaking_problem_agrees_with_sklearn(seed, covariance_type, n, d, k, max_iter):
    X = _peer_data(seed, n, d)
    params = dict(n_components=k, covariance_type=covariance_type, init_params="random_from_data",
                  random_state=0, max_iter=max_iter, tol=0.0)
    ours, theirs = _both(X, **params)
    _assert_finite_spd(ours)
    _assert_same(ours, theirs)


@pytest.mark.parametrize("covariance_type, n, d, k", PEER_PROBLEMS,
                         ids=[f"{p[0]}-N{p[1]}-D{p[2]}-K{p[3]}" for p in PEER_PROBLEMS])
def test_peer_breaking_problem_fits_to_convergence(seed, covariance_type, n, d, k):
    X = _peer_data(seed, n, d)
    est = GaussianMixture(k, covariance_type=covariance_type, init_params="random_from_data",
                          random_state=0, max_iter=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X)
    _assert_finite_spd(est)
    assert np.isfinite(est.lower_bound_)
    # EM never lowers the bound (beyond rounding) on its way there.
    bounds = np.asarray(est.lower_bounds_)
    assert np.all(np.diff(bounds) >= -1e-9 * np.abs(bounds[1:]))
    proba = est.predict_proba(X[:500])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)



# ---------------------------------------------------------------------------
# Regressions found by the hostile-input matrix
# ---------------------------------------------------------------------------

def test_tied_fit_of_constant_data_far_from_the_origin(rng):
    # Was: "ill-defined empirical covariance".  Every row is 1e150 (1e150 + O(1)
    # rounds to 1e150); the count floor moves each mean an ulp, and the tied
    # M-step's short form of the scatter turned that ulp into -1e269.
    X = rng.normal(size=(40, 3)) + 1e150
    est = GaussianMixture(2, covariance_type="tied", random_state=0).fit(X)
    _assert_finite_spd(est)
    np.testing.assert_allclose(np.diag(est.covariances_), 1e-6, rtol=1e-6)


def test_data_whose_squares_overflow_is_refused_by_name(rng):
    # Was: overflow RuntimeWarnings from the k-means, then the misleading
    # "ill-defined empirical covariance".
    X = rng.normal(size=(40, 3)) * 1e300
    with pytest.raises(ValueError, match="magnitude .*e\\+300.*overflow float64"):
        GaussianMixture(2, random_state=0).fit(X)


@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_rows_whose_densities_all_underflow_have_no_posterior(rng, method):
    # Was: predict_proba rows of zeros (summing to 0) and label 0, silently.
    est = GaussianMixture(2, random_state=0).fit(rng.normal(size=(40, 2)))
    X = np.array([[0.0, 0.0], [1e200, 1e200]])
    with pytest.raises(ValueError, match="1 row\\(s\\) of X \\(the first: row 1\\).*underflow to zero"):
        getattr(est, method)(X)
    np.testing.assert_array_equal(est.score_samples(X)[1:], -np.inf)


def test_float32_log_density_below_float32_range_is_minus_inf():
    # Was: RuntimeWarning "overflow encountered in cast" (an error under -W error).
    X = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
    est = GaussianMixture(1, random_state=0).fit(X)
    far = np.full((1, 2), np.finfo(np.float32).max, dtype=np.float32)
    out = est.score_samples(far)
    assert out.dtype == np.float32 and out[0] == -np.inf
