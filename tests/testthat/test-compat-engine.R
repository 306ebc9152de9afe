# test-compat-engine.R -- what KeOps users expect from the engine (issue 14
# items 2, 3, 6, 7, 8; issue 17 item 8, NaN semantics), against dense R and
# finite differences:
#   * an index that no variable carries has size 1 (every reduction family,
#     formulas and LazyTensors);
#   * K larger than the number of points: values padded with Inf, indices
#     with NA;
#   * comparisons (Equal ... GreaterOrEqual, and == != < <= > >= on
#     LazyTensors), an i != j mask;
#   * SqDist and WeightedSqDist with a dimension-1 operand;
#   * NaN: Min/Max propagate, the selecting reductions rank NaN last,
#     SumSoftMaxWeight of all -Inf is NaN;
#   * gradients: the outer Grad(Sum_Reduction(f, a), x, eta) syntax,
#     second-order gradients of LogSumExp, LogSumExpWeight and
#     SumSoftMaxWeight, grad() for every differentiable reduction, several
#     variables, and a classed error for a variable not in the formula.

# ---- helpers -----------------------------------------------------------------

# the reference row of a reduction on V (nred x d), K-min reductions padded
# with Inf values and NA indices when K > nred (layout of red.def)
ce_ref_row <- function(red, V, W = NULL, K = NULL) {
  n <- nrow(V)
  d <- ncol(V)
  if (is.null(K) || K <= n) return(ref_reduce_row(red, V, W, K))
  pad <- function(r, fill) c(r, rep(fill, (K - n) * d))
  switch(red,
    KMin = pad(ref_reduce_row("KMin", V, W, n), Inf),
    ArgKMin = pad(ref_reduce_row("ArgKMin", V, W, n), NA),
    KMin_ArgKMin = c(pad(ref_reduce_row("KMin", V, W, n), Inf),
                     pad(ref_reduce_row("ArgKMin", V, W, n), NA)))
}

ce_fd <- function(fn, x, h = 1e-5) {
  r <- x
  for (k in seq_along(x)) {
    xp <- x
    xm <- x
    xp[k] <- xp[k] + h
    xm[k] <- xm[k] - h
    r[k] <- (fn(xp) - fn(xm)) / (2 * h)
  }
  r
}

# ---- 14.2: an index that no variable carries has size 1 -------------------------

test_that("formulas: a reduction over an index no variable carries (every family)", {
  local_rk_cpu()
  set.seed(21)
  M <- 5L
  for (prec in c(64, 32)) {
    local_rk_precision(prec)
    tol <- tol_for(prec)
    X <- prec_data(matrix(stats::runif(M * 2, -2, 2), M, 2), prec)
    X1 <- prec_data(matrix(stats::runif(M, -2, 2), M, 1), prec)
    p <- prec_data(c(0.5, -1.25), prec)
    p1 <- prec_data(0.75, prec)
    Wi <- prec_data(matrix(stats::runif(M * 2, 0.5, 1.5), M, 2), prec)
    wp <- prec_data(c(0.5, 2), prec)
    for (red in reds_expected) {
      lse <- red %in% c("LogSumExp", "LogSumExpWeight", "SumSoftMaxWeight")
      weighted <- red %in% c("LogSumExpWeight", "SumSoftMaxWeight")
      K <- if (grepl("KMin", red)) 2L else NULL
      f <- if (lse) "x * p" else "x + p"
      V <- if (lse) X1 * p1 else sweep(X, 2, p, "+")
      xd <- if (lse) "x=Vi(1)" else "x=Vi(2)"
      pd <- if (lse) "p=Pm(1)" else "p=Pm(2)"
      xin <- if (lse) X1 else X
      pin <- if (lse) p1 else p
      # axis 0: over i, one output row (the j index has size 1)
      args <- c(xd, pd, if (weighted) "w=Vi(2)")
      op <- keops_kernel(red_formula(red, f, 0, K, if (weighted) "w"), args)
      got <- op(c(list(xin, pin), if (weighted) list(Wi)))
      want <- matrix(ce_ref_row(red, V, if (weighted) Wi, K), 1L)
      expect_close(got, want, tol, sprintf("%s over i, float%d", red, prec))
      # axis 1: over j, which has size 1: each row reduces one point
      # (K = 2 > 1: the K-min reductions are padded)
      args <- c(xd, pd, if (weighted) "w=Pm(2)")
      op <- keops_kernel(red_formula(red, f, 1, K, if (weighted) "w"), args)
      got <- op(c(list(xin, pin), if (weighted) list(wp)))
      want <- matrix(vapply(seq_len(M), function(i) {
        ce_ref_row(red, V[i, , drop = FALSE], if (weighted) matrix(wp, 1L), K)
      }, numeric(ncol(got))), M, byrow = TRUE)
      expect_close(got, want, tol, sprintf("%s over j, float%d", red, prec))
    }
  }
  # a formula with parameters only: one row, one point
  op <- keops_kernel("Sum_Reduction(p * 2, 1)", "p=Pm(3)")
  expect_identical(op(list(c(1, 2, 3))), matrix(c(2, 4, 6), 1L))
})

test_that("LazyTensor reductions over an index no variable carries", {
  local_rk_cpu()
  set.seed(22)
  X <- matrix(stats::rnorm(12), 4, 3)
  x_i <- Vi(X)
  v <- c(1, 5, 2)
  expect_equal(sum(x_i, index = "i"), matrix(colSums(X), 1L), tolerance = 1e-14)
  expect_equal(sum(x_i, index = "j"), X, tolerance = 1e-14)
  expect_equal(min(Pm(v), "j"), matrix(v, 1L))
  expect_equal(max(x_i, "i"), matrix(apply(X, 2, max), 1L))
  expect_equal(min(x_i * 2, "i"), matrix(apply(2 * X, 2, min), 1L))
  expect_equal(argmin(x_i, "i"), matrix(apply(X, 2, which.min), 1L),
               ignore_attr = TRUE)
  expect_equal(argmax(x_i, "j"), matrix(1, 4, 3), ignore_attr = TRUE)
  x1 <- X[, 1]
  w <- abs(X[, 2]) + 0.5
  expect_equal(logsumexp(Vi(x1), "i"), matrix(log(sum(exp(x1))), 1L),
               tolerance = 1e-13)
  expect_equal(logsumexp(Vi(x1), "j"), matrix(x1), tolerance = 1e-13)
  expect_equal(sumsoftmaxweight(Vi(x1), "i", weight = Vi(w)),
               matrix(sum(exp(x1) * w) / sum(exp(x1)), 1L), tolerance = 1e-13)
  expect_equal(Kmin(x_i, 2, "i"),
               matrix(t(apply(X, 2, function(c) sort(c)[1:2])), 1L),
               tolerance = 1e-14)
  # the i-index is missing: one row per j of size ... 1 row for "j" out
  y_j <- Vj(X)
  expect_equal(sum(y_j, index = "j"), matrix(colSums(X), 1L), tolerance = 1e-14)
  expect_equal(sum(exp(-y_j) * 3, index = "i"), 3 * exp(-X), tolerance = 1e-14)
  # the formula: Sum_Reduction(x + p, 0) with x a Vi and p a Pm
  op <- keops_kernel("Sum_Reduction(x + p, 0)", c("x=Vi(3)", "p=Pm(3)"))
  expect_equal(op(list(X, v)), matrix(colSums(X) + nrow(X) * v, 1L),
               tolerance = 1e-14)
})

# ---- 14.3: K larger than the number of points -------------------------------------

test_that("KMin, ArgKMin, KMin_ArgKMin with K > N pad with Inf and NA", {
  local_rk_cpu()
  set.seed(23)
  M <- 4L
  N <- 3L
  X <- matrix(stats::runif(M * 2), M, 2)
  Y <- matrix(stats::runif(N * 2), N, 2)
  args <- c("x=Vi(2)", "y=Vj(2)")
  for (prec in c(64, 32)) {
    local_rk_precision(prec)
    Xp <- prec_data(X, prec)
    Yp <- prec_data(Y, prec)
    for (red in c("KMin", "ArgKMin", "KMin_ArgKMin")) {
      for (axis in 0:1) {
        K <- 5L
        op <- keops_kernel(red_formula(red, "x - y", axis, K), args)
        got <- op(list(Xp, Yp))
        nout <- if (axis == 1) M else N
        want <- t(vapply(seq_len(nout), function(r) {
          V <- if (axis == 1) sweep(-Yp, 2, Xp[r, ], "+") else sweep(Xp, 2, Yp[r, ])
          ce_ref_row(red, V, NULL, K)
        }, numeric(ncol(got))))
        expect_close(got, want, tol_for(prec),
                     sprintf("%s K = %d axis %d float%d", red, K, axis, prec))
        idx <- red_index_cols(red, 2, NULL, K)
        if (length(idx)) { # NA, not NaN
          pad <- is.na(want[, idx])
          expect_true(any(pad))
          expect_true(all(is.na(got[, idx][pad]) & !is.nan(got[, idx][pad])))
        }
        if (red != "ArgKMin") expect_true(any(is.infinite(got)))
      }
    }
  }
  # K is bounded (local memory of the kernels): a classed error
  expect_error(keops_kernel("KMin_Reduction(x - y, 8193, 1)", args),
               class = "rkeops_value_error")
  expect_error(keops_kernel("ArgKMin_Reduction(x - y, 2000000000, 0)", args),
               class = "rkeops_value_error")
  expect_error(argKmin(Vi(X) - Vj(Y), 1e10, "j"), class = "rkeops_input_error")
  expect_error(Kmin(Vi(X) - Vj(Y), 8193, "i"), class = "rkeops_value_error")
  # LazyTensors: no error, the same padding
  local_rk_precision(64)
  x_i <- Vi(X)
  y_j <- Vj(Y)
  D <- sqdist(x_i, y_j)
  D2 <- outer(rowSums(X^2), rowSums(Y^2), "+") - 2 * X %*% t(Y)
  km <- Kmin(D, 5, "j")
  expect_equal(km[, 1:3], t(apply(D2, 1, sort)), tolerance = 1e-12)
  expect_identical(km[, 4:5], matrix(Inf, M, 2))
  ak <- argKmin(D, 5, "j")
  expect_equal(ak[, 1:3], t(apply(D2, 1, order)), ignore_attr = TRUE)
  expect_identical(ak[, 4:5] + 0, matrix(NA_real_, M, 2))
  both <- Kmin_argKmin(D, 6, "i")
  expect_equal(both$values[, 1:4], t(apply(D2, 2, sort)), tolerance = 1e-12)
  expect_identical(both$values[, 5:6], matrix(Inf, N, 2))
  expect_equal(both$indices[, 1:4], t(apply(D2, 2, order)), ignore_attr = TRUE)
  expect_true(all(is.na(both$indices[, 5:6])))
})

test_that("the largest K runs (CPU: the states are on the threads' stacks)", {
  local_rk_cpu_only()
  X <- matrix(stats::runif(8), 4, 2)
  Y <- matrix(stats::runif(6), 3, 2)
  r <- keops_kernel("KMin_ArgKMin_Reduction(x - y, 8192, 1)",
                    c("x=Vi(2)", "y=Vj(2)"))(list(X, Y))
  expect_identical(dim(r), c(4L, 32768L))
  expect_equal(r[, 1:6], t(vapply(1:4, function(i) {
    as.vector(t(apply(sweep(-Y, 2, X[i, ], "+"), 2, sort)))
  }, numeric(6))), tolerance = 1e-14)
  expect_identical(r[, 7:16384], matrix(Inf, 4, 16378))
  expect_true(all(is.na(r[, 16384 + 7:16384])))
})

# ---- 14.6: comparisons ------------------------------------------------------------

test_that("comparison operators on LazyTensors against dense R", {
  local_rk_cpu()
  set.seed(24)
  M <- 6L
  N <- 5L
  X <- matrix(sample(-2:2, M * 2, TRUE), M, 2)
  Y <- matrix(sample(-2:2, N * 2, TRUE), N, 2)
  x_i <- Vi(X)
  y_j <- Vj(Y)
  for (op in c("==", "!=", "<", "<=", ">", ">=")) {
    fn <- match.fun(op)
    K <- fn(x_i, y_j)
    expect_s4_class(K, "LazyTensor")
    got <- sum(K, index = "j")
    want <- t(vapply(seq_len(M), function(i) {
      colSums(fn(matrix(X[i, ], N, 2, byrow = TRUE), Y) * 1)
    }, numeric(2)))
    expect_equal(got, want, label = op)
    # a number and a dimension-1 operand broadcast
    got1 <- sum(fn(x_i, 1) * elem(y_j, 0), index = "j")
    want1 <- (fn(X, 1) * 1) * sum(Y[, 1])
    expect_equal(got1, want1, label = paste(op, "1"))
    got2 <- sum(fn(elem(x_i, 1), y_j), index = "j")
    want2 <- t(vapply(seq_len(M), function(i) colSums(fn(X[i, 2], Y) * 1),
                      numeric(2)))
    expect_equal(got2, want2, label = paste(op, "dim 1"))
  }
  # the formulas written are the keopscore operations
  expect_match((x_i <= y_j)@formula, "^LessOrEqual\\(")
  expect_match((x_i != 0)@formula, "^NotEqual\\(")
  # NaN: C semantics (0, except != : 1)
  xn <- Vi(c(NaN, 1))
  yn <- Vj(1)
  expect_equal(sum(xn == yn, "j"), matrix(c(0, 1)))
  expect_equal(sum(xn != yn, "j"), matrix(c(1, 0)))
  expect_equal(sum(xn < yn, "j") + sum(xn >= yn, "j"), matrix(c(0, 1)))
})

test_that("an i != j mask: leave-one-out kernel sums", {
  local_rk_cpu()
  set.seed(25)
  M <- 9L
  X <- matrix(stats::rnorm(M * 2), M, 2)
  b <- stats::runif(M)
  x_i <- Vi(X)
  x_j <- Vj(X)
  i_i <- Vi(seq_len(M))
  j_j <- Vj(seq_len(M))
  K <- exp(-sqdist(x_i, x_j) / 2)
  Kd <- exp(-as.matrix(stats::dist(X))^2 / 2)
  loo <- sum((i_i != j_j) * K * Vj(b), index = "j")
  expect_equal(loo, (Kd - diag(M)) %*% b, tolerance = 1e-12, ignore_attr = TRUE)
  # leave-one-out log-likelihood of a kernel density estimate
  ll <- logsumexp(-sqdist(x_i, x_j) / 2 + log(i_i != j_j), "j")
  expect_equal(ll, log(rowSums(Kd - diag(M))), tolerance = 1e-12,
               ignore_attr = TRUE)
  # strict upper triangle
  up <- sum((i_i < j_j) * K, index = "j")
  expect_equal(up, rowSums(Kd * upper.tri(Kd)), tolerance = 1e-12,
               ignore_attr = TRUE)
  # the formula language directly
  op <- keops_kernel("Sum_Reduction(NotEqual(i, j) * Exp(-SqDist(x, y) / 2) * b, 1)",
                     c("i=Vi(1)", "j=Vj(1)", "x=Vi(2)", "y=Vj(2)", "b=Vj(1)"))
  expect_equal(op(list(seq_len(M), seq_len(M), X, X, b)),
               (Kd - diag(M)) %*% b, tolerance = 1e-12, ignore_attr = TRUE)
})

test_that("comparisons fold on constants and have zero derivative", {
  local_rk_cpu()
  op <- keops_kernel("Sum_Reduction(x * (LessThan(1, 2) + Equal(2.5, 2.5) + GreaterThan(1, 2)), 1)",
                     c("x=Vi(1)", "y=Vj(1)"))
  expect_equal(op(list(c(1, 2), c(0, 0, 0))), matrix(c(6, 12)))
  expect_false(grepl("LessThan|Equal|GreaterThan", attr(op, "canonical")))
  X <- matrix(c(-1, 0.5, 2), 3)
  Y <- matrix(c(0, 1), 2)
  op <- keops_kernel("Sum_Reduction(GreaterThan(x, y) * x * x, 1)",
                     c("x=Vi(1)", "y=Vj(1)"))
  g <- keops_grad(op, "x")(list(X, Y, matrix(1, 3)))
  # d/dx of x^2 where x > y, the comparison itself contributes nothing
  expect_equal(g, matrix(2 * X * rowSums(outer(X[, 1], Y[, 1], ">"))))
})

# ---- 14.7: SqDist and WeightedSqDist broadcast --------------------------------------

test_that("SqDist and WeightedSqDist with an operand of dimension 1", {
  local_rk_cpu()
  set.seed(26)
  M <- 5L
  N <- 4L
  X1 <- matrix(stats::rnorm(M), M, 1)
  Y <- matrix(stats::rnorm(N * 3), N, 3)
  s <- c(0.5, 1, 2)
  S <- matrix(c(2, 0.5, 0, 0.5, 1, 0.25, 0, 0.25, 3), 3, 3)
  want <- t(vapply(seq_len(M), function(i) sum((X1[i] - Y)^2), 0))
  wantw <- t(vapply(seq_len(M), function(i) sum(t((X1[i] - Y)^2) * s), 0))
  wantS <- t(vapply(seq_len(M), function(i) {
    D <- X1[i] - Y
    sum(rowSums((D %*% S) * D))
  }, 0))
  for (prec in c(64, 32)) {
    local_rk_precision(prec)
    tol <- if (prec == 64) 1e-12 else 1e-5
    x_i <- Vi(X1)
    y_j <- Vj(Y)
    expect_equal(sum(sqdist(x_i, y_j), "j"), t(want), tolerance = tol)
    expect_equal(sum(sqdist(y_j, x_i), "j"), t(want), tolerance = tol)
    expect_equal(sum(weightedsqdist(x_i, y_j, s), "j"), t(wantw), tolerance = tol)
    expect_equal(sum(weightedsqdist(y_j, x_i, as.vector(S)), "j"), t(wantS),
                 tolerance = tol)
    op <- keops_kernel("Sum_Reduction(SqDist(x, y), 1)", c("x=Vi(1)", "y=Vj(3)"))
    expect_equal(op(list(X1, Y)), t(want), tolerance = tol)
    op <- keops_kernel("Sum_Reduction(WeightedSqDist(s, x, y), 1)",
                       c("s=Pm(3)", "x=Vi(1)", "y=Vj(3)"))
    expect_equal(op(list(s, X1, Y)), t(wantw), tolerance = tol)
  }
  local_rk_precision(64)
  # a zero operand broadcast against the other: d * x^2, not x^2
  op <- keops_kernel("Sum_Reduction(SqDist(x, Zero(3)), 1)", c("x=Vi(1)", "y=Vj(1)"))
  expect_equal(op(list(X1, 1)), 3 * X1^2, tolerance = 1e-14)
  # the gradient with respect to the broadcast operand sums over components
  op <- keops_kernel("Sum_Reduction(SqDist(x, y), 1)", c("x=Vi(1)", "y=Vj(3)"))
  g <- keops_grad(op, "x")(list(X1, Y, matrix(1, M)))
  expect_equal(g, matrix(vapply(seq_len(M), function(i) sum(2 * (X1[i] - Y)), 0)),
               tolerance = 1e-12)
  # incompatible dimensions are still refused
  expect_error(keops_kernel("Sum_Reduction(SqDist(x, y), 1)", c("x=Vi(2)", "y=Vj(3)")),
               class = "rkeops_dim_error")
  expect_error(sqdist(Vi(matrix(0, 2, 2)), Vj(matrix(0, 2, 3))),
               class = "rkeops_dim_error")
  expect_error(keops_kernel("Sum_Reduction(WeightedSqDist(s, x, y), 1)",
                            c("s=Pm(2)", "x=Vi(1)", "y=Vj(3)")),
               class = "rkeops_dim_error")
})

# ---- 17.8: NaN semantics ------------------------------------------------------------

test_that("NaN: Min/Max propagate, selecting reductions rank NaN last", {
  local_rk_cpu()
  X <- matrix(c(0, 0), 2)
  Y <- matrix(c(3, NaN, 1, 2), 4)
  args <- c("x=Vi(1)", "y=Vj(1)")
  run <- function(red, K = NULL) {
    keops_kernel(red_formula(red, "x + y", 1, K), args)(list(X, Y))
  }
  for (prec in c(64, 32)) {
    local_rk_precision(prec)
    # as R's min() and max()
    expect_identical(run("Min")[, 1], c(min(Y), min(Y)))
    expect_true(all(is.nan(run("Max"))))
    expect_true(all(is.nan(run("Sum"))))
    # as which.min() / which.max(): NaN skipped, values and indices agree
    expect_identical(run("ArgMin")[1, ], which.min(Y[, 1]) + 0)
    expect_identical(run("ArgMax")[1, ], which.max(Y[, 1]) + 0)
    expect_identical(run("Min_ArgMin")[1, ], c(1, 3))
    expect_identical(run("Max_ArgMax")[1, ], c(3, 1))
    # as order(): NaN last
    expect_identical(run("KMin", 4)[1, ], c(1, 2, 3, NaN))
    expect_identical(run("ArgKMin", 4)[1, ], as.double(order(Y[, 1])))
    expect_identical(run("KMin_ArgKMin", 2)[1, ], c(1, 2, 3, 4))
    # K > N after the NaN
    expect_identical(run("KMin", 5)[1, ], c(1, 2, 3, NaN, Inf))
  }
  # an argmin over NaN only: NaN value (not NA index) from Min_ArgMin
  op <- keops_kernel("Min_ArgMin_Reduction(x + y, 1)", args)
  r <- op(list(X, c(NaN, NaN)))
  expect_true(all(is.nan(r[, 1])))
})

test_that("SumSoftMaxWeight of all -Inf is NaN (0 / 0); LogSumExp is -Inf", {
  local_rk_cpu()
  X <- matrix(c(-Inf, 0, -Inf), 3)
  Y <- matrix(c(1, -2, 0.5), 3)
  W <- matrix(c(1, 2, 3, 4, 5, 6), 3)
  want <- sum(exp(Y) * W[, 1]) / sum(exp(Y))
  want2 <- sum(exp(Y) * W[, 2]) / sum(exp(Y))
  for (fold in c("0", "1")) { # the CPU fold and the branch-free (CUDA) fold
    withr::local_envvar(RKEOPS_CPU_LSE = fold)
    for (prec in c(64, 32)) {
      local_rk_precision(prec)
      ssm <- keops_kernel("SumSoftMaxWeight_Reduction(x + y, w, 1)",
                          c("x=Vi(1)", "y=Vj(1)", "w=Vj(2)"))
      r <- ssm(list(X, Y, W))
      expect_true(all(is.nan(r[c(1, 3), ])), label = paste("fold", fold))
      expect_equal(r[2, ], c(want, want2), tolerance = tol_for(prec))
      lse <- keops_kernel("LogSumExp_Reduction(x + y, 1)", c("x=Vi(1)", "y=Vj(1)"))
      l <- lse(list(X, Y))
      expect_identical(l[c(1, 3), 1], c(-Inf, -Inf))
      expect_equal(l[2, 1], log(sum(exp(Y))), tolerance = tol_for(prec))
      # the dense R definition gives NaN too
      expect_true(is.nan(ref_reduce_row("SumSoftMaxWeight", matrix(-Inf + Y), W)[1]))
    }
  }
})

# ---- 14.8: gradients ------------------------------------------------------------

test_that("the outer syntax Grad(Sum_Reduction(f, a), x, eta)", {
  local_rk_cpu()
  set.seed(27)
  M <- 5L
  N <- 4L
  X <- matrix(stats::rnorm(M * 2), M, 2)
  Y <- matrix(stats::rnorm(N * 2), N, 2)
  b <- stats::runif(N)
  eta <- matrix(stats::rnorm(M), M)
  args <- c("x=Vi(2)", "y=Vj(2)", "b=Vj(1)", "eta=Vi(1)")
  f <- "Exp(-SqDist(x, y)) * b"
  outer_x <- keops_kernel(sprintf("Grad(Sum_Reduction(%s, 1), x, eta)", f), args)
  inner_x <- keops_kernel(sprintf("Sum_Reduction(Grad(%s, x, eta), 1)", f), args)
  expect_identical(attr(outer_x, "canonical"), attr(inner_x, "canonical"))
  gx <- outer_x(list(X, Y, b, eta))
  op <- keops_kernel(sprintf("Sum_Reduction(%s, 1)", f), args[1:3])
  fd <- ce_fd(function(x) sum(op(list(x, Y, b)) * eta), X)
  expect_equal(gx, fd, tolerance = 1e-8)
  # with respect to a j-variable: one row per j (the KeOps rule)
  outer_y <- keops_kernel(sprintf("Grad(Sum_Reduction(%s, 1), y, eta)", f), args)
  expect_identical(attr(outer_y, "axis"), 0L)
  gy <- outer_y(list(X, Y, b, eta))
  fd <- ce_fd(function(y) sum(op(list(X, y, b)) * eta), Y)
  expect_equal(gy, fd, tolerance = 1e-8)
  # the same as keops_grad()
  expect_equal(gy, keops_grad(op, "y")(list(X, Y, b, eta)), tolerance = 1e-13)
  # only Sum reductions; other errors keep their classes
  expect_error(keops_kernel("Grad(LogSumExp_Reduction(-SqDist(x, y), 1), x, eta)",
                            args), class = "rkeops_parse_error")
  expect_error(keops_kernel(sprintf("Grad(Sum_Reduction(%s, 1), x, y)", f), args),
               class = "rkeops_dim_error")
  expect_error(keops_kernel(sprintf("Grad(Sum_Reduction(%s, 1), x, eta) + 1", f), args),
               class = "rkeops_parse_error")
  expect_error(keops_kernel(sprintf("Grad(Sum_Reduction(%s, 1), x)", f), args),
               class = "rkeops_parse_error")
})

test_that("second-order gradients of LogSumExp, LogSumExpWeight, SumSoftMaxWeight", {
  local_rk_cpu()
  set.seed(28)
  M <- 5L
  N <- 6L
  X <- matrix(stats::rnorm(M * 2), M, 2)
  Y <- matrix(stats::rnorm(N * 2), N, 2)
  B <- matrix(stats::runif(N * 2, 0.5, 1.5), N, 2)
  s <- 0.7
  args <- c("x=Vi(2)", "y=Vj(2)", "s=Pm(1)", "b=Vj(2)")
  reds <- c("LogSumExp_Reduction(-SqDist(x, y) / s, 1)",
            "LogSumExpWeight_Reduction(-SqDist(x, y) / s, b, 1)",
            "SumSoftMaxWeight_Reduction(-SqDist(x, y) / s, b, 1)")
  for (red in reds) {
    op <- keops_kernel(red, args)
    od <- attr(op, "outdim")
    eta <- matrix(stats::rnorm(M * od), M, od)
    inp <- list(X, Y, s, B)
    # first gradient in x, then in s, y, x, b and eta
    gx <- keops_grad(op, "x")
    eta2 <- matrix(stats::rnorm(M * 2), M, 2)
    F <- function(k) function(v) {
      i2 <- c(inp, list(eta))
      i2[[k]] <- v
      sum(eta2 * gx(i2))
    }
    for (k in 1:5) {
      v <- c("x", "y", "s", "b", "eta")[k]
      if (v == "b" && !grepl("b, 1", red)) next
      g <- keops_grad(gx, v)(c(inp, list(eta, eta2)))
      fd <- ce_fd(F(k), c(inp, list(eta))[[k]])
      if (v == "s") fd <- matrix(fd, 1L)
      expect_lte(rel_err(g, fd), 1e-6, label = sprintf("%s: d/d%s of d/dx", red, v))
    }
    # first gradient in s (a parameter: a single row), then in y
    gs <- keops_grad(op, "s")
    u <- stats::rnorm(1)
    g <- keops_grad(gs, "y")(c(inp, list(eta, u)))
    fd <- ce_fd(function(y) sum(u * gs(list(X, y, s, B, eta))), Y)
    expect_lte(rel_err(g, fd), 1e-6, label = sprintf("%s: d/dy of d/ds", red))
    g <- keops_grad(gs, "s")(c(inp, list(eta, u)))
    fd <- ce_fd(function(ss) sum(u * gs(list(X, Y, ss, B, eta))), s)
    expect_lte(rel_err(g, matrix(fd, 1L)), 1e-6, label = sprintf("%s: d2/ds2", red))
    # inner_dim = "row" gives the same
    gr <- keops_grad(gx, "y")(lapply(c(inp, list(eta, eta2)), function(m)
      if (is.matrix(m)) t(m) else m), inner_dim = "row")
    expect_equal(gr, keops_grad(gx, "y")(c(inp, list(eta, eta2))), tolerance = 1e-12)
    # third order: a classed error
    expect_error(keops_grad(keops_grad(gx, "y"), "x"), class = "rkeops_grad_error")
    expect_error(keops_grad(gx, "nope"), class = "rkeops_var_error")
  }
})

test_that("grad(): every differentiable reduction, several variables, errors", {
  local_rk_cpu()
  set.seed(29)
  M <- 5L
  N <- 4L
  X <- matrix(stats::rnorm(M * 2), M, 2)
  Y <- matrix(stats::rnorm(N * 2), N, 2)
  B <- matrix(stats::runif(N * 3, 0.5, 1.5), N, 3)
  x_i <- Vi(X)
  y_j <- Vj(Y)
  b_j <- Vj(B)
  s <- Pm(0.8)
  f <- -sqdist(x_i, y_j) / s
  args <- c("x=Vi(2)", "y=Vj(2)", "b=Vj(3)", "s=Pm(1)")
  for (red in c("LogSumExpWeight", "SumSoftMaxWeight")) {
    eta <- matrix(stats::rnorm(M * 3), M, 3)
    gs <- grad(f, eta, red, var = list(x = x_i, y = y_j, b = b_j, s = s),
               index = "j", weight = b_j)
    expect_named(gs, c("x", "y", "b", "s"))
    op <- keops_kernel(sprintf("%s_Reduction(-SqDist(x, y) / s, b, 1)", red), args)
    inp <- list(X, Y, B, 0.8)
    for (k in 1:4) {
      fd <- ce_fd(function(v) { i2 <- inp; i2[[k]] <- v; sum(op(i2) * eta) }, inp[[k]])
      if (k == 4) fd <- matrix(fd, 1L)
      expect_lte(rel_err(gs[[k]], fd), 1e-6, label = paste(red, names(gs)[k]))
    }
    # one variable: a matrix, equal to the list's element
    expect_equal(grad(f, eta, tolower(red), var = y_j, index = "j", weight = b_j),
                 gs$y)
  }
  # LogSumExp, several variables, unnamed list
  eta <- matrix(stats::rnorm(M), M)
  gl <- grad(f, eta, "LogSumExp", var = list(x_i, s), index = "j")
  expect_length(gl, 2L)
  op <- keops_kernel("LogSumExp_Reduction(-SqDist(x, y) / s, 1)", args[c(1, 2, 4)])
  fd <- ce_fd(function(v) sum(op(list(X, Y, v)) * eta), 0.8)
  expect_lte(rel_err(gl[[2]], matrix(fd, 1L)), 1e-6)
  # a variable that does not occur in f: classed error, not zeros
  err <- expect_error(grad(f, eta, "Sum", var = Vi(X), index = "j"),
                      class = "rkeops_var_error")
  expect_s3_class(err, "rkeops_error")
  expect_error(grad(f, eta, "Sum", var = list(x_i, Vj(Y)), index = "j"),
               class = "rkeops_var_error")
  # weight: needed by the weighted reductions only
  expect_error(grad(f, eta, "SumSoftMaxWeight", var = x_i, index = "j"),
               class = "rkeops_input_error")
  expect_error(grad(f, eta, "Sum", var = x_i, index = "j", weight = b_j),
               class = "rkeops_input_error")
  expect_error(grad(f, eta, "Sum", var = list(), index = "j"),
               class = "rkeops_input_error")
  expect_error(grad(f, eta, "Sum", var = list(x_i, 1), index = "j"),
               class = "rkeops_input_error")
  expect_error(grad(f, eta, "KMin", var = x_i, index = "j"),
               class = "rkeops_grad_error")
})
