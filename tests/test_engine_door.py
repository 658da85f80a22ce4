"""fastem._em's door into the engine: statistics in lanes the caller keeps across calls."""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from fastem import _em

from _helpers import random_model

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
STATISTICS = ("none", "full", "tied", "diag")
# Column path, one GEMM for all components, BLAS per component.
FEATURE_COUNTS = (3, 12, 20)
ASSIGNMENTS = ("model", "responsibilities", "nearest")


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(1, "blas"):
        yield


def _model(rng, covariance_type, k, d):
    return random_model(rng, covariance_type, k, d)[0]


def _problem(rng, assignment, statistic, d, n_rows, k=3, dtype=np.float64):
    model = _model(rng, {"none": "diag", "diag": "diag"}.get(statistic, statistic), k, d)
    X = (model.means[rng.integers(k, size=n_rows)] + rng.normal(size=(n_rows, d))).astype(dtype)
    weights = rng.uniform(0.1, 2.0, size=n_rows)
    weights[rng.random(n_rows) < 0.2] = 0.0
    resp = rng.dirichlet(np.ones(k), size=n_rows)
    kwargs = dict(statistic=statistic, centres=model.means,
                  tied_centre=model.tied_centre() if statistic == "tied" else None)
    if assignment == "model":
        kwargs["model"] = model
    elif assignment == "responsibilities":
        kwargs["responsibilities"] = resp
    return model, X, weights, resp, kwargs


def _lanes(statistic, k, d):
    n_stats = _em.statistics_size(statistic, k, d)
    return np.zeros(_em.lane_shape(n_stats))


def _one_pass(X, weights, kwargs, n_threads=1):
    k, d = kwargs["centres"].shape
    lanes = _lanes(kwargs["statistic"], k, d)
    used = _em.accumulate(X, weights, lanes, n_threads=n_threads, **kwargs)
    return lanes, used


@pytest.mark.parametrize("statistic", STATISTICS)
def test_padded_lanes_give_the_bits_of_unpadded_ones(rng, statistic):
    # lane_shape pads each lane to whole cache lines; the padding is never written
    # and the sums are those of lanes exactly n_stats wide.
    model, X, weights, _, kwargs = _problem(rng, "model" if statistic != "none" else "nearest",
                                            statistic, 12, 20 * _em.chunk_rows(12) + 5)
    n_stats = _em.statistics_size(statistic, 3, 12)
    n_lanes, stride = _em.lane_shape(n_stats)
    assert n_lanes == _em.lane_count(n_stats) and stride >= n_stats + 8 and stride % 8 == 0
    padded = np.zeros((n_lanes, stride))
    plain = np.zeros((n_lanes, n_stats))
    _em.accumulate(X, weights, padded, n_threads=3, **kwargs)
    _em.accumulate(X, weights, plain, n_threads=3, **kwargs)
    np.testing.assert_array_equal(padded[:, :n_stats], plain)
    assert not padded[:, n_stats:].any()
    np.testing.assert_array_equal(_em.reduce_lanes(padded, n_stats), _em.reduce_lanes(plain))
    with pytest.raises(ValueError, match="n_stats"):
        _em.reduce_lanes(padded, stride + 1)


def test_sizes_follow_the_statistic():
    k, d = 3, 5
    assert _em.statistics_size("none", k, d) == 1 + k + k * d
    assert _em.statistics_size("full", k, d) == 1 + k + k * d + k * d * d
    assert _em.statistics_size("tied", k, d) == 1 + k + k * d + d * d
    assert _em.statistics_size("diag", k, d) == 1 + k + k * d + k * d
    with pytest.raises(ValueError, match="statistic"):
        _em.statistics_size("spherical", k, d)
    # The lane count depends on the size only: more lanes for small statistics.
    assert _em.lane_count(10) == 32
    assert _em.lane_count(10) >= _em.lane_count(100_000) >= 4


@pytest.mark.parametrize("n_features", FEATURE_COUNTS)
@pytest.mark.parametrize("statistic", STATISTICS)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_chunk_aligned_calls_give_the_bits_of_one_pass(rng, assignment, statistic, n_features):
    chunk = _em.chunk_rows(n_features)
    n_rows = 37 * chunk + 11     # more chunks than lanes, the last one partial
    model, X, weights, _, kwargs = _problem(rng, assignment, statistic, n_features, n_rows)
    whole, used = _one_pass(X, weights, kwargs, n_threads=2)
    assert used == 38
    k, d = model.means.shape
    parts = _lanes(statistic, k, d)
    first_chunk = 0
    for start, stop in [(0, 5 * chunk), (5 * chunk, 6 * chunk), (6 * chunk, 33 * chunk),
                        (33 * chunk, n_rows)]:
        part = dict(kwargs)
        if assignment == "responsibilities":
            part["responsibilities"] = kwargs["responsibilities"][start:stop]
        first_chunk += _em.accumulate(X[start:stop], weights[start:stop], parts,
                                      first_chunk=first_chunk, n_threads=3, **part)
    assert first_chunk == used
    np.testing.assert_array_equal(parts, whole)
    n_stats = _em.statistics_size(statistic, k, d)
    np.testing.assert_array_equal(_em.reduce_lanes(parts, n_stats), _em.reduce_lanes(whole, n_stats))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_features", FEATURE_COUNTS)
@pytest.mark.parametrize("statistic", STATISTICS)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_bitwise_for_any_thread_count(rng, assignment, statistic, n_features, dtype):
    _, X, weights, _, kwargs = _problem(rng, assignment, statistic, n_features,
                                        9 * _em.chunk_rows(n_features) + 3, dtype=dtype)
    results = [_one_pass(X, weights, kwargs, n_threads=t)[0] for t in (1, 2, 5)]
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_features", FEATURE_COUNTS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_model_pass_is_the_c_pass(rng, covariance_type, n_features, dtype):
    # The door's E-step pass reduces to the statistics the C layer's accumulate
    # (and so em_step) computes, bit for bit.
    model = _model(rng, covariance_type, 4, n_features)
    X = (rng.normal(scale=2.0, size=(3000, n_features))).astype(dtype)
    weights = rng.uniform(size=len(X))
    statistic = {"spherical": "diag"}.get(covariance_type, covariance_type)
    lanes = _lanes(statistic, 4, n_features)
    _em.accumulate(X, weights, lanes, statistic=statistic, centres=model.means, model=model,
                   tied_centre=model.tied_centre(), n_threads=2)
    n_stats = _em.statistics_size(statistic, 4, n_features)
    np.testing.assert_array_equal(_em.reduce_lanes(lanes, n_stats), model.accumulate(X, weights, 2))


def _reference_statistics(X, weights, resp, centres, statistic, tied_centre):
    """NumPy: [sum w log p or 0 | N_k | sum w r (x - c_k) | second moments]."""
    X = X.astype(np.float64)
    wr = resp * weights[:, None]
    counts = wr.sum(axis=0)
    diff = X[None] - centres[:, None]                     # (K, n, D)
    first = np.einsum("kn,knd->kd", wr.T, diff)
    if statistic == "full":
        second = np.einsum("kn,kni,knj->kij", wr.T, diff, diff)
        second = np.triu(second)
    elif statistic == "tied":
        y = X - tied_centre
        second = np.triu(np.einsum("n,ni,nj->ij", weights, y, y))
    elif statistic == "diag":
        second = np.einsum("kn,knd->kd", wr.T, diff**2)
    else:
        second = np.empty(0)
    return np.concatenate([[0.0], counts, first.ravel(), second.ravel()])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_features", FEATURE_COUNTS + (9,))
@pytest.mark.parametrize("statistic", STATISTICS)
def test_supplied_responsibilities_match_numpy(rng, statistic, n_features, dtype):
    model, X, weights, resp, kwargs = _problem(rng, "responsibilities", statistic, n_features,
                                               2000, k=4, dtype=dtype)
    lanes, _ = _one_pass(X, weights, kwargs, n_threads=2)
    got = _em.reduce_lanes(lanes, _em.statistics_size(statistic, 4, n_features))
    want = _reference_statistics(X, weights, resp, model.means, statistic, kwargs["tied_centre"])
    assert got[0] == 0.0
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11 * np.abs(want).max())


def test_supplied_responsibilities_of_dropped_rows_are_never_read(rng):
    # A zero weight drops the row, even with non-finite responsibilities.
    model, X, weights, resp, kwargs = _problem(rng, "responsibilities", "full", 12, 600)
    weights[::3] = 0.0
    poisoned = np.copy(resp)
    poisoned[::3] = np.nan
    clean, _ = _one_pass(X, weights, kwargs)
    kwargs["responsibilities"] = poisoned
    np.testing.assert_array_equal(_one_pass(X, weights, kwargs)[0], clean)


def test_nearest_centre_counts_and_inertia(rng):
    model, X, weights, _, kwargs = _problem(rng, "nearest", "none", 12, 1500)
    got = _em.reduce_lanes(_one_pass(X, weights, kwargs)[0], _em.statistics_size("none", 3, 12))
    distances = ((X[:, None] - model.means[None]) ** 2).sum(axis=2)
    labels = distances.argmin(axis=1)
    resp = np.eye(3)[labels]
    want = _reference_statistics(X, weights, resp, model.means, "none", None)
    want[0] = (weights * distances.min(axis=1)).sum()
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11 * np.abs(want).max())


def test_extra_columns_are_not_read(rng):
    _, X, weights, _, kwargs = _problem(rng, "model", "full", 12, 700)
    wide = np.full((len(X), 15), np.nan)
    wide[:, :12] = X
    np.testing.assert_array_equal(_one_pass(wide, weights, kwargs)[0], _one_pass(X, weights, kwargs)[0])


def test_no_rows_consume_no_chunks(rng):
    _, X, weights, _, kwargs = _problem(rng, "nearest", "diag", 3, 10)
    lanes, used = _one_pass(X[:0], weights[:0], kwargs)
    assert used == 0 and not lanes.any()


@pytest.mark.parametrize("change, match", [
    ("lanes", "lanes must have shape"),
    ("both", "not both"),
    ("tied", "tied_centre"),
    ("centres", "model's means"),
    ("resp shape", "responsibilities must have shape"),
    ("statistic", "statistic"),
    ("first_chunk", "first_chunk"),
    ("columns", "fewer columns"),
])
def test_invalid_calls_raise(rng, change, match):
    model, X, weights, resp, kwargs = _problem(rng, "model", "tied", 4, 50)
    lanes = _lanes("tied", 3, 4)
    if change == "lanes":
        lanes = np.zeros((lanes.shape[0], _em.statistics_size("tied", 3, 4) - 1))
    elif change == "both":
        kwargs["responsibilities"] = resp
    elif change == "tied":
        kwargs["tied_centre"] = None
    elif change == "centres":
        kwargs["centres"] = model.means + 1.0
    elif change == "resp shape":
        del kwargs["model"]
        kwargs["responsibilities"] = resp[:-1]
    elif change == "statistic":
        kwargs["statistic"] = "spherical"
    elif change == "first_chunk":
        kwargs["first_chunk"] = -1
    else:
        X = np.ascontiguousarray(X[:, :3])
    with pytest.raises(ValueError, match=match):
        _em.accumulate(X, weights, lanes, **kwargs)


def test_m_step_from_takes_the_flat_statistics(rng):
    # The door's flat statistics feed the M-step directly.
    model = _model(rng, "full", 3, 5)
    X = rng.normal(size=(800, 5))
    lanes = _lanes("full", 3, 5)
    _em.accumulate(X, None, lanes, statistic="full", centres=model.means, model=model)
    stats = _em.reduce_lanes(lanes, _em.statistics_size("full", 3, 5))
    nk, means, covariances, factors = _em.m_step_from(stats, model.means, None, "full", 1e-6)
    model.m_step(stats, 1e-6)
    np.testing.assert_array_equal(means, model.means)
    np.testing.assert_array_equal(covariances, model.covariances)
    np.testing.assert_array_equal(_em.normalised_weights(nk), model.weights)
    # read in place: the flat array is not copied, and comes back unchanged
    before = stats.copy()
    _em.m_step_from(stats, model.means, None, "full", 1e-6)
    np.testing.assert_array_equal(stats, before)
    with pytest.raises(ValueError, match="size"):
        _em.m_step_from(stats[:-1], model.means, None, "full", 1e-6)


def test_the_c_table_codes_are_the_kernel_enums():
    # _covariance_shapes.pxd spells the statistic codes the kernels' Stats enum
    # uses, and the covariance codes fastem.h and fastem._covariance use.
    import fastem.kernels
    from fastem._kernels import Stats
    assert _em.STATISTIC_CODES == {"none": Stats.STATS_NONE, "full": Stats.STATS_FULL,
                                   "tied": Stats.STATS_TIED, "diag": Stats.STATS_DIAG}
    assert fastem.kernels.COVARIANCE_TYPES == {"full": 0, "tied": 1, "diag": 2, "spherical": 3}
