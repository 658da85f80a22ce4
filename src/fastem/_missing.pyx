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
y_o = |z|^2 and h = Lambda_mo y_o = U_m z (rows m of U), so with Lambda_mm =
U_m U_m^T = R R^T (Cholesky) the quadratic form is |z|^2 - |R^-1 h|^2.
Lambda_mm, R and Lambda_mm^-1 depend only on the pattern and the component:
a chunk's rows are visited grouped by pattern (a stable sort of their NaN
masks) and those terms are computed once per run of equal patterns.  For
diag and spherical models Lambda is diagonal: E[x_m | x_o] = mu_m and the
conditional variances are the component's own.

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
)
from fastem._kernels cimport default_chunk_rows
from fastem._pass cimport clamp_threads, lane_count, n_chunks, padded, run_chunks, run_lanes
from fastem._simd cimport fastem_exp, fastem_log

cdef double LOG_2PI = 1.8378770664093453


cdef inline bint _is_nan(double v) noexcept nogil:
    return v != v


# ---------------------------------------------------------------------------
# The pass's shared context and each thread's scratch
# ---------------------------------------------------------------------------

ctypedef struct _Pass:
    const void* X
    bint single                      # X is float32
    int64_t n_rows, ldx, chunk_rows
    const double* sample_weight      # or NULL
    int64_t k, d, words              # words: 64-bit words of a row's NaN mask
    int cov_type
    const double* weights            # (K,)
    const double* log_weights        # (K,)
    const double* means              # (K, D)
    const double* factor             # full (K, D, D) / tied (D, D) upper; diag, spherical (K, D)
    const double* log_factor         # full, tied (K,): log det U; diag, spherical (K, D): log U_ii
    const double* tied_centre        # (D,) the tied scatter's centre (statistics only)
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
    int failed                       # set (never cleared) by a thread whose Cholesky failed


ctypedef struct _Work:
    uint64_t* masks       # (rows, words) NaN masks of the chunk's rows
    int64_t* order        # (rows,) the chunk's rows, grouped by pattern
    int64_t* spare        # (rows,) merge sort's other half
    int64_t* obs          # (D,) observed coordinates of the current pattern
    int64_t* miss         # (D,) missing coordinates
    int64_t n_obs, n_miss
    double* chol          # (K or 1, D, D): R, lower, R R^T = Lambda_mm (dm x dm, row-major)
    double* cond_cov      # (K or 1, D, D): Lambda_mm^-1 (dm x dm)
    double* constant      # (K,) log w_k - d_o/2 log 2 pi + log det U_k(o) - log det R_k
    double* shift_w       # tied (K, D): mu_k(o part) U;  (K, D) h of it: U_m (mu_k U)
    double* shift_h
    double* yhat          # (K, D) the completed row minus mu_k
    double* y             # (D,) x - mu on o, 0 on m
    double* z             # (D,) whitened
    double* h             # (D,)
    double* t             # (D,)
    double* logd          # (K,) log w_k + log N(x_o | k)
    double* r             # (K,) responsibilities
    double* bbar          # (D,) tied: the posterior mean of the completed row minus the centre
    double* inv_chol      # (D, D) scratch: R^-1


cdef int64_t _work_size(int64_t rows, int64_t k, int64_t d, int64_t words) noexcept nogil:
    return rows * words + 2 * rows + 2 * d + 2 * k * d * d + d * d + k + 3 * k * d + 5 * d + 2 * k


cdef void _carve(double* base, int64_t rows, int64_t k, int64_t d, int64_t words, _Work* w) noexcept nogil:
    # int64 and uint64 are the size of a double: one buffer holds everything.
    cdef double* p = base
    w.masks = <uint64_t*>p
    p += rows * words
    w.order = <int64_t*>p
    p += rows
    w.spare = <int64_t*>p
    p += rows
    w.obs = <int64_t*>p
    p += d
    w.miss = <int64_t*>p
    p += d
    w.chol = p
    p += k * d * d
    w.cond_cov = p
    p += k * d * d
    w.constant = p
    p += k
    w.shift_w = p
    p += k * d
    w.shift_h = p
    p += k * d
    w.yhat = p
    p += k * d
    w.y = p
    p += d
    w.z = p
    p += d
    w.h = p
    p += d
    w.t = p
    p += d
    w.bbar = p
    p += d
    w.inv_chol = p
    p += d * d
    w.logd = p
    p += k
    w.r = p


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


cdef inline int _compare(const uint64_t* masks, int64_t words, int64_t a, int64_t b) noexcept nogil:
    cdef int64_t i
    for i in range(words):
        if masks[a * words + i] != masks[b * words + i]:
            return -1 if masks[a * words + i] < masks[b * words + i] else 1
    return 0


cdef void _group_rows(_Work* w, int64_t rows, int64_t words) noexcept nogil:
    """w.order = 0..rows-1 stably sorted by NaN mask (bottom-up merge sort)."""
    cdef int64_t width = 1, lo, mid, hi, i, j, out
    cdef int64_t* src = w.order
    cdef int64_t* dst = w.spare
    cdef int64_t* tmp
    for i in range(rows):
        src[i] = i
    while width < rows:
        lo = 0
        while lo < rows:
            mid = min(lo + width, rows)
            hi = min(lo + 2 * width, rows)
            i, j, out = lo, mid, lo
            while i < mid and j < hi:
                # <= keeps equal masks in row order: the grouping is stable.
                if _compare(w.masks, words, src[i], src[j]) <= 0:
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


cdef void _split_pattern(const uint64_t* mask, int64_t d, _Work* w) noexcept nogil:
    cdef int64_t i
    w.n_obs = 0
    w.n_miss = 0
    for i in range(d):
        if (mask[i >> 6] >> (i & 63)) & 1:
            w.miss[w.n_miss] = i
            w.n_miss += 1
        else:
            w.obs[w.n_obs] = i
            w.n_obs += 1


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


cdef int _pattern_terms(const _Pass* P, _Work* w) noexcept nogil:
    """The terms of the current pattern (w.obs, w.miss) for every component.

    Returns 0, or -1 if some Lambda_mm is not numerically positive definite.
    """
    cdef int64_t k = P.k, d = P.d, dm = w.n_miss, c, a, i, j
    cdef double log_det_r, s, base
    cdef const double* U
    cdef const double* mu
    cdef double* sw
    for a in range(w.n_miss):
        w.y[w.miss[a]] = 0.0
    base = -0.5 * <double>w.n_obs * LOG_2PI
    if P.cov_type == COVARIANCE_FULL:
        for c in range(k):
            if _precision_block(P.factor + c * d * d, d, w.miss, dm, w.chol + c * d * d,
                                w.cond_cov + c * d * d, w.inv_chol, &log_det_r) != 0:
                return -1
            w.constant[c] = P.log_weights[c] + base + P.log_factor[c] - log_det_r
    elif P.cov_type == COVARIANCE_TIED:
        U = P.factor
        if _precision_block(U, d, w.miss, dm, w.chol, w.cond_cov, w.inv_chol, &log_det_r) != 0:
            return -1
        for c in range(k):
            w.constant[c] = P.log_weights[c] + base + P.log_factor[0] - log_det_r
            # mu_k's observed part whitened, and its h, once per pattern: a row
            # then needs one whitening for every component.
            mu = P.means + c * d
            sw = w.shift_w + c * d
            for j in range(d):
                sw[j] = 0.0
            for a in range(w.n_obs):
                i = w.obs[a]
                for j in range(i, d):
                    sw[j] += mu[i] * U[i * d + j]
            for a in range(dm):
                i = w.miss[a]
                s = 0.0
                for j in range(i, d):
                    s += U[i * d + j] * sw[j]
                w.shift_h[c * d + a] = s
    else:
        for c in range(k):
            s = 0.0
            for a in range(w.n_obs):
                s += P.log_factor[c * d + w.obs[a]]
            w.constant[c] = P.log_weights[c] + base + s
    return 0


cdef inline void _solve_pair(const double* R, int64_t dm, const double* h, double* t, double* v) noexcept nogil:
    # t = R^-1 h and v = R^-T t = Lambda_mm^-1 h (R lower, dm x dm)
    cdef int64_t a, c
    cdef double s
    for a in range(dm):
        s = h[a]
        for c in range(a):
            s -= R[a * dm + c] * t[c]
        t[a] = s / R[a * dm + a]
    a = dm - 1
    while a >= 0:
        s = t[a]
        for c in range(a + 1, dm):
            s -= R[c * dm + a] * v[c]
        v[a] = s / R[a * dm + a]
        a -= 1


cdef double _row_densities(const floating* x, const _Pass* P, _Work* w) noexcept nogil:
    """w.logd, w.yhat (the completed row minus each mean) and w.r for one row
    with at least one observed value; returns log p(x_o) (-inf if every
    density underflows, and then w.r is all 0)."""
    cdef int64_t k = P.k, d = P.d, dm = w.n_miss, c, a, i, j
    cdef double q, s, e, top, total
    cdef const double* U
    cdef const double* mu
    cdef const double* p
    cdef double* yh
    for c in range(k):
        mu = P.means + c * d
        yh = w.yhat + c * d
        if P.cov_type == COVARIANCE_FULL:
            U = P.factor + c * d * d
            for a in range(w.n_obs):
                i = w.obs[a]
                w.y[i] = <double>x[i] - mu[i]
            for j in range(d):
                w.z[j] = 0.0
            for a in range(w.n_obs):
                i = w.obs[a]
                e = w.y[i]
                for j in range(i, d):
                    w.z[j] += e * U[i * d + j]
            q = 0.0
            for j in range(d):
                q += w.z[j] * w.z[j]
            for a in range(dm):
                i = w.miss[a]
                s = 0.0
                for j in range(i, d):
                    s += U[i * d + j] * w.z[j]
                w.h[a] = s
            _solve_pair(w.chol + c * d * d, dm, w.h, w.t, w.h)
            for a in range(dm):
                q -= w.t[a] * w.t[a]
            for a in range(w.n_obs):
                yh[w.obs[a]] = w.y[w.obs[a]]
            for a in range(dm):
                yh[w.miss[a]] = -w.h[a]
        elif P.cov_type == COVARIANCE_TIED:
            if c == 0:
                # x_o U and its h, shared by every component
                U = P.factor
                for j in range(d):
                    w.z[j] = 0.0
                for a in range(w.n_obs):
                    i = w.obs[a]
                    e = <double>x[i]
                    for j in range(i, d):
                        w.z[j] += e * U[i * d + j]
                for a in range(dm):
                    i = w.miss[a]
                    s = 0.0
                    for j in range(i, d):
                        s += U[i * d + j] * w.z[j]
                    w.y[a] = s
            q = 0.0
            for j in range(d):
                e = w.z[j] - w.shift_w[c * d + j]
                q += e * e
            for a in range(dm):
                w.h[a] = w.y[a] - w.shift_h[c * d + a]
            _solve_pair(w.chol, dm, w.h, w.t, w.h)
            for a in range(dm):
                q -= w.t[a] * w.t[a]
            for a in range(w.n_obs):
                i = w.obs[a]
                yh[i] = <double>x[i] - mu[i]
            for a in range(dm):
                yh[w.miss[a]] = -w.h[a]
        else:
            p = P.factor + c * d
            q = 0.0
            for a in range(w.n_obs):
                i = w.obs[a]
                e = <double>x[i] - mu[i]
                yh[i] = e
                e = e * p[i]
                q += e * e
            for a in range(dm):
                yh[w.miss[a]] = 0.0
        # rounding can take |z|^2 - |t|^2 a hair below zero
        w.logd[c] = w.constant[c] - 0.5 * (q if q > 0.0 else 0.0)
    top = -INFINITY
    for c in range(k):
        if w.logd[c] > top:
            top = w.logd[c]
    if top == -INFINITY:
        for c in range(k):
            w.r[c] = 0.0
        return -INFINITY
    total = 0.0
    for c in range(k):
        w.r[c] = fastem_exp(w.logd[c] - top)
        total += w.r[c]
    for c in range(k):
        w.r[c] = w.r[c] / total
    return top + fastem_log(total)


cdef inline double _conditional_variance(const _Pass* P, const _Work* w, int64_t c, int64_t a) noexcept nogil:
    # Var[x_m_a | x_o, k]: the diagonal of Lambda_mm^-1, or the component's own variance
    cdef int64_t dm = w.n_miss
    cdef double f
    if P.cov_type == COVARIANCE_FULL:
        return w.cond_cov[c * P.d * P.d + a * dm + a]
    if P.cov_type == COVARIANCE_TIED:
        return w.cond_cov[a * dm + a]
    f = P.factor[c * P.d + w.miss[a]]
    return 1.0 / (f * f)


cdef void _add_row(const floating* x, double weight, double log_p, const _Pass* P, _Work* w,
                   double* stats) noexcept nogil:
    """Add one row's statistics (the layout of fastem.h) with its weight."""
    cdef int64_t k = P.k, d = P.d, dm = w.n_miss, c, a, b, i, j
    cdef double rk, v
    cdef double* first = stats + first_offset(k)
    cdef double* second = stats + P.second
    cdef const double* yh
    cdef const double* cov
    cdef double* S
    stats[0] += weight * log_p
    for c in range(k):
        rk = weight * w.r[c]
        if rk == 0.0:
            continue   # adds +-0.0 only: skipping it changes no bit
        yh = w.yhat + c * d
        stats[1 + c] += rk
        for i in range(d):
            first[c * d + i] += rk * yh[i]
        if P.cov_type == COVARIANCE_FULL:
            S = second + c * d * d
            for i in range(d):
                v = rk * yh[i]
                for j in range(i, d):
                    S[i * d + j] += v * yh[j]
            cov = w.cond_cov + c * d * d
            for a in range(dm):
                for b in range(a, dm):
                    S[w.miss[a] * d + w.miss[b]] += rk * cov[a * dm + b]
        elif P.cov_type != COVARIANCE_TIED:
            S = second + c * d
            for a in range(w.n_obs):
                i = w.obs[a]
                S[i] += rk * (yh[i] * yh[i])
            for a in range(dm):
                S[w.miss[a]] += rk * _conditional_variance(P, w, c, a)
    if P.cov_type == COVARIANCE_TIED:
        _add_tied_scatter(x, weight, P, w, second)


cdef void _add_tied_scatter(const floating* x, double weight, const _Pass* P, _Work* w,
                            double* S) noexcept nogil:
    # sum_k r_k [(xhat_k - t)(xhat_k - t)^T + Lambda_mm^-1] = e e^T + (on m, m)
    # sum_k r_k (b_k - bbar)(b_k - bbar)^T + Lambda_mm^-1, with e the posterior
    # mean of xhat - t and b_k the missing part of xhat_k.
    cdef int64_t k = P.k, d = P.d, dm = w.n_miss, c, a, b, i, j
    cdef double* e = w.bbar
    cdef double v, rk, da, db
    cdef const double* t = P.tied_centre
    for a in range(w.n_obs):
        i = w.obs[a]
        e[i] = <double>x[i] - t[i]
    for a in range(dm):
        i = w.miss[a]
        v = 0.0
        for c in range(k):
            v += w.r[c] * (P.means[c * d + i] + w.yhat[c * d + i])
        e[i] = v - t[i]
    for i in range(d):
        v = weight * e[i]
        for j in range(i, d):
            S[i * d + j] += v * e[j]
    for c in range(k):
        rk = weight * w.r[c]
        if rk == 0.0:
            continue
        for a in range(dm):
            i = w.miss[a]
            da = P.means[c * d + i] + w.yhat[c * d + i] - t[i] - e[i]
            for b in range(a, dm):
                j = w.miss[b]
                db = P.means[c * d + j] + w.yhat[c * d + j] - t[j] - e[j]
                S[i * d + j] += rk * (da * db)
    for a in range(dm):
        for b in range(a, dm):
            S[w.miss[a] * d + w.miss[b]] += weight * w.cond_cov[a * dm + b]


cdef void _score_row(const floating* x, int64_t n, double log_p, bint empty, const _Pass* P,
                     _Work* w) noexcept nogil:
    """Write row n's requested outputs (an empty row: log p = 0, the weights as
    posterior, the mixture's mean and spread)."""
    cdef int64_t k = P.k, d = P.d, c, a, i, best
    cdef double mean, spread, dev
    if empty:
        for c in range(k):
            w.r[c] = P.weights[c]
            w.logd[c] = P.log_weights[c]
        log_p = 0.0
    if P.log_prob != NULL:
        P.log_prob[n] = log_p
    if P.resp != NULL:
        for c in range(k):
            P.resp[n * k + c] = w.r[c]
    if P.log_dens != NULL:
        for c in range(k):
            P.log_dens[n * k + c] = w.logd[c]
    if P.labels != NULL:
        best = 0
        for c in range(1, k):
            if w.logd[c] > w.logd[best]:
                best = c
        P.labels[n] = best
    if P.filled == NULL and P.std == NULL:
        return
    for a in range(w.n_obs):
        i = w.obs[a]
        if P.filled != NULL:
            P.filled[n * d + i] = <double>x[i]
        if P.std != NULL:
            P.std[n * d + i] = 0.0
    for a in range(w.n_miss):
        i = w.miss[a]
        mean = 0.0
        for c in range(k):
            mean += w.r[c] * (P.means[c * d + i] + w.yhat[c * d + i])
        if P.filled != NULL:
            P.filled[n * d + i] = mean
        if P.std != NULL:
            # law of total variance, about the mixture's mean (no cancellation)
            spread = 0.0
            for c in range(k):
                dev = P.means[c * d + i] + w.yhat[c * d + i] - mean
                spread += w.r[c] * (_conditional_variance(P, w, c, a) + dev * dev)
            P.std[n * d + i] = sqrt(spread)


cdef inline void _chunk(const floating* X, _Pass* P, int thread, Py_ssize_t chunk,
                        double* lane_sums) noexcept nogil:
    # One chunk: rows grouped by pattern, each pattern's terms once per run.
    cdef int64_t start = chunk * P.chunk_rows
    cdef int64_t rows = min(P.chunk_rows, P.n_rows - start), idx, n, prev = -1
    cdef int64_t a, c, d = P.d
    cdef bint empty = False
    cdef const floating* x
    cdef double log_p, weight
    cdef _Work w
    _carve(P.work + thread * P.n_work, P.chunk_rows, P.k, d, P.words, &w)
    for n in range(rows):
        _mask(X + (start + n) * P.ldx, d, w.masks + n * P.words, P.words)
    _group_rows(&w, rows, P.words)
    for idx in range(rows):
        n = w.order[idx]
        x = X + (start + n) * P.ldx
        if prev < 0 or _compare(w.masks, P.words, n, prev) != 0:
            _split_pattern(w.masks + n * P.words, d, &w)
            empty = w.n_obs == 0
            if _pattern_terms(P, &w) != 0:
                P.failed = 1
                return
        prev = n
        if lane_sums != NULL:
            if empty:
                continue
            weight = 1.0 if P.sample_weight == NULL else P.sample_weight[start + n]
            if weight == 0.0:
                continue   # a zero weight removes the row, even at -inf density
            log_p = _row_densities(x, P, &w)
            _add_row(x, weight, log_p, P, &w, lane_sums)
        else:
            log_p = 0.0 if empty else _row_densities(x, P, &w)
            _score_row(x, start + n, log_p, empty, P, &w)


cdef void _chunk_f64(void* context, int thread, Py_ssize_t chunk, double* lane_sums) noexcept nogil:
    cdef _Pass* P = <_Pass*>context
    _chunk(<const double*>P.X, P, thread, chunk, lane_sums)


cdef void _chunk_f32(void* context, int thread, Py_ssize_t chunk, double* lane_sums) noexcept nogil:
    cdef _Pass* P = <_Pass*>context
    _chunk(<const float*>P.X, P, thread, chunk, lane_sums)


# ---------------------------------------------------------------------------
# Setting up a pass
# ---------------------------------------------------------------------------

cdef int _start(const void* X, bint single, int64_t n_rows, int64_t ldx, const GaussianModel* m,
                int n_threads, _Pass* P) noexcept nogil:
    """Fill P from the model (log weights, log determinants) and allocate the
    threads' scratch.  Returns a status."""
    cdef int64_t k, d, c, i, n_derived
    cdef double* derived
    cdef int status = check_model(m)
    memset(P, 0, sizeof(_Pass))
    if status != STATUS_OK:
        return status
    if n_rows < 0 or ldx < m.n_features or (n_rows > 0 and X == NULL):
        return STATUS_BAD_ARGUMENT
    k = m.n_components
    d = m.n_features
    P.X = X
    P.single = single
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
    # log weights (K), log factors (K, D), spherical's factor repeated (K, D)
    n_derived = k + 2 * k * d
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
    P.n_work = padded(_work_size(P.chunk_rows, k, d, P.words))
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
    status = _start(X, sizeof(floating) == sizeof(float), n_rows, ldx, model, n_threads, &P)
    if status != STATUS_OK:
        return status
    P.sample_weight = sample_weight
    P.tied_centre = tied_centre
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
    status = _start(X, sizeof(floating) == sizeof(float), n_rows, ldx, model, n_threads, &P)
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
