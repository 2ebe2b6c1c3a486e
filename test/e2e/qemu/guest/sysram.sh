# Sourced by init (busybox sh). System RAM on a region the daemon created
# (docs/kernel.md#system-ram): a pmem region, an nd namespace in devdax
# mode, its dax device given to the page allocator with daxctl
# (auto_online_blocks=offline first: 6.12 onlines by default and daxctl then
# refuses), a 16 MiB pattern file in a tmpfs bound to the region's node.
#
# One boot (set "sysram"), in this order:
#   sysram-setup           the region with its memory online (3 blocks of
#                          a 512 MiB device, Movable, node 1)
#   sysram-ctl-refuses     the CLI refuses to delete it (exit 4, nothing written)
#   sysram-offline-ebusy   --offline fails on an unmovable block (EBUSY) after
#                          offlining the others: they are put back online
#   sysram-offline-delete  --offline migrates, offlines, deletes: MemTotal
#                          back to its boot value
#   sysram-raw-setup       a second region the same way (the first is gone)
#   sysram-raw-delete      the baseline: a raw delete_region succeeds and the
#                          pattern reads back changed (zeros). It leaks the
#                          range until reboot: last.
#
# Cost: under TCG every access to the CXL memory is emulated (about 3 MB/s
# here, slower on 6.12), so the pattern is small, is made once in node 0's
# memory (/tmp) and copied, and is read back from node 1 only where a
# scenario's verdict needs it; waits are on files and events, not sleeps.

SR_MNT=/mnt/cxl
SR_REF=/tmp/sr.pattern
SR_MIB=16
SR_REGION= SR_DAX= SR_NODE= SR_BLOCKS= SR_MD5= MEM_BOOT=

memtotal_kb() { sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo; }

# sr_blocks prints the online memory blocks of SR_NODE, in index order.
sr_blocks() {
	for b in /sys/devices/system/memory/memory*; do
		[ -e "$b/node$SR_NODE" ] || continue
		[ "$(cat "$b/state")" = online ] && echo "${b##*/}"
	done | sort -t y -k 2 -n
}

# sr_zones prints "block:zone" for each block of SR_BLOCKS (offline ones
# say so).
sr_zones() {
	for b in $SR_BLOCKS; do
		if [ "$(cat "/sys/devices/system/memory/$b/state")" = online ]; then
			echo "$b:$(cat "/sys/devices/system/memory/$b/valid_zones")"
		else
			echo "$b:offline"
		fi
	done | tr '\n' ' '
}

# sr_shmem: tmpfs kB on the region's node (empty once the node is gone);
# sr_on_node: at least half the pattern is there.
sr_shmem() { sed -n 's/.*Shmem: *\([0-9]*\) kB/\1/p' "/sys/devices/system/node/node$SR_NODE/meminfo" 2>/dev/null; }
sr_on_node() { [ "$(sr_shmem)" -ge $((SR_MIB * 512)) ] 2>/dev/null; }

# sr_put copies the reference pattern onto the region's node (the tmpfs's
# mpol=bind), replacing the file there.
sr_put() { cp "$SR_REF" "$SR_MNT/p2" && mv "$SR_MNT/p2" "$SR_MNT/pattern"; }

sr_md5() { md5sum "$SR_MNT/pattern" 2>/dev/null | cut -d' ' -f1; }

# sr_writes [ATTR]: the daemon's successful writes of ATTR (default: both
# teardown writes, delete_region and unbind), one scrape.
sr_writes() {
	scrape | awk -v re="attribute=\"(${1:-delete_region|unbind})\"" '/^cxlregiond_sysfs_writes_total[{]/ && /result="ok"/ && $0 ~ re { s += $NF } END { printf "%d\n", s }'
}

sr_wait() { # SECONDS CMD...
	n=$(($1 * 10))
	shift
	while [ "$n" -gt 0 ]; do
		"$@" && return 0
		usleep 100000
		n=$((n - 1))
	done
	return 1
}

# sr_nd_region prints the nd region that has a driver (one at a time here:
# the region of a deleted CXL region is unregistered with it).
sr_nd_region() {
	for r in /sys/bus/nd/devices/region*; do
		[ -e "$r/driver" ] && { echo "${r##*/}"; return 0; }
	done
	return 1
}

# sr_nd_listing: every nd region with its resource and whether it is bound.
sr_nd_listing() {
	for r in /sys/bus/nd/devices/region*; do
		[ -e "$r" ] || continue
		echo "${r##*/}:$(cat "$r/resource" 2>/dev/null):$([ -e "$r/driver" ] && echo bound || echo unbound)"
	done | tr '\n' ' '
	echo "cxl: $(for r in /sys/bus/cxl/devices/region*; do [ -e "$r" ] && echo "${r##*/}:$(cat "$r/resource" 2>/dev/null)"; done | tr '\n' ' ')"
}

# The region must still be there, bound, with every block online and the
# pattern intact.
sr_intact() {
	[ -e "/sys/bus/cxl/devices/$SR_REGION/driver" ] || fail_check "$SR_REGION is no longer bound"
	now=$(sr_blocks | tr '\n' ' ')
	[ "$now" = "$SR_BLOCKS" ] || fail_check "blocks online now: '$now', were '$SR_BLOCKS'"
	m=$(sr_md5)
	[ "$m" = "$SR_MD5" ] || fail_check "pattern changed: md5 $m, was $SR_MD5"
}

# sr_make_sysram: a region through the daemon, a devdax namespace, its
# memory online as System RAM, the pattern on its node. Sets SR_REGION,
# SR_DAX, SR_NODE, SR_BLOCKS; returns non-zero (after fail_check) if any
# step failed.
sr_make_sysram() {
	if ! SR_REGION=$(cxlregionctl create --decoder "$(root_decoder)" --type pmem --size 512M 2>/tmp/sr.err); then
		fail_check "create: $(cat /tmp/sr.err)"
		emit "INFO sysram create failed; nd devices: $(sr_nd_listing)"
		# "created and bound, but its devices did not finish
		# registering": the region is there; go on with it, so that the
		# rest of the boot still shows what it can.
		SR_REGION=$(sed -n 's/.*region \(region[0-9]*\) was created and bound.*/\1/p' /tmp/sr.err)
		[ -n "$SR_REGION" ] && [ -e "/sys/bus/cxl/devices/$SR_REGION/driver" ] || return 1
	fi
	sr_wait 30 sr_nd_region >/dev/null || { fail_check "no nd region registered for $SR_REGION"; return 1; }
	ndr=$(sr_nd_region)
	[ "$ndr" = "$SR_REGION" ] || NOTE="${NOTE:+$NOTE; }nd region $ndr for $SR_REGION"
	# A namespace that came back from a label is reconfigured (after
	# sysram-raw-setup's clearing of the label area there is none).
	ns=
	for n in /sys/bus/nd/devices/"$ndr"/namespace*; do
		[ "$(cat "$n/size" 2>/dev/null)" -gt 0 ] 2>/dev/null && ns=${n##*/}
	done
	if [ -n "$ns" ]; then
		ndctl create-namespace -f -e "$ns" -m devdax >/tmp/sr.ndctl 2>&1
	else
		ndctl create-namespace -r "$ndr" -m devdax >/tmp/sr.ndctl 2>&1
	fi || { fail_check "ndctl create-namespace${ns:+ -e $ns}: $(tail -2 /tmp/sr.ndctl | tr '\n' ' ')"; return 1; }
	SR_DAX=$(ls /sys/bus/dax/devices | head -1)
	[ -n "$SR_DAX" ] || { fail_check "no dax device after create-namespace"; return 1; }
	echo offline >/sys/devices/system/memory/auto_online_blocks
	daxctl reconfigure-device -m system-ram "$SR_DAX" >/tmp/sr.daxctl 2>&1 ||
		{ fail_check "daxctl reconfigure-device: $(tail -2 /tmp/sr.daxctl | tr '\n' ' ')"; return 1; }
	SR_NODE=$(cat "/sys/bus/dax/devices/$SR_DAX/target_node")
	SR_BLOCKS=$(sr_blocks | tr '\n' ' ')
	[ -n "$SR_BLOCKS" ] || { fail_check "no block online on node $SR_NODE after daxctl"; return 1; }
	# The daemon sees it (uevents of the memory blocks and the dax device).
	nb=$(echo $SR_BLOCKS | wc -w)
	sr_wait 20 sh -c "cxlregionctl info $SR_REGION | grep -q 'memory: *system-ram, .* online ($nb of [0-9]* memory blocks), node $SR_NODE'" ||
		fail_check "info does not show the memory online: $(cxlregionctl info "$SR_REGION" | grep memory:)"
	# A fresh mount: the node's memory was removed since the last one.
	umount "$SR_MNT" 2>/dev/null
	mkdir -p "$SR_MNT"
	mount -t tmpfs -o "mpol=bind:$SR_NODE,size=64M" tmpfs "$SR_MNT" || { fail_check "tmpfs bound to node $SR_NODE"; return 1; }
	sr_put || { fail_check "could not write the pattern onto node $SR_NODE"; return 1; }
	sr_on_node || { fail_check "the pattern is not on node $SR_NODE (Shmem $(sr_shmem) kB there)"; return 1; }
	return 0
}

scenario_sysram_setup() {
	CYCLES_ASKED=1
	MEM_BOOT=$(memtotal_kb)
	# The reference pattern lives in node 0's memory: fast to make and to
	# hash; copies of it go to node 1.
	dd if=/dev/urandom of="$SR_REF" bs=1M count="$SR_MIB" 2>/dev/null
	SR_MD5=$(md5sum "$SR_REF" | cut -d' ' -f1)
	sr_make_sysram || { SR_MD5=; return; }
	CYCLES_RUN=1
	NOTE="$SR_REGION $SR_DAX node $SR_NODE blocks ${SR_BLOCKS% } ($(sr_zones)) MemTotal $MEM_BOOT->$(memtotal_kb) kB${NOTE:+; $NOTE}"
}

scenario_sysram_ctl_refuses() {
	CYCLES_ASKED=1
	tw0=$(sr_writes)
	out=$(cxlregionctl delete "$SR_REGION" 2>&1)
	rc=$?
	[ "$rc" = 4 ] || fail_check "delete exit $rc, want 4: $out"
	echo "$out" | grep -q "online as System RAM" || fail_check "message lacks 'online as System RAM': $out"
	echo "$out" | grep -q -- "--offline" || fail_check "message does not say --offline: $out"
	WRITES=$(($(sr_writes) - tw0))
	[ "$WRITES" = 0 ] || fail_check "$WRITES teardown writes"
	# Read back from node 1: the one full read of the pattern there.
	sr_intact
	CYCLES_RUN=1
	NOTE="exit $rc: $(echo "$out" | cut -c1-160)${NOTE:+; $NOTE}"
}

# sr_pin starts racer pin-node on SR_NODE and waits for its READY line on a
# fifo (an event, not a poll); PIN is its pid.
sr_pin() {
	rm -f /tmp/sr.pin
	mkfifo /tmp/sr.pin
	racer pin-node -node "$SR_NODE" -mib 64 >/tmp/sr.pin 2>&1 &
	PIN=$!
	read -r -t 120 ready </tmp/sr.pin
	case "$ready" in
	READY*) return 0 ;;
	*)
		fail_check "pin-node not ready: '$ready'"
		return 1
		;;
	esac
}

# The lab got EBUSY only with the block in ZONE_NORMAL and page tables on
# its node. The last block becomes Normal, the others stay Movable: the
# daemon offlines in block order, so the Movable ones are offlined (the
# pattern's pages on them migrate to node 0) before the Normal one fails,
# and must be put back online in the zone they were in.
scenario_sysram_offline_ebusy() {
	CYCLES_ASKED=1
	set -- $SR_BLOCKS
	nblocks=$#
	eval "last=\${$#}"
	mem=/sys/devices/system/memory
	echo offline >"$mem/$last/state" && echo online_kernel >"$mem/$last/state" ||
		{ fail_check "could not re-online $last as Normal"; return; }
	zones=$(sr_zones)
	sr_pin || { kill "$PIN" 2>/dev/null; wait "$PIN" 2>/dev/null; return; }
	tw0=$(sr_writes)
	r0=$(grep -c 'memory block back online' /tmp/cxlregiond.log)
	s0=$(uptime_s)
	out=$(cxlregionctl delete --offline --timeout 60s "$SR_REGION" 2>&1)
	rc=$?
	secs=$(($(uptime_s) - s0))
	kill "$PIN" 2>/dev/null
	wait "$PIN" 2>/dev/null
	case "$rc" in
	0) fail_check "delete --offline succeeded: no unmovable page on $last (cannot show the rollback)" ;;
	6) echo "$out" | grep -q EBUSY || fail_check "exit 6 without EBUSY: $out" ;;
	*) fail_check "delete --offline exit $rc, want 6 (EBUSY): $out" ;;
	esac
	[ "$secs" -le 65 ] || fail_check "took ${secs}s, past the 60 s timeout"
	WRITES=$(($(sr_writes) - tw0))
	[ "$WRITES" = 0 ] || fail_check "$WRITES teardown writes"
	back=$(($(grep -c 'memory block back online' /tmp/cxlregiond.log) - r0))
	[ "$back" = $((nblocks - 1)) ] || fail_check "$back block(s) put back online, want $((nblocks - 1)) (every block before $last)"
	[ "$(sr_zones)" = "$zones" ] || fail_check "zones now '$(sr_zones)', were '$zones'"
	[ "$rc" = 0 ] || sr_intact
	# Movable again for the next scenario, the pattern back on the node.
	# Nothing of pin-node may stay on the block: a slab page the kernel
	# put there for it once did (6.1 and 6.12, 1 run of 5 each, before
	# pin-node dropped its binding before READY: racer/pinnode.go). Page
	# tables can also be freed a little after the exit, so the offline is
	# retried until it succeeds, for up to 60 s. This is the harness's
	# setup for the next scenario, not a verdict on the daemon: a block the
	# kernel keeps unmovable pages on longer (a ZONE_NORMAL block takes any
	# kernel allocation; CI once saw 301 reports over 30 s on 6.1) is noted
	# and left Normal, and sysram-offline-delete, whose delete --offline
	# retries for up to 300 s, judges what it meets.
	if ! sr_wait 60 sh -c "echo offline >$mem/$last/state" 2>/dev/null; then
		NOTE="$last left in ZONE_NORMAL: $(dmesg | grep -c 'unmovable page') unmovable page report(s) in dmesg"
	elif ! echo online_movable >"$mem/$last/state"; then
		fail_check "could not online $last as Movable after offlining it"
	fi
	sr_put || fail_check "could not copy the pattern back onto node $SR_NODE"
	sr_on_node || fail_check "the pattern is not back on node $SR_NODE (Shmem $(sr_shmem) kB)"
	CYCLES_RUN=1
	NOTE="exit $rc in ${secs}s, $back of $((nblocks - 1)) offlined block(s) put back, zones $zones: $(echo "$out" | grep -o 'step offline.*' | cut -c1-160)${NOTE:+; $NOTE}"
}

scenario_sysram_offline_delete() {
	CYCLES_ASKED=1
	sr_on_node || fail_check "the pattern is not on node $SR_NODE before the offline (Shmem $(sr_shmem) kB): nothing to migrate"
	tw0=$(sr_writes delete_region)
	s0=$(uptime_s)
	out=$(cxlregionctl delete --offline --timeout 300s "$SR_REGION" 2>&1)
	rc=$?
	secs=$(($(uptime_s) - s0))
	[ "$rc" = 0 ] || fail_check "delete --offline exit $rc: $out"
	WRITES=$(($(sr_writes delete_region) - tw0))
	[ -e "/sys/bus/cxl/devices/$SR_REGION" ] && fail_check "$SR_REGION still there"
	[ -z "$(sr_blocks)" ] || fail_check "blocks still online on node $SR_NODE: $(sr_blocks)"
	# No memory of node 1 is left, so the intact pattern is on node 0.
	[ "$(sr_md5)" = "$SR_MD5" ] || fail_check "pattern changed: md5 $(sr_md5), was $SR_MD5"
	[ "$(memtotal_kb)" = "$MEM_BOOT" ] || fail_check "MemTotal $(memtotal_kb) kB, was $MEM_BOOT at boot"
	CYCLES_RUN=1
	NOTE="deleted in ${secs}s, pattern migrated intact, MemTotal $(memtotal_kb) kB = boot${NOTE:+; $NOTE}"
}

# The baseline needs a region with its memory online again: the first one
# was deleted properly.
scenario_sysram_raw_setup() {
	CYCLES_ASKED=1
	# The namespace label the first setup wrote is still in the device's
	# label area, and on 6.12 it keeps the next region's nd region from
	# binding (it stays unbound, nothing logged). Clear the index blocks
	# (the start of the label area) with the dimm disabled, as the
	# device was before the first setup.
	ndctl disable-dimm all >/tmp/sr.dimm 2>&1 && ndctl zero-labels all -s 1048576 >>/tmp/sr.dimm 2>&1 &&
		ndctl enable-dimm all >>/tmp/sr.dimm 2>&1 ||
		{ fail_check "clearing the label area: $(tail -3 /tmp/sr.dimm | tr '\n' ' ')"; SR_MD5=; return; }
	sr_make_sysram || { SR_MD5=; return; }
	# The pattern must read back intact from node 1 before the delete, or
	# a changed md5 afterwards would prove nothing (6.1 with one root port
	# loses every write to the CXL memory).
	m=$(sr_md5)
	[ "$m" = "$SR_MD5" ] || { fail_check "the pattern reads back changed before any delete: md5 $m, was $SR_MD5"; SR_MD5=; return; }
	CYCLES_RUN=1
	NOTE="$SR_REGION $SR_DAX node $SR_NODE blocks ${SR_BLOCKS% }, pattern read back intact${NOTE:+; $NOTE}"
}

# The baseline: what the daemon prevents. The write succeeds, no WARNING,
# and the pattern reads back changed.
scenario_sysram_raw_delete() {
	CYCLES_ASKED=1
	h0=$(dmesg | grep -c 'cannot be hotremoved')
	echo "$SR_REGION" >"/sys/bus/cxl/devices/$(root_decoder)/delete_region" 2>/tmp/sr.raw ||
		{ fail_check "raw delete_region failed: $(cat /tmp/sr.raw)"; return; }
	WRITES=1
	after=$(sr_md5)
	if [ "$after" = "$SR_MD5" ]; then
		fail_check "baseline shows no corruption: the pattern is intact after a raw delete"
	fi
	CYCLES_RUN=1
	NOTE="${NOTE:+$NOTE; }raw delete ok; pattern md5 $SR_MD5 -> $after; first bytes $(od -An -tx1 -N8 "$SR_MNT/pattern" | tr -d ' '); blocks still online: $(sr_blocks | tr '\n' ' ')($(($(dmesg | grep -c 'cannot be hotremoved') - h0)) 'cannot be hotremoved' line(s))"
}

sysram_scenarios() {
	if ! daemon_built; then
		emit "SKIP sysram-* daemon not built"
		return
	fi
	for t in ndctl daxctl; do
		command -v "$t" >/dev/null || {
			emit "SKIP sysram-* $t not in the initramfs"
			return
		}
	done
	if ! start_bus || ! start_daemon; then
		emit "FATAL daemon did not start: $(daemon_log_tail)"
		return
	fi
	KEEP_REGIONS=1 # racer cleanup would delete the region with its memory online
	# Each scenario needs the ones before it: ONLY chose the boot (run.sh),
	# and within it every scenario runs.
	ONLY=
	check_scenario sysram-setup scenario_sysram_setup
	if [ -n "$SR_MD5" ]; then
		check_scenario sysram-ctl-refuses scenario_sysram_ctl_refuses
		check_scenario sysram-offline-ebusy scenario_sysram_offline_ebusy
		check_scenario sysram-offline-delete scenario_sysram_offline_delete
	fi
	# Only once the first region is gone: the device holds one region.
	if [ ! -e "/sys/bus/cxl/devices/$SR_REGION" ]; then
		check_scenario sysram-raw-setup scenario_sysram_raw_setup
		[ -z "$SR_MD5" ] || check_scenario sysram-raw-delete scenario_sysram_raw_delete
	fi
	stop_daemon
}
