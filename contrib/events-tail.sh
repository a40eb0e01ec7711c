#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Follows the events feed and prints each change with a readable time:
#   contrib/events-tail.sh [--after SEQ | --state FILE] MOUNTPOINT [OP...]
# With OPs (write, delete, restart, ...), prints only those.
#
# Each read of MOUNTPOINT/events blocks until there is something new; the
# feed answers whole lines, and the open file remembers where it is, so
# nothing is lost between two reads. A reader that falls far behind gets
# one "SEQ overflow" line and goes on from the newest; this script tells it
# on stderr.
#
# Resuming (it writes SEQ to its open events file: the mount's owner only):
#   --after SEQ   start after event SEQ, the last one you handled (0: from the
#                 oldest event the feed still keeps)
#   --state FILE  resume after the event saved in FILE, and save there the
#                 last event read whenever the feed has nothing more for now,
#                 and at exit (SIGINT, SIGTERM): a run killed harder repeats
#                 what it read since, it never skips. Without FILE, start from
#                 now. Event numbers start again at 1 with each run of the
#                 daemon: a FILE saved under an earlier run resumes from the
#                 oldest event the feed keeps.
# When the events after SEQ were already dropped from the feed (it keeps the
# last 4096, or mallafs -o events=N), the feed says "SEQ overflow" (SEQ: the
# first one lost) and goes on from the oldest it keeps.
set -euo pipefail
usage()
{
	echo "usage: $0 [--after SEQ | --state FILE] MOUNTPOINT [OP...]" >&2
	exit 2
}
after='' state=''
while [ $# -gt 0 ]; do
	case $1 in
	--after) [ $# -ge 2 ] || usage; after=$2; shift 2 ;;
	--state) [ $# -ge 2 ] || usage; state=$2; shift 2 ;;
	--) shift; break ;;
	-*) usage ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || usage
[[ -z $after || $after =~ ^[0-9]+$ ]] || { echo "$0: --after $after: not an event number" >&2; exit 2; }
[[ -z $after || -z $state ]] || usage
mnt=$1
shift
want=" $* "

# Which run of the daemon numbered the events: the time it started, which
# every file of the mount shows as its mtime.
born=$(stat -c %.9Y "$mnt/events")
last=''
if [ -n "$state" ] && [ -e "$state" ]; then
	read -r saved saved_born <"$state" || true
	if ! [[ ${saved:-} =~ ^[0-9]+$ ]]; then
		echo "$0: $state holds no event number: remove it to start from now" >&2
		exit 1
	fi
	if [ "${saved_born:-}" = "$born" ]; then
		after=$saved
	else
		echo "$0: the daemon restarted since $state was saved: from its oldest event kept" >&2
		after=0
	fi
fi

save()
{
	[ -n "$state" ] && [ -n "$last" ] || return 0
	printf '%s %s\n' "$last" "$born" >"$state.tmp" && mv -f "$state.tmp" "$state"
}

if [ -n "$after" ]; then
	exec 4<>"$mnt/events"
	printf '%s\n' "$after" >&4
else
	exec 4<"$mnt/events"
fi
# A cat of our own reads the feed, and this shell reads cat's pipe. bash
# runs a trap only between two commands, so a SIGINT or SIGTERM that came
# just before a read() that blocks would wait for the next event (forever,
# on a quiet feed). bash's `read -t` gives up after its timeout on a pipe,
# never on a file such as the feed: each read here waits a second at most.
# A line a timeout cut in two is joined again. On exit cat goes too, and
# when this shell is killed harder (SIGKILL), its parent-death signal ends
# it: a cat left blocked on a quiet feed would keep the mount busy.
exec 3< <(exec setpriv --pdeathsig TERM cat <&4)
reader=$!
exec 4<&-
stop()
{
	kill "$reader" 2>/dev/null || true
}
if [ -n "$state" ]; then
	trap 'save; exit 0' INT TERM
	trap 'save; stop' EXIT
else
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap stop EXIT
fi

partial=''
while :; do
	chunk=''
	if IFS= read -r -t 1 -u 3 chunk; then
		line=$partial$chunk
		partial=''
	elif [ $? -gt 128 ]; then
		partial+=$chunk
		continue
	else
		break
	fi
	[[ $line =~ ^([^ ]*)( ([^ ]*))?( ([^ ]*))?( (.*))?$ ]]
	seq=${BASH_REMATCH[1]} op=${BASH_REMATCH[3]} path=${BASH_REMATCH[5]} detail=${BASH_REMATCH[7]}
	if [ "$op" = overflow ]; then
		printf '%(%T)T events from #%s on were lost (dropped from the feed)\n' -1 "$seq" >&2
		continue
	fi
	if [ $# -eq 0 ] || [[ $want == *" $op "* ]]; then
		printf '%(%T)T #%s %-11s %s%s\n' -1 "$seq" "$op" "$path" "${detail:+ ($detail)}"
	fi
	last=$seq
	# Nothing more for now: a good time to save where we are.
	[ -z "$state" ] || read -r -t 0 -u 3 || save
done
