#!/usr/bin/env bash
# Builds the carebridge .deb with cargo-deb.
#   bash packaging/build-deb.sh                              # host arch, release
#   bash packaging/build-deb.sh aarch64-unknown-linux-gnu    # Pi, 64-bit OS (arm64)
#   bash packaging/build-deb.sh armv7-unknown-linux-gnueabihf  # 32-bit OS (armhf)
#   bash packaging/build-deb.sh --dev [target]               # debug binary (packaging tests)
# Prints the path of the .deb on its last line. Cross targets need the
# cross compilers (`bash tests/cross.sh --install-only` installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
if [ "${1:-}" = "--dev" ]; then
	profile=dev
	shift
fi
target="${1:-}"

if ! command -v cargo-deb >/dev/null 2>&1; then
	echo "== cargo install cargo-deb --locked" >&2
	cargo install cargo-deb --locked >&2
fi

# The man page is gzipped here (Debian policy), reproducibly (-n: no name/time).
out_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$out_dir/deb-extra"
gzip -9n <packaging/deb/carebridge.1 >"$out_dir/deb-extra/carebridge.1.gz"
if [ "$out_dir" != target ]; then
	# cargo-deb resolves asset paths under target/ to CARGO_TARGET_DIR only for
	# built binaries; keep the man page where Cargo.toml names it.
	mkdir -p target/deb-extra
	cp "$out_dir/deb-extra/carebridge.1.gz" target/deb-extra/
fi

args=(--profile "$profile")
[ -n "$target" ] && args+=(--target "$target")
cargo deb "${args[@]}" >&2
if [ -n "$target" ]; then
	deb_dir="$out_dir/$target/debian"
else
	deb_dir="$out_dir/debian"
fi
ls -t "$deb_dir"/carebridge_*.deb | head -n1
