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

/* ADD of two int8 tensors of the same shape, TFLite's integer arithmetic (shifts <= 0, validated) */
typedef struct tn_add_params {
    int32_t a_zp, b_zp, out_zp, left_shift, a_mult, a_shift, b_mult, b_shift, out_mult, out_shift, lo, hi;
} tn_add_params;
typedef void (*tn_add_fn)(int64_t n, const int8_t *a, const int8_t *b, const tn_add_params *p, int8_t *y);

typedef struct tn_arch_table {
    const char *name;
    int reference;      /* 1: every op runs its portable reference kernel (for tests) */
    tn_gemm_fn gemm;
    tn_dot_fn dot;
    tn_dw_accum_fn dw_accum;
    tn_requant_row_fn requant_row;
    tn_q8_gemm_fn q8_gemm;  /* NULL where the variant has no packed path */
    tn_add_fn add;
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
TN_DECLARE_VARIANT(generic)
TN_DECLARE_VARIANT(avx2)
TN_DECLARE_VARIANT(avx512vnni)
#define TN_VARIANT_TABLE(label, sfx) {label, 0, tn_gemm_##sfx, tn_dot_##sfx, tn_dw_accum_##sfx, tn_requant_row_##sfx, NULL, tn_add_##sfx}
#endif
