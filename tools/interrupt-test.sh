#!/bin/bash
# tools/interrupt-test.sh -- Ctrl-C and killed compilers, end to end
# (issue 17 item 4).  Each scenario runs one Rscript in a process group of
# its own (as a terminal's foreground job), sends it a signal after a few
# seconds, and reports how long R took to give control back, what
# condition R saw, whether the kernel cache holds leftover files, whether
# any process of the compiler is left, and whether a later, unrelated
# reduction still works (the interrupt must not hit it).
#
#   R_LIBS=/path/to/lib tools/interrupt-test.sh [scenario ...]
#
# Scenarios:
#   compile-int   SIGINT to R's process group 3 s into a long compile
#                 (Sum_Reduction(x * y) with x = Vi(1000): tens of seconds)
#   compile-kill  SIGKILL to the compiler's process group 3 s into it
#   reduce-int    SIGINT 4 s into SqDist in D = 10000 on 2000 x 2000 points
#                 (before the fix the first chunk held every row: ~40 s)
# Each prints "PASS <scenario>" or "FAIL <scenario>: why"; the exit status
# is the number of failures.  Needs bash, setsid (util-linux) and ps.
set -u
SCEN=${*:-"compile-int compile-kill reduce-int"}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rk-int-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
fails=0

cat >"$WORK/child.R" <<'EOF'
scen <- commandArgs(TRUE)[1]
cache <- commandArgs(TRUE)[2]
suppressPackageStartupMessages(library(rkeops))
set_rkeops_options(list(cache_dir = cache))
rkeops_use_cpu()
if (scen %in% c("compile-int", "compile-kill")) {
  D <- 1000L
  op <- keops_kernel("Sum_Reduction(x * y, 1)",
                     c(sprintf("x=Vi(%d)", D), sprintf("y=Vj(%d)", D)))
  x <- matrix(1, 3, D)
  y <- matrix(1, 3, D)
} else {
  D <- 10000L
  op <- keops_kernel("Sum_Reduction(SqDist(x, y), 1)",
                     c(sprintf("x=Vi(%d)", D), sprintf("y=Vj(%d)", D)))
  set.seed(1)
  x <- matrix(rnorm(2000 * D), 2000, D)
  y <- matrix(rnorm(2000 * D), 2000, D)
  invisible(op(list(x[1:2, ], y[1:2, ]))) # compiled before the clock starts
}
cat("READY", format(as.numeric(Sys.time()), nsmall = 3), "\n")
res <- tryCatch(
  {
    op(list(x, y))
    "finished"
  },
  interrupt = function(c) paste0("interrupt (", paste(class(c), collapse = "/"), ")"),
  error = function(e) paste0("error (", class(e)[1], "): ", conditionMessage(e))
)
cat("RETURNED", format(as.numeric(Sys.time()), nsmall = 3), "\n")
cat("CONDITION", gsub("\n", " | ", res), "\n")
# a later, unrelated call: no stale interrupt, a right answer
later <- tryCatch({
  op2 <- keops_kernel("Sum_Reduction(Exp(-SqDist(a, b)), 1)", c("a=Vi(2)", "b=Vj(2)"))
  a <- matrix(seq(0, 1, length.out = 20), 10, 2)
  r <- op2(list(a, a))
  d2 <- unname(as.matrix(dist(a)))^2
  if (isTRUE(all.equal(r[, 1], rowSums(exp(-d2)), tolerance = 1e-12))) "ok" else "WRONG"
}, interrupt = function(c) "INTERRUPTED", error = function(e) conditionMessage(e))
cat("LATER", later, "\n")
EOF

now() { date +%s.%N; }

run() {
  scen=$1
  cache="$WORK/cache-$scen"
  mkdir -p "$cache"
  out="$WORK/$scen.out"
  setsid Rscript "$WORK/child.R" "$scen" "$cache" >"$out" 2>&1 &
  rpid=$!
  # wait for READY (the reduction's compile may take a while)
  i=0
  while ! grep -q READY "$out" 2>/dev/null; do
    sleep 0.2; i=$((i + 1))
    [ $i -gt 600 ] && { echo "FAIL $scen: never ready"; cat "$out"; kill -KILL -- -"$rpid"; return 1; }
  done
  case $scen in
    compile-*) sleep 3 ;;
    *) sleep 4 ;;
  esac
  # the compiler's process group: the sh child of R (it leads its group)
  ccpid=$(ps -o pid= --ppid "$rpid" | tr -d ' ' | head -1)
  t_sig=$(now)
  case $scen in
    compile-int | reduce-int) kill -INT -- -"$rpid" ;;
    compile-kill)
      if [ -z "$ccpid" ]; then echo "FAIL $scen: no compiler running"; kill -KILL -- -"$rpid"; return 1; fi
      kill -KILL -- -"$ccpid" ;;
  esac
  # R must give control back within 120 s
  i=0
  while kill -0 "$rpid" 2>/dev/null && ! grep -q RETURNED "$out"; do
    sleep 0.05; i=$((i + 1))
    [ $i -gt 2400 ] && break
  done
  wait "$rpid"
  t_ret=$(sed -n 's/^RETURNED \([0-9.]*\).*/\1/p' "$out")
  cond=$(sed -n 's/^CONDITION //p' "$out")
  # leftovers, seen from here (also when R died)
  left="$(ls -A "$cache" | grep -c '^tmp-') $(ls -A "$cache" | grep '^tmp-' | tr '\n' ' ')"
  later=$(sed -n 's/^LATER //p' "$out" | tr -d ' ')
  procs=""
  [ -n "$ccpid" ] && procs=$(ps -o pid=,args= -g "$ccpid" 2>/dev/null)
  lat=$(awk -v a="$t_sig" -v b="${t_ret:-0}" 'BEGIN { printf "%.2f", b - a }')
  echo "$scen: signal -> control back in ${lat} s; condition: $cond"
  echo "$scen: tmp files left in the cache: ${left:-?}; compiler processes left: ${procs:-none}; later call: $later"
  why=""
  [ -z "$t_ret" ] && why="$why no return;"
  awk -v l="$lat" 'BEGIN { exit !(l > 2.0) }' && why="$why slow (${lat} s);"
  case $scen in
    compile-int | reduce-int) echo "$cond" | grep -q "^interrupt (rkeops_interrupt" || why="$why not an rkeops_interrupt;" ;;
    compile-kill) echo "$cond" | grep -q "^error (rkeops_compile_error): the C compiler was killed by signal 9" || why="$why not a compile error naming the signal;" ;;
  esac
  case "$left" in 0*) ;; *) why="$why leftover files;" ;; esac
  [ -n "$procs" ] && why="$why compiler processes left;"
  [ "$later" = "ok" ] || why="$why later call: $later;"
  if [ -n "$why" ]; then
    echo "FAIL $scen:$why"; sed 's/^/  | /' "$out"; return 1
  fi
  echo "PASS $scen"
}

for s in $SCEN; do
  run "$s" || fails=$((fails + 1))
done
exit $fails
