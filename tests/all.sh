#!/usr/bin/env bash
# Runs every test carebridge has on a fresh Debian machine: installs the real
# peers (Mosquitto, …), then format check, clippy with warnings as errors,
# and all unit, property and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

source tests/peers.sh

echo "== cargo fmt --all --check"
cargo fmt --all --check
echo "== cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== the core crate stays pure (no tokio, I/O crates or wall clock)"
bash tests/core_pure.sh
echo "== cargo test --workspace"
cargo test --workspace --no-fail-fast 2>&1 | tee /tmp/carebridge-test.log
bash tests/cross.sh # Raspberry Pi: aarch64 unit tests under qemu-user, then the .deb (tests/deb.sh)
echo "== end-to-end UI tests in headless Chromium"
sh tests/e2e/run.sh
