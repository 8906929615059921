/* Kernel variants per instruction set, chosen once into a table (see arch/dispatch.c). */
#ifndef TN_ARCH_H
#define TN_ARCH_H
#include <stddef.h>
#include <stdint.h>

/* C[m * nk + j] = sum_k A[m * K + k] * B[cols[j] * K + k] for m < M, j < nk (int8 x int8 -> int32). */
typedef void (*tn_gemm_fn)(int M, int nk, int K, const int8_t *A, const int8_t *B, const int32_t *cols,
                           int32_t *C);
/* sum_k a[k] * b[k] */
typedef int32_t (*tn_dot_fn)(int K, const int8_t *a, const int8_t *b);
/* acc[c] += w[c] * (x[c] - x_zp), c < n */
typedef void (*tn_dw_accum_fn)(int n, int32_t *acc, const int8_t *w, const int8_t *x, int32_t x_zp);
/* y[c] = clamp(MBQM(acc[c] + bias[c], mult[c], shift[c]) + zp, lo, hi), c < n */
typedef void (*tn_requant_row_fn)(int n, const int32_t *acc, const int32_t *bias, const int32_t *mult,
                                  const int32_t *shift, int32_t zp, int32_t lo, int32_t hi, int8_t *y);

/* Packed-weight GEMM with fused requantization (x86 AVX-512 VNNI): weights packed once at load into blocks
 * of 16 output channels x 4 reduction bytes (tn_pack_q8), activations as uint8 (int8 ^ 0x80, the bias
 * corrected by -128 * sum(w)). Y[m * ldy + n] for n < N, m < M. */
typedef struct tn_q8_packed {
    int N, K, K4, NB;         /* channels, reduction, ceil(K/4), ceil(N/16) */
    const int8_t *w;          /* NB x K4 x 16 x 4 */
    const int32_t *bias;      /* NB*16: bias_folded - 128 * sum(w) */
    const int32_t *mult, *lshift, *rshift;  /* NB*16 */
} tn_q8_packed;
typedef void (*tn_q8_gemm_fn)(int M, const uint8_t *A, int lda, const tn_q8_packed *B, int32_t zp, int32_t lo,
                              int32_t hi, int8_t *Y, int ldy);
/* raw int32 sums over the groups of 4 reduction bytes [k4a, k4b), one uint8 input row (x ^ 0x80, no bias):
 * out[n] = sum_{4 k4a <= k < 4 k4b} w[n][k] * a[k] for the rows n of the blocks of 16 flagged in blocks (every
 * block when NULL); other rows are left as they are (AIP: previews, then the completed rows' tiles) */
typedef void (*tn_q8_gemv_raw_fn)(const tn_q8_packed *B, int k4a, int k4b, const uint8_t *a, const uint8_t *blocks,
                                  int32_t *out);

/* Packed-weight GEMM with fused requantization for CPUs without VNNI (x86 AVX2): weights packed once at load
 * into blocks of 8 output channels x 2 reduction values as int16 (vpmaddwd multiplies pairs exactly),
 * activations as int16 rows (the int8 values as they are, padding taps the input zero point, the bias folded
 * for it). Y[m * ldy + n] for n < N, m < M; A rows of lda int16 (lda >= 2 * K2, zero past K). */
typedef struct tn_q16_packed {
    int N, K, K2, NB;         /* channels, reduction, ceil(K/2), ceil(N/8) */
    const int16_t *w;         /* NB x K2 x 8 x 2 */
    const int32_t *bias;      /* NB*8: bias_folded */
    const int32_t *mult, *lshift, *rshift;  /* NB*8 */
} tn_q16_packed;
typedef void (*tn_q16_gemm_fn)(int M, const int16_t *A, int lda, const tn_q16_packed *B, int32_t zp, int32_t lo,
                               int32_t hi, int8_t *Y, int ldy);
size_t tn_q16_packed_bytes(int n, int K);
void tn_q16_pack(int n, int K, const int8_t *W, const int32_t *cols, const int32_t *bias_folded,
                 const int32_t *mult, const int32_t *shift, void *mem, tn_q16_packed *out);
int tn_arch_has_q16(void);  /* the CPU has the AVX2 packed kernel (pack at load when it does) */

/* ADD of two int8 tensors of the same shape, TFLite's integer arithmetic (shifts <= 0, validated) */
typedef struct tn_add_params {
    int32_t a_zp, b_zp, out_zp, left_shift, a_mult, a_shift, b_mult, b_shift, out_mult, out_shift, lo, hi;
} tn_add_params;
typedef void (*tn_add_fn)(int64_t n, const int8_t *a, const int8_t *b, const tn_add_params *p, int8_t *y);

/* DEPTHWISE_CONV_2D with depth multiplier 1 over flattened rows: lane j of an output row is pixel j / C,
 * channel j % C. Packed at load (tn_dw_pack): per tap t and lane l < P (P = lcm(C, 16), so a chunk of 16
 * lanes starting at a multiple of 16 reads its pattern at j % P): the channel's weight as int32; per lane
 * the bias folded for uint8 inputs over the full window (bias - (in_zp + 128) * sum_t w), multiplier and
 * shifts. Inputs are uint8 (int8 ^ 0x80) with the zero point in the border, so every tap is computed. */
typedef struct tn_dw_packed {
    int C, P, taps;
    const int32_t *w;                              /* taps x P */
    const int32_t *bias, *mult, *lshift, *rshift;  /* P each */
    const int16_t *w16;                            /* taps x P, the same weights as int16 (NEON) */
    const int32_t *shift;                          /* P: the signed shift (requant_row's form) */
} tn_dw_packed;
/* y[j] = clamp(requant(bias[j % P] + sum_t w[t][j % P] * in[t][j]) + zp, lo, hi) for j < n; in[t] may be read
 * up to 64 bytes past n. */
typedef void (*tn_dw_row_fn)(int n, const uint8_t *const *in, const tn_dw_packed *pk, int32_t zp, int32_t lo,
                             int32_t hi, int8_t *y);
size_t tn_dw_packed_bytes(int C, int taps);
/* channels cols[0..n) (all C when cols is NULL) of depthwise weights W [taps][Cw] */
void tn_dw_pack(int n, int taps, int Cw, const int8_t *W, const int32_t *cols, const int32_t *bias_folded,
                const int32_t *mult, const int32_t *shift, void *mem, tn_dw_packed *out);

/* CONV_2D as an implicit GEMM with output positions in SIMD lanes (x86 AVX-512 VNNI). The input is converted
 * once per layer into uint8 planes X[phase_y][phase_x][G][Hq][Wq][4] (G = ceil(Cin/4), int8 ^ 0x80, the zero
 * point in the border), so that the outputs of the "wide" grid (rows of Wq positions, of which the first ow
 * are real) read, for a reduction step k (a tap and a channel group), 4 bytes at X + koff[k] + 4 * p: 16
 * consecutive positions are one 64-byte load, and each output channel adds one dot product with its 4
 * weight bytes broadcast. The cost is proportional to the number of channels computed. Weights are packed
 * in tiles of 16 output channels (the last one 4 * ceil(rest / 4) wide): tile t at w + t * kg * 64, laid out
 * [k][width][4 bytes]. */
typedef struct tn_px_packed {
    int n, kg;                                     /* channels, reduction steps (taps * G) */
    const int8_t *w;
    const int32_t *bias, *mult, *lshift, *rshift;  /* 4 * ceil(n / 4); bias: bias_folded - 128 * sum(w) */
    /* a subset of the layer's cout channels (drowsy) written in place: output block ob (16 channels) takes
     * the computed channels xoff[ob] .. xoff[ob] + 15 shuffled by xctl[ob] where xmask[ob] has a bit, real zero
     * elsewhere; NULL when the n channels are the layer's */
    int cout;
    const int32_t *xoff, *xmask;
    const int8_t *xctl;
} tn_px_packed;
/* The outputs at wide positions p0 <= p < p0 + np whose column p % Wq is below ow, channels c < B->n, written
 * to Y + ((p / Wq - p0 / Wq) * ow + p % Wq) * ldy + c (Y: the output row of p0). X is the start of the planes;
 * it may be read up to 64 bytes past the last position. */
typedef void (*tn_px_conv_fn)(int p0, int np, int Wq, int ow, const uint8_t *X, const int64_t *koff,
                              const tn_px_packed *B, int32_t zp, int32_t lo, int32_t hi, int8_t *Y, int ldy);
/* n pixels at src + i * sstride (cin int8 channels each) into the planes: dst[g * plane + 4 * i + b] =
 * src[i * sstride + 4 * g + b] ^ 0x80 where 4 * g + b < cin */
typedef void (*tn_px_fill_fn)(int n, const int8_t *src, int64_t sstride, int cin, uint8_t *dst, int64_t plane);
/* the largest layer (output channels) whose subsets px_conv expands in place */
#define TN_PX_MAX_EXPAND 256
/* channels in tile t of n: 16, or 4 * ceil(rest / 4) for the last one */
#define TN_PX_WIDTH(n, t) ((n) - 16 * (t) >= 16 ? 16 : ((n) - 16 * (t) + 3) / 4 * 4)
size_t tn_px_packed_bytes(int n, int kg, int cout);
/* channels cols[0..n) (ascending; all when NULL) of W [cout][kh][kw][Cin] */
void tn_px_pack(int n, int cout, int kh, int kw, int cin, const int8_t *W, const int32_t *cols,
                const int32_t *bias_folded, const int32_t *mult, const int32_t *shift, void *mem, tn_px_packed *out);

/* Channel subsets (drowsy): the kept channels of C as a list (ascending) and as a bit mask (ceil(C / 64) words).
 * gather: dst[p * ck + k] = src[p * sstride + keep[k]] ^ flip for p < n (flip 0x80 makes uint8 planes);
 * expand: y[p * C + c] = the next of src[p * ck ...] where c is kept, zero elsewhere. */
typedef void (*tn_gather_fn)(int n, const int8_t *src, int64_t sstride, const int32_t *keep, const uint64_t *mask,
                             int C, int ck, uint8_t flip, uint8_t *dst);
typedef void (*tn_expand_fn)(int n, const int8_t *src, int ck, const int32_t *keep, const uint64_t *mask, int C,
                             int8_t zero, int8_t *y);
/* drowsy element granularity over units u0 .. u0 + n - 1 (drowsy.h's hash, random selection; u0 a multiple of C,
 * element i of channel i % C): y[i] = zero where dropped; while *unseen > 0, used[channel] is set for kept
 * elements and *unseen counts the channels not yet set; returns the number dropped */
typedef uint64_t (*tn_drop_fn)(int n, int C, uint64_t seed, uint32_t layer, uint64_t u0, uint32_t threshold,
                               int8_t zero, int8_t *y, uint8_t *used, int *unseen);
/* y[p * C + c] = zero for the dropped channels c (drop[0..nd), or the bits of dmask), p < n */
typedef void (*tn_zero_fn)(int n, const int32_t *drop, int nd, const uint64_t *dmask, int C, int8_t zero, int8_t *y);
/* y[i] = keep[i] ? y[i] : zero for i < n, keep[i] 0xFF or 0 (a drowsy element mask made when the seed is set) */
typedef void (*tn_mask_bytes_fn)(int64_t n, const uint8_t *keep, int8_t zero, int8_t *y);

typedef struct tn_arch_table {
    const char *name;
    int reference;      /* 1: every op runs its portable reference kernel (for tests) */
    tn_gemm_fn gemm;
    tn_dot_fn dot;
    tn_dw_accum_fn dw_accum;
    tn_requant_row_fn requant_row;
    tn_q8_gemm_fn q8_gemm;  /* NULL where the variant has no packed path */
    tn_add_fn add;
    /* optional (NULL: the op takes its portable path) */
    tn_dw_row_fn dw_row;
    tn_px_conv_fn px_conv;
    tn_px_fill_fn px_fill;  /* with px_conv */
    tn_gather_fn gather;
    tn_expand_fn expand;
    tn_drop_fn drop;
    tn_q16_gemm_fn q16_gemm;
    tn_zero_fn zero_ch;
    tn_q8_gemv_raw_fn q8_gemv_raw;
    tn_mask_bytes_fn mask_bytes;
} tn_arch_table;

/* Packs channels cols[0..n) of W [N][K] (all when cols is NULL) with their per-channel values into the
 * layout above; `mem` holds tn_q8_packed_bytes(n, K) bytes, 64-aligned. Portable: runs wherever packing is
 * needed, the kernels that read the layout are per ISA. */
size_t tn_q8_packed_bytes(int n, int K);
void tn_q8_pack(int n, int K, const int8_t *W, const int32_t *cols, const int32_t *bias_folded,
                const int32_t *mult, const int32_t *shift, void *mem, tn_q8_packed *out);
int tn_arch_has_q8(void);  /* the CPU has a packed kernel (pack at load when it does) */

extern const tn_arch_table *tn_arch;
void tn_arch_init(void);

#define TN_DECLARE_VARIANT(sfx)                                                                              \
    void tn_gemm_##sfx(int M, int nk, int K, const int8_t *A, const int8_t *B, const int32_t *cols,       \
                       int32_t *C);                                                                          \
    int32_t tn_dot_##sfx(int K, const int8_t *a, const int8_t *b);                                          \
    void tn_dw_accum_##sfx(int n, int32_t *acc, const int8_t *w, const int8_t *x, int32_t x_zp);           \
    void tn_requant_row_##sfx(int n, const int32_t *acc, const int32_t *bias, const int32_t *mult,          \
                              const int32_t *shift, int32_t zp, int32_t lo, int32_t hi, int8_t *y);     \
    void tn_add_##sfx(int64_t n, const int8_t *a, const int8_t *b, const tn_add_params *p, int8_t *y);
#define TN_DECLARE_VARIANT_EXTRA(sfx)                                                                        \
    void tn_dw_row_##sfx(int n, const uint8_t *const *in, const tn_dw_packed *pk, int32_t zp, int32_t lo,        \
                         int32_t hi, int8_t *y);                                                                 \
    void tn_gather_##sfx(int n, const int8_t *src, int64_t sstride, const int32_t *keep, const uint64_t *mask,  \
                         int C, int ck, uint8_t flip, uint8_t *dst);                                             \
    void tn_expand_##sfx(int n, const int8_t *src, int ck, const int32_t *keep, const uint64_t *mask, int C,     \
                         int8_t zero, int8_t *y);                                                                \
    uint64_t tn_drop_##sfx(int n, int C, uint64_t seed, uint32_t layer, uint64_t u0, uint32_t threshold,         \
                           int8_t zero, int8_t *y, uint8_t *used, int *unseen);                                  \
    void tn_zero_ch_##sfx(int n, const int32_t *drop, int nd, const uint64_t *dmask, int C, int8_t zero, int8_t *y); \
    void tn_mask_bytes_##sfx(int64_t n, const uint8_t *keep, int8_t zero, int8_t *y);
TN_DECLARE_VARIANT_EXTRA(generic)
TN_DECLARE_VARIANT_EXTRA(avx2)
TN_DECLARE_VARIANT_EXTRA(avx512vnni)
TN_DECLARE_VARIANT(generic)
TN_DECLARE_VARIANT(avx2)
TN_DECLARE_VARIANT(avx512vnni)
#define TN_VARIANT_TABLE(label, sfx) {label, 0, tn_gemm_##sfx, tn_dot_##sfx, tn_dw_accum_##sfx, tn_requant_row_##sfx, NULL, tn_add_##sfx, tn_dw_row_##sfx, NULL, NULL, tn_gather_##sfx, tn_expand_##sfx, tn_drop_##sfx, NULL, tn_zero_ch_##sfx, NULL, tn_mask_bytes_##sfx}
#endif
