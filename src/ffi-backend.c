/*
 * ffi-backend.c -- internal .Call glue of the backend layer, for tests and
 * for R code built on the prepared operator (be.h, rk_operator):
 *   ffi_op_prepare(ptr, inputs, options)   an operator (external pointer)
 *   ffi_op_run(op, rows, js, replace, x, states, want_states)
 *       rows = c(r0, r1), js = c(j0, j1): 0-based, half open; replace:
 *       0-based position or -1, x its new matrix; states: a (r1 - r0) x S
 *       matrix to start from, or NULL; want_states: return states
 *       instead of results
 *   ffi_op_merge(op, states, finalize)     states: list of matrices in
 *       point order -> the results, or the merged states
 *   ffi_op_info(op)            c(nout, nred, state_size, granule)
 *   ffi_be_arena(ptr, options, n)          arena bytes of the formula
 *       before / after n rounds of getting its kernel and CUDA geometry
 *   ffi_be_host(value)                     the host CPU identity in the
 *       CPU kernel key; a string overrides it, NA restores it (tests)
 *   ffi_be_key(ptr, options)               the kernel key for the options
 *   ffi_nvrtc_compile_text(src, major, minor)  NVRTC on any text: the
 *       size of the image in bytes (tests of the failure message and of
 *       the RKEOPS_NVRTC_FAST knob)
 * Inputs are column-major double matrices, one per position, as ffi_run's
 * with inner_dim_is_row = FALSE.
 */
#define R_NO_REMAP
#include "ffi.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "be.h"

static SEXP op_tag = NULL;

static void op_finalize(SEXP x) {
  rk_operator *op = R_ExternalPtrAddr(x);
  if (op) {
    R_ClearExternalPtr(x);
    rk_op_free(op);
  }
}

static rk_operator *op_get(SEXP x) {
  if (op_tag == NULL)
    op_tag = Rf_install("rkeops_operator");
  if (TYPEOF(x) != EXTPTRSXP || R_ExternalPtrTag(x) != op_tag)
    ffi_abortf(RK_EINPUT, "not an rkeops operator");
  rk_operator *op = R_ExternalPtrAddr(x);
  if (op == NULL)
    ffi_abortf(RK_EINPUT, "the operator was freed or saved: prepare it again");
  return op;
}

/* a double matrix (or vector: one column) as a COL input */
static void ffi_input(SEXP x, int pos, rk_input *in) {
  if (TYPEOF(x) != REALSXP)
    ffi_abortf(RK_EINPUT, "input %d is not a double vector or matrix", pos + 1);
  SEXP dim = Rf_getAttrib(x, R_DimSymbol);
  in->data = REAL(x);
  in->layout = RK_LAYOUT_COL;
  if (TYPEOF(dim) == INTSXP && XLENGTH(dim) == 2) {
    in->nrow = INTEGER(dim)[0];
    in->ncol = INTEGER(dim)[1];
  } else {
    in->nrow = XLENGTH(x);
    in->ncol = 1;
  }
}

SEXP ffi_op_prepare(SEXP ptr, SEXP inputs, SEXP options) {
  rk_formula *f = ffi_formula(ptr);
  if (TYPEOF(inputs) != VECSXP)
    ffi_abortf(RK_EINPUT, "`inputs` must be a list");
  int nv = rk_formula_nvars(f);
  if (XLENGTH(inputs) != nv)
    ffi_abortf(RK_EINPUT, "the formula needs %d inputs, not %d", nv,
               (int)XLENGTH(inputs));
  rk_input *in = (rk_input *)R_alloc(nv > 0 ? nv : 1, sizeof *in);
  for (int p = 0; p < nv; p++)
    ffi_input(VECTOR_ELT(inputs, p), p, &in[p]);
  rk_options o;
  ffi_msgbuf mb;
  ffi_options(options, &o, &mb);
  if (op_tag == NULL)
    op_tag = Rf_install("rkeops_operator");
  /* the formula and the inputs (used in place) live as long as the op */
  SEXP keep = PROTECT(Rf_allocVector(VECSXP, 2)); /* 1 */
  SET_VECTOR_ELT(keep, 0, ptr);
  SET_VECTOR_ELT(keep, 1, inputs);
  SEXP res = PROTECT(R_MakeExternalPtr(NULL, op_tag, keep)); /* 2 */
  R_RegisterCFinalizerEx(res, op_finalize, TRUE);
  rk_error e;
  ffi_err_init(&e);
  rk_operator *op = rk_op_prepare(f, &o, in, nv, &e);
  if (op == NULL)
    ffi_abort(&e, ffi_formula_text(ptr), mb.buf);
  R_SetExternalPtrAddr(res, op);
  res = ffi_with_messages(res, &mb);
  UNPROTECT(2);
  return res;
}

static int64_t ffi_index(SEXP x, int i, const char *what) {
  if ((TYPEOF(x) != INTSXP && TYPEOF(x) != REALSXP) || XLENGTH(x) != 2)
    ffi_abortf(RK_EINPUT, "`%s` must be two numbers", what);
  double v = TYPEOF(x) == INTSXP ? INTEGER(x)[i] : REAL(x)[i];
  if (!(v >= 0 && v <= 9e15))
    ffi_abortf(RK_EINPUT, "`%s` must be non-negative", what);
  return (int64_t)v;
}

SEXP ffi_op_run(SEXP xop, SEXP rows, SEXP js, SEXP replace, SEXP x, SEXP states,
                SEXP want_states) {
  rk_operator *op = op_get(xop);
  rk_op_call c;
  memset(&c, 0, sizeof c);
  c.r0 = ffi_index(rows, 0, "rows");
  c.r1 = ffi_index(rows, 1, "rows");
  c.j0 = ffi_index(js, 0, "js");
  c.j1 = ffi_index(js, 1, "js");
  c.replace = ffi_int1(replace, "replace");
  rk_input xin;
  if (c.replace >= 0) {
    ffi_input(x, c.replace, &xin);
    c.x = &xin;
  }
  int want = Rf_asLogical(want_states) == TRUE;
  int S = rk_op_state_size(op);
  int64_t n = c.r1 > c.r0 ? c.r1 - c.r0 : 0;
  if (n > INT_MAX)
    ffi_abortf(RK_EVALUE, "too many rows");
  if (states != R_NilValue) {
    SEXP dim = Rf_getAttrib(states, R_DimSymbol);
    if (TYPEOF(states) != REALSXP || TYPEOF(dim) != INTSXP ||
        XLENGTH(dim) != 2 || INTEGER(dim)[0] != n || INTEGER(dim)[1] != S)
      ffi_abortf(RK_EINPUT, "`states` must be a %lld x %d double matrix",
                 (long long)n, S);
    c.mode |= 1;
  }
  if (want)
    c.mode |= 2;
  rk_options cb;
  ffi_msgbuf mb;
  ffi_options(Rf_allocVector(VECSXP, 0), &cb, &mb); /* callbacks only */
  c.o = &cb;
  int outdim = want ? S : 0;
  SEXP res;
  if (want) {
    /* states in and out share the result buffer */
    res = PROTECT(Rf_allocMatrix(REALSXP, (int)n, S)); /* 1 */
    if (states != R_NilValue && n * S > 0)
      memcpy(REAL(res), REAL(states), sizeof(double) * (size_t)(n * S));
    c.st = REAL(res);
  } else {
    SEXP ptr = VECTOR_ELT(R_ExternalPtrProtected(xop), 0);
    outdim = rk_formula_outdim(ffi_formula(ptr));
    res = PROTECT(Rf_allocMatrix(REALSXP, (int)n, outdim)); /* 1 */
    c.out = REAL(res);
    if (states != R_NilValue) {
      SEXP st = PROTECT(Rf_duplicate(states)); /* 2 */
      c.st = REAL(st);
    } else {
      PROTECT(R_NilValue); /* 2 */
    }
  }
  rk_error e;
  ffi_err_init(&e);
  if (rk_op_run(op, &c, &e) != RK_OK)
    ffi_abort(&e, NULL, mb.buf);
  UNPROTECT(want ? 1 : 2);
  return res;
}

SEXP ffi_op_merge(SEXP xop, SEXP states, SEXP finalize) {
  rk_operator *op = op_get(xop);
  int S = rk_op_state_size(op), fin = Rf_asLogical(finalize) == TRUE;
  if (TYPEOF(states) != VECSXP || XLENGTH(states) < 1)
    ffi_abortf(RK_EINPUT, "`states` must be a non-empty list");
  int np = (int)XLENGTH(states), n = -1;
  for (int p = 0; p < np; p++) {
    SEXP s = VECTOR_ELT(states, p), dim = Rf_getAttrib(s, R_DimSymbol);
    if (TYPEOF(s) != REALSXP || TYPEOF(dim) != INTSXP || XLENGTH(dim) != 2 ||
        INTEGER(dim)[1] != S || (n >= 0 && INTEGER(dim)[0] != n))
      ffi_abortf(RK_EINPUT, "states[[%d]] must be an n x %d double matrix",
                 p + 1, S);
    n = INTEGER(dim)[0];
  }
  size_t part = (size_t)n * (size_t)S;
  SEXP all =
      PROTECT(Rf_allocVector(REALSXP, (R_xlen_t)(part * np) + 1)); /* 1 */
  for (int p = 0; p < np; p++)
    if (part)
      memcpy(REAL(all) + part * p, REAL(VECTOR_ELT(states, p)),
             part * sizeof(double));
  SEXP ptr = VECTOR_ELT(R_ExternalPtrProtected(xop), 0);
  int outdim = rk_formula_outdim(ffi_formula(ptr));
  SEXP res = PROTECT(Rf_allocMatrix(REALSXP, n, fin ? outdim : S)); /* 2 */
  rk_merge_args m = {n,         np, REAL(all),  n, (int64_t)part,
                     REAL(res), n,  fin ? 0 : 2};
  rk_error e;
  ffi_err_init(&e);
  if (rk_op_merge(op, &m, &e) != RK_OK)
    ffi_abort(&e, NULL, NULL);
  if (!fin && part)
    memcpy(REAL(res), REAL(all), part * sizeof(double));
  UNPROTECT(2);
  return res;
}

SEXP ffi_op_info(SEXP xop) {
  rk_operator *op = op_get(xop);
  SEXP res = PROTECT(Rf_allocVector(REALSXP, 4)); /* 1 */
  REAL(res)[0] = (double)rk_op_nout(op);
  REAL(res)[1] = (double)rk_op_nred(op);
  REAL(res)[2] = (double)rk_op_state_size(op);
  REAL(res)[3] = (double)rk_op_granule(op);
  UNPROTECT(1);
  return res;
}

SEXP ffi_be_arena(SEXP ptr, SEXP options, SEXP n) {
  rk_formula *f = ffi_formula(ptr);
  int rounds = ffi_int1(n, "n");
  rk_options o;
  ffi_msgbuf mb;
  ffi_options(options, &o, &mb);
  rk_cg_config cfg;
  rk_cg_config_env(&cfg, o.precision);
  rk_error e;
  ffi_err_init(&e);
  double before = (double)rk_arena_used(rk_ctx_arena(f->ctx));
  int rc = RK_OK;
  for (int i = 0; i < rounds && rc == RK_OK; i++) {
    rk_cuda_geom gm; /* what a GPU call computed before its cache lookup */
    rk_kernel *k;
    rc = rk_cg_cuda_geom(f, &cfg, &gm, &e);
    if (rc == RK_OK)
      rc = rk_kernel_get(rk_backend_get(RK_BACKEND_CPU), f, &o, &cfg, &k, NULL,
                         &e);
  }
  double after = (double)rk_arena_used(rk_ctx_arena(f->ctx));
  if (rc != RK_OK)
    ffi_abort(&e, ffi_formula_text(ptr), mb.buf);
  SEXP res = PROTECT(Rf_allocVector(REALSXP, 2)); /* 1 */
  REAL(res)[0] = before;
  REAL(res)[1] = after;
  UNPROTECT(1);
  return res;
}

SEXP ffi_be_host(SEXP value) {
  if (TYPEOF(value) == STRSXP && XLENGTH(value) == 1) {
    if (STRING_ELT(value, 0) == NA_STRING)
      rk_host_cpu_override(NULL);
    else
      rk_host_cpu_override(Rf_translateCharUTF8(STRING_ELT(value, 0)));
  }
  return ffi_str(rk_host_cpu());
}

SEXP ffi_be_key(SEXP ptr, SEXP options) {
  rk_formula *f = ffi_formula(ptr);
  rk_options o;
  ffi_msgbuf mb;
  ffi_options(options, &o, &mb);
  const rk_backend_i *be = rk_backend_get(o.backend);
  rk_cg_config cfg;
  rk_cg_config_env(&cfg, o.precision);
  rk_target t;
  memset(&t, 0, sizeof t);
  rk_buf key;
  rk_buf_init(&key);
  rk_buf_init(&t.text);
  rk_error e;
  ffi_err_init(&e);
  int rc = be->target(&o, &t, &e);
  if (rc == RK_OK)
    rk_kernel_key(be, f, &cfg, t.text.s, &key);
  /* copied into R memory before the C buffers are freed */
  SEXP res = PROTECT(ffi_str(rc == RK_OK && key.s ? key.s : "")); /* 1 */
  rk_buf_free(&key);
  rk_buf_free(&t.text);
  if (rc != RK_OK)
    ffi_abort(&e, NULL, NULL);
  UNPROTECT(1);
  return res;
}

SEXP ffi_nvrtc_compile_text(SEXP src, SEXP major, SEXP minor) {
  if (TYPEOF(src) != STRSXP || XLENGTH(src) != 1 ||
      STRING_ELT(src, 0) == NA_STRING)
    ffi_abortf(RK_EINPUT, "`src` must be a single string");
  int ma = ffi_int1(major, "major"), mi = ffi_int1(minor, "minor");
  void *img = NULL;
  size_t n = 0;
  int cubin = 0;
  rk_error e;
  ffi_err_init(&e);
  int rc = rk_nvrtc_compile(Rf_translateCharUTF8(STRING_ELT(src, 0)),
                            "rkeops_text", ma, mi, &img, &n, &cubin, &e);
  free(img);
  if (rc != RK_OK)
    ffi_abort(&e, NULL, NULL);
  return Rf_ScalarReal((double)n);
}

void ffi_cache_notice(void) {
  char msg[1400];
  if (rk_cache_notice(msg, sizeof msg))
    Rf_warningcall(R_NilValue, "rkeops: %s", msg);
}
