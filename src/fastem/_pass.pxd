# The chunk/lane/thread driver any model's pass reuses (Gaussian mixtures,
# k-means, an HMM's emissions): rows cut into chunks, chunks summed into lanes,
# lanes summed in a fixed order, threads clamped, per-thread scratch padded.
#
# Reproducibility: chunk c of a pass belongs to lane c % n_lanes and is added to
# that lane's sums after the lane's earlier chunks; the lanes are added up in
# lane order at the end.  The lane count depends only on the size of the
# statistics, so threads (each owning whole lanes) change who adds, never the
# order of any addition, and need no synchronisation until the final merge.
#
# Inline helpers here; the parallel loops (run_lanes, run_chunks) are in
# _pass.pyx and call the model's chunk function through a pointer, once per
# chunk (hundreds of rows), which costs nothing measurable.

from cython cimport floating

from fastem._openmp cimport omp_in_parallel


cdef enum:
    # 32 lanes balance any thread count up to 32 within 1/32.  Large statistics
    # get fewer lanes: every lane's sums are fresh zeroed pages each pass, and
    # with D = 128, K = 8 (1 MB of sums) 16 lanes cost more in page faults and
    # cache misses than the arithmetic (two threads ran only 1.1x faster than
    # one).  The cap keeps lanes x statistics near 2 MB, never below 4 lanes.
    MAX_LANES = 32
    MIN_LANES = 4
    LANE_BUDGET_DOUBLES = 1 << 18
    # Each thread of a pass gets its own scratch: an absurd request (the C API
    # takes any int) must not become thousands of threads and buffers.  The cap
    # is far above any core count this targets, so oversubscribed teams (which
    # the thread tests use to vary the lane-to-thread mapping) still run as asked.
    MAX_TEAM = 256


cdef inline Py_ssize_t lane_count(Py_ssize_t n_stats) noexcept nogil:
    # A power of two, so that 2, 4, 8 ... threads get equal numbers of lanes.
    cdef Py_ssize_t lanes = MAX_LANES
    while lanes > MIN_LANES and lanes * n_stats > LANE_BUDGET_DOUBLES:
        lanes //= 2
    return lanes


cdef inline Py_ssize_t padded(Py_ssize_t n_doubles) noexcept nogil:
    # Per-thread buffers are this far apart: rounded up to a 64-byte cache line
    # plus one line, so two threads never write to the same line (false sharing)
    # whatever the alignment calloc gives.
    return ((n_doubles + 7) // 8) * 8 + 8


cdef inline int clamp_threads(int n_threads, Py_ssize_t n_tasks) noexcept nogil:
    # Never more threads than tasks or MAX_TEAM, never fewer than one, and one
    # inside a caller's parallel region: nested teams would oversubscribe the cores.
    if omp_in_parallel() or n_threads < 1:
        return 1
    n_threads = min(n_threads, <int>MAX_TEAM)
    if n_threads > n_tasks:
        return <int>max(n_tasks, 1)
    return n_threads


cdef inline Py_ssize_t n_chunks(Py_ssize_t n_rows, Py_ssize_t chunk_rows) noexcept nogil:
    # (n - 1) // c + 1 rather than (n + c - 1) // c: no overflow for huge chunk_rows.
    return 0 if n_rows <= 0 else (n_rows - 1) // chunk_rows + 1


cdef inline const floating* contiguous_chunk(
    const floating* X, Py_ssize_t rows, Py_ssize_t d, Py_ssize_t ldx, floating* packed,
) noexcept nogil:
    # Chunk kernels read rows D apart; a strided chunk is packed first (one copy
    # of a cache-sized chunk, negligible beside the pass's arithmetic).
    cdef Py_ssize_t n, i
    if ldx == d:
        return X
    for n in range(rows):
        for i in range(d):
            packed[n * d + i] = X[n * ldx + i]
    return packed


# A model's work on one chunk: add chunk `chunk` into `lane_sums` (run_lanes),
# or write its per-row outputs (run_chunks, lane_sums NULL).  `thread` indexes
# the caller's per-thread scratch.
ctypedef void (*chunk_function)(
    void* context, int thread, Py_ssize_t chunk, double* lane_sums) noexcept nogil


cdef void run_lanes(
    chunk_function add_chunk, void* context, Py_ssize_t chunks, Py_ssize_t first_chunk,
    Py_ssize_t n_lanes, int n_threads, double* lanes, Py_ssize_t lane_stride,
) noexcept nogil

cdef void run_chunks(
    chunk_function score_chunk, void* context, Py_ssize_t chunks, int n_threads,
) noexcept nogil

cdef void reduce_lanes(
    const double* lanes, Py_ssize_t n_lanes, Py_ssize_t lane_stride, Py_ssize_t n_stats,
    double* stats,
) noexcept nogil
