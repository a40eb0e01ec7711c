#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs mallafs-bench on tmpfs, on nullfs and (with --mallafs) on a mallafs
# store in the same run, measures the daemons' memory with 10,000 keys, and
# prints the medians and ratios, ending with Markdown tables for a README.
# With --mallafs it also times, with mallafs-watchlat, how long a change the
# daemon makes takes to reach an inotify watcher and a poll() waiter.
#
#   run.sh [--mallafs PATH] [--nullfs PATH] [--bench PATH] [--watchlat PATH]
#          [--quick] [--iterations N] [--keys N] [--repeat N] [--rounds N]
#
# The driver runs --repeat times per target (3, or 1 with --quick), the targets
# taking turns, and each operation's best median is kept: a noisy moment on a
# shared machine then spoils one run, not the comparison. mallafs-watchlat runs
# --repeat times too, --rounds changes each (300, or 100 with --quick).
#
# Needs root (tmpfs and FUSE mounts). Exits non-zero only when something failed
# to run, never because a number is slow. Whatever it mounted or started is
# unmounted and stopped on exit, failure included.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench_prog=run.sh
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
mallafs=""
nullfs=""
bench=""
watchlat=""
rounds=""
quick=0
repeat=""
iterations=""
keys=""
mem_keys=10000
mem_value_size=100
bench_timeout=900

usage() {
	sed -n '2,18s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

while [ $# -gt 0 ]; do
	case "$1" in
	--mallafs | --mallafs=*) take_path mallafs "$@"; shift "$taken" ;;
	--nullfs | --nullfs=*) take_path nullfs "$@"; shift "$taken" ;;
	--bench | --bench=*) take_path bench "$@"; shift "$taken" ;;
	--watchlat | --watchlat=*) take_path watchlat "$@"; shift "$taken" ;;
	--rounds) rounds=${2:?--rounds needs a number}; shift 2 ;;
	--iterations) iterations=${2:?--iterations needs a number}; shift 2 ;;
	--keys) keys=${2:?--keys needs a number}; shift 2 ;;
	--repeat) repeat=${2:?--repeat needs a number}; shift 2 ;;
	--quick) quick=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done

nullfs=$(find_bin "$nullfs" nullfs)
bench=$(find_bin "$bench" mallafs-bench)
if [ -n "$mallafs" ]; then
	[ -x "$mallafs" ] || die "$mallafs: not an executable"
	mallafs=$(realpath "$mallafs")
	watchlat=$(find_bin "$watchlat" mallafs-watchlat)
fi
[ "$(id -u)" -eq 0 ] || die "needs root, to mount tmpfs and FUSE filesystems"
for cmd in mountpoint fusermount3 awk; do
	command -v "$cmd" >/dev/null || die "$cmd is missing"
done

bench_args=()
if [ "$quick" -eq 1 ]; then
	bench_args=(--iterations 2000 --keys 200 --rounds 1 --lists 20)
	: "${repeat:=1}"
fi
: "${repeat:=3}"
[[ "$repeat" =~ ^[1-9][0-9]*$ ]] || die "bad --repeat: $repeat"
[ -z "$iterations" ] || bench_args+=(--iterations "$iterations")
[ -z "$keys" ] || bench_args+=(--keys "$keys")
if [ -z "$rounds" ]; then
	rounds=300
	[ "$quick" -eq 0 ] || rounds=100
fi
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "bad --rounds: $rounds"

bench_setup mallafs-bench

# Measures a daemon's memory: before, and after $mem_keys keys of
# $mem_value_size bytes, which it then removes, into mem_*[NAME], in KiB.
declare -A mem_base mem_rss mem_hwm
measure_memory() {
	local name=$1 pid=$2 dir=$3 value i base rss hwm
	value=$(head -c "$mem_value_size" /dev/zero | tr '\0' v)
	base=$(rss_kib "$pid" VmRSS)
	for ((i = 0; i < mem_keys; i++)); do
		printf '%s' "$value" >"$dir/mem-$i" || die "$name: cannot write $dir/mem-$i"
	done
	rss=$(rss_kib "$pid" VmRSS)
	hwm=$(rss_kib "$pid" VmHWM)
	mem_base[$name]=$base
	mem_rss[$name]=$rss
	mem_hwm[$name]=$hwm
	echo "$name: VmRSS ${base} KiB before, ${rss} KiB with the keys, VmHWM ${hwm} KiB"
	find "$dir" -maxdepth 1 -name 'mem-*' -delete || die "$name: cannot remove the keys"
}

# run_bench NAME DIR RUN: runs the driver, keeps its output in $work/NAME.RUN.out
run_bench() {
	local name=$1 dir=$2 run=$3 out=$work/$1.$3.out
	echo "== $name, run $run of $repeat: $dir"
	# a hung daemon must not hang the run: the driver gets killed, the trap
	# unmounts
	timeout --foreground -k 10 "$bench_timeout" "$bench" "${bench_args[@]}" "$dir" | tee "$out" ||
		die "mallafs-bench failed on $name ($dir)"
	grep -q '^op=' "$out" || die "mallafs-bench printed nothing for $name"
}

targets=(tmpfs nullfs)
declare -A dirs

mkdir -p "$work/tmpfs"
mount -t tmpfs -o size=256m,mode=0755 mallafs-bench "$work/tmpfs" ||
	die "cannot mount tmpfs on $work/tmpfs"
mounts+=("$work/tmpfs")

# default_permissions, as mallafs always has it: the kernel then refreshes a
# folder's attributes after each change in it (a round trip both pay).
start_fuse nullfs "$work/nullfs" "$work/nullfs.log" "$nullfs" -o default_permissions "$work/nullfs"
nullfs_pid=$started_pid
nullfs_dir=$work/nullfs

if [ -n "$mallafs" ]; then
	start_fuse mallafs "$work/mallafs" "$work/mallafs.log" "$mallafs" -f "$work/mallafs"
	mallafs_pid=$started_pid
	mkdir "$work/mallafs/services/bench" || die "mallafs: cannot create services/bench"
	mallafs_dir=$work/mallafs/services/bench/store
	[ -d "$mallafs_dir" ] || die "mallafs: $mallafs_dir is missing"
	targets+=(mallafs)
fi

echo "mallafs benchmark: $(uname -srm), $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "driver: $bench ${bench_args[*]}, $repeat runs per target"
echo

echo "== memory: $mem_keys keys of $mem_value_size bytes"
measure_memory nullfs "$nullfs_pid" "$nullfs_dir"
if [ -n "$mallafs" ]; then
	measure_memory mallafs "$mallafs_pid" "$mallafs_dir"
fi
echo

dirs=([tmpfs]="$work/tmpfs" [nullfs]="$nullfs_dir")
if [ -n "$mallafs" ]; then
	dirs[mallafs]=$mallafs_dir
fi
for ((run = 1; run <= repeat; run++)); do
	for name in "${targets[@]}"; do
		run_bench "$name" "${dirs[$name]}" "$run"
	done
done

# Watching: a change the daemon makes, timed to an inotify watcher and a poll()
# waiter, on the same mount after the speed runs.
if [ -n "$mallafs" ]; then
	for ((run = 1; run <= repeat; run++)); do
		echo "== watching, run $run of $repeat: $watchlat --rounds $rounds"
		timeout --foreground -k 10 "$bench_timeout" "$watchlat" --rounds "$rounds" \
			"$work/mallafs" | tee "$work/watch.$run.out" ||
			die "mallafs-watchlat failed on $work/mallafs"
		grep -q '^op=' "$work/watch.$run.out" || die "mallafs-watchlat printed nothing"
	done
fi

# The daemons must have survived the run.
kill -0 "$nullfs_pid" 2>/dev/null || die "nullfs died during the run"
if [ -n "$mallafs" ]; then
	kill -0 "$mallafs_pid" 2>/dev/null || die "mallafs died during the run"
fi

# median OP TARGET: the op's lowest median over the runs, in microseconds, or empty
median() {
	awk -v op="op=$1" '$1 == op {
		sub(/^median_us=/, "", $2)
		if (best == "" || $2 + 0 < best + 0) best = $2
	} END { if (best != "") print best }' "$work/$2".*.out
}

ops=$(awk -F'[= ]' '/^op=/ { print $2 }' "$work/tmpfs.1.out")

header="| operation | tmpfs µs | nullfs µs |"
rule="| --- | ---: | ---: |"
if [ -n "$mallafs" ]; then
	header+=" mallafs µs | mallafs/tmpfs | mallafs/nullfs |"
	rule+=" ---: | ---: | ---: |"
fi
header+=" nullfs/tmpfs |"
rule+=" ---: |"

speed_table() {
	local op t n m
	echo "$header"
	echo "$rule"
	for op in $ops; do
		t=$(median "$op" tmpfs)
		n=$(median "$op" nullfs)
		printf '| %s | %s | %s |' "$op" "${t:--}" "${n:--}"
		if [ -n "$mallafs" ]; then
			m=$(median "$op" mallafs)
			printf ' %s | %s | %s |' "${m:--}" "$(ratio "$m" "$t")" "$(ratio "$m" "$n")"
		fi
		printf ' %s |\n' "$(ratio "$n" "$t")"
	done
}

# watch_field OP FIELD: FIELD of OP's line in the watch run with OP's lowest
# median, or empty
watch_field() {
	awk -v op="op=$1" -v f="$2=" '$1 == op {
		m = $2; sub(/^median_us=/, "", m)
		if (best == "" || m + 0 < best + 0) {
			best = m
			val = ""
			for (i = 2; i <= NF; i++)
				if (index($i, f) == 1)
					val = substr($i, length(f) + 1)
		}
	} END { if (best != "") print val }' "$work"/watch.*.out
}

watch_table() {
	local op what
	echo "| the change reaches | median µs | p99 µs | changes | missed |"
	echo "| --- | ---: | ---: | ---: | ---: |"
	for op in inotify_config_ini poll_config_ini config_key_write; do
		case "$op" in
		inotify_config_ini) what="an inotify watcher (IN_MODIFY)" ;;
		poll_config_ini) what="a poll() waiter (POLLPRI)" ;;
		*) what="(the write() alone, for comparison)" ;;
		esac
		printf '| %s | %s | %s | %s | %s |\n' "$what" "$(watch_field "$op" median_us)" \
			"$(watch_field "$op" p99_us)" "$(watch_field "$op" n)" \
			"$(watch_field "$op" missed)"
	done
}

memory_table() {
	local name
	echo "| daemon | RSS before KiB | RSS with keys KiB | peak RSS KiB | bytes/key |"
	echo "| --- | ---: | ---: | ---: | ---: |"
	for name in "${targets[@]}"; do
		[ "$name" != tmpfs ] || continue
		printf '| %s | %s | %s | %s | %s |\n' "$name" "${mem_base[$name]}" \
			"${mem_rss[$name]}" "${mem_hwm[$name]}" \
			"$(awk -v a="${mem_rss[$name]}" -v b="${mem_base[$name]}" -v n="$mem_keys" \
				'BEGIN { printf "%.0f", (a - b) * 1024 / n }')"
	done
	if [ -n "$mallafs" ]; then
		printf '| mallafs/nullfs | %s | %s | %s | |\n' \
			"$(ratio "${mem_base[mallafs]}" "${mem_base[nullfs]}")" \
			"$(ratio "${mem_rss[mallafs]}" "${mem_rss[nullfs]}")" \
			"$(ratio "${mem_hwm[mallafs]}" "${mem_hwm[nullfs]}")"
	fi
}

echo
echo "Median time of one operation in microseconds, the best of $repeat runs"
echo "(lower is better); ratios are of these medians. Memory: the daemon's RSS"
echo "before and after $mem_keys keys of $mem_value_size bytes, and its peak."
echo
echo "### Speed (median µs)"
echo
speed_table
echo
echo "### Memory ($mem_keys keys of $mem_value_size bytes)"
echo
memory_table
if [ -n "$mallafs" ]; then
	echo
	echo "### Watching (median / p99 µs)"
	echo
	echo "A change the daemon makes (config.ini, after a write to one of the service's"
	echo "config keys) timed from the start of that write() until the watcher has it;"
	echo "the run with the lowest median of $repeat, $rounds changes each. Goal: a median"
	echo "under 10,000 µs."
	echo
	watch_table
fi
