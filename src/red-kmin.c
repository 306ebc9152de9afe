/*
 * red-kmin.c -- the KMin unit (red-unit.h): KMin, ArgKMin, KMin_ArgKMin.
 * State acc[d*K], acc_i[d*K]: per component c a sorted list at
 * [c*K .. c*K+K); empty slots hold value NaN, index -1.  Lists sort like
 * order() (NaN last, ties by index); slots beyond the number of points give
 * value +Inf, index NaN (K > n).
 */
#include <stdio.h>

#include "red-unit.h"

static void kmin_layout(const rk_cg *g, const rk_formula *f, rk_red_layout *L) {
  (void)g;
  L->n = rk_red_fdim(f) * f->K;
  L->vtype = "T";
  L->tile = 0;
  L->second = "_i";
  L->stype = "long long";
  L->sinit = "-1";
  L->m = L->z = 0;
  L->init = "RK_NAN"; /* empty slot (its index is -1) */
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

static void kmin_update(rk_cg *g, const rk_formula *f, const char *acc,
                        const char *fpat, const char *wpat, const char *jexpr) {
  (void)wpat;
  char t[RK_RED_MAXE];
  rk_cg_line(g, "long long rk_j = %s;", jexpr);
  const char *c = rk_red_cloop(g, rk_red_fdim(f));
  rk_cg_line(g, "T rk_x = %s;", rk_red_pat1(t, fpat, c));
  kmin_insert(g, acc, f->K, c);
  rk_red_cend(g);
}

/* merge two sorted lists of each component, taking from acc2 when its
   head is strictly before acc's head */
static void kmin_merge(rk_cg *g, const rk_formula *f, const char *acc,
                       const char *acc2) {
  int K = f->K;
  const char *c = rk_red_cloop(g, rk_red_fdim(f));
  rk_cg_line(g, "T rk_v1[%d];", K);
  rk_cg_line(g, "long long rk_i1[%d];", K);
  rk_cg_line(g, "int rk_a = %s * %d, rk_b = rk_a, rk_ae = rk_a + %d;", c, K, K);
  rk_cg_loop(g, K);
  rk_cg_line(g, "for (int rk_k = 0; rk_k < %d; rk_k++) {", K);
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
  rk_red_cend(g);
}

static void kmin_final(rk_cg *g, const rk_formula *f, const char *acc,
                       const char *outpat) {
  int r = f->red, d = rk_red_fdim(f), K = f->K;
  char t[RK_RED_MAXE], idx[96];
  rk_cg_loop(g, K);
  rk_cg_line(g, "for (int rk_k = 0; rk_k < %d; rk_k++) {", K);
  g->indent++;
  const char *c = rk_red_cloop(g, d);
  snprintf(idx, sizeof idx, "rk_k * %d + %s", d, c);
  if (r != RK_RED_ARGKMIN)
    rk_cg_line(g,
               "%s = %s_i[%s * %d + rk_k] < 0 ? (double)RK_INF : "
               "(double)%s[%s * %d + rk_k];",
               rk_red_pat1(t, outpat, idx), acc, c, K, acc, c, K);
  if (r == RK_RED_KMIN_ARGKMIN)
    snprintf(idx, sizeof idx, "%d + rk_k * %d + %s", K * d, d, c);
  if (r != RK_RED_KMIN) {
    rk_cg_line(g, "{ long long rk_q = %s_i[%s * %d + rk_k];", acc, c, K);
    rk_cg_line(g, "  %s = rk_q < 0 ? (double)RK_NAN : (double)(rk_q + 1); }",
               rk_red_pat1(t, outpat, idx));
  }
  rk_red_cend(g);
  g->indent--;
  rk_cg_line(g, "}");
}

const rk_red_unit rk_red_unit_kmin = {
    "kmin", kmin_layout, kmin_update, NULL, kmin_merge, kmin_final, NULL};
