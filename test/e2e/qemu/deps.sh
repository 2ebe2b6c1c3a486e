#!/bin/sh
# Installs what the QEMU real-kernel suite (run.sh) needs on a fresh Debian 12
# host. The kernels themselves are not installed: run.sh fetches them with
# `apt-get download` into .cache/ so the host's own kernel is never touched.
set -eu

if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: must run as root (apt-get install)" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive

. "$(dirname "$0")/mirror.sh" # mirror_uri

# bookworm-backports, from the mirror the host already uses, gives the QEMU
# the capacity boot needs (bookworm's 7.2 gives each CXL component one HDM
# decoder, so one region per device) and, where bookworm-security does not,
# the 6.12 kernel. It is added only when no configured source has it.
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
apt-get update -q
if ! apt-cache policy | grep -q " ${codename}-backports/main "; then
	uri=$(mirror_uri "$codename" | head -1)
	if [ -n "$uri" ]; then
		list=/etc/apt/sources.list.d/cxlregiond-e2e-backports.list
		echo "deps.sh: adding ${codename}-backports from $uri in $list"
		echo "deb $uri ${codename}-backports main" >"$list"
		apt-get update -q
	else
		echo "deps.sh: no $codename mirror found in the apt sources: no backports (run.sh skips 6.12 if unreachable; the capacity boot needs QEMU >= 8)" >&2
	fi
fi

# qemu-system-x86: the VM (cxl-type3, pxb-cxl, cxl-fmw): bookworm's 7.2, on
# which every race baseline of the suite was measured (on QEMU 10 they race
# an order of magnitude less often), so it is pinned to the release even
# where backports is configured
# busybox-static: the guest's userland; kmod: depmod for the kernel modules
# cpio: the initramfs; ndctl: the `cxl` tool copied into the guest (interop)
# dbus-daemon: the guest's private bus for the daemon scenarios
# daxctl: the System RAM boot (set sysram)
# debhelper, dpkg-dev, fakeroot, lintian: `make deb` and its check
# mmdebstrap, e2fsprogs: the Debian 12 guest of `make e2e-systemd` (a root
# file system written into an ext4 image with mke2fs -d, no loop mount)
apt-get install -y -q --no-install-recommends --allow-downgrades \
	"qemu-system-x86/$codename" "qemu-system-common/$codename" "qemu-system-data/$codename" \
	busybox-static kmod cpio ndctl daxctl dbus-daemon \
	ca-certificates coreutils findutils gawk \
	debhelper dpkg-dev fakeroot lintian mmdebstrap e2fsprogs

# The capacity boot (sets/capacity.sh) alone needs QEMU >= 8: 7.2 gives each
# CXL component one HDM decoder, so one region per device. Backports' QEMU
# is unpacked into its own directory beside the system's, with the shared
# libraries it links (all from bookworm) installed.
QEMU10_DIR=${QEMU10_DIR:-/opt/cxlregiond-e2e/qemu10}
if apt-cache policy qemu-system-x86 | grep -q " ${codename}-backports/main "; then
	dl=$(mktemp -d)
	(cd "$dl" && apt-get download -q "qemu-system-x86/${codename}-backports" \
		"qemu-system-common/${codename}-backports" "qemu-system-data/${codename}-backports")
	rm -rf "$QEMU10_DIR"
	mkdir -p "$QEMU10_DIR"
	libs=
	for deb in "$dl"/*.deb; do
		dpkg-deb -x "$deb" "$QEMU10_DIR"
		libs="$libs $(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/[(|].*//; s/ //g' |
			grep -v -e '^qemu-' -e '^seabios' -e '^ipxe' -e '^$' -e '^\$' | tr '\n' ' ')"
	done
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $libs seabios
	rm -rf "$dl"
	"$QEMU10_DIR/usr/bin/qemu-system-x86_64" --version | head -1
else
	echo "deps.sh: no ${codename}-backports: the capacity boot will be skipped" >&2
fi
