"""``fastem bench``: fastem against scikit-learn (and daal4py when installed), beside this machine's limits.

For every case of a grid of (covariance_type, N, D, K) the benchmark measures,
in one process and with the same thread count for everyone:

- the time of one EM iteration of each implementation, all started from the
  same initial parameters (the statistics of a random partition of X);
- the time of a whole ``fit`` with default settings (k-means initialisation,
  ``tol=1e-3``, ``random_state=0``) for fastem and scikit-learn;
- the peak NumPy memory each whole ``fit`` allocates beyond X (tracemalloc);
- the machine's limit for one iteration: the largest of the times needed to
  read X once, to do the iteration's floating-point work at the measured GEMM
  peak, and to evaluate its N*K exponentials at the measured ``np.exp`` rate.

The command line (``fastem.cli``) parses the options and calls
:func:`select_cases`, :func:`run_bench`, :func:`format_report` and
:func:`write_plot`; everything is plain Python and NumPy, so the module can be
imported without scikit-learn, matplotlib or daal4py, which are only loaded
when a benchmark runs or a chart is drawn.
"""
import dataclasses
import importlib
import importlib.metadata
import math
import os
import platform
import statistics
import time
import tracemalloc
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import threadpoolctl

import fastem
from fastem.datasets import motivating_example

__all__ = [
    "BenchError",
    "Case",
    "DEFAULT_GRID",
    "check_requirements",
    "flop_count",
    "format_report",
    "iteration_limit",
    "make_data",
    "measure_machine",
    "partition_start",
    "run_bench",
    "select_cases",
    "write_plot",
]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INSTALL_HINT = 'pip install "fastem[bench]"'

# --quick divides every case's N by 10.
QUICK_SCALE = 0.1
# scikit-learn's default, used by every implementation so they solve the same problem.
REG_COVAR = 1e-6
# Blob centres are drawn from N(0, BLOB_SPREAD^2) per coordinate, the blobs
# themselves have per-feature scales in [0.5, 1.5]: apart in most directions,
# so the whole fits converge in a realistic number of iterations.
BLOB_SPREAD = 4.0
DATA_SEED = 0

# One EM iteration is timed as (t(1 + m) - t(1)) / m: a fit that runs 1 + m
# iterations minus one that runs 1, both from the same start.  The difference
# removes what a fit does once (input checks, scikit-learn's KMeans, which it
# runs even when all three *_init arrays are given, and the final E-step it
# adds after the loop).  m is chosen per implementation so that the m
# iterations take about ITER_TARGET_SECONDS, or as long as the 1-iteration fit
# if that is longer (scikit-learn's KMeans can take a second, and its timer
# noise must stay small next to the difference), but at most
# MAX_TIMED_SECONDS: a timed fit lasts 0.2-2 s, a little more at worst.
ITER_TARGET_SECONDS = 0.5
# Pause before every timed run (see _timed).
SETTLE_SECONDS = 0.25
MAX_TIMED_SECONDS = 2.0
MIN_TIMED_ITERS, MAX_TIMED_ITERS = 2, 50
CALIBRATION_ITERS = 2

# Machine probes.  GEMM: 2 n^3 flops, 0.2-0.5 s at tens of GFLOP/s; the best of
# GEMM_REPEATS (on a shared VM a best of 3 once read 46 GFLOP/s where 76 is usual).
GEMM_SIZE = 2048
GEMM_REPEATS = 5
# Streaming read: large enough to defeat any cache (1 GiB).
BANDWIDTH_BYTES = 1 << 30
BANDWIDTH_REPEATS = 3
# exp: a block whose input and output stay in L2 (2 x 128 KiB), so the rate is
# that of the exp code, not of the memory behind it; the best of EXP_REPEATS
# windows of EXP_SECONDS (on a shared VM one window read anywhere from 84 to
# 157 M/s: the best is the machine's rate, as the GEMM peak is a best too).
EXP_BLOCK = 1 << 14
EXP_SECONDS = 0.2
EXP_REPEATS = 5
# log-responsibilities, the values an E-step exponentiates, are <= 0.
EXP_INPUT_RANGE = (-30.0, 0.0)

# Above this share of the CPUs' time used by other processes during a case,
# the report says that case's timings are not reliable.
BUSY_MACHINE_SHARE = 0.05

# Environment variables that override OpenBLAS's CPU detection: reported, never changed.
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

MB = 1e6


class BenchError(ValueError):
    """A bad option or a missing requirement, reported as one line (exit status 2)."""


class _Unsupported(Exception):
    """The implementation has no equivalent of this case (e.g. daal4py and tied covariances)."""


# ---------------------------------------------------------------------- cases

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


def _parse_spec(item):
    parts = item.split(":")
    if len(parts) != 4:
        raise BenchError(
            f"--cases: {item!r} is neither an index (0-{len(DEFAULT_GRID) - 1}), a grid "
            "case name nor a spec covariance_type:N:D:K (e.g. full:2000:2:3)"
        )
    cov, n, d, k = (part.strip() for part in parts)
    if cov not in COVARIANCE_TYPES:
        raise BenchError(f"--cases {item!r}: covariance type must be one of {', '.join(COVARIANCE_TYPES)}")
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
        with a grid case's values is that grid case.  None: the whole grid.
    quick : bool
        Divide every N by 10.
    grid : sequence of Case

    Returns
    -------
    list of Case

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
            spec = _parse_spec(item)
            same = [case for case in grid if dataclasses.replace(case, data="blobs") == spec]
            chosen.append(same[0] if same else spec)
    return [case.scaled(QUICK_SCALE) for case in chosen] if quick else chosen


# ----------------------------------------------------------------------- data

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
        Shaped as scikit-learn's ``covariances_`` for the covariance type:
        (K, D, D) full, (D, D) tied, (K, D) diag, (K,) spherical.
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


def _inverse_spd(matrix):
    # Through the Cholesky factor, then symmetrised: scikit-learn refuses a
    # precisions_init that is not symmetric to rounding.
    inv_factor = np.linalg.inv(np.linalg.cholesky(matrix))
    inverse = inv_factor.T @ inv_factor
    return (inverse + inverse.T) / 2.0


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
    means = np.empty((k, d))
    scatters = np.empty((k, d, d)) if covariance_type in ("full", "tied") else np.empty((k, d))
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    for j in range(k):
        centred = X[labels == j]
        means[j] = centred.mean(axis=0)
        centred -= means[j]
        if covariance_type in ("full", "tied"):
            scatters[j] = centred.T @ centred
        else:
            scatters[j] = np.einsum("ij,ij->j", centred, centred)
    if covariance_type == "full":
        covariances = scatters / counts[:, None, None] + reg_covar * np.eye(d)
        precisions = np.stack([_inverse_spd(c) for c in covariances])
    elif covariance_type == "tied":
        covariances = scatters.sum(axis=0) / n + reg_covar * np.eye(d)
        precisions = _inverse_spd(covariances)
    elif covariance_type == "diag":
        covariances = scatters / counts[:, None] + reg_covar
        precisions = 1.0 / covariances
    else:
        covariances = scatters.mean(axis=1) / counts + reg_covar
        precisions = 1.0 / covariances
    return StartingPoint(np.full(k, 1.0 / k), means, covariances, precisions)


# ------------------------------------------------------------ machine limits

def flop_count(covariance_type, n_samples, n_features, n_components):
    """Floating-point operations of one EM iteration (E-step and M-step statistics).

    full: each row is whitened by each component's D x D Cholesky factor
    (2 D^2 flops) and its D x D outer product is added to that component's
    scatter (2 D^2): 4 N K D^2.  tied: one shared factor whitens each row once
    and one scatter is accumulated (2 N D^2), plus the N x K distances and
    first moments in the whitened space (4 N K D).  diag and spherical: per row
    and component, a scaled squared distance (3 D) and the first and second
    moments (3 D): 6 N K D.

    These are dense counts.  Whitening by a triangular factor (TRMM) and
    accumulating one triangle of a symmetric scatter (SYRK), as fastem's BLAS
    path does from 8 features on, take about half of the full count, so for
    full covariances at large D fastem can come in under 1x the limit.

    Parameters
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_samples, n_features, n_components : int

    Returns
    -------
    int
    """
    n, d, k = n_samples, n_features, n_components
    if covariance_type == "full":
        return 4 * n * k * d * d
    if covariance_type == "tied":
        return 2 * n * d * d + 4 * n * k * d
    if covariance_type in ("diag", "spherical"):
        return 6 * n * k * d
    raise ValueError(f"unknown covariance_type {covariance_type!r}")


def iteration_limit(case, machine, itemsize=8):
    """The machine's lower bound on the time of one EM iteration of `case`.

    limit = max(bytes of X / read bandwidth, flops / GEMM peak, N K / exp rate):
    an iteration must read X at least once, do :func:`flop_count` flops and
    evaluate one exponential per row and component.

    Parameters
    ----------
    case : Case
    machine : dict
        With ``read_bandwidth`` (bytes/s), ``gemm_flops`` (flop/s) and
        ``exp_rate`` (exponentials/s, for the thread count used), as
        :func:`measure_machine` returns.
    itemsize : int
        Bytes per element of X (8 for float64).

    Returns
    -------
    dict
        ``bytes``, ``flops``, ``exps`` (per iteration), the seconds each
        takes (``memory_seconds``, ``flops_seconds``, ``exp_seconds``),
        ``seconds`` (their maximum) and ``bound`` ("memory", "flops" or "exp").
    """
    n, d, k = case.n_samples, case.n_features, case.n_components
    counts = dict(
        bytes=n * d * itemsize,
        flops=flop_count(case.covariance_type, n, d, k),
        exps=n * k,
    )
    seconds = dict(
        memory=counts["bytes"] / machine["read_bandwidth"],
        flops=counts["flops"] / machine["gemm_flops"],
        exp=counts["exps"] / machine["exp_rate"],
    )
    bound = max(seconds, key=seconds.get)
    return dict(
        counts,
        memory_seconds=seconds["memory"],
        flops_seconds=seconds["flops"],
        exp_seconds=seconds["exp"],
        seconds=seconds[bound],
        bound=bound,
    )


def _best_time(run, repeats):
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _measure_gemm(threads):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((GEMM_SIZE, GEMM_SIZE))
    b = rng.standard_normal((GEMM_SIZE, GEMM_SIZE))
    out = np.empty_like(a)
    with threadpoolctl.threadpool_limits(limits=threads, user_api="blas"):
        np.matmul(a, b, out=out)  # warm-up: threads started, pages touched
        seconds = _best_time(lambda: np.matmul(a, b, out=out), GEMM_REPEATS)
    return 2.0 * GEMM_SIZE ** 3 / seconds


def _measure_bandwidth(threads):
    # NumPy's reductions and copies are single-threaded but release the GIL,
    # so `threads` Python threads each streaming a slice read it in parallel.
    n = BANDWIDTH_BYTES // 8
    source = np.empty(n)
    source.fill(1.0)  # touch every page before timing
    target = np.empty(n)
    target.fill(0.0)
    sources = np.array_split(source, threads)
    targets = np.array_split(target, threads)
    with ThreadPoolExecutor(threads) as pool:
        def read():
            list(pool.map(np.sum, sources))

        def copy():
            list(pool.map(np.copyto, targets, sources))

        read_seconds = _best_time(read, BANDWIDTH_REPEATS)
        copy_seconds = _best_time(copy, BANDWIDTH_REPEATS)
    # A copy moves every byte twice (read, then written).
    return source.nbytes / read_seconds, 2 * source.nbytes / copy_seconds


def _measure_exp():
    x = np.random.default_rng(0).uniform(*EXP_INPUT_RANGE, size=EXP_BLOCK)
    out = np.empty_like(x)

    def run(calls):
        for _ in range(calls):
            np.exp(x, out=out)

    # Count the calls that fill one EXP_SECONDS window, then keep the best of
    # EXP_REPEATS timings of that many.
    run(1)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < EXP_SECONDS:
        run(16)
        calls += 16
    return calls * EXP_BLOCK / _best_time(lambda: run(calls), EXP_REPEATS)


def measure_machine(threads):
    """Measure this machine's GEMM peak, memory bandwidth and exp rate.

    Parameters
    ----------
    threads : int
        Thread count of the benchmark: BLAS is limited to it for the GEMM,
        the bandwidth is read by that many threads, and the single-threaded
        ``np.exp`` rate is multiplied by it.

    Returns
    -------
    dict
        ``gemm_flops`` (flop/s, float64 ``np.matmul`` of GEMM_SIZE square
        matrices, best of GEMM_REPEATS), ``read_bandwidth`` and
        ``copy_bandwidth`` (bytes/s: a streaming sum and copy of
        BANDWIDTH_BYTES), ``exp_rate_one_thread`` and ``exp_rate``
        (exponentials/s; the second is the first times `threads`), plus the
        probe sizes.
    """
    gemm = _measure_gemm(threads)
    read, copy = _measure_bandwidth(threads)
    exp_one = _measure_exp()
    return dict(
        threads=threads,
        gemm_flops=gemm,
        gemm_size=GEMM_SIZE,
        read_bandwidth=read,
        copy_bandwidth=copy,
        bandwidth_bytes=BANDWIDTH_BYTES,
        exp_rate_one_thread=exp_one,
        exp_rate=exp_one * threads,
    )


# -------------------------------------------------------- environment facts

def _cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _available_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count()


class _OtherLoad:
    """CPU time that other processes take while we measure (Linux; None elsewhere).

    Timings are only comparable on a quiet machine: a busy CPU stalls the
    threads of a parallel region at every barrier, which can make a 2-thread
    BLAS call many times slower.  The machine's busy time (/proc/stat) minus
    this process's own CPU time (os.times) is what the others used.
    """

    def __init__(self):
        self._start = self._sample()

    @staticmethod
    def _sample():
        try:
            with open("/proc/stat") as fh:
                fields = [int(v) for v in fh.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        # user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
        busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
        own = os.times()
        return time.perf_counter(), busy, own.user + own.system

    def fraction(self):
        """Share of all CPUs' time used by other processes since construction, in [0, 1]."""
        end = self._sample()
        if self._start is None or end is None or end[0] <= self._start[0]:
            return None
        wall = end[0] - self._start[0]
        others = (end[1] - self._start[1]) - (end[2] - self._start[2])
        return min(max(others / (wall * (_available_cpus() or 1)), 0.0), 1.0)


def _thread_pools():
    """threadpoolctl's view of the loaded BLAS and OpenMP libraries, trimmed."""
    keys = ("user_api", "internal_api", "version", "num_threads", "architecture", "prefix", "filepath")
    return [
        {key: entry[key] for key in keys if key in entry}
        for entry in threadpoolctl.threadpool_info()
    ]


def _package_version(module, *distributions):
    version = getattr(module, "__version__", None)
    for name in distributions:
        if version:
            break
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return version or "unknown version"


def _environment(threads, daal4py):
    import sklearn

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return dict(
        fastem=fastem.__version__,
        sklearn=sklearn.__version__,
        daal4py=None if daal4py is None else _package_version(daal4py, "daal4py", "scikit-learn-intelex"),
        numpy=np.__version__,
        python=platform.python_version(),
        cpu=_cpu_model(),
        cpus_available=_available_cpus(),
        load_average=None if load is None else [round(v, 2) for v in load],
        threads=threads,
        fastem_threads=fastem.effective_n_threads(threads),
        fastem_built_with_openmp=fastem.built_with_openmp(),
        daal4py_threads=None if daal4py is None else int(daal4py.num_threads()),
        openblas_env={name: os.environ.get(name) for name in OPENBLAS_ENV},
    )


# --------------------------------------------------------- implementations

def _import_daal4py():
    """daal4py, or None when it is not installed (it is never a requirement)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module("daal4py")
    except ImportError:
        return None


def check_requirements(plot=False):
    """Fail early, with the command that fixes it, when a needed package is missing.

    Parameters
    ----------
    plot : bool
        Whether a chart will be drawn (matplotlib is then needed).

    Raises
    ------
    BenchError
    """
    try:
        importlib.import_module("sklearn.mixture")
    except ImportError:
        raise BenchError(
            f"fastem bench compares with scikit-learn, which is not installed: {INSTALL_HINT} "
            '(or pip install "scikit-learn>=1.6")'
        ) from None
    if plot:
        try:
            importlib.import_module("matplotlib")
        except ImportError:
            raise BenchError(
                f"--plot needs matplotlib, which is not installed: {INSTALL_HINT} "
                "(or pip install matplotlib)"
            ) from None


def _quiet_fit(model, X):
    # Fits stopped by max_iter warn; the benchmark asks for exactly that.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    return model


class _Runner:
    """How the benchmark drives one implementation."""

    name = None

    def em(self, X, case, start, max_iter):
        """Fit from `start` with at most `max_iter` iterations and tol=0; return the iterations run."""
        raise NotImplementedError

    def fit(self, X, case):
        """Whole fit with default settings; return (n_iter, converged)."""
        raise NotImplementedError


class _EstimatorRunner(_Runner):
    """fastem's or scikit-learn's GaussianMixture: the same API, `extra` aside."""

    def __init__(self, name, estimator, **extra):
        self.name, self.estimator, self.extra = name, estimator, extra

    def em(self, X, case, start, max_iter):
        model = self.estimator(
            case.n_components, covariance_type=case.covariance_type, max_iter=max_iter,
            tol=0.0, reg_covar=REG_COVAR, **self.extra, **start.init_kwargs(),
        )
        return _quiet_fit(model, X).n_iter_

    def fit(self, X, case):
        model = self.estimator(
            case.n_components, covariance_type=case.covariance_type, random_state=0, **self.extra,
        )
        model = _quiet_fit(model, X)
        return model.n_iter_, bool(model.converged_)


class _Daal4pyRunner(_Runner):
    name = "daal4py"
    # em_gmm's covariance storages; it has no tied or spherical model.
    STORAGE = {"full": "full", "diag": "diagonal"}

    def __init__(self, daal4py):
        self.daal4py = daal4py

    def em(self, X, case, start, max_iter):
        storage = self.STORAGE.get(case.covariance_type)
        if storage is None:
            raise _Unsupported(f"em_gmm has no {case.covariance_type} covariance")
        # em_gmm takes weights as a 1 x K table and the covariances as a list
        # of K tables: D x D matrices ("full") or 1 x D rows ("diagonal").
        weights = start.weights[None, :].copy()
        if storage == "full":
            covariances = [np.ascontiguousarray(c) for c in start.covariances]
        else:
            covariances = [c[None, :].copy() for c in start.covariances]
        algorithm = self.daal4py.em_gmm(
            nComponents=case.n_components, maxIterations=max_iter, accuracyThreshold=0.0,
            regularizationFactor=REG_COVAR, covarianceStorage=storage,
        )
        result = algorithm.compute(X, weights, start.means.copy(), covariances)
        return int(np.asarray(result.nIterations).ravel()[0])


# ----------------------------------------------------------------- timing

def _timed(run, *args):
    # Let the previous run's worker threads go idle first: OpenBLAS's spin for
    # about 0.1 s after a call (as do OpenMP's and TBB's, for less), and a
    # spinning thread would take a core from whichever implementation runs next.
    time.sleep(SETTLE_SECONDS)
    start = time.perf_counter()
    value = run(*args)
    return time.perf_counter() - start, value


def _peak_numpy_bytes(run, *args):
    """Peak bytes tracemalloc sees allocated during `run` beyond what was live before.

    NumPy reports its array buffers to tracemalloc; memory that C or C++ code
    allocates itself (fastem's per-thread scratch, daal4py) is not seen.
    """
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        value = run(*args)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return max(peak, 0), value


def _timed_iterations(seconds_per_iteration, setup_seconds):
    """m, the iterations to time beyond the first (see ITER_TARGET_SECONDS)."""
    target = min(max(ITER_TARGET_SECONDS, setup_seconds), MAX_TIMED_SECONDS)
    m = math.ceil(target / max(seconds_per_iteration, 1e-9))
    return max(MIN_TIMED_ITERS, min(MAX_TIMED_ITERS, m))


def _failure(runner, exc):
    """The result entry of a case an implementation could not run.

    An unsupported case is expected of daal4py, and so are its failures on
    some data ("Error during covariance computation ..."): both are reported
    in the table.  Anything else, or any failure of fastem or scikit-learn,
    is a bug and is raised again.
    """
    if isinstance(exc, _Unsupported):
        return dict(status="unsupported", message=str(exc))
    if runner.name == "daal4py":
        return dict(status="error", message=_one_line(f"{type(exc).__name__}: {exc}"))
    raise exc


def _time_em(runners, X, case, start, repeats):
    """Seconds per EM iteration of each runner, all from `start`.

    Each runner is first warmed up and calibrated: fits of 1 and
    1 + CALIBRATION_ITERS iterations give a first estimate of one iteration,
    from which m is chosen.  Then the repeats run round-robin over the
    runners (short fit, long fit, next runner), so that a change in the
    machine's load during the run affects every implementation alike.
    """
    results, plans = {}, {}
    for runner in runners:
        try:
            t_short, _ = _timed(runner.em, X, case, start, 1)
            t_long, n_long = _timed(runner.em, X, case, start, 1 + CALIBRATION_ITERS)
        except Exception as exc:  # noqa: BLE001 - _failure re-raises what is not expected
            results[runner.name] = _failure(runner, exc)
            continue
        estimate = max(t_long - t_short, 0.1 * t_long) / max(n_long - 1, 1)
        plans[runner.name] = _timed_iterations(estimate, t_short)
        results[runner.name] = dict(status="ok", short=[], long=[], timed_iterations=plans[runner.name])

    for _ in range(repeats):
        for runner in runners:
            entry = results[runner.name]
            if entry["status"] != "ok":
                continue
            try:
                t_short, n_short = _timed(runner.em, X, case, start, 1)
                t_long, n_long = _timed(runner.em, X, case, start, 1 + plans[runner.name])
            except Exception as exc:  # noqa: BLE001 - _failure re-raises what is not expected
                results[runner.name] = _failure(runner, exc)
                continue
            entry["short"].append(t_short)
            entry["long"].append(t_long)
            entry["iterations"] = n_long - n_short
            entry["iterations_long_fit"] = n_long

    for entry in results.values():
        if entry["status"] != "ok":
            continue
        short, long = statistics.median(entry["short"]), statistics.median(entry["long"])
        entry["median_short_seconds"], entry["median_long_seconds"] = short, long
        # The literal measure, setup included: one long fit over its iterations.
        entry["seconds_per_iteration_whole_fit"] = long / entry["iterations_long_fit"]
        if long > short and entry["iterations"] > 0:
            entry["seconds_per_iteration"] = (long - short) / entry["iterations"]
            entry["method"] = "difference"
        else:
            # Timer noise larger than m iterations (a tiny case on a busy machine).
            entry["seconds_per_iteration"] = entry["seconds_per_iteration_whole_fit"]
            entry["method"] = "whole fit"
    return results


def _time_fit(runners, X, case, repeats):
    """Whole default fits: one traced run (peak memory, also the warm-up), then timed repeats."""
    results = {}
    for runner in runners:
        peak, (n_iter, converged) = _peak_numpy_bytes(runner.fit, X, case)
        results[runner.name] = dict(peak_bytes=peak, n_iter=n_iter, converged=converged, times=[])
    for _ in range(repeats):
        for runner in runners:
            seconds, _ = _timed(runner.fit, X, case)
            results[runner.name]["times"].append(seconds)
    for entry in results.values():
        entry["seconds"] = statistics.median(entry["times"])
    return results


def _one_line(message):
    return " ".join(str(message).split())


def _ratio(numerator, denominator):
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def _seconds_per_iteration(entry):
    return entry.get("seconds_per_iteration") if entry and entry.get("status") == "ok" else None


def run_bench(cases, threads=2, repeats=3, quick=False, progress=None):
    """Run the benchmark.

    Parameters
    ----------
    cases : list of Case
    threads : int
        fastem's ``n_threads``; BLAS and OpenMP (scikit-learn) are limited to
        it with threadpoolctl, and daal4py is set to it with ``daalinit``.
    repeats : int
        Timed repeats per measurement; medians are reported.
    quick : bool
        Only recorded in the results (the cases are already scaled).
    progress : file-like or None
        Where to write one line per finished case (e.g. ``sys.stderr``).

    Returns
    -------
    dict
        Plain data (JSON-serialisable): ``settings``, ``environment``,
        ``thread_pools``, ``machine`` and one entry per case in ``cases``.
    """
    check_requirements()
    daal4py = _import_daal4py()
    with threadpoolctl.threadpool_limits(limits=threads):
        previous_daal_threads = None
        if daal4py is not None:
            previous_daal_threads = int(daal4py.num_threads())
            daal4py.daalinit(threads)
        try:
            environment = _environment(threads, daal4py)
            from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

            runners = [
                _EstimatorRunner("fastem", fastem.GaussianMixture, n_threads=threads),
                _EstimatorRunner("sklearn", SklearnGaussianMixture),
            ]
            if daal4py is not None:
                runners.append(_Daal4pyRunner(daal4py))
            thread_pools = _thread_pools()
            whole_run = _OtherLoad()
            machine = measure_machine(threads)
            results = []
            for number, case in enumerate(cases, start=1):
                during_case = _OtherLoad()
                results.append(_run_case(case, runners, machine, repeats))
                results[-1]["other_load"] = during_case.fraction()
                if progress is not None:
                    print(f"[{number}/{len(cases)}] {_progress_line(results[-1])}", file=progress, flush=True)
        finally:
            if previous_daal_threads is not None:
                daal4py.daalinit(previous_daal_threads)
    return dict(
        settings=dict(threads=threads, repeats=repeats, quick=quick, reg_covar=REG_COVAR,
                      iteration_target_seconds=ITER_TARGET_SECONDS,
                      max_timed_seconds=MAX_TIMED_SECONDS, data_seed=DATA_SEED),
        environment=environment,
        thread_pools=thread_pools,
        machine=machine,
        other_load=whole_run.fraction(),
        implementations=[runner.name for runner in runners],
        daal4py_installed=daal4py is not None,
        cases=results,
    )


def _run_case(case, runners, machine, repeats):
    X = make_data(case)
    start = partition_start(X, case.n_components, case.covariance_type)
    limit = iteration_limit(case, machine, itemsize=X.itemsize)
    per_iteration = _time_em(runners, X, case, start, repeats)
    fits = _time_fit([r for r in runners if r.name in ("fastem", "sklearn")], X, case, repeats)
    fastem_iter = _seconds_per_iteration(per_iteration["fastem"])
    return dict(
        name=case.name,
        covariance_type=case.covariance_type,
        n_samples=case.n_samples,
        n_features=case.n_features,
        n_components=case.n_components,
        data=case.data,
        limit=limit,
        per_iteration=per_iteration,
        speedup={
            name: _ratio(_seconds_per_iteration(per_iteration[name]), fastem_iter)
            for name in per_iteration if name != "fastem"
        },
        limit_multiple=_ratio(fastem_iter, limit["seconds"]),
        fit=fits,
        fit_ratio=_ratio(fits["sklearn"]["seconds"], fits["fastem"]["seconds"]),
    )


def _progress_line(result):
    parts = [f"{result['name']} (N={result['n_samples']}):"]
    for name, entry in result["per_iteration"].items():
        value = _seconds_per_iteration(entry)
        parts.append(f"{name} {_fmt(value) if value is not None else entry['status']} s/iter,")
    parts.append(f"fit fastem {_fmt(result['fit']['fastem']['seconds'])} s, "
                 f"sklearn {_fmt(result['fit']['sklearn']['seconds'])} s")
    return " ".join(parts)


# ----------------------------------------------------------------- report

def _fmt(value, digits=3):
    """Three significant digits, no exponent for the usual magnitudes."""
    if value is None:
        return "-"
    if value == 0 or abs(value) >= 1e-4:
        text = f"{value:#.{digits}g}"
        # Past `digits` integer digits, %g switches to an exponent: print the integer.
        return f"{value:.0f}" if "e" in text else text.rstrip(".")
    return f"{value:.{digits - 1}e}"


def _status_cell(entry):
    value = _seconds_per_iteration(entry)
    return _fmt(value) if value is not None else entry["status"]


def _speedup_cell(result, name):
    value = result["speedup"].get(name)
    if value is not None:
        return _fmt(value)
    return result["per_iteration"][name]["status"]


def table_columns(implementations):
    """Column titles of the report's table, in order.

    Parameters
    ----------
    implementations : list of str
        As in ``run_bench(...)["implementations"]``.

    Returns
    -------
    list of str
    """
    columns = ["#", "case", "N"]
    columns += [f"{name} s/iter" for name in implementations]
    columns += [f"speed-up vs {name}" for name in implementations if name != "fastem"]
    columns += [
        "limit ms (bound)", "fastem / limit",
        "fit fastem s (iters)", "fit sklearn s (iters)", "fit sklearn / fastem",
        "peak MB fastem (NumPy, tracemalloc)", "peak MB sklearn (NumPy, tracemalloc)",
    ]
    return columns


def _table_row(number, result, implementations):
    fit = result["fit"]
    limit = result["limit"]
    row = [str(number), result["name"], str(result["n_samples"])]
    row += [_status_cell(result["per_iteration"][name]) for name in implementations]
    row += [_speedup_cell(result, name) for name in implementations if name != "fastem"]
    row += [
        f"{_fmt(limit['seconds'] * 1e3)} ({limit['bound']})",
        _fmt(result["limit_multiple"]),
        f"{_fmt(fit['fastem']['seconds'])} ({fit['fastem']['n_iter']})",
        f"{_fmt(fit['sklearn']['seconds'])} ({fit['sklearn']['n_iter']})",
        _fmt(result["fit_ratio"]),
        _fmt(fit["fastem"]["peak_bytes"] / MB),
        _fmt(fit["sklearn"]["peak_bytes"] / MB),
    ]
    return row


def _markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _pool_line(pool):
    name = f"{pool['user_api']} {pool.get('internal_api', '?')} {pool.get('version') or '(no version)'}"
    facts = [f"{pool.get('num_threads')} threads"]
    if pool.get("architecture"):
        facts.append(f"architecture {pool['architecture']}")
    where = os.path.basename(pool.get("filepath", "")) or pool.get("prefix", "")
    return f"- {name}: {', '.join(facts)} ({where})"


def _header(results):
    env, machine, settings = results["environment"], results["machine"], results["settings"]
    threads = settings["threads"]
    daal = (
        f"daal4py {env['daal4py']} ({env['daal4py_threads']} threads via daal4py.daalinit)"
        if results["daal4py_installed"]
        else "daal4py not installed: skipped (pip install scikit-learn-intelex to include it)"
    )
    load = env["load_average"]
    lines = [
        "## fastem bench",
        "",
        f"- fastem {env['fastem']} ({env['fastem_threads']} OpenMP threads, "
        f"built with OpenMP: {'yes' if env['fastem_built_with_openmp'] else 'no'}), "
        f"scikit-learn {env['sklearn']}, {daal}; NumPy {env['numpy']}, Python {env['python']}",
        f"- CPU: {env['cpu']}, {env['cpus_available']} CPUs available"
        + (f", load average {load[0]} {load[1]} {load[2]} at the start" if load else "")
        + (f"; other processes used {results['other_load']:.0%} of the CPUs' time during the run"
           if results["other_load"] is not None else ""),
        f"- threads: {threads} (fastem n_threads={threads}; BLAS and OpenMP limited to "
        f"{threads} by threadpoolctl for scikit-learn and daal4py); "
        f"{settings['repeats']} timed repeats, medians" + ("; --quick: N / 10" if settings["quick"] else ""),
        "- thread pools during the runs (threadpoolctl.threadpool_info()):",
    ]
    lines += ["  " + _pool_line(pool) for pool in results["thread_pools"]]
    env_vars = ", ".join(
        f"{name}={value}" if value is not None else f"{name} unset"
        for name, value in env["openblas_env"].items()
    )
    lines.append(
        f"- {env_vars} (when set, these override OpenBLAS's CPU detection and slow "
        "numpy's BLAS; left as found)"
    )
    lines += [
        f"- machine limits measured now: GEMM peak {_fmt(machine['gemm_flops'] / 1e9)} GFLOP/s "
        f"(float64 np.matmul {machine['gemm_size']}^2, {threads} BLAS threads, best of {GEMM_REPEATS}); "
        f"memory read {_fmt(machine['read_bandwidth'] / 1e9)} GB/s and copy "
        f"{_fmt(machine['copy_bandwidth'] / 1e9)} GB/s (read + write; "
        f"{machine['bandwidth_bytes'] / 2 ** 30:g} GiB, {threads} threads); "
        f"exp {_fmt(machine['exp_rate_one_thread'] / 1e6)} M/s on one thread, best of {EXP_REPEATS} windows "
        f"(np.exp is single-threaded: scaled by {threads} threads to "
        f"{_fmt(machine['exp_rate'] / 1e6)} M/s)",
        "- limit = max(bytes of X / read bandwidth, flops / GEMM peak, N K exps / exp rate) per "
        "iteration; flops 4 N K D^2 (full), 2 N D^2 + 4 N K D (tied), 6 N K D (diag, spherical)",
        "- s/iter: one EM iteration from the same start for every implementation (a random "
        "partition's means and covariances, weights 1/K), measured as (t(1 + m) - t(1)) / m "
        "so that once-per-fit work (input checks, scikit-learn's KMeans run even when all "
        "*_init are given) is left out; speed-up = their s/iter / fastem's",
        "- fit: whole fit with default settings (init_params='kmeans', tol=1e-3, "
        "random_state=0), seconds (iterations); peak MB: NumPy allocations seen by "
        "tracemalloc beyond X during that fit (fastem's per-thread C buffers are not seen)",
    ]
    return "\n".join(lines)


def format_report(results):
    """The Markdown report: a header of machine, BLAS and thread facts, then the table.

    Parameters
    ----------
    results : dict
        As returned by :func:`run_bench`.

    Returns
    -------
    str
    """
    implementations = results["implementations"]
    rows = [_table_row(number, result, implementations) for number, result in enumerate(results["cases"])]
    text = _header(results) + "\n\n" + _markdown_table(table_columns(implementations), rows)
    notes = []
    for result in results["cases"]:
        if result["other_load"] is not None and result["other_load"] > BUSY_MACHINE_SHARE:
            notes.append(f"- {result['name']}: other processes used {result['other_load']:.0%} "
                         "of the CPUs' time during this case: its timings are not reliable")
        for name, entry in result["per_iteration"].items():
            if entry["status"] != "ok":
                notes.append(f"- {result['name']}: {name} {entry['status']}: {entry['message']}")
            elif entry["method"] != "difference":
                notes.append(f"- {result['name']}: {name} s/iter is a whole fit over its "
                             "iterations (timer noise exceeded the timed iterations)")
    if notes:
        text += "\n\n" + "\n".join(notes)
    return text


def write_plot(results, path):
    """Save a bar chart of fastem's speed-ups per case to `path` (PNG).

    Parameters
    ----------
    results : dict
        As returned by :func:`run_bench`.
    path : str

    Raises
    ------
    BenchError
        If matplotlib is not installed.
    """
    check_requirements(plot=True)
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    cases = results["cases"]
    series = [
        (f"per iteration vs {name}", [c["speedup"].get(name) for c in cases])
        for name in results["implementations"] if name != "fastem"
    ]
    series.append(("whole fit vs sklearn", [c["fit_ratio"] for c in cases]))
    width = 0.8 / len(series)
    positions = np.arange(len(cases))
    figure = Figure(figsize=(max(6.0, 1.1 * len(cases) + 2.0), 4.8), layout="constrained")
    axes = figure.add_subplot()
    for index, (label, values) in enumerate(series):
        # A case an implementation does not support gets no bar.
        heights = [v if v is not None else np.nan for v in values]
        bars = axes.bar(positions + (index - (len(series) - 1) / 2) * width, heights, width, label=label)
        axes.bar_label(bars, labels=[_fmt(v, 2) if v is not None else "" for v in values],
                       fontsize=7, padding=1)
        for bar, value in zip(bars, values):
            if value is None:
                axes.text(bar.get_x() + bar.get_width() / 2, 1.0, "n/a",
                          ha="center", va="bottom", fontsize=7, rotation=90)
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.set_yscale("log")
    axes.set_xticks(positions, [f"{c['name']}\nN={c['n_samples']}" for c in cases],
                    rotation=30, ha="right", fontsize=8)
    axes.set_ylabel("fastem speed-up (x, log scale)")
    settings = results["settings"]
    axes.set_title(f"fastem {results['environment']['fastem']}: speed-up per case "
                   f"({settings['threads']} threads, median of {settings['repeats']})")
    axes.legend(fontsize=8)
    figure.savefig(path, dpi=120)
