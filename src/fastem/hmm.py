"""Hidden Markov models with Gaussian emissions, on fastem's engine.

:class:`GaussianHMM` is a drop-in for ``hmmlearn.hmm.GaussianHMM`` (hmmlearn
0.3.3): the same parameters and defaults, fitted attributes, methods,
Baum-Welch updates (MAP priors included), stopping rule, ``monitor_`` and
error and log messages.  What runs underneath is fastem's:

- the emission log-densities come from the engine's Gaussian pass
  (``ModelArrays.log_densities``, the mixture's kernels with unit weights);
- forward-backward and Viterbi are nogil kernels (:mod:`fastem._hmm`),
  parallel over sequences, with the forward messages kept scaled rather
  than as absolute logarithms (no digits lost on long sequences);
- the state posteriors go back into the engine's accumulation of
  statistics (:class:`fastem._stats.SufficientStatistics`), chunked and
  thread-invariant, so a fit gives the same bits for any ``n_threads``;
- the M-step is hmmlearn's, taken from moments about the previous means
  rather than about zero.

hmmlearn reports some conditions through :mod:`logging` rather than
:mod:`warnings`; so does this module, under the logger ``fastem.hmm``.
"""
import collections
import logging
import sys

import numpy as np

from fastem import _covariance, _em, _hmm, _persistence
from fastem._base import EMEstimator
from fastem._blas_threads import single_threaded_blas
from fastem._kmeans import kmeans
from fastem._openmp_info import effective_n_threads
from fastem._sources import ArrayRows
from fastem._stats import SufficientStatistics, _symmetric
from fastem._validation import check_array, check_random_state

__all__ = ["ConvergenceMonitor", "GaussianHMM"]

_log = logging.getLogger(__name__)

#: Supported decoder algorithms.
DECODER_ALGORITHMS = frozenset(("viterbi", "map"))
COVARIANCE_TYPES = frozenset(("spherical", "diag", "full", "tied"))
IMPLEMENTATIONS = ("log", "scaling")

# hmmlearn retries the Cholesky factor of a full covariance with this much
# added to its diagonal before it gives up on the model.
_CHOLESKY_RETRY_JITTER = 1e-7


class ConvergenceMonitor:
    """Record the log-likelihood of each EM iteration and decide when to stop.

    The same object as hmmlearn's: a model's ``monitor_`` may be replaced by
    an instance of a subclass that redefines :attr:`converged`.

    Parameters
    ----------
    tol : float
        EM has converged when the log-likelihood gains less than `tol`
        from one iteration to the next (a decrease counts as converged).
    n_iter : int
        Maximum number of iterations.
    verbose : bool
        Print one line per iteration to :data:`sys.stderr`: the iteration,
        the log-likelihood and its change.

    Attributes
    ----------
    history : collections.deque
        The log-likelihood of every iteration so far, computed in the
        E-step, that is before that iteration's M-step.
    iter : int
        Iterations so far.
    """

    _line = "{iter:>10d} {log_prob:>16.8f} {delta:>+16.8f}"

    def __init__(self, tol, n_iter, verbose):
        self.tol = tol
        self.n_iter = n_iter
        self.verbose = verbose
        self.history = collections.deque()
        self.iter = 0

    def __repr__(self):
        fields = sorted(dict(vars(self), history=list(self.history)).items())
        return type(self).__name__ + "(\n" + "".join(f"    {k}={v},\n" for k, v in fields) + ")"

    def _reset(self):
        """Forget every iteration (a new fit begins)."""
        self.iter = 0
        self.history.clear()

    def report(self, log_prob):
        """Record one iteration's log-likelihood (and print it if verbose).

        A decrease larger than sqrt(eps) is logged as a warning: EM never
        lowers the likelihood, so it means a numerical problem or a MAP step
        (priors) at work.

        Parameters
        ----------
        log_prob : float
            The log-likelihood of the data at this iteration.
        """
        if self.verbose:
            delta = log_prob - self.history[-1] if self.history else np.nan
            print(self._line.format(iter=self.iter + 1, log_prob=log_prob, delta=delta),
                  file=sys.stderr)
        slack = np.finfo(float).eps ** 0.5
        if self.history and log_prob - self.history[-1] < -slack:
            _log.warning(f"Model is not converging.  Current: {log_prob}"
                         f" is not greater than {self.history[-1]}."
                         f" Delta is {log_prob - self.history[-1]}")
        self.history.append(log_prob)
        self.iter += 1

    @property
    def converged(self):
        """Whether EM should stop: `n_iter` reached, or the last gain below `tol`."""
        return (self.iter == self.n_iter
                or (len(self.history) >= 2 and self.history[-1] - self.history[-2] < self.tol))


HMMStatistics = collections.namedtuple("HMMStatistics", "start trans emission centres tied_centre")
HMMStatistics.__doc__ = """One E-step's sums: expected starts (K,), expected transitions
(K, K), the emission statistics (``SufficientStatistics.totals()``, None when
neither means nor covariances are updated) and the centres they are taken
about (the tied scatter about ``tied_centre``, None for other types)."""


def _normalize_rows(a):
    """Divide each row of `a` (in place) by its sum; rows summing to 0 stay 0."""
    sums = a.sum(axis=-1, keepdims=True)
    if a.ndim > 1:
        sums[sums == 0] = 1
    a /= sums


def _check_sum_1(name, value):
    sums = value.sum(axis=-1)
    if not np.allclose(sums, 1):
        raise ValueError(f"{name} must sum to 1 (got {sums:.4f})" if sums.ndim == 0
                         else f"{name} rows must sum to 1 (got row sums of {sums})")


def _check_lengths(lengths, n_samples):
    """The sequence lengths as int64 (one sequence of every row when None)."""
    if lengths is None:
        return np.array([n_samples], dtype=np.int64)
    values = np.asarray(lengths)
    if values.ndim != 1 or values.size == 0 or not (
            np.issubdtype(values.dtype, np.integer)
            or (np.issubdtype(values.dtype, np.floating) and np.all(values == np.round(values)))):
        raise ValueError(f"lengths must be a 1-D sequence of positive integers, got {lengths!r}")
    values = values.astype(np.int64)
    if np.any(values < 1):
        raise ValueError(f"lengths must be positive, got {lengths!r}")
    if values.sum() != n_samples:
        raise ValueError(f"lengths array {lengths} doesn't sum to {n_samples} samples")
    return values


def _validate_covars(covars, covariance_type, n_components):
    """hmmlearn's checks of a covariance array, with its messages."""
    if covariance_type == "spherical":
        if len(covars) != n_components:
            raise ValueError("'spherical' covars have length n_components")
        if np.any(covars <= 0):
            raise ValueError("'spherical' covars must be positive")
    elif covariance_type == "tied":
        if covars.ndim != 2 or covars.shape[0] != covars.shape[1]:
            raise ValueError("'tied' covars must have shape (n_dim, n_dim)")
        if not np.allclose(covars, covars.T) or np.any(np.linalg.eigvalsh(covars) <= 0):
            raise ValueError("'tied' covars must be symmetric, positive-definite")
    elif covariance_type == "diag":
        if covars.ndim != 2:
            raise ValueError("'diag' covars must have shape (n_components, n_dim)")
        if np.any(covars <= 0):
            raise ValueError("'diag' covars must be positive")
    elif covariance_type == "full":
        if covars.ndim != 3 or covars.shape[1] != covars.shape[2]:
            raise ValueError("'full' covars must have shape (n_components, n_dim, n_dim)")
        for n, cv in enumerate(covars):
            if not np.allclose(cv, cv.T) or np.any(np.linalg.eigvalsh(cv) <= 0):
                raise ValueError(f"component {n} of 'full' covars must be symmetric, positive-definite")
    else:
        raise ValueError("covariance_type must be one of 'spherical', 'tied', 'diag', 'full'")


def _precision_factors(covars, covariance_type):
    """Precision Cholesky factors for the engine, with hmmlearn's tolerance of
    borderline covariances: a full or tied matrix that is not numerically
    positive definite is retried with 1e-7 on its diagonal, and a variance
    of 0 is read as the smallest normal number."""
    if covariance_type in ("diag", "spherical"):
        return 1.0 / np.sqrt(np.maximum(covars, np.finfo(float).tiny))
    try:
        return _em.precision_factors(covars, covariance_type)
    except ValueError:
        pass
    blocks = covars[None] if covariance_type == "tied" else covars
    factors = np.empty_like(blocks)
    eye = np.eye(blocks.shape[-1])
    for k, cov in enumerate(blocks):
        for jitter in (0.0, _CHOLESKY_RETRY_JITTER):
            try:
                factors[k] = _em.precision_factors((cov + jitter * eye)[None], "full")[0]
                break
            except ValueError:
                continue
        else:
            raise ValueError("'covars' must be symmetric, positive-definite")
    return factors[0] if covariance_type == "tied" else factors


class GaussianHMM(EMEstimator):
    """Hidden Markov model with Gaussian emissions, fitted by Baum-Welch.

    A drop-in for ``hmmlearn.hmm.GaussianHMM`` (0.3.3): same parameters,
    attributes and results, computed by fastem's parallel kernels.  From
    the same initial parameters the fitted parameters agree with hmmlearn's
    to about 1e-10 relative.  On long sequences fastem is the more accurate:
    its transition counts on 2e5 steps stay within 5e-14 of a long-double
    reference, where hmmlearn's log-space sums drift by 3e-9 to 1e-8.

    Parameters
    ----------
    n_components : int, default=1
        Number of hidden states.
    covariance_type : {"diag", "spherical", "full", "tied"}, default="diag"
        The emission covariances: one diagonal matrix per state ("diag"), one
        variance per state ("spherical"), one full matrix per state ("full"),
        or one full matrix shared by every state ("tied").
    min_covar : float, default=1e-3
        Added to the diagonal of the data's covariance when the covariances
        are initialised.
    startprob_prior : float or array of shape (n_components,), default=1.0
        Dirichlet prior on :attr:`startprob_` (1: flat).
    transmat_prior : float or array of shape (n_components, n_components), default=1.0
        Dirichlet prior on each row of :attr:`transmat_` (1: flat).
    means_prior, means_weight : float or array, default=0
        Mean and precision weight of the normal prior on :attr:`means_`
        (weight 0: flat).
    covars_prior, covars_weight : float or array, default=1e-2 and 1
        Parameters of the prior on the covariances: inverse gamma for
        "spherical" and "diag", inverse Wishart for "full" and "tied".
        The default ``covars_prior`` keeps variances away from 0, so by
        default every step is a MAP step (which may lower the plain
        likelihood slightly); ``covars_prior=0`` gives maximum likelihood.
    algorithm : {"viterbi", "map"}, default="viterbi"
        Decoder of :meth:`decode` and :meth:`predict`: the most likely state
        sequence ("viterbi"), or the most likely state of each sample given
        all the data ("map").
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation (and :meth:`sample` when it is given none).
    n_iter : int, default=10
        Maximum number of EM iterations.
    tol : float, default=1e-2
        Stop when the log-likelihood of all the data gains less than this.
    verbose : bool, default=False
        Print each iteration's log-likelihood and gain to stderr.
    params : str, default="stmc"
        Which parameters EM updates: any of "s" (startprob_), "t"
        (transmat_), "m" (means_) and "c" (covars_).
    init_params : str, default="stmc"
        Which parameters ``fit`` initialises; the others must be set on the
        model beforehand.  "s" and "t" draw from a flat Dirichlet, "m" runs
        k-means (fastem's), "c" takes the data's covariance plus
        ``min_covar`` on the diagonal.
    implementation : {"log", "scaling"}, default="log"
        How forward-backward avoids underflow.  "log" (fastem's accurate
        path: scaled messages with emissions shifted by each row's maximum,
        falling back to exact log-space sums in the rare rows where that
        underflows) or "scaling" (hmmlearn's: unshifted emission
        probabilities, a ValueError when a frame underflows).
    n_threads : int or None, default=None
        OpenMP threads for the kernels (None: OpenMP's limit, which follows
        ``OMP_NUM_THREADS`` and threadpoolctl).  Results are the same bits
        for any value.

    Attributes
    ----------
    n_features : int
        Dimension of the emissions.
    monitor_ : ConvergenceMonitor
        The log-likelihood history of the last fit, its iteration count and
        whether it converged.
    startprob_ : ndarray of shape (n_components,)
        Initial state distribution.
    transmat_ : ndarray of shape (n_components, n_components)
        Transition probabilities; row i is the distribution of the next
        state after state i.
    means_ : ndarray of shape (n_components, n_features)
        Emission means.
    covars_ : ndarray of shape (n_components, n_features, n_features)
        Emission covariance matrices, whatever the covariance type (as in
        hmmlearn).  Set it with the type's own shape: (n_components,) for
        "spherical", (n_components, n_features) for "diag", (n_features,
        n_features) for "tied", (n_components, n_features, n_features) for
        "full".

    See Also
    --------
    fastem.GaussianMixture : the same emissions without the hidden chain.

    Notes
    -----
    Differences from hmmlearn: the means are initialised by fastem's
    k-means, so a fit from ``init_params`` containing "m" starts elsewhere
    than hmmlearn's from the same seed (the Dirichlet draws of "s" and "t"
    are the same); for ``covariance_type="spherical"`` :attr:`covars_` has
    shape (n_components, n_features, n_features), where hmmlearn's grows to
    n_components * n_features matrices after a fit; ``params`` with "c" but
    not "m" updates the covariances about the current means (hmmlearn divides
    by counts it did not gather there); a state with no posterior weight and
    no prior keeps its emission (hmmlearn's becomes NaN); and invalid input
    raises ValueError with a message where hmmlearn sometimes fails inside
    NumPy.

    Examples
    --------
    >>> import numpy as np
    >>> from fastem import GaussianHMM
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0, 1, (200, 1)), rng.normal(5, 1, (200, 1))])
    >>> model = GaussianHMM(n_components=2, random_state=0).fit(X)
    >>> states = model.predict(X)
    >>> bool(states[0] != states[-1])
    True
    """

    def __init__(self, n_components=1, covariance_type="diag", min_covar=1e-3,
                 startprob_prior=1.0, transmat_prior=1.0, means_prior=0, means_weight=0,
                 covars_prior=1e-2, covars_weight=1, algorithm="viterbi", random_state=None,
                 n_iter=10, tol=1e-2, verbose=False, params="stmc", init_params="stmc",
                 implementation="log", n_threads=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight
        self.algorithm = algorithm
        self.random_state = random_state
        self.n_iter = n_iter
        self.tol = tol
        self.verbose = verbose
        self.params = params
        self.init_params = init_params
        self.implementation = implementation
        self.n_threads = n_threads
        # hmmlearn creates the monitor with the model, so that a subclass of
        # ConvergenceMonitor can be put in its place before fitting.
        self.monitor_ = ConvergenceMonitor(tol, n_iter, verbose)

    # ------------------------------------------------------------------
    # covariances: compact storage behind a full-matrix attribute
    # ------------------------------------------------------------------
    @property
    def covars_(self):
        """Emission covariance matrices, shape (n_components, n_features, n_features)."""
        n_features = self.means_.shape[1] if hasattr(self, "means_") else self.n_features
        # A copy, as hmmlearn returns: "tied" would otherwise be a read-only view.
        return np.array(_covariance.covariance_matrices(self._covars_, self.covariance_type,
                                                        self.n_components, n_features))

    @covars_.setter
    def covars_(self, covars):
        covars = np.array(covars, dtype=np.float64, copy=True)
        _validate_covars(covars, self.covariance_type, self.n_components)
        if self.covariance_type == "spherical" and covars.ndim == 2:
            # hmmlearn's own spherical storage repeats the variance per feature.
            covars = covars.mean(axis=1)
        self._covars_ = covars

    # ------------------------------------------------------------------
    # checks
    # ------------------------------------------------------------------
    def __sklearn_is_fitted__(self):
        # As hmmlearn: a model whose parameters were set by hand is usable.
        return hasattr(self, "startprob_")

    def _check_parameters(self):
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}")
        if self.implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"implementation must be 'log' or 'scaling', got {self.implementation!r}")
        if not isinstance(self.n_components, (int, np.integer)) or self.n_components < 1:
            raise ValueError(f"n_components must be a positive integer, got {self.n_components!r}")
        if not isinstance(self.n_iter, (int, np.integer)) or self.n_iter < 0:
            raise ValueError(f"n_iter must be a non-negative integer, got {self.n_iter!r}")

    def _check(self):
        """Validate the model's parameters (hmmlearn's checks, then shape checks of our own)."""
        self._check_parameters()
        k = self.n_components
        self.startprob_ = np.asarray(self.startprob_, dtype=np.float64)
        if self.startprob_.ndim != 1 or len(self.startprob_) != k:
            raise ValueError("startprob_ must have length n_components")
        _check_sum_1("startprob_", self.startprob_)
        self.transmat_ = np.asarray(self.transmat_, dtype=np.float64)
        if self.transmat_.shape != (k, k):
            raise ValueError("transmat_ must have shape (n_components, n_components)")
        _check_sum_1("transmat_", self.transmat_)
        if np.any(self.startprob_ < 0) or np.any(self.transmat_ < 0):
            raise ValueError("startprob_ and transmat_ must not be negative")
        self.means_ = np.asarray(self.means_, dtype=np.float64)
        if self.means_.ndim != 2 or self.means_.shape[0] != k:
            raise ValueError(f"means_ must have shape (n_components, n_features), got {self.means_.shape}")
        if not np.all(np.isfinite(self.means_)):
            raise ValueError("means_ must be finite")
        self.n_features = self.means_.shape[1]
        if not hasattr(self, "_covars_"):
            raise ValueError("covars_ must be set (or 'c' be in init_params)")
        expected = {"spherical": (k,), "diag": (k, self.n_features),
                    "full": (k, self.n_features, self.n_features),
                    "tied": (self.n_features, self.n_features)}[self.covariance_type]
        if self._covars_.shape != expected:
            raise ValueError(f"covars_ of a {self.covariance_type!r} model of these means must "
                             f"have shape {expected}, got {self._covars_.shape}")

    def _validated(self, X, lengths):
        # float64 whatever the input: hmmlearn computes float32 data in float64
        # (its parameters are float64), and so do the engine's passes here.
        X = check_array(X, estimator_name=None, input_name="")
        return np.ascontiguousarray(X, dtype=np.float64), _check_lengths(lengths, X.shape[0])

    def _check_fitted_input(self, X, lengths):
        self._check_is_fitted()
        self._check()
        return self._model_input(X, lengths)

    def _model_input(self, X, lengths):
        """X and lengths of a fitted model's inference, checked against its features."""
        X, lengths = self._validated(X, lengths)
        if X.shape[1] != self.n_features:
            raise ValueError(f"Unexpected number of dimensions, got {X.shape[1]} but "
                             f"expected {self.n_features}")
        return X, lengths

    def _threads(self):
        return effective_n_threads(self.n_threads)

    # ------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------
    def fit(self, X, lengths=None):
        """Estimate the model's parameters with Baum-Welch (EM).

        The parameters in ``init_params`` are initialised first; then EM
        runs until the log-likelihood gains less than ``tol`` or ``n_iter``
        iterations are done (``monitor_`` records them).  If ``fit`` raises,
        the model is left as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The samples of every sequence, one after another.
        lengths : array-like of int, shape (n_sequences,), default=None
            The length of each sequence; they must add up to n_samples.
            None: X is one sequence.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For NaN or infinite values, lengths that do not add up, a model
            whose given parameters are invalid, or a scaling pass that
            underflows (``implementation="scaling"``).
        """
        monitor_before = (list(self.monitor_.history), self.monitor_.iter)
        try:
            with single_threaded_blas(), self._unchanged_on_error():
                self._check_parameters()
                X, lengths = self._validated(X, lengths)
                self._init(X)
                self._check()
                self._baum_welch(X, lengths)
        except BaseException:
            self.monitor_.history = collections.deque(monitor_before[0])
            self.monitor_.iter = monitor_before[1]
            raise
        return self

    def _baum_welch(self, X, lengths):
        self.monitor_._reset()
        workspace = _workspace(X.shape[0], self.n_components)
        for _ in range(self.n_iter):
            stats, log_prob = self._do_estep(X, lengths, workspace)
            self._do_mstep(stats)
            self.monitor_.report(log_prob)
            if self.monitor_.converged:
                break
            if (self.transmat_.sum(axis=1) == 0).any():
                _log.warning("Some rows of transmat_ have zero sum because no "
                             "transition from the state was ever observed.")

    def _needs_init(self, code, name):
        if code in self.init_params:
            if hasattr(self, name):
                _log.warning("Even though the %r attribute is set, it will be overwritten "
                             "during initialization because 'init_params' contains %r",
                             name, code)
            return True
        return not hasattr(self, name)

    def _init(self, X):
        """Initialise the parameters named in ``init_params`` (and any not yet set)."""
        n_samples, n_features = X.shape
        if hasattr(self, "n_features") and self.n_features != n_features:
            raise ValueError(f"Unexpected number of dimensions, got {n_features} but "
                             f"expected {self.n_features}")
        self.n_features = n_features
        k = self.n_components
        random_state = check_random_state(self.random_state)
        if self._needs_init("s", "startprob_"):
            self.startprob_ = random_state.dirichlet(np.full(k, 1.0 / k))
        if self._needs_init("t", "transmat_"):
            self.transmat_ = random_state.dirichlet(np.full(k, 1.0 / k), size=k)
        n_scalars = self._get_n_fit_scalars_per_param()
        n_fit_scalars = sum(n_scalars[p] for p in self.params if p in n_scalars)
        if X.size < n_fit_scalars:
            _log.warning("Fitting a model with %d free scalar parameters with only %d data "
                         "points will result in a degenerate solution.", n_fit_scalars, X.size)
        if self._needs_init("m", "means_"):
            if n_samples < k:
                raise ValueError(f"n_samples={n_samples} should be >= n_clusters={k}.")
            # hmmlearn seeds its k-means with random_state itself, apart from the
            # draws above; so does this.
            self.means_ = kmeans(ArrayRows(X), k, check_random_state(self.random_state),
                                 n_threads=self._threads())
        if self._needs_init("c", "covars_"):
            cov = np.atleast_2d(np.cov(X.T)) + self.min_covar * np.eye(n_features)
            if self.covariance_type == "spherical":
                self._covars_ = np.full(k, cov.mean())
            elif self.covariance_type == "diag":
                self._covars_ = np.tile(np.diag(cov), (k, 1))
            elif self.covariance_type == "tied":
                self._covars_ = cov
            else:
                self._covars_ = np.tile(cov, (k, 1, 1))

    def _get_n_fit_scalars_per_param(self):
        k, d = self.n_components, self.n_features
        return {
            "s": k - 1,
            "t": k * (k - 1),
            "m": k * d,
            "c": _covariance.covariance_type(self.covariance_type).n_covariance_parameters(k, d),
        }

    # ------------------------------------------------------------------
    # the E-step: engine emissions, forward-backward, engine statistics
    # ------------------------------------------------------------------
    def _emission_model(self):
        """The emission Gaussians as engine model arrays (unit weights: log w = 0)."""
        k = self.n_components
        return _em.ModelArrays(self.covariance_type, np.ones(k), self.means_,
                               _precision_factors(self._covars_, self.covariance_type),
                               self._covars_)

    def _log_frameprob(self, X, out=None):
        """(n_samples, n_components) emission log-densities from the engine's pass."""
        return self._emission_model().log_densities(X, self._threads(), out=out)

    def _forward_backward(self, X, lengths, want_posteriors, workspace=None):
        workspace = workspace or {}
        return _hmm.forward_backward(
            self._log_frameprob(X, workspace.get("log_frameprob")), self.startprob_,
            self.transmat_, lengths, implementation=self.implementation,
            want_posteriors=want_posteriors, n_threads=self._threads(),
            posteriors=workspace.get("posteriors"), buffers=workspace.get("buffers"))

    def _do_estep(self, X, lengths, workspace=None):
        """Posteriors and the sums of one E-step; returns (HMMStatistics, log-likelihood).

        `workspace` (from :func:`_workspace`) holds the (T, K) arrays an E-step
        writes, reused by every iteration of a fit: allocating them afresh each
        time costs as much as the forward pass (the pages are new every time).
        """
        passes = self._forward_backward(X, lengths, want_posteriors=True, workspace=workspace)
        emission = tied_centre = None
        if "m" in self.params or "c" in self.params:
            stats = SufficientStatistics(self.covariance_type, self.means_)
            stats.add(X, responsibilities=passes.posteriors, n_threads=self._threads())
            emission, tied_centre = stats.totals(), stats.tied_centre
        return (HMMStatistics(passes.start_counts, passes.trans_counts, emission, self.means_,
                              tied_centre), _sequential_sum(passes.log_probs))

    # ------------------------------------------------------------------
    # the M-step: hmmlearn's MAP updates from moments about the old means
    # ------------------------------------------------------------------
    def _do_mstep(self, stats):
        # A prior below 1 can push a count negative: the constrained maximum then
        # puts 0 there.  Probabilities that are 0 stay 0 (forbidden starts and
        # transitions, as in a left-right model).
        if "s" in self.params:
            startprob = np.maximum(self.startprob_prior - 1 + stats.start, 0)
            self.startprob_ = np.where(self.startprob_ == 0, 0, startprob)
            _normalize_rows(self.startprob_)
        if "t" in self.params:
            transmat = np.maximum(self.transmat_prior - 1 + stats.trans, 0)
            self.transmat_ = np.where(self.transmat_ == 0, 0, transmat)
            _normalize_rows(self.transmat_)
        if stats.emission is not None:
            # A state with no weight and no prior divides 0 by 0: handled in
            # _keep_empty_states, without NumPy's warnings.
            with np.errstate(divide="ignore", invalid="ignore"):
                self._emission_mstep(stats.emission, stats.centres, stats.tied_centre)

    def _emission_mstep(self, totals, centres, tied_centre):
        """Means and covariances from the posterior-weighted moments about `centres`.

        With N_k the expected count of state k, S1_k and M2_k the first and
        second moments about c_k (the means of the E-step), the raw sums
        hmmlearn forms are sum x = N_k c_k + S1_k and, about any point m,
        sum (x - m)(x - m)^T = M2_k + S1_k d^T + d S1_k^T + N_k d d^T with
        d = c_k - m.  Taking them this way avoids the cancellation of
        E[x x^T] - m m^T.
        """
        counts, first = totals.counts, totals.first
        denom = counts[:, None]
        obs = denom * centres + first
        means_prior, means_weight = self.means_prior, self.means_weight
        old_means = self.means_
        if "m" in self.params:
            means = (means_weight * means_prior + obs) / (means_weight + denom)
        else:
            means = self.means_
        covars = self._covars_
        if "c" in self.params:
            covars_prior, covars_weight = self.covars_prior, self.covars_weight
            meandiff = means - means_prior
            shift = centres - means
            if self.covariance_type in ("spherical", "diag"):
                scatter = totals.second + 2 * shift * first + denom * shift ** 2
                c_n = means_weight * meandiff ** 2 + scatter
                c_d = max(covars_weight - 1, 0) + denom
                covars = (covars_prior + c_n) / np.maximum(c_d, 1e-5)
                if self.covariance_type == "spherical":
                    covars = covars.mean(axis=1)
            else:
                c_n = self._matrix_scatter(totals, centres, tied_centre, means, shift)
                for k in range(self.n_components):
                    c_n[k] += means_weight * np.outer(meandiff[k], meandiff[k])
                cvweight = max(covars_weight - self.n_features, 0)
                if self.covariance_type == "tied":
                    covars = (covars_prior + c_n.sum(axis=0)) / (cvweight + counts.sum())
                else:
                    covars = (covars_prior + c_n) / (cvweight + counts[:, None, None])
        self.means_, self._covars_ = self._keep_empty_states(counts, means, covars, old_means)

    def _matrix_scatter(self, totals, centres, tied_centre, means, shift):
        """(K, D, D) posterior-weighted scatter of each state about its new mean.

        For "tied" only the sum over states is used, and the engine keeps
        the all-rows scatter T2 about one centre t instead of one per state:
        sum_k sum_n r_nk (x - m_k)(x - m_k)^T
            = T2 - sum_k (F_k e_k^T + e_k F_k^T) + sum_k N_k e_k e_k^T,
        e_k = m_k - t, F_k = sum_n r_nk (x_n - t) = S1_k + N_k (c_k - t);
        the whole goes into state 0's slot.
        """
        counts, first = totals.counts, totals.first
        k, d = means.shape
        scatter = np.zeros((k, d, d))
        if self.covariance_type == "full":
            second = _symmetric(totals.second)
            for c in range(k):
                cross = np.outer(first[c], shift[c])
                scatter[c] = second[c] + cross + cross.T + counts[c] * np.outer(shift[c], shift[c])
            return scatter
        centre = tied_centre
        scatter[0] = _symmetric(totals.second)
        for c in range(k):
            offset = means[c] - centre
            towards = first[c] + counts[c] * (centres[c] - centre)
            cross = np.outer(towards, offset)
            scatter[0] += counts[c] * np.outer(offset, offset) - cross - cross.T
        return scatter

    def _keep_empty_states(self, counts, means, covars, old_means):
        """A state the E-step gave no weight keeps its previous emission where the
        update is 0/0 (no prior weight either); hmmlearn would carry NaN from then on."""
        bad_means = ~np.all(np.isfinite(means), axis=1)
        if covars.ndim == 2 and self.covariance_type == "tied":
            bad_covars = np.full(len(counts), not np.all(np.isfinite(covars)))
        else:
            bad_covars = ~np.all(np.isfinite(covars.reshape(len(counts), -1)), axis=1)
        if not (bad_means.any() or bad_covars.any()):
            return means, covars
        _log.warning("States %s received no posterior weight; their means_ and covars_ are "
                     "kept from the previous iteration.",
                     np.flatnonzero(bad_means | bad_covars).tolist())
        means = np.where(bad_means[:, None], old_means, means)
        if self.covariance_type == "tied":
            return means, (self._covars_ if bad_covars.any() else covars)
        mask = bad_covars.reshape((-1,) + (1,) * (covars.ndim - 1))
        return means, np.where(mask, self._covars_, covars)

    # ------------------------------------------------------------------
    # inference
    # ------------------------------------------------------------------
    def score_samples(self, X, lengths=None):
        """Log-likelihood of X and the posterior of each state at each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        lengths : array-like of int, shape (n_sequences,), default=None

        Returns
        -------
        log_prob : float
            Log-likelihood of X (sum over the sequences).
        posteriors : ndarray of shape (n_samples, n_components)
            P(state k at sample t | its whole sequence).
        """
        X, lengths = self._check_fitted_input(X, lengths)
        with single_threaded_blas():
            passes = self._forward_backward(X, lengths, want_posteriors=True)
        return _sequential_sum(passes.log_probs), passes.posteriors

    def score(self, X, lengths=None):
        """Log-likelihood of X under the model (the forward pass only).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        lengths : array-like of int, shape (n_sequences,), default=None

        Returns
        -------
        float
            The sum over the sequences of log p(sequence).
        """
        X, lengths = self._check_fitted_input(X, lengths)
        with single_threaded_blas():
            passes = self._forward_backward(X, lengths, want_posteriors=False)
        return _sequential_sum(passes.log_probs)

    def decode(self, X, lengths=None, algorithm=None):
        """The most likely states of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        lengths : array-like of int, shape (n_sequences,), default=None
        algorithm : {"viterbi", "map"} or None, default=None
            None uses the model's ``algorithm``.

        Returns
        -------
        log_prob : float
            "viterbi": the log-probability of the state path with X.  "map":
            as hmmlearn reports it, the sum over samples of the largest
            posterior (not a log-probability).
        state_sequence : ndarray of shape (n_samples,)
            One state per sample.
        """
        self._check_is_fitted()
        self._check()
        algorithm = algorithm or self.algorithm
        if algorithm not in DECODER_ALGORITHMS:
            raise ValueError(f"Unknown decoder {algorithm!r}")
        X, lengths = self._model_input(X, lengths)
        with single_threaded_blas():
            if algorithm == "viterbi":
                path = _hmm.viterbi(self._log_frameprob(X), self.startprob_, self.transmat_,
                                    lengths, n_threads=self._threads())
                return _sequential_sum(path.log_probs), path.states
            posteriors = self._forward_backward(X, lengths, want_posteriors=True).posteriors
        best = posteriors.max(axis=1)
        ends = np.cumsum(lengths)
        log_prob = _sequential_sum([best[end - n:end].sum() for n, end in zip(lengths, ends)])
        return log_prob, posteriors.argmax(axis=1)

    def predict(self, X, lengths=None):
        """The most likely state of each sample, by the model's ``algorithm``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        lengths : array-like of int, shape (n_sequences,), default=None

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return self.decode(X, lengths)[1]

    def predict_proba(self, X, lengths=None):
        """Posterior probability of each state at each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        lengths : array-like of int, shape (n_sequences,), default=None

        Returns
        -------
        ndarray of shape (n_samples, n_components)
        """
        return self.score_samples(X, lengths)[1]

    def sample(self, n_samples=1, random_state=None, currstate=None):
        """Draw a state sequence and its emissions from the model.

        Draws exactly as hmmlearn does (one uniform per state, then the
        emission), so the same seed gives hmmlearn's samples.

        Parameters
        ----------
        n_samples : int, default=1
        random_state : int, RandomState instance or None, default=None
            None uses the model's ``random_state``.
        currstate : int or None, default=None
            The first state; None draws it from :attr:`startprob_`.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        state_sequence : ndarray of shape (n_samples,)
        """
        self._check_is_fitted()
        self._check()
        random_state = check_random_state(self.random_state if random_state is None else random_state)
        covariances = self.covars_
        transmat_cdf = np.cumsum(self.transmat_, axis=1)
        if currstate is None:
            currstate = int((np.cumsum(self.startprob_) > random_state.rand()).argmax())
        states = [currstate]
        draws = [random_state.multivariate_normal(self.means_[currstate], covariances[currstate])]
        for _ in range(n_samples - 1):
            currstate = int((transmat_cdf[currstate] > random_state.rand()).argmax())
            states.append(currstate)
            draws.append(random_state.multivariate_normal(self.means_[currstate],
                                                          covariances[currstate]))
        return np.atleast_2d(draws), np.array(states, dtype=int)

    def get_stationary_distribution(self):
        """The stationary distribution of the chain: the left eigenvector of
        :attr:`transmat_` for eigenvalue 1, summing to 1."""
        self._check_is_fitted()
        values, vectors = np.linalg.eig(self.transmat_.T)
        vector = np.real_if_close(vectors[:, np.argmax(values)])
        return vector / vector.sum()

    def _n_parameters(self):
        return sum(self._get_n_fit_scalars_per_param().values())

    def aic(self, X, lengths=None):
        """Akaike information criterion, ``-2 log L + 2 p`` (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        lengths : array-like of int, shape (n_sequences,), default=None

        Returns
        -------
        float
        """
        return -2 * self.score(X, lengths) + 2 * self._n_parameters()

    def bic(self, X, lengths=None):
        """Bayesian information criterion, ``-2 log L + p log(n_samples)`` (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        lengths : array-like of int, shape (n_sequences,), default=None

        Returns
        -------
        float
        """
        return -2 * self.score(X, lengths) + self._n_parameters() * np.log(len(X))


def _workspace(n_samples, n_components):
    """The (T, K) arrays of an E-step, allocated once per fit (see ``_do_estep``)."""
    return {"log_frameprob": np.empty((n_samples, n_components)),
            "posteriors": np.empty((n_samples, n_components)),
            "buffers": np.empty((n_samples, n_components + 2))}


def _sequential_sum(values):
    """Sum in order, as hmmlearn adds sequence by sequence."""
    total = 0.0
    for value in np.asarray(values, dtype=np.float64).tolist():
        total += value
    return total


class _GaussianHMMFile:
    """How a GaussianHMM goes into a model file and comes back (fastem._persistence).

    Arrays: the four parameters (covariances in the type's compact storage),
    the monitor's history, and any prior given as an array (``prior_<name>``;
    scalar priors are plain parameters in the header).
    """

    estimator = GaussianHMM
    arrays = ("startprob", "transmat", "means", "covars", "history")
    priors = ("startprob_prior", "transmat_prior", "means_prior", "means_weight",
              "covars_prior", "covars_weight")
    attributes = {"n_features": int, "n_iter": int}

    @staticmethod
    def dump(model):
        model._check()
        arrays = {"startprob": model.startprob_, "transmat": model.transmat_,
                  "means": model.means_, "covars": model._covars_,
                  "history": np.asarray(list(model.monitor_.history), dtype=np.float64)}
        for name in _GaussianHMMFile.priors:
            value = getattr(model, name)
            if np.ndim(value) > 0:
                arrays["prior_" + name] = np.asarray(value, dtype=np.float64)
        arrays = {key: np.asarray(value, dtype=np.float64) for key, value in arrays.items()}
        return {"n_features": int(model.n_features), "n_iter": int(model.monitor_.iter)}, arrays

    @staticmethod
    def load(params, attributes, arrays):
        """Check what a model file holds and rebuild the model (ValueError if wrong)."""
        unknown = sorted(set(params) - set(GaussianHMM._get_param_names()))
        if unknown:
            raise ValueError(f"unknown GaussianHMM parameters {unknown}")
        model = GaussianHMM(**params)
        if set(attributes) != set(_GaussianHMMFile.attributes) or not all(
                type(attributes[key]) is kind for key, kind in _GaussianHMMFile.attributes.items()):
            raise ValueError(f"the header's attributes {attributes} are not "
                             f"{sorted(_GaussianHMMFile.attributes)} as integers")
        allowed = set(_GaussianHMMFile.arrays) | {"prior_" + name for name in _GaussianHMMFile.priors}
        if not set(_GaussianHMMFile.arrays) <= set(arrays) <= allowed:
            raise ValueError(f"the arrays {sorted(arrays)} are not {sorted(_GaussianHMMFile.arrays)} "
                             "and array priors")
        for key, value in arrays.items():
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{key} is not finite")
            if key.startswith("prior_"):
                setattr(model, key[len("prior_"):], value.astype(np.float64))
        try:
            model.startprob_ = arrays["startprob"].astype(np.float64)
            model.transmat_ = arrays["transmat"].astype(np.float64)
            model.means_ = arrays["means"].astype(np.float64)
            model.covars_ = arrays["covars"].astype(np.float64)
            model._check()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a valid GaussianHMM: {exc}") from None
        if model.n_features != attributes["n_features"] or attributes["n_iter"] < 0:
            raise ValueError(f"the attributes {attributes} do not fit the arrays")
        if arrays["history"].ndim != 1:
            raise ValueError("history must be a vector")
        model.monitor_.history = collections.deque(arrays["history"].tolist())
        model.monitor_.iter = attributes["n_iter"]
        return model


_persistence.register("GaussianHMM", _GaussianHMMFile)
