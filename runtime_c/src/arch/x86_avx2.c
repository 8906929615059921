/* x86-64 AVX2 variant: kernels.inc vectorised by the compiler for AVX2 (+FMA, BMI2). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC target("avx2,fma,bmi2")
#include "../arch.h"
#define TN_SUFFIX avx2
#define TN_HAVE_DW_ROW 1
#include "kernels.inc"
#endif

/* ---- hand-written AVX2 packed GEMM (arch.h: tn_q16_packed) ---- */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <string.h>

/* requant.h's double rounding for 8 lanes with per-lane parameters (bias, multiplier, shifts at index j0),
 * + zp (int32) */
static inline __m256i rq8p(__m256i acc, const int32_t *bias, const int32_t *mult, const int32_t *lshift,
                           const int32_t *rshift, int j0, __m256i zp) {
    const __m256i one = _mm256_set1_epi32(1), n30 = _mm256_set1_epi64x(1ll << 30);
    const __m256i x = _mm256_sllv_epi32(_mm256_add_epi32(acc, _mm256_loadu_si256((const __m256i *)(bias + j0))),
                                        _mm256_loadu_si256((const __m256i *)(lshift + j0)));
    const __m256i m = _mm256_loadu_si256((const __m256i *)(mult + j0));
    const __m256i pe = _mm256_add_epi64(_mm256_mul_epi32(x, m), n30);
    const __m256i po = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(m, 32)), n30);
    /* bits 31..62 of each product: the low dword of even lanes, the high dword of odd lanes */
    const __m256i high = _mm256_blend_epi32(_mm256_srli_epi64(pe, 31), _mm256_slli_epi64(po, 1), 0xAA);
    const __m256i rs = _mm256_loadu_si256((const __m256i *)(rshift + j0));
    const __m256i mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, rs), one);
    const __m256i rem = _mm256_and_si256(high, mask);
    const __m256i thr = _mm256_add_epi32(_mm256_srai_epi32(mask, 1), _mm256_srli_epi32(high, 31));
    const __m256i r = _mm256_sub_epi32(_mm256_srav_epi32(high, rs), _mm256_cmpgt_epi32(rem, thr));  /* -(-1) rounds up */
    return _mm256_add_epi32(r, zp);
}

static inline __m256i rq8_avx2(__m256i acc, const tn_q16_packed *B, int j0, __m256i zp) {
    return rq8p(acc, B->bias, B->mult, B->lshift, B->rshift, j0, zp);
}

/* 8 int32 lanes to 8 int8 (saturating), clamped to [lo, hi], in the low 8 bytes */
static inline __m128i narrow8(__m256i v, __m128i lo, __m128i hi) {
    const __m256i w = _mm256_packs_epi32(v, v);       /* per 128-bit lane: v0..3 v0..3 | v4..7 v4..7 (int16) */
    const __m256i b = _mm256_packs_epi16(w, w);       /* bytes: v0..3 x4 | v4..7 x4 */
    const __m256i p = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4));
    return _mm_min_epi8(_mm_max_epi8(_mm256_castsi256_si128(p), lo), hi);
}

static inline void store8(int8_t *y, __m128i v, int n) {
    if (n >= 8) {
        _mm_storel_epi64((__m128i *)y, v);
    } else {
        int8_t t[16];
        _mm_storeu_si128((__m128i *)t, v);
        memcpy(y, t, (size_t)n);
    }
}

void tn_q16_gemm_avx2(int M, const int16_t *A, int lda, const tn_q16_packed *B, int32_t zp, int32_t lo, int32_t hi,
                      int8_t *Y, int ldy) {
    const __m256i vzp = _mm256_set1_epi32(zp);
    const __m128i blo = _mm_set1_epi8((int8_t)lo), bhi = _mm_set1_epi8((int8_t)hi);
    const int K2 = B->K2;
    int nb = 0;
    for (; nb + 2 <= B->NB; nb += 2) {  /* 16 channels: two blocks, 4 rows at a time */
        const int16_t *w0 = B->w + (int64_t)nb * K2 * 16, *w1 = w0 + (int64_t)K2 * 16;
        const int n1 = B->N - (nb + 1) * 8;
        int m = 0;
        for (; m + 4 <= M; m += 4) {
            __m256i a00 = _mm256_setzero_si256(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00,
                    a31 = a00;
            const int16_t *r0 = A + (int64_t)m * lda, *r1 = r0 + lda, *r2 = r1 + lda, *r3 = r2 + lda;
            for (int k = 0; k < K2; k++) {
                const __m256i b0 = _mm256_loadu_si256((const __m256i *)(w0 + (int64_t)k * 16));
                const __m256i b1 = _mm256_loadu_si256((const __m256i *)(w1 + (int64_t)k * 16));
                int32_t v;
                memcpy(&v, r0 + 2 * k, 4);
                __m256i x = _mm256_set1_epi32(v);
                a00 = _mm256_add_epi32(a00, _mm256_madd_epi16(x, b0));
                a01 = _mm256_add_epi32(a01, _mm256_madd_epi16(x, b1));
                memcpy(&v, r1 + 2 * k, 4);
                x = _mm256_set1_epi32(v);
                a10 = _mm256_add_epi32(a10, _mm256_madd_epi16(x, b0));
                a11 = _mm256_add_epi32(a11, _mm256_madd_epi16(x, b1));
                memcpy(&v, r2 + 2 * k, 4);
                x = _mm256_set1_epi32(v);
                a20 = _mm256_add_epi32(a20, _mm256_madd_epi16(x, b0));
                a21 = _mm256_add_epi32(a21, _mm256_madd_epi16(x, b1));
                memcpy(&v, r3 + 2 * k, 4);
                x = _mm256_set1_epi32(v);
                a30 = _mm256_add_epi32(a30, _mm256_madd_epi16(x, b0));
                a31 = _mm256_add_epi32(a31, _mm256_madd_epi16(x, b1));
            }
            const __m256i acc0[4] = {a00, a10, a20, a30}, acc1[4] = {a01, a11, a21, a31};
            for (int r = 0; r < 4; r++) {
                int8_t *y = Y + (int64_t)(m + r) * ldy + nb * 8;
                store8(y, narrow8(rq8_avx2(acc0[r], B, nb * 8, vzp), blo, bhi), 8);
                store8(y + 8, narrow8(rq8_avx2(acc1[r], B, nb * 8 + 8, vzp), blo, bhi), n1);
            }
        }
        for (; m < M; m++) {
            __m256i a0 = _mm256_setzero_si256(), a1 = a0;
            const int16_t *r0 = A + (int64_t)m * lda;
            for (int k = 0; k < K2; k++) {
                int32_t v;
                memcpy(&v, r0 + 2 * k, 4);
                const __m256i x = _mm256_set1_epi32(v);
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(x, _mm256_loadu_si256((const __m256i *)(w0 + (int64_t)k * 16))));
                a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(x, _mm256_loadu_si256((const __m256i *)(w1 + (int64_t)k * 16))));
            }
            int8_t *y = Y + (int64_t)m * ldy + nb * 8;
            store8(y, narrow8(rq8_avx2(a0, B, nb * 8, vzp), blo, bhi), 8);
            store8(y + 8, narrow8(rq8_avx2(a1, B, nb * 8 + 8, vzp), blo, bhi), n1);
        }
    }
    for (; nb < B->NB; nb++) {  /* a last block of 8 */
        const int16_t *w0 = B->w + (int64_t)nb * K2 * 16;
        const int nv = B->N - nb * 8;
        int m = 0;
        for (; m + 4 <= M; m += 4) {
            __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
            const int16_t *r0 = A + (int64_t)m * lda;
            for (int k = 0; k < K2; k++) {
                const __m256i b0 = _mm256_loadu_si256((const __m256i *)(w0 + (int64_t)k * 16));
                int32_t v;
                memcpy(&v, r0 + 2 * k, 4);
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_set1_epi32(v), b0));
                memcpy(&v, r0 + lda + 2 * k, 4);
                a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_set1_epi32(v), b0));
                memcpy(&v, r0 + 2 * lda + 2 * k, 4);
                a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(_mm256_set1_epi32(v), b0));
                memcpy(&v, r0 + 3 * lda + 2 * k, 4);
                a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(_mm256_set1_epi32(v), b0));
            }
            const __m256i acc[4] = {a0, a1, a2, a3};
            for (int r = 0; r < 4; r++)
                store8(Y + (int64_t)(m + r) * ldy + nb * 8, narrow8(rq8_avx2(acc[r], B, nb * 8, vzp), blo, bhi), nv);
        }
        for (; m < M; m++) {
            __m256i a0 = _mm256_setzero_si256();
            const int16_t *r0 = A + (int64_t)m * lda;
            for (int k = 0; k < K2; k++) {
                int32_t v;
                memcpy(&v, r0 + 2 * k, 4);
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_set1_epi32(v),
                                                            _mm256_loadu_si256((const __m256i *)(w0 + (int64_t)k * 16))));
            }
            store8(Y + (int64_t)m * ldy + nb * 8, narrow8(rq8_avx2(a0, B, nb * 8, vzp), blo, bhi), nv);
        }
    }
}
#endif

/* ---- depthwise rows (arch.h: tn_dw_packed), 32 lanes at a time with the accumulators kept across taps; the
 * uint8 input zero-extended to 32-bit lanes so vpmaddwd multiplies it by the low 16 bits of each weight ---- */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
void tn_dw_row_avx2(int n, const uint8_t *const *in, const tn_dw_packed *pk, int32_t zp, int32_t lo, int32_t hi,
                    int8_t *y) {
    const int P = pk->P, T = pk->taps;
    const __m256i vzp = _mm256_set1_epi32(zp);
    const __m128i blo = _mm_set1_epi8((int8_t)lo), bhi = _mm_set1_epi8((int8_t)hi);
    int j0 = 0, l0 = 0;
    for (; j0 < n; j0 += 16) {
        const int l1 = l0 + 8;  /* P is a multiple of 16: both halves of a 16-lane chunk share its pattern row */
        __m256i a0 = _mm256_setzero_si256(), a1 = a0;  /* the bias is added by the requantization */
        for (int t = 0; t < T; t++) {
            const uint8_t *x = in[t] + j0;
            const int32_t *w = pk->w + (int64_t)t * P;
            const __m128i xv = _mm_loadu_si128((const __m128i *)x);
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_cvtepu8_epi32(xv), _mm256_loadu_si256((const __m256i *)(w + l0))));
            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_cvtepu8_epi32(_mm_srli_si128(xv, 8)),
                                                        _mm256_loadu_si256((const __m256i *)(w + l1))));
        }
        const __m128i r0 = narrow8(rq8p(a0, pk->bias, pk->mult, pk->lshift, pk->rshift, l0, vzp), blo, bhi);
        const __m128i r1 = narrow8(rq8p(a1, pk->bias, pk->mult, pk->lshift, pk->rshift, l1, vzp), blo, bhi);
        const __m128i r = _mm_unpacklo_epi64(r0, r1);
        if (n - j0 >= 16) {
            _mm_storeu_si128((__m128i *)(y + j0), r);
        } else {
            int8_t t16[16];
            _mm_storeu_si128((__m128i *)t16, r);
            memcpy(y + j0, t16, (size_t)(n - j0));
        }
        l0 += 16;
        if (l0 == P) l0 = 0;
    }
}
#endif
