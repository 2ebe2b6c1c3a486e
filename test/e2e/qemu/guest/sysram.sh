# Sourced by init (busybox sh). System RAM on a region the daemon created
# (docs/kernel.md#system-ram): a pmem region, an nd namespace in devdax
# mode, its dax device given to the page allocator with daxctl
# (auto_online_blocks=offline first: 6.12 onlines by default and daxctl then
# refuses), a 48 MiB pattern file in a tmpfs bound to the region's node.
#
# Boot "sysram":     the CLI refuses to delete it (exit 4, nothing written);
#                    --offline fails on an unmovable block (EBUSY) and puts
#                    it back; --offline then migrates the pages, offlines,
#                    deletes: MemTotal back to its boot value.
# Boot "sysram-raw": the baseline: a raw delete_region of such a region
#                    succeeds and the pattern reads back changed (zeros).
#                    It leaks the range until reboot: a boot of its own.

SR_MNT=/mnt/cxl
SR_REGION= SR_DAX= SR_NODE= SR_BLOCKS= SR_MD5= MEM_BOOT=

memtotal_kb() { sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo; }

# sr_blocks prints the online memory blocks of SR_NODE.
sr_blocks() {
	for b in /sys/devices/system/memory/memory*; do
		[ -e "$b/node$SR_NODE" ] || continue
		[ "$(cat "$b/state")" = online ] && echo "${b##*/}"
	done
}

# sr_shmem: tmpfs kB on the region's node; sr_on_node: the pattern is there.
sr_shmem() { sed -n 's/.*Shmem: *\([0-9]*\) kB/\1/p' "/sys/devices/system/node/node$SR_NODE/meminfo"; }
sr_on_node() { [ "$(sr_shmem)" -ge 40000 ] 2>/dev/null; }

# sr_replace puts the pattern back onto the region's node (a copy is
# allocated under the tmpfs's mpol=bind).
sr_replace() { cp "$SR_MNT/pattern" "$SR_MNT/p2" && mv "$SR_MNT/p2" "$SR_MNT/pattern"; }

sr_md5() { md5sum "$SR_MNT/pattern" 2>/dev/null | cut -d' ' -f1; }

# sr_writes ATTR: the daemon's successful writes of ATTR.
sr_writes() {
	scrape | awk -v a="attribute=\"$1\"" '/^cxlregiond_sysfs_writes_total[{]/ && index($0, a) && /result="ok"/ { s += $NF } END { printf "%d\n", s }'
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

# The region must still be there, bound, with its memory online and the
# pattern intact.
sr_intact() {
	[ -e "/sys/bus/cxl/devices/$SR_REGION/driver" ] || fail_check "$SR_REGION is no longer bound"
	[ -n "$(sr_blocks)" ] || fail_check "no block of node $SR_NODE online"
	[ "$(sr_md5)" = "$SR_MD5" ] || fail_check "pattern changed: md5 $(sr_md5), was $SR_MD5"
}

scenario_sysram_setup() {
	CYCLES_ASKED=1
	MEM_BOOT=$(memtotal_kb)
	SR_REGION=$(cxlregionctl create --decoder "$(root_decoder)" --type pmem --size 256M 2>/tmp/sr.err) ||
		{ fail_check "create: $(cat /tmp/sr.err)"; return; }
	sr_wait 30 test -e "/sys/bus/nd/devices/$SR_REGION/driver" || { fail_check "nd region $SR_REGION did not register"; return; }
	ndctl create-namespace -r "$SR_REGION" -m devdax >/tmp/sr.ndctl 2>&1 ||
		{ fail_check "ndctl create-namespace: $(tail -2 /tmp/sr.ndctl | tr '\n' ' ')"; return; }
	SR_DAX=$(ls /sys/bus/dax/devices | head -1)
	[ -n "$SR_DAX" ] || { fail_check "no dax device after create-namespace"; return; }
	echo offline >/sys/devices/system/memory/auto_online_blocks
	daxctl reconfigure-device -m system-ram "$SR_DAX" >/tmp/sr.daxctl 2>&1 ||
		{ fail_check "daxctl reconfigure-device: $(tail -2 /tmp/sr.daxctl | tr '\n' ' ')"; return; }
	SR_NODE=$(cat "/sys/bus/dax/devices/$SR_DAX/target_node")
	SR_BLOCKS=$(sr_blocks | tr '\n' ' ')
	[ -n "$SR_BLOCKS" ] || { fail_check "no block online on node $SR_NODE after daxctl"; return; }
	# The daemon sees it (uevents of the memory blocks and the dax device).
	sr_wait 10 sh -c "cxlregionctl info $SR_REGION | grep -q 'memory: *system-ram, .* online (.*), node $SR_NODE'" ||
		fail_check "info does not show the memory online: $(cxlregionctl info "$SR_REGION" | grep memory:)"
	mkdir -p "$SR_MNT"
	mount -t tmpfs -o "mpol=bind:$SR_NODE,size=128M" tmpfs "$SR_MNT" || { fail_check "tmpfs bound to node $SR_NODE"; return; }
	dd if=/dev/urandom of="$SR_MNT/pattern" bs=1M count=48 2>/dev/null
	sync
	SR_MD5=$(sr_md5)
	sr_on_node || fail_check "the pattern is not on node $SR_NODE (Shmem $(sr_shmem) kB there)"
	CYCLES_RUN=1
	NOTE="$SR_REGION $SR_DAX node $SR_NODE blocks ${SR_BLOCKS% } MemTotal $MEM_BOOT->$(memtotal_kb) kB${NOTE:+; $NOTE}"
}

scenario_sysram_ctl_refuses() {
	CYCLES_ASKED=1
	d0=$(sr_writes delete_region) u0=$(sr_writes unbind)
	out=$(cxlregionctl delete "$SR_REGION" 2>&1)
	rc=$?
	[ "$rc" = 4 ] || fail_check "delete exit $rc, want 4: $out"
	echo "$out" | grep -q "online as System RAM" || fail_check "message lacks 'online as System RAM': $out"
	echo "$out" | grep -q -- "--offline" || fail_check "message does not say --offline: $out"
	WRITES=$(($(sr_writes delete_region) - d0 + $(sr_writes unbind) - u0))
	[ "$WRITES" = 0 ] || fail_check "$WRITES teardown writes"
	sr_intact
	CYCLES_RUN=1
	NOTE="exit $rc: $(echo "$out" | cut -c1-160)${NOTE:+; $NOTE}"
}

# The lab got EBUSY only with the block in ZONE_NORMAL and page tables on
# its node: re-online it as Normal, pin, and ask for --offline.
scenario_sysram_offline_ebusy() {
	CYCLES_ASKED=1
	for b in $SR_BLOCKS; do
		echo offline >"/sys/devices/system/memory/$b/state" && echo online_kernel >"/sys/devices/system/memory/$b/state" ||
			{ fail_check "could not re-online $b as Normal"; return; }
	done
	sr_replace || fail_check "could not copy the pattern back onto node $SR_NODE"
	racer pin-node -node "$SR_NODE" -mib 32 >/tmp/sr.pin 2>&1 &
	pin=$!
	sr_wait 30 grep -q READY /tmp/sr.pin || fail_check "pin-node: $(cat /tmp/sr.pin)"
	d0=$(sr_writes delete_region) u0=$(sr_writes unbind)
	t0=$(uptime_s)
	out=$(cxlregionctl delete --offline --timeout 60s "$SR_REGION" 2>&1)
	rc=$?
	secs=$(($(uptime_s) - t0))
	kill "$pin" 2>/dev/null
	wait "$pin" 2>/dev/null
	case "$rc" in
	0) fail_check "delete --offline succeeded: no unmovable page on the block (cannot show the rollback)" ;;
	6) echo "$out" | grep -q EBUSY || fail_check "exit 6 without EBUSY: $out" ;;
	*) fail_check "delete --offline exit $rc, want 6 (EBUSY): $out" ;;
	esac
	[ "$secs" -le 65 ] || fail_check "took ${secs}s, past the 60 s timeout"
	WRITES=$(($(sr_writes delete_region) - d0 + $(sr_writes unbind) - u0))
	[ "$WRITES" = 0 ] || fail_check "$WRITES teardown writes"
	[ "$rc" = 0 ] || sr_intact
	# Movable again for the next scenario, the pattern back on the node.
	for b in $SR_BLOCKS; do
		echo offline >"/sys/devices/system/memory/$b/state" && echo online_movable >"/sys/devices/system/memory/$b/state"
	done
	sr_replace || fail_check "could not copy the pattern back onto node $SR_NODE"
	CYCLES_RUN=1
	NOTE="exit $rc in ${secs}s: $(echo "$out" | grep -o 'step offline.*' | cut -c1-160)${NOTE:+; $NOTE}"
}

scenario_sysram_offline_delete() {
	CYCLES_ASKED=1
	sr_on_node || fail_check "the pattern is not on node $SR_NODE before the offline (Shmem $(sr_shmem) kB): nothing to migrate"
	d0=$(sr_writes delete_region)
	t0=$(uptime_s)
	out=$(cxlregionctl delete --offline --timeout 300s "$SR_REGION" 2>&1)
	rc=$?
	secs=$(($(uptime_s) - t0))
	[ "$rc" = 0 ] || fail_check "delete --offline exit $rc: $out"
	WRITES=$(($(sr_writes delete_region) - d0))
	[ -e "/sys/bus/cxl/devices/$SR_REGION" ] && fail_check "$SR_REGION still there"
	[ "$(sr_md5)" = "$SR_MD5" ] || fail_check "pattern changed: md5 $(sr_md5), was $SR_MD5"
	[ -z "$(sr_blocks)" ] || fail_check "blocks still online on node $SR_NODE: $(sr_blocks)"
	[ "$(memtotal_kb)" = "$MEM_BOOT" ] || fail_check "MemTotal $(memtotal_kb) kB, was $MEM_BOOT at boot"
	CYCLES_RUN=1
	NOTE="deleted in ${secs}s, pattern migrated intact, MemTotal $(memtotal_kb) kB = boot${NOTE:+; $NOTE}"
}

# The baseline: what the daemon prevents. The write succeeds, no WARNING,
# and the pattern reads back changed.
scenario_sysram_raw_delete() {
	CYCLES_ASKED=1
	echo "$SR_REGION" >"/sys/bus/cxl/devices/$(root_decoder)/delete_region" 2>/tmp/sr.raw ||
		{ fail_check "raw delete_region failed: $(cat /tmp/sr.raw)"; return; }
	WRITES=1
	after=$(sr_md5)
	if [ "$after" = "$SR_MD5" ]; then
		fail_check "baseline shows no corruption: the pattern is intact after a raw delete"
	fi
	CYCLES_RUN=1
	NOTE="${NOTE:+$NOTE; }raw delete ok; pattern md5 $SR_MD5 -> $after; first bytes $(od -An -tx1 -N8 "$SR_MNT/pattern" | tr -d ' '); blocks still online: $(sr_blocks | tr '\n' ' ')"
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
	check_scenario sysram-setup scenario_sysram_setup
	if [ -n "$SR_MD5" ]; then
		case "$SET" in
		sysram)
			check_scenario sysram-ctl-refuses scenario_sysram_ctl_refuses
			check_scenario sysram-offline-ebusy scenario_sysram_offline_ebusy
			check_scenario sysram-offline-delete scenario_sysram_offline_delete
			;;
		sysram-raw)
			check_scenario sysram-raw-delete scenario_sysram_raw_delete
			;;
		esac
	fi
	stop_daemon
}
