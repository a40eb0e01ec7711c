#!/bin/bash
# SPDX-License-Identifier: MIT
# A slow hook stalls its own service only (issue 10, item 3): while an exec
# hook of service A sleeps, holding A's reconfiguration lock, and more than
# twice max_threads requests wait behind it (config key writes, config.ini,
# status, plugins mkdir and rmdir, a config section), every other service,
# the registry and the node configuration answer at full speed: store reads
# and writes, reconfigurations and status reads of B, registrations, node
# config writes and listings each take well under a second (the median of
# several rounds is checked), and inotify watchers of B get B's changes
# promptly, even while an echo of A's own changes would wait for A. Once
# the hook returns, every waiting request of A completes, in
# order and correctly. Then the same again with `rmdir services/A` queued
# behind A's waiting requests, and with the daemon stopped (SIGTERM) while
# requests wait, A's queue filled to its bound (16 MiB of written data)
# first: the writes past it get EBUSY at once, those behind the rmdir get
# ENOENT (A is gone), those queued at SIGTERM ENOTCONN, and the daemon exits
# cleanly, leaking nothing.
#
# The hook waits for a gate file the test creates, so the test decides how
# long it sleeps; a timer opens the gate anyway after GATE_SECS, so that a
# daemon that does stall (today's main did: every worker thread waited for
# A) fails the checks instead of hanging the test.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ -z ${WATCHPROBE:-} || ! -x $WATCHPROBE ]]; then
	mfs_bail "WATCHPROBE=${WATCHPROBE:-} is not an executable file"
fi

THREADS=8
WRITERS=$((2 * THREADS + 4))
ROUNDS=5
# Only a daemon that stalls waits for the timer; under sanitizers on a busy
# machine a part of the test may take a while before it opens the gate.
GATE_SECS=40
# A median over LIMIT_MS, or one round over MAX_MS, is a stall: B's requests
# were never meant to wait for A. (Each takes a few milliseconds, under
# sanitizers too; MAX_MS leaves room for a loaded machine.)
LIMIT_MS=200
MAX_MS=1500
SCALE=1
if mfs_wrapper; then
	SCALE=10
fi
LIMIT_MS=$((LIMIT_MS * SCALE))
MAX_MS=$((MAX_MS * SCALE))

mfs_require
mfs_mount -o max_threads=$THREADS
A=$MNT/services/A
B=$MNT/services/B

# -- helpers ---------------------------------------------------------------------

# now_us: microseconds, without a fork.
now_us()
{
	local t=${EPOCHREALTIME/./}
	printf '%s' "$((10#$t))"
}

# median NUMBERS...
median()
{
	printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"
}

# timed WHAT CMD...: runs CMD ROUNDS times (CMD gets the round number as
# its last argument), checks that each run succeeds, that the median time
# is under LIMIT_MS and the longest under MAX_MS.
timed()
{
	local what=$1 i t0 t1 rc bad=''
	shift
	local -a ms=()
	for ((i = 0; i < ROUNDS; i++)); do
		t0=$(now_us)
		"$@" "$i" >/dev/null 2>"$MFS_TMP/timed.err"
		rc=$?
		t1=$(now_us)
		ms+=($(((t1 - t0) / 1000)))
		if ((rc != 0)); then
			bad="round $i: exit status $rc: $(cat "$MFS_TMP/timed.err")"
		fi
	done
	local med max
	med=$(median "${ms[@]}")
	max=$(printf '%s\n' "${ms[@]}" | sort -n | tail -n 1)
	if [[ -z $bad ]] && ((med < LIMIT_MS && max < MAX_MS)); then
		pass "$what while A's hook sleeps: median ${med} ms, longest ${max} ms"
	else
		fail "$what while A's hook sleeps: median under $LIMIT_MS ms, none over $MAX_MS ms" \
			"each round (ms): ${ms[*]}" ${bad:+"$bad"}
	fi
}

b_store_write() { echo "v$1" >"$B/store/k"; }
b_store_read() { local v; read -r v <"$B/store/k" && [[ $v == v* ]]; }
b_reconfigure() { echo "r$1" >"$B/config/app/key"; }
b_config_read() { local v; read -r v <"$B/config/app/key" && [[ $v == r* ]]; }
b_status() { local v; read -r v <"$B/status" && [[ $v == "state: running" ]]; }
b_plugin() { mkdir "$B/plugins/metrics" && rmdir "$B/plugins/metrics"; }
reg_write() { echo "$SLEEPER r$1" >"$MNT/registry/slow$1"; }
reg_read() { local v; read -r v <"$MNT/registry/slow$1" && [[ $v == "$SLEEPER r$1" ]]; }
reg_remove() { rm "$MNT/registry/slow$1"; }
node_write() { echo "n$1" >"$MNT/config/app/key"; }
node_read() { local v; read -r v <"$MNT/config/app/key" && [[ $v == n* ]]; }
list_services() { ls "$MNT/services" | grep -qx B; }

# hook_for GATE STARTED: the on_update hook: says it started, then waits
# for the gate.
hook_for()
{
	printf 'touch %q; while [ ! -e %q ]; do sleep 0.02; done' "$2" "$1"
}

# setup_a: service A with exec (on_update waits for $GATE), limits, and a
# section app; the gate is closed.
setup_a()
{
	GATE=$MFS_TMP/gate.$1
	STARTED=$MFS_TMP/started.$1
	assert_ok mkdir "$A"
	assert_ok mkdir "$A/plugins/exec"
	assert_ok mkdir "$A/plugins/limits"
	assert_ok mkdir "$A/config/app"
	assert_ok sh -c "echo 60000 > '$A/config/exec/timeout_ms'"
	assert_ok sh -c "echo 1000 > '$A/config/limits/max_value_bytes'"
	assert_ok sh -c "echo '$(hook_for "$GATE" "$STARTED")' > '$A/config/exec/on_update'"
	mfs_spawn OPENER sh -c "sleep $GATE_SECS; touch '$GATE'"
}

# open_gate: the hook returns (the timer, left to the cleanup, finds the
# gate open).
open_gate()
{
	touch "$GATE"
}

# block_a: starts the first writer (its hook starts and waits) and then
# WRITERS more requests of every kind that waits for A's plugins; each
# records its exit status in $MFS_TMP/rc.NAME.
block_a()
{
	local i
	rm -f "$MFS_TMP"/rc.*
	spawn_rc first bash -c "echo first > '$A/config/app/first'"
	mfs_poll 5000 test -e "$STARTED" || fail "A's on_update hook starts"
	for ((i = 0; i < WRITERS; i++)); do
		spawn_rc "k$i" bash -c "echo v$i > '$A/config/app/k$i'"
	done
	spawn_rc ini bash -c "printf '[app]\nini = yes\n' > '$A/config.ini'"
	spawn_rc status bash -c "echo pause > '$A/status'"
	spawn_rc mkdir_trace mkdir "$A/plugins/trace"
	spawn_rc rmdir_limits rmdir "$A/plugins/limits"
	spawn_rc mkdir_sec mkdir "$A/config/sec"
	# Every one of them reaches the daemon and waits there.
	sleep 0.5
}

# spawn_rc NAME CMD...: CMD in the background, its status to rc.NAME.
spawn_rc()
{
	local name=$1 pid
	shift
	(
		"$@" 2>"$MFS_TMP/err.$name"
		echo $? >"$MFS_TMP/rc.$name"
	) </dev/null >/dev/null &
	pid=$!
	MFS_CHILDREN+=("$pid")
	WAITERS+=("$name")
}

# waiting: how many of the spawned requests have not ended yet.
waiting()
{
	local n=0 name
	for name in "${WAITERS[@]}"; do
		[[ -e $MFS_TMP/rc.$name ]] || n=$((n + 1))
	done
	echo "$n"
}

# all_done SECS: waits for every spawned request to end.
all_done()
{
	mfs_poll $(($1 * 1000)) eval '(($(waiting) == 0))'
}

# rc_of NAME
rc_of()
{
	cat "$MFS_TMP/rc.$1" 2>/dev/null
}

# -- B, the registry and the node configuration, at rest --------------------------

mfs_spawn SLEEPER sleep 600
assert_ok mkdir "$B"
assert_ok mkdir "$B/config/app"
assert_ok sh -c "echo r > '$B/config/app/key'"
assert_ok sh -c "echo v > '$B/store/k'"
assert_ok mkdir "$MNT/config/app"

# -- A's hook sleeps with 2 x max_threads requests waiting behind it --------------

WAITERS=()
setup_a 1
block_a
n=$(waiting)
if ((n == ${#WAITERS[@]})); then
	pass "$n requests wait for A's hook (max_threads=$THREADS)"
else
	fail "every request of A waits for A's hook" "$n of ${#WAITERS[@]} still wait"
fi

timed "B: echo > store/k" b_store_write
timed "B: read store/k" b_store_read
timed "B: echo > config/app/key (a reconfiguration)" b_reconfigure
timed "B: read config/app/key" b_config_read
timed "B: read status" b_status
timed "B: mkdir and rmdir plugins/metrics" b_plugin
timed "registry: register a name" reg_write
timed "registry: read a name" reg_read
timed "registry: rm a name" reg_remove
timed "config/: echo > config/app/key" node_write
timed "config/: read config/app/key" node_read
timed "ls services" list_services

# A's status changes while its hook sleeps (limits refuses a value: a new
# last_error). The notifier's echo of it would wait in the kernel for the
# lock of A/status, held by the `echo pause` waiting in A's queue, and B's
# echoes behind it: it waits for A's queue to empty instead.
head -c 2000 /dev/zero >"$A/store/big" 2>/dev/null
assert_match "A: limits refused a value while the hook sleeps" "max_value_bytes" \
	"$(sed -n 5p "$A/status")"

# inotify on B: a change made through config.ini reaches watchers of the
# key's folder (an echo of the notifier, which needs the daemon's threads).
out=$("$WATCHPROBE" inotify -c -T -t 5000 300 "$B/config/app" -- \
	sh -c "printf '[app]\nkey = ino\n' > '$B/config.ini'" 2>&1)
ms=$(awk '$3 == "MODIFY" && $4 == "key" { print $1; exit }' <<<"$out")
if [[ -n $ms ]] && ((ms < LIMIT_MS)); then
	pass "inotify on B: MODIFY of config/app/key after ${ms} ms (< $LIMIT_MS ms)"
else
	fail "inotify on B: MODIFY of config/app/key within $LIMIT_MS ms" "$out"
fi

n=$(waiting)
if ((n == ${#WAITERS[@]})); then
	pass "A's requests still wait for the hook after B's checks"
else
	fail "A's requests still wait for the hook after B's checks (did the gate open early?)" \
		"$n of ${#WAITERS[@]} still wait"
fi

# The hook returns: every request of A completes, correctly.
open_gate
if all_done 30; then
	pass "every request of A completes once the hook returns"
else
	fail "every request of A completes once the hook returns" "$(waiting) still wait"
fi
bad=''
for name in "${WAITERS[@]}"; do
	rc=$(rc_of "$name")
	[[ $rc == 0 ]] || bad+="$name: status ${rc:-none}: $(cat "$MFS_TMP/err.$name" 2>/dev/null)"$'\n'
done
assert_eq "every request of A succeeded" "" "$bad"
bad=''
for ((i = 0; i < WRITERS; i++)); do
	v=$(cat "$A/config/app/k$i" 2>&1)
	[[ $v == "v$i" ]] || bad+="k$i: $v"$'\n'
done
assert_eq "A: config/app/kN holds vN for every writer" "" "$bad"
assert_eq "A: config/app/first" first "$(cat "$A/config/app/first" 2>&1)"
assert_eq "A: config/app/ini (written through config.ini)" yes "$(cat "$A/config/app/ini" 2>&1)"
assert_eq "A: the chain (trace added, limits removed)" $'trace\nexec\nbase' "$(cat "$A/chain" 2>&1)"
assert_eq "A: admin pause" "admin: pause" "$(sed -n 2p "$A/status" 2>&1)"
assert_true "A: config/sec exists" test -d "$A/config/sec"

# -- rmdir services/A queued behind A's waiting requests -------------------------

assert_ok rmdir "$A"
WAITERS=()
setup_a 2
block_a
spawn_rc rmdir_a rmdir "$A"
sleep 0.2
spawn_rc after bash -c "echo late > '$A/config/app/after'"
sleep 0.2
timed "B: echo > config/app/key (with rmdir services/A waiting)" b_reconfigure
open_gate
if all_done 30; then
	pass "rmdir services/A and the requests around it complete"
else
	fail "rmdir services/A and the requests around it complete" "$(waiting) still wait"
fi
assert_eq "rmdir services/A succeeded" 0 "$(rc_of rmdir_a)"
assert_eq "the write queued before the rmdir succeeded" 0 "$(rc_of k0)"
assert_ne "the write queued after the rmdir failed" 0 "$(rc_of after)"
assert_true "services/A is gone" test ! -e "$A"
assert_eq "B still answers" r4 "$(cat "$B/config/app/key" 2>&1)"

# -- the daemon stopped while requests wait ---------------------------------------

WAITERS=()
setup_a 3
block_a

# The bound: a service's queue holds at most 16 MiB of written data. BIGS
# writes of 131000 bytes each (one write() each) fill it; those past it get
# EBUSY at once, with the reason in A's last_error.
BIGS=135
big=$(head -c 131000 /dev/zero | tr '\0' x)
for ((i = 0; i < BIGS; i++)); do
	(
		"$FSPROBE" write "$A/config/app/big$i" "$big" >"$MFS_TMP/out.big$i" 2>&1
	) </dev/null &
	MFS_CHILDREN+=("$!")
done
busy_count()
{
	grep -l -x EBUSY "$MFS_TMP"/out.big* 2>/dev/null | wc -l
}
mfs_poll 10000 eval '(($(busy_count) >= BIGS - 127))'
n=$(busy_count)
if ((n >= BIGS - 127 && n <= BIGS - 120)); then
	pass "a full queue: $n of $BIGS writes of 131000 bytes got EBUSY"
else
	fail "a full queue: the writes of 131000 bytes past 16 MiB get EBUSY" \
		"$n of $BIGS got EBUSY: $(cat "$MFS_TMP"/out.big* 2>/dev/null | sort | uniq -c)"
fi
assert_match "a full queue: the reason is A's last_error" \
	"last_error: .*requests \([0-9]+ bytes\) wait for the service's plugins already" \
	"$(sed -n 5p "$A/status")"
timed "B: echo > config/app/key (with A's queue full)" b_reconfigure
n=$(waiting)
if ((n == ${#WAITERS[@]})); then
	pass "A's requests still wait for the hook with A's queue full"
else
	fail "A's requests still wait for the hook with A's queue full (did the gate open early?)" \
		"$n of ${#WAITERS[@]} still wait"
fi

# The hook returns a moment after the signal: the daemon answers what is
# still queued with an error and exits.
kill -TERM "$MFS_PID"
sleep 0.3
open_gate
if all_done 30; then
	pass "SIGTERM: every waiting request of A ends"
else
	fail "SIGTERM: every waiting request of A ends" "$(waiting) still wait"
fi
mfs_wait_exit 0 "SIGTERM with requests waiting"
assert_eq "SIGTERM: the request under way when the daemon stopped succeeded" 0 "$(rc_of first)"
bad=''
for name in "${WAITERS[@]}"; do
	[[ $name == first ]] && continue
	# ENOTCONN from the daemon; ECONNABORTED from the kernel for one
	# the daemon had not read yet when it stopped reading.
	if [[ $(rc_of "$name") == 0 ]] ||
		! grep -q -e "$("$FSPROBE" strerror ENOTCONN)" \
			-e "$("$FSPROBE" strerror ECONNABORTED)" "$MFS_TMP/err.$name"; then
		bad+="$name: status $(rc_of "$name"): $(cat "$MFS_TMP/err.$name")"$'\n'
	fi
done
assert_eq "SIGTERM: every queued request got ENOTCONN (or ECONNABORTED)" "" "$bad"
assert_match "SIGTERM: the log tells of the refused requests" \
	"requests waiting for services' plugins are refused" "$(cat "$MFS_LOG")"

mfs_done
