/* Kernel variants per instruction set, chosen once into a table (see arch/dispatch.c). */
#ifndef TN_ARCH_H
#define TN_ARCH_H
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

typedef struct tn_arch_table {
    const char *name;
    int reference;      /* 1: every op runs its portable reference kernel (for tests) */
    tn_gemm_fn gemm;
    tn_dot_fn dot;
    tn_dw_accum_fn dw_accum;
    tn_requant_row_fn requant_row;
} tn_arch_table;

extern const tn_arch_table *tn_arch;
void tn_arch_init(void);

#define TN_DECLARE_VARIANT(sfx)                                                                              \
    void tn_gemm_##sfx(int M, int nk, int K, const int8_t *A, const int8_t *B, const int32_t *cols,       \
                       int32_t *C);                                                                          \
    int32_t tn_dot_##sfx(int K, const int8_t *a, const int8_t *b);                                          \
    void tn_dw_accum_##sfx(int n, int32_t *acc, const int8_t *w, const int8_t *x, int32_t x_zp);           \
    void tn_requant_row_##sfx(int n, const int32_t *acc, const int32_t *bias, const int32_t *mult,          \
                              const int32_t *shift, int32_t zp, int32_t lo, int32_t hi, int8_t *y);
TN_DECLARE_VARIANT(generic)
TN_DECLARE_VARIANT(avx2)
TN_DECLARE_VARIANT(avx512vnni)
#define TN_VARIANT_TABLE(label, sfx) {label, 0, tn_gemm_##sfx, tn_dot_##sfx, tn_dw_accum_##sfx, tn_requant_row_##sfx}
#endif
