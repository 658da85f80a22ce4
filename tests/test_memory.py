"""Fitting allocates nothing that grows with n_samples (no (n, K) or (n, D) temporaries).

tracemalloc sees every NumPy allocation; the kernels' own per-thread buffers
(C calloc) are bounded by design: lanes x statistics plus threads x chunk, and
the last test checks them through the resident set size.
"""
import importlib.util
import sys
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastem

# X is 1e6 x 4 float64 = 32 MB: 5 % of it is 1.6 MB, far below one float64
# vector per row (8 MB), let alone an (n, K) array.
N_SAMPLES, N_FEATURES, N_COMPONENTS = 1_000_000, 4, 3


@pytest.fixture(scope="module")
def big_X():
    rng = np.random.RandomState(0)
    centers = rng.randn(N_COMPONENTS, N_FEATURES) * 4
    return rng.randn(N_SAMPLES, N_FEATURES) + centers[rng.randint(N_COMPONENTS, size=N_SAMPLES)]


def _peak_fit_bytes(X, **params):
    gm = fastem.GaussianMixture(N_COMPONENTS, max_iter=3, tol=0.0, random_state=0, **params)
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fastem.ConvergenceWarning)
            gm.fit(X)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random"])
def test_fit_peak_memory_is_a_small_fraction_of_X(big_X, covariance_type, init_params):
    # random_from_data is left out on purpose: it draws its rows with
    # RandomState.choice(n, k, replace=False), as scikit-learn does, so that the
    # same random_state gives the same start; that call permutes all n rows.
    peak = _peak_fit_bytes(big_X, covariance_type=covariance_type, init_params=init_params)
    assert peak < 0.05 * big_X.nbytes, f"peak {peak} bytes beyond X ({peak / big_X.nbytes:.1%} of X)"


def test_float32_input_is_never_copied_to_float64(big_X):
    X32 = big_X.astype(np.float32)
    peak = _peak_fit_bytes(X32, covariance_type="full")
    assert peak < 0.05 * X32.nbytes, f"peak {peak} bytes beyond X ({peak / X32.nbytes:.1%} of X)"


# --------------------------------------------------------------- resident memory
# tracemalloc misses the kernels' C buffers; benchmarks/memory_rss.py reads the
# process's peak RSS instead, in a fresh interpreter.  Full covariances have the
# largest per-thread statistics (K x D x D per thread).  At 1e6 x 8 float64 (64
# MB) the bound is 3.2 MB, about five times what a fit measures (~0.6 MB,
# mostly malloc arenas of the OpenMP threads), so the check is not flaky.
_RSS_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "memory_rss.py"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.skipif(not _RSS_SCRIPT.exists(), reason="benchmarks/ is not beside the tests")
def test_fit_peak_resident_memory_is_a_small_fraction_of_X():
    spec = importlib.util.spec_from_file_location("memory_rss", _RSS_SCRIPT)
    memory_rss = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(memory_rss)
    r = memory_rss.measure("full", 1_000_000, 8, 8, n_threads=2)
    if not r["hwm_reset"]:
        pytest.skip("this kernel does not let a process reset its RSS high-water mark")
    assert r["beyond"] < 0.05 * r["x_bytes"], (
        f"peak RSS {r['beyond']} bytes beyond X ({r['beyond'] / r['x_bytes']:.1%} of X)"
    )
