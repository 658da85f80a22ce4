"""The ``callback`` parameter and ``verbose`` output: what the EM loop tells the caller.

``callback`` is served once, in ``fastem._base.EMEstimator``, so every fit
path (``fit``, ``fit_predict``, ``fit_chunks``) gets it; ``partial_fit`` calls
it once per step.  ``verbose`` output is compared line by line with
scikit-learn's for the same fit.
"""
import contextlib
import io
import re
import warnings

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from threadpoolctl import threadpool_limits

import fastem
from fastem import ConvergenceWarning, GaussianMixture


@pytest.fixture
def X(make_blobs):
    X, _, _, _ = make_blobs(400, 2, 3)
    return X


class Recorder:
    """A callback that keeps what it is told and stops where asked."""

    def __init__(self, stop_at=None, answer=True):
        self.calls = []
        self.stop_at = stop_at
        self.answer = answer

    def __call__(self, info):
        self.calls.append(info)
        if self.stop_at is not None and info.n_iter == self.stop_at:
            return self.answer
        return None


def test_called_once_per_iteration_with_the_fit_s_values(X):
    record = Recorder()
    gm = GaussianMixture(3, random_state=0, tol=1e-6, callback=record).fit(X)
    assert [info.n_iter for info in record.calls] == list(range(1, gm.n_iter_ + 1))
    assert all(info.init == 0 for info in record.calls)
    # The bounds the callback saw are the ones the fit kept, in order.
    np.testing.assert_array_equal([info.lower_bound for info in record.calls], gm.lower_bounds_)
    changes = [info.change for info in record.calls]
    assert changes[0] == np.inf
    np.testing.assert_allclose(changes[1:], np.diff(gm.lower_bounds_), rtol=1e-12)
    elapsed = [info.elapsed for info in record.calls]
    assert elapsed[0] >= 0 and all(b >= a for a, b in zip(elapsed, elapsed[1:]))
    assert gm.converged_


def test_callback_does_not_change_the_fit(X):
    plain = GaussianMixture(3, random_state=0, n_init=2).fit(X)
    watched = GaussianMixture(3, random_state=0, n_init=2, callback=Recorder()).fit(X)
    np.testing.assert_array_equal(plain.means_, watched.means_)
    np.testing.assert_array_equal(plain.covariances_, watched.covariances_)
    assert plain.n_iter_ == watched.n_iter_


def test_true_ends_the_initialisation_unconverged_without_a_warning(X):
    record = Recorder(stop_at=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        gm = GaussianMixture(3, random_state=0, tol=0.0, max_iter=50, callback=record).fit(X)
    assert gm.n_iter_ == 2 and len(gm.lower_bounds_) == 2
    assert gm.converged_ is False
    assert len(record.calls) == 2
    # The same as a fit that had max_iter=2, warning aside.
    with pytest.warns(ConvergenceWarning):
        short = GaussianMixture(3, random_state=0, tol=0.0, max_iter=2).fit(X)
    np.testing.assert_array_equal(gm.means_, short.means_)


def test_true_with_n_init_moves_on_to_the_next_initialisation(X):
    record = Recorder(stop_at=3)
    GaussianMixture(3, random_state=0, n_init=3, tol=0.0, max_iter=20, callback=record).fit(X)
    assert [(info.init, info.n_iter) for info in record.calls] == [
        (init, n_iter) for init in range(3) for n_iter in (1, 2, 3)
    ]


@pytest.mark.parametrize("answer", [1, "stop", np.bool_(True)])
def test_only_a_boolean_true_stops(X, answer):
    record = Recorder(stop_at=1, answer=answer)
    gm = GaussianMixture(3, random_state=0, tol=1e-6, callback=record).fit(X)
    stopped = isinstance(answer, np.bool_)
    assert (gm.n_iter_ == 1) == stopped
    assert gm.converged_ is (not stopped)


def test_true_at_the_converging_iteration_keeps_it_converged(X):
    n_iter = GaussianMixture(3, random_state=0).fit(X).n_iter_
    gm = GaussianMixture(3, random_state=0, callback=Recorder(stop_at=n_iter)).fit(X)
    assert gm.converged_ and gm.n_iter_ == n_iter


class Boom(Exception):
    pass


def _raise_at(n_iter):
    def callback(info):
        if info.n_iter == n_iter:
            raise Boom(info.n_iter)
    return callback


def test_an_exception_propagates_and_leaves_an_unfitted_estimator_unfitted(X):
    gm = GaussianMixture(3, random_state=0, callback=_raise_at(2))
    before = dict(vars(gm))
    with pytest.raises(Boom):
        gm.fit(X)
    assert vars(gm) == before
    assert not hasattr(gm, "means_")


def test_an_exception_leaves_a_fitted_estimator_as_it_was(X):
    import pandas as pd

    frame = pd.DataFrame(X, columns=["a", "b"])
    gm = GaussianMixture(3, random_state=0).fit(frame)
    before = {name: np.copy(value) if isinstance(value, np.ndarray) else value
              for name, value in vars(gm).items()}
    gm.set_params(callback=_raise_at(1), n_components=2, random_state=1)
    # A refit on unnamed data would drop feature_names_in_ before EM starts.
    with pytest.raises(Boom):
        gm.fit(X[:, ::-1])
    assert set(vars(gm)) == set(before)
    for name, value in before.items():
        if name in ("callback", "n_components", "random_state"):
            continue
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(getattr(gm, name), value, err_msg=name)
        else:
            assert getattr(gm, name) == value, name


def test_fit_predict_and_fit_chunks_call_it_too(X):
    for fit in (lambda gm: gm.fit_predict(X), lambda gm: gm.fit_chunks(lambda: [X[:200], X[200:]])):
        record = Recorder()
        gm = GaussianMixture(3, random_state=0, callback=record)
        fit(gm)
        assert len(record.calls) == gm.n_iter_ > 0
    record = Recorder(stop_at=1)
    gm = GaussianMixture(3, random_state=0, tol=0.0, callback=record)
    gm.fit_chunks(lambda: [X[:200], X[200:]])
    assert gm.n_iter_ == 1 and not gm.converged_


def test_partial_fit_calls_it_once_per_step(X):
    record = Recorder()
    gm = GaussianMixture(3, random_state=0, callback=record)
    for chunk in np.array_split(X, 4):
        gm.partial_fit(chunk)
    assert [info.n_iter for info in record.calls] == [1, 2, 3, 4]
    assert record.calls[-1].lower_bound == gm.lower_bound_
    assert record.calls[0].change == np.inf
    assert record.calls[1].change == pytest.approx(
        record.calls[1].lower_bound - record.calls[0].lower_bound)


def test_partial_fit_step_is_not_stored_when_the_callback_raises(X):
    gm = GaussianMixture(3, random_state=0).partial_fit(X[:200])
    means, n_iter = gm.means_.copy(), gm.n_iter_
    gm.set_params(callback=_raise_at(2))
    with pytest.raises(Boom):
        gm.partial_fit(X[200:])
    np.testing.assert_array_equal(gm.means_, means)
    assert gm.n_iter_ == n_iter


@pytest.mark.parametrize("bad", [1, "print", [print]])
def test_a_callback_that_is_not_callable_is_refused(X, bad):
    with pytest.raises(fastem.InvalidParameterError, match="'callback' parameter"):
        GaussianMixture(2, callback=bad).fit(X)


# ---------------------------------------------------------------- verbose

def _verbose_lines(estimator, X):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both warn that EM stopped at max_iter
        estimator.fit(X)
    # Timings and floating-point values differ in their digits; the words,
    # the tabs and the iteration numbers must not.
    return [re.sub(r"-?\d+\.\d+", "<x>", line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize("verbose, interval", [(1, 1), (1, 3), (2, 1), (2, 4)])
@pytest.mark.parametrize("max_iter, tol", [(7, 0.0), (300, 1e-5)])
def test_verbose_output_matches_scikit_learn_line_by_line(X, verbose, interval, max_iter, tol):
    # init_params="random" draws the same start as scikit-learn from the same
    # seed, so both fits take the same number of iterations.
    params = dict(n_components=3, init_params="random", random_state=0, n_init=2,
                  max_iter=max_iter, tol=tol, verbose=verbose, verbose_interval=interval)
    ours = _verbose_lines(GaussianMixture(**params), X)
    # One BLAS thread: on tiny data scikit-learn's threaded BLAS calls cost
    # seconds per fit in waiting, and the output does not depend on it.
    with threadpool_limits(1):
        theirs = _verbose_lines(SklearnGaussianMixture(**params), X)
    assert len(ours) > 4
    assert ours == theirs
