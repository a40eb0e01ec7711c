#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The man page mallafs(8), as man(1) shows it: it renders without a warning
# from man or groff, has every section a reader looks for, and documents
# what the code offers, so that it cannot drift from it:
#   - every option `mallafs --help` prints, as an entry of OPTIONS;
#   - every built-in plugin --help names, as a subsection of BUILT-IN
#     PLUGINS, and every setting the plugins declare (plugins/*.c), as an
#     entry there;
#   - every errno of the README's "Errors" table, as an entry of ERRORS;
# and the build installs it to MANDIR/man8.
#
# usage: man.sh PAGE MALLAFS SOURCE_ROOT BUILD_DIR
set -u
page=${1:?usage: man.sh PAGE MALLAFS SOURCE_ROOT BUILD_DIR}
mallafs=${2:?usage: man.sh PAGE MALLAFS SOURCE_ROOT BUILD_DIR}
src=${3:?usage: man.sh PAGE MALLAFS SOURCE_ROOT BUILD_DIR}
build=${4:?usage: man.sh PAGE MALLAFS SOURCE_ROOT BUILD_DIR}

passed=0
failed=0
pass() {
	passed=$((passed + 1))
	printf 'ok   - %s\n' "$*"
}
fail() {
	failed=$((failed + 1))
	printf 'FAIL - %s\n' "$1"
	shift
	local d
	for d in "$@"; do
		printf '%s\n' "$d" | sed 's/^/       | /'
	done
}
finish() {
	echo "$passed passed, $failed failed"
	((failed == 0))
	exit
}

for tool in man groff; do
	if ! command -v "$tool" >/dev/null; then
		fail "$tool is not installed (contrib/quickstart.sh installs man-db and groff-base)"
		finish
	fi
done
if [[ ! -s $page ]]; then
	fail "no man page at $page (doc/meson.build makes it from doc/mallafs.8.scd.in)"
	finish
fi
pass "the page exists: $page"

# One locale and width for every rendering: what a user sees on an
# 80-column terminal, formatting stripped (man does so when not on a tty).
# MAN_DISABLE_SECCOMP: man-db's sandbox of its filters fails in some
# containers; the page is ours, and nothing here needs it.
export LC_ALL=C.UTF-8 MANWIDTH=80 MANPAGER=cat PAGER=cat MAN_DISABLE_SECCOMP=1
unset MANOPT MAN_KEEP_FORMATTING

warnings=$(man --warnings -l "$page" 2>&1 >/dev/null)
if [[ -z $warnings ]]; then
	pass "man --warnings -l renders it without a warning"
else
	fail "man --warnings -l warns" "$warnings"
fi
warnings=$(groff -man -ww -z -Tutf8 "$page" 2>&1)
if [[ -z $warnings ]]; then
	pass "groff -man -ww renders it without a warning"
else
	fail "groff -man -ww warns" "$warnings"
fi

if ! text=$(man -l "$page" 2>&1); then
	fail "man -l $page fails" "$text"
	finish
fi
# Words the renderer hyphenated at a line's end (U+2010) are joined again.
joined=$(printf '%s\n' "$text" | sed -e ':a' -e '/‐$/{N;s/‐\n *//;ba}')

if grep -q '@[A-Z_]*@' <<<"$text"; then
	fail "a path was left unsubstituted" "$(grep '@[A-Z_]*@' <<<"$text")"
else
	pass "every @PATH@ of the source was substituted"
fi

# section TITLE: the lines of that section (a heading is a line that
# starts with a capital letter, the page's header excepted).
section() {
	awk -v want="$1" 'NR > 1 && /^[A-Z]/ { on = ($0 == want); next } on' <<<"$joined"
}
# entries TITLE: the tags of the section's entries: a line indented by 7,
# followed by one indented by 11 (the entry's text), as man shows a tagged
# paragraph; each tag is split at ", " into its names.
entries() {
	section "$1" | awk '
		prev != "" && /^           [^ ]/ { print prev }
		{ prev = /^       [^ ]/ ? $0 : "" }' |
		sed -e 's/^ *//' -e 's/, /\n/g'
}
# has_entry TITLE NAME: some entry of TITLE is NAME, or NAME=VALUE.
has_entry() {
	entries "$1" | grep -qE -- "^$2(=.*)?\$"
}
# has_subsection TITLE NAME: TITLE has a subsection NAME.
has_subsection() {
	section "$1" | grep -qxF -- "   $2"
}
# check_all TEST TITLE WHAT LIST: TEST TITLE NAME holds for each line NAME
# of LIST, WHAT saying what they are.
check_all() {
	local test=$1 title=$2 what=$3 list=$4 name missing=()
	if [[ -z $list ]]; then
		fail "no $what found"
		return
	fi
	while IFS= read -r name; do
		"$test" "$title" "$name" || missing+=("$name")
	done <<<"$list"
	if ((${#missing[@]} == 0)); then
		pass "$title has each of the $(wc -l <<<"$list") $what:" $list
	else
		fail "$what missing from $title" "${missing[@]}"
	fi
}

missing=()
for s in NAME SYNOPSIS DESCRIPTION OPTIONS 'THE TREE' 'BUILT-IN PLUGINS' \
	'THE BOOTSTRAP FILE' ERRORS SIGNALS ENVIRONMENT FILES 'EXIT STATUS' EXAMPLES \
	'SEE ALSO'; do
	grep -qxF "$s" <<<"$text" || missing+=("$s")
done
if ((${#missing[@]} == 0)); then
	pass "it has every section, NAME to SEE ALSO"
else
	fail "sections missing" "${missing[@]}"
fi
check_all has_entry SIGNALS signals $'SIGTERM\nSIGINT\nSIGHUP'
check_all has_entry ENVIRONMENT variables $'NOTIFY_SOCKET\nJOURNAL_STREAM'

# -- the options of --help ----------------------------------------------------

if ! help=$("$mallafs" --help 2>&1); then
	fail "$mallafs --help fails" "$help"
	finish
fi
# Every option a line of --help starts with (its description cut off), or
# the usage shows in brackets: -o NAME (its =VALUE cut off), --long, -x.
optlines=$(
	grep -E '^ +-' <<<"$help" | sed -E 's/ {2,}[^ -].*//'
	grep -E '^(usage:|  )' <<<"$help" | grep -oE '\[-[^][]*\]' | tr -d '[]'
)
opts=$(
	grep -oE -- '-o [a-z_]+' <<<"$optlines"
	sed -E 's/-o [a-z_]+//g' <<<"$optlines" | grep -oE -- '--[a-z][a-z-]*'
	sed -E -e 's/-o [a-z_]+//g' -e 's/--[a-z][a-z-]*//g' <<<"$optlines" |
		grep -oE -- '(^|[ ,])-[A-Za-z]([ ,=]|$)' | grep -oE -- '-[A-Za-z]'
)
check_all has_entry OPTIONS "options of mallafs --help" "$(sort -u <<<"$opts" | grep -vx -- '-o')"

# -- plugins and their settings, the README's errors --------------------------

check_all has_subsection 'BUILT-IN PLUGINS' "built-in plugins of mallafs --help" \
	"$(sed -n 's/^built-in plugins: *//p' <<<"$help" | tr ' ' '\n' | grep .)"
check_all has_entry 'BUILT-IN PLUGINS' "settings of plugins/*.c" \
	"$(cat "$src"/plugins/*.c | grep -oE '\.key = "[a-z_]+"' | cut -d'"' -f2 | sort -u)"
check_all has_entry ERRORS "errnos of README.md's Errors table" \
	"$(awk '/^## / { on = ($0 == "## Errors"); next } on && /^\|/' "$src/README.md" |
		grep -oE '\bE[A-Z]{2,}\b' | sort -u)"

# -- installed ----------------------------------------------------------------

installed=$(meson introspect "$build" --installed 2>&1)
where=$(python3 -c '
import json, os, sys
for built, dest in json.loads(sys.stdin.read()).items():
    if os.path.realpath(built) == os.path.realpath(sys.argv[1]):
        print(dest)
' "$page" <<<"$installed")
if [[ $where == */man8/mallafs.8 ]]; then
	pass "meson install puts it at $where"
else
	fail "the page is not installed to MANDIR/man8" "${where:-$installed}"
fi

finish
