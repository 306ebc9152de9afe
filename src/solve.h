/*
 * solve.h -- linear systems (alpha I + K) x = b with a symbolic kernel
 * matrix K: preconditioned conjugate gradients (solve-cg.c), the
 * preconditioners (solve-precond.c), small dense eigen solvers
 * (solve-eig.c) and stochastic Lanczos quadrature for log det(alpha I + K).
 *
 * The solver never sees a formula: it talks to the kernel through
 * callbacks (rk_sop), so any backend that can multiply K by a block of
 * vectors plugs in.  The R glue (ffi-solve.c) builds them over the public
 * run path.  No R headers here.
 */
#ifndef RK_SOLVE_H
#define RK_SOLVE_H

#include "rk.h"

#include <stdint.h>

/* y = K x for a block of ncol vectors (n x ncol, column-major doubles).
   Returns RK_OK or an error code with e filled. */
typedef int (*rk_apply_fn)(void *ctx, const double *x, double *y, int64_t n,
                           int ncol, rk_error *e);
/* col[0..n-1] = K[, p] (0-based column p) */
typedef int (*rk_column_fn)(void *ctx, int64_t p, double *col, int64_t n,
                            rk_error *e);

/* the operator alpha I + K */
typedef struct rk_sop {
  int64_t n;
  double alpha;
  rk_apply_fn apply; /* K x in the working precision                    */
  void *apply_ctx;
  rk_apply_fn exact; /* K x in float64; NULL: `apply` is already float64  */
  void *exact_ctx;
  rk_column_fn column; /* kernel columns (pivchol); may be NULL otherwise */
  void *column_ctx;
  /* optional: the columns p[0 .. nc-1] at once, into cols (n x nc,
     column-major; nc <= RK_PIVCHOL_BLOCK); pivchol uses it over `column`
     when set (one exchange per block of candidates on a cluster) */
  int (*columns)(void *ctx, const int64_t *p, int nc, double *cols, int64_t n,
                 rk_error *e);
  rk_apply_fn sketch; /* K x for blocks of sketch_width vectors (nystrom) */
  void *sketch_ctx;
  int sketch_width;
  uint64_t seed;      /* nystrom: seed of the random test matrix          */
  const double *diag; /* K_ii (jacobi, pivchol); may be NULL for "none"   */
  int working32;      /* the working precision is float32                */
  /* optional: page-lock host buffers that products and columns copy to
     or from (1 when locked; unpin those before freeing them) */
  int (*pin)(void *ctx, void *p, size_t bytes);
  void (*unpin)(void *ctx, void *p);
  void *pin_ctx;
  /* "pic": the points in nblocks consecutive blocks, block b the rows
     [block_start[b], block_start[b + 1]) (block_start[nblocks] = n); the
     kernel's block K[r0:r1, r0:r1] into out ((r1 - r0)^2 doubles,
     column-major) */
  int (*block)(void *ctx, int64_t r0, int64_t r1, double *out, rk_error *e);
  void *block_ctx;
  int nblocks;
  const int64_t *block_start;
  int keep_factor;      /* pivchol: keep the float64 factor (tests)   */
  double pivchol_theta; /* pivchol: pivots at least theta times the largest
                           remaining diagonal (0: the default, 1/2; 1: the
                           plain greedy order; solve-precond.c)          */
} rk_sop;

enum rk_precond_kind {
  RK_PRECOND_NONE = 0,
  RK_PRECOND_JACOBI = 1,
  RK_PRECOND_PIVCHOL = 2,
  RK_PRECOND_NYSTROM = 3,
  RK_PRECOND_PIC = 4
};

/* A preconditioner P ~ alpha I + K.
   jacobi:  P = diag(alpha + K_ii).
   pivchol: P = shift I + L L^T, L (n x rank) the partial pivoted Cholesky
            factor of K, shift = alpha (alpha > 0) or the mean remaining
            diagonal (alpha = 0); applied through the Woodbury identity with
            C = shift I_r + L^T L factored once (Cholesky).
   nystrom: randomized Nystrom approximation U diag(lambda) U^T of K from
            the sketch Y = K Omega (Omega n x rank Gaussian);
            P = U (diag(lambda) + mu I) U^T / (lambda_k + mu) + I - U U^T,
            mu = alpha, lambda_k the smallest eigenvalue kept.  Stored as
            L = Y + nu Omega (row-major, n x rank), U = L M, and
            P^-1 r = r + L C L^T r, S w = w + L Y L^T w (C, Y: rank x rank,
            column-major, full).
   pic:     P = L L^T + D, L the pivoted Cholesky factor (fl32, as pivchol;
            rank 0 allowed), D = blockdiag(alpha I + K_bb - L_b L_b^T) over
            the blocks of rk_sop (the "partially independent conditional"
            approximation: exact near the diagonal, low-rank beyond);
            D_b = R_b^T R_b with R_b = fl32(chol(...)), so D is exactly that
            of the float factors; M = R^-T L blockwise, rounded to fl32,
            replaces Lf, and P = R^T (I + M M^T) R exactly (for the rounded
            M): P^-1 r = R^-1 (I - M C^-1 M^T) R^-T r, C = I + M^T M.
            Square root S = R^T (I + M Y M^T), Y from the eigen
            decomposition of C - I. */
typedef struct rk_precond {
  int kind;
  int64_t n;
  int rank;
  double shift;
  double *dinv; /* jacobi: 1 / (alpha + K_ii)                          */
  double *L;    /* nystrom: the shifted sketch, n x rank, row-major; pivchol:
                   the factor, n x rank, row-major (L[i * rank + k]), freed
                   after the set-up unless rk_sop.keep_factor            */
  float *Lf;    /* pivchol: fl32(L), the factor that P is built from;
                   pic: fl32(R^-T L) blockwise once the blocks are built */
  double *C;    /* pivchol: rank x rank Cholesky factor of C (upper, col-major);
                   nystrom: the core of P^-1 (rank x rank)              */
  int kept;     /* nystrom: eigenvalues kept (<= rank)                   */
  int64_t *piv; /* pivchol: the pivots, in order                        */
  double trace_left; /* pivchol: trace of K - L L^T                     */
  double logdet;     /* log det(P)                                      */
  /* square root S (S S^T = P) for the log-determinant probes: pivchol:
     S = sqrt(shift) (I + L Y L^T / shift), Y = V diag(f) V^T (rank x rank) */
  double *Y;
  /* pic: the blocks' factors R_b (upper, column-major m_b x m_b, fl32)
     at Rf + boff[b]; bstart a copy of rk_sop.block_start */
  float *Rf;
  int64_t *boff, *bstart;
  int nblocks;
  int nthreads;
  double seconds;        /* wall time of the set-up                     */
  double column_seconds; /* pivchol: of which the kernel columns        */
  int columns;           /* pivchol: kernel columns computed (candidates
                            included)                                  */
  double gram_seconds;   /* pivchol: of which C = shift I + L^T L       */
  double block_seconds;  /* pic: of which the kernel's diagonal blocks  */
} rk_precond;

/* what stops, reports and interrupts a solve */
typedef struct rk_solve_ctl {
  double tol;   /* relative residual per column                       */
  int maxit;    /* total iterations (kernel products) at most          */
  int nthreads; /* host threads for vector work (<= 0: all)             */
  /* non-zero: stop with RK_EINTERRUPT (checked between iterations)     */
  int (*interrupted)(void *data);
  void *interrupt_data;
  /* progress: called between iterations when `progress_always`, or once
     the solve has run longer than `progress_after` seconds; done = 1 on
     the last call */
  void (*progress)(void *data, int iter, double resid, double elapsed,
                   int done);
  void *progress_data;
  int progress_always;
  double progress_after;
} rk_solve_ctl;

/* what a solve returns besides x */
typedef struct rk_solve_out {
  int *iters;         /* ncol: iterations each column took               */
  double *resid;      /* ncol: final relative residual (float64 product)   */
  int products;       /* kernel products in the working precision          */
  int exact_products; /* float64 products (residuals, refinement)       */
  int cycles;         /* refinement cycles                                 */
  int converged;      /* all columns reached tol                           */
  int switched64;     /* float32 refinement stalled: switched to float64   */
  int stalled;        /* stopped before maxit: a float64 cycle did not halve
                         the true residual (its rounding floor)             */
  double product_seconds; /* wall time in kernel products (both precisions) */
  double precond_seconds; /* wall time applying the preconditioner          */
  /* Lanczos coefficients of the first cycle, for log-determinants: when
     cg_alpha != NULL, cg_alpha[c * cap + k] / cg_beta[...] receive the CG
     step lengths alpha_k and ratios beta_k of column c (k < cap), and
     ncoef[c] their count */
  double *cg_alpha, *cg_beta;
  int *ncoef;
  int cap;
} rk_solve_out;

/* Build the preconditioner.  rank < 0: chosen by the rule of
   solve-precond.c (rk_precond_build documents it). */
int rk_precond_build(rk_precond *P, const rk_sop *A, int kind, int rank,
                     int want_sqrt, int nthreads, const rk_solve_ctl *ctl,
                     rk_error *e);
void rk_precond_free(rk_precond *P);
/* z = P^-1 r for ncol columns (n x ncol, column-major); RK_OK or
   RK_ENOMEM */
int rk_precond_apply(const rk_precond *P, const double *r, double *z, int ncol,
                     rk_error *e);
/* w (n x ncol, column-major) = independent random signs +-1 (Rademacher),
   entry t = c n + i from bit t mod 64 of splitmix64 of (seed, t / 64): the
   probes of kernel_logdet, reproducible from the seed R draws */
void rk_rademacher(uint64_t seed, double *w, int64_t n, int ncol);
/* z = S w with S S^T = P (needs want_sqrt at build) */
int rk_precond_sqrt(const rk_precond *P, const double *w, double *z, int ncol,
                    rk_error *e);

/* Solve (alpha I + K) x = b for ncol right-hand sides; x holds the
   starting point (x0, or zeros) on entry and the solution on return.
   Returns RK_OK (also when maxit was reached: see out->converged),
   RK_EVALUE when alpha I + K is found not positive definite,
   RK_EINTERRUPT, or the error of a kernel product. */
int rk_pcg(const rk_sop *A, const rk_precond *P, const double *b, double *x,
           int ncol, const rk_solve_ctl *ctl, rk_solve_out *out, rk_error *e);

/* ---- kernel callbacks over prepared operators (solve-kernel.c) ---------- */

struct rk_operator; /* be.h */

typedef struct rk_solve_kernels {
  struct rk_operator *mv_op; /* Sum_Reduction(K * b_j, 1), working precision */
  struct rk_operator *mv64_op; /* the same in float64 (float32 solves only) */
  struct rk_operator *col_op; /* Sum_Reduction(K, 1), or NULL                 */
  struct rk_operator *sk_op;  /* Sum_Reduction(K * s_j, 1), s_j of dimension
                                 sk_width (nystrom sketch), or NULL           */
  struct rk_operator *bl_op;  /* Sum_Reduction(K * OneHot(v_j, bl_width), 1)
                                 in float64, v_j a point's position in its
                                 block modulo bl_width (pic), or NULL; run
                                 on bl_width points at a time            */
  int bl_width;
  double *bl_buf;             /* rows x bl_width results of one run        */
  int64_t bl_rows;
  int bpos;                   /* position of b_j                              */
  int sk_pos, sk_width;       /* position and dimension of s_j                */
  rk_options o, o64;          /* working precision, float64 (callbacks)       */
} rk_solve_kernels;

/* Prepare the operators (kernels fetched, data converted / bound once).
   The inputs' data, the formulas and the options' strings must outlive k.
   On failure nothing is held. */
int rk_solve_kernels_init(rk_solve_kernels *k, rk_formula *mv,
                          const rk_input *mv_in, int mv_nin, int bpos,
                          rk_formula *col, const rk_input *col_in, int col_nin,
                          const rk_options *o, rk_error *e);
/* prepare the sketch operator (nystrom) after init; on failure k is
   freed entirely */
int rk_solve_kernels_sketch(rk_solve_kernels *k, rk_formula *sk,
                            const rk_input *sk_in, int sk_nin, int sk_pos,
                            rk_error *e);
/* prepare the diagonal-block operator (pic) after init, in float64; on
   failure k is freed entirely */
int rk_solve_kernels_blocks(rk_solve_kernels *k, rk_formula *bl,
                            const rk_input *bl_in, int bl_nin, rk_error *e);
/* fill A's apply / exact / column callbacks and working32 */
void rk_solve_kernels_sop(rk_solve_kernels *k, rk_sop *A);
void rk_solve_kernels_free(rk_solve_kernels *k);

/* ---- dense helpers (solve-eig.c) ---------------------------------------- */

/* Symmetric tridiagonal eigenvalues by implicit QL with Wilkinson shifts:
   d[0..n-1] diagonal (eigenvalues on return), off[0..n-2] off-diagonal
   (destroyed).  Each rotation is applied to the columns of Z (nz rows, n
   columns, column-major, leading dimension nz): start from Z = e1^T (nz =
   1) for the first components of the eigenvectors, or from the
   Householder Q for all of them.  Returns 0, or -1 when QL did not
   converge. */
int rk_eig_tridiag(int n, double *d, double *off, double *Z, int nz);
/* Symmetric eigen decomposition of the n x n column-major A (destroyed):
   w eigenvalues, V eigenvectors (columns).  Returns 0 or -1. */
int rk_eig_sym(int n, double *A, double *w, double *V);
/* Cholesky A = R^T R of the n x n column-major A in place (upper triangle
   R).  Returns 0, or k + 1 when the k-th pivot is not positive. */
int rk_chol(int n, double *A);
/* solve R^T R x = b in place (R from rk_chol), for one vector */
void rk_chol_solve(int n, const double *R, double *b);

/* e1^T log(T) e1 for the k x k Lanczos matrix T of CG coefficients
   (alpha[0..k-1], beta[0..k-2]); -1 status in *ok when QL failed */
double rk_slq_quadrature(int k, const double *alpha, const double *beta,
                         int *ok);

#endif /* RK_SOLVE_H */
