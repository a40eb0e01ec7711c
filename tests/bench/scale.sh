#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The scale benchmark: for each N, N keys in one folder of a mallafs store,
# of tmpfs and of nullfs (the do-nothing FUSE filesystem) in the same run,
# and, when redis-server is installed, the same keys in a private Redis. Keys
# are named k0000000, k0000001, ... (8 bytes) and hold 12 bytes each. Prints
# per N a table of figures and ratios, ending with Markdown tables for a
# README.
#
#   scale.sh [--mallafs PATH] [--nullfs PATH] [--scale PATH] [--quick]
#            [--keys N,N,...] [--ops M] [--ls-runs R] [--ls-budget S]
#            [--ls-timeout S] [--readdirplus no|yes|auto] [--no-redis]
#
# --keys: the N to run (10000,100000,1000000; --quick stops at 100000 and
# runs each listing once). --ops: random stats and cats per N (10000; 2000
# with --quick). Each listing runs up to --ls-runs times (3) while the
# time spent on it stays under --ls-budget seconds (60), and the best is
# kept; one that takes over --ls-timeout seconds (600) is stopped and shown
# as over that. --readdirplus: how nullfs lists (its -o readdirplus; no:
# readdir alone, as by default): give mallafs's mode to compare like with
# like.
#
# Every target is mounted afresh for each N and unmounted after it. The
# kernel's dentries and inodes are dropped (drop_caches = 2) before each
# listing and before the random stats and cats, so that every target starts
# from the same state: tmpfs keeps its entries (they are the filesystem), a
# FUSE filesystem must be asked again. Memory: the daemon's VmRSS (from
# /proc/PID/status) before the first key and right after the last, while the
# kernel still holds every key's inode; for Redis, INFO memory's used_memory
# and used_memory_rss before and after.
#
# Needs root (tmpfs and FUSE mounts, drop_caches). Exits non-zero only when
# something failed to run, never because a number is slow. Whatever it
# mounted or started is unmounted and stopped on exit, failure included.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench_prog=scale.sh
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
mallafs=""
nullfs=""
scale=""
keys_list=""
quick=0
ops=""
ls_runs=""
ls_budget=60
ls_timeout=600
use_redis=1
readdirplus=no
# one create, stat or cat pass; a hung daemon must not hang the run
op_timeout=3600
# the first keys, timed against the last ones
probe=1000

usage() {
	sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

while [ $# -gt 0 ]; do
	case "$1" in
	--mallafs | --mallafs=*) take_path mallafs "$@"; shift "$taken" ;;
	--nullfs | --nullfs=*) take_path nullfs "$@"; shift "$taken" ;;
	--scale | --scale=*) take_path scale "$@"; shift "$taken" ;;
	--keys) keys_list=${2:?--keys needs N,N,...}; shift 2 ;;
	--keys=*) keys_list=${1#*=}; shift ;;
	--ops) ops=${2:?--ops needs a number}; shift 2 ;;
	--ls-runs) ls_runs=${2:?--ls-runs needs a number}; shift 2 ;;
	--ls-budget) ls_budget=${2:?--ls-budget needs seconds}; shift 2 ;;
	--ls-timeout) ls_timeout=${2:?--ls-timeout needs seconds}; shift 2 ;;
	--readdirplus) readdirplus=${2:?--readdirplus needs no, yes or auto}; shift 2 ;;
	--no-redis) use_redis=0; shift ;;
	--quick) quick=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done

nullfs=$(find_bin "$nullfs" nullfs)
scale=$(find_bin "$scale" mallafs-scale)
if [ -n "$mallafs" ]; then
	[ -x "$mallafs" ] || die "$mallafs: not an executable"
	mallafs=$(realpath "$mallafs")
fi
[ "$(id -u)" -eq 0 ] || die "needs root, to mount tmpfs and FUSE filesystems and drop caches"
for cmd in mountpoint fusermount3 awk ls timeout; do
	command -v "$cmd" >/dev/null || die "$cmd is missing"
done
[ -w /proc/sys/vm/drop_caches ] || die "cannot write /proc/sys/vm/drop_caches"
redis=""
if [ "$use_redis" -eq 1 ] && command -v redis-server >/dev/null; then
	command -v redis-cli >/dev/null || die "redis-server without redis-cli"
	redis=$(command -v redis-server)
fi

: "${keys_list:=10000,100000,1000000}"
if [ "$quick" -eq 1 ]; then
	: "${ops:=2000}"
	: "${ls_runs:=1}"
fi
: "${ops:=10000}"
: "${ls_runs:=3}"
counts=()
IFS=, read -r -a wanted <<<"$keys_list"
for n in "${wanted[@]}"; do
	if ! [[ "$n" =~ ^[1-9][0-9]*$ ]] || [ "$n" -gt 10000000 ]; then
		die "bad --keys: $keys_list (counts from 1 to 10000000)"
	fi
	[ "$quick" -eq 0 ] || [ "$n" -le 100000 ] || continue
	counts+=("$n")
done
case "$readdirplus" in
no | yes | auto) ;;
*) die "bad --readdirplus: $readdirplus (no, yes or auto)" ;;
esac
[ ${#counts[@]} -gt 0 ] || die "no key count left to run (--quick stops at 100000)"
for v in "$ops" "$ls_runs" "$ls_budget" "$ls_timeout"; do
	[[ "$v" =~ ^[1-9][0-9]*$ ]] || die "bad number: $v"
done

bench_setup mallafs-scale

targets=(tmpfs nullfs)
[ -z "$mallafs" ] || targets+=(mallafs)

# Results: R[N,TARGET,WHAT]; numbers, or empty when not measured.
declare -A R

# cpu_ticks PID: the user and system time PID has used, in clock ticks
cpu_ticks() {
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# drop_caches [PID]: drops the kernel's dentries and inodes; a FUSE daemon is
# then sent a FORGET for each, so waits (up to 60 s) until PID has used no
# CPU for 0.2 s: the next timing must not share the machine with that storm
drop_caches() {
	local pid=${1:-} before after i
	echo 2 >/proc/sys/vm/drop_caches || die "cannot drop caches"
	[ -n "$pid" ] || return 0
	after=$(cpu_ticks "$pid")
	for ((i = 0; i < 300; i++)); do
		before=$after
		sleep 0.2
		after=$(cpu_ticks "$pid")
		[ "$after" != "$before" ] || return 0
	done
	echo "$bench_prog: the daemon $pid was still busy 60 s after the caches were dropped" >&2
}

# field FILE OP FIELD: FIELD of OP's line in the driver's output FILE
field() {
	awk -v op="op=$2" -v f="$3=" '$1 == op {
		for (i = 2; i <= NF; i++)
			if (index($i, f) == 1) print substr($i, length(f) + 1) }' "$1"
}

# drive NAME OUT ARGS...: runs the driver, appending its output to OUT
drive() {
	local name=$1 out=$2
	shift 2
	timeout --foreground -k 10 "$op_timeout" "$scale" "$@" | tee -a "$out" ||
		die "mallafs-scale $1 failed on $name"
}

# list N NAME DIR WHAT LS-OPTION LINES: runs `ls LS-OPTION DIR` after
# dropping the caches, as often as --ls-runs and --ls-budget allow, checks
# it printed LINES lines, and keeps the best time in R[N,NAME,WHAT] (s) and
# per entry in R[N,NAME,WHAT_entry] (µs)
list() {
	local n=$1 name=$2 dir=$3 what=$4 opt=$5 lines=$6 run start t best="" spent=0 got rc
	for ((run = 1; run <= ls_runs; run++)); do
		drop_caches "$pid"
		start=$(date +%s%N)
		rc=0
		LC_ALL=C timeout -k 10 "$ls_timeout" ls "$opt" "$dir" >"$work/ls.out" || rc=$?
		t=$(($(date +%s%N) - start))
		if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
			echo "$name: ls $opt took over ${ls_timeout} s, stopped"
			R[$n,$name,$what]=">$ls_timeout"
			return
		fi
		[ "$rc" -eq 0 ] || die "$name: ls $opt $dir failed"
		got=$(wc -l <"$work/ls.out")
		[ "$got" -eq "$lines" ] || die "$name: ls $opt printed $got lines, not $lines"
		echo "$name: ls $opt, run $run: $(awk -v t="$t" 'BEGIN { printf "%.3f", t / 1e9 }') s"
		[ -n "$best" ] && [ "$best" -le "$t" ] || best=$t
		spent=$((spent + t))
		[ "$spent" -lt $((ls_budget * 1000000000)) ] || break
	done
	R[$n,$name,$what]=$(awk -v t="$best" 'BEGIN { printf "%.3f", t / 1e9 }')
	R[$n,$name,${what}_entry]=$(awk -v t="$best" -v n="$n" 'BEGIN { printf "%.2f", t / 1e3 / n }')
}

# stat_cat N NAME OUT KEYS SUFFIX: random stats, then cats, of the first
# KEYS keys, each after dropping the caches, into R[N,NAME,stat|cat SUFFIX]
stat_cat() {
	local n=$1 name=$2 out=$3 keys=$4 suffix=$5 what
	for what in stat cat; do
		drop_caches "$pid"
		drive "$name" "$out" "$what" --keys "$keys" --ops "$((ops < keys ? ops : keys))" "$dir"
		R[$n,$name,$what$suffix]=$(field "$out" "$what" median_us)
	done
	R[$n,$name,stat_again$suffix]=$(field "$out" stat_again median_us)
}

# mount_target N NAME: a fresh mount of NAME for N keys; sets $dir, and $pid
# for a daemon
mount_target() {
	local n=$1 name=$2 mnt=$work/$2
	pid=""
	case "$name" in
	tmpfs)
		# a 12-byte file takes a page
		mkdir -p "$mnt"
		mount -t tmpfs -o "size=$((n * 8 + 65536))k,nr_inodes=$((n * 2 + 1024)),mode=0755" \
			mallafs-scale "$mnt" || die "cannot mount tmpfs on $mnt"
		mounts+=("$mnt")
		dir=$mnt
		;;
	nullfs)
		# default_permissions, as mallafs always has it
		start_fuse nullfs "$mnt" "$work/nullfs.log" "$nullfs" \
			-o "default_permissions,readdirplus=$readdirplus" "$mnt"
		pid=$started_pid
		dir=$mnt
		;;
	mallafs)
		start_fuse mallafs "$mnt" "$work/mallafs.log" "$mallafs" -f "$mnt"
		pid=$started_pid
		mkdir "$mnt/services/scale" || die "mallafs: cannot create services/scale"
		dir=$mnt/services/scale/store
		[ -d "$dir" ] || die "mallafs: $dir is missing"
		;;
	esac
}

# run_target N NAME: every measurement of NAME with N keys
run_target() {
	local n=$1 name=$2 out=$work/$1.$2.out dir pid base rss first
	echo "== $name, $n keys"
	: >"$out"
	mount_target "$n" "$name"
	[ -z "$pid" ] || base=$(rss_kib "$pid" VmRSS)

	first=$((n < probe ? n : probe))
	drive "$name" "$out" create --to "$first" "$dir"
	R[$n,$name,create_first]=$(field "$out" create_first1k median_us)
	if [ "$n" -gt "$probe" ]; then
		# the cost of a stat and a cat while the folder holds 1,000 keys
		stat_cat "$n" "$name" "$out.1k" "$probe" _1k
		drive "$name" "$out" create --from "$probe" --to "$n" "$dir"
	fi
	R[$n,$name,create_last]=$(field "$out" create_last1k median_us | tail -n 1)
	R[$n,$name,create]=$(awk '$1 == "op=create" {
		for (i = 2; i <= NF; i++) {
			if ($i ~ /^n=/) n += substr($i, 3)
			if ($i ~ /^total_s=/) s += substr($i, 9)
		} } END { printf "%.2f", s * 1e6 / n }' "$out")
	if [ -n "$pid" ]; then
		rss=$(rss_kib "$pid" VmRSS)
		R[$n,$name,rss_base]=$base
		R[$n,$name,rss_keys]=$rss
		R[$n,$name,mem_key]=$(awk -v a="$rss" -v b="$base" -v n="$n" \
			'BEGIN { printf "%.0f", (a - b) * 1024 / n }')
		echo "$name: VmRSS ${base} KiB before, ${rss} KiB with $n keys"
	fi

	list "$n" "$name" "$dir" ls_f -f $((n + 2))
	list "$n" "$name" "$dir" ls_l -l $((n + 1))

	stat_cat "$n" "$name" "$out" "$n" ""

	if [ -n "$pid" ]; then
		kill -0 "$pid" 2>/dev/null || die "$name died during the run"
		R[$n,$name,rss_peak]=$(rss_kib "$pid" VmHWM)
		stop_mount "$work/$name" "$pid"
	else
		stop_mount "$work/$name"
	fi
	echo
}

# redis_info SOCKET FIELD: a field of INFO memory
redis_info() {
	redis-cli -s "$1" info memory | tr -d '\r' |
		awk -F: -v f="$2" '$1 == f { print $2; found = 1 } END { exit !found }' ||
		die "redis: no $2 in INFO memory"
}

# run_redis N: the same N keys in a private redis-server (no TCP port, a
# unix socket in $work, no persistence)
run_redis() {
	local n=$1 d=$work/redis sock=$work/redis/sock pid i used rss used0 rss0 piped
	echo "== redis-server, $n keys"
	mkdir -p "$d"
	"$redis" --port 0 --unixsocket "$sock" --unixsocketperm 700 --save "" \
		--appendonly no --dir "$d" --daemonize no >"$work/redis.log" 2>&1 &
	pid=$!
	others+=("$pid")
	for ((i = 0; i < mount_timeout * 20; i++)); do
		kill -0 "$pid" 2>/dev/null || die "redis-server exited at start"
		[ "$(redis-cli -s "$sock" ping 2>/dev/null)" != PONG ] || break
		sleep 0.05
	done
	[ "$(redis-cli -s "$sock" ping 2>/dev/null)" = PONG ] ||
		die "redis-server did not answer within ${mount_timeout}s"
	used0=$(redis_info "$sock" used_memory)
	rss0=$(redis_info "$sock" used_memory_rss)
	piped=$(timeout -k 10 "$op_timeout" "$scale" resp --keys "$n" |
		timeout -k 10 "$op_timeout" redis-cli -s "$sock" --pipe 2>&1) ||
		die "redis-cli --pipe failed: $piped"
	echo "$piped" | tail -n 1
	echo "$piped" | grep -q "errors: 0, replies: $n" || die "redis: not all $n SETs went in"
	[ "$(redis-cli -s "$sock" dbsize)" -eq "$n" ] || die "redis: DBSIZE is not $n"
	used=$(redis_info "$sock" used_memory)
	rss=$(redis_info "$sock" used_memory_rss)
	echo "redis-server: used_memory $used0 -> $used, used_memory_rss $rss0 -> $rss bytes"
	R[$n,redis,used]=$(awk -v a="$used" -v b="$used0" -v n="$n" 'BEGIN { printf "%.0f", (a - b) / n }')
	R[$n,redis,rss]=$(awk -v a="$rss" -v b="$rss0" -v n="$n" 'BEGIN { printf "%.0f", (a - b) / n }')
	redis-cli -s "$sock" shutdown nosave >/dev/null 2>&1 || true
	wait_exit "$pid" 10 || true
	mapfile -t others < <(without "$pid" "${others[@]}")
	rm -rf "$d"
	echo
}

# r N TARGET WHAT: the result, or "-"
r() {
	local v=${R[$1,$2,$3]:-}
	echo "${v:--}"
}

# The per-N table: each measurement on each target, and the ratios.
n_table() {
	local n=$1 row what label t m x head rule="| --- | ---: | ---: |"
	head="| $(thousands "$n") keys | tmpfs | nullfs |"
	if [ -n "$mallafs" ]; then
		head+=" mallafs | mallafs/tmpfs | mallafs/nullfs |"
		rule+=" ---: | ---: | ---: |"
	fi
	echo "$head"
	echo "$rule"
	for row in "create:create, µs a key (all N)" \
		"create_first:create, median µs, first 1,000 keys" \
		"create_last:create, median µs, last 1,000 keys" \
		"ls_f:ls -f, s" "ls_f_entry:ls -f, µs a key" "ls_l:ls -l, s" \
		"ls_l_entry:ls -l, µs a key" \
		"stat:stat, median µs" "stat_again:stat again (cached), median µs" \
		"stat_1k:stat at 1,000 keys, median µs" "cat:cat, median µs" \
		"cat_1k:cat at 1,000 keys, median µs" "mem_key:daemon memory, bytes a key"; do
		what=${row%%:*}
		label=${row#*:}
		[ "$what" != stat_1k ] && [ "$what" != cat_1k ] || [ "$n" -gt "$probe" ] || continue
		t=$(r "$n" tmpfs "$what")
		x=$(r "$n" nullfs "$what")
		printf '| %s | %s | %s |' "$label" "$t" "$x"
		if [ -n "$mallafs" ]; then
			m=$(r "$n" mallafs "$what")
			printf ' %s | %s | %s |' "$m" "$(ratio "$m" "$t")" "$(ratio "$m" "$x")"
		fi
		echo
	done
}

# Memory: each daemon, and Redis's.
mem_table() {
	local n name
	echo "| N | daemon | VmRSS before KiB | VmRSS with the keys KiB | peak KiB | bytes a key |"
	echo "| ---: | --- | ---: | ---: | ---: | ---: |"
	for n in "${counts[@]}"; do
		for name in nullfs mallafs; do
			[ "$name" = nullfs ] || [ -n "$mallafs" ] || continue
			printf '| %s | %s | %s | %s | %s | %s |\n' "$(thousands "$n")" "$name" \
				"$(r "$n" "$name" rss_base)" "$(r "$n" "$name" rss_keys)" \
				"$(r "$n" "$name" rss_peak)" "$(r "$n" "$name" mem_key)"
		done
		if [ -n "$redis" ]; then
			printf '| %s | redis-server used_memory | | | | %s |\n' "$(thousands "$n")" \
				"$(r "$n" redis used)"
			printf '| %s | redis-server used_memory_rss | | | | %s |\n' "$(thousands "$n")" \
				"$(r "$n" redis rss)"
		fi
	done
}

# The summary: one row per N, mallafs against tmpfs (or nullfs without
# mallafs) and Redis, in the issue's terms.
summary_table() {
	local n m=mallafs
	[ -n "$mallafs" ] || m=nullfs
	echo "| N | create µs a key, $m (tmpfs) | create last/first 1,000, $m | \`ls -f\` s, $m (tmpfs) | \`ls -f\` µs a key, $m / tmpfs | \`ls -l\` s, $m (tmpfs) | stat µs, $m (tmpfs) | cat µs, $m (tmpfs) | cat at N / at 1,000, $m | bytes a key, $m (nullfs) | Redis used_memory bytes a key | $m / Redis |"
	echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for n in "${counts[@]}"; do
		printf '| %s | %s (%s) | %s | %s (%s) | %s / %s | %s (%s) | %s (%s) | %s (%s) | %s | %s (%s) | %s | %s |\n' \
			"$(thousands "$n")" \
			"$(r "$n" $m create)" "$(r "$n" tmpfs create)" \
			"$(ratio "$(r "$n" $m create_last)" "$(r "$n" $m create_first)")" \
			"$(r "$n" $m ls_f)" "$(r "$n" tmpfs ls_f)" \
			"$(r "$n" $m ls_f_entry)" "$(r "$n" tmpfs ls_f_entry)" \
			"$(r "$n" $m ls_l)" "$(r "$n" tmpfs ls_l)" \
			"$(r "$n" $m stat)" "$(r "$n" tmpfs stat)" \
			"$(r "$n" $m cat)" "$(r "$n" tmpfs cat)" \
			"$(ratio "$(r "$n" $m cat)" "$(r "$n" $m cat_1k)")" \
			"$(r "$n" $m mem_key)" "$(r "$n" nullfs mem_key)" \
			"$(r "$n" redis used)" "$(ratio "$(r "$n" $m mem_key)" "$(r "$n" redis used)")"
	done
}

echo "mallafs scale benchmark: $(uname -srm), $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "keys: ${counts[*]}; $ops random stats and cats; listings: best of up to $ls_runs" \
	"within ${ls_budget} s; nullfs readdirplus=$readdirplus;" \
	"targets: ${targets[*]}${redis:+ and redis-server}"
echo

for n in "${counts[@]}"; do
	for name in "${targets[@]}"; do
		run_target "$n" "$name"
	done
	[ -z "$redis" ] || run_redis "$n"
	n_table "$n"
	echo
done

echo "Times: create is the mean over all N keys, and the median of the first and"
echo "of the last 1,000; a listing is the best of its runs, each after the kernel's"
echo "dentries and inodes were dropped; stat and cat are the median of $ops distinct"
echo "random keys, after the same drop. Memory: the daemon's VmRSS growth from"
echo "no key to N keys, over N; Redis: INFO memory's used_memory growth over N."
echo
echo "### At scale"
echo
summary_table
echo
echo "### Memory"
echo
mem_table
for n in "${counts[@]}"; do
	echo
	echo "### $(thousands "$n") keys"
	echo
	n_table "$n"
done
