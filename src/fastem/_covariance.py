"""The one description of each covariance type, for every Python module.

A covariance type fixes how a Gaussian mixture stores its covariances, which
second-order statistic its M-step needs, and how many free parameters it has.
Everything else in fastem asks this table instead of writing the shapes out
(the compiled engine has its own single table, ``_covariance_shapes.pxd``,
with the same codes).

Storage per covariance type (as in scikit-learn):

==========  =================  ====================================  =========
type        covariances        precisions_cholesky                   statistic
==========  =================  ====================================  =========
full        (K, D, D)          (K, D, D), U with U U^T = inv(cov)    full
tied        (D, D)             (D, D)                                tied
diag        (K, D)             (K, D), 1 / sqrt(cov)                 diag
spherical   (K,)               (K,)                                  diag
==========  =================  ====================================  =========

Spherical models take the diagonal statistic: their variance is the mean of
the per-feature ones.
"""
import dataclasses

import numpy as np
from scipy import linalg


@dataclasses.dataclass(frozen=True)
class CovarianceType:
    """How one covariance type stores its parameters.

    Attributes
    ----------
    name : str
        scikit-learn's name ("full", "tied", "diag", "spherical").
    code : int
        The value the compiled engine and ``fastem.h`` use.
    statistic : str
        The second-order statistic its M-step needs ("full", "tied" or "diag").
    per_component : bool
        Each component has its own covariance (False only for "tied").
    block : {"matrix", "variances", "variance"}
        What one covariance is: a D x D matrix, D variances, or one variance.
    """

    name: str
    code: int
    statistic: str
    per_component: bool
    block: str

    @property
    def matrix(self):
        """Covariances are D x D matrices (full, tied) rather than variances."""
        return self.block == "matrix"

    def shape(self, n_components, n_features):
        """Shape of ``covariances_`` (and of the precisions and their factors)."""
        block = {"matrix": (n_features, n_features), "variances": (n_features,), "variance": ()}
        return ((n_components,) if self.per_component else ()) + block[self.block]

    def n_covariance_parameters(self, n_components, n_features):
        """Free parameters of the covariances alone."""
        per_block = {"matrix": n_features * (n_features + 1) // 2, "variances": n_features,
                     "variance": 1}[self.block]
        return per_block * (n_components if self.per_component else 1)

    def n_parameters(self, n_components, n_features):
        """Free parameters of the whole mixture: covariances, means, weights (for BIC/AIC)."""
        return (
            self.n_covariance_parameters(n_components, n_features)
            + n_components * n_features
            + n_components - 1
        )

    def blocks(self, array):
        """View `array` (shaped by :meth:`shape`) as one block per covariance.

        Matrices come back as (n_blocks, D, D), variances as (n_blocks, ...),
        so one loop serves every type.
        """
        return array if self.per_component else array[None]


COVARIANCE_TYPES = {
    t.name: t
    for t in (
        CovarianceType("full", 0, "full", per_component=True, block="matrix"),
        CovarianceType("tied", 1, "tied", per_component=False, block="matrix"),
        CovarianceType("diag", 2, "diag", per_component=True, block="variances"),
        CovarianceType("spherical", 3, "diag", per_component=True, block="variance"),
    )
}

COVARIANCE_NAMES = tuple(COVARIANCE_TYPES)


def covariance_type(name):
    """The :class:`CovarianceType` called `name` (KeyError for an unknown name)."""
    return COVARIANCE_TYPES[name]


def covariance_matrices(covariances, name, n_components, n_features):
    """Every component's covariance as a D x D matrix, whatever the storage.

    Parameters
    ----------
    covariances : array-like
        ``covariances_`` as covariance type `name` stores it (see :meth:`CovarianceType.shape`).
    name : str
        The covariance type.
    n_components, n_features : int

    Returns
    -------
    ndarray of shape (n_components, n_features, n_features), float64
        For "tied", a read-only view repeating the one shared matrix.
    """
    kind = COVARIANCE_TYPES[name]
    blocks = kind.blocks(np.asarray(covariances, dtype=np.float64))
    if kind.block == "variances":    # (n_blocks, D): a diagonal matrix each
        blocks = blocks[:, :, None] * np.eye(n_features)
    elif kind.block == "variance":   # (n_blocks,): one variance on every diagonal entry
        blocks = blocks[:, None, None] * np.eye(n_features)
    return np.broadcast_to(blocks, (n_components, n_features, n_features))


def precision_cholesky_from_precisions(precisions, name):
    """Factors P with P P^T = precision (lower triangular for full/tied, as scikit-learn).

    Raises
    ------
    ValueError
        If a precision matrix is not symmetric positive definite.
    """
    kind = COVARIANCE_TYPES[name]
    precisions = np.asarray(precisions, dtype=np.float64)
    if not kind.matrix:
        if np.any(precisions <= 0.0):
            raise ValueError("'precisions_init' must be positive.")
        return np.sqrt(precisions)
    blocks = kind.blocks(precisions)
    factors = np.empty_like(blocks)
    for k, prec in enumerate(blocks):
        if not np.allclose(prec, prec.T):
            raise ValueError("'precisions_init' must be symmetric.")
        try:
            factors[k] = linalg.cholesky(prec, lower=True)
        except linalg.LinAlgError:
            raise ValueError("'precisions_init' must be positive definite.") from None
    return factors if kind.per_component else factors[0]


def precisions_from_cholesky(precisions_cholesky, name):
    """precision = P P^T per block (elementwise square for diag/spherical)."""
    if COVARIANCE_TYPES[name].matrix:
        return precisions_cholesky @ np.swapaxes(precisions_cholesky, -1, -2)
    return precisions_cholesky**2


def covariances_from_precisions(precisions_cholesky, name):
    """Inverse of the precision given by its factor (used when precisions_init is set)."""
    precisions = precisions_from_cholesky(precisions_cholesky, name)
    if COVARIANCE_TYPES[name].matrix:
        return np.linalg.inv(precisions)
    return 1.0 / precisions


def upper_factor(factor):
    """An upper-triangular U with U U^T = P P^T for one triangular factor P.

    The engine only reads the upper triangle.  Factors from the M-step are
    already upper; a lower one (from precisions_init) is turned around through
    the exchange matrix J: chol(J A J) = L gives A = (J L J)(J L J)^T.
    """
    if not np.any(np.tril(factor, -1)):
        return factor
    precision = factor @ factor.T
    flipped = linalg.cholesky(precision[::-1, ::-1], lower=True)
    return np.ascontiguousarray(flipped[::-1, ::-1])


def upper_factors(factors, name):
    """The factors the engine reads: :func:`upper_factor` of every matrix block."""
    kind = COVARIANCE_TYPES[name]
    factors = np.asarray(factors, dtype=np.float64)
    if not kind.matrix:
        return factors
    upper = np.stack([upper_factor(f) for f in kind.blocks(factors)])
    return upper if kind.per_component else upper[0]
