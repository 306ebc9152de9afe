/*
 * solve-precond.c -- preconditioners for (alpha I + K) x = b.
 *
 * "jacobi":  P = diag(alpha + K_ii).
 * "pivchol": P = shift I + L L^T with L the partial pivoted Cholesky
 *   factor of K (greedy on the remaining diagonal; each step needs one
 *   kernel column K[, p], through the rk_sop column callback) and shift =
 *   alpha (or, when alpha = 0, the mean remaining diagonal), and at least
 *   1e-9 tr(K) (RK_PIVCHOL_SHIFT_MIN).  The floor keeps the Woodbury form
 *   stable: it loses about eps cond(C) <= eps (shift + tr K) / shift of
 *   relative accuracy, so with alpha = 0 and a full-rank L (the mean
 *   remaining diagonal near 0) the applied P^-1 was noise and CG did not
 *   converge; 1e-9 tr(K) bounds the loss near 2e-7, and P stays an
 *   approximation of alpha I + K (a larger shift only damps its smallest
 *   eigenvalues).  Applied by the Woodbury identity
 *     P^-1 r = (r - L C^-1 L^T r) / shift,   C = shift I_r + L^T L,
 *   with C factored once; log det P = (n - r) log shift + log det C.
 *   Its square root (for the probes of the log-determinant) is
 *     S = sqrt(shift) (I + L Y L^T / shift),  Y = V diag(1/(1+sqrt(1+s))) V^T
 *   with G = L^T L / shift = V diag(s) V^T: S is symmetric and S S^T = P.
 *
 * "pic":   P = L L^T + D, L the pivoted Cholesky factor above (rank 0: none;
 *   rank = NULL: the rule below, whose "not low-rank" stop applies from
 *   RK_PIC_RANK_MAX columns on; when that rank meets the trace rule, P is
 *   pivchol's and kind becomes RK_PRECOND_PIVCHOL) and D =
 *   blockdiag(alpha I + K_bb - L_b L_b^T) over the blocks of rk_sop (R
 *   ordered the points so that each block is consecutive neighbours), alpha
 *   at least 1e-9 tr(K).  Each block comes from one run of the kernel
 *   (rk_sop.block), is factored D_b = R_b^T R_b and R_b rounded to float32;
 *   with M = R^-T L blockwise (rounded to float32, replacing L's float
 *   copy: P = R^T (I + M M^T) R for that M), P^-1 r = R^-1 (I - M C^-1
 *   M^T) R^-T r with C = I + M^T M (two block solves an application, where
 *   D^-1 (r - L C^-1 L^T D^-1 r) takes four); log det P = log det D + log
 *   det C; root S = R^T (I + M Y M^T).
 *
 * Rank rule when rank = NULL (rank < 0 here): columns are added until the
 * trace left, tr(K - L L^T), is at most 1000 max(alpha, 1e-9 tr(K)) (so
 * that the preconditioned system's condition number is at most about 1000
 * and CG needs a few dozen iterations; with alpha = 0, at most 1e-6 tr(K));
 * or until doubling the rank from k/2 to k (k >= 32) removed less than 10%
 * of the trace (K is not low-rank: more columns would not pay); or until
 * the largest remaining diagonal is negligible (1e-13 of the largest, 1e-7
 * in float32); or at rank min(n, 1024, 2^26 / n) (L at most 512 MiB,
 * and the O(n rank^2) set-up and O(n rank) per iteration stay moderate).
 */
#define _GNU_SOURCE /* madvise, MADV_HUGEPAGE */
#include "solve.h"
#include "threads.h"

#include <math.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#define RK_PIVCHOL_RANK_MAX     1024
#define RK_PIVCHOL_TRACE_FACTOR 1000.0
#define RK_PIVCHOL_SHIFT_MIN    1e-9

/* A large array (L: up to 512 MiB), 2 MiB aligned and, on Linux, marked
   for transparent huge pages: first-touching it with 4 KiB pages costs a
   page fault per 4 KiB (about a tenth of the set-up at n = 1e5). */
static void *big_alloc(size_t bytes) {
  void *p = NULL;
#ifdef __linux__
  size_t a = (size_t)1 << 21;
  if (bytes >= a) {
    if (posix_memalign(&p, a, bytes) != 0)
      return NULL;
    madvise(p, bytes, MADV_HUGEPAGE);
    return p;
  }
#endif
  return malloc(bytes > 0 ? bytes : 1);
}

/* the threads of the solver's own loops: the one rule of threads.c (in a
   process forked after an OpenMP region ran, 1: libgomp's pool does not
   exist in the child, and a wider region there never starts) */
static int nthreads_of(int nt) {
  return rk_threads_get(nt, NULL);
}

void rk_precond_free(rk_precond *P) {
  free(P->dinv);
  free(P->L);
  free(P->Lf);
  free(P->C);
  free(P->piv);
  free(P->Y);
  free(P->Rf);
  free(P->boff);
  free(P->bstart);
  memset(P, 0, sizeof *P);
}

static int build_jacobi(rk_precond *P, const rk_sop *A, rk_error *e) {
  int64_t n = A->n;
  P->dinv = malloc((size_t)(n > 0 ? n : 1) * sizeof *P->dinv);
  if (P->dinv == NULL)
    return rk_err(e, RK_ENOMEM, -1, "out of memory (Jacobi preconditioner)");
  double ld = 0;
  for (int64_t i = 0; i < n; i++) {
    double a = A->alpha + A->diag[i];
    if (!(a > 0) || !isfinite(a))
      return rk_err(e, RK_EVALUE, -1,
                    "alpha I + K is not positive definite: its diagonal is "
                    "%g at row %lld",
                    a, (long long)i + 1);
    P->dinv[i] = 1.0 / a;
    ld += log(a);
  }
  P->logdet = ld;
  return RK_OK;
}

/* the automatic maximum rank for n points */
static int auto_rank_max(int64_t n) {
  int64_t r = RK_PIVCHOL_RANK_MAX;
  int64_t mem = ((int64_t)1 << 26) / (n > 0 ? n : 1);
  if (mem < r)
    r = mem;
  if (r > n)
    r = n;
  if (r < 1)
    r = 1;
  return (int)r;
}

/* The hot loops (the O(n rank^2) block product of the pivoted Cholesky,
 * the Gram matrix, the Woodbury products) get AVX-512 and AVX2/FMA clones
 * beside the portable one on x86-64 Linux (resolved once at load time by
 * the CPU's features); R's flags build for the baseline ISA, whose 2-lane
 * vectors without FMA run them at a quarter of the speed. */
#if defined(__linux__) && defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define RK_HOT                                                                 \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
#endif
#ifndef RK_HOT
#define RK_HOT
#endif

/* G[c * ldg + i] -= L_i[0:k] . Y_c[0:k] for the rows i in [i0, i1) and the
 * nc rows Y_c = Y + c * k (the candidates' rows of L, gathered): two rows
 * against four candidates at a time, so that each loaded value feeds
 * several products (the block product is the set-up's cost). */
RK_HOT
static void block_dots(const double *L, int64_t ldl, int64_t i0, int64_t i1,
                       const double *Y, int nc, int k, double *G, int64_t ldg,
                       int tri) {
  int64_t i = i0;
  for (; i + 2 <= i1; i += 2) {
    const double *x0 = L + i * ldl, *x1 = x0 + ldl;
    int ce = nc;
    if (tri && i + 2 < ce)
      ce = (int)i + 2;
    int c = 0;
    for (; c + 4 <= ce; c += 4) {
      const double *y0 = Y + (size_t)c * k, *y1 = y0 + k, *y2 = y1 + k,
                   *y3 = y2 + k;
      double a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
#ifdef _OPENMP
#pragma omp simd reduction(+ : a0, a1, a2, a3, b0, b1, b2, b3)
#endif
      for (int j = 0; j < k; j++) {
        double u = x0[j], v = x1[j];
        a0 += u * y0[j];
        a1 += u * y1[j];
        a2 += u * y2[j];
        a3 += u * y3[j];
        b0 += v * y0[j];
        b1 += v * y1[j];
        b2 += v * y2[j];
        b3 += v * y3[j];
      }
      double *g = G + (size_t)c * ldg + i;
      g[0] -= a0;
      g[1] -= b0;
      g[ldg] -= a1;
      g[ldg + 1] -= b1;
      g[2 * ldg] -= a2;
      g[2 * ldg + 1] -= b2;
      g[3 * ldg] -= a3;
      g[3 * ldg + 1] -= b3;
    }
    for (; c < ce; c++) {
      const double *y = Y + (size_t)c * k;
      double a = 0, b = 0;
#ifdef _OPENMP
#pragma omp simd reduction(+ : a, b)
#endif
      for (int j = 0; j < k; j++) {
        a += x0[j] * y[j];
        b += x1[j] * y[j];
      }
      G[(size_t)c * ldg + i] -= a;
      G[(size_t)c * ldg + i + 1] -= b;
    }
  }
  for (; i < i1; i++) {
    const double *x = L + i * ldl;
    int ce = tri && i + 1 < nc ? (int)i + 1 : nc;
    for (int c = 0; c < ce; c++) {
      const double *y = Y + (size_t)c * k;
      double a = 0;
#ifdef _OPENMP
#pragma omp simd reduction(+ : a)
#endif
      for (int j = 0; j < k; j++)
        a += x[j] * y[j];
      G[(size_t)c * ldg + i] -= a;
    }
  }
}

/* C = shift I + L^T L.  The rows of L go in panels of RK_GRAM_PANEL; a
   panel is transposed so that each column of L is a short contiguous
   vector, and C's lower triangle gains the panel's column dot products
   (block_dots over the panel: the same register blocking as the pivoted
   Cholesky's block product).  Each thread sums its panels into its own
   copy of C. */
#define RK_GRAM_PANEL 192
static int gram(const double *L, const float *Lf, int64_t n, int r,
                double shift, double *C, int nt) {
  size_t rr = (size_t)r * r;
  const int pw = RK_GRAM_PANEL;
  double *acc = calloc((size_t)nt * rr, sizeof *acc);
  double *T = malloc((size_t)nt * r * pw * sizeof *T);
  if (acc == NULL || T == NULL) {
    free(acc);
    free(T);
    return -1;
  }
  int64_t npan = (n + pw - 1) / pw;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
  {
#ifdef _OPENMP
    int tid = omp_get_thread_num();
#else
    int tid = 0;
#endif
    double *a = acc + (size_t)tid * rr, *Tt = T + (size_t)tid * r * pw;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t pan = 0; pan < npan; pan++) {
      int64_t i0 = pan * pw;
      int m = n - i0 < pw ? (int)(n - i0) : pw;
      for (int i = 0; i < m; i++) {
        if (Lf) {
          const float *Li = Lf + (i0 + i) * r;
          for (int c = 0; c < r; c++)
            Tt[(size_t)c * pw + i] = (double)Li[c];
        } else {
          const double *Li = L + (i0 + i) * r;
          for (int c = 0; c < r; c++)
            Tt[(size_t)c * pw + i] = Li[c];
        }
      }
      for (int i = m; i < pw; i++)
        for (int c = 0; c < r; c++)
          Tt[(size_t)c * pw + i] = 0;
      /* a[c * r + x] -= T_x . T_c for c <= x */
      block_dots(Tt, pw, 0, r, Tt, r, pw, a, r, 1);
    }
  }
  for (int k = 0; k < r; k++)
    for (int j = 0; j <= k; j++) {
      double s = 0;
      for (int t = 0; t < nt; t++)
        s -= acc[(size_t)t * rr + (size_t)j * r + k];
      if (j == k)
        s += shift;
      C[(size_t)k * r + j] = s;
      C[(size_t)j * r + k] = s;
    }
  free(acc);
  free(T);
  return 0;
}

/* the m largest d[i] > floor over the rows not done, in decreasing order
   (ties: the lower index first, as a scan with `>` would pick); returns
   how many there are (<= m) */
static int top_rows(const double *d, const unsigned char *done, int64_t n,
                    int m, double floor, int64_t *idx) {
  int cnt = 0;
  for (int64_t i = 0; i < n; i++) {
    double v = d[i];
    if (done[i] || !(v > floor))
      continue;
    if (cnt == m && !(v > d[idx[m - 1]]))
      continue;
    int t = cnt < m ? cnt++ : m - 1;
    while (t > 0 && v > d[idx[t - 1]]) {
      idx[t] = idx[t - 1];
      t--;
    }
    idx[t] = i;
  }
  return cnt;
}

/* The core Y of a square root I + M Y M^T of I + M M^T, from the
   symmetric G = M^T M (r x r, column-major, destroyed): G = V diag(s) V^T,
   Y = V diag(1 / (1 + sqrt(1 + s))) V^T, so that (I + M Y M^T)^2 =
   I + M M^T.  pivchol (M = L / sqrt(shift)) and pic (M = R^-T L) share it.
   Returns RK_OK, or the error in e. */
static int root_core(int r, double *G, double *Y, const char *what,
                     rk_error *e) {
  double *V = malloc((size_t)r * r * sizeof *V);
  double *w = malloc((size_t)r * sizeof *w);
  int rc = RK_OK;
  if (!V || !w) {
    rc = rk_err(e, RK_ENOMEM, -1, "out of memory (%s root)", what);
  } else if (rk_eig_sym(r, G, w, V) != 0) {
    rc = rk_err(e, RK_EINTERNAL, -1, "eigen decomposition of the %s core failed",
                what);
  } else {
    for (int j = 0; j < r; j++) {
      double sj = w[j] > 0 ? w[j] : 0;
      w[j] = 1.0 / (1.0 + sqrt(1.0 + sj));
    }
    for (int a = 0; a < r; a++)
      for (int b = 0; b < r; b++) {
        double t = 0;
        for (int j = 0; j < r; j++)
          t += V[(size_t)j * r + a] * w[j] * V[(size_t)j * r + b];
        Y[(size_t)b * r + a] = t;
      }
  }
  free(V);
  free(w);
  return rc;
}

/* Greedy pivoted Cholesky in blocks.  The plain algorithm takes one pivot
 * per step, the row with the largest remaining diagonal, and updates every
 * row with a dot product of its whole prefix of L: n k memory traffic per
 * pivot, n rank^2 / 2 in all, which bounds it at memory speed.  Here a
 * block takes the rows with the largest remaining diagonal as candidates
 * (B = 32 in the first block, then twice the pivots the last block
 * accepted, 4 to B) and their kernel columns.  A small pivoted Cholesky of the candidates'
 * block of the residual K - L L^T (from their rows of L alone) accepts
 * candidates, largest updated diagonal first, while that diagonal is at
 * least theta tau, tau the largest remaining diagonal outside the
 * candidates (the others' diagonals only decrease): each accepted pivot's
 * remaining diagonal is at least theta times the largest of all rows.
 * With theta = 1 the pivots are those of the plain algorithm (up to
 * rounding and exact ties); the default theta = 1/2 (a "theta-greedy"
 * pivoting, which keeps the greedy error bounds up to a constant) accepts
 * about a third more pivots per block on smooth kernels, so fewer blocks,
 * kernel columns and passes over L (at n = 1e5, rank 671, on an H200's
 * host: set-up 1.8 s -> 1.4 s, same iteration counts; with 32 candidates
 * and page-locked columns, 1.1 s).  Only then are the
 * accepted pivots' residual columns K[, p] - L L[p, ]^T computed for every
 * row, in one pass over L with several products per loaded value
 * (block_dots), and their columns of L follow by forward substitution
 * against the candidates' block.  The rejected candidates cost a kernel
 * column each, not a pass over L. */
#define RK_PIVCHOL_BLOCK 32
#define RK_PIVCHOL_THETA 0.5

static int build_pivchol(rk_precond *P, const rk_sop *A, int rank,
                         int want_sqrt, const rk_solve_ctl *ctl, int auto_cap,
                         rk_error *e) {
  int64_t n = A->n;
  int nt = P->nthreads;
  int autor = rank < 0;
  int rmax = autor ? auto_rank_max(n) : (rank > n ? (int)n : rank);
  /* the rank from which the "not low-rank" stop applies: 32, or pic's */
  int dmin = auto_cap > 0 ? auto_cap : 32;
  if (A->column == NULL && A->columns == NULL && rmax > 0)
    return rk_err(e, RK_EINTERNAL, -1, "pivchol: no kernel columns");
  const int B = RK_PIVCHOL_BLOCK;
  size_t n1 = (size_t)(n > 0 ? n : 1);
  double *d = malloc(n1 * sizeof *d);
  double *d2 = malloc(n1 * sizeof *d2);     /* d after a whole block */
  double *R = malloc(n1 * B * sizeof *R);   /* candidates' kernel columns */
  double *Ra = malloc(n1 * B * sizeof *Ra); /* accepted residual columns */
  double *Y = malloc((size_t)B * (rmax > 0 ? rmax : 1) * sizeof *Y);
  double *hist = malloc((size_t)(rmax + 1) * sizeof *hist);
  double *tsum = calloc((size_t)nt * B, sizeof *tsum);
  unsigned char *done = calloc(n1, 1);
  P->L = big_alloc(n1 * (size_t)(rmax > 0 ? rmax : 1) * sizeof *P->L);
  P->piv = malloc((size_t)(rmax > 0 ? rmax : 1) * sizeof *P->piv);
  /* the kernel columns come from the device: page-locked, they copy at
     full bus speed */
  int pin_R = R && A->pin && A->pin(A->pin_ctx, R, n1 * B * sizeof *R);
  int rc = RK_OK;
  if (!d || !d2 || !R || !Ra || !Y || !hist || !tsum || !done || !P->L ||
      !P->piv) {
    rc = rk_err(e, RK_ENOMEM, -1,
                "out of memory for the pivoted Cholesky preconditioner "
                "(%lld x %d)",
                (long long)n, rmax);
    goto out;
  }
  double tr = 0, maxd = 0;
  for (int64_t i = 0; i < n; i++) {
    d[i] = A->diag[i];
    if (!(d[i] >= 0) || !isfinite(d[i])) {
      rc = rk_err(e, RK_EVALUE, -1,
                  "K is not positive semi-definite: K[%lld, %lld] = %g",
                  (long long)i + 1, (long long)i + 1, d[i]);
      goto out;
    }
    tr += d[i];
    if (d[i] > maxd)
      maxd = d[i];
  }
  double tr0 = tr, tiny = maxd * (A->working32 ? 1e-7 : 1e-13);
  /* the smallest shift: RK_PIVCHOL_SHIFT_MIN tr(K), or alpha when larger */
  double sfloor = RK_PIVCHOL_SHIFT_MIN * tr0;
  if (A->alpha > sfloor)
    sfloor = A->alpha;
  hist[0] = tr;
  double theta = A->pivchol_theta > 0 ? A->pivchol_theta : RK_PIVCHOL_THETA;
  int k = 0, stop = 0;
  double *L = P->L;
  int64_t cand[RK_PIVCHOL_BLOCK + 1];
  double g[RK_PIVCHOL_BLOCK], piv_d[RK_PIVCHOL_BLOCK];
  double Lc[RK_PIVCHOL_BLOCK * RK_PIVCHOL_BLOCK]; /* Lc[c * B + t]        */
  double Rc[RK_PIVCHOL_BLOCK * RK_PIVCHOL_BLOCK];
  int acc[RK_PIVCHOL_BLOCK], is_acc[RK_PIVCHOL_BLOCK];
  /* candidates a block: B, then twice the pivots the last block accepted
     (at least 4, at most B). On a smooth kernel the candidates (the rows of
     largest remaining diagonal) are neighbours, and once one is a pivot
     the others fall below theta tau: an H100 GP at 1e5 (RBF, rank 64)
     computed 888 kernel columns for 64 pivots with 32 candidates a block */
  int cw = B;
  while (k < rmax && !stop) {
    int want = rmax - k < cw ? rmax - k : cw;
    int nc = top_rows(d, done, n, want + 1, tiny, cand);
    if (nc == 0)
      break;
    /* non-candidates' diagonals stay at most tau */
    double tau = nc > want ? d[cand[want]] : 0;
    if (nc > want)
      nc = want;
    double tc = rk_now();
    if (A->columns) {
      rc = A->columns(A->column_ctx, cand, nc, R, n, e);
      if (rc != RK_OK)
        goto out;
    }
    for (int c = 0; c < nc && !A->columns; c++) {
      rc = A->column(A->column_ctx, cand[c], R + (size_t)c * n, n, e);
      if (rc != RK_OK)
        goto out;
    }
    P->column_seconds += rk_now() - tc;
    P->columns += nc;
    /* the candidates' rows of L, and their block of the residual:
       Rc[a * B + c] = K[cand_a, cand_c] - L[cand_a, 0:k] . L[cand_c, 0:k] */
    for (int c = 0; c < nc; c++)
      memcpy(Y + (size_t)c * k, L + cand[c] * rmax, (size_t)k * sizeof *Y);
    for (int a = 0; a < nc; a++)
      for (int c = 0; c < nc; c++) {
        double v = R[(size_t)c * n + cand[a]];
        const double *ya = Y + (size_t)a * k, *yc = Y + (size_t)c * k;
        for (int j = 0; j < k; j++)
          v -= ya[j] * yc[j];
        Rc[a * B + c] = v;
      }
    /* the small pivoted Cholesky of Rc */
    for (int c = 0; c < nc; c++) {
      g[c] = d[cand[c]];
      is_acc[c] = 0;
    }
    int na = 0;
    while (na < nc) {
      int best = -1;
      double gb = 0;
      for (int c = 0; c < nc; c++)
        if (!is_acc[c] && g[c] > gb) {
          gb = g[c];
          best = c;
        }
      if (best < 0 || !(gb > tiny) || gb < theta * tau)
        break;
      double sq = sqrt(gb), s = 1.0 / sq;
      for (int c = 0; c < nc; c++) {
        if (is_acc[c] || c == best) {
          Lc[c * B + na] = c == best ? sq : 0;
          continue;
        }
        double v = Rc[c * B + best];
        for (int t = 0; t < na; t++)
          v -= Lc[c * B + t] * Lc[best * B + t];
        v *= s;
        Lc[c * B + na] = v;
        double gc = g[c] - v * v;
        g[c] = gc > 0 ? gc : 0;
      }
      piv_d[na] = sq;
      acc[na++] = best;
      is_acc[best] = 1;
    }
    /* the accepted pivots' residual columns for every row:
       Ra[, t] = K[, p_t] - L[, 0:k] L[p_t, 0:k]^T, one pass over L */
    for (int t = 0; t < na; t++) {
      memcpy(Ra + (size_t)t * n, R + (size_t)acc[t] * n,
             (size_t)n * sizeof *Ra);
      memcpy(Y + (size_t)t * k, L + cand[acc[t]] * rmax, (size_t)k * sizeof *Y);
    }
    if (k > 0) {
      int64_t nblk = (n + 63) / 64;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(dynamic, 4)
#endif
      for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t i0 = blk * 64, i1 = i0 + 64 < n ? i0 + 64 : n;
        block_dots(L, rmax, i0, i1, Y, na, k, Ra, (int64_t)n, 0);
      }
    }
    /* the accepted columns for every row, and the trace after each */
    memset(tsum, 0, (size_t)nt * B * sizeof *tsum);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
#ifdef _OPENMP
      double *ts = tsum + (size_t)omp_get_thread_num() * B;
#pragma omp for schedule(static)
#else
      double *ts = tsum;
#endif
      for (int64_t i = 0; i < n; i++) {
        double *Li = L + i * rmax + k;
#ifdef __GNUC__
        /* rows are rmax apart: fetch ahead, the hardware will not */
        if (i + 16 < n)
          __builtin_prefetch(Li + 16 * (int64_t)rmax, 1);
#endif
        if (done[i]) {
          for (int t = 0; t < na; t++)
            Li[t] = 0;
          d2[i] = d[i];
          continue;
        }
        double di = d[i];
        int pt = -1; /* this row is the t-th accepted pivot */
        for (int t = 0; t < na; t++)
          if (cand[acc[t]] == i)
            pt = t;
        for (int t = 0; t < na; t++) {
          double v;
          if (pt >= 0 && t >= pt) {
            v = t == pt ? piv_d[t] : 0;
            di = 0;
          } else {
            v = Ra[(size_t)t * n + i];
            for (int s = 0; s < t; s++)
              v -= Li[s] * Lc[acc[t] * B + s];
            v /= piv_d[t];
            double dn = di - v * v;
            di = dn > 0 ? dn : 0;
          }
          Li[t] = v;
          ts[t] += di;
        }
        d2[i] = di;
      }
    }
    /* the rank rule, pivot by pivot: the block may end early */
    int keep = na;
    for (int t = 0; t < na; t++) {
      double trk = 0;
      for (int h = 0; h < nt; h++)
        trk += tsum[(size_t)h * B + t];
      hist[k + t + 1] = trk;
      if (autor) {
        int r1 = k + t + 1;
        /* pic (auto_cap > 0) adds columns to at least auto_cap when K is
           not low-rank: its blocks take the local part, the columns the
           rest */
        if (trk <= RK_PIVCHOL_TRACE_FACTOR * sfloor ||
            (r1 >= dmin && trk > 0.9 * hist[r1 / 2])) {
          keep = t + 1;
          stop = 1;
          break;
        }
      }
    }
    /* the diagonal after the kept columns: the row pass's when the whole
       block is kept (the same operations in the same order), else again
       from the kept columns */
    if (keep == na) {
      double *sw = d;
      d = d2;
      d2 = sw;
    } else {
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
      for (int64_t i = 0; i < n; i++) {
        if (done[i])
          continue;
        const double *Li = L + i * rmax + k;
        double di = d[i];
        for (int t = 0; t < keep; t++) {
          double dn = di - Li[t] * Li[t];
          di = dn > 0 ? dn : 0;
        }
        d[i] = di;
      }
    }
    for (int t = 0; t < keep; t++) {
      int64_t p = cand[acc[t]];
      d[p] = 0;
      done[p] = 1;
      P->piv[k + t] = p;
    }
    k += keep;
    cw = 2 * na < 4 ? 4 : (2 * na > B ? B : 2 * na);
    tr = hist[k];
    if (ctl && ctl->interrupted && ctl->interrupted(ctl->interrupt_data)) {
      rc = rk_err(e, RK_EINTERRUPT, -1, "interrupted");
      goto out;
    }
  }
  int r = k;
  P->rank = r;
  P->trace_left = tr;
  P->shift = A->alpha > 0 ? A->alpha : tr / (double)(n > 0 ? n : 1);
  if (P->shift < sfloor)
    P->shift = sfloor;
  if (!(P->shift > 0))
    P->shift = 1e-300; /* K = 0 */
  /* compact L to stride r (rows move forward: memmove is safe) */
  if (r < rmax)
    for (int64_t i = 0; i < n; i++)
      memmove(L + i * r, L + i * rmax, (size_t)r * sizeof *L);
  if (r == 0) {
    P->logdet = (double)n * log(P->shift);
    goto out;
  }
  /* the factor is applied in float: L~ = fl32(L) halves the memory that
     each Woodbury product streams (they are memory-bound); C and so
     log det P are those of L~, P = shift I + L~ L~^T exactly */
  P->Lf = big_alloc((size_t)n * r * sizeof *P->Lf);
  if (P->Lf == NULL) {
    rc = rk_err(e, RK_ENOMEM, -1, "out of memory (pivoted Cholesky factor)");
    goto out;
  }
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
  for (int64_t t = 0; t < n * (int64_t)r; t++)
    P->Lf[t] = (float)L[t];
  if (!A->keep_factor && auto_cap == 0) { /* pic frees it after its blocks */
    free(P->L);
    P->L = L = NULL;
  }
  /* pic builds its own core unless it keeps pivchol's P (an automatic rank
     that met the trace rule): the Gram matrix (n rank^2) would be wasted */
  if (auto_cap > 0 && !(autor && tr <= RK_PIVCHOL_TRACE_FACTOR * sfloor))
    goto out;
  double tg = rk_now();
  P->C = malloc((size_t)r * r * sizeof *P->C);
  int grc = P->C == NULL ? -1 : gram(NULL, P->Lf, n, r, P->shift, P->C, nt);
  P->gram_seconds = rk_now() - tg;
  if (grc != 0) {
    rc = rk_err(e, RK_ENOMEM, -1, "out of memory (pivoted Cholesky core)");
    goto out;
  }
  double *G = NULL;
  if (want_sqrt) {
    G = malloc((size_t)r * r * sizeof *G);
    if (G == NULL) {
      rc = rk_err(e, RK_ENOMEM, -1, "out of memory (pivoted Cholesky core)");
      goto out;
    }
    memcpy(G, P->C, (size_t)r * r * sizeof *G);
  }
  if (rk_chol(r, P->C) != 0) {
    free(G);
    rc = rk_err(e, RK_EVALUE, -1,
                "the pivoted Cholesky preconditioner is not positive "
                "definite (shift %g)",
                P->shift);
    goto out;
  }
  double ld = (double)(n - r) * log(P->shift);
  for (int j = 0; j < r; j++)
    ld += 2.0 * log(P->C[(size_t)j * r + j]);
  P->logdet = ld;
  if (want_sqrt) {
    /* G = (C - shift I) / shift = L^T L / shift */
    P->Y = malloc((size_t)r * r * sizeof *P->Y);
    if (P->Y) {
      for (size_t t = 0; t < (size_t)r * r; t++)
        G[t] /= P->shift;
      for (int j = 0; j < r; j++)
        G[(size_t)j * r + j] -= 1.0;
      rc = root_core(r, G, P->Y, "preconditioner", e);
    } else {
      rc = rk_err(e, RK_ENOMEM, -1, "out of memory (preconditioner root)");
    }
    free(G);
  }
out:
  if (pin_R)
    A->unpin(A->pin_ctx, R);
  free(d);
  free(d2);
  free(R);
  free(Ra);
  free(Y);
  free(hist);
  free(tsum);
  free(done);
  return rc;
}

/* ---- randomized Nystrom ------------------------------------------------ */

/* a standard normal number from the counter idx (splitmix64 of two
   counters, Box-Muller): the test matrix does not depend on the threads */
static uint64_t splitmix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static double gauss_at(uint64_t seed, uint64_t idx) {
  uint64_t a = splitmix(seed ^ splitmix(2 * idx)),
           b = splitmix(seed ^ splitmix(2 * idx + 1));
  double u1 = ((double)(a >> 11) + 0.5) * 0x1.0p-53; /* (0, 1) */
  double u2 = (double)(b >> 11) * 0x1.0p-53;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void rk_rademacher(uint64_t seed, double *w, int64_t n, int ncol) {
  size_t nn = (size_t)n * (size_t)(ncol > 0 ? ncol : 0);
  for (size_t t0 = 0; t0 < nn; t0 += 64) {
    uint64_t bits = splitmix(seed ^ splitmix((uint64_t)(t0 >> 6)));
    size_t t1 = t0 + 64 < nn ? t0 + 64 : nn;
    for (size_t t = t0; t < t1; t++, bits >>= 1)
      w[t] = (bits & 1) ? 1.0 : -1.0;
  }
}

/* T = A^T B for row-major n x r A and B (T r x r, column-major) */
static int cross(const double *A, const double *B, int64_t n, int r, double *T,
                 int nt) {
  size_t rr = (size_t)r * r;
  double *acc = calloc((size_t)nt * rr, sizeof *acc);
  if (acc == NULL)
    return -1;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
  {
#ifdef _OPENMP
    double *a = acc + (size_t)omp_get_thread_num() * rr;
#pragma omp for schedule(static)
#else
    double *a = acc;
#endif
    for (int64_t i = 0; i < n; i++) {
      const double *Ai = A + i * r, *Bi = B + i * r;
      for (int k = 0; k < r; k++) {
        double ak = Ai[k];
        double *ck = a + (size_t)k; /* T[k, j] at ck[j * r] */
        for (int j = 0; j < r; j++)
          ck[(size_t)j * r] += ak * Bi[j];
      }
    }
  }
  for (size_t t = 0; t < rr; t++) {
    double v = 0;
    for (int th = 0; th < nt; th++)
      v += acc[(size_t)th * rr + t];
    T[t] = v;
  }
  free(acc);
  return 0;
}

/* x = R^-T x (forward substitution; R upper, column-major r x r) */
static void rt_solve(int r, const double *R, double *x) {
  for (int j = 0; j < r; j++) {
    const double *cj = R + (size_t)j * r;
    double v = x[j];
    for (int k = 0; k < j; k++)
      v -= cj[k] * x[k];
    x[j] = v / cj[j];
  }
}

/* x = R^-1 x (back substitution) */
static void r_solve(int r, const double *R, double *x) {
  for (int j = r - 1; j >= 0; j--) {
    x[j] /= R[(size_t)j * r + j];
    double v = x[j];
    const double *cj = R + (size_t)j * r;
    for (int k = 0; k < j; k++)
      x[k] -= cj[k] * v;
  }
}

/* The randomized Nystrom preconditioner (Frangella, Tropp and Udell,
   "Randomized Nystrom preconditioning", 2023): with Omega an n x r
   Gaussian matrix, Y = K Omega (r / sketch_width kernel passes),
   nu = sqrt(n) eps ||Y||_F and Y_nu = Y + nu Omega, the Nystrom
   approximation of K + nu I is B B^T with B = Y_nu R^-1, R^T R =
   Omega^T Y_nu.  Its eigen decomposition comes from the small
   H = B^T B = R^-T (Y_nu^T Y_nu) R^-1 = V diag(s) V^T: U = Y_nu M with
   M = R^-1 V diag(s)^-1/2 and lambda = s - nu (those above a relative
   1e-13, 1e-7 in float32, of the largest are kept). */
static int build_nystrom(rk_precond *P, const rk_sop *A, int rank,
                         int want_sqrt, const rk_solve_ctl *ctl, rk_error *e) {
  int64_t n = A->n;
  int nt = P->nthreads, w = A->sketch_width;
  if (A->sketch == NULL || w < 1)
    return rk_err(e, RK_EINTERNAL, -1, "nystrom: no sketch product");
  int r = rank < 0 ? (n < 256 ? (int)n : 256) : (rank > n ? (int)n : rank);
  if (r < 1)
    return rk_err(e, RK_EVALUE, -1, "nystrom: the rank must be at least 1");
  size_t nr = (size_t)n * r, rr = (size_t)r * r;
  double *Om = malloc(nr * sizeof *Om);
  double *X = malloc((size_t)n * w * sizeof *X);
  double *Yc = malloc((size_t)n * w * sizeof *Yc);
  double *T = malloc(rr * sizeof *T), *W = malloc(rr * sizeof *W);
  double *H = malloc(rr * sizeof *H), *V = malloc(rr * sizeof *V);
  double *s = malloc((size_t)r * sizeof *s), *m = malloc((size_t)r * sizeof *m);
  P->L = big_alloc(nr * sizeof *P->L);
  P->C = calloc(rr, sizeof *P->C);
  if (want_sqrt)
    P->Y = calloc(rr, sizeof *P->Y);
  int rc = RK_OK;
  if (!Om || !X || !Yc || !T || !W || !H || !V || !s || !m || !P->L || !P->C ||
      (want_sqrt && !P->Y)) {
    rc = rk_err(e, RK_ENOMEM, -1,
                "out of memory for the Nystrom preconditioner (%lld x %d)",
                (long long)n, r);
    goto out;
  }
  P->rank = r;
  double *L = P->L;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
  for (int64_t i = 0; i < n; i++)
    for (int k = 0; k < r; k++)
      Om[i * r + k] = gauss_at(A->seed, (uint64_t)i * r + k);
  /* the sketch, in blocks of w columns (the last one padded with zeros) */
  double fro = 0;
  for (int c0 = 0; c0 < r; c0 += w) {
    int cw = r - c0 < w ? r - c0 : w;
    for (int j = 0; j < w; j++)
      for (int64_t i = 0; i < n; i++)
        X[(size_t)j * n + i] = j < cw ? Om[i * r + c0 + j] : 0.0;
    rc = A->sketch(A->sketch_ctx, X, Yc, n, w, e);
    if (rc != RK_OK)
      goto out;
    for (int j = 0; j < cw; j++)
      for (int64_t i = 0; i < n; i++) {
        double y = Yc[(size_t)j * n + i];
        if (!isfinite(y)) {
          rc = rk_err(e, RK_EVALUE, -1,
                      "nystrom: the kernel product is not finite");
          goto out;
        }
        L[i * r + c0 + j] = y;
        fro += y * y;
      }
    if (ctl && ctl->interrupted && ctl->interrupted(ctl->interrupt_data)) {
      rc = rk_err(e, RK_EINTERRUPT, -1, "interrupted");
      goto out;
    }
  }
  double eps = A->working32 ? 1.1920929e-07 : 2.220446049250313e-16;
  double nu = sqrt((double)n) * eps * sqrt(fro), added = 0;
  if (!(nu > 0))
    nu = 1e-300;
  /* Y_nu = Y + nu Omega and R^T R = Omega^T Y_nu; a Cholesky that fails
     (rounding, float32 products) retries with a 10x larger shift */
  int tries = 0;
  for (;;) {
    double dn = nu - added;
    for (size_t t = 0; t < nr; t++)
      L[t] += dn * Om[t];
    added = nu;
    if (cross(Om, L, n, r, T, nt) != 0) {
      rc = rk_err(e, RK_ENOMEM, -1, "out of memory (Nystrom core)");
      goto out;
    }
    for (int a = 0; a < r; a++)
      for (int b = 0; b < a; b++) {
        double v = 0.5 * (T[(size_t)b * r + a] + T[(size_t)a * r + b]);
        T[(size_t)b * r + a] = T[(size_t)a * r + b] = v;
      }
    if (rk_chol(r, T) == 0)
      break;
    if (++tries > 6) {
      rc = rk_err(e, RK_EVALUE, -1,
                  "nystrom: the sketch core is not positive definite (K "
                  "may not be positive semi-definite)");
      goto out;
    }
    nu *= 10;
  }
  /* H = R^-T W R^-1 with W = Y_nu^T Y_nu */
  if (gram(L, NULL, n, r, 0.0, W, nt) != 0) {
    rc = rk_err(e, RK_ENOMEM, -1, "out of memory (Nystrom core)");
    goto out;
  }
  for (int j = 0; j < r; j++) /* columns of W: W := R^-T W */
    rt_solve(r, T, W + (size_t)j * r);
  for (int a = 0; a < r; a++) { /* row a of (R^-T W) -> H[, a] */
    for (int b = 0; b < r; b++)
      m[b] = W[(size_t)b * r + a];
    rt_solve(r, T, m);
    for (int b = 0; b < r; b++)
      H[(size_t)a * r + b] = m[b];
  }
  for (int a = 0; a < r; a++)
    for (int b = 0; b < a; b++) {
      double v = 0.5 * (H[(size_t)b * r + a] + H[(size_t)a * r + b]);
      H[(size_t)b * r + a] = H[(size_t)a * r + b] = v;
    }
  if (rk_eig_sym(r, H, s, V) != 0) {
    rc = rk_err(e, RK_EINTERNAL, -1,
                "nystrom: eigen decomposition of the core failed");
    goto out;
  }
  double lmax = 0;
  for (int j = 0; j < r; j++)
    if (s[j] - nu > lmax)
      lmax = s[j] - nu;
  double tiny = lmax * (A->working32 ? 1e-7 : 1e-13);
  double lmin = -1, mu = A->alpha, lsum = 0;
  int kept = 0;
  for (int j = 0; j < r; j++) {
    double l = s[j] - nu;
    if (l > tiny && (lmin < 0 || l < lmin))
      lmin = l;
  }
  double ld = 0;
  for (int j = 0; j < r && lmin > 0; j++) {
    double l = s[j] - nu;
    if (!(l > tiny))
      continue;
    kept++;
    lsum += l;
    /* m = R^-1 v_j / sqrt(s_j): U[, j] = Y_nu m */
    for (int b = 0; b < r; b++)
      m[b] = V[(size_t)j * r + b] / sqrt(s[j]);
    r_solve(r, T, m);
    double q = (l + mu) / (lmin + mu);
    double dC = 1.0 / q - 1.0, dY = sqrt(q) - 1.0;
    ld += log(q);
    for (int b = 0; b < r; b++)
      for (int a = 0; a < r; a++) {
        P->C[(size_t)b * r + a] += dC * m[a] * m[b];
        if (want_sqrt)
          P->Y[(size_t)b * r + a] += dY * m[a] * m[b];
      }
  }
  P->kept = kept;
  P->shift = mu;
  P->logdet = ld;
  if (A->diag) {
    double tr = 0;
    for (int64_t i = 0; i < n; i++)
      tr += A->diag[i];
    P->trace_left = tr - lsum > 0 ? tr - lsum : 0;
  }
out:
  free(Om);
  free(X);
  free(Yc);
  free(T);
  free(W);
  free(H);
  free(V);
  free(s);
  free(m);
  return rc;
}

/* ---- "pic": low rank plus exact diagonal blocks ------------------------ */

/* the automatic rank of pic's low-rank part: pivchol's rule, whose "not
   low-rank" stop applies only from this rank on.  Exponential kernels,
   where that stop comes at rank 32: Walker Lake's 7,800 points, 2 cores,
   pic rank 32 / 256 / 512: 99 / 44 / 33 iterations, 9.2 / 4.6 / 3.9 s,
   where pivchol rank 512 took 66 iterations, 6.5 s.  Smooth kernels need
   pivchol's trace rule itself: the blocks of a smooth residual K - L L^T
   leave out its equally large off-diagonal blocks, so P^-1 A gets
   eigenvalues near 0 (hard Gaussian system of bench/solve.R at n = 5000:
   pivchol rank 462 (its rule) 18 iterations; pic rank 256 / 400 / 600:
   176 / 49 / 10) */
#define RK_PIC_RANK_MAX 256

#ifdef _OPENMP
#define RK_PIC_SUM _Pragma("omp simd reduction(+ : s)")
#else
#define RK_PIC_SUM
#endif

/* R^T x = y in place (R upper, column-major m x m, float) */
RK_HOT
static void rt_solve_f(int64_t m, const float *R, double *x) {
  for (int64_t j = 0; j < m; j++) {
    const float *cj = R + (size_t)j * m;
    double s = 0;
    RK_PIC_SUM
    for (int64_t k = 0; k < j; k++)
      s += (double)cj[k] * x[k];
    x[j] = (x[j] - s) / (double)cj[j];
  }
}

/* R x = y in place */
RK_HOT
static void r_solve_f(int64_t m, const float *R, double *x) {
  for (int64_t j = m - 1; j >= 0; j--) {
    const float *cj = R + (size_t)j * m;
    double v = x[j] / (double)cj[j];
    x[j] = v;
    for (int64_t k = 0; k < j; k++)
      x[k] -= (double)cj[k] * v;
  }
}

/* y = R^T x (lower-triangular product), x and y distinct */
RK_HOT
static void rt_times_f(int64_t m, const float *R, const double *x, double *y) {
  for (int64_t j = 0; j < m; j++) {
    const float *cj = R + (size_t)j * m;
    double s = 0;
    RK_PIC_SUM
    for (int64_t k = 0; k <= j; k++)
      s += (double)cj[k] * x[k];
    y[j] = s;
  }
}

static int build_pic(rk_precond *P, const rk_sop *A, int rank, int want_sqrt,
                     const rk_solve_ctl *ctl, rk_error *e) {
  int64_t n = A->n;
  int nb = A->nblocks, nt = P->nthreads;
  if (A->block == NULL || nb < 1 || A->block_start == NULL ||
      A->block_start[0] != 0 || A->block_start[nb] != n)
    return rk_err(e, RK_EINTERNAL, -1, "pic: no diagonal blocks");
  int64_t maxm = 0;
  for (int b = 0; b < nb; b++) {
    int64_t m = A->block_start[b + 1] - A->block_start[b];
    if (m < 1)
      return rk_err(e, RK_EINTERNAL, -1, "pic: an empty block");
    if (m > maxm)
      maxm = m;
  }
  int rc;
  /* the low-rank part (rank 0: none, block Jacobi) */
  double tr = 0;
  for (int64_t i = 0; i < n; i++)
    tr += A->diag[i];
  if (rank != 0) {
    rc = build_pivchol(P, A, rank, want_sqrt, ctl, RK_PIC_RANK_MAX, e);
    if (rc != RK_OK)
      return rc;
    /* the automatic rank met pivchol's trace rule: K is low-rank enough
       for pivchol alone, and the blocks of a smooth residual would only
       hurt (see RK_PIC_RANK_MAX): P is pivchol's, no blocks */
    if (rank < 0 && P->C != NULL) { /* build_pivchol made pivchol's core */
      P->kind = RK_PRECOND_PIVCHOL;
      free(P->L);
      P->L = NULL;
      return RK_OK;
    }
    free(P->C);
    free(P->Y);
    P->C = NULL;
    P->Y = NULL;
  }
  int r = P->rank;
  /* D_b = alpha I + K_bb - L_b L_b^T, alpha at least RK_PIVCHOL_SHIFT_MIN
     tr(K) (as pivchol's shift: alpha = 0 leaves the pivots' rows of the
     residual zero) */
  double sh = A->alpha;
  if (sh < RK_PIVCHOL_SHIFT_MIN * tr)
    sh = RK_PIVCHOL_SHIFT_MIN * tr;
  if (!(sh > 0))
    sh = 1e-300;
  P->shift = sh;
  P->nblocks = nb;
  P->bstart = malloc((size_t)(nb + 1) * sizeof *P->bstart);
  P->boff = malloc((size_t)(nb + 1) * sizeof *P->boff);
  if (!P->bstart || !P->boff)
    return rk_err(e, RK_ENOMEM, -1, "out of memory (pic blocks)");
  memcpy(P->bstart, A->block_start, (size_t)(nb + 1) * sizeof *P->bstart);
  P->boff[0] = 0;
  for (int b = 0; b < nb; b++) {
    int64_t m = P->bstart[b + 1] - P->bstart[b];
    P->boff[b + 1] = P->boff[b] + m * m;
  }
  size_t tot = (size_t)P->boff[nb];
  double *Dall = big_alloc(tot * sizeof *Dall);
  double *Dcp = malloc((size_t)nt * maxm * maxm * sizeof *Dcp);
  P->Rf = big_alloc(tot * sizeof *P->Rf);
  if (!Dall || !P->Rf || !Dcp) {
    free(Dall);
    free(Dcp);
    return rk_err(e, RK_ENOMEM, -1,
                  "out of memory for the pic blocks (%.0f MB)",
                  (double)tot * 12 / 1e6);
  }
  /* the kernel's blocks, one run each (the callbacks are not
     thread-safe), then everything else in parallel over the blocks */
  double tb = rk_now();
  for (int b = 0; b < nb; b++) {
    rc = A->block(A->block_ctx, P->bstart[b], P->bstart[b + 1],
                  Dall + P->boff[b], e);
    if (rc != RK_OK) {
      free(Dall);
      free(Dcp);
      return rc;
    }
    if (ctl && ctl->interrupted && (b & 15) == 15 &&
        ctl->interrupted(ctl->interrupt_data)) {
      free(Dall);
      free(Dcp);
      return rk_err(e, RK_EINTERRUPT, -1, "interrupted");
    }
  }
  P->block_seconds = rk_now() - tb;
  int bad = -1;
  double ld = 0;
  const float *Lf = P->Lf;
  /* the residual blocks from the float64 factor (K - L~ L~^T with the
     rounded L~ can be indefinite by its rounding, 1e-7 of K, when alpha is
     small); P = L~ L~^T + D stays symmetric positive definite for any such
     D, and D is exactly that of the float factors R~ below */
  const double *Ld = P->L;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1) reduction(+ : ld)
#endif
  for (int b = 0; b < nb; b++) {
#ifdef _OPENMP
    double *cp = Dcp + (size_t)omp_get_thread_num() * maxm * maxm;
#else
    double *cp = Dcp;
#endif
    int64_t r0 = P->bstart[b], m = P->bstart[b + 1] - r0;
    double *D = Dall + P->boff[b], dmax = 0;
    for (int64_t c = 0; c < m; c++) {
      double *dc = D + (size_t)c * m;
      for (int64_t i = 0; i <= c; i++) {
        double v = dc[i];
        if (r > 0) {
          double s = 0;
          if (Ld) {
            const double *li = Ld + (size_t)(r0 + i) * r,
                         *lc = Ld + (size_t)(r0 + c) * r;
            RK_PIC_SUM
            for (int k = 0; k < r; k++)
              s += li[k] * lc[k];
          } else {
            const float *li = Lf + (size_t)(r0 + i) * r,
                        *lc = Lf + (size_t)(r0 + c) * r;
            RK_PIC_SUM
            for (int k = 0; k < r; k++)
              s += (double)li[k] * (double)lc[k];
          }
          v -= s;
        }
        dc[i] = i == c ? v + sh : v;
        if (i == c && dc[i] > dmax)
          dmax = dc[i];
      }
    }
    float *R = P->Rf + P->boff[b];
    /* a block that rounding left indefinite gets a growing jitter (any
       positive definite D gives a valid P): from 1e-12 of its largest
       diagonal, 100 times more per try */
    memcpy(cp, D, (size_t)m * m * sizeof *cp);
    int ok = rk_chol((int)m, D) == 0;
    double jit = 1e-12 * dmax;
    for (int t = 0; !ok && t < 5 && jit > 0; t++, jit *= 100) {
      memcpy(D, cp, (size_t)m * m * sizeof *D);
      for (int64_t j = 0; j < m; j++)
        D[(size_t)j * m + j] += jit;
      ok = rk_chol((int)m, D) == 0;
    }
    if (!ok) {
#ifdef _OPENMP
#pragma omp critical
#endif
      bad = b;
      memset(R, 0, (size_t)m * m * sizeof *R);
      continue;
    }
    for (size_t t = 0; t < (size_t)m * m; t++)
      R[t] = (float)D[t];
    for (int64_t j = 0; j < m; j++)
      ld += 2.0 * log((double)R[(size_t)j * m + j]);
  }
  free(Dall);
  free(Dcp);
  if (!A->keep_factor) {
    free(P->L);
    P->L = NULL;
  }
  if (bad >= 0)
    return rk_err(e, RK_EVALUE, -1,
                  "pic: the diagonal block %d (rows %lld to %lld) of alpha I "
                  "+ K - L L^T is not positive definite: K is not positive "
                  "semi-definite",
                  bad + 1, (long long)P->bstart[bad] + 1,
                  (long long)P->bstart[bad + 1]);
  if (r == 0) {
    P->logdet = ld;
    return RK_OK;
  }
  /* C = I + L^T D^-1 L = I + M^T M, M = R^-T L blockwise; M~ = fl32(M)
     overwrites Lf (the factor is no longer needed: applications and the
     root use M~, which saves two block solves each) */
  float *Mf = P->Lf;
  double tg = rk_now();
  size_t rr = (size_t)r * r;
  double *acc = calloc((size_t)nt * rr, sizeof *acc);
  double *scr = malloc((size_t)nt * maxm * r * sizeof *scr);
  P->C = malloc(rr * sizeof *P->C);
  if (!acc || !scr || !P->C) {
    free(acc);
    free(scr);
    return rk_err(e, RK_ENOMEM, -1, "out of memory (pic core)");
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
  {
#ifdef _OPENMP
    int th = omp_get_thread_num();
#else
    int th = 0;
#endif
    double *a = acc + (size_t)th * rr, *M = scr + (size_t)th * maxm * r;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
    for (int b = 0; b < nb; b++) {
      int64_t r0 = P->bstart[b], m = P->bstart[b + 1] - r0;
      const float *R = P->Rf + P->boff[b];
      /* column k of M~ = fl32(M) replaces column k of this block's rows
         of Lf once that column is read, and C is that of M~: P = R~^T (I +
         M~ M~^T) R~ exactly, which its application, root and
         log-determinant all use */
      for (int k = 0; k < r; k++) {
        double *mk = M + (size_t)k * m;
        for (int64_t i = 0; i < m; i++)
          mk[i] = (double)Lf[(size_t)(r0 + i) * r + k];
        rt_solve_f(m, R, mk);
        for (int64_t i = 0; i < m; i++) {
          float v = (float)mk[i];
          Mf[(size_t)(r0 + i) * r + k] = v;
          mk[i] = (double)v;
        }
      }
      for (int q = 0; q < r; q++)
        for (int k = 0; k <= q; k++) {
          const double *mq = M + (size_t)q * m, *mk = M + (size_t)k * m;
          double s = 0;
          RK_PIC_SUM
          for (int64_t i = 0; i < m; i++)
            s += mq[i] * mk[i];
          a[(size_t)q * r + k] += s;
        }
    }
  }
  for (int q = 0; q < r; q++)
    for (int k = 0; k <= q; k++) {
      double s = 0;
      for (int th = 0; th < nt; th++)
        s += acc[(size_t)th * rr + (size_t)q * r + k];
      P->C[(size_t)q * r + k] = s;
      P->C[(size_t)k * r + q] = s;
    }
  free(acc);
  free(scr);
  double *G = NULL;
  if (want_sqrt) {
    G = malloc(rr * sizeof *G); /* G = C - I = M^T M */
    if (G == NULL)
      return rk_err(e, RK_ENOMEM, -1, "out of memory (pic root)");
    memcpy(G, P->C, rr * sizeof *G);
  }
  for (int j = 0; j < r; j++)
    P->C[(size_t)j * r + j] += 1.0;
  if (rk_chol(r, P->C) != 0) {
    free(G);
    return rk_err(e, RK_EVALUE, -1,
                  "the pic preconditioner's core is not positive definite");
  }
  for (int j = 0; j < r; j++)
    ld += 2.0 * log(P->C[(size_t)j * r + j]);
  P->logdet = ld;
  P->gram_seconds = rk_now() - tg;
  if (want_sqrt) { /* G = C - I = M^T M */
    P->Y = malloc(rr * sizeof *P->Y);
    rc = P->Y ? root_core(r, G, P->Y, "pic", e)
              : rk_err(e, RK_ENOMEM, -1, "out of memory (pic root)");
    free(G);
    return rc;
  }
  return RK_OK;
}

int rk_precond_build(rk_precond *P, const rk_sop *A, int kind, int rank,
                     int want_sqrt, int nthreads, const rk_solve_ctl *ctl,
                     rk_error *e) {
  memset(P, 0, sizeof *P);
  double t0 = rk_now();
  P->kind = kind;
  P->n = A->n;
  P->nthreads = nthreads_of(nthreads);
  int rc;
  switch (kind) {
  case RK_PRECOND_NONE:
    return RK_OK;
  case RK_PRECOND_JACOBI:
    rc = A->diag ? build_jacobi(P, A, e)
                 : rk_err(e, RK_EINTERNAL, -1, "jacobi: no diagonal");
    break;
  case RK_PRECOND_PIVCHOL:
    rc = A->diag ? build_pivchol(P, A, rank, want_sqrt, ctl, 0, e)
                 : rk_err(e, RK_EINTERNAL, -1, "pivchol: no diagonal");
    break;
  case RK_PRECOND_NYSTROM:
    rc = build_nystrom(P, A, rank, want_sqrt, ctl, e);
    break;
  case RK_PRECOND_PIC:
    rc = A->diag ? build_pic(P, A, rank, want_sqrt, ctl, e)
                 : rk_err(e, RK_EINTERNAL, -1, "pic: no diagonal");
    break;
  default:
    rc = rk_err(e, RK_EVALUE, -1, "unknown preconditioner %d", kind);
  }
  if (rc != RK_OK)
    rk_precond_free(P);
  P->seconds = rk_now() - t0;
  return rc;
}

/* the Woodbury products stream L once each (memory-bound: 4 bytes of L
   per multiply-add would halve them); rows go in blocks of RK_APPLY_ROWS
   through the vectorized kernels */
#define RK_APPLY_ROWS 256

/* a[c * rk + k] += sum over rows i in [i0, i1) of L[i, k] r[c * n + i],
   for L in double (nystrom) or float (pivchol) */
#define RK_LT_ROWS(NAME, T)                                                    \
  RK_HOT                                                                       \
  static void NAME(const T *L, int rk, int64_t i0, int64_t i1,                 \
                   const double *r, int64_t n, int ncol, double *a) {          \
    for (int64_t i = i0; i < i1; i++) {                                        \
      const T *Li = L + i * rk;                                                \
      for (int c = 0; c < ncol; c++) {                                         \
        double ri = r[(size_t)c * n + i];                                      \
        if (ri == 0.0)                                                         \
          continue;                                                            \
        double *ac = a + (size_t)c * rk;                                       \
        RK_SIMD                                                                \
        for (int k = 0; k < rk; k++)                                           \
          ac[k] += (double)Li[k] * ri;                                         \
      }                                                                        \
    }                                                                          \
  }
#ifdef _OPENMP
#define RK_SIMD     _Pragma("omp simd")
#define RK_SIMD_SUM _Pragma("omp simd reduction(+ : s)")
#else
#define RK_SIMD
#define RK_SIMD_SUM
#endif
RK_LT_ROWS(lt_rows_d, double)
RK_LT_ROWS(lt_rows_f, float)

/* t = L^T r (rank x ncol, column-major) */
static int lt_times(const rk_precond *P, const double *r, double *t, int ncol) {
  int64_t n = P->n;
  int rk = P->rank, nt = P->nthreads;
  size_t m = (size_t)rk * ncol;
  double *acc = calloc((size_t)nt * m, sizeof *acc);
  if (acc == NULL)
    return -1;
  int64_t nblk = (n + RK_APPLY_ROWS - 1) / RK_APPLY_ROWS;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
  {
#ifdef _OPENMP
    double *a = acc + (size_t)omp_get_thread_num() * m;
#pragma omp for schedule(static)
#else
    double *a = acc;
#endif
    for (int64_t blk = 0; blk < nblk; blk++) {
      int64_t i0 = blk * RK_APPLY_ROWS,
              i1 = i0 + RK_APPLY_ROWS < n ? i0 + RK_APPLY_ROWS : n;
      if (P->Lf)
        lt_rows_f(P->Lf, rk, i0, i1, r, n, ncol, a);
      else
        lt_rows_d(P->L, rk, i0, i1, r, n, ncol, a);
    }
  }
  for (size_t j = 0; j < m; j++) {
    double s = 0;
    for (int th = 0; th < nt; th++)
      s += acc[(size_t)th * m + j];
    t[j] = s;
  }
  free(acc);
  return 0;
}

/* z[c * n + i] = a * (r[c * n + i] + b * L[i, ] . t[, c]) for i in [i0, i1) */
#define RK_L_ROWS(NAME, T)                                                     \
  RK_HOT                                                                       \
  static void NAME(const T *L, int rk, int64_t i0, int64_t i1,                 \
                   const double *r, const double *t, double a, double b,       \
                   double *z, int64_t n, int ncol) {                           \
    for (int64_t i = i0; i < i1; i++) {                                        \
      const T *Li = L + i * rk;                                                \
      for (int c = 0; c < ncol; c++) {                                         \
        const double *tc = t + (size_t)c * rk;                                 \
        double s = 0;                                                          \
        RK_SIMD_SUM                                                            \
        for (int k = 0; k < rk; k++)                                           \
          s += (double)Li[k] * tc[k];                                          \
        z[(size_t)c * n + i] = a * (r[(size_t)c * n + i] + b * s);             \
      }                                                                        \
    }                                                                          \
  }
RK_L_ROWS(l_rows_d, double)
RK_L_ROWS(l_rows_f, float)

/* z = a * (r + b * L t) */
static void l_times_add(const rk_precond *P, const double *r, const double *t,
                        double a, double b, double *z, int ncol) {
  int64_t n = P->n;
  int64_t nblk = (n + RK_APPLY_ROWS - 1) / RK_APPLY_ROWS;
#ifdef _OPENMP
#pragma omp parallel for num_threads(P->nthreads) schedule(static)
#endif
  for (int64_t blk = 0; blk < nblk; blk++) {
    int64_t i0 = blk * RK_APPLY_ROWS,
            i1 = i0 + RK_APPLY_ROWS < n ? i0 + RK_APPLY_ROWS : n;
    if (P->Lf)
      l_rows_f(P->Lf, P->rank, i0, i1, r, t, a, b, z, n, ncol);
    else
      l_rows_d(P->L, P->rank, i0, i1, r, t, a, b, z, n, ncol);
  }
}

/* z = D^-1 y (how = 0), R^-1 y (1), R^-T y (2) or R^T y (3) blockwise, for
   ncol columns; y and z may be the same */
static int pic_blocks(const rk_precond *P, const double *y, double *z,
                      int ncol, int how) {
  int64_t n = P->n, maxm = 0;
  int nb = P->nblocks;
  for (int b = 0; b < nb; b++)
    if (P->bstart[b + 1] - P->bstart[b] > maxm)
      maxm = P->bstart[b + 1] - P->bstart[b];
  int nt = P->nthreads;
  double *scr = malloc((size_t)nt * 2 * maxm * sizeof *scr);
  if (scr == NULL)
    return -1;
  /* work items (block, column): a block's columns one after the other on
     one thread when there are enough blocks for the threads, so that its
     factor (256 KB at m = 256) is read from memory once and stays in cache
     for the other columns; else blocks and columns spread over threads */
  int64_t work = (int64_t)nb * ncol;
  int by_block = nb >= 4 * nt, chunk = by_block ? ncol : 4;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
  {
#ifdef _OPENMP
    double *x = scr + (size_t)omp_get_thread_num() * 2 * maxm;
#pragma omp for schedule(dynamic, chunk)
#else
    double *x = scr;
#endif
    for (int64_t w = 0; w < work; w++) {
      int b = by_block ? (int)(w / ncol) : (int)(w % nb),
          c = by_block ? (int)(w % ncol) : (int)(w / nb);
      int64_t r0 = P->bstart[b], m = P->bstart[b + 1] - r0;
      const float *R = P->Rf + P->boff[b];
      const double *yc = y + (size_t)c * n + r0;
      double *zc = z + (size_t)c * n + r0;
      memcpy(x, yc, (size_t)m * sizeof *x);
      if (how == 3) {
        rt_times_f(m, R, x, x + maxm);
        memcpy(zc, x + maxm, (size_t)m * sizeof *zc);
        continue;
      }
      if (how == 0 || how == 2)
        rt_solve_f(m, R, x);
      if (how == 0 || how == 1)
        r_solve_f(m, R, x);
      memcpy(zc, x, (size_t)m * sizeof *zc);
    }
  }
  free(scr);
  return 0;
}

/* P^-1 r = R^-1 (I - M C^-1 M^T) R^-T r, M = R^-T L (stored in Lf, fl32),
   C = I + M^T M: the Woodbury identity for P = R^T (I + M M^T) R, with
   two block passes (the form D^-1 (r - L C^-1 L^T D^-1 r) takes four) */
static int pic_apply(const rk_precond *P, const double *r, double *z, int ncol,
                     rk_error *e) {
  int rk = P->rank;
  if (rk == 0)
    return pic_blocks(P, r, z, ncol, 0) == 0
               ? RK_OK
               : rk_err(e, RK_ENOMEM, -1, "out of memory (preconditioner)");
  size_t nn = (size_t)P->n * ncol;
  double *t = malloc((size_t)rk * ncol * sizeof *t);
  double *y = malloc(nn * sizeof *y);
  if (t == NULL || y == NULL || pic_blocks(P, r, y, ncol, 2) != 0 ||
      lt_times(P, y, t, ncol) != 0) {
    free(t);
    free(y);
    return rk_err(e, RK_ENOMEM, -1, "out of memory (preconditioner)");
  }
  for (int c = 0; c < ncol; c++)
    rk_chol_solve(rk, P->C, t + (size_t)c * rk);
  l_times_add(P, y, t, 1.0, -1.0, y, ncol);
  int rc = pic_blocks(P, y, z, ncol, 1);
  free(t);
  free(y);
  return rc == 0 ? RK_OK
                 : rk_err(e, RK_ENOMEM, -1, "out of memory (preconditioner)");
}

/* S w = R^T (w + M Y M^T w), M = R^-T L (stored in Lf): S S^T = R^T (I +
   M M^T) R = P */
static int pic_sqrt(const rk_precond *P, const double *w, double *z, int ncol,
                    rk_error *e) {
  int rk = P->rank;
  if (rk == 0)
    return pic_blocks(P, w, z, ncol, 3) == 0
               ? RK_OK
               : rk_err(e, RK_ENOMEM, -1, "out of memory (preconditioner)");
  if (P->Y == NULL)
    return rk_err(e, RK_EINTERNAL, -1, "preconditioner built without root");
  size_t nn = (size_t)P->n * ncol;
  double *u = malloc(nn * sizeof *u);
  double *t = malloc((size_t)2 * rk * ncol * sizeof *t);
  int rc = u && t ? RK_OK : RK_ENOMEM;
  if (rc == RK_OK && lt_times(P, w, t, ncol) != 0) /* M^T w */
    rc = RK_ENOMEM;
  if (rc == RK_OK) {
    double *v = t + (size_t)rk * ncol;
    for (int c = 0; c < ncol; c++)
      for (int a = 0; a < rk; a++) {
        double s = 0;
        for (int b = 0; b < rk; b++)
          s += P->Y[(size_t)b * rk + a] * t[(size_t)c * rk + b];
        v[(size_t)c * rk + a] = s;
      }
    /* u = w + M v, then R^T u */
    l_times_add(P, w, v, 1.0, 1.0, u, ncol);
    if (pic_blocks(P, u, z, ncol, 3) != 0)
      rc = RK_ENOMEM;
  }
  free(u);
  free(t);
  return rc == RK_OK
             ? RK_OK
             : rk_err(e, RK_ENOMEM, -1, "out of memory (preconditioner)");
}

/* z = r + L G L^T r (nystrom: G = C for P^-1, Y for the root S) */
static int nystrom_apply(const rk_precond *P, const double *G, const double *r,
                         double *z, int ncol, rk_error *e) {
  int rk = P->rank;
  double *t = malloc((size_t)2 * rk * ncol * sizeof *t);
  if (t == NULL || lt_times(P, r, t, ncol) != 0) {
    free(t);
    return rk_err(e, RK_ENOMEM, -1, "out of memory (preconditioner)");
  }
  double *u = t + (size_t)rk * ncol;
  for (int c = 0; c < ncol; c++)
    for (int a = 0; a < rk; a++) {
      double v = 0;
      for (int b = 0; b < rk; b++)
        v += G[(size_t)b * rk + a] * t[(size_t)c * rk + b];
      u[(size_t)c * rk + a] = v;
    }
  l_times_add(P, r, u, 1.0, 1.0, z, ncol);
  free(t);
  return RK_OK;
}

int rk_precond_apply(const rk_precond *P, const double *r, double *z, int ncol,
                     rk_error *e) {
  int64_t n = P->n;
  size_t nn = (size_t)n * ncol;
  if (P->kind == RK_PRECOND_NONE) {
    if (z != r)
      memcpy(z, r, nn * sizeof *z);
    return RK_OK;
  }
  if (P->kind == RK_PRECOND_JACOBI) {
    for (int c = 0; c < ncol; c++)
      for (int64_t i = 0; i < n; i++)
        z[(size_t)c * n + i] = P->dinv[i] * r[(size_t)c * n + i];
    return RK_OK;
  }
  int rk = P->rank;
  if (P->kind == RK_PRECOND_NYSTROM)
    return nystrom_apply(P, P->C, r, z, ncol, e);
  if (P->kind == RK_PRECOND_PIC)
    return pic_apply(P, r, z, ncol, e);
  if (rk == 0) {
    for (size_t t = 0; t < nn; t++)
      z[t] = r[t] / P->shift;
    return RK_OK;
  }
  double *t = malloc((size_t)rk * ncol * sizeof *t);
  if (t == NULL || lt_times(P, r, t, ncol) != 0) {
    free(t);
    return rk_err(e, RK_ENOMEM, -1, "out of memory (preconditioner)");
  }
  for (int c = 0; c < ncol; c++)
    rk_chol_solve(rk, P->C, t + (size_t)c * rk);
  l_times_add(P, r, t, 1.0 / P->shift, -1.0, z, ncol);
  free(t);
  return RK_OK;
}

int rk_precond_sqrt(const rk_precond *P, const double *w, double *z, int ncol,
                    rk_error *e) {
  int64_t n = P->n;
  size_t nn = (size_t)n * ncol;
  if (P->kind == RK_PRECOND_NONE) {
    if (z != w)
      memcpy(z, w, nn * sizeof *z);
    return RK_OK;
  }
  if (P->kind == RK_PRECOND_JACOBI) {
    for (int c = 0; c < ncol; c++)
      for (int64_t i = 0; i < n; i++)
        z[(size_t)c * n + i] = w[(size_t)c * n + i] / sqrt(P->dinv[i]);
    return RK_OK;
  }
  int rk = P->rank;
  if (P->kind == RK_PRECOND_NYSTROM) {
    if (P->Y == NULL)
      return rk_err(e, RK_EINTERNAL, -1, "preconditioner built without root");
    return nystrom_apply(P, P->Y, w, z, ncol, e);
  }
  if (P->kind == RK_PRECOND_PIC)
    return pic_sqrt(P, w, z, ncol, e);
  double rs = sqrt(P->shift);
  if (rk == 0) {
    for (size_t t = 0; t < nn; t++)
      z[t] = rs * w[t];
    return RK_OK;
  }
  if (P->Y == NULL)
    return rk_err(e, RK_EINTERNAL, -1, "preconditioner built without root");
  double *t = malloc((size_t)2 * rk * ncol * sizeof *t);
  if (t == NULL || lt_times(P, w, t, ncol) != 0) {
    free(t);
    return rk_err(e, RK_ENOMEM, -1, "out of memory (preconditioner)");
  }
  double *u = t + (size_t)rk * ncol;
  for (int c = 0; c < ncol; c++)
    for (int a = 0; a < rk; a++) {
      double s = 0;
      for (int b = 0; b < rk; b++)
        s += P->Y[(size_t)b * rk + a] * t[(size_t)c * rk + b];
      u[(size_t)c * rk + a] = s;
    }
  l_times_add(P, w, u, rs, 1.0 / P->shift, z, ncol);
  free(t);
  return RK_OK;
}
