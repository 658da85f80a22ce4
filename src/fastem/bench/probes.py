"""This machine, measured: its limits for one EM iteration and the facts a report must carry.

Limits: the GEMM peak, the memory bandwidth and the exp and log rates (the
faster of NumPy's and fastem's own vectorised functions), measured with the
benchmark's thread count, and a model of the work of one iteration
(:func:`flop_count`, :func:`transcendental_count`) that turns them into a
lower bound on its time (:func:`iteration_limit`).  Also the steal time
around a measurement (:class:`Steal`) and whether ``perf stat`` can count
(:func:`perf_counters`).  Facts: versions, CPU, thread pools, the
environment variables that change OpenBLAS, and how busy other processes kept
the CPUs while we measured (:class:`OtherLoad`).
"""
import importlib.metadata
import math
import os
import platform
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import threadpoolctl

import fastem
from fastem._covariance import COVARIANCE_NAMES

__all__ = [
    "OtherLoad",
    "Steal",
    "environment",
    "fastest",
    "flop_count",
    "flop_formulas",
    "iteration_limit",
    "measure_machine",
    "perf_counters",
    "thread_pools",
    "transcendental_count",
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
# ... and the sums a log-sum-exp takes the log of lie in [1, K].
LOG_INPUT_RANGE = (1.0, 64.0)
# fastem's rates through its test hook are kept only when the hook's loops
# take at least this share of its time (the rest is NumPy overhead).
FASTEM_MIN_SHARE = 0.05

# Environment variables that override OpenBLAS's CPU detection: reported, never changed.
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# One iteration's unavoidable flop count per covariance type (derived in
# flop_count's docstring), with the formula as the report prints it.
_FLOPS = {
    "full": ("2 N K D^2 + 4 N K D", lambda n, d, k: 2 * n * k * d * d + 4 * n * k * d),
    "tied": ("2 N D^2 + 4 N K D", lambda n, d, k: 2 * n * d * d + 4 * n * k * d),
    "diag": ("8 N K D + N D", lambda n, d, k: 8 * n * k * d + n * d),
    "spherical": ("4 N K D + 2 N D", lambda n, d, k: 4 * n * k * d + 2 * n * d),
}


def flop_count(covariance_type, n_samples, n_features, n_components):
    """Floating-point operations one EM iteration cannot avoid (E-step and M-step statistics).

    A multiply-add counts as 2 flops, as in the GEMM peak it is divided by.
    Every covariance type needs, per row and component, the cross term of a
    squared distance (an inner product of the row with a vector of the
    component's, D multiply-adds) and the first moment r x (D multiply-adds):
    4 N K D.  What differs is the second-order work:

    - full, 2 N K D^2 + 4 N K D: each row is whitened by each component's
      triangular Cholesky factor (D^2 / 2 multiply-adds) and one triangle of
      its outer product is added to that component's scatter (D^2 / 2
      multiply-adds).  Dense D x D products would be twice that; fastem's
      TRMM/SYRK path does the triangular amount, so it can never come in
      under 1x this count.
    - tied, 2 N D^2 + 4 N K D: one shared factor whitens each row once and
      one scatter is accumulated, whatever K (the responsibilities of a row
      sum to 1, so the tied scatter is the scatter of X less terms of the
      first moments).
    - diag, 8 N K D + N D: the scaled squared distance, expanded as
      x^2 . p_k - 2 x . (m_k p_k) + const, is two inner products of length
      D (the row's squares, N D multiplies, are shared by the components),
      and the first and second moments r x and r x^2 are two more: 4
      multiply-adds per row, component and feature.
    - spherical, 4 N K D + 2 N D: the squared norm of a row (2 D flops) is
      shared by the components, so the distance needs only the cross term
      and the second moment only r |x|^2 (2 flops per component, left out as
      lower order); the first moment r x remains.

    N = 1000, D = 4, K = 3: full 2*1000*3*16 + 4*1000*3*4 = 144000 flops;
    diag 8*1000*3*4 + 1000*4 = 100000.

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
        "2 N K D^2 + 4 N K D (full), 2 N D^2 + 4 N K D (tied), ...": one
        formula per distinct count, with the covariance types it serves.
    """
    names_by_formula = {}
    for name in COVARIANCE_NAMES:
        formula, _ = _FLOPS[name]
        names_by_formula.setdefault(formula, []).append(name)
    return ", ".join(f"{formula} ({', '.join(names)})" for formula, names in names_by_formula.items())


def transcendental_count(n_samples, n_components):
    """The exponentials and logarithms one EM iteration cannot avoid.

    A row's log-sum-exp over K log-densities l_k is
    m + log(sum_k exp(l_k - m)) with m the largest: the term of the largest
    is exp(0) = 1 and needs no exp, so K - 1 exps and one log per row; the
    responsibilities exp(l_k - m) / sum are those same exps over the sum.
    With K = 2 this is the logistic form: one exp(-|l_1 - l_2|) and one
    log1p of it per row (log1p is counted at the log rate).  K = 1 needs
    neither (every responsibility is 1, the log-sum-exp is l_1).

    N = 1000: K = 2, 1000 exps and 1000 logs; K = 16, 15000 exps and 1000 logs.

    Parameters
    ----------
    n_samples, n_components : int

    Returns
    -------
    (int, int)
        Exps and logs per iteration.
    """
    if n_components < 2:
        return 0, 0
    return n_samples * (n_components - 1), n_samples


def iteration_limit(case, machine, itemsize=8):
    """The machine's lower bound on the time of one EM iteration of `case`.

    limit = max(bytes of X / read bandwidth, flops / GEMM peak,
    exps / exp rate + logs / log rate): an iteration must read X at least
    once, do :func:`flop_count` flops and evaluate the exps and logs of
    :func:`transcendental_count` (one after the other: they share the vector
    units, so their times add).

    Parameters
    ----------
    case : Case
    machine : dict
        With ``read_bandwidth`` (bytes/s), ``gemm_flops`` (flop/s),
        ``exp_rate`` and ``log_rate`` (per second, for the thread count
        used), as :func:`measure_machine` returns.
    itemsize : int
        Bytes per element of X (8 for float64).

    Returns
    -------
    dict
        ``bytes``, ``flops``, ``exps``, ``logs`` (per iteration), the
        seconds each takes (``memory_seconds``, ``flops_seconds``,
        ``exp_seconds``, ``log_seconds``, and ``transcendental_seconds``,
        the last two's sum), ``seconds`` (the largest of memory, flops and
        transcendental) and ``bound`` ("memory", "flops" or "exp/log").
    """
    n, d, k = case.n_samples, case.n_features, case.n_components
    exps, logs = transcendental_count(n, k)
    counts = dict(bytes=n * d * itemsize, flops=flop_count(case.covariance_type, n, d, k),
                  exps=exps, logs=logs)
    exp_seconds = exps / machine["exp_rate"]
    log_seconds = logs / machine["log_rate"]
    seconds = {
        "memory": counts["bytes"] / machine["read_bandwidth"],
        "flops": counts["flops"] / machine["gemm_flops"],
        "exp/log": exp_seconds + log_seconds,
    }
    bound = max(seconds, key=seconds.get)
    return dict(
        counts,
        memory_seconds=seconds["memory"],
        flops_seconds=seconds["flops"],
        exp_seconds=exp_seconds,
        log_seconds=log_seconds,
        transcendental_seconds=seconds["exp/log"],
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


def _window_rate(run, block):
    """Elements per second of `run` (one call: `block` elements), best of EXP_REPEATS windows.

    The calls that fill one EXP_SECONDS window are counted first, then the
    best of EXP_REPEATS timings of that many is kept.
    """
    run()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < EXP_SECONDS:
        for _ in range(16):
            run()
        calls += 16

    def window():
        for _ in range(calls):
            run()

    return calls * block / _best_time(window, EXP_REPEATS)


def _fastem_exp_log():
    """fastem's own vectorised exp and log (the kernels' functions), or None without its test hooks."""
    try:
        from fastem._testing import _vector_exp_log
    except ImportError:
        return None
    return _vector_exp_log


def _hook_overhead(x):
    # The NumPy work _testing._vector_exp_log does around its two C loops
    # (copies, the domain mask for the log, the scatter back), done here
    # without the loops: its time is taken off the hook's to leave the
    # loops' own.  Follow that function if it changes.
    values = np.array(x, dtype=np.float64).ravel()
    exps = np.array(values)
    logs = np.full(values.shape[0], np.nan)
    valid = np.flatnonzero(np.isfinite(values) & (values > 0))
    positive = np.ascontiguousarray(values[valid])
    logs[valid] = np.empty(positive.shape[0])
    return exps, logs


def _measure_exp_log():
    """One thread's exp and log rates, per implementation.

    Returns
    -------
    dict
        ``exp`` and ``log``: {implementation: elements/s or None}, with
        implementations "numpy" (np.exp, np.log: NumPy's SIMD loops) and
        "fastem" (the kernels' exp and log through
        ``fastem._testing._vector_exp_log``, its NumPy overhead taken off;
        None when the test hooks are missing or the overhead hides the
        loop, see FASTEM_MIN_SHARE); and ``fastem_raw``: the hook's rates
        with its overhead, a lower bound on fastem's.
    """
    rng = np.random.default_rng(0)
    negative = rng.uniform(*EXP_INPUT_RANGE, size=EXP_BLOCK)
    positive = rng.uniform(*LOG_INPUT_RANGE, size=EXP_BLOCK)
    out = np.empty(EXP_BLOCK)
    rates = dict(
        exp=dict(numpy=_window_rate(lambda: np.exp(negative, out=out), EXP_BLOCK), fastem=None),
        log=dict(numpy=_window_rate(lambda: np.log(positive, out=out), EXP_BLOCK), fastem=None),
        fastem_raw=dict(exp=None, log=None),
    )
    hook = _fastem_exp_log()
    if hook is None:
        return rates
    # Seconds per block: the hook on inputs <= 0 runs the exp loop only (no
    # input is in the log's domain); on inputs >= 1, the exp and log loops.
    exp_only = EXP_BLOCK / _window_rate(lambda: hook(negative), EXP_BLOCK)
    exp_and_log = EXP_BLOCK / _window_rate(lambda: hook(positive), EXP_BLOCK)
    overhead_negative = EXP_BLOCK / _window_rate(lambda: _hook_overhead(negative), EXP_BLOCK)
    overhead_positive = EXP_BLOCK / _window_rate(lambda: _hook_overhead(positive), EXP_BLOCK)
    exp_seconds = exp_only - overhead_negative
    log_seconds = exp_and_log - overhead_positive - max(exp_seconds, 0.0)
    rates["fastem_raw"] = dict(exp=EXP_BLOCK / exp_only, log=EXP_BLOCK / exp_and_log)
    # A difference of two timings is only trusted when it is a fair share of
    # what was timed; otherwise the noise of the overhead could make fastem's
    # rate, and the limit with it, anything.
    if exp_seconds > FASTEM_MIN_SHARE * exp_only:
        rates["exp"]["fastem"] = EXP_BLOCK / exp_seconds
    if log_seconds > FASTEM_MIN_SHARE * exp_and_log:
        rates["log"]["fastem"] = EXP_BLOCK / log_seconds
    return rates


def fastest(rates):
    """The fastest implementation of a function and its rate.

    Parameters
    ----------
    rates : dict
        {implementation: elements/s or None (not measured)}.

    Returns
    -------
    (str, float)
    """
    measured = {name: rate for name, rate in rates.items() if rate is not None}
    name = max(measured, key=measured.get)
    return name, measured[name]


def measure_machine(threads):
    """Measure this machine's GEMM peak, memory bandwidth and exp and log rates.

    Parameters
    ----------
    threads : int
        Thread count of the benchmark: BLAS is limited to it for the GEMM,
        the bandwidth is read by that many threads, and the single-threaded
        exp and log rates are multiplied by it.

    Returns
    -------
    dict
        ``gemm_flops`` (flop/s, float64 ``np.matmul`` of GEMM_SIZE square
        matrices, best of GEMM_REPEATS), ``read_bandwidth`` and
        ``copy_bandwidth`` (bytes/s: a streaming sum and copy of
        BANDWIDTH_BYTES); ``exp_rates`` and ``log_rates`` (one thread, per
        implementation, :func:`_measure_exp_log`), ``exp_source`` and
        ``log_source`` (the faster implementation of each: a slower one
        must not loosen the limit), ``exp_rate_one_thread`` and
        ``log_rate_one_thread`` (its rate), ``exp_rate`` and ``log_rate``
        (that times `threads`), ``fastem_raw_rates``; plus the probe sizes.
    """
    gemm = _measure_gemm(threads)
    read, copy = _measure_bandwidth(threads)
    rates = _measure_exp_log()
    exp_source, exp_one = fastest(rates["exp"])
    log_source, log_one = fastest(rates["log"])
    return dict(
        threads=threads,
        gemm_flops=gemm,
        gemm_size=GEMM_SIZE,
        read_bandwidth=read,
        copy_bandwidth=copy,
        bandwidth_bytes=BANDWIDTH_BYTES,
        exp_rates=rates["exp"],
        log_rates=rates["log"],
        fastem_raw_rates=rates["fastem_raw"],
        exp_source=exp_source,
        log_source=log_source,
        exp_rate_one_thread=exp_one,
        log_rate_one_thread=log_one,
        exp_rate=exp_one * threads,
        log_rate=log_one * threads,
    )


def perf_counters():
    """Whether ``perf stat`` can count instructions here.

    Returns
    -------
    dict
        ``available`` (bool) and ``message``: what `perf stat -e
        instructions -x, true` said, or why it could not run.
    """
    if shutil.which("perf") is None:
        return dict(available=False, message="perf is not installed")
    try:
        done = subprocess.run(["perf", "stat", "-e", "instructions", "-x,", "true"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return dict(available=False, message=f"perf stat failed: {exc}")
    line = next((line for line in done.stderr.splitlines() if "instructions" in line), "")
    count = line.split(",", 1)[0]
    if done.returncode != 0 or not count.strip().isdigit():
        said = count.strip() or " ".join(done.stderr.split())[:120] or f"exit status {done.returncode}"
        return dict(available=False, message=f"perf stat -e instructions: {said}")
    return dict(available=True, message=f"perf stat -e instructions: {count} for `true`")


def _all_cpu_seconds():
    """All CPUs' times from /proc/stat's first line, in seconds (None where unreadable)."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return [field / tick for field in fields]


class Steal:
    """Time the hypervisor gave other guests while this VM's CPUs wanted to run (/proc/stat).

    Sampled at construction and by :meth:`stop`; 0 where the kernel reports
    no steal column, None where /proc/stat cannot be read.
    """

    def __init__(self):
        self._start = self._sample()

    @staticmethod
    def _sample():
        times = _all_cpu_seconds()
        if times is None:
            return None
        # user nice system idle iowait irq softirq steal ...
        return time.perf_counter(), times[7] if len(times) > 7 else 0.0

    def stop(self):
        """Steal since construction: ``seconds`` and ``share`` of all CPUs' time, or None."""
        end = self._sample()
        if self._start is None or end is None or end[0] <= self._start[0]:
            return None
        wall = end[0] - self._start[0]
        seconds = end[1] - self._start[1]
        return dict(seconds=seconds, share=seconds / (wall * (_available_cpus() or 1)))


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
        times = _all_cpu_seconds()
        if times is None:
            return None
        # user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
        busy = sum(times) - times[3] - times[4]
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
