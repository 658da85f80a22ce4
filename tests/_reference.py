"""Pure-NumPy reference of the kernel entry points ``fastem._testing.accumulate`` and ``score``.

Each function here states the mathematics of one compiled entry point as
plainly as NumPy allows: whole (n_samples, n_components) arrays, no chunks, no
threads.  Speed and memory do not matter; being obviously right does.  The
compiled kernels must agree with these functions to rounding (the summation
order differs, so agreement is close, not bitwise).
"""
import numpy as np
from scipy.special import logsumexp

from fastem._kernels import Assign, Stats

__all__ = ["accumulate_reference", "score_reference"]


def _as_2d(a, n_rows, n_cols):
    return np.asarray(a, dtype=np.float64).reshape(n_rows, n_cols)


def _log_densities(X, assign, means, precision_factor, log_norm, whitened_means):
    """(N, K) log-densities L; for ``ASSIGN_NEAREST`` minus the squared distances."""
    n_components, n_features = means.shape
    centred = X[:, None, :] - means[None, :, :]  # (N, K, D)
    if assign == Assign.ASSIGN_NEAREST:
        return -np.sum(centred**2, axis=2)
    log_norm = np.asarray(log_norm, dtype=np.float64).reshape(n_components)
    if assign == Assign.ASSIGN_FULL:
        # The kernel reads only the upper triangle of each factor.
        factor = np.triu(
            np.asarray(precision_factor, dtype=np.float64).reshape(
                n_components, n_features, n_features
            )
        )
        whitened = np.einsum("nki,kij->nkj", centred, factor)
    elif assign == Assign.ASSIGN_TIED:
        # Like the kernel: x U - (m_k U), with m_k U taken from `whitened_means`.
        factor = np.triu(_as_2d(precision_factor, n_features, n_features))
        whitened = (X @ factor)[:, None, :] - _as_2d(whitened_means, n_components, n_features)
    elif assign == Assign.ASSIGN_DIAG:
        whitened = centred * _as_2d(precision_factor, n_components, n_features)
    else:
        raise ValueError(f"no log-densities for assign={assign}")
    return log_norm - 0.5 * np.sum(whitened**2, axis=2)


def _normalise(log_dens, assign):
    """Per-row value, responsibilities and labels from (N, K) log-densities.

    Returns ``(row_value, resp, labels)``: the log-likelihood of each row (the
    squared distance to the nearest mean for ``ASSIGN_NEAREST``), the (N, K)
    responsibilities and the first component of highest log-density.
    """
    n_samples, n_components = log_dens.shape
    labels = np.argmax(log_dens, axis=1)  # argmax returns the first of tied maxima
    rows = np.arange(n_samples)
    if assign == Assign.ASSIGN_NEAREST:
        resp = np.zeros_like(log_dens)
        resp[rows, labels] = 1.0
        return -log_dens[rows, labels], resp, labels
    row_value = logsumexp(log_dens, axis=1)
    # A row where every density is zero has log p = -inf and, as in the kernel,
    # zero responsibilities rather than the NaNs of exp(-inf - -inf).
    finite = np.isfinite(row_value)
    resp = np.zeros_like(log_dens)
    resp[finite] = np.exp(log_dens[finite] - row_value[finite, None])
    return row_value, resp, labels


def accumulate_reference(
    X,
    sample_weight,
    assign,
    stats,
    means,
    precision_factor=None,
    log_norm=None,
    whitened_means=None,
    tied_shift=None,
    given_resp=None,
    chunk_rows=1024,
    n_threads=1,
):
    """Reference of ``fastem._testing.accumulate``: one E-step and its M-step sums.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Data, float32 or float64; computed on in float64.
    sample_weight : array-like of shape (n_samples,) or None
        Row weights (None: all ones).  Rows of weight 0 are dropped before
        anything else, so even a row of zero density contributes nothing.
    assign : int
        An ``Assign`` value: how responsibilities are obtained.
    stats : int
        A ``Stats`` value: which second-order sums to return.
    means : array-like of shape (n_components, n_features)
        Component means; the moments are taken about them.
    precision_factor : array-like or None
        Upper-triangular factor U of the precision, ``(x - m) U`` whitens:
        (K, D, D) for FULL, (D, D) for TIED, (K, D) elementwise for DIAG.
    log_norm : array-like of shape (n_components,) or None
        ``log weight_k + log det U_k - D/2 log(2 pi)`` (Gaussian assignments).
    whitened_means : array-like of shape (n_components, n_features) or None
        TIED only: ``means[k] @ U``.
    tied_shift : array-like of shape (n_features,) or None
        STATS_TIED only: the centre c of the tied scatter.
    given_resp : array-like of shape (n_samples, n_components) or None
        GIVEN only: the responsibilities to use.
    chunk_rows, n_threads : int
        Accepted for signature compatibility and ignored.

    Returns
    -------
    log_lik : float
        ``sum_n w_n log p(x_n)``; NEAREST: the weighted inertia
        ``sum_n w_n min_k |x_n - m_k|^2``; GIVEN: 0.
    counts : ndarray of shape (n_components,), float64
        ``sum_n w_n r_nk``.
    first : ndarray of shape (n_components, n_features), float64
        ``sum_n w_n r_nk (x_n - m_k)``.
    second : ndarray or None
        FULL: (K, D, D) ``sum_n w_n r_nk (x_n - m_k)(x_n - m_k)^T``;
        TIED: (D, D) ``sum_n w_n (x_n - c)(x_n - c)^T``, whatever the r_nk;
        DIAG: (K, D) ``sum_n w_n r_nk (x_n - m_k)^2``; NONE: None.
        Square blocks hold their upper triangle only, zeros below.
    """
    X = np.asarray(X, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    weight = (
        np.ones(n_samples)
        if sample_weight is None
        else np.asarray(sample_weight, dtype=np.float64).reshape(n_samples)
    )
    kept = weight != 0
    X, weight = X[kept], weight[kept]

    if assign == Assign.ASSIGN_GIVEN:
        resp = _as_2d(given_resp, n_samples, n_components)[kept]
        log_lik = 0.0
    else:
        log_dens = _log_densities(X, assign, means, precision_factor, log_norm, whitened_means)
        row_value, resp, _ = _normalise(log_dens, assign)
        log_lik = float(np.sum(weight * row_value))

    weighted_resp = weight[:, None] * resp  # (N, K)
    centred = X[:, None, :] - means[None, :, :]  # (N, K, D)
    counts = weighted_resp.sum(axis=0)
    first = np.einsum("nk,nki->ki", weighted_resp, centred)
    if stats == Stats.STATS_FULL:
        second = np.triu(np.einsum("nk,nki,nkj->kij", weighted_resp, centred, centred))
    elif stats == Stats.STATS_TIED:
        shifted = X - np.asarray(tied_shift, dtype=np.float64).reshape(n_features)
        second = np.triu((weight[:, None] * shifted).T @ shifted)
    elif stats == Stats.STATS_DIAG:
        second = np.einsum("nk,nki->ki", weighted_resp, centred**2)
    else:
        second = None
    return log_lik, counts, first, second


def score_reference(
    X,
    assign,
    means,
    precision_factor=None,
    log_norm=None,
    whitened_means=None,
    want_log_prob=True,
    want_resp=False,
    want_labels=False,
    chunk_rows=1024,
    n_threads=1,
):
    """Reference of ``fastem._testing.score``: per-row E-step outputs.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Data, float32 or float64; computed on in float64.
    assign : int
        A Gaussian ``Assign`` value or ``ASSIGN_NEAREST``.
    means, precision_factor, log_norm, whitened_means : array-like or None
        As for :func:`accumulate_reference`.
    want_log_prob, want_resp, want_labels : bool
        Which outputs to compute; the others are returned as None.
    chunk_rows, n_threads : int
        Accepted for signature compatibility and ignored.

    Returns
    -------
    log_prob : ndarray of shape (n_samples,), float64, or None
        ``log p(x_n)``; NEAREST: squared distance to the nearest mean.
    resp : ndarray of shape (n_samples, n_components), float64, or None
        Responsibilities (one-hot for NEAREST).
    labels : ndarray of shape (n_samples,), intp, or None
        First component of highest log-density (the nearest mean for NEAREST).
    """
    X = np.asarray(X, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    log_dens = _log_densities(X, assign, means, precision_factor, log_norm, whitened_means)
    row_value, resp, labels = _normalise(log_dens, assign)
    return (
        row_value if want_log_prob else None,
        resp if want_resp else None,
        labels.astype(np.intp) if want_labels else None,
    )
