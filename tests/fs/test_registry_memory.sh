#!/bin/bash
# SPDX-License-Identifier: MIT
# What a small folder costs (issue 12): registry/ is writable by every local
# user, so a pool with one process must cost the daemon about what it
# stores, not a whole table of 4096 positions (about 50 KiB, before a
# table's memory followed what it holds: 2,000 such pools grew the daemon
# by 100 MiB). 2,000 pools of one member each must cost at most 8 KiB of
# resident memory a pool (1.5 to 3 here, the fs nodes included); on a
# sanitizer build, whose allocator pads and quarantines and whose shadow
# memory counts, at most 20 KiB with ASan (about 7, 42 before) and 48 with
# TSan (10 to 16, 240 before). They all list, and read back.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mfs_need python3 python3

# The daemon's resident memory in KiB.
rss_kb()
{
	awk '/^VmRSS:/ { print $2 }' "/proc/$MFS_PID/status"
}

# mkpools DIR PREFIX FROM TO PID: pools PREFIX$FROM .. PREFIX$((TO - 1)),
# each with PID as its one member, made by one process.
mkpools()
{
	python3 - "$@" <<'PY'
import os, sys
d, prefix, lo, hi, pid = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
for i in range(lo, hi):
    os.mkdir(f"{d}/{prefix}{i}")
    with open(f"{d}/{prefix}{i}/{pid}", "w") as f:
        f.write(f"v{i}\n")
PY
}

N=2000
mfs_mount
R=$MNT/registry
mfs_spawn HOLDER sleep 300
# A first few hundred, so that what the daemon sets up once is counted
# before.
assert_ok mkpools "$R" warm 0 200 "$HOLDER"
rss0=$(rss_kb)
assert_ok mkpools "$R" pool 0 "$N" "$HOLDER"
rss1=$(rss_kb)
per_pool=$(((rss1 - rss0) * 1024 / N))
echo "# $N pools of one member: the daemon's RSS grew by $((rss1 - rss0)) KiB, $per_pool bytes a pool"
bound=8
case $(mfs_sanitizer) in
tsan) bound=48 ;;
asan | ubsan) bound=20 ;;
esac
assert_true "a pool of one member costs at most $bound KiB ($per_pool B)" \
	test "$per_pool" -le $((bound * 1024))

assert_eq "registry/ lists every pool" "$((N + 200))" "$(find "$R" -mindepth 1 -maxdepth 1 | wc -l)"
assert_file "$R/pool0/$HOLDER" $'v0\n'
assert_file "$R/pool$((N - 1))/$HOLDER" "v$((N - 1))"$'\n'
assert_eq "a pool lists its member" "$HOLDER" "$(ls "$R/pool$((N / 2))")"

mfs_kill_child "$HOLDER"
mfs_unmount
mfs_done
