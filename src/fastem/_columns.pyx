"""The column path: below BLAS_MIN_FEATURES a chunk is transposed to one
contiguous column per feature, so every loop runs over rows and vectorises.
_normalise_columns (the chunk's log-sum-exp) serves the block path too.
"""
from libc.math cimport INFINITY
from libc.stdint cimport int64_t

from fastem._covariance_shapes cimport COUNTS_OFFSET, first_offset, second_offset
from fastem._kernels cimport (
    ASSIGN_DIAG, ASSIGN_FULL, ASSIGN_NEAREST, ASSIGN_TIED, MixtureParams, STATS_DIAG, STATS_FULL,
    STATS_TIED,
)
from fastem._simd cimport (
    _dot3, _sum, fastem_add_scaled, fastem_add_scaled_squared_diff, fastem_add_squares,
    fastem_dot3, fastem_exp_shifted_sum, fastem_log_array, fastem_max_into, fastem_minus,
    fastem_normalise_pair, fastem_scale_by,
)



# The column loops that are not in _simd.pxd: only this module (and
# _blocks._weighted_given) call them.
cdef extern from "_simd_columns.h" nogil:
    enum:
        FASTEM_MAX_COLUMNS
        FASTEM_MOMENTS_FIRST
        FASTEM_MOMENTS_DIAG
        FASTEM_MOMENTS_FULL
    void fastem_to_columns(const double* x, int64_t ld, int64_t rows, int64_t width,
                           const double* weight, double* cols)
    int fastem_component_moments(const double* r, const double* cols, int64_t rows, int64_t d,
                                 const double* m, int kind, double* first, double* second)


cdef void _transpose_chunk(const floating* X, Py_ssize_t rows, Py_ssize_t d, double* cols) noexcept nogil:
    cdef Py_ssize_t n, i
    if d == 1:
        # One column is a plain copy: a loop that vectorises, where the general
        # one below runs an inner loop of one step per row (an eighth of a 1-D
        # EM iteration in a profile).
        for n in range(rows):
            cols[n] = X[n]
        return
    if floating is double:
        fastem_to_columns(X, d, rows, d, NULL, cols)
        return
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
    double* work_cols,        # scratch (D, rows), no longer needed
    double* weights,          # scratch (rows,)
    double* stats,            # INOUT as accumulate_rows
) noexcept nogil:
    # Each component's moments in one sweep of its responsibilities and the
    # columns, centring on the fly (fastem_component_moments): the same products
    # in the same four partial sums as centring into work_cols and taking one
    # dot product per statistic, so the same bits, at a fraction of the reads.
    # (It returns -1 for D outside 1..7, which this path never sees: D < 8.)
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components, n, k
    cdef double* counts = stats + COUNTS_OFFSET
    cdef double* first = stats + first_offset(n_comp)
    cdef double* second = stats + second_offset(n_comp, d)
    cdef double chunk_count
    cdef double unused[FASTEM_MAX_COLUMNS]
    cdef const double* rk
    cdef int kind = (FASTEM_MOMENTS_FULL if p.stats == STATS_FULL
                     else FASTEM_MOMENTS_DIAG if p.stats == STATS_DIAG else FASTEM_MOMENTS_FIRST)
    for n in range(FASTEM_MAX_COLUMNS):
        unused[n] = 0.0
    if p.stats == STATS_TIED:
        # The tied scatter is a FULL second moment about the tied centre with the
        # sample weights as responsibilities (its first moments are not kept).
        for n in range(rows):
            weights[n] = 1.0 if weight == NULL else weight[n]
        fastem_component_moments(weights, cols, rows, d, p.tied_shift, FASTEM_MOMENTS_FULL,
                                 unused, second)
    for k in range(n_comp):
        rk = resp_w + k * rows
        chunk_count = _sum(rk, rows)
        if chunk_count == 0.0:
            continue  # no row of this chunk belongs to k: every sum below is zero
        counts[k] += chunk_count
        fastem_component_moments(rk, cols, rows, d, p.means + k * d, kind, first + k * d,
                                 second + k * d * (d if kind == FASTEM_MOMENTS_FULL else 1))


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
    Two Gaussian components take the logistic form (fastem_normalise_pair):
    the same responsibilities, bit for bit, for half the exps.
    """
    cdef Py_ssize_t n_comp = p.n_components, n, k
    cdef double* top = tmp               # max log-density, then the row's log-likelihood
    cdef double* total = tmp + rows      # sum of exp(L - top), then w / that sum
    cdef double* log_total = tmp + 2 * rows
    cdef double* flag = tmp + 3 * rows   # best component (as a double), then "no finite density"
    cdef double* col
    cdef double w
    cdef double value, current, greater_d, kd
    cdef bint greater
    cdef bint want_best = best_out != NULL or p.assign == ASSIGN_NEAREST
    if n_comp == 2 and p.assign != ASSIGN_NEAREST:
        # Two components: one exp and one log1p per row (the logistic form).
        if best_out != NULL:
            for n in range(rows):
                best_out[n] = dens[rows + n] > dens[n]  # strict: ties go to the first
        if weight == NULL and log_lik_out == NULL:
            # The EM pass: the sum alone, from a log per group of rows.
            fastem_normalise_pair(dens, dens + rows, NULL, top, total, &value, rows)
            return value
        fastem_normalise_pair(dens, dens + rows, weight, top, total, NULL, rows)
        return _sum_log_lik(top, rows, weight, log_lik_out)
    for n in range(rows):
        top[n] = dens[n]
        flag[n] = 0.0
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
    return _sum_log_lik(top, rows, weight, log_lik_out)


cdef inline double _sum_log_lik(
    const double* row_log_lik, Py_ssize_t rows, const double* weight, double* log_lik_out,
) noexcept nogil:
    # sum_n w_n log p(x_n) over rows with w_n > 0 (a zero-weight row with
    # log p = -inf adds nothing, not NaN), and the rows' values if asked.
    cdef Py_ssize_t n
    cdef double w, log_lik = 0.0
    for n in range(rows):
        if log_lik_out != NULL:
            log_lik_out[n] = row_log_lik[n]
        w = 1.0 if weight == NULL else weight[n]
        if w != 0.0:
            log_lik += w * row_log_lik[n]
    return log_lik
