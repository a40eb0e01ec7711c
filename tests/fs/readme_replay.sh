#!/bin/bash
# SPDX-License-Identifier: MIT
# Replays the shell sessions of the README against a mount of the example
# tree, in the README's order, as the users their prompts name:
#   readme_replay.sh check README MOUNTPOINT     one line per session: "ok",
#                                                 "FAIL" (with a diff per command
#                                                 that differs) or "skip"
#   readme_replay.sh rewrite README MOUNTPOINT   prints the README with each
#                                                 session's output as it is now
#   readme_replay.sh paths README                the files outside the mount the
#                                                 replayed sessions name, one a line
#
# A session is a fenced block whose first line is a command: `$ CMD` and
# `# CMD` run as root, `alice$ CMD` and `bob$ CMD` as those users; the lines
# up to the next command are its output (stdout and stderr). Each command
# runs in a shell of its own (`bash -c`) in the mountpoint, with a clean
# environment: HOME, USER, LOGNAME, SHELL=/bin/bash, LANG=C.UTF-8 and
# Debian's default PATH (root's: /usr/local/sbin:/usr/local/bin:/usr/sbin:
# /usr/bin:/sbin:/bin; a user's: /usr/local/bin:/usr/bin:/bin), and the
# variable MALLAFS_README_REPLAY, which the caller may set to find what the
# commands left running. A command that runs longer than 60 s fails.
# Outputs are compared once what changes from run to run is masked: times,
# dates, hexadecimal names and checksums, and numbers of three digits or
# more (process IDs, user IDs, sizes, event numbers).
#
# Markers. A session replays on the fresh mount alone, unless the line right
# before its fence is a marker, an HTML comment (markdown shows nothing):
#   <!-- replay: skip: WHY -->   the session is not replayed; the report
#                                counts it and gives WHY (name the test that
#                                covers it, or what it needs: etcd, a crash)
#   <!-- replay: NOTE -->        the session replays; NOTE says what it needs
#                                beyond the fresh mount, and the report
#                                repeats it. A session with commands as
#                                alice or bob must name each user in its
#                                NOTE (the caller makes them); one that runs
#                                `mallafs` (or mounts -t fuse.mallafs) must
#                                name mallafs (the caller puts the
#                                build's first on root's PATH, through
#                                $MALLAFS, as `quickstart.sh run` installs
#                                it in /usr/local/bin)
# A marker anywhere else, or malformed, fails the check.
#
# Adding a session: write its commands in the README where the tour has
# reached the state it needs (sessions run in order, on one mount), each
# followed by its output, the marker above its fence if it needs one; then
# compare with what `rewrite` prints. test_readme.sh also checks that the
# sessions clean up: no file outside the mount that a command names (under
# /tmp, /var, /etc, /home or ~, as `paths` lists them) is left once they
# are done, and no process they started still runs.
set -u
mode=$1 readme=$2 mnt=${3:-}

# The README as records, tab-separated:
#   S N LINE MARKER   session N starts (its fence at LINE); MARKER may be empty
#   X                 the session ends (its closing fence follows as T)
#   C USER PROMPT CMD a command
#   O LINE            a line of output
#   T LINE            any other line, kept as it is
#   E LINE WHY        a fault of the README's markers
records()
{
	awk '
	function prompt(l) {
		return l ~ /^\$ / || l ~ /^# / || l ~ /^alice\$ / || l ~ /^bob\$ /
	}
	function pending_marker_fault() {
		if (marker_line) print "E\t" marker_line "\ta marker must be the line right before the fence of a session"
		marker_line = 0; marker = ""
	}
	{
		if (!inblock && $0 ~ /^```/) {
			print "T\t" $0; inblock = 1; first = 1; fence = NR
			mk = marker; mkl = marker_line; marker = ""; marker_line = 0
			next
		}
		if (inblock && $0 == "```") {
			if (session) print "X"
			print "T\t" $0; inblock = 0; session = 0; next
		}
		if (inblock && first) {
			first = 0; session = prompt($0)
			if (session) print "S\t" ++n "\t" fence "\t" mk
			else if (mkl) print "E\t" mkl "\ta marker must be the line right before the fence of a session"
		}
		if (!inblock) {
			pending_marker_fault()
			if ($0 ~ /^<!-- *replay/) {
				if (match($0, /^<!-- replay: .*[^ ] -->$/)) {
					marker = substr($0, 14, length($0) - 17)
					marker_line = NR
				} else {
					print "E\t" NR "\tmalformed marker (<!-- replay: NOTE --> or <!-- replay: skip: WHY -->)"
				}
			}
		}
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
	}
	END { pending_marker_fault() }' "$readme"
}

mask()
{
	sed -E -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z/TIME/g' \
		-e 's/[A-Z][a-z]{2} +[0-9]{1,2} +[0-9]{2}:[0-9]{2}/DATE/g' \
		-e 's/\b[0-9a-f]{12,}\b/HEX/g' \
		-e 's/[0-9]{3,}/N/g'
}

# The files outside the mount a command names: absolute paths under /tmp,
# /var, /etc and /home, and ~/ (the user's home), glob characters dropped.
named_paths()
{
	local user=$1 cmd=$2 home=/root p
	[[ $user == root ]] || home=/home/$user
	grep -oE "(~|/tmp|/var|/etc|/home)/[^][ ;&|<>'\"()\`$]*" <<<"$cmd" |
		while IFS= read -r p; do
			p=${p/#\~/$home}
			p=${p%%[*?]*}
			p=${p%/}
			[[ -z $p ]] || printf '%s\n' "$p"
		done
}

# The output goes to a file, not a pipe: a command may leave a process
# running in the background (`sleep 300 &`) that holds it open.
out=$(mktemp)
trap 'rm -f "$out"' EXIT
root_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[[ -z ${MALLAFS:-} ]] || root_path=$(dirname "$MALLAFS"):$root_path
run()
{
	local user=$1 cmd=$2 home=/root path=$root_path start=$SECONDS
	if [[ $user != root ]]; then
		home=/home/$user path=/usr/local/bin:/usr/bin:/bin
	fi
	(cd "$mnt" && timeout -k 5 60 setpriv --reuid="$user" --regid="$user" --init-groups \
		env -i HOME="$home" USER="$user" LOGNAME="$user" SHELL=/bin/bash LANG=C.UTF-8 \
		PATH="$path" MALLAFS_README_REPLAY="${MALLAFS_README_REPLAY:-1}" \
		bash -c "$cmd" >"$out" 2>&1)
	sed "s|$mnt/||g" "$out"
	((SECONDS - start < 60)) || echo "readme_replay: timed out after 60 s"
}

n=0 line=0 marker='' skip='' sfail=0 cmd='' user='' prompt='' expected='' nout=0
failures=0 count=0 sessions=0 skipped=() faults=0 diffs=''
finish()
{
	[[ -n $cmd ]] || return 0
	local actual
	if [[ $mode == paths ]]; then
		[[ -n $skip ]] || named_paths "$user" "$cmd"
		cmd='' expected='' nout=0
		return 0
	fi
	if [[ -n $skip ]]; then
		[[ $mode != rewrite ]] || { [[ -z $expected ]] || printf '%s\n' "$expected"; }
		cmd='' expected='' nout=0
		return 0
	fi
	actual=$(run "$user" "$cmd")
	count=$((count + 1))
	if [[ $mode == rewrite ]]; then
		[[ -z $actual ]] || printf '%s\n' "$actual"
	elif [[ $(mask <<<"$actual") != "$(mask <<<"$expected")" ]]; then
		failures=$((failures + 1)) sfail=$((sfail + 1))
		diffs+="       | $user\$ $cmd"$'\n'
		diffs+=$(diff <(printf '%s\n' "$expected") <(printf '%s\n' "$actual") | sed 's/^/       |   /')$'\n'
	fi
	cmd='' expected='' nout=0
}

# Ends session N: its report line.
end_session()
{
	finish
	((n > 0)) && [[ $mode == check ]] || return 0
	local what="README session $n (line $line)"
	if [[ -n $skip ]]; then
		echo "skip - $what: $skip"
	elif ((sfail == 0)); then
		echo "ok   - $what${marker:+: $marker}"
	else
		echo "FAIL - $what: $sfail command(s) differ"
		printf '%s' "$diffs"
	fi
	n=0 sfail=0 diffs=''
}

# The users a session runs as and whether it runs mallafs, for its marker.
check_marker()
{
	local u
	[[ $mode == check && -z $skip ]] || return 0
	for u in alice bob; do
		if grep -q "^C${tab}$u${tab}" <<<"$1" && [[ $marker != *"$u"* ]]; then
			echo "FAIL - README session $n (line $line) runs commands as $u: its marker must name $u (<!-- replay: as $u ... -->)"
			faults=$((faults + 1))
		fi
	done
	if cut -f 4- <<<"$1" | grep -qE '(^|[;&|(]|\$\() *mallafs( |$)|fuse\.mallafs' &&
		[[ $marker != *mallafs* ]]; then
		echo "FAIL - README session $n (line $line) runs mallafs: its marker must say which (<!-- replay: ... mallafs ... -->)"
		faults=$((faults + 1))
	fi
}

tab=$'\t'
all=$(records)
while IFS= read -r rec; do
	kind=${rec%%$'\t'*}
	rest=${rec#*$'\t'}
	case $kind in
	S)
		end_session
		sessions=$((sessions + 1))
		IFS=$'\t' read -r n line marker <<<"$rest"
		skip=''
		if [[ $marker == skip:* ]]; then
			skip=${marker#skip:}
			skip=${skip# }
			skipped+=("session $n (line $line): $skip")
		fi
		# This session's records, up to the next session.
		check_marker "$(awk -v n="$n" -F '\t' '$1 == "S" { s = ($2 == n) } s && $1 == "C"' <<<"$all")"
		;;
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
	X)
		end_session
		;;
	T)
		finish
		[[ $mode != rewrite ]] || printf '%s\n' "$rest"
		;;
	E)
		[[ $mode == check ]] || continue
		echo "FAIL - README line ${rest%%$'\t'*}: ${rest#*$'\t'}"
		faults=$((faults + 1))
		;;
	esac
done <<<"$all"
end_session
[[ $mode == check ]] || exit 0
summary="# $sessions sessions: $((sessions - ${#skipped[@]})) replayed, ${#skipped[@]} skipped; $count commands, $failures differ"
((faults == 0)) || summary+="; $faults marker fault(s)"
echo "$summary"
for s in "${skipped[@]}"; do
	echo "# skipped: $s"
done
((failures == 0 && faults == 0))
