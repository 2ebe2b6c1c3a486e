#!/bin/sh
# Prints the project's version in the one format every place uses (both
# binaries' --version, the D-Bus Version property, cxlregiond_build_info and
# the Debian package):
#
#   scripts/version.sh          0.1.0~git312 abc1234     (number, commit)
#
# The number comes from `git describe`: on a tag vX.Y.Z it is X.Y.Z, N
# commits after it X.Y.Z+gitN; with no tag yet it is BASE~gitN (N commits
# in all), which sorts before the first release BASE as dpkg compares
# versions. The commit is the short hash, with -dirty for an edited tree.
# Outside a git checkout both are "unknown" under BASE.
set -eu
BASE=0.1.0
cd "$(dirname "$0")/.."
if ! git rev-parse --git-dir >/dev/null 2>&1; then
	echo "$BASE~unknown unknown"
	exit 0
fi
commit=$(git rev-parse --short=7 HEAD)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	commit=$commit-dirty
fi
if d=$(git describe --tags --match 'v[0-9]*' --long 2>/dev/null); then
	# v1.2.3-N-gHASH
	tag=${d%-*}
	n=${tag##*-}
	tag=${tag%-*}
	number=${tag#v}
	[ "$n" = 0 ] || number=$number+git$n
else
	number=$BASE~git$(git rev-list --count HEAD)
fi
echo "$number $commit"
