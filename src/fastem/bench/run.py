"""One benchmark run: every case through every implementation, into one plain dict.

The dict is what ``--json`` writes and what :mod:`fastem.bench.report` reads.
"""
import threadpoolctl

import fastem
from fastem.bench import hmm, requirements, runners
from fastem.bench.cases import DATA_SEED, REG_COVAR, make_data, partition_start
from fastem.bench.probes import (
    OtherLoad,
    _package_version,
    environment,
    iteration_limit,
    measure_machine,
    thread_pools,
)
from fastem.bench.report import hmm_progress_line, progress_line
from fastem.bench.runners import (
    Daal4pyRunner,
    EstimatorRunner,
    seconds_per_iteration,
    time_em,
    time_fit,
)

__all__ = ["run_bench"]


def _ratio(numerator, denominator):
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def run_bench(cases, threads=2, repeats=3, quick=False, progress=None):
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

    Returns
    -------
    dict
        Plain data (JSON-serialisable): ``settings``, ``environment``,
        ``thread_pools``, ``machine``, one entry per Gaussian case in
        ``cases`` and per HMM case in ``hmm_cases``; ``hmm_skipped`` says
        why HMM cases were not run (None when they were, or none was asked).
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
            results = []
            for number, case in enumerate(cases, start=1):
                during_case = OtherLoad()
                results.append(_run_case(case, implementations, machine, repeats))
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
        settings=dict(threads=threads, repeats=repeats, quick=quick, reg_covar=REG_COVAR,
                      iteration_target_seconds=runners.ITER_TARGET_SECONDS,
                      max_timed_seconds=runners.MAX_TIMED_SECONDS, data_seed=DATA_SEED),
        environment=facts,
        thread_pools=pools,
        machine=machine,
        other_load=whole_run.fraction(),
        implementations=[runner.name for runner in implementations],
        daal4py_installed=daal4py is not None,
        cases=results,
        hmm_implementations=["fastem", "hmmlearn"],
        hmmlearn=None if hmmlearn is None else _package_version(hmmlearn, "hmmlearn"),
        hmm_skipped=hmm_skipped,
        hmm_cases=hmm_results,
    )


def _run_case(case, implementations, machine, repeats):
    X = make_data(case)
    start = partition_start(X, case.n_components, case.covariance_type)
    limit = iteration_limit(case, machine, itemsize=X.itemsize)
    per_iteration = time_em(implementations, X, case, start, repeats)
    fits = time_fit([r for r in implementations if r.name in ("fastem", "sklearn")], X, case, repeats)
    fastem_iter = seconds_per_iteration(per_iteration["fastem"])
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
            name: _ratio(seconds_per_iteration(per_iteration[name]), fastem_iter)
            for name in per_iteration if name != "fastem"
        },
        limit_multiple=_ratio(fastem_iter, limit["seconds"]),
        fit=fits,
        fit_ratio=_ratio(fits["sklearn"]["seconds"], fits["fastem"]["seconds"]),
    )
