# lazytensor-reduce.R -- reductions of LazyTensors over i or j, computed by
# the engine.
#
# A reduction writes `Name_Reduction(f, [K or weight,] axis)` (axis 1 = over
# j, one row per i; axis 0 = over i), renames the variables v0, v1, ... in
# order of appearance (lt_canonical(), so equal models share one compiled
# kernel), and calls rk_reduce() (R/keops_kernel.R), which parses, caches and
# runs it.  lt_reduction_parts() is the one place that turns a LazyTensor into
# (formula, args, input); the gradient front end (grad(), another file) is
# meant to build on it: it wraps the formula in Grad(...) before the call.
#' @include lazytensor-class.R lazytensor-ops.R
NULL

lt_check_index <- function(index) {
  if (!is.character(index) || length(index) != 1L || is.na(index) ||
      !index %in% c("i", "j"))
    lt_abort(sprintf("`index` must be \"i\" or \"j\", not %s",
                     if (is.atomic(index))
                       paste(deparse(index), collapse = " ")
                     else paste("an object of class", class(index)[1L])),
             "rkeops_index_error", call = NULL)
  index
}

# The pieces of a reduction: formula string, args declarations, input data,
# and the number of output rows.  `red` is a reduction name of src/red.def.
lt_reduction_parts <- function(x, red, index, K = NULL, weight = NULL) {
  x <- lt_check(x, red)
  index <- lt_check_index(index)
  other <- if (index == "i") "j" else "i"
  args <- list(x)
  mid <- character()
  if (!is.null(weight)) {
    weight <- as_lt(weight, "weight")
    args <- c(args, weight)
    mid <- weight@formula
  }
  if (!is.null(K)) mid <- as.character(K)
  body <- paste(c(x@formula, mid, if (index == "i") "0" else "1"),
                collapse = ", ")
  whole <- lt_make(paste0(red, "_Reduction(", body, ")"), args, x@dim, red)
  n_red <- if (index == "i") whole@M else whole@N
  n_out <- if (index == "i") whole@N else whole@M
  if (is.na(n_red))
    lt_abort(sprintf(paste0("cannot reduce over %s: no variable of the ",
                            "formula is indexed by %s (use V%s())"),
                     index, index, index), "rkeops_index_error", call = NULL)
  if (is.na(n_out))
    lt_abort(sprintf(paste0("the reduction over %s has one row per %s, but ",
                            "no variable of the formula is indexed by %s ",
                            "(use V%s())"), index, other, other, other),
             "rkeops_index_error", call = NULL)
  parts <- lt_canonical(whole)
  parts$nrow <- n_out
  parts$nred <- n_red
  parts
}

# Run a reduction; `split` > 0 splits the columns of the result into values
# and indices (Min_ArgMin, KMin_ArgKMin ...).
lt_reduce <- function(x, red, index, K = NULL, weight = NULL, split = 0L) {
  p <- lt_reduction_parts(x, red, index, K, weight)
  res <- rk_reduce(p$formula, p$args, p$input, sum_scheme = "auto")
  if (!is.numeric(res) || split == 0L) return(res)
  list(values = res[, seq_len(split), drop = FALSE],
       indices = res[, split + seq_len(split), drop = FALSE])
}

# TRUE when `index` asks for no reduction over i or j (NA).
lt_no_index <- function(index) {
  is.atomic(index) && length(index) == 1L && is.na(index)
}

# Arguments of sum(), min(), max() on a LazyTensor: `index` by name or as the
# first other argument.
lt_dots_index <- function(...) {
  dots <- list(...)
  if (!length(dots)) return(NA)
  nm <- names(dots)
  if (is.null(nm)) nm <- rep("", length(dots))
  i <- which(nm == "index")
  if (!length(i)) i <- which(nm == "")[1L]
  if (length(dots) > 1L || is.na(i))
    lt_abort("a LazyTensor reduction takes one more argument: `index`",
             "rkeops_input_error", call = NULL)
  idx <- dots[[i]]
  if (is.null(idx) || (is.atomic(idx) && length(idx) == 1L && is.na(idx)))
    return(NA)
  if (!is.character(idx))
    lt_abort(paste0("the second argument of sum(), min() or max() on a ",
                    "LazyTensor is `index`: \"i\", \"j\" or NA"),
             "rkeops_index_error")
  idx
}

lt_K <- function(K, x, index) {
  K <- lt_int(K, "K", 1)
  n <- if (identical(index, "i")) x@M else x@N
  if (!is.na(n) && K > n)
    lt_abort(sprintf("K = %d is larger than the %d indices reduced", K, n),
             "rkeops_input_error", call = NULL)
  K
}

# ---- sum, min, max (methods of the base primitives) -------------------------

#' Reductions of LazyTensors over i or j
#'
#' A reduction computes, for each i (with `index = "j"`) or each j (with
#' `index = "i"`), a reduction over the other index of the symbolic matrix
#' `x`, and returns an ordinary numeric matrix with one row per output index
#' and one column per output component:
#' `sum`, `min`, `max` (dimension of `x`), `argmin`, `argmax` (indices),
#' `min_argmin`, `max_argmax` (a list of `values` and `indices`),
#' `Kmin(x, K, index)` (the K smallest values, in increasing order; for
#' `x` of dimension `d`, column `k * d + c` holds component `c` of the k-th
#' smallest), `argKmin` (their indices), `Kmin_argKmin` (a list of both),
#' `logsumexp(x, index, weight = NULL)` (`log(sum(exp(x)))`, computed
#' stably, for `x` of dimension 1; with a `weight` `w`,
#' `log(sum(exp(x) * w))`), and `sumsoftmaxweight(x, index, weight)`
#' (`sum(exp(x) * w) / sum(exp(x))`, the average of `w` under the softmax of
#' `x`). Each is also available as `name_reduction()`. Indices count from
#' **1** (ties go to the smallest index).
#'
#' `sum(x)`, `min(x)` and `max(x)` without `index` are symbolic: they reduce
#' the inner dimension and return a LazyTensor (see [sqnorm2()]); on other
#' objects `sum`, `min` and `max` are the base functions, unchanged.
#'
#' `index = "j"` needs a variable indexed by j ([Vj()]) to reduce over, and
#' one indexed by i for the rows of the result (and conversely); otherwise
#' the error has class `rkeops_index_error` (an `rkeops_error`). With the
#' option `formula_only` (see `set_rkeops_options()`), the formula string is
#' returned instead of the result.
#'
#' @param x a LazyTensor.
#' @param index `"i"` (reduce over i: one row per j) or `"j"` (reduce over
#'   j: one row per i); `NA` (or missing) for the symbolic `sum`, `min`,
#'   `max`, `argmin`, `argmax` of the inner dimension.
#' @param K a whole number, how many of the smallest values to keep.
#' @param weight a LazyTensor (or a number) of any dimension, the weights.
#' @param ... for `sum`, `min`, `max`: `index`, by name or position.
#' @param na.rm unused (argument of the base generics).
#' @return A numeric matrix (a list of two matrices for `min_argmin`,
#'   `max_argmax`, `Kmin_argKmin`), or a LazyTensor when `index` is `NA`.
#' @name sum_reduction
#' @examples
#' X <- matrix(runif(20), 10, 2)
#' Y <- matrix(runif(8), 4, 2)
#' x_i <- Vi(X)
#' y_j <- Vj(Y)
#' D_ij <- sqdist(x_i, y_j)
#' sum(exp(-D_ij), index = "j")      # one row per i
#' argmin(D_ij, "j")                 # nearest y for each x
#' Kmin_argKmin(D_ij, K = 2, index = "i")
#' logsumexp(-D_ij, "j")
#' sumsoftmaxweight(-D_ij, "j", y_j) # softmax-weighted average of the y
#' sum(1:3)                          # base R is unchanged
NULL

#' @rdname sum_reduction
#' @export
setMethod("sum", "LazyTensor", function(x, ..., na.rm = FALSE) {
  index <- lt_dots_index(...)
  if (lt_no_index(index)) return(lt_unary("Sum", x, dim = 1L))
  lt_reduce(x, "Sum", index)
})

#' @rdname sum_reduction
#' @export
setMethod("min", "LazyTensor", function(x, ..., na.rm = FALSE) {
  index <- lt_dots_index(...)
  if (lt_no_index(index)) return(lt_unary("Min", x, dim = 1L))
  lt_reduce(x, "Min", index)
})

#' @rdname sum_reduction
#' @export
setMethod("max", "LazyTensor", function(x, ..., na.rm = FALSE) {
  index <- lt_dots_index(...)
  if (lt_no_index(index)) return(lt_unary("Max", x, dim = 1L))
  lt_reduce(x, "Max", index)
})

#' @rdname sum_reduction
#' @export
sum_reduction <- function(x, index) lt_reduce(x, "Sum", index)

#' @rdname sum_reduction
#' @export
min_reduction <- function(x, index) lt_reduce(x, "Min", index)

#' @rdname sum_reduction
#' @export
max_reduction <- function(x, index) lt_reduce(x, "Max", index)

#' @rdname sum_reduction
#' @export
argmin <- function(x, index = NA) {
  if (lt_no_index(index))
    return(lt_unary("ArgMin", x, dim = 1L))
  lt_reduce(x, "ArgMin", index)
}

#' @rdname sum_reduction
#' @export
argmin_reduction <- function(x, index) lt_reduce(x, "ArgMin", index)

#' @rdname sum_reduction
#' @export
argmax <- function(x, index = NA) {
  if (lt_no_index(index))
    return(lt_unary("ArgMax", x, dim = 1L))
  lt_reduce(x, "ArgMax", index)
}

#' @rdname sum_reduction
#' @export
argmax_reduction <- function(x, index) lt_reduce(x, "ArgMax", index)

#' @rdname sum_reduction
#' @export
min_argmin <- function(x, index) {
  lt_reduce(x, "Min_ArgMin", index, split = lt_check(x, "Min_ArgMin")@dim)
}

#' @rdname sum_reduction
#' @export
min_argmin_reduction <- function(x, index) min_argmin(x, index)

#' @rdname sum_reduction
#' @export
max_argmax <- function(x, index) {
  lt_reduce(x, "Max_ArgMax", index, split = lt_check(x, "Max_ArgMax")@dim)
}

#' @rdname sum_reduction
#' @export
max_argmax_reduction <- function(x, index) max_argmax(x, index)

#' @rdname sum_reduction
#' @export
Kmin <- function(x, K, index) {
  x <- lt_check(x, "KMin")
  lt_reduce(x, "KMin", index, K = lt_K(K, x, index))
}

#' @rdname sum_reduction
#' @export
Kmin_reduction <- function(x, K, index) Kmin(x, K, index)

#' @rdname sum_reduction
#' @export
argKmin <- function(x, K, index) {
  x <- lt_check(x, "ArgKMin")
  lt_reduce(x, "ArgKMin", index, K = lt_K(K, x, index))
}

#' @rdname sum_reduction
#' @export
argKmin_reduction <- function(x, K, index) argKmin(x, K, index)

#' @rdname sum_reduction
#' @export
Kmin_argKmin <- function(x, K, index) {
  x <- lt_check(x, "KMin_ArgKMin")
  K <- lt_K(K, x, index)
  lt_reduce(x, "KMin_ArgKMin", index, K = K, split = K * x@dim)
}

#' @rdname sum_reduction
#' @export
Kmin_argKmin_reduction <- function(x, K, index) Kmin_argKmin(x, K, index)

#' @rdname sum_reduction
#' @export
logsumexp <- function(x, index, weight = NULL) {
  x <- lt_check(x, "LogSumExp")
  if (x@dim != 1L)
    lt_dim_error(sprintf("logsumexp(x): x must have dimension 1, not %d",
                         x@dim), call = NULL)
  if (is.null(weight)) return(lt_reduce(x, "LogSumExp", index))
  lt_reduce(x, "LogSumExpWeight", index, weight = weight)
}

#' @rdname sum_reduction
#' @export
logsumexp_reduction <- function(x, index, weight = NULL) {
  logsumexp(x, index, weight)
}

#' @rdname sum_reduction
#' @export
sumsoftmaxweight <- function(x, index, weight) {
  x <- lt_check(x, "SumSoftMaxWeight")
  if (x@dim != 1L)
    lt_dim_error(sprintf("sumsoftmaxweight(x): x must have dimension 1, not %d",
                         x@dim), call = NULL)
  lt_reduce(x, "SumSoftMaxWeight", index, weight = weight)
}

#' @rdname sum_reduction
#' @export
sumsoftmaxweight_reduction <- function(x, index, weight) {
  sumsoftmaxweight(x, index, weight)
}

# ---- K %*% B -----------------------------------------------------------------

#' Product of a LazyTensor with an ordinary matrix
#'
#' `K %*% B`, with `K` a LazyTensor (an M x N symbolic matrix) and `B` a
#' numeric vector of length N or a numeric matrix with N rows (one row per
#' j), computes `sum_j K_ij B_j`: an M x `ncol(B)` numeric matrix (for `K`
#' of dimension 1). It is `sum(K * Vj(B), index = "j")`.
#'
#' @param x a LazyTensor indexed by j (and by i).
#' @param y a numeric vector or matrix with one row per j.
#' @return A numeric matrix with one row per i.
#' @name LazyTensor-matmult
#' @examples
#' x_i <- Vi(matrix(runif(20), 10, 2))
#' y_j <- Vj(matrix(runif(8), 4, 2))
#' B <- matrix(runif(12), 4, 3)
#' exp(-sqdist(x_i, y_j)) %*% B
NULL

#' @rdname LazyTensor-matmult
#' @export
setMethod("%*%", signature(x = "LazyTensor", y = "ANY"), function(x, y) {
  if (is(y, "LazyTensor"))
    lt_abort(paste0("K %*% B needs an ordinary numeric matrix B; for two ",
                    "LazyTensors, write sum(x * y, index = \"j\")"),
             "rkeops_input_error", call = NULL)
  if (is.na(x@N))
    lt_abort("K %*% B: K has no variable indexed by j to sum over",
             "rkeops_index_error", call = NULL)
  B <- lt_as_data_matrix(y, "B in K %*% B")
  if (nrow(B) != x@N)
    lt_dim_error(sprintf(paste0("K %%*%% B: K has %d columns (j indices) but ",
                                "B has %d rows"), x@N, nrow(B)), call = NULL)
  sum(x * Vj(B), index = "j")
})

# ---- gradients ---------------------------------------------------------------
# grad(f, gradin, opstr = "Sum", var, index) (API.md section 2) lives in
# R/lazytensor-grad.R (the autodiff front end); it builds the reduction with
# lt_reduction_parts() above, so that a gradient and its reduction share the
# same canonical formula and variable order.
