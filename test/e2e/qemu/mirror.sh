# Sourced (POSIX sh) by deps.sh and test/e2e/systemd/run.sh: where the
# host's apt finds Debian.

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
