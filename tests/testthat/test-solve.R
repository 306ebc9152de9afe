# test-solve.R -- solve() and kernel_logdet() against dense R: base::solve()
# and determinant() on the same kernel matrices built with dist().

sv_points <- function(n, d = 3, seed = 1) {
  set.seed(seed)
  matrix(runif(n * d), n, d)
}

# the kernels (sv_kernels) and rel_fro(): helper-solve.R

test_that("solve() matches base::solve() in float64 (kernels, alphas, RHS)", {
  local_rk_cpu(prec = 64)
  cases <- list(
    list("gaussian", 400, 0.2, 1e-4, 1, "pivchol"),
    list("gaussian", 300, 0.1, 10, 3, "none"),
    list("exponential", 500, 0.3, 1e-2, 2, "pivchol"),
    list("exponential", 200, 0.2, 1, 1, "jacobi"),
    list("matern32", 600, 0.25, 1e-3, 3, "pivchol"),
    list("matern32", 250, 0.1, 0.1, 1, "jacobi")
  )
  for (cs in cases) {
    k <- sv_kernels[[cs[[1]]]]
    n <- cs[[2]]
    X <- sv_points(n)
    b <- matrix(rnorm(n * cs[[5]]), n, cs[[5]])
    A <- k$dense(X, cs[[3]]) + diag(cs[[4]], n)
    ref <- solve(A, b)
    # tol 1e-11, or 10 times the rounding floor of the residual where that
    # is larger: eps max_i (|A| |x|)_i / max |b|.  For the Gaussian kernel
    # with alpha = 1e-4 (cond 4e5, |x| ~ 1e5) the floor is 1.6e-11 and even
    # LAPACK's solve with iterative refinement stays at 8e-12: a residual
    # of 1e-11 cannot be certified there
    floor <- .Machine$double.eps * max(abs(A) %*% abs(ref)) / max(abs(b))
    tol <- max(1e-11, 10 * floor)
    x <- solve(k$lt(X, cs[[3]]), b, alpha = cs[[4]], tol = tol,
               precond = cs[[6]])
    info <- paste(cs[[1]], n, cs[[4]], cs[[6]], "tol", signif(tol, 2))
    expect_equal(dim(x), dim(b))
    expect_lt(rel_fro(x, ref), 1e-8, label = info)
    expect_length(attr(x, "iterations"), cs[[5]])
    expect_true(all(attr(x, "residual") <= tol),
                label = paste(info, "residual", toString(signif(attr(x, "residual"), 3)),
                              "iterations", toString(attr(x, "iterations"))))
    # the reported residual is the true one
    r <- b - A %*% x
    expect_equal(sqrt(colSums(r^2)) / sqrt(colSums(b^2)),
                 attr(x, "residual"), tolerance = 1e-3, label = info)
  }
})

test_that("a tol below the rounding floor stops early with a warning that says so", {
  local_rk_cpu(prec = 64)
  X <- sv_points(400)
  set.seed(5)
  b <- rnorm(400)
  A <- sv_kernels$gaussian$dense(X, 0.2) + diag(1e-4, 400)
  floor <- .Machine$double.eps * max(abs(A) %*% abs(solve(A, b))) / max(abs(b))
  expect_gt(floor, 1e-13)
  w <- NULL
  x <- withCallingHandlers(
    solve(sv_kernels$gaussian$lt(X, 0.2), b, alpha = 1e-4, tol = 1e-14,
          precond = "pivchol", maxit = 3000),
    rkeops_convergence_warning = function(cnd) {
      w <<- cnd
      invokeRestart("muffleWarning")
    })
  expect_s3_class(w, "rkeops_convergence_warning")
  expect_match(conditionMessage(w), "rounding floor")
  # it stopped long before maxit, at a residual near the floor, with the
  # solution as accurate as the dense one
  expect_lt(attr(x, "iterations"), 500L)
  expect_lt(attr(x, "residual"), 10 * floor)
  expect_lt(sqrt(sum((x - solve(A, b))^2)) / sqrt(sum(solve(A, b)^2)), 1e-8)
})

test_that("kernel_logdet() also says when its solves stop at the rounding floor", {
  local_rk_cpu(prec = 64)
  X <- sv_points(400)
  w <- NULL
  set.seed(6)
  ld <- withCallingHandlers(
    kernel_logdet(sv_kernels$gaussian$lt(X, 0.2), alpha = 1e-4, tol = 1e-15,
                  probes = 4, maxit = 3000),
    rkeops_convergence_warning = function(cnd) {
      w <<- cnd
      invokeRestart("muffleWarning")
    })
  expect_s3_class(w, "rkeops_convergence_warning")
  expect_match(conditionMessage(w), "rounding floor")
  expect_true(all(attr(ld, "iterations") < 3000L))
  # the estimate is still within 3 standard errors of the dense one
  A <- sv_kernels$gaussian$dense(X, 0.2) + diag(1e-4, 400)
  ref <- as.numeric(determinant(A)$modulus)
  expect_lt(abs(ld - ref), 3 * attr(ld, "se") + 1e-6 * abs(ref))
})

test_that("solve() in float32 reaches 1e-5 relative error by refinement", {
  local_rk_cpu(prec = 32)
  for (cs in list(list("gaussian", 500, 0.2, 1e-3, 2, "pivchol"),
                  list("matern32", 300, 0.2, 1e-2, 1, "jacobi"),
                  list("exponential", 300, 0.1, 1, 1, "none"))) {
    k <- sv_kernels[[cs[[1]]]]
    n <- cs[[2]]
    X <- sv_points(n, seed = 2)
    b <- matrix(runif(n * cs[[5]]), n, cs[[5]])
    ref <- solve(k$dense(X, cs[[3]]) + diag(cs[[4]], n), b)
    x <- solve(k$lt(X, cs[[3]]), b, alpha = cs[[4]], tol = 1e-9,
               precond = cs[[6]])
    expect_lt(rel_fro(x, ref), 1e-5, label = paste(cs[[1]], cs[[6]]))
    expect_true(all(attr(x, "residual") <= 1e-9))
    expect_gte(attr(x, "precond")$cycles, 2L) # refinement cycles ran
  }
})

test_that("the hard system needs few iterations with pivchol, many without", {
  local_rk_cpu(prec = 64)
  n <- 800
  X <- sv_points(n, seed = 3)
  b <- runif(n)
  K <- sv_kernels$gaussian$lt(X, 0.2)
  ref <- solve(sv_kernels$gaussian$dense(X, 0.2) + diag(1e-3, n), b)
  xp <- solve(K, b, alpha = 1e-3, precond = "pivchol")
  expect_lt(attr(xp, "iterations"), 40)
  expect_gt(attr(xp, "precond")$rank, 0L)
  expect_lte(attr(xp, "precond")$trace_left, 1000 * 1e-3)
  expect_lt(attr(xp, "residual"), 1e-6)
  expect_lt(rel_fro(xp, ref), 1e-3)
  # ten times as many iterations without it are not enough
  expect_warning(xn <- solve(K, b, alpha = 1e-3, precond = "none",
                             maxit = 10 * attr(xp, "iterations")),
                 class = "rkeops_convergence_warning")
  expect_gt(attr(xn, "residual"), 1e-5)
  # a fixed rank is honoured
  x5 <- solve(K, b, alpha = 1e-3, precond = "pivchol", rank = 50)
  expect_identical(attr(x5, "precond")$rank, 50L)
  expect_lt(attr(x5, "residual"), 1e-6)
})

test_that("alpha = 0 (kriging without nugget): pivchol converges in a few iterations", {
  # with alpha = 0 the pivchol shift was the mean remaining diagonal, near 0
  # for a full-rank factor: the Woodbury form of P^-1 was noise and CG ran
  # to maxit (exponential, h = 0.1: residual 0.3 after 2000 iterations)
  local_rk_cpu(prec = 64)
  X <- sv_points(400, d = 2)
  b <- matrix(rnorm(400 * 2), 400, 2)
  for (cs in list(list("exponential", 0.1), list("exponential", 1),
                  list("matern32", 0.2), list("gaussian", 0.05))) {
    k <- sv_kernels[[cs[[1]]]]
    ref <- solve(k$dense(X, cs[[2]]), b)
    info <- paste(cs[[1]], cs[[2]])
    x <- expect_no_warning(solve(k$lt(X, cs[[2]]), b, tol = 1e-8,
                                 precond = "pivchol", maxit = 500))
    expect_lt(rel_fro(x, ref), 1e-6, label = info)
    expect_true(all(attr(x, "residual") <= 1e-8), label = info)
    expect_lte(max(attr(x, "iterations")), 30, label = info)
    # and the same system with jacobi takes far more iterations
    if (cs[[1]] == "matern32") {
      xj <- solve(k$lt(X, cs[[2]]), b, tol = 1e-8, precond = "jacobi", maxit = 5000)
      expect_gt(min(attr(xj, "iterations")), 10 * max(attr(x, "iterations")))
      expect_lt(rel_fro(xj, ref), 1e-6)
    }
  }
})

test_that("every preconditioner gives the same solution", {
  local_rk_cpu(prec = 64)
  n <- 300
  X <- sv_points(n, seed = 4)
  b <- matrix(rnorm(2 * n), n, 2)
  # a narrow kernel with a varying diagonal, where Jacobi matters
  w <- 1 + 5 * X[, 1]
  K <- Vi(w) * exp(-sqdist(Vi(X), Vj(X)) / 0.002) * Vj(w)
  Kd <- outer(w, w) * exp(-as.matrix(dist(X))^2 / 0.002)
  ref <- solve(Kd + diag(0.05, n), b)
  its <- c()
  for (pc in c("none", "jacobi", "pivchol")) {
    x <- solve(K, b, alpha = 0.05, precond = pc, tol = 1e-12)
    expect_lt(rel_fro(x, ref), 1e-8, label = pc)
    its[pc] <- max(attr(x, "iterations"))
  }
  expect_lt(its[["jacobi"]], its[["none"]])
  expect_lt(its[["pivchol"]], its[["jacobi"]])
})

test_that("a warm start saves iterations", {
  local_rk_cpu(prec = 64)
  n <- 400
  X <- sv_points(n, seed = 5)
  K <- sv_kernels$matern32$lt(X, 0.2)
  b <- runif(n)
  x1 <- solve(K, b, alpha = 1e-2, precond = "none")
  b2 <- b + 1e-4 * rnorm(n)
  cold <- solve(K, b2, alpha = 1e-2, precond = "none")
  warm <- solve(K, b2, alpha = 1e-2, precond = "none", x0 = x1)
  expect_lt(attr(warm, "iterations"), attr(cold, "iterations"))
  expect_lt(attr(warm, "residual"), 1e-6)
  ref <- solve(sv_kernels$matern32$dense(X, 0.2) + diag(1e-2, n), b2)
  expect_lt(rel_fro(warm, ref), 1e-4)
  # an exact starting point needs no iteration
  again <- solve(K, b2, alpha = 1e-2, x0 = warm, precond = "none")
  expect_identical(attr(again, "iterations"), 0L)
})

test_that("attr(, \"seconds\") accounts for a solve's and a logdet's time", {
  local_rk_cpu(prec = 64)
  n <- 600
  X <- sv_points(n, seed = 8)
  K <- sv_kernels$gaussian$lt(X, 0.2)
  nm <- c("setup", "kernels", "precond", "sqrt", "pcg", "products",
          "precond_apply", "release")
  t0 <- proc.time()[["elapsed"]]
  x <- solve(K, cbind(runif(n), runif(n)), alpha = 1e-3, precond = "pivchol",
             rank = 40)
  el <- proc.time()[["elapsed"]] - t0
  s <- attr(x, "seconds")
  expect_named(s, nm)
  expect_true(all(is.finite(s) & s >= 0))
  expect_equal(s[["sqrt"]], 0)
  # the parts are inside the whole: products and the preconditioner inside
  # pcg, every stage inside the call's elapsed time (proc.time: 1 ms steps)
  expect_lte(s[["products"]] + s[["precond_apply"]], s[["pcg"]] + 1e-6)
  expect_lte(sum(s[c("setup", "kernels", "precond", "pcg", "release")]),
             el + 0.002)
  # an iteration of this size costs a product: they are not zero
  expect_gt(s[["products"]], 0)
  expect_gt(s[["precond"]], 0)
  # rank 40 takes at least 40 kernel columns (candidates rejected on the
  # way cost more), at most 40 plus a block of 32 candidates
  pc <- attr(x, "precond")
  expect_equal(pc$rank, 40L)
  expect_gte(pc$columns, 40L)
  expect_lte(pc$columns, 72L)
  set.seed(1)
  ld <- kernel_logdet(K, alpha = 1e-3, probes = 8, rank = 40,
                      return_probes = TRUE)
  s <- attr(ld, "seconds")
  expect_named(s, nm)
  expect_true(all(is.finite(s) & s >= 0))
  expect_gt(s[["sqrt"]], 0)
  expect_lte(s[["products"]] + s[["precond_apply"]], s[["pcg"]] + 1e-6)
})

test_that("maxit reached warns with rkeops_convergence_warning", {
  local_rk_cpu(prec = 64)
  n <- 300
  X <- sv_points(n)
  K <- sv_kernels$gaussian$lt(X, 0.3)
  expect_warning(x <- solve(K, runif(n), alpha = 1e-5, maxit = 3,
                            precond = "none"),
                 class = "rkeops_convergence_warning")
  expect_identical(attr(x, "iterations"), 3L)
  expect_gt(attr(x, "residual"), 1e-6)
})

test_that("a zero right-hand side gives a zero column", {
  local_rk_cpu(prec = 64)
  n <- 200
  X <- sv_points(n)
  b <- cbind(0, runif(n))
  x <- solve(sv_kernels$gaussian$lt(X, 0.2), b, alpha = 0.1)
  expect_identical(x[, 1], rep(0, n))
  expect_identical(attr(x, "iterations")[1], 0L)
  ref <- solve(sv_kernels$gaussian$dense(X, 0.2) + diag(0.1, n), b[, 2])
  expect_lt(rel_fro(x[, 2], ref), 1e-5)
})

test_that("bad inputs give classed errors", {
  local_rk_cpu(prec = 64)
  n <- 50
  X <- sv_points(n)
  K <- exp(-sqdist(Vi(X), Vj(X)) / 0.1)
  b <- runif(n)
  expect_error(solve(K, runif(n + 1), alpha = 1), class = "rkeops_dim_error")
  expect_error(solve(K, b, alpha = -1), class = "rkeops_value_error")
  expect_error(solve(K, b, alpha = NA), class = "rkeops_value_error")
  expect_error(solve(K, c(b[-1], NA), alpha = 1), class = "rkeops_value_error")
  expect_error(solve(K, c(b[-1], Inf), alpha = 1), class = "rkeops_value_error")
  Xn <- X
  Xn[3, 2] <- NaN
  expect_error(solve(exp(-sqdist(Vi(Xn), Vj(Xn))), b, alpha = 1),
               class = "rkeops_value_error")
  expect_error(solve(K, b, alpha = 1, x0 = runif(n - 1)),
               class = "rkeops_dim_error")
  expect_error(solve(K, b, alpha = 1, precond = "ilu"),
               class = "rkeops_value_error")
  expect_error(solve(K, b, alpha = 1, tol = 0), class = "rkeops_value_error")
  expect_error(solve(K, b, alpha = 1, rank = -2), class = "rkeops_value_error")
  expect_error(solve(K), class = "rkeops_input_error")
  # not square
  Y <- sv_points(n + 5, seed = 9)
  expect_error(solve(exp(-sqdist(Vi(X), Vj(Y))), b, alpha = 1),
               class = "rkeops_symmetry_error")
  # square, but other points on the j side
  Y <- sv_points(n, seed = 9)
  expect_error(solve(exp(-sqdist(Vi(X), Vj(Y))), b, alpha = 1),
               class = "rkeops_symmetry_error")
  # the same points, but a formula that is not symmetric
  expect_error(solve(exp(-sqdist(Vi(X), Vj(X))) * Vi(X[, 1]), b, alpha = 1),
               class = "rkeops_symmetry_error")
  # declared not symmetric; not a scalar kernel
  expect_error(solve(K, b, alpha = 1, symmetric = FALSE),
               class = "rkeops_symmetry_error")
  expect_error(solve(Vi(X) - Vj(X), b), class = "rkeops_dim_error")
  # every error is an rkeops_error
  expect_error(solve(K, b, alpha = -1), class = "rkeops_error")
  # float64 CG meets negative curvature on an indefinite "kernel"
  expect_error(solve(-K, b, precond = "none"), class = "rkeops_value_error")
})

test_that("symmetric = TRUE skips the checks of form", {
  local_rk_cpu(prec = 64)
  n <- 200
  X <- sv_points(n)
  # symmetric, but the i side holds 2 X and the j side X (doubled in the
  # formula): not symmetric in form
  K <- exp(-sqdist(Vi(2 * X), 2 * Vj(X)) / 0.4)
  b <- runif(n)
  expect_error(solve(K, b, alpha = 0.1), class = "rkeops_symmetry_error")
  x <- solve(K, b, alpha = 0.1, symmetric = TRUE, precond = "pivchol")
  ref <- solve(exp(-as.matrix(dist(X))^2 / 0.1) + diag(0.1, n), b)
  expect_lt(rel_fro(x, ref), 1e-5)
})

test_that("verbosity shows a progress line; formula_only gives the formula", {
  local_rk_cpu(prec = 64)
  n <- 200
  X <- sv_points(n)
  K <- sv_kernels$gaussian$lt(X, 0.2)
  rkeops_enable_verbosity()
  out <- character()
  con <- textConnection("out", "w", local = TRUE)
  sink(con, type = "message")
  x <- tryCatch(solve(K, runif(n), alpha = 0.01), finally = {
    sink(type = "message")
    close(con)
  })
  rkeops_disable_verbosity()
  expect_true(any(grepl("rkeops solve: iteration [0-9]+, residual", out)))
  set_rkeops_options(list(formula_only = TRUE))
  f <- solve(K, runif(n), alpha = 0.01)
  set_rkeops_options(list(formula_only = FALSE))
  expect_type(f, "character")
  expect_match(f, "^Sum_Reduction\\(")
})

test_that("kernel_logdet() is within 3 standard errors of determinant()", {
  local_rk_cpu(prec = 64)
  n <- 2000
  X <- sv_points(n, seed = 6)
  A <- sv_kernels$gaussian$dense(X, 0.2) + diag(1e-3, n)
  ref <- as.numeric(determinant(A, logarithm = TRUE)$modulus)
  set.seed(10)
  ld <- kernel_logdet(sv_kernels$gaussian$lt(X, 0.2), alpha = 1e-3,
                      probes = 30)
  se <- attr(ld, "se")
  expect_lt(abs(ld - ref), 3 * se)
  expect_lt(se, 0.01 * abs(ref))
  expect_gt(se, 0)
  expect_length(attr(ld, "estimates"), 30)
  # smaller problems, the other preconditioners and kernels
  n <- 300
  X <- sv_points(n, seed = 7)
  for (cs in list(list("matern32", 0.2, 0.01, "none"),
                  list("exponential", 0.3, 0.1, "jacobi"),
                  list("gaussian", 0.1, 1e-2, "pivchol"))) {
    k <- sv_kernels[[cs[[1]]]]
    A <- k$dense(X, cs[[2]]) + diag(cs[[3]], n)
    ref <- as.numeric(determinant(A, logarithm = TRUE)$modulus)
    ld <- kernel_logdet(k$lt(X, cs[[2]]), alpha = cs[[3]], precond = cs[[4]])
    expect_lt(abs(ld - ref), 3 * attr(ld, "se"), label = cs[[4]])
  }
  # the exact part: with a full-rank pivoted Cholesky, P = A up to rounding
  n <- 60
  X <- sv_points(n, seed = 8)
  A <- sv_kernels$gaussian$dense(X, 0.3) + diag(0.1, n)
  ld <- kernel_logdet(sv_kernels$gaussian$lt(X, 0.3), alpha = 0.1,
                      rank = n)
  expect_equal(attr(ld, "precond_logdet"),
               as.numeric(determinant(A)$modulus), tolerance = 1e-8)
  expect_equal(as.numeric(ld), as.numeric(determinant(A)$modulus),
               tolerance = 1e-8)
})

test_that("kernel_logdet() probes estimate traces of A^-1 B", {
  local_rk_cpu(prec = 64)
  n <- 300
  X <- sv_points(n, seed = 11)
  Kd <- sv_kernels$gaussian$dense(X, 0.2)
  A <- Kd + diag(1e-2, n)
  # B = dK/dl for K = exp(-r^2 / (2 l^2)): K * r^2 / l^3
  B <- Kd * as.matrix(dist(X))^2 / 0.2^3
  ref <- sum(diag(solve(A, B)))
  set.seed(12)
  for (pc in c("pivchol", "none")) {
    ld <- kernel_logdet(sv_kernels$gaussian$lt(X, 0.2), alpha = 1e-2,
                        probes = 40, precond = pc, return_probes = TRUE)
    pr <- attr(ld, "probes")
    expect_equal(dim(pr$z), c(n, 40L))
    # the solves solve A u = z
    expect_lt(rel_fro(A %*% pr$solves, pr$z), 1e-5)
    est <- colSums(pr$solves * (B %*% pr$pinv_z))
    expect_lt(abs(mean(est) - ref), 3 * sd(est) / sqrt(40), label = pc)
  }
  expect_null(attr(kernel_logdet(sv_kernels$gaussian$lt(X, 0.2), alpha = 0.1),
                   "probes"))
  expect_error(kernel_logdet(sv_kernels$gaussian$lt(X, 0.2), probes = 1),
               class = "rkeops_value_error")
})

test_that("kernel_logdet(b = ) solves b beside the probes, with one preconditioner", {
  local_rk_cpu(prec = 64)
  n <- 300
  X <- sv_points(n, seed = 13)
  A <- sv_kernels$matern32$dense(X, 0.3) + diag(0.05, n)
  B <- cbind(rnorm(n), runif(n))
  for (pc in c("pivchol", "jacobi")) {
    set.seed(14)
    l0 <- kernel_logdet(sv_kernels$matern32$lt(X, 0.3), alpha = 0.05,
                        probes = 20, precond = pc, tol = 1e-10)
    set.seed(14)
    l1 <- kernel_logdet(sv_kernels$matern32$lt(X, 0.3), alpha = 0.05,
                        probes = 20, precond = pc, tol = 1e-10, b = B)
    xb <- attr(l1, "solve")
    expect_equal(dim(xb), c(n, 2L))
    expect_lt(rel_fro(xb, solve(A, B)), 1e-8)
    expect_true(all(attr(xb, "residual") <= 1e-10))
    expect_length(attr(xb, "iterations"), 2L)
    # the probes are the same: the estimate does not change
    expect_equal(as.numeric(l1), as.numeric(l0), tolerance = 1e-9, label = pc)
    expect_equal(attr(l1, "iterations"), attr(l0, "iterations"))
  }
  # a vector b, and the probes kept too
  set.seed(15)
  l2 <- kernel_logdet(sv_kernels$matern32$lt(X, 0.3), alpha = 0.05,
                      probes = 10, b = B[, 1], return_probes = TRUE,
                      tol = 1e-9)
  expect_lt(rel_fro(attr(l2, "solve")[, 1], solve(A, B[, 1])), 1e-7)
  pr <- attr(l2, "probes")
  expect_equal(dim(pr$solves), c(n, 10L))
  expect_lt(rel_fro(A %*% pr$solves, pr$z), 1e-7)
  expect_null(attr(l0, "solve"))
  expect_error(kernel_logdet(sv_kernels$matern32$lt(X, 0.3), alpha = 0.05,
                             b = B[-1, ]), class = "rkeops_dim_error")
})

test_that("the GP log-likelihood gradient: grad() of K [a, v] in the kernel's Pm()", {
  # as in vignettes/gaussian-process.Rmd: for K = s2 k_ell,
  # sum_c G_c^T (dK/dtheta) V_c by grad() with respect to Pm(ell), Pm(s2)
  local_rk_cpu(prec = 64)
  n <- 200
  X <- sv_points(n, d = 2, seed = 16)
  V <- matrix(rnorm(n * 3), n, 3)
  G <- matrix(rnorm(n * 3), n, 3)
  l <- 0.3; s2v <- 0.7
  ell <- Pm(l); s2 <- Pm(s2v)
  r <- norm2(Vi(X) - Vj(X))
  K <- s2 * (1 + sqrt(3) * r / ell) * exp(-sqrt(3) * r / ell)
  g <- grad(K * Vj(V), G, "Sum", var = list(ell = ell, s2 = s2), index = "j")
  D <- as.matrix(dist(X))
  # dK/dell = s2 * 3 r^2 / ell^3 * exp(-sqrt(3) r / ell); dK/ds2 = k_ell
  dl <- s2v * 3 * D^2 / l^3 * exp(-sqrt(3) * D / l)
  ds <- (1 + sqrt(3) * D / l) * exp(-sqrt(3) * D / l)
  expect_equal(as.numeric(g$ell), sum(G * (dl %*% V)), tolerance = 1e-10)
  expect_equal(as.numeric(g$s2), sum(G * (ds %*% V)), tolerance = 1e-10)
  # and against central differences of the dense matrix
  kd <- function(l) s2v * (1 + sqrt(3) * D / l) * exp(-sqrt(3) * D / l)
  h <- 1e-6
  fd <- sum(G * ((kd(l + h) - kd(l - h)) / (2 * h)) %*% V)
  expect_equal(as.numeric(g$ell), fd, tolerance = 1e-6)
})

test_that("an interrupt stops a solve between iterations; the session goes on", {
  skip_on_os("windows")
  skip_on_cran()
  local_rk_cpu(prec = 64)
  # the interrupted solve must still run when the signal comes (1.5 s), on
  # any machine: 4000 points (a product takes milliseconds even on 16 fast
  # threads) and a maxit far above what 1.5 s allows; with alpha = 1e-6 plain
  # CG needs well over that many iterations (cond ~ 4e9)
  Xl <- sv_points(4000, seed = 13)
  Kl <- sv_kernels$gaussian$lt(Xl, 0.3)
  n <- 1500
  X <- sv_points(n, seed = 13)
  K <- sv_kernels$gaussian$lt(X, 0.3)
  b <- runif(n)
  parent <- Sys.getpid()
  job <- parallel::mcparallel({
    Sys.sleep(1.5)
    tools::pskill(parent, tools::SIGINT)
  })
  t0 <- proc.time()[[3]]
  got <- tryCatch(solve(Kl, runif(4000), alpha = 1e-6, precond = "none",
                        maxit = 1e5),
                  interrupt = function(e) "interrupted",
                  rkeops_convergence_warning = function(w) "not interrupted")
  parallel::mccollect(job)
  expect_identical(got, "interrupted")
  expect_lt(proc.time()[[3]] - t0, 30)
  # the session and the kernel cache still work
  x <- solve(K, b, alpha = 0.1, precond = "pivchol")
  ref <- solve(sv_kernels$gaussian$dense(X, 0.3) + diag(0.1, n), b)
  expect_lt(rel_fro(x, ref), 1e-5)
})

test_that("the kernels solve() runs compile with NVRTC (GPU path, no GPU needed)", {
  desc <- tryCatch(rkeops:::rk_config()$description, error = function(e) "")
  skip_if_not(any(grepl("^NVRTC: [0-9]", strsplit(desc, "\n")[[1]])),
              "NVRTC not available")
  X <- sv_points(20)
  K <- sv_kernels$matern32$lt(X, 0.3)
  parts <- list(
    block = rkeops:::lt_reduction_parts(K * Vj(matrix(0, 20, 3)), "Sum", "j"),
    column = rkeops:::lt_reduction_parts(K, "Sum", "j"),
    diagonal = rkeops:::lt_reduction_parts(rkeops:::sv_diag_lt(K), "Sum", "j"))
  for (nm in names(parts)) {
    for (prec in c(32L, 64L)) {
      expect_true(rkeops:::rk_nvrtc_check(parts[[nm]]$formula,
                                          parts[[nm]]$args, precision = prec,
                                          major = 9L, minor = 0L),
                  label = paste(nm, prec))
    }
  }
})

test_that("nystrom: fewer iterations than jacobi on the hard system, exact solution", {
  local_rk_cpu(prec = 64)
  n <- 800
  X <- sv_points(n, seed = 3)
  b <- matrix(runif(3 * n), n, 3)
  K <- sv_kernels$gaussian$lt(X, 0.2)
  A <- sv_kernels$gaussian$dense(X, 0.2) + diag(1e-3, n)
  ref <- solve(A, b)
  xj <- suppressWarnings(solve(K, b, alpha = 1e-3, precond = "jacobi",
                               tol = 1e-10, maxit = 2000))
  set.seed(11)
  xn <- solve(K, b, alpha = 1e-3, precond = "nystrom", tol = 1e-10)
  expect_true(all(attr(xn, "residual") <= 1e-10))
  expect_lt(max(attr(xn, "iterations")), max(attr(xj, "iterations")))
  expect_lt(max(attr(xn, "iterations")), 60)
  # ||x - ref|| / ||ref|| <= cond(A) * residual; the residual is 1e-10 and
  # the preconditioned error is far smaller than that worst case
  expect_lt(rel_fro(xn, ref), 1e-8)
  pc <- attr(xn, "precond")
  expect_identical(pc$kind, "nystrom")
  expect_identical(pc$rank, 256L)
  expect_equal(pc$shift, 1e-3)
  # the same seed gives the same preconditioner, hence the same iterates
  set.seed(11)
  xn2 <- solve(K, b, alpha = 1e-3, precond = "nystrom", tol = 1e-10)
  expect_identical(attr(xn2, "iterations"), attr(xn, "iterations"))
  # a fixed rank (not a multiple of the sketch width) is honoured
  x7 <- solve(K, b[, 1], alpha = 1e-3, precond = "nystrom", rank = 70,
              tol = 1e-10)
  expect_identical(attr(x7, "precond")$rank, 70L)
  expect_lt(rel_fro(x7, ref[, 1]), 1e-8)
})

test_that("nystrom in float32 reaches 1e-5 by refinement, several RHS", {
  local_rk_cpu(prec = 32)
  n <- 500
  X <- sv_points(n, seed = 2)
  b <- matrix(runif(2 * n), n, 2)
  ref <- solve(sv_kernels$gaussian$dense(X, 0.2) + diag(1e-3, n), b)
  set.seed(5)
  x <- solve(sv_kernels$gaussian$lt(X, 0.2), b, alpha = 1e-3, tol = 1e-9,
             precond = "nystrom")
  expect_true(all(attr(x, "residual") <= 1e-9))
  expect_lt(rel_fro(x, ref), 1e-5)
  expect_gte(attr(x, "precond")$cycles, 2L)
})

test_that("nystrom log-determinant matches determinant()", {
  local_rk_cpu(prec = 64)
  n <- 400
  X <- sv_points(n, seed = 8)
  A <- sv_kernels$matern32$dense(X, 0.3) + diag(1e-2, n)
  ref <- as.numeric(determinant(A)$modulus)
  set.seed(3)
  ld <- kernel_logdet(sv_kernels$matern32$lt(X, 0.3), alpha = 1e-2,
                      precond = "nystrom")
  expect_lt(abs(ld - ref), 3 * attr(ld, "se"))
  # P is the full-rank Nystrom approximation when rank = n: log det P is
  # exact (up to the scaling by lambda_min + alpha), and the probes' CG
  # stops after one iteration.  This holds in floating point only where K
  # is well conditioned: the sketch's core Omega^T (K + nu I) Omega has the
  # condition number of K times that of the square Gaussian Omega, and for
  # the Matern kernel above (400 points) it is numerically singular (the
  # estimate is off by 1e-3 to 1 depending on the draw).  An exponential
  # kernel on 80 points has cond(K) near 100.
  n2 <- 80
  X2 <- sv_points(n2, seed = 8)
  A2 <- sv_kernels$exponential$dense(X2, 0.3) + diag(1e-2, n2)
  ref2 <- as.numeric(determinant(A2)$modulus)
  for (s in 1:3) {
    set.seed(s)
    lf <- kernel_logdet(sv_kernels$exponential$lt(X2, 0.3), alpha = 1e-2,
                        precond = "nystrom", rank = n2, probes = 4)
    expect_lt(abs(lf - ref2), 1e-7 * abs(ref2))
    expect_true(all(attr(lf, "iterations") == 1L))
  }
})

test_that("solve() and kernel_logdet() run in a forked worker after the parent solved", {
  # the solver's loops are OpenMP regions; libgomp's pool does not exist in
  # a forked child, so a region of more than one thread there never started
  # (mclapply over solves hung) before the solver took its thread count from
  # rk_threads_get (1 in a forked child)
  skip_on_os("windows")
  local_rk_cpu(prec = 64)
  n <- 800
  X <- sv_points(n, seed = 21)
  K <- sv_kernels$gaussian$lt(X, 0.3)
  b <- runif(n)
  ref <- solve(sv_kernels$gaussian$dense(X, 0.3) + diag(0.01, n), b)
  x0 <- solve(K, b, alpha = 0.01, precond = "pivchol") # the parent's regions
  expect_lt(rel_fro(x0, ref), 1e-5)
  job <- parallel::mcparallel({
    x <- solve(K, b, alpha = 0.01, precond = "pivchol")
    ld <- kernel_logdet(K, alpha = 0.01, probes = 8)
    list(x = x, ld = ld)
  })
  got <- parallel::mccollect(job, wait = FALSE, timeout = 120)
  if (is.null(got)) { # hung: end it, and fail
    tools::pskill(job$pid, tools::SIGKILL)
    parallel::mccollect(job)
  }
  expect_false(is.null(got))
  r <- got[[1]]
  expect_lt(rel_fro(r$x, ref), 1e-5)
  dref <- determinant(sv_kernels$gaussian$dense(X, 0.3) + diag(0.01, n))$modulus
  expect_lt(abs(as.numeric(r$ld) - dref), 4 * attr(r$ld, "se") + 1e-8 * abs(dref))
})

test_that("a long solve's progress line shows in the parent, never from a forked child", {
  skip_on_os("windows")
  local_rk_cpu(prec = 64)
  rkeops_disable_verbosity()
  # every solve is "long" (rkeops.progress_after = 0), verbosity off
  withr::local_options(rkeops.progress_after = 0)
  n <- 300
  X <- sv_points(n, seed = 22)
  K <- sv_kernels$gaussian$lt(X, 0.2)
  b <- runif(n)
  run <- function() {
    out <- character()
    con <- textConnection("out", "w", local = TRUE)
    sink(con, type = "message")
    x <- tryCatch(solve(K, b, alpha = 0.01), finally = {
      sink(type = "message")
      close(con)
    })
    list(x = x, out = out)
  }
  ref <- solve(sv_kernels$gaussian$dense(X, 0.2) + diag(0.01, n), b)
  p <- run()
  expect_lt(rel_fro(p$x, ref), 1e-5)
  expect_true(any(grepl("rkeops solve: iteration [0-9]+, residual", p$out)))
  job <- parallel::mcparallel(run())
  got <- parallel::mccollect(job, wait = FALSE, timeout = 120)
  if (is.null(got)) {
    tools::pskill(job$pid, tools::SIGKILL)
    parallel::mccollect(job)
  }
  expect_false(is.null(got))
  ch <- got[[1]]
  expect_lt(rel_fro(ch$x, ref), 1e-5)
  expect_false(any(grepl("rkeops solve", ch$out)))
  # a bad option value falls back to 2 s
  withr::local_options(rkeops.progress_after = "soon")
  expect_identical(rkeops:::rk_progress_after(), 2)
})
