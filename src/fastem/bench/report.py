"""What ``fastem bench`` prints and draws from its results: progress lines, the Markdown report, the chart.

Everything here reads the plain dict :func:`fastem.bench.run_bench` returns
(the same data ``--json`` writes), so a saved run can be reported again.
"""
import os

import numpy as np

from fastem.bench import hmm
from fastem.bench.probes import EXP_REPEATS, GEMM_REPEATS, flop_formulas
from fastem.bench.requirements import check_requirements
from fastem.bench.runners import seconds_per_iteration

__all__ = ["format_report", "hmm_progress_line", "hmm_table_columns", "progress_line", "scaling_columns",
           "table_columns", "target_columns", "write_plot"]

# Above this share of the CPUs' time used by other processes during a case,
# the report says that case's timings are not reliable.
BUSY_MACHINE_SHARE = 0.05

MB = 1e6


def _fmt(value, digits=3):
    """Three significant digits, no exponent for the usual magnitudes."""
    if value is None:
        return "-"
    if value == 0 or abs(value) >= 1e-4:
        text = f"{value:#.{digits}g}"
        # Past `digits` integer digits, %g switches to an exponent: print the integer.
        return f"{value:.0f}" if "e" in text else text.rstrip(".")
    return f"{value:.{digits - 1}e}"


def progress_line(result):
    """One line on a finished case: each implementation's s/iter and the whole fits.

    Parameters
    ----------
    result : dict
        One entry of ``run_bench(...)["cases"]``.

    Returns
    -------
    str
    """
    parts = [f"{result['name']} (N={result['n_samples']}):"]
    for name, entry in result["per_iteration"].items():
        value = seconds_per_iteration(entry)
        parts.append(f"{name} {_fmt(value) if value is not None else entry['status']} s/iter,")
    parts.append(f"fit fastem {_fmt(result['fit']['fastem']['seconds'])} s, "
                 f"sklearn {_fmt(result['fit']['sklearn']['seconds'])} s, "
                 f"k-means init {_fmt(result['init']['seconds'] * 1e3)} ms")
    if result.get("scaling"):
        parts.append(f"(fastem on 1 thread {_fmt(result['scaling']['one_thread_seconds'])} s/iter)")
    return " ".join(parts)


def hmm_progress_line(result):
    """One line on a finished HMM case: each implementation's s/iter and the limit.

    Parameters
    ----------
    result : dict
        One entry of ``run_bench(...)["hmm_cases"]``.

    Returns
    -------
    str
    """
    count = result["n_sequences"]
    parts = [f"{result['name']} (T={result['n_samples']}, {count} sequence{'s' if count != 1 else ''}):"]
    for name, entry in result["per_iteration"].items():
        value = seconds_per_iteration(entry)
        parts.append(f"{name} {_fmt(value) if value is not None else entry['status']} s/iter,")
    parts.append(f"limit {_fmt(result['limit']['seconds'])} s ({result['limit']['bound']})")
    return " ".join(parts)


def _status_cell(entry):
    value = seconds_per_iteration(entry)
    return _fmt(value) if value is not None else entry["status"]


def _speedup_cell(result, name):
    value = result["speedup"].get(name)
    if value is not None:
        return _fmt(value)
    return result["per_iteration"][name]["status"]


def table_columns(implementations):
    """Column titles of the report's table, in order.

    Parameters
    ----------
    implementations : list of str
        As in ``run_bench(...)["implementations"]``.

    Returns
    -------
    list of str
    """
    columns = ["#", "case", "N"]
    columns += [f"{name} s/iter" for name in implementations]
    columns += [f"speed-up vs {name}" for name in implementations if name != "fastem"]
    columns += [
        "limit ms (bound)", "fastem / limit",
        "fit fastem s (iters)", "fit sklearn s (iters)", "fit sklearn / fastem",
        "peak MB fastem (NumPy, tracemalloc)", "peak MB sklearn (NumPy, tracemalloc)",
    ]
    return columns


def _table_row(number, result, implementations):
    fit = result["fit"]
    limit = result["limit"]
    row = [str(number), result["name"], str(result["n_samples"])]
    row += [_status_cell(result["per_iteration"][name]) for name in implementations]
    row += [_speedup_cell(result, name) for name in implementations if name != "fastem"]
    row += [
        f"{_fmt(limit['seconds'] * 1e3)} ({limit['bound']})",
        _fmt(result["limit_multiple"]),
        f"{_fmt(fit['fastem']['seconds'])} ({fit['fastem']['n_iter']})",
        f"{_fmt(fit['sklearn']['seconds'])} ({fit['sklearn']['n_iter']})",
        _fmt(result["fit_ratio"]),
        _fmt(fit["fastem"]["peak_bytes"] / MB),
        _fmt(fit["sklearn"]["peak_bytes"] / MB),
    ]
    return row


def _target_cell(target, status=None):
    if target is None:
        return status or "-"
    sign = "<=" if target["at_most"] else ">="
    return f"{_fmt(target['value'])} ({sign} {target['target']:g}) {'met' if target['met'] else 'missed'}"


def target_columns(implementations):
    """Column titles of the report's "Targets" table, in order.

    Parameters
    ----------
    implementations : list of str

    Returns
    -------
    list of str
    """
    columns = ["#", "case", "fastem / limit"]
    columns += [f"speed-up vs {name}" for name in implementations if name != "fastem"]
    columns += ["fit sklearn / fastem", "k-means init / fastem iter", "met"]
    return columns


def _target_row(number, result, implementations):
    chosen = result["targets"]
    row = [str(number), result["name"], _target_cell(chosen["limit"])]
    row += [_target_cell(chosen.get(f"speedup_{name}"), result["per_iteration"][name]["status"])
            for name in implementations if name != "fastem"]
    row += [_target_cell(chosen["fit"]), _target_cell(chosen["init"])]
    judged = [target for target in chosen.values() if target is not None]
    row.append(f"{sum(target['met'] for target in judged)}/{len(judged)}")
    return row


def scaling_columns(threads):
    """Column titles of the report's "Initialisation and thread scaling" table, in order.

    Parameters
    ----------
    threads : int

    Returns
    -------
    list of str
    """
    return [
        "#", "case", "k-means init ms", "init / fastem iter",
        "fastem s/iter 1 thread", f"fastem s/iter {threads} threads", f"scaling 1 -> {threads}",
        "steal 1 thread", f"steal {threads} threads",
    ]


def _share_cell(steal):
    return "-" if steal is None else f"{steal['share']:.1%}"


def _scaling_row(number, result):
    init, scaling = result["init"], result["scaling"]
    row = [str(number), result["name"], _fmt(init["seconds"] * 1e3), _fmt(init["iterations"])]
    if scaling is None:
        return row + ["-"] * 5
    return row + [
        _fmt(scaling["one_thread_seconds"]), _fmt(scaling["threads_seconds"]), _fmt(scaling["speedup"]),
        _share_cell(scaling["one_thread_steal"]), _share_cell(scaling["threads_steal"]),
    ]


def _targets_section(results):
    implementations = results["implementations"]
    threads = results["settings"]["threads"]
    lines = [
        "### Targets (issue 14)", "",
        "- fastem / limit at most 2 (1.5 from D = 32); every peer's s/iter at least 1.5 times "
        "fastem's; a whole default fit at least 10 times faster than scikit-learn's (D <= 16, else "
        "5); the k-means initialisation at most 2 of fastem's iterations",
        "",
        _markdown_table(target_columns(implementations),
                        [_target_row(number, result, implementations)
                         for number, result in enumerate(results["cases"])]),
        "", "### Initialisation and thread scaling", "",
    ]
    if not results["settings"].get("scaling", True) or threads == 1:
        lines += ["- thread scaling not measured (--no-scaling or 1 thread)", ""]
    lines.append(_markdown_table(scaling_columns(threads),
                                 [_scaling_row(number, result) for number, result in enumerate(results["cases"])]))
    return "\n".join(lines)


def hmm_table_columns():
    """Column titles of the report's "Hidden Markov model" table, in order.

    Returns
    -------
    list of str
    """
    return [
        "#", "case", "T", "sequences", "fastem s/iter", "hmmlearn s/iter", "speed-up vs hmmlearn",
        "limit ms (bound)", "fastem / limit", "throughput limit ms", "critical path ms",
        "fastem / critical path", "agreement (max rel. diff @ iters)",
    ]


def _agreement_cell(agreement):
    if agreement is None:
        return "-"
    return f"{agreement['max']:.1e} @ {agreement['iterations']}"


def _hmm_table_row(number, result):
    limit = result["limit"]
    return [
        str(number), result["name"], str(result["n_samples"]), str(result["n_sequences"]),
        _status_cell(result["per_iteration"]["fastem"]),
        _status_cell(result["per_iteration"]["hmmlearn"]),
        _fmt(result["speedup"]),
        f"{_fmt(limit['seconds'] * 1e3)} ({limit['bound']})",
        _fmt(result["limit_multiple"]),
        _fmt(limit["throughput_seconds"] * 1e3),
        _fmt(limit["latency_seconds"] * 1e3),
        _fmt(result["critical_path_multiple"]),
        _agreement_cell(result["agreement"]),
    ]


def _hmm_section(results):
    """The "Hidden Markov model" section: what was compared, the limit model, the table."""
    lines = ["### Hidden Markov model", ""]
    if results.get("hmm_skipped"):
        return "\n".join(lines + [f"- {results['hmm_skipped']}"])
    first = results["hmm_cases"][0]
    chain = first["limit"]["critical_path"]
    threads = results["settings"]["threads"]
    lines += [
        f"- fastem.GaussianHMM (n_threads={threads}) against hmmlearn {results['hmmlearn']}'s "
        f"GaussianHMM (BLAS and OpenMP limited to {threads} threads), diag covariances, both from "
        "the same start (init_params='', tol=-inf: exactly n_iter Baum-Welch iterations each, "
        "checked on monitor_.iter); s/iter measured as for the mixtures, (t(1 + m) - t(1)) / m",
        "- limit = max(memory, flops, exps, critical path) per iteration, from the probes above: "
        "bytes 2 T D (X, read by the emission and the statistics pass) + 4 T K (log-densities and "
        "posteriors, each written and read) + forward-backward's exponentials, forward messages "
        "and scales, (2 K + 1) T_s values per sequence written and read, less the last "
        f"{first['limit']['cache_bytes'] // 1024} KiB (L2) the backward pass finds in cache; at the read "
        "bandwidth; flops 3 T K D (emissions) "
        "+ 6 T K^2 (forward, backward, transition counts) + 4 T K D (statistics) at the GEMM peak; "
        "T K exps at the exp rate above (the faster of np.exp and fastem's own exp); "
        "forward-backward's flops and exps at min(S, threads) / threads of peak and rate (one "
        "thread per sequence); "
        "throughput limit = the first three only, as for the mixtures",
        f"- critical path = ceil(S / threads) x T_s steps x (5 MUL + 3 (K - 1) ADD + DIV) cycles "
        f"per forward + backward step (latencies {hmm.MUL_LATENCY}, {hmm.ADD_LATENCY}, "
        f"{hmm.DIV_LATENCY} cycles; K = {first['n_components']}: {chain['cycles_per_step']} cycles) "
        f"at {_fmt(chain['clock_hz'] / 1e9)} GHz ({chain.get('clock_source', '?')})",
        "- agreement: the largest relative difference between fastem's and hmmlearn's startprob_, "
        "transmat_, means_, covars_ and log-likelihood history after the same iterations",
        "",
        _markdown_table(hmm_table_columns(),
                        [_hmm_table_row(number, result)
                         for number, result in enumerate(results["hmm_cases"])]),
    ]
    return "\n".join(lines)


def _markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _pool_line(pool):
    name = f"{pool['user_api']} {pool.get('internal_api', '?')} {pool.get('version') or '(no version)'}"
    facts = [f"{pool.get('num_threads')} threads"]
    if pool.get("architecture"):
        facts.append(f"architecture {pool['architecture']}")
    where = os.path.basename(pool.get("filepath", "")) or pool.get("prefix", "")
    return f"- {name}: {', '.join(facts)} ({where})"


def _rates_text(machine, function):
    """The header's words on one function's rates: "exp: numpy 1240 M/s, fastem 450 M/s (...)"."""
    rates = machine[f"{function}_rates"]
    raw = machine.get("fastem_raw_rates", {}).get(function)
    parts = []
    for name, rate in rates.items():
        if rate is not None:
            parts.append(f"{name} {_fmt(rate / 1e6)} M/s")
        elif name == "fastem" and raw is not None:
            parts.append("fastem not separable from its test hook's overhead")
        else:
            parts.append(f"{name} not measured")
    text = f"{function}: " + ", ".join(parts)
    if raw is not None:
        text += f" (fastem through _testing._vector_exp_log, less its NumPy overhead; {_fmt(raw / 1e6)} M/s with it)"
    return text


def _perf_text(perf):
    if perf is None:
        return "perf stat not tried"
    if perf["available"]:
        return f"hardware counters available ({perf['message']}), not collected per case"
    return (f"no per-row hardware counts: {perf['message']} (this machine has no hardware "
            "performance counters)")


def _header(results):
    env, machine, settings = results["environment"], results["machine"], results["settings"]
    threads = settings["threads"]
    daal = (
        f"daal4py {env['daal4py']} ({env['daal4py_threads']} threads via daal4py.daalinit)"
        if results["daal4py_installed"]
        else "daal4py not installed: skipped (pip install scikit-learn-intelex to include it)"
    )
    load = env["load_average"]
    lines = [
        "## fastem bench",
        "",
        f"- fastem {env['fastem']} ({env['fastem_threads']} OpenMP threads, "
        f"built with OpenMP: {'yes' if env['fastem_built_with_openmp'] else 'no'}), "
        f"scikit-learn {env['sklearn']}, {daal}; NumPy {env['numpy']}, Python {env['python']}",
        f"- CPU: {env['cpu']}, {env['cpus_available']} CPUs available"
        + (f", load average {load[0]} {load[1]} {load[2]} at the start" if load else "")
        + (f"; other processes used {results['other_load']:.0%} of the CPUs' time during the run"
           if results["other_load"] is not None else ""),
        f"- threads: {threads} (fastem n_threads={threads}; BLAS and OpenMP limited to "
        f"{threads} by threadpoolctl for scikit-learn and daal4py); "
        f"{settings['repeats']} timed repeats, medians" + ("; --quick: N / 10" if settings["quick"] else ""),
        "- thread pools during the runs (threadpoolctl.threadpool_info()):",
    ]
    lines += ["  " + _pool_line(pool) for pool in results["thread_pools"]]
    env_vars = ", ".join(
        f"{name}={value}" if value is not None else f"{name} unset"
        for name, value in env["openblas_env"].items()
    )
    lines.append(
        f"- {env_vars} (when set, these override OpenBLAS's CPU detection and slow "
        "numpy's BLAS; left as found)"
    )
    lines += [
        f"- machine limits measured now: GEMM peak {_fmt(machine['gemm_flops'] / 1e9)} GFLOP/s "
        f"(float64 np.matmul {machine['gemm_size']}^2, {threads} BLAS threads, best of {GEMM_REPEATS}); "
        f"memory read {_fmt(machine['read_bandwidth'] / 1e9)} GB/s and copy "
        f"{_fmt(machine['copy_bandwidth'] / 1e9)} GB/s (read + write; "
        f"{machine['bandwidth_bytes'] / 2 ** 30:g} GiB, {threads} threads); "
        f"{_rates_text(machine, 'exp')}; {_rates_text(machine, 'log')} (one thread each, best of "
        f"{EXP_REPEATS} windows; the faster implementation of each sets the limit, scaled by {threads} "
        f"threads to exp {_fmt(machine['exp_rate'] / 1e6)} M/s and log {_fmt(machine['log_rate'] / 1e6)} M/s)",
        "- limit = max(bytes of X / read bandwidth, flops / GEMM peak, exps / exp rate + logs / log rate) "
        f"per iteration; the work no pass can avoid: flops {flop_formulas()}; N (K - 1) exps and N logs "
        "(the largest term of a row's log-sum-exp is exp(0); K = 2: one exp and one log1p per row)",
        "- s/iter: one EM iteration from the same start for every implementation (a random "
        "partition's means and covariances, weights 1/K), measured as (t(1 + m) - t(1)) / m "
        "so that once-per-fit work (input checks, scikit-learn's KMeans run even when all "
        "*_init are given) is left out; speed-up = their s/iter / fastem's",
        "- fit: whole fit with default settings (init_params='kmeans', tol=1e-3, "
        "random_state=0), seconds (iterations); peak MB: NumPy allocations seen by "
        "tracemalloc beyond X during that fit (fastem's per-thread C buffers are not seen)",
        "- k-means init: a default fit's initialisation, t(max_iter=0) - t(max_iter=0 from the shared "
        "start), over fastem's s/iter",
        f"- scaling: fastem's s/iter on 1 thread over its s/iter on {threads} (the figure of the first "
        "table), each beside the steal time /proc/stat reported during its measurement, as a share of "
        f"all CPUs' time; {_perf_text(results.get('perf'))}",
    ]
    return "\n".join(lines)


def format_report(results):
    """The Markdown report: a header of machine, BLAS and thread facts, then the
    mixtures' table, their "Targets" and "Initialisation and thread scaling"
    tables, and the "Hidden Markov model" section.

    Parameters
    ----------
    results : dict
        As returned by :func:`fastem.bench.run_bench`.

    Returns
    -------
    str
    """
    implementations = results["implementations"]
    rows = [_table_row(number, result, implementations) for number, result in enumerate(results["cases"])]
    text = _header(results)
    if rows:
        text += "\n\n" + _markdown_table(table_columns(implementations), rows)
        text += "\n\n" + _targets_section(results)
    hmm_results = results.get("hmm_cases", [])
    if hmm_results or results.get("hmm_skipped"):
        text += "\n\n" + _hmm_section(results)
    notes = []
    for result in results["cases"] + hmm_results:
        if result["other_load"] is not None and result["other_load"] > BUSY_MACHINE_SHARE:
            notes.append(f"- {result['name']}: other processes used {result['other_load']:.0%} "
                         "of the CPUs' time during this case: its timings are not reliable")
        for name, entry in result["per_iteration"].items():
            if entry["status"] != "ok":
                notes.append(f"- {result['name']}: {name} {entry['status']}: {entry['message']}")
            elif entry["method"] != "difference":
                notes.append(f"- {result['name']}: {name} s/iter is a whole fit over its "
                             "iterations (timer noise exceeded the timed iterations)")
    if notes:
        text += "\n\n" + "\n".join(notes)
    return text


def write_plot(results, path):
    """Save a bar chart of fastem's speed-ups per case to `path` (PNG).

    Parameters
    ----------
    results : dict
        As returned by :func:`fastem.bench.run_bench`.
    path : str

    Raises
    ------
    BenchError
        If matplotlib is not installed.
    """
    check_requirements(plot=True)
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    cases = results["cases"]
    series = [
        (f"per iteration vs {name}", [c["speedup"].get(name) for c in cases])
        for name in results["implementations"] if name != "fastem"
    ]
    series.append(("whole fit vs sklearn", [c["fit_ratio"] for c in cases]))
    width = 0.8 / len(series)
    positions = np.arange(len(cases))
    figure = Figure(figsize=(max(6.0, 1.1 * len(cases) + 2.0), 4.8), layout="constrained")
    axes = figure.add_subplot()
    for index, (label, values) in enumerate(series):
        # A case an implementation does not support gets no bar.
        heights = [v if v is not None else np.nan for v in values]
        bars = axes.bar(positions + (index - (len(series) - 1) / 2) * width, heights, width, label=label)
        axes.bar_label(bars, labels=[_fmt(v, 2) if v is not None else "" for v in values],
                       fontsize=7, padding=1)
        for bar, value in zip(bars, values):
            if value is None:
                axes.text(bar.get_x() + bar.get_width() / 2, 1.0, "n/a",
                          ha="center", va="bottom", fontsize=7, rotation=90)
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.set_yscale("log")
    axes.set_xticks(positions, [f"{c['name']}\nN={c['n_samples']}" for c in cases],
                    rotation=30, ha="right", fontsize=8)
    axes.set_ylabel("fastem speed-up (x, log scale)")
    settings = results["settings"]
    axes.set_title(f"fastem {results['environment']['fastem']}: speed-up per case "
                   f"({settings['threads']} threads, median of {settings['repeats']})")
    axes.legend(fontsize=8)
    figure.savefig(path, dpi=120)
