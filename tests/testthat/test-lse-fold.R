# The LogSumExp folds of cg-reduce.c: the CPU kernels rescale in a rare
# branch, the CUDA kernels use the branch-free fold (one exp per point and
# selects).  RKEOPS_CPU_LSE=1 gives the CPU kernels the CUDA fold, so both
# are checked here, without a GPU, against dense R: ties, maxima that keep
# growing (a rescale at every point), +-Inf, NaN, values of order 1e4.

lse_sets <- function(M = 300, N = 1100) {
  set.seed(11)
  x <- c(runif(M - 7, -3, 3), 0, 0, Inf, -Inf, NaN, 1e4, -1e4)
  y <- c(sort(runif(400, -5, 5)),         # increasing: a new maximum each time
         rev(sort(runif(300, -5, 5))),
         rep(1.5, 50),                    # ties
         runif(N - 756, -20, 20),
         -Inf, -Inf, 1e4 + 0.5, -1e4, 1.5, 1.5)
  list(main = list(x = x, y = y),
       # +Inf points: every finite row's result is +Inf
       inf = list(x = x[1:50], y = c(runif(500), Inf, runif(300), Inf, -Inf)),
       # a NaN point: every row's result is NaN
       nan = list(x = x[1:50], y = c(runif(700), NaN, runif(20))))
}

# log(sum(exp(v) * w)) as R computes it, the maximum shifted out
lse_ref <- function(v, w = rep(1, length(v))) {
  m <- max(v)
  if (is.nan(m) || anyNA(v)) return(NaN)
  if (!is.finite(m)) return(m)
  m + log(sum(exp(v - m) * w))
}

test_that("the two LogSumExp folds agree with dense R on ties, Inf and NaN", {
  sets <- lse_sets()
  op <- keops_kernel("LogSumExp_Reduction(x + y, 1)", c("x=Vi(1)", "y=Vj(1)"))
  op0 <- keops_kernel("LogSumExp_Reduction(x + y, 0)", c("x=Vi(1)", "y=Vj(1)"))
  opw <- keops_kernel("LogSumExpWeight_Reduction(x + y, w, 1)",
                      c("x=Vi(1)", "y=Vj(1)", "w=Vj(1)"))
  ops <- keops_kernel("SumSoftMaxWeight_Reduction(x + y, w, 1)",
                      c("x=Vi(1)", "y=Vj(1)", "w=Vj(2)"))
  for (fold in c("0", "1")) {
    withr::local_envvar(RKEOPS_CPU_LSE = fold)
    for (prec in c(64, 32)) {
      local_rk_cpu(prec = prec)
      tol <- tol_for(prec)
      for (s in names(sets)) {
        lab <- sprintf("fold %s, float%d, set %s", fold, prec, s)
        xs <- prec_data(sets[[s]]$x, prec)
        ys <- prec_data(sets[[s]]$y, prec)
        N <- length(ys)
        W <- cbind(runif(N), runif(N, -1, 1))
        V <- outer(xs, ys, "+")
        ref <- apply(V, 1, lse_ref)
        ok <- is.finite(ref)
        if (s == "main") expect_gt(sum(ok), 280)
        if (s == "inf") expect_true(all(ref[is.finite(xs)] == Inf))
        if (s == "nan") expect_true(all(is.nan(ref)))

        got <- op(list(xs, ys))[, 1]
        expect_identical(is.nan(got), is.nan(ref), label = lab)
        expect_identical(got[!ok & !is.nan(ref)], ref[!ok & !is.nan(ref)], label = lab)
        expect_equal(got[ok], ref[ok], tolerance = tol, label = lab)
        # the other axis: the same values, transposed
        got0 <- op0(list(ys, xs))[, 1]
        expect_identical(is.nan(got0), is.nan(ref), label = lab)
        expect_identical(got0[!ok & !is.nan(ref)], ref[!ok & !is.nan(ref)], label = lab)
        expect_equal(got0[ok], ref[ok], tolerance = tol, label = lab)
        # with positive weights
        w <- prec_data(W[, 1] + 2, prec)
        refw <- apply(V, 1, lse_ref, w = w)
        gotw <- opw(list(xs, ys, w))[, 1]
        expect_identical(is.nan(gotw), is.nan(refw), label = lab)
        expect_equal(gotw[is.finite(refw)], refw[is.finite(refw)], tolerance = tol,
                     label = lab)
        # the softmax-weighted sum where the maximum is finite (and, in
        # float32, the values small enough for their rounding not to matter)
        gots <- ops(list(xs, ys, W))
        rows <- which(ok & (prec == 64 | abs(xs) < 10))
        if (s == "main") expect_gt(length(rows), 280)
        refs <- t(vapply(rows, function(i) {
          e <- exp(V[i, ] - max(V[i, ]))
          colSums(e * prec_data(W, prec)) / sum(e)
        }, numeric(2)))
        expect_equal(gots[rows, , drop = FALSE], refs, tolerance = tol, label = lab)
        expect_true(all(is.nan(gots[is.nan(ref), ])), label = lab)
      }
    }
  }
})
