# The one C description of the covariance types: how many doubles a model's
# covariances (and precision factors) hold, which second-order statistic its
# M-step needs, and how long a pass's statistics are.  Every compiled module
# takes its sizes from here; the Python table (fastem._covariance) uses the
# same codes and statistic names.
#
# Covariance codes are fastem.h's FASTEM_* values (and _em.pxd's
# CovarianceType); statistic codes are _kernels.pxd's Stats values.  Only
# inline functions and constants: nothing to import at run time.

from libc.stdint cimport int64_t


cdef enum:
    COV_FULL = 0         # covariances (K, D, D)
    COV_TIED = 1         # covariances (D, D)
    COV_DIAG = 2         # covariances (K, D)
    COV_SPHERICAL = 3    # covariances (K,)

cdef enum:
    STATISTIC_NONE = 0   # counts and first moments only
    STATISTIC_FULL = 1   # (K, D, D) scatter about each component's mean
    STATISTIC_TIED = 2   # (D, D) scatter about one centre
    STATISTIC_DIAG = 3   # (K, D) squares about each component's mean (also spherical)


cdef inline bint is_covariance_type(int covariance_type) noexcept nogil:
    return COV_FULL <= covariance_type <= COV_SPHERICAL


cdef inline int64_t covariance_size(int covariance_type, int64_t k, int64_t d) noexcept nogil:
    # Doubles in the covariances, and in the precision factors of the same shape.
    if covariance_type == COV_FULL:
        return k * d * d
    if covariance_type == COV_TIED:
        return d * d
    if covariance_type == COV_DIAG:
        return k * d
    return k


cdef inline int statistic_of(int covariance_type) noexcept nogil:
    # The second-order statistic a covariance type's M-step reads: spherical
    # variances are means of the diagonal ones.
    if covariance_type == COV_FULL:
        return STATISTIC_FULL
    if covariance_type == COV_TIED:
        return STATISTIC_TIED
    return STATISTIC_DIAG


cdef inline int64_t second_moments_size(int statistic, int64_t k, int64_t d) noexcept nogil:
    if statistic == STATISTIC_FULL:
        return k * d * d
    if statistic == STATISTIC_TIED:
        return d * d
    if statistic == STATISTIC_DIAG:
        return k * d
    return 0


cdef inline int64_t statistics_size(int statistic, int64_t k, int64_t d) noexcept nogil:
    # [log-likelihood | counts (K) | first moments (K, D) | second moments]
    return 1 + k + k * d + second_moments_size(statistic, k, d)


cdef inline int64_t factor_size(int covariance_type, int64_t k, int64_t d) noexcept nogil:
    # Doubles of the precision factor a Gaussian pass reads: spherical models
    # run the diagonal kernel with their factor repeated on every feature.
    if covariance_type == COV_SPHERICAL:
        return k * d
    return covariance_size(covariance_type, k, d)
