"""The compiled kernels against the NumPy reference, and their reproducibility."""
import itertools
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastem._kernels import Assign, Stats
from fastem._testing import accumulate, score
from _reference import accumulate_reference, score_reference

GAUSSIAN = [Assign.ASSIGN_FULL, Assign.ASSIGN_TIED, Assign.ASSIGN_DIAG]
SCORABLE = GAUSSIAN + [Assign.ASSIGN_NEAREST]
# The kernel accepts any (assign, stats) pair and the reference defines all of
# them, so every pair is checked, not only the ones the estimators use.
ALL_PAIRS = list(itertools.product(list(Assign), list(Stats)))
# (n_samples, n_features, n_components).  With CHUNK = 7 the 5-row cases fit in
# one chunk and the 200-row cases span 29 chunks, the last one partial.  From
# BLAS_MIN_FEATURES = 8 features on, EM and Lloyd pairs take the BLAS block path.
SHAPES = [
    (5, 1, 1), (5, 3, 4), (200, 1, 4), (200, 3, 1), (200, 4, 3), (200, 9, 3), (40, 16, 2), (60, 20, 2),
    (200, 2, 2),  # two components on the column path: the logistic log-sum-exp
]
# Feature counts for the thread tests: one per code path (columns, one GEMM for
# all components, BLAS per component).
THREAD_TEST_FEATURES = [3, 10, 20]
CHUNK = 7
# Float64 accumulation in a different order than the reference: ~N eps.
RTOL = 1e-12
# Float32 input on the FULL path above 16 features takes its chunk products in
# single precision: each product term is rounded to float32 (6e-8 relative) and
# summed in single precision over D <= 40 features or CHUNK = 7 rows, about rows
# centred on their component's mean.  The worst case seen is ~1e-6 of the largest
# entry; 1e-5 leaves a margin of ten.  _rtol applies it to float32 input on that
# path; every other path widens float32 chunks to float64 and is pinned bitwise
# by test_float32_widened_paths_match_float64.
RTOL_FLOAT32_PRODUCTS = 1e-5
# The kernel's OUTER_MAX_FEATURES: above it, full models whiten per component.
OUTER_MAX_FEATURES = 16


def _rtol(dtype, n_features):
    return RTOL_FLOAT32_PRODUCTS if dtype == np.float32 and n_features > OUTER_MAX_FEATURES else RTOL


def _pair_id(pair):
    assign, stats = pair
    return f"{assign.name.removeprefix('ASSIGN_')}-{stats.name.removeprefix('STATS_')}"


def _random_precision_factor(rng, n_features):
    """Upper-triangular U with U U^T the inverse of a random SPD covariance."""
    a = rng.normal(size=(n_features, n_features))
    cov = a @ a.T / n_features + 0.5 * np.eye(n_features)
    # cov = L L^T  =>  cov^-1 = L^-T L^-1 = U U^T with U = L^-T upper triangular.
    return np.triu(np.linalg.inv(np.linalg.cholesky(cov)).T)


def make_problem(rng, n_samples, n_features, n_components, assign, weights="none"):
    """Random data and valid parameters, as keyword arguments of both kernels."""
    means = rng.normal(scale=2.0, size=(n_components, n_features))
    mix = rng.dirichlet(np.ones(n_components))
    X = means[rng.integers(n_components, size=n_samples)] + rng.normal(
        size=(n_samples, n_features)
    )
    params = {"means": means}
    if assign == Assign.ASSIGN_FULL:
        factor = np.stack([_random_precision_factor(rng, n_features) for _ in range(n_components)])
        log_det = np.log(np.diagonal(factor, axis1=1, axis2=2)).sum(axis=1)
    elif assign == Assign.ASSIGN_TIED:
        factor = _random_precision_factor(rng, n_features)
        log_det = np.log(np.diag(factor)).sum()
        params["whitened_means"] = means @ factor
    elif assign == Assign.ASSIGN_DIAG:
        factor = 1.0 / np.sqrt(rng.uniform(0.5, 2.0, size=(n_components, n_features)))
        log_det = np.log(factor).sum(axis=1)
    if assign in GAUSSIAN:
        params["precision_factor"] = factor
        params["log_norm"] = np.log(mix) + log_det - 0.5 * n_features * np.log(2 * np.pi)
    if assign == Assign.ASSIGN_GIVEN:
        resp = rng.dirichlet(np.ones(n_components), size=n_samples)
        # Every other row hard-assigned, so exact zeros occur as in k-means.
        hard = np.arange(n_samples) % 2 == 0
        resp[hard] = np.eye(n_components)[rng.integers(n_components, size=hard.sum())]
        params["given_resp"] = resp
    params["tied_shift"] = rng.normal(size=n_features)

    if weights == "none":
        sample_weight = None
    else:
        sample_weight = rng.uniform(0.1, 3.0, size=n_samples)
        if weights == "zeros":
            sample_weight[rng.random(n_samples) < 0.3] = 0.0
            sample_weight[:2] = [0.0, 1.5]  # at least one of each, even for 5 rows
    return X, sample_weight, params


def _score_params(params):
    return {k: v for k, v in params.items() if k not in ("tied_shift", "given_resp")}


def assert_close(got, want, rtol):
    """Compare kernel outputs with the reference, arrays or scalars or None.

    The absolute tolerance scales with the largest expected entry, because a
    sum of signed terms (a first moment) can be much smaller than its terms.
    Infinite entries must match exactly.
    """
    if want is None:
        assert got is None
        return
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    finite = np.abs(want[np.isfinite(want)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


def assert_all_equal(a, b):
    """Bitwise equality of two tuples of kernel outputs."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if x is None:
            assert y is None
        else:
            assert np.array_equal(np.asarray(x), np.asarray(y))


# --------------------------------------------------------------------------
# accumulate
# --------------------------------------------------------------------------


@pytest.mark.parametrize("weights", ["none", "positive", "zeros"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "N{}-D{}-K{}".format(*s))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("pair", ALL_PAIRS, ids=_pair_id)
def test_accumulate_matches_reference(pair, dtype, shape, weights):
    assign, stats = pair
    rng = np.random.default_rng(1234)
    X, sample_weight, params = make_problem(rng, *shape, assign, weights)
    # Both sides see the same float32 values (upcasting is exact).  Up to
    # OUTER_MAX_FEATURES the kernel computes in float64 whatever X's dtype, so
    # float32 input needs no looser tolerance there (_rtol);
    # test_float32_agrees_with_float64_data covers the rounding of the input.
    X = X.astype(dtype)
    got = accumulate(X, sample_weight, assign, stats, chunk_rows=CHUNK, **params)
    want = accumulate_reference(X, sample_weight, assign, stats, **params)
    assert isinstance(got[0], float)
    for g, w in zip(got, want):
        assert_close(g, w, _rtol(dtype, shape[1]))
    second = got[3]
    if stats in (Stats.STATS_FULL, Stats.STATS_TIED):
        # The lower triangle is documented as left at zero, not merely small.
        assert np.all(np.tril(second, -1) == 0.0)


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=_pair_id)
def test_float32_agrees_with_float64_data(pair):
    # Rounding X to float32 perturbs each entry by ~6e-8 relative; well-conditioned
    # statistics move by a similar relative amount, hence ~1e-5 with margin.
    assign, stats = pair
    rng = np.random.default_rng(99)
    X, sample_weight, params = make_problem(rng, 300, 3, 3, assign, "zeros")
    got = accumulate(X.astype(np.float32), sample_weight, assign, stats, chunk_rows=CHUNK, **params)
    want = accumulate_reference(X, sample_weight, assign, stats, **params)
    for g, w in zip(got, want):
        assert_close(g, w, 1e-5)


def _single_precision_products(assign, n_features):
    """The kernel's rule: which float32 passes take single-precision products."""
    return assign == Assign.ASSIGN_FULL and n_features > OUTER_MAX_FEATURES


def _cases(n_features_list, single):
    return [
        pytest.param(pair, d, id=f"{_pair_id(pair)}-D{d}")
        for pair in ALL_PAIRS
        for d in n_features_list
        if _single_precision_products(pair[0], d) == single
    ]


@pytest.mark.parametrize("pair, n_features", _cases(THREAD_TEST_FEATURES, single=False))
def test_float32_widened_paths_match_float64(pair, n_features):
    # Every path but the single-precision ones computes a float32 chunk in float64:
    # the result must be bitwise that of the same values given as float64.
    assign, stats = pair
    rng = np.random.default_rng(17)
    X, sample_weight, params = make_problem(rng, 200, n_features, 3, assign, "zeros")
    X32 = X.astype(np.float32)
    kwargs = dict(chunk_rows=CHUNK, n_threads=2, **params)
    assert_all_equal(
        accumulate(X32, sample_weight, assign, stats, **kwargs),
        accumulate(X32.astype(np.float64), sample_weight, assign, stats, **kwargs),
    )
    if assign != Assign.ASSIGN_GIVEN:
        flags = {"want_log_prob": True, "want_resp": True, "want_labels": True}
        score_kwargs = dict(chunk_rows=CHUNK, n_threads=2, **_score_params(params), **flags)
        assert_all_equal(score(X32, assign, **score_kwargs),
                         score(X32.astype(np.float64), assign, **score_kwargs))


@pytest.mark.parametrize("offset", [0.0, 1e4])
@pytest.mark.parametrize("pair, n_features", _cases([9, 20, 40], single=True))
def test_float32_products_close_to_float64(pair, n_features, offset):
    # The single-precision paths against the float64 kernel on the same values, at
    # the estimator's chunk size, near the origin and at 1e4 (where products of
    # uncentred float32 data would cancel every digit of the second moments).
    assign, stats = pair
    rng = np.random.default_rng(23)
    X, sample_weight, params = make_problem(rng, 1500, n_features, 4, assign, "zeros")
    X += offset
    params["means"] = params["means"] + offset
    params["tied_shift"] = params["tied_shift"] + offset
    X32 = X.astype(np.float32)
    kwargs = dict(chunk_rows=256, n_threads=2, **params)
    got = accumulate(X32, sample_weight, assign, stats, **kwargs)
    want = accumulate(X32.astype(np.float64), sample_weight, assign, stats, **kwargs)
    for g, w in zip(got, want):
        assert_close(g, w, RTOL_FLOAT32_PRODUCTS)


@pytest.mark.parametrize("n_features", THREAD_TEST_FEATURES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("pair", ALL_PAIRS, ids=_pair_id)
def test_accumulate_bitwise_across_threads(pair, dtype, n_features):
    # 493 rows / 7 = 71 chunks (a prime): every thread count leaves a partial round.
    assign, stats = pair
    rng = np.random.default_rng(7)
    X, sample_weight, params = make_problem(rng, 493, n_features, 4, assign, "zeros")
    X = X.astype(dtype)
    results = [
        accumulate(X, sample_weight, assign, stats, chunk_rows=CHUNK, n_threads=t, **params)
        for t in (1, 2, 3, 8)
    ]
    for other in results[1:]:
        assert_all_equal(results[0], other)


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=_pair_id)
def test_accumulate_chunk_rows_changes_only_rounding(pair):
    assign, stats = pair
    rng = np.random.default_rng(11)
    X, sample_weight, params = make_problem(rng, 257, 3, 3, assign, "positive")
    want = accumulate_reference(X, sample_weight, assign, stats, **params)
    for chunk_rows in (1, 2, 7, 64, 256, 257, 1024):
        got = accumulate(
            X, sample_weight, assign, stats, chunk_rows=chunk_rows, n_threads=3, **params
        )
        for g, w in zip(got, want):
            assert_close(g, w, RTOL)


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=_pair_id)
def test_accumulate_no_rows(pair):
    assign, stats = pair
    rng = np.random.default_rng(3)
    X, sample_weight, params = make_problem(rng, 0, 2, 3, assign, "positive")
    got = accumulate(X, sample_weight, assign, stats, **params)
    want = accumulate_reference(X, sample_weight, assign, stats, **params)
    assert got[0] == 0.0
    for g, w in zip(got, want):
        assert_close(g, w, 0.0)


def test_all_zero_weights_give_zero_statistics():
    rng = np.random.default_rng(5)
    X, _, params = make_problem(rng, 40, 2, 3, Assign.ASSIGN_FULL)
    log_lik, counts, first, second = accumulate(
        X, np.zeros(40), Assign.ASSIGN_FULL, Stats.STATS_FULL, chunk_rows=CHUNK, **params
    )
    assert log_lik == 0.0
    assert not counts.any() and not first.any() and not second.any()


def test_zero_weight_removes_a_row_of_zero_density():
    # A row so far out that every density underflows to exactly 0 (log = -inf):
    # with weight 0 it must vanish, not turn the sums into NaN via 0 * inf.
    rng = np.random.default_rng(6)
    X, _, params = make_problem(rng, 30, 2, 3, Assign.ASSIGN_DIAG)
    X[4] = 1e300
    weight = np.ones(30)
    weight[4] = 0.0
    got = accumulate(X, weight, Assign.ASSIGN_DIAG, Stats.STATS_DIAG, chunk_rows=CHUNK, **params)
    want = accumulate_reference(X, weight, Assign.ASSIGN_DIAG, Stats.STATS_DIAG, **params)
    assert np.isfinite(got[0])
    for g, w in zip(got, want):
        assert_close(g, w, RTOL)
    # With a positive weight the row has log p = -inf and no responsibility.
    log_prob, resp, _ = score(X, Assign.ASSIGN_DIAG, want_resp=True, **_score_params(params))
    assert log_prob[4] == -np.inf
    assert not resp[4].any()
    assert np.all(np.isfinite(np.delete(log_prob, 4)))
    with np.errstate(over="ignore"):  # the reference squares 1e300 on the way to -inf
        want_log_prob, want_resp, _ = score_reference(
            X, Assign.ASSIGN_DIAG, want_resp=True, **_score_params(params)
        )
    assert_close(log_prob, want_log_prob, RTOL)
    assert_close(resp, want_resp, RTOL)


# --------------------------------------------------------------------------
# score
# --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "N{}-D{}-K{}".format(*s))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("assign", SCORABLE, ids=lambda a: a.name)
def test_score_matches_reference(assign, dtype, shape):
    rng = np.random.default_rng(4321)
    X, _, params = make_problem(rng, *shape, assign)
    X = X.astype(dtype)
    params = _score_params(params)
    flags = {"want_log_prob": True, "want_resp": True, "want_labels": True}
    log_prob, resp, labels = score(X, assign, chunk_rows=CHUNK, **flags, **params)
    want_log_prob, want_resp, want_labels = score_reference(X, assign, **flags, **params)
    assert_close(log_prob, want_log_prob, _rtol(dtype, shape[1]))
    assert_close(resp, want_resp, _rtol(dtype, shape[1]))
    assert labels.dtype == np.intp
    assert np.array_equal(labels, want_labels)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("assign", SCORABLE, ids=lambda a: a.name)
def test_score_returns_only_what_is_asked(assign):
    rng = np.random.default_rng(8)
    X, _, params = make_problem(rng, 20, 2, 3, assign)
    params = _score_params(params)
    names = ("want_log_prob", "want_resp", "want_labels")
    full = score(X, assign, **dict.fromkeys(names, True), **params)
    for flags in itertools.product([False, True], repeat=3):
        got = score(X, assign, **dict(zip(names, flags)), **params)
        for wanted, g, f in zip(flags, got, full):
            if wanted:
                assert np.array_equal(g, f)
            else:
                assert g is None


@pytest.mark.parametrize("n_features", THREAD_TEST_FEATURES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("assign", SCORABLE, ids=lambda a: a.name)
def test_score_bitwise_across_threads(assign, dtype, n_features):
    # Labels are left out: see test_score_labels_across_threads.
    rng = np.random.default_rng(9)
    X, _, params = make_problem(rng, 493, n_features, 4, assign)
    X = X.astype(dtype)
    params = _score_params(params)
    results = [
        score(X, assign, want_resp=True, chunk_rows=CHUNK, n_threads=t, **params)
        for t in (1, 2, 3, 8)
    ]
    for other in results[1:]:
        assert_all_equal(results[0], other)


def test_score_labels_across_threads():
    # Labels must be the argmax of the responsibilities, whatever the threads.
    # Many repeats of a large problem, so an interleaving is very likely.
    rng = np.random.default_rng(14)
    for assign in SCORABLE:
        X, _, params = make_problem(rng, 5000, 2, 4, assign)
        params = _score_params(params)
        for _ in range(5):
            for n_threads in (2, 3, 8):
                _, resp, labels = score(X, assign, want_resp=True, want_labels=True,
                                        chunk_rows=CHUNK, n_threads=n_threads, **params)
                assert np.array_equal(labels, np.argmax(resp, axis=1))


def test_score_no_rows():
    rng = np.random.default_rng(10)
    X, _, params = make_problem(rng, 0, 2, 3, Assign.ASSIGN_FULL)
    log_prob, resp, labels = score(
        X, Assign.ASSIGN_FULL, want_resp=True, want_labels=True, **_score_params(params)
    )
    assert log_prob.shape == (0,) and resp.shape == (0, 3) and labels.shape == (0,)


@pytest.mark.parametrize("n_features", THREAD_TEST_FEATURES)
@pytest.mark.parametrize("assign", GAUSSIAN, ids=lambda a: a.name)
def test_two_components_bitwise_across_threads(assign, n_features):
    # K = 2 takes its own log-sum-exp (one exp, one log1p per row) on every path.
    rng = np.random.default_rng(15)
    X, sample_weight, params = make_problem(rng, 493, n_features, 2, assign, "zeros")
    fits = [accumulate(X, sample_weight, assign, Stats.STATS_NONE, chunk_rows=CHUNK, n_threads=t,
                       **params) for t in (1, 2, 3, 8)]
    scores = [score(X, assign, want_resp=True, want_labels=True, chunk_rows=CHUNK, n_threads=t,
                    **_score_params(params)) for t in (1, 2, 3, 8)]
    for other in fits[1:]:
        assert_all_equal(fits[0], other)
    for other in scores[1:]:
        assert_all_equal(scores[0], other)


@pytest.mark.parametrize("n_features", [1, 3])
@pytest.mark.parametrize("assign", GAUSSIAN, ids=lambda a: a.name)
def test_two_components_give_the_k_way_responsibilities(assign, n_features):
    # A third component of weight zero (log-density -inf everywhere) sends the
    # same rows through the K-way log-sum-exp: exp(-inf) adds an exact 0 to
    # each sum, so the responsibilities and labels must match bit for bit; the
    # log-likelihoods (log1p(e) against log(1 + e)) to rounding.  Column path
    # only: there each component's log-densities are computed alone, while a
    # GEMM over three components need not round the first two as one over two.
    rng = np.random.default_rng(16)
    X, _, params = make_problem(rng, 300, n_features, 2, assign)
    params = _score_params(params)
    three = {name: np.concatenate([value, value[:1]])
             if name in ("means", "whitened_means", "log_norm")
             or (name == "precision_factor" and assign != Assign.ASSIGN_TIED) else value
             for name, value in params.items()}
    three["log_norm"][2] = -np.inf
    X[:3] = 1e200   # far from everything: log-densities -inf or NaN, alike on both paths
    log_prob, resp, labels = score(X, assign, want_resp=True, want_labels=True, chunk_rows=CHUNK,
                                   **params)
    log_prob3, resp3, labels3 = score(X, assign, want_resp=True, want_labels=True,
                                      chunk_rows=CHUNK, **three)
    assert np.array_equal(resp, resp3[:, :2], equal_nan=True)
    assert np.array_equal(labels, labels3)
    finite = np.isfinite(log_prob3)
    assert np.array_equal(log_prob[~finite], log_prob3[~finite], equal_nan=True)
    np.testing.assert_allclose(log_prob[finite], log_prob3[finite], rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("assign", SCORABLE, ids=lambda a: a.name)
def test_ties_go_to_the_first_component(assign):
    # Component 2 is an exact copy of component 1, so their log-densities tie
    # bitwise on every row: label 2 must never win.
    rng = np.random.default_rng(12)
    X, _, params = make_problem(rng, 50, 2, 3, assign)
    for name in ("means", "precision_factor", "log_norm", "whitened_means"):
        shared = assign == Assign.ASSIGN_TIED and name == "precision_factor"
        if name in params and not shared:
            params[name][2] = params[name][1]
    X[:5] = params["means"][1]
    _, resp, labels = score(X, assign, want_resp=True, want_labels=True, **_score_params(params))
    assert not np.any(labels == 2)
    if assign == Assign.ASSIGN_NEAREST:
        assert np.all(labels[:5] == 1)
        assert not resp[:, 2].any()
        _, counts, _, _ = accumulate(X, None, assign, Stats.STATS_NONE, chunk_rows=CHUNK, **params)
        assert counts[2] == 0.0
    else:
        assert np.array_equal(resp[:, 1], resp[:, 2])


# --------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------


def _valid_full(n_samples=10, n_features=3, n_components=2):
    rng = np.random.default_rng(13)
    X, _, params = make_problem(rng, n_samples, n_features, n_components, Assign.ASSIGN_FULL)
    return X, params


@pytest.mark.parametrize(
    "change",
    [
        {"means": np.zeros((2, 4))},
        {"means": np.zeros(6)},
        {"precision_factor": np.zeros((2, 3, 2))},
        {"precision_factor": np.zeros((3, 3))},
        {"precision_factor": None},
        {"log_norm": np.zeros(3)},
        {"log_norm": None},
        {"chunk_rows": -1},
    ],
    ids=lambda c: ", ".join(f"{k}={getattr(v, 'shape', v)}" for k, v in c.items()),
)
def test_invalid_shapes_raise(change):
    X, params = _valid_full()
    kwargs = {**params, **change}
    with pytest.raises(ValueError):
        accumulate(X, None, Assign.ASSIGN_FULL, Stats.STATS_FULL, **kwargs)
    kwargs.pop("tied_shift")
    with pytest.raises(ValueError):
        score(X, Assign.ASSIGN_FULL, **kwargs)


def test_invalid_inputs_of_accumulate_raise():
    X, params = _valid_full()
    means = params["means"]
    factor = params["precision_factor"][0]
    full = (Assign.ASSIGN_FULL, Stats.STATS_FULL)
    cases = [
        # sample_weight of the wrong length
        ((X, np.ones(9), *full), params),
        # tied statistics without, or with a wrong, centre
        ((X, None, Assign.ASSIGN_FULL, Stats.STATS_TIED), {**params, "tied_shift": None}),
        ((X, None, Assign.ASSIGN_FULL, Stats.STATS_TIED), {**params, "tied_shift": np.zeros(2)}),
        # tied assignment without, or with wrong, whitened means
        ((X, None, Assign.ASSIGN_TIED, Stats.STATS_NONE),
         {"means": means, "precision_factor": factor, "log_norm": params["log_norm"]}),
        ((X, None, Assign.ASSIGN_TIED, Stats.STATS_NONE),
         {"means": means, "precision_factor": factor, "log_norm": params["log_norm"],
          "whitened_means": np.zeros((3, 3))}),
        # diagonal factor of the wrong size
        ((X, None, Assign.ASSIGN_DIAG, Stats.STATS_DIAG),
         {"means": means, "precision_factor": np.ones(5), "log_norm": params["log_norm"]}),
        # given responsibilities missing or of the wrong size
        ((X, None, Assign.ASSIGN_GIVEN, Stats.STATS_NONE), {"means": means}),
        ((X, None, Assign.ASSIGN_GIVEN, Stats.STATS_NONE),
         {"means": means, "given_resp": np.ones((9, 2))}),
        # unknown enum values
        ((X, None, 5, Stats.STATS_NONE), params),
        ((X, None, Assign.ASSIGN_FULL, 4), params),
        ((X, None, -1, Stats.STATS_NONE), params),
        # X not C-contiguous
        ((np.asfortranarray(X), None, *full), params),
        ((X[:, ::2], None, *full), {**params, "means": means[:, ::2]}),
    ]
    for args, kwargs in cases:
        with pytest.raises(ValueError):
            accumulate(*args, **kwargs)


def test_score_rejects_given_responsibilities():
    X, params = _valid_full()
    with pytest.raises(ValueError):
        score(X, Assign.ASSIGN_GIVEN, params["means"])


def test_unsupported_dtype_raises():
    X, params = _valid_full()
    with pytest.raises(TypeError):
        accumulate(X.astype(np.float16), None, Assign.ASSIGN_FULL, Stats.STATS_FULL, **params)


# --------------------------------------------------------------------------
# Defects found once and fixed: each test keeps it fixed.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["accumulate", "score"])
def test_no_components_raises(kernel):
    X, _ = _valid_full()
    with pytest.raises(ValueError):
        if kernel == "accumulate":
            accumulate(X, None, Assign.ASSIGN_NEAREST, Stats.STATS_NONE, np.zeros((0, 3)))
        else:
            score(X, Assign.ASSIGN_NEAREST, np.zeros((0, 3)), want_labels=True)


def test_one_dimensional_x_is_rejected():
    # The fused-type dispatch of the internal kernels rejects it with TypeError;
    # the estimator turns user input into a ValueError before it gets here.
    X, params = _valid_full()
    with pytest.raises((TypeError, ValueError)):
        accumulate(X[0], None, Assign.ASSIGN_FULL, Stats.STATS_FULL, **params)


def test_transposed_given_resp_raises():
    X, params = _valid_full(n_samples=10, n_components=2)
    with pytest.raises(ValueError):
        accumulate(X, None, Assign.ASSIGN_GIVEN, Stats.STATS_NONE, params["means"],
                   given_resp=np.full((2, 10), 0.5))


def test_huge_chunk_rows():
    X, params = _valid_full()
    got = accumulate(X, None, Assign.ASSIGN_FULL, Stats.STATS_FULL,
                     chunk_rows=np.iinfo(np.intp).max, **params)
    want = accumulate_reference(X, None, Assign.ASSIGN_FULL, Stats.STATS_FULL, **params)
    for g, w in zip(got, want):
        assert_close(g, w, RTOL)
    log_prob, _, _ = score(X, Assign.ASSIGN_FULL, chunk_rows=np.iinfo(np.intp).max,
                           **_score_params(params))
    assert_close(log_prob, score_reference(X, Assign.ASSIGN_FULL, **_score_params(params))[0], RTOL)


def test_negative_n_threads_raises_value_error():
    X, params = _valid_full()
    with pytest.raises(ValueError):
        accumulate(X, None, Assign.ASSIGN_FULL, Stats.STATS_FULL, n_threads=-1, **params)
    with pytest.raises(ValueError):
        score(X, Assign.ASSIGN_FULL, n_threads=-1, **_score_params(params))


def _run_in_child(call, timeout=30):
    """Run `call` in a fresh interpreter (a crash must not take pytest down).

    Returns the child's exit status: 0 if `call` raised ValueError, 3 if it
    returned, anything else if the child crashed.
    """
    code = textwrap.dedent(f"""
        import numpy as np
        from fastem._kernels import Assign, Stats
        from fastem._testing import accumulate, score
        X, M = np.zeros((100, 2)), np.zeros((3, 2))
        try:
            {call}
        except ValueError:
            raise SystemExit(0)
        raise SystemExit(3)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=timeout)
    return proc.returncode


@pytest.mark.parametrize("call", [
    "accumulate(X, None, Assign.ASSIGN_NEAREST, Stats.STATS_NONE, M, chunk_rows=0)",
    "score(X, Assign.ASSIGN_NEAREST, M, chunk_rows=0)",
], ids=["accumulate", "score"])
def test_zero_chunk_rows_raises(call):
    # Run in a child: this once divided by zero (SIGFPE) before the check.
    assert _run_in_child(call) == 0


@pytest.mark.parametrize("call", [
    "accumulate(X, None, Assign.ASSIGN_NEAREST, Stats.STATS_NONE, M, chunk_rows=7, n_threads=0)",
    "score(X, Assign.ASSIGN_NEAREST, M, chunk_rows=7, n_threads=0)",
], ids=["accumulate", "score"])
def test_zero_n_threads_raises(call):
    assert _run_in_child(call) == 0


def test_default_chunk_rows_follow_the_shape_and_huge_ones_are_clamped():
    # chunk_rows=None is the EM layer's chunking (bitwise the same statistics), and
    # a chunk_rows beyond the rows of X is one chunk of X (the same bits as n rows).
    from fastem import _em
    for n_features in (3, 12):
        X, params = _valid_full(n_samples=3000, n_features=n_features)
        default = accumulate(X, None, Assign.ASSIGN_FULL, Stats.STATS_FULL, **params)
        explicit = accumulate(X, None, Assign.ASSIGN_FULL, Stats.STATS_FULL,
                              chunk_rows=_em.chunk_rows(n_features), **params)
        assert_all_equal(default, explicit)
        assert_all_equal(
            accumulate(X, None, Assign.ASSIGN_FULL, Stats.STATS_FULL,
                       chunk_rows=np.iinfo(np.intp).max, n_threads=2, **params),
            accumulate(X, None, Assign.ASSIGN_FULL, Stats.STATS_FULL, chunk_rows=len(X), **params),
        )
