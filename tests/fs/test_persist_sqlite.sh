#!/bin/bash
# SPDX-License-Identifier: MIT
# persist on SQLite (issue 13): the database at `path` gets each change as
# rows, within 50 ms under sync = batch, before write() returns under
# sync = always; status shows persist_last_commit and persist_error. A full
# disk (a tiny tmpfs) under batch shows in status, the store keeps serving,
# and the database catches up by itself when space returns; under always a
# write fails with ENOSPC and changes nothing. A read-only database is
# refused at start with the reason. Needs root (mount -t tmpfs).

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mfs_need sqlite3

# row DB KEY: the value the database holds for KEY ("" when none).
row()
{
	sqlite3 "$1" "select value from store where key = '$2'" 2>/dev/null
}

# has_row DB KEY VALUE
has_row()
{
	[[ $(row "$1" "$2") == "$3" ]]
}

# rows_are DB N: the database holds N rows.
rows_are()
{
	[[ $(sqlite3 "$1" 'select count(*) from store' 2>/dev/null) == "$2" ]]
}

# error_is SERVICE_DIR TEXT: persist_error in status is TEXT.
error_is()
{
	[[ $(status_field "$1" persist_error) == "$2" ]]
}

# persist_on SERVICE_DIR PATH SYNC: persist at PATH in SYNC mode.
persist_on()
{
	assert_ok mkdir "$1"
	assert_ok mkdir "$1/config/persist"
	assert_ok bash -c "echo '$2' > '$1/config/persist/path'"
	assert_ok bash -c "echo '$3' > '$1/config/persist/sync'"
	assert_ok mkdir "$1/plugins/persist"
	assert_eq "$(basename "$1") runs" running "$(status_field "$1" state)"
}

mfs_mount

# == batch: the row within 100 ms ===================================================

S=$MNT/services/b
DB=$MFS_TMP/b.db
persist_on "$S" "$DB" batch
assert_eq "status before any commit" - "$(status_field "$S" persist_last_commit)"
assert_eq "no error" - "$(status_field "$S" persist_error)"
assert_ok bash -c "echo hello > '$S/store/k'"
assert_true "batch: the row is there within 100 ms" mfs_poll 100 has_row "$DB" k hello
assert_match "status shows the commit time" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$' \
	"$(status_field "$S" persist_last_commit)"
assert_eq "application_id is persist's" $((0x6d6c6670)) "$(sqlite3 "$DB" 'pragma application_id')"
assert_ok mv "$S/store/k" "$S/store/k2"
assert_true "a rename moves the row" mfs_poll 1000 has_row "$DB" k2 hello
assert_eq "the old row is gone" 0 "$(sqlite3 "$DB" "select count(*) from store where key = 'k'")"
assert_ok rm "$S/store/k2"
assert_true "a delete removes the row" mfs_poll 1000 rows_are "$DB" 0
assert_write EINVAL "$S/config/persist/sync" sometimes
assert_reason "sync accepts nothing else" "$S" "sync must be batch or always, not 'sometimes'"
assert_file "$S/config/persist/sync" $'batch\n'

# == always: the row before write() returns ==========================================

A=$MNT/services/a
ADB=$MFS_TMP/a.db
persist_on "$A" "$ADB" always
assert_ok bash -c "echo now > '$A/store/k'"
assert_eq "always: the row is there when echo returns" now "$(row "$ADB" k)"
assert_ok bash -c "echo more >> '$A/store/k'"
assert_eq "always: an append too" $'now\nmore' "$(row "$ADB" k)"
assert_ok rm "$A/store/k"
assert_eq "always: a delete too" 0 "$(sqlite3 "$ADB" 'select count(*) from store')"

# == a full disk ======================================================================

TINY=$MFS_TMP/tiny
mkdir "$TINY"
mount -t tmpfs -o size=512k tmpfs "$TINY" || mfs_bail "mount tmpfs"
trap 'umount -l "$TINY" 2>/dev/null' EXIT
F=$MNT/services/full
FDB=$TINY/full.db
persist_on "$F" "$FDB" batch
A2=$MNT/services/fa
persist_on "$A2" "$TINY/fa.db" always
assert_ok bash -c "echo kept > '$A2/store/v'"
assert_ok bash -c "echo before > '$F/store/k'"
assert_true "the first row is committed" mfs_poll 1000 has_row "$FDB" k before
# Fill the rest of the disk.
dd if=/dev/zero of="$TINY/filler" bs=4k 2>/dev/null
assert_ok bash -c "head -c 20000 /dev/urandom | base64 > '$F/store/big'"
assert_ok bash -c "echo after > '$F/store/k'"
assert_true "batch: status shows the error" mfs_poll 2000 \
	grep -q 'persist_error: .*full.*(will retry)' "$F/status"
assert_file "$F/store/k" $'after\n'
assert_eq "still running" running "$(status_field "$F" state)"
assert_write ENOSPC "$A2/store/v" "$(head -c 60000 /dev/urandom | base64 -w0)"
assert_file "$A2/store/v" $'kept\n'
assert_reason "always: the refusal" "$A2" "persist refused put v"
assert_eq "the row is unchanged" kept "$(row "$TINY/fa.db" v)"
rm -f "$TINY/filler"
assert_true "batch catches up by itself when space returns" mfs_poll 8000 has_row "$FDB" k after
assert_true "persist_error goes back to -" mfs_poll 2000 error_is "$F" -
assert_eq "the big value too" "$(cat "$F/store/big")" "$(row "$FDB" big)"

# == a read-only database ============================================================

R=$MNT/services/ro
RDB=$MFS_TMP/ro.db
persist_on "$R" "$RDB" batch
assert_ok bash -c "echo inactive > '$R/status'"
chmod 0444 "$RDB"
echo active >"$R/status" 2>/dev/null
assert_eq "a read-only database fails the start" failed "$(status_field "$R" state)"
assert_reason "read-only" "$R" "read-only"

# == never on a FUSE filesystem ======================================================

assert_write EINVAL "$R/config/persist/path" "$MNT/services/ro/store/x.db"
assert_reason "a path inside mallafs's own mount is refused" "$R" "inside mallafs's own mount"
# Another daemon's mount (a second mallafs): every commit would wait for it.
M2=$MFS_TMP/other
mkdir -p "$M2"
"$MALLAFS" -f "$M2" </dev/null >"$MFS_TMP/other.log" 2>&1 &
OTHER=$!
MFS_CHILDREN+=("$OTHER")
mfs_poll 5000 mfs_mounted "$M2" || fail "a second mallafs mounts"
assert_ok mkdir "$M2/config/app"
chmod 0644 "$RDB"
echo inactive >"$R/status"
assert_ok bash -c "echo '$M2/config/app/x.db' > '$R/config/persist/path'"
echo active >"$R/status" 2>/dev/null
assert_eq "a database on another FUSE filesystem fails the start" failed "$(status_field "$R" state)"
assert_reason "... with the reason" "$R" "on a FUSE filesystem"
fusermount3 -u "$M2"
mfs_poll 5000 eval "! mfs_alive $OTHER" || fail "the second mallafs exits"

# == a clean stop commits what batch holds ===========================================

assert_ok bash -c "echo last > '$S/store/final'"
mfs_unmount
assert_eq "the unmount committed the last change" last "$(row "$DB" final)"
assert_absent "$DB-wal"
mfs_done
