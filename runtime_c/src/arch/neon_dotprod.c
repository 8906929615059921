/* AArch64 variant with the Armv8.2 int8 dot product (sdot: Cortex-A76, Pi 5). Only this translation unit is
 * built for +dotprod (the Makefile passes -march=armv8.2-a+dotprod for this file; the pragma below does the
 * same under a build system that gives every file the same flags, such as the cffi build of the Python
 * package); dispatch.c picks it only when getauxval(AT_HWCAP) has HWCAP_ASIMDDP, so a Pi 4 never executes
 * it. Depthwise and requantization use the NEON variant's kernels (sdot does not help them).
 * sdot accumulates four int8 products straight into an int32 lane: exact for every input. */
#if defined(__aarch64__)
#if !defined(__ARM_FEATURE_DOTPROD)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("dotprod"))), apply_to = function)
#define TN_POP_TARGET 1
#elif defined(__GNUC__)
#pragma GCC target("arch=armv8.2-a+dotprod")
#endif
#endif
#include <arm_neon.h>
#include "../arch.h"

TN_DECLARE_VARIANT(neon_dotprod)

#define TN_INLINE static inline __attribute__((always_inline))

int32_t tn_dot_neon_dotprod(int K, const int8_t *a, const int8_t *b) {
    int32x4_t s0 = vdupq_n_s32(0), s1 = vdupq_n_s32(0);
    int k = 0;
    for (; k + 32 <= K; k += 32) {
        s0 = vdotq_s32(s0, vld1q_s8(a + k), vld1q_s8(b + k));
        s1 = vdotq_s32(s1, vld1q_s8(a + k + 16), vld1q_s8(b + k + 16));
    }
    for (; k + 16 <= K; k += 16) s0 = vdotq_s32(s0, vld1q_s8(a + k), vld1q_s8(b + k));
    int32_t s = vaddvq_s32(vaddq_s32(s0, s1));
    if (k + 8 <= K) {
        s += vaddv_s32(vdot_s32(vdup_n_s32(0), vld1_s8(a + k), vld1_s8(b + k)));
        k += 8;
    }
    for (; k < K; k++) s += (int32_t)a[k] * (int32_t)b[k];
    return s;
}

#define TN_ROW16(i, LOAD)                                                                                    \
    do {                                                                                                     \
        const int8x16_t av = LOAD(A + (int64_t)(i) * K + k);                                                \
        c##i##0 = vdotq_s32(c##i##0, av, b0);                                                                \
        c##i##1 = vdotq_s32(c##i##1, av, b1);                                                                \
        c##i##2 = vdotq_s32(c##i##2, av, b2);                                                                \
        c##i##3 = vdotq_s32(c##i##3, av, b3);                                                                \
    } while (0)
/* 8-byte steps accumulate into the low half of the int32x4 accumulators (the high half gets zeros) */
#define TN_ROW8(i, LOAD)                                                                                     \
    do {                                                                                                     \
        const int8x16_t av = vcombine_s8(LOAD(A + (int64_t)(i) * K + k), vdup_n_s8(0));                    \
        c##i##0 = vdotq_s32(c##i##0, av, b0);                                                                \
        c##i##1 = vdotq_s32(c##i##1, av, b1);                                                                \
        c##i##2 = vdotq_s32(c##i##2, av, b2);                                                                \
        c##i##3 = vdotq_s32(c##i##3, av, b3);                                                                \
    } while (0)
#define TN_LD16(p) vld1q_s8(p)
#define TN_LD16M(p) vandq_s8(vld1q_s8(p), m16)
#define TN_LD8(p) vld1_s8(p)
#define TN_LD8M(p) vand_s8(vld1_s8(p), m8)
#define TN_ROWS(MAC, LOAD)                                                                                   \
    do {                                                                                                     \
        MAC(0, LOAD);                                                                                        \
        if (MR >= 4) {                                                                                       \
            MAC(1, LOAD);                                                                                    \
            MAC(2, LOAD);                                                                                    \
            MAC(3, LOAD);                                                                                    \
        }                                                                                                    \
    } while (0)
#define TN_B16() const int8x16_t b0 = vld1q_s8(bp[0] + k), b1 = vld1q_s8(bp[1] + k), b2 = vld1q_s8(bp[2] + k), \
                                 b3 = vld1q_s8(bp[3] + k)
#define TN_B8()                                                                                              \
    const int8x16_t b0 = vcombine_s8(vld1_s8(bp[0] + k), vdup_n_s8(0)),                                    \
                    b1 = vcombine_s8(vld1_s8(bp[1] + k), vdup_n_s8(0)),                                    \
                    b2 = vcombine_s8(vld1_s8(bp[2] + k), vdup_n_s8(0)),                                    \
                    b3 = vcombine_s8(vld1_s8(bp[3] + k), vdup_n_s8(0))
#define TN_ROW_STORE(i, unused)                                                                              \
    vst1q_s32(C + (int64_t)(i) * ldc, vpaddq_s32(vpaddq_s32(c##i##0, c##i##1), vpaddq_s32(c##i##2, c##i##3)))

/* see neon.c: the remainder of K is one more block step ending at K with the already counted A bytes zeroed */
static const int8_t tn_lane_index[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* C[i][0..3] for MR (1 or 4) rows of A against four rows of B, one int32x4 accumulator per (row, column). */
TN_INLINE void tile_mx4(int MR, int K, const int8_t *A, const int8_t *const bp[4], int32_t *C, int ldc) {
    const int32x4_t z = vdupq_n_s32(0);
    int32x4_t c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z;
    int32x4_t c20 = z, c21 = z, c22 = z, c23 = z, c30 = z, c31 = z, c32 = z, c33 = z;
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        TN_B16();
        TN_ROWS(TN_ROW16, TN_LD16);
    }
    if (k < K && K >= 16) {
        const int8x16_t m16 = vreinterpretq_s8_u8(vcgeq_s8(vld1q_s8(tn_lane_index), vdupq_n_s8((int8_t)(16 - (K - k)))));
        k = K - 16;
        TN_B16();
        TN_ROWS(TN_ROW16, TN_LD16M);
    } else if (k < K && K >= 8) {  /* 8 <= K < 16 */
        {
            TN_B8();
            TN_ROWS(TN_ROW8, TN_LD8);
        }
        if (K > 8) {
            const int8x8_t m8 = vreinterpret_s8_u8(vcge_s8(vld1_s8(tn_lane_index), vdup_n_s8((int8_t)(16 - K))));
            k = K - 8;
            TN_B8();
            TN_ROWS(TN_ROW8, TN_LD8M);
        }
    } else if (k < K) {  /* K < 8: scalar */
        int32_t t[4][4] = {{0}};
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < 4; j++)
                for (int kk = 0; kk < K; kk++) t[i][j] += (int32_t)A[(int64_t)i * K + kk] * (int32_t)bp[j][kk];
        for (int i = 0; i < MR; i++) vst1q_s32(C + (int64_t)i * ldc, vld1q_s32(t[i]));
        return;
    }
    TN_ROWS(TN_ROW_STORE, 0);
}

void tn_gemm_neon_dotprod(int M, int nk, int K, const int8_t *A, const int8_t *B, const int32_t *cols, int32_t *C) {
    int j = 0;
    for (; j + 4 <= nk; j += 4) {
        const int8_t *const bp[4] = {B + (int64_t)cols[j] * K, B + (int64_t)cols[j + 1] * K,
                                     B + (int64_t)cols[j + 2] * K, B + (int64_t)cols[j + 3] * K};
        int m = 0;
        for (; m + 4 <= M; m += 4) tile_mx4(4, K, A + (int64_t)m * K, bp, C + (int64_t)m * nk + j, nk);
        for (; m < M; m++) tile_mx4(1, K, A + (int64_t)m * K, bp, C + (int64_t)m * nk + j, nk);
    }
    for (; j < nk; j++) {
        const int8_t *b0 = B + (int64_t)cols[j] * K;
        for (int m = 0; m < M; m++) C[(int64_t)m * nk + j] = tn_dot_neon_dotprod(K, A + (int64_t)m * K, b0);
    }
}

#if defined(TN_POP_TARGET)
#pragma clang attribute pop
#endif
#endif
