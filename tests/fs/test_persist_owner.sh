#!/bin/bash
# SPDX-License-Identifier: MIT
# persist writes nothing through a symbolic link that another local user
# planted (issue 10, item 2). Root's service keeps its store in a folder
# every user may write, as /tmp is (mode 1777); the test user mallafs-t1
# plants links there, pointing at a file of root's: at the name the
# temporary file used to have (the store's name, ".tmp.", the daemon's PID),
# at the store's own name, and in place of a folder on the path. None of
# them changes root's file; persist refuses a link at the name or on the
# way with a reason in last_error and the log, and a FIFO at the name does
# not block the service's start. Needs root (to create the user and to
# chown); skipped otherwise.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

U=mallafs-t1
mfs_user "$U"
mfs_need sqlite3

# row_is DB KEY VALUE: the database's row of KEY holds VALUE.
row_is()
{
	[[ $(sqlite3 "$1" "select value from store where key = '$2'" 2>/dev/null) == "$3" ]]
}

SHARED=$MFS_TMP/shared
mkdir -m 1777 "$SHARED" || mfs_bail "mkdir $SHARED"
VICTIM=$MFS_TMP/victim
printf 'untouched' >"$VICTIM"
chmod 0644 "$VICTIM"

# victim_untouched WHAT: root's file still holds what it held.
victim_untouched()
{
	assert_file "$VICTIM" 'untouched'
	assert_eq "$1: root's file is still a regular file" 'regular file' "$(stat -c %F "$VICTIM")"
}

mfs_mount -o allow_other
S=$MNT/services/keep

# == a link at the temporary file's old, guessable name ===========================

assert_ok mkdir "$S"
assert_ok mkdir "$S/config/persist"
assert_ok bash -c "echo '$SHARED/keep.store' > '$S/config/persist/path'"
assert_ok mkdir "$S/plugins/persist"
assert_true "the store file is created" test -f "$SHARED/keep.store"
assert_true "$U plants a link at keep.store.tmp.PID" \
	mfs_as "$U" ln -s "$VICTIM" "$SHARED/keep.store.tmp.$MFS_PID"
assert_ok bash -c "echo secret > '$S/store/k'"
assert_true "the change is saved" mfs_poll 3000 row_is "$SHARED/keep.store" k secret
victim_untouched "a link at the old temporary name"
assert_eq "the planted link is left as it was" "$VICTIM" \
	"$(readlink "$SHARED/keep.store.tmp.$MFS_PID")"
assert_eq "the store file is a regular file of root's, mode 0600" 'regular file 0 600' \
	"$(stat -c '%F %u %a' "$SHARED/keep.store")"

# == a link at the store's own name ===============================================

S2=$MNT/services/other
assert_true "$U plants a link at other.store" \
	mfs_as "$U" ln -s "$VICTIM" "$SHARED/other.store"
assert_ok mkdir "$S2"
assert_ok mkdir "$S2/config/persist"
assert_ok bash -c "echo '$SHARED/good.store' > '$S2/config/persist/path'"
assert_ok mkdir "$S2/plugins/persist"
assert_ok bash -c "echo mine > '$S2/store/k'"
# A new path restarts the service; the start refuses the link, and the
# change is rolled back.
assert_write EIO "$S2/config/persist/path" "$SHARED/other.store"
assert_eq "the failed restart is rolled back: running" running "$(status_field "$S2" state)"
assert_file "$S2/config/persist/path" "$SHARED/good.store"$'\n'
assert_reason "a link at the name" "$S2" "it is a symbolic link (persist follows none)"
victim_untouched "a link at the store's name"
assert_file "$S2/store/k" $'mine\n'

# == a link in place of a folder ==================================================

assert_true "$U makes a link to /etc look like a folder" \
	mfs_as "$U" ln -s /etc "$SHARED/dir"
assert_ok bash -c "echo inactive > '$S2/status'"
assert_ok bash -c "echo '$SHARED/dir/mallafs-test-$$.store' > '$S2/config/persist/path'"
echo active >"$S2/status" 2>/dev/null
assert_eq "the service fails to start" failed "$(status_field "$S2" state)"
assert_reason "a link on the way" "$S2" "is a symbolic link (persist follows none)"
assert_absent "/etc/mallafs-test-$$.store"

# == a FIFO at the name ===========================================================

assert_true "$U makes a FIFO at fifo.store" mfs_as "$U" mkfifo "$SHARED/fifo.store"
assert_ok bash -c "echo inactive > '$S2/status'"
assert_ok bash -c "echo '$SHARED/fifo.store' > '$S2/config/persist/path'"
mfs_bounded 5 bash -c "echo active > '$S2/status'" 2>/dev/null
assert_ne "the start does not block on the FIFO" 124 "$?"
assert_eq "the service fails to start" failed "$(status_field "$S2" state)"
assert_reason "a FIFO at the name" "$S2" "not a regular file"
assert_responsive "$S/store/k" 5

mfs_unmount
victim_untouched "after the unmount"
mfs_done
