"""Fitting data that is not in memory: memmaps, on-disk arrays and ``fit_chunks``.

The promise is exactness: a memmap fits exactly as the array it maps, an
on-disk array read in blocks exactly as the array it stores, and chunks whose
sizes are multiples of the kernel's chunk size exactly as their
concatenation, initialisation included (every row source draws the same
candidate positions from one random_state).  Other chunk sizes agree to
rounding.
"""
import pickle
import tracemalloc
import warnings

import numpy as np
import pytest

import fastem
from fastem import _em, _sources

from _helpers import (
    COVARIANCE_TYPES, PARAMETER_NAMES, assert_agree, assert_same_fit, initial_parameters,
)

FITTED = PARAMETER_NAMES + ["lower_bounds_", "n_iter_", "converged_"]
INIT_METHODS = ["kmeans", "k-means++", "random", "random_from_data"]
# A multiple of every chunk size the kernels use (see fastem._sources).
ALIGNED = 16384


def _blobs(rng, n_samples=3 * ALIGNED + 1234, n_features=3, n_components=3):
    centers = rng.normal(scale=4.0, size=(n_components, n_features))
    labels = rng.integers(n_components, size=n_samples)
    return rng.normal(size=(n_samples, n_features)) + centers[labels], centers


def _weights(rng, n_samples):
    weights = rng.uniform(0.5, 2.0, size=n_samples)
    weights[rng.random(n_samples) < 0.2] = 0.0  # rows of zero weight are not candidates
    return weights


def _fit(X, sample_weight=None, **params):
    params = {"n_components": 3, "max_iter": 6, "tol": 0.0, "random_state": 0, **params}
    gm = fastem.GaussianMixture(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastem.ConvergenceWarning)
        if callable(X):
            return gm.fit_chunks(X)
        return gm.fit(X, sample_weight=sample_weight)


def _assert_identical(actual, desired):
    assert_same_fit(actual, desired, FITTED)


def _assert_close(actual, desired, rtol=1e-10):
    for name in PARAMETER_NAMES + ["lower_bounds_"]:
        assert_agree(getattr(actual, name), getattr(desired, name), name, rtol=rtol)


def _chunks_of(X, sample_weight=None, sizes=(ALIGNED,)):
    """make_chunks over X in blocks cycling through `sizes`."""
    def make_chunks():
        start, i = 0, 0
        while start < len(X):
            end = start + sizes[i % len(sizes)]
            yield X[start:end] if sample_weight is None else (X[start:end], sample_weight[start:end])
            start, i = end, i + 1
    return make_chunks


class OnDiskArray:
    """An array that can only be sliced by rows (like an h5py dataset), counting its reads.

    It refuses ``numpy.asarray``, so a fit that tried to load it whole fails.
    """

    def __init__(self, data):
        self._data = data
        self.shape, self.dtype = data.shape, data.dtype
        self.rows_read = 0

    def __getitem__(self, index):
        block = self._data[index]
        self.rows_read += len(block)
        return block.copy()

    def __len__(self):
        return self.shape[0]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the on-disk array was loaded whole")


# ----------------------------------------------------------------- memmap

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_memmap_fit_is_the_in_memory_fit(tmp_path, rng, covariance_type, dtype):
    X, _ = _blobs(rng)
    X = X.astype(dtype)
    weights = _weights(rng, len(X))
    path = tmp_path / "X.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    for sample_weight in (None, weights):
        _assert_identical(
            _fit(mapped, sample_weight, covariance_type=covariance_type),
            _fit(X, sample_weight, covariance_type=covariance_type),
        )


def test_memmap_inference_equals_in_memory(tmp_path, rng):
    X, _ = _blobs(rng)
    path = tmp_path / "X.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    gm = _fit(X)
    np.testing.assert_array_equal(gm.predict(mapped), gm.predict(X))
    np.testing.assert_array_equal(gm.score_samples(mapped), gm.score_samples(X))
    # score sums block by block: equal to rounding
    assert gm.score(mapped) == pytest.approx(gm.score(X), rel=1e-12)
    assert gm.bic(mapped) == pytest.approx(gm.bic(X), rel=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_memmap_fit_allocates_nothing_the_size_of_X(tmp_path, rng, weighted):
    # random_from_data is left out: it draws scikit-learn's choice(n, k,
    # replace=False), which permutes an index of every candidate row (documented).
    X, _ = _blobs(rng, n_samples=40 * ALIGNED, n_features=4)
    weights = _weights(rng, len(X)) if weighted else None
    path = tmp_path / "X.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    for init_params in ("kmeans", "k-means++", "random"):
        tracemalloc.start()
        try:
            _fit(mapped, weights, init_params=init_params, max_iter=2)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 0.05 * X.nbytes, f"{init_params}: peak {peak / X.nbytes:.1%} of X"


@pytest.mark.parametrize("array", [np.arange(100, dtype=np.int32),
                                   np.zeros(10, dtype=[("a", "f8"), ("b", "f8")])])
def test_memmaps_that_are_not_2d_numeric_get_check_arrays_errors(tmp_path, array):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    mapped = np.load(path, mmap_mode="r")
    assert not _sources.is_on_disk_array(mapped)
    # the errors of the same array in memory: 1-D, or NumPy's cast error for records
    with pytest.raises((ValueError, TypeError), match="Expected 2D array|Cannot cast"):
        fastem.GaussianMixture(2).fit(mapped)


# ----------------------------------------------------------------- on-disk arrays

@pytest.mark.parametrize("init_params", INIT_METHODS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_on_disk_array_fit_is_the_in_memory_fit(rng, init_params, covariance_type):
    X, _ = _blobs(rng)
    weights = _weights(rng, len(X))
    for sample_weight in (None, weights):
        disk = OnDiskArray(X)
        params = {"init_params": init_params, "covariance_type": covariance_type}
        _assert_identical(_fit(disk, sample_weight, **params), _fit(X, sample_weight, **params))
        assert disk.rows_read >= 6 * len(X)  # read again for every EM pass


def test_memmaps_the_kernels_cannot_read_in_place_are_read_in_blocks(tmp_path, rng):
    X, _ = _blobs(rng)
    expected = _fit(X)
    fortran = tmp_path / "fortran.npy"
    np.save(fortran, np.asfortranarray(X))
    mapped = np.load(fortran, mmap_mode="r")
    assert _sources.is_on_disk_array(mapped)
    _assert_identical(_fit(mapped), expected)

    integers = np.round(X * 100).astype(np.int32)
    path = tmp_path / "int.npy"
    np.save(path, integers)
    _assert_identical(_fit(np.load(path, mmap_mode="r")), _fit(integers.astype(np.float64)))


def test_on_disk_array_inference_equals_in_memory(rng):
    X, _ = _blobs(rng)
    gm = _fit(X)
    disk = OnDiskArray(X)
    np.testing.assert_array_equal(gm.predict(disk), gm.predict(X))
    np.testing.assert_array_equal(gm.predict_proba(disk), gm.predict_proba(X))
    np.testing.assert_array_equal(gm.score_samples(disk), gm.score_samples(X))
    assert gm.score(disk) == pytest.approx(gm.score(X), rel=1e-12)


def test_on_disk_array_with_nan_names_the_problem(rng):
    X, _ = _blobs(rng)
    X[len(X) - 5, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        _fit(OnDiskArray(X))


def test_sparse_and_dataframes_are_not_on_disk_arrays(rng):
    from scipy import sparse

    pd = pytest.importorskip("pandas")
    X, _ = _blobs(rng, n_samples=100)
    assert not _sources.is_on_disk_array(pd.DataFrame(X))
    assert not _sources.is_on_disk_array(pd.Series(X[:, 0]))
    assert not _sources.is_on_disk_array(sparse.csr_matrix(X))
    assert not _sources.is_on_disk_array(X)
    assert not _sources.is_on_disk_array(X.tolist())


# ----------------------------------------------------------------- fit_chunks

@pytest.mark.parametrize("init_params", INIT_METHODS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_aligned_chunks_fit_exactly_as_their_concatenation(rng, init_params, covariance_type):
    X, _ = _blobs(rng)
    weights = _weights(rng, len(X))
    params = {"init_params": init_params, "covariance_type": covariance_type, "n_threads": 2}
    _assert_identical(_fit(_chunks_of(X, sizes=(ALIGNED, 2 * ALIGNED)), **params), _fit(X, **params))
    _assert_identical(_fit(_chunks_of(X, weights), **params), _fit(X, weights, **params))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_unaligned_chunks_agree_to_rounding_from_the_same_start(rng, covariance_type, dtype):
    X, centers = _blobs(rng)
    X = X.astype(dtype)
    weights_init, means_init, precisions_init = initial_parameters(rng, centers, covariance_type)
    params = {"covariance_type": covariance_type, "weights_init": weights_init,
              "means_init": means_init, "precisions_init": precisions_init}
    chunked = _fit(_chunks_of(X, sizes=(1000, 777, 5003)), **params)
    whole = _fit(X, **params)
    _assert_close(chunked, whole, rtol=1e-9 if dtype == np.float64 else 1e-5)
    assert chunked.means_.dtype == dtype


def test_chunks_may_be_lists_dataframes_or_integers(rng):
    pd = pytest.importorskip("pandas")
    X, _ = _blobs(rng, n_samples=600)
    X = np.round(X)
    pieces = [X[:200].tolist(), pd.DataFrame(X[200:400]), X[400:].astype(np.int64)]
    _assert_close(_fit(lambda: iter(pieces)), _fit(X))  # unaligned chunks: to rounding


def test_empty_chunks_are_skipped(rng):
    X, _ = _blobs(rng, n_samples=600)
    pieces = [X[:0], X[:300], np.empty((0, 3)), X[300:]]
    _assert_close(_fit(lambda: pieces), _fit(X))


def test_fit_chunks_reads_each_pass_once_and_holds_one_chunk(rng):
    X, _ = _blobs(rng)
    calls = []

    def make_chunks():
        calls.append(1)
        return _chunks_of(X)()

    gm = _fit(make_chunks, max_iter=4)
    # the check-and-count pass, the k-means subsample, one full Lloyd pass,
    # the initial statistics, then one pass per iteration
    assert len(calls) == 4 + gm.n_iter_


def test_fit_chunks_result_pickles_and_predicts(rng):
    X, _ = _blobs(rng, n_samples=2000)
    gm = pickle.loads(pickle.dumps(_fit(_chunks_of(X, sizes=(500,)))))
    assert gm.predict(X).shape == (2000,)
    assert not hasattr(gm, "feature_names_in_")


@pytest.mark.parametrize("make_chunks, message", [
    (lambda: [np.ones((3, 2)), np.ones((3, 3))], "chunk 1 has 3 features, but the first chunk had 2"),
    (lambda: [np.ones((3, 2)), np.ones((3, 2), np.float32)], "chunk 1 is float32, but the first"),
    (lambda: [(np.ones((3, 2)), np.ones(3)), np.ones((3, 2))], "chunk 1 lacks sample weights"),
    (lambda: [(np.ones((3, 2)), np.ones(2))], r"chunk 0: sample_weight.shape == \(2,\), expected \(3,\)"),
    (lambda: [np.ones((3, 2)), np.empty((0, 3))], "chunk 1 has 3 features"),
    (lambda: [np.ones((3, 2)), np.ones((3, 2)), np.full((2, 2), np.inf)], "chunk 2: Input X contains infinity"),
    (lambda: [(np.ones((3, 2)), -np.ones(3))], "sample_weight must be non-negative"),
    (lambda: [(np.ones((3, 2)), np.ones(3), 1)], "a tuple of 3 items"),
    (lambda: [np.full((3, 2), np.nan)], "chunk 0: Input X contains NaN"),
    (lambda: [np.ones(3)], "Expected 2D array"),
    (lambda: [], "make_chunks gave no rows"),
    (lambda: [np.ones((1, 2))], "minimum of 2 is required"),
    (lambda: [np.arange(8.0).reshape(4, 2)], "n_components = 5, n_samples = 4"),
    (lambda: [(np.arange(12.0).reshape(6, 2), [1, 0, 0, 0, 0, 0])], "rows with a positive sample_weight"),
])
def test_fit_chunks_bad_chunks_name_the_problem(make_chunks, message):
    with pytest.raises(ValueError, match=message):
        fastem.GaussianMixture(5 if "n_components = 5" in message or "positive" in message else 1
                               ).fit_chunks(make_chunks)


def test_fit_chunks_needs_a_callable_returning_an_iterable():
    with pytest.raises(TypeError, match="make_chunks must be a callable"):
        fastem.GaussianMixture().fit_chunks([np.ones((3, 2))])
    for returned in (None, np.ones((3, 2)), 3):
        with pytest.raises(TypeError, match=r"make_chunks\(\) must return an iterable of chunks"):
            fastem.GaussianMixture().fit_chunks(lambda: returned)


def test_a_scalar_chunk_weight_applies_to_every_row(rng):
    X, _ = _blobs(rng, n_samples=600)
    _assert_identical(_fit(lambda: [(X, 2.0)]), _fit(X, np.full(len(X), 2.0)))


def test_a_source_that_changes_between_passes_is_an_error(rng):
    X, _ = _blobs(rng, n_samples=1000)
    calls = []

    def shrinking():
        calls.append(1)
        return [X[: 1000 - 10 * len(calls)]]

    with pytest.raises(ValueError, match="every pass must read the same rows"):
        _fit(shrinking)


@pytest.mark.parametrize("init_params", INIT_METHODS)
def test_a_source_whose_weights_change_between_passes_is_an_error(rng, init_params):
    X, _ = _blobs(rng, n_samples=1000)
    calls = []

    def changing():
        calls.append(1)
        weight = np.ones(len(X))
        if len(calls) > 1:
            weight[::2] = 0.0  # same rows, other candidates
        return [(X, weight)]

    with pytest.raises(ValueError, match="every pass must read the same rows"):
        _fit(changing, init_params=init_params)


def test_fit_chunks_validates_parameters_before_reading():
    def never():
        raise AssertionError("read before the parameters were checked")

    with pytest.raises(ValueError, match="covariance_type"):
        fastem.GaussianMixture(covariance_type="nope").fit_chunks(never)


def test_fit_chunks_leaves_chunks_unmodified(rng):
    X, _ = _blobs(rng, n_samples=3000)
    copy = X.copy()
    _fit(_chunks_of(X, sizes=(1000,)))
    np.testing.assert_array_equal(X, copy)


# ----------------------------------------------------------------- take

def test_every_source_takes_the_same_candidate_rows(rng):
    X, _ = _blobs(rng, n_samples=5000)
    weights = _weights(rng, len(X))
    in_memory = _sources.ArrayRows(X, weights)
    blocks = _sources.BlockRows(_chunks_of(X, weights, sizes=(700, 1300)), 3, "GaussianMixture")
    assert (blocks.n_samples, blocks.n_candidates) == (in_memory.n_samples, in_memory.n_candidates)
    assert blocks.total_weight == in_memory.total_weight
    positions = rng.permutation(in_memory.n_candidates)[:50]
    for a, b in zip(in_memory.take(positions), blocks.take(positions)):
        np.testing.assert_array_equal(a, b)
    candidates = np.flatnonzero(weights > 0)
    np.testing.assert_array_equal(in_memory.take(positions)[0], X[candidates[positions]])
    np.testing.assert_array_equal(blocks.take(None)[0], X[candidates])


def test_block_rows_are_chunk_multiples():
    for n_features in (1, 3, 8, 64, 1000, 100_000):
        rows = _sources.block_rows(n_features)
        assert rows % _em.chunk_rows(n_features) == 0 and rows > 0


# ----------------------------------------------------------------- README

def _readme_block(containing):
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if containing in b]
    assert len(blocks) == 1, f"README.md must hold one python block with {containing!r}"
    return blocks[0]


@pytest.mark.parametrize("marker", ['mmap_mode="r"', "def make_chunks"])
def test_readme_out_of_core_examples_run(tmp_path, monkeypatch, capsys, marker):
    monkeypatch.chdir(tmp_path)  # the memmap example writes big.npy where it runs
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastem.ConvergenceWarning)
        exec(compile(_readme_block(marker), "README.md", "exec"), namespace)
    gm = namespace["gm"]
    if marker == "def make_chunks":
        whole = np.concatenate(list(namespace["make_chunks"]()))
        expected = fastem.GaussianMixture(n_components=2, random_state=0).fit(whole)
    else:
        expected = fastem.GaussianMixture(n_components=2, random_state=0).fit(np.load("big.npy"))
    _assert_identical(gm, expected)
    assert capsys.readouterr().out
