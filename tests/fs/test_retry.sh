#!/bin/bash
# SPDX-License-Identifier: MIT
# Errors that are true (issue 11, item 3), with the exec plugin: a
# reconfiguration whose restart fails to start is rolled back (EIO, the old
# configuration back and running, the failed start's reason in last_error);
# a failed service whose admin status is active is tried again by itself,
# with a backoff that doubles up to its cap, each try in `status` (retries,
# next_retry) and the log, until it runs; `inactive` and rmdir end the tries;
# a service the bootstrap could not start is retried too. The daemon runs
# with MALLAFS_RETRY_BASE_MS and MALLAFS_RETRY_MAX_MS so that the backoff
# takes tenths of a second, not 5 s to 5 min.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The hook: on_start fails while the file $MFS_TMP/broken.SERVICE exists, or
# when the configuration it gets says [app] mode = bad; on_update asks for a
# restart. Hooks get a clean environment: the folder comes as an argument.
HOOK=$MFS_TMP/hook.sh
cat >"$HOOK" <<'EOF'
dir=$1 hook=$2
ini=$(cat)
echo "$hook" >>"$dir/calls.$MALLAFS_SERVICE"
case $hook in
on_start)
	if [[ -e $dir/broken.$MALLAFS_SERVICE ]]; then
		echo "$MALLAFS_SERVICE is broken" >&2
		exit 1
	fi
	if printf '%s\n' "$ini" | grep -qx 'mode = bad'; then
		echo "mode bad cannot start" >&2
		exit 1
	fi
	;;
on_update)
	exit 75
	;;
esac
exit 0
EOF
ON_START="bash '$HOOK' '$MFS_TMP' on_start"
ON_UPDATE="bash '$HOOK' '$MFS_TMP' on_update"
TIME_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$'

field()
{
	status_field "$1" "$2"
}

# A service NAME with exec (its on_start and on_update as above) and
# [app] mode = good, running.
exec_service()
{
	local s=$MNT/services/$1
	assert_ok mkdir "$s"
	assert_ok mkdir "$s/config/exec" "$s/config/app"
	assert_ok bash -c "echo \"$ON_START\" > '$s/config/exec/on_start'"
	assert_ok bash -c "echo \"$ON_UPDATE\" > '$s/config/exec/on_update'"
	assert_ok bash -c "echo good > '$s/config/app/mode'"
	assert_ok mkdir "$s/plugins/exec"
	assert_eq "$1 runs with exec" running "$(field "$s" state)"
}

state_is()
{
	[[ $(field "$1" state) == "$2" ]]
}

# Polls (3 s) until a try is pending: between tries next_retry is a time
# (a try under way shows `-` and state starting, for a moment).
retry_pending()
{
	local what=$1 s=$2
	if mfs_poll 3000 eval '[[ $(field "$s" next_retry) =~ $TIME_RE ]] &&
		state_is "$s" failed'; then
		pass "$what: failed, next_retry is a time"
	else
		fail "$what: failed, next_retry is a time" "$(cat "$s/status")"
	fi
}

retries_at_least()
{
	local n
	n=$(field "$1" retries)
	[[ $n =~ ^[0-9]+$ ]] && ((n >= $2))
}

export MALLAFS_RETRY_BASE_MS=200 MALLAFS_RETRY_MAX_MS=800
mfs_mount


# runs_again WHAT SERVICE_DIR: the service becomes `running` by itself
# within 5 s, with its retries counted back to 0 and no try pending.
runs_again()
{
	if mfs_poll 5000 state_is "$2" running; then
		pass "$1 runs again by itself"
	else
		fail "$1 runs again by itself" "$(cat "$2/status")"
	fi
	assert_eq "$1: running, retries 0, next_retry -" "0 -" \
		"$(field "$2" retries) $(field "$2" next_retry)"
}

# == a restart that fails to start is rolled back ===============================
exec_service roll
R=$MNT/services/roll
restarts=$(field "$R" restarts)
# A change on_update accepts with a restart: it restarts.
assert_ok bash -c "echo fine > '$R/config/app/other'"
assert_eq "a change asking for a restart restarts" $((restarts + 1)) "$(field "$R" restarts)"
assert_eq "...and the service runs" running "$(field "$R" state)"
# A change whose restart cannot start: EIO, and everything as before.
assert_write EIO "$R/config/app/mode" bad
assert_file "$R/config/app/mode" $'good\n'
assert_match "config.ini shows the old configuration" $'mode = good' "$(cat "$R/config.ini")"
assert_eq "the service runs again, with the old configuration" running "$(field "$R" state)"
assert_reason "the failed restart" "$R" "restart failed, rolled back: exec: cannot start: mode bad cannot start"
assert_eq "the failed restart and the one back are counted" $((restarts + 3)) \
	"$(field "$R" restarts)"
assert_match "last_restart says it rolled back" "rolling back: exec: cannot start: mode bad" \
	"$(field "$R" last_restart)"
assert_eq "nothing to retry" "0 -" "$(field "$R" retries) $(field "$R" next_retry)"
# The same as one config.ini document.
assert_write EIO "$R/config.ini" $'[app]\nmode = bad\nother = two\n'
assert_file "$R/config/app/other" $'fine\n'
assert_eq "config.ini write rolled back: running" running "$(field "$R" state)"

# When the old configuration cannot start either, the service stays failed
# and is retried; once the cause goes, it runs again by itself.
: >"$MFS_TMP/broken.roll"
assert_write EIO "$R/config/app/mode" bad
assert_reason "both failed" "$R" "the old configuration failed to start too: exec: cannot start: roll is broken"
retry_pending "both failed" "$R"
assert_file "$R/config/app/mode" $'good\n'
rm -f "$MFS_TMP/broken.roll"
runs_again "both failed: the old configuration" "$R"
assert_file "$R/config/app/mode" $'good\n'

# == a failed service is retried until it runs =================================
exec_service back
B=$MNT/services/back
assert_ok bash -c "echo inactive > '$B/status'"
: >"$MFS_TMP/broken.back"
assert_write EIO "$B/status" active
retry_pending "a start that fails" "$B"
# Tries come by themselves, each counted, each in the log.
if mfs_poll 8000 grep -q "service back: failed; retry 4 in" "$MFS_LOG" &&
	retries_at_least "$B" 3; then
	pass "the failed service is tried again, again and again"
else
	fail "the failed service is tried again, again and again" "$(cat "$B/status")"
fi
retry_pending "still broken" "$B"
assert_reason "a failed try" "$B" "exec: cannot start: back is broken"
# The log: each try, with a delay that doubles up to the cap.
backoff=$(sed -n 's/.*service back: failed; retry \([0-9]*\) in \([0-9]*\) ms.*/\1:\2/p' "$MFS_LOG" |
	head -n 4 | tr '\n' ' ')
assert_eq "the backoff doubles to its cap" "1:200 2:400 3:800 4:800 " "$backoff"
assert_match "the log tells each try" "service back: retry 2: starting" "$(cat "$MFS_LOG")"
rm -f "$MFS_TMP/broken.back"
runs_again "once its hook succeeds, the service" "$B"
assert_eq "admin stays active" active "$(field "$B" admin)"
assert_match "the log says it runs again" "service back: running again after [0-9]+ retries" \
	"$(cat "$MFS_LOG")"

# `inactive` ends the tries; `active` starts them over.
: >"$MFS_TMP/broken.back"
assert_ok bash -c "echo inactive > '$B/status'"
assert_write EIO "$B/status" active
assert_ok bash -c "echo inactive > '$B/status'"
assert_eq "inactive: stopped, no retry" "stopped - 0" \
	"$(field "$B" state) $(field "$B" next_retry) $(field "$B" retries)"
: >"$MFS_TMP/calls.back"
sleep 1
assert_eq "inactive: no try runs" "" "$(cat "$MFS_TMP/calls.back")"
# pause tries once, the writer's try, and is not retried.
assert_write EIO "$B/status" pause
assert_eq "pause that fails: failed, no retry" "failed pause -" \
	"$(field "$B" state) $(field "$B" admin) $(field "$B" next_retry)"
# rmdir while a try is pending: the try goes with it.
assert_write EIO "$B/status" active
retry_pending "active again" "$B"
assert_ok rmdir "$B"
: >"$MFS_TMP/calls.back"
sleep 1
assert_eq "rmdir: no try runs" "" "$(cat "$MFS_TMP/calls.back")"
rm -f "$MFS_TMP/broken.back"

mfs_unmount
mfs_scan_log "$MFS_LOG" "retries"

# == a service the bootstrap could not start is retried ========================
BOOT=$MFS_TMP/boot.ini
cat >"$BOOT" <<EOF
[services.boot]
plugins = exec
admin = active

[services.boot.exec]
on_start = $ON_START
EOF
: >"$MFS_TMP/broken.boot"
mfs_mount --config="$BOOT"
S=$MNT/services/boot
retry_pending "bootstrap: the service could not start" "$S"
rm -f "$MFS_TMP/broken.boot"
if mfs_poll 5000 state_is "$S" running; then
	pass "bootstrap: the service runs by itself once its hook succeeds"
else
	fail "bootstrap: the service runs by itself once its hook succeeds" "$(cat "$S/status")"
fi
# Unmounting with a try pending: the timer stops and is joined.
: >"$MFS_TMP/broken.boot"
assert_ok bash -c "echo inactive > '$S/status'"
assert_write EIO "$S/status" active
retry_pending "bootstrap: failed again" "$S"
mfs_unmount
mfs_scan_log "$MFS_LOG" "bootstrap retries"

mfs_done
