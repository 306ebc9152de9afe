/*
 * ir-standalone-main.c -- a program built from the IR layer alone (lex.c,
 * parse.c, parse-decl.c, ir*.c, rk.c), without the code generator
 * (cg-*.c), the backends or differentiation (ad.c, ad-rules.c): it parses
 * a few formulas, checks their dimensions, prints their canonical text and
 * compares it with the expected one.  Built with -DRK_WITH_AD (and ad.c,
 * ad-rules.c, formula.c), it also differentiates through the public API.
 * See tools/ir-standalone.sh.  Exit status 0 when every case agrees.
 */
#include <stdio.h>
#include <string.h>

#include "../src/parse.h"

typedef struct ir_case {
  const char *formula;
  const char *args[3];
  int code;           /* expected rk_code */
  const char *expect; /* expected canonical text, or a substring of the
                         error message */
} ir_case;

static const ir_case cases[] = {
    {"Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)",
     {"x=Vi(3)", "y=Vj(3)", "b=Vj(2)"},
     RK_OK,
     "Sum_Reduction(Mult(Exp(Minus(SqDist(Var(0,3,0),Var(1,3,1)))),"
     "Var(2,2,1)),1)"},
    /* simplification: x*1 + 0 -> x; 2*3 folds to IntCst(6) */
    {"Sum_Reduction(x * 1 + 0 + 2 * 3, 0)", {"x=Vi(2)"}, RK_OK,
     "Sum_Reduction(Add(Var(0,2,0),IntCst(6)),0)"},
    {"ArgKMin_Reduction(SqDist(x, y), 5, 1)", {"x=Vi(0,2)", "y=Vj(1,2)"},
     RK_OK, "ArgKMin_Reduction(SqDist(Var(0,2,0),Var(1,2,1)),5,1)"},
    {"LogSumExpWeight_Reduction(-(x|y), g, 1)",
     {"x=Vi(3)", "y=Vj(3)", "g=Vj(4)"},
     RK_OK,
     "LogSumExpWeight_Reduction(Minus(Scalprod(Var(0,3,0),Var(1,3,1))),"
     "Var(2,4,1),1)"},
    {"Sum_Reduction(x + y, 1)", {"x=Vi(3)", "y=Vj(2)"}, RK_EDIM,
     "Add: "},
    {"Sum_Reduction(Foo(x), 1)", {"x=Vi(3)"}, RK_EOP,
     "unknown operation 'Foo'"},
#ifndef RK_WITH_AD
    /* no expander in this program: refused, not crashed */
    {"Sum_Reduction(Grad(SqNorm2(x), x, e), 1)", {"x=Vi(3)", "e=Pm(1)"},
     RK_EUNSUPPORTED, "differentiation is not available"},
#endif
};

/* parse with the IR layer only: a context, the parser, the formatter */
static int run_ir(const ir_case *c, char *out, size_t n) {
  const char *const *args = c->args;
  int nargs = 0;
  while (nargs < 3 && args[nargs])
    nargs++;
  rk_error e;
  rk_err_clear(&e);
  rk_ctx *ctx = rk_ctx_new();
  rk_formula *f = ctx ? rk_arena_alloc(rk_ctx_arena(ctx), sizeof *f) : NULL;
  if (f == NULL) {
    rk_ctx_free(ctx);
    snprintf(out, n, "out of memory");
    return RK_ENOMEM;
  }
  f->ctx = ctx;
  int redpos = 0;
  int code = rk_parse_formula(f, c->formula, args, nargs, &redpos, &e);
  if (code == RK_OK) {
    rk_buf b;
    rk_buf_init(&b);
    rk_format_formula(&b, f);
    snprintf(out, n, "%s", b.s ? b.s : "");
    rk_buf_free(&b);
  } else {
    snprintf(out, n, "%s", e.msg);
  }
  rk_ctx_free(ctx);
  return code;
}

static int check(const char *what, const char *formula, int want_code,
                 const char *want, int code, const char *got) {
  int ok = code == want_code &&
           (code == RK_OK ? strcmp(got, want) == 0 : strstr(got, want) != NULL);
  printf("%s %s: %s\n  -> %s: %s\n", ok ? "ok  " : "FAIL", what, formula,
         rk_code_name(code), got);
  if (!ok)
    printf("  expected %s: %s\n", rk_code_name(want_code), want);
  return ok;
}

/* hash-consing: structurally equal subexpressions are one node */
static int check_hashcons(void) {
  rk_error e;
  rk_err_clear(&e);
  rk_ctx *c = rk_ctx_new();
  const rk_node *x = rk_var(c, 0, 3, RK_CAT_I, &e);
  const rk_node *y = rk_var(c, 1, 3, RK_CAT_J, &e);
  const rk_node *a = rk_op1(c, RK_OP_EXP, rk_op2(c, RK_OP_SQDIST, x, y, &e), &e);
  const rk_node *b = rk_op1(c, RK_OP_EXP, rk_op2(c, RK_OP_SQDIST, x, y, &e), &e);
  const rk_node *d = rk_op1(c, RK_OP_EXP, rk_op2(c, RK_OP_SQDIST, y, x, &e), &e);
  int ok = a != NULL && a == b && d != NULL && d != a;
  printf("%s hash-consing: equal subexpressions are one node, others not\n",
         ok ? "ok  " : "FAIL");
  rk_ctx_free(c);
  return ok;
}

#ifdef RK_WITH_AD
/* through the public API (formula.c installs the expander) */
static int check_ad(void) {
  static const char *const args[] = {"x=Vi(2)", "e=Vi(1)"};
  rk_formula *f = NULL;
  rk_error e;
  int code = rk_formula_parse("Sum_Reduction(Grad(Square(Elem(x, 1)), x, e), 1)",
                              args, 2, RK_SCHEME_AUTO, &f, &e);
  /* d/dx (x_1^2) e = (0, 2 e x_1): ElemT(2 * (e * x_1), 2, 1) */
  const char *got = code == RK_OK ? rk_formula_canonical(f) : e.msg;
  int ok = check("AD layer", "Grad(Square(Elem(x, 1)), x, e)", RK_OK,
                 "Sum_Reduction(ElemT(Mult(IntCst(2),Mult(Var(1,1,0),"
                 "Elem(Var(0,2,0),1))),2,1),1)",
                 code, got);
  rk_formula_free(f);
  return ok;
}
#endif

int main(void) {
  int nfail = 0, n = (int)(sizeof cases / sizeof cases[0]);
  char out[8192];
  for (int i = 0; i < n; i++) {
    int code = run_ir(&cases[i], out, sizeof out);
    nfail += !check("IR layer", cases[i].formula, cases[i].code,
                    cases[i].expect, code, out);
  }
  nfail += !check_hashcons();
#ifdef RK_WITH_AD
  nfail += !check_ad();
#endif
  printf("%d failed\n", nfail);
  return nfail ? 1 : 0;
}
