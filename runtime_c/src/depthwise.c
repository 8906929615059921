/* DEPTHWISE_CONV_2D: reference kernel and a channel-vectorised path, with DrowsyNet hooks. */
#include <stdlib.h>
#include <string.h>
#include "arch.h"
#include "conv_common.h"
#include "drowsy.h"
#include "requant.h"
#include "approx.h"

int tn_conv_rank_prepare(const tn_model *m, const tn_op *op, const tn_conv_geom *g, char *err, size_t errlen);

static int dw_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    tn_conv_geom g;
    int rc = tn_conv_geom_prepare(m, op, 1, &g, err, errlen);
    if (rc) return rc;
    if ((rc = tn_conv_rank_prepare(m, op, &g, err, errlen))) return rc;
    /* int32 accumulators per output channel, a keep list and per-channel "used" flags */
    op->scratch_bytes = (size_t)g.cout * 8 + (size_t)g.cout + 64;
    op->analytic_macs = (uint64_t)g.n * g.oh * g.ow * g.cout * g.kh * g.kw;
    return TN_ERR_OK;
}

/* drop decision for output (b, oy, ox, oc) */
static inline int dw_drop(const tn_ctx *c, const tn_conv_geom *g, int b, int oy, int ox, int oc,
                          const int32_t *rank_c, const int32_t *rank_r) {
    const tn_layer_knobs *kn = c->knobs;
    const uint32_t layer = (uint32_t)c->op->index;
    if (kn->drowsy_granularity == TN_GRAN_CHANNEL) return tn_drowsy_drop(kn, c->s->seed, layer, (uint64_t)oc, rank_c);
    if (kn->drowsy_granularity == TN_GRAN_ROW)
        return kn->drowsy_select ? rank_r[(int64_t)oy * g->cout + oc] < kn->drowsy_drop_count
                                 : tn_drowsy_drop(kn, c->s->seed, layer, ((uint64_t)b * g->oh + oy) * g->cout + oc, NULL);
    return tn_drowsy_drop(kn, c->s->seed, layer, (((uint64_t)b * g->oh + oy) * g->ow + ox) * g->cout + oc, NULL);
}

static int dw_eval(tn_ctx *c) {
    tn_conv_geom g;
    tn_conv_geom_get(c->m, c->op, &g);
    if (tn_approx_knobs_active(c->knobs)) return tn_dw_eval_approx(c, &g);
    const int8_t *x = (const int8_t *)tn_in(c, 0), *w = (const int8_t *)tn_in(c, 1);
    const int32_t *bias = (const int32_t *)tn_in(c, 2), *mult = c->rq_mult ? c->rq_mult : (const int32_t *)tn_in(c, 3);
    const int32_t *shift = c->rq_shift ? c->rq_shift : (const int32_t *)tn_in(c, 4);
    const int32_t *rank_c = c->op->n_in > 6 && c->op->in[6] >= 0 ? (const int32_t *)tn_in(c, 6) : NULL;
    const int32_t *rank_r = c->op->n_in > 7 && c->op->in[7] >= 0 ? (const int32_t *)tn_in(c, 7) : NULL;
    int8_t *y = (int8_t *)tn_out(c, 0);
    int32_t *acc = (int32_t *)c->scratch;
    int32_t *keep = acc + g.cout;
    uint8_t *used = (uint8_t *)(keep + g.cout);
    const int drowsy = tn_drowsy_active(c->knobs);
    /* the per-channel loop serves the reference and every drowsy case; the vector loop the dense case */
    const int dense = !drowsy && !tn_arch->reference && g.w_zp == 0;
    const int8_t zero_out = (int8_t)tn_clamp(g.out_zp, g.act_min, g.act_max);
    uint64_t computed = 0, skipped = 0;
    memset(used, 0, (size_t)g.cout);
    for (int b = 0; b < g.n; b++)
        for (int oy = 0; oy < g.oh; oy++)
            for (int ox = 0; ox < g.ow; ox++) {
                int8_t *yp = y + (((int64_t)b * g.oh + oy) * g.ow + ox) * g.cout;
                const int iy0 = oy * g.sh - g.pt, ix0 = ox * g.sw - g.pl;
                if (dense) {
                    memset(acc, 0, (size_t)g.cout * 4);
                    for (int ky = 0; ky < g.kh; ky++) {
                        const int iy = iy0 + ky * g.dh;
                        if (iy < 0 || iy >= g.h) continue;
                        for (int kx = 0; kx < g.kw; kx++) {
                            const int ix = ix0 + kx * g.dw;
                            if (ix < 0 || ix >= g.w) continue;
                            const int8_t *xp = x + (((int64_t)b * g.h + iy) * g.w + ix) * g.cin;
                            const int8_t *wp = w + ((int64_t)ky * g.kw + kx) * g.cout;
                            if (g.depth_mult == 1) {
                                tn_arch->dw_accum(g.cout, acc, wp, xp, g.in_zp);
                            } else {
                                for (int ic = 0; ic < g.cin; ic++) {
                                    const int32_t xv = (int32_t)xp[ic] - g.in_zp;
                                    for (int mm = 0; mm < g.depth_mult; mm++)
                                        acc[ic * g.depth_mult + mm] += (int32_t)wp[ic * g.depth_mult + mm] * xv;
                                }
                            }
                        }
                    }
                    tn_arch->requant_row(g.cout, acc, bias, mult, shift, g.out_zp, g.act_min, g.act_max, yp);
                    computed += (uint64_t)g.cout;
                    continue;
                }
                for (int oc = 0; oc < g.cout; oc++) {
                    if (drowsy && dw_drop(c, &g, b, oy, ox, oc, rank_c, rank_r)) {
                        yp[oc] = zero_out;
                        skipped++;
                        continue;
                    }
                    const int ic = oc / g.depth_mult;
                    int32_t a = bias[oc];
                    for (int ky = 0; ky < g.kh; ky++) {
                        const int iy = iy0 + ky * g.dh;
                        if (iy < 0 || iy >= g.h) continue;
                        for (int kx = 0; kx < g.kw; kx++) {
                            const int ix = ix0 + kx * g.dw;
                            if (ix < 0 || ix >= g.w) continue;
                            const int32_t xv = x[(((int64_t)b * g.h + iy) * g.w + ix) * g.cin + ic];
                            const int32_t wv = w[((int64_t)ky * g.kw + kx) * g.cout + oc];
                            a += (wv - g.w_zp) * (xv - g.in_zp);
                        }
                    }
                    yp[oc] = tn_requant(a, mult[oc], shift[oc], g.out_zp, g.act_min, g.act_max);
                    used[oc] = 1;
                    computed++;
                }
            }
    uint64_t used_ch = (uint64_t)g.cout;
    if (!dense) {
        used_ch = 0;
        for (int oc = 0; oc < g.cout; oc++) used_ch += used[oc];
    }
    tn_counters *k = c->ctr;
    /* MACs of padded taps are not executed, but TFLite's analytic count (and ours) charges the full window */
    k->macs = computed * (uint64_t)g.kh * g.kw;
    k->mults = k->macs;
    k->adds = k->macs;
    k->requant_ops = computed;
    k->outputs_skipped = skipped;
    k->weight_bytes = used_ch * (uint64_t)g.kh * g.kw;
    k->act_bytes_in = (uint64_t)g.n * g.h * g.w * g.cin;
    k->act_bytes_out = (uint64_t)g.n * g.oh * g.ow * g.cout;
    (void)keep;
    return TN_ERR_OK;
}

const tn_kernel tn_kernel_depthwise = {"DEPTHWISE_CONV_2D", dw_prepare, dw_eval, NULL};
