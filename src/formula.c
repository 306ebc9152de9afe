/*
 * formula.c -- the public formula functions of rkeops.h: parse a
 * reduction into an rk_formula (parse.c), check the reduction's
 * dimensions, compute the output layout, the canonical text and the key.
 * The one place that joins the IR layer (parse.h) and differentiation
 * (ad.h): each formula's context gets rk_ad_expand as its expander.
 */
#include <stdlib.h>
#include <string.h>

#include "ad.h"
#include "parse.h"

/* the largest K * dim(f) of the K-min reductions */
#define RK_KMIN_MAX 16384

/* output dimension of reduction red (red.def OUTDIM and F1) for a formula
   of dimension d, a weight of dimension e (1 without one) and K, or -1
   with err set (RK_EDIM: the formula's dimension; RK_EVALUE: K or the
   output too large) */
int rk_red_outdim(int red, long long d, long long e, long long K,
                  rk_error *err) {
  if (red < 0 || red >= RK_RED__COUNT)
    return rk_err(err, RK_EINTERNAL, -1, "unknown reduction %d", red), -1;
  const rk_redinfo *ri = &rk_reds[red];
  long long out = -1;
  int f1 = 0;
  switch (red) {
#define R(E, name, nf, hask, outkind, diff, unit, outdim, F1)                  \
  case RK_RED_##E:                                                             \
    out = outdim;                                                              \
    f1 = F1;                                                                   \
    break;
#include "red.def"
#undef R
  }
  (void)e;
  if (ri->hask && K * d > RK_KMIN_MAX)
    /* each output row keeps its K smallest values (and indices) in the
       kernel's local memory (the stack of a CPU thread, a CUDA thread's
       local memory): bounded, now that K may exceed the number of points */
    return rk_err(err, RK_EVALUE, -1,
                  "%s_Reduction: K * dimension = %lld is larger "
                  "than %d (the K smallest values of each output "
                  "row are kept in the kernel's local memory)",
                  ri->name, K * d, RK_KMIN_MAX),
           -1;
  if (f1 && d != 1)
    return rk_err(err, RK_EDIM, -1,
                  "%s_Reduction: the formula has dimension %lld, not 1",
                  ri->name, d),
           -1;
  if (out > 1000000)
    return rk_err(err, RK_EVALUE, -1,
                  "%s_Reduction: output dimension %lld is too large", ri->name,
                  out),
           -1;
  return (int)out;
}

/* the formula's output dimension, or -1 with err set and shown at the
   reduction's position in src */
static int rk_formula_layout(rk_formula *f, const char *src, int redpos,
                             rk_error *err) {
  int out = rk_red_outdim(f->red, f->f->dim, f->w ? f->w->dim : 1, f->K, err);
  if (out < 0)
    rk_err_show(err, src, redpos);
  return out;
}

int rk_formula_parse(const char *formula, const char *const *args, int nargs,
                     int sum_scheme, rk_formula **out, rk_error *err) {
  rk_error local;
  if (err == NULL)
    err = &local; /* the parser always has somewhere to write */
  rk_err_clear(err);
  if (out != NULL)
    *out = NULL;
  if (out == NULL || formula == NULL)
    return rk_err(err, RK_EINTERNAL, -1, "rk_formula_parse: NULL argument");
  if (nargs < 0 || (nargs > 0 && args == NULL))
    return rk_err(err, RK_EINTERNAL, -1,
                  "rk_formula_parse: bad argument declarations");
  if (sum_scheme < RK_SCHEME_AUTO || sum_scheme > RK_SCHEME_KAHAN)
    return rk_err(err, RK_EVALUE, -1, "unknown summation scheme %d",
                  sum_scheme);
  if (formula[strspn(formula, " \t\r\n")] == '\0')
    return rk_err_at(err, RK_EPARSE, formula, 0,
                     "empty formula: expected a reduction such as "
                     "Sum_Reduction(f, 1)");
  rk_ctx *ctx = rk_ctx_new();
  rk_formula *f = ctx ? rk_arena_alloc(rk_ctx_arena(ctx), sizeof *f) : NULL;
  if (f == NULL) {
    rk_ctx_free(ctx);
    return rk_err(err, RK_ENOMEM, -1, "out of memory");
  }
  f->ctx = ctx;
  rk_ctx_set_expand(ctx, rk_ad_expand);
  f->scheme = sum_scheme == RK_SCHEME_AUTO ? RK_SCHEME_BLOCK : sum_scheme;
  int redpos = 0;
  int code = rk_parse_formula(f, formula, args, nargs, &redpos, err);
  if (code == RK_OK) {
    f->outdim = rk_formula_layout(f, formula, redpos, err);
    if (f->outdim < 0)
      code = err ? err->code : RK_EDIM;
  }
  if (code == RK_OK) {
    rk_buf b;
    rk_buf_init(&b);
    rk_format_formula(&b, f);
    if (!b.oom && b.s != NULL)
      f->canonical = rk_arena_strdup(rk_ctx_arena(ctx), b.s);
    rk_buf_free(&b);
    if (f->canonical == NULL)
      code = rk_err(err, RK_ENOMEM, -1, "out of memory");
    else
      rk_hash_hex(f->canonical, f->key);
  }
  if (code != RK_OK) {
    rk_ctx_free(ctx);
    return code;
  }
  *out = f;
  return RK_OK;
}

void rk_formula_free(rk_formula *f) {
  if (f != NULL)
    rk_ctx_free(f->ctx); /* f lives in its own arena */
}

int rk_formula_nvars(const rk_formula *f) {
  return f->nvars;
}

const char *rk_formula_var_name(const rk_formula *f, int pos) {
  return pos >= 0 && pos < f->nvars ? f->vars[pos].name : NULL;
}

int rk_formula_var_dim(const rk_formula *f, int pos) {
  return pos >= 0 && pos < f->nvars ? f->vars[pos].dim : -1;
}

int rk_formula_var_cat(const rk_formula *f, int pos) {
  return pos >= 0 && pos < f->nvars ? f->vars[pos].cat : -1;
}

int rk_formula_axis(const rk_formula *f) {
  return f->axis;
}

int rk_formula_outdim(const rk_formula *f) {
  return f->outdim;
}

int rk_formula_outkind(const rk_formula *f) {
  return rk_reds[f->red].outkind;
}

const char *rk_formula_canonical(const rk_formula *f) {
  return f->canonical;
}

int rk_formula_nodes(const rk_formula *f) {
  const rk_node *roots[2] = {f->f, f->w};
  const rk_node **order;
  return rk_topo(f->ctx, roots, f->w ? 2 : 1, &order);
}
