# test-parse.R -- bad formulas and bad inputs give classed errors naming
# the culprit; a parse error shows the formula with a caret under the
# offending character.  Messages are snapshots (_snaps/parse.md); each error
# is also checked by class, and the caret by position where it is
# unambiguous.

args3 <- c("x=Vi(3)", "y=Vj(3)")

# the character of the formula above the caret of a parse-type error
caret_char <- function(cnd) {
  lines <- strsplit(conditionMessage(cnd), "\n", fixed = TRUE)[[1]]
  k <- grep("^ *\\^$", lines)
  if (length(k) != 1 || k < 2) return(NA_character_)
  col <- nchar(lines[k])
  substr(lines[k - 1], col, col)
}

test_that("malformed formulas: rkeops_parse_error with a caret", {

  expect_error(keops_kernel("Sum_Reduction(Exp(x, 1)", "x=Vi(3)"),
               class = "rkeops_parse_error")
  expect_error(keops_kernel("Sum_Reduction((x + y)), 1)", args3), class = "rkeops_parse_error")
  cnd <- expect_error(keops_kernel("Sum_Reduction(Exp(x), 1", "x=Vi(3)"),
                      class = "rkeops_parse_error")
  expect_identical(cnd$position, 24L) # just after the end
  expect_error(keops_kernel("Sum_Reduction(x + , 1)", args3), class = "rkeops_parse_error")
  expect_error(keops_kernel("Sum_Reduction(Pow(x), 1)", args3), class = "rkeops_error")
  expect_error(keops_kernel("Sum_Reduction(x, 2)", args3), class = "rkeops_error")
  expect_error(keops_kernel("", args3), class = "rkeops_parse_error")
  cnd <- expect_error(keops_kernel("Sum_Reduction(x $ y, 1)", args3),
                      class = "rkeops_parse_error")
  expect_s3_class(cnd, "rkeops_error")
  expect_identical(caret_char(cnd), "$")
  expect_identical(cnd$position, 17L)
  cnd <- expect_error(keops_kernel("Sum_Reduction((x + y)), 1)", args3),
                      class = "rkeops_parse_error")
  expect_identical(caret_char(cnd), ")")
  expect_identical(cnd$position, 22L)
  # messages (snapshots: skipped on CRAN, so they come last)
  expect_snapshot(error = TRUE, keops_kernel("Sum_Reduction(Exp(x, 1)", "x=Vi(3)"))
  expect_snapshot(error = TRUE, keops_kernel("Sum_Reduction(Exp(x), 1", "x=Vi(3)"))
  expect_snapshot(error = TRUE, keops_kernel("Sum_Reduction((x + y)), 1)", args3))
  expect_snapshot(error = TRUE, keops_kernel("Sum_Reduction(x $ y, 1)", args3))
  expect_snapshot(error = TRUE, keops_kernel("Sum_Reduction(x + , 1)", args3))
  expect_snapshot(error = TRUE, keops_kernel("Sum_Reduction(Pow(x), 1)", args3))
  expect_snapshot(error = TRUE, keops_kernel("Sum_Reduction(x, 2)", args3))
  expect_snapshot(error = TRUE, keops_kernel("", args3))
})

test_that("unknown operation or reduction: rkeops_op_error", {
  cnd <- expect_error(keops_kernel("Sum_Reduction(Exp(x) * Foo(x), 1)", args3),
                      class = "rkeops_op_error")
  expect_s3_class(cnd, "rkeops_error")
  expect_identical(caret_char(cnd), "F")
  expect_identical(cnd$position, 24L)
  expect_error(keops_kernel("Blob_Reduction(x, 1)", args3), class = "rkeops_op_error")
  # messages (snapshots: skipped on CRAN, so they come last)
  expect_snapshot(error = TRUE, keops_kernel("Sum_Reduction(Foo(x), 1)", args3))
  expect_snapshot(error = TRUE, keops_kernel("Blob_Reduction(x, 1)", args3))
})

test_that("unknown variable: rkeops_var_error", {
  cnd <- expect_error(keops_kernel("Sum_Reduction(x * z, 1)", args3),
                      class = "rkeops_var_error")
  expect_s3_class(cnd, "rkeops_error")
  expect_identical(caret_char(cnd), "z")
  expect_match(conditionMessage(cnd), "z")
  # messages (snapshots: skipped on CRAN, so they come last)
  expect_snapshot(error = TRUE, keops_kernel("Sum_Reduction(x * z, 1)", args3))
})

test_that("bad declarations", {
  expect_error(keops_kernel("Sum_Reduction(x, 1)", "x=Vk(3)"), class = "rkeops_parse_error")
  expect_error(keops_kernel("Sum_Reduction(x * y, 1)", c("x=Vi(3)", "y=Vj(")),
               class = "rkeops_parse_error")
  expect_error(keops_kernel("Sum_Reduction(x, 1)", "x=Vi(-3)"), class = "rkeops_error")
  # messages (snapshots: skipped on CRAN, so they come last)
  expect_snapshot(error = TRUE, keops_kernel("Sum_Reduction(x, 1)", "x=Vk(3)"))
  expect_snapshot(error = TRUE, keops_kernel("Sum_Reduction(x * y, 1)", c("x=Vi(3)", "y=Vj(")))
})

test_that("dimension mismatch in the formula: rkeops_dim_error", {
  expect_error(keops_kernel("Sum_Reduction(x + y, 1)", c("x=Vi(3)", "y=Vj(2)")),
               class = "rkeops_dim_error")
  expect_error(keops_kernel("Sum_Reduction(x | y, 1)", c("x=Vi(3)", "y=Vj(2)")),
               class = "rkeops_dim_error")
  # an index out of range: a bad value (the class is the engine's choice)
  expect_error(keops_kernel("Sum_Reduction(Elem(x, 3), 1)", args3), class = "rkeops_error")
  expect_error(keops_kernel("LogSumExp_Reduction(x, 1)", args3), class = "rkeops_dim_error")
  # messages (snapshots: skipped on CRAN, so they come last)
  expect_snapshot(error = TRUE, keops_kernel("Sum_Reduction(x + y, 1)", c("x=Vi(3)", "y=Vj(2)")))
  expect_snapshot(error = TRUE, keops_kernel("Sum_Reduction(Elem(x, 3), 1)", args3))
})

test_that("run-time errors: inputs (K > N pads, issue 14.3)", {
  op <- keops_kernel("ArgKMin_Reduction(SqDist(x, y), 5, 1)", args3)
  x <- matrix(runif(12), 4, 3)
  y <- matrix(runif(9), 3, 3)
  # K larger than N: indices 4 and 5 are NA (formerly rkeops_value_error)
  r <- op(list(x, y))
  expect_identical(dim(r), c(4L, 5L))
  expect_true(all(is.na(r[, 4:5])))
  expect_identical(t(apply(r[, 1:3], 1, sort)), matrix(c(1, 2, 3), 4, 3, byrow = TRUE))
  # wrong number of inputs
  expect_error(op(list(x)), class = "rkeops_input_error")
  expect_error(op(list(x, y, y)), class = "rkeops_input_error")
  # wrong input dimensions
  y6 <- matrix(runif(12), 6, 2)
  expect_error(op(list(x, y6)), class = "rkeops_dim_error")
  expect_error(op(list(x, runif(6))), class = "rkeops_dim_error")
  # non-numeric and complex input
  expect_error(op(list(x, matrix("a", 6, 3))), class = "rkeops_input_error")
  expect_error(op(list(x, list(1, 2, 3))), class = "rkeops_input_error")
  expect_error(op(list(x, matrix(1i, 6, 3))), class = "rkeops_input_error")
  # inconsistent numbers of points for one index
  op2 <- keops_kernel("Sum_Reduction(x * b, 1)", c("x=Vi(3)", "b=Vi(1)"))
  expect_error(op2(list(x, runif(5))), class = "rkeops_dim_error")
  # a parameter of the wrong length
  op3 <- keops_kernel("Sum_Reduction(x * s + y, 1)", c("x=Vi(3)", "y=Vj(3)", "s=Pm(1)"))
  expect_error(op3(list(x, y, c(1, 2))), class = "rkeops_dim_error")
  # messages (snapshots: skipped on CRAN, so they come last)
  expect_snapshot(error = TRUE, op(list(x)))
  expect_snapshot(error = TRUE, op(list(x, y6)))
  expect_snapshot(error = TRUE, op(list(x, matrix("a", 6, 3))))
  expect_snapshot(error = TRUE, op(list(x, matrix(1i, 6, 3))))
})

test_that("bad arguments of keops_kernel()", {
  expect_error(keops_kernel(1, args3), class = "rkeops_error")
  expect_error(keops_kernel(c("Sum_Reduction(x, 1)", "Sum_Reduction(y, 1)"), args3),
               class = "rkeops_error")
  expect_error(keops_kernel("Sum_Reduction(x, 1)", args3, sum_scheme = "fast"),
               class = "rkeops_error")
})

test_that("a long declaration with multi-byte characters: the quoted part is cut on a character boundary", {
  # 1 ASCII byte then 2-byte characters: the 200-byte quote would end in
  # the middle of one
  for (lead in c("a", "ab")) {
    d <- paste0(lead, strrep("\u00e9", 150), "=Vi(3)")
    e <- tryCatch(keops_kernel("Sum_Reduction(x, 1)", c("x=Vi(3)", d)),
                  error = identity)
    expect_s3_class(e, "rkeops_parse_error")
    m <- conditionMessage(e)
    expect_true(validUTF8(m))
    # the longest whole-character prefix of at most 200 bytes is quoted
    q <- paste0(lead, strrep("\u00e9", (200 - nchar(lead)) %/% 2))
    expect_true(grepl(paste0("declaration \"", q, "\""), m, fixed = TRUE))
  }
  # 3-byte characters inside the parentheses
  e <- tryCatch(keops_kernel("Sum_Reduction(x, 1)",
                             paste0("x=Vi(", strrep("\u20ac", 100), ")")),
                error = identity)
  expect_s3_class(e, "rkeops_parse_error")
  expect_true(validUTF8(conditionMessage(e)))
})
