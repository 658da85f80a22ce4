"""One benchmark run: every case through every implementation, into one plain dict.

The dict is what ``--json`` writes and what :mod:`fastem.bench.report` reads.
"""
import threadpoolctl

import fastem
from fastem.bench import hmm, requirements, runners
from fastem.bench.cases import DATA_SEED, REG_COVAR, make_data, partition_start
from fastem.bench.probes import (
    OtherLoad,
    Steal,
    _package_version,
    environment,
    iteration_limit,
    measure_machine,
    perf_counters,
    thread_pools,
)
from fastem.bench.report import hmm_progress_line, progress_line
from fastem.bench.runners import (
    Daal4pyRunner,
    EstimatorRunner,
    seconds_per_iteration,
    time_em,
    time_fit,
    time_init,
)

__all__ = ["TARGETS", "run_bench", "targets"]

# Issue 14's targets, per case.  limit: fastem's s/iter at most this multiple
# of the limit (the second figure from LIMIT_TARGET_WIDE_D features on);
# speed-up: every peer's s/iter at least this multiple of fastem's; fit: a
# whole default fit at least this many times faster than scikit-learn's (the
# second figure above FIT_TARGET_NARROW_D features); init: the k-means
# initialisation of a default fit at most this many of fastem's iterations.
TARGETS = dict(limit=(2.0, 1.5), speedup=1.5, fit=(10.0, 5.0), init=2.0)
LIMIT_TARGET_WIDE_D = 32
FIT_TARGET_NARROW_D = 16


def _ratio(numerator, denominator):
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def run_bench(cases, threads=2, repeats=3, quick=False, progress=None, scaling=True):
    """Run the benchmark.

    Parameters
    ----------
    cases : list of Case or HMMCase
        Gaussian mixture cases, then HMM cases (:mod:`fastem.bench.hmm`);
        the HMM cases are skipped when hmmlearn is not installed.
    threads : int
        fastem's ``n_threads``; BLAS and OpenMP (scikit-learn) are limited to
        it with threadpoolctl, and daal4py is set to it with ``daalinit``.
    repeats : int
        Timed repeats per measurement; medians are reported.
    quick : bool
        Only recorded in the results (the cases are already scaled).
    progress : file-like or None
        Where to write one line per finished case (e.g. ``sys.stderr``).
    scaling : bool
        Also time fastem on one thread, for the 1 -> `threads` scaling
        (skipped when `threads` is 1).

    Returns
    -------
    dict
        Plain data (JSON-serialisable): ``settings``, ``environment``,
        ``thread_pools``, ``machine``, ``perf`` (whether ``perf stat`` can
        count here), one entry per Gaussian case in ``cases`` and per HMM
        case in ``hmm_cases``; ``hmm_skipped`` says why HMM cases were not
        run (None when they were, or none was asked).  A Gaussian case's
        entry holds its ``limit``, ``per_iteration`` and ``fit`` timings, the
        k-means ``init`` (seconds, and in fastem iterations), ``scaling``
        (fastem's s/iter on 1 thread and on `threads`, the steal during
        each; None when not measured) and ``targets`` (:func:`targets`).
    """
    requirements.check_requirements()
    # Looked up on the modules so that a test can pretend daal4py or hmmlearn is absent.
    daal4py = requirements.import_daal4py()
    hmm_cases = [case for case in cases if isinstance(case, hmm.HMMCase)]
    cases = [case for case in cases if not isinstance(case, hmm.HMMCase)]
    hmmlearn = hmm.import_hmmlearn() if hmm_cases else None
    hmm_skipped = hmm.SKIP_MESSAGE if hmm_cases and hmmlearn is None else None
    total = len(cases) + (len(hmm_cases) if hmmlearn is not None else 0)
    with threadpoolctl.threadpool_limits(limits=threads):
        previous_daal_threads = None
        if daal4py is not None:
            previous_daal_threads = int(daal4py.num_threads())
            daal4py.daalinit(threads)
        try:
            facts = environment(threads, daal4py)
            from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

            implementations = [
                EstimatorRunner("fastem", fastem.GaussianMixture, n_threads=threads),
                EstimatorRunner("sklearn", SklearnGaussianMixture),
            ]
            if daal4py is not None:
                implementations.append(Daal4pyRunner(daal4py))
            pools = thread_pools()
            whole_run = OtherLoad()
            machine = measure_machine(threads)
            one_thread = (EstimatorRunner("fastem", fastem.GaussianMixture, n_threads=1)
                          if scaling and threads > 1 else None)
            results = []
            for number, case in enumerate(cases, start=1):
                during_case = OtherLoad()
                results.append(_run_case(case, implementations, machine, repeats, one_thread))
                results[-1]["other_load"] = during_case.fraction()
                if progress is not None:
                    print(f"[{number}/{total}] {progress_line(results[-1])}", file=progress, flush=True)
            hmm_results = []
            if hmm_skipped is not None and progress is not None:
                print(hmm_skipped, file=progress, flush=True)
            for number, case in enumerate(hmm_cases if hmmlearn is not None else [], start=len(cases) + 1):
                during_case = OtherLoad()
                hmm_results.append(hmm.run_hmm_case(case, hmmlearn, machine, threads, repeats))
                hmm_results[-1]["other_load"] = during_case.fraction()
                if progress is not None:
                    print(f"[{number}/{total}] {hmm_progress_line(hmm_results[-1])}",
                          file=progress, flush=True)
        finally:
            if previous_daal_threads is not None:
                daal4py.daalinit(previous_daal_threads)
    return dict(
        # The timing targets are read from runners at run time, where the tests shrink them.
        settings=dict(threads=threads, repeats=repeats, quick=quick, reg_covar=REG_COVAR, scaling=scaling,
                      iteration_target_seconds=runners.ITER_TARGET_SECONDS,
                      max_timed_seconds=runners.MAX_TIMED_SECONDS, data_seed=DATA_SEED),
        environment=facts,
        thread_pools=pools,
        machine=machine,
        perf=perf_counters(),
        other_load=whole_run.fraction(),
        implementations=[runner.name for runner in implementations],
        daal4py_installed=daal4py is not None,
        cases=results,
        hmm_implementations=["fastem", "hmmlearn"],
        hmmlearn=None if hmmlearn is None else _package_version(hmmlearn, "hmmlearn"),
        hmm_skipped=hmm_skipped,
        hmm_cases=hmm_results,
    )


def _run_case(case, implementations, machine, repeats, one_thread=None):
    X = make_data(case)
    start = partition_start(X, case.n_components, case.covariance_type)
    limit = iteration_limit(case, machine, itemsize=X.itemsize)
    steal = Steal()
    per_iteration = time_em(implementations, X, case, start, repeats)
    steal = steal.stop()
    fits = time_fit([r for r in implementations if r.name in ("fastem", "sklearn")], X, case, repeats)
    fastem_iter = seconds_per_iteration(per_iteration["fastem"])
    init = time_init(implementations[0], X, case, start, repeats)
    init["iterations"] = _ratio(init["seconds"], fastem_iter)
    result = dict(
        name=case.name,
        covariance_type=case.covariance_type,
        n_samples=case.n_samples,
        n_features=case.n_features,
        n_components=case.n_components,
        data=case.data,
        limit=limit,
        per_iteration=per_iteration,
        speedup={
            name: _ratio(seconds_per_iteration(per_iteration[name]), fastem_iter)
            for name in per_iteration if name != "fastem"
        },
        limit_multiple=_ratio(fastem_iter, limit["seconds"]),
        fit=fits,
        fit_ratio=_ratio(fits["sklearn"]["seconds"], fits["fastem"]["seconds"]),
        init=init,
        scaling=_scaling(one_thread, X, case, start, repeats, fastem_iter, steal),
    )
    result["targets"] = targets(result)
    return result


def _scaling(one_thread, X, case, start, repeats, many_seconds, many_steal):
    """fastem's s/iter on one thread beside the one measured on all, with the steal during each."""
    if one_thread is None:
        return None
    steal = Steal()
    entry = time_em([one_thread], X, case, start, repeats)["fastem"]
    one_steal = steal.stop()
    one_seconds = seconds_per_iteration(entry)
    return dict(
        one_thread=entry,
        one_thread_seconds=one_seconds,
        threads_seconds=many_seconds,
        speedup=_ratio(one_seconds, many_seconds),
        one_thread_steal=one_steal,
        threads_steal=many_steal,
    )


def _target(value, goal, at_most):
    if value is None:
        return None
    return dict(value=value, target=goal, at_most=at_most,
                met=bool(value <= goal) if at_most else bool(value >= goal))


def targets(result):
    """Issue 14's targets for one case, each met or missed (:data:`TARGETS`).

    Parameters
    ----------
    result : dict
        One entry of ``run_bench(...)["cases"]`` (``targets`` aside).

    Returns
    -------
    dict
        ``limit``, ``fit``, ``init`` and ``speedup_<peer>`` per peer: each
        None (not measured) or ``value``, ``target``, ``at_most`` (the value
        must be at most the target, else at least) and ``met``.
    """
    d = result["n_features"]
    narrow_limit, wide_limit = TARGETS["limit"]
    narrow_fit, wide_fit = TARGETS["fit"]
    chosen = dict(
        limit=_target(result["limit_multiple"],
                      wide_limit if d >= LIMIT_TARGET_WIDE_D else narrow_limit, at_most=True),
    )
    for name, value in result["speedup"].items():
        chosen[f"speedup_{name}"] = _target(value, TARGETS["speedup"], at_most=False)
    chosen["fit"] = _target(result["fit_ratio"], narrow_fit if d <= FIT_TARGET_NARROW_D else wide_fit,
                            at_most=False)
    chosen["init"] = _target(result["init"]["iterations"], TARGETS["init"], at_most=True)
    return chosen
