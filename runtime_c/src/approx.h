/* Approximate-computing knob paths beside the exact kernels: look-up tables (DietCNN/AxP), pruning, weight
 * LSB drop, the CONV+ReLU sign preview and sign-ordered exact termination (SnaPEA). The exact kernels call
 * these when any of those knobs is set for the layer; each path also honours drowsy. */
#ifndef TN_APPROX_H
#define TN_APPROX_H
#include "conv_common.h"

static inline int tn_approx_knobs_active(const tn_layer_knobs *k) {
    return k->lut_enable || k->prune_threshold || k->weight_lsb_drop || k->conv_preview_cin || k->sign_exact;
}

int tn_conv_eval_approx(tn_ctx *c, const tn_conv_geom *g);
int tn_dw_eval_approx(tn_ctx *c, const tn_conv_geom *g);
int tn_fc_eval_approx(tn_ctx *c);
/* Called by the loader after every op's prepare (a no-op for other ops than conv, depthwise and fc): sizes
 * the approximate paths' scratch and validates the op's artefacts blob (artefacts.h), if it has one. */
int tn_approx_prepare(tn_model *m, tn_op *op, char *err, size_t errlen);
/* Called when knobs are set: checks that the op's artefacts support the requested approximate knobs. */
int tn_approx_validate(const tn_model *m, const tn_op *o, const tn_layer_knobs *k, char *err, size_t errlen);

#endif
