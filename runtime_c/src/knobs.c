/* Knob state of a session: validated here, read by the kernels. Setting knobs may allocate (rescaled
 * multipliers); running never does. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "approx.h"

static int validate(const tn_session *s, int op, const tn_layer_knobs *k, char *err, size_t errlen) {
    const tn_model *m = s->m;
    if (op < 0 || op >= m->n_ops)
        return tn_fail(err, errlen, TN_ERR_BAD_KNOB, "knobs for op %d: the model has %d ops", op, m->n_ops);
    const tn_op *o = &m->ops[op];
    const int conv = o->opcode == TN_OP_CONV_2D || o->opcode == TN_OP_DEPTHWISE_CONV_2D;
    const int fc = o->opcode == TN_OP_FULLY_CONNECTED;
    const int drowsy = k->drowsy_select ? k->drowsy_drop_count > 0 : k->drowsy_threshold > 0;
    if (drowsy && !conv)
        return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "drowsy applies to CONV_2D and DEPTHWISE_CONV_2D only");
    if (k->drowsy_granularity < 0 || k->drowsy_granularity > 2)
        return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "drowsy granularity %d (0 element, 1 row, 2 channel)", k->drowsy_granularity);
    if (k->drowsy_select < 0 || k->drowsy_select > 1)
        return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "drowsy selection %d (0 random, 1 importance)", k->drowsy_select);
    if (drowsy && k->drowsy_select == 1) {
        const int slot = k->drowsy_granularity == 2 ? 6 : 7;
        if (k->drowsy_granularity == 0)
            return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "importance selection works per row or channel, not per element");
        if (o->n_in <= slot || o->in[slot] < 0)
            return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "importance selection needs a plan compiled with calibration ranks");
        if (k->drowsy_drop_count < 0 || k->drowsy_drop_count > m->tensors[o->in[slot]].dims[0])
            return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "drop count %d outside [0, %d]", k->drowsy_drop_count, m->tensors[o->in[slot]].dims[0]);
    }
    if (k->drowsy_rescale && drowsy && k->drowsy_select == 0 && k->drowsy_threshold > 0xF3333333u)
        return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "rescale needs a drop rate of at most 0.95");
    if ((k->aip_cols || k->aip_mode) && !fc)
        return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "aip applies to FULLY_CONNECTED only");
    if (fc && (k->aip_cols < 0 || k->aip_cols > m->tensors[o->in[1]].dims[1] || k->aip_mode < 0 || k->aip_mode > 3 ||
               k->aip_topm < 0))
        return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "aip: %d preview columns (of %d), mode %d, top-m %d", k->aip_cols,
                          m->tensors[o->in[1]].dims[1], k->aip_mode, k->aip_topm);
    if (fc && k->aip_mode && (o->n_in <= 6 || o->in[6] < 0))
        return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "aip needs a plan compiled with a column order");
    if ((k->conv_preview_cin || k->sign_exact) && o->opcode != TN_OP_CONV_2D)
        return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "conv preview and sign-exact apply to CONV_2D only");
    if (k->prune_threshold < 0 || k->prune_threshold > 127 || k->weight_lsb_drop < 0 || k->weight_lsb_drop > 7)
        return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "prune threshold %d or lsb drop %d out of range", k->prune_threshold, k->weight_lsb_drop);
    return tn_approx_validate(m, o, k, err, errlen);
}

/* requantization multipliers of a conv op scaled by 1/(1-p): inverted dropout folded in at no run-time cost */
static int apply_rescale(tn_session *s, int op, const tn_layer_knobs *k) {
    const tn_model *m = s->m;
    const tn_op *o = &m->ops[op];
    const int want = k->drowsy_rescale && (k->drowsy_select ? k->drowsy_drop_count > 0 : k->drowsy_threshold > 0);
    if (!want) {
        free(s->rq_mult[op]);
        s->rq_mult[op] = s->rq_shift[op] = NULL;
        return TN_ERR_OK;
    }
    const int n = m->tensors[o->in[3]].dims[0];
    if (!s->rq_mult[op]) {
        s->rq_mult[op] = (int32_t *)malloc(2 * (size_t)n * sizeof(int32_t));
        if (!s->rq_mult[op]) return TN_ERR_NO_MEMORY;
        s->rq_shift[op] = s->rq_mult[op] + n;
    }
    double p;
    if (k->drowsy_select) {
        const int slot = k->drowsy_granularity == 2 ? 6 : 7;
        p = (double)k->drowsy_drop_count / m->tensors[o->in[slot]].dims[0];
    } else {
        p = (double)k->drowsy_threshold / 4294967296.0;
    }
    const int32_t *mult = (const int32_t *)(m->consts + m->tensors[o->in[3]].offset);
    const int32_t *shift = (const int32_t *)(m->consts + m->tensors[o->in[4]].offset);
    for (int c = 0; c < n; c++) {
        const double real = (double)mult[c] * ldexp(1.0, shift[c] - 31) / (1.0 - p);
        int e = 0;
        const double q = frexp(real, &e);
        long long M = llround(q * 2147483648.0);
        if (M == 2147483648ll) { M /= 2; e++; }
        if (real == 0.0 || e < -31) { M = 0; e = 0; }
        if (e > 30) e = 30, M = 2147483647;
        s->rq_mult[op][c] = (int32_t)M;
        s->rq_shift[op][c] = e;
    }
    return TN_ERR_OK;
}

int tn_session_set_knobs(tn_session *s, int op, const tn_layer_knobs *k) {
    if (!s || !k) return TN_ERR_BAD_ARGUMENT;
    int rc = validate(s, op, k, s->err, sizeof s->err);
    if (rc) return rc;
    if ((rc = apply_rescale(s, op, k))) return rc;
    s->knobs[op] = *k;
    return tn_session_knobs_changed(s, op);
}

int tn_session_set_all_knobs(tn_session *s, const tn_layer_knobs *k) {
    if (!s || !k) return TN_ERR_BAD_ARGUMENT;
    for (int i = 0; i < s->m->n_ops; i++) {
        int rc = validate(s, i, &k[i], s->err, sizeof s->err);
        if (rc) return rc;
    }
    for (int i = 0; i < s->m->n_ops; i++) {
        int rc = apply_rescale(s, i, &k[i]);
        if (rc) return rc;
    }
    memcpy(s->knobs, k, (size_t)s->m->n_ops * sizeof *k);
    return tn_session_knobs_changed(s, -1);
}
