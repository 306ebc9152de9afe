/*
 * cg-reduce.c -- reduction snippets on scalars of type T, shared by the CPU
 * and CUDA skeletons (see cg.h).  The state of one output row is a set of
 * local C variables whose names start with the prefix `acc`:
 *
 *   Sum               acc[d]  (kahan_scheme: + compensation acc_c[d];
 *                     block_sum in float32: acc is double, and with
 *                     g->tile_sums a float tile sum acc_t[d], added into
 *                     acc by rk_cg_red_flush at the end of each tile)
 *   Min, Max          acc[d]
 *   Arg*, *_Arg*      acc[d] values, acc_i[d] 0-based indices (-1: none)
 *   KMin & co         acc[d*K], acc_i[d*K]: per component c a sorted list
 *                     at [c*K .. c*K+K), empty slots: value NaN, index -1
 *   LogSumExp         acc_m (running max), acc[1] sum of exp(f - acc_m)
 *   LogSumExpWeight   acc_m, acc[e] sum of exp(f - acc_m) * w
 *   SumSoftMaxWeight  acc_m, acc_z (sum of exp(f - acc_m)), acc[e]
 *
 * Semantics (R-like): Min/Max propagate NaN; Arg* ignore NaN unless all
 * are NaN (then the first index); ties go to the smallest index; KMin sorts
 * like order() (NaN last, ties by index); LogSumExp propagates NaN,
 * handles +-Inf; empty reductions give Sum 0, Min +Inf, Max -Inf, Arg*
 * NaN, LogSumExp -Inf, SumSoftMaxWeight NaN (also when every f is -Inf:
 * 0 / 0); KMin slots beyond the number of points give value +Inf, index
 * NaN (K > n).  Indices are written 1-based.
 * Uses RK_INF, RK_NAN, RK_EXPS, RK_LOGS and "long long" from the prelude.
 */
#include <stdio.h>
#include <string.h>

#include "cg.h"

enum { MAXE = 256 };

/* expand pattern pat (one %s) with component expression c into out */
static const char *pat1(char *out, const char *pat, const char *c) {
  snprintf(out, MAXE, pat, c);
  return out;
}

static int red_fdim(const rk_formula *f) {
  return f->f->dim;
}
static int red_wdim(const rk_formula *f) {
  return f->w ? f->w->dim : 0;
}

/* kinds of reductions */
static int is_arg(int r) {
  return r == RK_RED_ARGMIN || r == RK_RED_ARGMAX || r == RK_RED_MIN_ARGMIN ||
         r == RK_RED_MAX_ARGMAX;
}
static int is_kmin(int r) {
  return r == RK_RED_KMIN || r == RK_RED_ARGKMIN || r == RK_RED_KMIN_ARGKMIN;
}
static int is_lse(int r) {
  return r == RK_RED_LOGSUMEXP || r == RK_RED_LOGSUMEXPWEIGHT ||
         r == RK_RED_SUMSOFTMAXWEIGHT;
}
static int is_max(int r) {
  return r == RK_RED_MAX || r == RK_RED_ARGMAX || r == RK_RED_MAX_ARGMAX;
}
static int kahan(const rk_formula *f) {
  return f->red == RK_RED_SUM && f->scheme == RK_SCHEME_KAHAN;
}
/* block_sum of a float32 Sum: acc[] is a double accumulator (the state,
   the merge and the result read it); the points are added either directly
   into it (the CPU, whose fast path already adds float tile sums), or, with
   g->tile_sums (CUDA), into a float partial sum acc_t[] of the tile that
   rk_cg_red_flush adds into acc */
static int blocked(const rk_cg *g, const rk_formula *f) {
  return f->red == RK_RED_SUM && f->scheme == RK_SCHEME_BLOCK &&
         g->precision == 32;
}
static const char *acc_type(const rk_cg *g, const rk_formula *f) {
  return blocked(g, f) ? "double" : "T";
}
/* length of the value array acc[] */
static int nacc(const rk_formula *f) {
  if (is_kmin(f->red))
    return red_fdim(f) * f->K;
  if (f->red == RK_RED_LOGSUMEXP)
    return 1;
  if (is_lse(f->red))
    return red_wdim(f);
  return red_fdim(f);
}

int rk_cg_red_state_size(const rk_formula *f) {
  int n = nacc(f);
  if (kahan(f) || is_arg(f->red) || is_kmin(f->red))
    return 2 * n;
  if (f->red == RK_RED_SUMSOFTMAXWEIGHT)
    return n + 2;
  if (is_lse(f->red))
    return n + 1;
  return n;
}

void rk_cg_red_decl(rk_cg *g, const rk_formula *f, const char *acc) {
  int n = nacc(f), tiles = blocked(g, f) && g->tile_sums;
  rk_cg_line(g, "%s %s[%d];", acc_type(g, f), acc, n);
  if (tiles)
    rk_cg_line(g, "T %s_t[%d];", acc, n);
  if (kahan(f))
    rk_cg_line(g, "T %s_c[%d];", acc, n);
  if (is_arg(f->red) || is_kmin(f->red))
    rk_cg_line(g, "long long %s_i[%d];", acc, n);
  if (is_lse(f->red))
    rk_cg_line(g, "T %s_m;", acc);
  if (f->red == RK_RED_SUMSOFTMAXWEIGHT)
    rk_cg_line(g, "T %s_z;", acc);
  /* not every snippet reads every part of the state */
  rk_cg_line(g, "(void)%s;", acc);
  if (tiles)
    rk_cg_line(g, "(void)%s_t;", acc);
  if (kahan(f))
    rk_cg_line(g, "(void)%s_c;", acc);
  if (is_arg(f->red) || is_kmin(f->red))
    rk_cg_line(g, "(void)%s_i;", acc);
  if (is_lse(f->red))
    rk_cg_line(g, "(void)%s_m;", acc);
  if (f->red == RK_RED_SUMSOFTMAXWEIGHT)
    rk_cg_line(g, "(void)%s_z;", acc);
}

void rk_cg_red_init(rk_cg *g, const rk_formula *f, const char *acc) {
  int n = nacc(f), r = f->red;
  const char *v = "0";
  if (is_kmin(r))
    v = "RK_NAN"; /* empty slot (its index is -1) */
  else if (r == RK_RED_MIN || r == RK_RED_ARGMIN || r == RK_RED_MIN_ARGMIN)
    v = "RK_INF";
  else if (is_max(r))
    v = "-RK_INF";
  rk_cg_loop(g, n);
  rk_cg_line(g, "for (int rk_c = 0; rk_c < %d; rk_c++) {", n);
  rk_cg_line(g, "  %s[rk_c] = %s;", acc, v);
  if (blocked(g, f) && g->tile_sums)
    rk_cg_line(g, "  %s_t[rk_c] = 0;", acc);
  if (kahan(f))
    rk_cg_line(g, "  %s_c[rk_c] = 0;", acc);
  if (is_arg(r) || is_kmin(r))
    rk_cg_line(g, "  %s_i[rk_c] = -1;", acc);
  rk_cg_line(g, "}");
  if (is_lse(r))
    rk_cg_line(g, "%s_m = -RK_INF;", acc);
  if (r == RK_RED_SUMSOFTMAXWEIGHT)
    rk_cg_line(g, "%s_z = 0;", acc);
}

/* open "for rk_c < n" (or nothing when n == 1); returns the index text */
static const char *cloop(rk_cg *g, int n) {
  if (n == 1) {
    rk_cg_line(g, "{");
    g->indent++;
    return "0";
  }
  rk_cg_loop(g, n);
  rk_cg_line(g, "for (int rk_c = 0; rk_c < %d; rk_c++) {", n);
  g->indent++;
  return "rk_c";
}
static void cend(rk_cg *g) {
  g->indent--;
  rk_cg_line(g, "}");
}

/* KMin insertion of (rk_x, rk_j) into the list of component c */
static void kmin_insert(rk_cg *g, const char *acc, int K, const char *c) {
  rk_cg_line(g, "long long *rk_li = %s_i + %s * %d;", acc, c, K);
  rk_cg_line(g, "T *rk_lv = %s + %s * %d;", acc, c, K);
  /* empty slots hold NaN, so the usual rejection is one comparison */
  rk_cg_line(g, "if (!(rk_x >= rk_lv[%d]) &&", K - 1);
  rk_cg_line(g, "    (rk_li[%d] < 0 || rk_x < rk_lv[%d] ||", K - 1, K - 1);
  rk_cg_line(g, "     (rk_lv[%d] != rk_lv[%d] && rk_x == rk_x))) {", K - 1,
             K - 1);
  rk_cg_line(g, "  int rk_p = %d;", K - 1);
  rk_cg_line(g, "  while (rk_p > 0 && !(rk_li[rk_p - 1] >= 0 &&");
  rk_cg_line(g, "                      (rk_x != rk_x || rk_lv[rk_p - 1] <= "
                "rk_x))) {");
  rk_cg_line(g, "    rk_lv[rk_p] = rk_lv[rk_p - 1];");
  rk_cg_line(g, "    rk_li[rk_p] = rk_li[rk_p - 1];");
  rk_cg_line(g, "    rk_p--;");
  rk_cg_line(g, "  }");
  rk_cg_line(g, "  rk_lv[rk_p] = rk_x;");
  rk_cg_line(g, "  rk_li[rk_p] = rk_j;");
  rk_cg_line(g, "}");
}

/* the branch-free fold: with d = rk_m2 - acc_m (0 when they are equal, so
   +-Inf against itself gives no Inf - Inf) and e = exp(-|d|), a new
   maximum (d > 0) makes acc = acc * e + w, any other point acc += e * w;
   one exp per point, every lane runs the same instructions.  A NaN max
   gives d = NaN, e = NaN, which poisons the sums.  The arguments are those
   of lse_fold, below. */
static void lse_fold_select(rk_cg *g, const rk_formula *f, const char *acc,
                            const char *w1, const char *wz) {
  int n = nacc(f), ssm = f->red == RK_RED_SUMSOFTMAXWEIGHT;
  char t[MAXE];
  const char *c;
  rk_cg_line(g, "T rk_d = rk_m2 == %s_m ? (T)0 : rk_m2 - %s_m;", acc, acc);
  rk_cg_line(g, "T rk_e = RK_EXPS(-RK_ABSS(rk_d));");
  rk_cg_line(g, "const int rk_up = rk_d > 0;");
  c = cloop(g, n);
  pat1(t, w1, c);
  rk_cg_line(g, "%s[%s] = rk_up ? %s[%s] * rk_e + %s : %s[%s] + rk_e * %s;",
             acc, c, acc, c, t, acc, c, t);
  cend(g);
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
  int n = nacc(f), ssm = f->red == RK_RED_SUMSOFTMAXWEIGHT;
  char t[MAXE];
  const char *c;
  rk_cg_line(g, "if (rk_m2 > %s_m) {", acc);
  g->indent++;
  rk_cg_line(g, "T rk_a = RK_EXPS(%s_m - rk_m2);", acc);
  c = cloop(g, n);
  rk_cg_line(g, "%s[%s] *= rk_a;", acc, c);
  cend(g);
  if (ssm)
    rk_cg_line(g, "%s_z *= rk_a;", acc);
  rk_cg_line(g, "%s_m = rk_m2;", acc);
  g->indent--;
  rk_cg_line(g, "}");
  rk_cg_line(g, "{");
  g->indent++;
  rk_cg_line(g, "T rk_b = rk_m2 == %s_m ? (T)1 : RK_EXPS(rk_m2 - %s_m);", acc,
             acc);
  c = cloop(g, n);
  rk_cg_line(g, "%s[%s] += rk_b * %s;", acc, c, pat1(t, w1, c));
  cend(g);
  if (ssm)
    rk_cg_line(g, "%s_z += rk_b * %s;", acc, wz);
  g->indent--;
  rk_cg_line(g, "}");
}

void rk_cg_red_update(rk_cg *g, const rk_formula *f, const char *acc,
                      const char *fpat, const char *wpat, const char *jexpr) {
  int r = f->red, d = red_fdim(f);
  char t[MAXE];
  const char *c;
  rk_cg_line(g, "{");
  g->indent++;
  if (r == RK_RED_SUM) {
    c = cloop(g, d);
    if (kahan(f)) {
      rk_cg_line(g, "T rk_y = %s - %s_c[%s];", pat1(t, fpat, c), acc, c);
      rk_cg_line(g, "T rk_t = %s[%s] + rk_y;", acc, c);
      rk_cg_line(g, "T rk_e = (rk_t - %s[%s]) - rk_y;", acc, c);
      /* an infinite sum has a NaN compensation: drop it */
      rk_cg_line(g, "%s_c[%s] = rk_e == rk_e ? rk_e : 0;", acc, c);
      rk_cg_line(g, "%s[%s] = rk_t;", acc, c);
    } else if (blocked(g, f) && g->tile_sums) {
      rk_cg_line(g, "%s_t[%s] += %s;", acc, c, pat1(t, fpat, c));
    } else {
      rk_cg_line(g, "%s[%s] += %s;", acc, c, pat1(t, fpat, c));
    }
    cend(g);
  } else if (r == RK_RED_MIN || r == RK_RED_MAX) {
    c = cloop(g, d);
    rk_cg_line(g, "T rk_x = %s;", pat1(t, fpat, c));
    rk_cg_line(g, "if (rk_x %s %s[%s] || rk_x != rk_x) %s[%s] = rk_x;",
               r == RK_RED_MIN ? "<" : ">", acc, c, acc, c);
    cend(g);
  } else if (is_arg(r)) {
    c = cloop(g, d);
    rk_cg_line(g, "T rk_x = %s;", pat1(t, fpat, c));
    rk_cg_line(g, "if (%s_i[%s] < 0 || rk_x %s %s[%s] ||", acc, c,
               is_max(r) ? ">" : "<", acc, c);
    rk_cg_line(g, "    (%s[%s] != %s[%s] && rk_x == rk_x)) {", acc, c, acc, c);
    rk_cg_line(g, "  %s[%s] = rk_x;", acc, c);
    rk_cg_line(g, "  %s_i[%s] = %s;", acc, c, jexpr);
    rk_cg_line(g, "}");
    cend(g);
  } else if (is_kmin(r)) {
    rk_cg_line(g, "long long rk_j = %s;", jexpr);
    c = cloop(g, d);
    rk_cg_line(g, "T rk_x = %s;", pat1(t, fpat, c));
    kmin_insert(g, acc, f->K, c);
    cend(g);
  } else { /* LogSumExp family: a point is (max f, sums 1 / w) */
    rk_cg_line(g, "T rk_m2 = %s;", pat1(t, fpat, "0"));
    if (r == RK_RED_LOGSUMEXP)
      lse_fold(g, f, acc, "(T)1", "(T)1");
    else
      lse_fold(g, f, acc, wpat, "(T)1");
  }
  g->indent--;
  rk_cg_line(g, "}");
}

void rk_cg_red_flush(rk_cg *g, const rk_formula *f, const char *acc) {
  if (!blocked(g, f) || !g->tile_sums)
    return;
  int n = nacc(f);
  rk_cg_loop(g, n);
  rk_cg_line(g, "for (int rk_c = 0; rk_c < %d; rk_c++) {", n);
  rk_cg_line(g, "  %s[rk_c] += (double)%s_t[rk_c];", acc, acc);
  rk_cg_line(g, "  %s_t[rk_c] = 0;", acc);
  rk_cg_line(g, "}");
}

void rk_cg_red_merge(rk_cg *g, const rk_formula *f, const char *acc,
                     const char *acc2) {
  int r = f->red, d = red_fdim(f);
  const char *c;
  rk_cg_line(g, "{");
  g->indent++;
  if (r == RK_RED_SUM) {
    c = cloop(g, d);
    if (kahan(f)) {
      rk_cg_line(g, "T rk_y = (%s[%s] - %s_c[%s]) - %s_c[%s];", acc2, c, acc2,
                 c, acc, c);
      rk_cg_line(g, "T rk_t = %s[%s] + rk_y;", acc, c);
      rk_cg_line(g, "T rk_e = (rk_t - %s[%s]) - rk_y;", acc, c);
      rk_cg_line(g, "%s_c[%s] = rk_e == rk_e ? rk_e : 0;", acc, c);
      rk_cg_line(g, "%s[%s] = rk_t;", acc, c);
    } else {
      rk_cg_line(g, "%s[%s] += %s[%s];", acc, c, acc2, c);
    }
    cend(g);
  } else if (r == RK_RED_MIN || r == RK_RED_MAX) {
    c = cloop(g, d);
    rk_cg_line(g, "T rk_x = %s[%s];", acc2, c);
    rk_cg_line(g, "if (rk_x %s %s[%s] || rk_x != rk_x) %s[%s] = rk_x;",
               r == RK_RED_MIN ? "<" : ">", acc, c, acc, c);
    cend(g);
  } else if (is_arg(r)) {
    c = cloop(g, d);
    rk_cg_line(g, "T rk_x = %s[%s];", acc2, c);
    rk_cg_line(g, "if (%s_i[%s] >= 0 && (%s_i[%s] < 0 || rk_x %s %s[%s] ||",
               acc2, c, acc, c, is_max(r) ? ">" : "<", acc, c);
    rk_cg_line(g, "    (%s[%s] != %s[%s] && rk_x == rk_x))) {", acc, c, acc, c);
    rk_cg_line(g, "  %s[%s] = rk_x;", acc, c);
    rk_cg_line(g, "  %s_i[%s] = %s_i[%s];", acc, c, acc2, c);
    rk_cg_line(g, "}");
    cend(g);
  } else if (is_kmin(r)) {
    int K = f->K;
    c = cloop(g, d);
    rk_cg_line(g, "T rk_v1[%d];", K);
    rk_cg_line(g, "long long rk_i1[%d];", K);
    rk_cg_line(g, "int rk_a = %s * %d, rk_b = rk_a, rk_ae = rk_a + %d;", c, K,
               K);
    rk_cg_loop(g, K);
    rk_cg_line(g, "for (int rk_k = 0; rk_k < %d; rk_k++) {", K);
    /* take from acc2 when its head is strictly before acc's head */
    rk_cg_line(g, "  int rk_tb = rk_b < rk_ae && %s_i[rk_b] >= 0 &&", acc2);
    rk_cg_line(g, "      (rk_a >= rk_ae || %s_i[rk_a] < 0 ||", acc);
    rk_cg_line(g, "       (%s[rk_b] == %s[rk_b] &&", acc2, acc2);
    rk_cg_line(g, "        (%s[rk_b] < %s[rk_a] || %s[rk_a] != %s[rk_a])));",
               acc2, acc, acc, acc);
    rk_cg_line(g, "  if (rk_tb) {");
    rk_cg_line(g,
               "    rk_v1[rk_k] = %s[rk_b]; rk_i1[rk_k] = %s_i[rk_b]; "
               "rk_b++;",
               acc2, acc2);
    rk_cg_line(g, "  } else {");
    rk_cg_line(g,
               "    rk_v1[rk_k] = %s[rk_a]; rk_i1[rk_k] = %s_i[rk_a]; "
               "rk_a++;",
               acc, acc);
    rk_cg_line(g, "  }");
    rk_cg_line(g, "}");
    rk_cg_loop(g, K);
    rk_cg_line(g, "for (int rk_k = 0; rk_k < %d; rk_k++) {", K);
    rk_cg_line(g, "  %s[%s * %d + rk_k] = rk_v1[rk_k];", acc, c, K);
    rk_cg_line(g, "  %s_i[%s * %d + rk_k] = rk_i1[rk_k];", acc, c, K);
    rk_cg_line(g, "}");
    cend(g);
  } else {
    char w1[MAXE], wz[MAXE];
    rk_cg_line(g, "T rk_m2 = %s_m;", acc2);
    snprintf(w1, sizeof w1, "%s[%%s]", acc2);
    snprintf(wz, sizeof wz, "%s_z", acc2);
    lse_fold(g, f, acc, w1, r == RK_RED_SUMSOFTMAXWEIGHT ? wz : "0");
  }
  g->indent--;
  rk_cg_line(g, "}");
}

/* state slots: acc[0..n) then (acc_c | acc_i)[0..n) then acc_m, acc_z */
static void xfer(rk_cg *g, const rk_formula *f, const char *acc,
                 const char *pat, int store) {
  int n = nacc(f), r = f->red, s = n;
  char t[MAXE], idx[64];
  const char *second = kahan(f)                    ? "_c"
                       : (is_arg(r) || is_kmin(r)) ? "_i"
                                                   : NULL;
  const char *ty = second && second[1] == 'i' ? "long long" : "T";
  rk_cg_loop(g, n);
  rk_cg_line(g, "for (int rk_c = 0; rk_c < %d; rk_c++) {", n);
  if (store)
    rk_cg_line(g, "  %s = (double)%s[rk_c];", pat1(t, pat, "rk_c"), acc);
  else
    rk_cg_line(g, "  %s[rk_c] = (%s)%s;", acc, acc_type(g, f),
               pat1(t, pat, "rk_c"));
  if (second) {
    snprintf(idx, sizeof idx, "%d + rk_c", n);
    if (store)
      rk_cg_line(g, "  %s = (double)%s%s[rk_c];", pat1(t, pat, idx), acc,
                 second);
    else
      rk_cg_line(g, "  %s%s[rk_c] = (%s)%s;", acc, second, ty,
                 pat1(t, pat, idx));
    s = 2 * n;
  }
  rk_cg_line(g, "}");
  if (is_lse(r)) {
    snprintf(idx, sizeof idx, "%d", s);
    if (store)
      rk_cg_line(g, "%s = (double)%s_m;", pat1(t, pat, idx), acc);
    else
      rk_cg_line(g, "%s_m = (T)%s;", acc, pat1(t, pat, idx));
  }
  if (r == RK_RED_SUMSOFTMAXWEIGHT) {
    snprintf(idx, sizeof idx, "%d", s + 1);
    if (store)
      rk_cg_line(g, "%s = (double)%s_z;", pat1(t, pat, idx), acc);
    else
      rk_cg_line(g, "%s_z = (T)%s;", acc, pat1(t, pat, idx));
  }
}

void rk_cg_red_store(rk_cg *g, const rk_formula *f, const char *acc,
                     const char *pat) {
  xfer(g, f, acc, pat, 1);
}

void rk_cg_red_load(rk_cg *g, const rk_formula *f, const char *acc,
                    const char *pat) {
  xfer(g, f, acc, pat, 0);
}

void rk_cg_red_final(rk_cg *g, const rk_formula *f, const char *acc,
                     const char *outpat) {
  int r = f->red, d = red_fdim(f), n = nacc(f), K = f->K;
  char t[MAXE], idx[96];
  const char *c;
  rk_cg_line(g, "{");
  g->indent++;
  if (r == RK_RED_SUM || r == RK_RED_MIN || r == RK_RED_MAX) {
    c = cloop(g, d);
    rk_cg_line(g, "%s = (double)%s[%s];", pat1(t, outpat, c), acc, c);
    cend(g);
  } else if (is_arg(r)) {
    int both = r == RK_RED_MIN_ARGMIN || r == RK_RED_MAX_ARGMAX;
    c = cloop(g, d);
    if (both) {
      rk_cg_line(g, "%s = (double)%s[%s];", pat1(t, outpat, c), acc, c);
      snprintf(idx, sizeof idx, "%d + %s", d, c);
    } else {
      snprintf(idx, sizeof idx, "%s", c);
    }
    rk_cg_line(g,
               "%s = %s_i[%s] < 0 ? (double)RK_NAN : (double)(%s_i[%s] + 1);",
               pat1(t, outpat, idx), acc, c, acc, c);
    cend(g);
  } else if (is_kmin(r)) {
    rk_cg_loop(g, K);
    rk_cg_line(g, "for (int rk_k = 0; rk_k < %d; rk_k++) {", K);
    g->indent++;
    c = cloop(g, d);
    snprintf(idx, sizeof idx, "rk_k * %d + %s", d, c);
    if (r != RK_RED_ARGKMIN)
      rk_cg_line(g,
                 "%s = %s_i[%s * %d + rk_k] < 0 ? (double)RK_INF : "
                 "(double)%s[%s * %d + rk_k];",
                 pat1(t, outpat, idx), acc, c, K, acc, c, K);
    if (r == RK_RED_KMIN_ARGKMIN)
      snprintf(idx, sizeof idx, "%d + rk_k * %d + %s", K * d, d, c);
    if (r != RK_RED_KMIN) {
      rk_cg_line(g, "{ long long rk_q = %s_i[%s * %d + rk_k];", acc, c, K);
      rk_cg_line(g, "  %s = rk_q < 0 ? (double)RK_NAN : (double)(rk_q + 1); }",
                 pat1(t, outpat, idx));
    }
    cend(g);
    g->indent--;
    rk_cg_line(g, "}");
  } else if (r == RK_RED_LOGSUMEXP || r == RK_RED_LOGSUMEXPWEIGHT) {
    c = cloop(g, n);
    rk_cg_line(g, "%s = (double)(%s_m + RK_LOGS(%s[%s]));", pat1(t, outpat, c),
               acc, acc, c);
    cend(g);
  } else { /* SumSoftMaxWeight: NaN when the max is NaN or -Inf (every f
              -Inf, or no point: the softmax is 0 / 0) */
    c = cloop(g, n);
    rk_cg_line(g,
               "%s = !(%s_m > -RK_INF) ? (double)RK_NAN : "
               "(double)(%s[%s] / %s_z);",
               pat1(t, outpat, c), acc, acc, c, acc);
    cend(g);
  }
  g->indent--;
  rk_cg_line(g, "}");
}
