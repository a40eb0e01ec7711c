#!/bin/bash
# SPDX-License-Identifier: MIT
# run_unit.sh MODE BINARY: starts what MODE needs (tests/etcd/lib_etcd.sh)
# and runs BINARY MODE with the endpoints in MALLAFS_ETCD (see
# tests/unit/test_etcd.c for the modes). Fails, never skips, when etcd
# cannot start.
set -u
mode=$1
bin=$2
here=$(dirname "$(readlink -f "$0")")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mallafs-etcd-$mode.XXXXXX") || exit 1
MFS_CLEANUP_HOOKS=()
cleanup()
{
	local rc=$? h
	for h in "${MFS_CLEANUP_HOOKS[@]}"; do
		"$h"
	done
	if ((rc != 0)); then
		for f in "$tmp"/*.log; do
			[[ -s $f ]] || continue
			echo "# $f:"
			tail -n 15 "$f" | sed 's/^/#   /'
		done
	fi
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
# shellcheck source=tests/etcd/lib_etcd.sh
source "$here/lib_etcd.sh"

case $mode in
basic)
	etcd_start_one "$tmp" >/dev/null
	MALLAFS_ETCD=$ETCD_ENDPOINTS "$bin" basic
	;;
quota)
	# 1 MiB: a fresh etcd's database is well under it; a few 256 KiB
	# values fill it.
	etcd_start_one "$tmp" --quota-backend-bytes=1048576 >/dev/null
	MALLAFS_ETCD=$ETCD_ENDPOINTS "$bin" quota
	;;
auth)
	etcd_start_one "$tmp" --auth-token-ttl=1 >/dev/null
	pw=pw-$RANDOM$RANDOM
	etcd_ctl user add root --interactive=false --new-user-password="$pw" >"$tmp/ctl.log" 2>&1 &&
		etcd_ctl auth enable >>"$tmp/ctl.log" 2>&1 || {
		cat "$tmp/ctl.log"
		echo "FAIL - etcdctl could not enable auth"
		exit 1
	}
	MALLAFS_ETCD=$ETCD_ENDPOINTS MALLAFS_ETCD_PASSWORD=$pw "$bin" auth
	;;
tls)
	etcd_make_tls "$tmp/tls"
	ETCD_TLS_DIR=$tmp/tls
	etcd_start_one "$tmp" >/dev/null
	MALLAFS_ETCD=$ETCD_ENDPOINTS MALLAFS_ETCD_CACERT=$tmp/tls/ca.pem "$bin" tls
	;;
cluster)
	etcd_start_cluster "$tmp" 3 >/dev/null
	MALLAFS_ETCD=$ETCD_ENDPOINTS MALLAFS_ETCD_READY=$tmp/ready MALLAFS_ETCD_KILLED=$tmp/killed \
		"$bin" cluster &
	pid=$!
	for ((i = 0; i < 200; i++)); do
		[[ -e $tmp/ready ]] && break
		sleep 0.05
	done
	sleep 0.5
	leader=$(etcd_leader) || {
		echo "FAIL - no leader found"
		kill "$pid"
		exit 1
	}
	echo "# killing the leader $leader"
	etcd_kill "$leader"
	touch "$tmp/killed"
	wait "$pid" || exit 1
	# The harness: the killed member comes back with its data and ports.
	etcd_restart "$leader"
	etcd_wait_healthy || {
		echo "FAIL - the cluster is not healthy after $leader came back"
		exit 1
	}
	echo "ok   - $leader restarted; the leader is now $(etcd_leader)"
	;;
*)
	echo "unknown mode $mode"
	exit 1
	;;
esac
