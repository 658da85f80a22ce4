/* Vectorisable exp and log over arrays, and the other column loops of the
 * log-sum-exp of the E-step (the rest of the module is built for baseline
 * x86-64, so only these functions get the AVX2 clone).
 *
 * libm's exp and log are scalar calls; these loops are plain arithmetic and
 * integer bit operations on 64-bit lanes, which GCC vectorises.  Each array
 * function is compiled twice (target_clones): an AVX2 version and the
 * baseline x86-64 one, chosen once at load time by the CPU it runs on.  The
 * module is built with -ffp-contract=off, so neither version fuses a multiply
 * and an add: both round every operation the same way and give bitwise equal
 * results (a test checks this).  -fno-trapping-math lets GCC turn the range
 * selections below into blends; it changes no result, only whether a
 * floating-point exception flag may be raised.
 *
 * Accuracy: within a few ulp of libm on the normal range.  exp flushes results
 * below 2^-1022 (x < -708.39) to 0 instead of returning subnormals: such a
 * term is a responsibility below 1e-308, which changes no sum it is part of.
 */
#ifndef FASTEM_SIMD_MATH_H
#define FASTEM_SIMD_MATH_H

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FASTEM_CLONES __attribute__((target_clones("avx2", "default")))
#define FASTEM_HAVE_CLONES 1
#else
#define FASTEM_CLONES
#define FASTEM_HAVE_CLONES 0
#endif

static inline double fastem_bits_to_double(uint64_t bits) {
    double out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

static inline uint64_t fastem_double_to_bits(double value) {
    uint64_t out;
    memcpy(&out, &value, sizeof out);
    return out;
}

/* exp(x) = 2^k exp(r), k = round(x / ln 2), r = x - k ln 2 in two parts
 * (Cody-Waite) so r is exact to double precision; exp(r) for |r| <= ln2/2
 * by its Taylor polynomial to degree 13 (truncation below 1e-17). */
static inline double fastem_exp(double x) {
    const double shifter = 6755399441055744.0;  /* 1.5 * 2^52: adding it rounds to an integer */
    const double inv_ln2 = 1.4426950408889634;
    const double ln2_hi = 0.6931471803691238;   /* ln 2 with its low 28 bits cleared */
    const double ln2_lo = 1.9082149292705877e-10;
    double clamped = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);
    double t = clamped * inv_ln2 + shifter;
    double k = t - shifter;
    double r = (clamped - k * ln2_hi) - k * ln2_lo;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    /* The low bits of t hold k: move k + 1023 into the exponent field. */
    uint64_t scale_bits = (fastem_double_to_bits(t) + 1023u) << 52;
    double result = p * fastem_bits_to_double(scale_bits);
    return x < -708.0 ? 0.0 : result;  /* also exp(-inf) = 0 */
}

/* log(x) for finite x > 0: x = m 2^e with m in [sqrt(1/2), sqrt(2)), and
 * log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.1716, by its odd series
 * to s^23 (truncation below 1e-19). */
static inline double fastem_log(double x) {
    const double ln2 = 0.6931471805599453;
    const uint64_t sqrt_half_bits = 0x3fe6a09e667f3bcdull;
    const uint64_t bias = 1023ull << 52;
    uint64_t bits = fastem_double_to_bits(x);
    /* Counting from the bits of sqrt(1/2) makes the exponent field index the
     * interval [sqrt(1/2), sqrt(2)) instead of [1, 2); + bias keeps it
     * non-negative, so only logical shifts are needed (AVX2 has no 64-bit
     * arithmetic shift). */
    uint64_t biased_e = (bits - sqrt_half_bits + bias) >> 52;   /* e + 1023 */
    double m = fastem_bits_to_double(bits - (biased_e << 52) + bias);
    /* e as a double without an int64 -> double conversion (none in AVX2):
     * put it in the low mantissa bits of 2^52 and subtract 2^52. */
    double e = fastem_bits_to_double(biased_e | 0x4330000000000000ull) - 4503599627370496.0 - 1023.0;
    double s = (m - 1.0) / (m + 1.0);
    double s2 = s * s;
    double q = 1.0 / 23.0;
    q = q * s2 + 1.0 / 21.0;
    q = q * s2 + 1.0 / 19.0;
    q = q * s2 + 1.0 / 17.0;
    q = q * s2 + 1.0 / 15.0;
    q = q * s2 + 1.0 / 13.0;
    q = q * s2 + 1.0 / 11.0;
    q = q * s2 + 1.0 / 9.0;
    q = q * s2 + 1.0 / 7.0;
    q = q * s2 + 1.0 / 5.0;
    q = q * s2 + 1.0 / 3.0;
    q = q * s2 + 1.0;
    return e * ln2 + 2.0 * s * q;
}

/* log(1 + x) for finite x > -1, accurate for small x where log(1 + x) is not:
 * u = 1 + x rounds, and c = (1 + x) - u, recovered exactly as fdlibm does
 * (Fast2Sum, the larger of 1 and x first), gives log(1 + x) = log(u) +
 * log(1 + c / u) = log(u) + c / u to well below an ulp.  For x >= 2^53, 1 is
 * below u's last bit and c is dropped (also keeps inf - inf out of it). */
static inline double fastem_log1p(double x) {
    double u = 1.0 + x;
    double c = u >= 2.0 ? 1.0 - (u - x) : x - (u - 1.0);
    c = u < 9007199254740992.0 ? c : 0.0;
    return fastem_log(u) + c / u;
}

/* values[i] = exp(values[i]) for i < n. */
FASTEM_CLONES static void fastem_exp_array(double *values, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        values[i] = fastem_exp(values[i]);
    }
}

/* For one component's column of a log-sum-exp: values[i] = exp(values[i] - shift[i])
 * and total[i] += values[i] (total[i] = values[i] when `first`).  One pass instead
 * of three; every operation rounds as in the separate loops, so the bits are those
 * of subtracting, exponentiating and summing one after another. */
FASTEM_CLONES static void fastem_exp_shifted_sum(double *values, const double *shift,
                                                double *total, int64_t n, int first) {
    if (first) {
        for (int64_t i = 0; i < n; i++) {
            values[i] = fastem_exp(values[i] - shift[i]);
            total[i] = values[i];
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            values[i] = fastem_exp(values[i] - shift[i]);
            total[i] += values[i];
        }
    }
}

/* top[i] = max(top[i], values[i]): a column of the log-sum-exp's running maximum. */
FASTEM_CLONES static void fastem_max_into(double *top, const double *values, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        top[i] = values[i] > top[i] ? values[i] : top[i];
    }
}

/* values[i] *= scale[i]: responsibilities from a column of exponentials. */
FASTEM_CLONES static void fastem_scale_by(double *values, const double *scale, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        values[i] *= scale[i];
    }
}

/* out[i] = log(values[i]) for i < n; values must be finite and positive. */
FASTEM_CLONES static void fastem_log_array(const double *values, double *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        out[i] = fastem_log(values[i]);
    }
}

/* out[i] = log(1 + values[i]) for i < n; values must be finite and > -1. */
FASTEM_CLONES static void fastem_log1p_array(const double *values, double *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        out[i] = fastem_log1p(values[i]);
    }
}

/* The log-sum-exp of a two-component chunk, one exp and one log1p per row
 * instead of two exps and a log.  With a = max and b = min of the row's two
 * log-densities and e = exp(b - a) (so 0 <= e <= 1):
 *     log p(x) = a + log1p(e),  r_max = 1 / (1 + e),  r_min = e / (1 + e).
 * The responsibilities are w * 1 * s and w * e * s with s = 1 / (1 + e) (or
 * w / (1 + e)): the very operations of the K-way path, whose exp(a - a) is
 * exactly 1, so they have its bits.  Kept alike as well:
 * - a row with no finite density (a = -inf) gets zero responsibilities and
 *   log p = -inf (log1p(0) is added to it);
 * - NaN anywhere makes the row NaN, and so does a = +inf (the K-way path's
 *   exp(a - a) = NaN): `one` is 1, or NaN exactly in that case, and is
 *   carried into both responsibilities and the log1p.
 * Two passes, the exp and then the log1p: fused in one loop the two
 * polynomials need more than the 16 vector registers, and the spills cost
 * more than the second pass over the chunk (which is in cache). */
static inline void fastem_pair_exp_row(double *first, double *second, double w,
                                       double *top, double *rest) {
    double x0 = *first, x1 = *second;
    int greater = x1 > x0;
    double a = greater ? x1 : x0;
    double b = greater ? x0 : x1;
    int empty = a == -__builtin_inf();
    double one = empty ? 0.0 : (a - a) + 1.0;
    double e = fastem_exp(b - (empty ? 0.0 : a));
    double scale = w / (empty ? 1.0 : one + e);
    *first = (greater ? e : one) * scale;
    *second = (greater ? one : e) * scale;
    *top = a;
    *rest = empty ? 0.0 : e * one;
}

/* sum_i (top[i] + log(1 + rest[i])) for rest[i] in [0, 1] (or NaN), with a
 * log per PAIR_LOG_GROUP rows instead of one per row: the factors 1 + rest[i]
 * are multiplied in four fixed lanes, at most 1000 per lane so the product
 * stays below 2^1000.  Each factor is rounded as 1 + e is on the K-way path,
 * and a product of 1000 adds at most ~1000 ulp to a log of up to 693, about
 * 1e-13 on a sum of this size.  NaN propagates (p - p), and a row with no
 * finite density (top = -inf, rest = 0) makes the sum -inf as it should. */
#define FASTEM_PAIR_LOG_GROUP 4000
static inline double fastem_sum_of_logs_pair(const double *top, const double *rest, int64_t n) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, logs = 0.0;
    for (int64_t start = 0; start < n; start += FASTEM_PAIR_LOG_GROUP) {
        int64_t end = n - start < FASTEM_PAIR_LOG_GROUP ? n : start + FASTEM_PAIR_LOG_GROUP;
        double p0 = 1.0, p1 = 1.0, p2 = 1.0, p3 = 1.0;
        int64_t i = start;
        for (; i + 4 <= end; i += 4) {
            s0 += top[i];
            s1 += top[i + 1];
            s2 += top[i + 2];
            s3 += top[i + 3];
            p0 *= 1.0 + rest[i];
            p1 *= 1.0 + rest[i + 1];
            p2 *= 1.0 + rest[i + 2];
            p3 *= 1.0 + rest[i + 3];
        }
        for (; i < end; i++) {
            s0 += top[i];
            p0 *= 1.0 + rest[i];
        }
        logs += ((fastem_log(p0) + (p0 - p0)) + (fastem_log(p1) + (p1 - p1)))
              + ((fastem_log(p2) + (p2 - p2)) + (fastem_log(p3) + (p3 - p3)));
    }
    return ((s0 + s1) + (s2 + s3)) + logs;
}

/* first, second: INOUT (n,) the log-densities of components 0 and 1 in,
 * w * responsibilities out; weight: (n,) or NULL for all ones; rest: scratch
 * (n,).  log_lik_sum NULL: log_lik OUT (n,) log p(x) of each row.  Else (no
 * weights only) *log_lik_sum = sum_i log p(x_i) from a log per group of rows
 * (fastem_sum_of_logs_pair) and log_lik is scratch: the EM pass needs only
 * the sum.  One loop per case, free of branches. */
FASTEM_CLONES static void fastem_normalise_pair(double *first, double *second, const double *weight,
                                               double *log_lik, double *rest, double *log_lik_sum,
                                               int64_t n) {
    if (weight == NULL) {
        for (int64_t i = 0; i < n; i++) {
            fastem_pair_exp_row(first + i, second + i, 1.0, log_lik + i, rest + i);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            fastem_pair_exp_row(first + i, second + i, weight[i], log_lik + i, rest + i);
        }
    }
    if (log_lik_sum != NULL) {
        *log_lik_sum = fastem_sum_of_logs_pair(log_lik, rest, n);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        log_lik[i] += fastem_log1p(rest[i]);
    }
}

/* Which clone the loader picked (1: AVX2), for reports and tests. */
static int fastem_simd_level(void) {
#if FASTEM_HAVE_CLONES
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
#else
    return 0;
#endif
}

#endif
