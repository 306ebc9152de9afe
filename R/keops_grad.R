# keops_grad.R -- gradients of reductions: keops_grad(op, var).
#
# The gradient of a reduction is itself a Sum reduction of a Grad(...)
# formula, which the C core expands symbolically (src/ad.c, src/ad-rules.c)
# and compiles into one kernel.  The engine writes that formula (the
# reduction unit's gradient plan, src/red-*.c, through ffi_grad_plan), with
# explicit Var(pos, dim, cat) leaves: the new variable `eta` (the gradient
# input, one row per output index) appended after the existing positions,
# then the forward outputs.  This file names them, runs the forward
# reductions and the gradient reduction through keops_kernel().
#
# With f the reduced formula, x the variable, eta the gradient input:
#   Sum_Reduction(f)        -> Sum_Reduction(Grad(f, x, eta))
#   LogSumExp(f)            -> Sum_Reduction(Grad(Exp(f - L), x, eta))
#   LogSumExpWeight(f, w)   -> Sum_Reduction(Grad(Exp(f - L) * w, x, eta))
#   SumSoftMaxWeight(f, w)  -> Sum_Reduction(Grad(Exp(f - L) * (w - O), x, eta))
# where L (LogSumExp of f, or the LogSumExpWeight output) and O (the
# SumSoftMaxWeight output) are results of forward reductions, passed in as
# extra variables indexed like the output: the gradient operator runs the
# forward reduction(s) first, then the gradient reduction.  Inside Grad,
# L and O are constants, which is right since the derivative of the
# normalisation is already written out in these formulas.
# The gradient reduction is over the same index as the original one for a
# variable indexed like the output, over the other index for a variable
# indexed by the reduction index, and for a parameter it is computed per
# output row and then summed over the rows (a 1 x dim result).
# A gradient of such a gradient operator (second order) is not one kernel:
# L and O depend on the variables; rk_grad_chain() applies the chain rule
# through the forward reductions (several kernels run in turn).
# Min, Max, ArgMin, ArgMax, Min_ArgMin, Max_ArgMax, KMin, ArgKMin and
# KMin_ArgKMin are not differentiable reductions: rkeops_grad_error.

# The engine's reduction table (red.def, through ffi_engine_tables), read
# once per session: which reductions have a gradient is written there only.
rk_red_table <- function() {
  t <- rk_state$red_table
  if (is.null(t)) {
    t <- .Call(ffi_engine_tables)$reds
    rk_state$red_table <- t
  }
  t
}
rk_red_diff <- function() {
  t <- rk_red_table()
  t$name[t$differentiable]
}
rk_red_nondiff <- function() {
  t <- rk_red_table()
  t$name[!t$differentiable]
}
# "A, B, C and D" (quoted when q)
rk_and_list <- function(x, q = FALSE) {
  if (q) x <- sprintf("\"%s\"", x)
  if (length(x) <= 1L) return(paste(x))
  paste(paste(x[-length(x)], collapse = ", "), "and", x[length(x)])
}

# parts of a reduction from the engine (the parsed formula, see rk_parse()):
# reduction, axis, K, outdim, f, w, names, dims, cats, canonical, nodes
rk_grad_parts <- function(formula, args, sum_scheme = "auto") {
  rk_parsed(formula, as.character(args), sum_scheme)
}

# a name not in `taken`: base, base1, base2, ...
rk_grad_fresh <- function(base, taken) {
  nm <- base
  k <- 0L
  while (nm %in% taken) {
    k <- k + 1L
    nm <- paste0(base, k)
  }
  nm
}

rk_grad_var_text <- function(pos, dim, cat) {
  sprintf("Var(%d,%d,%d)", as.integer(pos), as.integer(dim), as.integer(cat))
}

rk_grad_decl <- function(name, pos, dim, cat) {
  sprintf("%s=%s(%d,%d)", name, c("Vi", "Vj", "Pm")[cat + 1L],
          as.integer(pos), as.integer(dim))
}

# 0-based position of `var` (a declared name, or a 1-based position in args)
rk_grad_var_pos <- function(parts, args, var) {
  anames <- rk_arg_names(args)
  if (is.character(var) && length(var) == 1L && !is.na(var)) {
    pos <- match(var, parts$names)
    if (is.na(pos)) {
      rk_abort("rkeops_var_error", sprintf(
        "keops_grad: no variable named `%s` (the variables are %s)", var,
        paste0("`", parts$names[nzchar(parts$names)], "`", collapse = ", ")
      ))
    }
    return(pos - 1L)
  }
  if (is.numeric(var) && length(var) == 1L && !is.na(var) &&
    var == round(var)) {
    if (var < 1 || var > length(args)) {
      rk_abort("rkeops_var_error", sprintf(
        "keops_grad: `var` = %d is not a position in `args` (1 to %d)",
        as.integer(var), length(args)
      ))
    }
    nm <- anames[var]
    if (nzchar(nm) && !is.na(match(nm, parts$names))) {
      return(match(nm, parts$names) - 1L)
    }
    return(as.integer(var) - 1L)
  }
  rk_abort(
    "rkeops_input_error",
    "keops_grad: `var` must be a variable name or a 1-based position in `args`"
  )
}

# The gradient plan: formula text, declarations, and what to run first.
#   parts: rk_grad_parts(); args, sum_scheme: the original operator's;
#   pos: 0-based position of the variable; eta_param: TRUE when the
#   operator's output is a full sum (a 1 x d row): eta is then a parameter.
# The plan itself is the engine's (ffi_grad_plan: the reduction unit's
# gradient, src/red-*.c): the gradient formula with Var(pos, dim, cat)
# leaves for eta and the forward outputs, and the forward reductions; here
# the new inputs only get names that the operator's args do not use.
rk_grad_plan <- function(parts, args, sum_scheme, pos, eta_param = FALSE) {
  red <- parts$reduction
  if (red %in% rk_red_nondiff()) {
    rk_abort("rkeops_grad_error", sprintf(paste0(
      "keops_grad: cannot differentiate a %s_Reduction: differentiation ",
      "through Min, Max, KMin or Arg-type reductions makes no sense (only ",
      "%s reductions are differentiable)"), red, rk_and_list(rk_red_diff())))
  }
  if (!red %in% rk_red_diff()) {
    rk_abort("rkeops_grad_error",
             sprintf("keops_grad: no gradient for %s_Reduction", red))
  }
  g <- .Call(ffi_grad_plan, rk_as_parsed(parts)$ptr, as.integer(pos),
             isTRUE(eta_param))
  taken <- c(parts$names, rk_arg_names(args))
  eta_name <- rk_grad_fresh("eta", taken)
  taken <- c(taken, eta_name)
  decls <- rk_grad_decl(eta_name, g$eta[1L], g$eta[2L], g$eta[3L])
  extras <- character() # names of the forward outputs, in the order of fwd
  for (x in g$fwd) {
    nm <- rk_grad_fresh(x$name, taken)
    taken <- c(taken, nm)
    extras <- c(extras, nm)
    decls <- c(decls, rk_grad_decl(nm, x$pos, x$dim, x$cat))
  }
  fwd <- vapply(g$fwd, function(x) if (is.na(x$formula)) "self" else x$formula, "")
  list(
    formula = g$formula, args = c(args, decls), fwd = fwd, extras = extras,
    full = g$full,
    eta_name = eta_name, eta_param = eta_param, axis = g$axis,
    dim = parts$dims[pos + 1L],
    out_row = identical(parts$axis, 1L)
  )
}

# the inputs of a gradient operator, in the order of its args: the
# original inputs, then eta (matched by name when all are named)
rk_grad_split_input <- function(input, args, eta_name) {
  if (!is.list(input) || is.data.frame(input)) {
    rk_abort("rkeops_input_error", sprintf(paste0(
      "`input` must be a list: the inputs of the operator, then the ",
      "gradient input `%s`"), eta_name))
  }
  n <- length(args)
  want <- c(rk_arg_names(args), eta_name)
  nms <- names(input)
  if (!is.null(nms) && all(nzchar(want)) && all(nzchar(nms)) &&
    setequal(nms, want) && !anyDuplicated(nms)) {
    input <- input[want]
  }
  if (length(input) != n + 1L) {
    rk_abort("rkeops_input_error", sprintf(paste0(
      "the gradient operator takes %d inputs (those of the operator, then ",
      "the gradient input `%s`), not %d"), n + 1L, eta_name, length(input)))
  }
  list(orig = unname(input[seq_len(n)]), eta = input[[n + 1L]])
}

#' Gradient of a reduction operator
#'
#' `keops_grad(op, var)` returns the operator computing the gradient of the
#' reduction `op` (made by [keops_kernel()], or by `keops_grad()` itself)
#' with respect to its variable `var`, applied to a gradient input `eta`:
#' for a reduction `out_i = sum_j f(x_i, y_j, ...)`, the gradient operator
#' computes `sum_i <eta_i, d out_i / d var>`, one row per point of `var`.
#' The gradient is symbolic: the engine differentiates the formula
#' (`Grad(f, var, eta)`) and compiles the result into one kernel.
#'
#' The new operator takes the inputs of `op`, followed by `eta`: a matrix
#' with one row per output index of `op` and the output's dimension (a
#' vector of length `outdim` when `op`'s output is a single row, as for a
#' gradient with respect to a parameter).  Its result has one row per point
#' of `var` (`var` indexed by i or j) and `dim(var)` columns, or a single row
#' (`var` a parameter: the gradient summed over all indices).
#'
#' Differentiable reductions are `Sum`, `LogSumExp`, `LogSumExpWeight` and
#' `SumSoftMaxWeight`.  For the last three the gradient operator first runs
#' the forward reduction (for `SumSoftMaxWeight`, also a `LogSumExp` of the
#' same formula): their outputs enter the gradient formula as extra
#' variables.  Gradients of gradients work for every differentiable
#' reduction (Hessian-vector products, second derivatives with respect to
#' parameters): to any order for `Sum`; for `LogSumExp`,
#' `LogSumExpWeight` and `SumSoftMaxWeight` to the second order, through
#' the chain rule (the derivative of the forward outputs is a gradient
#' reduction too: several kernels run in turn).  A second-order operator of
#' these takes the inputs of the first-order one (`op`'s inputs, then
#' `eta`), then its own gradient input.
#' `Min`, `Max`, `KMin` and the arg-type reductions are not differentiable:
#' the error has class `rkeops_grad_error` (an `rkeops_error`).
#'
#' @param op an operator from [keops_kernel()] or `keops_grad()`.
#' @param var the variable: its declared name, or its 1-based position in
#'   `args` **(differs: rkeops counts from 0)**.
#' @return An operator `function(input, inner_dim = "col")` of class
#'   `rkeops_grad_operator` (an `rkeops_operator`), whose attributes hold
#'   the gradient formula (`formula`, `args`, `canonical`, `nodes`: the
#'   number of IR nodes after simplification).
#' @seealso [keops_kernel()], [grad()]
#' @examples
#' op <- keops_kernel(
#'   "Sum_Reduction(Exp(-SqDist(x, y) / s) * b, 1)",
#'   c("x=Vi(2)", "y=Vj(2)", "b=Vj(1)", "s=Pm(1)")
#' )
#' gx <- keops_grad(op, "x")
#' x <- matrix(runif(20), 10, 2)
#' y <- matrix(runif(30), 15, 2)
#' b <- runif(15)
#' eta <- matrix(1, 10, 1)
#' g <- gx(list(x, y, b, 0.5, eta))
#' # the same in R: d/dx_i sum_j exp(-|x_i - y_j|^2 / s) b_j
#' K <- exp(-(outer(rowSums(x^2), rowSums(y^2), "+") - 2 * x %*% t(y)) / 0.5)
#' g2 <- -2 / 0.5 * ((K %*% b)[, 1] * x - K %*% (b * y))
#' max(abs(g - g2))
#' # a parameter: one row
#' keops_grad(op, "s")(list(x, y, b, 0.5, eta))
#' @export
keops_grad <- function(op, var) {
  if (!inherits(op, "rkeops_operator")) {
    rk_abort("rkeops_input_error", paste0(
      "keops_grad: `op` must be an operator made by keops_kernel() or ",
      "keops_grad()"
    ))
  }
  ginfo <- attr(op, "grad")
  if (isTRUE(ginfo$chain)) {
    rk_abort("rkeops_grad_error", paste0(
      "keops_grad: third derivatives of LogSumExp, LogSumExpWeight or ",
      "SumSoftMaxWeight reductions are not supported (gradients of ",
      "gradients are; any order works for Sum reductions)"
    ))
  }
  if (!is.null(ginfo) && length(ginfo$fwd) > 0L) {
    return(rk_grad_chain(op, var))
  }
  formula <- attr(op, "formula")
  args <- attr(op, "args")
  sum_scheme <- attr(op, "sum_scheme")
  if (is.null(sum_scheme)) sum_scheme <- "auto"
  parts <- rk_grad_parts(formula, args, sum_scheme)
  pos <- rk_grad_var_pos(parts, args, var)
  plan <- rk_grad_plan(parts, args, sum_scheme, pos,
                       eta_param = isTRUE(ginfo$full))
  rk_grad_operator(plan, parts, args, sum_scheme, op)
}

# the gradient operator of a plan; `op` computes the forward reduction
rk_grad_operator <- function(plan, parts, args, sum_scheme, op) {
  gk <- keops_kernel(plan$formula, plan$args, sum_scheme)
  parsed <- environment(gk)$parsed
  fwd_ops <- lapply(plan$fwd, function(fm) {
    if (identical(fm, "self")) op else keops_kernel(fm, args, sum_scheme)
  })
  gop <- function(input, inner_dim = "col") {
    sp <- rk_grad_split_input(input, args, plan$eta_name)
    extra <- lapply(fwd_ops, function(f) {
      r <- f(sp$orig, inner_dim)
      if (identical(inner_dim, "row")) t(r) else r
    })
    res <- gk(c(sp$orig, list(sp$eta), extra), inner_dim)
    if (plan$full) res <- matrix(colSums(res), 1L, ncol(res))
    res
  }
  structure(
    gop,
    class = c("rkeops_grad_operator", "rkeops_operator", "function"),
    formula = plan$formula,
    args = plan$args,
    sum_scheme = sum_scheme,
    vars = attr(gk, "vars"),
    axis = plan$axis,
    outdim = plan$dim,
    outkind = 0L,
    canonical = attr(gk, "canonical"),
    nodes = parsed$nodes,
    grad = list(fwd = plan$fwd, full = plan$full, eta = plan$eta_name,
                of = attr(op, "formula"), extras = plan$extras,
                fwd_ops = fwd_ops, orig_args = args,
                uargs = plan$args[seq_len(length(args) + 1L)])
  )
}

# The gradient of a gradient operator `op` that runs forward reductions
# (LogSumExp, LogSumExpWeight, SumSoftMaxWeight): op computes
# G(v, eta, E(v)), the gradient kernel of op applied to the variables v, its
# gradient input eta and the forward outputs E(v) (ginfo$extras, computed by
# ginfo$fwd_ops).  By the chain rule, for a new gradient input eta2,
#   d <eta2, G> / d x = dG/dx^T eta2 (E held fixed: the "direct" term)
#                     + sum_k dE_k/dx^T (dG/dE_k^T eta2)
# where dG/dE_k^T eta2 is a gradient of the kernel with respect to one of
# its inputs, and dE_k/dx^T c is the gradient of a forward reduction (a
# first-order gradient operator).  Every term is a reduction; the result is
# an operator taking the inputs of op, then eta2.
rk_grad_chain <- function(op, var) {
  g <- attr(op, "grad")
  sum_scheme <- attr(op, "sum_scheme")
  if (is.null(sum_scheme)) sum_scheme <- "auto"
  n0 <- length(g$orig_args)
  uargs <- g$uargs
  unames <- rk_arg_names(uargs)
  # var: a name among the inputs of op, or a 1-based position among them
  vpos <- NA_integer_
  if (is.character(var) && length(var) == 1L && !is.na(var)) {
    vpos <- match(var, unames)
  } else if (is.numeric(var) && length(var) == 1L && !is.na(var) &&
             var == round(var) && var >= 1 && var <= length(uargs)) {
    vpos <- as.integer(var)
  }
  if (is.na(vpos)) {
    rk_abort("rkeops_var_error", sprintf(paste0(
      "keops_grad: `var` must name an input of the gradient operator (%s) ",
      "or give its 1-based position (1 to %d)"),
      paste0("`", unames[nzchar(unames)], "`", collapse = ", "),
      length(uargs)))
  }
  # the gradient kernel of op, the forward outputs being inputs
  inner <- structure(
    function(input, inner_dim = "col") NULL,
    class = c("rkeops_operator", "function"),
    formula = attr(op, "formula"), args = attr(op, "args"),
    sum_scheme = sum_scheme, grad = list(fwd = character(), full = g$full)
  )
  direct <- keops_grad(inner, vpos)
  via <- list()
  if (vpos <= n0) { # the forward outputs depend on the variables, not on eta
    for (k in seq_along(g$extras)) {
      via[[k]] <- list(
        cot = keops_grad(inner, n0 + 1L + k),
        back = keops_grad(g$fwd_ops[[k]], vpos)
      )
    }
  }
  dinfo <- attr(direct, "grad")
  eta2 <- dinfo$eta
  row_t <- function(r, inner_dim) if (identical(inner_dim, "row")) t(r) else r
  gop <- function(input, inner_dim = "col") {
    sp <- rk_grad_split_input(input, uargs, eta2)
    orig <- sp$orig[seq_len(n0)]
    extra <- lapply(g$fwd_ops, function(f) row_t(f(orig, inner_dim), inner_dim))
    base <- c(sp$orig, extra, list(sp$eta))
    res <- direct(base, inner_dim)
    for (v in via) {
      ck <- row_t(v$cot(base, inner_dim), inner_dim)
      res <- res + v$back(c(orig, list(ck)), inner_dim)
    }
    res
  }
  structure(
    gop,
    class = c("rkeops_grad_operator", "rkeops_operator", "function"),
    formula = attr(direct, "formula"),
    args = c(uargs, utils::tail(attr(direct, "args"), 1L)),
    sum_scheme = sum_scheme,
    vars = attr(direct, "vars"),
    axis = attr(direct, "axis"),
    outdim = attr(direct, "outdim"),
    outkind = 0L,
    canonical = attr(direct, "canonical"),
    nodes = attr(direct, "nodes"),
    grad = list(fwd = "chain", chain = TRUE, full = dinfo$full, eta = eta2,
                of = attr(op, "formula"))
  )
}
