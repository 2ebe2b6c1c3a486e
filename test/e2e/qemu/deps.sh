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

# Debian 12 ships the 6.12 kernel as linux-6.12 in bookworm-security (and
# bookworm-backports). Add backports only when no 6.12 image is reachable from
# the configured sources, so a host that already reaches one is left alone.
apt-get update -q
if ! apt-cache search --names-only '^linux-image-6\.12\..*-amd64-unsigned$' | grep -q .; then
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
	list=/etc/apt/sources.list.d/cxlregiond-e2e-backports.list
	echo "deps.sh: no 6.12 kernel reachable; adding ${codename}-backports in $list"
	# Reuse the archive this host already uses for the main suite.
	uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null)
	[ -n "$uri" ] || uri=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
	if [ -z "$uri" ]; then
		echo "deps.sh: no apt source to derive a backports suite from" >&2
		exit 1
	fi
	echo "deb $uri ${codename}-backports main" >"$list"
	apt-get update -q
fi

# qemu-system-x86: the VM (7.2 in bookworm: cxl-type3, pxb-cxl, cxl-fmw)
# busybox-static: the guest's userland; kmod: depmod for the kernel modules
# cpio: the initramfs; ndctl: the `cxl` tool copied into the guest (interop)
# dbus-daemon: the guest's private bus for the daemon scenarios
# dpkg-dev is not needed: dpkg-deb comes with dpkg.
apt-get install -y -q --no-install-recommends \
	qemu-system-x86 busybox-static kmod cpio ndctl dbus-daemon \
	ca-certificates coreutils findutils gawk
