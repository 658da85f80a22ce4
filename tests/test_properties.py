"""Properties EM guarantees, checked on random small mixtures drawn by hypothesis.

Each example draws a mixture (K 1-4 components, D 1-4 features, N 20-300 rows,
every covariance type, float32 or float64, with or without sample weights),
samples data from it and fits fastem. On every draw:

- the lower bound never decreases from one iteration to the next beyond rounding
  (with ``reg_covar=0``; see ``_fit_unregularised`` for the rare draw where that is
  ill-posed);
- the weights sum to 1, the covariances are symmetric positive definite and every
  fitted array is finite;
- ``predict_proba`` rows sum to 1;
- the fitted model is bitwise identical whatever the thread count.

The default run is short (a few dozen examples per property). A longer profile
runs many more: ``FASTEM_HYPOTHESIS_PROFILE=long python -m pytest tests/test_properties.py``.
Profiles are registered in ``conftest.py``.
"""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

import fastem
from fastem.exceptions import ConvergenceWarning

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

# EM's bound is computed in the data's precision, and rounding may move it a
# little either way once EM has converged. Three sources bound that noise:
# - each row's terms (log-normaliser, log-weight, -0.5 * Mahalanobis) carry a
#   few ulps per feature and component from the Cholesky solve and the
#   log-sum-exp: a few eps * (D + K) of max(1, |bound|);
# - x - mu is only known to eps * |x|: data far from the origin relative to a
#   component's spread (|x| / sigma large) lose that many digits of the
#   Mahalanobis term, whose rounding is then about eps * |x| / sigma per unit
#   of (x - mu) / sigma;
# - the triangular solve behind the Mahalanobis term loses up to
#   eps * cond(Sigma) of it, and a component nearly collapsed onto a
#   hyperplane (what the reg_covar fallback meets) is badly conditioned.
# 16 is the margin over the worst we measured (about 1 of these units).
def _bound_tolerance(bound, model, X):
    eps = np.finfo(X.dtype).eps
    d, k = X.shape[1], model.n_components
    cov = np.asarray(model.covariances_, dtype=np.float64)
    if model.covariance_type in ("full", "tied"):
        eigenvalues = np.linalg.eigvalsh(cov.reshape(-1, d, d))
    else:
        eigenvalues = cov.reshape(-1, d if model.covariance_type == "diag" else 1)
    smallest, largest = eigenvalues.min(axis=1), eigenvalues.max(axis=1)
    conditioning = np.abs(X).max() / np.sqrt(abs(smallest.min()))
    worst_condition_number = (largest / np.abs(smallest)).max()
    return 16 * (d + k) * eps * (max(1.0, abs(bound)) + conditioning
                                 + d * worst_condition_number)


@st.composite
def mixtures(draw, min_rows=20, max_rows=300):
    """A data set sampled from a random mixture, and the estimator settings to fit it."""
    n_components = draw(st.integers(1, 4), label="K")
    n_features = draw(st.integers(1, 4), label="D")
    # Every true component gets enough rows for its covariance to be estimable
    # (more than D); the data are still noisy enough for EM to work.
    floor = max(min_rows, n_components * (n_features + 2))
    n_samples = draw(st.integers(floor, max(floor, max_rows)), label="N")
    covariance_type = draw(st.sampled_from(COVARIANCE_TYPES), label="covariance_type")
    dtype = draw(st.sampled_from([np.float64, np.float32]), label="dtype")
    weighted = draw(st.booleans(), label="sample_weight")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    # Separation in standard deviations: from overlapping (EM slow, many
    # iterations) to well separated (responsibilities underflow to 0/1).
    separation = draw(st.floats(0.5, 12.0), label="separation")
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]), label="scale")
    offset = draw(st.sampled_from([0.0, 10.0, -1e3]), label="offset")

    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_components, n_features)) * separation
    labels = np.concatenate([
        np.arange(n_components),  # each component has at least one row
        rng.integers(0, n_components, n_samples - n_components),
    ])
    X = np.empty((n_samples, n_features))
    for k in range(n_components):
        rows = labels == k
        spread = rng.uniform(0.3, 2.0, size=n_features)
        mixing = np.linalg.qr(rng.normal(size=(n_features, n_features)))[0]
        X[rows] = centers[k] + (rng.normal(size=(rows.sum(), n_features)) * spread) @ mixing
    X = (X * scale + offset).astype(dtype)
    sample_weight = rng.uniform(0.1, 3.0, size=n_samples) if weighted else None
    return dict(
        X=X, sample_weight=sample_weight, n_components=n_components,
        covariance_type=covariance_type, random_state=int(seed % 1000),
    )


def _fit(draw, **params):
    settings_ = dict(
        n_components=draw["n_components"], covariance_type=draw["covariance_type"],
        random_state=draw["random_state"], max_iter=25, tol=0.0,
    )
    settings_.update(params)
    model = fastem.GaussianMixture(**settings_)
    # Not pytest.warns: a fit that raises must reach the caller as it is.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(draw["X"], sample_weight=draw["sample_weight"])
    # tol=0: every fit runs max_iter and says it did not converge; nothing else.
    # (issubclass: with scikit-learn loaded, fastem warns with a subclass of both
    # its own class and scikit-learn's.)
    assert len(caught) == 1 and issubclass(caught[0].category, ConvergenceWarning), caught
    return model


def _fit_unregularised(draw):
    """Fit with ``reg_covar=0``; on a draw where that is ill-posed, a tiny one.

    With ``reg_covar=0`` the M-step is the exact maximiser and EM cannot lower the
    likelihood. A component can still collapse onto fewer than D + 1 points
    (a random start, a component emptied by its neighbours); its covariance is
    then singular, the maximum likelihood is +inf and fastem rightly raises.
    On such a draw we refit with ``reg_covar`` = 1e-10 of the data's variance
    (float64) or 1e-5 (float32, whose eps is 1e-7): adding eps*I moves the
    M-step off the exact maximiser of EM's auxiliary function, which is flat
    there, so the loss is second order in eps and below rounding.
    """
    X = draw["X"]
    try:
        model = _fit(draw, reg_covar=0.0)
    except ValueError as exc:
        if "ill-defined empirical covariance" not in str(exc):
            raise
    else:
        if X.dtype == np.float64 or _stored_covariances_are_pd(model):
            return model, 0.0
        # float32 only: the M-step factorises in float64, and a nearly
        # collapsed component (condition number beyond 1 / eps32 ~ 1e7) can be
        # positive definite there and not once its covariance is stored in
        # float32. That draw is as ill-posed as one that raises.
    relative = 1e-10 if X.dtype == np.float64 else 1e-5
    reg_covar = relative * float(np.var(X.astype(np.float64), axis=0).mean())
    return _fit(draw, reg_covar=reg_covar), reg_covar


def _stored_covariances_are_pd(model):
    cov = np.asarray(model.covariances_, dtype=np.float64)
    if model.covariance_type not in ("full", "tied"):
        return bool(np.all(cov > 0))
    d = cov.shape[-1]
    try:
        np.linalg.cholesky(cov.reshape(-1, d, d))
    except np.linalg.LinAlgError:
        return False
    return True


def _check_fitted(model, n_features):
    k = model.n_components
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        value = getattr(model, name)
        assert np.all(np.isfinite(value)), f"{name} is not finite"
    assert model.weights_.shape == (k,)
    assert np.all(model.weights_ >= 0)
    eps = np.finfo(model.weights_.dtype).eps
    assert abs(float(model.weights_.sum(dtype=np.float64)) - 1.0) <= 8 * k * eps

    cov = np.asarray(model.covariances_, dtype=np.float64)
    if model.covariance_type in ("full", "tied"):
        mats = cov.reshape(-1, n_features, n_features)
        # Stored symmetric exactly: the M-step mirrors one triangle.
        assert np.array_equal(mats, np.swapaxes(mats, 1, 2))
    # Positive definite: the Cholesky factorisation succeeds.
    assert _stored_covariances_are_pd(model)


common = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@common
@given(draw=mixtures())
# A float32 draw at a large offset: its bound is large, so rounding is too.
@example(draw=dict(
    X=(np.random.default_rng(3).normal(size=(200, 2)) + 1e3).astype(np.float32),
    sample_weight=None, n_components=3, covariance_type="full", random_state=0,
))
def test_lower_bound_never_decreases(draw):
    model, reg_covar = _fit_unregularised(draw)
    note(f"reg_covar={reg_covar}")
    bounds = np.asarray(model.lower_bounds_, dtype=np.float64)
    assert len(bounds) == model.n_iter_ == 25
    n_features = draw["X"].shape[1]
    for step, (before, after) in enumerate(zip(bounds[:-1], bounds[1:]), start=1):
        tol = _bound_tolerance(before, model, draw["X"])
        assert after >= before - tol, (
            f"iteration {step + 1} lowered the bound by {before - after:.3g} "
            f"(tolerance {tol:.3g}); bounds {bounds.tolist()}"
        )
    _check_fitted(model, n_features)


@common
@given(draw=mixtures())
def test_fitted_model_is_a_valid_mixture(draw):
    # The default reg_covar, as users fit.
    model = _fit(draw, max_iter=10)
    X = draw["X"]
    _check_fitted(model, X.shape[1])
    proba = model.predict_proba(X)
    assert proba.shape == (X.shape[0], model.n_components)
    assert np.all(np.isfinite(proba)) and np.all(proba >= 0) and np.all(proba <= 1)
    eps = np.finfo(proba.dtype).eps
    np.testing.assert_allclose(proba.sum(axis=1, dtype=np.float64), 1.0,
                               rtol=0, atol=8 * model.n_components * eps)
    labels = model.predict(X)
    assert np.array_equal(labels, np.argmax(proba, axis=1))
    assert np.all(np.isfinite(model.score_samples(X)))


# Two fits of up to 5,000 rows per example: a quarter of the profile's examples.
@settings(common, max_examples=max(10, settings.default.max_examples // 4))
# Up to 5,000 rows, so a pass has several chunks and the lanes are really
# shared among threads (D < 8 reads 1,024-row chunks).
@given(draw=mixtures(max_rows=5000), threads=st.sampled_from([2, 3, 4]))
def test_identical_across_thread_counts(draw, threads):
    one = _fit(draw, max_iter=8, n_threads=1)
    many = _fit(draw, max_iter=8, n_threads=threads)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.array_equal(getattr(one, name), getattr(many, name)), name
    assert one.lower_bounds_ == many.lower_bounds_
    X = draw["X"]
    assert np.array_equal(one.predict_proba(X), many.predict_proba(X))
    assert np.array_equal(one.score_samples(X), many.score_samples(X))


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_covariances_are_exactly_symmetric(covariance_type):
    # tied covariances differed from their transpose in the last bit (the
    # correction term's products were taken in the other order below the
    # diagonal) on about two fits in three of this kind.
    rng = np.random.default_rng(1)
    for seed in range(10):
        X = rng.normal(size=(300, 3))
        X[:100] += 4
        model = fastem.GaussianMixture(3, covariance_type=covariance_type, random_state=seed,
                                       max_iter=5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X)
        mats = model.covariances_.reshape(-1, 3, 3)
        assert np.array_equal(mats, np.swapaxes(mats, 1, 2))
