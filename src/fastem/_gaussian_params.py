"""Gaussian mixture parameters in Python: checks and conversions between
precisions, their Cholesky factors and covariances, and parameter counts.

The M-step and the factors EM uses are computed in C (fastem._em), the same code
the C-level API runs.  Everything here works on K x D x D sized arrays.

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

from fastem._kernels import Stats

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

_STATS_KINDS = {
    "full": Stats.STATS_FULL,
    "tied": Stats.STATS_TIED,
    "diag": Stats.STATS_DIAG,
    "spherical": Stats.STATS_DIAG,
}


def stats_kind(covariance_type):
    """The kernel's Stats value that a covariance type's M-step needs."""
    return _STATS_KINDS[covariance_type]


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


def upper_factor(factor):
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


def n_free_parameters(n_components, n_features, covariance_type):
    """Number of free parameters of the mixture (for BIC/AIC)."""
    per_cov = {
        "full": n_components * n_features * (n_features + 1) / 2.0,
        "tied": n_features * (n_features + 1) / 2.0,
        "diag": n_components * n_features,
        "spherical": n_components,
    }[covariance_type]
    return int(per_cov + n_components * n_features + n_components - 1)
