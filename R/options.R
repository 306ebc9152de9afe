# options.R -- the computation options (backend, device, precision, threads,
# verbosity, cache directory, formula_only), kept in one package-level
# environment and validated on every change.  rk_core_options() turns them
# into the plain list that the C glue unpacks into an rk_options.

rk_state <- new.env(parent = emptyenv())
rk_state$options <- NULL
rk_state$gpu <- list(count = 0L, why = "not probed yet")
# parsed formulas of rk_reduce(), keyed by scheme, formula and args
rk_state$parsed <- new.env(parent = emptyenv())

rk_option_names <- c(
  "backend", "device_id", "precision", "verbosity", "cache_dir",
  "formula_only", "ncore", "sum_scheme"
)

rk_default_cache_dir <- function() {
  rk_abs_path(tools::R_user_dir("rkeops", which = "cache"))
}

# An absolute, normalised path: a relative cache directory is resolved
# against the working directory now (it does not follow a later setwd()),
# and an absolute path never starts with "-" (never a compiler option).
rk_abs_path <- function(path) {
  path <- path.expand(path)
  if (!grepl("^/", path)) path <- file.path(getwd(), path)
  normalizePath(path, mustWork = FALSE)
}

# defaults: the GPU when one is usable, else the CPU with all cores
rk_default_options <- function() {
  opts <- list(
    backend = if (rk_state$gpu$count > 0L) "GPU" else "CPU",
    device_id = 0L,
    precision = "float64",
    verbosity = FALSE,
    cache_dir = rk_default_cache_dir(),
    formula_only = FALSE,
    ncore = NULL,
    sum_scheme = "auto"
  )
  opts
}

rk_probe_gpu <- function() {
  cfg <- tryCatch(.Call(ffi_config), error = function(e) NULL)
  if (is.null(cfg)) {
    rk_state$gpu <- list(count = 0L, why = "the GPU probe failed")
  } else {
    rk_state$gpu <- list(count = cfg$gpu_count, why = cfg$gpu_why)
  }
  invisible(rk_state$gpu)
}

rk_is_flag <- function(x) is.logical(x) && length(x) == 1L && !is.na(x)

rk_is_count <- function(x, min = 0) {
  is.numeric(x) && length(x) == 1L && !is.na(x) && x == round(x) && x >= min &&
    x < .Machine$integer.max
}

rk_bad_option <- function(name, what) {
  rk_abort("rkeops_value_error", sprintf("option `%s` must be %s", name, what))
}

rk_no_gpu_warning <- function() {
  why <- rk_state$gpu$why
  if (!nzchar(why)) why <- "no usable GPU was found"
  rk_warn(
    "rkeops_gpu_warning",
    sprintf("no usable GPU (%s): computations stay on the CPU", why)
  )
}

# validate one option value; returns the normalised value
rk_check_option <- function(name, value) {
  switch(name,
    backend = {
      if (!is.character(value) || length(value) != 1L || is.na(value) ||
        !toupper(value) %in% c("CPU", "GPU")) {
        rk_bad_option(name, "\"CPU\" or \"GPU\"")
      }
      toupper(value)
    },
    device_id = {
      if (!is.numeric(value) || length(value) < 1L || length(value) > 64L ||
        !all(vapply(value, rk_is_count, logical(1)))) {
        rk_bad_option(name, "one to 64 non-negative integers")
      }
      as.integer(value)
    },
    precision = {
      if (!is.character(value) || length(value) != 1L || is.na(value) ||
        !value %in% c("float32", "float64")) {
        rk_bad_option(name, "\"float32\" or \"float64\"")
      }
      value
    },
    verbosity = ,
    formula_only = {
      if (!rk_is_flag(value)) rk_bad_option(name, "TRUE or FALSE")
      value
    },
    cache_dir = {
      if (!is.character(value) || length(value) != 1L || is.na(value) ||
        !nzchar(value)) {
        rk_bad_option(name, "a directory path (a single string)")
      }
      rk_abs_path(value)
    },
    sum_scheme = {
      if (!is.character(value) || length(value) != 1L || is.na(value) ||
        !value %in% names(rk_sum_schemes)) {
        rk_bad_option(name, paste0("one of ", paste0("\"", names(rk_sum_schemes),
                                                     "\"", collapse = ", ")))
      }
      value
    },
    ncore = {
      if (!is.null(value) && !rk_is_count(value, min = 1)) {
        rk_bad_option(name, "NULL (all cores) or a positive integer")
      }
      if (is.null(value)) NULL else rk_cap_ncore(as.integer(value))
    }
  )
}

# the thread count the engine's getter (src/threads.c) decides for `ncore`
# (NULL: the default), the limit that applied, the cores available, and
# what the last CPU reduction really used
rk_threads_info <- function(ncore = NULL) {
  .Call(ffi_threads_info, if (is.null(ncore)) 0L else as.integer(ncore))
}

# more threads than cores only slows down (and a huge count exhausted
# memory): at most the cores this process may run on, with a warning
rk_cap_ncore <- function(n) {
  avail <- rk_threads_info()$available
  if (n > avail) {
    rk_warn(
      "rkeops_threads_warning",
      sprintf(
        "ncore = %d is more than the %d core%s available: using %d thread%s",
        n, avail, if (avail == 1L) "" else "s", avail,
        if (avail == 1L) "" else "s"
      )
    )
    n <- avail
  }
  n
}

#' Set and get rkeops options
#'
#' `set_rkeops_options()` changes some of the options used by every
#' computation; `get_rkeops_options()` reads them.  Values are validated:
#' an unknown name or a bad value is an error of class `rkeops_value_error`
#' and leaves every option as it was.
#'
#' The options are
#' * `backend`: `"CPU"` or `"GPU"`.  Asking for the GPU when none is usable
#'   warns (class `rkeops_gpu_warning`, with the reason) and keeps the CPU.
#' * `device_id`: the CUDA device number (0-based), or several: every
#'   reduction and `solve()` then splits its output rows over the listed
#'   devices, in proportion to their measured speed (see [rkeops_use_gpu()]).
#'   On the CPU backend, several numbers split the rows into that many
#'   partitions computed one after the other (the same results; a way to
#'   test the split without a GPU).
#' * `precision`: `"float64"` (default) or `"float32"`; R data stay double.
#' * `verbosity`: `TRUE` to print compilation and backend messages.
#' * `cache_dir`: directory of the disk cache of compiled kernels.
#' * `formula_only`: `TRUE` to make LazyTensor reductions return the formula
#'   they would compute instead of computing it.
#' * `ncore`: the largest number of CPU threads; `NULL` for the default
#'   (see "Threads" below).
#' * `sum_scheme`: the summation scheme of LazyTensor sums (`sum()` and
#'   `mean()` over an index, `K %*% B`) when the call gives none: `"auto"`
#'   (default, which is `"block_sum"`: float32 block sums added into a
#'   float64 accumulator, nearly free), `"direct_sum"` (a float32
#'   accumulator: the error grows with the number of points) or
#'   `"kahan_scheme"` (compensated, 1.5 to 2 times slower); see
#'   [keops_kernel()] for each scheme's error and cost (its own
#'   `sum_scheme` argument is not affected).
#'
#' @section Threads:
#' A CPU reduction runs on at most `ncore` threads when `ncore` is set, else
#' on `OMP_NUM_THREADS` threads when that environment variable is set (its
#' first number), else on every core the process may run on (its CPU
#' affinity).  In every case the count is at most the cores available (a
#' larger `ncore` is lowered, with a warning of class
#' `rkeops_threads_warning`), at most `OMP_THREAD_LIMIT`, and at most 2
#' when `_R_CHECK_LIMIT_CORES_` is true (as under `R CMD check --as-cran`).
#' A small reduction runs on fewer threads, one thread per 1e7 units of
#' estimated work (about a few milliseconds), so that threads are not
#' woken for nothing; a 300 x 300 LogSumExp runs on one.  The threads wait
#' without spinning between reductions.
#'
#' A forked process (`parallel::mclapply()`, `parallel::mcparallel()`,
#' future's multicore, doParallel on Unix) runs its reductions on one
#' thread: the number of processes, `mc.cores`, is then the number of
#' cores used.  `mc.cores` is not a thread count and does not limit the
#' threads of the main process.
#'
#' @param options a named list of option values.
#' @param name `NULL` for all options, or the name of one option.
#' @return `set_rkeops_options()`: the previous values of all options,
#'   invisibly (so that they can be restored).  `get_rkeops_options()`: the
#'   named list of all options, or the value of option `name`.
#' @seealso [rkeops_use_cpu()], [rkeops_use_gpu()], [rkeops_use_float32()]
#' @examples
#' old <- set_rkeops_options(list(precision = "float32", ncore = 1))
#' get_rkeops_options("precision")
#' str(get_rkeops_options())
#' set_rkeops_options(old)
#' @export
set_rkeops_options <- function(options = list()) {
  if (!is.list(options)) {
    rk_abort("rkeops_value_error", "`options` must be a named list")
  }
  nms <- names(options)
  if (length(options) > 0L && (is.null(nms) || any(!nzchar(nms)))) {
    rk_abort("rkeops_value_error", "every element of `options` must be named")
  }
  bad <- setdiff(nms, rk_option_names)
  if (length(bad) > 0L) {
    rk_abort(
      "rkeops_value_error",
      sprintf(
        "unknown option%s %s; the options are %s",
        if (length(bad) > 1L) "s" else "",
        paste0("`", bad, "`", collapse = ", "),
        paste0("`", rk_option_names, "`", collapse = ", ")
      )
    )
  }
  old <- get_rkeops_options()
  new <- old
  for (nm in nms) {
    new[nm] <- list(rk_check_option(nm, options[[nm]]))
  }
  if (identical(new$backend, "GPU") && rk_state$gpu$count == 0L) {
    rk_no_gpu_warning()
    new$backend <- "CPU"
  }
  if (identical(new$backend, "GPU") &&
    any(new$device_id >= rk_state$gpu$count)) {
    rk_abort(
      "rkeops_value_error",
      sprintf(
        "no GPU number %d: %d GPU%s usable (numbered from 0)",
        max(new$device_id), rk_state$gpu$count,
        if (rk_state$gpu$count > 1L) "s are" else " is"
      )
    )
  }
  rk_state$options <- new
  invisible(old)
}

#' @rdname set_rkeops_options
#' @export
get_rkeops_options <- function(name = NULL) {
  opts <- rk_state$options
  if (is.null(opts)) {
    opts <- rk_default_options()
    rk_state$options <- opts
  }
  if (is.null(name)) {
    return(opts)
  }
  if (!is.character(name) || length(name) != 1L || !name %in% rk_option_names) {
    rk_abort(
      "rkeops_value_error",
      sprintf(
        "`name` must be NULL or one of %s",
        paste0("\"", rk_option_names, "\"", collapse = ", ")
      )
    )
  }
  opts[[name]]
}

#' Choose where and how precisely rkeops computes
#'
#' `rkeops_use_gpu()` computes on a GPU (when none is usable it warns, with
#' the reason, and stays on the CPU); `rkeops_use_cpu()` computes on the
#' CPU with at most `ncore` threads.  `rkeops_use_float32()` and
#' `rkeops_use_float64()` choose the precision of the computation (inputs
#' and results stay double in R).
#'
#' @param device the CUDA device number, counted from 0; several numbers
#'   (e.g. `c(0, 1)`), or `"all"` for every usable GPU, split the output rows
#'   of every reduction (and of `solve()`, whose rows stay resident on their
#'   device) over those devices in proportion to their speed, measured on
#'   each call and used by the next, one host thread per device.  The same
#'   device listed twice runs its two parts side by side on two streams of
#'   that device, each with its own host thread and device memory (a test
#'   of the multi-device path on one GPU; it can also fill a GPU that one
#'   call leaves partly idle).  A device that does not exist is an error of
#'   class `rkeops_value_error`.
#' @param ncore the largest number of CPU threads; `NULL` for the default
#'   (`OMP_NUM_THREADS`, else every available core; see the Threads section
#'   of [set_rkeops_options()]).  More than the cores available is lowered
#'   to that, with a warning of class `rkeops_threads_warning`.
#' @return The previous options, invisibly.
#' @seealso [set_rkeops_options()]
#' @examples
#' old <- rkeops_use_cpu(ncore = 2)
#' get_rkeops_options("ncore")
#' rkeops_use_float32()
#' get_rkeops_options("precision")
#' rkeops_use_float64()
#' # warns and stays on the CPU when no GPU is usable:
#' suppressWarnings(rkeops_use_gpu(0))
#' get_rkeops_options("backend")
#' set_rkeops_options(old)
#' @export
rkeops_use_gpu <- function(device = 0) {
  if (identical(device, "all")) {
    device <- seq_len(max(rk_state$gpu$count, 1L)) - 1L
  }
  if (!is.numeric(device) || length(device) < 1L || length(device) > 64L ||
    !all(vapply(device, rk_is_count, logical(1)))) {
    rk_bad_option("device", "non-negative integers or \"all\"")
  }
  if (rk_state$gpu$count == 0L) {
    rk_no_gpu_warning()
    return(invisible(set_rkeops_options(list(backend = "CPU"))))
  }
  invisible(set_rkeops_options(list(backend = "GPU", device_id = device)))
}

#' @rdname rkeops_use_gpu
#' @export
rkeops_use_cpu <- function(ncore = NULL) {
  old <- get_rkeops_options()
  set_rkeops_options(list(backend = "CPU"))
  rk_state$options["ncore"] <- list(rk_check_option("ncore", ncore))
  invisible(old)
}

#' @rdname rkeops_use_gpu
#' @export
rkeops_use_float32 <- function() {
  invisible(set_rkeops_options(list(precision = "float32")))
}

#' @rdname rkeops_use_gpu
#' @export
rkeops_use_float64 <- function() {
  invisible(set_rkeops_options(list(precision = "float64")))
}

#' Print compilation and backend messages, or not
#'
#' With verbosity on, every computation reports (through [message()]) the
#' kernel it runs, where, and whether it was compiled, loaded from the disk
#' cache or found in memory.
#'
#' @return The previous options, invisibly.
#' @examples
#' rkeops_enable_verbosity()
#' get_rkeops_options("verbosity")
#' rkeops_disable_verbosity()
#' @export
rkeops_enable_verbosity <- function() {
  invisible(set_rkeops_options(list(verbosity = TRUE)))
}

#' @rdname rkeops_enable_verbosity
#' @export
rkeops_disable_verbosity <- function() {
  invisible(set_rkeops_options(list(verbosity = FALSE)))
}

# the options as the C glue reads them (ffi.c, ffi_options)
# rk_core_options() of the current options, made once per options object
# (every change of the options makes a new one): the per-call path
rk_core_options_of <- function(opts) {
  if (!identical(rk_state$core_of, opts)) {
    rk_state$core <- rk_core_options(opts)
    rk_state$core_of <- opts
  }
  rk_state$core
}

rk_core_options <- function(opts = get_rkeops_options()) {
  list(
    backend = if (identical(opts$backend, "GPU")) 1L else 0L,
    device = as.integer(opts$device_id[1L]),
    devices = as.integer(opts$device_id),
    precision = if (identical(opts$precision, "float32")) 32L else 64L,
    nthreads = if (is.null(opts$ncore)) 0L else as.integer(opts$ncore),
    verbose = isTRUE(opts$verbosity),
    cache_dir = opts$cache_dir
  )
}
