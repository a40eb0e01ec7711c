#!/bin/bash
# SPDX-License-Identifier: MIT
# Cluster mode through etcd's faults, on a 3-member etcd (e0 e1 e2) and
# two nodes: A talks to e0 and e1, B to e2 alone.
#  - e2 stopped: B's writes to shared files fail with ETIMEDOUT within
#    cluster_timeout, B keeps serving what it had, cluster/status says
#    disconnected; A (e0 and e1 keep a quorum) changes the tree meanwhile.
#    e2 back: B lists again, its watchers hear of every net change
#    (inotify, the feed), the feed has one resync line, status connected.
#  - The leader killed while A writes: writes resume within 5 s and no
#    acknowledged write is lost.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../etcd/lib_etcd.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_cluster.sh"

mfs_need inotifywait inotify-tools
etcd_start_cluster "$MFS_TMP/etcd" 3 >/dev/null
ALL=$ETCD_ENDPOINTS

ETCD_ENDPOINTS="$(etcd_url e0),$(etcd_url e1)" cl_start A
ETCD_ENDPOINTS="$(etcd_url e2)" cl_start B
A=${CL_MNT[A]} B=${CL_MNT[B]}

assert_ok mkdir "$A/config/app"
assert_ok bash -c "echo kept > '$A/config/app/old'"
assert_ok bash -c "echo before > '$A/config/app/k'"
cl_wait 2000 "B reads k" eval '[[ $(cat "$B/config/app/k" 2>/dev/null) == before ]]'

# -- e2 stopped: B is cut off --------------------------------------------------
inotifywait -q -m -e create,modify,delete --format '%e %f' "$B/config/app" >"$MFS_TMP/ino" 2>/dev/null &
INO=$!
MFS_CHILDREN+=("$INO")
exec {feed}<"$B/events"
sleep 0.3
etcd_stop e2
pass "etcd member e2 stopped"
t0=$(mfs_now_ms)
assert_fails_with ETIMEDOUT bash -c "echo lost > '$B/config/app/k'"
t1=$(mfs_now_ms)
assert_true "ETIMEDOUT within cluster_timeout ($((t1 - t0)) ms, cluster_timeout $CL_TIMEOUT)" \
	test $((t1 - t0)) -le $((CL_TIMEOUT + 1500))
assert_file "$B/config/app/k" $'before\n'
cl_wait $((CL_TTL * 1000 + CL_TIMEOUT + 2000)) "B's cluster/status: disconnected" \
	eval '[[ $(head -n 1 "$B/cluster/status") == disconnected ]]'
assert_true "B's cluster/status names the endpoint" grep -q "^endpoint $(etcd_url e2)" "$B/cluster/status"

# A goes on; B hears of none of it yet.
assert_ok bash -c "echo after > '$A/config/app/k'"
assert_ok bash -c "echo new > '$A/config/app/made'"
assert_ok rm "$A/config/app/old"
assert_file "$B/config/app/k" $'before\n'

# -- e2 back: B lists again and tells its watchers ------------------------------
# (Without the feed's descriptor: etcd would inherit it and keep B busy.)
etcd_restart e2 {feed}<&-
pass "etcd member e2 restarted"
cl_wait 10000 "B's cluster/status: connected again" \
	eval '[[ $(head -n 1 "$B/cluster/status") == connected ]]'
cl_wait 3000 "B reads A's k" eval '[[ $(cat "$B/config/app/k" 2>/dev/null) == after ]]'
assert_file "$B/config/app/made" $'new\n'
assert_absent "$B/config/app/old"
cl_wait 2000 "inotify on B: MODIFY k, CREATE made, DELETE old" eval \
	'grep -q "^MODIFY k" "$MFS_TMP/ino" && grep -q "^CREATE made" "$MFS_TMP/ino" && grep -q "^DELETE old" "$MFS_TMP/ino"'
"$WATCHPROBE" feed-read "$feed" 300 >"$MFS_TMP/feed"
exec {feed}<&-
assert_eq "B's feed: one resync line" 1 "$(grep -c " resync cluster" "$MFS_TMP/feed")"
assert_true "B's feed: the resync's changes follow it, named by A" \
	grep -q "write config/app/k .*node=A$" "$MFS_TMP/feed"
assert_ok bash -c "echo mine > '$B/config/app/k'"
cl_wait 2000 "A reads B's write after the resync" eval '[[ $(cat "$A/config/app/k") == mine ]]'
mfs_kill_child "$INO"
cl_stop B

# -- the leader killed while A writes --------------------------------------------
cl_stop A
ETCD_ENDPOINTS=$ALL cl_start A
A=${CL_MNT[A]}
writer()
{
	local i=0 end=$(($(mfs_now_ms) + $1))
	while (($(mfs_now_ms) < end)); do
		i=$((i + 1))
		if echo "$i" >"$A/config/app/seq" 2>/dev/null; then
			echo "$(mfs_now_ms) $i" >>"$MFS_TMP/acked"
		fi
	done
}
: >"$MFS_TMP/acked"
writer 7000 &
wpid=$!
sleep 1.5
leader=$(etcd_leader) || fail "no leader found"
etcd_kill "$leader"
pass "kill -9 of the leader, $leader"
wait "$wpid"
gap=$(awk 'NR > 1 && $1 - t > max { max = $1 - t } { t = $1 } END { print max + 0 }' "$MFS_TMP/acked")
acked=$(tail -n 1 "$MFS_TMP/acked" | cut -d' ' -f2)
assert_true "writes resumed within 5 s of the kill (longest gap between acknowledged writes $gap ms, $(wc -l <"$MFS_TMP/acked") writes)" \
	test "$gap" -le 5000
living=()
for m in e0 e1 e2; do
	[[ $m == "$leader" ]] || living+=("$(etcd_url "$m")")
done
got=$(ETCD_ENDPOINTS=$(IFS=,; echo "${living[*]}") etcd_ctl get --print-value-only \
	/mallafs/default/config/k/app/seq 2>&1)
assert_true "no acknowledged write lost: etcd holds ${got##*$'\n'}, the last acknowledged $acked" \
	test "${got##*$'\n'}" -ge "${acked:-1}"
got=${got##*$'\n'}
assert_file "$A/config/app/seq" "$got"$'\n'
etcd_restart "$leader"
cl_stop A
mfs_done
