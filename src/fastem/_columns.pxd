# The column path of _columns.pyx (shapes and scratch documented there).

from cython cimport floating
from libc.stdint cimport int64_t

from fastem._kernels cimport MixtureParams


cdef void _transpose_chunk(const floating* X, Py_ssize_t rows, Py_ssize_t d, double* cols) noexcept nogil

cdef void _columns_log_densities(
    const MixtureParams* p, Py_ssize_t rows, const double* cols, double* work_cols,
    double* y, double* q, double* dens,
) noexcept nogil

cdef void _columns_add_stats(
    const MixtureParams* p, Py_ssize_t rows, const double* cols, const double* weight,
    const double* resp_w, double* work_cols, double* weights, double* stats,
) noexcept nogil

cdef double _normalise_columns(
    const MixtureParams* p, double* dens, Py_ssize_t rows, const double* weight,
    int64_t* best_out, double* log_lik_out, double* tmp,
) noexcept nogil
