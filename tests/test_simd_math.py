"""The kernels' own vector exp and log: accuracy against libm, same result on every CPU path."""
import numpy as np
import pytest

from fastem._kernels import simd_level
from fastem._testing import _vector_exp_log

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
