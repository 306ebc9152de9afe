# helper-solve.R -- kernels shared by test-solve.R and test-pic.R, as
# LazyTensors and as dense matrices built with dist(), and the relative
# Frobenius error.

sv_kernels <- list(
  gaussian = list(
    lt = function(X, l) exp(-sqdist(Vi(X), Vj(X)) / (2 * l^2)),
    dense = function(X, l) exp(-as.matrix(dist(X))^2 / (2 * l^2))
  ),
  exponential = list(
    lt = function(X, l) exp(-norm2(Vi(X) - Vj(X)) / l),
    dense = function(X, l) exp(-as.matrix(dist(X)) / l)
  ),
  matern32 = list(
    lt = function(X, l) {
      r <- norm2(Vi(X) - Vj(X)) * (sqrt(3) / l)
      (1 + r) * exp(-r)
    },
    dense = function(X, l) {
      r <- as.matrix(dist(X)) * (sqrt(3) / l)
      (1 + r) * exp(-r)
    }
  )
)

rel_fro <- function(x, ref) sqrt(sum((x - ref)^2)) / sqrt(sum(ref^2))
