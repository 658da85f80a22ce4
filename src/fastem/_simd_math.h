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
