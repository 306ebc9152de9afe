# test-pic.R -- the "pic" preconditioner of solve() and kernel_logdet()
# (pivoted Cholesky plus exact diagonal blocks of neighbouring points):
# solutions against base::solve() on dense kernel matrices, iteration counts
# against "pivchol" of the same rank, the limiting cases (one block: P is
# alpha I + K itself), the rows' order of every result (the points are
# permuted inside), log-determinants against determinant().  The kernels
# (sv_kernels) and rel_fro() are in helper-solve.R.

pic_points <- function(n, d = 2, seed = 1) {
  set.seed(seed)
  X <- matrix(runif(n * d), n, d)
  X[, 1] <- 3 * X[, 1] # an elongated domain: the bisection cuts x first
  X
}

test_that("pic: solve() matches base::solve() in float64 (kernels, ranks, blocks, RHS)", {
  local_rk_cpu(prec = 64)
  cases <- list( # kernel, n, lengthscale, alpha, ncol(b), rank, block
    list("exponential", 700, 0.3, 1e-2, 1, NULL, NULL),
    list("exponential", 500, 0.2, 1e-4, 2, 0, 64),
    list("matern32", 600, 0.25, 1e-3, 3, 32, 100),
    list("gaussian", 400, 0.2, 1e-3, 1, 16, 37),
    list("matern32", 300, 0.1, 10, 2, NULL, 300)
  )
  for (cs in cases) {
    k <- sv_kernels[[cs[[1]]]]
    n <- cs[[2]]
    X <- pic_points(n)
    b <- matrix(rnorm(n * cs[[5]]), n, cs[[5]])
    A <- k$dense(X, cs[[3]]) + diag(cs[[4]], n)
    ref <- solve(A, b)
    x <- solve(k$lt(X, cs[[3]]), b, alpha = cs[[4]], tol = 1e-11,
               precond = "pic", rank = cs[[6]], block = cs[[7]])
    info <- paste(cs[[1]], n, cs[[4]], format(cs[[6]]), format(cs[[7]]))
    expect_equal(dim(x), dim(b))
    expect_lt(rel_fro(x, ref), 1e-8, label = info)
    expect_true(all(attr(x, "residual") <= 1e-11), label = info)
    pr <- attr(x, "precond")
    expect_identical(pr$kind, "pic")
    blk <- if (is.null(cs[[7]])) 256 else cs[[7]]
    # an automatic rank that meets pivchol's trace rule (trace left at most
    # 1000 alpha; the diagonal is 1) drops the blocks
    if (is.null(cs[[6]]) && pr$trace_left <= 1000 * max(cs[[4]], 1e-9 * n)) {
      expect_equal(pr$blocks, 0L, label = info)
    } else {
      # recursive halving: blocks of more than blk / 2 and at most blk points
      expect_gte(pr$blocks, ceiling(n / blk), label = info)
      expect_lte(pr$blocks, max(1, 2 * ceiling(n / blk)), label = info)
    }
    if (!is.null(cs[[6]])) expect_equal(pr$rank, min(cs[[6]], n), label = info)
  }
})

test_that("pic: alpha = 0 (kriging without a nugget), nearly full rank", {
  local_rk_cpu(prec = 64)
  set.seed(1)
  n <- 500
  X <- matrix(runif(2 * n), n)
  A <- exp(-as.matrix(dist(X)) / 0.3)
  b <- rnorm(n)
  ref <- solve(A, b)
  # rank 256 of 500: the blocks' residual K - L L^T is tiny; with the
  # rounded factor it was indefinite (a classed error before the residual
  # came from the float64 factor)
  x <- solve(exp(-norm2(Vi(X) - Vj(X)) / 0.3), b, alpha = 0, tol = 1e-10,
             precond = "pic", rank = 256)
  expect_equal(attr(x, "precond")$rank, 256L)
  expect_gt(attr(x, "precond")$blocks, 0L)
  expect_lt(max(abs(x - ref)) / max(abs(ref)), 1e-8)
})

test_that("pic: a smooth kernel whose automatic rank meets the trace rule gets pivchol's P", {
  local_rk_cpu(prec = 64)
  set.seed(2)
  n <- 800
  X <- matrix(runif(3 * n), n)
  K <- exp(-sqdist(Vi(X), Vj(X)) / (2 * 0.3^2))
  b <- runif(n)
  a <- solve(K, b, alpha = 1e-3, tol = 1e-8, precond = "pic")
  p <- solve(K, b, alpha = 1e-3, tol = 1e-8, precond = "pivchol")
  expect_equal(attr(a, "precond")$blocks, 0L)
  # pivchol's own rank may stop a few columns earlier (its "not low-rank"
  # stop); the iterations are those of the same preconditioner
  expect_lte(abs(attr(a, "precond")$rank - attr(p, "precond")$rank), 8)
  expect_lte(abs(attr(a, "iterations") - attr(p, "iterations")),
             max(2, 0.2 * attr(p, "iterations")))
  A <- exp(-as.matrix(dist(X))^2 / (2 * 0.3^2)) + diag(1e-3, n)
  expect_lt(max(abs(a - solve(A, b))) / max(abs(solve(A, b))), 1e-6)
  # with a rank given, the blocks are always there
  g <- solve(K, b, alpha = 1e-3, tol = 1e-8, precond = "pic", rank = 64)
  expect_gt(attr(g, "precond")$blocks, 0L)
})

test_that("pic: float32 products reach the float64 tolerance", {
  local_rk_cpu(prec = 32)
  X <- pic_points(600)
  b <- rnorm(600)
  A <- exp(-as.matrix(dist(X)) / 0.3) + diag(1e-2, 600)
  ref <- solve(A, b)
  x <- solve(exp(-norm2(Vi(X) - Vj(X)) / 0.3), b, alpha = 1e-2, tol = 1e-8,
             precond = "pic", rank = 32, block = 128)
  expect_lt(max(abs(x - ref)) / max(abs(ref)), 1e-5)
  expect_lte(attr(x, "residual"), 1e-8)
})

test_that("pic: one block with rank 0 is alpha I + K itself", {
  local_rk_cpu(prec = 64)
  n <- 300
  X <- pic_points(n)
  A <- exp(-as.matrix(dist(X)) / 0.2) + diag(1e-3, n)
  b <- rnorm(n)
  K <- exp(-norm2(Vi(X) - Vj(X)) / 0.2)
  x <- solve(K, b, alpha = 1e-3, tol = 1e-10, precond = "pic", rank = 0,
             block = n)
  expect_equal(attr(x, "precond")$blocks, 1L)
  # P = alpha I + K up to the float32 rounding of its factor: CG is done
  # in a few iterations (plain CG takes hundreds here)
  expect_lte(attr(x, "iterations"), 4)
  expect_lt(max(abs(x - solve(A, b))) / max(abs(solve(A, b))), 1e-8)
  plain <- solve(K, b, alpha = 1e-3, tol = 1e-10, precond = "none")
  expect_gt(attr(plain, "iterations"), 50)
  # its log-determinant is that of alpha I + K
  ld <- kernel_logdet(K, alpha = 1e-3, precond = "pic", rank = 0, block = n)
  ref <- as.numeric(determinant(A)$modulus)
  expect_lt(abs(attr(ld, "precond_logdet") - ref), 1e-4 * abs(ref))
  expect_lt(abs(ld - ref), 1e-3 * abs(ref))
})

test_that("pic: far fewer iterations than pivchol of the same rank on a rough kernel", {
  local_rk_cpu(prec = 64)
  n <- 1500
  X <- pic_points(n)
  K <- exp(-norm2(Vi(X) - Vj(X)) / 0.3)
  b <- rnorm(n)
  it <- function(pc, r) attr(solve(K, b, alpha = 1e-2, tol = 1e-8,
                                   precond = pc, rank = r), "iterations")
  ip <- it("pivchol", 64)
  ic <- it("pic", 64)
  expect_lt(ic, 0.6 * ip) # measured: 212 and 73 at n = 2000 (rng 0.3)
  expect_lt(it("pic", 0), it("none", NULL)) # block Jacobi alone helps too
})

test_that("pic: results come back in the caller's row order (x0, logdet b, probes)", {
  local_rk_cpu(prec = 64)
  n <- 400
  X <- pic_points(n, d = 3, seed = 2)
  A <- exp(-as.matrix(dist(X)) / 0.25) + diag(1e-2, n)
  K <- exp(-norm2(Vi(X) - Vj(X)) / 0.25)
  b <- cbind(rnorm(n), seq_len(n))
  ref <- solve(A, b)
  x <- solve(K, b, alpha = 1e-2, tol = 1e-10, precond = "pic", block = 50)
  expect_lt(rel_fro(x, ref), 1e-8)
  # warm start from the solution: nothing left to do
  w <- solve(K, b, alpha = 1e-2, tol = 1e-9, precond = "pic", block = 50,
             x0 = ref)
  expect_lte(max(attr(w, "iterations")), 1)
  # kernel_logdet: the solves of b and of the probes, in the caller's order
  set.seed(3)
  ld <- kernel_logdet(K, alpha = 1e-2, probes = 20, tol = 1e-10,
                      precond = "pic", rank = 16, block = 50, b = b,
                      return_probes = TRUE)
  expect_lt(rel_fro(attr(ld, "solve"), ref), 1e-8)
  pr <- attr(ld, "probes")
  expect_lt(rel_fro(A %*% pr$solves, pr$z), 1e-8)
  # the probes z = S w have E[z z^T] = P, which approximates A: a probe is
  # not white noise in the caller's order (a wrong order would leave P's
  # correlations between unrelated points)
  ldref <- as.numeric(determinant(A)$modulus)
  expect_lt(abs(ld - ldref), 3 * attr(ld, "se") + 1e-6 * abs(ldref))
})

test_that("pic: several i-variables and a weighted kernel", {
  local_rk_cpu(prec = 64)
  n <- 350
  X <- pic_points(n)
  s <- runif(n, 0.5, 2) # a point's amplitude: K_ij = s_i s_j k(x_i, x_j)
  K <- Vi(matrix(s)) * Vj(matrix(s)) * exp(-norm2(Vi(X) - Vj(X)) / 0.3)
  A <- outer(s, s) * exp(-as.matrix(dist(X)) / 0.3) + diag(0.05, n)
  b <- rnorm(n)
  x <- solve(K, b, alpha = 0.05, tol = 1e-11, precond = "pic", rank = 8,
             block = 40)
  expect_lt(max(abs(x - solve(A, b))) / max(abs(solve(A, b))), 1e-8)
})

test_that("pic: bad block sizes are classed errors", {
  local_rk_cpu(prec = 64)
  X <- pic_points(50)
  K <- exp(-norm2(Vi(X) - Vj(X)) / 0.3)
  for (bad in list(0, 1.5, "a", c(2, 3), NA))
    expect_error(solve(K, rnorm(50), alpha = 1, precond = "pic", block = bad),
                 "`block` must be a whole number of at least 1",
                 class = "rkeops_value_error")
  expect_error(kernel_logdet(K, alpha = 1, precond = "pic", block = -1),
               "`block` must be", class = "rkeops_value_error")
  # block does nothing with another preconditioner: refused, not ignored
  expect_error(solve(K, rnorm(50), alpha = 1, precond = "pivchol", block = 64),
               "block size of precond = \"pic\".*\"pivchol\"",
               class = "rkeops_value_error")
  expect_error(kernel_logdet(K, alpha = 1, precond = "jacobi", block = 64),
               "does nothing", class = "rkeops_value_error")
  # any block size from 1 to more than n works
  for (blk in c(1, 7, 200)) {
    x <- solve(K, rnorm(50), alpha = 1, tol = 1e-9, precond = "pic",
               rank = 4, block = blk)
    expect_lte(attr(x, "residual"), 1e-9)
  }
})
