"""Fitting allocates nothing that grows with n_samples (no (n, K) or (n, D) temporaries).

tracemalloc sees every NumPy allocation; the kernels' own per-thread buffers
(C calloc) are bounded by design: lanes x statistics plus threads x chunk.
"""
import tracemalloc
import warnings

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
