# bench/ab-parts.R -- how the split of the reduction over blockIdx.y (parts,
# be-cuda.c choose_parts) and the launch geometry pay on the GPU, for the
# mid-size shapes of bench/gpu.R (N = M = 1e4 to 1e5, where one block of
# rows per 1024 rows does not fill the GPU): for every case, the automatic
# choice (and the parts it took, ffi_cuda_meminfo()["parts"]), then
# RKEOPS_CUDA_PARTS_EXACT = 1, 2, 3, ... and RKEOPS_CUDA_GEOM variants with
# the automatic parts.  Medians of 7 (calls under 50 ms in batches of 20),
# as bench/gpu.R times them.  One line per configuration.
#   Rscript bench/ab-parts.R [case-regex]
#   RKEOPS_BENCH_KEOPS_OUT=<file of keops-cases.py output>: ratios to KeOps
suppressMessages(library(rkeops))
now <- function() as.numeric(Sys.time())
rkeops_use_gpu()
rkeops_use_float32()
args <- commandArgs(TRUE)
only <- if (length(args)) args[1] else ""
ko <- c()
kf <- Sys.getenv("RKEOPS_BENCH_KEOPS_OUT", "")
if (nzchar(kf) && file.exists(kf)) {
  l <- grep("^KO ", readLines(kf), value = TRUE)
  sp <- strsplit(trimws(l), "[[:space:]]+")
  ko <- setNames(vapply(sp, function(s) as.numeric(s[3]), 0), vapply(sp, `[`, "", 2))
}
timeit <- function(fn, reps = 7) {
  t0 <- now(); invisible(fn())
  inner <- if (now() - t0 < 0.05) 20L else 1L
  median(vapply(seq_len(reps), function(i) {
    gc(FALSE); s <- now(); for (k in seq_len(inner)) fn(); (now() - s) / inner
  }, 0))
}
parts_of <- function() {
  m <- if (dry) NULL else .Call(rkeops:::ffi_cuda_meminfo, 0L)
  if (is.null(m) || !("parts" %in% names(m))) NA else m[["parts"]]
}
# RKEOPS_BENCH_DRY=1: the CPU at 1/100 of the sizes (to check the script)
dry <- Sys.getenv("RKEOPS_BENCH_DRY") == "1"
if (dry) rkeops_use_cpu()
sz <- function(n) if (dry) n / 100 else n
set.seed(1)
gauss <- "Sum_Reduction(Exp(-g * SqDist(x, y)) * b, 1)"
mk_gauss <- function(n, D, g) {
  op <- keops_kernel(gauss, c(sprintf("x=Vi(%d)", D), sprintf("y=Vj(%d)", D), "b=Vj(1)", "g=Pm(1)"))
  x <- matrix(runif(D * n), n, D); y <- if (D == 3) matrix(runif(D * n), n, D) else x
  b <- runif(n)
  function() op(list(x, y, b, g))
}
mk_knn <- function(n, D) {
  op <- keops_kernel("ArgKMin_Reduction(SqDist(x, y), 10, 1)",
                     c(sprintf("x=Vi(%d)", D), sprintf("y=Vj(%d)", D)))
  x <- matrix(runif(D * n), n, D)
  function() op(list(x, x))
}
mk_grad <- function(n) {
  op <- keops_grad(keops_kernel(gauss, c("x=Vi(3)", "y=Vj(3)", "b=Vj(1)", "g=Pm(1)")), "x")
  x <- matrix(runif(3 * n), n, 3); y <- matrix(runif(3 * n), n, 3)
  b <- runif(n); e <- runif(n)
  function() op(list(x, y, b, 50, e))
}
cases <- list(
  gauss_D3_f32_10000 = list(mk = function() mk_gauss(sz(1e4), 3, 50), parts = c(1, 2, 4, 8, 16),
                           geom = c("256,2", "128,4", "128,2")),
  gauss_D3_f32_50000 = list(mk = function() mk_gauss(sz(5e4), 3, 50), parts = c(1, 2, 4, 8, 16, 32),
                           geom = c("256,2", "128,4")),
  gauss_D3_f32_100000 = list(mk = function() mk_gauss(sz(1e5), 3, 50), parts = c(1, 2, 4, 8, 16, 32),
                            geom = c("256,2", "128,4", "512,2")),
  knn_D3_f32_100000 = list(mk = function() mk_knn(sz(1e5), 3), parts = c(1, 2, 3, 4, 6, 8),
                          geom = c("128,1", "64,1", "256,2")),
  knn_D50_f32_100000 = list(mk = function() mk_knn(sz(1e5), 50), parts = c(1, 2, 3, 4, 8),
                           geom = c("128,1", "256,1", "64,1")),
  knn_D128_f32_100000 = list(mk = function() mk_knn(sz(1e5), 128), parts = c(1, 2, 4),
                            geom = c("128,1", "64,1")),
  gauss_D128_f32_100000 = list(mk = function() mk_gauss(sz(1e5), 128, 1 / 128), parts = c(1, 2, 4, 8),
                              geom = c("128,2", "256,1", "128,1")),
  grad_D3_f32_1000000 = list(mk = function() mk_grad(sz(1e6)), parts = c(),
                            geom = c("256,1", "128,2", "512,1"), reps = 3)
)
cat(sprintf("# bench/ab-parts.R  %s  commit %s\n", format(Sys.time(), "%Y-%m-%d %H:%M"),
            Sys.getenv("RKEOPS_COMMIT", "?")))
line <- function(case, what, s, p) {
  k <- if (case %in% names(ko)) ko[[case]] else NA
  cat(sprintf("%-22s %-16s %9.5f s  parts %3s  KeOps %s  ratio %s\n", case, what, s,
              if (is.na(p)) "?" else format(p), if (is.na(k)) "NA" else sprintf("%.5f", k),
              if (is.na(k)) "NA" else sprintf("%.3f", s / k)))
}
for (nm in names(cases)) {
  if (nzchar(only) && !grepl(only, nm)) next
  cs <- cases[[nm]]; reps <- if (is.null(cs$reps)) 7 else cs$reps
  fn <- cs$mk()
  Sys.unsetenv(c("RKEOPS_CUDA_PARTS_EXACT", "RKEOPS_CUDA_GEOM"))
  s <- timeit(fn, reps); line(nm, "auto", s, parts_of())
  for (p in cs$parts) {
    Sys.setenv(RKEOPS_CUDA_PARTS_EXACT = p)
    s <- timeit(fn, reps); line(nm, sprintf("parts=%d", p), s, parts_of())
  }
  Sys.unsetenv("RKEOPS_CUDA_PARTS_EXACT")
  for (g in cs$geom) {
    Sys.setenv(RKEOPS_CUDA_GEOM = g)
    s <- timeit(fn, reps); line(nm, sprintf("geom=%s", g), s, parts_of())
  }
  Sys.unsetenv("RKEOPS_CUDA_GEOM")
  s <- timeit(fn, reps); line(nm, "auto again", s, parts_of())
}
