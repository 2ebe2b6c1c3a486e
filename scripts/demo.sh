#!/usr/bin/env bash
# make demo: cxlregiond on its built-in model of an unpatched kernel, a
# private D-Bus, and the CLI driving it. No CXL hardware and no root needed;
# everything lives in a temporary directory that is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
WRITERS=${WRITERS:-50}

if [ -t 1 ]; then bold=$'\033[1m'; dim=$'\033[2m'; off=$'\033[0m'; else bold= dim= off=; fi
caption() { printf '\n%s== %s%s\n' "$bold" "$*" "$off"; }
show() { printf '%s$ %s%s\n' "$dim" "$*" "$off"; "$@"; }
die() { echo "demo: $*" >&2; exit 1; }

command -v dbus-daemon >/dev/null || die "needs dbus-daemon (Debian: apt-get install dbus)"
[ -x "$BIN/cxlregiond" ] && [ -x "$BIN/cxlregionctl" ] || die "run 'make build' first (or 'make demo')"
ctl="$BIN/cxlregionctl"

tmp=$(mktemp -d -t cxlregiond-demo.XXXXXX)
bus_pid= daemon_pid=
cleanup() {
	if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
		kill -TERM "$daemon_pid" && wait "$daemon_pid" || true
	fi
	if [ -n "$bus_pid" ] && kill -0 "$bus_pid" 2>/dev/null; then
		kill "$bus_pid" && wait "$bus_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A private bus whose policy lets the demo user own and call anything; the
# daemon does its own authorization (uid 0 or polkit for changes).
cat >"$tmp/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=$tmp/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
CONF
dbus-daemon --config-file="$tmp/bus.conf" --print-address=1 --nofork --nopidfile --nosyslog >"$tmp/bus.addr" 2>"$tmp/bus.log" &
bus_pid=$!
for _ in $(seq 100); do [ -s "$tmp/bus.addr" ] && break; sleep 0.05; done
[ -s "$tmp/bus.addr" ] || die "dbus-daemon did not start: $(cat "$tmp/bus.log")"
export DBUS_SYSTEM_BUS_ADDRESS=$(head -n1 "$tmp/bus.addr")

# A free loopback port for the metrics endpoint.
port=
for p in $(seq 19477 19577); do
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || die "no free port in 19477..19577 for the metrics endpoint"

fetch() {
	if command -v curl >/dev/null; then curl -fsS "$1"
	elif command -v wget >/dev/null; then wget -qO- "$1"
	else
		local hostport=${1#http://}; hostport=${hostport%%/*}
		exec 3<>"/dev/tcp/${hostport%:*}/${hostport#*:}"
		printf 'GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n' "$hostport" >&3
		sed '1,/^\r$/d' <&3; exec 3<&-
	fi
}

# The simulated kernel spends 1 s inside delete_region_store (--sim-delete-delay),
# as a slow real delete would: the concurrent deletes below all arrive while
# the first is still in the kernel.
"$BIN/cxlregiond" --simulate --sim-log "$tmp/kernel.log" --sim-delete-delay 1s \
	--state-dir "$tmp/state" --lock-dir "$tmp/lock" --metrics-listen "127.0.0.1:$port" \
	2>"$tmp/daemon.log" &
daemon_pid=$!
for _ in $(seq 200); do "$ctl" status >/dev/null 2>&1 && break; sleep 0.05; done
"$ctl" status >/dev/null 2>&1 || die "cxlregiond did not start: $(cat "$tmp/daemon.log")"

caption "cxlregiond runs on its simulated kernel, on a private D-Bus"
show "$ctl" status

caption "No regions yet"
show "$ctl" list

caption "Create a 256 MiB pmem region in root decoder decoder0.0"
printf '%s$ %s%s\n' "$dim" "$ctl create --decoder decoder0.0 --type pmem --size 256M" "$off"
region=$("$ctl" create --decoder decoder0.0 --type pmem --size 256M)
echo "$region"
show "$ctl" list

caption "$WRITERS concurrent 'cxlregionctl delete $region'"
pids=()
for i in $(seq "$WRITERS"); do
	( "$ctl" delete "$region" 2>"$tmp/delete.$i.err"; echo $? >"$tmp/delete.$i.rc" ) &
	pids+=($!)
done
wait "${pids[@]}"
ok=$(cat "$tmp"/delete.*.rc | grep -cx 0 || true)
echo "$ok of $WRITERS exited 0"
[ "$ok" = "$WRITERS" ] || { cat "$tmp"/delete.*.err >&2; die "some deletes failed"; }
show "$ctl" list

caption "What the kernel received: one delete_region write"
grep -F 'delete_region' "$tmp/kernel.log" || true

caption "The metrics that prove it (http://127.0.0.1:$port/metrics)"
fetch "http://127.0.0.1:$port/metrics" |
	grep -E '^cxlregiond_(sysfs_writes_total\{attribute="delete_region"|duplicate_deletes_suppressed_total|operations_total\{operation="delete",result="ok"\})' || true

caption "Kernel WARNINGs in the simulated kernel log"
warnings=$(grep -c 'WARNING:' "$tmp/kernel.log" || true)
echo "WARNING: $warnings"

caption "For contrast: the same $WRITERS deletes written raw to the simulated kernel, no daemon"
show "$BIN/cxlregiond" sim-race --writers "$WRITERS"

caption "Done: the daemon stops on SIGTERM and the temporary directory is removed"
