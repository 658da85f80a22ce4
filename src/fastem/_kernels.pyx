"""Fused nogil kernels: one pass over X per EM (or Lloyd) iteration.

A pass cuts the rows of X into chunks of a fixed number of rows.  For every row
it computes the K log-densities, their log-sum-exp and the responsibilities,
and adds the row's contribution to the sufficient statistics of the M-step:

    stats = [ sum_n w_n log p(x_n)       (1)   log-likelihood (k-means: inertia,
                                                the weighted squared distances)
              N_k = sum_n w_n r_nk       (K)
              S1_k = sum_n w_n r_nk (x_n - m_k)            (K, D)
              S2 = second-order sums, see the Stats enum ]

The first and second moments are taken about the component's current mean m_k
(the mean the E-step uses), not about zero: the new mean is m_k plus a small
correction, so the centred covariance is formed without the catastrophic
cancellation of E[x x^T] - mu mu^T when the data sit far from the origin.

Code paths, chosen from the shape alone: below 8 features a chunk is
transposed to one column per feature so every loop runs over rows; from 8 on,
chunks go through SciPy's BLAS (one GEMM for all components of a full model up
to 16 features, per-component TRMM/SYRK above; diag and k-means distances as a
GEMM expansion about the mean of the means, so its cancellation is bounded by
the spread of the means, not their distance from the origin).  Densities are
kept component-major (K, rows) so the log-sum-exp vectorises, with our own
exp/log (_simd_math.h).  Initialisation-only pairs go row by row
(accumulate_rows).  Float32 input runs the per-component FULL chunk products
in single precision (see _single_products); everything that crosses chunks
stays float64.

Reproducibility: every floating-point addition happens in an order fixed by
the data's shape (chunks summed into a fixed number of "lanes", lanes summed in
order; see accumulate_stats).  Threads only change *who* computes a lane, so
the result is bitwise identical for any number of threads.
"""
cimport cython
from cython.parallel cimport prange
from libc.math cimport sqrt, INFINITY
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memset

import numpy as np

from libc.stdint cimport int64_t

from fastem._blas cimport (
    gram_upper, rows_times, rows_times_transpose, weighted_row_sum, whiten_rows,
)
from fastem._covariance_shapes cimport factor_size, statistics_size
from fastem._openmp cimport omp_get_thread_num, omp_in_parallel


cdef extern from "_simd_columns.h" nogil:
    void fastem_add_scaled(double* y, const double* x, double f, int64_t n)
    void fastem_minus(double* out, const double* x, double m, int64_t n)
    void fastem_add_squares(double* q, const double* y, int64_t n)
    void fastem_add_scaled_squared_diff(double* q, const double* x, double m, double f, int64_t n)
    double fastem_dot3(const double* a, const double* b, const double* c, int64_t n)


cdef extern from "_simd_math.h" nogil:
    double fastem_exp(double x)
    double fastem_log(double x)
    void fastem_exp_array(double* values, int64_t n)
    void fastem_exp_shifted_sum(double* values, const double* shift, double* total, int64_t n, int first)
    void fastem_max_into(double* top, const double* values, int64_t n)
    void fastem_scale_by(double* values, const double* scale, int64_t n)
    void fastem_log_array(const double* values, double* out, int64_t n)
    int fastem_simd_level()


cdef Py_ssize_t params_stats_size(const MixtureParams* params) noexcept nogil:
    return statistics_size(params.stats, params.n_components, params.n_features)


cdef Py_ssize_t row_work_size(const MixtureParams* params) noexcept nogil:
    # log-densities (K), a centred row (D) and a whitened row (D)
    return params.n_components + 2 * params.n_features


cdef inline void _whiten_upper(
    const double* centred,  # IN (D,)
    const double* factor,   # IN (D, D) upper triangular
    Py_ssize_t d,
    double* out,            # OUT (D,) centred @ factor
) noexcept nogil:
    # Row-by-row axpy so the inner loop runs over contiguous memory of `factor`;
    # only the upper triangle (j >= i) is touched.
    cdef Py_ssize_t i, j
    cdef double c
    for j in range(d):
        out[j] = 0.0
    for i in range(d):
        c = centred[i]
        for j in range(i, d):
            out[j] += c * factor[i * d + j]


# Squared norms below keep four partial sums in a fixed pattern: the compiler can
# put them in SIMD lanes without reassociating (no -ffast-math), and the result
# stays the same on every machine.
cdef inline double _sum_squares(const floating* v, Py_ssize_t n) noexcept nogil:
    return _dot2(v, v, n)


cdef inline double _scaled_distance(
    const floating* x, const double* mean, const double* scale, Py_ssize_t n
) noexcept nogil:
    """sum_i ((x_i - mean_i) * scale_i)^2, or sum_i (x_i - mean_i)^2 if scale is NULL."""
    cdef Py_ssize_t i = 0
    cdef double t0, t1, t2, t3, s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    if scale == NULL:
        while i + 4 <= n:
            t0 = x[i] - mean[i]
            t1 = x[i + 1] - mean[i + 1]
            t2 = x[i + 2] - mean[i + 2]
            t3 = x[i + 3] - mean[i + 3]
            s0 += t0 * t0
            s1 += t1 * t1
            s2 += t2 * t2
            s3 += t3 * t3
            i += 4
        while i < n:
            t0 = x[i] - mean[i]
            s0 += t0 * t0
            i += 1
    else:
        while i + 4 <= n:
            t0 = (x[i] - mean[i]) * scale[i]
            t1 = (x[i + 1] - mean[i + 1]) * scale[i + 1]
            t2 = (x[i + 2] - mean[i + 2]) * scale[i + 2]
            t3 = (x[i + 3] - mean[i + 3]) * scale[i + 3]
            s0 += t0 * t0
            s1 += t1 * t1
            s2 += t2 * t2
            s3 += t3 * t3
            i += 4
        while i < n:
            t0 = (x[i] - mean[i]) * scale[i]
            s0 += t0 * t0
            i += 1
    return (s0 + s1) + (s2 + s3)


cdef void _log_densities(
    const floating* x,            # IN (D,) one row
    const MixtureParams* p,
    double* log_dens,             # OUT (K,) log(weight_k N(x | k)); k-means: -|x - m_k|^2
    double* centred,              # scratch (D,)
    double* whitened,             # scratch (D,)
) noexcept nogil:
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components
    cdef Py_ssize_t k, i
    cdef const double* mean
    if p.assign == ASSIGN_TIED:
        # (x - m_k) U = x U - m_k U: whiten the row once, not once per component.
        for i in range(d):
            centred[i] = x[i]
        _whiten_upper(centred, p.precision_factor, d, whitened)
    for k in range(n_comp):
        mean = p.means + k * d
        if p.assign == ASSIGN_FULL:
            for i in range(d):
                centred[i] = x[i] - mean[i]
            _whiten_upper(centred, p.precision_factor + k * d * d, d, centred + d)
            log_dens[k] = p.log_norm[k] - 0.5 * _sum_squares(centred + d, d)
        elif p.assign == ASSIGN_TIED:
            log_dens[k] = p.log_norm[k] - 0.5 * _scaled_distance(
                <const double*>whitened, p.whitened_means + k * d, NULL, d)
        elif p.assign == ASSIGN_DIAG:
            log_dens[k] = p.log_norm[k] - 0.5 * _scaled_distance(
                x, mean, p.precision_factor + k * d, d)
        else:  # ASSIGN_NEAREST
            log_dens[k] = -_scaled_distance(x, mean, <const double*>NULL, d)


cdef double _normalise_row(
    const MixtureParams* p,
    double* log_dens,   # INOUT (K,) log-densities in, responsibilities out
    Py_ssize_t* best_out,  # OUT first component of highest log-density
) noexcept nogil:
    """Turn a row's log-densities into responsibilities; return its log-likelihood.

    Gaussian: log-sum-exp with the maximum factored out, so exp never overflows.
    Nearest: one-hot on the first nearest mean; returns the squared distance to it.
    """
    cdef Py_ssize_t k, n_comp = p.n_components, best = 0
    cdef double top = log_dens[0], total = 0.0, scale
    for k in range(1, n_comp):
        if log_dens[k] > top:
            top = log_dens[k]
            best = k
    best_out[0] = best
    if p.assign == ASSIGN_NEAREST:
        for k in range(n_comp):
            log_dens[k] = 0.0
        log_dens[best] = 1.0
        return -top
    if top == -INFINITY:
        # Every component has zero density here: no finite responsibilities exist.
        for k in range(n_comp):
            log_dens[k] = 0.0
        return -INFINITY
    for k in range(n_comp):
        log_dens[k] = fastem_exp(log_dens[k] - top)
        total += log_dens[k]
    scale = 1.0 / total
    for k in range(n_comp):
        log_dens[k] *= scale
    return top + fastem_log(total)


cdef void _add_row_stats(
    const floating* x,           # IN (D,) one row
    double w,                    # its weight (> 0)
    const double* resp_w,        # IN (K,) w * responsibilities
    const MixtureParams* p,
    double* centred,             # scratch (D,)
    double* stats,               # INOUT as accumulate_rows
) noexcept nogil:
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components, k, i, j
    cdef const double* mean
    cdef double rw, a
    cdef double* counts = stats + 1
    cdef double* first = stats + 1 + n_comp
    cdef double* second = stats + 1 + n_comp + n_comp * d
    if p.stats == STATS_TIED:
        for i in range(d):
            centred[i] = x[i] - p.tied_shift[i]
        for i in range(d):
            a = w * centred[i]
            for j in range(i, d):
                second[i * d + j] += a * centred[j]
    for k in range(n_comp):
        rw = resp_w[k]
        if rw == 0.0:
            continue  # adds nothing; common for hard and well-separated assignments
        mean = p.means + k * d
        counts[k] += rw
        for i in range(d):
            centred[i] = x[i] - mean[i]
            first[k * d + i] += rw * centred[i]
        if p.stats == STATS_FULL:
            for i in range(d):
                a = rw * centred[i]
                for j in range(i, d):
                    second[(k * d + i) * d + j] += a * centred[j]
        elif p.stats == STATS_DIAG:
            for i in range(d):
                second[k * d + i] += rw * centred[i] * centred[i]


cdef void accumulate_rows(
    const floating* X,             # IN (n_samples, ldx)
    Py_ssize_t ldx,
    Py_ssize_t row_start,
    Py_ssize_t row_end,
    const double* sample_weight,   # IN (n_samples,) or NULL for unit weights
    const MixtureParams* p,
    double* work,                  # scratch, row_work_size(p) doubles
    double* stats,                 # INOUT params_stats_size(p) doubles; rows are added in order
) noexcept nogil:
    """Any assign/stats pair, one row at a time (initialisation, given responsibilities)."""
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components
    cdef Py_ssize_t n, k, best
    cdef const floating* x
    cdef double w, row_log_lik
    cdef double* resp = work
    cdef double* centred = work + n_comp
    for n in range(row_start, row_end):
        w = 1.0 if sample_weight == NULL else sample_weight[n]
        if w == 0.0:
            continue  # a zero weight removes the row, even one with zero density
        x = X + n * ldx
        if p.assign == ASSIGN_GIVEN:
            for k in range(n_comp):
                resp[k] = p.given_resp[n * p.ld_given_resp + k]
            row_log_lik = 0.0
        else:
            _log_densities(x, p, resp, centred, centred + d)
            row_log_lik = _normalise_row(p, resp, &best)
        stats[0] += w * row_log_lik
        for k in range(n_comp):
            resp[k] *= w
        _add_row_stats(x, w, resp, p, centred, stats)


# ---------------------------------------------------------------------------
# Block path: a whole chunk at a time through level-3 BLAS.
# ---------------------------------------------------------------------------

# Below this many features per-row loops win (BLAS call overhead on tiny
# matrices); from it on, chunks go through BLAS.
cdef Py_ssize_t BLAS_MIN_FEATURES = 8

# Rows per chunk: a BLAS chunk's scratch (a few copies of rows x D and rows x K
# doubles) stays in L2; a column chunk is long enough for the row loops to
# vectorise well.  Results depend on the chunk size (it fixes the order of the
# sums), so it is chosen from the shape alone.
cdef Py_ssize_t BLOCK_CHUNK_ROWS = 256
cdef Py_ssize_t COLUMN_CHUNK_ROWS = 1024


cdef Py_ssize_t default_chunk_rows(Py_ssize_t n_features) noexcept nogil:
    return BLOCK_CHUNK_ROWS if n_features >= BLAS_MIN_FEATURES else COLUMN_CHUNK_ROWS


# Full covariances with at most this many features whiten all components with
# one GEMM and take every component's scatter with another (outer products of
# the rows as columns): many tiny per-component BLAS calls cost more than the
# arithmetic.  Above it, per-component TRMM and SYRK are efficient and the
# (rows, K D) block would no longer fit in cache.
cdef Py_ssize_t OUTER_MAX_FEATURES = 16


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


cdef Py_ssize_t _block_work_size(
    const MixtureParams* p, Py_ssize_t rows, bint single
) noexcept nogil:
    # Y (rows, _block_width), densities (rows, K), chunk moments (K, _moments_width),
    # normalisation scratch (4 rows), then the row path's scratch.  Y and the
    # moments hold X's precision (float32 needs half their room).  Float32 input
    # adds room for (K, rows) floats, a single-precision product or copy of the
    # responsibilities (_single_scratch), or for the chunk widened to float64.
    cdef Py_ssize_t k = p.n_components
    cdef Py_ssize_t size = (
        rows * _block_width(p) + rows * k + k * _moments_width(p) + 4 * rows + row_work_size(p)
    )
    return size + max((k * rows + 1) // 2, rows * p.n_features) if single else size


cdef inline float* _single_scratch(
    const MixtureParams* p, double* work, Py_ssize_t rows
) noexcept nogil:
    return <float*>(work + _block_work_size(p, rows, False))


cdef inline const double* _widened_chunk(
    const float* X, Py_ssize_t rows, const MixtureParams* p, double* work
) noexcept nogil:
    # The chunk as float64, in the same room as _single_scratch (never both).
    cdef double* wide = work + _block_work_size(p, rows, False)
    cdef Py_ssize_t i
    for i in range(rows * p.n_features):
        wide[i] = X[i]
    return wide


cdef inline const floating* _operand(const _Shared* sh, const floating* like) noexcept nogil:
    # sh.operand in the precision of `like` (X).
    if floating is double:
        return <const floating*>sh.operand
    else:
        return <const floating*>sh.operand_single


cdef inline floating* _product_buffer(
    double* full, float* single, const floating* like
) noexcept nogil:
    # Where a product in the precision of `like` (X) lands: float64 input writes
    # straight into the float64 array, float32 into single-precision scratch.
    if floating is double:
        return <floating*>full
    else:
        return <floating*>single


cdef inline const floating* _resp_operand(
    const double* resp_w, Py_ssize_t n, float* single, const floating* like
) noexcept nogil:
    # The (K, rows) responsibilities as a product operand in the precision of `like`.
    cdef Py_ssize_t i
    if floating is double:
        return <const floating*>resp_w
    else:
        for i in range(n):
            single[i] = <float>resp_w[i]
        return <const floating*>single


cdef inline bint _first_by_product(const floating* like) noexcept nogil:
    # Float32: a FULL chunk's first moments, sum w r (x - m), come from one product
    # sqrt(w r)^T Z in single precision, Z holding the rows sqrt(w r) (x - m) the SYRK
    # reads (a per-element float64 running sum costs about as much as the SYRK at
    # D = 32).  Float64 keeps summing them row by row (its results stay bitwise as
    # they were).
    return sizeof(floating) == sizeof(float)


cdef inline void _add_gram(
    double* C,              # INOUT (d, d) upper triangle += Z^T Z
    double* first,          # INOUT (d,) += roots^T Z (float32 only), or NULL
    const floating* Z,      # IN (rows, d)
    const floating* roots,  # IN (rows,) with `first`, else NULL
    Py_ssize_t rows,
    Py_ssize_t d,
    floating* scratch,      # float32: (d * d,) the chunk's products
) noexcept nogil:
    # Float64 adds in place; float32 takes the chunk's products in single precision
    # and adds them into the float64 sums.
    cdef Py_ssize_t i, j
    if floating is double:
        gram_upper(<double*>C, Z, <int>rows, <int>d, 1.0)
    else:
        gram_upper(scratch, Z, <int>rows, <int>d, 0.0)
        for i in range(d):
            for j in range(i, d):
                C[i * d + j] += scratch[i * d + j]
        if first != NULL:
            weighted_row_sum(scratch, Z, roots, <int>rows, <int>d)
            for i in range(d):
                first[i] += scratch[i]


# ---------------------------------------------------------------------------
# Column path: below BLAS_MIN_FEATURES a chunk is transposed to one contiguous
# column per feature, so every loop runs over rows and vectorises.
# ---------------------------------------------------------------------------

cdef inline double _sum(const double* a, Py_ssize_t n) noexcept nogil:
    # Four fixed partial sums (see _simd_columns.h): vectorised, same on every machine.
    return fastem_dot3(a, NULL, NULL, n)


cdef inline double _dot3(const double* a, const double* b, const double* c, Py_ssize_t n) noexcept nogil:
    """sum_i a_i b_i c_i with four fixed partial sums."""
    return fastem_dot3(a, b, c, n)


cdef inline double _dot2(const floating* a, const floating* b, Py_ssize_t n) noexcept nogil:
    """sum_i a_i b_i with four fixed partial sums, in float64 whatever the input."""
    cdef Py_ssize_t i = 0
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    while i + 4 <= n:
        s0 += <double>a[i] * b[i]
        s1 += <double>a[i + 1] * b[i + 1]
        s2 += <double>a[i + 2] * b[i + 2]
        s3 += <double>a[i + 3] * b[i + 3]
        i += 4
    while i < n:
        s0 += <double>a[i] * b[i]
        i += 1
    return (s0 + s1) + (s2 + s3)


cdef void _transpose_chunk(const floating* X, Py_ssize_t rows, Py_ssize_t d, double* cols) noexcept nogil:
    cdef Py_ssize_t n, i
    for n in range(rows):
        for i in range(d):
            cols[i * rows + n] = X[n * d + i]


cdef void _columns_log_densities(
    const MixtureParams* p,
    Py_ssize_t rows,
    const double* cols,       # IN (D, rows) the chunk, one column per feature
    double* work_cols,        # scratch (D, rows)
    double* y,                # scratch (rows,)
    double* q,                # scratch (rows,)
    double* dens,             # OUT (K, rows) component-major, so normalising vectorises too
) noexcept nogil:
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components, n, k, i, j
    cdef const double* mean
    cdef const double* factor
    cdef double m, f, t
    if p.assign == ASSIGN_TIED:
        # x U once for all components: column j = sum_{i<=j} x_i U_ij
        for j in range(d):
            for n in range(rows):
                work_cols[j * rows + n] = 0.0
            for i in range(j + 1):
                fastem_add_scaled(work_cols + j * rows, cols + i * rows, p.precision_factor[i * d + j], rows)
    for k in range(n_comp):
        mean = p.means + k * d
        for n in range(rows):
            q[n] = 0.0
        if p.assign == ASSIGN_FULL:
            factor = p.precision_factor + k * d * d
            for i in range(d):
                fastem_minus(work_cols + i * rows, cols + i * rows, mean[i], rows)
            for j in range(d):
                for n in range(rows):
                    y[n] = 0.0
                for i in range(j + 1):
                    fastem_add_scaled(y, work_cols + i * rows, factor[i * d + j], rows)
                fastem_add_squares(q, y, rows)
        elif p.assign == ASSIGN_TIED:
            for i in range(d):
                fastem_add_scaled_squared_diff(q, work_cols + i * rows, p.whitened_means[k * d + i], 1.0, rows)
        elif p.assign == ASSIGN_DIAG:
            for i in range(d):
                fastem_add_scaled_squared_diff(q, cols + i * rows, mean[i], p.precision_factor[k * d + i], rows)
        else:  # ASSIGN_NEAREST
            for i in range(d):
                fastem_add_scaled_squared_diff(q, cols + i * rows, mean[i], 1.0, rows)
        if p.assign == ASSIGN_NEAREST:
            for n in range(rows):
                dens[k * rows + n] = -q[n]
        else:
            for n in range(rows):
                dens[k * rows + n] = p.log_norm[k] - 0.5 * q[n]


cdef void _columns_add_stats(
    const MixtureParams* p,
    Py_ssize_t rows,
    const double* cols,       # IN (D, rows) the chunk
    const double* weight,     # IN (rows,) or NULL
    const double* resp_w,     # IN (K, rows) w * responsibilities, component-major
    double* work_cols,        # scratch (D, rows)
    double* weights,          # scratch (rows,)
    double* stats,            # INOUT as accumulate_rows
) noexcept nogil:
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components, n, k, i, j
    cdef double* counts = stats + 1
    cdef double* first = stats + 1 + n_comp
    cdef double* second = stats + 1 + n_comp + n_comp * d
    cdef double m, chunk_count
    cdef const double* rk
    if p.stats == STATS_TIED:
        for n in range(rows):
            weights[n] = 1.0 if weight == NULL else weight[n]
        for i in range(d):
            fastem_minus(work_cols + i * rows, cols + i * rows, p.tied_shift[i], rows)
        for i in range(d):
            for j in range(i, d):
                second[i * d + j] += _dot3(weights, work_cols + i * rows, work_cols + j * rows, rows)
    for k in range(n_comp):
        rk = resp_w + k * rows
        chunk_count = _sum(rk, rows)
        if chunk_count == 0.0:
            continue  # no row of this chunk belongs to k: every sum below is zero
        counts[k] += chunk_count
        for i in range(d):
            fastem_minus(work_cols + i * rows, cols + i * rows, p.means[k * d + i], rows)
        for i in range(d):
            first[k * d + i] += fastem_dot3(rk, NULL, work_cols + i * rows, rows)
            if p.stats == STATS_FULL:
                for j in range(i, d):
                    second[(k * d + i) * d + j] += _dot3(rk, work_cols + i * rows, work_cols + j * rows, rows)
            elif p.stats == STATS_DIAG:
                second[k * d + i] += _dot3(rk, work_cols + i * rows, work_cols + i * rows, rows)


cdef double _normalise_columns(
    const MixtureParams* p,
    double* dens,              # INOUT (K, rows) log-densities in, w * responsibilities out
    Py_ssize_t rows,
    const double* weight,      # IN (rows,) or NULL
    int64_t* best_out,         # OUT (rows,) most responsible component, or NULL
    double* log_lik_out,       # OUT (rows,) log p(x) (NEAREST: squared distance), or NULL
    double* tmp,               # scratch (4 rows)
) noexcept nogil:
    """Log-sum-exp of a chunk's densities, laid out one component after another.

    Turns log-densities into w * responsibilities (NEAREST: w on the nearest
    mean) and returns sum_n w_n log p(x_n) over rows with w_n > 0 (NEAREST:
    the weighted squared distances).  Every loop runs over rows, so the max,
    exp, sums and scaling vectorise; zero-weight rows get zero responsibilities.
    """
    cdef Py_ssize_t n_comp = p.n_components, n, k
    cdef double* top = tmp               # max log-density, then the row's log-likelihood
    cdef double* total = tmp + rows      # sum of exp(L - top), then w / that sum
    cdef double* log_total = tmp + 2 * rows
    cdef double* flag = tmp + 3 * rows   # best component (as a double), then "no finite density"
    cdef double* col
    cdef double w, log_lik = 0.0
    for n in range(rows):
        top[n] = dens[n]
        flag[n] = 0.0
    cdef double value, current, greater_d, kd
    cdef bint greater
    cdef bint want_best = best_out != NULL or p.assign == ASSIGN_NEAREST
    for k in range(1, n_comp):
        col = dens + k * rows
        kd = <double>k
        if not want_best:   # the EM pass needs the maximum only
            fastem_max_into(top, col, rows)
            continue
        for n in range(rows):
            # Branch-free so it vectorises: the index moves by (k - index) * [greater]
            # (exact: small integers), and strict '>' sends ties to the first component.
            value = col[n]
            current = top[n]
            greater_d = <double>(value > current)
            flag[n] = flag[n] + greater_d * (kd - flag[n])
            top[n] = value if value > current else current
    if best_out != NULL:
        for n in range(rows):
            best_out[n] = <int64_t>flag[n]
    if p.assign == ASSIGN_NEAREST:
        for k in range(n_comp):
            col = dens + k * rows
            for n in range(rows):
                w = 1.0 if weight == NULL else weight[n]
                col[n] = w if flag[n] == <double>k else 0.0
        for n in range(rows):
            top[n] = -top[n]  # the squared distance to the nearest mean
    else:
        # A row with no finite density: exp(-inf) gives zeros, its log-likelihood is -inf.
        for n in range(rows):
            current = top[n]
            greater = current == -INFINITY  # (reused as "this row is empty")
            flag[n] = 1.0 if greater else 0.0
            top[n] = 0.0 if greater else current
        for k in range(n_comp):
            fastem_exp_shifted_sum(dens + k * rows, top, total, rows, k == 0)
        for n in range(rows):
            current = total[n]
            total[n] = 1.0 if flag[n] != 0.0 else current
        fastem_log_array(total, log_total, rows)
        for n in range(rows):
            current = top[n] + log_total[n]
            top[n] = -INFINITY if flag[n] != 0.0 else current
        if weight == NULL:
            for n in range(rows):
                total[n] = 1.0 / total[n]
        else:
            for n in range(rows):
                total[n] = weight[n] / total[n]
        for k in range(n_comp):
            fastem_scale_by(dens + k * rows, total, rows)
    for n in range(rows):
        if log_lik_out != NULL:
            log_lik_out[n] = top[n]
        w = 1.0 if weight == NULL else weight[n]
        if w != 0.0:
            log_lik += w * top[n]
    return log_lik


cdef void _free_shared(_Shared* sh) noexcept nogil:
    free(sh.center)
    free(sh.coef)
    free(sh.offset)
    free(sh.operand_single)


cdef inline Py_ssize_t _operand_size(const MixtureParams* p) noexcept nogil:
    # Entries of `operand` on the _single_products path: the K full factors.
    return p.n_components * p.n_features * p.n_features


cdef int _prepare_shared(const MixtureParams* p, _Shared* sh, bint single) noexcept nogil:
    """Fill `sh` for one pass; `single` for float32 input.  Returns 0 or -1 (no memory)."""
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components, k, i
    cdef double nu, prec
    cdef Py_ssize_t j
    sh.center = <double*>calloc(d, sizeof(double))
    sh.coef = <double*>calloc(n_comp * max(2, d) * d, sizeof(double))
    sh.offset = <double*>calloc(n_comp * d, sizeof(double))
    sh.operand_single = <float*>calloc(max(1, _operand_size(p)), sizeof(float)) if single else NULL
    if (sh.center == NULL or sh.coef == NULL or sh.offset == NULL
            or (single and sh.operand_single == NULL)):
        _free_shared(sh)
        return -1
    for k in range(n_comp):
        for i in range(d):
            sh.center[i] += p.means[k * d + i]
    for i in range(d):
        sh.center[i] /= n_comp
    # |x - m|^2 P expanded about the centre c: cross terms become one GEMM.  Taking
    # the expansion about c rather than 0 keeps its cancellation to the spread of
    # the means, not their distance from the origin.
    for k in range(n_comp):
        for i in range(d):
            nu = p.means[k * d + i] - sh.center[i]
            if p.assign == ASSIGN_DIAG:
                prec = p.precision_factor[k * d + i] * p.precision_factor[k * d + i]
                sh.coef[k * 2 * d + i] = -2.0 * prec * nu
                sh.coef[k * 2 * d + d + i] = prec
                sh.offset[k] += prec * nu * nu
            elif p.assign == ASSIGN_NEAREST:
                sh.coef[k * d + i] = nu
                sh.offset[k] += nu * nu
            elif _full_outer(p):
                # (x - m) U = (x - c) U - nu U: the first term for all k in one GEMM.
                for j in range(i, d):
                    sh.coef[i * n_comp * d + k * d + j] = p.precision_factor[(k * d + i) * d + j]
                    sh.offset[k * d + j] += nu * p.precision_factor[(k * d + i) * d + j]
            elif p.assign == ASSIGN_TIED:
                # |(x - m) U|^2 = |y|^2 - 2 y.v + |v|^2 with y = (x - c) U, v = nu U.
                for j in range(i, d):
                    sh.coef[k * d + j] += nu * p.precision_factor[i * d + j]
    if p.assign == ASSIGN_TIED:
        for k in range(n_comp):
            sh.offset[k] = _sum_squares(sh.coef + k * d, d)
    if p.assign == ASSIGN_TIED or (p.assign == ASSIGN_FULL and not _full_outer(p)):
        sh.operand = p.precision_factor
    else:
        sh.operand = sh.coef
    if single:
        for i in range(_operand_size(p)):
            sh.operand_single[i] = <float>sh.operand[i]
    return 0


cdef void _block_log_densities(
    const floating* X,        # IN (rows, D): the chunk
    Py_ssize_t rows,
    const MixtureParams* p,
    const _Shared* sh,
    floating* Y,              # scratch (rows, _block_width) in X's precision;
                              # DIAG leaves [x - c | (x - c)^2] in it
    float* single,            # float32 input: scratch (K, rows), see _single_scratch
    double* dens,             # OUT (K, rows) log-densities (NEAREST: minus squared distances)
) noexcept nogil:
    # Centring is done in float64 and rounded once when stored in Y; the squared
    # norms of the products are summed in float64 (_scaled_distance, _sum_squares).
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components, n, k, i
    cdef const double* mean
    cdef const floating* operand = _operand(sh, X)
    cdef floating* centred
    cdef floating* product
    cdef double* norms
    cdef double c, row_sq
    if _full_outer(p):
        # Y (rows, K D) = (X - c) [U_1 .. U_K]; the centred chunk is kept after it.
        centred = Y + rows * _outer_offset(p)
        for n in range(rows):
            for i in range(d):
                centred[n * d + i] = X[n * d + i] - sh.center[i]
        rows_times(Y, centred, operand, <int>rows, <int>(n_comp * d), <int>d)
        for n in range(rows):
            for k in range(n_comp):
                dens[k * rows + n] = p.log_norm[k] - 0.5 * _scaled_distance(
                    <const floating*>(Y + (n * n_comp + k) * d), sh.offset + k * d, NULL, d)
    elif p.assign == ASSIGN_FULL:
        for k in range(n_comp):
            mean = p.means + k * d
            for n in range(rows):
                for i in range(d):
                    Y[n * d + i] = X[n * d + i] - mean[i]
            whiten_rows(Y, operand + k * d * d, <int>rows, <int>d)
            for n in range(rows):
                dens[k * rows + n] = p.log_norm[k] - 0.5 * _sum_squares(Y + n * d, d)
    elif p.assign == ASSIGN_TIED:
        # Float32 chunks reach this path widened to float64 (see _single_products).
        if floating is double:
            for n in range(rows):
                for i in range(d):
                    Y[n * d + i] = X[n * d + i] - sh.center[i]
            whiten_rows(Y, operand, <int>rows, <int>d)
            # (K, rows) = V Y^T for the whitened, centred means V: the cross terms of
            # every component in one GEMM, expanded about c as for DIAG.
            rows_times_transpose(dens, sh.coef, Y, <int>n_comp, <int>rows, <int>d, 0.0)
            # Row norms into the free second half of Y, then one contiguous loop per
            # component (rows apart, the per-row stores would not vectorise).
            norms = <double*>(Y + rows * d)
            for n in range(rows):
                norms[n] = _sum_squares(Y + n * d, d)
            for k in range(n_comp):
                for n in range(rows):
                    # clipped: rounding must not make a squared distance negative
                    dens[k * rows + n] = p.log_norm[k] - 0.5 * max(
                        0.0, norms[n] - 2.0 * dens[k * rows + n] + sh.offset[k])
    elif p.assign == ASSIGN_DIAG:
        for n in range(rows):
            for i in range(d):
                c = X[n * d + i] - sh.center[i]
                Y[n * 2 * d + i] = c
                Y[n * 2 * d + d + i] = c * c
        # (K, rows) = coef (K, 2D) @ Y^T, always in float64 (see _single_products).
        product = _product_buffer(dens, single, X)
        rows_times_transpose(product, operand, Y, <int>n_comp, <int>rows, <int>(2 * d), 0.0)
        for k in range(n_comp):
            for n in range(rows):
                dens[k * rows + n] = p.log_norm[k] - 0.5 * (product[k * rows + n] + sh.offset[k])
    else:  # ASSIGN_NEAREST
        for n in range(rows):
            for i in range(d):
                Y[n * d + i] = X[n * d + i] - sh.center[i]
        product = _product_buffer(dens, single, X)
        rows_times_transpose(product, operand, Y, <int>n_comp, <int>rows, <int>d, 0.0)
        for n in range(rows):
            row_sq = _sum_squares(Y + n * d, d)
            for k in range(n_comp):
                # -(|y|^2 - 2 y.nu + |nu|^2), clipped: rounding must not make it positive
                dens[k * rows + n] = min(0.0, 2.0 * product[k * rows + n] - sh.offset[k] - row_sq)


cdef void _add_outer_moments(
    const MixtureParams* p,
    Py_ssize_t rows,
    const _Shared* sh,
    const floating* centred,  # IN (rows, D) the chunk minus the centre c
    const double* resp_w,     # IN (K, rows) w * responsibilities, component-major
    const floating* resp_op,  # IN resp_w in X's precision (_resp_operand)
    floating* Z,              # scratch (rows, _outer_width(D))
    floating* moments,        # scratch (K, _outer_width(D))
    double* stats,            # INOUT
) noexcept nogil:
    """Full-covariance moments of a chunk for all components with one GEMM.

    Each row becomes [y | upper(y y^T)] with y = x - c; R^T Z then holds every
    component's first and second moments about c, which are moved to the
    component's mean m = c + nu.
    """
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components, width = _outer_width(d)
    cdef Py_ssize_t n, k, i, j, col
    cdef const floating* y
    cdef floating* z
    cdef double* counts = stats + 1
    cdef double* first = stats + 1 + n_comp
    cdef double* second = stats + 1 + n_comp + n_comp * d
    cdef double chunk_count
    cdef const floating* g
    cdef double* nu = <double*>Z  # reused after the GEMM: (D,) per component
    for n in range(rows):
        y = centred + n * d
        z = Z + n * width
        col = d
        for i in range(d):
            z[i] = y[i]
            for j in range(i, d):
                z[col] = y[i] * y[j]
                col += 1
    rows_times(moments, resp_op, Z, <int>n_comp, <int>width, <int>rows)
    for k in range(n_comp):
        chunk_count = _sum(resp_w + k * rows, rows)
        counts[k] += chunk_count
        g = moments + k * width
        for i in range(d):
            nu[i] = p.means[k * d + i] - sh.center[i]
            first[k * d + i] += g[i] - chunk_count * nu[i]
        # sum r (y - nu)(y - nu)^T = G2 - nu G1^T - G1 nu^T + N nu nu^T
        col = d
        for i in range(d):
            for j in range(i, d):
                second[(k * d + i) * d + j] += (
                    g[col] - nu[i] * g[j] - g[i] * nu[j] + chunk_count * nu[i] * nu[j]
                )
                col += 1


cdef void _weighted_given(
    const double* given,      # IN (rows, ld) supplied responsibilities of the chunk
    Py_ssize_t ld,
    const double* weight,     # IN (rows,) or NULL
    Py_ssize_t rows,
    Py_ssize_t n_comp,
    double* resp_w,           # OUT (K, rows) w * responsibilities, component-major
) noexcept nogil:
    # The layout the E-step leaves, so the moments code serves both.  A zero-weight
    # row drops out even if its responsibilities are not finite.
    cdef Py_ssize_t n, k
    cdef double w
    for n in range(rows):
        w = 1.0 if weight == NULL else weight[n]
        for k in range(n_comp):
            resp_w[k * rows + n] = 0.0 if w == 0.0 else w * given[n * ld + k]


cdef void _centre_for_moments(
    const floating* X, Py_ssize_t rows, const MixtureParams* p, const _Shared* sh,
    floating* Y,              # OUT what the Gaussian densities leave in Y for the moments
) noexcept nogil:
    # Supplied responsibilities skip the densities; the moments still need the
    # chunk centred about c: after the outer block (small full) or as
    # [x - c | (x - c)^2] (DIAG).  The other statistics centre their own rows.
    cdef Py_ssize_t d = p.n_features, n, i
    cdef floating* centred
    cdef double c
    if _outer_moments(p):
        centred = Y + rows * _outer_offset(p)
        for n in range(rows):
            for i in range(d):
                centred[n * d + i] = X[n * d + i] - sh.center[i]
    elif p.stats == STATS_DIAG:
        for n in range(rows):
            for i in range(d):
                c = X[n * d + i] - sh.center[i]
                Y[n * 2 * d + i] = c
                Y[n * 2 * d + d + i] = c * c


cdef void _add_first_moments(
    const floating* X, Py_ssize_t rows, const MixtureParams* p,
    const double* resp_w,     # IN (K, rows)
    double* stats,            # INOUT
) noexcept nogil:
    # Counts and first moments only (k-means): hard assignments are mostly zeros.
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components, n, k, i
    cdef double* counts = stats + 1
    cdef double* first = stats + 1 + n_comp
    cdef const double* mean
    cdef double rw
    for k in range(n_comp):
        mean = p.means + k * d
        for n in range(rows):
            rw = resp_w[k * rows + n]
            if rw != 0.0:
                counts[k] += rw
                for i in range(d):
                    first[k * d + i] += rw * (X[n * d + i] - mean[i])


cdef void _add_component_scatters(
    const floating* X, Py_ssize_t rows, const MixtureParams* p,
    const double* resp_w,     # IN (K, rows)
    floating* Y,              # scratch (rows, D)
    floating* moments,        # scratch, float32: (D, D)
    float* single,            # scratch, float32: (rows,) the roots
    double* stats,            # INOUT
) noexcept nogil:
    # Full scatters, one SYRK of the rows sqrt(w r) (x - m_k) per component.
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components, n, k, i
    cdef double* counts = stats + 1
    cdef double* first = stats + 1 + n_comp
    cdef double* second = stats + 1 + n_comp + n_comp * d
    cdef bint by_product = _first_by_product(X)
    cdef floating* roots = <floating*>single  # float32 only: sqrt(w r) of each row
    cdef const double* mean
    cdef double rw, root, c, chunk_count
    for k in range(n_comp):
        mean = p.means + k * d
        chunk_count = 0.0
        for n in range(rows):
            rw = resp_w[k * rows + n]
            chunk_count += rw
            root = sqrt(rw)
            if by_product:
                roots[n] = root
                for i in range(d):
                    Y[n * d + i] = root * (X[n * d + i] - mean[i])
            else:
                for i in range(d):
                    c = X[n * d + i] - mean[i]
                    first[k * d + i] += rw * c
                    Y[n * d + i] = root * c
        counts[k] += chunk_count
        if chunk_count != 0.0:  # the Gram update of an unused component adds zeros
            _add_gram(second + k * d * d, first + k * d if by_product else NULL,
                      Y, roots, rows, d, moments)


cdef void _add_tied_scatter(
    const floating* X, Py_ssize_t rows, const double* weight, const MixtureParams* p,
    const double* resp_w,     # IN (K, rows)
    floating* Y,              # scratch (rows, 2 D)
    floating* moments,        # scratch (K, D)
    float* single,            # scratch, float32: (K, rows)
    double* stats,            # INOUT
) noexcept nogil:
    # Scatter: SYRK of sqrt(w) (x - s) about the tied shift s.  First moments:
    # one GEMM R^T (X - s), moved to each component's mean per chunk.
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components, n, k, i
    cdef double* counts = stats + 1
    cdef double* first = stats + 1 + n_comp
    cdef double* second = stats + 1 + n_comp + n_comp * d
    cdef floating* centred = Y + rows * d
    cdef double w, root, c, chunk_count
    for n in range(rows):
        w = 1.0 if weight == NULL else weight[n]
        root = sqrt(w)
        for i in range(d):
            c = X[n * d + i] - p.tied_shift[i]
            centred[n * d + i] = c
            Y[n * d + i] = root * c
    _add_gram(second, NULL, Y, NULL, rows, d, moments)  # float32: `moments` as scratch
    rows_times(moments, _resp_operand(resp_w, n_comp * rows, single, X), centred,
               <int>n_comp, <int>d, <int>rows)
    for k in range(n_comp):
        chunk_count = _sum(resp_w + k * rows, rows)
        counts[k] += chunk_count
        for i in range(d):
            first[k * d + i] += moments[k * d + i] - chunk_count * (p.means[k * d + i] - p.tied_shift[i])


cdef void _add_diag_moments(
    Py_ssize_t rows, const MixtureParams* p, const _Shared* sh,
    const double* resp_w,     # IN (K, rows)
    const floating* Y,        # IN (rows, 2 D) [x - c | (x - c)^2]
    floating* moments,        # scratch (K, 2 D)
    float* single,            # scratch, float32: (K, rows)
    double* stats,            # INOUT
) noexcept nogil:
    # One GEMM gives this chunk's moments about c, which are moved to each
    # component's mean m = c + nu.
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components, k, i
    cdef double* counts = stats + 1
    cdef double* first = stats + 1 + n_comp
    cdef double* second = stats + 1 + n_comp + n_comp * d
    cdef double chunk_count, nu, c
    rows_times(moments, _resp_operand(resp_w, n_comp * rows, single, Y), Y,
               <int>n_comp, <int>(2 * d), <int>rows)
    for k in range(n_comp):
        chunk_count = _sum(resp_w + k * rows, rows)
        counts[k] += chunk_count
        for i in range(d):
            nu = p.means[k * d + i] - sh.center[i]
            c = moments[k * 2 * d + i]
            first[k * d + i] += c - chunk_count * nu
            second[k * d + i] += moments[k * 2 * d + d + i] - 2.0 * nu * c + chunk_count * nu * nu


cdef void _accumulate_chunk(
    const floating* X,             # IN (rows, D): the chunk
    Py_ssize_t rows,
    const double* weight,          # IN (rows,) or NULL
    const double* given,           # IN (rows, p.ld_given_resp) for ASSIGN_GIVEN, else NULL
    const MixtureParams* p,
    const _Shared* sh,
    double* work,                  # scratch, _block_work_size(p, rows, X is float32) doubles
    double* stats,                 # INOUT as accumulate_rows
) noexcept nogil:
    """A chunk's responsibilities (E-step or supplied), then its moments."""
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components
    cdef double* cols = work                   # column path: the transposed chunk, float64
    cdef floating* Y = <floating*>work         # block path: in X's precision
    cdef double* dens = work + rows * _block_width(p)
    cdef double* moments_region = dens + rows * n_comp
    cdef floating* moments = <floating*>moments_region
    cdef double* tmp = moments_region + n_comp * _moments_width(p)
    cdef float* single = _single_scratch(p, work, rows)
    if floating is float:
        if _block_chunks(p) and not _single_products(p):
            _accumulate_chunk(_widened_chunk(X, rows, p, work), rows, weight, given, p, sh,
                              work, stats)
            return
    # `dens` ends up holding the responsibilities times the weights, (K, rows);
    # zero-weight rows drop out entirely.
    if not _block_chunks(p):
        _transpose_chunk(X, rows, d, cols)
        if given != NULL:
            _weighted_given(given, p.ld_given_resp, weight, rows, n_comp, dens)
        else:
            _columns_log_densities(p, rows, cols, cols + rows * d, tmp, tmp + rows, dens)
            stats[0] += _normalise_columns(p, dens, rows, weight, NULL, NULL, tmp)
        _columns_add_stats(p, rows, cols, weight, dens, cols + rows * d, tmp, stats)
        return
    if given != NULL:
        _weighted_given(given, p.ld_given_resp, weight, rows, n_comp, dens)
        _centre_for_moments(X, rows, p, sh, Y)
    else:
        _block_log_densities(X, rows, p, sh, Y, single, dens)
        stats[0] += _normalise_columns(p, dens, rows, weight, NULL, NULL, tmp)
    # Moments, by the statistic wanted (hard k-means assignments included).
    if p.stats == STATS_NONE:
        _add_first_moments(X, rows, p, dens, stats)
    elif _outer_moments(p):
        _add_outer_moments(p, rows, sh, Y + rows * _outer_offset(p), dens,
                           _resp_operand(dens, n_comp * rows, single, X), Y, moments, stats)
    elif p.stats == STATS_FULL:
        _add_component_scatters(X, rows, p, dens, Y, moments, single, stats)
    elif p.stats == STATS_TIED:
        _add_tied_scatter(X, rows, weight, p, dens, Y, moments, single, stats)
    else:  # DIAG: Y holds [x - c | (x - c)^2] (from the DIAG densities or _centre_for_moments)
        _add_diag_moments(rows, p, sh, dens, Y, moments, single, stats)


# Lanes fix the order of summation.  Chunk c belongs to lane c % n_lanes and is
# added to that lane's sums after the lane's earlier chunks; the lanes are added
# up in lane order at the end.  The lane count depends only on the size of the
# statistics, so threads (each owning whole lanes) change who adds, never the
# order of any addition, and need no synchronisation until the final merge.
# 32 lanes balance any thread count up to 32 within 1/32.  Large statistics get
# fewer lanes: every lane's sums are fresh zeroed pages each pass, and with
# D = 128, K = 8 (1 MB of sums) 16 lanes cost more in page faults and cache
# misses than the arithmetic (two threads ran only 1.1x faster than one).  The
# cap keeps lanes x statistics near 2 MB, with never fewer than 4 lanes.
cdef Py_ssize_t MAX_LANES = 32
cdef Py_ssize_t MIN_LANES = 4
cdef Py_ssize_t LANE_BUDGET_DOUBLES = 1 << 18


cdef Py_ssize_t lane_count(Py_ssize_t n_stats) noexcept nogil:
    # A power of two, so that 2, 4, 8 ... threads get equal numbers of lanes.
    cdef Py_ssize_t lanes = MAX_LANES
    while lanes > MIN_LANES and lanes * n_stats > LANE_BUDGET_DOUBLES:
        lanes //= 2
    return lanes


cdef inline Py_ssize_t _padded(Py_ssize_t n_doubles) noexcept nogil:
    # Per-thread buffers are this far apart: rounded up to a 64-byte cache line
    # plus one line, so two threads never write to the same line (false sharing)
    # whatever the alignment calloc gives.
    return ((n_doubles + 7) // 8) * 8 + 8


# Each thread of a pass gets its own scratch: an absurd request (the C API takes
# any int) must not become thousands of threads and buffers.  The cap is far
# above any core count this targets, so oversubscribed teams (which the thread
# tests use to vary the lane-to-thread mapping) still run as asked.
cdef int MAX_TEAM = 256


cdef inline int _clamp_threads(int n_threads, Py_ssize_t n_tasks) noexcept nogil:
    # Never more threads than tasks or MAX_TEAM, never fewer than one, and one
    # inside a caller's parallel region: nested teams would oversubscribe the cores.
    if omp_in_parallel() or n_threads < 1:
        return 1
    n_threads = min(n_threads, MAX_TEAM)
    if n_threads > n_tasks:
        return <int>max(n_tasks, 1)
    return n_threads


cdef inline const floating* _contiguous_chunk(
    const floating* X, Py_ssize_t rows, Py_ssize_t d, Py_ssize_t ldx, floating* packed,
) noexcept nogil:
    # The chunk paths read rows D apart; a strided chunk is packed first (one
    # copy of a cache-sized chunk, negligible beside the pass's arithmetic).
    cdef Py_ssize_t n, i
    if ldx == d:
        return X
    for n in range(rows):
        for i in range(d):
            packed[n * d + i] = X[n * ldx + i]
    return packed


cdef int accumulate_lanes(
    const floating* X,             # IN (n_samples, ldx)
    Py_ssize_t n_samples,
    Py_ssize_t ldx,
    const double* sample_weight,   # IN (n_samples,) or NULL
    const MixtureParams* p,        # given_resp (if any) starts at X's first row
    Py_ssize_t chunk_rows,
    Py_ssize_t first_chunk,        # global index of this call's first chunk
    int n_threads,
    double* lanes,                 # INOUT (lane_count(n_stats), lane_stride) lane sums
    Py_ssize_t lane_stride,        # >= params_stats_size(p)
) noexcept nogil:
    """Add a pass over X into lane sums the caller keeps across calls.

    Chunk j of this call is global chunk first_chunk + j and is added to lane
    (first_chunk + j) % n_lanes after that lane's earlier chunks.  Calls over
    consecutive row blocks whose sizes (all but the last) are multiples of
    chunk_rows, each starting where the previous one's chunks ended, thus fill
    the lanes with the bits of one pass over all the rows; reduce_lanes then
    gives that pass's statistics.

    Returns 0, -1 if scratch memory could not be allocated, -2 for chunk_rows
    < 1, ldx < D, first_chunk < 0 or lane_stride too small.
    """
    cdef Py_ssize_t n_stats = params_stats_size(p), n_work
    cdef Py_ssize_t n_lanes = lane_count(n_stats)
    cdef Py_ssize_t n_chunks, n_active, slot, chunk, row_start, row_end, d = p.n_features
    cdef Py_ssize_t n_packed
    cdef bint chunked = _chunked_pass(p)
    cdef bint single = sizeof(floating) == sizeof(float)
    cdef double* lane_sums
    cdef double* work
    cdef double* scratch
    cdef floating* packed = NULL
    cdef _Shared shared
    if chunk_rows < 1 or ldx < d or first_chunk < 0 or lane_stride < n_stats:
        return -2
    if n_samples <= 0:
        return 0
    # A chunk never holds more rows than X: sizes stay sane for a huge chunk_rows.
    chunk_rows = min(chunk_rows, n_samples)
    n_packed = 0 if ldx == d else chunk_rows * d
    n_work = _padded(_block_work_size(p, chunk_rows, single) if chunked else row_work_size(p))
    n_chunks = _n_chunks(n_samples, chunk_rows)
    n_active = min(n_lanes, n_chunks)
    n_threads = _clamp_threads(n_threads, n_active)
    if _prepare_shared(p, &shared, single and _single_products(p)) != 0:
        return -1
    work = <double*>calloc(n_threads * n_work, sizeof(double))
    if chunked and n_packed > 0:
        packed = <floating*>malloc(n_threads * n_packed * sizeof(floating))
    if work == NULL or (chunked and n_packed > 0 and packed == NULL):
        free(work)
        free(packed)
        _free_shared(&shared)
        return -1
    # Slot s takes this call's chunks s, s + n_lanes, ..., all of one lane.  Slots
    # go round-robin to threads (chunksize 1): they differ by at most one chunk,
    # and interleaving spreads the longer ones evenly.
    for slot in prange(n_active, num_threads=n_threads, schedule="static", chunksize=1):
        scratch = work + omp_get_thread_num() * n_work
        lane_sums = lanes + ((first_chunk + slot) % n_lanes) * lane_stride
        chunk = slot
        while chunk < n_chunks:
            row_start = chunk * chunk_rows
            row_end = min(row_start + chunk_rows, n_samples)
            if chunked:
                _accumulate_chunk(
                    _contiguous_chunk(X + row_start * ldx, row_end - row_start, d, ldx,
                                      packed + omp_get_thread_num() * n_packed),
                    row_end - row_start,
                    NULL if sample_weight == NULL else sample_weight + row_start,
                    NULL if p.given_resp == NULL else p.given_resp + row_start * p.ld_given_resp,
                    p, &shared, scratch, lane_sums,
                )
            else:
                accumulate_rows(X, ldx, row_start, row_end, sample_weight, p, scratch, lane_sums)
            # `chunk = chunk + ...`, never `chunk += ...`: inside prange Cython turns
            # an in-place add into a reduction over the team.
            chunk = chunk + n_lanes
    free(work)
    free(packed)
    _free_shared(&shared)
    return 0


cdef void reduce_lanes(
    const double* lanes,       # IN (n_lanes, lane_stride)
    Py_ssize_t n_lanes,
    Py_ssize_t lane_stride,
    Py_ssize_t n_stats,
    double* stats,             # OUT (n_stats,) the lanes added in lane order
) noexcept nogil:
    # Untouched lanes hold zeros, and s + 0.0 == s bitwise (the sum starts at +0.0,
    # so it is never -0.0): adding them changes nothing.
    cdef Py_ssize_t lane, i
    memset(stats, 0, n_stats * sizeof(double))
    for lane in range(n_lanes):
        for i in range(n_stats):
            stats[i] += lanes[lane * lane_stride + i]


cdef int accumulate_stats(
    const floating* X,             # IN (n_samples, ldx)
    Py_ssize_t n_samples,
    Py_ssize_t ldx,
    const double* sample_weight,   # IN (n_samples,) or NULL
    const MixtureParams* p,
    Py_ssize_t chunk_rows,
    int n_threads,
    double* stats,                 # OUT params_stats_size(p) doubles, overwritten
) noexcept nogil:
    """One pass over X, its lanes kept here.

    Returns as accumulate_lanes.
    """
    cdef Py_ssize_t n_stats = params_stats_size(p)
    cdef Py_ssize_t n_lanes = lane_count(n_stats), lane_stride = _padded(n_stats)
    cdef double* lanes
    cdef int status
    if chunk_rows < 1 or ldx < p.n_features:
        return -2
    # Lanes padded apart: threads that own neighbouring lanes never share a cache line.
    lanes = <double*>calloc(n_lanes * lane_stride, sizeof(double))
    if lanes == NULL:
        return -1
    status = accumulate_lanes(X, n_samples, ldx, sample_weight, p, chunk_rows, 0, n_threads,
                              lanes, lane_stride)
    if status == 0:
        # Only the first min(n_lanes, chunks) lanes can hold anything.
        reduce_lanes(lanes, min(n_lanes, _n_chunks(n_samples, chunk_rows)), lane_stride,
                     n_stats, stats)
    free(lanes)
    return status


cdef void _score_chunk(
    const floating* X,         # IN (rows, D): the chunk
    Py_ssize_t rows,
    const MixtureParams* p,
    const _Shared* sh,
    double* scratch,           # scratch, _block_work_size(p, rows, X is float32) doubles
    double* log_prob_norm,     # OUT (rows,) or NULL
    double* resp,              # OUT (rows, K) or NULL
    int64_t* labels,           # OUT (rows,) or NULL
    double* log_dens,          # OUT (rows, ld_log_dens) unnormalised log-densities, or NULL
    Py_ssize_t ld_log_dens,
) noexcept nogil:
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components, n
    cdef double* dens = scratch + rows * _block_width(p)
    cdef double* tmp = dens + rows * n_comp + n_comp * _moments_width(p)
    cdef Py_ssize_t k
    if floating is float:
        if _blocked_density(p) and not _single_products(p):
            _score_chunk(_widened_chunk(X, rows, p, scratch), rows, p, sh, scratch,
                         log_prob_norm, resp, labels, log_dens, ld_log_dens)
            return
    if _blocked_density(p):
        _block_log_densities(
            X, rows, p, sh, <floating*>scratch, _single_scratch(p, scratch, rows), dens)
    else:
        _transpose_chunk(X, rows, d, scratch)
        _columns_log_densities(p, rows, scratch, scratch + rows * d, tmp, tmp + rows, dens)
    if log_dens != NULL:
        for n in range(rows):
            for k in range(n_comp):
                log_dens[n * ld_log_dens + k] = dens[k * rows + n]
        return
    _normalise_columns(p, dens, rows, NULL, labels, log_prob_norm, tmp)
    if resp != NULL:
        for n in range(rows):
            for k in range(n_comp):
                resp[n * n_comp + k] = dens[k * rows + n]


cdef inline Py_ssize_t _n_chunks(Py_ssize_t n_samples, Py_ssize_t chunk_rows) noexcept nogil:
    # (n - 1) // c + 1 rather than (n + c - 1) // c: no overflow for huge chunk_rows.
    return 0 if n_samples <= 0 else (n_samples - 1) // chunk_rows + 1


cdef int _rows_pass(
    const floating* X, Py_ssize_t n_samples, Py_ssize_t ldx, const MixtureParams* p,
    Py_ssize_t chunk_rows, int n_threads, double* log_prob_norm, double* resp,
    int64_t* labels, double* log_dens, Py_ssize_t ld_log_dens,
) noexcept nogil:
    # Rows are independent, so any schedule gives the same results.
    cdef Py_ssize_t n_work, n_chunks, chunk, row_start, n_rows, d = p.n_features
    cdef Py_ssize_t n_packed = 0 if ldx == d else min(chunk_rows, n_samples) * d
    cdef int thread
    cdef double* work
    cdef floating* packed = NULL
    cdef _Shared shared
    cdef bint single = sizeof(floating) == sizeof(float)
    if chunk_rows < 1 or ldx < d:
        return -2
    n_work = _padded(_block_work_size(p, min(chunk_rows, n_samples), single))
    n_chunks = _n_chunks(n_samples, chunk_rows)
    n_threads = _clamp_threads(n_threads, n_chunks)
    if _prepare_shared(p, &shared, single and _single_products(p)) != 0:
        return -1
    work = <double*>calloc(n_threads * n_work, sizeof(double))
    if n_packed > 0:
        packed = <floating*>malloc(n_threads * n_packed * sizeof(floating))
    if work == NULL or (n_packed > 0 and packed == NULL):
        free(work)
        free(packed)
        _free_shared(&shared)
        return -1
    for chunk in prange(n_chunks, num_threads=n_threads, schedule="static"):
        thread = omp_get_thread_num()
        row_start = chunk * chunk_rows
        n_rows = min(row_start + chunk_rows, n_samples) - row_start
        _score_chunk(
            _contiguous_chunk(X + row_start * ldx, n_rows, d, ldx, packed + thread * n_packed),
            n_rows, p, &shared, work + thread * n_work,
            NULL if log_prob_norm == NULL else log_prob_norm + row_start,
            NULL if resp == NULL else resp + row_start * p.n_components,
            NULL if labels == NULL else labels + row_start,
            NULL if log_dens == NULL else log_dens + row_start * ld_log_dens,
            ld_log_dens,
        )
    free(work)
    free(packed)
    _free_shared(&shared)
    return 0


cdef int score_rows(
    const floating* X,         # IN (n_samples, ldx)
    Py_ssize_t n_samples,
    Py_ssize_t ldx,
    const MixtureParams* p,
    Py_ssize_t chunk_rows,
    int n_threads,
    double* log_prob_norm,     # OUT (n_samples,) log-likelihood of each row, or NULL
    double* resp,              # OUT (n_samples, K) responsibilities, or NULL
    int64_t* labels,           # OUT (n_samples,) most responsible component, or NULL
) noexcept nogil:
    """Per-row E-step outputs.

    Returns 0, -1 if scratch memory could not be allocated, -2 for chunk_rows < 1
    or ldx < D.
    """
    return _rows_pass(X, n_samples, ldx, p, chunk_rows, n_threads,
                      log_prob_norm, resp, labels, NULL, 0)


cdef int log_density_rows(
    const floating* X,         # IN (n_samples, ldx)
    Py_ssize_t n_samples,
    Py_ssize_t ldx,
    const MixtureParams* p,
    Py_ssize_t chunk_rows,
    int n_threads,
    double* log_dens,          # OUT (n_samples, ld_log_dens): log_norm_k - |(x - m_k) U_k|^2 / 2
    Py_ssize_t ld_log_dens,
) noexcept nogil:
    """Per-row, per-component log-densities (weights included), before normalisation.

    Returns as score_rows; -2 also for ld_log_dens < K.
    """
    if ld_log_dens < p.n_components:
        return -2
    return _rows_pass(X, n_samples, ldx, p, chunk_rows, n_threads,
                      NULL, NULL, NULL, log_dens, ld_log_dens)


cdef void normalise_rows(
    double* log_dens,          # INOUT (n_rows, ld): log-densities in, responsibilities out
    Py_ssize_t n_rows,
    Py_ssize_t n_components,
    Py_ssize_t ld,
    double* log_prob_norm,     # OUT (n_rows,) log-sum-exp of each row, or NULL
) noexcept nogil:
    """Row-wise log-sum-exp for log-densities the caller holds (e.g. an HMM's emissions)."""
    cdef MixtureParams gaussian
    cdef Py_ssize_t n, best
    cdef double value
    gaussian.n_components = n_components
    gaussian.assign = ASSIGN_FULL   # any Gaussian assignment: the normalisation is the same
    for n in range(n_rows):
        value = _normalise_row(&gaussian, log_dens + n * ld, &best)
        if log_prob_norm != NULL:
            log_prob_norm[n] = value


# ---------------------------------------------------------------------------
# Python entry points: validate shapes, allocate outputs, release the GIL.
# ---------------------------------------------------------------------------

cdef inline const double* _data_or_null(const double[::1] a) noexcept:
    if a is None or a.shape[0] == 0:
        return NULL
    return &a[0]


def _flat(a):
    return None if a is None else np.ascontiguousarray(a, dtype=np.float64).reshape(-1)


cdef MixtureParams _make_params(
    Py_ssize_t n_features, Py_ssize_t n_components, int assign, int stats,
    const double[::1] means, const double[::1] precision_factor,
    const double[::1] whitened_means, const double[::1] log_norm,
    const double[::1] tied_shift, const double[::1] given_resp,
) except *:
    cdef MixtureParams p
    cdef Py_ssize_t d = n_features, k = n_components
    # A Gaussian assignment's code is its covariance type's (spherical runs as DIAG).
    factor_len = factor_size(assign, k, d) if assign <= ASSIGN_DIAG else 0
    if not 0 <= assign <= ASSIGN_GIVEN or not 0 <= stats <= STATS_DIAG:
        raise ValueError(f"unknown assign={assign} or stats={stats}")
    if k < 1:
        raise ValueError("means must hold at least one component")
    if means is None or means.shape[0] != k * d:
        raise ValueError("means must have n_components * n_features entries")
    if factor_len and (precision_factor is None or precision_factor.shape[0] != factor_len):
        raise ValueError(f"precision_factor must have {factor_len} entries")
    if assign <= ASSIGN_DIAG and (log_norm is None or log_norm.shape[0] != k):
        raise ValueError("log_norm must have n_components entries")
    if assign == ASSIGN_TIED and (whitened_means is None or whitened_means.shape[0] != k * d):
        raise ValueError("whitened_means must have n_components * n_features entries")
    if stats == STATS_TIED and (tied_shift is None or tied_shift.shape[0] != d):
        raise ValueError("tied_shift must have n_features entries")
    p.n_features = d
    p.n_components = k
    p.assign = assign
    p.stats = stats
    p.means = _data_or_null(means)
    p.precision_factor = _data_or_null(precision_factor)
    p.whitened_means = _data_or_null(whitened_means)
    p.log_norm = _data_or_null(log_norm)
    p.tied_shift = _data_or_null(tied_shift)
    p.given_resp = _data_or_null(given_resp)
    p.ld_given_resp = k
    return p


def _checked_means(means, Py_ssize_t n_features, Py_ssize_t chunk_rows, int n_threads):
    """The checks both entry points share: run options, and means as (K, D) float64."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    means_arr = np.ascontiguousarray(means, dtype=np.float64)
    if means_arr.ndim != 2 or means_arr.shape[1] != n_features:
        raise ValueError("means must have shape (n_components, n_features)")
    return means_arr


def accumulate(
    const floating[:, ::1] X,
    sample_weight,
    int assign,
    int stats,
    means,
    precision_factor=None,
    log_norm=None,
    whitened_means=None,
    tied_shift=None,
    given_resp=None,
    Py_ssize_t chunk_rows=1024,
    int n_threads=1,
):
    """One fused pass over `X`: responsibilities and M-step sufficient statistics.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64, C-contiguous
    sample_weight : ndarray of shape (n_samples,) or None
        Non-negative row weights (None: all ones).
    assign, stats : int
        An ``Assign`` and a ``Stats`` value.
    means : ndarray of shape (n_components, n_features)
        Component means (centres for ``ASSIGN_NEAREST``); also the points the
        moments are taken about.
    precision_factor, log_norm, whitened_means, tied_shift, given_resp : ndarray or None
        As described on ``MixtureParams`` in ``_kernels.pxd``.
    chunk_rows : int
        Rows per chunk.  Results depend on it (it fixes the summation order),
        never on `n_threads`.
    n_threads : int
        OpenMP threads.

    Returns
    -------
    log_lik : float
        ``sum_n w_n log p(x_n)``; for ``ASSIGN_NEAREST`` the weighted inertia.
    counts : ndarray of shape (n_components,)
    first : ndarray of shape (n_components, n_features)
        ``sum_n w_n r_nk (x_n - means[k])``.
    second : ndarray or None
        (K, D, D), (D, D) or (K, D) as `stats` says; only the upper triangle
        of the square blocks is filled.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], k
    means_arr = _checked_means(means, d, chunk_rows, n_threads)
    k = means_arr.shape[0]
    cdef const double[::1] w = _flat(sample_weight)
    if w is not None and w.shape[0] != n:
        raise ValueError("sample_weight must have n_samples entries")
    if given_resp is not None and np.shape(given_resp) != (n, k):
        raise ValueError("given_resp must have shape (n_samples, n_components)")
    if assign == ASSIGN_GIVEN and given_resp is None:
        raise ValueError("ASSIGN_GIVEN needs given_resp")
    given = _flat(given_resp)
    cdef MixtureParams p = _make_params(
        d, k, assign, stats, _flat(means_arr), _flat(precision_factor),
        _flat(whitened_means), _flat(log_norm), _flat(tied_shift), given)
    cdef double[::1] out = np.empty(params_stats_size(&p), dtype=np.float64)
    cdef const double* w_ptr = _data_or_null(w)
    cdef int status = 0
    if n > 0:
        with nogil:
            status = accumulate_stats(&X[0, 0], n, d, w_ptr, &p, chunk_rows, n_threads, &out[0])
    else:
        out[:] = 0.0
    if status == -1:
        raise MemoryError("fastem: could not allocate the per-thread buffers")
    if status != 0:
        raise ValueError(f"fastem: accumulate_stats failed with status {status}")
    result = np.asarray(out)
    first_end = 1 + k + k * d
    second = result[first_end:]
    if stats == STATS_FULL:
        second = second.reshape(k, d, d)
    elif stats == STATS_TIED:
        second = second.reshape(d, d)
    elif stats == STATS_DIAG:
        second = second.reshape(k, d)
    else:
        second = None
    return float(result[0]), result[1:1 + k], result[1 + k:first_end].reshape(k, d), second


def score(
    const floating[:, ::1] X,
    int assign,
    means,
    precision_factor=None,
    log_norm=None,
    whitened_means=None,
    bint want_log_prob=True,
    bint want_resp=False,
    bint want_labels=False,
    Py_ssize_t chunk_rows=1024,
    int n_threads=1,
):
    """Per-row E-step outputs without accumulating anything.

    Parameters are as for :func:`accumulate`; ``want_*`` choose the outputs.

    Returns
    -------
    log_prob : ndarray of shape (n_samples,) or None
        ``log p(x_n)`` (``ASSIGN_NEAREST``: squared distance to the nearest mean).
    resp : ndarray of shape (n_samples, n_components) or None
    labels : ndarray of shape (n_samples,), int64, or None
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], k
    means_arr = _checked_means(means, d, chunk_rows, n_threads)
    k = means_arr.shape[0]
    if assign == ASSIGN_GIVEN:
        raise ValueError("score needs a Gaussian or nearest-mean assignment")
    cdef MixtureParams p = _make_params(
        d, k, assign, STATS_NONE, _flat(means_arr), _flat(precision_factor),
        _flat(whitened_means), _flat(log_norm), None, None)
    log_prob = np.empty(n, dtype=np.float64) if want_log_prob else None
    resp = np.empty((n, k), dtype=np.float64) if want_resp else None
    labels = np.empty(n, dtype=np.int64) if want_labels else None
    cdef double[::1] lp_view = log_prob
    cdef double[:, ::1] resp_view = resp
    cdef int64_t[::1] label_view = labels
    cdef double* lp_ptr = &lp_view[0] if want_log_prob and n > 0 else NULL
    cdef double* resp_ptr = &resp_view[0, 0] if want_resp and n > 0 else NULL
    cdef int64_t* label_ptr = &label_view[0] if want_labels and n > 0 else NULL
    cdef int status = 0
    if n > 0:
        with nogil:
            status = score_rows(&X[0, 0], n, d, &p, chunk_rows, n_threads, lp_ptr, resp_ptr, label_ptr)
    if status == -1:
        raise MemoryError("fastem: could not allocate the per-thread buffers")
    if status != 0:
        raise ValueError(f"fastem: score_rows failed with status {status}")
    return log_prob, resp, labels


def _vector_exp_log(x, bint array_functions=True):
    """exp and log of `x` with the kernels' own functions (for tests and reports).

    Parameters
    ----------
    x : array-like of float64
    array_functions : bool
        True: the array functions the kernels call, dispatched at load time to
        the AVX2 or baseline clone.  False: the same scalar formulas in a loop
        compiled for baseline x86-64 only.

    Returns
    -------
    exp_x, log_x : ndarray
        ``log_x`` is NaN where ``x <= 0`` or not finite (outside its domain).
    """
    cdef double[::1] values = np.array(x, dtype=np.float64).ravel()
    cdef double[::1] exps = np.array(values)
    cdef double[::1] logs = np.full(values.shape[0], np.nan)
    cdef Py_ssize_t i, n = values.shape[0]
    valid = np.flatnonzero(np.isfinite(values) & (np.asarray(values) > 0))
    cdef double[::1] positive = np.ascontiguousarray(np.asarray(values)[valid])
    cdef double[::1] positive_logs = np.empty(positive.shape[0])
    if array_functions:
        fastem_exp_array(&exps[0], n)
        if positive.shape[0]:
            fastem_log_array(&positive[0], &positive_logs[0], positive.shape[0])
    else:
        for i in range(n):
            exps[i] = fastem_exp(exps[i])
        for i in range(positive.shape[0]):
            positive_logs[i] = fastem_log(positive[i])
    np.asarray(logs)[valid] = positive_logs
    return np.asarray(exps), np.asarray(logs)


def _column_helpers_both_ways(a, b, c, double f, double m):
    """Each cloned column helper, and the same arithmetic as a loop built for baseline x86-64.

    For the test that the clone the loader picked (AVX2 on most machines) gives
    the bits of the baseline code.  `a`, `b`, `c`: float64 arrays of one length.

    Returns
    -------
    dict
        name -> (clone's result, baseline loop's result).
    """
    cdef double[::1] av = np.array(a, dtype=np.float64)
    cdef double[::1] bv = np.array(b, dtype=np.float64)
    cdef double[::1] cv = np.array(c, dtype=np.float64)
    cdef Py_ssize_t n = av.shape[0], i
    out = {}
    cdef double[::1] x1, x2, t1, t2
    cdef double s0, s1, s2, s3, t
    x1 = np.array(bv); x2 = np.array(bv)
    fastem_add_scaled(&x1[0], &av[0], f, n)
    for i in range(n):
        x2[i] += av[i] * f
    out["add_scaled"] = (np.asarray(x1), np.asarray(x2))
    x1 = np.empty(n); x2 = np.empty(n)
    fastem_minus(&x1[0], &av[0], m, n)
    for i in range(n):
        x2[i] = av[i] - m
    out["minus"] = (np.asarray(x1), np.asarray(x2))
    x1 = np.array(bv); x2 = np.array(bv)
    fastem_add_squares(&x1[0], &av[0], n)
    for i in range(n):
        x2[i] += av[i] * av[i]
    out["add_squares"] = (np.asarray(x1), np.asarray(x2))
    x1 = np.array(bv); x2 = np.array(bv)
    fastem_add_scaled_squared_diff(&x1[0], &av[0], m, f, n)
    for i in range(n):
        t = (av[i] - m) * f
        x2[i] += t * t
    out["add_scaled_squared_diff"] = (np.asarray(x1), np.asarray(x2))
    s0 = s1 = s2 = s3 = 0.0
    i = 0
    while i + 4 <= n:
        s0 += av[i] * bv[i] * cv[i]
        s1 += av[i + 1] * bv[i + 1] * cv[i + 1]
        s2 += av[i + 2] * bv[i + 2] * cv[i + 2]
        s3 += av[i + 3] * bv[i + 3] * cv[i + 3]
        i += 4
    while i < n:
        s0 += av[i] * bv[i] * cv[i]
        i += 1
    out["dot3"] = (fastem_dot3(&av[0], &bv[0], &cv[0], n), (s0 + s1) + (s2 + s3))
    x1 = np.array(av); x2 = np.array(av); t1 = np.array(cv); t2 = np.array(cv)
    fastem_exp_shifted_sum(&x1[0], &bv[0], &t1[0], n, 0)
    for i in range(n):
        x2[i] = fastem_exp(x2[i] - bv[i])
        t2[i] += x2[i]
    out["exp_shifted_sum"] = (np.concatenate([x1, t1]), np.concatenate([x2, t2]))
    x1 = np.array(bv); x2 = np.array(bv)
    fastem_max_into(&x1[0], &av[0], n)
    for i in range(n):
        x2[i] = av[i] if av[i] > x2[i] else x2[i]
    out["max_into"] = (np.asarray(x1), np.asarray(x2))
    x1 = np.array(av); x2 = np.array(av)
    fastem_scale_by(&x1[0], &bv[0], n)
    for i in range(n):
        x2[i] *= bv[i]
    out["scale_by"] = (np.asarray(x1), np.asarray(x2))
    return out


def simd_level():
    """Name of the instruction set the vector exp/log clones run with here ("avx2" or "baseline")."""
    return "avx2" if fastem_simd_level() == 1 else "baseline"
