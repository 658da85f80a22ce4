"""Where the rows of X come from: one interface for every pass the fit makes.

EM and its initialisation touch the data in two ways only: a *pass* that
adds every row's statistics into a :class:`~fastem._stats.SufficientStatistics`,
and *taking* a few rows (the k-means subsample, seed rows).  A row source
offers both, so the same fit runs over

- :class:`ArrayRows`: an ndarray in memory, or a ``numpy.memmap`` (the
  kernels read the mapped pages directly; nothing is copied);
- :class:`BlockRows`: blocks of rows produced anew for every pass, from
  ``fit_chunks``'s callable or by slicing an on-disk array (h5py, zarr, a
  memmap that would need a copy), each block checked as it is read;
- ``fastem._dask.DaskRows``: the blocks of a Dask array on a cluster.

Candidates.  Samples are drawn among the rows with a positive weight (all
rows without weights): a row of weight zero does not count, and a uniform
draw could miss the few rows that do.  A *position* numbers the candidate
rows in row order, so every source answers ``take(positions)`` with the same
rows, and an initialisation drawn from one ``random_state`` is the same
whatever the source.

Bits.  The engine assigns chunk c of a pass to lane c mod n_lanes; a source
that hands over blocks whose sizes are multiples of the kernel's chunk size
reproduces one pass over all the rows bit for bit (see fastem._stats).
"""
import numbers

import numpy as np
from scipy import sparse

from fastem import _em
from fastem._validation import check_array, check_sample_weight, validate_fit_data

# Rows per block when random responsibilities are drawn (init_params="random"):
# the draws must exist somewhere, and blocks keep them to a few MB.  A multiple
# of every chunk size, so the blocks add up exactly as one pass would; the
# random stream does not depend on the block size.
RANDOM_RESPONSIBILITY_ROWS = 16384

# Bytes of float64 per block when slicing an on-disk array: large enough that
# the kernels' threads share many chunks, small enough to stay in RAM.
_BLOCK_BYTES = 16 * 2**20


class RowSource:
    """The rows of X and their weights, as the passes of a fit read them.

    Attributes
    ----------
    n_samples : int
    n_features : int
    dtype : numpy.dtype
        float32 or float64: what the kernels read.
    n_candidates : int
        Rows with a positive weight (``n_samples`` without weights).
    total_weight : float
        Sum of the weights in row order (``n_samples`` without weights), as
        the engine sums them.
    """

    def accumulate(self, stats, *, model=None, random_responsibilities=None, n_threads=1):
        """One pass: add the statistics of every row into `stats` and return it.

        Parameters
        ----------
        stats : SufficientStatistics
            Usually empty; its centres decide the moments' origin.
        model : fastem._em.ModelArrays, default=None
            Responsibilities from this model's E-step.  None, without
            `random_responsibilities`: each row's nearest centre.
        random_responsibilities : numpy.random.RandomState, default=None
            Responsibilities drawn uniformly and normalised per row
            (``init_params="random"``).
        n_threads : int, default=1
        """
        raise NotImplementedError

    def take(self, positions):
        """Candidate rows at `positions`, in the order given.

        Parameters
        ----------
        positions : array of int or None
            Positions among the candidates (see the module docstring), not
            necessarily sorted; None takes every candidate.

        Returns
        -------
        rows : ndarray of shape (len(positions), n_features), of ``dtype``
        weights : ndarray of shape (len(positions),) or None
        """
        raise NotImplementedError


def _random_responsibility_blocks(random_state, n_rows, n_components):
    """Yield (start, responsibilities) over n_rows rows: uniform draws, rows normalised."""
    for start in range(0, n_rows, RANDOM_RESPONSIBILITY_ROWS):
        resp = random_state.uniform(size=(min(RANDOM_RESPONSIBILITY_ROWS, n_rows - start), n_components))
        resp /= resp.sum(axis=1)[:, None]
        yield start, resp


def add_rows(stats, X, sample_weight, *, model, random_responsibilities, n_threads):
    """Add one block of rows to `stats` as :meth:`RowSource.accumulate` describes."""
    if random_responsibilities is None:
        return stats.add(X, sample_weight, model=model, n_threads=n_threads)
    blocks = _random_responsibility_blocks(random_responsibilities, X.shape[0], stats.n_components)
    for start, resp in blocks:
        end = start + len(resp)
        weight = None if sample_weight is None else sample_weight[start:end]
        stats.add(X[start:end], weight, responsibilities=resp, n_threads=n_threads)
    return stats


class ArrayRows(RowSource):
    """An ndarray (or memmap) the kernels read in place: one block, one call per pass.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64, C-contiguous
    sample_weight : ndarray of shape (n_samples,), float64, or None
    """

    def __init__(self, X, sample_weight=None):
        self.X = X
        self.sample_weight = sample_weight
        self.n_samples, self.n_features = X.shape
        self.dtype = X.dtype
        self.total_weight = _em.sum_weights(sample_weight, self.n_samples)
        self._positive = None
        if sample_weight is not None and not np.all(sample_weight > 0):
            self._positive = np.flatnonzero(sample_weight > 0)
        self.n_candidates = self.n_samples if self._positive is None else len(self._positive)

    def accumulate(self, stats, *, model=None, random_responsibilities=None, n_threads=1):
        return add_rows(stats, self.X, self.sample_weight, model=model,
                        random_responsibilities=random_responsibilities, n_threads=n_threads)

    def take(self, positions):
        if positions is None:
            if self._positive is None:
                return self.X, self.sample_weight
            positions = np.arange(self.n_candidates)
        rows = positions if self._positive is None else self._positive[positions]
        weights = None if self.sample_weight is None else self.sample_weight[rows]
        return np.ascontiguousarray(self.X[rows]), weights


class BlockRows(RowSource):
    """Rows read block by block, anew for every pass, each block checked as it comes.

    The first pass (made here) checks every block and counts the rows and
    their weight; later passes must deliver the same rows, and a source that
    changes between passes is an error rather than a silently different fit.

    Parameters
    ----------
    make_blocks : callable
        Called with no argument at the start of every pass; returns an
        iterable whose items are X blocks or ``(X, sample_weight)`` pairs.
        X blocks are anything :func:`numpy.asarray` turns into a 2-D numeric
        array (float32 stays float32; other dtypes become float64).
    n_components : int
        For the check that there are enough rows.
    estimator_name : str
        Named in the error messages.
    """

    def __init__(self, make_blocks, n_components, estimator_name):
        if not callable(make_blocks):
            raise TypeError(
                f"make_chunks must be a callable returning an iterable of chunks, got "
                f"{type(make_blocks).__name__}; wrap a list of chunks as `lambda: chunks`"
            )
        self._make_blocks = make_blocks
        self._estimator_name = estimator_name
        self.n_features = self.dtype = None
        self._has_weights = None
        n_samples = n_candidates = 0
        total_weight = 0.0
        for X, weight in self._blocks(first_pass=True):
            n_samples += X.shape[0]
            n_candidates += X.shape[0] if weight is None else int(np.count_nonzero(weight > 0))
            total_weight = _em.sum_weights(weight, X.shape[0], total_weight)
        if self.n_features is None:
            raise ValueError("make_chunks gave no rows: a fit needs at least 2")
        self.n_samples, self.n_candidates, self.total_weight = n_samples, n_candidates, total_weight
        if n_samples < 2:
            raise ValueError(
                f"Found array with {n_samples} sample(s) (shape=({n_samples}, {self.n_features})) "
                f"while a minimum of 2 is required by {estimator_name}."
            )
        if n_samples < n_components:
            raise ValueError(
                "Expected n_samples >= n_components "
                f"but got n_components = {n_components}, n_samples = {n_samples}"
            )
        if n_candidates < n_components:
            raise ValueError(
                f"Expected at least n_components = {n_components} rows with a positive "
                f"sample_weight, got {n_candidates}"
            )

    def _blocks(self, first_pass=False):
        """Yield checked (X, sample_weight) blocks of one pass."""
        n_rows = 0
        for index, item in enumerate(self._make_blocks()):
            X, weight = _split_item(item, index)
            X = check_array(X, estimator_name=self._estimator_name, ensure_min_samples=0)
            if X.shape[0] == 0:
                continue
            if self.n_features is None:
                self.n_features, self.dtype = X.shape[1], X.dtype
                self._has_weights = weight is not None
            if X.shape[1] != self.n_features:
                raise ValueError(
                    f"chunk {index} has {X.shape[1]} features, but the first chunk had "
                    f"{self.n_features}"
                )
            if X.dtype != self.dtype:
                raise ValueError(
                    f"chunk {index} is {X.dtype}, but the first chunk was {self.dtype}: give "
                    "every chunk the same float dtype"
                )
            if (weight is not None) != self._has_weights:
                raise ValueError(
                    f"chunk {index} {'has' if weight is not None else 'lacks'} sample weights, "
                    "unlike the first chunk: give weights with every chunk or with none"
                )
            weight = _check_block_weight(weight, X.shape[0])
            n_rows += X.shape[0]
            yield X, weight
        if not first_pass and n_rows != self.n_samples:
            raise ValueError(
                f"make_chunks gave {n_rows} rows on this pass but {self.n_samples} on the first: "
                "every call must produce the same rows"
            )

    def accumulate(self, stats, *, model=None, random_responsibilities=None, n_threads=1):
        for X, weight in self._blocks():
            add_rows(stats, X, weight, model=model,
                     random_responsibilities=random_responsibilities, n_threads=n_threads)
        return stats

    def take(self, positions):
        if positions is None:
            positions = np.arange(self.n_candidates)
        positions = np.asarray(positions, dtype=np.intp)
        order = np.argsort(positions, kind="stable")
        wanted = positions[order]
        rows = np.empty((len(positions), self.n_features), dtype=self.dtype)
        weights = np.empty(len(positions)) if self._has_weights else None
        seen = found = 0  # candidates before this block; positions filled so far
        for X, weight in self._blocks():
            candidates = np.arange(X.shape[0]) if weight is None else np.flatnonzero(weight > 0)
            end = np.searchsorted(wanted, seen + len(candidates))
            picked = candidates[wanted[found:end] - seen]
            rows[order[found:end]] = X[picked]
            if weights is not None:
                weights[order[found:end]] = weight[picked]
            found, seen = end, seen + len(candidates)
        return rows, weights


def _split_item(item, index):
    """An item of make_chunks: X, or (X, sample_weight)."""
    if isinstance(item, tuple):
        if len(item) != 2:
            raise ValueError(
                f"chunk {index} is a tuple of {len(item)} items; a chunk is X or (X, sample_weight)"
            )
        return item
    return item, None


def _check_block_weight(weight, n_rows):
    if weight is None:
        return None
    weight = np.asarray(weight)
    if weight.ndim != 1 or weight.shape[0] != n_rows:
        raise ValueError(f"sample_weight.shape == {weight.shape}, expected ({n_rows},)!")
    if weight.dtype.kind not in "biuf":
        raise ValueError(f"sample_weight must be real numbers, got dtype {weight.dtype}.")
    weight = np.ascontiguousarray(weight, dtype=np.float64)
    if not np.all(np.isfinite(weight)):
        raise ValueError("sample_weight contains NaN or infinity.")
    if np.any(weight < 0):
        raise ValueError("sample_weight must be non-negative; negative weights were given.")
    return weight


# ---------------------------------------------------------------------------
# Choosing the source of a fit's X
# ---------------------------------------------------------------------------

def is_dask_collection(X):
    """True for a Dask array (or other Dask collection), without importing Dask."""
    return hasattr(X, "__dask_graph__") and type(X).__module__.partition(".")[0] == "dask"


def is_on_disk_array(X):
    """True for X that should be read in blocks rather than loaded whole.

    A ``numpy.memmap`` the kernels cannot read in place (not C-contiguous, or
    not float32/float64), and array objects that are not ndarrays but have a
    2-D ``shape``, a NumPy ``dtype`` and row slicing: h5py datasets, zarr
    arrays.  DataFrames, sparse matrices and Dask arrays are not.
    """
    if isinstance(X, np.memmap):
        return not (X.flags.c_contiguous and X.dtype in (np.float32, np.float64))
    if (isinstance(X, np.ndarray) or hasattr(X, "columns") or sparse.issparse(X)
            or is_dask_collection(X)):
        return False
    shape, dtype = getattr(X, "shape", None), getattr(X, "dtype", None)
    return (isinstance(shape, tuple) and len(shape) == 2
            and all(isinstance(n, numbers.Integral) for n in shape)
            and isinstance(dtype, np.dtype) and hasattr(X, "__getitem__"))


def block_rows(n_features):
    """Rows per block when slicing an on-disk array: a multiple of the chunk size."""
    chunk = _em.chunk_rows(n_features)
    return chunk * max(1, _BLOCK_BYTES // (8 * n_features * chunk))


def row_blocks(X):
    """Yield (start, block) over X in blocks of :func:`block_rows` rows.

    For on-disk arrays and memmaps at inference: each block is read, used and
    dropped, so nothing the size of X is held; memmap blocks become plain
    ndarray views (nothing is copied).
    """
    step = block_rows(max(1, X.shape[1]))
    for start in range(0, X.shape[0], step):
        block = X[start:start + step]
        yield start, block.view(np.ndarray) if isinstance(block, np.memmap) else block


def sliced_blocks(X, sample_weight, rows_per_block):
    """A ``make_blocks`` callable slicing X (and the weights) into blocks of rows."""
    n_samples = X.shape[0]

    def make_blocks():
        for start in range(0, n_samples, rows_per_block):
            end = min(start + rows_per_block, n_samples)
            block = X[start:end]
            yield block, (None if sample_weight is None else sample_weight[start:end])

    return make_blocks


def rows_for_fit(X, sample_weight, n_components, estimator_name, n_threads=None):
    """The row source of ``fit(X, sample_weight)``: checked, nothing copied that need not be.

    Parameters
    ----------
    X : array-like, numpy.memmap, on-disk array or Dask array
    sample_weight : array-like of shape (n_samples,) or None
    n_components : int
    estimator_name : str

    Returns
    -------
    RowSource
    """
    if is_dask_collection(X):
        from fastem._dask import DaskRows  # the optional extra, imported only when used

        return DaskRows(X, sample_weight, n_components, estimator_name, n_threads=n_threads)
    if is_on_disk_array(X):
        weight = check_sample_weight(sample_weight, X.shape[0])
        blocks = sliced_blocks(X, weight, block_rows(max(1, X.shape[1])))
        return BlockRows(blocks, n_components, estimator_name)
    X, sample_weight = validate_fit_data(X, sample_weight, n_components, estimator_name)
    return ArrayRows(X, sample_weight)
