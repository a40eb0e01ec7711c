#!/bin/bash
# SPDX-License-Identifier: MIT
# The skeleton of the tree (SPEC.md, "The tree"): the root folders, what a
# service folder holds, file types and modes, and ENOENT for what is not there.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# mode_of PATH: the permission bits in octal.
mode_of()
{
	stat -c %a "$1" 2>&1
}

# type_of PATH: "directory", "regular file", "regular empty file"...
type_of()
{
	stat -c %F "$1" 2>&1
}

mfs_mount

# The root.
assert_ls "$MNT" config events metrics registry services
for d in services registry config; do
	assert_eq "$d is a directory" directory "$(type_of "$MNT/$d")"
done
# SPEC.md: events is a file to read (a blocking feed), not a folder. It is
# not read here: a read blocks until there is an event.
assert_match "events is a regular file" '^regular' "$(type_of "$MNT/events")"
assert_ls "$MNT/services"
assert_ls "$MNT/registry"
assert_ls "$MNT/config"
assert_ok ls -la "$MNT"

# What is not there.
assert_fails_with ENOENT ls "$MNT/nosuch"
assert_errno ENOENT stat "$MNT/nosuch"
assert_errno ENOENT stat "$MNT/services/nosuch"
assert_errno ENOENT stat "$MNT/services/nosuch/status"
assert_errno ENOENT open "$MNT/registry/nosuch"
assert_errno ENOENT open "$MNT/config/nosuch/key"
# SPEC.md is silent on new entries at the root; as in sysfs or cgroupfs it
# is not allowed.
assert_errno 'EPERM|EACCES' creat "$MNT/newfile"
assert_errno 'EPERM|EACCES' mkdir "$MNT/newdir"
assert_ls "$MNT" config events metrics registry services

# A service folder.
assert_ok mkdir "$MNT/services/web"
S=$MNT/services/web
assert_ls "$MNT/services" web
assert_ls "$S" chain config config.ini plugins status store
for d in store plugins config; do
	assert_eq "services/web/$d is a directory" directory "$(type_of "$S/$d")"
done
for f in chain status config.ini; do
	assert_match "services/web/$f is a regular file" '^regular' "$(type_of "$S/$f")"
done
assert_ls "$S/store"
assert_ls "$S/plugins" base
assert_eq "plugins/base is a directory" directory "$(type_of "$S/plugins/base")"
assert_ls "$S/plugins/base"
assert_errno ENOENT stat "$S/nosuch"
assert_errno ENOENT stat "$S/store/nosuch"
assert_errno ENOENT stat "$S/plugins/nosuch"

# Modes: chain is read-only for everyone; status and config.ini are
# writable by their owner; store is a writable folder.
m=$(mode_of "$S/chain")
assert_true "chain has no write bit (mode $m)" test $((8#$m & 8#222)) -eq 0
assert_true "chain is readable (mode $m)" test $((8#$m & 8#444)) -ne 0
m=$(mode_of "$S/status")
assert_true "status is writable by its owner (mode $m)" test $((8#$m & 8#200)) -ne 0
m=$(mode_of "$S/config.ini")
assert_true "config.ini is writable by its owner (mode $m)" test $((8#$m & 8#200)) -ne 0
m=$(mode_of "$S/store")
assert_true "store is a writable folder (mode $m)" test $((8#$m & 8#200)) -ne 0

# find walks the whole tree without reading a file. (What config/ holds with
# the chain `base` alone is left open: base declares no setting.)
found=$(cd "$MNT" && find . -path ./events -print -o -path './services/*/config/*' -prune -o -print 2>&1 |
	LC_ALL=C sort | tr '\n' ' ')
assert_eq "find lists the tree" \
	". ./config ./events ./metrics ./registry ./services ./services/web ./services/web/chain ./services/web/config ./services/web/config.ini ./services/web/plugins ./services/web/plugins/base ./services/web/status ./services/web/store " \
	"$found"

# A second service has its own folder; removing one leaves the other.
assert_ok mkdir "$MNT/services/db"
assert_ls "$MNT/services" db web
assert_ok rmdir "$MNT/services/web"
assert_ls "$MNT/services" db
assert_errno ENOENT stat "$S/status"
assert_ls "$MNT/services/db" chain config config.ini plugins status store

mfs_unmount
mfs_done
