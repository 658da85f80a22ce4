"""Test-only hooks into compiled helpers (never imported by the package itself).

The SIMD clones of _simd_math.h / _simd_columns.h against baseline loops, and
the EM layer's output-pointer guard.
"""
import numpy as np

from libc.stdint cimport int64_t

from fastem._em cimport _out_pointer
from fastem._simd cimport (
    fastem_add_scaled, fastem_add_scaled_squared_diff, fastem_add_squares, fastem_dot3,
    fastem_exp, fastem_exp_array, fastem_exp_shifted_sum, fastem_log, fastem_log_array,
    fastem_max_into, fastem_minus, fastem_scale_by,
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
