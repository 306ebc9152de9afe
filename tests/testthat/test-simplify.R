# test-simplify.R -- one test per simplification law of src/ir-simplify.c,
# one expectation each, through the canonical text of the parsed formula
# (attribute "canonical" of keops_kernel(), which compiles nothing).
# Each expected text differs from the unsimplified one, so a law that
# stops applying fails its test; the "not" rows pin the cases where a law
# must not apply (broadcasting, non-finite or unsafe folds, f(0) != 0).

simp_args <- c("x=Vi(3)", "y=Vj(3)", "s=Vi(1)", "t=Vj(1)", "A=Pm(9)")
X <- "Var(0,3,0)"
Y <- "Var(1,3,1)"
S <- "Var(2,1,0)"

# the reduced formula of Sum_Reduction(f, 1), in canonical text
simp_canon <- function(f) {
  k <- keops_kernel(sprintf("Sum_Reduction(%s, 1)", f), simp_args)
  sub("^Sum_Reduction\\((.*),1\\)$", "\\1", attr(k, "canonical"))
}

simp_laws <- list(
  # ---- constant folding (rk_simp_fold) ----
  list("integers fold to an IntCst", "2 * 3", "IntCst(6)"),
  list("an exact integer quotient stays an IntCst", "4 / 2", "IntCst(2)"),
  list("an inexact quotient becomes a Cst", "3 / 2", "Cst(1.5)"),
  list("reals fold to a Cst", "1.5 + 1", "Cst(2.5)"),
  list("functions of constants fold", "Exp(0)", "IntCst(1)"),
  list("not: a non-finite result is not folded", "Log(0)", "Log(IntCst(0))"),
  list("not: division by zero is not folded", "1 / 0",
       "Divide(IntCst(1),IntCst(0))"),
  list("not: Inv(0) is not folded", "Inv(0)", "Inv(IntCst(0))"),
  # Round folds through the kernels' own scalar definition (scalar-defs.h):
  # half away from zero, 10^-d by division
  list("Round folds, half away from zero", "Round(1.25, 1)", "Cst(1.3)"),
  list("Round folds to tens", "Round(-125, -1)", "IntCst(-130)"),
  list("not: no reassociation", "x + 1 + 2",
       sprintf("Add(Add(%s,IntCst(1)),IntCst(2))", X)),
  # ---- identities (rk_simp_rules) ----
  list("x + 0 = x", "x + 0", X),
  list("0 + x = x", "0 + x", X),
  list("not: s + Zero(3) broadcasts s", "s + Zero(3)",
       sprintf("Add(%s,Zero(3))", S)),
  list("x - 0 = x", "x - 0", X),
  list("x - x = 0", "x - x", "Zero(3)"),
  list("0 - x = -x", "0 - x", sprintf("Minus(%s)", X)),
  list("x * 0 = 0", "x * 0", "Zero(3)"),
  list("0 * x = 0", "0 * x", "Zero(3)"),
  list("x * 1 = x", "x * 1", X),
  list("1 * x = x", "1 * x", X),
  list("x / 1 = x", "x / 1", X),
  list("-(-x) = x", "-(-x)", X),
  list("Pow(x, 1) = x", "Pow(x, 1)", X),
  list("Pow(s, 0) = 1 for a scalar", "Pow(s, 0)", "IntCst(1)"),
  list("not: Pow(x, 0) of a vector", "Pow(x, 0)", sprintf("Pow(%s,0)", X)),
  list("Sum of a scalar is the scalar", "Sum(s)", S),
  list("Max of a scalar is the scalar", "Max(s)", S),
  list("Min of zero is zero", "Min(Zero(3))", "Zero(1)"),
  list("Sum of zero is zero", "Sum(Zero(3))", "Zero(1)"),
  list("ArgMax of a scalar is 0", "ArgMax(s)", "Zero(1)"),
  list("ArgMin of zero is 0", "ArgMin(Zero(3))", "Zero(1)"),
  list("SqNorm2 of zero is zero", "SqNorm2(Zero(3))", "Zero(1)"),
  list("Norm2 of zero is zero", "Norm2(Zero(3))", "Zero(1)"),
  list("a scalar product with zero is zero", "x | Zero(3)", "Zero(1)"),
  list("SqDist(x, x) = 0", "Concat(SqDist(x, x), x)",
       sprintf("Concat(Zero(1),%s)", X)),
  list("SqDist(x, 0) = SqNorm2(x)", "SqDist(x, Zero(3))",
       sprintf("SqNorm2(%s)", X)),
  list("SqDist(0, y) = SqNorm2(y)", "SqDist(Zero(3), y)",
       sprintf("SqNorm2(%s)", Y)),
  list("WeightedSqNorm with a zero weight is zero",
       "Concat(WeightedSqNorm(0, x), x)", sprintf("Concat(Zero(1),%s)", X)),
  list("WeightedSqNorm of zero is zero",
       "Concat(WeightedSqNorm(s, Zero(3)), x)",
       sprintf("Concat(Zero(1),%s)", X)),
  list("WeightedSqDist(s, x, x) = 0", "Concat(WeightedSqDist(s, x, x), x)",
       sprintf("Concat(Zero(1),%s)", X)),
  list("IfElse(c, a, a) = a", "IfElse(s, x, x)", X),
  list("Elem of a scalar is the scalar", "Elem(s, 0)", S),
  list("Elem of zero is zero", "Concat(Elem(Zero(3), 1), x)",
       sprintf("Concat(Zero(1),%s)", X)),
  list("Extract of everything is the identity", "Extract(x, 0, 3)", X),
  list("Extract of zero is zero", "Extract(Zero(3), 1, 2)", "Zero(2)"),
  list("ExtractT onto everything is the identity", "ExtractT(x, 0, 3)", X),
  list("ExtractT of zero is zero", "ExtractT(Zero(1), 1, 3)", "Zero(3)"),
  list("ElemT into dimension 1 is the identity", "ElemT(s, 1, 0)", S),
  list("ElemT of zero is zero", "ElemT(0, 3, 1)", "Zero(3)"),
  list("SumT into dimension 1 is the identity", "SumT(s, 1)", S),
  list("SumT of zero is zero", "SumT(0, 3)", "Zero(3)"),
  list("Concat of zeros is zero", "Concat(Zero(1), Zero(2))", "Zero(3)"),
  # a linear op (ops.def RK_OPC_LINEAR) of zeros, scalar constants included
  list("Concat of a constant zero and a zero is zero", "Concat(0, Zero(2))", "Zero(3)"),
  list("MatVecMult with zero is zero", "MatVecMult(A, Zero(3))", "Zero(3)"),
  list("VecMatMult with zero is zero", "VecMatMult(Zero(3), A)", "Zero(3)"),
  list("TensorProd with zero is zero", "TensorProd(Zero(3), x)", "Zero(9)"),
  # ---- f(Zero) = Zero for elementwise f with f(0) = 0 ----
  list("Sin(0) = 0", "Sin(Zero(3))", "Zero(3)"),
  list("Sqrt(0) = 0", "Sqrt(Zero(3))", "Zero(3)"),
  list("Minus(0) = 0", "Minus(Zero(3))", "Zero(3)"),
  list("Normalize(0) = 0", "Normalize(Zero(3))", "Zero(3)"),
  list("Pow(0, n > 0) = 0", "Pow(Zero(3), 2)", "Zero(3)"),
  list("not: Pow(0, n < 0)", "Pow(Zero(3), -1)", "Pow(Zero(3),-1)"),
  list("not: Exp(0) of a vector zero", "Exp(Zero(3))", "Exp(Zero(3))"),
  list("not: Cos(0) of a vector zero", "Cos(Zero(3))", "Cos(Zero(3))")
)

for (law in simp_laws) {
  local({
    law <- law
    test_that(sprintf("simplification: %s", law[[1]]), {
      expect_identical(simp_canon(law[[2]]), law[[3]], label = law[[2]])
    })
  })
}
