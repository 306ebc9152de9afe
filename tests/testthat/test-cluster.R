# test-cluster.R -- reductions across the workers of a parallel cluster
# (rkeops_cluster(), R/cluster.R).  Two local PSOCK workers, started once for
# the file; every reduction on the cluster is compared with the same call
# computed locally (identical on the CPU: a worker computes whole rows) and
# some with dense R.  The killed worker comes last: it breaks the cluster.

skip_on_cran()
skip_if_not_installed("parallel")

cl_env <- new.env()

# This file compares the cluster with this session on the CPU, where both
# compute whole rows identically.  On a machine with a GPU the default
# backend is the GPU, which the workers would inherit (every worker on
# device 0) and which `info$backend == "CPU"` and the identical comparisons
# do not expect: the session is pinned to the CPU for the file (restored
# at its end) and the workers are started with backend = "cpu".
cl_old_opts <- set_rkeops_options(list(backend = "CPU"))

# the file's cluster: 2 workers that find this rkeops (.libPaths() goes to
# the workers: R CMD check installs into a temporary library)
test_cluster <- function() {
  if (is.null(cl_env$cl)) {
    cl_env$cl <- withr::with_options(
      list(socketOptions = "no-delay"),
      parallel::makePSOCKcluster(2, rscript_args = c(
        "-e", shQuote("options(socketOptions = 'no-delay')")
      ))
    )
    withr::defer(
      {
        rkeops_cluster(NULL)
        try(parallel::stopCluster(cl_env$cl), silent = TRUE)
      },
      envir = testthat::teardown_env()
    )
  }
  if (is.null(rkeops_cluster())) rkeops_cluster(cl_env$cl, backend = "cpu", ncore = 1)
  cl_env$cl
}

# run f() locally and on the cluster
both <- function(f) {
  test_cluster()
  on <- f()
  rkeops_cluster(NULL)
  off <- f()
  rkeops_cluster(cl_env$cl, backend = "cpu", ncore = 1)
  list(on = on, off = off)
}

gauss_data <- function(M = 101, N = 67, D = 3, seed = 1) {
  set.seed(seed)
  list(
    x = matrix(runif(M * D), M, D), y = matrix(runif(N * D), N, D),
    b = matrix(rnorm(N * 2), N, 2), a = matrix(rnorm(M * 2), M, 2)
  )
}

dense_d2 <- function(x, y) {
  outer(rowSums(x^2), rowSums(y^2), "+") - 2 * x %*% t(y)
}

test_that("rkeops_cluster() registers, returns and drops the cluster", {
  cl <- test_cluster()
  expect_identical(rkeops_cluster(), cl)
  old <- rkeops_cluster(NULL)
  expect_identical(old, cl)
  expect_null(rkeops_cluster())
  expect_error(rkeops_cluster(42), class = "rkeops_value_error")
  expect_error(rkeops_cluster(cl, timeout = -1), class = "rkeops_value_error")
  expect_error(rkeops_cluster(cl, backend = "cpu", device = 0),
               class = "rkeops_value_error")
  expect_null(rkeops_cluster())
  rkeops_cluster(cl, backend = "cpu", ncore = 1)
  info <- rkeops:::rk_cl$info
  expect_equal(nrow(info), 2L)
  expect_true(all(info$backend == "CPU"))
  expect_true(all(info$ncore == 1L))
  expect_equal(length(unique(info$pid)), 2L)
  expect_false(Sys.getpid() %in% info$pid)
})

test_that("every reduction family, both axes, on the cluster = locally", {
  d <- gauss_data()
  args1 <- c("x=Vi(3)", "y=Vj(3)", "b=Vj(2)")
  args0 <- c("x=Vi(3)", "y=Vj(3)", "b=Vi(2)")
  forms <- c(
    "Sum_Reduction(Exp(-SqDist(x, y)) * b, %d)",
    "Min_ArgMin_Reduction(SqDist(x, y), %d)",
    "KMin_ArgKMin_Reduction(SqDist(x, y), 3, %d)",
    "LogSumExp_Reduction(-SqDist(x, y), %d)",
    "SumSoftMaxWeight_Reduction(-SqDist(x, y), b, %d)"
  )
  for (f in forms) {
    for (axis in 0:1) {
      op <- keops_kernel(sprintf(f, axis), if (axis == 1) args1 else args0)
      input <- list(d$x, d$y, if (axis == 1) d$b else d$a)
      r <- both(function() op(input))
      expect_identical(r$on, r$off, label = sprintf(f, axis))
      expect_equal(nrow(r$on), if (axis == 1) 101L else 67L)
    }
  }
  # against dense R too
  op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)", args1)
  test_cluster()
  expect_equal(op(list(d$x, d$y, d$b)),
               exp(-dense_d2(d$x, d$y)) %*% d$b, tolerance = 1e-12)
  op <- keops_kernel("ArgMin_Reduction(SqDist(x, y), 0)", args1[1:2])
  expect_equal(as.vector(op(list(d$x, d$y))),
               apply(dense_d2(d$x, d$y), 2, which.min))
})

test_that("LazyTensor reductions run on the cluster", {
  d <- gauss_data(M = 53, N = 41, seed = 2)
  f <- function() {
    x_i <- Vi(d$x)
    y_j <- Vj(d$y)
    D <- sqdist(x_i, y_j)
    list(
      sum(exp(-D) * Vj(d$b), index = "j"),
      argmin(D, "i"),
      min_argmin(D, "j"),
      Kmin_argKmin(D, K = 2, index = "i"),
      logsumexp(-D, "j"),
      sumsoftmaxweight(-D, "i", Vi(d$a)),
      exp(-D) %*% d$b
    )
  }
  r <- both(f)
  expect_identical(r$on, r$off)
  expect_equal(r$on[[1]], exp(-dense_d2(d$x, d$y)) %*% d$b, tolerance = 1e-12)
  expect_equal(as.vector(r$on[[2]]), apply(dense_d2(d$x, d$y), 2, which.min))
})

test_that("the master's precision at each call; gradients on the cluster", {
  d <- gauss_data(M = 40, N = 30, seed = 5)
  op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)",
                     c("x=Vi(3)", "y=Vj(3)", "b=Vj(2)"))
  test_cluster()
  local_rk_options()
  rkeops_use_float32()
  r <- both(function() op(list(d$x, d$y, d$b)))
  expect_identical(r$on, r$off)
  r64 <- exp(-dense_d2(d$x, d$y)) %*% d$b
  expect_gt(max(abs(r$on - r64)), 1e-12) # really computed in float32
  expect_equal(r$on, r64, tolerance = 1e-5)
  h <- rkeops_cluster_prepare(op, list(d$x, d$y, d$b), varying = 3)
  expect_identical(rkeops_cluster_apply(h, d$b), r$off)
  rkeops_use_float64()
  expect_equal(rkeops_cluster_apply(h, d$b), r64, tolerance = 1e-12)
  rkeops_cluster_release(h)
  g <- keops_grad(op, "x")
  eta <- matrix(rnorm(40 * 2), 40, 2)
  r <- both(function() g(list(d$x, d$y, d$b, eta)))
  expect_identical(r$on, r$off)
  expect_error(rkeops_cluster_prepare(g, list(d$x, d$y, d$b, eta)),
               class = "rkeops_input_error")
})

test_that("parameters, inner_dim = \"row\", fewer rows than workers", {
  d <- gauss_data(M = 9, N = 30, seed = 3)
  op <- keops_kernel(
    "Sum_Reduction(Exp(-SqDist(x, y) / s) * b, 1)",
    c("x=Vi(3)", "y=Vj(3)", "b=Vj(2)", "s=Pm(1)")
  )
  r <- both(function() op(list(d$x, d$y, d$b, 0.7)))
  expect_identical(r$on, r$off)
  r <- both(function() op(list(t(d$x), t(d$y), t(d$b), 0.7), inner_dim = "row"))
  expect_identical(r$on, r$off)
  # one output row: one worker computes, the other is idle
  r <- both(function() op(list(d$x[1, , drop = FALSE], d$y, d$b, 0.7)))
  expect_identical(r$on, r$off)
  expect_equal(dim(r$on), c(1L, 2L))
  # zero output rows never reach the workers
  test_cluster()
  expect_equal(dim(op(list(d$x[0, , drop = FALSE], d$y, d$b, 0.7))), c(0L, 2L))
  # bad input is checked on the master, as locally
  expect_error(op(list(d$x, d$y[, 1:2], d$b, 0.7)), class = "rkeops_dim_error")
})

test_that("a distributed operator sends the fixed data once", {
  test_cluster()
  M <- 400
  N <- 300
  set.seed(4)
  x <- matrix(runif(M * 3), M, 3)
  y <- matrix(runif(N * 3), N, 3)
  b <- rnorm(N)
  op <- keops_kernel(
    "Sum_Reduction(Exp(-SqDist(x, y) * 4) * b, 1)",
    c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)")
  )
  rkeops_cluster_traffic(reset = TRUE)
  h <- rkeops_cluster_prepare(op, list(x, y, b), varying = "b")
  t1 <- rkeops_cluster_traffic()
  # each worker got its half of x and all of y (doubles: 8 bytes), not b
  expect_true(all(t1$sent >= 8 * (M / 2 * 3 + N * 3)))
  expect_true(all(t1$sent < 8 * (M / 2 * 3 + N * 3 + N) + 4000))
  B <- matrix(rnorm(N * 5), N, 5)
  for (k in 1:5) {
    res <- rkeops_cluster_apply(h, B[, k])
    expect_identical(res, rkeops:::rk_run_local(
      rkeops:::rk_as_parsed(op), list(x, y, B[, k]), "col"))
  }
  t2 <- rkeops_cluster_traffic()
  per_apply <- (t2$sent - t1$sent) / 5
  # only b travels: N doubles and a small envelope, per worker and apply
  expect_true(all(per_apply >= 8 * N))
  expect_true(all(per_apply < 8 * N + 1000))
  expect_equal(t2$messages - t1$messages, c(5, 5))
  # the block of the product comes back: M / 2 doubles each
  expect_true(all((t2$received - t1$received) / 5 < 8 * M / 2 + 1000))
  rkeops_cluster_release(h)
  expect_error(rkeops_cluster_apply(h, b), class = "rkeops_value_error")
  tok <- parallel::clusterEvalQ(rkeops_cluster(), ls(rkeops:::rk_worker_registry))
  expect_equal(lengths(tok), c(0L, 0L))
  # a varying i-variable is split like the rest of the i-data; axis 0
  op0 <- keops_kernel(
    "Sum_Reduction(Exp(-SqDist(x, y)) * a, 0)",
    c("x=Vi(3)", "y=Vj(3)", "a=Vi(1)")
  )
  h0 <- rkeops_cluster_prepare(op0, list(x = x, y = y, a = x[, 1]), varying = 3)
  r0 <- rkeops_cluster_apply(h0, list(a = x[, 2]))
  expect_equal(r0, t(exp(-dense_d2(x, y))) %*% x[, 2], tolerance = 1e-12)
  expect_error(rkeops_cluster_apply(h0, x[1:10, 2]), class = "rkeops_dim_error")
  # garbage-collected handles are released with the next message
  rm(h0)
  gc()
  res <- rkeops_cluster_apply(
    h1 <- rkeops_cluster_prepare(op, list(x, y, b), varying = "b"), b
  )
  tok <- parallel::clusterEvalQ(rkeops_cluster(), ls(rkeops:::rk_worker_registry))
  expect_equal(lengths(tok), c(1L, 1L))
  rkeops_cluster_release(h1)
  # without a cluster a handle computes locally
  rkeops_cluster(NULL)
  hl <- rkeops_cluster_prepare(op, list(x, y, b), varying = "b")
  expect_identical(rkeops_cluster_apply(hl, B[, 1]), op(list(x, y, B[, 1])))
  expect_error(rkeops_cluster_prepare(op, list(x, y, b), varying = "z"),
               class = "rkeops_value_error")
})

test_that("solve() on a cluster: the local solver, products and columns on the workers", {
  skip_if_not(methods::existsMethod("solve", "LazyTensor"),
              "solve() is not in this build")
  test_cluster()
  set.seed(7)
  n <- 300
  X <- matrix(runif(n * 3), n, 3)
  B <- matrix(rnorm(n * 2), n, 2)
  # the hard system of bench/solve.R: h = 0.2, alpha = 1e-3
  K <- exp(-sqdist(Vi(X), Vj(X)) / (2 * 0.2^2))
  A <- exp(-as.matrix(dist(X))^2 / (2 * 0.2^2)) + diag(1e-3, n)
  ref <- base::solve(A, B)
  its <- list()
  for (pc in c("none", "jacobi", "pivchol")) {
    rkeops_cluster_traffic(reset = TRUE)
    on <- solve(K, B, alpha = 1e-3, tol = 1e-9, precond = pc, maxit = 5000)
    tr <- rkeops_cluster_traffic()
    pr <- attr(on, "precond")
    expect_lt(max(abs(on - ref)) / max(abs(ref)), 1e-6, label = pc)
    expect_true(all(attr(on, "residual") <= 1e-9), label = pc)
    # the points went once; each product sent the n x 2 iterate (and the
    # pivchol columns' exchanges 32 points and a 32 x 32 one-hot block)
    # to each worker
    expect_true(all(tr$sent > pr$products * 8 * 2 * n), label = pc)
    cols <- if (pc == "pivchol") pr$rank * 8 * (32 * 3 + 32^2 + 200) else 0
    expect_true(all(tr$sent < pr$products * (8 * 2 * n + 1000) + 8 * 4 * n * 3 + cols),
                label = pc)
    rkeops_cluster(NULL)
    loc <- solve(K, B, alpha = 1e-3, tol = 1e-9, precond = pc, maxit = 5000)
    test_cluster()
    # the same solver on the same products (rows computed whole, on the CPU)
    expect_identical(as.vector(on), as.vector(loc), label = pc)
    expect_identical(attr(on, "iterations"), attr(loc, "iterations"), label = pc)
    expect_identical(attr(on, "precond")$rank, attr(loc, "precond")$rank)
    expect_equal(attr(on, "precond")$logdet, attr(loc, "precond")$logdet,
                 tolerance = 1e-12)
    its[[pc]] <- max(attr(on, "iterations"))
  }
  # the low-rank preconditioner works on the cluster as it does locally
  expect_gt(attr(on, "precond")$rank, 50)
  expect_lt(its$pivchol * 5, its$jacobi)
  # float32 products with float64 refinement, one right-hand side, x0
  old <- set_rkeops_options(list(precision = "float32"))
  on <- solve(K, B[, 1], alpha = 1e-3, tol = 1e-8, precond = "pivchol")
  expect_lt(max(abs(on - ref[, 1])) / max(abs(ref[, 1])), 1e-5)
  expect_true(attr(on, "residual") <= 1e-8)
  expect_gt(attr(on, "precond")$exact_products, 0)
  set_rkeops_options(old)
  warm <- solve(K, B[, 1], alpha = 1e-3, tol = 1e-9, precond = "pivchol",
                x0 = ref[, 1])
  expect_lte(max(attr(warm, "iterations")), 2)
  expect_error(solve(K, B, alpha = 1e-3, precond = "nystrom"),
               class = "rkeops_unsupported_error")
  expect_error(solve(K, B, alpha = 1e-3, precond = "pic"),
               class = "rkeops_unsupported_error")
})

test_that("solve() on a cluster: a worker failing mid-solve is a classed error", {
  skip_if_not(methods::existsMethod("solve", "LazyTensor"),
              "solve() is not in this build")
  cl <- test_cluster()
  set.seed(9)
  n <- 120
  X <- matrix(runif(n * 3), n, 3)
  b <- rnorm(n)
  K <- exp(-sqdist(Vi(X), Vj(X)) / 0.1)
  # worker 2 fails its 6th apply (a product or a column exchange)
  parallel::clusterEvalQ(cl[2], {
    ns <- asNamespace("rkeops")
    rk_old_do <- get("rk_worker_do", ns)
    rk_napply <- 0
    utils::assignInNamespace("rk_worker_do", function(cmd) {
      if (identical(cmd$op, "apply")) {
        rk_napply <<- rk_napply + 1
        if (rk_napply == 6) {
          stop(structure(class = c("rkeops_value_error", "error", "condition"),
                         list(message = "injected failure", call = NULL)))
        }
      }
      rk_old_do(cmd)
    }, "rkeops")
    NULL
  })
  for (pc in c("jacobi", "pivchol")) {
    parallel::clusterEvalQ(cl[2], rk_napply <- 0)
    e <- tryCatch(solve(K, b, alpha = 0.01, precond = pc), error = function(e) e)
    expect_s3_class(e, "rkeops_cluster_error")
    expect_s3_class(e, "rkeops_value_error")
    expect_equal(e$worker, 2L)
    expect_match(conditionMessage(e), "worker 2 of 2 .*injected failure")
  }
  parallel::clusterEvalQ(cl[2], {
    utils::assignInNamespace("rk_worker_do", rk_old_do, "rkeops")
    NULL
  })
  # the cluster and the session go on: the same solve on the cluster and
  # locally
  on <- solve(K, b, alpha = 0.01, tol = 1e-10, precond = "pivchol")
  ref <- base::solve(exp(-as.matrix(dist(X))^2 / 0.1) + diag(0.01, n), b)
  expect_lt(max(abs(on - ref)) / max(abs(ref)), 1e-8)
  rkeops_cluster(NULL)
  loc <- solve(K, b, alpha = 0.01, tol = 1e-10, precond = "pivchol")
  test_cluster()
  expect_identical(as.vector(on), as.vector(loc))
})

test_that("an error on a worker is a classed error naming the worker", {
  cl <- test_cluster()
  e <- tryCatch(
    rkeops:::rk_cluster_exchange(list(
      NULL, list(list(op = "fail", class = "rkeops_dim_error", message = "boom"))
    )),
    error = function(e) e
  )
  expect_s3_class(e, "rkeops_cluster_error")
  expect_s3_class(e, "rkeops_dim_error")
  expect_equal(e$worker, 2L)
  expect_equal(e$reason, "error")
  expect_equal(e$worker_message, "boom")
  expect_match(conditionMessage(e), "worker 2 of 2 .*boom")
  # the cluster is still usable, and a real worker-only failure: worker 1
  # lost the data of a distributed operator
  d <- gauss_data(M = 20, N = 10)
  op <- keops_kernel("Sum_Reduction(SqDist(x, y) * b, 1)",
                     c("x=Vi(3)", "y=Vj(3)", "b=Vj(2)"))
  h <- rkeops_cluster_prepare(op, list(d$x, d$y, d$b), varying = "b")
  parallel::clusterEvalQ(cl[1], rm(list = ls(rkeops:::rk_worker_registry),
                                   envir = rkeops:::rk_worker_registry))
  e <- tryCatch(rkeops_cluster_apply(h, d$b), error = function(e) e)
  expect_s3_class(e, "rkeops_cluster_error")
  expect_s3_class(e, "rkeops_value_error")
  expect_equal(e$worker, 1L)
  expect_match(conditionMessage(e), "worker 1 of 2 .*no data")
  rkeops_cluster_release(h)
  expect_equal(op(list(d$x, d$y, d$b)), dense_d2(d$x, d$y) %*% d$b,
               tolerance = 1e-12)
  # a GPU backend on workers without a GPU is refused, naming the worker
  if (rkeops:::rk_state$gpu$count == 0L) {
    rkeops_cluster(NULL)
    e <- tryCatch(suppressWarnings(rkeops_cluster(cl, backend = "gpu")),
                  error = function(e) e)
    expect_s3_class(e, "rkeops_cluster_error")
    expect_match(conditionMessage(e), "worker 1 of 2 .*no usable GPU")
    expect_null(rkeops_cluster())
  }
})

test_that("a worker that does not answer in time fails the call cleanly", {
  cl <- test_cluster()
  rkeops_cluster(NULL)
  rkeops_cluster(cl, backend = "cpu", ncore = 1, timeout = 1)
  t0 <- proc.time()[[3]]
  e <- tryCatch(
    rkeops:::rk_cluster_exchange(list(list(list(op = "sleep", seconds = 3)), NULL)),
    error = function(e) e
  )
  expect_lt(proc.time()[[3]] - t0, 2.5)
  expect_s3_class(e, "rkeops_cluster_error")
  expect_equal(e$reason, "timeout")
  expect_equal(e$worker, 1L)
  d <- gauss_data(M = 12, N = 7)
  op <- keops_kernel("Sum_Reduction(SqDist(x, y) * b, 1)",
                     c("x=Vi(3)", "y=Vj(3)", "b=Vj(2)"))
  expect_error(op(list(d$x, d$y, d$b)), class = "rkeops_cluster_error")
  rkeops_cluster(NULL)
  expect_equal(op(list(d$x, d$y, d$b)), dense_d2(d$x, d$y) %*% d$b,
               tolerance = 1e-12)
  # registered again, the late answer of worker 1 is recognised and dropped
  rkeops_cluster(cl, backend = "cpu", ncore = 1)
  expect_equal(op(list(d$x, d$y, d$b)), dense_d2(d$x, d$y) %*% d$b,
               tolerance = 1e-12)
})

test_that("a killed worker fails the call cleanly; local computing goes on", {
  skip_on_os("windows")
  cl <- test_cluster()
  d <- gauss_data(M = 30, N = 20)
  op <- keops_kernel("Sum_Reduction(SqDist(x, y) * b, 1)",
                     c("x=Vi(3)", "y=Vj(3)", "b=Vj(2)"))
  ref <- dense_d2(d$x, d$y) %*% d$b
  h <- rkeops_cluster_prepare(op, list(d$x, d$y, d$b), varying = "b")
  pid <- rkeops:::rk_cl$info$pid[2]
  # killed while the master waits for it
  system(sprintf("sleep 1; kill -9 %d", pid), wait = FALSE)
  t0 <- proc.time()[[3]]
  e <- tryCatch(
    rkeops:::rk_cluster_exchange(list(NULL, list(list(op = "sleep", seconds = 20)))),
    error = function(e) e
  )
  expect_lt(proc.time()[[3]] - t0, 10)
  expect_s3_class(e, "rkeops_cluster_error")
  expect_equal(e$reason, "died")
  expect_equal(e$worker, 2L)
  expect_match(conditionMessage(e), "worker 2 of 2 .*died")
  # every later cluster call fails at once, with the same class
  e <- tryCatch(op(list(d$x, d$y, d$b)), error = function(e) e)
  expect_s3_class(e, "rkeops_cluster_error")
  expect_match(conditionMessage(e), "rkeops_cluster\\(NULL\\)")
  expect_error(rkeops_cluster_apply(h, d$b), class = "rkeops_cluster_error")
  # back to local computing
  rkeops_cluster(NULL)
  expect_null(rkeops_cluster())
  expect_equal(op(list(d$x, d$y, d$b)), ref, tolerance = 1e-12)
  expect_error(rkeops_cluster_apply(h, d$b), class = "rkeops_cluster_error")
  rkeops_cluster_release(h)
  # a cluster whose worker is dead cannot be registered again
  e <- tryCatch(rkeops_cluster(cl), error = function(e) e)
  expect_s3_class(e, "rkeops_cluster_error")
  expect_equal(e$worker, 2L)
  expect_null(rkeops_cluster())
  expect_equal(op(list(d$x, d$y, d$b)), ref, tolerance = 1e-12)
})

set_rkeops_options(cl_old_opts)
