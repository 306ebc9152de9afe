# test-scalar-defs.R -- the scalar definitions of src/scalar-defs.h are the
# one description of Rsqrt, Inv, Pow, Powf, Sign, Step, ReLU, Round, XLogX,
# SinXDivX, Clamp, ClampInt, IfElse and Mod: constant folding compiles them,
# the CUDA prelude is generated from them, and the CPU kernels (which keep
# vector forms of most) must agree with them.  Each op is checked three
# ways on special values: the CPU kernel, the engine's constant fold (the
# compiled definition) and an R reference written from the documented
# semantics.

sd_args <- c("x=Vi(1)", "y=Vj(1)")

# the value the engine folds op text f to (NA when it does not fold)
sd_fold <- function(f) {
  can <- attr(keops_kernel(sprintf("Sum_Reduction(%s, 1)", f), sd_args), "canonical")
  v <- sub("^Sum_Reduction\\((?:Int)?Cst\\((.*)\\),1\\)$", "\\1", can, perl = TRUE)
  if (identical(v, can)) {
    if (grepl("^Sum_Reduction\\(Zero\\(1\\),1\\)$", can)) return(0)
    return(NA_real_)
  }
  as.numeric(v)
}

# a constant as formula text (a whole number beyond int range is a real)
sd_text <- function(v) {
  s <- sprintf("%.17g", v)
  if (!grepl("[.e]", s) && abs(v) >= 2^31) s <- paste0(s, ".0")
  s
}

# the CPU kernel of op template t ("%s": the variable) on values x
sd_kernel <- function(t, x, precision = "float64") {
  op <- keops_kernel(sprintf("Sum_Reduction(%s * y, 1)", sprintf(t, "x")), sd_args)
  if (precision == "float32") {
    rkeops_use_float32()
    on.exit(rkeops_use_float64(), add = TRUE)
  }
  as.vector(op(list(matrix(x, ncol = 1), matrix(1, 1, 1))))
}

# R references (the semantics of scalar-defs.h, written independently)
r_round <- function(x, d) {
  p <- 10^abs(d)
  half <- function(v) sign(v) * floor(abs(v) + 0.5)
  if (d == 0) half(x) else if (d > 0) half(x * p) / p else half(x / p) * p
}
sd_rows <- list(
  list("Rsqrt(%s)", function(x) ifelse(x == 0, 0, 1 / sqrt(x))),
  list("Inv(%s)", function(x) 1 / x),
  list("Pow(%s, 3)", function(x) x^3),
  list("Pow(%s, -2)", function(x) 1 / x^2),
  list("Pow(%s, 0)", function(x) rep(1, length(x))),
  list("Powf(%s, 0.5)", function(x) exp(0.5 * log(x))),
  list("Sign(%s)", function(x) ifelse(is.nan(x), 0, sign(x))),
  list("Step(%s)", function(x) ifelse(!is.nan(x) & x < 0, 0, 1)),
  list("ReLU(%s)", function(x) ifelse(!is.nan(x) & x < 0, 0, x)),
  list("Round(%s, 0)", function(x) r_round(x, 0)),
  list("Round(%s, 1)", function(x) r_round(x, 1)),
  list("Round(%s, 2)", function(x) r_round(x, 2)),
  list("Round(%s, -1)", function(x) r_round(x, -1)),
  list("Round(%s, -2)", function(x) r_round(x, -2)),
  list("XLogX(%s)", function(x) ifelse(x == 0, 0, x * log(x))),
  list("SinXDivX(%s)", function(x) ifelse(x == 0, 1, sin(x) / x)),
  list("Clamp(%s, -1, 2)", function(x) ifelse(!is.nan(x) & x < -1, -1, ifelse(!is.nan(x) & x > 2, 2, x))),
  list("ClampInt(%s, -1, 2)", function(x) ifelse(!is.nan(x) & x < -1, -1, ifelse(!is.nan(x) & x > 2, 2, x))),
  list("IfElse(%s, 3, -4)", function(x) ifelse(!is.nan(x) & x >= 0, 3, -4)),
  list("Mod(%s, 2.5, 0.5)", function(x) x - 2.5 * floor((x - 0.5) / 2.5))
)
sd_values <- c(-250, -125, -12.5, -2.5, -1.25, -1, -0.5, -0.125, 0, 0.125, 0.25, 0.5,
               1, 1.25, 1.5, 2.5, 3.75, 125, 1e10)

test_that("CPU kernels, constant folding and R agree on the scalar definitions", {
  local_rk_cpu_only()
  for (row in sd_rows) {
    t <- row[[1]]
    ref <- suppressWarnings(row[[2]](sd_values))
    got <- sd_kernel(t, sd_values)
    expect_equal(got, ref, tolerance = 1e-15, label = t)
    folds <- vapply(sd_values, function(v)
      sd_fold(sprintf(t, sd_text(v))), 0)
    ok <- is.finite(ref)
    # every finite value folds, to the kernel's value bit for bit
    expect_false(anyNA(folds[ok]), label = t)
    expect_identical(folds[ok], got[ok], label = t)
  }
})

test_that("non-finite inputs follow the definitions on the CPU", {
  local_rk_cpu_only()
  x <- c(NaN, Inf, -Inf)
  for (row in sd_rows) {
    t <- row[[1]]
    expect_identical(sd_kernel(t, x), suppressWarnings(row[[2]](x)), label = t)
  }
})

test_that("Round with negative digits: tens, half away from zero, in float64 and float32", {
  local_rk_cpu_only()
  # 10^-d by division, as the CUDA kernels always did (the CPU multiplied by pow(10, d))
  x <- c(15, 25, -35, 45, 1234567)
  expect_identical(sd_kernel("Round(%s, -1)", x), r_round(x, -1))
  expect_identical(sd_kernel("Round(%s, -1)", x), c(20, 30, -40, 50, 1234570))
  # float32: results that are floats, so that the comparison is exact
  x32 <- c(15, 25, -35, 1234565)
  expect_identical(sd_kernel("Round(%s, -1)", x32, precision = "float32"), r_round(x32, -1))
  expect_identical(sd_kernel("Round(%s, 1)", c(1.25, -0.75), precision = "float32"),
                   c(1.2999999523162842, -0.80000001192092896)) # float(1.3), float(-0.8)
})

test_that("the CUDA prelude is written from the same definitions", {
  src <- rkeops:::rk_source("Sum_Reduction(Round(x, 2) * Sign(y) + Mod(x, 2, 0) * y, 1)",
                            sd_args, backend = "GPU")
  for (nm in c("rsqrt", "inv", "powi", "powf", "sign", "step", "relu", "round",
               "xlogx", "sinxdivx", "clamp", "ifelse", "mod")) {
    expect_match(src, sprintf("RK_SDQ T rk_%s_s(", nm), fixed = TRUE, label = nm)
    expect_match(src, sprintf("#define rk_%s rk_%s_s\n", nm, nm), fixed = TRUE, label = nm)
  }
  cpu <- rkeops:::rk_source("Sum_Reduction(Round(x, 2) * y, 1)", sd_args)
  expect_match(cpu, "RK_SDQ T rk_round_s(T x, int d)", fixed = TRUE)
  # the text is the one body of scalar-defs.h in both
  body <- function(s) regmatches(s, regexpr("RK_SDQ T rk_round_s[^\n]*", s))
  expect_identical(body(src), body(cpu))
})

test_that("GPU kernels agree with the definitions (libm of the device: to rounding)", {
  skip_if_not(test_backend() == "GPU", "the GPU backend is tested with RKEOPS_TEST_BACKEND=GPU")
  local_rk_cpu()
  for (row in sd_rows) {
    t <- row[[1]]
    ref <- suppressWarnings(row[[2]](sd_values))
    expect_equal(sd_kernel(t, sd_values), ref, tolerance = 1e-13, label = t)
  }
})
