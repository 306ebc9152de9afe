# test-grad.R -- symbolic differentiation (src/ad.c, src/ad-rules.c,
# R/keops_grad.R), checked against the engine's own forward values.
#
# 1. ONE table, a row per differentiable operation of src/ops.def (plus the
#    broadcasting variants and every case of the multi-case ops): the
#    formula with operands a, b, c (i-variables), their dimensions and data
#    domains (points where the op is smooth: away from kinks, jumps and
#    singularities).  Each row is multiplied by a positive j-weight w and
#    summed over j.  The rows are compiled in chunks: one forward kernel
#    Concat(F_1 * w, F_2 * w, ...) and one gradient kernel
#    Concat(Grad(F_1 * w, a_1, e_1), Grad(F_1 * w, b_1, e_1), ...), written
#    with the formula language's Grad.  For each operand the gradient,
#    dotted with a random direction, is compared row by row with central
#    finite differences of the forward kernel (float64, relative error
#    <= 1e-6).  Second order, the same way: Grad(Grad(F, a, e), a, u)
#    against finite differences of the gradient kernel.
# 2. keops_grad() with respect to i, j and parameter variables, for Sum,
#    LogSumExp, LogSumExpWeight and SumSoftMaxWeight reductions.
# 3. Second order (Hessian-vector products by keops_grad of keops_grad,
#    Diff, Laplacian, Divergence, second derivative in a parameter) for the
#    Gaussian, Laplace and Cauchy kernels, against finite differences of
#    the first-order gradients.
# 4. The Gaussian kernel sum against analytic derivatives written in R.
# 5. Errors: Min/Max/KMin/Arg-type reductions are not differentiable.

g_tol <- 1e-6

# ---- data domains ------------------------------------------------------------

g_unif <- function(lo, hi) function(n, d) matrix(stats::runif(n * d, lo, hi), n, d)
# values of random sign with |x| in [lo, hi]
g_away0 <- function(lo, hi) function(n, d) {
  matrix(sample(c(-1, 1), n * d, TRUE) * stats::runif(n * d, lo, hi), n, d)
}
# non-integers: k + u with u in [0.2, 0.8] (for Floor, Round, OneHot)
g_frac <- function(lo, hi, scale = 1) function(n, d) {
  k <- sample(lo:hi, n * d, TRUE)
  matrix((k + stats::runif(n * d, 0.2, 0.8)) * scale, n, d)
}
# a list of fixed values (kinks of Clamp, IfElse ... avoided)
g_pick <- function(vals) function(n, d) {
  matrix(sample(vals, n * d, TRUE) + stats::runif(n * d, -0.05, 0.05), n, d)
}

R <- g_unif(-1, 1)
POS <- g_unif(0.5, 2)
AW <- g_away0(0.3, 1.2)

grow <- function(op, f, dims, doms = NULL, h = 1e-4) {
  if (is.null(doms)) doms <- rep(list(R), length(dims))
  list(op = op, f = f, dims = dims, doms = doms, h = h)
}

grad_table <- list(
  # ---- arithmetic ----
  grow("Add", "a + b", c(3, 3)),
  grow("Add (bcast a)", "a + b", c(1, 3)),
  grow("Subtract", "a - b", c(3, 3)),
  grow("Subtract (bcast b)", "a - b", c(3, 1)),
  grow("Mult", "a * b", c(3, 3)),
  grow("Mult (bcast a)", "a * b", c(1, 3)),
  grow("Divide", "a / b", c(3, 3), list(R, AW)),
  grow("Divide (bcast a)", "a / b", c(1, 3), list(R, AW)),
  grow("Divide (bcast b)", "a / b", c(3, 1), list(R, AW)),
  grow("Minus", "-a", 3),
  # ---- elementwise ----
  grow("Exp", "Exp(a)", 3),
  grow("Log", "Log(a)", 3, list(POS)),
  grow("Sin", "Sin(a)", 3),
  grow("Cos", "Cos(a)", 3),
  grow("Sinh", "Sinh(a)", 3),
  grow("Cosh", "Cosh(a)", 3),
  grow("Tanh", "Tanh(a)", 3),
  grow("Tan", "Tan(a)", 3),
  grow("Asin", "Asin(a)", 3, list(g_unif(-0.8, 0.8))),
  grow("Acos", "Acos(a)", 3, list(g_unif(-0.8, 0.8))),
  grow("Atan", "Atan(a)", 3, list(g_unif(-2, 2))),
  grow("Atan2", "Atan2(a, b)", c(3, 3), list(AW, AW)),
  grow("Atan2 (bcast b)", "Atan2(a, b)", c(3, 1), list(AW, AW)),
  grow("Sqrt", "Sqrt(a)", 3, list(POS)),
  grow("Rsqrt", "Rsqrt(a)", 3, list(POS)),
  grow("Inv", "Inv(a)", 3, list(AW)),
  grow("Square", "Square(a)", 3),
  grow("Pow 3", "Pow(a, 3)", 3),
  grow("Pow 2", "Pow(a, 2)", 3),
  grow("Pow -2", "Pow(a, -2)", 3, list(AW)),
  grow("Powf", "Powf(a, b)", c(3, 3), list(POS, R)),
  grow("Powf (bcast b)", "Powf(a, b)", c(3, 1), list(POS, R)),
  grow("Abs", "Abs(a)", 3, list(AW)),
  grow("Sign", "Sign(a)", 3, list(AW)),
  grow("Step", "Step(a)", 3, list(AW)),
  grow("ReLU", "ReLU(a)", 3, list(AW)),
  grow("Floor", "Floor(a)", 3, list(g_frac(-3, 3))),
  grow("Round", "Round(a, 1)", 3, list(g_frac(-30, 30, 0.1)), h = 1e-7),
  grow("XLogX", "XLogX(a)", 3, list(POS)),
  grow("SinXDivX", "SinXDivX(a)", 3, list(AW)),
  grow("Clamp", "Clamp(a, b, c)", c(3, 3, 3),
       list(g_pick(c(-2, -0.9, 0, 0.3, 0.9, 2)), g_pick(-0.5), g_pick(0.6))),
  grow("Clamp (bcast b, c)", "Clamp(a, b, c)", c(3, 1, 1),
       list(g_pick(c(-2, -0.9, 0, 0.3, 0.9, 2)), g_pick(-0.5), g_pick(0.6))),
  grow("ClampInt", "ClampInt(a, -1, 1)", 3, list(g_pick(c(-2, -0.5, 0, 0.5, 2)))),
  grow("IfElse", "IfElse(a, b, c)", c(3, 3, 3), list(AW, R, R)),
  grow("IfElse (bcast a)", "IfElse(a, b, c)", c(1, 3, 3), list(AW, R, R)),
  grow("Mod", "Mod(a, b, c)", c(3, 1, 1),
       list(g_frac(-3, 3, 1.5), g_pick(1.5), g_pick(0))),
  # ---- comparisons: derivative zero (data away from ties) ----
  grow("Equal", "Equal(a, b) * Exp(a)", c(3, 3)),
  grow("NotEqual", "NotEqual(a, b) * Exp(a)", c(3, 3)),
  grow("LessThan", "LessThan(a, b) * Exp(a)", c(3, 3)),
  grow("LessOrEqual", "LessOrEqual(a, b) * Exp(b)", c(3, 3)),
  grow("GreaterThan", "GreaterThan(a, b) * Exp(a)", c(3, 1)),
  grow("GreaterOrEqual", "GreaterOrEqual(a, b) * Exp(b)", c(1, 3)),
  # ---- reductions over the inner dimension ----
  grow("Sum", "Sum(a)", 4),
  grow("Max", "Max(a)", 4),
  grow("Min", "Min(a)", 4),
  grow("ArgMax", "ArgMax(a)", 4),
  grow("ArgMin", "ArgMin(a)", 4),
  grow("SqNorm2", "SqNorm2(a)", 3),
  grow("Norm2", "Norm2(a)", 3),
  grow("Scalprod", "(a | b)", c(3, 3)),
  grow("SqDist", "SqDist(a, b)", c(3, 3)),
  grow("SqDist (bcast a)", "SqDist(a, b)", c(1, 3)),
  grow("SqDist (bcast b)", "SqDist(a, b)", c(3, 1)),
  grow("WeightedSqNorm (s scalar)", "WeightedSqNorm(a, b)", c(1, 3), list(POS, R)),
  grow("WeightedSqNorm (s diagonal)", "WeightedSqNorm(a, b)", c(3, 3), list(POS, R)),
  grow("WeightedSqNorm (s matrix)", "WeightedSqNorm(a, b)", c(9, 3)),
  grow("WeightedSqDist (s scalar)", "WeightedSqDist(a, b, c)", c(1, 3, 3), list(POS, R, R)),
  grow("WeightedSqDist (s diagonal)", "WeightedSqDist(a, b, c)", c(3, 3, 3), list(POS, R, R)),
  grow("WeightedSqDist (s matrix)", "WeightedSqDist(a, b, c)", c(4, 2, 2)),
  grow("WeightedSqDist (bcast b)", "WeightedSqDist(a, b, c)", c(3, 1, 3), list(POS, R, R)),
  grow("WeightedSqDist (s matrix, bcast c)", "WeightedSqDist(a, b, c)", c(4, 2, 1)),
  # ---- vector operations ----
  grow("Normalize", "Normalize(a)", 3, list(AW)),
  grow("Elem", "Elem(a, 1)", 3),
  grow("ElemT", "ElemT(a, 4, 2)", 1),
  grow("Extract", "Extract(a, 1, 2)", 4),
  grow("ExtractT", "ExtractT(a, 1, 5)", 3),
  grow("Concat", "Concat(a, b)", c(2, 3)),
  grow("OneHot", "OneHot(a, 4)", 1, list(g_frac(0, 3))),
  grow("SumT", "SumT(a, 3)", 1),
  grow("MatVecMult", "MatVecMult(a, b)", c(6, 3)),
  grow("VecMatMult", "VecMatMult(a, b)", c(2, 6)),
  grow("TensorProd", "TensorProd(a, b)", c(2, 3)),
  # ---- compositions (nonlinear in several places) ----
  grow("Exp(-SqDist/.)", "Exp(-SqDist(a, b) / c)", c(3, 3, 1), list(R, R, POS)),
  grow("Normalize * Norm2", "Normalize(a * b) * Norm2(a - b)", c(3, 3), list(AW, AW))
)

g_vars <- c("a", "b", "c")

# the formula of row k with operands renamed a -> a<k>, ... and its
# declarations (i-variables), eta e<k> of dimension outdim
g_row_formula <- function(row, k) {
  f <- row$f
  for (v in g_vars[seq_along(row$dims)]) {
    f <- gsub(sprintf("\\b%s\\b", v), sprintf("%s%d", v, k), f, perl = TRUE)
  }
  f
}

# run one chunk of rows: returns the per-row relative errors by operand
g_check_chunk <- function(rows, ks, M = 6L, N = 5L) {
  fs <- character()
  decl <- character()
  data <- list()
  for (t in seq_along(rows)) {
    row <- rows[[t]]
    k <- ks[t]
    fs[t] <- sprintf("(%s) * w", g_row_formula(row, k))
    for (m in seq_along(row$dims)) {
      nm <- sprintf("%s%d", g_vars[m], k)
      decl <- c(decl, sprintf("%s=Vi(%d)", nm, row$dims[m]))
      data[[nm]] <- row$doms[[m]](M, row$dims[m])
    }
  }
  decl <- c(decl, "w=Vj(1)")
  data$w <- stats::runif(N, 0.5, 1.5)
  cat_all <- function(x) {
    if (length(x) == 1L) x else sprintf("Concat(%s, %s)", x[1], cat_all(x[-1]))
  }
  fwd <- keops_kernel(sprintf("Sum_Reduction(%s, 1)", cat_all(fs)), decl)
  out0 <- fwd(data)
  # output dimension of each row, from single-row parses
  outdims <- vapply(seq_along(rows), function(t) {
    ds <- rows[[t]]$dims
    dd <- sprintf("%s%d=Vi(%d)", g_vars[seq_along(ds)], ks[t], ds)
    attr(keops_kernel(sprintf("Sum_Reduction(%s, 1)", fs[t]),
                      c(dd, "w=Vj(1)")), "outdim")
  }, 1L)
  # gradient kernel
  gparts <- character()
  eta <- list()
  gdecl <- decl
  for (t in seq_along(rows)) {
    k <- ks[t]
    en <- sprintf("e%d", k)
    gdecl <- c(gdecl, sprintf("%s=Vi(%d)", en, outdims[t]))
    eta[[en]] <- matrix(stats::rnorm(M * outdims[t]), M, outdims[t])
    for (m in seq_along(rows[[t]]$dims)) {
      gparts <- c(gparts, sprintf("Grad(%s, %s%d, %s)", fs[t], g_vars[m], k, en))
    }
  }
  gk <- keops_kernel(sprintf("Sum_Reduction(%s, 1)", cat_all(gparts)), gdecl)
  G <- gk(c(data, eta))
  # second order: Grad(Grad(F, a, e), a, u), one block per operand
  hparts <- character()
  hdecl <- gdecl
  dirs <- list()
  for (t in seq_along(rows)) {
    for (m in seq_along(rows[[t]]$dims)) {
      un <- sprintf("u%s%d", g_vars[m], ks[t])
      hdecl <- c(hdecl, sprintf("%s=Vi(%d)", un, rows[[t]]$dims[m]))
      dirs[[un]] <- matrix(stats::rnorm(M * rows[[t]]$dims[m]), M,
                           rows[[t]]$dims[m])
      hparts <- c(hparts, sprintf("Grad(Grad(%s, %s%d, e%d), %s%d, %s)", fs[t],
                                  g_vars[m], ks[t], ks[t], g_vars[m], ks[t], un))
    }
  }
  hk <- keops_kernel(sprintf("Sum_Reduction(%s, 1)", cat_all(hparts)), hdecl)
  H <- hk(c(data, eta, dirs))
  # compare
  col_out <- cumsum(c(0L, outdims))
  col_g <- 0L
  errs <- list()
  for (t in seq_along(rows)) {
    row <- rows[[t]]
    k <- ks[t]
    oc <- col_out[t] + seq_len(outdims[t])
    for (m in seq_along(row$dims)) {
      nm <- sprintf("%s%d", g_vars[m], k)
      gc <- col_g + seq_len(row$dims[m])
      col_g <- col_g + row$dims[m]
      dir <- dirs[[sprintf("u%s", nm)]]
      dp <- data
      dm <- data
      dp[[nm]] <- data[[nm]] + row$h * dir
      dm[[nm]] <- data[[nm]] - row$h * dir
      fp <- fwd(dp)[, oc, drop = FALSE]
      fm <- fwd(dm)[, oc, drop = FALSE]
      fd <- rowSums((fp - fm) / (2 * row$h) * eta[[sprintf("e%d", k)]])
      an <- rowSums(G[, gc, drop = FALSE] * dir)
      errs[[sprintf("%s / %s", row$op, g_vars[m])]] <- list(
        err = rel_err(an, fd, tiny = 1e-10), an = an, fd = fd
      )
      # Hessian-vector product against finite differences of the gradient
      gp <- gk(c(dp, eta))[, gc, drop = FALSE]
      gm <- gk(c(dm, eta))[, gc, drop = FALSE]
      fd2 <- (gp - gm) / (2 * row$h)
      an2 <- H[, gc, drop = FALSE]
      errs[[sprintf("%s / %s (second order)", row$op, g_vars[m])]] <- list(
        err = rel_err(an2, fd2, tiny = 1e-8), an = an2, fd = fd2
      )
    }
  }
  # the canonical text of the derivatives parses back to itself
  for (kk in list(gk, hk)) {
    canon <- attr(kk, "canonical")
    again <- attr(keops_kernel(canon, attr(kk, "args")), "canonical")
    errs[[paste("round trip", substr(canon, 1, 40))]] <- list(
      err = if (identical(again, canon)) 0 else Inf, an = NA, fd = NA)
  }
  errs
}

# chunks of at most 12 rows whose kernels stay within the engine's limit
# of 64 variables (a row takes its operands, their directions and its eta;
# plus the weight w)
g_chunks <- function(tab, max_rows = 12L, max_vars = 60L) {
  out <- list()
  cur <- integer()
  nv <- 1L
  for (k in seq_along(tab)) {
    v <- 2L * length(tab[[k]]$dims) + 1L
    if (length(cur) && (length(cur) == max_rows || nv + v > max_vars)) {
      out <- c(out, list(cur))
      cur <- integer()
      nv <- 1L
    }
    cur <- c(cur, k)
    nv <- nv + v
  }
  c(out, list(cur))
}

test_that("every differentiable op: Grad against finite differences (float64)", {
  local_rk_cpu(prec = 64)
  set.seed(42)
  for (ch in g_chunks(grad_table)) {
    errs <- g_check_chunk(grad_table[ch], ch)
    for (nm in names(errs)) {
      e <- errs[[nm]]
      expect_true(e$err <= g_tol, label = sprintf(
        "%s: relative error %.3g (grad %s, finite differences %s)", nm, e$err,
        paste(format(head(e$an, 3), digits = 10), collapse = " "),
        paste(format(head(e$fd, 3), digits = 10), collapse = " ")))
    }
  }
})

test_that("the table covers every VJP rule of ops.def", {
  defs <- def_names("ops.def", "X")
  if (is.null(defs)) defs <- ops_expected # installed package: no src/
  tested <- sub(" .*$", "", vapply(grad_table, `[[`, "", "op"))
  untested <- setdiff(defs, c(tested, "Var", "IntCst", "Cst", "Zero", "Grad",
                              "Diff", "Laplacian", "Divergence"))
  expect_identical(untested, character())
})

# ---- keops_grad: i, j and parameter variables, every reduction --------------

# finite-difference check of a gradient operator of `op` with respect to
# input number p, with the gradient input eta
g_check_keops_grad <- function(op, input, p, eta, h = 1e-5) {
  gop <- keops_grad(op, p)
  g <- gop(c(input, list(eta)))
  x <- input[[p]]
  dir <- stats::rnorm(length(x))
  dim(dir) <- dim(x)
  ip <- input
  im <- input
  ip[[p]] <- x + h * dir
  im[[p]] <- x - h * dir
  fd <- sum((op(ip) - op(im)) / (2 * h) * eta)
  an <- sum(g * dir)
  list(err = abs(an - fd) / max(abs(fd), 1e-10), g = g, an = an, fd = fd)
}

test_that("keops_grad: i, j and parameter variables of each reduction", {
  local_rk_cpu(prec = 64)
  set.seed(7)
  M <- 7L
  N <- 9L
  x <- matrix(stats::rnorm(M * 2), M, 2)
  y <- matrix(stats::rnorm(N * 2), N, 2)
  b <- matrix(stats::runif(N * 2, 0.5, 1.5), N, 2)
  s <- 0.8
  args <- c("x=Vi(2)", "y=Vj(2)", "b=Vj(2)", "s=Pm(1)")
  input <- list(x, y, b, s)
  f <- "-SqDist(x, y) / s + (x | y)"
  cases <- list(
    list(red = sprintf("Sum_Reduction(Exp(%s) * b, 1)", f), outdim = 2),
    list(red = sprintf("Sum_Reduction(Exp(%s) * b, 0)", f), outdim = 2),
    list(red = sprintf("LogSumExp_Reduction(%s, 1)", f), outdim = 1),
    list(red = sprintf("LogSumExp_Reduction(%s, 0)", f), outdim = 1),
    list(red = sprintf("LogSumExpWeight_Reduction(%s, b, 1)", f), outdim = 2),
    list(red = sprintf("SumSoftMaxWeight_Reduction(%s, b * y, 1)", f), outdim = 2),
    list(red = sprintf("SumSoftMaxWeight_Reduction(%s, x * b, 0)", f), outdim = 2)
  )
  for (cs in cases) {
    op <- keops_kernel(cs$red, args)
    nout <- if (grepl(", 0)$", cs$red)) N else M
    eta <- matrix(stats::rnorm(nout * cs$outdim), nout, cs$outdim)
    for (p in 1:4) {
      r <- g_check_keops_grad(op, input, p, eta)
      expect_true(r$err <= g_tol, label = sprintf(
        "%s w.r.t. %s: relative error %.3g (%g vs %g)", cs$red,
        c("x", "y", "b", "s")[p], r$err, r$an, r$fd))
      # the shape: one row per point of the variable, one row for s
      expect_identical(dim(r$g), if (p == 4) c(1L, 1L) else
        c(if (p == 1) M else N, 2L))
    }
  }
})

test_that("keops_grad: var by name or 1-based position, inner_dim = \"row\"", {
  local_rk_cpu(prec = 64)
  set.seed(3)
  op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)",
                     c("x=Vi(3)", "y=Vj(3)", "b=Vj(2)"))
  x <- matrix(stats::rnorm(12), 4, 3)
  y <- matrix(stats::rnorm(15), 5, 3)
  b <- matrix(stats::rnorm(10), 5, 2)
  eta <- matrix(stats::rnorm(8), 4, 2)
  g1 <- keops_grad(op, "y")(list(x, y, b, eta))
  g2 <- keops_grad(op, 2)(list(x, y, b, eta))
  expect_identical(g1, g2)
  expect_identical(dim(g1), c(5L, 3L))
  g3 <- keops_grad(op, "y")(list(t(x), t(y), t(b), t(eta)), inner_dim = "row")
  expect_equal(g3, g1, tolerance = 1e-12)
  # named inputs, in any order
  g4 <- keops_grad(op, "y")(list(eta = eta, b = b, y = y, x = x))
  expect_equal(g4, g1, tolerance = 1e-12)
  expect_s3_class(keops_grad(op, "x"), "rkeops_operator")
  expect_error(keops_grad(op, "z"), class = "rkeops_var_error")
  expect_error(keops_grad(op, 5), class = "rkeops_var_error")
  expect_error(keops_grad(function(x) x, "x"), class = "rkeops_error")
})

test_that("keops_grad: a variable the formula does not use has zero gradient", {
  local_rk_cpu(prec = 64)
  op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x, y)), 1)",
                     c("x=Vi(2)", "y=Vj(2)", "z=Vj(3)"))
  x <- matrix(stats::rnorm(6), 3, 2)
  y <- matrix(stats::rnorm(8), 4, 2)
  z <- matrix(stats::rnorm(12), 4, 3)
  g <- keops_grad(op, "z")(list(x, y, z, matrix(1, 3, 1)))
  expect_identical(g, matrix(0, 4, 3))
})

# ---- second order ---------------------------------------------------------------

g_kernels <- list(
  gaussian = "Exp(-SqDist(x, y) / s)",
  laplace = "Exp(-Sqrt(SqDist(x, y)) / s)",
  cauchy = "Inv(IntCst(1) + SqDist(x, y) / s)"
)

test_that("second order: Hessian-vector products, Diff, Laplacian, Divergence", {
  local_rk_cpu(prec = 64)
  set.seed(11)
  M <- 6
  N <- 8
  D <- 3
  x <- matrix(stats::rnorm(M * D), M, D)
  y <- matrix(stats::rnorm(N * D), N, D)
  b <- stats::runif(N, 0.5, 1.5)
  s <- 1.7
  u <- matrix(stats::rnorm(M * D), M, D)
  eta <- matrix(stats::rnorm(M), M, 1)
  args <- c("x=Vi(3)", "y=Vj(3)", "s=Pm(1)", "b=Vj(1)")
  h <- 1e-5
  for (kn in names(g_kernels)) {
    k <- g_kernels[[kn]]
    op <- keops_kernel(sprintf("Sum_Reduction(%s * b, 1)", k), args)
    gx <- keops_grad(op, "x")
    in0 <- list(x, y, s, b)
    gat <- function(xx) gx(list(xx, y, s, b, eta))
    # Hessian-vector product: keops_grad of keops_grad
    hv <- keops_grad(gx, "x")(list(x, y, s, b, eta, u))
    fd <- (gat(x + h * u) - gat(x - h * u)) / (2 * h)
    expect_lte(rel_err(hv, fd), g_tol, label = paste(kn, "HVP rel. error"))
    # the same with Diff (forward mode) in the formula language
    hv2 <- keops_kernel(
      sprintf("Sum_Reduction(Diff(Grad(%s * b, x, e), x, u), 1)", k),
      c(args, "e=Vi(1)", "u=Vi(3)"))(list(x, y, s, b, eta, u))
    expect_lte(rel_err(hv2, hv), 1e-10, label = paste(kn, "Diff(Grad) vs Grad(Grad)"))
    # Diff of the function itself: directional derivative
    dd <- keops_kernel(sprintf("Sum_Reduction(Diff(%s * b, x, u), 1)", k),
                       c(args, "u=Vi(3)"))(list(x, y, s, b, u))
    fd1 <- (op(list(x + h * u, y, s, b)) - op(list(x - h * u, y, s, b))) / (2 * h)
    expect_lte(rel_err(dd, fd1), g_tol, label = paste(kn, "Diff rel. error"))
    # Laplacian = trace of the Hessian, by finite differences of the gradient
    lap <- keops_kernel(sprintf("Sum_Reduction(Laplacian(%s * b, x), 1)", k),
                        args)(in0)
    one <- matrix(1, M, 1)
    gat1 <- function(xx) gx(list(xx, y, s, b, one))
    fdl <- 0
    for (c in seq_len(D)) {
      E <- matrix(0, M, D)
      E[, c] <- 1
      fdl <- fdl + ((gat1(x + h * E) - gat1(x - h * E)) / (2 * h))[, c]
    }
    expect_lte(rel_err(lap, fdl), g_tol, label = paste(kn, "Laplacian rel. error"))
    # Divergence of the gradient field is the Laplacian
    div <- keops_kernel(
      sprintf("Sum_Reduction(Divergence(Grad(%s * b, x, IntCst(1)), x), 1)", k),
      args)(in0)
    expect_lte(rel_err(div, lap), 1e-12, label = paste(kn, "Divergence"))
    # second derivative with respect to the parameter s (full sums)
    gs <- keops_grad(op, "s")
    gss <- keops_grad(gs, "s")(list(x, y, s, b, eta, 1))
    fds <- (gs(list(x, y, s + h, b, eta)) - gs(list(x, y, s - h, b, eta))) / (2 * h)
    expect_lte(rel_err(gss, fds), g_tol, label = paste(kn, "d2/ds2 rel. error"))
    # mixed: d/dy of the x-gradient (a j-variable, reduction over i)
    gxy <- keops_grad(gx, "y")
    v <- matrix(stats::rnorm(M * D), M, D)
    r <- gxy(list(x, y, s, b, eta, v))
    dy <- matrix(stats::rnorm(N * D), N, D)
    fdy <- sum((gx(list(x, y + h * dy, s, b, eta)) -
                gx(list(x, y - h * dy, s, b, eta))) / (2 * h) * v)
    expect_lte(abs(sum(r * dy) - fdy) / abs(fdy), g_tol,
               label = paste(kn, "d2/dxdy rel. error"))
  }
})

test_that("Divergence and Laplacian through Concat, Extract, ElemT, SumT, broadcasting", {
  local_rk_cpu(prec = 64)
  set.seed(13)
  M <- 5L
  N <- 4L
  x <- matrix(stats::runif(M * 3, -1, 1), M, 3)
  y <- matrix(stats::runif(N * 3, -1, 1), N, 3)
  b <- stats::runif(N, 0.5, 1.5)
  args <- c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)")
  h <- 1e-5
  fields <- c(
    "Concat(Extract(x * x, 0, 1), Sin(Extract(x, 1, 2)) * Elem(x, 0))",
    "ElemT(Elem(x, 2), 3, 0) + SumT(Sum(Exp(x)), 3) * Normalize(x - y)",
    "ExtractT(Extract(x, 1, 2) * Elem(y, 0), 0, 3) + Max(x) * y + Elem(x, 1)"
  )
  for (fm in fields) {
    fwd <- keops_kernel(sprintf("Sum_Reduction((%s) * b, 1)", fm), args)
    div <- keops_kernel(sprintf("Sum_Reduction(Divergence((%s) * b, x), 1)", fm),
                        args)(list(x, y, b))
    fd <- 0
    for (k in 1:3) {
      E <- matrix(0, M, 3)
      E[, k] <- h
      fd <- fd + (fwd(list(x + E, y, b)) - fwd(list(x - E, y, b)))[, k] / (2 * h)
    }
    expect_lte(rel_err(div, fd), g_tol, label = paste("Divergence of", fm))
  }
  scalars <- c(
    "Sum(Concat(Extract(x, 0, 1) * Norm2(x - y), Extract(Sin(x), 1, 2)))",
    "Elem(x, 1) * Exp(-SqDist(x, y)) + Max(x * y)",
    "Cos(x | y) * Sum(SumT(Elem(x, 0), 3) * x)"
  )
  for (fm in scalars) {
    g <- keops_kernel(sprintf("Sum_Reduction(Grad((%s) * b, x, IntCst(1)), 1)", fm),
                      args)
    lap <- keops_kernel(sprintf("Sum_Reduction(Laplacian((%s) * b, x), 1)", fm),
                        args)(list(x, y, b))
    fd <- 0
    for (k in 1:3) {
      E <- matrix(0, M, 3)
      E[, k] <- h
      fd <- fd + (g(list(x + E, y, b)) - g(list(x - E, y, b)))[, k] / (2 * h)
    }
    expect_lte(rel_err(lap, fd), g_tol, label = paste("Laplacian of", fm))
  }
})

# ---- analytic references ------------------------------------------------------

test_that("Gaussian kernel sum: gradients against the analytic formulas", {
  local_rk_cpu(prec = 64)
  set.seed(5)
  M <- 10
  N <- 12
  x <- matrix(stats::rnorm(M * 2), M, 2)
  y <- matrix(stats::rnorm(N * 2), N, 2)
  b <- stats::runif(N)
  s <- 0.9
  op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x, y) / s) * b, 1)",
                     c("x=Vi(2)", "y=Vj(2)", "s=Pm(1)", "b=Vj(1)"))
  D2 <- outer(rowSums(x^2), rowSums(y^2), "+") - 2 * x %*% t(y)
  K <- exp(-D2 / s)
  eta <- matrix(stats::rnorm(M), M, 1)
  # d/dx_i sum_j exp(-|x_i - y_j|^2 / s) b_j = sum_j -2/s (x_i - y_j) K_ij b_j
  gx <- keops_grad(op, "x")(list(x, y, s, b, eta))
  ref <- -2 / s * ((K %*% b)[, 1] * x - K %*% (b * y)) * eta[, 1]
  expect_lte(rel_err(gx, ref), 1e-12)
  # d/dy_j: sum_i eta_i 2/s (x_i - y_j) K_ij b_j
  gy <- keops_grad(op, "y")(list(x, y, s, b, eta))
  KE <- K * eta[, 1]
  ref <- 2 / s * b * (t(KE) %*% x - colSums(KE) * y)
  expect_lte(rel_err(gy, ref), 1e-12)
  # d/ds: sum_ij eta_i K_ij b_j |x_i - y_j|^2 / s^2
  gs <- keops_grad(op, "s")(list(x, y, s, b, eta))
  ref <- sum(eta[, 1] * ((K * D2 / s^2) %*% b))
  expect_lte(rel_err(gs, ref), 1e-12)
  # a log-likelihood term: sum_i log(sum_j K_ij b_j) = LogSumExpWeight
  ll <- keops_kernel("LogSumExpWeight_Reduction(-SqDist(x, y) / s, b, 1)",
                     c("x=Vi(2)", "y=Vj(2)", "s=Pm(1)", "b=Vj(1)"))
  one <- matrix(1, M, 1)
  Kb <- (K %*% b)[, 1]
  gx <- keops_grad(ll, "x")(list(x, y, s, b, one))
  ref <- -2 / s * (x - (K %*% (b * y)) / Kb)
  expect_lte(rel_err(gx, ref), 1e-12)
  gs <- keops_grad(ll, "s")(list(x, y, s, b, one))
  ref <- sum(((K * D2 / s^2) %*% b)[, 1] / Kb)
  expect_lte(rel_err(gs, ref), 1e-12)
  gb <- keops_grad(ll, "b")(list(x, y, s, b, one))
  ref <- colSums(K / Kb)
  expect_lte(rel_err(gb, ref), 1e-12)
})

test_that("derivative formulas stay small (simplification, shared nodes)", {
  op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x, y) / s) * b, 1)",
                     c("x=Vi(3)", "y=Vj(3)", "s=Pm(1)", "b=Vj(1)"))
  gx <- keops_grad(op, "x")
  hv <- keops_grad(gx, "x")
  expect_lte(attr(gx, "nodes"), 17L)
  expect_lte(attr(hv, "nodes"), 29L)
  # no Grad, no dummy variable left, no multiplication by one or zero
  canon <- attr(hv, "canonical")
  expect_false(grepl("Grad|Zero|Mult\\(IntCst\\(1\\)", canon))
  # Grad of a formula without the variable is Zero
  z <- keops_kernel("Sum_Reduction(Grad(Exp(y), x, e), 1)",
                    c("x=Vi(2)", "y=Vj(1)", "e=Vi(1)"))
  expect_match(attr(z, "canonical"), "Zero(2)", fixed = TRUE)
})

# ---- errors ------------------------------------------------------------------------

test_that("Min, Max, KMin and Arg-type reductions are not differentiable", {
  args <- c("x=Vi(2)", "y=Vj(2)")
  for (red in c("Min_Reduction(SqDist(x, y), 1)",
                "Max_Reduction(SqDist(x, y), 0)",
                "ArgMin_Reduction(SqDist(x, y), 1)",
                "Min_ArgMin_Reduction(SqDist(x, y), 1)",
                "KMin_Reduction(SqDist(x, y), 2, 1)",
                "ArgKMin_Reduction(SqDist(x, y), 2, 1)")) {
    op <- keops_kernel(red, args)
    expect_error(keops_grad(op, "x"), class = "rkeops_grad_error")
    expect_error(keops_grad(op, "x"), class = "rkeops_error")
  }
  # a third derivative of a LogSumExp is refused, clearly (the second
  # works: test-compat-engine.R)
  op <- keops_kernel("LogSumExp_Reduction(-SqDist(x, y), 1)", args)
  expect_error(keops_grad(keops_grad(keops_grad(op, "x"), "x"), "y"),
               class = "rkeops_grad_error")
  # formula-level errors
  expect_error(keops_kernel("Sum_Reduction(Grad(Exp(x), Exp(x), e), 1)",
                            c("x=Vi(2)", "e=Vi(2)")), class = "rkeops_error")
  expect_error(keops_kernel("Sum_Reduction(Grad(Exp(x), x, e), 1)",
                            c("x=Vi(2)", "e=Vi(3)")), class = "rkeops_dim_error")
  expect_error(keops_kernel("Sum_Reduction(Laplacian(x, x), 1)", "x=Vi(2)"),
               class = "rkeops_dim_error")
})

test_that("NVRTC compiles the CUDA source of gradients (no GPU needed)", {
  desc <- tryCatch(rkeops:::rk_config()$description, error = function(e) "")
  skip_if_not(any(grepl("^NVRTC: [0-9]", strsplit(desc, "\n")[[1]])),
              "NVRTC not available")
  args <- c("x=Vi(3)", "y=Vj(3)", "s=Pm(1)", "b=Vj(1)", "e=Vi(1)", "u=Vi(3)")
  k <- "Exp(-SqDist(x, y) / s) * b"
  for (fm in c(sprintf("Sum_Reduction(Grad(%s, x, e), 1)", k),
               sprintf("Sum_Reduction(Grad(Grad(%s, x, e), x, u), 1)", k),
               sprintf("Sum_Reduction(Laplacian(%s, x), 1)", k),
               sprintf("Sum_Reduction(Grad(%s, y, e), 0)", k))) {
    for (prec in c(32L, 64L)) {
      res <- tryCatch(rkeops:::rk_nvrtc_check(fm, args, precision = prec,
                                              major = 8L, minor = 0L),
                      error = function(e) e)
      expect_true(isTRUE(res), label = sprintf("%s [float%d]: %s", fm, prec,
        if (inherits(res, "error")) conditionMessage(res) else "ok"))
    }
  }
})
