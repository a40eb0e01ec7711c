#!/bin/bash
# SPDX-License-Identifier: MIT
# Watching (SPEC.md "Watching" and "events"): every change, whether it came
# through the mount or the daemon made it (a reconfiguration that changes
# config.ini, config keys, chain and plugin files; a restart that changes
# status; a registered process that exits; a key ttl expires; a store
# persist loads), reaches inotify watchers of the file and of its folder
# with the events a plain file change gives, poll() waiters (POLLPRI|POLLERR
# as sysfs, then a re-read from 0), and the events feed (whole lines, blocking
# read, EAGAIN, poll, one overflow line). Each inotify check is made twice,
# by inotifywait and by watchprobe, both watching the same change. A burst of
# 10,000 changes with watchers and a feed reader attached must end with the
# daemon answering, the last values shown and echoed, and then silence.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mfs_need sqlite3

# row_is DB KEY VALUE: the database's row of KEY holds VALUE.
row_is()
{
	[[ $(sqlite3 "$1" "select value from store where key = '$2'" 2>/dev/null) == "$3" ]]
}

if [[ -z ${WATCHPROBE:-} || ! -x $WATCHPROBE ]]; then
	mfs_bail "WATCHPROBE=${WATCHPROBE:-} is not an executable file"
fi
mfs_need inotifywait inotify-tools

# Under valgrind or a sanitizer everything is slower: wait longer for
# silence. Under TSan on two loaded cores, a restart left more than 200 ms
# between the trace's events and the status's, and the notifier's events
# of a mkdir in plugins/ came more than 600 ms after the kernel's own.
SCALE=1
if mfs_wrapper || [[ -n $(mfs_sanitizer) ]]; then
	SCALE=5
fi
SILENCE=$((200 * SCALE))
WATCH_SEQ=0
IW_OUT=''
WP_OUT=''
WP_MS=''
FEED_RE='^[0-9]+ (create|write|delete|mkdir|rmdir|rename|reconfigure|restart|status|register|unregister|plugin-add|plugin-del) [^/ ][^ ]*( .*)?$'

# -- inotify -------------------------------------------------------------------

# Lines of an inotify log as "PATH EVENTS[ NAME]" with PATH relative to the
# mount. inotifywait writes "DIR/ EVENTS NAME" and "FILE EVENTS " and adds
# CLOSE to CLOSE_WRITE; watchprobe writes "MS PATH EVENTS[ NAME]" with -T.
normalize()
{
	awk -v tool="$1" -v mnt="$MNT/" '{
		if (tool == "wp")
			sub(/^[0-9]+ /, "")
		sp = index($0, " ")
		path = substr($0, 1, sp - 1)
		rest = substr($0, sp + 1)
		sub(/\/$/, "", path)
		if (substr(path, 1, length(mnt)) == mnt)
			path = substr(path, length(mnt) + 1)
		sub(/ $/, "", rest)
		gsub(/,CLOSE,/, ",", rest)
		sub(/,CLOSE( |$)/, " ", rest)
		sub(/ $/, "", rest)
		print path " " rest
	}' "$2"
}

# watch [-s SILENCE_MS] PATH... -- CMD...: attaches inotifywait and
# watchprobe to every PATH, runs CMD once (once both watch) and collects what
# each saw until SILENCE_MS pass without an event after CMD ended.
watch()
{
	local silence=$SILENCE f iw
	if [[ $1 == -s ]]; then
		silence=$(($2 * SCALE))
		shift 2
	fi
	local -a paths=()
	while (($#)) && [[ $1 != -- ]]; do
		paths+=("$1")
		shift
	done
	shift
	WATCH_SEQ=$((WATCH_SEQ + 1))
	f=$MFS_TMP/watch$WATCH_SEQ
	inotifywait -m --format '%w %e %f' "${paths[@]}" >"$f.iw" 2>"$f.iwerr" &
	iw=$!
	MFS_CHILDREN+=("$iw")
	if ! mfs_poll 5000 grep -q 'Watches established' "$f.iwerr"; then
		fail "inotifywait sets its watches on $(mfs_cmdline "${paths[@]}")" "$(cat "$f.iwerr")"
	fi
	if ! "$WATCHPROBE" inotify -T -t $((silence + 30000)) "$silence" "${paths[@]}" -- "$@" \
		>"$f.wp" 2>"$f.wperr"; then
		fail "watchprobe inotify ... -- $(mfs_cmdline "$@")" "$(cat "$f.wperr")"
	fi
	# watchprobe saw silence: inotifywait, fed the same events, has them.
	mfs_kill_ours TERM "$iw"
	wait "$iw" 2>/dev/null
	IW_OUT=$(normalize iw "$f.iw")
	WP_OUT=$(normalize wp "$f.wp")
	WP_MS=$(cut -d' ' -f1 "$f.wp")
	WATCH_CMD=$(mfs_cmdline "$@")
}

re_escape()
{
	sed 's/[][\.*^$+?(){}|/]/\\&/g' <<<"$1"
}

# The regex of a line for PATH with EVENT among its events (and NAME).
ev_re()
{
	local path=$1 ev=$2 name=${3:-}
	local re="^$(re_escape "$path") ([A-Z_]+,)*$ev(,[A-Z_]+)*"
	if [[ -n $name ]]; then
		re+=" $(re_escape "$name")"
	fi
	printf '%s$' "$re"
}

ev_count()
{
	local out=$1
	shift
	grep -cE -- "$(ev_re "$@")" <<<"$out"
}

ev_show()
{
	local what=$1
	if [[ -z ${!what} ]]; then
		echo "(no events)"
	else
		head -n 40 <<<"${!what}"
	fi
}

# expect_ev [=N] PATH EVENT [NAME]: both watchers saw it (exactly N times).
expect_ev()
{
	local n='' tool var count what
	if [[ $1 == =* ]]; then
		n=${1#=}
		shift
	fi
	what="$WATCH_CMD: $1 gets $2${3:+ $3}${n:+ exactly $n time(s)}"
	for tool in inotifywait watchprobe; do
		var=IW_OUT
		[[ $tool == watchprobe ]] && var=WP_OUT
		count=$(ev_count "${!var}" "$@")
		if [[ -n $n && $count == "$n" ]] || [[ -z $n && $count -ge 1 ]]; then
			pass "$tool: $what"
		else
			fail "$tool: $what" "seen $count time(s); events:" "$(ev_show $var)"
		fi
	done
}

# expect_no_ev PATH EVENT [NAME]: neither watcher saw it.
expect_no_ev()
{
	expect_ev =0 "$@"
}

# The stamp (ms after CMD ended) of watchprobe's first line for PATH EVENT NAME.
ev_ms()
{
	local line
	line=$(grep -nE -- "$(ev_re "$1" "$2" "${3:-}")" <<<"$WP_OUT" | head -n 1 | cut -d: -f1)
	[[ -n $line ]] || return 1
	sed -n "${line}p" <<<"$WP_MS"
}

# expect_ms_between WHAT MIN MAX PATH EVENT [NAME]
expect_ms_between()
{
	local what=$1 min=$2 max=$3 ms
	shift 3
	ms=$(ev_ms "$@")
	if [[ -n $ms ]] && ((ms >= min && ms <= max * SCALE)); then
		pass "$what (${ms} ms)"
	else
		fail "$what: between $min and $((max * SCALE)) ms" "got: ${ms:-no such event}"
	fi
}

# -- (a) through the mount: the kernel's own events (the baseline) -------------

mfs_mount
assert_ok mkdir "$MNT/services/kv"
S=$MNT/services/kv
R=services/kv

watch "$S/store" -- sh -c "echo v1 > '$S/store/k'"
expect_ev =1 "$R/store" CREATE k
expect_ev "$R/store" MODIFY k
expect_ev =1 "$R/store" CLOSE_WRITE k

watch "$S/store" "$S/store/k" -- sh -c "echo v2 > '$S/store/k'"
expect_ev "$R/store/k" MODIFY
expect_ev =1 "$R/store/k" CLOSE_WRITE
expect_ev "$R/store" MODIFY k
expect_no_ev "$R/store" CREATE k

watch "$S/store" "$S/store/k" -- mv "$S/store/k" "$S/store/k2"
expect_ev =1 "$R/store" MOVED_FROM k
expect_ev =1 "$R/store" MOVED_TO k2
expect_ev "$R/store/k" MOVE_SELF
expect_no_ev "$R/store" DELETE k

watch "$S/store" "$S/store/k2" -- rm "$S/store/k2"
expect_ev =1 "$R/store" DELETE k2
expect_ev "$R/store/k2" DELETE_SELF
assert_ls "$S/store"

assert_ok mkdir "$MNT/config/wapp"
watch "$MNT/config/wapp" -- sh -c "echo 1 > '$MNT/config/wapp/k'; echo 2 > '$MNT/config/wapp/k'; rm '$MNT/config/wapp/k'"
expect_ev =1 config/wapp CREATE k
expect_ev config/wapp MODIFY k
expect_ev =2 config/wapp CLOSE_WRITE k
expect_ev =1 config/wapp DELETE k

# -- (b) config.ini and config keys: each changes when the other is written ----

assert_ok mkdir "$MNT/services/cf"
S=$MNT/services/cf
R=services/cf
assert_ok mkdir "$S/config/app"
assert_ok sh -c "echo 1 > '$S/config/app/k'; echo keep > '$S/config/app/o'"

watch "$S" "$S/config.ini" "$S/config/app" -- sh -c "echo 2 > '$S/config/app/k'"
expect_ev "$R/config.ini" MODIFY
expect_ev "$R/config.ini" CLOSE_WRITE
expect_ev "$R" MODIFY config.ini
expect_ev "$R" CLOSE_WRITE config.ini
expect_ev "$R/config/app" MODIFY k
# The write acted on k: the kernel saw it, the daemon echoes nothing more.
expect_ev =1 "$R/config/app" CLOSE_WRITE k
expect_no_ev "$R/config/app" MODIFY o
assert_file "$S/config.ini" $'[app]\nk = 2\no = keep\n'

watch "$S" "$S/config" "$S/config/app" "$S/config/app/k" "$S/config/app/o" -- \
	"$FSPROBE" write "$S/config.ini" $'[app]\nk = 3\nnew = 1\n[sec2]\nx = 1\n'
expect_ev "$R/config/app/k" MODIFY
expect_ev "$R/config/app/k" CLOSE_WRITE
expect_ev "$R/config/app" MODIFY k
expect_ev "$R/config/app" CLOSE_WRITE k
expect_ev =1 "$R/config/app" CREATE new
expect_ev =1 "$R/config" CREATE sec2
# Unchanged keys are not echoed; config.ini itself changed in the request.
expect_no_ev "$R/config/app/o" MODIFY
expect_no_ev "$R/config/app" MODIFY o
expect_ev =1 "$R" CLOSE_WRITE config.ini
assert_file "$S/config/app/k" $'3\n'
assert_file "$S/config/app/new" $'1\n'
assert_file "$S/config/sec2/x" $'1\n'

watch "$S" "$S/config.ini" "$S/config/app" -- rm "$S/config/app/k"
expect_ev =1 "$R/config/app" DELETE k
expect_ev "$R/config.ini" MODIFY
expect_ev "$R" CLOSE_WRITE config.ini
assert_file "$S/config.ini" $'[app]\nnew = 1\no = keep\n\n[sec2]\nx = 1\n'
# The echoes (a write of one newline to config.ini and to config keys, an
# open of config keys to create them) changed nothing.
assert_eq "$R: last_error after the echoes" - "$(status_field "$S" last_error)"
assert_eq "$R: restarts after the echoes" 0 "$(status_field "$S" restarts)"

# -- (c) chain, plugins/ and the plugins' files ---------------------------------

assert_ok mkdir "$MNT/services/ch"
S=$MNT/services/ch
R=services/ch
watch "$S" "$S/chain" "$S/config" "$S/plugins" -- mkdir "$S/plugins/limits"
expect_ev "$R/chain" MODIFY
expect_ev "$R/chain" CLOSE_WRITE
expect_ev "$R" MODIFY chain
expect_ev "$R" MODIFY config.ini
expect_ev =1 "$R/config" CREATE,ISDIR limits
expect_ev =1 "$R/plugins" CREATE,ISDIR limits
assert_file "$S/chain" $'limits\nbase\n'

# rm of a declared setting returns it to its default: the file is back.
assert_ok sh -c "echo 5 > '$S/config/limits/max_keys'"
watch "$S/config/limits" -- rm "$S/config/limits/max_keys"
expect_ev =1 "$R/config/limits" DELETE max_keys
expect_ev =1 "$R/config/limits" CREATE max_keys
assert_file "$S/config/limits/max_keys" $'0\n'

watch "$S" "$S/chain" "$S/config" -- mkdir "$S/plugins/trace"
expect_ev =1 "$R" CREATE trace
expect_ev "$R/chain" MODIFY
expect_ev =1 "$R/config" CREATE,ISDIR trace
assert_exists "$S/trace"

watch "$S" "$S/chain" "$S/config" "$S/config/limits" "$S/plugins" -- rmdir "$S/plugins/limits"
expect_ev =1 "$R/plugins" DELETE,ISDIR limits
expect_ev =1 "$R/config" DELETE,ISDIR limits
expect_ev "$R/chain" MODIFY
expect_ev "$R" MODIFY config.ini
# The section's keys went with it, as `rm -r` would remove them.
expect_ev =1 "$R/config/limits" DELETE max_keys
expect_ev =1 "$R/config/limits" DELETE max_value_bytes
assert_file "$S/chain" $'trace\nbase\n'

watch "$S" "$S/chain" "$S/config" -- rmdir "$S/plugins/trace"
expect_ev =1 "$R" DELETE trace
expect_ev =1 "$R/config" DELETE,ISDIR trace
expect_ev "$R/chain" MODIFY
assert_absent "$S/trace"
assert_eq "$R: last_error after the echoes" - "$(status_field "$S" last_error)"

# -- (d) status: restarts and admin changes -------------------------------------

assert_ok mkdir "$MNT/services/st"
S=$MNT/services/st
R=services/st
assert_ok mkdir "$S/plugins/exec"
assert_ok mkdir "$S/plugins/trace"
assert_ok mkdir "$S/config/app"
assert_ok sh -c "echo kept > '$S/store/k'"
restarts=$(status_field "$S" restarts)

# on_update needs a restart itself; from then on it asks for one each time.
watch "$S" "$S/status" "$S/trace" "$S/store" -- sh -c "echo 'exit 75' > '$S/config/exec/on_update'"
expect_ev "$R/status" MODIFY
expect_ev "$R/status" CLOSE_WRITE
expect_ev "$R" MODIFY status
expect_ev "$R" CLOSE_WRITE status
expect_ev "$R/trace" MODIFY
# The store outlives the restart: nothing happens to it.
expect_no_ev "$R/store" DELETE k
expect_no_ev "$R/store" CREATE k
expect_no_ev "$R/store" MODIFY k
assert_file "$S/store/k" $'kept\n'
assert_eq "$R: one restart more" $((restarts + 1)) "$(status_field "$S" restarts)"

watch "$S/status" -- sh -c "echo 1 > '$S/config/app/x'"
expect_ev "$R/status" MODIFY
expect_ev "$R/status" CLOSE_WRITE
assert_eq "$R: on_update exiting 75 restarts" $((restarts + 2)) "$(status_field "$S" restarts)"
assert_match "$R: last_restart names exec" 'exec' "$(status_field "$S" last_restart)"

assert_ok mkdir "$S/plugins/persist"

watch "$S" "$S/status" -- sh -c "echo inactive > '$S/status'"
expect_ev "$R/status" MODIFY
expect_ev =1 "$R/status" CLOSE_WRITE
assert_eq "$R: state after echo inactive" stopped "$(status_field "$S" state)"
watch "$S/status" -- sh -c "echo active > '$S/status'"
expect_ev "$R/status" MODIFY
assert_eq "$R: state after echo active" running "$(status_field "$S" state)"

# A restart for a setting that needs one (persist's path).
assert_ok mkdir "$MNT/services/sp"
S=$MNT/services/sp
R=services/sp
assert_ok mkdir "$S/plugins/persist"
watch "$S" "$S/status" -- sh -c "echo '$MFS_TMP/sp.store' > '$S/config/persist/path'"
expect_ev "$R/status" MODIFY
expect_ev "$R/status" CLOSE_WRITE
expect_ev "$R" MODIFY status
assert_eq "$R: one restart" 1 "$(status_field "$S" restarts)"
assert_match "$R: last_restart names persist" 'persist' "$(status_field "$S" last_restart)"

# -- (e) a registration removed when its process exits --------------------------

mfs_spawn P1 sleep 120
mfs_spawn P2 sleep 120
# Through the mount first: registrations are files.
assert_ok mkdir "$MNT/registry/pool"
watch "$MNT/registry" "$MNT/registry/pool" -- sh -c "echo '$P1 value' > '$MNT/registry/uniq';
	echo a > '$MNT/registry/pool/$P1'; echo b > '$MNT/registry/pool/$P2';
	echo '$P1 other' > '$MNT/registry/uniq'; echo '$P2' > '$MNT/registry/gone';
	rm '$MNT/registry/gone'"
expect_ev =1 registry CREATE uniq
expect_ev registry MODIFY uniq
expect_ev =2 registry CLOSE_WRITE uniq
expect_ev =1 registry/pool CREATE "$P1"
expect_ev =1 registry/pool CREATE "$P2"
expect_ev =1 registry CREATE gone
expect_ev =1 registry DELETE gone
assert_file "$MNT/registry/uniq" "$P1 other"$'\n'
watch -s 500 "$MNT/registry" "$MNT/registry/pool" "$MNT/registry/uniq" -- kill -9 "$P1"
expect_ev =1 registry DELETE uniq
expect_ev registry/uniq DELETE_SELF
expect_ev =1 registry/pool DELETE "$P1"
expect_no_ev registry/pool DELETE "$P2"
# SPEC.md: within 100 ms. Some slack for a loaded machine.
expect_ms_between "registry/uniq goes soon after its process" 0 300 registry DELETE uniq
expect_ms_between "registry/pool/$P1 goes soon after its process" 0 300 registry/pool DELETE "$P1"
assert_ls "$MNT/registry" pool
assert_ls "$MNT/registry/pool" "$P2"
mfs_kill_child "$P1"

# -- (f) a key expired by ttl ---------------------------------------------------

assert_ok mkdir "$MNT/services/tt"
S=$MNT/services/tt
R=services/tt
assert_ok mkdir "$S/plugins/ttl"
assert_ok sh -c "echo 1 > '$S/config/ttl/seconds'"
assert_ok sh -c "echo 0 > '$S/store/a'"
watch -s 1500 "$S/store" "$S/store/a" -- sh -c "echo 1 > '$S/store/a'; echo 2 > '$S/store/b'"
expect_ev =1 "$R/store" DELETE a
expect_ev =1 "$R/store" DELETE b
expect_ev "$R/store/a" DELETE_SELF
expect_ms_between "ttl: store/b expires 1 s after its write" 900 2500 "$R/store" DELETE b
assert_ls "$S/store"

# -- (g) a store loaded by persist ----------------------------------------------

F=$MFS_TMP/load.store
assert_ok mkdir "$MNT/services/pa"
assert_ok mkdir "$MNT/services/pa/plugins/persist"
assert_ok sh -c "echo '$F' > '$MNT/services/pa/config/persist/path'"
assert_ok sh -c "echo one > '$MNT/services/pa/store/a'; echo two > '$MNT/services/pa/store/b'"
if ! mfs_poll 5000 row_is "$F" b two; then
	fail "persist writes $F" "$(od -c "$F" 2>&1 | head -n 5)"
fi
assert_ok mkdir "$MNT/services/pb"
S=$MNT/services/pb
R=services/pb
assert_ok mkdir "$S/plugins/persist"
assert_ok sh -c "echo old > '$S/store/a'; echo mine > '$S/store/c'"
watch "$S/store" "$S/store/a" "$S/status" -- sh -c "echo '$F' > '$S/config/persist/path'"
expect_ev =1 "$R/store" CREATE b
expect_ev "$R/store" MODIFY a
expect_ev "$R/store/a" MODIFY
expect_no_ev "$R/store" CREATE a
expect_no_ev "$R/store" CREATE c
expect_no_ev "$R/store" MODIFY c
expect_ev "$R/status" MODIFY
assert_file "$S/store/a" $'one\n'
assert_file "$S/store/b" $'two\n'
assert_file "$S/store/c" $'mine\n'

# -- (h) plugin files that change with the store --------------------------------

assert_ok mkdir "$MNT/services/pf"
S=$MNT/services/pf
R=services/pf
assert_ok mkdir "$S/plugins/trace"
assert_ok mkdir "$S/plugins/metrics"
watch "$S" "$S/trace" "$S/metrics" -- sh -c "echo x > '$S/store/k'"
expect_ev "$R/trace" MODIFY
expect_ev "$R/trace" CLOSE_WRITE
expect_ev "$R" MODIFY trace
expect_ev "$R/metrics" MODIFY
expect_ev "$R" MODIFY metrics
assert_match "$R: trace shows the write" 'k' "$(tail -n 1 "$S/trace")"
watch "$S/trace" -- sh -c "echo 50 > '$S/config/trace/lines'"
expect_ev "$R/trace" MODIFY

# -- (i) a service removed with its keys and sections ---------------------------

assert_ok mkdir "$MNT/services/rm"
S=$MNT/services/rm
R=services/rm
assert_ok mkdir "$S/config/app"
assert_ok sh -c "echo 1 > '$S/store/a'; echo 2 > '$S/store/b'; echo 3 > '$S/config/app/k'"
watch "$MNT/services" "$S" "$S/store" "$S/store/a" "$S/config/app" -- rmdir "$S"
expect_ev =1 services DELETE,ISDIR rm
expect_ev "$R" DELETE_SELF
# Known gap: watchers inside the removed service (of store/, a key,
# config/app/) are not told of each key going; rmdir of a folder that
# holds files is not something tmpfs allows either, so only the removed
# folder's own events are asserted. The service and its keys are gone:
assert_absent "$S"
assert_absent "$S/store/a"

# -- poll(): POLLPRI|POLLERR on a change made through another file --------------

assert_ok mkdir "$MNT/services/pl"
S=$MNT/services/pl
R=services/pl
assert_ok mkdir "$S/plugins/exec"
assert_ok mkdir "$S/plugins/trace"
assert_ok mkdir "$S/plugins/metrics"
assert_ok mkdir "$S/config/app"
assert_ok sh -c "echo 1 > '$S/config/app/k'"

# No change since open and read: no wake-up, as sysfs (all at once).
files=(status config.ini config/app/k chain trace metrics)
pids=()
for i in "${!files[@]}"; do
	"$WATCHPROBE" poll $((300 * SCALE)) "$S/${files[$i]}" >"$MFS_TMP/nopoll$i" 2>&1 &
	pids+=($!)
done
MFS_CHILDREN+=("${pids[@]}")
wait "${pids[@]}"
for i in "${!files[@]}"; do
	assert_eq "poll $R/${files[$i]} with no change: no POLLPRI" $'timeout\nagain: timeout' \
		"$(head -n 2 "$MFS_TMP/nopoll$i")"
done

# poll_wakes FILE CONTENT_REGEX CMD...: a poll() on FILE (read first) wakes
# with POLLPRI|POLLERR within 1 s of CMD's change, the re-read from 0 shows
# CONTENT_REGEX, and a poll after it sleeps.
poll_wakes()
{
	local file=$1 re=$2 out first again text ms
	shift 2
	out=$("$WATCHPROBE" poll $((1500 * SCALE)) "$S/$file" -- sh -c "sleep 0.1; { $*; } >/dev/null" 2>&1)
	first=$(sed -n 1p <<<"$out")
	again=$(sed -n 2p <<<"$out")
	text=$(sed 1,2d <<<"$out")
	ms=$(sed -n 's/.* ms=//p' <<<"$first")
	local what="poll $R/$file, then $(mfs_cmdline "$@")"
	if [[ $first == *POLLPRI* && $first == *POLLERR* ]] && ((ms <= 1200 * SCALE)); then
		pass "$what: POLLPRI|POLLERR within 1 s (the change began 100 ms into a $ms ms poll)"
	else
		fail "$what: POLLPRI|POLLERR within 1 s" "got: $first"
	fi
	assert_match "$what: the re-read from 0 shows the change" "$re" "$text"
	assert_eq "$what: no POLLPRI once read again" "again: timeout" "$again"
}

poll_wakes config.ini 'k = 2' "echo 2 > '$S/config/app/k'"
poll_wakes config/app/k '^3$' "$FSPROBE write '$S/config.ini' '[app]
k = 3
'"
poll_wakes chain '^limits' "mkdir '$S/plugins/limits'"
poll_wakes status 'restarts: 1' "echo 'exit 75' > '$S/config/exec/on_update'"
poll_wakes status 'state: paused' "echo pause > '$S/status'"
poll_wakes trace 'put k' "echo 1 > '$S/store/k'"
poll_wakes metrics 'mallafs_store_keys[^ ]* 2' "echo 1 > '$S/store/m'"

# -- the events feed ------------------------------------------------------------

# feed_check WHAT TEXT: every line has the format, seqs go up by one.
feed_check()
{
	local what=$1 text=$2 bad prev='' seq gap=''
	bad=$(grep -vE -- "$FEED_RE" <<<"$text" | head -n 5)
	if [[ -z $text ]]; then
		fail "$what: the feed gave lines"
	elif [[ -z $bad ]]; then
		pass "$what: every line is SEQ OP PATH [DETAIL]"
	else
		fail "$what: every line is SEQ OP PATH [DETAIL]" "$bad"
	fi
	while read -r seq _; do
		if [[ -n $prev && $seq != $((prev + 1)) ]]; then
			gap="$prev then $seq"
			break
		fi
		prev=$seq
	done <<<"$text"
	assert_eq "$what: seq goes up by one" '' "$gap"
}

# feed_has WHAT TEXT OP PATH [DETAIL]
feed_has()
{
	local re="^[0-9]+ $2 $(re_escape "$3")"
	if [[ -n ${4:-} ]]; then
		re+=" $(re_escape "$4")"
	fi
	if grep -qE -- "$re( |$)" <<<"$1"; then
		pass "feed: $2 $3${4:+ $4}"
	else
		fail "feed: $2 $3${4:+ $4}" "$(head -n 40 <<<"$1")"
	fi
}

# One of each operation, read on one open feed.
exec {FEED}<"$MNT/events" || mfs_bail "open events"
S=$MNT/services/fd
R=services/fd
mfs_spawn P3 sleep 120
assert_ok mkdir "$S"
assert_ok sh -c "echo a > '$S/store/k'"
assert_ok mv "$S/store/k" "$S/store/k2"
assert_ok rm "$S/store/k2"
assert_ok mkdir "$S/plugins/exec"
assert_ok sh -c "echo 'exit 75' > '$S/config/exec/on_update'"
assert_ok sh -c "echo pause > '$S/status'"
assert_ok rmdir "$S/plugins/exec"
assert_ok sh -c "echo $P3 > '$MNT/registry/fdname'"
assert_ok rm "$MNT/registry/fdname"
assert_ok rmdir "$S"
feed=$("$WATCHPROBE" feed-read "$FEED" $((300 * SCALE)))
assert_eq "feed-read: whole lines" 0 $?
feed_check "one open feed" "$feed"
feed_has "$feed" mkdir "$R"
feed_has "$feed" create "$R/store/k"
feed_has "$feed" write "$R/store/k"
feed_has "$feed" rename "$R/store/k" "$R/store/k2"
feed_has "$feed" delete "$R/store/k2"
feed_has "$feed" plugin-add "$R/plugins/exec"
feed_has "$feed" reconfigure "$R"
feed_has "$feed" restart "$R"
feed_has "$feed" status "$R/status"
feed_has "$feed" plugin-del "$R/plugins/exec"
feed_has "$feed" register registry/fdname "$P3"
feed_has "$feed" unregister registry/fdname
feed_has "$feed" rmdir "$R"
# The echoes are not changes: nothing of config.ini, chain, status or trace
# as a file operation.
assert_eq "feed: no file operation on derived files (no echo fed back)" '' \
	"$(grep -E '^[0-9]+ (create|write|delete|rename) services/[^/]+/(config\.ini|chain|status|trace|config/)' <<<"$feed")"
mfs_kill_child "$P3"

# A blocking read() returns when a change comes, and not before.
feedlog=$MFS_TMP/feed.cat
bash -c "exec cat '$MNT/events' > '$feedlog'" </dev/null &
catpid=$!
MFS_CHILDREN+=("$catpid")
sleep 0.3
if mfs_alive "$catpid" && [[ ! -s $feedlog ]]; then
	pass "cat events blocks while nothing changes"
else
	fail "cat events blocks while nothing changes" "$(cat "$feedlog")"
fi
assert_ok mkdir "$MNT/services/blk"
if mfs_poll $((2000 * SCALE)) grep -qE '^[0-9]+ mkdir services/blk$' "$feedlog"; then
	pass "cat events returns the change within 2 s"
else
	fail "cat events returns the change within 2 s" "$(cat "$feedlog")"
fi
mfs_kill_child "$catpid"

# O_NONBLOCK: EAGAIN when nothing is new.
assert_eq "read of the feed with O_NONBLOCK" $'open: EAGAIN\nfcntl: EAGAIN' \
	"$("$WATCHPROBE" feed-nonblock "$MNT/events" 2>&1)"

# poll(): POLLIN once there is something to read.
out=$("$WATCHPROBE" feed-poll $((3000 * SCALE)) "$MNT/events" -- \
	sh -c "sleep 0.2; mkdir '$MNT/services/fp'" 2>&1)
assert_eq "poll on a fresh feed: nothing to read" 'before: none' "$(sed -n 1p <<<"$out")"
assert_match "poll on the feed wakes with POLLIN" '^woken revents=POLLIN' "$(sed -n 2p <<<"$out")"
assert_match "the read after the poll gives the change" '^[0-9]+ mkdir services/fp$' \
	"$(sed -n 3p <<<"$out")"

# A reader that falls behind: one overflow line, then the newer events.
exec {SLOW}<"$MNT/events" || mfs_bail "open events"
assert_ok "$WATCHPROBE" write-loop "$MNT/services/fp/store/k" 5000 v
feed=$("$WATCHPROBE" feed-read "$SLOW" $((300 * SCALE)))
assert_match "a reader behind by over 5,000 events (the ring keeps 4096): the first line is SEQ overflow" \
	'^[0-9]+ overflow$' "$(head -n 1 <<<"$feed")"
assert_eq "exactly one overflow line" 1 "$(grep -c overflow <<<"$feed")"
first=$(head -n 1 <<<"$feed" | cut -d' ' -f1)
assert_ok sh -c "echo after > '$MNT/services/fp/store/later'"
feed2=$("$WATCHPROBE" feed-read "$SLOW" $((300 * SCALE)))
feed_check "after the overflow" "$feed2"
feed_has "$feed2" create services/fp/store/later
assert_eq "no second overflow line" 0 "$(grep -c overflow <<<"$feed2")"
next=$(head -n 1 <<<"$feed2" | cut -d' ' -f1)
if [[ -n $next ]] && ((next > first + 5000)); then
	pass "after the overflow, the reader goes on from the newest events ($next)"
else
	fail "after the overflow, the reader goes on from the newest events" \
		"overflow at $first, next line: $(head -n 1 <<<"$feed2")"
fi
exec {SLOW}<&- {FEED}<&-

# -- a burst of 10,000 changes with watchers attached ---------------------------

assert_ok mkdir "$MNT/services/burst"
S=$MNT/services/burst
R=services/burst
assert_ok mkdir "$S/config/app"
assert_ok mkdir "$S/plugins/trace"
assert_ok mkdir "$MNT/services/bttl"
T=$MNT/services/bttl
assert_ok mkdir "$T/plugins/ttl"
assert_ok sh -c "echo 1 > '$T/config/ttl/seconds'"

bw=$MFS_TMP/burst
inotifywait -m --format '%w %e %f' "$S" "$S/config.ini" "$S/config/app" "$S/store" "$T/store" \
	>"$bw.iw" 2>"$bw.iwerr" &
biw=$!
MFS_CHILDREN+=("$biw")
mfs_poll 5000 grep -q 'Watches established' "$bw.iwerr" ||
	fail "burst: inotifywait sets its watches" "$(cat "$bw.iwerr")"
bash -c "exec cat '$MNT/events' > '$bw.feed'" </dev/null &
bcat=$!
MFS_CHILDREN+=("$bcat")
# An entr-like watcher: reads config.ini again on every IN_CLOSE_WRITE
# (two processes joined by a FIFO, so that each can be killed by its pid).
mkfifo "$bw.fifo" || mfs_bail "mkfifo"
inotifywait -m -e close_write "$S/config.ini" >"$bw.fifo" 2>"$bw.entr.err" &
bentr_iw=$!
bash -c "while read -r _; do
	cat '$S/config.ini' > '$bw.entr.tmp' && mv '$bw.entr.tmp' '$bw.entr'; done" <"$bw.fifo" &
bentr=$!
MFS_CHILDREN+=("$bentr_iw" "$bentr")
mfs_poll 5000 grep -q 'Watches established' "$bw.entr.err" ||
	fail "burst: the entr-like watcher sets its watch" "$(cat "$bw.entr.err")"

start=$(mfs_now_ms)
pids=()
for i in 1 2 3 4; do
	"$WATCHPROBE" write-loop "$S/config/app/k$i" 2250 v >"$bw.w$i" 2>&1 &
	pids+=($!)
done
"$WATCHPROBE" write-loop "$S/store/s" 1000 v >"$bw.w5" 2>&1 &
pids+=($!)
(for i in $(seq 1 100); do echo "$i" >"$T/store/t$i" || exit 1; done) >"$bw.w6" 2>&1 &
pids+=($!)
MFS_CHILDREN+=("${pids[@]}")
# While the burst runs, the daemon answers others.
sleep 0.1
if out=$(timeout 2 cat "$MNT/services/kv/status" 2>&1); then
	pass "burst: cat status of another service answers within 2 s during the burst"
else
	fail "burst: cat status of another service answers within 2 s during the burst" "$out"
fi
deadline=$(($(mfs_now_ms) + 60000 * SCALE))
for p in "${pids[@]}"; do
	while mfs_alive "$p" && (($(mfs_now_ms) < deadline)); do
		sleep 0.05
	done
done
burst_ok=1
for p in "${pids[@]}"; do
	if mfs_alive "$p"; then
		burst_ok=0
	elif ! wait "$p"; then
		burst_ok=0
	fi
done
if ((burst_ok)); then
	pass "burst: 10,000 config and store writes and 100 ttl'd keys end, no deadlock ($(($(mfs_now_ms) - start)) ms)"
else
	fail "burst: the writers end within 60 s, no deadlock" "$(cat "$bw".w*)"
fi
if out=$(timeout 2 cat "$S/status" 2>&1); then
	pass "burst: cat status answers within 2 s afterwards"
else
	fail "burst: cat status answers within 2 s afterwards" "$out"
fi
for i in 1 2 3 4; do
	assert_file "$S/config/app/k$i" $'v2250\n'
done
assert_match "burst: config.ini shows the last values" \
	'k1 = v2250.k2 = v2250.k3 = v2250.k4 = v2250' "$(tr '\n' . <"$S/config.ini")"
assert_file "$S/store/s" $'v1000\n'

# The feedback check: once the writers are done, the echoes end within 1 s.
quiet=$("$WATCHPROBE" inotify -c -T -t $((8000 * SCALE)) $((2000 * SCALE)) "$S" "$S/config.ini" \
	"$S/config/app" "$S/store" "$MNT/services" 2>&1)
last=$(tail -n 1 <<<"$quiet" | cut -d' ' -f1)
if [[ $quiet != *deadline* ]] && { [[ -z $quiet ]] || ((last <= 1000 * SCALE)); }; then
	pass "burst: the echoes stop within 1 s (then 2 s of silence): no feedback loop"
else
	fail "burst: the echoes stop within 1 s (then 2 s of silence): no feedback loop" \
		"$(tail -n 10 <<<"$quiet")"
fi
# ttl's keys all go (1 s after their write), each seen deleted.
if mfs_poll $((4000 * SCALE)) eval "[[ -z \$(ls -A '$T/store') ]]"; then
	pass "burst: ttl expired the 100 keys"
else
	fail "burst: ttl expired the 100 keys" "$(ls "$T/store" | head)"
fi
sleep 0.3
mfs_kill_ours TERM "$biw"
wait "$biw" 2>/dev/null
mfs_kill_child "$bcat"

biw_out=$(normalize iw "$bw.iw")
assert_eq "burst: inotifywait's queue did not overflow" 0 "$(grep -c Q_OVERFLOW <<<"$biw_out")"
mods=$(grep -cxF "$R/config.ini MODIFY" <<<"$biw_out")
if ((mods >= 1 && mods <= 9000)); then
	pass "burst: 9,000 config changes give $mods IN_MODIFY on config.ini (one echo per change at most)"
else
	fail "burst: 9,000 config changes give between 1 and 9,000 IN_MODIFY on config.ini" "got $mods"
fi
# The last change came after the last writer's open of a key (the latest
# change is after every writer's last open), so its echo comes after that
# open in the same inotify queue: the final state was reported.
last_mod=$(grep -nE "^$(re_escape "$R/config/app") MODIFY k[1-4]$" <<<"$biw_out" |
	tail -n 1 | cut -d: -f1)
last_open=$(head -n "${last_mod:-0}" <<<"$biw_out" |
	grep -nE "^$(re_escape "$R/config/app") OPEN k[1-4]$" | tail -n 1 | cut -d: -f1)
last_ini=$(grep -nxF "$R/config.ini MODIFY" <<<"$biw_out" | tail -n 1 | cut -d: -f1)
if [[ -n $last_open && -n $last_ini ]] && ((last_ini > last_open)); then
	pass "burst: an IN_MODIFY on config.ini comes after the last change began"
else
	fail "burst: an IN_MODIFY on config.ini comes after the last change began" \
		"last open of a key at event ${last_open:-none}, last config.ini echo at ${last_ini:-none}"
fi
# The entr-like watcher's last read shows the final values.
if mfs_poll $((5000 * SCALE)) eval "grep -q 'k4 = v2250' '$bw.entr' 2>/dev/null &&
	grep -q 'k1 = v2250' '$bw.entr' && grep -q 'k2 = v2250' '$bw.entr' &&
	grep -q 'k3 = v2250' '$bw.entr'"; then
	pass "burst: a watcher that re-reads config.ini on IN_CLOSE_WRITE ends with the last values"
else
	fail "burst: a watcher that re-reads config.ini on IN_CLOSE_WRITE ends with the last values" \
		"its last read: $(grep '^k' "$bw.entr" 2>&1 | tr '\n' ' ')"
fi
mfs_kill_child "$bentr_iw"
mfs_kill_child "$bentr"
dels=$(grep -cE "^$(re_escape "services/bttl/store") DELETE t[0-9]+$" <<<"$biw_out")
assert_eq "burst: 100 IN_DELETE on the ttl'd store" 100 "$dels"
feed=$(cat "$bw.feed")
# Past its last overflow line (if it fell behind), the reader's seqs go on by one.
n=$(grep -n ' overflow$' <<<"$feed" | tail -n 1 | cut -d: -f1)
feed_check "burst: the feed reader" "$(tail -n +$((${n:-0} + 1)) <<<"$feed")"
assert_eq "burst: the feed reader's lines all have the format" '' \
	"$(grep -vE -- "$FEED_RE|^[0-9]+ overflow$" <<<"$feed" | head -n 3)"
feed_has "$feed" delete services/bttl/store/t100

mfs_unmount
mfs_done
