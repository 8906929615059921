/* x86-64 AVX-512 (F, BW, VL, VNNI) variant. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC target("avx2,fma,bmi2,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
#include "../arch.h"
#define TN_SUFFIX avx512vnni
#include "kernels.inc"
#endif
