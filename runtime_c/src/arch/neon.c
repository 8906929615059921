/* NEON variant for AArch64 (Cortex-A53/A72: Pi 3, Zero 2 W, Pi 4) and ARMv7 with NEON (32-bit Pi OS built
 * with -mfpu=neon-vfpv4): the widening multiply-accumulate path (vmull_s8 / vmlal_s8 / vpadalq_s16).
 * Compiles to nothing where the compiler targets no NEON (x86, armhf without -mfpu=neon*).
 *
 * Exactness: every kernel here returns the same int32 sums as the portable ones (checked with zero tolerance
 * by runtime_c/tests). vmlal_s8 adds two int8 products in an int16 lane; that overflows only when both
 * products are (-128) * (-128). Activations of -128 are common, weights of -128 are not (TFLite quantizes
 * weights to [-127, 127]) but a plan may hold them: the GEMM checks each block of weight rows once per call
 * and takes the one-product-per-lane path (vmull_s8 + vpadalq_s16 only) for blocks that contain -128. */
#if defined(__ARM_NEON) || defined(__aarch64__)
#include <arm_neon.h>
#include "../arch.h"

TN_DECLARE_VARIANT(neon)

#if defined(__GNUC__)
#define TN_INLINE static inline __attribute__((always_inline))
#else
#define TN_INLINE static inline
#endif

/* Rows of A per GEMM tile: 4x4 needs 16 int32x4 accumulators (AArch64 has 32 vector registers, ARMv7 16). */
#if defined(__aarch64__)
#define TN_NEON_MR 4
#else
#define TN_NEON_MR 2
#endif

/* Keeps the products of one row of the tile from being hoisted above the previous row's accumulations:
 * GCC otherwise issues all 16 widening multiplies first, needs 16 more registers and spills accumulators.
 * Empty volatile asm statements keep their order, and the row's inputs and outputs pass through them. */
#if defined(__GNUC__)
#define TN_ORDER_START(v) __asm__ volatile("" : "+w"(v))
#define TN_ORDER_END(a, b, c, d) __asm__ volatile("" : "+w"(a), "+w"(b), "+w"(c), "+w"(d))
#else
#define TN_ORDER_START(v) ((void)0)
#define TN_ORDER_END(a, b, c, d) ((void)0)
#endif

/* [sum(a), sum(b), sum(c), sum(d)] */
TN_INLINE int32x4_t hsum4(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
#if defined(__aarch64__)
    return vpaddq_s32(vpaddq_s32(a, b), vpaddq_s32(c, d));
#else
    int32x2_t ab = vpadd_s32(vadd_s32(vget_low_s32(a), vget_high_s32(a)), vadd_s32(vget_low_s32(b), vget_high_s32(b)));
    int32x2_t cd = vpadd_s32(vadd_s32(vget_low_s32(c), vget_high_s32(c)), vadd_s32(vget_low_s32(d), vget_high_s32(d)));
    return vcombine_s32(ab, cd);
#endif
}

TN_INLINE int32_t hsum(int32x4_t v) {
#if defined(__aarch64__)
    return vaddvq_s32(v);
#else
    int32x2_t s = vadd_s32(vget_low_s32(v), vget_high_s32(v));
    return vget_lane_s32(vpadd_s32(s, s), 0);
#endif
}

/* acc += products of 16 int8 pairs, pairwise summed into 4 int32 lanes. fast: two products share an int16
 * lane before the widening add (exact when b has no -128). */
TN_INLINE int32x4_t mac16(int32x4_t acc, int8x16_t a, int8x16_t b, int fast) {
    int16x8_t p = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    if (fast) {
#if defined(__aarch64__)
        p = vmlal_high_s8(p, a, b);
#else
        p = vmlal_s8(p, vget_high_s8(a), vget_high_s8(b));
#endif
        return vpadalq_s16(acc, p);
    }
    acc = vpadalq_s16(acc, p);
#if defined(__aarch64__)
    return vpadalq_s16(acc, vmull_high_s8(a, b));
#else
    return vpadalq_s16(acc, vmull_s8(vget_high_s8(a), vget_high_s8(b)));
#endif
}

TN_INLINE int32x4_t mac8(int32x4_t acc, int8x8_t a, int8x8_t b) { return vpadalq_s16(acc, vmull_s8(a, b)); }

/* 1 when any of the n bytes is -128 */
static int has_min_int8(int n, const int8_t *p) {
    const int8x16_t lo = vdupq_n_s8(-128);
    uint8x16_t any = vdupq_n_u8(0);
    int k = 0;
    for (; k + 16 <= n; k += 16) any = vorrq_u8(any, vceqq_s8(vld1q_s8(p + k), lo));
    uint64x2_t a64 = vreinterpretq_u64_u8(any);
    if (vgetq_lane_u64(a64, 0) | vgetq_lane_u64(a64, 1)) return 1;
    for (; k < n; k++)
        if (p[k] == -128) return 1;
    return 0;
}

int32_t tn_dot_neon(int K, const int8_t *a, const int8_t *b) {
    /* one product per int16 lane: exact for any input, and as fast as the paired form once the weight
     * check it would need is counted (a dot product reads each weight once) */
    int32x4_t s0 = vdupq_n_s32(0), s1 = vdupq_n_s32(0);
    int k = 0;
    for (; k + 32 <= K; k += 32) {
        s0 = mac16(s0, vld1q_s8(a + k), vld1q_s8(b + k), 0);
        s1 = mac16(s1, vld1q_s8(a + k + 16), vld1q_s8(b + k + 16), 0);
    }
    for (; k + 16 <= K; k += 16) s0 = mac16(s0, vld1q_s8(a + k), vld1q_s8(b + k), 0);
    if (k + 8 <= K) {
        s1 = mac8(s1, vld1_s8(a + k), vld1_s8(b + k));
        k += 8;
    }
    int32_t s = hsum(vaddq_s32(s0, s1));
    for (; k < K; k++) s += (int32_t)a[k] * (int32_t)b[k];
    return s;
}

/* One row of a tile: 16 bytes of row i of A (LOAD(ptr) reads them) against the four B vectors. */
#define TN_ROW16(i, LOAD)                                                                                    \
    do {                                                                                                     \
        int8x16_t av = LOAD(A + (int64_t)(i) * K + k);                                                      \
        TN_ORDER_START(av);                                                                                  \
        c##i##0 = mac16(c##i##0, av, b0, fast);                                                              \
        c##i##1 = mac16(c##i##1, av, b1, fast);                                                              \
        c##i##2 = mac16(c##i##2, av, b2, fast);                                                              \
        c##i##3 = mac16(c##i##3, av, b3, fast);                                                              \
        TN_ORDER_END(c##i##0, c##i##1, c##i##2, c##i##3);                                                    \
    } while (0)
#define TN_ROW8(i, LOAD)                                                                                     \
    do {                                                                                                     \
        const int8x8_t av = LOAD(A + (int64_t)(i) * K + k);                                                 \
        c##i##0 = mac8(c##i##0, av, h0);                                                                     \
        c##i##1 = mac8(c##i##1, av, h1);                                                                     \
        c##i##2 = mac8(c##i##2, av, h2);                                                                     \
        c##i##3 = mac8(c##i##3, av, h3);                                                                     \
    } while (0)
#define TN_LD16(p) vld1q_s8(p)
#define TN_LD16M(p) vandq_s8(vld1q_s8(p), m16)
#define TN_LD8(p) vld1_s8(p)
#define TN_LD8M(p) vand_s8(vld1_s8(p), m8)
#define TN_ROWS(MAC, LOAD)                                                                                   \
    do {                                                                                                     \
        MAC(0, LOAD);                                                                                        \
        if (MR >= 2) MAC(1, LOAD);                                                                           \
        if (MR >= 4) {                                                                                       \
            MAC(2, LOAD);                                                                                    \
            MAC(3, LOAD);                                                                                    \
        }                                                                                                    \
    } while (0)
#define TN_B16() const int8x16_t b0 = vld1q_s8(bp[0] + k), b1 = vld1q_s8(bp[1] + k), b2 = vld1q_s8(bp[2] + k), \
                                 b3 = vld1q_s8(bp[3] + k)
#define TN_B8() const int8x8_t h0 = vld1_s8(bp[0] + k), h1 = vld1_s8(bp[1] + k), h2 = vld1_s8(bp[2] + k), \
                               h3 = vld1_s8(bp[3] + k)
#define TN_ROW_STORE(i, unused) vst1q_s32(C + (int64_t)(i) * ldc, hsum4(c##i##0, c##i##1, c##i##2, c##i##3))

/* Lanes >= 16 - r (16-byte form) or >= 8 - r (8-byte form) all ones: the last r bytes of a block that ends
 * at K, so a remainder of K is done by one more block step over bytes already counted, whose A bytes are
 * zeroed (0 * b adds nothing; no load leaves the rows). */
static const int8_t tn_lane_index[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
TN_INLINE int8x16_t tail_mask16(int r) {
    return vreinterpretq_s8_u8(vcgeq_s8(vld1q_s8(tn_lane_index), vdupq_n_s8((int8_t)(16 - r))));
}
TN_INLINE int8x8_t tail_mask8(int r) {
    return vreinterpret_s8_u8(vcge_s8(vld1_s8(tn_lane_index), vdup_n_s8((int8_t)(8 - r))));
}

/* C[i][0..3] for MR (1, 2 or 4) rows of A against four rows of B: one int32x4 accumulator per (row, column),
 * named rather than in an array so that they stay in registers. */
TN_INLINE void tile_mx4(int MR, int K, const int8_t *A, const int8_t *const bp[4], int32_t *C, int ldc, int fast) {
    const int32x4_t z = vdupq_n_s32(0);
    int32x4_t c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z;
    int32x4_t c20 = z, c21 = z, c22 = z, c23 = z, c30 = z, c31 = z, c32 = z, c33 = z;
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        TN_B16();
        TN_ROWS(TN_ROW16, TN_LD16);
    }
    if (k < K && K >= 16) {
        const int8x16_t m16 = tail_mask16(K - k);
        k = K - 16;
        TN_B16();
        TN_ROWS(TN_ROW16, TN_LD16M);
    } else if (k < K && K >= 8) {  /* 8 <= K < 16 */
        {
            TN_B8();
            TN_ROWS(TN_ROW8, TN_LD8);
        }
        if (K > 8) {
            const int8x8_t m8 = tail_mask8(K - 8);
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

static void block_fast(int M, int K, const int8_t *A, const int8_t *const bp[4], int32_t *C, int ldc) {
    int m = 0;
    for (; m + TN_NEON_MR <= M; m += TN_NEON_MR)
        tile_mx4(TN_NEON_MR, K, A + (int64_t)m * K, bp, C + (int64_t)m * ldc, ldc, 1);
    for (; m < M; m++) tile_mx4(1, K, A + (int64_t)m * K, bp, C + (int64_t)m * ldc, ldc, 1);
}

static void block_safe(int M, int K, const int8_t *A, const int8_t *const bp[4], int32_t *C, int ldc) {
    int m = 0;
    for (; m + TN_NEON_MR <= M; m += TN_NEON_MR)
        tile_mx4(TN_NEON_MR, K, A + (int64_t)m * K, bp, C + (int64_t)m * ldc, ldc, 0);
    for (; m < M; m++) tile_mx4(1, K, A + (int64_t)m * K, bp, C + (int64_t)m * ldc, ldc, 0);
}

void tn_gemm_neon(int M, int nk, int K, const int8_t *A, const int8_t *B, const int32_t *cols, int32_t *C) {
    int j = 0;
    for (; j + 4 <= nk; j += 4) {
        const int8_t *bp[4];
        int any_min = 0;
        for (int t = 0; t < 4; t++) {
            bp[t] = B + (int64_t)cols[j + t] * K;
            any_min |= has_min_int8(K, bp[t]);
        }
        if (any_min)
            block_safe(M, K, A, bp, C + j, nk);
        else
            block_fast(M, K, A, bp, C + j, nk);
    }
    for (; j < nk; j++) {
        const int8_t *b0 = B + (int64_t)cols[j] * K;
        for (int m = 0; m < M; m++) C[(int64_t)m * nk + j] = tn_dot_neon(K, A + (int64_t)m * K, b0);
    }
}

/* acc[c] += w[c] * (x[c] - x_zp): x - zp in [-255, 255] is exact in int16, the product in int32. */
void tn_dw_accum_neon(int n, int32_t *acc, const int8_t *w, const int8_t *x, int32_t x_zp) {
    const int16x8_t zp = vdupq_n_s16((int16_t)x_zp);
    int c = 0;
    for (; c + 16 <= n; c += 16) {
        const int8x16_t xv = vld1q_s8(x + c), wv = vld1q_s8(w + c);
        const int16x8_t xl = vsubq_s16(vmovl_s8(vget_low_s8(xv)), zp), xh = vsubq_s16(vmovl_s8(vget_high_s8(xv)), zp);
        const int16x8_t wl = vmovl_s8(vget_low_s8(wv)), wh = vmovl_s8(vget_high_s8(wv));
        vst1q_s32(acc + c, vmlal_s16(vld1q_s32(acc + c), vget_low_s16(wl), vget_low_s16(xl)));
        vst1q_s32(acc + c + 4, vmlal_s16(vld1q_s32(acc + c + 4), vget_high_s16(wl), vget_high_s16(xl)));
        vst1q_s32(acc + c + 8, vmlal_s16(vld1q_s32(acc + c + 8), vget_low_s16(wh), vget_low_s16(xh)));
        vst1q_s32(acc + c + 12, vmlal_s16(vld1q_s32(acc + c + 12), vget_high_s16(wh), vget_high_s16(xh)));
    }
    for (; c + 8 <= n; c += 8) {
        const int16x8_t xl = vsubq_s16(vmovl_s8(vld1_s8(x + c)), zp), wl = vmovl_s8(vld1_s8(w + c));
        vst1q_s32(acc + c, vmlal_s16(vld1q_s32(acc + c), vget_low_s16(wl), vget_low_s16(xl)));
        vst1q_s32(acc + c + 4, vmlal_s16(vld1q_s32(acc + c + 4), vget_high_s16(wl), vget_high_s16(xl)));
    }
    for (; c < n; c++) acc[c] += (int32_t)w[c] * ((int32_t)x[c] - x_zp);
}

/* requant.h's arithmetic on four lanes: vqrdmulhq_s32 is gemmlowp's SRDHM (same rounding, same saturation);
 * vrshlq_s32 by a negative count rounds ties up, so negative values are first moved down by one (the fixup
 * TFLite's NEON kernels use) to round ties away from zero. */
TN_INLINE int32x4_t requant4(int32x4_t x, int32x4_t mult, int32x4_t shift) {
    const int32x4_t zero = vdupq_n_s32(0);
    const int32x4_t left = vmaxq_s32(shift, zero), right = vminq_s32(shift, zero);
    const int32x4_t h = vqrdmulhq_s32(vshlq_s32(x, left), mult);
    const int32x4_t fixup = vshrq_n_s32(vandq_s32(h, right), 31);
    return vrshlq_s32(vqaddq_s32(h, fixup), right);
}

void tn_requant_row_neon(int n, const int32_t *acc, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                         int32_t zp, int32_t lo, int32_t hi, int8_t *y) {
    const int32x4_t vzp = vdupq_n_s32(zp), vlo = vdupq_n_s32(lo), vhi = vdupq_n_s32(hi);
    int c = 0;
    for (; c + 8 <= n; c += 8) {
        int32x4_t r0 = requant4(vaddq_s32(vld1q_s32(acc + c), vld1q_s32(bias + c)), vld1q_s32(mult + c), vld1q_s32(shift + c));
        int32x4_t r1 = requant4(vaddq_s32(vld1q_s32(acc + c + 4), vld1q_s32(bias + c + 4)), vld1q_s32(mult + c + 4),
                                vld1q_s32(shift + c + 4));
        r0 = vminq_s32(vmaxq_s32(vaddq_s32(r0, vzp), vlo), vhi);
        r1 = vminq_s32(vmaxq_s32(vaddq_s32(r1, vzp), vlo), vhi);
        vst1_s8(y + c, vmovn_s16(vcombine_s16(vmovn_s32(r0), vmovn_s32(r1))));
    }
    for (; c < n; c++) {
        int32_t v = vgetq_lane_s32(requant4(vdupq_n_s32(acc[c] + bias[c]), vdupq_n_s32(mult[c]), vdupq_n_s32(shift[c])), 0) + zp;
        y[c] = (int8_t)(v < lo ? lo : (v > hi ? hi : v));
    }
}
#endif
