# The one C description of the covariance types: how many doubles a model's
# covariances (and precision factors) hold, which second-order statistic its
# M-step needs, and how long a pass's statistics are.  Every compiled module
# takes its sizes from here; the Python table (fastem._covariance) uses the
# same codes and statistic names.
#
# The codes are spelled once: covariance codes are fastem.h's FASTEM_* values
# (declared here for the compiled modules; fastem._covariance's table must
# agree, which the tests check), statistic codes are _kernels.pxd's Stats.
# Only inline functions and constants: nothing to import at run time.

from libc.stdint cimport int64_t

from fastem._kernels cimport STATS_DIAG, STATS_FULL, STATS_NONE, STATS_TIED


cdef extern from "fastem.h" nogil:
    enum:
        COVARIANCE_FULL "FASTEM_FULL"              # covariances (K, D, D)
        COVARIANCE_TIED "FASTEM_TIED"              # covariances (D, D)
        COVARIANCE_DIAG "FASTEM_DIAG"              # covariances (K, D)
        COVARIANCE_SPHERICAL "FASTEM_SPHERICAL"    # covariances (K,)


cdef inline bint is_covariance_type(int covariance_type) noexcept nogil:
    return COVARIANCE_FULL <= covariance_type <= COVARIANCE_SPHERICAL


cdef inline int64_t covariance_size(int covariance_type, int64_t k, int64_t d) noexcept nogil:
    # Doubles in the covariances, and in the precision factors of the same shape.
    if covariance_type == COVARIANCE_FULL:
        return k * d * d
    if covariance_type == COVARIANCE_TIED:
        return d * d
    if covariance_type == COVARIANCE_DIAG:
        return k * d
    return k


cdef inline int statistic_of(int covariance_type) noexcept nogil:
    # The second-order statistic a covariance type's M-step reads: spherical
    # variances are means of the diagonal ones.
    if covariance_type == COVARIANCE_FULL:
        return STATS_FULL
    if covariance_type == COVARIANCE_TIED:
        return STATS_TIED
    return STATS_DIAG


cdef inline int64_t second_moments_size(int statistic, int64_t k, int64_t d) noexcept nogil:
    if statistic == STATS_FULL:
        return k * d * d
    if statistic == STATS_TIED:
        return d * d
    if statistic == STATS_DIAG:
        return k * d
    return 0


# A pass's flat statistics (fastem.h):
#   [log-likelihood | counts (K) | first moments (K, D) | second moments]
# Every kernel and the M-step find the parts through these offsets.
cdef enum:
    COUNTS_OFFSET = 1


cdef inline int64_t first_offset(int64_t k) noexcept nogil:
    return COUNTS_OFFSET + k


cdef inline int64_t second_offset(int64_t k, int64_t d) noexcept nogil:
    return COUNTS_OFFSET + k + k * d


cdef inline int64_t statistics_size(int statistic, int64_t k, int64_t d) noexcept nogil:
    return second_offset(k, d) + second_moments_size(statistic, k, d)


cdef inline int64_t factor_size(int covariance_type, int64_t k, int64_t d) noexcept nogil:
    # Doubles of the precision factor a Gaussian pass reads: spherical models
    # run the diagonal kernel with their factor repeated on every feature.
    if covariance_type == COVARIANCE_SPHERICAL:
        return k * d
    return covariance_size(covariance_type, k, d)
