#!/bin/bash
# SPDX-License-Identifier: MIT
# services/NAME/config/ and config.ini, and the reconfiguration they run
# (SPEC.md): per-key writes and reads (one trailing newline stripped), rm of
# a key (back to the plugin's default), sections made and removed, the
# effective configuration in config.ini, INI documents deep-merged in one
# reconfiguration by one write(), malformed INI naming its line; the merge
# callbacks top to bottom and the update callbacks bottom to top, seen from
# outside through two observer plugins (built here from
# test_reconfig_observer.c) around an exec plugin whose hooks log
# (test_reconfig_hook.sh); a rejection (EINVAL) that changes nothing, an
# update error (EIO) rolled back and told back, a restart counted with the
# store kept, each reason in status and in the daemon log and printed by
# echo; configuration staged for a plugin before it is added; the hooks'
# environment; a hook past timeout_ms killed with its children.
#
# Environment, besides lib.sh's: CC (default cc) and MALLAFS_INCLUDE (the
# folder holding mallafs-plugin.h, default core/ of this source tree) to
# build the observer plugins.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MALLAFS_INCLUDE=${MALLAFS_INCLUDE:-$HERE/../../core}
CC=${CC:-cc}
HOOK=$HERE/test_reconfig_hook.sh
PDIR=$MFS_TMP/plugins
mkdir -p "$PDIR"

# The observers and the hooks append here; the daemon inherits both.
export TEST_RECONFIG_LOG=$MFS_TMP/order.log
export TEST_RECONFIG_DIR=$MFS_TMP
: >"$TEST_RECONFIG_LOG"

[[ -r $MALLAFS_INCLUDE/mallafs-plugin.h ]] ||
	mfs_bail "MALLAFS_INCLUDE=$MALLAFS_INCLUDE holds no mallafs-plugin.h"
[[ -r $HOOK ]] || mfs_bail "the hook script $HOOK is missing"
for obs in ola olb; do
	out=$("$CC" -shared -fPIC -Wall -I"$MALLAFS_INCLUDE" -DOBS_NAME="\"$obs\"" \
		-o "$PDIR/$obs.so" "$HERE/test_reconfig_observer.c" 2>&1) ||
		mfs_bail "build the observer plugin $obs with $CC" "$out"
done

# -- helpers -----------------------------------------------------------------

# phase merge|after: of the lines on stdin, the leading run of merge-phase
# lines (merge callbacks, the validate hook), or the lines after it.
phase()
{
	awk -v want="$1" '
		m == 0 && !/ merge k=|^exec validate$/ { m = 1 }
		(m == 0) == (want == "merge") { print }'
}

# order_is WHAT EXPECTED_LINES: what the observers and hooks logged since the
# last check, in order, checked as the merge phase and then what follows it;
# then starts a new log.
order_is()
{
	local got
	got=$(cat "$TEST_RECONFIG_LOG")
	: >"$TEST_RECONFIG_LOG"
	assert_eq "$1 (merge phase)" "$(phase merge <<<"$2")" "$(phase merge <<<"$got")"
	assert_eq "$1 (after it)" "$(phase after <<<"$2")" "$(phase after <<<"$got")"
}

# ini_value FILE SECTION KEY: prints the value of the line "KEY = VALUE" in
# [SECTION] of the INI text in FILE; fails when there is none.
ini_value()
{
	awk -v s="[$2]" -v k="$3" '
		/^\[/ { in_s = ($0 == s); next }
		in_s && index($0, k " = ") == 1 { print substr($0, length(k) + 4); found = 1; exit }
		END { exit !found }' "$1"
}

assert_ini()
{
	local file=$1 section=$2 key=$3 want=$4 got
	if got=$(ini_value "$file" "$section" "$key"); then
		assert_eq "$(mfs_rel "$file"): [$section] $key = $want" "$want" "$got"
	else
		fail "$(mfs_rel "$file"): [$section] $key = $want" "no such key:" "$(cat "$file")"
	fi
}

assert_ini_absent()
{
	local got
	if got=$(ini_value "$1" "$2" "$3"); then
		fail "$(mfs_rel "$1"): no $3 in [$2]" "it has $3 = $got"
	else
		pass "$(mfs_rel "$1"): no $3 in [$2]"
	fi
}

mfs_mount --plugin-dir="$PDIR"

# == per-key files =============================================================

S=$MNT/services/cfg
C=$S/config
assert_ok mkdir "$S"
assert_ls "$C"
assert_ok mkdir "$S/plugins/limits"
# A plugin in the chain: its section lists every setting, with the defaults.
assert_ls "$C" limits
assert_ls "$C/limits" max_bytes max_keys max_value_bytes
assert_file "$C/limits/max_keys" $'0\n'
assert_file "$C/limits/max_value_bytes" $'0\n'
assert_size "$C/limits/max_keys"

assert_ok bash -c "echo 5 > '$C/limits/max_keys'"
assert_file "$C/limits/max_keys" $'5\n'
assert_size "$C/limits/max_keys"
assert_eq "status after good writes: last_error" - "$(status_field "$S" last_error)"
# Applied live: five keys fit, a sixth does not.
assert_true "store: 5 keys under max_keys 5" \
	bash -c "for i in 1 2 3 4 5; do echo \$i > '$S/store/k'\$i || exit 1; done"
assert_fails_with ENOSPC bash -c "echo 6 > '$S/store/k6'"
assert_absent "$S/store/k6"
# One write() without a newline.
assert_write OK "$C/limits/max_keys" 6
assert_file "$C/limits/max_keys" $'6\n'
assert_ok bash -c "echo 6 > '$S/store/k6'"

# A section of the user's own, keys of any valid file name; exactly one
# trailing newline is stripped, nothing else.
assert_ok mkdir "$C/app"
assert_ls "$C" app limits
assert_ls "$C/app"
assert_write OK "$C/app/k" $'a\n\n'
assert_file "$C/app/k" $'a\n\n'
assert_write OK "$C/app/k" $'b\n'
assert_file "$C/app/k" $'b\n'
# The same through the shell's printf (which sends a line per write()).
assert_ok bash -c "printf 'c\n\n' > '$C/app/k'"
assert_file "$C/app/k" $'c\n\n'
assert_ok bash -c "printf 'd' > '$C/app/k'"
assert_file "$C/app/k" $'d\n'
assert_write OK "$C/app/spaced" ' x  y '
assert_file "$C/app/spaced" $' x  y \n'
assert_write OK "$C/app/key with space" v
assert_ls "$C/app" k spaced "key with space"
assert_file "$C/app/key with space" $'v\n'

# Like a sysfs attribute: a write() is applied before it returns (the file
# still open); an open with O_TRUNC alone changes nothing.
for v in one two; do
	if exec 3>"$C/app/k"; then
		echo "$v" >&3
		assert_file "$C/app/k" "$v"$'\n'
		exec 3>&-
	else
		fail "open config/app/k for writing"
	fi
done
assert_errno OK open "$C/app/k" wt
assert_file "$C/app/k" $'two\n'
assert_ok bash -c ": > '$C/app/k'"
assert_file "$C/app/k" $'two\n'

# A rejected value: EINVAL from the write(), echo says so, the old value
# stays, the reason goes to last_error and the log.
assert_fails_with EINVAL bash -c "echo abc > '$C/limits/max_keys'"
assert_file "$C/limits/max_keys" $'6\n'
assert_reason "echo abc > config/limits/max_keys" "$S" "'abc'"
assert_match "last_error names the setting" "max_keys" "$(status_field "$S" last_error)"
assert_write EINVAL "$C/limits/max_keys" -1
assert_write EINVAL "$C/limits/max_keys" $'7\n\n'
assert_file "$C/limits/max_keys" $'6\n'
assert_fails_with ENOSPC bash -c "echo 7 > '$S/store/k7'"

# rm of a set plugin key: back to its default, still listed.
assert_ok rm "$C/limits/max_keys"
assert_file "$C/limits/max_keys" $'0\n'
assert_ls "$C/limits" max_bytes max_keys max_value_bytes
assert_ok bash -c "echo 7 > '$S/store/k7'"
# rm of a key at its default: it already is what rm gives.
assert_errno OK unlink "$C/limits/max_value_bytes"
assert_file "$C/limits/max_value_bytes" $'0\n'
assert_ls "$C/limits" max_bytes max_keys max_value_bytes
# rm of the user's own key: gone. rm of a key that does not exist: ENOENT.
assert_ok rm "$C/app/spaced"
assert_absent "$C/app/spaced"
assert_ini_absent "$S/config.ini" app spaced
assert_ini "$S/config.ini" limits max_keys 0
assert_ls "$C/app" k "key with space"
assert_fails_with ENOENT rm "$C/limits/nosuch"
assert_errno ENOENT unlink "$C/limits/nosuch"
assert_errno ENOENT unlink "$C/app/nosuch"
assert_errno ENOENT unlink "$C/nosec/k"
assert_ls "$C/app" k "key with space"

# Sections: mkdir and rmdir, with SPEC.md's errors.
assert_errno EEXIST mkdir "$C/app"
assert_errno EEXIST mkdir "$C/limits"
assert_fails_with EEXIST mkdir "$C/limits"
before=$(status_field "$S" last_error)
assert_errno EINVAL mkdir "$C/bad name"
assert_error_changed "mkdir 'config/bad name'" "$S" "$before"
assert_absent "$C/bad name"
assert_errno EINVAL mkdir "$C/sl%sh"
assert_ok mkdir "$C/new"
assert_ls "$C" app limits new
assert_ls "$C/new"
assert_true "config.ini shows the new empty section" grep -qx '\[new\]' "$S/config.ini"
assert_ok rmdir "$C/new"
assert_absent "$C/new"
assert_ls "$C" app limits
assert_true "config.ini no longer shows it" bash -c "! grep -q '^\[new\]' '$S/config.ini'"
# A plugin's section is never empty (its settings), nor one with keys.
before=$(status_field "$S" last_error)
assert_errno ENOTEMPTY rmdir "$C/limits"
assert_error_changed "rmdir config/limits" "$S" "$before"
assert_fails_with ENOTEMPTY rmdir "$C/app"
assert_errno ENOENT rmdir "$C/nosec"
assert_ls "$C" app limits
# A key needs its section.
assert_errno ENOENT creat "$C/nosec/k"
assert_absent "$C/nosec"
# Empty it, then it goes.
assert_ok rm "$C/app/k" "$C/app/key with space"
assert_ok rmdir "$C/app"
assert_ls "$C" limits

# == config.ini ==================================================================

I=$S/config.ini
assert_ok mkdir "$C/app"
assert_ok bash -c "echo 1 > '$C/app/k' && echo 2 > '$C/app/j' && echo 100 > '$C/limits/max_value_bytes'"
# The effective configuration: the defaults included.
assert_ok cp "$I" "$MFS_TMP/cfg1.ini"
assert_size "$I"
assert_ini "$MFS_TMP/cfg1.ini" limits max_keys 0
assert_ini "$MFS_TMP/cfg1.ini" limits max_value_bytes 100
assert_ini "$MFS_TMP/cfg1.ini" app k 1
assert_ini "$MFS_TMP/cfg1.ini" app j 2
assert_eq "config.ini: two sections" 2 "$(grep -c '^\[' "$MFS_TMP/cfg1.ini")"

# A partial document is merged deep: the keys it does not name keep their
# values, in its sections and in the others.
printf '[limits]\nmax_keys = 9\n' >"$MFS_TMP/part.ini"
assert_ok bash -c "cat '$MFS_TMP/part.ini' > '$I'"
assert_file "$C/limits/max_keys" $'9\n'
assert_file "$C/limits/max_value_bytes" $'100\n'
assert_file "$C/app/k" $'1\n'
assert_file "$C/app/j" $'2\n'
# Several sections and a new one in one write() (fsprobe: exactly one).
assert_write OK "$I" $'; a comment\n[app]\nk = 11\n\n[extra]\nx = y z\n[limits]\nmax_value_bytes = 200\n'
assert_file "$C/app/k" $'11\n'
assert_file "$C/app/j" $'2\n'
assert_file "$C/extra/x" $'y z\n'
assert_file "$C/limits/max_value_bytes" $'200\n'
assert_file "$C/limits/max_keys" $'9\n'
assert_ls "$C" app extra limits
assert_ok cp "$I" "$MFS_TMP/cfg2.ini"
assert_ini "$MFS_TMP/cfg2.ini" extra x "y z"
assert_ini "$MFS_TMP/cfg2.ini" app k 11
# What cat shows, written back, is accepted and changes nothing.
assert_ok bash -c "cat '$MFS_TMP/cfg2.ini' > '$I'"
assert_true "config.ini written back unchanged" cmp "$MFS_TMP/cfg2.ini" "$I"
# ...whatever the values hold: a value over two lines, and an exec-style
# shell command with ' ; ' (config.ini shows the same configuration: read
# back as INI, it must give the same values).
assert_write OK "$C/app/two" $'line one\nline two'
assert_write OK "$C/app/cmd" 'echo a ; echo b'
assert_ok cp "$I" "$MFS_TMP/cfg3.ini"
assert_ok bash -c "cat '$MFS_TMP/cfg3.ini' > '$I'"
assert_file "$C/app/two" $'line one\nline two\n'
assert_file "$C/app/cmd" $'echo a ; echo b\n'
assert_true "config.ini written back: same text" cmp "$MFS_TMP/cfg3.ini" "$I"
assert_ok rm "$C/app/cmd" "$C/app/two"
# A document the shell's printf sends a line per write().
assert_ok bash -c "printf '[app]\nk = 17\n\n[limits]\nmax_keys = 10\n' > '$I'"
assert_file "$C/app/k" $'17\n'
assert_file "$C/limits/max_keys" $'10\n'
assert_file "$C/app/j" $'2\n'
assert_ok bash -c "printf '[app]\nk = 11\n[limits]\nmax_keys = 9\n' > '$I'"

# Malformed INI: EINVAL naming the line; nothing of the document applies,
# not even the good lines before the bad one.
assert_ok cp "$I" "$MFS_TMP/before.ini"
assert_write EINVAL "$I" $'[app]\nk = 12\nthis is not ini\n'
assert_reason "INI with a bad third line" "$S" "line 3"
assert_write EINVAL "$I" $'k = 13\n'
assert_reason "INI with a key before any section" "$S" "line 1"
assert_write EINVAL "$I" $'[app]\nk = 14\n\n[limits\nmax_keys = 1\n'
assert_reason "INI with an unclosed section header on line 4" "$S" "line 4"
assert_write EINVAL "$I" $'[app]\nk = 15\n[bad name]\nx = 1\n'
assert_reason "INI with a bad section name on line 3" "$S" "line 3"
assert_fails_with EINVAL bash -c "echo '[app' > '$I'"
# A well-formed document with a value a plugin rejects: rejected whole.
assert_write EINVAL "$I" $'[app]\nk = 16\n[limits]\nmax_keys = lots\n'
assert_reason "INI with max_keys = lots" "$S" "'lots'"
assert_true "config.ini unchanged by the refused documents" cmp "$MFS_TMP/before.ini" "$I"
assert_file "$C/app/k" $'11\n'
assert_file "$C/limits/max_keys" $'9\n'
assert_ls "$C" app extra limits

# Staging: configuration for a plugin not in the chain (yet) is kept as
# written, shown in config.ini, and applies when the plugin is added.
T=$MNT/services/staged
assert_ok mkdir "$T"
assert_ok mkdir "$T/config/limits"
assert_ok bash -c "echo 2 > '$T/config/limits/max_keys'"
assert_ls "$T/config/limits" max_keys
assert_ini "$T/config.ini" limits max_keys 2
assert_ok bash -c "echo a > '$T/store/a' && echo b > '$T/store/b' && echo c > '$T/store/c'"
assert_ok mkdir "$T/plugins/limits"
assert_file "$T/chain" $'limits\nbase\n'
assert_file "$T/config/limits/max_keys" $'2\n'
assert_ls "$T/config/limits" max_bytes max_keys max_value_bytes
assert_fails_with ENOSPC bash -c "echo d > '$T/store/d'"
assert_ls "$T/store" a b c
# Staged configuration the plugin rejects: the mkdir is refused with EINVAL
# and the chain stays as it was.
U=$MNT/services/staged-bad
assert_ok mkdir "$U"
assert_ok mkdir "$U/config/limits"
assert_ok bash -c "echo many > '$U/config/limits/max_keys'"
assert_fails_with EINVAL mkdir "$U/plugins/limits"
assert_file "$U/chain" $'base\n'
assert_absent "$U/plugins/limits"
assert_reason "mkdir plugins/limits with max_keys = many staged" "$U" "'many'"
assert_ok bash -c "echo 1 > '$U/config/limits/max_keys'"
assert_ok mkdir "$U/plugins/limits"
assert_file "$U/chain" $'limits\nbase\n'
assert_ok rmdir "$U"

# == exec's validate, wherever exec stands in the chain =========================

V=$MNT/services/vtop
assert_ok mkdir "$V"
assert_ok mkdir "$V/config/exec"
assert_ok bash -c "echo \"sh '$HOOK' validate\" > '$V/config/exec/validate'"
assert_ok mkdir "$V/config/app"
assert_ok mkdir "$V/plugins/exec"
assert_ok bash -c "echo fine > '$V/config/app/k'"
assert_fails_with EINVAL bash -c "echo reject-exec > '$V/config/app/k'"
assert_file "$V/config/app/k" $'fine\n'
assert_reason "validate rejects, exec alone in the chain" "$V" "k may not be reject-exec"
# The same with a plugin above exec.
assert_ok mkdir "$V/plugins/limits"
assert_file "$V/chain" $'limits\nexec\nbase\n'
assert_write EINVAL "$V/config/app/k" reject-exec
assert_file "$V/config/app/k" $'fine\n'
assert_ok rmdir "$V"

# == the callbacks, seen from outside ===========================================
#
# The chain ola, exec, olb, base: ola and olb log each callback, exec's hooks
# log as they run. The hooks are staged before exec joins, so that no hook
# change restarts the service.

O=$MNT/services/ord
OC=$O/config
assert_ok mkdir "$O"
assert_ok mkdir "$OC/exec"
for h in validate on_update on_start on_stop; do
	assert_ok bash -c "echo \"sh '$HOOK' $h\" > '$OC/exec/$h'"
done
assert_ok mkdir "$OC/app"
: >"$TEST_RECONFIG_LOG"
assert_ok mkdir "$O/plugins/olb"
order_is "adding olb: its merge, then its start" \
	$'olb merge k=-\nolb start k=-'
assert_ok mkdir "$O/plugins/exec"
order_is "adding exec above olb: exec's config is accepted, then on_start" \
	$'olb merge k=-\nexec on_start'
assert_ok mkdir "$O/plugins/ola"
order_is "adding ola on top: merge top to bottom, then only ola starts" \
	$'ola merge k=-\nolb merge k=-\nola start k=-'
assert_file "$O/chain" $'ola\nexec\nolb\nbase\n'
assert_ls "$O/config/exec" on_start on_stop on_update timeout_ms validate
assert_file "$O/config/exec/timeout_ms" $'5000\n'
assert_eq "restarts after adding the plugins" 0 "$(status_field "$O" restarts)"
assert_ok bash -c "echo kept > '$O/store/data'"

# A change: the merge phase top to bottom (exec's validate is its merge),
# then the update phase bottom to top (on_update is exec's update).
assert_ok bash -c "echo good > '$OC/app/k'"
order_is "echo good > config/app/k: merge top to bottom, update bottom to top" \
	"$(printf '%s\n' 'ola merge k=good' 'exec validate' 'olb merge k=good' \
		'olb update old=- new=good' 'exec on_update' 'ola update old=- new=good')"
assert_file "$OC/app/k" $'good\n'

# The hooks' environment: the service and the mountpoint.
for h in validate on_update on_start; do
	assert_file "$MFS_TMP/env.ord.$h" "ord"$'\n'"$MNT"$'\n'
done

# Nothing changes: the merge phase only, no validate, no update, no restart.
assert_ok bash -c "echo good > '$OC/app/k'"
order_is "echo good again: merge callbacks only" \
	$'ola merge k=good\nolb merge k=good'

# A rejection by the exec validate hook: EINVAL, echo says so, the merge
# phase stops there, nothing is updated, the value stays; the first line of
# the hook's stderr is the reason.
assert_fails_with EINVAL bash -c "echo reject-exec > '$OC/app/k'"
order_is "rejected by validate: ola's merge, then validate, no more" \
	$'ola merge k=reject-exec\nexec validate'
assert_file "$OC/app/k" $'good\n'
assert_ini "$O/config.ini" app k good
assert_reason "rejected by the validate hook" "$O" "k may not be reject-exec"
assert_true "last_error holds the first stderr line only" \
	bash -c "! grep -q 'a second line' '$O/status'"
if [[ $(cat "$OC/app/k") != good ]]; then
	# Accepted by mistake (reported above): put it back for what follows.
	echo good >"$OC/app/k"
	: >"$TEST_RECONFIG_LOG"
fi
# A rejection by the bottom plugin's merge callback.
assert_write EINVAL "$OC/app/k" reject-olb
order_is "rejected by olb's merge: the whole merge phase, no update" \
	$'ola merge k=reject-olb\nexec validate\nolb merge k=reject-olb'
assert_file "$OC/app/k" $'good\n'
assert_reason "rejected by olb's merge" "$O" "olb rejects k"

# An update error in on_update (exit 3): EIO, echo says so; olb (below,
# already told) is told of the change back, ola (above) never hears of it;
# the configuration is rolled back.
assert_fails_with EIO bash -c "echo fail-exec > '$OC/app/k'"
order_is "on_update exits 3: olb told, then told back" \
	"$(printf '%s\n' 'ola merge k=fail-exec' 'exec validate' \
		'olb merge k=fail-exec' 'olb update old=good new=fail-exec' \
		'exec on_update' 'olb update old=fail-exec new=good')"
assert_file "$OC/app/k" $'good\n'
assert_ini "$O/config.ini" app k good
assert_reason "on_update exits 3" "$O" "exec refuses k=fail-exec"
assert_eq "state after a rolled-back update" running "$(status_field "$O" state)"
# An update error at the top: both plugins below are told back.
assert_write EIO "$OC/app/k" fail-ola
got=$(cat "$TEST_RECONFIG_LOG")
: >"$TEST_RECONFIG_LOG"
assert_eq "ola's update fails (merge phase)" \
	$'ola merge k=fail-ola\nexec validate\nolb merge k=fail-ola' "$(phase merge <<<"$got")"
got=$(phase after <<<"$got")
assert_eq "ola's update fails: the update phase up to it" \
	$'olb update old=good new=fail-ola\nexec on_update\nola update old=good new=fail-ola' \
	"$(head -n 3 <<<"$got")"
assert_eq "ola's update fails: exec and olb are told back" \
	$'exec on_update\nolb update old=fail-ola new=good' "$(tail -n +4 <<<"$got" | LC_ALL=C sort)"
assert_file "$OC/app/k" $'good\n'
assert_reason "ola's update fails" "$O" "ola cannot apply k"
assert_eq "restarts after the refused changes" 0 "$(status_field "$O" restarts)"
assert_eq "last_restart after the refused changes" - "$(status_field "$O" last_restart)"

# A restart asked by on_update (exit 75): the write succeeds, the update
# phase completes, then every plugin stops top to bottom and starts bottom
# to top with the new configuration; the store is kept; status counts it.
assert_ok bash -c "echo restart-exec > '$OC/app/k'"
order_is "on_update exits 75: update phase, then stop top to bottom, start bottom to top" \
	"$(printf '%s\n' 'ola merge k=restart-exec' 'exec validate' \
		'olb merge k=restart-exec' 'olb update old=good new=restart-exec' \
		'exec on_update' 'ola update old=good new=restart-exec' \
		'ola stop' 'exec on_stop' 'olb stop' \
		'olb start k=restart-exec' 'exec on_start' 'ola start k=restart-exec')"
assert_file "$OC/app/k" $'restart-exec\n'
assert_eq "restarts after on_update exited 75" 1 "$(status_field "$O" restarts)"
assert_match "last_restart: a time and exec's reason" \
	'^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z .*exec' "$(status_field "$O" last_restart)"
assert_eq "state after the restart" running "$(status_field "$O" state)"
assert_file "$O/store/data" $'kept\n'
assert_ls "$O/store" data
# A restart asked by a plugin's update callback.
assert_ok bash -c "echo restart-olb > '$OC/app/k'"
assert_eq "restarts after olb asked for one" 2 "$(status_field "$O" restarts)"
assert_match "last_restart gives olb's reason" 'olb needs a restart' \
	"$(status_field "$O" last_restart)"
assert_file "$O/store/data" $'kept\n'
: >"$TEST_RECONFIG_LOG"

# An INI document is one reconfiguration: one merge phase, one update phase.
printf '[app]\nk = doc\nj = doc\n[limits2]\nx = 1\n' >"$MFS_TMP/doc.ini"
assert_ok bash -c "cat '$MFS_TMP/doc.ini' > '$O/config.ini'"
order_is "one INI document with three keys: one reconfiguration" \
	"$(printf '%s\n' 'ola merge k=doc' 'exec validate' \
		'olb merge k=doc' 'olb update old=restart-olb new=doc' \
		'exec on_update' 'ola update old=restart-olb new=doc')"
assert_file "$OC/app/j" $'doc\n'
# ...and a refused one is refused whole, by its write(): closing the file
# afterwards starts nothing more.
assert_write EIO "$O/config.ini" $'[app]\nk = fail-exec\nj = other\n'
sleep 0.3
order_is "an INI document failing in on_update: one reconfiguration, rolled back" \
	"$(printf '%s\n' 'ola merge k=fail-exec' 'exec validate' 'olb merge k=fail-exec' \
		'olb update old=doc new=fail-exec' 'exec on_update' 'olb update old=fail-exec new=doc')"
assert_file "$OC/app/j" $'doc\n'
assert_file "$OC/app/k" $'doc\n'
assert_write EINVAL "$O/config.ini" $'[app]\nk = reject-olb\nj = other\n'
sleep 0.3
order_is "an INI document rejected by olb: one merge phase" \
	$'ola merge k=reject-olb\nexec validate\nolb merge k=reject-olb'
assert_file "$OC/app/j" $'doc\n'
: >"$TEST_RECONFIG_LOG"

# timeout_ms applies live; a new hook command needs a restart (SPEC.md's
# exec settings).
assert_ok bash -c "echo 3000 > '$OC/exec/timeout_ms'"
assert_eq "restarts after timeout_ms changed" 2 "$(status_field "$O" restarts)"
assert_file "$OC/exec/timeout_ms" $'3000\n'
assert_ok bash -c "echo \"sh '$HOOK' on_start; true\" > '$OC/exec/on_start'"
assert_eq "restarts after on_start changed" 3 "$(status_field "$O" restarts)"
assert_match "last_restart names on_start" 'on_start' "$(status_field "$O" last_restart)"
assert_file "$O/store/data" $'kept\n'

# == hook timeout ===============================================================
#
# timeout_ms applies live; a hook past it is killed, with what it started,
# and counts as a failure: EIO from on_update, EINVAL from validate.

W=$MNT/services/slow
assert_ok mkdir "$W"
assert_ok mkdir "$W/config/exec"
SLEEP="sleep 5.$$"
# What "at once" allows, in ms (more under valgrind).
QUICK=1500
if mfs_wrapper; then
	QUICK=4500
fi
# Staged: with this on_update, any change once exec runs would time out.
assert_ok bash -c "echo '$SLEEP; true' > '$W/config/exec/on_update'"
assert_ok bash -c "echo 200 > '$W/config/exec/timeout_ms'"
assert_ok mkdir "$W/config/app"
assert_ok mkdir "$W/plugins/exec"
assert_fails_with EINVAL bash -c "echo 0 > '$W/config/exec/timeout_ms'"
assert_fails_with EINVAL bash -c "echo soon > '$W/config/exec/timeout_ms'"
assert_file "$W/config/exec/timeout_ms" $'200\n'
t0=$(mfs_now_ms)
assert_write EIO "$W/config/app/k" v
t1=$(mfs_now_ms)
assert_true "on_update sleeping 5 s fails within $QUICK ms (took $((t1 - t0)) ms)" test $((t1 - t0)) -lt $QUICK
assert_true "on_update past timeout_ms took at least 200 ms ($((t1 - t0)) ms)" test $((t1 - t0)) -ge 190
assert_absent "$W/config/app/k"
assert_reason "on_update past timeout_ms" "$W" "timed out"
assert_true "the hook's sleep is killed too" \
	mfs_poll 2000 eval "! pgrep -f '^$SLEEP\$' >/dev/null"
# validate past timeout_ms: it checks its own installation, so it cannot
# even be installed.
assert_ok bash -c "echo 'sh -c true' > '$W/config/exec/on_update'"
t0=$(mfs_now_ms)
assert_fails_with EINVAL bash -c "echo '$SLEEP' > '$W/config/exec/validate'"
t1=$(mfs_now_ms)
assert_true "validate sleeping 5 s is refused within $QUICK ms (took $((t1 - t0)) ms)" test $((t1 - t0)) -lt $QUICK
assert_file "$W/config/exec/validate" $'\n'
assert_true "the validate hook's sleep is killed too" \
	mfs_poll 2000 eval "! pgrep -f '^$SLEEP\$' >/dev/null"
assert_ok bash -c "echo v > '$W/config/app/k'"
assert_file "$W/config/app/k" $'v\n'

mfs_unmount
mfs_done
