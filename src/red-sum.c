/*
 * red-sum.c -- the Sum unit (red-unit.h): acc[d], with the summation
 * schemes (DEVNOTES "Summation schemes"): kahan_scheme adds a compensation
 * acc_c[d]; block_sum in float32 makes acc a double accumulator (the
 * state, the merge and the result read it), the points added either
 * directly into it (the CPU, whose fast path already adds float tile
 * sums), or, with g->tile_sums (CUDA), into a float partial sum acc_t[d]
 * of the tile that flush adds into acc (g->tile_sums == 2: acc is a float
 * pair acc + acc_l, the tile sums added by a two-sum).  An empty sum is 0.
 */
#include <stdio.h>

#include "red-unit.h"

static int kahan(const rk_formula *f) {
  return f->scheme == RK_SCHEME_KAHAN;
}
static int blocked(const rk_cg *g, const rk_formula *f) {
  return g && f->scheme == RK_SCHEME_BLOCK && g->precision == 32;
}

/* g->tile_sums == 2: the accumulator is a float pair (acc + acc_l, the
   tile sums added by a compensated two-sum): no double arithmetic in the
   kernel of the points */
static int pair(const rk_cg *g, const rk_formula *f) {
  return blocked(g, f) && g->tile_sums == 2;
}

static void sum_layout(const rk_cg *g, const rk_formula *f, rk_red_layout *L) {
  L->n = rk_red_fdim(f);
  L->vtype = blocked(g, f) && !pair(g, f) ? "double" : "T";
  L->tile = blocked(g, f) && g->tile_sums;
  L->lo = pair(g, f);
  L->second = kahan(f) ? "_c" : NULL;
  L->stype = "T";
  L->sinit = "0";
  L->m = L->z = 0;
  L->init = "0";
}

static void sum_update(rk_cg *g, const rk_formula *f, const char *acc,
                       const char *fpat, const char *wpat, const char *jexpr) {
  (void)wpat;
  (void)jexpr;
  char t[RK_RED_MAXE];
  const char *c = rk_red_cloop(g, rk_red_fdim(f));
  if (kahan(f)) {
    rk_cg_line(g, "T rk_y = %s - %s_c[%s];", rk_red_pat1(t, fpat, c), acc, c);
    rk_cg_line(g, "T rk_t = %s[%s] + rk_y;", acc, c);
    rk_cg_line(g, "T rk_e = (rk_t - %s[%s]) - rk_y;", acc, c);
    /* an infinite sum has a NaN compensation: drop it */
    rk_cg_line(g, "%s_c[%s] = rk_e == rk_e ? rk_e : 0;", acc, c);
    rk_cg_line(g, "%s[%s] = rk_t;", acc, c);
  } else if (blocked(g, f) && g->tile_sums) {
    rk_cg_line(g, "%s_t[%s] += %s;", acc, c, rk_red_pat1(t, fpat, c));
  } else {
    rk_cg_line(g, "%s[%s] += %s;", acc, c, rk_red_pat1(t, fpat, c));
  }
  rk_red_cend(g);
}

static void sum_flush(rk_cg *g, const rk_formula *f, const char *acc) {
  if (!blocked(g, f) || !g->tile_sums)
    return;
  int n = rk_red_fdim(f);
  rk_cg_loop(g, n);
  rk_cg_line(g, "for (int rk_c = 0; rk_c < %d; rk_c++) {", n);
  if (pair(g, f)) { /* Knuth's two-sum of acc and the tile sum */
    rk_cg_line(g, "  const T rk_s = %s[rk_c] + %s_t[rk_c];", acc, acc);
    rk_cg_line(g, "  const T rk_b = rk_s - %s[rk_c];", acc);
    rk_cg_line(g, "  const T rk_e = (%s[rk_c] - (rk_s - rk_b)) + (%s_t[rk_c] - "
                  "rk_b);",
               acc, acc);
    /* an infinite sum has a NaN error term: drop it (the sum stays +-Inf,
       as R's; a NaN term makes rk_s NaN anyway) */
    rk_cg_line(g, "  %s_l[rk_c] += rk_e == rk_e ? rk_e : (T)0;", acc);
    rk_cg_line(g, "  %s[rk_c] = rk_s;", acc);
  } else {
    rk_cg_line(g, "  %s[rk_c] += (double)%s_t[rk_c];", acc, acc);
  }
  rk_cg_line(g, "  %s_t[rk_c] = 0;", acc);
  rk_cg_line(g, "}");
}

static void sum_merge(rk_cg *g, const rk_formula *f, const char *acc,
                      const char *acc2) {
  const char *c = rk_red_cloop(g, rk_red_fdim(f));
  if (kahan(f)) {
    rk_cg_line(g, "T rk_y = (%s[%s] - %s_c[%s]) - %s_c[%s];", acc2, c, acc2, c,
               acc, c);
    rk_cg_line(g, "T rk_t = %s[%s] + rk_y;", acc, c);
    rk_cg_line(g, "T rk_e = (rk_t - %s[%s]) - rk_y;", acc, c);
    rk_cg_line(g, "%s_c[%s] = rk_e == rk_e ? rk_e : 0;", acc, c);
    rk_cg_line(g, "%s[%s] = rk_t;", acc, c);
  } else {
    rk_cg_line(g, "%s[%s] += %s[%s];", acc, c, acc2, c);
  }
  rk_red_cend(g);
}

static void sum_final(rk_cg *g, const rk_formula *f, const char *acc,
                      const char *outpat) {
  char t[RK_RED_MAXE];
  const char *c = rk_red_cloop(g, rk_red_fdim(f));
  if (pair(g, f))
    rk_cg_line(g, "%s = (double)%s[%s] + (double)%s_l[%s];",
               rk_red_pat1(t, outpat, c), acc, c, acc, c);
  else
    rk_cg_line(g, "%s = (double)%s[%s];", rk_red_pat1(t, outpat, c), acc, c);
  rk_red_cend(g);
}

/* d/dx <eta, sum_j f> = sum_j d/dx <eta, f>: the body is f itself */
static int sum_grad(rk_ctx *c, const rk_formula *f, int pos0, int cat,
                    rk_red_grad *gr, rk_error *e) {
  (void)c;
  (void)pos0;
  (void)cat;
  (void)e;
  gr->nfwd = 0;
  gr->body = f->f;
  return RK_OK;
}

const rk_red_unit rk_red_unit_sum = {
    "sum", sum_layout, sum_update, sum_flush, sum_merge, sum_final, sum_grad};
