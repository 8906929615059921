/* NEON depthwise rows (arch.h: tn_dw_packed) for AArch64 and ARMv7 with NEON: 16 lanes per chunk, the
 * accumulators kept across taps, int16 weights times the uint8 input widened to int16 (vmlal_s16: products
 * below 2^15, sums in int32), then the NEON requantization of the row (neon.c). Compiles to nothing where the
 * compiler targets no NEON. */
#if defined(__ARM_NEON) || defined(__aarch64__)
#include <arm_neon.h>
#include <string.h>
#include "../arch.h"

void tn_requant_row_neon(int n, const int32_t *acc, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                         int32_t zp, int32_t lo, int32_t hi, int8_t *y);
void tn_dw_row_neon(int n, const uint8_t *const *in, const tn_dw_packed *pk, int32_t zp, int32_t lo, int32_t hi,
                    int8_t *y);

void tn_dw_row_neon(int n, const uint8_t *const *in, const tn_dw_packed *pk, int32_t zp, int32_t lo, int32_t hi,
                    int8_t *y) {
    const int P = pk->P, T = pk->taps;
    int l0 = 0;
    for (int j0 = 0; j0 < n; j0 += 16) {
        int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
        for (int t = 0; t < T; t++) {
            const uint8x16_t xv = vld1q_u8(in[t] + j0);
            const int16x8_t xl = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(xv)));
            const int16x8_t xh = vreinterpretq_s16_u16(vmovl_u8(vget_high_u8(xv)));
            const int16_t *w = pk->w16 + (int64_t)t * P + l0;
            const int16x8_t wl = vld1q_s16(w), wh = vld1q_s16(w + 8);
            a0 = vmlal_s16(a0, vget_low_s16(xl), vget_low_s16(wl));
            a1 = vmlal_s16(a1, vget_high_s16(xl), vget_high_s16(wl));
            a2 = vmlal_s16(a2, vget_low_s16(xh), vget_low_s16(wh));
            a3 = vmlal_s16(a3, vget_high_s16(xh), vget_high_s16(wh));
        }
        int32_t acc[16];
        vst1q_s32(acc, a0);
        vst1q_s32(acc + 4, a1);
        vst1q_s32(acc + 8, a2);
        vst1q_s32(acc + 12, a3);
        tn_requant_row_neon(n - j0 < 16 ? n - j0 : 16, acc, pk->bias + l0, pk->mult + l0, pk->shift + l0, zp, lo, hi,
                            y + j0);
        l0 += 16;
        if (l0 == P) l0 = 0;
    }
}
#endif
