"""The kernels' own vector exp and log: accuracy against libm, same result on every CPU path."""
import numpy as np
import pytest

from fastem._kernels import simd_level
from fastem._testing import _normalise_pair, _vector_exp_log, _vector_log1p

ULP = np.finfo(np.float64).eps


def _exp_inputs():
    rng = np.random.default_rng(3)
    return np.concatenate([
        np.linspace(-708.0, 709.0, 200_001),
        rng.uniform(-50.0, 0.0, 100_000),   # the E-step's range: L_k - max_j L_j <= 0
        [0.0, -0.0, 1e-300, -1e-300, 0.5 * np.log(2), -0.5 * np.log(2)],
    ])


def _log_inputs():
    rng = np.random.default_rng(4)
    return np.concatenate([
        np.exp(rng.uniform(-700.0, 700.0, 100_000)),
        rng.uniform(1.0, 64.0, 100_000),    # the E-step's range: 1 <= sum of K terms <= K
        [1.0, np.nextafter(1.0, 2.0), np.nextafter(1.0, 0.0), 2.0, np.sqrt(0.5), np.sqrt(2.0)],
    ])


def test_exp_within_two_ulp_of_libm():
    x = _exp_inputs()
    got, _ = _vector_exp_log(x)
    want = np.exp(x)
    assert np.all(np.abs(got - want) <= 2 * ULP * want)


def test_exp_underflow_and_infinity():
    got, _ = _vector_exp_log([-np.inf, -1000.0, -709.0])
    assert np.array_equal(got, [0.0, 0.0, 0.0])


def test_log_within_two_ulp_of_libm():
    x = _log_inputs()
    _, got = _vector_exp_log(x)
    want = np.log(x)
    # Relative to |log x| where it is large, absolute near log x = 0.
    assert np.all(np.abs(got - want) <= 2 * ULP * np.maximum(np.abs(want), 1.0))
    _, at_one = _vector_exp_log([1.0])
    assert at_one[0] == 0.0


@pytest.mark.parametrize("inputs", [_exp_inputs, _log_inputs], ids=["exp", "log"])
def test_dispatched_clone_equals_baseline_bitwise(inputs):
    # The array functions run the clone the CPU selects (AVX2 here when it has
    # it); the scalar loop is compiled for baseline x86-64.  Built with
    # -ffp-contract=off, both must round every operation alike.
    x = inputs()
    vector = _vector_exp_log(x, array_functions=True)
    scalar = _vector_exp_log(x, array_functions=False)
    for a, b in zip(vector, scalar):
        assert np.array_equal(a, b, equal_nan=True)


def test_simd_level_is_reported():
    assert simd_level() in ("avx2", "baseline")


@pytest.mark.parametrize("n", [1, 3, 4, 1027])
def test_cloned_column_helpers_give_the_baseline_bits(n):
    # The column path's and log-sum-exp's helpers run as the clone the loader picked
    # (AVX2 here when the CPU has it); the reference loops are compiled for baseline
    # x86-64.  Same operations, same order, four fixed partial sums: the same bits.
    from fastem._testing import _column_helpers_both_ways
    rng = np.random.default_rng(n)
    a, b, c = rng.normal(size=(3, n)) * 10.0
    results = _column_helpers_both_ways(a, b, c, 0.37, -1.25)
    assert len(results) == 8
    for name, (cloned, baseline) in results.items():
        assert np.array_equal(cloned, baseline), name



def _log1p_inputs():
    rng = np.random.default_rng(5)
    return np.concatenate([
        rng.uniform(0.0, 1.0, 200_000),     # the E-step's range: e = exp(min - max) for K = 2
        np.exp(rng.uniform(-745.0, 700.0, 100_000)),
        -np.exp(rng.uniform(-745.0, -1e-6, 100_000)),   # (-1, 0)
        [0.0, -0.0, 5e-324, 1e-300, 1e-17, 2.0 ** -53, 1.0, np.sqrt(2.0) - 1.0, 2.0 ** 53, 1e300],
    ])


def test_log1p_within_three_ulp_of_numpy():
    x = _log1p_inputs()
    got = _vector_log1p(x)
    want = np.log1p(x)
    # Relative to |log1p x| all the way down: small x is what log1p is for.
    assert np.all(np.abs(got - want) <= 3 * np.spacing(np.abs(want)))
    assert np.array_equal(_vector_log1p([0.0, 1e-300]), [0.0, 1e-300])


def test_log1p_clone_equals_baseline_bitwise():
    x = _log1p_inputs()
    assert np.array_equal(_vector_log1p(x, array_function=True),
                          _vector_log1p(x, array_function=False), equal_nan=True)


def _pair_inputs(n):
    rng = np.random.default_rng(n)
    first = rng.normal(size=n) * 30.0
    second = rng.normal(size=n) * 30.0
    special = [
        (-np.inf, -np.inf), (-np.inf, 0.5), (0.5, -np.inf), (1.0, 1.0), (-800.0, 0.0),
        (np.nan, 0.0), (0.0, np.nan), (np.inf, 0.0), (-np.inf, np.nan), (np.nan, np.nan),
    ]
    first = np.concatenate([first, [a for a, _ in special]])
    second = np.concatenate([second, [b for _, b in special]])
    weight = rng.uniform(0.0, 2.0, first.shape[0])
    weight[::7] = 0.0
    return first, second, weight


@pytest.mark.parametrize("n", [0, 1, 5, 1027])
@pytest.mark.parametrize("weighted", [False, True])
def test_normalise_pair_gives_the_k_way_bits(n, weighted):
    # The two-component log-sum-exp (the clone the loader picked) against the
    # K-way arithmetic written out in NumPy (IEEE: same rounding) on the
    # baseline scalar exp and log1p: max, exp of each column less the max,
    # w / sum, scale; log p = max + log1p(exp(min - max)).  Bit for bit, the
    # special rows too: no finite density -> zeros and -inf; NaN or +inf ->
    # NaN; zero weight -> zero responsibilities.
    first, second, weight = _pair_inputs(n)
    w = weight if weighted else np.ones_like(first)
    got_first, got_second, got_log_lik = _normalise_pair(
        first, second, weight if weighted else None)
    with np.errstate(invalid="ignore"):
        greater = second > first
        top = np.where(greater, second, first)
        empty = top == -np.inf
        shift = np.where(empty, 0.0, top)
        exp_first, _ = _vector_exp_log(first - shift, array_functions=False)
        exp_second, _ = _vector_exp_log(second - shift, array_functions=False)
        scale = w / np.where(empty, 1.0, exp_first + exp_second)
        # exp(top - top) is 1, or NaN for top = +inf: carried into the log1p.
        e = np.where(greater, exp_first, exp_second) * np.where(empty, 0.0, (top - top) + 1.0)
        want_log_lik = np.where(empty, -np.inf, top + _vector_log1p(e, array_function=False))
    assert np.array_equal(got_first, exp_first * scale, equal_nan=True)
    assert np.array_equal(got_second, exp_second * scale, equal_nan=True)
    assert np.array_equal(got_log_lik, want_log_lik, equal_nan=True)
    finite = np.isfinite(want_log_lik)
    with np.errstate(invalid="ignore"):
        accurate = top + np.log1p(np.exp(np.minimum(first, second) - top))
    np.testing.assert_allclose(got_log_lik[finite], accurate[finite], rtol=4 * ULP, atol=4 * ULP)


@pytest.mark.parametrize("n", [1, 7, 4000, 9003])
def test_normalise_pair_sum_uses_a_log_per_group(n):
    # The EM pass's form: the same responsibilities, and sum_i log p(x_i) from
    # products of 1 + e_i in four lanes, a log per 4000 rows.  Bitwise equal to
    # the same arithmetic written out here on the baseline scalar exp and log
    # (so the clone the loader picked gives the baseline bits); close to the
    # sum of the per-row log-likelihoods.
    first, second, _ = _pair_inputs(n)
    first, second = first[:n], second[:n]
    resp_first, resp_second, total = _normalise_pair(first, second, only_sum=True)
    want_first, want_second, per_row = _normalise_pair(first, second)
    assert np.array_equal(resp_first, want_first) and np.array_equal(resp_second, want_second)
    top = np.maximum(first, second)
    rest, _ = _vector_exp_log(np.minimum(first, second) - top, array_functions=False)
    lanes, logs = [0.0] * 4, 0.0
    for start in range(0, n, 4000):
        products = [1.0] * 4
        end = min(n, start + 4000)
        whole = start + (end - start) // 4 * 4
        for i in range(start, end):
            lane = (i - start) % 4 if i < whole else 0
            lanes[lane] += top[i]
            products[lane] *= 1.0 + rest[i]
        log_p = _vector_exp_log(products, array_functions=False)[1]
        logs += (log_p[0] + log_p[1]) + (log_p[2] + log_p[3])
    want = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + logs
    assert total == want
    np.testing.assert_allclose(total, per_row.sum(), rtol=1e-13)


def test_normalise_pair_sum_special_rows():
    _, _, total = _normalise_pair([-np.inf, 0.0], [-np.inf, 1.0], only_sum=True)
    assert total == -np.inf
    _, _, total = _normalise_pair([np.nan, 0.0], [0.0, 1.0], only_sum=True)
    assert np.isnan(total)
    _, _, total = _normalise_pair([np.inf, 0.0], [0.0, 1.0], only_sum=True)
    assert np.isnan(total)
