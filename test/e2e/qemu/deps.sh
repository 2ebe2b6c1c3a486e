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

# mirror_uri prints the archive URI the host already uses for its main
# suite (deb822 .sources or one-line .list), so backports comes from the same
# mirror.
mirror_uri() {
	codename=$1
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -e "$f" ] || continue
		awk -v c="$codename" '
			/^[[:space:]]*$/ { if (uri != "" && ok) { print uri; exit } uri = ""; ok = 0; next }
			/^URIs:/ { uri = $2 }
			/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == c) ok = 1 }
			END { if (uri != "" && ok) print uri }' "$f"
	done
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		sed -n "s/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) $codename .*/\2/p"
}

# Debian 12 ships the 6.12 kernel as linux-6.12 in bookworm-security (and
# bookworm-backports). Add backports only when no 6.12 image is reachable from
# the configured sources, so a host that already reaches one is left alone.
apt-get update -q
if ! apt-cache search --names-only '^linux-image-6\.12\..*-amd64-unsigned$' | grep -q .; then
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
	uri=$(mirror_uri "$codename" | head -1)
	if [ -n "$uri" ]; then
		list=/etc/apt/sources.list.d/cxlregiond-e2e-backports.list
		echo "deps.sh: no 6.12 kernel reachable; adding ${codename}-backports from $uri in $list"
		echo "deb $uri ${codename}-backports main" >"$list"
		apt-get update -q
	else
		echo "deps.sh: no 6.12 kernel reachable and no $codename mirror found in the apt sources; run.sh will skip 6.12" >&2
	fi
fi

# qemu-system-x86: the VM (7.2 in bookworm: cxl-type3, pxb-cxl, cxl-fmw)
# busybox-static: the guest's userland; kmod: depmod for the kernel modules
# cpio: the initramfs; ndctl: the `cxl` tool copied into the guest (interop)
# dbus-daemon: the guest's private bus for the daemon scenarios
# dpkg-dev is not needed: dpkg-deb comes with dpkg.
apt-get install -y -q --no-install-recommends \
	qemu-system-x86 busybox-static kmod cpio ndctl daxctl dbus-daemon \
	ca-certificates coreutils findutils gawk
