/*
 * red-lse.c -- the LogSumExp unit (red-unit.h): LogSumExp (acc_m, the
 * running max, and acc[1], the sum of exp(f - acc_m)), LogSumExpWeight
 * (acc_m, acc[e] the sum of exp(f - acc_m) * w) and SumSoftMaxWeight
 * (acc_m, acc_z the sum of exp(f - acc_m), acc[e]).  LogSumExp propagates
 * NaN and handles +-Inf; empty: LogSumExp -Inf, SumSoftMaxWeight NaN (also
 * when every f is -Inf: 0 / 0).
 */
#include <stdio.h>

#include "red-unit.h"

static int ssm_of(const rk_formula *f) {
  return f->red == RK_RED_SUMSOFTMAXWEIGHT;
}
static int lse_n(const rk_formula *f) {
  return f->red == RK_RED_LOGSUMEXP ? 1 : rk_red_wdim(f);
}

static void lse_layout(const rk_cg *g, const rk_formula *f, rk_red_layout *L) {
  (void)g;
  L->n = lse_n(f);
  L->vtype = "T";
  L->tile = 0;
  L->second = NULL;
  L->stype = "T";
  L->sinit = "0";
  L->m = 1;
  L->z = ssm_of(f);
  L->init = "0";
}

/* the branch-free fold: with d = rk_m2 - acc_m (0 when they are equal, so
   +-Inf against itself gives no Inf - Inf) and e = exp(-|d|), a new
   maximum (d > 0) makes acc = acc * e + w, any other point acc += e * w;
   one exp per point, every lane runs the same instructions.  A NaN max
   gives d = NaN, e = NaN, which poisons the sums.  The arguments are those
   of lse_fold, below. */
static void lse_fold_select(rk_cg *g, const rk_formula *f, const char *acc,
                            const char *w1, const char *wz) {
  int n = lse_n(f), ssm = ssm_of(f);
  char t[RK_RED_MAXE];
  const char *c;
  rk_cg_line(g, "T rk_d = rk_m2 == %s_m ? (T)0 : rk_m2 - %s_m;", acc, acc);
  rk_cg_line(g, "T rk_e = RK_EXPS(-RK_ABSS(rk_d));");
  rk_cg_line(g, "const int rk_up = rk_d > 0;");
  c = rk_red_cloop(g, n);
  rk_red_pat1(t, w1, c);
  rk_cg_line(g, "%s[%s] = rk_up ? %s[%s] * rk_e + %s : %s[%s] + rk_e * %s;",
             acc, c, acc, c, t, acc, c, t);
  rk_red_cend(g);
  if (ssm)
    rk_cg_line(g, "%s_z = rk_up ? %s_z * rk_e + %s : %s_z + rk_e * %s;", acc,
               acc, wz, acc, wz);
  rk_cg_line(g, "%s_m = rk_up ? rk_m2 : %s_m;", acc, acc);
}

/* fold a (max rk_m2, sums) pair into a LogSumExp-like state: when rk_m2 is
   the larger max, rescale acc first; then add the pair scaled by
   exp(rk_m2 - acc_m), or by 1 when the maxima are equal (+-Inf included,
   so no Inf - Inf).  A NaN max makes the scale NaN, which poisons the sums.
   One rare branch and one select per point: the CPU's fold (the CUDA
   kernels use lse_fold_select, above, unless RKEOPS_CUDA_LSE=0).
   w1: pattern (%s: component) of the sums of the other side (a point: its
   weight, or 1); wz: its acc_z. */
static void lse_fold(rk_cg *g, const rk_formula *f, const char *acc,
                     const char *w1, const char *wz) {
  if (g->lse_select) {
    lse_fold_select(g, f, acc, w1, wz);
    return;
  }
  int n = lse_n(f), ssm = ssm_of(f);
  char t[RK_RED_MAXE];
  const char *c;
  rk_cg_line(g, "if (rk_m2 > %s_m) {", acc);
  g->indent++;
  rk_cg_line(g, "T rk_a = RK_EXPS(%s_m - rk_m2);", acc);
  c = rk_red_cloop(g, n);
  rk_cg_line(g, "%s[%s] *= rk_a;", acc, c);
  rk_red_cend(g);
  if (ssm)
    rk_cg_line(g, "%s_z *= rk_a;", acc);
  rk_cg_line(g, "%s_m = rk_m2;", acc);
  g->indent--;
  rk_cg_line(g, "}");
  rk_cg_line(g, "{");
  g->indent++;
  rk_cg_line(g, "T rk_b = rk_m2 == %s_m ? (T)1 : RK_EXPS(rk_m2 - %s_m);", acc,
             acc);
  c = rk_red_cloop(g, n);
  rk_cg_line(g, "%s[%s] += rk_b * %s;", acc, c, rk_red_pat1(t, w1, c));
  rk_red_cend(g);
  if (ssm)
    rk_cg_line(g, "%s_z += rk_b * %s;", acc, wz);
  g->indent--;
  rk_cg_line(g, "}");
}

/* a point is (max f, sums 1 / w) */
static void lse_update(rk_cg *g, const rk_formula *f, const char *acc,
                       const char *fpat, const char *wpat, const char *jexpr) {
  (void)jexpr;
  char t[RK_RED_MAXE];
  rk_cg_line(g, "T rk_m2 = %s;", rk_red_pat1(t, fpat, "0"));
  if (f->red == RK_RED_LOGSUMEXP)
    lse_fold(g, f, acc, "(T)1", "(T)1");
  else
    lse_fold(g, f, acc, wpat, "(T)1");
}

static void lse_merge(rk_cg *g, const rk_formula *f, const char *acc,
                      const char *acc2) {
  char w1[RK_RED_MAXE], wz[RK_RED_MAXE];
  rk_cg_line(g, "T rk_m2 = %s_m;", acc2);
  snprintf(w1, sizeof w1, "%s[%%s]", acc2);
  snprintf(wz, sizeof wz, "%s_z", acc2);
  lse_fold(g, f, acc, w1, ssm_of(f) ? wz : "0");
}

static void lse_final(rk_cg *g, const rk_formula *f, const char *acc,
                      const char *outpat) {
  char t[RK_RED_MAXE];
  const char *c = rk_red_cloop(g, lse_n(f));
  if (!ssm_of(f)) {
    rk_cg_line(g, "%s = (double)(%s_m + RK_LOGS(%s[%s]));",
               rk_red_pat1(t, outpat, c), acc, acc, c);
  } else { /* NaN when the max is NaN or -Inf (every f -Inf, or no point:
              the softmax is 0 / 0) */
    rk_cg_line(g,
               "%s = !(%s_m > -RK_INF) ? (double)RK_NAN : "
               "(double)(%s[%s] / %s_z);",
               rk_red_pat1(t, outpat, c), acc, acc, c, acc);
  }
  rk_red_cend(g);
}

/* With L the LogSumExp of f (a forward output) and, for SumSoftMaxWeight,
   O its output, the gradients are Sum reductions of Grad(body, x, eta):
     LogSumExp(f)            body exp(f - L)
     LogSumExpWeight(f, w)   body exp(f - L) w       (L: its own output)
     SumSoftMaxWeight(f, w)  body exp(f - L) (w - O)
   Inside Grad, L and O are constants: the derivative of the normalisation
   is already written out in these bodies. */
static int lse_grad(rk_ctx *c, const rk_formula *f, int pos0, int cat,
                    rk_red_grad *gr, rk_error *e) {
  int r = f->red;
  gr->nfwd = r == RK_RED_SUMSOFTMAXWEIGHT ? 2 : 1;
  gr->fwd_red[0] = r == RK_RED_SUMSOFTMAXWEIGHT ? RK_RED_LOGSUMEXP : r;
  gr->fwd_dim[0] = r == RK_RED_LOGSUMEXPWEIGHT ? f->outdim : 1;
  gr->fwd_name[0] = "rkeops_lse";
  gr->fwd_red[1] = r;
  gr->fwd_dim[1] = f->outdim;
  gr->fwd_name[1] = "rkeops_out";
  const rk_node *L = rk_var(c, pos0, gr->fwd_dim[0], cat, e);
  const rk_node *p =
      rk_op1(c, RK_OP_EXP, rk_op2(c, RK_OP_SUBTRACT, f->f, L, e), e);
  if (r == RK_RED_LOGSUMEXPWEIGHT)
    p = rk_op2(c, RK_OP_MULT, p, f->w, e);
  else if (r == RK_RED_SUMSOFTMAXWEIGHT)
    p = rk_op2(c, RK_OP_MULT, p,
               rk_op2(c, RK_OP_SUBTRACT, f->w,
                      rk_var(c, pos0 + 1, gr->fwd_dim[1], cat, e), e),
               e);
  gr->body = p;
  return p != NULL ? RK_OK : e->code;
}

const rk_red_unit rk_red_unit_lse = {"lse",     lse_layout, lse_update, NULL,
                                     lse_merge, lse_final,  lse_grad};
