#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Reports the members of a registry pool coming and going:
#   contrib/watch-pool.sh MOUNTPOINT POOL
# A member is a process that stored a value under POOL; it leaves when it
# unstores (rm) or exits (the daemon removes it within 100 ms). Runs until
# interrupted. Needs inotifywait (Debian: inotify-tools).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 MOUNTPOINT POOL" >&2; exit 2; }
pool="$1/registry/$2"
[ -d "$pool" ] || mkdir "$pool"

for pid in $(ls "$pool"); do
	printf 'member %s %s\n' "$pid" "$(cat "$pool/$pid" 2>/dev/null)"
done
inotifywait -m -q -e create,delete,close_write --format '%e %f' "$pool" |
	while read -r event pid; do
		case $event in
		CREATE*) ;; # the value follows with CLOSE_WRITE
		CLOSE_WRITE*) printf 'joined %s %s\n' "$pid" "$(cat "$pool/$pid" 2>/dev/null)" ;;
		DELETE*) printf 'left %s\n' "$pid" ;;
		esac
	done
