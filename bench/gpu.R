# bench/gpu.R -- GPU benchmark of rkeops (issue 5): prints a table of median
# wall times (data passed from R, in host memory, as R holds it).
#   Gaussian kernel sum, D = 3, N = M in 1e4, 1e5, 1e6, float32 and float64
#   its gradient with respect to x at 1e6 (float32)
#   K = 10 nearest neighbours (ArgKMin), D = 3 and D = 50, N = M = 1e5, 1e6
#   LogSumExp at 1e6 (float32)
# and checks that 1000 repeated calls leave free device memory unchanged.
# Usage: Rscript bench/gpu.R [quick]   (quick: smaller sizes, for testing)
# RKEOPS_BENCH_ONLY=<regex> runs only the matching cases (and skips the
# memory check); with RKEOPS_CUDA_GEOM="tpb,rb" (developer knob of
# cg-cuda.c) it compares launch geometries.
suppressPackageStartupMessages(library(rkeops))

args <- commandArgs(trailingOnly = TRUE)
quick <- "quick" %in% args
cfg <- rkeops:::rk_config()
cat(cfg$description)
cat("RKEOPS_CUDA_GEOM:", Sys.getenv("RKEOPS_CUDA_GEOM", "(default)"), "\n")
if (cfg$gpu_count < 1L) {
  cat("no usable GPU:", cfg$gpu_why, "\n")
  quit(status = 0)
}
rkeops_use_gpu(0)
set.seed(1)

# KeOps 2.3 on an H200 (issue 5), seconds
target <- c("gauss f32 1e+06" = 0.477, "gauss f64 1e+06" = 3.21,
            "grad f32 1e+06" = 1.56, "knn D3 1e+06" = 0.83,
            "knn D50 1e+06" = 5.19, "lse f32 1e+06" = 0.73,
            "gauss f32 1e+04" = 0.00064, "gauss f32 1e+05" = 0.0062)

now <- function() as.numeric(Sys.time())
# median over reps of the time of one call; calls shorter than 50 ms are
# timed in batches (system.time's resolution is 1 ms)
timeit <- function(fn, reps) {
  t0 <- now()
  invisible(fn()) # warm-up: compilation, disk cache, device pool
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
add <- function(name, secs, n) {
  tg <- target[name]
  rows[[length(rows) + 1]] <<- data.frame(
    case = name, N = format(n, scientific = TRUE), median_s = signif(secs, 4),
    keops_s = if (is.na(tg)) NA else unname(tg),
    ratio = if (is.na(tg)) NA else round(secs / unname(tg), 3))
  cat(sprintf("%-16s %10.5f s\n", name, secs))
}
reps_for <- function(n) if (n >= 1e6) 3 else 7
sizes <- if (quick) c(1e4, 1e5) else c(1e4, 1e5, 1e6)
big <- if (quick) 1e5 else 1e6

gauss <- "Sum_Reduction(Exp(-g * SqDist(x, y)) * b, 1)"
gauss_args <- c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)", "g=Pm(1)")
gauss_op <- keops_kernel(gauss, gauss_args)
for (prec in c(32, 64)) {
  if (prec == 32) rkeops_use_float32() else rkeops_use_float64()
  for (n in sizes) {
    if (prec == 64 && n < big) next
    name <- sprintf("gauss f%d %s", prec, format(n, scientific = TRUE))
    if (!want(name)) next
    x <- matrix(runif(3 * n), n, 3)
    y <- matrix(runif(3 * n), n, 3)
    b <- runif(n)
    add(name, timeit(function() gauss_op(list(x, y, b, 2)), reps_for(n)), n)
  }
}

rkeops_use_float32()
n <- big
x <- matrix(runif(3 * n), n, 3)
y <- matrix(runif(3 * n), n, 3)
b <- runif(n)
eta <- runif(n)
grad_op <- NULL
if (exists("keops_grad", asNamespace("rkeops"))) {
  grad_op <- tryCatch(rkeops::keops_grad(gauss_op, "x"), error = function(e) NULL)
}
grad_how <- "keops_grad"
if (is.null(grad_op)) {
  grad_how <- "explicit"
  grad_op <- keops_kernel(
    "Sum_Reduction(e * (-2 * g) * Exp(-g * SqDist(x, y)) * b * (x - y), 1)",
    c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)", "g=Pm(1)", "e=Vi(1)"))
}
cat("gradient via", grad_how, "\n")
name <- sprintf("grad f32 %s", format(n, scientific = TRUE))
if (want(name)) {
  add(name, timeit(function() grad_op(list(x, y, b, 2, eta)), 3), n)
}

lse_op <- keops_kernel("LogSumExp_Reduction(-g * SqDist(x, y), 1)",
                       c("x=Vi(3)", "y=Vj(3)", "g=Pm(1)"))
name <- sprintf("lse f32 %s", format(n, scientific = TRUE))
if (want(name)) {
  add(name, timeit(function() lse_op(list(x, y, 2)), 3), n)
}

for (D in c(3, 50)) {
  knn_op <- keops_kernel("ArgKMin_Reduction(SqDist(x, y), 10, 1)",
                         c(sprintf("x=Vi(%d)", D), sprintf("y=Vj(%d)", D)))
  for (n in if (quick) 1e5 else c(1e5, 1e6)) {
    name <- sprintf("knn D%d %s", D, format(n, scientific = TRUE))
    if (!want(name)) next
    x <- matrix(runif(D * n), n, D)
    y <- matrix(runif(D * n), n, D)
    add(name, timeit(function() knn_op(list(x, y)), reps_for(n)), n)
  }
}

# device memory after many calls
if (only == "") {
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

cat("\n")
tab <- do.call(rbind, rows)
print(tab, row.names = FALSE)
