#!/usr/bin/env bash
# Boots the image built by image/build.sh under qemu-system-aarch64 -M virt
# (software emulation, no KVM) with the image's own kernel and initrd, the
# disk as virtio, and the web UI forwarded to 127.0.0.1:PORT. Waits for
# carebridge.service to start and for https://…/healthz to answer, and
# reports the boot-to-healthy time. The disk is a copy grown by 1 GiB, so the
# first-boot unit's partition growing is exercised too.
#   bash image/boot-test.sh [OUT_DIR]      (default image/out)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
port=${CAREBRIDGE_BOOT_TEST_PORT:-18443}
timeout=${CAREBRIDGE_BOOT_TEST_TIMEOUT:-900}

if ! command -v qemu-system-aarch64 >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-arm >/dev/null
fi
img=$(ls -t "$out"/carebridge-*-arm64.img | head -n1)
[ -f "$img" ] || { echo "no image in $out (run image/build.sh)" >&2; exit 1; }
work=$(mktemp -d)
qpid=""
cleanup() {
	[ -n "$qpid" ] && kill "$qpid" 2>/dev/null && wait "$qpid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
cp --sparse=always "$img" "$work/disk.img"
truncate -s +1G "$work/disk.img"
console="$out/boot-test-console.log"
: >"$console"

# Journal warnings and errors (carebridge's among them) go to the console
# too, so a failed start can be diagnosed from the log alone.
# CAREBRIDGE_BOOT_TEST_CONSOLE_LEVEL=info shows the whole journal (slower).
journal="systemd.journald.forward_to_console=1 systemd.journald.max_level_console=${CAREBRIDGE_BOOT_TEST_CONSOLE_LEVEL:-warning}"

echo "== booting $(basename "$img") under qemu-system-aarch64 -M virt (console: $console)"
t0=$(date +%s.%N)
qemu-system-aarch64 -M virt -cpu cortex-a53 -smp 2 -m 1024 \
	-kernel "$out/vmlinuz" -initrd "$out/initrd.img" \
	-append "console=ttyAMA0 root=LABEL=RASPIROOT rw net.ifnames=0 rootwait $journal" \
	-drive "file=$work/disk.img,format=raw,if=none,id=disk0" -device virtio-blk-pci,drive=disk0 \
	-netdev "user,id=net0,hostfwd=tcp:127.0.0.1:$port-:8443" -device virtio-net-pci,netdev=net0 \
	-device virtio-rng-pci -display none -monitor none -serial "file:$console" -no-reboot &
qpid=$!

elapsed() { echo "$(date +%s.%N) - $t0" | bc | xargs printf '%.1f'; }
started="" healthy=""
while :; do
	if ! kill -0 "$qpid" 2>/dev/null; then
		echo "FAIL: qemu exited; console:" >&2
		tail -n 40 "$console" >&2
		exit 1
	fi
	t=$(elapsed)
	if [ -z "$started" ] && sed 's/\x1b\[[0-9;]*m//g' "$console" | grep -Eq 'Started carebridge\.servic(e|…)|carebridge: carebridge\.service active'; then
		started=$t
		echo "carebridge.service started after ${started}s"
	fi
	if [ -z "$healthy" ] && curl -ksf --max-time 5 "https://127.0.0.1:$port/healthz" | grep -q '"ok":true'; then
		healthy=$t
		echo "https://127.0.0.1:$port/healthz answered after ${healthy}s"
	fi
	[ -n "$started" ] && [ -n "$healthy" ] && break
	if [ "${t%.*}" -ge "$timeout" ]; then
		echo "FAIL: not healthy after ${timeout}s; console tail:" >&2
		tail -n 60 "$console" >&2
		exit 1
	fi
	sleep 2
done

# What the first boot did (the console-info unit prints the setup code).
for i in $(seq 1 60); do
	grep -q 'carebridge: setup code' "$console" && break
	sleep 2
done
grep -E 'carebridge-firstboot:|carebridge: (setup code|web UI|certificate)' "$console" |
	sed 's/setup code .*/setup code (shown on the console)/' || true
grep -q 'carebridge-firstboot: root file system' "$console" || { echo "FAIL: first boot did not run" >&2; exit 1; }
# carebridge-console-info runs after carebridge.service's start job: active, not failed.
grep -q 'carebridge: carebridge.service active' "$console" || { echo "FAIL: carebridge.service not active" >&2; exit 1; }
grep -q 'carebridge: setup code [A-Z0-9]' "$console" || { echo "FAIL: no setup code on the console" >&2; exit 1; }
# What must stay off by default (unit lines may be ellipsized on the console).
plain=$(sed 's/\x1b\[[0-9;]*m//g' "$console")
if grep -Eq 'Listening on ssh\.socket|Started ssh\.service|Starting ssh\.service' <<<"$plain"; then
	echo "FAIL: SSH was started although it is off by default" >&2
	exit 1
fi
if grep -Eq 'Started carebridge-update-poll\.timer|Started carebridge-update-.*poll_url' <<<"$plain"; then
	echo "FAIL: carebridge-update-poll.timer was started although [ota] poll_url is not set" >&2
	exit 1
fi
echo "SSH and the update poll timer stayed off"
if curl -ksf --max-time 5 "https://127.0.0.1:$port/login" -o /dev/null; then
	echo "web UI login page served over TLS"
fi
echo "boot-to-healthy: ${healthy}s (carebridge.service started at ${started}s) under qemu-system-aarch64 -M virt -cpu cortex-a53 -smp 2, no KVM"
echo "$healthy" >"$out/boot-to-healthy-seconds"
