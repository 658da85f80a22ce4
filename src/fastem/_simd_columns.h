/* Column loops of the small-D ("column") path, compiled twice like the exp/log
 * arrays in _simd_math.h: an AVX2 clone and the baseline x86-64 one, chosen at
 * load time.  The Cython module itself is built for baseline x86-64, where
 * these loops run two doubles wide.
 *
 * Every loop does the same operations in the same order in both clones (no
 * FMA: the module is built with -ffp-contract=off), and the reductions keep
 * four fixed partial sums (element i goes to sum i mod 4), which a vector unit
 * of any width holds lane for lane: the bits do not depend on the clone.
 */
#ifndef FASTEM_SIMD_COLUMNS_H
#define FASTEM_SIMD_COLUMNS_H

#include <stdint.h>

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

#endif
