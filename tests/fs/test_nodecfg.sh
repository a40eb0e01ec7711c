#!/bin/bash
# SPDX-License-Identifier: MIT
# config/ (SPEC.md): node-wide configuration, apps of keys with regular-file
# semantics, byte-exact: mkdir, echo, cat, rm, ls, mv within and across apps,
# rmdir (ENOTEMPTY until empty), and EINVAL for bad app names.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mfs_mount
C=$MNT/config
LOCAL=$MFS_TMP/local
mkdir -p "$LOCAL"

# Apps.
assert_ok mkdir "$C/app1"
assert_ls "$C" app1
assert_eq "config/app1 is a directory" directory "$(stat -c %F "$C/app1" 2>&1)"
assert_ls "$C/app1"
assert_fails_with EEXIST mkdir "$C/app1"
assert_errno EEXIST mkdir "$C/app1"
for name in "a b" "a:b" "caf"$'\xc3\xa9' "a*"; do
	assert_errno EINVAL mkdir "$C/$name"
	assert_absent "$C/$name"
done
assert_fails_with EINVAL mkdir "$C/bad name"
assert_errno 'EINVAL|ENAMETOOLONG' mkdir "$C/$(printf 'a%.0s' {1..256})"
assert_errno OK mkdir "$C/my_app-2.0"
assert_ls "$C" app1 my_app-2.0
assert_ok rmdir "$C/my_app-2.0"

# Keys: put, get byte-exact, list, delete.
assert_ok bash -c "echo secret_key > '$C/app1/api_key'"
assert_file "$C/app1/api_key" $'secret_key\n'
assert_eq "stat size of a key" 11 "$(stat -c %s "$C/app1/api_key")"
assert_ok bash -c "printf 'no newline' > '$C/app1/raw'"
assert_file "$C/app1/raw" 'no newline'
printf 'x\0y\n\0\377' >"$LOCAL/bin"
assert_ok cp "$LOCAL/bin" "$C/app1/bin"
assert_same "$LOCAL/bin" "$C/app1/bin"
assert_ls "$C/app1" api_key bin raw
assert_ok rm "$C/app1/bin"
assert_absent "$C/app1/bin"
assert_fails_with ENOENT cat "$C/app1/bin"
assert_fails_with ENOENT rm "$C/app1/bin"
assert_ls "$C/app1" api_key raw

# Append, truncate, offsets, overwrite with a shorter value.
assert_ok bash -c "echo more >> '$C/app1/raw'"
assert_file "$C/app1/raw" $'no newlinemore\n'
assert_ok truncate -s 2 "$C/app1/raw"
assert_file "$C/app1/raw" 'no'
assert_ok truncate -s 4 "$C/app1/raw"
assert_true "truncate pads with NUL bytes" cmp "$C/app1/raw" <(printf 'no\0\0')
assert_ok bash -c "printf XY | dd of='$C/app1/raw' bs=1 seek=1 conv=notrunc status=none"
assert_true "a write at an offset" cmp "$C/app1/raw" <(printf 'nXY\0')
assert_ok bash -c "echo s > '$C/app1/raw'"
assert_file "$C/app1/raw" $'s\n'
head -c 1500000 /dev/urandom >"$LOCAL/big"
assert_ok cp "$LOCAL/big" "$C/app1/big"
assert_same "$LOCAL/big" "$C/app1/big"
assert_true "fsprobe rw-loop on a config key" "$FSPROBE" rw-loop "$C/app1/loop" 150
assert_ok rm "$C/app1/big" "$C/app1/loop"

# Keys may be any valid file name.
for k in "with space" "ünï 日本" ".dot" "a:b=c"; do
	printf '%s' "v-$k" >"$C/app1/$k"
	assert_file "$C/app1/$k" "v-$k"
	assert_errno OK unlink "$C/app1/$k"
done

# mv within an app, over an existing key, and across apps.
assert_ok mv "$C/app1/raw" "$C/app1/renamed"
assert_absent "$C/app1/raw"
assert_file "$C/app1/renamed" $'s\n'
assert_ok bash -c "echo target > '$C/app1/target'"
assert_ok mv "$C/app1/renamed" "$C/app1/target"
assert_file "$C/app1/target" $'s\n'
assert_ls "$C/app1" api_key target
assert_ok mkdir "$C/app2"
assert_ok mv "$C/app1/target" "$C/app2/moved"
assert_absent "$C/app1/target"
assert_file "$C/app2/moved" $'s\n'
assert_ok bash -c "echo old > '$C/app1/over'"
assert_ok mv "$C/app2/moved" "$C/app1/over"
assert_file "$C/app1/over" $'s\n'
assert_ls "$C/app1" api_key over
assert_ls "$C/app2"
assert_errno ENOENT rename "$C/app1/nosuch" "$C/app2/x"
assert_errno ENOENT rename "$C/app1/over" "$C/noapp/x"
assert_file "$C/app1/over" $'s\n'

# A key of an app that does not exist.
assert_errno ENOENT creat "$C/noapp/key"
assert_absent "$C/noapp"

# rmdir: ENOTEMPTY while keys remain, then it works.
assert_ok bash -c "echo v > '$C/app2/k'"
assert_fails_with ENOTEMPTY rmdir "$C/app2"
assert_errno ENOTEMPTY rmdir "$C/app2"
assert_file "$C/app2/k" $'v\n'
assert_ok rm "$C/app2/k"
assert_ok rmdir "$C/app2"
assert_absent "$C/app2"
assert_errno ENOENT rmdir "$C/app2"
assert_ls "$C" app1

# Node-wide: it outlives services.
assert_ok mkdir "$MNT/services/s"
assert_ok rmdir "$MNT/services/s"
assert_file "$C/app1/api_key" $'secret_key\n'

# Many keys, then none.
assert_true "create 300 keys" bash -c "for i in \$(seq 1 300); do echo \$i > '$C/app1/k'\$i; done"
assert_eq "ls counts 300 keys and 2 more" 302 "$(ls -A "$C/app1" | wc -l)"
assert_true "delete them" bash -c "cd '$C/app1' && rm k* api_key over"
assert_ls "$C/app1"
assert_ok rmdir "$C/app1"
assert_ls "$C"

mfs_unmount
mfs_done
