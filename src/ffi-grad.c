/*
 * ffi-grad.c -- .Call glue of the gradient helpers (R/keops_grad.R).
 *
 * ffi_grad_parts(formula, args, sum_scheme) parses a reduction and returns
 * the parts R needs to compose its gradient formulas:
 *   list(reduction, axis, K, outdim, f, w, nvars, names, dims, cats,
 *        canonical, nodes)
 * or, when the engine refuses the formula, list(error = <info>) with the
 * fields that rkeops:::rk_ffi_fail() turns into a classed condition (the
 * R side raises it, so no longjmp crosses the engine).
 */
#include <R.h>
#include <Rinternals.h>

#include <string.h>

#include "../inst/include/rkeops.h"

static SEXP grad_str(const char *s) {
  return s ? ScalarString(mkCharCE(s, CE_UTF8)) : ScalarString(NA_STRING);
}

static SEXP grad_named(int n, const char *const *fields) {
  SEXP res = PROTECT(allocVector(VECSXP, n));
  SEXP nms = PROTECT(allocVector(STRSXP, n));
  for (int i = 0; i < n; i++)
    SET_STRING_ELT(nms, i, mkChar(fields[i]));
  setAttrib(res, R_NamesSymbol, nms);
  UNPROTECT(2);
  return res;
}

/* list(error = info) for rk_ffi_fail() */
static SEXP grad_error(const rk_error *e, const char *formula) {
  static const char *const fields[] = {"code", "code_name", "message",
                                       "pos",  "arg",       "log",
                                       "path", "formula",   "messages"};
  static const char *const outer[] = {"error"};
  SEXP res = PROTECT(grad_named(1, outer));
  SEXP info = grad_named(9, fields);
  SET_VECTOR_ELT(res, 0, info);
  SET_VECTOR_ELT(info, 0, ScalarInteger(e->code));
  SET_VECTOR_ELT(info, 1, mkString(rk_code_name(e->code)));
  SET_VECTOR_ELT(info, 2, grad_str(e->msg[0] ? e->msg : "unknown error"));
  SET_VECTOR_ELT(info, 3, ScalarInteger(e->pos));
  SET_VECTOR_ELT(info, 4, ScalarInteger(e->arg));
  SET_VECTOR_ELT(info, 5, grad_str(e->log));
  SET_VECTOR_ELT(info, 6, grad_str(e->path));
  SET_VECTOR_ELT(info, 7, grad_str(formula));
  SET_VECTOR_ELT(info, 8, mkString(""));
  UNPROTECT(1);
  return res;
}

/* frees the parsed formula if an R error unwinds past ffi_grad_parts */
static void grad_finalize(SEXP xp) {
  rk_formula *f = R_ExternalPtrAddr(xp);
  if (f != NULL) {
    rk_formula_free(f);
    R_ClearExternalPtr(xp);
  }
}

SEXP ffi_grad_parts(SEXP formula, SEXP args, SEXP sum_scheme) {
  rk_error e;
  memset(&e, 0, sizeof e);
  e.pos = e.arg = -1;
  if (TYPEOF(formula) != STRSXP || XLENGTH(formula) != 1 ||
      STRING_ELT(formula, 0) == NA_STRING || TYPEOF(args) != STRSXP ||
      XLENGTH(args) > 65536) {
    e.code = RK_EINPUT;
    strcpy(e.msg, "`formula` must be a single string and `args` a character "
                  "vector");
    return grad_error(&e, NULL);
  }
  const char *ftext = translateCharUTF8(STRING_ELT(formula, 0));
  int nargs = (int)XLENGTH(args);
  const char **a = (const char **)R_alloc((size_t)nargs + 1, sizeof *a);
  for (int i = 0; i < nargs; i++) {
    if (STRING_ELT(args, i) == NA_STRING) {
      e.code = RK_EINPUT;
      strcpy(e.msg, "`args` must not contain NA");
      return grad_error(&e, ftext);
    }
    a[i] = translateCharUTF8(STRING_ELT(args, i));
  }
  int scheme = asInteger(sum_scheme);
  if (scheme == NA_INTEGER)
    scheme = RK_SCHEME_AUTO;

  static const char *const fields[] = {
      "reduction", "axis",  "K",    "outdim", "f",         "w",
      "nvars",     "names", "dims", "cats",   "canonical", "nodes"};
  /* R memory first; the parsed formula is owned by a finalized pointer
     from the moment it exists, so an R error cannot leak it */
  SEXP res = PROTECT(grad_named(12, fields)); /* 1: res */
  SEXP xp = PROTECT(R_MakeExternalPtr(NULL, R_NilValue, R_NilValue)); /* 2 */
  R_RegisterCFinalizerEx(xp, grad_finalize, TRUE);
  rk_formula *f = NULL;
  if (rk_formula_parse(ftext, a, nargs, scheme, &f, &e) != RK_OK) {
    UNPROTECT(2);
    return grad_error(&e, ftext);
  }
  R_SetExternalPtrAddr(xp, f);
  int nv = rk_formula_nvars(f);
  SET_VECTOR_ELT(res, 0, grad_str(rk_formula_reduction(f)));
  SET_VECTOR_ELT(res, 1, ScalarInteger(rk_formula_axis(f)));
  SET_VECTOR_ELT(res, 2, ScalarInteger(rk_formula_K(f)));
  SET_VECTOR_ELT(res, 3, ScalarInteger(rk_formula_outdim(f)));
  SET_VECTOR_ELT(res, 4, grad_str(rk_formula_part(f, 0)));
  SET_VECTOR_ELT(res, 5, grad_str(rk_formula_part(f, 1)));
  SET_VECTOR_ELT(res, 6, ScalarInteger(nv));
  SEXP names = allocVector(STRSXP, nv);
  SET_VECTOR_ELT(res, 7, names);
  SEXP dims = allocVector(INTSXP, nv);
  SET_VECTOR_ELT(res, 8, dims);
  SEXP cats = allocVector(INTSXP, nv);
  SET_VECTOR_ELT(res, 9, cats);
  for (int p = 0; p < nv; p++) {
    const char *nm = rk_formula_var_name(f, p);
    SET_STRING_ELT(names, p, mkCharCE(nm ? nm : "", CE_UTF8));
    INTEGER(dims)[p] = rk_formula_var_dim(f, p);
    INTEGER(cats)[p] = rk_formula_var_cat(f, p);
  }
  SET_VECTOR_ELT(res, 10, grad_str(rk_formula_canonical(f)));
  SET_VECTOR_ELT(res, 11, ScalarInteger(rk_formula_nodes(f)));
  grad_finalize(xp); /* done with the formula: free it now */
  UNPROTECT(2);
  return res;
}
