/*
 * ffi.h -- the helpers of the R glue (ffi.c) shared by the other ffi-*.c
 * files: errors raised as classed conditions (ffi_abort), the formula
 * behind an external pointer, the options list, verbose messages.
 * Included only by ffi-*.c (R headers).
 */
#ifndef RK_FFI_H
#define RK_FFI_H

#include <R.h>
#include <Rinternals.h>

#include "../inst/include/rkeops.h"

typedef struct ffi_msgbuf {
  size_t len;
  char buf[16384];
} ffi_msgbuf;

SEXP ffi_str(const char *s);
/* a named list of n values (each protected by the caller) */
SEXP ffi_named_list(int n, const char *const *names, SEXP *vals);
void ffi_err_init(rk_error *e);
/* raise the R condition for e; only when no C resource is held */
void NORET ffi_abort(rk_error *e, const char *formula, const char *messages);
void NORET ffi_abortf(int code, const char *fmt, ...);
int ffi_int1(SEXP x, const char *what);
/* the element of a named list called name, or R_NilValue */
SEXP ffi_list_get(SEXP list, const char *name);
/* the options list of rkeops:::rk_core_options(); messages go to mb */
void ffi_options(SEXP options, rk_options *o, ffi_msgbuf *mb);
rk_formula *ffi_formula(SEXP ptr);
const char *ffi_formula_text(SEXP ptr);
SEXP ffi_with_messages(SEXP x, const ffi_msgbuf *mb);
/* warn (once per directory) when the engine refused the cache directory
   and compiled in a private temporary one (ffi-backend.c); call after the
   engine returned */
void ffi_cache_notice(void);

#endif /* RK_FFI_H */
