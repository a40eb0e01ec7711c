#!/bin/bash
# SPDX-License-Identifier: MIT
# mallafs under systemd (issue 14, item 2): readiness and status through the
# notify protocol, as a Type=notify unit needs them, and log priorities the
# journal understands.
#
# A listener (notifylisten.py) plays systemd's side of $NOTIFY_SOCKET: it
# notes who sent each datagram and whether the tree was mounted and
# answering when it arrived. READY=1 with STATUS= comes once, from the
# daemon, after the mount (a bootstrap hook makes the start slow); over a
# path and over an abstract socket; from the background child, with
# MAINPID=, when the command forks; STOPPING=1 on SIGTERM and on an
# unmount. Nothing the daemon runs inherits $NOTIFY_SOCKET. With
# $JOURNAL_STREAM naming the daemon's stderr, every line there starts with
# <N> (3 error, 4 warning, 6 info, 7 debug), the command's refusals and
# libfuse's messages included; with any other stream, none does.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
EXAMPLE=$HERE/../../contrib/example.ini
[[ -r $EXAMPLE ]] || mfs_bail "the bootstrap example $EXAMPLE is missing"
mfs_need python3 python3

# The example and a service whose start hook is slow, notes its environment
# and says something on stderr (logged as a warning): 4 services, 1 app.
INI=$MFS_TMP/hooked.ini
{
	cat "$EXAMPLE"
	printf '\n[services.hooked]\nplugins = exec\n\n[services.hooked.exec]\n'
	printf 'on_start = env > %s/hook.env; sleep 0.3; echo hook-says-hello >&2\n' "$MFS_TMP"
} >"$INI"

LISTENERS=()

# listen SOCKET MOUNTPOINT OUT: starts a listener, waits until it is bound.
listen()
{
	python3 "$HERE/notifylisten.py" "$1" "$2" "$3" </dev/null >"$3.err" 2>&1 &
	MFS_CHILDREN+=("$!")
	LISTENERS+=("$!")
	mfs_poll 10000 grep -qx bound "$3" 2>/dev/null ||
		mfs_bail "the notify listener does not start" "$(cat "$3.err")"
}

# expect_line WHAT OUT LINE: OUT gets exactly LINE within 10 s.
expect_line()
{
	if mfs_poll 10000 grep -qxF -- "$3" "$2"; then
		pass "$1"
	else
		fail "$1" "expected the line: $3" "received:" "$(cat "$2")"
	fi
}

# expect_stopping WHAT OUT PID: OUT gets STOPPING=1 from PID within 10 s
# (mounted or not as it arrives: the daemon unmounts right after).
expect_stopping()
{
	if mfs_poll 10000 grep -qE -- "^$3 [01] - STOPPING=1\|\$" "$2"; then
		pass "$1"
	else
		fail "$1" "expected: STOPPING=1 from $3" "received:" "$(cat "$2")"
	fi
}

# count OUT FIELD: how many datagrams carry the line FIELD.
count()
{
	grep -cE -- "(^[0-9]+ [01] [01-] |\|)$2\|" "$1"
}

# -- in the foreground, on a path ---------------------------------------------

out=$MFS_TMP/notify1.out
next=$MFS_TMP/mnt$((MFS_SEQ + 1))
listen "$MFS_TMP/notify.sock" "$next" "$out"
NOTIFY_SOCKET=$MFS_TMP/notify.sock mfs_mount --config="$INI"
pid=$MFS_PID
expect_line "READY=1 and STATUS= come from the daemon, the tree mounted and answering" "$out" \
	"$pid 1 1 READY=1|STATUS=mounted on $MNT: 4 services, 1 app|"
assert_eq "READY=1 comes once" 1 "$(count "$out" READY=1)"
assert_eq "no MAINPID= in the foreground" 0 "$(count "$out" 'MAINPID=[0-9]+')"
assert_true "the start hook ran" test -s "$MFS_TMP/hook.env"
assert_eq "the hook's environment has no NOTIFY_SOCKET" "" \
	"$(grep NOTIFY_SOCKET "$MFS_TMP/hook.env")"
assert_eq "without JOURNAL_STREAM, no line of the log has a priority" "" \
	"$(grep -E '^<[0-7]>' "$MFS_LOG")"
# SIGHUP: RELOADING=1, then READY=1 again with the status; a refused
# file's reason in the status.
kill -HUP "$pid"
if mfs_poll 10000 eval '(($(count "$out" READY=1) >= 2))'; then
	pass "SIGHUP: READY=1 again once reloaded"
else
	fail "SIGHUP: READY=1 again once reloaded" "received:" "$(cat "$out")"
fi
assert_match "SIGHUP: RELOADING=1 with MONOTONIC_USEC= first" \
	"$pid 1 [01-] RELOADING=1\|MONOTONIC_USEC=[0-9]+\|"$'\n'"$pid 1 1 READY=1\|STATUS=mounted on $MNT: 4 services, 1 app\|\$" \
	"$(tail -n 2 "$out")"
cp "$INI" "$INI.good"
printf '[services.broken\n' >>"$INI"
bad=$(wc -l <"$INI")
kill -HUP "$pid"
expect_line "SIGHUP with a bad file: READY=1 with the refusal in STATUS=" "$out" \
	"$pid 1 1 READY=1|STATUS=reload refused, nothing changed: $INI:$bad: syntax error (expected [section] or key = value)|"
cp "$INI.good" "$INI"
mfs_signal_unmount TERM
expect_stopping "STOPPING=1 on SIGTERM" "$out" "$pid"

# -- an abstract socket, and an unmount ---------------------------------------

out=$MFS_TMP/notify2.out
next=$MFS_TMP/mnt$((MFS_SEQ + 1))
sock=@mallafs-test-sdnotify-$$-$RANDOM
listen "$sock" "$next" "$out"
NOTIFY_SOCKET=$sock mfs_mount
pid=$MFS_PID
expect_line "READY=1 on an abstract socket (@NAME), an empty tree's status" "$out" \
	"$pid 1 1 READY=1|STATUS=mounted on $MNT: 0 services, 0 apps|"
mfs_unmount
expect_stopping "STOPPING=1 on fusermount3 -u" "$out" "$pid"

# -- in the background -----------------------------------------------------------

out=$MFS_TMP/notify3.out
bg=$MFS_TMP/mnt-bg
mkdir "$bg"
listen "$MFS_TMP/notify-bg.sock" "$bg" "$out"
NOTIFY_SOCKET=$MFS_TMP/notify-bg.sock "$MALLAFS" --config="$EXAMPLE" "$bg" \
	</dev/null >"$MFS_TMP/bg.log" 2>&1 &
cmd=$!
if mfs_poll 10000 eval "! mfs_alive $cmd"; then
	wait "$cmd"
	assert_eq "mallafs without -f returns once mounted" 0 "$?"
else
	mfs_bail "mallafs without -f has not returned 10 s later" "$(cat "$MFS_TMP/bg.log")"
fi
mfs_poll 10000 grep -q 'READY=1' "$out"
line=$(grep 'READY=1' "$out")
child=${line%% *}
assert_match "READY=1 with MAINPID= from the background child" \
	"^$child 1 1 MAINPID=$child\|READY=1\|STATUS=mounted on $bg: 3 services, 1 app\|\$" "$line"
assert_ne "the child is not the command" "$cmd" "$child"
if [[ $child =~ ^[1-9][0-9]*$ ]] && mfs_alive "$child"; then
	pass "the child runs"
	kill -TERM "$child"
	if mfs_poll 10000 eval "! mfs_alive $child" && ! mfs_mounted "$bg"; then
		pass "SIGTERM unmounts the background daemon"
	else
		fail "SIGTERM unmounts the background daemon"
	fi
	expect_stopping "STOPPING=1 from the background child" "$out" "$child"
else
	fail "the child runs" "line: $line"
fi

# -- journal priorities ----------------------------------------------------------

# stream FILE: JOURNAL_STREAM's DEVICE:INODE for FILE, created empty (the
# harness's redirection truncates it and keeps the inode).
stream()
{
	: >"$1"
	stat -c '%d:%i' "$1"
}

# unprefixed FILE: the lines without a priority.
unprefixed()
{
	grep -vE '^<[0-7]>' "$1"
}

js=$(stream "$MFS_TMP/daemon$((MFS_SEQ + 1)).log")
JOURNAL_STREAM=$js mfs_mount -d --config="$INI"
assert_true "a debug line is <7>" grep -q '^<7>mallafs: debug: ' "$MFS_LOG"
assert_true "the mount's line is <6>" grep -q "^<6>mallafs: info: mounted on $MNT" "$MFS_LOG"
assert_true "the hook's stderr is <4>" grep -qE '^<4>mallafs: warning: .*hook-says-hello' \
	"$MFS_LOG"
mfs_signal_unmount TERM
assert_true "the unmount's line is <6>" grep -q "^<6>mallafs: info: unmounting $MNT" "$MFS_LOG"
assert_eq "every line has a priority" "" "$(unprefixed "$MFS_LOG")"

# Another stream than stderr's: the variable was inherited, not meant for us.
js=$(stream "$MFS_TMP/other.log")
JOURNAL_STREAM=$js mfs_mount --config="$INI"
mfs_signal_unmount TERM
assert_true "the log has lines" test -s "$MFS_LOG"
assert_eq "JOURNAL_STREAM of another file: no line has a priority" "" \
	"$(grep -E '^<[0-7]>' "$MFS_LOG")"

# The command's refusals and libfuse's messages are errors.
printf '[services.api]\nplugins = nosuchplugin\n' >"$MFS_TMP/bad.ini"
mkdir -p "$MFS_TMP/mnt-refused"
js=$(stream "$MFS_TMP/run$((MFS_SEQ + 1)).log")
JOURNAL_STREAM=$js mfs_run_daemon -f --config="$MFS_TMP/bad.ini" "$MFS_TMP/mnt-refused"
assert_eq "a bad bootstrap file: exit status 1" 1 "$MFS_RC"
assert_match "its FILE:LINE line is <3>" "^<3>$MFS_TMP/bad.ini:2: " "$MFS_ERR"
assert_eq "every line has a priority" "" "$(unprefixed "$MFS_RUNLOG")"
js=$(stream "$MFS_TMP/run$((MFS_SEQ + 1)).log")
JOURNAL_STREAM=$js mfs_run_daemon -f -o nosuchoption "$MFS_TMP/mnt-refused"
assert_ne "an unknown option: the command fails" 0 "$MFS_RC"
assert_match "libfuse's complaint is <3>" "^<3>.*nosuchoption" "$MFS_ERR"
assert_eq "every line has a priority" "" "$(unprefixed "$MFS_RUNLOG")"

# Stopped here, quietly (the harness would kill what is left, and bash
# would say so).
for l in "${LISTENERS[@]}"; do
	kill "$l" 2>/dev/null
	wait "$l" 2>/dev/null
done
mfs_done
