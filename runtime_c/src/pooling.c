/* AVERAGE_POOL_2D and MAX_POOL_2D, int8, as TFLite's reference integer kernels. */
#include "conv_common.h"
#include "requant.h"

static int pool_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    int rc;
    if ((rc = tn_check_slot(m, op, 0, 0, TN_DTYPE_INT8, 4, err, errlen))) return rc;
    if ((rc = tn_check_slot(m, op, 1, 0, TN_DTYPE_INT8, 4, err, errlen))) return rc;
    const tn_tensor *x = &m->tensors[op->in[0]], *y = &m->tensors[op->out[0]];
    const int32_t *p = op->p;
    if (x->dims[0] != y->dims[0] || x->dims[3] != y->dims[3])
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "batch or channels of input and output differ");
    if ((rc = tn_check_range(op, "filter_h", p[TN_P_AVERAGE_POOL_2D_FILTER_H], 1, 1 << 16, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "filter_w", p[TN_P_AVERAGE_POOL_2D_FILTER_W], 1, 1 << 16, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "stride_h", p[TN_P_AVERAGE_POOL_2D_STRIDE_H], 1, 1 << 16, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "stride_w", p[TN_P_AVERAGE_POOL_2D_STRIDE_W], 1, 1 << 16, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "pad_top", p[TN_P_AVERAGE_POOL_2D_PAD_TOP], 0, p[TN_P_AVERAGE_POOL_2D_FILTER_H] - 1, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "pad_left", p[TN_P_AVERAGE_POOL_2D_PAD_LEFT], 0, p[TN_P_AVERAGE_POOL_2D_FILTER_W] - 1, err, errlen))) return rc;
    /* every window must hold at least one valid tap (the average divides by their count) */
    if ((int64_t)(y->dims[1] - 1) * p[TN_P_AVERAGE_POOL_2D_STRIDE_H] - p[TN_P_AVERAGE_POOL_2D_PAD_TOP] >= x->dims[1] ||
        (int64_t)(y->dims[2] - 1) * p[TN_P_AVERAGE_POOL_2D_STRIDE_W] - p[TN_P_AVERAGE_POOL_2D_PAD_LEFT] >= x->dims[2])
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "output does not fit the input");
    if (op->opcode == TN_OP_AVERAGE_POOL_2D &&
        (rc = tn_check_range(op, "acc_offset", p[TN_P_AVERAGE_POOL_2D_ACC_OFFSET], 0, 128, err, errlen))) return rc;
    /* per-channel accumulators of one output pixel (the channel loops vectorise) */
    op->scratch_bytes = (size_t)x->dims[3] * 4 + 64;
    return tn_check_act_range(op, p[TN_P_AVERAGE_POOL_2D_ACT_MIN], p[TN_P_AVERAGE_POOL_2D_ACT_MAX], err, errlen);
}

static int pool_eval(tn_ctx *c, int is_max) {
    const tn_tensor *xt = tn_in_t(c, 0), *yt = tn_out_t(c, 0);
    const int32_t *p = c->op->p;
    const int N = xt->dims[0], H = xt->dims[1], W = xt->dims[2], C = xt->dims[3];
    const int OH = yt->dims[1], OW = yt->dims[2];
    const int fh = p[TN_P_AVERAGE_POOL_2D_FILTER_H], fw = p[TN_P_AVERAGE_POOL_2D_FILTER_W];
    const int sh = p[TN_P_AVERAGE_POOL_2D_STRIDE_H], sw = p[TN_P_AVERAGE_POOL_2D_STRIDE_W];
    const int pt = p[TN_P_AVERAGE_POOL_2D_PAD_TOP], pl = p[TN_P_AVERAGE_POOL_2D_PAD_LEFT];
    const int32_t lo = p[TN_P_AVERAGE_POOL_2D_ACT_MIN], hi = p[TN_P_AVERAGE_POOL_2D_ACT_MAX];
    const int32_t off = is_max ? 0 : p[TN_P_AVERAGE_POOL_2D_ACC_OFFSET];
    const int8_t *x = (const int8_t *)tn_in(c, 0);
    int8_t *y = (int8_t *)tn_out(c, 0);
    int32_t *acc = (int32_t *)c->scratch;
    uint64_t taps = 0;
    for (int b = 0; b < N; b++)
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                const int iy0 = oy * sh - pt, ix0 = ox * sw - pl;
                const int fy0 = TN_MAX(0, -iy0), fy1 = TN_MIN(fh, H - iy0);
                const int fx0 = TN_MAX(0, -ix0), fx1 = TN_MIN(fw, W - ix0);
                const int count = (fy1 - fy0) * (fx1 - fx0);
                int8_t *yp = y + (((int64_t)b * OH + oy) * OW + ox) * C;
                /* taps outer, channels inner (contiguous), so that the channel loops vectorise */
                for (int ch = 0; ch < C; ch++) acc[ch] = is_max ? -128 : 0;
                for (int fy = fy0; fy < fy1; fy++)
                    for (int fx = fx0; fx < fx1; fx++) {
                        const int8_t *xp = x + (((int64_t)b * H + iy0 + fy) * W + ix0 + fx) * C;
                        if (is_max)
                            for (int ch = 0; ch < C; ch++) acc[ch] = xp[ch] > acc[ch] ? xp[ch] : acc[ch];
                        else
                            for (int ch = 0; ch < C; ch++) acc[ch] += xp[ch];
                    }
                for (int ch = 0; ch < C; ch++) {
                    int32_t v = acc[ch];
                    if (!is_max) {
                        v += off * count;  /* legacy uint8: round the (non-negative) uint8 sum */
                        v = v > 0 ? (v + count / 2) / count : (v - count / 2) / count;
                        v -= off;
                    }
                    yp[ch] = (int8_t)tn_clamp(v, lo, hi);
                }
                taps += (uint64_t)count * C;
            }
    tn_counters *k = c->ctr;
    k->adds = is_max ? 0 : taps;
    k->act_bytes_in = (uint64_t)tn_tensor_elems(xt);
    k->act_bytes_out = (uint64_t)tn_tensor_elems(yt);
    return TN_ERR_OK;
}

static int avg_eval(tn_ctx *c) { return pool_eval(c, 0); }
static int max_eval(tn_ctx *c) { return pool_eval(c, 1); }

const tn_kernel tn_kernel_avg_pool = {"AVERAGE_POOL_2D", pool_prepare, avg_eval, NULL};
const tn_kernel tn_kernel_max_pool = {"MAX_POOL_2D", pool_prepare, max_eval, NULL};
