/*
 * ffi-solve.c -- the .Call glue of solve() and kernel_logdet() (R/solve.R).
 *
 * R hands over three things built from one LazyTensor K: the block-product
 * formula Sum_Reduction(K * b_j, 1) with its inputs (b_j, a Vj of dimension
 * ncol(b), is replaced by the iterate at each product), the column formula
 * Sum_Reduction(K, 1) with its inputs (its j-variables are replaced by one
 * point for the pivoted Cholesky columns K[, p]), and the diagonal K_ii.
 * The solver (solve-cg.c) sees them as callbacks over the backend's
 * prepared operators (solve-kernel.c): no formula is parsed or compiled
 * during the iteration and the point data are converted (on the GPU,
 * uploaded) once.
 *
 * Everything the glue allocates is R_alloc'ed or an R object, so an R error
 * reclaims it; the engine frees its own memory (the preconditioner) before
 * ffi_abort() is called.  Progress lines go to R's stderr with REprintf
 * (\r-updated); interrupts are checked between iterations through the
 * options' callback (R_ToplevelExec, never a longjmp out of the engine).
 */
#include <R.h>
#include <Rinternals.h>

#include <limits.h>
#include <math.h>
#include <string.h>

#include "ffi.h"
#include "solve.h"

/* ---- unpacking --------------------------------------------------------------
 */

static void NORET solve_abortf(int code, const char *msg) {
  rk_error e;
  ffi_err_init(&e);
  e.code = code;
  snprintf(e.msg, sizeof e.msg, "%s", msg);
  ffi_abort(&e, NULL, NULL);
}

static double num1(SEXP l, const char *name) {
  SEXP x = ffi_list_get(l, name);
  if (TYPEOF(x) != REALSXP && TYPEOF(x) != INTSXP)
    solve_abortf(RK_EINTERNAL, "solve: a control value is missing");
  return asReal(x);
}

/* a double matrix as an rk_input (layout COL) */
static void as_input(SEXP x, rk_input *in) {
  if (TYPEOF(x) != REALSXP)
    solve_abortf(RK_EINPUT, "solve: an input is not a double matrix");
  SEXP dim = getAttrib(x, R_DimSymbol);
  if (TYPEOF(dim) == INTSXP && XLENGTH(dim) == 2) {
    in->nrow = INTEGER(dim)[0];
    in->ncol = INTEGER(dim)[1];
  } else {
    in->nrow = XLENGTH(x);
    in->ncol = 1;
  }
  in->data = REAL(x);
  in->layout = RK_LAYOUT_COL;
}

/* a formula and its inputs, list(ptr, inputs), as engine descriptors */
typedef struct kernel_spec {
  rk_formula *f;
  rk_input *in;
  int nin;
} kernel_spec;

static void kernel_unpack(SEXP spec, kernel_spec *k) {
  SEXP ptr = ffi_list_get(spec, "ptr"), inputs = ffi_list_get(spec, "inputs");
  k->f = ffi_formula(ptr);
  if (TYPEOF(inputs) != VECSXP || XLENGTH(inputs) != rk_formula_nvars(k->f))
    solve_abortf(RK_EINTERNAL, "solve: the kernel inputs do not match");
  k->nin = (int)XLENGTH(inputs);
  k->in = (rk_input *)R_alloc(k->nin > 0 ? k->nin : 1, sizeof *k->in);
  for (int v = 0; v < k->nin; v++)
    as_input(VECTOR_ELT(inputs, v), &k->in[v]);
}

/* ---- progress
 * ---------------------------------------------------------------- */

typedef struct progress_data {
  const char *what;
} progress_data;

static void progress(void *data, int iter, double resid, double elapsed,
                     int done) {
  progress_data *pd = data;
  REprintf("\r%s: iteration %d, residual %.2e, %.1f s%s", pd->what, iter, resid,
           elapsed, done ? "\n" : "   ");
}

/* ---- shared set-up
 * ------------------------------------------------------------- */

typedef struct solve_setup {
  rk_options o;
  ffi_msgbuf mb;
  kernel_spec mv, col, sk, bl;
  int bpos, sk_pos;
  int64_t *bstart; /* pic: the blocks' first rows, then n */
  rk_solve_kernels kern; /* engine memory: freed by solve_done() */
  rk_sop A;
  rk_solve_ctl ctl;
  progress_data pd;
  int precond, rank;
  int64_t n;
} solve_setup;

/* unpack everything (R errors possible), then acquire the engine's part */
static void setup(solve_setup *s, SEXP mv, SEXP col, SEXP diag, SEXP ctl,
                  SEXP options, int64_t n, int ncol, const char *what) {
  memset(s, 0, sizeof *s);
  ffi_options(options, &s->o, &s->mb);
  s->n = n;
  kernel_unpack(mv, &s->mv);
  s->bpos = (int)num1(mv, "bpos");
  if (s->bpos < 0 || s->bpos >= s->mv.nin ||
      rk_formula_var_cat(s->mv.f, s->bpos) != RK_CAT_J ||
      rk_formula_var_dim(s->mv.f, s->bpos) != ncol ||
      rk_formula_outdim(s->mv.f) != ncol)
    solve_abortf(RK_EINTERNAL, "solve: the block product does not match b");
  s->precond = (int)num1(ctl, "precond");
  s->rank = (int)num1(ctl, "rank");
  if (col != R_NilValue)
    kernel_unpack(col, &s->col);
  rk_sop *A = &s->A;
  SEXP sk = ffi_list_get(ctl, "sketch");
  if (sk != R_NilValue) {
    kernel_unpack(sk, &s->sk);
    s->sk_pos = (int)num1(sk, "bpos");
    /* the seed of the test matrix: two 31-bit halves drawn in R */
    SEXP sd = ffi_list_get(ctl, "seed");
    if (TYPEOF(sd) != REALSXP || XLENGTH(sd) != 2)
      solve_abortf(RK_EINTERNAL, "solve: the sketch seed is missing");
    A->seed = ((uint64_t)REAL(sd)[0] << 31) ^ (uint64_t)REAL(sd)[1];
  }
  /* pic: the diagonal-block formula and the blocks (R sorted the points
     so that each block is consecutive rows; starts are 0-based, then n) */
  SEXP bl = ffi_list_get(ctl, "blocks");
  if (bl != R_NilValue) {
    kernel_unpack(bl, &s->bl);
    SEXP st = ffi_list_get(bl, "starts");
    if (TYPEOF(st) != REALSXP || XLENGTH(st) < 2)
      solve_abortf(RK_EINTERNAL, "solve: the blocks are missing");
    /* the formula's width w is that of one run of the block's points
       (solve-kernel.c block()): blocks may be wider */
    int nb = (int)XLENGTH(st) - 1;
    if (rk_formula_outdim(s->bl.f) < 1)
      solve_abortf(RK_EINTERNAL, "solve: the block formula has no width");
    s->bstart = (int64_t *)R_alloc((size_t)nb + 1, sizeof *s->bstart);
    for (int b = 0; b <= nb; b++) {
      s->bstart[b] = (int64_t)REAL(st)[b];
      if ((b == 0 && s->bstart[0] != 0) || (b == nb && s->bstart[b] != n) ||
          (b > 0 && s->bstart[b] <= s->bstart[b - 1]))
        solve_abortf(RK_EINTERNAL, "solve: the blocks do not match");
    }
    A->nblocks = nb;
    A->block_start = s->bstart;
  }
  A->n = n;
  A->alpha = num1(ctl, "alpha");
  if (diag != R_NilValue) {
    if (TYPEOF(diag) != REALSXP || XLENGTH(diag) != n)
      solve_abortf(RK_EINTERNAL, "solve: the diagonal does not match");
    A->diag = REAL(diag);
  }
  rk_solve_ctl *c = &s->ctl;
  c->tol = num1(ctl, "tol");
  double mi = num1(ctl, "maxit");
  c->maxit = mi > INT_MAX ? INT_MAX : (int)mi;
  c->nthreads = s->o.nthreads;
  c->interrupted = s->o.interrupted;
  c->interrupt_data = s->o.interrupt_data;
  s->pd.what = what;
  c->progress = progress;
  c->progress_data = &s->pd;
  c->progress_always = asLogical(ffi_list_get(ctl, "progress")) == TRUE;
  c->progress_after = num1(ctl, "progress_after");
}

/* Acquire the engine's memory: called after every R allocation, and
   released by solve_done() on every path. */
static void solve_acquire(solve_setup *s) {
  rk_error e;
  ffi_err_init(&e);
  if (rk_solve_kernels_init(&s->kern, s->mv.f, s->mv.in, s->mv.nin, s->bpos,
                            s->col.f, s->col.in, s->col.nin, &s->o,
                            &e) != RK_OK)
    ffi_abort(&e, NULL, NULL); /* init freed what it had taken */
  if (s->sk.f && rk_solve_kernels_sketch(&s->kern, s->sk.f, s->sk.in, s->sk.nin,
                                         s->sk_pos, &e) != RK_OK)
    ffi_abort(&e, NULL, NULL); /* freed everything */
  if (s->bl.f && rk_solve_kernels_blocks(&s->kern, s->bl.f, s->bl.in,
                                         s->bl.nin, &e) != RK_OK)
    ffi_abort(&e, NULL, NULL); /* freed everything */
  rk_solve_kernels_sop(&s->kern, &s->A);
}

/* release the engine's memory; then raise e when rc is an error */
static void solve_done(solve_setup *s, int rc, rk_error *e) {
  rk_solve_kernels_free(&s->kern);
  if (rc != RK_OK)
    ffi_abort(e, NULL, s->mb.buf);
}

static SEXP named_list(int n, const char *const *names) {
  SEXP res = PROTECT(allocVector(VECSXP, n)); /* 1 */
  SEXP nms = PROTECT(allocVector(STRSXP, n)); /* 2 */
  for (int i = 0; i < n; i++)
    SET_STRING_ELT(nms, i, mkChar(names[i]));
  setAttrib(res, R_NamesSymbol, nms);
  UNPROTECT(2);
  return res;
}

static SEXP precond_info(const rk_precond *P) {
  static const char *const f[] = {"rank",           "shift",
                                  "trace_left",     "logdet",
                                  "seconds",        "column_seconds",
                                  "gram_seconds",   "block_seconds",
                                  "blocks",         "columns"};
  SEXP res = PROTECT(named_list((int)(sizeof f / sizeof f[0]), f)); /* 1 */
  SET_VECTOR_ELT(res, 0, ScalarInteger(P->rank));
  SET_VECTOR_ELT(res, 1, ScalarReal(P->shift));
  SET_VECTOR_ELT(res, 2, ScalarReal(P->trace_left));
  SET_VECTOR_ELT(res, 3, ScalarReal(P->logdet));
  SET_VECTOR_ELT(res, 4, ScalarReal(P->seconds));
  SET_VECTOR_ELT(res, 5, ScalarReal(P->column_seconds));
  SET_VECTOR_ELT(res, 6, ScalarReal(P->gram_seconds));
  SET_VECTOR_ELT(res, 7, ScalarReal(P->block_seconds));
  SET_VECTOR_ELT(res, 8, ScalarInteger(P->nblocks));
  SET_VECTOR_ELT(res, 9, ScalarInteger(P->columns));
  UNPROTECT(1);
  return res;
}

/* where a solve's wall time went: c(kernels (fetch kernels, convert and
   bind the data), precond (set-up), sqrt (logdet's probes z = S w and
   P^-1 z), pcg (the iteration, in all), products and precond_apply (inside
   pcg), release (freeing the preconditioner and the operators: device
   memory, page-locked buffers)) */
static SEXP seconds_info(const double *t, const rk_solve_out *out) {
  static const char *const f[] = {"kernels",  "precond",       "sqrt",
                                  "pcg",      "products",      "precond_apply",
                                  "release"};
  int nf = (int)(sizeof f / sizeof f[0]);
  SEXP v = PROTECT(allocVector(REALSXP, nf));  /* 1 */
  SEXP nms = PROTECT(allocVector(STRSXP, nf)); /* 2 */
  for (int i = 0; i < nf; i++)
    SET_STRING_ELT(nms, i, mkChar(f[i]));
  setAttrib(v, R_NamesSymbol, nms);
  for (int i = 0; i < 4; i++)
    REAL(v)[i] = t[i];
  REAL(v)[4] = out->product_seconds;
  REAL(v)[5] = out->precond_seconds;
  REAL(v)[6] = t[4];
  UNPROTECT(2);
  return v;
}

static int64_t matrix_rows(SEXP x, int *ncol, const char *what) {
  SEXP dim = getAttrib(x, R_DimSymbol);
  if (TYPEOF(x) != REALSXP || TYPEOF(dim) != INTSXP || XLENGTH(dim) != 2) {
    char msg[128];
    snprintf(msg, sizeof msg, "solve: `%s` must be a double matrix", what);
    solve_abortf(RK_EINTERNAL, msg);
  }
  *ncol = INTEGER(dim)[1];
  return INTEGER(dim)[0];
}

/* ffi_solve(mv, col, diag, b, x0, ctl, options): list(x, iterations,
   residual, products, exact_products, cycles, converged, switched64,
   precond).  mv = list(ptr, inputs, bpos); col = list(ptr, inputs) or NULL;
   diag = K_ii or NULL; ctl = list(alpha, tol, maxit, precond, rank,
   progress, progress_after). */
SEXP ffi_solve(SEXP mv, SEXP col, SEXP diag, SEXP b, SEXP x0, SEXP ctl,
               SEXP options) {
  int ncol;
  int64_t n = matrix_rows(b, &ncol, "b");
  solve_setup s;
  setup(&s, mv, col, diag, ctl, options, n, ncol, "rkeops solve");

  static const char *const f[] = {"x",         "iterations",     "residual",
                                  "products",  "exact_products", "cycles",
                                  "converged", "switched64",     "precond",
                                  "stalled",   "seconds"};
  SEXP res = PROTECT(named_list((int)(sizeof f / sizeof f[0]), f)); /* 1 */
  SEXP x = allocMatrix(REALSXP, (int)n, ncol);
  SET_VECTOR_ELT(res, 0, x);
  SEXP its = allocVector(INTSXP, ncol);
  SET_VECTOR_ELT(res, 1, its);
  SEXP rel = allocVector(REALSXP, ncol);
  SET_VECTOR_ELT(res, 2, rel);
  size_t nn = (size_t)n * ncol;
  if (x0 != R_NilValue) {
    int c0;
    if (matrix_rows(x0, &c0, "x0") != n || c0 != ncol)
      solve_abortf(RK_EINTERNAL, "solve: x0 does not match b");
    memcpy(REAL(x), REAL(x0), nn * sizeof(double));
  } else {
    memset(REAL(x), 0, nn * sizeof(double));
  }

  rk_error e;
  ffi_err_init(&e);
  rk_precond P;
  double t[5] = {0, 0, 0, 0, 0}, t0 = rk_now();
  solve_acquire(&s);
  t[0] = rk_now() - t0;
  int rc = rk_precond_build(&P, &s.A, s.precond, s.rank, 0, s.o.nthreads,
                            &s.ctl, &e);
  if (rc != RK_OK)
    solve_done(&s, rc, &e);
  t[1] = rk_now() - t0 - t[0];
  rk_solve_out out;
  memset(&out, 0, sizeof out);
  out.iters = INTEGER(its);
  out.resid = REAL(rel);
  double t1 = rk_now();
  rc = rk_pcg(&s.A, &P, REAL(b), REAL(x), ncol, &s.ctl, &out, &e);
  t[3] = rk_now() - t1;
  rk_precond pscal = P; /* its scalars, for the result */
  t1 = rk_now();
  rk_precond_free(&P);
  solve_done(&s, rc, &e);
  t[4] = rk_now() - t1;
  SEXP pinfo = PROTECT(precond_info(&pscal)); /* 2 */
  SET_VECTOR_ELT(res, 3, ScalarInteger(out.products));
  SET_VECTOR_ELT(res, 4, ScalarInteger(out.exact_products));
  SET_VECTOR_ELT(res, 5, ScalarInteger(out.cycles));
  SET_VECTOR_ELT(res, 6, ScalarLogical(out.converged));
  SET_VECTOR_ELT(res, 7, ScalarLogical(out.switched64));
  SET_VECTOR_ELT(res, 8, pinfo);
  SET_VECTOR_ELT(res, 9, ScalarLogical(out.stalled));
  SET_VECTOR_ELT(res, 10, seconds_info(t, &out));
  UNPROTECT(2);
  return res;
}

/* ffi_logdet(mv, col, diag, w, ctl, options): stochastic Lanczos quadrature.
   w: n x probes Rademacher vectors, or NULL: ctl$probes of them drawn here
   (rk_rademacher) from ctl$probe_seed (two 31-bit halves drawn in R), for
   ctl$n points.  The probes are z = S w (S S^T = P),
   the right-hand sides of a preconditioned CG whose Lanczos matrices give
   w^T log(S^-1 A S^-T) w ~ ||w||^2 e1^T log(T) e1.  ctl$b (an n x nb
   matrix, or NULL): further right-hand sides solved in the same block CG,
   with the same preconditioner (a Gaussian-process likelihood needs
   A^-1 y beside the probes); the block product has probes + nb columns.
   Returns list(quad (per probe), precond (with logdet = log det P),
   iterations, residual, z, solves, pinv_z, ok, b_solve, b_iterations,
   b_residual, stalled); z, solves and pinv_z only when ctl$keep is TRUE, the
   b_* only with ctl$b. */
static SEXP column_block(const double *src, int64_t n, int c0, int nc) {
  SEXP m = allocMatrix(REALSXP, (int)n, nc);
  if (nc > 0)
    memcpy(REAL(m), src + (size_t)c0 * n, (size_t)n * nc * sizeof(double));
  return m;
}

SEXP ffi_logdet(SEXP mv, SEXP col, SEXP diag, SEXP w, SEXP ctl, SEXP options) {
  int ncol, nb = 0;
  int64_t n;
  uint64_t pseed = 0;
  int gen = w == R_NilValue; /* the probes' signs drawn here, from a seed */
  if (gen) {
    n = (int64_t)num1(ctl, "n");
    ncol = (int)num1(ctl, "probes");
    SEXP sd = ffi_list_get(ctl, "probe_seed");
    if (TYPEOF(sd) != REALSXP || XLENGTH(sd) != 2 || n < 0 || ncol < 1)
      solve_abortf(RK_EINTERNAL, "kernel_logdet: the probe seed is missing");
    pseed = ((uint64_t)REAL(sd)[0] << 31) ^ (uint64_t)REAL(sd)[1];
  } else {
    n = matrix_rows(w, &ncol, "w");
  }
  SEXP b = ffi_list_get(ctl, "b");
  if (b != R_NilValue && matrix_rows(b, &nb, "b") != n)
    solve_abortf(RK_EINTERNAL, "kernel_logdet: `b` does not match the probes");
  int tot = ncol + nb;
  solve_setup s;
  setup(&s, mv, col, diag, ctl, options, n, tot, "rkeops logdet");
  int keep = asLogical(ffi_list_get(ctl, "keep")) == TRUE;
  int cap = s.ctl.maxit;
  static const char *const f[] = {
      "quad",       "precond", "iterations", "residual", "z",
      "solves",     "pinv_z",  "ok",         "b_solve",  "b_iterations",
      "b_residual", "stalled", "seconds"};
  SEXP res = PROTECT(named_list((int)(sizeof f / sizeof f[0]), f)); /* 1 */
  SEXP quad = allocVector(REALSXP, ncol);
  SET_VECTOR_ELT(res, 0, quad);
  SEXP ok = allocVector(LGLSXP, ncol);
  SET_VECTOR_ELT(res, 7, ok);
  size_t nn = (size_t)n * tot;
  double *z = (double *)R_alloc(nn > 0 ? nn : 1, sizeof(double));
  double *x = (double *)R_alloc(nn > 0 ? nn : 1, sizeof(double));
  double *pz =
      keep ? (double *)R_alloc((size_t)n * ncol > 0 ? (size_t)n * ncol : 1,
                               sizeof(double))
           : NULL;
  int *its = (int *)R_alloc(tot > 0 ? tot : 1, sizeof(int));
  double *rel = (double *)R_alloc(tot > 0 ? tot : 1, sizeof(double));
  double *ww = (double *)R_alloc(ncol, sizeof(double));
  double *ca = (double *)R_alloc((size_t)cap * tot, sizeof(double));
  double *cb = (double *)R_alloc((size_t)cap * tot, sizeof(double));
  int *nc = (int *)R_alloc(tot > 0 ? tot : 1, sizeof(int));

  rk_error e;
  ffi_err_init(&e);
  rk_precond P;
  double t[5] = {0, 0, 0, 0, 0}, t0 = rk_now();
  solve_acquire(&s);
  t[0] = rk_now() - t0;
  int rc = rk_precond_build(&P, &s.A, s.precond, s.rank, 1, s.o.nthreads,
                            &s.ctl, &e);
  if (rc != RK_OK)
    solve_done(&s, rc, &e);
  t[1] = rk_now() - t0 - t[0];
  double t1 = rk_now();
  /* w: given, or drawn into x (free until the solve starts) */
  const double *W = gen ? x : REAL(w);
  if (gen)
    rk_rademacher(pseed, x, n, ncol);
  for (int c = 0; c < ncol; c++) {
    double sq = 0;
    for (int64_t i = 0; i < n; i++)
      sq += W[(size_t)c * n + i] * W[(size_t)c * n + i];
    ww[c] = sq;
  }
  rc = rk_precond_sqrt(&P, W, z, ncol, &e);
  memset(x, 0, nn * sizeof(double));
  if (nb > 0)
    memcpy(z + (size_t)n * ncol, REAL(b), (size_t)n * nb * sizeof(double));
  if (rc == RK_OK && keep)
    rc = rk_precond_apply(&P, z, pz, ncol, &e);
  t[2] = rk_now() - t1;
  rk_solve_out out;
  memset(&out, 0, sizeof out);
  out.iters = its;
  out.resid = rel;
  out.cg_alpha = ca;
  out.cg_beta = cb;
  out.ncoef = nc;
  out.cap = cap;
  t1 = rk_now();
  if (rc == RK_OK)
    rc = rk_pcg(&s.A, &P, z, x, tot, &s.ctl, &out, &e);
  t[3] = rk_now() - t1;
  rk_precond pscal = P; /* its scalars, for the result */
  t1 = rk_now();
  rk_precond_free(&P);
  solve_done(&s, rc, &e);
  t[4] = rk_now() - t1;
  SEXP pinfo = PROTECT(precond_info(&pscal)); /* 2 */
  SET_VECTOR_ELT(res, 1, pinfo);
  SET_VECTOR_ELT(res, 11, ScalarLogical(out.stalled));
  SET_VECTOR_ELT(res, 12, seconds_info(t, &out));
  SEXP iv = allocVector(INTSXP, ncol);
  SET_VECTOR_ELT(res, 2, iv);
  SEXP rv = allocVector(REALSXP, ncol);
  SET_VECTOR_ELT(res, 3, rv);
  for (int c = 0; c < ncol; c++) {
    int good;
    double q = rk_slq_quadrature(nc[c], ca + (size_t)c * cap,
                                 cb + (size_t)c * cap, &good);
    REAL(quad)[c] = ww[c] * q;
    LOGICAL(ok)[c] = good;
    INTEGER(iv)[c] = its[c];
    REAL(rv)[c] = rel[c];
  }
  if (keep) {
    SET_VECTOR_ELT(res, 4, column_block(z, n, 0, ncol));
    SET_VECTOR_ELT(res, 5, column_block(x, n, 0, ncol));
    SET_VECTOR_ELT(res, 6, column_block(pz, n, 0, ncol));
  }
  if (nb > 0) {
    SET_VECTOR_ELT(res, 8, column_block(x, n, ncol, nb));
    SEXP bi = allocVector(INTSXP, nb);
    SET_VECTOR_ELT(res, 9, bi);
    SEXP br = allocVector(REALSXP, nb);
    SET_VECTOR_ELT(res, 10, br);
    for (int c = 0; c < nb; c++) {
      INTEGER(bi)[c] = its[ncol + c];
      REAL(br)[c] = rel[ncol + c];
    }
  }
  UNPROTECT(2);
  return res;
}

/* ---- the pivoted Cholesky of a dense matrix (tests) ------------------------
 */

typedef struct dense_cols {
  const double *A;
  int64_t n;
} dense_cols;

static int dense_column(void *ctx, int64_t p, double *col, int64_t n,
                        rk_error *e) {
  (void)e;
  const dense_cols *dc = ctx;
  memcpy(col, dc->A + p * dc->n, (size_t)n * sizeof *col);
  return RK_OK;
}

/* ffi_pivchol_dense(A, rank, alpha, theta): the "pivchol" preconditioner
   built from a dense symmetric matrix A (kernel columns are its columns),
   for tests against a reference pivoted Cholesky in R.  rank < 0: the
   automatic rule; theta: rk_sop's pivchol_theta (0: the default).  Returns
   list(L (n x rank, the float64 factor), piv (1-based), trace_left, shift,
   logdet (of P = shift I + Lf Lf^T), Lf (the float32 factor P is built
   from, as doubles)). */
SEXP ffi_pivchol_dense(SEXP A, SEXP rank, SEXP alpha, SEXP theta) {
  int n;
  if (matrix_rows(A, &n, "A") != n)
    solve_abortf(RK_EVALUE, "pivchol: A must be square");
  double *diag = (double *)R_alloc((size_t)(n > 0 ? n : 1), sizeof *diag);
  for (int i = 0; i < n; i++)
    diag[i] = REAL(A)[(size_t)i * n + i];
  dense_cols dc = {REAL(A), n};
  rk_sop S;
  memset(&S, 0, sizeof S);
  S.n = n;
  S.alpha = asReal(alpha);
  S.column = dense_column;
  S.column_ctx = &dc;
  S.diag = diag;
  S.pivchol_theta = asReal(theta);
  S.keep_factor = 1;
  rk_error e;
  ffi_err_init(&e);
  rk_precond P;
  int rc = rk_precond_build(&P, &S, RK_PRECOND_PIVCHOL, asInteger(rank), 0, 0,
                            NULL, &e);
  if (rc != RK_OK)
    ffi_abort(&e, NULL, NULL);
  static const char *const f[] = {"L",     "piv",    "trace_left",
                                  "shift", "logdet", "Lf"};
  SEXP res = PROTECT(named_list((int)(sizeof f / sizeof f[0]), f)); /* 1 */
  int r = P.rank;
  SEXP L = allocMatrix(REALSXP, n, r);
  SET_VECTOR_ELT(res, 0, L);
  SEXP Lf = allocMatrix(REALSXP, n, r);
  SET_VECTOR_ELT(res, 5, Lf);
  SEXP piv = allocVector(INTSXP, r);
  SET_VECTOR_ELT(res, 1, piv);
  for (int k = 0; k < r; k++) {
    INTEGER(piv)[k] = (int)P.piv[k] + 1;
    for (int i = 0; i < n; i++) {
      REAL(L)[(size_t)k * n + i] = P.L[(size_t)i * r + k];
      REAL(Lf)[(size_t)k * n + i] = (double)P.Lf[(size_t)i * r + k];
    }
  }
  SET_VECTOR_ELT(res, 2, ScalarReal(P.trace_left));
  SET_VECTOR_ELT(res, 3, ScalarReal(P.shift));
  SET_VECTOR_ELT(res, 4, ScalarReal(P.logdet));
  rk_precond_free(&P);
  UNPROTECT(1);
  return res;
}

/* ---- a solve whose products come from R (solve() on a cluster) ----------
 * ffi_solve_cb(fun, diag, b, x0, ctl, options): the solver of ffi_solve
 * (rk_precond_build + rk_pcg, every preconditioner but "nystrom") with the
 * products K v and the kernel columns K[, p] asked of the R function
 * fun(what, arg): what = "apply" (arg an n x ncol matrix; the product in
 * the working precision), "apply64" (the same in float64, for the float32
 * refinement's residuals) or "columns" (arg the 1-based pivots; an n x
 * length(arg) matrix).  R/cluster.R's fun sends them to the workers and
 * catches its own errors (it keeps the condition and returns NULL, which
 * fails the solve here with the engine's memory freed; R then raises the
 * kept condition).  R_tryEvalSilent guards anything else, so no longjmp
 * crosses the engine.  Called on the main thread only: the solver calls
 * its callbacks from the thread that called it. */
typedef struct cb_ctx {
  SEXP fun, rho;
  int64_t n;
} cb_ctx;

static int cb_eval(cb_ctx *c, const char *what, SEXP arg, double *out,
                   int64_t ncol, rk_error *e) {
  SEXP call = PROTECT(lang3(c->fun, mkString(what), arg)); /* 1 */
  int err = 0;
  SEXP r = R_tryEvalSilent(call, c->rho, &err);
  size_t len = (size_t)c->n * (size_t)ncol;
  if (err || r == NULL || TYPEOF(r) != REALSXP || (size_t)XLENGTH(r) != len) {
    UNPROTECT(1);
    return rk_err(e, RK_EINPUT, -1,
                  "solve on a cluster: the %s step did not return an %lld x "
                  "%lld matrix",
                  what, (long long)c->n, (long long)ncol);
  }
  if (len > 0)
    memcpy(out, REAL(r), len * sizeof(double));
  UNPROTECT(1);
  return RK_OK;
}

static int cb_apply_in(void *ctx, const char *what, const double *x, double *y,
                       int64_t n, int ncol, rk_error *e) {
  SEXP m = PROTECT(allocMatrix(REALSXP, (int)n, ncol)); /* 1 */
  if (n > 0 && ncol > 0)
    memcpy(REAL(m), x, (size_t)n * (size_t)ncol * sizeof(double));
  int rc = cb_eval(ctx, what, m, y, ncol, e);
  UNPROTECT(1);
  return rc;
}

static int cb_apply(void *ctx, const double *x, double *y, int64_t n, int ncol,
                    rk_error *e) {
  return cb_apply_in(ctx, "apply", x, y, n, ncol, e);
}

static int cb_apply64(void *ctx, const double *x, double *y, int64_t n,
                      int ncol, rk_error *e) {
  return cb_apply_in(ctx, "apply64", x, y, n, ncol, e);
}

static int cb_columns(void *ctx, const int64_t *p, int nc, double *cols,
                      int64_t n, rk_error *e) {
  (void)n;
  SEXP piv = PROTECT(allocVector(INTSXP, nc)); /* 1 */
  for (int k = 0; k < nc; k++)
    INTEGER(piv)[k] = (int)p[k] + 1;
  int rc = cb_eval(ctx, "columns", piv, cols, nc, e);
  UNPROTECT(1);
  return rc;
}

static int cb_column(void *ctx, int64_t p, double *col, int64_t n,
                     rk_error *e) {
  return cb_columns(ctx, &p, 1, col, n, e);
}

SEXP ffi_solve_cb(SEXP fun, SEXP diag, SEXP b, SEXP x0, SEXP ctl,
                  SEXP options) {
  int ncol;
  int64_t n = matrix_rows(b, &ncol, "b");
  if (!isFunction(fun))
    solve_abortf(RK_EINTERNAL, "solve: the product callback is missing");
  solve_setup s;
  memset(&s, 0, sizeof s);
  ffi_options(options, &s.o, &s.mb);
  s.n = n;
  s.precond = (int)num1(ctl, "precond");
  s.rank = (int)num1(ctl, "rank");
  if (s.precond == RK_PRECOND_NYSTROM)
    solve_abortf(RK_EUNSUPPORTED,
                 "solve on a cluster: no \"nystrom\" preconditioner");
  cb_ctx cb = {fun, R_GlobalEnv, n};
  rk_sop *A = &s.A;
  A->n = n;
  A->alpha = num1(ctl, "alpha");
  if (diag != R_NilValue) {
    if (TYPEOF(diag) != REALSXP || XLENGTH(diag) != n)
      solve_abortf(RK_EINTERNAL, "solve: the diagonal does not match");
    A->diag = REAL(diag);
  }
  A->working32 = s.o.precision == 32;
  A->apply = cb_apply;
  A->apply_ctx = &cb;
  A->exact = A->working32 ? cb_apply64 : NULL;
  A->exact_ctx = &cb;
  A->column = cb_column;
  A->columns = cb_columns;
  A->column_ctx = &cb;
  rk_solve_ctl *c = &s.ctl;
  c->tol = num1(ctl, "tol");
  double mi = num1(ctl, "maxit");
  c->maxit = mi > INT_MAX ? INT_MAX : (int)mi;
  c->nthreads = s.o.nthreads;
  c->interrupted = s.o.interrupted;
  c->interrupt_data = s.o.interrupt_data;
  s.pd.what = "rkeops solve (cluster)";
  c->progress = progress;
  c->progress_data = &s.pd;
  c->progress_always = asLogical(ffi_list_get(ctl, "progress")) == TRUE;
  c->progress_after = num1(ctl, "progress_after");

  static const char *const f[] = {"x",         "iterations",     "residual",
                                  "products",  "exact_products", "cycles",
                                  "converged", "switched64",     "precond",
                                  "stalled",   "seconds"};
  SEXP res = PROTECT(named_list((int)(sizeof f / sizeof f[0]), f)); /* 1 */
  SEXP x = allocMatrix(REALSXP, (int)n, ncol);
  SET_VECTOR_ELT(res, 0, x);
  SEXP its = allocVector(INTSXP, ncol);
  SET_VECTOR_ELT(res, 1, its);
  SEXP rel = allocVector(REALSXP, ncol);
  SET_VECTOR_ELT(res, 2, rel);
  size_t nn = (size_t)n * ncol;
  if (x0 != R_NilValue) {
    int c0;
    if (matrix_rows(x0, &c0, "x0") != n || c0 != ncol)
      solve_abortf(RK_EINTERNAL, "solve: x0 does not match b");
    memcpy(REAL(x), REAL(x0), nn * sizeof(double));
  } else if (nn > 0) {
    memset(REAL(x), 0, nn * sizeof(double));
  }
  /* from here the engine holds memory: no R error until it is freed */
  rk_error e;
  ffi_err_init(&e);
  rk_precond P;
  double t[5] = {0, 0, 0, 0, 0}, t0 = rk_now();
  int rc = rk_precond_build(&P, A, s.precond, s.rank, 0, s.o.nthreads, c, &e);
  if (rc != RK_OK)
    ffi_abort(&e, NULL, s.mb.buf); /* build freed what it had taken */
  t[1] = rk_now() - t0;
  rk_solve_out out;
  memset(&out, 0, sizeof out);
  out.iters = INTEGER(its);
  out.resid = REAL(rel);
  double t1 = rk_now();
  rc = rk_pcg(A, &P, REAL(b), REAL(x), ncol, c, &out, &e);
  t[3] = rk_now() - t1;
  rk_precond pscal = P;
  t1 = rk_now();
  rk_precond_free(&P);
  t[4] = rk_now() - t1;
  if (rc != RK_OK)
    ffi_abort(&e, NULL, s.mb.buf);
  SEXP pinfo = PROTECT(precond_info(&pscal)); /* 2 */
  SET_VECTOR_ELT(res, 3, ScalarInteger(out.products));
  SET_VECTOR_ELT(res, 4, ScalarInteger(out.exact_products));
  SET_VECTOR_ELT(res, 5, ScalarInteger(out.cycles));
  SET_VECTOR_ELT(res, 6, ScalarLogical(out.converged));
  SET_VECTOR_ELT(res, 7, ScalarLogical(out.switched64));
  SET_VECTOR_ELT(res, 8, pinfo);
  SET_VECTOR_ELT(res, 9, ScalarLogical(out.stalled));
  SET_VECTOR_ELT(res, 10, seconds_info(t, &out));
  UNPROTECT(2);
  return res;
}
