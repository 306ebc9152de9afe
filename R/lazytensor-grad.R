# lazytensor-grad.R -- grad(f, gradin, opstr, var, index): the gradient of a
# reduction of a LazyTensor, through keops_grad() (R/keops_grad.R).
#
# The reduction is built exactly as lt_reduce() builds it
# (lt_reduction_parts(): canonical formula, declarations, data), made into
# an operator with keops_kernel(), and differentiated with keops_grad() with
# respect to the position of `var` among the canonical variables.
#' @include lazytensor-class.R lazytensor-ops.R lazytensor-reduce.R keops_grad.R
NULL

# reductions grad() accepts by name (case-insensitive, with or without
# "_Reduction"): every reduction keops_grad() differentiates; the weighted
# ones take `weight`.
lt_grad_reduction <- function(opstr) {
  if (!is.character(opstr) || length(opstr) != 1L || is.na(opstr)) {
    lt_abort("grad: `opstr` must be a reduction name such as \"Sum\"",
             "rkeops_input_error")
  }
  key <- tolower(sub("_reduction$", "", opstr, ignore.case = TRUE))
  known <- rk_red_table()$name # red.def, from the engine
  red <- known[match(key, tolower(known))]
  if (is.na(red)) {
    lt_abort(sprintf("grad: unknown reduction \"%s\" (the differentiable ones are %s)",
                     opstr, rk_and_list(rk_red_diff(), q = TRUE)),
             "rkeops_grad_error")
  }
  if (red %in% rk_red_nondiff()) {
    lt_abort(sprintf(paste0(
      "grad: cannot differentiate a %s reduction: differentiation through ",
      "Min, Max, KMin or Arg-type reductions makes no sense"), red),
      "rkeops_grad_error")
  }
  unname(red)
}

# `var` of grad(): one variable, or a list of them; each a LazyTensor made
# by Vi(), Vj() or Pm()
lt_grad_vars <- function(var) {
  one <- function(v) lt_is(v) && length(v@vars) == 1L &&
    identical(v@formula, lt_token(v@vars[[1L]]$id))
  vs <- if (is.list(var) && !lt_is(var)) var else list(var)
  if (!length(vs) || !all(vapply(vs, one, NA))) {
    lt_abort(paste0("grad: `var` must be a variable made by Vi(), Vj() or ",
                    "Pm(), or a list of such variables"),
             "rkeops_input_error")
  }
  vs
}

# the data of the gradient input: a numeric matrix, or a LazyTensor made of
# one variable
lt_grad_input <- function(gradin) {
  if (lt_is(gradin)) {
    if (length(gradin@vars) != 1L ||
        !identical(gradin@formula, lt_token(gradin@vars[[1L]]$id))) {
      lt_abort("grad: `gradin` must be data, or a LazyTensor made by Vi(), Vj() or Pm()",
               "rkeops_input_error")
    }
    return(gradin@vars[[1L]]$data)
  }
  if (!is.numeric(gradin) || is.complex(gradin)) {
    lt_abort("grad: `gradin` must be a numeric matrix (one row per output index)",
             "rkeops_input_error")
  }
  if (is.null(dim(gradin))) gradin <- matrix(as.double(gradin), ncol = 1L)
  gradin
}

#' Gradient of a LazyTensor reduction
#'
#' `grad(f, gradin, opstr, var, index)` differentiates the reduction
#' `opstr` of the LazyTensor `f` over `index` with respect to the variable
#' `var`, and applies the result to the gradient input `gradin`: with
#' `out = sum_reduction(f, index)`, it computes `sum <gradin, d out / d var>`
#' (a vector-Jacobian product), with one row per point of `var`, or one row
#' for a parameter `var` (the gradient summed over all indices).  The
#' derivative is symbolic and compiled into one kernel (see [keops_grad()]).
#'
#' @param f a LazyTensor (the reduced formula).
#' @param gradin the gradient input: a numeric matrix with one row per
#'   output index of the reduction (per i for `index = "j"`) and the
#'   reduction's output dimension, or a LazyTensor wrapping such data.
#' @param opstr the reduction: `"Sum"` (default), `"LogSumExp"`,
#'   `"LogSumExpWeight"` or `"SumSoftMaxWeight"` (case-insensitive, with or
#'   without `"_Reduction"`; the last two need `weight`); `"Min"`, `"Max"`,
#'   `"KMin"` and the arg-type reductions are not differentiable (error of
#'   class `rkeops_grad_error`).
#' @param var the variable to differentiate with respect to: a LazyTensor
#'   made by [Vi()], [Vj()] or [Pm()] that appears in `f` (or in `weight`),
#'   or a list of such variables (then the result is a list of gradients,
#'   with the names of the list; for a `"Sum"`, the gradients with respect
#'   to variables of the same kind, all parameters or all indexed by the
#'   same index, are computed together in one kernel pass).  A variable that does not occur (for
#'   example a new `Vi(X)` on the data of a variable of `f`: each `Vi()`
#'   call makes a new variable) is an error of class `rkeops_var_error`.
#' @param index `"i"` or `"j"`, the index reduced over.
#' @param weight the weight of a `LogSumExpWeight` or `SumSoftMaxWeight`
#'   reduction (as in [logsumexp()] and [sumsoftmaxweight()]).
#' @return A numeric matrix: `nrow(var data)` x `dim(var)` (a single row for
#'   a parameter), or a list of them when `var` is a list.  With the option
#'   `formula_only`, the gradient formula (or a list of them).
#' @seealso [keops_grad()], [sum_reduction()]
#' @examples
#' X <- matrix(runif(20), 10, 2)
#' Y <- matrix(runif(30), 15, 2)
#' x_i <- Vi(X)
#' y_j <- Vj(Y)
#' K <- exp(-sqdist(x_i, y_j))
#' eta <- matrix(1, 10, 1)
#' g <- grad(K, eta, "Sum", var = x_i, index = "j")
#' # the same in R
#' Km <- exp(-(outer(rowSums(X^2), rowSums(Y^2), "+") - 2 * X %*% t(Y)))
#' max(abs(g - (-2) * (rowSums(Km) * X - Km %*% Y)))
#' @export
grad <- function(f, gradin, opstr = "Sum", var, index, weight = NULL) {
  f <- lt_check(f, "grad")
  red <- lt_grad_reduction(opstr)
  vs <- lt_grad_vars(var)
  rt <- rk_red_table()
  weighted <- rt$nf[match(red, rt$name)] == 2L # red.def NF: a weight
  if (weighted && is.null(weight)) {
    lt_abort(sprintf("grad: a %s reduction needs `weight`", red),
             "rkeops_input_error")
  }
  if (!weighted && !is.null(weight)) {
    lt_abort(sprintf(paste0("grad: `weight` is for LogSumExpWeight and ",
                            "SumSoftMaxWeight, not for %s"), red),
             "rkeops_input_error")
  }
  lt_red_f1(f, red, "grad", sprintf(
    "grad: a %s reduction needs f of dimension 1, not %d", red, f@dim))
  p <- lt_reduction_parts(f, red, index, weight = weight)
  ids <- vapply(p$vars, function(u) as.character(u$id), "")
  ks <- vapply(vs, function(v) {
    k <- match(as.character(v@vars[[1L]]$id), ids)
    if (is.na(k)) {
      lt_abort(paste0(
        "grad: `var` does not occur in the reduced formula",
        if (weighted) " or its weight" else "",
        " (a new Vi(), Vj() or Pm() on the same data is another variable: ",
        "differentiate with respect to the LazyTensor used in `f`)"),
        "rkeops_var_error")
    }
    k
  }, 0L)
  single <- !(is.list(var) && !lt_is(var))
  if (isTRUE(get_rkeops_options("formula_only"))) {
    parts <- rk_grad_parts(p$formula, p$args)
    res <- lapply(ks, function(k) rk_grad_plan(parts, p$args, "auto", k - 1L)$formula)
  } else {
    op <- keops_kernel(p$formula, p$args)
    input <- c(p$input, list(lt_grad_input(gradin)))
    # a Sum's gradients in one pass where they can share it
    res <- if (red == "Sum") lt_grad_joint(op, ks, input)
    if (is.null(res)) res <- lapply(ks, function(k) keops_grad(op, k)(input))
  }
  if (single) res[[1L]] else stats::setNames(res, names(var))
}

# The gradients of a Sum reduction with respect to several variables in one
# kernel pass: Sum_Reduction(Concat(G1, Concat(G2, ...)), axis), the
# gradient formulas G_k side by side (the engine's hash-consed IR shares
# their common subexpressions, e.g. the kernel's exponential), then split
# into one result per variable, as keops_grad(op, k)(input) gives each.
# NULL when they cannot share a pass (a reduction whose gradient needs
# forward outputs, variables whose gradients reduce over different indices).
lt_grad_joint <- function(op, ks, input) {
  if (length(ks) < 2L || anyDuplicated(ks)) return(NULL)
  formula <- attr(op, "formula")
  args <- attr(op, "args")
  sum_scheme <- attr(op, "sum_scheme")
  if (is.null(sum_scheme)) sum_scheme <- "auto"
  parts <- rk_grad_parts(formula, args, sum_scheme)
  if (!identical(parts$reduction, "Sum")) return(NULL)
  plans <- lapply(ks, function(k)
    rk_grad_plan(parts, args, sum_scheme, rk_grad_var_pos(parts, args, k)))
  pat <- "^Sum_Reduction\\((.*),([01])\\)$"
  same <- vapply(plans, function(g)
    length(g$fwd) == 0L && identical(g$args, plans[[1L]]$args) &&
      identical(g$axis, plans[[1L]]$axis) &&
      identical(g$full, plans[[1L]]$full) && grepl(pat, g$formula), NA)
  if (!all(same)) return(NULL)
  inner <- sub(pat, "\\1", vapply(plans, `[[`, "", "formula"))
  axis <- unique(sub(pat, "\\2", vapply(plans, `[[`, "", "formula")))
  if (length(axis) != 1L) return(NULL)
  joint <- Reduce(function(a, b) sprintf("Concat(%s,%s)", b, a), rev(inner))
  gk <- keops_kernel(sprintf("Sum_Reduction(%s,%s)", joint, axis),
                     plans[[1L]]$args, sum_scheme)
  sp <- rk_grad_split_input(input, args, plans[[1L]]$eta_name)
  res <- gk(c(sp$orig, list(sp$eta)))
  if (plans[[1L]]$full) res <- matrix(colSums(res), 1L, ncol(res))
  dims <- vapply(plans, function(g) as.integer(g$dim), 0L)
  if (sum(dims) != ncol(res)) return(NULL)
  ends <- cumsum(dims)
  lapply(seq_along(dims), function(k)
    res[, (ends[k] - dims[k] + 1L):ends[k], drop = FALSE])
}
