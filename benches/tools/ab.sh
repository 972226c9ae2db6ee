#!/usr/bin/env bash
# Interleaved A/B runs of two carebridge binaries through the `versus` bench:
# this host's noise (±10 % between runs of one binary, drifting within the
# hour) hides a change of a few per cent unless the two builds alternate in
# the same minutes. Prints each run, then per build the median and range of
# CPU µs per event and peak RSS.
#
#   benches/tools/ab.sh OLD_BINARY NEW_BINARY [FLOW] [ROUNDS]
#
# FLOW: alert (default) | telemetry | minute | …  (VERSUS_FLOWS); ROUNDS: 5.
# Copy the binaries out of target/ first (a build in between replaces them),
# both at the same time: a binary's text pages in RSS depend on how much of
# the file is in the page cache (~1–1.5 MB between a fresh and an old copy).
# Other VERSUS_* variables pass through (VERSUS_N, VERSUS_DIR, …). Needs the
# bench built: `cargo bench --profile release --bench versus --no-run`.
set -euo pipefail
a=${1:?old binary}; b=${2:?new binary}; flow=${3:-alert}; rounds=${4:-5}
cd "$(dirname "$0")/../.."
bench=$(ls -t target/release/deps/versus-* 2>/dev/null | grep -v '\.d$' | head -1 || true)
[ -x "$bench" ] || { echo "build it first: cargo bench --profile release --bench versus --no-run" >&2; exit 2; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq 1 "$rounds"); do
  for side in A B; do
    bin=$a; [ "$side" = B ] && bin=$b
    line=$(VERSUS_CAREBRIDGE=$bin VERSUS_FLOWS=$flow VERSUS_SYSTEMS=carebridge "$bench" --bench 2>&1 \
      | grep -a "^$flow " || true)
    us=$(sed -n 's/.*= \([0-9.]*\) µs\/event.*/\1/p' <<<"$line")
    peak=$(sed -n 's/.*peak \([0-9.]*\) MB.*/\1/p' <<<"$line")
    echo "round $r $side: ${line:-no result}"
    [ -n "$us" ] && echo "$side $us ${peak:-0}" >>"$out"
  done
done
for side in A B; do
  awk -v s="$side" '$1 == s { print $2, $3 }' "$out" | sort -n | awk -v s="$side" '
    { us[NR] = $1; pk[NR] = $2 }
    END {
      if (NR == 0) { print s ": no runs"; exit }
      m = (NR % 2) ? us[(NR + 1) / 2] : (us[NR / 2] + us[NR / 2 + 1]) / 2
      lo = pk[1]; hi = pk[1]; for (i = 2; i <= NR; i++) { if (pk[i] < lo) lo = pk[i]; if (pk[i] > hi) hi = pk[i] }
      printf "%s: %d runs, CPU median %.1f µs/event (%.1f–%.1f), peak RSS %.1f–%.1f MB\n", s, NR, m, us[1], us[NR], lo, hi
    }'
done
