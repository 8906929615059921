/* Placeholder: the approximate knob paths are not implemented yet; knob validation refuses them. */
#include "approx.h"

int tn_conv_eval_approx(tn_ctx *c, const tn_conv_geom *g) { (void)g; return tn_op_fail(c->s->err, sizeof c->s->err, c->op, TN_ERR_UNSUPPORTED, "approximate knobs not implemented"); }
int tn_dw_eval_approx(tn_ctx *c, const tn_conv_geom *g) { (void)g; return tn_op_fail(c->s->err, sizeof c->s->err, c->op, TN_ERR_UNSUPPORTED, "approximate knobs not implemented"); }
int tn_fc_eval_approx(tn_ctx *c) { return tn_op_fail(c->s->err, sizeof c->s->err, c->op, TN_ERR_UNSUPPORTED, "approximate knobs not implemented"); }
