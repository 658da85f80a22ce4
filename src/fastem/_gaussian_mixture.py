"""The GaussianMixture estimator: a drop-in for scikit-learn's, on fused kernels."""
import inspect
import time

import numpy as np

from fastem import _gaussian_params as gp
from fastem._blas_threads import single_threaded_blas
from fastem._em import ModelArrays, chunk_rows, m_step_from, weights_total
from fastem._kernels import Assign, Stats, accumulate
from fastem._kmeans import data_mean_and_variance, kmeans, kmeans_plusplus, seed_rows
from fastem._openmp_info import effective_n_threads
from fastem._validation import (
    GAUSSIAN_MIXTURE_PARAMETERS,
    check_feature_names,
    check_initial_parameters,
    check_parameters,
    check_random_state,
    check_sample_count,
    check_sample_weight,
    check_storable,
    validate_fit_data,
    validate_predict_data,
)
from fastem.exceptions import EM_NOT_CONVERGED, not_fitted_error, warn_convergence

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")


# Rows per block when init_params="random" draws responsibilities: the draws
# must exist somewhere, and blocks keep them to a few MB.
_RANDOM_RESP_BLOCK_ROWS = 16384


def chunk_rows_for(n_features, n_components):
    """Rows per kernel chunk for a problem shape (independent of threads).

    A chunk is the unit of work and of summation order; the kernels' own rule
    (``fastem._em.chunk_rows``) is the one the C-level EM uses too.
    """
    return chunk_rows(n_features)


class GaussianMixture:
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
    n_iter_ : int
        EM iterations of the best initialisation.
    lower_bound_ : float
        Mean log-likelihood per sample (weighted mean with `sample_weight`)
        of the best initialisation, at its last E-step.
    lower_bounds_ : list of float
        The lower bound after every iteration of the best initialisation.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when X had string column names.

    Notes
    -----
    Additions to scikit-learn: ``sample_weight`` in ``fit``, ``fit_predict``,
    ``score``, ``bic`` and ``aic`` (an integer weight acts as repeating the
    row, zero as removing it) and ``n_threads``.
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

    # ------------------------------------------------------------------
    # scikit-learn estimator protocol (without importing scikit-learn)
    # ------------------------------------------------------------------
    @classmethod
    def _get_param_names(cls):
        signature = inspect.signature(cls.__init__)
        return sorted(name for name in signature.parameters if name != "self")

    def get_params(self, deep=True):
        """Get the estimator's parameters.

        Parameters
        ----------
        deep : bool, default=True
            Unused (there are no nested estimators); kept for compatibility.

        Returns
        -------
        dict
            Parameter names mapped to their values.
        """
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set the estimator's parameters.

        Parameters
        ----------
        **params : dict
            Parameter names and values.

        Returns
        -------
        self : GaussianMixture

        Raises
        ------
        ValueError
            For a name that is not a parameter.
        """
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for estimator {self}. "
                    f"Valid parameters are: {valid!r}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = {
            name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()
        }
        changed = []
        for name in self._get_param_names():
            value, default = getattr(self, name), defaults[name]
            same = value is default or (
                not isinstance(value, np.ndarray) and not isinstance(default, np.ndarray)
                and type(value) is type(default) and value == default
            )
            if not same:
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):
        # Only scikit-learn calls this, so importing it here adds no dependency.
        from sklearn.utils import InputTags, Tags, TargetTags

        return Tags(
            estimator_type="density_estimator",
            target_tags=TargetTags(required=False),
            input_tags=InputTags(two_d_array=True),
            requires_fit=True,
        )

    def __sklearn_is_fitted__(self):
        return hasattr(self, "precisions_cholesky_")

    def _check_is_fitted(self):
        if not self.__sklearn_is_fitted__():
            raise not_fitted_error(self)

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
        return validate_fit_data(X, sample_weight, self.n_components, type(self).__name__)

    def _validate_predict_data(self, X):
        return validate_predict_data(self, X)

    # ------------------------------------------------------------------
    # EM
    # ------------------------------------------------------------------
    def _model(self, weights, means, factor, covariances=None):
        """The parameters as the C-level EM reads them (a lower factor turned upper)."""
        if self.covariance_type in ("full", "tied"):
            factor = np.asarray(factor, dtype=np.float64)
            factor = (np.stack([gp.upper_factor(f) for f in factor])
                      if self.covariance_type == "full" else gp.upper_factor(factor))
        return ModelArrays(self.covariance_type, weights, means, factor, covariances)

    def _initial_parameters(self, X, sample_weight, total_weight, random_state, context, given):
        """Initial (weights, means, precisions_cholesky, covariances) as scikit-learn builds them."""
        weights_init, means_init, factor_init = given
        n_samples, n_features = X.shape
        k = self.n_components
        stats_kind = gp.stats_kind(self.covariance_type)
        need_data = weights_init is None or means_init is None or factor_init is None
        covariances = factor = weights = means = None
        if need_data:
            if self.init_params == "kmeans":
                centers = kmeans(X, sample_weight, k, random_state, **context)
                tied_shift = centers.mean(axis=0)
                stats = accumulate(
                    X, sample_weight, Assign.ASSIGN_NEAREST, stats_kind, centers,
                    tied_shift=tied_shift, **context,
                )
                shift = centers
            elif self.init_params == "random":
                data_mean, _ = data_mean_and_variance(X, sample_weight, context)
                shift = np.repeat(data_mean[None], k, axis=0)
                tied_shift = shift[0]
                stats = self._random_resp_stats(X, sample_weight, random_state, shift, stats_kind, context)
            else:
                if self.init_params == "k-means++":
                    rows = seed_rows(n_samples, k, random_state)
                    _, indices = kmeans_plusplus(X, sample_weight, k, random_state, rows=rows)
                else:
                    candidates = np.arange(n_samples) if sample_weight is None else np.flatnonzero(sample_weight)
                    indices = candidates[random_state.choice(len(candidates), size=k, replace=False)]
                # One row per component with responsibility 1: the pass is over k rows only.
                rows = np.ascontiguousarray(X[indices])
                shift = rows.astype(np.float64)
                # These counts cover k rows but the tied scatter covers all n, so the
                # centring identity of the M-step does not hold: take the scatter about 0.
                tied_shift = np.zeros(n_features)
                row_weight = None if sample_weight is None else sample_weight[indices]
                stats = accumulate(
                    rows, row_weight, Assign.ASSIGN_GIVEN, stats_kind, shift,
                    tied_shift=tied_shift, given_resp=np.eye(k), **context,
                )
                stats = self._add_unseen_tied_scatter(X, sample_weight, stats, indices, tied_shift, context)
            nk, means, covariances, factor = m_step_from(
                stats, shift, tied_shift, self.covariance_type, self.reg_covar, X.dtype)
            weights = nk / total_weight
        if weights_init is not None:
            weights = weights_init
        if means_init is not None:
            means = means_init
        if factor_init is not None:
            factor = factor_init
            covariances = gp.covariances_from_precisions(factor, self.covariance_type)
        return weights, means, factor, covariances

    def _add_unseen_tied_scatter(self, X, sample_weight, stats, indices, tied_shift, context):
        """Tied scatter sums over *all* rows, even those with zero responsibility."""
        if self.covariance_type != "tied":
            return stats
        total = accumulate(
            X, sample_weight, Assign.ASSIGN_NEAREST, Stats.STATS_TIED, tied_shift[None],
            tied_shift=tied_shift, **context,
        )
        return stats[0], stats[1], stats[2], total[3]

    def _random_resp_stats(self, X, sample_weight, random_state, shift, stats_kind, context):
        # Drawn block by block from the same stream scikit-learn draws in one call,
        # so the same random_state gives the same responsibilities.
        total = None
        tied_shift = shift[0]
        for start in range(0, X.shape[0], _RANDOM_RESP_BLOCK_ROWS):
            block = X[start:start + _RANDOM_RESP_BLOCK_ROWS]
            resp = random_state.uniform(size=(len(block), self.n_components))
            resp /= resp.sum(axis=1)[:, None]
            weight = None if sample_weight is None else sample_weight[start:start + len(block)]
            part = accumulate(block, weight, Assign.ASSIGN_GIVEN, stats_kind, shift,
                              tied_shift=tied_shift, given_resp=resp, **context)
            total = part if total is None else tuple(
                a + b if a is not None else None for a, b in zip(total, part)
            )
        return total

    def fit(self, X, y=None, sample_weight=None):
        """Estimate the model parameters with EM.

        Runs ``n_init`` initialisations (one with ``warm_start`` after the first
        fit) of at most ``max_iter`` iterations each and keeps the best.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            float32 data stays float32 (accumulation is float64 regardless).
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights.

        Returns
        -------
        self : GaussianMixture

        Warns
        -----
        ConvergenceWarning
            If the best initialisation did not converge.
        """
        self._fit(X, sample_weight)
        return self

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
        X = self._fit(X, sample_weight)
        return self._score(X, want_labels=True)[2]

    def _fit(self, X, sample_weight):
        with single_threaded_blas():
            return self._fit_em(X, sample_weight)

    def _fit_em(self, X, sample_weight):
        self._check_parameters()
        check_feature_names(self, X, reset=True)
        X, sample_weight = self._validate_fit_data(X, sample_weight)
        n_samples, n_features = X.shape
        given = self._check_initial_parameters(n_features)
        total_weight = weights_total(sample_weight, n_samples)
        context = dict(
            chunk_rows=chunk_rows_for(n_features, self.n_components),
            n_threads=effective_n_threads(self.n_threads),
        )
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        if not do_init and self.means_.shape[1] != n_features:
            raise ValueError(
                f"X has {n_features} features, but the warm start holds a model with "
                f"{self.means_.shape[1]} features."
            )
        n_init = self.n_init if do_init else 1
        random_state = check_random_state(self.random_state)

        best = None
        best_bound = -np.inf
        converged_best = False
        for init in range(n_init):
            self._verbose_init_start(init)
            if do_init:
                weights, means, factor, covariances = self._initial_parameters(
                    X, sample_weight, total_weight, random_state, context, given
                )
                lower_bound = -np.inf
            else:
                weights, means, factor, covariances = (
                    np.asarray(self.weights_, dtype=np.float64),
                    np.asarray(self.means_, dtype=np.float64),
                    np.asarray(self.precisions_cholesky_, dtype=np.float64),
                    np.asarray(self.covariances_, dtype=np.float64),
                )
                lower_bound = float(self.lower_bound_)
            bounds = []
            converged = False
            n_iter = 0
            # The iterations run in C (fastem._em), the same code as the C-level API.
            model = self._model(weights, means, factor, covariances)
            for n_iter in range(1, self.max_iter + 1):
                previous = lower_bound
                lower_bound = model.em_step(
                    X, sample_weight, total_weight, self.reg_covar, context["n_threads"])
                weights, means = model.weights, model.means
                factor, covariances = model.precisions_cholesky, model.covariances
                bounds.append(lower_bound)
                self._verbose_iter_end(n_iter, lower_bound - previous)
                if abs(lower_bound - previous) < self.tol:
                    converged = True
                    break
            self._verbose_init_end(lower_bound, converged)
            if self.max_iter == 0 or lower_bound > best_bound or best_bound == -np.inf:
                best = (weights, means, factor, covariances)
                if self.max_iter > 0:
                    best_bound = lower_bound
                best_iter, best_bounds, converged_best = n_iter, bounds, converged

        if not converged_best and self.max_iter > 0:
            warn_convergence(EM_NOT_CONVERGED)
        dtype = X.dtype
        weights, means, factor, covariances = best
        precisions = gp.precisions_from_cholesky(factor, self.covariance_type)
        check_storable(dtype, weights_=weights, means_=means, covariances_=covariances,
                       precisions_cholesky_=factor, precisions_=precisions)
        self.weights_ = np.asarray(weights, dtype=dtype)
        self.means_ = np.asarray(means, dtype=dtype)
        self.covariances_ = np.asarray(covariances, dtype=dtype)
        self.precisions_cholesky_ = np.asarray(factor, dtype=dtype)
        self.precisions_ = np.asarray(precisions, dtype=dtype)
        self.converged_ = bool(converged_best)
        self.n_iter_ = best_iter
        self.lower_bound_ = dtype.type(best_bound)
        self.lower_bounds_ = [dtype.type(b) for b in best_bounds]
        self.n_features_in_ = n_features
        return X

    # ------------------------------------------------------------------
    # verbose output
    # ------------------------------------------------------------------
    def _verbose_init_start(self, init):
        if self.verbose >= 1:
            print(f"Initialization {init}")
        self._time_init = self._time_iter = time.perf_counter()

    def _verbose_iter_end(self, n_iter, change):
        if self.verbose >= 1 and n_iter % self.verbose_interval == 0:
            now = time.perf_counter()
            if self.verbose == 1:
                print(f"  Iteration {n_iter}")
            else:
                print(f"  Iteration {n_iter}\t time lapse {now - self._time_iter:.5f}s\t ll change {change:.5f}")
            self._time_iter = now

    def _verbose_init_end(self, lower_bound, converged):
        if self.verbose >= 1:
            state = "converged" if converged else "did not converge"
            if self.verbose == 1:
                print(f"Initialization {state}.")
            else:
                print(f"Initialization {state}. time lapse {time.perf_counter() - self._time_init:.5f}s\t lower bound {lower_bound:.5f}.")

    # ------------------------------------------------------------------
    # inference
    # ------------------------------------------------------------------
    def _score(self, X, want_log_prob=False, want_resp=False, want_labels=False):
        model = self._model(self.weights_, self.means_, self.precisions_cholesky_)
        with single_threaded_blas():
            return model.score(
                X, want_log_prob=want_log_prob, want_resp=want_resp, want_labels=want_labels,
                n_threads=effective_n_threads(self.n_threads),
            )

    def score_samples(self, X):
        """Log-likelihood of each row under the mixture.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
            ``log p(x_n)``, in X's float dtype.
        """
        X = self._validate_predict_data(X)
        return self._score(X, want_log_prob=True)[0].astype(X.dtype, copy=False)

    def score(self, X, y=None, sample_weight=None):
        """Mean log-likelihood per sample (weighted mean with `sample_weight`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        float
        """
        log_lik, total_weight = self._log_likelihood_and_weight(X, sample_weight)
        return float(log_lik / total_weight)

    def _log_likelihood_and_weight(self, X, sample_weight):
        """Validated X's summed (weighted) log-likelihood and its total weight."""
        X = self._validate_predict_data(X)
        sample_weight = check_sample_weight(sample_weight, X.shape[0])
        log_prob = self._score(X, want_log_prob=True)[0]
        if sample_weight is None:
            return log_prob.sum(), X.shape[0]
        positive = sample_weight > 0  # a zero weight removes the row, even at -inf density
        return np.dot(sample_weight[positive], log_prob[positive]), sample_weight.sum()

    def predict(self, X):
        """Most responsible component of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,), int
        """
        X = self._validate_predict_data(X)
        return self._score(X, want_labels=True)[2]

    def predict_proba(self, X):
        """Responsibilities: the posterior probability of each component for each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components)
            Rows sum to 1; in X's float dtype.
        """
        X = self._validate_predict_data(X)
        return self._score(X, want_resp=True)[1].astype(X.dtype, copy=False)

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
        for k, count in enumerate(counts):
            if self.covariance_type in ("full", "tied"):
                cov = covariances[k] if self.covariance_type == "full" else covariances
                # x = mu + L z with cov = L L^T; eigh tolerates a semi-definite covariance.
                eigval, eigvec = np.linalg.eigh(cov)
                root = eigvec * np.sqrt(np.clip(eigval, 0.0, None))
                parts.append(means[k] + rng.standard_normal(size=(count, n_features)) @ root.T)
            else:
                scale = np.sqrt(covariances[k])
                parts.append(means[k] + rng.standard_normal(size=(count, n_features)) * scale)
        X = np.vstack(parts)
        y = np.repeat(np.arange(len(counts)), counts)
        return X, y

    def _n_parameters(self):
        return gp.n_free_parameters(self.n_components, self.means_.shape[1], self.covariance_type)

    def bic(self, X, sample_weight=None):
        """Bayesian information criterion for the current model on X (lower is better).

        ``-2 log L + p log(n)``, with ``n`` the sum of `sample_weight` if given.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        float
        """
        log_lik, n = self._log_likelihood_and_weight(X, sample_weight)
        return float(-2.0 * log_lik + self._n_parameters() * np.log(n))

    def aic(self, X, sample_weight=None):
        """Akaike information criterion for the current model on X (lower is better).

        ``-2 log L + 2 p``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        float
        """
        log_lik, _ = self._log_likelihood_and_weight(X, sample_weight)
        return float(-2.0 * log_lik + 2 * self._n_parameters())
