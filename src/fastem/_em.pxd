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


# The model struct is fastem_gmm from the public C header, so the C-level API
# and these functions share one definition of its layout.
cdef extern from "fastem.h" nogil:
    ctypedef struct GaussianModel "fastem_gmm":
        int64_t n_components             # K >= 1
        int64_t n_features               # D >= 1
        int covariance_type              # a CovarianceType value
        double* weights                  # (K,) mixing weights, summing to 1
        double* means                    # (K, D)
        double* covariances              # shaped by covariance_type (see CovarianceType)
        double* precisions_cholesky      # same shape; full/tied: upper-triangular U with
                                         # U U^T = inv(cov); diag/spherical: 1 / sqrt(cov)


cdef int64_t chunk_rows_for(int64_t n_features) noexcept nogil
cdef int check_model(const GaussianModel* model) noexcept nogil
cdef int64_t model_stats_size(const GaussianModel* model) noexcept nogil
cdef double total_weight(const double* sample_weight, int64_t n_rows) noexcept nogil

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

cdef int accumulate_model(
    const floating* X, int64_t n_rows, int64_t ldx, const double* sample_weight,
    const GaussianModel* model, int n_threads, double* stats,
) noexcept nogil

cdef int accumulate_given_model(
    const floating* X, int64_t n_rows, int64_t ldx, const double* sample_weight,
    const double* resp, int64_t ld_resp, const GaussianModel* model, int n_threads,
    double* stats,
) noexcept nogil

cdef int log_densities_model(
    const floating* X, int64_t n_rows, int64_t ldx, const GaussianModel* model,
    int n_threads, double* log_dens, int64_t ld_log_dens,
) noexcept nogil

cdef int score_model(
    const floating* X, int64_t n_rows, int64_t ldx, const GaussianModel* model, int n_threads,
    double* log_prob_norm, double* resp, int64_t* labels,
) noexcept nogil

cdef int normalise_log_densities(
    double* log_dens, int64_t n_rows, int64_t n_components, int64_t ld, double* log_prob_norm,
) noexcept nogil

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
