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
import collections
import numbers

import numpy as np
from scipy import sparse

from fastem import _em
from fastem._stats import SufficientStatistics
from fastem._validation import check_array, check_enough_rows, check_sample_weight, validate_fit_data

# Rows per block when random responsibilities are drawn (init_params="random"):
# the draws must exist somewhere, and blocks keep them to a few MB.  A multiple
# of every chunk size, so the blocks add up exactly as one pass would; the
# random stream does not depend on the block size.
RANDOM_RESPONSIBILITY_ROWS = 16384

# Bytes of float64 per block when slicing an on-disk array: large enough that
# the kernels' threads share many chunks, small enough to stay in RAM.
_BLOCK_BYTES = 16 * 2**20


# What a fit with missing values learns of the data in one scan (RowSource.missing_summary).
MissingSummary = collections.namedtuple(
    "MissingSummary", "has_nan column_means n_empty n_empty_candidates")

# Rows per view when an in-memory array is scanned for rows of positive weight:
# bounds the index of candidates to 0.5 MB.
_SCAN_ROWS = 65536

# Values per piece when the observed values are summed (observed_totals):
# 4 MB of float64 temporaries, whatever the number of features.
_OBSERVED_VALUES_PER_PIECE = 2**19


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

    # True when every row of positive weight has an observed value (a fit with
    # missing values has weighted the others 0, or found none): a pass's total
    # weight is then the weights' sum, with no scan of X for empty rows.
    rows_observed = False

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
        for X, weight in self._blocks():
            add_rows(stats, X, weight, model=model,
                     random_responsibilities=random_responsibilities, n_threads=n_threads,
                     rows_observed=self.rows_observed)
        return stats

    def missing_summary(self):
        """What a fit with missing values (NaN) needs to know of the data: one scan.

        Returns
        -------
        MissingSummary
            ``has_nan``; ``column_means``, each column's mean over its observed
            values in rows of positive weight (weighted), which seeds the
            initialisation; ``n_empty``, the rows with no observed value.
            Without NaN the means are not computed (None).

        Raises
        ------
        ValueError
            If some column has no observed value in a row of positive weight.
        """
        for X, _ in self._blocks():
            with np.errstate(invalid="ignore", over="ignore"):
                if not np.isfinite(np.sum(X, dtype=np.float64)):
                    return self._scan_missing()   # NaN here, or a sum that overflowed
        return MissingSummary(False, None, 0, 0)

    def _scan_missing(self):
        # Block by block: the masks are the size of a block, never of X.
        totals = None
        for X, weight in self._blocks():
            totals = observed_totals(X, weight, totals)
        return missing_summary_of(totals, self._has_weights)

    def without_empty_rows(self, n_components, estimator_name):
        """These rows, each row with no observed value weighted 0 (a RowSource).

        With missing values such rows add nothing to a fit: weighted 0 they
        are no candidates for the initialisation's draws (filled with the
        column means they would all be one point, and seeds drawn among many
        of them start components on top of each other), they leave the total
        weight, and the check for enough rows counts only the others.

        The caller checks first that enough rows have an observed value
        (MissingSummary.n_empty_candidates).
        """
        raise NotImplementedError

    def filled(self, fill):
        """These rows with each NaN replaced by its column's value in `fill` (a RowSource).

        Parameters
        ----------
        fill : ndarray of shape (n_features,)

        Returns
        -------
        RowSource
        """
        return FilledRows(self, fill)

    def take(self, positions):
        """Candidate rows at `positions`, in the order given.

        One scan of the blocks, stopped as soon as every row is found;
        memory for the rows taken only.

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
        if positions is None:
            positions = np.arange(self.n_candidates)
        positions = np.asarray(positions, dtype=np.intp)
        order = np.argsort(positions, kind="stable")
        wanted = positions[order]
        rows = np.empty((len(positions), self.n_features), dtype=self.dtype)
        weights = np.empty(len(positions)) if self._has_weights else None
        seen = found = 0  # candidates before this block; positions filled so far
        for X, weight in self._blocks():
            if found == len(wanted):
                break
            candidates = None if weight is None else np.flatnonzero(weight > 0)
            n_block = X.shape[0] if candidates is None else len(candidates)
            end = int(np.searchsorted(wanted, seen + n_block))
            picked = wanted[found:end] - seen
            if candidates is not None:
                picked = candidates[picked]
            rows[order[found:end]] = X[picked]
            if weights is not None:
                weights[order[found:end]] = weight[picked]
            found, seen = end, seen + n_block
        if found != len(wanted):
            raise ValueError(
                f"{self._label} gave fewer rows of positive weight on this pass than on the "
                "first: every pass must read the same rows"
            )
        return rows, weights

    def _blocks(self):
        """Yield the (X, sample_weight) blocks of one pass, in row order."""
        raise NotImplementedError


def observed_totals(X, weight, start=None):
    """The observed values (not NaN) of one block of rows, added to running totals.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    weight : ndarray of shape (n_rows,) or None
    start : tuple or None
        The totals of the rows before this block (None: none).

    Returns
    -------
    tuple
        ``(sums, weights, n_empty, n_nan, n_empty_candidates)``: per column,
        the weighted sum of the observed values and their total weight; the
        rows with no observed value; the NaN; the rows with no observed value
        and a positive weight.  The sums run over the rows one after another, from
        `start`'s, so the totals do not depend on where the blocks are cut
        (``fit_chunks`` then starts from the bits ``fit`` starts from).
    """
    n_features = X.shape[1]
    if start is None:
        start = (np.zeros(n_features), np.zeros(n_features), 0, 0, 0)
    sums, weights = np.array(start[0], dtype=np.float64), np.array(start[1], dtype=np.float64)
    counts = np.array([start[2], start[3], start[4]], dtype=np.int64)
    if weight is not None:
        weight = np.ascontiguousarray(weight, dtype=np.float64)
    # One compiled loop over the rows; a block the kernels cannot read in place
    # is copied a piece at a time.
    step = max(1, _OBSERVED_VALUES_PER_PIECE // max(1, n_features))
    contiguous = X.flags.c_contiguous and X.dtype in (np.float32, np.float64)
    for begin in range(0, X.shape[0], max(1, X.shape[0]) if contiguous else step):
        piece = X[begin:begin + step] if not contiguous else X
        if not contiguous:
            piece = np.ascontiguousarray(piece, dtype=np.float64 if piece.dtype != np.float32
                                         else np.float32)
        _em.add_observed_totals(piece, None if weight is None else
                                weight[begin:begin + piece.shape[0]], sums, weights, counts)
    return sums, weights, int(counts[0]), int(counts[1]), int(counts[2])


def missing_summary_of(totals, has_weights):
    """The MissingSummary of :func:`observed_totals` over every row (None: no rows).

    Raises
    ------
    ValueError
        If some column has no observed value in a row of positive weight.
    """
    if totals is None or totals[3] == 0:
        return MissingSummary(False, None, 0, 0)
    sums, weights, n_empty, _, n_empty_candidates = totals
    unseen = np.flatnonzero(~(weights > 0))
    if unseen.size:
        raise ValueError(
            f"column {unseen[0]} of X has no observed value (every entry is NaN"
            f"{' or in a row of zero weight' if has_weights else ''}); "
            f"{unseen.size} column(s) are like this. Drop them before fitting."
        )
    return MissingSummary(True, sums / weights, n_empty, n_empty_candidates)


def weights_without_empty_rows(X, weight):
    """`weight` (None: ones) with 0 for the rows of X that have no observed value.

    A copy, made in pieces of rows: the NaN masks are never the size of X.
    """
    out = np.ones(X.shape[0]) if weight is None else np.array(weight, dtype=np.float64)
    step = max(1, _OBSERVED_VALUES_PER_PIECE // max(1, X.shape[1]))
    for begin in range(0, X.shape[0], step):
        empty = np.isnan(X[begin:begin + step]).all(axis=1)
        out[begin:begin + step][empty] = 0.0
    return out


def fill_gaps(X, fill):
    """X with each NaN replaced by its column's value in `fill` (X itself when it has none)."""
    gaps = np.isnan(X)
    return np.where(gaps, fill, X) if gaps.any() else X


def _random_responsibility_blocks(random_state, n_rows, n_components):
    """Yield (start, responsibilities) over n_rows rows: uniform draws, rows normalised."""
    for start in range(0, n_rows, RANDOM_RESPONSIBILITY_ROWS):
        resp = random_state.uniform(size=(min(RANDOM_RESPONSIBILITY_ROWS, n_rows - start), n_components))
        resp /= resp.sum(axis=1)[:, None]
        yield start, resp


def add_rows(stats, X, sample_weight, *, model, random_responsibilities, n_threads,
             rows_observed=False):
    """Add one block of rows to `stats` as :meth:`RowSource.accumulate` describes.

    `rows_observed`: see :attr:`RowSource.rows_observed`.
    """
    if random_responsibilities is None:
        return stats.add(X, sample_weight, model=model, n_threads=n_threads,
                         rows_observed=rows_observed)
    blocks = _random_responsibility_blocks(random_responsibilities, X.shape[0], stats.n_components)
    for start, resp in blocks:
        end = start + len(resp)
        weight = None if sample_weight is None else sample_weight[start:end]
        stats.add(X[start:end], weight, responsibilities=resp, n_threads=n_threads)
    return stats


def e_step(source, model, n_threads):
    """The statistics of one E-step over every row of `source`, and its lower bound.

    Parameters
    ----------
    source : RowSource
    model : fastem._em.ModelArrays
    n_threads : int

    Returns
    -------
    stats : SufficientStatistics
        About the model's means (``SufficientStatistics.of_model``), so that
        ``model.m_step(stats.flat(), ...)`` is the engine's M-step.
    lower_bound : float
        The mean log-likelihood per unit of weight.

    Raises
    ------
    ValueError
        If the log-likelihood is not finite (the engine's message), or with
        missing values if no row has an observed value.
    """
    stats = source.accumulate(SufficientStatistics.of_model(model), model=model, n_threads=n_threads)
    if model.missing and not stats.total_weight > 0:
        # (a fit's summary refuses such data first; a later partial_fit chunk reaches here)
        raise ValueError(
            "no row of X has an observed value (every value is NaN, or the rows that have "
            "one weigh zero): there is nothing to fit"
        )
    lower_bound = stats.mean_log_likelihood
    if not np.isfinite(lower_bound):
        raise ValueError(_em.NOT_FINITE_MESSAGE)
    return stats, lower_bound


class ArrayRows(RowSource):
    """An ndarray (or memmap) the kernels read in place: one call per pass.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64, C-contiguous
    sample_weight : ndarray of shape (n_samples,), float64, or None
    """

    _label = "X"

    def __init__(self, X, sample_weight=None):
        self.X = X
        self.sample_weight = sample_weight
        self.n_samples, self.n_features = X.shape
        self.dtype = X.dtype
        self._has_weights = sample_weight is not None
        self.total_weight = _em.sum_weights(sample_weight, self.n_samples)
        self.n_candidates = self.n_samples
        if sample_weight is not None:
            self.n_candidates = sum(int(np.count_nonzero(w > 0)) for _, w in self._blocks())

    def accumulate(self, stats, *, model=None, random_responsibilities=None, n_threads=1):
        # All rows in one call: the engine splits them into chunks and threads.
        return add_rows(stats, self.X, self.sample_weight, rows_observed=self.rows_observed,
                        model=model,
                        random_responsibilities=random_responsibilities, n_threads=n_threads)

    def without_empty_rows(self, n_components, estimator_name):
        rows = ArrayRows(self.X, weights_without_empty_rows(self.X, self.sample_weight))
        rows.rows_observed = True
        return rows

    def take(self, positions):
        if self.n_candidates == self.n_samples:  # every row is a candidate: index directly
            if positions is None:
                return self.X, self.sample_weight
            weights = None if self.sample_weight is None else self.sample_weight[positions]
            return np.ascontiguousarray(self.X[positions]), weights
        return super().take(positions)

    def _blocks(self):
        # Views of X, so that finding candidates needs no index of every row.
        step = _SCAN_ROWS
        for start in range(0, self.n_samples, step):
            weight = None if self.sample_weight is None else self.sample_weight[start:start + step]
            yield self.X[start:start + step], weight


class BlockRows(RowSource):
    """Rows read block by block, anew for every pass, each block checked as it comes.

    The first pass (made here) checks every block and counts the rows, the
    rows of positive weight and their total weight; every later pass must
    give the same three (and the same features and dtype), so a source that
    changes between passes is an error rather than a silently different fit.
    (Values are not compared: a source that keeps its counts but changes its
    numbers goes unnoticed.)

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
    label : str, default="make_chunks"
        What the messages call the source of the blocks.
    min_samples : int, default=2
        Fewest rows accepted (partial_fit takes chunks of one row).
    allow_nan : bool, default=False
        Accept NaN in the blocks (missing values, ``missing="em"``).
    """

    def __init__(self, make_blocks, n_components, estimator_name, label="make_chunks",
                 min_samples=2, allow_nan=False):
        if not callable(make_blocks):
            raise TypeError(
                f"{label} must be a callable returning an iterable of chunks, got "
                f"{type(make_blocks).__name__}; wrap a list of chunks as `lambda: chunks`"
            )
        self._make_blocks = make_blocks
        self._allow_nan = allow_nan
        self._min_samples = min_samples
        self._estimator_name = estimator_name
        self._label = label
        self.n_features = self.dtype = self._has_weights = None
        self._counts = None
        for _ in self._blocks():  # the first pass: checks every block, sets the counts
            pass
        self.n_samples, self.n_candidates, self.total_weight = self._counts
        if self.n_features is None:
            raise ValueError(f"{label} gave no rows: a fit needs at least {min_samples}")
        if min_samples > 1:
            check_enough_rows(self.n_samples, self.n_features, self.n_candidates, n_components,
                              estimator_name)
        elif not self.total_weight > 0:
            raise ValueError("sample_weight sums to zero: at least one row needs a positive weight.")

    def without_empty_rows(self, n_components, estimator_name):
        make_blocks = self._make_blocks

        def zero_empty_rows():
            for index, item in enumerate(make_blocks()):
                X, weight = _split_item(item, index)
                X = np.asarray(X)
                if X.ndim == 2 and X.dtype.kind == "f":   # others: BlockRows's checks refuse them
                    weight = weights_without_empty_rows(X, weight)
                yield X, weight

        rows = BlockRows(zero_empty_rows, n_components, estimator_name, label=self._label,
                         min_samples=self._min_samples, allow_nan=self._allow_nan)
        rows.rows_observed = True
        return rows

    def _blocks(self):
        """Yield the checked blocks of one pass; at its end, compare its counts with the first's."""
        n_samples = n_candidates = 0
        total_weight = 0.0
        for X, weight in self._checked_blocks():
            n_samples += X.shape[0]
            n_candidates += X.shape[0] if weight is None else int(np.count_nonzero(weight > 0))
            total_weight = _em.sum_weights(weight, X.shape[0], total_weight)
            yield X, weight
        counts = (n_samples, n_candidates, total_weight)
        if self._counts is None:
            self._counts = counts
        elif counts != self._counts:
            raise ValueError(
                f"{self._label} gave {counts[0]} rows ({counts[1]} of positive weight, total "
                f"weight {counts[2]!r}) on this pass but {self._counts[0]} ({self._counts[1]}, "
                f"{self._counts[2]!r}) on the first: every pass must read the same rows"
            )

    def _checked_blocks(self):
        """Yield the (X, sample_weight) blocks of one pass, each checked."""
        items = self._make_blocks()
        if items is None or isinstance(items, np.ndarray) or not hasattr(items, "__iter__"):
            raise TypeError(
                f"{self._label}() must return an iterable of chunks (X or (X, sample_weight)), "
                f"got {type(items).__name__}"
            )
        for index, item in enumerate(items):
            X, weight = _split_item(item, index)
            try:
                X = check_array(X, estimator_name=self._estimator_name, ensure_min_samples=0,
                                allow_nan=self._allow_nan)
                weight = check_sample_weight(weight, X.shape[0], allow_zero_sum=True)
            except ValueError as error:
                raise ValueError(f"chunk {index}: {error}") from None
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
            if X.shape[0]:
                yield X, weight


def _split_item(item, index):
    """An item of make_chunks: X, or (X, sample_weight)."""
    if isinstance(item, tuple):
        if len(item) != 2:
            raise ValueError(
                f"chunk {index} is a tuple of {len(item)} items; a chunk is X or (X, sample_weight)"
            )
        return item
    return item, None


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
        # (others, 1-D or not numeric, go to check_array and its errors)
        return (X.ndim == 2 and X.dtype.kind in "biuf"
                and not (X.flags.c_contiguous and X.dtype in (np.float32, np.float64)))
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


def rows_for_fit(X, sample_weight, n_components, estimator_name, n_threads=None, allow_nan=False):
    """The row source of ``fit(X, sample_weight)``: checked, nothing copied that need not be.

    Parameters
    ----------
    X : array-like, numpy.memmap, on-disk array or Dask array
    sample_weight : array-like of shape (n_samples,) or None
    n_components : int
    estimator_name : str
    n_threads : int or None, default=None
        The estimator's; a Dask source decides its workers' threads from it.
    allow_nan : bool, default=False
        Accept NaN as a missing value (``missing="em"``).

    Returns
    -------
    RowSource

    Raises
    ------
    ValueError, TypeError
        For data a fit cannot use, with scikit-learn's messages where it has them.
    """
    if is_dask_collection(X):
        from fastem._dask import DaskRows  # the optional extra, imported only when used

        return DaskRows(X, sample_weight, n_components, estimator_name, n_threads=n_threads,
                        allow_nan=allow_nan)
    if is_on_disk_array(X):
        weight = check_sample_weight(sample_weight, X.shape[0])
        blocks = sliced_blocks(X, weight, block_rows(max(1, X.shape[1])))
        return BlockRows(blocks, n_components, estimator_name, label="X", allow_nan=allow_nan)
    X, sample_weight = validate_fit_data(X, sample_weight, n_components, estimator_name,
                                         allow_nan=allow_nan)
    return ArrayRows(X, sample_weight)


class FilledRows(RowSource):
    """Another source's rows with each NaN replaced by its column's value: how a
    fit with missing values initialises (k-means and the first M-step need
    complete rows, and complete rows can be rare).  Each block is filled as it
    is read; X itself is never changed or copied whole.

    Parameters
    ----------
    source : RowSource
    fill : ndarray of shape (n_features,)
    """

    def __init__(self, source, fill):
        self._source = source
        self._fill = np.asarray(fill, dtype=source.dtype)
        for name in ("n_samples", "n_features", "dtype", "n_candidates", "total_weight",
                     "_has_weights", "_label"):
            setattr(self, name, getattr(source, name))

    def _blocks(self):
        for X, weight in self._source._blocks():
            yield fill_gaps(X, self._fill), weight
