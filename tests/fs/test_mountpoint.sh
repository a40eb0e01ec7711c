#!/bin/bash
# SPDX-License-Identifier: MIT
# The command line and what is at the mountpoint (issue 14, README "The
# command" and "Errors"): a mountpoint that is not a directory, a live
# mallafs mount, one that does not answer, a stale FUSE mount of another
# filesystem are refused with a message and exit status 1, and nothing is
# mounted; a live mount of something else (tmpfs) is mounted over; a stale
# mallafs mount, left by a daemon killed with kill -9, is unmounted lazily
# and replaced, with a log line, as root and as a user (through fusermount3).
# `mallafs SOURCE MOUNTPOINT`, as mount.fuse3 runs it, with the options
# mount(8) and fstab add; `--config FILE`, `--state FILE`, `--plugin-dir DIR`
# with a space; --help's defaults.
#
# It runs in a mount namespace of its own: what it mounts, and /dev/fuse
# opened to every user for the part run as a user (Debian's udev makes it
# 0666; a container may leave it 0600), stay there.

if [[ -z ${MFS_MOUNTNS:-} ]]; then
	exec unshare --mount --propagation private env MFS_MOUNTNS=1 bash "$0" "$@"
fi
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BOOT=$MFS_TMP/boot.ini
cat >"$BOOT" <<'EOF'
[services.api]
plugins = trace
EOF

# The mounts at PATH, counted from the mount table.
mounts_at()
{
	mfs_mount_ids "$1" | grep -c .
}

not_mounted()
{
	! mfs_mounted "$1"
}

# refused WHAT REGEX: the last mfs_run_daemon exited 1 with a message on
# stderr that matches REGEX.
refused()
{
	assert_eq "$1: exit status 1" 1 "$MFS_RC"
	assert_match "$1: the message says why" "$2" "$MFS_ERR"
}

# == --help ====================================================================

mfs_run_daemon --help
assert_eq "--help: exit status 0" 0 "$MFS_RC"
assert_match "--help names the default plugin directory" \
	'\(default: /[^)]*/mallafs/plugins\)' "$MFS_OUT"
assert_match "--help: max_threads defaults to 64" \
	'-o max_threads=N +at most N worker threads \(default: 64' "$MFS_OUT"
assert_eq "--help prints no other default for max_threads (libfuse's 10)" 1 \
	"$(grep -c 'max_threads' <<<"$MFS_OUT")"
assert_match "--help: max_idle_threads has no limit by default" \
	'max_idle_threads=N.*\(default: no' "$(tr '\n' ' ' <<<"$MFS_OUT")"
assert_match "--help: the events feed keeps 4096 by default" '\(default: 4096\)' "$MFS_OUT"
assert_eq "--help says no (default: -1) nor (default: 10)" '' \
	"$(grep -E 'default: (-1|10)\)' <<<"$MFS_OUT")"

# == the command line ==========================================================

mfs_run_daemon -f a b c
refused "three positional arguments" 'too many arguments: expected \[SOURCE\] MOUNTPOINT'
mfs_run_daemon -f "$MFS_TMP" --config
refused "--config with no FILE" '--config needs a value'

# mount.fuse3's way: TYPE SOURCE MOUNTPOINT -o OPTIONS, with what mount(8)
# and fstab add; --config FILE with a space.
mfs_mount mallafs -o rw,noatime,dev,suid,relatime,_netdev,nofail,noauto,x-systemd.requires=a.service --config "$BOOT"
assert_ls "$MNT/services" api
assert_file "$MNT/services/api/chain" $'trace\nbase\n'
assert_eq "the mount's type is fuse.mallafs" fuse.mallafs \
	"$(awk -v m="$MNT" '$5 == m { for (i = 7; $i != "-"; i++); print $(i + 1) }' /proc/self/mountinfo)"

# == a live mallafs mount ======================================================

mfs_run_daemon -f "$MNT"
refused "a second mallafs on a live mallafs mount" \
	"mountpoint .*/mnt[0-9]+ is already a live mallafs mount: unmount it first"
mfs_run_daemon mallafs "$MNT" -o allow_other
refused "the same in the background, as mount(8) runs it" "already a live mallafs mount"
assert_eq "one mount on the mountpoint" 1 "$(mounts_at "$MNT")"
assert_ls "$MNT/services" api

# A daemon that does not answer (stopped): refused within the probe's 5 s,
# without hanging.
# stopped PID: every thread of PID is stopped (a thread stops only once it
# is scheduled: until then it may still answer a request).
stopped()
{
	local t st
	for t in /proc/"$1"/task/*/stat; do
		st=$(cat "$t" 2>/dev/null) || continue
		st=${st##*) }
		[[ ${st%% *} == T ]] || return 1
	done
}
kill -STOP "$MFS_PID"
mfs_poll 5000 stopped "$MFS_PID" || fail "kill -STOP: every thread of the daemon stops"
t0=$(mfs_now_ms)
mfs_run_daemon -f "$MNT"
t1=$(mfs_now_ms)
kill -CONT "$MFS_PID"
refused "a mallafs mount whose daemon is stopped" "does not answer within 5 s"
assert_true "refused within 9 s ($((t1 - t0)) ms)" test $((t1 - t0)) -lt 9000
assert_eq "still one mount on the mountpoint" 1 "$(mounts_at "$MNT")"
assert_ls "$MNT/services" api
mfs_unmount

# == not a directory ===========================================================

F=$MFS_TMP/file
echo data >"$F"
mfs_run_daemon -f "$F"
refused "a regular file as mountpoint" "mountpoint .*/file is not a directory"
assert_true "nothing is mounted on the file" not_mounted "$F"
assert_eq "the file is left as it was" data "$(cat "$F")"
mfs_run_daemon "$F"
refused "the same in the background" "is not a directory"
assert_true "nothing is mounted on the file" not_mounted "$F"
ln -s "$F" "$MFS_TMP/link"
mfs_run_daemon -f "$MFS_TMP/link"
refused "a symbolic link to a regular file" "is not a directory"
mfs_run_daemon -f "$MFS_TMP/nosuch"
refused "a missing mountpoint" "No such file or directory"
mfs_run_daemon -f /dev/fd/0
refused "a FUSE file descriptor (mount.fuse3's drop_privileges)" "is not supported"

# == a live mount of something else: mounted over ================================

MNT=$MFS_TMP/mnt-tmpfs
mkdir -p "$MNT"
if ! mount -t tmpfs -o size=1m mallafs-test "$MNT"; then
	fail "mount -t tmpfs on $MNT"
else
	echo under >"$MNT/under"
	mfs_mount_again --config="$BOOT"
	assert_eq "two mounts there: tmpfs, mallafs over it" 2 "$(mounts_at "$MNT")"
	assert_ls "$MNT/services" api
	# Not mfs_unmount, which would clear whatever stays mounted there.
	assert_ok fusermount3 -u "$MNT"
	if mfs_poll 10000 eval '! mfs_alive "$MFS_PID"'; then
		wait "$MFS_PID"
		assert_eq "unmounted, the daemon exits with status 0" 0 "$?"
	else
		fail "unmounted, the daemon exits"
	fi
	MFS_PID=''
	mfs_watchdog_stop
	mfs_scan_log "$MFS_LOG" "mallafs over tmpfs"
	assert_eq "the tmpfs is there again" under "$(cat "$MNT/under")"
	umount "$MNT"
fi

# == a stale mallafs mount: replaced ==============================================

MNT=$MFS_TMP/mnt-stale
mkdir -p "$MNT"
mfs_mount_again --config "$BOOT"
echo v >"$MNT/services/api/store/k"
kill -9 "$MFS_PID"
mfs_poll 5000 eval '! mfs_alive "$MFS_PID"'
wait "$MFS_PID" 2>/dev/null
MFS_PID=''
mfs_watchdog_stop
mfs_bounded 5 ls "$MNT" >"$MFS_TMP/ls.out" 2>&1
assert_match "after kill -9 the mount is stale" 'Transport endpoint is not connected' \
	"$(cat "$MFS_TMP/ls.out")"
mfs_mount_again --config "$BOOT"
mfs_poll 2000 grep -q 'stale mallafs mount' "$MFS_LOG"
assert_match "the log says the stale mount was unmounted" \
	"warning: mountpoint .*/mnt-stale was a stale mallafs mount \(its daemon is gone: Transport endpoint is not connected\): unmounted it lazily" \
	"$(cat "$MFS_LOG")"
# The table as it settles (a loaded machine once read 0 here, with the tree
# answering right after): a second mount, or none, stays wrong.
mfs_poll 2000 eval '(($(mounts_at "$MNT") == 1))'
assert_eq "one mount on the mountpoint" 1 "$(mounts_at "$MNT")"
assert_ls "$MNT/services" api
assert_ls "$MNT/services/api/store"
mfs_unmount

# A stale mount of another FUSE filesystem is not ours to remove.
# (mallafs with -o subtype=other stands for it.)
mfs_mount_again -o subtype=other
kill -9 "$MFS_PID"
mfs_poll 5000 eval '! mfs_alive "$MFS_PID"'
wait "$MFS_PID" 2>/dev/null
MFS_PID=''
mfs_watchdog_stop
mfs_run_daemon -f "$MNT"
refused "a stale mount of another FUSE filesystem" \
	'Transport endpoint is not connected \(a stale mount of type fuse.other, not mallafs.s'
assert_eq "it is left in place" 1 "$(mounts_at "$MNT")"
umount -l "$MNT"

# As a user: the stale mount goes with fusermount3 -u -z.
mfs_user mallafs-t1
if ! mfs_as mallafs-t1 test -r /dev/fuse -a -w /dev/fuse; then
	read -r major minor < <(stat -c '%t %T' /dev/fuse)
	mknod -m 0666 "$MFS_TMP/fuse" c $((16#$major)) $((16#$minor)) &&
		mount --bind "$MFS_TMP/fuse" /dev/fuse ||
		fail "/dev/fuse opened to users in this mount namespace"
fi
MNT=$MFS_TMP/mnt-user
mkdir -p "$MNT"
chown mallafs-t1 "$MNT"
start_as_user()
{
	local log=$1
	# setpriv (mfs_as) execs the daemon: $! is its PID.
	setpriv --reuid=mallafs-t1 --regid=mallafs-t1 --init-groups -- \
		"$MALLAFS" -f --config "$BOOT" "$MNT" </dev/null >"$log" 2>&1 &
	USER_PID=$!
	MFS_CHILDREN+=("$USER_PID")
	if mfs_poll 10000 eval 'grep -qF "mounted on $MNT" "$log"'; then
		pass "mallafs as mallafs-t1 mounts"
	else
		fail "mallafs as mallafs-t1 mounts" "$(cat "$log")"
	fi
}
start_as_user "$MFS_TMP/user1.log"
kill -9 "$USER_PID"
mfs_poll 5000 eval '! mfs_alive "$USER_PID"'
start_as_user "$MFS_TMP/user2.log"
assert_match "the user's daemon logs the stale mount" "stale mallafs mount" \
	"$(cat "$MFS_TMP/user2.log")"
assert_eq "one mount on the mountpoint" 1 "$(mounts_at "$MNT")"
mfs_bounded 5 mfs_as mallafs-t1 ls "$MNT/services" >"$MFS_TMP/ls.out" 2>&1
assert_eq "the user sees the new tree" api "$(cat "$MFS_TMP/ls.out")"
assert_ok mfs_as mallafs-t1 fusermount3 -u "$MNT"
if mfs_poll 10000 eval '! mfs_alive "$USER_PID"'; then
	wait "$USER_PID"
	assert_eq "the user's daemon exits with status 0" 0 "$?"
else
	fail "the user's daemon exits once unmounted"
fi
assert_true "nothing is mounted there" not_mounted "$MNT"
mfs_scan_log "$MFS_TMP/user2.log" "the user's daemon"

# == --state FILE, --plugin-dir DIR with a space ====================================

PDIR=$MFS_TMP/plugins
mkdir -p "$PDIR"
cp "$READONLY_SO" "$PDIR/"
mfs_mount --state "$MFS_TMP/state.db" --plugin-dir "$PDIR"
assert_ok mkdir "$MNT/services/s"
assert_ok mkdir "$MNT/services/s/plugins/readonly"
mfs_unmount
assert_true "--state FILE made the database" test -s "$MFS_TMP/state.db"

mfs_done
