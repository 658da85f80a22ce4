"""What ``fastem bench`` needs beyond fastem, and the one error it reports.

scikit-learn, the reference, is needed to run at all; matplotlib only to draw
the chart; daal4py never (it is timed when it happens to be installed).  Each
is imported only when a benchmark runs or a chart is drawn, so
``fastem.bench`` itself imports with none of them.
"""
import importlib
import warnings

__all__ = ["BenchError", "INSTALL_HINT", "check_requirements", "import_daal4py"]

INSTALL_HINT = 'pip install "fastem[bench]"'


class BenchError(ValueError):
    """A bad option or a missing requirement, reported as one line (exit status 2)."""


def check_requirements(plot=False):
    """Fail early, with the command that fixes it, when a needed package is missing.

    Parameters
    ----------
    plot : bool
        Whether a chart will be drawn (matplotlib is then needed).

    Raises
    ------
    BenchError
    """
    try:
        importlib.import_module("sklearn.mixture")
    except ImportError:
        raise BenchError(
            f"fastem bench compares with scikit-learn, which is not installed: {INSTALL_HINT} "
            '(or pip install "scikit-learn>=1.6")'
        ) from None
    if plot:
        try:
            importlib.import_module("matplotlib")
        except ImportError:
            raise BenchError(
                f"--plot needs matplotlib, which is not installed: {INSTALL_HINT} "
                "(or pip install matplotlib)"
            ) from None


def import_optional(name):
    """Module `name`, or None when it is not installed; its import warnings silenced.

    Parameters
    ----------
    name : str

    Returns
    -------
    module or None
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except ImportError:
        return None


def import_daal4py():
    """daal4py, or None when it is not installed (it is never a requirement).

    Returns
    -------
    module or None
    """
    return import_optional("daal4py")
