"""Model selection: fit a grid of Gaussian mixtures, score each, keep the best.

``select(X, n_components, covariance_types, criterion)`` fits one
``GaussianMixture`` per (K, covariance type) and scores it by BIC, AIC or the
held-out log-likelihood, the loop people otherwise write around scikit-learn
(and what R's mclust does with BIC).  It does less work than that loop:

- **One validation.** X is checked once, into one row source
  (``fastem._sources.rows_for_fit``), and every candidate is fitted and
  scored from it.
- **k-means once per K.** With ``init_params="kmeans"``, the k-means centres
  do not depend on the covariance type, only on K and the random stream, so
  they are found once per K (per initialisation) and every covariance type
  starts from them, each turning them into its own initial parameters as a
  plain fit does (the statistics of the nearest-centre assignment and one
  M-step).
- **Parallel candidates only where that pays**, which on the 2-core machine
  we measured was nowhere clearly: by default candidates are fitted one at a
  time and the kernels use every thread within each pass; ``n_jobs`` fits
  several at a time instead (the measurements are beside ``_schedule``).

Random streams.  Each K gets one integer seed: ``random_state`` itself when
it is an int; otherwise one draw per K (in the order of `n_components`) from
``check_random_state(random_state)``.  Every candidate with that K is then
the fit ``GaussianMixture(K, covariance_type=..., random_state=seed,
n_init=n_init, ...).fit(X)`` would make, bit for bit, whatever the threads
or the parallel schedule: with k-means, initialisation i of every covariance
type starts from the i-th k-means run on ``RandomState(seed)``, exactly the
draws of that standalone fit.  The table's ``seed`` column records the seed,
and each fitted estimator's ``random_state`` is set to it.
"""
import concurrent.futures
import numbers
import time
import warnings

import numpy as np

from fastem._base import information_criteria
from fastem._blas_threads import single_threaded_blas
from fastem._covariance import COVARIANCE_NAMES
from fastem._gaussian_mixture import GaussianMixture, _weighted_sum
from fastem._kmeans import kmeans
from fastem._openmp_info import effective_n_threads
from fastem._sources import ArrayRows, is_dask_collection, rows_for_fit
from fastem._validation import check_array, check_feature_names, check_random_state
from fastem.exceptions import ConvergenceWarning

__all__ = ["select", "SelectionResult"]

CRITERIA = ("bic", "aic", "held_out")

# What the score column holds, per criterion, and which way is better.
_CRITERION_LABELS = {
    "bic": ("BIC", "lower is better"),
    "aic": ("AIC", "lower is better"),
    "held_out": ("held-out log-likelihood per sample", "higher is better"),
}

# n_jobs=None fits one candidate at a time on every kernel thread.  Measured
# by benchmarks/select_parallel.py on an idle 2-core machine (4 covariance
# types at one K, 10 iterations, medians of 5 and 7, two runs): two candidates
# at a time on one kernel thread each were 0.51-0.88x as fast below
# N*K*D = 3e5 (a small fit's Python steps then compete for the GIL), and
# 0.87-1.08x above (within the run-to-run noise); the whole default grid (K =
# 1..9, D = 4) gained 5-9 %.  An earlier run on a loaded machine had shown
# 1.5-3x for parallel candidates: the kernels' threads meet at a barrier every
# pass and suffer most from other jobs.  So the kernels keep the threads, and
# n_jobs > 1 is there for machines where whole fits in parallel do pay.

_RESULT_COLUMNS = ("n_components", "covariance_type", "score", "bic", "aic", "held_out",
                   "log_likelihood", "n_parameters", "converged", "n_iter", "seconds", "seed")


class SelectionResult:
    """The candidates :func:`select` fitted, their scores and the best one.

    Attributes
    ----------
    table : dict of str to list
        One entry per candidate, in the order ``select`` fitted them (K in the
        order of `n_components`, then the covariance types in their order):

        - ``n_components`` (int), ``covariance_type`` (str);
        - ``score`` (float): the criterion's value;
        - ``bic``, ``aic`` (float): on X (with `sample_weight`), as
          ``GaussianMixture.bic(X, sample_weight)`` gives them;
        - ``held_out`` (float or None): mean log-likelihood per sample of
          `X_test`, as ``score(X_test)`` gives it (None without `X_test`);
        - ``log_likelihood`` (float): total (weighted) log-likelihood of X;
        - ``n_parameters`` (int): free parameters;
        - ``converged`` (bool), ``n_iter`` (int): of the kept initialisation;
        - ``seconds`` (float): wall time of the candidate's EM and scoring,
          not counting the k-means it shares with its K;
        - ``seed`` (int): the ``random_state`` that refits it.
    criterion : {"bic", "aic", "held_out"}
    best_index_ : int
        Row of the best candidate: the lowest BIC or AIC, the highest
        held-out log-likelihood (the first row on a tie).
    best_params_ : dict
        ``{"n_components": K, "covariance_type": name}`` of that row.
    best_estimator_ : GaussianMixture
        The best candidate, fitted.
    estimators_ : list of GaussianMixture
        Every candidate, fitted, in the order of the table's rows.
    """

    def __init__(self, table, criterion, estimators):
        self.table = table
        self.criterion = criterion
        self.estimators_ = estimators
        scores = table["score"]
        pick = max if criterion == "held_out" else min
        self.best_index_ = pick(range(len(scores)), key=scores.__getitem__)
        self.best_params_ = {
            "n_components": table["n_components"][self.best_index_],
            "covariance_type": table["covariance_type"][self.best_index_],
        }
        self.best_estimator_ = estimators[self.best_index_]

    def to_frame(self):
        """The table as a pandas DataFrame, one row per candidate.

        Returns
        -------
        pandas.DataFrame
            The columns of :attr:`table`, in its order.

        Raises
        ------
        ImportError
            If pandas is not installed.
        """
        try:
            import pandas
        except ImportError:
            raise ImportError(
                "SelectionResult.to_frame() needs pandas, which is not installed: "
                "pip install pandas (the table itself is SelectionResult.table, a dict of lists)"
            ) from None
        return pandas.DataFrame(self.table)

    def format_table(self):
        """The table as aligned text, the best candidate marked with ``*``.

        Returns
        -------
        str
            A header, one line per candidate, and a last line naming the
            best candidate and the criterion.
        """
        label, direction = _CRITERION_LABELS[self.criterion]
        header = ["", "K", "covariance", self.criterion, "converged", "n_iter", "seconds"]
        rows = []
        for i in range(len(self.table["score"])):
            rows.append([
                "*" if i == self.best_index_ else "",
                str(self.table["n_components"][i]),
                self.table["covariance_type"][i],
                # Scores of order 1e4-1e6 (BIC, AIC) read best to one decimal; held-out
                # means are per sample, of order 1-10.
                f"{self.table['score'][i]:.{4 if self.criterion == 'held_out' else 1}f}",
                "yes" if self.table["converged"][i] else "no",
                str(self.table["n_iter"][i]),
                f"{self.table['seconds'][i]:.3f}",
            ])
        widths = [max(len(r[c]) for r in [header] + rows) for c in range(len(header))]
        left = {1: False, 2: True, 4: True}  # text columns align left, numbers right

        def line(cells):
            return "  ".join(cell.ljust(w) if left.get(c, c == 0) else cell.rjust(w)
                             for c, (cell, w) in enumerate(zip(cells, widths))).rstrip()

        best = self.best_params_
        footer = (f"* best by {label} ({direction}): n_components={best['n_components']}, "
                  f"covariance_type={best['covariance_type']!r}")
        return "\n".join([line(header)] + [line(r) for r in rows] + [footer])

    def __repr__(self):
        best = self.best_params_
        return (f"SelectionResult(criterion={self.criterion!r}, "
                f"n_candidates={len(self.estimators_)}, best_params_={best!r}, "
                f"best score={self.table['score'][self.best_index_]:.6g})")


def select(
    X,
    n_components=range(1, 10),
    covariance_types=("full", "tied", "diag", "spherical"),
    criterion="bic",
    *,
    sample_weight=None,
    X_test=None,
    random_state=None,
    n_init=1,
    max_iter=100,
    tol=1e-3,
    reg_covar=1e-6,
    init_params="kmeans",
    n_threads=None,
    n_jobs=None,
    on_candidate=None,
):
    """Fit a Gaussian mixture for every K and covariance type, and pick the best.

    Every candidate is the fit ``GaussianMixture(K, covariance_type=...,
    random_state=seed, ...).fit(X, sample_weight=sample_weight)`` would make,
    bit for bit (the module docstring says how seeds are chosen); X is
    checked once, and k-means runs once per K and initialisation, shared by
    the covariance types.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Anything ``GaussianMixture.fit`` takes (memmaps and on-disk arrays
        included).  It needs at least ``max(n_components)`` rows.
    n_components : int or iterable of int, default=range(1, 10)
        The component counts to try, each at least 1, without repeats.
    covariance_types : str or iterable of str, default=("full", "tied", "diag", "spherical")
        The covariance types to try, without repeats.
    criterion : {"bic", "aic", "held_out"}, default="bic"
        "bic" and "aic": ``GaussianMixture.bic(X)`` and ``aic(X)`` (with
        `sample_weight`, n is the sum of the weights), lower is better.
        "held_out": the mean log-likelihood per sample of `X_test`, higher
        is better.
    sample_weight : array-like of shape (n_samples,), default=None
        Row weights, as in ``GaussianMixture.fit``.
    X_test : array-like of shape (n_test, n_features), default=None
        Held-out rows; required by ``criterion="held_out"``.  When given, the
        table's ``held_out`` column is filled whatever the criterion.
    random_state : int, RandomState instance or None, default=None
        An int seeds every K alike (so a candidate equals the standalone fit
        with ``random_state=random_state``); otherwise one seed per K is drawn
        from it.  The table's ``seed`` column holds the seed of each row.
    n_init, max_iter, tol, reg_covar, init_params
        As in :class:`GaussianMixture`, for every candidate.
    n_threads : int or None, default=None
        Threads in all (None: as ``GaussianMixture(n_threads=None)``).
    n_jobs : int or None, default=None
        Candidates fitted at the same time, sharing the `n_threads` threads
        between them.  None: one at a time, the kernels using every thread.
        Measured on an idle 2-core machine, two candidates at a time were
        0.5-0.9x as fast for small data (N * K * D below 3e5) and within
        noise (0.87-1.08x) above.  Results do not depend on it.
    on_candidate : callable, default=None
        Called as ``on_candidate(done, total, params)`` after each candidate
        is fitted, from the calling thread, with the count done so far, the
        number of candidates and that candidate's ``{"n_components": K,
        "covariance_type": name}`` (for a progress bar).

    Returns
    -------
    SelectionResult
        The table of scores, every fitted candidate and the best one.

    Raises
    ------
    ValueError
        For an empty or repeated grid, an unknown covariance type or
        criterion, ``criterion="held_out"`` without `X_test`, X with fewer
        rows than the largest K (scikit-learn's message: no candidate is
        skipped silently), a bad parameter, or a candidate whose fit fails
        (its K and covariance type named).

    Warns
    -----
    ConvergenceWarning
        Once, if any candidate did not converge (naming how many, and
        whether the best is among them), instead of once per candidate.

    Examples
    --------
    >>> import numpy as np
    >>> import fastem
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-4, 1, (500, 2)), rng.normal(4, 1, (500, 2))])
    >>> result = fastem.select(X, n_components=range(1, 5), random_state=0)
    >>> result.best_params_
    {'n_components': 2, 'covariance_type': 'spherical'}
    """
    ks = _check_n_components(n_components)
    types = _check_covariance_types(covariance_types)
    if not isinstance(criterion, str) or criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(map(repr, CRITERIA))}; got {criterion!r}")
    if criterion == "held_out" and X_test is None:
        raise ValueError("criterion='held_out' needs X_test, the held-out rows to score")
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral)
                               or n_jobs < 1):
        raise ValueError(f"n_jobs must be None or a positive integer, got {n_jobs!r}")
    if on_candidate is not None and not callable(on_candidate):
        raise ValueError(f"on_candidate must be callable or None, got {on_candidate!r}")
    settings = dict(tol=tol, reg_covar=reg_covar, max_iter=max_iter, n_init=n_init,
                    init_params=init_params, n_threads=n_threads)
    # Parameters fail here, with the estimator's messages, before X is read.
    for name in types:
        GaussianMixture(max(ks), covariance_type=name, **settings)._check_parameters()
    total_threads = effective_n_threads(n_threads)

    with single_threaded_blas():
        # The largest K sets the row counts X must have, so every candidate can be fitted.
        source = rows_for_fit(X, sample_weight, max(ks), "GaussianMixture", n_threads=n_threads)
        if X_test is not None:
            X_test = _check_test_data(X_test, source.n_features)
        seeds = _seeds(random_state, ks)
        plan = _schedule(ks, total_threads, n_jobs)
        candidates = [(k, name) for k in ks for name in types]
        rows, estimators = [None] * len(candidates), [None] * len(candidates)
        done = 0
        with warnings.catch_warnings():
            # One summary below instead of one warning per candidate.
            warnings.simplefilter("ignore", ConvergenceWarning)
            for group_ks, workers, threads in plan:
                centres = dict(zip(group_ks, _map(
                    workers, lambda k: _shared_centres(source, k, seeds[k], init_params, n_init,
                                                       threads), group_ks)))
                indices = [i for i, (k, _) in enumerate(candidates) if k in centres]

                def fit_one(i):
                    k, name = candidates[i]
                    estimator = GaussianMixture(k, covariance_type=name, random_state=seeds[k],
                                                **dict(settings, n_threads=threads))
                    return i, _fit_and_score(estimator, centres[k], source, X, sample_weight,
                                             X_test, threads)

                for i, (estimator, row) in _map(workers, fit_one, indices, ordered=False):
                    estimator.n_threads = n_threads  # what predict and score use afterwards
                    estimators[i], rows[i] = estimator, row
                    done += 1
                    if on_candidate is not None:
                        k, name = candidates[i]
                        on_candidate(done, len(candidates), {"n_components": k, "covariance_type": name})

    for row in rows:
        row["score"] = row[criterion]
    table = {column: [row[column] for row in rows] for column in _RESULT_COLUMNS}
    result = SelectionResult(table, criterion, estimators)
    _warn_unconverged(result)
    return result


# ---------------------------------------------------------------- checks

def _check_n_components(n_components):
    values = [n_components] if isinstance(n_components, numbers.Integral) else list(n_components)
    if not values:
        raise ValueError("n_components is empty: give at least one component count to try")
    for k in values:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"n_components must hold integers >= 1, got {k!r}")
    values = [int(k) for k in values]
    repeated = sorted({k for k in values if values.count(k) > 1})
    if repeated:
        raise ValueError(f"n_components repeats {repeated}: give each count once")
    return values


def _check_covariance_types(covariance_types):
    values = [covariance_types] if isinstance(covariance_types, str) else list(covariance_types)
    if not values:
        raise ValueError("covariance_types is empty: give at least one of "
                         + ", ".join(map(repr, COVARIANCE_NAMES)))
    for name in values:
        if name not in COVARIANCE_NAMES:
            raise ValueError(f"covariance_types must hold names among "
                             f"{', '.join(map(repr, COVARIANCE_NAMES))}; got {name!r}")
    repeated = sorted({name for name in values if values.count(name) > 1})
    if repeated:
        raise ValueError(f"covariance_types repeats {repeated}: give each type once")
    return values


def _check_test_data(X_test, n_features):
    """X_test checked once, as ``score`` checks its X, with X's number of features."""
    X_test = check_array(X_test, estimator_name="GaussianMixture", input_name="X_test", for_fit=False)
    if X_test.shape[1] != n_features:
        raise ValueError(f"X_test has {X_test.shape[1]} features, but X has {n_features}")
    return X_test


def _seeds(random_state, ks):
    """One integer seed per K: random_state itself when an int, else drawn in the order of ks."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return dict.fromkeys(ks, int(random_state))
    stream = check_random_state(random_state)
    return {k: int(stream.randint(np.iinfo(np.int32).max)) for k in ks}


# ------------------------------------------------------------ scheduling

def _schedule(ks, total_threads, n_jobs):
    """Groups of K fitted alike: a list of (ks, candidates at a time, kernel threads each).

    None: one candidate at a time with every thread (the measurements are in
    the comment among this module's constants); an explicit `n_jobs`
    fits that many at a time and shares the threads between them.
    """
    workers = 1 if n_jobs is None else n_jobs
    return [(ks, workers, max(1, total_threads // workers))]


def _map(workers, function, items, ordered=True):
    """function over items: in this thread with one worker, else on a pool of `workers` threads.

    The engine's passes release the GIL, so threads run kernels side by
    side.  Unordered results come as they finish, to this thread.
    """
    if workers == 1 or len(items) <= 1:
        yield from map(function, items)
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        futures = [pool.submit(function, item) for item in items]
        try:
            finished = futures if ordered else concurrent.futures.as_completed(futures)
            for future in finished:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


# ------------------------------------------------------------ one candidate

def _shared_centres(source, k, seed, init_params, n_init, n_threads):
    """The k-means centres of each initialisation of K, or None when not initialising by k-means.

    Drawn from ``RandomState(seed)`` in initialisation order, as
    ``GaussianMixture(k, random_state=seed, n_init=n_init).fit`` draws them
    (k-means is the only thing its initialisation takes from the stream).
    """
    if init_params != "kmeans":
        return None
    stream = np.random.RandomState(seed)
    return [kmeans(source, k, stream, n_threads=n_threads) for _ in range(n_init)]


def _fit_and_score(estimator, centres, source, X, sample_weight, X_test, n_threads):
    """Fit one candidate from the shared source and centres; its fitted self and table row."""
    check_feature_names(estimator, X, reset=True)
    start = time.perf_counter()
    try:
        estimator._fit_checked_source(source, centres)
    except (ValueError, FloatingPointError) as exc:
        raise ValueError(f"fitting n_components={estimator.n_components}, covariance_type="
                         f"{estimator.covariance_type!r} failed: {exc}") from exc
    if isinstance(source, ArrayRows) and not isinstance(X, np.memmap) and not is_dask_collection(X):
        # The pass score(X) makes, on the rows already checked.
        log_lik, n = _weighted_sum(_log_prob(estimator, source.X, n_threads), source.sample_weight)
    else:  # memmaps and block sources: block by block, as bic(X) reads them
        log_lik, n = estimator._log_likelihood_and_weight(X, sample_weight)
    n_parameters = estimator._n_parameters()
    bic, aic = information_criteria(log_lik, n, n_parameters)
    held_out = None
    if X_test is not None:
        test_lik, n_test = _weighted_sum(_log_prob(estimator, X_test, n_threads), None)
        held_out = float(test_lik / n_test)
    row = {
        "n_components": int(estimator.n_components),
        "covariance_type": estimator.covariance_type,
        "bic": bic, "aic": aic, "held_out": held_out,
        "log_likelihood": float(log_lik), "n_parameters": int(n_parameters),
        "converged": bool(estimator.converged_), "n_iter": int(estimator.n_iter_),
        "seconds": time.perf_counter() - start, "seed": estimator.random_state,
    }
    return estimator, row


def _log_prob(estimator, X, n_threads):
    """Per-row log-likelihood under a fitted candidate (score_samples without the checks)."""
    model = estimator._model(estimator.weights_, estimator.means_, estimator.precisions_cholesky_)
    return model.score(X, want_log_prob=True, n_threads=n_threads)[0]


def _warn_unconverged(result):
    unconverged = [i for i, ok in enumerate(result.table["converged"]) if not ok]
    if not unconverged:
        return
    best = ("the best among them" if result.best_index_ in unconverged
            else "the best is not among them")
    warnings.warn(
        f"{len(unconverged)} of {len(result.estimators_)} candidates did not converge "
        f"({best}); the table's 'converged' column says which. Try a larger max_iter "
        "or tol, or check the data.",
        ConvergenceWarning, stacklevel=3,
    )
