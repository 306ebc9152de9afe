/*
 * formula-tables.c -- rows of the op table (ir.h, ad.h) and of the
 * reduction table, for formula-tables.h.
 */
#include "formula-tables.h"
#include "parse.h"

#include "ad-rules.h"

#include <stdio.h>
#include <string.h>

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
  if (o->cls & (RK_OPC_KEEPZ | RK_OPC_KEEPZ_POS | RK_OPC_LINEAR))
    fl |= RK_OPF_KEEPZ;
  if (o->cls & RK_OPC_LINEAR)
    fl |= RK_OPF_LINEAR;
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

/* what a rule refused (formula-tables.h): 1 a dimension, 2 a value, 0 none */
static int refusal(int code) {
  return code == RK_EDIM ? 1 : code == RK_EVALUE ? 2 : 0;
}

int rk_table_op_dim(const char *name, int n, const int *dims, int nip,
                    const int *ip, int *dim_error, char *msg, int msize) {
  *dim_error = 0;
  msg[0] = '\0';
  int op = name ? rk_op_lookup(name, strlen(name)) : -1;
  if (op < 0) {
    snprintf(msg, (size_t)msize, "unknown operation %s", name ? name : "?");
    return -1;
  }
  const rk_opinfo *o = &rk_ops[op];
  if (o->nargs == 0 || n != o->nargs || nip != o->nip || n > RK_MAX_ARGS ||
      nip > RK_MAX_IP) {
    snprintf(msg, (size_t)msize,
             "%s takes %d argument(s) and %d integer "
             "parameter(s), not %d and %d",
             o->name, o->nargs, o->nip, n, nip);
    return -1;
  }
  rk_ctx *c = rk_ctx_new();
  if (c == NULL) {
    snprintf(msg, (size_t)msize, "out of memory");
    return -1;
  }
  rk_error e;
  rk_err_clear(&e);
  const rk_node *a[RK_MAX_ARGS] = {NULL};
  int ok = 1;
  for (int i = 0; i < n && ok; i++)
    ok = (a[i] = rk_var(c, i, dims[i], RK_CAT_I, &e)) != NULL;
  const rk_node *r = ok ? rk_build(c, op, a, n, ip, nip, 0, &e) : NULL;
  int d = r ? r->dim : -1;
  if (r == NULL) {
    *dim_error = refusal(e.code);
    snprintf(msg, (size_t)msize, "%s", e.msg);
  }
  rk_ctx_free(c);
  return d;
}

int rk_table_red_dim(const char *name, long long d, long long e, long long K,
                     int *dim_error, char *msg, int msize) {
  *dim_error = 0;
  msg[0] = '\0';
  int red = name ? rk_red_lookup(name, strlen(name)) : -1;
  if (red < 0) {
    snprintf(msg, (size_t)msize, "unknown reduction %s", name ? name : "?");
    return -1;
  }
  rk_error e2;
  rk_err_clear(&e2);
  int out = rk_red_outdim(red, d, e, K, &e2);
  if (out < 0) {
    *dim_error = refusal(e2.code);
    snprintf(msg, (size_t)msize, "%s", e2.msg);
  }
  return out;
}
