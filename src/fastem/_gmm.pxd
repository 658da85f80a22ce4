# Declarations of _gmm.pyx: a Gaussian mixture as the kernels read it, and the
# passes over it.  fastem's own; the public names are in kernels.pxd.

from cython cimport floating
from libc.stdint cimport int64_t

from fastem._kernels cimport MixtureParams


cdef extern from "fastem.h" nogil:
    # The status codes of the public header (also _em.pxd's Status enum, which
    # Python sees); the covariance codes are in _covariance_shapes.pxd.
    enum:
        STATUS_OK "FASTEM_OK"
        STATUS_NO_MEMORY "FASTEM_NO_MEMORY"
        STATUS_BAD_ARGUMENT "FASTEM_BAD_ARGUMENT"
        STATUS_ILL_DEFINED "FASTEM_ILL_DEFINED"
        STATUS_NOT_FINITE "FASTEM_NOT_FINITE"

    # The model struct is fastem_gmm from the public C header, so the C-level API
    # and these functions share one definition of its layout.
    ctypedef struct GaussianModel "fastem_gmm":
        int64_t n_components             # K >= 1
        int64_t n_features               # D >= 1
        int covariance_type              # a COVARIANCE_* code (_covariance_shapes.pxd)
        double* weights                  # (K,) mixing weights, summing to 1
        double* means                    # (K, D)
        double* covariances              # shaped by covariance_type (covariance_size)
        double* precisions_cholesky      # same shape; full/tied: upper-triangular U with
                                         # U U^T = inv(cov); diag/spherical: 1 / sqrt(cov)



ctypedef struct _Derived:
    MixtureParams params
    double* buffer   # owns log_norm, tied_shift and (tied) whitened means / (spherical) factors


cdef int check_model(const GaussianModel* model) noexcept nogil
cdef int64_t model_stats_size(const GaussianModel* model) noexcept nogil


cdef double _sum_weights(const double* sample_weight, int64_t n_rows, double start) noexcept nogil
cdef int _threads(int n_threads) noexcept nogil
cdef int _kernel_status(int status) noexcept nogil
cdef void _tied_centre(const GaussianModel* m, double* centre) noexcept nogil
cdef int _derive(const GaussianModel* m, int stats, _Derived* out) noexcept nogil
cdef void _given_params(
    int64_t k, int64_t d, int statistic, const double* centres, const double* resp,
    int64_t ld_resp, MixtureParams* p,
) noexcept nogil

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
