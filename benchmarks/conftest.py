"""Shared problems for the pytest-benchmark suite.

Run with ``python -m pytest benchmarks --benchmark-only`` (the test suite's
``testpaths`` leave this folder out).  Every problem is built by the same code
as ``fastem bench`` (``fastem.bench.cases``): blobs, and a shared starting point
from a random partition of X, so fastem and scikit-learn start from the same
parameters.  ``FASTEM_BENCH_THREADS`` sets the thread count (default 2):
fastem's ``n_threads``, and a threadpoolctl limit on BLAS and OpenMP around
every benchmark so scikit-learn gets the same.
"""
import os

import pytest
import threadpoolctl

from fastem._covariance import COVARIANCE_NAMES
from fastem.bench.cases import Case, make_data, partition_start

DEFAULT_THREADS = 2

# Moderate sizes: one scikit-learn iteration takes milliseconds to tens of
# milliseconds, so each benchmark's calibration and rounds stay near a second
# and the whole suite well under two minutes.
N_SAMPLES, N_FEATURES, N_COMPONENTS = 20_000, 8, 5


def bench_threads():
    raw = os.environ.get("FASTEM_BENCH_THREADS", "").strip()
    if not raw:
        return DEFAULT_THREADS
    try:
        threads = int(raw)
    except ValueError:
        threads = 0
    if threads < 1:
        raise pytest.UsageError(f"FASTEM_BENCH_THREADS must be a positive integer, got {raw!r}")
    return threads


def pytest_report_header(config):
    pools = ", ".join(
        f"{pool['internal_api']} {pool.get('version') or ''} {pool['num_threads']} threads"
        for pool in threadpoolctl.threadpool_info()
    )
    return [
        f"fastem benchmarks: {bench_threads()} threads (FASTEM_BENCH_THREADS), "
        f"N={N_SAMPLES}, D={N_FEATURES}, K={N_COMPONENTS}",
        f"thread pools loaded so far, before the limit: {pools or 'none'}",
    ]


@pytest.fixture(scope="session")
def threads():
    return bench_threads()


@pytest.fixture(autouse=True)
def _limit_thread_pools(threads):
    with threadpoolctl.threadpool_limits(limits=threads):
        yield


@pytest.fixture(scope="session", params=COVARIANCE_NAMES)
def problem(request):
    """(case, X, start) for one covariance type; built once per session."""
    case = Case(request.param, N_SAMPLES, N_FEATURES, N_COMPONENTS)
    X = make_data(case)
    start = partition_start(X, case.n_components, case.covariance_type)
    return case, X, start
