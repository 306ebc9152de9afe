# doc-formulas.R -- help pages without code: the formula language
# (?rkeops_formulas) and the differences from rkeops 2.x
# (?rkeops_differences).  Keep them true to src/ops.def and src/red.def.

#' The formula language of rkeops
#'
#' [keops_kernel()] and [keops_grad()] take a reduction written in the
#' KeOps formula language; LazyTensors ([Vi()], `exp()`, `sum()`, ...)
#' write the same formulas for you (print a LazyTensor to see its formula).
#' This page lists the whole language.
#'
#' @section A reduction:
#' A formula is one reduction `Name_Reduction(f, [K or weight,] axis)` of a
#' formula `f` over one of the two indices i and j. `axis = 1` reduces over
#' j and gives one row per i; `axis = 0` reduces over i and gives one row
#' per j. With `f` of dimension d (the length of the vector `f` at each
#' (i, j)), the result of `op(input)` is a numeric matrix with one row per
#' output index and these columns:
#'
#' | reduction | arguments | columns |
#' |---|---|---|
#' | `Sum_Reduction` | `(f, axis)` | d: the sum |
#' | `Min_Reduction`, `Max_Reduction` | `(f, axis)` | d: the minimum / maximum, componentwise (NaN propagates) |
#' | `ArgMin_Reduction`, `ArgMax_Reduction` | `(f, axis)` | d: the index of the minimum / maximum, **1-based** (ties: the smallest index; NaN values are skipped) |
#' | `Min_ArgMin_Reduction`, `Max_ArgMax_Reduction` | `(f, axis)` | 2d: the d values, then the d indices |
#' | `KMin_Reduction` | `(f, K, axis)` | `K * d`: the K smallest values in increasing order, the k-th (k from 0) of component c in column `k * d + c + 1` |
#' | `ArgKMin_Reduction` | `(f, K, axis)` | `K * d`: their indices (1-based) |
#' | `KMin_ArgKMin_Reduction` | `(f, K, axis)` | `2 * K * d`: the values, then the indices |
#' | `LogSumExp_Reduction` | `(f, axis)` | 1: `log(sum(exp(f)))`, computed stably (d must be 1) |
#' | `LogSumExpWeight_Reduction` | `(f, w, axis)` | dim(w): `log(sum(exp(f) * w))` |
#' | `SumSoftMaxWeight_Reduction` | `(f, w, axis)` | dim(w): `sum(exp(f) * w) / sum(exp(f))` |
#'
#' @section Variables:
#' Variables are declared in the `args` of [keops_kernel()] and used by
#' name in the formula: `"x=Vi(3)"` is indexed by i (one row of the input
#' matrix per i, dimension 3), `"y=Vj(3)"` by j, `"s=Pm(1)"` is a parameter
#' (the same vector for every (i, j)). `Vi(pos, dim)`, `Vj(pos, dim)`,
#' `Pm(pos, dim)` give the position in `input` explicitly (from 0), and
#' `Var(pos, dim, cat)` is the general form with `cat` 0 (i), 1 (j) or 2
#' (parameter); they may also be written inside the formula itself,
#' e.g. `"Sum_Reduction(Vi(0, 3) * Vj(1, 1), 1)"`.
#'
#' @section Constants:
#' `IntCst(n)` is the integer `n` (dimension 1); a whole number written in
#' a formula (`2`) is `IntCst(2)`, and a real literal (`0.5`, `1e-3`) a real
#' constant (an rkeops extension: KeOps writes parameters). `Zero(d)` is the
#' vector of d zeros. (LazyTensors turn every number that is not a whole
#' number into a parameter, so that changing it compiles nothing.)
#'
#' @section Operations:
#' Infix operators, from the lowest precedence: `a | b` (scalar product,
#' `Scalprod`, equal dimensions, result of dimension 1), `a + b`, `a - b`,
#' `a * b`, `a / b`, unary `-a`. Elementwise operations work componentwise
#' on operands of equal dimensions or broadcast an operand of dimension 1.
#' In the functions below, `m`, `n`, `d`, `k` are whole numbers written in
#' the formula (not variables).
#'
#' | operation | result |
#' |---|---|
#' | `Add(a, b)`, `Subtract(a, b)`, `Mult(a, b)`, `Divide(a, b)`, `Minus(a)` | `a + b`, `a - b`, `a * b`, `a / b`, `-a` |
#' | `Exp`, `Log`, `Sin`, `Cos`, `Tan`, `Asin`, `Acos`, `Atan`, `Sqrt`, `Abs`, `Floor` | elementwise, as in R (`Floor` is `floor`) |
#' | `Atan2(y, x)` | the angle of (x, y), as `atan2(y, x)` |
#' | `Rsqrt(x)` | `1 / sqrt(x)`, 0 where x is 0 |
#' | `Inv(x)`, `Square(x)` | `1 / x`, `x^2` |
#' | `Pow(x, n)` | `x^n`, n a whole number (may be negative) |
#' | `Powf(x, y)` | `exp(y * log(x))` |
#' | `Sign(x)`, `Step(x)`, `ReLU(x)` | -1/0/1; 0 for x < 0 else 1; `max(x, 0)` |
#' | `Round(x, d)` | `round(x * 10^d) / 10^d`, halves away from zero |
#' | `XLogX(x)`, `SinXDivX(x)` | `x * log(x)` (0 at 0), `sin(x) / x` (1 at 0) |
#' | `Clamp(x, a, b)` | `min(max(x, a), b)`; `ClampInt(x, m, n)`: with whole numbers |
#' | `IfElse(c, a, b)` | `a` where `c >= 0`, else `b` |
#' | `Mod(x, m, o)` | `x - m * floor((x - o) / m)`, in `[o, o + m)` |
#' | `Sum(x)`, `Max(x)`, `Min(x)` | of the components of x (dimension 1) |
#' | `ArgMax(x)`, `ArgMin(x)` | position of the largest / smallest component, **0-based** |
#' | `SqNorm2(x)`, `Norm2(x)`, `Normalize(x)` | `sum(x^2)`, `sqrt(sum(x^2))`, `x / Norm2(x)` |
#' | `Scalprod(a, b)` | `sum(a * b)`, also written `a | b` |
#' | `SqDist(a, b)` | `SqNorm2(a - b)` |
#' | `WeightedSqNorm(s, x)` | `s * sum(x^2)` (dim(s) 1), `sum(s * x^2)` (dim(s) = dim(x)), or `t(x) S x` (dim(s) = dim(x)^2, S stored by rows) |
#' | `WeightedSqDist(s, a, b)` | `WeightedSqNorm(s, a - b)`: the weight comes **first** (in R, [weightedsqdist()] takes it last) |
#' | `Elem(x, m)` | component m of x, **0-based** |
#' | `ElemT(x, n, m)` | dimension n, x (dimension 1) at position m, zeros elsewhere |
#' | `Extract(x, m, d)` | the d components of x from position m |
#' | `ExtractT(x, m, d)` | dimension d, x placed at position m, zeros elsewhere |
#' | `Concat(a, b)` | the components of a, then of b |
#' | `OneHot(x, d)` | dimension d, 1 at position `round(x)`, 0 elsewhere |
#' | `SumT(x, d)` | x (dimension 1) repeated d times |
#' | `MatVecMult(A, v)` | `A %*% v`, A of dimension `m * n` stored by rows, v of dimension n |
#' | `VecMatMult(v, A)` | `t(v) %*% A`, v of dimension m, A of dimension `m * n` stored by rows |
#' | `TensorProd(a, b)` | outer product, component `a[k] * b[l]` at `k * dim(b) + l` |
#'
#' Derivatives are expanded when the formula is read: `Grad(f, x, e)` is
#' the gradient with respect to the variable x of the scalar product of f
#' with e (e of the dimension of f: the vector-Jacobian product), `Diff(f,
#' x, u)` the derivative of f in the direction u, `Laplacian(f, x)` and
#' `Divergence(f, x)`. See [keops_grad()] for gradients of a whole
#' reduction.
#'
#' @section Positions and indices:
#' Positions inside a vector (`Elem`, `Extract`, `ElemT`, `OneHot`, the
#' inline `ArgMin(x)`) count from **0**, as in KeOps. The indices that a
#' reduction returns (`ArgMin_Reduction`, `ArgKMin_Reduction`, ...) count
#' from **1**, as R does, and so do the positions of [Vi()] variables in the
#' R functions (`x_i[, 1]` is `Elem(x, 0)`).
#'
#' @name rkeops_formulas
#' @aliases formula-language
#' @seealso [keops_kernel()], [keops_grad()], [LazyTensor()],
#'   [rkeops_differences]
#' @examples
#' op <- keops_kernel(
#'   "ArgKMin_Reduction(SqDist(x, y), 2, 1)",
#'   c("x=Vi(2)", "y=Vj(2)")
#' )
#' x <- matrix(c(0, 1, 5, 0, 0, 0), 3, 2)
#' y <- matrix(c(0, 4, 1, 0, 0, 0), 3, 2)
#' op(list(x, y)) # 1-based indices of the two nearest y of each x
#' # the same with LazyTensors, whose formula can be printed
#' sqdist(Vi(x), Vj(y))
NULL

#' Differences from rkeops 2.x
#'
#' This package is a reimplementation of rkeops with the same formula
#' language and LazyTensor interface. Programs written for rkeops 2.x mostly
#' run unchanged; these are the differences, all deliberate:
#'
#' * **Indices are 1-based.** `argmin()`, `argKmin()`, `Kmin_argKmin()` and
#'   the `ArgMin`-type reductions of [keops_kernel()] return R indices
#'   (from 1) in integer matrices; rkeops 2.x returned KeOps' 0-based
#'   indices as doubles. Positions *inside* a vector (`elem()`,
#'   `extract()`, `Elem(x, m)` in formulas) still count from 0, as in KeOps;
#'   the R-style selection `x_i[, k]` counts from 1.
#' * **`K %*% B` takes an ordinary matrix `B`** (one row per j) and computes
#'   `sum_j K_ij B_j`; rkeops 2.x also accepted a LazyTensor on the right.
#'   For two LazyTensors write `sum(x * y, index = "j")`.
#' * **float64 by default**: computations are in double precision unless
#'   [rkeops_use_float32()] is called (rkeops 2.x computed in float32 by
#'   default). Results are doubles in R either way.
#' * **Numbers in LazyTensor expressions**: whole numbers become integer
#'   constants of the formula, other numbers parameters, as in rkeops 2.x;
#'   in formulas given to [keops_kernel()], real literals such as `0.5` are
#'   accepted (rkeops 2.x needed a parameter).
#' * **No Python**: kernels are generated and compiled by the package
#'   itself (the system C compiler for the CPU, NVRTC for the GPU);
#'   `rkeops_use_cpu()` and `rkeops_use_gpu()` choose the backend at run
#'   time, and the compiled kernels are cached in
#'   [get_rkeops_cache_dir()].
#' * **Errors are classed**: every error is an `rkeops_error` with a
#'   subclass (`rkeops_parse_error`, `rkeops_dim_error`, ...) that can be
#'   caught with `tryCatch()`.
#' * **`square()`, `inv()`, `rsqrt()`, `relu()`, `xlogx()`, `sinxdivx()` on
#'   ordinary numbers** compute elementwise, also on a matrix: `inv(M)` is
#'   `1 / M` (some rkeops 2.x versions returned `solve(M)`).
#' * **Complex LazyTensors** (`ComplexLazyTensor`) are not implemented.
#'
#' @name rkeops_differences
#' @aliases rkeops2
#' @seealso [rkeops_formulas], [LazyTensor()]
#' @examples
#' x_i <- Vi(matrix(c(0, 1, 3), 3, 1))
#' y_j <- Vj(matrix(c(2.9, 0.2), 2, 1))
#' argmin(sqdist(x_i, y_j), "j") # 1-based, integer
NULL
