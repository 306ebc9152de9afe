# test-reduce-cpu.R -- every reduction of src/red.def on the CPU backend,
# over j (axis 1) and over i (axis 0), against the dense references of
# helper-reference.R (ref_reduce).  Sizes cross the tile boundaries (M, N
# in 1, 7, 1000, 1001, and one 4097 x 3001), dimensions 1, 3, 17, float64
# (relative error <= 1e-12) and float32 (<= 1e-5, inputs rounded to float32
# for both sides).  Index outputs are compared exactly.
#
# Formula families (f is applied componentwise to x = Vi(d), y = Vj(d)):
#   smooth:   Sin(x + y) + x * y   on continuous data (values, sums)
#   discrete: Square(x - y)       on small integers: many exact ties, and
#             exact values in both precisions (order-based reductions)
# Longer variants run with RKEOPS_LONG_TESTS=true.

fams <- list(
  smooth = list(f = "Sin(x + y) + x * y", fn = function(x, y) sin(x + y) + x * y,
                gen = function(n, d) rdata(n, d, "real")),
  discrete = list(f = "Square(x - y)", fn = function(x, y) (x - y)^2,
                  gen = function(n, d) matrix(as.double(sample(0:15, n * d, TRUE)), n, d)),
  add = list(f = "x + y", fn = function(x, y) x + y,
             gen = function(n, d) rdata(n, d, "real"))
)

# which families each reduction is tested with, and how d is used
# ("f": dim of x and y; "w": dim of the weight g, x and y of dim 1;
# "1": d must be 1)
red_plan <- list(
  Sum = list(fams = "smooth", dmode = "f"),
  Min = list(fams = c("smooth", "discrete"), dmode = "f"),
  Max = list(fams = c("smooth", "discrete"), dmode = "f"),
  ArgMin = list(fams = "discrete", dmode = "f"),
  ArgMax = list(fams = "discrete", dmode = "f"),
  Min_ArgMin = list(fams = "discrete", dmode = "f"),
  Max_ArgMax = list(fams = "discrete", dmode = "f"),
  KMin = list(fams = c("smooth", "discrete"), dmode = "f", K = c(1, 5)),
  ArgKMin = list(fams = "discrete", dmode = "f", K = c(1, 5)),
  KMin_ArgKMin = list(fams = "discrete", dmode = "f", K = c(1, 5)),
  LogSumExp = list(fams = "smooth", dmode = "1"),
  LogSumExpWeight = list(fams = "smooth", dmode = "w"),
  SumSoftMaxWeight = list(fams = "smooth", dmode = "w")
)

# (M, N) pairs per dimension: every pair crosses or touches a tile boundary
# on one side; the full grid is in its own test below.
red_sizes <- function(d) {
  if (long_tests()) {
    g <- expand.grid(M = c(1, 7, 1000, 1001), N = c(1, 7, 1000, 1001))
    return(lapply(seq_len(nrow(g)), function(k) c(g$M[k], g$N[k])))
  }
  switch(as.character(d),
    "1" = list(c(1, 1), c(7, 1000), c(1001, 7), c(1000, 1001)),
    "3" = list(c(1, 7), c(7, 1001), c(1001, 7), c(1000, 1)),
    "17" = list(c(7, 1), c(1, 1001), c(1001, 7)))
}

# Build the data, the formula and the operator; compare with ref_reduce().
# Returns list(got, expected) invisibly.
run_red <- function(red, fam, M, N, d, axis, prec, K = NULL, e = NULL,
                    scheme = "auto", data = NULL, expected = NULL) {
  local_rk_precision(prec)
  fm <- fams[[fam]]
  if (is.null(data)) {
    data <- list(X = fm$gen(M, d), Y = fm$gen(N, d))
    if (!is.null(e)) data$W <- rdata(if (axis == 1) N else M, e, "posw")
  }
  data <- lapply(data, prec_data, prec = prec)
  weighted <- !is.null(data$W)
  args <- c(sprintf("x=Vi(%d)", d), sprintf("y=Vj(%d)", d))
  if (weighted) args <- c(args, sprintf("g=%s(%d)", if (axis == 1) "Vj" else "Vi", ncol(data$W)))
  formula <- red_formula(red, fm$f, axis, K = K, weight = if (weighted) "g")
  label <- sprintf("%s [M=%d N=%d d=%d float%d %s]", formula, M, N, d, prec, scheme)
  if (is.null(expected)) {
    expected <- ref_reduce(red, fm$fn, data$X, data$Y, axis, W = data$W, K = K)
  }
  op <- keops_kernel(formula, args, sum_scheme = scheme)
  got <- op(unname(data))
  expect_red(got, expected, red, d, prec, label,
             e = if (weighted) ncol(data$W), K = K)
  invisible(list(got = got, expected = expected))
}

expect_red <- function(got, expected, red, d, prec, label, e = NULL, K = NULL) {
  idx <- red_index_cols(red, d, e, K)
  val <- setdiff(seq_len(ncol(expected)), idx)
  expect_true(is.matrix(got), info = label)
  expect_identical(dim(got), dim(expected), info = label)
  if (!is.matrix(got) || !identical(dim(got), dim(expected))) return(invisible())
  if (length(val)) {
    expect_close(got[, val, drop = FALSE], expected[, val, drop = FALSE],
                 tol_for(prec), paste(label, "values"))
  }
  if (length(idx)) {
    expect_identical(unname(got[, idx, drop = FALSE]) + 0,
                     unname(expected[, idx, drop = FALSE]) + 0,
                     info = paste(label, "indices (1-based, ties to the smallest)"))
  }
}

test_that("the reduction plan covers every reduction of red.def", {
  expect_setequal(names(red_plan), reds_expected)
  from_def <- def_names("red.def", "R")
  skip_if(is.null(from_def), "src/red.def not reachable from the tests")
  expect_setequal(from_def, names(red_plan))
})

test_that("the vectorised references agree with the per-row definitions", {
  set.seed(1999)
  for (axis in c(1, 0)) for (d in c(1, 3)) {
    X <- fams$discrete$gen(37, d)
    Y <- fams$discrete$gen(29, d)
    for (red in c("Sum", order_reds)) {
      K <- if (grepl("K", red)) 4
      expect_identical(ref_reduce(red, fams$discrete$fn, X, Y, axis, K = K, chunk = 16),
                       ref_reduce(red, fams$discrete$fn, X, Y, axis, K = K, fast = FALSE),
                       info = paste(red, axis, d))
    }
  }
})

for (red in names(red_plan)) {
  local({
    red <- red
    plan <- red_plan[[red]]
    test_that(sprintf("%s_Reduction over i and j, d = 1, 3, 17, float64/32", red), {
      set.seed(2000 + match(red, reds_expected))
      local_rk_cpu()
      ds <- if (plan$dmode == "1") 1 else c(1, 3, 17)
      Ks <- if (is.null(plan$K)) list(NULL) else as.list(plan$K)
      for (prec in c(64, 32)) for (fam in plan$fams) for (d in ds) for (axis in c(1, 0)) {
        for (mn in red_sizes(d)) for (K in Ks) {
          M <- mn[1]
          N <- mn[2]
          nred <- if (axis == 1) N else M
          if (!is.null(K) && K > nred) next
          if (plan$dmode == "w") {
            run_red(red, fam, M, N, 1, axis, prec, K = K, e = d)
          } else {
            run_red(red, fam, M, N, d, axis, prec, K = K)
          }
        }
      }
    })
  })
}

test_that("Sum over the full size grid with the three sum schemes", {
  set.seed(3001)
  local_rk_cpu()
  sizes <- c(1, 7, 1000, 1001)
  for (prec in c(64, 32)) for (axis in c(1, 0)) for (M in sizes) for (N in sizes) {
    data <- lapply(list(X = rdata(M, 3), Y = rdata(N, 3)), prec_data, prec = prec)
    expected <- ref_reduce("Sum", fams$smooth$fn, data$X, data$Y, axis)
    for (scheme in c("direct_sum", "block_sum", "kahan_scheme", "auto")) {
      run_red("Sum", "smooth", M, N, 3, axis, prec, scheme = scheme, data = data,
              expected = expected)
    }
  }
})

test_that("ArgKMin and LogSumExp over the full size grid", {
  set.seed(3002)
  local_rk_cpu()
  sizes <- c(1, 7, 1000, 1001)
  for (prec in c(64, 32)) for (axis in c(1, 0)) for (M in sizes) for (N in sizes) {
    if ((if (axis == 1) N else M) >= 5) {
      run_red("ArgKMin", "discrete", M, N, 1, axis, prec, K = 5)
    }
    run_red("LogSumExp", "smooth", M, N, 1, axis, prec)
  }
})

test_that("a 4097 x 3001 problem: Sum (three schemes), ArgKMin, Max_ArgMax", {
  set.seed(3003)
  local_rk_cpu()
  M <- 4097
  N <- 3001
  for (prec in c(64, 32)) for (axis in c(1, 0)) {
    data <- lapply(list(X = rdata(M, 1), Y = rdata(N, 1)), prec_data, prec = prec)
    expected <- ref_reduce("Sum", fams$smooth$fn, data$X, data$Y, axis)
    for (scheme in c("direct_sum", "block_sum", "kahan_scheme")) {
      run_red("Sum", "smooth", M, N, 1, axis, prec, scheme = scheme, data = data,
              expected = expected)
    }
  }
  run_red("ArgKMin", "discrete", M, N, 1, 1, 64, K = 5)
  run_red("Max_ArgMax", "discrete", M, N, 1, 0, 32)
})

test_that("kahan_scheme is compensated: float32 sum of 2e5 terms", {
  set.seed(3004)
  local_rk_cpu(prec = 32)
  N <- 200000
  y <- f32(runif(N, 1, 2))   # exact in float32, and x = 1: exact terms
  x <- c(1, 1)
  expected <- matrix(sum(y), 2, 1) # R sums in long double
  op <- keops_kernel("Sum_Reduction(x * y, 1)", c("x=Vi(1)", "y=Vj(1)"),
                     sum_scheme = "kahan_scheme")
  got <- op(list(x, y))
  expect_lte(rel_err(got, expected), 1e-6)
  for (scheme in c("block_sum", "auto")) {
    op <- keops_kernel("Sum_Reduction(x * y, 1)", c("x=Vi(1)", "y=Vj(1)"),
                       sum_scheme = scheme)
    expect_lte(rel_err(op(list(x, y)), expected), 1e-5)
  }
})

test_that("arg-reductions are 1-based and ties go to the smallest index", {
  local_rk_cpu()
  for (prec in c(64, 32)) {
    local_rk_precision(prec)
    # (x - y)^2 with x = 0: 9 1 1 1 9 1
    y <- c(3, 1, -1, 1, 3, -1)
    x <- c(0, 0)
    args <- c("x=Vi(1)", "y=Vj(1)")
    k <- function(red, K = NULL) keops_kernel(red_formula(red, "Square(x - y)", 1, K), args)
    expect_identical(unname(k("ArgMin")(list(x, y))) + 0, matrix(2, 2, 1))
    expect_identical(unname(k("ArgMax")(list(x, y))) + 0, matrix(1, 2, 1))
    expect_identical(unname(k("Min_ArgMin")(list(x, y))) + 0, matrix(c(1, 2), 2, 2, byrow = TRUE))
    expect_identical(unname(k("Max_ArgMax")(list(x, y))) + 0, matrix(c(9, 1), 2, 2, byrow = TRUE))
    expect_identical(unname(k("ArgKMin", 3)(list(x, y))) + 0, matrix(c(2, 3, 4), 2, 3, byrow = TRUE))
    expect_identical(unname(k("KMin_ArgKMin", 5)(list(x, y))) + 0,
                     matrix(c(1, 1, 1, 1, 9, 2, 3, 4, 6, 1), 2, 10, byrow = TRUE))
    # all values equal across tile boundaries: the first indices win
    y <- rep(2, 2003)
    expect_identical(unname(k("ArgMin")(list(x, y))) + 0, matrix(1, 2, 1))
    expect_identical(unname(k("ArgMax")(list(x, y))) + 0, matrix(1, 2, 1))
    expect_identical(unname(k("ArgKMin", 5)(list(x, y))) + 0, matrix(1:5 + 0, 2, 5, byrow = TRUE))
    # the minimum reached at 1000, 1001 and 2003: 1000 wins
    y <- rep(5, 2003)
    y[c(1000, 1001, 2003)] <- 0
    expect_identical(unname(k("ArgMin")(list(x, y))) + 0, matrix(1000, 2, 1))
    expect_identical(unname(k("ArgKMin", 3)(list(x, y))) + 0,
                     matrix(c(1000, 1001, 2003), 2, 3, byrow = TRUE))
    # over i (axis 0)
    op <- keops_kernel("ArgMin_Reduction(Square(x - y), 0)", args)
    expect_identical(unname(op(list(c(3, 1, -1, 1), c(0, 2)))) + 0, matrix(c(2, 1), 2, 1))
  }
})

test_that("KMin, ArgKMin and KMin_ArgKMin with K = N; K > N pads (issue 14.3)", {
  set.seed(3005)
  local_rk_cpu()
  for (prec in c(64, 32)) for (N in c(7, 1001)) for (d in c(1, 3)) {
    for (red in c("KMin", "ArgKMin", "KMin_ArgKMin")) {
      run_red(red, "discrete", 5, N, d, 1, prec, K = N)
      run_red(red, "discrete", N, 5, d, 0, prec, K = N)
    }
  }
  op <- keops_kernel("KMin_Reduction(Square(x - y), 8, 1)", c("x=Vi(1)", "y=Vj(1)"))
  # K > N: formerly rkeops_value_error; the 8th value is Inf
  r <- op(list(1:3, 1:7))
  expect_identical(r, t(vapply(1:3, function(i) c(sort((i - 1:7)^2), Inf), numeric(8))))
  expect_identical(dim(op(list(1:3, 1:8))), c(3L, 8L))
})

test_that("LogSumExp and the softmax are stable for values of order 1e4", {
  set.seed(3006)
  local_rk_cpu()
  # multiples of 2^-10 below 2^14: x + y and f - max(f) are exact in float32
  # too, so that the float32 softmax is well conditioned
  q <- function(v) round(v * 1024) / 1024
  for (prec in c(64, 32)) for (axis in c(1, 0)) {
    X <- matrix(q(1e4 + runif(7 * 1, -5, 5)), 7, 1)
    Y <- matrix(q(runif(1001, -30, 30)), 1001, 1)
    if (axis == 0) { tmp <- X; X <- matrix(q(runif(1001, -30, 30))); Y <- tmp }
    nred <- if (axis == 1) nrow(Y) else nrow(X)
    W <- matrix(runif(nred * 3, 0.5, 1.5), nred, 3)
    r1 <- run_red("LogSumExp", "add", nrow(X), nrow(Y), 1, axis, prec,
                  data = list(X = X, Y = Y))
    expect_true(all(is.finite(r1$got)))
    r2 <- run_red("LogSumExpWeight", "add", nrow(X), nrow(Y), 1, axis, prec,
                  data = list(X = X, Y = Y, W = W))
    expect_true(all(is.finite(r2$got)))
    r3 <- run_red("SumSoftMaxWeight", "add", nrow(X), nrow(Y), 1, axis, prec,
                  data = list(X = X, Y = Y, W = W))
    expect_true(all(is.finite(r3$got)))
    # and large negative values (no underflow to log(0))
    r4 <- run_red("LogSumExp", "add", nrow(X), nrow(Y), 1, axis, prec,
                  data = list(X = -X, Y = -Y))
    expect_true(all(is.finite(r4$got)))
  }
})

test_that("NaN and Inf propagate as in R for Sum, Min and Max", {
  local_rk_cpu()
  set.seed(3007)
  for (prec in c(64, 32)) {
    local_rk_precision(prec)
    x <- c(1, NaN, Inf, -Inf, 2, NA, 3)
    y <- runif(1001)
    expect_rows <- function(red, fn, op, x, y) {
      got <- op(list(x, y))
      want <- vapply(x, function(xi) fn(xi + y), numeric(1))
      expect_identical(is.na(got[, 1]), is.na(want), info = red)
      expect_identical(got[is.infinite(want), 1], want[is.infinite(want)], info = red)
      ok <- is.finite(want)
      expect_lte(rel_err(got[ok, 1], want[ok]), tol_for(prec))
    }
    args <- c("x=Vi(1)", "y=Vj(1)")
    for (scheme in c("direct_sum", "block_sum", "kahan_scheme")) {
      op <- keops_kernel("Sum_Reduction(x + y, 1)", args, sum_scheme = scheme)
      expect_rows(paste("Sum", scheme), sum, op, x, prec_data(y, prec))
      # along the reduced index: Inf and NaN in y, in the last tile
      y2 <- prec_data(y, prec)
      y2[1001] <- Inf
      expect_rows(paste("Sum Inf", scheme), sum, op, c(1, 2), y2)
      y2[999] <- -Inf
      expect_rows(paste("Sum Inf-Inf", scheme), sum, op, c(1, 2), y2)
      y3 <- prec_data(y, prec)
      y3[1000] <- NaN
      expect_rows(paste("Sum NaN", scheme), sum, op, c(1, 2), y3)
    }
    for (red in c("Min", "Max")) {
      fn <- if (red == "Min") min else max
      op <- keops_kernel(sprintf("%s_Reduction(x + y, 1)", red), args)
      expect_rows(red, fn, op, x, prec_data(y, prec))
      y3 <- prec_data(y, prec)
      y3[c(5, 1000)] <- c(NaN, if (red == "Min") -Inf else Inf)
      expect_rows(paste(red, "NaN in y"), fn, op, c(1, 2), y3)
      y3[5] <- 0.5
      expect_rows(paste(red, "Inf in y"), fn, op, c(1, 2), y3)
    }
    # arg-reductions ignore NaN (unless all are NaN)
    y4 <- c(NaN, 3, 1, NaN, 1, 5)
    op <- keops_kernel("ArgMin_Reduction(x + y, 1)", args)
    expect_identical(unname(op(list(c(0, 1), y4))) + 0, matrix(3, 2, 1))
    op <- keops_kernel("ArgMax_Reduction(x + y, 1)", args)
    expect_identical(unname(op(list(c(0, 1), y4))) + 0, matrix(6, 2, 1))
  }
})

test_that("integer input is accepted and equals the double input", {
  local_rk_cpu()
  set.seed(3008)
  X <- matrix(sample(0:15, 21, TRUE), 7, 3)
  Y <- matrix(sample(0:15, 30, TRUE), 10, 3)
  expect_true(is.integer(X))
  for (red in c("Sum", "ArgKMin")) {
    K <- if (red == "ArgKMin") 4
    op <- keops_kernel(red_formula(red, "Square(x - y)", 1, K), c("x=Vi(3)", "y=Vj(3)"))
    got <- op(list(X, Y))
    expect_identical(got, op(list(X + 0, Y + 0)))
    expect_identical(unname(got) + 0,
                     ref_reduce(red, function(x, y) (x - y)^2, X + 0, Y + 0, 1, K = K))
  }
  # an integer parameter and plain integer vectors for dimension 1
  op <- keops_kernel("Sum_Reduction(x * y * s, 1)", c("x=Vi(1)", "y=Vj(1)", "s=Pm(1)"))
  expect_identical(unname(op(list(1:3, 1:4, 2L))) + 0, matrix(c(20, 40, 60), 3, 1))
})

test_that("plain vectors for dimension 1 and inner_dim = \"row\"", {
  local_rk_cpu()
  set.seed(3009)
  X <- rdata(9, 3)
  Y <- rdata(11, 3)
  op <- keops_kernel("Sum_Reduction(Sin(x + y) + x * y, 1)", c("x=Vi(3)", "y=Vj(3)"))
  expected <- ref_reduce("Sum", fams$smooth$fn, X, Y, 1)
  expect_close(op(list(X, Y)), expected, 1e-12, "col")
  expect_close(op(list(t(X), t(Y)), inner_dim = "row"), expected, 1e-12, "row")
  op1 <- keops_kernel("Sum_Reduction(Sin(x + y) + x * y, 1)", c("x=Vi(1)", "y=Vj(1)"))
  expect_identical(op1(list(X[, 1], Y[, 1])), op1(list(X[, 1, drop = FALSE], Y[, 1, drop = FALSE])))
})

test_that("zero-row inputs: M = 0 gives 0 rows, N = 0 the empty reduction", {
  local_rk_cpu()
  set.seed(3010)
  d <- 3
  X0 <- matrix(numeric(0), 0, d)
  Y <- rdata(5, d)
  args <- c("x=Vi(3)", "y=Vj(3)")
  for (prec in c(64, 32)) {
    local_rk_precision(prec)
    for (red in c("Sum", "Min", "ArgMin", "KMin_ArgKMin")) {
      K <- if (red == "KMin_ArgKMin") 2
      od <- red_outdim(red, d, K = K)
      op1 <- keops_kernel(red_formula(red, "Square(x - y)", 1, K), args)
      expect_identical(dim(op1(list(X0, Y))), c(0L, as.integer(od)), info = red)
      op0 <- keops_kernel(red_formula(red, "Square(x - y)", 0, K), args)
      expect_identical(dim(op0(list(Y, X0))), c(0L, as.integer(od)), info = red)
    }
    # N = 0: the empty reduction, over j and over i
    X <- rdata(4, d)
    Y0 <- matrix(numeric(0), 0, d)
    empty <- list(Sum = 0, Min = Inf, Max = -Inf)
    for (red in names(empty)) {
      op1 <- keops_kernel(red_formula(red, "Square(x - y)", 1), args)
      expect_identical(unname(op1(list(X, Y0))), matrix(empty[[red]], 4, d), info = red)
      op0 <- keops_kernel(red_formula(red, "Square(x - y)", 0), args)
      expect_identical(unname(op0(list(Y0, X))), matrix(empty[[red]], 4, d), info = red)
    }
    op <- keops_kernel("LogSumExp_Reduction(x + y, 1)", c("x=Vi(1)", "y=Vj(1)"))
    expect_identical(unname(op(list(1:4, numeric(0)))), matrix(-Inf, 4, 1))
  }
})

with_cpu <- function(ncore, prec, expr) {
  local_rk_cpu_only(ncore, prec)
  force(expr)
}

test_that("results are identical with 1 and 2 threads", {
  local_rk_cpu_only()
  set.seed(3011)
  X <- rdata(1001, 3)
  Y <- rdata(1000, 3)
  Xd <- matrix(as.double(sample(0:15, 3003, TRUE)), 1001, 3)
  Yd <- matrix(as.double(sample(0:15, 3000, TRUE)), 1000, 3)
  W <- rdata(1000, 2, "posw")
  cases <- list(
    list("Sum_Reduction(Sin(x + y) + x * y, 1)", "direct_sum", list(X, Y)),
    list("Sum_Reduction(Sin(x + y) + x * y, 1)", "block_sum", list(X, Y)),
    list("Sum_Reduction(Sin(x + y) + x * y, 0)", "kahan_scheme", list(X, Y)),
    list("ArgKMin_Reduction(Square(x - y), 5, 1)", "auto", list(Xd, Yd)),
    list("Min_ArgMin_Reduction(Square(x - y), 0)", "auto", list(Xd, Yd)),
    list("LogSumExp_Reduction(Sum(Sin(x + y)), 1)", "auto", list(X, Y)),
    list("SumSoftMaxWeight_Reduction(Sum(x * y), g, 1)", "auto", list(X, Y, W))
  )
  for (prec in c(64, 32)) for (cs in cases) {
    args <- c("x=Vi(3)", "y=Vj(3)", if (length(cs[[3]]) == 3) "g=Vj(2)")
    op <- keops_kernel(cs[[1]], args, sum_scheme = cs[[2]])
    r1 <- with_cpu(1, prec, op(cs[[3]]))
    r2 <- with_cpu(2, prec, op(cs[[3]]))
    expect_identical(get_rkeops_options("ncore"), NULL)
    expect_identical(r1, r2, info = paste(cs[[1]], cs[[2]], prec))
  }
})
