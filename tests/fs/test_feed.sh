#!/bin/bash
# SPDX-License-Identifier: MIT
# The events feed survives shell readers, and a reader resumes where it left
# off (issue 11, item 5). `events` is a stream: lseek fails with ESPIPE, so
# bash's `read` takes it byte by byte instead of reading a block and seeking
# back to the end of the line it used (which the feed used to ignore, losing
# whole runs of events). A read smaller than a line gets it in pieces. A
# write of "SEQ\n" to an open events file resumes after event SEQ; one no
# longer kept gives one "SEQ overflow" line, then the oldest kept.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TAIL=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../contrib" && pwd)/events-tail.sh
[[ -x $TAIL ]] || mfs_bail "no contrib/events-tail.sh at $TAIL"

# seqs FILE: the event numbers events-tail.sh printed ("TIME #SEQ OP ...").
seqs()
{
	sed -n 's/^[0-9:]* #\([0-9]*\) .*/\1/p' "$1"
}

# in_order WHAT FILE FIRST LAST: FILE's numbers are FIRST..LAST, each once.
in_order()
{
	local what=$1 got
	got=$(seqs "$2" | awk -v a="$3" -v b="$4" '
		$1 != a + n { printf "#%d where #%d was due\n", $1, a + n; bad++; if (bad > 5) exit }
		{ n++ }
		END { if (!bad && n != b - a + 1) printf "%d lines for %d events\n", n, b - a + 1 }')
	assert_eq "$what" '' "$got"
}

# bash's `read -t` does not time out on a regular file (events is one), so
# the reads that may wait run in a child that `timeout` interrupts: a read
# interrupted while it waits takes nothing from the open file.

# feed_lines FD N: reads N lines from FD (within 10 s), prints them.
feed_lines()
{
	timeout 10 bash -c 'for ((i = 0; i < $1; i++)); do
		IFS= read -r line || exit 1
		printf "%s\n" "$line"
	done' _ "$2" <&"$1"
}

# silent FD: nothing more to read on FD for 0.3 s.
silent()
{
	local line
	if line=$(timeout 0.3 bash -c 'IFS= read -r line && printf "%s" "$line"' <&"$1"); then
		echo "read: $line"
		return 1
	fi
}

mfs_require
mfs_mount
E=$MNT/events
S=$MNT/services/feed
R=services/feed
assert_ok mkdir "$S"

# -- a stream -----------------------------------------------------------------

assert_errno ESPIPE lseek "$E" 0
assert_errno ESPIPE lseek "$E" 100
mfs_user mallafs-t1
assert_eq "another user may not open events for writing" EACCES \
	"$(mfs_as mallafs-t1 "$FSPROBE" errno open "$E" rw 2>&1)"

# -- events-tail.sh against a burst of 3,000 events ----------------------------

out=$MFS_TMP/tail.out
"$TAIL" "$MNT" >"$out" 2>"$out.err" </dev/null &
tail_pid=$!
MFS_CHILDREN+=("$tail_pid")
# It reads from its open on: append to begin until it shows.
mfs_poll 10000 eval "echo b >>'$S/store/begin' && grep -q ' $R/store/begin' '$out'" ||
	fail "events-tail.sh shows the first event" "$(cat "$out" "$out.err")"
start=$(mfs_now_ms)
for ((i = 1; i <= 3000; i++)); do
	echo "$i" >>"$S/store/k" || break
done
echo end >>"$S/store/end"
burst=$(($(mfs_now_ms) - start))
mfs_poll 60000 grep -q " $R/store/end" "$out" ||
	fail "events-tail.sh shows the end of the burst within 60 s" "$(tail -n 3 "$out")"
took=$(($(mfs_now_ms) - start))
first=$(seqs "$out" | head -n 1)
last=$(grep " $R/store/end" "$out" | seqs /dev/stdin | tail -n 1)
n_k=$(grep -c " $R/store/k" "$out")
if ((n_k >= 3000 && last - first < 4096)); then
	pass "the burst: $n_k events of store/k, #$first to #$last, within the ring of 4096"
else
	fail "the burst: 3,000 events of store/k within the ring of 4096" \
		"$n_k of store/k, #$first to #$last"
fi
in_order "events-tail.sh saw every event from #$first to #$last once, in order" \
	"$out" "$first" "$last"
assert_eq "events-tail.sh said nothing on stderr (no overflow)" '' "$(cat "$out.err")"
echo "# the burst took ${burst} ms, events-tail.sh had read it all ${took} ms after it began"
mfs_kill_child "$tail_pid"

# -- reads smaller than a line get it in pieces --------------------------------

# Both from the first event: one open reads 64 KiB, the other 7 bytes at a
# time. The first line, "1 mkdir services/feed\n", is 22 bytes: three reads
# of 7, then its newline alone (a read returns whole lines when it can),
# then 7 bytes of the next.
p=$MFS_TMP/pieces
exec {A}<>"$E" {B}<>"$E" || mfs_bail "open events"
echo 0 >&"$A" && echo 0 >&"$B" || fail "write 0 to events"
dd bs=65536 count=1 status=none of="$p.whole" <&"$B"
assert_eq "a read of 64 KiB starts with event 1 and ends with a whole line" \
	"1 mkdir services/feed|$(printf '\n' | od -An -c)" \
	"$(head -n 1 "$p.whole")|$(tail -c 1 "$p.whole" | od -An -c)"
dd bs=7 count=5 status=none of="$p.small" <&"$A"
assert_eq "five reads of 7 bytes: 7, 7, 7, the newline, 7" \
	"$(head -c 29 "$p.whole" | od -An -c)" "$(od -An -c "$p.small")"
dd bs=4096 count=1 status=none of="$p.more" <&"$A"
n=$(($(stat -c %s "$p.small") + $(stat -c %s "$p.more")))
if cmp -s <(cat "$p.small" "$p.more") <(head -c "$n" "$p.whole") &&
	[[ $(tail -c 1 "$p.more" | od -An -c) == "$(printf '\n' | od -An -c)" ]]; then
	pass "a read of 4 KiB then goes on where they stopped, to the end of a line ($n bytes)"
else
	fail "a read of 4 KiB then goes on where they stopped, to the end of a line" \
		"$(head -c 200 "$p.more")"
fi
exec {A}<&- {B}<&-

# -- resume after the last event handled ---------------------------------------

exec {F}<>"$E" || mfs_bail "open events"
for i in 1 2 3 4 5; do echo "$i" >>"$S/store/r"; done
got=$(feed_lines "$F" 3)
assert_match "a reader reads 3 of 5 events" "^[0-9]+ create $R/store/r"$'\n' "$got"
saved=$(tail -n 1 <<<"$got" | cut -d' ' -f1)
exec {F}<&-
for i in 6 7 8 9; do echo "$i" >>"$S/store/r"; done
exec {F}<>"$E" || mfs_bail "open events"
echo "$saved" >&"$F" || fail "write $saved to events"
got=$(feed_lines "$F" 7)
want=''
for ((i = 1; i <= 7; i++)); do
	want+="$((saved + i)) write $R/store/r $((2 * (i + 2)))"$'\n'
done
assert_eq "reopened, after writing $saved: the 7 events after it" "$want" "$got"$'\n'
assert_true "and nothing more" silent "$F"

# Garbage changes nothing: EINVAL, the reason in the log, the same cursor.
for bad in x -1 '12 13' ' 12' 99999999999999999999 12$'\n'$'\n' 9223372036854775808; do
	assert_eq "write $(mfs_show "$bad") to events: EINVAL" EINVAL \
		"$("$FSPROBE" errno write "$E" "$bad" 2>&1)"
done
if grep -q 'events: a resume must be SEQ' "$MFS_LOG"; then
	pass "a bad resume is logged with its reason"
else
	fail "a bad resume is logged with its reason" "$(tail -n 5 "$MFS_LOG")"
fi
{ printf 'nope\n' >&"$F"; } 2>/dev/null && fail "write nope to an open events: EINVAL"
echo 10 >>"$S/store/r"
assert_eq "after a refused write, the open file goes on where it was" \
	"$((saved + 8)) write $R/store/r 21" "$(feed_lines "$F" 1)"

# A seq yet to come waits for it.
next=$((saved + 9))
echo "$((next + 1))" >&"$F" || fail "write a future seq to events"
assert_true "after a seq yet to come: nothing to read" silent "$F"
for i in 11 12 13; do echo "$i" >>"$S/store/r"; done
assert_eq "then the events after it, once they come" "$((next + 2)) write $R/store/r 30" \
	"$(feed_lines "$F" 1)"
exec {F}<&-

# -- events-tail.sh --state -----------------------------------------------------

st=$MFS_TMP/tail.state
"$TAIL" --state "$st" "$MNT" >"$out" 2>"$out.err" </dev/null &
tail_pid=$!
MFS_CHILDREN+=("$tail_pid")
mfs_poll 10000 eval "echo s >>'$S/store/s1' && grep -q ' $R/store/s1' '$out'" ||
	fail "events-tail.sh --state shows the first event" "$(cat "$out" "$out.err")"
echo x >>"$S/store/s2"
mfs_poll 10000 eval "[[ \$(grep -c ' $R/store/s2' '$out') == 2 ]]" ||
	fail "events-tail.sh --state shows store/s2 (create, write)" "$(cat "$out")"
kill -TERM "$tail_pid"
if mfs_poll 5000 eval "! mfs_alive $tail_pid"; then
	pass "events-tail.sh ends on SIGTERM"
else
	fail "events-tail.sh ends on SIGTERM" "still running after 5 s: $(tr '\0' ' ' <"/proc/$tail_pid/wchan")"
	kill -9 "$tail_pid"
fi
wait "$tail_pid"
s2=$(grep " $R/store/s2" "$out" | seqs /dev/stdin | tail -n 1)
assert_eq "the state file holds the last event read and the daemon's start" \
	"$s2 $(stat -c %.9Y "$E")" "$(cat "$st" 2>&1)"
for i in 1 2 3; do echo "$i" >>"$S/store/s3"; done
"$TAIL" --state "$st" "$MNT" >"$out" 2>"$out.err" </dev/null &
tail_pid=$!
MFS_CHILDREN+=("$tail_pid")
mfs_poll 10000 eval "[[ \$(grep -c ' $R/store/s3' '$out') == 4 ]]" ||
	fail "events-tail.sh --state resumes with the 4 events missed" "$(cat "$out" "$out.err")"
sleep 0.2
in_order "events-tail.sh --state: exactly the events after #$s2" "$out" $((s2 + 1)) $((s2 + 4))
mfs_kill_child "$tail_pid"
mfs_unmount

# -- resume at an event the ring no longer keeps --------------------------------

mfs_mount -o events=16
E=$MNT/events
S=$MNT/services/feed
assert_ok mkdir "$S"
exec {F}<"$E" || mfs_bail "open events"
for ((i = 1; i <= 39; i++)); do echo "$i" >>"$S/store/k"; done
# Events C (create) and C+1..C+39 (writes); the ring keeps C+24..C+39.
c=$(feed_lines "$F" 1 | cut -d' ' -f1)
exec {F}<&-
exec {F}<>"$E" || mfs_bail "open events"
echo 5 >&"$F" || fail "write 5 to events"
got=$(feed_lines "$F" 17)
assert_eq "after 5 with 6..$((c + 23)) gone: one overflow line, then the oldest kept" \
	"6 overflow"$'\n'"$((c + 24)) write services/feed/store/k 63" "$(head -n 2 <<<"$got")"
assert_eq "then every event kept, to the newest" \
	"$((c + 39)) write services/feed/store/k 108" "$(tail -n 1 <<<"$got")"
assert_eq "one overflow line only" 1 "$(grep -c overflow <<<"$got")"
assert_true "and nothing more" silent "$F"
echo 0 >&"$F" || fail "write 0 to events"
assert_eq "after 0: 1 overflow, then the oldest kept" \
	"1 overflow"$'\n'"$((c + 24)) write services/feed/store/k 63" \
	"$(feed_lines "$F" 2)"
exec {F}<&-
"$TAIL" --after 20 "$MNT" >"$out" 2>"$out.err" </dev/null &
tail_pid=$!
MFS_CHILDREN+=("$tail_pid")
mfs_poll 10000 grep -q "#$((c + 39)) " "$out" ||
	fail "events-tail.sh --after 20 reads on to the newest" "$(cat "$out")"
assert_match "events-tail.sh tells the loss on stderr" 'events from #21 on were lost' \
	"$(cat "$out.err")"
in_order "events-tail.sh --after 20: then the events kept" "$out" $((c + 24)) $((c + 39))
mfs_kill_child "$tail_pid"
assert_fails_with EINVAL bash -c "echo junk > '$E'"
mfs_unmount

mfs_run_daemon -o events=0 "$MFS_TMP"
assert_match "-o events=0: refused" 'events=0: expected a count of events from 1 to' "$MFS_ERR"
assert_eq "-o events=0: exit status 1" 1 "$MFS_RC"

mfs_done
