"""The base every fastem estimator shares: scikit-learn's protocol and the EM loop.

A model plugs in by subclassing :class:`EMEstimator` and naming its parts:

- ``_check_parameters()``: validate the constructor's parameters;
- ``_validate_fit_data(X, sample_weight)``: the checked data, as a
  :class:`FitData`;
- ``_initial_state(data, random_state)`` and ``_warm_state(data)``: the
  parameters EM starts from (a fresh initialisation, or the fitted ones);
- ``_em_step(state, data)``: one E-step and M-step in place, returning the
  lower bound of the E-step (the mean log-likelihood per unit of weight);
- ``_store_fitted(state, data)``: publish the best state's parameters;
- ``_log_likelihood_and_weight(X, sample_weight)`` and ``_n_parameters()``
  for ``score``, ``bic`` and ``aic``.

The loop here runs ``n_init`` initialisations (one with ``warm_start`` after
a fit), iterates each until the bound changes by less than ``tol`` or
``max_iter`` is reached, keeps the best, warns when it did not converge, and
calls :meth:`EMEstimator._after_iteration` after every iteration: the hook
progress output and callbacks attach to.  The ``callback`` parameter is
served there, once for every model: it is told each :class:`Iteration` and
may end the current initialisation early by returning True.
"""
import collections
import contextlib
import inspect
import time

import numpy as np

from fastem._blas_threads import single_threaded_blas
from fastem._validation import check_random_state
from fastem.exceptions import EM_NOT_CONVERGED, not_fitted_error, warn_convergence

# The layout of a pickled estimator's state (see EMEstimator.__getstate__).
# Raise it when an attribute changes meaning; __setstate__ then refuses states
# of a newer layout instead of building a half-understood estimator.
PICKLE_STATE_VERSION = 1

FitData = collections.namedtuple("FitData", "source")
FitData.__doc__ = """Validated training data: a fastem._sources.RowSource of X and its weights."""

Iteration = collections.namedtuple("Iteration", "init n_iter lower_bound change elapsed")
Iteration.__doc__ = """What the per-iteration hook (and the ``callback``) is told: which
initialisation (from 0), which iteration in it (from 1), the E-step's lower
bound, its change from the previous iteration (inf after the first of a fresh
initialisation) and the seconds elapsed since the fit's first initialisation
began (the validation of X before it is not counted)."""


def _fastem_version():
    import fastem

    return fastem.__version__


def has_converged(previous_bound, lower_bound, tol):
    """EM's stopping rule: the lower bound moved by less than `tol`.

    scikit-learn's rule, and the one ``em_fit`` of the C API applies.
    """
    return abs(lower_bound - previous_bound) < tol


def information_criteria(log_likelihood, n, n_parameters):
    """BIC and AIC (lower is better) of a fitted model.

    Parameters
    ----------
    log_likelihood : float
        Total (weighted) log-likelihood of the data.
    n : float
        Number of samples, or the sum of their weights.
    n_parameters : int
        Free parameters of the model.

    Returns
    -------
    bic, aic : float
        ``-2 log L + p log(n)`` and ``-2 log L + 2 p``.
    """
    return (float(-2.0 * log_likelihood + n_parameters * np.log(n)),
            float(-2.0 * log_likelihood + 2 * n_parameters))


class EMEstimator:
    """Base of fastem's estimators: scikit-learn's estimator protocol and the EM loop.

    Subclasses define ``__init__`` with keyword parameters (which
    ``get_params`` reads from its signature) and the hooks listed in the
    module docstring.  The loop reads ``n_init``, ``max_iter``, ``tol``,
    ``warm_start``, ``random_state``, ``verbose``, ``verbose_interval`` and
    ``callback``.
    """

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
        self

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
        return hasattr(self, "converged_")

    def _check_is_fitted(self):
        if not self.__sklearn_is_fitted__():
            raise not_fitted_error(self)

    # ------------------------------------------------------------------
    # persistence: pickles and model files
    # ------------------------------------------------------------------
    def __getstate__(self):
        # The state records its layout, so an unpickling fastem can tell a
        # state it understands from one a newer fastem wrote.
        state = dict(self.__dict__)
        state["_fastem_state"] = (PICKLE_STATE_VERSION, _fastem_version())
        return state

    def __setstate__(self, state):
        state = dict(state)
        # Pickles from before the state was versioned (fastem 0.1.0) hold the
        # same attributes as version 1, and load as such.
        version, written_by = state.pop("_fastem_state", (1, "0.1.0"))
        if not (isinstance(version, int) and 1 <= version <= PICKLE_STATE_VERSION):
            raise ValueError(
                f"This {type(self).__name__} was pickled by fastem {written_by} with state "
                f"version {version!r}; fastem {_fastem_version()} reads state versions up to "
                f"{PICKLE_STATE_VERSION}. Unpickle it with fastem {written_by} or newer, or "
                "move models between versions with est.save(path) and fastem.load(path).")
        self.__dict__.update(state)

    def save(self, file):
        """Save the fitted estimator to a portable ``.npz`` file that loads without pickle.

        :func:`fastem.load` reads it back; the loaded estimator predicts and
        scores exactly (bit for bit) as this one.  Saved: the fitted
        attributes and the constructor parameters that are plain numbers,
        strings, booleans or None; the others (``weights_init``,
        ``means_init``, ``precisions_init``, ``callback``, a RandomState
        ``random_state``) load as None.  A ``partial_fit`` stream is not
        saved: ``partial_fit`` on the loaded model continues as after ``fit``
        (pickle the estimator to resume a stream bit for bit).

        Parameters
        ----------
        file : str, path-like or binary file object
            Written under the name given (no ``.npz`` appended).  A path is
            written to a temporary file beside it and renamed, so a reader
            never sees a partial model and a failed save keeps the old file.

        Raises
        ------
        NotFittedError
            If the estimator is not fitted.
        OSError
            If the file cannot be written.

        Examples
        --------
        >>> import numpy as np, fastem, tempfile, os
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> gm = fastem.GaussianMixture(2, random_state=0).fit(X)
        >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
        >>> gm.save(path)
        >>> bool((fastem.load(path).predict(X) == gm.predict(X)).all())
        True
        """
        from fastem import _persistence

        _persistence.save(self, file)

    # ------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------
    def fit(self, X, y=None, sample_weight=None):
        """Estimate the model parameters with EM.

        Runs ``n_init`` initialisations (one with ``warm_start`` after the
        first fit) of at most ``max_iter`` iterations each and keeps the one
        with the highest lower bound.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            float32 data stays float32 (sums are float64 regardless).
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights: an integer weight acts as repeating the
            row, zero as removing it.

        Returns
        -------
        self

        Warns
        -----
        ConvergenceWarning
            If the best initialisation did not converge.
        """
        with single_threaded_blas():
            self._fit(X, sample_weight)
        return self

    def _fit(self, X, sample_weight):
        """Validate, then run the EM loop; returns the validated data."""
        with self._unchanged_on_error():
            self._check_parameters()
            return self._run_em(self._validate_fit_data(X, sample_weight))

    @contextlib.contextmanager
    def _unchanged_on_error(self):
        """Put the estimator's attributes back as they were if the block raises.

        A fit that fails part-way (an exception from the ``callback``, an
        interrupt, a step that cannot be computed) must not leave a model
        mixed from two fits.  A shallow copy suffices: fitting replaces the
        fitted arrays, it never writes into them.
        """
        before = dict(self.__dict__)
        try:
            yield
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _run_em(self, data):
        """The EM loop over initialisations on validated data; returns the data."""
        do_init = not (self.warm_start and self.__sklearn_is_fitted__())
        n_init = self.n_init if do_init else 1
        random_state = check_random_state(self.random_state)
        self._fit_started = time.perf_counter()
        best, stopped_best = None, False
        for init in range(n_init):
            self._verbose_init_start(init)
            if do_init:
                state = self._initial_state(data, random_state)
                lower_bound = -np.inf
            else:
                state = self._warm_state(data)
                lower_bound = float(self.lower_bound_)
            bounds, converged, stopped, n_iter = [], False, False, 0
            for n_iter in range(1, self.max_iter + 1):
                previous = lower_bound
                lower_bound = self._em_step(state, data)
                bounds.append(lower_bound)
                stop = self._after_iteration(Iteration(
                    init, n_iter, lower_bound, lower_bound - previous,
                    time.perf_counter() - self._fit_started))
                if has_converged(previous, lower_bound, self.tol):
                    converged = True
                    break
                if stop:
                    stopped = True
                    break
            if self.max_iter > 0:   # scikit-learn reports no end of an initialisation it did not run
                self._verbose_init_end(lower_bound, converged)
            # max_iter=0 keeps the last initialisation, whose bound is not computed.
            if best is None or self.max_iter == 0 or lower_bound > best[1] or best[1] == -np.inf:
                best = (state, lower_bound, n_iter, bounds, converged)
                stopped_best = stopped
        state, lower_bound, n_iter, bounds, converged = best
        # An initialisation the callback ended was the caller's choice: converged_
        # says it did not converge, without a warning that suggests raising max_iter.
        if not converged and not stopped_best and self.max_iter > 0:
            warn_convergence(EM_NOT_CONVERGED)
        self._store_fitted(state, data)
        dtype = data.source.dtype.type
        self.converged_ = bool(converged)
        self.n_iter_ = n_iter
        self.lower_bound_ = dtype(lower_bound if self.max_iter > 0 else -np.inf)
        self.lower_bounds_ = [dtype(b) for b in bounds]
        return data

    def _after_iteration(self, iteration):
        """Called after every EM iteration with an :class:`Iteration`.

        Prints scikit-learn's progress lines when ``verbose`` asks for them,
        then calls ``callback``.  Returns True when the callback asks to end
        the current initialisation; its exceptions propagate (and ``fit``
        leaves the estimator as it was).
        """
        self._verbose_iter_end(iteration.n_iter, iteration.change)
        callback = getattr(self, "callback", None)
        if callback is None:
            return False
        # Only a boolean True stops: a callback that returns a count or a
        # message by accident must not end fits silently.
        answer = callback(iteration)
        return isinstance(answer, (bool, np.bool_)) and bool(answer)

    # ------------------------------------------------------------------
    # verbose output, as scikit-learn prints it
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
    # scores shared by every model
    # ------------------------------------------------------------------
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
        return information_criteria(*self._log_likelihood_and_weight(X, sample_weight),
                                    self._n_parameters())[0]

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
        return information_criteria(*self._log_likelihood_and_weight(X, sample_weight),
                                    self._n_parameters())[1]
