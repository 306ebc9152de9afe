/*
 * ir-format.c -- canonical text of nodes and formulas: KeOps spelling,
 * fully explicit (Var(pos,dim,cat), IntCst(n), Cst(%.17g), Zero(d)),
 * integer parameters after the formula arguments, no spaces.  It is the
 * cache key of a formula, so it must be deterministic; it is also valid
 * input to the parser.  Iterative, so deep formulas cannot overflow the
 * C stack.
 */
#include "ir.h"

#include <stdlib.h>

static void rk_format_leaf(rk_buf *b, const rk_node *n) {
  switch (n->op) {
  case RK_OP_VAR:
    rk_buf_printf(b, "Var(%d,%d,%d)", n->ip[0], n->ip[1], n->ip[2]);
    break;
  case RK_OP_INTCST:
    rk_buf_printf(b, "IntCst(%d)", n->ip[0]);
    break;
  case RK_OP_ZERO:
    rk_buf_printf(b, "Zero(%d)", n->ip[0]);
    break;
  case RK_OP_CST:
    rk_buf_printf(b, "Cst(%.17g)", n->dp);
    break;
  default: /* an op without arguments: name and parameters */
    rk_buf_puts(b, rk_ops[n->op].name);
    rk_buf_putc(b, '(');
    for (int i = 0; i < n->nip; i++)
      rk_buf_printf(b, i ? ",%d" : "%d", n->ip[i]);
    rk_buf_putc(b, ')');
  }
}

void rk_format_node(rk_buf *b, const rk_node *root) {
  /* explicit stack; state[k] = number of arguments of st[k] written */
  size_t cap = 64, sp = 0;
  const rk_node **st = malloc(cap * sizeof *st);
  int *state = malloc(cap * sizeof *state);
  if (st == NULL || state == NULL)
    goto oom;
  st[sp] = root;
  state[sp++] = 0;
  while (sp > 0) {
    const rk_node *n = st[sp - 1];
    int k = state[sp - 1];
    if (n->nargs == 0) {
      rk_format_leaf(b, n);
      sp--;
      continue;
    }
    if (k == n->nargs) { /* all arguments written */
      for (int i = 0; i < n->nip; i++)
        rk_buf_printf(b, ",%d", n->ip[i]);
      rk_buf_putc(b, ')');
      sp--;
      continue;
    }
    if (k == 0) {
      rk_buf_puts(b, rk_ops[n->op].name);
      rk_buf_putc(b, '(');
    } else {
      rk_buf_putc(b, ',');
    }
    state[sp - 1] = k + 1;
    if (sp == cap) {
      cap *= 2;
      const rk_node **s2 = realloc(st, cap * sizeof *st);
      if (s2 == NULL)
        goto oom;
      st = s2;
      int *t2 = realloc(state, cap * sizeof *state);
      if (t2 == NULL)
        goto oom;
      state = t2;
    }
    st[sp] = n->args[k];
    state[sp++] = 0;
  }
  free(st);
  free(state);
  return;
oom:
  free(st);
  free(state);
  b->oom = 1;
}

void rk_format_formula(rk_buf *b, const rk_formula *f) {
  const rk_redinfo *r = &rk_reds[f->red];
  rk_buf_puts(b, r->name);
  rk_buf_puts(b, "_Reduction(");
  rk_format_node(b, f->f);
  if (r->nf > 1 && f->w != NULL) {
    rk_buf_putc(b, ',');
    rk_format_node(b, f->w);
  }
  if (r->hask)
    rk_buf_printf(b, ",%d", f->K);
  rk_buf_printf(b, ",%d)", f->axis);
}
