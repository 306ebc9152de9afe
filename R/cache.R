# cache.R -- the disk cache of compiled kernels: where it is, what it holds,
# and how to empty it.  The engine writes exactly these names (be-cache.c):
#   <32 hex digits>.so | .cubin | .ptx          kernels (rk_cache_path)
#   tmp-<pid>-<n>-<16 hex digits>.<ext>          files being written
#     (rk_cache_tmppath: .c source, .so, .log, .cubin, .ptx)
# Only regular files with such names are counted or deleted here, so that
# pointing cache_dir at a directory with other files is harmless.

rk_cache_pattern <- "^[0-9a-f]{32}\\.(so|cubin|ptx)$"
rk_cache_tmp_pattern <- "^tmp-([0-9]+)-[0-9]+-[0-9a-f]{16}\\.(c|so|log|cubin|ptx)$"

rk_cache_list <- function(dir, pattern) {
  if (!dir.exists(dir)) {
    return(character())
  }
  f <- list.files(dir, pattern = pattern, full.names = TRUE,
                  all.files = TRUE, no.. = TRUE)
  f[utils::file_test("-f", f) & !rk_is_symlink(f)]
}

rk_is_symlink <- function(f) {
  if (!length(f)) return(logical())
  l <- Sys.readlink(f)
  !is.na(l) & nzchar(l)
}

rk_cache_files <- function(dir = get_rkeops_cache_dir()) {
  rk_cache_list(dir, rk_cache_pattern)
}

# temporary files left behind by an interrupted or crashed compilation: those
# of this process, of a process that no longer runs, or older than a day (a
# live process elsewhere may be writing the others right now)
rk_cache_leftovers <- function(dir = get_rkeops_cache_dir()) {
  f <- rk_cache_list(dir, rk_cache_tmp_pattern)
  if (!length(f)) return(f)
  pid <- as.integer(sub(rk_cache_tmp_pattern, "\\1", basename(f)))
  old <- difftime(Sys.time(), file.mtime(f), units = "hours") > 24
  gone <- vapply(pid, function(p) {
    !is.na(p) && (p == Sys.getpid() || !rk_pid_alive(p))
  }, NA)
  f[gone | old %in% TRUE]
}

rk_pid_alive <- function(pid) {
  if (.Platform$OS.type != "unix") return(TRUE)
  isTRUE(tools::pskill(pid, 0L)) || dir.exists(file.path("/proc", pid))
}

#' The disk cache of compiled kernels
#'
#' Compiled kernels are stored in a cache directory, by default
#' `tools::R_user_dir("rkeops", "cache")`, and reused by later sessions.
#' `get_rkeops_cache_dir()` and `set_rkeops_cache_dir()` read and change it
#' (the directory is created when the first kernel is stored);
#' `stat_rkeops_cache_dir()` reports how many kernels it holds;
#' `clean_rkeops()` deletes them (and the temporary files of a compilation
#' that was interrupted) and empties the in-memory cache of this session, so
#' that the next computation compiles again.  Only files named as the cache
#' names them are deleted (`<32 hex digits>.so`, `.cubin`, `.ptx`, and
#' `tmp-<pid>-...` files of no running process): other files in the
#' directory are left alone.
#'
#' @param dir the new cache directory; `NULL` restores the default.
#' @return `get_rkeops_cache_dir()`: the directory.  `set_rkeops_cache_dir()`:
#'   the previous directory, invisibly.  `stat_rkeops_cache_dir()`: invisibly,
#'   a list with `dir`, `files` (number of cached kernels) and `size` (bytes),
#'   after printing a summary.  `clean_rkeops()`: invisibly, the number of
#'   files deleted.
#' @seealso [set_rkeops_options()]
#' @examples
#' old <- set_rkeops_cache_dir(file.path(tempdir(), "rkeops-cache"))
#' get_rkeops_cache_dir()
#' stat_rkeops_cache_dir()
#' clean_rkeops()
#' set_rkeops_cache_dir(old)
#' @export
get_rkeops_cache_dir <- function() {
  get_rkeops_options("cache_dir")
}

#' @rdname get_rkeops_cache_dir
#' @export
set_rkeops_cache_dir <- function(dir = NULL) {
  if (is.null(dir)) dir <- rk_default_cache_dir()
  old <- get_rkeops_cache_dir()
  set_rkeops_options(list(cache_dir = dir))
  invisible(old)
}

#' @rdname get_rkeops_cache_dir
#' @export
stat_rkeops_cache_dir <- function() {
  dir <- get_rkeops_cache_dir()
  files <- rk_cache_files(dir)
  size <- sum(file.size(files), na.rm = TRUE)
  cat(sprintf(
    "rkeops cache: %s\n  %d kernel file%s, %s\n", dir, length(files),
    if (length(files) == 1L) "" else "s", rk_format_bytes(size)
  ))
  invisible(list(dir = dir, files = length(files), size = size))
}

rk_format_bytes <- function(n) {
  if (n < 1024) {
    return(sprintf("%d bytes", as.integer(n)))
  }
  units <- c("KiB", "MiB", "GiB", "TiB")
  k <- min(floor(log(n, 1024)), length(units))
  sprintf("%.1f %s", n / 1024^k, units[k])
}

#' @rdname get_rkeops_cache_dir
#' @export
clean_rkeops <- function() {
  files <- c(rk_cache_files(), rk_cache_leftovers())
  ok <- if (length(files)) file.remove(files) else logical()
  .Call(ffi_cache_clear_memory)
  rk_state$parsed <- new.env(parent = emptyenv())
  invisible(sum(ok))
}
