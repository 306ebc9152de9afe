# bench/ab-solve.R -- where a solve's time goes (a script, not a test; GPU).
#
#   Rscript bench/ab-solve.R
#
# The easy system of bench/solve.R (Gaussian kernel, bandwidth 0.05,
# alpha = 1, D = 3, precond = "none") at N = 2e4, 5e4, 1e5 in float32 and
# float64: the median of 3 solves, split by the solve's "seconds" attribute
# (setup, kernels, pcg, of which products and precond_apply), the time per
# iteration, and one standalone reduction of the same block product
# (sum_reduction of K * b over j, which converts and uploads the data each
# call) for comparison with the per-iteration product.
library(rkeops)
set_rkeops_options(list(backend = "GPU", precision = "float32"))
set.seed(1)
for (n in c(2e4, 5e4, 1e5)) for (prec in c("float32", "float64")) {
  set_rkeops_options(list(precision = prec))
  X <- matrix(runif(n * 3), n); b <- runif(n); h <- 0.05
  K <- exp(-sqdist(Vi(X), Vj(X)) / (2 * h^2))
  invisible(solve(K, b, alpha = 1, precond = "none"))
  r <- replicate(3, { t0 <- proc.time()[[3]]; x <- solve(K, b, alpha = 1, precond = "none"); c(proc.time()[[3]] - t0, attr(x, "seconds"), sum(attr(x, "iterations"))) })
  m <- apply(r, 1, median)
  # standalone product: the same Gaussian sum with b as Vj, reduced over j
  B <- Vj(matrix(b)); S <- exp(-sqdist(Vi(X), Vj(X)) / (2 * h^2)) * B
  invisible(sum_reduction(S, "j"))
  tp <- median(replicate(5, system.time(sum_reduction(S, "j"))[[3]]))
  cat(sprintf("n %g %s total %.4f it %d | %s | per-it %.2f ms | standalone %.2f ms\n", n, prec, m[1], as.integer(m[length(m)]),
      paste(sprintf("%s=%.4f", names(m)[2:(length(m)-1)], m[2:(length(m)-1)]), collapse = " "),
      1000 * m[1] / m[length(m)], 1000 * tp))
}
