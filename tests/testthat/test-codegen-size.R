# test-codegen-size.R -- generated code grows with the formula, not with its
# dimensions (loops over components above cpu_unroll = 16 components), and
# a formula beyond what it may cost is refused with a classed error naming
# the limit (RK_CG_MAX_NODES, RK_CG_MAX_VALUES, RK_CG_MAX_BYTES, cg.h)
# instead of running the compiler for minutes.

src_bytes <- function(f, args, ...) nchar(rkeops:::rk_source(f, args, ...), "bytes")
xy_args <- function(d) c(sprintf("x=Vi(%d)", d), sprintf("y=Vj(%d)", d))

test_that("the generated source does not grow with the dimensions", {
  withr::local_envvar(RKEOPS_CPU_UNROLL = NA)
  forms <- c("Sum_Reduction(x * y, 1)", "Max_Reduction(x - y, 1)",
             "ArgKMin_Reduction(Exp(x * y), 3, 1)",
             "SumSoftMaxWeight_Reduction(SqDist(x, y), y, 1)")
  for (f in forms) for (be in c("CPU", "GPU")) {
    n <- vapply(c(17, 100, 1000, 5000), function(d) src_bytes(f, xy_args(d), backend = be), 0)
    # the same code but for the digits of the dimension (and, on CUDA, the
    # switch to registers without unrolling above 256 components, to
    # global memory above 384)
    expect_lt(n[4] - n[3], 100, label = paste(f, be))
    expect_lt(max(n) - min(n), 5000, label = paste(f, be))
  }
  # it used to write one statement per component: 59 MB at dimension 1e5
  expect_lt(src_bytes("Sum_Reduction(OneHot(x, 10000) * y, 1)", c("x=Vi(1)", "y=Vj(1)")), 40000)
  # below the threshold, one statement a component (no loop overhead)
  n3 <- src_bytes("Sum_Reduction(x * y, 1)", xy_args(3))
  n16 <- src_bytes("Sum_Reduction(x * y, 1)", xy_args(16))
  expect_gt(n16 - n3, 13 * 4 * 40)
})

test_that("the generated source is linear in the number of operations", {
  gauss <- function(n) sprintf("Sum_Reduction(%s, 1)",
                               paste(sprintf("Exp(-SqDist(x, y) * %d)", seq_len(n)), collapse = " + "))
  for (be in c("CPU", "GPU")) {
    n <- vapply(c(100, 200, 400), function(k) src_bytes(gauss(k), xy_args(3), backend = be), 0)
    per <- diff(n) / c(100, 200)
    expect_lt(abs(per[2] / per[1] - 1), 0.05, label = be)
    expect_lt(per[1], 2000, label = be) # bytes per term
  }
})

test_that("wide results computed in loops match dense R", {
  withr::local_envvar(RKEOPS_CPU_UNROLL = NA)
  set.seed(7)
  d <- 1000
  x <- matrix(rnorm(5 * d), 5)
  y <- matrix(rnorm(11 * d), 11) # 11 points: full vector groups and a masked tail
  op <- keops_kernel("Sum_Reduction(x * y, 1)", xy_args(d))
  expect_equal(op(list(x, y)), x * matrix(colSums(y), 5, d, byrow = TRUE), tolerance = 1e-13)
  ref_max <- t(vapply(1:5, function(i) apply(sweep(-y, 2, x[i, ], "+"), 2, max), numeric(d)))
  op <- keops_kernel("Max_Reduction(x - y, 1)", xy_args(d))
  expect_equal(op(list(x, y)), ref_max, tolerance = 1e-14)
  # kahan_scheme's compensated fast path, in a loop
  d <- 40
  x <- matrix(runif(5 * d), 5)
  y <- matrix(runif(13 * d), 13)
  op <- keops_kernel("Sum_Reduction(x * y, 1)", xy_args(d), sum_scheme = "kahan_scheme")
  expect_equal(op(list(x, y)), x * matrix(colSums(y), 5, d, byrow = TRUE), tolerance = 1e-13)
  # a weight of 40 components stored through a loop (the general path)
  op <- keops_kernel("SumSoftMaxWeight_Reduction(-SqDist(x, y), y, 1)", xy_args(d))
  D2 <- outer(rowSums(x^2), rowSums(y^2), "+") - 2 * x %*% t(y)
  W <- exp(-D2 - apply(-D2, 1, max))
  expect_equal(op(list(x, y)), (W %*% y) / rowSums(W), tolerance = 1e-12)
  # the first call at dimension 10000 (it did not finish compiling in 10 min)
  d <- 10000
  x <- matrix(rnorm(3 * d), 3)
  y <- matrix(rnorm(4 * d), 4)
  op <- keops_kernel("Sum_Reduction(x * y, 1)", xy_args(d))
  expect_equal(op(list(x, y)), x * matrix(colSums(y), 3, d, byrow = TRUE), tolerance = 1e-13)
})

test_that("cpu_unroll only changes how the code is written, not the values", {
  set.seed(8)
  x <- matrix(rnorm(6 * 5), 6)
  y <- matrix(rnorm(9 * 5), 9)
  f <- "Sum_Reduction(Exp(-SqDist(x, y)) * y, 1)"
  withr::local_envvar(RKEOPS_CPU_UNROLL = NA)
  a <- keops_kernel(f, xy_args(5))(list(x, y))
  src_a <- rkeops:::rk_source(f, xy_args(5))
  withr::local_envvar(RKEOPS_CPU_UNROLL = "0")
  src_b <- rkeops:::rk_source(f, xy_args(5))
  b <- keops_kernel(f, xy_args(5))(list(x, y))
  expect_match(src_b, "cpu_unroll=0 ;", fixed = TRUE)
  expect_match(src_b, "for (int rk_k = 0; rk_k < 5; rk_k++)", fixed = TRUE)
  expect_false(grepl("for (int rk_k = 0; rk_k < 5; rk_k++)", src_a, fixed = TRUE))
  expect_identical(a, b)
})

test_that("a block product with 1000 columns is one small kernel", {
  set.seed(9)
  X <- matrix(rnorm(40 * 3), 40)
  Y <- matrix(rnorm(30 * 3), 30)
  B <- matrix(rnorm(30 * 1000), 30)
  K <- exp(-sqdist(Vi(X), Vj(Y)))
  Kd <- exp(-(outer(rowSums(X^2), rowSums(Y^2), "+") - 2 * X %*% t(Y)))
  expect_equal(K %*% B, Kd %*% B, tolerance = 1e-12)
})

test_that("beyond what a formula may cost: classed errors naming the limit", {
  # the byte limit of the CPU source and the formula just below it are the
  # CPU backend's (with RKEOPS_TEST_BACKEND=GPU, NVRTC would compile the
  # 2000 terms, whose CUDA source is under the limit, for many minutes);
  # the CUDA source's limit is checked through rk_source(backend = "GPU")
  local_rk_cpu_only()
  expect_unsupported <- function(expr, pattern) {
    t <- system.time(e <- tryCatch(expr, error = identity))
    expect_s3_class(e, "rkeops_unsupported_error")
    expect_match(conditionMessage(e), pattern)
    expect_lt(t[["elapsed"]], 20) # refused before any compiler runs
  }
  one <- matrix(1, 2, 1)
  # values per point: a OneHot of 1e5 components (64 bytes a value on a
  # thread's stack)
  expect_unsupported(
    keops_kernel("Sum_Reduction(OneHot(x, 100000) * y, 1)", c("x=Vi(1)", "y=Vj(1)"))(list(one, one)),
    "200000 values per point, more than 65536 \\(the limit RK_CG_MAX_VALUES")
  # generated bytes: 2000 Gaussian terms (4.3 MB of C; 3000 took 60 s of gcc)
  gauss <- sprintf("Sum_Reduction(%s, 1)",
                   paste(sprintf("Exp(-SqDist(x, y) * %d)", 1:2000), collapse = " + "))
  expect_unsupported(keops_kernel(gauss, xy_args(3))(list(one %*% t(1:3), one %*% t(1:3))),
                     "generated CPU source is [0-9.]+ MB, more than 2.0 MB \\(the limit RK_CG_MAX_BYTES")
  gauss3 <- sprintf("Sum_Reduction(%s, 1)",
                    paste(sprintf("Exp(-SqDist(x, y) * %d)", 1:3000), collapse = " + "))
  expect_unsupported(rkeops:::rk_source(gauss3, xy_args(3), backend = "GPU"),
                     "generated CUDA source is [0-9.]+ MB, more than 2.0 MB \\(the limit RK_CG_MAX_BYTES")
  # operations: 35000 terms of two operations and an addition each
  big <- sprintf("Sum_Reduction(%s, 1)", paste(sprintf("Exp(x * %d)", 1:35000), collapse = " + "))
  expect_unsupported(rkeops:::rk_source(big, "x=Vi(1)"),
                     "104998 operations, more than 100000 \\(the limit RK_CG_MAX_NODES")
  # just below the byte limit, a formula still compiles and is right
  g500 <- sprintf("Sum_Reduction(%s, 1)",
                  paste(sprintf("Exp(-SqDist(x, y) * %d)", 1:500), collapse = " + "))
  x <- matrix(c(0.1, 0.2, 0.3), 1)
  y <- matrix(c(0.3, 0.1, 0.2, 0, 0, 0), 2, byrow = TRUE)
  d2 <- colSums((t(y) - as.vector(x))^2)
  expect_equal(as.vector(keops_kernel(g500, xy_args(3))(list(x, y))),
               sum(exp(-outer(d2, 1:500))), tolerance = 1e-12)
})
