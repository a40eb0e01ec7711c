#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The durability benchmark: what keeping a store on disk costs. For each N
# a mallafs service with persist loads a store of N keys (k0000000, ...,
# 8-byte names, 12-byte values, from a file storegen writes), and, once it is
# loaded and idle, one key of it is changed --changes times (100), each
# change followed by a pause of --gap-ms (80, longer than persist's 50 ms
# batch window) and then by a wait until the daemon has written nothing for
# --quiet-ms (300): each change is written on its own, however long that
# takes (a change that wrote nothing, because it was written with another,
# is counted and shown).
# What the daemon wrote to disk for a change is the figure (the mean); with
# `sync = always` too when persist has that setting. In the same run, the
# same N keys in a private Redis with `--appendonly yes --appendfsync always`
# and the same changes as SETs, and the change written with pwrite at offset
# 0 of a plain file and fsync'd (the least a durable change can write).
# Then the load: the daemon unmounted (a clean stop) and started again, timed
# from its start until the mount is up, until a cat of the last key returns
# its value and until the service's status says running (the best of
# --loads, 3), after which the changed key must hold its last value; the
# first start, which reads storegen's file (and converts it, for a persist
# on SQLite), is not one of them. For Redis, from its start until GET of the
# last key answers.
#
#   durability.sh [--mallafs PATH] [--durable PATH] [--scale PATH]
#                 [--storegen PATH] [--dir DIR] [--changes N] [--gap-ms G]
#                 [--quiet-ms Q] [--loads L] [--quick] [--no-redis] [N ...]
#
# N: the key counts (10000 and 1000000 by default; --quick: 10000 only, 30
# changes and 1 load).
# --dir: the folder on a real disk that holds the stores, Redis's files and
# the mountpoints (/var/tmp); tmpfs and ramfs are refused.
#
# Bytes written: write_bytes of /proc/PID/io of the daemon (of redis-server;
# the plain file's writer reads its own), before and after each change (see
# mallafs-durable). The kernel counts a page of a file each time a write
# makes it dirty: what will go to the disk, in 4 KiB pages. The filesystem's
# own journal and metadata writes are not counted (for any of them), nor are
# the FUSE replies (they are no file). A persist database's WAL is counted as
# it is written, and its checkpoint into the database when it comes during
# the changes (the one at a clean stop is not).
#
# Needs root (FUSE mounts). Exits non-zero only when something failed to run,
# never because a number is slow. Whatever it mounted or started is unmounted
# and stopped on exit, failure included, and its folder removed.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench_prog=durability.sh
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
mallafs=""
durable=""
scale=""
storegen=""
dir=/var/tmp
changes=""
gap_ms=80
quiet_ms=300
loads=""
quick=0
use_redis=1
counts=()
# a load of a large store on a busy machine
load_timeout=300
# how long a process may keep writing after the changes
settle_timeout=60

usage() {
	sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

while [ $# -gt 0 ]; do
	case "$1" in
	--mallafs | --mallafs=*) take_path mallafs "$@"; shift "$taken" ;;
	--durable | --durable=*) take_path durable "$@"; shift "$taken" ;;
	--scale | --scale=*) take_path scale "$@"; shift "$taken" ;;
	--storegen | --storegen=*) take_path storegen "$@"; shift "$taken" ;;
	--dir | --dir=*) take_path dir "$@"; shift "$taken" ;;
	--changes) changes=${2:?--changes needs a number}; shift 2 ;;
	--gap-ms) gap_ms=${2:?--gap-ms needs milliseconds}; shift 2 ;;
	--quiet-ms) quiet_ms=${2:?--quiet-ms needs milliseconds}; shift 2 ;;
	--loads) loads=${2:?--loads needs a number}; shift 2 ;;
	--no-redis) use_redis=0; shift ;;
	--quick) quick=1; shift ;;
	-h | --help) usage; exit 0 ;;
	-*) usage >&2; exit 2 ;;
	*) counts+=("$1"); shift ;;
	esac
done

if [ -z "$mallafs" ] && [ -x "$here/../../build/mount/mallafs" ]; then
	mallafs=$here/../../build/mount/mallafs
fi
if [ -z "$mallafs" ] || [ ! -x "$mallafs" ]; then
	die "mallafs not found: pass --mallafs PATH"
fi
mallafs=$(realpath "$mallafs")
durable=$(find_bin "$durable" mallafs-durable)
scale=$(find_bin "$scale" mallafs-scale)
if [ -z "$storegen" ] && [ -x "$here/../../build/tests/fs/storegen" ]; then
	storegen=$here/../../build/tests/fs/storegen
fi
if [ -z "$storegen" ] || [ ! -x "$storegen" ]; then
	die "storegen not found: pass --storegen PATH"
fi
storegen=$(realpath "$storegen")
[ "$(id -u)" -eq 0 ] || die "needs root, to mount FUSE filesystems"
for cmd in mountpoint fusermount3 awk findmnt stat; do
	command -v "$cmd" >/dev/null || die "$cmd is missing"
done
redis=""
if [ "$use_redis" -eq 1 ] && command -v redis-server >/dev/null; then
	command -v redis-cli >/dev/null || die "redis-server without redis-cli"
	redis=$(command -v redis-server)
fi

if [ "$quick" -eq 1 ]; then
	[ ${#counts[@]} -gt 0 ] || counts=(10000)
	: "${changes:=30}"
	: "${loads:=1}"
fi
[ ${#counts[@]} -gt 0 ] || counts=(10000 1000000)
: "${changes:=100}"
: "${loads:=3}"
for n in "${counts[@]}"; do
	if ! [[ "$n" =~ ^[1-9][0-9]*$ ]] || [ "$n" -gt 10000000 ]; then
		die "bad key count: $n (from 1 to 10000000)"
	fi
done
for v in "$changes" "$gap_ms" "$quiet_ms" "$loads"; do
	[[ "$v" =~ ^[1-9][0-9]*$ ]] || die "bad number: $v"
done
# each change may wait up to 60 s for its writer to be quiet
changes_timeout=$((changes * (gap_ms + 60000) / 1000 + 60))
durable_args=(--changes "$changes" --gap-ms "$gap_ms" --quiet-ms "$quiet_ms")
[ -d "$dir" ] || die "$dir: not a folder"
dir=$(realpath "$dir")
case "$(stat -f -c %T "$dir")" in
tmpfs | ramfs) die "$dir is on $(stat -f -c %T "$dir"): give a folder on a disk with --dir" ;;
esac

bench_setup mallafs-durability "$dir"

# Results: R[N,WHAT]; numbers, or empty when not measured.
declare -A R
# what a reader of the tables should know, one a line
notes=()

# write_bytes PID: what the process has written (see the header)
write_bytes() {
	awk '$1 == "write_bytes:" { print $2; found = 1 } END { exit !found }' \
		"/proc/$1/io" || die "no write_bytes for process $1"
}

# settle PID: waits until the process has written nothing for 0.5 s
settle() {
	local pid=$1 i before after
	after=$(write_bytes "$pid")
	for ((i = 0; i < settle_timeout * 2; i++)); do
		before=$after
		sleep 0.5
		after=$(write_bytes "$pid")
		[ "$after" != "$before" ] || return 0
	done
	die "process $pid still writing ${settle_timeout} s after the changes"
}

# field FILE KEY: the value of KEY= in FILE (the helper's output)
field() {
	awk -v f="$2=" '{ for (i = 1; i <= NF; i++) if (index($i, f) == 1)
		print substr($i, length(f) + 1) }' "$1"
}

# size PATH...: the files' sizes summed, those missing as 0
size() {
	local f total=0
	for f in "$@"; do
		[ ! -f "$f" ] || total=$((total + $(stat -c %s "$f")))
	done
	echo "$total"
}

# changes_of NAME PID OUT ARGS...: runs the helper's changes (ARGS) once
# PID is idle, and sets $bytes to what PID wrote for a change (the mean)
changes_of() {
	local name=$1 pid=$2 out=$3 cmd=$4
	shift 4
	settle "$pid"
	timeout --foreground -k 10 "$changes_timeout" "$durable" "$cmd" --pid "$pid" \
		"${durable_args[@]}" "$@" >"$out" || die "$name: the changes failed"
	bytes=$(field "$out" bytes_mean)
	unwritten=$(field "$out" unwritten)
	[ "$unwritten" -eq 0 ] || notes+=("$name: $unwritten of the $changes changes had written nothing when its process had been quiet for $quiet_ms ms (their writes came later, with the next change's, or were one with it: compare the mean with the store's size)")
	echo "$name: $(field "$out" bytes_total) bytes written for $changes changes: a change" \
		"$bytes (mean), $(field "$out" bytes_median) (median), $(field "$out" bytes_max)" \
		"(largest), $(field "$out" unwritten) wrote nothing; it took" \
		"$(field "$out" median_us) µs (median)"
}

# start_mallafs N: starts the daemon on $mnt with the bootstrap file and waits
# (timed) for the store of N keys; sets $pid, and R[N,load_*] to the times
# when they are the best so far
start_mallafs() {
	local n=$1 t0 last out=$work/load.out s rc=0
	last=$(printf 'k%07d' $((n - 1)))
	mkdir -p "$mnt"
	t0=$(date +%s%N)
	"$mallafs" -f --config="$boot" "$mnt" >>"$work/mallafs.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	mounts+=("$mnt")
	"$durable" wait --since "$t0" --timeout "$load_timeout" "$mnt" "$S/store/$last" \
		"twelve bytes" "$S/status" >"$out" || rc=$?
	if [ "$rc" -ne 0 ]; then
		kill -0 "$pid" 2>/dev/null || die "mallafs exited while loading $n keys"
		die "mallafs: the store of $n keys is not back within ${load_timeout}s"
	fi
	echo "mallafs: $(cat "$out")"
	for s in mount key running; do
		keep_best "$n,load_$s" "$(field "$out" "${s}_s")"
	done
}

# keep_best KEY SECONDS: R[KEY] becomes SECONDS when it is the first or the
# least so far
keep_best() {
	if [ -z "${R[$1]:-}" ] || awk -v a="$2" -v b="${R[$1]}" 'BEGIN { exit !(a < b) }'; then
		R[$1]=$2
	fi
}

# has_sync: whether this persist has the setting sync (it refuses a bad
# value; a persist without it takes any key, which is then removed)
has_sync() {
	if echo bogus 2>/dev/null >"$S/config/persist/sync"; then
		rm -f "$S/config/persist/sync"
		return 1
	fi
	return 0
}

# wait_running: waits (up to load_timeout) for the service to run
wait_running() {
	local i
	for ((i = 0; i < load_timeout * 10; i++)); do
		! grep -qx 'state: running' "$S/status" || return 0
		sleep 0.1
	done
	cat "$S/status" >&2
	die "mallafs: the service does not run ${load_timeout}s after a change of persist's settings"
}

# run_mallafs N: the changes, with each sync mode, and the loads, of a store
# of N keys
run_mallafs() {
	local n=$1 d=$work/mallafs-$1 store i modes=(batch) mode want
	mnt=$work/mnt
	S=$mnt/services/s
	boot=$d/boot.ini
	store=$d/s.store
	echo "== mallafs, $n keys"
	mkdir -p "$d"
	"$storegen" "$store" "$n" || die "storegen failed"
	cat >"$boot" <<EOT
[services.s]
plugins = persist
admin = active

[services.s.persist]
path = $store
EOT
	# the first start reads storegen's file (and a persist on SQLite converts
	# it): not timed as a load
	start_mallafs "$n"
	unset "R[$n,load_mount]" "R[$n,load_key]" "R[$n,load_running]"
	if has_sync; then
		modes+=(always)
		R[sync]=1
	fi
	for mode in "${modes[@]}"; do
		if [ "$mode" != batch ]; then
			echo "$mode" >"$S/config/persist/sync" || die "mallafs: cannot set sync = $mode"
			wait_running
		fi
		changes_of "mallafs $mode, $n keys" "$pid" "$work/$n.$mode.out" write "$S/store/k0000000"
		R[$n,$mode]=$bytes
		R[$n,${mode}_us]=$(field "$work/$n.$mode.out" median_us)
	done
	want=$(field "$work/$n.${modes[-1]}.out" last)
	stop_mount "$mnt" "$pid"
	R[$n,disk]=$(size "$store" "$store-wal")
	echo "mallafs: $(find "$d" -maxdepth 1 -type f -printf '%f %s B; ')"
	for ((i = 1; i <= loads; i++)); do
		echo "mallafs: load $i of $loads"
		start_mallafs "$n"
		[ "$(cat "$S/store/k0000000")" = "$want" ] ||
			die "mallafs: k0000000 is not $want after a clean restart"
		stop_mount "$mnt" "$pid"
	done
	rm -rf "$d"
	echo
}

# start_redis DIR: a private redis-server with an append-only file fsync'd
# at every change, on a unix socket in DIR; sets $rpid and $sock, and $t0 to
# when it started
start_redis() {
	local d=$1
	sock=$d/sock
	t0=$(date +%s%N)
	"$redis" --port 0 --unixsocket "$sock" --unixsocketperm 700 --save "" \
		--appendonly yes --appendfsync always --dir "$d" --daemonize no \
		>>"$work/redis.log" 2>&1 &
	rpid=$!
	others+=("$rpid")
}

stop_redis() {
	redis-cli -s "$sock" shutdown >/dev/null 2>&1 || true
	wait_exit "$rpid" 60 || true
	mapfile -t others < <(without "$rpid" "${others[@]}")
}

# run_redis N: the same N keys, changes and loads in Redis
run_redis() {
	local n=$1 d=$work/redis-$1 piped i out=$work/redis-load.out last value t
	echo "== redis-server, appendfsync always, $n keys"
	mkdir -p "$d"
	start_redis "$d"
	for ((i = 0; i < mount_timeout * 20; i++)); do
		kill -0 "$rpid" 2>/dev/null || die "redis-server exited at start"
		[ "$(redis-cli -s "$sock" ping 2>/dev/null)" != PONG ] || break
		sleep 0.05
	done
	[ "$(redis-cli -s "$sock" ping 2>/dev/null)" = PONG ] ||
		die "redis-server did not answer within ${mount_timeout}s"
	piped=$(timeout -k 10 "$load_timeout" "$scale" resp --keys "$n" |
		timeout -k 10 "$load_timeout" redis-cli -s "$sock" --pipe 2>&1) ||
		die "redis-cli --pipe failed: $piped"
	echo "$piped" | grep -q "errors: 0, replies: $n" || die "redis: not all $n SETs went in"
	changes_of "redis, $n keys" "$rpid" "$work/$n.redis.out" set "$sock" k0000000
	R[$n,redis]=$bytes
	R[$n,redis_us]=$(field "$work/$n.redis.out" median_us)
	stop_redis
	R[$n,redis_disk]=$(du -sb "$d" | awk '{ print $1 }')
	last=$(printf 'k%07d' $((n - 1)))
	value=$(printf 'val-%07d\n_' $((n - 1)))
	value=${value%_}
	for ((i = 1; i <= loads; i++)); do
		start_redis "$d"
		"$durable" wait-get --since "$t0" --timeout "$load_timeout" "$sock" "$last" \
			"$value" >"$out" || die "redis: the $n keys are not back within ${load_timeout}s"
		t=$(field "$out" key_s)
		echo "redis: load $i of $loads: $t s"
		keep_best "$n,redis_load" "$t"
		stop_redis
	done
	rm -rf "$d"
	echo
}

# run_raw: the changes written to a plain file with pwrite and fsync
run_raw() {
	local out=$work/raw.out
	echo "== a plain file, pwrite and fsync"
	timeout --foreground -k 10 "$changes_timeout" "$durable" raw "${durable_args[@]}" \
		"$work/raw.file" >"$out" || die "the plain file's changes failed"
	R[raw]=$(field "$out" bytes_mean)
	[ "$(field "$out" unwritten)" -eq 0 ] || notes+=("the plain file: a change wrote nothing")
	R[raw_us]=$(field "$out" median_us)
	echo "plain file: $(field "$out" bytes_total) bytes written for $changes changes: a change" \
		"${R[raw]} (mean); it took ${R[raw_us]} µs (median)"
	echo
}

# r KEY: the result, or "-"
r() {
	local v=${R[$1]:-}
	echo "${v:--}"
}

src=$(findmnt -no SOURCE -T "$dir")
fstype=$(findmnt -no FSTYPE -T "$dir")
echo "mallafs durability benchmark: $(uname -srm), $(nproc) CPUs" \
	"($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "disk: $dir on $src ($fstype, $(df -h --output=size "$dir" | tail -n 1 | tr -d ' '));" \
	"keys: ${counts[*]}; $changes changes, ${gap_ms} ms apart and ${quiet_ms} ms quiet;" \
	"loads: best of $loads;" \
	"redis: ${redis:-not run}"
echo

run_raw
for n in "${counts[@]}"; do
	run_mallafs "$n"
	[ -z "$redis" ] || run_redis "$n"
done

# b KEY: the result with thousands separated, or "-"
b() {
	local v=${R[$1]:-}
	if [ -n "$v" ]; then
		thousands "$v"
	else
		printf -- -
	fi
}

bytes_table() {
	local n
	echo "| keys | mallafs batch | mallafs always | Redis always | file + fsync | batch / Redis | always / Redis | batch / file | store on disk |"
	echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for n in "${counts[@]}"; do
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(thousands "$n")" \
			"$(b "$n,batch")" "$(b "$n,always")" "$(b "$n,redis")" "$(b raw)" \
			"$(ratio "$(r "$n,batch")" "$(r "$n,redis")")" \
			"$(ratio "$(r "$n,always")" "$(r "$n,redis")")" \
			"$(ratio "$(r "$n,batch")" "$(r raw)")" "$(b "$n,disk")"
	done
}

latency_table() {
	local n
	echo "| keys | mallafs batch | mallafs always | Redis always | file + fsync |"
	echo "| ---: | ---: | ---: | ---: | ---: |"
	for n in "${counts[@]}"; do
		printf '| %s | %s | %s | %s | %s |\n' "$(thousands "$n")" "$(r "$n,batch_us")" \
			"$(r "$n,always_us")" "$(r "$n,redis_us")" "$(r raw_us)"
	done
}

load_table() {
	local n
	echo "| keys | mounted s | last key read s | status running s | Redis GET of the last key s | mallafs / Redis |"
	echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
	for n in "${counts[@]}"; do
		printf '| %s | %s | %s | %s | %s | %s |\n' "$(thousands "$n")" \
			"$(r "$n,load_mount")" "$(r "$n,load_key")" "$(r "$n,load_running")" \
			"$(r "$n,redis_load")" "$(ratio "$(r "$n,load_key")" "$(r "$n,redis_load")")"
	done
}

echo "Bytes: what each process wrote to disk for one change (write_bytes of"
echo "/proc/PID/io, whole 4 KiB pages), the mean of $changes changes of one key, each"
echo "written on its own (${gap_ms} ms apart and the writer quiet for ${quiet_ms} ms);"
echo "mallafs with persist (sync = batch, and always$([ -n "${R[sync]:-}" ] || echo ': not in this build'))," \
	"Redis with appendfsync always,"
echo "and pwrite + fsync of the 12 bytes in a plain file. Store on disk: the"
echo "persist file's size (and its WAL's) after a clean stop. Load: from the"
echo "daemon's start, the best of $loads."
echo
echo "### Bytes written to disk per change"
echo
bytes_table
echo
echo "### Time of a change (median µs)"
echo
latency_table
echo
echo "### Load after a restart"
echo
load_table
if [ ${#notes[@]} -gt 0 ]; then
	echo
	printf '%s\n' "${notes[@]}"
fi
