# test-ctests.R -- the C unit tests compiled into the package (src/ctests.c,
# run one by one through ffi_ctest), and the engine's own op / reduction
# tables that the coverage guards of the other test files read.

ctest_names <- function() .Call(rkeops:::ffi_ctest, NULL, NULL)
ctest_run <- function(name) .Call(rkeops:::ffi_ctest, name, tempdir())

test_that("the C test table has the tests this file knows about", {
  expect_setequal(ctest_names(), c(
    "hashcons_identity", "arena_alloc_align_grow",
    "cache_trailer_seal_verify_tamper", "canonical_text_roundtrip",
    "utf8_cut_on_character_boundary"))
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
