#!/bin/bash
# SPDX-License-Identifier: MIT
# The daemon's life (SPEC.md, "The command"): SIGTERM, SIGINT and
# fusermount3 -u unmount cleanly with exit status 0, with services running,
# paused and stopped, and with files held open; -s and -d work; without -f
# it goes to the background once mounted; refused operations are logged on
# stderr in the foreground. Each daemon log is checked for sanitizer output.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Some state for the daemon to tear down.
populate()
{
	assert_true "populate: services, keys, config, pool" bash -e -c "
		cd '$MNT'
		mkdir services/a services/b services/c
		echo v > services/a/store/k
		head -c 200000 /dev/urandom > services/a/store/big
		echo pause > services/b/status
		echo inactive > services/c/status
		echo w > services/c/store/k
		mkdir config/app
		echo x > config/app/key
		mkdir registry/pool"
}

mfs_mount
populate
mfs_signal_unmount TERM

mfs_mount
populate
mfs_signal_unmount INT

mfs_mount
populate
mfs_unmount

# Files held open do not keep SIGTERM from unmounting; reading one of them
# fails afterwards.
mfs_mount
populate
exec 4<"$MNT/services/a/store/k"
exec 5>"$MNT/services/a/store/held"
kill -TERM "$MFS_PID"
mfs_wait_exit 0 "SIGTERM with files open"
if cat <&4 >/dev/null 2>&1; then
	fail "a file held open across the unmount fails to read afterwards"
else
	pass "a file held open across the unmount fails to read afterwards"
fi
exec 4<&- 5>&-

# Data is gone with the daemon: a new mount starts empty.
mfs_mount
assert_ls "$MNT/services"
assert_ls "$MNT/config"
assert_ls "$MNT/registry"
mfs_unmount

# Single-threaded and debug modes.
mfs_mount -s
populate
assert_file "$MNT/services/a/store/k" $'v\n'
assert_true "rw-loop with -s" "$FSPROBE" rw-loop "$MNT/services/a/store/loop" 50
mfs_signal_unmount TERM

mfs_mount -d
populate
assert_file "$MNT/services/a/store/k" $'v\n'
assert_true "-d writes a debug log on stderr" test -s "$MFS_LOG"
mfs_unmount

# Refused operations go to the log (stderr in the foreground), one line each.
mfs_mount
assert_ok mkdir "$MNT/services/s"
lines_before=$(wc -l <"$MFS_LOG") # read by the eval below
assert_errno ENOENT mkdir "$MNT/services/s/plugins/nosuch"
assert_write EINVAL "$MNT/services/s/status" bogus
# shellcheck disable=SC2016 # expanded by eval, at each poll
if mfs_poll 1000 eval '(( $(wc -l <"$MFS_LOG") >= lines_before + 2 ))'; then
	pass "each refused operation adds a line to the log"
else
	fail "each refused operation adds a line to the log" "$(tail -n 5 "$MFS_LOG")"
fi
assert_true "the log names the missing plugin" grep -q nosuch "$MFS_LOG"
mfs_signal_unmount TERM

# Without -f: the command returns once mounted, the daemon lives on in the
# background (logging to syslog) until fusermount3 -u.
if ! mfs_wrapper; then
	BG=$MFS_TMP/background
	mkdir -p "$BG"
	bg_pids()
	{
		pgrep -f -x -- "$MALLAFS $BG"
	}
	if timeout 10 "$MALLAFS" "$BG" </dev/null >"$MFS_TMP/bg.log" 2>&1; then
		pass "mallafs MOUNTPOINT returns 0"
	else
		fail "mallafs MOUNTPOINT returns 0" "$(cat "$MFS_TMP/bg.log")"
	fi
	if mfs_mounted "$BG"; then
		pass "mallafs MOUNTPOINT has mounted when it returns"
		assert_ok mkdir "$BG/services/bg"
		assert_ok bash -c "echo v > '$BG/services/bg/store/k'"
		assert_file "$BG/services/bg/store/k" $'v\n'
		assert_ok fusermount3 -u "$BG"
		if mfs_poll 5000 eval '[[ -z $(bg_pids) ]]'; then
			pass "the background daemon exits after fusermount3 -u"
		else
			fail "the background daemon exits after fusermount3 -u" "$(bg_pids)"
			for pid in $(bg_pids); do
				kill -9 "$pid"
			done
		fi
	else
		fail "mallafs MOUNTPOINT has mounted when it returns"
		for pid in $(bg_pids); do
			kill -9 "$pid"
		done
	fi
	if mfs_mounted "$BG"; then
		fail "the background mount is gone"
		fusermount3 -u -z "$BG" 2>/dev/null || umount -l "$BG"
	fi
	mfs_scan_log "$MFS_TMP/bg.log" "background"
fi

mfs_done
