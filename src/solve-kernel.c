/*
 * solve-kernel.c -- the kernel callbacks of the solver (rk_sop) over the
 * backend's prepared operators (be.h, rk_operator):
 *   - the block product  Sum_Reduction(K * b_j, 1), b_j (position bpos) a
 *     Vj of dimension ncol whose data each product replaces by the iterate;
 *     one operator in the working precision and, in float32, one in float64
 *     for the refinement residuals;
 *   - the kernel columns K[, p] = Sum_Reduction(K, 1) restricted to the
 *     reduction range [p, p + 1) (pivoted Cholesky);
 *   - the diagonal blocks K[r0:r1, r0:r1] = Sum_Reduction(K * OneHot(v_j,
 *     W), 1) over rows [r0, r1) and points [r0 + c0, r0 + c0 + W), c0 = 0,
 *     W, ..., v_j = (j - r0) mod W (pic), in float64.
 * Each operator gets its kernel and converts its point data once (on the
 * GPU, binds them to device memory once); a product only sends the iterate.
 */
#include "solve.h"

#include "be.h"

#include <stdlib.h>
#include <string.h>

static int kernel_product_at(rk_solve_kernels *k, rk_operator *op, int pos,
                             const double *x, double *y, int64_t n, int ncol,
                             rk_error *e) {
  rk_input b = {x, n, ncol, RK_LAYOUT_COL};
  rk_op_call c;
  memset(&c, 0, sizeof c);
  c.r0 = 0;
  c.r1 = rk_op_nout(op);
  c.j0 = 0;
  c.j1 = rk_op_nred(op);
  c.replace = pos;
  c.x = &b;
  c.out = y;
  c.o = &k->o;
  return rk_op_run(op, &c, e);
}

static int kernel_product(rk_solve_kernels *k, rk_operator *op, const double *x,
                          double *y, int64_t n, int ncol, rk_error *e) {
  return kernel_product_at(k, op, k->bpos, x, y, n, ncol, e);
}

static int apply_sketch(void *ctx, const double *x, double *y, int64_t n,
                        int ncol, rk_error *e) {
  rk_solve_kernels *k = ctx;
  return kernel_product_at(k, k->sk_op, k->sk_pos, x, y, n, ncol, e);
}

static int apply_work(void *ctx, const double *x, double *y, int64_t n,
                      int ncol, rk_error *e) {
  rk_solve_kernels *k = ctx;
  return kernel_product(k, k->mv_op, x, y, n, ncol, e);
}

static int apply_exact(void *ctx, const double *x, double *y, int64_t n,
                       int ncol, rk_error *e) {
  rk_solve_kernels *k = ctx;
  return kernel_product(k, k->mv64_op, x, y, n, ncol, e);
}

static int column(void *ctx, int64_t p, double *col, int64_t n, rk_error *e) {
  rk_solve_kernels *k = ctx;
  (void)n;
  rk_op_call c;
  memset(&c, 0, sizeof c);
  c.r0 = 0;
  c.r1 = rk_op_nout(k->col_op);
  c.j0 = p;
  c.j1 = p + 1;
  c.replace = -1;
  c.out = col;
  c.o = &k->o;
  return rk_op_run(k->col_op, &c, e);
}

int rk_solve_kernels_init(rk_solve_kernels *k, rk_formula *mv,
                          const rk_input *mv_in, int mv_nin, int bpos,
                          rk_formula *col, const rk_input *col_in, int col_nin,
                          const rk_options *o, rk_error *e) {
  memset(k, 0, sizeof *k);
  k->bpos = bpos;
  k->o = *o;
  k->o64 = *o;
  k->o64.precision = 64;
  if (bpos < 0 || bpos >= mv_nin || rk_formula_var_cat(mv, bpos) != RK_CAT_J)
    return rk_err(e, RK_EINTERNAL, -1, "solve: no b_j in the block product");
  k->mv_op = rk_op_prepare(mv, &k->o, mv_in, mv_nin, e);
  if (k->mv_op && o->precision == 32)
    k->mv64_op = rk_op_prepare(mv, &k->o64, mv_in, mv_nin, e);
  if (k->mv_op && (o->precision != 32 || k->mv64_op) && col)
    k->col_op = rk_op_prepare(col, &k->o, col_in, col_nin, e);
  if (!k->mv_op || (o->precision == 32 && !k->mv64_op) || (col && !k->col_op)) {
    rk_solve_kernels_free(k);
    return e->code != RK_OK ? e->code : RK_EINTERNAL;
  }
  return RK_OK;
}

int rk_solve_kernels_sketch(rk_solve_kernels *k, rk_formula *sk,
                            const rk_input *sk_in, int sk_nin, int sk_pos,
                            rk_error *e) {
  if (sk_pos < 0 || sk_pos >= sk_nin ||
      rk_formula_var_cat(sk, sk_pos) != RK_CAT_J ||
      rk_formula_outdim(sk) != rk_formula_var_dim(sk, sk_pos)) {
    rk_solve_kernels_free(k);
    return rk_err(e, RK_EINTERNAL, -1, "solve: no s_j in the sketch product");
  }
  k->sk_pos = sk_pos;
  k->sk_width = rk_formula_var_dim(sk, sk_pos);
  k->sk_op = rk_op_prepare(sk, &k->o, sk_in, sk_nin, e);
  if (!k->sk_op) {
    rk_solve_kernels_free(k);
    return e->code != RK_OK ? e->code : RK_EINTERNAL;
  }
  return RK_OK;
}

/* K[r0:r1, r0:r1] (column-major) from the block operator: rows [r0, r1)
   reduced over the points [r0 + c0, r0 + c0 + w) for c0 = 0, w, 2w, ...
   (w = bl_width), each point's kernel value in the component of its
   position in the block modulo w (OneHot), so column c of a run's results
   is K[, r0 + c0 + c] */
static int block(void *ctx, int64_t r0, int64_t r1, double *out,
                 rk_error *e) {
  rk_solve_kernels *k = ctx;
  int64_t m = r1 - r0, w = k->bl_width;
  if (m <= 0)
    return RK_OK;
  if (w < 1)
    return rk_err(e, RK_EINTERNAL, -1, "solve: a block operator of width %d",
                  k->bl_width);
  if (m > k->bl_rows) {
    double *b = realloc(k->bl_buf, (size_t)m * w * sizeof *b);
    if (b == NULL)
      return rk_err(e, RK_ENOMEM, -1, "out of memory (a diagonal block)");
    k->bl_buf = b;
    k->bl_rows = m;
  }
  for (int64_t c0 = 0; c0 < m; c0 += w) {
    int64_t wc = m - c0 < w ? m - c0 : w;
    rk_op_call c;
    memset(&c, 0, sizeof c);
    c.r0 = r0;
    c.r1 = r1;
    c.j0 = r0 + c0;
    c.j1 = r0 + c0 + wc;
    c.replace = -1;
    c.out = k->bl_buf;
    c.o = &k->o64;
    int rc = rk_op_run(k->bl_op, &c, e);
    if (rc != RK_OK)
      return rc;
    /* results are m x w: the first wc columns are the block's columns
       c0 to c0 + wc - 1 */
    memcpy(out + (size_t)c0 * m, k->bl_buf, (size_t)m * wc * sizeof *out);
  }
  return RK_OK;
}

int rk_solve_kernels_blocks(rk_solve_kernels *k, rk_formula *bl,
                            const rk_input *bl_in, int bl_nin, rk_error *e) {
  k->bl_width = rk_formula_outdim(bl);
  k->bl_op = rk_op_prepare(bl, &k->o64, bl_in, bl_nin, e);
  if (!k->bl_op) {
    rk_solve_kernels_free(k);
    return e->code != RK_OK ? e->code : RK_EINTERNAL;
  }
  return RK_OK;
}

/* host buffers page-locked for the products' and the columns' copies
   (all operators share one device, so one operator's backend serves) */
static int pin(void *ctx, void *p, size_t bytes) {
  rk_solve_kernels *k = ctx;
  return rk_op_pin(k->mv_op, p, bytes);
}

static void unpin(void *ctx, void *p) {
  rk_solve_kernels *k = ctx;
  rk_op_unpin(k->mv_op, p);
}

void rk_solve_kernels_sop(rk_solve_kernels *k, rk_sop *A) {
  A->working32 = k->o.precision == 32;
  A->apply = apply_work;
  A->apply_ctx = k;
  A->exact = A->working32 ? apply_exact : NULL;
  A->exact_ctx = k;
  A->column = k->col_op ? column : NULL;
  A->column_ctx = k;
  A->sketch = k->sk_op ? apply_sketch : NULL;
  A->sketch_ctx = k;
  A->sketch_width = k->sk_width;
  A->block = k->bl_op ? block : NULL;
  A->block_ctx = k;
  A->pin = pin;
  A->unpin = unpin;
  A->pin_ctx = k;
}

void rk_solve_kernels_free(rk_solve_kernels *k) {
  rk_op_free(k->mv_op);
  rk_op_free(k->mv64_op);
  rk_op_free(k->col_op);
  rk_op_free(k->sk_op);
  rk_op_free(k->bl_op);
  free(k->bl_buf);
  k->bl_buf = NULL;
  k->bl_rows = 0;
  k->mv_op = k->mv64_op = k->col_op = k->sk_op = k->bl_op = NULL;
}
