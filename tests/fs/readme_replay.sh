#!/bin/bash
# SPDX-License-Identifier: MIT
# Replays the shell sessions of the README against a mount of the example
# tree, in the README's order, as the users their prompts name:
#   readme_replay.sh check README MOUNTPOINT     prints "ok"/"FAIL" lines
#   readme_replay.sh rewrite README MOUNTPOINT   prints the README with each
#                                                 session's output as it is now
# A session is a fenced block whose first line is a command: `$ CMD` and
# `# CMD` run as root, `alice$ CMD` and `bob$ CMD` as those users; the lines
# up to the next command are its output (stdout and stderr). Each command
# runs in a shell of its own (`bash -c`) in the mountpoint. Outputs are
# compared once what changes from run to run is masked: times, dates,
# hexadecimal names and checksums, and numbers of three digits or more
# (process IDs, user IDs, sizes, event numbers).
set -u
mode=$1 readme=$2 mnt=$3

# The README as records: B (a session starts), C USER CMD, O LINE, T LINE
# (any other line, kept as it is).
records()
{
	awk '
	function prompt(l) {
		return l ~ /^\$ / || l ~ /^# / || l ~ /^alice\$ / || l ~ /^bob\$ /
	}
	{
		if (!inblock && $0 == "```") { print "T\t" $0; inblock = 1; first = 1; next }
		if (inblock && $0 == "```") { print "T\t" $0; inblock = 0; session = 0; next }
		if (inblock && first) { first = 0; session = prompt($0); if (session) print "B" }
		if (!session) { print "T\t" $0; next }
		if (prompt($0)) {
			user = "root"
			if ($0 ~ /^alice\$ /) user = "alice"
			else if ($0 ~ /^bob\$ /) user = "bob"
			p = $0
			sub(/ .*/, "", p)
			cmd = $0
			sub(/^(alice|bob)?[$#] /, "", cmd)
			print "C\t" user "\t" p "\t" cmd
		} else {
			print "O\t" $0
		}
	}' "$readme"
}

mask()
{
	sed -E -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z/TIME/g' \
		-e 's/[A-Z][a-z]{2} +[0-9]{1,2} +[0-9]{2}:[0-9]{2}/DATE/g' \
		-e 's/\b[0-9a-f]{12,}\b/HEX/g' \
		-e 's/[0-9]{3,}/N/g'
}

# The output goes to a file, not a pipe: a command may leave a process
# running in the background (`sleep 300 &`) that holds it open.
out=$(mktemp)
trap 'rm -f "$out"' EXIT
run()
{
	local user=$1 cmd=$2
	if [[ $user == root ]]; then
		(cd "$mnt" && HOME=/root bash -c "$cmd" >"$out" 2>&1)
	else
		(cd "$mnt" && setpriv --reuid="$user" --regid="$user" --init-groups \
			env -i HOME="/home/$user" USER="$user" PATH=/usr/bin:/bin \
			bash -c "$cmd" >"$out" 2>&1)
	fi
	sed "s|$mnt/||g" "$out"
}

cmd='' user='' prompt='' expected='' nout=0 failures=0 count=0
finish()
{
	[[ -n $cmd ]] || return 0
	local actual
	actual=$(run "$user" "$cmd")
	count=$((count + 1))
	if [[ $mode == rewrite ]]; then
		[[ -z $actual ]] || printf '%s\n' "$actual"
	elif [[ $(mask <<<"$actual") == "$(mask <<<"$expected")" ]]; then
		echo "ok   - README: $user\$ ${cmd:0:90}"
	else
		failures=$((failures + 1))
		echo "FAIL - README: $user\$ $cmd"
		diff <(printf '%s\n' "$expected") <(printf '%s\n' "$actual") | sed 's/^/       | /'
	fi
	cmd='' expected='' nout=0
}

while IFS= read -r line; do
	kind=${line%%$'\t'*}
	rest=${line#*$'\t'}
	case $kind in
	B) ;;
	C)
		finish
		user=${rest%%$'\t'*}
		rest=${rest#*$'\t'}
		prompt=${rest%%$'\t'*}
		cmd=${rest#*$'\t'}
		[[ $mode != rewrite ]] || printf '%s %s\n' "$prompt" "$cmd"
		;;
	O)
		((nout++)) && expected+=$'\n'
		expected+=$rest
		;;
	T)
		finish
		[[ $mode != rewrite ]] || printf '%s\n' "$rest"
		;;
	esac
done < <(records)
finish
[[ $mode == rewrite ]] || echo "# $count commands, $failures differ"
((failures == 0))
