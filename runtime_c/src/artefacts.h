/* Compile-time knob artefacts of one layer: the uint8 constant in input slot 8 of CONV_2D and
 * DEPTHWISE_CONV_2D, slot 7 of FULLY_CONNECTED. Written by tunable/artefacts.py, validated completely by
 * tn_approx_prepare when the model loads, read by approx.c.
 *
 * A layer has `rows` output rows (CONV_2D / DEPTHWISE_CONV_2D: output channels; FULLY_CONNECTED: N) and a
 * reduction of K positions per row (CONV_2D: KH*KW*Cin in the weights' (ky, kx, ic) order, which is the
 * im2col order; DEPTHWISE_CONV_2D: KH*KW taps; FULLY_CONNECTED: the K columns as the plan stores them, i.e.
 * after the AIP column permutation when the plan has one). Position j of row r is the weight the plan holds
 * at w[r*K + j] (conv, fc) or w[j*Cout + r] (depthwise). Weights must have zero point 0.
 *
 * Format (little-endian; offsets from the start of the blob, which the plan aligns to 64 bytes):
 *
 *   header, 16 bytes:  char magic[4] = "TNAF"; u16 version = 1; u16 n_sections (1..64);
 *                      u32 rows; u32 K (both must match the op)
 *   section table:     n_sections records of 16 bytes: u32 kind, u32 offset, u32 size, u32 arg.
 *                      Offsets are multiples of 4; sections lie inside the blob and do not overlap.
 *   Index arrays below hold one entry per position: u8 when K <= 256, else u16 ("idx" width).
 *
 *   kind 1 SORTED (arg 0; at most one): sign- and magnitude-ordered positions, for prune and sign_exact.
 *       u16 npos[rows]; u16 nneg[rows]; zero bytes to a multiple of 4; idx order[rows][K]
 *       Row r lists its positions with w > 0 first (npos of them, |w| non-increasing, ties by position),
 *       then those with w < 0 (nneg, |w| non-increasing, ties by position), then the zero weights
 *       (by position). Each row is a permutation of 0..K-1. So a prune threshold tau keeps a prefix of
 *       each sign group (found by binary search), and accumulating positives then negatives makes every
 *       partial sum after the positives an upper bound of the final one when inputs are >= their zero point.
 *   kind 2 PREVIEW (arg 0; at most one; CONV_2D only): the conv preview's orders and estimator tables.
 *       u16 nq (1..64); u16 zero; u16 plen[nq] (strictly increasing, within 1..K); zero bytes to a multiple
 *       of 4; i32 rest[rows][nq]; idx order[rows][K].
 *       Row r's order is a permutation of 0..K-1, most important position first (|w| * std(x) over
 *       calibration data, else |w|). The preview accumulates the first P = plen[q] positions (P must be one
 *       of the tabulated lengths) and estimates the full accumulator as bias + partial + rest[r][q], then
 *       again at plen[q + 1], plen[q + 2], ... (approx.c), where rest[r][j] is a calibration quantile of
 *       the sum of the positions after plen[j] (or their expected sum plus a number of standard deviations;
 *       0 without calibration data).
 *   kind 3 LUT (arg = configuration id, 1..255, unique; any number): one look-up-table configuration.
 *       sub-header, 16 bytes: u16 K_w (2..256); u16 K_a (2..256); u8 per_channel (0 or 1);
 *                             u8 wbits (4 when K_w <= 16, else 8); u16 zero; i32 in_zp (= the op's);
 *                             u32 zero
 *       if K_a < 256: i8 c_a[K_a]; u8 amap[256] (amap[x + 128] = index of input value x, < K_a); zero
 *                     bytes to a multiple of 4. c_a[amap[in_zp + 128]] must equal in_zp (real zero exact).
 *                     With K_a = 256 both are absent: the activation index is x + 128 and c_a = x.
 *       i8 c_w[B][K_w] with B = rows if per_channel else 1; zero bytes to a multiple of 4
 *       weight indices, rows x row_bytes: wbits 8: row_bytes = K, one u8 per position; wbits 4:
 *                     row_bytes = ceil(K/2), position j in the low nibble of byte j/2 when j is even, the
 *                     high nibble when odd; a row's unused last nibble is 0. Every index < K_w. Zero bytes
 *                     to a multiple of 4.
 *       i32 bias[rows]: the bias used with this configuration (compile time bias correction of the
 *                     codebook's mean error; equals the plan's bias when the codebooks are exact)
 *       i16 P[B][K_a][K_w]: P[b][a][k] = (c_a[a] - in_zp) * c_w[b][k], checked entry by entry at load
 *                     (|P| <= 255 * 128 always fits int16)
 *       The section's size must be exactly the sum of these parts.
 */
#ifndef TN_ARTEFACTS_H
#define TN_ARTEFACTS_H
#include "internal.h"

#define TN_AF_MAGIC "TNAF"
#define TN_AF_VERSION 1
#define TN_AF_HEADER_BYTES 16
#define TN_AF_SECTION_BYTES 16
#define TN_AF_MAX_SECTIONS 64
enum { TN_AF_SORTED = 1, TN_AF_PREVIEW = 2, TN_AF_LUT = 3 };

typedef struct tn_af_lut {
    int id, kw, ka, per_channel, wbits, row_bytes;
    const int8_t *ca;      /* NULL when K_a = 256 */
    const uint8_t *amap;   /* NULL when K_a = 256 */
    const int8_t *cw;      /* [B][K_w] */
    const uint8_t *widx;   /* rows x row_bytes */
    const int32_t *bias;   /* [rows] */
    const int16_t *P;      /* [B][K_a][K_w] */
} tn_af_lut;

/* A parsed view of a validated blob (pointers into the plan; nothing allocated). */
typedef struct tn_af_view {
    int rows, K, idx16;                  /* idx16: index arrays are u16 (K > 256) */
    const uint16_t *npos, *nneg;         /* SORTED, or NULL */
    const void *sorted;                  /* [rows][K] */
    const void *preview;                 /* PREVIEW order [rows][K], or NULL */
    int pv_nq;                           /* PREVIEW: tabulated prefix lengths and remainder estimates */
    const uint16_t *pv_plen;
    const int32_t *pv_rest;              /* [rows][nq] */
    const uint8_t *blob;
    int n_sections;
} tn_af_view;

/* How a layer's weights are laid out: position j of row r is w[r * row_stride + j * col_stride]. */
typedef struct tn_af_layout {
    int rows, K;
    const int8_t *w;
    int64_t row_stride, col_stride;
    int32_t in_zp;
    int conv2d;  /* PREVIEW is allowed */
} tn_af_layout;

/* The op's artefacts tensor (slot 8 conv/dw, 7 fc), or NULL when absent. */
const uint8_t *tn_af_blob(const tn_model *m, const tn_op *op, size_t *size);
/* Checks every byte of a blob against the layer (used at load). */
int tn_af_validate(const tn_op *op, const uint8_t *blob, size_t size, const tn_af_layout *L, char *err,
                   size_t errlen);
/* Parses a blob validated at load; never fails on such a blob. */
void tn_af_parse(const uint8_t *blob, tn_af_view *v);
/* Index of prefix length P in the PREVIEW tables, or -1. */
int tn_af_preview_q(const tn_af_view *v, int P);
/* LUT configuration `id` of a parsed view: 1 and fills *out when present, else 0. */
int tn_af_lut_find(const tn_af_view *v, int id, tn_af_lut *out);

static inline int tn_af_idx(const tn_af_view *v, const void *arr, int64_t i) {
    return v->idx16 ? ((const uint16_t *)arr)[i] : ((const uint8_t *)arr)[i];
}

#endif
