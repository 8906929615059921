/* ADD, int8, with 4-D broadcasting, following TFLite's reference integer kernel. */
#include <stdlib.h>
#include "arch.h"
#include "broadcast.h"
#include "conv_common.h"
#include "requant.h"

static int add_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    int rc = tn_bcast_prepare(m, op, err, errlen);
    if (rc) return rc;
    const int32_t *p = op->p;
    const char *names[] = {"a_shift", "b_shift", "out_shift"};
    const int idx[] = {TN_P_ADD_A_SHIFT, TN_P_ADD_B_SHIFT, TN_P_ADD_OUT_SHIFT};
    for (int i = 0; i < 3; i++)
        if ((rc = tn_check_range(op, names[i], p[idx[i]], -31, 0, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "left_shift", p[TN_P_ADD_LEFT_SHIFT], 0, 20, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "a zero point", p[TN_P_ADD_A_ZP], -128, 127, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "b zero point", p[TN_P_ADD_B_ZP], -128, 127, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "output zero point", p[TN_P_ADD_OUT_ZP], -128, 127, err, errlen))) return rc;
    return tn_check_act_range(op, p[TN_P_ADD_ACT_MIN], p[TN_P_ADD_ACT_MAX], err, errlen);
}

static inline int8_t add_one(const int32_t *p, int32_t av, int32_t bv) {
    const int ls = p[TN_P_ADD_LEFT_SHIFT];
    const int32_t sa = tn_mbqm((av - p[TN_P_ADD_A_ZP]) * (1 << ls), p[TN_P_ADD_A_MULT], p[TN_P_ADD_A_SHIFT]);
    const int32_t sb = tn_mbqm((bv - p[TN_P_ADD_B_ZP]) * (1 << ls), p[TN_P_ADD_B_MULT], p[TN_P_ADD_B_SHIFT]);
    const int32_t out = tn_mbqm(sa + sb, p[TN_P_ADD_OUT_MULT], p[TN_P_ADD_OUT_SHIFT]) + p[TN_P_ADD_OUT_ZP];
    return (int8_t)tn_clamp(out, p[TN_P_ADD_ACT_MIN], p[TN_P_ADD_ACT_MAX]);
}

static int add_eval(tn_ctx *c) {
    const tn_bcast *pp = (const tn_bcast *)c->op->prepared;
    const int8_t *a = (const int8_t *)tn_in(c, 0), *b = (const int8_t *)tn_in(c, 1);
    int8_t *y = (int8_t *)tn_out(c, 0);
    const int32_t *p = c->op->p;
    const int64_t n = tn_tensor_elems(tn_out_t(c, 0));
    if (pp->same && !tn_arch->reference) {
        const tn_add_params ap = {p[TN_P_ADD_A_ZP], p[TN_P_ADD_B_ZP], p[TN_P_ADD_OUT_ZP], p[TN_P_ADD_LEFT_SHIFT],
                                  p[TN_P_ADD_A_MULT], p[TN_P_ADD_A_SHIFT], p[TN_P_ADD_B_MULT], p[TN_P_ADD_B_SHIFT],
                                  p[TN_P_ADD_OUT_MULT], p[TN_P_ADD_OUT_SHIFT], p[TN_P_ADD_ACT_MIN], p[TN_P_ADD_ACT_MAX]};
        tn_arch->add(n, a, b, &ap, y);
    } else if (pp->same) {
        for (int64_t i = 0; i < n; i++) y[i] = add_one(p, a[i], b[i]);
    } else {
        TN_BCAST_FOR(pp, y[i] = add_one(p, a[ia], b[ib]));
    }
    tn_counters *k = c->ctr;
    k->adds = (uint64_t)n;
    k->requant_ops = 3 * (uint64_t)n;
    k->act_bytes_in = (uint64_t)(tn_tensor_elems(tn_in_t(c, 0)) + tn_tensor_elems(tn_in_t(c, 1)));
    k->act_bytes_out = (uint64_t)n;
    return TN_ERR_OK;
}

const tn_kernel tn_kernel_add = {"ADD", add_prepare, add_eval, NULL};
