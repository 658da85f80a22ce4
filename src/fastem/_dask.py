"""Gaussian mixtures over a Dask array: the row source of a distributed fit, and lazy inference.

A fit reads X through the row-source interface (fastem._sources), so the EM
loop, the initialisations and the M-step are the in-memory ones; this module
only says how a pass and a ``take`` run on a cluster.

A pass.  X (and the weights) were persisted on the workers once, when the
source was made.  Each pass sends every worker a small description of the
pass (the centres and, for an E-step, the model's parameters: O(K D^2)
numbers), maps the engine's nogil kernels over the row blocks where they
live, and adds the per-block :class:`~fastem._stats.SufficientStatistics`
in a tree whose shape depends only on the number of blocks (on the client
or on the workers: see "Latency").  One object of statistics reaches the client, which runs the M-step.
Rows never leave the workers, except the few a ``take`` asks for.

What travels.  A block's statistics leave its task with their lanes already
added up (in lane order): one copy of the statistics, 1 + K + K D + K D^2
numbers for full covariances, rather than the engine's up to 32 lanes of them.
The tree then adds these sums in block order; the client puts the total in
lane 0 of statistics of the usual shape.

Latency.  With a ``dask.distributed`` client and statistics small enough to
gather (all blocks' together under ``_GATHER_BYTES``), a pass is one task
per worker, run on the blocks that worker holds, and the client adds the
blocks' statistics in the same tree: the same bits with a fraction of the
scheduling (a task costs milliseconds of scheduler time, and an iteration
waits for all of them).  Larger statistics are added on the workers instead.

Bits.  A block's sum does not depend on where or with how many threads it
was made (the engine's lanes), nor the total on which worker holds which
block (the tree), so a Dask fit is the same on every run.  It equals the
in-memory fit to rounding, not bit for bit: the in-memory pass adds the same
chunk sums in another order (lane by lane over all the rows).

Missing values.  With ``missing="em"`` NaN is accepted (infinity is not).
The pass made when the source is made counts, per block, the weight of the
rows with an observed value (what a pass with missing values averages its
log-likelihood over); ``missing_summary`` gathers each block's column sums
of observed values (2 D + 2 numbers) for the column means that fill the gaps
for the initialisation; ``filled`` is the same persisted source with that
fill applied inside the tasks, so no filled copy of X is kept.  A Dask array
of one block fits bit for bit as in memory; more blocks agree to rounding
(the column means too: the blocks' sums are added in block order).

Threads.  The engine's result does not depend on its thread count, so the
choice is about speed only: every task runs the kernels with all the threads
of its worker (``nthreads``), and the tasks of one worker process take turns
(a process-wide lock).  A worker with T threads that is handed T blocks at
once thus runs one T-thread team rather than T teams of T threads (T^2
threads fighting for T cores); the waiting tasks hold a Dask thread each but
no CPU.  Outside ``dask.distributed`` (Dask's local threaded scheduler) the
estimator's ``n_threads`` is used instead.

Dask is an optional extra (``pip install "fastem[dask]"``): nothing here
imports it until a Dask array is given.
"""
import collections
import copy
import threading
import warnings

import numpy as np

from fastem._blas_threads import single_threaded_blas
from fastem._em import ModelArrays, lane_shape, observed_weight, sum_weights
from fastem._openmp_info import effective_n_threads
from fastem._sources import (
    MissingSummary, RowSource, add_rows, fill_gaps, is_dask_collection, missing_summary_of,
    observed_totals,
)
from fastem._stats import SufficientStatistics
from fastem._validation import (
    _NAN_IN_X_HINT, _RESHAPE_HINT, _assert_squares_finite, check_enough_rows, check_feature_names,
    check_sample_weight,
)
from fastem.exceptions import not_fitted_error

INSTALL_HINT = 'pip install "fastem[dask]"'

# Children per node of the reduction tree: as many as fit in this many bytes
# of statistics, between 2 and 32.  A wide node means fewer tasks (each costs
# the scheduler a millisecond or more) and fewer hops; the budget keeps a node
# of huge statistics (full covariances with D in the thousands: hundreds of MB
# per block) from holding dozens of them at once.  Each node adds its
# children in block order, so the result depends on the number of blocks and
# the size of the statistics only, never on where the blocks are.
_REDUCTION_NODE_BYTES = 64 * 2**20
_MAX_FAN_IN = 32

# Every block's statistics together below this: one task per worker and the
# tree on the client (module docstring, "Latency").
_GATHER_BYTES = 64 * 2**20


def _fan_in(n_stats):
    """Children per node of the reduction tree, for statistics of `n_stats` numbers."""
    return int(min(_MAX_FAN_IN, max(2, _REDUCTION_NODE_BYTES // (8 * n_stats))))

# The kernels of one worker process run one block at a time (module docstring).
_KERNEL_LOCK = threading.Lock()


def _dask():
    """The ``dask`` module, or an ImportError that names the extra."""
    try:
        import dask
        import dask.array  # noqa: F401  (the submodule must be importable too)
    except ImportError as error:
        raise ImportError(
            f"Dask arrays need the optional Dask extra of fastem: {INSTALL_HINT}"
        ) from error
    return dask


def _default_client():
    """The default ``dask.distributed`` client, or None (Dask's local scheduler)."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:  # distributed is installed, but no client was started
        return None


def _worker_threads(fallback):
    """Threads of the ``dask.distributed`` worker running this task, else `fallback`."""
    try:
        from distributed import get_worker
    except ImportError:
        return fallback
    try:
        return max(1, int(get_worker().state.nthreads))
    except ValueError:  # not inside a distributed worker: the local scheduler
        return fallback


class _KernelTurn:
    """Context manager of a task's kernels: its turn on this process, its threads, one-thread BLAS."""

    def __init__(self, fallback_threads):
        self.fallback_threads = fallback_threads

    def __enter__(self):
        _KERNEL_LOCK.acquire()
        try:
            # BLAS runs inside the engine's OpenMP threads: it must not add threads
            # of its own (the nanny sets OPENBLAS_NUM_THREADS=1, a bare worker may not).
            self._blas = single_threaded_blas()
            self._blas.__enter__()
            return _worker_threads(self.fallback_threads)
        except BaseException:
            _KERNEL_LOCK.release()
            raise

    def __exit__(self, *exc_info):
        try:
            self._blas.__exit__(*exc_info)
        finally:
            _KERNEL_LOCK.release()
        return False


# ---------------------------------------------------------------------------
# Input checks (the messages of fastem._validation where they apply)
# ---------------------------------------------------------------------------

def _as_dask_array(X, what="X"):
    dask = _dask()
    if not isinstance(X, dask.array.Array):
        raise TypeError(
            f"{what} is a {type(X).__name__}, a Dask collection fastem does not read; give a "
            "dask.array.Array (a Dask DataFrame becomes one with .to_dask_array(lengths=True))"
        )
    return X


def _check_rows_known(row_chunks):
    if any(np.isnan(n) for n in row_chunks):
        raise ValueError(
            "X has blocks of unknown size (a Dask array made by boolean indexing, say); "
            "call X.compute_chunk_sizes() first"
        )


def _checked_matrix(X, *, estimator_name):
    """X as a Dask array of float32 or float64, chunked along rows only (nothing computed)."""
    X = _as_dask_array(X)
    by = f" by {estimator_name}" if estimator_name else ""
    if X.ndim == 0:
        raise ValueError(f"Expected 2D array, got scalar array instead:\narray={X}.\n{_RESHAPE_HINT}")
    if X.ndim == 1:
        raise ValueError(f"Expected 2D array, got 1D array instead:\narray={X}.\n{_RESHAPE_HINT}")
    if X.ndim >= 3:
        raise ValueError(f"Found array with dim {X.ndim}, while dim <= 2 is required{by}.")
    kind = X.dtype.kind
    if kind == "c":
        raise ValueError(f"Complex data not supported\n{X}\n")
    if kind not in "biuf":
        raise ValueError(
            "dtype='numeric' is not compatible with arrays of bytes/strings."
            "Convert your data to numeric values explicitly instead."
            if kind in "USV" else f"X must hold numbers, got dtype {X.dtype}"
        )
    if X.shape[1] < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is required{by}."
        )
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if len(X.chunks[1]) > 1:
        # The kernels read whole rows: one block across the columns.
        X = X.rechunk({1: -1})
    return X


def _weight_problem(weight):
    """The message check_sample_weight gives for this block's weights, or None.

    A block may weigh zero in all (the other blocks carry the weight); the
    total is checked on the client.
    """
    try:
        check_sample_weight(weight, len(weight), allow_zero_sum=True)
    except ValueError as error:
        return str(error)
    return None


def _dask_weights(sample_weight, n_samples, row_chunks):
    """Weights as a float64 Dask array with X's row blocks (values checked later, per block)."""
    da = _dask().array
    if sample_weight is None:
        return None
    if not is_dask_collection(sample_weight):
        weights = check_sample_weight(sample_weight, n_samples)  # in memory: checked now
        return da.from_array(weights, chunks=(row_chunks,))
    weights = _as_dask_array(sample_weight, "sample_weight")
    if weights.ndim != 1 or weights.shape[0] != n_samples:
        raise ValueError(f"sample_weight.shape == {weights.shape}, expected ({n_samples},)!")
    if weights.dtype.kind not in "biuf":
        raise ValueError(f"sample_weight must be real numbers, got dtype {weights.dtype}.")
    return weights.astype(np.float64).rechunk((row_chunks,))


# ---------------------------------------------------------------------------
# Tasks (run on the workers; module-level so that they pickle by name)
# ---------------------------------------------------------------------------

_BlockSummary = collections.namedtuple(
    "_BlockSummary",
    "has_nan has_inf weight_problem n_candidates weight_sum peak observed_weight n_empty")


def _block_summary(X, weight):
    """What the client checks and counts, for one block: a small tuple, never rows.

    Returns a ``_BlockSummary``: NaN and infinity seen; the weights' problem
    (a message) or None; the rows of positive weight and their total weight;
    the largest magnitude of a value that is not NaN (0 for float32, which
    cannot hold a value whose square overflows float64); and, for a fit that
    reads NaN as missing values, the weight of the rows with an observed
    value and the rows without one.
    """
    # One buffered pass without a temporary; only a non-finite sum is looked into.
    with np.errstate(over="ignore", invalid="ignore"):
        finite = bool(np.isfinite(np.sum(X, dtype=np.float64)))
    has_nan = not finite and bool(np.isnan(X).any())
    has_inf = not finite and bool(np.isinf(X).any())
    peak = 0.0
    if X.dtype == np.float64 and X.size and not has_inf:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # an all-NaN block: nanmax warns
            peak = max(abs(float(np.nanmax(X))), abs(float(np.nanmin(X))))
        peak = 0.0 if np.isnan(peak) else peak
    if weight is None:
        n_candidates, weight_sum, problem = X.shape[0], float(X.shape[0]), None
    else:
        weight = np.ascontiguousarray(weight, dtype=np.float64)
        problem = _weight_problem(weight)
        n_candidates, weight_sum = 0, 0.0
        if problem is None:
            n_candidates = int(np.count_nonzero(weight > 0))
            weight_sum = sum_weights(weight, len(weight))
    observed, n_empty = weight_sum, 0
    if has_nan and problem is None and not has_inf:
        observed, n_empty = observed_weight(np.ascontiguousarray(X), weight)
    return _BlockSummary(has_nan, has_inf, problem, n_candidates, weight_sum, peak, observed,
                         n_empty)


def _rows_observed(X):
    """(n_rows,) bool: the rows of a block with at least one value that is not NaN."""
    return ~np.isnan(np.asarray(X)).all(axis=1)


def _block_observed_totals(X, weight):
    """:func:`fastem._sources.observed_totals` of one block (D sums and weights, three counts)."""
    weight = None if weight is None else np.asarray(weight, dtype=np.float64)
    return observed_totals(np.asarray(X), weight)


def _block_statistics(X, weight, spec, seed, fallback_threads, fill=None):
    """One block's statistics for the pass `spec` describes, lanes added (see DaskRows.accumulate).

    `fill`: each NaN replaced by its column's value first (DaskRows.filled).
    """
    covariance_type, centres, tied_centre, model_parameters = spec
    stats = SufficientStatistics(covariance_type, centres, tied_centre)
    model = None if model_parameters is None else ModelArrays(*model_parameters)
    random_state = None if seed is None else np.random.RandomState(seed)
    X = np.ascontiguousarray(X)
    if fill is not None:
        X = fill_gaps(X, fill)
    weight = None if weight is None else np.ascontiguousarray(weight, dtype=np.float64)
    with _KernelTurn(fallback_threads) as n_threads:
        add_rows(stats, X, weight, model=model, random_responsibilities=random_state,
                 n_threads=n_threads)
    # What crosses the network: one lane, the block's lanes added in order.
    stats.lanes = stats.flat()[None, :]
    return stats


def _sum_in_order(*parts):
    """``parts[0] + parts[1] + ...``, left to right: a node of the reduction tree."""
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _reduce_in_tree(parts, fan_in, node):
    """The root of the reduction tree over `parts` (in block order), made by `node`.

    `node` is :func:`_sum_in_order` on the client or its delayed form on the
    workers: the same tree, so the same bits, either way.
    """
    while len(parts) > 1:
        parts = [node(*parts[start:start + fan_in]) for start in range(0, len(parts), fan_in)]
    return parts[0]


def _worker_statistics(spec, seeds, fallback_threads, x_blocks, w_blocks, fill=None):
    """The statistics of every block one worker holds, one object per block, in the order given."""
    return [_block_statistics(x, w, spec, seed, fallback_threads, fill)
            for x, w, seed in zip(x_blocks, w_blocks, seeds)]


def _take_block_rows(X, weight, local_positions):
    """The rows of one block at `local_positions` among its candidates, and their weights."""
    if weight is None:
        rows = local_positions
    else:
        weight = np.asarray(weight, dtype=np.float64)
        rows = np.flatnonzero(weight > 0)[local_positions]
    taken = np.ascontiguousarray(np.asarray(X)[rows])
    return taken, (None if weight is None else weight[rows])


def _infer_block(X, estimator, output, cast, out_dtype, fallback_threads):
    """The in-memory inference (fastem's own checks included) of one block."""
    if X.shape[0] == 0:
        tail = (len(estimator.weights_),) if output == "resp" else ()
        return np.empty((0,) + tail, dtype=out_dtype)
    with _KernelTurn(fallback_threads) as n_threads:
        local = copy.copy(estimator)  # the shared, deserialised estimator stays untouched
        local.n_threads = n_threads
        return local._infer(np.asarray(X), output, cast)


def _weighted_block_sums(log_prob, weight, X=None):
    """``[sum of w * log p, sum of w]`` over one block (a zero weight drops its row, even at -inf).

    With `X` (NaN read as missing values), the weight is that of the rows
    with an observed value: an empty row scores 0 and counts for nothing.
    """
    if weight is not None:
        weight = np.ascontiguousarray(weight, dtype=np.float64)
        problem = _weight_problem(weight)
        if problem is not None:
            raise ValueError(problem)
    if X is not None:
        total = observed_weight(np.ascontiguousarray(X), weight)[0]
    else:
        total = float(len(log_prob)) if weight is None else weight.sum()
    if weight is None:
        return np.array([log_prob.sum(), total])
    positive = weight > 0
    return np.array([np.dot(weight[positive], log_prob[positive]), total])


def _impute_block(X, estimator, return_std, fallback_threads):
    """The in-memory impute of one block; with `return_std`, the fill and the std side by side."""
    with _KernelTurn(fallback_threads) as n_threads:
        local = copy.copy(estimator)
        local.n_threads = n_threads
        result = local.impute(np.asarray(X), return_std=return_std)
    return np.hstack(result) if return_std else result


# ---------------------------------------------------------------------------
# The row source
# ---------------------------------------------------------------------------

class DaskRows(RowSource):
    """The rows of a Dask array, persisted on the workers, read by tasks where they live.

    Made by :func:`fastem._sources.rows_for_fit` for a Dask X.  X is checked
    (shape and dtype now; finite values, weights and counts in one pass over
    the blocks), cast to float64 unless float32, rechunked to whole rows, and
    persisted with the default ``dask.distributed`` client (Dask's local
    scheduler without one) for as long as this object lives: every pass of
    the fit then reads the workers' memory, never X's graph again.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        Any numeric dtype; blocks of known size.
    sample_weight : None, array-like or dask.array.Array of shape (n_samples,)
        Rechunked to X's row blocks.
    n_components : int
        For the check that there are enough rows.
    estimator_name : str
        Named in the error messages.
    n_threads : int or None, default=None
        Kernel threads under Dask's local scheduler only; a ``distributed``
        worker uses its own thread count (see the module docstring).
    allow_nan : bool, default=False
        Accept NaN as a missing value (``missing="em"``); infinity is still
        refused.

    Attributes
    ----------
    n_samples, n_features, dtype, n_candidates, total_weight
        As :class:`~fastem._sources.RowSource` describes them.  ``total_weight``
        adds the blocks' sums in block order: equal to the in-memory total
        to rounding (exactly without weights).
    n_blocks : int
        Row blocks with at least one row.

    Raises
    ------
    ImportError
        Without Dask, naming the extra ``pip install "fastem[dask]"``.
    ValueError
        For the inputs the in-memory fit refuses, with its messages.
    """

    def __init__(self, X, sample_weight, n_components, estimator_name, n_threads=None,
                 allow_nan=False):
        dask = _dask()
        X = _checked_matrix(X, estimator_name=estimator_name)
        _check_rows_known(X.chunks[0])
        self.n_samples, self.n_features = (int(n) for n in X.shape)
        self.dtype = X.dtype
        # The counts known without computing; rows of positive weight after the pass below.
        check_enough_rows(self.n_samples, self.n_features, self.n_samples, n_components,
                          estimator_name)
        weights = _dask_weights(sample_weight, self.n_samples, X.chunks[0])

        # Persist once: every pass reads the workers' memory, not X's graph.
        self._client = _default_client()
        if self._client is not None:
            self._scheduler = self._client
            X, weights = self._client.persist([X, weights]) if weights is not None else (
                self._client.persist(X), None)
        else:
            self._scheduler = "threads"
            X, weights = dask.persist(X, weights, scheduler="threads")
        self._X, self._weights = X, weights
        self._fallback_threads = effective_n_threads(n_threads)
        self._fill = None   # DaskRows.filled: the blocks' NaN replaced in the tasks

        # Blocks without rows are left out: they add nothing and take nothing.
        sizes = np.array(X.chunks[0], dtype=np.int64)
        keep = np.flatnonzero(sizes > 0)
        x_blocks = X.to_delayed().ravel()
        w_blocks = weights.to_delayed().ravel() if weights is not None else [None] * len(sizes)
        self._delayed_blocks = [(x_blocks[i], w_blocks[i]) for i in keep]
        self.n_blocks = len(self._delayed_blocks)

        summaries = dask.compute(
            *[dask.delayed(_block_summary)(x, w) for x, w in self._delayed_blocks], scheduler=self._scheduler)
        self._check_summaries(summaries, n_components, estimator_name, allow_nan)
        # (after the summaries: the persisted blocks now exist on the workers)
        self._by_worker = None if self._client is None else self._blocks_by_worker(keep)

    def _check_summaries(self, summaries, n_components, estimator_name, allow_nan):
        has_nan = any(s.has_nan for s in summaries)
        has_inf = any(s.has_inf for s in summaries)
        if has_nan and not allow_nan:
            raise ValueError("Input X contains NaN." + _NAN_IN_X_HINT.format(estimator=estimator_name))
        if has_inf:
            raise ValueError(f"Input X contains infinity or a value too large for {self.dtype!r}.")
        problems = [s.weight_problem for s in summaries if s.weight_problem is not None]
        if problems:
            raise ValueError(problems[0])
        # The in-memory check, on the largest magnitude of all blocks: same message.
        _assert_squares_finite(np.array([[max((s.peak for s in summaries), default=0.0)]]), "X")
        self._has_nan = has_nan
        # The weight a pass that reads NaN as missing averages its log-likelihood
        # over (rows with an observed value), in block order.
        observed = 0.0
        for summary in summaries:
            observed += summary.observed_weight
        self._observed_weight = float(observed)
        counts = np.array([s.n_candidates for s in summaries], dtype=np.int64)
        self.n_candidates = int(counts.sum())
        # Candidate positions [starts[b], starts[b] + counts[b]) are block b's.
        self._candidate_starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self._candidate_ends = np.cumsum(counts)
        total = 0.0
        for summary in summaries:   # block order: the same total on every run
            total += summary.weight_sum
        self.total_weight = float(total) if self._weights is not None else float(self.n_samples)
        if self._weights is not None:
            if not total > 0:
                raise ValueError(
                    "sample_weight sums to zero: at least one row needs a positive weight.")
            check_enough_rows(self.n_samples, self.n_features, self.n_candidates, n_components,
                              estimator_name)

    def missing_summary(self):
        """What a fit with missing values needs to know of the data, from the workers.

        Each block sends its column sums and weights of observed values and
        its counts (:func:`fastem._sources.observed_totals`: 2 D + 3
        numbers), added here in block order.  Without NaN (known from the
        checks made when the source was made) nothing is computed.

        Returns
        -------
        MissingSummary
            As :meth:`fastem._sources.RowSource.missing_summary` describes it;
            the column means equal the in-memory ones to rounding (the blocks'
            sums are added in block order).

        Raises
        ------
        ValueError
            If some column has no observed value in a row of positive weight
            (the in-memory message).
        """
        if not self._has_nan:
            return MissingSummary(False, None, 0, 0)
        dask = _dask()
        parts = dask.compute(*[dask.delayed(_block_observed_totals)(x, w)
                               for x, w in self._delayed_blocks], scheduler=self._scheduler)
        sums, weights, n_empty, n_nan, n_empty_candidates = parts[0]
        for part in parts[1:]:   # block order
            sums, weights = sums + part[0], weights + part[1]
            n_empty, n_nan = n_empty + part[2], n_nan + part[3]
            n_empty_candidates += part[4]
        return missing_summary_of((sums, weights, n_empty, n_nan, n_empty_candidates),
                                  self._weights is not None)

    def without_empty_rows(self, n_components, estimator_name):
        """These rows, each row with no observed value weighted 0 (see
        :meth:`fastem._sources.RowSource.without_empty_rows`): a new source over
        the same persisted X, with the weights zeroed lazily, block by block."""
        da = _dask().array
        X, weights = self._X, self._weights
        if weights is None:
            weights = da.ones(X.shape[0], chunks=(X.chunks[0],))
        observed = da.map_blocks(_rows_observed, X, drop_axis=1, dtype=bool)
        weights = da.where(observed, weights, 0.0)
        return DaskRows(X, weights, n_components, estimator_name,
                        n_threads=self._fallback_threads, allow_nan=True)

    def filled(self, fill):
        """These rows with each NaN replaced by its column's value in `fill`.

        The same persisted blocks: the tasks of a pass fill their block
        before the kernels read it, and ``take`` fills the rows it fetched.

        Parameters
        ----------
        fill : ndarray of shape (n_features,)

        Returns
        -------
        DaskRows
        """
        filled = copy.copy(self)
        filled._fill = np.asarray(fill, dtype=self.dtype)
        return filled

    def accumulate(self, stats, *, model=None, random_responsibilities=None, n_threads=1):
        """One pass on the workers; the statistics are added into `stats`, which is returned.

        Parameters
        ----------
        stats : SufficientStatistics
        model : fastem._em.ModelArrays, default=None
            Sent as its parameters and rebuilt on the workers (the same
            arithmetic gives the same bits).
        random_responsibilities : numpy.random.RandomState, default=None
            One seed per block is drawn from it here, in block order, and each
            block draws its responsibilities from its own seed on its worker:
            reproducible, but a different stream from the in-memory fit's.
        n_threads : int, default=1
            Ignored: tasks use their worker's threads (see the module docstring).

        Returns
        -------
        SufficientStatistics
            `stats`, with every row's statistics added.
        """
        dask = _dask()
        model_parameters = None
        if model is not None:
            model_parameters = (model.covariance_type, np.asarray(model.weights),
                                np.asarray(model.means), np.asarray(model.precisions_cholesky),
                                None, model.missing)
        # The pass's description travels inside every task (a few KB): a key of its
        # own would make every other worker wait for a transfer before starting.
        spec = (stats.covariance_type, stats.centres, stats.tied_centre, model_parameters)
        seeds = [None] * self.n_blocks
        if random_responsibilities is not None:
            seeds = random_responsibilities.randint(np.iinfo(np.int32).max, size=self.n_blocks)
        fan_in = _fan_in(stats.n_stats)
        if self._by_worker is not None and 8 * stats.n_stats * self.n_blocks <= _GATHER_BYTES:
            reduced = _reduce_in_tree(self._statistics_by_worker(spec, seeds), fan_in, _sum_in_order)
        else:
            parts = [
                dask.delayed(_block_statistics)(x, w, spec, seed, self._fallback_threads,
                                                self._fill)
                for (x, w), seed in zip(self._delayed_blocks, seeds)
            ]
            root = _reduce_in_tree(parts, fan_in, dask.delayed(_sum_in_order))
            (reduced,) = dask.compute(root, scheduler=self._scheduler)
        # Back to the engine's shape of lanes: the total in lane 0, the others zero.
        lanes = np.zeros(lane_shape(reduced.n_stats))
        lanes[0, :reduced.n_stats] = reduced.lanes[0]
        reduced.lanes = lanes
        # Every pass adds every row: its weight is the source's, summed once in block order
        # (a pass reading NaN as missing values leaves out the rows with nothing observed).
        reduced.total_weight = (self._observed_weight if model is not None and model.missing
                                else self.total_weight)
        # In place, as the in-memory sources add into the caller's object.
        stats.__dict__.update((stats + reduced).__dict__)
        return stats

    def _statistics_by_worker(self, spec, seeds):
        """Every block's statistics, in block order, from one task per worker."""
        x_futures, w_futures, groups = self._by_worker
        tasks = [
            self._client.submit(
                _worker_statistics, spec, [seeds[b] for b in blocks], self._fallback_threads,
                [x_futures[b] for b in blocks], [w_futures[b] for b in blocks], self._fill,
                workers=[address], allow_other_workers=True, pure=False)
            for address, blocks in groups.items()
        ]
        per_block = [None] * self.n_blocks
        for blocks, results in zip(groups.values(), self._client.gather(tasks)):
            for b, part in zip(blocks, results):
                per_block[b] = part
        return per_block

    def _blocks_by_worker(self, keep):
        """The kept blocks' futures and which worker holds each: (x, w, {address: blocks}).

        Placement only decides where a block's task runs (and the data moves if
        it changed); the sums are added in block order whatever it is.
        """
        from distributed import futures_of

        futures = {future.key: future for future in futures_of(self._X)}
        x_keys = [row[0] for row in self._X.__dask_keys__()]  # one block of columns
        x_futures = [futures[x_keys[i]] for i in keep]
        w_futures = [None] * len(keep)
        if self._weights is not None:
            futures = {future.key: future for future in futures_of(self._weights)}
            w_keys = self._weights.__dask_keys__()
            w_futures = [futures[w_keys[i]] for i in keep]
        holders = self._client.who_has(x_futures)
        groups = {}
        for b, future in enumerate(x_futures):
            address = (list(holders.get(future.key, ())) or [None])[0]
            groups.setdefault(address, []).append(b)
        return x_futures, w_futures, groups

    def take(self, positions):
        """Candidate rows at `positions`, fetched from the blocks that hold them.

        Only those rows cross the network; ``positions=None`` fetches every
        candidate (the k-means subsample of data smaller than the subsample).

        Parameters
        ----------
        positions : array of int or None

        Returns
        -------
        rows : ndarray of shape (len(positions), n_features), of ``dtype``
        weights : ndarray of shape (len(positions),) or None
        """
        dask = _dask()
        positions = (np.arange(self.n_candidates) if positions is None
                     else np.asarray(positions, dtype=np.intp).reshape(-1))
        if len(positions) and (positions.min() < 0 or positions.max() >= self.n_candidates):
            raise IndexError(f"positions must lie in [0, {self.n_candidates})")
        block_of = np.searchsorted(self._candidate_ends, positions, side="right")
        wanted = np.unique(block_of)
        tasks = [
            dask.delayed(_take_block_rows)(
                *self._delayed_blocks[b], positions[block_of == b] - self._candidate_starts[b])
            for b in wanted
        ]
        fetched = dask.compute(*tasks, scheduler=self._scheduler)
        rows = np.empty((len(positions), self.n_features), dtype=self.dtype)
        weights = np.empty(len(positions)) if self._weights is not None else None
        for b, (block_rows, block_weights) in zip(wanted, fetched):
            rows[block_of == b] = block_rows
            if weights is not None:
                weights[block_of == b] = block_weights
        if self._fill is not None:
            rows = fill_gaps(rows, self._fill)
        return rows, weights


# ---------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------

def _for_inference(estimator, X):
    """Checked X, the estimator the tasks receive, and the threads of Dask's local scheduler."""
    _dask()
    if not estimator.__sklearn_is_fitted__():
        raise not_fitted_error(estimator)
    check_feature_names(estimator, X, reset=False)  # warns once, here, not once per block
    name = type(estimator).__name__
    X = _checked_matrix(X, estimator_name=name)
    if X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {name} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    shipped = copy.copy(estimator)
    shipped.__dict__.pop("feature_names_in_", None)  # checked above, once
    return X, shipped, effective_n_threads(estimator.n_threads)


def infer_lazily(estimator, X, output, cast):
    """A fitted estimator's `output` for each row of a Dask array, as a lazy Dask array.

    Parameters
    ----------
    estimator : GaussianMixture
        Fitted.
    X : dask.array.Array of shape (n_samples, n_features)
    output : {"log_prob", "resp", "labels"}
    cast : bool
        Floats in X's float dtype (float64 for other dtypes) when True,
        float64 otherwise.

    Returns
    -------
    dask.array.Array
        Of shape (n_samples,) (log_prob, labels: int64) or
        (n_samples, n_components) (resp), one block per row block of X.
        Non-finite values in a block raise when that block is computed.
    """
    X, shipped, threads = _for_inference(estimator, X)
    if output == "labels":
        out_dtype = np.dtype(np.int64)
    else:
        out_dtype = X.dtype if cast else np.dtype(np.float64)
    meta = np.empty((0, 0) if output == "resp" else (0,), dtype=out_dtype)
    if output == "resp":
        return X.map_blocks(_infer_block, shipped, output, cast, out_dtype, threads,
                            chunks=(X.chunks[0], (len(estimator.weights_),)), dtype=out_dtype,
                            meta=meta)
    return X.map_blocks(_infer_block, shipped, output, cast, out_dtype, threads,
                        drop_axis=1, dtype=out_dtype, meta=meta)


def impute_lazily(estimator, X, return_std):
    """A fitted estimator's ``impute`` of a Dask array, as lazy Dask arrays.

    Parameters
    ----------
    estimator : GaussianMixture
        Fitted.
    X : dask.array.Array of shape (n_samples, n_features)
    return_std : bool

    Returns
    -------
    X_filled : dask.array.Array of shape (n_samples, n_features)
        In X's float dtype (float64 for other dtypes), one block per row block
        of X.  Infinity, or a row whose densities all underflow, raises when
        its block is computed.
    std : dask.array.Array of shape (n_samples, n_features)
        Only with `return_std`.  Both come from one task per block (the fill
        and the std are computed together), so compute them together.
    """
    X, shipped, threads = _for_inference(estimator, X)
    d = X.shape[1]
    meta = np.empty((0, 0), dtype=X.dtype)
    if not return_std:
        return X.map_blocks(_impute_block, shipped, False, threads, dtype=X.dtype, meta=meta)
    both = X.map_blocks(_impute_block, shipped, True, threads, chunks=(X.chunks[0], (2 * d,)),
                        dtype=X.dtype, meta=meta)
    return both[:, :d], both[:, d:]


def weighted_sum(log_prob, sample_weight, X=None):
    """Summed (weighted) log-likelihood of a lazy Dask array of log-densities, and its weight.

    Parameters
    ----------
    log_prob : dask.array.Array of shape (n_samples,), float64
    sample_weight : None, array-like or dask.array.Array of shape (n_samples,)
        A zero weight drops its row (even at a density of zero).
    X : dask.array.Array of shape (n_samples, n_features), default=None
        The rows scored, when NaN marks missing values: the total weight is
        then that of the rows with an observed value (``score`` averages over
        them, as ``lower_bound_`` does).

    Returns
    -------
    log_likelihood : float
    total_weight : float
        Block sums added in block order on the client.

    Raises
    ------
    ValueError
        For weights of the wrong shape, negative or non-finite (found when
        their block is computed) or summing to zero.
    """
    dask = _dask()
    blocks = log_prob.to_delayed().ravel()
    weights = [None] * len(blocks)
    if sample_weight is not None:
        _check_rows_known(log_prob.chunks[0])
        weights = _dask_weights(sample_weight, log_prob.shape[0], log_prob.chunks[0])
        weights = weights.to_delayed().ravel()
    rows = [None] * len(blocks)
    if X is not None:
        rows = _checked_matrix(X, estimator_name=None).rechunk({0: log_prob.chunks[0]})
        rows = rows.to_delayed().ravel()
    sums = dask.compute(*[dask.delayed(_weighted_block_sums)(lp, w, x)
                          for lp, w, x in zip(blocks, weights, rows)])
    log_likelihood, total = 0.0, 0.0
    for block_log_likelihood, block_weight in sums:  # block order
        log_likelihood += block_log_likelihood
        total += block_weight
    if sample_weight is not None and not total > 0:
        raise ValueError("sample_weight sums to zero: at least one row needs a positive weight.")
    return float(log_likelihood), float(total)
