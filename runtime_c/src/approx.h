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

#endif
