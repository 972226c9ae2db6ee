#!/usr/bin/env bash
# Builds the amd64 .deb (from the debug binary, so it costs no release build)
# and checks it: control fields, the file list, the conffile, the maintainer
# scripts, lintian (errors and warnings fail; overrides are justified in
# packaging/deb/lintian-overrides). As root on a machine without carebridge
# installed it also installs and purges the package for real: user in
# dialout, state dir, units enabled but not started, clean purge.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v lintian >/dev/null 2>&1; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lintian >/dev/null
fi

# CAREBRIDGE_DEB=path checks an existing package instead of building one.
deb=${CAREBRIDGE_DEB:-$(bash packaging/build-deb.sh --dev | tail -n1)}
echo "== checking $deb ($(du -k "$deb" | cut -f1) KiB)"
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

info=$(dpkg-deb -I "$deb")
grep -q '^ Package: carebridge$' <<<"$info" || fail "package name"
grep -q '^ Architecture: amd64$' <<<"$info" || fail "architecture"
grep -Eq '^ Depends: .*libc6' <<<"$info" || fail "libc6 dependency (\$auto)"
grep -Eq '^ Depends: .*adduser' <<<"$info" || fail "adduser dependency"
for f in postinst prerm postrm conffiles; do
	grep -Eq "^ +[0-9]+ bytes, +[0-9]+ lines +\*? *$f" <<<"$info" || fail "control member $f"
done
conffiles=$(dpkg-deb -f "$deb" Package >/dev/null && dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)
[ "$conffiles" = "/etc/carebridge/carebridge.toml" ] || fail "conffiles: $conffiles"

list=$(dpkg-deb -c "$deb" | awk '{print $1, $6}')
want=(
	"-rwxr-xr-x ./usr/bin/carebridge"
	"-rw-r--r-- ./etc/carebridge/carebridge.toml"
	"-rw-r--r-- ./lib/systemd/system/carebridge.service"
	"-rw-r--r-- ./lib/systemd/system/carebridge-restart.service"
	"-rw-r--r-- ./lib/systemd/system/carebridge-ota-guard.service"
	"-rw-r--r-- ./lib/systemd/system/carebridge-ota-guard.timer"
	"-rw-r--r-- ./lib/systemd/system/carebridge-update-poll.service"
	"-rw-r--r-- ./lib/systemd/system/carebridge-update-poll.timer"
	"-rw-r--r-- ./usr/lib/sysusers.d/carebridge.conf"
	"-rw-r--r-- ./lib/udev/rules.d/99-carebridge.rules"
	"-rw-r--r-- ./usr/share/man/man1/carebridge.1.gz"
	"-rw-r--r-- ./usr/share/doc/carebridge/copyright"
)
for w in "${want[@]}"; do
	grep -qxF -e "$w" <<<"$list" || fail "missing or wrong mode: $w"
done

# The shipped config is the committed default, byte for byte.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp/root"
cmp "$tmp/root/etc/carebridge/carebridge.toml" packaging/deb/carebridge.toml || fail "conffile differs"
"$tmp/root/usr/bin/carebridge" config check "$tmp/root/etc/carebridge/carebridge.toml" >/dev/null ||
	fail "shipped config does not pass config check"
# The package is built without the simulators (cargo feature `sim`).
if "$tmp/root/usr/bin/carebridge" demo --help >/dev/null 2>&1 ||
	"$tmp/root/usr/bin/carebridge" sim-stick --help >/dev/null 2>&1; then
	fail "the packaged binary still carries the simulators (demo / sim-stick)"
fi
grep -q 'SYMLINK+="carebridge-zigbee"' "$tmp/root/lib/udev/rules.d/99-carebridge.rules" || fail "udev zigbee name"
grep -q 'SYMLINK+="carebridge-lora"' "$tmp/root/lib/udev/rules.d/99-carebridge.rules" || fail "udev lora name"
for s in postinst prerm postrm; do
	dpkg-deb --ctrl-tarfile "$deb" | tar -xO "./$s" | sh -n || fail "$s syntax"
done

echo "== lintian"
lintian --fail-on error,warning "$deb"

# Real install and purge, only where it cannot clobber anything.
if [ "$(id -u)" = 0 ] && ! dpkg-query -W carebridge >/dev/null 2>&1 && ! getent passwd carebridge >/dev/null; then
	echo "== dpkg -i / purge"
	cleanup() {
		dpkg --purge carebridge >/dev/null 2>&1 || true
		rm -rf "$tmp"
	}
	trap cleanup EXIT
	out=$(dpkg -i "$deb" 2>&1) || fail "dpkg -i: $out"
	id -nG carebridge | tr ' ' '\n' | grep -qx dialout || fail "carebridge user not in dialout"
	[ "$(stat -c '%U %a' /var/lib/carebridge)" = "carebridge 700" ] || fail "state dir owner/mode"
	[ -L /etc/systemd/system/multi-user.target.wants/carebridge.service ] || fail "service not enabled"
	[ -L /etc/systemd/system/timers.target.wants/carebridge-ota-guard.timer ] || fail "guard timer not enabled"
	[ ! -e /etc/systemd/system/timers.target.wants/carebridge-update-poll.timer ] || fail "poll timer enabled by default"
	if [ -d /run/systemd/system ]; then
		! systemctl is-active --quiet carebridge.service || fail "service started before it was configured"
	fi
	dpkg --purge carebridge >/dev/null || fail "purge"
	! getent passwd carebridge >/dev/null || fail "user left after purge"
	[ ! -e /var/lib/carebridge ] || fail "state left after purge"
	[ ! -e /etc/carebridge ] || fail "/etc/carebridge left after purge"
	[ ! -e /etc/systemd/system/multi-user.target.wants/carebridge.service ] || fail "enable link left after purge"
fi
echo "deb checks passed: $deb"
