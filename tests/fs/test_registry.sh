#!/bin/bash
# SPDX-License-Identifier: MIT
# registry/ (SPEC.md): unique names and pools held by live processes, the
# errors of a registration (EEXIST, ESRCH, EPERM with the writer's uid taken
# from the request, EINVAL), refused registrations leaving nothing behind,
# and every entry of a process removed when it exits.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# "${NOBODY[@]}" CMD...: runs CMD as the user nobody (setpriv execs CMD, so
# a background one keeps the PID that $! gives).
NOBODY=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)

# A PID that was a process a moment ago and is none now.
dead_pid()
{
	local pid
	true &
	pid=$!
	wait "$pid"
	echo "$pid"
}

mfs_need setpriv util-linux

# allow_other: the user nobody writes through the mount too.
mfs_mount -o allow_other
R=$MNT/registry

mfs_spawn P1 sleep 300
mfs_spawn P2 sleep 300
DEAD=$(dead_pid)

# A unique name, with and without a value.
assert_ok bash -c "echo '$P1 hello world' > '$R/web'"
assert_file "$R/web" "$P1 hello world"$'\n'
assert_ls "$R" web
assert_size "$R/web"
# The same PID writing again replaces its value.
assert_ok bash -c "echo '$P1 v2' > '$R/web'"
assert_file "$R/web" "$P1 v2"$'\n'
assert_write OK "$R/web" "$P1"
assert_file "$R/web" "$P1"$'\n'
assert_size "$R/web"
# O_TRUNC wipes nothing; a line is applied when its newline is written.
# What one open file writes is one entry: a second line refuses it, and
# undoes what the first did.
assert_errno OK open "$R/web" wt
assert_ok bash -c ": > '$R/web'"
assert_file "$R/web" "$P1"$'\n'
if exec 3>"$R/web"; then
	echo "$P1 first" >&3
	assert_file "$R/web" "$P1 first"$'\n'
	assert_fails_with EINVAL eval 'echo "$P1 second" >&3'
	assert_file "$R/web" "$P1"$'\n'
	exec 3>&-
else
	fail "open registry/web for writing"
fi
assert_write OK "$R/web" "$P1"

# EEXIST: held by another live process; the entry stays as it was.
assert_write EEXIST "$R/web" "$P2 intruder"
assert_fails_with EEXIST bash -c "echo '$P2' > '$R/web'"
assert_file "$R/web" "$P1"$'\n'

# ESRCH: no such process. EINVAL: not a PID. Neither leaves an entry.
assert_write ESRCH "$R/ghost" "$DEAD"
assert_fails_with ESRCH bash -c "echo '$DEAD value' > '$R/ghost'"
assert_absent "$R/ghost"
for bad in abc "12abc" "-5" "$P1"x "x $P1"; do
	assert_write EINVAL "$R/bad" "$bad"
	assert_absent "$R/bad"
done
assert_fails_with EINVAL bash -c "echo abc > '$R/bad'"
assert_absent "$R/bad"
assert_ls "$R" web

# rm unregisters.
assert_ok rm "$R/web"
assert_absent "$R/web"
assert_ls "$R"
assert_fails_with ENOENT rm "$R/web"
assert_fails_with ENOENT cat "$R/web"

# EPERM (or EACCES): the writer (taken from the request, here nobody) is
# neither root nor the owner of the PID; nothing is left behind.
assert_fails_with 'EPERM|EACCES' "${NOBODY[@]}" bash -c "echo '$P1 stolen' > '$R/other'"
assert_absent "$R/other"
# nobody may register its own process; root may register anyone's.
mfs_spawn PN "${NOBODY[@]}" sleep 300
mfs_poll 2000 eval '[[ $(stat -c %u "/proc/$PN" 2>/dev/null) == 65534 ]]' ||
	fail "the sleep of nobody runs as nobody"
assert_true "nobody registers its own process" \
	"${NOBODY[@]}" bash -c "echo '$PN mine' > '$R/mine'"
assert_file "$R/mine" "$PN mine"$'\n'
assert_ok bash -c "echo '$PN by-root' > '$R/byroot'"
assert_file "$R/byroot" "$PN by-root"$'\n'
# nobody cannot take a name root's process holds.
assert_ok bash -c "echo '$P1' > '$R/held'"
assert_fails_with 'EEXIST|EPERM|EACCES' "${NOBODY[@]}" bash -c "echo '$PN' > '$R/held'"
assert_file "$R/held" "$P1"$'\n'
assert_ls "$R" byroot held mine
assert_ok rm "$R/byroot" "$R/mine" "$R/held"

# Pools.
assert_ok mkdir "$R/pool"
assert_ls "$R" pool
assert_eq "registry/pool is a directory" directory "$(stat -c %F "$R/pool" 2>&1)"
assert_fails_with EEXIST mkdir "$R/pool"
assert_errno EINVAL mkdir "$R/bad pool"
assert_errno EINVAL mkdir "$R/bad:pool"
assert_absent "$R/bad pool"
assert_ok bash -c "echo one > '$R/pool/$P1'"
assert_ok bash -c "echo two > '$R/pool/$P2'"
assert_ls "$R/pool" "$P1" "$P2"
assert_file "$R/pool/$P1" $'one\n'
assert_file "$R/pool/$P2" $'two\n'
assert_size "$R/pool/$P1"
assert_ok bash -c "echo uno > '$R/pool/$P1'"
assert_file "$R/pool/$P1" $'uno\n'
assert_errno OK open "$R/pool/$P1" wt
assert_file "$R/pool/$P1" $'uno\n'
# A member that is not a PID, a dead PID, another user's PID.
assert_fails_with EINVAL bash -c "echo v > '$R/pool/abc'"
assert_errno EINVAL write "$R/pool/12x" v
assert_absent "$R/pool/abc"
assert_absent "$R/pool/12x"
assert_fails_with ESRCH bash -c "echo v > '$R/pool/$DEAD'"
assert_absent "$R/pool/$DEAD"
assert_fails_with 'EPERM|EACCES' "${NOBODY[@]}" bash -c "echo v > '$R/pool/$P1'"
assert_file "$R/pool/$P1" $'uno\n'
assert_true "nobody stores its own process in a pool" \
	"${NOBODY[@]}" bash -c "echo nob > '$R/pool/$PN'"
assert_file "$R/pool/$PN" $'nob\n'
assert_ok rm "$R/pool/$PN"
# A pool of a missing name, rmdir of a pool with members.
assert_errno ENOENT creat "$MNT/registry/nopool/$P1"
assert_fails_with ENOTEMPTY rmdir "$R/pool"
assert_errno ENOTEMPTY rmdir "$R/pool"
assert_ls "$R/pool" "$P1" "$P2"
assert_ok rm "$R/pool/$P2"
assert_ls "$R/pool" "$P1"
assert_fails_with ENOENT rm "$R/pool/$P2"

# A process that exits: all its entries go (SPEC.md says within 100 ms; this
# allows 1 s for a loaded machine) and P1's stay.
mfs_spawn P3 sleep 300
assert_ok bash -c "echo '$P3 doomed' > '$R/doomed'"
assert_ok bash -c "echo x > '$R/pool/$P3'"
assert_ok bash -c "echo '$P1 kept' > '$R/kept'"
assert_ls "$R" doomed kept pool
assert_ls "$R/pool" "$P1" "$P3"
gone()
{
	[[ $("$FSPROBE" errno stat "$R/doomed") == ENOENT &&
		$("$FSPROBE" errno stat "$R/pool/$P3") == ENOENT ]] &&
		! ls -A "$R" | grep -qx doomed && ! ls -A "$R/pool" | grep -qx "$P3"
}
t0=$(mfs_now_ms)
mfs_kill_child "$P3"
if mfs_poll 1000 gone; then
	pass "the entries of an exited process are gone after $(($(mfs_now_ms) - t0)) ms"
else
	fail "the entries of an exited process are gone within 1 s" "$(ls -A "$R" "$R/pool" 2>&1)"
fi
assert_fails_with ENOENT cat "$R/doomed"
assert_fails_with ENOENT cat "$R/pool/$P3"
assert_ls "$R" kept pool
assert_ls "$R/pool" "$P1"
assert_file "$R/kept" "$P1 kept"$'\n'
# The name is free again for another process.
assert_ok bash -c "echo '$P2 reborn' > '$R/doomed'"
assert_file "$R/doomed" "$P2 reborn"$'\n'

# The last member gone, rmdir works.
assert_ok rm "$R/pool/$P1"
assert_ok rmdir "$R/pool"
assert_absent "$R/pool"
mfs_kill_child "$P1"
mfs_kill_child "$P2"
mfs_kill_child "$PN"
if mfs_poll 1000 eval '[[ -z $(ls -A "$R") ]]'; then
	pass "registry/ is empty once every registered process exited"
else
	fail "registry/ is empty once every registered process exited" "$(ls -A "$R" 2>&1)"
fi

mfs_unmount
mfs_done
