# bench/ab-scheme.R -- the cost of each sum_scheme in float32 (issue 11,
# item 1), the schemes timed interleaved (time_rotating(), bench/common.R)
# after one warm-up call of each:
#   Sum_Reduction(Exp(-g SqDist(x, y)) b, index), D = 3, N = M, g = 50
#   (the Gaussian of bench/gpu.R) and g = 1 (a wide kernel, every term
#   counts)
# Prints per scheme: the median and range of `reps` rounds, the ratio of
# the medians to direct_sum, and the float32 error against float64 (max
# abs error / max abs value).  The timed call includes what a user's call
# does (R doubles in, conversion, transfers, results back).
# The code-generation knobs of the environment (RKEOPS_CUDA_TSUM, _GEOM,
# _UNROLLJ) apply to every scheme: run one process per variant.
# Usage: Rscript bench/ab-scheme.R [n=1e6] [reps=7] [g=50,1] [index=1] [cpu]
suppressPackageStartupMessages(library(rkeops))
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE),
                                                  value = TRUE)[1])), "common.R"))
if ("cpu" %in% args) rkeops_use_cpu() else rkeops_use_gpu(0)
n <- as.numeric(opt("n", 1e6))
reps <- as.integer(opt("reps", 7))
gs <- as.numeric(opt("g", c(50, 1)))
# index=1 (default): bench/gpu.R's Gaussian, a sum over j for each x_i;
# index=0: the sum over i for each y_j, with b_j outside the reduction
idx <- as.integer(opt("index", 1))
cat(rkeops:::rk_config()$description)
cat(sprintf("# bench/ab-scheme.R  n = %g  reps = %d  index %d  commit %s  TSUM=%s GEOM=%s UNROLLJ=%s\n",
            n, reps, idx, Sys.getenv("RKEOPS_COMMIT", "?"), Sys.getenv("RKEOPS_CUDA_TSUM"),
            Sys.getenv("RKEOPS_CUDA_GEOM"), Sys.getenv("RKEOPS_CUDA_UNROLLJ")))
set.seed(1)
x <- matrix(runif(3 * n), n, 3)
y <- matrix(runif(3 * n), n, 3)
b <- runif(n)
f <- sprintf("Sum_Reduction(Exp(-g * SqDist(x, y)) * b, %d)", idx)
a <- c("x = Vi(3)", "y = Vj(3)", "b = Vj(1)", "g = Pm(1)")
schemes <- c("direct_sum", "block_sum", "kahan_scheme")
for (g in gs) {
  rkeops_use_float64()
  r64 <- keops_kernel(f, a)(list(x, y, b, g))
  rkeops_use_float32()
  ops <- lapply(schemes, function(s) keops_kernel(f, a, sum_scheme = s))
  names(ops) <- schemes
  err <- vapply(schemes, function(s) {
    r <- ops[[s]](list(x, y, b, g))
    max(abs(r - r64)) / max(abs(r64))
  }, numeric(1))
  tm <- time_rotating(lapply(ops, function(op) function() op(list(x, y, b, g))),
                      reps)
  med <- apply(tm, 2, median)
  cat(sprintf("\n## g = %g\n%-13s %9s %9s %9s %7s %9s\n", g, "scheme",
              "median_s", "min_s", "max_s", "ratio", "rel_err"))
  for (s in schemes)
    cat(sprintf("%-13s %9.4f %9.4f %9.4f %7.3f %9.2e\n", s, med[[s]],
                min(tm[, s]), max(tm[, s]), med[[s]] / med[["direct_sum"]],
                err[[s]]))
}
