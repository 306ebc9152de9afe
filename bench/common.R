# bench/common.R -- helpers shared by the bench scripts, which source it
# from their own folder (Rscript's --file=).

args <- commandArgs(TRUE)

# the value of option name=v1,v2 on the command line (the last one given),
# split at commas, or default
opt <- function(name, default) {
  a <- grep(paste0("^", name, "="), args, value = TRUE)
  if (!length(a)) return(default)
  strsplit(sub(paste0("^", name, "="), "", a[length(a)]), ",")[[1]]
}

el <- function(expr) system.time(expr)[["elapsed"]]
# a timing inside a timed call: no gc() first (system.time()'s full
# collection before each inner timing would count in the outer one: at
# n = 1e5 two of them added about 0.1 s to a GP likelihood evaluation)
el_in <- function(expr) system.time(expr, gcFirst = FALSE)[["elapsed"]]

# several calls timed interleaved: each of `reps` rounds times every
# function of the named list `fns` once (gc(FALSE) before each), in an
# order that rotates from round to round, so that a drift of the machine
# over the run is not read as a difference between them.  Returns a
# reps x length(fns) matrix of seconds, one column per function.
time_rotating <- function(fns, reps) {
  m <- length(fns)
  tm <- matrix(NA_real_, reps, m, dimnames = list(NULL, names(fns)))
  for (k in seq_len(reps)) for (i in (seq_len(m) + k - 2) %% m + 1) {
    gc(FALSE)
    t0 <- proc.time()[["elapsed"]]
    invisible(fns[[i]]())
    tm[k, i] <- proc.time()[["elapsed"]] - t0
  }
  tm
}

# ordinary kriging (unknown constant mean) with the exponential covariance
# v = c(nugget, psill, range) from the points X (values z) onto X0:
# solve() with precond = "pivchol", tol 1e-8, then one kernel product.
# An unconverged solve does not warn: its residual is returned (res).
ok_krige <- function(X, z, X0, v, rank = NULL, maxit = NULL,
                     precond = "pivchol") {
  K <- v[["psill"]] * exp(-norm2(Vi(X) - Vj(X)) / v[["range"]])
  S <- withCallingHandlers(
    solve(K, cbind(1, z), alpha = v[["nugget"]], tol = 1e-8,
          precond = precond, rank = rank, maxit = maxit),
    rkeops_convergence_warning = function(w) invokeRestart("muffleWarning"))
  m <- sum(S[, 2]) / sum(S[, 1])
  K0 <- v[["psill"]] * exp(-norm2(Vi(X0) - Vj(X)) / v[["range"]])
  list(pred = m + as.vector(K0 %*% (S[, 2] - m * S[, 1])),
       it = paste(attr(S, "iterations"), collapse = "/"),
       res = max(attr(S, "residual")), rank = attr(S, "precond")$rank,
       precond_s = attr(S, "seconds")[["precond"]],
       # the set-up's parts: kernel columns (pivchol), diagonal blocks
       # (pic), the Gram / core products; and the iteration's products and
       # preconditioner applications
       parts = c(attr(S, "precond")[c("column_seconds", "block_seconds",
                                      "gram_seconds")],
                 attr(S, "seconds")[c("products", "precond_apply")]))
}
