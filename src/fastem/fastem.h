/*
 * fastem.h -- fastem's C-level API for C and C++ extension modules.
 *
 * Build with the folder `fastem.get_include()` returns on the include path.
 * Call fastem_import() once (with the GIL held, e.g. in your module's init
 * function); it returns a table of function pointers, or NULL with a Python
 * exception set.  Every function in the table may then be called without the
 * GIL, from any thread.
 *
 * Versioning: major.minor.  FASTEM_API_VERSION is the major version: any
 * change to a signature, to the layout of fastem_gmm, to the order of the
 * existing entries of fastem_api, or to the meaning of an argument is a
 * breaking change and bumps it; fastem_import() refuses a fastem whose table
 * has another major version, so an extension never calls through a table it
 * was not built for.  The table is otherwise append-only: a new function is
 * added at its end and bumps FASTEM_API_MINOR (Python: fastem.kernels.API_MINOR;
 * a fastem without that attribute is minor 0).  fastem_import() refuses a
 * fastem whose minor is older than FASTEM_API_MINOR_REQUIRED, by default the
 * minor of the header the extension was built with; an extension that calls
 * only older entries may define FASTEM_API_MINOR_REQUIRED to that older minor
 * before including this header, to keep running on older fastem releases.
 * Extensions built against minor 0 keep working with every 1.x fastem.
 *
 * Such an extension must not touch an entry newer than the installed minor:
 * the table of an older fastem ends before it, and reading past it is
 * undefined behaviour.  fastem_import_minor() gives the installed minor at run
 * time; guard every newer entry with it:
 *
 *     #define FASTEM_API_MINOR_REQUIRED 0      (runs on any 1.x fastem)
 *     #include "fastem.h"
 *     static const fastem_api *api;
 *     static int api_minor;
 *     ... in the module's init:  api = fastem_import_minor(&api_minor);
 *     ... later:  if (api_minor >= 1) api->accumulate_given_f64(...);
 *                 else  (a fallback that uses minor-0 entries only)
 *
 *   minor 0: every entry up to em_fit_f32
 *   minor 1: accumulate_given_f64, accumulate_given_f32
 *   minor 2: hmm_forward_backward_f64, hmm_viterbi_f64 (and FASTEM_UNDERFLOW)
 *
 * Conventions (all functions):
 * - Buffers are row-major.  X is (n_rows, n_features) with rows `ldx`
 *   elements apart (ldx >= n_features); `_f64` functions read double data,
 *   `_f32` float data.  Everything else is double.  Sums are always double.
 * - Functions return a status: FASTEM_OK (0) or a negative FASTEM_* code.
 *   They never raise, print or abort.  On error the model is left unchanged
 *   (em_fit puts back the parameters it was given).  FASTEM_BAD_ARGUMENT also
 *   covers an invalid model: a weight < 0 or not finite, a factor whose
 *   diagonal is not finite and positive, or a full/tied factor with anything
 *   below its diagonal (scikit-learn's precisions_init factors are lower
 *   triangular: turn them into the upper factor of the same precision first).
 * - The caller allocates every input and output; fastem allocates only its
 *   own scratch (malloc) and frees it before returning.
 * - n_threads is the number of OpenMP threads to use; <= 0 means OpenMP's
 *   default.  Results are bitwise identical for every n_threads.  Called
 *   from inside an OpenMP parallel region of the same OpenMP runtime, a
 *   function runs on the calling thread only; a consumer built against
 *   another runtime (a wheel's bundled libgomp, clang's libomp) is not seen
 *   as a parallel region, so pass n_threads = 1 from your own parallel loops.
 * - The kernels call SciPy's BLAS.  Limit that BLAS to one thread while you
 *   call them (in Python: threadpoolctl.threadpool_limits(1, "blas")): a
 *   multithreaded BLAS inside fastem's threads oversubscribes badly.
 */
#ifndef FASTEM_H
#define FASTEM_H

#include <Python.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FASTEM_API_VERSION 1
#define FASTEM_API_MINOR 2
#ifndef FASTEM_API_MINOR_REQUIRED
#define FASTEM_API_MINOR_REQUIRED FASTEM_API_MINOR
#endif
#if FASTEM_API_MINOR_REQUIRED > FASTEM_API_MINOR
/* This header declares no entry of that minor: build against a newer fastem. */
#error "FASTEM_API_MINOR_REQUIRED is newer than this fastem.h's FASTEM_API_MINOR"
#endif

/* covariance_type */
#define FASTEM_FULL 0       /* covariances (K, D, D) */
#define FASTEM_TIED 1       /* covariances (D, D) */
#define FASTEM_DIAG 2       /* covariances (K, D) */
#define FASTEM_SPHERICAL 3  /* covariances (K,) */

/* status codes */
#define FASTEM_OK 0
#define FASTEM_NO_MEMORY (-1)     /* scratch could not be allocated */
#define FASTEM_BAD_ARGUMENT (-2)  /* a size, stride, pointer or covariance type is invalid */
#define FASTEM_ILL_DEFINED (-3)   /* a covariance is not positive definite: raise reg_covar */
#define FASTEM_NOT_FINITE (-4)    /* the log-likelihood is not finite: data too far from the model */
#define FASTEM_UNDERFLOW (-5)     /* minor 2: a scaling forward sum fell below 1e-300 (use FASTEM_HMM_LOG) */

/* implementation of hmm_forward_backward_f64 (minor 2) */
#define FASTEM_HMM_LOG 0      /* rescaled recursions, exact log-space fallback (accurate; default) */
#define FASTEM_HMM_SCALING 1  /* hmmlearn's implementation="scaling": no shift, underflow is an error */

/*
 * A Gaussian mixture in scikit-learn's storage.  The caller owns the arrays.
 * precisions_cholesky has the shape of covariances: for full and tied the
 * upper-triangular U with U U^T = inv(covariance) (only the upper triangle
 * is read; fastem writes zeros below it); for diag and spherical
 * 1 / sqrt(covariance).
 */
typedef struct fastem_gmm {
    int64_t n_components;        /* K >= 1 */
    int64_t n_features;          /* D >= 1 */
    int covariance_type;         /* FASTEM_FULL, FASTEM_TIED, FASTEM_DIAG or FASTEM_SPHERICAL */
    double *weights;             /* (K,) summing to 1 */
    double *means;               /* (K, D) */
    double *covariances;         /* see covariance_type; read by no function, written by the M-step */
    double *precisions_cholesky; /* same shape as covariances */
} fastem_gmm;

/*
 * The sufficient statistics of one pass (stats_size(model) doubles):
 *   [0]                      sum_n w_n log p(x_n)
 *   [1, 1+K)                 N_k = sum_n w_n r_nk
 *   [1+K, 1+K+KD)            S1_k = sum_n w_n r_nk (x_n - mu_k)       (K, D)
 *   then full:  (K, D, D)    sum_n w_n r_nk (x_n - mu_k)(x_n - mu_k)^T, upper triangles
 *        tied:  (D, D)       sum_n w_n (x_n - c)(x_n - c)^T, upper triangle,
 *                            c = sum_k weights_k mu_k
 *        diag/spherical: (K, D) sum_n w_n r_nk (x_n - mu_k)^2
 * Moments are taken about the model's own means (no cancellation for data
 * far from the origin); m_step() expects them so.
 */
typedef struct fastem_api {
    int api_version; /* FASTEM_API_VERSION of the fastem that filled the table */

    /* Number of doubles in the statistics of `model` (0 if the model is invalid). */
    int64_t (*stats_size)(const fastem_gmm *model);

    /* factors := precision Cholesky factors of covariances (shapes as fastem_gmm; factors may
     * be covariances itself).  On FASTEM_ILL_DEFINED, factors holds no meaningful values. */
    int (*precision_cholesky)(int covariance_type, int64_t n_components, int64_t n_features,
                              const double *covariances, double *factors);

    /* out[n * ld_out + k] := log weights_k + log N(x_n | mu_k, Sigma_k). */
    int (*log_densities_f64)(const double *X, int64_t n_rows, int64_t ldx, const fastem_gmm *model,
                             int n_threads, double *out, int64_t ld_out);
    int (*log_densities_f32)(const float *X, int64_t n_rows, int64_t ldx, const fastem_gmm *model,
                             int n_threads, double *out, int64_t ld_out);

    /* In place, row by row: log-densities (n_rows, ld) -> responsibilities (log-sum-exp);
     * log_prob_norm (n_rows,) or NULL receives each row's log-sum-exp. */
    int (*responsibilities)(double *log_dens, int64_t n_rows, int64_t n_components, int64_t ld,
                            double *log_prob_norm);

    /* Per row: log p(x_n) (n_rows,), responsibilities (n_rows, K) and the most responsible
     * component (n_rows,); any output may be NULL. */
    int (*score_f64)(const double *X, int64_t n_rows, int64_t ldx, const fastem_gmm *model,
                     int n_threads, double *log_prob_norm, double *resp, int64_t *labels);
    int (*score_f32)(const float *X, int64_t n_rows, int64_t ldx, const fastem_gmm *model,
                     int n_threads, double *log_prob_norm, double *resp, int64_t *labels);

    /* One fused pass: E-step and the statistics above.  sample_weight: (n_rows,) non-negative
     * weights (not checked; a zero weight drops the row), or NULL for ones. */
    int (*accumulate_f64)(const double *X, int64_t n_rows, int64_t ldx, const double *sample_weight,
                          const fastem_gmm *model, int n_threads, double *stats);
    int (*accumulate_f32)(const float *X, int64_t n_rows, int64_t ldx, const double *sample_weight,
                          const fastem_gmm *model, int n_threads, double *stats);

    /* M-step: replace weights, means, covariances and factors of `model` by those the
     * statistics of a pass over `model` give; reg_covar is added to every variance.
     * FASTEM_ILL_DEFINED if a new covariance is not positive definite. */
    int (*m_step)(fastem_gmm *model, const double *stats, double reg_covar);

    /* One EM iteration (accumulate + m_step).  total_weight (> 0): the caller passes the sum
     * of sample_weight, or n_rows when it is NULL; lower_bound receives the mean
     * log-likelihood before the step. */
    int (*em_step_f64)(const double *X, int64_t n_rows, int64_t ldx, const double *sample_weight,
                       double total_weight, fastem_gmm *model, double reg_covar, int n_threads,
                       double *lower_bound);
    int (*em_step_f32)(const float *X, int64_t n_rows, int64_t ldx, const double *sample_weight,
                       double total_weight, fastem_gmm *model, double reg_covar, int n_threads,
                       double *lower_bound);

    /* EM from the model's parameters until the lower bound changes by less than tol or
     * max_iter iterations ran -- the iterations of fastem.GaussianMixture.fit, bit for bit.
     * lower_bounds (max_iter,) or NULL; n_iter, converged and lower_bound must not be NULL.
     * On error the model gets its initial parameters back and n_iter counts the iterations
     * that had succeeded. */
    int (*em_fit_f64)(const double *X, int64_t n_rows, int64_t ldx, const double *sample_weight,
                      fastem_gmm *model, int max_iter, double tol, double reg_covar, int n_threads,
                      double *lower_bounds, int *n_iter, int *converged, double *lower_bound);
    int (*em_fit_f32)(const float *X, int64_t n_rows, int64_t ldx, const double *sample_weight,
                      fastem_gmm *model, int max_iter, double tol, double reg_covar, int n_threads,
                      double *lower_bounds, int *n_iter, int *converged, double *lower_bound);

    /* ---- minor 1 ---- */

    /* The statistics above for responsibilities the caller supplies (an HMM's posteriors)
     * instead of the model's E-step: resp (n_rows, K) with rows ld_resp >= K apart.  The
     * moments are taken about model->means (tied: about sum_k weights_k means_k), laid out
     * by model->covariance_type, so m_step() takes them; stats[0] is 0.  A row of zero
     * weight is dropped without reading its responsibilities.  Chunked like accumulate:
     * no scratch grows with n_rows.  Full, diag and spherical accept any non-negative
     * rows; the tied scatter counts every row with its sample weight alone (it does not
     * read resp), so for a tied model each row's responsibilities must sum to one, or
     * the M-step's covariance will not match the counts.
     * Entries of minor 1: call them only when the installed minor is >= 1 (see
     * fastem_import_minor), unless you build with the default FASTEM_API_MINOR_REQUIRED. */
    int (*accumulate_given_f64)(const double *X, int64_t n_rows, int64_t ldx,
                                const double *sample_weight, const double *resp, int64_t ld_resp,
                                const fastem_gmm *model, int n_threads, double *stats);
    int (*accumulate_given_f32)(const float *X, int64_t n_rows, int64_t ldx,
                                const double *sample_weight, const double *resp, int64_t ld_resp,
                                const fastem_gmm *model, int n_threads, double *stats);

    /* ---- minor 2: hidden Markov models ---- */

    /* Forward-backward of a hidden Markov model over S = n_sequences sequences of
     * lengths[s] >= 1 rows each (summing to n_rows), one after another in log_frameprob
     * (n_rows, K) row-major: log p(x_t | state k), e.g. from log_densities_f64 of a model
     * with weights 1.  startprob (K,) and transmat (K, K) row-major are probabilities;
     * zeros are allowed.
     * implementation: FASTEM_HMM_LOG (the forward and backward recursions rescaled per row,
     * emissions shifted by the row's maximum; a sequence whose scale sum falls below 1e-250
     * or whose values stop being finite is redone exactly in log space) or
     * FASTEM_HMM_SCALING (hmmlearn's "scaling": no shift, FASTEM_UNDERFLOW if a forward
     * sum falls below 1e-300).
     * Outputs: log_probs (S,) log p(sequence s).  posteriors (n_rows, K): the state
     * posteriors, rows summing to 1; NULL skips the backward pass (scoring only), and then
     * start_counts and trans_counts are not written (may be NULL).  Otherwise
     * start_counts (K,) receives the sum over sequences of each one's first posterior row
     * and trans_counts (K, K) the sum over sequences and t of P(s_t = i, s_t+1 = j | x).
     * Sequences run in parallel (one long sequence runs on one thread: the recursion is
     * sequential); the counts are summed in a fixed order, bitwise equal for any
     * n_threads.  Scratch: (n_rows, K + 1) doubles when posteriors are wanted, plus
     * O(K^2) per thread.  FASTEM_BAD_ARGUMENT for a bad size, length or NULL input. */
    int (*hmm_forward_backward_f64)(const double *log_frameprob, int64_t n_rows,
                                    int64_t n_components, const double *startprob,
                                    const double *transmat, const int64_t *lengths,
                                    int64_t n_sequences, int implementation, int n_threads,
                                    double *log_probs, double *posteriors,
                                    double *start_counts, double *trans_counts);

    /* Viterbi paths, arguments as above: states (n_rows,) the most likely state sequence
     * of each sequence (ties broken as hmmlearn 0.3.3 does), log_probs (S,) the log
     * probability of each path.  Scratch: (n_rows, K) doubles. */
    int (*hmm_viterbi_f64)(const double *log_frameprob, int64_t n_rows, int64_t n_components,
                           const double *startprob, const double *transmat,
                           const int64_t *lengths, int64_t n_sequences, int n_threads,
                           double *log_probs, int64_t *states);
} fastem_api;

#ifndef FASTEM_NO_IMPORT
/* The table from the installed fastem, or NULL with a Python exception set;
 * `minor` (may be NULL) receives the installed minor version (>=
 * FASTEM_API_MINOR_REQUIRED on success): entries of a newer minor than it are
 * not in the table.  Call with the GIL held. */
static inline const fastem_api *fastem_import_minor(int *minor_out)
{
    const fastem_api *api;
    long minor = 0;
    PyObject *attr;
    /* PyCapsule_Import only looks up attributes below the top-level package,
     * so the submodule is imported first. */
    PyObject *module = PyImport_ImportModule("fastem.kernels");
    if (module == NULL)
        return NULL;
    /* The minor version is a module attribute, not a table entry: an older
     * table has no room for it.  No attribute: minor 0. */
    attr = PyObject_GetAttrString(module, "API_MINOR");
    if (attr == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            Py_DECREF(module);
            return NULL;
        }
        PyErr_Clear();
    } else {
        minor = PyLong_AsLong(attr);
        Py_DECREF(attr);
        if (minor == -1 && PyErr_Occurred()) {
            Py_DECREF(module);
            return NULL;
        }
    }
    Py_DECREF(module);
    api = (const fastem_api *)PyCapsule_Import("fastem.kernels._C_API", 0);
    if (api == NULL)
        return NULL;
    if (api->api_version != FASTEM_API_VERSION) {
        PyErr_Format(PyExc_ImportError,
                     "fastem C API version %d was built against, but the installed fastem "
                     "provides version %d: rebuild this extension against it",
                     FASTEM_API_VERSION, api->api_version);
        return NULL;
    }
    if (minor < FASTEM_API_MINOR_REQUIRED) {
        PyErr_Format(PyExc_ImportError,
                     "this extension needs fastem C API %d.%d, but the installed fastem "
                     "provides %d.%ld: upgrade fastem",
                     FASTEM_API_VERSION, FASTEM_API_MINOR_REQUIRED, api->api_version, minor);
        return NULL;
    }
    if (minor_out != NULL)
        *minor_out = (int)minor;
    return api;
}

/* fastem_import_minor(NULL): for extensions that call only entries of the
 * minor they require. */
static inline const fastem_api *fastem_import(void)
{
    return fastem_import_minor(NULL);
}
#endif

#ifdef __cplusplus
}
#endif

#endif /* FASTEM_H */
