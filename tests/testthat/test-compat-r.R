# test-compat-r.R -- what R and KeOps users expect of the LazyTensor front
# end (issue 14 items 1, 4, 5, 9, 10; issue 17 items 6, 8, 11), every value
# against dense R.

set.seed(1414)
cr_M <- 7
cr_N <- 5
cr_X <- matrix(runif(cr_M * 3), cr_M, 3)
cr_Y <- matrix(runif(cr_N * 3), cr_N, 3)
cr_D2 <- outer(rowSums(cr_X^2), rowSums(cr_Y^2), "+") - 2 * cr_X %*% t(cr_Y)

cr_compiles <- function() rkeops:::rk_stats()[["compiles"]]

# ---- 14.1: numbers are parameters ---------------------------------------------

test_that("a bandwidth loop over 8 values compiles one kernel", {
  local_rk_cpu()
  old <- set_rkeops_cache_dir(tempfile("rkeops-cr-"))
  withr::defer(set_rkeops_cache_dir(old))
  clean_rkeops() # empties the memory cache too
  # a unique model (an unusual integer), so no earlier kernel serves it
  k <- sample(1000:9999, 1)
  x_i <- Vi(cr_X)
  y_j <- Vj(cr_Y)
  c0 <- cr_compiles()
  for (h in c(0.05, 0.1, 0.21, 0.33, 0.5, 0.77, 1.3, 2.9)) {
    res <- sum(exp(-sqdist(x_i, y_j) / h) * k, index = "j")
    expect_close(res, matrix(rowSums(exp(-cr_D2 / h) * k), ncol = 1),
                 1e-12, sprintf("h = %g", h))
  }
  expect_identical(cr_compiles() - c0, 1)
  expect_length(rkeops:::rk_cache_files(), 1L)
})

test_that("integers stay IntCst; no number is formatted into a formula", {
  x_i <- Vi(cr_X)
  y_j <- Vj(cr_Y)
  f <- function(lz) rkeops:::lt_reduction_parts(lz, "Sum", "j")
  expect_identical(f(x_i * 3 + y_j)$formula,
                   "Sum_Reduction(((v0 * IntCst(3)) + v1), 1)")
  p <- f(x_i * 0.25 + y_j)
  expect_identical(p$args, c("v0=Vi(3)", "v1=Pm(1)", "v2=Vj(3)"))
  expect_identical(p$input[[2]], 0.25)
  # OutDec and scipen change nothing (issue 17.8)
  local_rk_cpu()
  ref <- sum(exp(-sqdist(x_i, y_j) * 1e-300 + 0.5), index = "j")
  withr::with_options(list(OutDec = ",", scipen = 999), {
    got <- sum(exp(-sqdist(x_i, y_j) * 1e-300 + 0.5), index = "j")
    got2 <- sum(x_i * 1.5 + y_j, index = "j")
  })
  expect_identical(got, ref)
  withr::with_options(list(scipen = -10), {
    pw <- f(x_i^100000 + y_j)$formula
  })
  expect_identical(pw, "Sum_Reduction((Pow(v0, 100000) + v1), 1)")
  expect_close(got, matrix(cr_N * exp(0.5), cr_M, 1), 1e-12)
  expect_close(got2, 1.5 * cr_X * cr_N + matrix(colSums(cr_Y), cr_M, 3,
                                                 byrow = TRUE), 1e-12)
})

# ---- 14.4: shapes and base generics ---------------------------------------------

test_that("dim, nrow, ncol give c(M, N); get_inner_dim the inner dimension", {
  x_i <- Vi(cr_X)
  y_j <- Vj(cr_Y)
  K <- exp(-sqdist(x_i, y_j))
  expect_identical(dim(K), c(7L, 5L))
  expect_identical(nrow(K), 7L)
  expect_identical(ncol(K), 5L)
  expect_identical(get_inner_dim(K), 1L)
  expect_identical(get_inner_dim(x_i - y_j), 3L)
  expect_identical(dim(x_i), c(7L, NA))
  expect_identical(dim(Pm(1:2)), c(NA_integer_, NA_integer_))
  expect_error(get_inner_dim(cr_X), class = "rkeops_input_error")
})

test_that("t(K) swaps i and j", {
  local_rk_cpu()
  x_i <- Vi(cr_X)
  y_j <- Vj(cr_Y)
  K <- exp(-sqdist(x_i, y_j))
  tK <- t(K)
  expect_identical(dim(tK), c(5L, 7L))
  expect_close(sum(tK, index = "i"), matrix(rowSums(exp(-cr_D2))), 1e-12)
  expect_close(sum(tK, index = "j"), matrix(colSums(exp(-cr_D2))), 1e-12)
  expect_close(t(K) %*% rep(1, 7), matrix(colSums(exp(-cr_D2))), 1e-12)
  # t(K) and K can be combined: square symmetrised kernel
  S <- exp(-sqdist(x_i, Vj(cr_X)))
  Sd <- exp(-as.matrix(dist(cr_X))^2)
  expect_close(sum(S + t(S) * 2, index = "j"), matrix(rowSums(3 * Sd)), 1e-12)
  expect_close(as.matrix(t(K)), t(exp(-cr_D2)), 1e-12)
})

test_that("x[, k] and x[, a:b] select components from 1", {
  local_rk_cpu()
  x_i <- Vi(cr_X)
  y_j <- Vj(cr_Y)
  z_j <- Vj(rep(0, cr_N))
  one <- function(lz) sum(lz + z_j, index = "j") / cr_N
  expect_identical(x_i[, 2]@formula, elem(x_i, 1)@formula)
  expect_identical(x_i[, 2:3]@formula, extract(x_i, 1, 2)@formula)
  expect_close(one(x_i[, 2]), cr_X[, 2, drop = FALSE], 1e-12)
  expect_close(one(x_i[, 2:3]), cr_X[, 2:3], 1e-12)
  expect_close(one(x_i[, c(3, 1)]), cr_X[, c(3, 1)], 1e-12)
  expect_close(one(x_i[, -2]), cr_X[, -2], 1e-12)
  expect_close(one(x_i[, c(TRUE, FALSE, TRUE)]), cr_X[, c(1, 3)], 1e-12)
  expect_identical(get_inner_dim(x_i[, ]), 3L)
  expect_error(x_i[, 4], class = "rkeops_dim_error")
  expect_error(x_i[, 0], class = "rkeops_dim_error")
  expect_error(x_i[, c(1, -1)], class = "rkeops_dim_error")
  expect_error(x_i[1, ], class = "rkeops_input_error")
  expect_error(x_i[2], class = "rkeops_input_error")
})

test_that("the Summary group: sum, min, max, range, prod, and mean", {
  local_rk_cpu()
  x_i <- Vi(cr_X)
  y_j <- Vj(cr_Y)
  E <- x_i - y_j # 7 x 5 x 3
  dense <- function(f) {
    sapply(1:3, function(c) apply(outer(cr_X[, c], cr_Y[, c], "-"), 1, f))
  }
  dense_i <- function(f) {
    sapply(1:3, function(c) apply(outer(cr_X[, c], cr_Y[, c], "-"), 2, f))
  }
  expect_close(sum(E, index = "j"), dense(sum), 1e-12)
  expect_close(min(E, index = "j"), dense(min), 1e-12)
  expect_close(max(E, "i"), dense_i(max), 1e-12)
  expect_close(range(E, index = "j"), cbind(dense(min), dense(max)), 1e-12)
  expect_close(prod(E, index = "j"), dense(prod), 1e-12)
  expect_close(prod(E, index = "i"), dense_i(prod), 1e-12)
  expect_close(mean(E, index = "j"), dense(mean), 1e-12)
  expect_close(mean(E, index = "i"), dense_i(mean), 1e-12)
  # a zero factor gives 0; NaN propagates
  Z <- Vj(c(2, 0, -3, 1, 1))
  expect_identical(as.vector(prod(x_i[, 1] * Z, index = "j")), rep(0, cr_M))
  expect_close(prod(x_i[, 1] - Z, index = "j"),
               matrix(apply(outer(cr_X[, 1], c(2, 0, -3, 1, 1), "-"), 1, prod)),
               1e-12)
  # symbolic forms on the inner dimension
  z_j <- Vj(rep(0, cr_N))
  one <- function(lz) sum(lz + z_j, index = "j") / cr_N
  expect_close(one(range(x_i)), t(apply(cr_X, 1, range)), 1e-12)
  expect_close(one(prod(x_i)), matrix(apply(cr_X, 1, prod)), 1e-12)
  expect_close(one(mean(x_i)), matrix(rowMeans(cr_X)), 1e-12)
  expect_error(any(E), class = "rkeops_op_error")
  expect_error(sum(E, index = "j", na.rm = TRUE), class = "rkeops_input_error")
  expect_error(min(E, index = "j", sum_scheme = "kahan_scheme"),
               class = "rkeops_input_error")
  expect_error(mean(E, index = "k"), class = "rkeops_index_error")
})

test_that("rowSums, colSums, rowMeans, colMeans of a scalar LazyTensor", {
  local_rk_cpu()
  X <- cr_X
  rownames(X) <- paste0("p", 1:7)
  K <- exp(-sqdist(Vi(X), Vj(cr_Y)))
  Kd <- exp(-cr_D2)
  rownames(Kd) <- rownames(X)
  expect_equal(rowSums(K), rowSums(Kd), tolerance = 1e-12)
  expect_identical(names(rowSums(K)), rownames(X))
  expect_equal(colSums(K), colSums(Kd), tolerance = 1e-12)
  expect_equal(rowMeans(K), rowMeans(Kd), tolerance = 1e-12)
  expect_equal(colMeans(K), colMeans(Kd), tolerance = 1e-12)
  expect_true(abs(rowSums(K)[[3]] - sum(Kd[3, ])) < 1e-12)
  expect_error(rowSums(Vi(X) - Vj(cr_Y)), class = "rkeops_dim_error")
})

test_that("as.matrix materialises a small K, refuses a large one", {
  local_rk_cpu()
  X <- cr_X
  Y <- cr_Y
  rownames(X) <- letters[1:7]
  rownames(Y) <- LETTERS[1:5]
  K <- exp(-sqdist(Vi(X), Vj(Y)) / 0.7) * Vj(1:5)
  ref <- exp(-cr_D2 / 0.7) * matrix(1:5, 7, 5, byrow = TRUE)
  dimnames(ref) <- list(letters[1:7], LETTERS[1:5])
  expect_close(as.matrix(K), ref, 1e-12)
  expect_identical(dimnames(as.matrix(K)), dimnames(ref))
  # base functions that call base::as.matrix (S3) see the same matrix
  expect_equal(apply(K, 1, max), apply(ref, 1, max), tolerance = 1e-12)
  expect_close(as.array(K), ref, 1e-12)
  # a missing index is one row / column
  expect_close(as.matrix(sqnorm2(Vi(cr_X))), matrix(rowSums(cr_X^2)), 1e-12)
  big <- exp(-sqdist(Vi(matrix(0, 4000, 1)), Vj(matrix(0, 3000, 1))))
  expect_error(as.matrix(big), class = "rkeops_memory_error")
  expect_error(as.matrix(Vi(cr_X) - Vj(cr_Y)), class = "rkeops_dim_error")
})

test_that("unsupported base functions are classed rkeops errors", {
  K <- exp(-sqdist(Vi(cr_X), Vj(cr_Y)))
  for (f in list(Re, Im, Mod, Arg, Conj, as.vector, as.numeric, as.integer,
                 as.logical, as.character, diag, crossprod, tcrossprod,
                 determinant, chol, qr, svd, cumsum)) {
    err <- expect_error(f(K), class = "rkeops_op_error")
    expect_s3_class(err, "rkeops_error")
    expect_false(grepl("S4", conditionMessage(err)))
  }
  expect_error(det(K), class = "rkeops_op_error")
})

# ---- 14.5: R-shaped results --------------------------------------------------

test_that("arg-reductions give integer matrices, NA for all-NaN rows", {
  local_rk_cpu()
  x_i <- Vi(cr_X)
  y_j <- Vj(cr_Y)
  D <- sqdist(x_i, y_j)
  a <- argmin(D, "j")
  expect_type(a, "integer")
  expect_identical(a, matrix(apply(cr_D2, 1, which.min)))
  expect_identical(argmax(D, "i"), matrix(apply(cr_D2, 2, which.max)))
  ak <- argKmin(D, 2, "j")
  expect_type(ak, "integer")
  expect_identical(ak, t(apply(cr_D2, 1, order))[, 1:2])
  ma <- min_argmin(D, "j")
  expect_type(ma$indices, "integer")
  expect_type(Kmin_argKmin(D, 2, "i")$indices, "integer")
  expect_type(max_argmax(D, "i")$indices, "integer")
  # rows of NaN: NA indices; rows with some NaN: the index of the minimum
  v <- c(NaN, 2, NaN, 1)
  Xn <- matrix(c(0, NaN, 0), 3, 1)
  F <- Vi(Xn) + Vj(v)
  expect_identical(argmin(F, "j"), matrix(c(4L, NA, 4L)))
  expect_identical(argmax(F, "j"), matrix(c(2L, NA, 2L)))
  expect_identical(min_argmin(F, "j")$indices, matrix(c(4L, NA, 4L)))
  expect_identical(argKmin(F, 2, "j"),
                   matrix(c(4L, NA, 4L, 2L, NA, 2L), 3, 2))
})

test_that("row names of the data carry over to result rows", {
  local_rk_cpu()
  X <- cr_X
  rownames(X) <- paste0("x", 1:7)
  Y <- cr_Y
  rownames(Y) <- paste0("y", 1:5)
  D <- sqdist(Vi(X), Vj(Y))
  expect_identical(rownames(sum(D, "j")), rownames(X))
  expect_identical(rownames(argmin(D, "j")), rownames(X))
  expect_identical(rownames(Kmin_argKmin(D, 2, "j")$indices), rownames(X))
  expect_identical(rownames(min(D, "i")), rownames(Y))
  expect_identical(rownames(exp(-D) %*% rep(1, 5)), rownames(X))
  expect_close(unname(sum(D, "j")), matrix(rowSums(cr_D2)), 1e-12)
  # a data frame's row names too
  df <- as.data.frame(X)
  expect_identical(rownames(sum(sqdist(Vi(df), Vj(Y)), "j")), rownames(X))
  expect_null(rownames(sum(sqdist(Vi(cr_X), Vj(Y)), "j")))
})

test_that("data frames, Matrix objects, zero rows", {
  local_rk_cpu()
  err <- expect_error(Vi(datasets::iris), class = "rkeops_input_error")
  expect_match(conditionMessage(err), "Species")
  expect_error(Vj(data.frame(a = 1:3, b = letters[1:3])),
               class = "rkeops_input_error")
  ir <- datasets::iris[1:20, 1:4]
  x_i <- Vi(ir)
  expect_identical(get_inner_dim(x_i), 4L)
  I <- as.matrix(ir)
  d2 <- as.matrix(dist(I))^2
  expect_close(unname(sum(exp(-sqdist(x_i, Vj(ir))), "j")),
               matrix(rowSums(exp(-d2))), 1e-12)
  skip_if_not_installed("Matrix")
  MX <- Matrix::Matrix(cr_X)
  expect_true(methods::is(MX, "denseMatrix"))
  expect_close(sum(sqdist(Vi(MX), Vj(cr_Y)), "j"), matrix(rowSums(cr_D2)),
               1e-12)
  expect_error(Vi(Matrix::Matrix(c(0, 1, 0, 0), 2, sparse = TRUE)),
               class = "rkeops_input_error")
  # zero rows, as keops_kernel does
  z_i <- Vi(matrix(0, 0, 3))
  expect_identical(dim(z_i), c(0L, NA))
  r <- sum(sqdist(z_i, Vj(cr_Y)), "j")
  expect_identical(dim(r), c(0L, 1L))
  expect_identical(sum(sqdist(Vi(cr_X), Vj(matrix(0, 0, 3))), "j"),
                   matrix(0, cr_M, 1))
})

# ---- 14.9: functions of ordinary numbers -----------------------------------------

test_that("square, inv, relu, xlogx, sinxdivx, rsqrt on numbers", {
  expect_identical(square(2), 4)
  expect_identical(inv(4), 0.25)
  expect_identical(relu(-1), 0)
  expect_identical(xlogx(2), 2 * log(2))
  expect_identical(sinxdivx(0), 1)
  expect_identical(rsqrt(4), 0.5)
  m <- matrix(c(-2, 0, 0.5, 3), 2)
  expect_identical(square(m), m^2)
  expect_identical(relu(m), matrix(c(0, 0, 0.5, 3), 2))
  expect_identical(inv(c(a = 2, b = 4)), c(a = 0.5, b = 0.25))
  expect_identical(xlogx(c(0, 1, 3)), c(0, 0, 3 * log(3)))
  expect_identical(sinxdivx(c(0, pi / 2)), c(1, sin(pi / 2) / (pi / 2)))
  expect_identical(rsqrt(c(0, 4, 16)), c(0, 0.5, 0.25))
  expect_identical(square(1:3), c(1, 4, 9))
  expect_s4_class(square(Vi(cr_X)), "LazyTensor")
  expect_error(square("a"), class = "rkeops_input_error")
})

# ---- 14.10: sum schemes --------------------------------------------------------

test_that("sum_scheme reaches the kernel: kahan differs from direct in float32", {
  # on the CPU, whose direct sum accumulates each row sequentially (a GPU
  # run splits the sum into parts, which hides part of the loss)
  local_rk_cpu_only(prec = 32)
  N <- 20001
  b <- c(1e8, rep(1, N - 1)) # exact in float32; the 1's vanish in a plain sum
  x_i <- Vi(matrix(0, 3, 1))
  b_j <- Vj(b)
  exact <- 1e8 + N - 1
  direct <- sum(x_i + b_j, index = "j", sum_scheme = "direct_sum")
  kahan <- sum(x_i + b_j, index = "j", sum_scheme = "kahan_scheme")
  expect_identical(as.vector(kahan), rep(exact, 3))
  expect_true(all(abs(direct - exact) > 16))
  expect_identical(sum_reduction(x_i + b_j, "j", sum_scheme = "kahan_scheme"),
                   kahan)
  # K %*% B follows the option
  K <- x_i + 0 * b_j + 1
  old <- set_rkeops_options(list(sum_scheme = "kahan_scheme"))
  withr::defer(set_rkeops_options(old))
  expect_identical(as.vector(K %*% b), rep(exact, 3))
  set_rkeops_options(list(sum_scheme = "direct_sum"))
  expect_true(all(abs(K %*% b - exact) > 16))
  expect_identical(as.vector(mean(x_i + b_j, "j", sum_scheme = "kahan_scheme")),
                   rep(exact / N, 3))
  expect_error(sum(x_i + b_j, "j", sum_scheme = "fast"),
               class = "rkeops_value_error")
  expect_error(set_rkeops_options(list(sum_scheme = "fast")),
               class = "rkeops_value_error")
  expect_error(sum(x_i, sum_scheme = "kahan_scheme"),
               class = "rkeops_input_error")
})

# ---- 17.6: clean_rkeops ------------------------------------------------------

test_that("clean_rkeops() deletes the cache's files and nothing else", {
  local_rk_cpu_only()
  dir <- tempfile("rkeops-clean-")
  old <- set_rkeops_cache_dir(dir)
  withr::defer({
    set_rkeops_cache_dir(old)
    unlink(dir, recursive = TRUE)
  })
  clean_rkeops()
  k <- sample(1000:9999, 1)
  sum(Vi(cr_X) * k + Vj(cr_Y), index = "j")
  hex <- paste(rep("0123456789abcdef", 2), collapse = "")
  mine <- file.path(dir, c(paste0(hex, "_mine.txt"), paste0(hex, ".so.bak"),
                           paste0(hex, ".txt"), "tmp-notes.c",
                           "tmp-1-2-0123456789abcdef.c.orig"))
  for (f in mine) writeLines("mine", f)
  dir.create(file.path(dir, paste0(hex, ".so")))   # a directory, not ours
  # leftovers of an interrupted compile: this process and a dead one
  dead <- 2^22 + 12345
  left <- file.path(dir, c(
    sprintf("tmp-%d-7-0123456789abcdef.c", Sys.getpid()),
    sprintf("tmp-%d-1-fedcba9876543210.so", dead),
    sprintf("tmp-%d-1-fedcba9876543210.log", dead)))
  for (f in left) writeLines("x", f)
  kernels <- list.files(dir, pattern = "^[0-9a-f]{32}\\.so$")
  kernels <- kernels[file_test("-f", file.path(dir, kernels))]
  expect_length(kernels, 1L)
  n <- clean_rkeops()
  expect_identical(n, 4L)
  expect_true(all(file.exists(mine)))
  expect_true(dir.exists(file.path(dir, paste0(hex, ".so"))))
  expect_false(any(file.exists(left)))
  expect_false(file.exists(file.path(dir, kernels)))
})

# ---- 17.8: edges ------------------------------------------------------------------

test_that("formulas over 10 kB compute", {
  local_rk_cpu()
  x_i <- Vi(cr_X[, 1])
  y_j <- Vj(cr_Y[, 1])
  f <- x_i - y_j
  for (k in 1:700) f <- f + x_i * k
  expect_gt(nchar(rkeops:::lt_reduction_parts(f, "Sum", "j")$formula), 10000)
  ref <- outer(cr_X[, 1] * (1 + sum(1:700)), cr_Y[, 1], "-")
  expect_close(sum(f, index = "j"), matrix(rowSums(ref)), 1e-12)
  expect_close(sum(f, index = "j"), matrix(rowSums(ref)), 1e-12) # cached
})

test_that("a relative cache_dir is fixed when set; '-' never reaches the compiler", {
  local_rk_options()
  wd <- tempfile("rkeops-wd-")
  dir.create(wd)
  withr::defer(unlink(wd, recursive = TRUE))
  withr::with_dir(wd, set_rkeops_cache_dir("-cache"))
  got <- get_rkeops_cache_dir()
  expect_true(startsWith(got, "/"))
  expect_identical(basename(got), "-cache")
  expect_identical(normalizePath(dirname(got)), normalizePath(wd))
  withr::with_dir(tempdir(), expect_identical(get_rkeops_cache_dir(), got))
  local_rk_cpu_only()
  clean_rkeops()
  k <- sample(1000:9999, 1)
  expect_close(sum(Vi(cr_X) * k + Vj(cr_Y), index = "j"),
               k * cr_X * cr_N + matrix(colSums(cr_Y), cr_M, 3, byrow = TRUE),
               1e-12)
  expect_length(list.files(got, pattern = "^[0-9a-f]{32}\\.so$"), 1L)
})

test_that("huge K and D are classed errors", {
  D <- sqdist(Vi(cr_X), Vj(cr_Y))
  expect_error(argKmin(D, K = 1e10, "j"), class = "rkeops_input_error")
  expect_error(Kmin(D, K = -1e10, "j"), class = "rkeops_input_error")
  expect_error(one_hot(Vi(c(0, 1)), 2^31), class = "rkeops_input_error")
  expect_error(elem(Vi(cr_X), 1e12), class = "rkeops_input_error")
})

# ---- 17.11: check_rkeops ---------------------------------------------------------

test_that("check_rkeops() states each reason once and computes", {
  local_rk_cpu()
  out <- capture.output(ok <- check_rkeops())
  expect_true(ok)
  expect_true(any(grepl("test reduction: relative error .* \\(OK\\)", out)))
  cfg <- rkeops:::rk_config()
  if (cfg$gpu_count == 0L && nzchar(cfg$gpu_why)) {
    expect_identical(sum(grepl(cfg$gpu_why, out, fixed = TRUE)), 1L)
  }
  hints <- rkeops:::rk_check_hints(
    c("NVRTC: not available (NVRTC (libnvrtc.so) not found in x)"),
    list(gpu_count = 0L, gpu_why = "no CUDA driver: libcuda.so.1 missing"))
  expect_length(hints, 2L)
  expect_match(hints[1], "CUDA_HOME")
  # the engine's own message already says how to get NVRTC: not repeated
  hints2 <- rkeops:::rk_check_hints(
    c("NVRTC: not available (not found; install NVRTC ... set CUDA_HOME)"),
    list(gpu_count = 0L, gpu_why = "no CUDA driver: libcuda.so.1 missing"))
  expect_length(hints2, 1L)
  expect_match(hints2, "libcuda.so.1")
  expect_length(rkeops:::rk_check_hints("NVRTC: 12.0 (libnvrtc.so)",
                                        list(gpu_count = 1L, gpu_why = "")), 0L)
  expect_identical(capture.output(check_rkeops(verbose = FALSE)), character())
})
