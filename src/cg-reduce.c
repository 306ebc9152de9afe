/*
 * cg-reduce.c -- reduction snippets on scalars of type T, shared by the CPU
 * and CUDA skeletons (see cg.h): rk_cg_red_* dispatch to the unit of the
 * formula's reduction (red-unit.h; red.def column UNIT) and write what
 * every unit shares from its state layout: the declarations, the initial
 * state, the stored partial states and their size.
 *
 * Semantics (R-like, each unit's file): Min/Max propagate NaN; Arg* ignore
 * NaN unless all are NaN (then the first index); ties go to the smallest
 * index; KMin sorts like order() (NaN last, ties by index); LogSumExp
 * propagates NaN, handles +-Inf; empty reductions give Sum 0, Min +Inf, Max
 * -Inf, Arg* NaN, LogSumExp -Inf, SumSoftMaxWeight NaN (also when every f
 * is -Inf: 0 / 0); KMin slots beyond the number of points give value +Inf,
 * index NaN (K > n).  Indices are written 1-based.
 * Uses RK_INF, RK_NAN, RK_EXPS, RK_LOGS and "long long" from the prelude.
 */
#include <stdio.h>
#include <string.h>

#include "red-unit.h"

/* ---- the units, by reduction (red.def) ---- */
static const rk_red_unit *const units[RK_RED__COUNT] = {
#define R(E, name, nf, hask, outkind, diff, unit, outdim, f1)                              \
  [RK_RED_##E] = &rk_red_unit_##unit,
#include "red.def"
#undef R
};

const rk_red_unit *rk_red_unit_of(int red) {
  return red >= 0 && red < RK_RED__COUNT ? units[red] : NULL;
}

static const rk_red_unit *unit(const rk_formula *f) {
  return units[f->red];
}

/* ---- shared helpers ---- */
const char *rk_red_pat1(char *out, const char *pat, const char *c) {
  snprintf(out, RK_RED_MAXE, pat, c);
  return out;
}

const char *rk_red_cloop(rk_cg *g, int n) {
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

void rk_red_cend(rk_cg *g) {
  g->indent--;
  rk_cg_line(g, "}");
}

int rk_red_fdim(const rk_formula *f) {
  return f->f->dim;
}
int rk_red_wdim(const rk_formula *f) {
  return f->w ? f->w->dim : 0;
}

static void layout(const rk_cg *g, const rk_formula *f, rk_red_layout *L) {
  memset(L, 0, sizeof *L);
  unit(f)->layout(g, f, L);
}

/* ---- what every unit shares ---- */
int rk_cg_red_state_size(const rk_formula *f) {
  rk_red_layout L;
  layout(NULL, f, &L);
  return L.n * (L.second ? 2 : 1) + L.m + L.z;
}

void rk_cg_red_decl(rk_cg *g, const rk_formula *f, const char *acc) {
  rk_red_layout L;
  layout(g, f, &L);
  rk_cg_line(g, "%s %s[%d];", L.vtype, acc, L.n);
  if (L.tile)
    rk_cg_line(g, "T %s_t[%d];", acc, L.n);
  if (L.lo)
    rk_cg_line(g, "T %s_l[%d];", acc, L.n);
  if (L.second)
    rk_cg_line(g, "%s %s%s[%d];", L.stype, acc, L.second, L.n);
  if (L.m)
    rk_cg_line(g, "T %s_m;", acc);
  if (L.z)
    rk_cg_line(g, "T %s_z;", acc);
  /* not every snippet reads every part of the state */
  rk_cg_line(g, "(void)%s;", acc);
  if (L.tile)
    rk_cg_line(g, "(void)%s_t;", acc);
  if (L.lo)
    rk_cg_line(g, "(void)%s_l;", acc);
  if (L.second)
    rk_cg_line(g, "(void)%s%s;", acc, L.second);
  if (L.m)
    rk_cg_line(g, "(void)%s_m;", acc);
  if (L.z)
    rk_cg_line(g, "(void)%s_z;", acc);
}

void rk_cg_red_init(rk_cg *g, const rk_formula *f, const char *acc) {
  rk_red_layout L;
  layout(g, f, &L);
  rk_cg_loop(g, L.n);
  rk_cg_line(g, "for (int rk_c = 0; rk_c < %d; rk_c++) {", L.n);
  rk_cg_line(g, "  %s[rk_c] = %s;", acc, L.init);
  if (L.tile)
    rk_cg_line(g, "  %s_t[rk_c] = 0;", acc);
  if (L.lo)
    rk_cg_line(g, "  %s_l[rk_c] = 0;", acc);
  if (L.second)
    rk_cg_line(g, "  %s%s[rk_c] = %s;", acc, L.second, L.sinit);
  rk_cg_line(g, "}");
  if (L.m)
    rk_cg_line(g, "%s_m = -RK_INF;", acc);
  if (L.z)
    rk_cg_line(g, "%s_z = 0;", acc);
}

void rk_cg_red_update(rk_cg *g, const rk_formula *f, const char *acc,
                      const char *fpat, const char *wpat, const char *jexpr) {
  rk_cg_line(g, "{");
  g->indent++;
  unit(f)->update(g, f, acc, fpat, wpat, jexpr);
  g->indent--;
  rk_cg_line(g, "}");
}

void rk_cg_red_flush(rk_cg *g, const rk_formula *f, const char *acc) {
  if (unit(f)->flush)
    unit(f)->flush(g, f, acc);
}

void rk_cg_red_merge(rk_cg *g, const rk_formula *f, const char *acc,
                     const char *acc2) {
  rk_cg_line(g, "{");
  g->indent++;
  unit(f)->merge(g, f, acc, acc2);
  g->indent--;
  rk_cg_line(g, "}");
}

/* state slots: acc[0..n) then the second array [0..n) then acc_m, acc_z */
static void xfer(rk_cg *g, const rk_formula *f, const char *acc,
                 const char *pat, int store) {
  rk_red_layout L;
  layout(g, f, &L);
  int n = L.n, s = n;
  char t[RK_RED_MAXE], idx[64];
  rk_cg_loop(g, n);
  rk_cg_line(g, "for (int rk_c = 0; rk_c < %d; rk_c++) {", n);
  if (store && L.lo) {
    rk_cg_line(g, "  %s = (double)%s[rk_c] + (double)%s_l[rk_c];",
               rk_red_pat1(t, pat, "rk_c"), acc, acc);
  } else if (store) {
    rk_cg_line(g, "  %s = (double)%s[rk_c];", rk_red_pat1(t, pat, "rk_c"), acc);
  } else if (L.lo) { /* the double split into a float pair */
    rk_cg_line(g, "  const double rk_sv = %s;", rk_red_pat1(t, pat, "rk_c"));
    rk_cg_line(g, "  %s[rk_c] = (T)rk_sv;", acc);
    /* an infinite high part (an infinite state, or one beyond float's
       range) has no low part: Inf - Inf would make the sum NaN */
    rk_cg_line(g, "  const double rk_sl = rk_sv - (double)%s[rk_c];", acc);
    rk_cg_line(g, "  %s_l[rk_c] = rk_sl - rk_sl == 0 ? (T)rk_sl : (T)0;", acc);
  } else {
    rk_cg_line(g, "  %s[rk_c] = (%s)%s;", acc, L.vtype,
               rk_red_pat1(t, pat, "rk_c"));
  }
  /* a state read in starts an empty tile */
  if (!store && L.tile)
    rk_cg_line(g, "  %s_t[rk_c] = 0;", acc);
  if (L.second) {
    snprintf(idx, sizeof idx, "%d + rk_c", n);
    if (store)
      rk_cg_line(g, "  %s = (double)%s%s[rk_c];", rk_red_pat1(t, pat, idx), acc,
                 L.second);
    else
      rk_cg_line(g, "  %s%s[rk_c] = (%s)%s;", acc, L.second, L.stype,
                 rk_red_pat1(t, pat, idx));
    s = 2 * n;
  }
  rk_cg_line(g, "}");
  if (L.m) {
    snprintf(idx, sizeof idx, "%d", s);
    if (store)
      rk_cg_line(g, "%s = (double)%s_m;", rk_red_pat1(t, pat, idx), acc);
    else
      rk_cg_line(g, "%s_m = (T)%s;", acc, rk_red_pat1(t, pat, idx));
  }
  if (L.z) {
    snprintf(idx, sizeof idx, "%d", s + 1);
    if (store)
      rk_cg_line(g, "%s = (double)%s_z;", rk_red_pat1(t, pat, idx), acc);
    else
      rk_cg_line(g, "%s_z = (T)%s;", acc, rk_red_pat1(t, pat, idx));
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
  rk_cg_line(g, "{");
  g->indent++;
  unit(f)->final(g, f, acc, outpat);
  g->indent--;
  rk_cg_line(g, "}");
}
