# Declarations of the nogil kernels in _kernels.pyx.
#
# Conventions shared by every kernel:
# - X is row-major (n_samples, n_features) with rows `ldx` elements apart
#   (ldx >= n_features), float32 or float64 (the `floating` fused type);
#   everything else is float64, row-major and contiguous.
# - Accumulation across chunks is always in float64, whatever the dtype of X.
#   For float32 X, the per-component full path (above 16 features) takes a
#   chunk's level-3 products in single precision (see _kernels.pyx).
# - Kernels never raise: they return 0 on success and a negative status code.

from cython cimport floating
from libc.stdint cimport int64_t


# Rows per chunk, for every path (default_chunk_rows picks one from D): a BLAS
# chunk's scratch (a few copies of rows x D and rows x K doubles) stays in L2; a
# column chunk is long enough for the row loops to vectorise well.  Results
# depend on the chunk size (it fixes the order of the sums), so it is chosen
# from the shape alone.
cdef enum:
    BLOCK_CHUNK_ROWS = 256
    COLUMN_CHUNK_ROWS = 1024


# How a row's responsibilities are obtained.
cpdef enum Assign:
    ASSIGN_FULL = 0      # Gaussian, one upper-triangular precision factor per component
    ASSIGN_TIED = 1      # Gaussian, one upper-triangular precision factor shared by all
    ASSIGN_DIAG = 2      # Gaussian, diagonal precision factor (also serves "spherical")
    ASSIGN_NEAREST = 3   # hard assignment to the nearest mean (k-means)
    ASSIGN_GIVEN = 4     # responsibilities read from a caller's (n_samples, K) array


# Which second-order statistic is accumulated beside the counts and first moments.
cpdef enum Stats:
    STATS_NONE = 0       # none
    STATS_FULL = 1       # (K, D, D): sum_n r_nk (x_n - m_k)(x_n - m_k)^T, upper triangle
    STATS_TIED = 2       # (D, D):    sum_n w_n (x_n - c)(x_n - c)^T, upper triangle
    STATS_DIAG = 3       # (K, D):    sum_n r_nk (x_n - m_k)^2


ctypedef struct MixtureParams:
    Py_ssize_t n_features
    Py_ssize_t n_components
    int assign                      # an Assign value
    int stats                       # a Stats value
    const double* means             # (K, D) component means; also the shift m_k of the stats
    const double* precision_factor  # FULL (K, D, D) / TIED (D, D) upper triangular; DIAG (K, D)
    const double* whitened_means    # TIED only: (K, D), means[k] @ precision_factor
    const double* log_norm          # (K,) log weight_k + log det factor_k - D/2 log(2 pi)
    const double* tied_shift        # TIED stats only: (D,) the centre c of the tied scatter
    const double* given_resp        # GIVEN only: (n_samples, ld_given_resp) responsibilities
    Py_ssize_t ld_given_resp        # GIVEN only: distance between rows of given_resp (>= K)


cdef Py_ssize_t default_chunk_rows(Py_ssize_t n_features) noexcept nogil
cdef Py_ssize_t params_stats_size(const MixtureParams* params) noexcept nogil

cdef int accumulate_stats(
    const floating* X,
    Py_ssize_t n_samples,
    Py_ssize_t ldx,
    const double* sample_weight,
    const MixtureParams* params,
    Py_ssize_t chunk_rows,
    int n_threads,
    double* stats,
) noexcept nogil

cdef int accumulate_lanes(
    const floating* X,
    Py_ssize_t n_samples,
    Py_ssize_t ldx,
    const double* sample_weight,
    const MixtureParams* params,
    Py_ssize_t chunk_rows,
    Py_ssize_t first_chunk,
    int n_threads,
    double* lanes,
    Py_ssize_t lane_stride,
) noexcept nogil

cdef int score_rows(
    const floating* X,
    Py_ssize_t n_samples,
    Py_ssize_t ldx,
    const MixtureParams* params,
    Py_ssize_t chunk_rows,
    int n_threads,
    double* log_prob_norm,
    double* resp,
    int64_t* labels,
) noexcept nogil

cdef int log_density_rows(
    const floating* X,
    Py_ssize_t n_samples,
    Py_ssize_t ldx,
    const MixtureParams* params,
    Py_ssize_t chunk_rows,
    int n_threads,
    double* log_dens,
    Py_ssize_t ld_log_dens,
) noexcept nogil
