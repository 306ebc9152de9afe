# test-kriging.R -- ordinary kriging of log zinc on sp::meuse through solve():
# predictions and kriging variances against gstat::krige (same variogram).

test_that("ordinary kriging by solve() matches gstat::krige on meuse", {
  skip_if_not_installed("gstat")
  skip_if_not_installed("sp")
  local_rk_cpu(prec = 64)
  e <- new.env()
  utils::data(meuse, meuse.grid, package = "sp", envir = e)
  set.seed(3)
  grid <- e$meuse.grid[sample(nrow(e$meuse.grid), 300), ]
  X <- as.matrix(e$meuse[, c("x", "y")])
  X0 <- as.matrix(grid[, c("x", "y")])
  z <- log(e$meuse$zinc)
  obs <- data.frame(x = X[, 1], y = X[, 2], z = z)
  new <- data.frame(x = X0[, 1], y = X0[, 2])
  vm <- gstat::vgm(0.72, "Exp", 450, 0.05)
  kg <- gstat::krige(z ~ 1, ~x + y, obs, new, vm, debug.level = 0)
  nug <- 0.05; ps <- 0.72; a <- 450
  K <- ps * exp(-norm2(Vi(X) - Vj(X)) / a)
  S <- solve(K, cbind(1, z), alpha = nug, tol = 1e-10, precond = "pivchol")
  m <- sum(S[, 2]) / sum(S[, 1])
  w <- S[, 2] - m * S[, 1]
  pred <- m + as.vector((ps * exp(-norm2(Vi(X0) - Vj(X)) / a)) %*% w)
  C0 <- ps * exp(-sqrt(outer(X[, 1], X0[, 1], "-")^2 +
                       outer(X[, 2], X0[, 2], "-")^2) / a)
  W <- solve(K, C0, alpha = nug, tol = 1e-10, precond = "pivchol")
  v <- nug + ps - colSums(C0 * W) + (1 - colSums(W))^2 / sum(S[, 1])
  expect_lt(max(abs(pred - kg$var1.pred) / abs(kg$var1.pred)), 1e-6)
  expect_lt(max(abs(v - kg$var1.var) / abs(kg$var1.var)), 1e-6)
})
