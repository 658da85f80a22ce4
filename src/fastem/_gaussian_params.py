"""Gaussian mixture parameters: the M-step from sufficient statistics, precision
Cholesky factors, and the arrays the compiled kernels read.

Everything here works on K x D x D sized arrays; nothing touches X.

Storage per covariance type (as in scikit-learn):

==========  =================  ====================================
type        covariances        precisions_cholesky
==========  =================  ====================================
full        (K, D, D)          (K, D, D), U with U U^T = inv(cov)
tied        (D, D)             (D, D)
diag        (K, D)             (K, D), 1 / sqrt(cov)
spherical   (K,)               (K,)
==========  =================  ====================================
"""
import numpy as np
from scipy import linalg

from fastem._kernels import Assign, Stats

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

# scikit-learn adds 10 machine epsilons to every component's count so that an
# empty component divides by a tiny number instead of zero; we do the same so
# that fits agree to the last digits.
COUNT_FLOOR = 10 * np.finfo(np.float64).eps

_LOG_2PI = np.log(2 * np.pi)

_ILL_DEFINED = (
    "A component's covariance is not positive definite (it has collapsed onto too "
    "few distinct points, or a feature is constant within it). Increase reg_covar, "
    "use fewer components, or rescale the data."
)

_KERNEL_KINDS = {
    "full": (Assign.ASSIGN_FULL, Stats.STATS_FULL),
    "tied": (Assign.ASSIGN_TIED, Stats.STATS_TIED),
    "diag": (Assign.ASSIGN_DIAG, Stats.STATS_DIAG),
    "spherical": (Assign.ASSIGN_DIAG, Stats.STATS_DIAG),
}


def stats_kind(covariance_type):
    """The kernel's Stats value that a covariance type's M-step needs."""
    return _KERNEL_KINDS[covariance_type][1]


def _symmetric_from_upper(upper):
    """Fill the lower triangle of (..., D, D) blocks whose upper triangle is set."""
    lower = np.swapaxes(np.triu(upper, 1), -1, -2)
    return np.triu(upper) + lower


def _add_to_diagonal(matrices, value):
    d = matrices.shape[-1]
    idx = np.arange(d)
    matrices[..., idx, idx] += value
    return matrices


def estimate_parameters(counts, first, second, shift_means, tied_shift, covariance_type, reg_covar):
    """M-step: counts, means and covariances from a pass's sufficient statistics.

    The pass took moments about `shift_means` (per component) and, for tied,
    about `tied_shift`.  With delta_k = mu_k - m_k the centred scatter is
    S2_k - S1_k delta_k^T - delta_k S1_k^T + N_k delta_k delta_k^T, which only
    subtracts small corrections: no cancellation for data far from the origin.

    Parameters
    ----------
    counts : ndarray of shape (K,)
        Weighted responsibility sums N_k.
    first : ndarray of shape (K, D)
        ``sum_n w_n r_nk (x_n - shift_means[k])``.
    second : ndarray
        The kernel's second-order statistic for `covariance_type` (upper triangles).
    shift_means : ndarray of shape (K, D)
    tied_shift : ndarray of shape (D,) or None
    covariance_type : {"full", "tied", "diag", "spherical"}
    reg_covar : float
        Added to the diagonal of every covariance.

    Returns
    -------
    counts_floor : ndarray of shape (K,)
        ``counts + COUNT_FLOOR``, the weights before normalisation.
    means : ndarray of shape (K, D)
    covariances : ndarray
        Shaped as the table in the module docstring says.
    """
    nk = counts + COUNT_FLOOR
    # sum_n r x = S1 + N m; dividing by the floored count reproduces the usual formula.
    means = (first + counts[:, None] * shift_means) / nk[:, None]
    delta = means - shift_means
    if covariance_type == "full":
        scatter = _symmetric_from_upper(second)
        outer = first[:, :, None] * delta[:, None, :]
        scatter -= outer + np.swapaxes(outer, 1, 2)
        scatter += counts[:, None, None] * delta[:, :, None] * delta[:, None, :]
        covariances = _add_to_diagonal(scatter / nk[:, None, None], reg_covar)
    elif covariance_type == "tied":
        # sum_k sum_n r (x - mu_k)(x - mu_k)^T = sum_n w (x - c)(x - c)^T - sum_k N_k (mu_k - c)(mu_k - c)^T
        between = means - tied_shift
        scatter = _symmetric_from_upper(second) - (between.T * nk) @ between
        covariances = _add_to_diagonal(scatter / nk.sum(), reg_covar)
    else:
        scatter = second - 2.0 * delta * first + counts[:, None] * delta**2
        covariances = scatter / nk[:, None] + reg_covar
        if covariance_type == "spherical":
            covariances = covariances.mean(axis=1)
    _check_resolvable(covariances, means, covariance_type)
    return nk, means, covariances


# A variance below the spacing of floating-point numbers around the mean is
# rounding noise, not spread: a component on copies of one point (reg_covar=0)
# would otherwise "fit" with a variance of ~1e-32 and a meaningless likelihood.
_RESOLUTION_ULPS = 8 * np.finfo(np.float64).eps


def _check_resolvable(covariances, means, covariance_type):
    if covariance_type in ("full", "tied"):
        variances = np.diagonal(covariances, axis1=-2, axis2=-1)
    else:
        variances = covariances
    scale = np.abs(means)
    if covariance_type == "tied":
        scale = scale.max(axis=0)
    elif covariance_type == "spherical":
        scale = scale.max(axis=1)
    if np.any(variances <= (_RESOLUTION_ULPS * scale) ** 2):
        raise ValueError(_ILL_DEFINED)


def precision_cholesky(covariances, covariance_type):
    """Precision Cholesky factors from covariances.

    For full and tied, cov = L L^T (L lower) gives U = L^{-T}, upper triangular,
    with U U^T = inv(cov).

    Raises
    ------
    ValueError
        If a covariance is not positive definite (or not finite); the message
        suggests increasing ``reg_covar``.
    """
    covariances = np.asarray(covariances, dtype=np.float64)
    if not np.all(np.isfinite(covariances)):
        raise ValueError(_ILL_DEFINED)
    if covariance_type in ("full", "tied"):
        blocks = covariances if covariance_type == "full" else covariances[None]
        factors = np.empty_like(blocks)
        eye = np.eye(blocks.shape[-1])
        for k, cov in enumerate(blocks):
            try:
                chol = linalg.cholesky(cov, lower=True)
            except linalg.LinAlgError:
                raise ValueError(_ILL_DEFINED) from None
            factors[k] = linalg.solve_triangular(chol, eye, lower=True).T
        return factors if covariance_type == "full" else factors[0]
    if np.any(covariances <= 0.0):
        raise ValueError(_ILL_DEFINED)
    return 1.0 / np.sqrt(covariances)


def precision_cholesky_from_precisions(precisions, covariance_type):
    """Factors P with P P^T = precision (lower triangular for full/tied, as scikit-learn).

    Raises
    ------
    ValueError
        If a precision matrix is not symmetric positive definite.
    """
    precisions = np.asarray(precisions, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        blocks = precisions if covariance_type == "full" else precisions[None]
        factors = np.empty_like(blocks)
        for k, prec in enumerate(blocks):
            if not np.allclose(prec, prec.T):
                raise ValueError("'precisions_init' must be symmetric.")
            try:
                factors[k] = linalg.cholesky(prec, lower=True)
            except linalg.LinAlgError:
                raise ValueError("'precisions_init' must be positive definite.") from None
        return factors if covariance_type == "full" else factors[0]
    if np.any(precisions <= 0.0):
        raise ValueError("'precisions_init' must be positive.")
    return np.sqrt(precisions)


def precisions_from_cholesky(precisions_cholesky, covariance_type):
    """precision = P P^T per component (elementwise square for diag/spherical)."""
    if covariance_type in ("full", "tied"):
        return precisions_cholesky @ np.swapaxes(precisions_cholesky, -1, -2)
    return precisions_cholesky**2


def covariances_from_precisions(precisions_cholesky, covariance_type):
    """Inverse of the precision given by its factor (used when precisions_init is set)."""
    precisions = precisions_from_cholesky(precisions_cholesky, covariance_type)
    if covariance_type in ("full", "tied"):
        return np.linalg.inv(precisions)
    return 1.0 / precisions


def _upper_factor(factor):
    """An upper-triangular U with U U^T = P P^T for a triangular factor P.

    The kernels only read the upper triangle.  Factors from the M-step are
    already upper; a lower one (from precisions_init) is turned around through
    the exchange matrix J: chol(J A J) = L gives A = (J L J)(J L J)^T.
    """
    if not np.any(np.tril(factor, -1)):
        return factor
    precision = factor @ factor.T
    flipped = linalg.cholesky(precision[::-1, ::-1], lower=True)
    return np.ascontiguousarray(flipped[::-1, ::-1])


def kernel_arrays(weights, means, precisions_cholesky, covariance_type):
    """Everything a kernel call needs to evaluate the mixture's log-densities.

    Returns
    -------
    dict
        Keyword arguments for ``fastem._kernels.accumulate``/``score``:
        ``assign``, ``means``, ``precision_factor``, ``log_norm`` and, for
        tied, ``whitened_means``.
    """
    weights = np.asarray(weights, dtype=np.float64)
    means = np.ascontiguousarray(means, dtype=np.float64)
    factor = np.asarray(precisions_cholesky, dtype=np.float64)
    n_components, n_features = means.shape
    assign = _KERNEL_KINDS[covariance_type][0]
    extra = {}
    # log det of the precision factor: for triangular factors the product of the diagonal.
    if covariance_type == "full":
        factor = np.stack([_upper_factor(f) for f in factor])
        log_det = np.log(np.diagonal(factor, axis1=1, axis2=2)).sum(axis=1)
    elif covariance_type == "tied":
        factor = _upper_factor(factor)
        log_det = np.full(n_components, np.log(np.diagonal(factor)).sum())
        extra["whitened_means"] = means @ factor
    elif covariance_type == "diag":
        log_det = np.log(factor).sum(axis=1)
    else:
        log_det = n_features * np.log(factor)
        factor = np.repeat(factor[:, None], n_features, axis=1)
    with np.errstate(divide="ignore"):  # a zero weight is a valid -inf
        log_weights = np.log(weights)
    log_norm = log_weights + log_det - 0.5 * n_features * _LOG_2PI
    return dict(
        assign=assign,
        means=means,
        precision_factor=np.ascontiguousarray(factor),
        log_norm=log_norm,
        **extra,
    )


def n_free_parameters(n_components, n_features, covariance_type):
    """Number of free parameters of the mixture (for BIC/AIC)."""
    per_cov = {
        "full": n_components * n_features * (n_features + 1) / 2.0,
        "tied": n_features * (n_features + 1) / 2.0,
        "diag": n_components * n_features,
        "spherical": n_components,
    }[covariance_type]
    return int(per_cov + n_components * n_features + n_components - 1)
