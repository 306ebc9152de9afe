# quakes.R -- rkeops on datasets::quakes (1000 earthquakes near Fiji):
# a Gaussian kernel sum and the K nearest neighbours of every point,
# each checked against the dense computation in R, with timings (first call
# including the compilation of the kernel, second call from the cache).
#
#   Rscript demo/quakes.R    (from the source tree), or, once installed,
#   demo("quakes", package = "rkeops")

library(rkeops)

timed <- function(expr) {
  t0 <- proc.time()[["elapsed"]]
  value <- force(expr)
  list(value = value, seconds = proc.time()[["elapsed"]] - t0)
}

rkeops_use_float64()
cat("rkeops", format(packageVersion("rkeops")), "-",
    get_rkeops_options("backend"), "backend\n\n")

# 1000 points in 3 dimensions: latitude, longitude, depth, scaled
X <- scale(as.matrix(datasets::quakes[, c("lat", "long", "depth")]))
attributes(X) <- list(dim = dim(X))
n <- nrow(X)
set.seed(2024)
b <- matrix(rnorm(n * 2), n, 2)
sigma2 <- 0.5

# ---- Gaussian kernel sum: a_i = sum_j exp(-|x_i - x_j|^2 / s) b_j ---------
gauss <- keops_kernel(
  "Sum_Reduction(Exp(-SqDist(x, y) / s) * b, 1)",
  c("x=Vi(3)", "y=Vj(3)", "b=Vj(2)", "s=Pm(1)")
)
first <- timed(gauss(list(X, X, b, sigma2)))
second <- timed(gauss(list(X, X, b, sigma2)))
dense <- timed({
  D2 <- as.matrix(stats::dist(X))^2
  exp(-D2 / sigma2) %*% b
})
rel <- max(abs(second$value - dense$value)) / max(abs(dense$value))
cat("Gaussian kernel sum (", n, " x ", n, ", dim 3 -> 2)\n", sep = "")
print(head(second$value, 5))
cat(sprintf("  max relative error vs dense R: %.3g\n", rel))
cat(sprintf("  rkeops first call (with compilation): %.3f s\n", first$seconds))
cat(sprintf("  rkeops second call:                    %.3f s\n", second$seconds))
cat(sprintf("  dense R:                               %.3f s\n\n", dense$seconds))

# ---- K nearest neighbours ---------------------------------------------------
K <- 5
knn <- keops_kernel(
  sprintf("ArgKMin_Reduction(SqDist(x, y), %d, 1)", K),
  c("x=Vi(3)", "y=Vj(3)")
)
first <- timed(knn(list(X, X)))
second <- timed(knn(list(X, X)))
idx <- second$value
dense <- timed({
  D2 <- as.matrix(stats::dist(X))^2
  t(apply(D2, 1, function(d) order(d)[seq_len(K)]))
})
# compare the distances (ties may order indices differently)
dist_of <- function(ix) {
  t(vapply(seq_len(n), function(i) rowSums((X[ix[i, ], , drop = FALSE] -
    matrix(X[i, ], K, 3, byrow = TRUE))^2), numeric(K)))
}
rel_knn <- max(abs(dist_of(idx) - dist_of(dense$value))) /
  max(dist_of(dense$value))
cat(sprintf("%d nearest neighbours (1-based indices; each point is its own first)\n", K))
print(head(idx, 5))
cat(sprintf("  same neighbours as dense R: %.1f%% of rows\n",
            100 * mean(rowSums(idx == dense$value) == K)))
cat(sprintf("  max relative error of the neighbour distances: %.3g\n", rel_knn))
if (requireNamespace("FNN", quietly = TRUE)) {
  fnn <- FNN::get.knnx(X, X, k = K)$nn.index
  cat(sprintf("  same neighbours as FNN::get.knnx: %.1f%% of rows\n",
              100 * mean(rowSums(idx == fnn) == K)))
}
cat(sprintf("  rkeops first call (with compilation): %.3f s\n", first$seconds))
cat(sprintf("  rkeops second call:                    %.3f s\n", second$seconds))
cat(sprintf("  dense R:                               %.3f s\n", dense$seconds))

ok <- rel < 1e-10 && rel_knn < 1e-10
cat(if (ok) "\nDemo OK\n" else "\nDemo FAILED\n")
if (!ok) quit(status = 1)
