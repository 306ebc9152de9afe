#!/usr/bin/env bash
# tools/device-run.sh -- what one call of the GPU machine runs (see
# ../shared/device/README.md): unpack the carried R, install the package,
# check_rkeops(), every test file with the GPU backend (one process per file,
# all sharing one kernel cache), then bench/gpu.R.  Logs go to $OUT.
# bench/gpu.R prints RKEOPS_COMMIT as the commit: pass it in the command
# (RKEOPS_COMMIT=<sha> tools/device-run.sh bench), the device .git can lag.
#   tools/device-run.sh [tests] [bench]      (default: both)
set -u
OUT=${OUT:-/tmp/rkeops-out}
mkdir -p "$OUT"
what=${*:-tests bench}
tar xJf .rbundle/r-bundle.tar.xz -C / && ldconfig
R CMD INSTALL . >"$OUT/install.log" 2>&1 || { tail -40 "$OUT/install.log"; exit 1; }
export R_USER_CACHE_DIR=/tmp/rkeops-cache NOT_CRAN=true
Rscript -e 'rkeops::check_rkeops()' 2>&1 | tee "$OUT/check.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$OUT/check.txt"

if [[ $what == *bench* ]]; then
  timeout "${BENCH_TIMEOUT:-300}" Rscript bench/gpu.R 2>&1 | tee "$OUT/bench.txt"
fi
if [[ $what == *tests* ]]; then
  # one process per test file, each bounded by TEST_TIMEOUT seconds; a
  # file's counts are appended to $OUT/tests.txt as soon as it finishes
  export RKEOPS_TEST_BACKEND=GPU
  mkdir -p /tmp/tlogs
  start=$(date +%s)
  for f in tests/testthat/test-*.R; do
    b=$(basename "$f" .R)
    case " ${SKIP_TESTS:-} " in *" $b "*) continue ;; esac
    (
      timeout "${TEST_TIMEOUT:-240}" Rscript -e "library(testthat); library(rkeops)
        r <- as.data.frame(test_file('$f', reporter = 'summary', package = 'rkeops', load_package = 'installed'))
        cat(sprintf('COUNTS %s %d %d %d\\n', '$b', sum(r\$passed),
            sum(r\$failed) + sum(r\$error), sum(r\$skipped)))" >"/tmp/tlogs/$b.log" 2>&1
      rc=$?
      line=$(grep -h "^COUNTS" "/tmp/tlogs/$b.log")
      echo "${line:-NOCOUNTS $b rc=$rc} $(( $(date +%s) - start ))s" >>"$OUT/tests.txt"
      # the summary reporter writes "── 1. Failure (...)"
      grep -q -E "── ([0-9]+\. )?(Failure|Error)" "/tmp/tlogs/$b.log" &&
        { echo "== $b"; grep -E -A14 "── ([0-9]+\. )?(Failure|Error)" "/tmp/tlogs/$b.log" | head -80; } >>"$OUT/failures.txt"
      [ -z "$line" ] && { echo "== $b (rc=$rc, no counts)"; grep -A30 "caught segfault" "/tmp/tlogs/$b.log" | head -40; tail -20 "/tmp/tlogs/$b.log"; } >>"$OUT/failures.txt"
      cp "/tmp/tlogs/$b.log" "$OUT/" 2>/dev/null
    ) &
  done
  wait
  awk '/^COUNTS/ {p+=$3; f+=$4; s+=$5} END {printf "%d passed, %d failed, %d skipped\n", p, f, s}' "$OUT/tests.txt" | tee -a "$OUT/tests.txt"
fi
