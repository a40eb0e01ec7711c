# SPDX-License-Identifier: MIT
# Several mallafs daemons of one cluster on this machine, each a node with
# its own mountpoint ($MFS_TMP/mnt-NAME, cleaned up by lib.sh with the
# others) and log ($MFS_TMP/node-NAME.log, scanned for sanitizer and crash
# output when the node stops). Sourced after lib.sh and
# tests/etcd/lib_etcd.sh; ETCD_ENDPOINTS names the etcd the nodes use.
#
#   cl_start NAME [OPTIONS...]  mounts node NAME (extra -o options appended)
#   cl_stop NAME                unmounts it; the daemon must exit with 0
#   cl_kill NAME                kill -9, then a lazy unmount
#   CL_MNT[NAME], CL_PID[NAME]  its mountpoint and daemon
# CL_TTL and CL_TIMEOUT are the nodes' cluster_ttl and cluster_timeout.

declare -A CL_MNT=() CL_PID=()
CL_TTL=${CL_TTL:-3}
CL_TIMEOUT=${CL_TIMEOUT:-1500}

# cl_start NAME [-o OPTS | ARGS...]: the node's options, then ARGS.
cl_start()
{
	local name=$1 mnt log pid deadline
	shift
	mnt=$MFS_TMP/mnt-$name
	log=$MFS_TMP/node-$name.log
	mkdir -p "$mnt" || mfs_bail "mkdir $mnt"
	# A restarted node appends to its log: only this start's lines count.
	local skip
	skip=$(($(cat "$log" 2>/dev/null | wc -l) + 1))
	env --default-signal=INT,QUIT "$MALLAFS" -f \
		-o "cluster=$ETCD_ENDPOINTS,node=$name,cluster_ttl=$CL_TTL,cluster_timeout=$CL_TIMEOUT,allow_other" \
		"$@" "$mnt" </dev/null >>"$log" 2>&1 &
	pid=$!
	MFS_CHILDREN+=("$pid")
	CL_MNT[$name]=$mnt
	CL_PID[$name]=$pid
	deadline=$(($(mfs_now_ms) + $(mfs_mount_timeout) * 1000))
	while ! tail -n "+$skip" "$log" | grep -qF "mounted on $mnt"; do
		if ! mfs_alive "$pid"; then
			wait "$pid"
			fail "node $name: mallafs died before mounting (exit status $?)" \
				"$(tail -n 20 "$log")"
			return 1
		fi
		if (($(mfs_now_ms) > deadline)); then
			fail "node $name: not mounted after $(mfs_mount_timeout)s" "$(tail -n 20 "$log")"
			return 1
		fi
		sleep 0.02
	done
	pass "node $name: mounted on $(mfs_rel "$mnt")"
}

cl_stop()
{
	local name=$1 pid=${CL_PID[$1]} rc
	local out
	out=$(fusermount3 -u "${CL_MNT[$name]}" 2>&1) || fail "node $name: fusermount3 -u" "$out" \
		"$(for p in /proc/[0-9]*; do ls -l "$p/fd" "$p/cwd" 2>/dev/null | grep -q "${CL_MNT[$name]}" && echo "held by $(cat "$p/cmdline" | tr '\0' ' ')"; done)"
	if mfs_poll $(($(mfs_exit_timeout) * 1000)) eval "! mfs_alive $pid"; then
		wait "$pid"
		rc=$?
		assert_eq "node $name: the daemon exits with status 0" 0 "$rc"
	else
		fail "node $name: the daemon did not exit after the unmount"
		kill -9 "$pid" 2>/dev/null
	fi
	mfs_scan_log "$MFS_TMP/node-$name.log" "node $name"
	CL_PID[$name]=''
}

cl_kill()
{
	local name=$1 pid=${CL_PID[$1]}
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	fusermount3 -u -z "${CL_MNT[$name]}" 2>/dev/null || umount -l "${CL_MNT[$name]}"
	CL_PID[$name]=''
	pass "node $name: kill -9"
}

# cl_wait MS WHAT CMD...: passes when CMD succeeds within MS milliseconds,
# saying how long it took.
cl_wait()
{
	local ms=$1 what=$2 t0 t1
	shift 2
	t0=$(mfs_now_ms)
	if mfs_poll "$ms" "$@"; then
		t1=$(mfs_now_ms)
		pass "$what (in $((t1 - t0)) ms, at most $ms)"
	else
		fail "$what (not within $ms ms)"
	fi
}

# cl_scan_all: every node's log, at the end.
cl_scan_all()
{
	local name
	for name in "${!CL_MNT[@]}"; do
		mfs_scan_log "$MFS_TMP/node-$name.log" "node $name log"
	done
}
