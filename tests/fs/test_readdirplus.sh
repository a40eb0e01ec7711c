#!/bin/bash
# SPDX-License-Identifier: MIT
# Listings of a large store (issue 12, items 2 and 3): `ls -l` gets every
# key's attributes with the listing (readdirplus), so the kernel sends no
# lookup per entry; each key given counts as a lookup the
# kernel forgets later, and nothing the listings hand out is kept after the
# kernel lets go (a service removed then frees its memory). A key's inode
# number is the same in a listing (d_ino), in stat and after mv, and a key
# the kernel holds costs the daemon no node of its own.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mfs_need python3 python3
N=300

# drop: the kernel forgets every dentry and inode it can (all of mallafs's
# that no open file holds), then the daemon has the FORGETs.
drop()
{
	sync
	echo 2 >/proc/sys/vm/drop_caches || mfs_bail "drop_caches"
	sleep 0.3
}

# lookups: how many LOOKUP requests the daemon has had (its -d output).
lookups()
{
	grep -c 'opcode: LOOKUP ' "$MFS_LOG"
}

mfs_mount -d -o max_memory=64K
S=$MNT/services/big
assert_ok mkdir "$S"
assert_ok python3 - "$S/store" "$N" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, "k%04d" % i), "w") as f:
        f.write("v" * (i % 7))
PY

# -- ls -l and find -size: no lookup per entry ------------------------------------

drop
before=$(lookups)
out=$(ls -l "$S/store")
after=$(lookups)
assert_eq "ls -l lists every key" "$N" "$(grep -c ' k0' <<<"$out")"
assert_match "ls -l shows each key's size" ' 6 [A-Z][a-z][a-z] .* k0006' "$out"
if ((after - before <= 5)); then
	pass "ls -l of $N keys: $((after - before)) lookups (the path's, none per entry)"
else
	fail "ls -l of $N keys: no lookup per entry" "$((after - before)) lookups"
fi
# find -size reads the whole folder before it stats: the kernel's adaptive
# mode gives it the attributes with its first reply only. Its answer is
# right either way.
drop
assert_eq "find -size +3c finds the keys of 4 to 6 bytes" \
	"$(((N / 7) * 3 + (N % 7 > 4 ? N % 7 - 4 : 0)))" \
	"$(find "$S/store" -type f -size +3c | wc -l)"

# -- inode numbers ------------------------------------------------------------------

# A listing's d_ino is what stat says, for every key; mv keeps it.
assert_ok python3 - "$S/store" <<'PY'
import os, sys
d = sys.argv[1]
bad = [e.name for e in os.scandir(d) if e.inode() != os.stat(e.path).st_ino]
if bad:
    sys.exit("d_ino differs from st_ino for %d keys, e.g. %s" % (len(bad), bad[:3]))
PY
ino=$(stat -c %i "$S/store/k0001")
assert_ok mv "$S/store/k0001" "$S/store/moved"
assert_eq "mv keeps the key's inode number" "$ino" "$(stat -c %i "$S/store/moved")"
drop
assert_eq "and so does the next lookup, the kernel having forgotten it" "$ino" \
	"$(stat -c %i "$S/store/moved")"
assert_file "$S/store/moved" "v"
# A key removed and made again is another file: another inode number.
assert_ok rm "$S/store/moved"
assert_ok sh -c "echo again > '$S/store/moved'"
assert_ne "a new key of the same name gets a new inode number" "$ino" \
	"$(stat -c %i "$S/store/moved")"
# An open file of a removed key reads ENOENT, not what took its name.
exec 7<"$S/store/k0002"
assert_ok rm "$S/store/k0002"
assert_ok sh -c "echo other > '$S/store/k0002'"
if out=$(cat <&7 2>&1); then
	fail "a removed key's open file reads nothing of the new key" "read: $out"
else
	pass "a removed key's open file reads nothing of the new key ($out)"
fi
exec 7<&-

# -- what the listings hand out is given back -----------------------------------------

# big holds N keys of 0 to 6 bytes (about 3,000 bytes of names and values).
# Listed with attributes, then removed once the kernel forgets them, its
# memory must come back: a node kept for a key, the store or the service
# would keep the service, and its charge against max_memory, alive.
for i in 1 2 3; do
	ls -l "$S/store" >/dev/null
	find "$S/store" -size +1c >/dev/null
done
drop
assert_ok rmdir "$S"
drop
assert_ok mkdir "$MNT/services/next"
# 64,500 bytes fit in 64K only once big's 2,000-odd bytes are given back.
assert_ok sh -c "head -c 64500 /dev/zero > '$MNT/services/next/store/fill'"
assert_size "$MNT/services/next/store/fill" 64500

mfs_unmount
mfs_done
