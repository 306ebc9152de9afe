/*
 * ad.h -- automatic differentiation: the layer above the IR (ir.h).
 * ad.c is the driver (reverse mode over the DAG, Diff, Divergence,
 * Laplacian); ad-rules.c holds one reverse-mode rule per op, in the table
 * rk_ad_rules built from ops.def's VJPFN column.  The IR reaches this
 * layer only through the expander that formula.c installs in each context
 * (rk_ctx_set_expand(ctx, rk_ad_expand)).
 */
#ifndef RK_AD_H
#define RK_AD_H

#include "ir.h"

/* vjp: the cotangent contribution to argument argi of n, given the
   cotangent g of n (dimension n->dim).  Returns a node of dimension
   args[argi]->dim (or n->dim when that argument broadcasts: the AD driver
   then sums it), rk_zero(...) when the contribution is zero, or NULL with
   err set when differentiation makes no sense. */
typedef const rk_node *(*rk_vjp_fn)(rk_ctx *c, const rk_node *n, int argi,
                                    const rk_node *g, rk_error *e);

/* the derivative rule of every op, indexed by enum rk_op (ad-rules.c) */
extern const rk_vjp_fn rk_ad_rules[];

/* The budget of one differentiation operation: the number of IR nodes
   that one Grad, Diff, Divergence or Laplacian may add to the formula.
   Reverse mode costs a constant factor of the formula's size, but a
   Divergence or a Laplacian in dimension d makes one scalar formula per
   component (about 15 nodes a component for Laplacian(Exp(-SqDist(x,y)),x),
   so dimension 3000 fits and 10000 does not).  Beyond it the operation is
   refused with RK_EUNSUPPORTED and a message naming the limit, rather than
   building a formula that would take minutes to compile. */
#define RK_AD_MAX_NODES 50000

/* Expand GRAD / DIFF / LAPLACIAN / DIVERGENCE applied to args (an
   rk_expand_fn, see ir.h), within RK_AD_MAX_NODES new nodes. */
const rk_node *rk_ad_expand(rk_ctx *c, int op, const rk_node *const *args,
                            rk_error *e);
/* reverse mode: cotangent of variable v (a Var node) given cotangent g of f */
const rk_node *rk_ad_grad(rk_ctx *c, const rk_node *f, const rk_node *v,
                          const rk_node *g, rk_error *e);

#endif /* RK_AD_H */
