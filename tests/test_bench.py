"""``fastem bench``: its report, its JSON, its option errors and its limit formula.

The command runs in-process on tiny explicit cases (``--cases cov:N:D:K``)
with the machine probes shrunk, so the module takes seconds.  Nothing here
asserts a timing: only the shape of the report and that its numbers agree with
the JSON and with the documented formulas.
"""
import contextlib
import io
import json
import re
import sys

import numpy as np
import pytest

from fastem._covariance import COVARIANCE_NAMES, covariance_type
from fastem.bench import cases, probes, report, requirements, runners
from fastem.cli import main

TINY_CASES = ["full:600:2:3", "diag:800:3:4", "tied:600:3:2", "spherical:500:2:2"]

# The table's columns without daal4py, in order (written out, not taken from
# the module, so that a changed header fails here).
COLUMNS = [
    "#", "case", "N",
    "fastem s/iter", "sklearn s/iter",
    "speed-up vs sklearn",
    "limit ms (bound)", "fastem / limit",
    "fit fastem s (iters)", "fit sklearn s (iters)", "fit sklearn / fastem",
    "peak MB fastem (NumPy, tracemalloc)", "peak MB sklearn (NumPy, tracemalloc)",
]

# The "Targets (issue 14)" and "Initialisation and thread scaling" tables' columns.
TARGET_COLUMNS = [
    "#", "case", "fastem / limit", "speed-up vs sklearn", "fit sklearn / fastem",
    "k-means init / fastem iter", "met",
]
SCALING_COLUMNS = [
    "#", "case", "k-means init ms", "init / fastem iter", "fastem s/iter 1 thread",
    "fastem s/iter 2 threads", "scaling 1 -> 2", "steal 1 thread", "steal 2 threads",
]

# Table cells carry 3 significant digits.
CELL_RTOL = 5e-3


def _shrink_probes(monkeypatch):
    """Machine probes and timed iterations small enough for a unit test."""
    monkeypatch.setattr(probes, "GEMM_SIZE", 128)
    monkeypatch.setattr(probes, "BANDWIDTH_BYTES", 1 << 22)
    monkeypatch.setattr(probes, "EXP_SECONDS", 0.01)
    monkeypatch.setattr(probes, "EXP_REPEATS", 2)
    monkeypatch.setattr(runners, "ITER_TARGET_SECONDS", 0.005)
    monkeypatch.setattr(runners, "MAX_TIMED_ITERS", 3)
    monkeypatch.setattr(runners, "SETTLE_SECONDS", 0.0)


def _run_main(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(arg) for arg in argv])
    return status, out.getvalue(), err.getvalue()


def _tables(out):
    """Every Markdown table of a report, in order: (header cells, row cells) each."""
    tables, lines = [], []
    for line in out.splitlines() + [""]:
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in lines]
            assert len(cells) >= 2 and set("".join(cells[1])) <= {"-"}, out
            tables.append((cells[0], cells[2:]))
            lines = []
    return tables


def _table(out):
    """The report's first Markdown table (the mixtures' timings): header cells and row cells."""
    return _tables(out)[0]


def _number(cell):
    """The leading number of a cell such as '0.0123' or '0.379 (5)'."""
    return float(cell.split()[0])


def _in_parentheses(cell):
    return re.search(r"\((.+)\)", cell).group(1)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """One run of `fastem bench` on the tiny cases, daal4py left out: (status, out, err, json)."""
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    with pytest.MonkeyPatch.context() as monkeypatch:
        _shrink_probes(monkeypatch)
        monkeypatch.setattr(requirements, "import_daal4py", lambda: None)
        status, out, err = _run_main(
            ["bench", "--cases", ",".join(TINY_CASES), "--repeats", "1", "--threads", "2", "--json", path]
        )
    results = json.loads(path.read_text()) if status == 0 else None
    return status, out, err, results


def test_table_has_a_row_per_case_and_the_expected_columns(bench):
    status, out, err, _ = bench
    assert status == 0, err
    header, rows = _table(out)
    assert header == COLUMNS
    assert [row[1] for row in rows] == ["full:600:2:3", "diag:800:3:4", "tied:600:3:2", "spherical:500:2:2"]
    assert [row[2] for row in rows] == ["600", "800", "600", "500"]
    assert [row[0] for row in rows] == ["0", "1", "2", "3"]
    for row in rows:
        assert len(row) == len(COLUMNS)
    # Progress goes to stderr, one line per case.
    assert len(re.findall(r"^\[\d/4\] ", err, flags=re.MULTILINE)) == 4


def test_header_reports_versions_threads_blas_and_environment(bench):
    _, out, _, results = bench
    assert "scikit-learn" in out and "NumPy" in out
    assert "daal4py not installed: skipped" in out
    assert "threadpoolctl.threadpool_info()" in out
    for pool in results["thread_pools"]:
        assert {"user_api", "internal_api", "num_threads"} <= set(pool)
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        assert name in out
        assert name in results["environment"]["openblas_env"]
    assert "scaled by 2 threads" in out
    machine = results["machine"]
    for function in ("exp", "log"):
        assert machine[f"{function}_rate"] == pytest.approx(2 * machine[f"{function}_rate_one_thread"])
        rates = machine[f"{function}_rates"]
        assert set(rates) == {"numpy", "fastem"} and rates["numpy"] > 0
        # The faster implementation sets the limit, and the report gives both.
        assert machine[f"{function}_rate_one_thread"] == max(r for r in rates.values() if r is not None)
        assert machine[f"{function}_source"] in rates
        assert f"{function}: numpy " in out
    assert "tracemalloc" in out
    assert ("flops 2 N K D^2 + 4 N K D (full), 2 N D^2 + 4 N K D (tied), 8 N K D + N D (diag), "
            "4 N K D + 2 N D (spherical); N (K - 1) exps and N logs") in out
    # No hardware counters in most VMs: the report says which, instead of counts.
    assert results["perf"]["available"] in (True, False) and results["perf"]["message"]
    if not results["perf"]["available"]:
        assert f"no per-row hardware counts: {results['perf']['message']}" in out


def test_json_holds_the_numbers_of_the_table(bench):
    _, out, _, results = bench
    header, rows = _table(out)
    assert results["implementations"] == ["fastem", "sklearn"]
    assert results["settings"]["threads"] == 2 and results["settings"]["repeats"] == 1
    assert len(results["cases"]) == len(rows)
    col = {name: index for index, name in enumerate(header)}
    for row, case in zip(rows, results["cases"]):
        assert row[col["case"]] == case["name"]
        assert int(row[col["N"]]) == case["n_samples"]
        for name in ("fastem", "sklearn"):
            entry = case["per_iteration"][name]
            assert entry["status"] == "ok"
            assert _number(row[col[f"{name} s/iter"]]) == pytest.approx(entry["seconds_per_iteration"], rel=CELL_RTOL)
        assert _number(row[col["speed-up vs sklearn"]]) == pytest.approx(case["speedup"]["sklearn"], rel=CELL_RTOL)
        assert case["speedup"]["sklearn"] == pytest.approx(
            case["per_iteration"]["sklearn"]["seconds_per_iteration"]
            / case["per_iteration"]["fastem"]["seconds_per_iteration"]
        )
        limit_cell = row[col["limit ms (bound)"]]
        assert _number(limit_cell) == pytest.approx(case["limit"]["seconds"] * 1e3, rel=CELL_RTOL)
        assert _in_parentheses(limit_cell) == case["limit"]["bound"]
        assert _number(row[col["fastem / limit"]]) == pytest.approx(case["limit_multiple"], rel=CELL_RTOL)
        for name in ("fastem", "sklearn"):
            fit = case["fit"][name]
            cell = row[col[f"fit {name} s (iters)"]]
            assert _number(cell) == pytest.approx(fit["seconds"], rel=CELL_RTOL)
            assert int(_in_parentheses(cell)) == fit["n_iter"] >= 1
            peak = _number(row[col[f"peak MB {name} (NumPy, tracemalloc)"]])
            assert peak == pytest.approx(fit["peak_bytes"] / 1e6, rel=CELL_RTOL, abs=1e-6)
        assert _number(row[col["fit sklearn / fastem"]]) == pytest.approx(case["fit_ratio"], rel=CELL_RTOL)


def test_reported_limits_follow_the_documented_formula(bench):
    _, _, _, results = bench
    machine = results["machine"]
    flops_per_row = {  # documented in fastem bench's header and flop_count
        "full": lambda d, k: 2 * k * d * d + 4 * k * d,
        "tied": lambda d, k: 2 * d * d + 4 * k * d,
        "diag": lambda d, k: 8 * k * d + d,
        "spherical": lambda d, k: 4 * k * d + 2 * d,
    }
    for case in results["cases"]:
        n, d, k = case["n_samples"], case["n_features"], case["n_components"]
        flops = n * flops_per_row[case["covariance_type"]](d, k)
        expected = max(
            n * d * 8 / machine["read_bandwidth"],
            flops / machine["gemm_flops"],
            n * (k - 1) / machine["exp_rate"] + n / machine["log_rate"],
        )
        assert case["limit"]["flops"] == flops
        assert case["limit"]["exps"] == n * (k - 1) and case["limit"]["logs"] == n
        assert case["limit"]["seconds"] == pytest.approx(expected, rel=1e-12)
        assert case["limit_multiple"] == pytest.approx(
            case["per_iteration"]["fastem"]["seconds_per_iteration"] / expected
        )


def test_limit_of_a_known_case():
    # full, N=1000, D=4, K=3 on a machine of 10 GFLOP/s, 10 GB/s, 1e8 exp/s, 1e8 log/s:
    # memory 32000 B -> 3.2 us; flops 2*1000*3*16 + 4*1000*3*4 = 144000 -> 14.4 us;
    # 2000 exps and 1000 logs -> 20 + 10 us: the exps and logs bound it.
    machine = dict(gemm_flops=1e10, read_bandwidth=1e10, exp_rate=1e8, log_rate=1e8)
    limit = probes.iteration_limit(cases.Case("full", 1000, 4, 3), machine)
    assert limit["bytes"] == 32000 and limit["flops"] == 144000
    assert limit["exps"] == 2000 and limit["logs"] == 1000
    assert limit["memory_seconds"] == pytest.approx(3.2e-6)
    assert limit["flops_seconds"] == pytest.approx(1.44e-5)
    assert limit["exp_seconds"] == pytest.approx(2e-5) and limit["log_seconds"] == pytest.approx(1e-5)
    assert limit["seconds"] == limit["transcendental_seconds"] == pytest.approx(3e-5)
    assert limit["bound"] == "exp/log"
    # tied, N=1e6, D=64, K=2: 2*1e6*4096 + 4*1e6*2*64 = 8.704e9 flops -> 0.8704 s.
    limit = probes.iteration_limit(cases.Case("tied", 1_000_000, 64, 2), machine)
    assert limit["flops"] == 8_704_000_000
    assert limit["seconds"] == pytest.approx(0.8704) and limit["bound"] == "flops"
    # diag, N=1e6, D=1000, K=1: 8 GB of X -> 0.8 s; 8e9 + 1e9 flops -> 0.9 s; no exp or log.
    limit = probes.iteration_limit(cases.Case("diag", 1_000_000, 1000, 1), machine, itemsize=8)
    assert limit["flops"] == 9_000_000_000 and limit["exps"] == limit["logs"] == 0
    assert limit["bound"] == "flops" and limit["seconds"] == pytest.approx(0.9)
    assert probes.flop_count("spherical", 10, 3, 2) == 4 * 10 * 2 * 3 + 2 * 10 * 3


def test_two_components_need_one_exp_and_one_log_per_row():
    # The logistic form: exp(-|l1 - l2|) and log1p of it, whatever D.
    assert probes.transcendental_count(1_000_000, 2) == (1_000_000, 1_000_000)
    # K components: the largest term is exp(0), so K - 1 exps and one log per row.
    assert probes.transcendental_count(1000, 16) == (15_000, 1000)
    assert probes.transcendental_count(1000, 1) == (0, 0)
    # full 1e6 x 1, K = 2 at 1e8 exp/s and 5e7 log/s: 10 ms + 20 ms, above 1.2e7 flops (1.2 ms).
    machine = dict(gemm_flops=1e10, read_bandwidth=1e10, exp_rate=1e8, log_rate=5e7)
    limit = probes.iteration_limit(cases.Case("full", 1_000_000, 1, 2), machine)
    assert limit["exps"] == limit["logs"] == 1_000_000 and limit["flops"] == 12_000_000
    assert limit["seconds"] == pytest.approx(0.03) and limit["bound"] == "exp/log"


def test_the_probe_takes_the_faster_exp_and_log(monkeypatch):
    _shrink_probes(monkeypatch)
    # fastem's exp faster than NumPy's, its log slower; a rate not measured is ignored.
    rates = dict(exp=dict(numpy=1e8, fastem=3e8), log=dict(numpy=2e8, fastem=None),
                 fastem_raw=dict(exp=2e8, log=5e7))
    monkeypatch.setattr(probes, "_measure_exp_log", lambda: rates)
    machine = probes.measure_machine(2)
    assert machine["exp_source"] == "fastem" and machine["exp_rate_one_thread"] == 3e8
    assert machine["exp_rate"] == 6e8
    assert machine["log_source"] == "numpy" and machine["log_rate"] == 4e8
    assert machine["exp_rates"] == rates["exp"] and machine["log_rates"] == rates["log"]
    assert probes.fastest(dict(numpy=5e8, fastem=1e8)) == ("numpy", 5e8)


def test_exp_log_probe_measures_numpy_and_fastem(monkeypatch):
    _shrink_probes(monkeypatch)
    rates = probes._measure_exp_log()
    assert rates["exp"]["numpy"] > 0 and rates["log"]["numpy"] > 0
    # With fastem's test hooks installed, its raw rates are always measured;
    # the net ones when the hook's loops stand out from its overhead.
    assert rates["fastem_raw"]["exp"] > 0 and rates["fastem_raw"]["log"] > 0
    for function in ("exp", "log"):
        net = rates[function]["fastem"]
        assert net is None or net >= rates["fastem_raw"][function]


def test_targets_scaling_and_init_are_reported(bench):
    _, out, _, results = bench
    tables = _tables(out)
    assert len(tables) == 3
    (header, rows), (target_header, target_rows), (scaling_header, scaling_rows) = tables
    assert target_header == TARGET_COLUMNS and scaling_header == SCALING_COLUMNS
    assert "### Targets (issue 14)" in out and "### Initialisation and thread scaling" in out
    assert results["settings"]["scaling"] is True
    col = {name: index for index, name in enumerate(TARGET_COLUMNS)}
    scol = {name: index for index, name in enumerate(SCALING_COLUMNS)}
    for row, srow, case in zip(target_rows, scaling_rows, results["cases"]):
        assert row[col["case"]] == srow[scol["case"]] == case["name"]
        chosen = case["targets"]
        assert set(chosen) == {"limit", "speedup_sklearn", "fit", "init"}
        for key, column in (("limit", "fastem / limit"), ("speedup_sklearn", "speed-up vs sklearn"),
                            ("fit", "fit sklearn / fastem"), ("init", "k-means init / fastem iter")):
            cell = row[col[column]]
            assert _number(cell) == pytest.approx(chosen[key]["value"], rel=CELL_RTOL)
            assert cell.endswith("met" if chosen[key]["met"] else "missed")
        assert row[col["met"]] == f"{sum(t['met'] for t in chosen.values())}/4"
        # The tiny cases have D <= 16: limit within 2x, whole fit 10x.
        assert chosen["limit"]["target"] == 2.0 and chosen["fit"]["target"] == 10.0
        assert chosen["init"]["target"] == 2.0 and chosen["speedup_sklearn"]["target"] == 1.5
        init = case["init"]
        assert init["seconds"] >= 0 and len(init["default"]) == len(init["given"]) == 1
        assert init["iterations"] == pytest.approx(
            init["seconds"] / case["per_iteration"]["fastem"]["seconds_per_iteration"])
        assert _number(srow[scol["k-means init ms"]]) == pytest.approx(init["seconds"] * 1e3, rel=CELL_RTOL,
                                                                        abs=1e-3)
        scaling = case["scaling"]
        assert scaling["one_thread"]["status"] == "ok"
        assert scaling["threads_seconds"] == case["per_iteration"]["fastem"]["seconds_per_iteration"]
        assert scaling["speedup"] == pytest.approx(scaling["one_thread_seconds"] / scaling["threads_seconds"])
        assert _number(srow[scol["scaling 1 -> 2"]]) == pytest.approx(scaling["speedup"], rel=CELL_RTOL)
        for key in ("one_thread_steal", "threads_steal"):
            steal = scaling[key]
            if steal is not None:  # None only where /proc/stat cannot be read
                assert steal["seconds"] >= 0 and 0 <= steal["share"] <= 1
        assert srow[scol["steal 1 thread"]].endswith("%") or srow[scol["steal 1 thread"]] == "-"


def test_targets_depend_on_the_width_of_the_case():
    from fastem.bench import run

    def result(d, limit_multiple, speedup, fit_ratio, init_iterations):
        return dict(n_features=d, limit_multiple=limit_multiple, speedup=speedup, fit_ratio=fit_ratio,
                    init=dict(iterations=init_iterations))

    narrow = run.targets(result(16, 1.9, dict(sklearn=12.0, daal4py=1.2), 9.0, 2.0))
    assert narrow["limit"] == dict(value=1.9, target=2.0, at_most=True, met=True)
    assert narrow["speedup_sklearn"]["met"] and not narrow["speedup_daal4py"]["met"]
    assert narrow["fit"]["target"] == 10.0 and not narrow["fit"]["met"]
    assert narrow["init"]["met"]  # at most two iterations
    wide = run.targets(result(32, 1.9, dict(sklearn=2.0, daal4py=None), 6.0, 2.5))
    assert wide["limit"]["target"] == 1.5 and not wide["limit"]["met"]
    assert wide["speedup_daal4py"] is None  # daal4py did not run the case
    assert wide["fit"]["target"] == 5.0 and wide["fit"]["met"]
    assert not wide["init"]["met"]


def test_scaling_can_be_left_out(monkeypatch):
    from fastem.bench import run

    _shrink_probes(monkeypatch)
    monkeypatch.setattr(requirements, "import_daal4py", lambda: None)
    results = run.run_bench(cases.select_cases("full:600:2:3"), threads=2, repeats=1, scaling=False)
    assert results["settings"]["scaling"] is False and results["cases"][0]["scaling"] is None
    out = report.format_report(results)
    assert "thread scaling not measured" in out
    _, rows = _tables(out)[2]
    assert rows[0][4:] == ["-"] * 5


def test_cli_no_scaling_skips_the_one_thread_runs(monkeypatch):
    from fastem.bench import run

    seen = {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return run.run_bench(*args, **kwargs)

    _shrink_probes(monkeypatch)
    monkeypatch.setattr(requirements, "import_daal4py", lambda: None)
    monkeypatch.setattr("fastem.bench.run_bench", spy)
    status, out, err = _run_main(["bench", "--cases", "full:600:2:3", "--repeats", "1", "--no-scaling"])
    assert status == 0, err
    assert seen["scaling"] is False
    assert "thread scaling not measured" in out


# ------------------------------------------------------------------- cases

def test_select_cases_by_index_name_and_spec():
    grid = cases.DEFAULT_GRID
    assert cases.select_cases() == list(grid)
    assert cases.select_cases("0,5") == [grid[0], grid[5]]
    assert cases.select_cases("diag:1e6:16:16") == [grid[5]]
    # A spec with a grid case's values is that case (with its data), whatever the spelling.
    assert cases.select_cases("full:1000000:1:2") == [grid[0]]
    assert grid[0].data == "example" and grid[0].name == "full:1e6:1:2"
    custom = cases.select_cases("full:2000:2:3")
    assert custom == [cases.Case("full", 2000, 2, 3)] and custom[0].data == "blobs"
    quick = cases.select_cases("1, 2", quick=True)
    assert [c.n_samples for c in quick] == [20_000, 20_000]
    assert [c.name for c in cases.DEFAULT_GRID] == [
        "full:1e6:1:2", "full:2e5:2:3", "full:2e5:8:8", "full:1e5:32:16", "full:2e4:128:8",
        "diag:1e6:16:16", "diag:1e5:64:64", "spherical:1e6:8:8", "tied:2e5:16:8",
    ]


@pytest.mark.parametrize("name", COVARIANCE_NAMES)
def test_partition_start_is_a_fair_shared_start(name):
    from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

    case = cases.Case(name, 900, 3, 3)
    X = cases.make_data(case)
    assert X.shape == (900, 3) and X.dtype == np.float64 and X.flags.c_contiguous
    start = cases.partition_start(X, 3, name)
    np.testing.assert_array_equal(start.weights, np.full(3, 1 / 3))
    # Each share is a random third of X, so its mean is near the overall mean.
    spread = X.std(axis=0)
    assert np.all(np.abs(start.means - X.mean(axis=0)) < 0.25 * spread)
    kind = covariance_type(name)
    assert start.covariances.shape == start.precisions.shape == kind.shape(3, 3)
    if kind.matrix:
        identity = np.broadcast_to(np.eye(3), start.precisions.shape)
        np.testing.assert_allclose(start.precisions @ start.covariances, identity, atol=1e-10)
    else:
        np.testing.assert_allclose(start.precisions * start.covariances, 1.0)
    # scikit-learn accepts the start as it is.
    model = SklearnGaussianMixture(3, covariance_type=name, max_iter=1, tol=0.0,
                                   **start.init_kwargs())
    with pytest.warns(Warning):  # stopped by max_iter=1
        model.fit(X)


# ------------------------------------------------------------------ errors

BAD_OPTIONS = {
    "threads 0": (["--threads", "0"], "--threads: must be at least 1"),
    "repeats 0": (["--repeats", "0"], "--repeats: must be at least 1"),
    "unknown case": (["--cases", "big"], "is neither an index"),
    "index out of range": (["--cases", "99"], "index 99 out of range"),
    "spec with three fields": (["--cases", "full:100:2"], "is neither an index"),
    "unknown covariance type": (["--cases", "round:100:2:2"], "covariance type must be one of"),
    "spec with a bad count": (["--cases", "full:100:two:2"], "D must be a positive integer"),
    "fewer than 2 rows per component": (["--cases", "full:5:2:3"], "N must be at least 2 K"),
    "empty case list": (["--cases", ","], "expected at least one case"),
    "json into a missing directory": (lambda tmp: ["--json", tmp / "no" / "b.json"], "does not exist"),
    "plot onto a directory": (lambda tmp: ["--plot", tmp], "is a directory"),
}


@pytest.mark.parametrize("name", BAD_OPTIONS)
def test_bad_options_exit_2_with_one_line(tmp_path, name):
    argv, message = BAD_OPTIONS[name]
    if callable(argv):
        argv = argv(tmp_path)
    status, out, err = _run_main(["bench", "--cases", "full:600:2:3", *argv])
    assert status == 2
    assert out == ""  # failed before measuring anything
    assert err.startswith("fastem: error: ") and err.count("\n") == 1, err
    assert message in err


def test_plot_without_matplotlib_exits_2_with_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    status, out, err = _run_main(["bench", "--cases", "full:600:2:3", "--plot", tmp_path / "b.png"])
    assert status == 2 and out == ""
    assert "matplotlib" in err and 'pip install "fastem[bench]"' in err
    assert err.count("\n") == 1


def test_without_scikit_learn_exits_2_with_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.mixture", None)
    status, out, err = _run_main(["bench", "--cases", "full:600:2:3"])
    assert status == 2 and out == ""
    assert "scikit-learn" in err and "pip install" in err


# -------------------------------------------------------- optional extras

def test_plot_is_a_png(bench, tmp_path):
    pytest.importorskip("matplotlib")
    _, _, _, results = bench
    path = tmp_path / "speedups.png"
    report.write_plot(results, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_daal4py_column_when_installed(monkeypatch):
    if requirements.import_daal4py() is None:
        pytest.skip("daal4py is not installed (it is optional)")
    _shrink_probes(monkeypatch)
    status, out, err = _run_main(["bench", "--cases", "full:600:2:3,tied:600:2:2", "--repeats", "1"])
    assert status == 0, err
    header, rows = _table(out)
    assert header[3:6] == ["fastem s/iter", "sklearn s/iter", "daal4py s/iter"]
    assert header[6:8] == ["speed-up vs sklearn", "speed-up vs daal4py"]
    daal = header.index("daal4py s/iter")
    # em_gmm has full and diagonal covariances only.
    assert _number(rows[0][daal]) > 0
    assert rows[1][daal] == "unsupported" and rows[1][header.index("speed-up vs daal4py")] == "unsupported"
    assert "tied:600:2:2: daal4py unsupported" in out


def test_only_daal4py_failures_are_reported_instead_of_raised():
    class Runner:
        def __init__(self, name):
            self.name = name

    error = RuntimeError("Error during covariance computation\n for component on M step")
    assert runners._failure(Runner("daal4py"), error) == dict(
        status="error", message="RuntimeError: Error during covariance computation for component on M step"
    )
    unsupported = runners._Unsupported("em_gmm has no tied covariance")
    assert runners._failure(Runner("daal4py"), unsupported)["status"] == "unsupported"
    for name in ("fastem", "sklearn"):
        with pytest.raises(RuntimeError, match="covariance computation"):
            runners._failure(Runner(name), error)


def test_timed_iterations_cover_the_setup_within_bounds():
    # 10 ms iterations, fast setup: about ITER_TARGET_SECONDS (0.5 s) of iterations.
    assert runners._timed_iterations(0.01, 0.05) == 50
    # 0.1 s iterations after a 1.2 s KMeans: as long as the setup, 12 iterations.
    assert runners._timed_iterations(0.1, 1.2) == 12
    # A 10 s setup is capped at MAX_TIMED_SECONDS (2 s); slow iterations get the minimum 2.
    assert runners._timed_iterations(0.1, 10.0) == 20
    assert runners._timed_iterations(3.0, 0.1) == 2
    assert runners._timed_iterations(1e-6, 0.0) == 50
