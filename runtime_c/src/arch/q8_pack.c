/* Weight packing for the packed int8 GEMM (layout in arch.h), done at load or when drowsy changes the
 * set of computed channels. */
#include <string.h>
#include "../arch.h"

static size_t a64(size_t v) { return (v + 63) / 64 * 64; }

size_t tn_q8_packed_bytes(int n, int K) {
    const size_t NB = (size_t)(n + 15) / 16, K4 = (size_t)(K + 3) / 4;
    return a64(NB * K4 * 64) + 4 * a64(NB * 16 * 4);
}

void tn_q8_pack(int n, int K, const int8_t *W, const int32_t *cols, const int32_t *bias_folded,
                const int32_t *mult, const int32_t *shift, void *mem, tn_q8_packed *out) {
    const int NB = (n + 15) / 16, K4 = (K + 3) / 4;
    uint8_t *base = (uint8_t *)mem;
    int8_t *w = (int8_t *)base;
    int32_t *bias = (int32_t *)(base + a64((size_t)NB * K4 * 64));
    int32_t *m = bias + a64((size_t)NB * 16 * 4) / 4;
    int32_t *ls = m + a64((size_t)NB * 16 * 4) / 4;
    int32_t *rs = ls + a64((size_t)NB * 16 * 4) / 4;
    memset(w, 0, (size_t)NB * K4 * 64);
    for (int j = 0; j < NB * 16; j++) {
        if (j >= n) { bias[j] = 0; m[j] = 0; ls[j] = 0; rs[j] = 0; continue; }
        const int c = cols ? cols[j] : j;
        const int8_t *src = W + (int64_t)c * K;
        int8_t *dst = w + (int64_t)(j / 16) * K4 * 64 + (j % 16) * 4;
        int32_t sum = 0;
        for (int k = 0; k < K; k++) {
            dst[(int64_t)(k / 4) * 64 + (k % 4)] = src[k];
            sum += src[k];
        }
        bias[j] = bias_folded[c] - 128 * sum;
        m[j] = mult[c];
        ls[j] = shift[c] > 0 ? shift[c] : 0;
        rs[j] = shift[c] > 0 ? 0 : -shift[c];
    }
    out->N = n; out->K = K; out->K4 = K4; out->NB = NB;
    out->w = w; out->bias = bias; out->mult = m; out->lshift = ls; out->rshift = rs;
}

static int lcm16(int n) {
    int a = n, b = 16;
    while (b) { const int t = a % b; a = b; b = t; }
    return n / a * 16;
}

size_t tn_dw_packed_bytes(int C, int taps) {
    const size_t P = (size_t)lcm16(C);
    return a64((size_t)taps * P * 4) + 5 * a64(P * 4) + a64((size_t)taps * P * 2);
}

void tn_dw_pack(int n, int taps, int Cw, const int8_t *W, const int32_t *cols, const int32_t *bias_folded,
                const int32_t *mult, const int32_t *shift, void *mem, tn_dw_packed *out) {
    const int P = lcm16(n);
    int32_t *w = (int32_t *)mem;
    int32_t *bias = (int32_t *)((uint8_t *)mem + a64((size_t)taps * P * 4));
    int32_t *m = bias + a64((size_t)P * 4) / 4;
    int32_t *ls = m + a64((size_t)P * 4) / 4;
    int32_t *rs = ls + a64((size_t)P * 4) / 4;
    int32_t *sh = rs + a64((size_t)P * 4) / 4;
    int16_t *w16 = (int16_t *)(sh + a64((size_t)P * 4) / 4);
    for (int l = 0; l < P; l++) {
        const int c = cols ? cols[l % n] : l % n;
        int32_t sum = 0;
        for (int t = 0; t < taps; t++) {
            w[(int64_t)t * P + l] = W[(int64_t)t * Cw + c];
            w16[(int64_t)t * P + l] = W[(int64_t)t * Cw + c];
            sum += W[(int64_t)t * Cw + c];
        }
        sh[l] = shift[c];
        /* sum w * (x - zp) = sum w * (x ^ 0x80) - (zp + 128) * sum w, bias_folded holding -zp * sum w */
        bias[l] = bias_folded[c] - 128 * sum;
        m[l] = mult[c];
        ls[l] = shift[c] > 0 ? shift[c] : 0;
        rs[l] = shift[c] > 0 ? 0 : -shift[c];
    }
    out->C = n; out->P = P; out->taps = taps;
    out->w = w; out->bias = bias; out->mult = m; out->lshift = ls; out->rshift = rs;
    out->w16 = w16; out->shift = sh;
}

size_t tn_px_packed_bytes(int n, int kg, int cout) {
    const size_t n4 = (size_t)(n + 3) / 4 * 4, nob = (size_t)(cout + 15) / 16;
    return a64(n4 * kg * 4) + 4 * a64(n4 * 4) + 2 * a64(nob * 4) + a64(nob * 16);
}

void tn_px_pack(int n, int cout, int kh, int kw, int cin, const int8_t *W, const int32_t *cols,
                const int32_t *bias_folded, const int32_t *mult, const int32_t *shift, void *mem, tn_px_packed *out) {
    const int G = (cin + 3) / 4, kg = kh * kw * G, n4 = (n + 3) / 4 * 4, K = kh * kw * cin;
    int8_t *w = (int8_t *)mem;
    int32_t *bias = (int32_t *)((uint8_t *)mem + a64((size_t)n4 * kg * 4));
    int32_t *m = bias + a64((size_t)n4 * 4) / 4;
    int32_t *ls = m + a64((size_t)n4 * 4) / 4;
    int32_t *rs = ls + a64((size_t)n4 * 4) / 4;
    memset(w, 0, (size_t)n4 * kg * 4);
    for (int j = 0; j < n4; j++) {
        if (j >= n) { bias[j] = 0; m[j] = 0; ls[j] = 0; rs[j] = 0; continue; }
        const int c = cols ? cols[j] : j;
        const int tile = j / 16, width = TN_PX_WIDTH(n, tile);
        int8_t *dst = w + (int64_t)tile * kg * 64 + (j % 16) * 4;
        const int8_t *src = W + (int64_t)c * K;
        int32_t sum = 0;
        for (int t = 0; t < kh * kw; t++)
            for (int i = 0; i < cin; i++) {
                const int k = t * G + i / 4;
                dst[(int64_t)k * width * 4 + (i % 4)] = src[t * cin + i];
                sum += src[t * cin + i];
            }
        bias[j] = bias_folded[c] - 128 * sum;
        m[j] = mult[c];
        ls[j] = shift[c] > 0 ? shift[c] : 0;
        rs[j] = shift[c] > 0 ? 0 : -shift[c];
    }
    out->n = n; out->kg = kg;
    out->w = w; out->bias = bias; out->mult = m; out->lshift = ls; out->rshift = rs;
    out->cout = cout;
    out->xoff = out->xmask = NULL;
    out->xctl = NULL;
    if (!cols || n == cout || cout > TN_PX_MAX_EXPAND) return;
    /* the expansion map: computed channels j in [xoff, xoff + 16) that belong to output block ob */
    const int nob = (cout + 15) / 16;
    int32_t *xoff = rs + a64((size_t)n4 * 4) / 4;
    int32_t *xmask = xoff + a64((size_t)nob * 4) / 4;
    int8_t *xctl = (int8_t *)(xmask + a64((size_t)nob * 4) / 4);
    int j = 0;
    for (int ob = 0; ob < nob; ob++) {
        while (j < n && cols[j] < 16 * ob) j++;
        xoff[ob] = j < n ? j : 0;
        xmask[ob] = 0;
        memset(xctl + 16 * ob, 0x80, 16);
        for (int k = j; k < n && cols[k] < 16 * ob + 16; k++) {
            xctl[16 * ob + cols[k] - 16 * ob] = (int8_t)(k - j);
            xmask[ob] |= 1 << (cols[k] - 16 * ob);
        }
    }
    out->xoff = xoff; out->xmask = xmask; out->xctl = xctl;
}

size_t tn_q16_packed_bytes(int n, int K) {
    const size_t NB = (size_t)(n + 7) / 8, K2 = (size_t)(K + 1) / 2;
    return a64(NB * K2 * 32) + 4 * a64(NB * 8 * 4);
}

void tn_q16_pack(int n, int K, const int8_t *W, const int32_t *cols, const int32_t *bias_folded,
                 const int32_t *mult, const int32_t *shift, void *mem, tn_q16_packed *out) {
    const int NB = (n + 7) / 8, K2 = (K + 1) / 2;
    int16_t *w = (int16_t *)mem;
    int32_t *bias = (int32_t *)((uint8_t *)mem + a64((size_t)NB * K2 * 32));
    int32_t *m = bias + a64((size_t)NB * 8 * 4) / 4;
    int32_t *ls = m + a64((size_t)NB * 8 * 4) / 4;
    int32_t *rs = ls + a64((size_t)NB * 8 * 4) / 4;
    memset(w, 0, (size_t)NB * K2 * 32);
    for (int j = 0; j < NB * 8; j++) {
        if (j >= n) { bias[j] = 0; m[j] = 0; ls[j] = 0; rs[j] = 0; continue; }
        const int c = cols ? cols[j] : j;
        const int8_t *src = W + (int64_t)c * K;
        int16_t *dst = w + (int64_t)(j / 8) * K2 * 16 + (j % 8) * 2;
        for (int k = 0; k < K; k++) dst[(int64_t)(k / 2) * 16 + (k % 2)] = src[k];
        bias[j] = bias_folded[c];
        m[j] = mult[c];
        ls[j] = shift[c] > 0 ? shift[c] : 0;
        rs[j] = shift[c] > 0 ? 0 : -shift[c];
    }
    out->N = n; out->K = K; out->K2 = K2; out->NB = NB;
    out->w = w; out->bias = bias; out->mult = m; out->lshift = ls; out->rshift = rs;
}
