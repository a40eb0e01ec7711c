#!/bin/bash
# SPDX-License-Identifier: MIT
# A document is one change (issue 11, item 2): what one open file writes to
# config.ini, a config key or a registry entry is applied whole or not at
# all, however many write() calls carry it. Each write applies the lines it
# completes (so its error is write()'s); a last line without a newline is
# applied at close(), whose error it then is; a refused part undoes the
# earlier parts, except where another writer changed a key since.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mfs_mount
S=$MNT/services/s
assert_ok mkdir "$S"
assert_ok mkdir "$S/plugins/limits"
assert_ok sh -c "echo 100 > '$S/config/limits/max_keys'"

# -- config.ini, a line a write ------------------------------------------------

# Four write() calls, as a shell's printf makes them: the second sets
# max_keys, the fourth is refused (a key twice in a section), and the
# second is undone.
doc() { printf '[limits]\n'; printf 'max_keys = 5\n'; printf '[limits]\n'; printf 'max_keys = lots\n'; }
assert_fails_with EINVAL bash -c "$(declare -f doc); doc > '$S/config.ini'"
assert_file "$S/config/limits/max_keys" $'100\n'
assert_reason "the refused document" "$S" "line 4"

# The same split up, then fixed: every part applied.
doc_ok() { printf '[limits]\nmax_keys'; printf ' = 7\n[app]\n'; printf 'x = 1\ny = 2'; }
assert_ok bash -c "$(declare -f doc_ok); doc_ok > '$S/config.ini'"
assert_file "$S/config/limits/max_keys" $'7\n'
assert_file "$S/config/app/y" $'2\n'

# A last line without a newline is applied at close(), and its error is
# close()'s.
assert_write EINVAL "$S/config.ini" $'[app]\nx = 3\n[limits]\nmax_keys = many'
assert_file "$S/config/app/x" $'1\n'
assert_file "$S/config/limits/max_keys" $'7\n'
assert_write OK "$S/config.ini" $'[app]\nx = 4'
assert_file "$S/config/app/x" $'4\n'

# A section the document made goes with it.
assert_fails_with EINVAL bash -c "{ printf '[fresh]\nk = v\n'; printf '[limits]\nmax_keys = no\n'; } > '$S/config.ini'"
assert_absent "$S/config/fresh"

# -- a 2 MB document refused at its end -----------------------------------------

# (Written with cat, 128 KiB a write. Each part parses the document so far
# and a reconfiguration costs in the size of the configuration, so a big
# document in small writes is slow, and so are keys out of sorted order:
# scale is another issue's.)
big=$MFS_TMP/big.ini
awk 'BEGIN {
	print "[bulk]"
	pad = sprintf("%090d", 0)
	for (i = 0; i < 20000; i++)
		printf "key%05d = value number %d %s\n", i, i, pad
	print "[limits]"
	print "max_keys = -1"
}' >"$big"
lines=$(wc -l <"$big")
assert_true "the document is over 2 MB" test "$(stat -c %s "$big")" -gt 2000000
assert_fails_with EINVAL bash -c "cat '$big' > '$S/config.ini'"
assert_absent "$S/config/bulk"
assert_file "$S/config/limits/max_keys" $'7\n'
assert_reason "the 2 MB document" "$S" "limits"
assert_true "config.ini holds none of the refused keys" bash -c "! grep -q key0 '$S/config.ini'"
# Without its last line it is applied whole.
head -n $((lines - 2)) "$big" >"$big.ok"
assert_ok bash -c "cat '$big.ok' > '$S/config.ini'"
assert_file "$S/config/bulk/key19999" "value number 19999 $(printf '%090d' 0)"$'\n'
assert_true "config.ini lists the 20,000 keys" test "$(grep -c '^key' "$S/config.ini")" = 20000

# -- changes other writers made meanwhile stay ----------------------------------

assert_ok sh -c "printf 'a\n' > '$S/config/app/mine'"
exec 3>"$S/config.ini"
printf '[app]\nx = 10\nmine = 11\n' >&3
assert_file "$S/config/app/x" $'10\n'
assert_ok sh -c "echo 12 > '$S/config/app/x'"
assert_fails_with EINVAL eval "printf '[limits]\nmax_keys = x\n' >&3"
exec 3>&-
assert_file "$S/config/app/x" $'12\n'
assert_file "$S/config/app/mine" $'a\n'

# -- a config key ------------------------------------------------------------------

exec 3>"$S/config/limits/max_keys"
echo 9 >&3
assert_file "$S/config/limits/max_keys" $'9\n'
assert_fails_with EINVAL eval 'echo nine >&3'
exec 3>&-
assert_file "$S/config/limits/max_keys" $'7\n'
assert_write EINVAL "$S/config/limits/max_keys" 'x'
assert_write OK "$S/config/limits/max_keys" '8'
assert_file "$S/config/limits/max_keys" $'8\n'

# -- registry entries ------------------------------------------------------------

R=$MNT/registry
sleep 300 &
P=$!
MFS_CHILDREN+=("$P")
# More than one line: refused before anything is registered.
assert_fails_with EINVAL bash -c "printf '$P a\nb\n' > '$R/multi'"
assert_absent "$R/multi"
# ... or, when the lines come in two writes, the first is undone.
assert_fails_with EINVAL bash -c "{ echo '$P a'; echo b; } > '$R/multi'"
assert_absent "$R/multi"
assert_ok sh -c "echo '$P old' > '$R/held'"
assert_fails_with EINVAL bash -c "{ echo '$P new'; echo b; } > '$R/held'"
assert_file "$R/held" "$P old"$'\n'
# A line without its newline registers at close().
assert_write OK "$R/nonl" "$P v"
assert_file "$R/nonl" "$P v"$'\n'
assert_write EINVAL "$R/nonl2" "not-a-pid"
assert_absent "$R/nonl2"
# What an open file holds is bounded: an entry of more than 64 KiB is EFBIG.
assert_fails_with EFBIG bash -c "{ printf '$P '; head -c 70000 /dev/zero | tr '\\0' x; echo; } > '$R/huge'"
assert_absent "$R/huge"
# Pools: a member is one line too.
assert_ok mkdir "$R/pool"
assert_fails_with EINVAL bash -c "{ echo one; echo two; } > '$R/pool/$P'"
assert_absent "$R/pool/$P"
assert_ok sh -c "echo one > '$R/pool/$P'"
assert_file "$R/pool/$P" $'one\n'

mfs_unmount
mfs_done
