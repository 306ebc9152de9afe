# bench/ab-pipe.R -- pipelined CUDA calls (be-cuda.c run_pipe, issue 11
# item 4): the skewed shape, M = 1e6 rows, N points, a Gaussian sum, with
# RKEOPS_CUDA_PIPE=0 (one block) against the default rule, in interleaved
# rounds of one run.  Prints, per precision and N, the median of single
# calls and of bench-style batches (20 calls after gc(), as bench/gpu.R's
# timeit), whether the default pipelined the call, and the largest relative
# difference of the two results (0: bit-identical).  R's own cost of a fresh
# 8 MB result (numeric(1e6)) is printed first, the floor of every row.
# Usage (GPU machine): Rscript bench/ab-pipe.R [rounds=2]
suppressPackageStartupMessages(library(rkeops))
args <- commandArgs(trailingOnly = TRUE)
rounds <- 2L
for (a in args) if (grepl("^rounds=", a)) rounds <- as.integer(sub("^rounds=", "", a))
if (rkeops:::rk_config()$gpu_count < 1L) {
  cat("no usable GPU: nothing to measure\n")
  quit(save = "no")
}
rkeops_use_gpu(0)
now <- function() as.numeric(Sys.time())
single <- function(fn, reps = 15) {
  fn(); fn()
  median(vapply(seq_len(reps), function(i) { s <- now(); fn(); now() - s }, 1))
}
batch <- function(fn, reps = 3) {
  fn()
  median(vapply(seq_len(reps), function(i) {
    gc(FALSE); s <- now(); for (k in 1:20) fn(); (now() - s) / 20
  }, 1))
}
piped <- function() .Call(rkeops:::ffi_cuda_meminfo, 0L)[["pipelined"]]
cat(sprintf("R numeric(1e6): single %.3f ms, batch %.3f ms\n",
            1e3 * single(function() numeric(1e6)), 1e3 * batch(function() numeric(1e6))))
set.seed(1)
op <- keops_kernel("Sum_Reduction(Exp(-g * SqDist(x, y)) * b, 1)",
                   c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)", "g=Pm(1)"))
X <- matrix(runif(3e6), 1e6, 3)
cat(sprintf("%-4s %-6s %-9s %12s %12s %12s %12s %8s %10s\n", "prec", "N", "pipelined",
            "one single", "pipe single", "one batch", "pipe batch", "ratio", "maxreldiff"))
for (prec in c(32, 64)) {
  if (prec == 32) rkeops_use_float32() else rkeops_use_float64()
  for (N in c(1, 100, 1e3, 1e4)) {
    Y <- matrix(runif(3 * N), N, 3)
    B <- runif(N)
    call <- function() op(list(X, Y, B, 50))
    t <- list(A = NULL, B = NULL)
    used <- FALSE
    for (r in seq_len(rounds)) for (mode in c("0", "")) {
      Sys.setenv(RKEOPS_CUDA_PIPE = mode)
      p0 <- piped()
      tt <- c(single(call), batch(call))
      if (mode == "") used <- piped() > p0
      key <- if (mode == "0") "A" else "B"
      t[[key]] <- rbind(t[[key]], tt)
    }
    Sys.setenv(RKEOPS_CUDA_PIPE = "0"); a <- call()
    Sys.unsetenv("RKEOPS_CUDA_PIPE"); b <- call()
    ma <- apply(t$A, 2, median); mb <- apply(t$B, 2, median)
    cat(sprintf("f%-3d %-6g %-9s %9.3f ms %9.3f ms %9.3f ms %9.3f ms %8.3f %10.1e\n",
                prec, N, used, 1e3 * ma[1], 1e3 * mb[1], 1e3 * ma[2], 1e3 * mb[2],
                mb[1] / ma[1], max(abs(a - b)) / max(abs(a))))
  }
}
