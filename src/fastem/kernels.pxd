# fastem's C-level API for Cython: `cimport fastem.kernels` (or
# `from fastem.kernels cimport em_fit_f64, fastem_gmm, ...`).
#
# Build a consumer with `include_dirs=[fastem.get_include()]` (for fastem.h,
# which defines the types and constants declared here).  The functions are
# the ones of the C header's fastem_api table, with the same signatures and
# conventions; fastem.h documents each.  In short:
# - row-major buffers; X is (n_rows, n_features) with rows `ldx` apart;
#   `_f64` functions read double data, `_f32` float data; sums are double;
# - they return FASTEM_OK (0) or a negative FASTEM_* status, never raise, and
#   leave the model unchanged on error; an invalid model (negative weight,
#   non-positive factor diagonal, a lower-triangular full/tied factor) is
#   FASTEM_BAD_ARGUMENT;
# - the caller allocates inputs and outputs, fastem only its own scratch;
# - `noexcept nogil`: call them in `with nogil` blocks or from prange;
#   n_threads <= 0 means OpenMP's default; results do not depend on
#   n_threads; inside a parallel region of the same OpenMP runtime they run
#   on the calling thread only (pass n_threads=1 from your own prange: your
#   build may link another runtime);
# - limit the BLAS to one thread while they run (threadpoolctl).
#
# API version FASTEM_API_VERSION.FASTEM_API_MINOR (also fastem.kernels.API_VERSION
# and API_MINOR in Python; a fastem without API_MINOR is minor 0).  Changing any
# signature or the layout of fastem_gmm is a breaking change and bumps the major
# version; new functions are only added, and bump the minor (1: accumulate_given_*;
# 2: hmm_forward_backward_f64, hmm_viterbi_f64, FASTEM_UNDERFLOW).
# Cython's cimport checks function signatures but not the struct layout: compare
# fastem.kernels.API_VERSION with FASTEM_API_VERSION when your module is imported
# (the README's example does), and API_MINOR with the minor you need.

from libc.stdint cimport int64_t


cdef extern from "fastem.h" nogil:
    enum: FASTEM_API_VERSION
    enum: FASTEM_API_MINOR

    enum:
        FASTEM_FULL
        FASTEM_TIED
        FASTEM_DIAG
        FASTEM_SPHERICAL

    enum:
        FASTEM_OK
        FASTEM_NO_MEMORY
        FASTEM_BAD_ARGUMENT
        FASTEM_ILL_DEFINED
        FASTEM_NOT_FINITE
        FASTEM_UNDERFLOW        # minor 2

    enum:
        FASTEM_HMM_LOG          # minor 2: implementation of hmm_forward_backward_f64
        FASTEM_HMM_SCALING

    ctypedef struct fastem_gmm:
        int64_t n_components
        int64_t n_features
        int covariance_type
        double* weights
        double* means
        double* covariances
        double* precisions_cholesky


cdef int64_t stats_size(const fastem_gmm* model) noexcept nogil

cdef int precision_cholesky(
    int covariance_type, int64_t n_components, int64_t n_features,
    const double* covariances, double* factors,
) noexcept nogil

cdef int log_densities_f64(
    const double* X, int64_t n_rows, int64_t ldx, const fastem_gmm* model,
    int n_threads, double* out, int64_t ld_out,
) noexcept nogil
cdef int log_densities_f32(
    const float* X, int64_t n_rows, int64_t ldx, const fastem_gmm* model,
    int n_threads, double* out, int64_t ld_out,
) noexcept nogil

cdef int responsibilities(
    double* log_dens, int64_t n_rows, int64_t n_components, int64_t ld, double* log_prob_norm,
) noexcept nogil

cdef int score_f64(
    const double* X, int64_t n_rows, int64_t ldx, const fastem_gmm* model, int n_threads,
    double* log_prob_norm, double* resp, int64_t* labels,
) noexcept nogil
cdef int score_f32(
    const float* X, int64_t n_rows, int64_t ldx, const fastem_gmm* model, int n_threads,
    double* log_prob_norm, double* resp, int64_t* labels,
) noexcept nogil

cdef int accumulate_f64(
    const double* X, int64_t n_rows, int64_t ldx, const double* sample_weight,
    const fastem_gmm* model, int n_threads, double* stats,
) noexcept nogil
cdef int accumulate_f32(
    const float* X, int64_t n_rows, int64_t ldx, const double* sample_weight,
    const fastem_gmm* model, int n_threads, double* stats,
) noexcept nogil

cdef int m_step(fastem_gmm* model, const double* stats, double reg_covar) noexcept nogil

# minor 1
cdef int accumulate_given_f64(
    const double* X, int64_t n_rows, int64_t ldx, const double* sample_weight,
    const double* resp, int64_t ld_resp, const fastem_gmm* model, int n_threads, double* stats,
) noexcept nogil
cdef int accumulate_given_f32(
    const float* X, int64_t n_rows, int64_t ldx, const double* sample_weight,
    const double* resp, int64_t ld_resp, const fastem_gmm* model, int n_threads, double* stats,
) noexcept nogil

cdef int em_step_f64(
    const double* X, int64_t n_rows, int64_t ldx, const double* sample_weight,
    double total_weight, fastem_gmm* model, double reg_covar, int n_threads,
    double* lower_bound,
) noexcept nogil
cdef int em_step_f32(
    const float* X, int64_t n_rows, int64_t ldx, const double* sample_weight,
    double total_weight, fastem_gmm* model, double reg_covar, int n_threads,
    double* lower_bound,
) noexcept nogil

cdef int em_fit_f64(
    const double* X, int64_t n_rows, int64_t ldx, const double* sample_weight,
    fastem_gmm* model, int max_iter, double tol, double reg_covar, int n_threads,
    double* lower_bounds, int* n_iter, int* converged, double* lower_bound,
) noexcept nogil
cdef int em_fit_f32(
    const float* X, int64_t n_rows, int64_t ldx, const double* sample_weight,
    fastem_gmm* model, int max_iter, double tol, double reg_covar, int n_threads,
    double* lower_bounds, int* n_iter, int* converged, double* lower_bound,
) noexcept nogil

# minor 2: hidden Markov models
cdef int hmm_forward_backward_f64(
    const double* log_frameprob, int64_t n_rows, int64_t n_components,
    const double* startprob, const double* transmat, const int64_t* lengths,
    int64_t n_sequences, int implementation, int n_threads,
    double* log_probs, double* posteriors, double* start_counts, double* trans_counts,
) noexcept nogil
cdef int hmm_viterbi_f64(
    const double* log_frameprob, int64_t n_rows, int64_t n_components,
    const double* startprob, const double* transmat, const int64_t* lengths,
    int64_t n_sequences, int n_threads, double* log_probs, int64_t* states,
) noexcept nogil
