#!/usr/bin/env bash
# Raspberry Pi targets: installs the cross toolchain (Debian's cross gcc,
# qemu-user, the rustup targets), runs the library's unit tests for aarch64
# under qemu-aarch64 (so byte-order, alignment and pointer-width bugs show
# up here, not in a home), then builds and checks the .deb (tests/deb.sh).
#   bash tests/cross.sh                 # what tests/all.sh runs
#   bash tests/cross.sh --install-only  # toolchains for aarch64 and armv7, nothing else
#   bash tests/cross.sh --armv7         # also the armv7 unit tests under qemu-arm (32-bit
#                                       # pointers; a second full debug build, so not default)
# Release builds (one line each, see .cargo/config.toml):
#   cargo build --release --target aarch64-unknown-linux-gnu
#   cargo build --release --target armv7-unknown-linux-gnueabihf
set -euo pipefail
cd "$(dirname "$0")/.."

install_only=false
armv7=false
case "${1:-}" in
--install-only) install_only=true ;;
--armv7) armv7=true ;;
esac

pkgs=()
command -v aarch64-linux-gnu-gcc >/dev/null || pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || pkgs+=(qemu-user)
targets=(aarch64-unknown-linux-gnu)
if $install_only || $armv7; then
	command -v arm-linux-gnueabihf-gcc >/dev/null || pkgs+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
	targets+=(armv7-unknown-linux-gnueabihf)
fi
if [ ${#pkgs[@]} -gt 0 ]; then
	echo "== apt-get install ${pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
installed=$(rustup target list --installed)
for t in "${targets[@]}"; do
	grep -qx "$t" <<<"$installed" || rustup target add "$t"
done
$install_only && exit 0

echo "== cargo test --workspace --lib --target aarch64-unknown-linux-gnu (under qemu-aarch64)"
# Under qemu-user the tests that cannot run there skip themselves when this
# is set (they all run natively in `cargo test`): the store crash test, which
# re-executes itself as a child process, and the disk-full tests, which run
# `mount`/`umount` (a child forked from a many-threaded guest can deadlock
# inside qemu-user before it execs). (The pty tests that would need termios2
# are integration tests, not run here.)
export CAREBRIDGE_QEMU_USER=1
cargo test --workspace --lib --target aarch64-unknown-linux-gnu
if $armv7; then
	echo "== cargo test --lib --target armv7-unknown-linux-gnueabihf (under qemu-arm)"
	cargo test --workspace --lib --target armv7-unknown-linux-gnueabihf
fi

echo "== .deb"
bash tests/deb.sh
