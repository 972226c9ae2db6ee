#!/usr/bin/env bash
# Runs every test carebridge has on a fresh Debian machine: installs the real
# peers (Mosquitto, …), then format check, clippy with warnings as errors,
# and all unit, property and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

source tests/peers.sh

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== cargo test"
cargo test --no-fail-fast 2>&1 | tee /tmp/carebridge-test.log
bash tests/cross.sh # Raspberry Pi: aarch64 unit tests under qemu-user, then the .deb (tests/deb.sh)
echo "== end-to-end UI tests in headless Chromium"
sh tests/e2e/run.sh
