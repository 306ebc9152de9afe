# Runs the test suite (R CMD check runs this file).  Besides testthat's own
# output, the expectation counts are written to `testthat-counts.txt` next
# to this file's output (rkeops.Rcheck/tests/), one line
# "passed failed skipped warnings", which .ci/run reads.
library(testthat)
library(rkeops)

if (!nzchar(Sys.getenv("R_USER_CACHE_DIR"))) {
  # keep compiled test kernels out of the user's cache
  Sys.setenv(R_USER_CACHE_DIR = file.path(tempdir(), "rkeops-test-cache"))
  set_rkeops_cache_dir(NULL)
}

# testthat's check reporter (the default here) also prints the summary line
# "[ FAIL n | WARN n | SKIP n | PASS n ]"
results <- test_check("rkeops", stop_on_failure = FALSE)

counts <- c(passed = 0L, failed = 0L, skipped = 0L, warnings = 0L)
for (test in results) {
  for (e in test$results) {
    kind <- if (inherits(e, "expectation_success")) {
      "passed"
    } else if (inherits(e, "expectation_skip")) {
      "skipped"
    } else if (inherits(e, "expectation_warning")) {
      "warnings"
    } else if (inherits(e, c("expectation_failure", "expectation_error"))) {
      "failed"
    } else {
      NA
    }
    if (!is.na(kind)) counts[[kind]] <- counts[[kind]] + 1L
  }
}
writeLines(paste(counts, collapse = " "), "testthat-counts.txt")
cat(sprintf("testthat counts: %d passed, %d failed, %d skipped, %d warnings\n",
            counts[["passed"]], counts[["failed"]], counts[["skipped"]],
            counts[["warnings"]]))
if (counts[["failed"]] > 0L) stop(counts[["failed"]], " test(s) failed")
