"""A Gaussian mixture in scikit-learn's storage, as the kernels read it.

GaussianModel (fastem.h's fastem_gmm) checked, turned into the arrays a
kernel pass reads (log normalisers, whitened means; _derive), and run through
the passes of _kernels: statistics (E-step or supplied responsibilities),
log-densities, scores.
The M-step and the EM iterations built on these are in _fit.pyx.

Every function returns a status (FASTEM_OK, 0, on success) and never raises.
"""
from libc.math cimport isfinite, log
from libc.stdlib cimport free, malloc

from fastem._covariance_shapes cimport (
    COVARIANCE_DIAG, COVARIANCE_FULL, COVARIANCE_SPHERICAL, COVARIANCE_TIED, covariance_size, is_covariance_type, statistic_of, statistics_size as _statistics_size,
)
from fastem._kernels cimport (
    Assign, MixtureParams, Stats, accumulate_stats, default_chunk_rows, log_density_rows,
    score_rows,
)
from fastem._openmp cimport omp_get_max_threads
from fastem._rows cimport normalise_rows

cdef double LOG_2PI = 1.8378770664093453


# ---------------------------------------------------------------------------
# Shapes and checks
# ---------------------------------------------------------------------------

cdef int check_model(const GaussianModel* m) noexcept nogil:
    """STATUS_BAD_ARGUMENT unless sizes, pointers, weights and factors make a valid model.

    Weights must be finite and >= 0; factors must have a finite, positive
    diagonal and, for full/tied, nothing below it (a lower-triangular factor,
    as scikit-learn keeps for precisions_init, would be misread as upper).
    """
    cdef int64_t k, d, c, i, j, n_blocks
    cdef const double* U
    if m == NULL or m.n_components < 1 or m.n_features < 1:
        return STATUS_BAD_ARGUMENT
    if not is_covariance_type(m.covariance_type):
        return STATUS_BAD_ARGUMENT
    if m.weights == NULL or m.means == NULL or m.precisions_cholesky == NULL:
        return STATUS_BAD_ARGUMENT
    k = m.n_components
    d = m.n_features
    for c in range(k):
        if not (isfinite(m.weights[c]) and m.weights[c] >= 0.0):
            return STATUS_BAD_ARGUMENT
    if m.covariance_type == COVARIANCE_FULL or m.covariance_type == COVARIANCE_TIED:
        n_blocks = k if m.covariance_type == COVARIANCE_FULL else 1
        for c in range(n_blocks):
            U = m.precisions_cholesky + c * d * d
            for i in range(d):
                if not (isfinite(U[i * d + i]) and U[i * d + i] > 0.0):
                    return STATUS_BAD_ARGUMENT
                for j in range(i):
                    if U[i * d + j] != 0.0:
                        return STATUS_BAD_ARGUMENT
    else:
        for i in range(covariance_size(m.covariance_type, k, d)):
            if not (isfinite(m.precisions_cholesky[i]) and m.precisions_cholesky[i] > 0.0):
                return STATUS_BAD_ARGUMENT
    return STATUS_OK


cdef int64_t model_stats_size(const GaussianModel* m) noexcept nogil:
    # 1 + K + K D + the second-order statistic of the covariance type
    return _statistics_size(statistic_of(m.covariance_type), m.n_components, m.n_features)


cdef double _sum_weights(
    const double* sample_weight, int64_t n_rows, double start,
) noexcept nogil:
    # start + w_0 + w_1 + ... in row order (NULL: ones), so a running total kept
    # across row blocks has the bits of one sum over all the rows.
    cdef double total = start
    cdef int64_t n
    if sample_weight == NULL and start == 0.0:
        return <double>n_rows   # exact, as the sum of n_rows ones (n_rows < 2**53)
    for n in range(n_rows):
        total += 1.0 if sample_weight == NULL else sample_weight[n]
    return total


cdef inline int _check_rows(
    const void* X, int64_t n_rows, int64_t ldx, int64_t n_features,
) noexcept nogil:
    if n_rows < 0 or ldx < n_features or (n_rows > 0 and X == NULL):
        return STATUS_BAD_ARGUMENT
    return STATUS_OK


cdef int _threads(int n_threads) noexcept nogil:
    # n_threads <= 0 means OpenMP's current default (OMP_NUM_THREADS or the cores).
    return omp_get_max_threads() if n_threads <= 0 else n_threads


# ---------------------------------------------------------------------------
# Kernel arrays from the model
# ---------------------------------------------------------------------------

cdef void _tied_centre(const GaussianModel* m, double* centre) noexcept nogil:
    # The tied scatter is taken about the mixture's mean sum_k w_k mu_k, close to
    # the data's mean, so its centring corrections stay small.
    cdef int64_t k, i, d = m.n_features
    for i in range(d):
        centre[i] = 0.0
    for k in range(m.n_components):
        for i in range(d):
            centre[i] += m.weights[k] * m.means[k * d + i]


cdef int _derive(const GaussianModel* m, int stats, _Derived* out) noexcept nogil:
    """Fill out.params for a pass over `m` (log normalisers, whitened means, ...).

    log N(x | mu, Sigma) = log det U - D/2 log(2 pi) - |(x - mu) U|^2 / 2 with
    U U^T = inv(Sigma); for a triangular U, log det U is the sum of the logs of
    its diagonal.
    """
    cdef int64_t k = m.n_components, d = m.n_features, c, i, j
    cdef double log_det
    cdef double* log_norm
    cdef double* extra
    cdef const double* U
    out.buffer = <double*>malloc((k + d + k * d) * sizeof(double))
    if out.buffer == NULL:
        return STATUS_NO_MEMORY
    log_norm = out.buffer
    extra = out.buffer + k + d
    out.params.n_features = d
    out.params.n_components = k
    out.params.stats = stats
    out.params.means = m.means
    out.params.precision_factor = m.precisions_cholesky
    out.params.whitened_means = NULL
    out.params.log_norm = log_norm
    out.params.tied_shift = NULL
    out.params.given_resp = NULL
    out.params.ld_given_resp = 0
    for c in range(k):
        log_det = 0.0
        if m.covariance_type == COVARIANCE_FULL:
            U = m.precisions_cholesky + c * d * d
            for i in range(d):
                log_det += log(U[i * d + i])
        elif m.covariance_type == COVARIANCE_TIED:
            for i in range(d):
                log_det += log(m.precisions_cholesky[i * d + i])
        elif m.covariance_type == COVARIANCE_DIAG:
            for i in range(d):
                log_det += log(m.precisions_cholesky[c * d + i])
        else:
            log_det = d * log(m.precisions_cholesky[c])
        # log(0) = -inf: a component of weight zero never takes responsibility.
        log_norm[c] = log(m.weights[c]) + log_det - 0.5 * d * LOG_2PI
    if m.covariance_type == COVARIANCE_FULL:
        out.params.assign = Assign.ASSIGN_FULL
    elif m.covariance_type == COVARIANCE_TIED:
        out.params.assign = Assign.ASSIGN_TIED
        # (x - mu_k) U = x U - mu_k U: the kernel whitens each row once for all k.
        for c in range(k):
            for j in range(d):
                extra[c * d + j] = 0.0
            for i in range(d):
                for j in range(i, d):
                    extra[c * d + j] += m.means[c * d + i] * m.precisions_cholesky[i * d + j]
        out.params.whitened_means = extra
    else:
        out.params.assign = Assign.ASSIGN_DIAG
        if m.covariance_type == COVARIANCE_SPHERICAL:
            # The diagonal kernel with the same factor on every feature.
            for c in range(k):
                for i in range(d):
                    extra[c * d + i] = m.precisions_cholesky[c]
            out.params.precision_factor = extra
    if stats == Stats.STATS_TIED:
        _tied_centre(m, log_norm + k)
        out.params.tied_shift = log_norm + k
    return STATUS_OK


# ---------------------------------------------------------------------------
# Passes over X
# ---------------------------------------------------------------------------

cdef int _kernel_status(int status) noexcept nogil:
    return STATUS_OK if status == 0 else (STATUS_NO_MEMORY if status == -1 else STATUS_BAD_ARGUMENT)


cdef inline int _check_pass(
    const void* X, int64_t n_rows, int64_t ldx, const GaussianModel* m,
) noexcept nogil:
    # What every pass over X needs before it looks at its outputs: a valid model
    # and rows that fit it.
    cdef int status = check_model(m)
    if status == STATUS_OK:
        status = _check_rows(X, n_rows, ldx, m.n_features)
    return status


cdef int accumulate_model(
    const floating* X,             # IN (n_rows, ldx) row-major; columns past D are ignored
    int64_t n_rows,
    int64_t ldx,
    const double* sample_weight,   # IN (n_rows,) or NULL
    const GaussianModel* m,
    int n_threads,
    double* stats,                 # OUT model_stats_size(m)
) noexcept nogil:
    cdef _Derived derived
    cdef int status = _check_pass(X, n_rows, ldx, m)
    if status != STATUS_OK or stats == NULL:
        return STATUS_BAD_ARGUMENT
    status = _derive(m, statistic_of(m.covariance_type), &derived)
    if status != STATUS_OK:
        return status
    status = _kernel_status(accumulate_stats(
        X, n_rows, ldx, sample_weight, &derived.params, default_chunk_rows(m.n_features),
        _threads(n_threads), stats))
    free(derived.buffer)
    return status


cdef int accumulate_given_model(
    const floating* X,             # IN (n_rows, ldx) row-major; columns past D are ignored
    int64_t n_rows,
    int64_t ldx,
    const double* sample_weight,   # IN (n_rows,) or NULL
    const double* resp,            # IN (n_rows, ld_resp) responsibilities the caller supplies
    int64_t ld_resp,
    const GaussianModel* m,        # its means (and, tied, its centre) place the moments
    int n_threads,
    double* stats,                 # OUT model_stats_size(m), layout as accumulate_model
) noexcept nogil:
    """The statistics of a pass whose E-step the caller did (an HMM's posteriors).

    stats[0] is 0: no log-likelihood is computed.
    """
    cdef MixtureParams params
    cdef double* centre = NULL
    cdef int status = _check_pass(X, n_rows, ldx, m)
    if (status != STATUS_OK or stats == NULL or ld_resp < m.n_components
            or (n_rows > 0 and resp == NULL)):
        return STATUS_BAD_ARGUMENT
    _given_params(m.n_components, m.n_features, statistic_of(m.covariance_type), m.means,
                  resp, ld_resp, &params)
    if params.stats == Stats.STATS_TIED:
        centre = <double*>malloc(m.n_features * sizeof(double))
        if centre == NULL:
            return STATUS_NO_MEMORY
        _tied_centre(m, centre)
        params.tied_shift = centre
    status = _kernel_status(accumulate_stats(
        X, n_rows, ldx, sample_weight, &params, default_chunk_rows(m.n_features),
        _threads(n_threads), stats))
    free(centre)
    return status


cdef void _given_params(
    int64_t k, int64_t d, int statistic, const double* centres, const double* resp,
    int64_t ld_resp, MixtureParams* p,
) noexcept nogil:
    # A pass over supplied responsibilities (resp NULL: over the nearest centre).
    p.n_features = d
    p.n_components = k
    p.assign = Assign.ASSIGN_NEAREST if resp == NULL else Assign.ASSIGN_GIVEN
    p.stats = statistic
    p.means = centres
    p.precision_factor = NULL
    p.whitened_means = NULL
    p.log_norm = NULL
    p.tied_shift = NULL
    p.given_resp = resp
    p.ld_given_resp = ld_resp


cdef int log_densities_model(
    const floating* X, int64_t n_rows, int64_t ldx, const GaussianModel* m, int n_threads,
    double* log_dens,              # OUT (n_rows, ld_log_dens): log w_k + log N(x_n | k)
    int64_t ld_log_dens,
) noexcept nogil:
    cdef _Derived derived
    cdef int status = _check_pass(X, n_rows, ldx, m)
    if status != STATUS_OK or (n_rows > 0 and log_dens == NULL) or ld_log_dens < m.n_components:
        return STATUS_BAD_ARGUMENT
    status = _derive(m, Stats.STATS_NONE, &derived)
    if status != STATUS_OK:
        return status
    status = _kernel_status(log_density_rows(
        X, n_rows, ldx, &derived.params, default_chunk_rows(m.n_features), _threads(n_threads),
        log_dens, ld_log_dens))
    free(derived.buffer)
    return status


cdef int score_model(
    const floating* X, int64_t n_rows, int64_t ldx, const GaussianModel* m, int n_threads,
    double* log_prob_norm,         # OUT (n_rows,) or NULL: log p(x_n)
    double* resp,                  # OUT (n_rows, K) or NULL: responsibilities
    int64_t* labels,               # OUT (n_rows,) or NULL: most responsible component
) noexcept nogil:
    cdef _Derived derived
    cdef int status = _check_pass(X, n_rows, ldx, m)
    if status != STATUS_OK:
        return status
    status = _derive(m, Stats.STATS_NONE, &derived)
    if status != STATUS_OK:
        return status
    status = _kernel_status(score_rows(
        X, n_rows, ldx, &derived.params, default_chunk_rows(m.n_features), _threads(n_threads),
        log_prob_norm, resp, labels))
    free(derived.buffer)
    return status


cdef int normalise_log_densities(
    double* log_dens,              # INOUT (n_rows, ld): log densities in, responsibilities out
    int64_t n_rows, int64_t n_components, int64_t ld,
    double* log_prob_norm,         # OUT (n_rows,) or NULL: the log-sum-exp of each row
) noexcept nogil:
    if n_rows < 0 or n_components < 1 or ld < n_components or (n_rows > 0 and log_dens == NULL):
        return STATUS_BAD_ARGUMENT
    normalise_rows(log_dens, n_rows, n_components, ld, log_prob_norm)
    return STATUS_OK
