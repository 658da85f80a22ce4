"""k-means for the default initialisation: k-means++ seeding and Lloyd iterations.

Each Lloyd iteration is one pass of the fused kernel with a nearest-mean
assignment (counts and first moments about the current centres), so it shares
the kernel's chunking, threading and bitwise reproducibility.
"""
import numpy as np

from fastem._kernels import Assign, Stats, accumulate, score

# Rows per block when k-means++ scores its candidate centres in NumPy; bounds
# the temporary to about this many rows times the number of candidates.
_SEEDING_BLOCK_ROWS = 8192


def _candidate_potentials(X, sample_weight, closest, candidates):
    """For each candidate c: sum_n w_n min(closest_n, |x_n - c|^2)."""
    potentials = np.zeros(len(candidates))
    cand_sq = np.einsum("ij,ij->i", candidates, candidates)
    for start in range(0, X.shape[0], _SEEDING_BLOCK_ROWS):
        block = X[start:start + _SEEDING_BLOCK_ROWS].astype(np.float64, copy=False)
        dist = np.einsum("ij,ij->i", block, block)[:, None] - 2.0 * (block @ candidates.T) + cand_sq
        np.maximum(dist, 0.0, out=dist)  # the expansion can dip below zero by rounding
        np.minimum(dist, closest[start:start + len(block), None], out=dist)
        if sample_weight is not None:
            dist *= sample_weight[start:start + len(block), None]
        potentials += dist.sum(axis=0)
    return potentials


def kmeans_plusplus(X, sample_weight, n_clusters, random_state, *, chunk_rows, n_threads):
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
    chunk_rows, n_threads : int
        Passed to the kernels.

    Returns
    -------
    centers : ndarray of shape (n_clusters, n_features), float64
    indices : ndarray of shape (n_clusters,)
        Rows of X chosen as centres.
    """
    n_samples = X.shape[0]
    n_trials = 2 + int(np.log(n_clusters))
    weights = np.ones(n_samples) if sample_weight is None else sample_weight
    indices = np.empty(n_clusters, dtype=np.intp)
    indices[0] = random_state.choice(n_samples, p=weights / weights.sum())
    centers = np.empty((n_clusters, X.shape[1]))
    centers[0] = X[indices[0]]
    closest, _, _ = score(X, Assign.ASSIGN_NEAREST, centers[:1], chunk_rows=chunk_rows, n_threads=n_threads)
    for c in range(1, n_clusters):
        cumulative = np.cumsum(weights * closest)
        draws = random_state.uniform(size=n_trials) * cumulative[-1]
        candidates_idx = np.minimum(np.searchsorted(cumulative, draws), n_samples - 1)
        candidates = X[candidates_idx].astype(np.float64)
        best = int(np.argmin(_candidate_potentials(X, sample_weight, closest, candidates)))
        indices[c] = candidates_idx[best]
        centers[c] = candidates[best]
        new_dist, _, _ = score(X, Assign.ASSIGN_NEAREST, centers[c:c + 1], chunk_rows=chunk_rows, n_threads=n_threads)
        np.minimum(closest, new_dist, out=closest)
    return centers, indices


def kmeans(X, sample_weight, n_clusters, random_state, *, chunk_rows, n_threads, max_iter=300, tol=1e-4):
    """Lloyd's k-means from k-means++ seeds.

    Stops when the total squared movement of the centres is at most
    ``tol`` times the mean per-feature variance of X, or after `max_iter`
    passes.  An empty cluster is moved to the row farthest from its centre.

    Returns
    -------
    centers : ndarray of shape (n_clusters, n_features), float64
    """
    centers, _ = kmeans_plusplus(
        X, sample_weight, n_clusters, random_state, chunk_rows=chunk_rows, n_threads=n_threads
    )
    mean_variance = _mean_variance(X, sample_weight, chunk_rows=chunk_rows, n_threads=n_threads)
    threshold = tol * mean_variance
    for _ in range(max_iter):
        _, counts, first, _ = accumulate(
            X, sample_weight, Assign.ASSIGN_NEAREST, Stats.STATS_NONE, centers,
            chunk_rows=chunk_rows, n_threads=n_threads,
        )
        empty = counts <= 0
        step = np.zeros_like(centers)
        step[~empty] = first[~empty] / counts[~empty, None]
        new_centers = centers + step
        if np.any(empty):
            dist, _, _ = score(X, Assign.ASSIGN_NEAREST, centers, chunk_rows=chunk_rows, n_threads=n_threads)
            if sample_weight is not None:
                dist = np.where(sample_weight > 0, dist, -1.0)
            far = np.argsort(dist, kind="stable")[::-1][: int(empty.sum())]
            new_centers[empty] = X[far]
        shift = float(((new_centers - centers) ** 2).sum())
        centers = new_centers
        if shift <= threshold:
            break
    return centers


def _mean_variance(X, sample_weight, *, chunk_rows, n_threads):
    """Mean over features of the weighted variance of X, from two kernel passes."""
    origin = np.zeros((1, X.shape[1]))
    _, count, first, _ = accumulate(
        X, sample_weight, Assign.ASSIGN_NEAREST, Stats.STATS_NONE, origin,
        chunk_rows=chunk_rows, n_threads=n_threads,
    )
    center = first / count[:, None]
    _, count, _, second = accumulate(
        X, sample_weight, Assign.ASSIGN_NEAREST, Stats.STATS_DIAG, center,
        chunk_rows=chunk_rows, n_threads=n_threads,
    )
    return float((second / count[:, None]).mean())
