/* Validation and geometry shared by CONV_2D and DEPTHWISE_CONV_2D. */
#ifndef TN_CONV_COMMON_H
#define TN_CONV_COMMON_H
#include "internal.h"

typedef struct {
    int n, h, w, cin, oh, ow, cout, kh, kw;
    int sh, sw, dh, dw, pt, pl;
    int32_t in_zp, out_zp, w_zp, act_min, act_max, depth_mult;
} tn_conv_geom;

/* Reads and validates the geometry and the per-channel vectors; depthwise selects the weight layout. */
int tn_conv_geom_prepare(const tn_model *m, const tn_op *op, int depthwise, tn_conv_geom *g, char *err,
                         size_t errlen);
void tn_conv_geom_get(const tn_model *m, const tn_op *op, tn_conv_geom *g);
int tn_check_requant_vectors(const tn_model *m, const tn_op *op, int n, char *err, size_t errlen);
int tn_check_act_range(const tn_op *op, int32_t lo, int32_t hi, char *err, size_t errlen);
/* frees a CONV_2D op's per-session state (conv.c), which may own more than its block */
void tn_conv_state_free(void *state);

#endif
