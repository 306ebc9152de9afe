/*
 * cg-expr.c -- the formula emitter shared by the CPU and CUDA skeletons.
 *
 * Every IR node (ops.def EMITFN) writes the code computing its value into
 * the array "rk_v n<id>[dim]"; leaves (variables, constants) are never
 * materialised: rk_cg_ref names their components directly.  A formula
 * string is never pasted: only IR nodes emit code.
 *
 * What the emitted code requires from a backend's prelude.  Each function
 * takes and returns rk_v (a GCC vector of RK_LANES lanes on the CPU, a
 * scalar T on CUDA) unless noted; the scalar semantics (KeOps
 * conventions, DEVNOTES.md) are:
 *
 *   T, rk_v         scalar type (double / float), one component's value
 *   RK_SPLAT(c)     the scalar c (any arithmetic type, cast to T) as rk_v
 *   RK_INF, RK_NAN  T constants +Inf and NaN (also used by cg-reduce.c)
 *   operators       + - * / and unary - on rk_v; += on rk_v
 *   rk_exp(x) rk_log(x) rk_sin(x) rk_cos(x) rk_tan(x) rk_asin(x)
 *   rk_acos(x) rk_atan(x) rk_sqrt(x)   the libm functions
 *   rk_atan2(y, x)  atan2
 *   rk_rsqrt(x)     x == 0 ? 0 : 1 / sqrt(x)
 *   rk_inv(x)       1 / x
 *   rk_powi(x, n)   x^n, n a C int (may be < 0: 1 / x^-n; x^0 = 1)
 *   rk_powf(x, y)   exp(y * log(x))
 *   rk_abs(x)       fabs
 *   rk_sign(x)      x > 0 ? 1 : (x < 0 ? -1 : 0)   (NaN -> 0)
 *   rk_step(x)      x < 0 ? 0 : 1                  (NaN -> 1)
 *   rk_relu(x)      x < 0 ? 0 : x
 *   rk_floor(x)     floor
 *   rk_round(x, d)  round(x * 10^d) / 10^d, d a C int, round() = half
 *                   away from zero (d = 0: round(x))
 *   rk_xlogx(x)     x == 0 ? 0 : x * log(x)
 *   rk_sinxdivx(x)  x == 0 ? 1 : sin(x) / x
 *   rk_clamp(x, a, b)  x < a ? a : (x > b ? b : x)
 *   rk_ifelse(c, a, b) c >= 0 ? a : b
 *   rk_mod(x, m, o)    x - m * floor((x - o) / m)
 *   rk_max2(a, b)   (a != a || b != b) ? NaN : (a > b ? a : b)
 *   rk_min2(a, b)   (a != a || b != b) ? NaN : (a < b ? a : b)
 *   rk_ifgt(a, b, x, y)  a > b ? x : y
 *   rk_ifeq(a, b, x, y)  a == b ? x : y
 *   plus, for cg-reduce.c (scalar T only): RK_EXPS(x), RK_LOGS(x)
 *   (scalar exp and log of T), and the C type "long long".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg.h"
#include "scalar-defs.h"

/* ---- output helpers ---------------------------------------------------- */

void rk_cg_line(rk_cg *g, const char *fmt, ...) {
  for (int i = 0; i < g->indent; i++)
    rk_buf_puts(g->b, "  ");
  va_list ap;
  va_start(ap, fmt);
  rk_buf_vprintf(g->b, fmt, ap);
  va_end(ap);
  rk_buf_putc(g->b, '\n');
}

static void loop_note(rk_cg *g, long trips, int formula) {
  const char *t = g->unroll ? g->unroll(g, trips, formula) : NULL;
  if (t)
    rk_cg_line(g, "%s", t);
}

void rk_cg_loop(rk_cg *g, long trips) {
  loop_note(g, trips, 0);
}

void rk_cg_loop_dim(rk_cg *g, long trips) {
  loop_note(g, trips, 1);
}

static void put_double(rk_buf *b, double v) {
  if (isnan(v))
    rk_buf_puts(b, "RK_SPLAT(RK_NAN)");
  else if (isinf(v))
    rk_buf_puts(b, v > 0 ? "RK_SPLAT(RK_INF)" : "RK_SPLAT(-RK_INF)");
  else
    rk_buf_printf(b, "RK_SPLAT(%.17g)", v);
}

void rk_cg_ref(rk_cg *g, const rk_node *n, const char *k) {
  const char *kk = n->dim == 1 ? "0" : k;
  switch (n->op) {
  case RK_OP_VAR:
    g->var_ref(g, n, kk);
    break;
  case RK_OP_INTCST:
    rk_buf_printf(g->b, "RK_SPLAT(%d)", n->ip[0]);
    break;
  case RK_OP_CST:
    put_double(g->b, n->dp);
    break;
  case RK_OP_ZERO:
    rk_buf_puts(g->b, "RK_SPLAT(0)");
    break;
  default:
    rk_buf_printf(g->b, "n%d[%s]", n->id, kk);
  }
}

/* start a line at the current indentation (to be finished with rk_buf_*) */
static void bol(rk_cg *g) {
  for (int i = 0; i < g->indent; i++)
    rk_buf_puts(g->b, "  ");
}

static void decl(rk_cg *g, const rk_node *n) {
  rk_cg_line(g, "rk_v n%d[%d];", n->id, n->dim);
}

/* "for (int V = A; V < B; V++) {" with indentation; close with endfor */
static void forl(rk_cg *g, const char *v, int a, int b) {
  rk_cg_loop_dim(g, a == 0 ? b : -1);
  rk_cg_line(g, "for (int %s = %d; %s < %d; %s++) {", v, a, v, b, v);
  g->indent++;
}

static void endb(rk_cg *g) {
  g->indent--;
  rk_cg_line(g, "}");
}

static void openb(rk_cg *g) {
  rk_cg_line(g, "{");
  g->indent++;
}

/* ---- leaves and the generic elementwise emitter -------------------------- */

void rk_emit_leaf(rk_cg *g, const rk_node *n) {
  (void)g;
  (void)n; /* leaves are referenced in place by rk_cg_ref */
}

/* write CEXPR with %0..%2 -> components (index k), %p0.. -> int params */
static void put_cexpr(rk_cg *g, const rk_node *n, const char *t,
                      const char *k) {
  for (const char *p = t; *p; p++) {
    if (p[0] == '%' && p[1] >= '0' && p[1] <= '2') {
      int a = p[1] - '0';
      rk_cg_ref(g, n->args[a], k);
      p++;
    } else if (p[0] == '%' && p[1] == 'p' && p[2] >= '0' && p[2] <= '2') {
      rk_buf_printf(g->b, "%d", n->ip[p[2] - '0']);
      p += 2;
    } else {
      rk_buf_putc(g->b, *p);
    }
  }
}

static int invariant_factor(const rk_cg *g, const rk_node *x) {
  for (;;) {
    if (x->op == RK_OP_CST || x->op == RK_OP_INTCST)
      return 1;
    if (x->op == RK_OP_VAR)
      return x->ip[2] == RK_CAT_P || x->ip[2] == g->inv_cat;
    if (x->op != RK_OP_MINUS)
      return 0;
    x = x->args[0];
  }
}

/* a divisor invariant over the reduction for g->rcp_divide: a constant,
   a parameter or a variable of category inv_cat, or elementwise
   arithmetic of those (a few levels deep) */
static int invariant_divisor(const rk_cg *g, const rk_node *x, int depth) {
  if (x->op == RK_OP_CST || x->op == RK_OP_INTCST)
    return 1;
  if (x->op == RK_OP_VAR)
    return x->ip[2] == RK_CAT_P || x->ip[2] == g->inv_cat;
  if (depth >= 4)
    return 0;
  switch (x->op) {
  case RK_OP_MINUS:
  case RK_OP_SQUARE:
    return invariant_divisor(g, x->args[0], depth + 1);
  case RK_OP_ADD:
  case RK_OP_SUBTRACT:
  case RK_OP_MULT:
    return invariant_divisor(g, x->args[0], depth + 1) &&
           invariant_divisor(g, x->args[1], depth + 1);
  default:
    return 0;
  }
}

/* Exp(Mult(a, b)) as RK_EXP2S((a * RK_LOG2E) * b), and (rcp_divide)
   Exp(Divide(b, a)) as RK_EXP2S((RK_LOG2E / a) * b), see cg.h */
static int emit_exp2_fold(rk_cg *g, const rk_node *n) {
  const rk_node *m = n->args[0], *a, *b;
  int div = 0;
  if (!g->exp2_fold || n->op != RK_OP_EXP ||
      (m->op != RK_OP_MULT && !(m->op == RK_OP_DIVIDE && g->rcp_divide)))
    return 0;
  if (m->op == RK_OP_DIVIDE) {
    if (!invariant_divisor(g, m->args[1], 0) ||
        m->args[1]->dim != m->args[0]->dim)
      return 0;
    a = m->args[1];
    b = m->args[0];
    div = 1;
  } else if (invariant_factor(g, m->args[0])) {
    a = m->args[0];
    b = m->args[1];
  } else if (invariant_factor(g, m->args[1])) {
    a = m->args[1];
    b = m->args[0];
  } else {
    return 0;
  }
  const char *k = n->dim == 1 ? "0" : "k";
  decl(g, n);
  if (n->dim > 1)
    forl(g, "k", 0, n->dim);
  bol(g);
  rk_buf_printf(g->b, "n%d[%s] = RK_EXP2S((", n->id, k);
  if (div) {
    rk_buf_puts(g->b, "RK_LOG2E / ");
    rk_cg_ref(g, a, k);
    rk_buf_puts(g->b, ") * ");
  } else {
    rk_cg_ref(g, a, k);
    rk_buf_puts(g->b, " * RK_LOG2E) * ");
  }
  rk_cg_ref(g, b, k);
  rk_buf_puts(g->b, ");\n");
  if (n->dim > 1)
    endb(g);
  return 1;
}

/* Divide(a, b) with b invariant over the reduction as a * (1 / b): the
   compiler hoists the reciprocal out of the loop over the points (it may
   not turn a / b into a multiplication itself) */
static int emit_rcp_divide(rk_cg *g, const rk_node *n) {
  if (!g->rcp_divide || n->op != RK_OP_DIVIDE ||
      !invariant_divisor(g, n->args[1], 0) ||
      invariant_divisor(g, n->args[0], 0))
    return 0;
  const char *k = n->dim == 1 ? "0" : "k";
  decl(g, n);
  if (n->dim > 1)
    forl(g, "k", 0, n->dim);
  bol(g);
  rk_buf_printf(g->b, "n%d[%s] = (", n->id, k);
  rk_cg_ref(g, n->args[0], k);
  rk_buf_puts(g->b, " * (RK_SPLAT(1) / ");
  rk_cg_ref(g, n->args[1], k);
  rk_buf_puts(g->b, "));\n");
  if (n->dim > 1)
    endb(g);
  return 1;
}

void rk_emit_elem(rk_cg *g, const rk_node *n) {
  const char *t = rk_ops[n->op].cexpr;
  if (emit_exp2_fold(g, n) || emit_rcp_divide(g, n))
    return;
  decl(g, n);
  if (n->dim == 1) {
    bol(g);
    rk_buf_printf(g->b, "n%d[0] = ", n->id);
    put_cexpr(g, n, t, "0");
    rk_buf_puts(g->b, ";\n");
    return;
  }
  forl(g, "k", 0, n->dim);
  bol(g);
  rk_buf_printf(g->b, "n%d[k] = ", n->id);
  put_cexpr(g, n, t, "k");
  rk_buf_puts(g->b, ";\n");
  endb(g);
}

/* ---- helpers for the special emitters ------------------------------------ */

/* "DST = EXPR(a, k);" where the line is: prefix ref(a,k) mid ref(b,k) end */
static void assign2(rk_cg *g, const char *lhs, const char *op, const rk_node *a,
                    const char *ka, const char *mid, const rk_node *b,
                    const char *kb, const char *end) {
  bol(g);
  rk_buf_printf(g->b, "%s%s", lhs, op);
  rk_cg_ref(g, a, ka);
  if (b) {
    rk_buf_puts(g->b, mid);
    rk_cg_ref(g, b, kb);
  }
  rk_buf_puts(g->b, end);
  rk_buf_putc(g->b, '\n');
}

/* n<id>[0] = fold over the components of a with "acc = F(acc, a[k])" */
static void fold1(rk_cg *g, const rk_node *n, const rk_node *a, const char *pre,
                  const char *mid, const char *end) {
  decl(g, n);
  openb(g);
  assign2(g, "rk_v rk_a", " = ", a, "0", NULL, NULL, NULL, ";");
  if (a->dim > 1) {
    forl(g, "k", 1, a->dim);
    bol(g);
    rk_buf_printf(g->b, "rk_a = %s", pre);
    rk_cg_ref(g, a, "k");
    rk_buf_printf(g->b, "%s%s\n", mid, end);
    endb(g);
  }
  rk_cg_line(g, "n%d[0] = rk_a;", n->id);
  endb(g);
}

void rk_emit_sum(rk_cg *g, const rk_node *n) {
  fold1(g, n, n->args[0], "rk_a + ", "", ";");
}

void rk_emit_max(rk_cg *g, const rk_node *n) {
  fold1(g, n, n->args[0], "rk_max2(rk_a, ", ")", ";");
}

void rk_emit_min(rk_cg *g, const rk_node *n) {
  fold1(g, n, n->args[0], "rk_min2(rk_a, ", ")", ";");
}

/* first index of the max (gt) / min (lt, by swapping operands) */
static void emit_arg(rk_cg *g, const rk_node *n, int ismax) {
  const rk_node *a = n->args[0];
  decl(g, n);
  if (a->dim == 1) {
    rk_cg_line(g, "n%d[0] = RK_SPLAT(0);", n->id);
    return;
  }
  openb(g);
  assign2(g, "rk_v rk_m", " = ", a, "0", NULL, NULL, NULL, ";");
  rk_cg_line(g, "rk_v rk_i = RK_SPLAT(0);");
  forl(g, "k", 1, a->dim);
  assign2(g, "rk_v rk_x", " = ", a, "k", NULL, NULL, NULL, ";");
  if (ismax) {
    rk_cg_line(g, "rk_i = rk_ifgt(rk_x, rk_m, RK_SPLAT(k), rk_i);");
    rk_cg_line(g, "rk_m = rk_ifgt(rk_x, rk_m, rk_x, rk_m);");
  } else {
    rk_cg_line(g, "rk_i = rk_ifgt(rk_m, rk_x, RK_SPLAT(k), rk_i);");
    rk_cg_line(g, "rk_m = rk_ifgt(rk_m, rk_x, rk_x, rk_m);");
  }
  endb(g);
  rk_cg_line(g, "n%d[0] = rk_i;", n->id);
  endb(g);
}

void rk_emit_argmax(rk_cg *g, const rk_node *n) {
  emit_arg(g, n, 1);
}
void rk_emit_argmin(rk_cg *g, const rk_node *n) {
  emit_arg(g, n, 0);
}

/* n[0] = sum_k a[k] * b[k] (b NULL: a[k]^2; sub: (a[k]-b[k])^2) */
static void dot_term(rk_cg *g, const rk_node *a, const rk_node *b, int sub,
                     const char *k, const char *acc) {
  char lhs[32];
  snprintf(lhs, sizeof lhs, "%s", acc);
  if (sub) {
    assign2(g, "rk_v rk_d", " = ", a, k, " - ", b, k, ";");
    rk_cg_line(g, "%s += rk_d * rk_d;", acc);
  } else if (b) {
    assign2(g, lhs, " += ", a, k, " * ", b, k, ";");
  } else {
    assign2(g, "rk_v rk_d", " = ", a, k, NULL, NULL, NULL, ";");
    rk_cg_line(g, "%s += rk_d * rk_d;", acc);
  }
}

static void dot(rk_cg *g, const char *dst, const rk_node *a, const rk_node *b,
                int sub) {
  int d = a->dim > (b ? b->dim : 1) ? a->dim : (b ? b->dim : 1);
  const char *k = d == 1 ? "0" : "k";
  if (d >= 8) { /* 4 independent accumulators: no long latency chain */
    int d4 = d / 4 * 4;
    openb(g);
    rk_cg_line(g, "rk_v rk_s[4] = {RK_SPLAT(0), RK_SPLAT(0), RK_SPLAT(0), "
                  "RK_SPLAT(0)};");
    rk_cg_loop_dim(g, d4);
    rk_cg_line(g, "for (int k = 0; k < %d; k += 4) {", d4);
    g->indent++;
    forl(g, "l", 0, 4);
    dot_term(g, a, b, sub, "(k + l)", "rk_s[l]");
    endb(g);
    endb(g);
    if (d > d4) {
      char acc[32];
      snprintf(acc, sizeof acc, "rk_s[k - %d]", d4);
      forl(g, "k", d4, d);
      dot_term(g, a, b, sub, "k", acc);
      endb(g);
    }
    rk_cg_line(g, "%s = (rk_s[0] + rk_s[1]) + (rk_s[2] + rk_s[3]);", dst);
    endb(g);
    return;
  }
  openb(g);
  rk_cg_line(g, "rk_v rk_s = RK_SPLAT(0);");
  if (d > 1)
    forl(g, "k", 0, d);
  if (sub) {
    assign2(g, "rk_v rk_d", " = ", a, k, " - ", b, k, ";");
    rk_cg_line(g, "rk_s += rk_d * rk_d;");
  } else if (b) {
    assign2(g, "rk_s", " += ", a, k, " * ", b, k, ";");
  } else {
    assign2(g, "rk_v rk_d", " = ", a, k, NULL, NULL, NULL, ";");
    rk_cg_line(g, "rk_s += rk_d * rk_d;");
  }
  if (d > 1)
    endb(g);
  rk_cg_line(g, "%s = rk_s;", dst);
  endb(g);
}

static char *nref0(char *buf, const rk_node *n) {
  snprintf(buf, 32, "n%d[0]", n->id);
  return buf;
}

void rk_emit_sqnorm2(rk_cg *g, const rk_node *n) {
  char d[32];
  decl(g, n);
  dot(g, nref0(d, n), n->args[0], NULL, 0);
}

void rk_emit_norm2(rk_cg *g, const rk_node *n) {
  char d[32];
  decl(g, n);
  dot(g, nref0(d, n), n->args[0], NULL, 0);
  rk_cg_line(g, "n%d[0] = rk_sqrt(n%d[0]);", n->id, n->id);
}

void rk_emit_scalprod(rk_cg *g, const rk_node *n) {
  char d[32];
  decl(g, n);
  dot(g, nref0(d, n), n->args[0], n->args[1], 0);
}

void rk_emit_sqdist(rk_cg *g, const rk_node *n) {
  char d[32];
  decl(g, n);
  dot(g, nref0(d, n), n->args[0], n->args[1], 1);
}

/* weighted squared norm of the local array rk_d[dx] with weights s */
static void wsq_body(rk_cg *g, const rk_node *n, const rk_node *s, int dx) {
  rk_cg_line(g, "rk_v rk_s = RK_SPLAT(0);");
  if (s->dim == 1) {
    forl(g, "k", 0, dx);
    rk_cg_line(g, "rk_s += rk_d[k] * rk_d[k];");
    endb(g);
    assign2(g, "rk_s", " = ", s, "0", NULL, NULL, NULL, " * rk_s;");
  } else if (s->dim == dx) {
    forl(g, "k", 0, dx);
    assign2(g, "rk_s", " += ", s, "k", NULL, NULL, NULL,
            " * rk_d[k] * rk_d[k];");
    endb(g);
  } else { /* s->dim == dx * dx: x^T S x, S row-major */
    char kk[64];
    snprintf(kk, sizeof kk, "(i * %d + k)", dx);
    forl(g, "i", 0, dx);
    rk_cg_line(g, "rk_v rk_t = RK_SPLAT(0);");
    forl(g, "k", 0, dx);
    assign2(g, "rk_t", " += ", s, kk, NULL, NULL, NULL, " * rk_d[k];");
    endb(g);
    rk_cg_line(g, "rk_s += rk_d[i] * rk_t;");
    endb(g);
  }
  rk_cg_line(g, "n%d[0] = rk_s;", n->id);
}

void rk_emit_wsqnorm(rk_cg *g, const rk_node *n) {
  const rk_node *s = n->args[0], *x = n->args[1];
  int dx = x->dim;
  decl(g, n);
  openb(g);
  rk_cg_line(g, "rk_v rk_d[%d];", dx);
  forl(g, "k", 0, dx);
  assign2(g, "rk_d[k]", " = ", x, "k", NULL, NULL, NULL, ";");
  endb(g);
  wsq_body(g, n, s, dx);
  endb(g);
}

void rk_emit_wsqdist(rk_cg *g, const rk_node *n) {
  const rk_node *s = n->args[0], *x = n->args[1], *y = n->args[2];
  int dx = x->dim > y->dim ? x->dim : y->dim;
  decl(g, n);
  openb(g);
  rk_cg_line(g, "rk_v rk_d[%d];", dx);
  forl(g, "k", 0, dx);
  assign2(g, "rk_d[k]", " = ", x, "k", " - ", y, "k", ";");
  endb(g);
  wsq_body(g, n, s, dx);
  endb(g);
}

void rk_emit_normalize(rk_cg *g, const rk_node *n) {
  const rk_node *a = n->args[0];
  decl(g, n);
  openb(g);
  rk_cg_line(g, "rk_v rk_r;");
  dot(g, "rk_r", a, NULL, 0);
  rk_cg_line(g, "rk_r = rk_rsqrt(rk_r);");
  char lhs[48];
  snprintf(lhs, sizeof lhs, "n%d[k]", n->id);
  forl(g, "k", 0, n->dim);
  assign2(g, lhs, " = ", a, "k", NULL, NULL, NULL, " * rk_r;");
  endb(g);
  endb(g);
}

void rk_emit_elemop(rk_cg *g, const rk_node *n) {
  char k[32];
  snprintf(k, sizeof k, "%d", n->ip[0]);
  decl(g, n);
  char lhs[48];
  snprintf(lhs, sizeof lhs, "n%d[0]", n->id);
  assign2(g, lhs, " = ", n->args[0], k, NULL, NULL, NULL, ";");
}

/* out = zeros, then out[start + k] = a[k] for k < a->dim */
static void place(rk_cg *g, const rk_node *n, const rk_node *a, int start) {
  char lhs[64];
  decl(g, n);
  forl(g, "k", 0, n->dim);
  rk_cg_line(g, "n%d[k] = RK_SPLAT(0);", n->id);
  endb(g);
  if (a->dim == 1) {
    snprintf(lhs, sizeof lhs, "n%d[%d]", n->id, start);
    assign2(g, lhs, " = ", a, "0", NULL, NULL, NULL, ";");
    return;
  }
  forl(g, "k", 0, a->dim);
  snprintf(lhs, sizeof lhs, "n%d[%d + k]", n->id, start);
  assign2(g, lhs, " = ", a, "k", NULL, NULL, NULL, ";");
  endb(g);
}

void rk_emit_elemt(rk_cg *g, const rk_node *n) {
  place(g, n, n->args[0], n->ip[1]);
}

void rk_emit_extractt(rk_cg *g, const rk_node *n) {
  place(g, n, n->args[0], n->ip[0]);
}

void rk_emit_extract(rk_cg *g, const rk_node *n) {
  char k[48], lhs[48];
  decl(g, n);
  forl(g, "k", 0, n->dim);
  snprintf(k, sizeof k, "(%d + k)", n->ip[0]);
  snprintf(lhs, sizeof lhs, "n%d[k]", n->id);
  assign2(g, lhs, " = ", n->args[0], k, NULL, NULL, NULL, ";");
  endb(g);
}

void rk_emit_concat(rk_cg *g, const rk_node *n) {
  const rk_node *a = n->args[0], *b = n->args[1];
  char lhs[48];
  decl(g, n);
  forl(g, "k", 0, a->dim);
  snprintf(lhs, sizeof lhs, "n%d[k]", n->id);
  assign2(g, lhs, " = ", a, "k", NULL, NULL, NULL, ";");
  endb(g);
  forl(g, "k", 0, b->dim);
  snprintf(lhs, sizeof lhs, "n%d[%d + k]", n->id, a->dim);
  assign2(g, lhs, " = ", b, "k", NULL, NULL, NULL, ";");
  endb(g);
}

void rk_emit_onehot(rk_cg *g, const rk_node *n) {
  decl(g, n);
  openb(g);
  assign2(g, "rk_v rk_r", " = rk_round(", n->args[0], "0", NULL, NULL, NULL,
          ", 0);");
  forl(g, "k", 0, n->dim);
  rk_cg_line(g,
             "n%d[k] = rk_ifeq(rk_r, RK_SPLAT(k), RK_SPLAT(1), RK_SPLAT(0));",
             n->id);
  endb(g);
  endb(g);
}

void rk_emit_sumt(rk_cg *g, const rk_node *n) {
  char lhs[48];
  decl(g, n);
  forl(g, "k", 0, n->dim);
  snprintf(lhs, sizeof lhs, "n%d[k]", n->id);
  assign2(g, lhs, " = ", n->args[0], "0", NULL, NULL, NULL, ";");
  endb(g);
}

/* out[i] = sum_k A[i*nc + k] v[k] (matvec) or sum_k v[k] A[k*nc + i] */
static void matmul(rk_cg *g, const rk_node *n, const rk_node *A,
                   const rk_node *v, int vecmat) {
  int nk = v->dim, nc = n->dim;
  char ka[64];
  if (vecmat)
    snprintf(ka, sizeof ka, "(k * %d + i)", nc);
  else
    snprintf(ka, sizeof ka, "(i * %d + k)", nk);
  decl(g, n);
  forl(g, "i", 0, n->dim);
  rk_cg_line(g, "rk_v rk_s = RK_SPLAT(0);");
  forl(g, "k", 0, nk);
  assign2(g, "rk_s", " += ", A, ka, " * ", v, "k", ";");
  endb(g);
  rk_cg_line(g, "n%d[i] = rk_s;", n->id);
  endb(g);
}

void rk_emit_matvec(rk_cg *g, const rk_node *n) {
  matmul(g, n, n->args[0], n->args[1], 0);
}

void rk_emit_vecmat(rk_cg *g, const rk_node *n) {
  matmul(g, n, n->args[1], n->args[0], 1);
}

void rk_emit_tensorprod(rk_cg *g, const rk_node *n) {
  const rk_node *a = n->args[0], *b = n->args[1];
  char lhs[64];
  decl(g, n);
  forl(g, "i", 0, a->dim);
  forl(g, "k", 0, b->dim);
  snprintf(lhs, sizeof lhs, "n%d[i * %d + k]", n->id, b->dim);
  assign2(g, lhs, " = ", a, "i", " * ", b, "k", ";");
  endb(g);
  endb(g);
}

/* ---- the scalar definitions, as text (scalar-defs.h) ----------------------
 */

#define RK_SD_TEXT(name, params, body)                                         \
  "RK_SDQ T rk_" #name "_s" #params " " #body "\n"
const char rk_cg_scalar_src[] = RK_SCALAR_DEFS(RK_SD_TEXT);
#undef RK_SD_TEXT
#define RK_SD_ALIAS(name, params, body) "#define rk_" #name " rk_" #name "_s\n"
const char rk_cg_scalar_alias[] = RK_SCALAR_DEFS(RK_SD_ALIAS);
#undef RK_SD_ALIAS

int rk_cg_is_leaf(const rk_node *n) {
  return rk_cg_emitters[n->op] == rk_emit_leaf;
}

/* Grad & co never reach code generation (rk_cg_emit_map refuses them) */
void rk_emit_none(rk_cg *g, const rk_node *n) {
  (void)g;
  (void)n;
}

/* ---- the emitter table: one per op, by enum rk_op ------------------------ */

const rk_emit_fn rk_cg_emitters[] = {
#define X(E, name, na, nip, dimfn, emitfn, cexpr, vjpfn, fold, fok, cls) emitfn,
#include "ops.def"
#undef X
};
_Static_assert(sizeof rk_cg_emitters / sizeof rk_cg_emitters[0] == RK_OP__COUNT,
               "rk_cg_emitters needs one emitter per row of ops.def");

/* ---- the map --------------------------------------------------------------
 */

int rk_cg_emit_map(rk_cg *g, rk_ctx *c, const rk_node *const *roots, int nroots,
                   rk_error *e) {
  const rk_node **order = NULL;
  int n = rk_cg_topo(c, roots, nroots, &order);
  if (n < 0)
    return rk_err(e, RK_ENOMEM, -1, "code generation: out of memory");
  for (int i = 0; i < n; i++) {
    const rk_node *x = order[i];
    rk_emit_fn fn = rk_cg_emitters[x->op];
    if (fn == rk_emit_none) {
      free(order);
      return rk_err(e, RK_EINTERNAL, -1,
                    "code generation: operation %s cannot be emitted",
                    rk_ops[x->op].name);
    }
    fn(g, x);
  }
  free(order);
  if (g->b->oom)
    return rk_err(e, RK_ENOMEM, -1, "code generation: out of memory");
  return RK_OK;
}

/* ---- scratch topological order ----------------------------------------------
 */

int rk_cg_topo(const rk_ctx *c, const rk_node *const *roots, int nroots,
               const rk_node ***out) {
  int n = rk_ctx_nnodes(c), count = 0;
  const rk_node **order = malloc(((size_t)n + 1) * sizeof *order);
  const rk_node **stack = malloc(((size_t)n + 1) * sizeof *stack);
  int *next = malloc(((size_t)n + 1) * sizeof *next);
  unsigned char *seen = calloc((size_t)n + 1, 1);
  *out = NULL;
  if (!order || !stack || !next || !seen) {
    free(order);
    count = -1;
    goto done;
  }
  for (int r = 0; r < nroots; r++) {
    if (roots[r] == NULL || roots[r]->id < 0 || roots[r]->id > n ||
        seen[roots[r]->id])
      continue;
    int sp = 0;
    stack[sp] = roots[r];
    next[sp++] = 0;
    seen[roots[r]->id] = 1;
    while (sp > 0) { /* post-order: a node after all its arguments */
      const rk_node *t = stack[sp - 1];
      if (next[sp - 1] < t->nargs) {
        const rk_node *ch = t->args[next[sp - 1]++];
        if (ch->id >= 0 && ch->id <= n && !seen[ch->id]) {
          seen[ch->id] = 1;
          stack[sp] = ch;
          next[sp++] = 0;
        }
      } else {
        order[count++] = t;
        sp--;
      }
    }
  }
  *out = order;
done:
  free(stack);
  free(next);
  free(seen);
  return count;
}

/* ---- what a formula may cost (cg.h)
 * ------------------------------------------ */

int rk_cg_check_cost(const rk_formula *f, rk_error *e) {
  const rk_node *roots[2] = {f->f, f->w}, **order = NULL;
  int n = rk_cg_topo(f->ctx, roots, f->w ? 2 : 1, &order), ops = 0;
  long long values = 0;
  if (n < 0)
    return rk_err(e, RK_ENOMEM, -1, "code generation: out of memory");
  for (int i = 0; i < n; i++) {
    const rk_node *x = order[i];
    if (rk_cg_is_leaf(x))
      continue;
    ops++;
    values += x->dim;
  }
  free(order);
  if (ops > RK_CG_MAX_NODES)
    return rk_err(e, RK_EUNSUPPORTED, -1,
                  "the formula is too large to compile: %d operations, "
                  "more than %d (the limit RK_CG_MAX_NODES); split it into "
                  "several reductions",
                  ops, RK_CG_MAX_NODES);
  if (values > RK_CG_MAX_VALUES)
    return rk_err(e, RK_EUNSUPPORTED, -1,
                  "the formula is too large to compile: it computes %lld "
                  "values per point, more than %d (the limit "
                  "RK_CG_MAX_VALUES, the sum of the dimensions of its "
                  "operations); use smaller dimensions",
                  values, RK_CG_MAX_VALUES);
  return RK_OK;
}

int rk_cg_check_bytes(const rk_buf *out, size_t start, const char *what,
                      rk_error *e) {
  size_t n = out->len >= start ? out->len - start : 0;
  if (n <= (size_t)RK_CG_MAX_BYTES)
    return RK_OK;
  return rk_err(e, RK_EUNSUPPORTED, -1,
                "the formula is too large to compile: its generated %s "
                "source is %.1f MB, more than %.1f MB (the limit "
                "RK_CG_MAX_BYTES); split it into several reductions",
                what, (double)n / (1024.0 * 1024.0),
                (double)RK_CG_MAX_BYTES / (1024.0 * 1024.0));
}

/* ---- the configuration
 * -------------------------------------------------------- */

void rk_cg_config_default(rk_cg_config *c, int precision) {
#define RK_CG_X(name, def, env, be) c->name = (def);
  RK_CG_CONFIG_FIELDS(RK_CG_X)
#undef RK_CG_X
  c->precision = precision;
}

void rk_cg_config_key(const rk_cg_config *c, int be, rk_buf *b) {
#define RK_CG_X(name, def, env, mask)                                          \
  if ((mask)&be)                                                               \
    rk_buf_printf(b, #name "=%d ", c->name);
  RK_CG_CONFIG_FIELDS(RK_CG_X)
#undef RK_CG_X
}
