/* Plan loader: validates every byte it reads before anything uses it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "arch.h"
#include "internal.h"
#include "approx.h"

int tn_fail(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

int tn_op_fail(char *err, size_t errlen, const tn_op *op, int code, const char *fmt, ...) {
    if (err && errlen) {
        int n = snprintf(err, errlen, "op %d (%s): ", (int)op->index, op->name ? op->name : "?");
        if (n < 0) n = 0;
        if ((size_t)n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

int tn_dtype_size(int32_t dtype) {
    switch (dtype) {
    case TN_DTYPE_INT8: case TN_DTYPE_UINT8: return 1;
    case TN_DTYPE_INT16: return 2;
    case TN_DTYPE_INT32: case TN_DTYPE_FLOAT32: return 4;
    default: return 0;
    }
}

int64_t tn_tensor_elems(const tn_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->dims[i];
    return n;
}

static const char *dtype_name(int32_t d) {
    switch (d) {
    case TN_DTYPE_INT8: return "int8";
    case TN_DTYPE_UINT8: return "uint8";
    case TN_DTYPE_INT16: return "int16";
    case TN_DTYPE_INT32: return "int32";
    case TN_DTYPE_FLOAT32: return "float32";
    default: return "unknown";
    }
}

int tn_check_slot(const tn_model *m, const tn_op *op, int want_out, int slot, int32_t dtype, int32_t ndim,
                  char *err, size_t errlen) {
    int32_t idx = want_out ? (slot < op->n_out ? op->out[slot] : -1) : (slot < op->n_in ? op->in[slot] : -1);
    const char *kind = want_out ? "output" : "input";
    if (idx < 0 || idx >= m->n_tensors)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "%s %d is missing", kind, slot);
    const tn_tensor *t = &m->tensors[idx];
    if (dtype && t->dtype != dtype)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "%s %d (tensor %d '%s') is %s, expected %s", kind, slot,
                          idx, t->name, dtype_name(t->dtype), dtype_name(dtype));
    if (ndim && t->ndim != ndim)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "%s %d (tensor %d '%s') has rank %d, expected %d", kind,
                          slot, idx, t->name, t->ndim, ndim);
    if (want_out && t->storage != TN_STORAGE_ARENA)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "output tensor %d '%s' is constant", idx, t->name);
    return TN_ERR_OK;
}

int tn_check_same_shape(const tn_model *m, const tn_op *op, int32_t a, int32_t b, char *err, size_t errlen) {
    const tn_tensor *ta = &m->tensors[a], *tb = &m->tensors[b];
    if (tn_tensor_elems(ta) != tn_tensor_elems(tb))
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "tensors %d '%s' and %d '%s' differ in size", a, ta->name, b,
                          tb->name);
    return TN_ERR_OK;
}

int tn_check_range(const tn_op *op, const char *what, int64_t v, int64_t lo, int64_t hi, char *err,
                   size_t errlen) {
    if (v < lo || v > hi)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "%s = %lld is outside [%lld, %lld]", what, (long long)v,
                          (long long)lo, (long long)hi);
    return TN_ERR_OK;
}

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static uint32_t crc32_ieee(const uint8_t *p, size_t n) {
    static uint32_t table[256];
    static int ready = 0;
    if (!ready) {  /* idempotent: concurrent first calls write the same values */
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static const tn_kernel *kernel_for(int32_t opcode) {
    switch (opcode) {
    case TN_OP_CONV_2D: return &tn_kernel_conv2d;
    case TN_OP_DEPTHWISE_CONV_2D: return &tn_kernel_depthwise;
    case TN_OP_FULLY_CONNECTED: return &tn_kernel_fully_connected;
    case TN_OP_ADD: return &tn_kernel_add;
    case TN_OP_MUL: return &tn_kernel_mul;
    case TN_OP_AVERAGE_POOL_2D: return &tn_kernel_avg_pool;
    case TN_OP_MAX_POOL_2D: return &tn_kernel_max_pool;
    case TN_OP_MEAN: return &tn_kernel_mean;
    case TN_OP_PAD: return &tn_kernel_pad;
    case TN_OP_COPY: return &tn_kernel_copy;
    case TN_OP_CONCATENATION: return &tn_kernel_concat;
    case TN_OP_SOFTMAX: return &tn_kernel_softmax;
    case TN_OP_LOGISTIC: return &tn_kernel_logistic;
    case TN_OP_RELU: return &tn_kernel_relu;
    case TN_OP_CLAMP: return &tn_kernel_clamp;
    case TN_OP_HARD_SWISH: return &tn_kernel_hard_swish;
    case TN_OP_QUANTIZE: return &tn_kernel_quantize;
    case TN_OP_DEQUANTIZE: return &tn_kernel_dequantize;
    default: return NULL;
    }
}

const tn_kernel *tn_kernel_for_op(int32_t opcode) { return kernel_for(opcode); }

typedef struct { uint32_t offset, size, count; int present; } section;

static int read_string(const section *st, const uint8_t *base, uint32_t off, const char **out, char *err,
                       size_t errlen, const char *what, int index) {
    if (!st->present) return tn_fail(err, errlen, TN_ERR_BAD_SECTION, "STRINGS section missing");
    if (off >= st->size)
        return tn_fail(err, errlen, TN_ERR_BAD_SECTION, "%s %d: name offset %u outside STRINGS (%u bytes)", what,
                       index, off, st->size);
    const char *s = (const char *)(base + st->offset + off);
    if (!memchr(s, 0, st->size - off))
        return tn_fail(err, errlen, TN_ERR_BAD_SECTION, "%s %d: name is not NUL-terminated", what, index);
    *out = s;
    return TN_ERR_OK;
}

static void model_release(tn_model *m) {
    if (!m) return;
    if (m->ops)
        for (int i = 0; i < m->n_ops; i++) free(m->ops[i].prepared);
    free(m->ops);
    free(m->tensors);
    free(m->inputs);
    free(m->plan);
    free(m);
}

void tn_model_free(tn_model *m) { model_release(m); }

static size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

int tn_model_load(const void *data, size_t size, tn_model **out, char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (!out) return tn_fail(err, errlen, TN_ERR_BAD_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!data) return tn_fail(err, errlen, TN_ERR_BAD_ARGUMENT, "plan data is NULL");
    tn_arch_init();
    if (size < TN_PLAN_HEADER_BYTES)
        return tn_fail(err, errlen, TN_ERR_TRUNCATED, "plan is %zu bytes, shorter than its %d-byte header", size,
                       TN_PLAN_HEADER_BYTES);
    const uint8_t *in = (const uint8_t *)data;
    if (memcmp(in, TN_PLAN_MAGIC, 4) != 0)
        return tn_fail(err, errlen, TN_ERR_BAD_MAGIC, "not a tunable plan (magic is not '%s')", TN_PLAN_MAGIC);
    uint32_t version = rd32(in + 4), total = rd32(in + 8), crc = rd32(in + 12), nsec = rd32(in + 16);
    if (version != TN_PLAN_VERSION)
        return tn_fail(err, errlen, TN_ERR_BAD_VERSION, "plan format version %u, this runtime reads version %d",
                       version, TN_PLAN_VERSION);
    if (total != size)
        return tn_fail(err, errlen, TN_ERR_TRUNCATED, "plan header says %u bytes, %zu given", total, size);
    if (crc32_ieee(in + 16, size - 16) != crc)
        return tn_fail(err, errlen, TN_ERR_BAD_CHECKSUM, "plan checksum mismatch (corrupt or truncated plan)");
    if (nsec > 64 || TN_PLAN_HEADER_BYTES + (uint64_t)nsec * TN_PLAN_SECTION_RECORD_BYTES > size)
        return tn_fail(err, errlen, TN_ERR_BAD_SECTION, "section table (%u entries) does not fit the plan", nsec);

    tn_model *m = (tn_model *)calloc(1, sizeof *m);
    if (!m) return tn_fail(err, errlen, TN_ERR_NO_MEMORY, "out of memory");
    /* aligned private copy: kernels may then read int32 data and packed weights directly */
    m->plan = (uint8_t *)malloc(align_up(size, TN_PLAN_CONST_ALIGN) + TN_PLAN_CONST_ALIGN);
    if (!m->plan) { model_release(m); return tn_fail(err, errlen, TN_ERR_NO_MEMORY, "out of memory"); }
    uint8_t *base = m->plan;
    size_t pad = (size_t)(-(uintptr_t)base) & (TN_PLAN_CONST_ALIGN - 1);
    uint8_t *p = base + pad;  /* m->plan keeps the allocation for free() */
    memcpy(p, in, size);
    m->plan_size = size;

    section sec[6];
    memset(sec, 0, sizeof sec);
    int rc = TN_ERR_OK;
    for (uint32_t i = 0; i < nsec; i++) {
        const uint8_t *r = p + TN_PLAN_HEADER_BYTES + i * TN_PLAN_SECTION_RECORD_BYTES;
        uint32_t id = rd32(r), off = rd32(r + 4), sz = rd32(r + 8), cnt = rd32(r + 12);
        if (id < 1 || id > 5) { rc = tn_fail(err, errlen, TN_ERR_BAD_SECTION, "unknown section id %u", id); goto fail; }
        if (sec[id].present) { rc = tn_fail(err, errlen, TN_ERR_BAD_SECTION, "section %u appears twice", id); goto fail; }
        if ((uint64_t)off + sz > size || off < TN_PLAN_HEADER_BYTES) {
            rc = tn_fail(err, errlen, TN_ERR_BAD_SECTION, "section %u [%u, +%u) lies outside the plan (%zu bytes)", id,
                         off, sz, size);
            goto fail;
        }
        if (off % 16) { rc = tn_fail(err, errlen, TN_ERR_BAD_SECTION, "section %u is not 16-byte aligned", id); goto fail; }
        sec[id].offset = off; sec[id].size = sz; sec[id].count = cnt; sec[id].present = 1;
    }
    for (int id = 1; id <= 5; id++)
        if (!sec[id].present) { rc = tn_fail(err, errlen, TN_ERR_BAD_SECTION, "section %d missing", id); goto fail; }

    const section *st = &sec[TN_SECTION_STRINGS];
    /* constants */
    m->consts = p + sec[TN_SECTION_CONST].offset;
    m->consts_size = sec[TN_SECTION_CONST].size;

    /* tensors */
    {
        const section *s = &sec[TN_SECTION_TENSORS];
        if (s->count == 0 || s->count > 1000000 || (uint64_t)s->count * TN_PLAN_TENSOR_RECORD_BYTES != s->size) {
            rc = tn_fail(err, errlen, TN_ERR_BAD_SECTION, "TENSORS section: %u records do not fill %u bytes", s->count,
                         s->size);
            goto fail;
        }
        m->n_tensors = (int)s->count;
        m->tensors = (tn_tensor *)calloc(s->count, sizeof(tn_tensor));
        if (!m->tensors) { rc = tn_fail(err, errlen, TN_ERR_NO_MEMORY, "out of memory"); goto fail; }
        for (uint32_t i = 0; i < s->count; i++) {
            const uint8_t *r = p + s->offset + i * TN_PLAN_TENSOR_RECORD_BYTES;
            tn_tensor *t = &m->tensors[i];
            t->dtype = r[0]; t->ndim = r[1]; t->storage = r[2]; t->flags = r[3];
            for (int d = 0; d < TN_PLAN_MAX_DIMS; d++) t->dims[d] = (int32_t)rd32(r + 4 + 4 * d);
            t->zero_point = (int32_t)rd32(r + 28);
            uint32_t sb = rd32(r + 32);
            memcpy(&t->scale, &sb, 4);
            t->offset = rd32(r + 36); t->nbytes = rd32(r + 40);
            rc = read_string(st, p, rd32(r + 44), &t->name, err, errlen, "tensor", (int)i);
            if (rc) goto fail;
            int es = tn_dtype_size(t->dtype);
            if (!es) { rc = tn_fail(err, errlen, TN_ERR_BAD_TENSOR, "tensor %u '%s': unknown dtype %d", i, t->name, t->dtype); goto fail; }
            if (t->ndim > TN_PLAN_MAX_DIMS) { rc = tn_fail(err, errlen, TN_ERR_BAD_TENSOR, "tensor %u '%s': rank %d > %d", i, t->name, t->ndim, TN_PLAN_MAX_DIMS); goto fail; }
            int64_t n = 1;
            for (int d = 0; d < t->ndim; d++) {
                if (t->dims[d] <= 0 || t->dims[d] > (1 << 24)) {
                    rc = tn_fail(err, errlen, TN_ERR_BAD_TENSOR, "tensor %u '%s': dimension %d is %d", i, t->name, d, t->dims[d]);
                    goto fail;
                }
                n *= t->dims[d];
                if (n > (1ll << 30)) { rc = tn_fail(err, errlen, TN_ERR_BAD_TENSOR, "tensor %u '%s' is too large", i, t->name); goto fail; }
            }
            if ((uint64_t)n * es != t->nbytes) {
                rc = tn_fail(err, errlen, TN_ERR_BAD_TENSOR, "tensor %u '%s': %u bytes declared, shape needs %lld", i, t->name,
                             t->nbytes, (long long)(n * es));
                goto fail;
            }
            if (t->storage == TN_STORAGE_CONST) {
                if ((uint64_t)t->offset + t->nbytes > m->consts_size || t->offset % 4) {
                    rc = tn_fail(err, errlen, TN_ERR_BAD_TENSOR, "tensor %u '%s': constant data [%u, +%u) outside CONST (%zu bytes) or misaligned",
                                 i, t->name, t->offset, t->nbytes, m->consts_size);
                    goto fail;
                }
            } else if (t->storage == TN_STORAGE_ARENA) {
                if (t->offset % TN_PLAN_ARENA_ALIGN || (uint64_t)t->offset + t->nbytes > (1ull << 31)) {
                    rc = tn_fail(err, errlen, TN_ERR_BAD_TENSOR, "tensor %u '%s': arena offset %u misaligned or too large", i, t->name, t->offset);
                    goto fail;
                }
                size_t end = align_up((size_t)t->offset + t->nbytes, TN_PLAN_ARENA_ALIGN);
                if (end > m->act_bytes) m->act_bytes = end;
            } else {
                rc = tn_fail(err, errlen, TN_ERR_BAD_TENSOR, "tensor %u '%s': unknown storage %d", i, t->name, t->storage);
                goto fail;
            }
            if (!(t->scale >= 0.0f) || t->scale > 1e30f) {  /* also rejects NaN */
                rc = tn_fail(err, errlen, TN_ERR_BAD_TENSOR, "tensor %u '%s': scale %g is not a finite non-negative number", i, t->name, (double)t->scale);
                goto fail;
            }
            if (t->zero_point < -32768 || t->zero_point > 65535) {
                rc = tn_fail(err, errlen, TN_ERR_BAD_TENSOR, "tensor %u '%s': zero point %d out of range", i, t->name, t->zero_point);
                goto fail;
            }
        }
    }
    /* inputs / outputs */
    {
        const section *s = &sec[TN_SECTION_IO];
        if (s->size < 8) { rc = tn_fail(err, errlen, TN_ERR_BAD_SECTION, "IO section too short"); goto fail; }
        const uint8_t *r = p + s->offset;
        uint32_t ni = rd32(r), no = rd32(r + 4);
        if (ni == 0 || no == 0 || ni > 64 || no > 64 || 8 + 4ull * (ni + no) > s->size) {
            rc = tn_fail(err, errlen, TN_ERR_BAD_SECTION, "IO section: %u inputs and %u outputs do not fit", ni, no);
            goto fail;
        }
        m->n_inputs = (int)ni; m->n_outputs = (int)no;
        m->inputs = (int32_t *)calloc(ni + no, sizeof(int32_t));
        if (!m->inputs) { rc = tn_fail(err, errlen, TN_ERR_NO_MEMORY, "out of memory"); goto fail; }
        m->outputs = m->inputs + ni;
        for (uint32_t i = 0; i < ni + no; i++) {
            int32_t t = (int32_t)rd32(r + 8 + 4 * i);
            if (t < 0 || t >= m->n_tensors || m->tensors[t].storage != TN_STORAGE_ARENA) {
                rc = tn_fail(err, errlen, TN_ERR_BAD_SECTION, "IO entry %u names tensor %d, not an arena tensor", i, t);
                goto fail;
            }
            m->inputs[i] = t;
        }
    }
    /* ops */
    {
        const section *s = &sec[TN_SECTION_OPS];
        if (s->count == 0 || s->count > 100000 || (uint64_t)s->count * TN_PLAN_OP_RECORD_BYTES != s->size) {
            rc = tn_fail(err, errlen, TN_ERR_BAD_SECTION, "OPS section: %u records do not fill %u bytes", s->count, s->size);
            goto fail;
        }
        m->n_ops = (int)s->count;
        m->ops = (tn_op *)calloc(s->count, sizeof(tn_op));
        if (!m->ops) { rc = tn_fail(err, errlen, TN_ERR_NO_MEMORY, "out of memory"); goto fail; }
        for (uint32_t i = 0; i < s->count; i++) {
            const uint8_t *r = p + s->offset + i * TN_PLAN_OP_RECORD_BYTES;
            tn_op *op = &m->ops[i];
            op->index = (int32_t)i;
            op->opcode = rd16(r); op->n_in = r[2]; op->n_out = r[3];
            rc = read_string(st, p, rd32(r + 4), &op->name, err, errlen, "op", (int)i);
            if (rc) goto fail;
            const uint8_t *q = r + 8;
            for (int k = 0; k < TN_PLAN_MAX_OP_INPUTS; k++, q += 4) op->in[k] = (int32_t)rd32(q);
            for (int k = 0; k < TN_PLAN_MAX_OP_OUTPUTS; k++, q += 4) op->out[k] = (int32_t)rd32(q);
            for (int k = 0; k < TN_PLAN_OP_PARAMS; k++, q += 4) op->p[k] = (int32_t)rd32(q);
            if (op->n_in > TN_PLAN_MAX_OP_INPUTS || op->n_out < 1 || op->n_out > TN_PLAN_MAX_OP_OUTPUTS) {
                rc = tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "%d inputs / %d outputs", op->n_in, op->n_out);
                goto fail;
            }
            for (int k = 0; k < op->n_in; k++)
                if (op->in[k] < -1 || op->in[k] >= m->n_tensors) {
                    rc = tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "input %d names tensor %d of %d", k, op->in[k], m->n_tensors);
                    goto fail;
                }
            for (int k = 0; k < op->n_out; k++)
                if (op->out[k] < 0 || op->out[k] >= m->n_tensors || m->tensors[op->out[k]].storage != TN_STORAGE_ARENA) {
                    rc = tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "output %d names tensor %d, not an arena tensor", k, op->out[k]);
                    goto fail;
                }
            const tn_kernel *kern = kernel_for(op->opcode);
            if (!kern) { rc = tn_op_fail(err, errlen, op, TN_ERR_UNSUPPORTED, "unknown opcode %d", op->opcode); goto fail; }
            rc = kern->prepare(m, op, err, errlen);
            if (rc) goto fail;
            if ((rc = tn_approx_prepare(m, op, err, errlen))) goto fail;  /* knob artefacts, approx paths' scratch */
            if (op->scratch_bytes > m->scratch_bytes) m->scratch_bytes = op->scratch_bytes;
        }
        for (int i = 0; i < m->n_ops; i++)  /* links between ops (the sign knobs' CONV_2D -> ADD) */
            if ((rc = tn_approx_link_check(m, &m->ops[i], err, errlen))) goto fail;
    }
    *out = m;
    return TN_ERR_OK;
fail:
    model_release(m);
    return rc;
}

int tn_model_num_tensors(const tn_model *m) { return m ? m->n_tensors : 0; }
int tn_model_num_ops(const tn_model *m) { return m ? m->n_ops : 0; }
int tn_model_num_inputs(const tn_model *m) { return m ? m->n_inputs : 0; }
int tn_model_num_outputs(const tn_model *m) { return m ? m->n_outputs : 0; }
int tn_model_input(const tn_model *m, int i) { return (m && i >= 0 && i < m->n_inputs) ? m->inputs[i] : -1; }
int tn_model_output(const tn_model *m, int i) { return (m && i >= 0 && i < m->n_outputs) ? m->outputs[i] : -1; }
size_t tn_model_arena_bytes(const tn_model *m) {
    return m ? m->act_bytes + align_up(m->scratch_bytes, TN_PLAN_ARENA_ALIGN) + TN_PLAN_ARENA_ALIGN : 0;
}

int tn_model_tensor_info(const tn_model *m, int i, tn_tensor_info *info) {
    if (!m || !info || i < 0 || i >= m->n_tensors) return TN_ERR_BAD_ARGUMENT;
    const tn_tensor *t = &m->tensors[i];
    info->dtype = t->dtype; info->ndim = t->ndim;
    for (int d = 0; d < TN_PLAN_MAX_DIMS; d++) info->dims[d] = d < t->ndim ? t->dims[d] : 0;
    info->zero_point = t->zero_point; info->scale = t->scale; info->storage = t->storage;
    info->nbytes = t->nbytes; info->name = t->name;
    return TN_ERR_OK;
}

int tn_model_op_info(const tn_model *m, int i, tn_op_info *info) {
    if (!m || !info || i < 0 || i >= m->n_ops) return TN_ERR_BAD_ARGUMENT;
    const tn_op *op = &m->ops[i];
    info->opcode = op->opcode; info->n_in = op->n_in; info->n_out = op->n_out;
    memcpy(info->in, op->in, sizeof op->in);
    memcpy(info->out, op->out, sizeof op->out);
    info->name = op->name;
    info->analytic_macs = op->analytic_macs;
    memcpy(info->params, op->p, sizeof op->p);
    return TN_ERR_OK;
}

const char *tn_error_name(int code) {
    switch (code) {
    case TN_ERR_OK: return "OK";
    case TN_ERR_BAD_MAGIC: return "BAD_MAGIC";
    case TN_ERR_BAD_VERSION: return "BAD_VERSION";
    case TN_ERR_TRUNCATED: return "TRUNCATED";
    case TN_ERR_BAD_CHECKSUM: return "BAD_CHECKSUM";
    case TN_ERR_BAD_SECTION: return "BAD_SECTION";
    case TN_ERR_BAD_TENSOR: return "BAD_TENSOR";
    case TN_ERR_BAD_OP: return "BAD_OP";
    case TN_ERR_UNSUPPORTED: return "UNSUPPORTED";
    case TN_ERR_NO_MEMORY: return "NO_MEMORY";
    case TN_ERR_BAD_ARGUMENT: return "BAD_ARGUMENT";
    case TN_ERR_ARENA_TOO_SMALL: return "ARENA_TOO_SMALL";
    case TN_ERR_BAD_KNOB: return "BAD_KNOB";
    default: return "UNKNOWN";
    }
}
