# test-pivchol.R -- the "pivchol" preconditioner's factor (the blocked
# pivoted Cholesky of src/solve-precond.c) against the plain algorithm
# written here in R, one pivot per step, on dense kernel matrices.  With
# theta = 1 the blocked version must take the plain greedy pivots in the
# same order; with the default theta = 1/2 each pivot's remaining diagonal
# must be at least half the largest at its step.  Either way L must be the
# pivoted Cholesky factor for its pivot order (replayed here), with the
# same trace left.  P is built from the factor rounded to float32 (Lf):
# log det(shift I + Lf Lf^T) as base::determinant().

pc_dense <- function(A, rank = NULL, alpha = 0, theta = 1) {
  .Call(rkeops:::ffi_pivchol_dense, A, if (is.null(rank)) -1L else as.integer(rank),
        as.double(alpha), as.double(theta))
}

# the plain pivoted Cholesky: greedy, or in the order `order` (a replay);
# rank = NULL: the automatic rule of ?solve (trace left <= 1000 max(alpha,
# 1e-9 tr K), or doubling the rank removed less than 10% of the trace, or
# rank min(n, 1024, 2^26 / n)).  ratio: each pivot's remaining diagonal
# over the largest one at its step.
pc_reference <- function(A, rank = NULL, alpha = 0, tiny_rel = 1e-13,
                         order = NULL) {
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
  ratio <- numeric(0)
  if (!is.null(order)) rmax <- length(order)
  for (k in seq_len(rmax)) {
    dd <- ifelse(done, -Inf, d)
    p <- if (is.null(order)) which.max(dd) else order[k]
    if (!(dd[p] > tiny)) break
    ratio <- c(ratio, dd[p] / max(dd))
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
    if (is.null(order) && is.null(rank) &&
        (tr <= 1000 * sfloor || (k >= 32 && tr > 0.9 * hist[k %/% 2 + 1])))
      break
  }
  list(L = L[, seq_along(piv), drop = FALSE], piv = piv, trace_left = sum(d),
       ratio = ratio, hist = hist)
}

pc_check <- function(A, rank = NULL, alpha = 0, label = "", theta = 1) {
  got <- pc_dense(A, rank, alpha, theta)
  if (theta == 1) {
    ref <- pc_reference(A, rank, alpha)
    expect_identical(got$piv, ref$piv, label = paste(label, "pivots"))
  } else {
    ref <- pc_reference(A, rank, alpha, order = got$piv)
    expect_identical(ref$piv, got$piv, label = paste(label, "replay"))
    expect_gte(min(ref$ratio), theta * (1 - 1e-9))
    if (is.null(rank)) {
      # the automatic rule stopped where the replay's trace says it should
      r <- length(got$piv)
      h <- ref$hist
      sfloor <- max(alpha, 1e-9 * h[1])
      stops <- vapply(seq_len(r), function(k)
        h[k + 1] <= 1000 * sfloor || (k >= 32 && h[k + 1] > 0.9 * h[k %/% 2 + 1]),
        logical(1))
      expect_true(r == min(1024, floor(2^26 / nrow(A)), nrow(A)) ||
                    (stops[r] && !any(stops[-r])), label = paste(label, "stop"))
    }
  }
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
  # P is built from the factor rounded to float32: Lf = fl32(L)
  expect_true(all(abs(got$Lf - got$L) <= 2^-24 * abs(got$L)))
  expect_gt(mean(got$Lf != got$L), 0.5)
  # log det P, P = shift I + Lf Lf^T
  Pm <- tcrossprod(got$Lf) + diag(got$shift, nrow(A))
  expect_equal(got$logdet, as.numeric(determinant(Pm)$modulus),
               tolerance = 1e-9, label = paste(label, "logdet"))
  invisible(got)
}

test_that("the blocked pivoted Cholesky takes the plain greedy pivots (theta = 1, fixed rank)", {
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

test_that("the blocked pivoted Cholesky follows the automatic rank rule (theta = 1)", {
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

test_that("the default theta = 1/2: theta-greedy pivots, and L is their Cholesky factor", {
  set.seed(4)
  X <- matrix(runif(700 * 3), 700, 3)
  D2 <- as.matrix(dist(X))^2
  G <- exp(-D2 / (2 * 0.2^2))
  for (r in c(1, 16, 17, 100, 250))
    pc_check(G, rank = r, alpha = 1e-3, theta = 0.5,
             label = paste("theta 1/2, rank", r))
  got <- pc_check(G, alpha = 1e-3, theta = 0.5, label = "theta 1/2, auto")
  expect_gt(length(got$piv), 50)
  # 0 means the default: the same factor as theta = 1/2
  def <- pc_dense(G, 100, 1e-3, theta = 0)
  expect_identical(def$piv, pc_dense(G, 100, 1e-3, theta = 0.5)$piv)
  # the pivot order differs from the greedy one, the preconditioner does
  # about as well: the trace left at rank 100 within 20% of the greedy one
  gr <- pc_dense(G, 100, 1e-3, theta = 1)
  expect_false(identical(def$piv, gr$piv))
  expect_lt(def$trace_left, 1.2 * gr$trace_left)
  E <- exp(-sqrt(D2) / 0.3)
  pc_check(E, rank = 120, alpha = 1e-2, theta = 0.5, label = "theta 1/2, exponential")
})
