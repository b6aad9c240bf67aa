#!/bin/sh
# Runs every libFuzzer target in BUILD for SECONDS each, seeded from fuzz/corpus/<name>/ and
# replaying fuzz/regressions/<name>/ first. Any crash, leak or sanitizer report fails the run.
set -e
BUILD=$1; SECONDS_EACH=${2:-20}
top=$(cd "$(dirname "$0")/.." && pwd)
found=0
for bin in "$BUILD"/fuzz_*; do
  [ -x "$bin" ] || continue
  found=1
  name=$(basename "$bin"); short=${name#fuzz_}
  work=$(mktemp -d)
  seeds=""
  [ -d "$top/fuzz/corpus/$short" ] && seeds="$top/fuzz/corpus/$short"
  if [ -d "$top/fuzz/regressions/$short" ]; then
    "$bin" -runs=0 "$top/fuzz/regressions/$short" >/dev/null 2>&1 || { echo "fuzz $short: regression input fails"; exit 1; }
  fi
  echo "fuzz $short: ${SECONDS_EACH}s"
  if ! "$bin" -max_total_time="$SECONDS_EACH" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="$work/" "$work" $seeds > "$work/log" 2>&1; then
    tail -50 "$work/log"; echo "fuzz $short: FAILED (artifacts in $work)"; exit 1
  fi
  rm -rf "$work"
done
[ $found -eq 1 ] || echo "no fuzz targets"
exit 0
