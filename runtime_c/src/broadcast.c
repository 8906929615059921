#include <stdlib.h>
#include "broadcast.h"

void tn_dims4(const tn_tensor *t, int32_t d[4]) {
    for (int i = 0; i < 4; i++) d[i] = 1;
    for (int i = 0; i < t->ndim; i++) d[4 - t->ndim + i] = t->dims[i];
}

int tn_bcast_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    int rc;
    if (op->n_in < 2) return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "needs 2 inputs");
    for (int s = 0; s < 2; s++)
        if ((rc = tn_check_slot(m, op, 0, s, TN_DTYPE_INT8, 0, err, errlen))) return rc;
    if ((rc = tn_check_slot(m, op, 1, 0, TN_DTYPE_INT8, 0, err, errlen))) return rc;
    const tn_tensor *a = &m->tensors[op->in[0]], *b = &m->tensors[op->in[1]], *y = &m->tensors[op->out[0]];
    if (a->ndim > 4 || b->ndim > 4 || y->ndim > 4)
        return tn_op_fail(err, errlen, op, TN_ERR_UNSUPPORTED, "rank above 4");
    tn_bcast *pp = (tn_bcast *)calloc(1, sizeof *pp);
    if (!pp) return tn_op_fail(err, errlen, op, TN_ERR_NO_MEMORY, "out of memory");
    op->prepared = pp;
    int32_t da[4], db[4], dy[4];
    tn_dims4(a, da); tn_dims4(b, db); tn_dims4(y, dy);
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
    return TN_ERR_OK;
}
