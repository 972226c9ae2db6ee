#!/usr/bin/env bash
# Builds carebridge-<ver>-arm64.img.xz, a flashable image for Raspberry Pi 3/4
# (64-bit), from Debian packages alone. See image/README.md.
#   bash image/build.sh [--deb PATH] [--out DIR] [--suite bookworm]
# Without --deb it builds the arm64 .deb first (packaging/build-deb.sh).
# Needs root (mmdebstrap with qemu binfmt, file ownership in the root fs);
# no loop mounts: the ext4 root is made with `mke2fs -d`, the FAT boot
# partition with `mkfs.vfat` + `mcopy`, the MBR with `sfdisk`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
cd "$repo"

deb=""
out="$here/out"
suite=bookworm
mirror=${CAREBRIDGE_MIRROR:-http://deb.debian.org/debian}
while [ $# -gt 0 ]; do
	case "$1" in
	--deb) deb=$(realpath "$2"); shift 2 ;;
	--out) out=$(realpath -m "$2"); shift 2 ;;
	--suite) suite=$2; shift 2 ;;
	*) echo "usage: $0 [--deb PATH] [--out DIR] [--suite SUITE]" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "image/build.sh: run as root" >&2; exit 1; }
t0=$(date +%s)
step() { echo "== [$(($(date +%s) - t0))s] $*"; }

# --- tools -------------------------------------------------------------------
need=()
for t in mmdebstrap:mmdebstrap mkfs.vfat:dosfstools mcopy:mtools sfdisk:fdisk \
	mke2fs:e2fsprogs xz:xz-utils cpio:cpio depmod:kmod update-binfmts:binfmt-support \
	/usr/bin/qemu-aarch64-static:qemu-user-static; do
	command -v "${t%%:*}" >/dev/null 2>&1 || need+=("${t#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
	step "apt-get install ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
	mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64

# CAREBRIDGE_IMAGE_BASE_ONLY=1: only (re)build the cached Debian base.
base_only=${CAREBRIDGE_IMAGE_BASE_ONLY:-0}
ver=none
if [ "$base_only" != 1 ]; then
	if [ -z "$deb" ]; then
		step "building the arm64 .deb"
		deb=$(bash packaging/build-deb.sh aarch64-unknown-linux-gnu | tail -n1)
	fi
	ver=$(dpkg-deb -f "$deb" Version)
	[ "$(dpkg-deb -f "$deb" Architecture)" = arm64 ] || { echo "$deb is not arm64" >&2; exit 1; }
fi

work="$out/work"
rm -rf "$work"
mkdir -p "$work"
rootfs="$work/rootfs"

# --- root file system ------------------------------------------------------
# systemd-resolved makes /etc/resolv.conf point at its stub, which does not
# run in the chroot: the host's is copied in for the kernel's apt-get (the
# image gets the stub link back below).
# Kernel: installed with dpkg (so apt upgrades it later) but with
# INITRD=No: mkinitramfs under qemu-user takes ~15 min. The first initrd is
# built below, on the host, from the image's own busybox and modules; the
# first kernel upgrade on the Pi replaces it with a regular Debian one.
pkgs=(
	systemd systemd-sysv systemd-resolved systemd-timesyncd udev dbus kmod adduser
	iproute2 iputils-ping ca-certificates openssh-server e2fsprogs fdisk
	busybox-static raspi-firmware less
	# hwclock and its udev rule: an RTC sets the clock when it appears
	util-linux-extra
)
# The Debian base is cached (it does not depend on carebridge): rebuilt when
# the package list changes, or with CAREBRIDGE_IMAGE_FRESH=1.
key=$(printf '%s\n' "$suite" "$mirror" "${pkgs[@]}" v1 | sha256sum | cut -c1-12)
base="$out/cache/base-$suite-$key"
if [ ! -f "$base.done" ] || [ "${CAREBRIDGE_IMAGE_FRESH:-0}" = 1 ]; then
	step "mmdebstrap $suite arm64 (Debian base, cached as $(basename "$base"))"
	rm -rf "$base" "$base.done"
	mkdir -p "$out/cache"
	mmdebstrap --arch=arm64 --variant=minbase --components=main,non-free-firmware \
		--include="$(IFS=,; echo "${pkgs[*]}")" \
		--aptopt='APT::Install-Recommends "false"' \
		--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
		--customize-hook='rm -f "$1/etc/resolv.conf" && cp /etc/resolv.conf "$1/etc/resolv.conf"' \
		--customize-hook='chroot "$1" sh -c "mkdir -p /boot/firmware && INITRD=No DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-image-arm64"' \
		--customize-hook='chroot "$1" passwd --lock root' \
		--customize-hook='chroot "$1" apt-get clean' \
		"$suite" "$base" "$mirror"
	touch "$base.done"
fi
[ "$base_only" = 1 ] && exit 0

step "root file system: Debian base + carebridge $ver"
cp -a "$base" "$rootfs"
cp "$deb" "$rootfs/tmp/carebridge.deb"
mount -t proc proc "$rootfs/proc"
trap 'umount "$rootfs/proc" 2>/dev/null || true' EXIT
chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/carebridge.deb
umount "$rootfs/proc"
rm -f "$rootfs/tmp/carebridge.deb"

step "configuring the root file system"
kver=$(basename "$(ls -d "$rootfs"/lib/modules/* | sort -V | tail -n1)")
echo carebridge >"$rootfs/etc/hostname"
cat >"$rootfs/etc/hosts" <<HOSTS
127.0.0.1	localhost
127.0.1.1	carebridge
::1		localhost ip6-localhost ip6-loopback
HOSTS
# commit=600: ext4 journals a file's new mtime at every write (on 6.2+
# kernels its always-on i_version makes even lazytime do so), so each
# SQLite commit also cost a journal commit 5 s later (12 KiB) and the inode
# block's write-back (4 KiB): ~800 B per reading at a home's rate
# (benches/versus.rs, VERSUS_DEVICE=1). With 600 s the timestamps go out
# once every 10 min; what carebridge keeps is fsynced, so nothing it
# promised waits on the interval (the Armbian default for SD cards).
cat >"$rootfs/etc/fstab" <<FSTAB
LABEL=RASPIROOT	/		ext4	rw,noatime,commit=600,errors=remount-ro	0 1
LABEL=RASPIFIRM	/boot/firmware	vfat	rw,noatime,umask=0077,nofail	0 2
FSTAB
# DHCP on any wired interface; mDNS so carebridge.local finds the UI.
install -d "$rootfs/etc/systemd/network" "$rootfs/etc/systemd/resolved.conf.d"
cat >"$rootfs/etc/systemd/network/20-wired.network" <<NET
[Match]
Name=eth* en*

[Network]
DHCP=yes
MulticastDNS=yes
NET
printf '[Resolve]\nMulticastDNS=yes\n' >"$rootfs/etc/systemd/resolved.conf.d/carebridge.conf"
ln -sf ../run/systemd/resolve/stub-resolv.conf "$rootfs/etc/resolv.conf"
# SSH: off, key only when turned on; no host keys in the image.
install -d "$rootfs/etc/ssh/sshd_config.d"
printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n' \
	>"$rootfs/etc/ssh/sshd_config.d/carebridge.conf"
rm -f "$rootfs"/etc/ssh/ssh_host_*
# First boot: systemd makes a new machine id and runs ConditionFirstBoot units.
echo uninitialized >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"
install -d "$rootfs/usr/lib/carebridge-image" "$rootfs/usr/share/doc/carebridge-image"
install -m 0755 "$here/files/carebridge-firstboot" "$here/files/carebridge-console-info" \
	"$rootfs/usr/lib/carebridge-image/"
install -m 0644 "$here/files/carebridge-firstboot.service" "$here/files/carebridge-console-info.service" \
	"$rootfs/etc/systemd/system/"
install -m 0644 "$here/README.md" "$rootfs/usr/share/doc/carebridge-image/README.md"
systemctl --root="$rootfs" enable systemd-networkd.service systemd-resolved.service \
	systemd-timesyncd.service carebridge-firstboot.service carebridge-console-info.service \
	carebridge.service >/dev/null
# The first boot (machine-id "uninitialized") runs `systemctl preset-all`:
# without a catch-all preset Debian would enable every unit then, ssh.socket,
# ssh.service and the update poll timer among them. The image's preset keeps
# them off; it is applied here too, the way the first boot will, and then
# checked, so the build fails if anything would still turn them on.
install -d "$rootfs/etc/systemd/system-preset"
install -m 0644 "$here/files/99-carebridge-image.preset" "$rootfs/etc/systemd/system-preset/"
# One unit per call: a failing name must not leave ssh enabled.
for u in ssh.service ssh.socket carebridge-update-poll.timer; do
	systemctl --root="$rootfs" disable "$u" >/dev/null 2>&1 || true
done
systemctl --root="$rootfs" preset-all --preset-mode=enable-only >/dev/null 2>&1 || true
if ls "$rootfs"/etc/systemd/system/*.wants/ssh.* "$rootfs"/etc/systemd/system/sshd.service \
	"$rootfs"/etc/systemd/system/*.wants/carebridge-update-poll.* >/dev/null 2>&1; then
	echo "image/build.sh: ssh or the update poll timer would be enabled at first boot" >&2
	exit 1
fi
for u in carebridge.service carebridge-ota-guard.timer carebridge-firstboot.service systemd-networkd.service systemd-timesyncd.service; do
	[ -n "$(find "$rootfs/etc/systemd/system" -name "$u" -path '*.wants/*')" ] ||
		{ echo "image/build.sh: $u is not enabled" >&2; exit 1; }
done
# No password may be usable anywhere: every account locked or without one.
if awk -F: '$2 !~ /^[!*]/ && $2 != "" {bad=1} END {exit !bad}' "$rootfs/etc/shadow"; then
	echo "image/build.sh: an account has a usable password" >&2
	exit 1
fi

# --- initrd (host-built: busybox + the modules needed to find the root) ----
step "initrd for $kver"
initrd="$work/initrd"
mkdir -p "$initrd"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,root,lib/modules/$kver}
cp "$rootfs/bin/busybox" "$initrd/bin/busybox"
moddir="$rootfs/lib/modules/$kver"
# SD card (Pi 3: bcm2835 sdhost / sdhci-iproc; Pi 4: sdhci-iproc emmc2),
# virtio (qemu), ext4, and the firmware/clock/regulator/pinctrl drivers they
# need on the Pi; plus everything these depend on (modules.dep).
python3 - "$moddir" "$initrd/lib/modules/$kver" <<'PY'
import os, re, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
dep = {}
for line in open(os.path.join(src, "modules.dep")):
    k, _, v = line.partition(":")
    dep[k] = v.split()
seeds = re.compile(r"kernel/(drivers/(mmc|virtio|block/virtio_blk|firmware/raspberrypi|mailbox|"
                   r"clk/bcm|soc/bcm|pinctrl/bcm|regulator|gpio|dma/bcm2835|reset|"
                   r"power/supply|i2c/busses/i2c-bcm)|fs/(ext4|jbd2|mbcache)|lib/crc|crypto/crc)")
todo = [m for m in dep if seeds.match(m)]
seen = set()
while todo:
    m = todo.pop()
    if m in seen:
        continue
    seen.add(m)
    todo.extend(dep.get(m, []))
for m in seen:
    os.makedirs(os.path.dirname(os.path.join(dst, m)), exist_ok=True)
    shutil.copy2(os.path.join(src, m), os.path.join(dst, m))
for f in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
    if os.path.exists(os.path.join(src, f)):
        shutil.copy2(os.path.join(src, f), os.path.join(dst, f))
print(f"{len(seen)} modules")
PY
depmod -b "$initrd" "$kver"
install -m 0755 "$here/files/initrd-init" "$initrd/init"
(cd "$initrd" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --reproducible | gzip -9n) >"$work/initrd.img"

# --- boot partition (FAT) ----------------------------------------------------
step "boot partition"
boot="$work/boot"
mkdir -p "$boot/carebridge"
cp -r "$rootfs"/usr/lib/raspi-firmware/* "$boot/"
cp "$rootfs/boot/vmlinuz-$kver" "$boot/vmlinuz"
cp "$work/initrd.img" "$boot/initrd.img"
cp "$rootfs"/usr/lib/linux-image-"$kver"/broadcom/bcm27*-rpi-*.dtb "$rootfs"/usr/lib/linux-image-"$kver"/broadcom/bcm28*-rpi-*.dtb "$boot/" 2>/dev/null || true
cat >"$boot/config.txt" <<CFG
# carebridge image (Debian raspi-firmware + linux-image-arm64), Pi 3 / 4.
arm_64bit=1
upstream_kernel=1
enable_uart=1
kernel=vmlinuz
initramfs initrd.img followkernel
# A DS3231 real-time clock on the I2C header (pins 1, 3, 5, 9), if fitted:
# with no chip there the driver finds nothing and nothing changes. See
# image/README.md ("Time and the real-time clock").
dtparam=i2c_arm=on
dtoverlay=i2c-rtc,ds3231
CFG
echo "console=tty0 console=ttyS1,115200 root=LABEL=RASPIROOT rw fsck.repair=yes net.ifnames=0 cma=64M rootwait" \
	>"$boot/cmdline.txt"
cat >"$boot/carebridge/README.txt" <<TXT
carebridge $ver. SSH is off. To turn it on (key only, user root), put an
OpenSSH public key in this folder as authorized_keys before the first boot.
TXT
boot_mb=256
rm -f "$work/boot.vfat"
mkfs.vfat -n RASPIFIRM -C "$work/boot.vfat" $((boot_mb * 1024)) >/dev/null
mcopy -s -i "$work/boot.vfat" "$boot"/* ::/

# --- root partition (ext4, no loop mount) -------------------------------------
step "root partition"
used_mb=$(du -sm "$rootfs" | cut -f1)
root_mb=$(((used_mb * 13 / 10 + 200 + 3) / 4 * 4))
rm -f "$work/root.ext4"
mke2fs -q -t ext4 -L RASPIROOT -d "$rootfs" "$work/root.ext4" "${root_mb}M"

# --- disk image -------------------------------------------------------------------
step "disk image"
name="carebridge-$ver-arm64.img"
img="$out/$name"
rm -f "$img" "$img.xz"
truncate -s $((4 + boot_mb + root_mb))M "$img"
sfdisk -q "$img" <<PT
label: dos
unit: sectors
start=8192, size=$((boot_mb * 2048)), type=c, bootable
start=$((8192 + boot_mb * 2048)), size=$((root_mb * 2048)), type=83
PT
dd if="$work/boot.vfat" of="$img" bs=1M seek=4 conv=notrunc,sparse status=none
dd if="$work/root.ext4" of="$img" bs=1M seek=$((4 + boot_mb)) conv=notrunc,sparse status=none
# Only one full-size copy stays around: the partition files are in the image now.
rm -f "$work/boot.vfat" "$work/root.ext4"
# For image/boot-test.sh: the kernel and initrd as the Pi would load them.
cp "$boot/vmlinuz" "$out/vmlinuz"
cp "$boot/initrd.img" "$out/initrd.img"
step "xz"
xz -T0 -6 -k -f "$img"
elapsed=$(($(date +%s) - t0))
echo "image: $img.xz ($(du -m "$img.xz" | cut -f1) MiB compressed, $(du -m --apparent-size "$img" | cut -f1) MiB raw), built in ${elapsed}s"
echo "$elapsed" >"$out/build-seconds"
