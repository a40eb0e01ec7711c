# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# The mount test harness, sourced by every tests/fs/test_*.sh.
#
# A test mounts mallafs for real on a mountpoint of its own (so tests can run
# in parallel), checks what it sees through system calls and the shell tools,
# and always unmounts: an EXIT trap unmounts whatever is still mounted (then
# aborts the FUSE connection and kills the daemon, then a lazy unmount), kills
# the helper processes the test started and removes its temporary folder. A
# watchdog does the same to a daemon that hangs, so that no test waits
# forever. Every daemon log is scanned for sanitizer, valgrind and crash
# output, and any hit fails the test; so does a daemon that dies, or exits
# with a status other than 0 when unmounted. A test never skips: without
# $MALLAFS, $FSPROBE or /dev/fuse it fails.
#
# Environment:
#   MALLAFS          the mallafs command (required)
#   FSPROBE          the fsprobe helper (required)
#   MALLAFS_WRAPPER  a command to run the daemon under, e.g.
#                    "valgrind --error-exitcode=99 --leak-check=full"
#                    (timeouts grow accordingly)
#   MFS_TIMEOUT      the test's meson timeout in seconds: the watchdog fires
#                    a little before it (see mfs_deadline)
#   MFS_KEEP_TMP=1   keep the temporary folder (daemon logs) for debugging
#
# Output: one line per check ("ok - ..." or "FAIL - ..." with details indented
# under it), then "N passed, N failed". Exit status 1 on any failure.

set -u
set -o pipefail

MFS_NAME=$(basename "$0" .sh)
MFS_PASSED=0
MFS_FAILED=0
MFS_FINISHED=0
MFS_SEQ=0
MFS_PID=''          # the running daemon (one mount at a time)
MFS_WATCHDOG=''     # kills a hung daemon so that no test waits forever
MFS_LOG=''
MNT=''
MFS_CHILDREN=()     # helper processes to kill on exit
MFS_TMP=''
MFS_CLEANUP_HOOKS=() # functions the cleanup calls first (tests/etcd/lib_etcd.sh)

# Suspicious daemon output: any hit fails the test.
MFS_BAD_OUTPUT='AddressSanitizer|LeakSanitizer|ThreadSanitizer|MemorySanitizer'
MFS_BAD_OUTPUT+='|UndefinedBehaviorSanitizer|runtime error:|Segmentation|SIGSEGV|SIGABRT|Assertion'
MFS_BAD_OUTPUT+='|ERROR SUMMARY: [1-9]|definitely lost: [1-9]|Invalid (read|write|free)'
MFS_BAD_OUTPUT+='|uninitialised|Mismatched free|Syscall param|Process terminating with'
# glibc's own heap checks and stack protector.
MFS_BAD_OUTPUT+='|malloc\(\)|free\(\)|double free|corrupted (size|double-linked)|unaligned tcache|stack smashing'

# -- reporting ---------------------------------------------------------------

# One line per check: a newline in a message (a file name may hold one)
# shows as \n.
pass()
{
	local msg="$*"
	MFS_PASSED=$((MFS_PASSED + 1))
	printf 'ok   - %s\n' "${msg//$'\n'/\\n}"
}

# fail MESSAGE [DETAIL...]: each detail goes on its own indented line. When
# the daemon has died, the test stops here: every later check would only
# report ENOTCONN.
fail()
{
	local msg=$1 d
	MFS_FAILED=$((MFS_FAILED + 1))
	printf 'FAIL - %s\n' "${msg//$'\n'/\\n}"
	shift
	for d in "$@"; do
		printf '%s\n' "$d" | sed 's/^/       | /'
	done
	if [[ -n $MFS_PID ]] && ! mfs_alive "$MFS_PID"; then
		local pid=$MFS_PID rc
		MFS_PID=''
		wait "$pid"
		rc=$?
		mfs_watchdog_stop
		MFS_FAILED=$((MFS_FAILED + 1))
		printf 'FAIL - the daemon died (exit status %s): stopping here\n' "$rc"
		mfs_dump_log
		mfs_scan_log "$MFS_LOG" "crash" >/dev/null
		exit 1
	fi
}

# Prints a value so that newlines, NULs and trailing blanks are visible.
mfs_show()
{
	printf '%q' "$1"
}

# The path relative to the mount, for messages.
mfs_rel()
{
	local p=$1
	if [[ -n $MNT && $p == "$MNT"/* ]]; then
		p=${p#"$MNT"/}
	elif [[ -n $MNT && $p == "$MNT" ]]; then
		p=MNT
	fi
	printf '%s' "$p"
}

# Stops the test here (the EXIT trap cleans up and reports).
mfs_bail()
{
	fail "$@"
	exit 1
}

# -- preconditions -----------------------------------------------------------

# mfs_need COMMAND PACKAGE: stops the test when COMMAND is missing.
mfs_need()
{
	command -v "$1" >/dev/null || mfs_bail "$1 is not installed ($2)"
}

mfs_require()
{
	if [[ -z ${MALLAFS:-} ]]; then
		mfs_bail "MALLAFS is not set: it must name the mallafs command" \
			"(meson sets it from mallafs_exe; is mount/ built?)"
	fi
	if [[ ! -x $MALLAFS ]]; then
		mfs_bail "MALLAFS=$MALLAFS is not an executable file"
	fi
	if [[ -z ${FSPROBE:-} || ! -x $FSPROBE ]]; then
		mfs_bail "FSPROBE=${FSPROBE:-} is not an executable file"
	fi
	if [[ ! -c /dev/fuse ]]; then
		mfs_bail "/dev/fuse is missing: the mount tests need FUSE"
	fi
	mfs_need fusermount3 fuse3
	mfs_need mountpoint util-linux
	if [[ $(id -u) != 0 ]]; then
		mfs_bail "the mount tests must run as root (registry owners, allow_other)"
	fi
	mfs_fusectl
	# Not grep -q: with pipefail, ldd killed by SIGPIPE when grep
	# stops early would read as no sanitizer.
	MFS_SANITIZER=$(ldd "$MALLAFS" 2>/dev/null | grep -o -E 'lib(asan|tsan|ubsan)' | tail -n 1)
	MFS_SANITIZER=${MFS_SANITIZER#lib}
	MFS_TMP=$(mktemp -d "${TMPDIR:-/tmp}/mallafs-$MFS_NAME.XXXXXX") ||
		mfs_bail "mktemp failed"
	# Other users (the registry test runs a writer as nobody) must reach the mount.
	chmod 755 "$MFS_TMP"
}

# -- process helpers ---------------------------------------------------------

# True while PID is a process that has not exited (a zombie counts as
# exited). Every thread counts: a killed daemon whose main thread is a
# zombie while another is blocked in the kernel has not exited, and
# waiting for it would hang. (read, not cat: this runs in polling loops.)
mfs_alive()
{
	local t stat
	for t in /proc/"$1"/task/*/stat; do
		{ read -r stat <"$t"; } 2>/dev/null || continue
		stat=${stat##*) }
		if [[ ${stat%% *} != [ZX] ]]; then
			return 0
		fi
	done
	return 1
}

# True while PATH is in the mount table, even when its daemon is gone (a
# dead FUSE daemon leaves a mount whose stat() fails, which mountpoint(1)
# does not report).
mfs_mounted()
{
	awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/self/mounts
}

# Aborts the FUSE connection of the mount at PATH. A hung daemon cannot be
# killed alone: a process blocked in a request the daemon has already read
# (the daemon's own threads included, when it acts on its own mount) waits
# uninterruptibly for the answer, so the daemon never finishes exiting and
# the connection never closes. Aborting fails every pending request.
mfs_abort_conn()
{
	local dev
	dev=$(awk -v m="$1" '$5 == m { print $3; exit }' /proc/self/mountinfo)
	[[ -n $dev ]] || return 0
	if [[ -w /sys/fs/fuse/connections/${dev#*:}/abort ]]; then
		echo 1 >"/sys/fs/fuse/connections/${dev#*:}/abort"
	else
		echo "# cannot abort the connection of $1: no /sys/fs/fuse/connections/${dev#*:}/abort"
	fi
}

# The FUSE control filesystem, where mfs_abort_conn aborts a connection.
# systemd mounts it at boot; a container may not have it.
mfs_fusectl()
{
	local dir=/sys/fs/fuse/connections
	if ! awk -v m="$dir" '$2 == m { found = 1 } END { exit !found }' /proc/self/mounts; then
		mount -t fusectl fusectl "$dir" 2>/dev/null ||
			echo "# $dir cannot be mounted: a hung mount cannot be aborted"
	fi
}

# Lists the processes that hold PATH busy (an open file, their working
# folder), from their links in /proc: reading a link asks nothing of the mount.
mfs_users()
{
	local p l t
	for p in /proc/[0-9]*; do
		for l in "$p"/cwd "$p"/root "$p"/fd/*; do
			t=$(readlink "$l" 2>/dev/null)
			if [[ $t == "$1" || $t == "$1"/* ]]; then
				printf '%s %s: %s\n' "${p#/proc/}" "$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)" \
					"${l#"$p"/}"
			fi
		done
	done
}

# mfs_user NAME: makes sure the unprivileged local user NAME exists (created
# with useradd, no home, no login shell) and can reach $MFS_TMP, for tests of
# what another user may do through an allow_other mount. Creating users takes
# root: run as anyone else, the test is skipped (exit 77) with a message
# saying so. Tests running in parallel may create the same user: useradd
# holds the passwd lock, so a loser retries, then finds the user there.
mfs_user()
{
	local name=$1 i
	if [[ $(id -u) -ne 0 ]]; then
		echo "SKIP - $MFS_NAME needs root to create the test user $name" >&2
		MFS_FINISHED=1
		exit 77
	fi
	for i in 1 2 3 4 5 6 7 8 9 10; do
		id -u "$name" >/dev/null 2>&1 && break
		useradd --system --no-create-home --shell /usr/sbin/nologin "$name" \
			>/dev/null 2>&1 || sleep 0.2
	done
	id -u "$name" >/dev/null 2>&1 || mfs_bail "useradd $name failed"
	chmod o+x "$MFS_TMP" || mfs_bail "chmod o+x $MFS_TMP"
}

# mfs_as NAME COMMAND [ARGS...]: runs COMMAND as user NAME (its uid, its
# group and supplementary groups), as su would but with no PAM session.
mfs_as()
{
	local name=$1
	shift
	setpriv --reuid="$name" --regid="$name" --init-groups -- "$@"
}

# Stops a daemon the hard way: abort its connection, kill -9, wait a little.
mfs_force_stop()
{
	local pid=$1 mnt=$2
	mfs_abort_conn "$mnt"
	kill -9 "$pid" 2>/dev/null
	mfs_poll 5000 eval "! mfs_alive $pid"
}

mfs_now_ms()
{
	local s
	s=$(date +%s%N)
	printf '%s' $((s / 1000000))
}

# mfs_spawn VAR CMD...: starts CMD in the background, stores its PID in VAR
# and kills it when the test ends.
mfs_spawn()
{
	local var=$1
	shift
	"$@" </dev/null >/dev/null 2>&1 &
	local pid=$!
	MFS_CHILDREN+=("$pid")
	printf -v "$var" '%s' "$pid"
}

# Kills a process started with mfs_spawn and reaps it.
mfs_kill_child()
{
	mfs_kill_ours 9 "$1"
	wait "$1" 2>/dev/null
	return 0
}

# mfs_kill_ours SIGNAL PID...: signals those of the PIDs that are still
# processes of this test (children of its shell). A helper that exited may
# have its PID taken by any new process (pid_max is 32768 here, and tests
# start thousands), another test's daemon included: that one must never be
# hit. Our own daemon is spared too; it is stopped on purpose elsewhere.
mfs_kill_ours()
{
	local sig=$1 pid stat rest state ppid
	shift
	for pid in "$@"; do
		[[ -n $pid && $pid != "$MFS_PID" ]] || continue
		stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
		rest=${stat##*) }
		read -r state ppid _ <<<"$rest"
		if [[ $ppid == "$$" && $state != Z ]]; then
			kill -"$sig" "$pid" 2>/dev/null
		fi
	done
	return 0
}

# Waits up to MS milliseconds for CMD to succeed (polling every 20 ms).
mfs_poll()
{
	local ms=$1
	shift
	local deadline=$(($(mfs_now_ms) + ms))
	while ! "$@"; do
		if (($(mfs_now_ms) > deadline)); then
			return 1
		fi
		sleep 0.02
	done
	return 0
}

# mfs_bounded SECS CMD...: runs CMD in the background and waits at most SECS
# seconds for it, so that the test itself never blocks on a hung mount (a
# process in a request its daemon will never answer cannot even be killed:
# `timeout` would wait for it as long). Returns CMD's status, or 124 when it
# is still running then: it is sent SIGKILL and left to end once the
# connection is aborted. Redirect CMD's output to a file, never to a
# command substitution (that would wait for a hung CMD too).
mfs_bounded()
{
	local secs=$1 pid
	shift
	"$@" &
	pid=$!
	if mfs_poll $((secs * 1000)) eval "! mfs_alive $pid"; then
		wait "$pid"
		return
	fi
	kill -9 "$pid" 2>/dev/null
	MFS_CHILDREN+=("$pid")
	return 124
}

# mfs_rounds MAX END BODY: calls BODY ROUND for ROUND = 0, 1, ... until MAX
# rounds are done or EPOCHSECONDS reaches END, reaps what BODY left in the
# background, and prints the number of rounds: a stress loop that always
# stops by itself. BODY's output goes nowhere.
mfs_rounds()
{
	local max=$1 end=$2 body=$3 i=0
	while ((i < max && EPOCHSECONDS < end)); do
		"$body" "$i" >/dev/null 2>&1
		i=$((i + 1))
	done
	wait
	echo "$i"
}

mfs_wrapper()
{
	[[ -n ${MALLAFS_WRAPPER:-} ]]
}

# mfs_sanitizer: prints the sanitizer $MALLAFS is built with (tsan, asan or
# ubsan), nothing for a plain build; mfs_require reads it once.
mfs_sanitizer()
{
	echo "$MFS_SANITIZER"
}

# Seconds to wait for a mount, an exit; the watchdog's deadline. A daemon
# under valgrind or a sanitizer does the same work several times slower (a
# 200,000-key store converted at start takes over 10 s under TSan on a
# loaded 2-core machine).
mfs_mount_timeout()
{
	if mfs_wrapper; then echo 60; elif [[ -n $(mfs_sanitizer) ]]; then echo 30; else echo 10; fi
}
mfs_exit_timeout()
{
	if mfs_wrapper; then echo 60; elif [[ -n $(mfs_sanitizer) ]]; then echo 30; else echo 10; fi
}
# The watchdog's deadline: what is left of the test's budget, so that a test
# with several hung mounts still ends, and reports, before meson kills it.
# The budget follows the test's own meson timeout (MFS_TIMEOUT, set per test
# in meson.build; run by hand, 120 s, 300 s under a wrapper) less a sixth of
# it, at least 10 s, for the cleanup and the report. (`meson test
# --timeout-multiplier` only makes the watchdog fire earlier than meson.)
mfs_deadline()
{
	local timeout=${MFS_TIMEOUT:-} margin left
	if [[ ! $timeout =~ ^[1-9][0-9]*$ ]]; then
		timeout=120
		if mfs_wrapper; then
			timeout=300
		fi
	fi
	margin=$((timeout / 6))
	if ((margin < 10)); then
		margin=10
	fi
	left=$((timeout - margin - ($(mfs_now_ms) - MFS_START_MS) / 1000))
	if ((left < 5)); then
		left=5
	fi
	echo "$left"
}

mfs_watchdog_start()
{
	local pid=$1 mnt=$2 secs=$3
	(
		trap 'kill "$s" 2>/dev/null; wait "$s"; exit 0' TERM
		sleep "$secs" &
		s=$!
		wait "$s"
		echo "# watchdog: the daemon $pid still runs after ${secs}s: abort and kill -9" >&2
		mfs_force_stop "$pid" "$mnt"
	) &
	MFS_WATCHDOG=$!
}

mfs_watchdog_stop()
{
	if [[ -n $MFS_WATCHDOG ]]; then
		kill "$MFS_WATCHDOG" 2>/dev/null
		wait "$MFS_WATCHDOG" 2>/dev/null
		MFS_WATCHDOG=''
	fi
}

# -- daemon logs -------------------------------------------------------------

# Shows the start of a sanitizer or valgrind report when there is one (the
# part that names the bug), otherwise the end of the log.
mfs_dump_log()
{
	local log=${1:-$MFS_LOG} first
	[[ -s $log ]] || return 0
	first=$(grep -n -m 1 -E -- "$MFS_BAD_OUTPUT" "$log" | cut -d: -f1)
	if [[ -n $first ]]; then
		# Without the daemon's info lines: other threads go on logging
		# while a sanitizer writes its report.
		echo "       | --- daemon log ($log, from line $first, info lines left out) ---"
		tail -n "+$first" "$log" | grep -v '^mallafs: info: ' | head -n 40 |
			sed 's/^/       | /'
	else
		echo "       | --- daemon log ($log, last 40 lines) ---"
		tail -n 40 "$log" | sed 's/^/       | /'
	fi
}

# Fails when LOG holds sanitizer, valgrind or crash output.
mfs_scan_log()
{
	local log=$1 what=$2 dumped=${3:-0} hits
	hits=$(grep -E -m 20 -- "$MFS_BAD_OUTPUT" "$log" 2>/dev/null)
	if [[ -n $hits ]]; then
		fail "$what: no sanitizer, valgrind or crash output in the daemon log" "$hits"
		((dumped)) || mfs_dump_log "$log"
		return 1
	fi
	pass "$what: no sanitizer, valgrind or crash output in the daemon log"
}

# True while the daemon PID lives and LOG (default: $MFS_LOG) holds no
# sanitizer or crash output. A daemon that crashed may not be dead yet: one
# of its threads blocked in the kernel (on its own mount) keeps the process
# from ever finishing its exit, but its log already says why.
mfs_healthy()
{
	mfs_alive "$1" && ! grep -q -E -- "$MFS_BAD_OUTPUT" "${2:-$MFS_LOG}" 2>/dev/null
}

# Shows each thread of PID: its name, state, and where it waits in the
# kernel (a hung daemon's threads blocked on its own mount show there).
mfs_dump_threads()
{
	local t
	echo "       | --- threads of $1 (tid name state: kernel stack) ---"
	for t in /proc/"$1"/task/*; do
		[[ -r $t/stat ]] || continue
		printf '       | %s %s %s: %s\n' "${t##*/}" "$(cat "$t/comm" 2>/dev/null)" \
			"$(sed 's/.*) \([A-Z]\).*/\1/' "$t/stat" 2>/dev/null)" \
			"$(sed -e 's/^\[<0>\] //' -e 's/+0x.*//' "$t/stack" 2>/dev/null |
				head -n 4 | paste -s -d ' ')"
	done
}

# -- mounting ----------------------------------------------------------------

# The IDs of the mounts at PATH, from the mount table (which asks nothing of
# the mounts), one a line.
mfs_mount_ids()
{
	awk -v m="$1" '$5 == m { print $1 }' /proc/self/mountinfo
}

# mfs_mount [DAEMON ARGS...]: mounts a fresh mountpoint ($MNT) with
# `mallafs -f ARGS... $MNT` in the background, stderr and stdout to $MFS_LOG.
# Waits for the mount while checking that the daemon lives; stops the test
# when the daemon dies or the mount does not appear.
mfs_mount()
{
	if [[ -n $MFS_PID ]]; then
		mfs_bail "test bug: mfs_mount while $MNT is still mounted"
	fi
	MFS_SEQ=$((MFS_SEQ + 1))
	MNT=$MFS_TMP/mnt$MFS_SEQ
	mkdir -p "$MNT" || mfs_bail "mkdir $MNT"
	mfs_mount_start "$@"
}

# mfs_mount_again [DAEMON ARGS...]: the same on the mountpoint $MNT as it
# is, which may hold mounts already (a stale one, a tmpfs): waits for a
# mount there that was not there before, or for the daemon to say it is
# mounted (a stale mount it replaced may leave its mount ID to the new one).
mfs_mount_again()
{
	if [[ -n $MFS_PID ]]; then
		mfs_bail "test bug: mfs_mount_again while $MNT is still mounted"
	fi
	MFS_SEQ=$((MFS_SEQ + 1))
	mfs_mount_start "$@"
}

# The daemon's start for both, its log daemon$MFS_SEQ.log.
mfs_mount_start()
{
	MFS_LOG=$MFS_TMP/daemon$MFS_SEQ.log
	local before
	before=$(mfs_mount_ids "$MNT")
	local -a wrap=()
	if mfs_wrapper; then
		read -r -a wrap <<<"$MALLAFS_WRAPPER"
	fi
	# A background job of a script starts with SIGINT ignored; the daemon
	# must get it as it would from a terminal.
	env --default-signal=INT,QUIT "${wrap[@]}" "$MALLAFS" -f "$@" "$MNT" \
		</dev/null >"$MFS_LOG" 2>&1 &
	MFS_PID=$!
	mfs_watchdog_start "$MFS_PID" "$MNT" "$(mfs_deadline)"

	local timeout deadline rc
	timeout=$(mfs_mount_timeout)
	deadline=$(($(mfs_now_ms) + timeout * 1000))
	# The mount table, not mountpoint(1): a stat() of a hung mount would hang.
	while ! mfs_mounted "$MNT" || { [[ $(mfs_mount_ids "$MNT") == "$before" ]] &&
		! grep -qF "mounted on $MNT" "$MFS_LOG"; }; do
		if ! mfs_alive "$MFS_PID"; then
			wait "$MFS_PID"
			rc=$?
			MFS_PID=''
			mfs_watchdog_stop
			fail "mount: mallafs ${*:+$* }died before mounting (exit status $rc)"
			mfs_dump_log
			mfs_scan_log "$MFS_LOG" "mount"
			exit 1
		fi
		if (($(mfs_now_ms) > deadline)); then
			fail "mount: $MNT is not mounted after ${timeout}s (mallafs ${*:+$* }MNT)"
			mfs_dump_log
			exit 1
		fi
		sleep 0.02
	done
	pass "mount: mallafs -f ${*:+$* }MNT"
}

# mfs_wait_exit EXPECTED_STATUS WHAT: waits for the daemon to exit, then
# checks its exit status, that nothing is mounted any more and its log.
mfs_wait_exit()
{
	local want=$1 what=$2 rc timeout dumped=0
	timeout=$(mfs_exit_timeout)
	if ! mfs_poll $((timeout * 1000)) eval '! mfs_alive "$MFS_PID"'; then
		fail "$what: the daemon is still running ${timeout}s later: abort, kill -9"
		mfs_force_stop "$MFS_PID" "$MNT"
	fi
	if mfs_alive "$MFS_PID"; then
		rc="none: it does not die"
	else
		wait "$MFS_PID"
		rc=$?
	fi
	MFS_PID=''
	mfs_watchdog_stop
	if [[ $rc == "$want" ]]; then
		pass "$what: the daemon exits with status $want"
	else
		fail "$what: the daemon exits with status $want" "exit status: $rc"
		mfs_dump_log
		dumped=1
	fi
	if mfs_mounted "$MNT"; then
		fail "$what: $MNT is unmounted"
		fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
	else
		pass "$what: the mountpoint is unmounted"
	fi
	mfs_scan_log "$MFS_LOG" "$what" "$dumped"
}

# Unmounts with fusermount3 -u; the daemon must exit with status 0.
mfs_unmount()
{
	if [[ -z $MFS_PID ]]; then
		fail "test bug: mfs_unmount with nothing mounted"
		return 1
	fi
	local err tries=0
	# The daemon's notifier holds a file of the mount open for a few
	# microseconds while it replays a change for watchers; an unmount that
	# lands then is refused as busy, and a try a moment later works (after
	# a burst of thousands of changes, the replays may go on for seconds).
	until err=$(fusermount3 -u "$MNT" 2>&1); do
		if [[ $err != *busy* ]] || ((++tries >= 100)); then
			fail "fusermount3 -u MNT" "$err" "$(mfs_users "$MNT")"
			break
		fi
		sleep 0.1
	done
	mfs_wait_exit 0 "unmount"
}

# Unmounts with a signal (TERM, INT...); the daemon must exit with status 0.
mfs_signal_unmount()
{
	kill -s "$1" "$MFS_PID"
	mfs_wait_exit 0 "SIG$1"
}

# shellcheck disable=SC2034 # MFS_RC, MFS_OUT, MFS_ERR, MFS_RUNLOG are for the tests
# Runs the daemon in the foreground where it must refuse to start:
# mfs_run_daemon ARGS... runs `mallafs ARGS...` (no mountpoint added) with a
# timeout, stores its exit status in MFS_RC and its stderr in MFS_ERR.
mfs_run_daemon()
{
	local -a wrap=()
	if mfs_wrapper; then
		read -r -a wrap <<<"$MALLAFS_WRAPPER"
	fi
	MFS_SEQ=$((MFS_SEQ + 1))
	local log=$MFS_TMP/run$MFS_SEQ.log
	env --default-signal=INT,QUIT "${wrap[@]}" "$MALLAFS" "$@" \
		</dev/null >"$log.out" 2>"$log" &
	local pid=$!
	MFS_CHILDREN+=("$pid")
	if ! mfs_poll $(($(mfs_mount_timeout) * 1000)) eval "! mfs_alive $pid"; then
		kill -TERM "$pid" 2>/dev/null
		mfs_poll 3000 eval "! mfs_alive $pid" || mfs_force_stop "$pid" "${!#}"
	fi
	MFS_RC='none: it does not die'
	if ! mfs_alive "$pid"; then
		wait "$pid"
		MFS_RC=$?
	fi
	MFS_OUT=$(cat "$log.out")
	MFS_ERR=$(cat "$log")
	MFS_RUNLOG=$log
}

# -- assertions: assert.sh -----------------------------------------------------

source "$(dirname "${BASH_SOURCE[0]}")/assert.sh"

# -- the end -----------------------------------------------------------------

mfs_summary()
{
	echo "$MFS_PASSED passed, $MFS_FAILED failed"
}

# Ends the test: unmounts what is left mounted (a test bug, counted as a
# failure), reports and exits 1 on any failure.
mfs_done()
{
	if [[ -n $MFS_PID ]]; then
		fail "test bug: $MNT still mounted at the end of the test"
		mfs_unmount
	fi
	MFS_FINISHED=1
	mfs_summary
	if ((MFS_FAILED > 0)); then
		exit 1
	fi
	exit 0
}

mfs_cleanup()
{
	local rc=$?
	trap - EXIT INT TERM HUP
	# The reader of our output may be gone (`| head`): clean up regardless.
	trap '' PIPE
	if [[ -n $MFS_PID ]]; then
		echo "# cleanup: unmounting $MNT"
		fusermount3 -u "$MNT" 2>/dev/null
		if ! mfs_poll 5000 eval '! mfs_alive "$MFS_PID"'; then
			mfs_force_stop "$MFS_PID" "$MNT"
		fi
		mfs_alive "$MFS_PID" || wait "$MFS_PID" 2>/dev/null
		if mfs_mounted "$MNT"; then
			fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
		fi
		# Cleared first: fail() would otherwise see a dead daemon and
		# exit before the cleanup is done.
		MFS_PID=''
		mfs_scan_log "$MFS_LOG" "cleanup" >/dev/null || fail "cleanup: daemon log"
	fi
	mfs_watchdog_stop
	local pid m busy=0 hook
	for hook in "${MFS_CLEANUP_HOOKS[@]}"; do
		"$hook"
	done
	mfs_kill_ours 9 "${MFS_CHILDREN[@]}"
	if [[ -n $MFS_TMP && -d $MFS_TMP ]]; then
		for m in "$MFS_TMP"/mnt*; do
			# What a dead or hung daemon left mounted. Aborting first
			# frees every process blocked in one of its requests, the
			# helpers reaped below included.
			if mfs_mounted "$m"; then
				mfs_abort_conn "$m"
				fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
			fi
			if mfs_mounted "$m"; then
				echo "# cleanup: $m is still mounted; keeping $MFS_TMP"
				busy=1
			fi
		done
	fi
	# Reaped only once dead: a helper the abort did not free stays
	# blocked in the kernel, and waiting for it would hang the trap.
	for pid in "${MFS_CHILDREN[@]}"; do
		if mfs_poll 2000 eval "! mfs_alive $pid"; then
			wait "$pid" 2>/dev/null
		else
			echo "# cleanup: helper $pid does not die (state $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null))"
			busy=1
		fi
	done
	if [[ -n $MFS_TMP && -d $MFS_TMP ]]; then
		if ((busy == 0)) && [[ ${MFS_KEEP_TMP:-0} != 1 ]]; then
			rm -rf --one-file-system "$MFS_TMP"
		else
			echo "# logs kept in $MFS_TMP"
		fi
	fi
	if ((MFS_FINISHED == 0)); then
		fail "the test ended early (exit status $rc)"
		mfs_summary
		exit 1
	fi
	if ((MFS_FAILED > 0)); then
		exit 1
	fi
	exit "$rc"
}

MFS_START_MS=$(mfs_now_ms)
trap mfs_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE

mfs_require
