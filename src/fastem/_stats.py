"""Sufficient statistics of a Gaussian mixture: what every fit exchanges.

EM's M-step needs only sums over rows.  For K components and D features,
with w_n the row weights and r_nk the responsibilities, a pass gathers

    log_lik   sum_n w_n log p(x_n)             (nearest-centre passes: inertia)
    counts    N_k  = sum_n w_n r_nk                                       (K,)
    first     S1_k = sum_n w_n r_nk (x_n - c_k)                           (K, D)
    second    by the covariance type's statistic (fastem._covariance):
              full  sum_n w_n r_nk (x_n - c_k)(x_n - c_k)^T               (K, D, D)
              tied  sum_n w_n (x_n - t)(x_n - t)^T                        (D, D)
              diag  sum_n w_n r_nk (x_n - c_k)^2                          (K, D)

about *centres* c_k (the means of the model that ran the E-step) and, for
tied, a centre t (the mixture's mean).  Taking moments about points close to
the data, not about zero, is what keeps the covariances free of the
cancellation in E[xx^T] - mu mu^T.  Only the upper triangle of a D x D block
is filled.  The flat layout, [log_lik, counts, first, second], is the one
``fastem.h`` documents for ``accumulate_f64``.

The engine sums chunks of rows into a fixed number of *lanes* (chunk c goes
to lane c mod n_lanes) and adds the lanes in order only when the totals are
read.  :class:`SufficientStatistics` keeps those lanes and the index of the
next chunk, so statistics added one chunk-aligned block at a time equal one
pass over all the rows, bit for bit, for any number of threads.  That is what
``fit_chunks``, ``partial_fit`` (scaled statistics), the Dask fit (statistics
pickled and added across workers) and the HMM (posteriors it computes itself)
exchange.
"""
import collections

import numpy as np

from fastem import _covariance
from fastem import _em as _engine
from fastem._em import m_step_from

Totals = collections.namedtuple("Totals", "log_likelihood counts first second")
Totals.__doc__ = """Statistics with the lanes added up: see the module docstring."""

GaussianParameters = collections.namedtuple(
    "GaussianParameters", "weights means covariances precisions_cholesky"
)
GaussianParameters.__doc__ = """A Gaussian mixture in scikit-learn's storage (fastem._covariance)."""


class SufficientStatistics:
    """The M-step's sums over rows of X, taken about fixed centres.

    Parameters
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"} or None
        Which second-order statistic is kept (spherical keeps the diagonal);
        None keeps none, only counts and first moments (k-means).
    centres : array-like of shape (n_components, n_features)
        The points the moments are taken about.  For statistics of an E-step,
        the means of the model that runs it.
    tied_centre : array-like of shape (n_features,), default=None
        The centre of the tied scatter; None takes the mean of `centres`.
        Ignored for other covariance types.

    Attributes
    ----------
    lanes : ndarray of shape (n_lanes, lane_stride)
        The engine's partial sums: each lane holds ``n_stats`` statistics,
        then zeros up to a cache line, so threads never share one.
        :meth:`totals` adds the lanes in order.
    n_stats : int
        Length of the flat statistics (layout of ``fastem.h``).
    next_chunk : int
        Global index of the next chunk of rows: it decides which lane that
        chunk is added to.
    total_weight : float
        Sum of the weights of the rows added (their count without weights),
        added in row order.
    extras : dict of str to ndarray
        Additive terms a model keeps beside the Gaussian ones (an HMM's
        transition counts, say).  Added, scaled and pickled with the lanes;
        recentring leaves them alone.

    Notes
    -----
    Adding blocks of rows whose sizes are multiples of ``chunk_rows`` gives
    exactly the statistics of one pass over their concatenation; other
    block sizes agree to rounding.  Objects pickle as plain NumPy arrays.
    An object is not safe to add into from two threads at once (the engine
    writes its lanes without the GIL): give each thread its own and sum them.
    """

    def __init__(self, covariance_type, centres, tied_centre=None):
        centres = np.array(centres, dtype=np.float64, order="C", ndmin=2)
        if centres.ndim != 2 or centres.size == 0:
            raise ValueError(f"centres must have shape (n_components, n_features), got {centres.shape}")
        self.covariance_type = covariance_type
        self.statistic = (
            "none" if covariance_type is None else _covariance.covariance_type(covariance_type).statistic
        )
        self.centres = centres
        if self.statistic == "tied":
            centre = centres.mean(axis=0) if tied_centre is None else tied_centre
            self.tied_centre = np.array(centre, dtype=np.float64, order="C")
            if self.tied_centre.shape != (centres.shape[1],):
                raise ValueError(f"tied_centre must have shape ({centres.shape[1]},)")
        else:
            self.tied_centre = None
        self.n_stats = _engine.statistics_size(self.statistic, *centres.shape)
        self.lanes = np.zeros(_engine.lane_shape(self.n_stats))
        self.next_chunk = 0
        self.total_weight = 0.0
        self.extras = {}

    # -- shape -------------------------------------------------------------
    @property
    def n_components(self):
        """Number of components K."""
        return self.centres.shape[0]

    @property
    def n_features(self):
        """Number of features D."""
        return self.centres.shape[1]

    @property
    def chunk_rows(self):
        """Rows per engine chunk: blocks of a multiple of this add up bit for bit."""
        return _engine.chunk_rows(self.n_features)

    # -- adding rows -------------------------------------------------------
    @classmethod
    def of_model(cls, model):
        """Empty statistics about a model's means, as its compiled EM step takes them.

        Parameters
        ----------
        model : fastem._em.ModelArrays

        Returns
        -------
        SufficientStatistics
            Centred on the model's means and, for tied, on the mixture's mean
            with the engine's own bits, so that ``add(X, model=model)`` then
            :meth:`m_step` is exactly the model's EM step.
        """
        return cls(model.covariance_type, model.means, model.tied_centre())

    @classmethod
    def of_parameters(cls, covariance_type, parameters, reg_covar=0.0, total_weight=1.0):
        """Statistics whose M-step gives back `parameters`: a mixture turned into sums.

        The statistics of `total_weight` rows that the mixture describes
        exactly: counts ``N_k = total_weight * weights_k``, first moments 0
        about the means, and second moments ``N_k (covariances_k - reg_covar)``
        (reg_covar off the diagonal of each matrix, or off each variance; a
        spherical variance repeated over the D features), the tied scatter
        taken about the mixture's mean ``sum_k weights_k means_k``.  What
        online EM starts from when it continues a fitted model.

        Parameters
        ----------
        covariance_type : {"full", "tied", "diag", "spherical"}
        parameters : GaussianParameters or tuple
            ``weights`` (K,), ``means`` (K, D) and ``covariances`` (shaped by
            the covariance type); ``precisions_cholesky`` is not read.
        reg_covar : float, default=0.0
            The regularisation the covariances include, which
            :meth:`m_step` adds back.
        total_weight : float, default=1.0
            The weight the statistics stand for (1: per unit of weight).

        Returns
        -------
        SufficientStatistics
            All sums in lane 0; ``log_lik`` is 0 (no rows were seen) and
            ``next_chunk`` is 0.  ``of_parameters(t, p, r).m_step(r)`` gives
            back ``p`` to rounding (the M-step's count floor of 10 eps per
            component aside).
        """
        weights, means, covariances = (np.asarray(a, dtype=np.float64) for a in parameters[:3])
        kind = _covariance.covariance_type(covariance_type)
        k, d = np.shape(means)
        if weights.shape != (k,) or covariances.shape != kind.shape(k, d):
            raise ValueError(
                f"parameters of shapes {weights.shape}, {means.shape}, {covariances.shape} "
                f"are not a {covariance_type!r} mixture"
            )
        total_weight = float(total_weight)
        if not (np.isfinite(total_weight) and total_weight > 0.0):
            raise ValueError(f"total_weight must be finite and > 0, got {total_weight!r}")
        counts = total_weight * weights
        # The tied centre in component order, as ModelArrays.tied_centre sums it.
        tied_centre = np.zeros(d)
        for weight, mean in zip(weights, means):
            tied_centre += weight * mean
        new = cls(covariance_type, means, tied_centre)
        # Covariances without the regularisation the M-step will add again.
        if kind.matrix:
            scatter = covariances - reg_covar * np.eye(d)
        else:
            scatter = covariances - reg_covar
        if kind.name == "full":
            second = counts[:, None, None] * np.triu(scatter)
        elif kind.name == "tied":
            # about t: sum_k N_k (Sigma + (mu_k - t)(mu_k - t)^T)
            offsets = means - tied_centre
            second = np.triu(counts.sum() * scatter + (counts[:, None] * offsets).T @ offsets)
        elif kind.name == "diag":
            second = counts[:, None] * scatter
        else:
            second = counts[:, None] * np.repeat(scatter[:, None], d, axis=1)
        flat = np.concatenate([[0.0], counts, np.zeros(k * d), second.reshape(-1)])
        new.lanes[0, :new.n_stats] = flat
        new.total_weight = total_weight
        return new

    def add(self, X, sample_weight=None, *, model=None, responsibilities=None, n_threads=1,
            rows_observed=False):
        """Add the statistics of rows of X, in place.

        Each row's responsibilities come from one of three places:
        `model` (the E-step of that Gaussian mixture, whose means must be
        these centres; log_lik gains the rows' log-likelihood), `responsibilities`
        (supplied by the caller: an HMM's posteriors, an E-step of its own),
        or neither (the nearest centre, as in k-means; log_lik gains the
        inertia).  No (n_rows, n_features) temporary is made.

        Parameters
        ----------
        X : ndarray of shape (n_rows, n_features), float32 or float64, C-contiguous
        sample_weight : ndarray of shape (n_rows,), float64, or None
        model : fastem._em.ModelArrays, default=None
        responsibilities : ndarray of shape (n_rows, n_components), default=None
            Non-negative.  For full, diag and spherical a row need not sum to
            one (a weight per component and row); for tied each row must sum
            to one, since the tied scatter counts every row once with its
            sample weight (put a row's total weight in `sample_weight`).
        n_threads : int, default=1
        rows_observed : bool, default=False
            With a model that reads NaN as missing (``model.missing``): the
            caller knows that every row of positive weight has an observed
            value, so the weight the rows add is the weights' sum (the same
            bits) and X is not scanned for rows with nothing observed.

        Returns
        -------
        self
        """
        if model is not None and responsibilities is not None:
            raise ValueError("give model or responsibilities, not both")
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"X must have shape (n_rows, {self.n_features}), got {X.shape}")
        if responsibilities is not None:
            responsibilities = np.ascontiguousarray(responsibilities, dtype=np.float64)
            if responsibilities.shape != (X.shape[0], self.n_components):
                raise ValueError(
                    f"responsibilities must have shape ({X.shape[0]}, {self.n_components}), "
                    f"got {responsibilities.shape}"
                )
            if self.statistic == "tied" and not np.allclose(
                    responsibilities.sum(axis=1), 1.0, rtol=0.0, atol=1e-9):
                raise ValueError(
                    "for tied statistics each row of responsibilities must sum to one; "
                    "put a row's total weight in sample_weight instead"
                )
        self.next_chunk += _engine.accumulate(
            X, sample_weight, self.lanes, statistic=self.statistic, centres=self.centres,
            first_chunk=self.next_chunk, model=model, responsibilities=responsibilities,
            tied_centre=self.tied_centre, n_threads=n_threads,
        )
        if model is not None and model.missing and not rows_observed:
            # Rows with nothing observed add nothing, to the sums or to the weight
            # the log-likelihood is averaged over.
            self.total_weight = _engine.observed_weight(X, sample_weight, self.total_weight)[0]
        else:
            self.total_weight = _engine.sum_weights(sample_weight, X.shape[0], self.total_weight)
        return self

    # -- reading -----------------------------------------------------------
    def flat(self):
        """The statistics as one array, lanes added in order (layout of fastem.h)."""
        return _engine.reduce_lanes(self.lanes, self.n_stats)

    def totals(self):
        """The statistics, lanes added in order.

        Returns
        -------
        Totals
            ``second`` is (K, D, D), (D, D) or (K, D) as the statistic says,
            upper triangle only for square blocks.
        """
        return self._split(self.flat())

    def _split(self, flat):
        k, d = self.n_components, self.n_features
        end = 1 + k + k * d
        second = None
        if self.statistic != "none":
            shape = {"full": (k, d, d), "tied": (d, d), "diag": (k, d)}[self.statistic]
            second = flat[end:].reshape(shape)
        return Totals(float(flat[0]), flat[1:1 + k], flat[1 + k:end].reshape(k, d), second)

    @property
    def mean_log_likelihood(self):
        """log_lik per unit of weight: EM's lower bound (scikit-learn's ``lower_bound_``).

        Raises
        ------
        ValueError
            If no weight has been added (nothing to average over).
        """
        if not self.total_weight > 0.0:
            raise ValueError("no rows with positive weight have been added to these statistics")
        return float(self.flat()[0]) / self.total_weight

    # -- combining ---------------------------------------------------------
    def _same_layout(self, other):
        if not isinstance(other, SufficientStatistics):
            raise TypeError(f"cannot combine SufficientStatistics with {type(other).__name__}")
        if other.covariance_type != self.covariance_type or other.lanes.shape != self.lanes.shape:
            raise ValueError("statistics of different models cannot be combined")
        if not (np.array_equal(other.centres, self.centres)
                and np.array_equal(other.tied_centre, self.tied_centre)):
            raise ValueError(
                "statistics taken about different centres: recentre one first (recentred())"
            )

    def _copy(self):
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.lanes = self.lanes.copy()
        new.extras = {name: np.array(value) for name, value in self.extras.items()}
        return new

    def __add__(self, other):
        """Statistics of both sets of rows: lanes added lane by lane, in a fixed order.

        The result depends only on the two operands (and their order), not
        on where or with how many threads each was made; it equals one pass
        over both sets of rows to rounding, not bit for bit.  ``next_chunk``
        becomes the sum of both, so rows added afterwards continue after them.
        """
        self._same_layout(other)
        new = self._copy()
        new.lanes += other.lanes
        new.next_chunk = self.next_chunk + other.next_chunk
        new.total_weight = self.total_weight + other.total_weight
        for name, value in other.extras.items():
            new.extras[name] = new.extras[name] + value if name in new.extras else np.array(value)
        return new

    def scaled(self, factor):
        """These statistics times `factor` (online EM's step sizes).

        Parameters
        ----------
        factor : float
            Finite and >= 0.

        Returns
        -------
        SufficientStatistics
        """
        factor = float(factor)
        if not (np.isfinite(factor) and factor >= 0.0):
            raise ValueError(f"factor must be finite and >= 0, got {factor!r}")
        new = self._copy()
        new.lanes *= factor
        new.total_weight *= factor
        new.extras = {name: value * factor for name, value in self.extras.items()}
        return new

    def recentred(self, centres, tied_centre=None):
        """The same statistics taken about other centres.

        With delta_k = c'_k - c_k: S1' = S1 - N delta, and
        S2' = S2 - S1 delta^T - delta S1^T + N delta delta^T (its diagonal
        for diag); the tied scatter moves with its own centre the same way,
        with s = sum_k (S1_k + N_k (c_k - t)) as its first moment.  Applied
        lane by lane, so the lane structure is kept.

        Parameters
        ----------
        centres : array-like of shape (n_components, n_features)
        tied_centre : array-like of shape (n_features,), default=None
            None: the mean of `centres` (tied only).

        Returns
        -------
        SufficientStatistics
        """
        new = type(self)(self.covariance_type, centres, tied_centre)
        if new.centres.shape != self.centres.shape:
            raise ValueError(f"centres must have shape {self.centres.shape}, got {new.centres.shape}")
        new.next_chunk, new.total_weight = self.next_chunk, self.total_weight
        new.extras = {name: np.array(value) for name, value in self.extras.items()}
        k, d = self.n_components, self.n_features
        end = 1 + k + k * d
        lanes = self.lanes.copy()
        counts = lanes[:, 1:1 + k]
        first = lanes[:, 1 + k:end].reshape(-1, k, d)
        second = lanes[:, end:self.n_stats]
        delta = new.centres - self.centres
        if self.statistic == "tied":
            shift = new.tied_centre - self.tied_centre
            # first moment of the scatter about the old tied centre, per lane
            s = (first + counts[:, :, None] * (self.centres - self.tied_centre)).sum(axis=1)
            weight = counts.sum(axis=1)
            scatter = _symmetric(second.reshape(-1, d, d))
            scatter += (-s[:, :, None] * shift[None, None, :] - shift[None, :, None] * s[:, None, :]
                        + weight[:, None, None] * np.outer(shift, shift)[None])
            second[:] = np.triu(scatter).reshape(len(lanes), -1)
        elif self.statistic == "full":
            moments = _symmetric(second.reshape(-1, k, d, d))
            moments += (
                -first[..., :, None] * delta[None, :, None, :]
                - delta[None, :, :, None] * first[..., None, :]
                + counts[:, :, None, None] * (delta[:, :, None] * delta[:, None, :])[None]
            )
            second[:] = np.triu(moments).reshape(len(lanes), -1)
        elif self.statistic == "diag":
            second += (-2.0 * first * delta[None] + counts[:, :, None] * delta[None] ** 2).reshape(
                len(lanes), -1)
        first -= counts[:, :, None] * delta[None]
        new.lanes = lanes
        return new

    def recentred_to_model(self, model):
        """These statistics about a model's means and tied centre (see :meth:`of_model`).

        What online EM needs before adding statistics of the next E-step:
        ``running.recentred_to_model(model) + SufficientStatistics.of_model(model).add(...)``.

        Parameters
        ----------
        model : fastem._em.ModelArrays

        Returns
        -------
        SufficientStatistics
        """
        return self.recentred(model.means, model.tied_centre())

    # -- parameters --------------------------------------------------------
    def m_step(self, reg_covar, total_weight=None, dtype=None):
        """New mixture parameters from these statistics (the engine's M-step).

        Parameters
        ----------
        reg_covar : float
            Added to the diagonal of every covariance.
        total_weight : float, default=None
            What the weights are divided by: None normalises the floored
            counts to sum to one, as an EM step does; scikit-learn's
            initialisation divides by the number of rows instead.
        dtype : dtype, default=None
            The data's dtype, for the error message (float32 data get
            scikit-learn's float32 hint).

        Returns
        -------
        GaussianParameters

        Raises
        ------
        ValueError
            If a covariance is not positive definite, or these statistics
            keep no second-order statistic (``covariance_type=None``).
        """
        if self.covariance_type is None:
            raise ValueError("statistics without a covariance type have no M-step")
        counts, means, covariances, factors = m_step_from(
            self.flat(), self.centres, self.tied_centre, self.covariance_type, reg_covar, dtype)
        weights = _engine.normalised_weights(counts) if total_weight is None else counts / total_weight
        return GaussianParameters(weights, means, covariances, factors)

    def __repr__(self):
        return (
            f"SufficientStatistics({self.covariance_type!r}, n_components={self.n_components}, "
            f"n_features={self.n_features}, total_weight={self.total_weight!r}, "
            f"next_chunk={self.next_chunk})"
        )


def _symmetric(upper):
    """Square blocks with their lower triangles filled from the upper ones."""
    lower = np.tril(np.swapaxes(upper, -1, -2), -1)
    return np.triu(upper) + lower
