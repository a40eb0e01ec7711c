#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fuzzes every target of a -Dfuzz=true build for SECONDS each (two at a
# time), each on a copy of its seed corpus in a temporary folder: nothing is
# written back into the checkout. A crash, a leak, a timeout, running out of
# memory or any sanitizer report fails the target; its input is kept in
# BUILD/fuzz-artifacts/ and its log printed.
#   tests/fuzz/run.sh BUILD_DIR [SECONDS]
# Prints "fuzz: N targets, N failed (S s)" and writes one line per target to
# BUILD/meson-logs/fuzzlog.json in the shape of meson's testlog.json.
set -u
build=${1:?usage: run.sh BUILD_DIR [SECONDS]}
seconds=${2:-30}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=$(cd "$build" && pwd) || exit 1
start=$SECONDS

mkdir -p "$build/meson-logs"
: >"$build/meson-logs/fuzzlog.json"
mapfile -t targets < <(find "$build/tests/fuzz" -maxdepth 1 -type f -name 'fuzz_*' -perm -u+x |
	sort)
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no targets in $build/tests/fuzz (meson setup with CC=clang -Dfuzz=true)" >&2
	echo '{"name": "fuzz", "result": "FAIL"}' >"$build/meson-logs/fuzzlog.json"
	echo "fuzz: 0 targets, 1 failed (0 s)"
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/mallafs-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
artifacts=$build/fuzz-artifacts
mkdir -p "$artifacts"

# fuzz_one EXE: writes to $work/NAME/ its log, a report for the summary and
# its result (0 when the target ran its time without a finding).
fuzz_one() {
	local exe=$1 name
	name=$(basename "$exe")
	name=${name#fuzz_}
	local dir=$work/$name
	mkdir -p "$dir/corpus" "$dir/artifacts"
	cp -r "$here/corpus/$name/." "$dir/corpus/" 2>/dev/null
	local rc=0
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		"$exe" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -detect_leaks=1 \
		-error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
		-artifact_prefix="$dir/artifacts/" "$dir/corpus" >"$dir/log" 2>&1 || rc=$?
	# A report that did not end the process still fails the target.
	if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|WARNING: ThreadSanitizer|check failed' \
		"$dir/log"; then
		[ "$rc" -ne 0 ] || rc=1
	fi
	if [ "$rc" -ne 0 ]; then
		cp "$dir"/artifacts/* "$artifacts/" 2>/dev/null
		{
			echo "FAIL - fuzz_$name (exit $rc); inputs kept in $artifacts:"
			ls "$dir/artifacts" 2>/dev/null | sed 's/^/  /'
			# From the first report on, not libFuzzer's progress lines.
			local first
			first=$(grep -nE 'ERROR:|runtime error:|check failed' "$dir/log" | head -1 | cut -d: -f1)
			tail -n +"${first:-1}" "$dir/log" | head -n 80
		} >"$dir/report"
		echo 1 >"$dir/result"
		return
	fi
	local runs
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log")
	echo "ok - fuzz_$name: ${runs:-?} runs in $seconds s" >"$dir/report"
	echo 0 >"$dir/result"
}

# Two at a time: the CI machine has two cores.
for exe in "${targets[@]}"; do
	while [ "$(jobs -rp | wc -l)" -ge 2 ]; do
		wait -n
	done
	fuzz_one "$exe" &
done
wait
failed=0
for exe in "${targets[@]}"; do
	name=$(basename "$exe")
	dir=$work/${name#fuzz_}
	result=FAIL
	[ "$(cat "$dir/result" 2>/dev/null)" = 0 ] && result=OK
	[ $result = OK ] || failed=$((failed + 1))
	cat "$dir/report" 2>/dev/null || echo "FAIL - $name: no report"
	printf '{"name": "%s", "result": "%s"}\n' "$name" "$result" >>"$build/meson-logs/fuzzlog.json"
done
echo "fuzz: ${#targets[@]} targets, $failed failed ($((SECONDS - start)) s)"
[ "$failed" -eq 0 ]
