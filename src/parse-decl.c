/*
 * parse-decl.c -- argument declarations ("x=Vi(3)", "x = Vi(0,3)",
 * "s=Pm(1)", "x=Var(0,3,0)") and the table of variables by position that
 * the formula parser (parse.c) checks its Var(...) against.
 *
 *   decl = IDENT "=" ("Vi" | "Vj" | "Pm" | "Var") "(" int ("," int)* ")"
 *
 * A declaration without a position takes its index in args.  Errors are
 * RK_EPARSE with err->arg the index of the bad declaration.
 */
#include "parse.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_punct(const rk_token *t, char c) {
  return t->kind == RK_TK_PUNCT && t->ch == c;
}

int rk_parse_var_slot(rk_parser *P, int pos) {
  if (pos >= P->capvars) {
    int cap = P->capvars ? P->capvars : 8;
    while (cap <= pos)
      cap *= 2;
    rk_pvar *v = realloc(P->vars, (size_t)cap * sizeof *v);
    if (v == NULL)
      return 0;
    memset(v + P->capvars, 0, (size_t)(cap - P->capvars) * sizeof *v);
    P->vars = v;
    P->capvars = cap;
  }
  if (pos >= P->nvars)
    P->nvars = pos + 1;
  return 1;
}

/* the declaration k quoted in messages: at most 200 bytes, cut on a
   UTF-8 character boundary */
#define DECL_QUOTE_MAX 200
#define DECL_QUOTE(s)                                                          \
  rk_utf8_prefix((s) ? (s) : "", DECL_QUOTE_MAX), ((s) ? (s) : "")

static int decl_err(rk_parser *P, int k, int code, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static int decl_err(rk_parser *P, int k, int code, const char *fmt, ...) {
  if (P->e == NULL)
    return code;
  char reason[512];
  va_list ap;
  va_start(ap, fmt);
  rk_vformat(reason, sizeof reason, fmt, ap);
  va_end(ap);
  rk_err(P->e, code, -1, "declaration \"%.*s\": %s", DECL_QUOTE(P->args[k]),
         reason);
  P->e->arg = k;
  return code;
}

static const char *const decl_usage =
    "expected name=Vi(dim), Vj(dim), Pm(dim), Vi(pos,dim) ... or "
    "Var(pos,dim,cat)";

/* a declaration as written: name "=" kind "(" ints ")" */
typedef struct rk_decl {
  const char *name; /* into the declaration text, nl bytes */
  int nl;
  int cat;   /* from the kind Vi / Vj / Pm; -1 for Var */
  int isvar; /* kind Var: (pos, dim, cat) */
  int v[3], nv;
} rk_decl;

/* step 1: name "=" kind "(", the kind one of Vi, Vj, Pm, Var */
static int decl_head(rk_parser *P, int k, const rk_token *tk, int ntk,
                     rk_decl *d) {
  const char *s = P->args[k];
  if (ntk < 5 || tk[0].kind != RK_TK_IDENT || !is_punct(&tk[1], '=') ||
      tk[2].kind != RK_TK_IDENT || !is_punct(&tk[3], '('))
    return decl_err(P, k, RK_EPARSE, "%s", decl_usage);
  const char *kind = s + tk[2].pos;
  int kl = tk[2].len;
  d->cat = -1;
  for (int c = 0; c < 3; c++)
    if (kl == 2 && memcmp(kind, rk_cat_names[c], 2) == 0)
      d->cat = c;
  d->isvar = kl == 3 && memcmp(kind, "Var", 3) == 0;
  if (d->cat < 0 && !d->isvar)
    return decl_err(P, k, RK_EPARSE,
                    "unknown kind '%.*s' (expected Vi, Vj, Pm or Var)",
                    kl > 40 ? 40 : kl, kind); /* a token: ASCII */
  d->name = s + tk[0].pos;
  d->nl = tk[0].len;
  return RK_OK;
}

/* step 2: int ("," int)* ")" EOF, from token 4: one to three integers
   (exactly three for Var) */
static int decl_ints(rk_parser *P, int k, const rk_token *tk, rk_decl *d) {
  int i;
  d->nv = 0;
  for (i = 4;; i++) {
    int neg = 0;
    if (is_punct(&tk[i], '-')) {
      neg = 1;
      i++;
    }
    if (tk[i].kind != RK_TK_NUM || !tk[i].isint || d->nv == 3 ||
        tk[i].val > INT_MAX)
      return decl_err(P, k, RK_EPARSE, "%s", decl_usage);
    d->v[d->nv++] = (int)(neg ? -tk[i].val : tk[i].val);
    i++;
    if (is_punct(&tk[i], ')'))
      break;
    if (!is_punct(&tk[i], ','))
      return decl_err(P, k, RK_EPARSE, "%s", decl_usage);
  }
  if (tk[i + 1].kind != RK_TK_EOF || (d->isvar && d->nv != 3) ||
      (!d->isvar && d->nv > 2))
    return decl_err(P, k, RK_EPARSE, "%s", decl_usage);
  return RK_OK;
}

/* step 3: position, dimension and category, checked; a declaration
   without a position takes its index k */
static int decl_resolve(rk_parser *P, int k, const rk_decl *d, int *pos,
                        int *dim, int *cat) {
  if (d->isvar) {
    *pos = d->v[0], *dim = d->v[1], *cat = d->v[2];
  } else if (d->nv == 2) {
    *pos = d->v[0], *dim = d->v[1], *cat = d->cat;
  } else {
    *pos = k, *dim = d->v[0], *cat = d->cat;
  }
  if (*pos < 0 || *pos > RK_PARSE_MAX_POS)
    return decl_err(P, k, RK_EPARSE, "position %d must be between 0 and %d",
                    *pos, RK_PARSE_MAX_POS);
  if (*dim < 1 || *dim > 1000000)
    return decl_err(P, k, RK_EPARSE,
                    "dimension %d must be between 1 and 1000000", *dim);
  if (*cat < 0 || *cat > 2)
    return decl_err(P, k, RK_EPARSE,
                    "category %d must be 0 (i), 1 (j) or 2 (parameter)", *cat);
  return RK_OK;
}

/* step 4: enter the name and the position, refusing a name declared twice
   and a position declared with another dimension or category */
static int decl_register(rk_parser *P, int k, const rk_decl *d, int pos,
                         int dim, int cat, rk_arena *arena) {
  for (int j = 0; j < P->nnames; j++)
    if (strlen(P->names[j].name) == (size_t)d->nl &&
        memcmp(P->names[j].name, d->name, (size_t)d->nl) == 0)
      return decl_err(P, k, RK_EPARSE,
                      "the name '%.*s' is already declared by \"%.*s\"",
                      d->nl > 60 ? 60 : d->nl, d->name, /* a token: ASCII */
                      DECL_QUOTE(P->args[P->vars[P->names[j].pos].decl]));
  if (!rk_parse_var_slot(P, pos))
    return rk_err(P->e, RK_ENOMEM, -1, "out of memory");
  rk_pvar *pv = &P->vars[pos];
  if (pv->set && (pv->dim != dim || pv->cat != cat))
    return decl_err(P, k, RK_EPARSE,
                    "position %d is already declared by \"%.*s\" with a "
                    "different dimension or category",
                    pos, DECL_QUOTE(P->args[pv->decl]));
  char *nm = rk_arena_alloc(arena, (size_t)d->nl + 1);
  if (nm == NULL)
    return rk_err(P->e, RK_ENOMEM, -1, "out of memory");
  if (!pv->set) {
    pv->set = 1;
    pv->dim = dim;
    pv->cat = cat;
    pv->decl = k;
  }
  memcpy(nm, d->name, (size_t)d->nl);
  P->names[P->nnames].name = nm;
  P->names[P->nnames++].pos = pos;
  return RK_OK;
}

/* decl = IDENT "=" ("Vi" | "Vj" | "Pm" | "Var") "(" int ("," int)* ")" */
int rk_parse_decl(rk_parser *P, int k, rk_arena *arena) {
  const char *s = P->args[k];
  if (s == NULL)
    return decl_err(P, k, RK_EPARSE, "missing");
  rk_token *tk;
  int ntk;
  rk_error le;
  rk_err_clear(&le);
  if (rk_lex(s, &tk, &ntk, &le) != RK_OK)
    return decl_err(P, k, le.code == RK_ENOMEM ? RK_ENOMEM : RK_EPARSE,
                    "unexpected character at offset %d", le.pos);
  rk_decl d = {NULL, 0, -1, 0, {0, 0, 0}, 0};
  int pos = 0, dim = 0, cat = 0;
  int code = decl_head(P, k, tk, ntk, &d);
  if (code == RK_OK)
    code = decl_ints(P, k, tk, &d);
  if (code == RK_OK)
    code = decl_resolve(P, k, &d, &pos, &dim, &cat);
  if (code == RK_OK)
    code = decl_register(P, k, &d, pos, dim, cat, arena);
  free(tk);
  return code;
}
