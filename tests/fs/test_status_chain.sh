#!/bin/bash
# SPDX-License-Identifier: MIT
# services/NAME/status, chain and plugins/ (SPEC.md): the status format and
# the admin states, writes applied (or refused) by each write() like a sysfs
# attribute, O_TRUNC that wipes nothing, generated files rendered from the
# current state with the right st_size and one snapshot per open, the
# read-only chain, and the plugin errors that need no plugin but base.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# status_is STATE ADMIN [RESTARTS]: the first three lines of status.
status_is()
{
	local want
	want=$(printf 'state: %s\nadmin: %s\nrestarts: %s' "$1" "$2" "${3:-0}")
	assert_eq "status: state $1, admin $2" "$want" "$(head -n 3 "$S/status")"
}

status_field()
{
	sed -n "s/^$1: //p" "$S/status"
}

mfs_mount
assert_ok mkdir "$MNT/services/svc"
S=$MNT/services/svc

# The format: exactly seven lines.
assert_file "$S/status" $'state: running\nadmin: active\nrestarts: 0\nlast_restart: -\nlast_error: -\nretries: 0\nnext_retry: -\n'
assert_size "$S/status"
assert_file "$S/chain" $'base\n'
assert_size "$S/chain"

# The admin states; the store stays readable and writable in each.
assert_ok bash -c "echo pause > '$S/status'"
status_is paused pause
assert_eq "status still has seven lines" 7 "$(wc -l <"$S/status")"
assert_size "$S/status"
assert_ok bash -c "echo paused-value > '$S/store/k'"
assert_file "$S/store/k" $'paused-value\n'

assert_ok bash -c "echo inactive > '$S/status'"
status_is stopped inactive
assert_size "$S/status"
assert_file "$S/store/k" $'paused-value\n'
assert_ok bash -c "echo stopped-value > '$S/store/k'"
assert_file "$S/store/k" $'stopped-value\n'
assert_ok bash -c "echo other >> '$S/store/k'"
assert_file "$S/store/k" $'stopped-value\nother\n'

assert_ok bash -c "echo active > '$S/status'"
status_is running active
assert_size "$S/status"
assert_file "$S/store/k" $'stopped-value\nother\n'
assert_eq "last_error after good writes" - "$(status_field last_error)"

# Without a trailing newline, and with one write() each.
assert_write OK "$S/status" pause
status_is paused pause
assert_write OK "$S/status" $'active\n'
status_is running active

# Anything else: the write() fails with EINVAL, nothing changes, and the
# reason goes to last_error.
assert_write EINVAL "$S/status" bogus
assert_fails_with EINVAL bash -c "echo bogus > '$S/status'"
for bad in "Active" "active extra" $'active\n\n' " pause" "paused" "running"; do
	assert_write EINVAL "$S/status" "$bad"
done
status_is running active
assert_eq "status still has seven lines" 7 "$(wc -l <"$S/status")"
assert_ne "last_error is set after a refused write" - "$(status_field last_error)"
assert_size "$S/status"

# Each write() is applied before it returns: several writes on one fd.
if exec 3>"$S/status"; then
	echo pause >&3
	status_is paused pause
	echo inactive >&3
	status_is stopped inactive
	echo active >&3
	status_is running active
	exec 3>&-
else
	fail "open status for writing"
fi

# O_TRUNC (and the shell's `: >`) wipes nothing.
before=$(cat "$S/status")
assert_errno OK open "$S/status" wt
assert_eq "status after an O_TRUNC open" "$before" "$(cat "$S/status")"
assert_ok bash -c ": > '$S/status'"
assert_eq "status after : > status" "$before" "$(cat "$S/status")"
assert_size "$S/status"

# One consistent snapshot per open: a change between two reads of one open
# file does not show in it; the next open shows it.
snap=$("$FSPROBE" snapshot "$S/status" 5 "$S/status" pause)
assert_eq "one open reads one snapshot across a change" "$before" "$snap"
status_is paused pause
snap=$("$FSPROBE" snapshot "$S/status" 3)
assert_eq "a read in 3-byte chunks gives what cat gives" "$(cat "$S/status")" "$snap"
assert_ok bash -c "echo active > '$S/status'"
status_is running active

# No stale status: st_size and content follow every change at once.
stale=''
for i in $(seq 1 30); do
	for st in pause:paused inactive:stopped active:running; do
		echo "${st%%:*}" >"$S/status"
		got=$(head -n 1 "$S/status")
		size=$("$FSPROBE" stat-size "$S/status")
		bytes=$(wc -c <"$S/status")
		if [[ $got != "state: ${st#*:}" || $size != "$bytes" ]]; then
			stale="round $i, wrote ${st%%:*}: read '$got', st_size $size for $bytes bytes"
			break 2
		fi
	done
done
assert_eq "90 admin changes: status never stale" '' "$stale"

# chain is read-only (EPERM or EACCES) and stays as it was.
assert_fails_with 'EPERM|EACCES' bash -c "echo x > '$S/chain'"
assert_errno 'EPERM|EACCES' open "$S/chain" w
assert_errno 'EPERM|EACCES' open "$S/chain" rw
assert_errno 'EPERM|EACCES' truncate "$S/chain" 0
# SPEC.md is silent on rm of the generated files; as in sysfs, not allowed.
assert_errno 'EPERM|EACCES' unlink "$S/chain"
assert_errno 'EPERM|EACCES' unlink "$S/status"
assert_errno 'EPERM|EACCES|EXDEV' rename "$S/chain" "$S/store/chain"
assert_file "$S/chain" $'base\n'
assert_size "$S/chain"
assert_ls "$S" chain config config.ini plugins status store

# plugins/: the errors that need no plugin but base, each leaving the chain
# as it was and its reason in last_error.
assert_ok bash -c "echo active > '$S/status'"
assert_fails_with ENOENT mkdir "$S/plugins/nosuch"
assert_errno ENOENT mkdir "$S/plugins/nosuch"
assert_ne "last_error is set after mkdir plugins/nosuch" - "$(status_field last_error)"
assert_fails_with EEXIST mkdir "$S/plugins/base"
assert_errno EEXIST mkdir "$S/plugins/base"
assert_fails_with EBUSY rmdir "$S/plugins/base"
assert_errno EBUSY rmdir "$S/plugins/base"
assert_errno ENOENT rmdir "$S/plugins/nosuch"
assert_ls "$S/plugins" base
assert_file "$S/chain" $'base\n'
status_is running active
# Plugin folders are empty.
assert_ls "$S/plugins/base"
assert_errno 'EPERM|EACCES' creat "$S/plugins/base/file"

# config/ and config.ini read with the chain base alone.
assert_ok cat "$S/config.ini"
assert_size "$S/config.ini"
assert_ok ls "$S/config"

mfs_unmount
mfs_done
