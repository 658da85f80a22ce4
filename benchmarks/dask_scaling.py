"""Time per EM iteration of a Dask fit on a LocalCluster, against the in-memory fit.

What one iteration costs on Dask beyond the kernels themselves (building the
graph, scheduling a task per block and the reduction tree, moving the
statistics, the M-step on the client), as blocks grow.  A benchmark, not a
test: run it by hand on an idle machine::

    python benchmarks/dask_scaling.py                      # N=2e6, D=8, K=8, full
    python benchmarks/dask_scaling.py --blocks 1e5 1e6 --repeats 9

For each block size it prints the median over repeats (``--best``: the
fastest repeat, for a machine shared with other jobs, where interference only
ever adds time) of

- ``in-memory``: one ``ModelArrays.em_step`` on the NumPy array with as many
  threads as the cluster has in all (the fused pass and the M-step);
- ``kernels``: the pure kernel time the cluster needs: the statistics of one
  block timed inside a worker (its environment, its threads), times the
  blocks, divided by the workers (a perfect schedule with nothing but
  kernels);
- ``dask``: one iteration through ``DaskRows.accumulate`` and the M-step, as
  ``GaussianMixture.fit`` runs it;
- ``overhead`` = dask - kernels, per iteration and as a share of dask;

and the largest relative difference between the Dask and in-memory
statistics of the pass (the agreement is to rounding, not bit for bit).
"""
import argparse
import statistics
import time
import warnings

import numpy as np


def _blobs(n_samples, n_features, n_components, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=6.0, size=(n_components, n_features))
    X = np.empty((n_samples, n_features))
    step = 1 << 18  # filled in blocks: no temporary as large as X
    for start in range(0, n_samples, step):
        stop = min(start + step, n_samples)
        X[start:stop] = centers[rng.integers(0, n_components, stop - start)]
        X[start:stop] += rng.normal(size=(stop - start, n_features))
    return X


def _time_block_kernel(X, spec, repeats, summary):
    """Seconds of one block's statistics, run where the block lives (a task)."""
    from fastem._dask import _block_statistics

    X = np.ascontiguousarray(X)
    return _seconds(lambda: _block_statistics(X, None, spec, None, 1), repeats, summary)


def _seconds(run, repeats, summary):
    """`summary` (statistics.median or min) of the times of `repeats` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return summary(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=float, default=2e6)
    parser.add_argument("--n-features", type=int, default=8)
    parser.add_argument("--n-components", type=int, default=8)
    parser.add_argument("--covariance-type", default="full")
    parser.add_argument("--blocks", type=float, nargs="+", default=[1e5, 2.5e5, 1e6],
                        help="rows per Dask block")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads-per-worker", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--best", action="store_true",
                        help="report the fastest repeat instead of the median (a machine "
                             "shared with other jobs: interference only ever adds time)")
    args = parser.parse_args(argv)
    summary = min if args.best else statistics.median

    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    from fastem import GaussianMixture
    from fastem._dask import DaskRows
    from fastem._em import ModelArrays
    from fastem._stats import SufficientStatistics

    n, d, k = int(args.n_samples), args.n_features, args.n_components
    total_threads = args.workers * args.threads_per_worker
    X = _blobs(n, d, k)
    # A model a few iterations into a fit: the E-steps timed below are typical ones.
    fitted = GaussianMixture(k, covariance_type=args.covariance_type, max_iter=3, tol=0.0,
                             random_state=0, n_threads=total_threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged after 3 iterations: on purpose
        fitted.fit(X)
    arrays = fitted._warm_state()

    def fresh_model():
        return ModelArrays(arrays.covariance_type, arrays.weights, arrays.means,
                           arrays.precisions_cholesky, arrays.covariances)

    in_memory = _seconds(
        lambda: fresh_model().em_step(X, None, float(n), fitted.reg_covar, total_threads),
        args.repeats, summary)
    reference = SufficientStatistics.of_model(arrays).add(X, model=arrays, n_threads=total_threads)

    print(f"N={n:.0e}, D={d}, K={k}, {args.covariance_type}; LocalCluster of {args.workers} "
          f"processes x {args.threads_per_worker} thread(s); "
          f"{'best' if args.best else 'medians'} of {args.repeats}")
    print(f"in-memory, {total_threads} thread(s): {in_memory * 1e3:.1f} ms per iteration\n")
    header = (f"{'rows/block':>10} {'blocks':>6} {'in-memory':>10} {'kernels':>9} {'dask':>9} "
              f"{'overhead':>9} {'share':>6} {'agreement':>10}")
    print(header)
    print("-" * len(header))
    with LocalCluster(n_workers=args.workers, threads_per_worker=args.threads_per_worker,
                      processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        for rows in (int(b) for b in args.blocks):
            with warnings.catch_warnings():
                # X travels to the workers once, inside the graph: fine for a benchmark.
                warnings.filterwarnings("ignore", "Sending large graph", UserWarning)
                source = DaskRows(da.from_array(X, chunks=(rows, d)), None, k, "GaussianMixture")
            empty = SufficientStatistics.of_model(arrays)
            spec = (empty.covariance_type, empty.centres, empty.tied_centre,
                    (arrays.covariance_type, arrays.weights, arrays.means,
                     arrays.precisions_cholesky))
            (block_kernel,) = dask.compute(
                dask.delayed(_time_block_kernel)(source._delayed_blocks[0][0], spec, args.repeats, summary),
                scheduler=client)
            kernels = block_kernel * (n / rows) / args.workers

            def dask_iteration():
                model = fresh_model()
                stats = source.accumulate(SufficientStatistics.of_model(model), model=model)
                model.m_step(stats.flat(), fitted.reg_covar)
                return stats

            stats = dask_iteration()  # warm-up: workers import fastem, fetch the pass's key
            on_dask = _seconds(dask_iteration, args.repeats, summary)
            scale = np.abs(reference.flat()).max()
            agreement = np.abs(stats.flat() - reference.flat()).max() / scale
            overhead = on_dask - kernels
            print(f"{rows:>10.3g} {source.n_blocks:>6} {in_memory * 1e3:>8.1f}ms "
                  f"{kernels * 1e3:>7.1f}ms {on_dask * 1e3:>7.1f}ms {overhead * 1e3:>7.1f}ms "
                  f"{overhead / on_dask:>6.0%} {agreement:>10.1e}")
            del source
            client.run(lambda: None)  # let the workers release the persisted blocks


if __name__ == "__main__":
    main()
