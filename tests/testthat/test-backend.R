# test-backend.R -- the backend layer (src/be.h): the prepared operator
# (rk_operator, through the internal ffi_op_* entries), the host CPU in the
# CPU kernel key, scratch memory of code generation, and the CUDA loader's
# and NVRTC's messages (no GPU needed).

op_prepare <- function(formula, args, input) {
  p <- rkeops:::rk_parse(formula, args, "auto")
  .Call(rkeops:::ffi_op_prepare, p$ptr, input, rkeops:::rk_core_options())
}
op_run <- function(op, rows, js, replace = -1L, x = NULL, states = NULL,
                   want_states = FALSE) {
  .Call(rkeops:::ffi_op_run, op, as.double(rows), as.double(js),
        as.integer(replace), x, states, want_states)
}

nvrtc_available <- function() {
  isTRUE(tryCatch(grepl("NVRTC: [0-9]", rkeops:::rk_config()$description),
                  error = function(e) FALSE))
}

gauss_ref <- function(X, Y, B, s) {
  D <- outer(rowSums(X^2), rowSums(Y^2), "+") - 2 * X %*% t(Y)
  exp(-D / s) %*% B
}

test_that("a prepared operator runs with one input replaced, as keops_kernel", {
  local_rk_cpu()
  set.seed(4000)
  f <- "Sum_Reduction(Exp(-SqDist(x, y) / s) * b, 1)"
  args <- c("x=Vi(3)", "y=Vj(3)", "b=Vj(2)", "s=Pm(1)")
  X <- rdata(400, 3); Y <- rdata(300, 3); B <- rdata(300, 2)
  op <- op_prepare(f, args, list(X, Y, B, 0.7))
  kk <- keops_kernel(f, args)
  r0 <- op_run(op, c(0, 400), c(0, 300))
  expect_identical(r0, kk(list(X, Y, B, 0.7)))
  expect_close(r0, gauss_ref(X, Y, B, 0.7), 1e-12, "prepared")
  for (it in 1:5) { # a CG-like loop: b changes, the points stay
    B2 <- rdata(300, 2)
    r <- op_run(op, c(0, 400), c(0, 300), replace = 2L, x = B2)
    expect_identical(r, kk(list(X, Y, B2, 0.7)), info = paste("iteration", it))
    expect_close(r, gauss_ref(X, Y, B2, 0.7), 1e-12, paste("iteration", it))
  }
  # the replacement stays until the next one; the caller's matrix is copied
  B3 <- rdata(300, 2)
  B3o <- B3 + 0
  r3 <- op_run(op, c(0, 400), c(0, 300), replace = 2L, x = B3)
  B3[] <- 0
  expect_identical(op_run(op, c(0, 400), c(0, 300)), r3)
  # a parameter can be replaced too
  r4 <- op_run(op, c(0, 400), c(0, 300), replace = 3L, x = 0.3)
  expect_identical(r4, kk(list(X, Y, B3o, 0.3)))
  expect_close(r4, gauss_ref(X, Y, B3o, 0.3), 1e-12, "parameter replaced")
  expect_error(op_run(op, c(0, 400), c(0, 300), replace = 2L, x = rdata(299, 2)),
               class = "rkeops_input_error")
  expect_error(op_run(op, c(0, 400), c(0, 300), replace = 7L, x = B),
               class = "rkeops_input_error")
  # rows of a part: those rows of the full product (s is 0.3 now)
  r5 <- op_run(op, c(100, 250), c(0, 300), replace = 2L, x = B)
  expect_identical(r5, kk(list(X, Y, B, 0.3))[101:250, , drop = FALSE])
})

test_that("a prepared operator over i, in float32, with a replaced i-variable", {
  local_rk_cpu(prec = 32)
  set.seed(4001)
  f <- "Sum_Reduction(Exp(-SqDist(x, y)) * a, 0)"
  args <- c("x=Vi(2)", "y=Vj(2)", "a=Vi(1)")
  X <- rdata(200, 2); Y <- rdata(150, 2)
  op <- op_prepare(f, args, list(X, Y, rdata(200, 1)))
  kk <- keops_kernel(f, args)
  A <- rdata(200, 1)
  r <- op_run(op, c(0, 150), c(0, 200), replace = 2L, x = A)
  expect_identical(r, kk(list(X, Y, A)))
  D <- outer(rowSums(f32(Y)^2), rowSums(f32(X)^2), "+") - 2 * f32(Y) %*% t(f32(X))
  expect_close(r, exp(-D) %*% f32(A), 1e-5, "float32 over i")
})

test_that("an operator survives clean_rkeops(): its kernel is looked up again", {
  local_rk_cpu()
  X <- rdata(50, 2); Y <- rdata(60, 2)
  op <- op_prepare("Sum_Reduction(SqDist(x, y), 1)", c("x=Vi(2)", "y=Vj(2)"),
                   list(X, Y))
  r1 <- op_run(op, c(0, 50), c(0, 60))
  .Call(rkeops:::ffi_cache_clear_memory)
  expect_identical(op_run(op, c(0, 50), c(0, 60)), r1)
  D <- outer(rowSums(X^2), rowSums(Y^2), "+") - 2 * X %*% t(Y)
  expect_close(r1, rowSums(D), 1e-12, "after clean")
})

test_that("scratch of code generation does not grow the formula's arena", {
  local_rk_cpu_only()
  p <- rkeops:::rk_parse("Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)",
                         c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)"), "auto")
  # the first round may compile; the next 100 are cache hits, and the CUDA
  # geometry (computed by every GPU call before its cache lookup) again
  .Call(rkeops:::ffi_be_arena, p$ptr, rkeops:::rk_core_options(), 1L)
  a <- .Call(rkeops:::ffi_be_arena, p$ptr, rkeops:::rk_core_options(), 100L)
  expect_identical(a[2], a[1])
})

test_that("the CPU kernel key names the host CPU, and another CPU compiles anew", {
  local_rk_cpu_only()
  withr::defer(.Call(rkeops:::ffi_be_host, NA_character_))
  .Call(rkeops:::ffi_be_host, NA_character_)
  host <- .Call(rkeops:::ffi_be_host, NULL)
  expect_true(nzchar(host))
  expect_match(host, Sys.info()[["machine"]], fixed = TRUE)
  p <- rkeops:::rk_parse("Sum_Reduction(x * y, 1)", c("x=Vi(1)", "y=Vj(1)"), "auto")
  key <- .Call(rkeops:::ffi_be_key, p$ptr, rkeops:::rk_core_options())
  expect_match(key, paste0("host ", host), fixed = TRUE)
  if (grepl("^x86_64 ", host) && file.exists("/proc/cpuinfo")) {
    # the feature words are cpuid's: AVX2 is bit 5 of leaf 7's ebx
    flags <- strsplit(sub("^[^:]*: ", "", grep("^flags", readLines("/proc/cpuinfo"),
                                               value = TRUE)[1]), " ")[[1]]
    w7 <- strsplit(strsplit(host, " ")[[1]][5], ".", fixed = TRUE)[[1]][1]
    ebx <- strtoi(substr(w7, 1, 4), 16L) * 65536 + strtoi(substr(w7, 5, 8), 16L)
    expect_identical(bitwAnd(ebx %% 2^31, 32) != 0, "avx2" %in% flags)
  }
  dir <- withr::local_tempdir()
  set_rkeops_options(list(cache_dir = dir))
  X <- matrix(1:5 + 0, 5); Y <- matrix(1:4 + 0, 4)
  op <- keops_kernel("Sum_Reduction(x * y, 1)", c("x=Vi(1)", "y=Vj(1)"))
  expect_identical(as.vector(op(list(X, Y))), (1:5) * 10)
  n0 <- rkeops:::rk_stats()[["compiles"]]
  .Call(rkeops:::ffi_be_host, "x86_64 OtherVendor 000a0f00 0.0 0.0.0 0.0")
  key2 <- .Call(rkeops:::ffi_be_key, p$ptr, rkeops:::rk_core_options())
  expect_false(identical(key2, key))
  expect_identical(as.vector(op(list(X, Y))), (1:5) * 10)
  expect_identical(rkeops:::rk_stats()[["compiles"]], n0 + 1)
  expect_length(list.files(dir, pattern = "[.]so$"), 2L)
  .Call(rkeops:::ffi_be_host, NA_character_)
  expect_identical(as.vector(op(list(X, Y))), (1:5) * 10)
  expect_identical(rkeops:::rk_stats()[["compiles"]], n0 + 1)
})

test_that("an NVRTC failure names the architecture", {
  skip_if_not(nvrtc_available(), "NVRTC not available")
  err <- tryCatch(.Call(rkeops:::ffi_nvrtc_compile_text, "this is not CUDA", 8L, 0L),
                  error = function(e) e)
  expect_s3_class(err, "rkeops_compile_error")
  expect_match(conditionMessage(err), "for (sm|compute)_80:")
})

test_that("RKEOPS_NVRTC_FAST changes what NVRTC makes (NVRTC 12.8 and later)", {
  skip_if_not(nvrtc_available(), "NVRTC not available")
  desc <- strsplit(rkeops:::rk_config()$description, "\n")[[1]]
  ver <- sub("^NVRTC: ([0-9]+[.][0-9]+).*", "\\1", grep("^NVRTC: [0-9]", desc, value = TRUE)[1])
  skip_if(numeric_version(ver) < "12.8", "NVRTC older than 12.8: no -Ofast-compile")
  src <- rkeops:::rk_source("Sum_Reduction(Exp(-SqDist(x, y)) * b, 0)",
                            c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)"),
                            backend = "GPU", precision = "float32")
  size <- function(level) {
    withr::local_envvar(c(RKEOPS_NVRTC_FAST = level))
    .Call(rkeops:::ffi_nvrtc_compile_text, src, 9L, 0L)
  }
  base <- size(NA)
  expect_gt(base, 0)
  # -Ofast-compile=mid unrolls less: a smaller image (13112 against 19192
  # bytes with NVRTC 13.0); an unknown level is ignored
  expect_lt(size("mid"), base)
  expect_identical(size("fastest"), base)
})

test_that("a compute capability out of range is refused, not overflowed", {
  skip_if_not(nvrtc_available(), "NVRTC not available")
  p <- rkeops:::rk_parse("Sum_Reduction(x * y, 1)", c("x=Vi(1)", "y=Vj(1)"), "auto")
  expect_error(.Call(rkeops:::ffi_nvrtc_check, p$ptr, 64L, .Machine$integer.max, 9L),
               class = "rkeops_value_error")
  expect_error(.Call(rkeops:::ffi_nvrtc_check, p$ptr, 64L, 8L, -1L),
               class = "rkeops_value_error")
  expect_true(.Call(rkeops:::ffi_nvrtc_check, p$ptr, 64L, 8L, 0L))
})

test_that("without a driver, the reason quoted is libcuda.so.1's", {
  cfg <- .Call(rkeops:::ffi_config)
  skip_if(cfg$gpu_count > 0, "a GPU is usable")
  skip_if_not(grepl("libcuda.so.1 could not be loaded", cfg$gpu_why, fixed = TRUE),
              "the driver library is there")
  expect_match(cfg$gpu_why, "(libcuda.so.1: ", fixed = TRUE)
})

test_that("a refused cache directory: said once, and the result is computed", {
  local_rk_cpu_only()
  skip_on_os("windows")
  dir <- withr::local_tempdir()
  Sys.chmod(dir, "0777", use_umask = FALSE) # writable by others: refused
  set_rkeops_options(list(cache_dir = dir))
  X <- rdata(20, 2); Y <- rdata(30, 2)
  f <- "Sum_Reduction(Exp(-SqDist(x, y)), 1)"
  op <- keops_kernel(f, c("x=Vi(2)", "y=Vj(2)"))
  expect_warning(r <- op(list(X, Y)), "writable by others")
  D <- outer(rowSums(X^2), rowSums(Y^2), "+") - 2 * X %*% t(Y)
  expect_close(r, rowSums(exp(-D)), 1e-12, "refused cache dir")
  expect_length(list.files(dir), 0L) # nothing written there
  # a second kernel in the same directory: computed, not said again
  n0 <- rkeops:::rk_stats()[["compiles"]]
  op2 <- keops_kernel("Max_Reduction(SqDist(x, y), 1)", c("x=Vi(2)", "y=Vj(2)"))
  expect_warning(r2 <- op2(list(X, Y)), NA)
  expect_identical(rkeops:::rk_stats()[["compiles"]], n0 + 1) # it did compile
  expect_close(r2, apply(D, 1, max), 1e-12, "refused cache dir, second kernel")
})
