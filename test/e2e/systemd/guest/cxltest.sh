#!/bin/bash
# The Debian guest's scenarios (test/e2e/systemd), run by cxltest.service
# under systemd once multi-user.target is reached. cxlregiond is the
# installed package's: its unit, bus policy, activation file, polkit action,
# config file. Reports on /dev/ttyS1 in the QEMU suite's format
# (test/e2e/qemu/guest/init), judged by the same run.sh code:
#   BOOT kernel=<uname -r> set=systemd
#   START <scenario> / RESULT <scenario> expect=... / SKIP / INFO / DONE
# It reuses the QEMU suite's scenario helpers (scenarios.sh: racer_scenario,
# check_scenario; daemon.sh: scrape, metric_deletes, guard_counts,
# scenario_roundtrip), which read the daemon's metrics on 127.0.0.1:9477,
# the unit's default.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /run/cxltest /run/lock
stty -F /dev/ttyS1 raw -echo 2>/dev/null
stty -F /dev/ttyS2 raw -echo 2>/dev/null
exec 3>/dev/ttyS1

emit() { echo "$*" >&3; }
# busybox's usleep, which the shared helpers use.
usleep() { sleep "$(awk -v u="$1" 'BEGIN { printf "%.3f", u / 1000000 }')"; }
reset_vm() {
	sync
	echo b >/proc/sysrq-trigger
	sleep 30
}

# Parameters from the kernel command line (test/e2e/systemd/run.sh).
CYCLES=100        # the guard's baseline (daemon stopped)
DAEMON_CYCLES=30  # the same writers with the daemon's guard
CLI_CYCLES=3      # concurrent CLI deletes
SETTLE_MS=200
ONLY=
EXPOSURE=
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	cxltest.cycles=*) CYCLES=${arg#*=} ;;
	cxltest.daemon_cycles=*) DAEMON_CYCLES=${arg#*=} ;;
	cxltest.cli_cycles=*) CLI_CYCLES=${arg#*=} ;;
	cxltest.settle_ms=*) SETTLE_MS=${arg#*=} ;;
	cxltest.only=*) ONLY=$(echo "${arg#*=}" | tr , ' ') ;;
	cxltest.exposure=*) EXPOSURE=${arg#*=} ;;
	esac
done
export CYCLES DAEMON_CYCLES SETTLE_MS ONLY

. /usr/local/lib/cxltest/scenarios.sh
. /usr/local/lib/cxltest/daemon.sh

CONF=/etc/cxlregiond/cxlregiond.conf
SDRUN=/usr/local/lib/cxltest/sdrun

emit "BOOT kernel=$(uname -r) set=systemd"

# journal_json prints the unit's journal of this boot, one JSON object a
# line.
journal_json() { journalctl -b -u cxlregiond -o json --no-pager 2>/dev/null; }
status_json() { cxlregionctl status --json 2>/dev/null | tr -d '\n'; }
active() { systemctl is-active cxlregiond 2>/dev/null; }
main_pid() { systemctl show -p MainPID --value cxlregiond; }

# wait_until SECONDS CMD...: poll CMD every 100 ms.
wait_until() {
	local n=$(($1 * 10))
	shift
	while [ "$n" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

# every sysfs write the daemon made (all attributes, every result).
metric_writes() {
	scrape | awk '/^cxlregiond_sysfs_writes_total[{]/ { s += $NF } END { printf "%d\n", s }'
}

# (1) The unit came up by itself: enabled by the package's postinst
# (dh_installsystemd), Type=notify, active (READY=1 reached); stopped, it
# comes back through D-Bus activation on the first `cxlregionctl list`.
# The three version strings and the packaged files are checked here too.
scenario_sd_boot() {
	CYCLES_ASKED=1
	# (not is-system-running --wait: this scenario's own unit is a job
	# still running)
	failed=$(systemctl --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')
	[ -z "$failed" ] || NOTE="failed units: $failed"
	[ "$(systemctl is-enabled cxlregiond)" = enabled ] || fail_check "unit not enabled by the package: $(systemctl is-enabled cxlregiond)"
	[ "$(systemctl show -p Type --value cxlregiond)" = notify ] || fail_check "unit Type=$(systemctl show -p Type --value cxlregiond)"
	[ "$(active)" = active ] || fail_check "cxlregiond $(active) after boot: $(journalctl -b -u cxlregiond --no-pager | tail -3 | tr '\n' ' ')"
	journal_json | grep -q '"MESSAGE":"ready' || fail_check "no 'ready' record in the journal"
	systemctl stop cxlregiond
	[ "$(active)" = inactive ] || fail_check "still $(active) after stop"
	if cxlregionctl list >/tmp/list.out 2>&1; then
		[ "$(active)" = active ] || fail_check "list answered but the unit is $(active)"
		journalctl -b -u dbus --no-pager | grep -q "Activating via systemd: service name='io.github.cxlregion1'" ||
			fail_check "dbus-daemon did not log the activation"
	else
		fail_check "D-Bus activation: list failed: $(head -c 200 /tmp/list.out | tr '\n' ' ')"
	fi
	v=$(dpkg-query -W -f '${Version}' cxlregiond)
	want="$v (git "
	for p in cxlregiond cxlregionctl; do
		out=$($p --version)
		case "$out" in "$p $want"*")") ;; *) fail_check "$p --version '$out', package $v" ;; esac
	done
	dv=$(status_json | sed -n 's/.*"version": *"\([^"]*\)".*/\1/p')
	[ "$dv" = "$(cxlregiond --version | sed 's/^cxlregiond //')" ] || fail_check "D-Bus Version '$dv' differs from --version"
	for f in /usr/share/man/man8/cxlregiond.8.gz /usr/share/man/man8/cxlregionctl.8.gz /usr/share/man/man5/cxlregiond.conf.5.gz \
		/usr/share/bash-completion/completions/cxlregionctl /usr/share/zsh/vendor-completions/_cxlregionctl \
		/usr/share/fish/vendor_completions.d/cxlregionctl.fish /usr/lib/tmpfiles.d/cxlregiond.conf; do
		[ -e "$f" ] || fail_check "$f not installed"
	done
	dpkg-query -W -f '${Conffiles}' cxlregiond | grep -q "$CONF" || fail_check "$CONF is not a conffile"
	getent group cxl >/dev/null || fail_check "no cxl group (sysusers)"
	status_json | grep -q '"guard_active": *true' || fail_check "GuardActive false under the unit: $(status_json | head -c 300)"
	NOTE="${NOTE:+$NOTE; }version $v, D-Bus activation ok"
	CYCLES_RUN=1
}

# (2) systemd-analyze security of the running unit: the score the README
# claims (run.sh passes it from deploy/README.md).
scenario_sd_security() {
	CYCLES_ASKED=1
	line=$(systemd-analyze security cxlregiond --no-pager 2>&1 | grep 'Overall exposure level')
	score=$(echo "$line" | sed -n 's/.*cxlregiond.service: \([0-9.]*\).*/\1/p')
	[ -n "$score" ] || { fail_check "no score: $(systemd-analyze security cxlregiond --no-pager 2>&1 | tail -2 | tr '\n' ' ')"; return; }
	[ "$score" = "$EXPOSURE" ] || fail_check "exposure $score, README claims ${EXPOSURE:-nothing}"
	NOTE="${NOTE:+$NOTE; }exposure $score"
	CYCLES_RUN=1
}

# (3) systemctl reload applies the config file: ExecReload= sends SIGHUP,
# the daemon logs the reload with CAUSE=SIGHUP and stays the same process;
# a new metrics_listen in the file takes effect. The settle window of the
# scenarios that follow (SETTLE_MS; the racer's regions are foreign) is set
# here too.
scenario_sd_reload() {
	CYCLES_ASKED=1
	pid0=$(main_pid)
	n0=$(journal_json | grep -c '"CAUSE":"SIGHUP"')
	systemctl reload cxlregiond || fail_check "systemctl reload failed"
	wait_until 10 test "$(journal_json | grep -c '"CAUSE":"SIGHUP"')" -gt "$n0" ||
		fail_check "no SIGHUP reload in the journal after systemctl reload"
	cp "$CONF" /tmp/conf.orig
	{
		cat /tmp/conf.orig
		echo "metrics_listen = 127.0.0.1:9478"
		echo "settle_window = ${SETTLE_MS}ms"
	} >"$CONF"
	systemctl reload cxlregiond || fail_check "systemctl reload failed"
	wait_until 15 racer get http://127.0.0.1:9478/metrics || fail_check "metrics_listen = 127.0.0.1:9478 not applied"
	{
		cat /tmp/conf.orig
		echo "settle_window = ${SETTLE_MS}ms"
	} >"$CONF"
	systemctl reload cxlregiond || fail_check "systemctl reload failed"
	wait_until 15 racer get "http://$METRICS_ADDR/metrics" || fail_check "metrics_listen back to the default not applied"
	[ "$(main_pid)" = "$pid0" ] || fail_check "main PID changed $pid0 -> $(main_pid): reload restarted the daemon"
	[ "$(active)" = active ] || fail_check "unit $(active) after reloads"
	NOTE="${NOTE:+$NOTE; }$(journal_json | grep -c '"CAUSE":"SIGHUP"') SIGHUP reloads, same PID"
	CYCLES_RUN=1
}

# (5) Authorization through the real bus and polkit. The shipped bus policy
# is the only one naming the service and unmodified (dpkg --verify); an
# unprivileged user is refused (exit 5) by the bus, then, once in the
# documented cxl group, by polkit (no agent, auth_admin_keep), and nothing
# is written; a polkit rule granting io.github.cxlregion1.manage to the
# group lets the same user create and delete.
scenario_sd_polkit() {
	CYCLES_ASKED=1
	pol=$(grep -l 'io.github.cxlregion1' /etc/dbus-1/system.d/* /usr/share/dbus-1/system.d/* 2>/dev/null | tr '\n' ' ')
	[ "$pol" = "/usr/share/dbus-1/system.d/io.github.cxlregion1.conf " ] || fail_check "bus policies naming the service: $pol"
	bad=$(dpkg --verify cxlregiond 2>&1 | grep -v "$CONF")
	[ -z "$bad" ] || fail_check "packaged files modified: $bad"
	writes0=$(metric_writes)
	as_tester() { runuser -u tester -- cxlregionctl "$@"; }
	for stage in "not in the cxl group" "in the cxl group, no polkit rule"; do
		as_tester create --decoder "$ROOT_DECODER" --type pmem --size 256M >/tmp/pk.out 2>&1
		rc=$?
		[ "$rc" = 5 ] || fail_check "tester $stage: create exit $rc, want 5: $(head -c 200 /tmp/pk.out | tr '\n' ' ')"
		grep -qi 'rejected\|denied\|not authorized\|authentication required' /tmp/pk.out || fail_check "tester $stage: message $(head -c 200 /tmp/pk.out | tr '\n' ' ')"
		[ -z "$(regions_now)" ] || fail_check "tester $stage: a region exists: $(regions_now | tr '\n' ' ')"
		NOTE="${NOTE:+$NOTE; }$stage: exit $rc ($(head -c 120 /tmp/pk.out | tr '\n' ' '))"
		usermod -aG cxl tester
	done
	[ "$(metric_writes)" = "$writes0" ] || fail_check "sysfs writes $writes0 -> $(metric_writes) while refusing"
	cat >/etc/polkit-1/rules.d/50-cxltest.rules <<'RULE'
polkit.addRule(function(action, subject) {
    if (action.id == "io.github.cxlregion1.manage" && subject.isInGroup("cxl"))
        return polkit.Result.YES;
});
RULE
	# polkitd reloads its rules when the directory changes.
	if wait_until 20 as_tester create --decoder "$ROOT_DECODER" --type pmem --size 256M; then
		r=$(regions_now | head -1)
		as_tester delete "$r" >/tmp/pk.out 2>&1 || fail_check "tester with the rule: delete $r: $(head -c 200 /tmp/pk.out | tr '\n' ' ')"
		NOTE="$NOTE; with the polkit rule: create and delete of $r by tester ok"
	else
		fail_check "tester with the polkit rule: create still refused: $(as_tester create --decoder "$ROOT_DECODER" --type pmem --size 256M 2>&1 | head -c 200)"
	fi
	rm -f /etc/polkit-1/rules.d/50-cxltest.rules
	gpasswd -d tester cxl >/dev/null
	CYCLES_RUN=1
}

# (6) The journal carries the operation's fields: a delete and a create
# with OPERATION, REGION and RESULT=ok, the polkit refusals with
# RESULT=AccessDenied, and one "delete_region written" record per region
# deleted. ERRNO appears only when the kernel refuses a write, which no
# scenario here provokes (TestOutcomeFields covers it).
scenario_sd_journal() {
	CYCLES_ASKED=1
	journal_json >/tmp/journal.json
	for want in '"OPERATION":"delete"' '"OPERATION":"create"' '"RESULT":"ok"' '"RESULT":"AccessDenied"' '"REGION":"region' '"PRIORITY":"6"'; do
		grep -q "$want" /tmp/journal.json || fail_check "no journal record with $want"
	done
	grep '"OPERATION":"delete"' /tmp/journal.json | grep '"RESULT":"ok"' | grep -q '"REGION":"region' ||
		fail_check "no delete record carrying REGION and RESULT together"
	NOTE="$(grep -c '"OPERATION"' /tmp/journal.json) operation records, $(grep -c 'delete_region written' /tmp/journal.json) delete_region writes"
	CYCLES_RUN=1
}

# (7) systemctl restart while CLI deletes are queued behind a writer held
# by a raw opener: nothing is lost (the region is gone in the end, deleted
# by the first instance or by a retry after the restart) and nothing is
# deleted twice (one "delete_region written" record across both
# instances, 0 WARNING).
scenario_sd_restart_queued() {
	CYCLES_ASKED=1
	if ! cxlregionctl create --decoder "$ROOT_DECODER" --type pmem --size 256M >/tmp/rq.out 2>&1; then
		fail_check "create: $(head -c 200 /tmp/rq.out | tr '\n' ' ')"
		return
	fi
	r=$(regions_now | head -1)
	# The kernel reuses region names: count this region's records from now.
	c0=$(journal_json | grep 'delete_region written' | grep -c "\"REGION\":\"$r\"")
	del=/sys/bus/cxl/devices/$ROOT_DECODER/delete_region
	sh -c "exec 3>$del; sleep 4" &
	holder=$!
	wait_until 15 test -e "/proc/$holder/fd/3" || fail_check "holder's open not allowed"
	ctl_deletes "$r"
	sleep 1
	queued=$(scrape | awk '/^cxlregiond_writer_queue_depth/ { s += $NF } END { print s + 0 }')
	systemctl restart cxlregiond || fail_check "systemctl restart failed"
	# shellcheck disable=SC2086
	wait_failed $CTL_PIDS
	errs=$FAILED
	wait "$holder"
	[ "$(active)" = active ] || fail_check "unit $(active) after restart"
	if [ -e "/sys/bus/cxl/devices/$r" ]; then
		cxlregionctl delete "$r" >/tmp/rq.out 2>&1 || fail_check "delete of $r after restart: $(head -c 200 /tmp/rq.out | tr '\n' ' ')"
		retried=1
	fi
	[ -e "/sys/bus/cxl/devices/$r" ] && fail_check "$r still exists: lost"
	WRITES=$(($(journal_json | grep 'delete_region written' | grep -c "\"REGION\":\"$r\"") - c0))
	[ "$WRITES" = 1 ] || fail_check "$WRITES delete_region writes for $r across the restart"
	NOTE="queue depth ${queued} at restart, $errs of 3 deletes failed, ${retried:+retried after restart, }$WRITES write"
	CYCLES_RUN=1
}

# (8) cxlregionctl monitor survives a daemon restart (it reconnects):
# after `systemctl restart`, a create still shows in the same monitor.
scenario_sd_monitor_restart() {
	CYCLES_ASKED=1
	cxlregionctl monitor >/tmp/mon.out 2>/tmp/mon.err &
	mon=$!
	sleep 2
	systemctl restart cxlregiond
	sleep 2
	if ! cxlregionctl create --decoder "$ROOT_DECODER" --type pmem --size 256M >/tmp/mr.out 2>&1; then
		fail_check "create after restart: $(head -c 200 /tmp/mr.out | tr '\n' ' ')"
	fi
	r=$(regions_now | head -1)
	wait_until 10 grep -q "$r" /tmp/mon.out || fail_check "monitor did not show $r after the restart: $(tail -c 200 /tmp/mon.err | tr '\n' ' ')"
	kill -0 "$mon" 2>/dev/null || fail_check "monitor exited: $(tail -c 200 /tmp/mon.err | tr '\n' ' ')"
	kill "$mon" 2>/dev/null
	wait "$mon" 2>/dev/null
	[ -n "$r" ] && cxlregionctl delete "$r" >/dev/null 2>&1
	NOTE="stderr: $(head -c 150 /tmp/mon.err | tr '\n' ' ')"
	CYCLES_RUN=1
}

if ! wait_topology 120; then
	emit "FATAL no CXL topology: $(ls /sys/bus/cxl/devices 2>&1 | tr '\n' ' ')"
	emit "DONE"
	reset_vm
fi
emit "INFO topology: $(ls /sys/bus/cxl/devices | tr '\n' ' ')"
ROOT_DECODER=$(root_decoder)
start_oops_watchdog

check_scenario sd-boot scenario_sd_boot
check_scenario sd-security scenario_sd_security
check_scenario sd-reload scenario_sd_reload
# (4) The hardened unit does its job: create/list/delete through the CLI,
# then concurrent CLI deletes of one region: 0 WARNING, one delete_region
# write per region (the daemon's metric).
check_scenario sd-roundtrip scenario_roundtrip
CYCLES_NOW=$CLI_CYCLES
racer_scenario sd-cli-deletes clean metric -state committed -writers 3 -deleter exec -exec "cxlregionctl delete {}"
CYCLES_NOW=
check_scenario sd-polkit scenario_sd_polkit
check_scenario sd-journal scenario_sd_journal
# (9) Raw open+write+close deleters (what `echo r > delete_region` does),
# started with systemd-run: with the daemon stopped they race (the
# baseline, same boot); with the unit running, its guard holds them, so
# they race nothing (GUARDED: its counters must show the held opens).
if wanted sd-guard-baseline; then
	systemctl stop cxlregiond
	PATH=$SDRUN:$PATH CYCLES_NOW=$CYCLES racer_scenario sd-guard-baseline race ok -state committed -deleter raw -open-early=false
	systemctl start cxlregiond
fi
if wanted sd-guard; then
	[ "$(active)" = active ] || systemctl start cxlregiond
	GUARDED=1 PATH=$SDRUN:$PATH CYCLES_NOW=$DAEMON_CYCLES racer_scenario sd-guard clean ok -state committed -deleter raw -open-early=false
fi
check_scenario sd-restart-queued scenario_sd_restart_queued
# The reconnecting monitor is issue 13's operator part; until the CLI has
# it (--no-reconnect opts out), the scenario is reported, not run.
if cxlregionctl monitor --help 2>&1 | grep -q -- --no-reconnect; then
	check_scenario sd-monitor-restart scenario_sd_monitor_restart
elif wanted sd-monitor-restart; then
	emit "SKIP sd-monitor-restart cxlregionctl monitor does not reconnect yet (no --no-reconnect)"
fi
emit "DONE"

{
	echo "=== /tmp/racer.log"
	cat /tmp/racer.log 2>/dev/null
	echo "=== journal"
	journalctl -b --no-pager -o short-monotonic
	echo "=== dmesg"
	dmesg
} >/dev/ttyS2 2>&1
sync
echo o >/proc/sysrq-trigger
