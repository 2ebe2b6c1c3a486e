#!/usr/bin/env bash
# The real-kernel suite: boots Debian's unpatched kernels under QEMU (TCG, no
# KVM needed) with an emulated CXL persistent-memory device and runs the
# delete_region race scenarios of guest/ on each. See README.md.
#
#   test/e2e/qemu/run.sh                      # KERNELS="6.1 6.12" CYCLES=100
#   KERNELS=6.12 CYCLES=1000 test/e2e/qemu/run.sh
#   ONLY='raw-*,flock-*' test/e2e/qemu/run.sh # scenario globs
#   FAKE_DAEMON=1 test/e2e/qemu/run.sh        # self-check of the daemon scenarios
#   test/e2e/qemu/run.sh --judge results.txt  # verdicts on a recorded results channel
# Other knobs: SETS (boots per kernel; the System RAM boot "sysram" is not
# in the default: see README.md), DAEMON_CYCLES (default CYCLES/4), SETTLE_MS, BOOT_TIMEOUT,
# GUEST_ARGS, CACHE, OUT.
#
# Exits non-zero if any scenario failed; the last line is
# "qemu: N passed, M failed".
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
KERNELS=${KERNELS:-"6.1 6.12"}
CYCLES=${CYCLES:-100}
# Scenarios through the daemon's CLI start several Go clients per cycle,
# slow under TCG: they run a quarter of the cycles by default.
DAEMON_CYCLES=${DAEMON_CYCLES:-$(((CYCLES + 3) / 4))}
SETTLE_MS=${SETTLE_MS:-200}
ONLY=${ONLY:-}
CACHE=${CACHE:-$HERE/.cache}
OUT=${OUT:-$HERE/out}
GO=$(command -v "${GO:-go}" || echo /usr/local/go/bin/go)
# A hang limit only: a healthy boot ends by itself (see README.md for timings).
BOOT_TIMEOUT=${BOOT_TIMEOUT:-$((600 + CYCLES * 6 + DAEMON_CYCLES * 30))}
# Extra kernel command line words for the guest (e.g. cxltest.ndctl_state=created).
GUEST_ARGS=${GUEST_ARGS:-}

# The kernels of the captures (docs/kernel.md#captures); when
# the archive no longer has one, the newest of the same series is used and
# the table says which.
declare -A PINNED=(
	[6.1]=linux-image-6.1.0-56-amd64-unsigned
	[6.12]=linux-image-6.12.107+deb12-amd64-unsigned
)
# The boots of each kernel: "main" runs every scenario but those that need a
# boot of their own (a cxl_acpi unbind ends the topology for the boot).
SETS=${SETS:-"main unbind-guard capacity"}
# A set other than main runs only when ONLY (if given) names one of its
# scenarios; sets/<set>.sh may change the VM's CXL devices (boot).
declare -A SET_SCENARIO=([unbind-guard]=daemon-guard-acpi-unbind [capacity]="capacity-raw capacity-daemon")
MODULES="libnvdimm nd_pmem nd_btt dax_pmem device_dax cxl_acpi cxl_pci cxl_mem cxl_pmem dax_cxl kmem"
# The System RAM boot (guest/sysram.sh, sets/sysram.sh): its baseline
# leaks the range until reboot, so it has a boot of its own and runs last.
SET_SCENARIO+=([sysram]="sysram-setup sysram-ctl-refuses sysram-offline-ebusy sysram-offline-delete sysram-raw-setup sysram-raw-delete")

log() { echo "e2e-qemu: $*" >&2; }

ROWS=()   # "kernel|scenario|cycles|warn|bug|writes|result"
PASSED=0
FAILED=0
FAILED_ROWS=() # "kernel scenario: result", repeated in the last line


row() {
	local IFS='|'
	ROWS+=("$*")
	case "$7" in
	pass*) PASSED=$((PASSED + 1)) ;;
	FAIL*)
		FAILED=$((FAILED + 1))
		FAILED_ROWS+=("$1 $2: ${7:0:300}")
		;;
	esac
}

# summary: the last lines CI shows. They name each failed row, since a CI
# excerpt may hold only the end of the table; the count comes last.
# The suite's name comes first (test/e2e/systemd/run.sh passes its own).
summary() {
	local suite=${1:-qemu} r
	for r in "${FAILED_ROWS[@]}"; do
		echo "$suite: FAILED $r"
	done
	echo "$suite: $PASSED passed, $FAILED failed"
}

need_tools() {
	local missing=()
	for t in qemu-system-x86_64 busybox cpio depmod modprobe xz apt-get dpkg-deb ldd timeout; do
		command -v "$t" >/dev/null || missing+=("$t")
	done
	[ -x "$GO" ] || missing+=(go)
	# The guest has no libc of its own: busybox must be the static build.
	local bb
	bb=$(command -v busybox || true)
	if [ -z "$bb" ] || ldd "$bb" >/dev/null 2>&1; then
		missing+=(busybox-static)
	fi
	if [ ${#missing[@]} -gt 0 ]; then
		log "missing: ${missing[*]} (run test/e2e/qemu/deps.sh as root)"
		exit 2
	fi
}

# resolve_package SERIES prints the package to use, or nothing. SERIES
# "6.12-newest" is the newest 6.12 apt offers, whatever the pin (newest_kernel).
resolve_package() {
	local series=$1 pinned=${PINNED[$1]:-}
	if [[ $series == *-newest ]]; then
		series=${series%-newest} pinned=
	fi
	if [ -n "$pinned" ] && apt-cache show "$pinned" >/dev/null 2>&1; then
		echo "$pinned"
		return
	fi
	local re="^linux-image-${series//./\\.}\\.[0-9][^ ]*-amd64-unsigned "
	apt-cache search --names-only "linux-image-$series" 2>/dev/null | grep -E "$re" |
		grep -v -e '-cloud-' -e '-rt-' | awk '{print $1}' | sort -V | tail -1
}

# fetch_kernel PKG DIR: download (cached) and unpack the package into DIR.
fetch_kernel() {
	local pkg=$1 dir=$2 deb
	mkdir -p "$CACHE/debs"
	deb=$(ls "$CACHE/debs/${pkg}_"*.deb 2>/dev/null | sort -V | tail -1 || true)
	if [ -z "$deb" ]; then
		log "apt-get download $pkg"
		(cd "$CACHE/debs" && apt-get download -q "$pkg" >&2)
		deb=$(ls "$CACHE/debs/${pkg}_"*.deb | sort -V | tail -1)
	fi
	if [ ! -e "$dir/.unpacked" ] || [ "$(cat "$dir/.unpacked")" != "$(basename "$deb")" ]; then
		rm -rf "$dir"
		mkdir -p "$dir"
		dpkg-deb -x "$deb" "$dir"
		basename "$deb" >"$dir/.unpacked"
	fi
	dpkg-deb -f "$deb" Version
}

# copy_elf ROOT FILE...: a dynamic binary and every library ldd names, at
# the same paths, so the guest's loader finds them without ld.so.cache.
copy_elf() {
	local root=$1 f lib
	shift
	for f in "$@"; do
		install -D -m 0755 "$f" "$root$f"
		for lib in $(ldd "$f" | grep -oE '/[^ ]+' | sort -u); do
			[ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
		done
	done
}

build_binaries() {
	mkdir -p "$OUT/bin"
	log "building racer"
	(cd "$REPO" && CGO_ENABLED=0 "$GO" build -trimpath -o "$OUT/bin/racer" ./test/e2e/qemu/racer)
	rm -f "$OUT/bin/cxlregiond" "$OUT/bin/cxlregionctl"
	if [ "${FAKE_DAEMON:-0}" = 1 ]; then
		# Harness self-check only: shell stand-ins that exercise guest/daemon.sh.
		install -m 0755 "$HERE/fake/cxlregiond" "$HERE/fake/cxlregionctl" "$OUT/bin/"
		DAEMON_NOTE="FAKE_DAEMON=1: shell stand-ins from fake/, NOT the project's daemon"
	elif (cd "$REPO" && CGO_ENABLED=0 "$GO" build -trimpath -o "$OUT/bin/" ./cmd/cxlregiond ./cmd/cxlregionctl) >"$OUT/daemon-build.log" 2>&1; then
		DAEMON_NOTE="built"
	else
		rm -f "$OUT/bin/cxlregiond" "$OUT/bin/cxlregionctl"
		DAEMON_NOTE="not built: $(grep -m1 -v '^#' "$OUT/daemon-build.log" || true)"
	fi
	log "daemon and CLI: $DAEMON_NOTE"
}

# build_initramfs KROOT UNAME DEST: busybox, the CXL modules with their
# dependencies, the test binaries, dbus-daemon, ndctl's cxl and the scripts.
build_initramfs() {
	local kroot=$1 uname=$2 dest=$3 st ko name line
	st=$(mktemp -d "$OUT/initramfs.XXXXXX")
	mkdir -p "$st"/{bin,sbin,etc/cxltest,lib/cxltest,lib/modules,proc,sys,dev,run,tmp,var/lib,usr/bin}
	install -m 0755 "$(command -v busybox)" "$st/bin/busybox"
	for a in $(busybox --list); do
		[ -e "$st/bin/$a" ] || ln -s busybox "$st/bin/$a"
	done
	# Debian's kernel packages ship no modules.dep.
	depmod -b "$kroot" "$uname"
	: >"$st/lib/modules/load.list"
	for m in $MODULES; do
		modprobe -C /dev/null -d "$kroot" -S "$uname" --show-depends "$m" 2>/dev/null || true
	done | awk '$1 == "insmod" && !seen[$2]++ {print $2}' | while read -r ko; do
		name=$(basename "${ko%.xz}")
		case "$ko" in
		*.xz) xz -dc "$ko" >"$st/lib/modules/$name" ;;
		*) cp "$ko" "$st/lib/modules/$name" ;;
		esac
		echo "/lib/modules/$name" >>"$st/lib/modules/load.list"
	done
	install -m 0755 "$HERE/guest/init" "$st/init"
	install -m 0644 "$HERE"/guest/*.sh "$st/lib/cxltest/"
	# daxctl finds kmem through libkmod: the module indexes depmod made.
	mkdir -p "$st/lib/modules/$uname"
	cp "$kroot/lib/modules/$uname"/modules.* "$st/lib/modules/$uname/"
	install -m 0644 "$HERE/guest/dbus-system.conf" "$st/etc/cxltest/"
	install -m 0755 "$OUT/bin/"* "$st/bin/"
	copy_elf "$st" "$(command -v dbus-daemon)"
	command -v cxl >/dev/null && copy_elf "$st" "$(command -v cxl)"
	for t in ndctl daxctl; do command -v "$t" >/dev/null && copy_elf "$st" "$(command -v "$t")"; done
	printf 'root:x:0:0:root:/:/bin/sh\nmessagebus:x:100:100::/:/bin/false\n' >"$st/etc/passwd"
	printf 'root:x:0:\nmessagebus:x:100:\n' >"$st/etc/group"
	od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$st/etc/machine-id"
	(cd "$st" && find . -print0 | cpio --null -o -H newc --quiet) >"$dest"
	rm -rf "$st"
}

# cxl_machine WORKDIR sets CXL_MACHINE to QEMU's machine, CPU, memory and
# CXL device arguments (the reference captures' topology: one host bridge,
# one root port, one 256 MiB pmem type-3 device, a 4 GiB window), with fresh
# backing files in WORKDIR, and clears its serial logs. test/e2e/systemd
# boots the same machine. A boot's set may change the device's size
# (CXL_MEM_SIZE), add devices (CXL_EXTRA_DEVICES) and use another emulator
# (QEMU).
cxl_machine() {
	local w=$1 size=${CXL_MEM_SIZE:-256M} memprop=memdev
	# QEMU 8 renamed cxl-type3's memdev (deprecated) to persistent-memdev.
	if "${QEMU:-qemu-system-x86_64}" ${QEMU_ARGS[@]+"${QEMU_ARGS[@]}"} -device cxl-type3,help 2>/dev/null | grep -q persistent-memdev; then
		memprop=persistent-memdev
	fi
	rm -f "$w"/{cxltest,lsa}.raw "$w"/{console,results,guest-logs}.txt
	truncate -s "$size" "$w/cxltest.raw"
	truncate -s 256M "$w/lsa.raw"
	CXL_MACHINE=(
		-accel tcg,thread=multi -M q35,cxl=on -cpu max,hypervisor=off
		-m 2G,maxmem=8G,slots=4 -smp 2
		-object memory-backend-file,id=cxl-mem1,share=on,mem-path="$w/cxltest.raw",size="$size"
		-object memory-backend-file,id=cxl-lsa1,share=on,mem-path="$w/lsa.raw",size=256M
		-device pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1
		-device cxl-rp,port=0,bus=cxl.1,id=root_port13,chassis=0,slot=2
		-device cxl-type3,bus=root_port13,$memprop=cxl-mem1,lsa=cxl-lsa1,id=cxl-pmem0
		${CXL_EXTRA_DEVICES[@]+"${CXL_EXTRA_DEVICES[@]}"}
		-M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G
		-nodefaults -display none -no-reboot
	)
}

# boot KERNEL INITRAMFS WORKDIR SET: run the VM until it powers off, resets
# or the hang limit ends it; SET names the guest's scenario set
# (guest/scenarios.sh run_all_scenarios). The CXL topology is the reference
# captures' one.
boot() {
	local kernel=$1 initrd=$2 w=$3 set=$4 rc=0
	# A set's file (sets/SET.sh) may change the machine: CXL_MEM_SIZE,
	# CXL_EXTRA_DEVICES, and QEMU/QEMU_ARGS for another emulator.
	local CXL_MEM_SIZE=256M CXL_EXTRA_DEVICES=() QEMU=qemu-system-x86_64 QEMU_ARGS=()
	if [ -f "$HERE/sets/$set.sh" ]; then
		. "$HERE/sets/$set.sh"
	fi
	cxl_machine "$w"
	timeout -k 10 "$BOOT_TIMEOUT" "$QEMU" ${QEMU_ARGS[@]+"${QEMU_ARGS[@]}"} "${CXL_MACHINE[@]}" \
		-serial file:"$w/console.txt" -serial file:"$w/results.txt" -serial file:"$w/guest-logs.txt" \
		-kernel "$kernel" -initrd "$initrd" \
		-append "console=ttyS0 loglevel=1 pci=nomsi log_buf_len=64M nokaslr panic=-1 rdinit=/init cxltest.cycles=$CYCLES cxltest.daemon_cycles=$DAEMON_CYCLES cxltest.settle_ms=$SETTLE_MS cxltest.set=$set${ONLY:+ cxltest.only=$ONLY}${GUEST_ARGS:+ $GUEST_ARGS}" \
		</dev/null >"$w/qemu.log" 2>&1 || rc=$?
	rm -f "$w"/{cxltest,lsa}.raw
	return $rc
}

kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# judge KERNEL RESULT-LINE: one table row from one guest RESULT line.
judge() {
	local k=$1 line=$2 name expect cycles run asked warn bug writes failures check note verdict
	name=$(awk '{print $2}' <<<"$line")
	expect=$(kv expect "$line")
	cycles=$(kv cycles "$line")
	run=${cycles%/*} asked=${cycles#*/}
	warn=$(kv warn "$line") bug=$(kv bug "$line") writes=$(kv writes "$line")
	failures=$(kv failures "$line") check=$(kv check "$line")
	note=$(sed -n 's/.* note=//p' <<<"$line")
	verdict=pass
	if [ "$bug" != 0 ]; then
		verdict="FAIL: $bug BUG/oops line(s) in dmesg"
	elif [ "$check" = fail ]; then
		verdict="FAIL: $note"
	elif [ "$run" != "$asked" ]; then
		verdict="FAIL: ran $run of $asked cycles: $note"
	elif [ "$expect" = race ] && [ "$warn" = 0 ] && [ -n "${NEWEST_KERNEL:-}" ]; then
		verdict="KERNEL CHANGED: baseline shows no race: 0 WARNING in $run cycles on the newest kernel (the upstream fix?); not a failure, see README.md"
	elif [ "$expect" = race ] && [ "$warn" = 0 ]; then
		verdict="FAIL: baseline shows no race: 0 WARNING in $run cycles (the test cannot see the race on this kernel)"
	elif [ "$expect" = clean ] && [ "$warn" != 0 ]; then
		verdict="FAIL: $warn WARNING with serialized writers"
	elif [ "${failures:-0}" != 0 ]; then
		verdict="FAIL: $note"
	elif [ "$expect" = clean ] && [ "$check" = - ] && [ "$writes" != - ] && [ "$writes" != "$run" ]; then
		verdict="FAIL: $writes delete_region writes for $run regions (want exactly one each)"
	elif [ "$expect" = race ]; then
		verdict="pass (race seen: $(kv pairs "$line"))"
	elif [ "$note" != - ] && [ -n "$note" ]; then
		verdict="pass ($note)"
	fi
	row "$k" "$name" "$run/$asked" "$warn" "$bug" "$writes" "$verdict"
	TIMINGS+=("$k $name $(kv secs "$line")s")
}

# collect KERNEL WORKDIR QEMU-RC: rows from the results channel; a scenario
# that started and never reported is an oops or a hang, never a pass.
collect() {
	local k=$1 w=$2 qrc=$3 res="$2/results.txt" line cur="" name
	tr -d '\r' <"$res" >"$w/results.clean" 2>/dev/null || : >"$w/results.clean"
	if ! grep -q '^BOOT ' "$w/results.clean"; then
		row "$k" boot - - - - "FAIL: the guest never reported (qemu exit $qrc; see $w/console.txt)"
		return
	fi
	while IFS= read -r line; do
		case "$line" in
		"START "*) cur=${line#START } ;;
		"RESULT "*)
			judge "$k" "$line"
			cur=""
			;;
		"SKIP "*)
			name=$(awk '{print $2}' <<<"$line")
			row "$k" "$name" - - - - "SKIP (${line#SKIP "$name" })"
			;;
		"OOPS "*)
			row "$k" "${line#OOPS }" - - 1 - "FAIL: kernel oops (VM reset; later scenarios not run; see $w/guest-logs.txt)"
			cur=""
			;;
		"FATAL "*) row "$k" boot - - - - "FAIL: ${line#FATAL }" ;;
		"INFO "*) log "$k: ${line#INFO }" ;;
		esac
	done <"$w/results.clean"
	if [ -n "$cur" ]; then
		row "$k" "$cur" - - - - "FAIL: no result (hang or crash; qemu exit $qrc after hang limit ${BOOT_TIMEOUT}s?)"
	elif ! grep -q '^DONE' "$w/results.clean" && ! grep -q '^OOPS ' "$w/results.clean"; then
		row "$k" boot - - - - "FAIL: guest did not finish (qemu exit $qrc)"
	fi
}

run_kernel() {
	local series=$1 pkg version kroot uname w t0
	pkg=$(resolve_package "$series")
	if [ -z "$pkg" ]; then
		log "SKIP kernel $series: no linux-image-$series*-amd64-unsigned reachable from apt (run deps.sh, check sources)"
		row "$series" "(kernel)" - - - - "SKIP (no $series kernel package reachable from apt)"
		return
	fi
	NEWEST_KERNEL=
	if [[ $series == *-newest ]]; then
		NEWEST_KERNEL=$pkg
	elif [ "$pkg" != "${PINNED[$series]:-}" ]; then
		log "kernel $series: captured package ${PINNED[$series]:-?} not available, using $pkg"
	fi
	kroot="$CACHE/kernel/$pkg"
	version=$(fetch_kernel "$pkg" "$kroot")
	uname=$(basename "$(ls -d "$kroot"/lib/modules/*/ | head -1)")
	w="$OUT/$uname"
	mkdir -p "$w"
	build_initramfs "$kroot" "$uname" "$w/initramfs.cpio"
	KERNEL_NOTES+=("$uname: $pkg $version")
	local set wb qrc
	for set in $SETS; do
		# The main set runs in out/<uname>, any other in out/<uname>/<set>.
		wb=$w
		if [ "$set" != main ]; then
			wanted_set "$set" || continue
			wb=$w/$set
			mkdir -p "$wb"
		fi
		log "booting $uname ($pkg $version), set $set, CYCLES=$CYCLES, hang limit ${BOOT_TIMEOUT}s"
		t0=$(date +%s)
		qrc=0
		boot "$kroot/boot/vmlinuz-$uname" "$w/initramfs.cpio" "$wb" "$set" || qrc=$?
		log "$uname: VM ($set) ended after $(($(date +%s) - t0))s (qemu exit $qrc)"
		collect "$uname" "$wb" "$qrc"
	done
}

# wanted_set SET: whether ONLY, if given, names the scenario of boot SET.
wanted_set() {
	local g s
	[ -n "$ONLY" ] || return 0
	IFS=, read -ra globs <<<"$ONLY"
	for g in "${globs[@]}"; do
		for s in ${SET_SCENARIO[$1]}; do
			# shellcheck disable=SC2053
			[[ $s == $g ]] && return 0
		done
	done
	return 1
}

print_table() {
	local r
	echo
	echo "| kernel | scenario | cycles | WARNING | BUG | delete writes | result |"
	echo "|---|---|---|---|---|---|---|"
	for r in "${ROWS[@]}"; do
		echo "| ${r//|/ | } |"
	done
	echo
	for r in "${KERNEL_NOTES[@]}"; do
		echo "- $r"
	done
	echo "- daemon and CLI: $DAEMON_NOTE"
	echo "- CYCLES=$CYCLES DAEMON_CYCLES=$DAEMON_CYCLES SETTLE_MS=$SETTLE_MS${ONLY:+ ONLY=$ONLY}${GUEST_ARGS:+ GUEST_ARGS=$GUEST_ARGS}"
	if [ ${#TIMINGS[@]} -gt 0 ]; then
		echo "- guest time per scenario: $(printf '%s, ' "${TIMINGS[@]}" | sed 's/, $//')"
	fi
}

# judge_file FILE: the verdicts on one recorded results channel, without
# QEMU (judge_test.go feeds it testdata/judge/*).
judge_file() {
	local w
	w=$(mktemp -d)
	cp "$1" "$w/results.txt"
	KERNEL_NOTES=("recorded: $1")
	TIMINGS=()
	DAEMON_NOTE="(recorded run)"
	collect "$(sed -n 's/^BOOT kernel=\([^ ]*\).*/\1/p' "$1" | head -1)" "$w" 0
	rm -rf "$w"
	print_table
	summary
	[ "$FAILED" -eq 0 ]
}

main() {
	if [ "${1:-}" = --judge ]; then
		judge_file "$2"
		return
	fi
	need_tools
	mkdir -p "$OUT" "$CACHE"
	KERNEL_NOTES=()
	TIMINGS=()
	local start=$(date +%s)
	build_binaries
	for k in $KERNELS; do
		run_kernel "$k"
	done
	print_table | tee "$OUT/results.md"
	echo "- wall time: $(($(date +%s) - start))s" | tee -a "$OUT/results.md"
	summary
	[ "$FAILED" -eq 0 ]
}

# Sourced (test/e2e/systemd/run.sh reuses the kernel cache, the machine
# and the judging), it only defines.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	main "$@"
fi
