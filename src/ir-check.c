/*
 * ir-check.c -- the dimension rules of ops.def (DIMFN column) and the
 * checks of integer parameters.  Messages are bare reasons; rk_build
 * prefixes the op's name.  See ir-check.h for the calling convention.
 */
#include "ir-check.h"

#include <limits.h>

static int rk_nargs(const rk_node *const *args) {
  int n = 0;
  while (n < RK_MAX_ARGS && args[n] != NULL)
    n++;
  return n;
}

/* ---- leaves -------------------------------------------------------------- */

int rk_dim_leaf(const rk_node *const *args, const int *ip, rk_error *e) {
  (void)args;
  (void)ip;
  (void)e;
  return 1; /* Var and Zero: see rk_ir_dim_leaf, called by rk_build */
}

int rk_ir_dim_leaf(int op, const int *ip, rk_error *e) {
  switch (op) {
  case RK_OP_VAR:
    if (ip[0] < 0)
      return rk_err(e, RK_EVALUE, -1, "Var: position %d must be >= 0", ip[0]),
             -1;
    if (ip[1] < 1 || ip[1] > RK_IR_MAX_DIM)
      return rk_err(e, RK_EVALUE, -1,
                    "Var: dimension %d must be between 1 and %d", ip[1],
                    RK_IR_MAX_DIM),
             -1;
    if (ip[2] < RK_CAT_I || ip[2] > RK_CAT_P)
      return rk_err(e, RK_EVALUE, -1,
                    "Var: category %d must be 0 (i), 1 (j) or 2 (parameter)",
                    ip[2]),
             -1;
    return ip[1];
  case RK_OP_ZERO:
    if (ip[0] < 1 || ip[0] > RK_IR_MAX_DIM)
      return rk_err(e, RK_EVALUE, -1,
                    "Zero: dimension %d must be between 1 and %d", ip[0],
                    RK_IR_MAX_DIM),
             -1;
    return ip[0];
  default: /* IntCst, Cst */
    return 1;
  }
}

/* ---- elementwise ------------------------------------------------------------
 */

int rk_dim_same(const rk_node *const *args, const int *ip, rk_error *e) {
  (void)ip;
  (void)e;
  return args[0]->dim;
}

int rk_dim_bcast(const rk_node *const *args, const int *ip, rk_error *e) {
  (void)ip;
  int n = rk_nargs(args), d = 1;
  for (int i = 0; i < n; i++)
    if (args[i]->dim > d)
      d = args[i]->dim;
  for (int i = 0; i < n; i++) {
    if (args[i]->dim == 1 || args[i]->dim == d)
      continue;
    if (n == 2)
      rk_err(e, RK_EDIM, -1,
             "dimensions %d and %d do not match (only a dimension-1 operand "
             "broadcasts)",
             args[0]->dim, args[1]->dim);
    else
      rk_err(e, RK_EDIM, -1,
             "dimensions %d, %d and %d do not match (only a dimension-1 "
             "operand broadcasts)",
             args[0]->dim, args[1]->dim, args[2]->dim);
    return -1;
  }
  return d;
}

/* ---- reductions over the inner dimension
 * --------------------------------------- */

int rk_dim_one(const rk_node *const *args, const int *ip, rk_error *e) {
  (void)args;
  (void)ip;
  (void)e;
  return 1;
}

int rk_dim_eq1(const rk_node *const *args, const int *ip, rk_error *e) {
  (void)ip;
  if (args[0]->dim != args[1]->dim)
    return rk_err(e, RK_EDIM, -1, "dimensions %d and %d must be equal",
                  args[0]->dim, args[1]->dim),
           -1;
  return 1;
}

/* weight s of x: dimension 1, dim(x), or dim(x)^2 */
static int rk_check_weight(int ds, int dx, rk_error *e) {
  if (ds == 1 || ds == dx || (long long)dx * dx == ds)
    return 1;
  rk_err(e, RK_EDIM, -1,
         "weight dimension %d must be 1, %d or %lld (the vector has "
         "dimension %d)",
         ds, dx, (long long)dx * dx, dx);
  return -1;
}

/* SqDist(a, b) = SqNorm2(a - b): equal dimensions, or one of them 1 (it
   broadcasts, as in a - b) */
int rk_dim_sqdist(const rk_node *const *args, const int *ip, rk_error *e) {
  return rk_dim_bcast(args, ip, e) < 0 ? -1 : 1;
}

int rk_dim_wsqnorm(const rk_node *const *args, const int *ip, rk_error *e) {
  (void)ip;
  return rk_check_weight(args[0]->dim, args[1]->dim, e);
}

int rk_dim_wsqdist(const rk_node *const *args, const int *ip, rk_error *e) {
  (void)ip;
  /* WeightedSqNorm(s, x - y): x and y of equal dimensions or one of them
     1 (broadcast); the weight goes with the difference's dimension */
  const rk_node *xy[3] = {args[1], args[2], NULL};
  int d = rk_dim_bcast(xy, ip, e);
  if (d < 0)
    return -1;
  return rk_check_weight(args[0]->dim, d, e);
}

/* ---- vector operations
 * --------------------------------------------------------- */

int rk_dim_elem(const rk_node *const *args, const int *ip, rk_error *e) {
  if (ip[0] < 0 || ip[0] >= args[0]->dim)
    return rk_err(e, RK_EVALUE, -1,
                  "index %d is out of range for dimension %d (indices start "
                  "at 0)",
                  ip[0], args[0]->dim),
           -1;
  return 1;
}

int rk_dim_elemt(const rk_node *const *args, const int *ip, rk_error *e) {
  if (args[0]->dim != 1)
    return rk_err(e, RK_EDIM, -1, "the argument has dimension %d, not 1",
                  args[0]->dim),
           -1;
  if (ip[0] < 1)
    return rk_err(e, RK_EVALUE, -1, "dimension %d must be >= 1", ip[0]), -1;
  if (ip[1] < 0 || ip[1] >= ip[0])
    return rk_err(e, RK_EVALUE, -1,
                  "index %d is out of range for dimension %d (indices start "
                  "at 0)",
                  ip[1], ip[0]),
           -1;
  return ip[0];
}

int rk_dim_extract(const rk_node *const *args, const int *ip, rk_error *e) {
  int d = args[0]->dim;
  if (ip[0] < 0 || ip[1] < 1 || ip[0] > d || ip[1] > d - ip[0])
    return rk_err(e, RK_EVALUE, -1,
                  "start %d and length %d do not fit in dimension %d (need "
                  "start >= 0, length >= 1, start + length <= %d)",
                  ip[0], ip[1], d, d),
           -1;
  return ip[1];
}

int rk_dim_extractt(const rk_node *const *args, const int *ip, rk_error *e) {
  int d = args[0]->dim;
  if (ip[1] < 1)
    return rk_err(e, RK_EVALUE, -1, "dimension %d must be >= 1", ip[1]), -1;
  if (ip[0] < 0 || ip[0] > ip[1] || d > ip[1] - ip[0])
    return rk_err(e, RK_EVALUE, -1,
                  "an argument of dimension %d at start %d does not fit in "
                  "dimension %d",
                  d, ip[0], ip[1]),
           -1;
  return ip[1];
}

int rk_dim_concat(const rk_node *const *args, const int *ip, rk_error *e) {
  (void)ip;
  (void)e;
  return args[0]->dim + args[1]->dim; /* both <= RK_IR_MAX_DIM */
}

int rk_dim_onehot(const rk_node *const *args, const int *ip, rk_error *e) {
  if (args[0]->dim != 1)
    return rk_err(e, RK_EDIM, -1, "the argument has dimension %d, not 1",
                  args[0]->dim),
           -1;
  if (ip[0] < 1)
    return rk_err(e, RK_EVALUE, -1, "dimension %d must be >= 1", ip[0]), -1;
  return ip[0];
}

int rk_dim_sumt(const rk_node *const *args, const int *ip, rk_error *e) {
  return rk_dim_onehot(args, ip, e);
}

int rk_dim_matvec(const rk_node *const *args, const int *ip, rk_error *e) {
  (void)ip;
  int da = args[0]->dim, dv = args[1]->dim;
  if (da % dv != 0)
    return rk_err(e, RK_EDIM, -1,
                  "matrix dimension %d is not a multiple of vector dimension "
                  "%d",
                  da, dv),
           -1;
  return da / dv;
}

int rk_dim_vecmat(const rk_node *const *args, const int *ip, rk_error *e) {
  (void)ip;
  int dv = args[0]->dim, da = args[1]->dim;
  if (da % dv != 0)
    return rk_err(e, RK_EDIM, -1,
                  "matrix dimension %d is not a multiple of vector dimension "
                  "%d",
                  da, dv),
           -1;
  return da / dv;
}

int rk_dim_tensorprod(const rk_node *const *args, const int *ip, rk_error *e) {
  (void)ip;
  long long d = (long long)args[0]->dim * args[1]->dim;
  if (d > RK_IR_MAX_DIM)
    return rk_err(e, RK_EDIM, -1,
                  "dimensions %d and %d give dimension %lld, larger than %d",
                  args[0]->dim, args[1]->dim, d, RK_IR_MAX_DIM),
           -1;
  return (int)d;
}

/* ---- differentiation
 * ------------------------------------------------------------ */

int rk_dim_ad(const rk_node *const *args, const int *ip, rk_error *e) {
  (void)ip;
  if (args[1]->op != RK_OP_VAR)
    return rk_err(e, RK_EVALUE, -1, "the second argument must be a variable"),
           -1;
  return 1;
}

int rk_ir_dim_ad(int op, const rk_node *const *args, rk_error *e) {
  int df = args[0]->dim, dv = args[1]->dim;
  switch (op) {
  case RK_OP_GRAD: /* Grad(f, x, eta): eta has f's dimension */
    if (args[2]->dim != df)
      return rk_err(e, RK_EDIM, -1,
                    "the gradient input has dimension %d, the formula %d",
                    args[2]->dim, df),
             -1;
    return dv;
  case RK_OP_DIFF: /* Diff(f, x, u): u has x's dimension */
    if (args[2]->dim != dv)
      return rk_err(e, RK_EDIM, -1,
                    "the direction has dimension %d, the variable %d",
                    args[2]->dim, dv),
             -1;
    return df;
  case RK_OP_LAPLACIAN:
    if (df != 1)
      return rk_err(e, RK_EDIM, -1, "the formula has dimension %d, not 1", df),
             -1;
    return 1;
  case RK_OP_DIVERGENCE:
    if (df != dv)
      return rk_err(e, RK_EDIM, -1,
                    "dimensions %d (formula) and %d (variable) must be equal",
                    df, dv),
             -1;
    return 1;
  default:
    return rk_err(e, RK_EINTERNAL, -1, "not a differentiation op"), -1;
  }
}
