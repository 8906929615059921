/* FULLY_CONNECTED: reference kernel, the dot-product path, and AIP (approximate inner products).
 *
 * When the plan carries an AIP column order (input 6), the weights are stored column-permuted and the
 * input is gathered into the same order first: exact integer sums do not depend on order, and every AIP
 * preview fraction becomes a contiguous prefix of each weight row. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "arch.h"
#include "conv_common.h"
#include "requant.h"
#include "approx.h"

enum { AIP_OFF = 0, AIP_RELU_SKIP = 1, AIP_TOPM = 2, AIP_ESTIMATE_ALL = 3 };

/* prepared data: the legacy double multiplier (first: fc_requant reads it), the packed weights */
typedef struct {
    double eff;
    int q8;                /* weights packed for the packed GEMM (the CPU has one) */
    tn_q8_packed packed;
    int q16;               /* ... and for the AVX2 one */
    tn_q16_packed packed16;
} fc_prep;

static int has_perm(const tn_op *op) { return op->n_in > 6 && op->in[6] >= 0; }

static size_t a64(size_t v) { return (v + 63) / 64 * 64; }

/* scratch: the gathered input (K), AIP partial sums (N + 16 int32: a 16-row block past N) and order (N int32),
 * then the input as uint8 or int16 for the packed kernels */
static size_t fc_xu_offset(const tn_op *op, int K, int N) {
    return has_perm(op) ? a64((size_t)K) + a64(4 * ((size_t)N + 16)) + a64(4 * (size_t)N) : 0;
}

static int fc_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    int rc;
    if (op->n_in < 6) return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "needs 6 inputs, has %d", op->n_in);
    if ((rc = tn_check_slot(m, op, 0, 0, TN_DTYPE_INT8, 0, err, errlen))) return rc;
    if ((rc = tn_check_slot(m, op, 0, 1, TN_DTYPE_INT8, 2, err, errlen))) return rc;
    if ((rc = tn_check_slot(m, op, 1, 0, TN_DTYPE_INT8, 0, err, errlen))) return rc;
    const tn_tensor *x = &m->tensors[op->in[0]], *w = &m->tensors[op->in[1]], *y = &m->tensors[op->out[0]];
    if (w->storage != TN_STORAGE_CONST) return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "weights must be constant");
    const int N = w->dims[0], K = w->dims[1];
    const int64_t xe = tn_tensor_elems(x), ye = tn_tensor_elems(y);
    if (xe % K != 0)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "input '%s' has %lld elements, not a multiple of %d", x->name,
                          (long long)xe, K);
    if (ye != xe / K * N)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "output '%s' has %lld elements, expected %lld", y->name,
                          (long long)ye, (long long)(xe / K * N));
    const int32_t *p = op->p;
    if ((rc = tn_check_act_range(op, p[TN_P_FULLY_CONNECTED_ACT_MIN], p[TN_P_FULLY_CONNECTED_ACT_MAX], err, errlen))) return rc;
    if ((rc = tn_check_range(op, "input zero point", p[TN_P_FULLY_CONNECTED_IN_ZP], -128, 127, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "output zero point", p[TN_P_FULLY_CONNECTED_OUT_ZP], -128, 127, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "weight zero point", p[TN_P_FULLY_CONNECTED_W_ZP], -128, 127, err, errlen))) return rc;
    if ((rc = tn_check_range(op, "role", p[TN_P_FULLY_CONNECTED_ROLE], 0, 2, err, errlen))) return rc;
    if ((rc = tn_check_requant_vectors(m, op, N, err, errlen))) return rc;
    if (has_perm(op)) {
        if ((rc = tn_check_slot(m, op, 0, 6, TN_DTYPE_INT32, 1, err, errlen))) return rc;
        const tn_tensor *pt = &m->tensors[op->in[6]];
        if (pt->storage != TN_STORAGE_CONST || pt->dims[0] != K)
            return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "AIP column order must be %d constant int32", K);
        if (p[TN_P_FULLY_CONNECTED_W_ZP] != 0)
            return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "AIP column order with a weight zero point");
        /* a permutation: every column exactly once */
        const int32_t *perm = (const int32_t *)(m->consts + pt->offset);
        uint8_t *seen = (uint8_t *)calloc((size_t)K, 1);
        if (!seen) return tn_op_fail(err, errlen, op, TN_ERR_NO_MEMORY, "out of memory");
        for (int j = 0; j < K; j++) {
            if (perm[j] < 0 || perm[j] >= K || seen[perm[j]]) {
                free(seen);
                return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "AIP column order is not a permutation (entry %d)", j);
            }
            seen[perm[j]] = 1;
        }
        free(seen);
    }
    if ((rc = tn_check_range(op, "requant_f64", p[TN_P_FULLY_CONNECTED_REQUANT_F64], 0, 1, err, errlen))) return rc;
    /* the legacy multiplier first (fc_requant reads it as a double), then the packed weights */
    const int packed = tn_arch_has_q8() && p[TN_P_FULLY_CONNECTED_W_ZP] == 0 && !p[TN_P_FULLY_CONNECTED_REQUANT_F64];
    const size_t pb = packed ? tn_q8_packed_bytes(N, K) : 0;
    const int packed16 = tn_arch_has_q16() && p[TN_P_FULLY_CONNECTED_W_ZP] == 0 && !p[TN_P_FULLY_CONNECTED_REQUANT_F64];
    const size_t pb16 = packed16 ? tn_q16_packed_bytes(N, K) + 64 : 0;
    fc_prep *pp = (fc_prep *)calloc(1, sizeof *pp + 64 + pb + pb16);
    if (!pp) return tn_op_fail(err, errlen, op, TN_ERR_NO_MEMORY, "out of memory");
    op->prepared = pp;
    if (p[TN_P_FULLY_CONNECTED_REQUANT_F64]) {
        /* legacy uint8 models: LiteRT's reference FC scales in double, from the float32 tensor scales */
        const double eff = (double)x->scale * (double)w->scale / (double)y->scale;
        if (!(eff > 0.0) || !isfinite(eff))
            return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "scales of '%s', '%s' and '%s' give no multiplier",
                              x->name, w->name, y->name);
        pp->eff = eff;
    }
    if (packed) {
        void *mem = (void *)(((uintptr_t)(pp + 1) + 63) & ~(uintptr_t)63);
        tn_q8_pack(N, K, (const int8_t *)tn_const_in(m, op, 1), NULL, (const int32_t *)tn_const_in(m, op, 5),
                   (const int32_t *)tn_const_in(m, op, 3), (const int32_t *)tn_const_in(m, op, 4), mem, &pp->packed);
        pp->q8 = 1;
    }
    if (packed16) {
        const uintptr_t base = ((uintptr_t)(pp + 1) + 63) & ~(uintptr_t)63;  /* where the VNNI packing starts */
        void *mem = (void *)((base + pb + 63) & ~(uintptr_t)63);
        tn_q16_pack(N, K, (const int8_t *)tn_const_in(m, op, 1), NULL, (const int32_t *)tn_const_in(m, op, 5),
                    (const int32_t *)tn_const_in(m, op, 3), (const int32_t *)tn_const_in(m, op, 4), mem, &pp->packed16);
        pp->q16 = 1;
    }
    op->analytic_macs = (uint64_t)(xe / K) * N * K;
    /* gathered input (K), estimates (N int32) and the completion order (N int32); the uint8 input */
    /* then, for AIP on the packed weights: two rows of raw sums (N + 16 int32 each) and flags per 16 rows */
    op->scratch_bytes = fc_xu_offset(op, K, N) + a64((size_t)(K + 3) / 4 * 4 * 2) + 2 * a64(4 * ((size_t)N + 16)) +
                        a64((size_t)N / 16 + 1) + 128;
    return TN_ERR_OK;
}

/* per session, for the AIP preview width S of the knobs: each row's weight sums over the first 4 * (S / 4)
 * columns, the first S and the rest */
typedef struct { int S; int32_t *p4, *ps, *pr; } fc_state;

static int fc_knobs_changed(tn_session *s, int op) {
    const tn_model *m = s->m;
    const tn_op *o = &m->ops[op];
    const tn_layer_knobs *kn = &s->knobs[op];
    free(s->op_state[op]);
    s->op_state[op] = NULL;
    if (kn->aip_mode == AIP_OFF || kn->aip_cols <= 0 || !has_perm(o) || o->p[TN_P_FULLY_CONNECTED_W_ZP] != 0)
        return TN_ERR_OK;
    const tn_tensor *wt = &m->tensors[o->in[1]];
    const int N = wt->dims[0], K = wt->dims[1], S = kn->aip_cols, S4 = S / 4;
    fc_state *st = (fc_state *)malloc(sizeof *st + 3 * (size_t)N * 4);
    if (!st) return TN_ERR_NO_MEMORY;
    st->S = S;
    st->p4 = (int32_t *)(st + 1);
    st->ps = st->p4 + N;
    st->pr = st->ps + N;
    const int8_t *w = (const int8_t *)tn_const_in(m, o, 1);
    for (int n = 0; n < N; n++) {
        const int8_t *wr = w + (int64_t)n * K;
        int32_t a = 0, b = 0, r = 0;
        for (int k = 0; k < K; k++) {
            if (k < 4 * S4) a += wr[k];
            if (k < S) b += wr[k];
            else r += wr[k];
        }
        st->p4[n] = a;
        st->ps[n] = b;
        st->pr[n] = r;
    }
    s->op_state[op] = st;
    return TN_ERR_OK;
}

/* n / d truncated toward zero (C's division) for d > 0, through a double reciprocal and an exact integer
 * correction: a 64-bit division per row was most of an AIP preview's time */
static inline int64_t scale_div(int64_t n, int32_t d, double inv_d) {
    const int neg = n < 0;
    const int64_t a = neg ? -n : n;
    int64_t q = (int64_t)((double)a * inv_d);
    while (q > 0 && q * d > a) q--;
    while ((q + 1) * d <= a) q++;
    return neg ? -q : q;
}

/* sum_{j < n} w[j] * (x[j] - zp) as the kernel table computes it: dot minus zp * sum(w) */
static inline int32_t centered_dot(int n, const int8_t *x, const int8_t *w, int32_t zp) {
    int32_t ws = 0;
    for (int j = 0; j < n; j++) ws += w[j];
    return tn_arch->dot(n, x, w) - zp * ws;
}

static int fc_aip(tn_ctx *c, int batch, int N, int K, const int8_t *xg, int8_t *y) {
    const int32_t *p = c->op->p;
    const tn_layer_knobs *kn = c->knobs;
    const int32_t in_zp = p[TN_P_FULLY_CONNECTED_IN_ZP], out_zp = p[TN_P_FULLY_CONNECTED_OUT_ZP];
    const int32_t lo = p[TN_P_FULLY_CONNECTED_ACT_MIN], hi = p[TN_P_FULLY_CONNECTED_ACT_MAX];
    const int8_t *w = (const int8_t *)tn_in(c, 1);
    const int32_t *bias = (const int32_t *)tn_in(c, 2), *mult = (const int32_t *)tn_in(c, 3);
    const int32_t *shift = (const int32_t *)tn_in(c, 4);
    const int S = kn->aip_cols;
    const int mode = kn->aip_mode;
    const double inv_s = 1.0 / S;
    int32_t *part = (int32_t *)((uint8_t *)c->scratch + a64((size_t)K));
    int32_t *order = part + N + 16;
    /* with the session's column sums (fc_knobs_changed) each dot product is one pass, and the preview of every
     * row runs on the packed VNNI weights (their first S/4 groups of 4 columns) */
    const fc_state *st = (const fc_state *)c->state;
    const fc_prep *pp = (const fc_prep *)c->op->prepared;
    if (st && st->S != S) st = NULL;
    const int packed_preview = st && pp->q8 && tn_arch->q8_gemv_raw && !tn_arch->reference;
    /* packed: the input as uint8, the raw sums of the preview (raw1) and of the rest (raw2), block flags */
    uint8_t *xu = (uint8_t *)c->scratch + fc_xu_offset(c->op, K, N);
    int32_t *raw1 = (int32_t *)(xu + a64((size_t)(K + 3) / 4 * 4 * 2)), *raw2 = raw1 + a64(4 * ((size_t)N + 16)) / 4;
    uint8_t *blocks = (uint8_t *)(raw2 + a64(4 * ((size_t)N + 16)) / 4);
    const int NB = (N + 15) / 16;
    uint64_t completed = 0;
    for (int b = 0; b < batch; b++) {
        const int8_t *xb = xg + (int64_t)b * K;  /* batch > 1 gathers row by row below */
        int8_t *yb = y + (int64_t)b * N;
        /* preview: partial sums over the S most important columns, scaled to the full row */
        if (packed_preview) {
            const tn_q8_packed *B = &pp->packed;
            const int S4 = S / 4;
            for (int k = 0; k < K; k++) xu[k] = (uint8_t)(xb[k] ^ 0x80);
            for (int k = K; k < 4 * B->K4; k++) xu[k] = 0;
            tn_arch->q8_gemv_raw(B, 0, S4, xu, NULL, raw1);
            for (int n = 0; n < N; n++) {
                const int8_t *wr = w + (int64_t)n * K;
                int32_t tail = 0;
                for (int k = 4 * S4; k < S; k++) tail += (int32_t)wr[k] * xb[k];
                /* sum w (x ^ 0x80) = sum w x + 128 sum w over the 4*S4 columns; then the zero point over S */
                part[n] = raw1[n] - 128 * st->p4[n] + tail - in_zp * st->ps[n];
            }
        } else if (st) {
            for (int n = 0; n < N; n++) part[n] = tn_arch->dot(S, xb, w + (int64_t)n * K) - in_zp * st->ps[n];
        } else {
            for (int n = 0; n < N; n++) part[n] = centered_dot(S, xb, w + (int64_t)n * K, in_zp);
        }
        if (mode == AIP_RELU_SKIP && packed_preview) {
            /* rows predicted to clamp emit it; the rest of the others on the packed weights, whole tiles of 16
             * rows skipped where none of their rows continues */
            const tn_q8_packed *B = &pp->packed;
            memset(blocks, 0, (size_t)NB);
            for (int n = 0; n < N; n++) {
                const int64_t est = (int64_t)bias[n] + scale_div((int64_t)part[n] * K, S, inv_s);
                const int32_t e32 = est > INT32_MAX ? INT32_MAX : (est < INT32_MIN ? INT32_MIN : (int32_t)est);
                order[n] = tn_mbqm(e32, mult[n], shift[n]) + out_zp > lo - kn->aip_margin;  /* continues */
                blocks[n / 16] |= (uint8_t)order[n];
            }
            tn_arch->q8_gemv_raw(B, S / 4, B->K4, xu, blocks, raw2);
            for (int n = 0; n < N; n++) {
                if (!order[n]) {
                    yb[n] = (int8_t)lo;
                    continue;
                }
                /* the packing's bias holds -128 sum w and the zero point's -zp sum w */
                yb[n] = tn_requant(raw1[n] + raw2[n] + B->bias[n], mult[n], shift[n], out_zp, lo, hi);
                completed++;
            }
        } else if (mode == AIP_RELU_SKIP) {
            for (int n = 0; n < N; n++) {
                const int64_t est = (int64_t)bias[n] + scale_div((int64_t)part[n] * K, S, inv_s);
                const int32_t e32 = est > INT32_MAX ? INT32_MAX : (est < INT32_MIN ? INT32_MIN : (int32_t)est);
                /* predicted to clamp at or below real zero by the margin: emit the clamp, skip the rest */
                if (tn_mbqm(e32, mult[n], shift[n]) + out_zp <= lo - kn->aip_margin) {
                    yb[n] = (int8_t)lo;
                    continue;
                }
                const int32_t rest = st ? tn_arch->dot(K - S, xb + S, w + (int64_t)n * K + S) - in_zp * st->pr[n]
                                        : centered_dot(K - S, xb + S, w + (int64_t)n * K + S, in_zp);
                const int32_t acc = bias[n] + part[n] + rest;
                yb[n] = tn_requant(acc, mult[n], shift[n], out_zp, lo, hi);
                completed++;
            }
        } else if (mode == AIP_TOPM) {
            const int m = kn->aip_topm < N ? kn->aip_topm : N;
            /* estimates in output units; the m largest are completed exactly */
            for (int n = 0; n < N; n++) {
                const int64_t est = (int64_t)bias[n] + scale_div((int64_t)part[n] * K, S, inv_s);
                const int32_t e32 = est > INT32_MAX ? INT32_MAX : (est < INT32_MIN ? INT32_MIN : (int32_t)est);
                part[n] = tn_mbqm(e32, mult[n], shift[n]) + out_zp;  /* reuse: estimated output before clamping */
                order[n] = n;
            }
            for (int i = 0; i < m; i++) {  /* partial selection sort: m is small */
                int best = i;
                for (int j = i + 1; j < N; j++)
                    if (part[order[j]] > part[order[best]]) best = j;
                int32_t t = order[i]; order[i] = order[best]; order[best] = t;
            }
            int32_t min_done = hi;
            if (packed_preview) {  /* the chosen rows' tiles completed on the packed weights */
                memset(blocks, 0, (size_t)NB);
                for (int i = 0; i < m; i++) blocks[order[i] / 16] = 1;
                tn_arch->q8_gemv_raw(&pp->packed, S / 4, pp->packed.K4, xu, blocks, raw2);
            }
            for (int i = 0; i < m; i++) {
                const int n = order[i];
                const int32_t acc =
                    packed_preview ? raw1[n] + raw2[n] + pp->packed.bias[n]
                    : bias[n] + (st ? tn_arch->dot(K, xb, w + (int64_t)n * K) - in_zp * (st->ps[n] + st->pr[n])
                                    : centered_dot(K, xb, w + (int64_t)n * K, in_zp));
                yb[n] = tn_requant(acc, mult[n], shift[n], out_zp, lo, hi);
                if (yb[n] < min_done) min_done = yb[n];
                completed++;
            }
            /* the rest keep their estimate, capped below every completed row: the ranking stays exact */
            for (int i = m; i < N; i++) {
                const int n = order[i];
                int32_t v = tn_clamp(part[n], lo, hi);
                if (v >= min_done) v = min_done - 1;
                yb[n] = (int8_t)(v < lo ? lo : v);
            }
        } else { /* estimate for every row */
            for (int n = 0; n < N; n++) {
                const int64_t est = (int64_t)bias[n] + scale_div((int64_t)part[n] * K, S, inv_s);
                const int32_t e32 = est > INT32_MAX ? INT32_MAX : (est < INT32_MIN ? INT32_MIN : (int32_t)est);
                yb[n] = tn_requant(e32, mult[n], shift[n], out_zp, lo, hi);
            }
        }
    }
    /* added up over the rows of a batch (the session zeroes counters before each op) */
    tn_counters *k = c->ctr;
    const uint64_t rows = (uint64_t)batch * N;
    const uint64_t macs = mode == AIP_TOPM ? rows * S + completed * (uint64_t)K
                                           : rows * S + completed * (uint64_t)(K - S);
    k->macs += macs;
    k->mults += macs;
    k->adds += macs;
    k->requant_ops += rows;
    k->outputs_skipped += rows - completed;
    /* weight bytes fetched: every row's preview, plus the rest of each completed row (a top-m row is
     * recomputed from its start in cache, so its preview bytes are not fetched twice) */
    k->weight_bytes += (uint64_t)N * S + completed * (uint64_t)(K - S);
    k->act_bytes_in += (uint64_t)batch * K;
    k->act_bytes_out += rows;
    return TN_ERR_OK;
}

/* the exact output of one row: double-rounding requantization, or (requant_f64, legacy uint8 models)
 * round(acc * scale) in double as LiteRT's reference uint8 FC does */
static inline int8_t fc_requant(const tn_op *op, int32_t acc, int32_t mult, int32_t shift, int32_t out_zp, int32_t lo,
                                int32_t hi) {
    if (op->p[TN_P_FULLY_CONNECTED_REQUANT_F64])
        return (int8_t)tn_clamp((int32_t)round((double)acc * ((const fc_prep *)op->prepared)->eff) + out_zp, lo, hi);
    return tn_requant(acc, mult, shift, out_zp, lo, hi);
}

/* a range of 16-row output blocks of the packed path */
typedef struct {
    const tn_q8_packed *B;
    const uint8_t *xu;
    int8_t *y;
    int32_t zp, lo, hi;
    int ntasks;
} fc_job;

static void fc_task(void *arg, int t, int thread) {
    const fc_job *j = (const fc_job *)arg;
    const tn_q8_packed *B = j->B;
    const int nb0 = (int)((int64_t)B->NB * t / j->ntasks), nb1 = (int)((int64_t)B->NB * (t + 1) / j->ntasks);
    if (nb0 >= nb1) return;
    tn_q8_packed v = *B;  /* a view of blocks [nb0, nb1) */
    v.NB = nb1 - nb0;
    v.N = TN_MIN(B->N, nb1 * 16) - nb0 * 16;
    v.w = B->w + (int64_t)nb0 * B->K4 * 64;
    v.bias = B->bias + nb0 * 16;
    v.mult = B->mult + nb0 * 16;
    v.lshift = B->lshift + nb0 * 16;
    v.rshift = B->rshift + nb0 * 16;
    tn_arch->q8_gemm(1, j->xu, B->K4 * 4, &v, j->zp, j->lo, j->hi, j->y + nb0 * 16, 0);
    (void)thread;
}

static int fc_eval(tn_ctx *c) {
    const tn_tensor *wt = tn_in_t(c, 1);
    const int N = wt->dims[0], K = wt->dims[1];
    const int batch = (int)(tn_tensor_elems(tn_in_t(c, 0)) / K);
    const int32_t *p = c->op->p;
    const int32_t in_zp = p[TN_P_FULLY_CONNECTED_IN_ZP], out_zp = p[TN_P_FULLY_CONNECTED_OUT_ZP];
    const int32_t w_zp = p[TN_P_FULLY_CONNECTED_W_ZP];
    const int32_t lo = p[TN_P_FULLY_CONNECTED_ACT_MIN], hi = p[TN_P_FULLY_CONNECTED_ACT_MAX];
    const int8_t *x = (const int8_t *)tn_in(c, 0), *w = (const int8_t *)tn_in(c, 1);
    const int32_t *mult = (const int32_t *)tn_in(c, 3), *shift = (const int32_t *)tn_in(c, 4);
    int8_t *y = (int8_t *)tn_out(c, 0);
    const fc_prep *pp = (const fc_prep *)c->op->prepared;
    if (tn_approx_knobs_active(c->knobs)) return tn_fc_eval_approx(c);
    /* a top-m classifier completing every row is the exact layer: skip the preview */
    const int aip = c->knobs->aip_mode != AIP_OFF && c->knobs->aip_cols > 0 && has_perm(c->op) &&
                    !(c->knobs->aip_mode == AIP_TOPM && c->knobs->aip_topm >= N);
    for (int b0 = 0; b0 < batch; b0++) {
        const int8_t *xr = x + (int64_t)b0 * K;
        if (has_perm(c->op)) {  /* gather the input into the weights' column order */
            const int32_t *perm = (const int32_t *)tn_in(c, 6);
            int8_t *g = (int8_t *)c->scratch;
            for (int j = 0; j < K; j++) g[j] = xr[perm[j]];
            xr = g;
        }
        if (aip) {
            int rc = fc_aip(c, 1, N, K, xr, y + (int64_t)b0 * N);
            if (rc) return rc;
            continue;
        }
        if (tn_arch->reference || w_zp != 0) {
            const int32_t *bias = (const int32_t *)tn_in(c, 2);
            for (int n = 0; n < N; n++) {
                int32_t acc = bias[n];
                const int8_t *wr = w + (int64_t)n * K;
                for (int k = 0; k < K; k++) acc += ((int32_t)wr[k] - w_zp) * ((int32_t)xr[k] - in_zp);
                y[(int64_t)b0 * N + n] = fc_requant(c->op, acc, mult[n], shift[n], out_zp, lo, hi);
            }
        } else if (pp->q8 && tn_arch->q8_gemm) {
            /* the packed GEMM, one row of uint8 input (arch.h), output blocks of 16 rows split among threads */
            uint8_t *xu = (uint8_t *)c->scratch + fc_xu_offset(c->op, K, N);
            for (int k = 0; k < K; k++) xu[k] = (uint8_t)(xr[k] ^ 0x80);
            for (int k = K; k < pp->packed.K4 * 4; k++) xu[k] = 0;
            fc_job j = {&pp->packed, xu, y + (int64_t)b0 * N, out_zp, lo, hi, 0};
            j.ntasks = TN_MIN(tn_op_threads(c, (uint64_t)N * K), pp->packed.NB);
            tn_parallel(c->s, j.ntasks, fc_task, &j);
        } else if (pp->q16 && tn_arch->q16_gemm) {
            /* the AVX2 packed GEMM: one row of int16 input */
            int16_t *xi = (int16_t *)((uint8_t *)c->scratch + fc_xu_offset(c->op, K, N));
            for (int k = 0; k < K; k++) xi[k] = xr[k];
            for (int k = K; k < pp->packed16.K2 * 2; k++) xi[k] = 0;
            tn_arch->q16_gemm(1, xi, pp->packed16.K2 * 2, &pp->packed16, out_zp, lo, hi, y + (int64_t)b0 * N, 0);
        } else {
            const int32_t *bias = (const int32_t *)tn_in(c, 5);
            for (int n = 0; n < N; n++) {
                int32_t acc = bias[n] + tn_arch->dot(K, xr, w + (int64_t)n * K);
                y[(int64_t)b0 * N + n] = fc_requant(c->op, acc, mult[n], shift[n], out_zp, lo, hi);
            }
        }
    }
    tn_counters *k = c->ctr;
    if (aip) return TN_ERR_OK;  /* fc_aip counted */
    k->macs = (uint64_t)batch * N * K;
    k->mults = k->macs;
    k->adds = k->macs;
    k->requant_ops = (uint64_t)batch * N;
    k->weight_bytes = (uint64_t)N * K;
    k->act_bytes_in = (uint64_t)batch * K;
    k->act_bytes_out = (uint64_t)batch * N;
    return TN_ERR_OK;
}

const tn_kernel tn_kernel_fully_connected = {"FULLY_CONNECTED", fc_prepare, fc_eval, fc_knobs_changed};
