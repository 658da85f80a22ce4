"""The problems ``fastem bench`` times: cases, the default grid, their data and one shared start.

A case is (covariance_type, N, D, K) plus the kind of data.  ``--cases``
picks cases from :data:`DEFAULT_GRID` or spells new ones; :func:`make_data`
draws a case's X, and :func:`partition_start` gives the initial parameters
every implementation starts from, so that all of them solve the same problem.
"""
import dataclasses
import math

import numpy as np

from fastem._covariance import COVARIANCE_NAMES, precisions_from_cholesky
from fastem._stats import SufficientStatistics
from fastem.bench.requirements import BenchError
from fastem.datasets import motivating_example

__all__ = [
    "Case",
    "DEFAULT_GRID",
    "StartingPoint",
    "make_data",
    "partition_start",
    "select_cases",
]

# --quick divides every case's N by 10.
QUICK_SCALE = 0.1
# scikit-learn's default, used by every implementation so they solve the same problem.
REG_COVAR = 1e-6
# Blob centres are drawn from N(0, BLOB_SPREAD^2) per coordinate, the blobs
# themselves have per-feature scales in [0.5, 1.5]: apart in most directions,
# so the whole fits converge in a realistic number of iterations.
BLOB_SPREAD = 4.0
DATA_SEED = 0


def _short_count(n):
    """1000000 -> '1e6', 200000 -> '2e5'; other counts as they are."""
    exponent = int(math.log10(n)) if n >= 10 else 0
    mantissa, rest = divmod(n, 10 ** exponent)
    if exponent >= 3 and rest == 0 and mantissa < 10:
        return f"{mantissa}e{exponent}"
    return str(n)


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark problem.

    Attributes
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_samples, n_features, n_components : int
    data : {"blobs", "example"}
        "blobs": ``n_components`` anisotropic Gaussian blobs; "example": the
        1-D mixture of ``fastem.datasets.motivating_example``.
    """

    covariance_type: str
    n_samples: int
    n_features: int
    n_components: int
    data: str = "blobs"

    @property
    def name(self):
        """``cov:N:D:K``, the form ``--cases`` accepts."""
        return (
            f"{self.covariance_type}:{_short_count(self.n_samples)}:"
            f"{self.n_features}:{self.n_components}"
        )

    def scaled(self, factor):
        """The same case with N multiplied by `factor` (at least 2 rows per component)."""
        n = max(int(round(self.n_samples * factor)), 2 * self.n_components)
        return dataclasses.replace(self, n_samples=n)


DEFAULT_GRID = (
    # The problem that motivated fastem: 1-D, two overlapping components.
    Case("full", 1_000_000, 1, 2, data="example"),
    Case("full", 200_000, 2, 3),
    Case("full", 200_000, 8, 8),
    Case("full", 100_000, 32, 16),
    Case("full", 20_000, 128, 8),
    Case("diag", 1_000_000, 16, 16),
    Case("diag", 100_000, 64, 64),
    Case("spherical", 1_000_000, 8, 8),
    Case("tied", 200_000, 16, 8),
)


def _positive_int(text, what, item):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value.is_integer() and value >= 1):
        raise BenchError(f"--cases {item!r}: {what} must be a positive integer, got {text!r}")
    return int(value)


def _parse_spec(item, grid=DEFAULT_GRID):
    parts = item.split(":")
    if len(parts) != 4:
        raise BenchError(
            f"--cases: {item!r} is neither an index (0-{len(grid) - 1}), a grid "
            "case name nor a spec covariance_type:N:D:K (e.g. full:2000:2:3) or hmm:T:D:K:S"
        )
    cov, n, d, k = (part.strip() for part in parts)
    if cov not in COVARIANCE_NAMES:
        raise BenchError(f"--cases {item!r}: covariance type must be one of {', '.join(COVARIANCE_NAMES)}")
    n, d, k = (_positive_int(text, what, item) for text, what in ((n, "N"), (d, "D"), (k, "K")))
    if n < 2 * k:
        raise BenchError(f"--cases {item!r}: N must be at least 2 K (2 rows per component)")
    return Case(cov, n, d, k)


def select_cases(text=None, quick=False, grid=DEFAULT_GRID):
    """The cases to run, from the ``--cases`` and ``--quick`` options.

    Parameters
    ----------
    text : str or None
        Comma-separated items, each a 0-based index into `grid`, a grid case's
        name (``full:1e6:1:2``) or any ``covariance_type:N:D:K`` spec; a spec
        with a grid case's values is that grid case.  HMM cases
        (:mod:`fastem.bench.hmm`): ``hmm`` for every HMM case of `grid`, or
        any ``hmm:T:D:K:S`` spec.  None: the whole grid.
    quick : bool
        Divide every N by 10.
    grid : sequence of Case or HMMCase

    Returns
    -------
    list of Case or HMMCase

    Raises
    ------
    BenchError
        If an item is none of the above.
    """
    if text is None:
        chosen = list(grid)
    else:
        items = [item.strip() for item in text.split(",")]
        if not any(items):
            raise BenchError("--cases: expected at least one case")
        chosen = []
        for item in items:
            if not item:
                raise BenchError(f"--cases {text!r}: empty item")
            if item.isdigit():
                index = int(item)
                if index >= len(grid):
                    raise BenchError(f"--cases: index {index} out of range 0-{len(grid) - 1}")
                chosen.append(grid[index])
                continue
            if item.split(":")[0].strip() == "hmm":
                chosen += _hmm_cases(item, grid)
                continue
            spec = _parse_spec(item, grid)
            same = [case for case in grid
                    if isinstance(case, Case) and dataclasses.replace(case, data="blobs") == spec]
            chosen.append(same[0] if same else spec)
    return [case.scaled(QUICK_SCALE) for case in chosen] if quick else chosen


def _hmm_cases(item, grid):
    """The HMM cases an item names: "hmm" (every HMM case of `grid`) or a ``hmm:T:D:K:S`` spec."""
    # Imported here: fastem.bench.hmm builds on this module.
    from fastem.bench.hmm import HMMCase, parse_hmm_spec

    if item.strip() != "hmm":
        return [parse_hmm_spec(item)]
    chosen = [case for case in grid if isinstance(case, HMMCase)]
    if not chosen:
        raise BenchError("--cases hmm: this grid has no HMM case (spell one: hmm:T:D:K:S)")
    return chosen


def make_data(case, seed=DATA_SEED):
    """The case's data: float64, C-contiguous, rows in random order.

    Parameters
    ----------
    case : Case
    seed : int

    Returns
    -------
    X : ndarray of shape (case.n_samples, case.n_features), float64
    """
    rng = np.random.default_rng(seed)
    if case.data == "example":
        if case.n_features != 1:
            raise ValueError("the motivating example has one feature")
        X, _ = motivating_example(case.n_samples, random_state=rng)
        return X
    n, d, k = case.n_samples, case.n_features, case.n_components
    centers = rng.normal(scale=BLOB_SPREAD, size=(k, d))
    scales = rng.uniform(0.5, 1.5, size=(k, d))
    labels = rng.integers(k, size=n)
    X = rng.standard_normal((n, d))
    X *= scales[labels]
    X += centers[labels]
    return X


@dataclasses.dataclass
class StartingPoint:
    """Initial parameters shared by every implementation.

    Attributes
    ----------
    weights : ndarray of shape (K,)
    means : ndarray of shape (K, D)
    covariances, precisions : ndarray
        Shaped as scikit-learn's ``covariances_`` for the covariance type,
        ``fastem._covariance.covariance_type(name).shape(K, D)``.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions: np.ndarray

    def init_kwargs(self):
        """``weights_init``/``means_init``/``precisions_init``, as fresh copies
        (scikit-learn keeps the arrays it is given)."""
        return dict(
            weights_init=self.weights.copy(),
            means_init=self.means.copy(),
            precisions_init=self.precisions.copy(),
        )


# Rows of one-hot responsibilities drawn up at a time by partition_start.
_PARTITION_BLOCK_ROWS = 16384


def partition_start(X, n_components, covariance_type, seed=DATA_SEED, reg_covar=REG_COVAR):
    """Initial parameters from a random partition of X into equal shares.

    Every component starts with weight 1/K and the mean and covariance of a
    random K-th of the rows, so all components start near the data's overall
    mean and spread and each gets a fair share of the data in the first
    E-step, whatever the implementation (a start from k-means or from data
    points could leave a component nearly empty and make an iteration cheap).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_components : int
    covariance_type : {"full", "tied", "diag", "spherical"}
    seed : int
    reg_covar : float
        Added to the variances, as every implementation does after an M-step.

    Returns
    -------
    StartingPoint
    """
    n, d = X.shape
    k = n_components
    rng = np.random.default_rng(seed)
    labels = rng.permutation(n) % k
    # The engine's own M-step on the partition's hard responsibilities, drawn up
    # a block at a time; moments about the data's mean keep them accurate.
    centre = X.mean(axis=0)
    stats = SufficientStatistics(covariance_type, np.repeat(centre[None], k, axis=0), centre)
    for start in range(0, n, _PARTITION_BLOCK_ROWS):
        part = labels[start:start + _PARTITION_BLOCK_ROWS]
        resp = np.zeros((len(part), k))
        resp[np.arange(len(part)), part] = 1.0
        stats.add(X[start:start + len(part)], responsibilities=resp)
    params = stats.m_step(reg_covar)
    precisions = precisions_from_cholesky(params.precisions_cholesky, covariance_type)
    return StartingPoint(np.full(k, 1.0 / k), params.means, params.covariances, precisions)
