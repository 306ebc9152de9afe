# lazytensor-class.R -- the S4 classes of the LazyTensor front end and the
# constructors Vi(), Vj(), Pm(), LazyTensor().
#
# A LazyTensor is a symbolic M x N matrix whose entries are vectors of
# dimension `dim`.  It holds
#   - `formula`: a string of the formula language (tools/DEVNOTES.md) in which
#     every variable appears as the token `v<id>` (`id` unique per Vi()/Vj()/
#     Pm() call, see lt_new_id());
#   - `vars`: the variables it refers to, a list named by id, each a list
#     (id, cat = "i"/"j"/"p", dim, n, data);
#   - `M`, `N`: the number of i and j indices (NA when no variable carries the
#     index), `dim`: the inner dimension.
# Nothing is computed until a reduction (lazytensor-reduce.R): the reduction
# renames the variables `v0, v1, ...` in order of appearance, so the same
# model always yields the same formula string and reuses its compiled kernel.
#
# Operations: lazytensor-ops.R; reductions: lazytensor-reduce.R;
# printing: lazytensor-show.R.

#' @import methods
NULL

#' The LazyTensor class: symbolic matrices for kernel reductions
#'
#' A `LazyTensor` encodes, without computing it, an M x N matrix whose
#' entry (i, j) is a vector of dimension `dim`, given by a formula of
#' variables indexed by i (`Vi()`), by j (`Vj()`) and parameters (`Pm()`).
#' Operations on LazyTensors (`+`, `exp()`, `sqdist()`, ...) build a new
#' formula; a reduction over `i` or `j` (`sum(x, index = "j")`, `argmin()`,
#' ..., `K %*% B`) compiles the formula (or reuses the compiled kernel) and
#' returns an ordinary R matrix.
#'
#' @slot formula the formula, variables written `v<id>` (see `show()` for the
#'   formula as it is sent to the engine).
#' @slot vars list of the variables: `id`, `cat` (`"i"`, `"j"` or `"p"`),
#'   `dim`, `n` (number of rows, `NA` for parameters) and `data`.
#' @slot M number of i indices (`NA` when no variable is indexed by i).
#' @slot N number of j indices (`NA` when no variable is indexed by j).
#' @slot dim inner dimension.
#' @seealso [LazyTensor()], [Vi()], [Vj()], [Pm()], [sum_reduction()]
#' @examples
#' x_i <- Vi(matrix(runif(6), 3, 2))
#' isVirtualClass("LazyTensor")
#' is(x_i, "LazyTensor")
#' @exportClass LazyTensor
setClass("LazyTensor",
  slots = c(formula = "character", vars = "list", M = "numeric",
            N = "numeric", dim = "integer")
)

setValidity("LazyTensor", function(object) {
  if (length(object@formula) != 1L) return("`formula` must be one string")
  if (length(object@dim) != 1L || is.na(object@dim) || object@dim < 1L)
    return("`dim` must be a positive integer")
  TRUE
})

# ---- conditions ------------------------------------------------------------

# Raise a classed rkeops error from the LazyTensor front end through
# rk_abort() (errors.R).  `class` is the subclass ("rkeops_dim_error",
# "rkeops_index_error", ...).
lt_abort <- function(msg, class = "rkeops_input_error", call = NULL) {
  rk_abort(class, msg, call = call)
}

lt_dim_error <- function(msg, call = NULL) {
  lt_abort(msg, "rkeops_dim_error", call = call)
}

# ---- variables -------------------------------------------------------------

# One counter for the whole session: each Vi()/Vj()/Pm() call makes a new
# variable, so two wrappings of equal data stay two variables.
lt_state <- new.env(parent = emptyenv())
lt_state$next_id <- 0L

lt_new_id <- function() {
  lt_state$next_id <- lt_state$next_id + 1L
  lt_state$next_id
}

lt_token <- function(id) paste0("v", id)

lt_as_data_matrix <- function(x, what) {
  if (is.data.frame(x)) x <- data.matrix(x)
  if (is.logical(x)) storage.mode(x) <- "double"
  if (!is.numeric(x) || is.complex(x))
    lt_abort(sprintf("%s must be a numeric vector or matrix, not %s", what,
                     class(x)[1L]), "rkeops_input_error")
  if (is.null(dim(x))) x <- matrix(x, ncol = 1L)
  if (length(dim(x)) != 2L)
    lt_abort(sprintf("%s must be a vector or a matrix (it has %d dimensions)",
                     what, length(dim(x))), "rkeops_input_error")
  if (nrow(x) < 1L || ncol(x) < 1L)
    lt_abort(sprintf("%s is empty (%d x %d)", what, nrow(x), ncol(x)),
             "rkeops_input_error")
  storage.mode(x) <- "double"
  dimnames(x) <- NULL
  x
}

# A LazyTensor made of one variable.
lt_variable <- function(data, cat) {
  id <- lt_new_id()
  if (cat == "p") {
    if (is.list(data) || !(is.numeric(data) || is.logical(data)) ||
        !is.null(dim(data)) && sum(dim(data) > 1L) > 1L)
      lt_abort("a parameter Pm() must be a numeric vector", "rkeops_input_error")
    data <- as.double(data)
    if (length(data) < 1L) lt_abort("a parameter Pm() cannot be empty",
                                    "rkeops_input_error")
    d <- length(data)
    n <- NA_real_
  } else {
    what <- if (cat == "i") "the data of Vi()" else "the data of Vj()"
    data <- lt_as_data_matrix(data, what)
    d <- ncol(data)
    n <- as.double(nrow(data))
  }
  var <- list(id = id, cat = cat, dim = as.integer(d), n = n, data = data)
  vars <- list(var)
  names(vars) <- as.character(id)
  new("LazyTensor", formula = lt_token(id), vars = vars,
      M = if (cat == "i") n else NA_real_,
      N = if (cat == "j") n else NA_real_,
      dim = as.integer(d))
}

#' Wrap data as a LazyTensor
#'
#' `Vi(x)` wraps a matrix whose rows are indexed by i (one row per point,
#' one column per component), `Vj(x)` a matrix indexed by j, and `Pm(x)` a
#' numeric vector that is the same for every (i, j), a parameter.
#' `LazyTensor(x, index)` is the general form: `index = "i"`, `"j"`, or
#' `NA` for a parameter.
#'
#' Each call makes a new variable: the same LazyTensor used several times in
#' an expression is sent once to the engine (`x_i - x_i` has one variable),
#' while two calls on equal data make two variables. A plain vector given to
#' `Vi()` or `Vj()` is a one-column matrix (dimension 1).
#'
#' @param x a numeric matrix (or a vector, a one-column matrix; or a data
#'   frame of numeric columns) for `Vi()`, `Vj()`; a numeric vector for
#'   `Pm()`.
#' @param index `"i"`, `"j"`, or `NA` (a parameter).
#' @return A [LazyTensor-class] object.
#' @seealso [LazyTensor-class], [sum_reduction()]
#' @examples
#' X <- matrix(runif(30), 10, 3)
#' Y <- matrix(runif(15), 5, 3)
#' x_i <- Vi(X)
#' y_j <- LazyTensor(Y, index = "j")
#' s <- Pm(0.5)
#' K <- exp(-sqdist(x_i, y_j) / s)
#' K
#' K %*% rep(1, 5)
#' @export
LazyTensor <- function(x, index = NA) {
  if (is(x, "LazyTensor")) return(x)
  if (length(index) != 1L)
    lt_abort("`index` must be \"i\", \"j\" or NA", "rkeops_index_error")
  if (is.na(index)) return(lt_variable(x, "p"))
  if (!index %in% c("i", "j"))
    lt_abort(sprintf("`index` must be \"i\", \"j\" or NA, not \"%s\"", index),
             "rkeops_index_error")
  lt_variable(x, index)
}

#' @rdname LazyTensor
#' @export
Vi <- function(x) LazyTensor(x, index = "i")

#' @rdname LazyTensor
#' @export
Vj <- function(x) LazyTensor(x, index = "j")

#' @rdname LazyTensor
#' @export
Pm <- function(x) LazyTensor(x, index = NA)

#' Is an object a LazyTensor?
#'
#' @param x any R object.
#' @return `TRUE` when `x` is a [LazyTensor-class], else `FALSE`.
#' @examples
#' is.LazyTensor(Vi(matrix(1:6, 3, 2)))
#' is.LazyTensor(1)
#' @export
is.LazyTensor <- function(x) is(x, "LazyTensor")

# ---- constants -------------------------------------------------------------

# The formula text of a numeric scalar: integers (whole numbers within the
# int range) become IntCst(n), other reals a literal with 17 significant
# digits that the parser reads as a real constant.
lt_const_text <- function(x) {
  x <- as.double(x)
  if (!is.finite(x))
    lt_abort(sprintf("the constant %s is not finite; use a parameter Pm()",
                     format(x)), "rkeops_input_error")
  neg <- x < 0
  a <- abs(x)
  txt <- if (a == round(a) && a < 2^31) {
    sprintf("IntCst(%d)", as.integer(a))
  } else {
    s <- format(a, digits = 17)
    if (!grepl("[.eE]", s)) s <- paste0(s, ".0")
    s
  }
  if (neg) paste0("(-", txt, ")") else txt
}

# A constant as a LazyTensor without variables (dimension 1).
lt_constant <- function(x) {
  new("LazyTensor", formula = lt_const_text(x), vars = list(),
      M = NA_real_, N = NA_real_, dim = 1L)
}

# Turn an operand into a LazyTensor: LazyTensors stay, numeric scalars become
# constants, other numeric vectors parameters Pm().  Matrices are refused: the
# user must say whether rows are indexed by i or by j.
as_lt <- function(x, what = "operand") {
  if (is(x, "LazyTensor")) return(x)
  if (is.logical(x) && !anyNA(x)) x <- as.double(x)
  if (is.numeric(x) && !is.complex(x)) {
    if (!is.null(dim(x)) && sum(dim(x) > 1L) > 1L)
      lt_abort(sprintf(paste0("the %s is a matrix: wrap it with Vi() or Vj() ",
                              "to say which index its rows follow"), what),
               "rkeops_input_error")
    if (length(x) == 1L) return(lt_constant(x))
    if (length(x) > 1L) return(lt_variable(as.vector(x), "p"))
  }
  lt_abort(sprintf("cannot use an object of class %s as a LazyTensor %s",
                   class(x)[1L], what), "rkeops_input_error")
}

# ---- combining -------------------------------------------------------------

# Merge the variables and the shapes of several LazyTensors; errors when two
# operands disagree on M or N.
lt_merge <- function(args, opname) {
  vars <- list()
  M <- NA_real_
  N <- NA_real_
  for (a in args) {
    new_ids <- setdiff(names(a@vars), names(vars))
    vars <- c(vars, a@vars[new_ids])
    if (!is.na(a@M)) {
      if (!is.na(M) && M != a@M)
        lt_dim_error(sprintf(paste0("%s: the operands have %d and %d rows ",
                                    "indexed by i"), opname, M, a@M),
                     call = NULL)
      M <- a@M
    }
    if (!is.na(a@N)) {
      if (!is.na(N) && N != a@N)
        lt_dim_error(sprintf(paste0("%s: the operands have %d and %d rows ",
                                    "indexed by j"), opname, N, a@N),
                     call = NULL)
      N <- a@N
    }
  }
  list(vars = vars, M = M, N = N)
}

# Build the LazyTensor of `formula` from the operands `args` with inner
# dimension `dim`.
lt_make <- function(formula, args, dim, opname) {
  m <- lt_merge(args, opname)
  new("LazyTensor", formula = formula, vars = m$vars, M = m$M, N = m$N,
      dim = as.integer(dim))
}

# Variables in order of first appearance in the formula.
lt_ids_in_order <- function(formula) {
  toks <- regmatches(formula, gregexpr("\\bv[0-9]+\\b", formula,
                                       perl = TRUE))[[1L]]
  unique(substring(toks, 2L))
}

# The formula of `x` with its variables renamed v0, v1, ... in order of
# appearance, with their declarations ("v0=Vi(3)") and their data in the same
# order: what rk_reduce() and keops_kernel() take.
lt_canonical <- function(x) {
  formula <- x@formula
  ids <- lt_ids_in_order(formula)
  new_names <- paste0("v", seq_along(ids) - 1L)
  names(new_names) <- ids
  m <- gregexpr("\\bv[0-9]+\\b", formula, perl = TRUE)
  regmatches(formula, m) <- lapply(regmatches(formula, m), function(t)
    unname(new_names[substring(t, 2L)]))
  vars <- unname(x@vars[ids])
  decl <- vapply(vars, function(v) {
    sprintf("%s(%d)", switch(v$cat, i = "Vi", j = "Vj", p = "Pm"), v$dim)
  }, "")
  list(formula = formula, args = paste0(unname(new_names), "=", decl),
       input = lapply(vars, function(v) v$data), vars = vars)
}
