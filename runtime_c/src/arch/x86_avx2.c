/* x86-64 AVX2 variant: kernels.inc vectorised by the compiler for AVX2 (+FMA, BMI2). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC target("avx2,fma,bmi2")
#include "../arch.h"
#define TN_SUFFIX avx2
#include "kernels.inc"
#endif
