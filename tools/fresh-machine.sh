#!/usr/bin/env bash
# tools/fresh-machine.sh -- run the README's two commands on a fresh, minimal
# Debian bookworm (debootstrap --variant=minbase: no R, no compiler, no
# locale, no LANG) in a chroot, from a clean clone of this repository.
#
#   sudo tools/fresh-machine.sh [WORKDIR]     (default /tmp/rkeops-fresh)
#
# Needs root, debootstrap and a reachable Debian mirror (MIRROR, default
# http://deb.debian.org/debian).  The minimal system is made once and kept
# as WORKDIR/minbase.tar; every run unpacks it anew into WORKDIR/root, so
# each run starts from a machine on which nothing was installed yet.
# The two commands are read from README.md's "Quick start" section (its
# two ```sh blocks), so what is tested is what the README says.  They run
# as root with `env -i` (PATH and HOME only), CI=true for the second one,
# and no standard input, in a clean clone of the committed HEAD.  Then
# vignette("rkeops") must be found.  Logs: WORKDIR/cmd1.log, cmd2.log.
# Exits 0 when both commands and the vignette check passed.  FRESH_STEPS=1
# runs only the first command and the vignette check (a few minutes).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
W=${1:-/tmp/rkeops-fresh}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
R=$W/root
mkdir -p "$W"

if [ ! -f "$W/minbase.tar" ]; then
  rm -rf "$W/base"
  debootstrap --variant=minbase bookworm "$W/base" "$MIRROR" > "$W/debootstrap.log" 2>&1
  tar -C "$W/base" -cf "$W/minbase.tar" .
  rm -rf "$W/base"
fi

cleanup() {
  for m in dev/pts dev proc sys; do
    mountpoint -q "$R/$m" 2>/dev/null && umount -l "$R/$m" || true
  done
}
trap cleanup EXIT
cleanup
rm -rf "$R"
mkdir -p "$R"
tar -C "$R" -xf "$W/minbase.tar"
cp /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null || true
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
mount -t sysfs sys "$R/sys"

# a clean clone of the committed HEAD (no build outputs, no untracked files)
git clone -q --no-hardlinks "$REPO" "$R/root/rkeops"
rm -rf "$R/root/rkeops/.git"   # CI's clone has one, but nothing needs it

# the two commands of README.md's quick start
blocks=$(awk '/^## Quick start/ {q = 1; next} /^## / {q = 0}
              q && /^```sh/ {b = 1; n++; next} b && /^```/ {b = 0; print "\x1e"; next}
              b {print}' "$REPO/README.md")
cmd1=$(printf '%s' "$blocks" | awk 'BEGIN {RS = "\x1e"} NR == 1')
cmd2=$(printf '%s' "$blocks" | awk 'BEGIN {RS = "\x1e"} NR == 2')
cmd1=$(echo "$cmd1" | sed '/^[[:space:]]*$/d'); cmd2=$(echo "$cmd2" | sed '/^[[:space:]]*$/d')
[ -n "$cmd1" ] && [ -n "$cmd2" ] || { echo "fresh-machine: README has no two sh blocks"; exit 2; }

run_in() {  # run_in LOG COMMAND [ENV...]
  local log=$1 cmd=$2; shift 2
  chroot "$R" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root "$@" /bin/bash -c "cd /root/rkeops && $cmd" < /dev/null > "$log" 2>&1
}

status=0
echo "== (1) $cmd1"
t0=$(date +%s)
if run_in "$W/cmd1.log" "$cmd1"; then echo "   ok ($(( $(date +%s) - t0 )) s)"; else
  echo "   FAILED ($(( $(date +%s) - t0 )) s), $W/cmd1.log:"; tail -n 40 "$W/cmd1.log"; status=1; fi
tail -n 5 "$W/cmd1.log" | sed 's/^/   | /'

echo "== vignette(\"rkeops\")"
vcheck='v <- utils::vignette("rkeops", package = "rkeops"); stopifnot(inherits(v, "vignette"), file.exists(file.path(v$Dir, "doc", v$PDF))); cat("found", v$PDF, "\n")'
if run_in "$W/vignette.log" "Rscript -e '$vcheck'"; then sed 's/^/   | /' "$W/vignette.log"; else
  echo "   FAILED:"; cat "$W/vignette.log"; status=1; fi

if [ "${FRESH_STEPS:-12}" = 1 ]; then
  [ "$status" -eq 0 ] && echo "fresh-machine: README command 1 passed (2 not run)" || echo "fresh-machine: FAILED"
  exit "$status"
fi
echo "== (2) $cmd2"
t0=$(date +%s)
if run_in "$W/cmd2.log" "$cmd2" CI=true; then echo "   ok ($(( $(date +%s) - t0 )) s)"; else
  echo "   FAILED ($(( $(date +%s) - t0 )) s), $W/cmd2.log:"; grep -E "WARNING|ERROR|NOTE" "$W/cmd2.log" | head -n 20 || true; status=1; fi
tail -n 3 "$W/cmd2.log" | sed 's/^/   | /'
[ "$status" -eq 0 ] && echo "fresh-machine: both README commands passed" || echo "fresh-machine: FAILED"
exit "$status"
