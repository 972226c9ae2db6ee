#!/usr/bin/env bash
# The core crate (core/, carebridge-core) is pure: no async runtime, no I/O
# crate, no file or socket, no thread, no wall clock. Its Cargo.toml already
# cannot name tokio & co. without this failing; the grep catches std's own
# I/O and clocks, which need no dependency.
set -euo pipefail
cd "$(dirname "$0")/.."

bad=0
deps=$(cargo tree -p carebridge-core -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u)
for forbidden in tokio tokio-util rusqlite serialport warp hyper hyper-util rumqttc rumqttd ring rustls nix tracing-subscriber; do
	if grep -qx "$forbidden" <<<"$deps"; then
		echo "core depends on $forbidden (cargo tree -p carebridge-core -i $forbidden)"
		bad=1
	fi
done
if grep -rnE 'std::fs\b|std::process\b|std::thread\b|TcpStream|TcpListener|UdpSocket|SystemTime::now|Instant::now|std::env::var|File::(open|create)' core/src; then
	echo "core/src reads files, sockets, threads, the environment or a clock (above)"
	bad=1
fi
[ "$bad" = 0 ] && echo "core is pure: $(wc -l <<<"$deps") crates, none of them I/O"
exit "$bad"
