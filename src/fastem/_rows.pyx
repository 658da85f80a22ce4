"""The row path: one row at a time, for the initialisation-only pairs of the
private kernel (any Assign/Stats pair) and for normalising log-densities a
caller holds.  The EM and Lloyd passes go chunk by chunk (_columns, _blocks).
"""
from libc.math cimport INFINITY

from fastem._covariance_shapes cimport COUNTS_OFFSET, first_offset, second_offset
from fastem._kernels cimport (
    ASSIGN_DIAG, ASSIGN_FULL, ASSIGN_GIVEN, ASSIGN_NEAREST, ASSIGN_TIED, MixtureParams,
    STATS_DIAG, STATS_FULL, STATS_TIED,
)
from fastem._simd cimport _scaled_distance, _sum_squares, fastem_exp, fastem_log


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
    cdef double* counts = stats + COUNTS_OFFSET
    cdef double* first = stats + first_offset(n_comp)
    cdef double* second = stats + second_offset(n_comp, d)
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
