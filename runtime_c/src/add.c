/* ADD, int8, with 4-D broadcasting, following TFLite's reference integer kernel. */
#include <stdlib.h>
#include "arch.h"
#include "conv_common.h"
#include "requant.h"

typedef struct { int32_t ystride[4], astride[4], bstride[4], dims[4]; int same; } add_prep;

static void dims4(const tn_tensor *t, int32_t d[4]) {
    for (int i = 0; i < 4; i++) d[i] = 1;
    for (int i = 0; i < t->ndim; i++) d[4 - t->ndim + i] = t->dims[i];
}

static int add_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    int rc;
    if (op->n_in < 2) return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "needs 2 inputs");
    for (int s = 0; s < 2; s++)
        if ((rc = tn_check_slot(m, op, 0, s, TN_DTYPE_INT8, 0, err, errlen))) return rc;
    if ((rc = tn_check_slot(m, op, 1, 0, TN_DTYPE_INT8, 0, err, errlen))) return rc;
    const tn_tensor *a = &m->tensors[op->in[0]], *b = &m->tensors[op->in[1]], *y = &m->tensors[op->out[0]];
    if (a->ndim > 4 || b->ndim > 4 || y->ndim > 4)
        return tn_op_fail(err, errlen, op, TN_ERR_UNSUPPORTED, "rank above 4");
    add_prep *pp = (add_prep *)calloc(1, sizeof *pp);
    if (!pp) return tn_op_fail(err, errlen, op, TN_ERR_NO_MEMORY, "out of memory");
    op->prepared = pp;
    int32_t da[4], db[4], dy[4];
    dims4(a, da); dims4(b, db); dims4(y, dy);
    int32_t sa = 1, sb = 1;
    for (int i = 3; i >= 0; i--) {
        if ((da[i] != dy[i] && da[i] != 1) || (db[i] != dy[i] && db[i] != 1))
            return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "shapes of '%s' and '%s' do not broadcast to '%s'",
                              a->name, b->name, y->name);
        pp->astride[i] = da[i] == 1 ? 0 : sa;
        pp->bstride[i] = db[i] == 1 ? 0 : sb;
        sa *= da[i]; sb *= db[i];
        pp->dims[i] = dy[i];
    }
    pp->same = tn_tensor_elems(a) == tn_tensor_elems(y) && tn_tensor_elems(b) == tn_tensor_elems(y);
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
    const add_prep *pp = (const add_prep *)c->op->prepared;
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
        int64_t i = 0;
        for (int d0 = 0; d0 < pp->dims[0]; d0++)
            for (int d1 = 0; d1 < pp->dims[1]; d1++)
                for (int d2 = 0; d2 < pp->dims[2]; d2++)
                    for (int d3 = 0; d3 < pp->dims[3]; d3++, i++) {
                        const int64_t ia = (int64_t)d0 * pp->astride[0] + (int64_t)d1 * pp->astride[1] + (int64_t)d2 * pp->astride[2] + (int64_t)d3 * pp->astride[3];
                        const int64_t ib = (int64_t)d0 * pp->bstride[0] + (int64_t)d1 * pp->bstride[1] + (int64_t)d2 * pp->bstride[2] + (int64_t)d3 * pp->bstride[3];
                        y[i] = add_one(p, a[ia], b[ib]);
                    }
    }
    tn_counters *k = c->ctr;
    k->adds = (uint64_t)n;
    k->requant_ops = 3 * (uint64_t)n;
    k->act_bytes_in = (uint64_t)(tn_tensor_elems(tn_in_t(c, 0)) + tn_tensor_elems(tn_in_t(c, 1)));
    k->act_bytes_out = (uint64_t)n;
    return TN_ERR_OK;
}

const tn_kernel tn_kernel_add = {"ADD", add_prepare, add_eval, NULL};
