#!/bin/sh
# tools/ir-standalone.sh -- shows that the IR layer of the engine (lexer,
# parser, declarations, IR, dimension checks, simplification, canonical
# text) compiles and links on its own, without the code generator
# (src/cg-*.c), the backends (be-*.c, run.c) or differentiation (ad.c,
# ad-rules.c); then that the AD layer links on the IR alone, still without
# any cg-*.c.  Each program parses a few formulas and checks their
# canonical text (tools/ir-standalone-main.c).  Run from anywhere; exit
# status 0 when both programs build warning-free and pass.
#   CC=clang tools/ir-standalone.sh
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CC=${CC:-cc}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
IR="rk.c lex.c parse.c parse-decl.c ir.c ir-check.c ir-simplify.c ir-format.c"
AD="ad.c ad-rules.c formula.c"
FLAGS="-std=c11 -Wall -Wextra -Werror -O1 -I$ROOT/inst/include"
src() { for f in "$@"; do printf '%s ' "$ROOT/src/$f"; done; }

echo "== IR layer alone: $IR"
# shellcheck disable=SC2046
$CC $FLAGS -o "$OUT/ir" $(src $IR) "$ROOT/tools/ir-standalone-main.c" -lm
"$OUT/ir"

echo "== IR + AD layers (no cg-*.c): $AD"
# shellcheck disable=SC2046
$CC $FLAGS -DRK_WITH_AD -o "$OUT/ir-ad" $(src $IR $AD) \
  "$ROOT/tools/ir-standalone-main.c" -lm
"$OUT/ir-ad"
echo "ir-standalone: ok"
