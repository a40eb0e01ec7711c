#!/bin/bash
# SPDX-License-Identifier: MIT
# Permissions (README "Permissions", issue 10): with -o allow_other, two
# unprivileged users and root share one tree. Each user does what they own
# and no more: the modes and owners stat shows are what the kernel enforces,
# the registry's sticky bit keeps others' names, only your own PIDs can be
# registered, and root hands a service over with chown (delegation), after
# which its hooks run as its new owner and its persist file is written with
# that owner's rights. Every refusal leaves everything as it was.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mfs_need setpriv util-linux
A=mallafs-t1
B=mallafs-t2
mfs_user "$A"
mfs_user "$B"
AUID=$(id -u "$A")
AGID=$(id -g "$A")
BUID=$(id -u "$B")

# fsprobe where the users can run it (the build may sit in /root).
PROBE=$MFS_TMP/fsprobe
cp "$FSPROBE" "$PROBE" && chmod 0755 "$PROBE" || mfs_bail "copy fsprobe"

# as USER ERRNO|OK OP PATH [ARG...]: one system call as USER.
as()
{
	local user=$1 want=$2 got
	shift 2
	got=$(mfs_as "$user" "$PROBE" errno "$@" 2>&1)
	mfs_expect_errno "$want" "$got" "$user: $(mfs_cmdline "$@")"
}

# as_write USER ERRNO|OK PATH DATA: `echo DATA > PATH` as USER (the write's errno).
as_write()
{
	local user=$1 want=$2 path=$3 data=$4 got
	got=$(mfs_as "$user" "$PROBE" write "$path" "$data" 2>&1)
	mfs_expect_errno "$want" "$got" "$user: write($(mfs_rel "$path"), $(mfs_show "$data"))"
}

# assert_owner PATH OWNER GROUP MODE: what stat shows (numeric ids, octal mode).
assert_owner()
{
	local got want="$2 $3 $4"
	got=$(stat -c '%u %g %a' "$1" 2>&1)
	if [[ $got == "$want" ]]; then
		pass "stat $(mfs_rel "$1"): $got"
	else
		fail "stat $(mfs_rel "$1"): $want" "got: $got"
	fi
}

mfs_mount -o allow_other
S=$MNT/services
R=$MNT/registry

# ---- the defaults ----
assert_owner "$MNT" 0 0 755
assert_owner "$S" 0 0 755
assert_owner "$MNT/config" 0 0 755
assert_owner "$R" 0 0 1777
assert_owner "$MNT/events" 0 0 600
assert_ok mkdir "$S/core" "$S/core/plugins/ttl" "$MNT/config/app"
assert_ok sh -c "echo secret > '$S/core/store/k' && echo 1 > '$MNT/config/app/key'"
assert_owner "$S/core" 0 0 755
assert_owner "$S/core/store" 0 0 755
assert_owner "$S/core/store/k" 0 0 644
assert_owner "$S/core/chain" 0 0 444
assert_owner "$S/core/status" 0 0 644

# ---- what another user cannot do to root's ----
as "$A" EACCES open "$S/core/store/k" w
as "$A" EACCES creat "$S/core/store/new"
as "$A" EACCES unlink "$S/core/store/k"
as "$A" EACCES rename "$S/core/store/k" "$S/core/store/k2"
as "$A" EACCES mkdir "$S/mine"
as "$A" EACCES rmdir "$S/core"
as "$A" EACCES mkdir "$S/core/plugins/exec"
as "$A" EACCES rmdir "$S/core/plugins/ttl"
as "$A" EACCES open "$S/core/status" w
as "$A" EACCES open "$S/core/config.ini" w
as "$A" EACCES mkdir "$S/core/config/ttl2"
as "$A" EACCES open "$MNT/config/app/key" w
as "$A" EACCES mkdir "$MNT/config/mine"
as "$A" EACCES open "$MNT/events" r
as "$A" OK open "$S/core/store/k" r
assert_fails_with EPERM mfs_as "$A" chmod 666 "$S/core/store/k"
assert_fails_with EPERM mfs_as "$A" chown "$A" "$S/core/store/k"
assert_fails_with EPERM mfs_as "$A" chmod 777 "$S/core"
assert_file "$S/core/store/k" $'secret\n'
assert_ls "$S" core
assert_file "$S/core/chain" $'ttl\nbase\n'
assert_match "core is still running" '^state: running' "$(cat "$S/core/status")"

# ---- the registry: anyone registers their own PIDs; the sticky bit ----
# setpriv execs sleep, so $! is the sleeping process.
mfs_spawn PA setpriv --reuid="$A" --regid="$A" --init-groups -- sleep 300
mfs_spawn PA2 setpriv --reuid="$A" --regid="$A" --init-groups -- sleep 300
mfs_spawn PB setpriv --reuid="$B" --regid="$B" --init-groups -- sleep 300
mfs_spawn PR sleep 300
wait_owner()
{
	mfs_poll 2000 eval "[[ \$(stat -c %U /proc/$1 2>/dev/null) == $2 ]]" ||
		mfs_bail "process $1 is not $2's"
}
wait_owner "$PA" "$A"
wait_owner "$PB" "$B"
as_write "$A" OK "$R/alice" "$PA hello"
assert_file "$R/alice" "$PA hello"$'\n'
assert_owner "$R/alice" "$AUID" 0 644
# Another user's `>` on it is EACCES, rm is EPERM; nothing changes.
as_write "$B" open:EACCES "$R/alice" "$PB mine"
as "$B" EPERM unlink "$R/alice"
as "$B" EPERM rename "$R/alice" "$R/bob"
assert_file "$R/alice" "$PA hello"$'\n'
# For the owner, SPEC's errnos: EEXIST (another of its PIDs), ESRCH, EINVAL.
as_write "$A" EEXIST "$R/alice" "$PA2"
as_write "$A" ESRCH "$R/alice2" "999999999"
as_write "$A" EINVAL "$R/alice" "not-a-pid"
assert_file "$R/alice" "$PA hello"$'\n'
# Only your own PIDs: EPERM, and nothing left behind; root registers any.
as_write "$A" EPERM "$R/stolen" "$PB"
as_write "$A" EPERM "$R/rootish" "$PR"
assert_absent "$R/stolen"
assert_absent "$R/rootish"
assert_write OK "$R/for-alice" "$PA2"
assert_owner "$R/for-alice" "$AUID" 0 644
as "$A" OK unlink "$R/alice"
assert_absent "$R/alice"
# A pool: members are their PIDs' owners', the pool's sticky bit keeps them
# (from all but the pool's owner, as in /tmp).
assert_ok mkdir "$R/workers"
as "$A" OK mkdir "$R/alices"
assert_owner "$R/alices" "$AUID" "$AGID" 1777
as_write "$B" OK "$R/workers/$PB" "b"
as_write "$A" OK "$R/workers/$PA" "a"
as_write "$A" open:EACCES "$R/workers/$PB" "a"
as "$A" EPERM unlink "$R/workers/$PB"
as_write "$B" open:EACCES "$R/workers/$PA" "b"
as_write "$B" EPERM "$R/workers/$PA2" "b"
assert_file "$R/workers/$PB" $'b\n'
assert_owner "$R/workers/$PB" "$BUID" 0 644
as "$A" EPERM rmdir "$R/workers"
as "$B" EPERM rmdir "$R/alices"
mfs_kill_child "$PB"
assert_ok mfs_poll 2000 eval "[[ ! -e '$R/workers/$PB' ]]"

# ---- delegation: root hands a service to a user ----
assert_ok mkdir "$S/app" "$S/app/plugins/ttl"
assert_ok sh -c "echo v1 > '$S/app/store/k'"
assert_owner "$S/app/store/k" 0 0 644 # cached by the kernel now
assert_ok chown "$A:$A" "$S/app"
assert_owner "$S/app" "$AUID" "$AGID" 755
assert_owner "$S/app/store" "$AUID" "$AGID" 755
assert_owner "$S/app/store/k" "$AUID" "$AGID" 644
assert_owner "$S/app/status" "$AUID" "$AGID" 644
as_write "$A" OK "$S/app/store/k" "v2"
as_write "$A" OK "$S/app/store/new" "n"
as "$A" OK mkdir "$S/app/plugins/limits"
as_write "$A" OK "$S/app/config/limits/max_keys" "100"
as "$A" OK rmdir "$S/app/plugins/limits"
as_write "$A" OK "$S/app/status" "pause"
as_write "$A" OK "$S/app/status" "active"
assert_file "$S/app/store/k" 'v2'
# Still nothing of root's, nor of the folder above.
as "$A" EACCES mkdir "$S/app2"
as "$A" EACCES open "$S/core/store/k" w
assert_fails_with EPERM mfs_as "$A" chown "$B" "$S/app"
# The other user gets nothing of it.
as_write "$B" open:EACCES "$S/app/store/k" "b"
as "$B" EACCES mkdir "$S/app/plugins/exec"
# The owner's chmod: per node, kept until the node goes.
assert_ok mfs_as "$A" chmod 600 "$S/app/store/k"
assert_owner "$S/app/store/k" "$AUID" "$AGID" 600
as "$B" EACCES open "$S/app/store/k" r
as "$A" OK rename "$S/app/store/k" "$S/app/store/k2"
assert_owner "$S/app/store/k2" "$AUID" "$AGID" 600
as "$A" OK unlink "$S/app/store/k2"
as_write "$A" OK "$S/app/store/k2" "fresh"
assert_owner "$S/app/store/k2" "$AUID" "$AGID" 644
# What the service writes, it writes as its owner: persist creates its file
# owned by the user, and only where the user could.
OWNED=$MFS_TMP/owned
mkdir -p "$OWNED" && chown "$A:$A" "$OWNED" || mfs_bail "mkdir $OWNED"
as "$A" OK mkdir "$S/app/config/persist"
as_write "$A" OK "$S/app/config/persist/path" "$OWNED/app.store"
as "$A" OK mkdir "$S/app/plugins/persist"
assert_eq "the service runs with persist" running "$(status_field "$S/app" state)"
assert_ok mfs_poll 3000 test -s "$OWNED/app.store"
assert_owner "$OWNED/app.store" "$AUID" "$AGID" 600
# SQLite's -wal and -shm, opened by persist as the owner, too.
assert_owner "$OWNED/app.store-wal" "$AUID" "$AGID" 600
assert_owner "$OWNED/app.store-shm" "$AUID" "$AGID" 600
# (The change restarts the service; the restart fails and is rolled back.)
as_write "$A" EIO "$S/app/config/persist/path" "/etc/mallafs-test-$$.store"
assert_eq "the failed restart is rolled back: running" running "$(status_field "$S/app" state)"
assert_file "$S/app/config/persist/path" "$OWNED/app.store"$'\n'
assert_reason "persist cannot create a file in /etc" "$S/app" "/etc/mallafs-test-$$.store"
assert_ok test ! -e "/etc/mallafs-test-$$.store"
as "$A" OK rmdir "$S/app/plugins/persist"
as_write "$A" OK "$S/app/status" "active"
assert_eq "the service runs again" running "$(status_field "$S/app" state)"

# Its hooks run as its owner: their uid, gid and groups.
as "$A" OK mkdir "$S/app/plugins/exec"
as_write "$A" OK "$S/app/config/exec/on_update" "id -u > $OWNED/hook.out; id -g >> $OWNED/hook.out"
as "$A" OK mkdir "$S/app/config/app"
as_write "$A" OK "$S/app/config/app/port" "1"
assert_ok mfs_poll 3000 test -s "$OWNED/hook.out"
assert_file "$OWNED/hook.out" "$AUID"$'\n'"$AGID"$'\n'
assert_owner "$OWNED/hook.out" "$AUID" "$AGID" 644
as "$A" OK rmdir "$S/app/plugins/exec"

# A whole service made private, then given back to root.
assert_ok mfs_as "$A" chmod 700 "$S/app"
as "$B" EACCES open "$S/app/status" r
assert_ok chown 0:0 "$S/app"
assert_owner "$S/app" 0 0 700
assert_owner "$S/app/store/new" 0 0 600
as "$A" EACCES open "$S/app/status" r
assert_ok chmod 755 "$S/app"
assert_owner "$S/app/store/new" 0 0 644

# A service a user created (once root opens services/ to all) is theirs.
assert_ok chmod 1777 "$S"
as "$B" OK mkdir "$S/bobs"
assert_owner "$S/bobs" "$BUID" "$(id -g "$B")" 755
as "$A" EACCES mkdir "$S/bobs/plugins/ttl"
as "$A" EPERM rmdir "$S/bobs"
as "$B" OK rmdir "$S/bobs"
assert_ok chmod 755 "$S"

mfs_unmount
mfs_done
