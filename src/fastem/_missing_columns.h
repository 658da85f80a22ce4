/* Column loops of the missing-value pass (_missing.pyx) for a few features,
 * compiled twice like _simd_columns.h: an AVX2 clone and the baseline x86-64
 * one, chosen at load time.  Every operation is elementwise over the rows (no
 * reassociation, no FMA: the module is built with -ffp-contract=off), and the
 * dots keep _simd_columns.h's four fixed partial sums, so both clones give the
 * same bits.  At a few features a BLAS call's packing costs more than this.
 */
#ifndef FASTEM_MISSING_COLUMNS_H
#define FASTEM_MISSING_COLUMNS_H

#include <stdint.h>

#include "_simd_math.h"

/* A chunk stored by columns ld apart, n rows: z_j = sum_{i <= j} U[i, j] y_i
 * for j < d (U upper triangular, row-major d x d), and q += |z|^2 summed over
 * j in order. */
FASTEM_CLONES static void fastem_whiten_columns(const double *Y, const double *U, int64_t d,
                                                int64_t n, int64_t ld, double *Z, double *q) {
    for (int64_t j = 0; j < d; j++) {
        double *z = Z + j * ld;
        double u = U[j];
        for (int64_t r = 0; r < n; r++) {
            z[r] = u * Y[r];
        }
        for (int64_t i = 1; i <= j; i++) {
            const double *y = Y + i * ld;
            u = U[i * d + j];
            for (int64_t r = 0; r < n; r++) {
                z[r] += u * y[r];
            }
        }
        for (int64_t r = 0; r < n; r++) {
            q[r] += z[r] * z[r];
        }
    }
}

#endif
