/*
 * parse.h -- formula text -> rk_formula: the lexer (lex.c), the
 * recursive-descent parser (parse.c) and the error display shared with
 * formula.c.
 */
#ifndef RK_PARSE_H
#define RK_PARSE_H

#include "ir.h"

enum rk_tkind { RK_TK_EOF, RK_TK_NUM, RK_TK_IDENT, RK_TK_PUNCT };

typedef struct rk_token {
  int kind;   /* enum rk_tkind                                   */
  int pos;    /* byte offset in the source                       */
  int len;    /* bytes                                           */
  int isint;  /* RK_TK_NUM: written without '.' or exponent      */
  double val; /* RK_TK_NUM: the value                            */
  char ch;    /* RK_TK_PUNCT: the character                      */
} rk_token;

/* Split src into tokens, ending with one RK_TK_EOF; *toks is malloc'ed
   (the caller frees).  Returns RK_OK, or RK_EPARSE / RK_ENOMEM with e set
   (message decorated with the source and a caret). */
int rk_lex(const char *src, rk_token **toks, int *ntoks, rk_error *e);

/* An error at byte pos of src: e gets code and the message (printf
   format), then src on the next line indented by two spaces (a window of
   it when long), then a caret under pos.  The one place where the caret
   is drawn is rk_err_show, which decorates a message already in e (cut to
   leave room) and sets e->pos. */
int rk_err_at(rk_error *e, int code, const char *src, int pos, const char *fmt,
              ...)
#ifdef __GNUC__
    __attribute__((format(printf, 5, 6)))
#endif
    ;
int rk_verr_at(rk_error *e, int code, const char *src, int pos, const char *fmt,
               va_list ap);
void rk_err_show(rk_error *e, const char *src, int pos);

/* the deepest nesting of parentheses / unary minus accepted */
#define RK_PARSE_MAX_DEPTH 2000
/* the largest variable position accepted */
#define RK_PARSE_MAX_POS 65535

/* Parse formula and declarations into f (f->ctx already created): fills
   red, axis, K, f, w, nvars, vars.  *redpos receives the byte offset of
   the reduction's name. */
int rk_parse_formula(rk_formula *f, const char *src, const char *const *args,
                     int nargs, int *redpos, rk_error *e);

/* ---- shared by parse.c and parse-decl.c (internal) ---- */
typedef struct rk_pvar {
  int set; /* declared, or used as Var(...) */
  int dim, cat;
  int decl; /* index of the declaration, or -1 */
} rk_pvar;

typedef struct rk_pname {
  const char *name;
  int pos;
} rk_pname;

/* the parser state */
typedef struct rk_parser {
  const char *src;
  rk_token *tk;
  int i;
  rk_ctx *ctx;
  rk_error *e;
  int depth;
  rk_pvar *vars; /* by position */
  int nvars, capvars;
  rk_pname *names; /* declared names */
  int nnames;
  const char *const *args;
} rk_parser;
/* make room for position pos in P->vars (0 when out of memory) */
int rk_parse_var_slot(rk_parser *P, int pos);
/* parse declaration args[k] into P->vars / P->names */
int rk_parse_decl(rk_parser *P, int k, rk_arena *arena);

/* output dimension of reduction red (enum rk_redop; red.def OUTDIM and F1)
   for a formula of dimension d, a weight of dimension e (1 without one) and
   K, or -1 with err set: RK_EDIM (the formula's dimension), RK_EVALUE (K,
   or the output, too large).  formula.c; the one place these rules live. */
int rk_red_outdim(int red, long long d, long long e, long long K,
                  rk_error *err);

#endif /* RK_PARSE_H */
