/*
 * formula-tables.c -- rows of the op table (ir.h, ad.h) and of the
 * reduction table, for formula-tables.h.
 */
#include "formula-tables.h"

#include "ad-rules.h"

int rk_table_nops(void) {
  return RK_OP__COUNT;
}

int rk_table_op(int i, const char **name, int *nargs, int *nip, int *flags) {
  if (i < 0 || i >= RK_OP__COUNT)
    return 0;
  const rk_opinfo *o = &rk_ops[i];
  int fl = 0;
  if (o->nargs == 0)
    fl |= RK_OPF_LEAF;
  if (o->cexpr != NULL)
    fl |= RK_OPF_ELEMENTWISE;
  if (i == RK_OP_GRAD || i == RK_OP_DIFF || i == RK_OP_LAPLACIAN ||
      i == RK_OP_DIVERGENCE)
    fl |= RK_OPF_EXPANDED;
  if (rk_ad_rules[i] != rk_vjp_none)
    fl |= RK_OPF_DERIVATIVE;
  if (rk_ad_rules[i] == rk_vjp_zero)
    fl |= RK_OPF_ZERO_DERIV;
  *name = o->name;
  *nargs = o->nargs;
  *nip = o->nip;
  *flags = fl;
  return 1;
}

int rk_table_nreds(void) {
  return RK_RED__COUNT;
}

int rk_table_red(int i, const char **name, int *nf, int *hask, int *outkind,
                 int *diff) {
  if (i < 0 || i >= RK_RED__COUNT)
    return 0;
  *name = rk_reds[i].name;
  *nf = rk_reds[i].nf;
  *hask = rk_reds[i].hask;
  *outkind = rk_reds[i].outkind;
  *diff = rk_reds[i].diff;
  return 1;
}
