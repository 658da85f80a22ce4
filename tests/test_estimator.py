"""The estimator's own guarantees: thread-independence, EM monotonicity,
sample_weight semantics, initialisations, warm start, sampling, n_init, and
its behaviour as a scikit-learn estimator."""
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastem
from _helpers import (
    COVARIANCE_TYPES,
    PARAMETER_NAMES,
    assert_agree,
    assert_bounds_agree,
    assert_log_densities_agree,
    init_kwargs,
    initial_parameters,
    n_free_parameters,
)

INIT_METHODS = ["kmeans", "k-means++", "random", "random_from_data"]
FIT_SCALARS = ["n_iter_", "converged_", "lower_bound_"]


def fit_unconverged(gm, X, **fit_params):
    """Fit a model that is expected to stop at max_iter (tol=0 and the like)."""
    with pytest.warns(fastem.ConvergenceWarning):
        gm.fit(X, **fit_params)
    return gm


def assert_spd(gm):
    """Valid covariances: symmetric positive definite, and precisions their inverses."""
    cov = np.asarray(gm.covariances_, dtype=np.float64)
    prec = np.asarray(gm.precisions_, dtype=np.float64)
    chol = np.asarray(gm.precisions_cholesky_, dtype=np.float64)
    if gm.covariance_type in ("full", "tied"):
        mats = cov if gm.covariance_type == "full" else cov[None]
        precs = prec if gm.covariance_type == "full" else prec[None]
        chols = chol if gm.covariance_type == "full" else chol[None]
        for c, p, u in zip(mats, precs, chols):
            np.testing.assert_allclose(c, c.T, rtol=0, atol=1e-12 * np.abs(c).max())
            assert np.all(np.linalg.eigvalsh(c) > 0)
            eye = np.eye(len(c))
            np.testing.assert_allclose(p @ c, eye, atol=1e-8)
            # precisions_cholesky_ is the upper-triangular U with P = U U^T.
            np.testing.assert_array_equal(np.tril(u, -1), 0.0)
            np.testing.assert_allclose(u @ u.T, p, rtol=1e-10, atol=1e-10 * np.abs(p).max())
    else:
        assert np.all(cov > 0)
        np.testing.assert_allclose(prec * cov, 1.0, rtol=1e-10)
        np.testing.assert_allclose(chol**2, prec, rtol=1e-10)


def assert_valid_model(gm, n_components, n_features):
    for name in PARAMETER_NAMES:
        assert np.all(np.isfinite(getattr(gm, name))), name
    assert gm.weights_.shape == (n_components,)
    assert gm.means_.shape == (n_components, n_features)
    assert np.all(gm.weights_ > 0)
    np.testing.assert_allclose(gm.weights_.sum(), 1.0, rtol=1e-12)
    assert np.isfinite(gm.lower_bound_)
    assert gm.n_features_in_ == n_features
    assert_spd(gm)


def assert_same_model(a, b, exact=True, what=""):
    for name in PARAMETER_NAMES:
        if exact:
            assert np.array_equal(getattr(a, name), getattr(b, name)), f"{what} {name}"
        else:
            assert_agree(getattr(a, name), getattr(b, name), f"{what} {name}")
    if exact:
        for name in FIT_SCALARS:
            assert getattr(a, name) == getattr(b, name), f"{what} {name}"
        assert np.array_equal(np.asarray(a.lower_bounds_), np.asarray(b.lower_bounds_))
    else:
        assert a.n_iter_ == b.n_iter_
        assert_bounds_agree(a.lower_bound_, b.lower_bound_, f"{what} lower_bound_")
        assert_bounds_agree(a.lower_bounds_, b.lower_bounds_, f"{what} lower_bounds_")


# ---------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------

THREAD_COUNTS = [1, 2, 3, 8]
THREAD_CASES = [("kmeans", ct) for ct in COVARIANCE_TYPES] + [
    (init, "full") for init in ["k-means++", "random", "random_from_data"]
]


@pytest.fixture(scope="module")
def large_blobs():
    # Module-scoped (built once): 100k rows, D=3, K=4 gives ~2.3k rows per
    # kernel chunk, so ~43 chunks: several per thread even with 8 threads.
    rng = np.random.default_rng(12345)
    centers = np.array([[-8.0, 0, 0], [0, 8.0, 0], [8.0, 0, 0], [0, -8.0, 4.0]])
    labels = rng.integers(0, 4, size=100_000)
    X = centers[labels] + rng.normal(size=(100_000, 3)) * rng.uniform(0.6, 1.4, size=3)
    return X


@pytest.mark.parametrize("init_params, covariance_type", THREAD_CASES)
def test_bitwise_identical_for_any_thread_count(large_blobs, seed, init_params, covariance_type):
    X = large_blobs
    # the premise: many more chunks than threads
    assert len(X) >= 4 * max(THREAD_COUNTS) * fastem._em.chunk_rows(3)
    models = {}
    for n_threads in THREAD_COUNTS:
        gm = fastem.GaussianMixture(
            4, covariance_type=covariance_type, init_params=init_params,
            random_state=seed, max_iter=8, tol=1e-6, n_threads=n_threads,
        )
        with warnings.catch_warnings():
            # Whether 8 iterations reach tol is irrelevant here; all thread
            # counts must agree on it (converged_ is compared below).
            warnings.simplefilter("ignore", fastem.ConvergenceWarning)
            gm.fit(X)
        models[n_threads] = gm
    reference = models[1]
    assert_valid_model(reference, 4, 3)
    for n_threads, gm in models.items():
        assert_same_model(gm, reference, exact=True, what=f"n_threads={n_threads}")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_predictions_identical_for_any_thread_count(large_blobs, covariance_type):
    X = large_blobs
    gm = fastem.GaussianMixture(4, covariance_type=covariance_type, random_state=0,
                                n_threads=1).fit(X)
    proba_1 = gm.predict_proba(X)
    labels_1 = gm.predict(X)
    log_prob_1 = gm.score_samples(X)
    # predict must be the argmax of predict_proba, whatever the thread count.
    np.testing.assert_array_equal(labels_1, np.argmax(proba_1, axis=1))
    for n_threads in THREAD_COUNTS[1:]:
        gm.set_params(n_threads=n_threads)
        for repeat in range(3):  # a data race shows up only now and then
            assert np.array_equal(gm.score_samples(X), log_prob_1), (n_threads, repeat)
            assert np.array_equal(gm.predict_proba(X), proba_1), (n_threads, repeat)
            labels = gm.predict(X)
            n_wrong = int(np.sum(labels != labels_1))
            assert n_wrong == 0, f"n_threads={n_threads}: {n_wrong} labels differ (try {repeat})"


# ---------------------------------------------------------------------------
# EM guarantees
# ---------------------------------------------------------------------------

def _random_problem(rng):
    """Overlapping, anisotropic clusters: EM takes many small steps here.

    EM's guarantee is for the exact M-step. reg_covar replaces the maximiser
    S by S + reg_covar * I, which can lower the expected log-likelihood by up
    to sum_i (reg_covar / lambda_i)^2 / 4 per step (lambda_i: the component's
    variances). Keeping every cluster's standard deviation >= 0.7 and the
    mixing a rotation keeps that below ~1e-11, far under the tolerance, so any
    decrease seen is the implementation's, not the regularisation's.
    """
    n_features = int(rng.integers(1, 5))
    n_components = int(rng.integers(1, 6))
    n_samples = int(rng.integers(60, 120)) * n_components * n_features
    true_k = int(rng.integers(1, 6))
    centers = rng.normal(scale=3.0, size=(true_k, n_features))
    scales = rng.uniform(0.7, 2.0, size=(true_k, n_features))
    labels = rng.integers(0, true_k, size=n_samples)
    X = centers[labels] + rng.normal(size=(n_samples, n_features)) * scales[labels]
    rotation, _ = np.linalg.qr(rng.normal(size=(n_features, n_features)))
    return X @ rotation, n_components


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_lower_bound_never_decreases(rng, covariance_type):
    for problem in range(10):
        X, n_components = _random_problem(rng)
        init = INIT_METHODS[problem % len(INIT_METHODS)]
        gm = fastem.GaussianMixture(
            n_components, covariance_type=covariance_type, init_params=init,
            tol=0.0, max_iter=30, random_state=problem,
        )
        fit_unconverged(gm, X)
        bounds = np.asarray(gm.lower_bounds_, dtype=np.float64)
        assert len(bounds) == gm.n_iter_ == 30
        assert np.all(np.isfinite(bounds))
        assert bounds[-1] == gm.lower_bound_
        steps = np.diff(bounds)
        allowed = -1e-10 * np.abs(bounds[:-1])
        worst = int(np.argmin(steps - allowed)) if len(steps) else 0
        assert np.all(steps >= allowed), (
            f"problem {problem} ({X.shape}, K={n_components}, init={init}): lower bound "
            f"fell by {-steps[worst]:.3e} at iteration {worst + 2}"
        )


# ---------------------------------------------------------------------------
# sample_weight
# ---------------------------------------------------------------------------

def _weighted_problem(rng, make_blobs, covariance_type, n_samples=300):
    X, _, centers, _ = make_blobs(n_samples, 2, 3)
    return X, initial_parameters(rng, centers, covariance_type)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_weights_equal_repeated_rows(rng, make_blobs, covariance_type):
    X, init = _weighted_problem(rng, make_blobs, covariance_type)
    w = rng.integers(1, 5, size=len(X))
    X_rep = np.repeat(X, w, axis=0)
    params = dict(n_components=3, covariance_type=covariance_type, tol=0.0, max_iter=12)
    weighted = fit_unconverged(
        fastem.GaussianMixture(**params, **init_kwargs(init)), X, sample_weight=w
    )
    repeated = fit_unconverged(fastem.GaussianMixture(**params, **init_kwargs(init)), X_rep)
    assert_same_model(weighted, repeated, exact=False, what="weights vs repeats:")

    # Scoring with weights is scoring the repeated rows.
    assert_log_densities_agree(weighted.score(X, sample_weight=w), repeated.score(X_rep),
                               repeated, "score")
    assert_agree(weighted.bic(X, sample_weight=w), repeated.bic(X_rep), "bic")
    assert_agree(weighted.aic(X, sample_weight=w), repeated.aic(X_rep), "aic")
    # fit_predict with weights is fit(weights) then predict.
    labels = fastem.GaussianMixture(**params, **init_kwargs(init))
    with pytest.warns(fastem.ConvergenceWarning):
        fit_labels = labels.fit_predict(X, sample_weight=w)
    np.testing.assert_array_equal(fit_labels, weighted.predict(X))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_zero_weights_equal_dropped_rows(rng, make_blobs, covariance_type):
    X, init = _weighted_problem(rng, make_blobs, covariance_type)
    # Extra rows, some of them wild outliers: with weight 0 they must not
    # move anything, not even through the scale of the data.
    extra = np.vstack([
        rng.normal(size=(40, 2)) * 5.0,
        rng.uniform(-1e3, 1e3, size=(10, 2)),
    ])
    X_all = np.vstack([X, extra])
    w = np.concatenate([np.ones(len(X)), np.zeros(len(extra))])
    order = rng.permutation(len(X_all))
    X_all, w = X_all[order], w[order]
    params = dict(n_components=3, covariance_type=covariance_type, tol=0.0, max_iter=12)
    weighted = fit_unconverged(
        fastem.GaussianMixture(**params, **init_kwargs(init)), X_all, sample_weight=w
    )
    dropped = fit_unconverged(fastem.GaussianMixture(**params, **init_kwargs(init)), X)
    assert_same_model(weighted, dropped, exact=False, what="zero weights vs dropped:")
    assert_log_densities_agree(weighted.score(X_all, sample_weight=w), dropped.score(X),
                               dropped, "score")
    assert_agree(weighted.bic(X_all, sample_weight=w), dropped.bic(X), "bic")
    assert_agree(weighted.aic(X_all, sample_weight=w), dropped.aic(X), "aic")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_weights_are_normalised(rng, make_blobs, covariance_type):
    # Mixture weights are normalised by the weight sum, and lower_bound_ is a
    # weighted *mean*: multiplying every weight by a constant changes nothing.
    X, init = _weighted_problem(rng, make_blobs, covariance_type)
    w = rng.uniform(0.2, 3.0, size=len(X))
    params = dict(n_components=3, covariance_type=covariance_type, tol=0.0, max_iter=10)
    base = fit_unconverged(
        fastem.GaussianMixture(**params, **init_kwargs(init)), X, sample_weight=w
    )
    for factor in [1e-3, 7.0, 1e4]:
        scaled = fit_unconverged(
            fastem.GaussianMixture(**params, **init_kwargs(init)), X, sample_weight=factor * w
        )
        assert_same_model(scaled, base, exact=False, what=f"weights x {factor}:")
        assert_log_densities_agree(scaled.score(X, sample_weight=factor * w),
                                   base.score(X, sample_weight=w), base, "score")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_weighted_scores_follow_their_definitions(rng, make_blobs, covariance_type):
    X, init = _weighted_problem(rng, make_blobs, covariance_type)
    w = rng.uniform(0.0, 3.0, size=len(X))
    gm = fastem.GaussianMixture(
        3, covariance_type=covariance_type, tol=1e-12, max_iter=500, **init_kwargs(init)
    ).fit(X, sample_weight=w)
    assert gm.converged_
    log_dens = gm.score_samples(X)
    total = np.sum(w * log_dens)
    p = n_free_parameters(covariance_type, 3, 2)
    assert_log_densities_agree(gm.score(X, sample_weight=w), total / w.sum(), gm, "score")
    assert_agree(gm.bic(X, sample_weight=w), -2.0 * total + p * np.log(w.sum()), "bic")
    assert_agree(gm.aic(X, sample_weight=w), -2.0 * total + 2.0 * p, "aic")
    # Unweighted: the usual definitions with n = n_samples.
    assert_agree(gm.bic(X), -2.0 * log_dens.sum() + p * np.log(len(X)), "bic unweighted")
    assert_agree(gm.aic(X), -2.0 * log_dens.sum() + 2.0 * p, "aic unweighted")
    # At convergence the lower bound (taken one E-step earlier) is the
    # weighted mean log-likelihood of the final model.
    np.testing.assert_allclose(gm.lower_bound_, total / w.sum(), rtol=0, atol=1e-9)
    # The mixture weights are the weighted share of responsibilities.
    resp = gm.predict_proba(X)
    expected = (w @ resp) / w.sum()
    np.testing.assert_allclose(gm.weights_, expected, rtol=1e-6)


# ---------------------------------------------------------------------------
# Initialisation
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", INIT_METHODS)
def test_every_init_gives_a_valid_reproducible_model(
    make_blobs, seed, init_params, covariance_type
):
    X, _, centers, _ = make_blobs(900, 2, 3)
    fits = []
    for random_state in [seed, seed, np.random.RandomState(seed)]:
        gm = fastem.GaussianMixture(
            3, covariance_type=covariance_type, init_params=init_params,
            random_state=random_state, max_iter=300,
        )
        fits.append(gm.fit(X))
    for gm in fits:
        assert gm.converged_
        assert_valid_model(gm, 3, 2)
    assert_same_model(fits[1], fits[0], exact=True, what="same int random_state:")
    assert_same_model(fits[2], fits[0], exact=True, what="RandomState(seed):")
    if init_params == "kmeans" or (init_params == "k-means++" and covariance_type != "tied"):
        # On well-separated blobs these find every blob. (Not tied from
        # seed rows: scikit-learn's initial tied scatter sums x x^T over all
        # rows but divides by the 3 seed rows' count, a huge covariance from
        # which EM merges the components into the global mean; fastem
        # reproduces that, as it should.)
        for c in centers:
            assert np.min(np.linalg.norm(fits[0].means_ - c, axis=1)) < 0.5


@pytest.mark.parametrize("init_params", ["k-means++", "random", "random_from_data"])
def test_different_random_states_give_different_inits(make_blobs, init_params):
    # (Not "kmeans": on separated blobs every seed may well reach the same centres.)
    X, _, _, _ = make_blobs(600, 2, 3)
    starts = [
        fastem.GaussianMixture(3, init_params=init_params, random_state=rs, max_iter=0)
        .fit(X).means_
        for rs in range(4)
    ]
    assert any(not np.array_equal(starts[0], s) for s in starts[1:])


def test_max_iter_zero_returns_the_given_initial_parameters(rng, make_blobs):
    # (scikit-learn 1.9.1 raises AttributeError here: it never sets
    # covariances_ when precisions_init is given and no iteration runs.)
    X, _, centers, _ = make_blobs(300, 2, 3)
    weights, means, precisions = initial_parameters(rng, centers, "full")
    gm = fastem.GaussianMixture(3, max_iter=0, **init_kwargs((weights, means, precisions)))
    gm.fit(X)
    assert gm.n_iter_ == 0
    np.testing.assert_allclose(gm.weights_, weights, rtol=1e-15)
    np.testing.assert_allclose(gm.means_, means, rtol=1e-15)
    np.testing.assert_allclose(gm.precisions_, precisions, rtol=1e-10)
    np.testing.assert_allclose(gm.covariances_, np.linalg.inv(precisions), rtol=1e-10)


# ---------------------------------------------------------------------------
# warm_start
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_warm_start_continues_from_previous_fit(make_blobs, covariance_type):
    X, _, _, _ = make_blobs(800, 2, 3, min_dist=4.0)
    params = dict(n_components=3, covariance_type=covariance_type, tol=0.0, random_state=3)
    warm = fastem.GaussianMixture(warm_start=True, max_iter=5, **params)
    fit_unconverged(warm, X)
    first_bounds = list(np.asarray(warm.lower_bounds_))
    fit_unconverged(warm, X)
    assert warm.n_iter_ == 5
    once = fit_unconverged(fastem.GaussianMixture(max_iter=10, **params), X)

    assert_bounds_agree(warm.lower_bound_, once.lower_bound_, "lower_bound_", rtol=1e-12)
    assert_bounds_agree(first_bounds + list(np.asarray(warm.lower_bounds_)), once.lower_bounds_,
                        "lower_bounds_ of 5 + 5 iterations", rtol=1e-12)
    for name in PARAMETER_NAMES:
        assert_agree(getattr(warm, name), getattr(once, name), name, rtol=1e-12)


def test_without_warm_start_each_fit_starts_again(make_blobs):
    X, _, _, _ = make_blobs(800, 2, 3, min_dist=4.0)
    gm = fastem.GaussianMixture(3, tol=0.0, max_iter=5, random_state=3)
    fit_unconverged(gm, X)
    first = {name: np.copy(getattr(gm, name)) for name in PARAMETER_NAMES}
    fit_unconverged(gm, X)
    for name in PARAMETER_NAMES:
        assert np.array_equal(getattr(gm, name), first[name]), name


# ---------------------------------------------------------------------------
# sample
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_matches_model_moments(make_blobs, covariance_type):
    X, _, _, _ = make_blobs(1500, 2, 3)
    gm = fastem.GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)

    Xs, ys = gm.sample(1)
    assert Xs.shape == (1, 2) and ys.shape == (1,)

    n = 200_000
    Xs, ys = gm.sample(n)
    assert Xs.shape == (n, 2) and ys.shape == (n,)
    assert np.issubdtype(ys.dtype, np.integer)
    assert set(np.unique(ys)) <= set(range(3))
    assert np.all(np.isfinite(Xs))

    full_cov = {
        "full": lambda: gm.covariances_,
        "tied": lambda: np.stack([gm.covariances_] * 3),
        "diag": lambda: np.stack([np.diag(c) for c in gm.covariances_]),
        "spherical": lambda: np.stack([c * np.eye(2) for c in gm.covariances_]),
    }[covariance_type]()

    # Every check is a few standard errors wide (6 sigma: a false alarm once
    # in ~10^8 runs per check).
    counts = np.bincount(ys, minlength=3)
    share_se = np.sqrt(gm.weights_ * (1 - gm.weights_) / n)
    assert np.all(np.abs(counts / n - gm.weights_) < 6 * share_se)
    for k in range(3):
        rows = Xs[ys == k]
        cov = full_cov[k]
        mean_se = np.sqrt(np.diag(cov) / len(rows))
        assert np.all(np.abs(rows.mean(axis=0) - gm.means_[k]) < 6 * mean_se), k
        emp = np.cov(rows, rowvar=False)
        var = np.diag(cov)
        cov_se = np.sqrt((np.outer(var, var) + cov**2) / len(rows))
        assert np.all(np.abs(emp - cov) < 6 * cov_se), (k, emp, cov)


def test_sample_is_reproducible_for_fixed_random_state(make_blobs):
    X, _, _, _ = make_blobs(600, 2, 3)
    gm = fastem.GaussianMixture(3, random_state=11).fit(X)
    a = gm.sample(50)
    b = gm.sample(50)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


# ---------------------------------------------------------------------------
# fit_predict, n_init
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("max_iter", [2, 100])
def test_fit_predict_equals_fit_then_predict(make_blobs, covariance_type, max_iter):
    # Also when EM stops early (max_iter=2), where the labels from the last
    # E-step inside the loop would differ from the final parameters' labels.
    X, _, _, _ = make_blobs(700, 2, 4, min_dist=3.0)
    params = dict(n_components=4, covariance_type=covariance_type, max_iter=max_iter,
                  random_state=5, init_params="random")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastem.ConvergenceWarning)
        labels = fastem.GaussianMixture(**params).fit_predict(X)
        gm = fastem.GaussianMixture(**params).fit(X)
    np.testing.assert_array_equal(labels, gm.predict(X))


@pytest.mark.parametrize("init_params", ["kmeans", "random_from_data"])
def test_n_init_keeps_the_best_initialisation(rng, seed, init_params):
    # Five blobs, three components: different starts end in different optima.
    centers = np.array([[-6.0, 0], [0, 0], [6, 0], [0, 6], [0, -6]])
    X = np.vstack([c + rng.normal(size=(100, 2)) for c in centers])
    n_init = 4
    warnings.simplefilter("ignore", fastem.ConvergenceWarning)  # restored by pytest
    # The n_init runs draw their starts one after another from one generator;
    # single fits sharing a generator see the same starts, in the same order.
    shared = np.random.RandomState(seed)
    singles = [
        fastem.GaussianMixture(3, init_params=init_params, random_state=shared).fit(X)
        for _ in range(n_init)
    ]
    best = fastem.GaussianMixture(
        3, init_params=init_params, n_init=n_init, random_state=np.random.RandomState(seed)
    ).fit(X)
    bounds = [s.lower_bound_ for s in singles]
    winner = singles[int(np.argmax(bounds))]
    assert best.lower_bound_ == max(bounds), (best.lower_bound_, bounds)
    assert_same_model(best, winner, exact=True, what=f"n_init={n_init} vs best single:")
    # An int seed starts like RandomState(seed): the first start is singles[0]'s,
    # so n_init can only do better than it.
    more = fastem.GaussianMixture(3, init_params=init_params, n_init=n_init,
                                  random_state=seed).fit(X)
    assert more.lower_bound_ >= singles[0].lower_bound_


# ---------------------------------------------------------------------------
# scikit-learn integration
# ---------------------------------------------------------------------------

def test_get_set_params_and_clone():
    gm = fastem.GaussianMixture(3, covariance_type="diag", reg_covar=1e-4, n_threads=2)
    params = gm.get_params()
    expected = {
        "n_components", "covariance_type", "tol", "reg_covar", "max_iter", "n_init",
        "init_params", "weights_init", "means_init", "precisions_init", "random_state",
        "warm_start", "verbose", "verbose_interval", "n_threads", "learning_decay",
        "learning_offset", "callback", "missing",
    }
    assert set(params) == expected
    assert params["n_components"] == 3 and params["n_threads"] == 2
    copy = clone(gm)
    assert copy is not gm and copy.get_params() == params
    assert gm.set_params(n_components=5, tol=1e-5) is gm
    assert gm.n_components == 5 and gm.tol == 1e-5
    with pytest.raises(ValueError, match="bogus"):
        gm.set_params(bogus=1)


def test_clone_of_fitted_model_is_unfitted(make_blobs):
    X, _, _, _ = make_blobs(300, 2, 2)
    gm = fastem.GaussianMixture(2, random_state=0).fit(X)
    copy = clone(gm)
    assert not hasattr(copy, "means_")
    with pytest.raises(fastem.NotFittedError):
        copy.predict(X)


def test_pipeline(make_blobs):
    X, _, _, _ = make_blobs(600, 3, 3)
    X = X * np.array([1.0, 100.0, 0.01]) + 50.0
    pipe = Pipeline([("scale", StandardScaler()),
                     ("gm", fastem.GaussianMixture(3, random_state=0))]).fit(X)
    Z = StandardScaler().fit_transform(X)
    alone = fastem.GaussianMixture(3, random_state=0).fit(Z)
    np.testing.assert_array_equal(pipe.predict(X), alone.predict(Z))
    assert_log_densities_agree(pipe.score(X), alone.score(Z), alone, "pipeline score")
    assert_log_densities_agree(pipe.score_samples(X), alone.score_samples(Z), alone,
                               "pipeline score_samples")


def test_grid_search_picks_the_true_number_of_components(make_blobs):
    X, _, _, _ = make_blobs(900, 2, 3)
    search = GridSearchCV(
        fastem.GaussianMixture(random_state=0),
        {"n_components": [1, 2, 3], "covariance_type": ["full", "spherical"]},
        cv=3,
    ).fit(X)
    assert search.best_params_["n_components"] == 3
    assert isinstance(search.best_estimator_, fastem.GaussianMixture)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


def test_convergence_warning_is_sklearns_in_either_import_order():
    # "Catchable as scikit-learn's" must hold whether fastem or sklearn was
    # imported first, so each order runs in a fresh interpreter.
    body = """
        import warnings
        import numpy as np
        X = np.random.default_rng(0).normal(size=(200, 2))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fastem.GaussianMixture(2, max_iter=1, tol=0.0, random_state=0).fit(X)
        cats = [w.category for w in caught]
        assert cats, "no warning"
        assert all(issubclass(c, sklearn.exceptions.ConvergenceWarning) for c in cats), cats
        assert all(issubclass(c, fastem.ConvergenceWarning) for c in cats), cats
        with warnings.catch_warnings():
            warnings.simplefilter("error", sklearn.exceptions.ConvergenceWarning)
            try:
                fastem.GaussianMixture(2, max_iter=1, tol=0.0, random_state=0).fit(X)
            except sklearn.exceptions.ConvergenceWarning:
                pass
            else:
                raise AssertionError("sklearn's filter did not catch fastem's warning")
    """
    for imports in ("import fastem\nimport sklearn.exceptions",
                    "import sklearn.exceptions\nimport fastem"):
        code = imports + "\n" + textwrap.dedent(body)
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, f"{imports!r}:\n{result.stderr}"


# check_estimator: one pytest test per scikit-learn check. fastem does not
# inherit from sklearn.base.BaseEstimator (scikit-learn is no runtime
# dependency), and scikit-learn says so with a UserWarning: expected, ignored.
# If even building the checks fails, that is reported as one failing test
# instead of breaking the collection of this whole module.
_NOT_BASE_ESTIMATOR = "ignore:Estimator GaussianMixture does not inherit:UserWarning"
try:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Estimator GaussianMixture does not inherit",
                                UserWarning)
        _sklearn_checks = parametrize_with_checks([fastem.GaussianMixture()])
except Exception as _error:  # noqa: BLE001 - reported by the test below
    _checks_error = _error

    def _sklearn_checks(test):
        def failing(estimator=None, check=None):
            raise AssertionError(f"could not build scikit-learn's checks: {_checks_error!r}")
        failing.__name__ = test.__name__
        return failing


@pytest.mark.filterwarnings(_NOT_BASE_ESTIMATOR)
@_sklearn_checks
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++"])
def test_kmeans_subsample_draws_from_the_weighted_rows(rng, init_params):
    # 10 rows of 100,000 carry weight: a uniform subsample would hold none of
    # them (NaN centres, or an error from choice).  Those 10 rows form three
    # clusters, which the fit must find.
    X = rng.normal(size=(100_000, 2))
    weight = np.zeros(len(X))
    chosen = rng.choice(len(X), size=10, replace=False)
    centres = np.array([[-20.0, 0.0], [0.0, 20.0], [20.0, 0.0]])
    X[chosen] = centres[np.arange(10) % 3] + 0.1 * rng.normal(size=(10, 2))
    weight[chosen] = 1.0
    gm = fastem.GaussianMixture(3, init_params=init_params, random_state=0, reg_covar=1e-3)
    gm.fit(X, sample_weight=weight)
    assert_valid_model(gm, 3, 2)
    # centres are in increasing order of their first coordinate
    np.testing.assert_allclose(gm.means_[np.argsort(gm.means_[:, 0])], centres, atol=0.5)


def test_per_iteration_hook_sees_every_iteration(make_blobs):
    # The hook progress output, callbacks and online fitting attach to.
    seen = []

    class Watched(fastem.GaussianMixture):
        def _after_iteration(self, iteration):
            seen.append(iteration)
            super()._after_iteration(iteration)

    X = make_blobs(600, 2, 3)[0]
    gm = Watched(3, n_init=2, max_iter=50, tol=1e-8, random_state=0).fit(X)
    assert [it.init for it in seen] == sorted(it.init for it in seen)
    assert {it.init for it in seen} == {0, 1}
    best = [it for it in seen if it.lower_bound == gm.lower_bound_]
    assert best, "the kept initialisation's last bound must have been reported"
    runs = {init: [it for it in seen if it.init == init] for init in (0, 1)}
    kept = next(run for run in runs.values() if run[-1].lower_bound == gm.lower_bound_)
    assert [it.n_iter for it in kept] == list(range(1, gm.n_iter_ + 1))
    assert [it.lower_bound for it in kept] == list(gm.lower_bounds_)
    assert np.isinf(kept[0].change)
    for previous, current in zip(kept, kept[1:]):
        assert current.change == current.lower_bound - previous.lower_bound


@pytest.mark.parametrize("max_iter", [0, 3])
def test_verbose_output_is_sklearns(make_blobs, capsys, max_iter):
    from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

    X = make_blobs(300, 2, 2)[0]
    given = dict(weights_init=[0.5, 0.5], means_init=X[:2], max_iter=max_iter, tol=0.0,
                 verbose=1, verbose_interval=1)
    outputs = []
    for cls in (SklearnGaussianMixture, fastem.GaussianMixture):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cls(2, **given).fit(X)
        outputs.append(capsys.readouterr().out)
    assert outputs[1] == outputs[0]
