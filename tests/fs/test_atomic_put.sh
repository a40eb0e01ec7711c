#!/bin/bash
# SPDX-License-Identifier: MIT
# Values change whole (issue 11, items 1 and 4): a store key or a
# config/APP/KEY replaced by `>` is never seen empty in between, `: > k`
# empties it at close, a refused write leaves the old value, the writer's own
# file descriptor sees regular-file semantics, and poll() on a value reports
# POLLPRI for every change made by anyone but the poller's own fd.
#
# Environment, besides lib.sh's: VALUEPROBE, the valueprobe helper (required).

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -n ${VALUEPROBE:-} && -x $VALUEPROBE ]] || mfs_bail "VALUEPROBE is not set to the valueprobe helper"

# race FILE: an `echo` loop rewrites FILE while readers read it for 2 s; no
# read sees it empty, and there were many.
race()
{
	local file=$1 out reads empty
	echo first >"$file"
	(
		trap 'exit 0' TERM
		while :; do
			echo value >"$file"
			echo other >"$file"
		done
	) 2>/dev/null &
	local writer=$!
	out=$("$VALUEPROBE" readers "$file" 2000)
	kill "$writer"
	wait "$writer" 2>/dev/null
	read -r reads empty <<<"${out//[a-z=]/ }"
	local rel=${file#"$MNT"/}
	assert_true "$rel: readers ran ($out)" test "${reads:-0}" -gt 200
	assert_eq "$rel: reads that saw an empty value, racing an echo loop" 0 "${empty:-x}"
}

# own FILE: the writer's fd after open(O_RDWR|O_TRUNC): size 0, EOF, then
# what it wrote.
own()
{
	local file=$1 rel=${1#"$MNT"/}
	printf 'old value' >"$file"
	assert_eq "$rel: the writer's own fd: fstat, read, write, pread" \
		"size=0 read=0 back=new" "$("$VALUEPROBE" own "$file" new)"
	assert_file "$file" new
}

# polls FILE: poll(POLLPRI) on FILE's open fd wakes for another's write, rm,
# and not for its own write or while nothing changes.
polls()
{
	local file=$1 rel=${1#"$MNT"/} out=$MFS_TMP/poll.out ready=$MFS_TMP/poll.ready
	echo one >"$file"

	# Nothing changes: no POLLPRI.
	assert_eq "$rel: poll() of an unchanged value" timeout \
		"$("$VALUEPROBE" poll "$file" 300 1)"
	# A write through the poller's own fd does not wake it.
	assert_eq "$rel: poll() after a write through its own fd" timeout \
		"$("$VALUEPROBE" poll "$file" 300 1 "" mine)"

	# Another process writes: POLLPRI|POLLERR (about 20 ms on an idle
	# machine; the bound is generous for loaded sanitizer runs), once.
	rm -f "$ready"
	"$VALUEPROBE" poll "$file" 5000 2 "$ready" >"$out" &
	local p=$!
	assert_true "$rel: the poller is ready" mfs_poll 3000 test -e "$ready"
	sleep 0.1
	local t0
	t0=$(mfs_now_ms)
	echo two >"$file"
	assert_true "$rel: the poller woke" mfs_poll 6000 test -s "$out"
	printf '#    %s: the poller woke after %d ms\n' "$rel" $(($(mfs_now_ms) - t0))
	wait "$p"
	assert_eq "$rel: poll() after another's write, then no change" $'pri+err\ntimeout' \
		"$(cat "$out")"

	# rm: POLLPRI|POLLERR.
	rm -f "$ready"
	"$VALUEPROBE" poll "$file" 5000 1 "$ready" >"$out" &
	p=$!
	assert_true "$rel: the poller is ready" mfs_poll 3000 test -e "$ready"
	sleep 0.1
	rm "$file"
	wait "$p"
	assert_eq "$rel: poll() when the key is removed" pri+err "$(cat "$out")"
}

mfs_mount
S=$MNT/services/put
assert_ok mkdir "$S"
assert_ok mkdir "$S/plugins/limits"
assert_ok mkdir "$MNT/config/app"

for f in "$S/store/k" "$MNT/config/app/k"; do
	rel=${f#"$MNT"/}
	# -- item 1: atomic put -------------------------------------------------
	race "$f"
	# `: > k` empties it at once (at close).
	echo full >"$f"
	assert_ok bash -c ": > '$f'"
	assert_file "$f" ''
	assert_eq "$rel: stat after : >" 0 "$(stat -c %s "$f")"
	own "$f"
	# -- item 4: poll() ---------------------------------------------------------
	polls "$f"
done

# A refused write after `>` leaves the old value (limits: max_value_bytes).
assert_ok bash -c "echo 1000 > '$S/config/limits/max_value_bytes'"
assert_ok bash -c "echo old > '$S/store/big'"
assert_fails_with EFBIG bash -c "head -c 2000 /dev/zero > '$S/store/big'"
assert_file "$S/store/big" $'old\n'
assert_eq "stat after the refused write" 4 "$(stat -c %s "$S/store/big")"
assert_reason "the refused put" "$S" "max_value_bytes"
# trace sees a `>` as one put.
assert_ok mkdir "$S/plugins/trace"
assert_ok bash -c "echo new > '$S/store/big'"
assert_eq "trace: echo > is one put" "put big 4" "$(tail -n 1 "$S/trace" | cut -d' ' -f2-)"

# A ttl expiry wakes a poller.
assert_ok mkdir "$S/plugins/ttl"
assert_ok bash -c "echo 1 > '$S/config/ttl/seconds'"
echo short >"$S/store/t"
assert_eq "poll() on a key that expires" pri+err \
	"$("$VALUEPROBE" poll "$S/store/t" 6000 1)"
assert_absent "$S/store/t"

# mv over a polled key wakes it.
echo a >"$S/store/a"
echo b >"$S/store/b"
rm -f "$MFS_TMP/r"
"$VALUEPROBE" poll "$S/store/b" 5000 1 "$MFS_TMP/r" >"$MFS_TMP/mv.out" &
p=$!
assert_true "the poller of b is ready" mfs_poll 3000 test -e "$MFS_TMP/r"
sleep 0.1
assert_ok mv "$S/store/a" "$S/store/b"
wait "$p"
assert_eq "poll() on a key replaced by mv" pri+err "$(cat "$MFS_TMP/mv.out")"

mfs_unmount
mfs_done
