# test-errors.R -- classed conditions: every engine error code maps to its
# subclass of rkeops_error, parse errors point at the character, R-side
# checks name the culprit.

test_that("rk_abort() builds classed conditions with fields", {
  e <- tryCatch(rkeops:::rk_abort("rkeops_dim_error", c("a", "b"), arg = 2L),
                error = function(e) e)
  expect_s3_class(e, c("rkeops_dim_error", "rkeops_error", "error", "condition"),
                  exact = TRUE)
  expect_identical(conditionMessage(e), "a\nb")
  expect_identical(e$arg, 2L)
  expect_null(conditionCall(e))
})

test_that("every engine code maps to its class", {
  info <- list(code = 0L, code_name = "", message = "boom", pos = -1L,
               arg = -1L, log = "", path = "", formula = NULL, messages = "")
  map <- c(
    RK_EPARSE = "rkeops_parse_error", RK_EDIM = "rkeops_dim_error",
    RK_EINPUT = "rkeops_input_error", RK_EVAR = "rkeops_var_error",
    RK_EOP = "rkeops_op_error", RK_EVALUE = "rkeops_value_error",
    RK_ECOMPILE = "rkeops_compile_error", RK_ECUDA = "rkeops_cuda_error",
    RK_ECACHE = "rkeops_cache_error", RK_ENOMEM = "rkeops_memory_error",
    RK_EUNSUPPORTED = "rkeops_unsupported_error",
    RK_EINTERNAL = "rkeops_internal_error", RK_EWHATEVER = "rkeops_internal_error"
  )
  for (code in names(map)) {
    info$code_name <- code
    e <- tryCatch(rkeops:::rk_ffi_fail(info), error = function(e) e)
    expect_s3_class(e, map[[code]])
    expect_s3_class(e, "rkeops_error")
    expect_match(conditionMessage(e), "boom")
    expect_identical(e$code, code)
  }
  info$code_name <- "RK_ECOMPILE"
  info$log <- "x.c:1: error: nope"
  info$path <- "/tmp/x.c"
  e <- tryCatch(rkeops:::rk_ffi_fail(info), error = function(e) e)
  expect_identical(e$log, "x.c:1: error: nope")
  expect_identical(e$path, "/tmp/x.c")
  expect_match(conditionMessage(e), "nope")
})

test_that("an interrupt from the engine is an interrupt condition", {
  info <- list(code = 11L, code_name = "RK_EINTERRUPT", message = "stop",
               pos = -1L, arg = -1L, log = "", path = "", formula = NULL,
               messages = "")
  got <- withRestarts(
    withCallingHandlers(
      rkeops:::rk_ffi_fail(info),
      interrupt = function(cond) invokeRestart("abort", class(cond))
    ),
    abort = function(cls) cls
  )
  expect_true(all(c("rkeops_interrupt", "interrupt") %in% got))
})

test_that("parse errors come at definition time and point at the character", {
  e <- tryCatch(
    keops_kernel("Sum_Reduction(Exp(x) + , 1)", "x=Vi(1)"),
    error = function(e) e
  )
  expect_s3_class(e, "rkeops_parse_error")
  expect_s3_class(e, "rkeops_error")
  lines <- strsplit(conditionMessage(e), "\n")[[1]]
  caret <- regexpr("^", lines[length(lines)], fixed = TRUE)
  src <- regexpr("Sum_Reduction", lines[length(lines) - 1L], fixed = TRUE)
  # the caret sits under the offending character: the ',' after '+ '
  expect_identical(substr(lines[length(lines) - 1L], caret, caret), ",")
  expect_identical(e$position, as.integer(caret - src + 1L))
  expect_error(keops_kernel("Sum_Reduction(x, 1", "x=Vi(1)"),
               class = "rkeops_parse_error")
  expect_error(keops_kernel("Sum_Reduction(x, 1)", "x=Vq(1)"),
               class = "rkeops_error")
})

test_that("unknown operations and variables, bad dims are classed", {
  expect_error(keops_kernel("Sum_Reduction(Foo(x), 1)", "x=Vi(1)"),
               class = "rkeops_error")
  expect_error(keops_kernel("Sum_Reduction(x * z, 1)", "x=Vi(1)"),
               class = "rkeops_error")
  expect_error(keops_kernel("Sum_Reduction(x + y, 1)", c("x=Vi(2)", "y=Vj(3)")),
               class = "rkeops_dim_error")
  expect_error(keops_kernel(1, "x=Vi(1)"), class = "rkeops_input_error")
  expect_error(keops_kernel(c("a", "b"), "x=Vi(1)"), class = "rkeops_input_error")
  expect_error(keops_kernel("Sum_Reduction(x, 1)", 3), class = "rkeops_input_error")
  expect_error(keops_kernel("Sum_Reduction(x, 1)", "x=Vi(1)", sum_scheme = "fast"),
               class = "rkeops_value_error")
})

test_that("the session survives many errors", {
  for (k in 1:50) {
    expect_error(keops_kernel("Sum_Reduction(Exp(x + ), 1)", "x=Vi(1)"),
                 class = "rkeops_parse_error")
  }
  op <- keops_kernel("Sum_Reduction(x * y, 1)", c("x=Vi(1)", "y=Vj(1)"))
  for (k in 1:20) {
    expect_error(op(list(1:3, "a")), class = "rkeops_input_error")
  }
  expect_equal(op(list(1:2, 1:2))[, 1], c(3, 6))
})

test_that("errors carry the user's call into rkeops, not an internal one", {
  head_of <- function(e) {
    cl <- conditionCall(e)
    expect_false(is.null(cl))
    h <- cl[[1L]]
    if (is.call(h)) deparse(h) else as.character(h)
  }
  # from the engine (parse error, through rk_ffi_fail in C)
  f <- function() keops_kernel("Sum_Reduction(Exp(x-, 1)", "x=Vi(1)")
  e <- expect_error(f(), class = "rkeops_parse_error")
  expect_identical(head_of(e), "keops_kernel")
  e <- expect_error(rkeops::keops_kernel("Sum_Reduction(Exp(x-, 1)", "x=Vi(1)"),
                    class = "rkeops_parse_error")
  expect_identical(head_of(e), "rkeops::keops_kernel")
  # from R-side checks of an operator's inputs
  op <- keops_kernel("Sum_Reduction(x * y, 1)", c("x=Vi(2)", "y=Vj(2)"))
  e <- expect_error(op(list(1:3, matrix(1, 2, 2))), class = "rkeops_dim_error")
  expect_identical(head_of(e), "op")
  # LazyTensor arithmetic (an S4 method of a base generic)
  x <- LazyTensor(matrix(1, 3, 2), "i")
  y <- LazyTensor(matrix(1, 3, 3), "j")
  e <- expect_error(x + y, class = "rkeops_dim_error")
  expect_identical(head_of(e), "+")
  e <- expect_error(sum(x, index = "k"))
  expect_identical(head_of(e), "sum")
  # an option
  e <- expect_error(set_rkeops_options(list(precision = "float16")),
                    class = "rkeops_error")
  expect_identical(head_of(e), "set_rkeops_options")
  # the console shows it
  msg <- tryCatch(f(), error = function(e) paste(capture.output(print(e)), collapse = "\n"))
  expect_match(msg, "^<rkeops_parse_error in keops_kernel\\(")
})

test_that("the reduction rules of red.def (OUTDIM, F1, the K bound) say what is wrong", {
  e <- expect_error(keops_kernel("LogSumExp_Reduction(x, 1)", c("x=Vi(3)")),
                    class = "rkeops_dim_error")
  expect_match(conditionMessage(e), "LogSumExp_Reduction: the formula has dimension 3, not 1",
               fixed = TRUE)
  e <- expect_error(keops_kernel("KMin_Reduction(x, 8193, 1)", c("x=Vi(2)")),
                    class = "rkeops_value_error")
  expect_match(conditionMessage(e), "K * dimension = 16386 is larger than 16384", fixed = TRUE)
  dims <- c(Sum = 3, Min_ArgMin = 6, KMin = 12, KMin_ArgKMin = 24, LogSumExp = 1,
            SumSoftMaxWeight = 2)
  for (r in names(dims)) {
    f <- switch(r, KMin = , KMin_ArgKMin = sprintf("%s_Reduction(x, 4, 1)", r),
                LogSumExp = "LogSumExp_Reduction(Sum(x), 1)",
                SumSoftMaxWeight = "SumSoftMaxWeight_Reduction(Sum(x), w, 1)",
                sprintf("%s_Reduction(x, 1)", r))
    op <- keops_kernel(f, c("x=Vi(3)", "w=Vj(2)"))
    expect_identical(attr(op, "outdim"), as.integer(dims[[r]]), info = r)
  }
})
