#!/bin/bash
# SPDX-License-Identifier: MIT
# A large store (issue 12, items 1 and 3 for stores): 200,000 keys of 8-byte
# names and 12-byte values, loaded by persist, cost the daemon at most 120
# bytes of resident memory a key (83 on this table, about 204 on the one
# before issue 12; 120 is the issue's bound for everything a key costs).
# `ls -f` of the store returns every key exactly once, and listing N keys
# costs the daemon what listing N/10 keys ten times does (before issue 12
# every readdir call walked the table: several times as much). The memory
# bound is not checked on a sanitizer build (its allocator pads every
# block); the rest is.
#
# Environment, besides lib.sh's: STOREGEN, the storegen helper (required).

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -n ${STOREGEN:-} && -x $STOREGEN ]] || mfs_bail "STOREGEN is not set to the storegen helper"

N=200000
LAST=$(printf 'k%07d' $((N - 1)))
assert_ok "$STOREGEN" "$MFS_TMP/big.store" "$N"
assert_ok "$STOREGEN" "$MFS_TMP/empty.store" 0
assert_ok "$STOREGEN" "$MFS_TMP/small.store" "$((N / 10))"

# The daemon's resident memory in KiB.
rss_kb()
{
	awk '/^VmRSS:/ { print $2 }' "/proc/$MFS_PID/status"
}

# The daemon's CPU time (user and system) in clock ticks.
cpu_ticks()
{
	sed 's/.*) //' "/proc/$MFS_PID/stat" | awk '{ print $12 + $13 }'
}

# Waits (at most 10 s) until the daemon is idle: no CPU time over 200 ms,
# its notices of a load handed to the kernel.
settle()
{
	local t0 t1 i
	t1=$(cpu_ticks)
	for ((i = 0; i < 50; i++)); do
		t0=$t1
		sleep 0.2
		t1=$(cpu_ticks)
		((t1 == t0)) && return
	done
	fail "the daemon is idle within 10 s of a load"
}

# load NAME FILE: a service NAME whose persist loads FILE.
load()
{
	assert_ok mkdir "$MNT/services/$1"
	assert_ok mkdir "$MNT/services/$1/config/persist"
	assert_ok bash -c "echo '$2' > '$MNT/services/$1/config/persist/path'"
	assert_ok mkdir "$MNT/services/$1/plugins/persist"
	assert_file "$MNT/services/$1/store/k0000000" "twelve bytes"
}

# daemon_rss FILE: RSS becomes the resident memory (KiB) of a daemon whose
# bootstrap file has one service, s, whose persist loads FILE before the
# mount, once it is mounted and idle. It stays mounted.
daemon_rss()
{
	cat >"$MFS_TMP/boot.ini" <<EOT
[services.s]
plugins = persist
admin = active

[services.s.persist]
path = $1
EOT
	mfs_mount --config="$MFS_TMP/boot.ini"
	settle
	RSS=$(rss_kb)
}

# What a key keeps: a daemon that loaded N keys against one that loaded
# none, the same way (the file read whole and its records are given back).
daemon_rss "$MFS_TMP/empty.store"
empty=$RSS
mfs_unmount
daemon_rss "$MFS_TMP/big.store"
rss1=$RSS
S=$MNT/services/s
assert_file "$S/store/$LAST" "twelve bytes"
per_key=$(((rss1 - empty) * 1024 / N))
echo "# $N keys loaded: the daemon's RSS is $((rss1 - empty)) KiB more than with none, $per_key bytes a key"
if [[ -n $(mfs_sanitizer) ]]; then
	echo "# $MALLAFS is built with a sanitizer: its memory per key is not the daemon's"
else
	assert_true "daemon memory per key of a loaded store ($per_key B) is at most 120 B" \
		test "$per_key" -le 120
fi

# Every key once, nothing twice.
listing=$MFS_TMP/listing
assert_ok bash -c "ls -f '$S/store' > '$listing'"
assert_eq "ls -f of the store: entries" "$((N + 2))" "$(wc -l <"$listing")"
assert_eq "ls -f of the store: names listed twice" "" "$(sort "$listing" | uniq -d | head -n 3)"
assert_eq "ls -f of the store: the first and last keys" "2" \
	"$(grep -c -x -e k0000000 -e "$LAST" "$listing")"

# Linear: listing N keys costs what listing N/10 keys ten times does (before
# issue 12 every readdir call walked the table: ten times as much). Five
# rounds, for clock ticks to count.
load small "$MFS_TMP/small.store"
settle
cpu0=$(cpu_ticks)
for ((i = 0; i < 50; i++)); do
	ls -f "$MNT/services/small/store" >/dev/null
done
cpu1=$(cpu_ticks)
for ((i = 0; i < 5; i++)); do
	ls -f "$S/store" >/dev/null
done
cpu2=$(cpu_ticks)
small=$((cpu1 - cpu0)) big=$((cpu2 - cpu1))
echo "# CPU ticks: ls -f of $((N / 10)) keys 50 times $small, of $N keys 5 times $big"
assert_true "5 ls -f of $N keys ($big ticks) cost under twice 50 of $((N / 10)) keys ($small)" \
	test "$big" -lt "$((2 * small))"

mfs_unmount
mfs_done
