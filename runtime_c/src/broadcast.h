/* Shared by the binary element-wise ops (ADD, MUL): operand validation and 4-D broadcasting. */
#ifndef TN_BROADCAST_H
#define TN_BROADCAST_H
#include "internal.h"

typedef struct {
    int32_t astride[4], bstride[4], dims[4];  /* strides 0 on broadcast dimensions */
    int same;                                 /* both operands have the output's shape */
} tn_bcast;

/* Pads a shape of rank <= 4 with leading ones. */
void tn_dims4(const tn_tensor *t, int32_t d[4]);
/* Validates two int8 inputs and an int8 output of rank <= 4 that broadcast, and sets op->prepared to a tn_bcast. */
int tn_bcast_prepare(tn_model *m, tn_op *op, char *err, size_t errlen);

/* Runs BODY for every output element i with the operands' element indices ia and ib. */
#define TN_BCAST_FOR(pp, BODY)                                                                               \
    do {                                                                                                     \
        int64_t i = 0;                                                                                       \
        for (int d0 = 0; d0 < (pp)->dims[0]; d0++)                                                           \
            for (int d1 = 0; d1 < (pp)->dims[1]; d1++)                                                       \
                for (int d2 = 0; d2 < (pp)->dims[2]; d2++)                                                   \
                    for (int d3 = 0; d3 < (pp)->dims[3]; d3++, i++) {                                        \
                        const int64_t ia = (int64_t)d0 * (pp)->astride[0] + (int64_t)d1 * (pp)->astride[1] + \
                                           (int64_t)d2 * (pp)->astride[2] + (int64_t)d3 * (pp)->astride[3];  \
                        const int64_t ib = (int64_t)d0 * (pp)->bstride[0] + (int64_t)d1 * (pp)->bstride[1] + \
                                           (int64_t)d2 * (pp)->bstride[2] + (int64_t)d3 * (pp)->bstride[3];  \
                        BODY;                                                                                \
                    }                                                                                        \
    } while (0)

#endif
