#!/bin/bash
# SPDX-License-Identifier: MIT
# A short session of the other tests' operations with the daemon under
# valgrind: no memory error, no definite leak, exit status 0 (valgrind's
# --error-exitcode would make it 99). Registry registrations are left out:
# valgrind 3.19 does not know pidfd_open. A bad bootstrap file goes through
# valgrind too (its error path must not leak either). The sessions keep
# the tree in a state database (-o state=) and the api service's store with
# persist (sync = always): the second restores what the first left.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mfs_need valgrind valgrind
# valgrind cannot run a binary built with AddressSanitizer; that build has
# its own checks (every test fails on sanitizer output).
if [[ -n $(mfs_sanitizer) ]]; then
	echo "# $MALLAFS is built with a sanitizer: valgrind does not apply"
	MFS_FINISHED=1
	exit 77
fi

MALLAFS_WRAPPER="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
MALLAFS_WRAPPER+=" --show-leak-kinds=definite --num-callers=30"
export MALLAFS_WRAPPER

# valgrind_clean LOG WHAT: valgrind's own verdict.
valgrind_clean()
{
	if grep -q 'ERROR SUMMARY: 0 errors' "$1"; then
		pass "$2: valgrind reports ERROR SUMMARY: 0 errors"
	else
		fail "$2: valgrind reports ERROR SUMMARY: 0 errors" \
			"$(grep -E 'ERROR SUMMARY|definitely lost' "$1" || tail -n 20 "$1")"
	fi
}

BOOT=$MFS_TMP/boot.ini
cat >"$BOOT" <<'EOF'
[services.api]
plugins = persist
admin = active

[services.api.persist]
path = @TMP@/api.db
sync = always

[services.api.mysection]
greeting = hello

[services.idle]
admin = inactive

[config.app]
key = value
EOF
sed -i "s|@TMP@|$MFS_TMP|" "$BOOT"
STATE=$MFS_TMP/state.db

mfs_mount --config="$BOOT" -o state="$STATE"
S=$MNT/services/api
assert_ok mkdir "$MNT/services/web"
assert_errno EEXIST mkdir "$MNT/services/web"
assert_errno EINVAL mkdir "$MNT/services/bad name"
# Store: put, get, append, truncate, rename over a key, a large value, delete.
assert_ok bash -c "echo hello > '$S/store/k' && echo more >> '$S/store/k'"
assert_file "$S/store/k" $'hello\nmore\n'
assert_ok truncate -s 3 "$S/store/k"
assert_file "$S/store/k" hel
assert_ok bash -c "echo other > '$S/store/b'"
assert_ok mv "$S/store/k" "$S/store/b"
assert_file "$S/store/b" hel
head -c 1048576 /dev/urandom >"$MFS_TMP/big"
assert_ok cp "$MFS_TMP/big" "$S/store/big"
assert_same "$MFS_TMP/big" "$S/store/big"
assert_true "rw-loop" "$FSPROBE" rw-loop "$S/store/loop" 40
assert_ok bash -c "for i in \$(seq 1 50); do echo \$i > '$S/store/n'\$i; done"
assert_eq "ls store" 53 "$(ls "$S/store" | wc -l)"
assert_ok rm "$S/store/big" "$S/store/n1"
assert_errno 'EPERM|EACCES' mkdir "$S/store/sub"
# Status, chain, plugins, configuration.
assert_ok bash -c "echo pause > '$S/status' && echo inactive > '$S/status' && echo active > '$S/status'"
assert_write EINVAL "$S/status" bogus
assert_ok cat "$S/status" "$S/chain" "$S/config.ini" "$S/config/mysection/greeting"
assert_eq "snapshot of status" "$(cat "$S/status")" "$("$FSPROBE" snapshot "$S/status" 4)"
assert_errno 'EPERM|EACCES' open "$S/chain" w
assert_errno ENOENT mkdir "$S/plugins/nosuch"
assert_errno EEXIST mkdir "$S/plugins/base"
assert_errno EBUSY rmdir "$S/plugins/base"
# Node-wide configuration.
assert_ok bash -c "mkdir '$MNT/config/app2' && echo v > '$MNT/config/app2/k'"
assert_ok mv "$MNT/config/app2/k" "$MNT/config/app/k2"
assert_errno ENOTEMPTY rmdir "$MNT/config/app"
assert_ok rmdir "$MNT/config/app2"
# Pools without members (registrations need pidfd_open).
assert_ok mkdir "$MNT/registry/pool"
assert_errno EINVAL creat "$MNT/registry/pool/notapid"
assert_ok rmdir "$MNT/registry/pool"
# A service removed with its keys, another left running for the exit.
assert_ok rmdir "$MNT/services/web"
mfs_unmount
valgrind_clean "$MFS_LOG" "session"

# A second session, restored from the state and persist's database, ends
# with SIGTERM.
mfs_mount --config="$BOOT" -o state="$STATE"
assert_file "$MNT/services/api/store/b" hel
assert_file "$MNT/config/app/k2" $'v\n'
assert_absent "$MNT/services/web"
assert_ok bash -c "echo v > '$MNT/services/api/store/k'"
# SIGHUP: a reload that changes a chain, makes a service and writes a
# node-wide key, then one refused late and undone.
reload_logged()
{
	mfs_poll 30000 eval "(( \$(grep -c -E 'reloaded |reload refused' '$MFS_LOG') >= $1 ))"
}
cp "$BOOT" "$MFS_TMP/boot.orig"
sed -i 's/^plugins = persist$/plugins = trace, persist/' "$BOOT"
printf '[services.more]\nplugins = limits\n[config.app3]\nkey = other\n' >>"$BOOT"
kill -HUP "$MFS_PID"
assert_true "SIGHUP: the reload is done" reload_logged 1
assert_eq "SIGHUP: the new chain" "trace persist base" "$(paste -s -d ' ' "$MNT/services/api/chain")"
printf '[services.api]\nplugins = limits\n[services.late.limits]\nmax_keys = x\n[services.late]\nplugins = limits\n' >"$BOOT"
kill -HUP "$MFS_PID"
assert_true "SIGHUP: the refused reload is logged" reload_logged 2
assert_eq "SIGHUP: the refused reload changed nothing" "trace persist base" \
	"$(paste -s -d ' ' "$MNT/services/api/chain")"
cp "$MFS_TMP/boot.orig" "$BOOT"
mfs_signal_unmount TERM
valgrind_clean "$MFS_LOG" "SIGTERM"

# A bad bootstrap file: exit status 1 (99 would be a valgrind error).
printf '[services.api]\nplugins = nosuch\n' >"$MFS_TMP/bad.ini"
mkdir -p "$MFS_TMP/badmnt"
mfs_run_daemon -f --config="$MFS_TMP/bad.ini" "$MFS_TMP/badmnt"
assert_eq "bad bootstrap file under valgrind: exit status 1" 1 "$MFS_RC"
valgrind_clean "$MFS_RUNLOG" "bad bootstrap file"
mfs_scan_log "$MFS_RUNLOG" "bad bootstrap file"

mfs_done
