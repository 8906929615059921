/* The one place a kernel variant is chosen: from the CPU once at start-up, or from TUNABLE_ISA
 * ("reference", "generic", "avx2", "avx512vnni", "auto"). */
#include <stdlib.h>
#include <string.h>
#include "../arch.h"
#include "../internal.h"

static const tn_arch_table table_generic = TN_VARIANT_TABLE("generic", generic);
static const tn_arch_table table_reference = {"reference", 1, tn_gemm_generic, tn_dot_generic,
                                              tn_dw_accum_generic, tn_requant_row_generic, NULL, tn_add_generic,
                                              NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define TN_X86 1
void tn_q16_gemm_avx2(int M, const int16_t *A, int lda, const tn_q16_packed *B, int32_t zp, int32_t lo, int32_t hi,
                      int8_t *Y, int ldy);
static const tn_arch_table table_avx2 = {"avx2", 0, tn_gemm_avx2, tn_dot_avx2, tn_dw_accum_avx2, tn_requant_row_avx2,
                                         NULL, tn_add_avx2, tn_dw_row_avx2, NULL, NULL, tn_gather_avx2, tn_expand_avx2,
                                         tn_drop_avx2, tn_q16_gemm_avx2, tn_zero_ch_avx2, NULL, tn_mask_bytes_avx2};
void tn_q8_gemm_avx512vnni(int M, const uint8_t *A, int lda, const tn_q8_packed *B, int32_t zp, int32_t lo,
                           int32_t hi, int8_t *Y, int ldy);
void tn_px_conv_avx512vnni(int p0, int np, int Wq, int ow, const uint8_t *X, const int64_t *koff,
                           const tn_px_packed *B, int32_t zp, int32_t lo, int32_t hi, int8_t *Y, int ldy);
void tn_px_fill_avx512vnni(int n, const int8_t *src, int64_t sstride, int cin, uint8_t *dst, int64_t plane);
void tn_q8_gemv_raw_avx512vnni(const tn_q8_packed *B, int k4a, int k4b, const uint8_t *a, const uint8_t *blocks,
                               int32_t *out);
void tn_gather_avx512vbmi2(int n, const int8_t *src, int64_t sstride, const int32_t *keep, const uint64_t *mask, int C,
                           int ck, uint8_t flip, uint8_t *dst);
void tn_expand_avx512vbmi2(int n, const int8_t *src, int ck, const int32_t *keep, const uint64_t *mask, int C,
                           int8_t zero, int8_t *y);
#define TN_AVX512_TABLE(gather, expand)                                                                            \
    {"avx512vnni", 0, tn_gemm_avx512vnni, tn_dot_avx512vnni, tn_dw_accum_avx512vnni, tn_requant_row_avx512vnni,     \
     tn_q8_gemm_avx512vnni, tn_add_avx512vnni, tn_dw_row_avx512vnni, tn_px_conv_avx512vnni, tn_px_fill_avx512vnni, \
     gather, expand, tn_drop_avx512vnni, NULL, tn_zero_ch_avx512vnni, tn_q8_gemv_raw_avx512vnni,        \
     tn_mask_bytes_avx512vnni}
/* the same variant, with channel compress/expand where the CPU has AVX-512 VBMI2 (Ice Lake, Zen 4 and later) */
static const tn_arch_table table_avx512_vbmi2 = TN_AVX512_TABLE(tn_gather_avx512vbmi2, tn_expand_avx512vbmi2);
static const tn_arch_table table_avx512 = TN_AVX512_TABLE(tn_gather_avx512vnni, tn_expand_avx512vnni);
#endif

/* ---- ARM (AArch64, ARMv7 with NEON) ---- */
#if defined(__aarch64__) || (defined(__arm__) && defined(__ARM_NEON))
#define TN_ARM 1
/* NEON is part of every AArch64 CPU, and an ARMv7 build with -mfpu=neon* already requires it */
TN_DECLARE_VARIANT(neon)
void tn_dw_row_neon(int n, const uint8_t *const *in, const tn_dw_packed *pk, int32_t zp, int32_t lo, int32_t hi,
                    int8_t *y);
static const tn_arch_table table_neon = {"neon", 0, tn_gemm_neon, tn_dot_neon, tn_dw_accum_neon, tn_requant_row_neon,
                                         NULL, tn_add_generic, tn_dw_row_neon, NULL, NULL,
                                         tn_gather_generic, tn_expand_generic, tn_drop_generic, NULL,
                                         tn_zero_ch_generic, NULL, tn_mask_bytes_generic};
#if defined(__aarch64__) && defined(__linux__)
#define TN_ARM_DOTPROD 1
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
TN_DECLARE_VARIANT(neon_dotprod)
/* sdot helps the GEMM and the dot product only; depthwise and requantization stay on the NEON kernels */
static const tn_arch_table table_neon_dotprod = {"neon-dotprod", 0, tn_gemm_neon_dotprod, tn_dot_neon_dotprod,
                                                 tn_dw_accum_neon, tn_requant_row_neon, NULL, tn_add_generic,
                                                 tn_dw_row_neon, NULL, NULL, tn_gather_generic,
                                                 tn_expand_generic, tn_drop_generic, NULL, tn_zero_ch_generic, NULL,
                                                 tn_mask_bytes_generic};
/* the kernel reports sdot (Cortex-A55/A76 and later: Pi 5; not the A53/A72 of Pi 3/4) */
static int has_asimddp(void) { return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0; }
#endif
#endif
/* ---- end ARM ---- */

typedef struct { const tn_arch_table *t; int (*supported)(void); } entry;

#ifdef TN_X86
/* __builtin_cpu_supports checks CPUID and that the OS saves the registers (XCR0) */
static int has_avx2(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"); }
static int has_avx512vnni(void) {
    return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
}
static int has_avx512vbmi2(void) { return has_avx512vnni() && __builtin_cpu_supports("avx512vbmi2"); }
#endif
static int always(void) { return 1; }

/* best first */
static const entry entries[] = {
#ifdef TN_X86
    {&table_avx512_vbmi2, has_avx512vbmi2},
    {&table_avx512, has_avx512vnni},
    {&table_avx2, has_avx2},
#endif
#ifdef TN_ARM_DOTPROD
    {&table_neon_dotprod, has_asimddp},
#endif
#ifdef TN_ARM
    {&table_neon, always},
#endif
    {&table_generic, always},
    {&table_reference, always},
};

const tn_arch_table *tn_arch = NULL;

int tn_arch_has_q16(void) {
#ifdef TN_X86
    __builtin_cpu_init();
    return has_avx2();
#else
    return 0;
#endif
}

int tn_arch_has_q8(void) {
#ifdef TN_X86
    __builtin_cpu_init();
    return has_avx512vnni();
#else
    return 0;
#endif
}

static const tn_arch_table *best_for_cpu(void) {
#ifdef TN_X86
    __builtin_cpu_init();
#endif
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++)
        if (entries[i].supported()) return entries[i].t;
    return &table_generic;
}

void tn_arch_init(void) {
    if (tn_arch) return;
    const char *env = getenv("TUNABLE_ISA");
    if (env && *env && tn_force_isa(env) == TN_ERR_OK) return;
    tn_arch = best_for_cpu();
}

int tn_force_isa(const char *name) {
    if (!name) return TN_ERR_BAD_ARGUMENT;
    if (!strcmp(name, "auto")) { tn_arch = best_for_cpu(); return TN_ERR_OK; }
    /* a name may have several tables (best first): the first one the CPU runs */
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++)
        if (!strcmp(entries[i].t->name, name) && entries[i].supported()) {
            tn_arch = entries[i].t;
            return TN_ERR_OK;
        }
    return TN_ERR_UNSUPPORTED;
}

const char *tn_isa(void) {
    tn_arch_init();
    return tn_arch->name;
}
