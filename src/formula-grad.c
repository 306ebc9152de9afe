/*
 * formula-grad.c -- the parts of a parsed reduction, for composing
 * gradient formulas (R/keops_grad.R builds "Sum_Reduction(Grad(<f>, x,
 * eta), axis)" from them).  Public API: see the "formula parts" block of
 * inst/include/rkeops.h.
 */
#include "ir.h"

const char *rk_formula_part(const rk_formula *f, int which) {
  const rk_node *n;
  if (f == NULL || (which != 0 && which != 1))
    return NULL;
  n = which == 0 ? f->f : f->w;
  if (n == NULL)
    return NULL;
  rk_buf b;
  rk_buf_init(&b);
  rk_format_node(&b, n);
  if (b.oom || b.s == NULL) {
    rk_buf_free(&b);
    return NULL;
  }
  /* owned by the formula: copied into its arena */
  const char *s = rk_arena_strdup(rk_ctx_arena(f->ctx), b.s);
  rk_buf_free(&b);
  return s;
}

const char *rk_formula_reduction(const rk_formula *f) {
  if (f == NULL || f->red < 0 || f->red >= RK_RED__COUNT)
    return NULL;
  return rk_reds[f->red].name;
}

int rk_formula_K(const rk_formula *f) {
  return f == NULL ? 0 : f->K;
}
