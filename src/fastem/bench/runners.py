"""The implementations ``fastem bench`` compares, and how each is timed.

A runner drives one implementation: fastem's or scikit-learn's
``GaussianMixture`` (:class:`EstimatorRunner`), or daal4py's ``em_gmm``
(:class:`Daal4pyRunner`).  :func:`time_em` measures one EM iteration of each
from a shared start, :func:`time_fit` a whole default fit and its peak NumPy
memory, :func:`time_init` the k-means initialisation of a default fit.
"""
import math
import statistics
import time
import tracemalloc
import warnings

import numpy as np

from fastem._covariance import covariance_type
from fastem.bench.cases import REG_COVAR

__all__ = [
    "Daal4pyRunner",
    "EstimatorRunner",
    "quiet_fit",
    "seconds_per_iteration",
    "time_em",
    "time_fit",
    "time_init",
]

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


class _Unsupported(Exception):
    """The implementation has no equivalent of this case (e.g. daal4py and tied covariances)."""


def quiet_fit(model, X):
    """Fit `model` to `X` without the warning of a fit stopped by ``max_iter``.

    The benchmark asks for exactly that stop, so the warning says nothing.

    Parameters
    ----------
    model : estimator with ``fit``
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    model
        The fitted `model`.
    """
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


class EstimatorRunner(_Runner):
    """fastem's or scikit-learn's GaussianMixture: the same API, `extra` aside.

    Parameters
    ----------
    name : str
        The implementation's name in the results ("fastem", "sklearn").
    estimator : class
        A ``GaussianMixture``.
    **extra
        Parameters only this estimator takes (fastem's ``n_threads``).
    """

    def __init__(self, name, estimator, **extra):
        self.name, self.estimator, self.extra = name, estimator, extra

    def em(self, X, case, start, max_iter):
        model = self.estimator(
            case.n_components, covariance_type=case.covariance_type, max_iter=max_iter,
            tol=0.0, reg_covar=REG_COVAR, **self.extra, **start.init_kwargs(),
        )
        return quiet_fit(model, X).n_iter_

    def fit(self, X, case):
        model = self.estimator(
            case.n_components, covariance_type=case.covariance_type, random_state=0, **self.extra,
        )
        model = quiet_fit(model, X)
        return model.n_iter_, bool(model.converged_)

    def initialise(self, X, case, start=None):
        """A fit of no iterations: the default initialisation, or none when `start` is given."""
        given = {} if start is None else start.init_kwargs()
        model = self.estimator(
            case.n_components, covariance_type=case.covariance_type, random_state=0, max_iter=0,
            **self.extra, **given,
        )
        quiet_fit(model, X)


class Daal4pyRunner(_Runner):
    """daal4py's ``em_gmm``, from the same start; it has no whole-fit counterpart.

    Parameters
    ----------
    daal4py : module
    """

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
        if covariance_type(case.covariance_type).matrix:
            covariances = [np.ascontiguousarray(c) for c in start.covariances]
        else:
            covariances = [c[None, :].copy() for c in start.covariances]
        algorithm = self.daal4py.em_gmm(
            nComponents=case.n_components, maxIterations=max_iter, accuracyThreshold=0.0,
            regularizationFactor=REG_COVAR, covarianceStorage=storage,
        )
        result = algorithm.compute(X, weights, start.means.copy(), covariances)
        return int(np.asarray(result.nIterations).ravel()[0])


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


def _one_line(message):
    return " ".join(str(message).split())


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


def time_em(runners, X, case, start, repeats):
    """Seconds per EM iteration of each runner, all from `start`.

    Each runner is first warmed up and calibrated: fits of 1 and
    1 + CALIBRATION_ITERS iterations give a first estimate of one iteration,
    from which m is chosen.  Then the repeats run round-robin over the
    runners (short fit, long fit, next runner), so that a change in the
    machine's load during the run affects every implementation alike.

    Parameters
    ----------
    runners : list of EstimatorRunner or Daal4pyRunner
    X : ndarray of shape (n_samples, n_features)
    case : Case
    start : StartingPoint
    repeats : int

    Returns
    -------
    dict
        Per runner name, an entry with ``status`` ("ok", "unsupported" or
        "error"); an "ok" entry holds every timing, their medians,
        ``seconds_per_iteration`` and the ``method`` that gave it.
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


def time_fit(runners, X, case, repeats):
    """Whole default fits: one traced run (peak memory, also the warm-up), then timed repeats.

    Parameters
    ----------
    runners : list of EstimatorRunner
    X : ndarray of shape (n_samples, n_features)
    case : Case
    repeats : int

    Returns
    -------
    dict
        Per runner name: ``peak_bytes``, ``n_iter``, ``converged``, the
        ``times`` of the repeats and their median, ``seconds``.
    """
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


def time_init(runner, X, case, start, repeats):
    """Seconds of a default fit's initialisation (k-means), without the rest of the fit.

    Timed as t(default fit, max_iter=0) - t(fit from `start`, max_iter=0):
    both check X, store the model and run no iteration, so the difference is
    the k-means initialisation alone.  The two alternate, medians are taken.

    Parameters
    ----------
    runner : EstimatorRunner
        fastem's (its estimator takes ``max_iter=0``).
    X : ndarray of shape (n_samples, n_features)
    case : Case
    start : StartingPoint
    repeats : int

    Returns
    -------
    dict
        ``default`` and ``given`` (the times of the repeats), their medians
        ``median_default_seconds`` and ``median_given_seconds``, and
        ``seconds``, their difference (at least 0).
    """
    runner.initialise(X, case)  # warm-up
    default, given = [], []
    for _ in range(repeats):
        default.append(_timed(runner.initialise, X, case)[0])
        given.append(_timed(runner.initialise, X, case, start)[0])
    median_default, median_given = statistics.median(default), statistics.median(given)
    return dict(default=default, given=given, median_default_seconds=median_default,
                median_given_seconds=median_given, seconds=max(median_default - median_given, 0.0))


def seconds_per_iteration(entry):
    """An implementation's seconds per iteration, or None when it did not run the case.

    Parameters
    ----------
    entry : dict or None
        One runner's entry of :func:`time_em`.

    Returns
    -------
    float or None
    """
    return entry.get("seconds_per_iteration") if entry and entry.get("status") == "ok" else None
