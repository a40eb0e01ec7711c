# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Real etcd servers for tests, sourced (after tests/fs/lib.sh when a test
# uses both). Debian's /usr/bin/etcd (3.4) on 127.0.0.1 with free ports
# (never 2379/2380, where a system etcd may listen, nor the README's
# 23790/23800), data on tmpfs (/dev/shm), logs (warn and up) in the test's
# folder.
#
#   etcd_start_one DIR [ETCD_ARG...]    one member "e0"; sets ETCD_ENDPOINTS
#   etcd_start_cluster DIR N            members e0..e(N-1); ETCD_ENDPOINTS
#                                       comma-separated in that order
#   etcd_stop NAME / etcd_kill NAME     SIGTERM and wait / SIGKILL
#   etcd_restart NAME                   same data folder, ports and flags
#   etcd_wait_healthy [NAME...]         every (or the named) member answers
#   etcd_leader                         prints the leader's member name
#   etcd_ctl ARG...                     etcdctl against ETCD_ENDPOINTS
#   etcd_make_tls DIR                   a CA and a server certificate for
#                                       127.0.0.1 in DIR (ca.pem, server.pem,
#                                       server-key.pem); with ETCD_TLS_DIR=DIR
#                                       set before a start, members serve
#                                       https to clients
#
# Elections: --heartbeat-interval 50 --election-timeout 500 (ms) make a
# member start and a new leader come in well under a second on loopback;
# the cost is 20 heartbeats a second per follower and, on a loaded
# machine, a spurious election now and then (a client retries those).
#
# A member that cannot start makes the test fail (never skip) with the tail
# of its log. Everything started is killed at exit: through lib.sh's
# cleanup (MFS_CLEANUP_HOOKS) when lib.sh is sourced, else by an EXIT trap
# of our own.

declare -gA ETCD_PID=() ETCD_CPORT=() ETCD_PPORT=() ETCD_DATA=() ETCD_CMD=()
ETCD_ENDPOINTS=''
ETCD_NAMES=()
ETCD_LOGDIR=''
ETCD_SHM=''
ETCD_TOKEN=''
ETCD_WHY=''
ETCD_TLS_DIR=${ETCD_TLS_DIR:-}
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
ETCDCTL_BIN=${ETCDCTL_BIN:-/usr/bin/etcdctl}

etcd_die()
{
	# On stderr too: a start runs in $(...), where stdout is the endpoints.
	echo "FAIL - etcd: $*" >&2
	if declare -F mfs_bail >/dev/null; then
		mfs_bail "etcd: $*"
	fi
	exit 1
}

etcd_cleanup()
{
	local n pid
	for n in "${!ETCD_PID[@]}"; do
		pid=${ETCD_PID[$n]}
		[[ -n $pid ]] || continue
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		ETCD_PID[$n]=''
	done
	if [[ -n $ETCD_SHM && -d $ETCD_SHM ]]; then
		rm -rf --one-file-system "$ETCD_SHM"
	fi
	ETCD_SHM=''
}

etcd_trap_exit()
{
	local rc=$?
	etcd_cleanup
	exit "$rc"
}

# Registers the cleanup once: with lib.sh's hooks if it is there.
etcd_hook()
{
	local h
	if declare -p MFS_CLEANUP_HOOKS >/dev/null 2>&1; then
		for h in "${MFS_CLEANUP_HOOKS[@]}"; do
			[[ $h == etcd_cleanup ]] && return 0
		done
		MFS_CLEANUP_HOOKS+=(etcd_cleanup)
	else
		trap etcd_trap_exit EXIT
	fi
}

etcd_now_ms()
{
	local t=${EPOCHREALTIME/./}
	echo $((t / 1000))
}

# A port nothing listens on (a bind race is caught by the start's retry).
etcd_free_port()
{
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		# etcd's own ports, and the README's cluster session's (fs_readme
		# may replay it beside this test).
		[[ $p == 2379 || $p == 2380 || $p == 23790 || $p == 23800 ]] && continue
		[[ " ${ETCD_CPORT[*]} ${ETCD_PPORT[*]} " == *" $p "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	etcd_die "no free port found"
}

etcd_scheme()
{
	if [[ -n $ETCD_TLS_DIR ]]; then echo https; else echo http; fi
}

etcd_url()
{
	echo "$(etcd_scheme)://127.0.0.1:${ETCD_CPORT[$1]}"
}

etcd_ctl_tls()
{
	[[ -n $ETCD_TLS_DIR ]] && printf '%s\n' "--cacert=$ETCD_TLS_DIR/ca.pem"
}

# etcd_ctl ARG...: etcdctl v3 against every member.
etcd_ctl()
{
	local tls
	tls=$(etcd_ctl_tls)
	ETCDCTL_API=3 "$ETCDCTL_BIN" --endpoints="$ETCD_ENDPOINTS" --dial-timeout=2s \
		--command-timeout=5s ${tls:+"$tls"} "$@"
}

etcd_launch()
{
	local n=$1
	(eval "exec ${ETCD_CMD[$n]}") >>"$ETCD_LOGDIR/$n.out" 2>&1 &
	ETCD_PID[$n]=$!
}

etcd_log_tail()
{
	tail -n 8 "$ETCD_LOGDIR/$1.log" "$ETCD_LOGDIR/$1.out" 2>/dev/null | cut -c1-400
}

# etcd_prepare NAME INITIAL_CLUSTER [ETCD_ARG...]: the command line.
etcd_prepare()
{
	local n=$1 initial=$2 s q a
	shift 2
	s=$(etcd_scheme)
	ETCD_DATA[$n]=$ETCD_SHM/$n
	q="$(printf '%q' "$ETCD_BIN") --name $n --data-dir $(printf '%q' "${ETCD_DATA[$n]}")"
	q+=" --listen-client-urls $s://127.0.0.1:${ETCD_CPORT[$n]}"
	q+=" --advertise-client-urls $s://127.0.0.1:${ETCD_CPORT[$n]}"
	q+=" --listen-peer-urls http://127.0.0.1:${ETCD_PPORT[$n]}"
	q+=" --initial-advertise-peer-urls http://127.0.0.1:${ETCD_PPORT[$n]}"
	q+=" --initial-cluster $initial --initial-cluster-state new"
	q+=" --initial-cluster-token $ETCD_TOKEN"
	q+=" --heartbeat-interval 50 --election-timeout 500"
	q+=" --logger zap --log-level warn --log-outputs $(printf '%q' "$ETCD_LOGDIR/$n.log")"
	if [[ -n $ETCD_TLS_DIR ]]; then
		q+=" --cert-file $(printf '%q' "$ETCD_TLS_DIR/server.pem")"
		q+=" --key-file $(printf '%q' "$ETCD_TLS_DIR/server-key.pem")"
	fi
	for a in "$@"; do
		q+=" $(printf '%q' "$a")"
	done
	ETCD_CMD[$n]=$q
}

etcd_setup_dirs()
{
	ETCD_LOGDIR=$1
	mkdir -p "$ETCD_LOGDIR" || etcd_die "cannot make $ETCD_LOGDIR"
	if [[ -z $ETCD_SHM ]]; then
		ETCD_SHM=$(mktemp -d /dev/shm/mallafs-etcd.XXXXXX) ||
			etcd_die "cannot make a folder in /dev/shm"
	fi
	etcd_hook
}

# A bind failure in any member's log: the ports were taken meanwhile.
etcd_bind_failed()
{
	local n
	for n in "$@"; do
		grep -qs 'address already in use' "$ETCD_LOGDIR/$n.log" "$ETCD_LOGDIR/$n.out" &&
			return 0
	done
	return 1
}

# etcd_start_members N [ETCD_ARG...]: tries up to 5 sets of ports.
etcd_start_members()
{
	local count=$1 try i n initial eps
	shift
	for ((try = 0; try < 5; try++)); do
		ETCD_TOKEN=mallafs-$$-$RANDOM
		ETCD_NAMES=()
		initial=''
		eps=''
		for ((i = 0; i < count; i++)); do
			n=e$i
			ETCD_NAMES+=("$n")
			ETCD_CPORT[$n]=''
			ETCD_PPORT[$n]=''
		done
		for n in "${ETCD_NAMES[@]}"; do
			ETCD_CPORT[$n]=$(etcd_free_port)
			ETCD_PPORT[$n]=$(etcd_free_port)
			initial+="${initial:+,}$n=http://127.0.0.1:${ETCD_PPORT[$n]}"
		done
		for n in "${ETCD_NAMES[@]}"; do
			rm -rf "${ETCD_SHM:?}/$n"
			: >"$ETCD_LOGDIR/$n.log"
			etcd_prepare "$n" "$initial" "$@"
			etcd_launch "$n"
			eps+="${eps:+,}$(etcd_url "$n")"
		done
		ETCD_ENDPOINTS=$eps
		export ETCD_ENDPOINTS
		if etcd_wait_healthy; then
			return 0
		fi
		if etcd_bind_failed "${ETCD_NAMES[@]}"; then
			for n in "${ETCD_NAMES[@]}"; do
				etcd_kill "$n"
			done
			continue
		fi
		break
	done
	for n in "${ETCD_NAMES[@]}"; do
		echo "# etcd $n log tail:" >&2
		etcd_log_tail "$n" | sed 's/^/#   /' >&2
	done
	etcd_die "could not start $count member(s): $ETCD_WHY"
}

etcd_start_one()
{
	local dir=$1
	shift
	etcd_setup_dirs "$dir"
	etcd_start_members 1 "$@"
	echo "$ETCD_ENDPOINTS"
}

etcd_start_cluster()
{
	etcd_setup_dirs "$1"
	etcd_start_members "${2:-3}"
	echo "$ETCD_ENDPOINTS"
}

# etcd_wait_healthy [NAME...]: up to 10 s for each to answer a
# linearizable read (so the cluster has a leader).
etcd_wait_healthy()
{
	local names=("$@") n end tls
	((${#names[@]})) || names=("${ETCD_NAMES[@]}")
	tls=$(etcd_ctl_tls)
	end=$(($(etcd_now_ms) + 10000))
	for n in "${names[@]}"; do
		until ETCDCTL_API=3 "$ETCDCTL_BIN" --endpoints="$(etcd_url "$n")" --dial-timeout=1s \
			--command-timeout=1s ${tls:+"$tls"} endpoint health >/dev/null 2>&1; do
			if [[ -z ${ETCD_PID[$n]} ]]; then
				ETCD_WHY="$n is not running"
				return 1
			fi
			if ! kill -0 "${ETCD_PID[$n]}" 2>/dev/null; then
				local rc=0
				wait "${ETCD_PID[$n]}" 2>/dev/null || rc=$?
				ETCD_PID[$n]=''
				ETCD_WHY="$n exited with status $rc"
				return 1
			fi
			if (($(etcd_now_ms) > end)); then
				ETCD_WHY="$n did not answer within 10 s"
				return 1
			fi
			sleep 0.05
		done
	done
	return 0
}

# etcd_signal NAME SIGNAL: signals the member and waits for it to end.
etcd_signal()
{
	local n=$1 pid=${ETCD_PID[$1]}
	[[ -n $pid ]] || return 0
	kill -"$2" "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	ETCD_PID[$n]=''
}

etcd_stop()
{
	etcd_signal "$1" TERM
}

etcd_kill()
{
	etcd_signal "$1" KILL
}

etcd_restart()
{
	local n=$1
	etcd_stop "$n"
	etcd_launch "$n"
	etcd_wait_healthy "$n" || {
		etcd_log_tail "$n" | sed 's/^/#   /' >&2
		etcd_die "$n did not come back"
	}
}

# The member name of the leader, from each living member's status.
etcd_leader()
{
	local n out id leader tls
	tls=$(etcd_ctl_tls)
	for n in "${ETCD_NAMES[@]}"; do
		[[ -n ${ETCD_PID[$n]} ]] || continue
		out=$(ETCDCTL_API=3 "$ETCDCTL_BIN" --endpoints="$(etcd_url "$n")" --dial-timeout=1s \
			--command-timeout=1s ${tls:+"$tls"} endpoint status -w json 2>/dev/null) ||
			continue
		id=$(sed -n 's/.*"member_id":\([0-9]*\).*/\1/p' <<<"$out")
		leader=$(sed -n 's/.*"leader":\([0-9]*\).*/\1/p' <<<"$out")
		if [[ -n $id && $id == "$leader" ]]; then
			echo "$n"
			return 0
		fi
	done
	return 1
}

# A CA and a server certificate for 127.0.0.1 (and localhost).
etcd_make_tls()
{
	local d=$1
	mkdir -p "$d"
	{
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mallafs-test-ca \
			-keyout "$d/ca-key.pem" -out "$d/ca.pem" &&
			openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
				-keyout "$d/server-key.pem" -out "$d/server.csr" &&
			printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$d/ext.cnf" &&
			openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca-key.pem" \
				-CAcreateserial -days 2 -extfile "$d/ext.cnf" -out "$d/server.pem"
	} >"$d/openssl.log" 2>&1 || {
		tail -n 20 "$d/openssl.log" >&2
		etcd_die "openssl could not make the test certificates"
	}
}
