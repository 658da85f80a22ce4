"""Time two installed fastem versions side by side, alternating, on the bench grid.

This machine's speed drifts by 20-40 % between runs, so comparing two
versions from separate runs says little.  This script times both in one
run: for each case and repeat it runs version A then version B (then B then
A on the next repeat), each in a fresh process of that version's Python, and
reports the median of each and their ratio.

Usage::

    python benchmarks/compare_versions.py OLD_PYTHON NEW_PYTHON [--repeats 5] [--threads 2]

where each PYTHON is the interpreter of a virtualenv with that fastem
installed.  Per case it measures seconds per EM iteration (a warm-started
fit of ``--iterations`` iterations from the same start) and a whole default
fit (k-means initialisation, default tol).
"""
import argparse
import json
import statistics
import subprocess
import sys

# (covariance_type, n_samples, n_features, n_components): the default grid of `fastem bench`.
GRID = [
    ("full", 1_000_000, 1, 2),
    ("full", 200_000, 2, 3),
    ("full", 200_000, 8, 8),
    ("full", 100_000, 32, 16),
    ("full", 20_000, 128, 8),
    ("diag", 1_000_000, 16, 16),
    ("diag", 100_000, 64, 64),
    ("spherical", 1_000_000, 8, 8),
    ("tied", 200_000, 16, 8),
]

# Runs inside the version under test: only the public API, so any version works.
PROBE = r"""
import json, sys, time, warnings
import numpy as np
import threadpoolctl
import fastem
cov, n, d, k, threads, iterations = json.loads(sys.argv[1])
rng = np.random.default_rng(1234)
centres = rng.normal(scale=4.0, size=(k, d))
X = centres[rng.integers(k, size=n)] + rng.standard_normal((n, d))
warnings.simplefilter("ignore")
start = fastem.GaussianMixture(k, covariance_type=cov, init_params="random_from_data",
                               random_state=0, max_iter=1, tol=0.0, n_threads=threads).fit(X)
start.set_params(warm_start=True, max_iter=iterations)
time.sleep(0.25)   # let BLAS threads that spun during set-up go idle
t0 = time.perf_counter()
start.fit(X)
per_iteration = (time.perf_counter() - t0) / iterations
time.sleep(0.25)
t0 = time.perf_counter()
model = fastem.GaussianMixture(k, covariance_type=cov, random_state=0, n_threads=threads).fit(X)
whole = time.perf_counter() - t0
blas = sorted({p["internal_api"] + ":" + str(p.get("architecture")) for p in threadpoolctl.threadpool_info()
               if p["user_api"] == "blas"})
print(json.dumps({"per_iteration": per_iteration, "fit": whole, "n_iter": int(model.n_iter_),
                  "version": fastem.__file__, "blas": blas}))
"""


def _run(python, case, threads, iterations):
    out = subprocess.run(
        [python, "-c", PROBE, json.dumps(list(case) + [threads, iterations])],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    """Command-line entry point; prints a Markdown table of medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old_python")
    parser.add_argument("new_python")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args(argv)
    pythons = {"old": args.old_python, "new": args.new_python}
    print("| case | old s/iter | new s/iter | new/old | old fit s | new fit s | new/old |")
    print("|---|---|---|---|---|---|---|")
    ratios = []
    for case in GRID:
        times = {name: {"per_iteration": [], "fit": []} for name in pythons}
        for repeat in range(args.repeats):
            order = ("old", "new") if repeat % 2 == 0 else ("new", "old")
            for name in order:
                result = _run(pythons[name], case, args.threads, args.iterations)
                for key in ("per_iteration", "fit"):
                    times[name][key].append(result[key])
        med = {name: {key: statistics.median(v) for key, v in t.items()} for name, t in times.items()}
        it_ratio = med["new"]["per_iteration"] / med["old"]["per_iteration"]
        fit_ratio = med["new"]["fit"] / med["old"]["fit"]
        ratios.append(it_ratio)
        label = "{}:{:g}:{}:{}".format(*case)
        print(f"| {label} | {med['old']['per_iteration']:.4g} | {med['new']['per_iteration']:.4g} | "
              f"{it_ratio:.3f} | {med['old']['fit']:.4g} | {med['new']['fit']:.4g} | {fit_ratio:.3f} |",
              flush=True)
    print(f"\ngeometric mean of new/old per iteration: "
          f"{statistics.geometric_mean(ratios):.3f} ({args.repeats} alternating repeats, "
          f"{args.threads} threads)")
    print("BLAS:", _run(args.new_python, GRID[1], 1, 1)["blas"], file=sys.stderr)


if __name__ == "__main__":
    main()
