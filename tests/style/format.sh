#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The tree is formatted by one clang-format, Debian 12's (version 14), with
# the tree's .clang-format: this test fails on any C file it would change,
# and on another version (whose output differs), naming what to run.
set -u
root=${1:?usage: format.sh SOURCE_ROOT}
cd "$root" || exit 1
want=14
if ! command -v clang-format >/dev/null; then
	echo "FAIL - clang-format is not installed (contrib/quickstart.sh installs it)"
	echo "0 passed, 1 failed"
	exit 1
fi
have=$(clang-format --version | sed -n 's/.*version \([0-9]*\).*/\1/p')
if [[ $have != "$want" ]]; then
	echo "FAIL - clang-format $have is not the tree's formatter, version $want"
	echo "0 passed, 1 failed"
	exit 1
fi
mapfile -t files < <(git ls-files '*.c' '*.h' 2>/dev/null || find core fs mount plugins tests contrib -name '*.[ch]')
bad=0
for f in "${files[@]}"; do
	if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
		echo "FAIL - $f is not formatted: clang-format -i $f"
		bad=$((bad + 1))
	fi
done
echo "$(( ${#files[@]} - bad )) passed, $bad failed"
((bad == 0))
