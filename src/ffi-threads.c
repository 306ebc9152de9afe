/*
 * ffi-threads.c -- the .Call glue of threads.c: what the thread getter
 * decides and what the last reduction really used (for the tests and
 * rkeops_threads()).
 */
#include <R.h>
#include <Rinternals.h>

#include "threads.h"

/* ffi_threads_info(ncore): list(threads, why, available, last_used, pool,
   forked); threads is the count the getter gives for ncore (0: default) */
SEXP ffi_threads_info(SEXP ncore) {
  int req = 0;
  if (TYPEOF(ncore) == INTSXP && XLENGTH(ncore) == 1 &&
      INTEGER(ncore)[0] != NA_INTEGER)
    req = INTEGER(ncore)[0];
  else if (TYPEOF(ncore) == REALSXP && XLENGTH(ncore) == 1 &&
           R_FINITE(REAL(ncore)[0]) && REAL(ncore)[0] >= 1 &&
           REAL(ncore)[0] < 2147483647.0)
    req = (int)REAL(ncore)[0];
  const char *why = "";
  int n = rk_threads_get(req, &why);
  const char *names[] = {"threads",   "why",  "available",
                         "last_used", "pool", "forked"};
  SEXP res = PROTECT(allocVector(VECSXP, 6));
  SEXP nms = PROTECT(allocVector(STRSXP, 6));
  for (int i = 0; i < 6; i++)
    SET_STRING_ELT(nms, i, mkChar(names[i]));
  SET_VECTOR_ELT(res, 0, ScalarInteger(n));
  SET_VECTOR_ELT(res, 1, mkString(why));
  SET_VECTOR_ELT(res, 2, ScalarInteger(rk_threads_avail()));
  SET_VECTOR_ELT(res, 3, ScalarInteger(rk_threads_last_used()));
  SET_VECTOR_ELT(res, 4, ScalarInteger(rk_threads_pool_size()));
  SET_VECTOR_ELT(res, 5, ScalarLogical(rk_threads_forked()));
  setAttrib(res, R_NamesSymbol, nms);
  UNPROTECT(2);
  return res;
}
