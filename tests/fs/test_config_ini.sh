#!/bin/bash
# SPDX-License-Identifier: MIT
# config.ini gives back whatever it shows (issue 10, item 4): values of any
# content set through config/SECTION/KEY (long lines, spaces at either end,
# continuation lines starting with '#' or ';', empty lines, CR, quotes)
# survive `cat config.ini > f; cat f > config.ini` and a copy into another
# service; keys config.ini could not write back are refused with EINVAL
# where they are made (config/SECTION/KEY, a config.ini document, the
# bootstrap file), with the reason in last_error and the log, and nothing
# changed. And the tree has no symlinks, devices, FIFOs or hard links:
# symlink, mknod and link get EPERM wherever they are tried.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mfs_mount
S=$MNT/services/s
T=$MNT/services/t
assert_ok mkdir "$S" "$T"
assert_ok mkdir "$S/config/app"

# -- values ------------------------------------------------------------------

long=$(printf 'word%.0s ' {1..120})
long=${long% }
names=(long lead trail script blank cr quote tab backslash newline semis)
values=(
	"$long"
	'   indented'
	'trailing   '
	$'set -e\n# a comment line\n\n    echo "hi"; echo b\n; a semicolon line\nexit 0'
	$'one\n\n\nfour'
	$'a\rb'
	'"quoted"'
	$'\tx\t'
	'a\b\\c "d"'
	$'ends with a newline\n'
	'x ; y ;z'
)
for i in "${!names[@]}"; do
	# One trailing newline is stripped: write one more than the value has.
	printf '%s\n' "${values[i]}" >"$S/config/app/${names[i]}" ||
		fail "write config/app/${names[i]}"
done
for i in "${!names[@]}"; do
	assert_file "$S/config/app/${names[i]}" "${values[i]}"$'\n'
done

F=$MFS_TMP/config.ini
cat "$S/config.ini" >"$F"
assert_true "config.ini holds a line past inih's 200 bytes" \
	awk 'length($0) > 200 { found = 1 } END { exit !found }' "$F"
assert_ok sh -c 'cat "$1" > "$2"' sh "$F" "$S/config.ini"
for i in "${!names[@]}"; do
	assert_file "$S/config/app/${names[i]}" "${values[i]}"$'\n'
done
assert_same "$F" "$S/config.ini"

# The same document makes the same configuration in another service.
assert_ok sh -c 'cat "$1" > "$2"' sh "$F" "$T/config.ini"
for i in "${!names[@]}"; do
	assert_file "$T/config/app/${names[i]}" "${values[i]}"$'\n'
done
assert_same "$F" "$T/config.ini"

# The encoding as documented: a quoted value, one piece per line of it.
printf '%s\n' '[app]' 'doc = "  first\n"' '  "# second"' >"$MFS_TMP/doc.ini"
assert_ok sh -c 'cat "$1" > "$2"' sh "$MFS_TMP/doc.ini" "$S/config.ini"
assert_file "$S/config/app/doc" $'  first\n# second\n'

# -- keys --------------------------------------------------------------------

before=$(status_field "$S" last_error)
bad=('a=b' 'a:b' '[a' 'a]' 'a;b' '#a' 'a#b' $'a\nb' ' a' 'a ' $'a\tb')
for k in "${bad[@]}"; do
	assert_errno EINVAL creat "$S/config/app/$k"
done
assert_fails_with EINVAL sh -c 'echo v > "$1"' sh "$S/config/app/x=y"
assert_reason "a key with '='" "$S" "invalid key name"
assert_error_changed "bad keys" "$S" "$before"
assert_ls "$S/config/app" "${names[@]}" doc

# In a config.ini document: the whole document is refused.
assert_write EINVAL "$S/config.ini" $'[app]\nfresh = 1\nb#d = 2\n'
assert_reason "a config.ini key with '#'" "$S" "line 3: invalid key name 'b#d'"
assert_absent "$S/config/app/fresh"
assert_file "$S/config/app/lead" '   indented'$'\n'

# In the bootstrap file: mallafs does not mount.
printf '%s\n' '[services.x.app]' 'ok = 1' 'a;b = 2' >"$MFS_TMP/boot.ini"
mkdir -p "$MFS_TMP/unused"
mfs_run_daemon -f --config="$MFS_TMP/boot.ini" "$MFS_TMP/unused"
assert_eq "a bootstrap key with ';': exit status 1" 1 "$MFS_RC"
assert_match "a bootstrap key with ';': FILE:LINE: reason" "boot.ini:3: invalid key name" "$MFS_ERR"

# -- symlink, mknod, link ----------------------------------------------------

echo v >"$S/store/k" || fail "echo v > store/k"
mkdir -p "$MNT/config/app1" && echo v >"$MNT/config/app1/k" || fail "config/app1/k"
sleep 1000 &
holder=$!
MFS_CHILDREN+=("$holder")
echo "$holder" >"$MNT/registry/r" || fail "register r"
for dir in "$MNT" "$MNT/services" "$S" "$S/store" "$S/config/app" "$MNT/config/app1" \
	"$MNT/registry"; do
	assert_errno EPERM symlink target "$dir/sym"
	assert_errno EPERM mknod "$dir/fifo" fifo
	assert_errno EPERM mknod "$dir/reg" reg
done
assert_errno EPERM link "$S/store/k" "$S/store/k2"
assert_errno EPERM link "$S/store/k" "$T/store/k"
assert_errno EPERM link "$MNT/config/app1/k" "$MNT/config/app1/k2"
assert_errno EPERM link "$MNT/registry/r" "$MNT/registry/r2"
assert_fails_with EPERM ln -s k "$S/store/l"
assert_fails_with EPERM ln "$S/store/k" "$S/store/l"
assert_fails_with EPERM mknod "$S/store/p" p
assert_fails_with EPERM mkfifo "$S/store/p"
assert_ls "$S/store" k
# Regular files are made as before, by open(O_CREAT).
assert_ok sh -c 'echo new > "$1"' sh "$S/store/new"
assert_file "$S/store/new" $'new\n'

mfs_unmount
mfs_done
