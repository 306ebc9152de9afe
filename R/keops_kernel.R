# keops_kernel.R -- the formula interface: parse once (rk_parse), check the
# inputs in R with errors naming the culprit (rk_prepare_inputs), run
# through the C glue (rk_run).  rk_reduce() is the entry point of the
# LazyTensor front end: same path, with a cache of parsed formulas.

rk_sum_schemes <- c(auto = 0L, direct_sum = 1L, block_sum = 2L, kahan_scheme = 3L)

# declared names of args: "x=Vi(3)" -> "x" ("" when no "=")
rk_arg_names <- function(args) {
  out <- rep("", length(args))
  has <- grepl("=", args, fixed = TRUE)
  out[has] <- trimws(sub("=.*$", "", args[has]))
  out
}

#' Parse a formula (internal)
#'
#' @param formula one reduction formula (a string).
#' @param args character vector of variable declarations.
#' @param sum_scheme `"auto"`, `"direct_sum"`, `"block_sum"` or
#'   `"kahan_scheme"`.
#' @return A list: `ptr` (external pointer to the engine's formula), `names`,
#'   `dims`, `cats` (0 = i, 1 = j, 2 = parameter; one entry per input
#'   position), `axis`, `outdim`, `outkind`, `canonical`, `nodes`, and
#'   `formula`, `args`, `sum_scheme`, `arg_names`.
#' @keywords internal
#' @noRd
rk_parse <- function(formula, args, sum_scheme = "auto") {
  if (!is.character(formula) || length(formula) != 1L || is.na(formula)) {
    rk_abort("rkeops_input_error", "`formula` must be a single string")
  }
  if (is.null(args)) args <- character()
  if (!is.character(args) || anyNA(args)) {
    rk_abort(
      "rkeops_input_error",
      "`args` must be a character vector of declarations such as \"x=Vi(3)\""
    )
  }
  if (!is.character(sum_scheme) || length(sum_scheme) != 1L ||
    !sum_scheme %in% names(rk_sum_schemes)) {
    rk_abort(
      "rkeops_value_error",
      sprintf(
        "`sum_scheme` must be one of %s",
        paste0("\"", names(rk_sum_schemes), "\"", collapse = ", ")
      )
    )
  }
  info <- .Call(ffi_parse, formula, args, rk_sum_schemes[[sum_scheme]])
  info$formula <- formula
  info$args <- args
  info$sum_scheme <- sum_scheme
  info$arg_names <- rk_arg_names(args)
  # where each declaration's input goes (rk_order_inputs), once
  info$arg_pos <- match(info$arg_names, info$names)
  info$arg_identity <- identical(info$arg_pos, seq_along(info$names))
  info
}

#' Define a kernel reduction from a formula
#'
#' `keops_kernel()` parses and checks a KeOps formula at once (a malformed
#' formula is an error of class `rkeops_parse_error` pointing at the
#' offending character) and returns an R function that computes the
#' reduction on data.  The kernel is compiled at the first call, then
#' reused from the memory cache (in this session) or the disk cache (see
#' [get_rkeops_cache_dir()]).
#'
#' The operator checks its inputs and names the culprit by its declared name:
#' a wrong number of inputs or a non-numeric (or complex) input is an error
#' of class `rkeops_input_error`; a matrix whose dimension disagrees with its
#' declaration, or variables indexed by the same index with different
#' numbers of points, an error of class `rkeops_dim_error`.  Integer inputs
#' are converted to double.  A plain vector is a variable of dimension 1
#' (one value per point) or a parameter.  When the output index has no
#' points the result has zero rows.  The elements of `input` are matched by
#' name when they are all named with the declared names, else by position.
#'
#' As in KeOps, an index that no variable carries has size 1:
#' `Sum_Reduction(x + p, 0)` with `x` a `Vi` and `p` a `Pm` sums over the
#' points of `x` (one output row), `Sum_Reduction(x, 1)` returns `x`. In
#' `KMin`, `ArgKMin` and `KMin_ArgKMin`, `K` may exceed the number of points
#' reduced: the missing values are `Inf`, the missing indices `NA`.
#' `Min` and `Max` propagate NaN (as R's `min()`); the reductions that select
#' points (`ArgMin`, `Min_ArgMin`, `KMin`, ...) rank them as `order()` does,
#' NaN last; `SumSoftMaxWeight` is NaN when every value is `-Inf`.
#' The comparisons `Equal`, `NotEqual`, `LessThan`, `LessOrEqual`,
#' `GreaterThan` and `GreaterOrEqual` give 1 or 0. `SqDist(x, y)` and
#' `WeightedSqDist(s, x, y)` broadcast an `x` or `y` of dimension 1; note
#' that the weight `s` comes first in the formula language (the KeOps
#' order) but last in the R function [weightedsqdist()].
#' The rkeops 2.x spelling `Grad(Sum_Reduction(f, a), x, eta)` of a gradient
#' is accepted: it is `Sum_Reduction(Grad(f, x, eta), a)` when `x` is a
#' parameter or indexed like the output, and otherwise has one row per point
#' of `x` (`Sum_Reduction(Grad(f, x, eta), 1 - a)`, the KeOps rule); see
#' [keops_grad()] for the other reductions.
#'
#' @param formula one reduction, e.g.
#'   `"Sum_Reduction(Exp(-SqDist(x, y) / s) * b, 1)"`; the last argument is
#'   the axis: `1` reduces over j (one result row per i), `0` over i.
#' @param args character vector declaring the variables in order:
#'   `"x=Vi(3)"` (indexed by i, dimension 3), `"y=Vj(3)"` (indexed by j),
#'   `"s=Pm(1)"` (a parameter); `"x=Vi(0,3)"` gives the position explicitly.
#' @param sum_scheme summation scheme of `Sum_Reduction` (it matters in
#'   float32; in float64 every scheme but `"kahan_scheme"` is the same code):
#'   `"auto"` (default) is `"block_sum"`.  `"block_sum"`: float32 partial
#'   sums over blocks of the reduction index (a tile of at most a few
#'   thousand points) added into a float64 accumulator; a Gaussian sum over
#'   1e6 points in float32 is within about 1e-7 of float64 (max error / max
#'   value) at about the cost of `"direct_sum"` (one double add per tile and
#'   row).  `"direct_sum"`: a float32 accumulator; the error grows with the
#'   number of points (about 6e-7 at 1e6 on the CPU, 2e-4 on the GPU, whose
#'   threads add point by point).  `"kahan_scheme"`: compensated float32
#'   summation, about as accurate as `"block_sum"`, 1.5 to 2 times slower.
#'   Other reductions (Min, KMin, LogSumExp, ...) ignore the scheme.
#' @return A function `function(input, inner_dim = "col")` of class
#'   `rkeops_operator`, with attributes `formula`, `args`, `sum_scheme` and
#'   the parsed metadata (`vars`: a data frame of names, positions,
#'   dimensions and categories; `axis`, `outdim`, `outkind`, `canonical`).
#'   Calling it with `input`, a list with one element per variable, returns
#'   a numeric matrix with one row per output index and `outdim` columns.
#'   With `inner_dim = "row"` the inputs hold one point per column instead of
#'   one per row (the result keeps one row per output index).  Arg-type
#'   reductions return 1-based indices.
#' @seealso [set_rkeops_options()], [check_rkeops()]
#' @examples
#' op <- keops_kernel(
#'   "Sum_Reduction(Exp(-SqDist(x, y) / s) * b, 1)",
#'   c("x=Vi(2)", "y=Vj(2)", "b=Vj(1)", "s=Pm(1)")
#' )
#' op
#' x <- matrix(runif(20), 10, 2)
#' y <- matrix(runif(30), 15, 2)
#' b <- runif(15)
#' res <- op(list(x, y, b, 0.5))
#' # the same computed densely in R
#' d2 <- outer(rowSums(x^2), rowSums(y^2), "+") - 2 * x %*% t(y)
#' max(abs(res - exp(-d2 / 0.5) %*% b))
#' # points as columns
#' res2 <- op(list(t(x), t(y), b, 0.5), inner_dim = "row")
#' all.equal(res, res2)
#' @export
keops_kernel <- function(formula, args, sum_scheme = "auto") {
  parsed <- rk_parse(formula, args, sum_scheme)
  op <- function(input, inner_dim = "col") {
    rk_run(parsed, input, inner_dim)
  }
  structure(
    op,
    class = c("rkeops_operator", "function"),
    formula = formula,
    args = args,
    sum_scheme = sum_scheme,
    vars = rk_vars_frame(parsed),
    axis = parsed$axis,
    outdim = parsed$outdim,
    outkind = parsed$outkind,
    canonical = parsed$canonical
  )
}

rk_vars_frame <- function(parsed) {
  data.frame(
    name = parsed$names,
    position = seq_along(parsed$names) - 1L,
    dim = parsed$dims,
    cat = c("i", "j", "p")[parsed$cats + 1L],
    stringsAsFactors = FALSE
  )
}

#' @export
print.rkeops_operator <- function(x, ...) {
  cat("rkeops operator\n")
  cat("  formula:  ", attr(x, "formula"), "\n", sep = "")
  cat("  canonical:", " ", attr(x, "canonical"), "\n", sep = "")
  cat("  args:     ", paste(attr(x, "args"), collapse = ", "), "\n", sep = "")
  axis <- attr(x, "axis")
  cat(sprintf(
    "  output:    one row per %s, %d column%s\n",
    if (identical(axis, 1L)) "i" else "j", attr(x, "outdim"),
    if (identical(attr(x, "outdim"), 1L)) "" else "s"
  ))
  invisible(x)
}

# label of the input at 1-based position p, for messages
rk_label <- function(parsed, p) {
  nm <- parsed$names[p]
  if (nzchar(nm)) sprintf("`%s`", nm) else sprintf("Var(%d)", p - 1L)
}

rk_decl <- function(parsed, p) {
  sprintf(
    "%s(%d)", c("Vi", "Vj", "Pm")[parsed$cats[p] + 1L], parsed$dims[p]
  )
}

# inputs in the order of args (or matched by name) -> inputs by position
rk_order_inputs <- function(parsed, input) {
  nv <- length(parsed$names)
  nms <- names(input)
  if (is.null(nms) && isTRUE(parsed$arg_identity)) return(input)
  if (!is.null(nms) && all(nzchar(nms)) && !anyDuplicated(nms) &&
    setequal(nms, parsed$names) && all(nzchar(parsed$names))) {
    return(input[parsed$names])
  }
  pos <- parsed$arg_pos
  if (is.null(pos)) pos <- match(parsed$arg_names, parsed$names)
  if (length(pos) == nv && !anyNA(pos) && !anyDuplicated(pos)) {
    out <- vector("list", nv)
    out[pos] <- input
    return(out)
  }
  input
}

# one input that is not a plain double matrix of the declared shape:
# converted (data frame, integers, parameter), or a classed error saying
# what is wrong.  Returns list(x, n) (n: its points; NA for a parameter).
rk_prepare_one <- function(parsed, p, x, row, shape) {
  lab <- rk_label(parsed, p)
  d <- parsed$dims[p]
  cat <- parsed$cats[p]
  n <- NA_integer_
  if (is.data.frame(x)) x <- as.matrix(x)
  if (is.complex(x)) {
    rk_abort(
      "rkeops_input_error",
      sprintf("%s is complex: rkeops computes with real numbers only", lab),
      arg = p
    )
  }
  if (!is.numeric(x)) {
    rk_abort(
      "rkeops_input_error",
      sprintf(
        "%s must be a numeric matrix or vector, not %s", lab,
        if (is.null(x)) "NULL" else paste0("an object of class ", class(x)[1L])
      ),
      arg = p
    )
  }
  if (!is.double(x)) storage.mode(x) <- "double"
  if (cat == 2L) {
    if (length(x) != d) {
      rk_abort(
        "rkeops_dim_error",
        sprintf(
          "%s is declared %s: it needs %d value%s, not %d", lab,
          rk_decl(parsed, p), d, if (d == 1L) "" else "s", length(x)
        ),
        arg = p
      )
    }
    x <- as.double(x)
    dim(x) <- if (row) c(d, 1L) else c(1L, d)
  } else {
    dx <- dim(x)
    if (is.null(dx)) {
      if (d != 1L) {
        rk_abort(
          "rkeops_dim_error",
          sprintf(
            "%s is declared %s: give a matrix with %d %s (one %s per point), not a vector",
            lab, rk_decl(parsed, p), d, if (row) "rows" else "columns",
            if (row) "column" else "row"
          ),
          arg = p
        )
      }
      n <- length(x)
      # a vector is one point per element; the engine reads it so without
      # a dim attribute, and setting one copies the caller's data: only
      # when the caller slices the inputs (`shape`)
      if (shape) {
        x <- as.double(x)
        dim(x) <- if (row) c(1L, n) else c(n, 1L)
      }
    } else if (length(dx) != 2L) {
      rk_abort(
        "rkeops_dim_error",
        sprintf("%s must be a matrix, not an array with %d dimensions", lab, length(dx)),
        arg = p
      )
    } else {
      inner <- if (row) dx[1L] else dx[2L]
      if (inner != d) {
        rk_abort(
          "rkeops_dim_error",
          sprintf(
            "%s is declared %s but has %d %s%s", lab, rk_decl(parsed, p),
            inner, if (row) "rows" else "columns",
            if (row) " (inner_dim = \"row\": one column per point)" else ""
          ),
          arg = p
        )
      }
      # dimnames are left alone (stripping them copies the data; the
      # engine reads the data and the dim only); a class is dropped, so
      # that slicing (cluster, solve) is a plain matrix's
      n <- if (row) dx[2L] else dx[1L]
      if (!is.null(oldClass(x))) attributes(x) <- list(dim = dx)
    }
}
  list(x = x, n = n)
}

# Check and normalise the inputs: a list, by position, of double matrices
# in the layout of inner_dim (parameters: 1 x d for "col", d x 1 for "row").
# Returns list(inputs, npts) with npts the numbers of i and j points.
# shape: vectors of i- or j-points become one-column (one-row) matrices;
# FALSE when the inputs only go to the engine (no copy of the caller's data)
rk_prepare_inputs <- function(parsed, input, row, shape = TRUE) {
  nv <- length(parsed$names)
  if (is.data.frame(input) || !is.list(input)) {
    if (nv == 1L) {
      input <- list(input)
    } else {
      rk_abort(
        "rkeops_input_error",
        sprintf("`input` must be a list of %d elements (one per variable)", nv)
      )
    }
  }
  if (length(input) != nv) {
    vars <- vapply(seq_len(nv), function(p) rk_label(parsed, p), "")
    rk_abort(
      "rkeops_input_error",
      sprintf(
        "the formula has %d variable%s (%s) but `input` has %d element%s",
        nv, if (nv == 1L) "" else "s", paste(vars, collapse = ", "),
        length(input), if (length(input) == 1L) "" else "s"
      )
    )
  }
  input <- rk_order_inputs(parsed, input)
  npts <- c(i = NA_real_, j = NA_real_)
  first <- c(i = 0L, j = 0L) # the input that set npts (its label on error)
  dims <- parsed$dims
  cats <- parsed$cats
  for (p in seq_len(nv)) {
    x <- input[[p]]
    d <- dims[p]
    cat <- cats[p]
    # the common case, checked first and cheaply: a plain double matrix of
    # the declared inner dimension, or a double vector of points for d = 1
    dx <- dim(x)
    n <- NA_integer_
    done <- FALSE
    if (is.double(x) && is.null(oldClass(x))) {
      if (cat == 2L) {
        # a parameter as it is (the engine needs only its d values) when the
        # inputs go to the engine alone
        done <- !shape && length(x) == d
      } else if (is.null(dx)) {
        if (d == 1L) {
          n <- length(x)
          if (shape) dim(x) <- if (row) c(1L, n) else c(n, 1L)
          done <- TRUE
        }
      } else if (length(dx) == 2L && dx[if (row) 1L else 2L] == d) {
        n <- dx[if (row) 2L else 1L]
        done <- TRUE
      }
    }
    if (!done) {
      one <- rk_prepare_one(parsed, p, x, row, shape)
      x <- one$x
      n <- one$n
    }
    if (cat != 2L) {
      idx <- if (cat == 0L) "i" else "j"
      if (is.na(npts[[idx]])) {
        npts[[idx]] <- n
        first[[idx]] <- p
      } else if (npts[[idx]] != n) {
        rk_abort(
          "rkeops_dim_error",
          sprintf(
            "inconsistent numbers of points for index %s: %s has %d, %s has %d",
            idx, rk_label(parsed, first[[idx]]), as.integer(npts[[idx]]),
            rk_label(parsed, p), n
          ),
          arg = p
        )
      }
    }
    input[[p]] <- x
  }
  list(inputs = unname(input), npts = npts)
}

# Missing indices (K larger than the number of points, no point at all)
# come from the kernels as NaN: make them NA.  outkind: 1 indices only,
# 2 values then indices (red.def).
rk_index_na <- function(res, outkind) {
  if (!is.matrix(res) || !isTRUE(outkind > 0L) || !anyNA(res)) return(res)
  cols <- if (outkind == 1L) seq_len(ncol(res)) else (ncol(res) / 2 + 1):ncol(res)
  sub <- res[, cols, drop = FALSE]
  sub[is.nan(sub)] <- NA_real_
  res[, cols] <- sub
  res
}

# Run a parsed formula on inputs given as in keops_kernel().
rk_run <- function(parsed, input, inner_dim = "col") {
  if (!is.character(inner_dim) || length(inner_dim) != 1L ||
    !inner_dim %in% c("col", "row")) {
    rk_abort("rkeops_value_error", "`inner_dim` must be \"col\" or \"row\"")
  }
  row <- identical(inner_dim, "row")
  cluster <- rk_cluster_on()
  prep <- rk_prepare_inputs(parsed, input, row, shape = cluster)
  outidx <- if (identical(parsed$axis, 1L)) "i" else "j"
  nout <- prep$npts[[outidx]]
  if (!is.na(nout) && nout == 0) {
    return(matrix(numeric(0), 0L, parsed$outdim))
  }
  if (!is.na(nout) && cluster) return(rk_cluster_run(parsed, prep, row))
  opts <- get_rkeops_options()
  verbose <- isTRUE(opts$verbosity)
  if (verbose) t0 <- proc.time()[[3L]]
  res <- .Call(ffi_run, parsed$ptr, prep$inputs, rk_core_options_of(opts), row)
  msgs <- attr(res, "messages")
  if (!is.null(msgs)) attr(res, "messages") <- NULL
  if (parsed$outkind > 0L) res <- rk_index_na(res, parsed$outkind)
  if (verbose) {
    if (!is.null(msgs)) message(msgs, appendLF = FALSE)
    message(sprintf(
      "rkeops: %s -> %d x %d on %s (%s%s) in %.3f s",
      parsed$canonical, nrow(res), ncol(res), opts$backend, opts$precision,
      if (identical(opts$backend, "CPU")) {
        sprintf(", %s threads", if (is.null(opts$ncore)) "all" else opts$ncore)
      } else {
        sprintf(", device %s", paste(opts$device_id, collapse = ","))
      },
      proc.time()[[3L]] - t0
    ))
  }
  res
}

# ---- for the LazyTensor front end ----------------------------------------

rk_parsed_cache_max <- 512L

#' Compute a reduction from a formula (internal, for LazyTensor)
#'
#' Parses `formula` once per session (parsed formulas are cached by formula,
#' args and scheme) and runs it on `input` like an operator made by
#' [keops_kernel()].  When the option `formula_only` is `TRUE`, returns the
#' formula string instead of computing.
#'
#' @param formula,args,sum_scheme as in [keops_kernel()].
#' @param input list of inputs, as for a `keops_kernel()` operator.
#' @param inner_dim `"col"` (one point per row) or `"row"`.
#' @return The result matrix, or `formula` when `formula_only` is set.
#' @keywords internal
#' @noRd
rk_reduce <- function(formula, args, input, sum_scheme = "auto", inner_dim = "col") {
  if (isTRUE(get_rkeops_options("formula_only"))) {
    return(formula)
  }
  rk_run(rk_parsed(formula, args, sum_scheme), input, inner_dim)
}

# the parsed formula, from the session cache or parsed now.  The cache is an
# environment holding the exact keys in `.keys` (matched with match(), so a
# formula of any length is a key: environment names stop at 10000 bytes) and
# entry k under the name "k".
rk_parsed <- function(formula, args, sum_scheme = "auto") {
  key <- paste(c(sum_scheme, formula, args), collapse = "\n")
  cache <- rk_state$parsed
  keys <- cache$.keys
  k <- if (is.null(keys)) NA_integer_ else match(key, keys)
  if (!is.na(k)) {
    return(get(as.character(k), envir = cache, inherits = FALSE))
  }
  parsed <- rk_parse(formula, args, sum_scheme)
  if (length(keys) >= rk_parsed_cache_max) {
    cache <- new.env(parent = emptyenv())
    rk_state$parsed <- cache
    keys <- NULL
  }
  k <- length(keys) + 1L
  cache$.keys <- c(keys, key)
  assign(as.character(k), parsed, envir = cache)
  parsed
}

# parsed formula behind an operator, a parsed list, or a formula + args
rk_as_parsed <- function(x, args = NULL, sum_scheme = "auto") {
  if (inherits(x, "rkeops_operator")) {
    return(environment(x)$parsed)
  }
  if (is.list(x) && !is.null(x$ptr)) {
    return(x)
  }
  rk_parsed(x, args, sum_scheme)
}

# ---- diagnostics for tests and developers (internal) --------------------

# generated source (CPU C or CUDA) of an operator / formula for the options
rk_source <- function(x, args = NULL, backend = "CPU", precision = "float64",
                      sum_scheme = "auto") {
  parsed <- rk_as_parsed(x, args, sum_scheme)
  opts <- get_rkeops_options()
  opts$backend <- rk_check_option("backend", backend)
  opts$precision <- rk_check_option("precision", precision)
  .Call(ffi_source, parsed$ptr, rk_core_options(opts))
}

# make sure the kernel is compiled; TRUE when a compiler ran
rk_prepare <- function(x, args = NULL, sum_scheme = "auto") {
  parsed <- rk_as_parsed(x, args, sum_scheme)
  res <- .Call(ffi_prepare, parsed$ptr, rk_core_options())
  msgs <- attr(res, "messages")
  if (!is.null(msgs) && isTRUE(get_rkeops_options("verbosity"))) {
    message(msgs, appendLF = FALSE)
  }
  as.logical(res)
}

# compile the CUDA source with NVRTC for compute capability major.minor
rk_nvrtc_check <- function(x, args = NULL, precision = 64L, major = 7L,
                           minor = 0L, sum_scheme = "auto") {
  parsed <- rk_as_parsed(x, args, sum_scheme)
  .Call(ffi_nvrtc_check, parsed$ptr, as.integer(precision), as.integer(major),
        as.integer(minor))
}

# counters: kernels compiled and loaded from disk by this process
rk_stats <- function() .Call(ffi_stats)

# TRUE when the operator's external pointer lost its address (after
# saveRDS()/readRDS()); the next call re-parses
ffi_ptr_is_null_r <- function(x) .Call(ffi_ptr_is_null, rk_as_parsed(x)$ptr)

# engine configuration: list(description, openmp, gpu_count, gpu_why)
rk_config <- function() .Call(ffi_config)
