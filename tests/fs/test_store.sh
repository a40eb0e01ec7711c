#!/bin/bash
# SPDX-License-Identifier: MIT
# services/NAME/store/ (SPEC.md): the key-value store with the semantics of
# a regular file, byte-exact: echo, cat, rm, ls, >>, truncate, mv over a key,
# stat (size and mtime), binary values, a value of several MB, offsets, no
# stale read after a write, ls after many creates and deletes, any valid file
# name as a key, and EPERM for a subfolder.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mfs_mount
assert_ok mkdir "$MNT/services/kv"
ST=$MNT/services/kv/store
LOCAL=$MFS_TMP/local
mkdir -p "$LOCAL"

# put, get, list, delete.
assert_ok bash -c "echo hello > '$ST/greeting'"
assert_file "$ST/greeting" $'hello\n'
assert_eq "cat store/greeting" hello "$(cat "$ST/greeting")"
assert_ls "$ST" greeting
assert_eq "stat size of greeting" 6 "$(stat -c %s "$ST/greeting")"
assert_ok bash -c "echo bye > '$ST/greeting'"
assert_file "$ST/greeting" $'bye\n'
assert_eq "stat size after a shorter value" 4 "$(stat -c %s "$ST/greeting")"
assert_ok rm "$ST/greeting"
assert_absent "$ST/greeting"
assert_ls "$ST"
assert_fails_with ENOENT cat "$ST/greeting"
assert_fails_with ENOENT rm "$ST/greeting"
assert_errno ENOENT unlink "$ST/greeting"

# No trailing newline, empty values, touch, O_EXCL.
assert_ok bash -c "printf 'a\nb' > '$ST/raw'"
assert_file "$ST/raw" $'a\nb'
assert_ok bash -c ": > '$ST/empty'"
assert_file "$ST/empty" ''
assert_eq "stat size of an empty value" 0 "$(stat -c %s "$ST/empty")"
assert_ok touch "$ST/touched"
assert_file "$ST/touched" ''
assert_ok touch "$ST/raw"
assert_file "$ST/raw" $'a\nb'
assert_errno EEXIST open "$ST/raw" wcx
assert_errno OK open "$ST/fresh" wcx
assert_ls "$ST" empty fresh raw touched
assert_ok rm "$ST/empty" "$ST/fresh" "$ST/touched"

# Append.
assert_ok bash -c "printf one > '$ST/log' && echo two >> '$ST/log' && printf three >> '$ST/log'"
assert_file "$ST/log" $'onetwo\nthree'
assert_ok bash -c "for i in \$(seq 1 100); do printf x >> '$ST/log'; done"
assert_eq "100 appends of one byte" $((12 + 100)) "$(stat -c %s "$ST/log")"

# Truncate: shrink, grow with zeros, to zero.
assert_ok bash -c "printf 0123456789 > '$ST/t'"
assert_ok truncate -s 4 "$ST/t"
assert_file "$ST/t" 0123
assert_ok truncate -s 8 "$ST/t"
assert_true "truncate -s 8 pads with NUL bytes" cmp "$ST/t" <(printf '0123\0\0\0\0')
assert_eq "stat size after truncate" 8 "$(stat -c %s "$ST/t")"
assert_errno OK truncate "$ST/t" 0
assert_file "$ST/t" ''
assert_errno ENOENT truncate "$ST/nosuch" 0
# O_TRUNC on an open wipes a store value, as on any regular file.
assert_ok bash -c "echo keep > '$ST/t'"
assert_errno OK open "$ST/t" wt
assert_file "$ST/t" ''

# Writes at offsets, in the middle and past the end (a hole reads as zeros).
head -c 10000 /dev/urandom >"$LOCAL/off"
assert_ok cp "$LOCAL/off" "$ST/off"
for seek in 0 1 4095 4096 9990 12000; do
	printf 'PATCH-%s' "$seek" | dd of="$LOCAL/off" bs=1 seek="$seek" conv=notrunc status=none
	printf 'PATCH-%s' "$seek" | dd of="$ST/off" bs=1 seek="$seek" conv=notrunc status=none
	assert_same "$LOCAL/off" "$ST/off"
done
assert_eq "pread at an offset" "$(tail -c +4097 "$LOCAL/off" | head -c 100 | od -An -tx1)" \
	"$(tail -c +4097 "$ST/off" | head -c 100 | od -An -tx1)"
assert_errno OK pread "$ST/off" 1000000 10
assert_ok rm "$ST/off"

# Rename: to a new name, over an existing key (replacing it).
assert_ok bash -c "echo A > '$ST/a' && echo B > '$ST/b'"
assert_ok mv "$ST/a" "$ST/c"
assert_absent "$ST/a"
assert_file "$ST/c" $'A\n'
assert_file "$ST/b" $'B\n'
assert_ok mv "$ST/c" "$ST/b"
assert_file "$ST/b" $'A\n'
assert_absent "$ST/c"
assert_ls "$ST" b log raw t
assert_errno OK rename "$ST/b" "$ST/raw"
assert_file "$ST/raw" $'A\n'
assert_absent "$ST/b"
assert_errno ENOENT rename "$ST/nosuch" "$ST/other"
assert_absent "$ST/other"
assert_ok rm "$ST/raw" "$ST/log" "$ST/t"

# stat: mtime is the last change time.
before=$(date +%s.%N)
assert_ok bash -c "echo v1 > '$ST/m'"
m1=$(stat -c %.9Y "$ST/m")
after=$(date +%s.%N)
assert_true "mtime of a new value is the time of the write" \
	awk -v b="$before" -v m="$m1" -v a="$after" 'BEGIN { exit !(m >= b - 0.01 && m <= a + 0.01) }'
sleep 0.05
assert_ok bash -c "echo v2 >> '$ST/m'"
m2=$(stat -c %.9Y "$ST/m")
assert_true "mtime grows with a write ($m1 -> $m2)" awk -v x="$m1" -v y="$m2" 'BEGIN { exit !(y > x) }'
sleep 0.05
assert_ok truncate -s 1 "$ST/m"
m3=$(stat -c %.9Y "$ST/m")
assert_true "mtime grows with a truncate ($m2 -> $m3)" awk -v x="$m2" -v y="$m3" 'BEGIN { exit !(y > x) }'
sleep 0.05
cat "$ST/m" >/dev/null
assert_eq "a read leaves mtime alone" "$m3" "$(stat -c %.9Y "$ST/m")"
assert_ok rm "$ST/m"

# Binary values, NUL bytes included.
printf 'a\0b\0\0c\n\0' >"$LOCAL/nul"
assert_ok cp "$LOCAL/nul" "$ST/nul"
assert_same "$LOCAL/nul" "$ST/nul"
assert_eq "stat size of a value with NULs" 8 "$(stat -c %s "$ST/nul")"
head -c 65537 /dev/urandom >"$LOCAL/bin"
assert_ok bash -c "cat '$LOCAL/bin' > '$ST/bin'"
assert_same "$LOCAL/bin" "$ST/bin"
assert_eq "stat size of a 64 KiB binary value" 65537 "$(stat -c %s "$ST/bin")"

# A value of several MB: write, read, append, truncate, rename.
head -c 8M /dev/urandom >"$LOCAL/big"
assert_ok cp "$LOCAL/big" "$ST/big"
assert_same "$LOCAL/big" "$ST/big"
assert_eq "stat size of an 8 MiB value" 8388608 "$(stat -c %s "$ST/big")"
assert_eq "md5 of the 8 MiB value read in 1 KiB blocks" \
	"$(md5sum <"$LOCAL/big")" "$(dd if="$ST/big" bs=1k status=none | md5sum)"
printf tail >>"$LOCAL/big"
assert_ok bash -c "printf tail >> '$ST/big'"
assert_same "$LOCAL/big" "$ST/big"
truncate -s 3M "$LOCAL/big"
assert_ok truncate -s 3M "$ST/big"
assert_same "$LOCAL/big" "$ST/big"
assert_ok mv "$ST/big" "$ST/bin"
assert_same "$LOCAL/big" "$ST/bin"
assert_absent "$ST/big"
assert_ok rm "$ST/bin" "$ST/nul"

# Read after write, in a loop: never a stale read.
assert_true "fsprobe rw-loop: 400 writes, each read back through 3 fds" \
	"$FSPROBE" rw-loop "$ST/loop" 400
stale=''
for i in $(seq 1 200); do
	v=$(printf "%0$((i % 37))d" "$i")
	echo "$v" >"$ST/loop"
	got=$(cat "$ST/loop")
	if [[ $got != "$v" ]]; then
		stale="round $i: wrote $v, read $got"
		break
	fi
done
assert_eq "200 rounds of echo then cat: no stale read" '' "$stale"
assert_ok rm "$ST/loop"
# What the kernel cached of a key must not outlive it: read, delete,
# recreate with another value (shorter, then longer), read again.
stale=''
for i in $(seq 1 50); do
	v="old-$i-$(printf "%0$((i * 3))d" 0)"
	echo "$v" >"$ST/cached"
	cat "$ST/cached" >/dev/null
	rm -f "$ST/cached"
	echo "new-$i" >"$ST/cached"
	got=$(cat "$ST/cached")
	if [[ $got != "new-$i" ]]; then
		stale="round $i: read $got after rm and a new value"
		break
	fi
done
assert_eq "50 rounds of read, rm, recreate, read: no stale read" '' "$stale"
assert_ok rm "$ST/cached"

# ls after many creates and deletes (more names than one readdir reply holds).
assert_true "create 1000 keys" bash -c "for i in \$(seq 1 1000); do echo \$i > '$ST/key-'\$i; done"
assert_eq "ls counts 1000 keys" 1000 "$(ls -A "$ST" | wc -l)"
assert_eq "ls lists the 1000 keys" "$(seq 1 1000 | sed 's/^/key-/' | LC_ALL=C sort)" \
	"$(ls -A "$ST" | LC_ALL=C sort)"
assert_true "delete the odd keys" bash -c "cd '$ST' && rm \$(seq -f 'key-%g' 1 2 1000)"
assert_eq "ls lists the 500 even keys" "$(seq 2 2 1000 | sed 's/^/key-/' | LC_ALL=C sort)" \
	"$(ls -A "$ST" | LC_ALL=C sort)"
assert_file "$ST/key-500" $'500\n'
assert_absent "$ST/key-501"
assert_true "create them again" bash -c "for i in \$(seq 1 2 1000); do echo \$i > '$ST/key-'\$i; done"
assert_eq "ls lists the 1000 keys again" "$(seq 1 1000 | sed 's/^/key-/' | LC_ALL=C sort)" \
	"$(ls -A "$ST" | LC_ALL=C sort)"
assert_true "delete them all" bash -c "cd '$ST' && rm key-*"
assert_ls "$ST"

# Keys may be any valid file name.
names=("with space" "ünïcødé 日本語" ".hidden" "-dash" "a:b*c?" "tab	x" "x=y;z" "\\back" "'quote\"")
for k in "${names[@]}"; do
	printf '%s' "value of $k" >"$ST/$k"
	assert_file "$ST/$k" "value of $k"
done
assert_ls "$ST" "${names[@]}"
for k in "${names[@]}"; do
	assert_errno OK unlink "$ST/$k"
done
assert_ok bash -c "printf nl > \"\$1\"" sh "$ST/new"$'\n'"line"
assert_file "$ST/new"$'\n'"line" nl
assert_errno OK unlink "$ST/new"$'\n'"line"
long255=$(printf 'k%.0s' {1..255})
assert_errno OK creat "$ST/$long255"
assert_ls "$ST" "$long255"
assert_errno OK unlink "$ST/$long255"
assert_errno 'EINVAL|ENAMETOOLONG' creat "$ST/$(printf 'k%.0s' {1..256})"
assert_ls "$ST"

# No subfolders (SPEC.md: EPERM; its errors table allows EACCES too).
assert_fails_with 'EPERM|EACCES' mkdir "$ST/x"
assert_errno 'EPERM|EACCES' mkdir "$ST/x"
assert_absent "$ST/x"

# A store of a service that does not exist.
assert_errno ENOENT creat "$MNT/services/nosuch/store/k"

mfs_unmount
mfs_done
