/* Knob artefacts: locating, validating (at load, every byte) and parsing the per-layer blob.
 * The format is documented in artefacts.h. */
#include <stdlib.h>
#include <string.h>
#include "artefacts.h"

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t pad4(uint64_t n) { return (n + 3) & ~(uint64_t)3; }

const uint8_t *tn_af_blob(const tn_model *m, const tn_op *op, size_t *size) {
    const int slot = op->opcode == TN_OP_FULLY_CONNECTED ? TN_IN_FULLY_CONNECTED_ARTEFACTS : TN_IN_CONV_2D_ARTEFACTS;
    if (op->n_in <= slot || op->in[slot] < 0) return NULL;
    const tn_tensor *t = &m->tensors[op->in[slot]];
    if (size) *size = t->nbytes;
    return m->consts + t->offset;
}

/* the weight at position j of row r */
static inline int32_t wat(const tn_af_layout *L, int r, int j) {
    return L->w[(int64_t)r * L->row_stride + (int64_t)j * L->col_stride];
}

static int check_zero(const uint8_t *p, uint64_t from, uint64_t to) {
    for (uint64_t i = from; i < to; i++)
        if (p[i]) return 0;
    return 1;
}

static int check_perm(const tn_op *op, const char *what, const uint8_t *arr, int idx16, int r, int K,
                      uint8_t *seen, char *err, size_t errlen) {
    memset(seen, 0, (size_t)K);
    for (int j = 0; j < K; j++) {
        const int v = idx16 ? rd16(arr + 2 * ((int64_t)r * K + j)) : arr[(int64_t)r * K + j];
        if (v >= K || seen[v])
            return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP,
                              "artefacts %s: row %d is not a permutation of 0..%d (entry %d is %d)", what, r, K - 1, j, v);
        seen[v] = 1;
    }
    return TN_ERR_OK;
}

static int validate_sorted(const tn_op *op, const uint8_t *s, uint64_t size, const tn_af_layout *L, int idx16,
                           uint8_t *seen, char *err, size_t errlen) {
    const int R = L->rows, K = L->K;
    const uint64_t want = 4ull * R + (uint64_t)R * K * (idx16 ? 2 : 1);
    if (size != want)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts SORTED: %llu bytes, expected %llu",
                          (unsigned long long)size, (unsigned long long)want);
    const uint8_t *order = s + 4ull * R;
    for (int r = 0; r < R; r++) {
        const int np = rd16(s + 2 * r), nn = rd16(s + 2 * ((uint64_t)R + r));
        if (np + nn > K)
            return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts SORTED: row %d has %d + %d signed weights of %d",
                              r, np, nn, K);
        int rc = check_perm(op, "SORTED", order, idx16, r, K, seen, err, errlen);
        if (rc) return rc;
        int prev_pos = -1;
        int32_t prev_mag = 0;
        for (int j = 0; j < K; j++) {
            const int pos = idx16 ? rd16(order + 2 * ((int64_t)r * K + j)) : order[(int64_t)r * K + j];
            const int32_t w = wat(L, r, pos);
            const int group = j < np ? 0 : (j < np + nn ? 1 : 2);
            const int ok_sign = group == 0 ? w > 0 : (group == 1 ? w < 0 : w == 0);
            if (!ok_sign)
                return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP,
                                  "artefacts SORTED: row %d entry %d (position %d, weight %d) is in the %s group", r, j,
                                  pos, w, group == 0 ? "positive" : (group == 1 ? "negative" : "zero"));
            const int32_t mag = w < 0 ? -w : w;
            const int first = j == 0 || j == np || j == np + nn;
            if (!first && (mag > prev_mag || (mag == prev_mag && pos < prev_pos)))
                return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP,
                                  "artefacts SORTED: row %d entry %d is out of order (|w| %d after %d)", r, j, mag, prev_mag);
            prev_mag = mag;
            prev_pos = pos;
        }
    }
    return TN_ERR_OK;
}

static int validate_preview(const tn_op *op, const uint8_t *s, uint64_t size, const tn_af_layout *L, int idx16,
                            uint8_t *seen, char *err, size_t errlen) {
    if (size < 4) return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts PREVIEW: %llu bytes, shorter than its header",
                                    (unsigned long long)size);
    const int nq = rd16(s);
    if (nq < 1 || nq > 64 || rd16(s + 2) != 0)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts PREVIEW: %d prefix lengths (1..64), reserved field %d",
                          nq, rd16(s + 2));
    const uint64_t o_rest = pad4(4 + 2ull * nq), o_order = o_rest + 4ull * L->rows * nq;
    const uint64_t want = o_order + (uint64_t)L->rows * L->K * (idx16 ? 2 : 1);
    if (size != want)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts PREVIEW: %llu bytes, expected %llu",
                          (unsigned long long)size, (unsigned long long)want);
    for (int q = 0; q < nq; q++) {
        const int P = rd16(s + 4 + 2 * q);
        if (P < 1 || P > L->K || (q > 0 && P <= rd16(s + 2 + 2 * q)))
            return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP,
                              "artefacts PREVIEW: prefix length %d (entry %d) is not increasing within 1..%d", P, q, L->K);
    }
    if (!check_zero(s, 4 + 2ull * nq, o_rest))
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts PREVIEW: padding after the prefix lengths is not zero");
    for (int r = 0; r < L->rows; r++) {
        int rc = check_perm(op, "PREVIEW", s + o_order, idx16, r, L->K, seen, err, errlen);
        if (rc) return rc;
    }
    return TN_ERR_OK;
}

static int validate_lut(const tn_op *op, const uint8_t *s, uint64_t size, const tn_af_layout *L, char *err,
                        size_t errlen) {
    const int R = L->rows, K = L->K;
    if (size < 16) return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts LUT: %llu bytes, shorter than its header",
                                     (unsigned long long)size);
    const int kw = rd16(s), ka = rd16(s + 2), pc = s[4], wbits = s[5];
    const int32_t zp = (int32_t)rd32(s + 8);
    if (kw < 2 || kw > 256 || ka < 2 || ka > 256)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts LUT: K_w %d, K_a %d outside [2, 256]", kw, ka);
    if (pc > 1 || wbits != (kw <= 16 ? 4 : 8) || rd16(s + 6) != 0 || rd32(s + 12) != 0)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP,
                          "artefacts LUT %dx%d: per_channel %d, index width %d bits (expected %d), reserved fields not zero",
                          kw, ka, pc, wbits, kw <= 16 ? 4 : 8);
    if (zp != L->in_zp)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts LUT %dx%d: input zero point %d, the op's is %d", kw,
                          ka, zp, L->in_zp);
    const int B = pc ? R : 1;
    const uint64_t row_bytes = wbits == 8 ? (uint64_t)K : ((uint64_t)K + 1) / 2;
    uint64_t o = 16;
    const uint64_t o_ca = o;
    if (ka < 256) o = pad4(o + (uint64_t)ka + 256);
    const uint64_t o_cw = o;
    o = pad4(o + (uint64_t)B * kw);
    const uint64_t o_wi = o;
    o = pad4(o + (uint64_t)R * row_bytes);
    const uint64_t o_bias = o;
    o += 4ull * R;
    const uint64_t o_p = o;
    o += 2ull * B * ka * kw;
    if (o != size)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts LUT %dx%d: %llu bytes, expected %llu", kw, ka,
                          (unsigned long long)size, (unsigned long long)o);
    if (ka < 256) {
        const int8_t *ca = (const int8_t *)(s + o_ca);
        const uint8_t *amap = s + o_ca + ka;
        for (int v = 0; v < 256; v++)
            if (amap[v] >= ka)
                return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts LUT %dx%d: activation map[%d] = %d >= K_a",
                                  kw, ka, v - 128, amap[v]);
        if (zp < -128 || zp > 127 || ca[amap[zp + 128]] != zp)
            return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP,
                              "artefacts LUT %dx%d: the input zero point %d does not map to itself (real zero must stay exact)",
                              kw, ka, zp);
        if (!check_zero(s, o_ca + ka + 256, o_cw))
            return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts LUT %dx%d: padding after the activation map is not zero", kw, ka);
    }
    if (!check_zero(s, o_cw + (uint64_t)B * kw, o_wi))
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts LUT %dx%d: padding after the codebooks is not zero", kw, ka);
    const uint8_t *wi = s + o_wi;
    for (int r = 0; r < R; r++) {
        const uint8_t *row = wi + (uint64_t)r * row_bytes;
        for (int j = 0; j < K; j++) {
            const int v = wbits == 8 ? row[j] : ((row[j >> 1] >> ((j & 1) * 4)) & 15);
            if (v >= kw)
                return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts LUT %dx%d: row %d position %d has index %d >= K_w",
                                  kw, ka, r, j, v);
        }
        if (wbits == 4 && (K & 1) && (row[K >> 1] >> 4))
            return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts LUT %dx%d: row %d: unused last nibble is not zero", kw, ka, r);
    }
    if (!check_zero(s, o_wi + (uint64_t)R * row_bytes, o_bias))
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts LUT %dx%d: padding after the weight indices is not zero", kw, ka);
    const int8_t *cw = (const int8_t *)(s + o_cw);
    const int8_t *ca = ka < 256 ? (const int8_t *)(s + o_ca) : NULL;
    for (int b = 0; b < B; b++)
        for (int a = 0; a < ka; a++) {
            const int32_t xa = (ca ? ca[a] : a - 128) - zp;
            for (int k = 0; k < kw; k++) {
                const int32_t want = xa * cw[(int64_t)b * kw + k];
                const int16_t got = (int16_t)rd16(s + o_p + 2 * (((uint64_t)b * ka + a) * kw + k));
                if (got != want)
                    return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP,
                                      "artefacts LUT %dx%d: product table [%d][%d][%d] = %d, expected (%d) * (%d) = %d", kw, ka,
                                      b, a, k, got, xa, cw[(int64_t)b * kw + k], want);
            }
        }
    return TN_ERR_OK;
}

int tn_af_validate(const tn_op *op, const uint8_t *p, size_t size, const tn_af_layout *L, char *err, size_t errlen) {
    if (((uintptr_t)p & 3) != 0)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts are not 4-byte aligned");
    if (size < TN_AF_HEADER_BYTES || memcmp(p, TN_AF_MAGIC, 4) != 0)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts: not an artefacts blob (%zu bytes, magic is not '%s')",
                          size, TN_AF_MAGIC);
    const int version = rd16(p + 4), ns = rd16(p + 6);
    if (version != TN_AF_VERSION)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts: version %d, this runtime reads %d", version, TN_AF_VERSION);
    if (ns < 1 || ns > TN_AF_MAX_SECTIONS || size < TN_AF_HEADER_BYTES + (uint64_t)ns * TN_AF_SECTION_BYTES)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts: %d sections do not fit %zu bytes (1..%d allowed)", ns,
                          size, TN_AF_MAX_SECTIONS);
    const uint32_t rows = rd32(p + 8), K = rd32(p + 12);
    if (rows != (uint32_t)L->rows || K != (uint32_t)L->K)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts: made for %u rows x %u positions, the op has %d x %d",
                          rows, K, L->rows, L->K);
    if (L->K > 65535)
        return tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts: reduction of %d positions exceeds 65535", L->K);
    const int idx16 = L->K > 256;
    const uint64_t table_end = TN_AF_HEADER_BYTES + (uint64_t)ns * TN_AF_SECTION_BYTES;
    int have_sorted = 0, have_preview = 0;
    uint8_t lut_ids[256] = {0};
    uint8_t *seen = (uint8_t *)malloc((size_t)L->K);
    if (!seen) return tn_op_fail(err, errlen, op, TN_ERR_NO_MEMORY, "out of memory");
    int rc = TN_ERR_OK;
    for (int i = 0; i < ns && !rc; i++) {
        const uint8_t *rec = p + TN_AF_HEADER_BYTES + (uint64_t)i * TN_AF_SECTION_BYTES;
        const uint32_t kind = rd32(rec), off = rd32(rec + 4), sz = rd32(rec + 8), arg = rd32(rec + 12);
        if (off % 4 || off < table_end || (uint64_t)off + sz > size) {
            rc = tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts: section %d (kind %u) at %u + %u bytes lies outside the blob's %zu",
                            i, kind, off, sz, size);
            break;
        }
        for (int k = 0; k < i; k++) {
            const uint8_t *o2 = p + TN_AF_HEADER_BYTES + (uint64_t)k * TN_AF_SECTION_BYTES;
            const uint64_t a0 = rd32(o2 + 4), a1 = a0 + rd32(o2 + 8);
            if ((uint64_t)off < a1 && a0 < (uint64_t)off + sz) {
                rc = tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts: sections %d and %d overlap", k, i);
                break;
            }
        }
        if (rc) break;
        const uint8_t *s = p + off;
        switch (kind) {
        case TN_AF_SORTED:
            if (have_sorted++ || arg != 0)
                rc = tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts: SORTED section repeated or with argument %u", arg);
            else
                rc = validate_sorted(op, s, sz, L, idx16, seen, err, errlen);
            break;
        case TN_AF_PREVIEW:
            if (have_preview++ || arg != 0 || !L->conv2d)
                rc = tn_op_fail(err, errlen, op, TN_ERR_BAD_OP,
                                "artefacts: PREVIEW section repeated, with argument %u, or on an op other than CONV_2D", arg);
            else
                rc = validate_preview(op, s, sz, L, idx16, seen, err, errlen);
            break;
        case TN_AF_LUT:
            if (arg < 1 || arg > 255 || lut_ids[arg]++)
                rc = tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts: LUT configuration id %u repeated or outside 1..255", arg);
            else
                rc = validate_lut(op, s, sz, L, err, errlen);
            break;
        default:
            rc = tn_op_fail(err, errlen, op, TN_ERR_BAD_OP, "artefacts: section %d has unknown kind %u", i, kind);
        }
    }
    free(seen);
    return rc;
}

void tn_af_parse(const uint8_t *p, tn_af_view *v) {
    memset(v, 0, sizeof *v);
    v->blob = p;
    v->n_sections = rd16(p + 6);
    v->rows = (int)rd32(p + 8);
    v->K = (int)rd32(p + 12);
    v->idx16 = v->K > 256;
    for (int i = 0; i < v->n_sections; i++) {
        const uint8_t *rec = p + TN_AF_HEADER_BYTES + (uint64_t)i * TN_AF_SECTION_BYTES;
        const uint32_t kind = rd32(rec), off = rd32(rec + 4);
        if (kind == TN_AF_SORTED) {
            v->npos = (const uint16_t *)(p + off);
            v->nneg = v->npos + v->rows;
            v->sorted = p + off + 4ull * v->rows;
        } else if (kind == TN_AF_PREVIEW) {
            const uint8_t *s = p + off;
            v->pv_nq = rd16(s);
            v->pv_plen = (const uint16_t *)(s + 4);
            v->pv_rest = (const int32_t *)(s + pad4(4 + 2ull * v->pv_nq));
            v->preview = (const uint8_t *)v->pv_rest + 4ull * v->rows * v->pv_nq;
        }
    }
}

int tn_af_preview_q(const tn_af_view *v, int P) {
    for (int q = 0; q < v->pv_nq; q++)
        if (v->pv_plen[q] == P) return q;
    return -1;
}

int tn_af_lut_find(const tn_af_view *v, int id, tn_af_lut *out) {
    const uint8_t *p = v->blob;
    for (int i = 0; i < v->n_sections; i++) {
        const uint8_t *rec = p + TN_AF_HEADER_BYTES + (uint64_t)i * TN_AF_SECTION_BYTES;
        if (rd32(rec) != TN_AF_LUT || (int)rd32(rec + 12) != id) continue;
        const uint8_t *s = p + rd32(rec + 4);
        const int R = v->rows, K = v->K;
        out->id = id;
        out->kw = rd16(s);
        out->ka = rd16(s + 2);
        out->per_channel = s[4];
        out->wbits = s[5];
        out->row_bytes = out->wbits == 8 ? K : (K + 1) / 2;
        const int B = out->per_channel ? R : 1;
        uint64_t o = 16;
        out->ca = NULL;
        out->amap = NULL;
        if (out->ka < 256) {
            out->ca = (const int8_t *)(s + o);
            out->amap = s + o + out->ka;
            o = pad4(o + (uint64_t)out->ka + 256);
        }
        out->cw = (const int8_t *)(s + o);
        o = pad4(o + (uint64_t)B * out->kw);
        out->widx = s + o;
        o = pad4(o + (uint64_t)R * out->row_bytes);
        out->bias = (const int32_t *)(s + o);
        o += 4ull * R;
        out->P = (const int16_t *)(s + o);
        return 1;
    }
    return 0;
}
