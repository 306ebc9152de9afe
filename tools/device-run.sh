#!/usr/bin/env bash
# tools/device-run.sh -- what one call of the GPU machine runs (see
# ../shared/device/README.md): unpack the carried R, install the package,
# check_rkeops(), every test file with the GPU backend (one process per file,
# all sharing one kernel cache), then bench/gpu.R.  Logs go to $OUT.
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

if [[ $what == *tests* ]]; then
  export RKEOPS_TEST_BACKEND=GPU
  mkdir -p /tmp/tlogs
  start=$(date +%s)
  for f in tests/testthat/test-*.R; do
    b=$(basename "$f" .R)
    Rscript -e "library(testthat); library(rkeops)
      r <- as.data.frame(test_file('$f', reporter = 'summary', package = 'rkeops', load_package = 'installed'))
      cat(sprintf('COUNTS %s %d %d %d\n', '$b', sum(r\$passed),
          sum(r\$failed) + sum(r\$error), sum(r\$skipped)))" >"/tmp/tlogs/$b.log" 2>&1 &
  done
  wait
  echo "tests took $(( $(date +%s) - start )) s" | tee "$OUT/tests.txt"
  grep -h "^COUNTS" /tmp/tlogs/*.log | tee -a "$OUT/tests.txt"
  grep -h "^COUNTS" /tmp/tlogs/*.log | awk '{p+=$3; f+=$4; s+=$5} END {printf "%d passed, %d failed, %d skipped\n", p, f, s}' | tee -a "$OUT/tests.txt"
  for l in /tmp/tlogs/*.log; do grep -q "^COUNTS" "$l" || { echo "== $l (no counts)"; tail -30 "$l"; }; done >>"$OUT/tests.txt"
  grep -l -E "Failure|Error" /tmp/tlogs/*.log | while read -r l; do
    echo "== $l"; grep -E -A14 "── (Failure|Error)" "$l" | head -120; done >"$OUT/failures.txt"
  tar czf "$OUT/tlogs.tgz" -C /tmp tlogs
  unset RKEOPS_TEST_BACKEND
fi
if [[ $what == *bench* ]]; then
  Rscript bench/gpu.R 2>&1 | tee "$OUT/bench.txt"
fi
