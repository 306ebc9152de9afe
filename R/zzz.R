# zzz.R -- package documentation, native routines, load hooks.

#' rkeops: kernel operations on the CPU and the GPU
#'
#' Reductions of large symbolic kernel matrices, written as KeOps formulas
#' ([keops_kernel()]) or built from `LazyTensor` objects, compiled at run time
#' (generated C with OpenMP through the system compiler, or CUDA through
#' NVRTC) and cached on disk.
#'
#' @section Options:
#' See [set_rkeops_options()], [rkeops_use_cpu()], [rkeops_use_gpu()] and
#' [check_rkeops()].
#'
#' @section Help pages:
#' [rkeops_formulas] (the formula language), [LazyTensor()] and
#' [sum_reduction()] (the LazyTensor interface), [keops_kernel()] and
#' [keops_grad()] (formulas), [get_rkeops_cache_dir()] (the kernel cache),
#' [rkeops_differences] (what changed from rkeops 2.x).
#'
#' @examples
#' # a Gaussian kernel sum over 200 x 300 points, checked against dense R
#' x <- matrix(runif(400), 200, 2)
#' y <- matrix(runif(600), 300, 2)
#' b <- runif(300)
#' K <- exp(-sqdist(Vi(x), Vj(y)) / 0.1)
#' res <- K %*% b
#' d2 <- outer(rowSums(x^2), rowSums(y^2), "+") - 2 * x %*% t(y)
#' max(abs(res - exp(-d2 / 0.1) %*% b))
#' # the same reduction as a formula
#' op <- keops_kernel("Sum_Reduction(Exp(-SqDist(x, y) / s) * b, 1)",
#'                    c("x=Vi(2)", "y=Vj(2)", "b=Vj(1)", "s=Pm(1)"))
#' max(abs(op(list(x, y, b, 0.1)) - res))
#' @useDynLib rkeops, .registration = TRUE
#' @importFrom stats step
#' @keywords internal
"_PACKAGE"

.onLoad <- function(libname, pkgname) {
  rk_state$pid <- Sys.getpid() # a forked child has another (rk_in_fork)
  rk_probe_gpu()
  rk_state$options <- rk_default_options()
  invisible()
}

.onUnload <- function(libpath) {
  # run the finalizers of parsed formulas while the DLL is still there
  rk_state$parsed <- new.env(parent = emptyenv())
  gc(verbose = FALSE)
  library.dynam.unload("rkeops", libpath)
}
