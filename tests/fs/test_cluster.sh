#!/bin/bash
# SPDX-License-Identifier: MIT
# Cluster mode on one etcd (Debian's etcd-server on loopback, data on
# tmpfs) and two nodes, A and B, on this machine: registry/ and config/
# are one tree on both, watched on both (inotify, the feed's node=), with
# PID@NODE for the other node's processes, read-only there; a process that
# exits is gone from both at once, a daemon killed within cluster_ttl; the
# races of two nodes (one name, one mv, an rmdir against a write, >> from
# both) end as on one machine; cluster/ shows the nodes and their
# services; a restarted node takes its name over at once, a second live
# daemon of that name is refused.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../etcd/lib_etcd.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_cluster.sh"

mfs_need inotifywait inotify-tools
etcd_start_one "$MFS_TMP/etcd" >/dev/null

cl_start A
cl_start B
A=${CL_MNT[A]} B=${CL_MNT[B]}

# -- registry/: a name registered on A, seen and watched on B --------------
mfs_spawn P1 sleep 600
inotifywait -q -m -e create,modify,delete --format '%e %f' "$B/registry" >"$MFS_TMP/ino-B" 2>/dev/null &
INO=$!
MFS_CHILDREN+=("$INO")
sleep 0.3
assert_ok bash -c "echo '$P1 web' > '$A/registry/web'"
assert_file "$A/registry/web" "$P1 web"$'\n'
cl_wait 2000 "B sees registry/web as $P1@A" eval '[[ $(cat "$B/registry/web" 2>/dev/null) == "$P1@A web" ]]'
cl_wait 2000 "inotify on B: CREATE web" grep -q "^CREATE web" "$MFS_TMP/ino-B"
# The other node's entry is read-only; its PID form cannot be written.
assert_fails_with EPERM bash -c "echo '$P1@A' > '$B/registry/other'"
assert_fails_with EPERM rm "$B/registry/web"
assert_fails_with EPERM bash -c "echo '$P1@A x' > '$B/registry/web'"
mfs_spawn P2 sleep 600
assert_fails_with EEXIST bash -c "echo '$P2' > '$B/registry/web'"
assert_file "$A/registry/web" "$P1 web"$'\n'

# The process exits: gone from both within 200 ms (more under a sanitizer).
limit=200
[[ -z $(mfs_sanitizer) ]] || limit=1000
mfs_kill_child "$P1"
cl_wait "$limit" "registry/web gone on B after its process exited" eval '[[ ! -e $B/registry/web ]]'
cl_wait 1000 "and on A" eval '[[ ! -e $A/registry/web ]]'
cl_wait 2000 "inotify on B: DELETE web" grep -q "^DELETE web" "$MFS_TMP/ino-B"

# -- pools: shared; members named PID@NODE on the other node -----------------
assert_ok mkdir "$A/registry/workers"
cl_wait 2000 "B sees the pool" test -d "$B/registry/workers"
assert_ok bash -c "echo a-job > '$A/registry/workers/$P2'"
mfs_spawn P3 sleep 600
assert_ok bash -c "echo b-job > '$B/registry/workers/$P3'"
cl_wait 2000 "B lists A's member as $P2@A" test -e "$B/registry/workers/$P2@A"
cl_wait 2000 "A lists B's member as $P3@B" test -e "$A/registry/workers/$P3@B"
assert_file "$A/registry/workers/$P3@B" $'b-job\n'
assert_fails_with EPERM rm "$A/registry/workers/$P3@B"
assert_fails_with EPERM bash -c "echo x > '$A/registry/workers/$P3@B'"
assert_ok rm "$B/registry/workers/$P3"
cl_wait 2000 "B's member gone on A" eval '[[ ! -e $A/registry/workers/$P3@B ]]'
assert_fails_with ENOTEMPTY rmdir "$B/registry/workers"

# -- config/: written on A, read and watched on B -----------------------------
assert_ok mkdir "$A/config/app"
cl_wait 2000 "B sees config/app" test -d "$B/config/app"
inotifywait -q -m -e create,modify,close_write,delete --format '%e %f' "$B/config/app" >"$MFS_TMP/ino-cfg" 2>/dev/null &
MFS_CHILDREN+=($!)
sleep 0.3
assert_ok bash -c "echo v1 > '$A/config/app/k'"
# A reads its own write at once.
assert_file "$A/config/app/k" $'v1\n'
cl_wait 2000 "B reads v1" eval '[[ $(cat "$B/config/app/k" 2>/dev/null) == v1 ]]'
cl_wait 2000 "inotify on B: CREATE, MODIFY and CLOSE_WRITE k" eval \
	'grep -q "^CREATE k" "$MFS_TMP/ino-cfg" && grep -q "^MODIFY k" "$MFS_TMP/ino-cfg" && grep -q "^CLOSE_WRITE,CLOSE k" "$MFS_TMP/ino-cfg"'
# The writer's node: the kernel's events of the write, as a node-local
# mount gives them (MODIFY for the O_TRUNC open and for the write, then
# CLOSE_WRITE), and no replay by the daemon of its own writer's change (it
# would come after them, when etcd's event for it comes back). The kernel
# merges an event into an identical one still unread, so the two MODIFY
# are one when inotifywait is slow: the check is on the sequence with
# repeats collapsed.
inotifywait -q -m -e modify,close_write --format '%e %f' "$A/config/app" >"$MFS_TMP/ino-A" 2>/dev/null &
INO_A=$!
MFS_CHILDREN+=("$INO_A")
sleep 0.3
assert_ok "$FSPROBE" write "$A/config/app/k" "v1b"
sleep 0.5
mfs_kill_child "$INO_A"
assert_eq "inotify on A: MODIFY then CLOSE_WRITE for A's own write, as on one machine" \
	$'MODIFY k\nCLOSE_WRITE,CLOSE k' "$(uniq "$MFS_TMP/ino-A")"
assert_ok bash -c "echo v2 > '$B/config/app/k'"
cl_wait 2000 "A reads B's v2" eval '[[ $(cat "$A/config/app/k" 2>/dev/null) == v2 ]]'

# A change that would make a value larger than etcd's request limit
# (1.5 MiB): EFBIG before anything is sent, the value as it was on both
# nodes.
assert_fails_with EFBIG truncate -s 1600000 "$A/config/app/k"
assert_fails_with EFBIG dd if=/dev/zero of="$A/config/app/k" bs=1 count=1 seek=1600000 conv=notrunc status=none
assert_file "$A/config/app/k" $'v2\n'
assert_file "$B/config/app/k" $'v2\n'

# The feed on B names A for A's change.
exec {feed}<"$B/events"
assert_ok bash -c "echo v3 > '$A/config/app/k'"
cl_wait 2000 "B reads v3" eval '[[ $(cat "$B/config/app/k" 2>/dev/null) == v3 ]]'
"$WATCHPROBE" feed-read "$feed" 300 >"$MFS_TMP/feed-B"
exec {feed}<&-
assert_true "B's feed: the write ends with node=A" grep -q "write config/app/k .*node=A$" "$MFS_TMP/feed-B"

# >> from both nodes at once: every line lands.
appends()
{
	local mnt=$1 tag=$2 i
	for ((i = 0; i < 40; i++)); do
		echo "$tag$i" >>"$mnt/config/app/log" || return 1
	done
}
assert_ok bash -c ": > '$A/config/app/log'"
appends "$A" a &
pa=$!
appends "$B" b &
pb=$!
wait "$pa" && wait "$pb"
assert_eq ">> from both nodes: both loops succeed" 0 $?
cl_wait 2000 "A holds all 80 lines" eval '[[ $(wc -l <"$A/config/app/log") == 80 ]]'
cl_wait 2000 "B holds the same" eval 'cmp -s "$A/config/app/log" "$B/config/app/log"'

# One mv, two nodes: one wins, the source is gone, one target has it.
for round in 1 2 3; do
	assert_ok bash -c "echo m$round > '$A/config/app/src'"
	cl_wait 2000 "round $round: B sees src" test -e "$B/config/app/src"
	mv "$A/config/app/src" "$A/config/app/toA" 2>/dev/null &
	ma=$!
	mv "$B/config/app/src" "$B/config/app/toB" 2>/dev/null &
	mb=$!
	wait "$ma"
	ra=$?
	wait "$mb"
	rb=$?
	assert_eq "round $round: exactly one mv succeeds" 1 $(((ra == 0) + (rb == 0)))
	cl_wait 2000 "round $round: one target, no source, on both" eval \
		'[[ ! -e $A/config/app/src && ! -e $B/config/app/src ]] && (( ($(ls "$B/config/app" | grep -c "^to")) == 1 ))'
	rm -f "$A/config/app/toA" "$A/config/app/toB"
	cl_wait 2000 "round $round: targets gone on B" eval '! ls "$B/config/app" | grep -q "^to"'
done

# rmdir on B while A writes into the app: the key lands (then ENOTEMPTY)
# or the app goes first (then the write fails): never a key in no app.
for round in 1 2 3 4; do
	assert_ok mkdir "$A/config/r$round"
	cl_wait 2000 "round $round: B sees config/r$round" test -d "$B/config/r$round"
	bash -c "echo x > '$A/config/r$round/k'" 2>/dev/null &
	wa=$!
	rmdir "$B/config/r$round" 2>/dev/null &
	rb=$!
	wait "$wa"
	w=$?
	wait "$rb"
	r=$?
	assert_eq "round $round: the write or the rmdir won, not both" 1 $(((w == 0) + (r == 0)))
	if ((w == 0)); then
		cl_wait 2000 "round $round: the key is on B" test -e "$B/config/r$round/k"
		rm "$A/config/r$round/k"
		cl_wait 2000 "round $round: the key gone on B" eval '[[ ! -e $B/config/r$round/k ]]'
		assert_ok rmdir "$B/config/r$round"
	fi
	cl_wait 2000 "round $round: the app gone on A" eval '[[ ! -e $A/config/r$round ]]'
done

# Two nodes, one name: one holds it, the other gets EEXIST.
for round in 1 2 3; do
	mfs_spawn QA sleep 600
	mfs_spawn QB sleep 600
	bash -c "echo $QA > '$A/registry/race$round'" 2>/dev/null &
	ra=$!
	bash -c "echo $QB > '$B/registry/race$round'" 2>/dev/null &
	rb=$!
	wait "$ra"
	a=$?
	wait "$rb"
	b=$?
	assert_eq "name race $round: exactly one registration succeeds" 1 $(((a == 0) + (b == 0)))
	want="$QA@A"
	((b == 0)) && want="$QB"
	cl_wait 2000 "name race $round: B shows the winner" eval '[[ $(cat "$B/registry/race$round") == "$want" ]]'
	mfs_kill_child "$QA"
	mfs_kill_child "$QB"
done

# -- cluster/: nodes and their services ------------------------------------
assert_ok mkdir "$A/services/api"
cl_wait 3000 "B: cluster/nodes/A/api" test -f "$B/cluster/nodes/A/api"
assert_true "cluster/nodes/A/api on B holds api's status" grep -q "^state" "$B/cluster/nodes/A/api"
assert_true "cluster/status on B: connected" grep -qx connected <(head -n 1 "$B/cluster/status")
assert_eq "cluster/nodes on A" "A B" "$(ls "$A/cluster/nodes" | tr '\n' ' ' | sed 's/ $//')"

# -- a second live daemon with a node's name is refused ---------------------
mkdir -p "$MFS_TMP/mnt-dup"
out=$("$MALLAFS" -f -o "cluster=$ETCD_ENDPOINTS,node=B" "$MFS_TMP/mnt-dup" 2>&1 </dev/null)
rc=$?
assert_eq "a second daemon named B: exit status 1" 1 "$rc"
assert_match "and why" "node name B is held by a live daemon" "$out"

# -- kill -9: A's entries leave B within cluster_ttl (+2 s) ------------------
mfs_spawn P4 sleep 600
assert_ok bash -c "echo $P4 > '$A/registry/held'"
cl_wait 2000 "B sees registry/held" test -e "$B/registry/held"
cl_kill A
cl_wait $(((CL_TTL + 2) * 1000)) "registry/held gone on B after A's kill -9" eval '[[ ! -e $B/registry/held ]]'
cl_wait 2000 "cluster/nodes/A gone on B" eval '[[ ! -e $B/cluster/nodes/A ]]'
# The config is the cluster's: still there.
assert_file "$B/config/app/k" $'v3\n'

# A daemon restarted after a crash takes its name over at once (its
# predecessor on this host is provably dead: its lease is revoked, its
# entries go everywhere now, not after cluster_ttl), with the shared tree.
mfs_spawn P5 sleep 600
assert_ok bash -c "echo $P5 > '$B/registry/heldB'"
cl_start A
assert_file "$A/config/app/k" $'v3\n'
assert_file "$A/registry/heldB" "$P5@B"$'\n'
mfs_spawn P6 sleep 600
assert_ok bash -c "echo $P6 > '$A/registry/held2'"
cl_wait 2000 "B sees registry/held2" test -e "$B/registry/held2"
cl_kill A
A_PREV_LOG=$(wc -l <"$MFS_TMP/node-A.log")
t0=$(mfs_now_ms)
cl_start A
assert_true "A's log: the name taken over from a dead daemon" \
	bash -c "tail -n +$((A_PREV_LOG + 1)) '$MFS_TMP/node-A.log' | grep -q 'taking the name over'"
cl_wait 1000 "registry/held2 gone on B at once, not after cluster_ttl" eval '[[ ! -e $B/registry/held2 ]]'
t1=$(mfs_now_ms)
assert_true "the restart and the cleanup took $((t1 - t0)) ms, under cluster_ttl ($CL_TTL s)" \
	test $((t1 - t0)) -lt $((CL_TTL * 1000))

cl_stop A
cl_wait 2000 "cluster/nodes/A gone on B after A's unmount" eval '[[ ! -e $B/cluster/nodes/A ]]'
cl_stop B
mfs_done
