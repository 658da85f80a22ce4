# Declarations of the EM layer in _em.pyx: Gaussian-mixture parameters in
# scikit-learn's storage, the M-step from a pass's statistics, one EM
# iteration and a whole EM run, all callable without the GIL.
#
# The public, versioned names for other extensions are in kernels.pxd; this
# file is fastem's own and may change between releases.

from libc.stdint cimport int64_t
from cython cimport floating


cpdef enum CovarianceType:
    COVARIANCE_FULL = 0        # covariances (K, D, D)
    COVARIANCE_TIED = 1        # covariances (D, D)
    COVARIANCE_DIAG = 2        # covariances (K, D)
    COVARIANCE_SPHERICAL = 3   # covariances (K,)


cpdef enum Status:
    STATUS_OK = 0
    STATUS_NO_MEMORY = -1      # scratch could not be allocated
    STATUS_BAD_ARGUMENT = -2   # a size, stride, pointer or covariance type is invalid
    STATUS_ILL_DEFINED = -3    # a covariance is not positive definite (see reg_covar)
    STATUS_NOT_FINITE = -4     # the log-likelihood is not finite (data too far from the model)


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

# A pointer into a float64 output array (NULL if empty); raises for an array it
# would have to copy.
cdef double* _out_pointer(array) except? NULL
