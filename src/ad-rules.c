/*
 * ad-rules.c -- reverse-mode derivative rules, one per VJPFN of ops.def.
 *
 * A rule receives the node n, the index argi of one of its formula
 * arguments and the cotangent g of n (dimension n->dim), and returns the
 * cotangent contribution to n->args[argi]: a node of that argument's
 * dimension, or of n->dim when the argument (of dimension 1) was broadcast;
 * the driver (ad.c) then sums it.  Rules are written with the ops of the
 * table only and are linear in g, so they can be differentiated again
 * (Grad of Grad, Diff by double transposition, Laplacian).
 *
 * Every node is made through rk_build (via the helpers below), so zeros
 * and ones fold and common subexpressions are shared.  The helpers return
 * NULL when one of their inputs is NULL: an error, once set, travels up.
 *
 * Conventions where the derivative is undefined (KeOps-like choices):
 *   Step, Sign, Floor, Round, ArgMax, ArgMin, OneHot: zero.
 *   Abs: Sign(x) (0 at 0).  ReLU: Step(x) (1 at 0).
 *   Max/Min over the inner dimension: g goes to the first extremal entry.
 *   Clamp(x,a,b): x gets g where a <= x <= b, a where x < a, b where x > b.
 *   IfElse(c,a,b): nothing to c; a where c >= 0, b elsewhere.
 *   Mod(x,m,o): x gets g, m gets -g Floor((x-o)/m), o nothing.
 *   Rsqrt: -n^3/2 (0 at 0, like Rsqrt itself).
 *   SinXDivX: (Cos(x) - SinXDivX(x)) / x (NaN at exactly 0).
 */
#include "ad-rules.h"

/* ---- builders that let NULL (an error) through ------------------------ */

static const rk_node *b1(rk_ctx *c, int op, const rk_node *a, rk_error *e) {
  return a ? rk_op1(c, op, a, e) : NULL;
}

static const rk_node *b2(rk_ctx *c, int op, const rk_node *a, const rk_node *b,
                         rk_error *e) {
  return (a && b) ? rk_op2(c, op, a, b, e) : NULL;
}

static const rk_node *b1i(rk_ctx *c, int op, const rk_node *a, int p0, int p1,
                          rk_error *e) {
  return a ? rk_op1i(c, op, a, p0, p1, e) : NULL;
}

/* shorthands; every rule has c, n, g and e in scope */
#define X0                 (n->args[0])
#define X1                 (n->args[1])
#define X2                 (n->args[2])
#define ICST(k)            rk_intcst(c, (k))
#define CST(v)             rk_cst(c, (v))
#define ADD(a, b)          b2(c, RK_OP_ADD, (a), (b), e)
#define SUB(a, b)          b2(c, RK_OP_SUBTRACT, (a), (b), e)
#define MUL(a, b)          b2(c, RK_OP_MULT, (a), (b), e)
#define DIV(a, b)          b2(c, RK_OP_DIVIDE, (a), (b), e)
#define NEG(a)             b1(c, RK_OP_MINUS, (a), e)
#define F1(OP, a)          b1(c, RK_OP_##OP, (a), e)
#define F2(OP, a, b)       b2(c, RK_OP_##OP, (a), (b), e)
#define F1I(OP, a, p0, p1) b1i(c, RK_OP_##OP, (a), (p0), (p1), e)
#define ZERO_ARG(k)        rk_zero(c, n->args[k]->dim)

/* the indicator 1 - Step(x): 1 where x < 0, else 0 */
static const rk_node *below(rk_ctx *c, const rk_node *x, rk_error *e) {
  return SUB(ICST(1), F1(STEP, x));
}

/* ---- leaves, non-differentiable ops ----------------------------------- */

const rk_node *rk_vjp_none(rk_ctx *c, const rk_node *n, int argi,
                           const rk_node *g, rk_error *e) {
  (void)c;
  (void)argi;
  (void)g;
  rk_err(e, RK_EINTERNAL, -1,
         "%s: no derivative rule (a leaf, or an "
         "operation expanded before differentiation)",
         rk_ops[n->op].name);
  return NULL;
}

const rk_node *rk_vjp_zero(rk_ctx *c, const rk_node *n, int argi,
                           const rk_node *g, rk_error *e) {
  (void)g;
  (void)e;
  return ZERO_ARG(argi);
}

/* ---- arithmetic --------------------------------------------------------- */

const rk_node *rk_vjp_add(rk_ctx *c, const rk_node *n, int argi,
                          const rk_node *g, rk_error *e) {
  (void)c;
  (void)n;
  (void)argi;
  (void)e;
  return g;
}

const rk_node *rk_vjp_subtract(rk_ctx *c, const rk_node *n, int argi,
                               const rk_node *g, rk_error *e) {
  (void)n;
  return argi == 0 ? g : NEG(g);
}

const rk_node *rk_vjp_mult(rk_ctx *c, const rk_node *n, int argi,
                           const rk_node *g, rk_error *e) {
  return MUL(g, argi == 0 ? X1 : X0);
}

/* a / b:  g / b  and  -g a / b^2 = -(g n) / b */
const rk_node *rk_vjp_divide(rk_ctx *c, const rk_node *n, int argi,
                             const rk_node *g, rk_error *e) {
  if (argi == 0)
    return DIV(g, X1);
  return NEG(DIV(MUL(g, n), X1));
}

const rk_node *rk_vjp_minus(rk_ctx *c, const rk_node *n, int argi,
                            const rk_node *g, rk_error *e) {
  (void)n;
  (void)argi;
  return NEG(g);
}

/* ---- elementwise functions -------------------------------------------- */

const rk_node *rk_vjp_exp(rk_ctx *c, const rk_node *n, int argi,
                          const rk_node *g, rk_error *e) {
  (void)argi;
  return MUL(g, n);
}

const rk_node *rk_vjp_log(rk_ctx *c, const rk_node *n, int argi,
                          const rk_node *g, rk_error *e) {
  (void)argi;
  return DIV(g, X0);
}

const rk_node *rk_vjp_sin(rk_ctx *c, const rk_node *n, int argi,
                          const rk_node *g, rk_error *e) {
  (void)argi;
  return MUL(g, F1(COS, X0));
}

const rk_node *rk_vjp_cos(rk_ctx *c, const rk_node *n, int argi,
                          const rk_node *g, rk_error *e) {
  (void)argi;
  return NEG(MUL(g, F1(SIN, X0)));
}

const rk_node *rk_vjp_sinh(rk_ctx *c, const rk_node *n, int argi,
                           const rk_node *g, rk_error *e) {
  (void)argi;
  return MUL(g, F1(COSH, X0));
}

const rk_node *rk_vjp_cosh(rk_ctx *c, const rk_node *n, int argi,
                           const rk_node *g, rk_error *e) {
  (void)argi;
  return MUL(g, F1(SINH, X0));
}

/* tanh' = 1 - tanh^2 */
const rk_node *rk_vjp_tanh(rk_ctx *c, const rk_node *n, int argi,
                           const rk_node *g, rk_error *e) {
  (void)argi;
  return MUL(g, SUB(ICST(1), F1(SQUARE, n)));
}

/* tan' = 1 + tan^2 */
const rk_node *rk_vjp_tan(rk_ctx *c, const rk_node *n, int argi,
                          const rk_node *g, rk_error *e) {
  (void)argi;
  return MUL(g, ADD(ICST(1), F1(SQUARE, n)));
}

/* asin' = 1 / sqrt(1 - x^2) */
const rk_node *rk_vjp_asin(rk_ctx *c, const rk_node *n, int argi,
                           const rk_node *g, rk_error *e) {
  (void)argi;
  return MUL(g, F1(RSQRT, SUB(ICST(1), F1(SQUARE, X0))));
}

const rk_node *rk_vjp_acos(rk_ctx *c, const rk_node *n, int argi,
                           const rk_node *g, rk_error *e) {
  (void)argi;
  return NEG(MUL(g, F1(RSQRT, SUB(ICST(1), F1(SQUARE, X0)))));
}

/* atan' = 1 / (1 + x^2) */
const rk_node *rk_vjp_atan(rk_ctx *c, const rk_node *n, int argi,
                           const rk_node *g, rk_error *e) {
  (void)argi;
  return DIV(g, ADD(ICST(1), F1(SQUARE, X0)));
}

/* atan2(y, x):  d/dy = x / (x^2 + y^2),  d/dx = -y / (x^2 + y^2) */
const rk_node *rk_vjp_atan2(rk_ctx *c, const rk_node *n, int argi,
                            const rk_node *g, rk_error *e) {
  const rk_node *r2 = ADD(F1(SQUARE, X0), F1(SQUARE, X1));
  if (argi == 0)
    return DIV(MUL(g, X1), r2);
  return NEG(DIV(MUL(g, X0), r2));
}

/* sqrt' = 1 / (2 sqrt x) */
const rk_node *rk_vjp_sqrt(rk_ctx *c, const rk_node *n, int argi,
                           const rk_node *g, rk_error *e) {
  (void)argi;
  return DIV(g, MUL(ICST(2), n));
}

/* rsqrt' = -rsqrt^3 / 2 */
const rk_node *rk_vjp_rsqrt(rk_ctx *c, const rk_node *n, int argi,
                            const rk_node *g, rk_error *e) {
  (void)argi;
  return MUL(CST(-0.5), MUL(g, F1I(POW, n, 3, 0)));
}

/* inv' = -inv^2 */
const rk_node *rk_vjp_inv(rk_ctx *c, const rk_node *n, int argi,
                          const rk_node *g, rk_error *e) {
  (void)argi;
  return NEG(MUL(g, F1(SQUARE, n)));
}

const rk_node *rk_vjp_square(rk_ctx *c, const rk_node *n, int argi,
                             const rk_node *g, rk_error *e) {
  (void)argi;
  return MUL(ICST(2), MUL(g, X0));
}

/* Pow(x, p)' = p x^(p-1) */
const rk_node *rk_vjp_pow(rk_ctx *c, const rk_node *n, int argi,
                          const rk_node *g, rk_error *e) {
  int p = n->ip[0];
  const rk_node *d;
  (void)argi;
  if (p == 0)
    return rk_zero(c, X0->dim);
  if (p == 1)
    return g;
  if (p == 2)
    d = X0;
  else
    d = F1I(POW, X0, p - 1, 0);
  return MUL(ICST(p), MUL(g, d));
}

/* Powf(x, y) = exp(y log x):  d/dx = y Powf(x, y-1),  d/dy = log(x) n */
const rk_node *rk_vjp_powf(rk_ctx *c, const rk_node *n, int argi,
                           const rk_node *g, rk_error *e) {
  if (argi == 0)
    return MUL(g, MUL(X1, F2(POWF, X0, SUB(X1, ICST(1)))));
  return MUL(g, MUL(n, F1(LOG, X0)));
}

const rk_node *rk_vjp_abs(rk_ctx *c, const rk_node *n, int argi,
                          const rk_node *g, rk_error *e) {
  (void)argi;
  return MUL(g, F1(SIGN, X0));
}

const rk_node *rk_vjp_relu(rk_ctx *c, const rk_node *n, int argi,
                           const rk_node *g, rk_error *e) {
  (void)argi;
  return MUL(g, F1(STEP, X0));
}

/* (x log x)' = log x + 1 */
const rk_node *rk_vjp_xlogx(rk_ctx *c, const rk_node *n, int argi,
                            const rk_node *g, rk_error *e) {
  (void)argi;
  return MUL(g, ADD(F1(LOG, X0), ICST(1)));
}

/* (sin x / x)' = (cos x - sin x / x) / x */
const rk_node *rk_vjp_sinxdivx(rk_ctx *c, const rk_node *n, int argi,
                               const rk_node *g, rk_error *e) {
  (void)argi;
  return MUL(g, DIV(SUB(F1(COS, X0), n), X0));
}

/* Clamp(x, a, b) = min(max(x, a), b) */
const rk_node *rk_vjp_clamp(rk_ctx *c, const rk_node *n, int argi,
                            const rk_node *g, rk_error *e) {
  const rk_node *x = X0, *a = X1, *b = X2;
  switch (argi) {
  case 0: /* a <= x <= b */
    return MUL(g, MUL(F1(STEP, SUB(x, a)), F1(STEP, SUB(b, x))));
  case 1: /* x < a */
    return MUL(g, below(c, SUB(x, a), e));
  default: /* x > b (and x >= a) */
    return MUL(g, MUL(F1(STEP, SUB(x, a)), below(c, SUB(b, x), e)));
  }
}

const rk_node *rk_vjp_clampint(rk_ctx *c, const rk_node *n, int argi,
                               const rk_node *g, rk_error *e) {
  const rk_node *x = X0;
  (void)argi;
  return MUL(g, MUL(F1(STEP, SUB(x, ICST(n->ip[0]))),
                    F1(STEP, SUB(ICST(n->ip[1]), x))));
}

/* IfElse(c, a, b) = c >= 0 ? a : b */
const rk_node *rk_vjp_ifelse(rk_ctx *c, const rk_node *n, int argi,
                             const rk_node *g, rk_error *e) {
  if (argi == 0)
    return ZERO_ARG(0);
  if (argi == 1)
    return MUL(g, F1(STEP, X0));
  return MUL(g, below(c, X0, e));
}

/* Mod(x, m, o) = x - m Floor((x - o) / m) */
const rk_node *rk_vjp_mod(rk_ctx *c, const rk_node *n, int argi,
                          const rk_node *g, rk_error *e) {
  if (argi == 0)
    return g;
  if (argi == 1)
    return NEG(MUL(g, F1(FLOOR, DIV(SUB(X0, X2), X1))));
  return ZERO_ARG(2);
}

/* ---- reductions over the inner dimension ------------------------------ */

const rk_node *rk_vjp_sum(rk_ctx *c, const rk_node *n, int argi,
                          const rk_node *g, rk_error *e) {
  (void)argi;
  if (X0->dim == 1)
    return g;
  return F1I(SUMT, g, X0->dim, 0);
}

/* g goes to the first maximal (minimal) component */
static const rk_node *route(rk_ctx *c, const rk_node *n, const rk_node *g,
                            int argop, rk_error *e) {
  if (X0->dim == 1)
    return g;
  return MUL(g, F1I(ONEHOT, b1(c, argop, X0, e), X0->dim, 0));
}

const rk_node *rk_vjp_max(rk_ctx *c, const rk_node *n, int argi,
                          const rk_node *g, rk_error *e) {
  (void)argi;
  return route(c, n, g, RK_OP_ARGMAX, e);
}

const rk_node *rk_vjp_min(rk_ctx *c, const rk_node *n, int argi,
                          const rk_node *g, rk_error *e) {
  (void)argi;
  return route(c, n, g, RK_OP_ARGMIN, e);
}

const rk_node *rk_vjp_sqnorm2(rk_ctx *c, const rk_node *n, int argi,
                              const rk_node *g, rk_error *e) {
  (void)argi;
  return MUL(ICST(2), MUL(g, X0));
}

/* |x|' = x / |x| (0 at 0) */
const rk_node *rk_vjp_norm2(rk_ctx *c, const rk_node *n, int argi,
                            const rk_node *g, rk_error *e) {
  (void)argi;
  return MUL(g, F1(NORMALIZE, X0));
}

const rk_node *rk_vjp_scalprod(rk_ctx *c, const rk_node *n, int argi,
                               const rk_node *g, rk_error *e) {
  return MUL(g, argi == 0 ? X1 : X0);
}

/* |a - b|^2:  2 g (a - b)  and  -2 g (a - b) */
const rk_node *rk_vjp_sqdist(rk_ctx *c, const rk_node *n, int argi,
                             const rk_node *g, rk_error *e) {
  const rk_node *d = MUL(ICST(2), MUL(g, SUB(X0, X1)));
  return argi == 0 ? d : NEG(d);
}

/* WeightedSqNorm(s, z): the contributions to s (which = 0) and to z
   (which = 1), in the three cases of dim s: 1, dim z, (dim z)^2 */
static const rk_node *wsq(rk_ctx *c, const rk_node *s, const rk_node *z,
                          const rk_node *g, int which, rk_error *e) {
  int ds = s->dim, dz = z->dim;
  if (ds == 1 || ds == dz) {
    if (which == 0)
      return MUL(g, ds == 1 ? F1(SQNORM2, z) : F1(SQUARE, z));
    return MUL(ICST(2), MUL(g, MUL(s, z)));
  }
  /* z^T S z, S row-major: dS = g z z^T, dz = g (S + S^T) z */
  if (which == 0)
    return MUL(g, F2(TENSORPROD, z, z));
  return MUL(g, ADD(F2(MATVECMULT, s, z), F2(VECMATMULT, z, s)));
}

const rk_node *rk_vjp_wsqnorm(rk_ctx *c, const rk_node *n, int argi,
                              const rk_node *g, rk_error *e) {
  return wsq(c, X0, X1, g, argi, e);
}

const rk_node *rk_vjp_wsqdist(rk_ctx *c, const rk_node *n, int argi,
                              const rk_node *g, rk_error *e) {
  const rk_node *z = SUB(X1, X2);
  if (z == NULL)
    return NULL;
  if (argi == 0)
    return wsq(c, X0, z, g, 0, e);
  if (argi == 1)
    return wsq(c, X0, z, g, 1, e);
  return NEG(wsq(c, X0, z, g, 1, e));
}

/* ---- vector operations ------------------------------------------------- */

/* n = x / |x|:  (g - n (g.n)) / |x|, written with Rsqrt (0 at x = 0) */
const rk_node *rk_vjp_normalize(rk_ctx *c, const rk_node *n, int argi,
                                const rk_node *g, rk_error *e) {
  (void)argi;
  return MUL(SUB(g, MUL(n, F2(SCALPROD, g, n))), F1(RSQRT, F1(SQNORM2, X0)));
}

const rk_node *rk_vjp_elem(rk_ctx *c, const rk_node *n, int argi,
                           const rk_node *g, rk_error *e) {
  (void)argi;
  if (X0->dim == 1)
    return g;
  return F1I(ELEMT, g, X0->dim, n->ip[0]);
}

const rk_node *rk_vjp_elemt(rk_ctx *c, const rk_node *n, int argi,
                            const rk_node *g, rk_error *e) {
  (void)argi;
  if (n->dim == 1)
    return g;
  return F1I(ELEM, g, n->ip[1], 0);
}

const rk_node *rk_vjp_extract(rk_ctx *c, const rk_node *n, int argi,
                              const rk_node *g, rk_error *e) {
  (void)argi;
  if (n->dim == X0->dim)
    return g;
  return F1I(EXTRACTT, g, n->ip[0], X0->dim);
}

const rk_node *rk_vjp_extractt(rk_ctx *c, const rk_node *n, int argi,
                               const rk_node *g, rk_error *e) {
  (void)argi;
  if (n->dim == X0->dim)
    return g;
  return F1I(EXTRACT, g, n->ip[0], X0->dim);
}

const rk_node *rk_vjp_concat(rk_ctx *c, const rk_node *n, int argi,
                             const rk_node *g, rk_error *e) {
  if (argi == 0)
    return F1I(EXTRACT, g, 0, X0->dim);
  return F1I(EXTRACT, g, X0->dim, X1->dim);
}

const rk_node *rk_vjp_sumt(rk_ctx *c, const rk_node *n, int argi,
                           const rk_node *g, rk_error *e) {
  (void)argi;
  if (n->dim == 1)
    return g;
  return F1(SUM, g);
}

/* out[i] = sum_k A[i n + k] v[k]:  dA = g v^T,  dv = A^T g */
const rk_node *rk_vjp_matvec(rk_ctx *c, const rk_node *n, int argi,
                             const rk_node *g, rk_error *e) {
  if (argi == 0)
    return F2(TENSORPROD, g, X1);
  return F2(VECMATMULT, g, X0);
}

/* out[j] = sum_k v[k] A[k n + j]:  dv = A g,  dA = v g^T */
const rk_node *rk_vjp_vecmat(rk_ctx *c, const rk_node *n, int argi,
                             const rk_node *g, rk_error *e) {
  if (argi == 0)
    return F2(MATVECMULT, X1, g);
  return F2(TENSORPROD, X0, g);
}

/* out[i db + j] = a[i] b[j]:  da = G b,  db = G^T a  (G = g as da x db) */
const rk_node *rk_vjp_tensorprod(rk_ctx *c, const rk_node *n, int argi,
                                 const rk_node *g, rk_error *e) {
  if (argi == 0)
    return F2(MATVECMULT, g, X1);
  return F2(VECMATMULT, X0, g);
}

/* ---- the table: one rule per op, by enum rk_op ------------------------- */

const rk_vjp_fn rk_ad_rules[] = {
#define X(E, name, na, nip, dimfn, emitfn, cexpr, vjpfn, fold, fok, cls) vjpfn,
#include "ops.def"
#undef X
};
_Static_assert(sizeof rk_ad_rules / sizeof rk_ad_rules[0] == RK_OP__COUNT,
               "rk_ad_rules needs one rule per row of ops.def");
