"""The Python layer's one door into the engine.

A model is held in scikit-learn's storage (weights, means, covariances,
precision Cholesky factors; see GaussianModel in _gmm.pxd).  _gmm runs the
passes over it, _fit turns a pass's statistics into the next model (the
M-step) and runs EM iterations, in nogil C.  This module gives Python
ModelArrays (a model over NumPy arrays: EM steps, scores, log-densities),
the pass into caller-owned lanes (accumulate, reduce_lanes), the M-step from
statistics, and the exceptions the statuses stand for.  The estimator in
_gaussian_mixture.py and the public C-level API in kernels.pyx call the same
functions, so a fit through either gives the same bits.

The nogil layers below return statuses and never raise; this module is where
they become Python exceptions (raise_for_status), so every function here
raises on error.
"""
from libc.stdlib cimport free

import numpy as np

from fastem._covariance_shapes cimport (
    COUNTS_OFFSET, COVARIANCE_DIAG, COVARIANCE_FULL, COVARIANCE_SPHERICAL, COVARIANCE_TIED,
    covariance_size, first_offset, second_offset, statistic_of,
    statistics_size as _statistics_size,
)
from fastem._fit cimport em_step, m_step, m_step_about, normalise_weights, precision_cholesky
from fastem._gmm cimport (
    _Derived, _derive, _given_params, _kernel_status, _threads, _tied_centre,
    accumulate_model, check_model, log_densities_model, model_stats_size,
    normalise_log_densities, score_model, _sum_weights,
)
from fastem._kernels cimport (
    STATS_DIAG, STATS_FULL, STATS_TIED, MixtureParams, accumulate_lanes, default_chunk_rows,
)
from fastem._kernels import Stats
from fastem._missing cimport (
    missing_lanes, missing_rows, observed_totals_rows, observed_weight as _observed_weight,
)
from fastem._covariance import COVARIANCE_TYPES as _COVARIANCE_TABLE
from fastem._pass cimport lane_count as _lane_count, padded, reduce_lanes as _reduce_lanes

# ---------------------------------------------------------------------------
# Python entry points for the estimator: check arrays, release the GIL, raise.
# ---------------------------------------------------------------------------

# Names to codes, from the one Python table (its codes are fastem.h's FASTEM_*;
# tests/test_capi.py pins them to the C API's).
COVARIANCE_CODES = {name: t.code for name, t in _COVARIANCE_TABLE.items()}

# scikit-learn's text, word for word: code written against scikit-learn matches it.
ILL_DEFINED_MESSAGE = (
    "Fitting the mixture model failed because some components have "
    "ill-defined empirical covariance (for instance caused by singleton "
    "or collapsed samples). Try to decrease the number of components, "
    "increase reg_covar, or scale the input data."
)

# scikit-learn appends this for float32 data (fastem's M-step runs in float64,
# but the advice to pass float64 still holds for the data's own rounding).
ILL_DEFINED_FLOAT32_HINT = (
    " The numerical accuracy can also be improved by passing float64"
    " data instead of float32."
)

NOT_FINITE_MESSAGE = (
    "The log-likelihood is not finite: the data are too far from the model (or too "
    "large) to evaluate. Try scaling the input data or increasing reg_covar."
)


def raise_for_status(int status, dtype=None):
    """Raise the exception a Status stands for (nothing for STATUS_OK).

    `dtype` is the data's dtype where the caller knows it: float32 data add
    scikit-learn's float32 hint to the ill-defined-covariance message.
    """
    if status == STATUS_OK:
        return
    if status == STATUS_NO_MEMORY:
        raise MemoryError("fastem: could not allocate scratch memory")
    if status == STATUS_ILL_DEFINED:
        single = dtype is not None and np.dtype(dtype) == np.float32
        raise ValueError(ILL_DEFINED_MESSAGE + (ILL_DEFINED_FLOAT32_HINT if single else ""))
    if status == STATUS_NOT_FINITE:
        raise ValueError(NOT_FINITE_MESSAGE)
    raise ValueError(f"fastem: invalid arguments (status {status})")


def covariance_shape(int code, Py_ssize_t k, Py_ssize_t d):
    """Shape of a model's covariances (and precision factors) for a covariance code."""
    if code == COVARIANCE_FULL:
        return (k, d, d)
    if code == COVARIANCE_TIED:
        return (d, d)
    if code == COVARIANCE_DIAG:
        return (k, d)
    return (k,)


def _second_moments_shape(int stat, Py_ssize_t k, Py_ssize_t d):
    if stat == STATS_FULL:
        return (k, d, d)
    if stat == STATS_TIED:
        return (d, d)
    if stat == STATS_DIAG:
        return (k, d)
    return None


def split_statistics(stats, int stat, Py_ssize_t k, Py_ssize_t d):
    """Views ``(log_lik, counts (K,), first (K, D), second)`` of a flat statistics
    array of statistic code `stat` (second None for STATS_NONE), laid out as in
    fastem.h."""
    first, second = first_offset(k), second_offset(k, d)
    shape = _second_moments_shape(stat, k, d)
    return (float(stats[0]), stats[COUNTS_OFFSET:first], stats[first:second].reshape(k, d),
            None if shape is None else stats[second:].reshape(shape))


cdef class ModelArrays:
    """A GaussianModel over NumPy arrays owned by this object (float64, contiguous).

    Parameters
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"}
    weights : array-like of shape (n_components,)
    means : array-like of shape (n_components, n_features)
    precisions_cholesky : array-like
        Upper-triangular factors for full/tied, shaped as scikit-learn stores them.
    covariances : array-like or None
        None allocates zeros (enough for scoring; an M-step fills them).
    missing : bool, default=False
        Read NaN in X as a missing value: every pass (statistics, scores,
        log-densities) then uses each row's observed coordinates (fastem._missing).
        Without it NaN is data, as the complete-data kernels see it.
    """
    cdef GaussianModel model
    cdef readonly object weights, means, covariances, precisions_cholesky
    cdef readonly str covariance_type
    cdef readonly bint missing

    def __init__(self, covariance_type, weights, means, precisions_cholesky, covariances=None,
                 missing=False):
        self.covariance_type = covariance_type
        self.missing = missing
        self.weights = np.array(weights, dtype=np.float64, order="C")
        self.means = np.array(means, dtype=np.float64, order="C")
        self.precisions_cholesky = np.array(precisions_cholesky, dtype=np.float64, order="C")
        k, d = self.means.shape
        if covariances is None:
            covariances = np.zeros_like(self.precisions_cholesky)
        self.covariances = np.array(covariances, dtype=np.float64, order="C")
        code = COVARIANCE_CODES[covariance_type]
        size = covariance_size(code, k, d)
        if (self.weights.shape != (k,) or self.precisions_cholesky.size != size
                or self.covariances.size != size):
            raise ValueError("model arrays do not match n_components, n_features and covariance_type")
        cdef double[::1] w = self.weights
        cdef double[::1] m = self.means.reshape(-1)
        cdef double[::1] c = self.covariances.reshape(-1)
        cdef double[::1] f = self.precisions_cholesky.reshape(-1)
        self.model.n_components = k
        self.model.n_features = d
        self.model.covariance_type = code
        self.model.weights = &w[0]
        self.model.means = &m[0]
        self.model.covariances = &c[0]
        self.model.precisions_cholesky = &f[0]

    def em_step(self, const floating[:, ::1] X, sample_weight, double total, double reg_covar,
                int n_threads):
        """One EM iteration in place; returns the mean log-likelihood before it.

        Raises
        ------
        ValueError
            If `X` has fewer columns than the model has features, the
            log-likelihood is not finite or a new covariance is ill-defined.
        """
        self._check_columns(X.shape[1])
        if self.missing:
            raise ValueError("em_step is the complete-data step; a model with missing=True "
                             "takes accumulate() and m_step()")
        cdef const double* w = _weights_pointer(sample_weight, X.shape[0])
        cdef double bound = 0.0
        cdef int status
        with nogil:
            status = em_step(&X[0, 0], X.shape[0], X.shape[1], w, total, &self.model,
                             reg_covar, n_threads, &bound)
        raise_for_status(status, np.float32 if floating is float else np.float64)
        return bound

    def accumulate(self, const floating[:, ::1] X, sample_weight=None, int n_threads=1):
        """One fused pass: the statistics array (layout in fastem.h).

        `X` may have more columns than the model has features: rows are read
        ``X.shape[1]`` apart and only the first ``n_features`` columns are used.
        """
        self._check_columns(X.shape[1])
        cdef const double* w = _weights_pointer(sample_weight, X.shape[0])
        if self.missing:
            lanes = np.zeros(lane_shape(model_stats_size(&self.model)))
            accumulate(X, sample_weight, lanes, statistic=STATISTIC_NAMES[statistic_of(self.model.covariance_type)],
                       centres=self.means, model=self, tied_centre=self.tied_centre(),
                       n_threads=n_threads)
            return reduce_lanes(lanes, model_stats_size(&self.model))
        stats = np.empty(model_stats_size(&self.model))
        cdef double* out = _out_pointer(stats)
        cdef int status
        with nogil:
            status = accumulate_model(&X[0, 0], X.shape[0], X.shape[1], w, &self.model,
                                      n_threads, out)
        raise_for_status(status)
        return stats

    def log_densities(self, const floating[:, ::1] X, int n_threads=1, out=None):
        """(n_rows, K) ``log w_k + log N(x_n | k)``; `X` as for :meth:`accumulate`.

        `out`, a writeable C-contiguous float64 (n_rows, K) array, receives them
        instead of a new array: a loop of passes (an HMM's E-steps) reuses one.
        """
        self._check_columns(X.shape[1])
        if out is None:
            out = np.empty((X.shape[0], self.model.n_components))
        elif out.shape != (X.shape[0], self.model.n_components):
            raise ValueError(f"out must have shape ({X.shape[0]}, {self.model.n_components})")
        cdef double* o = _out_pointer(out)
        cdef int status
        with nogil:
            if self.missing:
                status = missing_rows(&X[0, 0], X.shape[0], X.shape[1], &self.model, n_threads,
                                      NULL, NULL, NULL, o, NULL, NULL)
            else:
                status = log_densities_model(&X[0, 0], X.shape[0], X.shape[1], &self.model,
                                             n_threads, o, self.model.n_components)
        raise_for_status(status)
        return out

    def m_step(self, stats, double reg_covar, dtype=None):
        """Replace the parameters by the M-step from `stats` (a pass over this model).

        `dtype` is the data's: float32 data get scikit-learn's float32 hint in
        the ill-defined-covariance error (see :func:`raise_for_status`).
        """
        cdef const double[::1] s = np.ascontiguousarray(stats, dtype=np.float64)
        if s.shape[0] != model_stats_size(&self.model):
            raise ValueError("stats has the wrong length for this model")
        cdef int status
        with nogil:
            status = m_step(&self.model, &s[0], reg_covar)
        raise_for_status(status, dtype)

    def tied_centre(self):
        """(D,) sum_k weights_k means_k, summed in component order: the centre about
        which the C passes (accumulate, em_step) take the tied scatter."""
        out = np.empty(self.model.n_features)
        cdef double[::1] o = out
        _tied_centre(&self.model, &o[0])
        return out

    def _check_columns(self, int64_t n_columns):
        if n_columns < self.model.n_features:
            raise ValueError("X has fewer columns than the model has features")

    def score(self, const floating[:, ::1] X, bint want_log_prob=True, bint want_resp=False,
              bint want_labels=False, int n_threads=1):
        """Per-row log p(x), responsibilities and labels, as asked for."""
        cdef int64_t n = X.shape[0], k = self.model.n_components
        log_prob = np.empty(n) if want_log_prob else None
        resp = np.empty((n, k)) if want_resp else None
        labels = np.empty(n, dtype=np.int64) if want_labels else None
        cdef double* lp = _out_pointer(log_prob)
        cdef double* r = _out_pointer(resp)
        cdef int64_t[::1] label_view = labels
        cdef int64_t* lab = &label_view[0] if labels is not None and n > 0 else NULL
        cdef int status = STATUS_OK
        if n > 0:
            with nogil:
                if self.missing:
                    status = missing_rows(&X[0, 0], n, X.shape[1], &self.model, n_threads,
                                          lp, r, lab, NULL, NULL, NULL)
                else:
                    status = score_model(&X[0, 0], n, X.shape[1], &self.model, n_threads,
                                         lp, r, lab)
        raise_for_status(status)
        return log_prob, resp, labels

    def impute(self, const floating[:, ::1] X, bint return_std=False, int n_threads=1):
        """NaN in `X` replaced by their conditional expectations under the mixture.

        Returns
        -------
        filled : ndarray of shape (n_rows, D), float64
            ``sum_k P(k | x_o) E[x_m | x_o, k]`` in each gap, X elsewhere; a
            row with no observed value gets the mixture's mean.
        std : ndarray of shape (n_rows, D), float64, or None
            With `return_std`: the standard deviation of each filled value
            given the row's observed values, under the mixture; 0 where X is
            observed.
        log_prob : ndarray of shape (n_rows,)
            ``log p(x_o)`` (0 for an empty row; -inf where every density
            underflows, and the fill is then undefined).
        """
        if X.shape[1] != self.model.n_features:
            raise ValueError("X must have as many columns as the model has features")
        cdef int64_t n = X.shape[0], d = X.shape[1]
        filled = np.empty((n, d))
        std = np.empty((n, d)) if return_std else None
        log_prob = np.empty(n)
        cdef double* f = _out_pointer(filled)
        cdef double* sd = _out_pointer(std)
        cdef double* lp = _out_pointer(log_prob)
        cdef int status = STATUS_OK
        if n > 0:
            with nogil:
                status = missing_rows(&X[0, 0], n, d, &self.model, n_threads, lp, NULL, NULL,
                                      NULL, f, sd)
        raise_for_status(status)
        return filled, std, log_prob


cdef const double* _weights_pointer(sample_weight, int64_t n) except? NULL:
    cdef const double[::1] w
    if sample_weight is None:
        return NULL
    w = sample_weight
    if w.shape[0] != n:
        raise ValueError("sample_weight must have n_samples entries")
    return &w[0]


cdef double* _out_pointer(array) except? NULL:
    # A pointer into `array` itself: reshape(-1) of a non-contiguous array would be
    # a temporary copy, and the kernel's output would vanish with it.
    cdef double[::1] flat
    if array is None or array.size == 0:
        return NULL
    if array.dtype != np.float64 or not array.flags.c_contiguous or not array.flags.writeable:
        raise ValueError("an output array must be writeable, C-contiguous float64")
    flat = array.reshape(-1)
    return &flat[0]


def responsibilities(log_dens):
    """Row-wise log-sum-exp: returns (responsibilities, log_prob_norm) of (n, K) log-densities."""
    resp = np.array(log_dens, dtype=np.float64, order="C")
    if resp.ndim != 2:
        raise ValueError("log_dens must be 2-D")
    log_prob_norm = np.empty(resp.shape[0])
    cdef double* r = _out_pointer(resp)
    cdef double* lp = _out_pointer(log_prob_norm)
    cdef int64_t n = resp.shape[0], k = resp.shape[1]
    cdef int status = STATUS_OK
    if n > 0:
        with nogil:
            status = normalise_log_densities(r, n, k, k, lp)
    raise_for_status(status)
    return resp, log_prob_norm


def sum_weights(sample_weight, int64_t n_rows, double start=0.0):
    """The total weight EM divides the log-likelihood by: ``start`` plus the weights
    added one by one in row order, as the C layer sums them (None: ones, so
    ``start + n_rows``).

    A running total kept across row blocks, ``t = sum_weights(block, n, t)``, has
    the bits of one call over all the rows.
    """
    cdef const double* w = _weights_pointer(sample_weight, n_rows)
    return _sum_weights(w, n_rows, start)


def precision_factors(covariances, covariance_type):
    """Precision Cholesky factors from covariances (upper triangular for full/tied).

    Raises
    ------
    ValueError
        If a covariance is not positive definite or not finite.
    """
    cov = np.array(covariances, dtype=np.float64, order="C")
    factors = np.empty_like(cov)
    cdef int code = COVARIANCE_CODES[covariance_type]
    square = cov.ndim >= 2 and cov.shape[cov.ndim - 1] == cov.shape[cov.ndim - 2]
    if (cov.ndim != len(covariance_shape(code, 1, 1)) or (code <= COVARIANCE_TIED and not square)
            or cov.size == 0):
        raise ValueError(f"covariances of shape {cov.shape} do not fit covariance_type={covariance_type!r}")
    cdef int64_t d = cov.shape[cov.ndim - 1] if code != COVARIANCE_SPHERICAL else 1  # (wraparound is off)
    cdef int64_t k = 1 if code == COVARIANCE_TIED else cov.shape[0]
    cdef double[::1] c = cov.reshape(-1)
    cdef double[::1] f = factors.reshape(-1)
    cdef int status
    with nogil:
        status = precision_cholesky(code, k, d, &c[0], &f[0])
    raise_for_status(status)
    return factors


def m_step_from(stats, shift_means, tied_shift, covariance_type, double reg_covar, dtype=None):
    """M-step from a pass's statistics taken about `shift_means` (and `tied_shift`).

    Parameters
    ----------
    stats : ndarray of shape (statistics_size(...),) or tuple
        A flat statistics array (``reduce_lanes``; the statistic of
        `covariance_type`), or ``(log_lik, counts, first, second)``.
    shift_means : ndarray of shape (n_components, n_features)
    tied_shift : ndarray of shape (n_features,) or None
    covariance_type : str
    reg_covar : float
    dtype : dtype or None
        The data's dtype, for the error message (see raise_for_status).

    Returns
    -------
    counts_floor, means, covariances, precisions_cholesky : ndarray
        ``normalised_weights(counts_floor)`` gives the weights as the C M-step
        forms them.

    Raises
    ------
    ValueError
        If a covariance is ill-defined.
    """
    shift = np.ascontiguousarray(shift_means, dtype=np.float64)
    cdef int64_t k = shift.shape[0], d = shift.shape[1]
    cdef int code = COVARIANCE_CODES[covariance_type]
    if isinstance(stats, tuple):
        log_lik, counts, first, second = stats
        flat = np.concatenate([[log_lik], counts, np.ravel(first), np.ravel(second)])
    else:
        # The flat array of reduce_lanes is read in place (no copy when it is
        # float64 and contiguous).
        flat = np.ascontiguousarray(stats, dtype=np.float64).reshape(-1)
    if flat.shape[0] != _statistics_size(statistic_of(code), k, d):
        raise ValueError("stats do not have the size this covariance_type and shift_means need")
    centre = np.zeros(d) if tied_shift is None else np.ascontiguousarray(tied_shift, dtype=np.float64)
    shape = covariance_shape(code, k, d)
    nk = np.empty(k)
    means = np.empty((k, d))
    covariances = np.empty(shape)
    factors = np.empty(shape)
    cdef const double[::1] s = flat
    cdef const double[::1] sh = shift.reshape(-1)
    cdef const double[::1] ce = centre
    cdef double[::1] o_nk = nk
    cdef double[::1] o_m = means.reshape(-1)
    cdef double[::1] o_c = covariances.reshape(-1)
    cdef double[::1] o_f = factors.reshape(-1)
    cdef int status
    with nogil:
        status = m_step_about(&s[0], &sh[0], &ce[0], code, k, d, reg_covar,
                              &o_nk[0], &o_m[0], &o_c[0], &o_f[0])
    raise_for_status(status, dtype)
    return nk, means, covariances, factors


def normalised_weights(counts_floor):
    """(K,) float64 mixing weights from `m_step_from`'s floored counts: each count
    divided by their sum taken in component order, the C M-step's own code (so a
    Python M-step gives the weights of ModelArrays.m_step bit for bit)."""
    cdef const double[::1] c = np.ascontiguousarray(counts_floor, dtype=np.float64).reshape(-1)
    if c.shape[0] < 1:
        raise ValueError("counts_floor must hold at least one component")
    out = np.empty(c.shape[0])
    cdef double[::1] o = out
    normalise_weights(&c[0], c.shape[0], &o[0])
    return out


def chunk_rows(int64_t n_features):
    """Rows per kernel chunk for data with `n_features` columns (fixes the summation order)."""
    return default_chunk_rows(n_features)


# ---------------------------------------------------------------------------
# The door from Python into the engine: statistics in lanes the caller keeps.
# ---------------------------------------------------------------------------

# "none", "full", "tied", "diag": the kernels' Stats enum, named without its prefix.
STATISTIC_CODES = {s.name.removeprefix("STATS_").lower(): int(s) for s in Stats}
STATISTIC_NAMES = {code: name for name, code in STATISTIC_CODES.items()}


def _statistic_code(statistic):
    try:
        return STATISTIC_CODES[statistic]
    except (KeyError, TypeError):
        raise ValueError(
            f"statistic must be one of {sorted(STATISTIC_CODES)}, got {statistic!r}") from None


def statistics_size(statistic, int64_t n_components, int64_t n_features):
    """Length of a pass's flat statistics.

    ``1 + K + K D`` (log-likelihood or inertia, counts, first moments) plus the
    second-order block of `statistic`: full (K, D, D), tied (D, D), diag (K, D),
    none nothing.  Layout as in fastem.h.
    """
    return _statistics_size(_statistic_code(statistic), n_components, n_features)


def observed_weight(const floating[:, ::1] X, sample_weight=None, double start=0.0):
    """The weight of the rows of `X` with at least one value that is not NaN.

    Returns ``(total, n_empty)``: `start` plus those rows' weights (None: ones)
    added in row order, as :func:`sum_weights` adds them, so a running total
    over row blocks has the bits of one call; and the number of rows whose
    every value is NaN.
    """
    cdef const double* w = _weights_pointer(sample_weight, X.shape[0])
    cdef int64_t n_empty = 0
    cdef double total = start
    if X.shape[0] > 0:
        with nogil:
            total = _observed_weight(&X[0, 0], X.shape[0], X.shape[1], X.shape[1], w, start,
                                     &n_empty)
    return total, n_empty


def add_observed_totals(const floating[:, ::1] X, sample_weight, double[::1] sums,
                        double[::1] weights, int64_t[::1] counts):
    """Add the observed values (not NaN) of X's rows to running totals, in place.

    ``sums[i] += w x_i`` and ``weights[i] += w`` for each observed ``x_i``, row
    after row (w: the row's weight, None: ones); ``counts`` gains the rows with
    no observed value, the NaN, and the rows with no observed value and a
    positive weight.
    """
    cdef int64_t n = X.shape[0], d = X.shape[1]
    cdef const double* w = _weights_pointer(sample_weight, n)
    if sums.shape[0] != d or weights.shape[0] != d or counts.shape[0] != 3:
        raise ValueError("sums and weights need one entry per column, counts three")
    if n > 0:
        with nogil:
            observed_totals_rows(&X[0, 0], n, d, d, w, &sums[0], &weights[0], &counts[0])


def lane_count(int64_t n_stats):
    """Lanes of statistics of length `n_stats` (a function of that length only)."""
    if n_stats < 1:
        raise ValueError(f"n_stats must be >= 1, got {n_stats}")
    return _lane_count(n_stats)


def lane_shape(int64_t n_stats):
    """``(lane_count(n_stats), lane_stride)``: the shape to allocate (zeroed) for
    `accumulate`'s lanes.

    Each lane holds the `n_stats` statistics, then padding up to
    ``lane_stride`` (whole cache lines plus one, as the C passes pad theirs), so
    threads that own neighbouring lanes never write to the same cache line.
    The padding stays zero; ``reduce_lanes(lanes, n_stats)`` reads the first
    `n_stats` columns only.
    """
    return lane_count(n_stats), padded(n_stats)


def accumulate(
    const floating[:, ::1] X,
    sample_weight,
    double[:, ::1] lanes,
    *,
    statistic,
    centres,
    Py_ssize_t first_chunk=0,
    ModelArrays model=None,
    responsibilities=None,
    tied_centre=None,
    int n_threads=1,
):
    """Add one pass over `X` into the caller's lane sums.

    Rows are cut into chunks of ``chunk_rows(D)`` rows; chunk j of this call is
    global chunk ``first_chunk + j`` and goes to lane
    ``(first_chunk + j) % lane_count(n_stats)``.  Consecutive calls over row
    blocks whose sizes (all but the last) are multiples of ``chunk_rows(D)``,
    each with ``first_chunk`` advanced by what the previous calls returned,
    leave the lanes bit for bit as one call over all the rows would;
    ``reduce_lanes`` then gives the statistics.  The result never depends on
    `n_threads`.

    Parameters
    ----------
    X : ndarray of shape (n_rows, >= D), float32 or float64, C-contiguous
        Only the first D columns are read.
    sample_weight : ndarray of shape (n_rows,), float64, or None
        Non-negative row weights (None: ones); a zero weight drops the row.
    lanes : ndarray of shape lane_shape(n_stats), float64, C-contiguous
        INOUT: the pass is added into its first ``n_stats`` columns,
        ``n_stats = statistics_size(statistic, K, D)``.  Allocate it with
        ``np.zeros(lane_shape(n_stats))``: the padded rows keep threads off each
        other's cache lines.  Any width >= n_stats is accepted (the bits do not
        depend on it).
    statistic : {"none", "full", "tied", "diag"}
        The second-order statistic (spherical models use "diag").
    centres : ndarray of shape (K, D)
        The points the moments of each component are taken about.
    first_chunk : int
        Global index of this call's first chunk.
    model : ModelArrays or None
        Responsibilities from this Gaussian model's E-step (`centres` must be its
        means); ``stats[0]`` gains ``sum_n w_n log p(x_n)``.
    responsibilities : ndarray of shape (n_rows, K), float64, C-contiguous, or None
        Responsibilities the caller supplies; ``stats[0]`` is unchanged.  Any
        non-negative rows for "full", "diag" and "none"; for "tied" each row must
        sum to one, since the tied scatter counts every row with its sample
        weight alone (it does not read the responsibilities).
        With neither `model` nor `responsibilities`: each row goes to its nearest
        centre (k-means) and ``stats[0]`` gains the weighted squared distances.
    tied_centre : ndarray of shape (D,) or None
        The centre of the tied scatter; required for ``statistic="tied"``.
    n_threads : int
        OpenMP threads (<= 0: OpenMP's default).

    Returns
    -------
    int
        The number of chunks consumed (the next call's ``first_chunk`` offset).
    """
    cdef int stat = _statistic_code(statistic)
    cdef const double[:, ::1] c = np.ascontiguousarray(centres, dtype=np.float64)
    cdef Py_ssize_t n = X.shape[0], k = c.shape[0], d = c.shape[1]
    cdef Py_ssize_t n_stats, chunk = default_chunk_rows(d), n_chunks
    cdef const double[:, ::1] given
    cdef const double[::1] centre
    cdef const double* w
    cdef MixtureParams params
    cdef _Derived derived
    cdef int status = STATUS_OK
    derived.buffer = NULL
    if k < 1 or d < 1:
        raise ValueError("centres must have shape (n_components, n_features), both >= 1")
    if X.shape[1] < d:
        raise ValueError("X has fewer columns than the centres have features")
    if first_chunk < 0:
        raise ValueError(f"first_chunk must be >= 0, got {first_chunk}")
    if model is not None and responsibilities is not None:
        raise ValueError("pass a model or responsibilities, not both")
    n_stats = _statistics_size(stat, k, d)
    if lanes.shape[0] != _lane_count(n_stats) or lanes.shape[1] < n_stats:
        raise ValueError(
            f"lanes must have shape lane_shape({n_stats}) = ({_lane_count(n_stats)}, "
            f"{padded(n_stats)}) (at least {n_stats} columns), "
            f"got ({lanes.shape[0]}, {lanes.shape[1]})")
    w = _weights_pointer(sample_weight, n)
    if model is not None:
        if (model.model.n_components != k or model.model.n_features != d
                or not np.array_equal(model.means, np.asarray(c))):
            raise ValueError("centres must be the model's means")
    elif responsibilities is not None:
        given = responsibilities
        if given.shape[0] != n or given.shape[1] != k:
            raise ValueError("responsibilities must have shape (n_rows, n_components)")
    if stat == STATS_TIED:
        if tied_centre is None:
            raise ValueError('statistic="tied" needs tied_centre')
        centre = np.ascontiguousarray(tied_centre, dtype=np.float64)
        if centre.shape[0] != d:
            raise ValueError("tied_centre must have n_features entries")
    if n == 0:
        return 0
    n_chunks = (n - 1) // chunk + 1
    if model is not None:
        status = check_model(&model.model)
        if status == STATUS_OK:
            status = _derive(&model.model, stat, &derived)
        params = derived.params
    else:
        _given_params(k, d, stat, &c[0, 0],
                      &given[0, 0] if responsibilities is not None else NULL, k, &params)
    if stat == STATS_TIED:
        params.tied_shift = &centre[0]
    if status == STATUS_OK and model is not None and model.missing:
        if stat != statistic_of(model.model.covariance_type):
            status = STATUS_BAD_ARGUMENT
        else:
            with nogil:
                status = missing_lanes(&X[0, 0], n, X.shape[1], w, &model.model,
                                       params.tied_shift, first_chunk, n_threads,
                                       &lanes[0, 0], lanes.shape[1])
    elif status == STATUS_OK:
        with nogil:
            status = _kernel_status(accumulate_lanes(
                &X[0, 0], n, X.shape[1], w, &params, chunk, first_chunk, _threads(n_threads),
                &lanes[0, 0], lanes.shape[1]))
    free(derived.buffer)
    raise_for_status(status)
    return n_chunks


def reduce_lanes(const double[:, ::1] lanes, n_stats=None):
    """(n_stats,) float64: the first `n_stats` columns of `accumulate`'s lanes
    added in lane order (fixed, so the statistics never depend on the thread
    count).  `n_stats` None: every column (unpadded lanes)."""
    cdef Py_ssize_t width = lanes.shape[1] if n_stats is None else n_stats
    if not 0 <= width <= lanes.shape[1]:
        raise ValueError(f"n_stats must be between 0 and {lanes.shape[1]}, got {n_stats}")
    out = np.empty(width)
    cdef double[::1] o = out
    if width == 0 or lanes.shape[0] == 0:
        out[:] = 0.0
        return out
    with nogil:
        _reduce_lanes(&lanes[0, 0], lanes.shape[0], lanes.shape[1], width, &o[0])
    return out
