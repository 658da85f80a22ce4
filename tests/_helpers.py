"""Helpers shared by the test modules (plain functions, no fixtures)."""
import numpy as np

from fastem import _em

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
PARAMETER_NAMES = [
    "weights_",
    "means_",
    "covariances_",
    "precisions_cholesky_",
    "precisions_",
]
RTOL = 1e-9


def assert_agree(actual, desired, what, rtol=RTOL):
    """Element-wise agreement to `rtol`, with an absolute floor of rtol * max|desired|.

    Why the floor: rounding error in a computed entry is proportional to the
    size of the terms that were added up to make it, not to the entry itself.
    An off-diagonal covariance or precision-Cholesky entry (or a mean
    coordinate, or a log-density) that cancels to nearly 0 still carries an
    absolute error of order eps times the array's typical magnitude, so a pure
    relative test would demand more digits than either implementation has.
    Exact zeros (the lower triangle of precisions_cholesky_) stay exact zeros
    in both, so the floor hides nothing there.
    """
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, f"{what}: shape {actual.shape} != {desired.shape}"
    finite = desired[np.isfinite(desired)]
    scale = np.max(np.abs(finite)) if finite.size else 0.0
    np.testing.assert_allclose(
        actual, desired, rtol=rtol, atol=rtol * scale, err_msg=what
    )


def initial_parameters(rng, centers, covariance_type):
    """Initial weights, means and precisions near (not at) the blobs' truth.

    Returned as fresh arrays on every call: scikit-learn validates and stores
    them back on the estimator, so the two estimators must not share objects.
    """
    n_components, n_features = centers.shape
    weights = rng.uniform(0.7, 1.3, size=n_components)
    weights /= weights.sum()
    means = centers + rng.uniform(-0.4, 0.4, size=centers.shape)

    def spd_precision():
        q, _ = np.linalg.qr(rng.normal(size=(n_features, n_features)))
        p = (q * rng.uniform(0.6, 1.6, size=n_features)) @ q.T
        return (p + p.T) / 2.0  # exactly symmetric, as scikit-learn checks

    if covariance_type == "full":
        precisions = np.stack([spd_precision() for _ in range(n_components)])
    elif covariance_type == "tied":
        precisions = spd_precision()
    elif covariance_type == "diag":
        precisions = rng.uniform(0.6, 1.6, size=(n_components, n_features))
    else:
        precisions = rng.uniform(0.6, 1.6, size=n_components)
    return weights, means, precisions


def init_kwargs(init):
    """``weights_init``/``means_init``/``precisions_init`` keywords, as fresh copies."""
    weights, means, precisions = init
    return dict(
        weights_init=weights.copy(), means_init=means.copy(), precisions_init=precisions.copy()
    )


def n_free_parameters(covariance_type, n_components, n_features):
    """Free parameters of a Gaussian mixture, counted from the model's definition."""
    k, d = n_components, n_features
    covariance = {
        "full": k * d * (d + 1) // 2,
        "tied": d * (d + 1) // 2,
        "diag": k * d,
        "spherical": k,
    }[covariance_type]
    return covariance + k * d + (k - 1)


def assert_bounds_agree(actual, desired, what, rtol=RTOL):
    """Lower bounds, compared one by one (each is its own scalar: no shared scale).

    A mean log-likelihood is a sum of O(1) terms (D/2 log 2 pi, log-determinants,
    log-weights); should one land near 0, its rounding error is still of the
    order of those terms, hence the absolute floor of rtol.
    """
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, f"{what}: shape {actual.shape} != {desired.shape}"
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol, err_msg=what)


def log_density_scale(model):
    """Size of the constant terms of a log-density under `model`.

    log p(x) = log w_k - D/2 log(2 pi) + log det(precision chol_k) - |whitened|^2 / 2:
    a value near 0 comes from these terms cancelling, so its rounding error is
    of their size, not its own.
    """
    chol = np.asarray(model.precisions_cholesky_, dtype=np.float64)
    n_features = model.means_.shape[1]
    if model.covariance_type == "full":
        log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    elif model.covariance_type == "tied":
        log_det = np.log(np.diagonal(chol)).sum(keepdims=True)
    elif model.covariance_type == "diag":
        log_det = np.log(chol).sum(axis=1)
    else:
        log_det = n_features * np.log(chol)
    log_w = np.log(np.asarray(model.weights_, dtype=np.float64))
    return 0.5 * n_features * np.log(2 * np.pi) + np.max(np.abs(log_det)) + np.max(np.abs(log_w))


def assert_log_densities_agree(actual, desired, model, what, rtol=RTOL):
    """Per-sample log-densities: relative to each value, floored at the constant terms."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, f"{what}: shape {actual.shape} != {desired.shape}"
    np.testing.assert_allclose(
        actual, desired, rtol=rtol, atol=rtol * log_density_scale(model), err_msg=what
    )


def random_model(rng, covariance_type, n_components, n_features):
    """An ``_em.ModelArrays`` with random weights and means and well-conditioned
    random covariances, and those covariances."""
    k, d = n_components, n_features
    weights = rng.dirichlet(np.ones(k) * 3)
    means = rng.normal(scale=2.0, size=(k, d))
    if covariance_type in ("full", "tied"):
        blocks = []
        for _ in range(k if covariance_type == "full" else 1):
            a = rng.normal(size=(d, d))
            blocks.append(a @ a.T / d + np.eye(d))
        covariances = np.array(blocks) if covariance_type == "full" else blocks[0]
    elif covariance_type == "diag":
        covariances = rng.uniform(0.5, 2.0, size=(k, d))
    else:
        covariances = rng.uniform(0.5, 2.0, size=k)
    factors = _em.precision_factors(covariances, covariance_type)
    return _em.ModelArrays(covariance_type, weights, means, factors, covariances), covariances


def assert_same_fit(actual, desired, names):
    """The fitted attributes `names` of two estimators: equal bit for bit, and of one dtype."""
    for name in names:
        a, d = np.asarray(getattr(actual, name)), np.asarray(getattr(desired, name))
        assert np.array_equal(a, d), f"{name} differs"
        assert a.dtype == d.dtype, f"{name}: dtype differs"
