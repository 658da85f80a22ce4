"""fastem: fast, reproducible EM for Gaussian mixtures and hidden Markov models.

``fastem.GaussianMixture`` is a drop-in for ``sklearn.mixture.GaussianMixture``
whose E-step and M-step statistics are computed in one fused Cython/OpenMP pass
over the data per iteration.  ``fastem.GaussianHMM`` is a drop-in for
``hmmlearn.hmm.GaussianHMM`` on the same engine.
"""
from fastem._gaussian_mixture import GaussianMixture
from fastem.hmm import GaussianHMM
from fastem.impute import GaussianMixtureImputer
from fastem._persistence import load
from fastem._openmp_info import built_with_openmp, effective_n_threads, openmp_disabled_by_build
from fastem.exceptions import ConvergenceWarning, InvalidParameterError, NotFittedError
from fastem.select import SelectionResult, select

__version__ = "0.1.0"


def get_include():
    """Folder holding fastem.h and the .pxd files, for extensions that build against fastem.

    Returns
    -------
    str
        Put it on ``include_dirs`` of a C, C++ or Cython extension that includes
        ``fastem.h`` or cimports ``fastem.kernels``.
    """
    import os

    return os.path.dirname(os.path.abspath(__file__))

__all__ = [
    "GaussianMixture",
    "GaussianMixtureImputer",
    "GaussianHMM",
    "ConvergenceWarning",
    "InvalidParameterError",
    "NotFittedError",
    "built_with_openmp",
    "effective_n_threads",
    "get_include",
    "load",
    "openmp_disabled_by_build",
    "select",
    "SelectionResult",
]
