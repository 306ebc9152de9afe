# check.R -- check_rkeops(): what works on this machine, and a small
# Gaussian kernel sum checked against the dense computation in R.

#' Check that rkeops works on this machine
#'
#' Prints the C compiler and flags used for the kernels, whether OpenMP is
#' available and how many threads are used, the CUDA driver, NVRTC and GPUs
#' (or why none is usable), and the cache directory; then computes a small
#' Gaussian kernel sum with the current options and compares it with the
#' dense computation in R.
#'
#' @param verbose print the report (`FALSE`: only compute).
#' @return `TRUE` when the test reduction computes correctly, else `FALSE`
#'   (invisibly).
#' @examples
#' check_rkeops()
#' @export
check_rkeops <- function(verbose = TRUE) {
  say <- function(...) if (verbose) cat(..., sep = "")
  cfg <- tryCatch(rk_config(), error = function(e) e)
  opts <- get_rkeops_options()
  say("rkeops ", format(utils::packageVersion("rkeops")), "\n")
  say("  R ", format(getRversion()), " on ", R.version$platform, "\n")
  if (inherits(cfg, "error")) {
    say("  configuration: unavailable (", conditionMessage(cfg), ")\n")
  } else {
    desc <- strsplit(cfg$description, "\n", fixed = TRUE)[[1L]]
    desc <- desc[nzchar(desc) & !grepl("^rkeops ", desc)]
    say(paste0("  engine: ", trimws(desc), "\n"))
    say(
      "  OpenMP in kernels: ", if (isTRUE(cfg$openmp)) "yes" else "no",
      ", threads used: ",
      if (is.null(opts$ncore)) sprintf("all (%s)", rk_ncores()) else opts$ncore,
      "\n"
    )
    if (cfg$gpu_count > 0L) {
      say("  GPUs: ", cfg$gpu_count, "\n")
    } else {
      say("  GPUs: none (", if (nzchar(cfg$gpu_why)) cfg$gpu_why else "not found", ")\n")
    }
  }
  say("  backend: ", opts$backend, ", precision: ", opts$precision, "\n")
  say("  cache directory: ", opts$cache_dir, "\n")

  ok <- tryCatch(
    {
      # deterministic data: no change to the user's random seed
      d <- list(
        x = matrix(sin(seq_len(60)), 30, 2),
        y = matrix(cos(seq_len(80)), 40, 2),
        b = cos(seq_len(40) / 3)
      )
      op <- keops_kernel(
        "Sum_Reduction(Exp(-SqDist(x, y) / s) * b, 1)",
        c("x=Vi(2)", "y=Vj(2)", "b=Vj(1)", "s=Pm(1)")
      )
      res <- op(list(d$x, d$y, d$b, 0.5))
      d2 <- outer(rowSums(d$x^2), rowSums(d$y^2), "+") - 2 * d$x %*% t(d$y)
      ref <- exp(-d2 / 0.5) %*% d$b
      err <- max(abs(res - ref)) / max(abs(ref))
      tol <- if (identical(opts$precision, "float32")) 1e-4 else 1e-10
      say(sprintf("  test reduction: relative error %.2g ", err))
      if (err < tol) {
        say("(OK)\n")
        TRUE
      } else {
        say("(FAILED)\n")
        FALSE
      }
    },
    error = function(e) {
      say("  test reduction FAILED: ", conditionMessage(e), "\n")
      FALSE
    }
  )
  invisible(ok)
}

rk_ncores <- function() {
  n <- parallel::detectCores()
  if (is.na(n)) "?" else n
}
