"""Initial parameters of a Gaussian mixture, as scikit-learn builds them.

scikit-learn turns each ``init_params`` into responsibilities and runs one
M-step on them.  fastem does the same through the sufficient-statistics
object, never building the (n_samples, n_components) responsibilities of the
data-driven methods:

- "kmeans": hard assignments to k-means centres (a nearest-centre pass);
- "k-means++": responsibility 1 on each of the K k-means++ seed rows;
- "random_from_data": responsibility 1 on each of K distinct random rows
  (among rows with a positive weight);
- "random": uniform random responsibilities, drawn block by block from the
  same random stream scikit-learn draws in one call, so the same
  ``random_state`` gives the same start.

Then ``weights_init``, ``means_init`` and ``precisions_init`` replace
whatever they give.
"""
import numpy as np

from fastem import _covariance
from fastem._kmeans import data_mean_and_variance, kmeans, kmeans_plusplus, seed_rows
from fastem._stats import GaussianParameters, SufficientStatistics

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")

# Rows per block when init_params="random" draws responsibilities: the draws
# must exist somewhere, and blocks keep them to a few MB.  A multiple of every
# chunk size, so the blocks add up exactly as one pass would.
_RANDOM_RESP_BLOCK_ROWS = 16384


def initial_parameters(
    X, sample_weight, total_weight, *, n_components, covariance_type, init_params,
    reg_covar, random_state, n_threads, given=(None, None, None),
):
    """The parameters EM starts from.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64, C-contiguous
    sample_weight : ndarray of shape (n_samples,) or None
    total_weight : float
        Sum of `sample_weight` (n_samples without): initial weights are the
        counts divided by it, as scikit-learn divides by n_samples.
    n_components : int
    covariance_type : str
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}
    reg_covar : float
    random_state : numpy.random.RandomState
    n_threads : int
    given : tuple of (ndarray or None)
        Checked ``weights_init``, ``means_init`` and the precision factors
        of ``precisions_init`` (lower triangular for full and tied).

    Returns
    -------
    GaussianParameters
        float64; full/tied precision factors as given (lower) or from the
        M-step (upper).
    """
    weights_init, means_init, factor_init = given
    weights = means = covariances = factor = None
    if weights_init is None or means_init is None or factor_init is None:
        stats = _initial_statistics(
            X, sample_weight, n_components, covariance_type, init_params, random_state, n_threads)
        weights, means, covariances, factor = stats.m_step(
            reg_covar, total_weight=total_weight, dtype=X.dtype)
    if weights_init is not None:
        weights = weights_init
    if means_init is not None:
        means = means_init
    if factor_init is not None:
        factor = factor_init
        covariances = _covariance.covariances_from_precisions(factor, covariance_type)
    return GaussianParameters(weights, means, covariances, factor)


def _initial_statistics(X, sample_weight, k, covariance_type, init_params, random_state, n_threads):
    """Statistics of the responsibilities `init_params` stands for."""
    n_samples, n_features = X.shape
    if init_params == "kmeans":
        centres = kmeans(X, sample_weight, k, random_state, n_threads=n_threads)
        stats = SufficientStatistics(covariance_type, centres, centres.mean(axis=0))
        return stats.add(X, sample_weight, n_threads=n_threads)
    if init_params == "random":
        data_mean, _ = data_mean_and_variance(X, sample_weight, n_threads)
        stats = SufficientStatistics(covariance_type, np.repeat(data_mean[None], k, axis=0), data_mean)
        for start in range(0, n_samples, _RANDOM_RESP_BLOCK_ROWS):
            block = X[start:start + _RANDOM_RESP_BLOCK_ROWS]
            resp = random_state.uniform(size=(len(block), k))
            resp /= resp.sum(axis=1)[:, None]
            weight = None if sample_weight is None else sample_weight[start:start + len(block)]
            stats.add(block, weight, responsibilities=resp, n_threads=n_threads)
        return stats
    if init_params == "k-means++":
        rows = seed_rows(n_samples, k, random_state, sample_weight)
        _, indices = kmeans_plusplus(X, sample_weight, k, random_state, rows=rows)
    else:  # random_from_data
        candidates = np.arange(n_samples) if sample_weight is None else np.flatnonzero(sample_weight)
        indices = candidates[random_state.choice(len(candidates), size=k, replace=False)]
    return _one_row_per_component(X, sample_weight, indices, covariance_type, n_threads)


def _one_row_per_component(X, sample_weight, indices, covariance_type, n_threads):
    """Statistics of responsibility 1 on row indices[k] for component k, 0 elsewhere.

    The pass runs over those K rows only.  scikit-learn's tied covariance
    nevertheless sums the scatter over *every* row (zero responsibility
    does not remove a row from it), so for tied the scatter comes from a
    pass over all of X about the origin, and the K rows' statistics are
    taken about the origin too, so that both sides of the M-step's
    centring identity use the same centre.
    """
    rows = np.ascontiguousarray(X[indices])
    k, n_features = rows.shape
    origin = np.zeros(n_features)
    row_weight = None if sample_weight is None else sample_weight[indices]
    stats = SufficientStatistics(covariance_type, rows.astype(np.float64), origin)
    stats.add(rows, row_weight, responsibilities=np.eye(k), n_threads=n_threads)
    if stats.statistic != "tied":
        return stats
    everything = SufficientStatistics("tied", origin[None], origin)
    everything.add(X, sample_weight, n_threads=n_threads)
    flat = stats.flat()
    flat[1 + k + k * n_features:] = everything.totals().second.ravel()
    stats.lanes[:] = 0.0
    stats.lanes[0, :stats.n_stats] = flat
    return stats
