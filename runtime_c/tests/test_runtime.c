/* C test suite of the runtime; runs natively and under qemu-user on ARM (see ../Makefile, `make test`).
 *
 *   test_runtime [GOLDEN_DIR ...]
 *
 * 1. Kernel variants: every variant this build has and this CPU runs (generic, avx2, avx512vnni, neon,
 *    neon-dotprod) is compared with plain scalar loops, zero tolerance, over edge shapes (M, N, K from 1
 *    up, K tails of every length mod 16, channel subsets) and edge values (all -128, all 127, -128 weights
 *    that force the NEON GEMM's one-product-per-lane path, every shift of the requantization).
 * 2. Golden vectors: each NAME.plan in a GOLDEN_DIR with NAME.in (samples of the model's inputs, raw bytes,
 *    concatenated) and NAME.out (the oracle's outputs for them, made by tests/gen_golden.py from TFLite
 *    Micro) must give bit-identical outputs under the reference kernels and under every variant.
 *
 * Prints one line per failure and a closing "N passed, N failed" line; exits 1 on any failure. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "arch.h"
#include "requant.h"
#include "tunable.h"

static int n_pass, n_fail;
static const char *const variants[] = {"generic", "avx2", "avx512vnni", "neon", "neon-dotprod"};
#define N_VARIANTS (sizeof variants / sizeof variants[0])

#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        if (cond) {                                                                                          \
            n_pass++;                                                                                        \
        } else {                                                                                             \
            n_fail++;                                                                                        \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                      \
            printf(__VA_ARGS__);                                                                             \
            printf("\n");                                                                                    \
        }                                                                                                    \
    } while (0)

/* xorshift64*: the same data on every platform */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}
static int32_t rnd_range(int32_t lo, int32_t hi) { return lo + (int32_t)(rnd() % (uint32_t)(hi - lo + 1)); }

/* fill: 0 random, 1 all -128, 2 all 127, 3 random with many -128, 4 alternating -128/127 */
static void fill_i8(int8_t *p, int n, int mode) {
    for (int i = 0; i < n; i++) {
        switch (mode) {
        case 1: p[i] = -128; break;
        case 2: p[i] = 127; break;
        case 3: p[i] = (rnd() & 3) ? -128 : (int8_t)rnd(); break;
        case 4: p[i] = (i & 1) ? 127 : -128; break;
        default: p[i] = (int8_t)rnd();
        }
    }
}

static int32_t dot_ref(int K, const int8_t *a, const int8_t *b) {
    int64_t s = 0;  /* int64: a reference that cannot wrap; the shapes here stay inside int32 */
    for (int k = 0; k < K; k++) s += (int32_t)a[k] * (int32_t)b[k];
    return (int32_t)s;
}

static void test_gemm_dot(const char *isa) {
    static const int Ms[] = {1, 2, 3, 4, 5, 7, 8, 9, 13};
    static const int Ns[] = {1, 2, 3, 4, 5, 7, 8, 12, 17};
    int Ks[80], nK = 0;
    for (int k = 1; k <= 48; k++) Ks[nK++] = k;
    static const int bigK[] = {63, 64, 65, 72, 127, 128, 129, 255, 256, 257, 576, 1000, 4608};
    for (size_t i = 0; i < sizeof bigK / sizeof bigK[0]; i++) Ks[nK++] = bigK[i];
    const int maxM = 13, maxB = 24, maxK = 4608;
    int8_t *A = malloc((size_t)maxM * maxK), *B = malloc((size_t)maxB * maxK);
    int32_t *C = malloc(sizeof(int32_t) * maxM * maxB), cols[24];
    int bad_gemm = 0, bad_dot = 0, cases = 0;
    for (int ki = 0; ki < nK; ki++)
        for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++)
            for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0]; ni++) {
                const int K = Ks[ki], M = Ms[mi], N = Ns[ni];
                if (K > 1000 && (M > 5 || N > 5)) continue;  /* keep the emulated run short */
                const int mode_a = (int)((ki + mi + ni) % 5), mode_b = (int)((ki * 3 + ni) % 5);
                fill_i8(A, M * K, mode_a);
                fill_i8(B, maxB * K, mode_b);
                if (mode_b == 0 && (ni & 1)) B[(rnd() % maxB) * K + rnd() % K] = -128;  /* one -128 weight */
                /* a channel subset in increasing order, as conv's keep list is */
                for (int j = 0, c = 0; j < N; j++) {
                    c += 1 + (int)(rnd() % 2);
                    cols[j] = c - 1 < maxB - N + j ? c - 1 : maxB - N + j;
                    c = cols[j] + 1;
                }
                for (int i = 0; i < M * N; i++) C[i] = 0x5A5A5A5A;
                tn_arch->gemm(M, N, K, A, B, cols, C);
                cases++;
                for (int m = 0; m < M && !bad_gemm; m++)
                    for (int j = 0; j < N; j++) {
                        const int32_t want = dot_ref(K, A + (int64_t)m * K, B + (int64_t)cols[j] * K);
                        if (C[m * N + j] != want) {
                            printf("FAIL %s gemm M=%d N=%d K=%d (A mode %d, B mode %d): C[%d][%d] = %d, want %d\n", isa,
                                   M, N, K, mode_a, mode_b, m, j, C[m * N + j], want);
                            bad_gemm++;
                            break;
                        }
                    }
                if (mi == 0 && ni == 0)
                    for (int off = 0; off < 3; off++) {  /* unaligned starts too */
                        if (off >= K) break;
                        const int32_t got = tn_arch->dot(K - off, A + off, B + off), want = dot_ref(K - off, A + off, B + off);
                        if (got != want && bad_dot++ < 5)
                            printf("FAIL %s dot K=%d offset %d: %d, want %d\n", isa, K - off, off, got, want);
                    }
            }
    CHECK(bad_gemm == 0, "%s: gemm differs from the scalar sums (%d of %d cases shown above)", isa, bad_gemm, cases);
    CHECK(bad_dot == 0, "%s: dot differs from the scalar sums (%d cases)", isa, bad_dot);
    free(A);
    free(B);
    free(C);
}

static void test_dw_accum(const char *isa) {
    int bad = 0;
    int32_t acc[80], want[80];
    int8_t w[80], x[80];
    for (int n = 1; n <= 70; n++)
        for (int rep = 0; rep < 6; rep++) {
            const int32_t zp = rep == 0 ? -128 : rep == 1 ? 127 : rnd_range(-128, 127);
            fill_i8(w, n, rep % 5);
            fill_i8(x, n, (rep + 2) % 5);
            for (int c = 0; c < n; c++) acc[c] = want[c] = rnd_range(-1000000, 1000000);
            acc[n] = want[n] = 77;
            for (int c = 0; c < n; c++) want[c] += (int32_t)w[c] * ((int32_t)x[c] - zp);
            tn_arch->dw_accum(n, acc, w, x, zp);
            if (memcmp(acc, want, sizeof(int32_t) * (size_t)(n + 1)) && bad++ < 5)
                printf("FAIL %s dw_accum n=%d zp=%d\n", isa, n, zp);
        }
    CHECK(bad == 0, "%s: dw_accum differs from the scalar loop (%d cases)", isa, bad);
}

static void test_requant_row(const char *isa) {
    enum { N = 67 };
    int32_t acc[N], bias[N], mult[N], shift[N];
    int8_t y[N + 1], want[N + 1];
    int bad = 0;
    for (int rep = 0; rep < 400; rep++) {
        const int n = 1 + rep % N;
        const int32_t zp = rnd_range(-128, 127);
        int32_t lo = rnd_range(-128, 127), hi = rnd_range(-128, 127);
        if (rep % 3 == 0) { lo = -128; hi = 127; }
        if (lo > hi) { int32_t t = lo; lo = hi; hi = t; }
        for (int c = 0; c < n; c++) {
            shift[c] = rnd_range(-31, 30);
            mult[c] = rep % 7 == 0 ? (int32_t)(0x7FFFFFFF - (rnd() % 4)) : (int32_t)(0x40000000u + rnd() % 0x40000000u);
            const int wide = rep % 4;  /* magnitude of the accumulator: all sizes, and ties of the rounding */
            acc[c] = wide == 0 ? rnd_range(-2000, 2000) : wide == 1 ? (int32_t)rnd() / 2 : rnd_range(-(1 << 20), 1 << 20);
            bias[c] = rnd_range(-(1 << 20), 1 << 20);
            if (shift[c] > 0) {  /* keep the left-shifted value inside int32, as a valid plan does */
                acc[c] >>= shift[c];
                bias[c] >>= shift[c] + 1;
                acc[c] >>= 1;
            }
            if (rep % 5 == 1) acc[c] = (int32_t)(rnd() % 64) << 10;  /* many exact ties after the shift */
            want[c] = tn_requant(acc[c] + bias[c], mult[c], shift[c], zp, lo, hi);
        }
        y[n] = want[n] = 99;
        tn_arch->requant_row(n, acc, bias, mult, shift, zp, lo, hi, y);
        if (memcmp(y, want, (size_t)n + 1) && bad++ < 5) {
            for (int c = 0; c < n; c++)
                if (y[c] != want[c]) {
                    printf("FAIL %s requant_row n=%d c=%d acc=%d bias=%d mult=%d shift=%d zp=%d: %d, want %d\n", isa,
                           n, c, acc[c], bias[c], mult[c], shift[c], zp, y[c], want[c]);
                    break;
                }
        }
    }
    CHECK(bad == 0, "%s: requant_row differs from requant.h (%d cases)", isa, bad);
}

/* ---- golden vectors ---- */

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)(n > 0 ? n : 0);
    return buf;
}

/* runs every sample of one golden case under the current variant; returns the number of mismatches */
static int run_golden(const char *name, const tn_model *m, const unsigned char *in, size_t in_sz,
                      const unsigned char *out, size_t out_sz, size_t ib, size_t ob, const char *isa) {
    char err[256];
    tn_session *s = NULL;
    if (tn_session_create(m, NULL, 0, &s, err, sizeof err)) {
        printf("FAIL %s: session: %s\n", name, err);
        return 1;
    }
    const size_t samples = in_sz / ib;
    int bad = 0;
    for (size_t i = 0; i < samples && bad == 0; i++) {
        size_t off = 0;
        for (int k = 0; k < tn_model_num_inputs(m); k++) {
            tn_tensor_info ti;
            tn_model_tensor_info(m, tn_model_input(m, k), &ti);
            memcpy(tn_session_tensor(s, tn_model_input(m, k)), in + i * ib + off, ti.nbytes);
            off += ti.nbytes;
        }
        int rc = tn_session_run(s);
        if (rc) {
            printf("FAIL %s [%s] sample %zu: run: %s\n", name, isa, i, tn_session_error(s));
            bad++;
            break;
        }
        off = 0;
        for (int k = 0; k < tn_model_num_outputs(m); k++) {
            tn_tensor_info ti;
            tn_model_tensor_info(m, tn_model_output(m, k), &ti);
            const unsigned char *got = tn_session_tensor(s, tn_model_output(m, k));
            const unsigned char *want = out + i * ob + off;
            for (uint32_t b = 0; b < ti.nbytes; b++)
                if (got[b] != want[b]) {
                    printf("FAIL %s [%s] sample %zu output %d byte %u: %d, want %d\n", name, isa, i, k, b,
                           (int)(int8_t)got[b], (int)(int8_t)want[b]);
                    bad++;
                    break;
                }
            off += ti.nbytes;
        }
    }
    (void)out_sz;
    tn_session_free(s);
    return bad;
}

static void test_golden_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        CHECK(0, "golden directory %s cannot be opened", dir);
        return;
    }
    struct dirent *e;
    int cases = 0;
    while ((e = readdir(d))) {
        const size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".plan")) continue;
        char base[1024], path[1100];
        snprintf(base, sizeof base, "%s/%.*s", dir, (int)(len - 5), e->d_name);
        size_t plan_sz, in_sz, out_sz;
        snprintf(path, sizeof path, "%s.plan", base);
        unsigned char *plan = read_file(path, &plan_sz);
        snprintf(path, sizeof path, "%s.in", base);
        unsigned char *in = read_file(path, &in_sz);
        snprintf(path, sizeof path, "%s.out", base);
        unsigned char *out = read_file(path, &out_sz);
        cases++;
        tn_model *m = NULL;
        char err[512] = "";
        if (!plan || !in || !out) {
            CHECK(0, "%s: needs .plan, .in and .out", base);
        } else if (tn_model_load(plan, plan_sz, &m, err, sizeof err)) {
            CHECK(0, "%s: load: %s", base, err);
        } else {
            size_t ib = 0, ob = 0;
            tn_tensor_info ti;
            for (int k = 0; k < tn_model_num_inputs(m); k++) {
                tn_model_tensor_info(m, tn_model_input(m, k), &ti);
                ib += ti.nbytes;
            }
            for (int k = 0; k < tn_model_num_outputs(m); k++) {
                tn_model_tensor_info(m, tn_model_output(m, k), &ti);
                ob += ti.nbytes;
            }
            if (!ib || !ob || in_sz % ib || out_sz % ob || in_sz / ib != out_sz / ob || in_sz == 0) {
                CHECK(0, "%s: %zu input bytes and %zu output bytes are not whole samples of %zu and %zu bytes", base,
                      in_sz, out_sz, ib, ob);
            } else {
                int ran = 0;
                const char *names[N_VARIANTS + 1];
                names[0] = "reference";
                for (size_t v = 0; v < N_VARIANTS; v++) names[v + 1] = variants[v];
                for (size_t v = 0; v < N_VARIANTS + 1; v++) {
                    if (tn_force_isa(names[v]) != TN_ERR_OK) continue;
                    int bad = run_golden(base, m, in, in_sz, out, out_sz, ib, ob, names[v]);
                    CHECK(bad == 0, "%s [%s]: %zu samples, outputs differ from the oracle", base, names[v], in_sz / ib);
                    ran++;
                }
                printf("golden %s: %zu samples, %d variants\n", base, in_sz / ib, ran);
            }
            tn_model_free(m);
        }
        free(plan);
        free(in);
        free(out);
    }
    closedir(d);
    CHECK(cases > 0, "golden directory %s has no .plan files", dir);
}

int main(int argc, char **argv) {
    tn_force_isa("auto");
    printf("auto-selected variant: %s\n", tn_isa());
    for (size_t v = 0; v < N_VARIANTS; v++) {
        if (tn_force_isa(variants[v]) != TN_ERR_OK) {
            printf("variant %s: not in this build or not supported by this CPU\n", variants[v]);
            continue;
        }
        printf("variant %s: kernel tests\n", variants[v]);
        test_gemm_dot(variants[v]);
        test_dw_accum(variants[v]);
        test_requant_row(variants[v]);
    }
    for (int i = 1; i < argc; i++) test_golden_dir(argv[i]);
    tn_force_isa("auto");
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
