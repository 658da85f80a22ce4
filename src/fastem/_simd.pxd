# The SIMD helpers (C headers with AVX2/baseline clones) and the fixed-order
# reductions every kernel sums with.  Header-only: inline functions and extern
# declarations, compiled into each module that cimports them, with the same
# flags, so every module gets the same bits.
#
# The reductions keep four partial sums in a fixed pattern, (s0 + s1) + (s2 + s3):
# the compiler can put them in SIMD lanes without reassociating (no -ffast-math),
# and the result is the same on every machine.  _simd_columns.h's fastem_dot3
# follows the same pattern in C.

from cython cimport floating
from libc.stdint cimport int64_t


cdef extern from "_simd_columns.h" nogil:
    void fastem_add_scaled(double* y, const double* x, double f, int64_t n)
    void fastem_minus(double* out, const double* x, double m, int64_t n)
    void fastem_add_squares(double* q, const double* y, int64_t n)
    void fastem_add_scaled_squared_diff(double* q, const double* x, double m, double f, int64_t n)
    double fastem_dot3(const double* a, const double* b, const double* c, int64_t n)


cdef extern from "_simd_math.h" nogil:
    double fastem_exp(double x)
    double fastem_log(double x)
    void fastem_exp_array(double* values, int64_t n)
    void fastem_exp_shifted_sum(double* values, const double* shift, double* total, int64_t n, int first)
    void fastem_max_into(double* top, const double* values, int64_t n)
    void fastem_scale_by(double* values, const double* scale, int64_t n)
    void fastem_log_array(const double* values, double* out, int64_t n)
    double fastem_log1p(double x)
    void fastem_log1p_array(const double* values, double* out, int64_t n)
    void fastem_normalise_pair(double* first, double* second, const double* weight,
                               double* log_lik, double* rest, double* log_lik_sum, int64_t n)
    int fastem_simd_level()


cdef inline double _scaled_distance(
    const floating* x, const double* mean, const double* scale, Py_ssize_t n
) noexcept nogil:
    """sum_i ((x_i - mean_i) * scale_i)^2, or sum_i (x_i - mean_i)^2 if scale is NULL."""
    cdef Py_ssize_t i = 0
    cdef double t0, t1, t2, t3, s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    if scale == NULL:
        while i + 4 <= n:
            t0 = x[i] - mean[i]
            t1 = x[i + 1] - mean[i + 1]
            t2 = x[i + 2] - mean[i + 2]
            t3 = x[i + 3] - mean[i + 3]
            s0 += t0 * t0
            s1 += t1 * t1
            s2 += t2 * t2
            s3 += t3 * t3
            i += 4
        while i < n:
            t0 = x[i] - mean[i]
            s0 += t0 * t0
            i += 1
    else:
        while i + 4 <= n:
            t0 = (x[i] - mean[i]) * scale[i]
            t1 = (x[i + 1] - mean[i + 1]) * scale[i + 1]
            t2 = (x[i + 2] - mean[i + 2]) * scale[i + 2]
            t3 = (x[i + 3] - mean[i + 3]) * scale[i + 3]
            s0 += t0 * t0
            s1 += t1 * t1
            s2 += t2 * t2
            s3 += t3 * t3
            i += 4
        while i < n:
            t0 = (x[i] - mean[i]) * scale[i]
            s0 += t0 * t0
            i += 1
    return (s0 + s1) + (s2 + s3)


cdef inline double _sum(const double* a, Py_ssize_t n) noexcept nogil:
    # Four fixed partial sums (see _simd_columns.h): vectorised, same on every machine.
    return fastem_dot3(a, NULL, NULL, n)


cdef inline double _dot3(const double* a, const double* b, const double* c, Py_ssize_t n) noexcept nogil:
    """sum_i a_i b_i c_i with four fixed partial sums."""
    return fastem_dot3(a, b, c, n)


cdef inline double _dot2(const floating* a, const floating* b, Py_ssize_t n) noexcept nogil:
    """sum_i a_i b_i with four fixed partial sums, in float64 whatever the input."""
    cdef Py_ssize_t i = 0
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    while i + 4 <= n:
        s0 += <double>a[i] * b[i]
        s1 += <double>a[i + 1] * b[i + 1]
        s2 += <double>a[i + 2] * b[i + 2]
        s3 += <double>a[i + 3] * b[i + 3]
        i += 4
    while i < n:
        s0 += <double>a[i] * b[i]
        i += 1
    return (s0 + s1) + (s2 + s3)


cdef inline double _sum_squares(const floating* v, Py_ssize_t n) noexcept nogil:
    return _dot2(v, v, n)
