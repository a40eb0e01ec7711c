#!/bin/bash
# SPDX-License-Identifier: MIT
# No user can starve the others of memory through sizes (issue 10, item 3):
# a write or truncate past the largest value a store holds (64 MiB) is EFBIG
# with nothing allocated, whatever the offset; limits' max_bytes caps one
# service's store (keys and values) with ENOSPC; -o max_memory caps every
# store and the node config together. Every refusal changes nothing, says
# why, and deleting gives the room back exactly.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rss_kb()
{
	sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$MFS_PID/status"
}

# -- EFBIG before any allocation ---------------------------------------------

mfs_mount
S=$MNT/services/q
assert_ok mkdir "$S"
assert_ok bash -c "printf data > '$S/store/big'"
rss0=$(rss_kb)
# Once this allocated 2 GiB (the value grew to the offset, the gap zeroed).
assert_errno EFBIG pwrite "$S/store/big" x 2147483647
assert_errno EFBIG pwrite "$S/store/big" x $((64 << 20))
assert_errno EFBIG pwrite "$S/store/big" x $((1 << 40))
assert_errno EFBIG truncate "$S/store/big" $((1 << 31))
assert_errno EFBIG truncate "$S/store/big" $(((64 << 20) + 1))
assert_fails_with EFBIG truncate -s 3G "$S/store/big"
rss1=$(rss_kb)
if ((rss1 - rss0 < 16384)); then
	pass "refused writes allocate nothing (RSS ${rss0} kB -> ${rss1} kB)"
else
	fail "refused writes allocate nothing" "RSS ${rss0} kB -> ${rss1} kB"
fi
assert_file "$S/store/big" data
assert_ls "$S/store" big
assert_reason "pwrite at 2^31 - 1" "$S" "store refused truncate big: a value may hold at most 67108864 bytes"

# limits' max_value_bytes: EFBIG at its own bound, still before allocating.
assert_ok mkdir "$S/plugins/limits"
assert_ok bash -c "echo 100 > '$S/config/limits/max_value_bytes'"
assert_errno EFBIG pwrite "$S/store/big" x 100
assert_errno OK pwrite "$S/store/big" x 99
assert_size "$S/store/big" 100
assert_ok rm "$S/store/big"

# -- max_bytes: one service's keys and values ----------------------------------

assert_ok bash -c "echo 0 > '$S/config/limits/max_value_bytes'"
assert_ok bash -c "echo 30 > '$S/config/limits/max_bytes'"
assert_ok bash -c "printf 0123456789 > '$S/store/a'" # 11 bytes
assert_ok bash -c "printf 0123456789 > '$S/store/b'" # 22
assert_ok bash -c "printf 1234567 > '$S/store/c'"    # 30
assert_errno ENOSPC pwrite "$S/store/a" x 10
assert_errno ENOSPC truncate "$S/store/a" 12
assert_errno ENOSPC rename "$S/store/a" "$S/store/aa"
assert_errno ENOSPC creat "$S/store/d"
assert_reason "max_bytes" "$S" "limits refused create d: store holds 30 bytes, 1 more is over max_bytes 30"
assert_write ENOSPC "$S/store/c" 12345678
assert_ls "$S/store" a b c
assert_file "$S/store/a" 0123456789
assert_file "$S/store/b" 0123456789
# The refused `>` leaves c whole: its truncation waited for the write.
assert_file "$S/store/c" 1234567
# What does not grow passes; deleting gives the room back, exactly.
assert_errno OK pwrite "$S/store/a" ABCDEFGHIJ 0
assert_errno OK rename "$S/store/a" "$S/store/b"
assert_ok rm "$S/store/b" "$S/store/c"
assert_ls "$S/store"
for round in 1 2; do
	assert_ok bash -c "head -c 29 /dev/zero > '$S/store/z'" # 30
	assert_errno ENOSPC creat "$S/store/y"
	assert_ok rm "$S/store/z"
done
mfs_unmount

# -- -o max_memory: every store and the node config together -------------------

mfs_run_daemon -o max_memory=lots "$MFS_TMP"
assert_eq "-o max_memory=lots: refused" 1 "$MFS_RC"
assert_match "-o max_memory=lots: says why" 'max_memory=lots: expected a size' "$MFS_ERR"
mfs_run_daemon --help
assert_match "--help documents max_memory" 'max_memory=SIZE.*K, M or G' "$MFS_OUT"

mfs_mount -o max_memory=1K
A=$MNT/services/a
B=$MNT/services/b
C=$MNT/config/app
assert_ok mkdir "$A" "$B" "$C"
# Counted: "app" (3) and its entry (8, a pointer) in the node config.
assert_ok bash -c "head -c 499 /dev/zero > '$A/store/k'" # 500
assert_ok bash -c "head -c 299 /dev/zero > '$C/k'"       # 300 + 11
assert_ok bash -c "head -c 200 /dev/zero > '$B/store/k'" # 201: 1012
assert_errno ENOSPC pwrite "$B/store/k" x 220 # the gap counts
assert_reason "max_memory" "$B" "the node's stores hold 1012 of max_memory 1024 bytes"
assert_write ENOSPC "$C/j" 0123456789ab # j itself fits: 1013
assert_errno ENOSPC pwrite "$A/store/k" 0123456789 505
assert_size "$A/store/k" 499
assert_size "$B/store/k" 200
assert_size "$C/k" 299
if grep -q "config/app/j: write refused: the node's stores hold 1013 of max_memory 1024 bytes" "$MFS_LOG"; then
	pass "max_memory: the node config's refusal is logged"
else
	fail "max_memory: the node config's refusal is logged" "$(tail -n 5 "$MFS_LOG")"
fi
# Empty it all and fill it again: the same room, every time.
for round in 1 2 3; do
	assert_ok rm -f "$A/store/k" "$B/store/k" "$C/k" "$C/j"
	assert_ok rmdir "$B"
	assert_ok mkdir "$B"
	assert_ok bash -c "head -c 1000 /dev/zero > '$A/store/k'" # 1001 + 11
	assert_errno ENOSPC creat "$B/store/thirteen-byte"
	assert_ok bash -c "head -c 10 /dev/zero > '$B/store/x'"    # 1023
	assert_ok rm "$A/store/k"
	assert_ok bash -c "head -c 1000 /dev/zero > '$C/k'"
	assert_errno ENOSPC creat "$A/store/aaaaaaaaaaaa"
done
mfs_unmount

mfs_done
