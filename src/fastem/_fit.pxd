# Declarations of _fit.pyx: the M-step and the EM iterations (nogil).

from cython cimport floating
from libc.stdint cimport int64_t

from fastem._gmm cimport GaussianModel


cdef int precision_cholesky(
    int covariance_type, int64_t n_components, int64_t n_features,
    const double* covariances, double* precisions_cholesky,
) noexcept nogil

cdef int m_step_about(
    const double* stats, const double* shift_means, const double* tied_shift,
    int covariance_type, int64_t n_components, int64_t n_features, double reg_covar,
    double* counts_floor, double* means, double* covariances, double* precisions_cholesky,
) noexcept nogil

cdef void normalise_weights(
    const double* counts_floor, int64_t n_components, double* weights,
) noexcept nogil

cdef int m_step(GaussianModel* model, const double* stats, double reg_covar) noexcept nogil

cdef int em_step(
    const floating* X, int64_t n_rows, int64_t ldx, const double* sample_weight,
    double total_weight, GaussianModel* model, double reg_covar, int n_threads,
    double* lower_bound,
) noexcept nogil

cdef int em_fit(
    const floating* X, int64_t n_rows, int64_t ldx, const double* sample_weight,
    GaussianModel* model, int max_iter, double tol, double reg_covar, int n_threads,
    double* lower_bounds, int* n_iter, int* converged, double* lower_bound,
) noexcept nogil
