/* Sessions and the interpreter loop. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "arch.h"
#include "internal.h"
#include "conv_common.h"


int tn_session_create(const tn_model *m, void *arena, size_t arena_bytes, tn_session **out, char *err,
                      size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!m || !out) return tn_fail(err, errlen, TN_ERR_BAD_ARGUMENT, "model or out is NULL");
    tn_arch_init();
    *out = NULL;
    size_t need = tn_model_arena_bytes(m);
    if (arena && arena_bytes < need)
        return tn_fail(err, errlen, TN_ERR_ARENA_TOO_SMALL, "arena of %zu bytes given, the model needs %zu", arena_bytes, need);
    tn_session *s = (tn_session *)calloc(1, sizeof *s);
    if (!s) return tn_fail(err, errlen, TN_ERR_NO_MEMORY, "out of memory");
    s->m = m;
    s->par_min_work = TN_PARALLEL_MIN_WORK;
    s->counters = (tn_counters *)calloc((size_t)m->n_ops, sizeof(tn_counters));
    s->op_ns = (uint64_t *)calloc((size_t)m->n_ops, sizeof(uint64_t));
    s->knobs = (tn_layer_knobs *)calloc((size_t)m->n_ops, sizeof(tn_layer_knobs));
    s->rq_mult = (int32_t **)calloc((size_t)m->n_ops, sizeof(int32_t *));
    s->rq_shift = (int32_t **)calloc((size_t)m->n_ops, sizeof(int32_t *));
    s->op_state = (void **)calloc((size_t)m->n_ops, sizeof(void *));
    if (!arena) {
        s->own_alloc = calloc(1, need);
        arena = s->own_alloc;
    }
    if (!s->counters || !s->op_ns || !s->knobs || !s->rq_mult || !s->rq_shift || !s->op_state || !arena) {
        tn_session_free(s);
        return tn_fail(err, errlen, TN_ERR_NO_MEMORY, "out of memory for a %zu-byte arena", need);
    }
    uintptr_t a = (uintptr_t)arena;
    a = (a + TN_PLAN_ARENA_ALIGN - 1) & ~(uintptr_t)(TN_PLAN_ARENA_ALIGN - 1);
    s->arena = (uint8_t *)a;
    s->scratch = s->arena + m->act_bytes;
    *out = s;
    return TN_ERR_OK;
}

void tn_session_free(tn_session *s) {
    if (!s) return;
    tn_session_free_threads(s);
    free(s->own_alloc);
    free(s->counters);
    free(s->op_ns);
    free(s->knobs);
    if (s->rq_mult)
        for (int i = 0; i < s->m->n_ops; i++) free(s->rq_mult[i]);  /* rq_shift shares the allocation */
    free(s->rq_mult);
    free(s->rq_shift);
    if (s->op_state)
        for (int i = 0; i < s->m->n_ops; i++) {
            if (s->m->ops[i].opcode == TN_OP_CONV_2D) tn_conv_state_free(s->op_state[i]);
            else free(s->op_state[i]);
        }
    free(s->op_state);
    free(s);
}

void *tn_session_tensor(tn_session *s, int i) {
    if (!s || i < 0 || i >= s->m->n_tensors) return NULL;
    const tn_tensor *t = &s->m->tensors[i];
    return t->storage == TN_STORAGE_CONST ? (void *)(s->m->consts + t->offset) : (void *)(s->arena + t->offset);
}

const char *tn_session_error(const tn_session *s) { return s ? s->err : "session is NULL"; }
const tn_counters *tn_session_counters(const tn_session *s) { return s ? s->counters : NULL; }
const uint64_t *tn_session_op_ns(const tn_session *s) { return s ? s->op_ns : NULL; }

int tn_session_totals(const tn_session *s, tn_counters *out) {
    if (!s || !out) return TN_ERR_BAD_ARGUMENT;
    memset(out, 0, sizeof *out);
    for (int i = 0; i < s->m->n_ops; i++) {
#define TN_X_ADD(name) out->name += s->counters[i].name;
        TN_COUNTER_FIELDS(TN_X_ADD)
#undef TN_X_ADD
    }
    return TN_ERR_OK;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int tn_session_set_seed(tn_session *s, uint64_t seed) {
    if (!s) return TN_ERR_BAD_ARGUMENT;
    if (s->seed == seed) return TN_ERR_OK;
    s->seed = seed;
    return tn_session_knobs_changed(s, -1);
}

/* lets kernels rebuild what they derive from knobs and seed (op < 0: every op, in order). One op's knobs
 * also concern every op downstream of it (a conv skips the input channels its producer drops, through ADDs
 * too): those are rebuilt as well. */
int tn_session_knobs_changed(tn_session *s, int op) {
    const tn_model *m = s->m;
    uint8_t *affected = op < 0 ? NULL : (uint8_t *)calloc((size_t)m->n_tensors, 1);
    if (op >= 0 && !affected) return TN_ERR_NO_MEMORY;
    int rc = TN_ERR_OK;
    for (int i = op < 0 ? 0 : op; i < m->n_ops && !rc; i++) {
        const tn_op *o = &m->ops[i];
        int reads = i == op || op < 0;
        for (int a = 0; a < o->n_in && !reads; a++) reads = o->in[a] >= 0 && affected[o->in[a]];
        if (!reads) continue;
        if (affected)
            for (int b = 0; b < o->n_out; b++) affected[o->out[b]] = 1;
        const tn_kernel *k = tn_kernel_for_op(o->opcode);
        if (k->knobs_changed) rc = k->knobs_changed(s, i);
    }
    free(affected);
    return rc;
}

int tn_session_run(tn_session *s) {
    if (!s) return TN_ERR_BAD_ARGUMENT;
    const tn_model *m = s->m;
    s->err[0] = 0;
    tn_ctx c;
    c.m = m;
    c.s = s;
    c.scratch = s->scratch;
    for (int i = 0; i < m->n_ops; i++) {
        const tn_op *op = &m->ops[i];
        c.op = op;
        c.ctr = &s->counters[i];
        c.knobs = &s->knobs[i];
        c.rq_mult = s->rq_mult[i];
        c.rq_shift = s->rq_shift[i];
        c.state = s->op_state[i];
        memset(c.ctr, 0, sizeof *c.ctr);
        const uint64_t t0 = now_ns();
        int rc = tn_kernel_for_op(op->opcode)->eval(&c);
        s->op_ns[i] = now_ns() - t0;
        if (rc) {
            if (!s->err[0]) tn_op_fail(s->err, sizeof s->err, op, rc, "evaluation failed (%s)", tn_error_name(rc));
            return rc;
        }
    }
    return TN_ERR_OK;
}
