#!/bin/bash
# SPDX-License-Identifier: MIT
# Cluster mode: owners and modes of config/ and registry/ travel through
# etcd (PREFIX/perm/PATH) as numbers, so that on every node the same users
# own the same entries: config/APP made by a user on A is theirs on B and
# they write into it there; chmod and chown of a key on A hold on B (and
# the other way); registry/POOL made by a user is theirs on B. The override
# goes from etcd with its entry, a name made again has the rules' owner;
# config/ itself stays the node's. A node that starts later imports them.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../etcd/lib_etcd.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_cluster.sh"

mfs_user mallafs-t1
mfs_user mallafs-t2
ALICE=mallafs-t1 BOB=mallafs-t2
AU=$(id -u $ALICE) AG=$(id -g $ALICE)
etcd_start_one "$MFS_TMP/etcd" >/dev/null

cl_start A
cl_start B
A=${CL_MNT[A]} B=${CL_MNT[B]}

# st_is PATH "UID GID MODE": what stat says.
st_is()
{
	[[ $(stat -c '%u %g %a' "$1" 2>/dev/null) == "$2" ]]
}

# -- config/APP made by alice on A is alice's on B ---------------------------
assert_ok chmod 1777 "$A/config"
assert_ok mfs_as $ALICE mkdir "$A/config/app"
assert_true "A: config/app is alice's" st_is "$A/config/app" "$AU $AG 755"
cl_wait 3000 "B: config/app is alice's ($AU $AG 755)" st_is "$B/config/app" "$AU $AG 755"
assert_true "B: config/ itself stays the mount owner's 755 (chmod on A is A's)" \
	st_is "$B/config" "0 0 755"
assert_ok mfs_as $ALICE bash -c "echo from-b > '$B/config/app/k'"
cl_wait 2000 "A reads alice's key written on B" eval '[[ $(cat "$A/config/app/k" 2>/dev/null) == from-b ]]'
assert_true "A: config/app/k is alice's" st_is "$A/config/app/k" "$AU $AG 644"
assert_fails_with EACCES mfs_as $BOB bash -c "echo bob > '$B/config/app/k2'"

# alice's chmod on B holds on A.
assert_ok mfs_as $ALICE chmod 600 "$B/config/app/k"
cl_wait 3000 "A: config/app/k 600 after alice's chmod on B" st_is "$A/config/app/k" "$AU $AG 600"
assert_fails_with EACCES mfs_as $BOB cat "$A/config/app/k"

# -- root's chmod and chown of a key on A hold on B --------------------------
assert_ok mkdir "$A/config/rootapp"
assert_ok bash -c "echo secret > '$A/config/rootapp/s'"
cl_wait 2000 "B sees config/rootapp/s" test -e "$B/config/rootapp/s"
assert_true "B: config/rootapp/s is root's 644" st_is "$B/config/rootapp/s" "0 0 644"
assert_ok mfs_as $BOB cat "$B/config/rootapp/s"
assert_ok chmod 600 "$A/config/rootapp/s"
assert_ok chown "$AU:$AG" "$A/config/rootapp/s"
cl_wait 3000 "B: config/rootapp/s is alice's 600" st_is "$B/config/rootapp/s" "$AU $AG 600"
assert_fails_with EACCES mfs_as $BOB cat "$B/config/rootapp/s"
assert_ok mfs_as $ALICE cat "$B/config/rootapp/s"
assert_true "etcd holds perm/config/rootapp/s with alice's uid" eval \
	'[[ $(etcd_ctl get --print-value-only /mallafs/default/perm/config/rootapp/s) == *"\"uid\":$AU,"* ]]'

# -- the override goes with its entry, everywhere and from etcd --------------
assert_ok rm "$A/config/rootapp/s"
cl_wait 2000 "B: config/rootapp/s gone" eval '[[ ! -e $B/config/rootapp/s ]]'
cl_wait 3000 "etcd: perm/config/rootapp/s gone" eval \
	'[[ -z $(etcd_ctl get --keys-only /mallafs/default/perm/config/rootapp/s) ]]'
assert_ok bash -c "echo again > '$B/config/rootapp/s'"
cl_wait 2000 "A sees config/rootapp/s again" test -e "$A/config/rootapp/s"
assert_true "A: made again, it is root's 644 (nothing stale)" st_is "$A/config/rootapp/s" "0 0 644"
assert_true "B: made again, it is root's 644" st_is "$B/config/rootapp/s" "0 0 644"

# -- registry/POOL made by alice on A is alice's on B ------------------------
assert_ok mfs_as $ALICE mkdir "$A/registry/pool"
assert_true "A: registry/pool is alice's" st_is "$A/registry/pool" "$AU $AG 1777"
cl_wait 3000 "B: registry/pool is alice's ($AU $AG 1777)" st_is "$B/registry/pool" "$AU $AG 1777"
assert_ok mfs_as $ALICE chmod 1755 "$A/registry/pool"
cl_wait 3000 "B: registry/pool 1755 after alice's chmod on A" st_is "$B/registry/pool" "$AU $AG 1755"

# -- a node started later imports them ---------------------------------------
cl_stop B
cl_start B
cl_wait 2000 "restarted B: config/app is alice's" st_is "$B/config/app" "$AU $AG 755"
assert_true "restarted B: config/app/k is alice's 600" st_is "$B/config/app/k" "$AU $AG 600"
assert_true "restarted B: registry/pool is alice's 1755" st_is "$B/registry/pool" "$AU $AG 1755"

# -- rmdir of config/app: its overrides leave etcd ---------------------------
assert_ok mfs_as $ALICE rm "$B/config/app/k"
assert_ok rmdir "$B/config/app" # config/ on B is root's 755
cl_wait 3000 "etcd: no perm/config/app... left" eval \
	'[[ -z $(etcd_ctl get --keys-only --prefix /mallafs/default/perm/config/app) ]]'
assert_ok mkdir "$A/config/app"
cl_wait 2000 "B sees config/app again" test -d "$B/config/app"
assert_true "B: config/app made again by root is root's" st_is "$B/config/app" "0 0 755"

cl_stop A
cl_stop B
mfs_done
