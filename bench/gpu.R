# bench/gpu.R -- GPU benchmark of rkeops beside KeOps (issues 5 and 11):
# prints one table of median wall times (data passed from R, in host
# memory, as R holds it) with, for every case, KeOps' time measured in the
# same run on the same GPU and the ratio rkeops / KeOps:
#   Gaussian kernel sum, D = 3, N = M in 1e4, 1e5, 1e6 (float32), 1e6 (float64)
#   its gradient with respect to x at 1e6 (float32), LogSumExp at 1e6
#   K = 10 nearest neighbours (ArgKMin), D = 3 and 50 at 1e5 and 1e6, D = 128 at 1e5
#   Gaussian sum D = 128 at 1e5; M = 1e6 outputs over N = 1e3 sources
#   a small call (100 x 100) and the first call of a new formula
# then the accuracy rows: float32 against float64 (max abs error / max abs
# value) of the Gaussian sum and of a wide kernel exp(-|x - y|^2) at 1e6,
# for each sum_scheme, with its time (median of 5 rounds that time the
# schemes interleaved; KeOps' default, block_sum, beside);
# and checks that 1000 repeated calls leave free device memory unchanged.
#
# Usage: Rscript bench/gpu.R [quick]   (quick: smaller sizes, for testing)
# KeOps: run from a checkout where ../shared/anchors was copied to .anchors
# (see ../shared/anchors/README.md); the script runs
# python3 .anchors/keops-cases.py itself with PYTHONPATH set, or reads its
# output from the file RKEOPS_BENCH_KEOPS_OUT when given.  Without KeOps
# the ratios are NA.  RKEOPS_BENCH_KEOPS=0 skips KeOps.
# RKEOPS_BENCH_OLD_LIB=<library dir>: an older rkeops installed there is
# run on the same cases (in a child R process, after this one) and its
# times printed in the column old_s.
# RKEOPS_BENCH_ONLY=<regex> runs only the matching cases (and skips the
# memory check); with RKEOPS_CUDA_GEOM="tpb,rb" (developer knob of
# cg-cuda.c) it compares launch geometries.
# RKEOPS_BENCH_DRY=1 runs on the CPU at tiny sizes (to check the script).
# Budget: about 4 minutes of GPU time with KeOps (medians of 3 calls for
# the large cases, 7 for the small ones, after a warm-up).
suppressPackageStartupMessages(library(rkeops))
# time_rotating() from bench/common.R, beside this script
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE),
                                                  value = TRUE)[1])), "common.R"))

args <- commandArgs(trailingOnly = TRUE)
child_out <- Sys.getenv("RKEOPS_BENCH_CHILD_OUT", "")
dry <- Sys.getenv("RKEOPS_BENCH_DRY", "") == "1"
quick <- "quick" %in% args || dry
cfg <- rkeops:::rk_config()
if (child_out == "") {
  cat(cfg$description)
  cat("RKEOPS_CUDA_GEOM:", Sys.getenv("RKEOPS_CUDA_GEOM", "(default)"), "\n")
  # the device's copy of .git can lag the carried tree: RKEOPS_COMMIT, set
  # by the caller from its own checkout, wins
  commit <- Sys.getenv("RKEOPS_COMMIT")
  if (!nzchar(commit))
    commit <- paste(tryCatch(system2("git", c("rev-parse", "--short", "HEAD"),
                                     stdout = TRUE, stderr = FALSE),
                             error = function(e) "?"), "(from git)")
  cat("commit:", commit, "\n")
}
if (dry) {
  rkeops_use_cpu()
} else if (cfg$gpu_count < 1L) {
  cat("no usable GPU:", cfg$gpu_why, "\n")
  quit(status = 0)
} else {
  rkeops_use_gpu(0)
}
set.seed(1)

# ---- KeOps in the same run (a measuring instrument, never a dependency)
keops <- list(time = c(), acc = c())
read_keops <- function(lines) {
  ko <- grep("^KO ", lines, value = TRUE)
  ka <- grep("^KOACC ", lines, value = TRUE)
  sp <- function(l) strsplit(trimws(l), "[[:space:]]+")[[1]]
  tm <- vapply(ko, function(l) as.numeric(sp(l)[3]), 0)
  names(tm) <- vapply(ko, function(l) sp(l)[2], "")
  ac <- vapply(ka, function(l) as.numeric(sp(l)[3]), 0)
  names(ac) <- vapply(ka, function(l) sp(l)[2], "")
  list(time = tm, acc = ac)
}
if (child_out == "" && Sys.getenv("RKEOPS_BENCH_KEOPS", "1") != "0") {
  kfile <- Sys.getenv("RKEOPS_BENCH_KEOPS_OUT", "")
  if (nzchar(kfile) && file.exists(kfile)) {
    keops <- read_keops(readLines(kfile))
  } else if (!dry && file.exists(".anchors/keops-cases.py")) {
    pp <- paste(file.path(getwd(), ".anchors/keops/keopscore"),
                file.path(getwd(), ".anchors/keops/pykeops"), sep = ":")
    cat("running KeOps (.anchors/keops-cases.py) ...\n")
    t0 <- Sys.time()
    lines <- tryCatch(
      system2("env", c(paste0("PYTHONPATH=", pp),
                       "KEOPS_CACHE_FOLDER=/tmp/keops-cache",
                       paste0("CASES=", shQuote(Sys.getenv("RKEOPS_BENCH_ONLY", ""))),
                       "python3", ".anchors/keops-cases.py"),
              stdout = TRUE, stderr = TRUE),
      error = function(e) paste("failed:", conditionMessage(e)))
    cat(sprintf("KeOps done in %.0f s\n", as.numeric(Sys.time() - t0, units = "secs")))
    keops <- read_keops(lines)
    if (length(keops$time) == 0) cat("KeOps gave no timings:\n", tail(lines, 5), sep = "\n")
  } else {
    cat("KeOps not found (.anchors/keops-cases.py): ratios are NA\n")
  }
}

now <- function() as.numeric(Sys.time())
# median over reps of the time of one call; calls shorter than 50 ms are
# timed in batches of 20 (system.time's resolution is 1 ms)
timeit <- function(fn, reps) {
  invisible(fn()) # warm-up: compilation, disk cache, device pool
  t0 <- now()
  invisible(fn())
  inner <- if (now() - t0 < 0.05) 20L else 1L
  t <- vapply(seq_len(reps), function(i) {
    gc(FALSE)
    s <- now()
    for (k in seq_len(inner)) fn()
    (now() - s) / inner
  }, numeric(1))
  median(t)
}

only <- Sys.getenv("RKEOPS_BENCH_ONLY", "")
want <- function(name) only == "" || grepl(only, name)
rows <- list()
add <- function(name, secs) {
  ko <- if (name %in% names(keops$time)) keops$time[[name]] else NA
  rows[[length(rows) + 1]] <<- data.frame(
    case = name, rkeops_s = signif(secs, 4), keops_s = signif(ko, 4),
    ratio = round(secs / ko, 3))
  cat(sprintf("%-24s %10.5f s   KeOps %s\n", name, secs,
              if (is.na(ko)) "NA" else sprintf("%.5f s", ko)))
}
reps_for <- function(n) if (n >= 1e6) 3 else 7
nm <- function(n) format(as.integer(n), scientific = FALSE)
sizes <- if (dry) c(1e3, 2e3) else if (quick) c(1e4, 1e5) else c(1e4, 1e5, 1e6)
big <- if (dry) 2e3 else if (quick) 1e5 else 1e6
mid <- if (dry) 1e3 else 1e5

gauss <- "Sum_Reduction(Exp(-g * SqDist(x, y)) * b, 1)"
gauss_args <- c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)", "g=Pm(1)")
gauss_op <- keops_kernel(gauss, gauss_args)
for (prec in c(32, 64)) {
  if (prec == 32) rkeops_use_float32() else rkeops_use_float64()
  for (n in sizes) {
    if (prec == 64 && n < big) next
    name <- sprintf("gauss_D3_f%d_%s", prec, nm(n))
    if (!want(name)) next
    x <- matrix(runif(3 * n), n, 3)
    y <- matrix(runif(3 * n), n, 3)
    b <- runif(n)
    add(name, timeit(function() gauss_op(list(x, y, b, 50)), reps_for(n)))
  }
}

rkeops_use_float32()
n <- big
x <- matrix(runif(3 * n), n, 3)
y <- matrix(runif(3 * n), n, 3)
b <- runif(n)
eta <- runif(n)
name <- sprintf("grad_D3_f32_%s", nm(n))
if (want(name)) {
  grad_op <- tryCatch(rkeops::keops_grad(gauss_op, "x"), error = function(e) NULL)
  if (is.null(grad_op)) {
    grad_op <- keops_kernel(
      "Sum_Reduction(e * (-2 * g) * Exp(-g * SqDist(x, y)) * b * (x - y), 1)",
      c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)", "g=Pm(1)", "e=Vi(1)"))
    cat("gradient: explicit formula\n")
  }
  add(name, timeit(function() grad_op(list(x, y, b, 50, eta)), 3))
}

name <- sprintf("lse_D3_f32_%s", nm(n))
if (want(name)) {
  lse_op <- keops_kernel("LogSumExp_Reduction(-g * SqDist(x, y), 1)",
                         c("x=Vi(3)", "y=Vj(3)", "g=Pm(1)"))
  add(name, timeit(function() lse_op(list(x, y, 100)), 3))
}

for (D in c(3, 50, 128)) {
  knn_op <- keops_kernel("ArgKMin_Reduction(SqDist(x, y), 10, 1)",
                         c(sprintf("x=Vi(%d)", D), sprintf("y=Vj(%d)", D)))
  ns <- if (D == 128 || quick) mid else c(mid, big)
  for (n in ns) {
    name <- sprintf("knn_D%d_f32_%s", D, nm(n))
    if (!want(name)) next
    x <- matrix(runif(D * n), n, D)
    add(name, timeit(function() knn_op(list(x, x)), reps_for(n)))
  }
}

name <- sprintf("gauss_D128_f32_%s", nm(mid))
if (want(name)) {
  op128 <- keops_kernel(gauss, c("x=Vi(128)", "y=Vj(128)", "b=Vj(1)", "g=Pm(1)"))
  x <- matrix(runif(128 * mid), mid, 128)
  b <- runif(mid)
  add(name, timeit(function() op128(list(x, x, b, 1 / 128)), 3))
}

if (want("gauss_M1e6_N1e3_f32")) {
  xs <- matrix(runif(3 * big), big, 3)
  ys <- matrix(runif(3e3), 1e3, 3)
  bs <- runif(1e3)
  add("gauss_M1e6_N1e3_f32", timeit(function() gauss_op(list(xs, ys, bs, 50)), 5))
}

if (want("small_call_100x100")) {
  xs <- matrix(runif(300), 100, 3)
  bs <- runif(100)
  invisible(gauss_op(list(xs, xs, bs, 50)))
  reps <- if (dry) 200 else 20000
  t0 <- now()
  for (k in seq_len(reps)) gauss_op(list(xs, xs, bs, 50))
  add("small_call_100x100", (now() - t0) / reps)
  # the same sum built and reduced as a LazyTensor (formula built in R,
  # parsed, looked up in the cache): what an R user's loop pays
  reps <- if (dry) 100 else 2000
  t0 <- now()
  for (k in seq_len(reps))
    (exp(-50 * sqdist(Vi(xs), Vj(xs)))) %*% bs
  add("small_call_lazytensor_100x100", (now() - t0) / reps)
}

if (want("first_call")) {
  k <- as.integer((now() * 1000) %% 999983) + 1L # new in every run
  t0 <- now()
  fop <- keops_kernel(sprintf("Sum_Reduction(Exp(-SqDist(x, y) * IntCst(%d)) * b, 1)", k),
                      c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)"))
  invisible(fop(list(matrix(runif(30), 10, 3), matrix(runif(30), 10, 3), runif(10))))
  add("first_call", now() - t0)
}

# ---- accuracy: float32 against float64, per scheme, and each scheme's time
acc_rows <- list()
if (want("acc")) {
  n <- big
  x <- matrix(runif(3 * n), n, 3)
  y <- matrix(runif(3 * n), n, 3)
  b <- runif(n)
  # g = 50: the Gaussian of the table; g = 1: a wide kernel, every term counts
  for (g in c(50, 1)) {
    rkeops_use_float64()
    r64 <- gauss_op(list(x, y, b, g))
    schemes <- c("direct_sum", "block_sum", "kahan_scheme")
    rkeops_use_float32()
    ops <- lapply(schemes, function(sch) keops_kernel(gauss, gauss_args, sum_scheme = sch))
    names(ops) <- schemes
    r32s <- lapply(ops, function(op) op(list(x, y, b, g))) # also the warm-up
    tm <- time_rotating(lapply(ops, function(op) function() op(list(x, y, b, g))), 5)
    for (sch in schemes) {
      r32 <- r32s[[sch]]
      secs <- median(tm[, sch])
      case <- sprintf("acc_g%g_%s", g, sch)
      ko <- if (g == 50 && sch == "block_sum" &&
                "gauss_D3_f32_vs_f64_1000000" %in% names(keops$acc))
        keops$acc[["gauss_D3_f32_vs_f64_1000000"]] else NA
      acc_rows[[length(acc_rows) + 1]] <- data.frame(
        case = case, rel_err = signif(max(abs(r32 - r64)) / max(abs(r64)), 3),
        keops_rel_err = signif(ko, 3), rkeops_s = signif(secs, 4))
      cat(sprintf("%-24s err %.2e  %.5f s\n", case,
                  max(abs(r32 - r64)) / max(abs(r64)), secs))
    }
  }
}

# device memory after many calls
if (only == "" && !dry && child_out == "") {
meminfo <- function() {
  if (exists("ffi_cuda_meminfo", asNamespace("rkeops"))) {
    return(.Call(get("ffi_cuda_meminfo", asNamespace("rkeops")), 0L)[["free"]])
  }
  out <- tryCatch(system2("nvidia-smi", c("--query-gpu=memory.used",
                                          "--format=csv,noheader,nounits"),
                          stdout = TRUE), error = function(e) NA)
  -as.numeric(out[1]) * 1048576 # free memory, up to a constant
}
rkeops_use_float32()
xs <- matrix(runif(3e4), 1e4, 3)
ys <- matrix(runif(3e4), 1e4, 3)
bs <- runif(1e4)
invisible(gauss_op(list(xs, ys, bs, 2)))
m0 <- meminfo()
for (k in 1:1000) gauss_op(list(xs, ys, bs, 2))
m1 <- meminfo()
cat(sprintf("free device memory before / after 1000 calls: %.0f / %.0f bytes (%s)\n",
            m0, m1, if (isTRUE(m0 == m1)) "no leak" else "CHANGED"))
}

tab <- do.call(rbind, rows)
acc <- if (length(acc_rows)) do.call(rbind, acc_rows) else NULL
if (child_out != "") { # an older tree's run: hand the times back
  saveRDS(list(tab = tab, acc = acc), child_out)
  quit(status = 0)
}

# ---- an older install, side by side
old_lib <- Sys.getenv("RKEOPS_BENCH_OLD_LIB", "")
if (nzchar(old_lib) && !is.null(tab)) {
  f <- tempfile(fileext = ".rds")
  script <- normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1]))
  cat("running the older install in", old_lib, "...\n")
  system2("env", c(paste0("R_LIBS=", old_lib), paste0("RKEOPS_BENCH_CHILD_OUT=", f),
                   "Rscript", script, args))
  if (file.exists(f)) {
    old <- readRDS(f)
    tab$old_s <- old$tab$rkeops_s[match(tab$case, old$tab$case)]
    if (!is.null(acc) && !is.null(old$acc))
      acc$old_rel_err <- old$acc$rel_err[match(acc$case, old$acc$case)]
  } else {
    cat("the older install gave no table\n")
  }
}

cat("\n")
print(tab, row.names = FALSE)
if (!is.null(acc)) {
  cat("\naccuracy: float32 vs float64, max abs error / max abs value (KeOps: its default, block_sum)\n")
  print(acc, row.names = FALSE)
}
