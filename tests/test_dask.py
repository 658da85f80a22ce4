"""The Dask fit and inference (fastem._dask) against the in-memory ones, on a 2-process LocalCluster.

From the same initial parameters the two fits make the same EM iterations
over the same rows; only the order in which the per-block statistics are
added differs, so they agree to rounding (rtol 1e-10), not bit for bit.
"""
import pickle
import sys
import warnings

import numpy as np
import pytest

dask = pytest.importorskip(
    "dask", reason='the Dask tests need the optional extra: pip install "fastem[dask]"')
distributed = pytest.importorskip(
    "distributed", reason='the Dask tests need the optional extra: pip install "fastem[dask]"')
import dask.array as da  # noqa: E402

import fastem  # noqa: E402
from fastem import _dask, _em  # noqa: E402
from fastem._stats import SufficientStatistics  # noqa: E402
from _helpers import COVARIANCE_TYPES, PARAMETER_NAMES, assert_agree, init_kwargs, initial_parameters  # noqa: E402

RTOL = 1e-10

# distributed warns about its own start-up, none of which concerns fastem: a
# busy port (another cluster on this machine) and the scratch directory it
# creates under a fresh temporary directory (as on CI).  Ignored by message,
# so that any other warning still fails the test.
_CLUSTER_NOTICES = [r"Port .* is already in use", r"Creating scratch directories"]
pytestmark = [pytest.mark.filterwarnings(f"ignore:{notice}:UserWarning")
              for notice in _CLUSTER_NOTICES]


@pytest.fixture(scope="module")
def client():
    """Two worker processes of one thread each, as the issue asks; no dashboard (no port)."""
    with warnings.catch_warnings():  # module fixtures start outside the tests' filters
        for notice in _CLUSTER_NOTICES:
            warnings.filterwarnings("ignore", notice, UserWarning)
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def blobs():
    """6,000 rows of three blobs in 3-D, weights with zeros, shuffled."""
    rng = np.random.default_rng(7)
    centers = np.array([[-4.0, 0.0, 1.0], [0.0, 4.0, -1.0], [4.0, 0.0, 0.0]])
    labels = rng.integers(0, 3, size=6000)
    X = centers[labels] + rng.normal(size=(6000, 3)) * [1.0, 0.7, 1.3]
    weights = rng.uniform(0.0, 2.0, size=6000)
    weights[rng.random(6000) < 0.2] = 0.0
    return X, weights, centers


def _dask_array(X, chunks=1700):
    # 1,700 rows per block: not a multiple of the kernel's chunk, last block ragged.
    return da.from_array(X, chunks=(chunks, X.shape[1]))


def _fit_both(X, weights, dX, dweights, **params):
    with warnings.catch_warnings():
        # Both fits make the same iterations; whether they reach tol is compared below.
        warnings.simplefilter("ignore", fastem.ConvergenceWarning)
        memory = fastem.GaussianMixture(**params).fit(X, sample_weight=weights)
        distributed_fit = fastem.GaussianMixture(**params).fit(dX, sample_weight=dweights)
    return memory, distributed_fit


def _assert_same_fit(actual, desired, what):
    for name in PARAMETER_NAMES:
        assert getattr(actual, name).dtype == getattr(desired, name).dtype, f"{what}: {name} dtype"
        assert_agree(getattr(actual, name), getattr(desired, name), f"{what}: {name}", rtol=RTOL)
    assert actual.n_iter_ == desired.n_iter_, what
    assert actual.converged_ == desired.converged_, what
    assert_agree(actual.lower_bounds_, desired.lower_bounds_, f"{what}: lower_bounds_", rtol=RTOL)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_from_same_start_equals_in_memory(client, blobs, covariance_type, dtype, weighted):
    X, weights, centers = blobs
    X = X.astype(dtype)
    weights = weights if weighted else None
    init = initial_parameters(np.random.default_rng(3), centers, covariance_type)
    params = dict(n_components=3, covariance_type=covariance_type, max_iter=12, tol=1e-8)
    memory, on_dask = _fit_both(X, weights, _dask_array(X), weights, **params, **init_kwargs(init))
    assert on_dask.means_.dtype == dtype
    _assert_same_fit(on_dask, memory, f"{covariance_type}/{np.dtype(dtype).name}/{weighted}")


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random_from_data"])
def test_initialisation_draws_the_same_rows_as_in_memory(client, blobs, init_params):
    # Zero weights among the rows: `take` must map candidate positions across blocks.
    X, weights, _ = blobs
    params = dict(n_components=3, init_params=init_params, random_state=11, max_iter=20)
    memory, on_dask = _fit_both(X, weights, _dask_array(X), da.from_array(weights, chunks=900),
                                **params)
    _assert_same_fit(on_dask, memory, init_params)


def test_random_responsibilities_are_reproducible(client, blobs):
    # One seed per block from random_state: a stream of its own, the same on every run.
    X, _, _ = blobs
    dX = _dask_array(X)
    fits = [fastem.GaussianMixture(3, init_params="random", random_state=5, max_iter=50).fit(dX)
            for _ in range(2)]
    np.testing.assert_array_equal(fits[0].means_, fits[1].means_)
    assert fits[0].converged_


def test_x_is_computed_once_per_fit(client, blobs, tmp_path):
    # Each computation of a block leaves a file: persisted once, X's graph is not
    # recomputed by the initialisation passes and the EM iterations.
    X, _, _ = blobs

    def load(block, block_info=None):
        (tmp_path / f"{block_info[0]['chunk-location'][0]}-{np.random.rand()}").touch()
        return block

    dX = _dask_array(X).map_blocks(load, dtype=X.dtype)
    gm = fastem.GaussianMixture(3, random_state=0, max_iter=30).fit(dX)
    assert gm.n_iter_ >= 2
    assert len(list(tmp_path.iterdir())) == dX.numblocks[0]


def test_columns_in_blocks_and_integers(client, blobs):
    # Column blocks are merged into whole rows; integers become float64, as in memory.
    X, _, centers = blobs
    Xi = np.round(X * 10).astype(np.int32)
    init = init_kwargs(initial_parameters(np.random.default_rng(1), centers * 10, "diag"))
    params = dict(n_components=3, covariance_type="diag", max_iter=5, tol=0.0)
    dX = da.from_array(Xi, chunks=(2000, 2))
    memory, on_dask = _fit_both(Xi, None, dX, None, **params, **init)
    assert on_dask.means_.dtype == np.float64
    _assert_same_fit(on_dask, memory, "int32, column blocks")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_inference_is_lazy_and_equals_in_memory(client, blobs, dtype):
    X, weights, _ = blobs
    X = X.astype(dtype)
    gm = fastem.GaussianMixture(3, covariance_type="full", random_state=0).fit(X)
    dX = _dask_array(X)
    for method in ("score_samples", "predict_proba", "predict"):
        lazy = getattr(gm, method)(dX)
        assert isinstance(lazy, da.Array), method
        expected = getattr(gm, method)(X)
        computed = lazy.compute()
        assert computed.dtype == expected.dtype == lazy.dtype, method
        assert computed.shape == expected.shape == lazy.shape, method
        if method == "predict":
            np.testing.assert_array_equal(computed, expected)
        else:
            # The same kernels on the same rows: block boundaries change nothing per row.
            np.testing.assert_array_equal(computed, expected, err_msg=method)
    for args in ({}, {"sample_weight": weights}, {"sample_weight": da.from_array(weights, chunks=1000)}):
        assert_agree(gm.score(dX, **args), gm.score(X, sample_weight=weights if args else None),
                     f"score {sorted(args)}", rtol=RTOL)
    assert_agree(gm.bic(dX), gm.bic(X), "bic", rtol=RTOL)
    assert_agree(gm.aic(dX), gm.aic(X), "aic", rtol=RTOL)


def test_bad_fit_input_raises_value_error(client, blobs):
    X, weights, _ = blobs
    gm = fastem.GaussianMixture(3, random_state=0)
    with_nan = X.copy()
    with_nan[4321, 1] = np.nan  # inside the third block
    with pytest.raises(ValueError, match="Input X contains NaN"):
        gm.fit(_dask_array(with_nan))
    with_inf = X.copy()
    with_inf[10, 0] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        gm.fit(_dask_array(with_inf))
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(5999,\), expected \(6000,\)"):
        gm.fit(_dask_array(X), sample_weight=weights[:-1])
    with pytest.raises(ValueError, match=r"sample_weight.shape == \(5999,\), expected \(6000,\)"):
        gm.fit(_dask_array(X), sample_weight=da.from_array(weights[:-1], chunks=1000))
    negative = weights.copy()
    negative[5000] = -1.0
    with pytest.raises(ValueError, match="must be non-negative"):
        gm.fit(_dask_array(X), sample_weight=da.from_array(negative, chunks=1000))
    with pytest.raises(ValueError, match="sums to zero"):
        gm.fit(_dask_array(X), sample_weight=da.zeros(6000, chunks=1000))
    with pytest.raises(ValueError, match="Expected n_samples >= n_components"):
        fastem.GaussianMixture(4).fit(_dask_array(X[:3]))
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        gm.fit(da.from_array(X[:, 0], chunks=1000))
    with pytest.raises(ValueError, match="unknown size"):
        gm.fit(_dask_array(X)[da.from_array(X[:, 0] > 0, chunks=1700)])


def test_bad_inference_input_raises_value_error(client, blobs):
    X, _, _ = blobs
    gm = fastem.GaussianMixture(3, random_state=0).fit(X)
    with pytest.raises(ValueError, match="expecting 3 features"):
        gm.predict(_dask_array(X[:, :2]))
    with_nan = X.copy()
    with_nan[4321, 1] = np.nan
    lazy = gm.predict(_dask_array(with_nan))  # lazy: found when its block is computed
    with pytest.raises(ValueError, match="Input X contains NaN"):
        lazy.compute()
    with pytest.raises(fastem.NotFittedError):
        fastem.GaussianMixture(3).predict(_dask_array(X))


def test_model_rebuilt_on_a_worker_has_the_clients_bits(client, blobs):
    # The workers rebuild ModelArrays from its pickled parameters; their centres
    # must be the client's, bit for bit, for the statistics to be added together.
    X, _, _ = blobs
    model = fastem.GaussianMixture(3, covariance_type="tied", random_state=0, max_iter=2,
                                   tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastem.ConvergenceWarning)
        model.fit(X)
    arrays = model._warm_state()
    parameters = (arrays.covariance_type, arrays.weights, arrays.means, arrays.precisions_cholesky)
    rebuilt = client.submit(lambda p: _em.ModelArrays(*pickle.loads(p)).tied_centre(),
                            pickle.dumps(parameters)).result()
    np.testing.assert_array_equal(rebuilt, arrays.tied_centre())


def test_tasks_use_their_workers_threads(client):
    assert client.submit(_dask._worker_threads, 99, pure=False).result() == 1
    assert _dask._worker_threads(7) == 7  # on the client: not in a worker


def test_without_dask_the_error_names_the_extra(blobs, monkeypatch):
    X, _, _ = blobs
    dX = _dask_array(X)
    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(ImportError, match=r'pip install "fastem\[dask\]"'):
        fastem.GaussianMixture(2).fit(dX)


def test_a_block_sends_one_copy_of_its_statistics(blobs):
    # Only the block's lanes added up leave its task: n_stats numbers, not the engine's lanes.
    X, weights, _ = blobs
    model = fastem.GaussianMixture(3, random_state=0).fit(X)._warm_state()
    empty = SufficientStatistics.of_model(model)
    spec = (empty.covariance_type, empty.centres, empty.tied_centre,
            (model.covariance_type, model.weights, model.means, model.precisions_cholesky))
    block = _dask._block_statistics(X[:1700], weights[:1700], spec, None, 1)
    assert block.lanes.shape == (1, empty.n_stats)
    direct = SufficientStatistics.of_model(model).add(X[:1700], weights[:1700], model=model)
    np.testing.assert_array_equal(block.flat(), direct.flat())


def test_many_blocks_reduce_in_a_deeper_tree(client, blobs, monkeypatch):
    # 40 blocks and at most 3 children per node: four levels of the tree, same fit.
    monkeypatch.setattr(_dask, "_MAX_FAN_IN", 3)
    X, weights, centers = blobs
    init = init_kwargs(initial_parameters(np.random.default_rng(4), centers, "full"))
    params = dict(n_components=3, max_iter=6, tol=0.0, **init)
    memory, on_dask = _fit_both(X, weights, _dask_array(X, chunks=150), weights, **params)
    _assert_same_fit(on_dask, memory, "40 blocks")
    assert _dask._fan_in(10**9) == 2 and _dask._fan_in(1) == 3


def test_without_a_distributed_client_the_local_scheduler_runs_it(client, blobs, monkeypatch):
    monkeypatch.setattr(_dask, "_default_client", lambda: None)
    X, _, centers = blobs
    init = init_kwargs(initial_parameters(np.random.default_rng(5), centers, "diag"))
    params = dict(n_components=3, covariance_type="diag", max_iter=6, tol=0.0, n_threads=2, **init)
    memory, on_dask = _fit_both(X, None, _dask_array(X), None, **params)
    _assert_same_fit(on_dask, memory, "local scheduler")


@pytest.mark.parametrize("fan_in", [32, 3])
def test_one_task_per_worker_and_the_tree_on_the_workers_give_the_same_bits(
        client, blobs, monkeypatch, fan_in):
    # The default pass runs one task per worker and adds the blocks' statistics on
    # the client; above _GATHER_BYTES they are added on the workers. Same tree, same bits.
    monkeypatch.setattr(_dask, "_MAX_FAN_IN", fan_in)
    X, weights, centers = blobs
    init = init_kwargs(initial_parameters(np.random.default_rng(6), centers, "tied"))
    params = dict(n_components=3, covariance_type="tied", max_iter=5, tol=0.0, **init)
    dX = _dask_array(X, chunks=400)
    calls = []
    by_worker = _dask.DaskRows._statistics_by_worker

    def counted(self, *args):
        calls.append(1)
        return by_worker(self, *args)

    monkeypatch.setattr(_dask.DaskRows, "_statistics_by_worker", counted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastem.ConvergenceWarning)
        gathered = fastem.GaussianMixture(**params).fit(dX, sample_weight=weights)
        assert len(calls) == 5  # every EM pass ran one task per worker
        monkeypatch.setattr(_dask, "_GATHER_BYTES", 0)
        on_workers = fastem.GaussianMixture(**params).fit(dX, sample_weight=weights)
        assert len(calls) == 5
    for name in PARAMETER_NAMES + ["lower_bounds_"]:
        np.testing.assert_array_equal(getattr(gathered, name), getattr(on_workers, name), name)
