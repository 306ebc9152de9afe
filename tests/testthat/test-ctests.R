# test-ctests.R -- the C unit tests compiled into the package (src/ctests.c,
# run one by one through ffi_ctest), and the engine's own op / reduction
# tables that the coverage guards of the other test files read.

ctest_names <- function() .Call(rkeops:::ffi_ctest, NULL, NULL)
ctest_run <- function(name) .Call(rkeops:::ffi_ctest, name, tempdir())

test_that("the C test table has the tests this file knows about", {
  expect_setequal(ctest_names(), c(
    "hashcons_identity", "arena_alloc_align_grow",
    "cache_trailer_seal_verify_tamper", "canonical_text_roundtrip",
    "utf8_cut_on_character_boundary", "reduction_unit_gradient_plans"))
})

for (name in ctest_names()) {
  local({
    name <- name
    test_that(sprintf("C test %s", name), {
      r <- ctest_run(name)
      expect_true(r$pass, label = sprintf("%s: %s", name, r$message))
      expect_identical(r$message, "ok")
    })
  })
}

test_that("an unknown C test is an error, not a pass", {
  expect_error(ctest_run("no_such_test"), "no C test called 'no_such_test'")
})

test_that("the engine's op table: leaves and expanded ops are the excluded ones", {
  ops <- engine_tables()$ops
  expect_true(length(ops$name) >= length(ops_expected) + length(ops_excluded))
  expect_false(anyDuplicated(ops$name) > 0)
  expect_setequal(ops$name[ops$leaf | ops$expanded], ops_excluded)
  expect_true(all(ops$nargs[ops$leaf] == 0L))
  expect_true(all(ops$nargs[!ops$leaf] >= 1L & ops$nargs[!ops$leaf] <= 3L))
  # every op that code generation sees has a derivative rule (possibly zero)
  expect_setequal(ops$name[ops$derivative == "none"], ops_excluded)
  # a few rows spelled out
  row <- function(nm) vapply(ops[c("nargs", "nip")], `[`, 0L, match(nm, ops$name))
  expect_identical(unname(row("Extract")), c(1L, 2L))
  expect_identical(unname(row("Clamp")), c(3L, 0L))
  expect_identical(unname(row("Var")), c(0L, 3L))
  expect_identical(ops$derivative[match(c("Sign", "Exp"), ops$name)],
                   c("zero", "rule"))
  expect_true(ops$elementwise[match("Exp", ops$name)])
  expect_false(ops$elementwise[match("SqDist", ops$name)])
})

test_that("the ops marked linear in ops.def are linear, numerically, and the check can fail", {
  ops <- engine_tables()$ops
  lin <- ops$name[ops$linear]
  # every linear op keeps zero; the elementwise f(0) = 0 ops too
  expect_true(all(ops$keeps_zero[ops$linear]))
  expect_true(all(ops$keeps_zero[match(c("Sin", "Sqrt", "Minus", "Abs"), ops$name)]))
  expect_false(any(ops$keeps_zero[match(c("Exp", "Cos", "SqDist"), ops$name)]))
  # argument dimensions and the op applied to them (%s: the arguments)
  cases <- list(
    Add = list(c(3, 3), "Add(%s,%s)"), Subtract = list(c(3, 1), "Subtract(%s,%s)"),
    Minus = list(3, "Minus(%s)"), Sum = list(4, "Sum(%s)"),
    Elem = list(4, "Elem(%s,2)"), ElemT = list(1, "ElemT(%s,4,1)"),
    Extract = list(5, "Extract(%s,1,3)"), ExtractT = list(2, "ExtractT(%s,1,5)"),
    Concat = list(c(2, 3), "Concat(%s,%s)"), SumT = list(1, "SumT(%s,3)"))
  expect_setequal(lin, names(cases)) # a new linear row needs a case here
  # |op(a u + b v) - (a op(u) + b op(v))| and |op(u)|, in float64, 7 points
  gap <- function(dims, tpl) {
    k <- length(dims)
    args <- c(sprintf("u%d=Vi(%d)", seq_len(k), dims),
              sprintf("v%d=Vi(%d)", seq_len(k), dims), "a=Pm(1)", "b=Pm(1)")
    ap <- function(x) do.call(sprintf, c(list(tpl), as.list(x)))
    u <- sprintf("u%d", seq_len(k))
    v <- sprintf("v%d", seq_len(k))
    red <- function(f) keops_kernel(sprintf("Sum_Reduction(%s, 1)", f), args)
    lhs <- red(ap(sprintf("(a*%s+b*%s)", u, v)))
    rhs <- red(sprintf("(a*%s+b*%s)", ap(u), ap(v)))
    ou <- red(ap(u))
    set.seed(k + sum(dims))
    data <- c(lapply(c(dims, dims), function(d) matrix(rnorm(7 * d), 7, d)),
              list(1.7, -0.6))
    c(max(abs(lhs(data) - rhs(data))), max(abs(ou(data))))
  }
  for (nm in lin) {
    g <- gap(cases[[nm]][[1]], cases[[nm]][[2]])
    expect_lt(g[1], 1e-12, label = nm)
    expect_gt(g[2], 0.01, label = nm)
  }
  # ops that are not linear fail the same check
  expect_gt(gap(3, "Exp(%s)")[1], 1e-3)
  expect_gt(gap(c(3, 3), "Mult(%s,%s)")[1], 1e-3)
  expect_gt(gap(3, "SqNorm2(%s)")[1], 1e-3)
})

test_that("the engine's reduction table", {
  reds <- engine_tables()$reds
  expect_setequal(reds$name, reds_expected)
  expect_setequal(reds$name[reds$hask], c("KMin", "ArgKMin", "KMin_ArgKMin"))
  expect_setequal(reds$name[reds$nf == 2L],
                  c("LogSumExpWeight", "SumSoftMaxWeight"))
  expect_setequal(reds$name[reds$outkind == "indices"],
                  c("ArgMin", "ArgMax", "ArgKMin"))
  expect_setequal(reds$name[reds$outkind == "both"],
                  c("Min_ArgMin", "Max_ArgMax", "KMin_ArgKMin"))
})

test_that("which reductions have a gradient is the engine's column, and it holds", {
  reds <- engine_tables()$reds
  expect_setequal(reds$name[reds$differentiable],
                  c("Sum", "LogSumExp", "LogSumExpWeight", "SumSoftMaxWeight"))
  # every reduction: keops_grad() works exactly for the differentiable ones
  for (k in seq_along(reds$name)) {
    red <- reds$name[k]
    f <- switch(reds$nf[k] + 2L * reds$hask[k],
                sprintf("%s_Reduction(SqDist(x, y), 1)", red),
                sprintf("%s_Reduction(SqDist(x, y), x - y, 1)", red),
                sprintf("%s_Reduction(SqDist(x, y), 2, 1)", red))
    op <- keops_kernel(f, c("x=Vi(2)", "y=Vj(2)"))
    if (reds$differentiable[k]) {
      g <- keops_grad(op, "x")
      expect_true(is.function(g), info = red)
    } else {
      expect_error(keops_grad(op, "x"), class = "rkeops_grad_error", info = red)
    }
  }
  # and the messages list them from the engine
  x <- Vi(matrix(1, 3, 2))
  e <- expect_error(grad(x, x, "Bogus"), class = "rkeops_grad_error")
  expect_match(conditionMessage(e),
               "\"Sum\", \"LogSumExp\", \"LogSumExpWeight\" and \"SumSoftMaxWeight\"",
               fixed = TRUE)
})

test_that("the engine sizes an op on given argument dimensions (LazyTensor asks it)", {
  od <- function(op, dims, ip = integer()) rkeops:::rk_op_dim(op, dims, ip)
  expect_identical(c(od("Add", c(3, 3)), od("Add", c(1, 4)), od("Exp", 5),
                     od("SqDist", c(3, 3)), od("MatVecMult", c(6, 3)),
                     od("VecMatMult", c(2, 6)), od("TensorProd", c(2, 3)),
                     od("WeightedSqNorm", c(9, 3)), od("Clamp", c(2, 1, 1)),
                     od("Elem", 4, 2L), od("Extract", 5, c(1L, 3L)),
                     od("Concat", c(2, 3)), od("Sum", 4)),
                   c(3L, 4L, 5L, 1L, 2L, 3L, 6L, 1L, 2L, 1L, 3L, 5L, 1L))
  for (bad in list(list("Add", c(3, 2)), list("MatVecMult", c(5, 3)),
                   list("WeightedSqNorm", c(4, 3)), list("Elem", 4, 4L),
                   list("Extract", 5, c(4L, 3L)))) {
    d <- do.call(od, bad)
    expect_true(is.na(d), info = bad[[1]])
    expect_true(attr(d, "refused"), info = bad[[1]])
    expect_true(nzchar(attr(d, "message")), info = bad[[1]])
  }
  expect_error(od("NoSuchOp", 3), class = "rkeops_internal_error")
  expect_error(od("Add", 3), class = "rkeops_internal_error") # arity
  # LazyTensor's dimensions are the engine's
  v <- Vi(matrix(runif(9), 3, 3))
  m <- Vj(matrix(runif(18), 3, 6))
  expect_identical(matvecmult(m, v)@dim, 2L)
  expect_identical(tensorprod(Vi(matrix(1, 3, 2)), v)@dim, 6L)
  expect_error(matvecmult(Vj(matrix(1, 3, 5)), v), "is not a multiple", class = "rkeops_dim_error")
})

test_that("LazyTensor element and slice operations are sized by the engine", {
  x <- Vi(matrix(runif(15), 3, 5))
  expect_identical(elem(x, 4)@dim, 1L)
  expect_identical(extract(x, 1, 3)@dim, 3L)
  expect_identical(extractT(extract(x, 1, 3), 2, 6)@dim, 6L)
  expect_identical(concat(x, x)@dim, 10L)
  expect_error(elem(x, 5), "m = 5 is out of \\[0, 5\\)", class = "rkeops_dim_error")
  expect_error(extract(x, 3, 3), "components 3 to 5 are out of \\[0, 5\\)",
               class = "rkeops_dim_error")
  expect_error(extractT(x, 2, 6), "does not fit in dimension 6", class = "rkeops_dim_error")
  # the values through the engine, against dense R
  X <- matrix(runif(15), 3, 5)
  expect_equal(as.vector(sum(extract(Vi(X), 1, 3), index = "i")),
               colSums(X[, 2:4]), tolerance = 1e-12)
})

test_that("elemT, one_hot and x | y are sized by the engine, with LazyTensor's wording", {
  od <- function(op, dims, ip = integer()) rkeops:::rk_op_dim(op, dims, ip)
  expect_identical(c(od("ElemT", 1, c(4L, 2L)), od("OneHot", 1, 5L),
                     od("Scalprod", c(3, 3))), c(4L, 5L, 1L))
  # the kind of refusal tells an argument's dimension from a parameter
  expect_identical(attr(od("ElemT", 2, c(4L, 1L)), "kind"), "dimension")
  expect_identical(attr(od("ElemT", 1, c(4L, 4L)), "kind"), "value")
  expect_identical(attr(od("OneHot", 3, 2L), "kind"), "dimension")
  expect_identical(attr(od("Scalprod", c(3, 2)), "kind"), "dimension")
  x1 <- Vi(matrix(c(0, 2, 1), 3, 1))
  x3 <- Vi(matrix(runif(9), 3, 3))
  expect_identical(elemT(x1, 2, 4)@dim, 4L)
  expect_identical(one_hot(x1, 3)@dim, 3L)
  expect_identical((x3 | x3)@dim, 1L)
  expect_error(elemT(x3, 0, 4), "elemT\\(x, m, n\\): x must have dimension 1, not 3",
               class = "rkeops_dim_error")
  expect_error(elemT(x1, 4, 4), "elemT\\(x, m, n\\): m = 4 is out of \\[0, 4\\)",
               class = "rkeops_dim_error")
  expect_error(one_hot(x3, 3), "x must have dimension 1, not 3", class = "rkeops_dim_error")
  expect_error(x3 | Vi(matrix(1, 3, 2)), "inner dimensions 3 and 2",
               class = "rkeops_dim_error")
  # values, against dense R
  expect_equal(as.vector(sum(one_hot(x1, 3), index = "i")), c(1, 1, 1))
  expect_equal(as.vector(sum(elemT(x1, 2, 4), index = "i")), c(0, 0, 3, 0))
})

test_that("the engine sizes a reduction (red.def OUTDIM, F1, the K bound; LazyTensor asks it)", {
  rd <- function(...) rkeops:::rk_red_dim(...)
  expect_identical(c(rd("Sum", 3), rd("Min_ArgMin", 3), rd("KMin", 3, 1, 4),
                     rd("KMin_ArgKMin", 2, 1, 5), rd("LogSumExp", 1),
                     rd("SumSoftMaxWeight", 1, 4), rd("LogSumExpWeight", 1, 2)),
                   c(3L, 6L, 12L, 20L, 1L, 4L, 2L))
  d <- rd("LogSumExp", 3)
  expect_true(is.na(d))
  expect_identical(attr(d, "kind"), "dimension")
  expect_match(attr(d, "message"), "LogSumExp_Reduction: the formula has dimension 3, not 1",
               fixed = TRUE)
  d <- rd("KMin", 2, 1, 8193)
  expect_identical(attr(d, "kind"), "value")
  expect_match(attr(d, "message"), "K * dimension = 16386 is larger than 16384", fixed = TRUE)
  expect_identical(rd("KMin", 2, 1, 8192), 16384L)
  expect_error(rd("NoSuch", 1), class = "rkeops_internal_error")
  # LazyTensor: the same rules, before any formula is built
  x <- Vi(matrix(runif(6), 3, 2))
  y <- Vj(matrix(runif(8), 4, 2))
  expect_error(Kmin(sqdist(x, y) * Vj(matrix(1, 4, 8193)), 2, "j"),
               "K \\* dimension = 16386 is larger than 16384", class = "rkeops_value_error")
  expect_error(logsumexp(x - y, "j"), "logsumexp\\(x\\): x must have dimension 1, not 2",
               class = "rkeops_dim_error")
  expect_error(sumsoftmaxweight(x - y, "j", weight = y),
               "sumsoftmaxweight\\(x\\): x must have dimension 1, not 2",
               class = "rkeops_dim_error")
  expect_error(grad(x - y, matrix(1, 3, 1), "LogSumExp", x, "j"),
               "a LogSumExp reduction needs f of dimension 1, not 2", class = "rkeops_dim_error")
  D <- outer(rowSums(x@vars[[1]]$data^2), rowSums(y@vars[[1]]$data^2), "+") -
    2 * x@vars[[1]]$data %*% t(y@vars[[1]]$data)
  expect_equal(as.vector(Kmin(sqdist(x, y), 2, "j")), as.vector(t(apply(D, 1, sort)[1:2, ])),
               tolerance = 1e-10)
})
