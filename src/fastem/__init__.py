"""fastem: fast, reproducible EM for Gaussian mixtures."""
from fastem._openmp_info import built_with_openmp, effective_n_threads, openmp_disabled_by_build

__version__ = "0.1.0"
