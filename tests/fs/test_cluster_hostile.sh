#!/bin/bash
# SPDX-License-Identifier: MIT
# What a buggy or hostile node writes into etcd, as the watch brings it to
# a node (the keys fuzz_mirror replays): entries that are not what mallafs
# writes are left out, with the node still serving and the good entries
# that follow applied; a registry entry whose "value" or "node" is not a
# string (JSON null) crashed the watcher before.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../etcd/lib_etcd.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_cluster.sh"

etcd_start_one "$MFS_TMP/etcd" >/dev/null
cl_start A
A=${CL_MNT[A]}
K=/mallafs/default

put() { etcd_ctl put "$1" "$2" >/dev/null || fail "etcdctl put $1"; }

put "$K/registry/n/nullval" '{"node":"evil","pid":5,"uid":0,"value":null}'
put "$K/registry/n/nullnode" '{"node":null,"pid":5,"uid":0}'
put "$K/registry/n/numval" '{"node":"evil","pid":5,"uid":0,"value":7}'
put "$K/registry/p/pool9" '{"node":"evil","uid":0}'
put "$K/registry/m/pool9/6@evil" '{"node":"evil","pid":6,"uid":0,"value":null}'
put "$K/registry/n/notjson" 'xx{'
put "$K/config/k/app9/k" 'no newline here'
put "$K/services/evil/s1" 'no header'
# Then good ones: applied, so the watch went on.
put "$K/registry/n/good" '{"node":"evil","pid":5,"uid":0,"value":"ok"}'
put "$K/config/k/app9/k2" $'evil\nv2'

cl_wait 3000 "registry/good applied after the bad entries" \
	eval '[[ $(cat "$A/registry/good" 2>/dev/null) == "5@evil ok" ]]'
cl_wait 2000 "config/app9/k2 applied" eval '[[ $(cat "$A/config/app9/k2" 2>/dev/null) == v2 ]]'
assert_ok mfs_alive "${CL_PID[A]}"
for n in nullval nullnode numval notjson; do
	assert_ok eval "[[ ! -e '$A/registry/$n' ]]"
done
# A member's value null: no value (the member is named by its key).
cl_wait 2000 "registry/pool9/6@evil applied, empty" \
	eval '[[ -e $A/registry/pool9/6@evil && -z $(cat "$A/registry/pool9/6@evil") ]]'
assert_ok eval "[[ ! -e '$A/config/app9/k' ]]"

# An app deleted while it has keys (no node does so: a listing's
# difference can): its keys go first, each with its event; the event's
# name was read after the key was freed (the sanitizer passes catch it).
put "$K/config/a/app7" '{"node":"evil"}'
put "$K/config/k/app7/x" $'evil\nx'
put "$K/config/k/app7/y" $'evil\ny'
cl_wait 2000 "config/app7/y applied" eval '[[ -e $A/config/app7/y ]]'
etcd_ctl del "$K/config/a/app7" >/dev/null || fail "etcdctl del"
cl_wait 2000 "config/app7 gone with its keys" eval '[[ ! -e $A/config/app7 ]]'
assert_ok mfs_alive "${CL_PID[A]}"

# A key of no kind mallafs knows (registry/x/NAME): its deletion removed
# the pool of that name, members and all.
put "$K/registry/x/pool9" '{"node":"evil"}'
etcd_ctl del "$K/registry/x/pool9" >/dev/null || fail "etcdctl del"
put "$K/config/k/app9/k3" $'evil\nv3'
cl_wait 2000 "config/app9/k3 applied" eval '[[ -e $A/config/app9/k3 ]]'
assert_ok test -e "$A/registry/pool9/6@evil"

cl_stop A
mfs_done
