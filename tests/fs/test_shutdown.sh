#!/bin/bash
# SPDX-License-Identifier: MIT
# A clean shutdown is quiet (issue 10, item 4): a tree holding the bootstrap
# example, 10,000 store keys across services, configuration and
# registrations is unmounted with fusermount3 -u and, mounted again, with
# SIGTERM; from the unmount on, the daemon logs a few lines, not one per
# key, service or registration.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
EXAMPLE=$HERE/../../contrib/example.ini
[[ -r $EXAMPLE ]] || mfs_bail "the bootstrap example $EXAMPLE is missing"
MAX_LINES=10

sleep 1000 &
holder=$!
MFS_CHILDREN+=("$holder")

# Fills the mounted tree: services with plugins and keys, registrations.
fill()
{
	local s k i
	for s in 1 2 3 4; do
		mkdir "$MNT/services/s$s" "$MNT/services/s$s/plugins/ttl" \
			"$MNT/services/s$s/plugins/trace" || fail "mkdir services/s$s"
		echo 600 >"$MNT/services/s$s/config/ttl/seconds"
		for ((k = 0; k < 2450; k++)); do
			echo "v$k" >"$MNT/services/s$s/store/k$k"
		done
	done
	for ((k = 0; k < 200; k++)); do
		echo "v$k" >"$MNT/services/sessions/store/k$k"
	done
	mkdir "$MNT/registry/pool" || fail "mkdir registry/pool"
	echo "$holder in pool" >"$MNT/registry/pool/$holder" || fail "pool entry"
	for ((i = 0; i < 300; i++)); do
		echo "$holder name $i" >"$MNT/registry/name$i"
	done
	mkdir "$MNT/config/app" || fail "mkdir config/app"
	for ((k = 0; k < 100; k++)); do
		echo "v$k" >"$MNT/config/app/k$k"
	done
	local n
	n=$(($(find "$MNT/services" -path '*/store/*' -type f | wc -l)))
	assert_eq "the tree holds 10,000 store keys" 10000 "$n"
	assert_eq "and 300 registrations" 300 "$(ls "$MNT/registry" | grep -c '^name')"
}

# quiet WHAT MARK: the log has at most MAX_LINES lines past line MARK.
quiet()
{
	local what=$1 mark=$2 n
	n=$(($(wc -l <"$MFS_LOG") - mark))
	if ((n <= MAX_LINES)); then
		pass "$what: $n lines logged from the unmount on (at most $MAX_LINES)"
	else
		fail "$what: $n lines logged from the unmount on (at most $MAX_LINES)" \
			"$(tail -n "+$((mark + 1))" "$MFS_LOG" | sed 's/[0-9][0-9]*/N/g' |
				sort | uniq -c | sort -rn | head -n 10)"
	fi
}

mfs_mount --config="$EXAMPLE"
fill
mark=$(wc -l <"$MFS_LOG")
mfs_unmount
quiet "fusermount3 -u" "$mark"

mfs_mount --config="$EXAMPLE"
fill
mark=$(wc -l <"$MFS_LOG")
mfs_signal_unmount TERM
quiet "SIGTERM" "$mark"

mfs_done
