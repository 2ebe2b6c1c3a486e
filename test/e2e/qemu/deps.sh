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

# qemu-system-x86: the VM (cxl-type3, pxb-cxl, cxl-fmw), from backports when
# it is there (see above), else bookworm's 7.2
# busybox-static: the guest's userland; kmod: depmod for the kernel modules
# cpio: the initramfs; ndctl: the `cxl` tool copied into the guest (interop)
# dbus-daemon: the guest's private bus for the daemon scenarios
# dpkg-dev is not needed: dpkg-deb comes with dpkg.
if apt-cache policy qemu-system-x86 | grep -q " ${codename}-backports/main "; then
	apt-get install -y -q --no-install-recommends -t "${codename}-backports" qemu-system-x86
fi
apt-get install -y -q --no-install-recommends \
	qemu-system-x86 busybox-static kmod cpio ndctl dbus-daemon \
	ca-certificates coreutils findutils gawk
