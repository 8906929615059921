#include "conv_common.h"

void tn_conv_geom_get(const tn_model *m, const tn_op *op, tn_conv_geom *g) {
    const tn_tensor *x = &m->tensors[op->in[0]], *w = &m->tensors[op->in[1]], *y = &m->tensors[op->out[0]];
    const int32_t *p = op->p;
    g->n = x->dims[0]; g->h = x->dims[1]; g->w = x->dims[2]; g->cin = x->dims[3];
    g->oh = y->dims[1]; g->ow = y->dims[2]; g->cout = y->dims[3];
    g->kh = w->dims[1]; g->kw = w->dims[2];
    g->sh = p[TN_P_CONV_2D_STRIDE_H]; g->sw = p[TN_P_CONV_2D_STRIDE_W];
    g->dh = p[TN_P_CONV_2D_DIL_H]; g->dw = p[TN_P_CONV_2D_DIL_W];
    g->pt = p[TN_P_CONV_2D_PAD_TOP]; g->pl = p[TN_P_CONV_2D_PAD_LEFT];
    g->act_min = p[TN_P_CONV_2D_ACT_MIN]; g->act_max = p[TN_P_CONV_2D_ACT_MAX];
    g->in_zp = p[TN_P_CONV_2D_IN_ZP]; g->out_zp = p[TN_P_CONV_2D_OUT_ZP]; g->w_zp = p[TN_P_CONV_2D_W_ZP];
    g->depth_mult = p[TN_P_CONV_2D_DEPTH_MULT];
}

int tn_check_act_range(const tn_op *op, int32_t lo, int32_t hi, char *err, size_t errlen) {
    if (lo < -128 || hi > 127 || lo > hi)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "activation range [%d, %d] is not within [-128, 127]", lo, hi);
    return TN_ERR_OK;
}

/* inputs 2..5: bias, mult, shift, bias_folded; all int32 [n]; shifts in [-31, 30] */
int tn_check_requant_vectors(const tn_model *m, const tn_op *op, int n, char *err, size_t errlen) {
    for (int slot = 2; slot <= 5; slot++) {
        int rc = tn_check_slot(m, op, 0, slot, TN_DTYPE_INT32, 1, err, errlen);
        if (rc) return rc;
        const tn_tensor *t = &m->tensors[op->in[slot]];
        if (t->storage != TN_STORAGE_CONST || t->dims[0] != n)
            return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "input %d (tensor '%s') must be a constant of %d int32", slot,
                              t->name, n);
    }
    const int32_t *shift = (const int32_t *)tn_const_in(m, op, 4);
    for (int c = 0; c < n; c++)
        if (shift[c] < -31 || shift[c] > 30)
            return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "channel %d: shift %d outside [-31, 30]", c, shift[c]);
    return TN_ERR_OK;
}

int tn_conv_geom_prepare(const tn_model *m, const tn_op *op, int depthwise, tn_conv_geom *g, char *err,
                         size_t errlen) {
    int rc;
    if (op->n_in < 6) return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "needs 6 inputs, has %d", op->n_in);
    if ((rc = tn_check_slot(m, op, 0, 0, TN_DTYPE_INT8, 4, err, errlen))) return rc;
    if ((rc = tn_check_slot(m, op, 0, 1, TN_DTYPE_INT8, 4, err, errlen))) return rc;
    if ((rc = tn_check_slot(m, op, 1, 0, TN_DTYPE_INT8, 4, err, errlen))) return rc;
    if (m->tensors[op->in[1]].storage != TN_STORAGE_CONST)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "weights must be constant");
    tn_conv_geom_get(m, op, g);
    const tn_tensor *w = &m->tensors[op->in[1]];
    const tn_tensor *x = &m->tensors[op->in[0]];
    const tn_tensor *y = &m->tensors[op->out[0]];
    if (y->dims[0] != g->n)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "batch of output (%d) differs from input (%d)", y->dims[0], g->n);
    if (depthwise) {
        if ((rc = tn_check_range(op, "depth_multiplier", g->depth_mult, 1, 1 << 16, err, errlen))) return rc;
        if (w->dims[0] != 1 || w->dims[3] != g->cout || g->cout != g->cin * g->depth_mult)
            return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP,
                              "depthwise weights [%d,%d,%d,%d] do not match %d input channels x multiplier %d = %d outputs",
                              w->dims[0], w->dims[1], w->dims[2], w->dims[3], g->cin, g->depth_mult, g->cout);
    } else {
        if (w->dims[0] != g->cout || w->dims[3] != x->dims[3])
            return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "weights [%d,%d,%d,%d] do not match input channels %d, output channels %d",
                              w->dims[0], w->dims[1], w->dims[2], w->dims[3], g->cin, g->cout);
    }
    if ((rc = tn_check_range(op, "stride_h", g->sh, 1, 1 << 16, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "stride_w", g->sw, 1, 1 << 16, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "dilation_h", g->dh, 1, 1 << 16, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "dilation_w", g->dw, 1, 1 << 16, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "pad_top", g->pt, 0, (int64_t)g->kh * g->dh, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "pad_left", g->pl, 0, (int64_t)g->kw * g->dw, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "input zero point", g->in_zp, -128, 127, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "output zero point", g->out_zp, -128, 127, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "weight zero point", g->w_zp, -128, 127, err, errlen))) return rc;
    if ((rc = tn_check_act_range(op, g->act_min, g->act_max, err, errlen))) return rc;
    /* every output position must read at least its origin inside the image, as TFLite's geometry does */
    if ((int64_t)(g->oh - 1) * g->sh - g->pt >= g->h || (int64_t)(g->ow - 1) * g->sw - g->pl >= g->w)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "output %dx%d does not fit input %dx%d with stride %dx%d",
                          g->oh, g->ow, g->h, g->w, g->sh, g->sw);
    return tn_check_requant_vectors(m, op, g->cout, err, errlen);
}
