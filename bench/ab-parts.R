# bench/ab-parts.R -- how the split of the reduction over blockIdx.y (parts,
# be-cuda.c choose_parts) pays on the GPU: kNN (K = 10, D = 3, float32) and
# the Gaussian sum at N = M = 1e5, with RKEOPS_CUDA_PARTS = 1, 2, 4, ..., and
# the automatic choice (the developer knob unset).  One line per case.
suppressMessages(library(rkeops))
now <- function() proc.time()[["elapsed"]]
rkeops_use_gpu()
rkeops_use_float32()
set.seed(1)
n <- as.numeric(Sys.getenv("N", "1e5"))
x <- matrix(runif(3 * n), n, 3)
y <- matrix(runif(3 * n), n, 3)
b <- runif(n)
knn <- keops_kernel("ArgKMin_Reduction(SqDist(x, y), 10, 1)", c("x=Vi(3)", "y=Vj(3)"))
gs <- keops_kernel("Sum_Reduction(Exp(-g * SqDist(x, y)) * b, 1)",
                   c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)", "g=Pm(1)"))
rep_med <- function(f) {
  f()
  median(vapply(1:7, function(i) { s <- now(); for (k in 1:5) f(); (now() - s) / 5 }, 0))
}
for (p in strsplit(Sys.getenv("PARTS", "auto,1,2,4,8,16,32"), ",")[[1]]) {
  if (p == "auto") Sys.unsetenv("RKEOPS_CUDA_PARTS") else Sys.setenv(RKEOPS_CUDA_PARTS = p)
  tk <- rep_med(function() knn(list(x, y)))
  tg <- rep_med(function() gs(list(x, y, b, 50)))
  # the kernel alone: results left on the device is not possible from R, so
  # also time a 1-column reduction of the same pairs for the host share
  cat(sprintf("parts %-4s knn %.5f s  gauss %.5f s\n", p, tk, tg))
}
Sys.unsetenv("RKEOPS_CUDA_PARTS")
# the host share of kNN: the same number of output values from a cheap sum
t1 <- rep_med(function() knn(list(x[1:1000, , drop = FALSE], y)))
cat(sprintf("knn with 1e3 rows: %.5f s\n", t1))
