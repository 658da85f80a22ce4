"""GaussianHMM against hmmlearn 0.3.3, its reference, from identical initial parameters.

Both models are given the same startprob_, transmat_, means_ and covars_ and
``init_params=""``, so every difference comes from the E-step and M-step.
hmmlearn is a test-only dependency (the test extra pins it).
"""
import collections
import logging
import pickle

import numpy as np
import pytest
from hmmlearn import hmm as reference

from _helpers import assert_agree
from fastem import GaussianHMM
from fastem.hmm import ConvergenceMonitor
from fastem.hmm import GaussianHMM as GaussianHMMFromModule

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
IMPLEMENTATIONS = ["log", "scaling"]
RTOL = 1e-8


def _regime_data(rng, n_samples, n_features, n_states=3):
    """Samples of a sticky chain whose states have well separated means."""
    transmat = np.full((n_states, n_states), 0.05 / (n_states - 1))
    np.fill_diagonal(transmat, 0.95)
    centres = 6.0 * np.arange(n_states)[:, None] + rng.normal(size=(n_states, n_features))
    states = np.empty(n_samples, dtype=int)
    states[0] = 0
    for t in range(1, n_samples):
        states[t] = rng.choice(n_states, p=transmat[states[t - 1]])
    return centres[states] + rng.normal(size=(n_samples, n_features))


def _initial(rng, X, n_states, covariance_type):
    d = X.shape[1]
    covars = {
        "spherical": rng.uniform(0.5, 2.0, n_states),
        "diag": rng.uniform(0.5, 2.0, (n_states, d)),
        "full": np.array([np.eye(d) * v + 0.1 for v in rng.uniform(1.0, 2.0, n_states)]),
        "tied": np.eye(d) * 1.5 + 0.2,
    }[covariance_type]
    return {
        "startprob_": rng.dirichlet(np.ones(n_states)),
        "transmat_": rng.dirichlet(np.ones(n_states), size=n_states),
        "means_": X[rng.choice(len(X), n_states, replace=False)],
        "covars_": covars,
    }


def _pair(initial, **params):
    """A fastem model and an hmmlearn model with the same parameters and start."""
    models = (GaussianHMM(init_params="", **params), reference.GaussianHMM(init_params="", **params))
    for model in models:
        for name, value in initial.items():
            setattr(model, name, np.array(value, copy=True))
    return models


def _compact_covars(model):
    covars = model._covars_
    if model.covariance_type == "spherical" and covars.ndim == 2:
        return covars[:, 0]     # hmmlearn repeats a spherical variance per feature
    return covars


def _assert_same_model(ours, theirs, rtol=RTOL):
    assert_agree(ours.startprob_, theirs.startprob_, "startprob_", rtol)
    assert_agree(ours.transmat_, theirs.transmat_, "transmat_", rtol)
    assert_agree(ours.means_, theirs.means_, "means_", rtol)
    assert_agree(_compact_covars(ours), _compact_covars(theirs), "covars", rtol)


CASES = [
    # (n_features, lengths): one sequence, many with a length-1 sequence, and D = 1
    (3, None),
    (2, [120, 1, 60, 19, 1, 99]),
    (1, [150, 150]),
]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_features,lengths", CASES)
def test_fit_agrees_with_hmmlearn(rng, covariance_type, implementation, n_features, lengths):
    X = _regime_data(rng, 300, n_features)
    initial = _initial(rng, X, 3, covariance_type)
    ours, theirs = _pair(initial, n_components=3, covariance_type=covariance_type,
                         implementation=implementation, n_iter=12, tol=1e-4)
    ours.fit(X, lengths)
    theirs.fit(X, lengths)
    _assert_same_model(ours, theirs)
    assert ours.monitor_.iter == theirs.monitor_.iter
    assert ours.monitor_.converged == theirs.monitor_.converged
    assert_agree(list(ours.monitor_.history), list(theirs.monitor_.history), "history", RTOL)
    assert ours.score(X, lengths) == pytest.approx(theirs.score(X, lengths), rel=1e-10)
    log_prob, posteriors = ours.score_samples(X, lengths)
    their_log_prob, their_posteriors = theirs.score_samples(X, lengths)
    assert log_prob == pytest.approx(their_log_prob, rel=1e-10)
    assert_agree(posteriors, their_posteriors, "posteriors", 1e-9)
    for algorithm in ("viterbi", "map"):
        value, path = ours.decode(X, lengths, algorithm=algorithm)
        their_value, their_path = theirs.decode(X, lengths, algorithm=algorithm)
        np.testing.assert_array_equal(path, their_path)
        assert value == pytest.approx(their_value, rel=1e-10)
    np.testing.assert_array_equal(ours.predict(X, lengths), theirs.predict(X, lengths))
    assert_agree(ours.predict_proba(X, lengths), theirs.predict_proba(X, lengths), "proba", 1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_priors_agree_with_hmmlearn(rng, covariance_type):
    """Every prior away from flat: the MAP updates are hmmlearn's."""
    X = _regime_data(rng, 200, 2)
    initial = _initial(rng, X, 3, covariance_type)
    d = X.shape[1]
    covars_prior = {"spherical": 0.3, "diag": 0.3, "full": 0.3 * np.eye(d), "tied": 0.3 * np.eye(d)}
    ours, theirs = _pair(
        initial, n_components=3, covariance_type=covariance_type, n_iter=6, tol=0,
        startprob_prior=2.5, transmat_prior=np.full((3, 3), 1.7), means_prior=0.5,
        means_weight=2.0, covars_prior=covars_prior[covariance_type], covars_weight=4.0)
    ours.fit(X, [50, 150])
    theirs.fit(X, [50, 150])
    _assert_same_model(ours, theirs)


@pytest.mark.parametrize("params", ["st", "mc", "m", "tm", "smc"])
def test_params_subset_agrees_with_hmmlearn(rng, params):
    X = _regime_data(rng, 200, 2)
    initial = _initial(rng, X, 3, "full")
    ours, theirs = _pair(initial, n_components=3, covariance_type="full", n_iter=5, params=params)
    ours.fit(X)
    theirs.fit(X)
    _assert_same_model(ours, theirs)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_covariances_alone_are_updated_about_the_fixed_means(rng, covariance_type):
    """params without "m": hmmlearn then divides by counts it never gathered (its
    covariances blow up); fastem gives the M-step of the equations, checked here."""
    X = _regime_data(rng, 200, 2)
    initial = _initial(rng, X, 3, covariance_type)
    model = _pair(initial, n_components=3, covariance_type=covariance_type, n_iter=1,
                  params="c", covars_prior=0.0)[0]
    posteriors = model.predict_proba(X)
    means = model.means_.copy()
    model.fit(X)
    np.testing.assert_array_equal(model.means_, means)
    counts = posteriors.sum(axis=0)
    scatter = np.einsum("nk,nki,nkj->kij", posteriors, X[:, None] - means, X[:, None] - means)
    expected = {
        "full": scatter / counts[:, None, None],
        "tied": scatter.sum(axis=0) / counts.sum(),
        "diag": np.diagonal(scatter, axis1=1, axis2=2) / counts[:, None],
        "spherical": np.diagonal(scatter, axis1=1, axis2=2).mean(axis=1) / counts,
    }[covariance_type]
    assert_agree(model._covars_, expected, "covars", 1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_initialisation_draws_as_hmmlearn(rng, covariance_type, seed):
    """The Dirichlet draws of "s" and "t" and the covariances of "c" are hmmlearn's."""
    X = _regime_data(rng, 200, 3)
    means = X[:3].copy()
    kwargs = dict(n_components=3, covariance_type=covariance_type, random_state=seed,
                  init_params="stc", n_iter=0)
    ours = GaussianHMM(**kwargs)
    theirs = reference.GaussianHMM(**kwargs)
    ours.means_ = means
    theirs.means_ = means
    ours.fit(X)
    theirs.fit(X)
    np.testing.assert_array_equal(ours.startprob_, theirs.startprob_)
    np.testing.assert_array_equal(ours.transmat_, theirs.transmat_)
    assert_agree(_compact_covars(ours), _compact_covars(theirs), "covars", 1e-12)
    assert ours.monitor_.iter == 0 and len(ours.monitor_.history) == 0


def test_default_fit_finds_the_regimes(rng):
    """From its own initialisation (fastem's k-means), the model finds the chain."""
    X = _regime_data(rng, 600, 2)
    model = GaussianHMM(n_components=3, random_state=0, n_iter=50).fit(X)
    theirs = reference.GaussianHMM(n_components=3, random_state=0, n_iter=50).fit(X)
    # Different k-means seeds, same optimum: compare scores, not state labels.
    assert model.score(X) == pytest.approx(theirs.score(X), rel=1e-4)
    assert len(np.unique(model.predict(X))) >= 2


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_log_likelihood_never_decreases_with_flat_priors(rng, covariance_type, implementation):
    X = _regime_data(rng, 400, 2)
    model = GaussianHMM(n_components=4, covariance_type=covariance_type, covars_prior=0.0,
                        implementation=implementation, n_iter=40, tol=-np.inf, random_state=1)
    model.fit(X, [100, 300])
    history = np.array(model.monitor_.history)
    assert len(history) == 40
    slack = 1e-10 * np.abs(history).max()
    assert np.all(np.diff(history) >= -slack), np.diff(history).min()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_thread_count_does_not_change_a_bit(rng, covariance_type):
    X = _regime_data(rng, 3000, 3)
    cuts = np.sort(rng.choice(np.arange(1, len(X)), size=59, replace=False))
    lengths = np.diff(np.concatenate([[0], cuts, [len(X)]]))
    fits = []
    for n_threads in (1, 2, 3):
        model = GaussianHMM(n_components=4, covariance_type=covariance_type, random_state=0,
                            n_iter=5, n_threads=n_threads).fit(X, lengths)
        fits.append((model, model.score_samples(X, lengths), model.decode(X, lengths)))
    first, (log_prob, posteriors), (value, path) = fits[0]
    for model, (other_log_prob, other_posteriors), (other_value, other_path) in fits[1:]:
        for name in ("startprob_", "transmat_", "means_", "_covars_"):
            np.testing.assert_array_equal(getattr(model, name), getattr(first, name), err_msg=name)
        assert list(model.monitor_.history) == list(first.monitor_.history)
        assert other_log_prob == log_prob and other_value == value
        np.testing.assert_array_equal(other_posteriors, posteriors)
        np.testing.assert_array_equal(other_path, path)


def test_sample_reproduces_transition_frequencies():
    model = GaussianHMM(n_components=3, covariance_type="full")
    model.startprob_ = np.array([0.6, 0.3, 0.1])
    model.transmat_ = np.array([[0.7, 0.2, 0.1], [0.3, 0.5, 0.2], [0.25, 0.25, 0.5]])
    model.means_ = np.array([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    model.covars_ = np.tile(np.eye(2), (3, 1, 1))
    X, states = model.sample(20000, random_state=3)
    assert X.shape == (20000, 2) and states.shape == (20000,)
    counts = np.zeros((3, 3))
    np.add.at(counts, (states[:-1], states[1:]), 1)
    frequencies = counts / counts.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(frequencies, model.transmat_, atol=0.02)
    for k in range(3):
        np.testing.assert_allclose(X[states == k].mean(axis=0), model.means_[k], atol=0.1)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "tied"])
def test_sample_draws_as_hmmlearn(rng, covariance_type):
    X = _regime_data(rng, 100, 2)
    initial = _initial(rng, X, 3, covariance_type)
    ours, theirs = _pair(initial, n_components=3, covariance_type=covariance_type)
    ours_X, ours_states = ours.sample(50, random_state=7)
    their_X, their_states = theirs.sample(50, random_state=7)
    np.testing.assert_array_equal(ours_states, their_states)
    np.testing.assert_allclose(ours_X, their_X, rtol=1e-12)
    # currstate fixes the first state
    assert ours.sample(5, random_state=1, currstate=2)[1][0] == 2


def test_attributes_and_interface_match_hmmlearn(rng):
    assert GaussianHMMFromModule is GaussianHMM
    ours_params = GaussianHMM().get_params()
    assert ours_params.pop("n_threads") is None
    assert ours_params == reference.GaussianHMM().get_params()
    assert repr(GaussianHMM(n_components=3, covariance_type="tied")) == repr(
        reference.GaussianHMM(n_components=3, covariance_type="tied"))
    X = _regime_data(rng, 200, 2)
    for covariance_type in COVARIANCE_TYPES:
        initial = _initial(rng, X, 3, covariance_type)
        ours, theirs = _pair(initial, n_components=3, covariance_type=covariance_type, n_iter=3)
        ours.fit(X)
        theirs.fit(X)
        assert ours.covars_.shape == (3, 2, 2)
        if covariance_type != "spherical":   # hmmlearn's spherical covars_ grows to K*D matrices
            assert_agree(ours.covars_, theirs.covars_, "covars_", RTOL)
        assert ours.n_features == theirs.n_features == 2
        assert isinstance(ours.monitor_.history, collections.deque)
        assert ours.bic(X) == pytest.approx(theirs.bic(X), rel=1e-10)
        assert ours.aic(X) == pytest.approx(theirs.aic(X), rel=1e-10)
        np.testing.assert_allclose(ours.get_stationary_distribution(),
                                   theirs.get_stationary_distribution(), rtol=1e-8)


def test_custom_monitor_is_used(rng):
    """hmmlearn's documented way to change the stopping rule works here too."""
    class StopAtOnce(ConvergenceMonitor):
        @property
        def converged(self):
            return True

    X = _regime_data(rng, 200, 2)
    model = GaussianHMM(n_components=2, n_iter=50, random_state=0)
    model.monitor_ = StopAtOnce(model.monitor_.tol, model.monitor_.n_iter, model.monitor_.verbose)
    model.fit(X)
    assert model.monitor_.iter == 1


def test_verbose_prints_hmmlearn_lines(rng, capsys):
    X = _regime_data(rng, 200, 2)
    initial = _initial(rng, X, 2 + 1, "diag")
    ours, theirs = _pair(initial, n_components=3, n_iter=3, tol=0, verbose=True)
    ours.fit(X)
    our_lines = capsys.readouterr().err.splitlines()
    theirs.fit(X)
    their_lines = capsys.readouterr().err.splitlines()
    assert len(our_lines) == len(their_lines) == 3
    for ours_line, theirs_line in zip(our_lines, their_lines):
        ours_fields, their_fields = ours_line.split(), theirs_line.split()
        assert ours_fields[0] == their_fields[0]
        np.testing.assert_allclose([float(f) for f in ours_fields[1:]],
                                   [float(f) for f in their_fields[1:]], rtol=1e-7, atol=1e-7)


def test_pickle_round_trip(rng):
    X = _regime_data(rng, 200, 2)
    model = GaussianHMM(n_components=3, random_state=0, n_iter=5).fit(X)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    assert again.score(X) == model.score(X)


# ----------------------------------------------------------------------
# bad input: clear errors, never NaN; hmmlearn's texts where it has them
# ----------------------------------------------------------------------
def _fitted(rng):
    X = _regime_data(rng, 100, 2)
    return X, GaussianHMM(n_components=2, random_state=0, n_iter=3).fit(X)


@pytest.mark.parametrize("lengths,match", [
    ([10, 10], "lengths array \\[10, 10\\] doesn't sum to 100 samples"),
    ([120, -20], "lengths must be positive"),
    ([0, 100], "lengths must be positive"),
    ([50.5, 49.5], "positive integers"),
    ([[50, 50]], "positive integers"),
])
def test_wrong_lengths_are_refused(rng, lengths, match):
    X, model = _fitted(rng)
    before = model.means_.copy()
    with pytest.raises(ValueError, match=match):
        model.fit(X, lengths)
    np.testing.assert_array_equal(model.means_, before)
    with pytest.raises(ValueError, match=match):
        model.score(X, lengths)


def test_nan_and_infinity_are_refused(rng):
    X, model = _fitted(rng)
    bad = X.copy()
    bad[5, 1] = np.nan
    X_before = bad.copy()
    for method in (GaussianHMM(2).fit, model.score, model.predict, model.decode):
        with pytest.raises(ValueError, match="Input contains NaN"):
            method(bad)
    np.testing.assert_array_equal(bad, X_before)
    bad[5, 1] = np.inf
    with pytest.raises(ValueError, match="Input contains infinity"):
        model.score(bad)


def test_transmat_rows_must_sum_to_one(rng):
    X, model = _fitted(rng)
    model.transmat_ = np.array([[0.5, 0.6], [0.5, 0.5]])
    with pytest.raises(ValueError, match="transmat_ rows must sum to 1"):
        model.score(X)
    model.transmat_ = np.array([[0.5, 0.5], [0.5, 0.5]])
    model.startprob_ = np.array([0.2, 0.2])
    with pytest.raises(ValueError, match="startprob_ must sum to 1 \\(got 0.4000\\)"):
        model.predict(X)


def test_other_bad_input(rng):
    X, model = _fitted(rng)
    with pytest.raises(ValueError, match="Unexpected number of dimensions, got 3 but expected 2"):
        model.score(np.ones((5, 3)))
    with pytest.raises(ValueError, match="Unknown decoder 'forward'"):
        model.decode(X, algorithm="forward")
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        GaussianHMM(2, covariance_type="round").fit(X)
    with pytest.raises(ValueError, match="implementation must be 'log' or 'scaling'"):
        GaussianHMM(2, implementation="fast").fit(X)
    with pytest.raises(ValueError, match="'diag' covars must be positive"):
        model.covars_ = -np.ones((2, 2))
    with pytest.raises(ValueError, match="n_samples=1 should be >= n_clusters=2"):
        GaussianHMM(2).fit(X[:1])
    with pytest.raises(ValueError, match="Found array with 0 sample"):
        GaussianHMM(2).fit(X[:0])
    from fastem.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        GaussianHMM(2).score(X)


def test_too_little_data_is_logged_not_raised(rng, caplog):
    X = _regime_data(rng, 6, 2)
    with caplog.at_level(logging.WARNING, logger="fastem.hmm"):
        GaussianHMM(n_components=3, random_state=0, n_iter=2).fit(X)
    assert ("Fitting a model with 20 free scalar parameters with only 12 data points "
            "will result in a degenerate solution.") in caplog.text


def test_overwritten_attribute_is_logged(rng, caplog):
    X, model = _fitted(rng)
    with caplog.at_level(logging.WARNING, logger="fastem.hmm"):
        model.fit(X)
    assert ("Even though the 'startprob_' attribute is set, it will be overwritten during "
            "initialization because 'init_params' contains 's'") in caplog.text


def test_scaling_underflow_raises_hmmlearn_error(rng):
    """Emissions far below exp(-745) underflow the scaling pass in both libraries."""
    X = np.concatenate([np.zeros((5, 1)), np.full((5, 1), 400.0)])
    initial = {"startprob_": [0.5, 0.5], "transmat_": [[0.5, 0.5], [0.5, 0.5]],
               "means_": [[0.0], [1.0]], "covars_": [[1.0], [1.0]]}
    ours, theirs = _pair(initial, n_components=2, implementation="scaling")
    with pytest.raises(ValueError) as their_error:
        theirs.score(X)
    with pytest.raises(ValueError) as our_error:
        ours.score(X)
    assert str(our_error.value) == str(their_error.value)
    # The log implementation scores it (and agrees with hmmlearn's log path).
    ours.implementation = theirs.implementation = "log"
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=1e-10)


def test_unreachable_state_keeps_its_emission(rng):
    """A state no sequence can reach gets no posterior: no NaN, no warning from NumPy."""
    X = _regime_data(rng, 200, 2)
    model = GaussianHMM(n_components=3, init_params="", covars_prior=0.0, n_iter=3)
    model.startprob_ = np.array([0.5, 0.5, 0.0])
    model.transmat_ = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.3, 0.3, 0.4]])
    model.means_ = X[:3].copy()
    model.covars_ = np.ones((3, 2))
    model.fit(X)
    assert np.all(np.isfinite(model.means_)) and np.all(np.isfinite(model._covars_))
    np.testing.assert_array_equal(model.means_[2], X[2])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_model_file_round_trip(rng, tmp_path, covariance_type):
    import fastem

    X = _regime_data(rng, 200, 2)
    model = GaussianHMM(n_components=3, covariance_type=covariance_type, random_state=0,
                        n_iter=4, transmat_prior=np.full((3, 3), 1.5)).fit(X, [100, 100])
    path = tmp_path / "hmm.npz"
    model.save(path)
    loaded = fastem.load(path)
    assert isinstance(loaded, GaussianHMM)
    assert loaded.get_params()["covariance_type"] == covariance_type
    np.testing.assert_array_equal(loaded.transmat_prior, model.transmat_prior)
    np.testing.assert_array_equal(loaded.predict(X, [100, 100]), model.predict(X, [100, 100]))
    assert loaded.score(X) == model.score(X)
    assert list(loaded.monitor_.history) == list(model.monitor_.history)


def test_damaged_model_file_is_refused(rng, tmp_path):
    import fastem

    X = _regime_data(rng, 200, 2)
    model = GaussianHMM(n_components=2, random_state=0, n_iter=2).fit(X)
    model.transmat_ = np.array([[0.5, 0.5], [0.5, 0.5]])
    model.transmat_[0] = [0.9, 0.3]     # rows no longer sum to 1
    with pytest.raises(ValueError, match="transmat_ rows must sum to 1"):
        model.save(tmp_path / "bad.npz")
    model.transmat_[0] = [0.5, 0.5]
    model.save(tmp_path / "good.npz")
    with np.load(tmp_path / "good.npz") as archive:
        members = dict(archive)
    members["transmat"] = members["transmat"] * 2
    np.savez(tmp_path / "forged.npz", **members)
    with pytest.raises(ValueError, match="transmat_ rows must sum to 1"):
        fastem.load(tmp_path / "forged.npz")


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "GaussianHMM(" in b]
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    found, states, model = namespace["found"], namespace["states"], namespace["model"]
    volatile = namespace["volatile"]
    assert np.mean((found == volatile) == (states == 1)) > 0.95
    calm_then_volatile = [1 - volatile, volatile]
    np.testing.assert_allclose(np.diag(model.transmat_)[calm_then_volatile], [0.98, 0.95], atol=0.03)
    assert (tmp_path / "regimes.png").stat().st_size > 0
    assert "transition matrix" in capsys.readouterr().out


def test_float32_input_is_computed_in_float64(rng):
    X = _regime_data(rng, 200, 2).astype(np.float32)
    initial = _initial(rng, X.astype(np.float64), 3, "full")
    ours, theirs = _pair(initial, n_components=3, covariance_type="full", n_iter=5)
    ours.fit(X)
    theirs.fit(X)
    assert ours.means_.dtype == np.float64
    _assert_same_model(ours, theirs)


def test_left_right_model_scores_as_hmmlearn():
    """score (forward pass only) on a model whose state 0 cannot be re-entered,
    where that state's share underflows and later carries the data."""
    X = np.concatenate([[0.0], np.full(20, 40.0), np.full(5, -200.0)])[:, None]
    initial = {"startprob_": [1.0, 0.0], "transmat_": [[0.9, 0.1], [0.0, 1.0]],
               "means_": [[0.0], [1.0]], "covars_": [[1.0], [1.0]]}
    ours, theirs = _pair(initial, n_components=2)
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=1e-12)
    assert ours.score_samples(X)[0] == pytest.approx(theirs.score(X), rel=1e-12)
