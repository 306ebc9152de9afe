# test-options.R -- options: defaults, round-trips, validation, verbosity,
# the cache directory helpers.

opt_local <- function(env = parent.frame()) {
  old <- get_rkeops_options()
  withr::defer(set_rkeops_options(old), envir = env)
  invisible(old)
}

test_that("defaults follow the API", {
  opts <- get_rkeops_options()
  expect_setequal(
    names(opts),
    c("backend", "device_id", "precision", "verbosity", "cache_dir",
      "formula_only", "ncore", "sum_scheme")
  )
  expect_true(opts$backend %in% c("CPU", "GPU"))
  gpus <- rkeops:::rk_config()$gpu_count
  expect_identical(rkeops:::rk_default_options()$backend,
                   if (gpus > 0) "GPU" else "CPU")
  defaults <- rkeops:::rk_default_options()
  expect_identical(defaults$precision, "float64")
  expect_false(defaults$verbosity)
  expect_false(defaults$formula_only)
  expect_null(defaults$ncore)
  expect_identical(defaults$cache_dir, tools::R_user_dir("rkeops", "cache"))
})

test_that("set_rkeops_options() round-trips every option", {
  opt_local()
  dir <- file.path(tempdir(), "rk-opt-cache")
  old <- set_rkeops_options(list(
    backend = "cpu", precision = "float32", verbosity = TRUE,
    cache_dir = dir, formula_only = TRUE, ncore = 1, device_id = 2
  ))
  expect_type(old, "list")
  expect_identical(get_rkeops_options("backend"), "CPU")
  expect_identical(get_rkeops_options("precision"), "float32")
  expect_true(get_rkeops_options("verbosity"))
  expect_identical(get_rkeops_options("cache_dir"),
                   normalizePath(dir, mustWork = FALSE))
  expect_true(get_rkeops_options("formula_only"))
  expect_identical(get_rkeops_options("ncore"), 1L)
  expect_identical(get_rkeops_options("device_id"), 2L)
  # restoring the old values gives back exactly the old list
  set_rkeops_options(old)
  expect_identical(get_rkeops_options(), old)
})

test_that("bad names and values are rkeops_value_errors and change nothing", {
  opt_local()
  before <- get_rkeops_options()
  expect_error(set_rkeops_options(list(bakend = "CPU")), class = "rkeops_value_error")
  expect_error(set_rkeops_options(list(backend = "TPU")), class = "rkeops_value_error")
  expect_error(set_rkeops_options(list(precision = "half")), class = "rkeops_value_error")
  expect_error(set_rkeops_options(list(precision = 32)), class = "rkeops_value_error")
  expect_error(set_rkeops_options(list(verbosity = NA)), class = "rkeops_value_error")
  expect_error(set_rkeops_options(list(verbosity = "yes")), class = "rkeops_value_error")
  expect_error(set_rkeops_options(list(formula_only = c(TRUE, FALSE))),
               class = "rkeops_value_error")
  expect_error(set_rkeops_options(list(ncore = 0)), class = "rkeops_value_error")
  expect_error(set_rkeops_options(list(ncore = 1.5)), class = "rkeops_value_error")
  expect_error(set_rkeops_options(list(device_id = -1)), class = "rkeops_value_error")
  expect_error(set_rkeops_options(list(cache_dir = 1)), class = "rkeops_value_error")
  expect_error(set_rkeops_options("CPU"), class = "rkeops_value_error")
  expect_error(set_rkeops_options(list("CPU")), class = "rkeops_value_error")
  # a bad value among good ones: nothing changes
  expect_error(set_rkeops_options(list(precision = "float32", ncore = -2)),
               class = "rkeops_value_error")
  expect_identical(get_rkeops_options(), before)
  expect_error(get_rkeops_options("nope"), class = "rkeops_value_error")
  expect_error(get_rkeops_options(1), class = "rkeops_value_error")
  # the message names the option
  expect_error(set_rkeops_options(list(backend = "TPU")), "backend")
  expect_error(set_rkeops_options(list(bakend = "CPU")), "bakend")
})

test_that("rkeops_use_cpu/_gpu/_float32/_float64 set the options", {
  opt_local()
  rkeops_use_cpu(ncore = 1)
  expect_identical(get_rkeops_options("backend"), "CPU")
  expect_identical(get_rkeops_options("ncore"), 1L)
  rkeops_use_cpu()
  expect_null(get_rkeops_options("ncore"))
  expect_error(rkeops_use_cpu(ncore = "all"), class = "rkeops_value_error")
  rkeops_use_float32()
  expect_identical(get_rkeops_options("precision"), "float32")
  rkeops_use_float64()
  expect_identical(get_rkeops_options("precision"), "float64")
  expect_error(rkeops_use_gpu(-1), class = "rkeops_value_error")
  if (rkeops:::rk_config()$gpu_count == 0L) {
    rkeops_use_cpu()
    expect_warning(rkeops_use_gpu(0), class = "rkeops_gpu_warning")
    expect_identical(get_rkeops_options("backend"), "CPU")
    expect_warning(set_rkeops_options(list(backend = "GPU")), "GPU")
    expect_identical(get_rkeops_options("backend"), "CPU")
  } else {
    rkeops_use_gpu(0)
    expect_identical(get_rkeops_options("backend"), "GPU")
    expect_error(rkeops_use_gpu(1000), class = "rkeops_value_error")
  }
})

test_that("verbosity switches messages on and off", {
  opt_local()
  rkeops_use_cpu()
  op <- keops_kernel("Sum_Reduction(x * y, 1)", c("x=Vi(1)", "y=Vj(1)"))
  rkeops_enable_verbosity()
  expect_true(get_rkeops_options("verbosity"))
  expect_message(res <- op(list(1:3, 1:4)), "rkeops: .*3 x 1 on CPU")
  expect_equal(res[, 1], (1:3) * 10)
  rkeops_disable_verbosity()
  expect_false(get_rkeops_options("verbosity"))
  expect_silent(op(list(1:3, 1:4)))
})

test_that("ncore is honoured (same result with 1 and all threads)", {
  opt_local()
  set.seed(3)
  x <- matrix(rnorm(300), 150, 2)
  y <- matrix(rnorm(200), 100, 2)
  op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x, y)), 1)", c("x=Vi(2)", "y=Vj(2)"))
  rkeops_use_cpu(ncore = 1)
  r1 <- op(list(x, y))
  rkeops_use_cpu()
  r2 <- op(list(x, y))
  expect_equal(r1, r2, tolerance = 1e-13)
  # the threads the kernel really ran on (counted by the pool, src/threads.c)
  used <- function() rkeops:::rk_threads_info()$last_used
  expect_identical(used(), 1L) # 150 x 100: too small for a second thread
  x <- matrix(rnorm(6000), 3000, 2)
  y <- matrix(rnorm(4000), 2000, 2)
  ref <- rowSums(exp(-(outer(x[, 1], y[, 1], "-")^2 + outer(x[, 2], y[, 2], "-")^2)))
  rkeops_use_cpu(ncore = 1)
  expect_equal(op(list(x, y))[, 1], ref, tolerance = 1e-12)
  expect_identical(used(), 1L)
  n <- min(2L, rkeops:::rk_threads_info()$available)
  rkeops_use_cpu(ncore = n)
  expect_equal(op(list(x, y))[, 1], ref, tolerance = 1e-12)
  expect_identical(used(), n)
})

test_that("cache directory helpers", {
  opt_local()
  dir <- file.path(tempdir(), paste0("rk-cache-", Sys.getpid()))
  on.exit(unlink(dir, recursive = TRUE), add = TRUE)
  old <- set_rkeops_cache_dir(dir)
  expect_identical(get_rkeops_cache_dir(), normalizePath(dir, mustWork = FALSE))
  clean_rkeops()
  st <- NULL
  expect_output(st <- stat_rkeops_cache_dir(), "rkeops cache")
  expect_identical(st$files, 0L)
  # a kernel compiled with this cache lands on disk
  op <- keops_kernel("Sum_Reduction(Sqrt(x + y + IntCst(7)), 1)", c("x=Vi(1)", "y=Vj(1)"))
  res <- op(list(c(1, 2), c(0, 2)))
  expect_equal(res[, 1], sqrt(c(8, 9)) + sqrt(c(10, 11)))
  expect_output(st <- stat_rkeops_cache_dir(), "kernel file")
  expect_gte(st$files, 1L)
  expect_gt(st$size, 0)
  # files that are not kernels are left alone
  writeLines("keep me", file.path(dir, "notes.txt"))
  n <- clean_rkeops()
  expect_gte(n, 1L)
  expect_true(file.exists(file.path(dir, "notes.txt")))
  expect_output(st <- stat_rkeops_cache_dir(), "0 kernel files")
  # after clean_rkeops(), the next call compiles again and still computes
  before <- rkeops:::rk_stats()[["compiles"]]
  expect_equal(op(list(c(1, 2), c(0, 2))), res)
  expect_identical(rkeops:::rk_stats()[["compiles"]], before + 1)
  set_rkeops_cache_dir(NULL)
  expect_identical(get_rkeops_cache_dir(), tools::R_user_dir("rkeops", "cache"))
})

test_that("check_rkeops() reports and computes", {
  opt_local()
  rkeops_use_cpu()
  ok <- NULL
  expect_output(ok <- check_rkeops(), "test reduction")
  expect_true(ok)
  expect_output(check_rkeops(), "cache directory")
})
