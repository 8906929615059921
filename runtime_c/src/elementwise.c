/* Element-wise int8 ops, ports of TFLite Micro's reference kernels:
 *   MUL         reference_integer_ops::Mul / BroadcastMul (up to 4-D broadcasting)
 *   RELU        ReluQuantized: requantizes the input to the output scale and clamps (RELU, RELU_N1_TO_1, and
 *               RELU6 where input and output quantization differ in a legacy uint8 model, as LiteRT does)
 *   CLAMP       TFLM's int8 RELU6 (Relu6Quantized): a clamp on the input's own scale
 *   HARD_SWISH  reference_ops::HardSwish with HardSwishParams (16-bit fixed point)
 *   QUANTIZE    float32 -> int8/uint8 (AffineQuantize), int8/uint8 -> int8/uint8 (Requantize)
 *   DEQUANTIZE  int8/uint8 -> float32 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "broadcast.h"
#include "conv_common.h"
#include "requant.h"


static float float_from_bits(int32_t bits) {
    float f;
    uint32_t u = (uint32_t)bits;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int check_scale_bits(const tn_op *op, const char *what, int32_t bits, char *err, size_t errlen) {
    const float s = float_from_bits(bits);
    if (!(s > 0.0f) || !isfinite(s))
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "%s %g is not a finite positive scale", what, (double)s);
    return TN_ERR_OK;
}

/* ------------------------------------------------------------------ MUL */

static int mul_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    int rc = tn_bcast_prepare(m, op, err, errlen);
    if (rc) return rc;
    const int32_t *p = op->p;
    if ((rc = tn_check_range(op, "a zero point", p[TN_P_MUL_A_ZP], -128, 127, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "b zero point", p[TN_P_MUL_B_ZP], -128, 127, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "output zero point", p[TN_P_MUL_OUT_ZP], -128, 127, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "out_mult", p[TN_P_MUL_OUT_MULT], 0, INT32_MAX, err, errlen))) return rc;
    /* QuantizeMultiplier's range; a large left shift wraps as in the reference */
    if ((rc = tn_check_range(op, "out_shift", p[TN_P_MUL_OUT_SHIFT], -31, 30, err, errlen))) return rc;
    return tn_check_act_range(op, p[TN_P_MUL_ACT_MIN], p[TN_P_MUL_ACT_MAX], err, errlen);
}

static inline int8_t mul_one(const int32_t *p, int32_t av, int32_t bv) {
    const int32_t prod = (av - p[TN_P_MUL_A_ZP]) * (bv - p[TN_P_MUL_B_ZP]);
    const int32_t out = p[TN_P_MUL_OUT_ZP] + tn_mbqm(prod, p[TN_P_MUL_OUT_MULT], p[TN_P_MUL_OUT_SHIFT]);
    return (int8_t)tn_clamp(out, p[TN_P_MUL_ACT_MIN], p[TN_P_MUL_ACT_MAX]);
}

static int mul_eval(tn_ctx *c) {
    const tn_bcast *pp = (const tn_bcast *)c->op->prepared;
    const int8_t *a = (const int8_t *)tn_in(c, 0), *b = (const int8_t *)tn_in(c, 1);
    int8_t *y = (int8_t *)tn_out(c, 0);
    const int32_t *p = c->op->p;
    const int64_t n = tn_tensor_elems(tn_out_t(c, 0));
    if (pp->same) {
        for (int64_t i = 0; i < n; i++) y[i] = mul_one(p, a[i], b[i]);
    } else {
        TN_BCAST_FOR(pp, y[i] = mul_one(p, a[ia], b[ib]));
    }
    tn_counters *k = c->ctr;
    k->mults = (uint64_t)n;
    k->requant_ops = (uint64_t)n;
    k->act_bytes_in = (uint64_t)(tn_tensor_elems(tn_in_t(c, 0)) + tn_tensor_elems(tn_in_t(c, 1)));
    k->act_bytes_out = (uint64_t)n;
    return TN_ERR_OK;
}

const tn_kernel tn_kernel_mul = {"MUL", mul_prepare, mul_eval, NULL};

/* ------------------------------------------------------------------ RELU (requantizing) */

static int unary_int8_slots(tn_model *m, tn_op *op, char *err, size_t errlen) {
    int rc;
    if ((rc = tn_check_slot(m, op, 0, 0, TN_DTYPE_INT8, 0, err, errlen))) return rc;
    if ((rc = tn_check_slot(m, op, 1, 0, TN_DTYPE_INT8, 0, err, errlen))) return rc;
    return tn_check_same_shape(m, op, op->in[0], op->out[0], err, errlen);
}

static int relu_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    int rc;
    if ((rc = unary_int8_slots(m, op, err, errlen))) return rc;
    const int32_t *p = op->p;
    if ((rc = tn_check_range(op, "in_zp", p[TN_P_RELU_IN_ZP], -128, 127, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "out_zp", p[TN_P_RELU_OUT_ZP], -128, 127, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "mult", p[TN_P_RELU_MULT], 0, INT32_MAX, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "shift", p[TN_P_RELU_SHIFT], -31, 30, err, errlen))) return rc;
    return tn_check_act_range(op, p[TN_P_RELU_ACT_MIN], p[TN_P_RELU_ACT_MAX], err, errlen);
}

static int relu_eval(tn_ctx *c) {
    const int32_t *p = c->op->p;
    const int32_t in_zp = p[TN_P_RELU_IN_ZP], out_zp = p[TN_P_RELU_OUT_ZP];
    const int32_t mult = p[TN_P_RELU_MULT], shift = p[TN_P_RELU_SHIFT];
    const int32_t lo = p[TN_P_RELU_ACT_MIN], hi = p[TN_P_RELU_ACT_MAX];
    const int64_t n = tn_tensor_elems(tn_in_t(c, 0));
    const int8_t *x = (const int8_t *)tn_in(c, 0);
    int8_t *y = (int8_t *)tn_out(c, 0);
    for (int64_t i = 0; i < n; i++)
        y[i] = (int8_t)tn_clamp(out_zp + tn_mbqm((int32_t)x[i] - in_zp, mult, shift), lo, hi);
    tn_counters *k = c->ctr;
    k->requant_ops = (uint64_t)n;
    k->act_bytes_in = k->act_bytes_out = (uint64_t)n;
    return TN_ERR_OK;
}

const tn_kernel tn_kernel_relu = {"RELU", relu_prepare, relu_eval, NULL};

/* ------------------------------------------------------------------ CLAMP (TFLM int8 RELU6) */

static int clamp_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    int rc;
    if ((rc = unary_int8_slots(m, op, err, errlen))) return rc;
    return tn_check_act_range(op, op->p[TN_P_CLAMP_LO], op->p[TN_P_CLAMP_HI], err, errlen);
}

static int clamp_eval(tn_ctx *c) {
    const int32_t lo = c->op->p[TN_P_CLAMP_LO], hi = c->op->p[TN_P_CLAMP_HI];
    const int64_t n = tn_tensor_elems(tn_in_t(c, 0));
    const int8_t *x = (const int8_t *)tn_in(c, 0);
    int8_t *y = (int8_t *)tn_out(c, 0);
    for (int64_t i = 0; i < n; i++) y[i] = (int8_t)tn_clamp(x[i], lo, hi);
    c->ctr->act_bytes_in = c->ctr->act_bytes_out = (uint64_t)n;
    return TN_ERR_OK;
}

const tn_kernel tn_kernel_clamp = {"CLAMP", clamp_prepare, clamp_eval, NULL};

/* ------------------------------------------------------------------ HARD_SWISH */

/* 16-bit gemmlowp helpers, with the C++ int16 truncations written out. */
static inline int16_t srdhm16(int16_t a, int16_t b) {
    if (a == b && a == INT16_MIN) return INT16_MAX;
    const int32_t ab = (int32_t)a * (int32_t)b;
    const int32_t nudge = ab >= 0 ? (1 << 14) : (1 - (1 << 14));
    return (int16_t)((ab + nudge) / (1 << 15));
}

/* SaturatingDoublingHighMul: like srdhm16 but rounding toward zero */
static inline int16_t sdhm16(int16_t a, int16_t b) {
    if (a == b && a == INT16_MIN) return INT16_MAX;
    return (int16_t)(((int32_t)a * (int32_t)b) / (1 << 15));
}

/* gemmlowp RoundingDivideByPOT<int16_t>: mask, remainder and threshold live in int16 */
static inline int16_t rdbpot16(int16_t x, int e) {
    const int16_t mask = (int16_t)((1ll << e) - 1);
    const int16_t rem = (int16_t)(x & mask);
    const int16_t threshold = (int16_t)((mask >> 1) + (x < 0 ? 1 : 0));
    return (int16_t)((x >> e) + (rem > threshold ? 1 : 0));
}

static inline int16_t sat_left_shift16(int16_t v, int amount) {
    int64_t r = (int64_t)v * ((int64_t)1 << amount);
    if (r > INT16_MAX) r = INT16_MAX;
    if (r < INT16_MIN) r = INT16_MIN;
    return (int16_t)r;
}

static int hard_swish_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    int rc;
    if ((rc = unary_int8_slots(m, op, err, errlen))) return rc;
    const int32_t *p = op->p;
    if ((rc = tn_check_range(op, "in_zp", p[TN_P_HARD_SWISH_IN_ZP], -128, 127, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "out_zp", p[TN_P_HARD_SWISH_OUT_ZP], -128, 127, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "reluish_mult", p[TN_P_HARD_SWISH_RELUISH_MULT], 0, INT16_MAX, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "out_mult", p[TN_P_HARD_SWISH_OUT_MULT], 0, INT16_MAX, err, errlen))) return rc;
    /* QuantizeMultiplier's exponent range; the output exponent must be <= 0 (TFLM ensures it) */
    if ((rc = tn_check_range(op, "reluish_exp", p[TN_P_HARD_SWISH_RELUISH_EXP], -31, 30, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "out_exp", p[TN_P_HARD_SWISH_OUT_EXP], -31, 0, err, errlen))) return rc;
    return TN_ERR_OK;
}

static int hard_swish_eval(tn_ctx *c) {
    const int32_t *p = c->op->p;
    const int32_t in_zp = p[TN_P_HARD_SWISH_IN_ZP], out_zp = p[TN_P_HARD_SWISH_OUT_ZP];
    const int16_t reluish_mult = (int16_t)p[TN_P_HARD_SWISH_RELUISH_MULT], out_mult = (int16_t)p[TN_P_HARD_SWISH_OUT_MULT];
    const int reluish_exp = p[TN_P_HARD_SWISH_RELUISH_EXP], out_exp = p[TN_P_HARD_SWISH_OUT_EXP];
    const int64_t n = tn_tensor_elems(tn_in_t(c, 0));
    const int8_t *x = (const int8_t *)tn_in(c, 0);
    int8_t *y = (int8_t *)tn_out(c, 0);
    for (int64_t i = 0; i < n; i++) {
        const int16_t input_value = (int16_t)(x[i] - in_zp);
        const int16_t hires = (int16_t)(input_value * (1 << 7));
        const int16_t preshift_out = srdhm16(hires, out_mult);
        int16_t reluish = hires;
        if (reluish_exp > 0) reluish = sat_left_shift16(reluish, reluish_exp - 1);
        reluish = srdhm16(reluish, reluish_mult);
        if (reluish_exp > 0) reluish = sat_left_shift16(reluish, 1);
        if (reluish_exp < 0) reluish = rdbpot16(reluish, -reluish_exp);
        reluish = (int16_t)((reluish + (1 << 15)) >> 1);  /* [-1, 1] -> [0, 1] */
        const int16_t preshift_output_value = sdhm16(reluish, preshift_out);
        int16_t out = rdbpot16(preshift_output_value, -out_exp);
        out = (int16_t)(out + out_zp);
        y[i] = (int8_t)tn_clamp(out, -128, 127);
    }
    tn_counters *k = c->ctr;
    k->mults = 3 * (uint64_t)n;
    k->requant_ops = 2 * (uint64_t)n;
    k->act_bytes_in = k->act_bytes_out = (uint64_t)n;
    return TN_ERR_OK;
}

const tn_kernel tn_kernel_hard_swish = {"HARD_SWISH", hard_swish_prepare, hard_swish_eval, NULL};

/* ------------------------------------------------------------------ QUANTIZE */

static int quant_range(int32_t dtype, int32_t *lo, int32_t *hi) {
    if (dtype == TN_DTYPE_INT8) { *lo = -128; *hi = 127; return 1; }
    if (dtype == TN_DTYPE_UINT8) { *lo = 0; *hi = 255; return 1; }
    return 0;
}

static int quantize_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    int rc;
    if ((rc = tn_check_slot(m, op, 0, 0, 0, 0, err, errlen))) return rc;
    if ((rc = tn_check_slot(m, op, 1, 0, 0, 0, err, errlen))) return rc;
    if ((rc = tn_check_same_shape(m, op, op->in[0], op->out[0], err, errlen))) return rc;
    const tn_tensor *x = &m->tensors[op->in[0]], *y = &m->tensors[op->out[0]];
    const int32_t *p = op->p;
    int32_t olo, ohi, ilo, ihi;
    if (!quant_range(y->dtype, &olo, &ohi))
        return tn_op_fail(err, errlen, op, TN_ERR_UNSUPPORTED, "output '%s' must be int8 or uint8", y->name);
    if ((rc = tn_check_range(op, "out_zp", p[TN_P_QUANTIZE_OUT_ZP], olo, ohi, err, errlen))) return rc;
    if (x->dtype == TN_DTYPE_FLOAT32)
        return check_scale_bits(op, "output scale", p[TN_P_QUANTIZE_SCALE_BITS], err, errlen);
    if (!quant_range(x->dtype, &ilo, &ihi))
        return tn_op_fail(err, errlen, op, TN_ERR_UNSUPPORTED, "input '%s' must be float32, int8 or uint8", x->name);
    if ((rc = tn_check_range(op, "in_zp", p[TN_P_QUANTIZE_IN_ZP], ilo, ihi, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "mult", p[TN_P_QUANTIZE_MULT], 0, INT32_MAX, err, errlen))) return rc;
    return tn_check_range(op, "shift", p[TN_P_QUANTIZE_SHIFT], -31, 30, err, errlen);
}

static int quantize_eval(tn_ctx *c) {
    const tn_tensor *xt = tn_in_t(c, 0), *yt = tn_out_t(c, 0);
    const int32_t *p = c->op->p;
    const int64_t n = tn_tensor_elems(xt);
    const int32_t out_zp = p[TN_P_QUANTIZE_OUT_ZP];
    int32_t lo, hi;
    quant_range(yt->dtype, &lo, &hi);
    int8_t *y8 = (int8_t *)tn_out(c, 0);
    uint8_t *yu = (uint8_t *)tn_out(c, 0);
    const int out_signed = yt->dtype == TN_DTYPE_INT8;
    if (xt->dtype == TN_DTYPE_FLOAT32) {
        /* AffineQuantize: round(x / scale) in float32, half away from zero, then + zero point */
        const float scale = float_from_bits(p[TN_P_QUANTIZE_SCALE_BITS]);
        const float *x = (const float *)tn_in(c, 0);
        for (int64_t i = 0; i < n; i++) {
            const float r = roundf(x[i] / scale);
            /* out of int32 range (or NaN): saturate (the reference's float->int conversion is undefined) */
            int64_t q = r != r ? 0 : r >= 2147483648.0f ? INT32_MAX : r < -2147483648.0f ? INT32_MIN : (int64_t)r;
            q = q + out_zp;
            const int32_t v = q < lo ? lo : q > hi ? hi : (int32_t)q;
            if (out_signed) y8[i] = (int8_t)v; else yu[i] = (uint8_t)v;
        }
    } else {
        /* Requantize: MultiplyByQuantizedMultiplier(x - in_zp) + out_zp, clamped */
        const int32_t in_zp = p[TN_P_QUANTIZE_IN_ZP], mult = p[TN_P_QUANTIZE_MULT], shift = p[TN_P_QUANTIZE_SHIFT];
        const int8_t *x8 = (const int8_t *)tn_in(c, 0);
        const uint8_t *xu = (const uint8_t *)tn_in(c, 0);
        const int in_signed = xt->dtype == TN_DTYPE_INT8;
        for (int64_t i = 0; i < n; i++) {
            const int32_t v = in_signed ? x8[i] : xu[i];
            const int32_t o = tn_clamp(tn_mbqm(v - in_zp, mult, shift) + out_zp, lo, hi);
            if (out_signed) y8[i] = (int8_t)o; else yu[i] = (uint8_t)o;
        }
        c->ctr->requant_ops = (uint64_t)n;
    }
    c->ctr->act_bytes_in = xt->nbytes;
    c->ctr->act_bytes_out = yt->nbytes;
    return TN_ERR_OK;
}

const tn_kernel tn_kernel_quantize = {"QUANTIZE", quantize_prepare, quantize_eval, NULL};

/* ------------------------------------------------------------------ DEQUANTIZE */

static int dequantize_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    int rc;
    if ((rc = tn_check_slot(m, op, 0, 0, 0, 0, err, errlen))) return rc;
    if ((rc = tn_check_slot(m, op, 1, 0, TN_DTYPE_FLOAT32, 0, err, errlen))) return rc;
    if ((rc = tn_check_same_shape(m, op, op->in[0], op->out[0], err, errlen))) return rc;
    const tn_tensor *x = &m->tensors[op->in[0]];
    int32_t lo, hi;
    if (!quant_range(x->dtype, &lo, &hi))
        return tn_op_fail(err, errlen, op, TN_ERR_UNSUPPORTED, "input '%s' must be int8 or uint8", x->name);
    if ((rc = tn_check_range(op, "in_zp", op->p[TN_P_DEQUANTIZE_IN_ZP], lo, hi, err, errlen))) return rc;
    return check_scale_bits(op, "input scale", op->p[TN_P_DEQUANTIZE_SCALE_BITS], err, errlen);
}

static int dequantize_eval(tn_ctx *c) {
    const tn_tensor *xt = tn_in_t(c, 0);
    const int64_t n = tn_tensor_elems(xt);
    const int32_t zp = c->op->p[TN_P_DEQUANTIZE_IN_ZP];
    /* the reference multiplies in double (the float32 scale promoted) and rounds once to float */
    const double scale = (double)float_from_bits(c->op->p[TN_P_DEQUANTIZE_SCALE_BITS]);
    float *y = (float *)tn_out(c, 0);
    if (xt->dtype == TN_DTYPE_INT8) {
        const int8_t *x = (const int8_t *)tn_in(c, 0);
        for (int64_t i = 0; i < n; i++) y[i] = (float)(scale * (double)((int32_t)x[i] - zp));
    } else {
        const uint8_t *x = (const uint8_t *)tn_in(c, 0);
        for (int64_t i = 0; i < n; i++) y[i] = (float)(scale * (double)((int32_t)x[i] - zp));
    }
    c->ctr->mults = (uint64_t)n;
    c->ctr->act_bytes_in = xt->nbytes;
    c->ctr->act_bytes_out = tn_out_t(c, 0)->nbytes;
    return TN_ERR_OK;
}

const tn_kernel tn_kernel_dequantize = {"DEQUANTIZE", dequantize_prepare, dequantize_eval, NULL};
