# bench/vignettes-gpu.R -- the vignettes' computations at full size, on the
# GPU (a script, not a test). Prints tables; every number is measured here.
#
#   Rscript bench/vignettes-data.R .benchdata/data.rds   # where gstat, sp,
#                                                        # fields, spam are
#   Rscript bench/vignettes-gpu.R data=.benchdata/data.rds [cpu] [parts=...]
#     parts=walker,gp,gp1e5   (default all three)
#     sizes=1e5               N of the synthetic GP (default 1e5)
#     quick                   a smoke test on small subsets (any machine)
#     points=gpytorch-init    gp1e5 only at these points (default both)
#     probes=30,10            gp1e5 probe counts (default both: 30 is
#                             kernel_logdet's default, 10 GPyTorch's)
#     ranks=64,128,256        gp1e5 pivchol ranks at gpytorch-init (default
#                             all three; the hard point takes 256)
#     anchors=gp.txt          lines "GP keops float32 <N> <s/iter>" of
#                             ../shared/anchors/gp-anchor.py (same machine)
#
# walker: ordinary kriging of Walker Lake V (exponential variogram fitted by
#   gstat on the vignette's 10% sample), (a) the vignette's case: the 7,800
#   sampled points onto the other 70,200; (b) leave-10%-out from all 78,000
#   points: krige from 70,200 onto 7,800 held-out points. Time and RMSE
#   against the true values (prediction only; float64).
# gp: the GP vignette at full size: Matern-3/2 fit on the 10,726 training
#   stations of spam::USprecip by L-BFGS-B on the log marginal likelihood
#   (solve + kernel_logdet probes + grad), then the held-out RMSE on 1,192.
# gp1e5: one log-marginal-likelihood-plus-gradient evaluation of an RBF
#   GP at N = 1e5 (x uniform in the unit cube, y = sum(sin(6x)) + 0.1 noise,
#   set.seed(0)), in float64 and float32, at GPyTorch's initial
#   hyperparameters (lengthscale = outputscale = noise = log(2)) and at a
#   harder point (lengthscale 0.2, noise 0.01): median of 3 after a warm-up
#   (one run at the hard point).
suppressPackageStartupMessages(library(rkeops))
# helpers (opt(), el(), ok_krige()) from bench/common.R, beside this script
source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE),
                                                  value = TRUE)[1])), "common.R"))
gpu <- !("cpu" %in% args)
parts <- opt("parts", c("walker", "gp", "gp1e5"))
D <- if (any(c("walker", "gp") %in% parts))
  readRDS(opt("data", ".benchdata/data.rds")) else list() # gp1e5: synthetic
if ("quick" %in% args && length(D)) {
  set.seed(9)
  keep <- sort(sample(nrow(D$walker$X), 6000))
  D$walker$sample <- which(keep %in% D$walker$sample)
  D$walker$X <- D$walker$X[keep, ]; D$walker$V <- D$walker$V[keep]
  D$usprecip <- D$usprecip[sample(nrow(D$usprecip), 1500), ]
}
if (gpu) rkeops_use_gpu() else rkeops_use_cpu()
rkeops_use_float64()
commit <- Sys.getenv("RKEOPS_COMMIT")
cat(sprintf("# bench/vignettes-gpu.R  backend %s  commit %s  %s\n",
            if (gpu) "GPU" else "CPU", if (nzchar(commit)) commit else "?",
            format(Sys.time(), "%Y-%m-%d %H:%M")))

if ("walker" %in% parts) {
  W <- D$walker
  s <- W$sample
  ok_krige(W$X[s[1:500], ], W$V[s[1:500]], W$X[1:10, ], W$vgm) # warm-up
  rows <- list()
  for (case in c("vignette", "leave-10%-out")) {
    if (case == "vignette") { tr <- s; te <- setdiff(seq_len(nrow(W$X)), s) }
    else { te <- s; tr <- setdiff(seq_len(nrow(W$X)), s) }
    for (pr in list(list("pivchol", 512L), list("pivchol", NULL), list("pic", NULL))) {
      rk <- pr[[2]]
      t <- el(r <- ok_krige(W$X[tr, ], W$V[tr], W$X[te, ], W$vgm, rank = rk,
                            precond = pr[[1]]))
      rows[[length(rows) + 1]] <- data.frame(
        case = case, n_train = length(tr), n_pred = length(te),
        precond = pr[[1]], rank = r$rank, iterations = r$it,
        residual = signif(r$res, 2), setup_s = round(r$precond_s, 2),
        seconds = round(t, 2),
        RMSE = round(sqrt(mean((r$pred - W$V[te])^2)), 3))
    }
  }
  cat("\n## Walker Lake ordinary kriging (exponential, tol 1e-8, float64)\n")
  print(do.call(rbind, rows), row.names = FALSE)
}

matern32 <- function(r, ell, s2) s2 * (1 + sqrt(3) * r / ell) * exp(-sqrt(3) * r / ell)
rbf <- function(X, ell, s2) s2 * exp(-sqdist(Vi(X), Vj(X)) / (2 * ell^2))

# log marginal likelihood and its gradient (log-parameters), as in the
# vignette; kern(X, ell, s2) builds K from Pm() parameters
lml_fun <- function(X, yc, kern, probes = 30, rank = 256, tol = 1e-6) {
  n <- nrow(X)
  function(th) {
    gc0 <- gc.time()[[3]] # R's garbage collections inside the evaluation
    ell <- Pm(exp(th[1])); s2 <- Pm(exp(th[2])); tau2 <- exp(th[3])
    K <- kern(X, ell, s2)
    set.seed(42)
    t1 <- el_in(ld <- kernel_logdet(K, alpha = tau2, probes = probes, tol = tol,
                                 rank = rank, return_probes = TRUE, b = yc))
    a <- as.vector(attr(ld, "solve"))
    pr <- attr(ld, "probes")
    t2 <- el_in(g <- grad(K * Vj(cbind(a, pr$pinv_z)),
                       cbind(a / 2, -pr$solves / (2 * probes)),
                       "Sum", var = list(ell = ell, s2 = s2), index = "j"))
    g_tau2 <- sum(a^2) / 2 - mean(colSums(pr$solves * pr$pinv_z)) / 2
    structure(-sum(yc * a) / 2 - as.numeric(ld) / 2 - n / 2 * log(2 * pi),
              gradient = exp(th) * c(g$ell, g$s2, g_tau2), se = attr(ld, "se"),
              iterations = max(attr(ld, "iterations")),
              times = c(logdet_solve = t1, grad = t2, gc = gc.time()[[3]] - gc0,
                        attr(ld, "seconds")))
  }
}

if ("gp" %in% parts) {
  P <- D$usprecip
  set.seed(2)
  coslat <- cos(mean(P[, "lat"]) * pi / 180)
  X <- cbind(P[, "lon"] * coslat, P[, "lat"]); y <- P[, "anomaly"]
  test <- sample(nrow(X), round(0.1 * nrow(X)))
  Xtr <- X[-test, ]; ytr <- y[-test]; yc <- ytr - mean(ytr)
  f <- lml_fun(Xtr, yc, function(X, ell, s2) matern32(norm2(Vi(X) - Vj(X)), ell, s2))
  memo <- new.env(); times <- numeric(0)
  ev <- function(th) {
    if (!identical(memo$th, th)) {
      memo$th <- th; times <<- c(times, el_in(memo$v <- f(th)))
    }
    memo$v
  }
  th0 <- log(c(2, var(yc), var(yc) / 4))
  t_fit <- el(fit <- optim(th0, function(th) -as.numeric(ev(th)),
                           function(th) -attr(ev(th), "gradient"),
                           method = "L-BFGS-B", lower = th0 - 3,
                           upper = th0 + 3, control = list(factr = 1e9)))
  h <- exp(fit$par)
  K <- matern32(norm2(Vi(Xtr) - Vj(Xtr)), h[1], h[2])
  t_pred <- el({
    S <- solve(K, cbind(1, ytr), alpha = h[3], tol = 1e-10, precond = "pivchol")
    m <- sum(S[, 2]) / sum(S[, 1])
    pred <- m + as.vector(matern32(norm2(Vi(X[test, ]) - Vj(Xtr)), h[1], h[2]) %*%
                            (S[, 2] - m * S[, 1]))
  })
  cat("\n## GP vignette at full size (spam::USprecip, Matern-3/2, float64)\n")
  print(data.frame(n_train = nrow(Xtr), n_test = length(test),
                   ell = signif(h[1], 4), s2 = signif(h[2], 4),
                   tau2 = signif(h[3], 4), evaluations = length(times),
                   s_per_eval = round(stats::median(times), 3),
                   fit_s = round(t_fit, 1), predict_s = round(t_pred, 2),
                   RMSE = signif(sqrt(mean((pred - y[test])^2)), 5)),
        row.names = FALSE)
}

if ("gp1e5" %in% parts) {
  anchors <- opt("anchors", NULL)
  ko <- if (!is.null(anchors) && file.exists(anchors)) readLines(anchors) else character(0)
  rows <- list()
  # 30 probes (kernel_logdet's default) and 10 (GPyTorch's default
  # num_trace_samples, what its 0.35-0.39 s per iteration uses)
  nprobes <- as.integer(opt("probes", c(30, 10)))
  ranks <- as.integer(opt("ranks", c(64, 128, 256))) # pivchol ranks at gpytorch-init
  for (n in as.numeric(opt("sizes", 1e5))) {
    set.seed(0)
    X <- matrix(runif(n * 3), n, 3)
    y <- rowSums(sin(6 * X)) + 0.1 * rnorm(n)
    yc <- y - mean(y)
    for (prec in c("float64", "float32")) {
      if (prec == "float64") rkeops_use_float64() else rkeops_use_float32()
      for (pt in opt("points", c("gpytorch-init", "hard"))) for (rk in if (pt == "hard") 256L else ranks) for (np in nprobes) {
        f <- lml_fun(X, yc, rbf, probes = np, rank = rk)
        th <- if (pt == "hard") log(c(0.2, 1, 0.01)) else log(rep(log(2), 3))
        # warm-up on 2000 points with the same probes: the block products
        # and the gradient have np + 1 columns, kernels of their own
        lml_fun(X[1:2000, ], yc[1:2000], rbf, probes = np, rank = 64)(th)
        nr <- if (pt == "hard") 1L else 3L # the hard point: one timed run
        ts <- numeric(nr); parts_t <- NULL
        for (k in seq_len(nr)) { ts[k] <- el(v <- f(th)); parts_t <- rbind(parts_t, attr(v, "times")) }
        a <- grep(sprintf("^GP keops %s %d ", prec, as.integer(n)), ko, value = TRUE)
        a <- if (length(a)) as.numeric(strsplit(a[1], " ")[[1]][5]) else NA
        rows[[length(rows) + 1]] <- data.frame(
          N = n, precision = prec, point = pt, rank = rk, probes = np,
          s_per_eval = round(stats::median(ts), 3),
          logdet_solve_s = round(stats::median(parts_t[, 1]), 3),
          grad_s = round(stats::median(parts_t[, 2]), 3),
          t(round(apply(parts_t[, -(1:2), drop = FALSE], 2, stats::median), 3)),
          cg_iterations = attr(v, "iterations"),
          lml = signif(as.numeric(v), 7), se = signif(attr(v, "se") / 2, 3),
          gpytorch_keops_s = a,
          ratio = if (is.na(a)) NA else round(a / stats::median(ts), 2))
      }
    }
  }
  rkeops_use_float64()
  cat("\n## GP log marginal likelihood + gradient, RBF, D = 3 (probes and pivchol rank shown; tol 1e-6)\n")
  cat("# ratio = GPyTorch (KeOps kernel, float32) s per training iteration / ours;\n# logdet_solve_s: kernel_logdet(b = y) (set-up, probes and A^-1 y); grad_s: the grad() pass;\n# gc: seconds of R garbage collection inside the evaluation (gc.time());\n# inside logdet_solve_s (kernel_logdet()'s seconds attribute): setup (R), kernels (fetch,\n# bind the data), precond (set-up), sqrt (probes), pcg, and inside pcg products, precond_apply;\n# release (freeing device memory and page-locked buffers)\n")
  print(do.call(rbind, rows), row.names = FALSE)
}
