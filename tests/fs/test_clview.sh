#!/bin/bash
# SPDX-License-Identifier: MIT
# cluster/ (issue 15), the read-only folder that shows the cluster as etcd
# tells it: without cluster mode there is none; with it, its files and
# folders, their owners and modes (a service's file readable by whoever may
# read services/S/status on its node, the kernel deciding), their texts and
# sizes, every change refused with the errno the tree gives read-only
# entries, and each change of the view reaching inotify watchers, poll()
# waiters and the events feed. The view is fed by clviewmount (the daemon's
# fs layer and runtime with the cluster engine replaced by this test's
# commands); test_cluster_view.sh checks the same through real etcd.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ -z ${CLVIEWMOUNT:-} || ! -x $CLVIEWMOUNT ]]; then
	mfs_bail "CLVIEWMOUNT=${CLVIEWMOUNT:-} is not an executable file"
fi
if [[ -z ${WATCHPROBE:-} || ! -x $WATCHPROBE ]]; then
	mfs_bail "WATCHPROBE=${WATCHPROBE:-} is not an executable file"
fi
mfs_user mallafs-t1
mfs_user mallafs-t2
# How long watchers wait for a change's echo to go quiet: longer under a
# sanitizer or a wrapper, on a loaded machine.
SILENCE=500
if mfs_wrapper || [[ -n $(mfs_sanitizer) ]]; then
	SILENCE=1500
fi
T1=$(id -u mallafs-t1)
T1G=$(id -g mallafs-t1)

# -- without cluster mode: no cluster/ -------------------------------------------

mfs_mount
assert_ls "$MNT" config events metrics registry services
assert_errno ENOENT stat "$MNT/cluster"
mfs_unmount

# -- cluster mode, fed by the test ------------------------------------------------

FEED=$MFS_TMP/feed
ANSWERS=$MFS_TMP/answers
mkfifo "$FEED" || mfs_bail "mkfifo $FEED"
: >"$ANSWERS"
exec 7<>"$FEED"
NFED=0

# feed [-e ERRNO_VALUE] LINE: one command to the view (clviewmount.c), and
# waits until it was applied; its return must be 0 (or -ERRNO_VALUE).
feed()
{
	local want=0
	if [[ $1 == -e ]]; then
		want=-$2
		shift 2
	fi
	NFED=$((NFED + 1))
	printf '%s\n' "$*" >&7
	if ! mfs_poll 5000 eval "[[ \$(wc -l <'$ANSWERS') -ge $NFED ]]"; then
		mfs_bail "feed $*: not applied within 5 s"
	fi
	local rc
	rc=$(sed -n "${NFED}s/^$NFED //p" "$ANSWERS")
	[[ $rc == "$want" ]] || fail "feed $*: returns $want" "got: $rc"
}

MALLAFS=$CLVIEWMOUNT mfs_mount --feed "$FEED" --answers "$ANSWERS"
C=$MNT/cluster
assert_ls "$MNT" cluster config events metrics registry services
assert_ls "$C" nodes status
assert_ls "$C/nodes"
assert_eq "cluster/: a folder, 0555, the mount's owner" "555 directory 0:0" \
	"$(stat -c '%a %F %u:%g' "$C")"
assert_eq "cluster/nodes mode" "555 directory" "$(stat -c '%a %F' "$C/nodes")"
assert_eq "cluster/status: a regular file, 0444" "444 regular empty file 0:0" \
	"$(stat -c '%a %F %u:%g' "$C/status")"

# cluster/status: the engine's text, its size right in stat.
feed 'status connected\nendpoint http://127.0.0.1:2379\nrevision 5\nlast_event_ms 3\n'
assert_file "$C/status" $'connected\nendpoint http://127.0.0.1:2379\nrevision 5\nlast_event_ms 3\n'
assert_size "$C/status"

# Nodes and services.
feed "svc alpha api $T1 $T1G 0750 state: running\nadmin: active\n"
feed "svc alpha batch 0 0 0755 state: paused\nadmin: pause\n"
feed "node beta"
assert_ls "$C/nodes" alpha beta
assert_ls "$C/nodes/alpha" api batch
assert_ls "$C/nodes/beta"
assert_eq "cluster/nodes/alpha: 0555" "555 directory" "$(stat -c '%a %F' "$C/nodes/alpha")"
assert_file "$C/nodes/alpha/api" $'state: running\nadmin: active\n'
assert_size "$C/nodes/alpha/api"
assert_eq "alpha/api: its service's owner and group, 0750 less write and execute" \
	"440 regular file $T1:$T1G" "$(stat -c '%a %F %u:%g' "$C/nodes/alpha/api")"
assert_eq "alpha/batch: 0755 less write and execute" "444 0:0" \
	"$(stat -c '%a %u:%g' "$C/nodes/alpha/batch")"
# ls -l (readdirplus) agrees.
assert_match "ls -l cluster/nodes/alpha: api is -r--r-----" $'(^|\n)-r--r----- [^\n]* api(\n|$)' \
	"$(ls -l "$C/nodes/alpha")"

# Who may read: the kernel decides from the modes (default_permissions).
assert_eq "mallafs-t1 (the owner) reads alpha/api" $'state: running\nadmin: active' \
	"$(mfs_as mallafs-t1 cat "$C/nodes/alpha/api" 2>&1)"
assert_fails_with EACCES mfs_as mallafs-t2 cat "$C/nodes/alpha/api"
assert_eq "mallafs-t2 reads alpha/batch (0444)" $'state: paused\nadmin: pause' \
	"$(mfs_as mallafs-t2 cat "$C/nodes/alpha/batch" 2>&1)"
assert_eq "mallafs-t2 reads cluster/status" "connected" \
	"$(mfs_as mallafs-t2 head -n 1 "$C/status" 2>&1)"
# An owner's change on its node reaches the modes at once.
feed "svc alpha api $T1 $T1G 0755 state: running\nadmin: active\n"
assert_eq "mallafs-t2 reads alpha/api once it is 0755" $'state: running\nadmin: active' \
	"$(mfs_as mallafs-t2 cat "$C/nodes/alpha/api" 2>&1)"

# -- read-only: every change refused ---------------------------------------------

# As root (the kernel's modes let root through to the daemon).
assert_errno EACCES open "$C/status" w
assert_errno EACCES open "$C/nodes/alpha/api" w
assert_errno EACCES truncate "$C/status" 0
assert_errno EPERM creat "$C/new"
assert_errno EPERM creat "$C/nodes/alpha/new"
assert_errno EPERM mkdir "$C/nodes/gamma"
assert_errno EPERM mkdir "$C/nodes/alpha/sub"
assert_errno EPERM unlink "$C/status"
assert_errno EPERM unlink "$C/nodes/alpha/api"
assert_errno EBUSY rmdir "$C/nodes/alpha"
assert_errno EBUSY rmdir "$C/nodes"
assert_errno EBUSY rmdir "$C"
assert_errno EPERM rename "$C/status" "$C/status2"
assert_errno EPERM rename "$C/nodes/alpha/api" "$C/nodes/alpha/api2"
assert_errno EPERM rename "$C/nodes/alpha" "$C/nodes/gamma"
assert_errno EPERM rename "$C/nodes/alpha/api" "$MNT/registry/api"
assert_errno EPERM mknod "$C/nodes/alpha/fifo" fifo
assert_errno EPERM symlink /tmp "$C/nodes/link"
assert_fails_with EPERM chmod 644 "$C/status"
assert_fails_with EPERM chmod 777 "$C/nodes/alpha/api"
assert_fails_with EPERM chmod 755 "$C/nodes/alpha"
assert_fails_with EPERM chown mallafs-t2 "$C/nodes/alpha/api"
assert_fails_with EPERM chown mallafs-t2 "$C"
# As another user, the kernel refuses first (read-only modes).
assert_fails_with EACCES mfs_as mallafs-t1 sh -c "echo x > '$C/nodes/alpha/api'"
assert_fails_with EACCES mfs_as mallafs-t1 touch "$C/nodes/alpha/new"
assert_fails_with EPERM mfs_as mallafs-t1 chmod 777 "$C/nodes/alpha/api"
# Nothing changed.
assert_ls "$C/nodes" alpha beta
assert_ls "$C/nodes/alpha" api batch
assert_eq "alpha/api unchanged" "444 $T1:$T1G" "$(stat -c '%a %u:%g' "$C/nodes/alpha/api")"
assert_file "$C/status" $'connected\nendpoint http://127.0.0.1:2379\nrevision 5\nlast_event_ms 3\n'

# -- changes reach poll() and inotify -----------------------------------------------

# poll(): POLLPRI|POLLERR on an open cluster/status once its text changes.
# CMD writes one command to the feed (fd 7, inherited).
NFED=$((NFED + 1))
out=$("$WATCHPROBE" poll 3000 "$C/status" -- sh -c 'sleep 0.1; printf "%s\n" "$1" >&7' sh \
	'status disconnected\nendpoint http://127.0.0.1:2379\n' 2>&1)
first=$(sed -n 1p <<<"$out")
mfs_poll 5000 eval "[[ \$(wc -l <'$ANSWERS') -ge $NFED ]]" || fail "the status change was applied"
if [[ $first == *POLLPRI* && $first == *POLLERR* ]]; then
	pass "poll cluster/status: POLLPRI|POLLERR when its text changes ($first)"
else
	fail "poll cluster/status: POLLPRI|POLLERR when its text changes" "got: $out"
fi
assert_match "poll cluster/status: the re-read shows the new text" "disconnected" "$out"
assert_match "poll cluster/status: no POLLPRI once read again" "again: timeout" "$out"
assert_size "$C/status"
# The same text again is no change: no wake-up.
NFED=$((NFED + 1))
out=$("$WATCHPROBE" poll 600 "$C/status" -- sh -c 'printf "%s\n" "$1" >&7' sh \
	'status disconnected\nendpoint http://127.0.0.1:2379\n' 2>&1)
assert_eq "poll cluster/status: the same text again wakes nobody" "timeout" "$(sed -n 1p <<<"$out")"
mfs_poll 5000 eval "[[ \$(wc -l <'$ANSWERS') -ge $NFED ]]" || fail "the status was applied"

# watch SILENCE_MS PATH... LINE: what inotify watchers of each PATH see
# (watchprobe inotify -c) when LINE goes to the feed.
watch()
{
	local silence=$1
	shift
	local n=$#
	local paths=("${@:1:n-1}") line=${*: -1}
	"$WATCHPROBE" inotify -c -t 10000 "$silence" "${paths[@]}" -- \
		sh -c 'printf "%s\n" "$1" >&7' sh "$line" 2>&1 | sed "s|$MNT|MNT|g"
}

# watch_out ARGS...: watch's output in $out, once its line was applied.
watch_out()
{
	out=$(watch "$@")
	NFED=$((NFED + 1))
	mfs_poll 5000 eval "[[ \$(wc -l <'$ANSWERS') -ge $NFED ]]" || fail "applied: ${*: -1}"
}

watch_out "$SILENCE" "$C/status" 'status connected\nendpoint http://127.0.0.1:2380\n'
assert_match "inotify: cluster/status changed -> IN_MODIFY" "MNT/cluster/status MODIFY" "$out"
assert_match "inotify: cluster/status changed -> IN_CLOSE_WRITE" \
	"MNT/cluster/status CLOSE_WRITE" "$out"

watch_out "$SILENCE" "$C/nodes/alpha" "$C/nodes/alpha/batch" \
	'svc alpha batch 0 0 0755 state: running\nadmin: active\n'
assert_match "inotify: a service's text changed -> IN_MODIFY on it" \
	"MNT/cluster/nodes/alpha/batch MODIFY" "$out"
assert_match "inotify: ... and on its folder" "MNT/cluster/nodes/alpha MODIFY batch" "$out"
assert_file "$C/nodes/alpha/batch" $'state: running\nadmin: active\n'

watch_out "$SILENCE" "$C/nodes/alpha" 'svc alpha web 0 0 0755 state: running\n'
assert_match "inotify: a new service -> IN_CREATE in its node's folder" \
	"MNT/cluster/nodes/alpha CREATE web" "$out"
assert_ls "$C/nodes/alpha" api batch web

watch_out "$SILENCE" "$C/nodes/alpha" 'rmsvc alpha web'
assert_match "inotify: a service gone -> IN_DELETE in its node's folder" \
	"MNT/cluster/nodes/alpha DELETE web" "$out"
assert_ls "$C/nodes/alpha" api batch
assert_absent "$C/nodes/alpha/web"

watch_out "$SILENCE" "$C/nodes" 'node gamma'
assert_match "inotify: a new node -> IN_CREATE|IN_ISDIR in cluster/nodes" \
	"MNT/cluster/nodes CREATE,ISDIR gamma" "$out"
assert_ls "$C/nodes" alpha beta gamma

watch_out "$SILENCE" "$C/nodes" "$C/nodes/alpha" 'rmnode alpha'
assert_match "inotify: a node gone -> IN_DELETE of each service" \
	"MNT/cluster/nodes/alpha DELETE api" "$out"
assert_match "inotify: ... then IN_DELETE|IN_ISDIR in cluster/nodes" \
	"MNT/cluster/nodes DELETE,ISDIR alpha" "$out"
assert_ls "$C/nodes" beta gamma
assert_absent "$C/nodes/alpha"
assert_absent "$C/nodes/alpha/api"

# A node that comes back is a new folder, empty.
feed "node alpha"
assert_ls "$C/nodes/alpha"

# -- the events feed shows them ---------------------------------------------------

exec 8<"$MNT/events"
feed "svc beta db 0 0 0700 state: running\n"
feed "rmnode beta"
lines=$("$WATCHPROBE" feed-read 8 300 2>&1 | sed 's/^[0-9]* //')
exec 8<&-
assert_eq "events: the view's changes" \
	$'create cluster/nodes/beta/db 15\ndelete cluster/nodes/beta/db\nrmdir cluster/nodes/beta' "$lines"

# -- bad input from the engine changes nothing ---------------------------------------

feed -e 22 "svc gamma a/b 0 0 0644 x"
feed -e 22 "node bad..name/x"
big=$(head -c 70000 /dev/zero | tr '\0' x)
feed -e 27 "svc gamma big 0 0 0644 $big"
assert_ls "$C/nodes/gamma"

# -- many nodes: a listing resumed across readdir calls, entries coming and going --

for i in $(seq 1 300); do
	printf 'node n%03d\n' "$i" >&7
done
NFED=$((NFED + 300))
mfs_poll 10000 eval "[[ \$(wc -l <'$ANSWERS') -ge $NFED ]]" || fail "300 nodes applied"
assert_eq "ls cluster/nodes: 300 nodes and 2 more" 302 "$(ls "$C/nodes" | grep -c .)"
assert_eq "ls cluster/nodes: each once" 302 "$(ls "$C/nodes" | sort -u | grep -c .)"

mfs_unmount
exec 7>&-
mfs_done
