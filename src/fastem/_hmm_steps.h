/* The recursions of forward-backward over blocks of rows, compiled twice like the
 * loops of _simd_columns.h: an AVX2 clone and the baseline x86-64 one, chosen at
 * load time.  The per-row work (K x K products, sums, scaling) is small and
 * strictly sequential from row to row, so it lives here whole: a call per block
 * rather than per row, and every loop in it vectorised for the CPU that runs it.
 *
 * Bits: every loop runs across independent outputs, and each output is a sum over
 * the other index in ascending order; the one reduction across a row (the scale
 * c_t) keeps four partial sums in a fixed pattern, (s0 + s1) + (s2 + s3).  The
 * module is built with -ffp-contract=off (no FMA), so both clones round every
 * operation the same way: the results do not depend on the clone.
 */
#ifndef FASTEM_HMM_STEPS_H
#define FASTEM_HMM_STEPS_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "_simd_math.h"

#define FASTEM_HMM_INLINE static inline __attribute__((always_inline))

/* Four doubles as one GCC vector: 256-bit registers in the AVX2 clone, pairs of
 * 128-bit ones in the baseline clone; element-wise, so the bits are the same. */
typedef double fastem_hmm_v4 __attribute__((vector_size(32)));

FASTEM_HMM_INLINE fastem_hmm_v4 fastem_hmm_load(const double *p) {
    fastem_hmm_v4 v;
    memcpy(&v, p, sizeof v);
    return v;
}

FASTEM_HMM_INLINE void fastem_hmm_store(double *p, fastem_hmm_v4 v) {
    memcpy(p, &v, sizeof v);
}

/* out[j] = (sum_i x[i] * M[i * K + j]) * scale[j], i ascending (scale NULL: no
 * scaling).  Forward: x = alpha_{t-1}, M = A, scale = e_t.  Backward: x = v_{t+1},
 * M = A^T.  Vectors run across j, so each out[j] is summed over i in a fixed
 * order whatever the vector width; blocks of 8, then 4, outputs stay in registers
 * for the whole sum (a loop that stored them after every i would wait on its own
 * stores). */
FASTEM_HMM_INLINE void fastem_hmm_vector_matrix(const double *restrict x,
                                                const double *restrict M,
                                                const double *restrict scale,
                                                double *restrict out, int64_t K) {
    int64_t j = 0;
    for (; j + 8 <= K; j += 8) {
        /* Two partial sums, over even and over odd i, added at the end: half the
         * chain of dependent additions, which is what a step of one long sequence
         * waits on. */
        fastem_hmm_v4 lo = {0.0, 0.0, 0.0, 0.0}, hi = {0.0, 0.0, 0.0, 0.0};
        fastem_hmm_v4 lo_odd = {0.0, 0.0, 0.0, 0.0}, hi_odd = {0.0, 0.0, 0.0, 0.0};
        int64_t i = 0;
        for (; i + 2 <= K; i += 2) {
            const double *row = M + i * K + j;
            lo += x[i] * fastem_hmm_load(row);
            hi += x[i] * fastem_hmm_load(row + 4);
            lo_odd += x[i + 1] * fastem_hmm_load(row + K);
            hi_odd += x[i + 1] * fastem_hmm_load(row + K + 4);
        }
        if (i < K) {
            lo += x[i] * fastem_hmm_load(M + i * K + j);
            hi += x[i] * fastem_hmm_load(M + i * K + j + 4);
        }
        lo += lo_odd;
        hi += hi_odd;
        if (scale != NULL) {
            lo *= fastem_hmm_load(scale + j);
            hi *= fastem_hmm_load(scale + j + 4);
        }
        fastem_hmm_store(out + j, lo);
        fastem_hmm_store(out + j + 4, hi);
    }
    for (; j + 4 <= K; j += 4) {
        fastem_hmm_v4 acc = {0.0, 0.0, 0.0, 0.0};
        for (int64_t i = 0; i < K; i++) acc += x[i] * fastem_hmm_load(M + i * K + j);
        if (scale != NULL) acc *= fastem_hmm_load(scale + j);
        fastem_hmm_store(out + j, acc);
    }
    for (; j < K; j++) {
        double acc = 0.0;
        for (int64_t i = 0; i < K; i++) acc += x[i] * M[i * K + j];
        out[j] = scale != NULL ? acc * scale[j] : acc;
    }
}

/* sum_k v[k] as (s0 + s1) + (s2 + s3), s_l the sum of the v[k] with k mod 4 = l. */
FASTEM_HMM_INLINE double fastem_hmm_sum(const double *restrict v, int64_t K) {
    double s[4] = {0.0, 0.0, 0.0, 0.0};
    int64_t k = 0;
    for (; k + 4 <= K; k += 4) {
        for (int l = 0; l < 4; l++) s[l] += v[k + l];
    }
    for (int l = 0; k < K; k++, l++) s[l] += v[k];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* Divide v by its sum; 0 if the sum is not in (0, DBL_MAX] (then v is unchanged). */
FASTEM_HMM_INLINE int fastem_hmm_normalise(double *restrict v, int64_t K) {
    const double total = fastem_hmm_sum(v, K);
    if (!(total > 0.0 && total <= DBL_MAX)) return 0;
    const double inv = 1.0 / total;
    for (int64_t k = 0; k < K; k++) v[k] *= inv;
    return 1;
}

/* The emission factors of a block of rows: shift[r] = max_k l[r, k] and
 * e[r, k] = exp(l[r, k] - shift[r]) (<= 1), by the vectorised exp of _simd_math.h.
 * A row of -inf gives NaN, which sends its sequence to the exact log-space path. */
FASTEM_HMM_INLINE void fastem_hmm_shifted_exps_k(const double *restrict l, int64_t rows,
                                                 int64_t K, double *restrict e,
                                                 double *restrict shift) {
    for (int64_t r = 0; r < rows; r++) {
        const double *restrict lr = l + r * K;
        double top = lr[0];
        for (int64_t k = 1; k < K; k++) top = lr[k] > top ? lr[k] : top;
        shift[r] = top;
        for (int64_t k = 0; k < K; k++) e[r * K + k] = lr[k] - top;
    }
    for (int64_t i = 0; i < rows * K; i++) e[i] = fastem_exp(e[i]);
}

/* logs[r] = shift[r] + log(scales[r]): one row's term of the log-likelihood. */
FASTEM_CLONES static void fastem_hmm_log_terms(const double *restrict shift,
                                              const double *restrict scales,
                                              double *restrict logs, int64_t rows) {
    for (int64_t r = 0; r < rows; r++) logs[r] = shift[r] + fastem_log(scales[r]);
}

/* Rows 0..rows-1 of a block of the rescaled forward recursion:
 *     a_t = (alpha_{t-1} A) * e_t  (a_0 = start * e_0 when prev is NULL),
 *     c_t = sum a_t,  alpha_t = a_t / c_t.
 * The recursion runs on the unscaled a_t: a_t = ((a_{t-1} A) * e_t) / c_{t-1}, so
 * the division by c_{t-1} (a sum and a divide) proceeds beside the product
 * instead of before it; alpha_t = a_t / c_t is stored off the chain.  A block
 * starts from prev = alpha_{t-1} itself (c = 1).
 * e: (rows, K) emission factors; out: the alphas, row t at out + t * K when `keep`,
 * else alternating between the two rows of out (only the last one is needed);
 * a: (2, K) scratch; scales: (rows,) the c_t; l: (rows, K) the log-densities;
 * fragile: (K,) the states other states cannot refill, or NULL (no check).
 * Returns the rows done: fewer than `rows` when a c_t falls outside
 * [min_scale, DBL_MAX] (or is NaN) or a fragile state loses its share, the row
 * the caller must handle (its c_t is left in scales[t]). */
FASTEM_HMM_INLINE int64_t fastem_hmm_forward_rows_k(
    const double *restrict start, const double *restrict A, const double *restrict e,
    int64_t rows, int64_t K, const double *prev, double *out, int keep,
    double *restrict a, double *restrict scales, double min_scale,
    const double *restrict l, const unsigned char *restrict fragile) {
    double inv_prev = 1.0;
    for (int64_t t = 0; t < rows; t++) {
        const double *restrict et = e + t * K;
        double *restrict at = a + (t & 1) * K;
        double *row = keep ? out + t * K : out + (t & 1) * K;
        if (prev == NULL) {
            for (int64_t j = 0; j < K; j++) at[j] = start[j] * et[j];
        } else {
            fastem_hmm_vector_matrix(prev, A, et, at, K);
            for (int64_t j = 0; j < K; j++) at[j] *= inv_prev;
        }
        const double c = fastem_hmm_sum(at, K);
        if (!(c >= min_scale && c <= DBL_MAX)) {
            scales[t] = c;
            return t;
        }
        const double inv = 1.0 / c;
        for (int64_t j = 0; j < K; j++) row[j] = at[j] * inv;
        if (fragile != NULL) {
            /* A state that other states cannot refill (fragile: some transition
             * into it is 0 or below FASTEM_HMM_REFILL_MIN) keeps only what it
             * carries itself: if its share falls below 1e-250 (0 included) while
             * it is alive (reachable, finite emission), the rescaled pass would
             * lose mass the data may later favour.  Hand the row back. */
            const double *restrict lt = l + t * K;
            for (int64_t j = 0; j < K; j++) {
                if (fragile[j] && row[j] < 1e-250 && lt[j] > -INFINITY) {
                    double reach = 0.0;
                    if (prev == NULL) {
                        reach = start[j];
                    } else {
                        for (int64_t i = 0; i < K; i++) reach += prev[i] * A[i * K + j];
                    }
                    if (reach > 0.0) {
                        scales[t] = c;
                        return t;
                    }
                }
            }
        }
        scales[t] = c;
        prev = at;
        inv_prev = inv;
    }
    return rows;
}

/* Rows a block of the backward pass handles at once: its v and beta rows fit in
 * L1 beside the alphas, and the transition sums of the block stay in registers. */
#define FASTEM_HMM_BACK_BLOCK 16

/* xi[i, j] += sum_b a_b[i] * v_b[j] over b = 0..rows-1 in that order, a_b the row
 * at a - b * K (rows of descending t) and v_b = v + b * K.  Each xi[i, j] gets its
 * terms added one at a time in order, exactly as row-by-row updates would; the
 * running sums of a 4 x 8 tile stay in registers across the block instead of
 * going through memory for every row. */
FASTEM_HMM_INLINE void fastem_hmm_add_outer_block(double *restrict xi, const double *a,
                                                  const double *restrict v, int64_t rows,
                                                  int64_t K) {
    int64_t i = 0;
    for (; i + 4 <= K; i += 4) {
        int64_t j = 0;
        for (; j + 8 <= K; j += 8) {
            fastem_hmm_v4 acc[4][2];
            for (int r = 0; r < 4; r++) {
                acc[r][0] = fastem_hmm_load(xi + (i + r) * K + j);
                acc[r][1] = fastem_hmm_load(xi + (i + r) * K + j + 4);
            }
            for (int64_t b = 0; b < rows; b++) {
                const fastem_hmm_v4 lo = fastem_hmm_load(v + b * K + j);
                const fastem_hmm_v4 hi = fastem_hmm_load(v + b * K + j + 4);
                const double *ab = a - b * K + i;
                for (int r = 0; r < 4; r++) {
                    acc[r][0] += ab[r] * lo;
                    acc[r][1] += ab[r] * hi;
                }
            }
            for (int r = 0; r < 4; r++) {
                fastem_hmm_store(xi + (i + r) * K + j, acc[r][0]);
                fastem_hmm_store(xi + (i + r) * K + j + 4, acc[r][1]);
            }
        }
        for (; j + 4 <= K; j += 4) {
            fastem_hmm_v4 acc[4];
            for (int r = 0; r < 4; r++) acc[r] = fastem_hmm_load(xi + (i + r) * K + j);
            for (int64_t b = 0; b < rows; b++) {
                const fastem_hmm_v4 vb = fastem_hmm_load(v + b * K + j);
                const double *ab = a - b * K + i;
                for (int r = 0; r < 4; r++) acc[r] += ab[r] * vb;
            }
            for (int r = 0; r < 4; r++) fastem_hmm_store(xi + (i + r) * K + j, acc[r]);
        }
        for (; j < K; j++) {
            for (int r = 0; r < 4; r++) {
                double acc = xi[(i + r) * K + j];
                for (int64_t b = 0; b < rows; b++) acc += a[-b * K + i + r] * v[b * K + j];
                xi[(i + r) * K + j] = acc;
            }
        }
    }
    for (; i < K; i++) {
        for (int64_t j = 0; j < K; j++) {
            double acc = xi[i * K + j];
            for (int64_t b = 0; b < rows; b++) acc += a[-b * K + i] * v[b * K + j];
            xi[i * K + j] = acc;
        }
    }
}

/* The rescaled backward recursion over one sequence of n rows, from t = n - 2 down:
 *     v = e_{t+1} * beta_{t+1} / c_{t+1},  beta_t = A v,  xi += alpha_t (x) v,
 *     gamma_t = alpha_t * beta_t normalised, written over alpha_t.
 * In blocks of FASTEM_HMM_BACK_BLOCK rows: first the recursion (the only chain of
 * dependent steps), keeping each row's v and beta in `block` (2 * BLOCK * K
 * doubles), then the block's transition sums, then its gammas.  beta: (K,) holds
 * beta_{n-1} on entry; xi: (K, K) running sum of alpha_t (x) v_{t+1} (the caller
 * multiplies by A once).  Returns -1, or the first row (from the end) whose gamma
 * could not be normalised, left unnormalised; `stop`: return at that row, else
 * carry on with the rows before it. */
FASTEM_HMM_INLINE int64_t fastem_hmm_backward_rows_k(
    const double *restrict AT, const double *restrict e, const double *restrict scales,
    double *restrict alpha, int64_t n, int64_t K, double *restrict beta,
    double *restrict block, double *restrict xi, int stop) {
    double *restrict vs = block;
    double *restrict betas = block + FASTEM_HMM_BACK_BLOCK * K;
    int64_t failed = -1;
    for (int64_t top = n - 2; top >= 0; top -= FASTEM_HMM_BACK_BLOCK) {
        const int64_t rows = top + 1 < FASTEM_HMM_BACK_BLOCK ? top + 1 : FASTEM_HMM_BACK_BLOCK;
        const double *restrict next = beta;
        for (int64_t b = 0; b < rows; b++) {
            const int64_t t = top - b;
            const double *restrict et = e + (t + 1) * K;
            const double inv = 1.0 / scales[t + 1];
            double *restrict v = vs + b * K;
            for (int64_t j = 0; j < K; j++) v[j] = et[j] * next[j] * inv;
            fastem_hmm_vector_matrix(v, AT, NULL, betas + b * K, K);
            next = betas + b * K;
        }
        fastem_hmm_add_outer_block(xi, alpha + top * K, vs, rows, K);
        for (int64_t b = 0; b < rows; b++) {
            double *restrict a = alpha + (top - b) * K;
            const double *restrict bt = betas + b * K;
            for (int64_t i = 0; i < K; i++) a[i] *= bt[i];
            if (!fastem_hmm_normalise(a, K) && failed < 0) {
                failed = top - b;
                if (stop) return failed;
            }
        }
        for (int64_t i = 0; i < K; i++) beta[i] = next[i];
    }
    return failed;
}

/* The entry points: each function above, with K a constant for the common small
 * K (the compiler then unrolls the K-loops whole), or any K. */
#define FASTEM_HMM_BY_K(call, K)                                                    \
    switch (K) {                                                                    \
        case 1: call(1); case 2: call(2); case 3: call(3); case 4: call(4);         \
        case 5: call(5); case 6: call(6); case 7: call(7); case 8: call(8);         \
        case 12: call(12); case 16: call(16);                                       \
        default: call(K);                                                           \
    }

FASTEM_CLONES static int64_t fastem_hmm_forward_rows(
    const double *restrict start, const double *restrict A, const double *restrict e,
    int64_t rows, int64_t K, const double *prev, double *out, int keep,
    double *restrict a, double *restrict scales, double min_scale,
    const double *restrict l, const unsigned char *restrict fragile) {
#define FASTEM_HMM_CALL(k) \
    return fastem_hmm_forward_rows_k(start, A, e, rows, k, prev, out, keep, a, scales, \
                                     min_scale, l, fragile)
    FASTEM_HMM_BY_K(FASTEM_HMM_CALL, K)
#undef FASTEM_HMM_CALL
}

FASTEM_CLONES static int64_t fastem_hmm_backward_rows(
    const double *restrict AT, const double *restrict e, const double *restrict scales,
    double *restrict alpha, int64_t n, int64_t K, double *restrict beta,
    double *restrict block, double *restrict xi, int stop) {
#define FASTEM_HMM_CALL(k) \
    return fastem_hmm_backward_rows_k(AT, e, scales, alpha, n, k, beta, block, xi, stop)
    FASTEM_HMM_BY_K(FASTEM_HMM_CALL, K)
#undef FASTEM_HMM_CALL
}

FASTEM_CLONES static void fastem_hmm_shifted_exps(const double *restrict l, int64_t rows,
                                                 int64_t K, double *restrict e,
                                                 double *restrict shift) {
#define FASTEM_HMM_CALL(k) \
    do { fastem_hmm_shifted_exps_k(l, rows, k, e, shift); return; } while (0)
    FASTEM_HMM_BY_K(FASTEM_HMM_CALL, K)
#undef FASTEM_HMM_CALL
}

/* gamma_{n-1} = alpha_{n-1} normalised (beta_{n-1} = 1); 0 if it cannot be. */
FASTEM_CLONES static int fastem_hmm_normalise_row(double *v, int64_t K) {
    return fastem_hmm_normalise(v, K);
}

#endif
