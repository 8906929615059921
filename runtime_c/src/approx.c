/* Approximate-computing knob paths beside the exact kernels (knobs.md): look-up tables (DietCNN), pruning and
 * weight LSB drop (Sarwar et al.), the CONV+ReLU sign preview (AIP's idea on conv) and sign-ordered exact
 * early termination (SnaPEA). One row engine serves CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: for
 * every output element the kernel gathers the K inputs of its receptive field (conv: an im2col row shared
 * by all channels of a pixel; depthwise: the taps of one channel; fc: the input row), and ax_output
 * computes that element from its row's weights in the order the active knob needs.
 *
 * Arithmetic, per knob (w = the stored int8 weight, x - zp the centred input, exact int32 accumulation,
 * then the layer's normal requantization, with the session's drowsy-rescaled multipliers when set):
 * - weight_lsb_drop t: w is read as w & ~(2^t - 1) (two's complement: rounds toward minus infinity, so
 *   -1 -> -2^t and 127 -> 128 - 2^t).
 * - prune tau: weights with |w| <= tau (before the LSB drop) are skipped; the kept ones are a prefix of each
 *   sign group of the SORTED artefact, so no weight below the threshold is read.
 * - sign_exact: positives first, then negatives (SORTED order); when every input of the element is at or
 *   above the input zero point the partial sum after the positives only decreases, so accumulation stops
 *   as soon as it is at or below T[r], the largest accumulator that still requantizes to act_min (found by
 *   binary search: requantization is monotone), and the element is act_min, exactly what the full sum
 *   gives. Elements with an input below the zero point are accumulated in full.
 * - conv_preview P = plen[q]: the row's PREVIEW order is accumulated in stages, checked at the tabulated
 *   prefix lengths plen[q], plen[q + 1], ... below K (P first, then every 1/steps of K): at each the
 *   estimate is bias + partial + rest[r][j] (a calibration quantile of the remainder, or its mean plus a
 *   margin of standard deviations, from the artefact); the first time it is at or below T[r] the element is
 *   emitted as act_min and the rest of its MACs are not executed; otherwise it is completed exactly. (A
 *   single check at P, measured first on ResNet-8, skipped far fewer elements at the same error rate: clear
 *   cases stop at the first stage, borderline ones see more of the sum.) (Scaling the partial sum
 *   by K / P, as AIP does for FC rows, was measured first: with importance-ordered positions it overshoots
 *   and mispredicts 10-25 % of ResNet-8's conv outputs.)
 * - lut: every product is P[b][a][k] from the LUT artefact (a = activation index, k = weight index,
 *   b = the row's codebook), accumulated on the configuration's bias.
 * - residual link (CONV_2D whose output feeds only an ADD with a clamping activation, input `residual` =
 *   the ADD's other operand, computed earlier; see planspec.py): conv_preview and sign_exact predict the
 *   ADD's clamp instead of the conv's own. For residual value v, Y[v] = the largest conv output in
 *   [act_min, act_max] for which the ADD gives its act_min (ADD is monotone in each input; none: no early
 *   exit), and the element's threshold is T(r, Y[v]) = the largest accumulator that requantizes to at most
 *   Y[v] (same bisection, cached per row and level in scratch). A skipped element is written as the conv's
 *   act_min <= Y[v], so the ADD output is act_min, as with the full sum; the conv's own output tensor differs
 *   there (it feeds nothing else: the loader checks).
 * Drowsy-dropped elements are decided first and never computed.
 *
 * Counters (exact counts of what ran): macs = products accumulated; mults = macs (0 for lut); adds = macs;
 * lut_lookups = table reads (products, plus one activation-map read per gathered input when K_a < 256);
 * requant_ops = elements requantized; outputs_skipped = drowsy drops + preview skips + sign_exact early
 * exits (their remaining MACs and the requantization not done); weight_bytes = the weight payload read:
 * per row the largest prefix of its order any element read (rows are reused across pixels), at (8 - t)/8
 * byte per weight (bit planes), plus the index bytes of SORTED / PREVIEW orders (1 when K <= 256, else 2);
 * for lut, ceil(log2 K_w) bits per weight index (the codebook and tables are counted as lut_lookups). */
#include <string.h>
#include "approx.h"
#include "artefacts.h"
#include "drowsy.h"
#include "requant.h"

enum { M_DENSE = 0, M_SORTED = 1, M_PREVIEW = 2, M_LUT = 3 };

typedef struct {
    int rows, K, mode;
    const int8_t *w;
    int64_t rs, cs;                      /* position j of row r is w[r * rs + j * cs] */
    const int32_t *bias, *mult, *shift;
    int32_t zp, out_zp, lo, hi;
    int32_t mask;                        /* weight_lsb_drop */
    int tau, P, pq, sign_exact, lsb;
    tn_af_view v;
    tn_af_lut lut;
    int32_t *T, *Tok, *kpos, *kneg, *touched;  /* per row, in scratch */
    int linked;                          /* residual link in use (conv_preview / sign_exact on a linked conv) */
    const int8_t *res;                   /* the residual tensor */
    int16_t ymax[256];                   /* per residual value + 128: Y (see the header), -32768 = none */
    int32_t *Tl;                         /* [rows][256] thresholds per level, in scratch */
    uint8_t *Tlok;                       /* [rows][256]: 0 not computed, 1 ok, 2 no threshold */
    uint64_t macs, lookups, computed, skipped;
} ax_t;

/* ---------------------------------------------------------------- setup */

/* scratch: the gathered inputs (K bytes), the same centred as int16 (2K bytes), 5 int32 per row; with a
 * residual link also 256 int32 + 256 bytes per row (thresholds per level) */
static size_t pad64(size_t n) { return (n + 63) / 64 * 64; }

static void scratch_layout(int K, uint8_t *base, uint8_t **xbuf, int16_t **xc, int32_t **per_row) {
    *xbuf = base;
    *xc = (int16_t *)(base + pad64((size_t)K));
    *per_row = (int32_t *)(base + pad64((size_t)K) + pad64(2 * (size_t)K));
}

static size_t scratch_need(int K, int rows, int linked) {
    return pad64((size_t)K) + pad64(2 * (size_t)K) + pad64(5 * 4 * (size_t)rows) + (linked ? 256 * 5 * (size_t)rows : 0) + 64;
}

/* xc = x - zp over the gathered inputs; returns 1 when all are >= 0 */
static inline int centre(const int8_t *x, int K, int32_t zp, int16_t *xc) {
    int nonneg = 1;
    for (int j = 0; j < K; j++) {
        xc[j] = (int16_t)((int32_t)x[j] - zp);
        nonneg &= xc[j] >= 0;
    }
    return nonneg;
}

static int32_t mbqm_out(int64_t acc, int32_t mult, int32_t shift, int32_t zp) {
    return tn_mbqm((int32_t)acc, mult, shift) + zp;
}

/* T = the largest accumulator that requantizes to act_min, over the range an accumulator of K terms can
 * take (|w| <= 128, |x - zp| <= 255); ok = 0 when none does, or when the left shift could wrap there
 * (requantization is monotone only without wrap-around). */
static void clamp_threshold(int64_t bias, int K, int32_t mult, int32_t shift, int32_t zp, int32_t lo, int32_t *T,
                            int32_t *ok) {
    const int64_t span = (int64_t)K * 255 * 128;
    int64_t A = bias - span, B = bias + span;
    if (A < INT32_MIN) A = INT32_MIN;
    if (B > INT32_MAX) B = INT32_MAX;
    if (shift > 0) {
        const int64_t lim = ((int64_t)1 << (31 - shift)) - 1;
        if (A < -lim || B > lim) { *ok = 0; *T = 0; return; }
    }
    if (mbqm_out(A, mult, shift, zp) > lo) { *ok = 0; *T = 0; return; }
    int64_t a = A, b = B;  /* invariant: out(a) <= lo; out(b) > lo unless b == B */
    if (mbqm_out(B, mult, shift, zp) <= lo) a = B;
    while (b - a > 1) {
        const int64_t m = a + (b - a) / 2;
        if (mbqm_out(m, mult, shift, zp) <= lo) a = m; else b = m;
    }
    *T = (int32_t)a;
    *ok = 1;
}

/* number of entries among order[base + from .. base + to) (one sign group, |w| non-increasing) with |w| > tau */
static int kept_prefix(const ax_t *a, int r, int from, int to) {
    int lo = from, hi = to;  /* first entry with |w| <= tau */
    while (lo < hi) {
        const int mid = lo + (hi - lo) / 2;
        const int p = tn_af_idx(&a->v, a->v.sorted, (int64_t)r * a->K + mid);
        int32_t w = a->w[(int64_t)r * a->rs + (int64_t)p * a->cs];
        if (w < 0) w = -w;
        if (w > a->tau) lo = mid + 1; else hi = mid;
    }
    return lo - from;
}

/* Reads the layer and the knobs into *a; per-row state goes to per_row (5 * rows int32). */
static int ax_setup(tn_ctx *c, ax_t *a, int rows, int K, int64_t rs, int64_t cs, int32_t zp, int32_t out_zp,
                    int32_t lo, int32_t hi, int32_t *per_row) {
    const tn_layer_knobs *kn = c->knobs;
    memset(a, 0, sizeof *a);
    a->rows = rows;
    a->K = K;
    a->w = (const int8_t *)tn_in(c, 1);
    a->rs = rs;
    a->cs = cs;
    a->bias = (const int32_t *)tn_in(c, 2);
    a->mult = c->rq_mult ? c->rq_mult : (const int32_t *)tn_in(c, 3);
    a->shift = c->rq_shift ? c->rq_shift : (const int32_t *)tn_in(c, 4);
    a->zp = zp;
    a->out_zp = out_zp;
    a->lo = lo;
    a->hi = hi;
    a->lsb = kn->weight_lsb_drop;
    a->mask = (int32_t)~((1u << kn->weight_lsb_drop) - 1u);
    a->tau = kn->prune_threshold;
    a->sign_exact = kn->sign_exact;
    a->T = per_row;
    a->Tok = per_row + rows;
    a->kpos = per_row + 2 * rows;
    a->kneg = per_row + 3 * rows;
    a->touched = per_row + 4 * rows;
    memset(a->touched, 0, (size_t)rows * 4);
    size_t blob_size = 0;
    const uint8_t *blob = tn_af_blob(c->m, c->op, &blob_size);
    if (blob) tn_af_parse(blob, &a->v);
    if (kn->lut_enable) {
        if (!blob || !tn_af_lut_find(&a->v, kn->lut_enable, &a->lut))
            return tn_op_fail(c->s->err, sizeof c->s->err, c->op, TN_ERR_BAD_KNOB, "lut configuration %d is not in the plan",
                              kn->lut_enable);
        a->mode = M_LUT;
        a->bias = a->lut.bias;
        return TN_ERR_OK;
    }
    if (kn->conv_preview_cin) {
        if (!blob || !a->v.preview)
            return tn_op_fail(c->s->err, sizeof c->s->err, c->op, TN_ERR_BAD_KNOB, "conv preview needs the plan's PREVIEW artefact");
        a->mode = M_PREVIEW;
        a->P = kn->conv_preview_cin;
        a->pq = tn_af_preview_q(&a->v, a->P);
        if (a->pq < 0)
            return tn_op_fail(c->s->err, sizeof c->s->err, c->op, TN_ERR_BAD_KNOB,
                              "conv preview over %d positions: not one of the plan's tabulated prefix lengths", a->P);
    } else if (kn->prune_threshold || kn->sign_exact) {
        if (!blob || !a->v.sorted)
            return tn_op_fail(c->s->err, sizeof c->s->err, c->op, TN_ERR_BAD_KNOB, "prune and sign_exact need the plan's SORTED artefact");
        a->mode = M_SORTED;
        for (int r = 0; r < rows; r++) {
            const int np = a->v.npos[r], nn = a->v.nneg[r];
            a->kpos[r] = a->tau ? kept_prefix(a, r, 0, np) : np;
            a->kneg[r] = a->tau ? kept_prefix(a, r, np, np + nn) : nn;
        }
    } else {
        a->mode = M_DENSE;
    }
    if (a->mode == M_PREVIEW || a->sign_exact)
        for (int r = 0; r < rows; r++) clamp_threshold(a->bias[r], K, a->mult[r], a->shift[r], out_zp, lo, &a->T[r], &a->Tok[r]);
    return TN_ERR_OK;
}

/* ---------------------------------------------------------------- the row engine */

/* sum over entries [j0, j1) of an order (row r) of w_eff * xc, xc = the centred inputs x - zp; with prune
 * (tau > 0) entries with |w| <= tau are skipped. Adds the MACs done to *macs. */
#define TN_ODOT(IDX_T, CS)                                                              \
    do {                                                                                \
        const IDX_T *o = (const IDX_T *)order + base;                                   \
        for (int j = j0; j < j1; j++) {                                                 \
            const int p = o[j];                                                         \
            s += ((int32_t)wr[(int64_t)p * (CS)] & mask) * xc[p];                       \
        }                                                                               \
    } while (0)
static inline int32_t ordered_dot(const ax_t *a, int r, const void *order, int j0, int j1, const int16_t *xc, int prune,
                                  uint64_t *macs) {
    const int8_t *wr = a->w + (int64_t)r * a->rs;
    const int64_t cs = a->cs, base = (int64_t)r * a->K;
    const int32_t mask = a->mask;
    int32_t s = 0;
    if (!prune) {
        if (a->v.idx16) {
            if (cs == 1) TN_ODOT(uint16_t, 1); else TN_ODOT(uint16_t, cs);
        } else {
            if (cs == 1) TN_ODOT(uint8_t, 1); else TN_ODOT(uint8_t, cs);
        }
        *macs += (uint64_t)(j1 - j0);
        return s;
    }
    uint64_t n = 0;
    for (int j = j0; j < j1; j++) {
        const int p = tn_af_idx(&a->v, order, base + j);
        const int32_t w0 = wr[(int64_t)p * cs];
        if ((w0 < 0 ? -w0 : w0) <= a->tau) continue;
        s += (w0 & mask) * xc[p];
        n++;
    }
    *macs += n;
    return s;
}
#undef TN_ODOT

static inline void touch(ax_t *a, int r, int n) {
    if (n > a->touched[r]) a->touched[r] = n;
}

/* One output element of row r from its gathered inputs: activation indices (lut) or centred values xc = x - zp
 * (the other paths). nonneg: every xc >= 0 (sign_exact may stop early). */
static inline int8_t ax_output(ax_t *a, int r, const uint8_t *codes, const int16_t *xc, int nonneg, int32_t T,
                               int Tok) {
    const int K = a->K;
    int32_t acc;
    switch (a->mode) {
    case M_LUT: {
        const tn_af_lut *L = &a->lut;
        const int16_t *P = L->P + (L->per_channel ? (int64_t)r * L->ka * L->kw : 0);
        const uint8_t *xi = codes;
        const uint8_t *wi = L->widx + (int64_t)r * L->row_bytes;
        const int kw = L->kw;
        acc = L->bias[r];
        if (L->wbits == 8) {
            for (int j = 0; j < K; j++) acc += P[xi[j] * kw + wi[j]];
        } else {
            int j = 0;
            for (; j + 1 < K; j += 2) {
                const int byte = wi[j >> 1];
                acc += P[xi[j] * kw + (byte & 15)] + P[xi[j + 1] * kw + (byte >> 4)];
            }
            if (j < K) acc += P[xi[j] * kw + (wi[j >> 1] & 15)];
        }
        a->macs += (uint64_t)K;
        a->lookups += (uint64_t)K;
        a->touched[r] = K;
        break;
    }
    case M_DENSE: {
        const int8_t *wr = a->w + (int64_t)r * a->rs;
        const int32_t mask = a->mask;
        int32_t s = 0;
        if (a->cs == 1)
            for (int j = 0; j < K; j++) s += ((int32_t)wr[j] & mask) * xc[j];
        else
            for (int j = 0; j < K; j++) s += ((int32_t)wr[(int64_t)j * a->cs] & mask) * xc[j];
        acc = a->bias[r] + s;
        a->macs += (uint64_t)K;
        a->touched[r] = K;
        break;
    }
    case M_SORTED: {
        const int np = a->kpos[r], nn = a->kneg[r], npos_all = a->v.npos[r];
        uint64_t m = 0;
        acc = a->bias[r] + ordered_dot(a, r, a->v.sorted, 0, np, xc, 0, &m);
        if (a->sign_exact && nonneg && Tok) {
            const int32_t mask = a->mask;
            const int64_t base = (int64_t)r * K, cs = a->cs;
            const int8_t *wr = a->w + (int64_t)r * a->rs;
            int j = npos_all;
            const int end = npos_all + nn;
            if (a->v.idx16) {
                const uint16_t *o = (const uint16_t *)a->v.sorted + base;
                for (; j < end && acc > T; j++) acc += ((int32_t)wr[(int64_t)o[j] * cs] & mask) * xc[o[j]];
            } else {
                const uint8_t *o = (const uint8_t *)a->v.sorted + base;
                for (; j < end && acc > T; j++) acc += ((int32_t)wr[(int64_t)o[j] * cs] & mask) * xc[o[j]];
            }
            m += (uint64_t)(j - npos_all);
            touch(a, r, np + (j - npos_all));
            a->macs += m;
            if (j < end) {  /* stopped early: the full sum is at most acc <= T, so it requantizes to act_min */
                a->skipped++;
                return (int8_t)a->lo;
            }
            break;
        }
        acc += ordered_dot(a, r, a->v.sorted, npos_all, npos_all + nn, xc, 0, &m);
        a->macs += m;
        touch(a, r, np + nn);
        break;
    }
    default: { /* M_PREVIEW: checks at the tabulated prefix lengths plen[q], plen[q + 1], ... below K */
        uint64_t m = 0;
        const int prune = a->tau > 0, nq = a->v.pv_nq;
        const int32_t *rest = a->v.pv_rest + (int64_t)r * nq;
        int32_t part = 0;
        int done = 0;
        for (int j = a->pq; Tok && j < nq && a->v.pv_plen[j] < K; j++) {
            const int Pj = a->v.pv_plen[j];
            part += ordered_dot(a, r, a->v.preview, done, Pj, xc, prune, &m);
            done = Pj;
            if ((int64_t)a->bias[r] + part + rest[j] <= T) {
                a->macs += m;
                a->skipped++;
                touch(a, r, Pj);
                return (int8_t)a->lo;
            }
        }
        acc = a->bias[r] + part + ordered_dot(a, r, a->v.preview, done, K, xc, prune, &m);
        a->macs += m;
        a->touched[r] = K;
        break;
    }
    }
    a->computed++;
    return tn_requant(acc, a->mult[r], a->shift[r], a->out_zp, a->lo, a->hi);
}

/* weight_bytes of the rows' touched prefixes (see the header comment) */
static uint64_t ax_weight_bytes(const ax_t *a) {
    uint64_t n = 0;
    for (int r = 0; r < a->rows; r++) n += (uint64_t)a->touched[r];
    if (a->mode == M_LUT) {
        int bits = 0;
        while ((1 << bits) < a->lut.kw) bits++;
        return (n * (uint64_t)bits + 7) / 8;
    }
    uint64_t bytes = (n * (uint64_t)(8 - a->lsb) + 7) / 8;
    if (a->mode == M_SORTED || a->mode == M_PREVIEW) bytes += n * (a->v.idx16 ? 2u : 1u);
    return bytes;
}

static void ax_counters(tn_ctx *c, const ax_t *a, uint64_t extra_lookups, uint64_t dropped, uint64_t act_in,
                        uint64_t act_out) {
    tn_counters *k = c->ctr;
    k->macs = a->macs;
    k->mults = a->mode == M_LUT ? 0 : a->macs;
    k->adds = a->macs;
    k->lut_lookups = a->lookups + extra_lookups;
    k->requant_ops = a->computed;
    k->outputs_skipped = a->skipped + dropped;
    k->weight_bytes = ax_weight_bytes(a);
    k->act_bytes_in = act_in;
    k->act_bytes_out = act_out;
}

/* the activation value a gathered input x becomes: itself, or its LUT activation index */
static inline int8_t act_code(const ax_t *a, int8_t x) {
    if (a->mode != M_LUT) return x;
    if (a->lut.amap) return (int8_t)a->lut.amap[(int)x + 128];
    return (int8_t)(uint8_t)((int)x + 128);
}

/* drowsy decision for conv/depthwise output (b, oy, ox, oc), as the exact kernels make it */
static inline int ax_drop(const tn_ctx *c, const tn_conv_geom *g, int b, int oy, int ox, int oc, const int32_t *rank_c,
                          const int32_t *rank_r) {
    const tn_layer_knobs *kn = c->knobs;
    const uint32_t layer = (uint32_t)c->op->index;
    if (kn->drowsy_granularity == TN_GRAN_CHANNEL) return tn_drowsy_drop(kn, c->s->seed, layer, (uint64_t)oc, rank_c);
    if (kn->drowsy_granularity == TN_GRAN_ROW)
        return kn->drowsy_select ? rank_r[(int64_t)oy * g->cout + oc] < kn->drowsy_drop_count
                                 : tn_drowsy_drop(kn, c->s->seed, layer, ((uint64_t)b * g->oh + oy) * g->cout + oc, NULL);
    return tn_drowsy_drop(kn, c->s->seed, layer, (((uint64_t)b * g->oh + oy) * g->ow + ox) * g->cout + oc, NULL);
}

/* ---------------------------------------------------------------- residual link (CONV_2D -> ADD) */

static inline int8_t add_out(const int32_t *p, int conv_is_a, int32_t yv, int32_t rv) {
    const int32_t av = conv_is_a ? yv : rv, bv = conv_is_a ? rv : yv;
    const int ls = p[TN_P_ADD_LEFT_SHIFT];
    const int32_t sa = tn_mbqm((av - p[TN_P_ADD_A_ZP]) * (1 << ls), p[TN_P_ADD_A_MULT], p[TN_P_ADD_A_SHIFT]);
    const int32_t sb = tn_mbqm((bv - p[TN_P_ADD_B_ZP]) * (1 << ls), p[TN_P_ADD_B_MULT], p[TN_P_ADD_B_SHIFT]);
    const int32_t out = tn_mbqm(sa + sb, p[TN_P_ADD_OUT_MULT], p[TN_P_ADD_OUT_SHIFT]) + p[TN_P_ADD_OUT_ZP];
    return (int8_t)tn_clamp(out, p[TN_P_ADD_ACT_MIN], p[TN_P_ADD_ACT_MAX]);
}

/* Y per residual value (bisection over the conv's output range: the ADD is monotone non-decreasing in it) and
 * an empty threshold cache; mem = 256 int32 + 256 bytes per row of scratch. */
static void link_setup(tn_ctx *c, ax_t *a, uint8_t *mem) {
    const tn_op *add = &c->m->ops[c->op->p[TN_P_CONV_2D_RESIDUAL_ADD]];
    const int conv_is_a = add->in[0] == c->op->out[0];
    const int32_t *p = add->p, amin = p[TN_P_ADD_ACT_MIN];
    a->linked = 1;
    a->res = (const int8_t *)tn_in(c, TN_IN_CONV_2D_RESIDUAL);
    for (int v = -128; v < 128; v++) {
        int32_t lo = a->lo, hi = a->hi;
        if (add_out(p, conv_is_a, lo, v) > amin) { a->ymax[v + 128] = -32768; continue; }
        while (lo < hi) {  /* invariant: add(lo) <= amin */
            const int32_t mid = lo + (hi - lo + 1) / 2;
            if (add_out(p, conv_is_a, mid, v) <= amin) lo = mid; else hi = mid - 1;
        }
        a->ymax[v + 128] = (int16_t)lo;
    }
    a->Tl = (int32_t *)mem;
    a->Tlok = mem + 256 * 4 * (size_t)a->rows;
    memset(a->Tlok, 0, 256 * (size_t)a->rows);
}

/* the threshold of row r for level Y (see the header); returns 0 when the element may not stop early */
static inline int level_threshold(ax_t *a, int r, int yl, int32_t *T) {
    if (yl < -128) return 0;
    const size_t i = (size_t)r * 256 + (size_t)(yl + 128);
    if (!a->Tlok[i]) {
        int32_t ok = 0;
        clamp_threshold(a->bias[r], a->K, a->mult[r], a->shift[r], a->out_zp, yl, &a->Tl[i], &ok);
        a->Tlok[i] = ok ? 1 : 2;
    }
    *T = a->Tl[i];
    return a->Tlok[i] == 1;
}

/* ---------------------------------------------------------------- CONV_2D */

int tn_conv_eval_approx(tn_ctx *c, const tn_conv_geom *g) {
    const int K = g->kh * g->kw * g->cin;
    uint8_t *xbuf;
    int16_t *xc;
    int32_t *per_row;
    scratch_layout(K, (uint8_t *)c->scratch, &xbuf, &xc, &per_row);
    int8_t *xr = (int8_t *)xbuf;
    ax_t a;
    if (g->w_zp != 0)
        return tn_op_fail(c->s->err, sizeof c->s->err, c->op, TN_ERR_BAD_KNOB, "approximate knobs need weight zero point 0");
    int rc = ax_setup(c, &a, g->cout, K, K, 1, g->in_zp, g->out_zp, g->act_min, g->act_max, per_row);
    if (rc) return rc;
    if ((a.mode == M_PREVIEW || a.sign_exact) && tn_conv_has_residual(c->op))
        link_setup(c, &a, (uint8_t *)per_row + pad64(5 * 4 * (size_t)g->cout));
    const int8_t *x = (const int8_t *)tn_in(c, 0);
    int8_t *y = (int8_t *)tn_out(c, 0);
    const int drowsy = tn_drowsy_active(c->knobs);
    const int32_t *rank_c = c->op->n_in > 6 && c->op->in[6] >= 0 ? (const int32_t *)tn_in(c, 6) : NULL;
    const int32_t *rank_r = c->op->n_in > 7 && c->op->in[7] >= 0 ? (const int32_t *)tn_in(c, 7) : NULL;
    const int8_t dropped_v = (int8_t)tn_clamp(g->out_zp, g->act_min, g->act_max);
    const int8_t pad_code = act_code(&a, (int8_t)g->in_zp);
    const int map = a.mode == M_LUT && a.lut.amap;
    uint64_t dropped = 0, maps = 0;
    for (int b = 0; b < g->n; b++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                int8_t *yp = y + (((int64_t)b * g->oh + oy) * g->ow + ox) * g->cout;
                int any = 1;
                if (drowsy) {  /* a pixel whose channels are all dropped gathers nothing */
                    any = 0;
                    for (int oc = 0; oc < g->cout && !any; oc++) any = !ax_drop(c, g, b, oy, ox, oc, rank_c, rank_r);
                }
                int nonneg = 1;
                if (any) {
                    int8_t *d = xr;
                    for (int ky = 0; ky < g->kh; ky++) {
                        const int iy = oy * g->sh - g->pt + ky * g->dh;
                        for (int kx = 0; kx < g->kw; kx++, d += g->cin) {
                            const int ix = ox * g->sw - g->pl + kx * g->dw;
                            if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) {
                                memset(d, pad_code, (size_t)g->cin);
                                continue;
                            }
                            const int8_t *xp = x + (((int64_t)b * g->h + iy) * g->w + ix) * g->cin;
                            if (a.mode == M_LUT) {
                                for (int ic = 0; ic < g->cin; ic++) d[ic] = act_code(&a, xp[ic]);
                                if (map) maps += (uint64_t)g->cin;
                            } else {
                                memcpy(d, xp, (size_t)g->cin);
                            }
                        }
                    }
                    if (a.mode != M_LUT) nonneg = centre(xr, K, g->in_zp, xc);
                }
                for (int oc = 0; oc < g->cout; oc++) {
                    if (drowsy && ax_drop(c, g, b, oy, ox, oc, rank_c, rank_r)) {
                        yp[oc] = dropped_v;
                        dropped++;
                        continue;
                    }
                    if (a.linked) {
                        int32_t T = 0;
                        const int ok = level_threshold(&a, oc, a.ymax[(int)a.res[yp - y + oc] + 128], &T);
                        yp[oc] = ax_output(&a, oc, xbuf, xc, nonneg, T, ok);
                    } else {
                        yp[oc] = ax_output(&a, oc, xbuf, xc, nonneg, a.T[oc], a.Tok[oc]);
                    }
                }
            }
    ax_counters(c, &a, maps, dropped, (uint64_t)g->n * g->h * g->w * g->cin, (uint64_t)g->n * g->oh * g->ow * g->cout);
    return TN_ERR_OK;
}

/* ---------------------------------------------------------------- DEPTHWISE_CONV_2D */

int tn_dw_eval_approx(tn_ctx *c, const tn_conv_geom *g) {
    const int K = g->kh * g->kw;
    uint8_t *xbuf;
    int16_t *xc;
    int32_t *per_row;
    scratch_layout(K, (uint8_t *)c->scratch, &xbuf, &xc, &per_row);
    int8_t *xr = (int8_t *)xbuf;
    ax_t a;
    if (g->w_zp != 0)
        return tn_op_fail(c->s->err, sizeof c->s->err, c->op, TN_ERR_BAD_KNOB, "approximate knobs need weight zero point 0");
    int rc = ax_setup(c, &a, g->cout, K, 1, g->cout, g->in_zp, g->out_zp, g->act_min, g->act_max, per_row);
    if (rc) return rc;
    const int8_t *x = (const int8_t *)tn_in(c, 0);
    int8_t *y = (int8_t *)tn_out(c, 0);
    const int drowsy = tn_drowsy_active(c->knobs);
    const int32_t *rank_c = c->op->n_in > 6 && c->op->in[6] >= 0 ? (const int32_t *)tn_in(c, 6) : NULL;
    const int32_t *rank_r = c->op->n_in > 7 && c->op->in[7] >= 0 ? (const int32_t *)tn_in(c, 7) : NULL;
    const int8_t dropped_v = (int8_t)tn_clamp(g->out_zp, g->act_min, g->act_max);
    const int8_t pad_code = act_code(&a, (int8_t)g->in_zp);
    const int map = a.mode == M_LUT && a.lut.amap;
    uint64_t dropped = 0, maps = 0;
    for (int b = 0; b < g->n; b++)
        for (int oy = 0; oy < g->oh; oy++)
            for (int ox = 0; ox < g->ow; ox++) {
                int8_t *yp = y + (((int64_t)b * g->oh + oy) * g->ow + ox) * g->cout;
                for (int oc = 0; oc < g->cout; oc++) {
                    if (drowsy && ax_drop(c, g, b, oy, ox, oc, rank_c, rank_r)) {
                        yp[oc] = dropped_v;
                        dropped++;
                        continue;
                    }
                    const int ic = oc / g->depth_mult;
                    for (int ky = 0, j = 0; ky < g->kh; ky++) {
                        const int iy = oy * g->sh - g->pt + ky * g->dh;
                        for (int kx = 0; kx < g->kw; kx++, j++) {
                            const int ix = ox * g->sw - g->pl + kx * g->dw;
                            if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) {
                                xr[j] = pad_code;
                                continue;
                            }
                            const int8_t v = x[(((int64_t)b * g->h + iy) * g->w + ix) * g->cin + ic];
                            xr[j] = act_code(&a, v);
                            maps += (uint64_t)map;
                        }
                    }
                    const int nonneg = a.mode != M_LUT ? centre(xr, K, g->in_zp, xc) : 0;
                    yp[oc] = ax_output(&a, oc, xbuf, xc, nonneg, a.T[oc], a.Tok[oc]);
                }
            }
    ax_counters(c, &a, maps, dropped, (uint64_t)g->n * g->h * g->w * g->cin, (uint64_t)g->n * g->oh * g->ow * g->cout);
    return TN_ERR_OK;
}

/* ---------------------------------------------------------------- FULLY_CONNECTED */

int tn_fc_eval_approx(tn_ctx *c) {
    const tn_tensor *wt = tn_in_t(c, 1);
    const int N = wt->dims[0], K = wt->dims[1];
    const int batch = (int)(tn_tensor_elems(tn_in_t(c, 0)) / K);
    const int32_t *p = c->op->p;
    uint8_t *xbuf;
    int16_t *xc;
    int32_t *per_row;
    scratch_layout(K, (uint8_t *)c->scratch, &xbuf, &xc, &per_row);
    int8_t *xr = (int8_t *)xbuf;
    ax_t a;
    if (p[TN_P_FULLY_CONNECTED_W_ZP] != 0)
        return tn_op_fail(c->s->err, sizeof c->s->err, c->op, TN_ERR_BAD_KNOB, "approximate knobs need weight zero point 0");
    int rc = ax_setup(c, &a, N, K, K, 1, p[TN_P_FULLY_CONNECTED_IN_ZP], p[TN_P_FULLY_CONNECTED_OUT_ZP],
                      p[TN_P_FULLY_CONNECTED_ACT_MIN], p[TN_P_FULLY_CONNECTED_ACT_MAX], per_row);
    if (rc) return rc;
    const int8_t *x = (const int8_t *)tn_in(c, 0);
    int8_t *y = (int8_t *)tn_out(c, 0);
    const int32_t *perm = c->op->n_in > 6 && c->op->in[6] >= 0 ? (const int32_t *)tn_in(c, 6) : NULL;
    const int map = a.mode == M_LUT && a.lut.amap;
    uint64_t maps = 0;
    for (int b = 0; b < batch; b++) {
        const int8_t *xb = x + (int64_t)b * K;
        for (int j = 0; j < K; j++) xr[j] = act_code(&a, perm ? xb[perm[j]] : xb[j]);  /* the weights' column order */
        maps += map ? (uint64_t)K : 0;
        const int nonneg = a.mode != M_LUT ? centre(xr, K, a.zp, xc) : 0;
        for (int n = 0; n < N; n++) y[(int64_t)b * N + n] = ax_output(&a, n, xbuf, xc, nonneg, a.T[n], a.Tok[n]);
    }
    ax_counters(c, &a, maps, 0, (uint64_t)batch * K, (uint64_t)batch * N);
    return TN_ERR_OK;
}

/* ---------------------------------------------------------------- load and knob checks */

static int layout_of(const tn_model *m, const tn_op *op, tn_af_layout *L) {
    const tn_tensor *w = &m->tensors[op->in[1]];
    L->w = (const int8_t *)(m->consts + w->offset);
    L->conv2d = op->opcode == TN_OP_CONV_2D;
    if (op->opcode == TN_OP_FULLY_CONNECTED) {
        L->rows = w->dims[0];
        L->K = w->dims[1];
        L->row_stride = L->K;
        L->col_stride = 1;
        L->in_zp = op->p[TN_P_FULLY_CONNECTED_IN_ZP];
        return op->p[TN_P_FULLY_CONNECTED_W_ZP];
    }
    if (op->opcode == TN_OP_CONV_2D) {
        L->rows = w->dims[0];
        L->K = w->dims[1] * w->dims[2] * w->dims[3];
        L->row_stride = L->K;
        L->col_stride = 1;
    } else {
        L->rows = w->dims[3];
        L->K = w->dims[1] * w->dims[2];
        L->row_stride = 1;
        L->col_stride = w->dims[3];
    }
    L->in_zp = op->p[TN_P_CONV_2D_IN_ZP];
    return op->p[TN_P_CONV_2D_W_ZP];
}

int tn_approx_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    if (op->opcode != TN_OP_CONV_2D && op->opcode != TN_OP_DEPTHWISE_CONV_2D && op->opcode != TN_OP_FULLY_CONNECTED)
        return TN_ERR_OK;
    tn_af_layout L;
    const int w_zp = layout_of(m, op, &L);
    const size_t need = scratch_need(L.K, L.rows, op->opcode == TN_OP_CONV_2D && tn_conv_has_residual(op));
    if (need > op->scratch_bytes) op->scratch_bytes = need;
    const int slot = op->opcode == TN_OP_FULLY_CONNECTED ? TN_IN_FULLY_CONNECTED_ARTEFACTS : TN_IN_CONV_2D_ARTEFACTS;
    if (op->n_in <= slot || op->in[slot] < 0) return TN_ERR_OK;
    int rc = tn_check_slot(m, op, 0, slot, TN_DTYPE_UINT8, 1, err, errlen);
    if (rc) return rc;
    const tn_tensor *t = &m->tensors[op->in[slot]];
    if (t->storage != TN_STORAGE_CONST)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts tensor '%s' must be constant", t->name);
    if (w_zp != 0)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts tensor '%s' on weights with zero point %d (needs 0)",
                          t->name, w_zp);
    return tn_af_validate(op, m->consts + t->offset, t->nbytes, &L, err, errlen);
}

int tn_approx_validate(const tn_model *m, const tn_op *o, const tn_layer_knobs *k, char *err, size_t errlen) {
    if (!tn_approx_knobs_active(k)) return TN_ERR_OK;
    if (o->opcode != TN_OP_CONV_2D && o->opcode != TN_OP_DEPTHWISE_CONV_2D && o->opcode != TN_OP_FULLY_CONNECTED)
        return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "lut, prune and weight_lsb_drop apply to CONV_2D, DEPTHWISE_CONV_2D "
                                                           "and FULLY_CONNECTED only");
    tn_af_layout L;
    if (layout_of(m, o, &L) != 0)
        return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "approximate knobs need weights with zero point 0");
    if (o->opcode == TN_OP_FULLY_CONNECTED && (k->aip_mode || k->aip_cols))
        return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "aip cannot be combined with lut, prune or weight_lsb_drop on one layer");
    if (k->lut_enable < 0 || k->lut_enable > 255)
        return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "lut configuration %d outside 0..255", k->lut_enable);
    if (k->conv_preview_cin < 0 || k->conv_preview_cin > L.K)
        return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "conv preview over %d positions, the reduction has %d",
                          k->conv_preview_cin, L.K);
    if (k->lut_enable && (k->prune_threshold || k->weight_lsb_drop || k->conv_preview_cin || k->sign_exact))
        return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "lut cannot be combined with prune, weight_lsb_drop, conv_preview or "
                                                           "sign_exact on one layer");
    if (k->conv_preview_cin && k->sign_exact)
        return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "conv_preview and sign_exact cannot be combined on one layer");
    size_t size = 0;
    const uint8_t *blob = tn_af_blob(m, o, &size);
    tn_af_view v;
    if (blob) tn_af_parse(blob, &v);
    tn_af_lut lut;
    if (k->lut_enable && (!blob || !tn_af_lut_find(&v, k->lut_enable, &lut)))
        return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "lut configuration %d is not in the plan's artefacts", k->lut_enable);
    if (k->conv_preview_cin && (!blob || !v.preview))
        return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "conv_preview needs a plan compiled with preview orders (artefacts)");
    if (k->conv_preview_cin && tn_af_preview_q(&v, k->conv_preview_cin) < 0)
        return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "conv preview over %d positions: not one of the plan's %d tabulated "
                                                           "prefix lengths", k->conv_preview_cin, v.pv_nq);
    if ((k->prune_threshold || (k->sign_exact && !k->conv_preview_cin)) && (!blob || !v.sorted))
        return tn_op_fail(err, errlen, o, TN_ERR_BAD_KNOB, "prune and sign_exact need a plan compiled with sorted weights (artefacts)");
    return TN_ERR_OK;
}

int tn_approx_link_check(const tn_model *m, const tn_op *op, char *err, size_t errlen) {
    if (op->opcode == TN_OP_DEPTHWISE_CONV_2D && op->n_in > TN_IN_DEPTHWISE_CONV_2D_RESIDUAL &&
        op->in[TN_IN_DEPTHWISE_CONV_2D_RESIDUAL] >= 0)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "a residual link is supported on CONV_2D only");
    if (!tn_conv_has_residual(op)) return TN_ERR_OK;
    int rc = tn_check_slot(m, op, 0, TN_IN_CONV_2D_RESIDUAL, TN_DTYPE_INT8, 0, err, errlen);
    if (rc) return rc;
    const int32_t rt = op->in[TN_IN_CONV_2D_RESIDUAL], yt = op->out[0];
    const tn_tensor *r = &m->tensors[rt], *y = &m->tensors[yt];
    if (r->storage != TN_STORAGE_ARENA || rt == yt || r->ndim != y->ndim || memcmp(r->dims, y->dims, sizeof(int32_t) * (size_t)y->ndim))
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "residual tensor '%s' must be an arena tensor shaped like the output '%s'",
                          r->name, y->name);
    const int32_t ai = op->p[TN_P_CONV_2D_RESIDUAL_ADD];
    if (ai <= op->index || ai >= m->n_ops)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "residual_add names op %d; it must come after this op (%d) and "
                          "exist (%d ops)", ai, op->index, m->n_ops);
    const tn_op *add = &m->ops[ai];
    if (add->opcode != TN_OP_ADD || add->n_in != 2 || !((add->in[0] == yt && add->in[1] == rt) || (add->in[0] == rt && add->in[1] == yt)))
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "residual_add op %d '%s' is not an ADD of this op's output and "
                          "the residual '%s'", ai, add->name, r->name);
    const tn_tensor *ao = &m->tensors[add->out[0]];
    if (ao->ndim != y->ndim || memcmp(ao->dims, y->dims, sizeof(int32_t) * (size_t)y->ndim))
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "residual_add op '%s' broadcasts (its output is not shaped like "
                          "'%s')", add->name, y->name);
    for (int i = 0; i < m->n_outputs; i++)
        if (m->outputs[i] == yt)
            return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "output '%s' is a model output; a residual link needs the "
                              "ADD to be its only reader", y->name);
    for (int i = 0; i < m->n_ops; i++) {
        const tn_op *o = &m->ops[i];
        for (int k = 0; k < o->n_in; k++)
            if (o->in[k] == yt && i != ai)
                return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "output '%s' is also read by op %d '%s'; a residual "
                                  "link needs the ADD to be its only reader", y->name, i, o->name);
        for (int k = 0; k < o->n_out; k++)
            if (o->out[k] == rt && i >= op->index)
                return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "residual '%s' is written by op %d '%s', not before "
                                  "this op", r->name, i, o->name);
    }
    return TN_ERR_OK;
}
