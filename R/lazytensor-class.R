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

# The package's own constructor: new("LazyTensor", ...) with the validity
# checks above done here, by setting the slots of a prototype.  new() runs
# initialize() and validObject(), about 60% of the R time of building and
# reducing a small formula (Rprof: 0.9 ms of a 1.4 ms 100 x 100 Gaussian sum
# on the CPU); this is a few microseconds.
lt_new <- function(formula, vars, M, N, dim) {
  if (!is.character(formula) || length(formula) != 1L)
    lt_abort("internal: a LazyTensor's formula must be one string",
             "rkeops_internal_error")
  dim <- as.integer(dim)
  if (length(dim) != 1L || is.na(dim) || dim < 1L)
    lt_abort("internal: a LazyTensor's dim must be a positive integer",
             "rkeops_internal_error")
  x <- lt_state$proto
  if (is.null(x))
    x <- lt_state$proto <- methods::new("LazyTensor", formula = "v0",
                                        dim = 1L)
  # slot<- without the class check (the types are made right here); not
  # attr<-, which treats "dim" as an array's dimensions
  slot(x, "formula", check = FALSE) <- formula
  slot(x, "vars", check = FALSE) <- as.list(vars)
  slot(x, "M", check = FALSE) <- as.double(M)
  slot(x, "N", check = FALSE) <- as.double(N)
  slot(x, "dim", check = FALSE) <- dim
  x
}

# is(x, "LazyTensor") without S4 dispatch
lt_is <- function(x) isS4(x) && inherits(x, "LazyTensor")

# ---- conditions ------------------------------------------------------------

# Raise a classed rkeops error from the LazyTensor front end through
# rk_abort() (errors.R).  `class` is the subclass ("rkeops_dim_error",
# "rkeops_index_error", ...).
lt_abort <- function(msg, class = "rkeops_input_error") {
  rk_abort(class, msg)
}

lt_dim_error <- function(msg) {
  lt_abort(msg, "rkeops_dim_error")
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

# Accepted data: numeric (or logical) vectors and matrices, data frames of
# numeric or logical columns, dense Matrix objects.  Returns list(data, rows):
# the double matrix without dimnames, and its row names (NULL when none).
# Zero rows are allowed (a reduction then gives zero rows or zeros, as
# keops_kernel() does); zero columns are not.
lt_data_matrix <- function(x, what) {
  if (is.data.frame(x)) {
    ok <- vapply(x, function(col) is.numeric(col) || is.logical(col), NA)
    if (!all(ok)) {
      bad <- names(x)[!ok]
      lt_abort(sprintf(paste0("%s is a data frame with non-numeric column%s ",
                              "%s (%s): convert %s to numbers yourself (a ",
                              "factor is not a coordinate)"), what,
                       if (length(bad) > 1L) "s" else "",
                       paste0("`", bad, "`", collapse = ", "),
                       paste(vapply(x[!ok], function(col) class(col)[1L], ""),
                             collapse = ", "),
                       if (length(bad) > 1L) "them" else "it"),
               "rkeops_input_error")
    }
    rows <- attr(x, "row.names")
    rows <- if (is.character(rows)) rows else NULL
    x <- data.matrix(x)
    rownames(x) <- rows
  } else if (isS4(x) && methods::is(x, "Matrix")) {
    if (!methods::is(x, "denseMatrix"))
      lt_abort(sprintf(paste0("%s is a sparse Matrix (%s): give a dense ",
                              "matrix (as.matrix(x))"), what, class(x)[1L]),
               "rkeops_input_error")
    x <- as.matrix(x)
  }
  if (is.logical(x)) storage.mode(x) <- "double"
  if (!is.numeric(x) || is.complex(x))
    lt_abort(sprintf("%s must be a numeric vector or matrix, not %s", what,
                     class(x)[1L]), "rkeops_input_error")
  if (is.null(dim(x))) {
    rows <- names(x)
    x <- matrix(x, ncol = 1L)
  } else {
    if (length(dim(x)) != 2L)
      lt_abort(sprintf("%s must be a vector or a matrix (it has %d dimensions)",
                       what, length(dim(x))), "rkeops_input_error")
    rows <- rownames(x)
  }
  if (ncol(x) < 1L)
    lt_abort(sprintf("%s has no columns (%d x %d)", what, nrow(x), ncol(x)),
             "rkeops_input_error")
  storage.mode(x) <- "double"
  attributes(x) <- list(dim = dim(x))
  list(data = x, rows = rows)
}

lt_as_data_matrix <- function(x, what) lt_data_matrix(x, what)$data

# A LazyTensor made of one variable.
lt_variable <- function(data, cat) {
  id <- lt_new_id()
  if (cat == "p") {
    if (isS4(data) && methods::is(data, "Matrix")) data <- as.matrix(data)
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
    dm <- lt_data_matrix(data, what)
    data <- dm$data
    rows <- dm$rows
    d <- ncol(data)
    n <- as.double(nrow(data))
  }
  var <- list(id = id, cat = cat, dim = as.integer(d), n = n, data = data)
  if (cat != "p" && !is.null(rows)) var$rows <- as.character(rows)
  vars <- list(var)
  names(vars) <- as.character(id)
  lt_new(formula = lt_token(id), vars = vars,
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
#' The data of `Vi()` and `Vj()` may be a numeric (or logical) matrix or
#' vector, a data frame of numeric or logical columns (a factor or character
#' column is an error of class `rkeops_input_error`: code it yourself), or a
#' dense `Matrix` object; it may have zero rows (reductions then give zero
#' rows, or sums of nothing, as [keops_kernel()] does). Its row names
#' become the row names of the results indexed by the same index.
#'
#' @param x a numeric matrix (or a vector, a one-column matrix; a data
#'   frame of numeric columns; a dense `Matrix`) for `Vi()`, `Vj()`; a
#'   numeric vector for `Pm()`.
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
  if (lt_is(x)) return(x)
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
is.LazyTensor <- function(x) lt_is(x)

# ---- constants -------------------------------------------------------------

# A numeric scalar in an expression.  Whole numbers within the int range
# become IntCst(n) in the formula; every other number becomes a parameter
# Pm(x), so that a model such as exp(-sqdist(x, y) / h) compiles one kernel
# for all values of h (as in pykeops and rkeops 2.x), and no number is ever
# formatted into the formula text (options such as OutDec or scipen cannot
# change a formula).
lt_is_intcst <- function(x) {
  is.finite(x) && x == round(x) && abs(x) < 2^31
}

lt_constant <- function(x) {
  x <- as.double(x)
  if (!is.finite(x))
    lt_abort(sprintf("the constant %s is not finite; use a parameter Pm()",
                     if (is.na(x)) "NA" else if (x > 0) "Inf" else "-Inf"),
             "rkeops_input_error")
  if (!lt_is_intcst(x)) return(lt_variable(x, "p"))
  txt <- sprintf("IntCst(%d)", as.integer(abs(x)))
  if (x < 0) txt <- paste0("(-", txt, ")")
  lt_new(formula = txt, vars = list(), M = NA_real_, N = NA_real_, dim = 1L)
}

# Turn an operand into a LazyTensor: LazyTensors stay, numeric scalars become
# constants, other numeric vectors parameters Pm().  Matrices are refused: the
# user must say whether rows are indexed by i or by j.
as_lt <- function(x, what = "operand") {
  if (lt_is(x)) return(x)
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
                                    "indexed by i"), opname, M, a@M))
      M <- a@M
    }
    if (!is.na(a@N)) {
      if (!is.na(N) && N != a@N)
        lt_dim_error(sprintf(paste0("%s: the operands have %d and %d rows ",
                                    "indexed by j"), opname, N, a@N))
      N <- a@N
    }
  }
  list(vars = vars, M = M, N = N)
}

# Build the LazyTensor of `formula` from the operands `args` with inner
# dimension `dim`.
lt_make <- function(formula, args, dim, opname) {
  m <- lt_merge(args, opname)
  lt_new(formula = formula, vars = m$vars, M = m$M, N = m$N,
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

# ---- shape -------------------------------------------------------------------

#' Shape of a LazyTensor
#'
#' A LazyTensor is a symbolic M x N matrix of vectors: `dim(x)` is `c(M, N)`,
#' the number of i indices and of j indices (`NA` when no variable carries
#' that index: the formula is then the same for every i, or every j), so
#' that `nrow(x)` is M and `ncol(x)` is N, as for the dense matrix that `x`
#' stands for. `get_inner_dim(x)` is the dimension of the vector at each
#' (i, j) (1 for a scalar kernel).
#'
#' @param x a LazyTensor.
#' @return `dim()`: an integer vector `c(M, N)`; `get_inner_dim()`: an
#'   integer.
#' @seealso [LazyTensor-class], [t()] (swap i and j)
#' @examples
#' x_i <- Vi(matrix(runif(12), 4, 3))
#' y_j <- Vj(matrix(runif(15), 5, 3))
#' K <- exp(-sqdist(x_i, y_j))
#' dim(K)
#' nrow(K)
#' ncol(K)
#' get_inner_dim(x_i - y_j)
#' dim(x_i)
#' @name LazyTensor-dim
NULL

lt_int_count <- function(n) {
  if (is.na(n)) NA_integer_ else if (n <= .Machine$integer.max) as.integer(n)
  else n
}

#' @rdname LazyTensor-dim
#' @export
setMethod("dim", "LazyTensor", function(x) {
  d <- c(lt_int_count(x@M), lt_int_count(x@N))
  d
})

#' @rdname LazyTensor-dim
#' @export
get_inner_dim <- function(x) {
  if (!lt_is(x))
    lt_abort(sprintf("get_inner_dim() expects a LazyTensor, not %s",
                     class(x)[1L]), "rkeops_input_error")
  x@dim
}

# ---- renaming variables (t(), as.matrix()) -----------------------------------

# `x` with the variables of `map` (names: old ids) replaced by new variables
# (values: lists with the new cat and data).  Every replaced variable gets a
# new id, so that x and its transform can be combined.
lt_replace_vars <- function(x, map) {
  if (!length(map)) return(x)
  formula <- x@formula
  vars <- x@vars
  tok_new <- character()
  for (old in names(map)) {
    v <- vars[[old]]
    nv <- map[[old]]
    id <- lt_new_id()
    v$id <- id
    v$cat <- nv$cat
    if (!is.null(nv$data)) {
      v$data <- nv$data
      v$n <- as.double(nrow(nv$data))
    }
    v$rows <- nv$rows
    vars[[old]] <- NULL
    vars[[as.character(id)]] <- v
    tok_new[old] <- lt_token(id)
  }
  m <- gregexpr("\\bv[0-9]+\\b", formula, perl = TRUE)
  regmatches(formula, m) <- lapply(regmatches(formula, m), function(t) {
    id <- substring(t, 2L)
    hit <- id %in% names(tok_new)
    t[hit] <- unname(tok_new[id[hit]])
    t
  })
  n_of <- function(cat) {
    n <- vapply(vars, function(v) if (v$cat == cat) v$n else NA_real_, 0)
    n <- n[!is.na(n)]
    if (length(n)) n[[1L]] else NA_real_
  }
  lt_new(formula = formula, vars = vars, M = n_of("i"), N = n_of("j"),
         dim = x@dim)
}
