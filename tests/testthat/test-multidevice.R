# test-multidevice.R -- the split of the output rows over several devices
# (device_id of length > 1; run.c rk_parts_*, be-op.c parts).  On the CPU
# backend each listed number is one partition of the rows, computed one
# after the other: a row is computed by one part over the whole reduction
# range, so the results are identical to one part's.  The GPU tests
# (device = c(0, 0), then "all") skip without a GPU.

skip_on_cran()

md_data <- function(M = 101, N = 67, D = 3, seed = 11) {
  set.seed(seed)
  list(
    x = matrix(runif(M * D), M, D), y = matrix(runif(N * D), N, D),
    b = matrix(rnorm(N * 2), N, 2), a = matrix(rnorm(M * 2), M, 2)
  )
}

md_forms <- c(
  "Sum_Reduction(Exp(-SqDist(x, y)) * b, %d)",
  "Min_ArgMin_Reduction(SqDist(x, y), %d)",
  "ArgKMin_Reduction(SqDist(x, y), 3, %d)",
  "KMin_ArgKMin_Reduction(SqDist(x, y), 3, %d)",
  "LogSumExp_Reduction(-SqDist(x, y), %d)",
  "SumSoftMaxWeight_Reduction(-SqDist(x, y), b, %d)"
)

# every family on both axes under options `opts` and under `ref_opts`
md_compare <- function(opts, ref_opts, exact = TRUE) {
  d <- md_data()
  args1 <- c("x=Vi(3)", "y=Vj(3)", "b=Vj(2)")
  args0 <- c("x=Vi(3)", "y=Vj(3)", "b=Vi(2)")
  for (f in md_forms) {
    for (axis in 0:1) {
      op <- keops_kernel(sprintf(f, axis), if (axis == 1) args1 else args0)
      input <- list(d$x, d$y, if (axis == 1) d$b else d$a)
      old <- set_rkeops_options(ref_opts)
      one <- op(input)
      set_rkeops_options(opts)
      split <- op(input)
      set_rkeops_options(old)
      if (exact) {
        expect_identical(split, one, label = sprintf(f, axis))
      } else {
        expect_equal(split, one, tolerance = 1e-13, label = sprintf(f, axis))
      }
      expect_equal(nrow(split), if (axis == 1) 101L else 67L)
    }
  }
}

test_that("two and three CPU partitions = one, every reduction family", {
  md_compare(list(backend = "CPU", device_id = c(0L, 0L)),
             list(backend = "CPU", device_id = 0L))
  md_compare(list(backend = "CPU", device_id = c(0L, 0L, 0L)),
             list(backend = "CPU", device_id = 0L))
})

test_that("the split happens: verbose names the parts; values vs dense R", {
  d <- md_data(M = 50, N = 40, seed = 3)
  old <- set_rkeops_options(list(backend = "CPU", device_id = c(0L, 0L)))
  on.exit(set_rkeops_options(old))
  op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)",
                     c("x=Vi(3)", "y=Vj(3)", "b=Vj(2)"))
  set_rkeops_options(list(verbosity = TRUE))
  msgs <- capture_messages(r <- op(list(d$x, d$y, d$b)))
  expect_true(any(grepl("50 rows in 2 parts (cpu)", msgs, fixed = TRUE)))
  set_rkeops_options(list(verbosity = FALSE))
  d2 <- outer(rowSums(d$x^2), rowSums(d$y^2), "+") - 2 * d$x %*% t(d$y)
  expect_equal(r, exp(-d2) %*% d$b, tolerance = 1e-12)
  # more parts than rows: empty parts compute nothing, the rows are right
  x1 <- d$x[1:2, , drop = FALSE]
  set_rkeops_options(list(device_id = rep(0L, 5)))
  expect_equal(op(list(x1, d$y, d$b)), exp(-d2[1:2, ]) %*% d$b,
               tolerance = 1e-12)
})

test_that("solve() on two CPU partitions = on one, and = base::solve", {
  skip_if_not(methods::existsMethod("solve", "LazyTensor"),
              "solve() is not in this build")
  set.seed(7)
  n <- 150
  X <- matrix(runif(n * 3), n, 3)
  B <- matrix(rnorm(n * 2), n, 2)
  K <- exp(-sqdist(Vi(X), Vj(X)) / 0.1)
  ref <- base::solve(exp(-as.matrix(dist(X))^2 / 0.1) + diag(0.01, n), B)
  old <- set_rkeops_options(list(backend = "CPU", device_id = 0L))
  on.exit(set_rkeops_options(old))
  one <- solve(K, B, alpha = 0.01, tol = 1e-8)
  set_rkeops_options(list(device_id = c(0L, 0L)))
  two <- solve(K, B, alpha = 0.01, tol = 1e-8)
  expect_lt(max(abs(two - ref)) / max(abs(ref)), 1e-6)
  expect_identical(as.vector(two), as.vector(one))
  expect_identical(attr(two, "iterations"), attr(one, "iterations"))
})

test_that("bad device lists are classed errors", {
  expect_error(set_rkeops_options(list(device_id = c(0, -1))),
               class = "rkeops_value_error")
  expect_error(set_rkeops_options(list(device_id = c(0, NA))),
               class = "rkeops_value_error")
  expect_error(set_rkeops_options(list(device_id = integer(0))),
               class = "rkeops_value_error")
  expect_error(rkeops_use_gpu(c(0, 1.5)), class = "rkeops_value_error")
  expect_error(rkeops_use_gpu("some"), class = "rkeops_value_error")
  expect_identical(get_rkeops_options("device_id"), 0L)
})

# ---- GPU (skips without one) ------------------------------------------------

md_gpus <- function() rkeops:::rk_state$gpu$count

test_that("GPU: a device that does not exist is a classed error", {
  skip_if(md_gpus() < 1L, "no usable GPU")
  old <- get_rkeops_options()
  on.exit(set_rkeops_options(old))
  expect_error(rkeops_use_gpu(c(0, md_gpus())), class = "rkeops_value_error")
  expect_identical(get_rkeops_options("device_id"), old$device_id)
})

test_that("GPU: a device listed again runs its parts on streams of their own", {
  skip_if(md_gpus() < 1L, "no usable GPU")
  old <- get_rkeops_options()
  on.exit(set_rkeops_options(old))
  set.seed(21)
  M <- 300001
  N <- 1500
  x <- matrix(runif(M * 3), M, 3)
  y <- matrix(runif(N * 3), N, 3)
  b <- matrix(rnorm(N * 2), N, 2)
  op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x, y) * 20) * b, 1)",
                     c("x=Vi(3)", "y=Vj(3)", "b=Vj(2)"))
  nn <- keops_kernel("ArgKMin_Reduction(SqDist(x, y), 4, 1)",
                     c("x=Vi(3)", "y=Vj(3)"))
  # the reference: every pair in float64, by blocks of rows in dense R
  ref <- matrix(0, M, 2)
  for (r0 in seq(1, M, by = 20000)) {
    r <- r0:min(M, r0 + 19999)
    xr <- x[r, , drop = FALSE]
    d2 <- outer(rowSums(xr^2), rowSums(y^2), "+") - 2 * xr %*% t(y)
    ref[r, ] <- exp(-20 * pmax(d2, 0)) %*% b
  }
  set_rkeops_options(list(backend = "GPU", device_id = c(0L, 0L),
                          verbosity = TRUE))
  msgs <- capture_messages(two <- op(list(x, y, b)))
  expect_true(any(grepl(
    "300001 rows in 2 parts (cuda), one thread each, a stream each",
    msgs, fixed = TRUE)))
  set_rkeops_options(list(verbosity = FALSE))
  expect_equal(two, ref, tolerance = 1e-12)
  for (prec in c("float32", "float64")) {
    set_rkeops_options(list(precision = prec, device_id = 0L))
    one <- op(list(x, y, b))
    k1 <- nn(list(x, y))
    tol <- if (prec == "float32") 1e-6 else 1e-12
    for (dev in list(c(0L, 0L), c(0L, 0L, 0L), rep(0L, 9))) {
      set_rkeops_options(list(device_id = dev))
      lab <- paste(prec, length(dev), "lanes")
      expect_equal(op(list(x, y, b)), one, tolerance = tol, label = lab)
      expect_equal(op(list(x, y, b)), ref, tolerance = 10 * tol, label = lab)
      expect_identical(nn(list(x, y)), k1, label = lab)
      # small calls (packed inputs, no staging) right after large ones
      expect_equal(op(list(x[1:7, ], y, b)), ref[1:7, ], tolerance = 10 * tol,
                   label = lab)
    }
    # blocks of rows and points on each lane (a small memory budget)
    withr::with_envvar(c(RKEOPS_CUDA_MEMORY_LIMIT = "3000000"), {
      set_rkeops_options(list(device_id = c(0L, 0L)))
      expect_equal(op(list(x, y, b)), ref, tolerance = 10 * tol,
                   label = paste(prec, "blocked"))
      expect_identical(nn(list(x, y)), k1, label = paste(prec, "blocked"))
    })
  }
})

test_that("GPU: device = c(0, 0) = device 0, every family and solve()", {
  skip_if(md_gpus() < 1L, "no usable GPU")
  old <- get_rkeops_options()
  on.exit(set_rkeops_options(old))
  md_compare(list(backend = "GPU", device_id = c(0L, 0L)),
             list(backend = "GPU", device_id = 0L), exact = FALSE)
  # "all": the rows over every GPU, against one GPU
  rkeops_use_gpu("all")
  expect_identical(get_rkeops_options("device_id"), seq_len(md_gpus()) - 1L)
  md_compare(list(backend = "GPU", device_id = seq_len(md_gpus()) - 1L),
             list(backend = "GPU", device_id = 0L), exact = FALSE)
  skip_if_not(methods::existsMethod("solve", "LazyTensor"),
              "solve() is not in this build")
  set.seed(8)
  n <- 300
  X <- matrix(runif(n * 3), n, 3)
  B <- matrix(rnorm(n), n, 1)
  K <- exp(-sqdist(Vi(X), Vj(X)) / 0.1)
  ref <- base::solve(exp(-as.matrix(dist(X))^2 / 0.1) + diag(0.01, n), B)
  rkeops_use_gpu(c(0, 0))
  two <- solve(K, B, alpha = 0.01, tol = 1e-8)
  expect_lt(max(abs(two - ref)) / max(abs(ref)), 1e-6)
})
