"""missing="em" on every path a fit reads X through: memmaps, fit_chunks, partial_fit and Dask.

The promises are those of the complete-data paths (tests/test_out_of_core.py,
tests/test_dask.py), now with NaN in X: a memmap fits exactly as the array it
maps; chunks whose sizes are multiples of the kernel's chunk size fit exactly
as their concatenation, initialisation included (the column means that fill
the gaps for the initialisation are summed in row order, whatever the
blocks); other chunk sizes and Dask agree to rounding, except a Dask array of
one block, which is the in-memory fit bit for bit.  Every path counts the
rows with nothing observed and refuses a column with nothing observed.
"""
import pickle
import warnings

import numpy as np
import pytest

import fastem
from fastem import _sources

from _helpers import COVARIANCE_TYPES, PARAMETER_NAMES, assert_agree, assert_same_fit

FITTED = PARAMETER_NAMES + ["lower_bounds_", "n_iter_", "converged_", "n_empty_rows_"]
# A multiple of every chunk size the kernels use (see fastem._sources).
ALIGNED = 16384
N_EMPTY = 7


def _gappy(rng, n_samples=3 * ALIGNED + 1234, n_features=3, n_components=3, missing=0.15):
    """Correlated blobs with `missing` of the values NaN at random and N_EMPTY rows all NaN."""
    centers = rng.normal(scale=4.0, size=(n_components, n_features))
    labels = rng.integers(n_components, size=n_samples)
    X = rng.normal(size=(n_samples, n_features)) + centers[labels]
    X[:, 1:] += 0.6 * X[:, :1]   # correlated coordinates: the conditional means matter
    X[rng.random(X.shape) < missing] = np.nan
    X[rng.choice(n_samples, N_EMPTY, replace=False)] = np.nan
    return X


def _n_empty(X):
    return int(np.isnan(X).all(axis=1).sum())


def _weights(rng, n_samples):
    weights = rng.uniform(0.5, 2.0, size=n_samples)
    weights[rng.random(n_samples) < 0.2] = 0.0
    return weights


def _fit(X, sample_weight=None, **params):
    params = {"n_components": 3, "max_iter": 6, "tol": 0.0, "random_state": 0, "missing": "em",
              **params}
    gm = fastem.GaussianMixture(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastem.ConvergenceWarning)
        if callable(X):
            return gm.fit_chunks(X)
        return gm.fit(X, sample_weight=sample_weight)


def _chunks_of(X, sample_weight=None, size=ALIGNED):
    def make_chunks():
        for start in range(0, len(X), size):
            end = start + size
            yield X[start:end] if sample_weight is None else (X[start:end], sample_weight[start:end])
    return make_chunks


def _assert_identical(actual, desired):
    assert_same_fit(actual, desired, FITTED)


def _assert_close(actual, desired, rtol=1e-10):
    for name in PARAMETER_NAMES + ["lower_bounds_"]:
        assert_agree(getattr(actual, name), getattr(desired, name), name, rtol=rtol)
    assert actual.n_iter_ == desired.n_iter_
    assert actual.n_empty_rows_ == desired.n_empty_rows_


# ----------------------------------------------------------------- memmap

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_memmap_is_read_in_place_and_fits_as_in_memory(tmp_path, rng, covariance_type, dtype):
    X = _gappy(rng).astype(dtype)
    weights = _weights(rng, len(X))
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    source = _sources.rows_for_fit(mapped, None, 3, "GaussianMixture", allow_nan=True)
    assert isinstance(source, _sources.ArrayRows) and np.shares_memory(source.X, mapped)
    for sample_weight in (None, weights):
        fitted = _fit(mapped, sample_weight, covariance_type=covariance_type)
        _assert_identical(fitted, _fit(X, sample_weight, covariance_type=covariance_type))
        assert fitted.n_empty_rows_ == _n_empty(X) >= N_EMPTY
        assert fitted.means_.dtype == dtype


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_memmap_read_in_blocks_fits_as_in_memory(tmp_path, rng, covariance_type):
    # Fortran order: the kernels cannot read it in place, so it is sliced into
    # blocks of a multiple of the chunk size, each copied and checked.
    X = _gappy(rng)
    np.save(tmp_path / "F.npy", np.asfortranarray(X))
    mapped = np.load(tmp_path / "F.npy", mmap_mode="r")
    assert _sources.is_on_disk_array(mapped)
    for init_params in ("kmeans", "random_from_data"):
        params = dict(covariance_type=covariance_type, init_params=init_params)
        _assert_identical(_fit(mapped, **params), _fit(X, **params))


def test_memmap_inference_with_gaps_equals_in_memory(tmp_path, rng):
    X = _gappy(rng)
    gm = _fit(X)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "F.npy", np.asfortranarray(X))
    for mapped in (np.load(tmp_path / "X.npy", mmap_mode="r"),
                   np.load(tmp_path / "F.npy", mmap_mode="r")):
        for method in ("score_samples", "predict_proba", "predict", "impute"):
            np.testing.assert_array_equal(getattr(gm, method)(mapped), getattr(gm, method)(X),
                                          err_msg=method)
        # score: the empty rows out of the average, as in memory (block sums: to rounding)
        assert gm.score(mapped) == pytest.approx(gm.score(X), rel=1e-12)


def test_memmap_with_an_unobserved_column_is_refused(tmp_path, rng):
    X = _gappy(rng, n_samples=2000)
    X[:, 2] = np.nan
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "F.npy", np.asfortranarray(X))
    for name in ("X.npy", "F.npy"):
        with pytest.raises(ValueError, match="column 2 of X has no observed value"):
            _fit(np.load(tmp_path / name, mmap_mode="r"))


# ----------------------------------------------------------------- fit_chunks

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("size", [ALIGNED, 2 * ALIGNED])
def test_aligned_chunks_fit_as_in_memory_bit_for_bit(rng, covariance_type, size):
    X = _gappy(rng)
    weights = _weights(rng, len(X))
    for sample_weight in (None, weights):
        chunked = _fit(_chunks_of(X, sample_weight, size), covariance_type=covariance_type)
        _assert_identical(chunked, _fit(X, sample_weight, covariance_type=covariance_type))
        assert chunked.n_empty_rows_ == _n_empty(X) >= N_EMPTY


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_aligned_chunks_initialise_as_in_memory(rng, init_params):
    # The gaps are filled by column means for the initialisation: the same bits
    # from chunks as from the whole array.
    X = _gappy(rng)
    _assert_identical(_fit(_chunks_of(X), init_params=init_params),
                      _fit(X, init_params=init_params))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_unaligned_chunks_agree_to_rounding(rng, covariance_type):
    X = _gappy(rng)
    weights = _weights(rng, len(X))
    chunked = _fit(_chunks_of(X, weights, 10000), covariance_type=covariance_type)
    in_memory = _fit(X, weights, covariance_type=covariance_type)
    _assert_close(chunked, in_memory)


def test_column_means_do_not_depend_on_the_blocks(rng, monkeypatch):
    # What makes aligned chunks exact: the means that seed the initialisation
    # are added row after row, so any cut of the rows gives the same bits.
    X = _gappy(rng, n_samples=5000)
    weights = _weights(rng, len(X))
    whole = _sources.ArrayRows(X, weights).missing_summary()
    observed = ~np.isnan(X)
    sums, totals = np.zeros(3), np.zeros(3)
    for row, seen, weight in zip(X, observed, weights):   # the definition, row by row
        sums = sums + np.where(seen, row, 0.0) * np.where(seen, weight, 0.0)
        totals = totals + np.where(seen, weight, 0.0)
    np.testing.assert_array_equal(whole.column_means, sums / totals)
    for size, piece in ((1, 2**19), (7, 5), (999, 2**19), (5000, 3)):
        monkeypatch.setattr(_sources, "_OBSERVED_VALUES_PER_PIECE", piece)
        blocks = _sources.BlockRows(_chunks_of(X, weights, size), 3, "GaussianMixture",
                                    allow_nan=True).missing_summary()
        np.testing.assert_array_equal(blocks.column_means, whole.column_means)
        assert blocks.n_empty == whole.n_empty == _n_empty(X)


def test_chunks_with_nan_need_missing_em(rng):
    X = _gappy(rng, n_samples=3000)
    with pytest.raises(ValueError, match="chunk 0: Input X contains NaN"):
        _fit(_chunks_of(X, size=1000), missing="error")


def test_chunks_with_an_unobserved_column_are_refused(rng):
    X = _gappy(rng, n_samples=3000)
    X[:, 0] = np.nan
    with pytest.raises(ValueError, match="column 0 of X has no observed value"):
        _fit(_chunks_of(X, size=1000))
    # a column observed only in rows of zero weight counts as unobserved
    X = _gappy(rng, n_samples=3000)
    weights = np.ones(len(X))
    X[:, 1] = np.nan
    X[10, 1] = 1.0
    weights[10] = 0.0
    with pytest.raises(ValueError, match="column 1 of X has no observed value .*zero weight"):
        _fit(_chunks_of(X, weights, size=1000))


# ----------------------------------------------------------------- partial_fit

def test_stream_with_gaps(rng):
    X = _gappy(rng, n_samples=20000)
    chunks = [X[i:i + 2000] for i in range(0, len(X), 2000)]
    gm = fastem.GaussianMixture(3, random_state=0, missing="em")
    gm.partial_fit(chunks[0])
    # the first chunk initialises (from its mean-filled rows), then steps
    assert gm.n_iter_ == 1
    assert gm.n_empty_rows_ == _n_empty(chunks[0]) > 0
    assert all(np.all(np.isfinite(getattr(gm, name))) for name in PARAMETER_NAMES)
    for chunk in chunks[1:]:
        before = pickle_copy(gm)
        gm.partial_fit(chunk)
        # lower_bound_: the chunk's mean observed log-likelihood under the model
        # before the step, over the rows with an observed value
        assert gm.lower_bound_ == pytest.approx(before.score(chunk), rel=1e-12)
    assert gm.n_iter_ == len(chunks)
    batch = _fit(X, max_iter=100, tol=1e-6)
    # a sensible model: close to the batch fit's observed log-likelihood
    assert gm.score(X) > batch.score(X) - 0.05
    assert np.isfinite(gm.lower_bound_) and gm.lower_bound_ < 0


def pickle_copy(estimator):
    return pickle.loads(pickle.dumps(estimator))


def test_a_later_chunk_of_one_row_with_gaps_steps(rng):
    X = _gappy(rng, n_samples=3000)
    gm = fastem.GaussianMixture(3, random_state=0, missing="em").partial_fit(X)
    row = np.array([[np.nan, 0.5, np.nan]])
    before = pickle_copy(gm)
    gm.partial_fit(row)
    assert gm.n_iter_ == 2
    assert gm.lower_bound_ == pytest.approx(before.score_samples(row)[0], rel=1e-12)
    assert not np.array_equal(gm.means_, before.means_)
    assert all(np.all(np.isfinite(getattr(gm, name))) for name in PARAMETER_NAMES)


def test_a_later_chunk_with_nothing_observed_is_refused_and_changes_nothing(rng):
    X = _gappy(rng, n_samples=3000)
    gm = fastem.GaussianMixture(3, random_state=0, missing="em").partial_fit(X)
    before = pickle_copy(gm)
    for chunk, weight in ((np.full((1, 3), np.nan), None),
                          (np.array([[np.nan, 1.0, 2.0], [np.nan] * 3]), np.array([0.0, 1.0]))):
        with pytest.raises(ValueError, match="no row of X has an observed value"):
            gm.partial_fit(chunk, sample_weight=weight)
        _assert_identical(gm, before)


def test_a_later_chunk_may_lack_a_whole_column(rng, tmp_path):
    # Only a fit (or the first chunk) needs every column observed somewhere:
    # a later chunk's gaps are completed from the model it steps from.
    X = _gappy(rng, n_samples=4000)
    gm = fastem.GaussianMixture(3, random_state=0, missing="em").partial_fit(X[:3000])
    later = X[3000:].copy()
    later[:, 2] = np.nan
    np.save(tmp_path / "F.npy", np.asfortranarray(later))
    on_disk = pickle_copy(gm)
    gm.partial_fit(later)
    on_disk.partial_fit(np.load(tmp_path / "F.npy", mmap_mode="r"))
    assert gm.n_iter_ == 2 and np.isfinite(gm.lower_bound_)
    for name in PARAMETER_NAMES + ["lower_bound_"]:
        np.testing.assert_array_equal(getattr(on_disk, name), getattr(gm, name), name)


def test_a_complete_stream_steps_as_without_missing_em(rng):
    X = _gappy(rng, n_samples=6000, missing=0.0)
    X = X[~np.isnan(X).any(axis=1)]
    with_em = fastem.GaussianMixture(3, random_state=0, missing="em")
    without = fastem.GaussianMixture(3, random_state=0)
    for i in range(0, len(X), 1500):
        with_em.partial_fit(X[i:i + 1500])
        without.partial_fit(X[i:i + 1500])
    for name in PARAMETER_NAMES + ["lower_bound_"]:
        np.testing.assert_array_equal(getattr(with_em, name), getattr(without, name), name)


def test_chunks_with_gaps_on_disk_step_as_in_memory(rng, tmp_path):
    X = _gappy(rng, n_samples=6000)
    first, second = X[:3000], X[3000:]
    np.save(tmp_path / "F.npy", np.asfortranarray(second))
    in_memory = fastem.GaussianMixture(3, random_state=0, missing="em").partial_fit(first)
    on_disk = pickle_copy(in_memory)
    in_memory.partial_fit(second)
    on_disk.partial_fit(np.load(tmp_path / "F.npy", mmap_mode="r"))
    for name in PARAMETER_NAMES + ["lower_bound_"]:
        np.testing.assert_array_equal(getattr(on_disk, name), getattr(in_memory, name), name)


def test_first_chunk_with_an_unobserved_column_is_refused(rng):
    X = _gappy(rng, n_samples=300)
    X[:, 1] = np.nan
    gm = fastem.GaussianMixture(2, missing="em")
    with pytest.raises(ValueError, match="column 1 of X has no observed value"):
        gm.partial_fit(X)
    assert not gm.__sklearn_is_fitted__()


# ----------------------------------------------------------------- Dask

@pytest.fixture
def local_scheduler(monkeypatch):
    """dask.array, run by Dask's local threaded scheduler (no distributed client)."""
    pytest.importorskip("dask", reason='the Dask tests need the optional extra: pip install "fastem[dask]"')
    import dask.array
    from fastem import _dask

    monkeypatch.setattr(_dask, "_default_client", lambda: None)
    return dask.array


def _dask_fit(X, weights, dX, dweights, **params):
    return _fit(dX, dweights, **params), _fit(X, weights, **params)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_dask_of_one_block_is_the_in_memory_fit(local_scheduler, rng, covariance_type):
    X = _gappy(rng, n_samples=20000)
    weights = _weights(rng, len(X))
    dX = local_scheduler.from_array(X, chunks=(len(X), 3))
    for sample_weight in (None, weights):
        on_dask, in_memory = _dask_fit(X, sample_weight, dX, sample_weight,
                                       covariance_type=covariance_type)
        _assert_identical(on_dask, in_memory)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_dask_of_many_blocks_agrees_to_rounding(local_scheduler, rng, covariance_type, dtype,
                                                weighted):
    X = _gappy(rng, n_samples=20000).astype(dtype)
    weights = _weights(rng, len(X)) if weighted else None
    dX = local_scheduler.from_array(X, chunks=(7000, 3))   # blocks not aligned to the chunks
    dweights = None if weights is None else local_scheduler.from_array(weights, chunks=3000)
    on_dask, in_memory = _dask_fit(X, weights, dX, dweights, covariance_type=covariance_type)
    assert on_dask.means_.dtype == dtype
    _assert_close(on_dask, in_memory)
    assert on_dask.n_empty_rows_ == _n_empty(X) >= N_EMPTY


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random_from_data"])
def test_dask_initialises_from_the_same_filled_rows(local_scheduler, rng, init_params):
    # ("random" draws its responsibilities per block on Dask: another stream.)
    X = _gappy(rng, n_samples=20000)
    weights = _weights(rng, len(X))
    on_dask, in_memory = _dask_fit(X, weights, local_scheduler.from_array(X, chunks=(4500, 3)),
                                   weights, init_params=init_params)
    _assert_close(on_dask, in_memory)


def test_dask_missing_summary_equals_in_memory(local_scheduler, rng):
    from fastem._dask import DaskRows

    X = _gappy(rng, n_samples=20000)
    weights = _weights(rng, len(X))
    for sample_weight in (None, weights):
        dask_rows = DaskRows(local_scheduler.from_array(X, chunks=(3000, 3)), sample_weight, 3,
                             "GaussianMixture", allow_nan=True)
        summary = dask_rows.missing_summary()
        expected = _sources.ArrayRows(X, sample_weight).missing_summary()
        assert summary.has_nan and summary.n_empty == expected.n_empty == _n_empty(X)
        np.testing.assert_allclose(summary.column_means, expected.column_means, rtol=1e-13)
        # the filled source reads the rows the in-memory one does
        positions = np.array([0, 5, 2999, 3000, 19000])
        positions = positions[positions < dask_rows.n_candidates]
        filled = dask_rows.filled(summary.column_means).take(positions)[0]
        reference = _sources.ArrayRows(X, sample_weight).filled(summary.column_means).take(positions)[0]
        np.testing.assert_array_equal(filled, reference)
        assert not np.isnan(filled).any()
    complete = DaskRows(local_scheduler.from_array(np.nan_to_num(X), chunks=(3000, 3)), None, 3,
                        "GaussianMixture", allow_nan=True)
    assert not complete.missing_summary().has_nan


def test_dask_inference_with_gaps_equals_in_memory(local_scheduler, rng):
    X = _gappy(rng, n_samples=20000)
    weights = _weights(rng, len(X))
    gm = _fit(X, max_iter=20)
    dX = local_scheduler.from_array(X, chunks=(7000, 3))
    for method in ("score_samples", "predict_proba", "predict", "impute"):
        lazy = getattr(gm, method)(dX)
        assert isinstance(lazy, local_scheduler.Array), method
        np.testing.assert_array_equal(lazy.compute(), getattr(gm, method)(X), err_msg=method)
    filled, std = gm.impute(dX, return_std=True)
    expected_filled, expected_std = gm.impute(X, return_std=True)
    np.testing.assert_array_equal(filled.compute(), expected_filled)
    np.testing.assert_array_equal(std.compute(), expected_std)
    # score averages over the rows with an observed value, as in memory
    for args in ({}, {"sample_weight": weights},
                 {"sample_weight": local_scheduler.from_array(weights, chunks=2500)}):
        assert_agree(gm.score(dX, **args), gm.score(X, sample_weight=weights if args else None),
                     f"score {sorted(args)}", rtol=1e-12)
    assert_agree(gm.bic(dX), gm.bic(X), "bic", rtol=1e-12)
    n_observed = len(X) - _n_empty(X)
    assert gm.score(dX) == pytest.approx(gm.score_samples(X).sum() / n_observed, rel=1e-12)


def test_dask_inference_of_missing_error_still_refuses_nan(local_scheduler, rng):
    X = _gappy(rng, n_samples=3000)
    gm = fastem.GaussianMixture(2, random_state=0).fit(np.nan_to_num(X))
    with pytest.raises(ValueError, match="Input X contains NaN"):
        gm.predict(local_scheduler.from_array(X, chunks=(1000, 3))).compute()
    # impute works on any fitted model, whatever `missing` is
    filled = gm.impute(local_scheduler.from_array(X, chunks=(1000, 3))).compute()
    np.testing.assert_array_equal(filled, gm.impute(X))


def test_dask_refuses_what_the_in_memory_fit_refuses(local_scheduler, rng):
    X = _gappy(rng, n_samples=3000)
    chunks = (1000, 3)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        _fit(local_scheduler.from_array(X, chunks=chunks), missing="error")
    unobserved = X.copy()
    unobserved[:, 1] = np.nan
    with pytest.raises(ValueError, match="column 1 of X has no observed value"):
        _fit(local_scheduler.from_array(unobserved, chunks=chunks))
    with_inf = X.copy()
    with_inf[2500, 0] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        _fit(local_scheduler.from_array(with_inf, chunks=chunks))
    huge = X.copy()
    huge[2500, 0] = 1e200
    huge[2500, 1] = np.nan
    with pytest.raises(ValueError, match="magnitude 1e\\+200"):
        _fit(local_scheduler.from_array(huge, chunks=chunks))


def test_dask_stream_with_gaps_steps_as_in_memory(local_scheduler, rng):
    X = _gappy(rng, n_samples=8000)
    first, second = X[:4000], X[4000:]
    in_memory = fastem.GaussianMixture(3, random_state=0, missing="em")
    on_dask = fastem.GaussianMixture(3, random_state=0, missing="em")
    for chunk in (first, second):
        in_memory.partial_fit(chunk)
        on_dask.partial_fit(local_scheduler.from_array(chunk, chunks=(1500, 3)))
        for name in PARAMETER_NAMES + ["lower_bound_"]:
            assert_agree(getattr(on_dask, name), getattr(in_memory, name), name, rtol=1e-10)


def test_dask_later_chunk_may_lack_a_whole_column(local_scheduler, rng):
    X = _gappy(rng, n_samples=4000)
    later = X[3000:].copy()
    later[:, 0] = np.nan
    in_memory = fastem.GaussianMixture(3, random_state=0, missing="em").partial_fit(X[:3000])
    on_dask = pickle_copy(in_memory)
    in_memory.partial_fit(later)
    on_dask.partial_fit(local_scheduler.from_array(later, chunks=(400, 3)))
    for name in PARAMETER_NAMES + ["lower_bound_"]:
        assert_agree(getattr(on_dask, name), getattr(in_memory, name), name, rtol=1e-10)


def test_dask_on_a_cluster_fills_the_gaps_on_the_workers(rng):
    # One task per worker (_statistics_by_worker) carries the fill too.
    pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    import dask.array

    X = _gappy(rng, n_samples=20000)
    weights = _weights(rng, len(X))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"Port .* is already in use", UserWarning)
        warnings.filterwarnings("ignore", r"Creating scratch directories", UserWarning)
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster, \
                distributed.Client(cluster):
            for init_params in ("kmeans", "random_from_data"):
                on_dask, in_memory = _dask_fit(
                    X, weights, dask.array.from_array(X, chunks=(3000, 3)), weights,
                    covariance_type="tied", init_params=init_params)
                _assert_close(on_dask, in_memory)


def test_without_nan_every_path_fits_as_missing_error(local_scheduler, rng, tmp_path):
    # missing="em" on complete data is the ordinary fit, bit for bit, whatever the source.
    X = _gappy(rng, n_samples=2 * ALIGNED + 500, missing=0.0)
    X = X[~np.isnan(X).any(axis=1)]
    weights = _weights(rng, len(X))
    np.save(tmp_path / "F.npy", np.asfortranarray(X))
    sources = {
        "memmap in blocks": lambda: np.load(tmp_path / "F.npy", mmap_mode="r"),
        "chunks": lambda: _chunks_of(X, weights, 10000),
        "dask": lambda: local_scheduler.from_array(X, chunks=(5000, 3)),
    }
    for name, make in sources.items():
        sample_weight = None if name == "chunks" else weights
        with_em = _fit(make(), sample_weight, covariance_type="tied")
        without = _fit(make(), sample_weight, covariance_type="tied", missing="error")
        for attribute in FITTED:
            np.testing.assert_array_equal(getattr(with_em, attribute), getattr(without, attribute),
                                          f"{name}: {attribute}")
        assert with_em.n_empty_rows_ == 0
