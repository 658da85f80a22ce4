"""The sufficient-statistics object: against the equations, and as models exchange it."""
import pickle

import numpy as np
import pytest

from fastem import _em
from fastem._stats import GaussianParameters, SufficientStatistics

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
# One feature count per engine code path: columns, one GEMM for all
# components, per-component BLAS.
FEATURE_COUNTS = [3, 10, 20]


def _data(rng, n, d, k):
    X = rng.normal(size=(n, d)) + 5.0   # away from the origin: centring matters
    resp = rng.dirichlet(np.ones(k), size=n)
    weights = rng.uniform(0.0, 2.0, size=n)
    weights[::7] = 0.0
    centres = rng.normal(size=(k, d)) + 5.0
    return X, resp, weights, centres


def _expected(X, resp, weights, centres, tied_centre, statistic):
    """The statistics straight from their definitions (module docstring of fastem._stats)."""
    wr = resp * weights[:, None]
    counts = wr.sum(axis=0)
    diff = X[:, None, :] - centres[None]                        # (n, K, D)
    first = np.einsum("nk,nkd->kd", wr, diff)
    if statistic == "full":
        second = np.einsum("nk,nki,nkj->kij", wr, diff, diff)
    elif statistic == "tied":
        t = X - tied_centre
        second = np.einsum("n,ni,nj->ij", weights, t, t)
    else:
        second = np.einsum("nk,nkd->kd", wr, diff**2)
    return counts, first, second


def _upper(block, statistic):
    return np.triu(block) if statistic in ("full", "tied") else block


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_features", FEATURE_COUNTS)
def test_supplied_responsibilities_follow_the_definitions(rng, covariance_type, n_features):
    X, resp, weights, centres = _data(rng, 700, n_features, 3)
    tied_centre = X.mean(axis=0) + 0.5
    stats = SufficientStatistics(covariance_type, centres, tied_centre)
    stats.add(X, weights, responsibilities=resp, n_threads=2)
    totals = stats.totals()
    counts, first, second = _expected(X, resp, weights, centres, tied_centre, stats.statistic)
    np.testing.assert_allclose(totals.counts, counts, rtol=1e-12)
    np.testing.assert_allclose(totals.first, first, rtol=1e-10, atol=1e-10 * np.abs(first).max())
    np.testing.assert_allclose(totals.second, _upper(second, stats.statistic), rtol=1e-10,
                               atol=1e-12 * np.abs(second).max())
    assert totals.log_likelihood == 0.0
    assert stats.total_weight == pytest.approx(weights.sum(), rel=1e-14)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_recentring_equals_statistics_taken_about_the_new_centres(rng, covariance_type):
    X, resp, weights, centres = _data(rng, 500, 4, 3)
    moved = centres + rng.normal(size=centres.shape)
    before = SufficientStatistics(covariance_type, centres, centres.mean(axis=0))
    before.add(X, weights, responsibilities=resp)
    after = SufficientStatistics(covariance_type, moved, moved.mean(axis=0) - 1.0)
    after.add(X, weights, responsibilities=resp)
    recentred = before.recentred(moved, moved.mean(axis=0) - 1.0)
    for got, want in zip(recentred.totals()[1:], after.totals()[1:]):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-9 * np.abs(want).max())
    assert recentred.total_weight == before.total_weight


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sum_scale_and_pickle(rng, covariance_type):
    X, resp, weights, centres = _data(rng, 400, 5, 2)
    a = SufficientStatistics(covariance_type, centres).add(X[:150], weights[:150], responsibilities=resp[:150])
    b = SufficientStatistics(covariance_type, centres).add(X[150:], weights[150:], responsibilities=resp[150:])
    whole = SufficientStatistics(covariance_type, centres).add(X, weights, responsibilities=resp)
    both = a + b
    for got, want in zip(both.totals()[1:], whole.totals()[1:]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
    half = both.scaled(0.5)
    np.testing.assert_array_equal(half.flat(), both.flat() * 0.5)
    assert half.total_weight == both.total_weight * 0.5
    restored = pickle.loads(pickle.dumps(both))
    np.testing.assert_array_equal(restored.lanes, both.lanes)
    assert (restored.next_chunk, restored.total_weight) == (both.next_chunk, both.total_weight)
    # a and b are unchanged by the sum
    np.testing.assert_array_equal((a + b).lanes, both.lanes)


def test_combining_statistics_of_other_centres_is_refused(rng):
    X, resp, weights, centres = _data(rng, 50, 3, 2)
    a = SufficientStatistics("full", centres)
    b = SufficientStatistics("full", centres + 1.0)
    with pytest.raises(ValueError, match="recentre"):
        a + b
    with pytest.raises(ValueError, match="different models"):
        a + SufficientStatistics("diag", centres)
    with pytest.raises(ValueError, match="factor"):
        a.scaled(-1.0)
    with pytest.raises(ValueError, match="responsibilities must have shape"):
        a.add(X, responsibilities=resp[:, :1])


def _random_model(rng, covariance_type, k, d):
    from fastem import GaussianMixture

    X = rng.normal(size=(200, d)) + 3.0
    gm = GaussianMixture(k, covariance_type=covariance_type, max_iter=2, tol=0, random_state=0)
    with pytest.warns(Warning):
        gm.fit(X)
    return GaussianParameters(gm.weights_, gm.means_, gm.covariances_, gm.precisions_cholesky_)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_features", FEATURE_COUNTS)
def test_statistics_and_m_step_reproduce_the_em_step_bit_for_bit(rng, covariance_type, n_features):
    params = _random_model(rng, covariance_type, 3, n_features)
    X = rng.normal(size=(3000, n_features)) + 3.0
    weights = rng.uniform(0.5, 1.5, size=len(X))
    model = _em.ModelArrays(covariance_type, *params[:2], params.precisions_cholesky, params.covariances)
    stats = SufficientStatistics.of_model(model)
    stats.add(X, weights, model=model, n_threads=2)
    new = stats.m_step(1e-6)
    bound = model.em_step(X, weights, _em.sum_weights(weights, len(X)), 1e-6, 2)
    assert stats.mean_log_likelihood == bound
    np.testing.assert_array_equal(new.weights, model.weights)
    np.testing.assert_array_equal(new.means, model.means)
    np.testing.assert_array_equal(new.covariances, model.covariances)
    np.testing.assert_array_equal(new.precisions_cholesky, model.precisions_cholesky)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_features", FEATURE_COUNTS)
@pytest.mark.parametrize("source", ["model", "responsibilities", "nearest"])
def test_chunk_aligned_blocks_add_up_to_one_pass_bit_for_bit(rng, covariance_type, n_features, source):
    params = _random_model(rng, covariance_type, 3, n_features)
    model = _em.ModelArrays(covariance_type, *params[:2], params.precisions_cholesky, params.covariances)
    stats = SufficientStatistics.of_model(model)
    rows = stats.chunk_rows
    X = rng.normal(size=(37 * rows + 5, n_features)) + 3.0
    weights = rng.uniform(0.0, 2.0, size=len(X))
    resp = rng.dirichlet(np.ones(3), size=len(X))

    def add(target, lo, hi, n_threads):
        extra = {"model": dict(model=model), "nearest": {},
                 "responsibilities": dict(responsibilities=resp[lo:hi])}[source]
        target.add(X[lo:hi], weights[lo:hi], n_threads=n_threads, **extra)

    whole = SufficientStatistics.of_model(model)
    add(whole, 0, len(X), 1)
    blocks = SufficientStatistics.of_model(model)
    bounds = [0, rows, 4 * rows, 4 * rows, 20 * rows, len(X)]   # an empty block too
    for lo, hi in zip(bounds, bounds[1:]):
        add(blocks, lo, hi, 2)
    np.testing.assert_array_equal(blocks.lanes, whole.lanes)
    np.testing.assert_array_equal(blocks.flat(), whole.flat())
    assert blocks.total_weight == whole.total_weight
    assert blocks.next_chunk == whole.next_chunk == 38


def test_readme_example_runs():
    # The README's sufficient-statistics example, run as a newcomer would.
    import pathlib
    import re

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## How fastem is built", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    stats, params = namespace["stats"], namespace["params"]
    assert stats.total_weight == 10_000.0
    np.testing.assert_allclose(params.weights.sum(), 1.0, rtol=1e-14)


def test_tied_statistics_need_responsibilities_that_sum_to_one(rng):
    # The tied scatter counts each row once with its sample weight, so rows of
    # responsibilities summing to anything else would give a wrong covariance.
    X, resp, weights, centres = _data(rng, 300, 3, 2)
    stats = SufficientStatistics("tied", centres)
    with pytest.raises(ValueError, match="sum to one"):
        stats.add(X, weights, responsibilities=resp * 0.5)
    stats.add(X, weights, responsibilities=resp)   # normalised rows are fine
    SufficientStatistics("full", centres).add(X, weights, responsibilities=resp * 0.5)


def test_extras_travel_with_the_lanes(rng):
    X, resp, weights, centres = _data(rng, 200, 3, 2)
    a = SufficientStatistics("diag", centres).add(X, weights, responsibilities=resp)
    b = SufficientStatistics("diag", centres).add(X, weights, responsibilities=resp)
    a.extras["transitions"] = np.array([[1.0, 2.0], [3.0, 4.0]])
    b.extras["transitions"] = np.ones((2, 2))
    b.extras["starts"] = np.array([0.5, 0.5])
    both = a + b
    np.testing.assert_array_equal(both.extras["transitions"], [[2.0, 3.0], [4.0, 5.0]])
    np.testing.assert_array_equal(both.extras["starts"], [0.5, 0.5])
    np.testing.assert_array_equal(both.scaled(2.0).extras["transitions"], [[4.0, 6.0], [8.0, 10.0]])
    np.testing.assert_array_equal(both.recentred(centres + 1.0).extras["starts"], [0.5, 0.5])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(both)).extras["transitions"],
                                  both.extras["transitions"])
    # the operands are left as they were
    np.testing.assert_array_equal(a.extras["transitions"], [[1.0, 2.0], [3.0, 4.0]])
    assert "starts" not in a.extras


def test_rows_added_after_a_sum_continue_its_chunks(rng):
    X, resp, weights, centres = _data(rng, 5000, 3, 2)
    a = SufficientStatistics("full", centres).add(X[:2048], weights[:2048], responsibilities=resp[:2048])
    b = SufficientStatistics("full", centres).add(X[2048:4096], weights[2048:4096],
                                                  responsibilities=resp[2048:4096])
    both = a + b
    assert both.next_chunk == a.next_chunk + b.next_chunk == 4
    both.add(X[4096:], weights[4096:], responsibilities=resp[4096:])
    whole = SufficientStatistics("full", centres).add(X, weights, responsibilities=resp)
    assert both.next_chunk == whole.next_chunk
    for got, want in zip(both.totals()[1:], whole.totals()[1:]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_mean_log_likelihood_of_nothing_is_an_error(rng):
    X, resp, weights, centres = _data(rng, 50, 3, 2)
    with pytest.raises(ValueError, match="no rows"):
        SufficientStatistics("full", centres).mean_log_likelihood
    stats = SufficientStatistics("full", centres).add(X, weights, responsibilities=resp)
    with pytest.raises(ValueError, match="no rows"):
        stats.scaled(0.0).mean_log_likelihood


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_running_statistics_recentred_onto_the_next_model_combine_with_its_e_step(rng, covariance_type):
    # Online EM: the running statistics move to the new model's centres, then
    # the next chunk's E-step statistics are added to them.
    params = _random_model(rng, covariance_type, 3, 4)
    model = _em.ModelArrays(covariance_type, *params[:2], params.precisions_cholesky, params.covariances)
    X = rng.normal(size=(2000, 4)) + 3.0
    running = SufficientStatistics.of_model(model).add(X[:1000], model=model)
    model.em_step(X[:1000], None, 1000.0, 1e-6, 1)          # the model moves on
    step = SufficientStatistics.of_model(model).add(X[1000:], model=model)
    combined = running.recentred_to_model(model) + step
    np.testing.assert_array_equal(combined.centres, model.means)
    assert combined.total_weight == 2000.0
    combined.m_step(1e-6)


def test_statistics_without_a_covariance_type_serve_k_means(rng):
    X = rng.normal(size=(500, 2))
    centres = np.array([[-1.0, 0.0], [1.0, 0.0]])
    inertia, counts, first, second = SufficientStatistics(None, centres).add(X).totals()
    nearest = np.argmin(((X[:, None] - centres[None]) ** 2).sum(axis=2), axis=1)
    np.testing.assert_array_equal(counts, np.bincount(nearest, minlength=2))
    np.testing.assert_allclose(first[1], (X[nearest == 1] - centres[1]).sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(inertia, ((X - centres[nearest]) ** 2).sum(), rtol=1e-12)
    assert second is None
    with pytest.raises(ValueError, match="no M-step"):
        SufficientStatistics(None, centres).m_step(1e-6)
