/*
 * solve-kernel.c -- the kernel callbacks of the solver (rk_sop) over
 * compiled formulas:
 *   - the block product  Sum_Reduction(K * b_j, 1), b_j (position bpos) a
 *     Vj of dimension ncol replaced by the iterate at each product, in the
 *     working precision and in float64 (refinement residuals);
 *   - the kernel columns Sum_Reduction(K, 1) with every j-variable
 *     replaced by one point p: K[, p] (pivoted Cholesky).
 * Both go through the public run path (rk_formula_run): the kernels come
 * from the memory cache after the first call, but the point data are
 * converted (float32) or uploaded (GPU) again at each product; the
 * prepared operator of the backend interface is the place to keep them
 * resident.
 */
#include "solve.h"

#include <stdlib.h>
#include <string.h>

static int kernel_product(rk_solve_kernels *k, const rk_options *o,
                          const double *x, double *y, int64_t n, int ncol,
                          rk_error *e) {
  rk_input *b = &k->mv_cur[k->bpos];
  b->data = x;
  b->nrow = n;
  b->ncol = ncol;
  b->layout = RK_LAYOUT_COL;
  return rk_formula_run(k->mv, o, k->mv_cur, k->mv_nin, y, e);
}

static int apply_work(void *ctx, const double *x, double *y, int64_t n,
                      int ncol, rk_error *e) {
  rk_solve_kernels *k = ctx;
  return kernel_product(k, &k->o, x, y, n, ncol, e);
}

static int apply_exact(void *ctx, const double *x, double *y, int64_t n,
                       int ncol, rk_error *e) {
  rk_solve_kernels *k = ctx;
  return kernel_product(k, &k->o64, x, y, n, ncol, e);
}

static int column(void *ctx, int64_t p, double *col, int64_t n, rk_error *e) {
  rk_solve_kernels *k = ctx;
  double *buf = k->rowbuf;
  (void)n;
  for (int t = 0; t < k->nj; t++) {
    int v = k->jpos[t];
    const rk_input *src = &k->col_in[v];
    int row = src->layout == RK_LAYOUT_ROW;
    int64_t d = row ? src->nrow : src->ncol, np = row ? src->ncol : src->nrow;
    for (int64_t c = 0; c < d; c++)
      buf[c] = row ? src->data[p * d + c] : src->data[c * np + p];
    k->col_cur[v].data = buf;
    k->col_cur[v].nrow = 1;
    k->col_cur[v].ncol = d;
    k->col_cur[v].layout = RK_LAYOUT_COL;
    buf += d;
  }
  return rk_formula_run(k->col, &k->o, k->col_cur, k->col_nin, col, e);
}

int rk_solve_kernels_init(rk_solve_kernels *k, rk_formula *mv,
                          const rk_input *mv_in, int mv_nin, int bpos,
                          rk_formula *col, const rk_input *col_in,
                          int col_nin, const rk_options *o, rk_error *e) {
  memset(k, 0, sizeof *k);
  k->mv = mv;
  k->mv_nin = mv_nin;
  k->bpos = bpos;
  k->col = col;
  k->col_nin = col ? col_nin : 0;
  k->o = *o;
  k->o64 = *o;
  k->o64.precision = 64;
  if (bpos < 0 || bpos >= mv_nin ||
      rk_formula_var_cat(mv, bpos) != RK_CAT_J)
    return rk_err(e, RK_EINTERNAL, -1, "solve: no b_j in the block product");
  size_t nm = (size_t)(mv_nin > 0 ? mv_nin : 1);
  size_t nc = (size_t)(k->col_nin > 0 ? k->col_nin : 1);
  k->mv_cur = malloc(nm * sizeof *k->mv_cur);
  k->col_in = malloc(nc * sizeof *k->col_in);
  k->col_cur = malloc(nc * sizeof *k->col_cur);
  k->jpos = malloc(nc * sizeof *k->jpos);
  if (!k->mv_cur || !k->col_in || !k->col_cur || !k->jpos) {
    rk_solve_kernels_free(k);
    return rk_err(e, RK_ENOMEM, -1, "out of memory");
  }
  memcpy(k->mv_cur, mv_in, (size_t)mv_nin * sizeof *mv_in);
  int64_t tot = 0;
  if (col) {
    memcpy(k->col_in, col_in, (size_t)col_nin * sizeof *col_in);
    memcpy(k->col_cur, col_in, (size_t)col_nin * sizeof *col_in);
    for (int v = 0; v < col_nin; v++)
      if (rk_formula_var_cat(col, v) == RK_CAT_J &&
          rk_formula_var_dim(col, v) > 0) {
        k->jpos[k->nj++] = v;
        tot += rk_formula_var_dim(col, v);
      }
  }
  k->rowbuf = malloc((size_t)(tot > 0 ? tot : 1) * sizeof *k->rowbuf);
  if (k->rowbuf == NULL) {
    rk_solve_kernels_free(k);
    return rk_err(e, RK_ENOMEM, -1, "out of memory");
  }
  return RK_OK;
}

void rk_solve_kernels_sop(rk_solve_kernels *k, rk_sop *A) {
  A->working32 = k->o.precision == 32;
  A->apply = apply_work;
  A->apply_ctx = k;
  A->exact = A->working32 ? apply_exact : NULL;
  A->exact_ctx = k;
  A->column = k->col ? column : NULL;
  A->column_ctx = k;
}

void rk_solve_kernels_free(rk_solve_kernels *k) {
  free(k->mv_cur);
  free(k->col_in);
  free(k->col_cur);
  free(k->jpos);
  free(k->rowbuf);
  k->mv_cur = k->col_in = k->col_cur = NULL;
  k->jpos = NULL;
  k->rowbuf = NULL;
}
