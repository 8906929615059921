/* x86-64 AVX-512 (F, BW, VL, VNNI) variant. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC target("avx2,fma,bmi2,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
#include "../arch.h"
#define TN_SUFFIX avx512vnni
#define TN_HAVE_DW_ROW 1
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
