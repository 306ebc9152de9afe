# test-grad-lazytensor.R -- grad() on LazyTensor reductions (API.md section
# 2): the same numbers as keops_grad() on the equivalent formula, and the
# analytic gradient of a Gaussian kernel sum.

test_that("grad(): Gaussian kernel sum w.r.t. i, j and parameter variables", {
  local_rk_cpu(prec = 64)
  set.seed(21)
  M <- 8L
  N <- 6L
  X <- matrix(stats::rnorm(M * 2), M, 2)
  Y <- matrix(stats::rnorm(N * 2), N, 2)
  B <- stats::runif(N)
  s <- 0.7
  x_i <- Vi(X)
  y_j <- Vj(Y)
  b_j <- Vj(B)
  s_p <- Pm(c(s, 0))
  f <- exp(-sqdist(x_i, y_j) / elem(s_p, 0)) * b_j
  eta <- matrix(stats::rnorm(M), M, 1)
  D2 <- outer(rowSums(X^2), rowSums(Y^2), "+") - 2 * X %*% t(Y)
  K <- exp(-D2 / s)
  gx <- grad(f, eta, "Sum", var = x_i, index = "j")
  expect_lte(rel_err(gx, -2 / s * ((K %*% B)[, 1] * X - K %*% (B * Y)) * eta[, 1]),
             1e-12)
  gy <- grad(f, eta, "Sum", var = y_j, index = "j")
  KE <- K * eta[, 1]
  expect_lte(rel_err(gy, 2 / s * B * (t(KE) %*% X - colSums(KE) * Y)), 1e-12)
  gs <- grad(f, eta, "Sum", var = s_p, index = "j")
  expect_identical(dim(gs), c(1L, 2L))
  expect_lte(rel_err(gs, c(sum(eta[, 1] * ((K * D2 / s^2) %*% B)), 0)), 1e-12)
  gb <- grad(f, eta, "Sum", var = b_j, index = "j")
  expect_lte(rel_err(gb, t(K) %*% eta), 1e-12)
  # the gradient input as a LazyTensor
  gx2 <- grad(f, Vi(eta), "sum_reduction", var = x_i, index = "j")
  expect_equal(gx2, gx, tolerance = 1e-14)
  # reduction over i: one output row per j, gradient input with N rows
  etaj <- matrix(stats::rnorm(N), N, 1)
  gxi <- grad(f, etaj, "Sum", var = x_i, index = "i")
  ref <- -2 / s * (((K * rep(B * etaj[, 1], each = M)) %*% rep(1, N))[, 1] * X -
                     (K * rep(B * etaj[, 1], each = M)) %*% Y)
  expect_lte(rel_err(gxi, ref), 1e-12)
})

test_that("grad(): LogSumExp, and a variable absent from the formula", {
  local_rk_cpu(prec = 64)
  set.seed(22)
  M <- 5L
  N <- 7L
  X <- matrix(stats::rnorm(M * 3), M, 3)
  Y <- matrix(stats::rnorm(N * 3), N, 3)
  x_i <- Vi(X)
  y_j <- Vj(Y)
  z_j <- Vj(matrix(1, N, 2))
  f <- -sqdist(x_i, y_j)
  eta <- matrix(stats::rnorm(M), M, 1)
  g <- grad(f, eta, "LogSumExp", var = x_i, index = "j")
  D2 <- outer(rowSums(X^2), rowSums(Y^2), "+") - 2 * X %*% t(Y)
  P <- exp(-D2)
  P <- P / rowSums(P)
  expect_lte(rel_err(g, -2 * (X - P %*% Y) * eta[, 1]), 1e-12)
  # a variable absent from f: a classed error (issue 14.8), formerly zeros
  expect_error(grad(f, eta, "Sum", var = z_j, index = "j"), class = "rkeops_var_error")
})

test_that("grad(): errors are classed", {
  x_i <- Vi(matrix(1:6, 3, 2))
  y_j <- Vj(matrix(1:8, 4, 2))
  f <- sqdist(x_i, y_j)
  eta <- matrix(1, 3, 1)
  expect_error(grad(f, eta, "Min", var = x_i, index = "j"),
               class = "rkeops_grad_error")
  expect_error(grad(f, eta, "ArgKMin", var = x_i, index = "j"),
               class = "rkeops_error")
  expect_error(grad(f, eta, "Sum", var = x_i + 1, index = "j"),
               class = "rkeops_input_error")
  expect_error(grad(f, eta, "Sum", var = x_i, index = "k"),
               class = "rkeops_error")
  expect_error(grad(f, matrix(1, 2, 1), "Sum", var = x_i, index = "j"),
               class = "rkeops_dim_error")
})

test_that("grad(): formula_only returns the gradient formula", {
  local_rk_options()
  x_i <- Vi(matrix(stats::rnorm(6), 3, 2))
  y_j <- Vj(matrix(stats::rnorm(8), 4, 2))
  set_rkeops_options(list(formula_only = TRUE))
  fm <- grad(exp(-sqdist(x_i, y_j)), matrix(1, 3, 1), "Sum", var = x_i,
             index = "j")
  expect_type(fm, "character")
  expect_match(fm, "^Sum_Reduction\\(Grad\\(")
})
