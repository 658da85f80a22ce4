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
from fastem._kmeans import data_mean_and_variance, kmeans, kmeans_plusplus, seed_positions
from fastem._stats import GaussianParameters, SufficientStatistics

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")


def initial_parameters(
    source, *, n_components, covariance_type, init_params, reg_covar, random_state, n_threads,
    given=(None, None, None), kmeans_centres=None,
):
    """The parameters EM starts from.

    Parameters
    ----------
    source : fastem._sources.RowSource
        The rows of X.  Initial weights are the counts divided by its total
        weight, as scikit-learn divides by n_samples.
    n_components : int
    covariance_type : str
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}
    reg_covar : float
    random_state : numpy.random.RandomState
    n_threads : int
    given : tuple of (ndarray or None)
        Checked ``weights_init``, ``means_init`` and the precision factors
        of ``precisions_init`` (lower triangular for full and tied).
    kmeans_centres : ndarray of shape (n_components, n_features), default=None
        With ``init_params="kmeans"``: centres k-means already found (and
        drew from `random_state`), shared by fits that differ only in
        covariance type (``fastem.select``).  None runs k-means here.

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
            source, n_components, covariance_type, init_params, random_state, n_threads,
            kmeans_centres)
        weights, means, covariances, factor = stats.m_step(
            reg_covar, total_weight=source.total_weight, dtype=source.dtype)
    if weights_init is not None:
        weights = weights_init
    if means_init is not None:
        means = means_init
    if factor_init is not None:
        factor = factor_init
        covariances = _covariance.covariances_from_precisions(factor, covariance_type)
    return GaussianParameters(weights, means, covariances, factor)


def _initial_statistics(source, k, covariance_type, init_params, random_state, n_threads,
                        centres=None):
    """Statistics of the responsibilities `init_params` stands for."""
    if init_params == "kmeans":
        if centres is None:
            centres = kmeans(source, k, random_state, n_threads=n_threads)
        stats = SufficientStatistics(covariance_type, centres, centres.mean(axis=0))
        return source.accumulate(stats, n_threads=n_threads)
    if init_params == "random":
        data_mean, _ = data_mean_and_variance(source, n_threads)
        stats = SufficientStatistics(covariance_type, np.repeat(data_mean[None], k, axis=0), data_mean)
        return source.accumulate(stats, random_responsibilities=random_state, n_threads=n_threads)
    if init_params == "k-means++":
        seeds, seed_weights = source.take(seed_positions(source.n_candidates, k, random_state))
        _, chosen = kmeans_plusplus(seeds, seed_weights, k, random_state)
        rows = seeds[chosen]
        row_weights = None if seed_weights is None else seed_weights[chosen]
    else:  # random_from_data
        rows, row_weights = source.take(random_state.choice(source.n_candidates, size=k, replace=False))
    return _one_row_per_component(source, rows, row_weights, covariance_type, n_threads)


def _one_row_per_component(source, rows, row_weights, covariance_type, n_threads):
    """Statistics of responsibility 1 on rows[k] for component k, 0 for every other row.

    The pass runs over those K rows only.  scikit-learn's tied covariance
    nevertheless sums the scatter over *every* row (zero responsibility
    does not remove a row from it), so for tied the scatter comes from a
    pass over all of X about the origin, and the K rows' statistics are
    taken about the origin too, so that both sides of the M-step's
    centring identity use the same centre.
    """
    rows = np.ascontiguousarray(rows)
    k, n_features = rows.shape
    origin = np.zeros(n_features)
    stats = SufficientStatistics(covariance_type, rows.astype(np.float64), origin)
    stats.add(rows, row_weights, responsibilities=np.eye(k), n_threads=n_threads)
    if stats.statistic != "tied":
        return stats
    everything = source.accumulate(SufficientStatistics("tied", origin[None], origin),
                                   n_threads=n_threads)
    flat = stats.flat()
    flat[1 + k + k * n_features:] = everything.totals().second.ravel()
    stats.lanes[:] = 0.0
    stats.lanes[0, :stats.n_stats] = flat
    return stats
