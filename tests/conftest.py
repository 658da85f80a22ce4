"""Shared fixtures: one seed for the whole run, printed in the report header.

Set FASTEM_TEST_SEED to replay a failure seen with another seed (the header of
every run says which seed it used). Every random draw in the tests comes from a
generator built on this seed, so a run is reproducible from its header alone.
"""
import os

import numpy as np
import pytest

DEFAULT_SEED = 20240611


def _session_seed():
    raw = os.environ.get("FASTEM_TEST_SEED", "").strip()
    if not raw:
        return DEFAULT_SEED
    try:
        return int(raw)
    except ValueError:
        raise pytest.UsageError(f"FASTEM_TEST_SEED must be an integer, got {raw!r}") from None


def pytest_report_header(config):
    return f"fastem test seed: {_session_seed()} (set FASTEM_TEST_SEED to change it)"


@pytest.fixture
def seed():
    """The run's seed, as an int (for APIs that take ``random_state=int``)."""
    return _session_seed()


@pytest.fixture
def rng(seed):
    """A fresh NumPy generator on the run's seed, one per test."""
    return np.random.default_rng(seed)


def _random_spd(rng, n_features, low=0.5, high=1.5):
    """A random SPD matrix whose eigenvalues lie in [low, high] (anisotropic, rotated)."""
    q, _ = np.linalg.qr(rng.normal(size=(n_features, n_features)))
    return (q * rng.uniform(low, high, size=n_features)) @ q.T


def _separated_centers(rng, n_components, n_features, min_dist):
    """Centres at least `min_dist` apart, kept near the origin (|coord| <~ 3 min_dist)."""
    if n_components == 1:
        return rng.uniform(-1.0, 1.0, size=(1, n_features))
    # Points on a line through a random direction, jittered sideways: always
    # feasible (also for D=1) and never farther out than needed.
    direction = rng.normal(size=n_features)
    direction /= np.linalg.norm(direction)
    offsets = (np.arange(n_components) - (n_components - 1) / 2.0) * (min_dist + 2.0)
    centers = offsets[:, None] * direction[None, :]
    centers += rng.uniform(-0.5, 0.5, size=centers.shape)
    return centers[rng.permutation(n_components)]


@pytest.fixture
def make_blobs(rng):
    """Factory for well-posed mixture data: a few separated anisotropic Gaussian blobs.

    ``make_blobs(n_samples, n_features, n_components, min_dist=8.0)`` returns
    ``(X, labels, centers, covariances)``; every blob gets at least
    ``n_samples // n_components - 1`` rows, so tiny problems stay well defined.
    Separation of ~8 standard deviations keeps EM contractive (not chaotic), so
    two correct implementations stay within rounding of each other.
    """

    def factory(n_samples, n_features, n_components, min_dist=8.0):
        centers = _separated_centers(rng, n_components, n_features, min_dist)
        covariances = np.stack(
            [_random_spd(rng, n_features) for _ in range(n_components)]
        )
        base = n_samples // n_components
        sizes = np.full(n_components, base)
        sizes[: n_samples - base * n_components] += 1
        if n_samples >= 20 * n_components:
            # Unequal sizes so the weights are not trivially uniform.
            shares = rng.uniform(0.6, 1.4, size=n_components)
            sizes = np.floor(shares / shares.sum() * n_samples).astype(int)
            sizes[0] += n_samples - sizes.sum()
        labels = np.repeat(np.arange(n_components), sizes)
        X = np.empty((n_samples, n_features))
        for k in range(n_components):
            chol = np.linalg.cholesky(covariances[k])
            rows = labels == k
            X[rows] = centers[k] + rng.normal(size=(rows.sum(), n_features)) @ chol.T
        order = rng.permutation(n_samples)
        return X[order], labels[order], centers, covariances

    return factory


# Hypothesis profiles for the property and fuzz tests (tests/test_properties.py,
# tests/test_fuzz.py). "default" is what CI runs: few examples, the same ones
# every run (derandomized), so the suite's time is stable and a failure replays.
# "long" is the soak: many fresh random examples, selected with
# FASTEM_HYPOTHESIS_PROFILE=long (the README's development notes give the command).
# No example database: runs leave nothing behind in the clone.
try:
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # hypothesis is in the test extra; without it those tests skip
    pass
else:
    _hypothesis_settings.register_profile(
        "default", max_examples=200, derandomize=True, database=None, print_blob=True)
    _hypothesis_settings.register_profile(
        "long", max_examples=2000, derandomize=False, database=None, print_blob=True)
    _hypothesis_settings.load_profile(os.environ.get("FASTEM_HYPOTHESIS_PROFILE", "default"))
