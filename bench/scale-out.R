# bench/scale-out.R -- reductions across cluster workers (rkeops_cluster()),
# a script, not a test.
#
#   Rscript bench/scale-out.R              N = M = 2e5 on 1, 2 and 4 workers
#   Rscript bench/scale-out.R quick        N = M = 2e4 (a few seconds)
#   Rscript bench/scale-out.R N=5e5 workers=1,2,4,8 reps=5 cores=16
#   Rscript bench/scale-out.R solveN=2e4 iters=200   the solve part's size
#
# The Gaussian kernel sum a_i = sum_j exp(-|x_i - y_j|^2 / s) b_j, D = 3,
# float64 on the CPU: one local process with `cores` threads (all the cores
# by default) against 1, 2 and 4 PSOCK workers on this host with cores / n
# threads each (on a 16-core host: 4 workers of 4 threads against one process
# of 16 threads).  For each: the median time of a plain call (x, y and b sent
# at every call), of a distributed-operator apply (x and y sent once by
# rkeops_cluster_prepare(), only b at each apply: one conjugate-gradient
# matvec), the bytes sent and received per apply, and the efficiency
# t(local) / t(cluster) (1 = no loss to the split).  Every cluster result is
# compared with the local one (identical on the CPU: rows are split, not
# sums).
#
# Then the hard system of bench/solve.R, (alpha I + K) x = b with
# K_ij = exp(-|x_i - x_j|^2 / (2 h^2)), h = 0.2, alpha = 1e-3, uniform points
# in the unit cube (D = 3), solveN points, solved by solve() locally and on
# the workers (the points sent once, the iterate at each iteration, the
# pivoted Cholesky's columns one exchange per block of pivots): the
# converged pivchol solve and the time per iteration without
# preconditioner, with the efficiency t(local) / t(cluster).

args <- commandArgs(TRUE)
opt <- function(name, default) {
  a <- grep(paste0("^", name, "="), args, value = TRUE)
  if (length(a)) sub(paste0("^", name, "="), "", a[length(a)]) else default
}
quick <- "quick" %in% args
N <- as.numeric(opt("N", if (quick) 2e4 else 2e5))
workers <- as.integer(strsplit(opt("workers", "1,2,4"), ",")[[1]])
reps <- as.integer(opt("reps", if (quick) 3 else 5))
cores <- as.integer(opt("cores", parallel::detectCores()))
options(width = 160)

suppressPackageStartupMessages(library(rkeops))
library(parallel)
rkeops_use_cpu(ncore = cores)
rkeops_use_float64()

set.seed(1)
D <- 3
x <- matrix(runif(N * D), N, D)
y <- matrix(runif(N * D), N, D)
b <- rnorm(N)
s <- 0.2^2
op <- keops_kernel(
  "Sum_Reduction(Exp(-SqDist(x, y) / s) * b, 1)",
  c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)", "s=Pm(1)")
)

# PSOCK workers with TCP_NODELAY on both ends (no 40 ms stall per message)
make_workers <- function(nw) {
  old <- options(socketOptions = "no-delay")
  on.exit(options(old))
  makePSOCKcluster(nw, rscript_args = c("-e", shQuote("options(socketOptions = 'no-delay')")))
}

elapsed <- function(expr) unname(system.time(expr)[["elapsed"]])
med <- function(f) {
  f()
  median(vapply(seq_len(reps), function(k) elapsed(f()), numeric(1)))
}

cat(sprintf(
  "Gaussian sum, N = M = %s, D = 3, float64, %d cores, median of %d\n\n",
  format(N, scientific = TRUE), cores, reps
))
ref <- op(list(x, y, b, s))
t_local <- med(function() op(list(x, y, b, s)))
rows <- data.frame(
  setup = sprintf("1 process x %d threads", cores), call_s = t_local,
  apply_s = NA, sent_per_apply = NA, recv_per_apply = NA,
  eff_call = 1, eff_apply = NA, identical = TRUE
)
for (nw in workers) {
  th <- max(1L, cores %/% nw)
  cl <- make_workers(nw)
  rkeops_cluster(cl, ncore = th)
  r <- op(list(x, y, b, s))
  same <- identical(r, ref)
  t_call <- med(function() op(list(x, y, b, s)))
  h <- rkeops_cluster_prepare(op, list(x, y, b, s), varying = "b")
  rkeops_cluster_apply(h, b)
  tr0 <- rkeops_cluster_traffic()
  t_apply <- med(function() rkeops_cluster_apply(h, b))
  tr1 <- rkeops_cluster_traffic()
  napp <- reps + 1
  same <- same && identical(rkeops_cluster_apply(h, b), ref)
  rkeops_cluster_release(h)
  rkeops_cluster(NULL)
  stopCluster(cl)
  rows <- rbind(rows, data.frame(
    setup = sprintf("%d worker%s x %d threads", nw, if (nw > 1) "s" else "", th),
    call_s = t_call, apply_s = t_apply,
    sent_per_apply = sum(tr1$sent - tr0$sent) / napp,
    recv_per_apply = sum(tr1$received - tr0$received) / napp,
    eff_call = t_local / t_call, eff_apply = t_local / t_apply,
    identical = same
  ))
}
print(rows, digits = 3, row.names = FALSE)
cat(sprintf(
  "\nbytes per apply: sent %s (b: %s doubles to each worker), received %s (the product: %s doubles)\n",
  format(rows$sent_per_apply[nrow(rows)], big.mark = ","),
  format(N, scientific = TRUE),
  format(rows$recv_per_apply[nrow(rows)], big.mark = ","),
  format(N, scientific = TRUE)
))

# ---- the hard solve() system ------------------------------------------------
# solve() on the cluster runs the local solver (C conjugate gradients and
# preconditioners) with its products and pivoted-Cholesky columns computed
# by the workers: the converged solve with "pivchol" (tol 1e-6), and the
# time per iteration of `iters` unpreconditioned iterations.
nS <- as.numeric(opt("solveN", if (quick) 5e3 else 2e4))
iters <- as.integer(opt("iters", if (quick) 50 else 200))
set.seed(2)
X <- matrix(runif(nS * 3), nS, 3)
rhs <- matrix(rnorm(nS), nS, 1)
h <- 0.2
alpha <- 1e-3
K <- exp(-sqdist(Vi(X), Vj(X)) / (2 * h^2))
X10 <- X[1:10, ]
K10 <- exp(-sqdist(Vi(X10), Vj(X10)) / (2 * h^2))
invisible(solve(K10, rhs[1:10, , drop = FALSE], alpha = alpha)) # compiled
run_solve <- function() {
  t1 <- elapsed(s1 <- solve(K, rhs, alpha = alpha, tol = 1e-6, precond = "pivchol"))
  t2 <- elapsed(s2 <- suppressWarnings(solve(K, rhs, alpha = alpha, tol = 1e-12,
                                             precond = "none", maxit = iters)))
  p1 <- attr(s1, "precond")
  c(pivchol_s = t1, it = max(attr(s1, "iterations")), rank = p1$rank,
    setup_s = p1$seconds, residual = max(attr(s1, "residual")),
    none_s_per_iter = t2 / max(attr(s2, "iterations")), x = s1)
}
cat(sprintf(paste0(
  "\nhard system (h = 0.2, alpha = 1e-3), n = %s: solve() with pivchol to ",
  "tol 1e-6, and %d iterations of precond \"none\"\n\n"),
  format(nS, scientific = TRUE), iters))
loc <- run_solve()
xs <- grep("^x", names(loc))
srows <- data.frame(setup = sprintf("1 process x %d threads", cores),
                    t(loc[-xs]), eff_pivchol = 1, eff_iter = 1, same = TRUE)
for (nw in workers) {
  th <- max(1L, cores %/% nw)
  cl <- make_workers(nw)
  rkeops_cluster(cl, ncore = th)
  invisible(solve(K10, rhs[1:10, , drop = FALSE], alpha = alpha))
  rkeops_cluster_traffic(reset = TRUE)
  r <- run_solve()
  tr <- rkeops_cluster_traffic()
  rkeops_cluster(NULL)
  stopCluster(cl)
  srows <- rbind(srows, data.frame(
    setup = sprintf("%d worker%s x %d threads", nw, if (nw > 1) "s" else "", th),
    t(r[-xs]), eff_pivchol = loc[["pivchol_s"]] / r[["pivchol_s"]],
    eff_iter = loc[["none_s_per_iter"]] / r[["none_s_per_iter"]],
    same = identical(unname(r[xs]), unname(loc[xs]))
  ))
  cat(sprintf("  %d workers: %s bytes sent, %s received in all (both solves)\n",
              nw, format(sum(tr$sent), big.mark = ","),
              format(sum(tr$received), big.mark = ",")))
}
print(srows, digits = 3, row.names = FALSE)
