#!/bin/bash
# SPDX-License-Identifier: MIT
# A bounded race stress test (DESIGN.md, "Threads, locks, notifications"):
# for 20 seconds, several processes at once create, read, write and remove
# services, store keys, plugins, configuration keys (of a service and
# node-wide) and registrations of short-lived processes, while readers read
# the derived files (status, config.ini, chain) of the very services another
# process removes, and inotify and `events` watchers follow it all. Each
# worker stops by itself, at the deadline or after RACE_ROUNDS rounds.
# Passes when the daemon survives, still answers, has no sanitizer or crash
# output in its log and unmounts with exit status 0.
#
# MFS_RACE_SECONDS and MFS_RACE_ROUNDS change the bounds when run by hand.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RACE_SECONDS=${MFS_RACE_SECONDS:-20}
RACE_ROUNDS=${MFS_RACE_ROUNDS:-100000}
# How long after the deadline a worker may take to finish its last round.
RACE_GRACE=15

mfs_need inotifywait inotify-tools

BOOT=$MFS_TMP/boot.ini
cat >"$BOOT" <<'EOF'
[services.keep]
plugins = trace, metrics, limits
EOF

mfs_mount --config="$BOOT"
SV=$MNT/services
K=$SV/keep
CHURN=(s0 s1 s2)

# -- the workers: each body does one round; errors are expected (a service
# removed under a reader gives ENOENT) and ignored, only the daemon counts.

# Creates a churned service, fills it a little, removes it.
w_services()
{
	local s=$SV/${CHURN[$(($1 % 3))]}
	mkdir "$s"
	echo "$1" >"$s/store/k"
	mkdir "$s/plugins/trace"
	echo 5 >"$s/config/trace/lines"
	rmdir "$s"
}

# Removes (and brings back) the services the readers are reading.
w_rmdir()
{
	local s=$SV/${CHURN[$((($1 + 1) % 3))]}
	rmdir "$s"
	mkdir "$s"
	rmdir "$s"
}

# Reads the derived files of the churned services: the read builtin (no
# fork, so many rounds), and every fourth round cat, stat and ls.
w_reader()
{
	local s x
	for s in "${CHURN[@]}"; do
		s=$SV/$s
		read -r -d '' x <"$s/status"
		read -r -d '' x <"$s/config.ini"
		read -r -d '' x <"$s/chain"
		if (($1 % 4 == 0)); then
			cat "$s/status" "$s/config.ini" "$s/chain"
			stat "$s/status" "$s/chain" "$s/config.ini"
			ls "$s" "$s/store" "$s/plugins" "$s/config"
		fi
	done
}

# Store keys of the long-lived service and of a churned one: put, append,
# get, rename, truncate, delete.
w_store()
{
	local r=$1 d x
	for d in "$K/store" "$SV/s0/store"; do
		echo "$r" >"$d/k$((r % 8))"
		echo more >>"$d/k$((r % 8))"
		read -r -d '' x <"$d/k$((r % 8))"
		if ((r % 4 == 0)); then
			mv "$d/k$((r % 8))" "$d/m$((r % 4))"
			truncate -s 1 "$d/m$((r % 4))"
			cat "$d/m$((r % 4))"
		fi
		rm -f "$d/k$(((r + 3) % 8))"
	done
}

# Plugins come and go, in the long-lived service and in a churned one.
w_plugins()
{
	local s x
	for s in "$K" "$SV/s1"; do
		mkdir "$s/plugins/ttl" "$s/plugins/exec"
		read -r -d '' x <"$s/chain"
		rmdir "$s/plugins/exec" "$s/plugins/ttl"
	done
	rmdir "$K/plugins/limits"
	read -r -d '' x <"$K/metrics"
	mkdir "$K/plugins/limits"
}

# Reconfigurations (one key, config.ini, sections), status changes, and
# the node-wide configuration.
w_config()
{
	local r=$1 sec=$K/config/sec$(($1 % 3)) app=$MNT/config/app$(($1 % 2))
	echo $((r % 50 + 10)) >"$K/config/limits/max_keys"
	printf '[app]\nround = %d\n' "$r" >"$K/config.ini"
	mkdir "$sec"
	echo "$r" >"$sec/k"
	rm "$sec/k"
	rmdir "$sec"
	echo pause >"$SV/s2/status"
	echo active >"$SV/s2/status"
	mkdir "$app"
	echo "$r" >"$app/k"
	mv "$app/k" "$app/k2"
	rm "$app/k2"
	rmdir "$app"
}

# Registrations and pool members of processes that live 0.2 s: their
# entries go by themselves, or by rm.
w_registry()
{
	local r=$1 p x name=$MNT/registry/n$(($1 % 4)) pool=$MNT/registry/pool$(($1 % 2))
	sleep 0.2 &
	p=$!
	echo "$p v$r" >"$name"
	read -r -d '' x <"$name"
	if ((r % 2)); then
		rm -f "$name"
	fi
	mkdir "$pool"
	echo "v$r" >"$pool/$p"
	ls "$pool"
	rm -f "$pool/$p"
	rmdir "$pool"
	if ((r % 16 == 15)); then
		wait
	fi
}

# race_worker NAME BODY: BODY's rounds, their count in $MFS_TMP/NAME.rounds.
race_worker()
{
	mfs_rounds "$RACE_ROUNDS" "$RACE_END" "$2" >"$MFS_TMP/$1.rounds"
}

WORKERS=(services:w_services rmdir:w_rmdir reader1:w_reader reader2:w_reader
	store:w_store plugins:w_plugins config:w_config registry:w_registry)

assert_ok mkdir "$SV/s0" "$SV/s1" "$SV/s2"
# (Not under timeout(1): killing it would leave its child behind, holding
# the mount busy.)
mfs_spawn WATCH inotifywait -q -m -r "$SV" "$MNT/registry" "$MNT/config"
mfs_spawn FEED cat "$MNT/events"

RACE_END=$((EPOCHSECONDS + RACE_SECONDS))
declare -A PIDS
for w in "${WORKERS[@]}"; do
	mfs_spawn "PIDS[${w%%:*}]" race_worker "${w%%:*}" "${w#*:}"
done
echo "# ${#WORKERS[@]} workers for ${RACE_SECONDS}s (at most $RACE_ROUNDS rounds each)"

# race_abort WHAT: the daemon crashed or hangs: report with its log and its
# threads (after up to 5 s for it to finish dying), and stop here, touching the mount no more (the EXIT trap aborts
# the connection).
race_abort()
{
	# A crashing daemon may still be writing its sanitizer report.
	mfs_poll 5000 eval '! mfs_alive "$MFS_PID"'
	fail "$1"
	mfs_dump_log
	mfs_dump_threads "$MFS_PID"
	exit 1
}

# The storm: stop at the first sign of a crash.
while ((EPOCHSECONDS < RACE_END)) && mfs_healthy "$MFS_PID"; do
	sleep 0.2
done
if ! mfs_healthy "$MFS_PID"; then
	race_abort "the daemon survives the storm (it crashed after $((RACE_SECONDS - RACE_END + EPOCHSECONDS))s)"
fi
pass "the daemon survives ${RACE_SECONDS}s of concurrent changes"

# Every worker stops by itself (a worker still running is blocked in the mount).
for w in "${WORKERS[@]}"; do
	name=${w%%:*}
	pid=${PIDS[$name]}
	if mfs_poll $(((RACE_END + RACE_GRACE - EPOCHSECONDS) * 1000)) eval "! mfs_alive $pid"; then
		wait "$pid"
		rounds=$(cat "$MFS_TMP/$name.rounds" 2>/dev/null)
		if [[ $rounds =~ ^[1-9][0-9]*$ ]]; then
			pass "worker $name stops by itself, after $rounds rounds"
		else
			fail "worker $name stops by itself, after at least one round" \
				"rounds: $(mfs_show "$rounds")"
		fi
	else
		fail "worker $name stops by itself" \
			"still running ${RACE_GRACE}s after the deadline: blocked in the mount?" \
			"$(ps -o pid=,stat=,wchan:32=,args= --ppid "$pid" 2>&1)"
	fi
done
mfs_healthy "$MFS_PID" || race_abort "the daemon survives the end of the storm"

failed=$MFS_FAILED
assert_responsive "$K/status" 5
((MFS_FAILED == failed)) || race_abort "the daemon hangs"
mfs_kill_child "$WATCH"
mfs_kill_child "$FEED"

# What is left is consistent and still works.
for s in "${CHURN[@]}"; do
	if [[ -d $SV/$s ]]; then
		assert_ok rmdir "$SV/$s"
	fi
done
assert_ls "$SV" keep
# (limits came back on top of the chain.)
assert_eq "keep's chain holds what it held" $'base\nlimits\nmetrics\ntrace' \
	"$(LC_ALL=C sort "$K/chain")"
assert_ok bash -c "echo final > '$K/store/final'"
assert_file "$K/store/final" $'final\n'
assert_ok mkdir "$SV/after"
assert_file "$SV/after/chain" $'base\n'
assert_ok rmdir "$SV/after"

mfs_unmount
mfs_done
