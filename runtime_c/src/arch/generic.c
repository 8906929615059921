/* Portable kernels, written so that a vectorising compiler widens the k loops. */
#include "../arch.h"

int32_t tn_dot_generic(int K, const int8_t *a, const int8_t *b) {
    int32_t s = 0;
    for (int k = 0; k < K; k++) s += (int32_t)a[k] * (int32_t)b[k];
    return s;
}

void tn_gemm_generic(int M, int nk, int K, const int8_t *A, const int8_t *B, const int32_t *cols, int32_t *C) {
    int j = 0;
    for (; j + 4 <= nk; j += 4) {
        const int8_t *b0 = B + (int64_t)cols[j] * K, *b1 = B + (int64_t)cols[j + 1] * K;
        const int8_t *b2 = B + (int64_t)cols[j + 2] * K, *b3 = B + (int64_t)cols[j + 3] * K;
        int m = 0;
        for (; m + 2 <= M; m += 2) {
            const int8_t *a0 = A + (int64_t)m * K, *a1 = a0 + K;
            int32_t s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
            for (int k = 0; k < K; k++) {
                int32_t x0 = a0[k], x1 = a1[k];
                s00 += x0 * b0[k]; s01 += x0 * b1[k]; s02 += x0 * b2[k]; s03 += x0 * b3[k];
                s10 += x1 * b0[k]; s11 += x1 * b1[k]; s12 += x1 * b2[k]; s13 += x1 * b3[k];
            }
            int32_t *c0 = C + (int64_t)m * nk + j, *c1 = c0 + nk;
            c0[0] = s00; c0[1] = s01; c0[2] = s02; c0[3] = s03;
            c1[0] = s10; c1[1] = s11; c1[2] = s12; c1[3] = s13;
        }
        for (; m < M; m++) {
            const int8_t *a0 = A + (int64_t)m * K;
            int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (int k = 0; k < K; k++) {
                int32_t x0 = a0[k];
                s0 += x0 * b0[k]; s1 += x0 * b1[k]; s2 += x0 * b2[k]; s3 += x0 * b3[k];
            }
            int32_t *c0 = C + (int64_t)m * nk + j;
            c0[0] = s0; c0[1] = s1; c0[2] = s2; c0[3] = s3;
        }
    }
    for (; j < nk; j++) {
        const int8_t *b0 = B + (int64_t)cols[j] * K;
        for (int m = 0; m < M; m++) C[(int64_t)m * nk + j] = tn_dot_generic(K, A + (int64_t)m * K, b0);
    }
}
