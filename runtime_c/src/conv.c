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
    int q8;           /* weights packed for the packed GEMM (the CPU has one) */
    tn_q8_packed packed;
    size_t q8_cols_bytes, q8_sub_bytes, q8_tmp_bytes;
    /* the implicit GEMM with positions in lanes (arch.h: tn_px_packed), where the CPU has it */
    int px;           /* prepared */
    int px_dense;     /* chosen for the layer with every channel computed */
    int px_G, px_Hq, px_Wq, px_npos;   /* channel groups, plane rows and columns, wide positions */
    uint8_t px_used[64];               /* phase planes some tap reads (a 1x1 stride-2 conv reads one of four) */
    const int64_t *px_koff;            /* per reduction step: byte offset in the planes */
    tn_px_packed px_packed;
    size_t px_x_bytes, px_tmp_bytes;
    /* the AVX2 packed GEMM (int16 pairs) */
    int q16;
    tn_q16_packed q16pk;
    size_t q16_cols_bytes, q16_tmp_bytes;
    /* the CONV_2D or ADD op writing the input (the only writer), or -1; then xc_off: room in the scratch for
     * the input's kept channels (input-channel skipping, conv_inskip) */
    int producer;
    size_t xc_off;
    /* an input-skipping layer whose drowsy subsets are packed per seed: no dense packing (never read) */
    int nodense;
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

static size_t a64(size_t v) { return (v + 63) / 64 * 64; }

/* A cost model in vpdpbusd-equivalents, fitted to the MLPerf Tiny layers on Zen 4: positions in lanes pay for
 * the wide grid's extra columns and the input planes it builds, channels in lanes for 16-channel blocks,
 * im2col and the input's conversion to uint8 (which made it the wrong choice for ResNet-8's strided layers);
 * both about 6 per 16 outputs requantized; computing row by row (drowsy rows) costs a call per row. Checked
 * against forced choices (TUNABLE_CONV) on every MLPerf Tiny conv layer. */
static double px_cost(const tn_conv_geom *g, const conv_prep *pp, int nk, int per_row) {
    const int G = (g->cin + 3) / 4, kg = g->kh * g->kw * G;
    const double chunks = per_row ? (double)g->oh * ((g->ow + 15) / 16) : (double)((pp->px_npos + 15) / 16);
    /* per chunk: every computed channel's reduction and requantization, and per tile of 16 channels the
     * transpose and the stores (about 60) */
    /* the planes built: only the phases some tap reads (a 1x1 stride-2 conv reads one of four) */
    int used = 0;
    const int phases = g->sh * g->sw;
    for (int ph = 0; ph < phases && ph < 64; ph++) used += pp->px_used[ph];
    const double built = phases > 64 ? 1.0 : (double)used / phases;
    return chunks * ((4.0 * ((nk + 3) / 4)) * (kg + 6) + 60.0 * ((nk + 15) / 16)) + 0.5 * g->h * g->w * G * built +
           (per_row ? 40.0 * g->oh : 0.0);
}

static double q8_cost(const tn_conv_geom *g, const conv_prep *pp, int nk, int per_row) {
    const int K = g->kh * g->kw * g->cin, K4 = (K + 3) / 4;
    const double im2col = pp->direct && g->cin % 4 == 0 ? 1.0 : K / 16.0 + 8.0;  /* 1x1: the input rows as they are */
    /* plus the whole input converted to uint8 first (h * w * cin bytes; checked on ResNet-8's strided layers,
     * whose subsets of 24 to 40 channels stay faster here) */
    return (double)g->oh * g->ow * (((nk + 15) / 16) * (K4 + 6.0) + im2col) + 0.0625 * g->h * g->w * g->cin +
           (per_row ? 40.0 * g->oh : 0.0);
}

/* Whether the positions-in-lanes kernel is expected to beat the channels-in-lanes GEMM for nk computed
 * channels. TUNABLE_CONV=px or q8 forces one (for measurements). */
static int px_choose(const tn_conv_geom *g, const conv_prep *pp, int nk, int per_row) {
    const char *env = getenv("TUNABLE_CONV");
    if (env && !strcmp(env, "px")) return 1;
    if (env && !strcmp(env, "q8")) return 0;
    return px_cost(g, pp, nk, per_row) <= q8_cost(g, pp, nk, per_row);
}

/* Geometry and packing of the positions-in-lanes path into mem (the offsets, then the weights). The padded
 * extent the outputs read is (o - 1) * s + (k - 1) * d + 1 rows (columns) from the top (left) pad, split
 * into s phases of Hq rows (Wq columns). */
static void px_prepare(const tn_model *m, const tn_op *op, const tn_conv_geom *g, conv_prep *pp, uint8_t *mem,
                       int pack) {
    const int G = (g->cin + 3) / 4, kg = g->kh * g->kw * G;
    const int hp = (g->oh - 1) * g->sh + (g->kh - 1) * g->dh + 1, wp = (g->ow - 1) * g->sw + (g->kw - 1) * g->dw + 1;
    const int Hq = (hp + g->sh - 1) / g->sh, Wq = (wp + g->sw - 1) / g->sw;
    const int64_t plane = (int64_t)Hq * Wq * 4;
    int64_t *koff = (int64_t *)mem;
    memset(pp->px_used, g->sh * g->sw > 64, sizeof pp->px_used);  /* more phases than flags: build them all */
    for (int ky = 0; ky < g->kh; ky++)
        for (int kx = 0; kx < g->kw; kx++)
            for (int gi = 0; gi < G; gi++) {
                const int ph = ((ky * g->dh) % g->sh) * g->sw + (kx * g->dw) % g->sw;
                if (ph < 64) pp->px_used[ph] = 1;
                koff[(ky * g->kw + kx) * G + gi] =
                    ((int64_t)ph * G + gi) * plane + ((int64_t)((ky * g->dh) / g->sh) * Wq + (kx * g->dw) / g->sw) * 4;
            }
    void *pw = (void *)(((uintptr_t)(mem + a64((size_t)kg * 8)) + 63) & ~(uintptr_t)63);
    if (pack) {
        tn_px_pack(g->cout, g->cout, g->kh, g->kw, g->cin, (const int8_t *)tn_const_in(m, op, 1), NULL,
                   (const int32_t *)tn_const_in(m, op, 5), (const int32_t *)tn_const_in(m, op, 3),
                   (const int32_t *)tn_const_in(m, op, 4), pw, &pp->px_packed);
    } else {
        memset(&pp->px_packed, 0, sizeof pp->px_packed);
        pp->px_packed.n = pp->px_packed.cout = g->cout;
        pp->px_packed.kg = kg;
    }
    pp->px = 1;
    pp->px_G = G;
    pp->px_Hq = Hq;
    pp->px_Wq = Wq;
    pp->px_npos = (g->oh - 1) * Wq + g->ow;
    pp->px_koff = koff;
    pp->px_x_bytes = a64((size_t)g->sh * g->sw * G * plane + 128);
    pp->px_tmp_bytes = a64((size_t)g->oh * g->ow * g->cout + 64);
    pp->px_dense = px_choose(g, pp, g->cout, 0);
}

enum { PACK_VNNI = 1, PACK_AVX2 = 2, PACK_NODENSE = 4 };

/* packs: the packed paths to prepare (an input-skipping layer prepares only the running variant's) */
static int conv_prepare_sel(tn_model *m, tn_op *op, char *err, size_t errlen, int packs) {
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
    const int has_q8 = (packs & PACK_VNNI) && tn_arch_has_q8() && g.w_zp == 0;
    const int has_q16 = (packs & PACK_AVX2) && tn_arch_has_q16() && g.w_zp == 0;
    if (has_q8 || has_q16) {
        /* packed once, here, in one block after the struct: the VNNI packing, the positions-in-lanes packing
         * and its offsets, the AVX2 packing (an AVX-512 CPU has all three: TUNABLE_ISA may choose avx2) */
        const size_t pb = has_q8 ? tn_q8_packed_bytes(g.cout, K) : 0;
        const int G = (g.cin + 3) / 4, kg = g.kh * g.kw * G;
        const size_t pxb = has_q8 ? (((size_t)kg * 8 + 63) / 64) * 64 + tn_px_packed_bytes(g.cout, kg, g.cout) + 64 : 0;
        const size_t qb = has_q16 ? tn_q16_packed_bytes(g.cout, K) + 64 : 0;
        conv_prep *grown = (conv_prep *)realloc(pp, sizeof *pp + 64 + pb + pxb + qb);
        if (!grown) return tn_op_fail(err, errlen, op, TN_ERR_NO_MEMORY, "out of memory packing weights");
        pp = grown;
        op->prepared = pp;
        void *mem = (void *)(((uintptr_t)(pp + 1) + 63) & ~(uintptr_t)63);
        if (has_q16) {
            void *qm = (void *)(((uintptr_t)((uint8_t *)mem + pb + pxb) + 63) & ~(uintptr_t)63);
            if (packs & PACK_NODENSE) {
                memset(&pp->q16pk, 0, sizeof pp->q16pk);
                pp->q16pk.N = g.cout, pp->q16pk.K = K, pp->q16pk.K2 = (K + 1) / 2, pp->q16pk.NB = (g.cout + 7) / 8;
            } else {
                tn_q16_pack(g.cout, K, (const int8_t *)tn_const_in(m, op, 1), NULL, (const int32_t *)tn_const_in(m, op, 5),
                            (const int32_t *)tn_const_in(m, op, 3), (const int32_t *)tn_const_in(m, op, 4), qm, &pp->q16pk);
            }
            pp->q16 = 1;
            /* per thread: int16 im2col rows, compact outputs; keep list and flags as the portable path's */
            pp->q16_cols_bytes = a64((size_t)pp->rows_per_block * g.ow * pp->q16pk.K2 * 4);
            pp->q16_tmp_bytes = a64((size_t)pp->rows_per_block * g.ow * g.cout);
            const size_t q16_scratch = pp->q16_cols_bytes + pp->q16_tmp_bytes + a64((size_t)g.cout * 4) + (size_t)g.cout + 64;
            if (q16_scratch > op->scratch_bytes) op->scratch_bytes = q16_scratch;
        }
    }
    if (has_q8) {
        const size_t pb = tn_q8_packed_bytes(g.cout, K);
        void *mem = (void *)(((uintptr_t)(pp + 1) + 63) & ~(uintptr_t)63);
        px_prepare(m, op, &g, pp, (uint8_t *)mem + pb, !(packs & PACK_NODENSE));
        if (packs & PACK_NODENSE) {
            memset(&pp->packed, 0, sizeof pp->packed);
            pp->packed.N = g.cout, pp->packed.K = K, pp->packed.K4 = (K + 3) / 4, pp->packed.NB = (g.cout + 15) / 16;
        } else {
            tn_q8_pack(g.cout, K, (const int8_t *)tn_const_in(m, op, 1), NULL, (const int32_t *)tn_const_in(m, op, 5),
                       (const int32_t *)tn_const_in(m, op, 3), (const int32_t *)tn_const_in(m, op, 4), mem, &pp->packed);
        }
        pp->q8 = 1;
        const size_t px = (size_t)pp->rows_per_block * g.ow;
        pp->q8_cols_bytes = (px * (size_t)pp->packed.K4 * 4 + 63) / 64 * 64;
        pp->q8_sub_bytes = (pb + 63) / 64 * 64;
        pp->q8_tmp_bytes = (px * g.cout + 63) / 64 * 64;
        /* keep list and "used" flags, then the input converted to uint8 */
        const size_t q8_scratch = pp->q8_cols_bytes + pp->q8_sub_bytes + pp->q8_tmp_bytes +
                                  (((size_t)g.cout * 5 + 63) / 64) * 64 + (size_t)g.h * g.w * g.cin + 64;
        if (q8_scratch > op->scratch_bytes) op->scratch_bytes = q8_scratch;
        const size_t px_scratch = pp->px_x_bytes + pp->px_tmp_bytes + (((size_t)g.cout * 5 + 63) / 64) * 64 + 64;
        if (px_scratch > op->scratch_bytes) op->scratch_bytes = px_scratch;
    }
    op->analytic_macs = (uint64_t)g.n * g.oh * g.ow * g.cout * K;
    pp->nodense = (packs & PACK_NODENSE) && (has_q8 || has_q16);
    /* an input written by an earlier CONV_2D: room for its kept channels, should its drowsy drop some */
    pp->producer = -1;
    pp->xc_off = 0;
    for (int j = 0; j < TN_MIN(op->index, m->n_ops); j++)
        for (int k = 0; k < m->ops[j].n_out; k++)
            if (m->ops[j].out[k] == op->in[0])
                pp->producer = pp->producer == -1 && k == 0 &&
                               (m->ops[j].opcode == TN_OP_CONV_2D || m->ops[j].opcode == TN_OP_ADD) ? j : -2;
    if (pp->producer < 0) pp->producer = -1;
    if (pp->producer >= 0 && g.cin >= 2) {
        pp->xc_off = a64(op->scratch_bytes);
        op->scratch_bytes = pp->xc_off + a64((size_t)g.n * g.h * g.w * g.cin) + 64;
    }
    return TN_ERR_OK;
}

static int conv_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    return conv_prepare_sel(m, op, err, errlen, PACK_VNNI | PACK_AVX2);
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
    tn_conv_count(c->ctr, computed, skipped, (uint64_t)K, used_ch);
    tn_conv_count_act(c->ctr, g);
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

/* im2col into uint8 rows of lda bytes from the input already converted to uint8 (int8 ^ 0x80, for VNNI);
 * padding taps read the input zero point. Spans of kw taps inside the image are one copy. */
static void im2col_u8(const tn_conv_geom *g, const uint8_t *xu, int oy0, int rows, int lda, uint8_t *dst) {
    const int K = g->kh * g->kw * g->cin;
    const uint8_t pad = (uint8_t)((int8_t)g->in_zp ^ 0x80);
    const size_t span = (size_t)g->kw * g->cin;
    for (int r = 0; r < rows; r++) {
        const int oy = oy0 + r;
        for (int ox = 0; ox < g->ow; ox++) {
            uint8_t *row = dst + ((int64_t)r * g->ow + ox) * lda;
            uint8_t *d = row;
            const int ix0 = ox * g->sw - g->pl;
            const int inside_x = ix0 >= 0 && ix0 + (g->kw - 1) * g->dw < g->w;
            for (int ky = 0; ky < g->kh; ky++) {
                const int iy = oy * g->sh - g->pt + ky * g->dh;
                if (iy < 0 || iy >= g->h) {
                    memset(d, pad, span);
                    d += span;
                    continue;
                }
                const uint8_t *src = xu + ((int64_t)iy * g->w) * g->cin;
                if (inside_x && g->dw == 1) {
                    memcpy(d, src + (int64_t)ix0 * g->cin, span);
                    d += span;
                    continue;
                }
                for (int kx = 0; kx < g->kw; kx++, d += g->cin) {
                    const int ix = ix0 + kx * g->dw;
                    if (ix < 0 || ix >= g->w) memset(d, pad, (size_t)g->cin);
                    else memcpy(d, src + (int64_t)ix * g->cin, (size_t)g->cin);
                }
            }
            memset(row + K, 0, (size_t)(lda - K));
        }
    }
}

/* Per-session state of a conv op under channel or row drowsy on the packed path: the kept channels of each
 * unit (the whole layer, or each output row) packed once when knobs or seed change, not per inference. */
typedef struct {
    int nk, nd;
    const int32_t *keep, *drop;    /* kept and dropped channels, ascending */
    const uint64_t *mask, *dmask;  /* the same as bits */
    tn_q8_packed pk;    /* channels in lanes (VNNI) */
    tn_px_packed xk;    /* positions in lanes (VNNI) */
    tn_q16_packed hk;   /* AVX2 */
} conv_subset;
/* dense_mask: the subsets are not expected to save time (few channels dropped, or rows too short to fill
 * the SIMD lanes): every channel is computed by the layer's dense kernel and the dropped outputs are then
 * set to real zero; no packing */
struct conv_inskip;
typedef struct {
    int gran, n_sub, px, q16, dense_mask;
    uint64_t used_ch;  /* channels kept by at least one subset (the weights fetched) */
    struct conv_inskip *ins;  /* input channels skipped (below); the op then runs as ins->op */
    /* element granularity without rescaling: the keep mask of every output (0xFF kept, 0 dropped), room made
     * when knobs or seed change. The first inference with a seed runs the per-element paths (the hash inline,
     * as a seed per inference needs); the second fills the mask, and from then on the layer's fastest dense
     * kernel runs, then the mask (a kept seed pays the hash once). e_ready: 0, 1 (one inference seen), 2 */
    uint8_t *emask;
    int e_ready;
    uint64_t e_dropped;
    conv_subset sub[];
} conv_state;

/* Input channels a producer conv dropped (drowsy, channel granularity) hold its output zero point, which is
 * real zero here: they add nothing to any output, so the layer runs as a smaller layer over the ck kept input
 * channels, exactly. The smaller layer is a private one-op model (the kept weights, the bias folded over
 * them, the other constants copied) prepared by conv_prepare; its input tensor is the kept channels gathered
 * into this op's scratch (xc_off) each inference. */
typedef struct conv_inskip {
    tn_model m;
    tn_op op;
    tn_tensor t[TN_PLAN_MAX_OP_INPUTS + TN_PLAN_MAX_OP_OUTPUTS];
    uint8_t *consts;
    conv_state *inner;   /* the smaller layer's drowsy state, or NULL */
    int ck;              /* input channels kept */
    int32_t *ikeep;      /* ck of them, ascending */
    uint64_t *imask;     /* the same as bits */
    size_t xc_off;       /* the gathered input in the scratch */
} conv_inskip;

void tn_conv_state_free(void *state) {
    conv_state *st = (conv_state *)state;
    if (st && st->ins) {
        tn_conv_state_free(st->ins->inner);
        free(st->ins->op.prepared);
        free(st->ins->consts);
        free(st->ins);
    }
    free(st);
}

static int state_build(tn_session *s, const tn_model *m, const tn_op *o, int op, conv_state **out) {
    const conv_prep *pp = (const conv_prep *)o->prepared;
    const tn_layer_knobs *kn = &s->knobs[op];
    *out = NULL;
    tn_conv_geom g;
    tn_conv_geom_get(m, o, &g);
    /* the packed kernels of the variant running now: VNNI (positions or channels in lanes), or AVX2 */
    const int vnni = pp->q8 && tn_arch->q8_gemm != NULL, avx2 = !vnni && pp->q16 && tn_arch->q16_gemm != NULL;
    if (tn_drowsy_active(kn) && kn->drowsy_granularity == TN_GRAN_ELEMENT && !s->rq_mult[op] && !tn_arch->reference &&
        tn_arch->drop && tn_arch->mask_bytes && g.w_zp == 0) {
        const char *env = getenv("TUNABLE_DROWSY");  /* "subsets": the per-element paths below (tests) */
        if (!env || strcmp(env, "subsets")) {
            const int64_t n = (int64_t)g.n * g.oh * g.ow * g.cout;
            conv_state *st = (conv_state *)calloc(1, a64(sizeof(conv_state)) + a64((size_t)n) + (size_t)g.cout + 64);
            if (!st) return TN_ERR_NO_MEMORY;
            st->gran = TN_GRAN_ELEMENT;
            st->emask = (uint8_t *)st + a64(sizeof(conv_state));
            *out = st;
            return TN_ERR_OK;
        }
    }
    if (!(vnni || avx2) || !tn_drowsy_active(kn) || g.n != 1) return TN_ERR_OK;
    const int gran = kn->drowsy_granularity;
    /* element granularity runs a dense kernel then masks: state only for rescaled multipliers */
    if (gran == TN_GRAN_ELEMENT && (!s->rq_mult[op] || (vnni && !pp->px))) return TN_ERR_OK;
    const int K = g.kh * g.kw * g.cin;
    const int n_sub = gran == TN_GRAN_ROW ? g.oh : 1;
    size_t pbytes = tn_q16_packed_bytes(g.cout, K);
    if (vnni) {
        const size_t pxb = pp->px ? tn_px_packed_bytes(g.cout, pp->px_packed.kg, g.cout) : 0, q8b = tn_q8_packed_bytes(g.cout, K);
        pbytes = pxb > q8b ? pxb : q8b;
    }
    const size_t mwords = (size_t)(g.cout + 63) / 64;
    const size_t per = a64((size_t)g.cout * 4) + 2 * a64(mwords * 8) + 64 + pbytes;
    const size_t head = a64(sizeof(conv_state) + (size_t)n_sub * sizeof(conv_subset));
    uint8_t *mem = (uint8_t *)malloc(head + (size_t)n_sub * per + 64);
    if (!mem) return TN_ERR_NO_MEMORY;
    conv_state *st = (conv_state *)mem;
    st->gran = gran;
    st->ins = NULL;
    st->emask = NULL;
    st->e_ready = 0;
    st->e_dropped = 0;
    st->n_sub = n_sub;
    const int32_t *rank_c = o->n_in > 6 && o->in[6] >= 0 ? (const int32_t *)tn_const_in(m, o, 6) : NULL;
    const int32_t *rank_r = o->n_in > 7 && o->in[7] >= 0 ? (const int32_t *)tn_const_in(m, o, 7) : NULL;
    const int32_t *mult = s->rq_mult[op] ? s->rq_mult[op] : (const int32_t *)tn_const_in(m, o, 3);
    const int32_t *shift = s->rq_shift[op] ? s->rq_shift[op] : (const int32_t *)tn_const_in(m, o, 4);
    const int8_t *w = (const int8_t *)tn_const_in(m, o, 1);
    const int32_t *bias_folded = (const int32_t *)tn_const_in(m, o, 5);
    uint8_t *p = (uint8_t *)(((uintptr_t)mem + head + 63) & ~(uintptr_t)63);
    int64_t nk_sum = 0;
    for (int r = 0; r < n_sub; r++) {
        int32_t *keep = (int32_t *)(p + (size_t)r * per);
        int nk = 0;
        for (int oc = 0; oc < g.cout; oc++) {
            int drop = 0;
            if (gran == TN_GRAN_CHANNEL)
                drop = tn_drowsy_drop(kn, s->seed, (uint32_t)op, (uint64_t)oc, rank_c);
            else if (gran == TN_GRAN_ROW)
                drop = kn->drowsy_select ? rank_r[(int64_t)r * g.cout + oc] < kn->drowsy_drop_count
                                         : tn_drowsy_drop(kn, s->seed, (uint32_t)op, (uint64_t)r * g.cout + oc, NULL);
            if (!drop) keep[nk++] = oc;
        }
        uint64_t *mask = (uint64_t *)(p + (size_t)r * per + a64((size_t)g.cout * 4));
        uint64_t *dmask = (uint64_t *)((uint8_t *)mask + a64(mwords * 8));
        memset(mask, 0, mwords * 8);
        for (int k = 0; k < nk; k++) mask[keep[k] / 64] |= 1ull << (keep[k] % 64);
        for (size_t w = 0; w < mwords; w++) {
            const int bits = g.cout - 64 * (int)w >= 64 ? 64 : g.cout - 64 * (int)w;
            dmask[w] = ~mask[w] & (bits == 64 ? ~0ull : ((1ull << bits) - 1));
        }
        int32_t *drop = keep + nk;  /* the keep list's room holds both lists */
        int nd = 0;
        for (int oc = 0; oc < g.cout; oc++)
            if (!((mask[oc / 64] >> (oc % 64)) & 1)) drop[nd++] = oc;
        st->sub[r].nk = nk;
        st->sub[r].nd = nd;
        st->sub[r].keep = keep;
        st->sub[r].drop = drop;
        st->sub[r].mask = mask;
        st->sub[r].dmask = dmask;
        nk_sum += nk;
    }
    {
        uint64_t any = 0;
        uint8_t *seen = (uint8_t *)calloc((size_t)g.cout, 1);
        if (!seen) {
            free(mem);
            return TN_ERR_NO_MEMORY;
        }
        for (int r = 0; r < n_sub; r++)
            for (int k = 0; k < st->sub[r].nk; k++) seen[st->sub[r].keep[k]] = 1;
        for (int oc = 0; oc < g.cout; oc++) any += seen[oc];
        free(seen);
        st->used_ch = gran == TN_GRAN_ELEMENT ? 0 : any;
    }
    /* the kernel expected to be faster for the channels kept on average (element: always positions) */
    const int use_px = vnni && pp->px && (gran == TN_GRAN_ELEMENT ||
                                          px_choose(&g, pp, (int)((nk_sum + n_sub - 1) / n_sub), gran == TN_GRAN_ROW));
    st->px = use_px;
    st->q16 = avx2;
    /* subsets only where they are expected to be faster than the dense kernel (without rescaling, whose
     * multipliers the dense kernel's packing lacks) */
    st->dense_mask = 0;
    if (gran != TN_GRAN_ELEMENT && !s->rq_mult[op]) {
        const int nk_avg = (int)((nk_sum + n_sub - 1) / n_sub), row = gran == TN_GRAN_ROW;
        double dense, sub;
        if (vnni) {
            dense = pp->px_dense ? px_cost(&g, pp, g.cout, 0) : q8_cost(&g, pp, g.cout, 0);
            sub = use_px ? px_cost(&g, pp, nk_avg, row) : q8_cost(&g, pp, nk_avg, row);
        } else {  /* AVX2: blocks of 8 channels */
            const int K2 = (K + 1) / 2;
            dense = (double)g.oh * g.ow * (((g.cout + 7) / 8) * (K2 + 6.0) + K / 8.0);
            sub = (double)g.oh * g.ow * (((nk_avg + 7) / 8) * (K2 + 6.0) + K / 8.0) + (row ? 40.0 * g.oh : 0.0);
        }
        st->dense_mask = sub >= 0.9 * dense;
    }
    const char *env = getenv("TUNABLE_DROWSY");  /* "mask" or "subsets" forces the choice (tests, measurements) */
    if (env && gran != TN_GRAN_ELEMENT && !s->rq_mult[op]) {
        if (!strcmp(env, "mask")) st->dense_mask = 1;
        if (!strcmp(env, "subsets")) st->dense_mask = 0;
    }
    if (pp->nodense) st->dense_mask = 0;  /* no dense packing to run */
    for (int r = 0; r < n_sub && !st->dense_mask; r++, p += per) {
        const int nk = st->sub[r].nk;
        const int32_t *keep = st->sub[r].keep;
        void *pm = (void *)(((uintptr_t)(p + a64((size_t)g.cout * 4) + 2 * a64(mwords * 8)) + 63) & ~(uintptr_t)63);
        if (avx2)
            tn_q16_pack(nk, K, w, keep, bias_folded, mult, shift, pm, &st->sub[r].hk);
        else if (use_px)
            tn_px_pack(nk, g.cout, g.kh, g.kw, g.cin, w, keep, bias_folded, mult, shift, pm, &st->sub[r].xk);
        else
            tn_q8_pack(nk, K, w, keep, bias_folded, mult, shift, pm, &st->sub[r].pk);
    }
    *out = st;
    return TN_ERR_OK;
}

#define TN_ZERO_MAX_C 1024

/* The channels of tensor t (NHWC, C channels) that hold its zero point everywhere this inference, as bits in
 * z; returns 1 when some may. Written by a CONV_2D: the channels its drowsy drops (channel granularity, exact
 * kernels, the zero point inside its activation range). Written by an ADD of two such tensors of one shape:
 * the channels zero in both (0 + 0 requantizes to the output zero point exactly, which its activation range
 * must hold). */
static int zero_channels(const tn_session *s, int32_t t, int C, uint64_t *z, int depth) {
    const tn_model *m = s->m;
    memset(z, 0, (size_t)(C + 63) / 64 * 8);
    if (t < 0 || depth > 8 || m->tensors[t].ndim != 4 || m->tensors[t].dims[3] != C) return 0;
    int w = -1;
    for (int j = 0; j < m->n_ops; j++)
        for (int k = 0; k < m->ops[j].n_out; k++)
            if (m->ops[j].out[k] == t) {
                if (w >= 0 || k != 0) return 0;
                w = j;
            }
    if (w < 0) return 0;
    const tn_op *po = &m->ops[w];
    if (po->opcode == TN_OP_CONV_2D) {
        const tn_layer_knobs *pk = &s->knobs[w];
        if (!tn_drowsy_active(pk) || pk->drowsy_granularity != TN_GRAN_CHANNEL || tn_approx_knobs_active(pk)) return 0;
        tn_conv_geom pg;
        tn_conv_geom_get(m, po, &pg);
        if (pg.out_zp < pg.act_min || pg.out_zp > pg.act_max || pg.cout != C) return 0;
        const int32_t *prank = po->n_in > 6 && po->in[6] >= 0 ? (const int32_t *)tn_const_in(m, po, 6) : NULL;
        int any = 0;
        for (int c = 0; c < C; c++)
            if (tn_drowsy_drop(pk, s->seed, (uint32_t)w, (uint64_t)c, prank)) {
                z[c / 64] |= 1ull << (c % 64);
                any = 1;
            }
        return any;
    }
    if (po->opcode == TN_OP_ADD && po->n_in == 2) {
        const tn_tensor *a = &m->tensors[po->in[0]], *b = &m->tensors[po->in[1]], *y = &m->tensors[t];
        const int32_t *p = po->p;
        for (int d = 0; d < 4; d++)
            if (a->ndim != 4 || b->ndim != 4 || a->dims[d] != y->dims[d] || b->dims[d] != y->dims[d]) return 0;
        if (p[TN_P_ADD_A_ZP] != a->zero_point || p[TN_P_ADD_B_ZP] != b->zero_point || p[TN_P_ADD_OUT_ZP] != y->zero_point ||
            p[TN_P_ADD_OUT_ZP] < p[TN_P_ADD_ACT_MIN] || p[TN_P_ADD_OUT_ZP] > p[TN_P_ADD_ACT_MAX])
            return 0;
        uint64_t zb[TN_ZERO_MAX_C / 64];
        if (!zero_channels(s, po->in[0], C, z, depth + 1) || !zero_channels(s, po->in[1], C, zb, depth + 1)) {
            memset(z, 0, (size_t)(C + 63) / 64 * 8);
            return 0;
        }
        int any = 0;
        for (int i = 0; i < (C + 63) / 64; i++) any |= (z[i] &= zb[i]) != 0;
        return any;
    }
    return 0;
}

/* The input channels that hold real zero this inference (zero_channels) skipped (conv_inskip), or NULL (*out)
 * where none are or it does not apply (this op with approximate knobs). */
static int inskip_build(tn_session *s, int op, conv_inskip **out) {
    const tn_model *m = s->m;
    const tn_op *o = &m->ops[op];
    const conv_prep *pp = (const conv_prep *)o->prepared;
    *out = NULL;
    if (!pp->xc_off || pp->producer < 0 || tn_approx_knobs_active(&s->knobs[op])) return TN_ERR_OK;
    /* "0": every input channel computed; "1": skipped wherever exact, gain or not (tests, measurements) */
    const char *env = getenv("TUNABLE_INSKIP");
    if (env && !strcmp(env, "0")) return TN_ERR_OK;
    tn_conv_geom g;
    tn_conv_geom_get(m, o, &g);
    const int cin = g.cin, taps = g.kh * g.kw, mw = (cin + 63) / 64;
    if (cin > TN_ZERO_MAX_C) return TN_ERR_OK;
    uint64_t zc[TN_ZERO_MAX_C / 64];
    if (!zero_channels(s, o->in[0], cin, zc, 0)) return TN_ERR_OK;
    int ck = 0;
    for (int ic = 0; ic < cin; ic++) ck += !((zc[ic / 64] >> (ic % 64)) & 1);
    if (ck == cin) return TN_ERR_OK;
    const int ck_alloc = ck ? ck : 1;  /* every input dropped: one (zero) channel keeps the layer well formed */
    /* constants: the kept weights, the bias folded over them, the op's other constants as they are */
    size_t cbytes = 0;
    for (int k = 0; k < o->n_in; k++)
        if (o->in[k] >= 0 && m->tensors[o->in[k]].storage == TN_STORAGE_CONST) cbytes += a64(m->tensors[o->in[k]].nbytes);
    conv_inskip *ins = (conv_inskip *)calloc(1, sizeof *ins + 2 * a64((size_t)cin * 4) + (size_t)mw * 8 + 64);
    if (!ins) return TN_ERR_NO_MEMORY;
    ins->consts = (uint8_t *)malloc(cbytes + 64);
    if (!ins->consts) {
        free(ins);
        return TN_ERR_NO_MEMORY;
    }
    ins->ikeep = (int32_t *)(ins + 1);
    int32_t *idrop = (int32_t *)((uint8_t *)ins->ikeep + a64((size_t)cin * 4));
    ins->imask = (uint64_t *)((uint8_t *)idrop + a64((size_t)cin * 4));
    int nd = 0;
    for (int ic = 0, n = 0; ic < cin; ic++)
        if (!((zc[ic / 64] >> (ic % 64)) & 1) || (ck == 0 && ic == 0)) {
            ins->ikeep[n++] = ic;
            ins->imask[ic / 64] |= 1ull << (ic % 64);
        } else {
            idrop[nd++] = ic;
        }
    ins->ck = ck = ck_alloc;
    ins->xc_off = pp->xc_off;
    ins->m.tensors = ins->t;
    ins->m.n_tensors = o->n_in + o->n_out;
    ins->m.consts = ins->consts;
    ins->m.consts_size = cbytes;
    ins->m.act_bytes = m->act_bytes;
    ins->op = *o;
    ins->op.prepared = NULL;
    ins->op.scratch_bytes = 0;
    size_t at = 0;
    const int8_t *w = (const int8_t *)tn_const_in(m, o, 1);
    for (int k = 0; k < o->n_in; k++) {
        if (o->in[k] < 0) continue;
        tn_tensor *t = &ins->t[k];
        *t = m->tensors[o->in[k]];
        ins->op.in[k] = k;
        if (k == 0) {  /* the gathered input, in this op's scratch (the arena, after the activations) */
            t->dims[3] = ck;
            t->nbytes = (uint32_t)((size_t)g.n * g.h * g.w * ck);
            t->offset = (uint32_t)(m->act_bytes + pp->xc_off);
            continue;
        }
        if (t->storage != TN_STORAGE_CONST) continue;
        uint8_t *d = ins->consts + at;
        const uint8_t *src = m->consts + t->offset;
        t->offset = (uint32_t)at;
        if (k == 1) {  /* [cout][kh][kw][cin] -> [cout][kh][kw][ck] */
            for (int64_t r = 0; r < (int64_t)g.cout * taps; r++)
                for (int i = 0; i < ck; i++) d[r * ck + i] = (uint8_t)w[r * cin + ins->ikeep[i]];
            t->dims[3] = ck;
            t->nbytes = (uint32_t)((size_t)g.cout * taps * ck);
        } else if (k == 5) {  /* bias - in_zp * sum(w - w_zp) over the kept inputs only */
            const int32_t *bf = (const int32_t *)src;
            int32_t *nb = (int32_t *)d;
            for (int oc = 0; oc < g.cout; oc++) {
                int64_t dropped = 0;
                for (int tp = 0; tp < taps; tp++) {
                    const int8_t *wr = w + ((int64_t)oc * taps + tp) * cin;
                    for (int i = 0; i < nd; i++) dropped += (int64_t)wr[idrop[i]] - g.w_zp;
                }
                const int64_t v = (int64_t)bf[oc] + (int64_t)g.in_zp * dropped;
                if (v < INT32_MIN || v > INT32_MAX) {  /* not representable: no skipping */
                    free(ins->consts);
                    free(ins);
                    return TN_ERR_OK;
                }
                nb[oc] = (int32_t)v;
            }
        } else {
            memcpy(d, src, t->nbytes);
        }
        at += a64(t->nbytes);
    }
    for (int k = 0; k < o->n_out; k++) {
        ins->t[o->n_in + k] = m->tensors[o->out[k]];
        ins->op.out[k] = o->n_in + k;
    }
    char err[256];
    int packs = tn_arch->q8_gemm ? PACK_VNNI : tn_arch->q16_gemm ? PACK_AVX2 : 0;
    {   /* drowsy subsets of rows or channels packed per seed (state_build): the dense packing is never read */
        const tn_layer_knobs *kn = &s->knobs[op];
        const char *denv = getenv("TUNABLE_DROWSY");
        if (packs && g.n == 1 && tn_drowsy_active(kn) && kn->drowsy_granularity != TN_GRAN_ELEMENT &&
            !(denv && !strcmp(denv, "mask")))
            packs |= PACK_NODENSE;
    }
    int skip = !conv_prepare_sel(&ins->m, &ins->op, err, sizeof err, packs) && ins->op.scratch_bytes <= pp->xc_off;
    if (skip && getenv("TUNABLE_INSKIP") == NULL && pp->q8) {
        /* On a CPU with VNNI (groups of 4 channels) only where the smaller layer is expected to save more than
         * the gather costs (a quarter of 16 input channels dropped, on a 32x32 input, does not). The cost model
         * of the layer's own preparation decides, whichever variant runs, so that every variant computes (and
         * counts) the same. */
        const tn_layer_knobs *kn = &s->knobs[op];
        double keep = 1.0;
        if (tn_drowsy_active(kn) && kn->drowsy_granularity != TN_GRAN_ELEMENT)
            keep = kn->drowsy_select ? 1.0 - (double)kn->drowsy_drop_count /
                                                 m->tensors[o->in[kn->drowsy_granularity == TN_GRAN_CHANNEL ? 6 : 7]].dims[0]
                                     : 1.0 - (double)kn->drowsy_threshold / 4294967296.0;
        const int nk = TN_MAX(1, (int)(g.cout * keep + 0.5)), row = kn->drowsy_granularity == TN_GRAN_ROW;
        tn_conv_geom sg;
        tn_conv_geom_get(&ins->m, &ins->op, &sg);
        const double full = TN_MIN(pp->px ? px_cost(&g, pp, nk, row) : 1e300, q8_cost(&g, pp, nk, row));
        const double small = TN_MIN(pp->px ? px_cost(&sg, pp, nk, row) : 1e300, q8_cost(&sg, pp, nk, row));
        skip = small + 0.25 * g.n * g.h * g.w * g.cin < full;
    }
    if (!skip) {
        free(ins->op.prepared);
        free(ins->consts);
        free(ins);
        return TN_ERR_OK;
    }
    *out = ins;
    return TN_ERR_OK;
}

static int conv_knobs_changed(tn_session *s, int op) {
    tn_conv_state_free(s->op_state[op]);
    s->op_state[op] = NULL;
    conv_inskip *ins;
    int rc = inskip_build(s, op, &ins);
    if (rc) return rc;
    if (!ins) return state_build(s, s->m, &s->m->ops[op], op, (conv_state **)&s->op_state[op]);
    conv_state *st = (conv_state *)calloc(1, sizeof *st);
    if (!st || (rc = state_build(s, &ins->m, &ins->op, op, &ins->inner))) {
        free(st);
        free(ins->op.prepared);
        free(ins->consts);
        free(ins);
        return rc ? rc : TN_ERR_NO_MEMORY;
    }
    st->ins = ins;
    s->op_state[op] = st;
    return TN_ERR_OK;
}

/* rows of nk computed channels (tmp) into rows of cout output channels; dropped ones hold zero_out */
static void expand_rows(int np, int nk, const int8_t *tmp, const int32_t *keep, int cout, int8_t zero_out, int8_t *y) {
    memset(y, zero_out, (size_t)np * cout);
    for (int p = 0; p < np; p++) {
        const int8_t *t = tmp + (int64_t)p * nk;
        int8_t *yp = y + (int64_t)p * cout;
        for (int j = 0; j < nk; j++) yp[keep[j]] = t[j];
    }
}

/* The packed-GEMM path (dense, channel and row drowsy). Element drowsy stays on the per-element path. */
/* blocks of output rows of the channels-in-lanes path, for threads (every block's packing known) */
typedef struct {
    const tn_ctx *c;
    const tn_conv_geom *g;
    const conv_prep *pp;
    const conv_state *st;         /* row subsets, or NULL */
    const uint8_t *xu;
    const tn_q8_packed *B;        /* the layer's packing (no row subsets) */
    const int32_t *keep;
    int8_t *yb;
    int nk, rpb, nblocks, ntasks;
    uint64_t computed[TN_MAX_THREADS], skipped[TN_MAX_THREADS];
} q8_job;

static void q8_task(void *arg, int t, int thread) {
    q8_job *j = (q8_job *)arg;
    const tn_conv_geom *g = j->g;
    const conv_prep *pp = j->pp;
    uint8_t *scr = (uint8_t *)tn_thread_scratch(j->c->s, thread);
    uint8_t *cols = scr;
    int8_t *tmp = (int8_t *)(scr + pp->q8_cols_bytes + pp->q8_sub_bytes);
    const int lda = pp->packed.K4 * 4;
    const int8_t zero_out = dropped_value(g);
    const int b0 = (int)((int64_t)j->nblocks * t / j->ntasks), b1 = (int)((int64_t)j->nblocks * (t + 1) / j->ntasks);
    uint64_t computed = 0, skipped = 0;
    for (int blk = b0; blk < b1; blk++) {
        const int oy0 = blk * j->rpb, rows = TN_MIN(j->rpb, g->oh - oy0), np = rows * g->ow;
        int8_t *yb = j->yb + (int64_t)oy0 * g->ow * g->cout;
        int nk = j->nk;
        const int32_t *keep = j->keep;
        const uint64_t *mask = j->st ? j->st->sub[0].mask : NULL;
        const tn_q8_packed *B = j->B;
        if (j->st && j->st->gran == TN_GRAN_ROW) {
            nk = j->st->sub[oy0].nk;
            keep = j->st->sub[oy0].keep;
            mask = j->st->sub[oy0].mask;
            B = &j->st->sub[oy0].pk;
        }
        skipped += (uint64_t)np * (g->cout - nk);
        if (nk == 0) {
            memset(yb, zero_out, (size_t)np * g->cout);
            continue;
        }
        /* a 1x1 stride-1 conv reads the converted input rows as they are */
        const uint8_t *A = cols;
        if (pp->direct && g->cin % 4 == 0) A = j->xu + (int64_t)oy0 * g->w * g->cin;
        else im2col_u8(g, j->xu, oy0, rows, lda, cols);
        if (nk == g->cout) {
            tn_arch->q8_gemm(np, A, lda, B, g->out_zp, g->act_min, g->act_max, yb, g->cout);
        } else {
            tn_arch->q8_gemm(np, A, lda, B, g->out_zp, g->act_min, g->act_max, tmp, nk);
            tn_arch->expand(np, tmp, nk, keep, mask, g->cout, zero_out, yb);
        }
        computed += (uint64_t)np * nk;
    }
    j->computed[t] = computed;
    j->skipped[t] = skipped;
}

static int conv_eval_q8(tn_ctx *c, const tn_conv_geom *g, const conv_prep *pp) {
    const int8_t *x = (const int8_t *)tn_in(c, 0), *w = (const int8_t *)tn_in(c, 1);
    const int32_t *rank_c = c->op->n_in > 6 && c->op->in[6] >= 0 ? (const int32_t *)tn_in(c, 6) : NULL;
    const int32_t *rank_r = c->op->n_in > 7 && c->op->in[7] >= 0 ? (const int32_t *)tn_in(c, 7) : NULL;
    const int32_t *mult = c->rq_mult ? c->rq_mult : (const int32_t *)tn_in(c, 3);
    const int32_t *shift = c->rq_shift ? c->rq_shift : (const int32_t *)tn_in(c, 4);
    const int32_t *bias_folded = (const int32_t *)tn_in(c, 5);
    int8_t *y = (int8_t *)tn_out(c, 0);
    uint8_t *scr = (uint8_t *)c->scratch;
    uint8_t *cols = scr;
    void *sub_mem = scr + pp->q8_cols_bytes;
    int8_t *tmp = (int8_t *)(scr + pp->q8_cols_bytes + pp->q8_sub_bytes);
    int32_t *keep_buf = (int32_t *)(scr + pp->q8_cols_bytes + pp->q8_sub_bytes + pp->q8_tmp_bytes);
    const int32_t *keep = keep_buf;
    uint8_t *xu = scr + pp->q8_cols_bytes + pp->q8_sub_bytes + pp->q8_tmp_bytes + (((size_t)g->cout * 5 + 63) / 64) * 64;
    const int K = g->kh * g->kw * g->cin, lda = pp->packed.K4 * 4;
    const tn_layer_knobs *kn = c->knobs;
    const int drowsy = tn_drowsy_active(kn);
    const int gran = kn->drowsy_granularity;
    const uint32_t layer = (uint32_t)c->op->index;
    const int rpb = (drowsy && gran == TN_GRAN_ROW) ? 1 : pp->rows_per_block;
    const int8_t zero_out = dropped_value(g);
    /* the plan's packing holds the plan's multipliers: rescaled ones need a per-inference packing too */
    const int repack_all = c->rq_mult != NULL;
    tn_q8_packed sub;
    const tn_q8_packed *B = &pp->packed;
    uint64_t computed = 0, skipped = 0, used_ch = 0;
    int nk = g->cout;
    const conv_state *st = (const conv_state *)c->state;
    if (st && (st->px || st->q16)) st = NULL;  /* packed for another path */
    if (st && st->gran == TN_GRAN_CHANNEL) {
        nk = st->sub[0].nk;
        keep = st->sub[0].keep;
        B = &st->sub[0].pk;
        used_ch = (uint64_t)nk;
    } else if (drowsy && gran == TN_GRAN_CHANNEL) {
        nk = 0;
        for (int oc = 0; oc < g->cout; oc++)
            if (!tn_drowsy_drop(kn, c->s->seed, layer, (uint64_t)oc, rank_c)) keep_buf[nk++] = oc;
        tn_q8_pack(nk, K, w, keep, bias_folded, mult, shift, sub_mem, &sub);
        B = &sub;
        used_ch = (uint64_t)nk;
    } else if (!drowsy && repack_all) {
        tn_q8_pack(g->cout, K, w, NULL, bias_folded, mult, shift, sub_mem, &sub);
        B = &sub;
    }
    uint8_t *used = (uint8_t *)(keep_buf + g->cout);  /* row granularity: channels used at least once */
    if (drowsy && gran == TN_GRAN_ROW) memset(used, 0, (size_t)g->cout);
    /* with every block's packing known before the run (no drowsy, or the session's subsets), the blocks of
     * rows are split among the threads */
    const int parallel = !drowsy ? !repack_all : st != NULL;
    for (int b = 0; b < g->n; b++) {
        const int8_t *xb = x + (int64_t)b * g->h * g->w * g->cin;
        const int64_t xn = (int64_t)g->h * g->w * g->cin;
        for (int64_t i = 0; i < xn; i++) xu[i] = (uint8_t)(xb[i] ^ 0x80);
        if (parallel) {
            q8_job j;
            j.c = c; j.g = g; j.pp = pp; j.st = st; j.xu = xu; j.B = B; j.nk = nk; j.keep = keep; j.rpb = rpb;
            j.yb = y + (int64_t)b * g->oh * g->ow * g->cout;
            j.nblocks = (g->oh + rpb - 1) / rpb;
            j.ntasks = TN_MIN(tn_op_threads(c, c->op->analytic_macs), j.nblocks);
            tn_parallel(c->s, j.ntasks, q8_task, &j);
            for (int t = 0; t < j.ntasks; t++) {
                computed += j.computed[t];
                skipped += j.skipped[t];
            }
            continue;
        }
        for (int oy0 = 0; oy0 < g->oh; oy0 += rpb) {
            const int rows = TN_MIN(rpb, g->oh - oy0);
            const int np = rows * g->ow;
            int8_t *yb = y + (((int64_t)b * g->oh + oy0) * g->ow) * g->cout;
            if (st && st->gran == TN_GRAN_ROW) {
                nk = st->sub[oy0].nk;
                keep = st->sub[oy0].keep;
                B = &st->sub[oy0].pk;
                for (int j = 0; j < nk; j++) used[keep[j]] = 1;
            } else if (drowsy && gran == TN_GRAN_ROW) {
                keep = keep_buf;
                nk = 0;
                for (int oc = 0; oc < g->cout; oc++) {
                    int drop = kn->drowsy_select ? rank_r[(int64_t)oy0 * g->cout + oc] < kn->drowsy_drop_count
                                                 : tn_drowsy_drop(kn, c->s->seed, layer, ((uint64_t)b * g->oh + oy0) * g->cout + oc, NULL);
                    if (!drop) { keep_buf[nk++] = oc; used[oc] = 1; }
                }
                if (nk) tn_q8_pack(nk, K, w, keep, bias_folded, mult, shift, sub_mem, &sub);
                B = &sub;
            }
            if (nk < g->cout) skipped += (uint64_t)np * (g->cout - nk);
            if (nk == 0) {
                memset(yb, zero_out, (size_t)np * g->cout);
                continue;
            }
            im2col_u8(g, xu, oy0, rows, lda, cols);
            if (nk == g->cout) {
                tn_arch->q8_gemm(np, cols, lda, B, g->out_zp, g->act_min, g->act_max, yb, g->cout);
            } else {
                tn_arch->q8_gemm(np, cols, lda, B, g->out_zp, g->act_min, g->act_max, tmp, nk);
                expand_rows(np, nk, tmp, keep, g->cout, zero_out, yb);
            }
            computed += (uint64_t)np * nk;
        }
    }
    if (!drowsy) used_ch = (uint64_t)g->cout;
    else if (gran == TN_GRAN_ROW && st) used_ch = st->used_ch;
    else if (gran == TN_GRAN_ROW) {
        used_ch = 0;
        for (int oc = 0; oc < g->cout; oc++) used_ch += used[oc];
    }
    tn_conv_count(c->ctr, computed, skipped, (uint64_t)K, used_ch);
    tn_conv_count_act(c->ctr, g);
    return TN_ERR_OK;
}

/* Padded rows [py0, py1) of one image as the positions-in-lanes planes (arch.h): uint8, the zero point in
 * the border; each input row column phase by column phase, so that a phase's columns are consecutive plane
 * entries. Rows are independent: threads build disjoint ranges. */
static void px_build(const tn_conv_geom *g, const conv_prep *pp, const int8_t *xb, uint8_t *X, int py0, int py1) {
    const uint8_t pad = (uint8_t)((int8_t)g->in_zp ^ 0x80);
    const int G = pp->px_G, Hq = pp->px_Hq, Wq = pp->px_Wq, cin = g->cin, sw = g->sw;
    const size_t plane = (size_t)Hq * Wq * 4;
    for (int py = py0; py < py1; py++) {
        const int phy = py % g->sh, qy = py / g->sh, iy = py - g->pt;
        uint8_t *base = X + ((size_t)phy * sw * G * Hq + qy) * Wq * 4;  /* phase x 0, group 0 */
        const uint8_t *used = pp->px_used + (phy * sw < 64 ? phy * sw : 0);
        for (int ph = 0; ph < sw; ph++)
            if (phy * sw + ph >= 64 || used[ph])
                for (int i = 0; i < G; i++) memset(base + (ph * G + i) * plane, pad, (size_t)Wq * 4);
        if (iy < 0 || iy >= g->h) continue;
        const int8_t *row = xb + (int64_t)iy * g->w * cin;
        for (int ph = 0; ph < sw; ph++) {
            if (phy * sw + ph < 64 && !used[ph]) continue;  /* no tap reads this phase */
            const int ix0 = ((ph - g->pl) % sw + sw) % sw, qx = (ix0 + g->pl) / sw;
            if (ix0 >= g->w || qx >= Wq) continue;
            const int cnt = TN_MIN((g->w - ix0 + sw - 1) / sw, Wq - qx);
            tn_arch->px_fill(cnt, row + (int64_t)ix0 * cin, (int64_t)sw * cin, cin, base + ph * G * plane + (size_t)qx * 4,
                             (int64_t)plane);
        }
    }
}

/* drowsy element granularity after a dense computation of rows [oy0, oy1): the dropped outputs become real
 * zero */
static uint64_t mask_elements(const tn_ctx *c, const tn_conv_geom *g, int b, int oy0, int oy1, int8_t *yb,
                              uint8_t *used) {
    const tn_layer_knobs *kn = c->knobs;
    const uint32_t layer = (uint32_t)c->op->index;
    const int8_t zero_out = dropped_value(g);
    uint64_t skipped = 0;
    int unseen = 0;
    for (int oc = 0; oc < g->cout; oc++) unseen += !used[oc];
    for (int oy = oy0; oy < oy1; oy++)  /* a row's units are consecutive */
        skipped += tn_arch->drop(g->ow * g->cout, g->cout, c->s->seed, layer, ((uint64_t)b * g->oh + oy) * g->ow * g->cout,
                                 kn->drowsy_threshold, zero_out, yb + (int64_t)oy * g->ow * g->cout, used, &unseen);
    return skipped;
}

/* one image of the positions-in-lanes path, split into tasks of consecutive rows */
typedef struct {
    const tn_ctx *c;
    const tn_conv_geom *g;
    const conv_prep *pp;
    const conv_state *st;
    const int8_t *xb;
    uint8_t *X;
    int8_t *yb;
    int b, mode, ntasks;          /* mode: 0 dense, 1 element, 2 channel, 3 row */
    size_t used_off;              /* the "used" flags in each thread's scratch */
    uint64_t computed[TN_MAX_THREADS], skipped[TN_MAX_THREADS];
} px_job;

static void px_rows(const px_job *j, int t, int n, int *r0, int *r1) {
    *r0 = (int)((int64_t)n * t / j->ntasks);
    *r1 = (int)((int64_t)n * (t + 1) / j->ntasks);
}

static void px_build_task(void *arg, int t, int thread) {
    const px_job *j = (const px_job *)arg;
    int r0, r1;
    px_rows(j, t, j->pp->px_Hq * j->g->sh, &r0, &r1);
    px_build(j->g, j->pp, j->xb, j->X, r0, r1);
    (void)thread;
}

static void px_compute_task(void *arg, int t, int thread) {
    px_job *j = (px_job *)arg;
    const tn_conv_geom *g = j->g;
    const conv_prep *pp = j->pp;
    const int C = g->cout, Wq = pp->px_Wq, ow = g->ow;
    const int8_t zero_out = dropped_value(g);
    uint8_t *scr = (uint8_t *)tn_thread_scratch(j->c->s, thread);
    uint8_t *used = scr + j->used_off;
    int8_t *tmp = (int8_t *)(scr + pp->px_x_bytes);  /* a row's compact outputs (no in-place expansion) */
    int r0, r1;
    px_rows(j, t, g->oh, &r0, &r1);
    if (r0 >= r1) return;
    uint64_t computed = 0, skipped = 0;
    if (j->mode == 3) {
        for (int oy = r0; oy < r1; oy++) {
            const conv_subset *sub = &j->st->sub[oy];
            const int nk = sub->nk;
            int8_t *yr = j->yb + (int64_t)oy * ow * C;
            skipped += (uint64_t)ow * (C - nk);
            if (!nk) {
                memset(yr, zero_out, (size_t)ow * C);
                continue;
            }
            if (sub->xk.xoff) {  /* expanded in place by the kernel */
                tn_arch->px_conv(oy * Wq, ow, Wq, ow, j->X, pp->px_koff, &sub->xk, g->out_zp, g->act_min, g->act_max, yr,
                                 C);
            } else {
                tn_arch->px_conv(oy * Wq, ow, Wq, ow, j->X, pp->px_koff, &sub->xk, g->out_zp, g->act_min, g->act_max, tmp,
                                 nk);
                tn_arch->expand(ow, tmp, nk, sub->keep, sub->mask, C, zero_out, yr);
            }
            computed += (uint64_t)ow * nk;
        }
    } else {
        const int p0 = r0 * Wq, np = (r1 - r0 - 1) * Wq + ow;
        int8_t *yr = j->yb + (int64_t)r0 * ow * C;
        const conv_subset *sub = j->mode == 2 ? &j->st->sub[0] : NULL;
        if (sub) {
            const int nk = sub->nk;
            skipped += (uint64_t)(r1 - r0) * ow * (C - nk);
            if (!nk) {
                memset(yr, zero_out, (size_t)(r1 - r0) * ow * C);
            } else if (sub->xk.xoff) {
                tn_arch->px_conv(p0, np, Wq, ow, j->X, pp->px_koff, &sub->xk, g->out_zp, g->act_min, g->act_max, yr, C);
            } else {
                for (int oy = r0; oy < r1; oy++) {  /* row by row through the compact buffer */
                    tn_arch->px_conv(oy * Wq, ow, Wq, ow, j->X, pp->px_koff, &sub->xk, g->out_zp, g->act_min, g->act_max,
                                     tmp, nk);
                    tn_arch->expand(ow, tmp, nk, sub->keep, sub->mask, C, zero_out, j->yb + (int64_t)oy * ow * C);
                }
            }
            computed += (uint64_t)(r1 - r0) * ow * nk;
        } else {
            const tn_px_packed *B = j->st ? &j->st->sub[0].xk : &pp->px_packed;
            tn_arch->px_conv(p0, np, Wq, ow, j->X, pp->px_koff, B, g->out_zp, g->act_min, g->act_max, yr, C);
            computed += (uint64_t)(r1 - r0) * ow * C;
            if (j->mode == 1) {
                const uint64_t sk = mask_elements(j->c, g, j->b, r0, r1, j->yb, used);
                skipped += sk;
                computed -= sk;
            }
        }
    }
    j->computed[t] = computed;
    j->skipped[t] = skipped;
}

/* The positions-in-lanes path: dense, element drowsy (dense, then masked), channel and row drowsy (the
 * session's subsets). Returns TN_ERR_UNSUPPORTED where the knobs need state the session lacks. */
static int conv_eval_px(tn_ctx *c, const tn_conv_geom *g, const conv_prep *pp) {
    const tn_layer_knobs *kn = c->knobs;
    const int drowsy = tn_drowsy_active(kn), gran = kn->drowsy_granularity;
    const conv_state *st = (const conv_state *)c->state;
    if (st && !st->px) return TN_ERR_UNSUPPORTED;
    if (drowsy && (gran != TN_GRAN_ELEMENT || c->rq_mult) && !st) return TN_ERR_UNSUPPORTED;
    const int8_t *x = (const int8_t *)tn_in(c, 0);
    int8_t *y = (int8_t *)tn_out(c, 0);
    const int C = g->cout, K = g->kh * g->kw * g->cin, T = tn_op_threads(c, c->op->analytic_macs);
    px_job j;
    j.c = c;
    j.g = g;
    j.pp = pp;
    j.st = st;
    j.X = (uint8_t *)c->scratch;
    j.mode = !drowsy ? 0 : gran == TN_GRAN_ELEMENT ? 1 : gran == TN_GRAN_CHANNEL ? 2 : 3;
    j.used_off = pp->px_x_bytes + pp->px_tmp_bytes;
    for (int th = 0; th < T; th++) memset((uint8_t *)tn_thread_scratch(c->s, th) + j.used_off, 0, (size_t)C);
    uint64_t computed = 0, skipped = 0;
    for (int b = 0; b < g->n; b++) {
        j.b = b;
        j.xb = x + (int64_t)b * g->h * g->w * g->cin;
        j.yb = y + (int64_t)b * g->oh * g->ow * C;
        j.ntasks = TN_MIN(T, pp->px_Hq * g->sh);
        tn_parallel(c->s, j.ntasks, px_build_task, &j);
        j.ntasks = TN_MIN(T, g->oh);
        tn_parallel(c->s, j.ntasks, px_compute_task, &j);
        for (int t = 0; t < j.ntasks; t++) {
            computed += j.computed[t];
            skipped += j.skipped[t];
        }
    }
    uint8_t *used = (uint8_t *)c->scratch + j.used_off;
    uint64_t used_ch = 0;
    if (j.mode == 0) {
        used_ch = (uint64_t)C;
    } else if (j.mode >= 2) {
        used_ch = st->used_ch;
    } else {
        for (int th = 1; th < T; th++) {
            const uint8_t *u = (const uint8_t *)tn_thread_scratch(c->s, th) + j.used_off;
            for (int oc = 0; oc < C; oc++) used[oc] |= u[oc];
        }
        for (int oc = 0; oc < C; oc++) used_ch += used[oc];
    }
    tn_conv_count(c->ctr, computed, skipped, (uint64_t)K, used_ch);
    tn_conv_count_act(c->ctr, g);
    return TN_ERR_OK;
}

/* im2col into int16 rows of lda values (the AVX2 packed GEMM): the int8 values as they are, the input zero
 * point at padding taps, zero past K */
static void im2col_i16(const tn_conv_geom *g, const int8_t *xb, int oy0, int rows, int lda, int16_t *dst) {
    const int K = g->kh * g->kw * g->cin;
    for (int r = 0; r < rows; r++) {
        const int oy = oy0 + r;
        for (int ox = 0; ox < g->ow; ox++) {
            int16_t *row = dst + ((int64_t)r * g->ow + ox) * lda, *d = row;
            for (int ky = 0; ky < g->kh; ky++) {
                const int iy = oy * g->sh - g->pt + ky * g->dh;
                for (int kx = 0; kx < g->kw; kx++, d += g->cin) {
                    const int ix = ox * g->sw - g->pl + kx * g->dw;
                    if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) {
                        for (int i = 0; i < g->cin; i++) d[i] = (int16_t)g->in_zp;
                    } else {
                        const int8_t *sp = xb + ((int64_t)iy * g->w + ix) * g->cin;
                        for (int i = 0; i < g->cin; i++) d[i] = sp[i];
                    }
                }
            }
            for (int k = K; k < lda; k++) row[k] = 0;
        }
    }
}

/* blocks of output rows of the AVX2 packed path */
typedef struct {
    const tn_ctx *c;
    const tn_conv_geom *g;
    const conv_prep *pp;
    const conv_state *st;
    const int8_t *xb;
    int8_t *yb;
    int b, mode, rpb, nblocks, ntasks;   /* mode: 0 dense, 1 element, 2 channel, 3 row */
    uint64_t computed[TN_MAX_THREADS], skipped[TN_MAX_THREADS];
} q16_job;

static void q16_task(void *arg, int t, int thread) {
    q16_job *j = (q16_job *)arg;
    const tn_conv_geom *g = j->g;
    const conv_prep *pp = j->pp;
    uint8_t *scr = (uint8_t *)tn_thread_scratch(j->c->s, thread);
    int16_t *cols = (int16_t *)scr;
    int8_t *tmp = (int8_t *)(scr + pp->q16_cols_bytes);
    uint8_t *used = scr + pp->q16_cols_bytes + pp->q16_tmp_bytes + a64((size_t)g->cout * 4);
    const int lda = pp->q16pk.K2 * 2, C = g->cout;
    const int8_t zero_out = dropped_value(g);
    const int b0 = (int)((int64_t)j->nblocks * t / j->ntasks), b1 = (int)((int64_t)j->nblocks * (t + 1) / j->ntasks);
    uint64_t computed = 0, skipped = 0;
    for (int blk = b0; blk < b1; blk++) {
        const int oy0 = blk * j->rpb, rows = TN_MIN(j->rpb, g->oh - oy0), np = rows * g->ow;
        int8_t *yb = j->yb + (int64_t)oy0 * g->ow * C;
        const conv_subset *sub = j->mode == 2 ? &j->st->sub[0] : j->mode == 3 ? &j->st->sub[oy0] : NULL;
        const int nk = sub ? sub->nk : C;
        const tn_q16_packed *B = sub ? &sub->hk : j->st ? &j->st->sub[0].hk : &pp->q16pk;
        skipped += (uint64_t)np * (C - nk);
        if (nk == 0) {
            memset(yb, zero_out, (size_t)np * C);
            continue;
        }
        im2col_i16(g, j->xb, oy0, rows, lda, cols);
        if (!sub) {
            tn_arch->q16_gemm(np, cols, lda, B, g->out_zp, g->act_min, g->act_max, yb, C);
            computed += (uint64_t)np * C;
            if (j->mode == 1) {
                int unseen = 0;
                for (int oc = 0; oc < C; oc++) unseen += !used[oc];
                const uint64_t sk = tn_arch->drop(np * C, C, j->c->s->seed, (uint32_t)j->c->op->index,
                                                  ((uint64_t)j->b * g->oh + oy0) * g->ow * C,
                                                  j->c->knobs->drowsy_threshold, zero_out, yb, used, &unseen);
                skipped += sk;
                computed -= sk;
            }
            continue;
        }
        tn_arch->q16_gemm(np, cols, lda, B, g->out_zp, g->act_min, g->act_max, tmp, nk);
        tn_arch->expand(np, tmp, nk, sub->keep, sub->mask, C, zero_out, yb);
        computed += (uint64_t)np * nk;
    }
    j->computed[t] = computed;
    j->skipped[t] = skipped;
}

/* The AVX2 packed path: dense, element (dense, then masked), channel and row drowsy (the session's
 * subsets); TN_ERR_UNSUPPORTED where the knobs need state the session lacks */
static int conv_eval_q16(tn_ctx *c, const tn_conv_geom *g, const conv_prep *pp) {
    const tn_layer_knobs *kn = c->knobs;
    const int drowsy = tn_drowsy_active(kn), gran = kn->drowsy_granularity;
    const conv_state *st = (const conv_state *)c->state;
    if (st && !st->q16) return TN_ERR_UNSUPPORTED;
    if (drowsy && (gran != TN_GRAN_ELEMENT || c->rq_mult) && !st) return TN_ERR_UNSUPPORTED;
    const int C = g->cout, K = g->kh * g->kw * g->cin, T = tn_op_threads(c, c->op->analytic_macs);
    q16_job j;
    j.c = c;
    j.g = g;
    j.pp = pp;
    j.st = st;
    j.mode = !drowsy ? 0 : gran == TN_GRAN_ELEMENT ? 1 : gran == TN_GRAN_CHANNEL ? 2 : 3;
    j.rpb = j.mode == 3 ? 1 : pp->rows_per_block;
    j.nblocks = (g->oh + j.rpb - 1) / j.rpb;
    j.ntasks = TN_MIN(T, j.nblocks);
    const size_t used_off = pp->q16_cols_bytes + pp->q16_tmp_bytes + a64((size_t)C * 4);
    for (int th = 0; th < T; th++) memset((uint8_t *)tn_thread_scratch(c->s, th) + used_off, 0, (size_t)C);
    uint64_t computed = 0, skipped = 0;
    for (int b = 0; b < g->n; b++) {
        j.b = b;
        j.xb = (const int8_t *)tn_in(c, 0) + (int64_t)b * g->h * g->w * g->cin;
        j.yb = (int8_t *)tn_out(c, 0) + (int64_t)b * g->oh * g->ow * C;
        tn_parallel(c->s, j.ntasks, q16_task, &j);
        for (int t = 0; t < j.ntasks; t++) {
            computed += j.computed[t];
            skipped += j.skipped[t];
        }
    }
    uint8_t *used = (uint8_t *)c->scratch + used_off;
    uint64_t used_ch = 0;
    if (j.mode == 0) {
        used_ch = (uint64_t)C;
    } else if (j.mode >= 2) {
        used_ch = st->used_ch;
    } else {
        for (int th = 1; th < T; th++) {
            const uint8_t *u = (const uint8_t *)tn_thread_scratch(c->s, th) + used_off;
            for (int oc = 0; oc < C; oc++) used[oc] |= u[oc];
        }
        for (int oc = 0; oc < C; oc++) used_ch += used[oc];
    }
    tn_conv_count(c->ctr, computed, skipped, (uint64_t)K, used_ch);
    tn_conv_count_act(c->ctr, g);
    return TN_ERR_OK;
}

/* blocks of output rows of the portable im2col + GEMM path (every variant without a packed kernel) */
typedef struct {
    const tn_ctx *c;
    const tn_conv_geom *g;
    const conv_prep *pp;
    const int8_t *xb;
    const int32_t *keep_all;      /* dense, element and channel drowsy: the channels computed */
    int nk_all, b, rpb, nblocks, ntasks;
    uint64_t computed[TN_MAX_THREADS], skipped[TN_MAX_THREADS];
} gen_job;

static void gen_task(void *arg, int t, int thread) {
    gen_job *j = (gen_job *)arg;
    const tn_ctx *c = j->c;
    const tn_conv_geom g = *j->g;
    const conv_prep *pp = j->pp;
    const int8_t *w = (const int8_t *)tn_in(c, 1);
    const int32_t *bias = (const int32_t *)tn_in(c, 5), *mult = c->rq_mult ? c->rq_mult : (const int32_t *)tn_in(c, 3);
    const int32_t *shift = c->rq_shift ? c->rq_shift : (const int32_t *)tn_in(c, 4);
    const int32_t *rank_r = c->op->n_in > 7 && c->op->in[7] >= 0 ? (const int32_t *)tn_in(c, 7) : NULL;
    int8_t *y = (int8_t *)tn_out(c, 0);
    uint8_t *scr = (uint8_t *)tn_thread_scratch(c->s, thread);
    int8_t *cols = (int8_t *)scr;
    int32_t *acc = (int32_t *)(scr + pp->im2col_bytes);
    int32_t *keep_row = (int32_t *)(scr + pp->im2col_bytes + pp->acc_bytes);
    uint8_t *used = (uint8_t *)(keep_row + g.cout);
    const int K = g.kh * g.kw * g.cin, b = j->b;
    const tn_layer_knobs *kn = c->knobs;
    const int drowsy = tn_drowsy_active(kn);
    const int gran = kn->drowsy_granularity;
    const uint32_t layer = (uint32_t)c->op->index;
    const uint64_t seed = c->s->seed;
    const int8_t zero_out = dropped_value(&g);
    const int8_t *xb = j->xb;
    const int b0 = (int)((int64_t)j->nblocks * t / j->ntasks), b1 = (int)((int64_t)j->nblocks * (t + 1) / j->ntasks);
    uint64_t computed = 0, skipped = 0;
    for (int blk = b0; blk < b1; blk++) {
        const int oy0 = blk * j->rpb;
        const int rows = TN_MIN(j->rpb, g.oh - oy0);
        const int np = rows * g.ow;
        int nk = j->nk_all;
        const int32_t *keep = j->keep_all;
        if (drowsy && gran == TN_GRAN_ROW) {
            nk = 0;
            for (int oc = 0; oc < g.cout; oc++) {
                int drop = kn->drowsy_select ? rank_r[(int64_t)oy0 * g.cout + oc] < kn->drowsy_drop_count
                                             : tn_drowsy_drop(kn, seed, layer, ((uint64_t)b * g.oh + oy0) * g.cout + oc, NULL);
                if (!drop) keep_row[nk++] = oc;
            }
            keep = keep_row;
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
            for (int jj = 0; jj < nk; jj++) {
                const int oc = keep[jj];
                yp[oc] = tn_requant(ap[jj] + bias[oc], mult[oc], shift[oc], g.out_zp, g.act_min, g.act_max);
            }
        }
        for (int jj = 0; jj < nk; jj++) used[keep[jj]] = 1;
        computed += (uint64_t)np * nk;
    }
    j->computed[t] = computed;
    j->skipped[t] = skipped;
}

static int conv_eval(tn_ctx *c);

/* the plain kernel on the layer's buffers, as with every knob off (the dense first half of dense-then-drop) */
static int conv_eval_knobs_off(const tn_ctx *c) {
    tn_layer_knobs off;
    memset(&off, 0, sizeof off);
    tn_ctx dense = *c;
    dense.knobs = &off;
    dense.state = NULL;
    return conv_eval(&dense);
}

/* drowsy rows or channels where subsets would not pay: the dense kernel, then the dropped outputs zeroed;
 * the counters count what the knob computes (the kept outputs) */
static int conv_eval_dense_mask(tn_ctx *c, const tn_conv_geom *g, const conv_state *st) {
    const int rc = conv_eval_knobs_off(c);
    if (rc) return rc;
    int8_t *y = (int8_t *)tn_out(c, 0);
    const int8_t zero_out = dropped_value(g);
    const int C = g->cout, K = g->kh * g->kw * g->cin;
    uint64_t computed = 0, skipped = 0;
    for (int b = 0; b < g->n; b++)
        for (int oy = 0; oy < g->oh; oy++) {
            const conv_subset *sub = &st->sub[st->gran == TN_GRAN_ROW ? oy : 0];
            tn_arch->zero_ch(g->ow, sub->drop, sub->nd, sub->dmask, C, zero_out, y + ((int64_t)b * g->oh + oy) * g->ow * C);
            computed += (uint64_t)g->ow * sub->nk;
            skipped += (uint64_t)g->ow * sub->nd;
        }
    tn_conv_count(c->ctr, computed, skipped, (uint64_t)K, st->used_ch);
    return TN_ERR_OK;
}

/* the layer over the kept input channels (conv_inskip): those gathered, then the smaller layer; the
 * counters are the smaller layer's (the MACs executed) but for the input bytes, read whole */
static int conv_eval_inskip(tn_ctx *c, const conv_inskip *ins) {
    tn_conv_geom g;
    tn_conv_geom_get(c->m, c->op, &g);
    const int8_t *x = (const int8_t *)tn_in(c, 0);
    uint8_t *xc = (uint8_t *)c->scratch + ins->xc_off;
    const int ck = ins->ck, n = g.n * g.h * g.w;
    if (tn_arch->gather) {
        tn_arch->gather(n, x, g.cin, ins->ikeep, ins->imask, g.cin, ck, 0, xc);
    } else {
        for (int p = 0; p < n; p++)
            for (int i = 0; i < ck; i++) xc[(int64_t)p * ck + i] = (uint8_t)x[(int64_t)p * g.cin + ins->ikeep[i]];
    }
    tn_ctx sc = *c;
    sc.m = &ins->m;
    sc.op = &ins->op;
    sc.state = ins->inner;
    const int rc = conv_eval(&sc);
    c->ctr->act_bytes_in = (uint64_t)g.n * g.h * g.w * g.cin;
    return rc;
}

/* drowsy elements by the mask made with the seed: the dense kernel, then the dropped outputs set to real zero;
 * the counters count what the knob computes (the kept outputs) */
static int conv_eval_emask(tn_ctx *c, const tn_conv_geom *g, conv_state *st) {
    if (st->e_ready < 2) {  /* drowsy.h's hash, vectorised: the dropped bytes of an all-0xFF mask become 0 */
        const int64_t n = (int64_t)g->n * g->oh * g->ow * g->cout, row = (int64_t)g->ow * g->cout;
        uint8_t *used = st->emask + a64((size_t)n);
        memset(st->emask, 0xFF, (size_t)n);
        memset(used, 0, (size_t)g->cout);
        int unseen = g->cout;
        st->e_dropped = 0;
        for (int64_t r = 0; r < (int64_t)g->n * g->oh; r++)
            st->e_dropped += tn_arch->drop((int)row, g->cout, c->s->seed, (uint32_t)c->op->index, (uint64_t)(r * row),
                                           c->knobs->drowsy_threshold, 0, (int8_t *)st->emask + r * row, used, &unseen);
        st->used_ch = (uint64_t)(g->cout - unseen);
        st->e_ready = 2;
    }
    const int rc = conv_eval_knobs_off(c);
    if (rc) return rc;
    const int64_t n = (int64_t)g->n * g->oh * g->ow * g->cout;
    tn_arch->mask_bytes(n, st->emask, dropped_value(g), (int8_t *)tn_out(c, 0));
    const uint64_t K = (uint64_t)g->kh * g->kw * g->cin, computed = (uint64_t)n - st->e_dropped;
    tn_conv_count(c->ctr, computed, st->e_dropped, K, st->used_ch);
    return TN_ERR_OK;
}

static int conv_eval(tn_ctx *c) {
    tn_conv_geom g;
    tn_conv_geom_get(c->m, c->op, &g);
    if (tn_approx_knobs_active(c->knobs)) return tn_conv_eval_approx(c, &g);
    if (c->state && ((const conv_state *)c->state)->ins) return conv_eval_inskip(c, ((const conv_state *)c->state)->ins);
    if (c->state && ((const conv_state *)c->state)->emask && !tn_arch->reference && tn_arch->mask_bytes &&
        tn_drowsy_active(c->knobs) && c->knobs->drowsy_granularity == TN_GRAN_ELEMENT)
    {
        conv_state *st = (conv_state *)c->state;  /* the mask is filled on the second inference with the seed */
        if (st->e_ready == 0) {
            st->e_ready = 1;
            tn_ctx plain = *c;
            plain.state = NULL;
            return conv_eval(&plain);
        }
        return conv_eval_emask(c, &g, st);
    }
    if (tn_arch->reference || g.w_zp != 0) return conv_reference(c, &g);
    const conv_prep *pp = (const conv_prep *)c->op->prepared;
    {
        const conv_state *st = (const conv_state *)c->state;
        if (st && st->dense_mask && tn_arch->zero_ch && tn_drowsy_active(c->knobs)) return conv_eval_dense_mask(c, &g, st);
    }
    if (pp->px && tn_arch->px_conv) {
        const conv_state *st = (const conv_state *)c->state;
        const int drowsy = tn_drowsy_active(c->knobs);
        if ((st && st->px) || (drowsy && c->knobs->drowsy_granularity == TN_GRAN_ELEMENT) || (!drowsy && pp->px_dense)) {
            const int rc = conv_eval_px(c, &g, pp);
            if (rc != TN_ERR_UNSUPPORTED) return rc;
        }
    }
    if (pp->q8 && tn_arch->q8_gemm && !(tn_drowsy_active(c->knobs) && c->knobs->drowsy_granularity == TN_GRAN_ELEMENT))
        return conv_eval_q8(c, &g, pp);
    if (pp->q16 && tn_arch->q16_gemm) {
        const int rc = conv_eval_q16(c, &g, pp);
        if (rc != TN_ERR_UNSUPPORTED) return rc;
    }
    const int8_t *x = (const int8_t *)tn_in(c, 0);
    const int32_t *rank_c = c->op->n_in > 6 && c->op->in[6] >= 0 ? (const int32_t *)tn_in(c, 6) : NULL;
    uint8_t *scr = (uint8_t *)c->scratch;
    int32_t *keep = (int32_t *)(scr + pp->im2col_bytes + pp->acc_bytes);
    const int K = g.kh * g.kw * g.cin, T = tn_op_threads(c, c->op->analytic_macs);
    const tn_layer_knobs *kn = c->knobs;
    const int drowsy = tn_drowsy_active(kn);
    const int gran = kn->drowsy_granularity;
    const uint32_t layer = (uint32_t)c->op->index;
    uint64_t computed = 0, skipped = 0;
    for (int th = 0; th < T; th++)
        memset((uint8_t *)tn_thread_scratch(c->s, th) + pp->im2col_bytes + pp->acc_bytes + (size_t)g.cout * 4, 0,
               (size_t)g.cout);
    int nk_all = 0;
    if (!drowsy || gran == TN_GRAN_ELEMENT) {
        for (int oc = 0; oc < g.cout; oc++) keep[nk_all++] = oc;
    } else if (gran == TN_GRAN_CHANNEL) {
        for (int oc = 0; oc < g.cout; oc++)
            if (!tn_drowsy_drop(kn, c->s->seed, layer, (uint64_t)oc, rank_c)) keep[nk_all++] = oc;
    }
    gen_job j;
    j.c = c;
    j.g = &g;
    j.pp = pp;
    j.keep_all = keep;
    j.nk_all = nk_all;
    j.rpb = (drowsy && gran == TN_GRAN_ROW) ? 1 : pp->rows_per_block;
    j.nblocks = (g.oh + j.rpb - 1) / j.rpb;
    j.ntasks = TN_MIN(T, j.nblocks);
    for (int b = 0; b < g.n; b++) {
        j.b = b;
        j.xb = x + (int64_t)b * g.h * g.w * g.cin;
        tn_parallel(c->s, j.ntasks, gen_task, &j);
        for (int t = 0; t < j.ntasks; t++) {
            computed += j.computed[t];
            skipped += j.skipped[t];
        }
    }
    uint8_t *used = (uint8_t *)(keep + g.cout);
    for (int th = 1; th < T; th++) {
        const uint8_t *u = (const uint8_t *)tn_thread_scratch(c->s, th) + pp->im2col_bytes + pp->acc_bytes + (size_t)g.cout * 4;
        for (int oc = 0; oc < g.cout; oc++) used[oc] |= u[oc];
    }
    uint64_t used_ch = 0;
    for (int oc = 0; oc < g.cout; oc++) used_ch += used[oc];
    tn_conv_count(c->ctr, computed, skipped, (uint64_t)K, used_ch);
    tn_conv_count_act(c->ctr, &g);
    return TN_ERR_OK;
}

const tn_kernel tn_kernel_conv2d = {"CONV_2D", conv_prepare, conv_eval, conv_knobs_changed};
