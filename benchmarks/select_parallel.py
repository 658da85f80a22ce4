"""When do parallel candidates beat the kernels' own threads in ``fastem.select``?

For each problem (N rows, D features, one K, the four covariance types) it
times ``select`` two ways on the same threads:

- sequential: one candidate at a time, every kernel pass on all the threads
  (``n_jobs=1``);
- parallel: as many candidates at a time as threads, one kernel thread each
  (``n_jobs=threads``).

Both fit the same candidates bit for bit (checked on every run).  Every
candidate runs exactly ``--iters`` EM iterations (tol=0), so the two modes do
the same work.  Prints a Markdown table of medians and their ratio (the
default of ``select(n_jobs=None)`` comes from it: see the comment among
``fastem.select``'s module constants), then the default grid K = 1..9 timed
sequentially, in parallel and with ``n_jobs=None``.

    python benchmarks/select_parallel.py [--threads 2] [--repeats 5] [--quick] [--grid-only]
"""
import argparse
import statistics
import time
import warnings

import numpy as np

import fastem
from fastem.exceptions import ConvergenceWarning


def problem(n, d, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(8, d))
    return centres[rng.integers(0, 8, size=n)] + rng.normal(size=(n, d))


def timed(X, ks, n_jobs, threads, iters):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        result = fastem.select(X, ks, criterion="bic", random_state=0, tol=0.0, max_iter=iters,
                               n_threads=threads, n_jobs=n_jobs)
        return time.perf_counter() - start, result.table["bic"]


def whole_grid(args):
    """The default grid (K = 1..9, four types): sequential, parallel and the automatic rule."""
    print("\nwhole grid, K = 1..9, D = 4\n")
    print("| N | sequential s | parallel s | automatic s | sequential / parallel | sequential / automatic |")
    print("|---|---|---|---|---|---|")
    for n in (200_000, 2_000_000):
        X = problem(n, 4)
        times = {1: [], args.threads: [], None: []}
        for _ in range(max(1, args.repeats // 2)):
            bics = [None] * 3
            for j, n_jobs in enumerate(times):
                seconds, bics[j] = timed(X, range(1, 10), n_jobs, args.threads, args.iters)
                times[n_jobs].append(seconds)
            assert bics[0] == bics[1] == bics[2], "the schedule changed the results"
        s, p, a = (statistics.median(times[key]) for key in (1, args.threads, None))
        print(f"| {n:.0e} | {s:.3f} | {p:.3f} | {a:.3f} | {s / p:.2f} | {s / a:.2f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="stop at N = 2e5")
    parser.add_argument("--grid-only", action="store_true", help="only the whole-grid table")
    args = parser.parse_args()
    sizes = [2_000, 20_000, 200_000] + ([] if args.quick else [2_000_000])
    print(f"fastem {fastem.__version__}, {args.threads} threads, {args.iters} EM iterations per "
          f"candidate, 4 covariance types, medians of {args.repeats}\n")
    if args.grid_only:
        return whole_grid(args)
    print("| N | D | K | N*K*D | sequential s | parallel s | sequential / parallel |")
    print("|---|---|---|---|---|---|---|")
    for n in sizes:
        for d in (2, 8):
            X = problem(n, d)
            for k in (2, 8):
                repeats = args.repeats if n * k * d < 5e7 else max(1, args.repeats // 2)
                seq, par = [], []
                for _ in range(repeats):  # alternated, so drifts hit both alike
                    t_seq, bic_seq = timed(X, [k], 1, args.threads, args.iters)
                    t_par, bic_par = timed(X, [k], args.threads, args.threads, args.iters)
                    assert bic_seq == bic_par, "parallel candidates changed the results"
                    seq.append(t_seq)
                    par.append(t_par)
                s, p = statistics.median(seq), statistics.median(par)
                print(f"| {n:.0e} | {d} | {k} | {n * k * d:.0e} | {s:.4f} | {p:.4f} | {s / p:.2f} |",
                      flush=True)
    whole_grid(args)


if __name__ == "__main__":
    main()
