"""``GaussianMixtureImputer``: a Gaussian mixture fitted to data with gaps, as a transformer.

``GaussianMixture(missing="em")`` fits the observed-data likelihood and
``GaussianMixture.impute`` fills each gap with its conditional expectation;
this module wraps the two in scikit-learn's transformer conventions
(``fit``/``transform``/``fit_transform``, ``get_feature_names_out``), so the
fill can stand in a ``Pipeline`` where ``SimpleImputer`` or ``IterativeImputer``
would.  scikit-learn is not imported (only its tags hook imports it, and only
scikit-learn calls that).
"""
import warnings

import numpy as np

from fastem._base import EMEstimator
from fastem._gaussian_mixture import GaussianMixture
from fastem._validation import (
    GAUSSIAN_MIXTURE_PARAMETERS,
    check_feature_names,
    check_parameters,
)
from fastem.exceptions import not_fitted_error

__all__ = ["GaussianMixtureImputer"]


class GaussianMixtureImputer:
    """Fill missing values (NaN) with their conditional expectation under a Gaussian mixture.

    ``fit`` fits ``GaussianMixture(missing="em")`` to X: exact EM for the
    likelihood of the observed values, so rows with gaps count in full and
    nothing is imputed before fitting.  ``transform`` replaces each NaN by
    ``sum_k P(k | x_o) E[x_m | x_o, k]``, the mixture's conditional mean of
    the missing values given the row's observed ones, and keeps every
    observed value unchanged.  A row with no observed value gets the
    mixture's mean.  With ``n_components=1`` this is the conditional mean
    under one multivariate Gaussian (a linear regression of each gap on the
    observed values); more components follow clusters and non-linear shapes.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Only "full" and "tied" model correlations between features, which is
        what lets an observed feature inform a missing one *within* a
        component; with "diag" and "spherical" the fill uses the observed
        values only through ``P(k | x_o)``.
    tol : float, default=1e-3
        EM stops when the mean observed-data log-likelihood per row changes
        by less than `tol`.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance.
    max_iter : int, default=100
        EM iterations per initialisation.
    n_init : int, default=1
        Initialisations; the one with the highest likelihood is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default="kmeans"
        How EM starts, from the rows with their gaps provisionally filled
        with the column means (see :class:`fastem.GaussianMixture`).
    weights_init, means_init, precisions_init : array-like, default=None
        Initial parameters, as for :class:`fastem.GaussianMixture`.
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
    verbose_interval : int, default=10
    n_threads : int or None, default=None
        OpenMP threads for the kernels (None: OpenMP's current limit).
        Results do not depend on it.

    Attributes
    ----------
    gaussian_mixture_ : fastem.GaussianMixture
        The fitted mixture (``missing="em"``).  Its
        ``impute(X, return_std=True)`` also gives the conditional standard
        deviation of every filled value.
    n_iter_ : int
        EM iterations of the kept initialisation (``gaussian_mixture_.n_iter_``).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when X had string column names (a pandas DataFrame).

    See Also
    --------
    fastem.GaussianMixture.impute : the fill, with its standard deviations.

    Notes
    -----
    Values are treated as missing at random: whether a value is missing may
    depend on the row's observed values, not on the missing value itself.
    +/-inf is an error, not a missing value.  A column with no observed value
    in the training data cannot be filled and is a ``ValueError``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastem import GaussianMixtureImputer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], size=500)
    >>> X[::4, 1] = np.nan
    >>> filled = GaussianMixtureImputer(random_state=0).fit_transform(X)
    >>> bool(np.isnan(filled).any())
    False
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
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.n_threads = n_threads

    # scikit-learn's parameter protocol (parameters read from __init__'s
    # signature), taken from the estimators' base rather than written twice.
    # The classmethod object itself: EMEstimator._get_param_names would be
    # bound to EMEstimator and read its signature instead of ours.
    _get_param_names = vars(EMEstimator)["_get_param_names"]
    get_params = EMEstimator.get_params
    set_params = EMEstimator.set_params
    __repr__ = EMEstimator.__repr__

    def __sklearn_tags__(self):
        # Only scikit-learn calls this, so importing it here adds no dependency.
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(
            estimator_type=None,
            target_tags=TargetTags(required=False),
            transformer_tags=TransformerTags(preserves_dtype=["float64", "float32"]),
            input_tags=InputTags(two_d_array=True, allow_nan=True),
            requires_fit=True,
        )

    def __sklearn_is_fitted__(self):
        return hasattr(self, "gaussian_mixture_")

    def _check_is_fitted(self):
        if not self.__sklearn_is_fitted__():
            raise not_fitted_error(self)

    # ------------------------------------------------------------------
    def fit(self, X, y=None, sample_weight=None):
        """Fit the Gaussian mixture to the observed values of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NaN marks a missing value.  float32 stays float32.
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights, as in :meth:`fastem.GaussianMixture.fit`.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For infinite values, a column with no observed value, or fewer
            rows than components (the mixture's messages).
        fastem.InvalidParameterError
            For a parameter out of its range, naming this class.
        """
        # Checked here so that the message names the imputer, not the mixture inside.
        check_parameters(self, GAUSSIAN_MIXTURE_PARAMETERS)
        # Every parameter of the imputer is the mixture's, passed on unchanged.  Left
        # out of the imputer: warm_start (each fit starts afresh), callback, and
        # partial_fit's learning_* schedule.
        mixture = GaussianMixture(missing="em", **self.get_params(deep=False))
        mixture.fit(X, sample_weight=sample_weight)
        self.gaussian_mixture_ = mixture
        self.n_iter_ = mixture.n_iter_
        self.n_features_in_ = mixture.n_features_in_
        # The mixture recorded X's column names (or their absence); ours are the same.
        if hasattr(mixture, "feature_names_in_"):
            self.feature_names_in_ = mixture.feature_names_in_
        else:
            self.__dict__.pop("feature_names_in_", None)
        return self

    def transform(self, X):
        """Fill the missing values of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)
            NaN marks a missing value.

        Returns
        -------
        X_filled : ndarray of shape (n_samples, n_features_in_)
            A copy of X (float32 for float32 input, float64 otherwise) with
            every NaN replaced by its conditional expectation given the
            row's observed values; observed values are unchanged, bit for
            bit.  A DataFrame after ``set_output(transform="pandas")``.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        ValueError
            If X has another number of features (or other column names) than
            at fit, or holds infinite values.
        """
        self._check_is_fitted()
        # Column names and count checked here, so that the messages name the imputer.
        check_feature_names(self, X, reset=False)
        if not hasattr(X, "shape"):
            X = _as_array(X)
        shape = getattr(X, "shape", ())
        n_features = shape[1] if len(shape) == 2 else None
        if n_features is not None and n_features != self.n_features_in_:
            raise ValueError(
                f"X has {n_features} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        with warnings.catch_warnings():
            # The same column-name warning, already given above in the imputer's name.
            warnings.filterwarnings("ignore", message=r"X .*feature names, but GaussianMixture was fitted",
                                    category=UserWarning)
            filled = self.gaussian_mixture_.impute(X)
        if getattr(self, "_sklearn_output_config", {}).get("transform", "default") == "pandas":
            import pandas as pd

            return pd.DataFrame(filled, columns=self.get_feature_names_out(),
                                index=getattr(X, "index", None))
        return filled

    def fit_transform(self, X, y=None, sample_weight=None):
        """Fit to X, then fill its missing values.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        X_filled : ndarray of shape (n_samples, n_features)
            As :meth:`transform` returns it.
        """
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def set_output(self, *, transform=None):
        """Choose what :meth:`transform` and :meth:`fit_transform` return, as scikit-learn does.

        ``Pipeline.set_output`` and ``ColumnTransformer.set_output`` call it
        on every step.

        Parameters
        ----------
        transform : {"default", "pandas"} or None, default=None
            "default": NumPy arrays; "pandas": DataFrames whose columns are
            :meth:`get_feature_names_out` and whose index is X's (when X is
            a DataFrame); None: leave the choice as it is.

        Returns
        -------
        self
        """
        if transform is None:
            return self
        if transform not in ("default", "pandas"):
            raise ValueError(f"GaussianMixtureImputer.set_output: transform must be 'default', "
                             f"'pandas' or None, got {transform!r}")
        # scikit-learn's attribute name: its clone() copies the choice to the clone.
        self._sklearn_output_config = {"transform": transform}
        return self

    def get_feature_names_out(self, input_features=None):
        """The names of the output features: the input's, since imputing keeps the columns.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            None: ``feature_names_in_`` when fitted with column names,
            ``["x0", "x1", ...]`` otherwise.  Given: must match
            ``feature_names_in_`` (when set) and have ``n_features_in_`` names.

        Returns
        -------
        ndarray of str objects, shape (n_features_in_,)
        """
        self._check_is_fitted()
        fitted = getattr(self, "feature_names_in_", None)
        if input_features is None:
            if fitted is not None:
                return np.asarray(fitted, dtype=object)
            return np.asarray([f"x{j}" for j in range(self.n_features_in_)], dtype=object)
        names = np.asarray(input_features, dtype=object)
        if fitted is not None and (len(names) != len(fitted) or np.any(names != fitted)):
            raise ValueError("input_features is not equal to feature_names_in_")
        if len(names) != self.n_features_in_:
            raise ValueError(
                f"input_features should have length equal to number of features "
                f"({self.n_features_in_}), got {len(names)}"
            )
        return names


def _as_array(X):
    """Nested lists (or any array-like without a shape) as an array, so that its
    columns can be counted; X unchanged if NumPy cannot convert it, for the
    mixture's own checks to report."""
    try:
        return np.asarray(X)
    except (ValueError, TypeError):   # ragged rows, objects NumPy cannot read
        return X
