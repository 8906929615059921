/* tunable-run: runs a compiled plan on raw input bytes, with no Python on the board.
 *
 *   tunable-run MODEL.plan INPUT.bin [options]
 *
 * INPUT.bin holds the model's inputs as raw bytes (the input tensors in order, each in its own dtype, e.g.
 * int8 NHWC), one sample or several concatenated; every sample is run and its outputs printed.
 * Options:
 *   --knob drowsy=P              drop rate P in [0, 1) for every CONV_2D and DEPTHWISE_CONV_2D layer
 *                                (random selection: threshold round(P * 2^32) on the unit hash, knobs.md)
 *   --knob drowsy.LAYER=P        the same for one layer by name (conv_3, dw_2, ...; overrides drowsy=)
 *   --knob drowsy_granularity=G  element | row | channel (default element)
 *   --knob drowsy_rescale=1      multiply kept outputs by 1/(1-P)
 *   --knob seed=N, --seed N      seed of the drowsy hash (default 0)
 * The names are those of tunable.knobs (`Knobs.parse`), so `tunable compile --knobs "..."` prints the same
 * settings as tunable-run arguments; knobs that need Python-side artefacts (importance, aip, lut) are not
 * parsed here.
 *   --repeat N                   run each sample N times; latency is reported as median and minimum
 *   --isa NAME                   force a kernel variant (reference, generic, neon, neon-dotprod, ...)
 *   --output FILE                write the outputs of every sample as raw bytes (for comparisons)
 *   --layers                     print the counters of every layer, not only the totals
 *   --quiet                      print no output values
 * Exit status: 0 ok, 1 bad arguments or files, 2 load or run error. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tunable.h"

static const char *const counter_names[] = {
#define TN_X_NAME(name) #name,
    TN_COUNTER_FIELDS(TN_X_NAME)
#undef TN_X_NAME
};
#define N_COUNTERS (sizeof counter_names / sizeof counter_names[0])

static void usage(void) {
    fprintf(stderr,
            "usage: tunable-run MODEL.plan INPUT.bin [--knob drowsy=P] [--knob drowsy.LAYER=P]\n"
            "                   [--knob drowsy_granularity=element|row|channel] [--knob drowsy_rescale=0|1]\n"
            "                   [--knob seed=N] [--seed N]\n"
            "                   [--repeat N] [--isa NAME] [--output FILE] [--layers] [--quiet]\n");
}

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "tunable-run: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                fprintf(stderr, "tunable-run: %s: out of memory\n", path);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "tunable-run: %s: read error\n", path);
        free(buf);
        return NULL;
    }
    *size = n;
    return buf;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int parse_rate(const char *s, double *p) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0.0 && v < 1.0)) return -1;
    *p = v;
    return 0;
}

/* as tunable/knob_resolve.py: min(round(p * 2^32), 2^32 - 1), ties to even */
static uint32_t rate_threshold(double p) {
    double t = nearbyint(p * 4294967296.0);
    return t >= 4294967295.0 ? 4294967295u : (uint32_t)t;
}

/* prints one tensor's values: all of them up to 64, else the first 16 and the position of the largest */
static void print_tensor(const char *label, const tn_tensor_info *ti, const void *data) {
    int64_t n = 1;
    for (int d = 0; d < ti->ndim; d++) n *= ti->dims[d];
    printf("%s '%s' [", label, ti->name);
    for (int d = 0; d < ti->ndim; d++) printf(d ? ",%d" : "%d", ti->dims[d]);
    printf("]:");
    const int64_t shown = n <= 64 ? n : 16;
    int64_t best = 0;
    double best_v = -1e300;
    for (int64_t i = 0; i < n; i++) {
        double v;
        switch (ti->dtype) {
        case TN_DTYPE_INT8: v = ((const int8_t *)data)[i]; break;
        case TN_DTYPE_UINT8: v = ((const uint8_t *)data)[i]; break;
        case TN_DTYPE_INT16: v = ((const int16_t *)data)[i]; break;
        case TN_DTYPE_INT32: v = ((const int32_t *)data)[i]; break;
        default: v = ((const float *)data)[i];
        }
        if (v > best_v) { best_v = v; best = i; }
        if (i < shown) {
            if (ti->dtype == TN_DTYPE_FLOAT32) printf(" %g", v);
            else printf(" %d", (int)v);
        }
    }
    if (shown < n) printf(" ... (%lld values)", (long long)n);
    printf("  argmax %lld\n", (long long)best);
}

typedef struct { const char *layer; double p; } layer_rate;

int main(int argc, char **argv) {
    const char *plan_path = NULL, *input_path = NULL, *output_path = NULL, *isa = NULL;
    double drowsy = 0.0;
    int have_drowsy = 0, granularity = 0, rescale = 0, repeat = 1, per_layer = 0, quiet = 0;
    uint64_t seed = 0;
    layer_rate rates[256];
    int n_rates = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const int more = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (!strcmp(a, "--knob") && more) {
            const char *kv = argv[++i];
            const char *eq = strchr(kv, '=');
            if (!eq) {
                fprintf(stderr, "tunable-run: --knob %s: expected NAME=VALUE\n", kv);
                return 1;
            }
            const size_t klen = (size_t)(eq - kv);
            const char *val = eq + 1;
            if (klen == 6 && !strncmp(kv, "drowsy", 6)) {
                if (parse_rate(val, &drowsy)) {
                    fprintf(stderr, "tunable-run: --knob drowsy=%s: a rate in [0, 1)\n", val);
                    return 1;
                }
                have_drowsy = 1;
            } else if (klen > 7 && !strncmp(kv, "drowsy.", 7)) {
                if (n_rates == (int)(sizeof rates / sizeof rates[0]) || parse_rate(val, &rates[n_rates].p)) {
                    fprintf(stderr, "tunable-run: --knob %s: a rate in [0, 1)\n", kv);
                    return 1;
                }
                char *name = malloc(klen - 7 + 1);
                if (!name) return 1;
                memcpy(name, kv + 7, klen - 7);
                name[klen - 7] = 0;
                rates[n_rates++].layer = name;
            } else if ((klen == 11 && !strncmp(kv, "granularity", 11)) ||
                       (klen == 18 && !strncmp(kv, "drowsy_granularity", 18))) {
                if (!strcmp(val, "element") || !strcmp(val, "0")) granularity = 0;
                else if (!strcmp(val, "row") || !strcmp(val, "1")) granularity = 1;
                else if (!strcmp(val, "channel") || !strcmp(val, "2")) granularity = 2;
                else {
                    fprintf(stderr, "tunable-run: --knob %s: element, row or channel\n", kv);
                    return 1;
                }
            } else if ((klen == 7 && !strncmp(kv, "rescale", 7)) || (klen == 14 && !strncmp(kv, "drowsy_rescale", 14))) {
                rescale = !strcmp(val, "1") || !strcmp(val, "true");
            } else if (klen == 4 && !strncmp(kv, "seed", 4)) {
                seed = strtoull(val, NULL, 0);
            } else {
                fprintf(stderr, "tunable-run: --knob %.*s: unknown knob (drowsy, drowsy.LAYER, drowsy_granularity, drowsy_rescale, seed)\n",
                        (int)klen, kv);
                return 1;
            }
        } else if (!strcmp(a, "--seed") && more) {
            seed = strtoull(argv[++i], NULL, 0);
        } else if (!strcmp(a, "--repeat") && more) {
            repeat = atoi(argv[++i]);
            if (repeat < 1) {
                fprintf(stderr, "tunable-run: --repeat %s: at least 1\n", argv[i]);
                return 1;
            }
        } else if (!strcmp(a, "--isa") && more) {
            isa = argv[++i];
        } else if (!strcmp(a, "--output") && more) {
            output_path = argv[++i];
        } else if (!strcmp(a, "--layers")) {
            per_layer = 1;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "tunable-run: unknown option %s\n", a);
            usage();
            return 1;
        } else if (!plan_path) {
            plan_path = a;
        } else if (!input_path) {
            input_path = a;
        } else {
            usage();
            return 1;
        }
    }
    if (!plan_path || !input_path) {
        usage();
        return 1;
    }
    if (isa && tn_force_isa(isa) != TN_ERR_OK) {
        fprintf(stderr, "tunable-run: --isa %s: not in this build or not supported by this CPU\n", isa);
        return 1;
    }

    size_t plan_size, in_size;
    unsigned char *plan = read_file(plan_path, &plan_size);
    if (!plan) return 1;
    unsigned char *input = read_file(input_path, &in_size);
    if (!input) return 1;
    char err[512];
    tn_model *m = NULL;
    double t0 = now_s();
    if (tn_model_load(plan, plan_size, &m, err, sizeof err)) {
        fprintf(stderr, "tunable-run: %s: %s\n", plan_path, err);
        return 2;
    }
    const double load_s = now_s() - t0;
    free(plan);
    tn_session *s = NULL;
    if (tn_session_create(m, NULL, 0, &s, err, sizeof err)) {
        fprintf(stderr, "tunable-run: %s: %s\n", plan_path, err);
        return 2;
    }
    const int n_ops = tn_model_num_ops(m);
    /* knobs: one setting per op; ops that drowsy does not apply to keep theirs off */
    int n_drowsy = 0;
    for (int r = 0; r < n_rates; r++) {
        int found = 0;
        tn_op_info oi;
        for (int op = 0; op < n_ops; op++) {
            tn_model_op_info(m, op, &oi);
            if (!strcmp(oi.name, rates[r].layer)) found = 1;
        }
        if (!found) {
            fprintf(stderr, "tunable-run: --knob drowsy.%s: no layer of that name\n", rates[r].layer);
            return 1;
        }
    }
    for (int op = 0; op < n_ops; op++) {
        tn_op_info oi;
        tn_model_op_info(m, op, &oi);
        if (oi.opcode != TN_OP_CONV_2D && oi.opcode != TN_OP_DEPTHWISE_CONV_2D) continue;
        double p = have_drowsy ? drowsy : 0.0;
        for (int r = 0; r < n_rates; r++)
            if (!strcmp(oi.name, rates[r].layer)) p = rates[r].p;
        if (p <= 0.0) continue;
        tn_layer_knobs k;
        memset(&k, 0, sizeof k);
        k.drowsy_threshold = rate_threshold(p);
        k.drowsy_granularity = granularity;
        k.drowsy_rescale = rescale;
        int rc = tn_session_set_knobs(s, op, &k);
        if (rc) {
            fprintf(stderr, "tunable-run: knobs for %s: %s\n", oi.name, tn_session_error(s));
            return 2;
        }
        n_drowsy++;
    }
    for (int r = 0; r < n_rates; r++) {
        int applied = 0;
        for (int op = 0; op < n_ops; op++) {
            tn_op_info oi;
            tn_model_op_info(m, op, &oi);
            if (!strcmp(oi.name, rates[r].layer))
                applied = oi.opcode == TN_OP_CONV_2D || oi.opcode == TN_OP_DEPTHWISE_CONV_2D;
        }
        if (!applied) {
            fprintf(stderr, "tunable-run: --knob drowsy.%s: drowsy applies to conv and depthwise layers only\n",
                    rates[r].layer);
            return 1;
        }
    }
    tn_session_set_seed(s, seed);

    size_t in_bytes = 0, out_bytes = 0;
    tn_tensor_info ti;
    for (int k = 0; k < tn_model_num_inputs(m); k++) {
        tn_model_tensor_info(m, tn_model_input(m, k), &ti);
        in_bytes += ti.nbytes;
    }
    for (int k = 0; k < tn_model_num_outputs(m); k++) {
        tn_model_tensor_info(m, tn_model_output(m, k), &ti);
        out_bytes += ti.nbytes;
    }
    if (in_bytes == 0 || in_size == 0 || in_size % in_bytes) {
        fprintf(stderr, "tunable-run: %s has %zu bytes; the model takes %zu bytes per sample (", input_path, in_size,
                in_bytes);
        for (int k = 0; k < tn_model_num_inputs(m); k++) {
            tn_model_tensor_info(m, tn_model_input(m, k), &ti);
            fprintf(stderr, "%s'%s' %u bytes", k ? ", " : "", ti.name, ti.nbytes);
        }
        fprintf(stderr, ")\n");
        return 1;
    }
    const size_t samples = in_size / in_bytes;
    FILE *out = NULL;
    if (output_path && !(out = fopen(output_path, "wb"))) {
        fprintf(stderr, "tunable-run: %s: %s\n", output_path, strerror(errno));
        return 1;
    }
    printf("model %s: %d ops, arena %zu bytes, isa %s, load %.3f ms", plan_path, n_ops, tn_model_arena_bytes(m),
           tn_isa(), load_s * 1e3);
    if (n_drowsy) printf(", drowsy on %d layers (seed %llu)", n_drowsy, (unsigned long long)seed);
    printf("\n");
    double *times = malloc(sizeof(double) * (size_t)repeat);
    double all_min = 1e300, median_sum = 0.0;
    if (!times) return 1;
    for (size_t smp = 0; smp < samples; smp++) {
        size_t off = smp * in_bytes;
        for (int k = 0; k < tn_model_num_inputs(m); k++) {
            tn_model_tensor_info(m, tn_model_input(m, k), &ti);
            memcpy(tn_session_tensor(s, tn_model_input(m, k)), input + off, ti.nbytes);
            off += ti.nbytes;
        }
        for (int r = 0; r < repeat; r++) {
            double t = now_s();
            if (tn_session_run(s)) {
                fprintf(stderr, "tunable-run: sample %zu: %s\n", smp, tn_session_error(s));
                return 2;
            }
            times[r] = now_s() - t;
        }
        qsort(times, (size_t)repeat, sizeof(double), cmp_double);
        const double med = times[repeat / 2];
        median_sum += med;
        if (times[0] < all_min) all_min = times[0];
        for (int k = 0; k < tn_model_num_outputs(m); k++) {
            tn_model_tensor_info(m, tn_model_output(m, k), &ti);
            const void *y = tn_session_tensor(s, tn_model_output(m, k));
            if (out && fwrite(y, 1, ti.nbytes, out) != ti.nbytes) {
                fprintf(stderr, "tunable-run: %s: write error\n", output_path);
                return 1;
            }
            if (!quiet) {
                char label[64];
                snprintf(label, sizeof label, "sample %zu output %d", smp, k);
                print_tensor(label, &ti, y);
            }
        }
    }
    if (out && fclose(out)) {
        fprintf(stderr, "tunable-run: %s: write error\n", output_path);
        return 1;
    }
    printf("latency: median %.1f us (mean of per-sample medians over %zu samples, %d runs each), min %.1f us\n",
           median_sum / (double)samples * 1e6, samples, repeat, all_min * 1e6);
    /* counters of the last run */
    const tn_counters *c = tn_session_counters(s);
    uint64_t tot[N_COUNTERS];
    memset(tot, 0, sizeof tot);
    for (int op = 0; op < n_ops; op++) {
        const uint64_t *v = (const uint64_t *)&c[op];
        for (size_t j = 0; j < N_COUNTERS; j++) tot[j] += v[j];
        if (per_layer) {
            tn_op_info oi;
            tn_model_op_info(m, op, &oi);
            printf("layer %-14s", oi.name);
            for (size_t j = 0; j < N_COUNTERS; j++) printf(" %s=%llu", counter_names[j], (unsigned long long)v[j]);
            printf("\n");
        }
    }
    printf("counters:");
    for (size_t j = 0; j < N_COUNTERS; j++) printf(" %s=%llu", counter_names[j], (unsigned long long)tot[j]);
    printf("\n");
    free(times);
    free(input);
    tn_session_free(s);
    tn_model_free(m);
    return 0;
}
