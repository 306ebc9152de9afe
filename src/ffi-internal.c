/*
 * ffi-internal.c -- .Call entry points for the package's own tests (not
 * part of the public API): the engine's op and reduction tables, and the
 * C unit tests of ctests.c.  Same border rules as ffi.c: R headers here,
 * plain C behind formula-tables.h and ctests.h (ffi.h: the glue helpers).
 */
#include <math.h>

#include <R.h>
#include <Rinternals.h>

#include "ctests.h"
#include "ffi.h"
#include "formula-tables.h"

static SEXP ffi_op_table(void) {
  int n = rk_table_nops();
  SEXP name = PROTECT(allocVector(STRSXP, n));  /* 1 */
  SEXP nargs = PROTECT(allocVector(INTSXP, n)); /* 2 */
  SEXP nip = PROTECT(allocVector(INTSXP, n));   /* 3 */
  SEXP leaf = PROTECT(allocVector(LGLSXP, n));  /* 4 */
  SEXP elem = PROTECT(allocVector(LGLSXP, n));  /* 5 */
  SEXP expd = PROTECT(allocVector(LGLSXP, n));  /* 6 */
  SEXP deriv = PROTECT(allocVector(STRSXP, n)); /* 7 */
  SEXP keepz = PROTECT(allocVector(LGLSXP, n)); /* 8 */
  SEXP lin = PROTECT(allocVector(LGLSXP, n));   /* 9 */
  for (int i = 0; i < n; i++) {
    const char *nm = "";
    int na = 0, ni = 0, fl = 0;
    rk_table_op(i, &nm, &na, &ni, &fl);
    SET_STRING_ELT(name, i, mkChar(nm));
    INTEGER(nargs)[i] = na;
    INTEGER(nip)[i] = ni;
    LOGICAL(leaf)[i] = (fl & RK_OPF_LEAF) != 0;
    LOGICAL(elem)[i] = (fl & RK_OPF_ELEMENTWISE) != 0;
    LOGICAL(expd)[i] = (fl & RK_OPF_EXPANDED) != 0;
    LOGICAL(keepz)[i] = (fl & RK_OPF_KEEPZ) != 0;
    LOGICAL(lin)[i] = (fl & RK_OPF_LINEAR) != 0;
    SET_STRING_ELT(deriv, i,
                   mkChar((fl & RK_OPF_ZERO_DERIV)   ? "zero"
                          : (fl & RK_OPF_DERIVATIVE) ? "rule"
                                                     : "none"));
  }
  static const char *const nms[] = {"name",       "nargs",       "nip",
                                    "leaf",       "elementwise", "expanded",
                                    "derivative", "keeps_zero",  "linear"};
  SEXP vals[] = {name, nargs, nip, leaf, elem, expd, deriv, keepz, lin};
  _Static_assert(sizeof nms / sizeof nms[0] == sizeof vals / sizeof vals[0],
                 "one name per value");
  SEXP res = ffi_named_list((int)(sizeof nms / sizeof nms[0]), nms, vals);
  UNPROTECT(9);
  return res;
}

static SEXP ffi_red_table(void) {
  int n = rk_table_nreds();
  SEXP name = PROTECT(allocVector(STRSXP, n));    /* 1 */
  SEXP nf = PROTECT(allocVector(INTSXP, n));      /* 2 */
  SEXP hask = PROTECT(allocVector(LGLSXP, n));    /* 3 */
  SEXP outkind = PROTECT(allocVector(STRSXP, n)); /* 4 */
  SEXP diff = PROTECT(allocVector(LGLSXP, n));    /* 5 */
  static const char *const kinds[] = {"values", "indices", "both"};
  for (int i = 0; i < n; i++) {
    const char *nm = "";
    int f = 0, k = 0, o = 0, g = 0;
    rk_table_red(i, &nm, &f, &k, &o, &g);
    SET_STRING_ELT(name, i, mkChar(nm));
    INTEGER(nf)[i] = f;
    LOGICAL(hask)[i] = k != 0;
    SET_STRING_ELT(outkind, i, mkChar(o >= 0 && o <= 2 ? kinds[o] : "?"));
    LOGICAL(diff)[i] = g != 0;
  }
  static const char *const nms[] = {"name", "nf", "hask", "outkind",
                                    "differentiable"};
  SEXP vals[] = {name, nf, hask, outkind, diff};
  _Static_assert(sizeof nms / sizeof nms[0] == sizeof vals / sizeof vals[0],
                 "one name per value");
  SEXP res = ffi_named_list((int)(sizeof nms / sizeof nms[0]), nms, vals);
  UNPROTECT(5);
  return res;
}

/* a dimension d of the engine, or NA with the refusal's attributes:
   "message", "refused" (de != 0: the rule refused) and, when refused,
   "kind" ("dimension" for de = 1, "value" for de = 2) */
static SEXP dim_answer(int d, int de, const char *msg) {
  SEXP res = PROTECT(ScalarInteger(d >= 0 ? d : NA_INTEGER)); /* 1 */
  if (d < 0) {
    setAttrib(res, install("message"), mkString(msg));
    setAttrib(res, install("refused"), ScalarLogical(de != 0));
    if (de != 0)
      setAttrib(res, install("kind"),
                mkString(de == 1 ? "dimension" : "value"));
  }
  UNPROTECT(1);
  return res;
}

/* the engine's dimension of op(name) on arguments of dimensions dims and
   integer parameters ip: an integer, or NA with attributes "message" (the
   engine's), "refused" (TRUE when the rule refused the dimensions or
   parameters, FALSE for an unknown op or a wrong arity) and, when refused,
   "kind": "dimension" (an argument's dimension) or "value" (a parameter) */
SEXP ffi_op_dim(SEXP name, SEXP dims, SEXP ip) {
  if (TYPEOF(name) != STRSXP || XLENGTH(name) != 1 ||
      STRING_ELT(name, 0) == NA_STRING || TYPEOF(dims) != INTSXP ||
      TYPEOF(ip) != INTSXP || XLENGTH(dims) > 8 || XLENGTH(ip) > 8)
    error("ffi_op_dim: a name, integer dims and integer parameters");
  char msg[1024];
  int de = 0;
  int d = rk_table_op_dim(CHAR(STRING_ELT(name, 0)), (int)XLENGTH(dims),
                          INTEGER(dims), (int)XLENGTH(ip), INTEGER(ip), &de,
                          msg, (int)sizeof msg);
  return dim_answer(d, de, msg);
}

/* the engine's output dimension of reduction `name` on a formula of
   dimension d, a weight of dimension e and K (doubles: K * d may pass
   INT_MAX): an integer, or NA with the attributes of ffi_op_dim's */
SEXP ffi_red_dim(SEXP name, SEXP d, SEXP e, SEXP K) {
  if (TYPEOF(name) != STRSXP || XLENGTH(name) != 1 ||
      STRING_ELT(name, 0) == NA_STRING || TYPEOF(d) != REALSXP ||
      TYPEOF(e) != REALSXP || TYPEOF(K) != REALSXP || XLENGTH(d) != 1 ||
      XLENGTH(e) != 1 || XLENGTH(K) != 1 || !R_FINITE(REAL(d)[0]) ||
      !R_FINITE(REAL(e)[0]) || !R_FINITE(REAL(K)[0]) ||
      fabs(REAL(K)[0]) > 1e15 || fabs(REAL(d)[0]) > 1e9 ||
      fabs(REAL(e)[0]) > 1e9)
    error("ffi_red_dim: a name and three finite numbers");
  char msg[1024];
  int de = 0;
  int out = rk_table_red_dim(CHAR(STRING_ELT(name, 0)), (long long)REAL(d)[0],
                             (long long)REAL(e)[0], (long long)REAL(K)[0], &de,
                             msg, (int)sizeof msg);
  return dim_answer(out, de, msg);
}

/* list(ops = <columns of the op table>, reds = <columns of red.def>) */
SEXP ffi_engine_tables(void) {
  SEXP ops = PROTECT(ffi_op_table());   /* 1 */
  SEXP reds = PROTECT(ffi_red_table()); /* 2 */
  static const char *const nms[] = {"ops", "reds"};
  SEXP vals[] = {ops, reds};
  _Static_assert(sizeof nms / sizeof nms[0] == sizeof vals / sizeof vals[0],
                 "one name per value");
  SEXP res = ffi_named_list((int)(sizeof nms / sizeof nms[0]), nms, vals);
  UNPROTECT(2);
  return res;
}

/* name NULL: the names of the C tests; else run that test with scratch
   files under tmpdir: list(pass = TRUE/FALSE, message = "...") */
SEXP ffi_ctest(SEXP name, SEXP tmpdir) {
  if (name == R_NilValue) {
    int n = rk_ctest_count();
    SEXP res = PROTECT(allocVector(STRSXP, n)); /* 1 */
    for (int i = 0; i < n; i++)
      SET_STRING_ELT(res, i, mkChar(rk_ctest_name(i)));
    UNPROTECT(1);
    return res;
  }
  if (TYPEOF(name) != STRSXP || XLENGTH(name) != 1 ||
      STRING_ELT(name, 0) == NA_STRING || TYPEOF(tmpdir) != STRSXP ||
      XLENGTH(tmpdir) != 1 || STRING_ELT(tmpdir, 0) == NA_STRING)
    error("ffi_ctest: name and tmpdir must be strings");
  char msg[1024];
  int ok = rk_ctest_run(CHAR(STRING_ELT(name, 0)),
                        translateChar(STRING_ELT(tmpdir, 0)), msg, sizeof msg);
  if (ok < 0)
    error("%s", msg);
  SEXP pass = PROTECT(ScalarLogical(ok == 1)); /* 1 */
  SEXP m = PROTECT(mkString(msg));             /* 2 */
  static const char *const nms[] = {"pass", "message"};
  SEXP vals[] = {pass, m};
  _Static_assert(sizeof nms / sizeof nms[0] == sizeof vals / sizeof vals[0],
                 "one name per value");
  SEXP res = ffi_named_list((int)(sizeof nms / sizeof nms[0]), nms, vals);
  UNPROTECT(2);
  return res;
}
