#!/bin/bash
# SPDX-License-Identifier: MIT
# Read-only mounts (issue 11, item 6): with -o ro, mallafs itself refuses
# every change a user asks for with EROFS, as root and as another user, and
# nothing changes; reading, listing and the events feed still work. The
# daemon's own changes go on and still reach inotify: a key the ttl plugin
# expires shows as IN_DELETE to inotifywait (a kernel read-only mount would
# refuse the notifier's echo, and watchers would see nothing). The kernel's
# mount stays read-write, as /proc/mounts says. -o ro,rw is read-write: the
# last of the two wins.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mfs_need inotifywait inotify-tools
mfs_need setpriv util-linux
U=mallafs-t1
mfs_user "$U"

# fsprobe where the user can run it (the build may sit in /root).
PROBE=$MFS_TMP/fsprobe
cp "$FSPROBE" "$PROBE" && chmod 0755 "$PROBE" || mfs_bail "copy fsprobe"

# as ERRNO|OK OP PATH [ARG...]: one system call as the other user.
as()
{
	local want=$1 got
	shift
	got=$(mfs_as "$U" "$PROBE" errno "$@" 2>&1)
	mfs_expect_errno "$want" "$got" "$U: $(mfs_cmdline "$@")"
}

# The store the ro mount starts with comes from persist: a first, read-write
# mount writes the keys, persist saves them at unmount, and the ro mount's
# bootstrap loads them. Under ro, ttl expires exp/store/k SECONDS_TTL after its
# service starts.
SECONDS_TTL=4
EXP_STORE=$MFS_TMP/exp.store
KEPT_STORE=$MFS_TMP/kept.store
# Both mounts' services keep their stores in the same files.
stores()
{
	printf '[services.%s.persist]\npath = %s\n' exp "$EXP_STORE" kept "$KEPT_STORE"
}
{
	printf '[services.exp]\nplugins = persist\n[services.kept]\nplugins = persist\n'
	stores
} >"$MFS_TMP/rw.ini"
{
	cat <<EOF
[services.exp]
plugins = ttl, persist
[services.exp.ttl]
seconds = $SECONDS_TTL

[services.kept]
plugins = persist

[services.mine]
owner = $U

[config.app]
key = one
EOF
	stores
} >"$MFS_TMP/ro.ini"

mfs_mount --config="$MFS_TMP/rw.ini"
assert_ok bash -c "echo gone > '$MNT/services/exp/store/k'"
assert_ok bash -c "echo stays > '$MNT/services/kept/store/v'"
mfs_unmount

# ---- -o ro ----
mfs_mount -o allow_other,ro --config="$MFS_TMP/ro.ini"
S=$MNT/services
K=$S/kept

# The daemon's own change reaches inotify: ttl expires exp/store/k.
IW=$MFS_TMP/iw
FEED=$MFS_TMP/feed
inotifywait -m --format '%w %e %f' "$S/exp/store" >"$IW.out" 2>"$IW.err" &
MFS_CHILDREN+=("$!")
IWPID=$!
timeout 20 grep -m 1 -E '^[0-9]+ delete services/exp/store/k$' "$MNT/events" >"$FEED" &
MFS_CHILDREN+=("$!")
FEEDPID=$!
mfs_poll 5000 grep -q 'Watches established' "$IW.err" ||
	fail "inotifywait sets its watch on services/exp/store" "$(cat "$IW.err")"
# The watch must be in place before the expiry, or this test proves nothing.
if [[ -e $S/exp/store/k ]]; then
	pass "exp/store/k (loaded by persist) is there before it expires"
else
	fail "exp/store/k is there before it expires" \
		"the mount and the watch took over ${SECONDS_TTL}s: the test cannot do its job"
fi
if mfs_poll $(((SECONDS_TTL + 10) * 1000)) grep -q ' DELETE k$' "$IW.out"; then
	pass "inotifywait sees IN_DELETE of the key ttl expired under -o ro"
else
	fail "inotifywait sees IN_DELETE of the key ttl expired under -o ro" \
		"inotifywait: $(cat "$IW.out")" "exp/store: $(ls "$S/exp/store" 2>&1)"
fi
assert_absent "$S/exp/store/k"
wait "$FEEDPID"
assert_match "the events feed tells of the expiry" \
	'^[0-9]+ delete services/exp/store/k$' "$(cat "$FEED")"
mfs_kill_ours TERM "$IWPID"

# What /proc/mounts shows: the kernel's mount is read-write, mallafs
# refuses the changes itself (so statfs's f_flag has no ST_RDONLY either).
assert_match "the kernel's mount stays rw (mallafs enforces ro)" '^rw,' \
	"$(awk -v m="$MNT" '$2 == m { print $4 }' /proc/self/mounts)"

# Every change root asks for: "Read-only file system", and nothing changes.
ro()
{
	assert_fails_with EROFS "$@"
}
ro bash -c "echo x > '$K/store/new'"
ro bash -c "echo x > '$K/store/v'"
ro bash -c "echo x >> '$K/store/v'"
ro touch "$K/store/v"
ro touch "$K/store/new"
ro truncate -s 0 "$K/store/v"
ro rm "$K/store/v"
ro mv "$K/store/v" "$K/store/w"
ro chmod 600 "$K/store/v"
ro chown "$U" "$K/store/v"
ro chmod 700 "$K"
ro mkdir "$K/store/sub"
ro mkdir "$S/new"
ro rmdir "$S/mine"
ro mkdir "$K/plugins/ttl"
ro rmdir "$K/plugins/persist"
ro mkdir "$K/config/sec"
ro rm "$K/config/persist/path"
ro bash -c "echo /tmp/x > '$K/config/persist/path'"
ro bash -c "echo pause > '$K/status'"
ro bash -c "printf '[limits]\nmax_keys = 5\n' > '$K/config.ini'"
ro bash -c "echo two > '$MNT/config/app/key'"
ro rm "$MNT/config/app/key"
ro mkdir "$MNT/config/other"
ro bash -c "echo \$\$ > '$MNT/registry/name'"
ro mkdir "$MNT/registry/pool"
ro ln -s x "$K/store/link"
ro ln "$K/store/v" "$K/store/hard"
ro mkfifo "$K/store/fifo"
# One system call at a time: O_TRUNC alone, O_APPEND, pwrite, truncate(2).
assert_errno EROFS open "$K/store/v" rt
assert_errno EROFS open "$K/store/v" wa
assert_errno EROFS pwrite "$K/store/v" x 0
assert_errno EROFS truncate "$K/store/v" 0
assert_errno EROFS rename "$K/store/v" "$S/exp/store/v"
assert_errno EROFS mknod "$K/store/n" reg
# Resuming the feed moves only the reader's own place: allowed.
assert_errno OK open "$MNT/events" w
assert_true "a reader resumes the feed (writes SEQ to its open file)" \
	bash -c "exec 3<>'$MNT/events'; echo 1 >&3"

# The other user, in the service they own (a service of root's gives them
# EACCES first: the kernel checks the modes before mallafs sees a request).
as EROFS creat "$S/mine/store/k"
as EROFS mkdir "$S/mine/config/sec"
as EROFS mkdir "$S/mine/plugins/ttl"
as EROFS open "$S/mine/status" wt
as EROFS open "$S/mine/config.ini" w

as EROFS symlink x "$S/mine/store/l"
got=$(mfs_as "$U" chmod 700 "$S/mine/store" 2>&1)
assert_match "$U: chmod of their own folder fails with EROFS" 'Read-only file system' "$got"
got=$(mfs_as "$U" touch "$S/mine/status" 2>&1)
assert_match "$U: touch of their own file fails with EROFS" 'Read-only file system' "$got"

# Nothing changed, and reading works.
assert_file "$K/store/v" $'stays\n'
assert_ls "$K/store" v
assert_ls "$S/exp/store"
assert_ls "$S" exp kept mine
assert_ls "$MNT/registry"
assert_ls "$MNT/config/app" key
assert_file "$MNT/config/app/key" 'one'
assert_ls "$K/plugins" base persist
assert_eq "kept is running" 'state: running' "$(head -n 1 "$K/status")"
assert_match "config.ini reads" 'path = ' "$(cat "$K/config.ini")"
assert_eq "$U reads their status" 'state: running' "$(mfs_as "$U" head -n 1 "$S/mine/status")"
assert_errno OK read "$K/store/v"
assert_errno OK open "$K/config/persist/path" r
mfs_unmount

# ---- -o ro,rw: the last wins ----
mfs_mount -o ro,rw
assert_ok mkdir "$MNT/services/api"
assert_ok bash -c "echo v > '$MNT/services/api/store/k'"
assert_file "$MNT/services/api/store/k" $'v\n'
mfs_unmount

mfs_done
