/* C port of the gemmlowp fixed-point helpers (fixedpoint/fixedpoint.h) that TFLite's SOFTMAX and LOGISTIC
 * use, plus TFLite's GetReciprocal (kernels/internal/common.h). Scalar int32 only.
 *
 * A gemmlowp FixedPoint<int32, I> is a raw int32 with I integer bits and 31 - I fractional bits; the
 * integer-bit count is a template parameter there and an explicit argument here. Multiplication of two
 * fixed-point values is SaturatingRoundingDoublingHighMul (tn_srdhm); integer bits add up.
 * gemmlowp's plain Add/Sub/Neg overflow is undefined in C++; these helpers wrap (two's complement), which is
 * what the compiled reference does on every target we compare against. */
#ifndef TN_FIXEDPOINT_H
#define TN_FIXEDPOINT_H

#include <stdint.h>
#include "requant.h"

static inline int32_t tn_fp_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline int32_t tn_fp_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }
static inline int32_t tn_fp_neg(int32_t a) { return (int32_t)(0u - (uint32_t)a); }

/* Number of leading zero bits of a 32-bit value; 32 for 0 (TFLite CountLeadingZeros). */
static inline int tn_clz32(uint32_t x) {
    if (!x) return 32;
    int n = 0;
    while (!(x & 0x80000000u)) { x <<= 1; n++; }
    return n;
}

static inline int tn_clz64(uint64_t x) {
    if (!x) return 64;
    int n = 0;
    while (!(x & 0x8000000000000000ull)) { x <<= 1; n++; }
    return n;
}

/* SaturatingRoundingMultiplyByPOT<exponent>: a saturating left shift for exponent > 0, a rounding right
 * shift (ties away from zero) for exponent < 0. */
static inline int32_t tn_fp_mul_pot(int32_t x, int exponent) {
    if (exponent == 0) return x;
    if (exponent < 0) return tn_rdbpot(x, -exponent);
    const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1u);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return (int32_t)((uint32_t)x << exponent);
}

/* Rescale<dst_bits>(FixedPoint<src_bits>) */
static inline int32_t tn_fp_rescale(int32_t x, int src_bits, int dst_bits) { return tn_fp_mul_pot(x, src_bits - dst_bits); }

/* RoundingHalfSum: (a + b) / 2 rounded to nearest, ties away from zero. */
static inline int32_t tn_fp_rounding_half_sum(int32_t a, int32_t b) {
    const int64_t sum = (int64_t)a + (int64_t)b;
    const int64_t sign = sum >= 0 ? 1 : -1;
    return (int32_t)((sum + sign) / 2);
}

/* FixedPoint<int32, I>::One(): the largest value for I == 0, else exactly 1. */
static inline int32_t tn_fp_one(int integer_bits) { return integer_bits == 0 ? INT32_MAX : (int32_t)(1u << (31 - integer_bits)); }

/* exp(a) for a in [-1/4, 0), a and the result in Q0.31. */
static inline int32_t tn_fp_exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a) {
    const int32_t constant_term = 1895147668;     /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883;  /* 1/3 */
    const int32_t x = tn_fp_add(a, 1 << 28);      /* Taylor expansion around -1/8: x = a + 1/8 */
    const int32_t x2 = tn_srdhm(x, x);
    const int32_t x3 = tn_srdhm(x2, x);
    const int32_t x4 = tn_srdhm(x2, x2);
    const int32_t x4_over_4 = tn_fp_mul_pot(x4, -2);
    const int32_t x4_over_24_plus_x3_over_6_plus_x2_over_2 =
        tn_fp_mul_pot(tn_fp_add(tn_srdhm(tn_fp_add(x4_over_4, x3), constant_1_over_3), x2), -1);
    return tn_fp_add(constant_term, tn_srdhm(constant_term, tn_fp_add(x, x4_over_24_plus_x3_over_6_plus_x2_over_2)));
}

/* exp(a) for a <= 0 given with `integer_bits` integer bits; the result is Q0.31. */
static inline int32_t tn_fp_exp_on_negative_values(int32_t a, int integer_bits) {
    static const int32_t barrel_mult[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int frac = 31 - integer_bits;
    const int32_t one_quarter = (int32_t)(1u << (frac - 2));
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_one_quarter = tn_fp_sub(a & mask, one_quarter);
    int32_t result = tn_fp_exp_on_interval_between_negative_one_quarter_and_0_excl(
        tn_fp_rescale(a_mod_quarter_minus_one_quarter, integer_bits, 0));
    const int32_t remainder = tn_fp_sub(a_mod_quarter_minus_one_quarter, a);
    /* barrel shifter over the bits of -a above 1/4: multiply by exp(-2^e) for each set bit */
    for (int e = -2; e <= 4; e++) {
        if (integer_bits > e) {
            const int shift = frac + e;
            if (remainder & (int32_t)(1u << shift)) result = tn_srdhm(result, barrel_mult[e + 2]);
        }
    }
    if (integer_bits > 5) {
        const int32_t clamp = -(int32_t)(1u << (36 - integer_bits));  /* -32.0 */
        if (a < clamp) result = 0;
    }
    if (a == 0) result = tn_fp_one(0);
    return result;
}

/* 1 / (1 + a) for a in [0, 1), Q0.31 in and out (Newton-Raphson division, three iterations). */
static inline int32_t tn_fp_one_over_one_plus_x_for_x_in_0_1(int32_t a) {
    const int32_t half_denominator = tn_fp_rounding_half_sum(a, tn_fp_one(0));
    const int32_t constant_48_over_17 = 1515870810;     /* Q2.29 */
    const int32_t constant_neg_32_over_17 = -1010580540; /* Q2.29 */
    int32_t x = tn_fp_add(constant_48_over_17, tn_srdhm(half_denominator, constant_neg_32_over_17));
    for (int i = 0; i < 3; i++) {
        const int32_t half_denominator_times_x = tn_srdhm(half_denominator, x);                 /* Q2.29 */
        const int32_t one_minus_half_denominator_times_x = tn_fp_sub(tn_fp_one(2), half_denominator_times_x);
        x = tn_fp_add(x, tn_fp_rescale(tn_srdhm(x, one_minus_half_denominator_times_x), 4, 2)); /* Q4 -> Q2 */
    }
    /* ExactMulByPot<-1> reinterprets Q2.29 as Q1.30; Rescale<0> then shifts left by one, saturating */
    return tn_fp_rescale(x, 1, 0);
}

/* logistic(a) = 1 / (1 + exp(-a)) for any a with `integer_bits` integer bits; Q0.31 result. */
static inline int32_t tn_fp_logistic(int32_t a, int integer_bits) {
    const int positive = a > 0;
    const int32_t abs_input = positive ? a : tn_fp_neg(a);
    const int32_t result_if_positive =
        tn_fp_one_over_one_plus_x_for_x_in_0_1(tn_fp_exp_on_negative_values(tn_fp_neg(abs_input), integer_bits));
    const int32_t result_if_negative = tn_fp_sub(tn_fp_one(0), result_if_positive);
    if (a == 0) return 1 << 30;  /* one half */
    return positive ? result_if_positive : result_if_negative;
}

/* TFLite GetReciprocal: 1/x for x > 0 with `x_integer_digits` integer bits, as a Q0.31 value scaled by
 * 2^-num_bits_over_unit. */
static inline int32_t tn_fp_get_reciprocal(int32_t x, int x_integer_digits, int *num_bits_over_unit) {
    const int headroom_plus_one = tn_clz32((uint32_t)x);
    *num_bits_over_unit = x_integer_digits - headroom_plus_one;
    const int32_t shifted_sum_minus_one = (int32_t)(((uint32_t)x << headroom_plus_one) - (1u << 31));
    return tn_fp_one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
}

#endif
