/* x86-64 AVX-512 (F, BW, VL, VNNI) variant. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC target("avx2,fma,bmi2,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
#include "../arch.h"
#define TN_SUFFIX avx512vnni
#define TN_HAVE_DW_ROW 1
#define TN_HAVE_ADD 1
#define TN_HAVE_DROP 1
#define TN_HAVE_ZERO_CH 1
#include "kernels.inc"
#endif

/* ---- hand-written AVX-512 VNNI packed GEMM with fused requantization ---- */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <string.h>

/* TFLite's double-rounding requantization of 16 lanes (requant.h): acc (bias included) << lsh, rounding
 * doubling high multiply by mult, rounding divide by 2^rsh, + zp, clamp; per-lane vectors */
static inline __m512i rqv(__m512i acc, __m512i lsh, __m512i mult, __m512i rsh, __m512i zp, __m512i lo, __m512i hi) {
    const __m512i one = _mm512_set1_epi32(1);
    const __m512i x = _mm512_sllv_epi32(acc, lsh);
    const __m512i nudge = _mm512_set1_epi64(1ll << 30);
    __m512i pe = _mm512_mul_epi32(x, mult);
    __m512i po = _mm512_mul_epi32(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(mult, 32));
    pe = _mm512_srai_epi64(_mm512_add_epi64(pe, nudge), 31);
    po = _mm512_srai_epi64(_mm512_add_epi64(po, nudge), 31);
    const __m512i high = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
    const __m512i mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, rsh), one);
    const __m512i rem = _mm512_and_si512(high, mask);
    const __m512i thr = _mm512_add_epi32(_mm512_srai_epi32(mask, 1), _mm512_srli_epi32(high, 31));
    __m512i r = _mm512_srav_epi32(high, rsh);
    r = _mm512_mask_add_epi32(r, _mm512_cmpgt_epi32_mask(rem, thr), r, one);
    r = _mm512_add_epi32(r, zp);
    return _mm512_min_epi32(_mm512_max_epi32(r, lo), hi);
}

/* one depthwise row (arch.h): 64 lanes at a time, accumulators in registers across the taps; the uint8
 * input zero-extended to 32-bit lanes so vpdpwssd multiplies it by the low 16 bits of each weight */
void tn_dw_row_avx512vnni(int n, const uint8_t *const *in, const tn_dw_packed *pk, int32_t zp, int32_t lo, int32_t hi,
                          int8_t *y) {
    const int P = pk->P, T = pk->taps;
    const __m512i vzp = _mm512_set1_epi32(zp), vlo = _mm512_set1_epi32(lo), vhi = _mm512_set1_epi32(hi);
    int j0 = 0, l0 = 0;
#define TN_DW_L(i) (l0 + 16 * (i) < P ? l0 + 16 * (i) : (l0 + 16 * (i)) % P)
#define TN_DW_RQ(a, l) rqv(a, _mm512_loadu_si512(pk->lshift + (l)), _mm512_loadu_si512(pk->mult + (l)),              \
                           _mm512_loadu_si512(pk->rshift + (l)), vzp, vlo, vhi)
    for (; j0 + 64 <= n; j0 += 64) {
        const int l1 = TN_DW_L(1), l2 = TN_DW_L(2), l3 = TN_DW_L(3);
        __m512i a0 = _mm512_loadu_si512(pk->bias + l0), a1 = _mm512_loadu_si512(pk->bias + l1);
        __m512i a2 = _mm512_loadu_si512(pk->bias + l2), a3 = _mm512_loadu_si512(pk->bias + l3);
        for (int t = 0; t < T; t++) {
            const uint8_t *x = in[t] + j0;
            const int32_t *w = pk->w + (int64_t)t * P;
            a0 = _mm512_dpwssd_epi32(a0, _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)x)), _mm512_loadu_si512(w + l0));
            a1 = _mm512_dpwssd_epi32(a1, _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(x + 16))), _mm512_loadu_si512(w + l1));
            a2 = _mm512_dpwssd_epi32(a2, _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(x + 32))), _mm512_loadu_si512(w + l2));
            a3 = _mm512_dpwssd_epi32(a3, _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(x + 48))), _mm512_loadu_si512(w + l3));
        }
        _mm_storeu_si128((__m128i *)(y + j0), _mm512_cvtepi32_epi8(TN_DW_RQ(a0, l0)));
        _mm_storeu_si128((__m128i *)(y + j0 + 16), _mm512_cvtepi32_epi8(TN_DW_RQ(a1, l1)));
        _mm_storeu_si128((__m128i *)(y + j0 + 32), _mm512_cvtepi32_epi8(TN_DW_RQ(a2, l2)));
        _mm_storeu_si128((__m128i *)(y + j0 + 48), _mm512_cvtepi32_epi8(TN_DW_RQ(a3, l3)));
        l0 = TN_DW_L(4);
    }
    for (; j0 < n; j0 += 16) {
        __m512i a0 = _mm512_loadu_si512(pk->bias + l0);
        for (int t = 0; t < T; t++)
            a0 = _mm512_dpwssd_epi32(a0, _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(in[t] + j0))),
                                     _mm512_loadu_si512(pk->w + (int64_t)t * P + l0));
        const __mmask16 mk = n - j0 >= 16 ? 0xFFFF : (__mmask16)((1u << (n - j0)) - 1);
        _mm_mask_storeu_epi8(y + j0, mk, _mm512_cvtepi32_epi8(TN_DW_RQ(a0, l0)));
        l0 = TN_DW_L(1);
    }
#undef TN_DW_L
#undef TN_DW_RQ
}

/* TFLite's double-rounding requantization of 16 lanes (requant.h), per-lane multiplier and shifts */
static inline __m128i rq16(__m512i acc, const tn_q8_packed *B, int j0, __m512i zp, __m512i lo, __m512i hi) {
    const __m512i one = _mm512_set1_epi32(1);
    const __m512i x = _mm512_sllv_epi32(_mm512_add_epi32(acc, _mm512_loadu_si512(B->bias + j0)),
                                        _mm512_loadu_si512(B->lshift + j0));
    const __m512i mult = _mm512_loadu_si512(B->mult + j0);
    const __m512i nudge = _mm512_set1_epi64(1ll << 30);
    __m512i pe = _mm512_mul_epi32(x, mult);
    __m512i po = _mm512_mul_epi32(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(mult, 32));
    pe = _mm512_srai_epi64(_mm512_add_epi64(pe, nudge), 31);
    po = _mm512_srai_epi64(_mm512_add_epi64(po, nudge), 31);
    const __m512i high = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
    const __m512i rsh = _mm512_loadu_si512(B->rshift + j0);
    const __m512i mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, rsh), one);
    const __m512i rem = _mm512_and_si512(high, mask);
    const __m512i thr = _mm512_add_epi32(_mm512_srai_epi32(mask, 1), _mm512_srli_epi32(high, 31));
    __m512i r = _mm512_srav_epi32(high, rsh);
    r = _mm512_mask_add_epi32(r, _mm512_cmpgt_epi32_mask(rem, thr), r, one);
    r = _mm512_add_epi32(r, zp);
    r = _mm512_min_epi32(_mm512_max_epi32(r, lo), hi);
    return _mm512_cvtepi32_epi8(r);
}

#define TN_Q8_TILE(MR)                                                                                        \
    static void tile_##MR(int K4, const uint8_t *A, int lda, const int8_t *bw, __m512i acc[MR]) {             \
        for (int r = 0; r < MR; r++) acc[r] = _mm512_setzero_si512();                                       \
        for (int k4 = 0; k4 < K4; k4++) {                                                                    \
            const __m512i b = _mm512_load_si512(bw + (int64_t)k4 * 64);                                      \
            for (int r = 0; r < MR; r++) {                                                                   \
                int32_t a;                                                                                   \
                memcpy(&a, A + (int64_t)r * lda + 4 * k4, 4);                                                \
                acc[r] = _mm512_dpbusd_epi32(acc[r], _mm512_set1_epi32(a), b);                               \
            }                                                                                                \
        }                                                                                                    \
    }
TN_Q8_TILE(8)
TN_Q8_TILE(4)
TN_Q8_TILE(1)

void tn_q8_gemv_raw_avx512vnni(const tn_q8_packed *B, int k4a, int k4b, const uint8_t *a, const uint8_t *blocks,
                               int32_t *out) {
    const int K4 = B->K4;
    int nb = 0;
    while (nb < B->NB) {
        if (blocks && !blocks[nb]) {
            nb++;
            continue;
        }
        if (nb + 4 <= B->NB && (!blocks || (blocks[nb + 1] && blocks[nb + 2] && blocks[nb + 3]))) {
            /* four blocks of 16 rows share each broadcast */
            const int8_t *w = B->w + (int64_t)nb * K4 * 64;
            __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
            for (int k4 = k4a; k4 < k4b; k4++) {
                int32_t v;
                memcpy(&v, a + 4 * k4, 4);
                const __m512i x = _mm512_set1_epi32(v);
                a0 = _mm512_dpbusd_epi32(a0, x, _mm512_load_si512(w + (int64_t)k4 * 64));
                a1 = _mm512_dpbusd_epi32(a1, x, _mm512_load_si512(w + ((int64_t)K4 + k4) * 64));
                a2 = _mm512_dpbusd_epi32(a2, x, _mm512_load_si512(w + ((int64_t)2 * K4 + k4) * 64));
                a3 = _mm512_dpbusd_epi32(a3, x, _mm512_load_si512(w + ((int64_t)3 * K4 + k4) * 64));
            }
            _mm512_storeu_si512(out + 16 * nb, a0);
            _mm512_storeu_si512(out + 16 * nb + 16, a1);
            _mm512_storeu_si512(out + 16 * nb + 32, a2);
            _mm512_storeu_si512(out + 16 * nb + 48, a3);
            nb += 4;
            continue;
        }
        const int8_t *w = B->w + (int64_t)nb * K4 * 64;
        __m512i a0 = _mm512_setzero_si512();
        for (int k4 = k4a; k4 < k4b; k4++) {
            int32_t v;
            memcpy(&v, a + 4 * k4, 4);
            a0 = _mm512_dpbusd_epi32(a0, _mm512_set1_epi32(v), _mm512_load_si512(w + (int64_t)k4 * 64));
        }
        _mm512_storeu_si512(out + 16 * nb, a0);
        nb++;
    }
}

/* two channel blocks per pass: 4 pixels x 32 channels, one broadcast feeding two dot products */
static void tile_4x2(int K4, const uint8_t *A, int lda, const int8_t *bw0, const int8_t *bw1, __m512i acc[8]) {
    for (int r = 0; r < 8; r++) acc[r] = _mm512_setzero_si512();
    for (int k4 = 0; k4 < K4; k4++) {
        const __m512i b0 = _mm512_load_si512(bw0 + (int64_t)k4 * 64);
        const __m512i b1 = _mm512_load_si512(bw1 + (int64_t)k4 * 64);
        for (int r = 0; r < 4; r++) {
            int32_t a;
            memcpy(&a, A + (int64_t)r * lda + 4 * k4, 4);
            const __m512i av = _mm512_set1_epi32(a);
            acc[2 * r] = _mm512_dpbusd_epi32(acc[2 * r], av, b0);
            acc[2 * r + 1] = _mm512_dpbusd_epi32(acc[2 * r + 1], av, b1);
        }
    }
}

/* A block with at most 8 valid channels runs on 256-bit registers over the low half of each 64-byte row:
 * half the work, which is what makes dropping channels (drowsy) pay on layers of 16 channels. */
static inline __m128i rq8(__m256i acc, const tn_q8_packed *B, int j0, int32_t zp, int32_t lo, int32_t hi) {
    const __m512i wide = _mm512_castsi256_si512(acc);
    return rq16(wide, B, j0, _mm512_set1_epi32(zp), _mm512_set1_epi32(lo), _mm512_set1_epi32(hi));
}

static void half_block(int M, const uint8_t *A, int lda, const tn_q8_packed *B, int nb, int nv, int32_t zp,
                       int32_t lo, int32_t hi, int8_t *Y, int ldy) {
    const int K4 = B->K4;
    const int8_t *bw = B->w + (int64_t)nb * K4 * 64;
    const __mmask16 mk = (__mmask16)((1u << nv) - 1);
    int m = 0;
    for (; m + 8 <= M; m += 8) {
        __m256i acc[8];
        for (int r = 0; r < 8; r++) acc[r] = _mm256_setzero_si256();
        for (int k4 = 0; k4 < K4; k4++) {
            const __m256i b = _mm256_load_si256((const __m256i *)(bw + (int64_t)k4 * 64));
            for (int r = 0; r < 8; r++) {
                int32_t a;
                memcpy(&a, A + (int64_t)(m + r) * lda + 4 * k4, 4);
                acc[r] = _mm256_dpbusd_epi32(acc[r], _mm256_set1_epi32(a), b);
            }
        }
        for (int r = 0; r < 8; r++)
            _mm_mask_storeu_epi8(Y + (int64_t)(m + r) * ldy + nb * 16, mk, rq8(acc[r], B, nb * 16, zp, lo, hi));
    }
    for (; m < M; m++) {
        __m256i acc = _mm256_setzero_si256();
        for (int k4 = 0; k4 < K4; k4++) {
            int32_t a;
            memcpy(&a, A + (int64_t)m * lda + 4 * k4, 4);
            acc = _mm256_dpbusd_epi32(acc, _mm256_set1_epi32(a), _mm256_load_si256((const __m256i *)(bw + (int64_t)k4 * 64)));
        }
        _mm_mask_storeu_epi8(Y + (int64_t)m * ldy + nb * 16, mk, rq8(acc, B, nb * 16, zp, lo, hi));
    }
}

void tn_q8_gemm_avx512vnni(int M, const uint8_t *A, int lda, const tn_q8_packed *B, int32_t zp, int32_t lo,
                           int32_t hi, int8_t *Y, int ldy) {
    const __m512i vzp = _mm512_set1_epi32(zp), vlo = _mm512_set1_epi32(lo), vhi = _mm512_set1_epi32(hi);
    const int K4 = B->K4;
    __m512i acc[8];
    int nb = 0;
    for (; nb + 2 <= B->NB; nb += 2) {
        const int8_t *bw0 = B->w + (int64_t)nb * K4 * 64, *bw1 = bw0 + (int64_t)K4 * 64;
        const int n1 = B->N - (nb + 1) * 16;
        const __mmask16 m1 = n1 >= 16 ? 0xFFFF : (__mmask16)((1u << n1) - 1);
        int m = 0;
        for (; m + 4 <= M; m += 4) {
            tile_4x2(K4, A + (int64_t)m * lda, lda, bw0, bw1, acc);
            for (int r = 0; r < 4; r++) {
                int8_t *y = Y + (int64_t)(m + r) * ldy + nb * 16;
                _mm_storeu_si128((__m128i *)y, rq16(acc[2 * r], B, nb * 16, vzp, vlo, vhi));
                _mm_mask_storeu_epi8(y + 16, m1, rq16(acc[2 * r + 1], B, nb * 16 + 16, vzp, vlo, vhi));
            }
        }
        for (; m < M; m++) {
            for (int h = 0; h < 2; h++) {
                tile_1(K4, A + (int64_t)m * lda, lda, h ? bw1 : bw0, acc);
                const int nv = B->N - (nb + h) * 16;
                const __mmask16 mk = nv >= 16 ? 0xFFFF : (__mmask16)((1u << nv) - 1);
                _mm_mask_storeu_epi8(Y + (int64_t)m * ldy + (nb + h) * 16, mk,
                                     rq16(acc[0], B, (nb + h) * 16, vzp, vlo, vhi));
            }
        }
    }
    for (; nb < B->NB; nb++) {
        const int8_t *bw = B->w + (int64_t)nb * K4 * 64;
        const int nv = B->N - nb * 16;
        if (nv <= 8) {
            half_block(M, A, lda, B, nb, nv, zp, lo, hi, Y, ldy);
            continue;
        }
        const __mmask16 mk = nv >= 16 ? 0xFFFF : (__mmask16)((1u << nv) - 1);
        int m = 0;
        for (; m + 8 <= M; m += 8) {
            tile_8(K4, A + (int64_t)m * lda, lda, bw, acc);
            for (int r = 0; r < 8; r++)
                _mm_mask_storeu_epi8(Y + (int64_t)(m + r) * ldy + nb * 16, mk, rq16(acc[r], B, nb * 16, vzp, vlo, vhi));
        }
        for (; m + 4 <= M; m += 4) {
            tile_4(K4, A + (int64_t)m * lda, lda, bw, acc);
            for (int r = 0; r < 4; r++)
                _mm_mask_storeu_epi8(Y + (int64_t)(m + r) * ldy + nb * 16, mk, rq16(acc[r], B, nb * 16, vzp, vlo, vhi));
        }
        for (; m < M; m++) {
            tile_1(K4, A + (int64_t)m * lda, lda, bw, acc);
            _mm_mask_storeu_epi8(Y + (int64_t)m * ldy + nb * 16, mk, rq16(acc[0], B, nb * 16, vzp, vlo, vhi));
        }
    }
}
#endif

/* ---- implicit-GEMM conv with output positions in lanes (arch.h: tn_px_packed) ---- */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* accumulators of 16 positions x 4*NBT channels: per reduction step one 64-byte load of the positions' input
 * bytes and one vpdpbusd per channel with its 4 weight bytes broadcast */
/* requantization of 16 lanes of one channel (requant.h, scalar parameters) plus the zero point, saturated to
 * int8; the activation clamp follows on bytes */
static inline __m128i rq_ch(__m512i acc, int32_t bias, int32_t ls, int32_t mult, int32_t rs, __m512i zp) {
    __m512i x = _mm512_add_epi32(acc, _mm512_set1_epi32(bias));
    if (ls) x = _mm512_sll_epi32(x, _mm_cvtsi32_si128(ls));
    const __m512i m = _mm512_set1_epi32(mult), n30 = _mm512_set1_epi64(1ll << 30);
    const __m512i pe = _mm512_add_epi64(_mm512_mul_epi32(x, m), n30);
    const __m512i po = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), m), n30);
    /* bits 31..62 of each 64-bit product: the low dword of the even lanes, the high one of the odd lanes */
    const __m512i high = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 31), _mm512_slli_epi64(po, 1));
    const int32_t mask = (int32_t)((1ll << rs) - 1);
    __m512i r = _mm512_sra_epi32(high, _mm_cvtsi32_si128(rs));
    const __m512i rem = _mm512_and_si512(high, _mm512_set1_epi32(mask));
    const __m512i thr = _mm512_add_epi32(_mm512_set1_epi32(mask >> 1), _mm512_srli_epi32(high, 31));
    r = _mm512_mask_add_epi32(r, _mm512_cmpgt_epi32_mask(rem, thr), r, _mm512_set1_epi32(1));
    return _mm512_cvtsepi32_epi8(_mm512_add_epi32(r, zp));
}

/* accumulators of 16 positions x n channels (named, so that they stay in registers): per reduction step one
 * 64-byte load of the positions' input bytes and one vpdpbusd per channel with its 4 weight bytes broadcast.
 * (Two chunks sharing each broadcast, 24 accumulators, ran at half the rate on Zen 4.) */
static inline void px_acc_16(int kg, const uint8_t *A, const int64_t *koff, const int8_t *w, __m512i *out) {
    __m512i a0 = _mm512_setzero_si512(); __m512i a1 = _mm512_setzero_si512(); __m512i a2 = _mm512_setzero_si512(); __m512i a3 = _mm512_setzero_si512(); __m512i a4 = _mm512_setzero_si512(); __m512i a5 = _mm512_setzero_si512(); __m512i a6 = _mm512_setzero_si512(); __m512i a7 = _mm512_setzero_si512(); __m512i a8 = _mm512_setzero_si512(); __m512i a9 = _mm512_setzero_si512(); __m512i a10 = _mm512_setzero_si512(); __m512i a11 = _mm512_setzero_si512(); __m512i a12 = _mm512_setzero_si512(); __m512i a13 = _mm512_setzero_si512(); __m512i a14 = _mm512_setzero_si512(); __m512i a15 = _mm512_setzero_si512();
    for (int k = 0; k < kg; k++) {
        const __m512i x = _mm512_loadu_si512(A + koff[k]);
        const int32_t *wk = (const int32_t *)(w + (int64_t)k * 64);
        a0 = _mm512_dpbusd_epi32(a0, x, _mm512_set1_epi32(wk[0]));
        a1 = _mm512_dpbusd_epi32(a1, x, _mm512_set1_epi32(wk[1]));
        a2 = _mm512_dpbusd_epi32(a2, x, _mm512_set1_epi32(wk[2]));
        a3 = _mm512_dpbusd_epi32(a3, x, _mm512_set1_epi32(wk[3]));
        a4 = _mm512_dpbusd_epi32(a4, x, _mm512_set1_epi32(wk[4]));
        a5 = _mm512_dpbusd_epi32(a5, x, _mm512_set1_epi32(wk[5]));
        a6 = _mm512_dpbusd_epi32(a6, x, _mm512_set1_epi32(wk[6]));
        a7 = _mm512_dpbusd_epi32(a7, x, _mm512_set1_epi32(wk[7]));
        a8 = _mm512_dpbusd_epi32(a8, x, _mm512_set1_epi32(wk[8]));
        a9 = _mm512_dpbusd_epi32(a9, x, _mm512_set1_epi32(wk[9]));
        a10 = _mm512_dpbusd_epi32(a10, x, _mm512_set1_epi32(wk[10]));
        a11 = _mm512_dpbusd_epi32(a11, x, _mm512_set1_epi32(wk[11]));
        a12 = _mm512_dpbusd_epi32(a12, x, _mm512_set1_epi32(wk[12]));
        a13 = _mm512_dpbusd_epi32(a13, x, _mm512_set1_epi32(wk[13]));
        a14 = _mm512_dpbusd_epi32(a14, x, _mm512_set1_epi32(wk[14]));
        a15 = _mm512_dpbusd_epi32(a15, x, _mm512_set1_epi32(wk[15]));
    }
    out[0] = a0; out[1] = a1; out[2] = a2; out[3] = a3; out[4] = a4; out[5] = a5; out[6] = a6; out[7] = a7; out[8] = a8; out[9] = a9; out[10] = a10; out[11] = a11; out[12] = a12; out[13] = a13; out[14] = a14; out[15] = a15;
}
static inline void px_acc_12(int kg, const uint8_t *A, const int64_t *koff, const int8_t *w, __m512i *out) {
    __m512i a0 = _mm512_setzero_si512(); __m512i a1 = _mm512_setzero_si512(); __m512i a2 = _mm512_setzero_si512(); __m512i a3 = _mm512_setzero_si512(); __m512i a4 = _mm512_setzero_si512(); __m512i a5 = _mm512_setzero_si512(); __m512i a6 = _mm512_setzero_si512(); __m512i a7 = _mm512_setzero_si512(); __m512i a8 = _mm512_setzero_si512(); __m512i a9 = _mm512_setzero_si512(); __m512i a10 = _mm512_setzero_si512(); __m512i a11 = _mm512_setzero_si512();
    for (int k = 0; k < kg; k++) {
        const __m512i x = _mm512_loadu_si512(A + koff[k]);
        const int32_t *wk = (const int32_t *)(w + (int64_t)k * 48);
        a0 = _mm512_dpbusd_epi32(a0, x, _mm512_set1_epi32(wk[0]));
        a1 = _mm512_dpbusd_epi32(a1, x, _mm512_set1_epi32(wk[1]));
        a2 = _mm512_dpbusd_epi32(a2, x, _mm512_set1_epi32(wk[2]));
        a3 = _mm512_dpbusd_epi32(a3, x, _mm512_set1_epi32(wk[3]));
        a4 = _mm512_dpbusd_epi32(a4, x, _mm512_set1_epi32(wk[4]));
        a5 = _mm512_dpbusd_epi32(a5, x, _mm512_set1_epi32(wk[5]));
        a6 = _mm512_dpbusd_epi32(a6, x, _mm512_set1_epi32(wk[6]));
        a7 = _mm512_dpbusd_epi32(a7, x, _mm512_set1_epi32(wk[7]));
        a8 = _mm512_dpbusd_epi32(a8, x, _mm512_set1_epi32(wk[8]));
        a9 = _mm512_dpbusd_epi32(a9, x, _mm512_set1_epi32(wk[9]));
        a10 = _mm512_dpbusd_epi32(a10, x, _mm512_set1_epi32(wk[10]));
        a11 = _mm512_dpbusd_epi32(a11, x, _mm512_set1_epi32(wk[11]));
    }
    out[0] = a0; out[1] = a1; out[2] = a2; out[3] = a3; out[4] = a4; out[5] = a5; out[6] = a6; out[7] = a7; out[8] = a8; out[9] = a9; out[10] = a10; out[11] = a11;
}
static inline void px_acc_8(int kg, const uint8_t *A, const int64_t *koff, const int8_t *w, __m512i *out) {
    __m512i a0 = _mm512_setzero_si512(); __m512i a1 = _mm512_setzero_si512(); __m512i a2 = _mm512_setzero_si512(); __m512i a3 = _mm512_setzero_si512(); __m512i a4 = _mm512_setzero_si512(); __m512i a5 = _mm512_setzero_si512(); __m512i a6 = _mm512_setzero_si512(); __m512i a7 = _mm512_setzero_si512();
    for (int k = 0; k < kg; k++) {
        const __m512i x = _mm512_loadu_si512(A + koff[k]);
        const int32_t *wk = (const int32_t *)(w + (int64_t)k * 32);
        a0 = _mm512_dpbusd_epi32(a0, x, _mm512_set1_epi32(wk[0]));
        a1 = _mm512_dpbusd_epi32(a1, x, _mm512_set1_epi32(wk[1]));
        a2 = _mm512_dpbusd_epi32(a2, x, _mm512_set1_epi32(wk[2]));
        a3 = _mm512_dpbusd_epi32(a3, x, _mm512_set1_epi32(wk[3]));
        a4 = _mm512_dpbusd_epi32(a4, x, _mm512_set1_epi32(wk[4]));
        a5 = _mm512_dpbusd_epi32(a5, x, _mm512_set1_epi32(wk[5]));
        a6 = _mm512_dpbusd_epi32(a6, x, _mm512_set1_epi32(wk[6]));
        a7 = _mm512_dpbusd_epi32(a7, x, _mm512_set1_epi32(wk[7]));
    }
    out[0] = a0; out[1] = a1; out[2] = a2; out[3] = a3; out[4] = a4; out[5] = a5; out[6] = a6; out[7] = a7;
}
static inline void px_acc_4(int kg, const uint8_t *A, const int64_t *koff, const int8_t *w, __m512i *out) {
    __m512i a0 = _mm512_setzero_si512(); __m512i a1 = _mm512_setzero_si512(); __m512i a2 = _mm512_setzero_si512(); __m512i a3 = _mm512_setzero_si512();
    for (int k = 0; k < kg; k++) {
        const __m512i x = _mm512_loadu_si512(A + koff[k]);
        const int32_t *wk = (const int32_t *)(w + (int64_t)k * 16);
        a0 = _mm512_dpbusd_epi32(a0, x, _mm512_set1_epi32(wk[0]));
        a1 = _mm512_dpbusd_epi32(a1, x, _mm512_set1_epi32(wk[1]));
        a2 = _mm512_dpbusd_epi32(a2, x, _mm512_set1_epi32(wk[2]));
        a3 = _mm512_dpbusd_epi32(a3, x, _mm512_set1_epi32(wk[3]));
    }
    out[0] = a0; out[1] = a1; out[2] = a2; out[3] = a3;
}

typedef struct {
    int n, nkp, nob, expand, inreg;
    __m512i zp, lo, hi, t44;
    __m128i zero;
    __mmask16 lastm;
    __m512i ictl[TN_PX_MAX_EXPAND / 16];  /* in-register expansion: the control per output block, per lane */
} px_ctx;

/* one tile of one chunk: requantization, a 16x16 byte transpose ([channel][position] to [position][channel]:
 * lane L of z[i] holds channel 4L + i; two rounds of unpacking give, in lane L, channels 4L..4L+3 of 4
 * positions as dwords, and a 4x4 dword transpose gathers each position's 16 channels into one lane), then
 * the stores: at the positions' outputs, or into the compact rows cb when a subset is expanded later */
static inline void px_tile_out(const px_ctx *cx, const tn_px_packed *B, const __m512i *acc, int width, int c0,
                               int8_t *const *dst, int8_t *cb) {
    __m128i r[16];
    for (int j = 0; j < 16; j++) {
        if (j >= width) { r[j] = _mm_setzero_si128(); continue; }
        const int c = c0 + j;
        r[j] = rq_ch(acc[j], B->bias[c], B->lshift[c], B->mult[c], B->rshift[c], cx->zp);
    }
    __m512i z[4];
    for (int i = 0; i < 4; i++) {
        __m512i v = _mm512_castsi128_si512(r[i]);
        v = _mm512_inserti32x4(v, r[4 + i], 1);
        v = _mm512_inserti32x4(v, r[8 + i], 2);
        z[i] = _mm512_inserti32x4(v, r[12 + i], 3);
    }
    const __m512i ulo = _mm512_unpacklo_epi8(z[0], z[1]), uhi = _mm512_unpackhi_epi8(z[0], z[1]);
    const __m512i vlo = _mm512_unpacklo_epi8(z[2], z[3]), vhi = _mm512_unpackhi_epi8(z[2], z[3]);
    __m512i o[4];
    o[0] = _mm512_permutexvar_epi32(cx->t44, _mm512_unpacklo_epi16(ulo, vlo));
    o[1] = _mm512_permutexvar_epi32(cx->t44, _mm512_unpackhi_epi16(ulo, vlo));
    o[2] = _mm512_permutexvar_epi32(cx->t44, _mm512_unpacklo_epi16(uhi, vhi));
    o[3] = _mm512_permutexvar_epi32(cx->t44, _mm512_unpackhi_epi16(uhi, vhi));
    for (int k = 0; k < 4; k++) o[k] = _mm512_min_epi8(_mm512_max_epi8(o[k], cx->lo), cx->hi);
    if (cx->inreg) {
        /* a subset of at most 16 channels: each output block is a shuffle of the position's one lane */
        const __m512i zero = _mm512_broadcast_i32x4(cx->zero);
        for (int ob = 0; ob < cx->nob; ob++) {
            const __mmask64 km = (__mmask64)0x0001000100010001ull * (uint16_t)B->xmask[ob];
            const __mmask16 sm = ob == cx->nob - 1 ? cx->lastm : 0xFFFF;
            for (int k = 0; k < 4; k++) {
                const __m512i v = _mm512_mask_shuffle_epi8(zero, km, o[k], cx->ictl[ob]);
                int8_t *const *d = dst + 4 * k;
                if (d[0]) _mm_mask_storeu_epi8(d[0] + 16 * ob, sm, _mm512_castsi512_si128(v));
                if (d[1]) _mm_mask_storeu_epi8(d[1] + 16 * ob, sm, _mm512_extracti32x4_epi32(v, 1));
                if (d[2]) _mm_mask_storeu_epi8(d[2] + 16 * ob, sm, _mm512_extracti32x4_epi32(v, 2));
                if (d[3]) _mm_mask_storeu_epi8(d[3] + 16 * ob, sm, _mm512_extracti32x4_epi32(v, 3));
            }
        }
        return;
    }
    if (cx->expand) {
        const int nkp = cx->nkp;
        for (int k = 0; k < 4; k++) {
            int8_t *cbk = cb + (int64_t)(4 * k) * nkp + c0;
            _mm_storeu_si128((__m128i *)cbk, _mm512_castsi512_si128(o[k]));
            _mm_storeu_si128((__m128i *)(cbk + nkp), _mm512_extracti32x4_epi32(o[k], 1));
            _mm_storeu_si128((__m128i *)(cbk + 2 * nkp), _mm512_extracti32x4_epi32(o[k], 2));
            _mm_storeu_si128((__m128i *)(cbk + 3 * nkp), _mm512_extracti32x4_epi32(o[k], 3));
        }
        return;
    }
    const __mmask16 cm = cx->n - c0 >= 16 ? 0xFFFF : (__mmask16)((1u << (cx->n - c0)) - 1);
    for (int k = 0; k < 4; k++) {
        if (dst[4 * k]) _mm_mask_storeu_epi8(dst[4 * k] + c0, cm, _mm512_castsi512_si128(o[k]));
        if (dst[4 * k + 1]) _mm_mask_storeu_epi8(dst[4 * k + 1] + c0, cm, _mm512_extracti32x4_epi32(o[k], 1));
        if (dst[4 * k + 2]) _mm_mask_storeu_epi8(dst[4 * k + 2] + c0, cm, _mm512_extracti32x4_epi32(o[k], 2));
        if (dst[4 * k + 3]) _mm_mask_storeu_epi8(dst[4 * k + 3] + c0, cm, _mm512_extracti32x4_epi32(o[k], 3));
    }
}

/* a subset's compact rows into the layer's channels: each output block of 16 takes its computed channels
 * shuffled into place, real zero elsewhere */
static inline void px_expand(const px_ctx *cx, const tn_px_packed *B, int8_t *const *dst, const int8_t *cb) {
    for (int ob = 0; ob < cx->nob; ob++) {
        const __m128i ctl = _mm_loadu_si128((const __m128i *)(B->xctl + 16 * ob));
        const __mmask16 km = (__mmask16)B->xmask[ob], sm = ob == cx->nob - 1 ? cx->lastm : 0xFFFF;
        const int8_t *src = cb + B->xoff[ob];
        for (int i = 0; i < 16; i++) {
            if (!dst[i]) continue;
            const __m128i v = _mm_loadu_si128((const __m128i *)(src + (int64_t)i * cx->nkp));
            _mm_mask_storeu_epi8(dst[i] + 16 * ob, sm, _mm_mask_shuffle_epi8(cx->zero, km, v, ctl));
        }
    }
}

/* output pointers of the 16 positions from q (NULL: a column past ow, or past the range) */
static inline void px_dst(int q, int end, int Wq, int ow, int row0, int8_t *Y, int ldy, int8_t **dst) {
    int row = q / Wq, col = q % Wq;
    for (int i = 0; i < 16; i++) {
        dst[i] = (q + i < end && col < ow) ? Y + ((int64_t)(row - row0) * ow + col) * ldy : NULL;
        if (++col == Wq) { col = 0; row++; }
    }
}

static inline void px_acc1(int width, int kg, const uint8_t *A, const int64_t *koff, const int8_t *w, __m512i *acc) {
    switch (width) {
        case 16: px_acc_16(kg, A, koff, w, acc); break;
        case 12: px_acc_12(kg, A, koff, w, acc); break;
        case 8: px_acc_8(kg, A, koff, w, acc); break;
        default: px_acc_4(kg, A, koff, w, acc); break;
    }
}

void tn_px_conv_avx512vnni(int p0, int np, int Wq, int ow, const uint8_t *X, const int64_t *koff,
                           const tn_px_packed *B, int32_t zp, int32_t lo, int32_t hi, int8_t *Y, int ldy) {
    const int kg = B->kg, n = B->n, row0 = p0 / Wq, end = p0 + np;
    px_ctx cx;
    cx.n = n;
    cx.expand = B->xoff != NULL && B->cout <= TN_PX_MAX_EXPAND;
    cx.nkp = 16 * ((n + 15) / 16);
    cx.nob = (B->cout + 15) / 16;
    cx.lastm = B->cout % 16 ? (__mmask16)((1u << (B->cout % 16)) - 1) : 0xFFFF;
    cx.zero = _mm_set1_epi8((int8_t)(zp < lo ? lo : (zp > hi ? hi : zp)));
    cx.zp = _mm512_set1_epi32(zp);
    cx.lo = _mm512_set1_epi8((int8_t)lo);
    cx.hi = _mm512_set1_epi8((int8_t)hi);
    cx.t44 = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);  /* dword 4L + i to 4i + L */
    cx.inreg = cx.expand && n <= 16;
    if (cx.inreg) {
        cx.expand = 0;
        for (int ob = 0; ob < cx.nob; ob++)  /* absolute indices into the single tile's 16 channels */
            cx.ictl[ob] = _mm512_broadcast_i32x4(_mm_add_epi8(_mm_loadu_si128((const __m128i *)(B->xctl + 16 * ob)),
                                                              _mm_set1_epi8((int8_t)B->xoff[ob])));
    }
    int8_t cb[16 * TN_PX_MAX_EXPAND + 64];
    for (int q = p0; q < end; q += 16) {
        int8_t *dst[16];
        px_dst(q, end, Wq, ow, row0, Y, ldy, dst);
        const uint8_t *A = X + (int64_t)q * 4;
        for (int c0 = 0, t = 0; c0 < n; c0 += 16, t++) {
            const int width = TN_PX_WIDTH(n, t);
            __m512i acc[16];
            px_acc1(width, kg, A, koff, B->w + (int64_t)t * kg * 64, acc);
            px_tile_out(&cx, B, acc, width, c0, dst, cb);
        }
        if (cx.expand) px_expand(&cx, B, dst, cb);
    }
}
#endif

/* ---- input planes of the positions-in-lanes path ---- */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* 16 pixels' 4 consecutive dwords (z[j] lane L: pixel 4j + L) to 4 vectors of one dword per pixel (group g:
 * dword g of pixels 0..15, in order) */
static inline void px_t4(__m512i z0, __m512i z1, __m512i z2, __m512i z3, __m512i t44, __m512i out[4]) {
    const __m512i t0 = _mm512_unpacklo_epi32(z0, z1), t1 = _mm512_unpackhi_epi32(z0, z1);
    const __m512i t2 = _mm512_unpacklo_epi32(z2, z3), t3 = _mm512_unpackhi_epi32(z2, z3);
    out[0] = _mm512_permutexvar_epi32(t44, _mm512_unpacklo_epi64(t0, t2));
    out[1] = _mm512_permutexvar_epi32(t44, _mm512_unpackhi_epi64(t0, t2));
    out[2] = _mm512_permutexvar_epi32(t44, _mm512_unpacklo_epi64(t1, t3));
    out[3] = _mm512_permutexvar_epi32(t44, _mm512_unpackhi_epi64(t1, t3));
}

/* n pixels at src + i * sstride (cin int8 channels each) to planes: dst[g * plane + 4 * i + b] =
 * src[i * sstride + 4 * g + b] ^ 0x80 for 4 * g + b < cin; the bytes of a last partial group past cin are
 * left as they are (their weights are zero). */
void tn_px_fill_avx512vnni(int n, const int8_t *src, int64_t sstride, int cin, uint8_t *dst, int64_t plane) {
    const __m512i x80 = _mm512_set1_epi32((int32_t)0x80808080u);
    const __m512i t44 = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    const int full = cin / 4;
    int i = 0;
    if (cin == 4 && sstride == 4) {
        for (; i + 16 <= n; i += 16)
            _mm512_storeu_si512(dst + 4 * i, _mm512_xor_si512(_mm512_loadu_si512(src + 4 * i), x80));
    } else if (cin == 8 && sstride == 8) {
        const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
        const __m512i od = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
        for (; i + 16 <= n; i += 16) {
            const __m512i a = _mm512_xor_si512(_mm512_loadu_si512(src + 8 * i), x80);
            const __m512i b = _mm512_xor_si512(_mm512_loadu_si512(src + 8 * i + 64), x80);
            _mm512_storeu_si512(dst + 4 * i, _mm512_permutex2var_epi32(a, ev, b));
            _mm512_storeu_si512(dst + plane + 4 * i, _mm512_permutex2var_epi32(a, od, b));
        }
    } else if (cin == 1 && sstride <= 2) {
        /* one channel: bytes (every other one for a stride of 2) widened to dwords */
        for (; i + 16 + (sstride == 2) <= n; i += 16) {  /* stride 2: the 32-byte load ends a byte past pixel i + 15 */
            __m512i v = sstride == 1 ? _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(src + i)))
                                     : _mm512_and_si512(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + 2 * i))),
                                                        _mm512_set1_epi32(0xFF));
            _mm512_storeu_si512(dst + 4 * i, _mm512_xor_si512(v, x80));
        }
    } else if (cin < 4) {
        /* 2 or 3 channels: a dword from each pixel's start; its bytes past cin belong to the next pixel (their
         * weights are zero), so the last pixel of the row is left to the scalar loop (no read past the input) */
        const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                               _mm512_set1_epi32((int32_t)sstride));
        for (; i + 17 <= n; i += 16)
            _mm512_storeu_si512(dst + 4 * i, _mm512_xor_si512(_mm512_i32gather_epi32(idx, src + (int64_t)i * sstride, 1), x80));
    } else if (cin % 16 == 0) {
        /* 4 groups at a time: 16 bytes of each of 16 pixels, transposed */
        for (; i + 16 <= n; i += 16) {
            const int8_t *s = src + (int64_t)i * sstride;
            for (int g = 0; g < full; g += 4) {
                __m512i z[4], o[4];
                for (int j = 0; j < 4; j++) {
                    const int8_t *p = s + (int64_t)(4 * j) * sstride + 4 * g;
                    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)p));
                    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + sstride)), 1);
                    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 2 * sstride)), 2);
                    z[j] = _mm512_xor_si512(_mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 3 * sstride)), 3), x80);
                }
                px_t4(z[0], z[1], z[2], z[3], t44, o);
                for (int j = 0; j < 4; j++) _mm512_storeu_si512(dst + (int64_t)(g + j) * plane + 4 * i, o[j]);
            }
        }
    }
    for (; i < n; i++) {
        const int8_t *s = src + (int64_t)i * sstride;
        uint8_t *d = dst + 4 * (int64_t)i;
        for (int g = 0; g < full; g++, d += plane) {
            uint32_t v;
            memcpy(&v, s + 4 * g, 4);
            v ^= 0x80808080u;
            memcpy(d, &v, 4);
        }
        for (int c = 4 * full; c < cin; c++) d[c - 4 * full] = (uint8_t)(s[c] ^ 0x80);
    }
}
#endif

/* ---- ADD (TFLite's integer arithmetic, arch.h: tn_add_params) ---- */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* MultiplyByQuantizedMultiplier with a right shift e (shift <= 0): rounding doubling high multiply, then a
 * rounding divide by 2^e, for 16 lanes with scalar parameters */
static inline __m512i mbqm_r(__m512i x, __m512i m, __m128i e, __m512i mask, __m512i half) {
    const __m512i n30 = _mm512_set1_epi64(1ll << 30);
    const __m512i pe = _mm512_add_epi64(_mm512_mul_epi32(x, m), n30);
    const __m512i po = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), m), n30);
    const __m512i high = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 31), _mm512_slli_epi64(po, 1));
    const __m512i rem = _mm512_and_si512(high, mask);
    const __m512i thr = _mm512_add_epi32(half, _mm512_srli_epi32(high, 31));
    const __m512i r = _mm512_sra_epi32(high, e);
    return _mm512_mask_add_epi32(r, _mm512_cmpgt_epi32_mask(rem, thr), r, _mm512_set1_epi32(1));
}

void tn_add_avx512vnni(int64_t n, const int8_t *a, const int8_t *b, const tn_add_params *p, int8_t *y) {
    const __m512i azp = _mm512_set1_epi32(p->a_zp), bzp = _mm512_set1_epi32(p->b_zp), ozp = _mm512_set1_epi32(p->out_zp);
    const __m128i ls = _mm_cvtsi32_si128(p->left_shift);
    const __m512i am = _mm512_set1_epi32(p->a_mult), bm = _mm512_set1_epi32(p->b_mult), om = _mm512_set1_epi32(p->out_mult);
    const int ae = -p->a_shift, be = -p->b_shift, oe = -p->out_shift;
    const __m128i aev = _mm_cvtsi32_si128(ae), bev = _mm_cvtsi32_si128(be), oev = _mm_cvtsi32_si128(oe);
    const __m512i amask = _mm512_set1_epi32((int32_t)((1ll << ae) - 1)), ahalf = _mm512_set1_epi32((int32_t)(((1ll << ae) - 1) >> 1));
    const __m512i bmask = _mm512_set1_epi32((int32_t)((1ll << be) - 1)), bhalf = _mm512_set1_epi32((int32_t)(((1ll << be) - 1) >> 1));
    const __m512i omask = _mm512_set1_epi32((int32_t)((1ll << oe) - 1)), ohalf = _mm512_set1_epi32((int32_t)(((1ll << oe) - 1) >> 1));
    const __m128i lo = _mm_set1_epi8((int8_t)p->lo), hi = _mm_set1_epi8((int8_t)p->hi);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512i xa = _mm512_sll_epi32(_mm512_sub_epi32(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(k, a + i)), azp), ls);
        const __m512i xb = _mm512_sll_epi32(_mm512_sub_epi32(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(k, b + i)), bzp), ls);
        const __m512i s = _mm512_add_epi32(mbqm_r(xa, am, aev, amask, ahalf), mbqm_r(xb, bm, bev, bmask, bhalf));
        const __m512i o = _mm512_add_epi32(mbqm_r(s, om, oev, omask, ohalf), ozp);
        const __m128i v = _mm_min_epi8(_mm_max_epi8(_mm512_cvtsepi32_epi8(o), lo), hi);
        _mm_mask_storeu_epi8(y + i, k, v);
    }
}
#endif

/* ---- drowsy: element masks, channel subsets ---- */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* drowsy.h's hash of 8 units per vector (vpmullq); bit i of the result: unit i is dropped */
static inline __mmask8 drop8(__m512i base, __m512i units, __m512i thr) {
    __m512i z = _mm512_xor_si512(base, _mm512_mullo_epi64(units, _mm512_set1_epi64((int64_t)0xD1B54A32D192ED03ull)));
    z = _mm512_add_epi64(z, _mm512_set1_epi64((int64_t)0x9E3779B97F4A7C15ull));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), _mm512_set1_epi64((int64_t)0xBF58476D1CE4E5B9ull));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), _mm512_set1_epi64((int64_t)0x94D049BB133111EBull));
    z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
    return _mm512_cmplt_epu64_mask(_mm512_srli_epi64(z, 32), thr);
}

uint64_t tn_drop_avx512vnni(int n, int C, uint64_t seed, uint32_t layer, uint64_t u0, uint32_t threshold, int8_t zero,
                            int8_t *y, uint8_t *used, int *unseen) {
    const __m512i base = _mm512_set1_epi64((int64_t)(seed ^ ((uint64_t)layer * 0x9E3779B97F4A7C15ull)));
    const __m512i thr = _mm512_set1_epi64((int64_t)threshold), iota = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
    const __m128i vz = _mm_set1_epi8(zero);
    uint64_t dropped = 0;
    int c0 = 0;  /* the channel of lane 0 */
    for (int i = 0; i < n; i += 16) {
        const __m512i u = _mm512_add_epi64(_mm512_set1_epi64((int64_t)(u0 + (uint64_t)i)), iota);
        const __mmask16 d = (__mmask16)(drop8(base, u, thr) | ((unsigned)drop8(base, _mm512_add_epi64(u, _mm512_set1_epi64(8)), thr) << 8));
        const __mmask16 valid = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __mmask16 dv = d & valid;
        _mm_mask_storeu_epi8(y + i, dv, vz);
        dropped += (uint64_t)__builtin_popcount(dv);
        if (*unseen) {  /* the first elements of a layer mark its channels; then nothing to do */
            unsigned kept = (unsigned)(~d & valid);
            for (int l = 0, c = c0; l < 16; l++, c = c + 1 == C ? 0 : c + 1)
                if (((kept >> l) & 1) && !used[c]) {
                    used[c] = 1;
                    --*unseen;
                }
        }
        c0 = (int)((c0 + 16) % C);
    }
    return dropped;
}

void tn_zero_ch_avx512vnni(int n, const int32_t *drop, int nd, const uint64_t *dmask, int C, int8_t zero, int8_t *y) {
    const __m512i vz = _mm512_set1_epi8(zero);
    int p = 0;
    if (C <= 32 && 64 % C == 0) {  /* several pixels per store */
        const int per = 64 / C;
        uint64_t m = 0;
        for (int i = 0; i < per; i++) m |= dmask[0] << (i * C);
        for (; p + per <= n; p += per) _mm512_mask_storeu_epi8(y + (int64_t)p * C, (__mmask64)m, vz);
    }
    for (; p < n; p++)
        for (int b = 0; b < C; b += 64) _mm512_mask_storeu_epi8(y + (int64_t)p * C + b, (__mmask64)dmask[b / 64], vz);
    (void)drop; (void)nd;
}

/* with AVX-512 VBMI2: compress / expand by the kept-channel mask, per 64-channel block, or several pixels
 * per vector when C divides 64 and the pixels are contiguous */
#pragma GCC push_options
#pragma GCC target("avx512vbmi2")
void tn_gather_avx512vbmi2(int n, const int8_t *src, int64_t sstride, const int32_t *keep, const uint64_t *mask, int C,
                           int ck, uint8_t flip, uint8_t *dst) {
    const __m512i vf = _mm512_set1_epi8((char)flip);
    int p = 0;
    if (C <= 32 && 64 % C == 0 && sstride == C) {
        const int per = 64 / C;
        uint64_t m = 0;
        for (int i = 0; i < per; i++) m |= mask[0] << (i * C);
        const __mmask64 out = (__mmask64)(per * ck == 64 ? ~0ull : ((1ull << (per * ck)) - 1));
        for (; p + per <= n; p += per) {
            const __m512i v = _mm512_xor_si512(_mm512_loadu_si512(src + (int64_t)p * C), vf);
            _mm512_mask_storeu_epi8(dst + (int64_t)p * ck, out, _mm512_maskz_compress_epi8((__mmask64)m, v));
        }
    }
    for (; p < n; p++) {
        const int8_t *s = src + (int64_t)p * sstride;
        uint8_t *d = dst + (int64_t)p * ck;
        for (int b = 0; b < C; b += 64) {
            const int cb = C - b < 64 ? C - b : 64;
            const __mmask64 lm = (__mmask64)(cb == 64 ? ~0ull : ((1ull << cb) - 1));
            const uint64_t km = mask[b / 64];
            const int kc = __builtin_popcountll(km);
            const __m512i v = _mm512_xor_si512(_mm512_maskz_loadu_epi8(lm, s + b), vf);
            _mm512_mask_storeu_epi8(d, (__mmask64)(kc == 64 ? ~0ull : ((1ull << kc) - 1)),
                                    _mm512_maskz_compress_epi8((__mmask64)km, v));
            d += kc;
        }
    }
    (void)keep;
}

void tn_expand_avx512vbmi2(int n, const int8_t *src, int ck, const int32_t *keep, const uint64_t *mask, int C,
                           int8_t zero, int8_t *y) {
    const __m512i vz = _mm512_set1_epi8(zero);
    int p = 0;
    if (C <= 32 && 64 % C == 0) {
        const int per = 64 / C;
        uint64_t m = 0;
        for (int i = 0; i < per; i++) m |= mask[0] << (i * C);
        for (; p + per <= n; p += per)
            _mm512_storeu_si512(y + (int64_t)p * C, _mm512_mask_expandloadu_epi8(vz, (__mmask64)m, src + (int64_t)p * ck));
    }
    for (; p < n; p++) {
        const int8_t *s = src + (int64_t)p * ck;
        int8_t *d = y + (int64_t)p * C;
        for (int b = 0; b < C; b += 64) {
            const int cb = C - b < 64 ? C - b : 64;
            const uint64_t km = mask[b / 64];
            _mm512_mask_storeu_epi8(d + b, (__mmask64)(cb == 64 ? ~0ull : ((1ull << cb) - 1)),
                                    _mm512_mask_expandloadu_epi8(vz, (__mmask64)km, s));
            s += __builtin_popcountll(km);
        }
    }
    (void)keep;
}
#pragma GCC pop_options
#endif
