# test-codegen-cuda.R -- the CUDA source generated for every operation of
# src/ops.def and every reduction of src/red.def, in float32 and float64,
# is compiled by NVRTC for sm_80 and sm_90.  No GPU is needed: only NVRTC
# (libnvrtc.so, found as the package finds it at run time); the tests skip
# when NVRTC is absent.

nvrtc_ok <- function() {
  desc <- tryCatch(rkeops:::rk_config()$description, error = function(e) "")
  any(grepl("^NVRTC: [0-9]", strsplit(desc, "\n")[[1]]))
}
skip_if_no_nvrtc <- function() skip_if_not(nvrtc_ok(), "NVRTC not available")

nvrtc_compiles <- function(formula, args, precs = c(32L, 64L),
                           archs = list(c(8L, 0L), c(9L, 0L)),
                           scheme = "auto") {
  for (prec in precs) {
    for (a in archs) {
      res <- tryCatch(
        rkeops:::rk_nvrtc_check(formula, args, precision = prec, major = a[1],
                                minor = a[2], sum_scheme = scheme),
        error = function(e) e)
      label <- sprintf("%s [float%d sm_%d%d]", formula, prec, a[1], a[2])
      if (inherits(res, "error")) {
        fail(paste0(label, ": ", conditionMessage(res)))
      } else {
        expect_true(isTRUE(res), label = label)
      }
    }
  }
}

# one formula per operation; a, b, c are Vi / Vj / Pm so that every kind of
# variable access of the skeleton appears
cg_args <- c("a=Vi(3)", "b=Vj(3)", "c=Pm(3)", "s=Vj(1)", "t=Pm(1)",
             "m=Pm(9)", "w=Vi(9)")
cg_ops <- list(
  Add = "a + b", Subtract = "a - b", Mult = "a * c", Divide = "a / s",
  Minus = "-a", Exp = "Exp(a)", Log = "Log(b)", Sin = "Sin(a)",
  Cos = "Cos(b)", Sinh = "Sinh(a)", Cosh = "Cosh(b)", Tanh = "Tanh(c)", Tan = "Tan(a)", Asin = "Asin(c)", Acos = "Acos(a)",
  Atan = "Atan(b)", Atan2 = "Atan2(a, b)", Sqrt = "Sqrt(b)",
  Rsqrt = "Rsqrt(a)", Inv = "Inv(s)", Square = "Square(a)",
  Pow = "Pow(a, 3) + Pow(b, -2) + Pow(c, 0)", Powf = "Powf(b, a)",
  Abs = "Abs(a)", Sign = "Sign(b)", Step = "Step(a)", ReLU = "ReLU(b)",
  Floor = "Floor(a)", Round = "Round(a, 2) + Round(b, 0)",
  XLogX = "XLogX(b)", SinXDivX = "SinXDivX(a)",
  Clamp = "Clamp(a, b, c)", ClampInt = "ClampInt(a, -1, 2)",
  IfElse = "IfElse(a, b, c)", Mod = "Mod(a, b, c)",
  Equal = "Equal(a, b)", NotEqual = "NotEqual(a, s)", LessThan = "LessThan(c, a)",
  LessOrEqual = "LessOrEqual(a, b)", GreaterThan = "GreaterThan(t, b)",
  GreaterOrEqual = "GreaterOrEqual(a, c)",
  Sum = "Sum(a) * b", Max = "Max(a - b)", Min = "Min(b)",
  ArgMax = "ArgMax(a + b)", ArgMin = "ArgMin(b)", SqNorm2 = "SqNorm2(a)",
  Norm2 = "Norm2(a - b)", Scalprod = "(a | b)", SqDist = "SqDist(a, b) + SqDist(s, a)",
  WeightedSqNorm = "WeightedSqNorm(t, a) + WeightedSqNorm(c, b) + WeightedSqNorm(m, a)",
  WeightedSqDist = "WeightedSqDist(w, a, b) + WeightedSqDist(s, a, b) + WeightedSqDist(c, s, a)",
  Normalize = "Normalize(a - b)", Elem = "Elem(a, 2) * s",
  ElemT = "ElemT(s, 3, 1)", Extract = "Extract(w, 3, 3)",
  ExtractT = "ExtractT(s, 1, 3)", Concat = "Concat(Extract(a, 0, 2), Elem(b, 0))",
  OneHot = "OneHot(s, 4)", SumT = "SumT(s, 3)",
  MatVecMult = "MatVecMult(m, b)", VecMatMult = "VecMatMult(a, m)",
  TensorProd = "TensorProd(a, b)"
)

test_that("the CUDA codegen table covers every operation of ops.def", {
  from_def <- def_names("ops.def", "X")
  skip_if(is.null(from_def), "src/ops.def not reachable from the tests")
  expect_setequal(setdiff(from_def, ops_excluded), names(cg_ops))
})

# operations grouped into a few formulas (one NVRTC run per group, both
# precisions, both architectures); groups of dimension-3 terms are summed,
# OneHot (dimension 4) and TensorProd (dimension 9) stand alone
cg_groups <- function() {
  alone <- c("OneHot", "TensorProd")
  rest <- setdiff(names(cg_ops), alone)
  groups <- split(rest, ceiling(seq_along(rest) / 6))
  c(lapply(groups, function(g) paste(unlist(cg_ops[g]), collapse = " + ")),
    lapply(alone, function(g) cg_ops[[g]]))
}

test_that("NVRTC compiles the CUDA source of every operation", {
  skip_if_no_nvrtc()
  for (expr in cg_groups()) {
    nvrtc_compiles(sprintf("Sum_Reduction(%s, 1)", expr), cg_args)
  }
  # reductions over i (axis 0): the roles of i and j swap in the skeleton
  nvrtc_compiles("Sum_Reduction(Exp(-SqDist(a, b)) * s, 0)", cg_args)
  # a large dimension (no register blocking, no unrolled loops)
  nvrtc_compiles("Sum_Reduction(MatVecMult(A, y) * x, 1)",
                 c("A=Pm(90000)", "x=Vi(300)", "y=Vj(300)"), precs = 32L,
                 archs = list(c(9L, 0L)))
})

test_that("NVRTC compiles the CUDA source of every reduction", {
  skip_if_no_nvrtc()
  from_def <- def_names("red.def", "R")
  reds <- list(
    Sum = "Sum_Reduction(Sin(x - y), %d)",
    Min = "Min_Reduction(x - y, %d)",
    Max = "Max_Reduction(x * y, %d)",
    ArgMin = "ArgMin_Reduction(x - y, %d)",
    ArgMax = "ArgMax_Reduction(x - y, %d)",
    Min_ArgMin = "Min_ArgMin_Reduction(x - y, %d)",
    Max_ArgMax = "Max_ArgMax_Reduction(x - y, %d)",
    KMin = "KMin_Reduction(x - y, 5, %d)",
    ArgKMin = "ArgKMin_Reduction(SqDist(x, y), 10, %d)",
    KMin_ArgKMin = "KMin_ArgKMin_Reduction(x - y, 3, %d)",
    LogSumExp = "LogSumExp_Reduction(-SqDist(x, y), %d)",
    LogSumExpWeight = "LogSumExpWeight_Reduction(-SqDist(x, y), g, %d)",
    SumSoftMaxWeight = "SumSoftMaxWeight_Reduction(-SqDist(x, y), g, %d)"
  )
  if (!is.null(from_def)) expect_setequal(names(reds), from_def)
  for (red in names(reds)) {
    for (axis in 0:1) {
      wcat <- if (axis == 1) "Vj" else "Vi"
      nvrtc_compiles(sprintf(reds[[red]], axis),
                     c("x=Vi(3)", "y=Vj(3)", sprintf("g=%s(2)", wcat)))
    }
  }
  for (scheme in c("direct_sum", "block_sum", "kahan_scheme")) {
    nvrtc_compiles("Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)",
                   c("x=Vi(3)", "y=Vj(3)", "b=Vj(2)"), scheme = scheme)
  }
  # block_sum's float-pair accumulator (developer knob RKEOPS_CUDA_TSUM=2)
  withr::with_envvar(c(RKEOPS_CUDA_TSUM = "2"), {
    nvrtc_compiles("Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)",
                   c("x=Vi(3)", "y=Vj(3)", "b=Vj(2)"), scheme = "block_sum")
  })
})

test_that("the CUDA source uses the shared emitter and documents its key", {
  src <- rkeops:::rk_source("Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)",
                            c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)"),
                            backend = "GPU", precision = "float32")
  expect_match(src, "extern \"C\" __global__", fixed = TRUE)
  expect_match(src, "rk_main", fixed = TRUE)
  expect_match(src, "rk_merge", fixed = TRUE)
  expect_match(src, "typedef float T;", fixed = TRUE)
  expect_match(src, "rk_exp(", fixed = TRUE)
  src64 <- rkeops:::rk_source("Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)",
                              c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)"),
                              backend = "GPU", precision = "float64")
  expect_match(src64, "typedef double T;", fixed = TRUE)
})

test_that("a division by a value invariant over the points becomes a product by its reciprocal", {
  src <- function(f, prec = "float64")
    rkeops:::rk_source(f, c("x=Vi(3)", "y=Vj(3)", "s=Pm(1)", "b=Vj(1)", "u=Vi(1)"),
                       backend = "GPU", precision = prec)
  # a parameter, an expression of parameters, an i-variable (the rows'
  # side): 1 / divisor, which the compiler hoists out of the point loop
  s1 <- src("Sum_Reduction(SqDist(x, y) / s * b, 1)")
  expect_match(s1, "n[0-9]+\\[0\\] \\* \\(RK_SPLAT\\(1\\) / sk_[pv]2\\[0\\]\\)")
  expect_no_match(s1, "n[0-9]+\\[0\\] / sk_[pv]2")
  s2 <- src("Sum_Reduction(SqDist(x, y) / (s * s + u) * b, 1)")
  expect_match(s2, "\\* \\(RK_SPLAT\\(1\\) / n[0-9]+\\[0\\]\\)\\);")
  # a j-variable divisor keeps the division
  s3 <- src("Sum_Reduction(SqDist(x, y) / b, 1)")
  expect_no_match(s3, "RK_SPLAT(1) /", fixed = TRUE)
  expect_match(s3, "/ sk_sh[", fixed = TRUE)
  # float32: Exp(a / s) folds into exp2 with log2(e) / s
  s4 <- src("Sum_Reduction(Exp(-SqDist(x, y) / s) * b, 1)", "float32")
  expect_match(s4, "RK_EXP2S\\(\\(RK_LOG2E / sk_[pv]2\\[0\\]\\) \\* n")
  skip_if_no_nvrtc()
  nvrtc_compiles("Sum_Reduction(Exp(-SqDist(x, y) / (s * s + u)) * b, 1)",
                 c("x=Vi(3)", "y=Vj(3)", "s=Pm(1)", "b=Vj(1)", "u=Vi(1)"))
})

test_that("inner variables too wide for a shared-memory tile compile (global reads)", {
  skip_if_no_nvrtc()
  # 1000 float64 values per j point: 16 points are 128 KB, more than a
  # block's 48 KB of shared memory; the kernel reads them from global memory
  nvrtc_compiles("Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)",
                 c("x=Vi(1000)", "y=Vj(1000)", "b=Vj(1)"))
  nvrtc_compiles("ArgKMin_Reduction(SqDist(x, y), 5, 0)",
                 c("x=Vi(2000)", "y=Vj(2000)"))
})

test_that("wide block products (tile loop unrolled twice) compile", {
  skip_if_no_nvrtc()
  for (E in c(17, 31, 64))
    nvrtc_compiles("Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)",
                   c("x=Vi(3)", "y=Vj(3)", sprintf("b=Vj(%d)", E)))
})

test_that("a joint gradient (grad() in several parameters) compiles", {
  skip_if_no_nvrtc()
  f <- "c * Exp(-SqDist(x, y) / Square(s)) * b"
  nvrtc_compiles(sprintf("Sum_Reduction(Concat(Grad(%s, s, e), Grad(%s, c, e)), 1)", f, f),
                 c("x=Vi(3)", "y=Vj(3)", "b=Vj(31)", "s=Pm(1)", "c=Pm(1)", "e=Vi(31)"))
})

test_that("a kernel compiles to a pair of modules, rk_main's and rk_merge's", {
  skip_if_no_nvrtc()
  # rk_nvrtc_compile_kernel: the two entry points compiled as two programs
  # in parallel; the image is a 32-byte header (magic, two uint64 sizes)
  # then each module (CUBIN, an ELF file) at a 16-byte aligned offset
  has <- function(img, name) length(grepRaw(name, img, fixed = TRUE)) > 0
  u64 <- function(b) sum(as.numeric(b) * 256^(0:7))
  for (f in list(list("Sum_Reduction(Exp(-SqDist(x, y)) * b, 1)",
                      c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)")),
                 list("ArgKMin_Reduction(SqDist(x, y), 10, 0)",
                      c("x=Vi(3)", "y=Vj(3)")))) {
    p <- rkeops:::rk_parse(f[[1]], f[[2]], "auto")
    for (prec in c(32L, 64L)) {
      img <- .Call(rkeops:::ffi_nvrtc_image, p$ptr, prec, 9L, 0L)
      expect_identical(rawToChar(img[1:15]), "rkeops-cu-pair1")
      n1 <- u64(img[17:24]); n2 <- u64(img[25:32])
      off2 <- 32 + ceiling(n1 / 16) * 16
      expect_equal(length(img), off2 + n2)
      a <- img[33:(32 + n1)]; b <- img[(off2 + 1):(off2 + n2)]
      expect_identical(a[1:4], as.raw(c(0x7f, 0x45, 0x4c, 0x46))) # ELF
      expect_identical(b[1:4], as.raw(c(0x7f, 0x45, 0x4c, 0x46)))
      expect_true(has(a, "rk_main")); expect_false(has(a, "rk_merge"))
      expect_true(has(b, "rk_merge")); expect_false(has(b, "rk_main"))
    }
  }
})
