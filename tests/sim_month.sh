#!/usr/bin/env bash
# Soak run of the deterministic month simulation (tests/sim_month.rs) in
# release mode: TOTAL seeds from START, in chunks of CHUNK seeds, JOBS chunks
# at a time. A failing chunk keeps its log (seed, trace, replay command) in
# $OUT and the script exits non-zero once all chunks are done.
#
#   bash tests/sim_month.sh                      # 1,000,000 seeds from 0
#   TOTAL=20000 START=5000000 JOBS=2 bash tests/sim_month.sh
#   SIM_SEED=1234 cargo test --release --test sim_month   # replay one seed
set -euo pipefail
cd "$(dirname "$0")/.."

START=${START:-0}
TOTAL=${TOTAL:-1000000}
CHUNK=${CHUNK:-5000}
JOBS=${JOBS:-$(nproc)}
OUT=${OUT:-$(mktemp -d /tmp/sim_month.XXXXXX)}

echo "== building (release)"
cargo test --release --test sim_month --no-run 2>&1 | tail -n 1
echo "== $TOTAL seeds from $START, chunks of $CHUNK, $JOBS at a time; logs in $OUT"

run_chunk() {
    local from=$1 n=$2 log="$OUT/seeds-$1.log"
    if SIM_SEED_START=$from SIM_SEEDS=$n cargo test --release --test sim_month \
        a_simulated_month -- --nocapture >"$log" 2>&1; then
        grep -h "seeds from" "$log" || true
        rm -f "$log"
    else
        echo "FAILED: seeds $from..$((from + n - 1)): $(grep -h 'failed:' "$log" | head -n 1)"
        return 1
    fi
}
export -f run_chunk
export OUT

t0=$(date +%s)
status=0
seq "$START" "$CHUNK" "$((START + TOTAL - 1))" |
    xargs -P "$JOBS" -I{} bash -c "run_chunk {} \$(( $CHUNK < $START + $TOTAL - {} ? $CHUNK : $START + $TOTAL - {} ))" ||
    status=$?
secs=$(( $(date +%s) - t0 ))
echo "== $TOTAL seeds in ${secs} s ($(( TOTAL / (secs > 0 ? secs : 1) )) seeds/s)"
if [ "$status" -ne 0 ]; then
    echo "== some chunks failed: see $OUT"
    exit 1
fi
rmdir "$OUT" 2>/dev/null || true
