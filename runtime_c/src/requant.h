/* TFLite's integer requantization, double rounding: the one place its rounding is written.
 * See ../shared/docs/int8-arithmetic.md. */
#ifndef TN_REQUANT_H
#define TN_REQUANT_H

#include <stdint.h>

/* Saturating rounding doubling high multiply (gemmlowp). */
static inline int32_t tn_srdhm(int32_t a, int32_t b) {
    if (a == b && a == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / (1ll << 31));
}

/* Rounding divide by 2^e, ties away from zero (gemmlowp RoundingDivideByPOT). */
static inline int32_t tn_rdbpot(int32_t x, int e) {
    const int32_t mask = (int32_t)((1ll << e) - 1);
    const int32_t rem = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (rem > threshold ? 1 : 0);
}

/* MultiplyByQuantizedMultiplier: shift in [-31, 30], validated at load. */
static inline int32_t tn_mbqm(int32_t x, int32_t mult, int shift) {
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return tn_rdbpot(tn_srdhm((int32_t)((uint32_t)x << left), mult), right);
}

static inline int32_t tn_clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* acc -> int8 output with zero point and activation range */
static inline int8_t tn_requant(int32_t acc, int32_t mult, int shift, int32_t out_zp, int32_t act_min,
                                int32_t act_max) {
    return (int8_t)tn_clamp(tn_mbqm(acc, mult, shift) + out_zp, act_min, act_max);
}

#endif
