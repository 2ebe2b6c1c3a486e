#!/usr/bin/env bash
# The project as operators run it: the Debian package installed in a Debian
# 12 root file system, booted with systemd as PID 1, the system bus and
# polkit, on Debian's real 6.1 and 6.12 kernels under QEMU (TCG) with the
# CXL machine of the QEMU suite (test/e2e/qemu). See README.md.
#
#   test/e2e/systemd/run.sh                  # KERNELS="6.1 6.12"
#   KERNELS=6.12 ONLY='sd-boot,sd-reload' test/e2e/systemd/run.sh
# Knobs: CYCLES (the guard's baseline, daemon stopped; default 300: 100
# saw 0 WARNING on 6.1 once, on a machine running two other VMs),
# DAEMON_CYCLES (the same writers under the unit's guard; default 30),
# CLI_CYCLES (concurrent CLI deletes; default 3), SETTLE_MS, DEB (a built
# package; default: make deb), CACHE (kernels and the root file system
# tarball), SD_OUT, SD_BOOT_TIMEOUT, HEAVY_LOCK (flock this file around
# each boot).
#
# Exits non-zero if any scenario failed; the last line is
# "systemd: N passed, M failed".
set -euo pipefail

SD=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$SD/../../.." && pwd)
export CYCLES=${CYCLES:-300}
export DAEMON_CYCLES=${DAEMON_CYCLES:-30}
CLI_CYCLES=${CLI_CYCLES:-3}
export CACHE=${CACHE:-$REPO/test/e2e/qemu/.cache}
# The kernel download and cache, the CXL machine, the judging of RESULT
# lines and the table are the QEMU suite's.
# shellcheck source=../qemu/run.sh
. "$REPO/test/e2e/qemu/run.sh"
QGUEST=$REPO/test/e2e/qemu/guest
OUT=${SD_OUT:-$REPO/out/e2e-systemd}
BOOT_TIMEOUT=${SD_BOOT_TIMEOUT:-$((600 + CYCLES * 3 + DAEMON_CYCLES * 10))}
SUITE=bookworm
# What the guest needs besides the package: systemd as PID 1, the bus,
# polkit, udev (the CXL modules load from their modaliases), kmod.
GUEST_PACKAGES=systemd,systemd-sysv,dbus,polkitd,pkexec,udev,kmod,procps
# The modules the initramfs loads to mount the root file system (6.1 builds
# the virtio PCI transport as a module too; on 6.12 it is built in).
ROOT_MODULES="virtio_pci virtio_blk ext4"

log() { echo "e2e-systemd: $*" >&2; }

need_sd_tools() {
	local missing=() t
	for t in qemu-system-x86_64 busybox cpio depmod modprobe xz mmdebstrap mke2fs chroot dpkg-buildpackage lintian; do
		command -v "$t" >/dev/null || missing+=("$t")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		log "missing: ${missing[*]} (run test/e2e/qemu/deps.sh as root)"
		exit 2
	fi
	[ "$(id -u)" = 0 ] || {
		log "must run as root (the root file system keeps its owners)"
		exit 2
	}
}

# mirror prints the Debian archive the host's apt uses for $SUITE, then
# Debian's own as the fallback.
# shellcheck source=../qemu/mirror.sh
. "$REPO/test/e2e/qemu/mirror.sh"
mirror() {
	mirror_uri "$SUITE"
	echo http://deb.debian.org/debian
}

# base_root prints the cached tarball of the guest's Debian root (built
# with mmdebstrap once per package list and mirror).
base_root() {
	local uri key tar t0
	uri=$(mirror | head -1)
	key=$(echo "$SUITE $GUEST_PACKAGES $uri" | sha256sum | cut -c1-12)
	tar=$CACHE/systemd/$SUITE-$key.tar
	if [ ! -s "$tar" ]; then
		mkdir -p "$CACHE/systemd"
		log "mmdebstrap $SUITE from $uri: $GUEST_PACKAGES"
		t0=$(date +%s)
		# (mmdebstrap picks the format from the name: keep .tar last)
		rm -rf "$tar.partial.tar"
		mmdebstrap --quiet --variant=minbase --include="$GUEST_PACKAGES" "$SUITE" "$tar.partial.tar" "$uri" >&2
		mv "$tar.partial.tar" "$tar"
		log "root tarball in $(($(date +%s) - t0))s: $(du -h "$tar" | cut -f1)"
	fi
	echo "$tar"
}

# module_closure KROOT UNAME MODULE...: the module files the modules need,
# dependencies first.
module_closure() {
	local kroot=$1 uname=$2
	shift 2
	for m in "$@"; do
		modprobe -C /dev/null -d "$kroot" -S "$uname" --show-depends "$m" 2>/dev/null || true
	done | awk '$1 == "insmod" && !seen[$2]++ {print $2}'
}

# build_root_initramfs KROOT UNAME DEST: busybox and the disk and ext4
# modules; its init mounts /dev/vda and starts systemd.
build_root_initramfs() {
	local kroot=$1 uname=$2 dest=$3 st ko name
	st=$(mktemp -d "$OUT/initramfs.XXXXXX")
	mkdir -p "$st"/{bin,proc,sys,dev,lib/modules}
	install -m 0755 "$(command -v busybox)" "$st/bin/busybox"
	for a in sh mount umount insmod switch_root usleep mkdir; do ln -s busybox "$st/bin/$a"; done
	: >"$st/load.list"
	# shellcheck disable=SC2086
	module_closure "$kroot" "$uname" $ROOT_MODULES | while read -r ko; do
		name=$(basename "${ko%.xz}")
		case "$ko" in
		*.xz) xz -dc "$ko" >"$st/lib/modules/$name" ;;
		*) cp "$ko" "$st/lib/modules/$name" ;;
		esac
		echo "/lib/modules/$name" >>"$st/load.list"
	done
	install -m 0755 "$SD/guest/initrd-init" "$st/init"
	(cd "$st" && find . -print0 | cpio --null -o -H newc --quiet) >"$dest"
	rm -rf "$st"
}

# build_image KROOT UNAME TAR DEB IMAGE: the Debian root with the kernel's
# CXL modules, the package installed by dpkg, the test user, the racer and
# the scenarios, written to an ext4 image by mke2fs -d (no loop mount).
build_image() {
	local kroot=$1 uname=$2 tar=$3 deb=$4 img=$5 r ko rel
	r=$(dirname "$img")/root
	rm -rf "$r"
	mkdir -p "$r"
	tar -C "$r" --numeric-owner -xpf "$tar"
	depmod -b "$kroot" "$uname"
	# shellcheck disable=SC2086
	module_closure "$kroot" "$uname" $MODULES | while read -r ko; do
		rel=${ko#"$kroot"/}
		rel=usr/${rel#usr/}
		install -D -m 0644 "$ko" "$r/$rel"
	done
	cp "$kroot"/lib/modules/"$uname"/modules.{order,builtin,builtin.modinfo} "$r/usr/lib/modules/$uname/" 2>/dev/null || true
	depmod -b "$r" "$uname"
	printf '%s\n' $MODULES >"$r/etc/modules-load.d/cxltest.conf"
	cp "$deb" "$r/tmp/cxlregiond.deb"
	chroot "$r" env DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/cxlregiond.deb >"$(dirname "$img")/dpkg.log" 2>&1 ||
		{ cat "$(dirname "$img")/dpkg.log" >&2; return 1; }
	rm -f "$r/tmp/cxlregiond.deb"
	chroot "$r" useradd -m -u 1000 -s /bin/bash tester
	echo cxltest >"$r/etc/hostname"
	echo '/dev/vda / ext4 rw 0 0' >"$r/etc/fstab"
	install -m 0755 "$OUT/bin/racer" "$r/usr/local/bin/racer"
	install -D -m 0644 "$QGUEST/scenarios.sh" "$r/usr/local/lib/cxltest/scenarios.sh"
	install -m 0644 "$QGUEST/daemon.sh" "$SD/guest/cxltest.sh" "$r/usr/local/lib/cxltest/"
	install -D -m 0755 "$SD/guest/sdrun-racer" "$r/usr/local/lib/cxltest/sdrun/racer"
	install -m 0644 "$SD/guest/cxltest.service" "$r/etc/systemd/system/"
	ln -sf ../cxltest.service "$r/etc/systemd/system/multi-user.target.wants/cxltest.service"
	# Nothing else runs: no logins, timers or clock sync under TCG.
	for u in serial-getty@ttyS0.service getty@tty1.service apt-daily.timer apt-daily-upgrade.timer \
		dpkg-db-backup.timer e2scrub_all.timer fstrim.timer systemd-timesyncd.service; do
		ln -sf /dev/null "$r/etc/systemd/system/$u"
	done
	rm -f "$img"
	mke2fs -q -F -t ext4 -L cxlroot -d "$r" "$img" 1536M >/dev/null
	rm -rf "$r"
}

# exposure_claim prints the running unit's exposure that deploy/README.md
# claims (the line "running unit ... → Overall exposure level ...: X").
exposure_claim() {
	sed -n 's/.*systemd-analyze security cxlregiond .*→ [^:]*: \([0-9.]*\).*/\1/p' "$REPO/deploy/README.md" | head -1
}

sd_kernel() {
	local series=$1 pkg version kroot uname w t0 qrc=0 exposure
	pkg=$(resolve_package "$series")
	if [ -z "$pkg" ]; then
		row "$series" "(kernel)" - - - - "SKIP (no $series kernel package reachable from apt)"
		return
	fi
	kroot="$CACHE/kernel/$pkg"
	version=$(fetch_kernel "$pkg" "$kroot")
	uname=$(basename "$(ls -d "$kroot"/lib/modules/*/ | head -1)")
	w="$OUT/$uname"
	mkdir -p "$w"
	t0=$(date +%s)
	build_root_initramfs "$kroot" "$uname" "$w/initramfs.cpio"
	build_image "$kroot" "$uname" "$TAR" "$DEB" "$w/root.img"
	log "$uname: image in $(($(date +%s) - t0))s"
	KERNEL_NOTES+=("$uname: $pkg $version")
	exposure=$(exposure_claim)
	cxl_machine "$w"
	log "booting $uname ($pkg $version) with systemd, hang limit ${BOOT_TIMEOUT}s${HEAVY_LOCK:+ (waiting for $HEAVY_LOCK)}"
	t0=$(date +%s)
	# The disk sits on the root complex: left to QEMU 7.2, it lands on the
	# CXL host bridge, which takes only bridges.
	# HEAVY_LOCK: a lock file that serializes VMs on a shared machine;
	# only the boot holds it, not the package and image builds.
	${HEAVY_LOCK:+flock "$HEAVY_LOCK"} timeout -k 10 "$BOOT_TIMEOUT" qemu-system-x86_64 "${CXL_MACHINE[@]}" \
		-drive file="$w/root.img",if=none,id=rootdisk,format=raw \
		-device virtio-blk-pci,drive=rootdisk,bus=pcie.0 \
		-serial file:"$w/console.txt" -serial file:"$w/results.txt" -serial file:"$w/guest-logs.txt" \
		-kernel "$kroot/boot/vmlinuz-$uname" -initrd "$w/initramfs.cpio" \
		-append "console=ttyS0 loglevel=3 pci=nomsi log_buf_len=16M nokaslr panic=-1 rdinit=/init systemd.show_status=0 cxltest.cycles=$CYCLES cxltest.daemon_cycles=$DAEMON_CYCLES cxltest.cli_cycles=$CLI_CYCLES cxltest.settle_ms=$SETTLE_MS cxltest.exposure=$exposure${ONLY:+ cxltest.only=$ONLY}" \
		</dev/null >"$w/qemu.log" 2>&1 || qrc=$?
	rm -f "$w"/{cxltest,lsa}.raw "$w/root.img"
	log "$uname: VM ended after $(($(date +%s) - t0))s (qemu exit $qrc)"
	collect "$uname" "$w" "$qrc"
}

sd_main() {
	need_sd_tools
	need_tools
	mkdir -p "$OUT/bin" "$CACHE"
	KERNEL_NOTES=()
	TIMINGS=()
	local start t0
	start=$(date +%s)
	if [ -z "${DEB:-}" ]; then
		t0=$(date +%s)
		make -C "$REPO" deb >"$OUT/deb.log" 2>&1 || {
			tail -20 "$OUT/deb.log" >&2
			exit 1
		}
		DEB=$(sed -n 's/^deb: //p' "$OUT/deb.log" | tail -1)
		DEB=$REPO/$DEB
		log "make deb in $(($(date +%s) - t0))s: $DEB"
	fi
	DAEMON_NOTE="package $(basename "$DEB")"
	(cd "$REPO" && CGO_ENABLED=0 "$GO" build -trimpath -o "$OUT/bin/racer" ./test/e2e/qemu/racer)
	TAR=$(base_root)
	for k in $KERNELS; do
		sd_kernel "$k"
	done
	print_table | tee "$OUT/results.md"
	echo "- CLI_CYCLES=$CLI_CYCLES; wall time: $(($(date +%s) - start))s" | tee -a "$OUT/results.md"
	summary systemd
	[ "$FAILED" -eq 0 ]
}

sd_main "$@"
