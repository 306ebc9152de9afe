/*
 * solve-cg.c -- preconditioned conjugate gradients for (alpha I + K) X = B
 * with a block of right-hand sides.
 *
 * All columns advance together: one kernel product per iteration for the
 * whole n x ncol block (the kernel is a block product with ncol outputs);
 * each column keeps its own CG scalars and stops on its own (its search
 * direction is zeroed so the shared product costs it nothing more).
 *
 * Iterates, residuals and the preconditioner live in float64.  The solve
 * runs in cycles: a cycle starts from the true residual r = b - (alpha I +
 * K) x computed with a float64 product and runs PCG on the correction.
 * In float64 a single cycle normally reaches tol (a second one only when
 * the recursive residual drifted from the true one).  In float32 (working
 * products in float32) a cycle stops once the recursive residual fell by
 * RK_REFINE_ETA, and the next cycle restarts from a float64 residual:
 * mixed-precision iterative refinement.  When a float32 cycle fails to
 * halve the true residual of a column (float32 products are too coarse
 * for the system's condition number), the remaining cycles use float64
 * products, so tol is still reached.
 */
#include "solve.h"
#include "threads.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RK_REFINE_ETA     1e-3 /* residual reduction of one float32 cycle */
#define RK_PROGRESS_EVERY 0.1  /* seconds between progress updates    */

static double dot(const double *a, const double *b, int64_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; i++)
    s += a[i] * b[i];
  return s;
}

/* The vector work of an iteration (a few passes over the n x ncol block)
   runs over the columns in parallel: each column is one thread's, so the
   results do not depend on the thread count.  nt comes from
   rk_threads_get (1 in a forked child, whose OpenMP pool is gone) and is
   1 for small blocks, where a parallel region costs more than it saves. */
static int vector_threads(int requested, int64_t n, int ncol) {
  if (ncol < 2 || (double)n * ncol < 65536.0)
    return 1;
  int nt = rk_threads_get(requested, NULL);
  return nt < ncol ? nt : ncol;
}

/* column states after an update step */
enum { COL_GOING = 0, COL_DONE, COL_DROPPED, COL_NOTPD };

/* f(ctx, ...), its wall time added to *sec */
static int timed_product(rk_apply_fn f, void *ctx, const double *x, double *y,
                         int64_t n, int ncol, double *sec, rk_error *e) {
  double t0 = rk_now();
  int rc = f(ctx, x, y, n, ncol, e);
  *sec += rk_now() - t0;
  return rc;
}

static int timed_precond(const rk_precond *P, const double *r, double *z,
                         int ncol, double *sec, rk_error *e) {
  double t0 = rk_now();
  int rc = rk_precond_apply(P, r, z, ncol, e);
  *sec += rk_now() - t0;
  return rc;
}

/* r = b - (alpha I + K) x with the float64 product */
static int true_residual(const rk_sop *A, const double *b, const double *x,
                         double *r, int ncol, int nt, double *sec,
                         rk_error *e) {
  rk_apply_fn f = A->exact ? A->exact : A->apply;
  void *ctx = A->exact ? A->exact_ctx : A->apply_ctx;
  int rc = timed_product(f, ctx, x, r, A->n, ncol, sec, e);
  if (rc != RK_OK)
    return rc;
  int64_t n = A->n;
  double alpha = A->alpha;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (int c = 0; c < ncol; c++) {
    const double *bc = b + (size_t)c * n, *xc = x + (size_t)c * n;
    double *rc_ = r + (size_t)c * n;
#pragma omp simd
    for (int64_t i = 0; i < n; i++)
      rc_[i] = bc[i] - alpha * xc[i] - rc_[i];
  }
  return RK_OK;
}

typedef struct progress {
  const rk_solve_ctl *ctl;
  double t0, last;
  int shown;
} progress;

static void progress_tick(progress *pg, int it, double res, int done) {
  const rk_solve_ctl *c = pg->ctl;
  if (c == NULL || c->progress == NULL)
    return;
  double t = rk_now(), el = t - pg->t0;
  if (done) {
    if (pg->shown)
      c->progress(c->progress_data, it, res, el, 1);
    return;
  }
  if (!c->progress_always && el < c->progress_after)
    return;
  if (pg->shown && t - pg->last < RK_PROGRESS_EVERY)
    return;
  pg->shown = 1;
  pg->last = t;
  c->progress(c->progress_data, it, res, el, 0);
}

int rk_pcg(const rk_sop *A, const rk_precond *P, const double *b, double *x,
           int ncol, const rk_solve_ctl *ctl, rk_solve_out *out, rk_error *e) {
  int64_t n = A->n;
  size_t nn = (size_t)n * ncol;
  int rc = RK_OK;
  double *r = malloc((nn ? nn : 1) * sizeof *r);
  double *z = malloc((nn ? nn : 1) * sizeof *z);
  double *p = malloc((nn ? nn : 1) * sizeof *p);
  double *q = malloc((nn ? nn : 1) * sizeof *q);
  /* the iterate goes to the device and the product comes back at each
     iteration: page-locked, the copies run at full bus speed */
  int pin_p = p && A->pin && A->pin(A->pin_ctx, p, (nn ? nn : 1) * sizeof *p);
  int pin_q = q && A->pin && A->pin(A->pin_ctx, q, (nn ? nn : 1) * sizeof *q);
  double *sc = malloc((size_t)(ncol > 0 ? ncol : 1) * 8 * sizeof *sc);
  int *flag = malloc((size_t)(ncol > 0 ? ncol : 1) * 3 * sizeof *flag);
  if (!r || !z || !p || !q || !sc || !flag) {
    rc = rk_err(e, RK_ENOMEM, -1, "out of memory (%d right-hand sides of %lld)",
                ncol, (long long)n);
    goto out;
  }
  double *nb = sc, *rel = sc + ncol, *target = sc + 2 * ncol,
         *rz = sc + 3 * ncol, *rel0 = sc + 4 * ncol, *cola = sc + 5 * ncol,
         *colr = sc + 6 * ncol, *colpq = sc + 7 * ncol;
  int *active = flag, *incycle = flag + ncol, *state = flag + 2 * ncol;
  int nt = vector_threads(ctl->nthreads, n, ncol);
  progress pg = {ctl, rk_now(), 0, 0};
  memset(out->iters, 0, (size_t)ncol * sizeof *out->iters);
  out->products = out->exact_products = out->cycles = 0;
  out->converged = 0;
  out->switched64 = 0;
  out->stalled = 0;
  out->product_seconds = out->precond_seconds = 0;
  if (out->ncoef)
    memset(out->ncoef, 0, (size_t)ncol * sizeof *out->ncoef);

  int any_x0 = 0;
  for (size_t t = 0; t < nn && !any_x0; t++)
    any_x0 = x[t] != 0.0;
  if (any_x0) {
    rc = true_residual(A, b, x, r, ncol, nt, &out->product_seconds, e);
    if (rc != RK_OK)
      goto out;
    out->exact_products++;
  } else {
    memcpy(r, b, nn * sizeof *r);
  }
  int nact = 0;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (int c = 0; c < ncol; c++) {
    nb[c] = sqrt(dot(b + (size_t)c * n, b + (size_t)c * n, n));
    double rn = sqrt(dot(r + (size_t)c * n, r + (size_t)c * n, n));
    if (nb[c] == 0) { /* b = 0: x = 0 */
      memset(x + (size_t)c * n, 0, (size_t)n * sizeof *x);
      rel[c] = 0;
    } else {
      rel[c] = rn / nb[c];
    }
  }
  for (int c = 0; c < ncol; c++) {
    active[c] = rel[c] > ctl->tol;
    nact += active[c];
  }

  int fast = A->exact != NULL; /* products in float32 */
  int total = 0;
  while (nact > 0 && total < ctl->maxit) {
    out->cycles++;
    int first = out->cycles == 1;
    double eta = fast ? RK_REFINE_ETA : 0.0;
    rk_apply_fn f = fast ? A->apply : (A->exact ? A->exact : A->apply);
    void *fctx = fast ? A->apply_ctx : (A->exact ? A->exact_ctx : A->apply_ctx);
    for (int c = 0; c < ncol; c++) {
      incycle[c] = active[c];
      rel0[c] = rel[c];
      double rn = rel[c] * nb[c], t1 = ctl->tol * nb[c], t2 = eta * rn;
      target[c] = t1 > t2 ? t1 : t2;
    }
    rc = timed_precond(P, r, z, ncol, &out->precond_seconds, e);
    if (rc != RK_OK)
      goto out;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int c = 0; c < ncol; c++) {
      double *pc = p + (size_t)c * n, *zc = z + (size_t)c * n;
      if (incycle[c]) {
        memcpy(pc, zc, (size_t)n * sizeof *pc);
        rz[c] = dot(r + (size_t)c * n, zc, n);
      } else {
        memset(pc, 0, (size_t)n * sizeof *pc);
      }
    }
    int left = nact;
    while (left > 0 && total < ctl->maxit) {
      rc = timed_product(f, fctx, p, q, n, ncol, &out->product_seconds, e);
      if (rc != RK_OK)
        goto out;
      total++;
      if (fast)
        out->products++;
      else if (A->exact)
        out->exact_products++;
      else
        out->products++;
      /* q += alpha p, then per column: a = rz / p'q, x += a p, r -= a q */
      double alpha = A->alpha;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
      for (int c = 0; c < ncol; c++) {
        if (!incycle[c])
          continue;
        double *pc = p + (size_t)c * n, *qc = q + (size_t)c * n;
        double *xc = x + (size_t)c * n, *rc_ = r + (size_t)c * n;
        double pq = 0;
#pragma omp simd reduction(+ : pq)
        for (int64_t i = 0; i < n; i++) {
          qc[i] += alpha * pc[i];
          pq += pc[i] * qc[i];
        }
        colpq[c] = pq;
        if (!(pq > 0) || !isfinite(pq)) {
          state[c] = fast ? COL_DROPPED : COL_NOTPD;
          continue;
        }
        double a = rz[c] / pq, rr = 0;
#pragma omp simd reduction(+ : rr)
        for (int64_t i = 0; i < n; i++) {
          xc[i] += a * pc[i];
          rc_[i] -= a * qc[i];
          rr += rc_[i] * rc_[i];
        }
        cola[c] = a;
        colr[c] = sqrt(rr);
        state[c] = colr[c] <= target[c] ? COL_DONE : COL_GOING;
      }
      double worst = 0;
      for (int c = 0; c < ncol; c++) {
        if (!incycle[c])
          continue;
        double *pc = p + (size_t)c * n;
        if (state[c] == COL_DROPPED) { /* float32 noise: let the float64
                                          residual decide */
          incycle[c] = 0;
          left--;
          memset(pc, 0, (size_t)n * sizeof *pc);
          continue;
        }
        if (state[c] == COL_NOTPD) {
          rc = rk_err(e, RK_EVALUE, -1,
                      "alpha I + K is not positive definite: p'(alpha I + "
                      "K)p = %g at iteration %d of right-hand side %d (is K "
                      "a positive semi-definite kernel? try alpha > 0)",
                      colpq[c], out->iters[c] + 1, c + 1);
          goto out;
        }
        out->iters[c]++;
        if (first && out->cg_alpha && out->ncoef[c] < out->cap)
          out->cg_alpha[(size_t)c * out->cap + out->ncoef[c]++] = cola[c];
        if (colr[c] / nb[c] > worst)
          worst = colr[c] / nb[c];
        if (state[c] == COL_DONE) {
          incycle[c] = 0;
          left--;
          memset(pc, 0, (size_t)n * sizeof *pc);
        }
      }
      progress_tick(&pg, total, worst, 0);
      if (ctl->interrupted && ctl->interrupted(ctl->interrupt_data)) {
        rc = rk_err(e, RK_EINTERRUPT, -1, "interrupted");
        goto out;
      }
      if (left == 0 || total >= ctl->maxit)
        break;
      rc = timed_precond(P, r, z, ncol, &out->precond_seconds, e);
      if (rc != RK_OK)
        goto out;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
      for (int c = 0; c < ncol; c++) {
        if (!incycle[c])
          continue;
        double *pc = p + (size_t)c * n, *zc = z + (size_t)c * n;
        double rzn = dot(r + (size_t)c * n, zc, n);
        double beta = rzn / rz[c];
        if (first && out->cg_alpha && out->ncoef[c] <= out->cap &&
            out->ncoef[c] > 0)
          out->cg_beta[(size_t)c * out->cap + out->ncoef[c] - 1] = beta;
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
          pc[i] = zc[i] + beta * pc[i];
        rz[c] = rzn;
      }
    }
    /* the true residual, from a float64 product */
    rc = true_residual(A, b, x, r, ncol, nt, &out->product_seconds, e);
    if (rc != RK_OK)
      goto out;
    out->exact_products++;
    nact = 0;
    int stalled = 0;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int c = 0; c < ncol; c++)
      if (active[c])
        rel[c] = sqrt(dot(r + (size_t)c * n, r + (size_t)c * n, n)) / nb[c];
    for (int c = 0; c < ncol; c++) {
      if (!active[c])
        continue;
      if (!isfinite(rel[c])) {
        rc = rk_err(e, RK_EVALUE, -1,
                    "the solve diverged (non-finite residual for right-hand "
                    "side %d)",
                    c + 1);
        goto out;
      }
      active[c] = rel[c] > ctl->tol;
      if (active[c] && rel[c] > 0.5 * rel0[c])
        stalled = 1;
      nact += active[c];
    }
    if (fast && stalled && nact > 0) {
      fast = 0;
      out->switched64 = 1;
    } else if (!fast && stalled && nact > 0 && total < ctl->maxit) {
      /* float64 cycle without progress: more cycles would repeat it */
      out->stalled = 1;
      break;
    }
  }
  out->converged = nact == 0;
  double worst = 0;
  for (int c = 0; c < ncol; c++) {
    out->resid[c] = rel[c];
    if (rel[c] > worst)
      worst = rel[c];
  }
  progress_tick(&pg, total, worst, 1);
out:
  free(r);
  free(z);
  if (pin_p)
    A->unpin(A->pin_ctx, p);
  if (pin_q)
    A->unpin(A->pin_ctx, q);
  free(p);
  free(q);
  free(sc);
  free(flag);
  return rc;
}
