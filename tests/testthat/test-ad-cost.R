# test-ad-cost.R -- the cost of symbolic differentiation: a Laplacian or a
# Divergence makes one scalar formula per component, so its cost must be
# linear in the dimension, and bounded by RK_AD_MAX_NODES (src/ad.h): past
# it the formula is refused with a classed error that names the limit.

lap_formula <- "Sum_Reduction(Laplacian(Exp(-SqDist(x, y)), x), 1)"
lap_args <- function(d) c(sprintf("x=Vi(%d)", d), sprintf("y=Vj(%d)", d))

test_that("elementwise fields: Laplacian and Divergence make a few nodes whatever the dimension", {
  nodes <- function(f, d)
    as.numeric(rkeops:::rk_parse(f, lap_args(d))$nodes)
  t <- system.time(n4 <- nodes(lap_formula, 10000))
  expect_identical(n4, nodes(lap_formula, 3))
  expect_lt(t[["elapsed"]], 5) # it used to take 10 s and 6 GB
  div <- "Sum_Reduction(Divergence(x * Exp(-SqNorm2(x - y)) + Sin(x) * y, x), 1)"
  expect_identical(nodes(div, 10000), nodes(div, 3))
})

# a field through Extract / ExtractT (not elementwise): one scalar formula a
# component, so its cost grows with the dimension
lap_extract <- function(d)
  sprintf("Sum_Reduction(Laplacian(Exp(-SqDist(Extract(x, 1, %d), Extract(y, 0, %d))), x), 1)",
          d - 1, d - 1)

test_that("a Laplacian beyond the node budget is refused, naming the limit", {
  t <- system.time(
    e <- tryCatch(keops_kernel(lap_extract(10000), lap_args(10000)), error = identity))
  expect_s3_class(e, "rkeops_unsupported_error")
  expect_match(conditionMessage(e),
               "Laplacian: differentiation would add more than 50000 nodes.*RK_AD_MAX_NODES.*dimension 10000")
  expect_lt(t[["elapsed"]], 10)
  e <- tryCatch(keops_kernel(sub("Laplacian\\((.*), x\\), 1\\)$",
                                 "Divergence(Grad(\\1, x, 1), x), 1)", lap_extract(10000)),
                             lap_args(10000)), error = identity)
  expect_s3_class(e, "rkeops_unsupported_error")
})

test_that("component by component, the Laplacian's formula grows linearly with the dimension", {
  nodes <- vapply(c(500L, 1000L, 2000L), function(d)
    as.numeric(rkeops:::rk_parse(lap_extract(d), lap_args(d))$nodes), 0)
  # the same number of nodes a component (one scalar formula each)
  expect_identical(diff(nodes) / c(500, 1000), rep((nodes[3] - nodes[2]) / 1000, 2))
  expect_lt(nodes[2] / 1000, 30)
})

# f(x) = sum_j exp(-|x - y_j|^2) for one row x, and its Laplacian by
# central second differences, component by component
lap_fd <- function(x, Y, h = 1e-3) {
  f <- function(z) sum(exp(-colSums((t(Y) - z)^2)))
  f0 <- f(x)
  sum(vapply(seq_along(x), function(k) {
    e <- numeric(length(x)); e[k] <- h
    (f(x + e) - 2 * f0 + f(x - e)) / h^2
  }, 0))
}

test_that("Laplacians in dimension 20 and 1000 match finite differences", {
  local_rk_cpu(prec = 64)
  for (d in c(20L, if (identical(Sys.getenv("NOT_CRAN"), "true")) 1000L)) {
    set.seed(d)
    X <- matrix(rnorm(2 * d, sd = 0.5 / sqrt(d)), 2)
    Y <- matrix(rnorm(3 * d, sd = 0.5 / sqrt(d)), 3)
    ref <- vapply(1:2, function(i) lap_fd(X[i, ], Y), 0)
    got <- keops_kernel(lap_formula, lap_args(d))(list(X, Y))
    expect_equal(as.vector(got), ref, tolerance = 1e-6, label = sprintf("d = %d", d))
    # component by component: the same function of x through Extract
    # (the extra component 0 of x and the last of y do not enter)
    if (d == 20L) {
      got <- keops_kernel(lap_extract(d), lap_args(d))(list(X, Y))
      ref2 <- vapply(1:2, function(i)
        lap_fd(X[i, -1], Y[, -d, drop = FALSE]), 0)
      expect_equal(as.vector(got), ref2, tolerance = 1e-6, label = "d = 20, components")
    }
  }
})
