"""Out-of-core fitting: peak anonymous memory and time per iteration against in memory.

For X of N x D float64 saved as a ``.npy`` file, three fits from the same
``random_state`` (so the same start and, for the first two, the same bits):

- ``in memory``: ``fit(np.load(path))``;
- ``memmap``: ``fit(np.load(path, mmap_mode="r"))``: the kernels read the
  mapped pages in place;
- ``fit_chunks``: ``fit_chunks`` over blocks of rows read from the file with
  ``numpy.fromfile`` (what a reader of files or a database cursor does).

Each fit runs in a fresh interpreter.  Memory is the peak of ``RssAnon`` (the
process's anonymous pages: its heap, not the page cache that holds a mapped
file) above the value just before the fit, sampled every millisecond by a
thread while the fit runs (the kernels release the GIL, so the sampler keeps
running), plus the readings before and after.  The in-memory fit's X is
anonymous memory itself and is counted in its baseline.  Time per iteration is
the fit's wall time divided by its iterations (initialisation included, as a
user waits for it), with the file in the page cache (read once before).

Run from a clone, after building::

    python benchmarks/out_of_core.py                      # N = 1e7, D = 8, K = 8
    python benchmarks/out_of_core.py --n-samples 2e6 --repeats 3
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings

import numpy as np

MB = 1e6
FILL_BLOCK_ROWS = 1 << 16
# Rows per chunk that fit_chunks reads: a multiple of 16384, so the fit is
# bitwise the in-memory one.
CHUNK_ROWS = 1 << 18


def _anon_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("RssAnon not in /proc/self/status")


def write_blobs(path, n_samples, n_features, n_components, seed=0):
    """Blobs written block by block into a .npy file (never all of X in memory)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(n_components, n_features))
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n_samples, n_features))
    for start in range(0, n_samples, FILL_BLOCK_ROWS):
        stop = min(start + FILL_BLOCK_ROWS, n_samples)
        labels = rng.integers(n_components, size=stop - start)
        X[start:stop] = rng.standard_normal((stop - start, n_features)) + centers[labels]
    X.flush()
    del X


def _file_chunks(path):
    """make_chunks reading blocks of rows from a .npy file with numpy.fromfile."""
    header = np.load(path, mmap_mode="r")  # only for the shape, dtype and data offset
    (n_samples, n_features), dtype, offset = header.shape, header.dtype, header.offset
    del header

    def make_chunks():
        with open(path, "rb") as fh:
            fh.seek(offset)
            for start in range(0, n_samples, CHUNK_ROWS):
                rows = min(CHUNK_ROWS, n_samples - start)
                yield np.fromfile(fh, dtype=dtype, count=rows * n_features).reshape(rows, n_features)

    return make_chunks


def child(mode, path, n_components, max_iter, n_threads):
    import fastem

    with open(path, "rb") as fh:  # into the page cache: the fits compare computation, not disks
        while fh.read(1 << 24):
            pass
    X = np.load(path) if mode == "in memory" else np.load(path, mmap_mode="r")
    gm = fastem.GaussianMixture(n_components, max_iter=max_iter, tol=0.0, random_state=0,
                                n_threads=n_threads)
    baseline = _anon_bytes()
    peak = [baseline]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _anon_bytes())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fastem.ConvergenceWarning)
            if mode == "fit_chunks":
                gm.fit_chunks(_file_chunks(path))
            else:
                gm.fit(X)
        seconds = time.perf_counter() - start
    finally:
        done.set()
        sampler.join()
    peak[0] = max(peak[0], _anon_bytes())
    print(json.dumps(dict(mode=mode, baseline=baseline, beyond=peak[0] - baseline,
                          seconds=seconds, n_iter=gm.n_iter_,
                          means_sum=float(np.sum(gm.means_)), lower_bound=float(gm.lower_bound_))))


def measure(mode, path, n_components, max_iter, n_threads):
    command = [sys.executable, os.path.abspath(__file__), "--child", mode, "--file", path,
               "--n-components", str(n_components), "--max-iter", str(max_iter),
               "--threads", str(n_threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=float, default=1e7)
    parser.add_argument("--n-features", type=int, default=8)
    parser.add_argument("--n-components", type=int, default=8)
    parser.add_argument("--max-iter", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.file, args.n_components, args.max_iter, args.threads)
        return 0
    n, d, k = int(args.n_samples), args.n_features, args.n_components
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "X.npy")
        write_blobs(path, n, d, k)
        print(f"N={n} D={d} K={k} float64, X = {n * d * 8 / MB:.0f} MB, {args.threads} threads, "
              f"{args.max_iter} iterations, medians of {args.repeats} fresh processes (alternating)")
        modes = ("in memory", "memmap", "fit_chunks")
        runs = {mode: [] for mode in modes}
        for _ in range(args.repeats):
            for mode in modes:
                runs[mode].append(measure(mode, path, k, args.max_iter, args.threads))
        reference = statistics.median(r["seconds"] / r["n_iter"] for r in runs["in memory"])
        print(f"{'':12s} {'peak RssAnon beyond start':>26s} {'s/iteration':>12s} {'ratio':>6s}  same bits")
        for mode in modes:
            beyond = statistics.median(r["beyond"] for r in runs[mode])
            per_iter = statistics.median(r["seconds"] / r["n_iter"] for r in runs[mode])
            same = all(r["means_sum"] == runs["in memory"][0]["means_sum"]
                       and r["lower_bound"] == runs["in memory"][0]["lower_bound"] for r in runs[mode])
            print(f"{mode:12s} {beyond / MB:23.1f} MB {per_iter:12.4f} {per_iter / reference:6.2f}  {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
