#!/bin/bash
# SPDX-License-Identifier: MIT
# The command and the bootstrap file (SPEC.md, "The command" and "The
# bootstrap file"): --help and --version; a good file creates its services in
# file order with their admin status and configuration, and the node-wide
# configuration; a bad file makes mallafs print FILE:LINE: on stderr (the
# line that holds the bad value, not its service's) and exit 1 without
# mounting.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --help, --version, and a missing mountpoint.
mfs_run_daemon --help
assert_eq "mallafs --help exits 0" 0 "$MFS_RC"
assert_match "mallafs --help shows the usage with --config" '--config' "$MFS_OUT$MFS_ERR"
mfs_scan_log "$MFS_RUNLOG" "--help"
mfs_run_daemon --version
assert_eq "mallafs --version exits 0" 0 "$MFS_RC"
assert_match "mallafs --version prints a version" '[0-9]+\.[0-9]+' "$MFS_OUT$MFS_ERR"
mfs_run_daemon -f
assert_ne "mallafs without a mountpoint fails" 0 "$MFS_RC"

# A good file. Line numbers matter below.
GOOD=$MFS_TMP/good.ini
cat >"$GOOD" <<'EOF'
; services in file order: zeta, alpha, mid, bare
[services.zeta]
admin = active

[services.alpha]
admin = inactive

; a section of alpha's configuration, for no plugin in the chain yet
[services.alpha.mysection]
greeting = hello world
count = 3

# node-wide configuration
[config.my_app]
api_key = secret_key
other = x y z

[services.mid]
admin = pause

; a section without keys: a service with the defaults
[services.bare]
EOF

# Prints a file's bytes, trailing newlines included.
read_exact()
{
	local v
	v=$(cat "$1" 2>&1; echo .)
	printf '%s' "${v%.}"
}

check_good_tree()
{
	local how=$1
	assert_eq "$how: services in file order (ls -U gives the id order)" \
		"zeta alpha mid bare" "$(ls -U "$MNT/services" | tr '\n' ' ' | sed 's/ $//')"
	assert_eq "$how: zeta is running" $'state: running\nadmin: active' \
		"$(head -n 2 "$MNT/services/zeta/status")"
	assert_eq "$how: alpha (admin = inactive) is stopped" $'state: stopped\nadmin: inactive' \
		"$(head -n 2 "$MNT/services/alpha/status")"
	assert_eq "$how: mid (admin = pause) is paused" $'state: paused\nadmin: pause' \
		"$(head -n 2 "$MNT/services/mid/status")"
	assert_eq "$how: bare (no keys) is running" $'state: running\nadmin: active' \
		"$(head -n 2 "$MNT/services/bare/status")"
	assert_file "$MNT/services/alpha/chain" $'base\n'
	# Service configuration: cat prints the value and a newline.
	assert_ls "$MNT/services/alpha/config/mysection" count greeting
	assert_file "$MNT/services/alpha/config/mysection/greeting" $'hello world\n'
	assert_file "$MNT/services/alpha/config/mysection/count" $'3\n'
	assert_size "$MNT/services/alpha/config/mysection/greeting"
	local ini
	ini=$(cat "$MNT/services/alpha/config.ini")
	assert_match "$how: config.ini has [mysection]" $'(^|\n)\\[mysection\\]\n' "$ini"
	assert_match "$how: config.ini has greeting = hello world" \
		$'(^|\n)greeting ?= ?hello world(\n|$)' "$ini"
	assert_match "$how: config.ini has count = 3" $'(^|\n)count ?= ?3(\n|$)' "$ini"
	assert_size "$MNT/services/alpha/config.ini"
	assert_errno ENOENT stat "$MNT/services/zeta/config/mysection"
	# Node-wide configuration. SPEC.md does not say whether a value from the
	# file ends with a newline (echo would add one): both are accepted.
	assert_ls "$MNT/config" my_app
	assert_ls "$MNT/config/my_app" api_key other
	assert_match "$how: config/my_app/api_key" $'^secret_key\n?$' \
		"$(read_exact "$MNT/config/my_app/api_key")"
	assert_match "$how: config/my_app/other" $'^x y z\n?$' \
		"$(read_exact "$MNT/config/my_app/other")"
	assert_size "$MNT/config/my_app/api_key"
	# They are ordinary services and apps from then on.
	assert_ok bash -c "echo v > '$MNT/services/alpha/store/k'"
	assert_file "$MNT/services/alpha/store/k" $'v\n'
	assert_ok bash -c "echo active > '$MNT/services/alpha/status'"
	assert_eq "$how: alpha starts" 'state: running' "$(head -n 1 "$MNT/services/alpha/status")"
}

mfs_mount --config="$GOOD"
check_good_tree "--config=FILE"
mfs_unmount

mfs_mount -o config="$GOOD"
check_good_tree "-o config=FILE"
mfs_unmount

# An empty file (comments only) is good too.
printf '; nothing yet\n' >"$MFS_TMP/empty.ini"
mfs_mount --config="$MFS_TMP/empty.ini"
assert_ls "$MNT/services"
assert_ls "$MNT/config"
mfs_unmount

# bad_file NAME LINES EXPECTED_LINE...: writes NAME.ini, runs mallafs on it
# and checks: exit status 1, FILE:LINE: on stderr with one of the expected
# lines, nothing mounted.
bad_file()
{
	local name=$1 text=$2 lines
	shift 2
	local file=$MFS_TMP/$name.ini mnt=$MFS_TMP/bad-$name
	printf '%s' "$text" >"$file"
	mkdir -p "$mnt"
	mfs_run_daemon -f --config="$file" "$mnt"
	assert_eq "bad file ($name): exit status 1" 1 "$MFS_RC"
	lines=$(IFS='|'; echo "$*")
	if [[ $MFS_ERR =~ $file:($lines): ]]; then
		pass "bad file ($name): stderr names $name.ini:${BASH_REMATCH[1]}:"
	else
		fail "bad file ($name): stderr names $name.ini:LINE: with LINE in $lines" \
			"stderr: $MFS_ERR"
	fi
	if mfs_mounted "$mnt"; then
		fail "bad file ($name): nothing is mounted"
		fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt"
	else
		pass "bad file ($name): nothing is mounted"
	fi
	mfs_scan_log "$MFS_RUNLOG" "bad file ($name)"
}

bad_file unknown_plugin $'[services.api]\nadmin = active\nplugins = nosuch\n' 3
bad_file unknown_plugin_late $'; comment\n\n[services.ok]\nadmin = active\n\n[services.api]\nplugins = nosuch\n' 7
bad_file syntax $'[services.api]\nadmin = active\n\nthis line is not ini\n' 4
bad_file open_section $'[config.app]\nk = v\n[services.api\n' 3
# An unknown section: the error may name its header or its first key.
bad_file unknown_section $'[services.api]\nadmin = active\n[bogus]\nkey = 1\n' 3 4
bad_file bad_admin $'[services.api]\n\nadmin = sideways\n' 3
bad_file bad_service_name $'[services.ok]\n[services.bad:name]\nadmin = active\n' 2 3
bad_file bad_app_name $'[config.bad*app]\nk = v\n' 1 2
# A value a plugin refuses: the line that holds it, not its service's.
bad_file bad_value $'[services.api]\nplugins = limits\n[services.api.limits]\nmax_keys = -3\n' 4
bad_file bad_value_late $'; comment\n[services.api]\nplugins = limits, ttl\n\n[services.api.ttl]\nseconds = 1\n[services.api.limits]\nmax_bytes = 1\nmax_keys = lots\n' 9
bad_file unknown_setting $'[services.api]\nplugins = limits\n[services.api.limits]\n\nmaxkeys = 1\n' 5
bad_file bad_owner $'[services.api]\nadmin = active\nowner = mallafs-no-such-user\n' 3
bad_file bad_plugin_name $'[services.api]\nadmin = active\nplugins = ttl, no/such\n' 3

# A file that does not exist: exit status 1, its name on stderr, no mount.
mkdir -p "$MFS_TMP/bad-missing"
mfs_run_daemon -f --config="$MFS_TMP/missing.ini" "$MFS_TMP/bad-missing"
assert_eq "missing file: exit status 1" 1 "$MFS_RC"
assert_match "missing file: stderr names it" "missing\\.ini" "$MFS_ERR"
if mfs_mounted "$MFS_TMP/bad-missing"; then
	fail "missing file: nothing is mounted"
	umount -l "$MFS_TMP/bad-missing"
else
	pass "missing file: nothing is mounted"
fi

mfs_done
