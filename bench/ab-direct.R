# bench/ab-direct.R -- one side of an interleaved before/after timing of the
# Gaussian sum (D = 3, float32) on the GPU with each summation scheme, at
# N = M = 1e4, 1e5, 1e6, a small call (100 x 100), the medians of this
# process's timed calls, one line per case, and three first calls of a new
# formula (first_call, and first_call_parse: keops_kernel() alone).
# tools/device-ab.sh runs it
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
# the first call of a new formula (parse, generate, compile, load, run),
# three times, each formula new to this process and to the kernel cache
for (r in 1:3) {
  k <- as.integer((proc.time()[["elapsed"]] * 1000 + r) %% 999983) + 1L
  t0 <- now()
  fop <- keops_kernel(sprintf("Sum_Reduction(Exp(-SqDist(x, y) * IntCst(%d)) * b, 1)", k),
                      c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)"))
  t1 <- now()
  invisible(fop(list(matrix(runif(30), 10, 3), matrix(runif(30), 10, 3), runif(10))))
  t2 <- now()
  cat(sprintf("%s first_call %.4f\n%s first_call_parse %.4f\n", label, t2 - t0, label, t1 - t0))
}
