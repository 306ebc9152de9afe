/*
 * ir-simplify.c -- rewrites applied by rk_build to every new node:
 * constant folding (an IntCst stays an IntCst when integer inputs give an
 * exact integer), and identities that automatic differentiation relies on
 * (x*1, x*0, x+0, 0-x, -(-x), f(Zero) ...).  Values are never changed
 * beyond these identities: no reassociation, no distribution.
 */
#include "ir-check.h"
#include "scalar-defs.h"

#include <limits.h>
#include <math.h>

/* value of a scalar constant (IntCst, Cst, Zero(1)); *isint when integer */
static int rk_simp_const(const rk_node *n, double *v, int *isint) {
  if (n->op == RK_OP_INTCST) {
    *v = n->ip[0];
    *isint = 1;
    return 1;
  }
  if (n->op == RK_OP_ZERO && n->dim == 1) {
    *v = 0;
    *isint = 1;
    return 1;
  }
  if (n->op == RK_OP_CST) {
    *v = n->dp;
    *isint = 0;
    return 1;
  }
  return 0;
}

/* the node of a folded value; NULL (no folding) when not finite */
static const rk_node *rk_simp_value(rk_ctx *c, double v, int isint) {
  if (!isfinite(v))
    return NULL;
  if (isint && v == floor(v) && v >= INT_MIN && v <= INT_MAX)
    return rk_intcst(c, (int)v);
  return rk_cst(c, v);
}

/* the scalar definitions of scalar-defs.h, compiled in double: the same
   text as the kernels' preludes */
#define T                            double
#define RK_S(f)                      f
#define RK_SD_FN(name, params, body) static inline T rk_##name##_s params body
RK_SCALAR_DEFS(RK_SD_FN)
#undef RK_SD_FN
#undef RK_S

/* op applied to scalars x[] (ip: integer parameters); 0 when not folded.
   Generated from ops.def's FOLD and FOLDOK columns. */
static int rk_simp_eval(int op, const double *x, const int *ip, double *r) {
  double a = x[0], b = x[1], d = x[2];
  (void)a;
  (void)b;
  (void)d;
  (void)ip;
  switch (op) {
#define X(E, name, na, nip, dimfn, emitfn, cexpr, vjpfn, fold, fok, cls)       \
  case RK_OP_##E:                                                              \
    *r = (fold);                                                               \
    return (fok) != 0;
#include "ops.def"
#undef X
  default:
    return 0;
  }
}
#undef T

/* fold an op whose arguments are all scalar constants */
static const rk_node *rk_simp_fold(rk_ctx *c, int op,
                                   const rk_node *const *args, int nargs,
                                   const int *ip, int dim) {
  double x[RK_MAX_ARGS] = {0}, r;
  int allint = 1;
  if (dim != 1 || nargs == 0)
    return NULL;
  for (int i = 0; i < nargs; i++) {
    int isint;
    if (!rk_simp_const(args[i], &x[i], &isint))
      return NULL;
    allint &= isint;
  }
  if (op == RK_OP_CLAMPINT && !allint)
    allint = 0;
  if (!rk_simp_eval(op, x, ip, &r))
    return NULL;
  return rk_simp_value(c, r, allint);
}

static int rk_is_zero_node(const rk_node *n) {
  return n->op == RK_OP_ZERO;
}

/* elementwise ops with f(0) = 0 (ops.def's CLASS column) */
static int rk_simp_keeps_zero(int op, const int *ip) {
  int cls = rk_ops[op].cls;
  return (cls & RK_OPC_KEEPZ) || ((cls & RK_OPC_KEEPZ_POS) && ip[0] > 0);
}

/* a linear op (RK_OPC_LINEAR) whose arguments are all zero */
static int rk_simp_linear_of_zeros(int op, const rk_node *const *args,
                                   int nargs) {
  if (!(rk_ops[op].cls & RK_OPC_LINEAR))
    return 0;
  for (int i = 0; i < nargs; i++)
    if (!rk_is_zero(args[i]))
      return 0;
  return 1;
}

/* identities; NULL when none applies */
static const rk_node *rk_simp_rules(rk_ctx *c, int op,
                                    const rk_node *const *args, int nargs,
                                    const int *ip, int dim) {
  const rk_node *a = nargs > 0 ? args[0] : NULL;
  const rk_node *b = nargs > 1 ? args[1] : NULL;
  switch (op) {
  case RK_OP_ADD:
    if (rk_is_zero(b) && a->dim == dim)
      return a;
    if (rk_is_zero(a) && b->dim == dim)
      return b;
    return NULL;
  case RK_OP_SUBTRACT:
    if (rk_is_zero(b) && a->dim == dim)
      return a;
    if (a == b)
      return rk_zero(c, dim);
    if (rk_is_zero(a) && b->dim == dim)
      return rk_simplify(c, RK_OP_MINUS, &b, 1, NULL, 0, 0, dim);
    return NULL;
  case RK_OP_MULT:
    if (rk_is_zero(a) || rk_is_zero(b))
      return rk_zero(c, dim);
    if (rk_is_one(b) && a->dim == dim)
      return a;
    if (rk_is_one(a) && b->dim == dim)
      return b;
    return NULL;
  case RK_OP_DIVIDE:
    if (rk_is_one(b) && a->dim == dim)
      return a;
    return NULL;
  case RK_OP_MINUS:
    if (a->op == RK_OP_MINUS)
      return a->args[0];
    break;
  case RK_OP_POW:
    if (ip[0] == 1)
      return a;
    if (ip[0] == 0 && dim == 1)
      return rk_intcst(c, 1);
    break;
  case RK_OP_SUM:
    if (a->dim == 1)
      return a;
    break;
  case RK_OP_MAX:
  case RK_OP_MIN:
    if (a->dim == 1)
      return a;
    if (rk_is_zero_node(a))
      return rk_zero(c, 1);
    return NULL;
  case RK_OP_ARGMAX:
  case RK_OP_ARGMIN:
    if (a->dim == 1 || rk_is_zero_node(a))
      return rk_zero(c, 1);
    return NULL;
  case RK_OP_SQNORM2:
  case RK_OP_NORM2:
    return rk_is_zero_node(a) ? rk_zero(c, 1) : NULL;
  case RK_OP_SCALPROD:
    return rk_is_zero_node(a) || rk_is_zero_node(b) ? rk_zero(c, 1) : NULL;
  case RK_OP_SQDIST:
    if (a == b)
      return rk_zero(c, 1);
    /* SqNorm2 of the other operand, unless that one (of dimension 1) is
       broadcast against the zero: then d * x^2, left to the emitter */
    if (rk_is_zero_node(b) && b->dim <= a->dim)
      return rk_simplify(c, RK_OP_SQNORM2, &a, 1, NULL, 0, 0, 1);
    if (rk_is_zero_node(a) && a->dim <= b->dim)
      return rk_simplify(c, RK_OP_SQNORM2, &b, 1, NULL, 0, 0, 1);
    return NULL;
  case RK_OP_WSQNORM:
    return rk_is_zero(a) || rk_is_zero_node(b) ? rk_zero(c, 1) : NULL;
  case RK_OP_WSQDIST:
    return rk_is_zero(a) || b == args[2] ? rk_zero(c, 1) : NULL;
  case RK_OP_IFELSE:
    return b == args[2] && b->dim == dim ? b : NULL;
  case RK_OP_ELEM:
    if (a->dim == 1)
      return a;
    break;
  case RK_OP_EXTRACT:
  case RK_OP_EXTRACTT:
    if (ip[0] == 0 && ip[1] == a->dim)
      return a;
    break;
  case RK_OP_ELEMT:
  case RK_OP_SUMT:
    if (dim == 1)
      return a;
    break;
  case RK_OP_MATVECMULT:
  case RK_OP_VECMATMULT:
  case RK_OP_TENSORPROD:
    return rk_is_zero(a) || rk_is_zero(b) ? rk_zero(c, dim) : NULL;
  default:
    break;
  }
  /* a linear op of zeros is Zero: Sum, Elem, ElemT, Extract, ExtractT,
     Concat, SumT (Add, Subtract and Minus have their rules above) */
  if (nargs > 0 && rk_simp_linear_of_zeros(op, args, nargs))
    return rk_zero(c, dim);
  /* elementwise f with f(0) = 0 applied to Zero(d) */
  if (nargs == 1 && rk_is_zero_node(a) && a->dim == dim &&
      rk_simp_keeps_zero(op, ip))
    return a;
  return NULL;
}

const rk_node *rk_simplify(rk_ctx *c, int op, const rk_node *const *args,
                           int nargs, const int *ip, int nip, double dp,
                           int dim) {
  static const int noip[RK_MAX_IP] = {0};
  if (ip == NULL)
    ip = noip;
  if (nargs > 0) {
    const rk_node *n = rk_simp_fold(c, op, args, nargs, ip, dim);
    if (n == NULL)
      n = rk_simp_rules(c, op, args, nargs, ip, dim);
    if (n != NULL)
      return n;
  }
  return rk_make(c, op, dim, args, nargs, ip, nip, dp);
}
