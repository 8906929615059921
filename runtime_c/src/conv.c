/* CONV_2D: portable reference kernel and the im2col + GEMM path, both with DrowsyNet hooks. */
#include <stdlib.h>
#include <string.h>
#include "arch.h"
#include "conv_common.h"
#include "drowsy.h"
#include "requant.h"
#include "approx.h"

#define CONV_BLOCK_PIXELS 64

typedef struct {
    int rows_per_block;
    int direct;       /* 1x1, stride 1, no padding: the input rows are the GEMM rows */
    size_t im2col_bytes, acc_bytes;
} conv_prep;

static int check_rank_tensor(const tn_model *m, const tn_op *op, int slot, int64_t n, char *err, size_t errlen) {
    if (op->n_in <= slot || op->in[slot] < 0) return TN_ERR_OK;
    int rc = tn_check_slot(m, op, 0, slot, TN_DTYPE_INT32, 1, err, errlen);
    if (rc) return rc;
    const tn_tensor *t = &m->tensors[op->in[slot]];
    if (t->storage != TN_STORAGE_CONST || t->dims[0] != n)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "rank tensor '%s' must be %lld constant int32", t->name, (long long)n);
    const int32_t *r = (const int32_t *)(m->consts + t->offset);
    for (int64_t i = 0; i < n; i++)
        if (r[i] < 0 || r[i] >= n)
            return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "rank tensor '%s'[%lld] = %d outside [0, %lld)", t->name,
                              (long long)i, r[i], (long long)n);
    return TN_ERR_OK;
}

int tn_conv_rank_prepare(const tn_model *m, const tn_op *op, const tn_conv_geom *g, char *err, size_t errlen) {
    int rc = check_rank_tensor(m, op, 6, g->cout, err, errlen);
    if (!rc) rc = check_rank_tensor(m, op, 7, (int64_t)g->oh * g->cout, err, errlen);
    return rc;
}

static int conv_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    tn_conv_geom g;
    int rc = tn_conv_geom_prepare(m, op, 0, &g, err, errlen);
    if (rc) return rc;
    if ((rc = tn_conv_rank_prepare(m, op, &g, err, errlen))) return rc;
    conv_prep *pp = (conv_prep *)calloc(1, sizeof *pp);
    if (!pp) return tn_op_fail(err, errlen, op, TN_ERR_NO_MEMORY, "out of memory");
    const int K = g.kh * g.kw * g.cin;
    pp->rows_per_block = TN_MAX(1, CONV_BLOCK_PIXELS / g.ow);
    if (pp->rows_per_block > g.oh) pp->rows_per_block = g.oh;
    pp->direct = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 && g.oh == g.h && g.ow == g.w;
    const size_t px = (size_t)pp->rows_per_block * g.ow;
    pp->im2col_bytes = pp->direct ? 0 : (px * K + 63) / 64 * 64;
    pp->acc_bytes = (px * g.cout * 4 + 63) / 64 * 64;
    op->prepared = pp;
    /* channel list (int32) and per-channel "weights used" flags follow the accumulators */
    op->scratch_bytes = pp->im2col_bytes + pp->acc_bytes + (size_t)g.cout * 4 + (size_t)g.cout + 64;
    op->analytic_macs = (uint64_t)g.n * g.oh * g.ow * g.cout * K;
    return TN_ERR_OK;
}

static inline int8_t dropped_value(const tn_conv_geom *g) {
    return (int8_t)tn_clamp(g->out_zp, g->act_min, g->act_max);
}

static int conv_reference(tn_ctx *c, const tn_conv_geom *g) {
    const int8_t *x = (const int8_t *)tn_in(c, 0), *w = (const int8_t *)tn_in(c, 1);
    const int32_t *bias = (const int32_t *)tn_in(c, 2), *mult = c->rq_mult ? c->rq_mult : (const int32_t *)tn_in(c, 3);
    const int32_t *shift = c->rq_shift ? c->rq_shift : (const int32_t *)tn_in(c, 4);
    int8_t *y = (int8_t *)tn_out(c, 0);
    const tn_layer_knobs *kn = c->knobs;
    const int drowsy = tn_drowsy_active(kn);
    const int32_t *rank_c = c->op->n_in > 6 && c->op->in[6] >= 0 ? (const int32_t *)tn_in(c, 6) : NULL;
    const int32_t *rank_r = c->op->n_in > 7 && c->op->in[7] >= 0 ? (const int32_t *)tn_in(c, 7) : NULL;
    const int K = g->kh * g->kw * g->cin;
    uint64_t computed = 0, skipped = 0;
    uint8_t *used = (uint8_t *)c->scratch;
    memset(used, 0, (size_t)g->cout);
    for (int b = 0; b < g->n; b++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++)
                for (int oc = 0; oc < g->cout; oc++) {
                    int8_t *dst = y + (((int64_t)b * g->oh + oy) * g->ow + ox) * g->cout + oc;
                    if (drowsy) {
                        int drop;
                        if (kn->drowsy_granularity == TN_GRAN_CHANNEL)
                            drop = tn_drowsy_drop(kn, c->s->seed, (uint32_t)c->op->index, (uint64_t)oc, rank_c);
                        else if (kn->drowsy_granularity == TN_GRAN_ROW)
                            drop = kn->drowsy_select
                                       ? rank_r[(int64_t)oy * g->cout + oc] < kn->drowsy_drop_count
                                       : tn_drowsy_drop(kn, c->s->seed, (uint32_t)c->op->index,
                                                        ((uint64_t)b * g->oh + oy) * g->cout + oc, NULL);
                        else
                            drop = tn_drowsy_drop(kn, c->s->seed, (uint32_t)c->op->index,
                                                  (((uint64_t)b * g->oh + oy) * g->ow + ox) * g->cout + oc, NULL);
                        if (drop) { *dst = dropped_value(g); skipped++; continue; }
                    }
                    int32_t acc = bias[oc];
                    for (int ky = 0; ky < g->kh; ky++) {
                        const int iy = oy * g->sh - g->pt + ky * g->dh;
                        if (iy < 0 || iy >= g->h) continue;
                        for (int kx = 0; kx < g->kw; kx++) {
                            const int ix = ox * g->sw - g->pl + kx * g->dw;
                            if (ix < 0 || ix >= g->w) continue;
                            const int8_t *xp = x + (((int64_t)b * g->h + iy) * g->w + ix) * g->cin;
                            const int8_t *wp = w + (((int64_t)oc * g->kh + ky) * g->kw + kx) * g->cin;
                            for (int ic = 0; ic < g->cin; ic++)
                                acc += ((int32_t)wp[ic] - g->w_zp) * ((int32_t)xp[ic] - g->in_zp);
                        }
                    }
                    *dst = tn_requant(acc, mult[oc], shift[oc], g->out_zp, g->act_min, g->act_max);
                    used[oc] = 1;
                    computed++;
                }
    uint64_t used_ch = 0;
    for (int oc = 0; oc < g->cout; oc++) used_ch += used[oc];
    tn_counters *k = c->ctr;
    k->macs = computed * (uint64_t)K;
    k->mults = k->macs;
    k->adds = k->macs;
    k->requant_ops = computed;
    k->outputs_skipped = skipped;
    k->weight_bytes = used_ch * (uint64_t)K;
    k->act_bytes_in = (uint64_t)g->n * g->h * g->w * g->cin;
    k->act_bytes_out = (uint64_t)g->n * g->oh * g->ow * g->cout;
    return TN_ERR_OK;
}

/* Gathers the receptive fields of `np` consecutive output pixels starting at (oy, 0) into rows of K bytes;
 * taps outside the image read the input zero point, which contributes nothing after bias folding. */
static void im2col(const tn_conv_geom *g, const int8_t *xb, int oy0, int rows, int8_t *dst) {
    const int K = g->kh * g->kw * g->cin;
    for (int r = 0; r < rows; r++) {
        const int oy = oy0 + r;
        for (int ox = 0; ox < g->ow; ox++) {
            int8_t *d = dst + ((int64_t)r * g->ow + ox) * K;
            for (int ky = 0; ky < g->kh; ky++) {
                const int iy = oy * g->sh - g->pt + ky * g->dh;
                for (int kx = 0; kx < g->kw; kx++, d += g->cin) {
                    const int ix = ox * g->sw - g->pl + kx * g->dw;
                    if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
                        memset(d, (int8_t)g->in_zp, (size_t)g->cin);
                    else
                        memcpy(d, xb + ((int64_t)iy * g->w + ix) * g->cin, (size_t)g->cin);
                }
            }
        }
    }
}

static int conv_eval(tn_ctx *c) {
    tn_conv_geom g;
    tn_conv_geom_get(c->m, c->op, &g);
    if (tn_approx_knobs_active(c->knobs)) return tn_conv_eval_approx(c, &g);
    if (tn_arch->reference || g.w_zp != 0) return conv_reference(c, &g);
    const conv_prep *pp = (const conv_prep *)c->op->prepared;
    const int8_t *x = (const int8_t *)tn_in(c, 0), *w = (const int8_t *)tn_in(c, 1);
    const int32_t *bias = (const int32_t *)tn_in(c, 5), *mult = c->rq_mult ? c->rq_mult : (const int32_t *)tn_in(c, 3);
    const int32_t *shift = c->rq_shift ? c->rq_shift : (const int32_t *)tn_in(c, 4);
    const int32_t *rank_c = c->op->n_in > 6 && c->op->in[6] >= 0 ? (const int32_t *)tn_in(c, 6) : NULL;
    const int32_t *rank_r = c->op->n_in > 7 && c->op->in[7] >= 0 ? (const int32_t *)tn_in(c, 7) : NULL;
    int8_t *y = (int8_t *)tn_out(c, 0);
    uint8_t *scr = (uint8_t *)c->scratch;
    int8_t *cols = (int8_t *)scr;
    int32_t *acc = (int32_t *)(scr + pp->im2col_bytes);
    int32_t *keep = (int32_t *)(scr + pp->im2col_bytes + pp->acc_bytes);
    uint8_t *used = (uint8_t *)(keep + g.cout);
    const int K = g.kh * g.kw * g.cin;
    const tn_layer_knobs *kn = c->knobs;
    const int drowsy = tn_drowsy_active(kn);
    const int gran = kn->drowsy_granularity;
    const uint32_t layer = (uint32_t)c->op->index;
    const uint64_t seed = c->s->seed;
    const int rpb = (drowsy && gran == TN_GRAN_ROW) ? 1 : pp->rows_per_block;
    const int8_t zero_out = dropped_value(&g);
    uint64_t computed = 0, skipped = 0;
    memset(used, 0, (size_t)g.cout);

    int nk_all = 0;
    if (!drowsy || gran == TN_GRAN_ELEMENT) {
        for (int oc = 0; oc < g.cout; oc++) keep[nk_all++] = oc;
    } else if (gran == TN_GRAN_CHANNEL) {
        for (int oc = 0; oc < g.cout; oc++)
            if (!tn_drowsy_drop(kn, seed, layer, (uint64_t)oc, rank_c)) keep[nk_all++] = oc;
    }
    for (int b = 0; b < g.n; b++) {
        const int8_t *xb = x + (int64_t)b * g.h * g.w * g.cin;
        for (int oy0 = 0; oy0 < g.oh; oy0 += rpb) {
            const int rows = TN_MIN(rpb, g.oh - oy0);
            const int np = rows * g.ow;
            int nk = nk_all;
            if (drowsy && gran == TN_GRAN_ROW) {
                nk = 0;
                for (int oc = 0; oc < g.cout; oc++) {
                    int drop = kn->drowsy_select ? rank_r[(int64_t)oy0 * g.cout + oc] < kn->drowsy_drop_count
                                                 : tn_drowsy_drop(kn, seed, layer, ((uint64_t)b * g.oh + oy0) * g.cout + oc, NULL);
                    if (!drop) keep[nk++] = oc;
                }
            }
            int8_t *yb = y + (((int64_t)b * g.oh + oy0) * g.ow) * g.cout;
            if (nk < g.cout) {
                memset(yb, zero_out, (size_t)np * g.cout);
                skipped += (uint64_t)np * (g.cout - nk);
            }
            if (nk == 0) continue;
            const int8_t *A = pp->direct ? xb + (int64_t)oy0 * g.w * g.cin : cols;
            if (!pp->direct) im2col(&g, xb, oy0, rows, cols);
            if (drowsy && gran == TN_GRAN_ELEMENT) {
                for (int p = 0; p < np; p++) {
                    const int oy = oy0 + p / g.ow, ox = p % g.ow;
                    int8_t *yp = yb + (int64_t)p * g.cout;
                    for (int oc = 0; oc < g.cout; oc++) {
                        uint64_t unit = (((uint64_t)b * g.oh + oy) * g.ow + ox) * g.cout + oc;
                        if (tn_drowsy_drop(kn, seed, layer, unit, NULL)) { yp[oc] = zero_out; skipped++; continue; }
                        int32_t a = bias[oc] + tn_arch->dot(K, A + (int64_t)p * K, w + (int64_t)oc * K);
                        yp[oc] = tn_requant(a, mult[oc], shift[oc], g.out_zp, g.act_min, g.act_max);
                        used[oc] = 1;
                        computed++;
                    }
                }
                continue;
            }
            tn_arch->gemm(np, nk, K, A, w, keep, acc);
            for (int p = 0; p < np; p++) {
                const int32_t *ap = acc + (int64_t)p * nk;
                int8_t *yp = yb + (int64_t)p * g.cout;
                if (nk == g.cout) {  /* all channels: keep[j] == j */
                    tn_arch->requant_row(nk, ap, bias, mult, shift, g.out_zp, g.act_min, g.act_max, yp);
                    continue;
                }
                for (int j = 0; j < nk; j++) {
                    const int oc = keep[j];
                    yp[oc] = tn_requant(ap[j] + bias[oc], mult[oc], shift[oc], g.out_zp, g.act_min, g.act_max);
                }
            }
            for (int j = 0; j < nk; j++) used[keep[j]] = 1;
            computed += (uint64_t)np * nk;
        }
    }
    uint64_t used_ch = 0;
    for (int oc = 0; oc < g.cout; oc++) used_ch += used[oc];
    tn_counters *k = c->ctr;
    k->macs = computed * (uint64_t)K;
    k->mults = k->macs;
    k->adds = k->macs;
    k->requant_ops = computed;
    k->outputs_skipped = skipped;
    k->weight_bytes = used_ch * (uint64_t)K;
    k->act_bytes_in = (uint64_t)g.n * g.h * g.w * g.cin;
    k->act_bytes_out = (uint64_t)g.n * g.oh * g.ow * g.cout;
    return TN_ERR_OK;
}

const tn_kernel tn_kernel_conv2d = {"CONV_2D", conv_prepare, conv_eval};
