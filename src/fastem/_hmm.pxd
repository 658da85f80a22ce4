# Declarations of _hmm.pyx: forward-backward and Viterbi over a hidden Markov
# model's emission log-densities, nogil, parallel over sequences.  The C API
# (kernels.pyx) exposes both; the estimator reaches them through the Python
# wrappers of _hmm.pyx.

from libc.stdint cimport int64_t


cdef extern from "fastem.h" nogil:
    enum:
        HMM_LOG "FASTEM_HMM_LOG"                 # scaled recursions, log-space fallback
        HMM_SCALING "FASTEM_HMM_SCALING"         # hmmlearn's implementation="scaling"
        STATUS_UNDERFLOW "FASTEM_UNDERFLOW"      # a scaling forward sum fell below 1e-300


cdef int forward_backward_f64(
    const double* log_frameprob, int64_t n_rows, int64_t n_components,
    const double* startprob, const double* transmat,
    const int64_t* lengths, int64_t n_sequences,
    int implementation, int n_threads,
    double* log_probs, double* posteriors, double* start_counts, double* trans_counts,
) noexcept nogil

cdef int viterbi_f64(
    const double* log_frameprob, int64_t n_rows, int64_t n_components,
    const double* startprob, const double* transmat,
    const int64_t* lengths, int64_t n_sequences, int n_threads,
    double* log_probs, int64_t* states,
) noexcept nogil
