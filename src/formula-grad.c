/*
 * formula-grad.c -- the parts of a parsed reduction, and the gradient plan
 * of a reduction: "Sum_Reduction(Grad(<body>, x, eta), axis)" with the
 * body and the forward reductions it needs from the reduction's unit
 * (red-unit.h, rk_red_unit.grad); R/keops_grad.R names the new inputs and
 * runs the kernels.  Public API: see the "formula parts" block of
 * inst/include/rkeops.h.
 */
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "red-unit.h"

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

void rk_grad_plan_free(rk_grad_plan *p) {
  if (p == NULL)
    return;
  free(p->formula);
  for (int k = 0; k < 2; k++)
    free(p->fwd_formula[k]);
  memset(p, 0, sizeof *p);
}

static int plan_fill(const rk_formula *f, const rk_formula *g, int pos,
                     int eta_param, rk_grad_plan *p, rk_error *e) {
  _Static_assert(RK_RED_MAXFWD <= 2, "rk_grad_plan holds 2 forward outputs");
  const rk_red_unit *u = rk_red_unit_of(g->red);
  int q = f->nvars, cv = f->vars[pos].cat;
  int out_cat = g->axis == 1 ? RK_CAT_I : RK_CAT_J;
  rk_red_grad gr;
  memset(&gr, 0, sizeof gr);
  int code = u->grad(g->ctx, g, q + 1, out_cat, &gr, e);
  if (code != RK_OK)
    return code;
  p->eta_pos = q;
  p->eta_dim = g->outdim;
  p->eta_cat = eta_param ? RK_CAT_P : out_cat;
  p->full = cv == RK_CAT_P;
  p->axis = cv == RK_CAT_P || cv == out_cat ? g->axis : 1 - g->axis;
  const rk_node *x = rk_var(g->ctx, pos, f->vars[pos].dim, cv, e);
  const rk_node *eta = rk_var(g->ctx, q, p->eta_dim, p->eta_cat, e);
  if (x == NULL || eta == NULL || gr.body == NULL)
    return e->code;
  rk_buf b;
  rk_buf_init(&b);
  rk_buf_puts(&b, "Sum_Reduction(Grad(");
  rk_format_node(&b, gr.body);
  rk_buf_putc(&b, ',');
  rk_format_node(&b, x);
  rk_buf_putc(&b, ',');
  rk_format_node(&b, eta);
  rk_buf_printf(&b, "),%d)", p->axis);
  if ((p->formula = rk_buf_take(&b)) == NULL)
    return rk_err(e, RK_ENOMEM, -1, "out of memory");
  p->nfwd = gr.nfwd;
  for (int k = 0; k < gr.nfwd; k++) {
    p->fwd_name[k] = gr.fwd_name[k];
    p->fwd_pos[k] = q + 1 + k;
    p->fwd_dim[k] = gr.fwd_dim[k];
    p->fwd_cat[k] = out_cat;
    if (gr.fwd_red[k] == g->red)
      continue; /* the reduction itself */
    rk_formula r = *g;
    r.red = gr.fwd_red[k];
    r.w = rk_reds[r.red].nf > 1 ? g->w : NULL;
    rk_buf_init(&b);
    rk_format_formula(&b, &r);
    if ((p->fwd_formula[k] = rk_buf_take(&b)) == NULL)
      return rk_err(e, RK_ENOMEM, -1, "out of memory");
  }
  return RK_OK;
}

int rk_formula_grad_plan(const rk_formula *f, int pos, int eta_param,
                         rk_grad_plan *p, rk_error *e) {
  rk_error local;
  if (e == NULL)
    e = &local;
  rk_err_clear(e);
  memset(p, 0, sizeof *p);
  if (f == NULL || f->canonical == NULL)
    return rk_err(e, RK_EINTERNAL, -1, "rk_formula_grad_plan: no formula");
  if (pos < 0 || pos >= f->nvars)
    return rk_err(e, RK_EVAR, -1,
                  "no variable at position %d (the formula has %d)", pos,
                  f->nvars);
  const rk_red_unit *u = rk_red_unit_of(f->red);
  if (!rk_reds[f->red].diff || u == NULL || u->grad == NULL)
    return rk_err(e, RK_EOP, -1,
                  "%s_Reduction has no gradient (it selects points)",
                  rk_reds[f->red].name);
  /* the plan's nodes go into a copy (its canonical text, re-parsed), so
     that a long-lived formula does not grow with each plan */
  /* declarations of every position (some may be unused by the formula) */
  char **decl = calloc((size_t)f->nvars, sizeof *decl);
  int code = decl == NULL ? RK_ENOMEM : RK_OK;
  for (int i = 0; i < f->nvars && code == RK_OK; i++) {
    rk_buf b;
    rk_buf_init(&b);
    rk_buf_printf(&b, "rk_v%d=%s(%d,%d)", i, rk_cat_names[f->vars[i].cat], i,
                  f->vars[i].dim);
    if ((decl[i] = rk_buf_take(&b)) == NULL)
      code = RK_ENOMEM;
  }
  rk_formula *g = NULL;
  if (code == RK_ENOMEM)
    rk_err(e, RK_ENOMEM, -1, "out of memory");
  else
    code = rk_formula_parse(f->canonical, (const char *const *)decl, f->nvars,
                            f->scheme, &g, e);
  for (int i = 0; decl != NULL && i < f->nvars; i++)
    free(decl[i]);
  free(decl);
  if (code == RK_OK)
    code = plan_fill(f, g, pos, eta_param, p, e);
  rk_formula_free(g);
  if (code != RK_OK)
    rk_grad_plan_free(p);
  return code;
}
