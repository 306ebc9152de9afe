/*
 * parse.c -- recursive-descent parser of formulas and argument
 * declarations.  One function per grammar rule, the rule above it:
 *
 *   formula   = reduction EOF
 *   reduction = IDENT "(" expr ("," expr)? ("," int)? "," int ")"
 *   expr      = add ("|" add)*
 *   add       = mul (("+" | "-") mul)*
 *   mul       = unary (("*" | "/") unary)*
 *   unary     = "-" unary | primary
 *   primary   = NUM | IDENT | IDENT "(" call-args ")" | "(" expr ")"
 *   int       = "-"? NUM            (an integer literal)
 * (declarations: parse-decl.c)
 */
#include "parse.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers
 * -------------------------------------------------------------------- */

static const rk_token *peek(rk_parser *P) {
  return &P->tk[P->i];
}

static int is_punct(const rk_token *t, char c) {
  return t->kind == RK_TK_PUNCT && t->ch == c;
}

static int is_ident(const rk_parser *P, const rk_token *t, const char *s) {
  return t->kind == RK_TK_IDENT && (size_t)t->len == strlen(s) &&
         memcmp(P->src + t->pos, s, (size_t)t->len) == 0;
}

/* a short description of a token for messages */
static void describe(const rk_parser *P, const rk_token *t, char *out,
                     size_t n) {
  if (t->kind == RK_TK_EOF)
    snprintf(out, n, "end of formula");
  else
    snprintf(out, n, "'%.*s'", t->len > 40 ? 40 : t->len, P->src + t->pos);
}

static int perr(rk_parser *P, int code, int pos, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static int perr(rk_parser *P, int code, int pos, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  rk_verr_at(P->e, code, P->src, pos, fmt, ap);
  va_end(ap);
  return code;
}

/* "unexpected X: expected WHAT" at the current token */
static int unexpected(rk_parser *P, const char *what) {
  char d[64];
  describe(P, peek(P), d, sizeof d);
  return perr(P, RK_EPARSE, peek(P)->pos, "unexpected %s: expected %s", d,
              what);
}

static int expect(rk_parser *P, char c, const char *what) {
  if (!is_punct(peek(P), c))
    return unexpected(P, what);
  P->i++;
  return RK_OK;
}

/* rk_build with the error placed at pos */
static const rk_node *build(rk_parser *P, int pos, int op,
                            const rk_node *const *args, int nargs,
                            const int *ip, int nip, double dp) {
  const rk_node *n = rk_build(P->ctx, op, args, nargs, ip, nip, dp, P->e);
  if (n == NULL && P->e != NULL)
    rk_err_show(P->e, P->src, pos);
  return n;
}

/* int = "-"? NUM (an integer literal) */
static int parse_int(rk_parser *P, const char *what, int *v) {
  int neg = 0, pos = peek(P)->pos;
  if (is_punct(peek(P), '-')) {
    neg = 1;
    P->i++;
  }
  const rk_token *t = peek(P);
  if (t->kind != RK_TK_NUM || !t->isint) {
    char d[64];
    describe(P, t, d, sizeof d);
    return perr(P, RK_EPARSE, t->pos,
                "unexpected %s: expected %s (an "
                "integer literal)",
                d, what);
  }
  double x = neg ? -t->val : t->val;
  if (x < INT_MIN || x > INT_MAX)
    return perr(P, RK_EVALUE, pos, "integer %.0f is out of range", x);
  *v = (int)x;
  P->i++;
  return RK_OK;
}

/* ---- variables
 * ---------------------------------------------------------------------- */
static const rk_node *use_var(rk_parser *P, int tpos, int pos, int dim,
                              int cat) {
  if (pos < 0 || pos > RK_PARSE_MAX_POS) {
    perr(P, RK_EVALUE, tpos, "position %d must be between 0 and %d", pos,
         RK_PARSE_MAX_POS);
    return NULL;
  }
  if (!rk_parse_var_slot(P, pos)) {
    rk_err(P->e, RK_ENOMEM, -1, "out of memory");
    return NULL;
  }
  rk_pvar *v = &P->vars[pos];
  if (v->set && (v->dim != dim || v->cat != cat)) {
    if (v->decl >= 0)
      perr(P, RK_EVAR, tpos,
           "Var(%d,%d,%d) does not match the declaration \"%.*s\" of "
           "position %d",
           pos, dim, cat, rk_utf8_prefix(P->args[v->decl], 200),
           P->args[v->decl], pos);
    else
      perr(P, RK_EVAR, tpos,
           "Var(%d,%d,%d) does not match Var(%d,%d,%d) used before", pos, dim,
           cat, pos, v->dim, v->cat);
    return NULL;
  }
  const rk_node *n =
      build(P, tpos, RK_OP_VAR, NULL, 0, (const int[]){pos, dim, cat}, 3, 0);
  if (n != NULL && !v->set) {
    v->set = 1;
    v->dim = dim;
    v->cat = cat;
    v->decl = -1;
  }
  return n;
}

/* ---- expressions
 * -------------------------------------------------------------------- */

static const rk_node *expr(rk_parser *P);

/* call-args of Var / Vi / Vj / Pm / IntCst / Zero / Cst: integers only */
static const rk_node *leaf_call(rk_parser *P, const rk_token *name, int op) {
  int p[3] = {0, 0, 0}, pos = name->pos;
  if (is_ident(P, name, "Cst")) {
    int neg = 0;
    if (is_punct(peek(P), '-')) {
      neg = 1;
      P->i++;
    }
    if (peek(P)->kind != RK_TK_NUM) {
      unexpected(P, "a number");
      return NULL;
    }
    double v = neg ? -peek(P)->val : peek(P)->val;
    P->i++;
    if (expect(P, ')', "')'") != RK_OK)
      return NULL;
    return build(P, pos, RK_OP_CST, NULL, 0, NULL, 0, v);
  }
  int n = is_ident(P, name, "Var") ? 3 : op == RK_OP_VAR ? 2 : 1;
  static const char *const what[] = {"the position", "the dimension",
                                     "the category"};
  for (int k = 0; k < n; k++) {
    if (k > 0 && is_punct(peek(P), ')') && op == RK_OP_VAR) {
      perr(P, RK_EPARSE, peek(P)->pos,
           "%.*s takes %d integers in a formula: %s", name->len,
           P->src + name->pos, n,
           n == 3 ? "Var(position, dimension, category)"
                  : "(position, dimension)");
      return NULL;
    }
    if (k > 0 && expect(P, ',', "','") != RK_OK)
      return NULL;
    const char *w = op == RK_OP_VAR    ? what[k]
                    : op == RK_OP_ZERO ? "the dimension"
                                       : "the value";
    if (parse_int(P, w, &p[k]) != RK_OK)
      return NULL;
  }
  if (expect(P, ')', "')'") != RK_OK)
    return NULL;
  if (op != RK_OP_VAR)
    return build(P, pos, op, NULL, 0, p, 1, 0);
  if (n == 2) /* Vi, Vj, Pm */
    p[2] = is_ident(P, name, "Vi")   ? RK_CAT_I
           : is_ident(P, name, "Vj") ? RK_CAT_J
                                     : RK_CAT_P;
  if (p[1] < 1 || p[2] < 0 || p[2] > 2) {
    build(P, pos, RK_OP_VAR, NULL, 0, p, 3, 0); /* its error message */
    return NULL;
  }
  return use_var(P, pos, p[0], p[1], p[2]);
}

/* call-args = expr ("," expr)* ("," int)*   (as many as the op takes) */
static const rk_node *op_call(rk_parser *P, const rk_token *name, int op) {
  const rk_opinfo *oi = &rk_ops[op];
  const rk_node *a[RK_MAX_ARGS] = {0};
  int ip[RK_MAX_IP] = {0};
  char want[96];
  if (oi->nip > 0)
    snprintf(want, sizeof want, "%d argument%s then %d integer%s", oi->nargs,
             oi->nargs == 1 ? "" : "s", oi->nip, oi->nip == 1 ? "" : "s");
  else
    snprintf(want, sizeof want, "%d argument%s", oi->nargs,
             oi->nargs == 1 ? "" : "s");
  for (int k = 0; k < oi->nargs + oi->nip; k++) {
    if (k > 0 && !is_punct(peek(P), ',')) {
      if (is_punct(peek(P), ')'))
        perr(P, RK_EPARSE, peek(P)->pos, "%s: too few arguments (it takes %s)",
             oi->name, want);
      else
        unexpected(P, "',' or ')'");
      return NULL;
    }
    if (k > 0)
      P->i++;
    if (k < oi->nargs) {
      if ((a[k] = expr(P)) == NULL)
        return NULL;
    } else {
      char w[96];
      snprintf(w, sizeof w, "integer parameter %d of %s", k - oi->nargs + 1,
               oi->name);
      if (parse_int(P, w, &ip[k - oi->nargs]) != RK_OK)
        return NULL;
    }
  }
  if (is_punct(peek(P), ',')) {
    perr(P, RK_EPARSE, peek(P)->pos, "%s: too many arguments (it takes %s)",
         oi->name, want);
    return NULL;
  }
  if (expect(P, ')', "')'") != RK_OK)
    return NULL;
  return build(P, name->pos, op, a, oi->nargs, ip, oi->nip, 0);
}

/* an identifier not followed by "(": a declared variable */
static const rk_node *named_var(rk_parser *P, const rk_token *t) {
  for (int k = 0; k < P->nnames; k++) {
    const char *nm = P->names[k].name;
    if (strlen(nm) == (size_t)t->len &&
        memcmp(nm, P->src + t->pos, (size_t)t->len) == 0) {
      const rk_pvar *v = &P->vars[P->names[k].pos];
      return build(P, t->pos, RK_OP_VAR, NULL, 0,
                   (const int[]){P->names[k].pos, v->dim, v->cat}, 3, 0);
    }
  }
  rk_buf b;
  rk_buf_init(&b);
  for (int k = 0; k < P->nnames && k < 20; k++)
    rk_buf_printf(&b, "%s%s", k ? ", " : "", P->names[k].name);
  if (rk_op_lookup(P->src + t->pos, (size_t)t->len) >= 0)
    perr(P, RK_EVAR, t->pos, "'%.*s' is an operation: write %.*s(...)",
         t->len > 60 ? 60 : t->len, P->src + t->pos, t->len > 60 ? 60 : t->len,
         P->src + t->pos);
  else
    perr(P, RK_EVAR, t->pos, "unknown variable '%.*s' (declared: %s)",
         t->len > 60 ? 60 : t->len, P->src + t->pos,
         b.s && P->nnames ? b.s : "none");
  rk_buf_free(&b);
  return NULL;
}

static int same_nocase(const char *a, const char *b, size_t n) {
  for (size_t k = 0; k < n; k++) {
    char x = a[k], y = b[k];
    if (x >= 'A' && x <= 'Z')
      x = (char)(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z')
      y = (char)(y - 'A' + 'a');
    if (x != y)
      return 0;
  }
  return 1;
}

/* an unknown call name: suggest a table op spelled differently */
static void unknown_op(rk_parser *P, const rk_token *t) {
  const char *near = NULL;
  for (int k = 0; k < RK_OP__COUNT && !near; k++)
    if (strlen(rk_ops[k].name) == (size_t)t->len &&
        same_nocase(rk_ops[k].name, P->src + t->pos, (size_t)t->len))
      near = rk_ops[k].name;
  int l = t->len > 60 ? 60 : t->len;
  if (near)
    perr(P, RK_EOP, t->pos, "unknown operation '%.*s' (did you mean '%s'?)", l,
         P->src + t->pos, near);
  else
    perr(P, RK_EOP, t->pos, "unknown operation '%.*s'", l, P->src + t->pos);
}

/* primary = NUM | IDENT | IDENT "(" call-args ")" | "(" expr ")" */
static const rk_node *primary(rk_parser *P) {
  const rk_token *t = peek(P);
  if (t->kind == RK_TK_NUM) {
    P->i++;
    if (!t->isint)
      return build(P, t->pos, RK_OP_CST, NULL, 0, NULL, 0, t->val);
    if (t->val > INT_MAX) {
      perr(P, RK_EVALUE, t->pos,
           "integer %.0f is too large (write %.0f.0 "
           "for a real constant)",
           t->val, t->val);
      return NULL;
    }
    int v = (int)t->val;
    return build(P, t->pos, RK_OP_INTCST, NULL, 0, &v, 1, 0);
  }
  if (is_punct(t, '(')) {
    P->i++;
    const rk_node *n = expr(P);
    if (n == NULL || expect(P, ')', "')'") != RK_OK)
      return NULL;
    return n;
  }
  if (t->kind != RK_TK_IDENT) {
    unexpected(P, "an expression");
    return NULL;
  }
  P->i++;
  if (!is_punct(peek(P), '('))
    return named_var(P, t);
  P->i++;
  if (is_ident(P, t, "Vi") || is_ident(P, t, "Vj") || is_ident(P, t, "Pm") ||
      is_ident(P, t, "Var"))
    return leaf_call(P, t, RK_OP_VAR);
  if (is_ident(P, t, "IntCst"))
    return leaf_call(P, t, RK_OP_INTCST);
  if (is_ident(P, t, "Zero"))
    return leaf_call(P, t, RK_OP_ZERO);
  if (is_ident(P, t, "Cst"))
    return leaf_call(P, t, RK_OP_CST);
  int op = rk_op_lookup(P->src + t->pos, (size_t)t->len);
  if (op < 0) {
    unknown_op(P, t);
    return NULL;
  }
  return op_call(P, t, op);
}

/* unary = "-" unary | primary */
static const rk_node *unary(rk_parser *P) {
  const rk_token *t = peek(P);
  if (!is_punct(t, '-'))
    return primary(P);
  if (++P->depth > RK_PARSE_MAX_DEPTH) {
    perr(P, RK_EPARSE, t->pos,
         "formula nested too deeply (more than %d levels)", RK_PARSE_MAX_DEPTH);
    return NULL;
  }
  P->i++;
  const rk_node *a = unary(P);
  P->depth--;
  return a ? build(P, t->pos, RK_OP_MINUS, &a, 1, NULL, 0, 0) : NULL;
}

/* mul = unary (("*" | "/") unary)* */
static const rk_node *mul(rk_parser *P) {
  const rk_node *a[2];
  if ((a[0] = unary(P)) == NULL)
    return NULL;
  for (;;) {
    const rk_token *t = peek(P);
    int op = is_punct(t, '*')   ? RK_OP_MULT
             : is_punct(t, '/') ? RK_OP_DIVIDE
                                : -1;
    if (op < 0)
      return a[0];
    P->i++;
    if ((a[1] = unary(P)) == NULL)
      return NULL;
    if ((a[0] = build(P, t->pos, op, a, 2, NULL, 0, 0)) == NULL)
      return NULL;
  }
}

/* add = mul (("+" | "-") mul)* */
static const rk_node *add(rk_parser *P) {
  const rk_node *a[2];
  if ((a[0] = mul(P)) == NULL)
    return NULL;
  for (;;) {
    const rk_token *t = peek(P);
    int op = is_punct(t, '+')   ? RK_OP_ADD
             : is_punct(t, '-') ? RK_OP_SUBTRACT
                                : -1;
    if (op < 0)
      return a[0];
    P->i++;
    if ((a[1] = mul(P)) == NULL)
      return NULL;
    if ((a[0] = build(P, t->pos, op, a, 2, NULL, 0, 0)) == NULL)
      return NULL;
  }
}

/* expr = add ("|" add)* */
static const rk_node *expr(rk_parser *P) {
  const rk_node *a[2];
  if (++P->depth > RK_PARSE_MAX_DEPTH) {
    perr(P, RK_EPARSE, peek(P)->pos,
         "formula nested too deeply (more than %d levels)", RK_PARSE_MAX_DEPTH);
    return NULL;
  }
  if ((a[0] = add(P)) == NULL)
    return NULL;
  for (;;) {
    const rk_token *t = peek(P);
    if (!is_punct(t, '|'))
      break;
    P->i++;
    if ((a[1] = add(P)) == NULL)
      return NULL;
    if ((a[0] = build(P, t->pos, RK_OP_SCALPROD, a, 2, NULL, 0, 0)) == NULL)
      return NULL;
  }
  P->depth--;
  return a[0];
}

/* reduction = IDENT "(" expr ("," expr)? ("," int)? "," int ")"
   formula   = reduction EOF
             | "Grad" "(" reduction "," expr "," expr ")" EOF */
static int reduction_body(rk_parser *P, rk_formula *f, int *redpos) {
  static const char suffix[] = "_Reduction";
  const size_t ls = sizeof suffix - 1;
  const rk_token *t = peek(P);
  *redpos = t->pos;
  if (t->kind != RK_TK_IDENT)
    return unexpected(P, "a reduction such as Sum_Reduction(f, 1)");
  const char *name = P->src + t->pos;
  size_t len = (size_t)t->len;
  if (len <= ls || memcmp(name + len - ls, suffix, ls) != 0) {
    if (P->tk[P->i + 1].kind == RK_TK_EOF || !is_punct(&P->tk[P->i + 1], '('))
      return unexpected(P, "a reduction such as Sum_Reduction(f, 1)");
    return perr(P, RK_EPARSE, t->pos,
                "'%.*s' is not a reduction: the formula must be one "
                "reduction such as Sum_Reduction(f, 1)",
                (int)(len > 60 ? 60 : len), name);
  }
  int red = rk_red_lookup(name, len - ls);
  if (red < 0)
    return perr(P, RK_EOP, t->pos, "unknown reduction '%.*s'",
                (int)(len > 60 ? 60 : len), name);
  const rk_redinfo *ri = &rk_reds[red];
  f->red = red;
  P->i++;
  if (expect(P, '(', "'('") != RK_OK)
    return P->e ? P->e->code : RK_EPARSE;
  if ((f->f = expr(P)) == NULL)
    return P->e ? P->e->code : RK_EPARSE;
  if (ri->nf > 1) {
    if (expect(P, ',', "',' then the weight") != RK_OK)
      return P->e->code;
    if ((f->w = expr(P)) == NULL)
      return P->e ? P->e->code : RK_EPARSE;
  }
  if (ri->hask) {
    if (expect(P, ',', "',' then K") != RK_OK)
      return P->e->code;
    int kpos = peek(P)->pos;
    if (parse_int(P, "K", &f->K) != RK_OK)
      return P->e->code;
    if (f->K < 1)
      return perr(P, RK_EVALUE, kpos, "%s_Reduction: K must be >= 1, got %d",
                  ri->name, f->K);
  }
  if (expect(P, ',', "',' then the axis (0 or 1)") != RK_OK)
    return P->e->code;
  int apos = peek(P)->pos;
  if (parse_int(P, "the axis (0 or 1)", &f->axis) != RK_OK)
    return P->e->code;
  if (f->axis != 0 && f->axis != 1)
    return perr(P, RK_EVALUE, apos, "the axis must be 0 or 1, got %d", f->axis);
  if (expect(P, ')', "')' after the axis") != RK_OK)
    return P->e->code;
  return RK_OK;
}

/* The rkeops 2.x outer syntax Grad(Sum_Reduction(f, a), x, eta): the
   reduction Sum_Reduction(Grad(f, x, eta), a') of the gradient, where
   a' = a when x is a parameter or is indexed like the output (the literal
   spelling), else 1 - a (x indexed by the reduced index: one row per
   point of x, the KeOps rule).  Only Sum reductions (the others are not a
   single reduction of a gradient: keops_grad() builds those). */
static int outer_grad(rk_parser *P, rk_formula *f, int *redpos) {
  const rk_token *g = peek(P);
  const rk_node *a[3];
  P->i += 2; /* Grad ( */
  int code = reduction_body(P, f, redpos);
  if (code != RK_OK)
    return code;
  if (f->red != RK_RED_SUM)
    return perr(P, RK_EPARSE, *redpos,
                "Grad(%s_Reduction(...), x, eta): only a Sum_Reduction can "
                "be differentiated in a formula (use keops_grad() for the "
                "others)",
                rk_reds[f->red].name);
  a[0] = f->f;
  if (expect(P, ',', "',' then the variable") != RK_OK)
    return P->e->code;
  if ((a[1] = expr(P)) == NULL)
    return P->e ? P->e->code : RK_EPARSE;
  if (expect(P, ',', "',' then the gradient input") != RK_OK)
    return P->e->code;
  if ((a[2] = expr(P)) == NULL)
    return P->e ? P->e->code : RK_EPARSE;
  if (expect(P, ')', "')' to close Grad(") != RK_OK)
    return P->e->code;
  if (a[1]->op == RK_OP_VAR && a[1]->ip[2] != RK_CAT_P &&
      a[1]->ip[2] != (f->axis == 1 ? RK_CAT_I : RK_CAT_J))
    f->axis = 1 - f->axis;
  if ((f->f = build(P, g->pos, RK_OP_GRAD, a, 3, NULL, 0, 0)) == NULL)
    return P->e ? P->e->code : RK_EPARSE;
  return RK_OK;
}

static int reduction(rk_parser *P, rk_formula *f, int *redpos) {
  const rk_token *t = peek(P);
  int code;
  if (is_ident(P, t, "Grad") && is_punct(&P->tk[P->i + 1], '(') &&
      P->tk[P->i + 2].kind == RK_TK_IDENT) {
    const rk_token *r = &P->tk[P->i + 2];
    static const char suffix[] = "_Reduction";
    const size_t ls = sizeof suffix - 1;
    if ((size_t)r->len > ls &&
        memcmp(P->src + r->pos + r->len - ls, suffix, ls) == 0)
      code = outer_grad(P, f, redpos);
    else
      code = reduction_body(P, f, redpos);
  } else {
    code = reduction_body(P, f, redpos);
  }
  if (code != RK_OK)
    return code;
  if (peek(P)->kind != RK_TK_EOF)
    return unexpected(P, "the end of the formula");
  return RK_OK;
}
/* ---- entry point
 * --------------------------------------------------------------------- */

int rk_parse_formula(rk_formula *f, const char *src, const char *const *args,
                     int nargs, int *redpos, rk_error *e) {
  rk_parser P;
  memset(&P, 0, sizeof P);
  P.src = src;
  P.ctx = f->ctx;
  P.e = e;
  P.args = args;
  *redpos = 0;
  int code = RK_OK;
  if (nargs > 0 && (P.names = calloc((size_t)nargs, sizeof *P.names)) == NULL)
    return rk_err(e, RK_ENOMEM, -1, "out of memory");
  for (int k = 0; k < nargs && code == RK_OK; k++)
    code = rk_parse_decl(&P, k, rk_ctx_arena(f->ctx));
  if (code == RK_OK)
    code = rk_lex(src, &P.tk, &(int){0}, e);
  if (code == RK_OK)
    code = reduction(&P, f, redpos);
  for (int p = 0; code == RK_OK && p < P.nvars; p++)
    if (!P.vars[p].set)
      code = rk_err(e, RK_EVAR, -1,
                    "position %d is not declared (positions go from 0 to %d "
                    "without gaps)",
                    p, P.nvars - 1);
  if (code == RK_OK) {
    f->nvars = P.nvars;
    f->vars = rk_arena_alloc(rk_ctx_arena(f->ctx),
                             (size_t)(P.nvars + 1) * sizeof *f->vars);
    if (f->vars == NULL)
      code = rk_err(e, RK_ENOMEM, -1, "out of memory");
    for (int p = 0; code == RK_OK && p < P.nvars; p++) {
      f->vars[p].name = "";
      f->vars[p].dim = P.vars[p].dim;
      f->vars[p].cat = P.vars[p].cat;
    }
    for (int j = P.nnames - 1; code == RK_OK && j >= 0; j--)
      f->vars[P.names[j].pos].name = P.names[j].name; /* first name wins */
  }
  free(P.tk);
  free(P.vars);
  free(P.names);
  return code;
}
