"""The nogil EM layer (fastem._em) that both the estimator and the C-level API run."""
import numpy as np
import pytest
from scipy import stats as sps
from threadpoolctl import threadpool_limits

from fastem import _em

from _helpers import random_model

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
FEATURE_COUNTS = (3, 12, 20)   # column path, one-GEMM full path, per-component BLAS path


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(1, "blas"):
        yield


def _random_model(rng, covariance_type, n_components, n_features):
    """A model with well-conditioned random covariances, and those covariances per component."""
    k, d = n_components, n_features
    model, covariances = random_model(rng, covariance_type, k, d)
    if covariance_type == "full":
        per_component = covariances
    elif covariance_type == "tied":
        per_component = np.repeat(covariances[None], k, axis=0)
    elif covariance_type == "diag":
        per_component = np.array([np.diag(c) for c in covariances])
    else:
        per_component = np.array([c * np.eye(d) for c in covariances])
    return model, per_component


def _data(rng, n_features, n_rows=700):
    return rng.normal(scale=2.0, size=(n_rows, n_features))


@pytest.mark.parametrize("n_features", FEATURE_COUNTS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_densities_match_scipy(rng, covariance_type, n_features):
    model, covs = _random_model(rng, covariance_type, 4, n_features)
    X = _data(rng, n_features)
    expected = np.column_stack([
        np.log(w) + sps.multivariate_normal(m, c).logpdf(X)
        for w, m, c in zip(model.weights, model.means, covs)
    ])
    np.testing.assert_allclose(model.log_densities(X), expected, rtol=1e-10)


@pytest.mark.parametrize("n_features", FEATURE_COUNTS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_responsibilities_of_log_densities_equal_score(rng, covariance_type, n_features):
    model, _ = _random_model(rng, covariance_type, 5, n_features)
    X = _data(rng, n_features)
    resp, log_prob = _em.responsibilities(model.log_densities(X))
    score_log_prob, score_resp, labels = model.score(X, want_resp=True, want_labels=True)
    np.testing.assert_allclose(resp, score_resp, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(log_prob, score_log_prob, rtol=1e-13)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-14)
    np.testing.assert_array_equal(labels, np.argmax(model.log_densities(X), axis=1))


def test_responsibilities_of_a_row_with_no_density():
    resp, log_prob = _em.responsibilities([[-np.inf, -np.inf], [0.0, np.log(3.0)]])
    assert log_prob[0] == -np.inf and np.all(resp[0] == 0.0)
    np.testing.assert_allclose(resp[1], [0.25, 0.75], rtol=1e-15)
    np.testing.assert_allclose(log_prob[1], np.log(4.0), rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_features", FEATURE_COUNTS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_strided_rows_give_the_same_bits(rng, covariance_type, n_features, dtype):
    # Rows `ldx` apart with extra columns the kernels must skip.
    model, _ = _random_model(rng, covariance_type, 3, n_features)
    wide = np.ascontiguousarray(_data(rng, n_features + 5, n_rows=3000).astype(dtype))
    wide[:, n_features:] = np.nan   # would poison any result that read them
    X = np.ascontiguousarray(wide[:, :n_features])
    weights = rng.uniform(size=len(X))
    for n_threads in (1, 2):
        np.testing.assert_array_equal(model.accumulate(wide, weights, n_threads),
                                      model.accumulate(X, weights, n_threads))
        np.testing.assert_array_equal(model.log_densities(wide, n_threads), model.log_densities(X, n_threads))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_em_step_is_accumulate_then_m_step(rng, covariance_type):
    first, _ = _random_model(rng, covariance_type, 3, 12)
    second = _em.ModelArrays(covariance_type, first.weights, first.means, first.precisions_cholesky,
                             first.covariances)
    X = _data(rng, 12)
    stats = first.accumulate(X, None, 2)
    first.m_step(stats, 1e-6)
    bound = second.em_step(X, None, _em.sum_weights(None, len(X)), 1e-6, 2)
    assert bound == stats[0] / len(X)
    for name in ("weights", "means", "covariances", "precisions_cholesky"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_em_steps_never_decrease_the_bound(rng, covariance_type):
    model, _ = _random_model(rng, covariance_type, 4, 5)
    X = np.concatenate([rng.normal(size=(400, 5)) + shift for shift in (-2.0, 0.0, 3.0)])
    total = _em.sum_weights(None, len(X))
    bounds = [model.em_step(X, None, total, 1e-6, 2) for _ in range(30)]
    assert np.all(np.diff(bounds) >= -1e-12 * np.abs(bounds[1:]))


def test_m_step_checks_and_leaves_the_model_on_error(rng):
    model, _ = _random_model(rng, "full", 2, 3)
    before = [np.copy(getattr(model, n)) for n in ("weights", "means", "covariances")]
    with pytest.raises(ValueError, match="wrong length"):
        model.m_step(np.zeros(3), 1e-6)
    stats = model.accumulate(np.repeat(_data(rng, 3)[:1], 10, axis=0))   # one distinct point
    with pytest.raises(ValueError, match="reg_covar"):
        model.m_step(stats, 0.0)
    for name, old in zip(("weights", "means", "covariances"), before):
        np.testing.assert_array_equal(getattr(model, name), old)


def test_too_few_columns_is_an_error(rng):
    model, _ = _random_model(rng, "diag", 2, 4)
    with pytest.raises(ValueError, match="fewer columns"):
        model.log_densities(_data(rng, 3))


def test_precision_factors_reject_indefinite_and_non_finite():
    with pytest.raises(ValueError, match="reg_covar"):
        _em.precision_factors(np.array([[[1.0, 2.0], [2.0, 1.0]]]), "full")
    with pytest.raises(ValueError, match="reg_covar"):
        _em.precision_factors(np.array([[1.0, np.nan]]), "diag")
    factor = _em.precision_factors(np.array([[4.0, 2.0], [2.0, 3.0]]), "tied")
    np.testing.assert_allclose(factor @ factor.T, np.linalg.inv([[4.0, 2.0], [2.0, 3.0]]), rtol=1e-14)
    assert factor[1, 0] == 0.0


@pytest.mark.parametrize("covariance_type, shape", [
    ("full", (3, 3)), ("full", (2, 3, 4)), ("tied", (2, 2, 2)), ("diag", (3,)), ("spherical", (2, 2)),
])
def test_precision_factors_reject_wrong_shapes(covariance_type, shape):
    with pytest.raises(ValueError, match="do not fit"):
        _em.precision_factors(np.ones(shape), covariance_type)


@pytest.mark.parametrize("change", ["negative weight", "nan weight", "lower factor", "zero on the diagonal"])
def test_invalid_models_are_rejected_not_scored(rng, change):
    model, _ = _random_model(rng, "full", 3, 4)
    weights, factors = np.copy(model.weights), np.copy(model.precisions_cholesky)
    if change == "negative weight":
        weights[0] = -0.5
    elif change == "nan weight":
        weights[1] = np.nan
    elif change == "lower factor":
        factors[0, 2, 0] = 0.1
    else:
        factors[2, 1, 1] = 0.0
    bad = _em.ModelArrays("full", weights, model.means, factors, model.covariances)
    X = _data(rng, 4)
    for call in (lambda: bad.score(X), lambda: bad.log_densities(X), lambda: bad.accumulate(X)):
        with pytest.raises(ValueError, match="invalid arguments"):
            call()


@pytest.mark.parametrize("total, reg_covar", [(0.0, 1e-6), (-1.0, 1e-6), (np.nan, 1e-6), (10.0, -1.0), (10.0, np.nan)])
def test_em_step_rejects_bad_totals_and_regularisation(rng, total, reg_covar):
    model, _ = _random_model(rng, "diag", 2, 3)
    before = np.copy(model.means)
    with pytest.raises(ValueError, match="invalid arguments"):
        model.em_step(_data(rng, 3), None, total, reg_covar, 1)
    np.testing.assert_array_equal(model.means, before)


def test_zero_rows_give_empty_outputs(rng):
    model, _ = _random_model(rng, "tied", 2, 3)
    assert model.log_densities(np.empty((0, 3))).shape == (0, 2)
    log_prob, _, _ = model.score(np.empty((0, 3)))
    assert log_prob.shape == (0,)


def test_absurd_thread_counts_are_capped_not_obeyed(rng):
    # A million threads would mean a million scratch buffers; the kernels cap the
    # team (and give the same bits as one thread, as for any count).
    model, _ = _random_model(rng, "full", 3, 4)
    X = _data(rng, 4, n_rows=50_000)
    np.testing.assert_array_equal(model.accumulate(X, None, 1_000_000), model.accumulate(X, None, 1))
    np.testing.assert_array_equal(model.score(X, n_threads=1_000_000)[0], model.score(X, n_threads=1)[0])


def test_output_pointers_never_point_into_a_copy():
    # reshape(-1) of a non-contiguous array is a copy: a kernel writing through a
    # pointer into it would write into a temporary and the caller see nothing.
    from fastem._testing import _out_pointer_fills
    np.testing.assert_array_equal(_out_pointer_fills(np.zeros((3, 4)), 2.0), np.full((3, 4), 2.0))
    for array in (np.zeros((4, 3)).T, np.zeros((3, 8))[:, ::2], np.zeros((3, 4), dtype=np.float32)):
        with pytest.raises(ValueError, match="C-contiguous float64"):
            _out_pointer_fills(array, 2.0)


def test_em_step_refuses_x_narrower_than_the_model(rng):
    # The same clear message as accumulate and log_densities, not a bare status.
    model, _ = _random_model(rng, "diag", 3, 4)
    X = _data(rng, 3)
    with pytest.raises(ValueError, match="fewer columns than the model has features"):
        model.em_step(X, None, float(len(X)), 1e-6, 1)


@pytest.mark.parametrize("split", [0, 1, 333, 700])
def test_sum_weights_continues_from_a_start(rng, split):
    # A running total across row blocks has the bits of one sum over all rows.
    w = rng.uniform(0.0, 3.0, size=700) * 10.0 ** rng.integers(-8, 8, size=700)
    head = _em.sum_weights(w[:split], split)
    assert _em.sum_weights(w[split:], 700 - split, start=head) == _em.sum_weights(w, 700)
    assert _em.sum_weights(w, 700, start=0.0) == _em.sum_weights(w, 700)
    ones = _em.sum_weights(None, split)
    assert _em.sum_weights(None, 700 - split, start=ones) == _em.sum_weights(None, 700) == 700.0
    assert _em.sum_weights(None, 3, start=0.5) == 3.5
