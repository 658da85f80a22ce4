"""Resident memory does not grow over many fits, including fits that raise.

Each run happens in a fresh subprocess: after a warm-up (imports, OpenMP's
threads, allocator pools), the resident set size from /proc/self/status is read,
then the fits run, and the growth is reported.  The fits mix every covariance
type and dtype, inference, partial_fit, fit_chunks, and fits that raise at
every layer: non-finite X and bad parameters (in Python, before the engine),
an ill-defined covariance with reg_covar=0 (a status code from the nogil
M-step, after the engine allocated its lanes and scratch) and an exception
from the callback in the middle of the loop.

The default run does 200 fits; ``pytest -m soak tests/test_leaks.py`` does the
full 1,000.  The allowance (6 MB) is what a leak of 30 kB per fit reaches in
200 fits, 6 kB per fit in 1,000; the growth measured on a healthy build is
tens of kB (the allocator settling).
"""
import subprocess
import sys
import textwrap

import pytest

ALLOWED_GROWTH_KB = 6 * 1024

SCRIPT = textwrap.dedent("""
    import sys, warnings
    import numpy as np
    import fastem

    def rss_kb():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])

    rng = np.random.default_rng(0)
    X64 = rng.normal(size=(3000, 6))
    X64[::3] += 5.0
    X32 = X64.astype(np.float32)
    X_nan = X64.copy(); X_nan[7, 2] = np.nan
    X_const = np.ones((50, 3))           # one point: singular without reg_covar
    TYPES = ["full", "tied", "diag", "spherical"]

    class Stop(Exception):
        pass

    def stop_at_two(it):
        if it.n_iter == 2:
            raise Stop

    def one_fit(i):
        kind = i % 8
        cov = TYPES[i % 4]
        gm = fastem.GaussianMixture(3, covariance_type=cov, max_iter=5, random_state=i,
                                    n_threads=2)
        try:
            if kind == 0:
                gm.fit(X64).predict_proba(X64)
            elif kind == 1:
                gm.fit(X32).score_samples(X32)
            elif kind == 2:
                gm.fit(X_nan)                                  # raises: NaN
            elif kind == 3:
                gm.set_params(reg_covar=0.0, n_components=2).fit(X_const)   # raises: singular
            elif kind == 4:
                gm.set_params(tol=-1.0, max_iter=-3).fit(X64)  # raises: parameters
            elif kind == 5:
                gm.set_params(callback=stop_at_two).fit(X64)   # raises from the loop
            elif kind == 6:
                gm.partial_fit(X64[:1000]).partial_fit(X64[1000:2000]).predict(X64)
            else:
                gm.fit_chunks(lambda: (X64[j:j + 1024] for j in range(0, len(X64), 1024)))
            return "ok"
        except (ValueError, TypeError, Stop) as exc:
            return type(exc).__name__

    warnings.simplefilter("ignore")
    n = int(sys.argv[1])
    for i in range(80):                  # warm-up: every kind, ten times
        one_fit(i)
    start = rss_kb()
    outcomes = {}
    for i in range(n):
        r = one_fit(i)
        outcomes[r] = outcomes.get(r, 0) + 1
    print(start, rss_kb(), sorted(outcomes.items()))
""")


def _growth(tmp_path, n_fits):
    script = tmp_path / "leak.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(n_fits)], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    start, end, outcomes = done.stdout.split(maxsplit=2)
    return int(end) - int(start), outcomes


def _check(tmp_path, n_fits):
    growth, outcomes = _growth(tmp_path, n_fits)
    # Every kind of failure was exercised, not only the fits that succeed.
    for name in ("ValueError", "Stop", "ok"):
        assert name in outcomes, outcomes
    assert growth < ALLOWED_GROWTH_KB, f"RSS grew {growth} kB over {n_fits} fits ({outcomes})"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_no_rss_growth_over_200_fits(tmp_path):
    _check(tmp_path, 200)


@pytest.mark.soak
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_no_rss_growth_over_1000_fits(tmp_path):
    _check(tmp_path, 1000)
