"""Small synthetic data sets with known parameters, for examples, tests and the CLI."""
from typing import NamedTuple

import numpy as np

__all__ = ["MixtureParameters", "motivating_example"]


class MixtureParameters(NamedTuple):
    """True parameters of a one-dimensional Gaussian mixture, components sorted by mean.

    Attributes
    ----------
    weights : ndarray of shape (n_components,), float64
    means : ndarray of shape (n_components,), float64
    sigmas : ndarray of shape (n_components,), float64
        Standard deviations (not variances).
    """

    weights: np.ndarray
    means: np.ndarray
    sigmas: np.ndarray


def motivating_example(n_samples=100_000, random_state=None):
    """Draw from the mixture that motivated fastem: 0.6 N(2, 4^2) + 0.4 N(9, 2^2).

    The two components overlap enough that EM needs a few dozen iterations, and
    are far enough apart that their parameters are identifiable, which makes the
    sample a quick end-to-end check that a fit recovers what generated it.

    Parameters
    ----------
    n_samples : int, default=100000
        Number of points to draw.  Each point picks its component at random,
        so the component counts themselves vary around 0.6 / 0.4.
    random_state : int, numpy.random.Generator or None, default=None
        Seed (or generator) for ``numpy.random.default_rng``.

    Returns
    -------
    X : ndarray of shape (n_samples, 1), float64
        The sample.
    params : MixtureParameters
        The true weights, means and sigmas, sorted by mean.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    params = MixtureParameters(
        weights=np.array([0.6, 0.4]),
        means=np.array([2.0, 9.0]),
        sigmas=np.array([4.0, 2.0]),
    )
    rng = np.random.default_rng(random_state)
    labels = rng.choice(len(params.weights), size=n_samples, p=params.weights)
    X = params.means[labels] + params.sigmas[labels] * rng.standard_normal(n_samples)
    return X.reshape(-1, 1), params
