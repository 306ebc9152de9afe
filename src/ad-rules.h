/*
 * ad-rules.h -- reverse-mode derivative rules (ad-rules.c), one per VJPFN
 * named in ops.def.  The declarations are generated from the op table
 * itself, so a new op needs one row there and one rule in ad-rules.c.
 */
#ifndef RK_AD_RULES_H
#define RK_AD_RULES_H

#include "ad.h"

/* the function type behind rk_vjp_fn (ad.h) */
typedef const rk_node *rk_vjp_rule(rk_ctx *c, const rk_node *n, int argi,
                                   const rk_node *g, rk_error *e);

/* rk_vjp_zero and rk_vjp_none are declared once per row that names them:
   repeated identical declarations are valid C */
#define X(E, name, na, nip, dimfn, emitfn, cexpr, vjpfn, fold, fok, cls)       \
  rk_vjp_rule vjpfn;
#include "ops.def"
#undef X

#endif /* RK_AD_RULES_H */
