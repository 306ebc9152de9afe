#!/usr/bin/env bash
# tools/asan.sh -- the test suite against an ASan + UBSan build of rkeops.
#
#   tools/asan.sh [TEST-FILE-PATTERN]    (default: every test file)
#   e.g. tools/asan.sh 'parse|errors|kernel-api'
#
# Builds the package with clang -fsanitize=address,undefined (R_MAKEVARS_USER:
# CC, -g -O1) into a private library, then runs each tests/testthat/test-*.R
# file matching the pattern in its own Rscript with the ASan runtime
# LD_PRELOADed (R itself is not instrumented), leak detection on and every
# report written to ASAN_BUILD/log/.  configure runs first without the
# sanitizers, so the kernels compiled at run time use R's usual compiler,
# uninstrumented (an instrumented -O3 kernel takes clang over 10 minutes).
# Child processes (the compiler) inherit the preload; their leak reports are
# ignored, as are leaks whose allocation stack has no frame in rkeops.so (R
# does not free its heap at exit).  Exits non-zero on any test failure, any ASan error, any UBSan
# report or any leak from rkeops.  Slow: about 3x the normal suite.
# Needs clang, libclang-rt-14-dev and rsync (apt-get install clang
# libclang-rt-14-dev rsync).
# Environment: ASAN_BUILD (default /tmp/rkeops-asan), CLANG (default clang).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
B=${ASAN_BUILD:-/tmp/rkeops-asan}
CLANG=${CLANG:-clang}
PATTERN=${1:-.}
mkdir -p "$B/lib" "$B/log" "$B/cache"
rm -f "$B"/log/*

SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -shared-libasan"
cat > "$B/Makevars" <<MV
CC = $CLANG $SAN
CFLAGS = -g -O1 -Wall
MV
rsync -a --delete --exclude .git --exclude '*.o' --exclude '*.so' "$ROOT/" "$B/pkg/"
echo "== building rkeops with $CLANG $SAN"
# configure with R's compiler (it records the kernels' compiler), then build
# the package's own objects with the sanitizers
if ! (cd "$B/pkg" && ./configure > "$B/configure.log" 2>&1) ||
   ! R_MAKEVARS_USER="$B/Makevars" MAKEFLAGS=-j2 R CMD INSTALL --no-configure \
     --no-test-load -l "$B/lib" "$B/pkg" > "$B/install.log" 2>&1; then
  tail -n 40 "$B/install.log"; echo "asan: build FAILED"; exit 1
fi
RT=$($CLANG -print-file-name=libclang_rt.asan-x86_64.so)
[ -f "$RT" ] || { echo "asan: no ASan runtime ($RT): apt-get install libclang-rt-14-dev"; exit 1; }

export ASAN_OPTIONS="detect_leaks=1:log_path=$B/log/asan:detect_odr_violation=0:allow_user_segv_handler=1:handle_segv=1:detect_stack_use_after_return=0"
export LSAN_OPTIONS="exitcode=0:report_objects=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=0:log_path=$B/log/ubsan"
export R_LIBS="$B/lib" R_USER_CACHE_DIR="$B/cache" NOT_CRAN=true

total_fail=0
cd "$ROOT"
for f in tests/testthat/test-*.R; do
  name=$(basename "$f")
  echo "$name" | grep -qE "$PATTERN" || continue
  t0=$(date +%s)
  LD_PRELOAD="$RT" Rscript -e '
    r <- as.data.frame(testthat::test_file(commandArgs(TRUE)[1], package = "rkeops",
          load_package = "installed", reporter = "summary"))
    cat(sprintf("\nASAN-COUNTS %d %d %d\n", sum(r$nb) - sum(r$failed) - sum(r$skipped),
        sum(r$failed) + sum(r$error), sum(r$skipped)))' "$f" > "$B/log/$name.out" 2>&1
  rc=$?
  counts=$(grep -E "^ASAN-COUNTS" "$B/log/$name.out" | tail -n 1 | cut -d' ' -f2-)
  [ -n "$counts" ] || counts="? 1 ?"
  set -- $counts
  echo "$name: rc=$rc passed=$1 failed=$2 skipped=$3 ($(( $(date +%s) - t0 )) s)"
  if [ "$rc" -ne 0 ] || [ "$2" != "0" ]; then
    total_fail=$((total_fail + 1)); tail -n 30 "$B/log/$name.out"
  fi
done

# ---- sanitizer reports --------------------------------------------------------
errors=0
for log in "$B"/log/asan.* "$B"/log/ubsan.*; do
  [ -f "$log" ] || continue
  # ASan errors (not leaks) and UBSan runtime errors, in any process
  if grep -qE "ERROR: AddressSanitizer|runtime error:" "$log"; then
    echo "== $log"; grep -E -A25 "ERROR: AddressSanitizer|runtime error:" "$log" | head -n 60
    errors=$((errors + 1))
  fi
  # leak reports: only those whose stack passes through rkeops.so
  awk '
    /^(Direct|Indirect) leak of/ { if (blk != "" && ours) print blk; blk = $0 "\n"; ours = 0; next }
    blk != "" && /^ *#[0-9]+/ { blk = blk $0 "\n"; if ($0 ~ /rkeops\.so/) ours = 1; next }
    blk != "" { if (ours) print blk; blk = ""; ours = 0 }
    END { if (blk != "" && ours) print blk }' "$log" > "$B/log/ours.tmp"
  if [ -s "$B/log/ours.tmp" ]; then
    echo "== leaks from rkeops in $log"; head -n 60 "$B/log/ours.tmp"
    errors=$((errors + 1))
  fi
done
rm -f "$B/log/ours.tmp"
echo "asan: $total_fail test file(s) failed, $errors sanitizer report file(s) with findings"
[ "$total_fail" -eq 0 ] && [ "$errors" -eq 0 ]
