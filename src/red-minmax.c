/*
 * red-minmax.c -- the Min/Max unit (red-unit.h): Min, Max (acc[d]), ArgMin,
 * ArgMax, Min_ArgMin, Max_ArgMax (acc[d] values, acc_i[d] 0-based indices,
 * -1: none).  Min/Max propagate NaN (R's min(), max()); the Arg forms
 * ignore NaN unless all are NaN (then the first index); ties go to the
 * smallest index.  Empty: Min +Inf, Max -Inf, Arg* NaN.
 */
#include <stdio.h>

#include "red-unit.h"

static int is_arg(int r) {
  return r == RK_RED_ARGMIN || r == RK_RED_ARGMAX || r == RK_RED_MIN_ARGMIN ||
         r == RK_RED_MAX_ARGMAX;
}
static int is_max(int r) {
  return r == RK_RED_MAX || r == RK_RED_ARGMAX || r == RK_RED_MAX_ARGMAX;
}

static void mm_layout(const rk_cg *g, const rk_formula *f, rk_red_layout *L) {
  (void)g;
  L->n = rk_red_fdim(f);
  L->vtype = "T";
  L->tile = 0;
  L->second = is_arg(f->red) ? "_i" : NULL;
  L->stype = "long long";
  L->sinit = "-1";
  L->m = L->z = 0;
  L->init = is_max(f->red) ? "-RK_INF" : "RK_INF";
}

static void mm_update(rk_cg *g, const rk_formula *f, const char *acc,
                      const char *fpat, const char *wpat, const char *jexpr) {
  (void)wpat;
  int r = f->red;
  char t[RK_RED_MAXE];
  const char *c = rk_red_cloop(g, rk_red_fdim(f));
  rk_cg_line(g, "T rk_x = %s;", rk_red_pat1(t, fpat, c));
  if (!is_arg(r)) {
    rk_cg_line(g, "if (rk_x %s %s[%s] || rk_x != rk_x) %s[%s] = rk_x;",
               r == RK_RED_MIN ? "<" : ">", acc, c, acc, c);
  } else {
    rk_cg_line(g, "if (%s_i[%s] < 0 || rk_x %s %s[%s] ||", acc, c,
               is_max(r) ? ">" : "<", acc, c);
    rk_cg_line(g, "    (%s[%s] != %s[%s] && rk_x == rk_x)) {", acc, c, acc, c);
    rk_cg_line(g, "  %s[%s] = rk_x;", acc, c);
    rk_cg_line(g, "  %s_i[%s] = %s;", acc, c, jexpr);
    rk_cg_line(g, "}");
  }
  rk_red_cend(g);
}

static void mm_merge(rk_cg *g, const rk_formula *f, const char *acc,
                     const char *acc2) {
  int r = f->red;
  const char *c = rk_red_cloop(g, rk_red_fdim(f));
  rk_cg_line(g, "T rk_x = %s[%s];", acc2, c);
  if (!is_arg(r)) {
    rk_cg_line(g, "if (rk_x %s %s[%s] || rk_x != rk_x) %s[%s] = rk_x;",
               r == RK_RED_MIN ? "<" : ">", acc, c, acc, c);
  } else {
    rk_cg_line(g, "if (%s_i[%s] >= 0 && (%s_i[%s] < 0 || rk_x %s %s[%s] ||",
               acc2, c, acc, c, is_max(r) ? ">" : "<", acc, c);
    rk_cg_line(g, "    (%s[%s] != %s[%s] && rk_x == rk_x))) {", acc, c, acc, c);
    rk_cg_line(g, "  %s[%s] = rk_x;", acc, c);
    rk_cg_line(g, "  %s_i[%s] = %s_i[%s];", acc, c, acc2, c);
    rk_cg_line(g, "}");
  }
  rk_red_cend(g);
}

static void mm_final(rk_cg *g, const rk_formula *f, const char *acc,
                     const char *outpat) {
  int r = f->red, d = rk_red_fdim(f);
  char t[RK_RED_MAXE], idx[96];
  const char *c = rk_red_cloop(g, d);
  if (!is_arg(r)) {
    rk_cg_line(g, "%s = (double)%s[%s];", rk_red_pat1(t, outpat, c), acc, c);
  } else {
    int both = r == RK_RED_MIN_ARGMIN || r == RK_RED_MAX_ARGMAX;
    if (both) {
      rk_cg_line(g, "%s = (double)%s[%s];", rk_red_pat1(t, outpat, c), acc, c);
      snprintf(idx, sizeof idx, "%d + %s", d, c);
    } else {
      snprintf(idx, sizeof idx, "%s", c);
    }
    rk_cg_line(g,
               "%s = %s_i[%s] < 0 ? (double)RK_NAN : (double)(%s_i[%s] + 1);",
               rk_red_pat1(t, outpat, idx), acc, c, acc, c);
  }
  rk_red_cend(g);
}

const rk_red_unit rk_red_unit_minmax = {
    "minmax", mm_layout, mm_update, NULL, mm_merge, mm_final, NULL};
