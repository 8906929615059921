/* Kernel variants per instruction set, chosen once into a table (see arch/dispatch.c). */
#ifndef TN_ARCH_H
#define TN_ARCH_H
#include <stdint.h>

/* C[m * nk + j] = sum_k A[m * K + k] * B[cols[j] * K + k] for m < M, j < nk (int8 x int8 -> int32). */
typedef void (*tn_gemm_fn)(int M, int nk, int K, const int8_t *A, const int8_t *B, const int32_t *cols,
                           int32_t *C);
/* sum_k a[k] * b[k] */
typedef int32_t (*tn_dot_fn)(int K, const int8_t *a, const int8_t *b);

typedef struct tn_arch_table {
    const char *name;
    int reference;      /* 1: every op runs its portable reference kernel (for tests) */
    tn_gemm_fn gemm;
    tn_dot_fn dot;
} tn_arch_table;

extern const tn_arch_table *tn_arch;
void tn_arch_init(void);

void tn_gemm_generic(int M, int nk, int K, const int8_t *A, const int8_t *B, const int32_t *cols, int32_t *C);
int32_t tn_dot_generic(int K, const int8_t *a, const int8_t *b);
#endif
