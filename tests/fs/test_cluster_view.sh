#!/bin/bash
# SPDX-License-Identifier: MIT
# cluster/ through real etcd (issue 15, "Services cluster-wide" and
# "Faults"): two daemons on this machine sharing one etcd (Debian's
# etcd-server, on loopback, its data on tmpfs) show each other's services
# under cluster/nodes/NODE/, with the owners and modes of their nodes, kept
# current through etcd, watched by inotify and poll(); cluster/status says
# connected or disconnected; a daemon killed with kill -9 takes its node
# away within cluster_ttl + 2 s. test_clview.sh checks the fs side alone.
#
# NOT YET REGISTERED in tests/fs/meson.build: it needs the cluster engine
# (-o cluster=...). Register it as 'cluster_view' once the engine lands.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ -z ${WATCHPROBE:-} || ! -x $WATCHPROBE ]]; then
	mfs_bail "WATCHPROBE=${WATCHPROBE:-} is not an executable file"
fi
mfs_user mallafs-t1
mfs_user mallafs-t2
TTL=3

# -- etcd ---------------------------------------------------------------------------

source "$(dirname "${BASH_SOURCE[0]}")/../etcd/lib_etcd.sh"
etcd_start_one "$MFS_TMP/etcd" >/dev/null
ENDPOINT=$ETCD_ENDPOINTS
OPTS="cluster=$ENDPOINT,cluster_prefix=/mallafs/test$$,cluster_ttl=$TTL,cluster_timeout=1000"

# -- node A through lib.sh, node B by hand ---------------------------------------------

mfs_mount -o "allow_other,$OPTS,node=nodea"
A=$MNT
B=$MFS_TMP/mntb
mkdir -p "$B"
"$MALLAFS" -f -o "allow_other,$OPTS,node=nodeb" "$B" >"$MFS_TMP/daemonb.log" 2>&1 &
B_PID=$!
MFS_CHILDREN+=("$B_PID")
mfs_poll 10000 mfs_mounted "$B" || mfs_bail "node B does not mount" "$(cat "$MFS_TMP/daemonb.log")"

# -- cluster/ and cluster/status -------------------------------------------------------

assert_ls "$A" cluster config events metrics registry services
assert_ls "$A/cluster" nodes status
assert_eq "cluster/ is 0555" "555" "$(stat -c %a "$A/cluster")"
assert_eq "cluster/status is 0444" "444" "$(stat -c %a "$A/cluster/status")"
assert_eq "cluster/status: connected" connected "$(head -n 1 "$A/cluster/status")"
assert_match "cluster/status: the endpoint in use" "$ENDPOINT" "$(cat "$A/cluster/status")"
assert_match "cluster/status: the mirror's revision" "revision [0-9]+" "$(cat "$A/cluster/status")"
assert_size "$A/cluster/status"
mfs_poll 5000 eval "[[ \$(ls '$A/cluster/nodes' | tr '\n' ' ') == 'nodea nodeb ' ]]"
assert_ls "$A/cluster/nodes" nodea nodeb
assert_ls "$B/cluster/nodes" nodea nodeb

# -- a service of B, seen on A ---------------------------------------------------------

# Anyone may make a service on B (as the README's tree has it).
assert_ok chmod 1777 "$B/services"
assert_ok mfs_as mallafs-t1 mkdir "$B/services/api"
mfs_poll 3000 test -e "$A/cluster/nodes/nodeb/api"
assert_eq "A sees B's api: B's services/api/status" "$(cat "$B/services/api/status")" \
	"$(cat "$A/cluster/nodes/nodeb/api")"
assert_size "$A/cluster/nodes/nodeb/api"
assert_eq "A's view of B's api: its owner on B, 0755 less write and execute" \
	"444 $(id -u mallafs-t1):$(id -g mallafs-t1)" "$(stat -c '%a %u:%g' "$A/cluster/nodes/nodeb/api")"
assert_ls "$A/cluster/nodes/nodeb" api
# Its own services too.
assert_ok mkdir "$A/services/local"
mfs_poll 3000 test -e "$A/cluster/nodes/nodea/local"
assert_exists "$A/cluster/nodes/nodea/local"

# Who may read is decided as on B.
assert_ok mfs_as mallafs-t1 chmod 750 "$B/services/api"
mfs_poll 3000 eval "[[ \$(stat -c %a '$A/cluster/nodes/nodeb/api') == 440 ]]"
assert_eq "chmod 750 on B: 0440 on A" 440 "$(stat -c %a "$A/cluster/nodes/nodeb/api")"
assert_fails_with EACCES mfs_as mallafs-t2 cat "$A/cluster/nodes/nodeb/api"
assert_fails_with EACCES mfs_as mallafs-t2 cat "$B/services/api/status"
assert_ok mfs_as mallafs-t1 cat "$A/cluster/nodes/nodeb/api"

# -- watching: inotify and poll() on A for changes on B ----------------------------------

out=$("$WATCHPROBE" inotify -c -t 10000 1000 "$A/cluster/nodes/nodeb" -- \
	sh -c "echo pause > '$B/services/api/status'" 2>&1 | sed "s|$A|A|g")
assert_match "inotify on A: B's api paused -> IN_MODIFY" "A/cluster/nodes/nodeb MODIFY api" "$out"
assert_match "A's view: paused" "state: paused" "$(cat "$A/cluster/nodes/nodeb/api")"

out=$("$WATCHPROBE" poll 3000 "$A/cluster/nodes/nodeb/api" -- \
	sh -c "sleep 0.1; echo active > '$B/services/api/status'" 2>&1)
assert_match "poll on A's view of B's api: POLLPRI|POLLERR when B's status changes" \
	"POLLPRI\|POLLERR" "$(sed -n 1p <<<"$out")"

out=$("$WATCHPROBE" inotify -c -t 10000 1000 "$A/cluster/nodes/nodeb" -- \
	mkdir "$B/services/web" 2>&1 | sed "s|$A|A|g")
assert_match "inotify on A: mkdir services/web on B -> IN_CREATE" "A/cluster/nodes/nodeb CREATE web" \
	"$out"
out=$("$WATCHPROBE" inotify -c -t 10000 1000 "$A/cluster/nodes/nodeb" -- \
	rmdir "$B/services/web" 2>&1 | sed "s|$A|A|g")
assert_match "inotify on A: rmdir services/web on B -> IN_DELETE" "A/cluster/nodes/nodeb DELETE web" \
	"$out"

# -- read-only -------------------------------------------------------------------------

assert_errno EACCES open "$A/cluster/status" w
assert_errno EACCES open "$A/cluster/nodes/nodeb/api" w
assert_errno EPERM creat "$A/cluster/nodes/nodeb/new"
assert_errno EPERM mkdir "$A/cluster/nodes/nodec"
assert_errno EPERM unlink "$A/cluster/nodes/nodeb/api"
assert_errno EBUSY rmdir "$A/cluster/nodes/nodeb"
assert_errno EPERM rename "$A/cluster/nodes/nodeb/api" "$A/cluster/nodes/nodeb/api2"
assert_fails_with EPERM chmod 644 "$A/cluster/nodes/nodeb/api"
assert_fails_with EPERM chown mallafs-t2 "$A/cluster/status"
assert_exists "$A/cluster/nodes/nodeb/api"

# -- faults: etcd stopped, then back -----------------------------------------------------

out=$("$WATCHPROBE" poll 5000 "$A/cluster/status" -- sh -c "sleep 0.1; kill -TERM ${ETCD_PID[e0]}" 2>&1)
etcd_stop e0
assert_match "poll cluster/status: POLLPRI|POLLERR when etcd goes" "POLLPRI\|POLLERR" \
	"$(sed -n 1p <<<"$out")"
mfs_poll 3000 eval "[[ \$(head -n 1 '$A/cluster/status') == disconnected ]]"
assert_eq "cluster/status: disconnected" disconnected "$(head -n 1 "$A/cluster/status")"
assert_exists "$A/cluster/nodes/nodeb/api" # the mirror still serves
etcd_restart e0
mfs_poll 10000 eval "[[ \$(head -n 1 '$A/cluster/status') == connected ]]"
assert_eq "cluster/status: connected again" connected "$(head -n 1 "$A/cluster/status")"

# -- a daemon killed: its node goes within cluster_ttl + 2 s ---------------------------------

# watchprobe -T: each line starts with the ms since kill -9 returned.
out=$("$WATCHPROBE" inotify -c -T -t $(((TTL + 8) * 1000)) $(((TTL + 3) * 1000)) \
	"$A/cluster/nodes" -- kill -9 "$B_PID" 2>&1 | sed "s|$A|A|g")
wait "$B_PID" 2>/dev/null
line=$(grep 'A/cluster/nodes DELETE,ISDIR nodeb' <<<"$out" | head -n 1)
assert_match "inotify on A: node B killed -> IN_DELETE|IN_ISDIR" "DELETE,ISDIR nodeb" "$line"
ms=${line%% *}
assert_true "node B gone from A within cluster_ttl + 2 s (${ms:-never} ms)" \
	test "${ms:-999999}" -le $(((TTL + 2) * 1000))
assert_absent "$A/cluster/nodes/nodeb"
assert_ls "$A/cluster/nodes" nodea
fusermount3 -u -z "$B" 2>/dev/null

mfs_unmount
mfs_done
