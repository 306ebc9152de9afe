# errors.R -- classed conditions.  The C glue never calls error() for an
# engine failure: it hands the engine's rk_error to rk_ffi_fail(), which
# turns it into an R condition of class c(<subclass>, "rkeops_error",
# "error", "condition").  R-side checks call rk_abort() directly.

# engine error code (rk_code_name()) -> condition subclass
rk_error_classes <- c(
  RK_EPARSE = "rkeops_parse_error",
  RK_EDIM = "rkeops_dim_error",
  RK_EINPUT = "rkeops_input_error",
  RK_EVAR = "rkeops_var_error",
  RK_EOP = "rkeops_op_error",
  RK_EVALUE = "rkeops_value_error",
  RK_ECOMPILE = "rkeops_compile_error",
  RK_ECUDA = "rkeops_cuda_error",
  RK_ECACHE = "rkeops_cache_error",
  RK_ENOMEM = "rkeops_memory_error",
  RK_EUNSUPPORTED = "rkeops_unsupported_error",
  RK_EINTERNAL = "rkeops_internal_error"
)

#' Signal a classed rkeops error
#'
#' @param class subclass, e.g. `"rkeops_dim_error"`; `"rkeops_error"`,
#'   `"error"` and `"condition"` are appended.
#' @param message the message (pasted together when a vector).
#' @param ... further fields of the condition object.
#' @param call the call shown with the message (`NULL`: none).
#' @return Does not return.
#' @keywords internal
#' @noRd
rk_abort <- function(class, message, ..., call = NULL) {
  cond <- structure(
    class = c(class, "rkeops_error", "error", "condition"),
    list(message = paste(message, collapse = "\n"), call = call, ...)
  )
  stop(cond)
}

# a classed warning, c(<class>, "rkeops_warning", "warning", "condition")
rk_warn <- function(class, message, call = NULL) {
  cond <- structure(
    class = c(class, "rkeops_warning", "warning", "condition"),
    list(message = paste(message, collapse = "\n"), call = call)
  )
  warning(cond)
}

# Called from C (ffi.c, ffi_abort) with the fields of an rk_error, after
# the engine released everything it held.
rk_ffi_fail <- function(info) {
  if (nzchar(info$messages) && isTRUE(rk_state$options$verbosity)) {
    message(info$messages, appendLF = FALSE)
  }
  if (identical(info$code_name, "RK_EINTERRUPT")) {
    rk_interrupt()
  }
  class <- unname(rk_error_classes[info$code_name])
  if (is.na(class)) class <- "rkeops_internal_error"
  msg <- info$message
  pos <- if (info$pos >= 0L) info$pos + 1L else NA_integer_
  formula <- info$formula
  if (!is.na(pos) && is.character(formula) && !grepl("\n", msg, fixed = TRUE)) {
    # point at the offending character (byte offsets: fine for ASCII formulas)
    msg <- c(
      msg,
      paste0("  ", formula),
      paste0("  ", strrep(" ", pos - 1L), "^")
    )
  }
  fields <- list(
    code = info$code_name,
    position = pos,
    arg = if (info$arg >= 0L) info$arg + 1L else NA_integer_,
    formula = formula
  )
  if (class == "rkeops_compile_error") {
    fields$log <- info$log
    fields$path <- info$path
    if (nzchar(info$path)) msg <- c(msg, paste0("generated source: ", info$path))
    if (nzchar(info$log)) msg <- c(msg, "compiler log:", info$log)
  } else if (class == "rkeops_internal_error") {
    msg <- c(msg, "This is a bug in rkeops: please report it.")
  }
  do.call(rk_abort, c(list(class, msg), fields))
}

# The engine stopped because the user pressed Ctrl-C (the callback swallowed
# the interrupt with R_ToplevelExec): signal an "interrupt" condition, so
# that tryCatch(interrupt = ) handlers run, then return to the top level as
# an interrupt would.
rk_interrupt <- function() {
  cond <- structure(
    class = c("rkeops_interrupt", "interrupt", "condition"),
    list(message = "rkeops: interrupted", call = NULL)
  )
  signalCondition(cond)
  invokeRestart("abort")
}
