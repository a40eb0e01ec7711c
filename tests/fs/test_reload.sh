#!/bin/bash
# SPDX-License-Identifier: MIT
# SIGHUP reloads the bootstrap file as one all-or-nothing change (SPEC.md
# "The command", signals): services the file names are created when
# missing, each named service's chain becomes the file's `plugins =` and
# each key it names takes the file's value, its owner and admin status too;
# what the file does not name is left alone. A bad file, or one service's
# refusal, changes nothing anywhere (what the reload did before it is put
# back) and is logged as FILE:LINE. With -o state= it is how the file is
# applied again to a restored tree. SIGTERM still unmounts cleanly.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

U=mallafs-test-reload
mfs_user "$U"
UID_U=$(id -u "$U")
INI=$MFS_TMP/node.ini

# Sends SIGHUP and waits for the daemon to log the outcome (one more
# "reloaded" or "reload refused" line than before): that line in $line.
hup()
{
	local before
	before=$(grep -c -E "reloaded |reload refused" "$MFS_LOG")
	kill -HUP "$MFS_PID"
	mfs_poll 10000 eval \
		'(($(grep -c -E "reloaded |reload refused" "$MFS_LOG") > before))' ||
		fail "SIGHUP: the daemon logs the reload's outcome"
	line=$(grep -E "reloaded |reload refused" "$MFS_LOG" | tail -n 1)
}

chain_of() { paste -s -d ' ' "$MNT/services/$1/chain"; }
key_of() { grep -E "^$2 = " <(cat "$MNT/services/$1/config.ini") | sed 's/^[^=]*= //'; }

# Everything the refused reloads below must leave as it is.
snapshot()
{
	local s
	ls "$MNT/services"
	for s in "$MNT"/services/*; do
		echo "== ${s##*/} $(stat -c %u:%g "$s")"
		cat "$s/chain" "$s/config.ini"
		grep '^admin:' "$s/status"
	done
	ls "$MNT/config"
	cat "$MNT"/config/*/* 2>/dev/null
}

cat >"$INI" <<'EOF2'
[services.api]
plugins = trace, limits

[services.api.limits]
max_keys = 10

[services.api.app]
greeting = hello

[services.keep]
plugins = trace

[config.my_app]
region = eu
EOF2

mfs_mount -o allow_other --config="$INI"
echo value >"$MNT/services/api/store/k1"
mkdir "$MNT/services/byhand"
echo by-hand >"$MNT/services/api/config/app/extra"

# 1. A reload with nothing new changes nothing.
hup
assert_match "a reload of the same file: nothing to change" 'nothing to change' "$line"

# 2. The file changed: a new chain, new values, a new service, a new app,
#    an owner and an admin status.
cat >"$INI" <<EOF2
[services.api]
plugins = ttl, limits, metrics
owner = $UID_U

[services.api.limits]
max_keys = 20

[services.api.ttl]
seconds = 60

[services.api.app]
greeting = bonjour

[services.fresh]
plugins = trace
admin = pause

[config.my_app]
region = us

[config.other]
k = v
EOF2
inotifywait -q -t 10 -e modify,close_write "$MNT/config/my_app/region" >"$MFS_TMP/inotify.out" 2>&1 &
wpid=$!
sleep 0.3
hup
assert_match "the reload says what it did" '1 service created, 1 changed, 2 node-wide keys written' "$line"
assert_eq "api's chain becomes the file's plugins" "ttl limits metrics base" "$(chain_of api)"
assert_eq "a key the file names takes its value" 20 "$(key_of api max_keys)"
assert_eq "a key of a plugin that joined" 60 "$(key_of api seconds)"
assert_eq "a key of a section of no plugin" bonjour "$(key_of api greeting)"
assert_eq "a key the file does not name is left alone" by-hand "$(key_of api extra)"
assert_eq "the store is kept across the new chain" value "$(cat "$MNT/services/api/store/k1")"
assert_eq "the owner the file names" "$UID_U" "$(stat -c %u "$MNT/services/api")"
assert_eq "a service the file names is created, with its admin status" "admin: pause" \
	"$(grep '^admin:' "$MNT/services/fresh/status")"
assert_eq "services the file does not name are left alone" "api byhand fresh keep" \
	"$(ls "$MNT/services" | paste -s -d ' ')"
assert_eq "keep keeps its chain" "trace base" "$(chain_of keep)"
assert_eq "a node-wide key takes the file's value" us "$(cat "$MNT/config/my_app/region")"
assert_eq "a node-wide app the file names is created" v "$(cat "$MNT/config/other/k")"
assert_true "the new owner can write the service's store" \
	mfs_as "$U" sh -c "echo mine >'$MNT/services/api/store/k2'"
wait "$wpid"
assert_match "watchers of a node-wide key hear of the reload's change" 'MODIFY|CLOSE_WRITE' \
	"$(cat "$MFS_TMP/inotify.out")"

# 3. A bad file changes nothing: FILE:LINE in the log.
before=$(snapshot)
cp "$INI" "$MFS_TMP/good.ini"
cat >"$INI" <<'EOF2'
[services.api.limits]
max_keys = 30
[services.api
EOF2
hup
assert_match "a file that does not parse: refused with FILE:LINE" "reload refused, nothing changed: $INI:3: " "$line"
assert_eq "a file that does not parse changes nothing" "$before" "$(snapshot)"

# 4. A refusal late in the file undoes everything the reload did before it.
cat >"$INI" <<'EOF2'
[services.api]
plugins = trace, limits
owner = 0

[services.api.limits]
max_keys = 30

[services.api.app]
greeting = hallo
newkey = 1

[services.keep]
admin = inactive

[services.another]
plugins = trace

[config.my_app]
region = us
added = 1

[config.third]
x = 1

[services.fresh.trace]
lines = many
EOF2
hup
assert_match "a refused key late in the file: refused with its FILE:LINE" \
	"reload refused, nothing changed: $INI:26: service fresh: trace: lines must be" "$line"
assert_eq "a refusal late in the file undoes the chains, keys, owners, admin statuses, services and apps before it" \
	"$before" "$(snapshot)"

cat >"$INI" <<'EOF2'
[services.api]
plugins = trace, limits, nosuchplugin
EOF2
hup
assert_match "an unknown plugin: refused" "reload refused, nothing changed: $INI:2: service api: .*nosuchplugin" "$line"
assert_eq "an unknown plugin changes nothing" "$before" "$(snapshot)"
assert_eq "the store is still there" value "$(cat "$MNT/services/api/store/k1")"

# 5. SIGHUP never unmounts; SIGTERM does, cleanly.
assert_true "the daemon is still mounted after the SIGHUPs" mfs_mounted "$MNT"
mfs_signal_unmount TERM

# 6. Without a bootstrap file, SIGHUP says so and changes nothing.
mfs_mount
line=$(kill -HUP "$MFS_PID"; mfs_poll 5000 eval 'grep -q "nothing to reload" "$MFS_LOG"' && echo logged)
assert_eq "SIGHUP without --config: logged, nothing done" logged "$line"
assert_true "SIGHUP without --config does not unmount" mfs_mounted "$MNT"
mfs_unmount

# 7. With -o state=: the restored tree, not the file, at start; the file
#    applied to it by SIGHUP; and what the reload did is in the state.
STATE=$MFS_TMP/state.db
cp "$MFS_TMP/good.ini" "$INI"
mfs_mount --state="$STATE" --config="$INI"
echo 42 >"$MNT/services/api/config/limits/max_keys"
mfs_unmount
cat >"$INI" <<'EOF2'
[services.api]
plugins = limits

[services.api.app]
greeting = servus
EOF2
mfs_mount --state="$STATE" --config="$INI"
assert_eq "with -o state=, the restored tree comes back, not the file" "ttl limits metrics base" \
	"$(chain_of api)"
hup
assert_match "SIGHUP applies the file to the restored tree" '0 services created, 1 changed' "$line"
assert_eq "the restored service takes the file's chain" "limits base" "$(chain_of api)"
assert_eq "a key the file does not name keeps its restored value" 42 "$(key_of api max_keys)"
sleep 0.3 # the state's commit: within 50 ms
mfs_unmount
mfs_mount --state="$STATE"
assert_eq "what the reload did is in the state" "limits base / servus" \
	"$(chain_of api) / $(key_of api greeting)"
mfs_unmount

mfs_done
