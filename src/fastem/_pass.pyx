"""The parallel loops of a pass (see _pass.pxd): lanes for sums, chunks for rows."""
from cython.parallel cimport prange
from libc.string cimport memset

from fastem._openmp cimport omp_get_thread_num


cdef void run_lanes(
    chunk_function add_chunk,
    void* context,
    Py_ssize_t chunks,          # chunks of this call
    Py_ssize_t first_chunk,     # global index of this call's first chunk
    Py_ssize_t n_lanes,         # lane_count(n_stats)
    int n_threads,              # the team the caller sized its scratch for (clamp_threads)
    double* lanes,              # INOUT (n_lanes, lane_stride) lane sums
    Py_ssize_t lane_stride,
) noexcept nogil:
    """Add this call's chunk j into lane (first_chunk + j) % n_lanes, in chunk order.

    Slot s takes the chunks s, s + n_lanes, ..., all of one lane.  Slots go
    round-robin to threads (chunksize 1): they differ by at most one chunk, and
    interleaving spreads the longer ones evenly.  Calls over consecutive chunks
    (first_chunk advanced by each call's chunks) leave the lanes as one call
    over all of them would.
    """
    cdef Py_ssize_t slot, chunk, n_slots = min(n_lanes, chunks)
    cdef double* lane_sums
    for slot in prange(n_slots, num_threads=n_threads, schedule="static", chunksize=1):
        lane_sums = lanes + ((first_chunk + slot) % n_lanes) * lane_stride
        chunk = slot
        while chunk < chunks:
            add_chunk(context, omp_get_thread_num(), chunk, lane_sums)
            # `chunk = chunk + ...`, never `chunk += ...`: inside prange Cython turns
            # an in-place add into a reduction over the team.
            chunk = chunk + n_lanes


cdef void run_chunks(
    chunk_function score_chunk, void* context, Py_ssize_t chunks, int n_threads,
) noexcept nogil:
    # Per-row outputs: rows are independent, so any schedule gives the same results.
    cdef Py_ssize_t chunk
    for chunk in prange(chunks, num_threads=n_threads, schedule="static"):
        score_chunk(context, omp_get_thread_num(), chunk, NULL)


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
