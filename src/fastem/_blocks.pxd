# The block path (_blocks.pyx): its constants, the per-pass shared arrays, the
# predicates that pick a chunk's path from the shape, and one thread's chunk
# scratch.  Inline, so the chunk kernels in _kernels.pyx decide without calls.

from cython cimport floating

from fastem._kernels cimport (
    ASSIGN_FULL, ASSIGN_GIVEN, ASSIGN_DIAG, ASSIGN_NEAREST, ASSIGN_TIED, MixtureParams,
    STATS_DIAG, STATS_FULL, STATS_NONE, STATS_TIED,
)



# Below this many features per-row loops win (BLAS call overhead on tiny
# matrices); from it on, chunks go through BLAS.
cdef enum:
    BLAS_MIN_FEATURES = 8

# Full covariances with at most this many features whiten all components with
# one GEMM and take every component's scatter with another (outer products of
# the rows as columns): many tiny per-component BLAS calls cost more than the
# arithmetic.  Above it, per-component TRMM and SYRK are efficient and the
# (rows, K D) block would no longer fit in cache.
cdef enum:
    OUTER_MAX_FEATURES = 16


# Float32 input, on the paths _single_products picks: a chunk's level-3 products
# (GEMM, TRMM, SYRK) run in single precision, twice the SIMD width of float64,
# on float32 copies of the centred chunk and of `_Shared.operand`.  Everything
# else stays float64: the centring itself (about each component's mean, so
# the products never see the data's distance from the origin), each row's
# squared norm, the log-sum-exp, and
# every sum that crosses chunks (a chunk's single-precision moments are added
# into the float64 lanes).  A statistic thus carries about one float32
# rounding per product term (6e-8 relative, times the length of its dot
# product), never a rounding that grows with N.  Float64 input runs the same
# code with every buffer in float64, bitwise as before.

ctypedef struct _Shared:
    # Per-pass arrays derived from the parameters, read by every thread.
    double* center   # (D,) mean of the means: the origin of the DIAG/NEAREST/small-FULL expansions
                     # (rounded to float32 for float32 products, see _prepare_shared)
    double* coef     # DIAG (K, 2D) [-2 P nu | P]; NEAREST (K, D) nu; small FULL (D, K D) [U_1 .. U_K]
                     # (nu = mean - center, P = factor^2)
    double* offset   # (K,) DIAG sum_d P nu^2; NEAREST |nu|^2; small FULL (K, D) nu_k U_k
    const double* operand         # what the chunk products multiply by: coef, or the precision
                                  # factor (FULL above OUTER_MAX_FEATURES, TIED)
    float* operand_single         # float32 input only: `operand` rounded to float32


cdef inline bint _full_outer(const MixtureParams* p) noexcept nogil:
    # Densities of a small full model: one GEMM whitens the chunk for every component.
    return p.assign == ASSIGN_FULL and p.n_features <= OUTER_MAX_FEATURES


cdef inline bint _outer_moments(const MixtureParams* p) noexcept nogil:
    # Full scatters of a small model: one GEMM of the responsibilities with the
    # rows' outer products (_add_outer_moments).  The k-means pass keeps its
    # per-component SYRK (its bits are pinned by the initialisations).
    return (p.stats == STATS_FULL and p.n_features <= OUTER_MAX_FEATURES
            and (p.assign == ASSIGN_FULL or p.assign == ASSIGN_GIVEN))


cdef inline Py_ssize_t _outer_width(Py_ssize_t d) noexcept nogil:
    # a row's features, then the upper triangle of its outer product
    return d + d * (d + 1) // 2


cdef inline Py_ssize_t _outer_offset(const MixtureParams* p) noexcept nogil:
    # Where the centred chunk starts in Y (in units of rows) for small full covariances.
    return max(p.n_components * p.n_features, _outer_width(p.n_features))


cdef inline Py_ssize_t _block_width(const MixtureParams* p) noexcept nogil:
    # Columns of the chunk-sized scratch block Y.
    cdef Py_ssize_t d = p.n_features
    if _full_outer(p) or _outer_moments(p):
        return _outer_offset(p) + d   # whitened or outer-product block, then the centred chunk
    return 2 * d


cdef inline Py_ssize_t _moments_width(const MixtureParams* p) noexcept nogil:
    return max(2 * p.n_features, _outer_width(p.n_features))


cdef inline bint _block_chunks(const MixtureParams* p) noexcept nogil:
    # A chunked pass goes through BLAS (else through the column path).
    return p.n_features >= BLAS_MIN_FEATURES


cdef inline bint _blocked_density(const MixtureParams* p) noexcept nogil:
    return _block_chunks(p) and p.assign != ASSIGN_GIVEN


cdef inline bint _chunked_pass(const MixtureParams* p) noexcept nogil:
    # The pairs an EM or Lloyd iteration uses go chunk by chunk (vector exp, and
    # BLAS from BLAS_MIN_FEATURES on), and so does the k-means initialisation's
    # pass with covariance statistics (the column path takes any statistic; the
    # BLAS path all but DIAG, whose moments come from the DIAG densities'
    # scratch), and every pass over supplied responsibilities (an HMM's posteriors
    # over millions of rows: never row by row, never an N x D temporary).  Other
    # pairs take the row path.
    return (
        p.assign == ASSIGN_GIVEN
        or (p.assign == ASSIGN_FULL and p.stats == STATS_FULL)
        or (p.assign == ASSIGN_TIED and p.stats == STATS_TIED)
        or (p.assign == ASSIGN_DIAG and p.stats == STATS_DIAG)
        or (p.assign == ASSIGN_NEAREST and p.stats != STATS_DIAG)
        or (p.assign == ASSIGN_NEAREST and p.n_features < BLAS_MIN_FEATURES)
    )


cdef inline bint _single_products(const MixtureParams* p) noexcept nogil:
    # Float32 input takes a chunk's products in single precision where they dominate
    # the pass and their operands are small: FULL above OUTER_MAX_FEATURES (TRMM and
    # SYRK of rows centred about each component's own mean).  The other block paths
    # expand about one centre for all components (DIAG, NEAREST, small FULL) or sum
    # moments about it (TIED): in single precision their error would grow with the
    # squared spread of the means (DIAG: 2.6e-4 relative on the variances of clusters
    # 30 sigma apart, against 2e-6 for scikit-learn's float32), so their float32
    # chunks are widened to float64 (_widened_chunk) and give the float64 bits.
    return _blocked_density(p) and p.assign == ASSIGN_FULL and not _full_outer(p)


# Rows of per-row scratch the log-sum-exp needs (_normalise_columns: maximum,
# sum, its log, a flag); the column path borrows the first rows in between.
cdef enum:
    NORMALISE_SCRATCH_ROWS = 4


ctypedef struct _ChunkScratch:
    # One thread's scratch for one chunk.  Laid out by _chunk_scratch only.
    double* block     # (rows, _block_width) Y in X's precision; column path: the chunk
                      # transposed (D, rows), then a work copy (D, rows)
    double* dens      # (K, rows) log-densities, then w * responsibilities
    double* moments   # (K, _moments_width) a chunk's moments, in X's precision
    double* row_tmp   # (NORMALISE_SCRATCH_ROWS, rows)
    double* extra     # float32 input only: (rows, D) the chunk widened to float64, or the
                      # (rows,) float32 roots of the single-precision scatters (never both)


cdef inline Py_ssize_t _chunk_scratch(
    const MixtureParams* p, Py_ssize_t rows, bint single, double* work, _ChunkScratch* out,
) noexcept nogil:
    # The doubles a chunk of `rows` needs (`single`: float32 input); with `out`,
    # its regions in `work`.  `extra` comes last, so a widened float32 chunk keeps
    # the float64 layout in front of it.
    cdef Py_ssize_t block = rows * _block_width(p), dens = rows * p.n_components
    cdef Py_ssize_t moments = p.n_components * _moments_width(p)
    cdef Py_ssize_t row_tmp = NORMALISE_SCRATCH_ROWS * rows
    if out != NULL:
        out.block = work
        out.dens = work + block
        out.moments = out.dens + dens
        out.row_tmp = out.moments + moments
        out.extra = out.row_tmp + row_tmp
    return block + dens + moments + row_tmp + (rows * p.n_features if single else 0)


cdef inline const double* _widened_chunk(
    const float* X, Py_ssize_t rows, Py_ssize_t d, double* wide,
) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(rows * d):
        wide[i] = X[i]
    return wide


cdef int _prepare_shared(const MixtureParams* p, _Shared* sh, bint single) noexcept nogil
cdef void _free_shared(_Shared* sh) noexcept nogil

cdef void _block_log_densities(
    const floating* X, Py_ssize_t rows, const MixtureParams* p, const _Shared* sh,
    floating* Y, double* dens,
) noexcept nogil

cdef void _weighted_given(
    const double* given, Py_ssize_t ld, const double* weight, Py_ssize_t rows,
    Py_ssize_t n_comp, double* resp_w,
) noexcept nogil

cdef void _block_moments(
    const floating* X, Py_ssize_t rows, const double* weight, bint given,
    const MixtureParams* p, const _Shared* sh, _ChunkScratch* s, double* stats,
) noexcept nogil
