/* FULLY_CONNECTED: reference kernel and the dot-product path. */
#include <stdlib.h>
#include <string.h>
#include "arch.h"
#include "conv_common.h"
#include "requant.h"

static int fc_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    int rc;
    if (op->n_in < 6) return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "needs 6 inputs, has %d", op->n_in);
    if ((rc = tn_check_slot(m, op, 0, 0, TN_DTYPE_INT8, 0, err, errlen))) return rc;
    if ((rc = tn_check_slot(m, op, 0, 1, TN_DTYPE_INT8, 2, err, errlen))) return rc;
    if ((rc = tn_check_slot(m, op, 1, 0, TN_DTYPE_INT8, 0, err, errlen))) return rc;
    const tn_tensor *x = &m->tensors[op->in[0]], *w = &m->tensors[op->in[1]], *y = &m->tensors[op->out[0]];
    if (w->storage != TN_STORAGE_CONST) return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "weights must be constant");
    const int N = w->dims[0], K = w->dims[1];
    const int64_t xe = tn_tensor_elems(x), ye = tn_tensor_elems(y);
    if (xe % K != 0)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "input '%s' has %lld elements, not a multiple of %d", x->name,
                          (long long)xe, K);
    if (ye != xe / K * N)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "output '%s' has %lld elements, expected %lld", y->name,
                          (long long)ye, (long long)(xe / K * N));
    const int32_t *p = op->p;
    if ((rc = tn_check_act_range(op, p[TN_P_FULLY_CONNECTED_ACT_MIN], p[TN_P_FULLY_CONNECTED_ACT_MAX], err, errlen))) return rc;
    if ((rc = tn_check_range(op, "input zero point", p[TN_P_FULLY_CONNECTED_IN_ZP], -128, 127, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "output zero point", p[TN_P_FULLY_CONNECTED_OUT_ZP], -128, 127, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "weight zero point", p[TN_P_FULLY_CONNECTED_W_ZP], -128, 127, err, errlen))) return rc;
    if ((rc = tn_check_requant_vectors(m, op, N, err, errlen))) return rc;
    op->analytic_macs = (uint64_t)(xe / K) * N * K;
    op->scratch_bytes = 0;
    return TN_ERR_OK;
}

static int fc_eval(tn_ctx *c) {
    const tn_tensor *wt = tn_in_t(c, 1);
    const int N = wt->dims[0], K = wt->dims[1];
    const int batch = (int)(tn_tensor_elems(tn_in_t(c, 0)) / K);
    const int32_t *p = c->op->p;
    const int32_t in_zp = p[TN_P_FULLY_CONNECTED_IN_ZP], out_zp = p[TN_P_FULLY_CONNECTED_OUT_ZP];
    const int32_t w_zp = p[TN_P_FULLY_CONNECTED_W_ZP];
    const int32_t lo = p[TN_P_FULLY_CONNECTED_ACT_MIN], hi = p[TN_P_FULLY_CONNECTED_ACT_MAX];
    const int8_t *x = (const int8_t *)tn_in(c, 0), *w = (const int8_t *)tn_in(c, 1);
    const int32_t *mult = (const int32_t *)tn_in(c, 3), *shift = (const int32_t *)tn_in(c, 4);
    int8_t *y = (int8_t *)tn_out(c, 0);
    if (tn_arch->reference || w_zp != 0) {
        const int32_t *bias = (const int32_t *)tn_in(c, 2);
        for (int b = 0; b < batch; b++)
            for (int n = 0; n < N; n++) {
                int32_t acc = bias[n];
                const int8_t *xr = x + (int64_t)b * K, *wr = w + (int64_t)n * K;
                for (int k = 0; k < K; k++) acc += ((int32_t)wr[k] - w_zp) * ((int32_t)xr[k] - in_zp);
                y[(int64_t)b * N + n] = tn_requant(acc, mult[n], shift[n], out_zp, lo, hi);
            }
    } else {
        const int32_t *bias = (const int32_t *)tn_in(c, 5);
        for (int b = 0; b < batch; b++)
            for (int n = 0; n < N; n++) {
                int32_t acc = bias[n] + tn_arch->dot(K, x + (int64_t)b * K, w + (int64_t)n * K);
                y[(int64_t)b * N + n] = tn_requant(acc, mult[n], shift[n], out_zp, lo, hi);
            }
    }
    tn_counters *k = c->ctr;
    k->macs = (uint64_t)batch * N * K;
    k->mults = k->macs;
    k->adds = k->macs;
    k->requant_ops = (uint64_t)batch * N;
    k->weight_bytes = (uint64_t)N * K;
    k->act_bytes_in = (uint64_t)batch * K;
    k->act_bytes_out = (uint64_t)batch * N;
    return TN_ERR_OK;
}

const tn_kernel tn_kernel_fully_connected = {"FULLY_CONNECTED", fc_prepare, fc_eval};
