# solve.R -- linear systems (alpha I + K) x = b with a symbolic kernel matrix
# K (a LazyTensor), by preconditioned conjugate gradients, and log det(alpha I
# + K) by stochastic Lanczos quadrature.
#
# R checks the inputs and builds, from K, three pieces for the C solver
# (src/ffi-solve.c, src/solve-*.c):
#   - the block product Sum_Reduction(K * b_j, 1), b_j a Vj of dimension
#     ncol(b) whose data the solver replaces by the iterate at each product;
#   - the column formula Sum_Reduction(K, 1), evaluated against one point for
#     the pivoted Cholesky columns K[, p];
#   - the diagonal K_ii, computed here once by the formula of K with its
#     j-variables replaced by i-variables of the same data.
# The iteration itself runs in C; no formula is parsed or compiled during it.
#' @include lazytensor-class.R lazytensor-ops.R lazytensor-reduce.R
NULL

sv_precond_codes <- c(none = 0L, jacobi = 1L, pivchol = 2L, nystrom = 3L,
                      pic = 4L)

# "pic": the points are put in an order where spatially close points are
# consecutive (recursive coordinate bisection of the i-variables' data,
# widest coordinate first, halves at the median, down to at most `block`
# points), K's data are permuted by it, and each run of points is a block:
# list(K = the permuted K, perm, starts (0-based first rows, then n),
# width = the largest block)
sv_pic_order <- function(X, block) {
  n <- nrow(X)
  perm <- seq_len(n)
  leaves <- integer(0)
  stack <- list(c(1L, n))
  while (length(stack)) {
    rg <- stack[[length(stack)]]
    stack[[length(stack)]] <- NULL
    a <- rg[1L]
    z <- rg[2L]
    m <- z - a + 1L
    if (m <= block) {
      leaves <- c(leaves, a)
      next
    }
    idx <- perm[a:z]
    sub <- X[idx, , drop = FALSE]
    spread <- apply(sub, 2L, function(v) max(v) - min(v))
    o <- order(sub[, which.max(spread)], method = "radix")
    perm[a:z] <- idx[o]
    h <- a + m %/% 2L - 1L
    stack[[length(stack) + 1L]] <- c(h + 1L, z)
    stack[[length(stack) + 1L]] <- c(a, h)
  }
  starts <- c(sort(leaves) - 1L, n)
  list(perm = perm, starts = as.double(starts), width = as.integer(max(diff(starts))))
}

sv_pic_prepare <- function(K, block) {
  vi <- sv_vars(K, "i")
  X <- do.call(cbind, lapply(vi, function(v) v$data))
  o <- sv_pic_order(X, block)
  for (id in names(K@vars)) {
    v <- K@vars[[id]]
    if (v$cat %in% c("i", "j")) {
      v$data <- v$data[o$perm, , drop = FALSE]
      if (!is.null(v$rows)) v$rows <- v$rows[o$perm]
      K@vars[[id]] <- v
    }
  }
  c(list(K = K), o)
}

# the diagonal-block formula of "pic": K * OneHot(v_j, w), v_j the
# position of point j in its block modulo w, reduced over j; the solver runs
# it on the rows [start, end) of each block over its points in runs of w
# (the columns [c0, c0 + w) of the block, c0 a multiple of w). w is at most
# sv_pic_chunk: the state is w values a row, and a wider one costs w
# additions a pair (and on the GPU spills out of registers): at 1e5 points
# in blocks of 256, a width of 256 took 3.6 s on an H100 (float64)
sv_pic_chunk <- 32L
sv_pic_kernel <- function(K, pk) {
  n <- as.integer(K@M)
  w <- min(pk$width, sv_pic_chunk)
  pos <- seq_len(n) - 1 - rep(pk$starts[-length(pk$starts)], diff(pk$starts))
  bk <- sv_kernel(lt_reduction_parts(K * one_hot(Vj(matrix(pos %% w, n, 1L)),
                                                 w), "Sum", "j"))
  c(bk[c("ptr", "inputs")], list(starts = pk$starts))
}

# `block` is pic's alone: given with another preconditioner it would do
# nothing, so it is refused
sv_block_arg <- function(block, precond) {
  if (is.null(block)) return(256L)
  b <- sv_count(block, "block", 1)
  if (precond != "pic")
    sv_abort(sprintf(paste0("`block` is the block size of precond = \"pic\"; ",
                            "it does nothing with precond = \"%s\""), precond))
  b
}

# the rank of "nystrom" when rank = NULL, and the width of its sketch passes
sv_nystrom_rank <- function(rank, n) {
  if (is.null(rank)) min(n, 256L) else min(n, max(1L, rank))
}
sv_sketch_width <- function(r) as.integer(min(r, 64L))

sv_abort <- function(msg, class = "rkeops_value_error") {
  rk_abort(class, msg)
}

sv_number <- function(x, what, min = -Inf, strict = FALSE) {
  if (!is.numeric(x) || length(x) != 1L || is.na(x) || !is.finite(x))
    sv_abort(sprintf("`%s` must be a single finite number", what))
  if (x < min || (strict && x == min))
    sv_abort(sprintf("`%s` must be %s %s, not %s", what,
                     if (strict) "greater than" else "at least",
                     format(min), format(x)))
  as.double(x)
}

sv_count <- function(x, what, min = 0) {
  if (!is.numeric(x) || length(x) != 1L || !is.finite(x) || x != round(x) ||
      x < min)
    sv_abort(sprintf("`%s` must be a whole number of at least %d", what, min))
  as.integer(x)
}

# a right-hand side (or x0) as an n x E double matrix, checked
sv_rhs <- function(b, n, what) {
  if (is.data.frame(b)) b <- data.matrix(b)
  if (is.logical(b)) storage.mode(b) <- "double"
  if (!is.numeric(b) || is.complex(b))
    sv_abort(sprintf("`%s` must be a numeric vector or matrix, not %s", what,
                     class(b)[1L]), "rkeops_input_error")
  if (is.null(dim(b))) b <- matrix(b, ncol = 1L)
  if (length(dim(b)) != 2L)
    sv_abort(sprintf("`%s` must be a vector or a matrix", what),
             "rkeops_input_error")
  if (nrow(b) != n)
    sv_abort(sprintf(paste0("`%s` has %d rows but K is %d x %d: give one row ",
                            "per point"), what, nrow(b), n, n),
             "rkeops_dim_error")
  if (ncol(b) < 1L)
    sv_abort(sprintf("`%s` has no columns", what), "rkeops_dim_error")
  if (!all(is.finite(b)))
    sv_abort(sprintf("`%s` has non-finite values (NA, NaN or Inf)", what))
  storage.mode(b) <- "double"
  attributes(b) <- list(dim = dim(b))
  b
}

# the variables of K indexed by i, by j, and the parameters
sv_vars <- function(K, cat) Filter(function(v) v$cat == cat, K@vars)

# K with every j-variable replaced by an i-variable of the same data: the
# diagonal K_ii as an M x 1 LazyTensor (times a one-point dummy Vj so that
# there is a j to reduce over)
sv_diag_lt <- function(K) {
  f <- K@formula
  vars <- K@vars[vapply(K@vars, function(v) v$cat != "j", TRUE)]
  for (v in sv_vars(K, "j")) {
    w <- lt_variable(v$data, "i")
    w_var <- w@vars[[1L]]
    f <- gsub(paste0("\\bv", v$id, "\\b"), lt_token(w_var$id), f, perl = TRUE)
    vars[[as.character(w_var$id)]] <- w_var
  }
  Kd <- lt_new(formula = f, vars = vars, M = K@M, N = NA_real_, dim = K@dim)
  Kd * Vj(matrix(1, 1L, 1L))
}

# a parsed formula with its inputs, checked, for the C solver
sv_kernel <- function(parts) {
  parsed <- rk_parsed(parts$formula, parts$args, "auto")
  prep <- rk_prepare_inputs(parsed, parts$input, FALSE)
  list(ptr = parsed$ptr, inputs = prep$inputs, parsed = parsed)
}

# K[S, S] for the points S, by the column formula (one point per run)
sv_block <- function(colk, S) {
  cats <- colk$parsed$cats
  sapply(S, function(p) {
    inp <- lapply(seq_along(colk$inputs), function(v) {
      x <- colk$inputs[[v]]
      if (cats[v] == 0L) x[S, , drop = FALSE]
      else if (cats[v] == 1L) x[p, , drop = FALSE]
      else x
    })
    rk_run(colk$parsed, inp)[, 1L]
  })
}

# Check that K can be solved with and build the pieces; `E` columns.
sv_setup <- function(K, E, precond, symmetric, call_name, rank = NULL) {
  if (!lt_is(K))
    sv_abort(sprintf("%s: K must be a LazyTensor", call_name),
             "rkeops_input_error")
  if (K@dim != 1L)
    sv_abort(sprintf(paste0("%s: K must be a scalar kernel (dimension 1), ",
                            "not of dimension %d"), call_name, K@dim),
             "rkeops_dim_error")
  if (is.na(K@M) || is.na(K@N))
    sv_abort(sprintf(paste0("%s: K must have variables indexed by i and by ",
                            "j (Vi() and Vj())"), call_name),
             "rkeops_symmetry_error")
  if (K@M != K@N)
    sv_abort(sprintf("%s: K must be square, not %d x %d", call_name, K@M,
                     K@N), "rkeops_symmetry_error")
  if (!is.null(symmetric) && !(is.logical(symmetric) &&
                               length(symmetric) == 1L && !is.na(symmetric)))
    sv_abort("`symmetric` must be NULL, TRUE or FALSE", "rkeops_input_error")
  if (identical(symmetric, FALSE))
    sv_abort(sprintf(paste0("%s: K is declared not symmetric; conjugate ",
                            "gradients need a symmetric positive ",
                            "(semi-)definite K"), call_name),
             "rkeops_symmetry_error")
  for (v in K@vars)
    if (!all(is.finite(v$data)))
      sv_abort(sprintf("%s: the data of K have non-finite values", call_name))
  vi <- sv_vars(K, "i")
  if (is.null(symmetric)) {
    for (v in sv_vars(K, "j")) {
      same <- vapply(vi, function(u) identical(u$data, v$data), TRUE)
      if (!any(same))
        sv_abort(sprintf(paste0(
          "%s: K is not symmetric in form: a j-variable (dimension %d) has ",
          "no i-variable with the same data. K must be K(x_i, x_j) with the ",
          "same points on both sides; if it is symmetric nonetheless, say so ",
          "with symmetric = TRUE"), call_name, v$dim),
          "rkeops_symmetry_error")
    }
  }
  n <- as.integer(K@M)
  mv <- sv_kernel(lt_reduction_parts(K * Vj(matrix(0, n, E)), "Sum", "j"))
  mv$bpos <- length(mv$inputs) - 1L
  if (isTRUE(get_rkeops_options("formula_only")))
    return(list(formula = mv$parsed$formula))
  colk <- sv_kernel(lt_reduction_parts(K, "Sum", "j"))
  if (is.null(symmetric)) {
    # a numerical check on a few points, spread over the data (no RNG)
    S <- unique(round(seq(1, n, length.out = min(n, 12L))))
    B <- sv_block(colk, S)
    f32 <- identical(get_rkeops_options("precision"), "float32")
    scale <- max(abs(B))
    if (max(abs(B - t(B))) > (if (f32) 1e-4 else 1e-9) * max(scale, 1e-300))
      sv_abort(sprintf(paste0(
        "%s: K is not symmetric: K[i, j] and K[j, i] differ (by %.3g on a ",
        "sample of %d points); if this is rounding, say symmetric = TRUE"),
        call_name, max(abs(B - t(B))), length(S)), "rkeops_symmetry_error")
  }
  diag <- NULL
  if (precond != "none") {
    diag <- as.double(sum_reduction(sv_diag_lt(K), "j"))
    if (!all(is.finite(diag)))
      sv_abort(sprintf("%s: the diagonal of K has non-finite values",
                       call_name))
  }
  sketch <- NULL
  if (precond == "nystrom") {
    w <- sv_sketch_width(sv_nystrom_rank(rank, n))
    sk <- sv_kernel(lt_reduction_parts(K * Vj(matrix(0, n, w)), "Sum", "j"))
    sketch <- c(sk[c("ptr", "inputs")], list(bpos = length(sk$inputs) - 1L))
  }
  list(n = n, formula = NULL, mv = mv[c("ptr", "inputs", "bpos")],
       col = if (precond %in% c("pivchol", "pic")) colk[c("ptr", "inputs")] else NULL,
       diag = diag, sketch = sketch)
}

sv_maxit <- function(maxit, n) {
  if (is.null(maxit)) return(as.integer(min(10000, max(1000, 10 * n))))
  sv_count(maxit, "maxit", 1)
}

sv_ctl <- function(alpha, tol, maxit, precond, rank, sketch = NULL) {
  list(alpha = alpha, tol = tol, maxit = maxit,
       sketch = sketch,
       # the seed of the Nystrom test matrix, from R's generator (set.seed()
       # makes it reproducible); drawn only when it is used
       seed = if (is.null(sketch)) NULL else floor(stats::runif(2) * 2^31),
       precond = sv_precond_codes[[precond]],
       rank = if (is.null(rank)) -1L else rank,
       progress = isTRUE(get_rkeops_options("verbosity")),
       progress_after = rk_progress_after())
}

# TRUE in a process forked from the one that loaded the package
# (parallel::mclapply, mcparallel, a FORK cluster)
rk_in_fork <- function() !identical(Sys.getpid(), rk_state$pid)

# seconds after which a solve shows its progress line unasked: 2, or the
# option rkeops.progress_after; never in a forked child, whose lines would
# interleave with the parent's and its siblings' (verbosity still shows it)
rk_progress_after <- function() {
  if (rk_in_fork()) return(Inf)
  a <- getOption("rkeops.progress_after", 2)
  if (!is.numeric(a) || length(a) != 1L || is.na(a) || a < 0) 2 else as.double(a)
}

sv_precond_arg <- function(precond) {
  if (!is.character(precond) || length(precond) != 1L || is.na(precond) ||
      !precond %in% names(sv_precond_codes))
    sv_abort(sprintf("`precond` must be one of %s",
                     paste0("\"", names(sv_precond_codes), "\"",
                            collapse = ", ")))
  precond
}

sv_common <- function(alpha, tol, rank) {
  list(alpha = sv_number(alpha, "alpha", 0),
       tol = {
         t <- sv_number(tol, "tol", 0, strict = TRUE)
         if (t >= 1) sv_abort("`tol` must be smaller than 1")
         t
       },
       rank = if (is.null(rank)) NULL else sv_count(rank, "rank", 0))
}

#' Solve a kernel linear system by preconditioned conjugate gradients
#'
#' `solve(K, b, alpha)` solves `(alpha * I + K) x = b` for a symbolic kernel
#' matrix `K` (a [LazyTensor-class] such as `exp(-sqdist(Vi(X), Vj(X)) / s)`)
#' without ever forming `K`: conjugate gradients need only products `K v`,
#' computed by the compiled kernel, one pass per iteration for all the columns
#' of `b` together (a block product with `ncol(b)` outputs). This is the system
#' of kriging, splines, Gaussian-process regression and kernel ridge
#' regression.
#'
#' **K** must be square, symmetric and positive (semi-)definite, of dimension
#' 1. By default (`symmetric = NULL`) rkeops checks symmetry in form: every
#' j-variable of `K` must carry the same data as an i-variable (`K(x_i, x_j)`
#' with the same points on both sides), and `K[i, j] = K[j, i]` is checked
#' numerically on 12 points spread over the data. `symmetric = TRUE` declares
#' `K` symmetric and skips both checks (for a formula that is symmetric for a
#' reason rkeops cannot see); `symmetric = FALSE` is an error. Positive
#' definiteness is not checked beforehand: a non-positive curvature met by CG
#' in float64 is an error.
#'
#' **Preconditioners** (`precond`):
#' - `"none"`: plain CG.
#' - `"jacobi"` (the default): the diagonal of `alpha I + K`, computed once by
#'   the formula of `K` at `(x_i, x_i)`. It does nothing for stationary kernels
#'   (constant diagonal) but helps kernels with varying diagonal.
#' - `"pivchol"`: `P = s I + L L^T` with `L` the partial pivoted Cholesky
#'   factor of `K` of rank `rank` (greedy on the remaining diagonal, one kernel
#'   column `K[, p]` per step), `s = alpha` (or the mean remaining diagonal
#'   when `alpha = 0`) and at least `1e-9 * tr(K)` (below that the Woodbury
#'   identity through which `P` is applied loses its accuracy), so that
#'   `alpha = 0` (kriging without a nugget) converges too. This is the
#'   preconditioner for smooth, weakly regularised kernels (small `alpha`,
#'   large bandwidth), where plain CG needs thousands of iterations.
#'   `rank = NULL` grows `L` until the trace left, `tr(K - L L^T)`, is at most
#'   `1000 * max(alpha, 1e-9 * tr(K))`, or until doubling
#'   the rank removed less than 10% of the trace left (`K` is not low-rank),
#'   or to `min(n, 1024, 2^26 / n)` columns (`L` at most 512 MiB).
#' - `"nystrom"`: the randomized Nystrom preconditioner of Frangella, Tropp
#'   and Udell (2023). A sketch `Y = K Omega` of `K` against `rank` Gaussian
#'   vectors (`rank / 64` kernel passes of 64 columns; `Omega` seeded from R's
#'   generator, so `set.seed()` makes it reproducible) gives the rank-`rank`
#'   Nystrom approximation `U diag(lambda) U^T` of `K`, and
#'   `P = U (diag(lambda) + alpha I) U^T / (lambda_min + alpha) + I - U U^T`.
#'   `rank = NULL` is `min(n, 256)`. Unlike `"pivchol"` it needs no kernel
#'   columns, only block products; its set-up is `O(n rank^2)` on the host.
#' - `"pic"`: `"pivchol"` plus exact diagonal blocks, for rough kernels
#'   (exponential, Matern-1/2 and 3/2 covariances of kriging) where a low-rank
#'   `P` leaves the local structure out:
#'   `P = L L^T + blockdiag(alpha I + K_bb - L_b L_b^T)` (the "partially
#'   independent conditional" approximation of Snelson and Ghahramani, 2007),
#'   with `L` the pivoted Cholesky factor of `rank` columns (`rank = 0`: the
#'   blocks alone, block Jacobi; `rank = NULL`: the rule of `"pivchol"`,
#'   whose "not low-rank" stop applies from 256 columns on) and blocks of at most `block` points (default 256)
#'   that are close to each other: the points are ordered by recursive
#'   bisection of the i-variables' data (the widest coordinate halved at its
#'   median), so the blocks are groups of neighbours in the space of the
#'   data. Each block is computed exactly once (one kernel pass over its
#'   points, in float64) and factored; `P` is applied by the Woodbury identity
#'   through the block factors. The set-up costs `O(n block^2 + n block rank
#'   + n rank^2)` on the host, and each iteration two passes over the block
#'   factors (`4 n block` bytes each, float32). On an exponential kernel
#'   with a small nugget it needs several times fewer iterations than
#'   `"pivchol"` of the same rank. On smooth kernels the blocks do not help
#'   (they leave out the equally large off-diagonal part of a smooth
#'   residual): when the automatic rank meets `"pivchol"`'s trace rule, `P`
#'   is `"pivchol"`'s and `attr(x, "precond")$blocks` is 0. Not available on
#'   a cluster.
#'
#' **Precision**: iterates, residuals and the preconditioner are always in
#' float64. With `rkeops_use_float32()`, kernel products are in float32 and
#' the solve runs in cycles of mixed-precision iterative refinement: each
#' cycle reduces the residual by 1e-3 with float32 products, then the true
#' residual `b - (alpha I + K) x` is recomputed with a float64 product; when
#' a float32 cycle fails to halve it, the remaining iterations use float64
#' products. `tol` is therefore reached in float32 too.
#'
#' **Progress**: with verbosity on ([rkeops_enable_verbosity()]), or when a
#' solve runs longer than 2 seconds, one line on the console is updated
#' with the iteration, the largest relative residual and the elapsed time.
#' The delay is the option `rkeops.progress_after` (seconds, default 2); a
#' solve in a forked worker (`parallel::mclapply()`) shows the line only with
#' verbosity on. The solve can be interrupted between iterations (Ctrl-C), leaving the
#' session and the kernel cache usable.
#'
#' @param a a LazyTensor `K` (named `a` as in [base::solve()]).
#' @param b a numeric vector or matrix with one row per point: each column is
#'   a right-hand side.
#' @param alpha a number `>= 0`, the ridge (nugget) added to the diagonal.
#' @param tol relative residual `||b - (alpha I + K) x|| / ||b||` to reach,
#'   per column.
#' @param maxit the most iterations (kernel products); `NULL`: `10 n` within
#'   `[1000, 10000]`.
#' @param precond `"none"`, `"jacobi"`, `"pivchol"`, `"nystrom"` or `"pic"`.
#' @param rank rank of the `"pivchol"`, `"nystrom"` or `"pic"`
#'   preconditioner (`NULL`: the rules above).
#' @param x0 a starting point of the shape of `b` (warm start), or `NULL`
#'   (zeros).
#' @param symmetric `NULL` (check), or `TRUE` (declared symmetric, not
#'   checked).
#' @param block the most points in a diagonal block of `"pic"` (`NULL`:
#'   256); an error with the other preconditioners.
#' @param ... unused.
#' @return The n x `ncol(b)` solution matrix (with the option
#'   `formula_only`, the block-product formula instead), with attributes `iterations`
#'   (per column), `residual` (final relative residual per column, from a
#'   float64 product), and `precond` (a list: `kind`, `rank`, `shift`,
#'   `trace_left`, and `products`, `exact_products`, `cycles`), and `seconds`
#'   (where the wall time went: `setup`, R's checks and formulas; `kernels`,
#'   fetching the kernels and converting or uploading the data; `precond`,
#'   the preconditioner's set-up; `sqrt`, zero here (see [kernel_logdet()]);
#'   `pcg`, the iteration, of which `products` in kernel products and
#'   `precond_apply` applying the preconditioner; `release`, freeing the
#'   preconditioner, the device memory and the page-locked buffers). When `maxit`
#'   is reached before `tol`, a warning of class `rkeops_convergence_warning`.
#'   Errors (class `rkeops_error`): `rkeops_symmetry_error` (K not square or
#'   not symmetric), `rkeops_dim_error` (`b` or `x0` with the wrong number of
#'   rows, K not scalar), `rkeops_value_error` (negative `alpha`, non-finite
#'   input, bad options, `alpha I + K` not positive definite).
#' @seealso [kernel_logdet()], [LazyTensor()]
#' @name solve-LazyTensor
#' @aliases solve,LazyTensor-method solve
#' @examples
#' set.seed(1)
#' X <- matrix(runif(300), 100, 3)
#' K <- exp(-sqdist(Vi(X), Vj(X)) / 0.1)
#' b <- rnorm(100)
#' x <- solve(K, b, alpha = 0.01)
#' attr(x, "iterations")
#' # against the dense solve
#' Kd <- exp(-as.matrix(dist(X))^2 / 0.1)
#' max(abs(x - solve(Kd + diag(0.01, 100), b)))
#' # a low-rank preconditioner for a smooth, weakly regularised kernel
#' x2 <- solve(K, b, alpha = 1e-4, precond = "pivchol")
#' attr(x2, "iterations")
NULL

#' @rdname solve-LazyTensor
#' @export
setMethod("solve", "LazyTensor", function(a, b, alpha = 0, tol = 1e-6,
                                          maxit = NULL, precond = "jacobi",
                                          rank = NULL, x0 = NULL,
                                          symmetric = NULL, block = NULL,
                                          ...) {
  t_start <- proc.time()[["elapsed"]]
  K <- a
  if (missing(b))
    sv_abort("solve(K, b): `b` is missing (rkeops does not invert K)",
             "rkeops_input_error")
  precond <- sv_precond_arg(precond)
  cm <- sv_common(alpha, tol, rank)
  if (!lt_is(K) || is.na(K@M))
    sv_abort("solve: K must be a LazyTensor with i- and j-variables",
             "rkeops_symmetry_error")
  n <- as.integer(K@M)
  b <- sv_rhs(b, n, "b")
  if (!is.null(x0)) {
    x0 <- sv_rhs(x0, n, "x0")
    if (ncol(x0) != ncol(b))
      sv_abort(sprintf("`x0` has %d columns but `b` has %d", ncol(x0),
                       ncol(b)), "rkeops_dim_error")
  }
  maxit <- sv_maxit(maxit, n)
  if (precond %in% c("nystrom", "pic") && rk_cluster_on())
    rk_abort("rkeops_unsupported_error", sprintf(paste0(
      "solve() on a cluster: precond = \"%s\" is not available (it ",
      "runs in the local solver); use \"pivchol\", \"jacobi\" or ",
      "\"none\", or rkeops_cluster(NULL) to solve locally"), precond))
  blk <- sv_block_arg(block, precond)
  pk <- NULL
  if (precond == "pic") {
    pk <- sv_pic_prepare(K, blk)
    K <- pk$K
    b <- b[pk$perm, , drop = FALSE]
    if (!is.null(x0)) x0 <- x0[pk$perm, , drop = FALSE]
  }
  st <- sv_setup(K, ncol(b), precond, symmetric, "solve", cm$rank)
  if (!is.null(st$formula)) return(st$formula)
  ctl <- sv_ctl(cm$alpha, cm$tol, maxit, precond, cm$rank, st$sketch)
  if (!is.null(pk)) ctl$blocks <- sv_pic_kernel(K, pk)
  t_r <- proc.time()[["elapsed"]] - t_start
  res <- if (rk_cluster_on()) rk_cluster_solve(K, st, b, x0, ctl) else
    .Call(ffi_solve, st$mv, st$col, st$diag, b, x0, ctl, rk_core_options())
  x <- res$x
  if (!is.null(pk)) x[pk$perm, ] <- res$x
  attr(x, "seconds") <- c(setup = t_r, res$seconds)
  attr(x, "iterations") <- res$iterations
  attr(x, "residual") <- res$residual
  attr(x, "precond") <- c(list(kind = precond), res$precond,
                          res[c("products", "exact_products", "cycles",
                                "switched64")])
  if (!isTRUE(res$converged)) {
    nbad <- sum(res$residual > cm$tol)
    rhs <- sprintf("%d of %d right-hand side%s", nbad, ncol(b),
                   if (ncol(b) == 1L) "" else "s")
    rk_warn("rkeops_convergence_warning", if (isTRUE(res$stalled))
      sprintf(paste0(
        "solve(): %s did not reach tol = %g: the float64 residual stopped ",
        "decreasing at %.3g after %d iterations, the rounding floor of this ",
        "system's products (about eps |alpha I + K| |x| / |b|); a tol ",
        "above it can be met"), rhs, cm$tol, max(res$residual),
        max(res$iterations))
    else sprintf(paste0(
      "solve(): %s did not reach tol = %g within ",
      "maxit = %d iterations (largest relative residual %.3g); try ",
      "precond = \"pivchol\", a larger maxit or alpha"),
      rhs, cm$tol, maxit, max(res$residual)))
  }
  x
})

#' Log-determinant of a kernel matrix by stochastic Lanczos quadrature
#'
#' `kernel_logdet(K, alpha)` estimates `log det(alpha I + K)` for a symbolic
#' kernel matrix `K` (as in [solve()][solve-LazyTensor]) from the
#' preconditioned conjugate-gradient solves of `probes` random vectors:
#' `log det(A) = log det(P) + log det(S^-1 A S^-T)` with `P = S S^T` the
#' preconditioner, whose log-determinant is exact (for `"pivchol"`, through
#' its small Cholesky factor), and the second term estimated by stochastic
#' Lanczos quadrature: for Rademacher vectors `w` (drawn in C from a seed
#' taken from R's random generator, so `set.seed()` makes it reproducible),
#' `w^T log(S^-1 A S^-T) w`
#' is the Gauss quadrature `||w||^2 e1^T log(T) e1` of the Lanczos matrix `T`
#' read off the CG coefficients of the system `A u = S w`. The estimate is the
#' mean over probes, its standard error the attribute `se`.
#'
#' A good preconditioner makes the estimate both cheaper (fewer iterations)
#' and more precise (the random part shrinks): with `"pivchol"` the standard
#' error is typically far below 1% of `|log det|`.
#'
#' With `return_probes = TRUE`, the attribute `probes` is a list of the
#' right-hand sides `z = S w` (n x probes), their solves `solves = A^-1 z`
#' and `pinv_z = P^-1 z`. Since `E[z z^T] = P`, for any symmetric `B`,
#' `mean(colSums(solves * (B %*% pinv_z)))` estimates `tr(A^-1 B)`: with
#' `B = dK/dtheta` (from [grad()]) this is the trace term of the gradient of a
#' Gaussian-process log-likelihood.
#'
#' @param K a LazyTensor, square and symmetric as for `solve()`.
#' @param alpha a number `>= 0` added to the diagonal.
#' @param probes number of random probe vectors (at least 2).
#' @param tol relative residual of the probe solves.
#' @param precond `"none"`, `"jacobi"`, `"pivchol"`, `"nystrom"` or `"pic"`.
#' @param rank rank of `"pivchol"`, `"nystrom"` or `"pic"` (`NULL`: the rules
#'   of `solve()`).
#' @param block the most points in a diagonal block of `"pic"`, as in
#'   `solve()`.
#' @param maxit the most CG iterations (`NULL`: as in `solve()`).
#' @param return_probes `TRUE` to return the probes and their solves.
#' @param symmetric `NULL` (check) or `TRUE` (declared), as in `solve()`.
#' @param b `NULL`, or right-hand sides (a vector or a matrix with one row
#'   per point) solved beside the probes, in the same block CG and with the
#'   same preconditioner: `attr(value, "solve")` is `(alpha I + K)^-1 b`
#'   (to `tol`), with its own attributes `iterations` and `residual`. A
#'   Gaussian-process likelihood needs `A^-1 y` and `log det A`: one call
#'   builds the preconditioner once for both.
#' @return A number, the estimate of `log det(alpha I + K)`, with attributes
#'   `se` (standard error), `precond_logdet` (the exact `log det(P)`),
#'   `estimates` (one per probe), `iterations` (per probe), `seconds` (as
#'   for [solve()][solve-LazyTensor]; `sqrt` is the time drawing the probes
#'   `S w` and, with `return_probes`, `P^-1 z`) and, on request, `probes` and
#'   `solve`.
#' @seealso [solve()][solve-LazyTensor]
#' @examples
#' set.seed(1)
#' X <- matrix(runif(600), 200, 3)
#' K <- exp(-sqdist(Vi(X), Vj(X)) / 0.1)
#' ld <- kernel_logdet(K, alpha = 0.01)
#' c(ld, attr(ld, "se"))
#' Kd <- exp(-as.matrix(dist(X))^2 / 0.1)
#' determinant(Kd + diag(0.01, 200))$modulus
#' @export
kernel_logdet <- function(K, alpha = 0, probes = 30, tol = 1e-6,
                          precond = "pivchol", rank = NULL, maxit = NULL,
                          return_probes = FALSE, symmetric = NULL,
                          b = NULL, block = NULL) {
  t_start <- proc.time()[["elapsed"]]
  precond <- sv_precond_arg(precond)
  cm <- sv_common(alpha, tol, rank)
  probes <- sv_count(probes, "probes", 2)
  if (!is.logical(return_probes) || length(return_probes) != 1L ||
      is.na(return_probes))
    sv_abort("`return_probes` must be TRUE or FALSE", "rkeops_input_error")
  if (!lt_is(K) || is.na(K@M))
    sv_abort("kernel_logdet: K must be a LazyTensor with i- and j-variables",
             "rkeops_symmetry_error")
  n <- as.integer(K@M)
  maxit <- sv_maxit(maxit, n)
  if (!is.null(b)) b <- sv_rhs(b, n, "b")
  nb <- if (is.null(b)) 0L else ncol(b)
  blk <- sv_block_arg(block, precond)
  pk <- NULL
  if (precond == "pic") {
    pk <- sv_pic_prepare(K, blk)
    K <- pk$K
    if (nb > 0L) b <- b[pk$perm, , drop = FALSE]
  }
  st <- sv_setup(K, probes + nb, precond, symmetric, "kernel_logdet", cm$rank)
  if (!is.null(st$formula)) return(st$formula)
  ctl <- sv_ctl(cm$alpha, cm$tol, maxit, precond, cm$rank, st$sketch)
  if (!is.null(pk)) ctl$blocks <- sv_pic_kernel(K, pk)
  # the probes' random signs are drawn in C from a seed drawn here (set.seed()
  # makes the estimate reproducible); sample() of n x probes signs took a
  # tenth of a GP likelihood evaluation at n = 1e5
  ctl$n <- n
  ctl$probes <- probes
  ctl$probe_seed <- floor(stats::runif(2) * 2^31)
  ctl$keep <- return_probes
  ctl$b <- b
  t_r <- proc.time()[["elapsed"]] - t_start
  res <- .Call(ffi_logdet, st$mv, st$col, st$diag, NULL, ctl, rk_core_options())
  if (!is.null(pk)) { # rows back in the caller's order
    unperm <- function(m) { if (!is.null(m)) m[pk$perm, ] <- m; m }
    res$z <- unperm(res$z)
    res$solves <- unperm(res$solves)
    res$pinv_z <- unperm(res$pinv_z)
    res$b_solve <- unperm(res$b_solve)
  }
  if (!all(res$ok))
    sv_abort(paste0("kernel_logdet: the Lanczos quadrature failed (alpha I + ",
                    "K may not be positive definite)"))
  est <- res$precond$logdet + res$quad
  value <- mean(est)
  attr(value, "se") <- sqrt(sum((res$quad - mean(res$quad))^2) / (probes - 1)) / sqrt(probes)
  attr(value, "precond_logdet") <- res$precond$logdet
  attr(value, "estimates") <- est
  attr(value, "iterations") <- res$iterations
  attr(value, "precond") <- c(list(kind = precond), res$precond)
  attr(value, "seconds") <- c(setup = t_r, res$seconds)
  if (return_probes)
    attr(value, "probes") <- list(z = res$z, solves = res$solves,
                                  pinv_z = res$pinv_z)
  if (nb > 0L) {
    xb <- res$b_solve
    attr(xb, "iterations") <- res$b_iterations
    attr(xb, "residual") <- res$b_residual
    attr(value, "solve") <- xb
  }
  if (any(c(res$residual, res$b_residual) > cm$tol)) {
    nbad <- sum(c(res$residual, res$b_residual) > cm$tol)
    rk_warn("rkeops_convergence_warning", if (isTRUE(res$stalled))
      sprintf(paste0(
        "kernel_logdet(): %d of %d probe (and b) solves did not reach tol = %g: ",
        "the float64 residual stopped decreasing at %.3g, the rounding floor ",
        "of this system's products; a tol above it can be met"), nbad,
        probes + nb, cm$tol, max(c(res$residual, res$b_residual)))
    else sprintf(paste0(
      "kernel_logdet(): %d of %d probe (and b) solves did not reach tol = %g within ",
      "maxit = %d iterations"), nbad, probes + nb, cm$tol, maxit))
  }
  value
}
