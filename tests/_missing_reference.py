"""Pure-NumPy reference of exact EM for a Gaussian mixture with missing values.

Written from the equations (Ghahramani & Jordan, 1994), not from any library's
code, to check ``GaussianMixture(missing="em")``.  A NaN in X marks a missing
value; for a row x with observed coordinates o and missing coordinates m, and
a component k with mean mu and covariance S (every covariance type is first
written out as a full D x D matrix):

* the row's density under k is the marginal over o,
  ``log w_k + log N(x_o; mu_o, S_oo)``;
* the missing coordinates given the observed ones are Gaussian with
  ``E[x_m | x_o, k] = mu_m + S_mo S_oo^-1 (x_o - mu_o)`` and
  ``C_k = Cov[x_m | x_o, k] = S_mm - S_mo S_oo^-1 S_om``;
* the M-step is scikit-learn's with the expected statistics: the completed
  row ``xhat_k = (x_o, E[x_m | x_o, k])`` in place of x, and C_k added on the
  (m, m) block of every second moment.

A row with no observed value has the empty marginal (density 1): its
component log-densities are ``log w_k``, its log-likelihood 0, its
responsibilities the weights.  It is left out of every M-step sum and out of
the mean log-likelihood's denominator.

Rows are grouped by missingness pattern and each pattern is solved once per
component with dense ``np.linalg`` calls.  Speed does not matter (test sizes
are small); being obviously right does.
"""
import numpy as np
from scipy.special import logsumexp

__all__ = [
    "COVARIANCE_TYPES",
    "full_covariances",
    "pack_covariances",
    "precisions_of",
    "component_log_densities",
    "log_likelihood",
    "responsibilities",
    "conditionals",
    "em_step",
    "run_em",
    "impute",
    "remove_at_random",
]

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]

# scikit-learn's floor on every component's count: an empty component gets a
# weight of about 10 eps / n and stays finite.
COUNT_FLOOR = 10 * np.finfo(np.float64).eps


def full_covariances(covariances, covariance_type, n_components, n_features):
    """Every component's covariance as a full matrix, shape (K, D, D), float64."""
    c = np.asarray(covariances, dtype=np.float64)
    if covariance_type == "full":
        return c.reshape(n_components, n_features, n_features).copy()
    if covariance_type == "tied":
        return np.repeat(c.reshape(1, n_features, n_features), n_components, axis=0)
    if covariance_type == "diag":
        return np.stack([np.diag(row) for row in c.reshape(n_components, n_features)])
    if covariance_type == "spherical":
        return c.reshape(n_components, 1, 1) * np.eye(n_features)[None, :, :]
    raise ValueError(f"unknown covariance_type {covariance_type!r}")


def pack_covariances(full, covariance_type):
    """The inverse of :func:`full_covariances` for matrices of the right structure."""
    if covariance_type == "full":
        return full
    if covariance_type == "tied":
        return full[0]
    if covariance_type == "diag":
        return np.diagonal(full, axis1=1, axis2=2).copy()
    return np.diagonal(full, axis1=1, axis2=2)[:, 0].copy()


def precisions_of(covariances, covariance_type):
    """The inverse of each covariance, in scikit-learn's storage (for ``precisions_init``).

    Full and tied inverses are symmetrised: scikit-learn's checks demand
    exact symmetry, and the rounding this moves is far below any tolerance.
    """
    c = np.asarray(covariances, dtype=np.float64)
    if covariance_type in ("diag", "spherical"):
        return 1.0 / c
    p = np.linalg.inv(c)
    return (p + np.swapaxes(p, -1, -2)) / 2.0


def _empty_rows(X):
    """Mask of the rows with no observed value."""
    return np.all(np.isnan(np.asarray(X, dtype=np.float64)), axis=1)


def _patterns(X):
    """Yield ``(rows, observed)``: the row indices sharing one missingness pattern."""
    observed = ~np.isnan(X)
    patterns, inverse = np.unique(observed, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    for p, pattern in enumerate(patterns):
        yield np.flatnonzero(inverse == p), pattern


def _marginal_log_density(Xo, mu_o, S_oo):
    """log N(x_o; mu_o, S_oo) for the rows of Xo (all with the same observed set)."""
    d_o = Xo.shape[1]
    sign, logdet = np.linalg.slogdet(S_oo)
    assert sign > 0, "covariance block not positive definite"
    centred = Xo - mu_o
    mahalanobis = np.sum(centred * np.linalg.solve(S_oo, centred.T).T, axis=1)
    return -0.5 * (d_o * np.log(2.0 * np.pi) + logdet + mahalanobis)


def component_log_densities(X, weights, means, covariances, covariance_type):
    """``log w_k + log N(x_o; mu_o, S_oo)`` for every row and component, shape (N, K).

    A row with no observed value gets ``log w_k`` (the empty marginal is 1).
    """
    X = np.asarray(X, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    n_components, n_features = means.shape
    S = full_covariances(covariances, covariance_type, n_components, n_features)
    log_w = np.log(np.asarray(weights, dtype=np.float64))
    out = np.empty((X.shape[0], n_components))
    for rows, obs in _patterns(X):
        for k in range(n_components):
            if not obs.any():
                out[rows, k] = log_w[k]
                continue
            Xo = X[np.ix_(rows, obs)]
            out[rows, k] = log_w[k] + _marginal_log_density(
                Xo, means[k, obs], S[k][np.ix_(obs, obs)])
    return out


def log_likelihood(X, weights, means, covariances, covariance_type):
    """Per-row observed-data log-likelihood ``log p(x_o)``, shape (N,); 0 for an empty row."""
    log_p = logsumexp(
        component_log_densities(X, weights, means, covariances, covariance_type), axis=1)
    # log sum_k w_k is 0 up to rounding; an empty marginal is exactly 1.
    log_p[_empty_rows(X)] = 0.0
    return log_p


def responsibilities(X, weights, means, covariances, covariance_type):
    """``P(k | x_o)``, shape (N, K); an empty row gets the weights."""
    log_dens = component_log_densities(X, weights, means, covariances, covariance_type)
    resp = np.exp(log_dens - logsumexp(log_dens, axis=1, keepdims=True))
    resp[_empty_rows(X)] = np.asarray(weights, dtype=np.float64)
    return resp


def conditionals(X, means, covariances, covariance_type):
    """Each row completed under each component, and the conditional covariances.

    Returns
    -------
    completed : ndarray of shape (N, K, D)
        ``xhat_nk``: x_o at the observed coordinates and
        ``mu_m + S_mo S_oo^-1 (x_o - mu_o)`` at the missing ones.
    cond_cov : ndarray of shape (N, K, D, D)
        ``S_mm - S_mo S_oo^-1 S_om`` on the (m, m) block, zero elsewhere.
    """
    X = np.asarray(X, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    n_components, n_features = means.shape
    n_samples = X.shape[0]
    S = full_covariances(covariances, covariance_type, n_components, n_features)
    completed = np.repeat(X[:, None, :], n_components, axis=1)
    cond_cov = np.zeros((n_samples, n_components, n_features, n_features))
    for rows, obs in _patterns(X):
        mis = ~obs
        if not mis.any():
            continue
        for k in range(n_components):
            S_mm = S[k][np.ix_(mis, mis)]
            if obs.any():
                S_oo = S[k][np.ix_(obs, obs)]
                S_mo = S[k][np.ix_(mis, obs)]
                gain = np.linalg.solve(S_oo, S_mo.T).T  # S_mo S_oo^-1, (d_m, d_o)
                centred = X[np.ix_(rows, obs)] - means[k, obs]
                fill = means[k, mis] + centred @ gain.T
                C = S_mm - gain @ S_mo.T
            else:
                fill = np.broadcast_to(means[k, mis], (rows.size, mis.sum()))
                C = S_mm
            completed[np.ix_(rows, [k], mis)] = fill[:, None, :]
            cond_cov[np.ix_(rows, [k], mis, mis)] = C
    return completed, cond_cov


def em_step(X, weights, means, covariances, covariance_type, sample_weight=None, reg_covar=1e-6):
    """One exact EM step: the E-step under the given parameters, then the M-step.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Data, NaN where a value is missing.
    weights, means, covariances : array-like
        The current parameters, in scikit-learn's shapes for `covariance_type`.
    covariance_type : {"full", "tied", "diag", "spherical"}
    sample_weight : array-like of shape (n_samples,) or None
    reg_covar : float
        Added to the diagonal of every new covariance.

    Returns
    -------
    (weights, means, covariances) : tuple of ndarray
        The M-step's parameters, in scikit-learn's shapes.
    mean_log_likelihood : float
        ``sum_n w_n log p(x_n,o) / sum_n w_n`` over the non-empty rows, under
        the parameters passed in (scikit-learn's ``lower_bound_`` of this
        iteration's E-step).
    """
    X = np.asarray(X, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    n_samples, n_features = X.shape
    w = np.ones(n_samples) if sample_weight is None else np.asarray(sample_weight, np.float64)
    nonempty = ~_empty_rows(X)
    X, w = X[nonempty], w[nonempty]

    log_dens = component_log_densities(X, weights, means, covariances, covariance_type)
    log_p = logsumexp(log_dens, axis=1)
    resp = np.exp(log_dens - log_p[:, None])
    mean_log_likelihood = float(np.sum(w * log_p) / np.sum(w))

    completed, cond_cov = conditionals(X, means, covariances, covariance_type)
    wr = w[:, None] * resp  # (N, K)
    nk = wr.sum(axis=0) + COUNT_FLOOR
    new_means = np.einsum("nk,nkd->kd", wr, completed) / nk[:, None]
    # Second moments about the new means, conditional covariances added:
    # sum_n w r [(xhat - mu)(xhat - mu)^T + C], per component.
    centred = completed - new_means[None, :, :]
    scatter = (np.einsum("nk,nki,nkj->kij", wr, centred, centred)
               + np.einsum("nk,nkij->kij", wr, cond_cov))
    eye = np.eye(n_features)
    if covariance_type == "full":
        new_cov = scatter / nk[:, None, None] + reg_covar * eye
    elif covariance_type == "tied":
        new_cov = scatter.sum(axis=0) / nk.sum() + reg_covar * eye
    elif covariance_type == "diag":
        new_cov = np.diagonal(scatter, axis1=1, axis2=2) / nk[:, None] + reg_covar
    elif covariance_type == "spherical":
        new_cov = (np.diagonal(scatter, axis1=1, axis2=2) / nk[:, None] + reg_covar).mean(axis=1)
    else:
        raise ValueError(f"unknown covariance_type {covariance_type!r}")
    new_weights = nk / nk.sum()
    return (new_weights, new_means, new_cov), mean_log_likelihood


def run_em(X, weights, means, covariances, covariance_type, n_steps, sample_weight=None,
           reg_covar=1e-6):
    """``n_steps`` EM steps; returns the final parameters and the list of bounds.

    ``bounds[i]`` is the mean log-likelihood of step i's E-step (under the
    parameters after i steps), so after ``n_steps`` steps scikit-learn's
    ``lower_bound_`` is ``bounds[-1]`` and its parameters are the returned ones.
    """
    params = (np.asarray(weights, np.float64), np.asarray(means, np.float64),
              np.asarray(covariances, np.float64))
    bounds = []
    for _ in range(n_steps):
        params, bound = em_step(X, *params, covariance_type, sample_weight, reg_covar)
        bounds.append(bound)
    return params, bounds


def impute(X, weights, means, covariances, covariance_type):
    """The mixture's conditional mean of every missing value, and its standard deviation.

    Returns
    -------
    filled : ndarray of shape (N, D)
        X with each NaN replaced by ``sum_k P(k | x_o) E[x_m | x_o, k]``; an
        empty row gets the mixture mean ``sum_k w_k mu_k``.
    std : ndarray of shape (N, D)
        0 at observed entries; at missing ones, by the law of total variance,
        ``sqrt(sum_k p_k (C_k,dd + m_kd^2) - (sum_k p_k m_kd)^2)``.
    """
    X = np.asarray(X, dtype=np.float64)
    resp = responsibilities(X, weights, means, covariances, covariance_type)
    completed, cond_cov = conditionals(X, means, covariances, covariance_type)
    filled = np.einsum("nk,nkd->nd", resp, completed)
    second = np.einsum("nk,nkd->nd", resp,
                       np.diagonal(cond_cov, axis1=2, axis2=3) + completed**2)
    missing = np.isnan(X)
    variance = np.where(missing, second - filled**2, 0.0)
    filled = np.where(missing, filled, X)
    return filled, np.sqrt(np.maximum(variance, 0.0))


def remove_at_random(rng, X, fraction):
    """A copy of X with about `fraction` of its values set to NaN, uniformly at random.

    Returns ``(X_missing, mask)`` with ``mask`` True where a value was removed.
    """
    mask = rng.random(X.shape) < fraction
    out = np.array(X, dtype=np.float64, copy=True)
    out[mask] = np.nan
    return out, mask
