"""Passes of a Gaussian mixture over rows with missing values (NaN).

Exact EM for the observed-data likelihood (Ghahramani & Jordan, 1994).  For a
row with observed coordinates o and missing m, under component k:

- its density is the marginal N(x_o; mu_o, Sigma_oo);
- the M-step reads the row completed by E[x_m | x_o, k] and adds the
  conditional covariance Cov[x_m | x_o, k] to the second moments.

Everything is worked out from the precision factor U (U U^T = Lambda =
inv(Sigma)), never by factorising Sigma_oo, so a row costs O(d_m^3 + D^2)
per component instead of O(d_o^3):

    Sigma_oo^-1 = Lambda_oo - Lambda_om Lambda_mm^-1 Lambda_mo
    log det Sigma_oo = log det Sigma + log det Lambda_mm
    E[x_m | x_o] = mu_m - Lambda_mm^-1 Lambda_mo (x_o - mu_o)
    Cov[x_m | x_o] = Lambda_mm^-1

With y = x - mu set to 0 on m and z = y U (the whitened row), y_o^T Lambda_oo
y_o = |z|^2 and h = Lambda_mo y_o = U_m z (rows m of U), so the quadratic
form is |z|^2 - h . v with v = Lambda_mm^-1 h, and E[x_m | x_o] = mu_m - v.
log det Lambda_mm (from its Cholesky factor) and Lambda_mm^-1 depend only on
the pattern and the component: each thread caches them per pattern for the
pass, so data with a few patterns (sensors that drop out together) pay for
them a few times, and data where every row has its own pattern pay
O(d_m^3) per row.  For diag and spherical models Lambda is diagonal:
E[x_m | x_o] = mu_m and the conditional variances are the component's own.

Layout.  A chunk's rows are grouped by pattern (a stable sort of their NaN
masks, by gap count first) and laid out one column per feature, so every
loop over rows vectorises as in the complete-data column path: y = x - mu_k
with zeros on m, its whitening, |z|^2, the log-sum-exp (our vectorised exp),
the first moments; only the gaps' corrections (h, v) go row by row, and
full and tied models take their second moments with one SYRK per component.

The statistics are the complete-data pass's (fastem.h's layout, moments about
the model's means, the tied scatter about the given centre), so the M-step is
the engine's.  Chunks, lanes and the fixed-order reduction are the engine's
too (_pass.pxd): chunk c of a pass goes to lane c mod n_lanes and rows are
added in a fixed order within it, so results do not depend on the thread count.
A row with no observed value adds nothing.
"""
from libc.math cimport INFINITY, log, sqrt
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset

from fastem._covariance_shapes cimport (
    COVARIANCE_DIAG, COVARIANCE_FULL, COVARIANCE_SPHERICAL, COVARIANCE_TIED,
    first_offset, second_offset, statistic_of, statistics_size,
)
from fastem._gmm cimport (
    STATUS_BAD_ARGUMENT, STATUS_NO_MEMORY, STATUS_NOT_FINITE, STATUS_OK, check_model, _threads,
    _tied_centre,
)
from fastem._kernels cimport default_chunk_rows
from fastem._pass cimport clamp_threads, lane_count, n_chunks, padded, run_chunks, run_lanes
from fastem._simd cimport (
    _dot2, _dot3, _sum, fastem_exp_shifted_sum, fastem_log, fastem_max_into, fastem_scale_by,
)
from scipy.linalg.cython_blas cimport dgemm, dsyrk


cdef extern from "_missing_columns.h" nogil:
    void fastem_whiten_columns(const double* Y, const double* U, int64_t d, int64_t n,
                               int64_t ld, double* Z, double* q)

cdef double LOG_2PI = 1.8378770664093453


cdef inline bint _is_nan(double v) noexcept nogil:
    return v != v


# ---------------------------------------------------------------------------
# The pass's shared context, the pattern cache and each thread's scratch
# ---------------------------------------------------------------------------

ctypedef struct _Pass:
    const void* X
    int64_t n_rows, ldx, chunk_rows
    const double* sample_weight      # or NULL
    int64_t k, d, words              # words: 64-bit words of a row's NaN mask
    int cov_type
    const double* weights            # (K,)
    const double* log_weights        # (K,)
    const double* means              # (K, D)
    const double* factor             # full (K, D, D) / tied (D, D) upper; diag, spherical (K, D)
    const double* log_factor         # full, tied (K,): log det U; diag, spherical (K, D): log U_ii
    const double* centre             # (D,) t: rows are whitened as (x - t) U, and the tied
                                     # scatter is taken about it
    const double* shifts             # (K, D) mu_k - t
    int64_t second                   # offset of the second moments in the statistics
    # per-row outputs (scoring), each NULL or (n_rows, ...)
    double* log_prob
    double* resp
    int64_t* labels
    double* log_dens
    double* filled
    double* std
    double* work                     # per-thread scratch, n_work doubles apart
    int64_t n_work
    int64_t n_slots, entry_size      # the pattern cache's slots per thread and their size
    int failed                       # set (never cleared) by a thread whose Cholesky failed


# A pattern's terms, for every component: one cache entry.  They depend on the
# pattern and the model only, so a thread computes them once per pass and any
# thread would get the same bits.
ctypedef struct _Terms:
    int64_t n_obs, n_miss
    int64_t* obs          # (D,) observed coordinates
    int64_t* miss         # (D,) missing coordinates, ascending
    double* constant      # (K,) log w_k - d_o/2 log 2 pi + log det U_k - log det R_k
    double* variance      # (K, D) diag: Var[x_m_a | k] at [k, a] for the a-th missing coordinate
    double* cond_cov      # (K or 1, D, D) Lambda_mm^-1 (dm x dm, row-major)


cdef inline int64_t _entry_size(int64_t k, int64_t d) noexcept nogil:
    return 2 + 2 * d + k + k * d + k * d * d


cdef inline void _entry(double* base, int64_t k, int64_t d, _Terms* e) noexcept nogil:
    cdef double* p = base + 2
    e.obs = <int64_t*>p
    p += d
    e.miss = <int64_t*>p
    p += d
    e.constant = p
    p += k
    e.variance = p
    p += k * d
    e.cond_cov = p


ctypedef struct _Work:
    uint64_t* masks       # (rows, words) NaN masks of the chunk's rows
    int64_t* order        # (rows,) the chunk's rows, grouped by pattern
    int64_t* spare        # (rows,) merge sort's other half
    uint64_t* sort_keys   # (rows,) one-word masks with their gap counts (_group_rows_one_word)
    int64_t* run_start    # (rows + 1,) where each run of one pattern starts (sorted positions)
    int64_t* run_terms    # (rows,) each run's offset in `arena`
    double* arena         # the chunk's runs' terms, copied out of the cache (_copy_terms)
    # Column layout: feature (or component) i of sorted position j at [i * rows + j].
    double* centred       # (D, rows) x - t where observed, 0 where missing
    double* observed      # (D, rows) 1 where observed, 0 where missing
    double* deviations    # (K, D, rows) xhat_k - mu_k, then scaled by sqrt(w r_k) (full)
    double* whitened      # (D, rows) a component's (x - mu_k) U_k on o
    double* posterior     # (K, rows) log w_k + log N(x_o | k), then the responsibilities
    double* log_p         # (rows,) log p(x_o)
    double* weight        # (rows,) the rows' weights (0: the row adds nothing)
    double* bar           # tied (D, rows): sqrt(w) (posterior mean of xhat - t)
    double* gaps          # (D, rows) h = U_m z of a run's rows, gap by gap
    double* solved        # (rows,) one gap's v = Lambda_mm^-1 h over a run's rows
    double* norms         # (rows,) |z|^2 of the current component, before the gaps' corrections
    double* exact         # (D, D) _observed_factor's factor
    int64_t* perm         # (D,) its order of the coordinates
    int64_t* counts       # (256,) the radix sort's buckets
    double* h             # (D,)
    double* v             # (D,)
    double* spare_d       # (D,)
    double* chol          # (D, D) R and R^-1: scratch of _precision_block
    double* inv_chol
    uint64_t* keys        # (n_slots, words) the cache's patterns
    int64_t* valid        # (n_slots,) 1 where a slot holds its key's terms
    double* entries       # (n_slots, entry_size)


cdef inline int64_t _run_size(const _Pass* P, int64_t dm) noexcept nogil:
    # a run's terms in the arena: n_obs, n_miss, miss (dm), constant (K), then
    # Lambda_mm^-1 (full K, tied 1, dm x dm) or the variances on m (diag K x dm)
    cdef int64_t k = P.k
    if P.cov_type == COVARIANCE_FULL:
        return 2 + dm + k + k * dm * dm
    if P.cov_type == COVARIANCE_TIED:
        return 2 + dm + k + dm * dm
    return 2 + dm + k + k * dm


cdef enum:
    # Doubles of run terms a chunk's segment holds (8 MB), unless one run needs more.
    ARENA_DOUBLES = 1 << 20


cdef inline int64_t _arena_size(const _Pass* P) noexcept nogil:
    # Enough for every row of a chunk to have its own pattern with D / 4 gaps,
    # up to ARENA_DOUBLES (at D = 256, K = 16 that would be 134 MB a thread),
    # and always for one run with every value missing; a chunk whose runs need
    # more is processed in several segments (_chunk).
    return max(min(P.chunk_rows * _run_size(P, (P.d + 3) // 4), <int64_t>ARENA_DOUBLES),
               _run_size(P, P.d))


cdef int64_t _work_size(const _Pass* P) noexcept nogil:
    cdef int64_t rows = P.chunk_rows, k = P.k, d = P.d
    return (rows * P.words + 4 * rows + 1 + rows + _arena_size(P)
            + 2 * rows * d + k * d * rows + d * rows + k * rows + 2 * rows
            + (d * rows if P.cov_type == COVARIANCE_TIED else 0) + d * rows + 2 * rows + 256
            + d * d + d
            + 3 * d + 2 * d * d + P.n_slots * (P.words + 1 + P.entry_size))


cdef void _carve(const _Pass* P, double* base, _Work* w) noexcept nogil:
    # int64 and uint64 are the size of a double: one buffer holds everything.
    cdef int64_t rows = P.chunk_rows, k = P.k, d = P.d
    cdef double* p = base
    w.masks = <uint64_t*>p
    p += rows * P.words
    w.order = <int64_t*>p
    p += rows
    w.spare = <int64_t*>p
    p += rows
    w.sort_keys = <uint64_t*>p
    p += rows
    w.run_start = <int64_t*>p
    p += rows + 1
    w.run_terms = <int64_t*>p
    p += rows
    w.arena = p
    p += _arena_size(P)
    w.centred = p
    p += d * rows
    w.observed = p
    p += d * rows
    w.deviations = p
    p += k * d * rows
    w.whitened = p
    p += d * rows
    w.posterior = p
    p += k * rows
    w.log_p = p
    p += rows
    w.weight = p
    p += rows
    w.bar = p
    if P.cov_type == COVARIANCE_TIED:
        p += d * rows
    w.gaps = p
    p += d * rows
    w.solved = p
    p += rows
    w.norms = p
    p += rows
    w.exact = p
    p += d * d
    w.perm = <int64_t*>p
    p += d
    w.counts = <int64_t*>p
    p += 256
    w.h = p
    p += d
    w.v = p
    p += d
    w.spare_d = p
    p += d
    w.chol = p
    p += d * d
    w.inv_chol = p
    p += d * d
    w.keys = <uint64_t*>p
    p += P.n_slots * P.words
    w.valid = <int64_t*>p
    p += P.n_slots
    w.entries = p


# ---------------------------------------------------------------------------
# Patterns: NaN masks, the grouping of a chunk's rows, the terms of a pattern
# ---------------------------------------------------------------------------

cdef inline void _mask(const floating* x, int64_t d, uint64_t* mask, int64_t words) noexcept nogil:
    cdef int64_t i
    for i in range(words):
        mask[i] = 0
    for i in range(d):
        if _is_nan(<double>x[i]):
            mask[i >> 6] |= (<uint64_t>1) << (i & 63)


cdef inline int _compare(const uint64_t* a, const uint64_t* b, int64_t words) noexcept nogil:
    cdef int64_t i
    for i in range(words):
        if a[i] != b[i]:
            return -1 if a[i] < b[i] else 1
    return 0


cdef inline int64_t _popcount(uint64_t v) noexcept nogil:
    cdef int64_t n = 0
    while v:
        v &= v - 1
        n += 1
    return n


cdef void _group_rows(_Work* w, int64_t rows, int64_t words, int64_t d) noexcept nogil:
    """w.order = 0..rows-1 stably sorted by NaN mask (bottom-up merge sort)."""
    cdef int64_t width = 1, lo, mid, hi, i, j, out
    cdef int64_t* src = w.order
    cdef int64_t* dst = w.spare
    cdef int64_t* tmp
    for i in range(rows):
        src[i] = i
    if words == 1:
        _group_rows_one_word(w, rows, d)
        return
    while width < rows:
        lo = 0
        while lo < rows:
            mid = min(lo + width, rows)
            hi = min(lo + 2 * width, rows)
            i, j, out = lo, mid, lo
            while i < mid and j < hi:
                # <= keeps equal masks in row order: the grouping is stable.
                if _compare(w.masks + src[i] * words, w.masks + src[j] * words, words) <= 0:
                    dst[out] = src[i]
                    i += 1
                else:
                    dst[out] = src[j]
                    j += 1
                out += 1
            while i < mid:
                dst[out] = src[i]
                i += 1
                out += 1
            while j < hi:
                dst[out] = src[j]
                j += 1
                out += 1
            lo = hi
        tmp = src
        src = dst
        dst = tmp
        width *= 2
    if src != w.order:
        memcpy(w.order, src, rows * sizeof(int64_t))


cdef void _group_rows_one_word(_Work* w, int64_t rows, int64_t d) noexcept nogil:
    # _group_rows for D <= 64, a mask being one word: a stable radix sort over
    # the bytes in which the keys differ (one or two for D <= 8).  Below 58
    # features the key also puts the number of missing values first: runs with
    # as many gaps follow each other, so the loops over the gaps keep their
    # trip counts and their branches stay predicted.
    cdef int64_t i, b, digit, total, shift
    cdef int64_t* src = w.order
    cdef int64_t* dst = w.spare
    cdef int64_t* tmp
    cdef uint64_t* key = w.sort_keys
    cdef uint64_t differ = 0
    for i in range(rows):
        key[i] = w.masks[i]
        if d < 58:
            key[i] |= (<uint64_t>_popcount(key[i])) << 58
        differ |= key[i] ^ key[0]
    for b in range(8):
        shift = 8 * b
        if ((differ >> shift) & 0xFF) == 0:
            continue   # every key has the same byte here: nothing to order
        for digit in range(256):
            w.counts[digit] = 0
        for i in range(rows):
            w.counts[(key[src[i]] >> shift) & 0xFF] += 1
        total = 0
        for digit in range(256):
            i = w.counts[digit]
            w.counts[digit] = total
            total += i
        for i in range(rows):
            digit = (key[src[i]] >> shift) & 0xFF
            dst[w.counts[digit]] = src[i]
            w.counts[digit] += 1
        tmp = src
        src = dst
        dst = tmp
    if src != w.order:
        memcpy(w.order, src, rows * sizeof(int64_t))


cdef int _precision_block(const double* U, int64_t d, const int64_t* miss, int64_t dm,
                          double* R, double* inverse, double* L, double* log_det_r) noexcept nogil:
    """R (lower Cholesky factor of Lambda_mm = U_m U_m^T) and Lambda_mm^-1, both dm x dm.

    `L` is dm x dm scratch (R's inverse).  Returns 0, or -1 if Lambda_mm is not
    numerically positive definite.
    """
    cdef int64_t a, b, c, j, start
    cdef double s
    log_det_r[0] = 0.0
    for a in range(dm):
        for b in range(a + 1):
            # rows m_a and m_b of U are zero left of their diagonals
            start = miss[a] if miss[a] > miss[b] else miss[b]
            s = 0.0
            for j in range(start, d):
                s += U[miss[a] * d + j] * U[miss[b] * d + j]
            for c in range(b):
                s -= R[a * dm + c] * R[b * dm + c]
            if a == b:
                if not s > 0.0:
                    return -1
                R[a * dm + a] = sqrt(s)
                log_det_r[0] += log(R[a * dm + a])
            else:
                R[a * dm + b] = s / R[b * dm + b]
    # L = R^-1 (lower), column by column by forward substitution.
    for b in range(dm):
        for a in range(b):
            L[a * dm + b] = 0.0
        for a in range(b, dm):
            s = 1.0 if a == b else 0.0
            for c in range(b, a):
                s -= R[a * dm + c] * L[c * dm + b]
            L[a * dm + b] = s / R[a * dm + a]
    # Lambda_mm^-1 = L^T L: entry (a, b) sums L[c, a] L[c, b] over c >= max(a, b).
    for a in range(dm):
        for b in range(a + 1):
            s = 0.0
            for c in range(a, dm):
                s += L[c * dm + a] * L[c * dm + b]
            inverse[a * dm + b] = s
            inverse[b * dm + a] = s
    return 0


cdef int _compute_terms(const _Pass* P, const uint64_t* mask, _Work* w, _Terms* e) noexcept nogil:
    """Fill the entry `e` for the pattern `mask`.  Returns 0, or -1 if some
    Lambda_mm is not numerically positive definite."""
    cdef int64_t k = P.k, d = P.d, c, a, i, dm
    cdef double log_det_r = 0.0, s, base, f
    cdef const double* U
    e.n_obs = 0
    e.n_miss = 0
    for i in range(d):
        if (mask[i >> 6] >> (i & 63)) & 1:
            e.miss[e.n_miss] = i
            e.n_miss += 1
        else:
            e.obs[e.n_obs] = i
            e.n_obs += 1
    dm = e.n_miss
    base = -0.5 * <double>e.n_obs * LOG_2PI
    for c in range(k):
        if P.cov_type == COVARIANCE_FULL or P.cov_type == COVARIANCE_TIED:
            U = P.factor + (c * d * d if P.cov_type == COVARIANCE_FULL else 0)
            if P.cov_type == COVARIANCE_FULL or c == 0:
                if _precision_block(U, d, e.miss, dm, w.chol, e.cond_cov + c * d * d,
                                    w.inv_chol, &log_det_r) != 0:
                    return -1
            e.constant[c] = (P.log_weights[c] + base
                             + P.log_factor[c if P.cov_type == COVARIANCE_FULL else 0] - log_det_r)
        else:
            s = 0.0
            for a in range(e.n_obs):
                s += P.log_factor[c * d + e.obs[a]]
            e.constant[c] = P.log_weights[c] + base + s
            for a in range(dm):
                f = P.factor[c * d + e.miss[a]]
                e.variance[c * d + a] = 1.0 / (f * f)
    return 0


cdef inline uint64_t _hash(const uint64_t* mask, int64_t words) noexcept nogil:
    cdef uint64_t h = 0x9E3779B97F4A7C15
    cdef int64_t i
    for i in range(words):
        h = (h ^ mask[i]) * <uint64_t>0xBF58476D1CE4E5B9
        h ^= h >> 31
    return h


cdef int _terms_of(const _Pass* P, _Work* w, const uint64_t* mask, _Terms* e) noexcept nogil:
    """The terms of `mask` from this thread's cache, computed on a miss (the
    slot's previous pattern is dropped).  Returns 0 or -1 as _compute_terms."""
    cdef int64_t slot = <int64_t>(_hash(mask, P.words) % <uint64_t>P.n_slots)
    cdef double* base = w.entries + slot * P.entry_size
    cdef uint64_t* key = w.keys + slot * P.words
    _entry(base, P.k, P.d, e)
    if w.valid[slot] and _compare(key, mask, P.words) == 0:
        e.n_obs = (<int64_t*>base)[0]
        e.n_miss = (<int64_t*>base)[1]
        return 0
    w.valid[slot] = 0
    if _compute_terms(P, mask, w, e) != 0:
        return -1
    (<int64_t*>base)[0] = e.n_obs
    (<int64_t*>base)[1] = e.n_miss
    memcpy(key, mask, P.words * sizeof(uint64_t))
    w.valid[slot] = 1
    return 0


# ---------------------------------------------------------------------------
# A segment of a chunk: runs of patterns, in column layout
# ---------------------------------------------------------------------------
# A chunk's rows, grouped by pattern, are laid out one column per feature (and
# per component), so the loops over rows vectorise as in the complete-data
# column path.  The terms of each run are copied from the thread's cache into
# the chunk's arena (the cache may drop a pattern while the chunk still needs
# it); a chunk whose runs' terms do not fit the arena is done in several
# segments of consecutive runs.

cdef enum:
    # Runs of fewer rows than this take their gaps' corrections row by row.
    SHORT_RUN = 8
    # Up to this many features the whitening and the second moments are our own
    # column loops (_missing_columns.h, _simd's dots); BLAS above.
    SMALL_D = 16

# A quadratic form |z|^2 - h.v below this share of |z|^2 has lost more than
# 2 of its 16 digits to the subtraction: it is recomputed (_observed_factor).
# Well-conditioned data rarely get there; strongly correlated features do.
cdef double FORM_KEPT = 1e-2


cdef inline int64_t _run_miss_count(const double* t) noexcept nogil:
    return (<const int64_t*>t)[1]


cdef inline int64_t _run_obs_count(const double* t) noexcept nogil:
    return (<const int64_t*>t)[0]


cdef inline const int64_t* _run_miss(const double* t) noexcept nogil:
    return <const int64_t*>(t + 2)


cdef inline const double* _run_constant(const double* t) noexcept nogil:
    return t + 2 + _run_miss_count(t)


cdef inline const double* _run_cond_cov(const _Pass* P, const double* t, int64_t c) noexcept nogil:
    # full: Lambda_mm^-1 of component c; tied: the shared one; diag: c's variances on m
    cdef int64_t dm = _run_miss_count(t)
    cdef const double* after = _run_constant(t) + P.k
    if P.cov_type == COVARIANCE_FULL:
        return after + c * dm * dm
    if P.cov_type == COVARIANCE_TIED:
        return after
    return after + c * dm


cdef inline double _run_variance(const _Pass* P, const double* t, int64_t c, int64_t a) noexcept nogil:
    # Var[x_m_a | x_o, k] for the a-th missing coordinate
    cdef int64_t dm = _run_miss_count(t)
    if P.cov_type == COVARIANCE_FULL or P.cov_type == COVARIANCE_TIED:
        return _run_cond_cov(P, t, c)[a * dm + a]
    return _run_cond_cov(P, t, c)[a]


cdef void _copy_terms(const _Pass* P, const _Terms* e, double* t) noexcept nogil:
    cdef int64_t dm = e.n_miss, k = P.k, d = P.d, c, a
    cdef double* after
    (<int64_t*>t)[0] = e.n_obs
    (<int64_t*>t)[1] = dm
    for a in range(dm):
        (<int64_t*>(t + 2))[a] = e.miss[a]
    memcpy(t + 2 + dm, e.constant, k * sizeof(double))
    after = t + 2 + dm + k
    if P.cov_type == COVARIANCE_FULL:
        for c in range(k):
            memcpy(after + c * dm * dm, e.cond_cov + c * d * d, dm * dm * sizeof(double))
    elif P.cov_type == COVARIANCE_TIED:
        memcpy(after, e.cond_cov, dm * dm * sizeof(double))
    else:
        for c in range(k):
            memcpy(after + c * dm, e.variance + c * d, dm * sizeof(double))


cdef inline double _form(double q) noexcept nogil:
    # The quadratic form as the density reads it.  Rounding can take
    # |z|^2 - h.v a hair below zero; inf - inf (a whitened row that overflowed)
    # means the row is as far from the component as the complete-data kernels
    # say, density 0, not at its mean.
    if q != q:
        return INFINITY
    return q if q > 0.0 else 0.0


cdef void _densities(const _Pass* P, _Work* w, int64_t j0, int64_t j1, int64_t ld) noexcept nogil:
    """Log-densities of the rows of runs j0..j1 (w.posterior) and their
    completed deviations (w.deviations)."""
    cdef int64_t k = P.k, d = P.d, r0 = w.run_start[j0], r1 = w.run_start[j1]
    cdef int64_t c, i, j, r, jr, a, b, dm, m
    cdef double s, f, f2, q
    cdef bint exact_ready
    cdef const double* X
    cdef const double* O
    cdef const double* U
    cdef const double* G
    cdef const double* t
    cdef const int64_t* miss
    cdef int64_t ra, rb
    cdef double* Y
    cdef double* Z
    cdef double* H
    cdef double* V
    cdef double* L
    cdef double* dev
    for c in range(k):
        dev = w.deviations + c * d * ld
        L = w.posterior + c * ld
        # y = x - mu_k where observed, 0 where missing
        for i in range(d):
            s = P.shifts[c * d + i]
            X = w.centred + i * ld
            O = w.observed + i * ld
            Y = dev + i * ld
            for r in range(r0, r1):
                Y[r] = X[r] - O[r] * s
        for r in range(r0, r1):
            L[r] = 0.0
        if P.cov_type == COVARIANCE_FULL or P.cov_type == COVARIANCE_TIED:
            U = P.factor + (c * d * d if P.cov_type == COVARIANCE_FULL else 0)
            # z = y U (U upper triangular), and |z|^2: our own column loops up to
            # SMALL_D features, where a BLAS call's packing costs more than the
            # arithmetic; one GEMM above
            if d <= SMALL_D:
                fastem_whiten_columns(dev + r0, U, d, r1 - r0, ld, w.whitened + r0, L + r0)
            else:
                _whiten_columns(w.whitened + r0, dev + r0, U, <int>(r1 - r0), <int>d, <int>ld)
                for j in range(d):
                    Z = w.whitened + j * ld
                    for r in range(r0, r1):
                        L[r] += Z[r] * Z[r]
            memcpy(w.norms + r0, L + r0, (r1 - r0) * sizeof(double))
        else:
            for i in range(d):
                f = P.factor[c * d + i]
                Y = dev + i * ld
                for r in range(r0, r1):
                    s = Y[r] * f
                    L[r] += s * s
        for jr in range(j0, j1):
            t = w.arena + w.run_terms[jr]
            dm = _run_miss_count(t)
            miss = _run_miss(t)
            f = _run_constant(t)[c]
            if dm == 0 or P.cov_type == COVARIANCE_DIAG or P.cov_type == COVARIANCE_SPHERICAL:
                # diag: E[x_m | x_o, k] = mu_m, so the deviations' zeros on m stand
                for r in range(w.run_start[jr], w.run_start[jr + 1]):
                    L[r] = f - 0.5 * L[r]
                continue
            G = _run_cond_cov(P, t, c)
            ra, rb = w.run_start[jr], w.run_start[jr + 1]
            if dm == 1:
                # one gap (the commonest pattern with gaps): no loops over gaps
                m = miss[0]
                f2 = G[0]
                Y = dev + m * ld
                for r in range(ra, rb):
                    s = 0.0
                    for j in range(m, d):
                        s += U[m * d + j] * w.whitened[j * ld + r]
                    L[r] -= s * (f2 * s)
                    Y[r] = -(f2 * s)
            elif rb - ra < SHORT_RUN:
                # a few rows: row by row, the loops over rows would be all overhead
                for r in range(ra, rb):
                    for a in range(dm):
                        m = miss[a]
                        s = 0.0
                        for j in range(m, d):
                            s += U[m * d + j] * w.whitened[j * ld + r]
                        w.h[a] = s
                    q = L[r]
                    for a in range(dm):
                        s = 0.0
                        for b in range(dm):
                            s += G[a * dm + b] * w.h[b]
                        q -= w.h[a] * s
                        dev[miss[a] * ld + r] = -s
                    L[r] = q
            else:
                # h = Lambda_mo y_o = U_m z; v = Lambda_mm^-1 h; y_o^T Sigma_oo^-1 y_o =
                # |z|^2 - h.v; E[x_m | x_o, k] - mu_m = -v.  Gap by gap over the run's rows.
                _run_corrections(U, G, miss, dm, d, dev, L, w, ra, rb, ld)
            # |z|^2 - h.v loses the digits their ratio says; where that is more than
            # 2 (strongly correlated features), the form is taken again from the
            # observed block's own factor, which subtracts nothing.
            exact_ready = False
            for r in range(ra, rb):
                if L[r] < FORM_KEPT * w.norms[r]:
                    if not exact_ready:
                        _observed_factor(U, d, miss, dm, w.exact, w.perm)
                        exact_ready = True
                    L[r] = _observed_form(w.exact, w.perm, d - dm, d, dev, ld, r)
            for r in range(ra, rb):
                L[r] = f - 0.5 * _form(L[r])


cdef void _run_corrections(const double* U, const double* G, const int64_t* miss, int64_t dm,
                           int64_t d, double* dev, double* L, _Work* w, int64_t ra, int64_t rb,
                           int64_t ld) noexcept nogil:
    # The gaps' corrections of a run of many rows, gap by gap, loops over the rows.
    cdef int64_t a, b, j, r, m
    cdef double s
    cdef double* H
    cdef double* V
    cdef double* Y
    cdef const double* Z
    for a in range(dm):
        m = miss[a]
        H = w.gaps + a * ld
        for r in range(ra, rb):
            H[r] = 0.0
        for j in range(m, d):
            s = U[m * d + j]
            Z = w.whitened + j * ld
            for r in range(ra, rb):
                H[r] += s * Z[r]
    for a in range(dm):
        V = w.solved
        for r in range(ra, rb):
            V[r] = 0.0
        for b in range(dm):
            s = G[a * dm + b]
            H = w.gaps + b * ld
            for r in range(ra, rb):
                V[r] += s * H[r]
        H = w.gaps + a * ld
        Y = dev + miss[a] * ld
        for r in range(ra, rb):
            L[r] -= H[r] * V[r]
            Y[r] = -V[r]


cdef void _observed_factor(const double* U, int64_t d, const int64_t* miss, int64_t dm,
                           double* M, int64_t* perm) noexcept nogil:
    """M (d, d): an upper factor of Lambda with the observed coordinates first.

    perm lists the observed coordinates, then the missing ones; the rows of U
    in that order are made upper triangular again by Householder reflections
    from the right (M = P U Q, so M M^T = P Lambda P^T).  Its leading block A
    (d_o x d_o) has A A^T = Sigma_oo^-1 exactly, without the subtraction of
    Lambda_om Lambda_mm^-1 Lambda_mo.
    """
    cdef int64_t i, j, p, a = 0, n_obs = 0
    cdef double norm, alpha, vv, s, f
    for i in range(d):
        if a < dm and miss[a] == i:
            a += 1
        else:
            perm[n_obs] = i
            n_obs += 1
    for a in range(dm):
        perm[n_obs + a] = miss[a]
    for p in range(d):
        for j in range(d):
            M[p * d + j] = U[perm[p] * d + j]
    i = d - 1
    while i > 0:
        # zero M[i, 0..i-1] with a reflection of columns 0..i; rows below i are
        # zero there already, so only rows 0..i change
        norm = 0.0
        for j in range(i + 1):
            norm += M[i * d + j] * M[i * d + j]
        norm = sqrt(norm)
        if norm > 0.0:
            alpha = -norm if M[i * d + i] >= 0.0 else norm
            # v = M[i, 0..i] - alpha e_i, kept in row i's place during the update
            vv = norm * norm - 2.0 * alpha * M[i * d + i] + alpha * alpha
            M[i * d + i] -= alpha
            if vv > 0.0:
                for p in range(i):
                    s = 0.0
                    for j in range(i + 1):
                        s += M[p * d + j] * M[i * d + j]
                    f = 2.0 * s / vv
                    for j in range(i + 1):
                        M[p * d + j] -= f * M[i * d + j]
            for j in range(i):
                M[i * d + j] = 0.0
            M[i * d + i] = alpha
        i -= 1


cdef double _observed_form(const double* M, const int64_t* perm, int64_t n_obs, int64_t d,
                           const double* dev, int64_t ld, int64_t r) noexcept nogil:
    # |A^T y_o|^2 with A the leading n_obs x n_obs block of _observed_factor's M
    cdef int64_t j, p
    cdef double s, q = 0.0
    for j in range(n_obs):
        s = 0.0
        for p in range(j + 1):
            s += M[p * d + j] * dev[perm[p] * ld + r]
        q += s * s
    return q


cdef void _posteriors(const _Pass* P, _Work* w, int64_t r0, int64_t r1, int64_t ld) noexcept nogil:
    """w.posterior: log-densities to responsibilities; w.log_p: log p(x_o).
    A row whose densities all underflow gets -inf and responsibilities 0."""
    cdef int64_t k = P.k, c, r, n = r1 - r0
    cdef double* top = w.log_p + r0
    cdef double* total = w.whitened + r0    # free once the densities are done
    for r in range(n):
        top[r] = -INFINITY
    for c in range(k):
        fastem_max_into(top, w.posterior + c * ld + r0, n)
    for r in range(n):
        if top[r] == -INFINITY:
            top[r] = 0.0   # exp(-inf - 0) = 0: the row's responsibilities come out 0
    for c in range(k):
        fastem_exp_shifted_sum(w.posterior + c * ld + r0, top, total, n, c == 0)
    for r in range(n):
        total[r] = 1.0 / total[r] if total[r] > 0.0 else 0.0
    for c in range(k):
        fastem_scale_by(w.posterior + c * ld + r0, total, n)
    for r in range(n):
        top[r] = top[r] - fastem_log(total[r]) if total[r] > 0.0 else -INFINITY


cdef inline void _whiten_columns(double* Z, const double* Y, const double* U, int n_rows, int d,
                                 int ld) noexcept nogil:
    """Z := Y U for Y, Z (n_rows, d) stored by columns ld apart, U (d, d) row-major."""
    cdef double one = 1.0, zero = 0.0
    # Column-major Y is (n_rows, d) with leading dimension ld, and row-major U
    # is column-major U^T: Z = Y (U^T)^T.
    dgemm(b"N", b"T", &n_rows, &d, &d, &one, <double*>Y, &ld, <double*>U, &d, &zero, Z, &ld)


cdef inline void _gram_columns(double* C, const double* A, int n_rows, int d, int ld) noexcept nogil:
    """Upper triangle of C (d, d) += A^T A for A's d columns of n_rows, ld apart."""
    cdef double one = 1.0
    # A is column-major (n_rows, d) with leading dimension ld; row-major upper
    # is column-major lower.
    dsyrk(b"L", b"T", &d, &n_rows, &one, <double*>A, &ld, &one, C, &d)


cdef void _add_statistics(const _Pass* P, _Work* w, int64_t j0, int64_t j1, int64_t ld,
                          double* stats) noexcept nogil:
    """Add the rows of runs j0..j1 (after _densities and _posteriors)."""
    cdef int64_t k = P.k, d = P.d, r0 = w.run_start[j0], r1 = w.run_start[j1]
    cdef int64_t c, i, j, r, jr, a, b, dm
    cdef double s, total, v
    cdef double* first = stats + first_offset(k)
    cdef double* second = stats + P.second
    cdef double* R
    cdef double* dev
    cdef double* S
    cdef double* root = w.whitened + r0   # free once the posteriors are done
    cdef const double* t
    cdef const double* G
    cdef const int64_t* miss
    for r in range(r0, r1):
        if w.weight[r] > 0.0:   # a zero weight removes a row, even at -inf density
            stats[0] += w.weight[r] * w.log_p[r]
    if P.cov_type == COVARIANCE_TIED:
        _tied_scatter(P, w, j0, j1, ld, second)
    for c in range(k):
        R = w.posterior + c * ld
        dev = w.deviations + c * d * ld
        for r in range(r0, r1):
            R[r] = w.weight[r] * R[r]
        stats[1 + c] += _sum_range(R, r0, r1)
        for i in range(d):
            first[c * d + i] += _dot2(R + r0, dev + i * ld + r0, r1 - r0)
        if P.cov_type == COVARIANCE_TIED:
            continue
        if P.cov_type == COVARIANCE_FULL:
            S = second + c * d * d
        else:
            S = second + c * d
        # the conditional covariances, once per run: (sum of w r_k) Lambda_mm^-1
        for jr in range(j0, j1):
            t = w.arena + w.run_terms[jr]
            dm = _run_miss_count(t)
            if dm == 0:
                continue
            total = _sum_range(R, w.run_start[jr], w.run_start[jr + 1])
            G = _run_cond_cov(P, t, c)
            miss = _run_miss(t)
            for a in range(dm):
                if P.cov_type == COVARIANCE_FULL:
                    for b in range(a, dm):
                        S[miss[a] * d + miss[b]] += total * G[a * dm + b]
                else:
                    S[miss[a]] += total * G[a]
        if P.cov_type == COVARIANCE_FULL and d <= SMALL_D:
            # few features: each entry one weighted dot over the rows (no scaled
            # copy, no BLAS call on a tiny output)
            for i in range(d):
                for j in range(i, d):
                    S[i * d + j] += _dot3(R + r0, dev + i * ld + r0, dev + j * ld + r0, r1 - r0)
        elif P.cov_type == COVARIANCE_FULL:
            for r in range(r0, r1):
                root[r - r0] = sqrt(R[r])
            for i in range(d):
                fastem_scale_by(dev + i * ld + r0, root, r1 - r0)
            _gram_columns(S, dev + r0, <int>(r1 - r0), <int>d, <int>ld)
        else:
            for i in range(d):
                S[i] += _dot3(R + r0, dev + i * ld + r0, dev + i * ld + r0, r1 - r0)


cdef inline double _sum_range(const double* a, int64_t r0, int64_t r1) noexcept nogil:
    return _sum(a + r0, r1 - r0)


cdef void _tied_scatter(const _Pass* P, _Work* w, int64_t j0, int64_t j1, int64_t ld,
                        double* S) noexcept nogil:
    # sum_k r_k [(xhat_k - t)(xhat_k - t)^T + Lambda_mm^-1] = e e^T + (on m, m)
    # sum_k r_k (b_k - e)(b_k - e)^T + Lambda_mm^-1, with e the posterior mean of
    # xhat - t and b_k = xhat_k - t on m.  sqrt(w) e goes to one SYRK.
    # (Before _add_statistics turns the responsibilities into w r_k.)
    cdef int64_t k = P.k, d = P.d, r0 = w.run_start[j0], r1 = w.run_start[j1]
    cdef int64_t c, i, j, r, jr, a, b, dm
    cdef double s, total, wt, da
    cdef double* bar = w.bar
    cdef double* root = w.whitened + r0
    cdef const double* t
    cdef const double* G
    cdef const int64_t* miss
    for i in range(d):
        memcpy(bar + i * ld + r0, w.centred + i * ld + r0, (r1 - r0) * sizeof(double))
    for jr in range(j0, j1):
        t = w.arena + w.run_terms[jr]
        dm = _run_miss_count(t)
        if dm == 0:
            continue
        miss = _run_miss(t)
        G = _run_cond_cov(P, t, 0)
        total = 0.0
        for r in range(w.run_start[jr], w.run_start[jr + 1]):
            wt = w.weight[r]
            total += wt
            for a in range(dm):
                s = 0.0
                for c in range(k):
                    s += w.posterior[c * ld + r] * (P.shifts[c * d + miss[a]]
                                                    + w.deviations[(c * d + miss[a]) * ld + r])
                bar[miss[a] * ld + r] = s
            if wt == 0.0:
                continue
            for c in range(k):
                s = wt * w.posterior[c * ld + r]
                if s == 0.0:
                    continue
                for a in range(dm):
                    w.v[a] = (P.shifts[c * d + miss[a]] + w.deviations[(c * d + miss[a]) * ld + r]
                              - bar[miss[a] * ld + r])
                for a in range(dm):
                    da = s * w.v[a]
                    for b in range(a, dm):
                        S[miss[a] * d + miss[b]] += da * w.v[b]
        for a in range(dm):
            for b in range(a, dm):
                S[miss[a] * d + miss[b]] += total * G[a * dm + b]
    for r in range(r0, r1):
        root[r - r0] = sqrt(w.weight[r])
    for i in range(d):
        fastem_scale_by(bar + i * ld + r0, root, r1 - r0)
    _gram_columns(S, bar + r0, <int>(r1 - r0), <int>d, <int>ld)


cdef void _write_outputs(const _Pass* P, _Work* w, const floating* X, int64_t start,
                         int64_t j0, int64_t j1, int64_t ld) noexcept nogil:
    """Per-row outputs of the rows of runs j0..j1 (an empty row: log p = 0, the
    weights as posterior, the mixture's mean and spread)."""
    cdef int64_t k = P.k, d = P.d, c, a, i, r, jr, n, best, dm
    cdef double mean, spread, dev
    cdef const double* t
    cdef const int64_t* miss
    cdef const floating* x
    cdef bint empty
    for jr in range(j0, j1):
        t = w.arena + w.run_terms[jr]
        dm = _run_miss_count(t)
        miss = _run_miss(t)
        empty = _run_obs_count(t) == 0
        for r in range(w.run_start[jr], w.run_start[jr + 1]):
            n = start + w.order[r]
            if empty:
                for c in range(k):
                    w.posterior[c * ld + r] = P.weights[c]
                w.log_p[r] = 0.0
            if P.log_prob != NULL:
                P.log_prob[n] = w.log_p[r]
            if P.resp != NULL:
                for c in range(k):
                    P.resp[n * k + c] = w.posterior[c * ld + r]
            if P.labels != NULL:
                best = 0
                for c in range(1, k):
                    if w.posterior[c * ld + r] > w.posterior[best * ld + r]:
                        best = c
                P.labels[n] = best
            if P.filled == NULL and P.std == NULL:
                continue
            x = X + w.order[r] * P.ldx
            if P.filled != NULL:
                for i in range(d):
                    P.filled[n * d + i] = <double>x[i]
            if P.std != NULL:
                for i in range(d):
                    P.std[n * d + i] = 0.0
            for a in range(dm):
                i = miss[a]
                mean = 0.0
                for c in range(k):
                    if w.posterior[c * ld + r] == 0.0:
                        continue   # its offsets may be inf or NaN (a row too far to whiten)
                    mean += w.posterior[c * ld + r] * (P.means[c * d + i]
                                                       + w.deviations[(c * d + i) * ld + r])
                if P.filled != NULL:
                    P.filled[n * d + i] = mean
                if P.std != NULL:
                    # law of total variance, about the mixture's mean (no cancellation)
                    spread = 0.0
                    for c in range(k):
                        if w.posterior[c * ld + r] == 0.0:
                            continue
                        dev = P.means[c * d + i] + w.deviations[(c * d + i) * ld + r] - mean
                        spread += w.posterior[c * ld + r] * (_run_variance(P, t, c, a) + dev * dev)
                    P.std[n * d + i] = sqrt(spread)


cdef void _log_densities_out(const _Pass* P, _Work* w, int64_t start, int64_t r0, int64_t r1,
                             int64_t ld) noexcept nogil:
    # unnormalised log-densities, before _posteriors overwrites them
    cdef int64_t c, r, n
    for r in range(r0, r1):
        n = start + w.order[r]
        for c in range(P.k):
            P.log_dens[n * P.k + c] = w.posterior[c * ld + r]


# ---------------------------------------------------------------------------
# One chunk
# ---------------------------------------------------------------------------

cdef inline void _chunk(const floating* X, _Pass* P, int thread, Py_ssize_t chunk,
                        double* lane_sums) noexcept nogil:
    cdef int64_t start = chunk * P.chunk_rows
    cdef int64_t rows = min(P.chunk_rows, P.n_rows - start), r, n, i, runs, j0, j1, used, size
    cdef int64_t d = P.d
    cdef bint fit = lane_sums != NULL
    cdef const floating* x
    cdef double v
    cdef _Work w
    cdef _Terms e
    _carve(P, P.work + thread * P.n_work, &w)
    for n in range(rows):
        _mask(X + (start + n) * P.ldx, d, w.masks + n * P.words, P.words)
    _group_rows(&w, rows, P.words, d)
    runs = 0
    for r in range(rows):
        n = w.order[r]
        if r == 0 or _compare(w.masks + n * P.words, w.masks + w.order[r - 1] * P.words,
                              P.words) != 0:
            w.run_start[runs] = r
            runs += 1
        x = X + (start + n) * P.ldx
        for i in range(d):
            v = <double>x[i]
            if _is_nan(v):
                w.centred[i * rows + r] = 0.0
                w.observed[i * rows + r] = 0.0
            else:
                w.centred[i * rows + r] = v - P.centre[i]
                w.observed[i * rows + r] = 1.0
        if fit:
            w.weight[r] = 1.0 if P.sample_weight == NULL else P.sample_weight[start + n]
    w.run_start[runs] = rows
    j0 = 0
    while j0 < runs:
        # a segment: as many runs as the arena holds
        used = 0
        j1 = j0
        while j1 < runs:
            n = w.order[w.run_start[j1]]
            if _terms_of(P, &w, w.masks + n * P.words, &e) != 0:
                P.failed = 1
                return
            size = _run_size(P, e.n_miss)
            if j1 > j0 and used + size > _arena_size(P):
                break
            w.run_terms[j1] = used
            _copy_terms(P, &e, w.arena + used)
            if fit and e.n_obs == 0:
                for r in range(w.run_start[j1], w.run_start[j1 + 1]):
                    w.weight[r] = 0.0   # a row with nothing observed adds nothing
            used += size
            j1 += 1
        _densities(P, &w, j0, j1, rows)
        if P.log_dens != NULL:
            _log_densities_out(P, &w, start, w.run_start[j0], w.run_start[j1], rows)
        _posteriors(P, &w, w.run_start[j0], w.run_start[j1], rows)
        if fit:
            _add_statistics(P, &w, j0, j1, rows, lane_sums)
        else:
            _write_outputs(P, &w, X + start * P.ldx, start, j0, j1, rows)
        j0 = j1


cdef void _chunk_f64(void* context, int thread, Py_ssize_t chunk, double* lane_sums) noexcept nogil:
    cdef _Pass* P = <_Pass*>context
    _chunk(<const double*>P.X, P, thread, chunk, lane_sums)


cdef void _chunk_f32(void* context, int thread, Py_ssize_t chunk, double* lane_sums) noexcept nogil:
    cdef _Pass* P = <_Pass*>context
    _chunk(<const float*>P.X, P, thread, chunk, lane_sums)


# ---------------------------------------------------------------------------
# Setting up a pass
# ---------------------------------------------------------------------------

cdef enum:
    # Bytes of pattern terms a thread may cache per pass: every pattern of a
    # few sensors' dropouts, or of D = 8 at random (256), fits; at high D,
    # where nearly every row has a pattern of its own, a slot is recomputed
    # per row anyway.  Pages are touched only for slots in use.
    CACHE_BYTES = 8 << 20
    MAX_SLOTS = 4096


cdef int _start(const void* X, int64_t n_rows, int64_t ldx, const GaussianModel* m,
                const double* centre, int n_threads, _Pass* P) noexcept nogil:
    """Fill P from the model (log weights, log determinants, shifts, the
    stacked factors) and allocate the threads' scratch.  `centre` is the tied
    scatter's (NULL: the mixture's mean).  Returns a status."""
    cdef int64_t k, d, c, i, j, n_derived
    cdef double* derived
    cdef double* t
    cdef int status = check_model(m)
    memset(P, 0, sizeof(_Pass))
    if status != STATUS_OK:
        return status
    if n_rows < 0 or ldx < m.n_features or (n_rows > 0 and X == NULL):
        return STATUS_BAD_ARGUMENT
    k = m.n_components
    d = m.n_features
    P.X = X
    P.n_rows = n_rows
    P.ldx = ldx
    P.k = k
    P.d = d
    P.words = (d + 63) // 64
    P.cov_type = m.covariance_type
    P.chunk_rows = min(default_chunk_rows(d), max(n_rows, 1))
    P.second = second_offset(k, d)
    P.weights = m.weights
    P.means = m.means
    # log weights (K), log factors (K, D), spherical's factor repeated (K, D),
    # the centre (D), the shifts (K, D)
    n_derived = k + 2 * k * d + d + k * d
    derived = <double*>malloc(n_derived * sizeof(double))
    if derived == NULL:
        return STATUS_NO_MEMORY
    P.log_weights = derived
    P.log_factor = derived + k
    P.factor = m.precisions_cholesky
    for c in range(k):
        # log(0) = -inf: a component of weight zero never takes responsibility
        derived[c] = log(m.weights[c])
        if m.covariance_type == COVARIANCE_FULL:
            derived[k + c] = 0.0
            for i in range(d):
                derived[k + c] += log(m.precisions_cholesky[c * d * d + i * d + i])
        elif m.covariance_type == COVARIANCE_TIED:
            if c == 0:
                derived[k] = 0.0
                for i in range(d):
                    derived[k] += log(m.precisions_cholesky[i * d + i])
        else:
            for i in range(d):
                if m.covariance_type == COVARIANCE_DIAG:
                    derived[k + c * d + i] = log(m.precisions_cholesky[c * d + i])
                else:
                    derived[k + c * d + i] = log(m.precisions_cholesky[c])
                    derived[k + k * d + c * d + i] = m.precisions_cholesky[c]
    if m.covariance_type == COVARIANCE_SPHERICAL:
        P.factor = derived + k + k * d
    t = derived + k + 2 * k * d
    if centre != NULL:
        memcpy(t, centre, d * sizeof(double))
    else:
        _tied_centre(m, t)
    P.centre = t
    P.shifts = t + d
    for c in range(k):
        for i in range(d):
            t[d + c * d + i] = m.means[c * d + i] - t[i]
    P.entry_size = _entry_size(k, d)
    P.n_slots = max(1, min(<int64_t>MAX_SLOTS, <int64_t>CACHE_BYTES // (8 * P.entry_size)))
    P.n_work = padded(_work_size(P))
    P.work = <double*>calloc(max(n_threads, 1) * P.n_work, sizeof(double))
    if P.work == NULL:
        free(derived)
        return STATUS_NO_MEMORY
    return STATUS_OK


cdef void _end(_Pass* P) noexcept nogil:
    free(<void*>P.log_weights)
    free(P.work)


cdef int missing_lanes(
    const floating* X,               # IN (n_rows, ldx); NaN marks a missing value
    int64_t n_rows,
    int64_t ldx,
    const double* sample_weight,     # IN (n_rows,) or NULL
    const GaussianModel* model,
    const double* tied_centre,       # IN (D,) the tied scatter's centre (tied only)
    int64_t first_chunk,             # global index of this call's first chunk
    int n_threads,
    double* lanes,                   # INOUT (lane_count(n_stats), lane_stride)
    int64_t lane_stride,
) noexcept nogil:
    """Add an E-step over rows with missing values into the caller's lanes.

    The statistics are those of the complete-data pass (fastem.h), taken about
    the model's means, with each row completed by its conditional expectations
    and the conditional covariances added; chunks of default_chunk_rows(D)
    rows go to lanes as in _kernels.accumulate_lanes, so calls over
    consecutive blocks add up bit for bit.  Rows with no observed value, or a
    zero weight, add nothing.  Returns a status: STATUS_NOT_FINITE if some
    Lambda_mm is not numerically positive definite.
    """
    cdef _Pass P
    cdef int64_t n_stats, chunks, n_lanes
    cdef int status
    if n_rows == 0:
        return STATUS_OK
    status = check_model(model)
    if status != STATUS_OK:
        return status
    n_stats = statistics_size(statistic_of(model.covariance_type), model.n_components,
                              model.n_features)
    n_lanes = lane_count(n_stats)
    if (first_chunk < 0 or lane_stride < n_stats or lanes == NULL
            or (model.covariance_type == COVARIANCE_TIED and tied_centre == NULL)):
        return STATUS_BAD_ARGUMENT
    chunks = n_chunks(n_rows, default_chunk_rows(model.n_features))
    n_threads = clamp_threads(_threads(n_threads), min(n_lanes, chunks))
    status = _start(X, n_rows, ldx, model, tied_centre, n_threads, &P)
    if status != STATUS_OK:
        return status
    P.sample_weight = sample_weight
    if floating is double:
        run_lanes(_chunk_f64, &P, chunks, first_chunk, n_lanes, n_threads, lanes, lane_stride)
    else:
        run_lanes(_chunk_f32, &P, chunks, first_chunk, n_lanes, n_threads, lanes, lane_stride)
    status = STATUS_NOT_FINITE if P.failed else STATUS_OK
    _end(&P)
    return status


cdef int missing_rows(
    const floating* X,               # IN (n_rows, ldx); NaN marks a missing value
    int64_t n_rows,
    int64_t ldx,
    const GaussianModel* model,
    int n_threads,
    double* log_prob,                # OUT (n_rows,) log p(x_o), 0 for an empty row; or NULL
    double* resp,                    # OUT (n_rows, K) posteriors (empty row: the weights); or NULL
    int64_t* labels,                 # OUT (n_rows,) the largest log w_k + log N(x_o | k); or NULL
    double* log_dens,                # OUT (n_rows, K) log w_k + log N(x_o | k); or NULL
    double* filled,                  # OUT (n_rows, D) X with E[x_m | x_o] in the gaps; or NULL
    double* std,                     # OUT (n_rows, D) sd of x_m given x_o, 0 where observed; or NULL
) noexcept nogil:
    """Per-row outputs over rows with missing values.  Returns a status."""
    cdef _Pass P
    cdef int64_t chunks
    cdef int status
    if n_rows == 0:
        return STATUS_OK
    chunks = n_chunks(n_rows, default_chunk_rows(model.n_features) if model != NULL else 1)
    n_threads = clamp_threads(_threads(n_threads), chunks)
    status = _start(X, n_rows, ldx, model, NULL, n_threads, &P)
    if status != STATUS_OK:
        return status
    P.log_prob = log_prob
    P.resp = resp
    P.labels = labels
    P.log_dens = log_dens
    P.filled = filled
    P.std = std
    if floating is double:
        run_chunks(_chunk_f64, &P, chunks, n_threads)
    else:
        run_chunks(_chunk_f32, &P, chunks, n_threads)
    status = STATUS_NOT_FINITE if P.failed else STATUS_OK
    _end(&P)
    return status


cdef double observed_weight(
    const floating* X, int64_t n_rows, int64_t ldx, int64_t n_features,
    const double* sample_weight, double start, int64_t* n_empty,
) noexcept nogil:
    """start plus the weights (NULL: ones) of the rows with an observed value,
    added in row order; n_empty (if not NULL) gains the rows without one."""
    cdef double total = start
    cdef int64_t n, i
    cdef bint seen
    for n in range(n_rows):
        seen = False
        for i in range(n_features):
            if not _is_nan(<double>X[n * ldx + i]):
                seen = True
                break
        if seen:
            total += 1.0 if sample_weight == NULL else sample_weight[n]
        elif n_empty != NULL:
            n_empty[0] += 1
    return total


cdef void observed_totals_rows(
    const floating* X, int64_t n_rows, int64_t ldx, int64_t n_features,
    const double* sample_weight, double* sums, double* weights, int64_t* counts,
) noexcept nogil:
    """Add the observed values (not NaN) of the rows, one row after another.

    sums[i] += w x_i and weights[i] += w for each observed x_i (w: the row's
    weight, NULL: 1); counts gains [rows with no observed value, NaN values,
    rows with no observed value and a positive weight].  Row by row, so
    running totals over blocks of rows do not depend on where blocks are cut.
    """
    cdef int64_t n, i, seen
    cdef double w, v
    for n in range(n_rows):
        w = 1.0 if sample_weight == NULL else sample_weight[n]
        seen = 0
        for i in range(n_features):
            v = <double>X[n * ldx + i]
            if _is_nan(v):
                counts[1] += 1
            else:
                sums[i] += v * w
                weights[i] += w
                seen = 1
        if not seen:
            counts[0] += 1
            if w > 0.0:
                counts[2] += 1
