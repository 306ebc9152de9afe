# lazytensor-show.R -- printing LazyTensors.
#' @include lazytensor-class.R
NULL

lt_shape_text <- function(x) {
  n <- function(v) if (is.na(v)) "." else format(v)
  sprintf("%s x %s (i x j), inner dimension %d", n(x@M), n(x@N), x@dim)
}

#' Print a LazyTensor
#'
#' `show()` (and printing at the console) displays the formula as it will
#' be sent to the engine (variables named `v0, v1, ...` in order of
#' appearance), the variables with their declarations and data sizes, and
#' the symbolic shape: the number of i indices x the number of j indices
#' (`.` when no variable carries the index) and the inner dimension.
#'
#' @param object a LazyTensor.
#' @return `object`, invisibly.
#' @examples
#' x_i <- Vi(matrix(runif(12), 4, 3))
#' y_j <- Vj(matrix(runif(15), 5, 3))
#' exp(-sqdist(x_i, y_j) / Pm(0.5))
#' @export
setMethod("show", "LazyTensor", function(object) {
  p <- lt_canonical(object)
  cat("LazyTensor: symbolic matrix ", lt_shape_text(object), "\n", sep = "")
  cat("formula: ", p$formula, "\n", sep = "")
  if (length(p$vars)) {
    cat("variables:\n")
    for (k in seq_along(p$vars)) {
      v <- p$vars[[k]]
      what <- if (v$cat == "p") {
        vals <- format(v$data, digits = 4)
        if (length(vals) > 4L) vals <- c(vals[1:4], "...")
        paste0("parameter ", paste(vals, collapse = " "))
      } else {
        sprintf("%d x %d matrix indexed by %s", as.integer(v$n), v$dim, v$cat)
      }
      cat(sprintf("  %s  %s\n", p$args[k], what))
    }
  } else {
    cat("variables: none (a constant)\n")
  }
  invisible(object)
})
