# OpenMP shim: the kernels call OpenMP only through these names, which become
# serial no-ops when the build has no OpenMP (see _openmp_shim.h).
cdef extern from "_openmp_shim.h" nogil:
    int FASTEM_HAVE_OPENMP
    int FASTEM_OPENMP_OPT_OUT
    int omp_get_max_threads()
    int omp_get_thread_num()
    int omp_in_parallel()
