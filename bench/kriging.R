# bench/kriging.R -- kriging at scale on real data (a script, not a test):
# fields::PRISMelevation (816,307 land cells of elevation, m), ordinary
# kriging with an exponential variogram (fitted by gstat on 20,000 cells,
# bench/vignettes-data.R) from random samples of the cells, predicting
# 10,000 other cells (the same ones at every size): time and RMSE.
#
#   Rscript bench/vignettes-data.R .benchdata/data.rds
#   Rscript bench/kriging.R [gpu] [data=.benchdata/data.rds] [sizes=2e3,5e3]
#     [mkrig_max=5000] [nmax=10,50] [reps=1] [maxit=1000]
#     [precond=pivchol,pic] [prec=float64,float32]
#
# CPU default sizes 2e3, 5e3, 2e4; GPU default 2e4, 1e5, 4e5. Beside rkeops
# (solve() with each precond given, tol 1e-8, float64 unless prec= says
# otherwise: in float32 the products are float32 and solve() corrects with
# float64 residuals (iterative refinement) to the same tol; predictions by one
# kernel product), where the packages are installed: fields::mKrig (dense
# Cholesky, m = 1, the same covariance) up to mkrig_max points, and
# gstat::krige with moving neighbourhoods of nmax points. The time of each
# method includes its solve and its 10,000 predictions.
suppressPackageStartupMessages(library(rkeops))
# helpers (opt(), el(), ok_krige()) from bench/common.R, beside this script
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE),
                                                  value = TRUE)[1])), "common.R"))
gpu <- "gpu" %in% args
if (gpu) rkeops_use_gpu() else rkeops_use_cpu()
rkeops_use_float64()
D <- readRDS(opt("data", ".benchdata/data.rds"))$prism
sizes <- as.numeric(opt("sizes", if (gpu) c(2e4, 1e5, 4e5) else c(2e3, 5e3, 2e4)))
mkrig_max <- as.numeric(opt("mkrig_max", 5000))
nmaxs <- as.integer(opt("nmax", c(10, 50)))
reps <- as.integer(opt("reps", 1))
maxit <- as.integer(opt("maxit", 1000))
preconds <- opt("precond", c("pivchol", "pic"))
precs <- opt("prec", "float64")
have_fields <- requireNamespace("fields", quietly = TRUE)
# mKrig looks its covariance function up by name: fields is attached
if (have_fields) suppressPackageStartupMessages(library(fields))
have_gstat <- requireNamespace("gstat", quietly = TRUE) &&
  requireNamespace("sp", quietly = TRUE)
commit <- Sys.getenv("RKEOPS_COMMIT")
v <- D$vgm
cat(sprintf(paste0("# bench/kriging.R  backend %s  commit %s  %s\n",
                   "# PRISM elevation, %d cells; exponential: nugget %.4g, ",
                   "psill %.4g, range %.4g (degrees)\n"),
            if (gpu) "GPU" else "CPU", if (nzchar(commit)) commit else "?",
            format(Sys.time(), "%Y-%m-%d %H:%M"), nrow(D$X), v[["nugget"]],
            v[["psill"]], v[["range"]]))
med <- function(f) { ts <- numeric(reps); for (k in seq_len(reps)) ts[k] <- el(r <- f()); list(t = stats::median(ts), r = r) }
set.seed(4)
perm <- sample(nrow(D$X))
te <- perm[1:1e4]
X0 <- D$X[te, ]; z0 <- D$z[te]
rmse <- function(p) sqrt(mean((p - z0)^2))

invisible(ok_krige(D$X[perm[1e4 + 1:1000], ], D$z[perm[1e4 + 1:1000]], X0, v)) # warm-up
rows <- list()
add <- function(...) rows[[length(rows) + 1]] <<- data.frame(...)
for (n in sizes) {
  tr <- perm[1e4 + seq_len(n)]
  X <- D$X[tr, ]; z <- D$z[tr]
  for (pc in preconds) for (pr in precs) {
    if (pr == "float32") rkeops_use_float32() else rkeops_use_float64()
    m <- med(function() ok_krige(X, z, X0, v, maxit = maxit, precond = pc))
    rkeops_use_float64()
    add(N = n, method = sprintf("rkeops solve (%s%s)", pc,
                                if (pr == "float32") ", float32" else ""),
        detail = sprintf(paste("rank %d, it %s, res %.1e, set-up %.2f s",
                               "(columns %.2f, blocks %.2f, gram %.2f),",
                               "products %.2f s, precond %.2f s"),
                         m$r$rank, m$r$it, m$r$res, m$r$precond_s,
                         m$r$parts[[1]], m$r$parts[[2]], m$r$parts[[3]],
                         m$r$parts[[4]], m$r$parts[[5]]),
        seconds = round(m$t, 2), RMSE = round(rmse(m$r$pred), 2))
  }
  if (have_fields && n <= mkrig_max) {
    m <- med(function() {
      fit <- fields::mKrig(X, z, m = 1, lambda = v[["nugget"]] / v[["psill"]],
                           cov.function = "stationary.cov",
                           cov.args = list(Covariance = "Exponential",
                                           aRange = v[["range"]]))
      as.vector(predict(fit, X0))
    })
    add(N = n, method = "fields::mKrig (dense)", detail = "",
        seconds = round(m$t, 2), RMSE = round(rmse(m$r), 2))
  }
  if (have_gstat) for (nm in nmaxs) {
    m <- med(function() {
      d <- data.frame(x = X[, 1], y = X[, 2], z = z); sp::coordinates(d) <- ~x + y
      d0 <- data.frame(x = X0[, 1], y = X0[, 2]); sp::coordinates(d0) <- ~x + y
      vm <- gstat::vgm(v[["psill"]], "Exp", v[["range"]], v[["nugget"]])
      gstat::krige(z ~ 1, d, d0, vm, nmax = nm, debug.level = 0)$var1.pred
    })
    add(N = n, method = sprintf("gstat::krige nmax = %d", nm), detail = "",
        seconds = round(m$t, 2), RMSE = round(rmse(m$r), 2))
  }
}
cat(sprintf("# %d held-out cells; elevation sd %.1f m; medians of %d run(s)\n",
            length(te), stats::sd(z0), reps))
print(do.call(rbind, rows), row.names = FALSE)
