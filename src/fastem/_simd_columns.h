/* Column loops of the small-D ("column") path, compiled twice like the exp/log
 * arrays in _simd_math.h: an AVX2 clone and the baseline x86-64 one, chosen at
 * load time.  The Cython module itself is built for baseline x86-64, where
 * these loops run two doubles wide.
 *
 * Every loop does the same operations in the same order in both clones (no
 * FMA: the module is built with -ffp-contract=off), and the reductions keep
 * four fixed partial sums (element i goes to sum i mod 4), which a vector unit
 * of any width holds lane for lane: the bits do not depend on the clone.
 * fastem_component_moments and fastem_to_columns write the four lanes out as
 * GCC vectors, so both clones vectorise them the same way whatever the
 * auto-vectoriser decides.
 */
#ifndef FASTEM_SIMD_COLUMNS_H
#define FASTEM_SIMD_COLUMNS_H

#include <stdint.h>
#include <string.h>

#include "_simd_math.h"

/* y[i] += x[i] * f */
FASTEM_CLONES static void fastem_add_scaled(double *y, const double *x, double f, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        y[i] += x[i] * f;
    }
}

/* out[i] = x[i] - m */
FASTEM_CLONES static void fastem_minus(double *out, const double *x, double m, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        out[i] = x[i] - m;
    }
}

/* q[i] += y[i] * y[i] */
FASTEM_CLONES static void fastem_add_squares(double *q, const double *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        q[i] += y[i] * y[i];
    }
}

/* q[i] += ((x[i] - m) * f)^2; f = 1 gives (x[i] - m)^2 exactly. */
FASTEM_CLONES static void fastem_add_scaled_squared_diff(double *q, const double *x, double m,
                                                        double f, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double t = (x[i] - m) * f;
        q[i] += t * t;
    }
}

/* sum_i a[i] b[i] c[i] (b = NULL: sum_i a[i] c[i]; both NULL: sum_i a[i]), four partial sums. */
FASTEM_CLONES static double fastem_dot3(const double *a, const double *b, const double *c, int64_t n) {
    double s[4] = {0.0, 0.0, 0.0, 0.0};
    int64_t i = 0;
    if (b != NULL) {
        for (; i + 4 <= n; i += 4) {
            for (int l = 0; l < 4; l++) s[l] += a[i + l] * b[i + l] * c[i + l];
        }
        for (; i < n; i++) s[0] += a[i] * b[i] * c[i];
    } else if (c != NULL) {
        for (; i + 4 <= n; i += 4) {
            for (int l = 0; l < 4; l++) s[l] += a[i + l] * c[i + l];
        }
        for (; i < n; i++) s[0] += a[i] * c[i];
    } else {
        for (; i + 4 <= n; i += 4) {
            for (int l = 0; l < 4; l++) s[l] += a[i + l];
        }
        for (; i < n; i++) s[0] += a[i];
    }
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* Four doubles as one GCC vector: ymm in the AVX2 clone, two xmm in the baseline
 * one.  Lane l holds the partial sum of the elements i = l mod 4, as in fastem_dot3. */
typedef double fastem_v4 __attribute__((vector_size(32)));

/* The same four doubles read from any address: v = *(const fastem_v4u *)p loads
 * p[0:4] unaligned as one vector load (may_alias: it reads arrays of double). */
typedef double fastem_v4u __attribute__((vector_size(32), aligned(8), may_alias));
#define FASTEM_LOAD4(v, p) ((v) = *(const fastem_v4u *)(p))

/* What fastem_component_moments adds beside the count. */
enum { FASTEM_MOMENTS_FIRST = 0, FASTEM_MOMENTS_DIAG = 1, FASTEM_MOMENTS_FULL = 2 };

#define FASTEM_MAX_COLUMNS 7

/* The body of fastem_component_moments for a constant d and kind, so the
 * partial sums of every statistic stay in registers through one sweep of the
 * rows.  Each element is formed as the separate loops formed it,
 * r (x_i - m_i) and (r (x_i - m_i)) (x_j - m_j), and goes to the partial sum
 * fastem_dot3 would give it: the bits are those of one fastem_minus plus one
 * fastem_dot3 per statistic, without writing the centred columns. */
static inline __attribute__((always_inline)) void fastem_moments_body(
    const double *r, const double *cols, int64_t rows, const double *m, int d, int kind,
    double *first, double *second) {
    fastem_v4 s1[FASTEM_MAX_COLUMNS];
    fastem_v4 s2[FASTEM_MAX_COLUMNS * FASTEM_MAX_COLUMNS];
    fastem_v4 c[FASTEM_MAX_COLUMNS], rc[FASTEM_MAX_COLUMNS];
    double t1[FASTEM_MAX_COLUMNS][4], t2[FASTEM_MAX_COLUMNS * FASTEM_MAX_COLUMNS][4];
    const fastem_v4 zero = {0.0, 0.0, 0.0, 0.0};
    int64_t n = 0;
#pragma GCC unroll 8
    for (int i = 0; i < d; i++) {
        s1[i] = zero;
#pragma GCC unroll 8
        for (int j = i; j < d; j++) s2[i * d + j] = zero;
    }
    for (; n + 4 <= rows; n += 4) {
        fastem_v4 rv;
        FASTEM_LOAD4(rv, r + n);
#pragma GCC unroll 8
        for (int i = 0; i < d; i++) {
            FASTEM_LOAD4(c[i], cols + i * rows + n);
            c[i] -= m[i];
            rc[i] = rv * c[i];
            s1[i] += rc[i];
        }
        if (kind == FASTEM_MOMENTS_DIAG) {
#pragma GCC unroll 8
            for (int i = 0; i < d; i++) s2[i * d + i] += rc[i] * c[i];
        } else if (kind == FASTEM_MOMENTS_FULL) {
#pragma GCC unroll 8
            for (int i = 0; i < d; i++)
#pragma GCC unroll 8
                for (int j = i; j < d; j++) s2[i * d + j] += rc[i] * c[j];
        }
    }
    for (int i = 0; i < d; i++) {
        memcpy(t1[i], &s1[i], sizeof t1[i]);
        for (int j = i; j < d; j++) memcpy(t2[i * d + j], &s2[i * d + j], sizeof t2[0]);
    }
    for (; n < rows; n++) {  /* the tail goes to lane 0, in order */
        for (int i = 0; i < d; i++) {
            double ci = cols[i * rows + n] - m[i];
            double rci = r[n] * ci;
            t1[i][0] += rci;
            if (kind == FASTEM_MOMENTS_DIAG) t2[i * d + i][0] += rci * ci;
            if (kind == FASTEM_MOMENTS_FULL) {
                for (int j = i; j < d; j++) t2[i * d + j][0] += rci * (cols[j * rows + n] - m[j]);
            }
        }
    }
    for (int i = 0; i < d; i++) {
        first[i] += (t1[i][0] + t1[i][1]) + (t1[i][2] + t1[i][3]);
        if (kind == FASTEM_MOMENTS_DIAG) {
            double *t = t2[i * d + i];
            second[i] += (t[0] + t[1]) + (t[2] + t[3]);
        } else if (kind == FASTEM_MOMENTS_FULL) {
            for (int j = i; j < d; j++) {
                double *t = t2[i * d + j];
                second[i * d + j] += (t[0] + t[1]) + (t[2] + t[3]);
            }
        }
    }
}

#define FASTEM_MOMENTS_CASE(D)                                                              \
    case D:                                                                                 \
        if (kind == FASTEM_MOMENTS_FULL)                                                    \
            fastem_moments_body(r, cols, rows, m, D, FASTEM_MOMENTS_FULL, first, second);   \
        else if (kind == FASTEM_MOMENTS_DIAG)                                               \
            fastem_moments_body(r, cols, rows, m, D, FASTEM_MOMENTS_DIAG, first, second);   \
        else                                                                                \
            fastem_moments_body(r, cols, rows, m, D, FASTEM_MOMENTS_FIRST, first, second);  \
        return 0;

/* One component's moments about m over a chunk held as d <= 7 columns of
 * `rows` values: first[i] += sum_n r_n (x_ni - m_i), and for DIAG
 * second[i] += sum_n r_n (x_ni - m_i)^2, for FULL second[i d + j] (j >= i) +=
 * sum_n r_n (x_ni - m_i)(x_nj - m_j).  One read of r and of the columns, where
 * a loop per statistic would read them D (FULL: D^2 / 2) times.  Returns -1
 * (nothing added) for d outside 1..7. */
FASTEM_CLONES static int fastem_component_moments(const double *r, const double *cols, int64_t rows,
                                                  int64_t d, const double *m, int kind,
                                                  double *first, double *second) {
    switch (d) {
        FASTEM_MOMENTS_CASE(1)
        FASTEM_MOMENTS_CASE(2)
        FASTEM_MOMENTS_CASE(3)
        FASTEM_MOMENTS_CASE(4)
        FASTEM_MOMENTS_CASE(5)
        FASTEM_MOMENTS_CASE(6)
        FASTEM_MOMENTS_CASE(7)
        default:
            return -1;
    }
}

#undef FASTEM_MOMENTS_CASE

typedef int64_t fastem_m4 __attribute__((vector_size(32)));

/* The body of fastem_to_columns for a constant width and weighting: four rows
 * at a time, each column's four values stored as one vector. */
static inline __attribute__((always_inline)) void fastem_columns_body(
    const double *x, int64_t ld, int64_t rows, int64_t width, const double *weight, double *cols) {
    const fastem_v4 zero = {0.0, 0.0, 0.0, 0.0};
    int64_t n = 0;
    for (; n + 4 <= rows; n += 4) {
        const double *row = x + n * ld;
        fastem_v4 w = {1.0, 1.0, 1.0, 1.0};
        fastem_m4 keep = {-1, -1, -1, -1};
        if (weight != NULL) {
            FASTEM_LOAD4(w, weight + n);
            keep = w != zero;
        }
#pragma GCC unroll 8
        for (int64_t i = 0; i < width; i++) {
            fastem_v4 v = {row[i], row[ld + i], row[2 * ld + i], row[3 * ld + i]};
            if (weight != NULL) v = (fastem_v4)((fastem_m4)(w * v) & keep);
            *(fastem_v4u *)(cols + i * rows + n) = v;
        }
    }
    for (; n < rows; n++) {
        double w = weight == NULL ? 1.0 : weight[n];
        for (int64_t i = 0; i < width; i++) {
            double v = x[n * ld + i];
            cols[i * rows + n] = weight == NULL ? v : (w == 0.0 ? 0.0 : w * v);
        }
    }
}

#define FASTEM_COLUMNS_CASE(W)                                                    \
    case W:                                                                       \
        if (weight == NULL)                                                       \
            fastem_columns_body(x, ld, rows, W, NULL, cols);                      \
        else                                                                      \
            fastem_columns_body(x, ld, rows, W, weight, cols);                    \
        return;

/* cols[i rows + n] = x[n ld + i] for the first `width` values of each of `rows`
 * rows (the chunk as one column per feature, or responsibilities one component
 * after another); with weights, w[n] x[n ld + i], and exactly 0 where w[n] = 0
 * (a zero-weight row drops out even if its values are not finite). */
FASTEM_CLONES static void fastem_to_columns(const double *x, int64_t ld, int64_t rows, int64_t width,
                                            const double *weight, double *cols) {
    switch (width) {
        FASTEM_COLUMNS_CASE(1)
        FASTEM_COLUMNS_CASE(2)
        FASTEM_COLUMNS_CASE(3)
        FASTEM_COLUMNS_CASE(4)
        FASTEM_COLUMNS_CASE(5)
        FASTEM_COLUMNS_CASE(6)
        FASTEM_COLUMNS_CASE(7)
        FASTEM_COLUMNS_CASE(8)
        default:
            fastem_columns_body(x, ld, rows, width, weight, cols);
    }
}

#undef FASTEM_COLUMNS_CASE

#endif
