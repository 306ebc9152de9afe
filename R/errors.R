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
#' @param call the call shown with the message: by default the user's call
#'   into rkeops (rk_user_call()), `NULL` for none.
#' @return Does not return.
#' @keywords internal
#' @noRd
rk_abort <- function(class, message, ..., call = rk_user_call()) {
  cond <- structure(
    class = c(class, "rkeops_error", "error", "condition"),
    list(message = paste(message, collapse = "\n"), call = call, ...)
  )
  stop(cond)
}

# a classed warning, c(<class>, "rkeops_warning", "warning", "condition")
rk_warn <- function(class, message, call = rk_user_call()) {
  cond <- structure(
    class = c(class, "rkeops_warning", "warning", "condition"),
    list(message = paste(message, collapse = "\n"), call = call)
  )
  warning(cond)
}

# The user's call into rkeops, for conditions (as vctrs and rlang pass the
# calling frame): the outermost frame running a function of this namespace
# that the user can call -- an exported function, an operator made by
# keops_kernel() (a closure of the namespace under another name), or a
# method of a generic that is not ours (`x + y` on LazyTensors).  Frames
# of internal helpers (called with `:::` or from inside rkeops) are skipped,
# so that the user's own call is shown whatever helper raised the error.
# NULL when rkeops was not called by the user (an internal called
# directly).
rk_user_call <- function() {
  ns <- topenv(environment(rk_user_call))
  exports <- getNamespaceExports(ns)
  n <- sys.nframe() - 1L
  for (k in seq_len(max(n, 0L))) {
    f <- sys.function(k)
    if (!is.function(f) || is.primitive(f)) next
    env <- environment(f)
    if (is.null(env) || !identical(topenv(env), ns)) next
    cl <- sys.call(k)
    head <- cl[[1L]]
    nm <- if (is.name(head)) {
      as.character(head)
    } else if (is.call(head) && length(head) == 3L &&
               (identical(head[[1L]], as.name("::")) ||
                identical(head[[1L]], as.name(":::")))) {
      as.character(head[[3L]])
    } else {
      ""
    }
    if (!nzchar(nm)) next
    if (nm %in% exports || !exists(nm, envir = ns, inherits = FALSE)) return(cl)
  }
  NULL
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
  # an error at a position of the formula comes with the source and the
  # caret, drawn by the engine (lex.c rk_err_show)
  msg <- info$message
  pos <- if (info$pos >= 0L) info$pos + 1L else NA_integer_
  formula <- info$formula
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
