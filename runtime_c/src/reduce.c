/* MEAN, int8, as TFLite Micro's reference path (reference_ops::QuantizedMeanOrSum, used for every int8
 * MEAN whatever the input and output quantization): sum the int8 values in int32, subtract
 * in_zp * count, and requantize with the input/output multiplier into which 1/count is folded the way
 * the reference folds it. Reduces any set of axes of a tensor of rank <= 4 (MobileNet-style global
 * average pooling is axes 1 and 2); keep_dims only changes the output shape, not its data. */
#include <stdlib.h>
#include "conv_common.h"
#include "fixedpoint.h"

typedef struct {
    int32_t in_d[4];      /* input dims, extended to 4-D with leading 1s */
    int32_t out_d[4];     /* 1 on reduced axes */
    int32_t red_d[4];     /* extent of the reduction on each axis (1 on kept axes) */
    int64_t count;        /* elements summed into one output */
    int32_t mult, shift;  /* output multiplier with 1/count folded in */
} mean_prep;

static int mean_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    int rc;
    if ((rc = tn_check_slot(m, op, 0, 0, TN_DTYPE_INT8, 0, err, errlen))) return rc;
    if ((rc = tn_check_slot(m, op, 1, 0, TN_DTYPE_INT8, 0, err, errlen))) return rc;
    const tn_tensor *x = &m->tensors[op->in[0]], *y = &m->tensors[op->out[0]];
    const int32_t *p = op->p;
    if (x->ndim < 1 || x->ndim > 4)
        return tn_op_fail(err, errlen, op, TN_ERR_UNSUPPORTED, "input '%s' has rank %d; MEAN supports ranks 1 to 4",
                          x->name, x->ndim);
    const int32_t axes = p[TN_P_MEAN_AXES];
    if (axes <= 0 || axes > 15 || (axes & ((1 << (4 - x->ndim)) - 1)))
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "axes mask 0x%x does not name axes of a rank-%d input",
                          (unsigned)axes, x->ndim);
    if ((rc = tn_check_range(op, "in_zp", p[TN_P_MEAN_IN_ZP], -128, 127, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "out_zp", p[TN_P_MEAN_OUT_ZP], -128, 127, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "mult", p[TN_P_MEAN_MULT], 0, INT32_MAX, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "shift", p[TN_P_MEAN_SHIFT], -31, 30, err, errlen))) return rc;
    mean_prep *pp = (mean_prep *)calloc(1, sizeof *pp);
    if (!pp) return tn_op_fail(err, errlen, op, TN_ERR_NO_MEMORY, "out of memory");
    op->prepared = pp;
    int64_t n_out = 1;
    pp->count = 1;
    for (int i = 0; i < 4; i++) {
        const int d = i - (4 - x->ndim);
        pp->in_d[i] = d >= 0 ? x->dims[d] : 1;
        const int reduced = (axes >> i) & 1;
        pp->out_d[i] = reduced ? 1 : pp->in_d[i];
        pp->red_d[i] = reduced ? pp->in_d[i] : 1;
        pp->count *= pp->red_d[i];
        n_out *= pp->out_d[i];
    }
    if (n_out != tn_tensor_elems(y))
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "output '%s' has %lld elements, the reduction gives %lld",
                          y->name, (long long)tn_tensor_elems(y), (long long)n_out);
    /* the int32 sum of `count` int8 values must not overflow */
    if ((rc = tn_check_range(op, "reduced element count", pp->count, 1, (int64_t)1 << 23, err, errlen))) return rc;
    /* fold 1/count into the multiplier exactly as QuantizedMeanOrSum does */
    int s = 63 - tn_clz64((uint64_t)pp->count);
    s = TN_MIN(s, 32);
    s = TN_MIN(s, 31 + p[TN_P_MEAN_SHIFT]);
    pp->mult = (int32_t)(((int64_t)p[TN_P_MEAN_MULT] << s) / pp->count);
    pp->shift = p[TN_P_MEAN_SHIFT] - s;
    return TN_ERR_OK;
}

static int mean_eval(tn_ctx *c) {
    const mean_prep *pp = (const mean_prep *)c->op->prepared;
    const int32_t in_zp = c->op->p[TN_P_MEAN_IN_ZP], out_zp = c->op->p[TN_P_MEAN_OUT_ZP];
    const int8_t *x = (const int8_t *)tn_in(c, 0);
    int8_t *y = (int8_t *)tn_out(c, 0);
    const int32_t *D = pp->in_d;
    const int64_t zp_total = (int64_t)in_zp * pp->count;
    int64_t o = 0;
    for (int o0 = 0; o0 < pp->out_d[0]; o0++)
        for (int o1 = 0; o1 < pp->out_d[1]; o1++)
            for (int o2 = 0; o2 < pp->out_d[2]; o2++)
                for (int o3 = 0; o3 < pp->out_d[3]; o3++, o++) {
                    int32_t sum = 0;
                    for (int r0 = 0; r0 < pp->red_d[0]; r0++)
                        for (int r1 = 0; r1 < pp->red_d[1]; r1++)
                            for (int r2 = 0; r2 < pp->red_d[2]; r2++) {
                                const int8_t *row = x + ((((int64_t)(o0 + r0) * D[1] + o1 + r1) * D[2] + o2 + r2) * D[3] + o3);
                                for (int r3 = 0; r3 < pp->red_d[3]; r3++) sum += row[r3];
                            }
                    const int32_t shifted = (int32_t)((int64_t)sum - zp_total);
                    y[o] = (int8_t)tn_clamp(tn_mbqm(shifted, pp->mult, pp->shift) + out_zp, -128, 127);
                }
    tn_counters *k = c->ctr;
    k->adds = (uint64_t)tn_tensor_elems(tn_in_t(c, 0));
    k->requant_ops = (uint64_t)o;
    k->act_bytes_in = (uint64_t)tn_tensor_elems(tn_in_t(c, 0));
    k->act_bytes_out = (uint64_t)o;
    return TN_ERR_OK;
}

const tn_kernel tn_kernel_mean = {"MEAN", mean_prepare, mean_eval, NULL};
