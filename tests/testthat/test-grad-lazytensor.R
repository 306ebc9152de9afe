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

test_that("grad() of a Sum in several variables: one joint pass, same values", {
  local_rk_cpu(prec = 64)
  set.seed(12)
  n <- 60; m <- 45
  X <- matrix(runif(3 * n), n, 3); Y <- matrix(runif(3 * m), m, 3)
  B <- matrix(runif(2 * m), m, 2); w <- matrix(rnorm(2 * n), n, 2)
  ell <- Pm(0.4); s2 <- Pm(1.7)
  y_j <- Vj(Y); b_j <- Vj(B)
  K <- s2 * exp(-sqdist(Vi(X), y_j) / (2 * ell^2))
  f <- K * b_j
  # count the joint passes (lt_grad_joint() returns NULL when it declines)
  cnt <- new.env()
  cnt$n <- 0L
  suppressMessages(trace("lt_grad_joint", where = asNamespace("rkeops"),
    print = FALSE, exit = bquote(if (!is.null(returnValue()))
      assign("n", get("n", envir = .(cnt)) + 1L, envir = .(cnt)))))
  on.exit(suppressMessages(untrace("lt_grad_joint", where = asNamespace("rkeops"))),
          add = TRUE)
  # parameters: one pass; each equal to its own gradient and to dense R
  g <- grad(f, w, "Sum", var = list(ell = ell, s2 = s2), index = "j")
  expect_identical(cnt$n, 1L)
  g1 <- grad(f, w, "Sum", var = ell, index = "j")
  g2 <- grad(f, w, "Sum", var = s2, index = "j")
  expect_identical(g$ell, g1)
  expect_identical(g$s2, g2)
  D2 <- outer(rowSums(X^2), rowSums(Y^2), "+") - 2 * X %*% t(Y)
  Kd <- 1.7 * exp(-D2 / (2 * 0.4^2))
  wKb <- sum(w * (Kd %*% B))
  expect_equal(as.numeric(g$s2), wKb / 1.7, tolerance = 1e-12)
  dell <- sum(w * ((Kd * D2 / 0.4^3) %*% B))
  expect_equal(as.numeric(g$ell), dell, tolerance = 1e-12)
  # two j-variables (both reduce over i): one pass, per-point results
  h <- grad(f, w, "Sum", var = list(y_j, b_j), index = "j")
  expect_identical(cnt$n, 2L)
  expect_identical(h[[1]], grad(f, w, "Sum", var = y_j, index = "j"))
  expect_identical(h[[2]], grad(f, w, "Sum", var = b_j, index = "j"))
  # d/db_j sum_i <w_i, sum_j K_ij b_j> = sum_i K_ij w_i
  expect_equal(h[[2]], crossprod(Kd, w), tolerance = 1e-12)
  # mixed (an i-variable and a parameter) and LogSumExp: separate passes
  x_i <- Vi(X)
  k2 <- exp(-sqdist(x_i, y_j) / (2 * ell^2)) * b_j
  mix <- grad(k2, w, "Sum", var = list(x_i, ell), index = "j")
  expect_identical(cnt$n, 2L)
  expect_identical(mix[[2]], grad(k2, w, "Sum", var = ell, index = "j"))
  lse <- grad(-sqdist(x_i, y_j) / ell, w[, 1], "LogSumExp",
              var = list(x_i, ell), index = "j")
  expect_identical(cnt$n, 2L)
  expect_identical(lse[[2]], grad(-sqdist(x_i, y_j) / ell, w[, 1],
                                  "LogSumExp", var = ell, index = "j"))
})
