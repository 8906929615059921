/* DEPTHWISE_CONV_2D: reference kernel and a channel-vectorised path, with DrowsyNet hooks. */
#include <stdlib.h>
#include <string.h>
#include "arch.h"
#include "conv_common.h"
#include "drowsy.h"
#include "requant.h"
#include "approx.h"

int tn_conv_rank_prepare(const tn_model *m, const tn_op *op, const tn_conv_geom *g, char *err, size_t errlen);

/* The flattened-row path (depth multiplier 1, no weight zero point): the input converted once per layer to
 * uint8 planes X[phase_y][phase_x][Hq][Wq][Ck] (Ck: the channels computed), padded with the zero point, so
 * that output row oy, tap (ky, kx) reads the contiguous run X[py % sh][px % sw][oy + qy][qx + ox][c] for
 * all ox and c (py = ky * dh = qy * sh + phase, likewise px). */
typedef struct {
    int fast;
    int Hq, Wq, taps;
    int32_t *tplane, *tqy, *tqx;  /* per tap: phase plane, row and column offsets */
    tn_dw_packed packed;          /* every channel, the plan's multipliers */
    size_t x_bytes, row_bytes;    /* X for every channel; the few rows one output row reads (row drowsy) */
} dw_prep;

static size_t a64(size_t v) { return (v + 63) / 64 * 64; }

static int dw_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    tn_conv_geom g;
    int rc = tn_conv_geom_prepare(m, op, 1, &g, err, errlen);
    if (rc) return rc;
    if ((rc = tn_conv_rank_prepare(m, op, &g, err, errlen))) return rc;
    /* int32 accumulators per output channel, a keep list and per-channel "used" flags */
    op->scratch_bytes = (size_t)g.cout * 8 + (size_t)g.cout + 64;
    op->analytic_macs = (uint64_t)g.n * g.oh * g.ow * g.cout * g.kh * g.kw;
    if (g.depth_mult != 1 || g.w_zp != 0) return TN_ERR_OK;
    const int taps = g.kh * g.kw;
    const size_t pb = tn_dw_packed_bytes(g.cout, taps);
    dw_prep *pp = (dw_prep *)calloc(1, a64(sizeof *pp) + 3 * a64((size_t)taps * 4) + pb + 64);
    if (!pp) return tn_op_fail(err, errlen, op, TN_ERR_NO_MEMORY, "out of memory packing weights");
    op->prepared = pp;
    uint8_t *mem = (uint8_t *)pp + a64(sizeof *pp);
    pp->tplane = (int32_t *)mem;
    pp->tqy = (int32_t *)(mem + a64((size_t)taps * 4));
    pp->tqx = (int32_t *)(mem + 2 * a64((size_t)taps * 4));
    void *pk = (void *)(((uintptr_t)(mem + 3 * a64((size_t)taps * 4)) + 63) & ~(uintptr_t)63);
    pp->fast = 1;
    pp->taps = taps;
    /* padded extent read by the outputs: (o - 1) * s + (k - 1) * d + 1 rows and columns from the top-left pad */
    const int hp = (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1, wp = (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1;
    pp->Hq = (hp + g.sh - 1) / g.sh;
    pp->Wq = (wp + g.sw - 1) / g.sw;
    for (int ky = 0; ky < g.kh; ky++)
        for (int kx = 0; kx < g.kw; kx++) {
            const int t = ky * g.kw + kx;
            pp->tplane[t] = ((ky * g.dh) % g.sh) * g.sw + (kx * g.dw) % g.sw;
            pp->tqy[t] = (ky * g.dh) / g.sh;
            pp->tqx[t] = (kx * g.dw) / g.sw;
        }
    tn_dw_pack(g.cout, taps, g.cout, (const int8_t *)tn_const_in(m, op, 1), NULL, (const int32_t *)tn_const_in(m, op, 5),
               (const int32_t *)tn_const_in(m, op, 3), (const int32_t *)tn_const_in(m, op, 4), pk, &pp->packed);
    pp->x_bytes = a64((size_t)g.sh * g.sw * pp->Hq * pp->Wq * g.cout + 64);
    pp->row_bytes = a64((size_t)g.kh * g.sw * pp->Wq * g.cout + 64);
    /* X (or the rows of one output row), a compact output row, the tap pointers */
    const size_t fast = pp->x_bytes + a64((size_t)g.ow * g.cout + 64) + a64((size_t)taps * sizeof(void *)) +
                        a64((size_t)g.cout * 4) + 64;
    if (fast > op->scratch_bytes) op->scratch_bytes = fast;
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

/* Per-session state of the flattened-row path under drowsy: the computed channels of each unit (the layer,
 * or each output row) and their packing (with the session's rescaled multipliers), made when knobs or seed
 * change, not per inference. */
typedef struct {
    int nk, nd;
    const int32_t *keep, *drop;   /* kept and dropped channels, ascending */
    const uint64_t *mask, *dmask; /* the same as bits */
    tn_dw_packed pk;              /* the kept channels (compact mode) */
} dw_subset;
/* compact: channel subsets computed on their own (the input gathered, the outputs expanded); otherwise every
 * channel is computed (depthwise MACs are cheap next to the gathering) and the dropped outputs are then set
 * to real zero. full: every channel with the session's rescaled multipliers. */
typedef struct {
    int gran, n_sub, compact, has_full;
    uint64_t used_ch;  /* channels kept by at least one subset (the weights fetched) */
    tn_dw_packed full;
    dw_subset sub[];
} dw_state;

static int dw_knobs_changed(tn_session *s, int op) {
    const tn_model *m = s->m;
    const tn_op *o = &m->ops[op];
    const dw_prep *pp = (const dw_prep *)o->prepared;
    const tn_layer_knobs *kn = &s->knobs[op];
    free(s->op_state[op]);
    s->op_state[op] = NULL;
    if (!pp || !pp->fast || !tn_drowsy_active(kn)) return TN_ERR_OK;
    tn_conv_geom g;
    tn_conv_geom_get(m, o, &g);
    const int gran = kn->drowsy_granularity;
    if (gran == TN_GRAN_ROW && g.n != 1 && !kn->drowsy_select) return TN_ERR_OK;  /* draws differ per image */
    if (gran == TN_GRAN_ELEMENT && !s->rq_mult[op]) return TN_ERR_OK;              /* the plan's packing serves */
    const int n_sub = gran == TN_GRAN_ROW ? g.oh : gran == TN_GRAN_CHANNEL ? 1 : 0;
    const int32_t *rank_c = o->n_in > 6 && o->in[6] >= 0 ? (const int32_t *)tn_const_in(m, o, 6) : NULL;
    const int32_t *rank_r = o->n_in > 7 && o->in[7] >= 0 ? (const int32_t *)tn_const_in(m, o, 7) : NULL;
    const int32_t *mult = s->rq_mult[op] ? s->rq_mult[op] : (const int32_t *)tn_const_in(m, o, 3);
    const int32_t *shift = s->rq_shift[op] ? s->rq_shift[op] : (const int32_t *)tn_const_in(m, o, 4);
    /* the keep lists first (their packing's size depends on how many channels each keeps) */
    int32_t *keeps = (int32_t *)malloc((size_t)n_sub * g.cout * 4 + (size_t)n_sub * 4 + 8);
    if (!keeps) return TN_ERR_NO_MEMORY;
    int32_t *nks = keeps + (size_t)n_sub * g.cout;
    size_t total = 0;
    for (int r = 0; r < n_sub; r++) {
        int32_t *keep = keeps + (size_t)r * g.cout;
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
        nks[r] = nk;
    }
    /* a channel subset is computed on its own when it keeps at most half the channels: gathering the input
     * and expanding the outputs cost more than the MACs saved otherwise (measured on the MLPerf models) */
    int compact = gran == TN_GRAN_CHANNEL && n_sub == 1 && 2 * nks[0] <= g.cout;
    const char *env = getenv("TUNABLE_DROWSY");  /* "mask" or "subsets" forces the choice (tests, measurements) */
    if (env && gran == TN_GRAN_CHANNEL) compact = !strcmp(env, "subsets") ? 1 : !strcmp(env, "mask") ? 0 : compact;
    const size_t mw = a64((size_t)(g.cout + 63) / 64 * 8);
    for (int r = 0; r < n_sub; r++)
        total += a64((size_t)g.cout * 4) + 2 * mw + (compact && nks[r] ? tn_dw_packed_bytes(nks[r], pp->taps) : 0);
    const int has_full = !compact && s->rq_mult[op] != NULL;
    if (has_full) total += tn_dw_packed_bytes(g.cout, pp->taps) + 64;
    const size_t head = a64(sizeof(dw_state) + (size_t)n_sub * sizeof(dw_subset));
    uint8_t *mem = (uint8_t *)malloc(head + total + 64);
    if (!mem) {
        free(keeps);
        return TN_ERR_NO_MEMORY;
    }
    dw_state *st = (dw_state *)mem;
    st->gran = gran;
    st->n_sub = n_sub;
    st->compact = compact;
    st->has_full = has_full;
    st->used_ch = 0;
    {
        uint8_t *seen = (uint8_t *)calloc((size_t)g.cout, 1);
        if (!seen) {
            free(keeps);
            free(mem);
            return TN_ERR_NO_MEMORY;
        }
        for (int r = 0; r < n_sub; r++)
            for (int k = 0; k < nks[r]; k++) seen[keeps[(size_t)r * g.cout + k]] = 1;
        for (int oc = 0; oc < g.cout; oc++) st->used_ch += seen[oc];
        free(seen);
    }
    uint8_t *p = (uint8_t *)(((uintptr_t)mem + head + 63) & ~(uintptr_t)63);
    for (int r = 0; r < n_sub; r++) {
        const int nk = nks[r];
        int32_t *keep = (int32_t *)p, *drop = keep + nk;
        memcpy(keep, keeps + (size_t)r * g.cout, (size_t)nk * 4);
        p += a64((size_t)g.cout * 4);
        uint64_t *mask = (uint64_t *)p, *dmask = (uint64_t *)(p + mw);
        memset(mask, 0, mw);
        for (int k = 0; k < nk; k++) mask[keep[k] / 64] |= 1ull << (keep[k] % 64);
        int nd = 0;
        for (int oc = 0; oc < g.cout; oc++)
            if (!((mask[oc / 64] >> (oc % 64)) & 1)) drop[nd++] = oc;
        for (int w = 0; w < (g.cout + 63) / 64; w++) {
            const int bits = g.cout - 64 * w >= 64 ? 64 : g.cout - 64 * w;
            dmask[w] = ~mask[w] & (bits == 64 ? ~0ull : ((1ull << bits) - 1));
        }
        p += 2 * mw;
        st->sub[r].nk = nk;
        st->sub[r].nd = nd;
        st->sub[r].keep = keep;
        st->sub[r].drop = drop;
        st->sub[r].mask = mask;
        st->sub[r].dmask = dmask;
        if (compact && nk) {
            tn_dw_pack(nk, pp->taps, g.cout, (const int8_t *)tn_const_in(m, o, 1), keep,
                       (const int32_t *)tn_const_in(m, o, 5), mult, shift, p, &st->sub[r].pk);
            p += tn_dw_packed_bytes(nk, pp->taps);
        }
    }
    if (has_full) {
        p = (uint8_t *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
        tn_dw_pack(g.cout, pp->taps, g.cout, (const int8_t *)tn_const_in(m, o, 1), NULL,
                   (const int32_t *)tn_const_in(m, o, 5), mult, shift, p, &st->full);
    }
    free(keeps);
    s->op_state[op] = st;
    return TN_ERR_OK;
}

/* Padded input row py as uint8 (int8 ^ 0x80), channels keep[0..ck) (all when keep is NULL; mask: the same as
 * bits), split by column phase: padded column px goes to dst + (px % sw) * pstride + (px / sw) * ck. */
static void build_row(const tn_conv_geom *g, const int8_t *xb, int py, int Wq, const int32_t *keep,
                      const uint64_t *mask, int ck, uint8_t *dst, size_t pstride) {
    const uint8_t pad = (uint8_t)((int8_t)g->in_zp ^ 0x80);
    const int iy = py - g->pt, sw = g->sw;
    if (iy < 0 || iy >= g->h) {
        for (int ph = 0; ph < sw; ph++) memset(dst + ph * pstride, pad, (size_t)Wq * ck);
        return;
    }
    const int8_t *src = xb + (int64_t)iy * g->w * g->cin;
    for (int ph = 0; ph < sw; ph++) {
        /* columns q of this phase: padding, the input pixels ix = q * sw + ph - pl, padding */
        uint8_t *d = dst + ph * pstride;
        const int ix0 = ((ph - g->pl) % sw + sw) % sw, q0 = (ix0 + g->pl) / sw;
        const int cnt = ix0 >= g->w || q0 >= Wq ? 0 : TN_MIN((g->w - ix0 + sw - 1) / sw, Wq - q0);
        memset(d, pad, (size_t)q0 * ck);
        memset(d + (size_t)(q0 + cnt) * ck, pad, (size_t)(Wq - q0 - cnt) * ck);
        if (!cnt) continue;
        const int8_t *sp = src + (int64_t)ix0 * g->cin;
        uint8_t *dq = d + (size_t)q0 * ck;
        if (keep) {
            tn_arch->gather(cnt, sp, (int64_t)sw * g->cin, keep, mask, g->cin, ck, 0x80, dq);
        } else if (sw == 1) {
            const int64_t nb = (int64_t)cnt * ck;
            for (int64_t i = 0; i < nb; i++) dq[i] = (uint8_t)(sp[i] ^ 0x80);
        } else {
            for (int q = 0; q < cnt; q++, sp += (int64_t)sw * g->cin, dq += ck)
                for (int k = 0; k < ck; k++) dq[k] = (uint8_t)(sp[k] ^ 0x80);
        }
    }
}


/* one image of the flattened-row path, in tasks of consecutive output rows */
typedef struct {
    const tn_ctx *c;
    const tn_conv_geom *g;
    const dw_prep *pp;
    const dw_state *st;
    const int8_t *xb;
    int8_t *yb;
    uint8_t *X;                   /* the planes of every computed channel (modes 0-2) */
    int b, mode, ntasks, ck;      /* mode: 0 dense, 1 element, 2 channel, 3 row; ck: channels in X */
    const int32_t *keep;
    const uint64_t *mask;
    const tn_dw_packed *pk;
    uint64_t computed[TN_MAX_THREADS], skipped[TN_MAX_THREADS];
} dw_job;

static void dw_split(const dw_job *j, int t, int n, int *r0, int *r1) {
    *r0 = (int)((int64_t)n * t / j->ntasks);
    *r1 = (int)((int64_t)n * (t + 1) / j->ntasks);
}

/* per-thread scratch: X (or one output row's input rows), a compact output row, tap pointers, "used" flags */
static void dw_scratch(const dw_job *j, int thread, uint8_t **X, int8_t **tmp, const uint8_t ***in, uint8_t **used) {
    uint8_t *scr = (uint8_t *)tn_thread_scratch(j->c->s, thread);
    *X = scr;
    *tmp = (int8_t *)(scr + j->pp->x_bytes);
    *in = (const uint8_t **)((uint8_t *)*tmp + a64((size_t)j->g->ow * j->g->cout + 64));
    *used = (uint8_t *)*in + a64((size_t)j->pp->taps * sizeof(void *));
}

static void dw_build_task(void *arg, int t, int thread) {
    const dw_job *j = (const dw_job *)arg;
    const int Hq = j->pp->Hq, Wq = j->pp->Wq, sh = j->g->sh, ck = j->ck;
    const size_t plane = (size_t)Hq * Wq * ck;
    int r0, r1;
    dw_split(j, t, Hq * sh, &r0, &r1);
    for (int py = r0; py < r1; py++)
        build_row(j->g, j->xb, py, Wq, j->keep, j->mask, ck, j->X + ((size_t)(py % sh) * j->g->sw * Hq + py / sh) * Wq * ck,
                  plane);
    (void)thread;
}

static void dw_compute_task(void *arg, int t, int thread) {
    dw_job *j = (dw_job *)arg;
    const tn_conv_geom *g = j->g;
    const dw_prep *pp = j->pp;
    const int C = g->cout, Hq = pp->Hq, Wq = pp->Wq, T = pp->taps, ow = g->ow;
    const int8_t zero_out = (int8_t)tn_clamp(g->out_zp, g->act_min, g->act_max);
    uint8_t *R, *used;
    int8_t *tmp;
    const uint8_t **in;
    dw_scratch(j, thread, &R, &tmp, &in, &used);
    int r0, r1;
    dw_split(j, t, g->oh, &r0, &r1);
    uint64_t computed = 0, skipped = 0;
    for (int oy = r0; oy < r1; oy++) {
        int8_t *yr = j->yb + (int64_t)oy * ow * C;
        const int ck = j->ck;
        for (int tp = 0; tp < T; tp++)
            in[tp] = j->X + ((size_t)(pp->tplane[tp] * Hq + oy + pp->tqy[tp]) * Wq + pp->tqx[tp]) * ck;
        if (j->mode == 2) {
            tn_arch->dw_row(ow * ck, in, j->pk, g->out_zp, g->act_min, g->act_max, tmp);
            tn_arch->expand(ow, tmp, ck, j->keep, j->mask, C, zero_out, yr);
            computed += (uint64_t)ow * ck;
            skipped += (uint64_t)ow * (C - ck);
            continue;
        }
        tn_arch->dw_row(ow * C, in, j->pk, g->out_zp, g->act_min, g->act_max, yr);
        if (j->mode == 3 || j->mode == 4) {
            /* every channel computed, the row's (or layer's) dropped ones then set to real zero */
            const dw_subset *sub = &j->st->sub[j->mode == 3 ? oy : 0];
            tn_arch->zero_ch(ow, sub->drop, sub->nd, sub->dmask, C, zero_out, yr);
            computed += (uint64_t)ow * sub->nk;
            skipped += (uint64_t)ow * sub->nd;
            continue;
        }
        computed += (uint64_t)ow * C;
        if (j->mode == 1) {
            /* element granularity: computed densely (SIMD), the dropped outputs then set to real zero */
            const tn_layer_knobs *kn = j->c->knobs;
            const uint32_t layer = (uint32_t)j->c->op->index;
            int unseen = 0;
            for (int oc = 0; oc < C; oc++) unseen += !used[oc];
            const uint64_t sk = tn_arch->drop(ow * C, C, j->c->s->seed, layer, ((uint64_t)j->b * g->oh + oy) * ow * C,
                                              kn->drowsy_threshold, zero_out, yr, used, &unseen);
            skipped += sk;
            computed -= sk;
        }
    }
    j->computed[t] = computed;
    j->skipped[t] = skipped;
}

/* The flattened-row path; returns TN_ERR_UNSUPPORTED when the knobs need state the session lacks. */
static int dw_eval_fast(tn_ctx *c, const tn_conv_geom *g, const dw_prep *pp) {
    const tn_layer_knobs *kn = c->knobs;
    const int drowsy = tn_drowsy_active(kn), gran = kn->drowsy_granularity;
    const dw_state *st = (const dw_state *)c->state;
    if (drowsy && (gran != TN_GRAN_ELEMENT || c->rq_mult) && !st) return TN_ERR_UNSUPPORTED;
    const int8_t *x = (const int8_t *)tn_in(c, 0);
    int8_t *y = (int8_t *)tn_out(c, 0);
    const int C = g->cout, TH = tn_op_threads(c, 8 * c->op->analytic_macs);  /* a depthwise MAC moves more data */
    dw_job j;
    j.c = c;
    j.g = g;
    j.pp = pp;
    j.st = st;
    j.X = (uint8_t *)c->scratch;
    /* modes: 0 dense, 1 element, 2 channel subset computed alone, 3 row and 4 channel: every channel, then
     * the dropped ones zeroed */
    j.mode = !drowsy ? 0 : gran == TN_GRAN_ELEMENT ? 1 : gran == TN_GRAN_ROW ? 3 : st->compact ? 2 : 4;
    j.ck = j.mode == 2 ? st->sub[0].nk : C;
    j.keep = j.mode == 2 ? st->sub[0].keep : NULL;
    j.mask = j.mode == 2 ? st->sub[0].mask : NULL;
    j.pk = j.mode == 2 ? &st->sub[0].pk : st && st->has_full ? &st->full : &pp->packed;
    for (int th = 0; th < TH; th++) {
        uint8_t *X, *used;
        int8_t *tmp;
        const uint8_t **in;
        dw_scratch(&j, th, &X, &tmp, &in, &used);
        memset(used, 0, (size_t)C);
    }
    const int8_t zero_out = (int8_t)tn_clamp(g->out_zp, g->act_min, g->act_max);
    uint64_t computed = 0, skipped = 0;
    for (int b = 0; b < g->n; b++) {
        j.b = b;
        j.xb = x + (int64_t)b * g->h * g->w * g->cin;
        j.yb = y + (int64_t)b * g->oh * g->ow * C;
        if (j.mode == 2 && !j.ck) {
            memset(j.yb, zero_out, (size_t)g->oh * g->ow * C);
            skipped += (uint64_t)g->oh * g->ow * C;
            continue;
        }
        j.ntasks = TN_MIN(TH, pp->Hq * g->sh);
        tn_parallel(c->s, j.ntasks, dw_build_task, &j);
        j.ntasks = TN_MIN(TH, g->oh);
        tn_parallel(c->s, j.ntasks, dw_compute_task, &j);
        for (int t = 0; t < j.ntasks; t++) {
            computed += j.computed[t];
            skipped += j.skipped[t];
        }
    }
    uint8_t *X0, *used;
    int8_t *tmp0;
    const uint8_t **in0;
    dw_scratch(&j, 0, &X0, &tmp0, &in0, &used);
    uint64_t used_ch = 0;
    if (j.mode == 0) {
        used_ch = (uint64_t)C;
    } else if (j.mode >= 2) {
        used_ch = st->used_ch;
    } else {
        for (int th = 1; th < TH; th++) {
            uint8_t *X, *u;
            int8_t *tmp;
            const uint8_t **in;
            dw_scratch(&j, th, &X, &tmp, &in, &u);
            for (int oc = 0; oc < C; oc++) used[oc] |= u[oc];
        }
        for (int oc = 0; oc < C; oc++) used_ch += used[oc];
    }
    const int T = pp->taps;
    tn_conv_count(c->ctr, computed, skipped, (uint64_t)T, used_ch);
    tn_conv_count_act(c->ctr, g);
    return TN_ERR_OK;
}

static int dw_eval(tn_ctx *c) {
    tn_conv_geom g;
    tn_conv_geom_get(c->m, c->op, &g);
    if (tn_approx_knobs_active(c->knobs)) return tn_dw_eval_approx(c, &g);
    const dw_prep *pp = (const dw_prep *)c->op->prepared;
    if (pp && pp->fast && !tn_arch->reference && tn_arch->dw_row) {
        const int rc = dw_eval_fast(c, &g, pp);
        if (rc != TN_ERR_UNSUPPORTED) return rc;
    }
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
    /* MACs of padded taps are not executed, but TFLite's analytic count (and ours) charges the full window */
    tn_conv_count(c->ctr, computed, skipped, (uint64_t)g.kh * g.kw, used_ch);
    tn_conv_count_act(c->ctr, &g);
    (void)keep;
    return TN_ERR_OK;
}

const tn_kernel tn_kernel_depthwise = {"DEPTHWISE_CONV_2D", dw_prepare, dw_eval, dw_knobs_changed};
