# test-cache.R -- the kernel cache: memory, then disk.  Each test works in a
# fresh temporary cache directory and uses formulas made unique by a random
# constant, so that no other test (nor an earlier run) has compiled them.
# The counters come from rkeops:::rk_stats() (rk_stat_compiles and
# rk_stat_disk_loads of the C API).

rk_counts <- function() {
  s <- rkeops:::rk_stats()
  c(compiles = s[["compiles"]], disk_loads = s[["disk_loads"]])
}

clear_memory_cache <- function() {
  .Call(get("ffi_cache_clear_memory", envir = asNamespace("rkeops")))
}

local_cache_dir <- function(envir = parent.frame()) {
  dir <- tempfile("rkeops-cache-")
  old <- set_rkeops_cache_dir(dir)
  withr::defer({
    set_rkeops_cache_dir(old)
    unlink(dir, recursive = TRUE)
  }, envir = envir)
  dir
}

# a Gaussian kernel sum with a unique scale, its inputs and dense reference
unique_problem <- function(M = 50, N = 40) {
  s <- sprintf("%.10f", runif(1, 0.5, 2))
  x <- matrix(runif(M * 3), M, 3)
  y <- matrix(runif(N * 3), N, 3)
  b <- runif(N)
  d2 <- outer(rowSums(x^2), rowSums(y^2), "+") - 2 * tcrossprod(x, y)
  list(
    formula = sprintf("Sum_Reduction(Exp(-SqDist(x, y) * %s) * b, 1)", s),
    args = c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)"),
    input = list(x, y, b),
    expected = exp(-d2 * as.numeric(s)) %*% b
  )
}

kernel_files <- function(dir) list.files(dir, pattern = "^[0-9a-f]{32}\\.so$", full.names = TRUE)
temp_files <- function(dir) list.files(dir, pattern = "^tmp-", all.files = TRUE)

test_that("a second call compiles nothing; the directory is private", {
  local_rk_cpu_only()
  dir <- local_cache_dir()
  p <- unique_problem()
  c0 <- rk_counts()
  op <- keops_kernel(p$formula, p$args)
  expect_close(op(p$input), p$expected, 1e-12, "first call")
  c1 <- rk_counts()
  expect_equal(c1 - c0, c(compiles = 1, disk_loads = 0))
  expect_close(op(p$input), p$expected, 1e-12, "second call")
  op2 <- keops_kernel(p$formula, p$args)
  expect_close(op2(p$input), p$expected, 1e-12, "new operator")
  expect_equal(rk_counts(), c1)
  expect_true(dir.exists(dir))
  expect_identical(format(file.info(dir)$mode), "700")
  expect_length(kernel_files(dir), 1)
  expect_length(temp_files(dir), 0)
  # kernel files are not writable by others
  mode <- as.integer(file.info(kernel_files(dir))$mode)
  expect_identical(bitwAnd(mode, strtoi("022", 8L)), 0L)
})

test_that("after clearing the memory cache the kernel comes from disk", {
  local_rk_cpu_only()
  dir <- local_cache_dir()
  p <- unique_problem()
  op <- keops_kernel(p$formula, p$args)
  op(p$input)
  clear_memory_cache()
  c0 <- rk_counts()
  expect_close(op(p$input), p$expected, 1e-12, "from disk")
  expect_equal(rk_counts() - c0, c(compiles = 0, disk_loads = 1))
  # float32 is another kernel
  local_rk_precision(32)
  c1 <- rk_counts()
  expect_close(op(p$input), p$expected, 1e-5, "float32")
  expect_equal(rk_counts() - c1, c(compiles = 1, disk_loads = 0))
  expect_length(kernel_files(dir), 2)
})

corruptions <- list(
  truncated = function(f, other) {
    raw <- readBin(f, "raw", file.size(f))
    writeBin(raw[seq_len(length(raw) %/% 2)], f)
  },
  truncated_trailer = function(f, other) {
    raw <- readBin(f, "raw", file.size(f))
    writeBin(raw[seq_len(length(raw) - 3)], f)
  },
  garbage_appended = function(f, other) {
    con <- file(f, "ab")
    writeBin(as.raw(sample(0:255, 1000, TRUE)), con)
    close(con)
  },
  byte_flipped = function(f, other) {
    raw <- readBin(f, "raw", file.size(f))
    k <- length(raw) %/% 3
    raw[k] <- xor(raw[k], as.raw(0xff))
    writeBin(raw, f)
  },
  replaced_by_garbage = function(f, other) {
    writeBin(as.raw(sample(0:255, 5000, TRUE)), f)
  },
  empty = function(f, other) writeBin(raw(0), f),
  replaced_by_another_kernel = function(f, other) {
    writeBin(readBin(other, "raw", file.size(other)), f)
  }
)

test_that("a corrupted cache file is detected and rebuilt", {
  local_rk_cpu_only()
  dir <- local_cache_dir()
  for (what in names(corruptions)) {
    p <- unique_problem()
    q <- unique_problem()
    op <- keops_kernel(p$formula, p$args)
    op(p$input)
    f <- kernel_files(dir)
    opq <- keops_kernel(q$formula, q$args)
    opq(q$input)
    other <- setdiff(kernel_files(dir), f)
    expect_length(other, 1)
    clear_memory_cache()
    corruptions[[what]](f, other)
    c0 <- rk_counts()
    expect_close(op(p$input), p$expected, 1e-12, what)
    expect_equal(rk_counts() - c0, c(compiles = 1, disk_loads = 0), label = what)
    # the rebuilt file is good: loaded from disk next time
    clear_memory_cache()
    c1 <- rk_counts()
    expect_close(op(p$input), p$expected, 1e-12, paste(what, "rebuilt"))
    expect_equal(rk_counts() - c1, c(compiles = 0, disk_loads = 1), label = what)
    expect_length(temp_files(dir), 0)
    unlink(kernel_files(dir))
  }
})

test_that("a kernel file writable by others is not loaded", {
  local_rk_cpu_only()
  dir <- local_cache_dir()
  p <- unique_problem()
  op <- keops_kernel(p$formula, p$args)
  op(p$input)
  f <- kernel_files(dir)
  Sys.chmod(f, "0666", use_umask = FALSE)
  clear_memory_cache()
  c0 <- rk_counts()
  expect_close(op(p$input), p$expected, 1e-12, "group/world writable")
  expect_equal(rk_counts() - c0, c(compiles = 1, disk_loads = 0))
})

test_that("clean_rkeops() empties the disk and memory caches", {
  local_rk_cpu_only()
  dir <- local_cache_dir()
  p <- unique_problem()
  op <- keops_kernel(p$formula, p$args)
  op(p$input)
  expect_length(kernel_files(dir), 1)
  expect_identical(clean_rkeops(), 1L)
  expect_length(kernel_files(dir), 0)
  c0 <- rk_counts()
  expect_close(op(p$input), p$expected, 1e-12, "after clean")
  expect_equal(rk_counts() - c0, c(compiles = 1, disk_loads = 0))
})

test_that("two concurrent R processes on a fresh cache both get correct results", {
  local_rk_cpu_only()
  dir <- local_cache_dir()
  work <- tempfile("rkeops-conc-")
  dir.create(work)
  withr::defer(unlink(work, recursive = TRUE))
  p <- unique_problem(M = 300, N = 200)
  saveRDS(p, file.path(work, "problem.rds"))
  script <- file.path(work, "child.R")
  writeLines(c(
    "a <- commandArgs(TRUE)",
    "suppressPackageStartupMessages(library(rkeops))",
    "set_rkeops_cache_dir(a[1])",
    "rkeops_use_cpu(1)",
    "p <- readRDS(a[2])",
    "op <- keops_kernel(p$formula, p$args)",
    "res <- op(p$input)",
    "tmp <- paste0(a[3], '.part')",
    "saveRDS(list(res = res, stats = rkeops:::rk_stats()), tmp)",
    "file.rename(tmp, a[3])"
  ), script)
  rscript <- file.path(R.home("bin"), "Rscript")
  env <- paste0("R_LIBS=", paste(.libPaths(), collapse = .Platform$path.sep))
  outs <- file.path(work, c("out1.rds", "out2.rds"))
  for (k in 1:2) {
    system2(rscript, c(shQuote(script), shQuote(dir), shQuote(file.path(work, "problem.rds")),
                       shQuote(outs[k])),
            env = env, wait = FALSE,
            stdout = file.path(work, sprintf("log%d.txt", k)),
            stderr = file.path(work, sprintf("err%d.txt", k)))
  }
  deadline <- Sys.time() + 180
  while (!all(file.exists(outs)) && Sys.time() < deadline) Sys.sleep(0.2)
  logs <- paste(unlist(lapply(list.files(work, "^(log|err)", full.names = TRUE), readLines)),
                collapse = "\n")
  expect_true(all(file.exists(outs)), info = logs)
  skip_if_not(all(file.exists(outs)))
  r <- lapply(outs, readRDS)
  expect_close(r[[1]]$res, p$expected, 1e-12, "process 1")
  expect_close(r[[2]]$res, p$expected, 1e-12, "process 2")
  expect_identical(r[[1]]$res, r[[2]]$res)
  # each process compiled or loaded the kernel exactly once
  for (k in 1:2) {
    expect_equal(sum(r[[k]]$stats[c("compiles", "disk_loads")]), 1)
  }
  expect_length(kernel_files(dir), 1)
  expect_length(temp_files(dir), 0)
  # and the installed file is good for this process
  c0 <- rk_counts()
  op <- keops_kernel(p$formula, p$args)
  expect_close(op(p$input), p$expected, 1e-12, "parent")
  expect_equal(rk_counts() - c0, c(compiles = 0, disk_loads = 1))
})

test_that("the same formula with other declared variables is another kernel", {
  # the canonical text names only the variables the formula uses, but the
  # generated kernel takes every declared one: a kernel with an unused
  # fourth variable must never serve the three-variable declaration (on the
  # GPU it read the missing launch arguments from garbage and crashed)
  local_rk_cpu()
  local_cache_dir()
  set.seed(31)
  X <- matrix(stats::rnorm(10), 5, 2)
  Y <- matrix(stats::rnorm(8), 4, 2)
  s <- sprintf("%.10f", runif(1, 0.5, 2))
  f <- sprintf("LogSumExp_Reduction(-SqDist(x, y) / s + %s, 1)", s)
  D <- outer(rowSums(X^2), rowSums(Y^2), "+") - 2 * tcrossprod(X, Y)
  want <- function(sc) {
    A <- -D / sc + as.numeric(s)
    m <- apply(A, 1, max)
    m + log(rowSums(exp(A - m)))
  }
  four <- keops_kernel(f, c("x=Vi(2)", "y=Vj(2)", "s=Pm(1)", "e=Vi(1)"))
  c0 <- rk_counts()
  expect_close(four(list(X, Y, 0.8, matrix(1, 5, 1))), want(0.8), 1e-12,
               "four declared")
  three <- keops_kernel(f, c("x=Vi(2)", "y=Vj(2)", "s=Pm(1)"))
  expect_identical(rkeops:::rk_parsed(f, c("x=Vi(2)", "y=Vj(2)", "s=Pm(1)"))$canonical,
                   rkeops:::rk_parsed(f, c("x=Vi(2)", "y=Vj(2)", "s=Pm(1)", "e=Vi(1)"))$canonical)
  for (sc in c(0.8, 1.3)) {
    expect_close(three(list(X, Y, sc)), want(sc), 1e-12, "three declared")
  }
  # a fourth variable of another category: a third kernel
  other <- keops_kernel(f, c("x=Vi(2)", "y=Vj(2)", "s=Pm(1)", "e=Vj(1)"))
  expect_close(other(list(X, Y, 0.8, matrix(1, 4, 1))), want(0.8), 1e-12,
               "e in j")
  expect_equal(rk_counts() - c0, c(compiles = 3, disk_loads = 0))
  # and their sources embed different keys
  k3 <- rkeops:::rk_source(f, c("x=Vi(2)", "y=Vj(2)", "s=Pm(1)"))
  k4 <- rkeops:::rk_source(f, c("x=Vi(2)", "y=Vj(2)", "s=Pm(1)", "e=Vi(1)"))
  expect_true(grepl("; vars 3 2.0,2.1,1.2\";", k3, fixed = TRUE))
  expect_true(grepl("; vars 4 2.0,2.1,1.2,1.0\";", k4, fixed = TRUE))
})
