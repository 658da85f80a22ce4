"""Keep BLAS single-threaded while fastem's own OpenMP threads run the kernels.

The kernels call SciPy's BLAS from inside their OpenMP threads; a multithreaded
BLAS there would put threads on top of threads.  threadpoolctl is asked once
which BLAS libraries are loaded, then limits them around each fit or scoring
call and restores them afterwards.

A BLAS thread limit is process-wide, not per Python thread, so the limit is
counted: the first call to enter sets it and the last to leave restores the
original.  Without the count, two fits in overlapping threads (A enters, B
enters, A leaves, B leaves) would restore B's view of the "original" limit,
one thread, and leave the user's BLAS single-threaded for good.
"""
import contextlib
import os
import threading

import threadpoolctl

_controller = None
_lock = threading.Lock()
_depth = 0          # calls inside the limit, across all threads
_limiter = None     # threadpoolctl's limiter of the outermost call


def _reset_after_fork():
    # The lock is only held for a few lines, but a fork from another thread can
    # copy it held: a child must not block on it for ever.
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


@contextlib.contextmanager
def single_threaded_blas():
    """Context manager: every loaded BLAS limited to one thread inside it."""
    global _controller, _depth, _limiter
    with _lock:
        if _controller is None:
            _controller = threadpoolctl.ThreadpoolController()
        if _depth == 0:
            _limiter = _controller.limit(limits=1, user_api="blas")
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _limiter.restore_original_limits()
                _limiter = None
