#!/bin/bash
# SPDX-License-Identifier: MIT
# exec hooks through a real mount (SPEC.md's exec plugin, issue 10): a hook
# gets nothing of the daemon's, not its environment and not its descriptors
# (/dev/fuse above all, with which a hook could answer the kernel's requests
# in the daemon's place); it runs as the service's owner, with that user's
# groups, HOME and "/" as its folder; past timeout_ms its process group gets
# SIGTERM, then SIGKILL 2 s later, the start fails with the reason, and
# nothing it started is left. Meanwhile other services answer at once.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The daemon's environment, which no hook may see.
export MALLAFS_TEST_SECRET=leaked

mfs_mount

# == what a hook gets ===========================================================

H=$MNT/services/h
OUT=$MFS_TMP/out
assert_ok mkdir "$H"
assert_ok mkdir "$H/config/exec"
assert_ok bash -c "echo '{ env | sort; ls /proc/self/fd; id -u; id -G; pwd; umask; } > $OUT' \
	> '$H/config/exec/on_start'"
assert_ok mkdir "$H/plugins/exec"
owner=$(stat -c %u "$H")
home=$(getent passwd "$owner" | cut -d: -f6)
assert_file "$OUT" "HOME=${home:-/}
MALLAFS_HOOK=on_start
MALLAFS_MOUNT=$MNT
MALLAFS_SERVICE=h
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
PWD=/
0
1
2
3
$owner
$(id -G "$owner")
/
0022
"

# == the timeout ================================================================

# A hook deaf to SIGTERM, with a background child deaf to it too: SIGKILL
# 2 s after SIGTERM ends both, and the start fails.
S=$MNT/services/slow
BG=$MFS_TMP/bg
assert_ok mkdir "$S"
assert_ok mkdir "$S/config/exec"
assert_ok bash -c "echo inactive > '$S/status'"
assert_ok mkdir "$S/plugins/exec"
assert_ok bash -c "echo 300 > '$S/config/exec/timeout_ms'"
assert_ok bash -c "echo \"trap '' TERM; sleep 30 & echo \\\$! > $BG; sleep 30\" \
	> '$S/config/exec/on_start'"
t0=$(mfs_now_ms)
"$FSPROBE" write "$S/status" active >"$MFS_TMP/start" 2>&1 &
started=$!

# Meanwhile another service's store, configuration and status answer.
assert_true "the hook is running" mfs_poll 2000 test -s "$BG"
t1=$(mfs_now_ms)
assert_ok bash -c "echo v > '$H/store/k'"
assert_ok cat "$H/config.ini" "$H/status"
took=$(($(mfs_now_ms) - t1))
assert_true "another service answers while the hook runs ($took ms)" test "$took" -lt 1000

wait "$started"
took=$(($(mfs_now_ms) - t0))
assert_ne "writing active with a hook past its timeout fails" OK "$(cat "$MFS_TMP/start")"
assert_true "SIGKILL came 2 s after SIGTERM ($took ms)" test "$took" -ge 2200 -a "$took" -lt 4500
assert_eq "state after the timeout" failed "$(status_field "$S" state)"
assert_reason "a hook past its timeout" "$S" "exec: cannot start: on_start timed out after 300 ms"
bg=$(cat "$BG")
gone()
{
	local st
	st=$(sed -n 's/.*) \([A-Z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null)
	[[ -z $st || $st == Z || $st == X ]]
}
assert_true "the hook's background child is gone" mfs_poll 1000 gone "$bg"
assert_true "the daemon logged the SIGKILL" \
	grep -q "on_start: timed out after 300 ms; its process group outlived SIGTERM by 2000 ms" \
	"$MFS_LOG"

assert_ok rmdir "$S"
assert_ok rmdir "$H"
mfs_unmount
mfs_done
