"""Test-only hooks into compiled helpers (never imported by the package itself).

The private kernel entry points (any Assign/Stats pair, any chunk size, for
the tests against the NumPy reference), the SIMD clones of _simd_math.h /
_simd_columns.h against baseline loops, and the EM layer's output-pointer
guard.  The package reaches the engine through fastem._em only.
"""
from cython cimport floating
from libc.stdint cimport int64_t

import numpy as np

from fastem._covariance_shapes cimport factor_size
from fastem._kernels cimport (
    ASSIGN_DIAG, ASSIGN_GIVEN, ASSIGN_NEAREST, ASSIGN_TIED, STATS_DIAG, STATS_FULL, STATS_NONE,
    STATS_TIED,
    MixtureParams, accumulate_stats, default_chunk_rows, params_stats_size, score_rows,
)

from fastem._em cimport _out_pointer
from fastem._em import raise_for_status, split_statistics
from fastem._simd cimport (
    fastem_add_scaled, fastem_add_scaled_squared_diff, fastem_add_squares, fastem_dot3,
    fastem_exp, fastem_exp_array, fastem_exp_shifted_sum, fastem_log, fastem_log1p,
    fastem_log1p_array, fastem_log_array, fastem_max_into, fastem_minus, fastem_normalise_pair,
    fastem_scale_by,
)


def _out_pointer_fills(array, double value):
    """Write `value` through the pointer the EM layer would hand a kernel for `array`."""
    cdef double* out = _out_pointer(array)
    cdef Py_ssize_t i
    if out != NULL:
        for i in range(array.size):
            out[i] = value
    return array


def _vector_exp_log(x, bint array_functions=True):
    """exp and log of `x` with the kernels' own functions (for tests and reports).

    Parameters
    ----------
    x : array-like of float64
    array_functions : bool
        True: the array functions the kernels call, dispatched at load time to
        the AVX2 or baseline clone.  False: the same scalar formulas in a loop
        compiled for baseline x86-64 only.

    Returns
    -------
    exp_x, log_x : ndarray
        ``log_x`` is NaN where ``x <= 0`` or not finite (outside its domain).
    """
    cdef double[::1] values = np.array(x, dtype=np.float64).ravel()
    cdef double[::1] exps = np.array(values)
    cdef double[::1] logs = np.full(values.shape[0], np.nan)
    cdef Py_ssize_t i, n = values.shape[0]
    valid = np.flatnonzero(np.isfinite(values) & (np.asarray(values) > 0))
    cdef double[::1] positive = np.ascontiguousarray(np.asarray(values)[valid])
    cdef double[::1] positive_logs = np.empty(positive.shape[0])
    if array_functions:
        fastem_exp_array(&exps[0], n)
        if positive.shape[0]:
            fastem_log_array(&positive[0], &positive_logs[0], positive.shape[0])
    else:
        for i in range(n):
            exps[i] = fastem_exp(exps[i])
        for i in range(positive.shape[0]):
            positive_logs[i] = fastem_log(positive[i])
    np.asarray(logs)[valid] = positive_logs
    return np.asarray(exps), np.asarray(logs)


def _vector_log1p(x, bint array_function=True):
    """log(1 + x) with the kernels' own function, as _vector_exp_log.

    NaN where ``x <= -1`` or not finite (outside its domain).
    """
    cdef double[::1] values = np.array(x, dtype=np.float64).ravel()
    valid = np.flatnonzero(np.isfinite(values) & (np.asarray(values) > -1.0))
    cdef double[::1] inside = np.ascontiguousarray(np.asarray(values)[valid])
    cdef double[::1] got = np.empty(inside.shape[0])
    cdef Py_ssize_t i
    if array_function:
        if inside.shape[0]:
            fastem_log1p_array(&inside[0], &got[0], inside.shape[0])
    else:
        for i in range(inside.shape[0]):
            got[i] = fastem_log1p(inside[i])
    out = np.full(values.shape[0], np.nan)
    out[valid] = got
    return out


def _normalise_pair(first, second, weight=None, bint only_sum=False):
    """fastem_normalise_pair on two columns of log-densities (for tests).

    Returns
    -------
    resp_first, resp_second, log_lik : ndarray of float64
        With ``only_sum`` (no weights), log_lik is the sum over the rows.
    """
    cdef double[::1] a = np.array(first, dtype=np.float64)
    cdef double[::1] b = np.array(second, dtype=np.float64)
    cdef Py_ssize_t n = a.shape[0]
    cdef double[::1] w = None if weight is None else np.array(weight, dtype=np.float64)
    cdef double[::1] log_lik = np.empty(n)
    cdef double[::1] rest = np.empty(n)
    cdef double total = 0.0
    if n and only_sum:
        fastem_normalise_pair(&a[0], &b[0], NULL, &log_lik[0], &rest[0], &total, n)
        return np.asarray(a), np.asarray(b), total
    if n:
        fastem_normalise_pair(&a[0], &b[0], NULL if w is None else &w[0], &log_lik[0], &rest[0],
                              NULL, n)
    return np.asarray(a), np.asarray(b), np.asarray(log_lik)


def _column_helpers_both_ways(a, b, c, double f, double m):
    """Each cloned column helper, and the same arithmetic as a loop built for baseline x86-64.

    For the test that the clone the loader picked (AVX2 on most machines) gives
    the bits of the baseline code.  `a`, `b`, `c`: float64 arrays of one length.

    Returns
    -------
    dict
        name -> (clone's result, baseline loop's result).
    """
    cdef double[::1] av = np.array(a, dtype=np.float64)
    cdef double[::1] bv = np.array(b, dtype=np.float64)
    cdef double[::1] cv = np.array(c, dtype=np.float64)
    cdef Py_ssize_t n = av.shape[0], i
    out = {}
    cdef double[::1] x1, x2, t1, t2
    cdef double s0, s1, s2, s3, t
    x1 = np.array(bv); x2 = np.array(bv)
    fastem_add_scaled(&x1[0], &av[0], f, n)
    for i in range(n):
        x2[i] += av[i] * f
    out["add_scaled"] = (np.asarray(x1), np.asarray(x2))
    x1 = np.empty(n); x2 = np.empty(n)
    fastem_minus(&x1[0], &av[0], m, n)
    for i in range(n):
        x2[i] = av[i] - m
    out["minus"] = (np.asarray(x1), np.asarray(x2))
    x1 = np.array(bv); x2 = np.array(bv)
    fastem_add_squares(&x1[0], &av[0], n)
    for i in range(n):
        x2[i] += av[i] * av[i]
    out["add_squares"] = (np.asarray(x1), np.asarray(x2))
    x1 = np.array(bv); x2 = np.array(bv)
    fastem_add_scaled_squared_diff(&x1[0], &av[0], m, f, n)
    for i in range(n):
        t = (av[i] - m) * f
        x2[i] += t * t
    out["add_scaled_squared_diff"] = (np.asarray(x1), np.asarray(x2))
    s0 = s1 = s2 = s3 = 0.0
    i = 0
    while i + 4 <= n:
        s0 += av[i] * bv[i] * cv[i]
        s1 += av[i + 1] * bv[i + 1] * cv[i + 1]
        s2 += av[i + 2] * bv[i + 2] * cv[i + 2]
        s3 += av[i + 3] * bv[i + 3] * cv[i + 3]
        i += 4
    while i < n:
        s0 += av[i] * bv[i] * cv[i]
        i += 1
    out["dot3"] = (fastem_dot3(&av[0], &bv[0], &cv[0], n), (s0 + s1) + (s2 + s3))
    x1 = np.array(av); x2 = np.array(av); t1 = np.array(cv); t2 = np.array(cv)
    fastem_exp_shifted_sum(&x1[0], &bv[0], &t1[0], n, 0)
    for i in range(n):
        x2[i] = fastem_exp(x2[i] - bv[i])
        t2[i] += x2[i]
    out["exp_shifted_sum"] = (np.concatenate([x1, t1]), np.concatenate([x2, t2]))
    x1 = np.array(bv); x2 = np.array(bv)
    fastem_max_into(&x1[0], &av[0], n)
    for i in range(n):
        x2[i] = av[i] if av[i] > x2[i] else x2[i]
    out["max_into"] = (np.asarray(x1), np.asarray(x2))
    x1 = np.array(av); x2 = np.array(av)
    fastem_scale_by(&x1[0], &bv[0], n)
    for i in range(n):
        x2[i] *= bv[i]
    out["scale_by"] = (np.asarray(x1), np.asarray(x2))
    return out


# ---------------------------------------------------------------------------
# The private kernel entry points: validate shapes, allocate outputs, release the GIL.
# ---------------------------------------------------------------------------

cdef inline const double* _data_or_null(const double[::1] a) noexcept:
    if a is None or a.shape[0] == 0:
        return NULL
    return &a[0]


def _flat(a):
    return None if a is None else np.ascontiguousarray(a, dtype=np.float64).reshape(-1)


cdef MixtureParams _make_params(
    Py_ssize_t n_features, Py_ssize_t n_components, int assign, int stats,
    const double[::1] means, const double[::1] precision_factor,
    const double[::1] whitened_means, const double[::1] log_norm,
    const double[::1] tied_shift, const double[::1] given_resp,
) except *:
    cdef MixtureParams p
    cdef Py_ssize_t d = n_features, k = n_components
    # A Gaussian assignment's code is its covariance type's (spherical runs as DIAG).
    factor_len = factor_size(assign, k, d) if assign <= ASSIGN_DIAG else 0
    if not 0 <= assign <= ASSIGN_GIVEN or not 0 <= stats <= STATS_DIAG:
        raise ValueError(f"unknown assign={assign} or stats={stats}")
    if k < 1:
        raise ValueError("means must hold at least one component")
    if means is None or means.shape[0] != k * d:
        raise ValueError("means must have n_components * n_features entries")
    if factor_len and (precision_factor is None or precision_factor.shape[0] != factor_len):
        raise ValueError(f"precision_factor must have {factor_len} entries")
    if assign <= ASSIGN_DIAG and (log_norm is None or log_norm.shape[0] != k):
        raise ValueError("log_norm must have n_components entries")
    if assign == ASSIGN_TIED and (whitened_means is None or whitened_means.shape[0] != k * d):
        raise ValueError("whitened_means must have n_components * n_features entries")
    if stats == STATS_TIED and (tied_shift is None or tied_shift.shape[0] != d):
        raise ValueError("tied_shift must have n_features entries")
    p.n_features = d
    p.n_components = k
    p.assign = assign
    p.stats = stats
    p.means = _data_or_null(means)
    p.precision_factor = _data_or_null(precision_factor)
    p.whitened_means = _data_or_null(whitened_means)
    p.log_norm = _data_or_null(log_norm)
    p.tied_shift = _data_or_null(tied_shift)
    p.given_resp = _data_or_null(given_resp)
    p.ld_given_resp = k
    return p


def _checked_means(means, Py_ssize_t n_features, Py_ssize_t n_samples, chunk_rows, int n_threads):
    """The checks both entry points share: means as (K, D) float64, and the chunk rows.

    chunk_rows None is the shape's default (default_chunk_rows); any chunk_rows
    is clamped to the rows of X (one chunk either way, and scratch sized by X).
    """
    rows = default_chunk_rows(n_features) if chunk_rows is None else chunk_rows
    if rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    means_arr = np.ascontiguousarray(means, dtype=np.float64)
    if means_arr.ndim != 2 or means_arr.shape[1] != n_features:
        raise ValueError("means must have shape (n_components, n_features)")
    return means_arr, min(rows, max(n_samples, 1))


def accumulate(
    const floating[:, ::1] X,
    sample_weight,
    int assign,
    int stats,
    means,
    precision_factor=None,
    log_norm=None,
    whitened_means=None,
    tied_shift=None,
    given_resp=None,
    chunk_rows=None,
    int n_threads=1,
):
    """One fused pass over `X`: responsibilities and M-step sufficient statistics.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64, C-contiguous
    sample_weight : ndarray of shape (n_samples,) or None
        Non-negative row weights (None: all ones).
    assign, stats : int
        An ``Assign`` and a ``Stats`` value.
    means : ndarray of shape (n_components, n_features)
        Component means (centres for ``ASSIGN_NEAREST``); also the points the
        moments are taken about.
    precision_factor, log_norm, whitened_means, tied_shift, given_resp : ndarray or None
        As described on ``MixtureParams`` in ``_kernels.pxd``.
    chunk_rows : int or None
        Rows per chunk (None: the shape's default, as the EM layer uses).
        Results depend on it (it fixes the summation order), never on `n_threads`.
    n_threads : int
        OpenMP threads.

    Returns
    -------
    log_lik : float
        ``sum_n w_n log p(x_n)``; for ``ASSIGN_NEAREST`` the weighted inertia.
    counts : ndarray of shape (n_components,)
    first : ndarray of shape (n_components, n_features)
        ``sum_n w_n r_nk (x_n - means[k])``.
    second : ndarray or None
        (K, D, D), (D, D) or (K, D) as `stats` says; only the upper triangle
        of the square blocks is filled.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], k, rows
    means_arr, rows = _checked_means(means, d, n, chunk_rows, n_threads)
    k = means_arr.shape[0]
    cdef const double[::1] w = _flat(sample_weight)
    if w is not None and w.shape[0] != n:
        raise ValueError("sample_weight must have n_samples entries")
    if given_resp is not None and np.shape(given_resp) != (n, k):
        raise ValueError("given_resp must have shape (n_samples, n_components)")
    if assign == ASSIGN_GIVEN and given_resp is None:
        raise ValueError("ASSIGN_GIVEN needs given_resp")
    given = _flat(given_resp)
    cdef MixtureParams p = _make_params(
        d, k, assign, stats, _flat(means_arr), _flat(precision_factor),
        _flat(whitened_means), _flat(log_norm), _flat(tied_shift), given)
    cdef double[::1] out = np.empty(params_stats_size(&p), dtype=np.float64)
    cdef const double* w_ptr = _data_or_null(w)
    cdef int status = 0
    if n > 0:
        with nogil:
            status = accumulate_stats(&X[0, 0], n, d, w_ptr, &p, rows, n_threads, &out[0])
    else:
        out[:] = 0.0
    raise_for_status(status)   # the kernels' -1 / -2 are STATUS_NO_MEMORY / BAD_ARGUMENT
    return split_statistics(np.asarray(out), stats, k, d)


def score(
    const floating[:, ::1] X,
    int assign,
    means,
    precision_factor=None,
    log_norm=None,
    whitened_means=None,
    bint want_log_prob=True,
    bint want_resp=False,
    bint want_labels=False,
    chunk_rows=None,
    int n_threads=1,
):
    """Per-row E-step outputs without accumulating anything.

    Parameters are as for :func:`accumulate`; ``want_*`` choose the outputs.

    Returns
    -------
    log_prob : ndarray of shape (n_samples,) or None
        ``log p(x_n)`` (``ASSIGN_NEAREST``: squared distance to the nearest mean).
    resp : ndarray of shape (n_samples, n_components) or None
    labels : ndarray of shape (n_samples,), int64, or None
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], k, rows
    means_arr, rows = _checked_means(means, d, n, chunk_rows, n_threads)
    k = means_arr.shape[0]
    if assign == ASSIGN_GIVEN:
        raise ValueError("score needs a Gaussian or nearest-mean assignment")
    cdef MixtureParams p = _make_params(
        d, k, assign, STATS_NONE, _flat(means_arr), _flat(precision_factor),
        _flat(whitened_means), _flat(log_norm), None, None)
    log_prob = np.empty(n, dtype=np.float64) if want_log_prob else None
    resp = np.empty((n, k), dtype=np.float64) if want_resp else None
    labels = np.empty(n, dtype=np.int64) if want_labels else None
    cdef double[::1] lp_view = log_prob
    cdef double[:, ::1] resp_view = resp
    cdef int64_t[::1] label_view = labels
    cdef double* lp_ptr = &lp_view[0] if want_log_prob and n > 0 else NULL
    cdef double* resp_ptr = &resp_view[0, 0] if want_resp and n > 0 else NULL
    cdef int64_t* label_ptr = &label_view[0] if want_labels and n > 0 else NULL
    cdef int status = 0
    if n > 0:
        with nogil:
            status = score_rows(&X[0, 0], n, d, &p, rows, n_threads, lp_ptr, resp_ptr, label_ptr)
    raise_for_status(status)
    return log_prob, resp, labels
