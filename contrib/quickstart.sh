#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The README's two commands:
#   contrib/quickstart.sh run [MOUNTPOINT]   install what is missing, build, install mallafs
#                                            (meson install: /usr/local), mount the example
#                                            tree with -o allow_other in the foreground
#                                            (Ctrl-C unmounts)
#   contrib/quickstart.sh test               install what is missing, build, run every test,
#                                            then again built with ASan and UBSan, then
#                                            again built with ThreadSanitizer, then fuzz
#                                            each parser for 30 s (tests/fuzz)
# Debian 12, as root (or with sudo for the package step).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

# libtsan2: gcc's ThreadSanitizer runtime (build-essential brings it on
# amd64; named because the TSan pass needs it). clang and libclang-rt-14-dev
# (libFuzzer and clang's sanitizer runtimes, only recommended by clang, so
# named): the fuzz pass. redis-server (it brings redis-tools): the memory
# comparison of the scale benchmark (tests/bench/scale.sh); no test needs it.
# libsqlite3-dev: persist's databases and the state database (-o state=);
# sqlite3, the shell: tests inspect the databases as users do.
# systemd: systemd-analyze verify checks the unit meson installs, and
# systemd.pc names systemd's unit folder (a container may lack both).
# scdoc: the build makes the man page mallafs(8) with it; man-db and
# groff-base: tests/style/man.sh renders the page as man(1) does.
# prometheus: its promtool checks the root's metrics (test_metrics_node.sh).
# libcurl4-openssl-dev and libjson-c-dev: cluster mode's etcd client;
# etcd-server, etcd-client (etcdctl) and openssl: the tests start real etcd
# servers, with TLS, on ports of their own (tests/etcd/lib_etcd.sh).
packages=(build-essential meson ninja-build pkg-config libfuse3-dev fuse3 libinih-dev
	libcmocka-dev inotify-tools valgrind util-linux procps psmisc libtsan2
	clang-format git clang libclang-rt-14-dev redis-server libsqlite3-dev sqlite3
	systemd scdoc man-db groff-base prometheus
	etcd-server etcd-client libcurl4-openssl-dev libjson-c-dev openssl)

install_missing() {
	local missing=()
	for p in "${packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "quickstart: installing ${missing[*]}" >&2
	local sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		"${missing[@]}"
}

# build DIR [-Dname=value...]: sets DIR up with the options when it has
# none yet, else changes only the options that differ (a `meson configure`
# regenerates the build, and a changed flag rebuilds everything); then ninja
# builds what changed.
build() {
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >/dev/null
	else
		local changed
		changed=$(meson introspect --buildoptions "$dir" | python3 -c '
import json, sys
now = {o["name"]: o["value"] for o in json.load(sys.stdin)}
def text(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return ",".join(map(str, v))
    return str(v)
for arg in sys.argv[1:]:
    name, value = arg[2:].split("=", 1)
    if name not in now or text(now[name]) != value:
        print(arg)
' "$@")
		if [ -n "$changed" ]; then
			# shellcheck disable=SC2086
			meson configure "$dir" $changed >/dev/null
		fi
	fi
	ninja -C "$dir"
}

# The options of build/, the same for `run` and `test`: either reuses what
# the other built.
plain=(-Dwerror=true)

# test_pass DIR LABEL [WRAPPER...]: runs the tests of DIR (under WRAPPER),
# prints its counts and how long its build and tests took (since
# $pass_start), returns its status.
test_pass() {
	local dir=$1 label=$2 rc=0
	shift 2
	"$@" meson test -C "$dir" --print-errorlogs --num-processes 2 || rc=$?
	python3 - "$dir/meson-logs/testlog.json" "$label" "$((SECONDS - pass_start))" <<'PY'
import json, sys
ok = bad = skipped = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"):
        ok += 1
    elif r == "SKIP":
        skipped += 1
    else:
        bad += 1
print(f"{sys.argv[2]}: {ok} passed, {bad} failed, {skipped} skipped ({sys.argv[3]} s)")
PY
	return $rc
}

cmd=${1:-}
case "$cmd" in
run)
	install_missing
	build build "${plain[@]}"
	# mallafs on the PATH, as the README's sessions run it.
	sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	"${sudo[@]}" meson install -C build --no-rebuild --only-changed --quiet
	mnt=${2:-/tmp/mallafs}
	mkdir -p "$mnt"
	echo "quickstart: mounting the example tree on $mnt (Ctrl-C unmounts)" >&2
	# The mount tests/fs/test_readme.sh replays the README's sessions on.
	exec mallafs -f -o allow_other --config="$here/contrib/example.ini" "$mnt"
	;;
test)
	install_missing
	export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
	export ASAN_OPTIONS=detect_leaks=1
	# The first ThreadSanitizer report ends the process with status 66: a
	# unit test fails, and so does a mount test whose daemon reports (its
	# log is scanned for ThreadSanitizer too).
	export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:exitcode=66
	status=0
	pass_start=$SECONDS
	build build "${plain[@]}"
	test_pass build "plain" || status=1
	pass_start=$SECONDS
	build build-sanitize -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
		-Dbench=false
	test_pass build-sanitize "sanitize" || status=1
	pass_start=$SECONDS
	build build-tsan -Dwerror=true -Db_sanitize=thread -Db_lundef=false -Dbench=false
	# Without address randomisation: gcc 12's TSan cannot map its shadow
	# memory on kernels with more random mmap bits (vm.mmap_rnd_bits 32).
	test_pass build-tsan "tsan" setarch "$(uname -m)" -R || status=1
	# Each libFuzzer target of tests/fuzz for 30 s, built by clang with ASan
	# and UBSan; run.sh prints its own "fuzz: ..." line.
	CC=clang build build-fuzz -Dwerror=true -Dfuzz=true -Dtests=false -Dbench=false
	tests/fuzz/run.sh build-fuzz 30 || status=1
	python3 - build/meson-logs/testlog.json build-sanitize/meson-logs/testlog.json \
		build-tsan/meson-logs/testlog.json build-fuzz/meson-logs/fuzzlog.json <<'PY'
import json, os, re, sys
# A failed test's failing checks, its sanitizer reports and the lines
# after each: meson prints only the last lines of a failed test's output,
# and a CI run must say which check failed.
WANT = re.compile(r"^(FAIL - |\[  (FAILED|ERROR) +\]|.*(ThreadSanitizer|"
                  r"AddressSanitizer|LeakSanitizer|runtime error|Assertion))")
ok = bad = 0
failed = []
for path in sys.argv[1:]:
    if not os.path.exists(path):
        bad += 1
        failed.append(f"{path}: missing")
        continue
    for line in open(path):
        t = json.loads(line)
        r = t["result"]
        if r in ("OK", "EXPECTEDFAIL"):
            ok += 1
        elif r != "SKIP":
            bad += 1
            failed.append(f"{path.split('/')[0]}: {t['name']}: {r}")
            shown, after = 0, 0
            text = (t.get("stdout") or "") + (t.get("stderr") or "")
            for out in text.splitlines():
                if WANT.match(out):
                    after = 6
                if after and shown < 80:
                    failed.append("  " + out)
                    shown += 1
                    after -= 1
for line in failed:
    print(line)
print(f"{ok} passed, {bad} failed")
PY
	exit $status
	;;
*)
	echo "usage: $0 run [MOUNTPOINT] | test" >&2
	exit 2
	;;
esac
