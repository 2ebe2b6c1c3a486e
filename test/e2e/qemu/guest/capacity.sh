# Sourced by init (busybox sh) after scenarios.sh and daemon.sh. The
# capacity boot (cxltest.set=capacity): one 1 GiB pmem device behind a host
# bridge with two root ports (so the bridge has real HDM decoders, not a
# passthrough one), room for four 256 MiB regions. The kernel hands out a
# device's capacity in decoder order and takes it back only from the top
# (docs/kernel.md#config-order), so deleting lower regions first strands
# capacity.
#
#   capacity-raw     the baseline: four regions written raw (as a shell user
#                    or ndctl does), delete the 2nd and the 1st, create again,
#                    delete the 3rd and the 4th; it must show stranded capacity
#   capacity-daemon  the same sequence through cxlregionctl: the re-create is
#                    placed or refused as busy naming the kernel's rule (never
#                    a kernel error), and at the end every endpoint decoder's
#                    dpa_size is 0 and the daemon reports the device's whole
#                    capacity free and nothing stranded
#
# Regions are committed, not bound: binding adds nothing to the capacity
# rules and costs nd registration time under TCG.

CAP_SIZE=$((256 << 20))

cap_dev() { echo "/sys/bus/cxl/devices/$1"; }

# cap_decoders: the endpoint decoders, in id order (decoder*.*: 6.12 has
# endpointN/decoders_committed too).
cap_decoders() { ls -d /sys/bus/cxl/devices/endpoint*/decoder*.* 2>/dev/null | sed 's|.*/||' | sort -t. -k2 -n; }

# cap_allocated: bytes still allocated on endpoint decoders, and which.
cap_allocated() {
	total=0 which=
	for d in $(cap_decoders); do
		s=$(($(cat "$(cap_dev "$d")/dpa_size")))
		[ "$s" -eq 0 ] && continue
		total=$((total + s))
		which="$which $d=$((s >> 20))M"
	done
	echo "$total$which"
}

# cap_write FILE VALUE: a raw write; a failure is added to CAP_ERRS.
cap_write() {
	if ! echo "$2" >"$1" 2>/tmp/cap.err; then
		CAP_ERRS="${CAP_ERRS:+$CAP_ERRS, }${1#/sys/bus/cxl/devices/} <- $2: $(sed 's/.*: //' /tmp/cap.err | head -1)"
		return 1
	fi
}

# raw_create: a 256 MiB pmem region on the lowest endpoint decoder without
# capacity, written as `cxl create-region` does; sets RAW_REGION (not a
# subshell: CAP_ERRS must keep the kernel's refusals).
raw_create() {
	RAW_REGION=
	rd=$(root_decoder)
	ed=
	for d in $(cap_decoders); do
		if [ $(($(cat "$(cap_dev "$d")/dpa_size"))) -eq 0 ]; then
			ed=$d
			break
		fi
	done
	if [ -z "$ed" ]; then
		CAP_ERRS="${CAP_ERRS:+$CAP_ERRS, }no endpoint decoder without capacity"
		return 1
	fi
	r=$(cat "$(cap_dev "$rd")/create_pmem_region")
	cap_write "$(cap_dev "$rd")/create_pmem_region" "$r" || return 1
	R=$(cap_dev "$r")
	cap_write "$R/interleave_granularity" "$(cat "$(cap_dev "$rd")/interleave_granularity")" &&
		cap_write "$R/interleave_ways" 1 &&
		cap_write "$R/uuid" "$(cat /proc/sys/kernel/random/uuid)" &&
		cap_write "$R/size" "$CAP_SIZE" &&
		cap_write "$(cap_dev "$ed")/mode" pmem &&
		cap_write "$(cap_dev "$ed")/dpa_size" "$CAP_SIZE" &&
		cap_write "$R/target0" "$ed" &&
		cap_write "$R/commit" 1 || {
		cap_write "$(cap_dev "$rd")/delete_region" "$r"
		return 1
	}
	RAW_REGION=$r
}

# raw_delete REGION: delete_region, then free the decoder's capacity as
# ndctl does (dpa_size 0), which the kernel refuses below the top.
raw_delete() {
	ed=$(cat "$(cap_dev "$1")/target0" 2>/dev/null)
	cap_write "$(cap_dev "$(root_decoder)")/delete_region" "$1"
	[ -n "$ed" ] && cap_write "$(cap_dev "$ed")/dpa_size" 0
}

scenario_capacity_raw() {
	CYCLES_ASKED=1 CAP_ERRS=
	set --
	for i in 1 2 3 4; do
		raw_create || { fail_check "raw create $i: $CAP_ERRS"; return; }
		set -- "$@" "$RAW_REGION"
	done
	raw_delete "$2"
	raw_delete "$1"
	raw_create
	again=$RAW_REGION
	raw_delete "$3"
	raw_delete "$4"
	[ -n "$again" ] && raw_delete "$again"
	left=$(cap_allocated)
	CYCLES_RUN=1
	NOTE="stranded $((${left%% *} >> 20)) MiB:${left#* } (create again: ${again:-refused}); kernel refusals: ${CAP_ERRS:-none}"
	# The baseline must show the problem the daemon solves.
	[ "${left%% *}" -gt 0 ] || fail_check "the raw sequence stranded nothing: the baseline shows no problem"
	# Leave the device clean for the daemon: free from the top down.
	for d in $(cap_decoders | sort -t. -k2 -nr); do
		echo 0 >"$(cap_dev "$d")/dpa_size" 2>/dev/null
	done
	left=$(cap_allocated)
	[ "${left%% *}" -eq 0 ] || fail_check "could not clean up after the baseline: $left"
}

# cap_metric KIND: the daemon's cxlregiond_memdev_capacity_bytes summed over
# memdevs.
cap_metric() {
	scrape | awk -v k="kind=\"$1\"" '/^cxlregiond_memdev_capacity_bytes[{]/ && index($0, k) { s += $NF } END { printf "%d\n", s }'
}

scenario_capacity_daemon() {
	CYCLES_ASKED=1
	rd=$(root_decoder)
	set --
	for i in 1 2 3 4; do
		if ! r=$(cxlregionctl create --decoder "$rd" --type pmem --size 256M --no-bind 2>/tmp/cap.out); then
			fail_check "create $i: $(head -c 300 /tmp/cap.out | tr '\n' ' ')"
			return
		fi
		set -- "$@" "$r"
	done
	for r in "$2" "$1"; do
		cxlregionctl delete "$r" >/tmp/cap.out 2>&1 || fail_check "delete $r: $(head -c 300 /tmp/cap.out | tr '\n' ' ')"
	done
	stranded=$(cap_metric stranded)
	again=
	if again=$(cxlregionctl create --decoder "$rd" --type pmem --size 256M --no-bind 2>/tmp/cap.out); then
		outcome="placed as $again"
	else
		rc=$?
		why=$(head -c 400 /tmp/cap.out | tr '\n' ' ')
		outcome="refused (exit $rc): $why"
		again=
		[ "$rc" = 4 ] || fail_check "create again: exit $rc, want 0 or 4 (busy): $why"
		echo "$why" | grep -qE 'order|still holds|no free decoder' || fail_check "create again refused without naming the rule: $why"
	fi
	for r in "$3" "$4" $again; do
		cxlregionctl delete "$r" >/tmp/cap.out 2>&1 || fail_check "delete $r: $(head -c 300 /tmp/cap.out | tr '\n' ' ')"
	done
	left=$(cap_allocated)
	total=$(cap_metric total) free=$(cap_metric free) end_stranded=$(cap_metric stranded)
	CYCLES_RUN=1
	NOTE="stranded after deleting the 2nd and 1st: $((stranded >> 20)) MiB; create again: $outcome; at the end allocated $((${left%% *} >> 20)) MiB, free $((free >> 20)) of $((total >> 20)) MiB"
	[ "${left%% *}" -eq 0 ] || fail_check "endpoint decoders still hold capacity:${left#* }"
	[ "$total" -gt 0 ] && [ "$free" = "$total" ] || fail_check "daemon reports $free of $total bytes free"
	[ "$end_stranded" = 0 ] || fail_check "daemon reports $end_stranded bytes stranded at the end"
	[ "$stranded" -gt 0 ] || fail_check "the daemon showed nothing stranded after deleting the lower regions"
}

# capacity_scenarios runs the capacity boot: the raw baseline first, then
# the daemon, on the same kernel instance.
capacity_scenarios() {
	check_scenario capacity-raw scenario_capacity_raw
	wanted capacity-daemon || return 0
	if ! daemon_built; then
		emit "SKIP capacity-daemon daemon not built"
		return
	fi
	if ! start_bus || ! start_daemon; then
		emit "SKIP capacity-daemon daemon did not start: $(daemon_log_tail)"
		return
	fi
	check_scenario capacity-daemon scenario_capacity_daemon
	stop_daemon
}
