# test-pivchol.R -- the "pivchol" preconditioner's factor (the blocked
# greedy pivoted Cholesky of src/solve-precond.c) against the plain greedy
# algorithm written here in R, one pivot per step, on dense kernel
# matrices: the same pivots in the same order, the same L, the same trace
# left, and log det(shift I + L L^T) from base::determinant().

pc_dense <- function(A, rank = NULL, alpha = 0, f32 = FALSE) {
  .Call(rkeops:::ffi_pivchol_dense, A, if (is.null(rank)) -1L else as.integer(rank),
        as.double(alpha), f32)
}

# the plain greedy pivoted Cholesky; rank = NULL: the automatic rule of
# ?solve (trace left <= 1000 max(alpha, 1e-9 tr K), or doubling the rank
# removed less than 10% of the trace, or rank min(n, 1024, 2^26 / n))
pc_reference <- function(A, rank = NULL, alpha = 0, tiny_rel = 1e-13) {
  n <- nrow(A)
  d <- diag(A)
  tr0 <- sum(d)
  tiny <- max(d) * tiny_rel
  sfloor <- max(alpha, 1e-9 * tr0)
  rmax <- if (is.null(rank)) min(1024, floor(2^26 / n), n) else min(rank, n)
  L <- matrix(0, n, rmax)
  piv <- integer(0)
  done <- rep(FALSE, n)
  hist <- tr0
  for (k in seq_len(rmax)) {
    dd <- ifelse(done, -Inf, d)
    p <- which.max(dd)
    if (!(dd[p] > tiny)) break
    prev <- seq_len(k - 1)
    l <- (A[, p] - L[, prev, drop = FALSE] %*% L[p, prev]) / sqrt(d[p])
    l[done] <- 0
    l[p] <- sqrt(d[p])
    L[, k] <- l
    d <- pmax(d - l^2, 0)
    d[p] <- 0
    done[p] <- TRUE
    piv <- c(piv, p)
    tr <- sum(d)
    hist <- c(hist, tr)
    if (is.null(rank) &&
        (tr <= 1000 * sfloor || (k >= 32 && tr > 0.9 * hist[k %/% 2 + 1])))
      break
  }
  list(L = L[, seq_along(piv), drop = FALSE], piv = piv, trace_left = sum(d))
}

pc_check <- function(A, rank = NULL, alpha = 0, label = "") {
  got <- pc_dense(A, rank, alpha)
  ref <- pc_reference(A, rank, alpha)
  expect_identical(got$piv, ref$piv, label = paste(label, "pivots"))
  expect_equal(dim(got$L), dim(ref$L), label = paste(label, "dim(L)"))
  expect_lt(max(abs(got$L - ref$L)), 1e-10 * max(abs(ref$L)))
  expect_equal(got$trace_left, ref$trace_left, tolerance = 1e-8,
               label = paste(label, "trace left"))
  # the pivots' rows and columns of A are reproduced exactly
  r <- length(got$piv)
  if (r > 0) {
    LL <- tcrossprod(got$L)
    expect_lt(max(abs(LL[, got$piv] - A[, got$piv])), 1e-10 * max(abs(A)))
  }
  # log det P, P = shift I + L L^T
  Pm <- tcrossprod(got$L) + diag(got$shift, nrow(A))
  expect_equal(got$logdet, as.numeric(determinant(Pm)$modulus),
               tolerance = 1e-9, label = paste(label, "logdet"))
  invisible(got)
}

test_that("the blocked pivoted Cholesky takes the plain greedy pivots (fixed rank)", {
  set.seed(1)
  X <- matrix(runif(600 * 3), 600, 3)
  D2 <- as.matrix(dist(X))^2
  G <- exp(-D2 / (2 * 0.3^2))
  for (r in c(1, 5, 31, 32, 33, 64, 150))
    pc_check(G, rank = r, alpha = 1e-3, label = paste("gaussian rank", r))
  E <- exp(-sqrt(D2) / 0.2)
  pc_check(E, rank = 120, alpha = 1e-2, label = "exponential")
  # rank n: the whole Cholesky factor of a full-rank matrix
  Xs <- X[1:60, ]
  Es <- exp(-as.matrix(dist(Xs)) / 0.2)
  got <- pc_check(Es, rank = 60, label = "full rank")
  expect_equal(tcrossprod(got$L), unname(Es), tolerance = 1e-12)
})

test_that("the blocked pivoted Cholesky follows the automatic rank rule", {
  set.seed(2)
  X <- matrix(runif(800 * 3), 800, 3)
  G <- exp(-as.matrix(dist(X))^2 / (2 * 0.2^2))
  for (a in c(1e-1, 1e-3)) {
    got <- pc_check(G, alpha = a, label = paste("auto, alpha", a))
    expect_gt(length(got$piv), 10)
  }
  # a smooth kernel in 1-D is numerically low-rank: the trace rule stops it
  x <- matrix(seq(0, 1, length.out = 500))
  G1 <- exp(-as.matrix(dist(x))^2 / (2 * 0.3^2))
  got <- pc_check(G1, alpha = 1e-6, label = "1-D")
  expect_lt(length(got$piv), 40)
  expect_lte(got$trace_left, 1000 * 1e-6)
})

test_that("ties and repeated points: pivots in index order, duplicates never pivot twice", {
  set.seed(3)
  X <- matrix(runif(100 * 2), 100, 2)
  X <- rbind(X, X[1:50, ], X[1:20, ])   # rows 101-170 repeat rows 1-50, 1-20
  G <- exp(-as.matrix(dist(X))^2 / (2 * 0.25^2))
  # rank 60 of 100 distinct points: the last pivots' residual diagonals
  # stay far from rounding (near rank 100 they reach 1e-10 and L carries
  # the conditioning, not the algorithm)
  got <- pc_check(G, rank = 60, label = "duplicates")
  # a duplicate has the same residual as its original, which pivots first
  expect_true(all(got$piv <= 100 | !(got$piv - 100) %in% got$piv))
  # the rank deficiency (100 distinct points) is detected: no pivot is
  # taken on a numerically zero diagonal
  got_auto <- pc_dense(G, NULL, 0)
  expect_lte(length(got_auto$piv), 100)
  # all diagonals equal (a stationary kernel): the first pivot is row 1
  expect_identical(got$piv[1], 1L)
})
