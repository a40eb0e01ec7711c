#!/bin/bash
# SPDX-License-Identifier: MIT
# The state database (-o state=FILE, --state=FILE): the tree comes back after
# a clean unmount and after kill -9. A new state is seeded by the bootstrap
# file; once it exists, it is what comes back and the bootstrap file is not
# applied. Services with their chains, configuration, admin status and
# owners, node-wide config, chmod and chown, registrations whose process
# lives; an rmdir survives a restart, a registration whose process died
# meanwhile does not come back. The sqlite3 shell reads the file while
# mounted. A state file anyone else can write, a read-only one and one that
# is not SQLite are refused with the reason.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mfs_need sqlite3 sqlite3

STATE=$MFS_TMP/state.db
BOOT=$MFS_TMP/boot.ini
cat >"$BOOT" <<'EOF'
[services.api]
plugins = trace

[config.app]
k = from the bootstrap
EOF
# What a later bootstrap file says: it must not be applied.
BOOT2=$MFS_TMP/boot2.ini
cat >"$BOOT2" <<'EOF'
[services.other]

[config.app]
k = changed
EOF

sql()
{
	sqlite3 "$STATE" "$1" 2>&1
}

# Waits (2 s at most: a loaded machine, sanitizers) until the database says
# what the tree says.
committed()
{
	local what=$1 query=$2 want=$3
	if mfs_poll 2000 eval '[[ $(sql "$query") == "$want" ]]'; then
		pass "$what: committed"
	else
		fail "$what: committed" "$query" "expected: $want" "actual:   $(sql "$query")"
	fi
}

# The daemon dies with what it had committed.
kill9()
{
	kill -9 "$MFS_PID"
	wait "$MFS_PID" 2>/dev/null
	MFS_PID=''
	mfs_watchdog_stop
	fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
	pass "kill -9 the daemon"
}

# Mounts (each on a mountpoint of its own): S is its services/.
mount_state()
{
	mfs_mount "$@"
	S=$MNT/services
}

# -- seeded by the bootstrap, then changed ------------------------------------

mount_state --state="$STATE" --config="$BOOT"
assert_eq "a new state file is 0600, the daemon's" "600 $(id -u)" "$(stat -c '%a %u' "$STATE")"
assert_eq "the bootstrap seeds a new state" "trace" "$(sql "SELECT plugin FROM service_plugins WHERE service = 'api'")"
assert_ok mkdir "$S/web"
assert_ok mkdir "$S/web/plugins/ttl"
assert_ok mkdir "$S/web/plugins/limits"
assert_write OK "$S/web/config/ttl/seconds" 7
assert_write OK "$S/web/config/limits/max_keys" 12
assert_write OK "$S/web/status" pause
assert_ok mkdir "$S/doomed"
assert_write OK "$MNT/config/app/k2" "hello"
assert_ok mkdir "$MNT/config/app2"
assert_write OK "$MNT/config/app2/x" "y"
assert_ok chmod 0750 "$S/web"
assert_ok chown 1001:1001 "$S/api"
assert_ok chmod 0600 "$MNT/config/app/k2"
sleep 600 &
SLEEPER=$!
MFS_CHILDREN+=("$SLEEPER")
assert_write OK "$MNT/registry/sleeper" "$SLEEPER live"
assert_ok mkdir "$MNT/registry/pool"
assert_write OK "$MNT/registry/pool/$SLEEPER" "member"
# The sqlite3 shell reads it while mounted.
committed "services, read by sqlite3 while mounted" \
	"SELECT name || ' ' || admin FROM services ORDER BY name" $'api active\ndoomed active\nweb pause'
committed "the registration" "SELECT pid FROM registry WHERE name = 'sleeper'" "$SLEEPER"
mfs_unmount

# Everything made above, back.
check_tree()
{
	local how=$1
	assert_eq "$how: the services" $'api\ndoomed\nweb' "$(ls "$S")"
	assert_eq "$how: web's chain" $'limits\nttl\nbase' "$(cat "$S/web/chain")"
	assert_eq "$how: web's configuration" "7 12" \
		"$(cat "$S/web/config/ttl/seconds") $(cat "$S/web/config/limits/max_keys")"
	assert_eq "$how: web's admin status" "paused pause" \
		"$(status_field "$S/web" state) $(status_field "$S/web" admin)"
	assert_eq "$how: api's chain" $'trace\nbase' "$(cat "$S/api/chain")"
	assert_eq "$how: api runs" "running" "$(status_field "$S/api" state)"
	assert_eq "$how: chmod of web" "750" "$(stat -c %a "$S/web")"
	assert_eq "$how: chown of api" "1001:1001" "$(stat -c %u:%g "$S/api")"
	assert_eq "$how: chmod of a node-wide key" "600" "$(stat -c %a "$MNT/config/app/k2")"
	assert_eq "$how: node-wide config" "from the bootstrap|hello|y" \
		"$(cat "$MNT/config/app/k")|$(cat "$MNT/config/app/k2")|$(cat "$MNT/config/app2/x")"
	assert_eq "$how: the registration" "$SLEEPER live" "$(cat "$MNT/registry/sleeper")"
	assert_eq "$how: the pool member" "member" "$(cat "$MNT/registry/pool/$SLEEPER")"
}

# -- a clean unmount; then kill -9 --------------------------------------------

mount_state -o "state=$STATE" --config="$BOOT2"
check_tree "after an unmount"
assert_true "the log says the bootstrap file was not applied" \
	grep -q "the bootstrap file .*boot2.ini was not applied" "$MFS_LOG"
assert_ok rmdir "$S/doomed"
assert_write OK "$MNT/config/app/k2" "after"
committed "rmdir" "SELECT count(*) FROM services WHERE name = 'doomed'" 0
committed "a key" "SELECT CAST(value AS TEXT) FROM node_config WHERE key = 'k2'" "after"
kill9

mount_state --state="$STATE" --config="$BOOT2"
assert_eq "after kill -9: rmdir survives a restart" $'api\nweb' "$(ls "$S")"
assert_eq "after kill -9: the key" "after" "$(cat "$MNT/config/app/k2")"
assert_eq "after kill -9: the registration" "$SLEEPER live" "$(cat "$MNT/registry/sleeper")"
assert_eq "after kill -9: web's chain" $'limits\nttl\nbase' "$(cat "$S/web/chain")"
assert_eq "after kill -9: chown of api" "1001:1001" "$(stat -c %u:%g "$S/api")"
mfs_unmount

# -- a registration whose process died meanwhile ---------------------------------

mfs_kill_child "$SLEEPER"
mount_state --state="$STATE"
assert_absent "a registration of a process gone is not restored" "$MNT/registry/sleeper"
assert_eq "nor its pool member" "" "$(ls "$MNT/registry/pool")"
committed "and its rows go" "SELECT count(*) FROM registry WHERE kind != 'p'" 0
mfs_unmount

# -- a plugin of a saved chain that no longer exists -------------------------------

sql "INSERT INTO service_plugins VALUES ('web', 5, 'nosuch')" >/dev/null
mount_state --state="$STATE"
assert_eq "a service whose plugin is gone comes back failed and inactive" "failed inactive" \
	"$(status_field "$S/web" state) $(status_field "$S/web" admin)"
assert_reason "a service whose plugin is gone" "$S/web" "(missing: nosuch)"
assert_eq "with the plugins that exist and its configuration" $'limits\nttl\nbase|7' \
	"$(cat "$S/web/chain")|$(cat "$S/web/config/ttl/seconds")"
assert_eq "its saved chain and admin status stay in the database" "limits ttl nosuch|pause" \
	"$(sql "SELECT group_concat(plugin, ' ') FROM (SELECT plugin FROM service_plugins WHERE service = 'web' ORDER BY position)")|$(sql "SELECT admin FROM services WHERE name = 'web'")"
assert_write OK "$S/web/status" active
committed "until the service is changed" \
	"SELECT count(*) FROM service_plugins WHERE plugin = 'nosuch'" 0
mfs_unmount

# -- SIGTERM commits what changed before the daemon exits ---------------------

mount_state --state="$STATE"
assert_write OK "$MNT/config/app/last" "just before SIGTERM"
assert_ok mkdir "$S/late"
mfs_signal_unmount TERM
assert_eq "a change made just before SIGTERM is committed" "just before SIGTERM|1" \
	"$(sql "SELECT CAST(value AS TEXT) FROM node_config WHERE key = 'last'")|$(sql "SELECT count(*) FROM services WHERE name = 'late'")"
assert_eq "the services' stop is no change: their admin status stays" "active" \
	"$(sql "SELECT admin FROM services WHERE name = 'late'")"

# -- refused state files ----------------------------------------------------------

mkdir -p "$MFS_TMP/mnt-refused"
refused()
{
	local what=$1 file=$2 reason=$3
	mfs_run_daemon -f --state="$file" "$MFS_TMP/mnt-refused"
	assert_eq "$what: refused, exit status 1" 1 "$MFS_RC"
	assert_match "$what: the reason" "state $file: .*$reason" "$MFS_ERR"
}
BAD=$MFS_TMP/bad.db
cp "$STATE" "$BAD"
chmod 0666 "$BAD"
refused "a state file chmod 0666" "$BAD" 'writable by others \(mode 0666\)'
chmod 0600 "$BAD"
chown 1001 "$BAD"
refused "a state file of uid 1001" "$BAD" "owned by uid 1001, not by the daemon's uid $(id -u)"
chown "$(id -u)" "$BAD"
chmod 0400 "$BAD"
refused "a read-only state file" "$BAD" 'read-only \(mode 0400\)'
echo "not a database at all, just text" >"$MFS_TMP/text.db"
chmod 0600 "$MFS_TMP/text.db"
refused "a file that is not SQLite" "$MFS_TMP/text.db" "not an SQLite database"
assert_eq "and it is left as it was" "not a database at all, just text" "$(cat "$MFS_TMP/text.db")"

mfs_done
