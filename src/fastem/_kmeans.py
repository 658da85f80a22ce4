"""k-means for the default initialisation: k-means++ seeding and Lloyd iterations.

The initialisation is meant to cost no more than a few EM iterations of the
fit it starts, so almost all of its work is done on a uniform random
subsample of X:

1. draw a subsample of ``_LLOYD_ROWS_PER_CLUSTER`` rows per cluster (all of X
   when X is no larger) and copy it once;
2. seed with k-means++ on part of it (``_SEED_ROWS_PER_CLUSTER`` rows per
   cluster: seeding is NumPy work that grows with rows x clusters x trials);
3. run Lloyd on the subsample until the centres settle, within a budget of
   ``_LLOYD_BUDGET_PASSES`` passes' worth of rows of X;
4. make ``_FULL_DATA_PASSES`` Lloyd passes over all of X.

Why stop there: the subsample's centres differ from those of X only by
sampling noise, which one full pass removes to first order on separated
clusters.  On overlapping clusters Lloyd creeps towards its fixed point over
tens or hundreds of passes (there, running Lloyd over all of X until it
settled, as fastem used to, took 50 to 125 passes in our trials and cost more
than the whole EM).  EM moves the same means, one pass over X per iteration
too, and optimises the likelihood rather than the k-means objective, so that
creeping is left to EM.  The estimator's statistics pass that turns the
centres into the initial mixture is itself one more nearest-centre assignment
over X.

Every Lloyd pass is one call of the fused kernel with a nearest-mean
assignment (counts and first moments about the current centres), sharing its
chunking, threads and bitwise reproducibility.  Nothing is allocated per row of
X: the subsample is at most a few hundred rows per cluster.
"""
import numpy as np

from fastem._sources import ArrayRows
from fastem._stats import SufficientStatistics

# Rows seen by k-means++: enough for good seeds, few enough that seeding costs
# a small fraction of one Lloyd pass on large data.
_SEED_ROWS_PER_CLUSTER = 64
_SEED_MIN_ROWS = 2048

# Rows per cluster of the Lloyd subsample.  A centre estimated from m rows is
# off by about sigma / sqrt(m) per feature: 256 rows put it within 1/16 of a
# cluster's spread, close enough for the full-data pass to finish the job,
# while a pass over the subsample stays cheap next to one over X.
_LLOYD_ROWS_PER_CLUSTER = 256

# Lloyd on the subsample stops, converged or not, once it has touched as many
# rows as this many passes over X (a Lloyd pass is a cheaper kernel pass than
# an EM iteration, so this stays within a few EM iterations).  It binds on
# overlapping clusters, where Lloyd would creep on for hundreds of passes, and
# when the subsample is most of X.
_LLOYD_BUDGET_PASSES = 8

# Lloyd passes over all of X after the subsample has settled (see above).
_FULL_DATA_PASSES = 1

# Rows per block when distances are computed in NumPy: bounds the temporary to
# this many rows times the number of candidate centres.
_BLOCK_ROWS = 4096


def seed_positions(n_candidates, n_clusters, random_state):
    """Sorted distinct positions of the seeding subsample among the candidate rows (None: all)."""
    wanted = max(_SEED_MIN_ROWS, _SEED_ROWS_PER_CLUSTER * n_clusters)
    return _subsample_positions(n_candidates, wanted, random_state)


def _subsample_positions(n_candidates, wanted, random_state):
    """Sorted distinct positions of about `wanted` random candidate rows (None: all of them).

    Candidates are the rows with a positive weight (fastem._sources): a row
    of weight zero does not count, and a uniform draw over all rows could miss
    the few that do (10 weighted rows among 100,000 would rarely be drawn).
    """
    if n_candidates <= wanted:
        return None
    # Draw with replacement and drop repeats: choice(replace=False) would
    # allocate a permutation of all the candidates.
    return np.unique(random_state.randint(0, n_candidates, size=wanted))


def _blocks(X, rows):
    """Yield (start, block as float64) over the rows of X selected by `rows`."""
    n = X.shape[0] if rows is None else len(rows)
    for start in range(0, n, _BLOCK_ROWS):
        if rows is None:
            block = X[start:start + _BLOCK_ROWS]
        else:
            block = X[rows[start:start + _BLOCK_ROWS]]
        yield start, block.astype(np.float64, copy=False)


def _squared_distances(block, centers):
    """(len(block), len(centers)) squared distances, clipped at 0 against rounding."""
    dist = (
        np.einsum("ij,ij->i", block, block)[:, None]
        - 2.0 * (block @ centers.T)
        + np.einsum("ij,ij->i", centers, centers)
    )
    return np.maximum(dist, 0.0, out=dist)


def _closest_and_potentials(X, rows, weights, closest, candidates):
    """Per candidate c: sum_n w_n min(closest_n, |x_n - c|^2)."""
    potentials = np.zeros(len(candidates))
    for start, block in _blocks(X, rows):
        dist = _squared_distances(block, candidates)
        np.minimum(dist, closest[start:start + len(block), None], out=dist)
        potentials += weights[start:start + len(block)] @ dist
    return potentials


def kmeans_plusplus(X, sample_weight, n_clusters, random_state, rows=None):
    """Greedy k-means++ seeding (Arthur & Vassilvitskii, 2007).

    Each new centre is the best, by potential, of 2 + log(k) candidates drawn
    with probability proportional to the weighted squared distance to the
    nearest centre so far.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64
    sample_weight : ndarray of shape (n_samples,) or None
    n_clusters : int
    random_state : numpy.random.RandomState
    rows : ndarray of int or None
        Seed from these rows of X only (None: all rows).

    Returns
    -------
    centers : ndarray of shape (n_clusters, n_features), float64
    indices : ndarray of shape (n_clusters,)
        Rows of X chosen as centres.
    """
    n = X.shape[0] if rows is None else len(rows)
    row_of = (lambda i: i) if rows is None else (lambda i: rows[i])
    if sample_weight is None:
        weights = np.ones(n)
    else:
        weights = sample_weight if rows is None else sample_weight[rows]
    n_trials = 2 + int(np.log(n_clusters))
    positions = np.empty(n_clusters, dtype=np.intp)
    positions[0] = random_state.choice(n, p=weights / weights.sum())
    centers = np.empty((n_clusters, X.shape[1]))
    centers[0] = X[row_of(positions[0])]
    closest = np.empty(n)
    for start, block in _blocks(X, rows):
        closest[start:start + len(block)] = _squared_distances(block, centers[:1])[:, 0]
    for c in range(1, n_clusters):
        cumulative = np.cumsum(weights * closest)
        draws = random_state.uniform(size=n_trials) * cumulative[-1]
        candidate_pos = np.minimum(np.searchsorted(cumulative, draws), n - 1)
        candidates = np.asarray(X[[row_of(i) for i in candidate_pos]], dtype=np.float64)
        best = int(np.argmin(_closest_and_potentials(X, rows, weights, closest, candidates)))
        positions[c] = candidate_pos[best]
        centers[c] = candidates[best]
        for start, block in _blocks(X, rows):
            part = closest[start:start + len(block)]
            np.minimum(part, _squared_distances(block, centers[c:c + 1])[:, 0], out=part)
    indices = positions if rows is None else rows[positions]
    return centers, indices


def kmeans(source, n_clusters, random_state, *, n_threads, max_iter=300, tol=1e-4):
    """Lloyd's k-means from k-means++ seeds, mostly on a subsample (see the module docstring).

    Lloyd stops when the total squared movement of the centres is at most
    ``tol`` times the mean per-feature variance of the subsample, after
    `max_iter` passes, or when its budget is spent.  A cluster left empty is
    moved to the subsample row farthest from every centre.

    Parameters
    ----------
    source : fastem._sources.RowSource
        The rows of X; only the subsample is ever copied.
    n_clusters : int
    random_state : numpy.random.RandomState
    n_threads : int
        Threads of the engine's passes.
    max_iter : int
    tol : float

    Returns
    -------
    centers : ndarray of shape (n_clusters, n_features), float64
    """
    positions = _subsample_positions(
        source.n_candidates, max(_SEED_MIN_ROWS, _LLOYD_ROWS_PER_CLUSTER * n_clusters), random_state)
    subsample = ArrayRows(*source.take(positions))
    seeds = seed_positions(subsample.n_samples, n_clusters, random_state)
    centers, _ = kmeans_plusplus(subsample.X, subsample.sample_weight, n_clusters, random_state,
                                 rows=seeds)
    # The tolerance only scales a stopping rule: the subsample's variance serves
    # as well as that of X and spares a pass over X.  The budget is at least
    # _LLOYD_BUDGET_PASSES passes, as the subsample is never larger than X.
    threshold = tol * data_mean_and_variance(subsample, n_threads)[1]
    sub_passes = min(max_iter, int(_LLOYD_BUDGET_PASSES * source.n_samples / subsample.n_samples))
    centers = _lloyd(subsample, subsample, centers, sub_passes, threshold, n_threads)
    if positions is not None:
        full_passes = min(max_iter, _FULL_DATA_PASSES)
        centers = _lloyd(source, subsample, centers, full_passes, threshold, n_threads)
    return centers


def _lloyd(source, subsample, centers, max_iter, threshold, n_threads):
    """Lloyd passes over `source` from `centers` until they move by at most `threshold` (squared).

    An empty cluster moves to the `subsample` row farthest from the other centres.
    """
    for _ in range(max_iter):
        counts, first = _nearest_centre_sums(source, centers, n_threads)
        empty = counts <= 0
        step = np.zeros_like(centers)
        step[~empty] = first[~empty] / counts[~empty, None]
        new_centers = centers + step
        if np.any(empty):
            new_centers[empty] = _farthest_rows(subsample, new_centers[~empty], int(empty.sum()))
        shift = float(((new_centers - centers) ** 2).sum())
        centers = new_centers
        if shift <= threshold:
            break
    return centers


def _farthest_rows(subsample, centers, count):
    """The `count` rows of `subsample` (with positive weight) farthest from `centers`."""
    X, sample_weight = subsample.X, subsample.sample_weight
    distances = []
    for start, block in _blocks(X, None):
        dist = _squared_distances(block, centers).min(axis=1)
        if sample_weight is not None:
            dist[sample_weight[start:start + len(block)] <= 0] = -1.0
        distances.append(dist)
    order = np.argsort(np.concatenate(distances), kind="stable")[::-1][:count]
    return np.asarray(X[order], dtype=np.float64)


def _nearest_centre_sums(source, centers, n_threads):
    """One Lloyd pass: each centre's count and sum of (x - centre) over its nearest rows."""
    _, counts, first, _ = source.accumulate(SufficientStatistics(None, centers), n_threads=n_threads).totals()
    return counts, first


def data_mean_and_variance(source, n_threads):
    """Weighted mean of X and the mean over features of its variance, from one kernel pass.

    Moments are taken about the first candidate row rather than the origin,
    so data far from the origin lose no precision to E[x^2] - E[x]^2.

    Parameters
    ----------
    source : fastem._sources.RowSource

    Returns
    -------
    mean : ndarray of shape (n_features,)
    mean_variance : float
    """
    shift = np.asarray(source.take(np.zeros(1, dtype=np.intp))[0], dtype=np.float64)
    # One centre: every row is "nearest" to it, so this is a plain weighted pass.
    _, count, first, second = source.accumulate(
        SufficientStatistics("diag", shift), n_threads=n_threads).totals()
    offset = first[0] / count[0]
    return shift[0] + offset, float((second[0] / count[0] - offset**2).mean())
