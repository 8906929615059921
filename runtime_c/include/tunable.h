/* tunable: the public C API of the int8 runtime. Everything else in runtime_c is private.
 *
 * Memory: the model keeps a private, aligned copy of the plan (made once at load); a session runs in an
 * arena the caller may own (tn_model_arena_bytes tells how much). Nothing is allocated during tn_run.
 * Errors: every function returning int returns TN_ERR_OK (0) or a TN_ERR_* code; the message says what is
 * wrong and where (section, tensor, op index and name). */
#ifndef TUNABLE_H
#define TUNABLE_H

#include <stddef.h>
#include <stdint.h>
#include "tunable_format.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tn_model tn_model;
typedef struct tn_session tn_session;

/* Per-layer counters of the last run (see tunable/planspec.py COUNTERS). */
typedef struct tn_counters {
#define TN_X_FIELD(name) uint64_t name;
    TN_COUNTER_FIELDS(TN_X_FIELD)
#undef TN_X_FIELD
} tn_counters;

typedef struct tn_tensor_info {
    int32_t dtype;
    int32_t ndim;
    int32_t dims[TN_PLAN_MAX_DIMS];
    int32_t zero_point;
    float scale;
    int32_t storage;
    uint32_t nbytes;
    const char *name;
} tn_tensor_info;

typedef struct tn_op_info {
    int32_t opcode;
    int32_t n_in, n_out;
    int32_t in[TN_PLAN_MAX_OP_INPUTS];
    int32_t out[TN_PLAN_MAX_OP_OUTPUTS];
    const char *name;
    uint64_t analytic_macs;  /* MACs with all knobs off */
    int32_t params[TN_PLAN_OP_PARAMS];
} tn_op_info;

/* Knob state of one layer (an op). All zero means off: the output is bit-identical to the plain engine. */
typedef struct tn_layer_knobs {
    uint32_t drowsy_threshold;   /* random selection: drop a unit when its hash < threshold (rate * 2^32) */
    int32_t drowsy_drop_count;   /* importance selection: drop units whose rank < count */
    int32_t drowsy_granularity;  /* 0 element, 1 row, 2 channel */
    int32_t drowsy_select;       /* 0 random, 1 importance (needs the plan's rank tensors) */
    int32_t drowsy_rescale;      /* 1: multiply kept outputs by 1/(1-p), folded into the multiplier */
    int32_t aip_cols;            /* FC: columns in the preview; 0 = off */
    int32_t aip_topm;            /* classifier: rows completed exactly */
    int32_t aip_mode;            /* 0 off, 1 relu-skip, 2 top-m, 3 estimate-all */
    int32_t aip_margin;          /* relu-skip rows estimated this many output steps at or below the clamp */
    int32_t conv_preview_cin;    /* conv preview over the first N input channels; 0 = off */
    int32_t sign_exact;          /* conv: sign-ordered early termination (exact) */
    int32_t lut_enable;          /* use the plan's look-up tables for this layer */
    int32_t prune_threshold;     /* |w| <= threshold read as zero; 0 = off (threshold 0 already is zero) */
    int32_t weight_lsb_drop;     /* low bits of every weight read as zero */
    int32_t reserved[2];
} tn_layer_knobs;

int tn_model_load(const void *plan, size_t size, tn_model **out, char *errbuf, size_t errlen);
void tn_model_free(tn_model *m);
int tn_model_num_tensors(const tn_model *m);
int tn_model_num_ops(const tn_model *m);
int tn_model_num_inputs(const tn_model *m);
int tn_model_num_outputs(const tn_model *m);
int tn_model_input(const tn_model *m, int i);   /* tensor index, -1 if out of range */
int tn_model_output(const tn_model *m, int i);
int tn_model_tensor_info(const tn_model *m, int tensor, tn_tensor_info *info);
int tn_model_op_info(const tn_model *m, int op, tn_op_info *info);
size_t tn_model_arena_bytes(const tn_model *m);  /* activations + scratch, including alignment slack */

/* arena may be NULL: the session then allocates its own (once, here). */
int tn_session_create(const tn_model *m, void *arena, size_t arena_bytes, tn_session **out,
                      char *errbuf, size_t errlen);
void tn_session_free(tn_session *s);
void *tn_session_tensor(tn_session *s, int tensor);  /* arena or constant data; NULL if out of range */
int tn_session_run(tn_session *s);
const char *tn_session_error(const tn_session *s);
const tn_counters *tn_session_counters(const tn_session *s); /* one per op */
int tn_session_totals(const tn_session *s, tn_counters *out); /* summed over the ops */
const uint64_t *tn_session_op_ns(const tn_session *s);      /* wall time of each op in the last run, ns */
/* worker threads splitting the work of the large ops (default 1: the caller's thread only); outputs do not
 * depend on the count. Starts or stops threads and allocates their scratch here, never during a run. */
int tn_session_set_threads(tn_session *s, int threads);
int tn_session_threads(const tn_session *s);
int tn_session_set_knobs(tn_session *s, int op, const tn_layer_knobs *k);
/* all ops at once (k holds tn_model_num_ops entries): validated first, applied only if all are valid */
int tn_session_set_all_knobs(tn_session *s, const tn_layer_knobs *k);
int tn_session_set_seed(tn_session *s, uint64_t seed);

/* Kernel variant in use ("generic", "avx2", "avx512vnni", "neon", "neon-dotprod"). The choice is made once,
 * from the CPU and the TUNABLE_ISA environment variable; tn_force_isa overrides it (for tests). */
const char *tn_isa(void);
int tn_force_isa(const char *name);
const char *tn_error_name(int code);

#ifdef __cplusplus
}
#endif
#endif
