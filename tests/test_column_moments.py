"""The column path's statistics (D < 8) bit for bit against their summation order.

The column path adds a chunk's moments in one sweep per component
(fastem_component_moments in _simd_columns.h), with the products and the four
fixed partial sums of _simd.pxd: element n of a sum goes to partial sum n mod 4
(the last rows % 4 elements to the first), and the partial sums are added as
(s0 + s1) + (s2 + s3).  Here the same order in NumPy, on one chunk, must give
the same bits, for every feature count of the path, ragged row counts and
components with no weight in the chunk.
"""
import numpy as np
import pytest

from fastem._stats import SufficientStatistics


def _four_lane_sum(values):
    """sum(values) in the kernels' order (cumsum down a column is sequential)."""
    full = len(values) - len(values) % 4
    lanes = [0.0, 0.0, 0.0, 0.0]
    if full:
        lanes = list(np.cumsum(values[:full].reshape(-1, 4), axis=0)[-1])
    for v in values[full:]:
        lanes[0] += v
    return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])


def _expected(X, resp, weights, centres, tied_centre, statistic):
    n, d = X.shape
    k_count = resp.shape[1]
    if weights is None:
        wr = resp.copy()
    else:
        with np.errstate(invalid="ignore"):
            wr = np.where(weights[:, None] == 0.0, 0.0, weights[:, None] * resp)
    counts = np.zeros(k_count)
    first = np.zeros((k_count, d))
    second = {"full": np.zeros((k_count, d, d)), "diag": np.zeros((k_count, d)),
              "tied": np.zeros((d, d))}[statistic]
    if statistic == "tied":
        w = np.ones(n) if weights is None else weights
        t = X - tied_centre
        for i in range(d):
            for j in range(i, d):
                second[i, j] = 0.0 + _four_lane_sum((w * t[:, i]) * t[:, j])
    for k in range(k_count):
        r = wr[:, k]
        count = _four_lane_sum(r)
        if count == 0.0:
            continue  # the kernel skips a component with no weight in the chunk
        counts[k] = 0.0 + count
        c = X - centres[k]
        for i in range(d):
            rc = r * c[:, i]
            first[k, i] = 0.0 + _four_lane_sum(rc)
            if statistic == "diag":
                second[k, i] = 0.0 + _four_lane_sum(rc * c[:, i])
            elif statistic == "full":
                for j in range(i, d):
                    second[k, i, j] = 0.0 + _four_lane_sum(rc * c[:, j])
    return counts, first, second


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("n_features", range(1, 8))
@pytest.mark.parametrize("n_rows", [1, 6, 403])
@pytest.mark.parametrize("weighted", [False, True])
def test_one_chunk_matches_the_summation_order(rng, covariance_type, n_features, n_rows, weighted):
    k_count = 3
    X = rng.normal(size=(n_rows, n_features)) * 2.0 + 5.0
    resp = rng.dirichlet(np.ones(k_count), size=n_rows)
    if covariance_type != "tied":
        resp[:, 1] = 0.0              # a component with no weight in the chunk
        resp[rng.random(n_rows) < 0.3, 2] = 0.0
    weights = None
    if weighted:
        weights = rng.uniform(0.0, 2.0, size=n_rows)
        weights[::5] = 0.0
        if covariance_type != "tied":   # (tied checks that rows sum to one)
            resp[::5] = np.nan          # a zero-weight row drops out even so
    centres = rng.normal(size=(k_count, n_features)) + 5.0
    tied_centre = centres.mean(axis=0) + 0.25
    stats = SufficientStatistics(covariance_type, centres, tied_centre)
    stats.add(X, weights, responsibilities=resp, n_threads=1)
    totals = stats.totals()
    counts, first, second = _expected(X, resp, weights, centres, tied_centre, stats.statistic)
    assert totals.counts.tobytes() == counts.tobytes()
    assert totals.first.tobytes() == first.tobytes()
    assert totals.second.tobytes() == second.tobytes()
