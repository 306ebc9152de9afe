# test-kernel-api.R -- keops_kernel(): the operator object, input checking
# (classes and culprit names), layouts, integer and zero-row inputs,
# saveRDS()/readRDS(), and rk_reduce() with formula_only.

kk_local <- function(env = parent.frame()) {
  old <- get_rkeops_options()
  withr::defer(set_rkeops_options(old), envir = env)
  rkeops_use_cpu()
  rkeops_use_float64()
  rkeops_disable_verbosity()
  invisible(old)
}

gauss_formula <- "Sum_Reduction(Exp(-SqDist(x, y) / s) * b, 1)"
gauss_args <- c("x=Vi(3)", "y=Vj(3)", "b=Vj(2)", "s=Pm(1)")

gauss_dense <- function(x, y, b, s) {
  d2 <- outer(rowSums(x^2), rowSums(y^2), "+") - 2 * x %*% t(y)
  exp(-d2 / s) %*% b
}

gauss_data <- function(m = 40, n = 55, seed = 1) {
  set.seed(seed)
  list(
    x = matrix(rnorm(m * 3), m, 3),
    y = matrix(rnorm(n * 3), n, 3),
    b = matrix(rnorm(n * 2), n, 2),
    s = 1.7
  )
}

test_that("keops_kernel() returns an operator with its metadata", {
  op <- keops_kernel(gauss_formula, gauss_args)
  expect_s3_class(op, "rkeops_operator")
  expect_true(is.function(op))
  expect_identical(names(formals(op)), c("input", "inner_dim"))
  expect_identical(attr(op, "formula"), gauss_formula)
  expect_identical(attr(op, "args"), gauss_args)
  expect_identical(attr(op, "sum_scheme"), "auto")
  expect_identical(attr(op, "axis"), 1L)
  expect_identical(attr(op, "outdim"), 2L)
  expect_identical(attr(op, "outkind"), 0L)
  vars <- attr(op, "vars")
  expect_identical(vars$name, c("x", "y", "b", "s"))
  expect_identical(vars$dim, c(3L, 3L, 2L, 1L))
  expect_identical(vars$cat, c("i", "j", "j", "p"))
  expect_match(attr(op, "canonical"), "^Sum_Reduction\\(")
  expect_output(print(op), "rkeops operator")
})

test_that("a Gaussian kernel sum matches the dense computation", {
  kk_local()
  d <- gauss_data()
  op <- keops_kernel(gauss_formula, gauss_args)
  res <- op(list(d$x, d$y, d$b, d$s))
  expect_true(is.matrix(res) && is.double(res))
  expect_identical(dim(res), c(40L, 2L))
  ref <- gauss_dense(d$x, d$y, d$b, d$s)
  expect_lt(max(abs(res - ref)) / max(abs(ref)), 1e-12)
  # every sum scheme gives the same answer
  for (scheme in c("direct_sum", "block_sum", "kahan_scheme")) {
    op2 <- keops_kernel(gauss_formula, gauss_args, sum_scheme = scheme)
    expect_lt(max(abs(op2(list(d$x, d$y, d$b, d$s)) - ref)) / max(abs(ref)), 1e-12)
  }
  # float32
  rkeops_use_float32()
  res32 <- op(list(d$x, d$y, d$b, d$s))
  expect_lt(max(abs(res32 - ref)) / max(abs(ref)), 1e-4)
})

test_that("axis 0 reduces over i", {
  kk_local()
  d <- gauss_data(m = 13, n = 21)
  op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x, y) / s) * a, 0)",
                     c("x=Vi(3)", "y=Vj(3)", "a=Vi(1)", "s=Pm(1)"))
  a <- rnorm(13)
  res <- op(list(d$x, d$y, a, d$s))
  expect_identical(dim(res), c(21L, 1L))
  ref <- gauss_dense(d$y, d$x, a, d$s)
  expect_lt(max(abs(res - ref)) / max(abs(ref)), 1e-12)
})

test_that("inner_dim = 'row' equals inner_dim = 'col'", {
  kk_local()
  d <- gauss_data()
  op <- keops_kernel(gauss_formula, gauss_args)
  r_col <- op(list(d$x, d$y, d$b, d$s), inner_dim = "col")
  r_row <- op(list(t(d$x), t(d$y), t(d$b), d$s), inner_dim = "row")
  expect_equal(r_row, r_col, tolerance = 1e-14)
  expect_identical(dim(r_row), c(40L, 2L))
  # a dim-1 variable given as a plain vector works in both layouts
  op1 <- keops_kernel("Sum_Reduction(Exp(-Square(x - y)) * b, 1)",
                      c("x=Vi(1)", "y=Vj(1)", "b=Vj(1)"))
  x <- rnorm(9); y <- rnorm(7); b <- rnorm(7)
  ref <- exp(-outer(x, y, "-")^2) %*% b
  expect_equal(op1(list(x, y, b)), ref, tolerance = 1e-13)
  expect_equal(op1(list(x, y, b), inner_dim = "row"), ref, tolerance = 1e-13)
  expect_error(op(list(d$x, d$y, d$b, d$s), inner_dim = "diag"),
               class = "rkeops_value_error")
  expect_error(op(list(d$x, d$y, d$b, d$s), inner_dim = "row"),
               class = "rkeops_dim_error")
})

test_that("integer input is accepted and converted", {
  kk_local()
  op <- keops_kernel("Sum_Reduction(x * y, 1)", c("x=Vi(2)", "y=Vj(2)"))
  xi <- matrix(1:6, 3, 2)
  yi <- matrix(7:10, 2, 2)
  res <- op(list(xi, yi))
  expect_identical(dim(res), c(3L, 2L))
  expect_equal(res, xi * matrix(colSums(yi), 3, 2, byrow = TRUE))
  expect_equal(op(list(xi, yi)), op(list(xi * 1.0, yi * 1.0)))
  # an integer parameter
  ops <- keops_kernel("Sum_Reduction(x * s, 1)", c("x=Vi(1)", "y=Vj(1)", "s=Pm(2)"))
  expect_equal(ops(list(1:3, 1:4, c(2L, 3L))),
               cbind(4 * 2 * (1:3), 4 * 3 * (1:3)))
})

test_that("zero-row inputs give zero-row results", {
  kk_local()
  op <- keops_kernel(gauss_formula, gauss_args)
  d <- gauss_data()
  res <- op(list(d$x[0, , drop = FALSE], d$y, d$b, d$s))
  expect_identical(dim(res), c(0L, 2L))
  expect_true(is.double(res))
  res <- op(list(t(d$x[0, , drop = FALSE]), t(d$y), t(d$b), d$s), inner_dim = "row")
  expect_identical(dim(res), c(0L, 2L))
})

test_that("inputs are checked in R, naming the culprit", {
  kk_local()
  d <- gauss_data()
  op <- keops_kernel(gauss_formula, gauss_args)
  # number of inputs
  expect_error(op(list(d$x, d$y, d$b)), class = "rkeops_input_error")
  expect_error(op(list(d$x, d$y, d$b)), "4 variables")
  expect_error(op(d$x), class = "rkeops_input_error")
  # type
  expect_error(op(list(d$x, "y", d$b, d$s)), class = "rkeops_input_error")
  expect_error(op(list(d$x, "y", d$b, d$s)), "`y`")
  expect_error(op(list(d$x, d$y, d$b > 0, d$s)), "`b`")
  expect_error(op(list(d$x, d$y, d$b, NULL)), "`s`")
  expect_error(op(list(d$x + 0i, d$y, d$b, d$s)), class = "rkeops_input_error")
  expect_error(op(list(d$x + 0i, d$y, d$b, d$s)), "`x` is complex")
  # dimensions versus declarations
  expect_error(op(list(d$x[, 1:2], d$y, d$b, d$s)), class = "rkeops_dim_error")
  expect_error(op(list(d$x[, 1:2], d$y, d$b, d$s)), "`x` is declared Vi\\(3\\) but has 2 columns")
  expect_error(op(list(d$x, d$y, d$b[, 1], d$s)), class = "rkeops_dim_error")
  expect_error(op(list(d$x, d$y, d$b[, 1], d$s)), "`b`")
  expect_error(op(list(d$x, d$y, d$b, c(1, 2))), class = "rkeops_dim_error")
  expect_error(op(list(d$x, d$y, d$b, c(1, 2))), "`s` is declared Pm\\(1\\)")
  expect_error(op(list(array(0, c(2, 2, 3)), d$y, d$b, d$s)), class = "rkeops_dim_error")
  # inconsistent numbers of points
  expect_error(op(list(d$x, d$y, d$b[-1, ], d$s)), class = "rkeops_dim_error")
  expect_error(op(list(d$x, d$y, d$b[-1, ], d$s)), "`y` has 55, `b` has 54")
})

test_that("inputs may be given by name in any order", {
  kk_local()
  d <- gauss_data()
  op <- keops_kernel(gauss_formula, gauss_args)
  ref <- op(list(d$x, d$y, d$b, d$s))
  expect_equal(op(list(s = d$s, b = d$b, x = d$x, y = d$y)), ref)
  # a data frame is a matrix
  op1 <- keops_kernel("Sum_Reduction(x * y, 1)", c("x=Vi(2)", "y=Vj(2)"))
  df <- data.frame(a = c(1, 2), b = c(3, 4))
  expect_equal(op1(list(df, as.matrix(df))), op1(list(as.matrix(df), as.matrix(df))))
})

test_that("positional declarations and Arg reductions (1-based)", {
  kk_local()
  op <- keops_kernel("ArgMin_Reduction(SqDist(x, y), 1)", c("x=Vi(0,2)", "y=Vj(1,2)"))
  set.seed(4)
  x <- matrix(rnorm(20), 10, 2)
  y <- matrix(rnorm(30), 15, 2)
  res <- op(list(x, y))
  d2 <- outer(rowSums(x^2), rowSums(y^2), "+") - 2 * x %*% t(y)
  expect_identical(attr(op, "outkind"), 1L)
  expect_equal(res[, 1], apply(d2, 1, which.min))
})

test_that("the compiled kernel is reused", {
  kk_local()
  op <- keops_kernel("Sum_Reduction(Exp(x * y) * IntCst(3), 1)", c("x=Vi(1)", "y=Vj(1)"))
  op(list(0.1, 0.2))
  n <- rkeops:::rk_stats()[["compiles"]]
  op2 <- keops_kernel("Sum_Reduction(Exp(x * y) * IntCst(3), 1)", c("x=Vi(1)", "y=Vj(1)"))
  expect_equal(op2(list(c(0.1, 0.5), 0.2))[, 1], 3 * exp(c(0.1, 0.5) * 0.2))
  expect_identical(rkeops:::rk_stats()[["compiles"]], n)
})

test_that("an operator survives saveRDS()/readRDS()", {
  kk_local()
  d <- gauss_data(m = 7, n = 9)
  op <- keops_kernel(gauss_formula, gauss_args)
  ref <- op(list(d$x, d$y, d$b, d$s))
  f <- tempfile(fileext = ".rds")
  on.exit(unlink(f), add = TRUE)
  saveRDS(op, f)
  op2 <- readRDS(f)
  expect_true(rkeops:::ffi_ptr_is_null_r(op2))
  expect_equal(op2(list(d$x, d$y, d$b, d$s)), ref)
  expect_false(rkeops:::ffi_ptr_is_null_r(op2))
})

test_that("rk_reduce() caches parsed formulas and honours formula_only", {
  kk_local()
  d <- gauss_data(m = 6, n = 8)
  res <- rkeops:::rk_reduce(gauss_formula, gauss_args, list(d$x, d$y, d$b, d$s))
  expect_lt(max(abs(res - gauss_dense(d$x, d$y, d$b, d$s))), 1e-12)
  key_count <- length(ls(rkeops:::rk_state$parsed))
  res2 <- rkeops:::rk_reduce(gauss_formula, gauss_args, list(d$x, d$y, d$b, d$s))
  expect_identical(res2, res)
  expect_identical(length(ls(rkeops:::rk_state$parsed)), key_count)
  set_rkeops_options(list(formula_only = TRUE))
  expect_identical(
    rkeops:::rk_reduce(gauss_formula, gauss_args, list(d$x, d$y, d$b, d$s)),
    gauss_formula
  )
  set_rkeops_options(list(formula_only = FALSE))
  expect_error(rkeops:::rk_reduce("Sum_Reduction(x +, 1)", "x=Vi(1)", list(1)),
               class = "rkeops_parse_error")
})

test_that("generated source is available for inspection", {
  kk_local()
  op <- keops_kernel(gauss_formula, gauss_args)
  src <- rkeops:::rk_source(op)
  expect_type(src, "character")
  expect_gt(nchar(src), 100)
})

test_that("a call does not copy the caller's matrices or vectors", {
  skip_if_not(capabilities("profmem"), "R without memory profiling (tracemem)")
  op <- keops_kernel("Sum_Reduction(x * Sum(y) + Elem(z, 1), 1)",
                     c("x=Vi(1)", "y=Vj(3)", "z=Vi(2)"))
  x <- runif(2e4)
  y <- matrix(runif(30), 10, 3)
  z <- matrix(runif(4e4), 2e4, 2)
  dimnames(z) <- list(NULL, c("a", "b")) # attributes do not force a copy either
  tracemem(x)
  tracemem(z)
  on.exit({
    untracemem(x)
    untracemem(z)
  })
  out <- capture.output(r <- op(list(x, y, z)))
  expect_false(any(grepl("tracemem", out)), info = paste(out, collapse = "\n"))
  expect_equal(r[, 1], x * sum(y) + 10 * z[, 2], tolerance = 1e-12) # 10 j-points
  # the copy-free inputs are still checked: a vector of the wrong length
  expect_error(op(list(x[-1], y, z)), class = "rkeops_error")
})
