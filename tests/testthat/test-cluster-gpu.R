# test-cluster-gpu.R -- cluster workers on the GPU backend (skipped without a
# GPU).  On the H200, test-cluster.R run with GPU workers had both workers
# die with a segfault in ffi_run when a kernel compiled before a
# re-registration of the cluster (rkeops_cluster(NULL), then rkeops_cluster(cl)
# again) was used again; this file replays that sequence against dense R.
# RKEOPS_TEST_WORKER_LOG=<file> sends the workers' output there.

skip_on_cran()
skip_if_not_installed("parallel")
skip_if(tryCatch(rkeops:::rk_config()$gpu_count, error = function(e) 0L) < 1L,
        "no usable GPU")

test_that("GPU workers: a kernel reused after the cluster is registered again", {
  log <- Sys.getenv("RKEOPS_TEST_WORKER_LOG", "/dev/null")
  cl <- parallel::makePSOCKcluster(2, outfile = log)
  on.exit({
    rkeops_cluster(NULL)
    try(parallel::stopCluster(cl), silent = TRUE)
  }, add = TRUE)
  set.seed(3)
  x <- matrix(runif(101 * 3), 101)
  y <- matrix(runif(67 * 3), 67)
  d2 <- outer(rowSums(x^2), rowSums(y^2), "+") - 2 * x %*% t(y)
  op <- keops_kernel("ArgMin_Reduction(SqDist(x, y), 0)", c("x=Vi(3)", "y=Vj(3)"))
  for (round in 1:3) {
    rkeops_cluster(cl, backend = "gpu", device = 0, ncore = 1)
    expect_equal(as.vector(op(list(x, y))), apply(d2, 2, which.min),
                 label = sprintf("keops_kernel, registration %d", round))
    rkeops_cluster(NULL)
    rkeops_cluster(cl, backend = "gpu", device = 0, ncore = 1)
    got <- argmin(sqdist(Vi(x), Vj(y)), "i")
    expect_equal(as.vector(got), apply(d2, 2, which.min),
                 label = sprintf("LazyTensor, registration %d", round))
    rkeops_cluster(NULL)
  }
})
