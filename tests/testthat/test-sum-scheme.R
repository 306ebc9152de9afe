# test-sum-scheme.R -- the summation schemes (direct_sum, block_sum,
# kahan_scheme, auto) against float64 dense R references, on the CPU, and
# the CUDA source of each scheme compiled by NVRTC (no GPU needed).

gauss_ref <- function(x, y, s) {
  vapply(seq_len(nrow(x)), function(i)
    sum(exp(-colSums((t(y) - x[i, ])^2) * s)), 0)
}

with_precision <- function(prec, code) {
  old <- set_rkeops_options(list(precision = prec, backend = "CPU"))
  on.exit(set_rkeops_options(old))
  force(code)
}

test_that("block_sum in float32 at N = 1e6 is within 1e-6 of float64, direct_sum is worse", {
  set.seed(11)
  M <- 20; N <- 1e6
  x <- matrix(runif(M * 3), M, 3)
  y <- matrix(runif(N * 3), N, 3)
  # s = 1: a wide kernel (every term counts), s = 10: a Gaussian
  for (s in c(1, 10)) {
    r0 <- gauss_ref(x, y, s)
    f <- sprintf("Sum_Reduction(Exp(-SqDist(x, y) * %g), 1)", s)
    err <- vapply(c("direct_sum", "block_sum", "auto", "kahan_scheme"),
      function(sch) {
        op <- keops_kernel(f, c("x=Vi(3)", "y=Vj(3)"), sum_scheme = sch)
        r <- with_precision("float32", op(list(x, y)))
        max(abs(r - r0)) / max(abs(r0))
      }, 0)
    expect_lt(err[["block_sum"]], 1e-6)
    expect_lt(err[["auto"]], 1e-6)
    expect_lt(err[["kahan_scheme"]], 1e-6)
    # direct summation (float accumulator) is measurably worse
    expect_gt(err[["direct_sum"]], 4 * err[["block_sum"]])
    expect_gt(err[["direct_sum"]], 1e-7)
  }
})

test_that("every scheme sums over both directions, float32 and float64", {
  set.seed(12)
  x <- matrix(rnorm(300 * 2), 300, 2)
  y <- matrix(rnorm(5000 * 2), 5000, 2)
  b <- matrix(rnorm(5000 * 2), 5000, 2)
  ref1 <- exp(-as.matrix(dist(rbind(x, y)))[1:300, 301:5300]^2) %*% b
  ref0 <- t(exp(-as.matrix(dist(rbind(x, y)))[1:300, 301:5300]^2)) %*%
    x[, 1]
  for (sch in c("auto", "direct_sum", "block_sum", "kahan_scheme")) {
    op1 <- keops_kernel("Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)",
                        c("x=Vi(2)", "y=Vj(2)", "b=Vj(2)"), sum_scheme = sch)
    op0 <- keops_kernel("Sum_Reduction(Exp(-SqDist(x, y)) * Elem(x, 0), 0)",
                        c("x=Vi(2)", "y=Vj(2)"), sum_scheme = sch)
    for (prec in c("float64", "float32")) {
      tol <- if (prec == "float64") 1e-12 else 1e-5
      r1 <- with_precision(prec, op1(list(x, y, b)))
      r0 <- with_precision(prec, op0(list(x, y)))
      expect_lt(max(abs(r1 - ref1)) / max(abs(ref1)), tol,
                label = paste(sch, prec, "axis 1"))
      expect_lt(max(abs(r0 - ref0)) / max(abs(ref0)), tol,
                label = paste(sch, prec, "axis 0"))
    }
  }
})

test_that("the scheme is part of the kernel key and of the generated code", {
  f <- "Sum_Reduction(Exp(-SqDist(x, y)), 1)"
  args <- c("x=Vi(3)", "y=Vj(3)")
  src <- lapply(c(direct = "direct_sum", block = "block_sum", auto = "auto"),
                function(sch) rkeops:::rk_source(f, args, precision = "float32",
                                                 sum_scheme = sch))
  expect_match(src$direct, "scheme 1;", fixed = TRUE)
  expect_match(src$block, "scheme 2;", fixed = TRUE)
  # auto is block_sum: a double accumulator in float32
  expect_identical(src$auto, src$block)
  expect_match(src$block, "double acc[1];", fixed = TRUE)
  expect_false(grepl("double acc[1];", src$direct, fixed = TRUE))
})

test_that("the CUDA source of every scheme compiles with NVRTC", {
  desc <- tryCatch(rkeops:::rk_config()$description, error = function(e) "")
  skip_if_not(any(grepl("^NVRTC: [0-9]", strsplit(desc, "\n")[[1]])),
              "NVRTC not available")
  fs <- c("Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)",
          "Sum_Reduction(Exp(-SqDist(x, y)) * b, 0)",
          "LogSumExp_Reduction(-SqDist(x, y), 1)")
  for (sch in c("auto", "direct_sum", "block_sum", "kahan_scheme"))
    for (f in fs)
      for (prec in c(32L, 64L)) {
        res <- tryCatch(
          rkeops:::rk_nvrtc_check(f, c("x=Vi(3)", "y=Vj(3)", "b=Vj(2)"),
                                  precision = prec, major = 9L, minor = 0L,
                                  sum_scheme = sch),
          error = function(e) conditionMessage(e))
        expect_true(isTRUE(res), label = paste(f, sch, prec, res))
      }
})
