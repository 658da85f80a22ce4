# Declarations of _missing.pyx: the passes of a Gaussian mixture over rows with
# missing values (NaN), on the engine's chunk/lane driver.

from cython cimport floating
from libc.stdint cimport int64_t

from fastem._gmm cimport GaussianModel


cdef int missing_lanes(
    const floating* X, int64_t n_rows, int64_t ldx, const double* sample_weight,
    const GaussianModel* model, const double* tied_centre, int64_t first_chunk, int n_threads,
    double* lanes, int64_t lane_stride,
) noexcept nogil

cdef int missing_rows(
    const floating* X, int64_t n_rows, int64_t ldx, const GaussianModel* model, int n_threads,
    double* log_prob, double* resp, int64_t* labels, double* log_dens, double* filled,
    double* std,
) noexcept nogil

cdef double observed_weight(
    const floating* X, int64_t n_rows, int64_t ldx, int64_t n_features,
    const double* sample_weight, double start, int64_t* n_empty,
) noexcept nogil

cdef void observed_totals_rows(
    const floating* X, int64_t n_rows, int64_t ldx, int64_t n_features,
    const double* sample_weight, double* sums, double* weights, int64_t* counts,
) noexcept nogil
