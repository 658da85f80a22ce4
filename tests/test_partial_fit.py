"""Online EM: GaussianMixture.partial_fit and the statistics it is built on.

What stepwise EM promises, checked on data whose answer is known: the
parameters settle on the generating ones, a pass of small chunks gets within
1 % of the batch fit's log-likelihood, and the stream's state is exact
(pickling, thread counts, seeding from a fitted model).
"""
import pickle

import numpy as np
import pytest

from fastem import GaussianMixture
from fastem._online import step_size
from fastem._stats import GaussianParameters, SufficientStatistics
from fastem.exceptions import InvalidParameterError

from _helpers import COVARIANCE_TYPES, PARAMETER_NAMES, random_model

# A known mixture in 2-D: three components, unequal weights, anisotropic covariances.
TRUE_WEIGHTS = np.array([0.5, 0.3, 0.2])
TRUE_MEANS = np.array([[0.0, 0.0], [6.0, 1.0], [-3.0, 7.0]])
TRUE_COVARIANCES = np.array([
    [[1.0, 0.4], [0.4, 0.8]],
    [[0.6, -0.2], [-0.2, 1.2]],
    [[1.5, 0.0], [0.0, 0.5]],
])


def draw(rng, n_rows):
    """Rows of the known mixture, in random order."""
    labels = rng.choice(3, size=n_rows, p=TRUE_WEIGHTS)
    X = np.empty((n_rows, 2))
    for k in range(3):
        rows = labels == k
        X[rows] = rng.multivariate_normal(TRUE_MEANS[k], TRUE_COVARIANCES[k], size=rows.sum())
    return X


def stream(rng, n_chunks, chunk_rows):
    """A generator of chunks of the known mixture, as a stream would deliver them."""
    for _ in range(n_chunks):
        yield draw(rng, chunk_rows)


def in_true_order(gm):
    """The fitted components ordered like the generating ones (nearest true mean)."""
    order = [int(np.argmin(np.linalg.norm(gm.means_ - mean, axis=1))) for mean in TRUE_MEANS]
    assert sorted(order) == [0, 1, 2], "two fitted components on one true one"
    return gm.weights_[order], gm.means_[order], gm.covariances_[order]


def assert_same_model(a, b):
    for name in PARAMETER_NAMES + ["lower_bound_", "n_iter_"]:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def feed(gm, chunks, **kwargs):
    for chunk in chunks:
        gm.partial_fit(chunk, **kwargs)
    return gm


# ---------------------------------------------------------------------------
# The statistics of a mixture
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("total_weight", [1.0, 250.0])
def test_of_parameters_m_step_gives_the_parameters_back(rng, covariance_type, total_weight):
    model, covariances = random_model(rng, covariance_type, n_components=3, n_features=4)
    reg_covar = 1e-3
    given = GaussianParameters(model.weights, model.means, covariances, model.precisions_cholesky)
    stats = SufficientStatistics.of_parameters(covariance_type, given, reg_covar, total_weight)
    assert stats.total_weight == total_weight
    np.testing.assert_allclose(stats.totals().counts, total_weight * model.weights, rtol=1e-15)
    back = stats.m_step(reg_covar)
    for name, got, want in zip(GaussianParameters._fields, back, given):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13, err_msg=name)


def test_of_parameters_survives_recentring(rng):
    # What online EM does to it before every step: recentred onto other means.
    model, covariances = random_model(rng, "full", n_components=2, n_features=3)
    given = GaussianParameters(model.weights, model.means, covariances, model.precisions_cholesky)
    stats = SufficientStatistics.of_parameters("full", given)
    moved = stats.recentred(model.means + rng.normal(size=model.means.shape))
    for got, want in zip(moved.m_step(0.0)[:3], given[:3]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_of_parameters_refuses_parameters_of_another_type(rng):
    model, covariances = random_model(rng, "diag", n_components=2, n_features=3)
    with pytest.raises(ValueError, match="are not a 'full' mixture"):
        SufficientStatistics.of_parameters(
            "full", (model.weights, model.means, covariances, model.precisions_cholesky))


# ---------------------------------------------------------------------------
# The step sizes
# ---------------------------------------------------------------------------

def test_step_size_schedule():
    assert step_size(1, 0.7, 2.0) == 3.0 ** -0.7
    assert step_size(8, 1.0, 2.0) == 0.1
    steps = [step_size(t, 0.7, 2.0) for t in range(1, 50)]
    assert all(0.0 < b < a < 1.0 for a, b in zip(steps, steps[1:]))


# ---------------------------------------------------------------------------
# The three promises of the issue
# ---------------------------------------------------------------------------

def test_stream_converges_to_the_generating_parameters(rng):
    gm = GaussianMixture(3, random_state=0)
    feed(gm, stream(rng, n_chunks=400, chunk_rows=250))
    weights, means, covariances = in_true_order(gm)
    # 100,000 rows seen; the late steps (gamma ~ 0.015) average ~16,000 rows,
    # so the sampling error of a mean is ~0.01.
    np.testing.assert_allclose(weights, TRUE_WEIGHTS, atol=0.01)
    np.testing.assert_allclose(means, TRUE_MEANS, atol=0.05)
    np.testing.assert_allclose(covariances, TRUE_COVARIANCES, atol=0.08)
    assert gm.n_iter_ == 400 and gm.converged_ is False


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_small_chunks_reach_the_batch_log_likelihood(rng, covariance_type):
    X = draw(rng, 20000)
    batch = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    online = GaussianMixture(3, covariance_type=covariance_type, random_state=0)
    shuffled = X[rng.permutation(len(X))]
    feed(online, np.array_split(shuffled, 200))       # 200 calls of 100 rows
    gap = abs(online.score(X) - batch.score(X))
    assert gap < 0.01 * abs(batch.score(X)), (online.score(X), batch.score(X))


def test_pickled_mid_stream_resumes_to_the_same_model(rng):
    chunks = list(stream(rng, n_chunks=30, chunk_rows=300))
    straight = feed(GaussianMixture(3, random_state=0), chunks)
    first = feed(GaussianMixture(3, random_state=0), chunks[:12])
    resumed = feed(pickle.loads(pickle.dumps(first)), chunks[12:])
    assert_same_model(resumed, straight)


# ---------------------------------------------------------------------------
# Exactness
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_results_do_not_depend_on_the_thread_count(rng, covariance_type):
    # Chunks of ~10 engine chunks each (1024 rows in 2-D) over 2 threads, float32 among them.
    chunks = list(stream(rng, n_chunks=4, chunk_rows=10000))
    chunks[2] = chunks[2].astype(np.float32)
    models = [feed(GaussianMixture(3, covariance_type=covariance_type, random_state=0,
                                   n_threads=n), chunks) for n in (1, 2)]
    assert_same_model(*models)


def test_step_does_not_depend_on_the_chunk_size_or_weight_scale(rng):
    chunks = list(stream(rng, n_chunks=5, chunk_rows=400))
    plain = feed(GaussianMixture(3, random_state=0), chunks)
    doubled = GaussianMixture(3, random_state=0)
    for chunk in chunks:
        doubled.partial_fit(chunk, sample_weight=np.full(len(chunk), 2.0))
    assert_same_model(doubled, plain)
    # A row repeated three times is a row of weight 3 (to rounding).
    weights = rng.integers(0, 4, size=400).astype(float)
    weights[:3] = 1.0
    by_weight = GaussianMixture(3, random_state=0).fit(chunks[0])
    by_repeat = pickle.loads(pickle.dumps(by_weight))
    by_weight.partial_fit(chunks[1], sample_weight=weights)
    by_repeat.partial_fit(np.repeat(chunks[1], weights.astype(int), axis=0))
    for name in PARAMETER_NAMES:
        np.testing.assert_allclose(getattr(by_weight, name), getattr(by_repeat, name),
                                   rtol=1e-10, atol=1e-12, err_msg=name)


# ---------------------------------------------------------------------------
# Starting: the first chunk, or a fitted model
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_first_chunk_initialises_every_way(rng, init_params, covariance_type):
    X = draw(rng, 600)
    gm = GaussianMixture(3, covariance_type=covariance_type, init_params=init_params,
                         random_state=0).partial_fit(X[:300])
    assert gm.n_iter_ == 1 and gm.n_features_in_ == 2
    assert np.isfinite(gm.lower_bound_) and gm.lower_bounds_ == [gm.lower_bound_]
    gm.partial_fit(X[300:])
    assert gm.n_iter_ == 2
    # The fitted attributes serve the usual methods.
    assert gm.predict(X).shape == (600,) and np.isfinite(gm.score(X))
    assert gm.predict_proba(X).shape == (600, 3) and gm.sample(5)[0].shape == (5, 2)


def test_first_chunk_takes_the_initial_parameters(rng):
    X = draw(rng, 300)
    gm = GaussianMixture(3, means_init=TRUE_MEANS, random_state=0).partial_fit(X)
    np.testing.assert_allclose(gm.means_, TRUE_MEANS, atol=0.5)


def test_chunks_may_be_on_disk_arrays(rng, tmp_path):
    # A Fortran-ordered memmap is read block by block (a row source), as fit reads it.
    chunks = list(stream(rng, n_chunks=3, chunk_rows=400))
    in_memory = feed(GaussianMixture(3, random_state=0), chunks)
    on_disk = []
    for i, chunk in enumerate(chunks):
        mapped = np.memmap(tmp_path / f"chunk{i}.dat", dtype=np.float64, mode="w+",
                           shape=chunk.shape, order="F")
        mapped[:] = chunk
        on_disk.append(mapped)
    assert_same_model(feed(GaussianMixture(3, random_state=0), on_disk), in_memory)


def test_partial_fit_after_fit_starts_from_the_fitted_model(rng):
    X = draw(rng, 20000)
    chunk = draw(rng, 2000)
    gm = GaussianMixture(3, random_state=0).fit(X)
    fitted = {name: getattr(gm, name).copy() for name in PARAMETER_NAMES}
    gm.partial_fit(chunk)
    assert gm.n_iter_ == 1
    # The schedule continues from t = 20000 / 2000 = 10: gamma = 13**-0.7 = 0.17
    # times the chunk's sampling error (~0.05 for a mean), no more...
    np.testing.assert_allclose(gm.means_, fitted["means_"], atol=0.1)
    np.testing.assert_allclose(gm.weights_, fitted["weights_"], atol=0.02)
    np.testing.assert_allclose(gm.covariances_, fitted["covariances_"], atol=0.2)
    # ... and the result is not what a fresh stream makes of that chunk.
    fresh = GaussianMixture(3, random_state=0).partial_fit(chunk)
    assert not np.allclose(np.sort(fresh.means_, axis=0), np.sort(gm.means_, axis=0), atol=1e-3)


def test_after_fit_a_chunk_is_weighed_against_the_data_the_fit_saw(rng):
    X = draw(rng, 20000)
    small = draw(rng, 20)
    gm = GaussianMixture(3, random_state=0).fit(X)
    fitted = gm.means_.copy()
    gm.partial_fit(small)
    # t continues from 20000 / 20 = 1000: gamma = 1003**-0.7 = 0.008, against
    # 0.46 for the first chunk of a fresh stream.
    moved = np.abs(gm.means_ - fitted).max()
    fresh = GaussianMixture(3, random_state=0).fit(X)
    fresh.__dict__.pop("_seen_weight")  # as if the weight of the fit were unknown
    fresh.partial_fit(small)
    assert moved < 0.05 * np.abs(fresh.means_ - fitted).max()
    assert gm._stream.step_offset == pytest.approx(1000.0)
    assert gm.n_iter_ == 1


def test_a_converged_fit_is_a_fixed_point_of_a_step_on_its_data(rng):
    # EM's fixed point: the statistics of the training data under the fitted
    # model are the model's own, so a step of any size leaves it where it is.
    X = draw(rng, 5000)
    gm = GaussianMixture(3, tol=1e-10, max_iter=1000, random_state=0).fit(X)
    fitted = {name: getattr(gm, name).copy() for name in PARAMETER_NAMES}
    gm.partial_fit(X)
    for name in PARAMETER_NAMES:
        np.testing.assert_allclose(getattr(gm, name), fitted[name], rtol=1e-6, atol=1e-6,
                                   err_msg=name)


def test_fit_ends_a_stream(rng):
    chunks = list(stream(rng, n_chunks=4, chunk_rows=300))
    gm = feed(GaussianMixture(3, random_state=0), chunks[:3])
    assert gm.n_iter_ == 3
    gm.fit(chunks[3])
    gm.partial_fit(chunks[0])
    assert gm.n_iter_ == 1      # a new stream, from the model fit left


def test_float32_chunks_keep_float32(rng):
    gm = feed(GaussianMixture(3, random_state=0),
              [c.astype(np.float32) for c in stream(rng, n_chunks=5, chunk_rows=300)])
    for name in PARAMETER_NAMES:
        assert getattr(gm, name).dtype == np.float32, name
    assert isinstance(gm.lower_bound_, np.float32)


def test_inputs_are_not_modified(rng):
    X = draw(rng, 400)
    weights = rng.uniform(0.5, 2.0, size=400)
    X_before, weights_before = X.copy(), weights.copy()
    gm = GaussianMixture(3, random_state=0)
    gm.partial_fit(X, sample_weight=weights)
    gm.partial_fit(X, sample_weight=weights)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(weights, weights_before)


def test_feature_names_are_set_by_the_first_chunk_and_checked_after(rng):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(draw(rng, 600), columns=["a", "b"])
    gm = GaussianMixture(3, random_state=0).partial_fit(X.iloc[:300])
    assert list(gm.feature_names_in_) == ["a", "b"]
    gm.partial_fit(X.iloc[300:])
    with pytest.raises(ValueError, match="The feature names should match those that were passed"):
        gm.partial_fit(X.iloc[300:].rename(columns={"a": "c"}))


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

def test_bad_chunks_are_refused_and_leave_the_model_alone(rng):
    X = draw(rng, 300)
    gm = GaussianMixture(3, random_state=0).partial_fit(X)
    before = pickle.dumps(gm)
    with pytest.raises(ValueError, match="X has 3 features, but GaussianMixture is expecting 2"):
        gm.partial_fit(np.hstack([X, X[:, :1]]))
    with_nan = X.copy()
    with_nan[5, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        gm.partial_fit(with_nan)
    with pytest.raises(ValueError, match="sample_weight sums to zero"):
        gm.partial_fit(X, sample_weight=np.zeros(len(X)))
    with pytest.raises(ValueError, match="sample_weight must be non-negative"):
        gm.partial_fit(X, sample_weight=-np.ones(len(X)))
    with pytest.raises(ValueError, match="Found array with 0 sample"):
        gm.partial_fit(X[:0])
    with pytest.raises(ValueError, match="The log-likelihood is not finite|overflow float64"):
        gm.partial_fit(X + 1e200)
    after = pickle.loads(before)
    assert_same_model(gm, after)
    gm.partial_fit(X[:1])                 # one row is a chunk too
    assert gm.n_iter_ == 2


def test_first_chunk_needs_n_components_rows(rng):
    with pytest.raises(ValueError, match="Expected n_samples >= n_components but got "
                                         "n_components = 3, n_samples = 2"):
        GaussianMixture(3).partial_fit(draw(rng, 2))
    gm = GaussianMixture(3)
    with pytest.raises(ValueError, match="sample_weight sums to zero"):
        gm.partial_fit(draw(rng, 10), sample_weight=np.zeros(10))
    assert not hasattr(gm, "converged_")


def test_changed_model_shape_after_fitting_is_refused(rng):
    gm = GaussianMixture(3, random_state=0).partial_fit(draw(rng, 300))
    gm.set_params(n_components=2)
    with pytest.raises(ValueError, match="the parameters changed after fitting"):
        gm.partial_fit(draw(rng, 300))


@pytest.mark.parametrize("name, value, allowed", [
    ("learning_decay", 0.5, "a float in the range (0.5, 1.0]"),
    ("learning_decay", 1.2, "a float in the range (0.5, 1.0]"),
    ("learning_decay", "fast", "a float in the range (0.5, 1.0]"),
    ("learning_offset", 0.0, "a float in the range (0.0, inf)"),
    ("learning_offset", -1, "a float in the range (0.0, inf)"),
    ("learning_offset", None, "a float in the range (0.0, inf)"),
])
@pytest.mark.parametrize("method", ["partial_fit", "fit"])
def test_step_size_parameters_are_checked(rng, name, value, allowed, method):
    gm = GaussianMixture(3, **{name: value})
    message = f"The {name!r} parameter of GaussianMixture must be {allowed}. Got {value!r} instead."
    with pytest.raises(InvalidParameterError) as error:
        getattr(gm, method)(draw(rng, 100))
    assert str(error.value) == message


def test_step_size_parameters_are_parameters():
    gm = GaussianMixture(2, learning_decay=1.0, learning_offset=10)
    assert gm.get_params()["learning_decay"] == 1.0
    assert gm.get_params()["learning_offset"] == 10
    assert "learning_decay=1.0" in repr(gm) and "learning_offset" not in repr(GaussianMixture())


def test_readme_stream_example_runs():
    # The README's partial_fit example, as a newcomer would run it.
    import pathlib
    import re

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Streams: `partial_fit`", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    gm = namespace["gm"]
    np.testing.assert_allclose(np.sort(gm.weights_), [0.3, 0.7], atol=0.02)
    np.testing.assert_allclose(np.sort(gm.means_, axis=0), [[-4.0, -4.0], [4.0, 4.0]], atol=0.1)
    assert gm.n_iter_ == 200


def test_changing_covariance_type_is_refused_even_when_shapes_agree(rng):
    # K = D: diag means_-shaped (K, D) covariances look like one tied (D, D) matrix.
    X = draw(rng, 600)
    gm = GaussianMixture(X.shape[1], covariance_type="diag", random_state=0).fit(X)
    gm.set_params(covariance_type="tied")
    with pytest.raises(ValueError, match="the parameters changed after fitting"):
        gm.partial_fit(X)


def test_later_chunks_may_be_on_disk_arrays_read_in_blocks(rng):
    class RowsOnly:
        def __init__(self, data):
            self._data, self.shape, self.dtype = data, data.shape, data.dtype

        def __getitem__(self, index):
            return self._data[index].copy()

        def __array__(self, *args, **kwargs):
            raise AssertionError("loaded whole")

    chunks = list(stream(rng, n_chunks=3, chunk_rows=300))
    in_memory = feed(GaussianMixture(3, random_state=0), chunks)
    on_disk = feed(GaussianMixture(3, random_state=0), [RowsOnly(c) for c in chunks])
    assert_same_model(on_disk, in_memory)


def test_a_chunk_weight_too_small_to_divide_by_names_the_problem(rng):
    chunks = list(stream(rng, n_chunks=2, chunk_rows=300))
    gm = GaussianMixture(3, random_state=0).partial_fit(chunks[0])
    with pytest.raises(ValueError, match="too small to divide by"):
        gm.partial_fit(chunks[1], sample_weight=np.full(300, 1e-320))
