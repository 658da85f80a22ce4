"""The hidden Markov model cases of ``fastem bench``: fastem's GaussianHMM against hmmlearn's.

A case is (T, D, K, S): T rows of D features drawn from a sticky K-state
chain with diagonal Gaussian emissions, fitted as S sequences of equal
length (``hmm:2e5:4:8:1`` is one long sequence, ``hmm:2e5:4:8:20`` the same
rows cut into 20).  Both implementations start from one shared set of
parameters (``init_params=""``) and run the same number of Baum-Welch
iterations (``tol=-inf``, so only ``n_iter`` stops them; the runners check
``monitor_.iter``).  Their per-iteration times come from the same
difference of a short and a long fit as the Gaussian cases
(:func:`fastem.bench.runners.time_em`), and the parameters both reach after
the same number of iterations are compared (:func:`agreement`).

The limit (:func:`hmm_iteration_limit`) is the Gaussian cases' limit, with
forward-backward's T·K exps counted and its arrays' traffic and flops
added, and a latency term (:func:`critical_path`): a sequence is a chain of
dependent steps, which no bandwidth or peak rate can shorten.

hmmlearn is optional: without it the cases are skipped (:func:`import_hmmlearn`).
"""
import dataclasses
import math

import numpy as np

import fastem
from fastem.bench.cases import DATA_SEED, _positive_int, _short_count, partition_start
from fastem.bench import requirements
from fastem.bench.requirements import INSTALL_HINT, BenchError
from fastem.bench.runners import seconds_per_iteration, time_em

__all__ = [
    "HMMCase",
    "HMMRunner",
    "HMMStart",
    "HMM_GRID",
    "SKIP_MESSAGE",
    "agreement",
    "cpu_clock_hz",
    "critical_path",
    "forward_backward_flops",
    "hmm_bytes",
    "hmm_flop_count",
    "hmm_iteration_limit",
    "hmm_start",
    "import_hmmlearn",
    "l2_cache_bytes",
    "make_hmm_data",
    "parse_hmm_spec",
    "run_hmm_case",
    "step_cycles",
]

SKIP_MESSAGE = f"hmmlearn is not installed: the HMM cases are skipped ({INSTALL_HINT} to include them)"

# The data's chain stays in its state with this probability and otherwise
# jumps to one of the other K - 1 states uniformly: runs of about 20 rows.
STICKINESS = 0.95
# State means drawn from N(0, EMISSION_SPREAD^2) per feature, per-feature
# standard deviations in [0.5, 1.5]: states overlap a little, so posteriors
# are not all 0 or 1 and the forward-backward arithmetic is the general one.
EMISSION_SPREAD = 2.0
# The shared start's transition matrix: (1 - START_MIXING) I + START_MIXING / K.
# Every entry is at least START_MIXING / K, so no forward step's scale can
# underflow (fastem would redo such a sequence in log space, a different cost).
START_MIXING = 0.5

# Latencies in cycles of the operations on a forward-backward step's
# dependent chain, for the AMD Zen 4 this benchmark was written on (AMD's
# optimisation guide; Intel's Skylake to Sapphire Rapids: 4, 4, 13-15).
ADD_LATENCY = 3
MUL_LATENCY = 3
DIV_LATENCY = 13
# When /proc/cpuinfo gives no clock.
FALLBACK_CLOCK_HZ = 2.5e9
# The L2 size assumed where sysfs does not give it (see hmm_bytes).
FALLBACK_CACHE_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class HMMCase:
    """One HMM benchmark problem: diagonal covariances.

    Attributes
    ----------
    n_samples : int
        T, the rows of all sequences together.
    n_features, n_components : int
        D and K.
    n_sequences : int
        S: X is cut into S sequences of (nearly) equal length.
    """

    n_samples: int
    n_features: int
    n_components: int
    n_sequences: int = 1
    covariance_type: str = "diag"

    @property
    def name(self):
        """``hmm:T:D:K:S``, the form ``--cases`` accepts."""
        return (f"hmm:{_short_count(self.n_samples)}:{self.n_features}:"
                f"{self.n_components}:{self.n_sequences}")

    def lengths(self):
        """The S sequence lengths (int64), the first T mod S one longer; they add up to T."""
        base, extra = divmod(self.n_samples, self.n_sequences)
        lengths = np.full(self.n_sequences, base, dtype=np.int64)
        lengths[:extra] += 1
        return lengths

    def scaled(self, factor):
        """The same case with T multiplied by `factor` (at least 2 rows per sequence)."""
        n = max(int(round(self.n_samples * factor)), 2 * self.n_sequences)
        return dataclasses.replace(self, n_samples=n)


HMM_GRID = (
    HMMCase(200_000, 4, 8, 1),
    HMMCase(200_000, 4, 8, 20),
)


def parse_hmm_spec(item):
    """The :class:`HMMCase` of a ``hmm:T:D:K:S`` item of ``--cases``.

    Raises
    ------
    BenchError
    """
    parts = [part.strip() for part in item.split(":")]
    if len(parts) != 5 or parts[0] != "hmm":
        raise BenchError(f"--cases {item!r}: an HMM case is hmm:T:D:K:S (e.g. hmm:2e5:4:8:20)")
    t, d, k, s = (_positive_int(text, what, item)
                  for text, what in zip(parts[1:], ("T", "D", "K", "S")))
    if t < 2 * s:
        raise BenchError(f"--cases {item!r}: T must be at least 2 S (2 rows per sequence)")
    return HMMCase(t, d, k, s)


def import_hmmlearn():
    """``hmmlearn.hmm``, or None when hmmlearn is not installed (it is optional).

    Returns
    -------
    module or None
    """
    return requirements.import_optional("hmmlearn.hmm")


# ------------------------------------------------------------------ data

def make_hmm_data(case, seed=DATA_SEED):
    """T rows of a sticky K-state chain with diagonal Gaussian emissions.

    The chain stays put with probability STICKINESS and otherwise moves to
    one of the other states uniformly; its run lengths are therefore
    geometric and it is drawn run by run, without a loop over rows.

    Parameters
    ----------
    case : HMMCase
    seed : int

    Returns
    -------
    X : ndarray of shape (T, D), float64, C-contiguous
    states : ndarray of shape (T,), int64
    """
    rng = np.random.default_rng(seed)
    t, d, k = case.n_samples, case.n_features, case.n_components
    means = rng.normal(scale=EMISSION_SPREAD, size=(k, d))
    scales = rng.uniform(0.5, 1.5, size=(k, d))
    # Enough runs to cover T with room to spare (their mean length is 1 / (1 - STICKINESS)).
    n_runs = int(2 * t * (1 - STICKINESS)) + 16
    runs = rng.geometric(1 - STICKINESS, size=n_runs) if k > 1 else np.array([t])
    while runs.sum() < t:
        runs = np.concatenate([runs, rng.geometric(1 - STICKINESS, size=n_runs)])
    # Each run's state: the previous one shifted by 1..K-1 (mod K), never the same.
    jumps = rng.integers(1, max(k, 2), size=len(runs))
    run_states = (rng.integers(k) + np.cumsum(jumps) - jumps[0]) % k
    states = np.repeat(run_states, runs)[:t].astype(np.int64)
    X = rng.standard_normal((t, d))
    X *= scales[states]
    X += means[states]
    return X, states


@dataclasses.dataclass
class HMMStart:
    """The parameters both implementations start from.

    Attributes
    ----------
    startprob : ndarray of shape (K,)
    transmat : ndarray of shape (K, K)
    means : ndarray of shape (K, D)
    covars : ndarray of shape (K, D)
        Diagonal covariances, hmmlearn's "diag" storage.
    """

    startprob: np.ndarray
    transmat: np.ndarray
    means: np.ndarray
    covars: np.ndarray

    def set_on(self, model):
        """Give `model` fresh copies of the parameters (neither implementation may share them)."""
        model.startprob_ = self.startprob.copy()
        model.transmat_ = self.transmat.copy()
        model.means_ = self.means.copy()
        model.covars_ = self.covars.copy()
        return model


def hmm_start(X, n_components, seed=DATA_SEED):
    """A start that favours no state: uniform start probabilities, a mixing
    transition matrix, and the means and variances of a random K-th of the rows each.

    The emissions are the Gaussian cases' :func:`~fastem.bench.cases.partition_start`.

    Parameters
    ----------
    X : ndarray of shape (T, D)
    n_components : int
    seed : int

    Returns
    -------
    HMMStart
    """
    k = n_components
    emissions = partition_start(X, k, "diag", seed=seed)
    transmat = np.full((k, k), START_MIXING / k) + (1 - START_MIXING) * np.eye(k)
    return HMMStart(np.full(k, 1.0 / k), transmat, emissions.means, emissions.covariances)


# --------------------------------------------------------------- runners

class HMMRunner:
    """Fits one implementation's ``GaussianHMM`` from the shared start, as
    :func:`fastem.bench.runners.time_em` drives a runner.

    Every fit is kept (by its iteration count) in ``fitted``, so that the two
    implementations can be compared after the same number of iterations
    without running anything more.

    Parameters
    ----------
    name : str
        "fastem" or "hmmlearn".
    estimator : class
        A ``GaussianHMM``.
    **extra
        Parameters only this estimator takes (fastem's ``n_threads``).
    """

    def __init__(self, name, estimator, **extra):
        self.name, self.estimator, self.extra = name, estimator, extra
        self.fitted = {}

    def em(self, X, case, start, max_iter):
        """Run exactly `max_iter` Baum-Welch iterations from `start`; return how many ran."""
        model = self.estimator(
            case.n_components, covariance_type=case.covariance_type, n_iter=max_iter,
            tol=-np.inf, init_params="", params="stmc", **self.extra,
        )
        start.set_on(model)
        model.fit(X, case.lengths())
        # With tol=-inf only n_iter stops the loop (the same rule in both):
        # anything else would compare different amounts of work.
        if model.monitor_.iter != max_iter:
            raise RuntimeError(f"{self.name} ran {model.monitor_.iter} iterations, not {max_iter}")
        self.fitted[max_iter] = model
        return model.monitor_.iter


def _relative_difference(ours, theirs):
    """max |ours - theirs| / |theirs| elementwise, entries below 1e-12 of the array's largest
    taken at that floor (a transition probability of 1e-30 has no relative digits to compare)."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    floor = max(np.max(np.abs(theirs)), np.finfo(np.float64).tiny) * 1e-12
    return float(np.max(np.abs(ours - theirs) / np.maximum(np.abs(theirs), floor)))


def agreement(runners):
    """How far apart fastem's and hmmlearn's parameters are after the same iterations.

    Parameters
    ----------
    runners : list of HMMRunner
        fastem's first; each has run some fits.

    Returns
    -------
    dict or None
        ``iterations`` (the most both ran), the max relative difference of
        each parameter (``startprob``, ``transmat``, ``means``, ``covars``)
        and of the log-likelihood history (``history``), and their
        maximum, ``max``; None when no iteration count is shared.
    """
    ours, theirs = runners[0].fitted, runners[1].fitted
    shared = set(ours) & set(theirs)
    if not shared:
        return None
    n = max(shared)
    a, b = ours[n], theirs[n]
    diffs = {name: _relative_difference(getattr(a, name + "_"), getattr(b, name + "_"))
             for name in ("startprob", "transmat", "means", "covars")}
    diffs["history"] = _relative_difference(list(a.monitor_.history), list(b.monitor_.history))
    return dict(iterations=n, **diffs, max=max(diffs.values()))


# ------------------------------------------------------------------ limit

def hmm_flop_count(case):
    """Floating-point operations of one Baum-Welch iteration (dense counts).

    - emissions: a scaled squared distance per row and state, 3 T K D;
    - forward, backward and the transition counts: a K x K matrix-vector
      product (multiply-add) per row in each, 3 x 2 T K^2;
    - statistics: the first and second moments per row and state, 2 x 2 T K D.

    Total 7 T K D + 6 T K^2 (T = 2e5, D = 4, K = 8: 121.6 Mflop).

    Parameters
    ----------
    case : HMMCase

    Returns
    -------
    int
    """
    t, d, k = case.n_samples, case.n_features, case.n_components
    return 3 * t * k * d + forward_backward_flops(case) + 2 * 2 * t * k * d


def forward_backward_flops(case):
    """The part of :func:`hmm_flop_count` inside forward-backward: 6 T K^2."""
    return 3 * 2 * case.n_samples * case.n_components ** 2


def l2_cache_bytes():
    """The size of CPU 0's L2 cache (Linux sysfs), or FALLBACK_CACHE_BYTES.

    Returns
    -------
    int
    """
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index2/size") as fh:
            text = fh.read().strip()
        return int(text[:-1]) * {"K": 1 << 10, "M": 1 << 20}[text[-1]]
    except (OSError, ValueError, KeyError, IndexError):
        return FALLBACK_CACHE_BYTES


def hmm_bytes(case, cache_bytes, itemsize=8):
    """Bytes one Baum-Welch iteration must move through memory, at least.

    Counted (all at ``itemsize``):

    - X, read twice: by the emission pass and by the statistics pass, 2 T D;
    - the log-densities (T x K), written by the emission pass and read by
      forward-backward, 2 T K;
    - the posteriors (T x K), written by forward-backward and read by the
      statistics pass, 2 T K;
    - forward-backward's own storage, which the backward pass reads back from
      the forward pass: per sequence the shifted exponentials e_t and the
      scaled forward messages (two T_s x K arrays) and the scales c_t,
      (2 K + 1) T_s values.  The backward pass reads them in reverse, the
      most recently written first, so the last `cache_bytes` of them come
      from cache: only the rest is written to and read back from memory,
      2 max(0, (2 K + 1) T_s itemsize - cache_bytes) bytes per sequence.

    T = 2e5, D = 4, K = 8 with a 1 MiB cache: one sequence, 64 MB
    + 2 (27.2 MB - 1 MiB) = 116.3 MB; 20 sequences of 1e4 (1.36 MB of storage
    each), 64 MB + 20 x 2 (1.36 MB - 1 MiB) = 76.5 MB.  With no cache the
    single sequence moves (2 T D + 8 T K + 2 T) x 8 = 118.4 MB.

    Writes are counted once, as if they cost what a read costs (they cost
    more: a read for ownership and a write-back), so this stays a lower bound.

    Parameters
    ----------
    case : HMMCase
    cache_bytes : int
        The cache that keeps forward-backward's storage between its passes
        (:func:`l2_cache_bytes`).
    itemsize : int

    Returns
    -------
    int
    """
    t, d, k = case.n_samples, case.n_features, case.n_components
    total = (2 * t * d + 4 * t * k) * itemsize
    for length in case.lengths().tolist():
        total += 2 * max(0, (2 * k + 1) * length * itemsize - cache_bytes)
    return total


def step_cycles(n_components):
    """Latency in cycles of one forward step plus one backward step (the chain's link).

    The model: only the operations that need the previous step's result are
    on the chain; the emissions' exponentials, the row maxima, log c_t, the
    posteriors and the transition counts depend on data or on values already
    computed, and out-of-order execution overlaps them with the chain.

    - forward, a_t = (alpha_{t-1} A) * e_t, c_t = sum a_t, alpha_t = a_t / c_t:
      the K products (one multiply, in parallel), K - 1 dependent adds, the
      product with e_t (a multiply), the sum c_t (K - 1 adds), 1 / c_t (a
      division) and the scaling (a multiply):
      3 MUL + 2 (K - 1) ADD + DIV;
    - backward, beta_t = A (e_{t+1} beta_{t+1} / c_{t+1}): e_{t+1} / c_{t+1}
      is off the chain, then a multiply by beta_{t+1}, the K products (a
      multiply) and K - 1 adds: 2 MUL + (K - 1) ADD.

    Sums are in order (no -ffast-math, so no reassociation into a tree), and
    L1 loads are taken as free.  K = 8 at 3/3/13 cycles: 5*3 + 21*3 + 13 = 91 cycles.

    Parameters
    ----------
    n_components : int

    Returns
    -------
    int
    """
    k = n_components
    return 5 * MUL_LATENCY + 3 * (k - 1) * ADD_LATENCY + DIV_LATENCY


def cpu_clock_hz():
    """The clock the kernel reports for CPU 0 (/proc/cpuinfo "cpu MHz"), in Hz;
    FALLBACK_CLOCK_HZ where it is not available.

    Returns
    -------
    (float, str)
        The clock and where it came from.
    """
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("cpu MHz"):
                    return float(line.split(":", 1)[1]) * 1e6, "/proc/cpuinfo"
    except (OSError, ValueError):
        pass
    return FALLBACK_CLOCK_HZ, "assumed"


def critical_path(case, threads, clock_hz):
    """Seconds of the longest chain of dependent steps one iteration must run.

    Each sequence's forward and backward passes are chains of T_s steps of
    :func:`step_cycles`; sequences are independent and spread over
    `threads`, so the longest thread runs ceil(S / threads) of the longest
    sequences.  One sequence of T = 2e5, K = 8 at 2.6 GHz: 2e5 x 91 / 2.6e9 = 7.0 ms.

    Parameters
    ----------
    case : HMMCase
    threads : int
    clock_hz : float

    Returns
    -------
    dict
        ``steps`` (per thread, at most), ``cycles_per_step``, ``clock_hz`` and ``seconds``.
    """
    steps = math.ceil(case.n_sequences / threads) * int(case.lengths().max())
    cycles = step_cycles(case.n_components)
    return dict(steps=steps, cycles_per_step=cycles, clock_hz=clock_hz,
                seconds=steps * cycles / clock_hz)


def hmm_iteration_limit(case, machine, threads, clock_hz, cache_bytes, itemsize=8):
    """The machine's lower bound on one Baum-Welch iteration of `case`.

    As the Gaussian cases' :func:`~fastem.bench.probes.iteration_limit`, from
    the same probes: the largest of :func:`hmm_bytes` / read bandwidth,
    :func:`hmm_flop_count` / GEMM peak and T K exps / exp rate (the E-step's
    exps are forward-backward's, one per row and state; the rate is the
    probes' ``exp_rate``, the faster of np.exp and fastem's own exp, as for
    the mixtures); and, since a
    sequence is a chain of dependent steps, the :func:`critical_path`.

    Forward-backward runs each sequence on one thread, so with fewer
    sequences than threads its flops (:func:`forward_backward_flops`) and its
    exps get only min(S, threads) / threads of the GEMM peak and of the exp
    rate (both measured for all `threads`); the emission and statistics
    passes get all of it.  One sequence on 2 threads: 6 T K^2 flops at half
    the peak, T K exps at one thread's exp rate.

    Parameters
    ----------
    case : HMMCase
    machine : dict
        ``read_bandwidth``, ``gemm_flops``, ``exp_rate``, as
        :func:`fastem.bench.probes.measure_machine` returns.
    threads : int
    clock_hz : float
    cache_bytes : int
        See :func:`hmm_bytes`.
    itemsize : int

    Returns
    -------
    dict
        ``bytes``, ``flops``, ``exps``, ``cache_bytes``, ``forward_backward_share``
        (the share above); ``memory_seconds``, ``flops_seconds``,
        ``exp_seconds``, ``latency_seconds``; ``throughput_seconds`` (the
        largest of the first three: the Gaussian cases' kind of limit),
        ``seconds`` (the largest of all four), ``bound`` and the
        ``critical_path`` entry.
    """
    counts = dict(
        bytes=hmm_bytes(case, cache_bytes, itemsize),
        flops=hmm_flop_count(case),
        exps=case.n_samples * case.n_components,
    )
    chain = critical_path(case, threads, clock_hz)
    share = min(case.n_sequences, threads) / threads
    sequential_flops = forward_backward_flops(case)
    seconds = dict(
        memory=counts["bytes"] / machine["read_bandwidth"],
        flops=((counts["flops"] - sequential_flops) / machine["gemm_flops"]
               + sequential_flops / (share * machine["gemm_flops"])),
        exp=counts["exps"] / (share * machine["exp_rate"]),
    )
    throughput = max(seconds.values())
    seconds["latency"] = chain["seconds"]
    bound = max(seconds, key=seconds.get)
    return dict(
        counts,
        memory_seconds=seconds["memory"],
        flops_seconds=seconds["flops"],
        exp_seconds=seconds["exp"],
        latency_seconds=seconds["latency"],
        cache_bytes=cache_bytes,
        forward_backward_share=share,
        throughput_seconds=throughput,
        seconds=seconds[bound],
        bound=bound,
        critical_path=chain,
    )


# -------------------------------------------------------------------- run

def _ratio(numerator, denominator):
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def run_hmm_case(case, hmmlearn, machine, threads, repeats):
    """Time one HMM case: fastem and hmmlearn from the same start, beside the limit.

    Parameters
    ----------
    case : HMMCase
    hmmlearn : module
        ``hmmlearn.hmm``.
    machine : dict
        As :func:`fastem.bench.probes.measure_machine` returns.
    threads : int
        fastem's ``n_threads`` (hmmlearn runs under the caller's threadpoolctl limit).
    repeats : int

    Returns
    -------
    dict
        Plain data: the case, its ``limit`` (:func:`hmm_iteration_limit`),
        ``per_iteration`` (:func:`fastem.bench.runners.time_em`'s entries),
        ``speedup`` (hmmlearn's s/iter over fastem's), fastem's s/iter as a
        multiple of the limit, of the throughput limit and of the critical
        path, and the ``agreement`` of the fitted parameters.
    """
    X, _ = make_hmm_data(case)
    start = hmm_start(X, case.n_components)
    clock, clock_source = cpu_clock_hz()
    limit = hmm_iteration_limit(case, machine, threads, clock, l2_cache_bytes(), itemsize=X.itemsize)
    limit["critical_path"]["clock_source"] = clock_source
    implementations = [
        HMMRunner("fastem", fastem.GaussianHMM, n_threads=threads),
        HMMRunner("hmmlearn", hmmlearn.GaussianHMM),
    ]
    per_iteration = time_em(implementations, X, case, start, repeats)
    ours = seconds_per_iteration(per_iteration["fastem"])
    return dict(
        name=case.name,
        covariance_type=case.covariance_type,
        n_samples=case.n_samples,
        n_features=case.n_features,
        n_components=case.n_components,
        n_sequences=case.n_sequences,
        limit=limit,
        per_iteration=per_iteration,
        speedup=_ratio(seconds_per_iteration(per_iteration["hmmlearn"]), ours),
        limit_multiple=_ratio(ours, limit["seconds"]),
        throughput_multiple=_ratio(ours, limit["throughput_seconds"]),
        critical_path_multiple=_ratio(ours, limit["latency_seconds"]),
        agreement=agreement(implementations),
    )
