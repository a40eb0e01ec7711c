#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The cluster benchmark: one etcd (Debian's, on loopback, data on tmpfs, as
# the tests start it), two mallafs nodes of it (A and B) and one node-local
# mallafs (L, no cluster=), all on this machine; mallafs-clusterlat times
# a config write on A reaching an inotify watcher on B against one on A,
# registrations on L against A (one at a time, and as many as fit in
# --seconds by 1 and 4 writers), and etcd's own put and put-to-watch
# through libcurl (the floor: what any change through etcd costs at
# least). Prints the figures and ratios, ending with Markdown tables for a
# README.
#
#   cluster.sh [--mallafs PATH] [--clusterlat PATH] [--quick]
#              [--rounds N] [--seconds S] [--repeat N]
#
# mallafs-clusterlat runs --repeat times (2, or 1 with --quick), --rounds
# changes per measurement (200, or 50 with --quick), --seconds per rate (3,
# or 1 with --quick); each measurement's run with the lowest median (the
# highest rate) is kept.
#
# Needs root (FUSE mounts) and etcd-server (tests/etcd/lib_etcd.sh starts
# it). Exits non-zero only when something failed to run, never because a
# number is slow. Whatever it mounted or started is unmounted and stopped on
# exit, failure included: the nodes first, then etcd.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench_prog=cluster.sh
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
# Declared, lib_etcd.sh puts its cleanup here instead of in an EXIT trap of
# its own; it runs after the nodes have left (they talk to etcd until then).
# shellcheck disable=SC2034 # read by lib_etcd.sh
MFS_CLEANUP_HOOKS=()
# shellcheck source=tests/etcd/lib_etcd.sh
. "$here/../etcd/lib_etcd.sh"
mallafs=""
clusterlat=""
quick=0
rounds=""
seconds=""
repeat=""
run_timeout=600

usage() {
	sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

while [ $# -gt 0 ]; do
	case "$1" in
	--mallafs | --mallafs=*) take_path mallafs "$@"; shift "$taken" ;;
	--clusterlat | --clusterlat=*) take_path clusterlat "$@"; shift "$taken" ;;
	--rounds) rounds=${2:?--rounds needs a number}; shift 2 ;;
	--seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
	--repeat) repeat=${2:?--repeat needs a number}; shift 2 ;;
	--quick) quick=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done

clusterlat=$(find_bin "$clusterlat" mallafs-clusterlat)
if [ -z "$mallafs" ]; then
	for c in "$here/../../build/mount/mallafs" "$(command -v mallafs || true)"; do
		[ -x "$c" ] && mallafs=$c && break
	done
fi
[ -x "$mallafs" ] || die "mallafs not found: pass --mallafs PATH"
mallafs=$(realpath "$mallafs")
[ "$(id -u)" -eq 0 ] || die "needs root, to mount FUSE filesystems"
for cmd in mountpoint fusermount3 awk "$ETCD_BIN" "$ETCDCTL_BIN"; do
	command -v "$cmd" >/dev/null || die "$cmd is missing (etcd-server, etcd-client)"
done
if [ "$quick" -eq 1 ]; then
	: "${repeat:=1}" "${rounds:=50}" "${seconds:=1}"
fi
: "${repeat:=2}" "${rounds:=200}" "${seconds:=3}"
for v in repeat rounds seconds; do
	[[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "bad --$v: ${!v}"
done

bench_setup mallafs-cluster
cleanup_hooks+=(etcd_cleanup)
etcd_start_one "$work/etcd" >/dev/null
# one endpoint: the first
etcd=${ETCD_ENDPOINTS%%,*}

start_fuse A "$work/a" "$work/a.log" "$mallafs" -f -o "cluster=$ETCD_ENDPOINTS,node=bench-a" "$work/a"
pid_a=$started_pid
start_fuse B "$work/b" "$work/b.log" "$mallafs" -f -o "cluster=$ETCD_ENDPOINTS,node=bench-b" "$work/b"
pid_b=$started_pid
start_fuse L "$work/l" "$work/l.log" "$mallafs" -f "$work/l"
pid_l=$started_pid

echo "mallafs cluster benchmark: $(uname -srm), $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "etcd: $("$ETCD_BIN" --version | head -n 1) at $etcd, data on tmpfs"
echo "driver: $clusterlat --rounds $rounds --seconds $seconds, $repeat runs"
echo

for ((run = 1; run <= repeat; run++)); do
	echo "== run $run of $repeat"
	timeout --foreground -k 10 "$run_timeout" "$clusterlat" --rounds "$rounds" \
		--seconds "$seconds" --etcd "$etcd" --local "$work/l" "$work/a" "$work/b" |
		tee "$work/run.$run.out" || die "mallafs-clusterlat failed"
	grep -q '^op=' "$work/run.$run.out" || die "mallafs-clusterlat printed nothing"
done

for pid in "$pid_a" "$pid_b" "$pid_l"; do
	kill -0 "$pid" 2>/dev/null || die "a mallafs died during the run"
done

# field OP FIELD [BY]: FIELD of OP's line in the run with OP's lowest
# median_us (with BY=per_s: the highest per_s), or empty
field() {
	awk -v op="op=$1" -v f="$2=" -v by="${3:-median_us}=" '
	function get(name,   i) {
		for (i = 2; i <= NF; i++)
			if (index($i, name) == 1)
				return substr($i, length(name) + 1)
		return ""
	}
	$1 == op {
		k = get(by) + 0
		if (by == "per_s=") k = -k
		if (!seen || k < best) { seen = 1; best = k; val = get(f) }
	} END { if (seen) print val }' "$work"/run.*.out
}

# row WHAT OP [BASE]: a latency row, with OP's median over BASE's
row() {
	local m
	m=$(field "$2" median_us)
	printf '| %s | %s | %s | %s | %s |\n' "$1" "${m:--}" "$(field "$2" p99_us)" \
		"$(field "$2" missed)" "${3:+$(ratio "$m" "$(field "$3" median_us)")}"
}

rate_row() {
	local l c
	l=$(field "registrations_per_s_local_$1" per_s per_s)
	c=$(field "registrations_per_s_cluster_$1" per_s per_s)
	printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$(thousands "${l:--}")" \
		"$(thousands "${c:--}")" "$(ratio "$c" "$l")" \
		"$(field "registrations_per_s_local_$1" median_us per_s)" \
		"$(field "registrations_per_s_cluster_$1" median_us per_s)"
}

echo
echo "Ratios of medians: cross-node/same-node notification $(ratio \
	"$(field cross_node_inotify median_us)" "$(field same_node_inotify median_us)")," \
	"cluster/local registration $(ratio "$(field register_cluster median_us)" \
		"$(field register_local median_us)")," \
	"cross-node notification/etcd put-to-watch $(ratio \
		"$(field cross_node_inotify median_us)" "$(field etcd_put_to_watch median_us)")"
echo
echo "### Cluster mode (median / p99 µs)"
echo
echo "One etcd $("$ETCD_BIN" --version | awk 'NR == 1 { print $NF }') on loopback (data on tmpfs), two nodes and a"
echo "node-local daemon on one machine ($(nproc) CPUs); the run with the lowest median"
echo "of $repeat, $rounds rounds each. A config write is timed from the start of its"
echo "write() on node A; a registration is open, write \"PID\", close. Ratios are of"
echo "medians. Goal: a change on A reaches B's watchers in under 20,000 µs."
echo
echo "| what | median µs | p99 µs | missed | ratio |"
echo "| --- | ---: | ---: | ---: | ---: |"
row "config/APP/k written on A reaches an inotify watcher on B (IN_MODIFY)" \
	cross_node_inotify same_node_inotify
row "... reaches a watcher on A (the baseline: the kernel, after the write)" \
	same_node_inotify
row "the write() alone on A (one etcd transaction, read back)" config_write_cluster
row "etcd alone: a put through its HTTP gateway" etcd_put
row "etcd alone: a put until a watch on another connection has it" etcd_put_to_watch \
	etcd_put
row "a registration on a node-local daemon" register_local
row "a registration on node A" register_cluster register_local
echo
echo "### Cluster registrations per second"
echo
echo "Fresh names registered for $seconds s by 1 and by 4 threads of one process; the"
echo "best of $repeat runs."
echo
echo "| writers | node-local /s | cluster /s | cluster/local | node-local median µs | cluster median µs |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
rate_row 1
rate_row 4
