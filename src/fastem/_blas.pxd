# Row-major wrappers around SciPy's Fortran BLAS, callable without the GIL.
#
# Every buffer here is row-major.  A row-major (m, n) array is the column-major
# (n, m) array of its transpose, so each call below is written for the
# transposed problem; the comment at each call says how.
#
# Each wrapper serves float32 (s*) and float64 (d*) buffers through the
# `floating` fused type: float32 input runs the chunk products in single
# precision, at twice the SIMD width.
#
# SciPy's BLAS may be multithreaded: callers run these inside their own OpenMP
# threads, so the estimator limits BLAS to one thread while it fits.

from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, dgemv, dsyrk, dtrmm, sgemm, sgemv, ssyrk, strmm


cdef inline void whiten_rows(floating* Y, const floating* U, int n_rows, int d) noexcept nogil:
    """Y := Y @ U for Y (n_rows, d) and upper-triangular U (d, d)."""
    cdef floating one = 1.0
    # Column-major: Y^T := U^T Y^T, and row-major upper U is column-major lower U^T.
    if floating is double:
        dtrmm(b"L", b"L", b"N", b"N", &d, &n_rows, &one, <double*>U, &d, Y, &d)
    else:
        strmm(b"L", b"L", b"N", b"N", &d, &n_rows, &one, <float*>U, &d, Y, &d)


cdef inline void gram_upper(
    floating* C, const floating* Z, int n_rows, int d, floating beta
) noexcept nogil:
    """Upper triangle of C (d, d) := Z^T Z + beta * C for Z (n_rows, d)."""
    cdef floating one = 1.0
    # Column-major Z^T is (d, n_rows): C = Z^T (Z^T)^T + beta C; row-major upper is column-major lower.
    if floating is double:
        dsyrk(b"L", b"N", &d, &n_rows, &one, <double*>Z, &d, &beta, C, &d)
    else:
        ssyrk(b"L", b"N", &d, &n_rows, &one, <float*>Z, &d, &beta, C, &d)


cdef inline void rows_times(
    floating* C, const floating* A, const floating* B, int m, int n, int k
) noexcept nogil:
    """C (m, n) := A (m, k) @ B (k, n)."""
    cdef floating one = 1.0, zero = 0.0
    # Column-major: C^T (n, m) = B^T A^T; row-major B, A are column-major B^T, A^T: 'N', 'N'.
    if floating is double:
        dgemm(b"N", b"N", &n, &m, &k, &one, <double*>B, &n, <double*>A, &k, &zero, C, &n)
    else:
        sgemm(b"N", b"N", &n, &m, &k, &one, <float*>B, &n, <float*>A, &k, &zero, C, &n)


cdef inline void rows_times_transpose(
    floating* C, const floating* A, const floating* B, int m, int n, int k, floating beta
) noexcept nogil:
    """C (m, n) := A (m, k) @ B (n, k)^T + beta * C."""
    cdef floating one = 1.0
    # Column-major: C^T (n, m) = B A^T; row-major B is column-major B^T (k, n), so 'T'.
    if floating is double:
        dgemm(b"T", b"N", &n, &m, &k, &one, <double*>B, &k, <double*>A, &k, &beta, C, &n)
    else:
        sgemm(b"T", b"N", &n, &m, &k, &one, <float*>B, &k, <float*>A, &k, &beta, C, &n)


cdef inline void weighted_row_sum(
    floating* out, const floating* A, const floating* weights, int n_rows, int d
) noexcept nogil:
    """out (d,) := weights (n_rows,) @ A (n_rows, d)."""
    cdef floating one = 1.0, zero = 0.0
    cdef int inc = 1
    # Column-major A^T is (d, n_rows): out = A^T weights, a plain 'N' product.
    if floating is double:
        dgemv(b"N", &d, &n_rows, &one, <double*>A, &d, <double*>weights, &inc, &zero, out, &inc)
    else:
        sgemv(b"N", &d, &n_rows, &one, <float*>A, &d, <float*>weights, &inc, &zero, out, &inc)
