#!/usr/bin/env bash
# tools/device-tune.sh -- on the GPU machine: time bench/gpu.R cases under
# developer knobs of cg-cuda.c (RKEOPS_CUDA_GEOM="tpb,rb", RKEOPS_CUDA_PREGS,
# RKEOPS_CUDA_LSE), one Rscript per configuration, each line appended to
# $OUT/tune.txt as soon as it is measured.
#   CONFIGS: newline-separated "case-regex|VAR=value VAR=value ..." lines
set -u
OUT=${OUT:-/tmp/rkeops-out}
mkdir -p "$OUT"
tar xJf .rbundle/r-bundle.tar.xz -C / && ldconfig
R CMD INSTALL . >"$OUT/install.log" 2>&1 || { tail -40 "$OUT/install.log"; exit 1; }
export R_USER_CACHE_DIR=/tmp/rkeops-cache NOT_CRAN=true
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/tune.txt"
while IFS='|' read -r cases knobs; do
  [ -z "$cases" ] && continue
  res=$(env $knobs RKEOPS_BENCH_ONLY="$cases" timeout "${CASE_TIMEOUT:-90}" \
          Rscript bench/gpu.R 2>&1 | grep -E "^[a-z]+ [a-zA-Z0-9]+ [0-9e+.]+ +[0-9.]+ s$" |
          tr -s ' ' | tr '\n' ';')
  echo "$knobs | ${res:-FAILED}" | tee -a "$OUT/tune.txt"
done <<<"${CONFIGS:-}"
