# The row path of _rows.pyx.

from cython cimport floating

from fastem._kernels cimport MixtureParams


cdef Py_ssize_t row_work_size(const MixtureParams* params) noexcept nogil

cdef void accumulate_rows(
    const floating* X,
    Py_ssize_t ldx,
    Py_ssize_t row_start,
    Py_ssize_t row_end,
    const double* sample_weight,
    const MixtureParams* params,
    double* work,
    double* stats,
) noexcept nogil

cdef void normalise_rows(
    double* log_dens,
    Py_ssize_t n_rows,
    Py_ssize_t n_components,
    Py_ssize_t ld,
    double* log_prob_norm,
) noexcept nogil
