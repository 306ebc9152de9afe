# test-ops.R -- every operation of src/ops.def against a dense R reference.
#
# ONE table, a row per operation (leaves and Grad/Diff/Laplacian/Divergence
# excluded): the formula with operands named a, b, c, each operand's
# dimension as a function of the test dimension d and its data domain, the
# dimensions the op allows, and the dense reference (ref_op in
# helper-reference.R).  Each row runs "Sum_Reduction(<op formula>, 1)" for
# d in 1, 3, 17 with the operands' categories rotating between i, j and
# parameter, plus broadcasting variants (a dimension-1 operand) for the
# broadcasting ops, in float64 (relative error <= 1e-12) and float32
# (<= 1e-5, on inputs rounded to float32 for both sides).

op_row <- function(op, formula, dims, doms, ref, ds = c(1, 3, 17),
                   bcast = FALSE) {
  if (is.character(formula)) {
    fs <- formula
    formula <- function(d) fs
  }
  list(op = op, formula = formula, dims = dims, doms = doms, ref = ref,
       ds = ds, bcast = bcast)
}
same <- function(d) d
one <- function(d) 1
twice <- function(d) 2 * d
r <- ref_op

ops_table <- list(
  # ---- arithmetic (a dimension-1 operand broadcasts) ----
  op_row("Add", "a + b", list(same, same), c("real", "real"), r$Add, bcast = TRUE),
  op_row("Add", "Add(a, b)", list(same, same), c("real", "real"), r$Add, bcast = TRUE),
  op_row("Subtract", "a - b", list(same, same), c("real", "real"), r$Subtract, bcast = TRUE),
  op_row("Subtract", "Subtract(a, b)", list(same, same), c("real", "real"), r$Subtract, bcast = TRUE),
  op_row("Mult", "a * b", list(same, same), c("real", "real"), r$Mult, bcast = TRUE),
  op_row("Mult", "Mult(a, b)", list(same, same), c("real", "real"), r$Mult, bcast = TRUE),
  op_row("Divide", "a / b", list(same, same), c("real", "nonzero"), r$Divide, bcast = TRUE),
  op_row("Divide", "Divide(a, b)", list(same, same), c("real", "nonzero"), r$Divide, bcast = TRUE),
  op_row("Minus", "-a", list(same), "real", r$Minus),
  op_row("Minus", "Minus(a)", list(same), "real", r$Minus),
  # ---- elementwise functions ----
  op_row("Exp", "Exp(a)", list(same), "real", r$Exp),
  op_row("Log", "Log(a)", list(same), "pos", r$Log),
  op_row("Sin", "Sin(a)", list(same), "real", r$Sin),
  op_row("Cos", "Cos(a)", list(same), "real", r$Cos),
  op_row("Sinh", "Sinh(a)", list(same), "real", r$Sinh),
  op_row("Cosh", "Cosh(a)", list(same), "real", r$Cosh),
  op_row("Tanh", "Tanh(a)", list(same), "real", r$Tanh),
  op_row("Tan", "Tan(a)", list(same), "unit", r$Tan),
  op_row("Asin", "Asin(a)", list(same), "unit", r$Asin),
  op_row("Acos", "Acos(a)", list(same), "unit", r$Acos),
  op_row("Atan", "Atan(a)", list(same), "real", r$Atan),
  op_row("Atan2", "Atan2(a, b)", list(same, same), c("real", "real"), r$Atan2, bcast = TRUE),
  op_row("Sqrt", "Sqrt(a)", list(same), "pos", r$Sqrt),
  op_row("Rsqrt", "Rsqrt(a)", list(same), "poszeros", r$Rsqrt),
  op_row("Inv", "Inv(a)", list(same), "nonzero", r$Inv),
  op_row("Square", "Square(a)", list(same), "real", r$Square),
  op_row("Pow", "Pow(a, 3)", list(same), "real", function(a) r$Pow(a, 3)),
  op_row("Pow", "Pow(a, -2)", list(same), "nonzero", function(a) r$Pow(a, -2)),
  op_row("Pow", "Pow(a, 0)", list(same), "real", function(a) r$Pow(a, 0)),
  op_row("Powf", "Powf(a, b)", list(same, same), c("pos", "real"), r$Powf, bcast = TRUE),
  op_row("Abs", "Abs(a)", list(same), "real", r$Abs),
  op_row("Sign", "Sign(a)", list(same), "zeros", r$Sign),
  op_row("Step", "Step(a)", list(same), "zeros", r$Step),
  op_row("ReLU", "ReLU(a)", list(same), "zeros", r$ReLU),
  op_row("Floor", "Floor(a)", list(same), "real", r$Floor),
  op_row("Round", "Round(a, 2)", list(same), "round2", function(a) r$Round(a, 2)),
  op_row("Round", "Round(a, 0)", list(same), "round0", function(a) r$Round(a, 0)),
  op_row("Round", "Round(a, -1)", list(same), "roundm1", function(a) r$Round(a, -1)),
  op_row("XLogX", "XLogX(a)", list(same), "poszeros", r$XLogX),
  op_row("SinXDivX", "SinXDivX(a)", list(same), "zeros", r$SinXDivX),
  op_row("Clamp", "Clamp(a, b, c)", list(same, same, same), c("real", "lower", "upper"),
         r$Clamp, bcast = TRUE),
  op_row("ClampInt", "ClampInt(a, -1, 1)", list(same), "real",
         function(a) r$ClampInt(a, -1, 1)),
  op_row("ClampInt", "ClampInt(a, 0, 2)", list(same), "real",
         function(a) r$ClampInt(a, 0, 2)),
  op_row("IfElse", "IfElse(a, b, c)", list(same, same, same), c("zeros", "real", "real"),
         r$IfElse, bcast = TRUE),
  op_row("Mod", "Mod(a, b, c)", list(same, same, same), c("real", "modulus", "small"),
         r$Mod, bcast = TRUE),
  # ---- comparisons (integer data: many ties) ----
  op_row("Equal", "Equal(a, b)", list(same, same), c("int", "int"), r$Equal, bcast = TRUE),
  op_row("NotEqual", "NotEqual(a, b)", list(same, same), c("int", "int"), r$NotEqual,
         bcast = TRUE),
  op_row("LessThan", "LessThan(a, b)", list(same, same), c("int", "int"), r$LessThan,
         bcast = TRUE),
  op_row("LessOrEqual", "LessOrEqual(a, b)", list(same, same), c("int", "int"),
         r$LessOrEqual, bcast = TRUE),
  op_row("GreaterThan", "GreaterThan(a, b)", list(same, same), c("int", "int"),
         r$GreaterThan, bcast = TRUE),
  op_row("GreaterOrEqual", "GreaterOrEqual(a, b)", list(same, same), c("int", "int"),
         r$GreaterOrEqual, bcast = TRUE),
  op_row("LessThan", "LessThan(a, b)", list(same, same), c("real", "real"), r$LessThan,
         bcast = TRUE),
  # ---- reductions over the inner dimension ----
  op_row("Sum", "Sum(a)", list(same), "real", r$Sum),
  op_row("Max", "Max(a)", list(same), "real", r$Max),
  op_row("Min", "Min(a)", list(same), "real", r$Min),
  op_row("ArgMax", "ArgMax(a)", list(same), "real", r$ArgMax),
  op_row("ArgMin", "ArgMin(a)", list(same), "real", r$ArgMin),
  op_row("SqNorm2", "SqNorm2(a)", list(same), "real", r$SqNorm2),
  op_row("Norm2", "Norm2(a)", list(same), "real", r$Norm2),
  op_row("Scalprod", "a | b", list(same, same), c("real", "real"), r$Scalprod),
  op_row("Scalprod", "Scalprod(a, b)", list(same, same), c("real", "real"), r$Scalprod),
  op_row("SqDist", "SqDist(a, b)", list(same, same), c("real", "real"), r$SqDist,
         bcast = TRUE),
  op_row("WeightedSqNorm", "WeightedSqNorm(a, b)", list(one, same), c("posw", "real"),
         r$WeightedSqNorm),
  op_row("WeightedSqNorm", "WeightedSqNorm(a, b)", list(same, same), c("posw", "real"),
         r$WeightedSqNorm),
  op_row("WeightedSqNorm", "WeightedSqNorm(a, b)", list(function(d) d * d, same),
         c("posw", "pos"), r$WeightedSqNorm),
  op_row("WeightedSqDist", "WeightedSqDist(a, b, c)", list(one, same, same),
         c("posw", "real", "real"), r$WeightedSqDist),
  op_row("WeightedSqDist", "WeightedSqDist(a, b, c)", list(same, same, same),
         c("posw", "real", "real"), r$WeightedSqDist, bcast = TRUE),
  # x or y of dimension 1 broadcast, the weight a d x d matrix
  op_row("WeightedSqDist", "WeightedSqDist(a, b, c)", list(function(d) d * d, one, same),
         c("posw", "real", "real"), r$WeightedSqDist),
  op_row("WeightedSqDist", "WeightedSqDist(a, b, c)", list(function(d) d * d, same, same),
         c("posw", "pos", "small"), r$WeightedSqDist),
  # ---- vector operations ----
  op_row("Normalize", "Normalize(a)", list(same), "real", r$Normalize),
  op_row("Normalize", "Normalize(a)", list(same), "zeros", r$Normalize, ds = 1),
  op_row("Elem", function(d) sprintf("Elem(a, %d)", d %/% 2), list(same), "real",
         function(a) r$Elem(a, length(a) %/% 2)),
  op_row("Elem", function(d) sprintf("Elem(a, %d)", d - 1), list(same), "real",
         function(a) r$Elem(a, length(a) - 1)),
  op_row("ElemT", function(d) sprintf("ElemT(a, %d, %d)", d, d - 1), list(one), "real",
         NULL),
  op_row("ElemT", function(d) sprintf("ElemT(a, %d, 0)", d + 1), list(one), "real", NULL),
  op_row("Extract", function(d) sprintf("Extract(a, %d, %d)", d %/% 3, ext_len(d)),
         list(same), "real", NULL),
  op_row("ExtractT", function(d) sprintf("ExtractT(a, 2, %d)", d + 3), list(same), "real",
         NULL),
  op_row("Concat", "Concat(a, b)", list(same, function(d) max(1, d %/% 2)),
         c("real", "real"), r$Concat),
  op_row("OneHot", function(d) sprintf("OneHot(a, %d)", d), list(one), "onehot", NULL),
  op_row("SumT", function(d) sprintf("SumT(a, %d)", d), list(one), "real", NULL),
  op_row("MatVecMult", "MatVecMult(a, b)", list(twice, same), c("real", "real"),
         r$MatVecMult),
  op_row("VecMatMult", "VecMatMult(a, b)", list(same, twice), c("real", "real"),
         r$VecMatMult),
  op_row("TensorProd", "TensorProd(a, b)", list(same, function(d) 2), c("real", "real"),
         r$TensorProd)
)

ext_len <- function(d) max(1, d - d %/% 3 - 1)

# references whose integer parameters depend on d (NULL ref in the table)
ops_ref_d <- function(row, d) {
  if (!is.null(row$ref)) return(row$ref)
  switch(row$op,
    ElemT = {
      n <- as.integer(sub("ElemT\\(a, ([0-9]+), ([0-9]+)\\)", "\\1", row$formula(d)))
      m <- as.integer(sub("ElemT\\(a, ([0-9]+), ([0-9]+)\\)", "\\2", row$formula(d)))
      function(a) r$ElemT(a, n, m)
    },
    Extract = function(a) r$Extract(a, d %/% 3, ext_len(d)),
    ExtractT = function(a) r$ExtractT(a, 2, d + 3),
    OneHot = function(a) r$OneHot(a, d),
    SumT = function(a) r$SumT(a, d))
}

cat_decl <- c(i = "Vi", j = "Vj", p = "Pm")

# The variants of a row: list(d, dims of the operands, categories).
ops_variants <- function(row) {
  nargs <- length(row$dims)
  out <- list()
  for (k in seq_along(row$ds)) {
    d <- row$ds[k]
    cats <- c("i", "j", "p")[(k - 1 + seq_len(nargs) - 1) %% 3 + 1]
    dims <- vapply(row$dims, function(f) f(d), numeric(1))
    out[[length(out) + 1]] <- list(d = d, dims = dims, cats = cats)
  }
  if (row$bcast && 3 %in% row$ds) {
    # one operand of dimension 1, the others of dimension 3
    for (m in seq_len(nargs)) {
      dims <- rep(3, nargs)
      dims[m] <- 1
      cats <- c("i", "j", "p")[(m + seq_len(nargs) - 1) %% 3 + 1]
      out[[length(out) + 1]] <- list(d = 3, dims = dims, cats = cats)
    }
  }
  out
}

# Run one variant in one precision; returns NULL, expectations inside.
run_op_variant <- function(row, v, prec, M = 6, N = 5) {
  nargs <- length(v$dims)
  nm <- c("a", "b", "c")[seq_len(nargs)]
  f <- row$formula(v$d)
  ref <- ops_ref_d(row, v$d)
  # operands (data rounded to float32 in float32 mode, for both sides)
  data <- lapply(seq_len(nargs), function(m) {
    n <- switch(v$cats[m], i = M, j = N, p = 1)
    prec_data(rdata(n, v$dims[m], row$doms[m]), prec)
  })
  args <- sprintf("%s=%s(%d)", nm, cat_decl[v$cats], as.integer(v$dims))
  input <- lapply(seq_len(nargs), function(m) {
    if (v$cats[m] == "p") as.vector(data[[m]]) else data[[m]]
  })
  # weights for a missing index category, so that both M and N are known
  ew <- list()
  if (!"i" %in% v$cats) {
    ew$e <- prec_data(rdata(M, 1, "posw"), prec)
    args <- c(args, "e=Vi(1)")
    f <- sprintf("(%s) * e", f)
  }
  if (!"j" %in% v$cats) {
    ew$w <- prec_data(rdata(N, 1, "posw"), prec)
    args <- c(args, "w=Vj(1)")
    f <- sprintf("(%s) * w", f)
  }
  input <- c(input, unname(ew))
  formula <- sprintf("Sum_Reduction(%s, 1)", f)
  label <- sprintf("%s [%s] float%d", formula, paste(args, collapse = ", "), prec)

  # the dense reference
  pick <- function(m, i, j) {
    switch(v$cats[m], i = data[[m]][i, ], j = data[[m]][j, ], p = as.vector(data[[m]]))
  }
  rows <- lapply(seq_len(M), function(i) {
    acc <- 0
    for (j in seq_len(N)) {
      val <- do.call(ref, lapply(seq_len(nargs), pick, i = i, j = j))
      if (!is.null(ew$e)) val <- val * ew$e[i]
      if (!is.null(ew$w)) val <- val * ew$w[j]
      acc <- acc + val
    }
    acc
  })
  expected <- do.call(rbind, rows)

  op <- keops_kernel(formula, args)
  got <- op(input)
  expect_close(got, expected, tol_for(prec), label)
}

test_that("the op table covers every operation of ops.def", {
  tested <- unique(vapply(ops_table, `[[`, "", "op"))
  expect_setequal(tested, ops_expected)
  expect_true(all(names(ref_op) %in% ops_expected))
  from_def <- def_names("ops.def", "X")
  skip_if(is.null(from_def), "src/ops.def not reachable from the tests")
  expect_setequal(setdiff(from_def, ops_excluded), tested)
})

for (row in ops_table) {
  local({
    row <- row
    test_that(sprintf("op %s: %s", row$op, row$formula(3)), {
      set.seed(1000 + match(row$op, ops_expected))
      local_rk_cpu()
      for (prec in c(64, 32)) {
        local_rk_precision(prec)
        for (v in ops_variants(row)) run_op_variant(row, v, prec)
      }
    })
  })
}

test_that("numeric literals: integers and reals in formulas", {
  local_rk_cpu()
  set.seed(7)
  x <- rdata(4, 3, "real")
  y <- rdata(5, 3, "real")
  for (prec in c(64, 32)) {
    local_rk_precision(prec)
    xp <- prec_data(x, prec)
    yp <- prec_data(y, prec)
    op <- keops_kernel("Sum_Reduction(x * 2 + y * 0.5 - 1.25, 1)",
                       c("x=Vi(3)", "y=Vj(3)"))
    expected <- 5 * (xp * 2 - 1.25) + matrix(colSums(yp) * 0.5, 4, 3, byrow = TRUE)
    expect_close(op(list(xp, yp)), expected, tol_for(prec), "literals")
  }
})

test_that("Var(pos, dim, cat) inside formulas and positional declarations", {
  local_rk_cpu()
  set.seed(8)
  x <- rdata(6, 2, "real")
  y <- rdata(4, 2, "real")
  expected <- t(vapply(1:6, function(i) {
    colSums(t(vapply(1:4, function(j) sin(x[i, ] - y[j, ]), numeric(2))))
  }, numeric(2)))
  op1 <- keops_kernel("Sum_Reduction(Sin(x - y), 1)", c("x=Vi(0,2)", "y=Vj(1,2)"))
  op2 <- keops_kernel("Sum_Reduction(Sin(Var(0,2,0) - Var(1,2,1)), 1)", character())
  expect_close(op1(list(x, y)), expected, 1e-12, "positional")
  expect_close(op2(list(x, y)), expected, 1e-12, "Var()")
})

test_that("Exp far below 0: float64 keeps subnormal results, float32 flushes below ln(FLT_MIN) to 0 as the GPU does", {
  local_rk_cpu()
  set.seed(9)
  # 64 reduction points (several lanes, every lane on exp's full-range
  # path), offsets per row: results subnormal in float32 (row 1), normal
  # in float32 up to just above ln(FLT_MIN) (row 2: exp(-87.25) is kept,
  # exp(-87.75) flushed), mixed (rows 3, 4), subnormal in float64 (row 5),
  # below every subnormal (row 6)
  y <- matrix(c(runif(62, -100, -88), -88, -88.5), 64, 1)
  s <- matrix(c(0, 0.75, 12.3, 100, -640, -700), 6, 1)
  op <- keops_kernel("Sum_Reduction(Exp(y + s), 1)", c("s=Vi(1)", "y=Vj(1)"))
  lnmin32 <- log(2^-126)
  for (prec in c(64, 32)) {
    local_rk_precision(prec)
    yp <- prec_data(y, prec)
    sp <- prec_data(s, prec)
    got <- op(list(sp, yp))
    a <- outer(drop(sp), drop(yp), "+")
    if (prec == 32) a <- prec_data(a, 32)
    e <- exp(a)
    if (prec == 32) e[a < lnmin32] <- 0
    ref <- rowSums(e)
    if (prec == 32) {
      expect_identical(got[c(1, 5, 6), 1], c(0, 0, 0))
      expect_gt(got[2, 1], 0)
      expect_lt(max(abs(got[2:4, 1] / ref[2:4] - 1)), 1e-5)
    } else {
      expect_lt(max(abs(got[1:4, 1] / ref[1:4] - 1)), 1e-13)
      # a subnormal result is off by at most one unit (2^-1074) a term
      expect_gt(got[5, 1], 0)
      expect_lte(abs(got[5, 1] - ref[5]), 64 * 2^-1074)
      expect_identical(got[6, 1], 0)
    }
  }
})
