/* Approximate-computing knob paths beside the exact kernels: look-up tables (DietCNN/AxP), pruning, weight
 * LSB drop, the CONV+ReLU sign preview and sign-ordered exact termination (SnaPEA). The exact kernels call
 * these when any of those knobs is set for the layer; each path also honours drowsy. */
#ifndef TN_APPROX_H
#define TN_APPROX_H
#include "conv_common.h"

static inline int tn_approx_knobs_active(const tn_layer_knobs *k) {
    return k->lut_enable || k->prune_threshold || k->weight_lsb_drop || k->conv_preview_cin || k->sign_exact;
}

/* the CONV_2D has a residual link (planspec.py: input `residual`, parameter `residual_add`) */
static inline int tn_conv_has_residual(const tn_op *op) {
    return op->opcode == TN_OP_CONV_2D && op->n_in > TN_IN_CONV_2D_RESIDUAL && op->in[TN_IN_CONV_2D_RESIDUAL] >= 0;
}

int tn_conv_eval_approx(tn_ctx *c, const tn_conv_geom *g);
int tn_dw_eval_approx(tn_ctx *c, const tn_conv_geom *g);
int tn_fc_eval_approx(tn_ctx *c);
/* Called by the loader after every op's prepare (a no-op for other ops than conv, depthwise and fc): sizes
 * the approximate paths' scratch and validates the op's artefacts blob (artefacts.h), if it has one. */
int tn_approx_prepare(tn_model *m, tn_op *op, char *err, size_t errlen);
/* Called by the loader once every op is prepared: checks a conv's residual link (the ADD it names consumes
 * the conv's output and the residual, nothing else reads the conv's output, the residual is made before the
 * conv); rejects a residual input on any other op. */
int tn_approx_link_check(const tn_model *m, const tn_op *op, char *err, size_t errlen);
/* Called when knobs are set: checks that the op's artefacts support the requested approximate knobs. */
int tn_approx_validate(const tn_model *m, const tn_op *o, const tn_layer_knobs *k, char *err, size_t errlen);

#endif
