# bench/cpu.R -- CPU benchmark of rkeops (a script, not a test).
#
#   Rscript bench/cpu.R            full run (N = M up to 1e5; ~15 minutes)
#   Rscript bench/cpu.R quick      quick subset (N <= 1e4; ~1 minute)
#   Rscript bench/cpu.R reps=1     timed runs at N >= 1e5 (default 3; the
#                                  warm-up there runs on the first 1000 points)
#   Rscript bench/cpu.R max=120    entries predicted to take longer than 120 s
#                                  (default 600) are timed at a smaller N and
#                                  extrapolated quadratically (marked "~")
#   Rscript bench/cpu.R rkeops-only    the rkeops rows only (no dense R, kernlab
#                                  or FNN): for before/after comparisons of
#                                  two installed versions (R_LIBS=...)
#
# Prints one table:
#   * Gaussian kernel sum a_i = sum_j exp(-|x_i - y_j|^2 / s) b_j, D = 3,
#     N = M in 1e3, 1e4, 1e5, float64 and float32: rkeops (median of several
#     runs after a warm-up), the first call of a new formula (compile
#     included, fresh cache), dense R (exp(-outer sqdist) %*% b with the
#     tcrossprod trick, where it fits in memory) and kernlab::kernelMult
#     (when installed);
#   * K = 10 nearest neighbours of N = 1e5 points in D = 3 and D = 50:
#     rkeops ArgKMin_Reduction against FNN::get.knn (kd_tree and brute).
# Every rkeops result is checked against a dense R computation on a subset.

args <- commandArgs(TRUE)
quick <- "quick" %in% args
only <- "rkeops-only" %in% args
max_s <- 600
for (a in grep("^max=", args, value = TRUE)) max_s <- as.numeric(sub("^max=", "", a))
big_reps <- 3
for (a in grep("^reps=", args, value = TRUE)) big_reps <- as.integer(sub("^reps=", "", a))
options(width = 200)

suppressPackageStartupMessages(library(rkeops))
rkeops_use_cpu()
set_rkeops_cache_dir(file.path(tempdir(), "rkeops-bench-cache")) # fresh cache

has_fnn <- requireNamespace("FNN", quietly = TRUE)
has_kernlab <- requireNamespace("kernlab", quietly = TRUE)

# ---- helpers -----------------------------------------------------------------

elapsed <- function(expr) {
  gc(FALSE)
  unname(system.time(expr)[["elapsed"]])
}

# median of `reps` timed runs after one untimed warm-up (warm(), or f())
time_median <- function(f, reps, warm = f) {
  warm()
  median(vapply(seq_len(reps), function(k) elapsed(f()), numeric(1)))
}

reps_for <- function(n) if (n <= 1e4) 5 else big_reps

rows <- list()
add_row <- function(task, N, D, precision, method, seconds, note = "") {
  rows[[length(rows) + 1]] <<- data.frame(
    task = task, N = format(N, scientific = TRUE), D = D, precision = precision,
    method = method, seconds = seconds, note = note, stringsAsFactors = FALSE)
  cat(sprintf("  %-9s N=%-6s D=%-3d %-8s %-24s %10s %s\n", task,
              format(N, scientific = TRUE), D, precision, method,
              if (is.na(seconds)) "-" else sprintf("%.3f", seconds), note))
}

mem_available <- function() {
  l <- tryCatch(readLines("/proc/meminfo"), error = function(e) character())
  v <- grep("^MemAvailable:", l, value = TRUE)
  if (!length(v)) return(4e9)
  as.numeric(gsub("[^0-9]", "", v)) * 1024
}
# dense M x N work fits when ~4 matrices of doubles use < 40% of free memory
dense_fits <- function(M, N) 4 * 8 * M * N < 0.4 * mem_available()

# Run f(n) at n = N when predicted to take <= max_s seconds; else time it at
# a smaller n and extrapolate quadratically.  Returns list(seconds, note).
maybe_extrapolate <- function(f, N, n_small) {
  if (n_small >= N) return(list(seconds = elapsed(f(N)), note = ""))
  t_small <- elapsed(f(n_small))
  pred <- t_small * (N / n_small)^2
  if (pred <= max_s) {
    return(list(seconds = elapsed(f(N)), note = ""))
  }
  list(seconds = pred,
       note = sprintf("~ extrapolated (N/%g)^2 from %.2f s at N=%g", n_small, t_small, n_small))
}

blas_name <- function(path) {
  p <- tolower(paste(path, tryCatch(normalizePath(path), error = function(e) "")))
  if (grepl("openblas", p)) "OpenBLAS" else if (grepl("mkl", p)) "Intel MKL"
  else if (grepl("atlas", p)) "ATLAS" else if (grepl("blis", p)) "BLIS"
  else if (grepl("accelerate|veclib", p)) "Apple Accelerate"
  else "reference BLAS (netlib, single-threaded)"
}

# ---- header -------------------------------------------------------------------

si <- sessionInfo()
cat("rkeops CPU benchmark", if (quick) "(quick subset)" else "(full)", "\n")
cat(R.version.string, "on", si$running, "\n")
cat("BLAS:  ", si$BLAS, "\n")
cat("LAPACK:", si$LAPACK, "\n")
cat("dense R uses:", blas_name(si$BLAS), "\n")
cat("cores:", parallel::detectCores(), " rkeops threads: all (rkeops_use_cpu())\n")
cfg <- tryCatch(rkeops:::rk_config()$description, error = function(e) "")
if (nzchar(cfg)) cat(cfg, sep = "\n")
cat("FNN:", if (has_fnn) as.character(packageVersion("FNN")) else "not installed (skipped)",
    " kernlab:", if (has_kernlab) as.character(packageVersion("kernlab"))
                 else "not installed (skipped)", "\n\n")

# ---- Gaussian kernel sum ------------------------------------------------------------

gauss_formula <- "Sum_Reduction(Exp(-SqDist(x, y) / s) * b, 1)"
gauss_args <- c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)", "s=Pm(1)")
s <- 0.1
dense_gauss <- function(x, y, b, s) {
  d2 <- outer(rowSums(x^2), rowSums(y^2), "+") - 2 * tcrossprod(x, y)
  exp(-d2 / s) %*% b
}

Ns <- if (quick) c(1e3, 1e4) else c(1e3, 1e4, 1e5)
cat("Gaussian kernel sum, D = 3\n")
set.seed(1)
for (prec in c("float64", "float32")) {
  set_rkeops_options(list(precision = prec))
  # the first call of a new formula: parse + compile + run, fresh cache
  x <- matrix(runif(3e3), 1e3, 3)
  b <- runif(1e3)
  t_first <- elapsed({
    op <- keops_kernel(gauss_formula, gauss_args)
    op(list(x, x, b, s))
  })
  add_row("gauss", 1e3, 3, prec, "rkeops first call", t_first, "compile included, fresh cache")
  for (N in Ns) {
    x <- matrix(runif(3 * N), N, 3)
    y <- matrix(runif(3 * N), N, 3)
    b <- runif(N)
    res <- NULL
    small <- seq_len(min(N, 1000))
    t <- time_median(function() res <<- op(list(x, y, b, s)), reps_for(N),
                     warm = function() op(list(x[small, ], y[small, ], b[small], s)))
    sub <- seq_len(min(N, 200))
    err <- max(abs(res[sub] - dense_gauss(x[sub, , drop = FALSE], y, b, s))) /
      max(abs(res[sub]))
    add_row("gauss", N, 3, prec, "rkeops", t, sprintf("median of %d; rel.err %.1e", reps_for(N), err))
  }
}
for (N in if (only) numeric() else Ns) {
  x <- matrix(runif(3 * N), N, 3)
  y <- matrix(runif(3 * N), N, 3)
  b <- runif(N)
  if (dense_fits(N, N)) {
    t <- time_median(function() dense_gauss(x, y, b, s), if (N <= 1e3) 5 else 1)
    add_row("gauss", N, 3, "float64", "dense R (BLAS)", t)
  } else {
    add_row("gauss", N, 3, "float64", "dense R (BLAS)", NA,
            sprintf("skipped: needs %.0f GB (4 N x N doubles)", 4 * 8 * N * N / 1e9))
  }
  if (has_kernlab) {
    kfun <- function(n) {
      kernlab::kernelMult(kernlab::rbfdot(sigma = 1 / s), x[seq_len(n), , drop = FALSE],
                          y[seq_len(n), , drop = FALSE], matrix(b[seq_len(n)]))
    }
    r <- maybe_extrapolate(kfun, N, min(N, 1e4))
    add_row("gauss", N, 3, "float64", "kernlab::kernelMult", r$seconds, r$note)
  } else {
    add_row("gauss", N, 3, "float64", "kernlab::kernelMult", NA, "kernlab not installed")
  }
}

# ---- K nearest neighbours -----------------------------------------------------------------

K <- 10
Nk <- if (quick) 1e4 else 1e5
cat("\nK = 10 nearest neighbours (all points against all points)\n")
knn_dense_check <- function(idx, X, nq = 100) {
  # exact ranks on nq query points, computed densely in R
  q <- X[seq_len(nq), , drop = FALSE]
  d2 <- outer(rowSums(q^2), rowSums(X^2), "+") - 2 * tcrossprod(q, X)
  ref <- t(apply(d2, 1, function(v) order(v)[seq_len(K)]))
  mean(idx[seq_len(nq), ] == ref)
}
for (D in c(3, 50)) {
  set.seed(2)
  X <- matrix(runif(Nk * D), Nk, D)
  for (prec in c("float64", "float32")) {
    set_rkeops_options(list(precision = prec))
    op <- keops_kernel(sprintf("ArgKMin_Reduction(SqDist(x, y), %d, 1)", K),
                       c(sprintf("x=Vi(%d)", D), sprintf("y=Vj(%d)", D)))
    idx <- NULL
    reps <- if (Nk >= 1e5) min(big_reps, if (D == 50) 2 else 3) else 3
    small <- seq_len(1000)
    t <- time_median(function() idx <<- op(list(X, X)), reps,
                     warm = function() op(list(X[small, ], X[small, ])))
    add_row("knn", Nk, D, prec, "rkeops ArgKMin", t,
            sprintf("median of %d; %.1f%% equal to dense ranks", reps,
                    100 * knn_dense_check(idx, X)))
  }
  set_rkeops_options(list(precision = "float64"))
  if (only) next
  if (has_fnn) {
    for (alg in c("kd_tree", "brute")) {
      ffun <- function(n) FNN::get.knn(X[seq_len(n), , drop = FALSE], k = K, algorithm = alg)
      r <- maybe_extrapolate(ffun, Nk, min(Nk, 1e4))
      add_row("knn", Nk, D, "float64", paste0("FNN::get.knn ", alg), r$seconds, r$note)
    }
  } else {
    add_row("knn", Nk, D, "float64", "FNN::get.knn", NA, "FNN not installed")
  }
}

cat("\nSummary table (seconds; \"~\" = extrapolated, see note)\n")
tab <- do.call(rbind, rows)
tab$seconds <- ifelse(is.na(tab$seconds), "-",
                      ifelse(grepl("^~", tab$note), sprintf("~%.1f", tab$seconds),
                             sprintf("%.3f", tab$seconds)))
print(tab, row.names = FALSE, right = FALSE)
