#!/bin/bash
# SPDX-License-Identifier: MIT
# Timers that scale with services (issue 12, item 5): the ttl and persist
# plugins run their timers on the daemon's one timer loop, not on a thread
# per plugin instance. 1,000 services, each with ttl and persist, bootstrap
# from a config file and take a write each; the daemon runs on at most
# MAX_THREADS threads meanwhile (one thread per instance made 2,000), keys
# still expire on time and every store is still saved, at each change and
# at unmount.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=1000
MAX_THREADS=40
# Starting and stopping 1,000 services (a file created and fsync'd for
# each) takes seconds under the sanitizers, more than lib.sh's 10.
mfs_mount_timeout()
{
	echo 60
}
mfs_exit_timeout()
{
	echo 60
}
STORES=$MFS_TMP/stores
mkdir "$STORES" || mfs_bail "mkdir $STORES"

# Services s0 .. s(N-1): ttl keeps keys 600 s, but in s0 .. s9 one second.
INI=$MFS_TMP/services.ini
for ((i = 0; i < N; i++)); do
	printf '[services.s%d]\nplugins = ttl, persist\n' "$i"
	printf '[services.s%d.ttl]\nseconds = %d\n' "$i" $((i < 10 ? 1 : 600))
	printf '[services.s%d.persist]\npath = %s/s%d.store\n' "$i" "$STORES" "$i"
done >"$INI"

# threads WHAT: the daemon's threads now are at most MAX_THREADS.
threads()
{
	local n
	n=$(ls "/proc/$MFS_PID/task" | wc -l)
	if ((n > 0 && n <= MAX_THREADS)); then
		pass "$1: the daemon runs $n threads (at most $MAX_THREADS)"
	else
		fail "$1: the daemon runs $n threads (at most $MAX_THREADS)" \
			"$(cat /proc/"$MFS_PID"/task/*/comm 2>/dev/null | sort | uniq -c | sort -rn |
				head -n 5)"
	fi
}

mfs_need sqlite3

# row_is DB KEY VALUE: the database's row of KEY holds VALUE.
row_is()
{
	[[ $(sqlite3 "$1" "select value from store where key = '$2'" 2>/dev/null) == "$3" ]]
}

# value DB KEY: the value the database holds for KEY, "" when none.
value()
{
	sqlite3 "$1" "select value from store where key = '$2'" 2>/dev/null
}

# PENDING: the databases not yet seen holding their key k; saved_all drops
# those that now do (one sqlite3 each) and succeeds when none is left.
PENDING=()
saved_all()
{
	local db left=()
	for db in "${PENDING[@]}"; do
		[[ $(value "$db" k) == v* ]] || left+=("$db")
	done
	PENDING=("${left[@]}")
	((${#PENDING[@]} == 0))
}

mfs_mount --config="$INI"
assert_eq "$N services are running" "$N" \
	"$(grep -l '^state: running' "$MNT"/services/s*/status | wc -l)"
assert_eq "each has created its store file" "$N" "$(ls "$STORES" | grep -c '\.store$')"
threads "$N services with ttl and persist"

# A write in every service arms both its timers: ttl's expiry, persist's
# coalesced save.
for ((i = 0; i < N; i++)); do
	echo "v$i" >"$MNT/services/s$i/store/k" || fail "write s$i/store/k"
done
threads "right after a write in each"
# (s0 .. s9's keys may be gone again by then.)
kept=()
for ((i = 10; i < N; i++)); do
	kept+=("$STORES/s$i.store")
done
PENDING=("${kept[@]}")
assert_true "every store is saved with its key" mfs_poll 20000 saved_all
threads "once they are saved"

# Expiry and saving behave as they did with threads of their own.
assert_true "s0's key expires after its second" mfs_poll 5000 test ! -e "$MNT/services/s0/store/k"
assert_true "and s9's" mfs_poll 5000 test ! -e "$MNT/services/s9/store/k"
assert_exists "$MNT/services/s10/store/k"
assert_true "s0's expiry is saved" mfs_poll 5000 row_is "$STORES/s0.store" k ""
echo later >"$MNT/services/s500/store/late"
assert_true "a later write is saved" mfs_poll 5000 row_is "$STORES/s500.store" late later
threads "after expiries"

# The last change of each is written at unmount.
for ((i = 10; i < N; i += 10)); do
	echo "last$i" >"$MNT/services/s$i/store/last" || fail "write s$i/store/last"
done
mfs_unmount
missing=0
for ((i = 10; i < N; i += 10)); do
	grep -q -a "last$i" "$STORES/s$i.store" || missing=$((missing + 1))
done
assert_eq "the stores written just before the unmount are saved" 0 "$missing"

mfs_done
