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
order; see _pass.pxd).  Threads only change *who* computes a lane, so the
result is bitwise identical for any number of threads.  accumulate_lanes lets a
caller keep the lanes across calls over consecutive row blocks.

Where things are: this module chooses a chunk's path and runs the passes on
the driver of _pass; the paths themselves are in _columns (below 8 features),
_blocks (BLAS) and _rows (row by row); the fixed-order reductions and the SIMD
helpers in _simd.pxd; the sizes of every statistic in _covariance_shapes.pxd.
"""
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memset


from libc.stdint cimport int64_t

from fastem._blocks cimport (
    BLAS_MIN_FEATURES, _ChunkScratch, _Shared,
    _block_chunks, _block_log_densities, _block_moments, _blocked_density, _chunk_scratch,
    _chunked_pass, _free_shared, _prepare_shared, _single_products, _weighted_given,
    _widened_chunk,
)
from fastem._columns cimport (
    _columns_add_stats, _columns_log_densities, _normalise_columns, _transpose_chunk,
)
from fastem._rows cimport accumulate_rows, row_work_size
from fastem._covariance_shapes cimport statistics_size
from fastem._pass cimport (
    clamp_threads, contiguous_chunk, lane_count, n_chunks, padded,
    reduce_lanes, run_chunks, run_lanes,
)
from fastem._simd cimport fastem_simd_level


cdef Py_ssize_t params_stats_size(const MixtureParams* params) noexcept nogil:
    return statistics_size(params.stats, params.n_components, params.n_features)


cdef Py_ssize_t default_chunk_rows(Py_ssize_t n_features) noexcept nogil:
    # Rows per chunk, from the shape alone (it fixes the order of the sums): see
    # BLOCK_CHUNK_ROWS in _kernels.pxd.
    return BLOCK_CHUNK_ROWS if n_features >= BLAS_MIN_FEATURES else COLUMN_CHUNK_ROWS


cdef void _accumulate_chunk(
    const floating* X,             # IN (rows, D): the chunk
    Py_ssize_t rows,
    const double* weight,          # IN (rows,) or NULL
    const double* given,           # IN (rows, p.ld_given_resp) for ASSIGN_GIVEN, else NULL
    const MixtureParams* p,
    const _Shared* sh,
    double* work,                  # scratch, _chunk_scratch(p, rows, X is float32) doubles
    double* stats,                 # INOUT as accumulate_rows
) noexcept nogil:
    """A chunk's responsibilities (E-step or supplied), then its moments."""
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components
    cdef _ChunkScratch s
    _chunk_scratch(p, rows, sizeof(floating) == sizeof(float), work, &s)
    if floating is float:
        if _block_chunks(p) and not _single_products(p):
            _accumulate_chunk(_widened_chunk(X, rows, d, s.extra), rows, weight, given, p, sh,
                              work, stats)
            return
    # s.dens ends up holding the responsibilities times the weights, (K, rows);
    # zero-weight rows drop out entirely.
    if not _block_chunks(p):
        _transpose_chunk(X, rows, d, s.block)
        if given != NULL:
            _weighted_given(given, p.ld_given_resp, weight, rows, n_comp, s.dens)
        else:
            _columns_log_densities(p, rows, s.block, s.block + rows * d, s.row_tmp,
                                   s.row_tmp + rows, s.dens)
            stats[0] += _normalise_columns(p, s.dens, rows, weight, NULL, NULL, s.row_tmp)
        _columns_add_stats(p, rows, s.block, weight, s.dens, s.block + rows * d, s.row_tmp, stats)
        return
    if given != NULL:
        _weighted_given(given, p.ld_given_resp, weight, rows, n_comp, s.dens)
    else:
        _block_log_densities(X, rows, p, sh, <floating*>s.block, s.dens)
        stats[0] += _normalise_columns(p, s.dens, rows, weight, NULL, NULL, s.row_tmp)
    _block_moments(X, rows, weight, given != NULL, p, sh, &s, stats)


ctypedef struct _PassContext:
    # What a Gaussian chunk function needs, shared by the team (see _pass.pxd).
    const void* X                  # (n_samples, ldx) float32 or float64
    Py_ssize_t n_samples
    Py_ssize_t ldx
    Py_ssize_t chunk_rows
    const double* sample_weight
    const MixtureParams* p
    const _Shared* shared
    bint chunked                   # chunk kernels (else the row path)
    double* work                   # per-thread scratch, n_work doubles apart
    Py_ssize_t n_work
    void* packed                   # per-thread strided chunks packed, n_packed elements apart
    Py_ssize_t n_packed
    double* log_prob_norm          # per-row outputs of run_chunks (any may be NULL)
    double* resp
    int64_t* labels
    double* log_dens
    Py_ssize_t ld_log_dens


cdef inline void _add_chunk(
    const floating* X, const _PassContext* c, int thread, Py_ssize_t chunk, double* lane_sums,
) noexcept nogil:
    cdef const MixtureParams* p = c.p
    cdef Py_ssize_t row_start = chunk * c.chunk_rows
    cdef Py_ssize_t row_end = min(row_start + c.chunk_rows, c.n_samples)
    cdef double* scratch = c.work + thread * c.n_work
    if not c.chunked:
        accumulate_rows(X, c.ldx, row_start, row_end, c.sample_weight, p, scratch, lane_sums)
        return
    _accumulate_chunk(
        contiguous_chunk(X + row_start * c.ldx, row_end - row_start, p.n_features, c.ldx,
                         <floating*>c.packed + thread * c.n_packed),
        row_end - row_start,
        NULL if c.sample_weight == NULL else c.sample_weight + row_start,
        NULL if p.given_resp == NULL else p.given_resp + row_start * p.ld_given_resp,
        p, c.shared, scratch, lane_sums,
    )


cdef void _add_chunk_f64(void* context, int thread, Py_ssize_t chunk, double* lane_sums) noexcept nogil:
    cdef const _PassContext* c = <const _PassContext*>context
    _add_chunk(<const double*>c.X, c, thread, chunk, lane_sums)


cdef void _add_chunk_f32(void* context, int thread, Py_ssize_t chunk, double* lane_sums) noexcept nogil:
    cdef const _PassContext* c = <const _PassContext*>context
    _add_chunk(<const float*>c.X, c, thread, chunk, lane_sums)


cdef int _start_pass(
    const floating* X, Py_ssize_t n_samples, Py_ssize_t ldx, const MixtureParams* p,
    Py_ssize_t chunk_rows, bint chunked, int n_threads, _PassContext* c,
) noexcept nogil:
    # The context of a pass with n_threads (already clamped) threads: shared
    # arrays, per-thread scratch and packing room.  Returns 0 or -1 (no memory).
    cdef bint single = sizeof(floating) == sizeof(float)
    memset(c, 0, sizeof(_PassContext))
    c.X = X
    c.n_samples = n_samples
    c.ldx = ldx
    c.chunk_rows = chunk_rows
    c.p = p
    c.chunked = chunked
    c.n_packed = 0 if ldx == p.n_features or not chunked else chunk_rows * p.n_features
    c.n_work = padded(_chunk_scratch(p, chunk_rows, single, NULL, NULL) if chunked
                      else row_work_size(p))
    c.shared = <_Shared*>calloc(1, sizeof(_Shared))
    if c.shared == NULL:
        return -1
    # Only the block path reads the shared arrays (the column and row paths
    # take everything from the parameters).
    if (chunked and _block_chunks(p)
            and _prepare_shared(p, <_Shared*>c.shared, single and _single_products(p)) != 0):
        free(<void*>c.shared)
        c.shared = NULL
        return -1
    c.work = <double*>calloc(n_threads * c.n_work, sizeof(double))
    if c.n_packed > 0:
        c.packed = malloc(n_threads * c.n_packed * sizeof(floating))
    if c.work == NULL or (c.n_packed > 0 and c.packed == NULL):
        _end_pass(c)
        return -1
    return 0


cdef void _end_pass(_PassContext* c) noexcept nogil:
    free(c.work)
    free(c.packed)
    if c.shared != NULL:
        _free_shared(<_Shared*>c.shared)
        free(<void*>c.shared)


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
    (first_chunk + j) % n_lanes after that lane's earlier chunks (_pass.pxd).
    Calls over consecutive row blocks whose sizes (all but the last) are
    multiples of chunk_rows, each starting where the previous one's chunks
    ended, thus fill the lanes with the bits of one pass over all the rows;
    reduce_lanes then gives that pass's statistics.

    Returns 0, -1 if scratch memory could not be allocated, -2 for chunk_rows
    < 1, ldx < D, first_chunk < 0 or lane_stride too small.
    """
    cdef Py_ssize_t n_lanes = lane_count(params_stats_size(p)), chunks
    cdef _PassContext context
    if (chunk_rows < 1 or ldx < p.n_features or first_chunk < 0
            or lane_stride < params_stats_size(p)):
        return -2
    if n_samples <= 0:
        return 0
    # A chunk never holds more rows than X: sizes stay sane for a huge chunk_rows.
    chunk_rows = min(chunk_rows, n_samples)
    chunks = n_chunks(n_samples, chunk_rows)
    n_threads = clamp_threads(n_threads, min(n_lanes, chunks))
    if _start_pass(X, n_samples, ldx, p, chunk_rows, _chunked_pass(p), n_threads, &context) != 0:
        return -1
    context.sample_weight = sample_weight
    if floating is double:
        run_lanes(_add_chunk_f64, &context, chunks, first_chunk, n_lanes, n_threads,
                  lanes, lane_stride)
    else:
        run_lanes(_add_chunk_f32, &context, chunks, first_chunk, n_lanes, n_threads,
                  lanes, lane_stride)
    _end_pass(&context)
    return 0


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
    cdef Py_ssize_t n_lanes = lane_count(n_stats), lane_stride = padded(n_stats)
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
        reduce_lanes(lanes, min(n_lanes, n_chunks(n_samples, chunk_rows)), lane_stride,
                     n_stats, stats)
    free(lanes)
    return status


cdef void _score_chunk(
    const floating* X,         # IN (rows, D): the chunk
    Py_ssize_t rows,
    const MixtureParams* p,
    const _Shared* sh,
    double* work,              # scratch, _chunk_scratch(p, rows, X is float32) doubles
    double* log_prob_norm,     # OUT (rows,) or NULL
    double* resp,              # OUT (rows, K) or NULL
    int64_t* labels,           # OUT (rows,) or NULL
    double* log_dens,          # OUT (rows, ld_log_dens) unnormalised log-densities, or NULL
    Py_ssize_t ld_log_dens,
) noexcept nogil:
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components, n, k
    cdef _ChunkScratch s
    _chunk_scratch(p, rows, sizeof(floating) == sizeof(float), work, &s)
    if floating is float:
        if _blocked_density(p) and not _single_products(p):
            _score_chunk(_widened_chunk(X, rows, d, s.extra), rows, p, sh, work,
                         log_prob_norm, resp, labels, log_dens, ld_log_dens)
            return
    if _blocked_density(p):
        _block_log_densities(X, rows, p, sh, <floating*>s.block, s.dens)
    else:
        _transpose_chunk(X, rows, d, s.block)
        _columns_log_densities(p, rows, s.block, s.block + rows * d, s.row_tmp,
                               s.row_tmp + rows, s.dens)
    if log_dens != NULL:
        for n in range(rows):
            for k in range(n_comp):
                log_dens[n * ld_log_dens + k] = s.dens[k * rows + n]
        return
    _normalise_columns(p, s.dens, rows, NULL, labels, log_prob_norm, s.row_tmp)
    if resp != NULL:
        for n in range(rows):
            for k in range(n_comp):
                resp[n * n_comp + k] = s.dens[k * rows + n]


cdef inline void _score_one_chunk(
    const floating* X, const _PassContext* c, int thread, Py_ssize_t chunk,
) noexcept nogil:
    cdef Py_ssize_t row_start = chunk * c.chunk_rows, k = c.p.n_components
    cdef Py_ssize_t rows = min(row_start + c.chunk_rows, c.n_samples) - row_start
    _score_chunk(
        contiguous_chunk(X + row_start * c.ldx, rows, c.p.n_features, c.ldx,
                         <floating*>c.packed + thread * c.n_packed),
        rows, c.p, c.shared, c.work + thread * c.n_work,
        NULL if c.log_prob_norm == NULL else c.log_prob_norm + row_start,
        NULL if c.resp == NULL else c.resp + row_start * k,
        NULL if c.labels == NULL else c.labels + row_start,
        NULL if c.log_dens == NULL else c.log_dens + row_start * c.ld_log_dens,
        c.ld_log_dens,
    )


cdef void _score_chunk_f64(void* context, int thread, Py_ssize_t chunk, double* unused) noexcept nogil:
    cdef const _PassContext* c = <const _PassContext*>context
    _score_one_chunk(<const double*>c.X, c, thread, chunk)


cdef void _score_chunk_f32(void* context, int thread, Py_ssize_t chunk, double* unused) noexcept nogil:
    cdef const _PassContext* c = <const _PassContext*>context
    _score_one_chunk(<const float*>c.X, c, thread, chunk)


cdef int _rows_pass(
    const floating* X, Py_ssize_t n_samples, Py_ssize_t ldx, const MixtureParams* p,
    Py_ssize_t chunk_rows, int n_threads, double* log_prob_norm, double* resp,
    int64_t* labels, double* log_dens, Py_ssize_t ld_log_dens,
) noexcept nogil:
    cdef Py_ssize_t chunks
    cdef _PassContext context
    if chunk_rows < 1 or ldx < p.n_features:
        return -2
    if n_samples <= 0:
        return 0
    chunk_rows = min(chunk_rows, n_samples)
    chunks = n_chunks(n_samples, chunk_rows)
    n_threads = clamp_threads(n_threads, chunks)
    if _start_pass(X, n_samples, ldx, p, chunk_rows, True, n_threads, &context) != 0:
        return -1
    context.log_prob_norm = log_prob_norm
    context.resp = resp
    context.labels = labels
    context.log_dens = log_dens
    context.ld_log_dens = ld_log_dens
    if floating is double:
        run_chunks(_score_chunk_f64, &context, chunks, n_threads)
    else:
        run_chunks(_score_chunk_f32, &context, chunks, n_threads)
    _end_pass(&context)
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


def simd_level():
    """Name of the instruction set the vector exp/log clones run with here ("avx2" or "baseline")."""
    return "avx2" if fastem_simd_level() == 1 else "baseline"
