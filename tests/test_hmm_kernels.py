"""fastem._hmm (forward-backward, Viterbi) against the NumPy reference and hmmlearn.

The reference (_hmm_reference.py) is plain log-space forward-backward from the
equations; hmmlearn's compiled `_hmmc` is the behaviour the estimator must
reproduce (its ties, its scaling error); a long-double recursion is the
yardstick of precision on a long sequence.
"""
import numpy as np
import pytest
from hmmlearn import _hmmc

import _hmm_reference as reference
from fastem import _hmm

RTOL = 1e-10


def _problem(rng, k, lengths, spread=3.0, offset=-10.0, sparse=False):
    lengths = np.asarray(lengths, dtype=np.int64)
    log_frameprob = rng.normal(scale=spread, size=(lengths.sum(), k)) + offset
    startprob = rng.dirichlet(np.ones(k))
    transmat = rng.dirichlet(np.ones(k), size=k)
    if sparse and k > 1:
        # Forbidden transitions (log 0 = -inf), every row keeping its diagonal.
        mask = rng.uniform(size=(k, k)) < 0.3
        np.fill_diagonal(mask, False)
        transmat[mask] = 0.0
        transmat /= transmat.sum(axis=1, keepdims=True)
    return log_frameprob, startprob, transmat, lengths


def _random_lengths(rng, n, high=60):
    # Lengths 1 and 2 always present: a one-row sequence has no transition.
    return np.concatenate([[1, 2], rng.integers(1, high, size=n - 2)])


def _hmmlearn_forward_backward(log_frameprob, startprob, transmat, lengths, implementation):
    """hmmlearn 0.3.3's score and sufficient statistics, per sequence as its base.py does."""
    k = log_frameprob.shape[1]
    log_probs, posteriors = [], []
    start_counts, trans_counts = np.zeros(k), np.zeros((k, k))
    for l in reference.split(log_frameprob, lengths):
        if implementation == "log":
            log_prob, fwd = _hmmc.forward_log(startprob, transmat, l)
            bwd = _hmmc.backward_log(startprob, transmat, l)
            log_gamma = fwd + bwd
            gamma = np.exp(log_gamma - np.logaddexp.reduce(log_gamma, axis=1, keepdims=True))
            if len(l) > 1:
                with np.errstate(under="ignore"):
                    trans_counts += np.exp(_hmmc.compute_log_xi_sum(fwd, transmat, bwd, l))
        else:
            frameprob = np.exp(l)
            log_prob, fwd, scaling = _hmmc.forward_scaling(startprob, transmat, frameprob)
            bwd = _hmmc.backward_scaling(startprob, transmat, frameprob, scaling)
            gamma = fwd * bwd
            gamma /= gamma.sum(axis=1, keepdims=True)
            if len(l) > 1:
                trans_counts += _hmmc.compute_scaling_xi_sum(fwd, transmat, bwd, frameprob)
        log_probs.append(log_prob)
        posteriors.append(gamma)
        start_counts += gamma[0]
    return np.array(log_probs), np.concatenate(posteriors), start_counts, trans_counts


def _assert_matches(result, expected, rtol=RTOL, atol=1e-300):
    log_probs, posteriors, start_counts, trans_counts = expected
    np.testing.assert_allclose(result.log_probs, log_probs, rtol=rtol, atol=0)
    # Posteriors and counts are probabilities: tiny ones are compared absolutely.
    np.testing.assert_allclose(result.posteriors, posteriors, rtol=rtol, atol=max(atol, 1e-14))
    np.testing.assert_allclose(result.start_counts, start_counts, rtol=rtol, atol=1e-14)
    np.testing.assert_allclose(result.trans_counts, trans_counts, rtol=rtol, atol=1e-13)


# ---------------------------------------------------------------------------
# Against the NumPy reference
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("implementation", ["log", "scaling"])
@pytest.mark.parametrize("k", [1, 2, 3, 8])
def test_forward_backward_matches_the_reference(rng, k, implementation, sparse):
    problem = _problem(rng, k, _random_lengths(rng, 40), sparse=sparse)
    result = _hmm.forward_backward(*problem, implementation=implementation, n_threads=2)
    _assert_matches(result, reference.forward_backward(*problem))
    assert result.posteriors.flags.c_contiguous and result.posteriors.dtype == np.float64
    np.testing.assert_allclose(result.posteriors.sum(axis=1), 1.0, rtol=1e-14)
    # Each sequence of length n contributes n - 1 transitions and one start.
    lengths = problem[3]
    assert result.trans_counts.sum() == pytest.approx((lengths - 1).sum(), rel=1e-12)
    assert result.start_counts.sum() == pytest.approx(len(lengths), rel=1e-12)


@pytest.mark.parametrize("implementation", ["log", "scaling"])
def test_scoring_only_gives_the_same_log_probs_and_no_posteriors(rng, implementation):
    problem = _problem(rng, 3, _random_lengths(rng, 30, high=700))
    full = _hmm.forward_backward(*problem, implementation=implementation)
    score = _hmm.forward_backward(*problem, implementation=implementation, want_posteriors=False)
    np.testing.assert_array_equal(score.log_probs, full.log_probs)
    assert score.posteriors is None and score.start_counts is None and score.trans_counts is None


@pytest.mark.parametrize("k", [1, 2, 3, 8])
def test_viterbi_matches_the_reference(rng, k):
    problem = _problem(rng, k, _random_lengths(rng, 40), sparse=True)
    result = _hmm.viterbi(*problem, n_threads=2)
    log_probs, states = reference.viterbi(*problem)
    assert result.states.dtype == np.int64
    np.testing.assert_array_equal(result.states, states)
    np.testing.assert_allclose(result.log_probs, log_probs, rtol=RTOL, atol=0)


def test_inputs_are_not_modified(rng):
    problem = _problem(rng, 3, [5, 9, 1])
    copies = [a.copy() for a in problem]
    for implementation in ("log", "scaling"):
        _hmm.forward_backward(*problem, implementation=implementation)
    _hmm.viterbi(*problem)
    for before, after in zip(copies, problem):
        np.testing.assert_array_equal(before, after)


# ---------------------------------------------------------------------------
# Against hmmlearn's compiled kernels
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("implementation", ["log", "scaling"])
@pytest.mark.parametrize("k", [1, 2, 5])
def test_forward_backward_matches_hmmlearn(rng, k, implementation):
    problem = _problem(rng, k, _random_lengths(rng, 25, high=200), sparse=True)
    result = _hmm.forward_backward(*problem, implementation=implementation)
    _assert_matches(result, _hmmlearn_forward_backward(*problem, implementation), rtol=1e-9)


@pytest.mark.parametrize("k", [1, 2, 5])
def test_viterbi_matches_hmmlearn(rng, k):
    problem = _problem(rng, k, _random_lengths(rng, 25, high=200), sparse=True)
    log_frameprob, startprob, transmat, lengths = problem
    result = _hmm.viterbi(*problem)
    pieces = [_hmmc.viterbi(startprob, transmat, l) for l in reference.split(log_frameprob, lengths)]
    np.testing.assert_array_equal(result.states, np.concatenate([p[1] for p in pieces]))
    # The same additions and maxima in the same order: equal bits.
    np.testing.assert_array_equal(result.log_probs, [p[0] for p in pieces])


def test_viterbi_breaks_ties_as_hmmlearn():
    # All paths equally likely: hmmlearn ends in the first maximal state and, going
    # back, takes the last of the tied maxima; -inf ties (forbidden moves) too.
    k, t = 4, 9
    cases = [
        (np.full(k, 1 / k), np.full((k, k), 1 / k), np.zeros((t, k))),
        (np.array([0.5, 0.5, 0.0, 0.0]), np.full((k, k), 1 / k), np.zeros((t, k))),
        (np.array([1.0, 0, 0, 0]), np.roll(np.eye(k), 1, axis=1), np.zeros((t, k))),
        (np.array([0.25, 0.25, 0.5, 0.0]), np.array(
            [[0.5, 0.5, 0, 0], [0, 0.5, 0.5, 0], [0, 0, 0.5, 0.5], [0.5, 0, 0, 0.5]]),
         np.log(np.tile([0.5, 0.5, 0.25, 0.25], (t, 1)))),
    ]
    for startprob, transmat, log_frameprob in cases:
        with np.errstate(divide="ignore"):
            expected_prob, expected_states = _hmmc.viterbi(startprob, transmat, log_frameprob)
        result = _hmm.viterbi(log_frameprob, startprob, transmat, [t])
        np.testing.assert_array_equal(result.states, expected_states)
        assert result.log_probs[0] == expected_prob


# ---------------------------------------------------------------------------
# Underflow: the scaling error, the log path's exact fallback
# ---------------------------------------------------------------------------

def _stuck_problem():
    """Sequences the rescaled recursion cannot follow: with A(0, 1) = 1e-300 and A(0, 0)
    near 1 the forward mass sits on state 0 while the emissions say state 1 by 800 nats,
    so a scale sum is ~1e-300 (below 1e-250); with an identity transmat it is exactly 0."""
    far = np.array([[-800.0, 0.0]] * 6 + [[0.0, -800.0]] * 4)
    sticky = np.array([[1 - 1e-300, 1e-300], [0.3, 0.7]])
    rng = np.random.default_rng(3)
    normal = rng.normal(size=(40, 2))
    log_frameprob = np.concatenate([normal[:20], far, normal[20:]])
    return log_frameprob, np.array([1.0, 0.0]), sticky, np.array([20, 10, 20])


def test_scaling_underflow_raises_hmmlearns_error():
    log_frameprob, startprob, transmat, lengths = _stuck_problem()
    message = "forward pass failed with underflow; consider using implementation='log' instead"
    with pytest.raises(ValueError, match="forward pass failed with underflow") as ours:
        _hmm.forward_backward(log_frameprob, startprob, transmat, lengths,
                              implementation="scaling")
    with pytest.raises(ValueError) as theirs:
        _hmmc.forward_scaling(startprob, transmat, np.exp(log_frameprob[20:30]))
    assert str(ours.value) == str(theirs.value) == message
    # The forward-only pass too.
    with pytest.raises(ValueError, match="forward pass failed with underflow"):
        _hmm.forward_backward(log_frameprob, startprob, transmat, lengths,
                              implementation="scaling", want_posteriors=False)


def test_scaling_threshold_is_hmmlearns():
    # hmmlearn gives up when a forward sum is below 1e-300, not at it.
    startprob, transmat = np.array([0.5, 0.5]), np.array([[0.9, 0.1], [0.2, 0.8]])
    for value, fails in ((1e-300, False), (0.99e-300, True)):
        log_frameprob = np.log(np.array([[value, value], [1.0, 1.0]]))
        raised = []
        for call in (lambda: _hmm.forward_backward(log_frameprob, startprob, transmat, [2],
                                                   implementation="scaling"),
                     lambda: _hmmc.forward_scaling(startprob, transmat, np.exp(log_frameprob))):
            try:
                call()
                raised.append(False)
            except ValueError:
                raised.append(True)
        assert raised == [fails, fails]


@pytest.mark.parametrize("n_threads", [1, 3])
def test_log_path_falls_back_and_matches_the_log_references(n_threads):
    problem = _stuck_problem()
    result = _hmm.forward_backward(*problem, n_threads=n_threads)
    assert np.all(np.isfinite(result.log_probs)) and np.all(np.isfinite(result.posteriors))
    _assert_matches(result, reference.forward_backward(*problem))
    # hmmlearn's log implementation sums xi by log-add-exp: agreement to 1e-9.
    _assert_matches(result, _hmmlearn_forward_backward(*problem, "log"), rtol=1e-9)
    score = _hmm.forward_backward(*problem, want_posteriors=False, n_threads=n_threads)
    np.testing.assert_array_equal(score.log_probs, result.log_probs)


def test_log_path_falls_back_on_zero_scale():
    # Identity transitions from state 0 while every row says state 1 by 1000 nats: the
    # rescaled forward sum is exactly 0, the log-space one is finite.
    log_frameprob = np.tile([-1000.0, 0.0], (7, 1))
    startprob, transmat = np.array([1.0, 0.0]), np.eye(2)
    result = _hmm.forward_backward(log_frameprob, startprob, transmat, [7])
    expected = reference.forward_backward(log_frameprob, startprob, transmat, [7])
    assert result.log_probs[0] == pytest.approx(-7000.0, rel=1e-15)
    _assert_matches(result, expected)


# ---------------------------------------------------------------------------
# Precision on one long sequence
# ---------------------------------------------------------------------------

def test_long_sequence_counts_match_long_double(rng):
    k, t = 4, 200_000
    transmat = rng.dirichlet(2 * np.ones(k), size=k)
    startprob = rng.dirichlet(np.ones(k))
    log_frameprob = rng.normal(scale=4.0, size=(t, k)) - 3.0
    log_prob, gamma, xi = reference.scaled_long_double(log_frameprob, startprob, transmat)
    result = _hmm.forward_backward(log_frameprob, startprob, transmat, [t])
    ours = float(np.max(np.abs(result.trans_counts - xi) / xi))
    assert ours <= 1e-11
    assert abs(result.log_probs[0] - log_prob) <= 1e-13 * abs(log_prob)
    assert np.max(np.abs(result.posteriors - gamma)) <= 1e-12
    # For the record (not asserted): hmmlearn's log-space counts on the same sequence.
    fwd_prob, fwd = _hmmc.forward_log(startprob, transmat, log_frameprob)
    bwd = _hmmc.backward_log(startprob, transmat, log_frameprob)
    theirs = np.exp(_hmmc.compute_log_xi_sum(fwd, transmat, bwd, log_frameprob))
    drift = float(np.max(np.abs(theirs - xi) / xi))
    print(f"\ntrans_counts vs long double, T={t} K={k}: fastem {ours:.2e}, hmmlearn log {drift:.2e}")


# ---------------------------------------------------------------------------
# Thread invariance
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("implementation", ["log", "scaling"])
def test_forward_backward_bits_do_not_depend_on_threads(rng, implementation):
    # Many more sequences than lanes and threads, of very different lengths.
    problem = _problem(rng, 3, _random_lengths(rng, 301, high=300), sparse=True)
    runs = [_hmm.forward_backward(*problem, implementation=implementation, n_threads=n)
            for n in (1, 2, 3, 4)]
    scores = [_hmm.forward_backward(*problem, implementation=implementation, n_threads=n,
                                    want_posteriors=False) for n in (1, 3)]
    for run in runs[1:]:
        for name in run._fields:
            assert np.array_equal(getattr(run, name), getattr(runs[0], name)), name
    for score in scores:
        assert np.array_equal(score.log_probs, runs[0].log_probs)


def test_fallback_bits_do_not_depend_on_threads():
    log_frameprob, startprob, transmat, lengths = _stuck_problem()
    many = (np.tile(log_frameprob, (20, 1)), startprob, transmat, np.tile(lengths, 20))
    runs = [_hmm.forward_backward(*many, n_threads=n) for n in (1, 2, 3, 4)]
    for run in runs[1:]:
        for name in run._fields:
            assert np.array_equal(getattr(run, name), getattr(runs[0], name)), name


def test_viterbi_does_not_depend_on_threads(rng):
    problem = _problem(rng, 4, _random_lengths(rng, 301, high=300), sparse=True)
    runs = [_hmm.viterbi(*problem, n_threads=n) for n in (1, 2, 3, 4)]
    for run in runs[1:]:
        assert np.array_equal(run.states, runs[0].states)
        assert np.array_equal(run.log_probs, runs[0].log_probs)


def test_default_thread_count_is_accepted(rng):
    problem = _problem(rng, 2, [10, 20])
    one = _hmm.forward_backward(*problem, n_threads=1)
    default = _hmm.forward_backward(*problem, n_threads=0)
    assert np.array_equal(one.trans_counts, default.trans_counts)
    assert np.array_equal(_hmm.viterbi(*problem, n_threads=-1).states,
                          _hmm.viterbi(*problem).states)


# ---------------------------------------------------------------------------
# Bad arguments
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("function", ["forward_backward", "viterbi"])
def test_bad_arguments_raise_value_errors(rng, function):
    call = getattr(_hmm, function)
    log_frameprob, startprob, transmat, lengths = _problem(rng, 3, [4, 6])
    bad = [
        (log_frameprob[0], startprob, transmat, [3], "2-D"),
        (np.empty((0, 3)), startprob, transmat, [1], "non-empty"),
        (log_frameprob, startprob[:2], transmat, lengths, "startprob must have shape"),
        (log_frameprob, startprob, transmat[:, :2], lengths, "transmat"),
        (log_frameprob, startprob, transmat, [4, 5], "lengths sum to 9"),
        (log_frameprob, startprob, transmat, [4, 6, 0], "positive"),
        (log_frameprob, startprob, transmat, [12, -2], "positive"),
        (log_frameprob, startprob, transmat, [], "non-empty"),
        (log_frameprob, -startprob, transmat, lengths, "startprob must hold probabilities"),
        (np.where(log_frameprob == log_frameprob[2, 1], np.nan, log_frameprob), startprob,
         transmat, lengths, "NaN"),
        (np.where(log_frameprob == log_frameprob[2, 1], np.inf, log_frameprob), startprob,
         transmat, lengths, r"\+inf"),
    ]
    for args in bad:
        with pytest.raises(ValueError, match=args[-1]):
            call(*args[:-1])


def test_unknown_implementation_raises(rng):
    with pytest.raises(ValueError, match="implementation"):
        _hmm.forward_backward(*_problem(rng, 2, [3]), implementation="logs")


# ---------------------------------------------------------------------------
# A state the others cannot refill (left-right models)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("want_posteriors", [False, True])
@pytest.mark.parametrize("k", [2, 5, 9])
def test_a_state_that_cannot_be_refilled_keeps_its_share(rng, k, want_posteriors):
    """Upper-triangular transitions: a state's share of the forward message can
    shrink below any double for hundreds of steps and then carry the data.  The
    rescaled pass must not drop it (it hands such sequences to the log-space
    path), for scoring as for the full pass."""
    lengths = np.array([300, 257, 40])
    log_frameprob = rng.normal(0.0, 3.0, (lengths.sum(), k)) * rng.choice([1.0, 30.0], (lengths.sum(), 1))
    transmat = np.triu(rng.dirichlet(np.ones(k), size=k))
    transmat /= transmat.sum(axis=1, keepdims=True)
    startprob = np.zeros(k)
    startprob[0] = 1.0
    expected = reference.forward_backward(log_frameprob, startprob, transmat, lengths)
    result = _hmm.forward_backward(log_frameprob, startprob, transmat, lengths,
                                   want_posteriors=want_posteriors, n_threads=2)
    np.testing.assert_allclose(result.log_probs, expected[0], rtol=1e-10, atol=0)
    if want_posteriors:
        _assert_matches(result, expected, rtol=1e-8)


def test_the_two_state_left_right_example_scores_as_the_log_path():
    # Found in review: state 0 cannot be re-entered; 20 rows favour state 1 by
    # 39.5 nats each (state 0's share falls to 0 in doubles), then 5 rows favour
    # state 0 by 100 nats each.
    x = np.concatenate([[0.0], np.full(20, 40.0), np.full(5, -200.0)])
    log_frameprob = np.column_stack([-0.5 * x ** 2, -0.5 * (x - 1.0) ** 2]) - 0.5 * np.log(2 * np.pi)
    startprob, transmat = np.array([1.0, 0.0]), np.array([[0.9, 0.1], [0.0, 1.0]])
    lengths = np.array([len(x)])
    expected = reference.forward_backward(log_frameprob, startprob, transmat, lengths)[0]
    for want_posteriors in (False, True):
        result = _hmm.forward_backward(log_frameprob, startprob, transmat, lengths,
                                       want_posteriors=want_posteriors)
        np.testing.assert_allclose(result.log_probs, expected, rtol=1e-12)
