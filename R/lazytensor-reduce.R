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
             "rkeops_index_error")
  index
}

# The pieces of a reduction: formula string, args declarations, input data,
# the number of output rows and the row names of the result (those of the
# first variable, in order of appearance, indexed by the output index that
# has row names).  `red` is a reduction name of src/red.def.
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
  if (!is.null(K)) mid <- as.character(as.integer(K))
  body <- paste(c(x@formula, mid, if (index == "i") "0" else "1"),
                collapse = ", ")
  whole <- lt_make(paste0(red, "_Reduction(", body, ")"), args, x@dim, red)
  n_red <- if (index == "i") whole@M else whole@N
  n_out <- if (index == "i") whole@N else whole@M
  # an index that no variable carries has size 1 (as in KeOps)
  if (is.na(n_red)) n_red <- 1
  if (is.na(n_out)) n_out <- 1
  parts <- lt_canonical(whole)
  parts$nrow <- n_out
  parts$nred <- n_red
  parts$rows <- lt_rows_of(parts$vars, other, n_out)
  parts
}

# Row names carried by the variables of category `cat` (the first that has
# them), NULL when none.
lt_rows_of <- function(vars, cat, n) {
  for (v in vars) {
    if (identical(v$cat, cat) && !is.null(v$rows) && length(v$rows) == n)
      return(v$rows)
  }
  NULL
}

lt_set_rows <- function(m, rows) {
  if (!is.null(rows) && is.matrix(m) && nrow(m) == length(rows))
    rownames(m) <- rows
  m
}

# The summation scheme of a LazyTensor sum: the argument, else the option
# `sum_scheme` (set_rkeops_options()).
lt_sum_scheme <- function(sum_scheme) {
  if (is.null(sum_scheme)) sum_scheme <- get_rkeops_options("sum_scheme")
  if (!is.character(sum_scheme) || length(sum_scheme) != 1L ||
      is.na(sum_scheme) || !sum_scheme %in% names(rk_sum_schemes))
    lt_abort(sprintf("`sum_scheme` must be one of %s",
                     paste0("\"", names(rk_sum_schemes), "\"",
                            collapse = ", ")),
             "rkeops_value_error")
  sum_scheme
}

# arg-reductions are computed with their values (one kernel), so that an
# index whose value is NaN (every value of the row is NaN: the engine's
# Min/ArgMin skip NaN) is NA rather than a valid-looking index
lt_arg_companion <- c(ArgMin = "Min_ArgMin", ArgMax = "Max_ArgMax",
                      ArgKMin = "KMin_ArgKMin")

# Run a reduction; `split` > 0 splits the columns of the result into values
# and indices (Min_ArgMin, KMin_ArgKMin ...).  Index columns are integer
# matrices, NA where the value is NaN; the rows carry the row names of the
# output index's data.
lt_reduce <- function(x, red, index, K = NULL, weight = NULL, split = 0L,
                      sum_scheme = "auto") {
  p <- lt_reduction_parts(x, red, index, K, weight)
  if (isTRUE(get_rkeops_options("formula_only"))) return(p$formula)
  comp <- lt_arg_companion[red]
  if (!is.na(comp)) {
    q <- lt_reduction_parts(x, unname(comp), index, K, weight)
    res <- rk_reduce(q$formula, q$args, q$input, sum_scheme = sum_scheme)
    n <- ncol(res) %/% 2L
    idx <- lt_index_matrix(res[, n + seq_len(n), drop = FALSE],
                           res[, seq_len(n), drop = FALSE])
    return(lt_set_rows(idx, p$rows))
  }
  res <- rk_reduce(p$formula, p$args, p$input, sum_scheme = sum_scheme)
  if (!is.numeric(res)) return(res)
  if (split == 0L) return(lt_set_rows(res, p$rows))
  vals <- res[, seq_len(split), drop = FALSE]
  list(values = lt_set_rows(vals, p$rows),
       indices = lt_set_rows(
         lt_index_matrix(res[, split + seq_len(split), drop = FALSE], vals),
         p$rows))
}

lt_index_matrix <- function(idx, vals) {
  idx[is.na(vals)] <- NA
  storage.mode(idx) <- "integer"
  idx
}

# TRUE when `index` asks for no reduction over i or j (NA).
lt_no_index <- function(index) {
  is.atomic(index) && length(index) == 1L && is.na(index)
}

# Arguments of sum(), min(), max(), ... on a LazyTensor: `index` by name or
# as the first other argument, and `sum_scheme` by name.
lt_dots_args <- function(...) {
  dots <- list(...)
  nm <- names(dots)
  if (is.null(nm)) nm <- rep("", length(dots))
  scheme <- NULL
  if ("sum_scheme" %in% nm) {
    scheme <- dots[[which(nm == "sum_scheme")[1L]]]
    keep <- nm != "sum_scheme"
    dots <- dots[keep]
    nm <- nm[keep]
  }
  out <- list(index = NA, sum_scheme = scheme)
  if (!length(dots)) return(out)
  i <- which(nm == "index")
  if (!length(i)) i <- which(nm == "")[1L]
  if (length(dots) > 1L || is.na(i))
    lt_abort(paste0("a LazyTensor reduction takes `index` and, for sums, ",
                    "`sum_scheme`; got ",
                    paste0("`", ifelse(nzchar(nm), nm, "<unnamed>"), "`",
                           collapse = ", ")),
             "rkeops_input_error")
  idx <- dots[[i]]
  if (is.null(idx) || (is.atomic(idx) && length(idx) == 1L && is.na(idx)))
    return(out)
  if (!is.character(idx))
    lt_abort(paste0("the second argument of sum(), min() or max() on a ",
                    "LazyTensor is `index`: \"i\", \"j\" or NA"),
             "rkeops_index_error")
  out$index <- idx
  out
}

# K larger than the number of points reduced is allowed: the values are
# padded with Inf and the indices with NA.  K * dim(x) is bounded by the
# engine (rk_red_outdim): asked here so the error comes before any formula.
lt_K <- function(K, x, red) {
  K <- lt_int(K, "K", 1)
  d <- rk_red_dim(red, x@dim, 1, K)
  if (is.na(d))
    lt_abort(attr(d, "message"), if (identical(attr(d, "kind"), "dimension"))
      "rkeops_dim_error" else "rkeops_value_error")
  K
}

# A reduction whose formula must have dimension 1 (red.def F1: LogSumExp,
# SumSoftMaxWeight): the engine's rule, LazyTensor's wording (`msg`,
# default "<what>(x): x must have dimension 1, not <d>").
lt_red_f1 <- function(x, red, what, msg = NULL) {
  if (identical(attr(rk_red_dim(red, x@dim), "kind"), "dimension"))
    lt_dim_error(if (is.null(msg))
      sprintf("%s(x): x must have dimension 1, not %d", what, x@dim) else msg)
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
#' The base `Summary` functions work on LazyTensors (one S4 method for the
#' group): `sum`, `min`, `max` as above; `range(x, index = )` gives the
#' columns of the minima, then of the maxima; `prod(x, index = )` the
#' products, computed as `sign * exp(sum(log(abs(x))))` (so its relative
#' error grows with the number of factors: about 1e-13 for 1000 factors in
#' float64); `mean(x, index = )` is the sum divided by the number of points
#' reduced. `any()` and `all()` are errors of class `rkeops_op_error`.
#'
#' `sum(x)`, `min(x)`, `max(x)`, `range(x)`, `prod(x)` and `mean(x)`
#' without `index` are symbolic: they reduce the inner dimension and return
#' a LazyTensor (see [sqnorm2()]); on other objects these are the base
#' functions, unchanged.
#'
#' Sums (`sum`, `sum_reduction`, `prod`, `mean` over an index, and
#' `K %*% B`) take a summation scheme, `sum_scheme = "auto"`,
#' `"direct_sum"`, `"block_sum"` or `"kahan_scheme"` (compensated
#' summation, which matters in float32: see [keops_kernel()]); without the
#' argument they use the option `sum_scheme` ([set_rkeops_options()],
#' `"auto"` by default), the only way to choose it for `K %*% B`.
#'
#' Results are R-shaped: the index results of `argmin`, `argmax`,
#' `argKmin` (and the `indices` of `min_argmin`, ...) are integer matrices,
#' `NA` where every value reduced is NaN; the rows of every result carry the
#' row names of the data of the output index (the rows of the matrix given
#' to `Vi()` for a reduction over j).
#'
#' An index that no variable of `x` carries has size 1, as in KeOps:
#' `sum(x_i, index = "i")` is `colSums()` of the data of `x_i` (one row),
#' `sum(x_i, index = "j")` is that data itself, `min(Pm(v), "j")` is `v`.
#' With `K` larger than the number of points reduced, `Kmin` pads the values
#' with `Inf` and `argKmin` the indices with `NA`.
#'
#' NaN: `min`, `max` (and `sum`, `logsumexp`) propagate NaN, as R's `min()`
#' and `max()` do; the reductions that select points (`argmin`, `argmax`,
#' `min_argmin`, `max_argmax`, `Kmin`, `argKmin`, `Kmin_argKmin`) rank the
#' points as `order()` does, NaN last, so that values and indices always
#' agree: like `which.min()`, `argmin` skips NaN, and `Kmin` lists the NaN
#' values after all the others (`min` and `Kmin(x, 1)` differ on a NaN). `sumsoftmaxweight` is
#' NaN when every `x` is `-Inf` (the softmax is 0 / 0).
#' The index must be `"i"` or `"j"` (otherwise an error of class
#' `rkeops_index_error`, an `rkeops_error`). With the
#' option `formula_only` (see `set_rkeops_options()`), the formula string is
#' returned instead of the result.
#'
#' @param x a LazyTensor.
#' @param index `"i"` (reduce over i: one row per j) or `"j"` (reduce over
#'   j: one row per i); `NA` (or missing) for the symbolic `sum`, `min`,
#'   `max`, `argmin`, `argmax` of the inner dimension.
#' @param K a whole number, how many of the smallest values to keep.
#' @param weight a LazyTensor (or a number) of any dimension, the weights.
#' @param sum_scheme `NULL` (the option `sum_scheme`), `"auto"`,
#'   `"direct_sum"`, `"block_sum"` or `"kahan_scheme"`.
#' @param ... for `sum`, `min`, `max`, `range`, `prod`: `index`, by name or
#'   position, and (`sum`, `prod`) `sum_scheme` by name.
#' @param na.rm must be `FALSE` (NaN values propagate).
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
#' sum(exp(-D_ij), "j", sum_scheme = "kahan_scheme")
#' range(D_ij, index = "j")          # columns: min, max
#' mean(D_ij, index = "i")
#' sum(1:3)                          # base R is unchanged
NULL

#' @rdname sum_reduction
#' @export
setMethod("Summary", "LazyTensor", function(x, ..., na.rm = FALSE) {
  a <- lt_dots_args(...)
  if (!identical(na.rm, FALSE))
    lt_abort(sprintf(paste0("%s() on a LazyTensor has no `na.rm`: NaN ",
                            "values propagate (select the points before ",
                            "Vi()/Vj())"), .Generic),
             "rkeops_input_error")
  sums <- c("sum", "prod")
  if (!is.null(a$sum_scheme) && !.Generic %in% sums)
    lt_abort(sprintf(paste0("`sum_scheme` applies to sums (sum(), prod(), ",
                            "mean(), %%*%%), not to %s()"), .Generic),
             "rkeops_input_error")
  symbolic <- lt_no_index(a$index)
  if (symbolic && !is.null(a$sum_scheme))
    lt_abort(paste0("`sum_scheme` needs a reduction over an index: the sum ",
                    "of the inner dimension is part of the formula"),
             "rkeops_input_error")
  switch(.Generic,
    sum = if (symbolic) lt_unary("Sum", x, dim = 1L) else
      lt_reduce(x, "Sum", a$index, sum_scheme = lt_sum_scheme(a$sum_scheme)),
    min = if (symbolic) lt_unary("Min", x, dim = 1L) else
      lt_reduce(x, "Min", a$index),
    max = if (symbolic) lt_unary("Max", x, dim = 1L) else
      lt_reduce(x, "Max", a$index),
    range = lt_range(x, a$index),
    prod = lt_prod(x, a$index, a$sum_scheme),
    lt_abort(sprintf(paste0("%s() is not available for LazyTensors (use ",
                            "min(), max() of a comparison)"), .Generic),
             "rkeops_op_error")
  )
})

# range(): c(min, max) of the inner dimension, or over an index the columns
# of min then of max, from one Min reduction of concat(x, -x).
lt_range <- function(x, index) {
  x <- lt_check(x, "range")
  if (lt_no_index(index))
    return(concat(lt_unary("Min", x, dim = 1L), lt_unary("Max", x, dim = 1L)))
  d <- x@dim
  r <- lt_reduce(concat(x, -x), "Min", index)
  if (!is.numeric(r)) return(r)
  out <- cbind(r[, seq_len(d), drop = FALSE], -r[, d + seq_len(d), drop = FALSE])
  rownames(out) <- rownames(r)
  out
}

# prod(): the product of the components (no index), or over an index
# sign * exp(sum(log|x|)) from one Sum reduction of concat(log|x|, x < 0)
# (a zero gives log 0 = -Inf, hence 0; NaN propagates).
lt_prod <- function(x, index, sum_scheme) {
  x <- lt_check(x, "prod")
  d <- x@dim
  if (lt_no_index(index)) {
    if (d == 1L) return(x)
    out <- elem(x, 0L)
    for (k in seq_len(d - 1L)) out <- out * elem(x, k)
    return(out)
  }
  neg <- 1L - lt_unary("Step", x)
  r <- lt_reduce(concat(log(abs(x)), neg), "Sum", index,
                 sum_scheme = lt_sum_scheme(sum_scheme))
  if (!is.numeric(r)) return(r)
  mag <- exp(r[, seq_len(d), drop = FALSE])
  sgn <- ifelse(round(r[, d + seq_len(d), drop = FALSE]) %% 2 == 1, -1, 1)
  out <- mag * sgn
  rownames(out) <- rownames(r)
  out
}

#' @rdname sum_reduction
#' @export
setMethod("mean", "LazyTensor", function(x, index = NA, sum_scheme = NULL,
                                         ...) {
  if (length(list(...)))
    lt_abort("mean() on a LazyTensor takes `index` and `sum_scheme` only",
             "rkeops_input_error")
  if (lt_no_index(index)) {
    if (!is.null(sum_scheme))
      lt_abort("`sum_scheme` needs a reduction over an index",
               "rkeops_input_error")
    x <- lt_check(x, "mean")
    if (x@dim == 1L) return(x)
    return(lt_unary("Sum", x, dim = 1L) / x@dim)
  }
  index <- lt_check_index(index)
  s <- lt_reduce(x, "Sum", index, sum_scheme = lt_sum_scheme(sum_scheme))
  if (!is.numeric(s)) return(s)
  n <- if (index == "i") x@M else x@N
  s / n
})

#' @rdname sum_reduction
#' @export
sum_reduction <- function(x, index, sum_scheme = NULL) {
  lt_reduce(x, "Sum", index, sum_scheme = lt_sum_scheme(sum_scheme))
}

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
  lt_reduce(x, "KMin", index, K = lt_K(K, x, "KMin"))
}

#' @rdname sum_reduction
#' @export
Kmin_reduction <- function(x, K, index) Kmin(x, K, index)

#' @rdname sum_reduction
#' @export
argKmin <- function(x, K, index) {
  x <- lt_check(x, "ArgKMin")
  lt_reduce(x, "ArgKMin", index, K = lt_K(K, x, "ArgKMin"))
}

#' @rdname sum_reduction
#' @export
argKmin_reduction <- function(x, K, index) argKmin(x, K, index)

#' @rdname sum_reduction
#' @export
Kmin_argKmin <- function(x, K, index) {
  x <- lt_check(x, "KMin_ArgKMin")
  K <- lt_K(K, x, "KMin_ArgKMin")
  lt_reduce(x, "KMin_ArgKMin", index, K = K, split = K * x@dim)
}

#' @rdname sum_reduction
#' @export
Kmin_argKmin_reduction <- function(x, K, index) Kmin_argKmin(x, K, index)

#' @rdname sum_reduction
#' @export
logsumexp <- function(x, index, weight = NULL) {
  x <- lt_check(x, "LogSumExp")
  lt_red_f1(x, "LogSumExp", "logsumexp")
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
  lt_red_f1(x, "SumSoftMaxWeight", "sumsoftmaxweight")
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
#' of dimension 1). It is `sum(K * Vj(B), index = "j")`, with the summation
#' scheme of the option `sum_scheme` (see [set_rkeops_options()]).
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
  if (lt_is(y))
    lt_abort(paste0("K %*% B needs an ordinary numeric matrix B; for two ",
                    "LazyTensors, write sum(x * y, index = \"j\")"),
             "rkeops_input_error")
  if (is.na(x@N))
    lt_abort("K %*% B: K has no variable indexed by j to sum over",
             "rkeops_index_error")
  B <- lt_as_data_matrix(y, "B in K %*% B")
  if (nrow(B) != x@N)
    lt_dim_error(sprintf(paste0("K %%*%% B: K has %d columns (j indices) but ",
                                "B has %d rows"), x@N, nrow(B)))
  sum(x * Vj(B), index = "j", sum_scheme = lt_sum_scheme(NULL))
})

# ---- gradients ---------------------------------------------------------------
# grad(f, gradin, opstr = "Sum", var, index) (API.md section 2) lives in
# R/lazytensor-grad.R (the autodiff front end); it builds the reduction with
# lt_reduction_parts() above, so that a gradient and its reduction share the
# same canonical formula and variable order.

# ---- as.matrix(), rowSums() and friends ------------------------------------

# the largest M * N that as.matrix() materialises
lt_as_matrix_max <- 1e7

#' Materialise a small LazyTensor; row and column sums
#'
#' `as.matrix(K)` computes every entry of a LazyTensor `K` of inner
#' dimension 1 and returns the dense M x N matrix (with the row names of the
#' data of `Vi()` and `Vj()` as row and column names), for checks and small
#' problems: it is refused, with an error of class `rkeops_memory_error`,
#' when M * N exceeds 1e7 (a LazyTensor is meant to stay symbolic). A
#' missing index (no variable indexed by i, or by j) counts as one row (one
#' column); `as.array(K)` is the same matrix, and base functions that
#' convert their argument with `as.matrix()` (`apply()`, `scale()`) work on
#' such a small K. `rowSums(K)`, `colSums(K)`, `rowMeans(K)` and `colMeans(K)` are
#' the reductions `sum(K, index = "j")`, ... of a LazyTensor of dimension 1,
#' as vectors (named by the row names of the data).
#'
#' @param x a LazyTensor (of inner dimension 1).
#' @param na.rm,dims must be `FALSE` and 1.
#' @param ... unused.
#' @return A numeric matrix (`as.matrix()`) or vector.
#' @name LazyTensor-as.matrix
#' @examples
#' X <- matrix(runif(8), 4, 2)
#' Y <- matrix(runif(6), 3, 2)
#' K <- exp(-sqdist(Vi(X), Vj(Y)))
#' Kd <- as.matrix(K)
#' max(abs(Kd - exp(-as.matrix(dist(rbind(X, Y)))[1:4, 5:7]^2)))
#' rowSums(K)
#' colMeans(K)
NULL

# one function for the S4 method and the S3 method (base functions such as
# apply() call base::as.matrix, which dispatches S3)
lt_as_matrix <- function(x, ...) {
  if (x@dim != 1L)
    lt_dim_error(sprintf(paste0("as.matrix(K) needs K of inner dimension 1, ",
                                "not %d (select a component: K[, k])"), x@dim))
  M <- if (is.na(x@M)) 1 else x@M
  N <- if (is.na(x@N)) 1 else x@N
  if (M * N > lt_as_matrix_max)
    lt_abort(sprintf(paste0("as.matrix(K): K is %.0f x %.0f, more than %g ",
                            "entries; reduce it instead (sum(K, index = ",
                            "\"j\"), K %%*%% B)"), M, N, lt_as_matrix_max),
             "rkeops_memory_error")
  ii <- rep(seq_len(M), times = N)
  jj <- rep(seq_len(N), each = M)
  rows <- cols <- NULL
  map <- list()
  for (v in x@vars) {
    if (v$cat == "p") next
    sel <- if (v$cat == "i") ii else jj
    if (v$cat == "i" && is.null(rows)) rows <- v$rows
    if (v$cat == "j" && is.null(cols)) cols <- v$rows
    map[[as.character(v$id)]] <- list(
      cat = "i", data = v$data[sel, , drop = FALSE])
  }
  # one row per (i, j) pair, reduced over a single dummy j point
  pairs <- lt_replace_vars(x, map)
  di <- Vi(matrix(0, M * N, 1L))
  dj <- Vj(matrix(0, 1L, 1L))
  f <- pairs + 0 * (di + dj)
  r <- lt_reduce(f, "Sum", "j")
  if (!is.numeric(r)) return(r)
  out <- matrix(as.double(r), M, N)
  if (!is.null(rows) || !is.null(cols)) dimnames(out) <- list(rows, cols)
  out
}

#' @rdname LazyTensor-as.matrix
#' @export
setMethod("as.matrix", "LazyTensor", lt_as_matrix)

#' @rdname LazyTensor-as.matrix
#' @method as.matrix LazyTensor
#' @export
as.matrix.LazyTensor <- function(x, ...) lt_as_matrix(x, ...)

#' @rdname LazyTensor-as.matrix
#' @export
as.array.LazyTensor <- function(x, ...) lt_as_matrix(x, ...)

lt_margin <- function(x, index, mean, na.rm, dims, what) {
  if (!identical(na.rm, FALSE) || !identical(as.numeric(dims), 1))
    lt_abort(sprintf("%s() on a LazyTensor takes no `na.rm` or `dims`", what),
             "rkeops_input_error")
  x <- lt_check(x, what)
  if (x@dim != 1L)
    lt_dim_error(sprintf(paste0("%s(K) needs K of inner dimension 1, not %d ",
                                "(use sum(K, index = ...))"), what, x@dim))
  r <- if (mean) mean(x, index = index) else sum(x, index = index)
  if (!is.numeric(r)) return(r)
  stats::setNames(as.double(r), rownames(r))
}

setGeneric("rowSums")
setGeneric("colSums")
setGeneric("rowMeans")
setGeneric("colMeans")

#' @rdname LazyTensor-as.matrix
#' @export
setMethod("rowSums", "LazyTensor", function(x, na.rm = FALSE, dims = 1, ...) {
  lt_margin(x, "j", FALSE, na.rm, dims, "rowSums")
})

#' @rdname LazyTensor-as.matrix
#' @export
setMethod("colSums", "LazyTensor", function(x, na.rm = FALSE, dims = 1, ...) {
  lt_margin(x, "i", FALSE, na.rm, dims, "colSums")
})

#' @rdname LazyTensor-as.matrix
#' @export
setMethod("rowMeans", "LazyTensor", function(x, na.rm = FALSE, dims = 1, ...) {
  lt_margin(x, "j", TRUE, na.rm, dims, "rowMeans")
})

#' @rdname LazyTensor-as.matrix
#' @export
setMethod("colMeans", "LazyTensor", function(x, na.rm = FALSE, dims = 1, ...) {
  lt_margin(x, "i", TRUE, na.rm, dims, "colMeans")
})
