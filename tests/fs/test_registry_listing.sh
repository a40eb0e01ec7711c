#!/bin/bash
# SPDX-License-Identifier: MIT
# Listings of registry/ and services/ (issue 12, item 1). Read with a small
# getdents buffer while entries come and go between two calls, every entry
# there throughout comes exactly once, and the listing ends (it did not
# when whatever was made meanwhile came after the offset, ever again). A
# listing costs the daemon the same CPU per entry at 20,000 entries as at
# 1,000 (each readdir call walking every entry before its offset cost ten
# times as much at 20,000, and grew with the size).

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIRLIST=(python3 "$(dirname "${BASH_SOURCE[0]}")/dirlist.py")
mfs_need python3 python3

# mkmany DIR PREFIX FROM TO: folders PREFIX$FROM .. PREFIX$((TO - 1)), made
# by one process (a mkdir process each would take seconds).
mkmany()
{
	python3 - "$@" <<'PY'
import os, sys
d, prefix, lo, hi = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for i in range(lo, hi):
    os.mkdir(f"{d}/{prefix}{i}")
PY
}

# mknames DIR PREFIX N PID: names PREFIX0 .. PREFIX$((N - 1)) in registry/
# DIR, held by PID.
mknames()
{
	python3 - "$@" <<'PY'
import sys
d, prefix, n, pid = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
for i in range(n):
    with open(f"{d}/{prefix}{i}", "w") as f:
        f.write(f"{pid} v{i}\n")
PY
}

mfs_mount
R=$MNT/registry
mfs_spawn HOLDER sleep 300

# ---- registry/ under churn: pools and names stay, other pools come and go.
assert_ok mkmany "$R" stable 0 2000
assert_ok mknames "$R" name 300 "$HOLDER"
assert_ok mkmany "$R" churn 0 200
{
	printf 'stable%s\n' {0..1999}
	printf 'name%s\n' {0..299}
} >"$MFS_TMP/stable"
printf 'churn%s\n' {0..199} >"$MFS_TMP/churn"
assert_ok "${DIRLIST[@]}" churn "$R" 512 "$MFS_TMP/stable" "$MFS_TMP/churn" 3
n=$(find "$R" -mindepth 1 -maxdepth 1 | wc -l)
assert_eq "registry/ holds what was made and not removed" 2500 "$n"

# ---- services/ under churn, in calls of a few entries each.
assert_ok mkmany "$MNT/services" svc 0 24
assert_ok mkmany "$MNT/services" churn 0 8
printf 'svc%s\n' {0..23} >"$MFS_TMP/stable"
printf 'churn%s\n' {0..7} >"$MFS_TMP/churn"
assert_ok "${DIRLIST[@]}" churn "$MNT/services" 96 "$MFS_TMP/stable" "$MFS_TMP/churn" 1

mfs_kill_child "$HOLDER"
mfs_unmount

# ---- cost: the daemon's CPU per entry listed, at 1,000 and 20,000 entries.
mfs_mount
R=$MNT/registry
assert_ok mkmany "$R" p 0 1000
read -r small_entries _ small_ns < <("${DIRLIST[@]}" cost "$MFS_PID" "$R" 512 4)
assert_ok mkmany "$R" p 1000 20000
read -r big_entries _ big_ns < <("${DIRLIST[@]}" cost "$MFS_PID" "$R" 512 1)
assert_eq "every entry listed at 1,000" 4008 "$small_entries"
assert_eq "every entry listed at 20,000" 20002 "$big_entries"
small=$((small_ns / small_entries))
big=$((big_ns / big_entries))
# Linear: about the same (1.2x here); walking to each offset: 10x.
if ((big <= 4 * small)); then
	pass "a listing costs ${big} ns an entry at 20,000 entries, ${small} at 1,000"
else
	fail "a listing costs ${big} ns an entry at 20,000 entries, over 4x the ${small} at 1,000"
fi

mfs_unmount
mfs_done
