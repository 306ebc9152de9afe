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
#' @useDynLib rkeops, .registration = TRUE
#' @importFrom stats step
#' @keywords internal
"_PACKAGE"

.onLoad <- function(libname, pkgname) {
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
