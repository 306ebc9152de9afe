# bench/ab-wide.R -- the CUDA kernels of wide formulas (issue 11, item 2)
# under the code-generation knobs of the environment (RKEOPS_CUDA_UNROLL,
# RKEOPS_CUDA_TLOAD, RKEOPS_CUDA_GEOM): median times of kNN (K = 10) and
# Gaussian sums at D = 128, 50 and 3 (float32), each result saved to
# <dir>/<label>.rds so that variants can be compared.
# Usage: Rscript bench/ab-wide.R label dir      (one variant)
#        Rscript bench/ab-wide.R compare dir    (every saved variant against
#                                                the one labelled "base")
suppressPackageStartupMessages(library(rkeops))
args <- commandArgs(trailingOnly = TRUE)
label <- args[1]
dir <- if (length(args) > 1) args[2] else "."
if (label == "compare") {
  fs <- list.files(dir, "\\.rds$", full.names = TRUE)
  base <- readRDS(file.path(dir, "base.rds"))
  for (f in fs) {
    r <- readRDS(f)
    for (nm in names(base$res)) {
      a <- base$res[[nm]]
      b <- r$res[[nm]]
      d <- if (is.integer(a)) mean(a != b) else max(abs(a - b)) / max(abs(a))
      cat(sprintf("%-10s %-22s %10.5f s  diff-to-base %.3g\n",
                  sub("\\.rds$", "", basename(f)), nm, r$time[[nm]], d))
    }
  }
  quit(status = 0)
}
now <- function() proc.time()[["elapsed"]]
timeit <- function(f, reps) {
  invisible(f())
  t <- numeric(reps)
  for (r in seq_len(reps)) {
    t0 <- now()
    invisible(f())
    t[r] <- now() - t0
  }
  median(t)
}
rkeops_use_gpu(0)
rkeops_use_float32()
set.seed(11)
res <- list()
tm <- list()
case <- function(name, D, n, kind, reps = 5) {
  x <- matrix(runif(D * n), n, D)
  y <- matrix(runif(D * n), n, D)
  if (kind == "knn") {
    op <- keops_kernel("ArgKMin_Reduction(SqDist(x, y), 10, 1)",
                       c(sprintf("x=Vi(%d)", D), sprintf("y=Vj(%d)", D)))
    f <- function() op(list(x, y))
  } else {
    b <- runif(n)
    op <- keops_kernel("Sum_Reduction(Exp(-g * SqDist(x, y)) * b, 1)",
                       c(sprintf("x=Vi(%d)", D), sprintf("y=Vj(%d)", D),
                         "b=Vj(1)", "g=Pm(1)"))
    g <- 2 / D
    f <- function() op(list(x, y, b, g))
  }
  tm[[name]] <<- timeit(f, reps)
  r <- f()
  res[[name]] <<- if (is.matrix(r)) r[seq_len(min(nrow(r), 2e4)), , drop = FALSE] else r
  cat(sprintf("%-10s %-22s %10.5f s\n", label, name, tm[[name]]))
}
case("knn_D128_1e5", 128, 1e5, "knn", 3)
case("gauss_D128_1e5", 128, 1e5, "gauss", 3)
case("knn_D50_1e5", 50, 1e5, "knn")
case("gauss_D50_1e5", 50, 1e5, "gauss")
case("knn_D3_1e5", 3, 1e5, "knn", 7)
case("gauss_D3_1e6", 3, 1e6, "gauss", 3)
case("knn_D64_1e5", 64, 1e5, "knn")
saveRDS(list(res = res, time = tm), file.path(dir, paste0(label, ".rds")))
