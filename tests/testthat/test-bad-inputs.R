# test-bad-inputs.R -- a table of bad inputs through keops_kernel(),
# keops_grad() and LazyTensor: each row asserts the error's class and that
# its message names what is wrong (and where); inputs that are valid though
# unusual (NaN, Inf, 0 rows, data frames, unicode column names, deep and wide
# formulas under the limits) are rows of a second table, each checked against
# dense R.  Rows for defects being fixed elsewhere are left out (see the note
# of the CI helper): options(OutDec, scipen), relative cache_dir, KMin and NaN,
# huge thread counts, a declaration error cut inside a UTF-8 character.

bad_local <- function(env = parent.frame()) {
  old <- get_rkeops_options()
  withr::defer(set_rkeops_options(old), envir = env)
  rkeops_use_cpu()
  rkeops_use_float64()
  rkeops_disable_verbosity()
  invisible(old)
}

set.seed(17)
bx <- matrix(runif(12), 4, 3)
by <- matrix(runif(15), 5, 3)
bb <- runif(5)
bop1 <- function() keops_kernel("Sum_Reduction(x * y, 1)", c("x=Vi(1)", "y=Vj(1)"))
bop3 <- function() {
  keops_kernel("Sum_Reduction(SqDist(x, y) * b, 1)", c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)"))
}
bkk <- function(f, args = "x=Vi(1)") keops_kernel(f, args)
bred <- function(inner) paste0("Sum_Reduction(", inner, ", 1)")

# each row: label, expression (quoted; evaluated in this file's environment),
# class of the error, and a regular expression its message must match
bad_rows <- list(
  # ---- keops_kernel(): the formula and the declarations ----------------
  list("formula not a string", quote(keops_kernel(1, "x=Vi(1)")),
       "rkeops_input_error", "`formula` must be a single string"),
  list("formula NA", quote(keops_kernel(NA_character_, "x=Vi(1)")),
       "rkeops_input_error", "`formula` must be a single string"),
  list("formula a factor", quote(keops_kernel(factor("Sum_Reduction(x, 1)"), "x=Vi(1)")),
       "rkeops_input_error", "`formula` must be a single string"),
  list("formula empty", quote(bkk("")), "rkeops_parse_error", "empty formula"),
  list("formula without reduction", quote(bkk("Exp(x)")),
       "rkeops_parse_error", "'Exp' is not a reduction"),
  list("unknown reduction", quote(bkk("Foo_Reduction(x, 1)")),
       "rkeops_op_error", "unknown reduction 'Foo_Reduction'"),
  list("reduction inside a reduction", quote(bkk(bred("Sum_Reduction(x, 1)"))),
       "rkeops_op_error", "unknown operation 'Sum_Reduction'"),
  list("axis 2", quote(bkk("Sum_Reduction(x, 2)")),
       "rkeops_value_error", "axis must be 0 or 1, got 2"),
  list("axis -1", quote(bkk("Sum_Reduction(x, -1)")),
       "rkeops_value_error", "axis must be 0 or 1, got -1"),
  list("declarations NA", quote(keops_kernel(bred("x"), NA_character_)),
       "rkeops_input_error", "`args` must be a character vector"),
  list("declarations a number", quote(keops_kernel(bred("x"), 3)),
       "rkeops_input_error", "`args` must be a character vector"),
  list("declaration empty", quote(keops_kernel(bred("x"), "")),
       "rkeops_parse_error", 'declaration "": expected name=Vi'),
  list("no declaration", quote(keops_kernel(bred("x"), character())),
       "rkeops_var_error", "unknown variable 'x' \\(declared: none\\)"),
  list("declared twice", quote(keops_kernel(bred("x"), c("x=Vi(1)", "x=Vj(1)"))),
       "rkeops_parse_error", "the name 'x' is already declared"),
  list("name starting with a digit", quote(keops_kernel(bred("x"), "1x=Vi(1)")),
       "rkeops_parse_error", 'declaration "1x=Vi\\(1\\)": unexpected character at offset 1'),
  list("unknown category", quote(keops_kernel(bred("x"), "x=Vq(1)")),
       "rkeops_parse_error", 'declaration "x=Vq\\(1\\)"'),
  list("dimension 0", quote(keops_kernel(bred("x"), "x=Vi(0)")),
       "rkeops_parse_error", "dimension 0 must be between 1 and 1000000"),
  list("dimension -1", quote(keops_kernel(bred("x"), "x=Vi(-1)")),
       "rkeops_parse_error", "dimension -1 must be between 1 and 1000000"),
  list("dimension 1.5", quote(keops_kernel(bred("x"), "x=Vi(1.5)")),
       "rkeops_parse_error", 'declaration "x=Vi\\(1.5\\)"'),
  list("dimension 1e8", quote(keops_kernel(bred("x"), "x=Vi(100000000)")),
       "rkeops_parse_error", "dimension 100000000 must be between 1 and 1000000"),
  list("dimension 2^31", quote(keops_kernel(bred("x"), "x=Vi(2147483648)")),
       "rkeops_parse_error", 'declaration "x=Vi\\(2147483648\\)"'),
  list("position 2e9", quote(keops_kernel(bred("x"), "x=Vi(2000000000, 1)")),
       "rkeops_parse_error", "position 2000000000 must be between 0 and 65535"),
  list("gap in positions", quote(keops_kernel(bred("x"), "x=Vi(3, 1)")),
       "rkeops_var_error", "position 0 is not declared"),
  list("inline Var category 3", quote(keops_kernel(bred("Var(0,1,3)"), character())),
       "rkeops_value_error", "category 3 must be 0 \\(i\\), 1 \\(j\\) or 2"),
  list("inline Var dimension 0", quote(keops_kernel(bred("Var(0,0,0)"), character())),
       "rkeops_value_error", "dimension 0 must be between 1 and 1000000"),
  list("inline Vi dimension 2e6", quote(keops_kernel(bred("Vi(0,2000000)"), character())),
       "rkeops_value_error", "dimension 2000000 must be between 1 and 1000000"),
  list("sum_scheme NA", quote(keops_kernel(bred("x"), "x=Vi(1)", sum_scheme = NA)),
       "rkeops_value_error", "`sum_scheme` must be one of"),
  list("sum_scheme unknown", quote(keops_kernel(bred("x"), "x=Vi(1)", sum_scheme = "fast")),
       "rkeops_value_error", "`sum_scheme` must be one of"),
  # ---- formulas: operations, dimensions, sizes --------------------------
  list("incompatible dimensions", quote(keops_kernel(bred("x + y"), c("x=Vi(2)", "y=Vj(3)"))),
       "rkeops_dim_error", ""),
  list("Elem index -1", quote(bkk(bred("Elem(x, -1)"), "x=Vi(3)")),
       "rkeops_value_error", "Elem: index -1 is out of range for dimension 3"),
  list("Extract length -1", quote(bkk(bred("Extract(x, 1, -1)"), "x=Vi(3)")),
       "rkeops_value_error", "Extract: start 1 and length -1 do not fit in dimension 3"),
  list("MatVecMult dimensions", quote(keops_kernel(bred("MatVecMult(x, y)"), c("x=Vi(5)", "y=Vj(3)"))),
       "rkeops_dim_error", "MatVecMult: matrix dimension 5 is not a multiple of vector dimension 3"),
  list("KMin K = 0", quote(bkk("KMin_Reduction(x, 0, 1)")),
       "rkeops_value_error", "KMin_Reduction: K must be >= 1, got 0"),
  list("KMin K = -1", quote(bkk("KMin_Reduction(x, -1, 1)")),
       "rkeops_value_error", "KMin_Reduction: K must be >= 1, got -1"),
  list("integer literal of 20 digits", quote(bkk(bred("x * 99999999999999999999"))),
       "rkeops_value_error", "integer 100000000000000000000 is too large"),
  list("OneHot of dimension 2e6", quote(bkk(bred("OneHot(x, 2000000)"))),
       "rkeops_dim_error", "OneHot: dimension 2000000 is larger than 1000000"),
  list("SumT of dimension 2e6", quote(bkk(bred("SumT(x, 2000000)"))),
       "rkeops_dim_error", "SumT: dimension 2000000 is larger than 1000000"),
  list("TensorProd of dimension 1e10",
       quote(keops_kernel(bred("TensorProd(x, y)"), c("x=Vi(100000)", "y=Vj(100000)"))),
       "rkeops_dim_error", "TensorProd: dimensions 100000 and 100000 give dimension 10000000000"),
  list("nesting 5000 deep",
       quote(bkk(bred(paste0(strrep("Exp(", 5000), "x", strrep(")", 5000))))),
       "rkeops_parse_error", "nested too deeply \\(more than 2000 levels\\)"),
  list("1e5 parentheses",
       quote(bkk(bred(paste0(strrep("(", 1e5), "x", strrep(")", 1e5))))),
       "rkeops_parse_error", "nested too deeply"),
  list("1e5 unary minus", quote(bkk(bred(paste0(strrep("-", 1e5), "x")))),
       "rkeops_parse_error", "nested too deeply"),
  list("Grad of an undeclared variable",
       quote(keops_kernel(bred("Grad(x*y, z, e)"), c("x=Vi(1)", "y=Vj(1)", "e=Vi(1)"))),
       "rkeops_var_error", "unknown variable 'z' \\(declared: x, y, e\\)"),
  list("Grad with a gradient input of the wrong dimension",
       quote(keops_kernel(bred("Grad(x*y, x, e)"), c("x=Vi(1)", "y=Vj(1)", "e=Vi(2)"))),
       "rkeops_dim_error", "Grad: the gradient input has dimension 2, the formula 1"),
  # ---- unicode -----------------------------------------------------------
  list("non-ASCII operator in a formula",
       quote(keops_kernel("Sum_Reduction(x \u00d7 y, 1)", c("x=Vi(1)", "y=Vj(1)"))),
       "rkeops_parse_error", "unexpected non-ASCII character \\(byte 0xc3\\)"),
  list("no-break space after a formula", quote(bkk("Sum_Reduction(x, 1)\u00a0")),
       "rkeops_parse_error", "unexpected non-ASCII character \\(byte 0xc2\\)"),
  list("accented variable name",
       quote(keops_kernel("Sum_Reduction(\u00e9 * y, 1)", c("\u00e9=Vi(1)", "y=Vj(1)"))),
       "rkeops_parse_error", "unexpected character at offset 0"),
  list("emoji variable name", quote(keops_kernel(bred("x"), "\U0001F600=Vi(1)")),
       "rkeops_parse_error", "unexpected character at offset 0"),
  # ---- running an operator: inputs --------------------------------------
  list("input not a list", quote(bop3()(bx)),
       "rkeops_input_error", "`input` must be a list of 3 elements"),
  list("too few inputs", quote(bop3()(list(bx, by))),
       "rkeops_input_error", "the formula has 3 variables \\(`x`, `y`, `b`\\) but `input` has 2"),
  list("too many inputs", quote(bop3()(list(bx, by, bb, 1))),
       "rkeops_input_error", "but `input` has 4 elements"),
  list("character data", quote(bop1()(list("a", 1))),
       "rkeops_input_error", "`x` must be a numeric matrix or vector, not an object of class character"),
  list("logical data", quote(bop1()(list(1, TRUE))),
       "rkeops_input_error", "`y` must be a numeric matrix or vector"),
  list("complex data", quote(bop1()(list(1i, 1))),
       "rkeops_input_error", "`x` is complex"),
  list("list data", quote(bop1()(list(list(1), 1))),
       "rkeops_input_error", "`x` must be a numeric matrix or vector"),
  list("NULL data", quote(bop1()(list(NULL, 1))),
       "rkeops_input_error", "`x` must be a numeric matrix or vector, not NULL"),
  list("factor data", quote(bop1()(list(factor("a"), 1))),
       "rkeops_input_error", "`x` must be a numeric matrix or vector"),
  list("3-d array", quote(bop3()(list(array(0, c(4, 3, 1)), by, bb))),
       "rkeops_dim_error", "`x` must be a matrix, not an array with 3 dimensions"),
  list("0 columns", quote(bop3()(list(matrix(0, 4, 0), by, bb))),
       "rkeops_dim_error", "`x` is declared Vi\\(3\\) but has 0 columns"),
  list("wrong number of columns", quote(bop3()(list(matrix(0, 4, 2), by, bb))),
       "rkeops_dim_error", "`x` is declared Vi\\(3\\) but has 2 columns"),
  list("j-variables of different lengths", quote(bop3()(list(bx, by, bb[1:4]))),
       "rkeops_dim_error", "index j: `y` has 5, `b` has 4"),
  list("parameter of the wrong length",
       quote(keops_kernel(bred("x*s"), c("x=Vi(1)", "s=Pm(2)"))(list(1:3, 1))),
       "rkeops_dim_error", "`s` is declared Pm\\(2\\): it needs 2 values, not 1"),
  # ---- keops_grad() ------------------------------------------------------
  list("grad: unknown variable", quote(keops_grad(bop3(), "z")),
       "rkeops_var_error", "no variable named `z` \\(the variables are `x`, `y`, `b`\\)"),
  list("grad: position 0", quote(keops_grad(bop3(), 0)),
       "rkeops_var_error", "`var` = 0 is not a position in `args` \\(1 to 3\\)"),
  list("grad: position 9", quote(keops_grad(bop3(), 9)),
       "rkeops_var_error", "`var` = 9 is not a position"),
  list("grad: var NA", quote(keops_grad(bop3(), NA)),
       "rkeops_input_error", "`var` must be a variable name or a 1-based position"),
  list("grad: two variables", quote(keops_grad(bop3(), c("x", "y"))),
       "rkeops_input_error", "`var` must be a variable name or a 1-based position"),
  list("grad: not an operator", quote(keops_grad(function(x) x, "x")),
       "rkeops_input_error", "`op` must be an operator made by keops_kernel"),
  list("grad of an ArgMin",
       quote(keops_grad(keops_kernel("ArgMin_Reduction(x*y, 1)", c("x=Vi(1)", "y=Vj(1)")), "x")),
       "rkeops_grad_error", "cannot differentiate a ArgMin_Reduction"),
  list("grad operator without eta", quote(keops_grad(bop3(), "x")(list(bx, by, bb))),
       "rkeops_input_error", "the gradient operator takes 4 inputs"),
  list("grad operator with eta of the wrong length",
       quote(keops_grad(bop3(), "x")(list(bx, by, bb, matrix(1, 3, 1)))),
       "rkeops_dim_error", "index i: `x` has 4, `eta` has 3"),
  # ---- LazyTensor --------------------------------------------------------
  list("LazyTensor of characters", quote(Vi(matrix("a", 2, 2))),
       "rkeops_input_error", "must be a numeric vector or matrix"),
  list("LazyTensor of a list", quote(Vi(list(1, 2))),
       "rkeops_input_error", "the data of Vi\\(\\) must be a numeric vector or matrix, not list"),
  list("LazyTensor of NULL", quote(Vj(NULL)),
       "rkeops_input_error", "the data of Vj\\(\\) must be a numeric vector or matrix, not NULL"),
  list("LazyTensor of 0 columns", quote(Vi(matrix(0, 3, 0))),
       "rkeops_input_error", "the data of Vi\\(\\) .*\\(3 x 0\\)"),
  list("LazyTensor of a 3-d array", quote(Vi(array(0, c(2, 2, 2)))),
       "rkeops_input_error", "must be a vector or a matrix \\(it has 3 dimensions\\)"),
  list("LazyTensor index 'k'", quote(LazyTensor(bx, index = "k")),
       "rkeops_index_error", '`index` must be "i", "j" or NA, not "k"'),
  list("LazyTensor index 3", quote(LazyTensor(bx, index = 3)),
       "rkeops_index_error", '`index` must be "i", "j" or NA'),
  list("LazyTensor + character", quote(Vi(bx) + "a"),
       "rkeops_input_error", "cannot use an object of class character as a LazyTensor operand"),
  list("LazyTensor + NA", quote(Vi(bx) + NA),
       "rkeops_input_error", "cannot use an object of class logical"),
  list("LazyTensor * NaN constant", quote(Vi(bx) * NaN),
       "rkeops_input_error", "is not finite; use a parameter Pm\\(\\)"),
  list("LazyTensor * a plain matrix", quote(Vi(bx) * matrix(1, 2, 2)),
       "rkeops_input_error", "wrap it with Vi\\(\\) or Vj\\(\\)"),
  list("LazyTensor > character", quote(Vi(bx) > "a"),
       "rkeops_input_error", "cannot use an object of class character"),
  list("inner dimensions 3 and 2", quote(Vi(bx) + Vj(matrix(0, 5, 2))),
       "rkeops_dim_error", "incompatible inner dimensions 3 and 2"),
  list("i-variables of 4 and 5 rows", quote(sum_reduction(Vi(bx) + Vi(by), "j")),
       "rkeops_dim_error", "the operands have 4 and 5 rows indexed by i"),
  list("reduction index 'k'", quote(sum_reduction(Vi(bx) * Vj(by), "k")),
       "rkeops_index_error", '`index` must be "i" or "j", not "k"'),
  list("reduction index NA", quote(sum_reduction(Vi(bx) * Vj(by), NA)),
       "rkeops_index_error", '`index` must be "i" or "j", not NA'),
  list("argKmin K = 0", quote(argKmin(sqdist(Vi(bx), Vj(by)), 0, "j")),
       "rkeops_input_error", "`K` must be at least 1, not 0"),
  list("argKmin K = NA", quote(argKmin(sqdist(Vi(bx), Vj(by)), NA, "j")),
       "rkeops_input_error", "`K` must be a single whole number"),
  list("argKmin K = 2.5", quote(argKmin(sqdist(Vi(bx), Vj(by)), 2.5, "j")),
       "rkeops_input_error", "`K` must be a single whole number"),
  list("argKmin K = 'a'", quote(argKmin(sqdist(Vi(bx), Vj(by)), "a", "j")),
       "rkeops_input_error", "`K` must be a single whole number"),
  list("argKmin K = 1e10", quote(argKmin(sqdist(Vi(bx), Vj(by)), 1e10, "j")),
       "rkeops_input_error", "`K` = 10000000000 is out of range"),
  list("one_hot D = 2^31", quote(one_hot(Vi(bx[, 1, drop = FALSE]), 2^31)),
       "rkeops_input_error", "`D` = 2147483648 is out of range"),
  list("LazyTensor nested 3000 deep",
       quote({
         z <- Vi(bx[, 1, drop = FALSE])
         for (k in 1:3000) z <- exp(z)
         sum_reduction(z * Vj(by[, 1, drop = FALSE]), "j")
       }),
       "rkeops_parse_error", "nested too deeply"),
  list("elem out of range", quote(elem(Vi(bx), 4)),
       "rkeops_dim_error", "elem\\(x, m\\): m = 4 is out of \\[0, 3\\)"),
  list("extract too long", quote(extract(Vi(bx), 2, 5)),
       "rkeops_dim_error", "components 2 to 6 are out of \\[0, 3\\)"),
  list("one_hot of a vector", quote(one_hot(Vi(bx), 3)),
       "rkeops_dim_error", "one_hot\\(x, D\\): x must have dimension 1, not 3"),
  list("one_hot D = 0", quote(one_hot(Vi(bx[, 1, drop = FALSE]), 0)),
       "rkeops_input_error", "`D` must be at least 1, not 0"),
  list("one_hot D = NA", quote(one_hot(Vi(bx[, 1, drop = FALSE]), NA)),
       "rkeops_input_error", "`D` must be a single whole number"),
  list("K %*% B without j", quote(Vi(bx) %*% 1:3),
       "rkeops_index_error", "K %\\*% B: K has no variable indexed by j"),
  list("K %*% character", quote((Vi(bx) * Vj(by)) %*% "a"),
       "rkeops_input_error", "B in K %\\*% B must be a numeric vector or matrix, not character"),
  list("LazyTensor %*% LazyTensor", quote(Vi(bx) %*% Vj(by)),
       "rkeops_input_error", "K %\\*% B needs an ordinary numeric matrix B"),
  list("ifelse with a character branch", quote(ifelse(Vi(bx), 1, "a")),
       "rkeops_input_error", "cannot use an object of class character"),
  list("clamp with a character bound", quote(clamp(Vi(bx), "a", 1)),
       "rkeops_input_error", "cannot use an object of class character"),
  list("round with digits NA", quote(round(Vi(bx), NA)),
       "rkeops_input_error", "`digits` must be a single whole number"),
  list("log with a character base", quote(log(Vi(bx), base = "a")),
       "rkeops_input_error", "the base of log\\(\\) must be a positive number"),
  # ---- options -------------------------------------------------------------
  list("rkeops_use_cpu('a')", quote(rkeops_use_cpu("a")),
       "rkeops_value_error", "option `ncore` must be NULL \\(all cores\\) or a positive integer"),
  list("rkeops_use_cpu(-1)", quote(rkeops_use_cpu(-1)),
       "rkeops_value_error", "option `ncore` must be NULL"),
  list("rkeops_use_gpu(-1)", quote(rkeops_use_gpu(-1)),
       "rkeops_value_error", "option `device` must be non-negative integers or \"all\""),
  list("set_rkeops_options of a vector", quote(set_rkeops_options(1)),
       "rkeops_value_error", "`options` must be a named list"),
  list("cache dir NA", quote(set_rkeops_cache_dir(NA)),
       "rkeops_value_error", "option `cache_dir` must be a directory path"),
  list("cache dir of two paths", quote(set_rkeops_cache_dir(c("a", "b"))),
       "rkeops_value_error", "option `cache_dir` must be a directory path")
)

test_that("bad inputs give classed errors that say what is wrong", {
  bad_local()
  labels <- vapply(bad_rows, `[[`, "", 1L)
  expect_false(anyDuplicated(labels) > 0)
  for (row in bad_rows) {
    label <- row[[1]]
    e <- tryCatch(eval(row[[2]]), error = function(e) e)
    expect_s3_class(e, row[[3]])
    if (!inherits(e, row[[3]])) {
      # say which row and what came instead
      fail(sprintf("row '%s': expected %s, got %s: %s", label, row[[3]],
                   paste(class(e), collapse = "/"),
                   if (inherits(e, "condition")) conditionMessage(e) else "a value"))
      next
    }
    expect_s3_class(e, "rkeops_error")
    if (nzchar(row[[4]])) {
      expect_match(conditionMessage(e), row[[4]], info = label)
    }
    # a valid UTF-8 message (an R string that can be printed and substr()'ed)
    expect_true(validUTF8(conditionMessage(e)), info = label)
  }
})

# ---- valid but unusual inputs: values against dense R ---------------------------

# the expected values are worked out by hand: Sum_Reduction(x * y, 1) is
# x_i * sum(y), its gradient in x is sum_j y_j * eta_i
good_rows <- list(
  list("NA data propagates", quote(bop1()(list(c(1, NA), 1:2))), c(3, NA)),
  list("NaN data propagates", quote(bop1()(list(c(1, NaN), 1:2))), c(3, NaN)),
  list("Inf data", quote(bop1()(list(c(1, -2), c(Inf, 1)))), c(Inf, -Inf)),
  list("Inf * 0 is NaN", quote(bop1()(list(c(1, 0), c(Inf, 1)))), c(Inf, NaN)),
  list("Inf - Inf is NaN", quote(bop1()(list(1, c(Inf, -Inf)))), NaN),
  list("overflow to Inf", quote(bop1()(list(1e308, c(1e308, 1)))), Inf),
  list("0 j-points give zeros", quote(bop1()(list(1:3, numeric(0)))), c(0, 0, 0)),
  list("0 i-points give 0 rows", quote(bop1()(list(numeric(0), 1:3))), numeric(0)),
  list("integer input", quote(bop1()(list(1:3, 2L))), c(2, 4, 6)),
  list("a data frame input", quote(bop1()(list(data.frame(a = 1:2), 1:2))), c(3, 6)),
  list("names of the input list are ignored", quote(bop1()(list(b = 1:2, a = 3))), c(3, 6)),
  list("trailing newline in a declaration",
       quote(keops_kernel(bred("x * y"), c("x=Vi(1)\n", "y=Vj(1)"))(list(1:2, 1:2))), c(3, 6)),
  list("tab and newline in a formula",
       quote(keops_kernel("Sum_Reduction(\tx * y\n, 1)", c("x=Vi(1)", "y=Vj(1)"))(list(1:2, 1:3))),
       c(6, 12)),
  list("wide formula of 2000 terms",
       quote(keops_kernel(bred(paste(rep("x * y", 2000), collapse = " + ")),
                          c("x=Vi(1)", "y=Vj(1)"))(list(1:2, 1:3))), 2000 * c(6, 12)),
  list("1500 nested parentheses",
       quote(keops_kernel(bred(paste0(strrep("(", 1500), "x * y", strrep(")", 1500))),
                          c("x=Vi(1)", "y=Vj(1)"))(list(1:2, 1:3))), c(6, 12)),
  list("300 nested Abs",
       quote(keops_kernel(bred(paste0(strrep("Abs(", 300), "x * y", strrep(")", 300))),
                          c("x=Vi(1)", "y=Vj(1)"))(list(c(-1, 2), 1:3))), c(6, 12)),
  list("unicode column names of LazyTensor data",
       quote(sum_reduction(Vi(`colnames<-`(bx, c("\u00e9", "\u00df", "\U0001F600"))) * Vj(by), "j")),
       bx * matrix(colSums(by), nrow(bx), 3, byrow = TRUE)),
  list("NA in LazyTensor data",
       quote(sum_reduction(Vi(c(1, NA)) * Vj(1:2), "j")), c(3, NA)),
  list("NaN gradient input",
       quote(keops_grad(bop1(), "x")(list(1:2, c(NaN, 1), c(1, 1)))), c(NaN, NaN))
)

test_that("valid unusual inputs give the dense-R values", {
  bad_local()
  for (row in good_rows) {
    label <- row[[1]]
    got <- tryCatch(eval(row[[2]]), error = function(e) e)
    if (inherits(got, "error")) {
      fail(sprintf("row '%s' failed: %s", label, conditionMessage(got)))
      next
    }
    want <- row[[3]]
    if (!is.matrix(want)) want <- matrix(want, ncol = 1)
    expect_identical(dim(got), dim(want), info = label)
    expect_identical(is.na(got), is.na(want), info = label)
    expect_identical(is.nan(got), is.nan(want), info = label)
    ok <- !is.na(want)
    expect_equal(got[ok], want[ok], tolerance = 1e-12, info = label)
  }
})
