#!/usr/bin/env bash
# tools/fuzz/run.sh -- build the libFuzzer target of the parser and the
# declarations (fuzz-formula.c) with ASan + UBSan and run it.
#
#   tools/fuzz/run.sh [SECONDS]        fuzz for SECONDS (default 120)
#   tools/fuzz/run.sh --repro FILE...  run the target once on each FILE
#
# Needs clang and libclang-rt-14-dev (apt-get install clang
# libclang-rt-14-dev).  Environment: FUZZ_BUILD (build directory, default
# /tmp/rkeops-fuzz), FUZZ_JOBS (parallel fuzzing processes, default 1),
# CC (default clang).  The seed corpus is tools/fuzz/corpus (committed;
# regenerate with Rscript tools/fuzz/make-corpus.R); new inputs found go to
# $FUZZ_BUILD/corpus, crashes to $FUZZ_BUILD/crash-*.  Exits non-zero when
# the fuzzer found a crash, a leak, undefined behaviour or a timeout, and
# then prints the crashing input.  Kernels are never compiled or run.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
B=${FUZZ_BUILD:-/tmp/rkeops-fuzz}
CC=${CC:-clang}
mkdir -p "$B/obj" "$B/corpus"

# ---- build (the engine's sources without the R glue) ----------------------
sed -e 's/@CC@/cc/' -e 's/@R_CFLAGS@//' -e 's/@CPICFLAGS@/-fPIC/' \
    -e 's/@SHLIB_LDFLAGS@/-shared/' -e 's/@KERNEL_CFLAGS@/-O2 -fPIC -shared/' \
    -e 's/@OPENMP_FLAGS@//' -e 's/@HAVE_OPENMP@/0/' -e 's/@DL_LIBS@/-ldl/' \
    "$ROOT/src/rk-config.h.in" > "$B/obj/rk-config.h"
SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-std=gnu11 -g -O1 -fno-omit-frame-pointer $SAN -I$B/obj -I$ROOT/src -I$ROOT/inst/include"
objs=()
for c in "$ROOT"/src/*.c; do
  base=$(basename "$c" .c)
  case "$base" in ffi*|init) continue ;; esac   # the R glue
  o="$B/obj/$base.o"
  if [ ! -f "$o" ] || [ "$c" -nt "$o" ] || [ -n "$(find "$ROOT/src" "$ROOT/inst/include" \
       -name '*.h' -newer "$o" -o -name '*.def' -newer "$o" | head -n 1)" ]; then
    $CC $CFLAGS -c "$c" -o "$o"
  fi
  objs+=("$o")
done
$CC $CFLAGS -c "$HERE/fuzz-formula.c" -o "$B/obj/fuzz-formula.o"
$CC -fsanitize=fuzzer,address,undefined "$B/obj/fuzz-formula.o" "${objs[@]}" \
    -ldl -lm -lpthread -o "$B/fuzz-formula"

# a dictionary of the op and reduction names
{
  sed -n 's/^X([A-Z_0-9]*, *"\([^"]*\)".*/"\1"/p' "$ROOT/src/ops.def"
  sed -n 's/^R([A-Z_0-9]*, *"\([^"]*\)".*/"\1_Reduction"/p' "$ROOT/src/red.def"
  printf '"%s"\n' "Vi(" "Vj(" "Pm(" "Var(" "=Vi(" "=Vj(" "=Pm(" "_Reduction(" ", 0)" ", 1)"
} | sort -u > "$B/formula.dict"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

if [ "${1:-}" = "--repro" ]; then
  shift
  exec "$B/fuzz-formula" -rss_limit_mb=4096 "$@"
fi

SECS=${1:-120}
JOBS=${FUZZ_JOBS:-1}
cd "$B"
rm -f crash-* leak-* timeout-* oom-* slow-unit-*
rc=0
set +e
if [ "$JOBS" -gt 1 ]; then
  ./fuzz-formula -dict=formula.dict -max_len=4096 -timeout=20 -rss_limit_mb=4096 \
    -max_total_time="$SECS" -print_final_stats=1 -jobs="$JOBS" -workers="$JOBS" \
    corpus "$HERE/corpus" > fuzz.log 2>&1
else
  ./fuzz-formula -dict=formula.dict -max_len=4096 -timeout=20 -rss_limit_mb=4096 \
    -max_total_time="$SECS" -print_final_stats=1 \
    corpus "$HERE/corpus" > fuzz.log 2>&1
fi
rc=$?
set -e
cat fuzz*.log | grep -E "stat::number_of_executed_units|^#[0-9]+ +DONE|SUMMARY|ERROR|runtime error" | head -n 40 || true
found=$(ls crash-* leak-* timeout-* oom-* 2>/dev/null || true)
if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
  tail -n 60 fuzz*.log
  for f in $found; do
    echo "== $B/$f:"; od -c "$f" | head -n 20
  done
  echo "fuzz: FAILED (exit $rc)"
  exit 1
fi
execs=$(grep -hE "stat::number_of_executed_units" fuzz*.log | awk '{s += $2} END {print s + 0}')
echo "fuzz: ok, $execs executions in ${SECS}s, no crash"
