"""The block path: from BLAS_MIN_FEATURES on, a whole chunk at a time through
SciPy's level-3 BLAS (densities as products expanded about one centre, or
whitened per component; moments as one product of the responsibilities with
the centred chunk, moved to each component's mean).
"""
from libc.math cimport sqrt
from libc.stdlib cimport calloc, free

from fastem._covariance_shapes cimport COUNTS_OFFSET, first_offset, second_offset
from fastem._blas cimport (
    gram_upper, rows_times, rows_times_transpose, weighted_row_sum, whiten_rows,
)
from fastem._simd cimport _scaled_distance, _sum, _sum_squares


cdef inline const floating* _operand(const _Shared* sh, const floating* like) noexcept nogil:
    # sh.operand in the precision of `like` (X).
    if floating is double:
        return <const floating*>sh.operand
    else:
        return <const floating*>sh.operand_single


cdef inline bint _first_by_product(const floating* like) noexcept nogil:
    # Float32: a FULL chunk's first moments, sum w r (x - m), come from one product
    # sqrt(w r)^T Z in single precision, Z holding the rows sqrt(w r) (x - m) the SYRK
    # reads (a per-element float64 running sum costs about as much as the SYRK at
    # D = 32).  Float64 keeps summing them row by row (its results stay bitwise as
    # they were).
    return sizeof(floating) == sizeof(float)


cdef inline void _add_gram(
    double* C,              # INOUT (d, d) upper triangle += Z^T Z
    double* first,          # INOUT (d,) += roots^T Z (float32 only), or NULL
    const floating* Z,      # IN (rows, d)
    const floating* roots,  # IN (rows,) with `first`, else NULL
    Py_ssize_t rows,
    Py_ssize_t d,
    floating* scratch,      # float32: (d * d,) the chunk's products
) noexcept nogil:
    # Float64 adds in place; float32 takes the chunk's products in single precision
    # and adds them into the float64 sums.
    cdef Py_ssize_t i, j
    if floating is double:
        gram_upper(<double*>C, Z, <int>rows, <int>d, 1.0)
    else:
        gram_upper(scratch, Z, <int>rows, <int>d, 0.0)
        for i in range(d):
            for j in range(i, d):
                C[i * d + j] += scratch[i * d + j]
        if first != NULL:
            weighted_row_sum(scratch, Z, roots, <int>rows, <int>d)
            for i in range(d):
                first[i] += scratch[i]


cdef void _free_shared(_Shared* sh) noexcept nogil:
    free(sh.center)
    free(sh.coef)
    free(sh.offset)
    free(sh.operand_single)


cdef inline Py_ssize_t _operand_size(const MixtureParams* p) noexcept nogil:
    # Entries of `operand` on the _single_products path: the K full factors.
    return p.n_components * p.n_features * p.n_features


cdef inline bint _expanded(const MixtureParams* p) noexcept nogil:
    # The densities are expanded about the centre c (_expanded_densities), so the
    # pass needs coef and offset; FULL above OUTER_MAX_FEATURES whitens per
    # component with the precision factor itself, and supplied responsibilities
    # need no densities.
    return _blocked_density(p) and (p.assign != ASSIGN_FULL or _full_outer(p))


cdef inline Py_ssize_t _coef_size(const MixtureParams* p) noexcept nogil:
    # DIAG (K, 2D); small FULL (D, K D); NEAREST and TIED (K, D)
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components
    if p.assign == ASSIGN_DIAG:
        return n_comp * 2 * d
    if _full_outer(p):
        return d * n_comp * d
    return n_comp * d


cdef int _prepare_shared(const MixtureParams* p, _Shared* sh, bint single) noexcept nogil:
    """Fill `sh` for one block pass; `single` for float32 input.  Returns 0 or -1 (no memory).

    Only what the pass reads is allocated: the centre (D), coef and offset when
    the densities are expanded about it, the float32 operand for single products.
    """
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components, k, i
    cdef double nu, prec
    cdef Py_ssize_t j
    cdef bint expanded = _expanded(p)
    sh.center = <double*>calloc(d, sizeof(double))
    sh.coef = <double*>calloc(_coef_size(p), sizeof(double)) if expanded else NULL
    sh.offset = (<double*>calloc(n_comp * d if _full_outer(p) else n_comp, sizeof(double))
                 if expanded else NULL)
    sh.operand_single = <float*>calloc(max(1, _operand_size(p)), sizeof(float)) if single else NULL
    if (sh.center == NULL or (expanded and (sh.coef == NULL or sh.offset == NULL))
            or (single and sh.operand_single == NULL)):
        _free_shared(sh)
        return -1
    for k in range(n_comp):
        for i in range(d):
            sh.center[i] += p.means[k * d + i]
    for i in range(d):
        sh.center[i] /= n_comp
    if not expanded:
        sh.operand = p.precision_factor   # FULL above OUTER_MAX_FEATURES (or unused: GIVEN)
        if single:
            for i in range(_operand_size(p)):
                sh.operand_single[i] = <float>sh.operand[i]
        return 0
    # |x - m|^2 P expanded about the centre c: cross terms become one GEMM.  Taking
    # the expansion about c rather than 0 keeps its cancellation to the spread of
    # the means, not their distance from the origin.
    for k in range(n_comp):
        for i in range(d):
            nu = p.means[k * d + i] - sh.center[i]
            if p.assign == ASSIGN_DIAG:
                prec = p.precision_factor[k * d + i] * p.precision_factor[k * d + i]
                sh.coef[k * 2 * d + i] = -2.0 * prec * nu
                sh.coef[k * 2 * d + d + i] = prec
                sh.offset[k] += prec * nu * nu
            elif p.assign == ASSIGN_NEAREST:
                sh.coef[k * d + i] = nu
                sh.offset[k] += nu * nu
            elif _full_outer(p):
                # (x - m) U = (x - c) U - nu U: the first term for all k in one GEMM.
                for j in range(i, d):
                    sh.coef[i * n_comp * d + k * d + j] = p.precision_factor[(k * d + i) * d + j]
                    sh.offset[k * d + j] += nu * p.precision_factor[(k * d + i) * d + j]
            elif p.assign == ASSIGN_TIED:
                # |(x - m) U|^2 = |y|^2 - 2 y.v + |v|^2 with y = (x - c) U, v = nu U.
                for j in range(i, d):
                    sh.coef[k * d + j] += nu * p.precision_factor[i * d + j]
    if p.assign == ASSIGN_TIED:
        for k in range(n_comp):
            sh.offset[k] = _sum_squares(sh.coef + k * d, d)
    if p.assign == ASSIGN_TIED or (p.assign == ASSIGN_FULL and not _full_outer(p)):
        sh.operand = p.precision_factor
    else:
        sh.operand = sh.coef
    if single:
        for i in range(_operand_size(p)):
            sh.operand_single[i] = <float>sh.operand[i]
    return 0


cdef void _whitened_densities(
    const floating* X,        # IN (rows, D): the chunk
    Py_ssize_t rows,
    const MixtureParams* p,
    const _Shared* sh,
    floating* Y,              # scratch (rows, D) in X's precision
    double* dens,             # OUT (K, rows) log-densities
) noexcept nogil:
    # Full covariances above OUTER_MAX_FEATURES: the chunk centred about each
    # component's mean (in float64, rounded once when stored in Y), whitened by
    # TRMM (float32 input: in single precision), squared norms summed in float64.
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components, n, k, i
    cdef const double* mean
    cdef const floating* operand = _operand(sh, X)
    for k in range(n_comp):
        mean = p.means + k * d
        for n in range(rows):
            for i in range(d):
                Y[n * d + i] = X[n * d + i] - mean[i]
        whiten_rows(Y, operand + k * d * d, <int>rows, <int>d)
        for n in range(rows):
            dens[k * rows + n] = p.log_norm[k] - 0.5 * _sum_squares(Y + n * d, d)


cdef void _expanded_densities(
    const double* X,          # IN (rows, D): the chunk (float32 chunks arrive widened)
    Py_ssize_t rows,
    const MixtureParams* p,
    const _Shared* sh,
    double* Y,                # scratch (rows, _block_width); DIAG leaves [x - c | (x - c)^2]
                              # in it, small FULL the chunk minus c after the whitened block
    double* dens,             # OUT (K, rows) log-densities (NEAREST: minus squared distances)
) noexcept nogil:
    # Every other model expands its distances about the centre c for all components
    # at once, so the cross terms come from one GEMM (see _prepare_shared).
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components, n, k, i
    cdef double* centred
    cdef double* norms
    cdef double c, row_sq
    if _full_outer(p):
        # Y (rows, K D) = (X - c) [U_1 .. U_K]; the centred chunk is kept after it.
        centred = Y + rows * _outer_offset(p)
        for n in range(rows):
            for i in range(d):
                centred[n * d + i] = X[n * d + i] - sh.center[i]
        rows_times(Y, centred, sh.operand, <int>rows, <int>(n_comp * d), <int>d)
        for n in range(rows):
            for k in range(n_comp):
                dens[k * rows + n] = p.log_norm[k] - 0.5 * _scaled_distance(
                    <const double*>(Y + (n * n_comp + k) * d), sh.offset + k * d, NULL, d)
    elif p.assign == ASSIGN_TIED:
        for n in range(rows):
            for i in range(d):
                Y[n * d + i] = X[n * d + i] - sh.center[i]
        whiten_rows(Y, sh.operand, <int>rows, <int>d)
        # (K, rows) = V Y^T for the whitened, centred means V: the cross terms of
        # every component in one GEMM, expanded about c as for DIAG.
        rows_times_transpose(dens, sh.coef, Y, <int>n_comp, <int>rows, <int>d, 0.0)
        # Row norms into the free second half of Y, then one contiguous loop per
        # component (rows apart, the per-row stores would not vectorise).
        norms = Y + rows * d
        for n in range(rows):
            norms[n] = _sum_squares(Y + n * d, d)
        for k in range(n_comp):
            for n in range(rows):
                # clipped: rounding must not make a squared distance negative
                dens[k * rows + n] = p.log_norm[k] - 0.5 * max(
                    0.0, norms[n] - 2.0 * dens[k * rows + n] + sh.offset[k])
    elif p.assign == ASSIGN_DIAG:
        for n in range(rows):
            for i in range(d):
                c = X[n * d + i] - sh.center[i]
                Y[n * 2 * d + i] = c
                Y[n * 2 * d + d + i] = c * c
        # (K, rows) = coef (K, 2D) @ Y^T
        rows_times_transpose(dens, sh.operand, Y, <int>n_comp, <int>rows, <int>(2 * d), 0.0)
        for k in range(n_comp):
            for n in range(rows):
                dens[k * rows + n] = p.log_norm[k] - 0.5 * (dens[k * rows + n] + sh.offset[k])
    else:  # ASSIGN_NEAREST
        for n in range(rows):
            for i in range(d):
                Y[n * d + i] = X[n * d + i] - sh.center[i]
        rows_times_transpose(dens, sh.operand, Y, <int>n_comp, <int>rows, <int>d, 0.0)
        for n in range(rows):
            row_sq = _sum_squares(Y + n * d, d)
            for k in range(n_comp):
                # -(|y|^2 - 2 y.nu + |nu|^2), clipped: rounding must not make it positive
                dens[k * rows + n] = min(0.0, 2.0 * dens[k * rows + n] - sh.offset[k] - row_sq)


cdef void _block_log_densities(
    const floating* X, Py_ssize_t rows, const MixtureParams* p, const _Shared* sh,
    floating* Y, double* dens,
) noexcept nogil:
    # Float32 input reaches the block path only where its products run in single
    # precision (_single_products); other chunks were widened to float64.
    if p.assign == ASSIGN_FULL and not _full_outer(p):
        _whitened_densities(X, rows, p, sh, Y, dens)
    else:
        if floating is double:
            _expanded_densities(X, rows, p, sh, Y, dens)


# Moving a chunk's moments from the centre c they were taken about to a
# component's mean m = c + nu (y = x - c, sums weighted by w r over the chunk,
# N = sum w r, G1 = sum w r y, G2 = sum w r y y^T):
#   sum w r (x - m)               = G1 - N nu
#   sum w r (x - m)_i (x - m)_j   = G2_ij - nu_i G1_j - G1_i nu_j + N nu_i nu_j
#   sum w r (x - m)_i^2           = G2_ii - 2 nu_i G1_i + N nu_i^2
# The corrections are small when c is near the means (the mean of the means),
# so no digits are lost to data far from the origin.  Each keeps the order of
# its operations: the square is not the product with i = j (a - x - x is not
# a - 2x in floating point).

cdef inline double _moved_first(double g1, double count, double nu) noexcept nogil:
    return g1 - count * nu


cdef inline double _moved_product(
    double g2, double g1_i, double g1_j, double nu_i, double nu_j, double count,
) noexcept nogil:
    return g2 - nu_i * g1_j - g1_i * nu_j + count * nu_i * nu_j


cdef inline double _moved_square(double g2, double g1, double nu, double count) noexcept nogil:
    return g2 - 2.0 * nu * g1 + count * nu * nu


cdef void _add_outer_moments(
    const MixtureParams* p,
    Py_ssize_t rows,
    const _Shared* sh,
    const double* centred,    # IN (rows, D) the chunk minus the centre c
    const double* resp_w,     # IN (K, rows) w * responsibilities, component-major
    double* Z,                # scratch (rows, _outer_width(D))
    double* moments,          # scratch (K, _outer_width(D))
    double* stats,            # INOUT
) noexcept nogil:
    """Full-covariance moments of a chunk for all components with one GEMM.

    Each row becomes [y | upper(y y^T)] with y = x - c; R^T Z then holds every
    component's first and second moments about c, which are moved to the
    component's mean m = c + nu.
    """
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components, width = _outer_width(d)
    cdef Py_ssize_t n, k, i, j, col
    cdef const double* y
    cdef double* z
    cdef double* counts = stats + COUNTS_OFFSET
    cdef double* first = stats + first_offset(n_comp)
    cdef double* second = stats + second_offset(n_comp, d)
    cdef double chunk_count
    cdef const double* g
    cdef double* nu = Z  # reused after the GEMM: (D,) per component
    for n in range(rows):
        y = centred + n * d
        z = Z + n * width
        col = d
        for i in range(d):
            z[i] = y[i]
            for j in range(i, d):
                z[col] = y[i] * y[j]
                col += 1
    rows_times(moments, resp_w, Z, <int>n_comp, <int>width, <int>rows)
    for k in range(n_comp):
        chunk_count = _sum(resp_w + k * rows, rows)
        counts[k] += chunk_count
        g = moments + k * width
        for i in range(d):
            nu[i] = p.means[k * d + i] - sh.center[i]
            first[k * d + i] += _moved_first(g[i], chunk_count, nu[i])
        col = d
        for i in range(d):
            for j in range(i, d):
                second[(k * d + i) * d + j] += _moved_product(
                    g[col], g[i], g[j], nu[i], nu[j], chunk_count)
                col += 1


cdef extern from "_simd_columns.h" nogil:
    void fastem_to_columns(const double* x, Py_ssize_t ld, Py_ssize_t rows, Py_ssize_t width,
                           const double* weight, double* cols)


cdef void _weighted_given(
    const double* given,      # IN (rows, ld) supplied responsibilities of the chunk
    Py_ssize_t ld,
    const double* weight,     # IN (rows,) or NULL
    Py_ssize_t rows,
    Py_ssize_t n_comp,
    double* resp_w,           # OUT (K, rows) w * responsibilities, component-major
) noexcept nogil:
    # The layout the E-step leaves, so the moments code serves both.  A zero-weight
    # row drops out even if its responsibilities are not finite.  Without weights
    # the values are copied as they are (1 * r is r, bit for bit).
    fastem_to_columns(given, ld, rows, n_comp, weight, resp_w)


cdef void _centre_for_moments(
    const double* X, Py_ssize_t rows, const MixtureParams* p, const _Shared* sh,
    double* Y,                # OUT what the Gaussian densities leave in Y for the moments
) noexcept nogil:
    # Supplied responsibilities skip the densities; the moments still need the
    # chunk centred about c: after the outer block (small full) or as
    # [x - c | (x - c)^2] (DIAG).  The other statistics centre their own rows.
    cdef Py_ssize_t d = p.n_features, n, i
    cdef double* centred
    cdef double c
    if _outer_moments(p):
        centred = Y + rows * _outer_offset(p)
        for n in range(rows):
            for i in range(d):
                centred[n * d + i] = X[n * d + i] - sh.center[i]
    elif p.stats == STATS_DIAG:
        for n in range(rows):
            for i in range(d):
                c = X[n * d + i] - sh.center[i]
                Y[n * 2 * d + i] = c
                Y[n * 2 * d + d + i] = c * c


cdef void _add_first_moments(
    const double* X, Py_ssize_t rows, const MixtureParams* p,
    const double* resp_w,     # IN (K, rows)
    double* stats,            # INOUT
) noexcept nogil:
    # Counts and first moments only (k-means): hard assignments are mostly zeros.
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components, n, k, i
    cdef double* counts = stats + COUNTS_OFFSET
    cdef double* first = stats + first_offset(n_comp)
    cdef const double* mean
    cdef double rw
    for k in range(n_comp):
        mean = p.means + k * d
        for n in range(rows):
            rw = resp_w[k * rows + n]
            if rw != 0.0:
                counts[k] += rw
                for i in range(d):
                    first[k * d + i] += rw * (X[n * d + i] - mean[i])


cdef void _add_component_scatters(
    const floating* X, Py_ssize_t rows, const MixtureParams* p,
    const double* resp_w,     # IN (K, rows)
    floating* Y,              # scratch (rows, D)
    floating* moments,        # scratch, float32: (D, D)
    floating* roots,          # scratch, float32: (rows,) sqrt(w r) of each row
    double* stats,            # INOUT
) noexcept nogil:
    # Full scatters, one SYRK of the rows sqrt(w r) (x - m_k) per component.
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components, n, k, i
    cdef double* counts = stats + COUNTS_OFFSET
    cdef double* first = stats + first_offset(n_comp)
    cdef double* second = stats + second_offset(n_comp, d)
    cdef bint by_product = _first_by_product(X)
    cdef const double* mean
    cdef double rw, root, c, chunk_count
    for k in range(n_comp):
        mean = p.means + k * d
        chunk_count = 0.0
        for n in range(rows):
            rw = resp_w[k * rows + n]
            chunk_count += rw
            root = sqrt(rw)
            if by_product:
                roots[n] = root
                for i in range(d):
                    Y[n * d + i] = root * (X[n * d + i] - mean[i])
            else:
                for i in range(d):
                    c = X[n * d + i] - mean[i]
                    first[k * d + i] += rw * c
                    Y[n * d + i] = root * c
        counts[k] += chunk_count
        if chunk_count != 0.0:  # the Gram update of an unused component adds zeros
            _add_gram(second + k * d * d, first + k * d if by_product else NULL,
                      Y, roots, rows, d, moments)


cdef void _add_tied_scatter(
    const double* X, Py_ssize_t rows, const double* weight, const MixtureParams* p,
    const double* resp_w,     # IN (K, rows)
    double* Y,                # scratch (rows, 2 D)
    double* moments,          # scratch (K, D)
    double* stats,            # INOUT
) noexcept nogil:
    # Scatter: SYRK of sqrt(w) (x - s) about the tied shift s.  First moments:
    # one GEMM R^T (X - s), moved to each component's mean per chunk.
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components, n, k, i
    cdef double* counts = stats + COUNTS_OFFSET
    cdef double* first = stats + first_offset(n_comp)
    cdef double* second = stats + second_offset(n_comp, d)
    cdef double* centred = Y + rows * d
    cdef double w, root, c, chunk_count
    for n in range(rows):
        w = 1.0 if weight == NULL else weight[n]
        root = sqrt(w)
        for i in range(d):
            c = X[n * d + i] - p.tied_shift[i]
            centred[n * d + i] = c
            Y[n * d + i] = root * c
    _add_gram(second, NULL, Y, NULL, rows, d, moments)
    rows_times(moments, resp_w, centred, <int>n_comp, <int>d, <int>rows)
    for k in range(n_comp):
        chunk_count = _sum(resp_w + k * rows, rows)
        counts[k] += chunk_count
        for i in range(d):
            first[k * d + i] += _moved_first(
                moments[k * d + i], chunk_count, p.means[k * d + i] - p.tied_shift[i])


cdef void _add_diag_moments(
    Py_ssize_t rows, const MixtureParams* p, const _Shared* sh,
    const double* resp_w,     # IN (K, rows)
    const double* Y,          # IN (rows, 2 D) [x - c | (x - c)^2]
    double* moments,          # scratch (K, 2 D)
    double* stats,            # INOUT
) noexcept nogil:
    # One GEMM gives this chunk's moments about c, which are moved to each
    # component's mean m = c + nu.
    cdef Py_ssize_t d = p.n_features, n_comp = p.n_components, k, i
    cdef double* counts = stats + COUNTS_OFFSET
    cdef double* first = stats + first_offset(n_comp)
    cdef double* second = stats + second_offset(n_comp, d)
    cdef double chunk_count, nu, c
    rows_times(moments, resp_w, Y, <int>n_comp, <int>(2 * d), <int>rows)
    for k in range(n_comp):
        chunk_count = _sum(resp_w + k * rows, rows)
        counts[k] += chunk_count
        for i in range(d):
            nu = p.means[k * d + i] - sh.center[i]
            c = moments[k * 2 * d + i]
            first[k * d + i] += _moved_first(c, chunk_count, nu)
            second[k * d + i] += _moved_square(moments[k * 2 * d + d + i], c, nu, chunk_count)


cdef void _block_moments(
    const floating* X,             # IN (rows, D): the chunk
    Py_ssize_t rows,
    const double* weight,          # IN (rows,) or NULL
    bint given,                    # responsibilities were supplied (no densities ran)
    const MixtureParams* p,
    const _Shared* sh,
    _ChunkScratch* s,              # s.dens holds w * responsibilities (K, rows)
    double* stats,                 # INOUT
) noexcept nogil:
    """A chunk's moments on the block path, by the statistic wanted."""
    if p.stats == STATS_FULL and not _outer_moments(p):
        _add_component_scatters(X, rows, p, s.dens, <floating*>s.block, <floating*>s.moments,
                                <floating*>s.extra, stats)
        return
    # Float32 input only reaches the scatters above (see _single_products).
    if floating is double:
        if given:
            _centre_for_moments(X, rows, p, sh, s.block)
        if p.stats == STATS_NONE:   # hard k-means assignments
            _add_first_moments(X, rows, p, s.dens, stats)
        elif _outer_moments(p):
            _add_outer_moments(p, rows, sh, s.block + rows * _outer_offset(p), s.dens,
                               s.block, s.moments, stats)
        elif p.stats == STATS_TIED:
            _add_tied_scatter(X, rows, weight, p, s.dens, s.block, s.moments, stats)
        else:  # DIAG: s.block holds [x - c | (x - c)^2] (DIAG densities or _centre_for_moments)
            _add_diag_moments(rows, p, sh, s.dens, s.block, s.moments, stats)
