#!/bin/bash
# SPDX-License-Identifier: MIT
# services/NAME/plugins/, the built-in plugins and external plugins
# (SPEC.md): mkdir adds a plugin on top of the chain with the plugins it
# depends on below it, rmdir and rm -r remove it with the dependencies only
# it pulled in, with SPEC.md's errors (EEXIST, ENOENT, ELOOP, EINVAL, EBUSY),
# each leaving the chain as it was; the plugin's files and configuration
# section come and go with it. Then each built-in plugin's settings and
# errors: limits (EFBIG, ENOSPC, live), trace (lines, what it records),
# metrics (Prometheus text, counters that move), ttl (expiry, a rewrite
# postpones it), exec (on_start and on_stop as the service stops and starts,
# a failing on_start), persist (the store back byte-exact after a daemon
# restart, a corrupt file failing the service visibly, a new path restarting
# it). External plugins: contrib's readonly.so from --plugin-dir, a wrong ABI
# version (EINVAL naming it), built-in names first, dependencies and cycles
# between plugins built here from test_plugins_dep.c; the header that
# `meson install` installs, and a plugin built against it.
#
# Environment, besides lib.sh's: READONLY_SO (contrib's readonly.so, default
# build/contrib/readonly.so of this source tree), CC (default cc) and
# MALLAFS_INCLUDE (the folder holding mallafs-plugin.h, default core/).
# The meson install check runs `meson install --no-rebuild --destdir` in the
# build folder that holds $MALLAFS (MALLAFS_BUILD_DIR to name another).

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mfs_need sqlite3

# row_is DB KEY VALUE: the database's row of KEY holds VALUE.
row_is()
{
	[[ $(sqlite3 "$1" "select value from store where key = '$2'" 2>/dev/null) == "$3" ]]
}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
READONLY_SO=${READONLY_SO:-$SRC/build/contrib/readonly.so}
MALLAFS_INCLUDE=${MALLAFS_INCLUDE:-$SRC/core}
CC=${CC:-cc}
PDIR=$MFS_TMP/plugins
mkdir -p "$PDIR" "$MFS_TMP/persist"
export TEST_PLUGINS_LOG=$MFS_TMP/plugins.log
: >"$TEST_PLUGINS_LOG"

[[ -r $READONLY_SO ]] || mfs_bail "READONLY_SO=$READONLY_SO: no such plugin (is contrib/ built?)"
[[ -r $MALLAFS_INCLUDE/mallafs-plugin.h ]] ||
	mfs_bail "MALLAFS_INCLUDE=$MALLAFS_INCLUDE holds no mallafs-plugin.h"

# build NAME SOURCE [CFLAGS...]: PDIR/NAME.so
build()
{
	local name=$1 src=$2 out
	shift 2
	out=$("$CC" -shared -fPIC -Wall -I"$MALLAFS_INCLUDE" "$@" -o "$PDIR/$name.so" "$src" 2>&1) ||
		mfs_bail "build the test plugin $name.so with $CC" "$out"
}

# The wrong-ABI plugin, as a third party with a stale header would build it.
cat >"$MFS_TMP/badabi.c" <<'EOF'
#include <mallafs-plugin.h>
const struct mallafs_plugin mallafs_plugin = {.abi = 999, .size = sizeof(struct mallafs_plugin),
					      .name = "badabi"};
EOF
build badabi "$MFS_TMP/badabi.c"
# A shared object that is no plugin at all.
printf 'int not_a_plugin = 1;\n' >"$MFS_TMP/noexport.c"
build noexport "$MFS_TMP/noexport.c"
DEP=$HERE/test_plugins_dep.c
build depmid "$DEP" -DDEP_NAME='"depmid"'
build deptop "$DEP" -DDEP_NAME='"deptop"' -DDEP_ON='"depmid"'
build needslimits "$DEP" -DDEP_NAME='"needslimits"' -DDEP_ON='"limits"'
build cyca "$DEP" -DDEP_NAME='"cyca"' -DDEP_ON='"cycb"'
build cycb "$DEP" -DDEP_NAME='"cycb"' -DDEP_ON='"cyca"'
build orphan "$DEP" -DDEP_NAME='"orphan"' -DDEP_ON='"nosuchdep"'
build misnamed "$DEP" -DDEP_NAME='"misnamed"' -DDEP_SELF='"other"'
# A plugin file named like a built-in one: the built-in one wins, so this
# one (which the daemon would refuse) is never even loaded.
build limits "$DEP" -DDEP_NAME='"limits"' -DDEP_ABI=999

# -- helpers -----------------------------------------------------------------

# chain_is SERVICE_DIR NAME...: chain lists these, top to bottom, and
# plugins/ the same names.
chain_is()
{
	local svc=$1
	shift
	assert_file "$svc/chain" "$(printf '%s\n' "$@")"$'\n'
	assert_ls "$svc/plugins" "$@"
}

# metric SERVICE_DIR NAME: the sample's value.
metric()
{
	sed -n "s/^$2{service=\"${1##*/}\"} //p" "$1/metrics"
}

log_is()
{
	assert_eq "$1" "$2" "$(cat "$TEST_PLUGINS_LOG")"
	: >"$TEST_PLUGINS_LOG"
}

# flip_byte FILE OFFSET: xors one byte with 0x55.
flip_byte()
{
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	# shellcheck disable=SC2059
	printf "$(printf '\\%03o' $(((b ^ 0x55) & 255)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# =============================================================================
# The first daemon: contrib's plugin folder.

mfs_mount --plugin-dir="$(dirname "$READONLY_SO")"

# == the chain ================================================================

S=$MNT/services/p
assert_ok mkdir "$S"
chain_is "$S" base
assert_ls "$S" chain config config.ini plugins status store
assert_ok bash -c "echo v > '$S/store/k'"

# A plugin added goes on top.
assert_ok mkdir "$S/plugins/limits"
chain_is "$S" limits base
assert_ok mkdir "$S/plugins/trace"
chain_is "$S" trace limits base
assert_ok mkdir "$S/plugins/metrics"
chain_is "$S" metrics trace limits base
# Their files and their sections, with the defaults.
assert_ls "$S" chain config config.ini metrics plugins status store trace
assert_ls "$S/config" limits trace
assert_ls "$S/config/limits" max_bytes max_keys max_value_bytes
assert_ls "$S/config/trace" lines
assert_file "$S/config/trace/lines" $'100\n'
assert_ls "$S/plugins/limits"
assert_file "$S/store/k" $'v\n'
assert_eq "status after adding plugins" running "$(status_field "$S" state)"
assert_eq "no restart from adding plugins" 0 "$(status_field "$S" restarts)"

# Errors, each leaving the chain as it was, with a reason in last_error.
before=$(status_field "$S" last_error)
assert_fails_with ENOENT mkdir "$S/plugins/nosuch"
assert_error_changed "mkdir plugins/nosuch" "$S" "$before"
assert_errno ENOENT mkdir "$S/plugins/nosuch"
assert_absent "$S/plugins/nosuch"
before=$(status_field "$S" last_error)
assert_errno EEXIST mkdir "$S/plugins/trace"
assert_fails_with EEXIST mkdir "$S/plugins/base"
assert_errno EINVAL mkdir "$S/plugins/bad name"
assert_error_changed "mkdir 'plugins/bad name'" "$S" "$before"
before=$(status_field "$S" last_error)
assert_fails_with EBUSY rmdir "$S/plugins/base"
assert_errno EBUSY rmdir "$S/plugins/base"
assert_error_changed "rmdir plugins/base" "$S" "$before"
assert_errno ENOENT rmdir "$S/plugins/nosuch"
assert_errno ENOENT rmdir "$S/plugins/ttl"
chain_is "$S" metrics trace limits base
assert_errno 'EPERM|EACCES' creat "$S/plugins/file"
assert_errno 'EPERM|EACCES' creat "$S/plugins/trace/file"
assert_errno 'EPERM|EACCES' mkdir "$S/plugins/trace/sub"

# rmdir and rm -r remove; the plugin's file and section go with it.
assert_ok rmdir "$S/plugins/trace"
chain_is "$S" metrics limits base
assert_absent "$S/trace"
assert_absent "$S/config/trace"
assert_ls "$S/config" limits
assert_ok rm -r "$S/plugins/metrics"
chain_is "$S" limits base
assert_absent "$S/metrics"
assert_ls "$S" chain config config.ini plugins status store
assert_ok rmdir "$S/plugins/limits"
chain_is "$S" base
assert_ls "$S/config"
assert_file "$S/store/k" $'v\n'
# Configuration set for a plugin outlives its removal and applies again.
assert_ok mkdir "$S/plugins/limits"
assert_ok bash -c "echo 7 > '$S/config/limits/max_keys'"
assert_ok rmdir "$S/plugins/limits"
assert_ok mkdir "$S/plugins/limits"
assert_file "$S/config/limits/max_keys" $'7\n'
assert_ok rm "$S/config/limits/max_keys"

# == limits =====================================================================

L=$S/config/limits
assert_ok bash -c "echo 10 > '$L/max_value_bytes'"
assert_fails_with EFBIG bash -c "head -c 11 /dev/zero > '$S/store/big'"
assert_errno EFBIG pwrite "$S/store/k" 0123456789A 0
assert_errno EFBIG pwrite "$S/store/k" 0123456789 1
assert_file "$S/store/k" $'v\n'
assert_write OK "$S/store/k" 0123456789
assert_file "$S/store/k" 0123456789
assert_fails_with EFBIG bash -c "printf x >> '$S/store/k'"
assert_errno EFBIG truncate "$S/store/k" 11
assert_file "$S/store/k" 0123456789
assert_reason "a value too large" "$S" "max_value_bytes"
# Live: a larger limit applies at once, without a restart.
assert_ok bash -c "echo 20 > '$L/max_value_bytes'"
assert_write OK "$S/store/k" 0123456789A
assert_eq "no restart from a limits change" 0 "$(status_field "$S" restarts)"
assert_ok bash -c "echo 0 > '$L/max_value_bytes'"
assert_ok bash -c "head -c 100000 /dev/zero > '$S/store/big'"
# max_keys: the store holds k and big.
assert_ok bash -c "echo 3 > '$L/max_keys'"
assert_ok bash -c "echo 3 > '$S/store/k3'"
assert_fails_with ENOSPC bash -c "echo 4 > '$S/store/k4'"
assert_errno ENOSPC creat "$S/store/k4"
assert_absent "$S/store/k4"
assert_ls "$S/store" big k k3
assert_reason "a key too many" "$S" "max_keys"
# A rename adds no key; a delete makes room.
assert_ok mv "$S/store/k3" "$S/store/k4"
assert_ok rm "$S/store/big"
assert_ok bash -c "echo 5 > '$S/store/k5'"
assert_ls "$S/store" k k4 k5
# Bad settings: EINVAL, echo says so, the old value stays.
for bad in abc -1 ' 4' 4x 1.5 99999999999999999999; do
	assert_write EINVAL "$L/max_keys" "$bad"
done
assert_fails_with EINVAL bash -c "echo abc > '$L/max_keys'"
assert_fails_with EINVAL bash -c "echo abc > '$L/max_value_bytes'"
assert_file "$L/max_keys" $'3\n'
assert_file "$L/max_value_bytes" $'0\n'
assert_reason "max_keys = abc" "$S" "abc"
# Live: a larger max_keys takes at once.
assert_ok bash -c "echo 4 > '$L/max_keys'"
assert_ok bash -c "echo 6 > '$S/store/k6'"
assert_ok rm "$L/max_keys"
assert_ok bash -c "for i in \$(seq 1 20); do echo \$i > '$S/store/n'\$i || exit 1; done"
assert_eq "no restart from limits changes" 0 "$(status_field "$S" restarts)"
assert_ok rmdir "$S/plugins/limits"
assert_ok rmdir "$S"

# == trace and metrics ==========================================================

S=$MNT/services/tm
assert_ok mkdir "$S"
assert_ok mkdir "$S/plugins/metrics"
assert_ok mkdir "$S/plugins/trace"
chain_is "$S" trace metrics base
NL=$'\n'
STAMP='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z'

# trace: each store operation, newest last.
assert_ok bash -c "echo hello > '$S/store/t1'"
assert_ok cat "$S/store/t1"
assert_ok mv "$S/store/t1" "$S/store/t2"
assert_ok rm "$S/store/t2"
tr=$(cat "$S/trace")
assert_match "trace: a put of 6 bytes" "(^|$NL)$STAMP put t1 6($NL|$)" "$tr"
assert_match "trace: a get of 6 bytes" "(^|$NL)$STAMP get t1 6($NL|$)" "$tr"
assert_match "trace: a rename" "(^|$NL)$STAMP rename t1 t2 0($NL|$)" "$tr"
assert_match "trace: the delete is the newest line" "$NL$STAMP delete t2 0\$" "$tr"
assert_match "trace: the put before the get before the rename" \
	"put t1 6.*get t1 6.*rename t1 t2" "$(tr '\n' ' ' <<<"$tr")"
assert_true "every trace line starts with a time" \
	bash -c "! grep -Ev '^$STAMP ' '$S/trace'"
# ...and each reconfiguration.
assert_ok mkdir "$S/config/app"
assert_ok bash -c "echo 42 > '$S/config/app/answer'"
assert_match "trace: the reconfiguration is the newest line" \
	"reconfigure.*app\.answer=42\$" "$(tail -n 1 "$S/trace")"
# A refusal by a plugin below shows with its errno.
assert_ok mkdir "$S/plugins/limits"
chain_is "$S" limits trace metrics base
assert_ok rmdir "$S/plugins/limits"
assert_ok rmdir "$S/plugins/trace"
assert_ok mkdir "$S/plugins/limits"
assert_ok mkdir "$S/plugins/trace"
chain_is "$S" trace limits metrics base
assert_ok bash -c "echo 4 > '$S/config/limits/max_value_bytes'"
assert_fails_with EFBIG bash -c "echo toolong > '$S/store/big'"
assert_match "trace: the refused put shows EFBIG" "put big EFBIG" "$(cat "$S/trace")"
# lines: live, the newest kept; bad values refused; the file is read-only.
assert_ok bash -c "echo 3 > '$S/config/trace/lines'"
assert_ok bash -c "for i in 1 2 3 4 5; do echo \$i > '$S/store/l'\$i; done"
assert_eq "trace keeps lines = 3 lines" 3 "$(wc -l <"$S/trace")"
assert_match "trace: the newest of them is the last put" "put l5 2\$" "$(tail -n 1 "$S/trace")"
assert_size "$S/trace"
for bad in 0 abc -3; do
	assert_write EINVAL "$S/config/trace/lines" "$bad"
done
assert_file "$S/config/trace/lines" $'3\n'
assert_eq "no restart from a trace change" 0 "$(status_field "$S" restarts)"
assert_fails_with 'EPERM|EACCES' bash -c "echo x > '$S/trace'"
assert_errno 'EPERM|EACCES' open "$S/trace" w
assert_errno 'EPERM|EACCES' unlink "$S/trace"

assert_ok rm "$S/config/limits/max_value_bytes"

# metrics: Prometheus text, one sample per counter, labelled with the service.
assert_ok cp "$S/metrics" "$MFS_TMP/metrics1"
assert_size "$S/metrics"
bad=$(grep -Ev '^# (HELP|TYPE) mallafs_[a-z_]+ |^mallafs_[a-z_]+\{service="tm"\} [0-9]+$' "$MFS_TMP/metrics1")
assert_eq "metrics: every line is a HELP, a TYPE or a sample" '' "$bad"
assert_true "metrics: TYPE lines say counter or gauge" \
	bash -c "! grep '^# TYPE' '$MFS_TMP/metrics1' | grep -Ev ' (counter|gauge)\$'"
# shellcheck disable=SC2016 # awk code
assert_true "metrics: each sample has a TYPE line before it" awk '
	/^# TYPE / { typed[$3] = 1; next }
	/^#/ { next }
	{ name = $0; sub(/\{.*/, "", name); if (!(name in typed)) exit 1 }' "$MFS_TMP/metrics1"
assert_true "metrics: the text ends with a newline" test "$(tail -c 1 "$MFS_TMP/metrics1" | od -An -c | tr -d ' ')" = '\n'
for m in gets hits puts written_bytes read_bytes deletes; do
	assert_match "metrics: mallafs_store_${m}_total has a sample" '^[0-9]+$' \
		"$(metric "$S" "mallafs_store_${m}_total")"
done
gets=$(metric "$S" mallafs_store_gets_total)
hits=$(metric "$S" mallafs_store_hits_total)
puts=$(metric "$S" mallafs_store_puts_total)
wbytes=$(metric "$S" mallafs_store_written_bytes_total)
dels=$(metric "$S" mallafs_store_deletes_total)
assert_ok bash -c "echo 1234 > '$S/store/m1' && echo 12 > '$S/store/m2'"
assert_ok cat "$S/store/m1" "$S/store/m2" "$S/store/m1"
assert_ok rm "$S/store/m2"
assert_eq "metrics: puts +2" $((puts + 2)) "$(metric "$S" mallafs_store_puts_total)"
assert_eq "metrics: written bytes +8" $((wbytes + 8)) "$(metric "$S" mallafs_store_written_bytes_total)"
assert_eq "metrics: gets +3" $((gets + 3)) "$(metric "$S" mallafs_store_gets_total)"
assert_eq "metrics: hits +3" $((hits + 3)) "$(metric "$S" mallafs_store_hits_total)"
assert_eq "metrics: deletes +1" $((dels + 1)) "$(metric "$S" mallafs_store_deletes_total)"
assert_eq "metrics: the keys gauge" "$(ls "$S/store" | wc -l)" "$(metric "$S" mallafs_store_keys)"
assert_fails_with 'EPERM|EACCES' bash -c "echo x > '$S/metrics'"
assert_ok rmdir "$S/plugins/metrics"
assert_absent "$S/metrics"
assert_ok rmdir "$S"

# == ttl ========================================================================

S=$MNT/services/exp
assert_ok mkdir "$S"
assert_ok mkdir "$S/plugins/ttl"
assert_ls "$S/config/ttl" seconds
assert_file "$S/config/ttl/seconds" $'0\n'
for bad in abc -1 1.5; do
	assert_write EINVAL "$S/config/ttl/seconds" "$bad"
done
assert_ok bash -c "echo 1 > '$S/config/ttl/seconds'"
assert_eq "no restart from a ttl change" 0 "$(status_field "$S" restarts)"
# b is written once; a is written again every 0.3 s.
t0=$(mfs_now_ms)
echo b >"$S/store/b"
echo a >"$S/store/a"
gone_b=''
for i in 1 2 3 4 5 6 7 8 9; do
	sleep 0.3
	echo "a$i" >"$S/store/a"
	if [[ -z $gone_b && $("$FSPROBE" errno stat "$S/store/b") == ENOENT ]]; then
		gone_b=$(($(mfs_now_ms) - t0))
	fi
done
assert_true "b expires after 1 s ($gone_b ms after its write)" \
	test -n "$gone_b" -a "${gone_b:-0}" -ge 900
assert_absent "$S/store/b"
assert_true "ls store does not list b" bash -c "! ls '$S/store' | grep -qx b"
assert_file "$S/store/a" $'a9\n'
# Left alone, a goes too, about 1 s after its last write.
t0=$(mfs_now_ms)
EXPIRY=3000
if mfs_wrapper; then
	EXPIRY=10000
fi
assert_true "a expires within $EXPIRY ms of its last write" \
	mfs_poll "$EXPIRY" eval "[[ \$(\"\$FSPROBE\" errno stat '$S/store/a') == ENOENT ]]"
assert_true "a lived about 1 s after its last write ($(($(mfs_now_ms) - t0)) ms)" \
	test $(($(mfs_now_ms) - t0)) -ge 600
assert_ls "$S/store"
assert_ok rmdir "$S"

# == exec: on_start and on_stop =================================================

S=$MNT/services/hooks
MARK=$MFS_TMP/marks
assert_ok mkdir "$S"
assert_ok mkdir "$S/config/exec"
assert_ok bash -c "echo 'echo start \$MALLAFS_SERVICE >> $MARK' > '$S/config/exec/on_start'"
assert_ok bash -c "echo 'echo stop \$MALLAFS_SERVICE >> $MARK' > '$S/config/exec/on_stop'"
assert_ok mkdir "$S/plugins/exec"
assert_file "$MARK" $'start hooks\n'
assert_ok bash -c "echo x > '$S/store/x'"
assert_ok bash -c "echo inactive > '$S/status'"
assert_eq "state after inactive" stopped "$(status_field "$S" state)"
assert_file "$MARK" $'start hooks\nstop hooks\n'
assert_ok bash -c "echo active > '$S/status'"
assert_eq "state after active" running "$(status_field "$S" state)"
assert_file "$MARK" $'start hooks\nstop hooks\nstart hooks\n'
assert_ok bash -c "echo pause > '$S/status'"
assert_file "$MARK" $'start hooks\nstop hooks\nstart hooks\n'
assert_ok bash -c "echo active > '$S/status'"
# A changed hook: a restart (on_stop, then on_start).
assert_ok bash -c "echo 'echo start2 >> $MARK' > '$S/config/exec/on_start'"
assert_eq "restarts after on_start changed" 1 "$(status_field "$S" restarts)"
assert_file "$MARK" $'start hooks\nstop hooks\nstart hooks\nstop hooks\nstart2\n'
assert_file "$S/store/x" $'x\n'
# Removing the plugin stops it.
assert_ok rmdir "$S/plugins/exec"
assert_file "$MARK" $'start hooks\nstop hooks\nstart hooks\nstop hooks\nstart2\nstop hooks\n'
# A failing on_start: the service cannot start and says why; the store stays
# readable and writable.
assert_ok mkdir "$S/plugins/exec"
assert_ok bash -c "echo inactive > '$S/status'"
assert_ok bash -c "echo 'echo no database here >&2; exit 1' > '$S/config/exec/on_start'"
got=$("$FSPROBE" write "$S/status" active)
assert_ne "writing active with a failing on_start fails" OK "$got"
assert_eq "state after a failed start" failed "$(status_field "$S" state)"
assert_reason "a failing on_start" "$S" "no database here"
assert_file "$S/store/x" $'x\n'
assert_ok bash -c "echo y > '$S/store/y'"
assert_ok bash -c "echo true > '$S/config/exec/on_start'"
assert_ok bash -c "echo active > '$S/status'"
assert_eq "state once on_start succeeds" running "$(status_field "$S" state)"
assert_ok rmdir "$S"

# == persist, first life ==========================================================

P=$MFS_TMP/persist
S=$MNT/services/keep
assert_ok mkdir "$S"
assert_ok mkdir "$S/config/persist"
assert_ok bash -c "echo '$P/keep.db' > '$S/config/persist/path'"
assert_ok mkdir "$S/plugins/persist"
assert_ls "$S/config/persist" path sync
head -c 65536 /dev/urandom >"$MFS_TMP/bin"
assert_ok cp "$MFS_TMP/bin" "$S/store/bin"
assert_ok bash -c "printf 'a\0b\n' > '$S/store/nul'"
assert_ok bash -c "echo text > '$S/store/text'"
assert_ok bash -c ": > '$S/store/empty'"
assert_ok bash -c "echo spaced > '$S/store/with space'"
assert_ok bash -c "echo gone > '$S/store/deleted' && rm '$S/store/deleted'"
assert_ok bash -c "echo moved > '$S/store/from' && mv '$S/store/from' '$S/store/to'"
assert_true "the store file appears while the service runs" \
	mfs_poll 3000 test -s "$P/keep.db"
# A relative path is refused.
assert_write EINVAL "$S/config/persist/path" relative.db
assert_file "$S/config/persist/path" "$P/keep.db"$'\n'
# A new path: a restart, the store kept, the new file written.
M=$MNT/services/moving
assert_ok mkdir "$M"
assert_ok mkdir "$M/config/persist"
assert_ok bash -c "echo '$P/one.db' > '$M/config/persist/path'"
assert_ok mkdir "$M/plugins/persist"
assert_ok bash -c "echo here > '$M/store/m'"
assert_eq "restarts before the path changes" 0 "$(status_field "$M" restarts)"
assert_ok bash -c "echo '$P/two.db' > '$M/config/persist/path'"
assert_eq "restarts after the path changed" 1 "$(status_field "$M" restarts)"
assert_match "last_restart gives persist's reason" 'persist' "$(status_field "$M" last_restart)"
assert_file "$M/store/m" $'here\n'
assert_true "the new file holds the store" mfs_poll 3000 row_is "$P/two.db" m here

# == external plugin: contrib's readonly.so ======================================

S=$MNT/services/ro
assert_ok mkdir "$S"
assert_ok bash -c "echo old > '$S/store/secret0'"
assert_ok mkdir "$S/plugins/readonly"
chain_is "$S" readonly base
assert_ls "$S/config/readonly" keys
assert_ok bash -c "echo 'secret*' > '$S/config/readonly/keys'"
assert_file "$S/config/readonly/keys" $'secret*\n'
assert_fails_with EPERM bash -c "echo x > '$S/store/secret1'"
assert_errno 'EPERM' creat "$S/store/secret1"
assert_absent "$S/store/secret1"
assert_fails_with EPERM bash -c "echo x > '$S/store/secret0'"
assert_errno EPERM unlink "$S/store/secret0"
assert_errno EPERM truncate "$S/store/secret0" 0
assert_errno EPERM rename "$S/store/secret0" "$S/store/other"
assert_file "$S/store/secret0" $'old\n'
assert_reason "a write to a read-only key" "$S" "secret"
assert_ok bash -c "echo fine > '$S/store/public'"
assert_file "$S/store/public" $'fine\n'
assert_errno EPERM rename "$S/store/public" "$S/store/secret9"
# Its merge callback: a pattern with '/' is rejected.
assert_write EINVAL "$S/config/readonly/keys" 'a/b'
assert_file "$S/config/readonly/keys" $'secret*\n'
# Live.
assert_ok bash -c "echo 'other' > '$S/config/readonly/keys'"
assert_ok bash -c "echo new > '$S/store/secret1'"
assert_ok bash -c "echo 'secret*' > '$S/config/readonly/keys'"
assert_ok rmdir "$S/plugins/readonly"
chain_is "$S" base
assert_ok bash -c "echo free > '$S/store/secret0'"
assert_ok mkdir "$S/plugins/readonly"
assert_ok rm -r "$S/plugins/readonly"
chain_is "$S" base

mfs_unmount

# =============================================================================
# The second daemon: a bootstrap file, the test's own plugin folder.

assert_true "the store file after the unmount" test -s "$P/keep.db"
assert_eq "the store file is an SQLite database" "SQLite format 3" "$(head -c 15 "$P/keep.db")"
cp "$P/keep.db" "$P/bad.db"
# The first byte of the table's root page: its kind.
flip_byte "$P/bad.db" 4096
cp "$P/bad.db" "$MFS_TMP/bad.copy"
cat >"$MFS_TMP/boot.ini" <<EOF
[services.keep]
plugins = persist

[services.keep.persist]
path = $P/keep.db

[services.bad]
plugins = persist

[services.bad.persist]
path = $P/bad.db

[services.deps]
plugins = trace
EOF
mfs_mount --config="$MFS_TMP/boot.ini" --plugin-dir="$PDIR"

# == persist, second life =========================================================

S=$MNT/services/keep
assert_eq "keep: running" running "$(status_field "$S" state)"
assert_ls "$S/store" bin empty nul text to "with space"
assert_same "$MFS_TMP/bin" "$S/store/bin"
assert_true "store/nul is back with its NUL byte" cmp "$S/store/nul" <(printf 'a\0b\n')
assert_file "$S/store/text" $'text\n'
assert_file "$S/store/empty" ''
assert_file "$S/store/with space" $'spaced\n'
assert_file "$S/store/to" $'moved\n'
assert_absent "$S/store/deleted"
# A corrupt file: the service fails, visibly, and the file is left alone.
B=$MNT/services/bad
assert_eq "bad: state failed" failed "$(status_field "$B" state)"
assert_reason "a corrupt store file" "$B" "$P/bad.db"
assert_ls "$B/store"
assert_ok bash -c "echo probe > '$B/store/probe'"

# == external plugins: errors ======================================================

D=$MNT/services/deps
chain_is "$D" trace base
before=$(status_field "$D" last_error)
assert_fails_with EINVAL mkdir "$D/plugins/badabi"
assert_absent "$D/plugins/badabi"
assert_reason "mkdir plugins/badabi" "$D" "ABI version"
assert_errno EINVAL mkdir "$D/plugins/noexport"
assert_errno EINVAL mkdir "$D/plugins/misnamed"
# Not in this folder: ENOENT.
assert_errno ENOENT mkdir "$D/plugins/readonly"
assert_errno ENOENT mkdir "$D/plugins/nosuch"
chain_is "$D" trace base
# Built-in plugins first: limits.so here is never loaded.
assert_ok mkdir "$D/plugins/limits"
assert_ls "$D/config/limits" max_bytes max_keys max_value_bytes
assert_ok rmdir "$D/plugins/limits"

# == dependencies ================================================================

: >"$TEST_PLUGINS_LOG"
assert_ok mkdir "$D/plugins/deptop"
chain_is "$D" deptop depmid trace base
log_is "the new plugins start bottom to top" $'depmid start\ndeptop start'
before=$(status_field "$D" last_error)
assert_fails_with EBUSY rmdir "$D/plugins/depmid"
assert_error_changed "rmdir plugins/depmid, needed by deptop" "$D" "$before"
assert_errno EEXIST mkdir "$D/plugins/depmid"
chain_is "$D" deptop depmid trace base
log_is "refused changes start and stop nothing" ''
assert_ok rmdir "$D/plugins/deptop"
chain_is "$D" trace base
log_is "removing deptop stops it and the dependency only it needed, top to bottom" \
	$'deptop stop\ndepmid stop'
# A dependency added on its own stays when the plugin that needs it goes.
assert_ok mkdir "$D/plugins/depmid"
assert_ok mkdir "$D/plugins/deptop"
chain_is "$D" deptop depmid trace base
assert_ok rm -r "$D/plugins/deptop"
chain_is "$D" depmid trace base
# A dependency on a built-in plugin: it comes in below, with its section.
assert_ok mkdir "$D/plugins/needslimits"
chain_is "$D" needslimits limits depmid trace base
assert_ls "$D/config/limits" max_bytes max_keys max_value_bytes
assert_errno EBUSY rmdir "$D/plugins/limits"
assert_ok rmdir "$D/plugins/needslimits"
chain_is "$D" depmid trace base
assert_absent "$D/config/limits"
: >"$TEST_PLUGINS_LOG"
# A cycle: ELOOP; a missing dependency: ENOENT. Nothing changes.
before=$(status_field "$D" last_error)
assert_fails_with ELOOP mkdir "$D/plugins/cyca"
assert_error_changed "mkdir plugins/cyca" "$D" "$before"
assert_errno ELOOP mkdir "$D/plugins/cycb"
assert_errno ENOENT mkdir "$D/plugins/orphan"
chain_is "$D" depmid trace base
log_is "refused additions start nothing" ''

mfs_unmount
assert_true "the corrupt store file is left as it was" cmp "$MFS_TMP/bad.copy" "$P/bad.db"

# == the installed header ==========================================================

BUILD=${MALLAFS_BUILD_DIR:-$(dirname "$(dirname "$MALLAFS")")}
DEST=$MFS_TMP/dest
if [[ ! -d $BUILD/meson-private ]]; then
	fail "meson install: $BUILD is no meson build folder (set MALLAFS_BUILD_DIR)"
elif ! out=$(meson install -C "$BUILD" --no-rebuild --destdir "$DEST" 2>&1); then
	fail "meson install --destdir" "$(tail -n 10 <<<"$out")"
else
	pass "meson install --destdir"
	hdr=$(find "$DEST" -path '*/include/mallafs-plugin.h' | head -n 1)
	assert_ne "meson install puts mallafs-plugin.h under include/" '' "$hdr"
	assert_match "the installed header carries the ABI version" \
		'#define MALLAFS_PLUGIN_ABI [0-9]+' "$(cat "$hdr" 2>&1)"
	pc=$(find "$DEST" -name mallafs-plugin.pc | head -n 1)
	abi=$(sed -n 's/^#define MALLAFS_PLUGIN_ABI //p' "$hdr" 2>/dev/null)
	assert_true "mallafs-plugin.pc says abi=$abi" grep -qx "abi=$abi" "$pc"
	assert_true "meson install puts readonly.so in a plugin folder" \
		bash -c "find '$DEST' -path '*/mallafs/plugins/readonly.so' | grep -q ."
	# A third party builds against the installed header alone.
	assert_true "contrib/plugin/readonly.c builds against the installed header" \
		"$CC" -shared -fPIC -Wall -I"$(dirname "$hdr")" \
		-o "$MFS_TMP/readonly-installed.so" "$SRC/contrib/plugin/readonly.c"
fi

mfs_done
