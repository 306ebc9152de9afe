# bench/solve.R -- solve() benchmark (a script, not a test).
#
#   Rscript bench/solve.R                  CPU, N = 2e4
#   RKEOPS_BENCH_SOLVE_N=2000 Rscript bench/solve.R   CPU at a small N (quick)
#   Rscript bench/solve.R gpu              GPU (device 0), N = 2e4, 5e4, 1e5
#   options (name=value, comma-separated lists):
#     sizes=2e3,5e3            problem sizes
#     prec=float32,float64     precisions
#     precond=none,pivchol     preconditioners (default none,jacobi,pivchol,
#                              nystrom; "pic" too on request: on these smooth
#                              systems it keeps pivchol's P when its automatic
#                              rank meets the trace rule); "pivchol:128" fixes
#                              the rank (the default: rank = NULL, the
#                              automatic rule)
#     systems=easy,hard        systems (default both)
#     maxit=1000               iteration cap (default 2000 on the CPU, 10000
#                              on the GPU; an unconverged run is marked)
#     reps=3                   timed runs (median; default 1)
#     dense=FALSE              skip the dense Cholesky solve (default: on the
#                              CPU at N <= 2e4)
#     dense_max=600            a dense solve predicted (cubically, from a
#                              timing at N = 4000) to take longer is not run:
#                              the estimate is printed, marked "~"
#     anchors=ko.txt           lines "KO|DENSE <system> <dtype> <N> <s> <res>"
#                              of ../shared/anchors/solve-anchors.py, run on
#                              the same machine: printed with ratios
#                              (ko_ratio = KeOps CG s / ours, dense_ratio =
#                              dense Cholesky s (same precision) / ours)
#
# On the GPU machine, anchors and rkeops in one run (about 3 minutes; the
# KeOps 1e5 solves take 4+ minutes, so the anchors stop at 5e4 and the 1e5
# KeOps figures are the issue's):
#   export PYTHONPATH=$PWD/.anchors/keops/keopscore:$PWD/.anchors/keops/pykeops
#   export KEOPS_CACHE_FOLDER=/tmp/keops-cache
#   SIZES="2e4 5e4" python3 .anchors/solve-anchors.py > $OUT/anchors.txt
#   Rscript bench/solve.R gpu precond=none,pivchol,nystrom maxit=300 reps=3 \
#     anchors=$OUT/anchors.txt
#
# Systems: (alpha I + K) x = b with K_ij = exp(-|x_i - x_j|^2 / (2 h^2)),
# points uniform in the unit cube (D = 3), b uniform in [0, 1], one
# right-hand side, tol = 1e-6 (relative residual):
#   easy: h = 0.05, alpha = 1;   hard: h = 0.2, alpha = 1e-3.
# Each timing follows a warm-up solve on the first 1000 points (kernels
# compiled or loaded from the cache); it includes everything solve() does:
# checks, diagonal, preconditioner set-up, iterations, the final residual.
# The residual column is the true relative residual, from a float64 product.

# helpers (opt(), el(), ok_krige()) from bench/common.R, beside this script
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE),
                                                  value = TRUE)[1])), "common.R"))
gpu <- "gpu" %in% args
small_n <- Sys.getenv("RKEOPS_BENCH_SOLVE_N")
sizes <- as.numeric(opt("sizes", if (gpu) c(2e4, 5e4, 1e5) else
  if (nzchar(small_n)) as.numeric(small_n) else 2e4))
precs <- opt("prec", c("float32", "float64"))
preconds <- opt("precond", c("none", "jacobi", "pivchol", "nystrom"))
systems <- opt("systems", c("easy", "hard"))
maxit <- as.integer(opt("maxit", if (gpu) 10000 else 2000))
reps <- as.integer(opt("reps", 1))
dense <- as.logical(opt("dense", !gpu))
dense_max <- as.numeric(opt("dense_max", 600))
anchor_file <- opt("anchors", NULL)
options(width = 200)

suppressPackageStartupMessages(library(rkeops))
if (gpu) rkeops_use_gpu(0) else rkeops_use_cpu()
set_rkeops_cache_dir(file.path(tempdir(), "rkeops-bench-cache"))

sys_par <- list(easy = c(h = 0.05, alpha = 1), hard = c(h = 0.2, alpha = 1e-3))

points <- function(n) {
  set.seed(0)
  list(X = matrix(runif(n * 3), n, 3), b = runif(n))
}
kernel <- function(X, h) exp(-sqdist(Vi(X), Vj(X)) / (2 * h^2))

anchors <- NULL
if (!is.null(anchor_file)) {
  l <- grep("^(KO|DENSE) ", readLines(anchor_file), value = TRUE)
  l <- l[!grepl("failed", l)]
  f <- do.call(rbind, strsplit(l, " +"))
  anchors <- data.frame(what = f[, 1], system = f[, 2], prec = paste0(f[, 3]),
                        N = as.numeric(f[, 4]), s = as.numeric(f[, 5]),
                        stringsAsFactors = FALSE)
}
anchor <- function(what, system, prec, n) {
  if (is.null(anchors)) return(NA_real_)
  a <- anchors[anchors$what == what & anchors$system == system &
                 anchors$prec == prec & anchors$N == n, "s"]
  if (length(a)) a[1] else NA_real_
}

rows <- list()
cat(sprintf("device: %s\n", if (gpu) {
  cfg <- rkeops:::rk_config()$description
  gl <- grep("GPU|device", strsplit(cfg, "\n")[[1]], value = TRUE)
  paste(gl, collapse = "; ")
} else {
  paste(Sys.info()[["machine"]], parallel::detectCores(), "cores")
}))

for (sname in systems) {
  h <- sys_par[[sname]][["h"]]
  alpha <- sys_par[[sname]][["alpha"]]
  for (n in sizes) {
    d <- points(n)
    K <- kernel(d$X, h)
    for (prec in precs) {
      set_rkeops_options(list(precision = prec))
      for (pcr in preconds) {
        pc <- sub(":.*$", "", pcr)
        rk <- if (grepl(":", pcr)) as.integer(sub("^.*:", "", pcr)) else NULL
        w <- points(1000)
        suppressWarnings(solve(kernel(w$X, h), w$b, alpha = alpha,
                               precond = pc, maxit = 50))
        times <- numeric(reps)
        for (r in seq_len(reps)) {
          gc(FALSE)
          conv <- TRUE
          t0 <- proc.time()[[3]]
          x <- withCallingHandlers(
            solve(K, d$b, alpha = alpha, precond = pc, maxit = maxit,
                  rank = rk),
            rkeops_convergence_warning = function(w) {
              conv <<- FALSE
              invokeRestart("muffleWarning")
            })
          times[r] <- proc.time()[[3]] - t0
        }
        info <- attr(x, "precond")
        t <- stats::median(times)
        ko <- anchor("KO", sname, prec, n)
        dn <- anchor("DENSE", sname, prec, n)
        rows[[length(rows) + 1]] <- data.frame(
          system = sname, N = n, prec = prec, precond = pc,
          seconds = round(t, 3), iterations = attr(x, "iterations"),
          residual = signif(attr(x, "residual"), 3),
          converged = conv, rank = info$rank,
          setup_s = round(info$seconds, 3),
          columns_s = round(info$column_seconds, 3),
          gram_s = round(info$gram_seconds, 3),
          cycles = info$cycles,
          f64_products = info$exact_products,
          keops_s = ko, ko_ratio = round(ko / t, 2),
          dense_s = dn, dense_ratio = round(dn / t, 2),
          stringsAsFactors = FALSE)
        print(rows[[length(rows)]], row.names = FALSE)
      }
    }
    if (dense && n <= 2e4) {
      # the dense Cholesky solve with R's BLAS / LAPACK, float64.  Timed at
      # min(n, 4000) first; when the cubic extrapolation to n exceeds
      # dense_max seconds (reference BLAS), the estimate is printed ("~").
      dense_chol <- function(X, b) {
        gc(FALSE)
        t0 <- proc.time()[[3]]
        A <- exp(-as.matrix(stats::dist(X))^2 / (2 * h^2))
        diag(A) <- diag(A) + alpha
        R <- chol(A)
        x <- backsolve(R, backsolve(R, b, transpose = TRUE))
        t <- proc.time()[[3]] - t0
        res <- sqrt(sum((A %*% x - b)^2)) / sqrt(sum(b^2))
        list(t = t, res = res)
      }
      n0 <- min(n, 4000)
      r0 <- dense_chol(d$X[seq_len(n0), , drop = FALSE], d$b[seq_len(n0)])
      pred <- r0$t * (n / n0)^3
      est <- n > n0 && pred > dense_max
      r1 <- if (n == n0) r0 else if (est) list(t = pred, res = NA) else
        dense_chol(d$X, d$b)
      rows[[length(rows) + 1]] <- data.frame(
        system = sname, N = n, prec = "float64",
        precond = if (est) "dense chol ~" else "dense chol",
        seconds = round(r1$t, 3), iterations = NA,
        residual = signif(r1$res, 3), converged = TRUE, rank = NA,
        setup_s = NA, columns_s = NA, gram_s = NA, cycles = NA, f64_products = NA,
        keops_s = NA, ko_ratio = NA, dense_s = NA, dense_ratio = NA,
        stringsAsFactors = FALSE)
      print(rows[[length(rows)]], row.names = FALSE)
    }
  }
}

cat("\n== solve() benchmark ==\n")
print(do.call(rbind, rows), row.names = FALSE)
cat("\nBLAS:", sessionInfo()$BLAS, "(", extSoftVersion()[["BLAS"]], ")\nLAPACK:",
    La_library(), "\n")
cat("setup_s: the preconditioner's set-up (of the last run); of which columns_s:\n",
    "the kernel columns, gram_s: C = shift I + L^T L (pivchol)\n")
cat("seconds: median of", reps, "run(s); keops_s / dense_s: KeOps 2.3 CG / dense",
    "Cholesky (PyTorch) on the same machine (anchors=);\nko_ratio = keops_s /",
    "seconds, dense_ratio = dense_s / seconds (> 1: rkeops faster)\n")
# on the CPU, our solves against the dense Cholesky of this run (R's BLAS)
tab <- do.call(rbind, rows)
for (sname in unique(tab$system)) for (n in unique(tab$N)) {
  dr <- tab[tab$system == sname & tab$N == n & grepl("dense", tab$precond), ]
  if (nrow(dr) == 1L) {
    ours <- tab[tab$system == sname & tab$N == n & !grepl("dense", tab$precond), ]
    cat(sprintf("%s N=%g: dense chol %.3g s / %s %s %.3g s = %.2f\n", sname, n,
                dr$seconds, ours$prec, ours$precond, ours$seconds,
                dr$seconds / ours$seconds), sep = "")
  }
}
