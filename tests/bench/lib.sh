# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# What run.sh, scale.sh and durability.sh share: finding the helper
# binaries, mounting FUSE daemons and stopping them, the EXIT trap that
# unmounts and stops whatever was started (failure included), memory
# counters, ratios and thousands.
#
# The sourcing script sets $bench_prog (its name, for messages) and $here
# (its folder) first, then calls bench_setup, which makes $work and sets the
# traps. Mountpoints go in $mounts, FUSE daemons (they exit when unmounted)
# in $pids, other processes (killed with SIGTERM) in $others; commands in
# $cleanup_hooks run once the daemons have exited (a server they talk to
# until then).

# shellcheck disable=SC2154 # bench_prog and here: set by the sourcing script
mount_timeout=10
# how long a daemon may take to exit once unmounted (it frees every key)
exit_timeout=120
work=""
mounts=()
pids=()
others=()
cleanup_hooks=()

# take_path VAR ARG [NEXT]: for an option "--x PATH" or "--x=PATH" in ARG
# (and NEXT), sets VAR to PATH and $taken to how many arguments it used
# shellcheck disable=SC2034 # var names the caller's; taken is the caller's
take_path() {
	local -n var=$1
	case "$2" in
	*=*) var=${2#*=}; taken=1 ;;
	*) var=${3:?$2 needs a path}; taken=2 ;;
	esac
}

die() {
	echo "$bench_prog: $*" >&2
	exit 1
}

# Finds a helper binary: the given path, else next to the script or in the
# usual meson build folders, else on PATH.
find_bin() {
	local given=$1 name=$2 c
	if [ -n "$given" ]; then
		[ -x "$given" ] || die "$given: not an executable"
		realpath "$given"
		return
	fi
	for c in "$here/$name" "$here/../../build/tests/bench/$name" \
		"$here/../../builddir/tests/bench/$name"; do
		if [ -x "$c" ]; then
			realpath "$c"
			return
		fi
	done
	command -v "$name" || die "$name not found: pass --${name#mallafs-} PATH"
}

is_mounted() {
	# /proc/mounts, not mountpoint(1): a dead FUSE daemon leaves a mount that
	# stat() fails on
	awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/mounts
}

unmount() {
	umount "$1" 2>/dev/null || fusermount3 -u "$1" 2>/dev/null ||
		umount -l "$1" 2>/dev/null
}

# wait_exit PID SECONDS: waits for a child to exit, killing it if it does
# not; reaps it
wait_exit() {
	local pid=$1 i
	for ((i = 0; i < $2 * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "$bench_prog: process $pid still running, killing it" >&2
		kill -TERM "$pid" 2>/dev/null
		sleep 0.5
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
}

# without VALUE ARRAY...: the arrays' elements other than VALUE, one a line
without() {
	local v=$1 x
	shift
	for x in "$@"; do
		[ "$x" = "$v" ] || printf '%s\n' "$x"
	done
}

cleanup() {
	local rc=$? m pid log hook
	trap - EXIT INT TERM
	set +e
	if [ "$rc" -ne 0 ]; then
		for log in "$work"/*.log; do
			[ -s "$log" ] || continue
			echo "$bench_prog: last lines of $(basename "$log" .log)'s stderr:" >&2
			tail -n 20 "$log" >&2
		done
	fi
	for pid in "${others[@]}"; do
		kill -TERM "$pid" 2>/dev/null
		wait_exit "$pid" 10
	done
	for m in "${mounts[@]}"; do
		if is_mounted "$m"; then
			unmount "$m" || echo "$bench_prog: could not unmount $m" >&2
		fi
	done
	for pid in "${pids[@]}"; do
		# unmounting ends the daemon's loop; give it time to exit cleanly
		wait_exit "$pid" "$exit_timeout"
	done
	for hook in "${cleanup_hooks[@]}"; do
		"$hook"
	done
	for m in "${mounts[@]}"; do
		if is_mounted "$m"; then
			echo "$bench_prog: $m is still mounted, keeping $work" >&2
			[ "$rc" -ne 0 ] || rc=1
			exit "$rc"
		fi
	done
	[ -z "$work" ] || rm -rf --one-file-system "$work"
	exit "$rc"
}

# bench_setup NAME [FOLDER]: makes $work, NAME.XXXXXX in FOLDER (/tmp), and
# sets the traps
bench_setup() {
	work=$(mktemp -d "${2:-/tmp}/$1.XXXXXX") || die "cannot make a folder in ${2:-/tmp}"
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# Starts a FUSE daemon in the foreground, in the background, and waits until
# its mount is up, failing early if the daemon dies. Sets $started_pid.
start_fuse() {
	local name=$1 mnt=$2 log=$3 i
	shift 3
	mkdir -p "$mnt"
	"$@" >"$log" 2>&1 &
	started_pid=$!
	pids+=("$started_pid")
	mounts+=("$mnt")
	for i in $(seq $((mount_timeout * 20))); do
		if ! kill -0 "$started_pid" 2>/dev/null; then
			cat "$log" >&2
			die "$name exited before mounting $mnt"
		fi
		if mountpoint -q "$mnt"; then
			return 0
		fi
		sleep 0.05
	done
	cat "$log" >&2
	die "$name did not mount $mnt within ${mount_timeout}s"
}

# stop_mount MOUNTPOINT [PID]: unmounts, waits for the daemon to exit, and
# forgets both; fails if the daemon did not exit cleanly
stop_mount() {
	local mnt=$1 pid=${2:-} rc=0
	if is_mounted "$mnt"; then
		unmount "$mnt" || die "could not unmount $mnt"
	fi
	mapfile -t mounts < <(without "$mnt" "${mounts[@]}")
	[ -n "$pid" ] || return 0
	wait_exit "$pid" "$exit_timeout" || rc=$?
	mapfile -t pids < <(without "$pid" "${pids[@]}")
	[ "$rc" -eq 0 ] || die "the daemon of $mnt exited with status $rc"
}

# rss_kib PID FIELD: a field of /proc/PID/status in KiB (VmRSS, VmHWM)
rss_kib() {
	awk -v f="$2:" '$1 == f { print $2; found = 1 } END { exit !found }' \
		"/proc/$1/status" || die "no $2 for process $1"
}

# ratio A B: A/B to two decimals, "-" when either is missing or B is zero
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0) print "-"
		else printf "%.2f\n", a / b }'
}

# thousands N: 1000000 -> 1,000,000
thousands() {
	printf '%s' "$1" | rev | sed 's/[0-9]\{3\}/&,/g; s/,$//' | rev
}
