#!/usr/bin/env bash
# tools/device-ab.sh OLD_TREE [ROUNDS] -- before/after benchmarks on the GPU
# machine: installs this tree and an older source tree (e.g. from
# `git archive <sha> | tar x -C .oldsrc`, carried to the device), then
#   * bench/gpu.R without KeOps, the older install run beside it
#     (RKEOPS_BENCH_OLD_LIB: its times in the column old_s), once whole and
#     ROUNDS - 1 more times on the cases of RKEOPS_AB_ONLY (default kNN and
#     the Gaussian sums, D = 3);
#   * bench/cpu.R rkeops-only, old and new in turn, ROUNDS times each;
#   * bench/ab-direct.R (Gaussian sums per summation scheme, a small call),
#     old and new alternately, AB_DIRECT rounds (default ROUNDS), then the
#     new / old ratio of the medians of each case.
# AB_GPU=0, AB_CPU=0 or AB_DIRECT=0 skip a part; AB_NOINSTALL=1 reuses the
# installs of an earlier call on the same (warm) machine.
# Logs go to $OUT (gpu-ab<r>.txt, cpu-old<r>.txt, cpu-new<r>.txt,
# ab-direct.txt).
set -u
OUT=${OUT:-/tmp/rkeops-out}
mkdir -p "$OUT"
old=$1
rounds=${2:-2}
export MAKEFLAGS=-j"$(nproc)"
tar xJf .rbundle/r-bundle.tar.xz -C / && ldconfig
if [[ ${AB_NOINSTALL:-0} != 1 ]]; then # 1: both are installed already
  R CMD INSTALL . >"$OUT/install.log" 2>&1 || { tail -40 "$OUT/install.log"; exit 1; }
  mkdir -p /tmp/old-lib
  R CMD INSTALL -l /tmp/old-lib "$old" >"$OUT/install-old.log" 2>&1 ||
    { tail -40 "$OUT/install-old.log"; exit 1; }
fi
export R_USER_CACHE_DIR=/tmp/rkeops-cache NOT_CRAN=true RKEOPS_BENCH_KEOPS=0
if [[ ${AB_GPU:-1} == 1 ]]; then
  for r in $(seq 1 "$rounds"); do
    if [[ $r == 1 ]]; then only=""; else only=${RKEOPS_AB_ONLY:-knn|gauss_D3}; fi
    RKEOPS_BENCH_ONLY=$only RKEOPS_BENCH_OLD_LIB=/tmp/old-lib \
      timeout 400 Rscript bench/gpu.R >"$OUT/gpu-ab$r.txt" 2>&1
    echo "gpu round $r done ($(date +%T))"
  done
fi
if [[ ${AB_CPU:-1} == 1 ]]; then
  for r in $(seq 1 "$rounds"); do
    R_LIBS=/tmp/old-lib timeout 300 Rscript bench/cpu.R rkeops-only >"$OUT/cpu-old$r.txt" 2>&1
    timeout 300 Rscript bench/cpu.R rkeops-only >"$OUT/cpu-new$r.txt" 2>&1
    echo "cpu round $r done ($(date +%T))"
  done
fi
if [[ ${AB_DIRECT:-$rounds} != 0 ]]; then
  for r in $(seq 1 "${AB_DIRECT:-$rounds}"); do
    R_LIBS=/tmp/old-lib timeout 200 Rscript bench/ab-direct.R old >>"$OUT/ab-direct.txt" 2>&1
    timeout 200 Rscript bench/ab-direct.R new >>"$OUT/ab-direct.txt" 2>&1
    echo "direct round $r done ($(date +%T))"
  done
  F="$OUT/ab-direct.txt" Rscript -e '
    d <- read.table(Sys.getenv("F"), col.names = c("side", "case", "s"), fill = TRUE)
    d <- d[d$side %in% c("old", "new") & !is.na(suppressWarnings(as.numeric(d$s))), ]
    d$s <- as.numeric(d$s)
    m <- tapply(d$s, list(d$case, d$side), median)
    n <- tapply(d$s, list(d$case, d$side), length)
    print(data.frame(case = rownames(m), old_s = signif(m[, "old"], 4),
                     new_s = signif(m[, "new"], 4),
                     new_over_old = round(m[, "new"] / m[, "old"], 3),
                     runs = n[, "new"]), row.names = FALSE)' | tee "$OUT/ab-direct-summary.txt"
fi
