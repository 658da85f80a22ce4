"""This machine, measured: its limits for one EM iteration and the facts a report must carry.

Limits: the GEMM peak, the memory bandwidth and the ``np.exp`` rate, measured
with the benchmark's thread count, and a model of the work of one iteration
(:func:`flop_count`) that turns them into a lower bound on its time
(:func:`iteration_limit`).  Facts: versions, CPU, thread pools, the
environment variables that change OpenBLAS, and how busy other processes kept
the CPUs while we measured (:class:`OtherLoad`).
"""
import importlib.metadata
import math
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import threadpoolctl

import fastem
from fastem._covariance import COVARIANCE_NAMES

__all__ = [
    "OtherLoad",
    "environment",
    "flop_count",
    "flop_formulas",
    "iteration_limit",
    "measure_machine",
    "thread_pools",
]

# GEMM: 2 n^3 flops, 0.2-0.5 s at tens of GFLOP/s; the best of GEMM_REPEATS
# (on a shared VM a best of 3 once read 46 GFLOP/s where 76 is usual).
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

# Environment variables that override OpenBLAS's CPU detection: reported, never changed.
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# One iteration's dense flop count per covariance type (derived in
# flop_count's docstring), with the formula as the report prints it.
_FLOPS = {
    "full": ("4 N K D^2", lambda n, d, k: 4 * n * k * d * d),
    "tied": ("2 N D^2 + 4 N K D", lambda n, d, k: 2 * n * d * d + 4 * n * k * d),
    "diag": ("6 N K D", lambda n, d, k: 6 * n * k * d),
    "spherical": ("6 N K D", lambda n, d, k: 6 * n * k * d),
}


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
    if covariance_type not in _FLOPS:
        raise ValueError(f"unknown covariance_type {covariance_type!r}")
    _, count = _FLOPS[covariance_type]
    return count(n_samples, n_features, n_components)


def flop_formulas():
    """The formulas of :func:`flop_count`, as the report prints them.

    Returns
    -------
    str
        "4 N K D^2 (full), 2 N D^2 + 4 N K D (tied), 6 N K D (diag, spherical)":
        one formula per distinct count, with the covariance types it serves.
    """
    names_by_formula = {}
    for name in COVARIANCE_NAMES:
        formula, _ = _FLOPS[name]
        names_by_formula.setdefault(formula, []).append(name)
    return ", ".join(f"{formula} ({', '.join(names)})" for formula, names in names_by_formula.items())


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


class OtherLoad:
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


def thread_pools():
    """threadpoolctl's view of the loaded BLAS and OpenMP libraries, trimmed.

    Returns
    -------
    list of dict
        Per library: ``user_api``, ``internal_api``, ``version``,
        ``num_threads``, ``architecture``, ``prefix`` and ``filepath``
        (those threadpoolctl reports).
    """
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


def environment(threads, daal4py):
    """Versions, CPU, load and thread settings, as the report's header shows them.

    Parameters
    ----------
    threads : int
        The benchmark's thread count.
    daal4py : module or None
        daal4py when it is installed.

    Returns
    -------
    dict
        Plain data (JSON-serialisable).
    """
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
