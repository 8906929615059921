/* Placeholder kernels, to be replaced by the TFLM-exact ports. */
#include "conv_common.h"

static int todo_prepare(tn_model *m, tn_op *op, char *err, size_t errlen) {
    (void)m;
    return tn_op_fail(err, errlen, op, TN_ERR_UNSUPPORTED, "opcode %d is not implemented yet", op->opcode);
}
static int todo_eval(tn_ctx *c) { (void)c; return TN_ERR_UNSUPPORTED; }

const tn_kernel tn_kernel_mul = {"MUL", todo_prepare, todo_eval};
const tn_kernel tn_kernel_mean = {"MEAN", todo_prepare, todo_eval};
const tn_kernel tn_kernel_softmax = {"SOFTMAX", todo_prepare, todo_eval};
const tn_kernel tn_kernel_logistic = {"LOGISTIC", todo_prepare, todo_eval};
const tn_kernel tn_kernel_relu = {"RELU", todo_prepare, todo_eval};
const tn_kernel tn_kernel_clamp = {"CLAMP", todo_prepare, todo_eval};
const tn_kernel tn_kernel_hard_swish = {"HARD_SWISH", todo_prepare, todo_eval};
const tn_kernel tn_kernel_quantize = {"QUANTIZE", todo_prepare, todo_eval};
const tn_kernel tn_kernel_dequantize = {"DEQUANTIZE", todo_prepare, todo_eval};
