# lazytensor-ops.R -- symbolic operations on LazyTensors.
#
# Every operation builds a new formula string from its operands' formulas and
# checks the inner dimensions as the engine will (src/ops.def, ir-check.c):
# elementwise binary operations broadcast a dimension-1 operand.  Base R
# generics are extended through S4 group generics (Arith, Compare, Math,
# Math2) and methods on primitives (`|`, `%*%`, sum, min, max), so nothing of
# base R is masked; `step`, `ifelse` and `atan2` become S4 generics whose
# default is the stats/base function.
#' @include lazytensor-class.R
NULL

# ---- helpers ---------------------------------------------------------------

# Output dimension of an elementwise operation: all operands of the same
# dimension, or of dimension 1 (broadcast).
# The engine's dimension of `op` on arguments of dimensions `dims` (its
# DIMFN rule of ops.def): the rules are not copied in R.  NA when the rule
# refuses them; an error that is not about dimensions is a bug here.
rk_op_dim <- function(op, dims, params = integer()) {
  d <- .Call(ffi_op_dim, op, as.integer(dims), as.integer(params))
  if (is.na(d) && !isTRUE(attr(d, "refused")))
    rk_abort("rkeops_internal_error",
             c(sprintf("the engine cannot size %s: %s", op, attr(d, "message")),
               "This is a bug in rkeops: please report it."))
  d
}

# The engine's output dimension of reduction `red` ("Sum", "KMin", ...) on a
# formula of dimension d, a weight of dimension e and K (red.def's OUTDIM
# and F1 rules and the K bound, through rk_red_outdim): an integer, or NA
# with attributes "message", "refused" and "kind" ("dimension" or "value").
rk_red_dim <- function(red, d, e = 1, K = 0) {
  r <- .Call(ffi_red_dim, red, as.double(d), as.double(e), as.double(K))
  if (is.na(r) && !isTRUE(attr(r, "refused")))
    rk_abort("rkeops_internal_error",
             c(sprintf("the engine cannot size a %s reduction: %s", red,
                       attr(r, "message")),
               "This is a bug in rkeops: please report it."))
  r
}

# The engine's dimension of `op` on `args` with integer `params`, or a
# dimension error: `msg` is LazyTensor's wording of the refusal, one text, or
# texts named by the kind of refusal the engine reports ("dimension": an
# argument's dimension, "value": an integer parameter); else the engine's
# message.  The rule itself is only the engine's.
lt_sized <- function(op, args, params = integer(), msg = NULL) {
  d <- rk_op_dim(op, vapply(args, function(a) a@dim, 0L), params)
  if (is.na(d)) {
    kind <- attr(d, "kind")
    m <- if (is.null(msg)) NULL
         else if (is.null(names(msg))) msg[[1L]]
         else unname(msg[kind])
    if (length(m) != 1L || is.na(m)) m <- attr(d, "message")
    lt_dim_error(m)
  }
  d
}

# The output dimension of the broadcasting op `op` (the engine's rule: equal
# dimensions or dimension 1), or a dimension error naming `opname`.
lt_bcast_dim <- function(args, opname, op = "Add") {
  dims <- vapply(args, function(a) a@dim, 0L)
  d <- rk_op_dim(op, dims)
  if (is.na(d))
    lt_dim_error(sprintf(paste0("%s: incompatible inner dimensions %s ",
                                "(operands must have equal dimensions or ",
                                "dimension 1)"), opname,
                         paste(dims, collapse = " and ")))
  d
}

# An integer parameter of an operation (written in the formula, not data).
lt_int <- function(n, what, min = -Inf) {
  if (!is.numeric(n) || length(n) != 1L || !is.finite(n) || n != round(n))
    lt_abort(sprintf("`%s` must be a single whole number", what),
             "rkeops_input_error")
  if (abs(n) > .Machine$integer.max)
    lt_abort(sprintf("`%s` = %.0f is out of range (at most %d in absolute value)",
                     what, n, .Machine$integer.max),
             "rkeops_input_error")
  if (n < min)
    lt_abort(sprintf("`%s` must be at least %.0f, not %.0f", what, min, n),
             "rkeops_input_error")
  as.integer(n)
}

# Op(a, b, ..., p1, p2) from formula arguments `args` and integer parameters.
lt_call <- function(op, args, params = integer(), dim) {
  # integers written with %d: never "1e+05", whatever options(scipen) says
  f <- paste0(op, "(", paste(c(vapply(args, function(a) a@formula, ""),
                                  sprintf("%d", as.integer(params))),
                                collapse = ", "),
              ")")
  lt_make(f, args, dim, op)
}

# An elementwise operation of any arity: operands converted, dims broadcast.
lt_elementwise <- function(op, ...) {
  args <- lapply(list(...), as_lt)
  lt_call(op, args, dim = lt_bcast_dim(args, op, op))
}

# A unary operation of `x`, output dimension `dim`.
lt_unary <- function(op, x, params = integer(), dim = NULL) {
  x <- lt_check(x, op)
  lt_call(op, list(x), params, if (is.null(dim)) x@dim else dim)
}

# `x` must already be a LazyTensor for functions that create no variable.
lt_check <- function(x, opname) {
  if (!lt_is(x)) {
    if (is.numeric(x) && length(x) == 1L) return(lt_constant(x))
    lt_abort(sprintf("%s() expects a LazyTensor, not an object of class %s",
                     tolower(opname), class(x)[1L]), "rkeops_input_error")
  }
  x
}

# a <sym> b, infix in the formula language, with broadcasting.
lt_infix <- function(sym, a, b, opname = sym) {
  a <- as_lt(a)
  b <- as_lt(b)
  op <- c("+" = "Add", "-" = "Subtract", "*" = "Mult", "/" = "Divide")[[sym]]
  d <- lt_bcast_dim(list(a, b), opname, op)
  lt_make(sprintf("(%s %s %s)", a@formula, sym, b@formula), list(a, b), d,
          opname)
}

lt_is_scalar_num <- function(x) {
  !lt_is(x) && is.numeric(x) && length(x) == 1L && is.finite(x)
}

# x^y: Square, Sqrt, Rsqrt and Pow(x, n) for the special exponents, Powf
# otherwise.
lt_power <- function(x, y) {
  if (lt_is_scalar_num(y) && lt_is(x)) {
    if (y == 2) return(lt_unary("Square", x))
    if (y == 0.5) return(lt_unary("Sqrt", x))
    if (y == -0.5) return(lt_unary("Rsqrt", x))
    if (y == round(y) && abs(y) < 2^31) return(lt_unary("Pow", x, y))
  }
  lt_elementwise("Powf", x, y)
}

lt_arith <- function(op, e1, e2) {
  switch(op,
    "+" = lt_infix("+", e1, e2),
    "-" = lt_infix("-", e1, e2),
    "*" = lt_infix("*", e1, e2),
    "/" = lt_infix("/", e1, e2),
    "^" = lt_power(e1, e2),
    "%%" = lt_elementwise("Mod", e1, e2, 0),
    "%/%" = lt_unary("Floor", lt_infix("/", e1, e2)),
    lt_abort(sprintf("the operator %s is not available for LazyTensors", op),
             "rkeops_op_error")
  )
}

# Comparisons: lt_compare() in lazytensor-compare.R.

# ---- Arith, Compare, Logic -------------------------------------------------

#' Arithmetic and comparison operators for LazyTensors
#'
#' `+ - * /` work elementwise, `^` is a power (`x^2` is `Square(x)`, `x^0.5`
#' `Sqrt(x)`, `x^-0.5` `Rsqrt(x)`, other whole exponents `Pow(x, n)`, the
#' rest `Powf(x, y)`), `%%` is the modulo `Mod(x, y, 0)` and `%/%` the
#' floored division; unary minus negates. Comparisons (`==`, `!=`, `<`,
#' `<=`, `>`, `>=`) give 1 (true) or 0 (false): see [LazyTensor-compare].
#' `x | y` is the scalar product over the inner dimension (`Scalprod`, the
#' two operands must have the same dimension; the result has dimension 1).
#'
#' A whole number in an expression becomes an integer constant `IntCst(n)`
#' of the formula; any other number (`0.5`, `1e-3`, `3e10`) becomes a
#' parameter [Pm()], so that `exp(-sqdist(x_i, y_j) / h)` compiles one
#' kernel for every value of `h`; a numeric vector of length > 1 becomes a
#' parameter too. Elementwise
#' operations need operands of equal inner dimensions or of dimension 1
#' (broadcast), and raise an error of class `rkeops_dim_error` otherwise.
#'
#' @param e1,e2 LazyTensors, numbers or numeric vectors (at least one a
#'   LazyTensor).
#' @return A [LazyTensor-class].
#' @name LazyTensor-arith
#' @examples
#' x_i <- Vi(matrix(runif(12), 4, 3))
#' y_j <- Vj(matrix(runif(15), 5, 3))
#' x_i + y_j
#' (x_i - y_j)^2
#' -x_i / 2
#' x_i >= y_j
#' x_i | y_j
NULL

#' @rdname LazyTensor-arith
#' @export
setMethod("Arith", signature(e1 = "LazyTensor", e2 = "LazyTensor"),
  function(e1, e2) lt_arith(.Generic, e1, e2))

#' @rdname LazyTensor-arith
#' @export
setMethod("Arith", signature(e1 = "LazyTensor", e2 = "ANY"),
  function(e1, e2) lt_arith(.Generic, e1, e2))

#' @rdname LazyTensor-arith
#' @export
setMethod("Arith", signature(e1 = "ANY", e2 = "LazyTensor"),
  function(e1, e2) lt_arith(.Generic, e1, e2))

#' @rdname LazyTensor-arith
#' @export
setMethod("Arith", signature(e1 = "LazyTensor", e2 = "missing"),
  function(e1, e2) {
    switch(.Generic,
      "+" = e1,
      "-" = lt_make(sprintf("(-%s)", e1@formula), list(e1), e1@dim, "-"),
      lt_abort(sprintf("the unary operator %s is not available", .Generic),
               "rkeops_op_error"))
  })

#' @rdname LazyTensor-arith
#' @export
setMethod("Compare", signature(e1 = "LazyTensor", e2 = "LazyTensor"),
  function(e1, e2) lt_compare(.Generic, e1, e2))

#' @rdname LazyTensor-arith
#' @export
setMethod("Compare", signature(e1 = "LazyTensor", e2 = "ANY"),
  function(e1, e2) lt_compare(.Generic, e1, e2))

#' @rdname LazyTensor-arith
#' @export
setMethod("Compare", signature(e1 = "ANY", e2 = "LazyTensor"),
  function(e1, e2) lt_compare(.Generic, e1, e2))

lt_scalprod <- function(x, y) {
  x <- as_lt(x)
  y <- as_lt(y)
  lt_sized("Scalprod", list(x, y),
           msg = sprintf(paste0("x | y (scalar product): the operands have ",
                                "inner dimensions %d and %d; they must be ",
                                "equal"), x@dim, y@dim))
  lt_make(sprintf("(%s | %s)", x@formula, y@formula), list(x, y), 1L, "|")
}

#' @rdname LazyTensor-arith
#' @export
setMethod("|", signature(e1 = "LazyTensor", e2 = "LazyTensor"),
  function(e1, e2) lt_scalprod(e1, e2))

#' @rdname LazyTensor-arith
#' @export
setMethod("|", signature(e1 = "LazyTensor", e2 = "ANY"),
  function(e1, e2) lt_scalprod(e1, e2))

#' @rdname LazyTensor-arith
#' @export
setMethod("|", signature(e1 = "ANY", e2 = "LazyTensor"),
  function(e1, e2) lt_scalprod(e1, e2))

# ---- Math, Math2 -----------------------------------------------------------

lt_math_ops <- c(exp = "Exp", log = "Log", sqrt = "Sqrt", abs = "Abs",
                 sign = "Sign", sin = "Sin", cos = "Cos", tan = "Tan",
                 asin = "Asin", acos = "Acos", atan = "Atan", floor = "Floor",
                 sinh = "Sinh", cosh = "Cosh", tanh = "Tanh")

#' Mathematical functions of LazyTensors
#'
#' `exp log sqrt abs sign sin cos tan asin acos atan sinh cosh tanh floor
#' ceiling` apply
#' elementwise to a LazyTensor (the S4 group generic `Math`) and return a
#' LazyTensor; `round(x, digits = 0)` (group `Math2`) rounds to `digits`
#' decimal places (`Round(x, d)` = `round(x * 10^d) / 10^d`, halves rounded
#' away from zero, where R rounds them to even). `log(x, base)` divides by
#' `log(base)`. On ordinary numbers these functions are the base functions,
#' unchanged. Other members of the groups (`cumsum`, `gamma`, `signif`, ...)
#' raise an error of class `rkeops_op_error`.
#'
#' @param x a LazyTensor.
#' @param digits a whole number, the decimal places kept by `round()`.
#' @param ... for `log()`: the base of the logarithm (a positive number),
#'   `exp(1)` when absent.
#' @return A [LazyTensor-class].
#' @name LazyTensor-math
#' @examples
#' x_i <- Vi(matrix(runif(12), 4, 3))
#' exp(-x_i)
#' log(x_i, 2)
#' round(x_i, 2)
#' exp(1) # base R is unchanged
NULL

#' @rdname LazyTensor-math
#' @export
setMethod("Math", "LazyTensor", function(x) {
  op <- lt_math_ops[.Generic]
  if (!is.na(op)) return(lt_unary(unname(op), x))
  switch(.Generic,
    ceiling = -lt_unary("Floor", -x),
    lt_abort(sprintf("%s() is not available for LazyTensors", .Generic),
             "rkeops_op_error"))
})

#' @rdname LazyTensor-math
#' @export
setMethod("log", "LazyTensor", function(x, ...) {
  dots <- list(...)
  base <- if (length(dots)) dots[[1L]] else exp(1)
  if (!lt_is_scalar_num(base) || base <= 0)
    lt_abort("the base of log() must be a positive number",
             "rkeops_input_error")
  if (base == exp(1)) return(lt_unary("Log", x))
  lt_unary("Log", x) / log(base)
})

#' @rdname LazyTensor-math
#' @export
setMethod("Math2", "LazyTensor", function(x, digits) {
  if (.Generic != "round")
    lt_abort(sprintf("%s() is not available for LazyTensors", .Generic),
             "rkeops_op_error")
  if (missing(digits)) digits <- 0L
  lt_unary("Round", x, lt_int(digits, "digits"))
})

# ---- functions of one LazyTensor ------------------------------------------

#' Elementwise functions of a LazyTensor
#'
#' `square(x)` is `x^2`, `rsqrt(x)` is `1 / sqrt(x)` (0 where `x` is 0),
#' `inv(x)` is `1 / x`, `relu(x)` is `max(x, 0)`, `step(x)` is 0 for `x < 0`
#' and 1 otherwise, `xlogx(x)` is `x * log(x)` (0 where `x` is 0) and
#' `sinxdivx(x)` is `sin(x) / x` (1 where `x` is 0). `atan2(y, x)` is the
#' angle of the point (x, y), elementwise with broadcasting.
#'
#' On an ordinary numeric (or logical) vector, matrix or array, `square()`,
#' `rsqrt()`, `inv()`, `relu()`, `xlogx()` and `sinxdivx()` compute the same
#' functions in R and return numbers with the attributes of `x` (as in
#' rkeops 2.x): `square(2)` is 4, `inv(4)` 0.25, `relu(-1)` 0.
#'
#' `step()` and `atan2()` are S4 generics whose default methods are
#' [stats::step()] and [base::atan2()]: on anything but a LazyTensor they
#' behave exactly as those functions.
#'
#' @param x,y LazyTensors (for `atan2()`, one of them may be a number); for
#'   `square()` ... `sinxdivx()`, also ordinary numeric vectors or matrices.
#' @param object a LazyTensor (for `step()`; other objects go to
#'   [stats::step()]).
#' @param scope,scale,direction,trace,keep,steps,k,... arguments of
#'   [stats::step()], unused for LazyTensors.
#' @return A [LazyTensor-class] (for an ordinary numeric `x`: a numeric
#'   vector or matrix shaped as `x`).
#' @name LazyTensor-unary
#' @examples
#' x_i <- Vi(matrix(rnorm(12), 4, 3))
#' square(x_i)
#' square(2)
#' inv(matrix(1:4, 2))
#' sinxdivx(c(0, pi / 2))
#' relu(x_i)
#' step(x_i)
#' xlogx(abs(x_i))
#' atan2(x_i, 1)
#' atan2(1, 2) # base R is unchanged
NULL

# On an ordinary numeric (or logical) vector, matrix or array, the functions
# below compute in R and keep the attributes (dim, names): square(2) is 4,
# as in rkeops 2.x.
lt_numeric_arg <- function(x) {
  !lt_is(x) && (is.numeric(x) || is.logical(x)) && !is.complex(x)
}

lt_num_apply <- function(x, f) {
  out <- f(as.double(x))
  attributes(out) <- attributes(x)
  if (is.logical(x) || is.integer(x)) storage.mode(out) <- "double"
  out
}

#' @rdname LazyTensor-unary
#' @export
square <- function(x) {
  if (lt_numeric_arg(x)) return(lt_num_apply(x, function(v) v * v))
  lt_unary("Square", x)
}

#' @rdname LazyTensor-unary
#' @export
rsqrt <- function(x) {
  if (lt_numeric_arg(x))
    return(lt_num_apply(x, function(v) ifelse(v == 0, 0, 1 / sqrt(v))))
  lt_unary("Rsqrt", x)
}

#' @rdname LazyTensor-unary
#' @export
inv <- function(x) {
  if (lt_numeric_arg(x)) return(lt_num_apply(x, function(v) 1 / v))
  lt_unary("Inv", x)
}

#' @rdname LazyTensor-unary
#' @export
relu <- function(x) {
  if (lt_numeric_arg(x))
    return(lt_num_apply(x, function(v) ifelse(v < 0, 0, v)))
  lt_unary("ReLU", x)
}

#' @rdname LazyTensor-unary
#' @export
xlogx <- function(x) {
  if (lt_numeric_arg(x))
    return(lt_num_apply(x, function(v) ifelse(v == 0, 0, v * log(v))))
  lt_unary("XLogX", x)
}

#' @rdname LazyTensor-unary
#' @export
sinxdivx <- function(x) {
  if (lt_numeric_arg(x))
    return(lt_num_apply(x, function(v) ifelse(v == 0, 1, sin(v) / v)))
  lt_unary("SinXDivX", x)
}

#' @importFrom stats step
NULL

# step: an S4 generic made from stats::step (the implicit generic, so that
# attaching rkeops reports no masking), with a method for LazyTensors.
setGeneric("step")

#' @rdname LazyTensor-unary
#' @export
setMethod("step", "LazyTensor", function(object, scope, scale, direction,
                                         trace, keep, steps, k, ...) {
  lt_unary("Step", object)
})

setGeneric("atan2")

#' @rdname LazyTensor-unary
#' @export
setMethod("atan2", signature(y = "LazyTensor", x = "LazyTensor"),
  function(y, x) lt_elementwise("Atan2", y, x))

#' @rdname LazyTensor-unary
#' @export
setMethod("atan2", signature(y = "LazyTensor", x = "ANY"),
  function(y, x) lt_elementwise("Atan2", y, x))

#' @rdname LazyTensor-unary
#' @export
setMethod("atan2", signature(y = "ANY", x = "LazyTensor"),
  function(y, x) lt_elementwise("Atan2", y, x))

# ---- clamping, conditions, modulo ------------------------------------------

#' Clamping, conditional and modulo operations
#'
#' `clamp(x, a, b)` is `min(max(x, a), b)` elementwise (`a`, `b` LazyTensors
#' or numbers, broadcast), `clampint(x, a, b)` the same with whole numbers
#' `a`, `b`. `ifelse(test, yes, no)` is `yes` where `test >= 0` and `no`
#' elsewhere (KeOps' `IfElse`: note that the test is the sign of a number, so
#' write `ifelse(x - y, a, b)` for "a where x >= y"). `mod(x, a, b = 0)` is
#' `x - a * floor((x - b) / a)`, in `[b, b + a)`.
#'
#' `ifelse()` is an S4 generic whose default is [base::ifelse()]: on
#' ordinary vectors it behaves exactly as base R.
#'
#' @param x,test a LazyTensor.
#' @param a,b,yes,no LazyTensors or numbers (whole numbers for `clampint()`).
#' @return A [LazyTensor-class].
#' @name LazyTensor-clamp
#' @examples
#' x_i <- Vi(matrix(rnorm(12), 4, 3))
#' clamp(x_i, -0.5, 0.5)
#' clampint(x_i, -1, 1)
#' ifelse(x_i, 1, -1)
#' mod(x_i, 2, -1)
#' ifelse(c(TRUE, FALSE), 1, 2) # base R is unchanged
NULL

#' @rdname LazyTensor-clamp
#' @export
clamp <- function(x, a, b) {
  lt_check(x, "Clamp")
  lt_elementwise("Clamp", x, a, b)
}

#' @rdname LazyTensor-clamp
#' @export
clampint <- function(x, a, b) {
  lt_unary("ClampInt", x, c(lt_int(a, "a"), lt_int(b, "b")))
}

setGeneric("ifelse")

#' @rdname LazyTensor-clamp
#' @export
setMethod("ifelse", signature(test = "LazyTensor"), function(test, yes, no) {
  lt_elementwise("IfElse", test, yes, no)
})

#' @rdname LazyTensor-clamp
#' @export
mod <- function(x, a, b = 0) {
  lt_check(x, "Mod")
  lt_elementwise("Mod", x, a, b)
}

# ---- norms and distances ---------------------------------------------------

#' Norms, distances and inner-dimension reductions
#'
#' Functions of the inner dimension (the vector at each (i, j)):
#' `sqnorm2(x)` is the squared Euclidean norm, `norm2(x)` the norm,
#' `normalize(x)` is `x / norm2(x)`, `sqdist(x, y)` is `sqnorm2(x - y)`;
#' `weightedsqnorm(x, s)` is `sum(s * x^2)` for `s` of dimension 1 or
#' `dim(x)`, and `t(x) S x` for `s` of dimension `dim(x)^2` (the matrix `S`
#' stored by rows); `weightedsqdist(x, y, s)` is `weightedsqnorm(x - y, s)`.
#' In `sqdist()` and `weightedsqdist()` an operand of dimension 1 broadcasts
#' against the other (as in `x - y`). The weight comes **last** in the R
#' functions `weightedsqnorm(x, s)` and `weightedsqdist(x, y, s)` (as in
#' rkeops 2.x) but **first** in the formula language:
#' `WeightedSqNorm(s, x)` and `WeightedSqDist(s, x, y)` (the KeOps order);
#' the R functions write the formula in the KeOps order.
#' `sum(x)` (no `index`), `min(x)`, `max(x)`, `argmin(x)` and `argmax(x)`
#' reduce the inner dimension to dimension 1 (see [sum_reduction()] for the
#' reductions over i or j); `argmin(x)` and `argmax(x)` inside a formula
#' count from 0.
#'
#' @param x,y LazyTensors.
#' @param s a LazyTensor or a numeric vector (a parameter).
#' @return A [LazyTensor-class] of dimension 1 (`normalize()`: `dim(x)`).
#' @name LazyTensor-norms
#' @examples
#' x_i <- Vi(matrix(runif(12), 4, 3))
#' y_j <- Vj(matrix(runif(15), 5, 3))
#' sqdist(x_i, y_j)
#' norm2(x_i - y_j)
#' weightedsqdist(x_i, y_j, c(1, 2, 3))
#' sum(x_i * y_j)
NULL

#' @rdname LazyTensor-norms
#' @export
sqnorm2 <- function(x) lt_unary("SqNorm2", x, dim = 1L)

#' @rdname LazyTensor-norms
#' @export
norm2 <- function(x) lt_unary("Norm2", x, dim = 1L)

#' @rdname LazyTensor-norms
#' @export
normalize <- function(x) lt_unary("Normalize", x)

#' @rdname LazyTensor-norms
#' @export
sqdist <- function(x, y) {
  x <- lt_check(x, "SqDist")
  y <- lt_check(y, "SqDist")
  lt_bcast_dim(list(x, y), "sqdist", "SqDist") # a dimension-1 operand broadcasts
  lt_call("SqDist", list(x, y), dim = 1L)
}

lt_check_weight <- function(s, d, opname) {
  if (is.na(rk_op_dim("WeightedSqNorm", c(s@dim, d))))
    lt_dim_error(sprintf(paste0("%s: the weight has dimension %d; it must ",
                                "be 1, %d or %d"), opname, s@dim, d, d * d))
}

#' @rdname LazyTensor-norms
#' @export
weightedsqnorm <- function(x, s) {
  x <- lt_check(x, "WeightedSqNorm")
  s <- as_lt(s, "weight")
  lt_check_weight(s, x@dim, "weightedsqnorm")
  lt_call("WeightedSqNorm", list(s, x), dim = 1L)
}

#' @rdname LazyTensor-norms
#' @export
weightedsqdist <- function(x, y, s) {
  x <- lt_check(x, "WeightedSqDist")
  y <- lt_check(y, "WeightedSqDist")
  s <- as_lt(s, "weight")
  lt_check_weight(s, lt_bcast_dim(list(x, y), "weightedsqdist", "Subtract"),
                  "weightedsqdist")
  lt_call("WeightedSqDist", list(s, x, y), dim = 1L)
}

# ---- elements, slices, concatenation ---------------------------------------

#' Elements, slices and concatenation of the inner dimension
#'
#' Positions inside the inner dimension count from **0**, as in the formula
#' language (and in rkeops 2.x): `elem(x, m)` is the component `m` of `x`
#' (dimension 1); `elemT(x, m, n)` is the vector of dimension `n` with `x`
#' (dimension 1) at position `m` and zeros elsewhere; `extract(x, m, d)` is
#' the `d` components of `x` from position `m`; `extractT(x, m, d)` places
#' `x` at position `m` in a vector of zeros of dimension `d`;
#' `concat(x, y)` stacks the components of `x` and then of `y`;
#' `one_hot(x, D)` is the vector of dimension `D` with 1 at position
#' `round(x)` (`x` of dimension 1) and 0 elsewhere.
#'
#' @param x,y LazyTensors.
#' @param m,n,d,D whole numbers.
#' @return A [LazyTensor-class].
#' @name LazyTensor-elem
#' @examples
#' x_i <- Vi(matrix(runif(12), 4, 3))
#' elem(x_i, 0)
#' extract(x_i, 1, 2)
#' concat(x_i, elem(x_i, 2))
#' elemT(elem(x_i, 0), 1, 3)
#' extractT(x_i, 2, 5)
#' one_hot(Vi(c(0, 2, 1, 1)), 3)
NULL

#' @rdname LazyTensor-elem
#' @export
elem <- function(x, m) {
  x <- lt_check(x, "Elem")
  m <- lt_int(m, "m", 0)
  d <- lt_sized("Elem", list(x), m,
                sprintf("elem(x, m): m = %d is out of [0, %d)", m, x@dim))
  lt_unary("Elem", x, m, dim = d)
}

#' @rdname LazyTensor-elem
#' @export
elemT <- function(x, m, n) {
  x <- lt_check(x, "ElemT")
  m <- lt_int(m, "m", 0)
  n <- lt_int(n, "n", 1)
  d <- lt_sized("ElemT", list(x), c(n, m), msg = c(
    dimension = sprintf("elemT(x, m, n): x must have dimension 1, not %d",
                        x@dim),
    value = sprintf("elemT(x, m, n): m = %d is out of [0, %d)", m, n)))
  lt_unary("ElemT", x, c(n, m), dim = d)
}

#' @rdname LazyTensor-elem
#' @export
extract <- function(x, m, d) {
  x <- lt_check(x, "Extract")
  m <- lt_int(m, "m", 0)
  d <- lt_int(d, "d", 1)
  dd <- lt_sized("Extract", list(x), c(m, d),
                 sprintf(paste0("extract(x, m, d): components %d to %d are ",
                                "out of [0, %d)"), m, m + d - 1L, x@dim))
  lt_unary("Extract", x, c(m, d), dim = dd)
}

#' @rdname LazyTensor-elem
#' @export
extractT <- function(x, m, d) {
  x <- lt_check(x, "ExtractT")
  m <- lt_int(m, "m", 0)
  d <- lt_int(d, "d", 1)
  dd <- lt_sized("ExtractT", list(x), c(m, d),
                 sprintf(paste0("extractT(x, m, d): x (dimension %d) at ",
                                "position %d does not fit in dimension %d"),
                         x@dim, m, d))
  lt_unary("ExtractT", x, c(m, d), dim = dd)
}

#' @rdname LazyTensor-elem
#' @export
concat <- function(x, y) {
  x <- lt_check(x, "Concat")
  y <- lt_check(y, "Concat")
  lt_call("Concat", list(x, y), dim = lt_sized("Concat", list(x, y)))
}

#' @rdname LazyTensor-elem
#' @export
one_hot <- function(x, D) {
  x <- lt_check(x, "OneHot")
  D <- lt_int(D, "D", 1)
  d <- lt_sized("OneHot", list(x), D,
                sprintf("one_hot(x, D): x must have dimension 1, not %d",
                        x@dim))
  lt_unary("OneHot", x, D, dim = d)
}

# ---- small linear algebra on the inner dimension ---------------------------

#' Matrix-vector and tensor products on the inner dimension
#'
#' The inner dimension of a LazyTensor can hold a small matrix, stored by
#' rows. `matvecmult(m, v)`: `m` of dimension `p * n` (a `p x n` matrix) and
#' `v` of dimension `n` give the product of dimension `p`;
#' `vecmatmult(v, m)`: `v` of dimension `p` and `m` of dimension `p * n` give
#' `t(v) m`, of dimension `n`; `tensorprod(x, y)` is the outer product,
#' dimension `dim(x) * dim(y)`, with component `(a, b)` at `a * dim(y) + b`.
#'
#' @param m,v,x,y LazyTensors (`m` may be a numeric vector: a parameter).
#' @return A [LazyTensor-class].
#' @name LazyTensor-matvec
#' @examples
#' A <- Pm(c(1, 0, 0, 2, 1, 1))  # a 2 x 3 matrix stored by rows
#' v_i <- Vi(matrix(runif(12), 4, 3))
#' matvecmult(A, v_i)
#' vecmatmult(Vi(matrix(runif(8), 4, 2)), A)
#' tensorprod(v_i, v_i)
NULL

#' @rdname LazyTensor-matvec
#' @export
matvecmult <- function(m, v) {
  m <- as_lt(m, "matrix")
  v <- lt_check(v, "MatVecMult")
  d <- rk_op_dim("MatVecMult", c(m@dim, v@dim))
  if (is.na(d))
    lt_dim_error(sprintf(paste0("matvecmult(m, v): dim(m) = %d is not a ",
                                "multiple of dim(v) = %d"), m@dim, v@dim))
  lt_call("MatVecMult", list(m, v), dim = d)
}

#' @rdname LazyTensor-matvec
#' @export
vecmatmult <- function(v, m) {
  v <- lt_check(v, "VecMatMult")
  m <- as_lt(m, "matrix")
  d <- rk_op_dim("VecMatMult", c(v@dim, m@dim))
  if (is.na(d))
    lt_dim_error(sprintf(paste0("vecmatmult(v, m): dim(m) = %d is not a ",
                                "multiple of dim(v) = %d"), m@dim, v@dim))
  lt_call("VecMatMult", list(v, m), dim = d)
}

#' @rdname LazyTensor-matvec
#' @export
tensorprod <- function(x, y) {
  x <- as_lt(x)
  y <- as_lt(y)
  d <- rk_op_dim("TensorProd", c(x@dim, y@dim))
  if (is.na(d))
    lt_dim_error(sprintf("tensorprod(x, y): dimension %d x %d is too large",
                         x@dim, y@dim))
  lt_call("TensorProd", list(x, y), dim = d)
}

# ---- transpose and column selection ------------------------------------------

#' Transpose a LazyTensor, select components
#'
#' `t(K)` swaps the roles of i and j: the variables indexed by i become
#' indexed by j and conversely, so that `t(K)` is the N x M symbolic matrix
#' of entries `K[j, i]` (`sum(t(K), index = "i")` is `sum(K, index = "j")`).
#' The transposed variables are new variables: `K + t(K)` is the
#' symmetrised kernel when K is square.
#'
#' `x[, k]` selects components of the inner dimension, counting from **1**
#' as in R: `x_i[, 2]` is `elem(x_i, 1)`, `x_i[, 2:3]` is
#' `extract(x_i, 1, 2)`, and any other selection (`x[, c(3, 1)]`,
#' `x[, -1]`, a logical vector) is the concatenation of the selected
#' components in that order. Rows (i or j indices) cannot be selected from
#' a LazyTensor: subset the data before `Vi()` or `Vj()`; `x[i, ]` and
#' `x[k]` are errors of class `rkeops_input_error`.
#'
#' @param x a LazyTensor.
#' @param i must be missing.
#' @param j the components to keep: positive whole numbers (1-based),
#'   negative ones to drop, or a logical vector.
#' @param ...,drop unused.
#' @return A [LazyTensor-class].
#' @name LazyTensor-transpose
#' @examples
#' x_i <- Vi(matrix(runif(12), 4, 3))
#' y_j <- Vj(matrix(runif(15), 5, 3))
#' K <- exp(-sqdist(x_i, y_j))
#' dim(t(K))
#' sum(t(K), index = "i")   # = sum(K, index = "j")
#' x_i[, 2]                 # elem(x_i, 1)
#' x_i[, 2:3]               # extract(x_i, 1, 2)
#' x_i[, c(3, 1)]
NULL

#' @rdname LazyTensor-transpose
#' @export
setMethod("t", "LazyTensor", function(x) {
  map <- list()
  for (v in x@vars) {
    if (v$cat %in% c("i", "j"))
      map[[as.character(v$id)]] <- list(cat = if (v$cat == "i") "j" else "i",
                                        rows = v$rows)
  }
  lt_replace_vars(x, map)
})

#' @rdname LazyTensor-transpose
#' @export
setMethod("[", "LazyTensor", function(x, i, j, ..., drop = TRUE) {
  # x[k] (no comma) has one index fewer in its call than x[, k]
  if (!missing(i) || length(sys.call()) - (!missing(drop)) < 4L)
    lt_abort(paste0("the rows (i or j indices) of a LazyTensor cannot be ",
                    "selected: subset the data before Vi() or Vj(); select ",
                    "components with x[, k]"), "rkeops_input_error")
  if (missing(j)) return(x)
  d <- x@dim
  ok <- (is.numeric(j) || is.logical(j)) && !anyNA(j) &&
    (is.logical(j) || all(j == round(j)))
  if (ok && is.logical(j) && length(j) != d) ok <- FALSE
  if (ok && is.numeric(j)) ok <- all(j >= 1 & j <= d) || all(j <= -1 & j >= -d)
  if (!ok)
    lt_dim_error(sprintf(paste0("x[, j]: j must select components among 1 ",
                                "to %d (whole numbers, all positive or all ",
                                "negative, or %d logical values)"), d, d))
  cols <- seq_len(d)[j]
  if (!length(cols))
    lt_dim_error("x[, j] selects no component")
  # runs of consecutive components: one Elem or Extract each
  starts <- c(1L, which(diff(cols) != 1L) + 1L)
  ends <- c(starts[-1L] - 1L, length(cols))
  out <- NULL
  for (r in seq_along(starts)) {
    a <- cols[starts[r]]
    len <- ends[r] - starts[r] + 1L
    piece <- if (len == d) x else if (len == 1L) elem(x, a - 1L) else
      extract(x, a - 1L, len)
    out <- if (is.null(out)) piece else concat(out, piece)
  }
  out
})

# ---- what a LazyTensor does not do --------------------------------------------

# Base functions that would fail with a base error about an S4 object (or
# silently give a meaningless answer): a classed rkeops error instead.
lt_unsupported <- function(what, hint = NULL) {
  force(what)
  function(x, ...) {
    lt_abort(paste0(what, " is not available for a LazyTensor (a symbolic ",
                    "matrix: it is computed only by a reduction such as ",
                    "sum(K, index = \"j\") or K %*% B; as.matrix(K) ",
                    "materialises a small one)",
                    if (!is.null(hint)) paste0("; ", hint) else ""),
             "rkeops_op_error")
  }
}

#' Base functions that a LazyTensor does not support
#'
#' A LazyTensor is a symbolic matrix: it is never stored, and only a
#' reduction (`sum(K, index = "j")`, `K %*% B`, `argmin()`, ...) or
#' [as.matrix()] (for a small one) computes it. Base functions that would
#' need its entries (`as.vector()`, `as.numeric()`, `diag()`,
#' `crossprod()`, `determinant()`, `det()`, `chol()`, `qr()`, `svd()`) and the
#' complex functions (`Re()`, `Im()`, `Mod()`, `Arg()`, `Conj()`) raise an
#' error of class `rkeops_op_error` (an `rkeops_error`) that says so,
#' instead of a base error about an S4 object. ([solve()] for a LazyTensor
#' is documented on its own page.)
#'
#' @param x,z a LazyTensor.
#' @param mode,nrow,ncol,names,y,logarithm,nu,nv,... unused.
#' @return Does not return: an error of class `rkeops_op_error`.
#' @name LazyTensor-unsupported
#' @examples
#' K <- exp(-sqdist(Vi(matrix(runif(6), 3, 2)), Vj(matrix(runif(8), 4, 2))))
#' tryCatch(as.vector(K), rkeops_error = function(e) conditionMessage(e))
#' tryCatch(Re(K), rkeops_op_error = function(e) class(e))
NULL

#' @rdname LazyTensor-unsupported
#' @export
setMethod("Complex", "LazyTensor", function(z) {
  lt_abort(sprintf(paste0("%s() is not available for LazyTensors: rkeops ",
                          "computes with real numbers only"), .Generic),
           "rkeops_op_error")
})

setGeneric("as.vector")
setGeneric("diag")
setGeneric("crossprod")
setGeneric("tcrossprod")
setGeneric("determinant")
setGeneric("det")
setGeneric("chol")
setGeneric("qr")
setGeneric("svd")

#' @rdname LazyTensor-unsupported
#' @export
setMethod("as.vector", "LazyTensor", function(x, mode = "any") {
  lt_unsupported("as.vector()")(x)
})

#' @rdname LazyTensor-unsupported
#' @export
setMethod("as.numeric", "LazyTensor", lt_unsupported("as.numeric()"))
#' @rdname LazyTensor-unsupported
#' @export
setMethod("as.integer", "LazyTensor", lt_unsupported("as.integer()"))
#' @rdname LazyTensor-unsupported
#' @export
setMethod("as.logical", "LazyTensor", lt_unsupported("as.logical()"))
#' @rdname LazyTensor-unsupported
#' @export
setMethod("as.character", "LazyTensor", lt_unsupported("as.character()"))
#' @rdname LazyTensor-unsupported
#' @export
setMethod("diag", "LazyTensor", function(x, nrow, ncol, names = TRUE) {
  lt_unsupported("diag()")(x)
})
#' @rdname LazyTensor-unsupported
#' @export
setMethod("crossprod", "LazyTensor", function(x, y = NULL) {
  lt_unsupported("crossprod()", "t(K) %*% B is sum(K * Vi(B), index = \"i\")")(x)
})
#' @rdname LazyTensor-unsupported
#' @export
setMethod("tcrossprod", "LazyTensor", function(x, y = NULL) {
  lt_unsupported("tcrossprod()")(x)
})
#' @rdname LazyTensor-unsupported
#' @export
setMethod("determinant", "LazyTensor", function(x, logarithm = TRUE, ...) {
  lt_unsupported("determinant()")(x)
})
#' @rdname LazyTensor-unsupported
#' @export
setMethod("det", "LazyTensor", function(x, ...) {
  lt_unsupported("det()")(x)
})
#' @rdname LazyTensor-unsupported
#' @export
setMethod("chol", "LazyTensor", lt_unsupported("chol()"))
#' @rdname LazyTensor-unsupported
#' @export
setMethod("qr", "LazyTensor", lt_unsupported("qr()"))
#' @rdname LazyTensor-unsupported
#' @export
# the defaults of base::svd refer to its own locals (n, p): the method
# raises its error before any of them would be used
setMethod("svd", "LazyTensor", function(x, nu = 0L, nv = 0L) {
  lt_unsupported("svd()")(x)
})
