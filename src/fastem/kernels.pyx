"""fastem's C-level API: nogil functions other compiled extensions call.

Cython extensions ``cimport fastem.kernels`` (declarations in kernels.pxd); C
and C++ extensions include ``fastem.h`` and call ``fastem_import()``, which
reads the table of function pointers this module publishes as the capsule
``fastem.kernels._C_API``.  Both reach the same functions, which are thin,
typed entry points to the EM layer (fastem._em) that fastem.GaussianMixture
itself runs, so a fit through this API reproduces the estimator's bits.

From Python this module only offers ``API_VERSION``, ``API_MINOR`` and the
constants.
"""
from libc.stdint cimport int64_t
from cpython.pycapsule cimport PyCapsule_New

from fastem._hmm cimport forward_backward_f64 as _forward_backward_f64, viterbi_f64 as _viterbi_f64
from fastem._fit cimport em_fit, em_step, m_step as _m_step, precision_cholesky as _precision_cholesky
from fastem._gmm cimport (
    GaussianModel,
    accumulate_given_model,
    accumulate_model,
    check_model,
    log_densities_model,
    model_stats_size,
    normalise_log_densities,
    score_model,
)

API_VERSION = FASTEM_API_VERSION
# Read by fastem_import() (fastem.h): the table's entries are append-only, and a
# consumer built against a newer minor is refused by an older fastem.
API_MINOR = FASTEM_API_MINOR
COVARIANCE_TYPES = {
    "full": FASTEM_FULL,
    "tied": FASTEM_TIED,
    "diag": FASTEM_DIAG,
    "spherical": FASTEM_SPHERICAL,
}
STATUS_CODES = {
    "FASTEM_OK": FASTEM_OK,
    "FASTEM_NO_MEMORY": FASTEM_NO_MEMORY,
    "FASTEM_BAD_ARGUMENT": FASTEM_BAD_ARGUMENT,
    "FASTEM_ILL_DEFINED": FASTEM_ILL_DEFINED,
    "FASTEM_NOT_FINITE": FASTEM_NOT_FINITE,
}


# Each entry point views the public struct as the EM layer's: both name the
# same C type, fastem_gmm from fastem.h.

cdef int64_t stats_size(const fastem_gmm* model) noexcept nogil:
    if check_model(<const GaussianModel*>model) != FASTEM_OK:
        return 0
    return model_stats_size(<const GaussianModel*>model)


cdef int precision_cholesky(
    int covariance_type, int64_t n_components, int64_t n_features,
    const double* covariances, double* factors,
) noexcept nogil:
    if (n_components < 1 or n_features < 1 or covariances == NULL or factors == NULL
            or not FASTEM_FULL <= covariance_type <= FASTEM_SPHERICAL):
        return FASTEM_BAD_ARGUMENT
    return _precision_cholesky(covariance_type, n_components, n_features, covariances, factors)


cdef int log_densities_f64(
    const double* X, int64_t n_rows, int64_t ldx, const fastem_gmm* model,
    int n_threads, double* out, int64_t ld_out,
) noexcept nogil:
    return log_densities_model(X, n_rows, ldx, <const GaussianModel*>model, n_threads, out, ld_out)


cdef int log_densities_f32(
    const float* X, int64_t n_rows, int64_t ldx, const fastem_gmm* model,
    int n_threads, double* out, int64_t ld_out,
) noexcept nogil:
    return log_densities_model(X, n_rows, ldx, <const GaussianModel*>model, n_threads, out, ld_out)


cdef int responsibilities(
    double* log_dens, int64_t n_rows, int64_t n_components, int64_t ld, double* log_prob_norm,
) noexcept nogil:
    return normalise_log_densities(log_dens, n_rows, n_components, ld, log_prob_norm)


cdef int score_f64(
    const double* X, int64_t n_rows, int64_t ldx, const fastem_gmm* model, int n_threads,
    double* log_prob_norm, double* resp, int64_t* labels,
) noexcept nogil:
    return score_model(X, n_rows, ldx, <const GaussianModel*>model, n_threads,
                       log_prob_norm, resp, labels)


cdef int score_f32(
    const float* X, int64_t n_rows, int64_t ldx, const fastem_gmm* model, int n_threads,
    double* log_prob_norm, double* resp, int64_t* labels,
) noexcept nogil:
    return score_model(X, n_rows, ldx, <const GaussianModel*>model, n_threads,
                       log_prob_norm, resp, labels)


cdef int accumulate_f64(
    const double* X, int64_t n_rows, int64_t ldx, const double* sample_weight,
    const fastem_gmm* model, int n_threads, double* stats,
) noexcept nogil:
    return accumulate_model(X, n_rows, ldx, sample_weight, <const GaussianModel*>model,
                            n_threads, stats)


cdef int accumulate_f32(
    const float* X, int64_t n_rows, int64_t ldx, const double* sample_weight,
    const fastem_gmm* model, int n_threads, double* stats,
) noexcept nogil:
    return accumulate_model(X, n_rows, ldx, sample_weight, <const GaussianModel*>model,
                            n_threads, stats)


cdef int m_step(fastem_gmm* model, const double* stats, double reg_covar) noexcept nogil:
    return _m_step(<GaussianModel*>model, stats, reg_covar)


cdef int accumulate_given_f64(
    const double* X, int64_t n_rows, int64_t ldx, const double* sample_weight,
    const double* resp, int64_t ld_resp, const fastem_gmm* model, int n_threads, double* stats,
) noexcept nogil:
    return accumulate_given_model(X, n_rows, ldx, sample_weight, resp, ld_resp,
                                  <const GaussianModel*>model, n_threads, stats)


cdef int accumulate_given_f32(
    const float* X, int64_t n_rows, int64_t ldx, const double* sample_weight,
    const double* resp, int64_t ld_resp, const fastem_gmm* model, int n_threads, double* stats,
) noexcept nogil:
    return accumulate_given_model(X, n_rows, ldx, sample_weight, resp, ld_resp,
                                  <const GaussianModel*>model, n_threads, stats)


cdef int em_step_f64(
    const double* X, int64_t n_rows, int64_t ldx, const double* sample_weight,
    double total_weight, fastem_gmm* model, double reg_covar, int n_threads,
    double* lower_bound,
) noexcept nogil:
    return em_step(X, n_rows, ldx, sample_weight, total_weight, <GaussianModel*>model,
                   reg_covar, n_threads, lower_bound)


cdef int em_step_f32(
    const float* X, int64_t n_rows, int64_t ldx, const double* sample_weight,
    double total_weight, fastem_gmm* model, double reg_covar, int n_threads,
    double* lower_bound,
) noexcept nogil:
    return em_step(X, n_rows, ldx, sample_weight, total_weight, <GaussianModel*>model,
                   reg_covar, n_threads, lower_bound)


cdef int em_fit_f64(
    const double* X, int64_t n_rows, int64_t ldx, const double* sample_weight,
    fastem_gmm* model, int max_iter, double tol, double reg_covar, int n_threads,
    double* lower_bounds, int* n_iter, int* converged, double* lower_bound,
) noexcept nogil:
    return em_fit(X, n_rows, ldx, sample_weight, <GaussianModel*>model, max_iter, tol,
                  reg_covar, n_threads, lower_bounds, n_iter, converged, lower_bound)


cdef int em_fit_f32(
    const float* X, int64_t n_rows, int64_t ldx, const double* sample_weight,
    fastem_gmm* model, int max_iter, double tol, double reg_covar, int n_threads,
    double* lower_bounds, int* n_iter, int* converged, double* lower_bound,
) noexcept nogil:
    return em_fit(X, n_rows, ldx, sample_weight, <GaussianModel*>model, max_iter, tol,
                  reg_covar, n_threads, lower_bounds, n_iter, converged, lower_bound)


# minor 2: hidden Markov models (fastem._hmm).

cdef int hmm_forward_backward_f64(
    const double* log_frameprob, int64_t n_rows, int64_t n_components,
    const double* startprob, const double* transmat, const int64_t* lengths,
    int64_t n_sequences, int implementation, int n_threads,
    double* log_probs, double* posteriors, double* start_counts, double* trans_counts,
) noexcept nogil:
    return _forward_backward_f64(log_frameprob, n_rows, n_components, startprob, transmat,
                                 lengths, n_sequences, implementation, n_threads,
                                 log_probs, posteriors, start_counts, trans_counts)


cdef int hmm_viterbi_f64(
    const double* log_frameprob, int64_t n_rows, int64_t n_components,
    const double* startprob, const double* transmat, const int64_t* lengths,
    int64_t n_sequences, int n_threads, double* log_probs, int64_t* states,
) noexcept nogil:
    return _viterbi_f64(log_frameprob, n_rows, n_components, startprob, transmat, lengths,
                        n_sequences, n_threads, log_probs, states)


# ---------------------------------------------------------------------------
# The table for C: fastem_api from fastem.h, filled once at import.
# ---------------------------------------------------------------------------

cdef extern from "fastem.h" nogil:
    ctypedef struct fastem_api:
        int api_version
        int64_t (*stats_size)(const fastem_gmm*) noexcept
        int (*precision_cholesky)(int, int64_t, int64_t, const double*, double*) noexcept
        int (*log_densities_f64)(const double*, int64_t, int64_t, const fastem_gmm*, int, double*, int64_t) noexcept
        int (*log_densities_f32)(const float*, int64_t, int64_t, const fastem_gmm*, int, double*, int64_t) noexcept
        int (*responsibilities)(double*, int64_t, int64_t, int64_t, double*) noexcept
        int (*score_f64)(const double*, int64_t, int64_t, const fastem_gmm*, int, double*, double*, int64_t*) noexcept
        int (*score_f32)(const float*, int64_t, int64_t, const fastem_gmm*, int, double*, double*, int64_t*) noexcept
        int (*accumulate_f64)(const double*, int64_t, int64_t, const double*, const fastem_gmm*, int, double*) noexcept
        int (*accumulate_f32)(const float*, int64_t, int64_t, const double*, const fastem_gmm*, int, double*) noexcept
        int (*m_step)(fastem_gmm*, const double*, double) noexcept
        int (*em_step_f64)(const double*, int64_t, int64_t, const double*, double, fastem_gmm*, double, int, double*) noexcept
        int (*em_step_f32)(const float*, int64_t, int64_t, const double*, double, fastem_gmm*, double, int, double*) noexcept
        int (*em_fit_f64)(const double*, int64_t, int64_t, const double*, fastem_gmm*, int, double, double, int, double*, int*, int*, double*) noexcept
        int (*em_fit_f32)(const float*, int64_t, int64_t, const double*, fastem_gmm*, int, double, double, int, double*, int*, int*, double*) noexcept
        int (*accumulate_given_f64)(const double*, int64_t, int64_t, const double*, const double*, int64_t, const fastem_gmm*, int, double*) noexcept
        int (*accumulate_given_f32)(const float*, int64_t, int64_t, const double*, const double*, int64_t, const fastem_gmm*, int, double*) noexcept
        int (*hmm_forward_backward_f64)(const double*, int64_t, int64_t, const double*, const double*, const int64_t*, int64_t, int, int, double*, double*, double*, double*) noexcept
        int (*hmm_viterbi_f64)(const double*, int64_t, int64_t, const double*, const double*, const int64_t*, int64_t, int, double*, int64_t*) noexcept


cdef fastem_api _table
_table.api_version = FASTEM_API_VERSION
_table.stats_size = stats_size
_table.precision_cholesky = precision_cholesky
_table.log_densities_f64 = log_densities_f64
_table.log_densities_f32 = log_densities_f32
_table.responsibilities = responsibilities
_table.score_f64 = score_f64
_table.score_f32 = score_f32
_table.accumulate_f64 = accumulate_f64
_table.accumulate_f32 = accumulate_f32
_table.m_step = m_step
_table.em_step_f64 = em_step_f64
_table.em_step_f32 = em_step_f32
_table.em_fit_f64 = em_fit_f64
_table.em_fit_f32 = em_fit_f32
# minor 1: appended, never inserted
_table.accumulate_given_f64 = accumulate_given_f64
_table.accumulate_given_f32 = accumulate_given_f32
# minor 2
_table.hmm_forward_backward_f64 = hmm_forward_backward_f64
_table.hmm_viterbi_f64 = hmm_viterbi_f64

_C_API = PyCapsule_New(<void*>&_table, b"fastem.kernels._C_API", NULL)
