# bench/ab-block.R -- the block product of solve() and kernel_logdet()
# (Sum_Reduction(K * b_j, 1) with b_j a Vj of E columns: one CG iteration
# for E right-hand sides) under the code-generation knobs of the
# environment (RKEOPS_CUDA_GEOM, RKEOPS_CUDA_UNROLLJ): median times of a
# Gaussian kernel block product, D = 3, for several E, both precisions;
# each result saved to <dir>/<label>.rds so that variants can be compared.
# Usage: Rscript bench/ab-block.R label dir [n=1e5] [E=1,8,16,31,32,64] [cpu]
#        Rscript bench/ab-block.R compare dir   (every variant against "base")
suppressPackageStartupMessages(library(rkeops))
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE),
                                                  value = TRUE)[1])), "common.R"))
label <- args[1]
dir <- if (length(args) > 1) args[2] else "."
if (label == "compare") {
  base <- readRDS(file.path(dir, "base.rds"))
  for (f in list.files(dir, "\\.rds$", full.names = TRUE)) {
    r <- readRDS(f)
    for (nm in names(base$res)) {
      a <- base$res[[nm]]; b <- r$res[[nm]]
      cat(sprintf("%-12s %-16s %9.5f s  (base %9.5f)  diff-to-base %.3g\n",
                  sub("\\.rds$", "", basename(f)), nm, r$time[[nm]],
                  base$time[[nm]], max(abs(a - b)) / max(abs(a))))
    }
  }
  quit(status = 0)
}
now <- function() proc.time()[["elapsed"]]
if ("cpu" %in% args) rkeops_use_cpu() else rkeops_use_gpu(0)
n <- as.numeric(opt("n", 1e5))
Es <- as.integer(opt("E", c(1, 8, 16, 31, 32, 64)))
set.seed(3)
x <- matrix(runif(3 * n), n, 3)
res <- list(); tm <- list()
for (prec in c("float64", "float32")) {
  if (prec == "float64") rkeops_use_float64() else rkeops_use_float32()
  for (E in Es) {
    op <- keops_kernel("Sum_Reduction(s * Exp(-g * SqDist(x, y)) * b, 1)",
                       c("x=Vi(3)", "y=Vj(3)", sprintf("b=Vj(%d)", E),
                         "g=Pm(1)", "s=Pm(1)"))
    b <- matrix(rnorm(n * E), n, E)
    f <- function() op(list(x, x, b, 1 / (2 * 0.69^2), 0.69))
    invisible(f())
    t <- numeric(5)
    for (r in 1:5) { t0 <- now(); v <- f(); t[r] <- now() - t0 }
    nm <- sprintf("%s_E%d", prec, E)
    tm[[nm]] <- median(t)
    res[[nm]] <- v[1:min(n, 2e4), , drop = FALSE]
    cat(sprintf("%-12s %-16s %9.5f s  %7.1f Gpair-col/s\n", label, nm, tm[[nm]],
                n * n * E / tm[[nm]] / 1e9))
  }
}
saveRDS(list(res = res, time = tm), file.path(dir, paste0(label, ".rds")))
