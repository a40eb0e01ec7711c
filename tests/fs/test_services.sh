#!/bin/bash
# SPDX-License-Identifier: MIT
# services/ (SPEC.md, "services/" and "Names"): mkdir creates a running
# service with the chain base, rmdir destroys it with its store, EEXIST,
# ENOENT, and EINVAL (or ENAMETOOLONG past 255 bytes) for bad names.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNNING=$'state: running\nadmin: active\nrestarts: 0\nlast_restart: -\nlast_error: -\nretries: 0\nnext_retry: -\n'

mfs_mount
SV=$MNT/services

# A new service.
assert_ok mkdir "$SV/api"
assert_ls "$SV" api
assert_file "$SV/api/status" "$RUNNING"
assert_file "$SV/api/chain" $'base\n'
assert_ls "$SV/api/store"

# Already there.
assert_fails_with EEXIST mkdir "$SV/api"
assert_errno EEXIST mkdir "$SV/api"
assert_ls "$SV" api
assert_file "$SV/api/status" "$RUNNING"

# Good names: [A-Za-z0-9._-], 1 to 255 bytes.
long255=$(printf 'n%.0s' {1..255})
for name in a Z9 my-svc_1.0 .hidden -dash v1.2.3 "$long255"; do
	assert_errno OK mkdir "$SV/$name"
	assert_exists "$SV/$name/status"
done
assert_ls "$SV" api a Z9 my-svc_1.0 .hidden -dash v1.2.3 "$long255"
for name in a Z9 my-svc_1.0 .hidden -dash v1.2.3 "$long255"; do
	assert_errno OK rmdir "$SV/$name"
done
assert_ls "$SV" api

# Bad names: EINVAL, and nothing created.
for name in "a b" "a:b" "a*" "caf"$'\xc3\xa9' "tab"$'\t'"x" "new"$'\n'"line" "a@b" "{x}"; do
	assert_errno EINVAL mkdir "$SV/$name"
	assert_absent "$SV/$name"
done
assert_fails_with EINVAL mkdir "$SV/a b"
# Past 255 bytes: EINVAL (SPEC.md's name rule) or ENAMETOOLONG (the usual
# errno for a too long name) are both fair.
long256=$(printf 'n%.0s' {1..256})
assert_errno 'EINVAL|ENAMETOOLONG' mkdir "$SV/$long256"
assert_errno 'EINVAL|ENAMETOOLONG' mkdir "$SV/$(printf 'n%.0s' {1..1000})"
# "." and ".." never reach the filesystem: the kernel answers EEXIST for
# mkdir (they exist), EINVAL and ENOTEMPTY for rmdir.
assert_errno EEXIST mkdir "$SV/."
assert_errno EEXIST mkdir "$SV/.."
assert_errno EINVAL rmdir "$SV/."
assert_ls "$SV" api

# rmdir of what is not there.
assert_fails_with ENOENT rmdir "$SV/nosuch"
assert_errno ENOENT rmdir "$SV/nosuch"

# rmdir works while the store holds keys, and destroys them.
assert_ok bash -c "echo one > '$SV/api/store/k1' && echo two > '$SV/api/store/k2'"
assert_ls "$SV/api/store" k1 k2
assert_file "$SV/api/store/k1" $'one\n'
assert_ok rmdir "$SV/api"
assert_absent "$SV/api"
assert_absent "$SV/api/store/k1"
assert_ls "$SV"
# A new service of the same name starts empty.
assert_ok mkdir "$SV/api"
assert_ls "$SV/api/store"
assert_absent "$SV/api/store/k1"
assert_file "$SV/api/status" "$RUNNING"
# Nothing the kernel cached of the old service shows through.
assert_ok bash -c "echo fresh > '$SV/api/store/k1'"
assert_file "$SV/api/store/k1" $'fresh\n'
assert_ok rm "$SV/api/store/k1"

# rmdir of a stopped or paused service works too.
assert_ok mkdir "$SV/stopped"
assert_ok bash -c "echo inactive > '$SV/stopped/status'"
assert_ok bash -c "echo v > '$SV/stopped/store/k'"
assert_ok rmdir "$SV/stopped"
assert_absent "$SV/stopped"
assert_ok mkdir "$SV/paused"
assert_ok bash -c "echo pause > '$SV/paused/status'"
assert_ok rmdir "$SV/paused"
assert_absent "$SV/paused"

# Many services, then none.
names=()
for i in $(seq 1 40); do
	names+=("svc$i")
done
assert_true "mkdir 40 services" mkdir "${names[@]/#/$SV/}"
assert_ls "$SV" api "${names[@]}"
assert_true "rmdir 40 services" rmdir "${names[@]/#/$SV/}"
assert_ls "$SV" api
assert_ok rmdir "$SV/api"
assert_ls "$SV"

mfs_unmount
mfs_done
