/* Private structures of the runtime and the contract every kernel follows.
 *
 * Each op family provides a tn_kernel: `prepare` runs once at load (validates the op's tensors and
 * parameters against the plan, reports the scratch bytes it needs, packs weights) and `eval` runs the op
 * on a session without allocating. Both return a TN_ERR_* code; prepare writes a message naming the op. */
#ifndef TN_INTERNAL_H
#define TN_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include "tunable.h"

typedef struct tn_tensor {
    int32_t dtype, ndim, storage, flags;
    int32_t dims[TN_PLAN_MAX_DIMS];
    int32_t zero_point;
    float scale;
    uint32_t offset, nbytes;
    const char *name;
} tn_tensor;

typedef struct tn_op {
    int32_t opcode, n_in, n_out;
    int32_t in[TN_PLAN_MAX_OP_INPUTS];
    int32_t out[TN_PLAN_MAX_OP_OUTPUTS];
    int32_t p[TN_PLAN_OP_PARAMS];
    const char *name;
    int32_t index;
    size_t scratch_bytes;  /* set by prepare */
    void *prepared;        /* kernel-private data made by prepare (owned by the model) */
    uint64_t analytic_macs; /* what the op computes with all knobs off */
} tn_op;

struct tn_model {
    uint8_t *plan;         /* aligned private copy */
    size_t plan_size;
    tn_tensor *tensors;
    int n_tensors;
    tn_op *ops;
    int n_ops;
    const uint8_t *consts;
    size_t consts_size;
    int n_inputs, n_outputs;
    int32_t *inputs, *outputs;
    size_t act_bytes;      /* arena bytes for activations */
    size_t scratch_bytes;  /* largest scratch of any op */
};

struct tn_session {
    const tn_model *m;
    uint8_t *arena;        /* aligned */
    uint8_t *scratch;      /* inside the arena, after the activations */
    void *own_alloc;       /* non-NULL when the session allocated its arena */
    tn_counters *counters;
    uint64_t *op_ns;       /* wall time of each op in the last run */
    tn_layer_knobs *knobs;
    int32_t **rq_mult, **rq_shift;  /* per op: multipliers rescaled by drowsy_rescale, or NULL */
    void **op_state;                /* per op: state a kernel derives from the knobs (one malloc block), or NULL */
    struct tn_pool *pool;           /* worker threads (threads.c), or NULL for one thread */
    uint64_t par_min_work;          /* ops below this much work run on one thread (tn_op_threads) */
    uint64_t seed;
    char err[256];
};

typedef struct tn_ctx {
    const tn_model *m;
    const tn_op *op;
    tn_session *s;
    void *scratch;
    tn_counters *ctr;
    const tn_layer_knobs *knobs;
    const int32_t *rq_mult, *rq_shift;  /* non-NULL: use instead of the plan's multipliers */
    const void *state;                  /* the op's per-session state, or NULL */
} tn_ctx;

typedef struct tn_kernel {
    const char *name;
    int (*prepare)(tn_model *m, tn_op *op, char *err, size_t errlen);
    int (*eval)(tn_ctx *c);
    /* optional: rebuild the op's per-session state (s->op_state[op]) after its knobs or the seed changed */
    int (*knobs_changed)(tn_session *s, int op);
} tn_kernel;

const tn_kernel *tn_kernel_for_op(int32_t opcode);

/* ---- worker threads (threads.c) ---- */
#define TN_MAX_THREADS 64
typedef void (*tn_task_fn)(void *arg, int task, int thread);
/* runs fn(arg, t, thread) for every task t < ntasks on the session's threads (the caller is thread 0) and
 * returns when all are done; thread < tn_session_threads(s) */
void tn_parallel(tn_session *s, int ntasks, tn_task_fn fn, void *arg);
/* the scratch block of a thread (thread 0: the session's), op->scratch_bytes usable by every op */
void *tn_thread_scratch(const tn_session *s, int thread);
void tn_session_free_threads(tn_session *s);
/* threads for an op of `work` multiply-accumulate equivalents: small ops stay on the caller's thread (waking
 * workers costs more than they save); TUNABLE_PARALLEL_MIN_WORK, read when threads are set, overrides it */
#define TN_PARALLEL_MIN_WORK 300000u
int tn_session_threads(const tn_session *s);
static inline int tn_op_threads(const tn_ctx *c, uint64_t work) {
    return work >= c->s->par_min_work ? tn_session_threads(c->s) : 1;
}
int tn_session_knobs_changed(tn_session *s, int op);

/* Defined in the op-family files. */
extern const tn_kernel tn_kernel_conv2d, tn_kernel_depthwise, tn_kernel_fully_connected;
extern const tn_kernel tn_kernel_add, tn_kernel_mul;
extern const tn_kernel tn_kernel_avg_pool, tn_kernel_max_pool, tn_kernel_mean;
extern const tn_kernel tn_kernel_pad, tn_kernel_copy, tn_kernel_concat;
extern const tn_kernel tn_kernel_softmax, tn_kernel_logistic;
extern const tn_kernel tn_kernel_relu, tn_kernel_clamp, tn_kernel_hard_swish;
extern const tn_kernel tn_kernel_quantize, tn_kernel_dequantize;

/* ---- helpers shared by kernels (plan.c) ---- */
int tn_fail(char *err, size_t errlen, int code, const char *fmt, ...);
int tn_op_fail(char *err, size_t errlen, const tn_op *op, int code, const char *fmt, ...);
int64_t tn_tensor_elems(const tn_tensor *t);
int tn_dtype_size(int32_t dtype);
/* Checks that input/output `slot` of op names a tensor of the given dtype (0 = any) and rank (0 = any).
 * want_out selects the op's outputs. */
int tn_check_slot(const tn_model *m, const tn_op *op, int want_out, int slot, int32_t dtype, int32_t ndim,
                  char *err, size_t errlen);
int tn_check_same_shape(const tn_model *m, const tn_op *op, int32_t a, int32_t b, char *err, size_t errlen);
int tn_check_range(const tn_op *op, const char *what, int64_t v, int64_t lo, int64_t hi, char *err,
                   size_t errlen);

static inline const tn_tensor *tn_in_t(const tn_ctx *c, int slot) { return &c->m->tensors[c->op->in[slot]]; }
static inline const tn_tensor *tn_out_t(const tn_ctx *c, int slot) { return &c->m->tensors[c->op->out[slot]]; }
static inline void *tn_tdata(const tn_ctx *c, int32_t t) {
    const tn_tensor *tt = &c->m->tensors[t];
    return tt->storage == TN_STORAGE_CONST ? (void *)(c->m->consts + tt->offset) : (void *)(c->s->arena + tt->offset);
}
static inline void *tn_in(const tn_ctx *c, int slot) { return tn_tdata(c, c->op->in[slot]); }
static inline void *tn_out(const tn_ctx *c, int slot) { return tn_tdata(c, c->op->out[slot]); }
static inline const void *tn_const_in(const tn_model *m, const tn_op *op, int slot) {
    return m->consts + m->tensors[op->in[slot]].offset;
}

#define TN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TN_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
