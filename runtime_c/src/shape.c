/* Data movement: COPY (RESHAPE/SQUEEZE), PAD, CONCATENATION. */
#include <string.h>
#include "broadcast.h"
#include "conv_common.h"

static int copy_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    int rc;
    if ((rc = tn_check_slot(m, op, 0, 0, 0, 0, err, errlen))) return rc;
    if ((rc = tn_check_slot(m, op, 1, 0, 0, 0, err, errlen))) return rc;
    const tn_tensor *x = &m->tensors[op->in[0]], *y = &m->tensors[op->out[0]];
    if (x->nbytes != y->nbytes || x->dtype != y->dtype)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "'%s' and '%s' differ in type or size", x->name, y->name);
    return TN_ERR_OK;
}

static int copy_eval(tn_ctx *c) {
    void *dst = tn_out(c, 0);
    const void *src = tn_in(c, 0);
    if (dst != src) memmove(dst, src, tn_out_t(c, 0)->nbytes);
    c->ctr->act_bytes_in = c->ctr->act_bytes_out = tn_out_t(c, 0)->nbytes;
    return TN_ERR_OK;
}

const tn_kernel tn_kernel_copy = {"COPY", copy_prepare, copy_eval, NULL};


static int pad_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    int rc;
    if ((rc = tn_check_slot(m, op, 0, 0, TN_DTYPE_INT8, 0, err, errlen))) return rc;
    if ((rc = tn_check_slot(m, op, 1, 0, TN_DTYPE_INT8, 0, err, errlen))) return rc;
    const tn_tensor *x = &m->tensors[op->in[0]], *y = &m->tensors[op->out[0]];
    if (x->ndim > 4 || x->ndim != y->ndim) return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "ranks differ or exceed 4");
    int32_t dx[4], dy[4];
    tn_dims4(x, dx); tn_dims4(y, dy);
    for (int d = 0; d < 4; d++) {
        const int32_t b = op->p[2 * d], a = op->p[2 * d + 1];
        if (b < 0 || a < 0 || (int64_t)dx[d] + b + a != dy[d])
            return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "dimension %d: %d + %d + %d != %d", d, b, dx[d], a, dy[d]);
    }
    return tn_check_range(op, "pad value", op->p[TN_P_PAD_PAD_VALUE], -128, 127, err, errlen);
}

static int pad_eval(tn_ctx *c) {
    int32_t dx[4], dy[4];
    tn_dims4(tn_in_t(c, 0), dx); tn_dims4(tn_out_t(c, 0), dy);
    const int32_t *p = c->op->p;
    const int8_t *x = (const int8_t *)tn_in(c, 0);
    int8_t *y = (int8_t *)tn_out(c, 0);
    memset(y, (int8_t)p[TN_P_PAD_PAD_VALUE], tn_out_t(c, 0)->nbytes);
    for (int i0 = 0; i0 < dx[0]; i0++)
        for (int i1 = 0; i1 < dx[1]; i1++)
            for (int i2 = 0; i2 < dx[2]; i2++) {
                const int8_t *src = x + (((int64_t)i0 * dx[1] + i1) * dx[2] + i2) * dx[3];
                int8_t *dst = y + ((((int64_t)(i0 + p[0]) * dy[1] + i1 + p[2]) * dy[2] + i2 + p[4]) * dy[3]) + p[6];
                memcpy(dst, src, (size_t)dx[3]);
            }
    c->ctr->act_bytes_in = tn_in_t(c, 0)->nbytes;
    c->ctr->act_bytes_out = tn_out_t(c, 0)->nbytes;
    return TN_ERR_OK;
}

const tn_kernel tn_kernel_pad = {"PAD", pad_prepare, pad_eval, NULL};

static int concat_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    int rc;
    if (op->n_in < 1) return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "no inputs");
    if ((rc = tn_check_slot(m, op, 1, 0, 0, 0, err, errlen))) return rc;
    const tn_tensor *y = &m->tensors[op->out[0]];
    const int axis = op->p[TN_P_CONCATENATION_AXIS];
    if (axis < 0 || axis >= y->ndim) return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "axis %d outside rank %d", axis, y->ndim);
    int64_t total = 0;
    for (int i = 0; i < op->n_in; i++) {
        if ((rc = tn_check_slot(m, op, 0, i, y->dtype, y->ndim, err, errlen))) return rc;
        const tn_tensor *x = &m->tensors[op->in[i]];
        for (int d = 0; d < y->ndim; d++)
            if (d != axis && x->dims[d] != y->dims[d])
                return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "input %d '%s' differs from the output in dimension %d", i, x->name, d);
        total += x->dims[axis];
    }
    if (total != y->dims[axis])
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "inputs add up to %lld along axis %d, output has %d", (long long)total, axis, y->dims[axis]);
    return TN_ERR_OK;
}

static int concat_eval(tn_ctx *c) {
    const tn_tensor *yt = tn_out_t(c, 0);
    const int axis = c->op->p[TN_P_CONCATENATION_AXIS];
    const int es = tn_dtype_size(yt->dtype);
    int64_t outer = 1, inner = es;
    for (int d = 0; d < axis; d++) outer *= yt->dims[d];
    for (int d = axis + 1; d < yt->ndim; d++) inner *= yt->dims[d];
    uint8_t *y = (uint8_t *)tn_out(c, 0);
    const int64_t ystride = yt->dims[axis] * inner;
    int64_t off = 0;
    for (int i = 0; i < c->op->n_in; i++) {
        const tn_tensor *xt = tn_in_t(c, i);
        const uint8_t *x = (const uint8_t *)tn_in(c, i);
        const int64_t chunk = xt->dims[axis] * inner;
        for (int64_t o = 0; o < outer; o++) memcpy(y + o * ystride + off, x + o * chunk, (size_t)chunk);
        off += chunk;
    }
    c->ctr->act_bytes_in = c->ctr->act_bytes_out = yt->nbytes;
    return TN_ERR_OK;
}

const tn_kernel tn_kernel_concat = {"CONCATENATION", concat_prepare, concat_eval, NULL};
