# lazytensor-compare.R -- R's comparison operators on LazyTensors.
#
# `==`, `!=`, `<`, `<=`, `>`, `>=` map to the comparison operations of the
# formula language (src/ops.def: Equal, NotEqual, LessThan, LessOrEqual,
# GreaterThan, GreaterOrEqual, as in keopscore), elementwise with the
# broadcast of a dimension-1 operand, values 1 (true) and 0 (false).  The
# S4 methods of the Compare group are set in lazytensor-ops.R and call
# lt_compare().
#' @include lazytensor-class.R lazytensor-ops.R
NULL

lt_compare_ops <- c("==" = "Equal", "!=" = "NotEqual", "<" = "LessThan",
                    "<=" = "LessOrEqual", ">" = "GreaterThan",
                    ">=" = "GreaterOrEqual")

lt_compare <- function(op, e1, e2) {
  name <- lt_compare_ops[op]
  if (is.na(name))
    lt_abort(sprintf("the operator %s is not available for LazyTensors", op),
             "rkeops_op_error")
  lt_elementwise(unname(name), e1, e2)
}

#' Comparisons of LazyTensors
#'
#' `x == y`, `x != y`, `x < y`, `x <= y`, `x > y` and `x >= y`, with `x` or
#' `y` a LazyTensor (the other a LazyTensor, a number or a numeric vector,
#' which becomes a parameter), are symbolic and elementwise: each component
#' is 1 where the comparison is true and 0 where it is false.  They are the
#' operations `Equal`, `NotEqual`, `LessThan`, `LessOrEqual`, `GreaterThan`
#' and `GreaterOrEqual` of the formula language (the keopscore names), with
#' the broadcast of a dimension-1 operand as for `+`.  A NaN operand makes
#' every comparison 0 except `!=`, which is 1 (C semantics, as in KeOps; R
#' would give `NA`).  Their derivative is zero.
#'
#' Masks are products with a comparison: with `i_i <- Vi(seq_len(M))` and
#' `j_j <- Vj(seq_len(N))` holding the indices, `(i_i != j_j) * K` is `K`
#' with a zero diagonal (leave-one-out sums), `(i_i < j_j) * K` its strict
#' upper triangle.
#'
#' @name LazyTensor-compare
#' @seealso [LazyTensor-arith], [ifelse()] on LazyTensors.
#' @examples
#' x <- matrix(runif(8), 4, 2)
#' x_i <- Vi(x)
#' y_j <- Vj(x)
#' K <- exp(-sqdist(x_i, y_j))
#' i_i <- Vi(1:4)
#' j_j <- Vj(1:4)
#' # leave-one-out kernel sums: sum over j != i
#' loo <- sum((i_i != j_j) * K, index = "j")
#' Kd <- exp(-as.matrix(dist(x))^2)
#' max(abs(loo - (rowSums(Kd) - 1)))
#' # how many y_j are within distance 0.5 of each x_i
#' sum(sqdist(x_i, y_j) <= 0.25, index = "j")
NULL
