# check.R -- check_rkeops(): what works on this machine, and a small
# Gaussian kernel sum checked against the dense computation in R.

#' Check that rkeops works on this machine
#'
#' Prints the C compiler and flags used for the kernels, whether OpenMP is
#' available and how many threads are used, the CUDA driver, NVRTC and GPUs
#' (or why none is usable, once, with a hint of how to get the driver and
#' NVRTC), and the cache directory; then computes a small
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
    desc <- trimws(desc[nzchar(desc) & !grepl("^rkeops ", desc)])
    # the driver's reason is printed once, on the GPUs line
    is_driver <- grepl("^CUDA driver: not available", desc)
    say(paste0("  engine: ", desc[!is_driver], "\n"))
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
    for (h in rk_check_hints(desc, cfg)) say("  hint: ", h, "\n")
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

# what to do when the GPU path is unavailable: how to get NVRTC and the
# driver (the engine's own messages say what was tried)
rk_check_hints <- function(desc, cfg) {
  out <- character()
  nvrtc <- grep("^NVRTC:", desc, value = TRUE)
  # (the engine's message may already say how to get it: then no hint)
  if (length(nvrtc) && grepl("^NVRTC: not available", nvrtc[1L]) &&
      !grepl("CUDA_HOME", nvrtc[1L], fixed = TRUE)) {
    out <- c(out, paste0(
      "NVRTC (libnvrtc.so, the CUDA runtime compiler) comes with the CUDA ",
      "toolkit (Debian/Ubuntu: the nvidia-cuda-toolkit package; NVIDIA's ",
      "installer puts it in /usr/local/cuda; Python's nvidia-cuda-nvrtc ",
      "wheel has it too); set CUDA_HOME to the directory above its lib64/ ",
      "(or add its directory to LD_LIBRARY_PATH). No compiler other than ",
      "NVRTC is needed for the GPU."
    ))
  }
  if (cfg$gpu_count == 0L && grepl("driver", cfg$gpu_why, ignore.case = TRUE)) {
    out <- c(out, paste0(
      "the GPU needs NVIDIA's driver (libcuda.so.1, installed with the ",
      "kernel driver, not with the toolkit); the CPU backend works without it."
    ))
  }
  out
}

rk_ncores <- function() {
  n <- parallel::detectCores()
  if (is.na(n)) "?" else n
}
