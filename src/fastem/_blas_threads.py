"""Keep BLAS single-threaded while fastem's own OpenMP threads run the kernels.

The kernels call SciPy's BLAS from inside their OpenMP threads; a multithreaded
BLAS there would put threads on top of threads.  threadpoolctl is asked once
which BLAS libraries are loaded, then limits them around each fit or scoring
call and restores them afterwards.
"""
import threadpoolctl

_controller = None


def single_threaded_blas():
    """Context manager: every loaded BLAS limited to one thread inside it."""
    global _controller
    if _controller is None:
        _controller = threadpoolctl.ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")
