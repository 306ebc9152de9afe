/*
 * solve-eig.c -- small dense linear algebra for the solver: Cholesky of
 * the preconditioner's rank x rank core, symmetric eigen decompositions
 * (Householder reduction to tridiagonal form, then implicit QL with
 * Wilkinson shifts) for the preconditioner's square root, and the Gauss
 * quadrature e1^T log(T) e1 of stochastic Lanczos quadrature.
 *
 * Sizes are the preconditioner's rank (at most a few thousand) or a CG
 * iteration count, so plain O(n^3) loops are enough; no BLAS/LAPACK.
 */
#include "solve.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int rk_chol(int n, double *A) {
  for (int j = 0; j < n; j++) {
    double *cj = A + (size_t)j * n;
    for (int i = 0; i <= j; i++) {
      const double *ci = A + (size_t)i * n;
      double s = cj[i];
      for (int k = 0; k < i; k++)
        s -= ci[k] * cj[k];
      if (i < j) {
        cj[i] = s / ci[i];
      } else {
        if (!(s > 0))
          return j + 1;
        cj[j] = sqrt(s);
      }
    }
    for (int i = j + 1; i < n; i++) /* keep the lower part clean */
      cj[i] = 0;
  }
  return 0;
}

void rk_chol_solve(int n, const double *R, double *b) {
  /* R^T y = b: R^T is lower triangular, column j of R is row j of R^T */
  for (int j = 0; j < n; j++) {
    const double *cj = R + (size_t)j * n;
    double s = b[j];
    for (int k = 0; k < j; k++)
      s -= cj[k] * b[k];
    b[j] = s / cj[j];
  }
  /* R x = y */
  for (int j = n - 1; j >= 0; j--) {
    b[j] /= R[(size_t)j * n + j];
    const double *cj = R + (size_t)j * n;
    for (int k = 0; k < j; k++)
      b[k] -= cj[k] * b[j];
  }
}

/* One symmetric tridiagonal QL sweep set.  off has n entries here, the
   last one 0 (the public wrapper copies). */
static int ql(int n, double *d, double *off, double *Z, int nz) {
  for (int l = 0; l < n; l++) {
    int iter = 0;
    for (;;) {
      int m = l;
      for (; m < n - 1; m++) {
        double dd = fabs(d[m]) + fabs(d[m + 1]);
        if (fabs(off[m]) <= DBL_EPSILON * dd)
          break;
      }
      if (m == l)
        break;
      if (++iter > 60)
        return -1;
      /* Wilkinson shift from the leading 2 x 2 block */
      double g = (d[l + 1] - d[l]) / (2.0 * off[l]);
      double r = hypot(g, 1.0);
      g = d[m] - d[l] + off[l] / (g + (g >= 0 ? r : -r));
      double s = 1.0, c = 1.0, p = 0.0;
      int i = m - 1, deflated = 0;
      for (; i >= l; i--) {
        double f = s * off[i], b = c * off[i];
        r = hypot(f, g);
        off[i + 1] = r;
        if (r == 0.0) { /* underflow: split the matrix here */
          d[i + 1] -= p;
          off[m] = 0.0;
          deflated = 1;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1] - p;
        r = (d[i] - g) * s + 2.0 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
        for (int k = 0; k < nz; k++) { /* rotate columns i, i + 1 of Z */
          double *zi = Z + (size_t)i * nz + k, *zj = zi + nz;
          double t = *zj;
          *zj = s * *zi + c * t;
          *zi = c * *zi - s * t;
        }
      }
      if (deflated)
        continue;
      d[l] -= p;
      off[l] = g;
      off[m] = 0.0;
    }
  }
  return 0;
}

int rk_eig_tridiag(int n, double *d, double *off, double *Z, int nz) {
  if (n <= 0)
    return 0;
  double *o = malloc((size_t)n * sizeof *o);
  if (o == NULL)
    return -1;
  for (int i = 0; i < n - 1; i++)
    o[i] = off[i];
  o[n - 1] = 0.0;
  int rc = ql(n, d, o, Z, nz);
  free(o);
  return rc;
}

/* Householder reduction of the symmetric A (n x n, col-major, full
   storage) to tridiagonal form T = Q^T A Q; d, off receive T, V = Q. */
static int tridiagonalize(int n, double *A, double *d, double *off, double *V) {
  double *v = malloc((size_t)(2 * n + 1) * sizeof *v);
  if (v == NULL)
    return -1;
  double *w = v + n;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++)
      V[(size_t)j * n + i] = i == j;
  for (int k = 0; k + 2 < n; k++) {
    int m = n - k - 1; /* the trailing block is rows / columns k+1 .. n-1 */
    double *x = A + (size_t)k * n + k + 1;
    double nx = 0;
    for (int i = 0; i < m; i++)
      nx += x[i] * x[i];
    nx = sqrt(nx);
    if (nx == 0.0)
      continue;
    double a = x[0] > 0 ? -nx : nx;
    for (int i = 0; i < m; i++)
      v[i] = x[i];
    v[0] -= a;
    double vv = 0;
    for (int i = 0; i < m; i++)
      vv += v[i] * v[i];
    if (vv == 0.0)
      continue;
    double tau = 2.0 / vv;
    /* column / row k */
    x[0] = a;
    A[(size_t)(k + 1) * n + k] = a;
    for (int i = 1; i < m; i++) {
      x[i] = 0;
      A[(size_t)(k + 1 + i) * n + k] = 0;
    }
    /* trailing block B -= v w^T + w v^T with w = p - (tau/2)(v'p) v */
    double vp = 0;
    for (int i = 0; i < m; i++) {
      double s = 0;
      for (int j = 0; j < m; j++)
        s += A[(size_t)(k + 1 + j) * n + k + 1 + i] * v[j];
      w[i] = tau * s;
      vp += v[i] * w[i];
    }
    double K = 0.5 * tau * vp;
    for (int i = 0; i < m; i++)
      w[i] -= K * v[i];
    for (int j = 0; j < m; j++) {
      double *cj = A + (size_t)(k + 1 + j) * n + k + 1;
      for (int i = 0; i < m; i++)
        cj[i] -= v[i] * w[j] + w[i] * v[j];
    }
    /* V[:, k+1..] = V[:, k+1..] (I - tau v v^T) */
    for (int i = 0; i < n; i++) {
      double s = 0;
      for (int j = 0; j < m; j++)
        s += V[(size_t)(k + 1 + j) * n + i] * v[j];
      s *= tau;
      for (int j = 0; j < m; j++)
        V[(size_t)(k + 1 + j) * n + i] -= s * v[j];
    }
  }
  for (int i = 0; i < n; i++) {
    d[i] = A[(size_t)i * n + i];
    if (i + 1 < n)
      off[i] = A[(size_t)i * n + i + 1];
  }
  free(v);
  return 0;
}

int rk_eig_sym(int n, double *A, double *w, double *V) {
  if (n <= 0)
    return 0;
  double *off = malloc((size_t)n * sizeof *off);
  if (off == NULL)
    return -1;
  int rc = tridiagonalize(n, A, w, off, V);
  if (rc == 0) {
    off[n - 1] = 0.0;
    rc = ql(n, w, off, V, n);
  }
  free(off);
  return rc;
}

double rk_slq_quadrature(int k, const double *alpha, const double *beta,
                         int *ok) {
  *ok = 1;
  if (k <= 0) {
    *ok = 0;
    return 0;
  }
  double *d = malloc((size_t)(3 * k) * sizeof *d);
  if (d == NULL) {
    *ok = 0;
    return 0;
  }
  double *off = d + k, *z = off + k;
  for (int i = 0; i < k; i++) {
    d[i] = 1.0 / alpha[i] + (i > 0 ? beta[i - 1] / alpha[i - 1] : 0.0);
    off[i] = i + 1 < k ? sqrt(beta[i]) / alpha[i] : 0.0;
    z[i] = i == 0;
  }
  double q = 0;
  if (ql(k, d, off, z, 1) != 0) {
    *ok = 0;
  } else {
    for (int i = 0; i < k; i++) {
      if (!(d[i] > 0)) {
        *ok = 0;
        break;
      }
      q += z[i] * z[i] * log(d[i]);
    }
  }
  free(d);
  return q;
}
