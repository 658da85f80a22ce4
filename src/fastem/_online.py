"""Online EM: a Gaussian mixture fitted to a stream, one chunk of rows per step.

Stepwise EM (Cappé & Moulines, 2009) keeps *running statistics* s, the
M-step's sums per unit of weight, and for the t-th chunk Y_t (t = 1, 2, ...)
under the current parameters theta_{t-1}:

    s_t = (1 - gamma_t) s_{t-1} + gamma_t s_hat(Y_t; theta_{t-1})
    theta_t = M-step(s_t)

where s_hat is the chunk's E-step statistics divided by the chunk's total
weight, so a step does not depend on how many rows the chunk holds, and

    gamma_t = (t + learning_offset) ** (-learning_decay)

with learning_decay in (0.5, 1] (the sum of the steps diverges and the sum of
their squares converges: the conditions under which the recursion settles on
a stationary point of the expected log-likelihood) and learning_offset > 0
(larger: smaller early steps).

Both terms must be moments about the same centres before they are added:
the running statistics are recentred onto theta_{t-1}'s means, which the
chunk's E-step takes its moments about (``SufficientStatistics.recentred``;
no precision is lost, the moments stay about points near the data).

s_0 is the statistics of a model (``SufficientStatistics.of_parameters``):
the model the first chunk initialises, or the model ``fit`` left.  After
``fit`` the schedule does not restart at t = 1, which would let one small
chunk outweigh all the data the fit saw: it continues as if that data had
been a stream of chunks like the first one, t_0 = W_fit / w_chunk steps
long, so the first step is gamma = (1 + t_0 + learning_offset)^(-learning_decay).  Everything
between calls lives in one :class:`StreamState`, which pickles, so a stream
resumed from a pickle continues bit for bit.
"""
import dataclasses
import time

import numpy as np

from fastem import _covariance as cov_table
from fastem._base import FitData, Iteration
from fastem._openmp_info import effective_n_threads
from fastem._sources import (
    ArrayRows, BlockRows, block_rows, e_step, is_dask_collection, is_on_disk_array, rows_for_fit,
    sliced_blocks,
)
from fastem._stats import GaussianParameters, SufficientStatistics
from fastem._validation import (
    check_array,
    check_feature_names,
    check_random_state,
    check_sample_weight,
)


def step_size(n_step, learning_decay, learning_offset):
    """The weight of the t-th chunk: ``(t + learning_offset) ** -learning_decay``.

    Parameters
    ----------
    n_step : float
        t, from 1 for the first chunk of a stream (plus the offset of a
        stream begun after ``fit``).
    learning_decay : float
        In (0.5, 1].
    learning_offset : float
        > 0, so that every step is below 1 and the statistics from before
        always keep some weight.

    Returns
    -------
    float
    """
    return float((n_step + learning_offset) ** -learning_decay)


@dataclasses.dataclass
class StreamState:
    """What ``partial_fit`` keeps between calls (``GaussianMixture._stream``).

    Attributes
    ----------
    statistics : SufficientStatistics
        The running statistics per unit of weight, about the means of
        `parameters`.
    parameters : GaussianParameters
        The model of the last M-step in float64 (the public attributes may
        be float32): the next chunk's E-step runs on it.
    n_steps : int
        The steps taken since the stream began (first chunk, or ``fit``).
    step_offset : float
        Added to `n_steps` in the step-size schedule: 0 for a stream begun
        by its first chunk, W_fit / w_chunk after ``fit`` (module docstring).
    seed_weight : float
        The total weight of the data ``fit`` saw, for a stream begun from a
        fitted model that has taken no step yet; 0 otherwise.
    published : tuple of ndarray
        ``weights_``, ``means_`` and ``covariances_`` as stored after the last
        step.  While they are still the estimator's, the stream carries on;
        once ``fit`` (or the user) has replaced them, the next step starts a
        new stream from the new parameters.
    """

    statistics: SufficientStatistics
    parameters: GaussianParameters
    n_steps: int
    published: tuple = ()
    step_offset: float = 0.0
    seed_weight: float = 0.0


def start(covariance_type, parameters, reg_covar, seed_weight=0.0):
    """A stream at t = 0 whose running statistics are `parameters`.

    Parameters
    ----------
    covariance_type : str
    parameters : GaussianParameters
        float64, full/tied factors upper triangular (as the engine reads them).
    reg_covar : float
    seed_weight : float, default=0.0
        The total weight of the data `parameters` were fitted to (0: none,
        the stream's own first chunk made them).

    Returns
    -------
    StreamState
    """
    statistics = SufficientStatistics.of_parameters(covariance_type, parameters, reg_covar)
    return StreamState(statistics, parameters, 0, seed_weight=float(seed_weight))


def step(state, model, source, *, reg_covar, learning_decay, learning_offset, n_threads):
    """One step of stepwise EM on one chunk of rows.

    Parameters
    ----------
    state : StreamState
        Not modified.
    model : fastem._em.ModelArrays
        The model of ``state.parameters``: the E-step runs on it.
    source : fastem._sources.RowSource
        The chunk's rows and weights (a positive total weight).
    reg_covar, learning_decay, learning_offset : float
    n_threads : int
        The result does not depend on it.

    Returns
    -------
    state : StreamState
        After the step (``published`` left empty).
    lower_bound : float
        The chunk's mean log-likelihood per unit of weight under `model`.

    Raises
    ------
    ValueError
        If the log-likelihood is not finite or a covariance is ill-defined;
        `state` still holds the stream as it was.
    """
    chunk, lower_bound = e_step(source, model, n_threads)
    n_steps = state.n_steps + 1
    offset = state.step_offset
    if state.n_steps == 0 and state.seed_weight > 0.0:
        offset = state.seed_weight / chunk.total_weight  # the fit, as chunks like this one
    gamma = step_size(n_steps + offset, learning_decay, learning_offset)
    # One scaling of the chunk both turns it into statistics per unit of
    # weight and weighs it by the step.
    if not np.isfinite(gamma / chunk.total_weight):
        raise ValueError(
            f"The chunk's total sample_weight ({chunk.total_weight!r}) is too small to divide "
            "by: rescale sample_weight."
        )
    running = (state.statistics.recentred_to_model(model).scaled(1.0 - gamma)
               + chunk.scaled(gamma / chunk.total_weight))
    parameters = running.m_step(reg_covar, dtype=source.dtype)
    return StreamState(running, parameters, n_steps, step_offset=offset), lower_bound


def _float64_parameters(weights, means, covariances, precisions_cholesky):
    return GaussianParameters(*(np.array(a, dtype=np.float64, order="C")
                                for a in (weights, means, covariances, precisions_cholesky)))


def _published(estimator):
    return (estimator.weights_, estimator.means_, estimator.covariances_)


def _current_stream(estimator):
    """The stream to continue: None before any fit, else the running one or one
    started from the fitted parameters."""
    if not estimator.__sklearn_is_fitted__():
        return None
    kind = cov_table.covariance_type(estimator.covariance_type)
    k, d = np.shape(estimator.means_)
    # Shapes alone cannot tell diag (K, D) from tied (D, D) when K = D.
    fitted_type = getattr(estimator, "_fitted_covariance_type", estimator.covariance_type)
    if (k != estimator.n_components or fitted_type != estimator.covariance_type
            or np.shape(estimator.covariances_) != kind.shape(k, d)):
        raise ValueError(
            f"The fitted model (means_ of shape {np.shape(estimator.means_)}, covariances_ "
            f"of shape {np.shape(estimator.covariances_)}) is not one of "
            f"n_components={estimator.n_components} and covariance_type="
            f"{estimator.covariance_type!r}: the parameters changed after fitting. Call fit, "
            "or partial_fit on a new estimator."
        )
    stream = getattr(estimator, "_stream", None)
    if stream is not None and len(stream.published) == 3 and all(
            np.array_equal(mine, theirs) for mine, theirs in zip(stream.published,
                                                                 _published(estimator))):
        return stream
    parameters = _float64_parameters(
        estimator.weights_, estimator.means_, estimator.covariances_,
        cov_table.upper_factors(estimator.precisions_cholesky_, estimator.covariance_type))
    return start(estimator.covariance_type, parameters, estimator.reg_covar,
                 seed_weight=getattr(estimator, "_seen_weight", 0.0))


def _chunk_data(estimator, X, sample_weight):
    """A later chunk, checked against the fitted model (as scikit-learn's partial_fit does).

    Any X ``fit`` takes: in memory, a memmap or on-disk array (read in
    blocks, never loaded whole), a Dask array; one row is enough.
    """
    check_feature_names(estimator, X, reset=False)
    name = type(estimator).__name__
    allow_nan = estimator.missing == "em"
    if is_dask_collection(X):
        source = rows_for_fit(X, sample_weight, 1, name, n_threads=estimator.n_threads,
                              allow_nan=allow_nan)
    elif is_on_disk_array(X):
        weight = check_sample_weight(sample_weight, X.shape[0])
        source = BlockRows(sliced_blocks(X, weight, block_rows(max(1, X.shape[1]))), 1, name,
                           label="X", min_samples=1, allow_nan=allow_nan)
    else:
        X = check_array(X, estimator_name=name, allow_nan=allow_nan)
        source = ArrayRows(X, check_sample_weight(sample_weight, X.shape[0]))
    if source.n_features != estimator.n_features_in_:
        raise ValueError(
            f"X has {source.n_features} features, but {name} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    return FitData(source)


def partial_fit(estimator, X, sample_weight):
    """One step of online EM on `estimator` (``GaussianMixture.partial_fit``'s body).

    The first chunk of an unfitted estimator initialises the model
    (``init_params``, ``weights_init``, ...) and is then the first step.
    After ``fit``, the stream starts from the fitted parameters.  The
    estimator's state changes only when the step succeeds.

    Parameters
    ----------
    estimator : GaussianMixture
    X : array-like of shape (n_rows, n_features)
    sample_weight : array-like of shape (n_rows,) or None
    """
    started = time.perf_counter()
    estimator._check_parameters()
    seen_weight = getattr(estimator, "_seen_weight", 0.0) if estimator.__sklearn_is_fitted__() else 0.0
    stream = _current_stream(estimator)
    if stream is None:
        data = estimator._validate_fit_data(X, sample_weight)
        model = estimator._initial_state(data, check_random_state(estimator.random_state))
        stream = start(estimator.covariance_type, _float64_parameters(
            model.weights, model.means, model.covariances, model.precisions_cholesky),
            estimator.reg_covar)
    else:
        data = _chunk_data(estimator, X, sample_weight)
        # A chunk in memory takes the missing-value pass only when it has a NaN
        # (so a complete stream steps as without missing="em"); blocks always do.
        source = data.source
        missing = estimator.missing == "em" and (
            not isinstance(source, ArrayRows) or estimator._reads_missing(source.X))
        model = estimator._model(stream.parameters.weights, stream.parameters.means,
                                 stream.parameters.precisions_cholesky,
                                 stream.parameters.covariances, missing=missing)
    stream, lower_bound = step(
        stream, model, data.source, reg_covar=estimator.reg_covar,
        learning_decay=estimator.learning_decay, learning_offset=estimator.learning_offset,
        n_threads=effective_n_threads(estimator.n_threads),
    )
    if estimator.callback is not None:
        # Before anything is stored, so that an exception in the callback
        # leaves the estimator unchanged, as a failed step does.
        previous = float(estimator.lower_bound_) if estimator.__sklearn_is_fitted__() else -np.inf
        estimator.callback(Iteration(0, stream.n_steps, lower_bound, lower_bound - previous,
                                     time.perf_counter() - started))
    p = stream.parameters
    estimator._store_fitted(estimator._model(p.weights, p.means, p.precisions_cholesky,
                                             p.covariances), data)
    stream.published = tuple(np.array(a) for a in _published(estimator))
    estimator._seen_weight = seen_weight + data.source.total_weight
    estimator._stream = stream
    dtype = data.source.dtype.type
    estimator.converged_ = False
    estimator.n_iter_ = stream.n_steps
    estimator.lower_bound_ = dtype(lower_bound)
    estimator.lower_bounds_ = [dtype(lower_bound)]
