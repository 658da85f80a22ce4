"""Forward-backward and Viterbi for hidden Markov models (nogil, OpenMP over sequences).

The estimator (fastem.hmm) gives the emission log-densities of every row,
l_t(k) = log p(x_t | state k), and gets back per-sequence log-likelihoods, the
state posteriors and the start and transition counts of the M-step.

Numerics of the default path ("log").  Each row's emissions are shifted by the
row's maximum m_t, e_t = exp(l_t - m_t) (one vectorised exp per entry), and the
forward and backward recursions are rescaled per row (Rabiner's scaling):

    a_t = (alpha_{t-1} A) * e_t,   c_t = sum_k a_t(k),   alpha_t = a_t / c_t,
    log p = sum_t (m_t + log c_t),
    v_{t+1} = e_{t+1} * beta_{t+1} / c_{t+1},   beta_t = A v_{t+1},   beta_{T-1} = 1,
    gamma_t = alpha_t * beta_t (normalised),   xi_sum = A * sum_t alpha_t (x) v_{t+1}.

No absolute log-alpha is ever stored: those reach -1e6 on long sequences and an
addition to them keeps only ~10 significant digits of the terms that matter,
which is how log-space transition counts drift (1e-6 relative at T = 2e5).
Here every stored quantity is O(1).  If a sequence's scale sum c_t falls below
1e-250 (mass stuck on states that cannot emit the row, e.g. a zero transition)
or anything stops being finite, that sequence alone is redone exactly in log
space (log-sum-exp over K^2 terms per step), as hmmlearn's "log" does.

"scaling" follows hmmlearn's implementation="scaling": e_t = exp(l_t) unshifted,
and a forward sum below 1e-300 is an error (hmmlearn's message).

Parallelism: sequences are independent.  Per-sequence outputs are written in
place; the counts use the engine's lanes (_pass.pxd): sequence s is added into
lane s % n_lanes, in sequence order, and the lanes are summed in lane order, so
the counts are bitwise identical for any n_threads.  One long sequence is
sequential (each step needs the previous one) and runs on one thread.
"""
from collections import namedtuple

import numpy as np

from libc.float cimport DBL_MAX
from libc.math cimport INFINITY, exp, log
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset

from fastem._gmm cimport STATUS_BAD_ARGUMENT, STATUS_NO_MEMORY, STATUS_OK, _threads
from fastem._pass cimport clamp_threads, lane_count, padded, reduce_lanes, run_chunks, run_lanes


cdef extern from "_hmm_steps.h" nogil:
    int64_t fastem_hmm_forward_rows(
        const double* start, const double* A, const double* e, int64_t rows, int64_t K,
        const double* prev, double* out, int keep, double* a, double* scales,
        double min_scale, const double* l, const unsigned char* fragile)
    int64_t fastem_hmm_backward_rows(
        const double* AT, const double* e, const double* scales, double* alpha, int64_t n,
        int64_t K, double* beta, double* block, double* xi, int stop)
    enum: FASTEM_HMM_BACK_BLOCK
    int fastem_hmm_normalise_row(double* v, int64_t K)
    void fastem_hmm_shifted_exps(const double* l, int64_t rows, int64_t K, double* e, double* shift)
    void fastem_hmm_log_terms(const double* shift, const double* scales, double* logs, int64_t rows)


cdef enum:
    # Emissions are exponentiated this many rows at a time: enough values for the
    # vectorised exp to run at full speed, and the forward-only pass (scoring)
    # needs no (T, K) buffer, only a block per thread.
    EXP_BLOCK_ROWS = 256
    # Internal: the rescaled recursion gave up on this sequence, redo it in log space.
    NEEDS_LOG_SPACE = 1

# A scale sum below this means the rescaled recursion lost the sequence's mass
# (1e-250 leaves 58 decades above the smallest normal double for the products
# that follow); hmmlearn's scaling implementation gives up below 1e-300.
cdef double LOG_PATH_MIN_SCALE = 1e-250
# Transitions below this do not count as refilling a state (see _prepare's fragile).
cdef double REFILL_MIN = 1e-200
cdef double SCALING_MIN_SUM = 1e-300

UNDERFLOW_MESSAGE = (
    "forward pass failed with underflow; consider using implementation='log' instead"
)
IMPLEMENTATIONS = {"log": HMM_LOG, "scaling": HMM_SCALING}
# FASTEM_UNDERFLOW of fastem.h (the HMM's own status; _em.Status lists the engine's).
UNDERFLOW_STATUS = STATUS_UNDERFLOW

ForwardBackward = namedtuple(
    "ForwardBackward", ["log_probs", "posteriors", "start_counts", "trans_counts"])
Viterbi = namedtuple("Viterbi", ["log_probs", "states"])


cdef struct Problem:
    const double* log_frameprob     # (T, K)
    const double* startprob         # (K,)
    const double* transmat          # (K, K)
    const double* transmat_t        # (K, K) its transpose, for the backward products
    const unsigned char* fragile    # (K,) states some state cannot refill (_prepare)
    const double* log_startprob     # (K,) for the log-space fallback and Viterbi
    const double* log_transmat      # (K, K)
    const int64_t* starts           # (S,) first row of each sequence
    const int64_t* lengths          # (S,)
    int64_t K
    int64_t n_rows
    bint scaling
    double* log_probs               # OUT (S,)
    double* posteriors              # OUT (T, K) or NULL; holds the alphas until the backward pass
    double* exps                    # (T, K) e_t, when posteriors (Viterbi: its lattice)
    double* scales                  # (T,) c_t, when posteriors
    double* shifts                  # (T,) m_t, when posteriors (computed with the exps)
    bint owns_buffers               # exps, scales and shifts were allocated here
    int64_t* states                 # OUT (T,) Viterbi
    double* scratch                 # per thread, scratch_stride apart
    Py_ssize_t scratch_stride
    int* status                     # (S,) per sequence


# Per-thread scratch: four K-vectors, the sequence's K x K sum, a block of exps
# (reused by the backward pass for its v and beta rows: 2 FASTEM_HMM_BACK_BLOCK
# <= EXP_BLOCK_ROWS), the block's row maxima and its scales.
cdef inline Py_ssize_t _scratch_size(int64_t K) noexcept nogil:
    return 4 * K + K * K + EXP_BLOCK_ROWS * (K + 2)


cdef void _shifted_exps(
    const double* l, int64_t rows, int64_t K, bint scaling,
    double* e,          # OUT (rows, K)
    double* shift,      # OUT (rows,) the maxima subtracted (0 for scaling)
) noexcept nogil:
    cdef int64_t r
    if scaling:
        # hmmlearn exponentiates unshifted; libm's exp keeps its subnormals and
        # overflow, so the underflow test sees the sums hmmlearn sees.
        for r in range(rows * K):
            e[r] = exp(l[r])
        memset(shift, 0, rows * sizeof(double))
        return
    fastem_hmm_shifted_exps(l, rows, K, e, shift)


cdef int _forward_scaled(Problem* p, Py_ssize_t s, double* work) noexcept nogil:
    """Rescaled forward pass of sequence s; alphas into the posteriors rows (if any).

    A block of rows at a time: their emission factors (one vectorised exp each),
    then the recursion over the block (_hmm_steps.h), then the log-likelihood's
    terms m_t + log c_t, added row by row in order.
    """
    cdef int64_t K = p.K, first = p.starts[s], n = p.lengths[s], t = 0, rows, done, k
    cdef bint keep = p.posteriors != NULL
    cdef double* ring = work                            # two alphas, when not kept
    cdef double* block = work + 4 * K + K * K
    cdef double* shift = block + EXP_BLOCK_ROWS * K
    cdef double* block_scales = shift + EXP_BLOCK_ROWS
    cdef double* e
    cdef double* out
    cdef double* scales
    cdef const double* prev = NULL
    cdef double log_prob = 0.0
    while t < n:
        rows = min(<int64_t>EXP_BLOCK_ROWS, n - t)
        if keep:
            # computed beforehand for all rows, in parallel (_exps_task)
            e = p.exps + (first + t) * K
            memcpy(shift, p.shifts + first + t, rows * sizeof(double))
        else:
            e = block
            _shifted_exps(p.log_frameprob + (first + t) * K, rows, K, p.scaling, e, shift)
        out = p.posteriors + (first + t) * K if keep else ring
        scales = p.scales + first + t if keep else block_scales
        # work + 2K: the two unscaled rows a_t (the backward's beta and v are not
        # in use yet).
        done = fastem_hmm_forward_rows(
            p.startprob, p.transmat, e, rows, K, prev, out, keep, work + 2 * K, scales,
            SCALING_MIN_SUM if p.scaling else LOG_PATH_MIN_SCALE,
            p.log_frameprob + (first + t) * K, NULL if p.scaling else p.fragile)
        if done < rows:
            # hmmlearn's scaling raises below its threshold; anything else (a
            # scale lost on the log path, an overflow) is redone in log space.
            if p.scaling and scales[done] < SCALING_MIN_SUM:
                return STATUS_UNDERFLOW
            return NEEDS_LOG_SPACE
        # The terms m_t + log c_t (over the shift array), added in row order.
        fastem_hmm_log_terms(shift, scales, shift, rows)
        for k in range(rows):
            log_prob += shift[k]
        # EXP_BLOCK_ROWS is even, so an unkept block ends on the ring's second row
        # and the next block's first row does not overwrite its prev.
        prev = out + (rows - 1) * K if keep else ring + ((rows - 1) & 1) * K
        t += rows
    p.log_probs[s] = log_prob
    return STATUS_OK


cdef int _backward_scaled(Problem* p, Py_ssize_t s, double* work) noexcept nogil:
    """Rescaled backward pass: posteriors over the alphas, the sequence's xi sum (without A)."""
    cdef int64_t K = p.K, first = p.starts[s], n = p.lengths[s], i
    cdef double* beta = work + 2 * K
    cdef double* xi = work + 4 * K
    # The forward's block of exps is free here (posteriors kept: the exps are in p.exps).
    cdef double* block = work + 4 * K + K * K
    cdef double* alpha = p.posteriors + first * K
    cdef bint stop = not p.scaling      # scaling, as hmmlearn: leave such a row as it is
    memset(xi, 0, K * K * sizeof(double))
    for i in range(K):
        beta[i] = 1.0
    if not fastem_hmm_normalise_row(alpha + (n - 1) * K, K) and stop:
        return NEEDS_LOG_SPACE
    if fastem_hmm_backward_rows(p.transmat_t, p.exps + first * K, p.scales + first, alpha, n, K,
                                beta, block, xi, stop) >= 0 and stop:
        return NEEDS_LOG_SPACE
    return STATUS_OK


cdef double _logsumexp(const double* v, int64_t n) noexcept nogil:
    cdef int64_t i
    cdef double top = v[0], acc = 0.0
    for i in range(1, n):
        if v[i] > top:
            top = v[i]
    if top == INFINITY or top == -INFINITY:
        return top
    for i in range(n):
        acc += exp(v[i] - top)
    return log(acc) + top


cdef void _log_space(Problem* p, Py_ssize_t s, double* work) noexcept nogil:
    """Sequence s exactly in log space (the fallback): log_probs[s], and if posteriors
    are wanted, its posteriors rows and its xi sum (A included) in work's K x K block."""
    cdef int64_t K = p.K, first = p.starts[s], n = p.lengths[s], t, i, j
    cdef bint keep = p.posteriors != NULL
    cdef double* prev = work
    cdef double* cur = work + K
    cdef double* buf = work + 2 * K
    cdef double* xi = work + 4 * K
    cdef const double* l
    cdef const double* la
    cdef const double* lb
    cdef double* out
    cdef double* swap
    cdef double log_prob, norm
    for t in range(n):
        l = p.log_frameprob + (first + t) * K
        out = p.posteriors + (first + t) * K if keep else cur
        for j in range(K):
            if t == 0:
                out[j] = p.log_startprob[j] + l[j]
            else:
                for i in range(K):
                    buf[i] = prev[i] + p.log_transmat[i * K + j]
                out[j] = _logsumexp(buf, K) + l[j]
        if keep:
            prev = out
        else:
            swap = prev
            prev = out
            cur = swap
    log_prob = _logsumexp(prev, K)
    p.log_probs[s] = log_prob
    if not keep:
        return
    # log-betas in this sequence's rows of the exps scratch (no longer needed).
    out = p.exps + (first + n - 1) * K
    for i in range(K):
        out[i] = 0.0
    for t in range(n - 2, -1, -1):
        l = p.log_frameprob + (first + t + 1) * K
        lb = p.exps + (first + t + 1) * K
        out = p.exps + (first + t) * K
        for i in range(K):
            for j in range(K):
                buf[j] = p.log_transmat[i * K + j] + l[j] + lb[j]
            out[i] = _logsumexp(buf, K)
    # xi_t(i, j) = exp(la_t(i) + log A(i, j) + l_{t+1}(j) + lb_{t+1}(j) - log p), summed
    # directly: each term is at most 1, and a plain sum loses less than hmmlearn's
    # running log-add-exp.
    memset(xi, 0, K * K * sizeof(double))
    for t in range(n - 1):
        la = p.posteriors + (first + t) * K
        l = p.log_frameprob + (first + t + 1) * K
        lb = p.exps + (first + t + 1) * K
        for i in range(K):
            for j in range(K):
                xi[i * K + j] += exp(la[i] + p.log_transmat[i * K + j] + l[j] + lb[j] - log_prob)
    for t in range(n):
        out = p.posteriors + (first + t) * K
        lb = p.exps + (first + t) * K
        for i in range(K):
            out[i] += lb[i]
        norm = _logsumexp(out, K)
        for i in range(K):
            out[i] = exp(out[i] - norm)


cdef void _exps_task(void* context, int thread, Py_ssize_t chunk, double* unused) noexcept nogil:
    # run_chunks' task: the emission factors and shifts of one block of rows.  Rows
    # are independent, so this is parallel even within one long sequence.
    cdef Problem* p = <Problem*>context
    cdef int64_t first = chunk * EXP_BLOCK_ROWS
    cdef int64_t rows = min(<int64_t>EXP_BLOCK_ROWS, p.n_rows - first)
    _shifted_exps(p.log_frameprob + first * p.K, rows, p.K, p.scaling,
                  p.exps + first * p.K, p.shifts + first)


cdef void _score_sequence(void* context, int thread, Py_ssize_t s, double* unused) noexcept nogil:
    # run_chunks' task: the forward pass of sequence s, log_probs[s] only.
    cdef Problem* p = <Problem*>context
    cdef double* work = p.scratch + thread * p.scratch_stride
    cdef int status = _forward_scaled(p, s, work)
    if status == NEEDS_LOG_SPACE:
        _log_space(p, s, work)
        status = STATUS_OK
    p.status[s] = status


cdef void _add_sequence(void* context, int thread, Py_ssize_t s, double* lane) noexcept nogil:
    # run_lanes' task: forward-backward of sequence s, its counts added into its lane
    # ([start counts (K) | transition counts (K, K)]) only once the sequence succeeded.
    cdef Problem* p = <Problem*>context
    cdef int64_t K = p.K, k
    cdef double* work = p.scratch + thread * p.scratch_stride
    cdef double* xi = work + 4 * K
    cdef const double* gamma0
    cdef bint rescaled = True
    cdef int status = _forward_scaled(p, s, work)
    if status == STATUS_OK:
        status = _backward_scaled(p, s, work)
    if status == NEEDS_LOG_SPACE:
        _log_space(p, s, work)
        rescaled = False
        status = STATUS_OK
    p.status[s] = status
    if status != STATUS_OK:
        return
    gamma0 = p.posteriors + p.starts[s] * K
    for k in range(K):
        lane[k] += gamma0[k]
    for k in range(K * K):
        # The one multiplication by A per sequence that turns the rescaled sum
        # of alpha_t (x) v_{t+1} into xi (the log-space sum already holds it).
        lane[K + k] += xi[k] * p.transmat[k] if rescaled else xi[k]


cdef void _viterbi_sequence(void* context, int thread, Py_ssize_t s, double* unused) noexcept nogil:
    # Max-product in log space over this sequence's rows of the lattice (p.exps), then the
    # backtrack.  Ties as hmmlearn 0.3.3: the last state is the first maximum of the last
    # row; going back, the largest index among equal maxima (its std::max over (value,
    # index) pairs), starting from (-inf, 0).
    cdef Problem* p = <Problem*>context
    cdef int64_t K = p.K, first = p.starts[s], n = p.lengths[s], t, i, j, best
    cdef const double* l
    cdef double* row
    cdef const double* before
    cdef double top, value
    for t in range(n):
        l = p.log_frameprob + (first + t) * K
        row = p.exps + (first + t) * K
        for i in range(K):
            if t == 0:
                row[i] = p.log_startprob[i] + l[i]
            else:
                before = row - K
                top = -INFINITY
                for j in range(K):
                    value = before[j] + p.log_transmat[j * K + i]
                    if value > top:
                        top = value
                row[i] = top + l[i]
    row = p.exps + (first + n - 1) * K
    best = 0
    for i in range(1, K):
        if row[i] > row[best]:
            best = i
    p.log_probs[s] = row[best]
    p.states[first + n - 1] = best
    for t in range(n - 2, -1, -1):
        row = p.exps + (first + t) * K
        top = -INFINITY
        j = best
        best = 0
        for i in range(K):
            value = row[i] + p.log_transmat[i * K + j]
            if value >= top:
                top = value
                best = i
        p.states[first + t] = best


cdef int _prepare(
    Problem* p, const double* log_frameprob, int64_t n_rows, int64_t K,
    const double* startprob, const double* transmat, const int64_t* lengths, int64_t S,
) noexcept nogil:
    # Checks the sizes, fills the row offsets and the logs of the parameters.
    cdef int64_t s, k, row = 0
    cdef int64_t* starts
    cdef double* logs
    cdef unsigned char* fragile
    memset(p, 0, sizeof(Problem))
    if (log_frameprob == NULL or startprob == NULL or transmat == NULL or lengths == NULL
            or K < 1 or S < 1 or n_rows < 1):
        return STATUS_BAD_ARGUMENT
    for s in range(S):
        if lengths[s] < 1 or lengths[s] > n_rows - row:
            return STATUS_BAD_ARGUMENT
        row += lengths[s]
    if row != n_rows:
        return STATUS_BAD_ARGUMENT
    starts = <int64_t*>malloc(S * sizeof(int64_t))
    logs = <double*>malloc((K + 2 * K * K) * sizeof(double))
    p.status = <int*>calloc(S, sizeof(int))
    p.starts = starts
    p.log_startprob = logs
    if starts == NULL or logs == NULL or p.status == NULL:
        return STATUS_NO_MEMORY
    row = 0
    for s in range(S):
        starts[s] = row
        row += lengths[s]
    # log(0) = -inf: a forbidden start or transition.
    for k in range(K):
        logs[k] = log(startprob[k]) if startprob[k] > 0 else -INFINITY
    for k in range(K * K):
        logs[K + k] = log(transmat[k]) if transmat[k] > 0 else -INFINITY
    p.log_transmat = logs + K
    p.transmat_t = logs + K + K * K
    for k in range(K):
        for s in range(K):
            logs[K + K * K + s * K + k] = transmat[k * K + s]
    # A state j is fragile when some state i moves into it with probability 0 or
    # below REFILL_MIN: its share of the forward message may then shrink without
    # bound and not be refilled from the others (a left-right model's states).
    # Elsewhere every step refills j with at least REFILL_MIN / K of the mass, so
    # a share of j lost to underflow (< 1e-250) never matters.
    fragile = <unsigned char*>calloc(K, sizeof(unsigned char))
    p.fragile = fragile
    if fragile == NULL:
        return STATUS_NO_MEMORY
    for k in range(K):
        for s in range(K):
            if transmat[s * K + k] < REFILL_MIN:
                fragile[k] = 1
    p.log_frameprob = log_frameprob
    p.startprob = startprob
    p.transmat = transmat
    p.lengths = lengths
    p.K = K
    p.n_rows = n_rows
    return STATUS_OK


cdef void _release(Problem* p) noexcept nogil:
    free(<void*>p.starts)
    free(<void*>p.log_startprob)
    free(<void*>p.fragile)
    free(p.status)
    if p.owns_buffers:
        free(p.exps)       # exps, scales and shifts are one allocation
    free(p.scratch)


cdef int _first_error(const Problem* p, int64_t S) noexcept nogil:
    # In sequence order, so the error reported does not depend on the threads.
    cdef int64_t s
    for s in range(S):
        if p.status[s] != STATUS_OK:
            return p.status[s]
    return STATUS_OK


cdef int forward_backward_f64(
    const double* log_frameprob, int64_t n_rows, int64_t n_components, const double* startprob,
    const double* transmat, const int64_t* lengths, int64_t n_sequences, int implementation,
    int n_threads, double* log_probs, double* posteriors, double* start_counts,
    double* trans_counts,
) noexcept nogil:
    # The C API's entry (fastem.h documents it): forward_backward_buffers with the
    # scratch allocated here.
    return forward_backward_buffers(log_frameprob, n_rows, n_components, startprob, transmat,
                                    lengths, n_sequences, implementation, n_threads, log_probs,
                                    posteriors, start_counts, trans_counts, NULL)


cdef int forward_backward_buffers(
    const double* log_frameprob,    # IN (n_rows, K)
    int64_t n_rows, int64_t n_components,
    const double* startprob,        # IN (K,)
    const double* transmat,         # IN (K, K)
    const int64_t* lengths,         # IN (S,) >= 1, summing to n_rows
    int64_t n_sequences,
    int implementation,             # HMM_LOG or HMM_SCALING
    int n_threads,                  # <= 0: OpenMP's default
    double* log_probs,              # OUT (S,)
    double* posteriors,             # OUT (n_rows, K), or NULL: forward pass only
    double* start_counts,           # OUT (K,) unless posteriors is NULL
    double* trans_counts,           # OUT (K, K) unless posteriors is NULL
    double* buffers,                # (n_rows, K + 2) scratch for the exps, scales and
                                    # shifts, or NULL to allocate them here
) noexcept nogil:
    cdef Problem p
    cdef int64_t K = n_components, S = n_sequences
    cdef Py_ssize_t n_stats = K + K * K, n_lanes = lane_count(K + K * K), lane_stride
    cdef double* lanes = NULL
    cdef double* sums = NULL
    cdef int n_threads_given
    cdef int status = _prepare(&p, log_frameprob, n_rows, K, startprob, transmat, lengths, S)
    if status == STATUS_OK and (log_probs == NULL or implementation not in (HMM_LOG, HMM_SCALING)
                                or (posteriors != NULL and (start_counts == NULL
                                                            or trans_counts == NULL))):
        status = STATUS_BAD_ARGUMENT
    if status != STATUS_OK:
        _release(&p)
        return status
    p.scaling = implementation == HMM_SCALING
    p.log_probs = log_probs
    p.posteriors = posteriors
    p.scratch_stride = padded(_scratch_size(K))
    n_threads_given = n_threads
    if posteriors == NULL:
        n_threads = clamp_threads(_threads(n_threads), S)
    else:
        n_threads = clamp_threads(_threads(n_threads), min(n_lanes, S))
        if buffers == NULL:
            p.owns_buffers = True
            buffers = <double*>malloc(n_rows * (K + 2) * sizeof(double))
        p.exps = buffers
        p.scales = buffers + n_rows * K
        p.shifts = p.scales + n_rows
        lane_stride = padded(n_stats)
        lanes = <double*>calloc(n_lanes * lane_stride, sizeof(double))
        sums = <double*>malloc(n_stats * sizeof(double))
    p.scratch = <double*>malloc(n_threads * p.scratch_stride * sizeof(double))
    if (p.scratch == NULL or (posteriors != NULL and (
            p.exps == NULL or p.scales == NULL or lanes == NULL or sums == NULL))):
        status = STATUS_NO_MEMORY
    elif posteriors == NULL:
        run_chunks(_score_sequence, &p, S, n_threads)
        status = _first_error(&p, S)
    else:
        run_chunks(_exps_task, &p, (n_rows - 1) // EXP_BLOCK_ROWS + 1,
                   clamp_threads(_threads(n_threads_given), (n_rows - 1) // EXP_BLOCK_ROWS + 1))
        run_lanes(_add_sequence, &p, S, 0, n_lanes, n_threads, lanes, lane_stride)
        status = _first_error(&p, S)
        if status == STATUS_OK:
            reduce_lanes(lanes, n_lanes, lane_stride, n_stats, sums)
            memcpy(start_counts, sums, K * sizeof(double))
            memcpy(trans_counts, sums + K, K * K * sizeof(double))
    free(lanes)
    free(sums)
    _release(&p)
    return status


cdef int viterbi_f64(
    const double* log_frameprob,    # IN (n_rows, K)
    int64_t n_rows, int64_t n_components,
    const double* startprob,        # IN (K,)
    const double* transmat,         # IN (K, K)
    const int64_t* lengths,         # IN (S,) >= 1, summing to n_rows
    int64_t n_sequences,
    int n_threads,
    double* log_probs,              # OUT (S,) log-probability of each path
    int64_t* states,                # OUT (n_rows,)
) noexcept nogil:
    cdef Problem p
    cdef int64_t K = n_components, S = n_sequences
    cdef int status = _prepare(&p, log_frameprob, n_rows, K, startprob, transmat, lengths, S)
    if status == STATUS_OK and (log_probs == NULL or states == NULL):
        status = STATUS_BAD_ARGUMENT
    if status == STATUS_OK:
        p.log_probs = log_probs
        p.states = states
        p.owns_buffers = True
        p.exps = <double*>malloc(n_rows * K * sizeof(double))
        if p.exps == NULL:
            status = STATUS_NO_MEMORY
        else:
            run_chunks(_viterbi_sequence, &p, S, clamp_threads(_threads(n_threads), S))
    _release(&p)
    return status


# ---------------------------------------------------------------------------
# Python wrappers: check, allocate, release the GIL, raise.
# ---------------------------------------------------------------------------

def _output(array, shape, name):
    """A caller's output or scratch array, checked; None: a new one."""
    if array is None:
        return np.empty(shape)
    if (not isinstance(array, np.ndarray) or array.dtype != np.float64 or array.shape != shape
            or not array.flags.c_contiguous or not array.flags.writeable):
        raise ValueError(f"{name} must be a writeable C-contiguous float64 array of shape {shape}")
    return array


def _check(log_frameprob, startprob, transmat, lengths):
    log_frameprob = np.ascontiguousarray(log_frameprob, dtype=np.float64)
    if log_frameprob.ndim != 2 or log_frameprob.shape[0] < 1 or log_frameprob.shape[1] < 1:
        raise ValueError(f"log_frameprob must be a non-empty 2-D array, got shape {log_frameprob.shape}")
    n_rows, k = log_frameprob.shape
    # max, not a comparison of every entry: no (T, K) temporary.  NaN and +inf
    # both make it fail; -inf (a state that cannot emit the row) is allowed.
    if not np.max(log_frameprob) < np.inf:
        raise ValueError("log_frameprob must not contain NaN or +inf")
    startprob = np.ascontiguousarray(startprob, dtype=np.float64)
    transmat = np.ascontiguousarray(transmat, dtype=np.float64)
    if startprob.shape != (k,) or transmat.shape != (k, k):
        raise ValueError(
            f"startprob must have shape ({k},) and transmat ({k}, {k}) for {k} states, "
            f"got {startprob.shape} and {transmat.shape}")
    for name, p in (("startprob", startprob), ("transmat", transmat)):
        if not np.all((p >= 0) & (p <= 1)):
            raise ValueError(f"{name} must hold probabilities in [0, 1]")
    lengths = np.array([n_rows] if lengths is None else lengths, dtype=np.int64, ndmin=1)
    if lengths.ndim != 1 or lengths.size < 1:
        raise ValueError("lengths must be a non-empty 1-D array")
    if np.any(lengths < 1):
        raise ValueError("lengths must all be positive")
    if lengths.sum() != n_rows:
        raise ValueError(f"lengths sum to {lengths.sum()}, but log_frameprob has {n_rows} rows")
    return log_frameprob, startprob, transmat, lengths


def _raise_for_status(int status):
    if status == STATUS_OK:
        return
    if status == STATUS_UNDERFLOW:
        raise ValueError(UNDERFLOW_MESSAGE)
    if status == STATUS_NO_MEMORY:
        raise MemoryError("fastem: could not allocate scratch memory")
    raise ValueError(f"fastem: invalid arguments (status {status})")


def forward_backward(log_frameprob, startprob, transmat, lengths, *, implementation="log",
                     bint want_posteriors=True, int n_threads=1, posteriors=None, buffers=None):
    """Forward-backward over the sequences of an HMM.

    Parameters
    ----------
    log_frameprob : ndarray of shape (T, K), float64
        log p(x_t | state k) of every row, the sequences one after another.  Read only.
    startprob : ndarray of shape (K,)
    transmat : ndarray of shape (K, K)
        Probabilities (rows summing to 1); zeros allowed.
    lengths : ndarray of shape (S,), int64
        Positive lengths of the sequences, summing to T (None: one sequence).
    implementation : {"log", "scaling"}
        "log": rescaled recursions with emissions shifted by each row's maximum and an
        exact log-space redo of any sequence that underflows (accurate, the default).
        "scaling": hmmlearn's scaling semantics; a forward sum below 1e-300 raises
        ValueError with hmmlearn's message.
    want_posteriors : bool
        False runs the forward pass only (scoring): posteriors and counts are None.
    posteriors : ndarray of shape (T, K), float64, C-contiguous, or None
        Where to write the posteriors (None: a new array).  With `buffers`, what a
        loop of E-steps passes every time: it saves allocating, and the kernel
        first-touching, two (T, K) arrays per call.
    buffers : ndarray of shape (T, K + 2), float64, C-contiguous, or None
        Scratch for the emission factors, scales and shifts (None: allocated here).
    n_threads : int
        OpenMP threads over sequences (<= 0: OpenMP's default).  One long sequence is
        sequential: the recursion needs each step before the next.  Results are bitwise
        identical for any n_threads.

    Returns
    -------
    ForwardBackward(log_probs, posteriors, start_counts, trans_counts)
        log_probs (S,); posteriors (T, K) with rows summing to 1; start_counts (K,) the
        summed first posterior rows; trans_counts (K, K) the summed
        P(s_t = i, s_t+1 = j | x).
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be 'log' or 'scaling', got {implementation!r}")
    log_frameprob, startprob, transmat, lengths = _check(log_frameprob, startprob, transmat, lengths)
    cdef int64_t n_rows = log_frameprob.shape[0], k = log_frameprob.shape[1], s = lengths.shape[0]
    cdef int impl = IMPLEMENTATIONS[implementation]
    log_probs = np.empty(s)
    start_counts = trans_counts = None
    cdef double* scratch = NULL
    cdef double[:, ::1] scratch_view
    if not want_posteriors:
        posteriors = None
    else:
        posteriors = _output(posteriors, (n_rows, k), "posteriors")
        if buffers is not None:
            scratch_view = _output(buffers, (n_rows, k + 2), "buffers")
            scratch = &scratch_view[0, 0]
        start_counts = np.empty(k)
        trans_counts = np.empty((k, k))
    cdef const double[:, ::1] l = log_frameprob
    cdef const double[::1] pi = startprob
    cdef const double[:, ::1] a = transmat
    cdef const int64_t[::1] n = lengths
    cdef double[::1] out = log_probs
    cdef double* post = NULL
    cdef double* starts = NULL
    cdef double* trans = NULL
    cdef double[:, ::1] view
    cdef double[::1] view1
    if want_posteriors:
        view = posteriors
        post = &view[0, 0]
        view1 = start_counts
        starts = &view1[0]
        view = trans_counts
        trans = &view[0, 0]
    cdef int status
    with nogil:
        status = forward_backward_buffers(&l[0, 0], n_rows, k, &pi[0], &a[0, 0], &n[0], s, impl,
                                          n_threads, &out[0], post, starts, trans, scratch)
    _raise_for_status(status)
    return ForwardBackward(log_probs, posteriors, start_counts, trans_counts)


def viterbi(log_frameprob, startprob, transmat, lengths, int n_threads=1):
    """Most likely state path of each sequence (hmmlearn 0.3.3's ties).

    Parameters as :func:`forward_backward`.  Sequences run in parallel; one long
    sequence is sequential.

    Returns
    -------
    Viterbi(log_probs, states)
        log_probs (S,) float64, the log-probability of each sequence's path;
        states (T,) int64.
    """
    log_frameprob, startprob, transmat, lengths = _check(log_frameprob, startprob, transmat, lengths)
    cdef int64_t n_rows = log_frameprob.shape[0], k = log_frameprob.shape[1], s = lengths.shape[0]
    log_probs = np.empty(s)
    states = np.empty(n_rows, dtype=np.int64)
    cdef const double[:, ::1] l = log_frameprob
    cdef const double[::1] pi = startprob
    cdef const double[:, ::1] a = transmat
    cdef const int64_t[::1] n = lengths
    cdef double[::1] out = log_probs
    cdef int64_t[::1] path = states
    cdef int status
    with nogil:
        status = viterbi_f64(&l[0, 0], n_rows, k, &pi[0], &a[0, 0], &n[0], s, n_threads,
                             &out[0], &path[0])
    _raise_for_status(status)
    return Viterbi(log_probs, states)
