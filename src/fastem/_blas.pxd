# Row-major wrappers around SciPy's Fortran BLAS, callable without the GIL.
#
# Every buffer here is row-major.  A row-major (m, n) array is the column-major
# (n, m) array of its transpose, so each call below is written for the
# transposed problem; the comment at each call says how.
#
# SciPy's BLAS may be multithreaded: callers run these inside their own OpenMP
# threads, so the estimator limits BLAS to one thread while it fits.

from scipy.linalg.cython_blas cimport dgemm, dsyrk, dtrmm


cdef inline void whiten_rows(double* Y, const double* U, int n_rows, int d) noexcept nogil:
    """Y := Y @ U for Y (n_rows, d) and upper-triangular U (d, d)."""
    cdef double one = 1.0
    # Column-major: Y^T := U^T Y^T, and row-major upper U is column-major lower U^T.
    dtrmm(b"L", b"L", b"N", b"N", &d, &n_rows, &one, <double*>U, &d, Y, &d)


cdef inline void add_gram_upper(double* C, const double* Z, int n_rows, int d) noexcept nogil:
    """Upper triangle of C (d, d) += Z^T Z for Z (n_rows, d)."""
    cdef double one = 1.0
    # Column-major Z^T is (d, n_rows): C += Z^T (Z^T)^T; row-major upper is column-major lower.
    dsyrk(b"L", b"N", &d, &n_rows, &one, <double*>Z, &d, &one, C, &d)


cdef inline void rows_times(
    double* C, const double* A, const double* B, int m, int n, int k
) noexcept nogil:
    """C (m, n) := A (m, k) @ B (k, n)."""
    cdef double one = 1.0, zero = 0.0
    # Column-major: C^T (n, m) = B^T A^T; row-major B, A are column-major B^T, A^T: 'N', 'N'.
    dgemm(b"N", b"N", &n, &m, &k, &one, <double*>B, &n, <double*>A, &k, &zero, C, &n)


cdef inline void rows_times_transpose(
    double* C, const double* A, const double* B, int m, int n, int k, double beta
) noexcept nogil:
    """C (m, n) := A (m, k) @ B (n, k)^T + beta * C."""
    cdef double one = 1.0
    # Column-major: C^T (n, m) = B A^T; row-major B is column-major B^T (k, n), so 'T'.
    dgemm(b"T", b"N", &n, &m, &k, &one, <double*>B, &k, <double*>A, &k, &beta, C, &n)
