/* SOFTMAX and LOGISTIC, int8 -> int8, ports of TFLite's reference kernels (reference_ops::Softmax with
 * input_multiplier / input_left_shift / diff_min, reference_integer_ops::Logistic). Their fixed-point
 * exp / reciprocal / logistic come from fixedpoint.h; the compiler computes the parameters exactly as
 * TFLite Micro's Prepare does (tunable/lower_activations.py). */
#include "conv_common.h"
#include "fixedpoint.h"

/* ------------------------------------------------------------------ SOFTMAX */

static int softmax_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    int rc;
    if ((rc = tn_check_slot(m, op, 0, 0, TN_DTYPE_INT8, 0, err, errlen))) return rc;
    if ((rc = tn_check_slot(m, op, 1, 0, TN_DTYPE_INT8, 0, err, errlen))) return rc;
    const tn_tensor *x = &m->tensors[op->in[0]], *y = &m->tensors[op->out[0]];
    if (x->ndim < 1 || x->ndim != y->ndim)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "input '%s' (rank %d) and output '%s' (rank %d) differ",
                          x->name, x->ndim, y->name, y->ndim);
    for (int d = 0; d < x->ndim; d++)
        if (x->dims[d] != y->dims[d])
            return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "input '%s' and output '%s' differ in dimension %d",
                              x->name, y->name, d);
    /* the sum of exps is a Q12.19 value: at most 4096 terms of weight <= 1 fit */
    if ((rc = tn_check_range(op, "softmax depth", x->dims[x->ndim - 1], 1, 4096, err, errlen))) return rc;
    const int32_t *p = op->p;
    /* QuantizeMultiplierGreaterThanOne: a multiplier in [2^30, 2^31) and a left shift >= 0 */
    if ((rc = tn_check_range(op, "in_mult", p[TN_P_SOFTMAX_IN_MULT], 1ll << 30, INT32_MAX, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "in_left_shift", p[TN_P_SOFTMAX_IN_LEFT_SHIFT], 0, 31, err, errlen))) return rc;
    /* every difference >= diff_min must stay below 32 after scaling (Q5.26), as CalculateInputRadius ensures */
    const int64_t radius = ((int64_t)31 << 26) >> p[TN_P_SOFTMAX_IN_LEFT_SHIFT];
    if ((rc = tn_check_range(op, "diff_min", p[TN_P_SOFTMAX_DIFF_MIN], -radius, 0, err, errlen))) return rc;
    return TN_ERR_OK;
}

static int softmax_eval(tn_ctx *c) {
    const tn_tensor *xt = tn_in_t(c, 0);
    const int32_t *p = c->op->p;
    const int32_t mult = p[TN_P_SOFTMAX_IN_MULT], left_shift = p[TN_P_SOFTMAX_IN_LEFT_SHIFT];
    const int32_t diff_min = p[TN_P_SOFTMAX_DIFF_MIN];
    const int depth = xt->dims[xt->ndim - 1];
    const int64_t n = tn_tensor_elems(xt), rows = n / depth;
    const int8_t *x = (const int8_t *)tn_in(c, 0);
    int8_t *y = (int8_t *)tn_out(c, 0);
    enum { kScaledDiffIntegerBits = 5, kAccumulationIntegerBits = 12 };
    uint64_t used = 0;
    for (int64_t r = 0; r < rows; r++) {
        const int8_t *xr = x + r * depth;
        int8_t *yr = y + r * depth;
        int32_t max_in_row = -128;
        for (int i = 0; i < depth; i++) max_in_row = xr[i] > max_in_row ? xr[i] : max_in_row;
        int32_t sum_of_exps = 0;  /* Q12.19 */
        for (int i = 0; i < depth; i++) {
            const int32_t diff = (int32_t)xr[i] - max_in_row;
            if (diff >= diff_min) {
                /* MultiplyByQuantizedMultiplierGreaterThanOne; |diff| << left_shift < 2^31 by diff_min */
                const int32_t scaled = tn_srdhm((int32_t)((uint32_t)diff << left_shift), mult);  /* Q5.26 */
                sum_of_exps = tn_fp_add(sum_of_exps, tn_fp_rescale(tn_fp_exp_on_negative_values(scaled, kScaledDiffIntegerBits),
                                                                   0, kAccumulationIntegerBits));
            }
        }
        if (sum_of_exps <= 0) return TN_ERR_BAD_OP;  /* cannot happen: the maximum contributes exp(0) */
        int num_bits_over_unit;
        const int32_t shifted_scale = tn_fp_get_reciprocal(sum_of_exps, kAccumulationIntegerBits, &num_bits_over_unit);
        const int exponent = num_bits_over_unit + 31 - 8;
        if (exponent < 0 || exponent > 31) return TN_ERR_BAD_OP;  /* TFLITE_CHECK in the reference */
        for (int i = 0; i < depth; i++) {
            const int32_t diff = (int32_t)xr[i] - max_in_row;
            if (diff >= diff_min) {
                const int32_t scaled = tn_srdhm((int32_t)((uint32_t)diff << left_shift), mult);
                const int32_t exp_in_0 = tn_fp_exp_on_negative_values(scaled, kScaledDiffIntegerBits);
                const int32_t unsat = tn_rdbpot(tn_srdhm(shifted_scale, exp_in_0), exponent);
                yr[i] = (int8_t)tn_clamp(unsat - 128, -128, 127);
                used++;
            } else {
                yr[i] = -128;
            }
        }
    }
    tn_counters *k = c->ctr;
    k->mults = 2 * used + (uint64_t)rows;  /* rescale + normalise per used element, one reciprocal per row */
    k->adds = used + (uint64_t)n;          /* sum of exps, differences to the maximum */
    k->requant_ops = 2 * used;
    k->act_bytes_in = k->act_bytes_out = (uint64_t)n;
    return TN_ERR_OK;
}

const tn_kernel tn_kernel_softmax = {"SOFTMAX", softmax_prepare, softmax_eval, NULL};

/* ------------------------------------------------------------------ LOGISTIC */

static int logistic_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    int rc;
    if ((rc = tn_check_slot(m, op, 0, 0, TN_DTYPE_INT8, 0, err, errlen))) return rc;
    if ((rc = tn_check_slot(m, op, 1, 0, TN_DTYPE_INT8, 0, err, errlen))) return rc;
    if ((rc = tn_check_same_shape(m, op, op->in[0], op->out[0], err, errlen))) return rc;
    const int32_t *p = op->p;
    if ((rc = tn_check_range(op, "in_zp", p[TN_P_LOGISTIC_IN_ZP], -128, 127, err, errlen))) return rc;
    /* frexp of input_scale * 2^27: a multiplier in [2^30, 2^31] (2^31 wraps to INT32_MIN, as in TFLite) */
    const int32_t mult = p[TN_P_LOGISTIC_IN_MULT];
    if (mult != INT32_MIN && mult < (1 << 30))
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "in_mult = %d is outside [2^30, 2^31)", mult);
    if ((rc = tn_check_range(op, "in_left_shift", p[TN_P_LOGISTIC_IN_LEFT_SHIFT], 0, 30, err, errlen))) return rc;
    /* CalculateInputRadius(4, left_shift, 31): |input| << left_shift stays below 2^31 inside the radius */
    const int64_t radius = ((int64_t)15 << 27) >> p[TN_P_LOGISTIC_IN_LEFT_SHIFT];
    if ((rc = tn_check_range(op, "in_range_radius", p[TN_P_LOGISTIC_IN_RANGE_RADIUS], 0, radius, err, errlen))) return rc;
    return TN_ERR_OK;
}

static int logistic_eval(tn_ctx *c) {
    const int32_t *p = c->op->p;
    const int32_t zp = p[TN_P_LOGISTIC_IN_ZP], radius = p[TN_P_LOGISTIC_IN_RANGE_RADIUS];
    const int32_t mult = p[TN_P_LOGISTIC_IN_MULT], shift = p[TN_P_LOGISTIC_IN_LEFT_SHIFT];
    const int64_t n = tn_tensor_elems(tn_in_t(c, 0));
    const int8_t *x = (const int8_t *)tn_in(c, 0);
    int8_t *y = (int8_t *)tn_out(c, 0);
    uint64_t computed = 0;
    for (int64_t i = 0; i < n; i++) {
        const int32_t input = (int32_t)x[i] - zp;
        if (input <= -radius) {
            y[i] = -128;
        } else if (input >= radius) {
            y[i] = 127;
        } else {
            const int32_t input_in_q4 = tn_mbqm(input, mult, shift);
            const int32_t output_in_q0 = tn_fp_logistic(input_in_q4, 4);
            const int32_t output_in_q23 = tn_rdbpot(output_in_q0, 31 - 8);
            y[i] = (int8_t)tn_clamp(output_in_q23 - 128, -128, 127);
            computed++;
        }
    }
    tn_counters *k = c->ctr;
    k->requant_ops = computed;
    k->mults = computed;
    k->act_bytes_in = k->act_bytes_out = (uint64_t)n;
    return TN_ERR_OK;
}

const tn_kernel tn_kernel_logistic = {"LOGISTIC", logistic_prepare, logistic_eval, NULL};
