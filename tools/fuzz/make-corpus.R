# make-corpus.R -- write the fuzz seed corpus from the formulas of the tests.
# Usage (from the repository root): Rscript tools/fuzz/make-corpus.R [outdir]
# Every call keops_kernel("<formula>", <literal declarations>) found in
# tests/testthat/*.R becomes one file: the formula, then one declaration a
# line (the format of fuzz-formula.c).  Calls whose arguments are not
# literal strings are skipped.  Then every "*_Reduction(...)" string literal
# of the tests is added with no declarations (inline Vi/Vj/Var leaves).
args <- commandArgs(trailingOnly = TRUE)
out <- if (length(args)) args[[1]] else "tools/fuzz/corpus"
dir.create(out, showWarnings = FALSE, recursive = TRUE)

seeds <- character()
strs <- character()
walk <- function(e) {
  if (is.call(e)) {
    fn <- e[[1]]
    if (is.name(fn) && as.character(fn) %in% c("keops_kernel", "keops_grad_kernel")) {
      a <- as.list(e)[-1]
      f <- a[["formula"]]; if (is.null(f) && length(a) >= 1) f <- a[[1]]
      d <- a[["args"]]; if (is.null(d) && length(a) >= 2) d <- a[[2]]
      if (is.character(f) && length(f) == 1) {
        dv <- tryCatch(eval(d, baseenv()), error = function(err) NULL)
        if (is.null(d)) dv <- character()
        if (is.character(dv))
          seeds <<- c(seeds, paste(c(f, dv), collapse = "\n"))
      }
    }
    for (x in as.list(e)) if (!missing(x)) walk(x)
  } else if (is.character(e) && length(e) == 1 && grepl("_Reduction\\(", e)) {
    strs <<- c(strs, e)
  }
}
for (file in list.files("tests/testthat", "^test.*\\.R$", full.names = TRUE)) {
  exprs <- tryCatch(parse(file, keep.source = FALSE), error = function(e) NULL)
  for (e in exprs) walk(e)
}
seeds <- unique(c(seeds, strs))
seeds <- seeds[nchar(seeds, "bytes") <= 4096]
for (s in seeds) {
  tmp <- tempfile()
  writeBin(charToRaw(s), tmp)
  h <- substr(unname(tools::md5sum(tmp)), 1, 16)
  file.rename(tmp, file.path(out, paste0("seed-", h)))
}
cat(length(seeds), "seeds written to", out, "\n")
