#!/usr/bin/env bash
# tools/device-tune.sh -- on the GPU machine: test-reduce-cpu.R with the GPU
# backend (in the background), and bench/gpu.R's 1e6 Gaussian float32 and
# LogSumExp cases under several launch geometries (RKEOPS_CUDA_GEOM="tpb,rb",
# RKEOPS_CUDA_PREGS=0|1: developer knobs of cg-cuda.c).  Logs go to $OUT.
set -u
OUT=${OUT:-/tmp/rkeops-out}
mkdir -p "$OUT"
tar xJf .rbundle/r-bundle.tar.xz -C / && ldconfig
R CMD INSTALL . >"$OUT/install.log" 2>&1 || { tail -40 "$OUT/install.log"; exit 1; }
export R_USER_CACHE_DIR=/tmp/rkeops-cache NOT_CRAN=true
( RKEOPS_TEST_BACKEND=GPU timeout "${TEST_TIMEOUT:-240}" Rscript -e "library(testthat); library(rkeops)
    r <- as.data.frame(test_file('tests/testthat/test-reduce-cpu.R', reporter = 'summary', package = 'rkeops', load_package = 'installed'))
    cat(sprintf('COUNTS test-reduce-cpu %d %d %d\n', sum(r\$passed), sum(r\$failed) + sum(r\$error), sum(r\$skipped)))" \
    >"$OUT/reduce.log" 2>&1; echo "rc=$?" >>"$OUT/reduce.log" ) &
for g in ${GEOMS:-"512,4,1" "512,4,0" "256,4,1" "256,8,1" "512,2,1"}; do
  IFS=, read -r t r p <<<"$g"
  RKEOPS_CUDA_GEOM="$t,$r" RKEOPS_CUDA_PREGS=$p RKEOPS_BENCH_ONLY='gauss f32 1e\+06' \
    timeout 60 Rscript bench/gpu.R 2>&1 | grep -E "^gauss f32 1e\+06 " | sed "s/^/geom $g: /" | tee -a "$OUT/tune.txt"
done
for g in ${LGEOMS:-"256,2" "512,2" "256,4" "128,4"}; do
  RKEOPS_CUDA_GEOM="$g" RKEOPS_BENCH_ONLY='lse f32 1e\+06' \
    timeout 60 Rscript bench/gpu.R 2>&1 | grep -E "^lse f32 1e\+06 " | sed "s/^/geom $g: /" | tee -a "$OUT/tune.txt"
done
wait
tail -3 "$OUT/reduce.log"
