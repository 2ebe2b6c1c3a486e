# table.awk turns `go test -bench` output of ./bench/, ./internal/guard/,
# ./internal/uevent/ and ./internal/region/ into the short table `make
# bench` prints: one row per benchmark, its ratio and the two figures the
# ratio is made of.
function human(ns) {
	if (ns >= 1e9) return sprintf("%.2fs", ns / 1e9)
	if (ns >= 1e6) return sprintf("%.2fms", ns / 1e6)
	if (ns >= 1e3) return sprintf("%.1fµs", ns / 1e3)
	return sprintf("%dns", ns)
}
function metric(unit,    i) {
	for (i = 3; i <= NF; i++) if ($i == unit) return $(i - 1)
	return ""
}
BEGIN {
	# ratio unit, numerator, denominator, how the parts print (ns or raw)
	n = split("engine/raw engine-ns/op raw-ns/op ns;" \
		"writer/raw writer-ns/op raw-ns/op ns;" \
		"spread/one spread-cycles/s one-cycles/s rate;" \
		"storm/single storm-ns/op single-ns/op ns;" \
		"guarded/unguarded open-ns unguarded-open-ns ns;" \
		"scan/plain scan-ns/op plain-ns/op ns;" \
		"msgs/cpu-s msgs/s allocs/op parser;" \
		"large/small large-ns/op small-ns/op ns;" \
		"round-trips/delete bus-ns/op ping-ns/op ns;" \
		"p99/single storm-p99-ns single-ns/op ns;" \
		"ready/plain ready-ns/op plain-ns/op ns;" \
		"list/version list-ns/op version-ns/op ns;" \
		"cpu-ms-per-s start-rss-MiB idle-rss-MiB idle", rows, ";")
	printf "%-50s %-18s %8s   %s\n", "benchmark", "ratio", "value", "from"
}
/^pkg:/ {
	pkg = $2
	sub(/.*\//, "", pkg)
}
/^Benchmark/ {
	name = $1
	sub(/^Benchmark/, "", name)
	sub(/-[0-9]+$/, "", name)
	if (pkg != "" && pkg != "bench") name = pkg "." name
	for (r = 1; r <= n; r++) {
		split(rows[r], f, " ")
		v = metric(f[1])
		if (v == "") continue
		a = metric(f[2]); b = metric(f[3])
		if (f[4] == "ns") parts = human(a) " vs " human(b)
		else if (f[4] == "parser") parts = sprintf("%.0f msgs/s wall, %s allocs/op", a, b)
		else if (f[4] == "idle") parts = sprintf("RSS %.1f MiB at READY, %.1f MiB after %ss idle; %.1f wakeups/s", a, b, metric("window-s"), metric("wakeups/s"))
		else parts = sprintf("%.1f vs %.1f cycles/s", a, b)
		extra = ""
		if ((j = metric("joined/storm")) != "") extra = extra sprintf(", joined %s late %s", j, metric("late/storm"))
		if ((s = metric("stale-gen/op")) != "" && s + 0 > 0) extra = extra sprintf(", stale-gen/op %s", s)
		if ((s = metric("fsyncs/op")) != "") extra = extra sprintf(", fsyncs/delete %s", s)
		if ((s = metric("large-allocs/op")) != "") extra = extra sprintf(", allocs/op %s vs %s, of which sysfs read %s vs %s", s, metric("small-allocs/op"), human(metric("large-read-ns/op")), human(metric("small-read-ns/op")))
		if ((s = metric("engine-ns/op")) != "" && f[1] == "round-trips/delete") extra = extra sprintf(", engine alone %s", human(s))
		if ((s = metric("kernel-writes/storm")) != "") extra = extra sprintf(", p50 %s, kernel writes/storm %s", human(metric("storm-p50-ns")), s)
		if ((s = metric("floor-open-ns")) != "") extra = extra sprintf(", bare fanotify allow %s", human(s))
		if ((s = metric("regions")) != "" && f[1] != "large/small") extra = extra sprintf(", %s regions", s)
		printf "%-50s %-18s %8.3g   %s%s\n", name, f[1], v, parts, extra
	}
}
