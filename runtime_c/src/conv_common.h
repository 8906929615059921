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

/* The counters of a conv-family kernel that computed `computed` outputs of `per_output` MACs each (one
 * multiply and one add per MAC, one requantization per output), left `skipped` outputs uncomputed, and read
 * the weights of `used_ch` output channels once. */
static inline void tn_conv_count(tn_counters *k, uint64_t computed, uint64_t skipped, uint64_t per_output,
                                 uint64_t used_ch) {
    k->macs = computed * per_output;
    k->mults = k->macs;
    k->adds = k->macs;
    k->requant_ops = computed;
    k->outputs_skipped = skipped;
    k->weight_bytes = used_ch * per_output;
}

/* ... and its activation bytes: the input read and the output written whole */
static inline void tn_conv_count_act(tn_counters *k, const tn_conv_geom *g) {
    k->act_bytes_in = (uint64_t)g->n * g->h * g->w * g->cin;
    k->act_bytes_out = (uint64_t)g->n * g->oh * g->ow * g->cout;
}

#endif
