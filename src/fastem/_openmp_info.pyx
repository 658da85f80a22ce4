"""Build-time OpenMP facts and the run-time thread policy."""
import os

from fastem._openmp cimport FASTEM_HAVE_OPENMP, FASTEM_OPENMP_OPT_OUT, omp_get_max_threads


def built_with_openmp():
    """Return True if the compiled kernels were built with OpenMP.

    Returns
    -------
    bool
        False means every kernel runs on one thread whatever ``n_threads`` says.
    """
    return bool(FASTEM_HAVE_OPENMP)


def openmp_disabled_by_build():
    """Return True if the build was asked to go without OpenMP (FASTEM_DISABLE_OPENMP=1).

    Returns
    -------
    bool
    """
    return bool(FASTEM_OPENMP_OPT_OUT)


# GNU OpenMP (libgomp) is not fork-safe: in a child forked from a process whose
# kernels already ran on several threads, the next parallel region waits for
# ever on pool threads that were not copied into the child.  One thread never
# uses the pool, and the kernels give the same bits for any thread count, so a
# forked child runs its kernels on one thread (spawned processes are unaffected).
_in_forked_child = False


def _after_fork_in_child():
    global _in_forked_child
    _in_forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def effective_n_threads(n_threads=None):
    """Resolve the number of OpenMP threads a kernel call will use.

    Parameters
    ----------
    n_threads : int or None
        None: OpenMP's current limit (``omp_get_max_threads()``, which follows
        ``OMP_NUM_THREADS`` and any threadpoolctl limit in force), capped at the
        number of CPUs this process may run on.  A positive int is used as given.

    Returns
    -------
    int
        At least 1; always 1 when the build has no OpenMP, and in a process
        created by ``os.fork`` (multiprocessing's "fork" start method), where
        GNU OpenMP would hang.

    Raises
    ------
    ValueError
        If `n_threads` is not None or a positive integer.
    """
    if n_threads is not None:
        if isinstance(n_threads, bool) or not isinstance(n_threads, (int,)) and not hasattr(n_threads, "__index__"):
            raise ValueError(f"n_threads must be None or a positive integer, got {n_threads!r}")
        n_threads = int(n_threads)
        if n_threads < 1:
            raise ValueError(f"n_threads must be None or a positive integer, got {n_threads!r}")
    if not FASTEM_HAVE_OPENMP or _in_forked_child:
        return 1
    if n_threads is not None:
        return n_threads
    try:
        n_cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        n_cpus = os.cpu_count() or 1
    return max(1, min(omp_get_max_threads(), n_cpus))
