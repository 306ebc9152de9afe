# test-lazytensor.R -- the LazyTensor front end (R/lazytensor-*.R): every
# operation and reduction against dense R on random data, the formulas it
# writes, variable identity, errors, and base R left intact.
#
# Dense references are computed one (i, j) pair at a time with plain R
# vectors (lt_grid()), then reduced with apply(); they do not use rkeops.

# ---- helpers ------------------------------------------------------------------

# Run the calling test in float64 on the CPU, options restored afterwards.
lt_local_f64 <- function(envir = parent.frame()) {
  old <- rkeops::get_rkeops_options()
  withr::defer(rkeops::set_rkeops_options(old), envir = envir)
  rkeops::set_rkeops_options(list(precision = "float64", formula_only = FALSE))
  invisible(old)
}

# The formula a reduction would send to the engine.
lt_formula_of <- function(expr_fun) {
  old <- rkeops::set_rkeops_options(list(formula_only = TRUE))
  on.exit(rkeops::set_rkeops_options(old))
  expr_fun()
}

# Values of f(x_i, y_j, u_i, w_j) for every pair (i, j): an M x N x dout array.
lt_grid <- function(f, X, Y, U, W) {
  M <- nrow(X)
  N <- nrow(Y)
  first <- f(X[1, ], Y[1, ], U[1, ], W[1, ])
  out <- array(NA_real_, c(M, N, length(first)))
  for (i in seq_len(M)) for (j in seq_len(N)) {
    out[i, j, ] <- f(X[i, ], Y[j, ], U[i, ], W[j, ])
  }
  out
}

# reductions of an M x N x d array over j (one row per i) or over i
lt_dense_reduce <- function(a, index, fun = sum) {
  keep <- if (index == "j") c(1L, 3L) else c(2L, 3L)
  r <- apply(a, keep, fun)
  matrix(r, nrow = dim(a)[keep[1L]])
}

set.seed(20261121)
M <- 7L
N <- 5L
d <- 3L
X <- matrix(runif(M * d, 0.2, 0.9), M, d)
Y <- matrix(runif(N * d, 0.1, 0.8), N, d)
U <- matrix(sample(0:3, M * d, TRUE), M, d)  # whole numbers (==, one_hot)
W <- matrix(sample(0:3, N * d, TRUE), N, d)
P <- c(0.7, 1.3, 2.1)                         # a parameter of dimension d
A <- runif(2 * d, -1, 1)                      # a 2 x d matrix, by rows
S <- c(2, 0.5, 0.1, 0.5, 1, 0.2, 0.1, 0.2, 1.5) # a d x d SPD matrix, by rows

x_i <- Vi(X)
y_j <- Vj(Y)
u_i <- Vi(U)
w_j <- Vj(W)
p <- Pm(P)

# One row per operation: `lazy` on LazyTensors, `ref` on the vectors of one
# (i, j) pair.  `same = TRUE` when the same R expression serves for both.
lt_cases <- list(
  add = list(lazy = function(x, y, u, w) x + y, same = TRUE),
  subtract = list(lazy = function(x, y, u, w) x - y, same = TRUE),
  mult = list(lazy = function(x, y, u, w) x * y, same = TRUE),
  divide = list(lazy = function(x, y, u, w) x / y, same = TRUE),
  minus = list(lazy = function(x, y, u, w) -x + y, same = TRUE),
  plus_unary = list(lazy = function(x, y, u, w) +x * y, same = TRUE),
  const_int = list(lazy = function(x, y, u, w) 2 * x - 3 + y / 4, same = TRUE),
  const_real = list(lazy = function(x, y, u, w) 0.1 * x - 1.5e-3 + y / 0.3,
                    same = TRUE),
  const_neg = list(lazy = function(x, y, u, w) x * -0.25 - (-2) * y,
                   same = TRUE),
  param_vec = list(lazy = function(x, y, u, w) x * c(0.7, 1.3, 2.1) + y,
                   same = TRUE),
  param_pm = list(lazy = function(x, y, u, w) x * p - y,
                  ref = function(x, y, u, w) x * P - y),
  bcast = list(lazy = function(x, y, u, w) sqdist(x, y) * x + elem(y, 0),
               ref = function(x, y, u, w) sum((x - y)^2) * x + y[1]),
  square = list(lazy = function(x, y, u, w) (x - y)^2, same = TRUE),
  sqrt_pow = list(lazy = function(x, y, u, w) x^0.5, same = TRUE),
  rsqrt_pow = list(lazy = function(x, y, u, w) x^-0.5, same = TRUE),
  pow_int = list(lazy = function(x, y, u, w) (x - y)^3, same = TRUE),
  pow_neg = list(lazy = function(x, y, u, w) x^-2, same = TRUE),
  pow_zero = list(lazy = function(x, y, u, w) x^0 + y, same = TRUE),
  powf = list(lazy = function(x, y, u, w) x^1.7, same = TRUE),
  powf_lazy = list(lazy = function(x, y, u, w) x^y, same = TRUE),
  powf_base = list(lazy = function(x, y, u, w) 2^x, same = TRUE),
  modulo = list(lazy = function(x, y, u, w) (x - y) %% 0.3, same = TRUE),
  intdiv = list(lazy = function(x, y, u, w) (x - y) %/% 0.3, same = TRUE),
  ge = list(lazy = function(x, y, u, w) x >= y,
            ref = function(x, y, u, w) as.numeric(x >= y)),
  gt = list(lazy = function(x, y, u, w) x > y,
            ref = function(x, y, u, w) as.numeric(x > y)),
  le = list(lazy = function(x, y, u, w) x <= y,
            ref = function(x, y, u, w) as.numeric(x <= y)),
  lt = list(lazy = function(x, y, u, w) x < y,
            ref = function(x, y, u, w) as.numeric(x < y)),
  eq = list(lazy = function(x, y, u, w) u == w,
            ref = function(x, y, u, w) as.numeric(u == w)),
  ne = list(lazy = function(x, y, u, w) u != w,
            ref = function(x, y, u, w) as.numeric(u != w)),
  ge_ties = list(lazy = function(x, y, u, w) (u >= w) + 2 * (u < w) +
                   4 * (u <= w) + 8 * (u > w),
                 ref = function(x, y, u, w) (u >= w) + 2 * (u < w) +
                   4 * (u <= w) + 8 * (u > w)),
  cmp_const = list(lazy = function(x, y, u, w) (x > 0.5) + (0.4 >= y),
                   ref = function(x, y, u, w) (x > 0.5) + (0.4 >= y)),
  scalprod = list(lazy = function(x, y, u, w) x | y,
                  ref = function(x, y, u, w) sum(x * y)),
  exp = list(lazy = function(x, y, u, w) exp(-x * y), same = TRUE),
  log = list(lazy = function(x, y, u, w) log(x + y), same = TRUE),
  log2 = list(lazy = function(x, y, u, w) log(x + y, 2), same = TRUE),
  sqrt = list(lazy = function(x, y, u, w) sqrt(x + y), same = TRUE),
  abs = list(lazy = function(x, y, u, w) abs(x - y), same = TRUE),
  sign = list(lazy = function(x, y, u, w) sign(x - y), same = TRUE),
  sin = list(lazy = function(x, y, u, w) sin(3 * x - y), same = TRUE),
  cos = list(lazy = function(x, y, u, w) cos(3 * x - y), same = TRUE),
  sinh = list(lazy = function(x, y, u, w) sinh(x - y), same = TRUE),
  cosh = list(lazy = function(x, y, u, w) cosh(x - y), same = TRUE),
  tanh = list(lazy = function(x, y, u, w) tanh(3 * x - y), same = TRUE),
  tan = list(lazy = function(x, y, u, w) tan(x - y), same = TRUE),
  asin = list(lazy = function(x, y, u, w) asin(x - y), same = TRUE),
  acos = list(lazy = function(x, y, u, w) acos(x - y), same = TRUE),
  atan = list(lazy = function(x, y, u, w) atan(5 * (x - y)), same = TRUE),
  floor = list(lazy = function(x, y, u, w) floor(7 * (x - y)), same = TRUE),
  ceiling = list(lazy = function(x, y, u, w) ceiling(7 * (x - y)),
                 same = TRUE),
  round0 = list(lazy = function(x, y, u, w) round(7 * (x - y)), same = TRUE),
  round2 = list(lazy = function(x, y, u, w) round(x - y, 2), same = TRUE),
  square_fn = list(lazy = function(x, y, u, w) square(x - y),
                   ref = function(x, y, u, w) (x - y)^2),
  rsqrt = list(lazy = function(x, y, u, w) rsqrt(x + y),
               ref = function(x, y, u, w) 1 / sqrt(x + y)),
  inv = list(lazy = function(x, y, u, w) inv(x - y),
             ref = function(x, y, u, w) 1 / (x - y)),
  relu = list(lazy = function(x, y, u, w) relu(x - y),
              ref = function(x, y, u, w) pmax(x - y, 0)),
  step = list(lazy = function(x, y, u, w) step(x - y),
              ref = function(x, y, u, w) as.numeric(x - y >= 0)),
  xlogx = list(lazy = function(x, y, u, w) xlogx(x * y),
               ref = function(x, y, u, w) x * y * log(x * y)),
  sinxdivx = list(lazy = function(x, y, u, w) sinxdivx(3 * (x - y)),
                  ref = function(x, y, u, w) sin(3 * (x - y)) / (3 * (x - y))),
  atan2 = list(lazy = function(x, y, u, w) atan2(x - y, x - 0.5),
               same = TRUE),
  atan2_num = list(lazy = function(x, y, u, w) atan2(0.3, x - y) +
                     atan2(x - y, -1),
                   same = TRUE),
  clamp = list(lazy = function(x, y, u, w) clamp(x - y, -0.2, 0.3),
               ref = function(x, y, u, w) pmin(pmax(x - y, -0.2), 0.3)),
  clamp_lazy = list(lazy = function(x, y, u, w) clamp(x, y - 0.3, y + 0.1),
                    ref = function(x, y, u, w) pmin(pmax(x, y - 0.3), y + 0.1)),
  clampint = list(lazy = function(x, y, u, w) clampint(u - w, -1, 2),
                  ref = function(x, y, u, w) pmin(pmax(u - w, -1), 2)),
  ifelse = list(lazy = function(x, y, u, w) ifelse(x - y, x, -y),
                ref = function(x, y, u, w) base::ifelse(x - y >= 0, x, -y)),
  mod = list(lazy = function(x, y, u, w) mod(x - y, 0.3, 0.1),
             ref = function(x, y, u, w) (x - y) - 0.3 * floor((x - y - 0.1) /
                                                                 0.3)),
  sqnorm2 = list(lazy = function(x, y, u, w) sqnorm2(x - y),
                 ref = function(x, y, u, w) sum((x - y)^2)),
  norm2 = list(lazy = function(x, y, u, w) norm2(x - y),
               ref = function(x, y, u, w) sqrt(sum((x - y)^2))),
  normalize = list(lazy = function(x, y, u, w) normalize(x - y),
                   ref = function(x, y, u, w) (x - y) / sqrt(sum((x - y)^2))),
  sqdist = list(lazy = function(x, y, u, w) sqdist(x, y),
                ref = function(x, y, u, w) sum((x - y)^2)),
  wsqnorm1 = list(lazy = function(x, y, u, w) weightedsqnorm(x - y, 2.5),
                  ref = function(x, y, u, w) 2.5 * sum((x - y)^2)),
  wsqnormd = list(lazy = function(x, y, u, w) weightedsqnorm(x - y, P),
                  ref = function(x, y, u, w) sum(P * (x - y)^2)),
  wsqnormdd = list(lazy = function(x, y, u, w) weightedsqnorm(x - y, S),
                   ref = function(x, y, u, w) {
                     v <- x - y
                     drop(t(v) %*% matrix(S, 3, 3, byrow = TRUE) %*% v)
                   }),
  wsqdist = list(lazy = function(x, y, u, w) weightedsqdist(x, y, S),
                 ref = function(x, y, u, w) {
                   v <- x - y
                   drop(t(v) %*% matrix(S, 3, 3, byrow = TRUE) %*% v)
                 }),
  wsqdist_j = list(lazy = function(x, y, u, w) weightedsqdist(x, y, y),
                   ref = function(x, y, u, w) sum(y * (x - y)^2)),
  elem = list(lazy = function(x, y, u, w) elem(x, 2) * y,
              ref = function(x, y, u, w) x[3] * y),
  elemT = list(lazy = function(x, y, u, w) elemT(elem(x - y, 1), 2, 4),
               ref = function(x, y, u, w) c(0, 0, (x - y)[2], 0)),
  extract = list(lazy = function(x, y, u, w) extract(x - y, 1, 2),
                 ref = function(x, y, u, w) (x - y)[2:3]),
  extractT = list(lazy = function(x, y, u, w) extractT(x - y, 1, 5),
                  ref = function(x, y, u, w) c(0, x - y, 0)),
  concat = list(lazy = function(x, y, u, w) concat(x, elem(y, 0)),
                ref = function(x, y, u, w) c(x, y[1])),
  one_hot = list(lazy = function(x, y, u, w) one_hot(elem(u, 0) + elem(w, 1),
                                                     7),
                 ref = function(x, y, u, w) as.numeric(0:6 == u[1] + w[2])),
  matvecmult = list(lazy = function(x, y, u, w) matvecmult(A, x - y),
                    ref = function(x, y, u, w)
                      drop(matrix(A, 2, 3, byrow = TRUE) %*% (x - y))),
  vecmatmult = list(lazy = function(x, y, u, w) vecmatmult(x - y, A),
                    ref = function(x, y, u, w)
                      drop((x - y) %*% matrix(A, 3, 2, byrow = TRUE))),
  tensorprod = list(lazy = function(x, y, u, w) tensorprod(x, y),
                    ref = function(x, y, u, w) as.vector(t(outer(x, y)))),
  inner_sum = list(lazy = function(x, y, u, w) sum(x * y),
                   ref = function(x, y, u, w) sum(x * y)),
  inner_min = list(lazy = function(x, y, u, w) min(x - y),
                   ref = function(x, y, u, w) min(x - y)),
  inner_max = list(lazy = function(x, y, u, w) max(x - y),
                   ref = function(x, y, u, w) max(x - y)),
  inner_argmin = list(lazy = function(x, y, u, w) argmin(x - y),
                      ref = function(x, y, u, w) which.min(x - y) - 1),
  inner_argmax = list(lazy = function(x, y, u, w) argmax(x - y),
                      ref = function(x, y, u, w) which.max(x - y) - 1),
  same_var_twice = list(lazy = function(x, y, u, w) x * x - y,
                        same = TRUE)
)

# ---- every operation against dense R -----------------------------------------

test_that("LazyTensors are valid S4 objects, identical to what new() makes", {
  x <- matrix(runif(12), 4, 3)
  y <- matrix(runif(15), 5, 3)
  built <- list(Vi(x), Vj(y), Pm(2), LazyTensor(x, "i"),
                exp(-sqdist(Vi(x), Vj(y))) * Vj(y[, 1]), Vi(x) + 3L)
  for (k in built) {
    expect_true(is(k, "LazyTensor"))
    expect_true(validObject(k)) # validObject() returns TRUE or an error
    ref <- new("LazyTensor", formula = k@formula, vars = k@vars, M = k@M,
               N = k@N, dim = k@dim)
    expect_identical(k, ref)
  }
  expect_identical(dim(built[[5]]), c(4L, 5L))
  expect_identical(built[[5]]@dim, 1L)
  # not LazyTensors
  expect_false(rkeops:::lt_is(x))
  expect_false(rkeops:::lt_is(list(formula = "v0")))
})

test_that("every operation matches dense R, reduced over j and over i", {
  lt_local_f64()
  for (nm in names(lt_cases)) {
    cs <- lt_cases[[nm]]
    ref <- if (isTRUE(cs$same)) cs$lazy else cs$ref
    dense <- lt_grid(ref, X, Y, U, W)
    lz <- cs$lazy(x_i, y_j, u_i, w_j)
    # both indices carried, so that both reductions have rows
    if (is.na(lz@M) || is.na(lz@N)) lz <- lz + 0 * (elem(x_i, 0) + elem(y_j, 0))
    expect_s4_class(lz, "LazyTensor")
    expect_identical(lz@dim, dim(dense)[3L], label = paste(nm, "dim"))
    expect_equal(sum(lz, index = "j"), lt_dense_reduce(dense, "j"),
                 tolerance = 1e-12, label = paste(nm, "over j"))
    expect_equal(sum(lz, index = "i"), lt_dense_reduce(dense, "i"),
                 tolerance = 1e-12, label = paste(nm, "over i"))
  }
})

test_that("operations on i-only or j-only LazyTensors broadcast over the other index", {
  lt_local_f64()
  res <- sum(exp(x_i) + y_j, index = "j")
  expect_equal(res, exp(X) * N + matrix(colSums(Y), M, d, byrow = TRUE),
               tolerance = 1e-12)
  expect_equal(sum(sqnorm2(x_i) + 0 * elem(y_j, 0), index = "j"),
               matrix(rowSums(X^2) * N, M, 1), tolerance = 1e-12)
})

# ---- every reduction against dense R -----------------------------------------

test_that("sum, min, max, argmin, argmax reductions match dense R", {
  lt_local_f64()
  V <- x_i - y_j
  Vd <- lt_grid(function(x, y, u, w) x - y, X, Y, U, W)
  for (index in c("i", "j")) {
    expect_equal(sum(V, index = index), lt_dense_reduce(Vd, index),
                 tolerance = 1e-12)
    expect_equal(sum(V, index), lt_dense_reduce(Vd, index), tolerance = 1e-12)
    expect_equal(sum_reduction(V, index), lt_dense_reduce(Vd, index),
                 tolerance = 1e-12)
    expect_equal(min(V, index = index), lt_dense_reduce(Vd, index, min),
                 tolerance = 1e-12)
    expect_equal(min_reduction(V, index), lt_dense_reduce(Vd, index, min),
                 tolerance = 1e-12)
    expect_equal(max(V, index = index), lt_dense_reduce(Vd, index, max),
                 tolerance = 1e-12)
    expect_equal(max_reduction(V, index), lt_dense_reduce(Vd, index, max),
                 tolerance = 1e-12)
    amin <- lt_dense_reduce(Vd, index, which.min)
    amax <- lt_dense_reduce(Vd, index, which.max)
    expect_equal(argmin(V, index), amin)
    expect_equal(argmin_reduction(V, index), amin)
    expect_equal(argmax(V, index = index), amax)
    expect_equal(argmax_reduction(V, index), amax)
    ma <- min_argmin(V, index)
    expect_named(ma, c("values", "indices"))
    expect_equal(ma$values, lt_dense_reduce(Vd, index, min), tolerance = 1e-12)
    expect_equal(ma$indices, amin)
    expect_equal(min_argmin_reduction(V, index), ma)
    mx <- max_argmax(V, index)
    expect_equal(mx$values, lt_dense_reduce(Vd, index, max), tolerance = 1e-12)
    expect_equal(mx$indices, amax)
    expect_equal(max_argmax_reduction(V, index), mx)
  }
})

test_that("Kmin, argKmin, Kmin_argKmin match sort() and order()", {
  lt_local_f64()
  K <- 3L
  V <- x_i - y_j
  Vd <- lt_grid(function(x, y, u, w) x - y, X, Y, U, W)
  for (index in c("i", "j")) {
    keep <- if (index == "j") c(1L, 3L) else c(2L, 3L)
    vals <- apply(Vd, keep, function(v) sort(v)[1:K])   # K x rows x d
    idx <- apply(Vd, keep, function(v) order(v)[1:K])
    nr <- dim(vals)[2L]
    # column k * d + c holds component c of the k-th smallest
    ref_v <- matrix(aperm(vals, c(2L, 3L, 1L)), nr, K * d)
    ref_i <- matrix(aperm(idx, c(2L, 3L, 1L)), nr, K * d)
    expect_equal(Kmin(V, K, index), ref_v, tolerance = 1e-12)
    expect_equal(Kmin_reduction(V, K, index), ref_v, tolerance = 1e-12)
    expect_equal(argKmin(V, K, index), ref_i)
    expect_equal(argKmin_reduction(V, K, index), ref_i)
    both <- Kmin_argKmin(V, K = K, index = index)
    expect_equal(both$values, ref_v, tolerance = 1e-12)
    expect_equal(both$indices, ref_i)
    expect_equal(Kmin_argKmin_reduction(V, K, index), both)
  }
  # dimension 1: an M x K matrix, as in the API example
  D <- sqdist(x_i, y_j)
  Dd <- unname(as.matrix(dist(rbind(X, Y)))[1:M, M + 1:N]^2)
  expect_equal(argKmin(D, K = 2, index = "j"),
               t(apply(Dd, 1, function(v) order(v)[1:2])))
  expect_equal(Kmin(D, K = 2, index = "j"),
               t(apply(Dd, 1, function(v) sort(v)[1:2])), tolerance = 1e-12)
})

test_that("logsumexp and sumsoftmaxweight match dense R", {
  lt_local_f64()
  D <- sqdist(x_i, y_j)
  Dd <- outer(rowSums(X^2), rowSums(Y^2), "+") - 2 * X %*% t(Y)
  f <- -D * 3
  fd <- -Dd * 3
  expect_equal(logsumexp(f, "j"), matrix(log(rowSums(exp(fd))), M, 1),
               tolerance = 1e-12)
  expect_equal(logsumexp(f, "i"), matrix(log(colSums(exp(fd))), N, 1),
               tolerance = 1e-12)
  expect_equal(logsumexp_reduction(f, "j"), logsumexp(f, "j"))
  # large values: computed stably
  expect_equal(logsumexp(f + 1000, "j"),
               matrix(1000 + log(rowSums(exp(fd))), M, 1), tolerance = 1e-12)
  # with a weight (of dimension d)
  expect_equal(logsumexp(f, "j", weight = y_j), log(exp(fd) %*% Y),
               tolerance = 1e-12)
  expect_equal(logsumexp(f, "i", weight = x_i), log(t(exp(fd)) %*% X),
               tolerance = 1e-12)
  expect_equal(logsumexp_reduction(f, "j", y_j), logsumexp(f, "j", y_j))
  # softmax-weighted averages
  sm_j <- exp(fd) / rowSums(exp(fd))
  expect_equal(sumsoftmaxweight(f, "j", y_j), sm_j %*% Y, tolerance = 1e-12)
  sm_i <- t(exp(fd)) / colSums(exp(fd))
  expect_equal(sumsoftmaxweight(f, "i", weight = x_i), sm_i %*% X,
               tolerance = 1e-12)
  expect_equal(sumsoftmaxweight_reduction(f, "j", y_j),
               sumsoftmaxweight(f, "j", y_j))
})

test_that("K %*% B is sum_j K_ij B_j", {
  lt_local_f64()
  Kd <- exp(-(outer(rowSums(X^2), rowSums(Y^2), "+") - 2 * X %*% t(Y)))
  K <- exp(-sqdist(x_i, y_j))
  B <- matrix(rnorm(N * 2), N, 2)
  expect_equal(K %*% B, Kd %*% B, tolerance = 1e-12)
  b <- rnorm(N)
  expect_equal(K %*% b, Kd %*% b, tolerance = 1e-12)
  expect_equal(dim(K %*% b), c(M, 1L))
})

# ---- formulas -------------------------------------------------------------------

test_that("powers, comparisons and constants give the documented formulas", {
  f <- function(lz) lt_formula_of(function() sum(lz, index = "j"))
  expect_identical(f(x_i^2 + y_j), "Sum_Reduction((Square(v0) + v1), 1)")
  expect_match(f(x_i^0.5 + y_j), "Sqrt(v0)", fixed = TRUE)
  expect_match(f(x_i^-0.5 + y_j), "Rsqrt(v0)", fixed = TRUE)
  expect_match(f(x_i^3 + y_j), "Pow(v0, 3)", fixed = TRUE)
  expect_match(f(x_i^-2 + y_j), "Pow(v0, -2)", fixed = TRUE)
  # a non-integer exponent is a parameter (issue 14.1)
  expect_match(f(x_i^1.5 + y_j), "Powf(v0, v1)", fixed = TRUE)
  expect_match(f(x_i^y_j), "Powf(v0, v1)", fixed = TRUE)
  # comparisons: the keopscore operations (issue 14.6)
  expect_match(f(x_i >= y_j), "GreaterOrEqual(v0, v1)", fixed = TRUE)
  expect_match(f(x_i < y_j), "LessThan(v0, v1)", fixed = TRUE)
  expect_match(f(x_i == y_j), "Equal(v0, v1)", fixed = TRUE)
  expect_match(f(x_i != y_j), "NotEqual(v0, v1)", fixed = TRUE)
  expect_match(f(x_i | y_j), "(v0 | v1)", fixed = TRUE)
  expect_match(f(2 * x_i + y_j), "IntCst(2)", fixed = TRUE)
  expect_identical(f(0.1 * x_i + y_j), "Sum_Reduction(((v0 * v1) + v2), 1)")
  expect_identical(f(-x_i + y_j), "Sum_Reduction(((-v0) + v1), 1)")
  expect_identical(f(x_i * y_j), "Sum_Reduction((v0 * v1), 1)")
  expect_match(f(x_i * y_j), ", 1)$")
  expect_match(lt_formula_of(function() sum(x_i * y_j, index = "i")), ", 0)$")
  expect_identical(
    lt_formula_of(function() argKmin(sqdist(x_i, y_j), 4, "j")),
    "ArgKMin_Reduction(SqDist(v0, v1), 4, 1)"
  )
  expect_identical(
    lt_formula_of(function() sumsoftmaxweight(-sqdist(x_i, y_j), "j", y_j)),
    "SumSoftMaxWeight_Reduction((-SqDist(v0, v1)), v1, 1)"
  )
  expect_identical(
    lt_formula_of(function() logsumexp(-sqdist(x_i, y_j), "i")),
    "LogSumExp_Reduction((-SqDist(v0, v1)), 0)"
  )
})

test_that("whole numbers are IntCst, other numbers exact parameters", {
  # issue 14.1: a non-integer number becomes a parameter Pm() holding the
  # exact double, so that changing it compiles nothing
  for (v in c(0.1, 1 / 3, pi, -2.5e-7, 1e-20, 6.02e23, 123456789.125, 3e10)) {
    parts <- rkeops:::lt_reduction_parts(x_i * v + y_j, "Sum", "j")
    expect_identical(parts$formula, "Sum_Reduction(((v0 * v1) + v2), 1)")
    expect_identical(parts$args[2], "v1=Pm(1)")
    expect_identical(parts$input[[2]], v)
  }
  cst <- function(v) {
    lt_formula_of(function() sum(x_i * v + y_j, index = "j"))
  }
  expect_match(cst(7), "IntCst(7)", fixed = TRUE)
  expect_match(cst(-7), "(-IntCst(7))", fixed = TRUE)
  expect_false(grepl("IntCst", cst(3e10)))
  expect_error(x_i * Inf, class = "rkeops_input_error")
  expect_error(x_i * NA_real_, class = "rkeops_input_error")
})

test_that("the same variable used twice is one variable; equal data stay two", {
  two <- lt_formula_of(function() sum(x_i - x_i + y_j, index = "j"))
  expect_identical(two, "Sum_Reduction(((v0 - v0) + v1), 1)")
  parts <- rkeops:::lt_reduction_parts(x_i * x_i + y_j, "Sum", "j")
  expect_identical(parts$args, c("v0=Vi(3)", "v1=Vj(3)"))
  expect_length(parts$input, 2L)
  x2_i <- Vi(X)
  parts2 <- rkeops:::lt_reduction_parts(x_i - x2_i + y_j, "Sum", "j")
  expect_identical(parts2$formula, "Sum_Reduction(((v0 - v1) + v2), 1)")
  expect_identical(parts2$args, c("v0=Vi(3)", "v1=Vi(3)", "v2=Vj(3)"))
  # the same model built twice gives the same formula (one compiled kernel)
  g <- function() exp(-sqdist(Vi(X), Vj(Y)) / Pm(0.5))
  expect_identical(rkeops:::lt_reduction_parts(g(), "Sum", "j")$formula,
                   rkeops:::lt_reduction_parts(g(), "Sum", "j")$formula)
  lt_local_f64()
  expect_equal(sum(x_i - x2_i + y_j, index = "j"),
               matrix(colSums(Y), M, d, byrow = TRUE), tolerance = 1e-12)
})

# ---- constructors and show() -----------------------------------------------------

test_that("Vi, Vj, Pm, LazyTensor record the variable, the shape and the data", {
  expect_s4_class(x_i, "LazyTensor")
  expect_true(is.LazyTensor(x_i))
  expect_false(is.LazyTensor(X))
  expect_identical(c(x_i@M, x_i@N), c(M + 0, NA_real_))
  expect_identical(c(y_j@M, y_j@N), c(NA_real_, N + 0))
  expect_identical(x_i@dim, 3L)
  expect_identical(Pm(0.5)@dim, 1L)
  expect_identical(Pm(P)@dim, 3L)
  expect_identical(Vi(1:4)@dim, 1L)
  expect_identical(LazyTensor(X, "i")@vars[[1]]$data, X)
  expect_identical(LazyTensor(P)@vars[[1]]$cat, "p")
  expect_identical(LazyTensor(Y, index = "j")@vars[[1]]$cat, "j")
  e <- exp(-sqdist(x_i, y_j))
  expect_identical(c(e@M, e@N), c(M + 0, N + 0))
  expect_identical(e@dim, 1L)
  expect_error(LazyTensor(X, index = "k"), class = "rkeops_error")
  expect_error(Vi("a"), class = "rkeops_error")
  expect_error(Pm(X), class = "rkeops_error")
  expect_error(x_i + X, class = "rkeops_error")
})

test_that("show() prints the formula, the variables and the shape", {
  e <- exp(-sqdist(x_i, y_j) / Pm(0.5))
  out <- capture.output(show(e))
  expect_match(out[1], sprintf("%d x %d", M, N))
  expect_match(out[1], "inner dimension 1")
  expect_true(any(grepl("Exp(((-SqDist(v0, v1)) / v2))", out, fixed = TRUE)))
  expect_true(any(grepl("v0=Vi(3)", out, fixed = TRUE)))
  expect_true(any(grepl("v1=Vj(3)", out, fixed = TRUE)))
  expect_true(any(grepl("v2=Pm(1)", out, fixed = TRUE)))
  expect_identical(capture.output(print(e)), out)
  expect_match(capture.output(show(x_i))[1], sprintf("%d x \\.", M))
})

# ---- errors ---------------------------------------------------------------------

test_that("mismatched shapes are rkeops_dim_error", {
  Z <- Vi(matrix(runif(M * 2), M, 2))
  err <- expect_error(x_i + Z, class = "rkeops_dim_error")
  expect_match(conditionMessage(err), "inner dimensions 3 and 2")
  expect_s3_class(err, "rkeops_error")
  expect_error(x_i | Z, class = "rkeops_dim_error")
  expect_error(sqdist(x_i, Z), class = "rkeops_dim_error")
  expect_error(x_i > Z, class = "rkeops_dim_error")
  expect_error(clamp(x_i, Z, 1), class = "rkeops_dim_error")
  expect_error(weightedsqnorm(x_i, c(1, 2)), class = "rkeops_dim_error")
  expect_error(elem(x_i, 3), class = "rkeops_dim_error")
  expect_error(extract(x_i, 2, 2), class = "rkeops_dim_error")
  expect_error(logsumexp(x_i - y_j, "j"), class = "rkeops_dim_error")
  # different numbers of rows for the same index
  err <- expect_error(x_i + Vi(matrix(0, M + 1, 3)), class = "rkeops_dim_error")
  expect_match(conditionMessage(err), "rows indexed by i")
  expect_error(y_j - Vj(matrix(0, N + 2, 3)), class = "rkeops_dim_error")
  expect_error(exp(-sqdist(x_i, y_j)) %*% matrix(1, N + 1, 2),
               class = "rkeops_dim_error")
})

test_that("an index that no variable carries has size 1 (issue 14.2); bad indices are errors", {
  # formerly rkeops_index_error; KeOps gives the missing index size 1
  expect_equal(sum(x_i, index = "j"), X, tolerance = 1e-14)
  expect_equal(argmin(exp(y_j), "i"), matrix(1, N, d), ignore_attr = TRUE)
  expect_equal(Kmin(x_i * p, 2, "j"),
               cbind(sweep(X, 2, P, "*"), matrix(Inf, M, d)), tolerance = 1e-14)
  expect_error(exp(x_i) %*% rep(1, 3), class = "rkeops_error")
  expect_equal(sum(y_j, index = "j"), matrix(colSums(Y), 1L), tolerance = 1e-14)
  expect_error(sum(x_i - y_j, index = "k"), class = "rkeops_index_error")
  expect_error(sum(x_i - y_j, index = c("i", "j")), class = "rkeops_error")
  expect_error(max(x_i - y_j, y_j), class = "rkeops_index_error")
  expect_error(argmin(x_i - y_j, y_j), class = "rkeops_index_error")
  # K > N: padded (issue 14.3)
  expect_identical(Kmin(sqdist(x_i, y_j), N + 1, "j")[, N + 1], rep(Inf, M))
})

# ---- base R stays intact ----------------------------------------------------------

test_that("base functions on ordinary numbers are unchanged", {
  expect_identical(exp(1), base::exp(1))
  expect_identical(sum(1:3), 6L)
  expect_identical(min(2, 3), 2)
  expect_identical(max(c(1, NA, 3), na.rm = TRUE), 3)
  expect_identical(ifelse(TRUE, 1, 2), 1)
  expect_identical(ifelse(c(TRUE, FALSE, NA), 1:3, -(1:3)), c(1L, -2L, NA))
  expect_identical(round(2.5), 2)
  expect_identical(round(-1.234, 1), -1.2)
  expect_identical(abs(-1), 1)
  expect_identical(atan2(1, 2), base::atan2(1, 2))
  expect_identical(log(8, 2), 3)
  expect_identical(c(1, 2) %*% c(3, 4), matrix(11))
  expect_identical(TRUE | FALSE, TRUE)
  fit <- stats::lm(mpg ~ wt + hp + qsec, data = datasets::mtcars)
  expect_identical(formula(step(fit, trace = 0)),
                   formula(stats::step(fit, trace = 0)))
})

test_that("library(rkeops) prints nothing and leaves base R working", {
  skip_on_cran()
  lib <- dirname(find.package("rkeops"))
  skip_if_not(file.exists(file.path(lib, "rkeops", "Meta", "package.rds")),
              "rkeops is not installed (load_all)")
  script <- tempfile(fileext = ".R")
  on.exit(unlink(script))
  writeLines(c(
    "library(rkeops)",
    "stopifnot(identical(exp(1), 2.718281828459045), sum(1:3) == 6L,",
    "  min(2, 3) == 2, ifelse(TRUE, 1, 2) == 1, round(2.5) == 2,",
    "  abs(-1) == 1, is.function(stats::step))",
    "fit <- lm(mpg ~ wt + hp + qsec, data = mtcars)",
    "stopifnot(identical(formula(step(fit, trace = 0)),",
    "  formula(stats::step(fit, trace = 0))))",
    "cat('OK\\n')"
  ), script)
  env <- c(paste0("R_LIBS=", paste(c(lib, .libPaths()), collapse = ":")),
           "R_PROFILE_USER=", "R_ENVIRON_USER=")
  out <- system2(file.path(R.home("bin"), "Rscript"), c("--vanilla", script),
                 stdout = TRUE, stderr = TRUE, env = env)
  expect_identical(out, "OK")
})
