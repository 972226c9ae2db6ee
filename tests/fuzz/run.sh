#!/usr/bin/env bash
# Runs every cargo-fuzz target for a while (default 60 s each) with the
# nightly toolchain: `bash tests/fuzz/run.sh [SECONDS] [TARGET...]`.
# Not part of the default test command (too long); crashes land in
# tests/fuzz/artifacts/<target>/ and make this script exit non-zero.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-60}"
shift || true
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir tests/fuzz)
fi
failed=()
for t in "${targets[@]}"; do
    echo "== fuzz $t for ${secs}s"
    mkdir -p "tests/fuzz/corpus/$t" tests/fuzz/target
    log="tests/fuzz/target/$t.log"
    rc=0
    cargo +nightly fuzz run "$t" --fuzz-dir tests/fuzz -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || rc=$?
    grep -E "stat::number_of_executed_units|SUMMARY|panicked" "$log" || true
    if [ "$rc" -ne 0 ]; then failed+=("$t"); tail -40 "$log"; fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz failures: ${failed[*]} (see tests/fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${secs}s each without a crash"
