/*
 * ir-check.h -- dimension rules (ir-check.c) and algebraic simplification
 * (ir-simplify.c), both applied by rk_build (ir.c).
 *
 * A DIMFN receives the formula arguments padded with NULL up to
 * RK_MAX_ARGS and the integer parameters padded with 0 up to RK_MAX_IP.
 * It returns the output dimension, or -1 with e set: RK_EDIM (a dimension
 * mismatch) or RK_EVALUE (a bad integer parameter).  Its message is the
 * bare reason ("dimensions 3 and 2 do not match ..."); rk_build prefixes
 * the op's name ("Add: ").
 */
#ifndef RK_IR_CHECK_H
#define RK_IR_CHECK_H

#include "ir.h"

/* the largest dimension of any node (keeps generated code sane) */
#define RK_IR_MAX_DIM 1000000

/* the dimension rules, declared from ops.def's DIMFN column (repeated
   identical declarations are valid C) */
typedef int rk_dim_rule(const rk_node *const *args, const int *ip, rk_error *e);
#define X(E, name, na, nip, dimfn, emitfn, cexpr, vjpfn, fold, fok, cls)       \
  rk_dim_rule dimfn;
#include "ops.def"
#undef X

/* dimension of a leaf (Var, IntCst, Cst, Zero) from its parameters, with
   the checks on them; -1 with e set */
int rk_ir_dim_leaf(int op, const int *ip, rk_error *e);
/* the op-specific dimension checks of Grad, Diff, Laplacian, Divergence
   (rk_dim_ad does the common ones); returns the output dimension */
int rk_ir_dim_ad(int op, const rk_node *const *args, rk_error *e);

/* Simplify op(args; ip; dp) of (checked) dimension dim, and return the
   hash-consed result (rk_make when no rule applies); NULL when out of
   memory.  Constant folding and the identities x*1, x*0, x+0, -(-x) ... */
const rk_node *rk_simplify(rk_ctx *c, int op, const rk_node *const *args,
                           int nargs, const int *ip, int nip, double dp,
                           int dim);

#endif /* RK_IR_CHECK_H */
