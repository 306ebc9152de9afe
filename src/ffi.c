/*
 * ffi.c -- the border between R and the C engine.
 *
 * Every ffi_* function follows the same pattern: validate the SEXPs,
 * unpack them into plain C structs (pointers into R memory, or R_alloc'ed
 * scratch that R reclaims itself), allocate any R result *before* calling
 * the engine, call the public C API (inst/include/rkeops.h) only, and raise
 * R errors only after the engine has returned and released what it owned.
 * Errors are built in R: ffi_abort() hands the rk_error to
 * rkeops:::rk_ffi_fail(), which signals a classed condition.
 *
 * With init.c, the only file of the package that includes R headers.
 */
#include <R.h>
#include <Rinternals.h>

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../inst/include/rkeops.h"
#include "ffi.h"

static SEXP rk_tag = NULL;      /* tag of our external pointers */
static SEXP rk_sym_msgs = NULL; /* attribute "messages"         */

void rk_ffi_init(DllInfo *dll) {
  (void)dll;
  rk_tag = install("rkeops_formula");
  rk_sym_msgs = install("messages");
}

/* a UTF-8 string as a length-one character vector */
SEXP ffi_str(const char *s) {
  SEXP c = PROTECT(mkCharCE(s ? s : "", CE_UTF8)); /* 1: the CHARSXP */
  SEXP res = ScalarString(c);
  UNPROTECT(1);
  return res;
}

/* the same, NA for NULL */
static SEXP ffi_str_na(const char *s) {
  return s ? ffi_str(s) : ScalarString(NA_STRING);
}

/* ---- errors ---------------------------------------------------------------
 */

void ffi_err_init(rk_error *e) {
  e->code = RK_OK;
  e->pos = -1;
  e->arg = -1;
  e->msg[0] = e->log[0] = e->path[0] = '\0';
}

/* Raise the R condition for e (never returns).  Must be called only when no
   C resource is held: the condition is signalled with a longjmp. */
void NORET ffi_abort(rk_error *e, const char *formula, const char *messages) {
  e->msg[sizeof e->msg - 1] = '\0';
  e->log[sizeof e->log - 1] = '\0';
  e->path[sizeof e->path - 1] = '\0';
  SEXP info = PROTECT(allocVector(VECSXP, 9)); /* 1: info */
  SEXP nms = PROTECT(allocVector(STRSXP, 9));  /* 2: names(info) */
  static const char *const fields[] = {"code", "code_name", "message",
                                       "pos",  "arg",       "log",
                                       "path", "formula",   "messages"};
  for (int i = 0; i < 9; i++)
    SET_STRING_ELT(nms, i, mkChar(fields[i]));
  setAttrib(info, R_NamesSymbol, nms);
  SET_VECTOR_ELT(info, 0, ScalarInteger(e->code));
  SET_VECTOR_ELT(info, 1, mkString(rk_code_name(e->code)));
  SET_VECTOR_ELT(info, 2, mkString(e->msg[0] ? e->msg : "unknown error"));
  SET_VECTOR_ELT(info, 3, ScalarInteger(e->pos));
  SET_VECTOR_ELT(info, 4, ScalarInteger(e->arg));
  SET_VECTOR_ELT(info, 5, mkString(e->log));
  SET_VECTOR_ELT(info, 6, mkString(e->path));
  SET_VECTOR_ELT(info, 7, formula ? ffi_str(formula) : R_NilValue);
  SET_VECTOR_ELT(info, 8, mkString(messages ? messages : ""));
  SEXP ns = PROTECT(R_FindNamespace(mkString("rkeops")));   /* 3: namespace */
  SEXP call = PROTECT(lang2(install("rk_ffi_fail"), info)); /* 4: call */
  eval(call, ns);
  UNPROTECT(4);
  error("rkeops: internal error (rk_ffi_fail returned)");
}

/* an error detected by the glue itself */
void NORET ffi_abortf(int code, const char *fmt, ...) {
  rk_error e;
  ffi_err_init(&e);
  e.code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e.msg, sizeof e.msg, fmt, ap);
  va_end(ap);
  ffi_abort(&e, NULL, NULL);
}

/* ---- small unpacking helpers ------------------------------------------------
 */

static const char *ffi_string1(SEXP x, const char *what) {
  if (TYPEOF(x) != STRSXP || XLENGTH(x) != 1 || STRING_ELT(x, 0) == NA_STRING)
    ffi_abortf(RK_EINPUT, "`%s` must be a single string", what);
  return translateCharUTF8(STRING_ELT(x, 0));
}

int ffi_int1(SEXP x, const char *what) {
  if ((TYPEOF(x) != INTSXP && TYPEOF(x) != REALSXP && TYPEOF(x) != LGLSXP) ||
      XLENGTH(x) != 1)
    ffi_abortf(RK_EINPUT, "`%s` must be a single number", what);
  int v = asInteger(x);
  if (v == NA_INTEGER)
    ffi_abortf(RK_EINPUT, "`%s` must not be NA", what);
  return v;
}

SEXP ffi_list_get(SEXP list, const char *name) {
  SEXP nms = getAttrib(list, R_NamesSymbol);
  if (nms == R_NilValue)
    return R_NilValue;
  for (R_xlen_t i = 0; i < XLENGTH(list); i++)
    if (strcmp(CHAR(STRING_ELT(nms, i)), name) == 0)
      return VECTOR_ELT(list, i);
  return R_NilValue;
}

/* ---- verbose messages and interrupts ---------------------------------------
 * Messages from the engine are collected in a fixed buffer on the C stack
 * (no allocation while the engine runs) and returned to R, which shows them
 * with message() so that they can be captured and muffled. */

static void ffi_message(void *data, const char *msg) {
  ffi_msgbuf *mb = data;
  if (msg == NULL)
    return;
  size_t room = sizeof mb->buf - mb->len;
  if (room <= 1)
    return;
  int n = snprintf(mb->buf + mb->len, room, "%s%s", msg,
                   (*msg && msg[strlen(msg) - 1] == '\n') ? "" : "\n");
  if (n > 0)
    mb->len += ((size_t)n < room) ? (size_t)n : room - 1;
}

static void ffi_check_interrupt(void *data) {
  (void)data;
  R_CheckUserInterrupt();
}

/* non-zero when the user pressed Ctrl-C; never longjmps */
static int ffi_interrupted(void *data) {
  (void)data;
  return R_ToplevelExec(ffi_check_interrupt, NULL) == FALSE;
}

/* options list built by rkeops:::rk_core_options() */
void ffi_options(SEXP options, rk_options *o, ffi_msgbuf *mb) {
  if (TYPEOF(options) != VECSXP)
    ffi_abortf(RK_EINPUT, "`options` must be a list");
  rk_options_default(o);
  SEXP x;
  if ((x = ffi_list_get(options, "backend")) != R_NilValue)
    o->backend = ffi_int1(x, "backend");
  if ((x = ffi_list_get(options, "device")) != R_NilValue)
    o->device = ffi_int1(x, "device");
  if ((x = ffi_list_get(options, "devices")) != R_NilValue &&
      TYPEOF(x) == INTSXP && XLENGTH(x) > 1 && XLENGTH(x) <= 64) {
    o->ndevices = (int)XLENGTH(x); /* x lives in `options` (run.c, parts) */
    o->devices = INTEGER(x);
  }
  if ((x = ffi_list_get(options, "precision")) != R_NilValue)
    o->precision = ffi_int1(x, "precision");
  if ((x = ffi_list_get(options, "nthreads")) != R_NilValue)
    o->nthreads = ffi_int1(x, "nthreads");
  if ((x = ffi_list_get(options, "verbose")) != R_NilValue)
    o->verbose = ffi_int1(x, "verbose") != 0;
  x = ffi_list_get(options, "cache_dir");
  if (TYPEOF(x) == STRSXP && XLENGTH(x) == 1 && STRING_ELT(x, 0) != NA_STRING)
    o->cache_dir = translateCharUTF8(STRING_ELT(x, 0));
  else
    o->cache_dir = NULL;
  if (o->backend != RK_BACKEND_CPU && o->backend != RK_BACKEND_GPU)
    ffi_abortf(RK_EVALUE, "unknown backend %d", o->backend);
  if (o->precision != 32 && o->precision != 64)
    ffi_abortf(RK_EVALUE, "precision must be 32 or 64, not %d", o->precision);
  o->interrupted = ffi_interrupted;
  o->interrupt_data = NULL;
  mb->len = 0;
  mb->buf[0] = '\0';
  o->message = ffi_message;
  o->message_data = mb;
}

/* ---- formulas
 * ---------------------------------------------------------------- */

static void ffi_formula_finalize(SEXP ptr) {
  rk_formula *f = R_ExternalPtrAddr(ptr);
  if (f != NULL) {
    R_ClearExternalPtr(ptr);
    rk_formula_free(f);
  }
}

static const char **ffi_args(SEXP args, int *nargs) {
  if (TYPEOF(args) != STRSXP)
    ffi_abortf(RK_EINPUT, "`args` must be a character vector");
  R_xlen_t n = XLENGTH(args);
  if (n > INT_MAX)
    ffi_abortf(RK_EINPUT, "too many arguments");
  const char **a = (const char **)R_alloc(n > 0 ? n : 1, sizeof *a);
  for (R_xlen_t i = 0; i < n; i++) {
    if (STRING_ELT(args, i) == NA_STRING)
      ffi_abortf(RK_EINPUT, "`args[%d]` is NA", (int)i + 1);
    a[i] = translateCharUTF8(STRING_ELT(args, i));
  }
  *nargs = (int)n;
  return a;
}

/* The formula behind ptr.  A NULL address (the object went through
   saveRDS()/readRDS(), or a new session) is re-parsed from the formula,
   arguments and scheme kept in the pointer's protected field. */
rk_formula *ffi_formula(SEXP ptr) {
  if (TYPEOF(ptr) != EXTPTRSXP || R_ExternalPtrTag(ptr) != rk_tag)
    ffi_abortf(RK_EINPUT, "not an rkeops formula pointer");
  rk_formula *f = R_ExternalPtrAddr(ptr);
  if (f != NULL)
    return f;
  SEXP prot = R_ExternalPtrProtected(ptr);
  if (TYPEOF(prot) != VECSXP || XLENGTH(prot) != 3)
    ffi_abortf(RK_EINTERNAL, "formula pointer without its formula");
  const char *formula = ffi_string1(VECTOR_ELT(prot, 0), "formula");
  int nargs;
  const char **args = ffi_args(VECTOR_ELT(prot, 1), &nargs);
  int scheme = ffi_int1(VECTOR_ELT(prot, 2), "sum_scheme");
  rk_error e;
  ffi_err_init(&e);
  if (rk_formula_parse(formula, args, nargs, scheme, &f, &e) != RK_OK)
    ffi_abort(&e, formula, NULL);
  R_SetExternalPtrAddr(ptr, f);
  R_RegisterCFinalizerEx(ptr, ffi_formula_finalize, TRUE);
  return f;
}

const char *ffi_formula_text(SEXP ptr) {
  SEXP prot = R_ExternalPtrProtected(ptr);
  if (TYPEOF(prot) == VECSXP && XLENGTH(prot) == 3 &&
      TYPEOF(VECTOR_ELT(prot, 0)) == STRSXP)
    return translateCharUTF8(STRING_ELT(VECTOR_ELT(prot, 0), 0));
  return NULL;
}

SEXP ffi_formula_info(SEXP ptr) {
  rk_formula *f = ffi_formula(ptr);
  int nv = rk_formula_nvars(f);
  static const char *const fields[] = {
      "ptr",       "names", "dims",      "cats", "axis", "outdim", "outkind",
      "canonical", "nodes", "reduction", "K",    "f",    "w"};
  SEXP res = PROTECT(allocVector(VECSXP, 13)); /* 1: result */
  SEXP nms = PROTECT(allocVector(STRSXP, 13)); /* 2: names */
  for (int i = 0; i < 13; i++)
    SET_STRING_ELT(nms, i, mkChar(fields[i]));
  setAttrib(res, R_NamesSymbol, nms);
  SET_VECTOR_ELT(res, 0, ptr);
  SEXP names = allocVector(STRSXP, nv);
  SET_VECTOR_ELT(res, 1, names);
  SEXP dims = allocVector(INTSXP, nv);
  SET_VECTOR_ELT(res, 2, dims);
  SEXP cats = allocVector(INTSXP, nv);
  SET_VECTOR_ELT(res, 3, cats);
  for (int p = 0; p < nv; p++) {
    const char *nm = rk_formula_var_name(f, p);
    SET_STRING_ELT(names, p, mkCharCE(nm ? nm : "", CE_UTF8));
    INTEGER(dims)[p] = rk_formula_var_dim(f, p);
    INTEGER(cats)[p] = rk_formula_var_cat(f, p);
  }
  SET_VECTOR_ELT(res, 4, ScalarInteger(rk_formula_axis(f)));
  SET_VECTOR_ELT(res, 5, ScalarInteger(rk_formula_outdim(f)));
  SET_VECTOR_ELT(res, 6, ScalarInteger(rk_formula_outkind(f)));
  const char *canon = rk_formula_canonical(f);
  SET_VECTOR_ELT(res, 7, ffi_str(canon ? canon : ""));
  SET_VECTOR_ELT(res, 8, ScalarInteger(rk_formula_nodes(f)));
  /* the parts keops_grad() composes its formulas from (R/keops_grad.R) */
  SET_VECTOR_ELT(res, 9, ffi_str_na(rk_formula_reduction(f)));
  SET_VECTOR_ELT(res, 10, ScalarInteger(rk_formula_K(f)));
  SET_VECTOR_ELT(res, 11, ffi_str_na(rk_formula_part(f, 0)));
  SET_VECTOR_ELT(res, 12, ffi_str_na(rk_formula_part(f, 1)));
  UNPROTECT(2);
  return res;
}

/* ffi_parse(formula, args, sum_scheme): list(ptr, names, dims, cats, axis,
   outdim, outkind, canonical, nodes, reduction, K, f, w) */
SEXP ffi_parse(SEXP formula, SEXP args, SEXP sum_scheme) {
  const char *ftext = ffi_string1(formula, "formula");
  int nargs;
  const char **a = ffi_args(args, &nargs);
  int scheme = ffi_int1(sum_scheme, "sum_scheme");
  if (scheme < RK_SCHEME_AUTO || scheme > RK_SCHEME_KAHAN)
    ffi_abortf(RK_EVALUE, "unknown sum_scheme %d", scheme);

  /* acquire the R objects first, so that the parsed formula is owned by a
     finalized pointer from the moment it exists */
  SEXP prot = PROTECT(allocVector(VECSXP, 3)); /* 1: what re-parses */
  SET_VECTOR_ELT(prot, 0, ScalarString(STRING_ELT(formula, 0)));
  SET_VECTOR_ELT(prot, 1, duplicate(args));
  SET_VECTOR_ELT(prot, 2, ScalarInteger(scheme));
  SEXP ptr = PROTECT(R_MakeExternalPtr(NULL, rk_tag, prot)); /* 2: ptr */
  R_RegisterCFinalizerEx(ptr, ffi_formula_finalize, TRUE);

  rk_formula *f = NULL;
  rk_error e;
  ffi_err_init(&e);
  if (rk_formula_parse(ftext, a, nargs, scheme, &f, &e) != RK_OK)
    ffi_abort(&e, ftext, NULL);
  R_SetExternalPtrAddr(ptr, f);

  SEXP res = ffi_formula_info(ptr);
  UNPROTECT(2);
  return res;
}

SEXP ffi_named_list(int n, const char *const *names, SEXP *vals) {
  SEXP res = PROTECT(allocVector(VECSXP, n)); /* 1 */
  SEXP nms = PROTECT(allocVector(STRSXP, n)); /* 2 */
  for (int i = 0; i < n; i++) {
    SET_VECTOR_ELT(res, i, vals[i]);
    SET_STRING_ELT(nms, i, mkChar(names[i]));
  }
  setAttrib(res, R_NamesSymbol, nms);
  UNPROTECT(2);
  return res;
}

static SEXP plan_fwd_sexp(const rk_grad_plan *g, int k) {
  static const char *const nms[] = {"formula", "name", "pos", "dim", "cat"};
  SEXP vals[] = {PROTECT(g->fwd_formula[k] ? ScalarString(mkCharCE(
                                                 g->fwd_formula[k], CE_UTF8))
                                           : ScalarString(NA_STRING)), /* 1 */
                 PROTECT(mkString(g->fwd_name[k])),                    /* 2 */
                 PROTECT(ScalarInteger(g->fwd_pos[k])),                /* 3 */
                 PROTECT(ScalarInteger(g->fwd_dim[k])),                /* 4 */
                 PROTECT(ScalarInteger(g->fwd_cat[k]))};               /* 5 */
  _Static_assert(sizeof nms / sizeof nms[0] == sizeof vals / sizeof vals[0],
                 "one name per value");
  SEXP res = ffi_named_list(5, nms, vals);
  UNPROTECT(5);
  return res;
}

/* the R list of a plan (run under R_ExecWithCleanup: the plan is freed
   even when an allocation here fails) */
static SEXP plan_sexp(void *data) {
  const rk_grad_plan *g = data;
  static const char *const nms[] = {"formula", "axis", "full", "eta", "fwd"};
  SEXP vals[] = {PROTECT(ScalarString(mkCharCE(g->formula, CE_UTF8))), /* 1 */
                 PROTECT(ScalarInteger(g->axis)),                      /* 2 */
                 PROTECT(ScalarLogical(g->full)),                      /* 3 */
                 PROTECT(allocVector(INTSXP, 3)),                      /* 4 */
                 PROTECT(allocVector(VECSXP, g->nfwd))};               /* 5 */
  _Static_assert(sizeof nms / sizeof nms[0] == sizeof vals / sizeof vals[0],
                 "one name per value");
  INTEGER(vals[3])[0] = g->eta_pos;
  INTEGER(vals[3])[1] = g->eta_dim;
  INTEGER(vals[3])[2] = g->eta_cat;
  for (int k = 0; k < g->nfwd; k++)
    SET_VECTOR_ELT(vals[4], k, plan_fwd_sexp(g, k));
  SEXP res = ffi_named_list(5, nms, vals);
  UNPROTECT(5);
  return res;
}

static void plan_free(void *data) {
  rk_grad_plan_free(data);
}

/* ffi_grad_plan(ptr, pos, eta_param): the gradient plan of the parsed
   reduction (rk_formula_grad_plan, the reduction unit's plan):
   list(formula, axis, full, eta = c(pos, dim, cat), fwd = list(list(
   formula (NA: the reduction itself), name, pos, dim, cat), ...)) */
SEXP ffi_grad_plan(SEXP ptr, SEXP pos, SEXP eta_param) {
  rk_formula *f = ffi_formula(ptr);
  int p = ffi_int1(pos, "pos");
  if (TYPEOF(eta_param) != LGLSXP || XLENGTH(eta_param) != 1 ||
      LOGICAL(eta_param)[0] == NA_LOGICAL)
    ffi_abortf(RK_EINPUT, "ffi_grad_plan: eta_param must be TRUE or FALSE");
  rk_grad_plan g;
  rk_error e;
  ffi_err_init(&e);
  if (rk_formula_grad_plan(f, p, LOGICAL(eta_param)[0], &g, &e) != RK_OK)
    ffi_abort(&e, NULL, NULL);
  return R_ExecWithCleanup(plan_sexp, &g, plan_free, &g);
}

SEXP ffi_ptr_is_null(SEXP ptr) {
  if (TYPEOF(ptr) != EXTPTRSXP)
    ffi_abortf(RK_EINPUT, "not an external pointer");
  return ScalarLogical(R_ExternalPtrAddr(ptr) == NULL);
}

/* ---- running
 * ----------------------------------------------------------------- */

SEXP ffi_with_messages(SEXP x, const ffi_msgbuf *mb) {
  if (mb->len > 0) {
    PROTECT(x); /* 1: x */
    setAttrib(x, rk_sym_msgs, ffi_str(mb->buf));
    UNPROTECT(1);
  }
  return x;
}

/* ffi_run(ptr, inputs, options, inner_dim_is_row): the outrows x outdim
   result.  inputs: one double matrix per position (parameters too), all in
   the layout given by inner_dim_is_row; checked in R, checked again here. */
SEXP ffi_run(SEXP ptr, SEXP inputs, SEXP options, SEXP inner_dim_is_row) {
  rk_formula *f = ffi_formula(ptr);
  const char *ftext = ffi_formula_text(ptr);
  int row = asLogical(inner_dim_is_row);
  if (row == NA_LOGICAL)
    ffi_abortf(RK_EINPUT, "`inner_dim_is_row` must be TRUE or FALSE");
  if (TYPEOF(inputs) != VECSXP)
    ffi_abortf(RK_EINPUT, "`input` must be a list");
  int nv = rk_formula_nvars(f);
  if (XLENGTH(inputs) != nv)
    ffi_abortf(RK_EINPUT, "the formula needs %d inputs, not %d", nv,
               (int)XLENGTH(inputs));

  rk_input *in = (rk_input *)R_alloc(nv > 0 ? nv : 1, sizeof *in);
  for (int p = 0; p < nv; p++) {
    SEXP x = VECTOR_ELT(inputs, p);
    if (TYPEOF(x) != REALSXP)
      ffi_abortf(RK_EINPUT, "input %d is not a double vector or matrix", p + 1);
    SEXP dim = getAttrib(x, R_DimSymbol);
    int64_t nr, nc;
    if (TYPEOF(dim) == INTSXP && XLENGTH(dim) == 2) {
      nr = INTEGER(dim)[0];
      nc = INTEGER(dim)[1];
    } else if (row) {
      nr = 1;
      nc = XLENGTH(x);
    } else {
      nr = XLENGTH(x);
      nc = 1;
    }
    in[p].data = REAL(x);
    in[p].nrow = nr;
    in[p].ncol = nc;
    in[p].layout = row ? RK_LAYOUT_ROW : RK_LAYOUT_COL;
  }

  rk_options o;
  ffi_msgbuf mb;
  ffi_options(options, &o, &mb);

  rk_error e;
  ffi_err_init(&e);
  int64_t rows = rk_formula_outrows(f, in, nv, &e);
  if (rows < 0)
    ffi_abort(&e, ftext, NULL);
  if (rows > INT_MAX)
    ffi_abortf(RK_EVALUE, "%lld output rows: more than R's matrices hold",
               (long long)rows);
  int outdim = rk_formula_outdim(f);

  /* the result belongs to R before the engine runs: nothing to free later */
  SEXP res = PROTECT(allocMatrix(REALSXP, (int)rows, outdim)); /* 1: result */
  if (rows > 0 && outdim > 0) {
    if (rk_formula_run(f, &o, in, nv, REAL(res), &e) != RK_OK)
      ffi_abort(&e, ftext, mb.buf);
  }
  ffi_cache_notice();
  res = ffi_with_messages(res, &mb);
  UNPROTECT(1);
  return res;
}

/* ffi_prepare(ptr, options): TRUE when a compiler ran */
SEXP ffi_prepare(SEXP ptr, SEXP options) {
  rk_formula *f = ffi_formula(ptr);
  rk_options o;
  ffi_msgbuf mb;
  ffi_options(options, &o, &mb);
  rk_error e;
  ffi_err_init(&e);
  int compiled = 0;
  if (rk_formula_prepare(f, &o, &compiled, &e) != RK_OK)
    ffi_abort(&e, ffi_formula_text(ptr), mb.buf);
  ffi_cache_notice();
  return ffi_with_messages(ScalarLogical(compiled != 0), &mb);
}

/* ffi_source(ptr, options): the generated source, one string */
SEXP ffi_source(SEXP ptr, SEXP options) {
  rk_formula *f = ffi_formula(ptr);
  rk_options o;
  ffi_msgbuf mb;
  ffi_options(options, &o, &mb);
  rk_error e;
  ffi_err_init(&e);
  char probe[1];
  int64_t need = rk_formula_source(f, &o, probe, sizeof probe, &e);
  if (need < 0)
    ffi_abort(&e, ffi_formula_text(ptr), mb.buf);
  if (need >= INT_MAX)
    ffi_abortf(RK_EINTERNAL, "generated source too long");
  /* scratch owned by R, so an error cannot leak it */
  SEXP buf = PROTECT(allocVector(RAWSXP, (R_xlen_t)need + 1)); /* 1: buffer */
  if (rk_formula_source(f, &o, (char *)RAW(buf), (size_t)need + 1, &e) < 0)
    ffi_abort(&e, ffi_formula_text(ptr), mb.buf);
  RAW(buf)[need] = 0;
  SEXP res = PROTECT(ffi_str((const char *)RAW(buf))); /* 2 */
  UNPROTECT(2);
  return res;
}

/* ffi_nvrtc_check(ptr, precision, major, minor): TRUE, or an error */
SEXP ffi_nvrtc_check(SEXP ptr, SEXP precision, SEXP major, SEXP minor) {
  rk_formula *f = ffi_formula(ptr);
  int prec = ffi_int1(precision, "precision");
  int maj = ffi_int1(major, "major");
  int min = ffi_int1(minor, "minor");
  if (prec != 32 && prec != 64)
    ffi_abortf(RK_EVALUE, "precision must be 32 or 64, not %d", prec);
  rk_error e;
  ffi_err_init(&e);
  if (rk_formula_nvrtc_check(f, prec, maj, min, &e) != RK_OK)
    ffi_abort(&e, ffi_formula_text(ptr), NULL);
  return ScalarLogical(TRUE);
}

/* ffi_nvrtc_image(ptr, precision, major, minor): the kernel image (raw) */
SEXP ffi_nvrtc_image(SEXP ptr, SEXP precision, SEXP major, SEXP minor) {
  rk_formula *f = ffi_formula(ptr);
  int prec = ffi_int1(precision, "precision");
  int maj = ffi_int1(major, "major");
  int min = ffi_int1(minor, "minor");
  rk_error e;
  ffi_err_init(&e);
  void *img = NULL;
  size_t n = 0;
  if (rk_formula_nvrtc_image(f, prec, maj, min, &img, &n, &e) != RK_OK) {
    free(img);
    ffi_abort(&e, ffi_formula_text(ptr), NULL);
  }
  SEXP res = allocVector(RAWSXP, (R_xlen_t)n);
  memcpy(RAW(res), img, n);
  free(img);
  return res;
}

/* ---- engine state
 * ------------------------------------------------------------ */

SEXP ffi_cache_clear_memory(void) {
  rk_cache_clear_memory();
  return R_NilValue;
}

SEXP ffi_stats(void) {
  SEXP res = PROTECT(allocVector(REALSXP, 2)); /* 1: result */
  SEXP nms = PROTECT(allocVector(STRSXP, 2));  /* 2: names */
  REAL(res)[0] = (double)rk_stat_compiles();
  REAL(res)[1] = (double)rk_stat_disk_loads();
  SET_STRING_ELT(nms, 0, mkChar("compiles"));
  SET_STRING_ELT(nms, 1, mkChar("disk_loads"));
  setAttrib(res, R_NamesSymbol, nms);
  UNPROTECT(2);
  return res;
}

/* ffi_config(): list(description, openmp, gpu_count, gpu_why) */
SEXP ffi_config(void) {
  char small[1];
  size_t need = rk_config_describe(small, sizeof small);
  if (need >= INT_MAX)
    need = 1 << 20;
  SEXP buf = PROTECT(allocVector(RAWSXP, (R_xlen_t)need + 1)); /* 1: buffer */
  rk_config_describe((char *)RAW(buf), need + 1);
  RAW(buf)[need] = 0;
  char why[1024];
  why[0] = '\0';
  int ngpu = rk_gpu_count(why, sizeof why);
  why[sizeof why - 1] = '\0';
  int omp = rk_config_openmp();

  SEXP res = PROTECT(allocVector(VECSXP, 4)); /* 2: result */
  SEXP nms = PROTECT(allocVector(STRSXP, 4)); /* 3: names */
  SET_STRING_ELT(nms, 0, mkChar("description"));
  SET_STRING_ELT(nms, 1, mkChar("openmp"));
  SET_STRING_ELT(nms, 2, mkChar("gpu_count"));
  SET_STRING_ELT(nms, 3, mkChar("gpu_why"));
  setAttrib(res, R_NamesSymbol, nms);
  SET_VECTOR_ELT(res, 0, ffi_str((const char *)RAW(buf)));
  SET_VECTOR_ELT(res, 1, ScalarLogical(omp != 0));
  SET_VECTOR_ELT(res, 2, ScalarInteger(ngpu > 0 ? ngpu : 0));
  SET_VECTOR_ELT(res, 3, ffi_str(why));
  UNPROTECT(3);
  return res;
}
