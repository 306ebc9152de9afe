/*
 * ad-rules.h -- reverse-mode derivative rules, one per VJPFN named in
 * ops.def (ad-rules.c).  Each has the rk_vjp_fn signature of ir.h.
 */
#ifndef RK_AD_RULES_H
#define RK_AD_RULES_H

#include "ir.h"

const rk_node *rk_vjp_abs(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_acos(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_add(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_asin(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_atan(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_atan2(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_clamp(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_clampint(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_concat(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_cos(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_divide(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_elem(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_elemt(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_exp(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_extract(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_extractt(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_ifelse(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_inv(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_log(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_matvec(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_max(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_min(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_minus(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_mod(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_mult(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_none(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_norm2(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_normalize(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_pow(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_powf(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_relu(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_rsqrt(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_scalprod(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_sin(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_sinxdivx(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_sqdist(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_sqnorm2(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_sqrt(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_square(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_subtract(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_sum(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_sumt(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_tan(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_tensorprod(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_vecmat(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_wsqdist(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_wsqnorm(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_xlogx(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);
const rk_node *rk_vjp_zero(rk_ctx *c, const rk_node *n, int argi, const rk_node *g, rk_error *e);

#endif /* RK_AD_RULES_H */
