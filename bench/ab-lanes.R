# bench/ab-lanes.R -- one GPU listed several times (rkeops_use_gpu(c(0, 0)),
# issue 15): the output rows split over 2 or 4 lanes of the device (a host
# thread, a stream, a memory pool and staging buffers each, be-cuda.c),
# against the device listed once, in the same run.  float32, medians of
# 7 rounds of 5 calls; every split result is compared with the single one.
#   Rscript bench/ab-lanes.R            N = 1e5 (and the skewed M = 1e6, N = 1e3)
suppressMessages(library(rkeops))
now <- function() proc.time()[["elapsed"]]
rkeops_use_gpu()
rkeops_use_float32()
set.seed(1)
n <- as.numeric(Sys.getenv("N", "1e5"))
x <- matrix(runif(3 * n), n, 3)
y <- matrix(runif(3 * n), n, 3)
b <- runif(n)
xs <- matrix(runif(3e6), 1e6, 3)
knn <- keops_kernel("ArgKMin_Reduction(SqDist(x, y), 10, 1)", c("x=Vi(3)", "y=Vj(3)"))
gs <- keops_kernel("Sum_Reduction(Exp(-g * SqDist(x, y)) * b, 1)",
                   c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)", "g=Pm(1)"))
cases <- list(
  list("knn K=10 D=3", function() knn(list(x, y))),
  list("gauss D=3", function() gs(list(x, y, b, 50))),
  list("gauss M=1e6 N=1e3", function() gs(list(xs, y[1:1000, ], b[1:1000], 50)))
)
rep_med <- function(f) {
  f()
  median(vapply(1:7, function(i) { s <- now(); for (k in 1:5) f(); (now() - s) / 5 }, 0))
}
cat(sprintf("N = %g, float32, seconds (median of 7 x 5 calls)\n", n))
cat(sprintf("%-20s %10s %10s %10s %8s %8s %s\n", "case", "1 lane", "2 lanes",
            "4 lanes", "2/1", "4/1", "same"))
for (cs in cases) {
  t <- numeric(3)
  same <- TRUE
  for (k in 1:3) {
    rkeops_use_gpu(rep(0L, c(1, 2, 4)[k]))
    r <- cs[[2]]()
    if (k == 1) r1 <- r else same <- same && isTRUE(all.equal(r, r1, tolerance = 1e-6))
    t[k] <- rep_med(cs[[2]])
  }
  cat(sprintf("%-20s %10.5f %10.5f %10.5f %8.2f %8.2f %s\n", cs[[1]], t[1], t[2],
              t[3], t[2] / t[1], t[3] / t[1], same))
}
