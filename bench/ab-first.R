# bench/ab-first.R -- where the first call of a new formula goes (issue 11,
# item 4): for each formula new to the process and to the kernel cache,
#   parse   keops_kernel() alone,
#   nvrtc   generating and NVRTC-compiling its CUDA source (rk_nvrtc_check,
#           nothing loaded),
#   first   keops_kernel() and its first call (parse, generate, compile,
#           cache, load, run) on a 10 x 10 problem,
#   compile the compile step of that first call (from the verbose message
#           "compiled ... in X s"), and rest = first - compile.
# Prints the median of `reps` new formulas of each kind, with the NVRTC
# -Ofast-compile level of the developer knob RKEOPS_NVRTC_FAST (if set).
# Usage: Rscript bench/ab-first.R [label] [reps=5]
suppressPackageStartupMessages(library(rkeops))
args <- commandArgs(trailingOnly = TRUE)
label <- if (length(args) && !grepl("=", args[1])) args[1] else "run"
reps <- 5L
for (a in args) if (grepl("^reps=", a)) reps <- as.integer(sub("^reps=", "", a))
now <- function() proc.time()[["elapsed"]]
gpu <- rkeops:::rk_config()$gpu_count > 0L
if (gpu) rkeops_use_gpu(0) else rkeops_use_cpu()
rkeops_use_float32()
cc <- c(9L, 0L)
forms <- list(
  gauss = list("Sum_Reduction(Exp(-SqDist(x, y) * IntCst(%d)) * b, 1)",
               c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)")),
  knn = list("ArgKMin_Reduction(SqDist(x, y) * IntCst(%d), 10, 0)",
             c("x=Vi(3)", "y=Vj(3)")))
x <- matrix(runif(30), 10, 3)
b <- runif(10)
res <- NULL
for (nm in names(forms)) {
  f <- forms[[nm]]
  tp <- tn <- tf <- tc <- numeric(reps)
  for (r in seq_len(reps)) {
    k <- as.integer((now() * 1000 + 7 * r) %% 999983) + 1L
    fs <- sprintf(f[[1]], k)
    t0 <- now()
    invisible(rkeops:::rk_nvrtc_check(fs, f[[2]], precision = 32L,
                                      major = cc[1], minor = cc[2]))
    tn[r] <- now() - t0
    fs <- sprintf(f[[1]], k + 1L)
    t0 <- now()
    op <- keops_kernel(fs, f[[2]])
    t1 <- now()
    msgs <- character()
    withCallingHandlers({
      old <- set_rkeops_options(list(verbosity = TRUE))
      invisible(if (nm == "gauss") op(list(x, x, b)) else op(list(x, x)))
      set_rkeops_options(old)
    }, message = function(m) {
      msgs <<- c(msgs, conditionMessage(m))
      invokeRestart("muffleMessage")
    })
    tf[r] <- now() - t0
    cm <- regmatches(msgs, regexpr("in [0-9.]+ s", msgs))
    tc[r] <- if (length(cm)) as.numeric(gsub("[^0-9.]", "", cm[1])) else NA
    tp[r] <- t1 - t0
  }
  res <- rbind(res, data.frame(label = label, case = nm,
                               fast = Sys.getenv("RKEOPS_NVRTC_FAST", "none"),
                               parse_s = median(tp), nvrtc_s = median(tn),
                               first_s = median(tf),
                               compile_s = median(tc),
                               rest_s = median(tf - tc)))
}
print(res, row.names = FALSE, digits = 4)
