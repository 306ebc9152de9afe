# bench/ab-direct.R -- one side of an interleaved before/after timing of the
# Gaussian sum (D = 3, float32) on the GPU with each summation scheme, at
# N = M = 1e4, 1e5, 1e6, and a small call (100 x 100): the medians of this
# process's timed calls, one line per case.  tools/device-ab.sh runs it
# alternately with an older install (R_LIBS) and this one, several times, so
# that the two are compared in the same lease, as ratios of medians.
#   Rscript bench/ab-direct.R LABEL
suppressMessages(library(rkeops))
label <- commandArgs(TRUE)[1]
now <- function() proc.time()[["elapsed"]]
timeit <- function(fn, reps) {
  invisible(fn())
  t0 <- now()
  invisible(fn())
  inner <- if (now() - t0 < 0.05) 20L else 1L
  median(vapply(seq_len(reps), function(i) {
    s <- now()
    for (k in seq_len(inner)) fn()
    (now() - s) / inner
  }, numeric(1)))
}
rkeops_use_gpu()
rkeops_use_float32()
gauss <- "Sum_Reduction(Exp(-g * SqDist(x, y)) * b, 1)"
args <- c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)", "g=Pm(1)")
set.seed(1)
for (sch in c("direct_sum", "block_sum")) {
  op <- keops_kernel(gauss, args, sum_scheme = sch)
  for (n in c(1e4, 1e5, 1e6)) {
    x <- matrix(runif(3 * n), n, 3)
    y <- matrix(runif(3 * n), n, 3)
    b <- runif(n)
    reps <- if (n >= 1e6) 5 else 11
    s <- timeit(function() op(list(x, y, b, 50)), reps)
    cat(sprintf("%s %s_%g %.6f\n", label, sch, n, s))
  }
}
op <- keops_kernel(gauss, args)
x <- matrix(runif(300), 100, 3)
b <- runif(100)
cat(sprintf("%s small_100 %.7f\n", label, timeit(function() op(list(x, x, b, 50)), 11)))
