/* One place for every OpenMP call: without OpenMP the same names compile to
 * serial no-ops, so the kernels build (single-threaded) on any compiler. */
#ifndef FASTEM_OPENMP_SHIM_H
#define FASTEM_OPENMP_SHIM_H

#ifdef _OPENMP
#include <omp.h>
#define FASTEM_HAVE_OPENMP 1
#else
#define FASTEM_HAVE_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_in_parallel(void) { return 0; }
#endif

#ifdef FASTEM_OPENMP_DISABLED_BY_BUILD
#define FASTEM_OPENMP_OPT_OUT 1
#else
#define FASTEM_OPENMP_OPT_OUT 0
#endif

#endif
