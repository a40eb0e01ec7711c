#!/usr/bin/env bash
# Follows the events feed and prints each change with a readable time:
#   contrib/events-tail.sh MOUNTPOINT [OP...]
# With OPs (write, delete, restart, ...), prints only those. Each read of
# MOUNTPOINT/events blocks until there is something new; a reader that falls
# far behind gets one "SEQ overflow" line and goes on from the newest.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 MOUNTPOINT [OP...]" >&2; exit 2; }
mnt=$1
shift
want=" $* "

while read -r seq op path detail; do
	if [ "$op" = overflow ]; then
		printf '%s events were lost (the reader fell behind)\n' "$(date +%T)" >&2
		continue
	fi
	[ $# -eq 0 ] || [[ $want == *" $op "* ]] || continue
	printf '%s #%s %-11s %s%s\n' "$(date +%T)" "$seq" "$op" "$path" "${detail:+ ($detail)}"
done <"$mnt/events"
