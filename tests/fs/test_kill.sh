#!/bin/bash
# SPDX-License-Identifier: MIT
# kill -9 in the middle of a burst (SPEC.md "The command", DESIGN.md
# "Threads, locks, notifications"): 20 times, the daemon is mounted and a
# burst of changes starts of which the daemon itself must tell the kernel,
# so that its notifier is busy echoing them through the mount: config keys
# and config.ini writes (config.ini, status, chain and trace change), status
# changes, plugins added and removed, registrations of processes that exit
# at once, keys a ttl plugin expires after 1 s, with inotifywait watchers on
# the folders and an events reader. In the middle of it the daemon gets
# SIGKILL. Within 2 s it must be gone, and then the mount must be gone or
# `fusermount3 -u` must clear it, with no process left blocked (state D) on
# it. A daemon thread blocked in a request on its own mount would keep the
# killed daemon from ever closing /dev/fuse, and the mount would hang for
# good: the test then shows where each thread waits, aborts the connection
# and goes on with the next round.
#
# The test never blocks on the mount once the daemon is killed: everything
# after that runs in the background with a deadline (mfs_bounded).
# MFS_KILL_ROUNDS changes the number of rounds when run by hand.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KILL_ROUNDS=${MFS_KILL_ROUNDS:-20}
# The burst's bounds: rounds per worker, and seconds.
BURST_ROUNDS=400
BURST_SECONDS=4
# Seconds a round may need at worst (a hang: 2 s, unmount, D-state check,
# abort): no round starts with less than this left of the test's budget.
ROUND_WORST=25

mfs_need inotifywait inotify-tools

BOOT=$MFS_TMP/boot.ini
cat >"$BOOT" <<'EOF'
[services.api]
plugins = trace, metrics, limits

[services.sess]
plugins = ttl

[services.sess.ttl]
seconds = 1
EOF

# -- the burst: each body does one round; errors are ignored -----------------

b_config()
{
	local r=$1
	echo $((r % 90 + 10)) >"$A/config/limits/max_keys"
	echo $((r % 50 + 10)) >"$A/config/trace/lines"
	printf '[app]\nround = %d\n' "$r" >"$A/config.ini"
	if ((r % 2)); then
		echo pause >"$A/status"
	else
		echo active >"$A/status"
	fi
}

b_plugins()
{
	mkdir "$A/plugins/ttl" "$A/plugins/exec"
	rmdir "$A/plugins/exec" "$A/plugins/ttl"
}

# Registrations and pool members of processes that exit at once: the
# notifier removes their entries through the mount.
b_registry()
{
	local r=$1 p
	sleep 0.05 &
	p=$!
	echo "$p" >"$MNT/registry/n$((r % 8))"
	echo "v$r" >"$MNT/registry/pool/$p"
	if ((r % 8 == 7)); then
		wait
	fi
}

# Keys the ttl plugin expires a second later, through the mount.
b_store()
{
	local r=$1
	echo "$r" >"$S/store/n$((r % 40))"
	echo "$r" >"$A/store/k$((r % 8))"
}

# True when none of the PIDs lives.
all_dead()
{
	local p
	for p in "$@"; do
		if mfs_alive "$p"; then
			return 1
		fi
	done
}

# Our processes (the test's descendants, threads included) in state D, as
# "pid/tid state wchan command" lines.
kill_blocked()
{
	ps -e -L -o pid=,tid=,ppid=,stat=,wchan:32=,args= 2>/dev/null | awk -v root=$$ '
		{ parent[$1] = $3; line[$1 "/" $2] = $0; state[$1 "/" $2] = $4 }
		END {
			for (t in line) {
				split(t, id, "/")
				if (state[t] !~ /^D/) continue
				for (p = id[1]; p != "" && p > 1; p = parent[p])
					if (p == root) { print line[t]; break }
			}
		}'
}

HUNG=0
ROUNDS_RUN=0
EVENTS_SEEN=0
for round in $(seq 1 "$KILL_ROUNDS"); do
	if (($(mfs_deadline) < ROUND_WORST)); then
		fail "$KILL_ROUNDS rounds within the test's time" \
			"only $ROUNDS_RUN rounds ran before the budget ran out"
		break
	fi
	ROUNDS_RUN=$round
	mfs_mount --config="$BOOT"
	# The daemon and every helper below are disowned: bash would print a
	# "Killed" line for each at the kill, 100 a run, burying the report.
	disown "$MFS_PID"
	A=$MNT/services/api
	S=$MNT/services/sess
	# Keys that expire during the burst, and a pool for the registry.
	for i in $(seq 1 30); do
		echo "$i" >"$S/store/seed$i"
	done
	mkdir "$MNT/registry/pool"

	WLOG=$MFS_TMP/watch$round.log
	inotifywait -m -e modify,close_write,create,delete,moved_from,moved_to \
		"$MNT/services" "$A" "$A/config/limits" "$A/config/trace" "$A/store" "$S/store" \
		"$MNT/registry" "$MNT/registry/pool" </dev/null >"$WLOG" 2>&1 &
	WATCH=$!
	MFS_CHILDREN+=("$WATCH")
	disown "$WATCH"
	if ! mfs_poll 5000 grep -q 'Watches established' "$WLOG"; then
		fail "round $round: inotifywait watches the mount" "$(head -n 5 "$WLOG")"
	fi
	cat "$MNT/events" >/dev/null 2>&1 </dev/null &
	FEED=$!
	MFS_CHILDREN+=("$FEED")
	disown "$FEED"

	BURST=()
	for body in b_config b_plugins b_registry b_store; do
		mfs_rounds "$BURST_ROUNDS" $((EPOCHSECONDS + BURST_SECONDS)) "$body" \
			</dev/null >/dev/null 2>&1 &
		BURST+=("$!")
		MFS_CHILDREN+=("$!")
		disown "$!"
	done
	# Long enough for the first ttl expiries (the seeds are 1 s old by then).
	delay=$((400 + RANDOM % 1400))
	sleep "$((delay / 1000)).$(printf '%03d' $((delay % 1000)))"
	if ! mfs_healthy "$MFS_PID"; then
		# (Not as fail() would: it cannot wait for a disowned daemon.)
		pid=$MFS_PID
		MFS_PID=''
		fail "round $round: the daemon lives until it is killed"
		mfs_dump_log
		MFS_PID=$pid
	fi
	events=$(grep -c -v -e '^Setting up watches' -e '^Watches established' "$WLOG")

	# The kill. From here on the test never waits on the mount.
	# The round handles the killed daemon itself (fail() would take it
	# for a crash).
	pid=$MFS_PID
	MFS_PID=''
	kill -9 "$pid"
	t0=$(mfs_now_ms)
	gone=1
	mfs_poll 2000 eval "! mfs_alive $pid" || gone=0
	t_gone=$(($(mfs_now_ms) - t0))
	# Its helpers go first: an open file of theirs would make the unmount
	# busy (one that does not die is blocked on the mount, reported below).
	mfs_kill_ours 9 "${BURST[@]}" "$WATCH" "$FEED"
	mfs_poll 2000 all_dead "${BURST[@]}" "$WATCH" "$FEED"
	# fusermount3 -u, tried again for 2 s while busy (a process still
	# finishing a call on the dead connection holds the mount a moment).
	unmount_err=''
	t1=$(mfs_now_ms)
	while mfs_mounted "$MNT" && (($(mfs_now_ms) - t1 < 2000)); do
		if mfs_bounded 2 fusermount3 -u "$MNT" >"$MFS_TMP/fusermount.out" 2>&1; then
			break
		fi
		unmount_err=$(cat "$MFS_TMP/fusermount.out")
		sleep 0.1
	done
	unmounted=1
	mfs_poll 500 eval '! mfs_mounted "$MNT"' || unmounted=0
	blocked=''
	if ! mfs_poll 2000 eval '[[ -z $(kill_blocked) ]]'; then
		blocked=$(kill_blocked)
	fi

	what="round $round: kill -9 ${delay} ms into the burst ($events watcher events)"
	if ((gone && unmounted)) && [[ -z $blocked ]]; then
		pass "$what: the daemon is gone in $t_gone ms, the mount is cleared"
	else
		HUNG=$((HUNG + 1))
		details=()
		((gone)) || details+=("the daemon is not gone 2 s after kill -9")
		((unmounted)) || details+=("the mount is still there after fusermount3 -u: ${unmount_err:-?}")
		[[ -z $blocked ]] || details+=("processes blocked on it (state D):" "$blocked")
		fail "$what: the daemon is gone within 2 s, and the mount with it" "${details[@]}"
		if ! ((gone)); then
			mfs_dump_threads "$pid"
		fi
		# Free everything, as the EXIT trap would.
		mfs_abort_conn "$MNT"
		fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
		if ! mfs_poll 5000 eval "! mfs_alive $pid"; then
			fail "round $round: the daemon dies once its connection is aborted"
			mfs_dump_threads "$pid"
		fi
	fi
	if ! mfs_alive "$pid"; then
		wait "$pid" 2>/dev/null
	fi
	for p in "${BURST[@]}" "$WATCH" "$FEED"; do
		mfs_alive "$p" || wait "$p" 2>/dev/null
	done
	mfs_watchdog_stop
	((events > 0)) || fail "round $round: the watchers saw the burst (no event before the kill)"
	EVENTS_SEEN=$((EVENTS_SEEN + events))
	if grep -q -E -- "$MFS_BAD_OUTPUT" "$MFS_LOG"; then
		fail "round $round: no sanitizer or crash output in the daemon log"
		mfs_dump_log
	fi
done

echo "# $HUNG of $ROUNDS_RUN rounds left a killed daemon or its mount hanging;" \
	"the watchers saw $EVENTS_SEEN events"
mfs_done
