/* Knob state of a session: validated here, read by the kernels. */
#include <string.h>
#include "internal.h"

int tn_session_set_knobs(tn_session *s, int op, const tn_layer_knobs *k) {
    if (!s || !k) return TN_ERR_BAD_ARGUMENT;
    const tn_model *m = s->m;
    if (op < 0 || op >= m->n_ops) {
        tn_fail(s->err, sizeof s->err, TN_ERR_BAD_KNOB, "knobs for op %d: the model has %d ops", op, m->n_ops);
        return TN_ERR_BAD_KNOB;
    }
    const tn_op *o = &m->ops[op];
    const int conv = o->opcode == TN_OP_CONV_2D || o->opcode == TN_OP_DEPTHWISE_CONV_2D;
    const int drowsy = k->drowsy_select ? k->drowsy_drop_count > 0 : k->drowsy_threshold > 0;
    if (drowsy && !conv)
        return tn_op_fail(s->err, sizeof s->err, o, TN_ERR_BAD_KNOB, "drowsy applies to CONV_2D and DEPTHWISE_CONV_2D only");
    if (k->drowsy_granularity < 0 || k->drowsy_granularity > 2)
        return tn_op_fail(s->err, sizeof s->err, o, TN_ERR_BAD_KNOB, "drowsy granularity %d (0 element, 1 row, 2 channel)", k->drowsy_granularity);
    if (k->drowsy_select < 0 || k->drowsy_select > 1)
        return tn_op_fail(s->err, sizeof s->err, o, TN_ERR_BAD_KNOB, "drowsy selection %d (0 random, 1 importance)", k->drowsy_select);
    if (drowsy && k->drowsy_select == 1) {
        const int slot = k->drowsy_granularity == 2 ? 6 : 7;
        if (k->drowsy_granularity == 0)
            return tn_op_fail(s->err, sizeof s->err, o, TN_ERR_BAD_KNOB, "importance selection works per row or channel, not per element");
        if (o->n_in <= slot || o->in[slot] < 0)
            return tn_op_fail(s->err, sizeof s->err, o, TN_ERR_BAD_KNOB, "importance selection needs a plan compiled with calibration ranks");
        if (k->drowsy_drop_count < 0 || k->drowsy_drop_count > m->tensors[o->in[slot]].dims[0])
            return tn_op_fail(s->err, sizeof s->err, o, TN_ERR_BAD_KNOB, "drop count %d outside [0, %d]", k->drowsy_drop_count, m->tensors[o->in[slot]].dims[0]);
    }
    s->knobs[op] = *k;
    return TN_ERR_OK;
}
