"""The Gaussian mixture: a drop-in for scikit-learn's, on the EM engine.

The EM loop, scikit-learn's protocol and the shared scores come from
fastem._base; the initialisations from fastem._init.  What is left here is
what makes the model Gaussian: its parameters, their checks, one EM step
through the compiled engine (fastem._em, the code the C API runs too) and
inference.
"""
import collections
import math

import numpy as np

from fastem import _covariance as cov_table
from fastem import _online, _persistence
from fastem._base import EMEstimator, FitData
from fastem._blas_threads import single_threaded_blas
from fastem import _em
from fastem._em import ModelArrays
from fastem._init import INIT_METHODS, initial_parameters
from fastem._openmp_info import effective_n_threads
from fastem._sources import (
    ArrayRows, BlockRows, e_step, is_dask_collection, is_on_disk_array, row_blocks,
    rows_for_fit,
)
from fastem._validation import (
    GAUSSIAN_MIXTURE_PARAMETERS,
    check_feature_names,
    check_initial_parameters,
    check_parameters,
    check_random_state,
    check_sample_count,
    check_sample_weight,
    check_storable,
    validate_predict_data,
)

# The fit data, the checked weights_init, means_init and precisions_init factors,
# what missing="em" learnt of the data (a MissingSummary, or None), and
# (fastem.select only) an iterator of k-means centres, one per initialisation.
_GaussianFitData = collections.namedtuple(
    "_GaussianFitData", FitData._fields + ("given", "missing", "kmeans_centres"),
    defaults=(None, None))


class GaussianMixture(EMEstimator):
    """Gaussian mixture model fitted by Expectation-Maximization.

    A drop-in replacement for :class:`sklearn.mixture.GaussianMixture`: the
    same parameters, attributes, methods and EM iterations, computed by fused
    Cython/OpenMP kernels that make one pass over X per iteration and never
    allocate an (n_samples, n_components) or (n_samples, n_features)
    temporary while fitting.  Fitted parameters are bitwise identical for any
    ``n_threads``.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        "full": each component has its own covariance matrix; "tied": one
        shared matrix; "diag": each has a diagonal matrix; "spherical": each
        has a single variance.
    tol : float, default=1e-3
        EM stops when the lower bound (mean log-likelihood per sample) changes
        by less than `tol`.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance, keeping them positive definite.
    max_iter : int, default=100
        EM iterations per initialisation.
    n_init : int, default=1
        Initialisations; the one with the highest lower bound is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default="kmeans"
        How the initial responsibilities are chosen: k-means labels, k-means++
        seeds, uniform random responsibilities, or random data points.
    weights_init : array-like of shape (n_components,), default=None
    means_init : array-like of shape (n_components, n_features), default=None
    precisions_init : array-like, default=None
        Initial precisions (inverse covariances), shaped like ``covariances_``.
    random_state : int, RandomState instance or None, default=None
    warm_start : bool, default=False
        If True, each ``fit`` starts from the previous fit's parameters (and
        ``n_init`` is ignored).
    verbose : int, default=0
        1 prints the initialisation and each `verbose_interval` iteration; 2
        adds timings and the lower-bound change.
    verbose_interval : int, default=10
    n_threads : int or None, default=None
        OpenMP threads for the kernels.  None: OpenMP's current limit
        (``OMP_NUM_THREADS`` or a threadpoolctl limit), capped at the CPUs
        this process may use.  Results do not depend on it.
    learning_decay : float, default=0.7
        alpha of :meth:`partial_fit`'s step sizes, in (0.5, 1]: the t-th
        chunk (from 1) gets the weight ``gamma_t = (t + learning_offset) **
        -learning_decay`` and the running statistics ``1 - gamma_t``.  Larger
        values forget the past more slowly late in a stream.  ``fit`` ignores it.
    learning_offset : float, default=2.0
        tau of :meth:`partial_fit`'s step sizes, > 0; larger values make the
        early steps smaller (gamma_1 = (1 + tau) ** -alpha, 0.46 by default).
        ``fit`` ignores it.
    callback : callable or None, default=None
        Called after every EM iteration of ``fit``, ``fit_predict`` and
        ``fit_chunks`` as ``callback(info)``, after the `verbose` lines.
        ``info`` has the attributes ``init`` (the initialisation, from 0),
        ``n_iter`` (the iteration in it, from 1), ``lower_bound``, ``change``
        (from the previous iteration; inf after the first) and ``elapsed``
        (seconds since the first initialisation began).  Returning True ends
        the current initialisation: it counts as not converged, without a
        ConvergenceWarning, and with ``n_init > 1`` the next one starts; at
        an iteration where EM converged anyway it changes nothing.  An
        exception raised by the callback propagates and leaves the estimator
        as it was before the fit.  :meth:`partial_fit` calls it once per
        step, before the step is stored (its return value is then ignored).
    missing : {"error", "em"}, default="error"
        What NaN in X means.  "error": scikit-learn's behaviour, a
        ValueError.  "em": a missing value.  ``fit`` then runs exact EM for
        the likelihood of the observed values (Ghahramani & Jordan, 1994):
        each row's density is its marginal over its observed coordinates,
        and the M-step completes each row by E[x_m | x_o, k] and adds the
        conditional covariance, for every covariance type (for diag and
        spherical this is exact EM too, not the scheme that drops the
        missing coordinates; the two share fixed points but not
        iterations).  ``score_samples``, ``score``, ``predict`` and
        ``predict_proba`` use each row's observed values, and
        :meth:`impute` fills the gaps.  A row with no observed value adds
        nothing to the fit and is left out of ``lower_bound_``'s average
        (``n_empty_rows_`` counts them); it scores 0 (the log of an empty
        marginal) and its posterior is ``weights_``.  A column with no
        observed value is a ValueError.  The initialisation (every
        `init_params`) runs on the rows with each gap provisionally filled
        by its column's observed mean: complete rows can be rare (at 64
        features and 10% missing, about 1 row in 1000).  Infinity is an
        error either way.  Without NaN in X, "em" gives exactly the
        ordinary fit, bit for bit.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        (K, D, D) full, (D, D) tied, (K, D) diag, (K,) spherical.
    precisions_ : ndarray
        Inverses of the covariances, shaped alike.
    precisions_cholesky_ : ndarray
        Cholesky factors of the precisions, shaped alike.
    converged_ : bool
        Always False after :meth:`partial_fit` (a stream has no stopping rule).
    n_iter_ : int
        EM iterations of the best initialisation; after :meth:`partial_fit`,
        the steps taken since the stream began (its first chunk, or the last
        ``fit``).
    lower_bound_ : float
        Mean log-likelihood per sample (weighted mean with `sample_weight`;
        with missing values, of the observed values, over the rows that
        have one) of the best initialisation, at its last E-step; after
        :meth:`partial_fit`, that of the last chunk under the model before
        the step.
    lower_bounds_ : list of float
        The lower bound after every iteration of the best initialisation
        (after :meth:`partial_fit`, the last chunk's alone).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when X had string column names.
    n_empty_rows_ : int
        Rows of the fit's X with no observed value (0 unless ``missing="em"``);
        after :meth:`partial_fit`, of the chunk that began the stream.

    Notes
    -----
    Additions to scikit-learn: ``sample_weight`` in ``fit``, ``fit_predict``,
    ``score``, ``bic`` and ``aic`` (an integer weight acts as repeating the
    row, zero as removing it), ``n_threads``, ``callback``, and online EM
    (:meth:`partial_fit`, with ``learning_decay`` and ``learning_offset``).

    A component that loses all responsibility (every row's posterior for it
    underflows to 0) is kept, not re-seeded, exactly as in scikit-learn: the
    M-step adds 10 machine epsilons to every component's count, so its weight
    becomes about ``10 * eps / n_samples`` (never 0), its mean its empty sums
    over that floor (the origin), and its covariance ``reg_covar`` alone (the
    identity times ``reg_covar`` for full; a tied component keeps the shared
    covariance).  It stays finite and may win rows back in later iterations;
    with ``reg_covar=0`` its covariance is 0 and the fit raises scikit-learn's
    ill-defined-covariance ``ValueError``.  No NaN parameter is stored: data
    whose squares overflow float64 (magnitudes above ~1.3e154) are refused
    when fitting, float32 fits whose parameters overflow float32 raise, and
    ``predict``/``predict_proba`` raise for rows whose density underflows to
    0 under every component (``score_samples`` gives them ``-inf``).
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        n_threads=None,
        learning_decay=0.7,
        learning_offset=2.0,
        callback=None,
        missing="error",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.n_threads = n_threads
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.callback = callback
        self.missing = missing

    # ------------------------------------------------------------------
    # validation
    # ------------------------------------------------------------------
    def _check_parameters(self):
        check_parameters(self, GAUSSIAN_MIXTURE_PARAMETERS)

    def _check_initial_parameters(self, n_features):
        return check_initial_parameters(
            self.weights_init, self.means_init, self.precisions_init, n_components=self.n_components,
            n_features=n_features, covariance_type=self.covariance_type)

    def _validate_fit_data(self, X, sample_weight):
        check_feature_names(self, X, reset=True)
        source = rows_for_fit(X, sample_weight, self.n_components, type(self).__name__,
                              n_threads=self.n_threads, allow_nan=self.missing == "em")
        return self._fit_data(source)

    def _fit_data(self, source):
        """The fit data of a checked row source: the source and the checked ``*_init``."""
        if self.warm_start and self.__sklearn_is_fitted__() and self.means_.shape[1] != source.n_features:
            raise ValueError(
                f"X has {source.n_features} features, but the warm start holds a model with "
                f"{self.means_.shape[1]} features."
            )
        missing = source.missing_summary() if self.missing == "em" else None
        if missing is not None and not missing.has_nan:
            missing = None   # complete data: the ordinary fit, bit for bit
        if missing is not None and missing.n_empty:
            n_observed = source.n_candidates - missing.n_empty_candidates
            if n_observed < self.n_components:
                raise ValueError(
                    f"Expected at least n_components = {self.n_components} rows with an "
                    f"observed value (not all NaN) and a positive sample_weight, got {n_observed}"
                )
            # Rows with nothing observed add nothing: weighted 0, they are no
            # seeds for the initialisation either.
            source = source.without_empty_rows(self.n_components, type(self).__name__)
        elif missing is not None:
            source.rows_observed = True   # no row is empty
        return _GaussianFitData(source, self._check_initial_parameters(source.n_features), missing)

    def _fit_checked_source(self, source, kmeans_centres=None):
        """Fit on a row source ``rows_for_fit`` already checked: how ``fastem.select`` fits.

        `kmeans_centres` (with ``init_params="kmeans"``): the k-means centres
        of each initialisation in turn, found by the caller from the
        RandomState ``fit`` would draw them from, so the fit is the one ``fit``
        makes.  The caller records feature names and holds BLAS to one thread
        (concurrent fits must not each enter and leave threadpoolctl's limit).
        """
        self._check_parameters()
        data = self._fit_data(source)
        if kmeans_centres is not None:
            data = data._replace(kmeans_centres=iter(kmeans_centres))
        self._run_em(data)
        return self

    def _validate_predict_data(self, X, allow_nan=None):
        if allow_nan is None:
            allow_nan = self.missing == "em"
        return validate_predict_data(self, X, allow_nan=allow_nan)

    # ------------------------------------------------------------------
    # EM: the hooks of EMEstimator
    # ------------------------------------------------------------------
    def _model(self, weights, means, factor, covariances=None, missing=False):
        """The parameters as the compiled engine reads them (a lower factor turned upper).

        `missing`: the passes read NaN as missing values (fastem._missing).
        """
        factor = cov_table.upper_factors(factor, self.covariance_type)
        return ModelArrays(self.covariance_type, weights, means, factor, covariances,
                           missing=missing)

    def _initial_state(self, data, random_state):
        source = data.source
        if data.missing is not None:
            source = source.filled(data.missing.column_means)
        weights, means, covariances, factor = initial_parameters(
            source, n_components=self.n_components, covariance_type=self.covariance_type,
            init_params=self.init_params, reg_covar=self.reg_covar,
            random_state=random_state, n_threads=effective_n_threads(self.n_threads),
            given=data.given,
            kmeans_centres=None if data.kmeans_centres is None else next(data.kmeans_centres),
        )
        return self._model(weights, means, factor, covariances, missing=data.missing is not None)

    def _warm_state(self, data=None):
        missing = data is not None and data.missing is not None
        return self._model(self.weights_, self.means_, self.precisions_cholesky_, self.covariances_,
                           missing=missing)

    def _em_step(self, model, data):
        source, n_threads = data.source, effective_n_threads(self.n_threads)
        if isinstance(source, ArrayRows) and not model.missing:
            # One fused pass and the M-step, in C: the step em_fit of the C API runs.
            return model.em_step(source.X, source.sample_weight, source.total_weight,
                                 self.reg_covar, n_threads)
        # Rows in blocks: the same pass block by block, then the same M-step.
        stats, lower_bound = e_step(source, model, n_threads)
        model.m_step(stats.flat(), self.reg_covar, dtype=source.dtype)
        return lower_bound

    def _store_fitted(self, model, data):
        dtype = data.source.dtype
        precisions = cov_table.precisions_from_cholesky(model.precisions_cholesky, self.covariance_type)
        check_storable(dtype, weights_=model.weights, means_=model.means,
                       covariances_=model.covariances, precisions_cholesky_=model.precisions_cholesky,
                       precisions_=precisions)
        self.weights_ = np.asarray(model.weights, dtype=dtype)
        self.means_ = np.asarray(model.means, dtype=dtype)
        self.covariances_ = np.asarray(model.covariances, dtype=dtype)
        self.precisions_cholesky_ = np.asarray(model.precisions_cholesky, dtype=dtype)
        self.precisions_ = np.asarray(precisions, dtype=dtype)
        self.n_features_in_ = data.source.n_features
        # What partial_fit after fit weighs its first chunk against, and the
        # covariance type the arrays are stored for (fastem._online).
        self._seen_weight = float(data.source.total_weight)
        self._fitted_covariance_type = self.covariance_type
        if hasattr(data, "missing"):
            self.n_empty_rows_ = 0 if data.missing is None else int(data.missing.n_empty)
        else:   # a partial_fit step after the first: the stream's first count stands
            self.n_empty_rows_ = int(getattr(self, "n_empty_rows_", 0))

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit the model and return the most responsible component of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        labels : ndarray of shape (n_samples,), int
            Equal to ``fit(X).predict(X)``.
        """
        with single_threaded_blas():
            data = self._fit(X, sample_weight)
        if isinstance(data.source, ArrayRows):
            return self._score(data.source.X, want_labels=True)[2]
        return self.predict(X)

    def fit_chunks(self, make_chunks):
        """Estimate the model parameters with EM over data delivered in chunks.

        Every pass of the fit (the initialisation's and one per EM
        iteration) calls `make_chunks` again and reads its chunks once, so
        the data never need to be in memory together: files read one at a
        time, a database cursor, a generator.  Only one chunk at a time and
        a subsample of a few hundred rows per component are held (except
        with ``init_params="random_from_data"``, whose draw, scikit-learn's
        ``choice(n, k, replace=False)``, permutes an index of every row of
        positive weight: 8 bytes a row).

        From the same initial parameters, the fit equals ``fit`` on the
        concatenation of the chunks: bit for bit when every chunk but the
        last has a multiple of the kernel's chunk size of rows (which
        depends on the number of features; any multiple of 16384 rows is
        one), to rounding otherwise.  The initialisation draws the same rows
        as ``fit`` would from the same `random_state`, so with aligned chunks
        the whole fit is identical.

        Parameters
        ----------
        make_chunks : callable
            Called with no argument at the start of every pass; returns an
            iterable of chunks, each an array of shape (n_rows, n_features)
            or a pair ``(X, sample_weight)``.  Every call must give the same
            rows in the same order (a ValueError says so otherwise).  Chunks
            share one dtype: float32 stays float32, others become float64.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For chunks that disagree in features, dtype or weights, non-finite
            values (NaN is a missing value with ``missing="em"``), fewer rows
            than `n_components`, or a pass whose row count differs from the
            first.

        Examples
        --------
        >>> import numpy as np
        >>> from fastem import GaussianMixture
        >>> def chunks():
        ...     rng = np.random.default_rng(0)
        ...     for _ in range(4):
        ...         yield rng.normal(size=(16384, 2))
        >>> GaussianMixture(2, random_state=0).fit_chunks(chunks).n_features_in_
        2
        """
        with single_threaded_blas():
            with self._unchanged_on_error():
                self._check_parameters()
                source = BlockRows(make_chunks, self.n_components, type(self).__name__,
                                   allow_nan=self.missing == "em")
                self.__dict__.pop("feature_names_in_", None)  # chunks carry no column names
                self._run_em(self._fit_data(source))
        return self

    def partial_fit(self, X, y=None, sample_weight=None):
        """One step of online (stepwise) EM on a chunk of a stream.

        The model keeps running statistics s, the M-step's sums per unit of
        weight.  The t-th call computes the chunk's statistics under the
        current model, divided by the chunk's total weight (so a step does
        not depend on the chunk's size), blends them in as
        ``s = (1 - gamma_t) s + gamma_t s_chunk`` with
        ``gamma_t = (t + learning_offset) ** -learning_decay``, and sets the
        parameters to the M-step of s (Cappé & Moulines, 2009).

        The first call on an unfitted estimator initialises the model from its
        chunk (``init_params``, ``weights_init``, ``means_init``,
        ``precisions_init``, ``random_state``; one initialisation) and then
        takes the first step.  After ``fit``, the stream starts from the fitted
        parameters, and the schedule continues as if the fit's data had come
        as chunks like the first one: with W the fit's total weight and w the
        chunk's, t runs from W / w + 1, so a small chunk moves a model fitted
        to much data only a little.  ``n_init``, ``max_iter``, ``tol``
        and ``warm_start`` are not used.  The stream's state pickles: a
        pickled estimator carries on exactly as the original would.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            One chunk.  The first needs at least 2 and at least n_components
            rows; later ones at least one row, and the features of the first.
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights with a positive sum.

        Returns
        -------
        self
            With the fitted attributes of the new parameters; ``n_iter_`` is
            the number of steps since the stream began, ``lower_bound_`` the
            chunk's mean log-likelihood under the model before this step,
            ``converged_`` False.

        Raises
        ------
        ValueError
            For a chunk with other features than the model, NaN or infinity, a
            zero total weight, a first chunk with fewer rows than
            n_components, or a step whose log-likelihood is not finite or
            whose covariances are ill-defined (the model is then unchanged).
        """
        with single_threaded_blas():
            _online.partial_fit(self, X, sample_weight)
        return self

    # ------------------------------------------------------------------
    # inference
    # ------------------------------------------------------------------
    def _reads_missing(self, X):
        """True when the passes over validated X must read NaN as missing values."""
        if self.missing != "em":
            return False
        with np.errstate(invalid="ignore", over="ignore"):
            return not np.isfinite(np.sum(X, dtype=np.float64))   # NaN (X has no infinity)

    def _score(self, X, want_log_prob=False, want_resp=False, want_labels=False):
        model = self._model(self.weights_, self.means_, self.precisions_cholesky_,
                            missing=self._reads_missing(X))
        with single_threaded_blas():
            return model.score(
                X, want_log_prob=want_log_prob, want_resp=want_resp, want_labels=want_labels,
                n_threads=effective_n_threads(self.n_threads),
            )

    def _infer(self, X, output, cast=True):
        """``output`` ("log_prob", "resp" or "labels") for the rows of X.

        In memory, on disk (read in blocks) or a Dask array (lazily, block by
        block); floats in X's float dtype when `cast`.
        """
        if is_dask_collection(X):
            from fastem._dask import infer_lazily  # the optional extra

            return infer_lazily(self, X, output, cast)
        if is_on_disk_array(X):
            self._check_is_fitted()
            parts = [self._infer(block, output, cast) for _, block in row_blocks(X)]
            return np.concatenate(parts) if parts else self._infer(np.asarray(X[:0]), output, cast)
        return self._infer_checked(self._validate_predict_data(X), output, cast)

    def _infer_checked(self, X, output, cast=True):
        """_infer for an in-memory X that _validate_predict_data has returned."""
        index = ("log_prob", "resp", "labels").index(output)
        want = {f"want_{name}": name == output for name in ("log_prob", "resp", "labels")}
        # A row so far from every component that all its densities underflow
        # to 0 has no posterior (0/0): refuse it rather than return a label or
        # a row of zeros.  Its log-likelihood, -inf, is still a fair answer.
        want["want_log_prob"] = True
        scored = self._score(X, **want)
        if output != "log_prob":
            _refuse_underflowed_rows(scored[0])
        result = scored[index]
        if not cast or output == "labels":
            return result
        # A log-density below float32's range is -inf in float32: the true value's
        # nearest, not an error.
        with np.errstate(over="ignore"):
            return result.astype(X.dtype, copy=False)

    def score_samples(self, X):
        """Log-likelihood of each row under the mixture.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Also an on-disk array (read in blocks) or a Dask array (the
            result is a lazy Dask array).

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
            ``log p(x_n)``, in X's float dtype.
        """
        return self._infer(X, "log_prob")

    def _log_likelihood_and_weight(self, X, sample_weight):
        """Validated X's summed (weighted) log-likelihood and its total weight."""
        log_lik, total_weight = self._summed_log_likelihood(X, sample_weight)
        if not total_weight > 0:
            # (weights summing to zero are refused first: only missing="em" gets here)
            raise ValueError(
                "no row of X has an observed value (every value is NaN, or the rows that have "
                "one weigh zero): there is no likelihood to average"
            )
        return log_lik, total_weight

    def _summed_log_likelihood(self, X, sample_weight):
        if is_dask_collection(X):
            from fastem._dask import weighted_sum  # the optional extra

            return weighted_sum(self._infer(X, "log_prob", cast=False), sample_weight,
                                X=X if self.missing == "em" else None)
        if not (is_on_disk_array(X) or isinstance(X, np.memmap)):
            X = self._validate_predict_data(X)
            log_prob = self._infer_checked(X, "log_prob", cast=False)
            sample_weight = check_sample_weight(sample_weight, log_prob.shape[0])
            return self._observed_sum(X, log_prob, sample_weight)
        # Block by block: no per-row vector of a file larger than memory.
        self._check_is_fitted()
        sample_weight = check_sample_weight(sample_weight, X.shape[0])
        log_lik = total_weight = 0.0
        for start, block in row_blocks(X):
            block = self._validate_predict_data(block)
            log_prob = self._infer_checked(block, "log_prob", cast=False)
            weight = None if sample_weight is None else sample_weight[start:start + len(log_prob)]
            part, part_weight = self._observed_sum(block, log_prob, weight)
            log_lik, total_weight = log_lik + part, total_weight + part_weight
        return log_lik, total_weight

    def _observed_sum(self, X, log_prob, sample_weight):
        """_weighted_sum, with the total weight over rows that have an observed
        value when NaN marks missing values (an empty row scores 0 and counts for
        nothing, as in ``lower_bound_``)."""
        log_lik, total_weight = _weighted_sum(log_prob, sample_weight)
        if self._reads_missing(X):
            total_weight = _em.observed_weight(X, sample_weight)[0]
        return log_lik, total_weight

    def impute(self, X, return_std=False):
        """Fill the missing values (NaN) of X with their conditional expectations.

        Each gap of a row gets ``sum_k P(k | x_o) E[x_m | x_o, k]``, the mean
        of the missing values given the row's observed values x_o under the
        fitted mixture.  A row with no observed value gets the mixture's mean
        ``sum_k weights_k means_k``.  Works for any fitted model, whatever
        `missing` was set to.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NaN marks a missing value; infinity is an error.  Not modified.
            A Dask array gives lazy Dask arrays (a task per block).
        return_std : bool, default=False
            Also return the standard deviation of each filled value given its
            row's observed values (the mixture's, by the law of total
            variance: the components' conditional variances plus the spread
            of their conditional means).

        Returns
        -------
        X_filled : ndarray of shape (n_samples, n_features)
            A copy of X, in X's float dtype, with the gaps filled; observed
            values are unchanged.
        std : ndarray of shape (n_samples, n_features)
            Only with `return_std`: 0 where X is observed.

        Raises
        ------
        ValueError
            For rows so far from every component that their densities
            underflow to zero (their posterior, and so the fill, is undefined).

        Examples
        --------
        >>> import numpy as np
        >>> from fastem import GaussianMixture
        >>> rng = np.random.default_rng(0)
        >>> X = rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], size=500)
        >>> X[::5, 1] = np.nan
        >>> gm = GaussianMixture(1, missing="em", random_state=0).fit(X)
        >>> filled = gm.impute(X)
        >>> bool(np.isnan(filled).any())
        False
        """
        if is_dask_collection(X):
            from fastem._dask import impute_lazily  # the optional extra

            return impute_lazily(self, X, return_std)
        self._check_is_fitted()
        X = self._validate_predict_data(X, allow_nan=True)
        model = self._model(self.weights_, self.means_, self.precisions_cholesky_, missing=True)
        with single_threaded_blas():
            filled, std, log_prob = model.impute(X, return_std=return_std,
                                                 n_threads=effective_n_threads(self.n_threads))
        _refuse_underflowed_rows(log_prob)
        filled = filled.astype(X.dtype, copy=False)
        if return_std:
            return filled, std.astype(X.dtype, copy=False)
        return filled

    def predict(self, X):
        """Most responsible component of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Also an on-disk array or a Dask array (as in :meth:`score_samples`).

        Returns
        -------
        labels : ndarray of shape (n_samples,), int
        """
        return self._infer(X, "labels")

    def predict_proba(self, X):
        """Responsibilities: the posterior probability of each component for each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Also an on-disk array or a Dask array (as in :meth:`score_samples`).

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components)
            Rows sum to 1; in X's float dtype.
        """
        return self._infer(X, "resp")

    def sample(self, n_samples=1):
        """Draw samples from the fitted mixture.

        Parameters
        ----------
        n_samples : int, default=1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,), int
            The component each sample was drawn from (samples are grouped by component).

        Raises
        ------
        ValueError
            If `n_samples` < 1.
        """
        self._check_is_fitted()
        check_sample_count(n_samples, self.n_components)
        rng = check_random_state(self.random_state)
        weights = np.asarray(self.weights_, dtype=np.float64)
        counts = rng.multinomial(n_samples, weights / weights.sum())
        means = np.asarray(self.means_, dtype=np.float64)
        covariances = np.asarray(self.covariances_, dtype=np.float64)
        n_features = means.shape[1]
        parts = []
        kind = cov_table.covariance_type(self.covariance_type)
        for k, count in enumerate(counts):
            cov = covariances[k] if kind.per_component else covariances
            if kind.matrix:
                # x = mu + L z with cov = L L^T; eigh tolerates a semi-definite covariance.
                eigval, eigvec = np.linalg.eigh(cov)
                root = eigvec * np.sqrt(np.clip(eigval, 0.0, None))
                parts.append(means[k] + rng.standard_normal(size=(count, n_features)) @ root.T)
            else:
                parts.append(means[k] + rng.standard_normal(size=(count, n_features)) * np.sqrt(cov))
        X = np.vstack(parts)
        y = np.repeat(np.arange(len(counts)), counts)
        return X, y

    def _n_parameters(self):
        kind = cov_table.covariance_type(self.covariance_type)
        return kind.n_parameters(self.n_components, self.means_.shape[1])


def _weighted_sum(log_prob, sample_weight):
    """sum_n w_n log p(x_n) and sum_n w_n (unit weights when None)."""
    if sample_weight is None:
        return log_prob.sum(), log_prob.shape[0]
    positive = sample_weight > 0  # a zero weight removes the row, even at -inf density
    return np.dot(sample_weight[positive], log_prob[positive]), sample_weight.sum()


def _refuse_underflowed_rows(log_prob):
    """ValueError if some row's density is 0 under every component."""
    lost = np.flatnonzero(np.isneginf(log_prob))
    if lost.size:
        raise ValueError(
            f"{lost.size} row(s) of X (the first: row {lost[0]}) lie so far from every "
            "component that their densities underflow to zero, so their posterior "
            "probabilities are undefined. Scale X as the training data were scaled."
        )


class _GaussianMixtureFile:
    """How a fitted GaussianMixture goes into a model file and comes back (fastem._persistence)."""

    estimator = GaussianMixture
    arrays = ("weights", "means", "covariances", "precisions_cholesky", "precisions", "lower_bounds")
    attributes = {"n_features_in": int, "converged": bool, "n_iter": int, "lower_bound": float,
                  "seen_weight": float, "feature_names_in": list, "n_empty_rows": int}
    # Attributes that files written before they existed lack, and their values then.
    optional = {"n_empty_rows": 0}

    @staticmethod
    def dump(gm):
        dtype = gm.means_.dtype
        lower_bound = float(gm.lower_bound_)
        attributes = {
            "n_features_in": int(gm.n_features_in_), "converged": bool(gm.converged_),
            "n_iter": int(gm.n_iter_),
            # JSON has no infinity: max_iter=0 leaves -inf, saved as None.
            "lower_bound": lower_bound if np.isfinite(lower_bound) else None,
            "seen_weight": float(getattr(gm, "_seen_weight", 0.0)),
            "n_empty_rows": int(getattr(gm, "n_empty_rows_", 0)),
            "feature_names_in": (None if getattr(gm, "feature_names_in_", None) is None
                                 else [str(n) for n in gm.feature_names_in_]),
        }
        arrays = {key: np.asarray(getattr(gm, key + "_"), dtype=dtype) for key in _GaussianMixtureFile.arrays}
        return attributes, arrays

    @staticmethod
    def load(params, attributes, arrays):
        """Check what a model file holds and rebuild the fitted estimator (ValueError if wrong)."""
        valid = GaussianMixture._get_param_names()
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ValueError(f"unknown GaussianMixture parameters {unknown}")
        gm = GaussianMixture(**params)
        try:
            gm._check_parameters()
        except (TypeError, ValueError) as exc:   # InvalidParameterError is both
            raise ValueError(f"invalid parameters: {exc}") from None
        for key, value in _GaussianMixtureFile.optional.items():
            attributes.setdefault(key, value)
        if set(attributes) != set(_GaussianMixtureFile.attributes):
            raise ValueError(f"the header's attributes {sorted(attributes)} are not "
                             f"{sorted(_GaussianMixtureFile.attributes)}")
        for key, kind in _GaussianMixtureFile.attributes.items():
            value = attributes[key]
            if value is None and key in ("lower_bound", "feature_names_in"):
                continue
            if kind is float and type(value) is int:   # JSON writes 2.0 as 2 on some encoders
                value = attributes[key] = float(value)
            if type(value) is not kind:
                raise ValueError(f"attribute {key} is {value!r}, not a {kind.__name__}")
        if set(arrays) != set(_GaussianMixtureFile.arrays):
            raise ValueError(f"the arrays {sorted(arrays)} are not {sorted(_GaussianMixtureFile.arrays)}")
        k, d = gm.n_components, attributes["n_features_in"]
        kind = cov_table.covariance_type(gm.covariance_type)
        expected = {"weights": (k,), "means": (k, d), "covariances": kind.shape(k, d),
                    "precisions_cholesky": kind.shape(k, d), "precisions": kind.shape(k, d)}
        if d < 1:
            raise ValueError(f"n_features_in is {d}")
        for key, shape in expected.items():
            if arrays[key].shape != shape:
                raise ValueError(f"{key} has shape {arrays[key].shape}; a {gm.covariance_type} "
                                 f"model of {k} components and {d} features needs {shape}")
        from fastem._persistence import check_gaussian_parameters

        check_gaussian_parameters(gm.covariance_type, arrays["weights"], arrays["means"],
                                  arrays["covariances"], arrays["precisions_cholesky"])
        dtype = arrays["means"].dtype
        precisions = cov_table.precisions_from_cholesky(
            arrays["precisions_cholesky"].astype(np.float64), gm.covariance_type)
        scale = max(float(np.max(np.abs(precisions), initial=0.0)), np.finfo(dtype).tiny)
        if not np.all(np.abs(arrays["precisions"] - precisions) <= 1e3 * np.finfo(dtype).eps * scale):
            raise ValueError("precisions is not the product of precisions_cholesky with its transpose")
        if arrays["lower_bounds"].ndim != 1 or not np.all(np.isfinite(arrays["lower_bounds"])):
            raise ValueError("lower_bounds must be a vector of finite values")
        if attributes["n_iter"] < 0:
            raise ValueError(f"n_iter is {attributes['n_iter']}")
        names = attributes["feature_names_in"]
        if names is not None and (len(names) != d or not all(isinstance(n, str) for n in names)):
            raise ValueError(f"feature_names_in must be {d} strings")
        seen = attributes["seen_weight"]
        if not (math.isfinite(seen) and seen >= 0):
            raise ValueError(f"seen_weight is {seen!r}")
        for key in ("weights", "means", "covariances", "precisions_cholesky", "precisions"):
            setattr(gm, key + "_", arrays[key])
        gm.n_features_in_ = d
        if names is not None:
            gm.feature_names_in_ = np.asarray(names, dtype=object)
        gm._seen_weight = float(seen)
        if attributes["n_empty_rows"] < 0:
            raise ValueError(f"n_empty_rows is {attributes['n_empty_rows']}")
        gm.n_empty_rows_ = attributes["n_empty_rows"]
        gm._fitted_covariance_type = gm.covariance_type
        gm.converged_ = attributes["converged"]
        gm.n_iter_ = attributes["n_iter"]
        lower_bound = attributes["lower_bound"]
        gm.lower_bound_ = dtype.type(-np.inf if lower_bound is None else lower_bound)
        gm.lower_bounds_ = [dtype.type(b) for b in arrays["lower_bounds"]]
        return gm


_persistence.register("GaussianMixture", _GaussianMixtureFile)
