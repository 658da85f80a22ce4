"""``fastem bench``'s hidden Markov model cases: the run, the table, the limit model, hmmlearn missing.

As in ``test_bench.py``, the command runs in-process on tiny cases with the
machine probes shrunk, and nothing asserts a timing: only what the report and
the JSON say, and that the limit counts what its docstrings say.
"""
import json
import sys

import numpy as np
import pytest

from fastem.bench import cases, hmm, requirements
from test_bench import CELL_RTOL, _number, _run_main, _shrink_probes

TINY_HMM_CASES = ["hmm:2000:2:3:1", "hmm:2000:2:3:4"]
TINY_HMM_NAMES = ["hmm:2e3:2:3:1", "hmm:2e3:2:3:4"]  # as the report spells them

# The HMM table's columns, in order (written out so that a changed header fails here).
HMM_COLUMNS = [
    "#", "case", "T", "sequences", "fastem s/iter", "hmmlearn s/iter", "speed-up vs hmmlearn",
    "limit ms (bound)", "fastem / limit", "throughput limit ms", "critical path ms",
    "fastem / critical path", "agreement (max rel. diff @ iters)",
]


def _hmm_table(out):
    """Header and rows of the table after the "Hidden Markov model" heading."""
    section = out.split("### Hidden Markov model", 1)[1]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return cells[0], cells[2:]


@pytest.fixture(scope="module")
def hmm_bench(tmp_path_factory):
    """One `fastem bench` run of a tiny mixture case and the tiny HMM cases: (status, out, err, json)."""
    pytest.importorskip("hmmlearn")
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    with pytest.MonkeyPatch.context() as monkeypatch:
        _shrink_probes(monkeypatch)
        monkeypatch.setattr(requirements, "import_daal4py", lambda: None)
        status, out, err = _run_main(
            ["bench", "--cases", ",".join(["full:600:2:3", *TINY_HMM_CASES]),
             "--repeats", "1", "--threads", "2", "--json", path]
        )
    results = json.loads(path.read_text()) if status == 0 else None
    return status, out, err, results


def test_hmm_cases_run_end_to_end_into_their_own_table(hmm_bench):
    status, out, err, results = hmm_bench
    assert status == 0, err
    # The mixture's table is still there, before the HMM section.
    assert out.index("| full:600:2:3 |") < out.index("### Hidden Markov model")
    header, rows = _hmm_table(out)
    assert header == HMM_COLUMNS
    assert [row[1] for row in rows] == TINY_HMM_NAMES
    assert [row[3] for row in rows] == ["1", "4"]
    assert "hmmlearn 0.3.3" in out or f"hmmlearn {results['hmmlearn']}" in out
    # One progress line per case, numbered over both kinds.
    assert "[2/3] hmm:2e3:2:3:1" in err and "[3/3] hmm:2e3:2:3:4" in err
    assert results["hmm_skipped"] is None
    assert [case["name"] for case in results["hmm_cases"]] == TINY_HMM_NAMES


def test_hmm_json_holds_the_numbers_of_the_table(hmm_bench):
    _, out, _, results = hmm_bench
    header, rows = _hmm_table(out)
    col = {name: index for index, name in enumerate(header)}
    for row, case in zip(rows, results["hmm_cases"]):
        fastem_entry, hmmlearn_entry = (case["per_iteration"][name] for name in ("fastem", "hmmlearn"))
        assert fastem_entry["status"] == hmmlearn_entry["status"] == "ok"
        # Both ran the same iterations in each timed pair of fits.
        assert fastem_entry["iterations"] == fastem_entry["timed_iterations"]
        assert hmmlearn_entry["iterations"] == hmmlearn_entry["timed_iterations"]
        ours, theirs = fastem_entry["seconds_per_iteration"], hmmlearn_entry["seconds_per_iteration"]
        assert _number(row[col["fastem s/iter"]]) == pytest.approx(ours, rel=CELL_RTOL)
        assert _number(row[col["hmmlearn s/iter"]]) == pytest.approx(theirs, rel=CELL_RTOL)
        assert case["speedup"] == pytest.approx(theirs / ours)
        limit = case["limit"]
        assert row[col["limit ms (bound)"]] == f"{row[col['limit ms (bound)']].split()[0]} ({limit['bound']})"
        assert _number(row[col["limit ms (bound)"]]) == pytest.approx(limit["seconds"] * 1e3, rel=CELL_RTOL)
        assert limit["seconds"] == max(limit["memory_seconds"], limit["flops_seconds"],
                                       limit["exp_seconds"], limit["latency_seconds"])
        assert limit["throughput_seconds"] == max(limit["memory_seconds"], limit["flops_seconds"],
                                                  limit["exp_seconds"])
        assert case["limit_multiple"] == pytest.approx(ours / limit["seconds"])
        assert _number(row[col["critical path ms"]]) == pytest.approx(limit["latency_seconds"] * 1e3,
                                                                      rel=CELL_RTOL)
        # Same start, same iterations: the two implementations reach the same parameters.
        agreement = case["agreement"]
        assert agreement["iterations"] >= 1
        assert agreement["max"] < 1e-6
        assert row[col["agreement (max rel. diff @ iters)"]].endswith(f"@ {agreement['iterations']}")


def test_hmm_limit_counts_what_its_docstrings_say():
    machine = dict(gemm_flops=1e10, read_bandwidth=1e10, exp_rate=1e8)
    # One sequence of T = 2e5, D = 4, K = 8: its two T x K arrays (25.6 MB) spill from cache.
    one = hmm.HMMCase(200_000, 4, 8, 1)
    assert hmm.hmm_flop_count(one) == 121_600_000  # 7 T K D + 6 T K^2
    assert hmm.hmm_bytes(one, cache_bytes=0) == 118_400_000  # (2 T D + 8 T K + 2 T) x 8
    # A 1 MiB cache keeps the last MiB of the 27.2 MB of storage for the backward pass.
    assert hmm.hmm_bytes(one, cache_bytes=1 << 20) == 64_000_000 + 2 * (27_200_000 - (1 << 20))
    assert hmm.step_cycles(8) == 91  # 5 x 3 + 21 x 3 + 13
    limit = hmm.hmm_iteration_limit(one, machine, threads=2, clock_hz=2e9, cache_bytes=0)
    assert limit["exps"] == 1_600_000
    assert limit["memory_seconds"] == pytest.approx(11.84e-3)
    # One sequence uses one of the 2 threads: forward-backward's 76.8 Mflop
    # and the 1.6e6 exps at half the peak and rate; the rest (44.8 Mflop) at all of it.
    assert limit["forward_backward_share"] == 0.5
    assert limit["flops_seconds"] == pytest.approx(4.48e-3 + 15.36e-3)
    assert limit["exp_seconds"] == pytest.approx(32e-3)
    # The chain: 2e5 steps of 91 cycles at 2 GHz, whatever the threads.
    assert limit["latency_seconds"] == pytest.approx(9.1e-3)
    assert limit["throughput_seconds"] == pytest.approx(32e-3)
    assert limit["seconds"] == pytest.approx(32e-3) and limit["bound"] == "exp"
    # 20 sequences keep both threads busy: everything at the full peak and rate.
    limit = hmm.hmm_iteration_limit(hmm.HMMCase(200_000, 4, 8, 20), machine, threads=2,
                                    clock_hz=2e9, cache_bytes=2 << 20)
    assert limit["forward_backward_share"] == 1.0
    assert limit["flops_seconds"] == pytest.approx(12.16e-3) and limit["exp_seconds"] == pytest.approx(16e-3)
    assert limit["memory_seconds"] == pytest.approx(6.4e-3)
    # 20 sequences of 1e4: 1.36 MB of storage each, all but 1 MiB of it from
    # cache; with 2 MiB none: (2 T D + 4 T K) x 8. 10 sequences per thread.
    twenty = hmm.HMMCase(200_000, 4, 8, 20)
    assert hmm.hmm_bytes(twenty, cache_bytes=1 << 20) == 64_000_000 + 20 * 2 * (1_360_000 - (1 << 20))
    assert hmm.hmm_bytes(twenty, cache_bytes=2 << 20) == 64_000_000
    chain = hmm.critical_path(twenty, threads=2, clock_hz=2e9)
    assert chain["steps"] == 100_000 and chain["seconds"] == pytest.approx(4.55e-3)
    # A slow clock makes the single sequence latency-bound: 2e5 x 91 cycles at 0.5 GHz.
    limit = hmm.hmm_iteration_limit(one, machine, threads=2, clock_hz=5e8, cache_bytes=0)
    assert limit["bound"] == "latency" and limit["seconds"] == pytest.approx(36.4e-3)


def test_hmm_data_is_a_sticky_chain_and_the_start_favours_no_state():
    case = hmm.HMMCase(20_000, 3, 4, 5)
    X, states = hmm.make_hmm_data(case)
    assert X.shape == (20_000, 3) and X.dtype == np.float64 and X.flags.c_contiguous
    assert set(np.unique(states)) == {0, 1, 2, 3}
    stays = np.mean(states[1:] == states[:-1])
    assert abs(stays - hmm.STICKINESS) < 0.01
    np.testing.assert_array_equal(hmm.make_hmm_data(case)[0], X)  # seeded
    start = hmm.hmm_start(X, 4)
    np.testing.assert_allclose(start.startprob, 0.25)
    np.testing.assert_allclose(start.transmat.sum(axis=1), 1.0)
    assert start.transmat.min() == pytest.approx(hmm.START_MIXING / 4)
    assert start.means.shape == start.covars.shape == (4, 3) and np.all(start.covars > 0)
    lengths = case.lengths()
    assert lengths.sum() == 20_000 and len(lengths) == 5 and lengths.dtype == np.int64
    assert list(hmm.HMMCase(10, 1, 2, 3).lengths()) == [4, 3, 3]


def test_select_hmm_cases_by_word_name_and_spec():
    from fastem.bench import GRID, HMM_GRID

    assert [case.name for case in HMM_GRID] == ["hmm:2e5:4:8:1", "hmm:2e5:4:8:20"]
    assert cases.select_cases("hmm", grid=GRID) == list(HMM_GRID)
    assert cases.select_cases("hmm:2e5:4:8:20", grid=GRID) == [HMM_GRID[1]]
    assert cases.select_cases("0,hmm:2000:2:3:4", grid=GRID) == [GRID[0], hmm.HMMCase(2000, 2, 3, 4)]
    assert cases.select_cases(str(len(cases.DEFAULT_GRID)), grid=GRID) == [HMM_GRID[0]]
    quick = cases.select_cases("hmm", quick=True, grid=GRID)
    assert [case.n_samples for case in quick] == [20_000, 20_000]
    # The mixtures' grid alone has no HMM case.
    with pytest.raises(requirements.BenchError, match="no HMM case"):
        cases.select_cases("hmm")


@pytest.mark.parametrize("spec, message", [
    ("hmm:2e5:4:8", "an HMM case is hmm:T:D:K:S"),
    ("hmm:2e5:4:x:1", "K must be a positive integer"),
    ("hmm:3:1:2:2", "T must be at least 2 S"),
])
def test_bad_hmm_specs_exit_2_with_one_line(spec, message):
    status, out, err = _run_main(["bench", "--cases", spec])
    assert status == 2 and out == ""
    assert err.startswith("fastem: error: ") and err.count("\n") == 1
    assert message in err


def test_without_hmmlearn_the_hmm_cases_are_skipped_with_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "hmmlearn", None)  # import hmmlearn now fails
    monkeypatch.setitem(sys.modules, "hmmlearn.hmm", None)
    _shrink_probes(monkeypatch)
    monkeypatch.setattr(requirements, "import_daal4py", lambda: None)
    status, out, err = _run_main(["bench", "--cases", "full:600:2:3,hmm:2000:2:3:1", "--repeats", "1"])
    assert status == 0, err
    assert "| full:600:2:3 |" in out
    section = out.split("### Hidden Markov model", 1)[1]
    assert "hmmlearn is not installed" in section and 'pip install "fastem[bench]"' in section
    assert "| hmm:" not in out
    assert "hmmlearn is not installed" in err and "[1/1] full:600:2:3" in err
