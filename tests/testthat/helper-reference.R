# helper-reference.R -- dense R references for the engine tests.
#
# Everything here is written from the op semantics of tools/DEVNOTES.md and
# src/red.def, independently of the engine: plain R on small dense arrays.
#   * data generators (one per domain) and float32 rounding,
#   * ref_op_*: one reference function per operation of ops.def, taking the
#     operands of ONE (i, j) pair as plain numeric vectors,
#   * ref_reduce(): every reduction of red.def on a dense block of values,
#   * rel_err() / expect_close(): the relative error norm of the tests,
#   * local_rk_*(): switch precision / backend for one test and restore.

# ---- precision and options ---------------------------------------------------

tol_for <- function(prec) if (prec == 64) 1e-12 else 1e-5

# Round doubles to the nearest float32 (exactly what the engine's conversion
# does), so float32 tests compare against a reference on the same inputs.
f32 <- function(x) {
  d <- dim(x)
  storage <- is.integer(x)
  y <- readBin(writeBin(as.double(x), raw(), size = 4), "double",
               n = length(x), size = 4)
  if (storage) y <- x # integers of our tests are exact in float32
  dim(y) <- d
  y
}

prec_data <- function(x, prec) if (prec == 32) f32(x) else x

# Save every rkeops option and restore it when the calling frame exits.
local_rk_options <- function(envir = parent.frame()) {
  old <- rkeops::get_rkeops_options()
  withr::defer(rkeops::set_rkeops_options(old), envir = envir)
  invisible(old)
}

local_rk_precision <- function(prec, envir = parent.frame()) {
  local_rk_options(envir)
  if (prec == 32) rkeops::rkeops_use_float32() else rkeops::rkeops_use_float64()
  invisible(prec)
}

# The value tests run on the backend named by RKEOPS_TEST_BACKEND ("CPU" by
# default; "GPU" on the GPU machine, where the whole suite then checks the
# CUDA backend against the same dense R references).  local_rk_cpu_only()
# is for tests about the CPU backend itself (threads, the .so cache files).
test_backend <- function() toupper(Sys.getenv("RKEOPS_TEST_BACKEND", "CPU"))
local_rk_cpu <- function(ncore = NULL, prec = 64, envir = parent.frame()) {
  if (test_backend() == "GPU") {
    local_rk_options(envir)
    rkeops::rkeops_use_gpu(0)
    if (prec == 32) rkeops::rkeops_use_float32() else rkeops::rkeops_use_float64()
    return(invisible(NULL))
  }
  local_rk_cpu_only(ncore, prec, envir)
}
local_rk_cpu_only <- function(ncore = NULL, prec = 64, envir = parent.frame()) {
  local_rk_options(envir)
  rkeops::rkeops_use_cpu(ncore)
  if (prec == 32) rkeops::rkeops_use_float32() else rkeops::rkeops_use_float64()
  invisible(NULL)
}

# Long tests run when RKEOPS_LONG_TESTS is set to a true value.
long_tests <- function() {
  isTRUE(as.logical(Sys.getenv("RKEOPS_LONG_TESTS", "false")))
}
skip_if_not_long <- function() {
  testthat::skip_if_not(long_tests(), "long test: set RKEOPS_LONG_TESTS=true")
}

# ---- random data ------------------------------------------------------------

# n x d matrix of values in a domain chosen so that the references are well
# conditioned (away from poles, branch cuts and rounding boundaries).
rdata <- function(n, d, domain = "real") {
  k <- n * d
  v <- switch(domain,
    real = runif(k, -2, 2),
    unit = runif(k, -0.9, 0.9),              # Asin, Acos, Tan
    pos = runif(k, 0.25, 3),                  # Log, Sqrt, Powf base
    nonzero = sample(c(-1, 1), k, TRUE) * runif(k, 0.5, 2), # Inv, Divide
    zeros = ifelse(runif(k) < 0.3, 0, runif(k, -2, 2)),    # exact 0 cases
    small = runif(k, -1, 1),
    posw = runif(k, 0.5, 1.5),               # positive weights
    poszeros = ifelse(runif(k) < 0.3, 0, runif(k, 0.25, 3)), # Rsqrt, XLogX at 0
    modulus = runif(k, 0.5, 2),
    lower = runif(k, -1.5, -0.1),            # Clamp lower bounds
    upper = runif(k, 0.1, 1.5),              # Clamp upper bounds
    # Round(x, 2), Round(x, 0), Round(x, -1): the fractional part of
    # x * 10^d stays in [0.05, 0.45] or [0.55, 0.95] (no rounding tie).
    round2 = (sample(-300:300, k, TRUE) + frac_no_tie(k)) / 100,
    round0 = sample(-5:5, k, TRUE) + frac_no_tie(k),
    roundm1 = (sample(-5:5, k, TRUE) + frac_no_tie(k)) * 10,
    # OneHot: round(x) in -1 .. 18 (some out of range), never a tie
    onehot = sample(-1:18, k, TRUE) + runif(k, -0.4, 0.4),
    int = as.double(sample(-3:3, k, TRUE)),
    stop("unknown domain ", domain)
  )
  matrix(v, n, d)
}

frac_no_tie <- function(k) {
  runif(k, 0.05, 0.45) + sample(c(0, 0.5), k, TRUE)
}

# ---- relative error ------------------------------------------------------------

# max |a - b| / max(|b|, tiny) over the finite entries; NA and Inf entries
# must sit at the same places (and Inf have the same sign) or the error is Inf.
rel_err <- function(a, b, tiny = 1e-300) {
  a <- as.double(a)
  b <- as.double(b)
  if (length(a) != length(b)) return(Inf)
  if (length(a) == 0) return(0)
  if (!identical(is.na(a), is.na(b))) return(Inf)
  inf <- is.infinite(b) | is.infinite(a)
  if (any(inf & !is.na(a)) && !identical(a[inf], b[inf])) return(Inf)
  ok <- !is.na(b) & !inf
  if (!any(ok)) return(0)
  max(abs(a[ok] - b[ok])) / max(max(abs(b[ok])), tiny)
}

# got must be a numeric matrix of the reference's shape with rel_err <= tol.
expect_close <- function(got, ref, tol, label = "") {
  ref <- as.matrix(ref)
  testthat::expect_true(is.matrix(got) && is.numeric(got),
                        info = paste(label, ": result is not a numeric matrix"))
  testthat::expect_identical(dim(got), dim(ref),
                             info = paste(label, ": wrong result shape"))
  if (!identical(dim(got), dim(ref))) return(invisible(FALSE))
  e <- rel_err(got, ref)
  testthat::expect_true(e <= tol, info = sprintf(
    "%s: relative error %.3g > %.3g (first got %s, expected %s)", label, e, tol,
    paste(format(head(as.double(got), 4), digits = 15), collapse = " "),
    paste(format(head(as.double(ref), 4), digits = 15), collapse = " ")))
  invisible(e <= tol)
}

# ---- elementwise operation references (one pair at a time) ------------------------

# recycle every argument to the longest one (the dimension-1 broadcast)
bc <- function(...) {
  a <- list(...)
  n <- max(lengths(a))
  lapply(a, rep_len, n)
}

c_round <- function(x) sign(x) * floor(abs(x) + 0.5) # C's round(): half away

ref_op <- list(
  Add = function(a, b) { z <- bc(a, b); z[[1]] + z[[2]] },
  Subtract = function(a, b) { z <- bc(a, b); z[[1]] - z[[2]] },
  Mult = function(a, b) { z <- bc(a, b); z[[1]] * z[[2]] },
  Divide = function(a, b) { z <- bc(a, b); z[[1]] / z[[2]] },
  Minus = function(a) -a,
  Exp = function(a) exp(a),
  Log = function(a) log(a),
  Sin = function(a) sin(a),
  Cos = function(a) cos(a),
  Sinh = function(a) sinh(a),
  Cosh = function(a) cosh(a),
  Tanh = function(a) tanh(a),
  Tan = function(a) tan(a),
  Asin = function(a) asin(a),
  Acos = function(a) acos(a),
  Atan = function(a) atan(a),
  Atan2 = function(a, b) { z <- bc(a, b); atan2(z[[1]], z[[2]]) },
  Sqrt = function(a) sqrt(a),
  Rsqrt = function(a) ifelse(a == 0, 0, 1 / sqrt(a)),
  Inv = function(a) 1 / a,
  Square = function(a) a * a,
  Pow = function(a, n) { r <- rep(1, length(a)); for (k in seq_len(abs(n))) r <- r * a
                         if (n < 0) 1 / r else r },
  Powf = function(a, b) { z <- bc(a, b); exp(z[[2]] * log(z[[1]])) },
  Abs = function(a) abs(a),
  Sign = function(a) ifelse(a > 0, 1, ifelse(a < 0, -1, 0)),
  Step = function(a) ifelse(a < 0, 0, 1),
  ReLU = function(a) ifelse(a < 0, 0, a),
  Floor = function(a) floor(a),
  Round = function(a, d) c_round(a * 10^d) / 10^d,
  XLogX = function(a) ifelse(a == 0, 0, a * log(a)),
  SinXDivX = function(a) ifelse(a == 0, 1, sin(a) / a),
  Clamp = function(a, lo, hi) { z <- bc(a, lo, hi); pmin(pmax(z[[1]], z[[2]]), z[[3]]) },
  ClampInt = function(a, lo, hi) pmin(pmax(a, lo), hi),
  IfElse = function(cc, a, b) { z <- bc(cc, a, b); ifelse(z[[1]] >= 0, z[[2]], z[[3]]) },
  Mod = function(a, m, o) { z <- bc(a, m, o)
                            z[[1]] - z[[2]] * floor((z[[1]] - z[[3]]) / z[[2]]) },
  # comparisons: 1 / 0 (no NaN in the test data)
  Equal = function(a, b) { z <- bc(a, b); as.double(z[[1]] == z[[2]]) },
  NotEqual = function(a, b) { z <- bc(a, b); as.double(z[[1]] != z[[2]]) },
  LessThan = function(a, b) { z <- bc(a, b); as.double(z[[1]] < z[[2]]) },
  LessOrEqual = function(a, b) { z <- bc(a, b); as.double(z[[1]] <= z[[2]]) },
  GreaterThan = function(a, b) { z <- bc(a, b); as.double(z[[1]] > z[[2]]) },
  GreaterOrEqual = function(a, b) { z <- bc(a, b); as.double(z[[1]] >= z[[2]]) },
  Sum = function(a) sum(a),
  Max = function(a) max(a),
  Min = function(a) min(a),
  ArgMax = function(a) which.max(a) - 1, # 0-based inside formulas
  ArgMin = function(a) which.min(a) - 1,
  SqNorm2 = function(a) sum(a^2),
  Norm2 = function(a) sqrt(sum(a^2)),
  Scalprod = function(a, b) sum(a * b),
  SqDist = function(a, b) sum((a - b)^2),
  WeightedSqNorm = function(s, a) {
    d <- length(a)
    if (length(s) == 1) s * sum(a^2)
    else if (length(s) == d) sum(s * a^2)
    else { S <- matrix(s, d, d, byrow = TRUE); drop(t(a) %*% S %*% a) }
  },
  WeightedSqDist = function(s, a, b) ref_op$WeightedSqNorm(s, a - b),
  Normalize = function(a) { n2 <- sum(a^2); a * (if (n2 == 0) 0 else 1 / sqrt(n2)) },
  Elem = function(a, m) a[m + 1],
  ElemT = function(a, n, m) { r <- numeric(n); r[m + 1] <- a; r },
  Extract = function(a, start, len) a[start + seq_len(len)],
  ExtractT = function(a, start, d) { r <- numeric(d); r[start + seq_along(a)] <- a; r },
  Concat = function(a, b) c(a, b),
  OneHot = function(a, d) as.double(c_round(a) == seq_len(d) - 1),
  SumT = function(a, d) rep(a, d),
  MatVecMult = function(A, v) { n <- length(v); drop(matrix(A, ncol = n, byrow = TRUE) %*% v) },
  VecMatMult = function(v, A) { m <- length(v); drop(v %*% matrix(A, nrow = m, byrow = TRUE)) },
  TensorProd = function(a, b) as.vector(t(outer(a, b))) # out[i*db + j] = a[i] b[j]
)

# Every op of ops.def that the op table must test (leaves and AD ops are
# excluded: they are tested elsewhere).
ops_expected <- c(
  "Add", "Subtract", "Mult", "Divide", "Minus", "Exp", "Log", "Sin", "Cos",
  "Tan", "Asin", "Acos", "Atan", "Atan2", "Sqrt", "Rsqrt", "Inv", "Square",
  "Pow", "Powf", "Abs", "Sign", "Step", "ReLU", "Floor", "Round", "XLogX",
  "SinXDivX", "Sinh", "Cosh", "Tanh", "Clamp", "ClampInt", "IfElse", "Mod", "Equal", "NotEqual",
  "LessThan", "LessOrEqual", "GreaterThan", "GreaterOrEqual", "Sum", "Max", "Min",
  "ArgMax", "ArgMin", "SqNorm2", "Norm2", "Scalprod", "SqDist",
  "WeightedSqNorm", "WeightedSqDist", "Normalize", "Elem", "ElemT", "Extract",
  "ExtractT", "Concat", "OneHot", "SumT", "MatVecMult", "VecMatMult",
  "TensorProd")
ops_excluded <- c("Var", "IntCst", "Cst", "Zero", "Grad", "Diff", "Laplacian",
                  "Divergence")

# The engine's own tables (src/ffi-internal.c): list(ops = columns name,
# nargs, nip, leaf, elementwise, expanded, derivative; reds = columns name,
# nf, hask, outkind), read from the installed package, so that the coverage
# guards run wherever the tests do (R CMD check included).
engine_tables <- function() .Call(rkeops:::ffi_engine_tables)

# Names of the rows of a .def table, from the engine: "ops.def" or "red.def"
# (the macro argument is kept for the callers; the engine is the source).
def_names <- function(file, macro = NULL) {
  t <- engine_tables()
  switch(file, ops.def = t$ops$name, red.def = t$reds$name,
         stop("def_names: unknown table ", file))
}

# ---- reductions --------------------------------------------------------------------

reds_expected <- c("Sum", "Min", "Max", "ArgMin", "ArgMax", "Min_ArgMin",
                   "Max_ArgMax", "KMin", "ArgKMin", "KMin_ArgKMin",
                   "LogSumExp", "LogSumExpWeight", "SumSoftMaxWeight")

# one reduction of a block: V is nred x d (the values f of every reduced
# point for one output row), W nred x e (weights) or NULL.  Returns the
# output row (a numeric vector), indices 1-based, layout of red.def.
ref_reduce_row <- function(red, V, W = NULL, K = NULL) {
  d <- ncol(V)
  n <- nrow(V)
  colapply <- function(fn) vapply(seq_len(d), function(c) fn(V[, c]), numeric(1))
  first_min <- function(v) { i <- which.min(v); if (length(i)) i else NA_real_ }
  first_max <- function(v) { i <- which.max(v); if (length(i)) i else NA_real_ }
  kmin <- function(v) v[order(v, method = "radix")][seq_len(K)]  # stable
  kargmin <- function(v) order(v, method = "radix")[seq_len(K)]
  lse_w <- function(f, w) { # log(sum exp(f) w) with a max shift
    m <- max(f)
    m + log(colSums(exp(f - m) * w))
  }
  switch(red,
    Sum = colapply(sum),
    Min = colapply(function(v) if (length(v)) min(v) else Inf),
    Max = colapply(function(v) if (length(v)) max(v) else -Inf),
    ArgMin = colapply(first_min),
    ArgMax = colapply(first_max),
    Min_ArgMin = c(colapply(min), colapply(first_min)),
    Max_ArgMax = c(colapply(max), colapply(first_max)),
    # out[k*d + c]: a K x d matrix read row by row
    KMin = as.vector(t(vapply(seq_len(d), function(c) kmin(V[, c]), numeric(K)))),
    ArgKMin = as.vector(t(vapply(seq_len(d), function(c) as.double(kargmin(V[, c])),
                                 numeric(K)))),
    KMin_ArgKMin = c(ref_reduce_row("KMin", V, W, K), ref_reduce_row("ArgKMin", V, W, K)),
    LogSumExp = { stopifnot(d == 1); if (n == 0) -Inf else lse_w(V[, 1], matrix(1, n, 1)) },
    LogSumExpWeight = { stopifnot(d == 1); lse_w(V[, 1], W) },
    SumSoftMaxWeight = {
      stopifnot(d == 1)
      m <- max(V[, 1])
      e <- exp(V[, 1] - m)
      colSums(e * W) / sum(e)
    },
    stop("unknown reduction ", red))
}

red_outdim <- function(red, d, e = NULL, K = NULL) {
  switch(red, Sum = , Min = , Max = , ArgMin = , ArgMax = d,
         Min_ArgMin = , Max_ArgMax = 2 * d, KMin = , ArgKMin = K * d,
         KMin_ArgKMin = 2 * K * d, LogSumExp = 1, LogSumExpWeight = ,
         SumSoftMaxWeight = e)
}

# Which output columns hold indices (compared exactly).
red_index_cols <- function(red, d, e = NULL, K = NULL) {
  od <- red_outdim(red, d, e, K)
  switch(red, ArgMin = , ArgMax = , ArgKMin = seq_len(od),
         Min_ArgMin = , Max_ArgMax = , KMin_ArgKMin = (od / 2 + 1):od,
         integer(0))
}

# The dense reference of "<red>_Reduction(f(x, y)[, g][, K], axis)" where f
# is applied componentwise: fam(xcol, ycol) is a vectorised R function of the
# i-values and the j-values.  X is M x d (i), Y is N x d (j); W is the weight
# indexed by the reduced index (N x e for axis 1, M x e for axis 0).
# Computed by chunks of output rows to keep memory small.
#
# With fast = TRUE, Sum and the order-based reductions use vectorised paths
# (rowSums; one stable radix order() per block) that give the same values as
# the per-row definitions in ref_reduce_row() (checked in test-reduce-cpu.R).
ref_reduce <- function(red, fam, X, Y, axis, W = NULL, K = NULL, chunk = 256,
                       fast = TRUE) {
  d <- ncol(X)
  nout <- if (axis == 1) nrow(X) else nrow(Y)
  nred <- if (axis == 1) nrow(Y) else nrow(X)
  od <- red_outdim(red, d, if (is.null(W)) NULL else ncol(W), K)
  out <- matrix(0, nout, od)
  starts <- seq(1, by = chunk, length.out = ceiling(nout / chunk))
  for (s in starts) {
    rows <- s:min(nout, s + chunk - 1)
    # blocks[[c]]: length(rows) x nred values of component c
    blocks <- lapply(seq_len(d), function(c) {
      if (axis == 1) outer(X[rows, c], Y[, c], fam)
      else t(outer(X[, c], Y[rows, c], fam))
    })
    if (fast && red == "Sum") { # rowSums accumulates in long double
      out[rows, ] <- vapply(blocks, rowSums, numeric(length(rows)))
      next
    }
    if (fast && red %in% order_reds && nred > 0 &&
        !any(vapply(blocks, anyNA, logical(1)))) {
      out[rows, ] <- ref_order_block(red, blocks, if (is.null(K)) 1 else K)
      next
    }
    for (r in seq_along(rows)) {
      V <- vapply(blocks, function(b) b[r, ], numeric(nred))
      dim(V) <- c(nred, d)
      out[rows[r], ] <- ref_reduce_row(red, V, W, K)
    }
  }
  out
}

order_reds <- c("Min", "Max", "ArgMin", "ArgMax", "Min_ArgMin", "Max_ArgMax",
                "KMin", "ArgKMin", "KMin_ArgKMin")

# The order-based reductions of a list of blocks (one per component, rows x
# nred, no NA) at once: a stable radix order by (row, value) puts each row's
# values in increasing order, ties by increasing column (reduced) index.
ref_order_block <- function(red, blocks, K) {
  d <- length(blocks)
  nr <- nrow(blocks[[1]])
  nred <- ncol(blocks[[1]])
  dec <- red %in% c("Max", "ArgMax", "Max_ArgMax")
  kv <- ki <- matrix(0, nr, K * d)
  for (c in seq_len(d)) {
    B <- blocks[[c]]
    o <- order(as.vector(row(B)), if (dec) -as.vector(B) else as.vector(B),
               method = "radix")
    O <- matrix(o, nrow = nred)       # column q: positions of row q, sorted
    for (k in seq_len(K)) {
      kv[, (k - 1) * d + c] <- B[O[k, ]]
      ki[, (k - 1) * d + c] <- (O[k, ] - 1) %/% nr + 1
    }
  }
  switch(red, Min = , Max = , KMin = kv, ArgMin = , ArgMax = , ArgKMin = ki,
         cbind(kv, ki))
}

# ---- formula strings -----------------------------------------------------------------

red_formula <- function(red, f, axis, K = NULL, weight = NULL) {
  extra <- c(weight, if (!is.null(K)) as.character(K))
  paste0(red, "_Reduction(", paste(c(f, extra, axis), collapse = ", "), ")")
}
