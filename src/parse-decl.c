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

static const char *const rk_cat_name[] = {"Vi", "Vj", "Pm"};
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

/* a Var(pos, dim, cat) written in the formula at byte tpos */
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
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  rk_err(P->e, code, -1, "declaration \"%.200s\": %s", P->args[k], reason);
  P->e->arg = k;
  return code;
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
  int code = RK_OK, v[3] = {0, 0, 0}, nv = 0, cat = -1, isvar = 0;
  const char *usage = "expected name=Vi(dim), Vj(dim), Pm(dim), "
                      "Vi(pos,dim) ... or Var(pos,dim,cat)";
  int i = 0;
  if (ntk < 5 || tk[0].kind != RK_TK_IDENT || !is_punct(&tk[1], '=') ||
      tk[2].kind != RK_TK_IDENT || !is_punct(&tk[3], '(')) {
    code = decl_err(P, k, RK_EPARSE, "%s", usage);
    goto done;
  }
  const char *kind = s + tk[2].pos;
  int kl = tk[2].len;
  for (int c = 0; c < 3; c++)
    if (kl == 2 && memcmp(kind, rk_cat_name[c], 2) == 0)
      cat = c;
  isvar = kl == 3 && memcmp(kind, "Var", 3) == 0;
  if (cat < 0 && !isvar) {
    code = decl_err(P, k, RK_EPARSE,
                    "unknown kind '%.*s' (expected Vi, Vj, Pm or Var)",
                    kl > 40 ? 40 : kl, kind);
    goto done;
  }
  for (i = 4;; i++) {
    int neg = 0;
    if (is_punct(&tk[i], '-')) {
      neg = 1;
      i++;
    }
    if (tk[i].kind != RK_TK_NUM || !tk[i].isint || nv == 3 ||
        tk[i].val > INT_MAX) {
      code = decl_err(P, k, RK_EPARSE, "%s", usage);
      goto done;
    }
    v[nv++] = (int)(neg ? -tk[i].val : tk[i].val);
    i++;
    if (is_punct(&tk[i], ')'))
      break;
    if (!is_punct(&tk[i], ',')) {
      code = decl_err(P, k, RK_EPARSE, "%s", usage);
      goto done;
    }
  }
  if (tk[i + 1].kind != RK_TK_EOF || (isvar && nv != 3) ||
      (!isvar && nv > 2)) {
    code = decl_err(P, k, RK_EPARSE, "%s", usage);
    goto done;
  }
  int pos, dim;
  if (isvar) {
    pos = v[0], dim = v[1], cat = v[2];
  } else if (nv == 2) {
    pos = v[0], dim = v[1];
  } else {
    pos = k, dim = v[0];
  }
  if (pos < 0 || pos > RK_PARSE_MAX_POS) {
    code = decl_err(P, k, RK_EPARSE, "position %d must be between 0 and %d",
                    pos, RK_PARSE_MAX_POS);
    goto done;
  }
  if (dim < 1 || dim > 1000000) {
    code = decl_err(P, k, RK_EPARSE,
                    "dimension %d must be between 1 and 1000000", dim);
    goto done;
  }
  if (cat < 0 || cat > 2) {
    code = decl_err(P, k, RK_EPARSE,
                    "category %d must be 0 (i), 1 (j) or 2 (parameter)", cat);
    goto done;
  }
  const char *name = s + tk[0].pos;
  int nl = tk[0].len;
  for (int j = 0; j < P->nnames; j++)
    if (strlen(P->names[j].name) == (size_t)nl &&
        memcmp(P->names[j].name, name, (size_t)nl) == 0) {
      code = decl_err(P, k, RK_EPARSE,
                      "the name '%.*s' is already declared by \"%.200s\"",
                      nl > 60 ? 60 : nl, name,
                      P->args[P->vars[P->names[j].pos].decl]);
      goto done;
    }
  if (!rk_parse_var_slot(P, pos)) {
    code = rk_err(P->e, RK_ENOMEM, -1, "out of memory");
    goto done;
  }
  rk_pvar *pv = &P->vars[pos];
  if (pv->set && (pv->dim != dim || pv->cat != cat)) {
    code = decl_err(P, k, RK_EPARSE,
                    "position %d is already declared by \"%.200s\" with a "
                    "different dimension or category",
                    pos, P->args[pv->decl]);
    goto done;
  }
  if (!pv->set) {
    pv->set = 1;
    pv->dim = dim;
    pv->cat = cat;
    pv->decl = k;
  }
  char *nm = rk_arena_alloc(arena, (size_t)nl + 1);
  if (nm == NULL) {
    code = rk_err(P->e, RK_ENOMEM, -1, "out of memory");
    goto done;
  }
  memcpy(nm, name, (size_t)nl);
  P->names[P->nnames].name = nm;
  P->names[P->nnames++].pos = pos;
done:
  free(tk);
  return code;
}
