/*
 * ffi-cuda.c -- .Call glue of the CUDA backend's diagnostics (internal):
 * ffi_cuda_meminfo(device) returns c(free = , total = , held = ,
 * pipelined = , parts = ): device memory in bytes, free and total from cuMemGetInfo
 * on that device's primary context (the whole device, other processes
 * included), held the bytes this process holds through cuMemAlloc on all
 * devices; pipelined the number of calls run pipelined so far (be-cuda.c
 * run_pipe); parts the reduction parts of the last call's plan (be-cuda.c
 * choose_parts); NULL when no GPU is usable.  Used by bench/gpu.R and test-reduce-cuda.R to check that
 * repeated calls leak no device memory.
 */
#include <R.h>
#include <Rinternals.h>

int rk_cuda_meminfo(int device, double *free_bytes, double *total_bytes,
                    double *held, double *pipelined, double *parts);

SEXP ffi_cuda_meminfo(SEXP device) {
  int d = (TYPEOF(device) == INTSXP || TYPEOF(device) == REALSXP) &&
                  XLENGTH(device) == 1
              ? asInteger(device)
              : NA_INTEGER;
  if (d == NA_INTEGER || d < 0)
    error("device must be a non-negative integer");
  double fr = 0, tot = 0, held = 0, piped = 0, parts = 0;
  if (rk_cuda_meminfo(d, &fr, &tot, &held, &piped, &parts) != 0)
    return R_NilValue;
  SEXP res = PROTECT(allocVector(REALSXP, 5)); /* 1: result */
  SEXP nms = PROTECT(allocVector(STRSXP, 5));  /* 2: names  */
  REAL(res)[0] = fr;
  REAL(res)[1] = tot;
  REAL(res)[2] = held;
  REAL(res)[3] = piped;
  REAL(res)[4] = parts;
  SET_STRING_ELT(nms, 0, mkChar("free"));
  SET_STRING_ELT(nms, 1, mkChar("total"));
  SET_STRING_ELT(nms, 2, mkChar("held"));
  SET_STRING_ELT(nms, 3, mkChar("pipelined"));
  SET_STRING_ELT(nms, 4, mkChar("parts"));
  setAttrib(res, R_NamesSymbol, nms);
  UNPROTECT(2);
  return res;
}
