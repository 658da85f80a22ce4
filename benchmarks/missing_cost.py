"""What missing values cost an EM iteration: issue 9's figure (target: at most 3x).

On one problem (by default full covariances, N = 2e5, D = 8, K = 8, the
blobs of ``fastem bench``'s case ``full:2e5:8:8``) it times one EM iteration of
``GaussianMixture`` from the same fitted start in four cases, side by side in
one run, the cases taking turns in every repeat:

- complete: no NaN, ``missing="error"`` (the ordinary fit);
- complete, em: no NaN, ``missing="em"`` (must cost the same: the same pass);
- MCAR: each value missing with probability ``--fraction`` (20 %), independently,
  so at D = 8 rows fall into up to 2^8 patterns;
- sensors: ``--sensors`` (3) columns missing together in ``--fraction`` of the
  rows (a handful of sensors that drop out at once: two patterns).

Each timed call is ``fit`` with ``warm_start=True, max_iter=1`` on a fresh copy
of the start (one E-step and M-step plus the call's checks of X), as in
``benchmarks/test_bench_em.py``; with ``--iters M`` (default 5) the iteration
is also timed as a warm ``fit`` of M iterations divided by M, which spreads
the checks of X over M iterations.  The start is the shared one of ``fastem
bench`` (``partition_start`` on the complete X), fitted one iteration.
Medians over ``--repeats`` and the ratio to the complete case are printed as a
Markdown table, then the fill of the MCAR data (``impute``) against
column-mean imputation (time and RMSE against the true values), then the
thread pools that ran (threadpoolctl).

    python benchmarks/missing_cost.py [--threads 2] [--repeats 7] [--iters 5]
        [--n 200000] [--d 8] [--k 8] [--fraction 0.2] [--sensors 3] [--covariance-type full]
"""
import argparse
import copy
import statistics
import time
import warnings

import numpy as np
import threadpoolctl

import fastem
from fastem.bench.cases import Case, make_data, partition_start

# Seed of the missingness masks (the data use fastem.bench's own seed).
MASK_SEED = 9
# Pause before each timed call, so BLAS/OpenMP threads that spun in set-up go idle.
SETTLE_SECONDS = 0.1

CASES = ("complete", "complete, em", "MCAR", "sensors")


def problem(n=200_000, d=8, k=8, covariance_type="full", fraction=0.2, sensors=3, seed=MASK_SEED):
    """The data of every case and the shared start.

    Returns
    -------
    X : ndarray of shape (n, d)
        The complete data.
    datasets : dict
        Case name -> (X of the case, ``missing`` parameter).
    start : fastem.bench.cases.StartingPoint
    """
    X = make_data(Case(covariance_type, n, d, k))
    rng = np.random.default_rng(seed)
    mcar = np.where(rng.random(X.shape) < fraction, np.nan, X)
    sensor_rows = rng.random(n) < fraction
    dropped = np.where(sensor_rows[:, None] & (np.arange(d) >= d - sensors)[None, :], np.nan, X)
    datasets = {
        "complete": (X, "error"),
        "complete, em": (X, "em"),
        "MCAR": (mcar, "em"),
        "sensors": (dropped, "em"),
    }
    return X, datasets, partition_start(X, k, covariance_type)


def fitted_start(X, missing, start, covariance_type, threads):
    """A model fitted one iteration from `start`, set to continue with ``warm_start``."""
    model = fastem.GaussianMixture(
        len(start.weights), covariance_type=covariance_type, max_iter=1, tol=0.0,
        n_threads=threads, missing=missing, **start.init_kwargs())
    quiet_fit(model, X)
    return model.set_params(warm_start=True)


def quiet_fit(model, X):
    """Fit without the warning of a fit that stopped at ``max_iter`` (the benchmark asks for it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastem.ConvergenceWarning)
        return model.fit(X)


def time_iterations(model, X, iterations):
    """Seconds per iteration of a warm fit of `iterations` iterations on a copy of `model`."""
    model = copy.deepcopy(model).set_params(max_iter=iterations)
    time.sleep(SETTLE_SECONDS)
    began = time.perf_counter()
    quiet_fit(model, X)
    return (time.perf_counter() - began) / iterations


def describe_gaps(X):
    """(share of values missing, share of rows with a gap, number of missingness patterns)."""
    gaps = np.isnan(X)
    patterns = len(np.unique(np.packbits(gaps, axis=1), axis=0))
    return gaps.mean(), gaps.any(axis=1).mean(), patterns


def mean_fill(X):
    """Column-mean imputation: the baseline."""
    return np.where(np.isnan(X), np.nanmean(X, axis=0), X)


def blas_pools():
    """One line per BLAS or OpenMP library loaded, as threadpoolctl sees it."""
    lines = []
    for pool in threadpoolctl.threadpool_info():
        lines.append(f"- {pool['user_api']}: {pool['internal_api']} {pool.get('version') or ''}"
                     f" ({pool.get('architecture') or 'architecture unknown'}), "
                     f"{pool['num_threads']} threads, {pool['filepath'].rsplit('/', 1)[-1]}")
    return lines


def run(args):
    """Time every case; returns {case: {"one": [...], "amortised": [...]}} and the problem."""
    X, datasets, start = problem(args.n, args.d, args.k, args.covariance_type, args.fraction,
                                 args.sensors)
    models = {case: fitted_start(data, missing, start, args.covariance_type, args.threads)
              for case, (data, missing) in datasets.items()}
    times = {case: {"one": [], "amortised": []} for case in CASES}
    for _ in range(args.repeats):
        for case in CASES:       # the cases take turns, so drift in the machine hits all alike
            data = datasets[case][0]
            times[case]["one"].append(time_iterations(models[case], data, 1))
            if args.iters > 1:
                times[case]["amortised"].append(time_iterations(models[case], data, args.iters))
    return times, X, datasets, models


def report(args, times, X, datasets, models):
    print(f"fastem {fastem.__version__}: one EM iteration with and without missing values, "
          f"{args.covariance_type}, N={args.n}, D={args.d}, K={args.k}, {args.threads} "
          f"thread{'s' if args.threads != 1 else ''}, "
          f"medians of {args.repeats}\n")
    amortised = args.iters > 1
    header = "| case | values missing | rows with a gap | patterns | s, 1 iteration | ratio |"
    rule = "|---|---|---|---|---|---|"
    if amortised:
        header += f" s per iteration of {args.iters} | ratio |"
        rule += "---|---|"
    print(header)
    print(rule)
    base_one = statistics.median(times["complete"]["one"])
    base_many = statistics.median(times["complete"]["amortised"]) if amortised else None
    for case in CASES:
        share, rows, patterns = describe_gaps(datasets[case][0])
        one = statistics.median(times[case]["one"])
        line = (f"| {case} | {share:.1%} | {rows:.1%} | {patterns} | {one:.4f} | "
                f"{one / base_one:.2f} |")
        if amortised:
            many = statistics.median(times[case]["amortised"])
            line += f" {many:.4f} | {many / base_many:.2f} |"
        print(line)
    print(f"\nevery time (s): " + "; ".join(
        f"{case}: " + ", ".join(f"{t:.4f}" for t in times[case]["one"]) for case in CASES))

    # The fill of the MCAR data, against column means: time, and RMSE against the truth.
    X_gaps = datasets["MCAR"][0]
    gaps = np.isnan(X_gaps)
    fitted = quiet_fit(copy.deepcopy(models["MCAR"]).set_params(max_iter=500, tol=1e-3), X_gaps)
    fill_times, mean_times = [], []
    for _ in range(args.repeats):
        began = time.perf_counter()
        filled = fitted.impute(X_gaps)
        fill_times.append(time.perf_counter() - began)
        began = time.perf_counter()
        means = mean_fill(X_gaps)
        mean_times.append(time.perf_counter() - began)
    rmse = np.sqrt(np.mean((filled[gaps] - X[gaps]) ** 2))
    rmse_means = np.sqrt(np.mean((means[gaps] - X[gaps]) ** 2))
    print(f"\nfilling the MCAR data (for information), with the model fitted on to tol=1e-3 "
          f"({fitted.n_iter_} more iterations)\n")
    print("| fill | s | RMSE at the gaps |")
    print("|---|---|---|")
    print(f"| impute (conditional mean) | {statistics.median(fill_times):.4f} | {rmse:.4f} |")
    print(f"| column means | {statistics.median(mean_times):.4f} | {rmse_means:.4f} |")
    print(f"\nthreads: fastem n_threads={args.threads} "
          f"(effective {fastem.effective_n_threads(args.threads)}); thread pools after the runs:")
    print("\n".join(blas_pools()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--iters", type=int, default=5,
                        help="also time warm fits of this many iterations (<= 1: skip)")
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=8)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--fraction", type=float, default=0.2)
    parser.add_argument("--sensors", type=int, default=3)
    parser.add_argument("--covariance-type", default="full",
                        choices=("full", "tied", "diag", "spherical"))
    args = parser.parse_args(argv)
    # The same limit for every library in the process, as in the pytest-benchmark suite.
    with threadpoolctl.threadpool_limits(limits=args.threads):
        times, X, datasets, models = run(args)
        report(args, times, X, datasets, models)


if __name__ == "__main__":
    main()
