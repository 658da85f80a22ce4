"""The build really has OpenMP, and the thread policy is decided at call time."""
import os
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastem


def test_built_with_openmp():
    # A compiler without OpenMP only warns at build time; this test is what
    # stops such a build from silently shipping serial kernels.  Building
    # with FASTEM_DISABLE_OPENMP=1 is the only accepted way to go without.
    assert fastem.built_with_openmp() or fastem.openmp_disabled_by_build(), (
        "fastem was built without OpenMP although FASTEM_DISABLE_OPENMP was not set; "
        "rebuild with an OpenMP-capable compiler, or set FASTEM_DISABLE_OPENMP=1 on purpose"
    )


def test_effective_n_threads_default():
    n_threads = fastem.effective_n_threads()
    assert isinstance(n_threads, int)
    assert n_threads >= 1
    if not fastem.built_with_openmp():
        assert n_threads == 1


@pytest.mark.parametrize("n_threads", [1, 3, np.int64(2)])
def test_effective_n_threads_positive_int(n_threads):
    got = fastem.effective_n_threads(n_threads)
    assert type(got) is int
    assert got == (int(n_threads) if fastem.built_with_openmp() else 1)


@pytest.mark.skipif(not fastem.built_with_openmp(), reason="serial build: always 1 thread")
def test_effective_n_threads_respects_threadpoolctl():
    before = fastem.effective_n_threads()
    with threadpool_limits(limits=1, user_api="openmp"):
        assert fastem.effective_n_threads() == 1
        # An explicit request still wins over the ambient limit.
        assert fastem.effective_n_threads(2) == 2
    assert fastem.effective_n_threads() == before


@pytest.mark.skipif(not fastem.built_with_openmp(), reason="serial build: always 1 thread")
def test_effective_n_threads_respects_omp_num_threads():
    # OMP_NUM_THREADS is read when the OpenMP runtime starts: use a fresh process.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code = "import fastem; print(fastem.effective_n_threads())"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "1"


@pytest.mark.parametrize("n_threads", [0, -1, 2.5, "x", True, False, np.float64(2.0)])
def test_effective_n_threads_rejects_invalid(n_threads):
    with pytest.raises(ValueError):
        fastem.effective_n_threads(n_threads)
