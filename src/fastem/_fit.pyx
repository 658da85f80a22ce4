"""The M-step and the EM iterations of a Gaussian mixture, in nogil C.

From a pass's statistics (_gmm) the M-step forms the new weights, means and
covariances, with the precision Cholesky factors through SciPy's LAPACK; em_step
and em_fit run the iterations the estimator and the C-level API share, so a fit
through either gives the same bits.  Every function returns a status (0 on
success) and never raises.
"""
from libc.math cimport fabs, isfinite, sqrt, INFINITY
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memmove

from scipy.linalg.cython_lapack cimport dpotrf, dtrtri

from fastem._covariance_shapes cimport (
    COUNTS_OFFSET, COVARIANCE_DIAG, COVARIANCE_FULL, COVARIANCE_SPHERICAL, COVARIANCE_TIED,
    covariance_size, first_offset, second_offset,
)
from fastem._gmm cimport (
    STATUS_BAD_ARGUMENT, STATUS_ILL_DEFINED, STATUS_NO_MEMORY, STATUS_NOT_FINITE, STATUS_OK,
    _sum_weights, _tied_centre, accumulate_model, check_model, model_stats_size,
)


# scikit-learn adds 10 machine epsilons to every component's count so that an
# empty component divides by a tiny number instead of zero; we do the same so
# that fits agree to the last digits.
cdef double COUNT_FLOOR = 10 * 2.220446049250313e-16



# ---------------------------------------------------------------------------
# M-step
# ---------------------------------------------------------------------------

cdef int precision_cholesky(
    int cov_type, int64_t n_components, int64_t n_features,
    const double* covariances,     # IN shaped by cov_type
    double* factors,               # OUT same shape
) noexcept nogil:
    """Precision Cholesky factors; STATUS_ILL_DEFINED if a covariance is not positive definite."""
    cdef int64_t size = covariance_size(cov_type, n_components, n_features)
    cdef int64_t n_blocks, b, i, j
    cdef int d = <int>n_features, info = 0
    cdef double* a
    for i in range(size):
        if not isfinite(covariances[i]):
            return STATUS_ILL_DEFINED
    if cov_type == COVARIANCE_DIAG or cov_type == COVARIANCE_SPHERICAL:
        for i in range(size):
            if covariances[i] <= 0.0:
                return STATUS_ILL_DEFINED
            factors[i] = 1.0 / sqrt(covariances[i])
        return STATUS_OK
    memmove(factors, covariances, size * sizeof(double))   # factors may be covariances
    n_blocks = n_components if cov_type == COVARIANCE_FULL else 1
    for b in range(n_blocks):
        a = factors + b * d * d
        # A symmetric row-major block is its own column-major image.  Column-major
        # dpotrf("L") leaves L with cov = L L^T in the lower triangle, and dtrtri
        # turns it into L^{-1}; read row-major, that triangle is L^{-T} = U, upper
        # triangular with U U^T = inv(cov).
        dpotrf(b"L", &d, a, &d, &info)
        if info != 0:
            return STATUS_ILL_DEFINED
        dtrtri(b"L", b"N", &d, a, &d, &info)
        if info != 0:
            return STATUS_ILL_DEFINED
        for i in range(1, d):
            for j in range(i):
                a[i * d + j] = 0.0   # row-major strict lower part: left from the input
    return STATUS_OK


cdef int m_step_about(
    const double* stats,           # IN a pass's statistics (layout: model_stats_size)
    const double* shift_means,     # IN (K, D) the means the moments were taken about
    const double* tied_shift,      # IN (D,) centre of the tied scatter (tied only)
    int cov_type, int64_t k, int64_t d, double reg_covar,
    double* counts_floor,          # OUT (K,) counts + COUNT_FLOOR (unnormalised weights)
    double* means,                 # OUT (K, D); may not alias shift_means
    double* covariances,           # OUT shaped by cov_type
    double* factors,               # OUT shaped by cov_type
) noexcept nogil:
    """New parameters from statistics taken about `shift_means`.

    With delta_k = mu_k - m_k the centred scatter is
    S2_k - S1_k delta_k^T - delta_k S1_k^T + N_k delta_k delta_k^T: only small
    corrections are subtracted, so data far from the origin lose no digits.
    """
    cdef const double* counts = stats + COUNTS_OFFSET
    cdef const double* first = stats + first_offset(k)
    cdef const double* second = stats + second_offset(k, d)
    cdef const double* S
    cdef double* C
    cdef double* delta
    cdef double* err
    cdef double nk_total = 0.0, corr, value
    cdef int64_t c, i, j
    # delta (K, D), then the tied M-step's err (K, D)
    delta = <double*>malloc(2 * k * d * sizeof(double))
    if delta == NULL:
        return STATUS_NO_MEMORY
    for c in range(k):
        counts_floor[c] = counts[c] + COUNT_FLOOR
        nk_total += counts_floor[c]
        for i in range(d):
            # sum_n r x = S1 + N m; dividing by the floored count gives the usual mean.
            means[c * d + i] = (first[c * d + i] + counts[c] * shift_means[c * d + i]) / counts_floor[c]
            delta[c * d + i] = means[c * d + i] - shift_means[c * d + i]
    if cov_type == COVARIANCE_FULL:
        for c in range(k):
            S = second + c * d * d
            C = covariances + c * d * d
            for i in range(d):
                # The kernel fills the upper triangle only; compute it and mirror
                # it, so the stored covariance is exactly symmetric (the products
                # below, taken in the other order, could differ in the last bit).
                for j in range(i, d):
                    value = S[i * d + j]
                    value = value - (first[c * d + i] * delta[c * d + j] + first[c * d + j] * delta[c * d + i])
                    value = value + counts[c] * delta[c * d + i] * delta[c * d + j]
                    C[i * d + j] = value / counts_floor[c]
                    C[j * d + i] = C[i * d + j]
                C[i * d + i] += reg_covar
    elif cov_type == COVARIANCE_TIED:
        # sum_k sum_n r (x - mu_k)(x - mu_k)^T
        #   = sum_n w (x - c)(x - c)^T - sum_k [F_k delta_k^T + delta_k F_k^T - N_k delta_k delta_k^T]
        # with delta_k = mu_k - c and F_k = sum_n r (x - c) = S1_k + N_k (m_k - c).
        # Without the count floor F_k = N_k delta_k and the bracket is
        # N_k delta_k delta_k^T; with it, mu_k sits COUNT_FLOOR / N_k (relative)
        # nearer the origin -- an ulp of mu_k -- and that short form turned the
        # zero scatter of constant data at 1e150 into -1e269.  So the bracket is
        # N_k delta delta^T + delta e^T + e delta^T with the small e_k = F_k - N_k delta_k
        # (the short form's terms plus a correction of their size or less), and
        # the upper triangle is mirrored so that the result is exactly symmetric.
        err = delta + k * d
        for c in range(k):
            for i in range(d):
                delta[c * d + i] = means[c * d + i] - tied_shift[i]
                err[c * d + i] = (first[c * d + i] + counts[c] * (shift_means[c * d + i] - tied_shift[i])
                                  - counts[c] * delta[c * d + i])
        for i in range(d):
            for j in range(i, d):
                corr = 0.0
                for c in range(k):
                    corr += (counts[c] * delta[c * d + i] * delta[c * d + j]
                             + (delta[c * d + i] * err[c * d + j] + err[c * d + i] * delta[c * d + j]))
                covariances[i * d + j] = (second[i * d + j] - corr) / nk_total
                covariances[j * d + i] = covariances[i * d + j]
            covariances[i * d + i] += reg_covar
    else:
        for c in range(k):
            corr = 0.0
            for i in range(d):
                value = second[c * d + i] - 2.0 * delta[c * d + i] * first[c * d + i]
                value = value + counts[c] * (delta[c * d + i] * delta[c * d + i])
                value = value / counts_floor[c] + reg_covar
                if cov_type == COVARIANCE_DIAG:
                    covariances[c * d + i] = value
                else:
                    corr += value
            if cov_type == COVARIANCE_SPHERICAL:
                covariances[c] = corr / d
    free(delta)
    # Like scikit-learn, a covariance is ill-defined only when its factorisation
    # fails: a component collapsed to a tiny but positive variance (reg_covar=0)
    # carries on, however large its likelihood.
    return precision_cholesky(cov_type, k, d, covariances, factors)


cdef void normalise_weights(
    const double* counts_floor,    # IN (K,) m_step_about's floored counts
    int64_t k,
    double* weights,               # OUT (K,) may be counts_floor itself
) noexcept nogil:
    # counts / their sum, the sum taken in component order: the one rule every
    # M-step (C, the C API, Python's statistics) normalises the weights by.
    cdef double total = 0.0
    cdef int64_t c
    for c in range(k):
        total += counts_floor[c]
    for c in range(k):
        weights[c] = counts_floor[c] / total


cdef int m_step(GaussianModel* m, const double* stats, double reg_covar) noexcept nogil:
    """Replace `m` by the M-step from `stats` (a pass over `m`); unchanged on error."""
    cdef int64_t k = m.n_components, d = m.n_features
    cdef int64_t cov_size = covariance_size(m.covariance_type, k, d)
    cdef double* buf
    cdef int status = check_model(m)
    if status != STATUS_OK or m.covariances == NULL or stats == NULL:
        return STATUS_BAD_ARGUMENT
    if not (isfinite(reg_covar) and reg_covar >= 0.0):
        return STATUS_BAD_ARGUMENT
    buf = <double*>malloc((k + k * d + d + 2 * cov_size) * sizeof(double))
    if buf == NULL:
        return STATUS_NO_MEMORY
    _tied_centre(m, buf + k + k * d)
    status = m_step_about(
        stats, m.means, buf + k + k * d, m.covariance_type, k, d, reg_covar,
        buf, buf + k, buf + k + k * d + d, buf + k + k * d + d + cov_size,
    )
    if status == STATUS_OK:
        normalise_weights(buf, k, m.weights)
        memcpy(m.means, buf + k, k * d * sizeof(double))
        memcpy(m.covariances, buf + k + k * d + d, cov_size * sizeof(double))
        memcpy(m.precisions_cholesky, buf + k + k * d + d + cov_size, cov_size * sizeof(double))
    free(buf)
    return status


# ---------------------------------------------------------------------------
# EM iterations
# ---------------------------------------------------------------------------

cdef int em_step(
    const floating* X, int64_t n_rows, int64_t ldx,
    const double* sample_weight,   # IN (n_rows,) or NULL
    double total_weight,           # IN sum of sample_weight (n_rows if NULL), see _sum_weights()
    GaussianModel* m,              # INOUT the model; unchanged on error
    double reg_covar, int n_threads,
    double* lower_bound,           # OUT mean log-likelihood of X under the model passed in
) noexcept nogil:
    """One EM iteration: a fused pass over X, then the M-step."""
    cdef double* stats
    cdef int status = check_model(m)
    if status != STATUS_OK or m.covariances == NULL or lower_bound == NULL or n_rows < 1:
        return STATUS_BAD_ARGUMENT
    if not (isfinite(total_weight) and total_weight > 0.0 and isfinite(reg_covar) and reg_covar >= 0.0):
        return STATUS_BAD_ARGUMENT
    stats = <double*>malloc(model_stats_size(m) * sizeof(double))
    if stats == NULL:
        return STATUS_NO_MEMORY
    status = accumulate_model(X, n_rows, ldx, sample_weight, m, n_threads, stats)
    if status == STATUS_OK:
        lower_bound[0] = stats[0] / total_weight
        if not isfinite(lower_bound[0]):
            status = STATUS_NOT_FINITE
    if status == STATUS_OK:
        status = m_step(m, stats, reg_covar)
    free(stats)
    return status


cdef int em_fit(
    const floating* X, int64_t n_rows, int64_t ldx,
    const double* sample_weight,   # IN (n_rows,) or NULL
    GaussianModel* m,              # INOUT initial parameters in, fitted parameters out
    int max_iter, double tol, double reg_covar, int n_threads,
    double* lower_bounds,          # OUT (max_iter,) or NULL: the bound of each iteration
    int* n_iter,                   # OUT iterations run
    int* converged,                # OUT 1 if the bound changed by less than tol
    double* lower_bound,           # OUT the last iteration's bound
) noexcept nogil:
    """EM from the given parameters until the bound changes by less than `tol`.

    On error the model is put back to the parameters it came with, and n_iter
    says how many iterations had succeeded.
    """
    cdef double previous, current = -INFINITY, total = _sum_weights(sample_weight, n_rows, 0.0)
    cdef int status = STATUS_OK
    cdef int64_t it
    cdef int64_t k, d, cov_size
    cdef double* saved
    if max_iter < 0 or not tol >= 0.0 or n_iter == NULL or converged == NULL or lower_bound == NULL:
        return STATUS_BAD_ARGUMENT
    status = check_model(m)
    if status != STATUS_OK or m.covariances == NULL:
        return STATUS_BAD_ARGUMENT
    n_iter[0] = 0
    converged[0] = 0
    lower_bound[0] = -INFINITY
    k = m.n_components
    d = m.n_features
    cov_size = covariance_size(m.covariance_type, k, d)
    saved = <double*>malloc((k + k * d + 2 * cov_size) * sizeof(double))
    if saved == NULL:
        return STATUS_NO_MEMORY
    _copy_model(m, saved, True)
    # A 64-bit count from 1 to max_iter: `range(1, max_iter + 1)` in int would
    # overflow for max_iter = INT_MAX and run no iteration at all.
    for it in range(1, <int64_t>max_iter + 1):
        previous = current
        status = em_step(X, n_rows, ldx, sample_weight, total, m, reg_covar, n_threads, &current)
        if status != STATUS_OK:
            _copy_model(m, saved, False)
            lower_bound[0] = -INFINITY
            break
        n_iter[0] = <int>it
        lower_bound[0] = current
        if lower_bounds != NULL:
            lower_bounds[it - 1] = current
        if fabs(current - previous) < tol:
            converged[0] = 1
            break
    free(saved)
    return status


cdef void _copy_model(GaussianModel* m, double* saved, bint save) noexcept nogil:
    # The model's four arrays to (save) or from (restore) one flat buffer.
    cdef int64_t k = m.n_components, d = m.n_features
    cdef int64_t cov_size = covariance_size(m.covariance_type, k, d)
    cdef double* arrays[4]
    cdef int64_t sizes[4]
    cdef int a
    arrays[0] = m.weights
    arrays[1] = m.means
    arrays[2] = m.covariances
    arrays[3] = m.precisions_cholesky
    sizes[0] = k
    sizes[1] = k * d
    sizes[2] = cov_size
    sizes[3] = cov_size
    for a in range(4):
        if save:
            memcpy(saved, arrays[a], sizes[a] * sizeof(double))
        else:
            memcpy(arrays[a], saved, sizes[a] * sizeof(double))
        saved += sizes[a]
