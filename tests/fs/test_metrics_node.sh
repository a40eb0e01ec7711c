#!/bin/bash
# SPDX-License-Identifier: MIT
# The root's `metrics` (issue 14, item 8): one Prometheus text document for
# the whole daemon that `promtool check metrics` accepts. Services in each
# state (0 included), restarts, registrations, events lost, the build and
# the start time, and every service's metrics plugin counters with its
# `service` label, one HELP and TYPE per family. Read-only (EACCES, EPERM;
# EROFS on a read-only mount), st_size is what a read gives, and with
# allow_other another user sees only the services whose files they may read.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mfs_need promtool prometheus
mfs_need setpriv util-linux
A=mallafs-t1
B=mallafs-t2
mfs_user "$A"
mfs_user "$B"
mfs_require

# A failed service stays failed while the test looks.
export MALLAFS_RETRY_BASE_MS=3600000 MALLAFS_RETRY_MAX_MS=3600000

INI=$MFS_TMP/boot.ini
cat >"$INI" <<'EOF'
[services.api]
plugins = metrics
[services.web]
plugins = exec, metrics
[services.web.exec]
on_start = /bin/true
[services.batch]
admin = inactive
[services.held]
admin = pause
[services.broken]
plugins = exec
[services.broken.exec]
on_start = /bin/false
EOF

# sample DOC NAME{LABELS}: the value of that sample in DOC, or nothing.
sample()
{
	awk -v s="$2" '$1 == s { print $2 }' <<<"$1"
}

# families DOC: the family of each sample line, in order (one a line).
families()
{
	sed -n 's/^\([a-zA-Z_:][a-zA-Z0-9_:]*\)[{ ].*/\1/p' <<<"$1"
}

# check_format WHAT DOC: promtool accepts DOC, each family has one HELP and
# one TYPE, and its samples come together, right after them.
check_format()
{
	local what=$1 doc=$2 out
	out=$(promtool check metrics <<<"$doc" 2>&1)
	assert_eq "$what: promtool check metrics accepts it" "" "$out"
	assert_eq "$what: no family has two TYPE lines" "" \
		"$(grep '^# TYPE ' <<<"$doc" | awk '{ print $3 }' | sort | uniq -d)"
	assert_eq "$what: no family has two HELP lines" "" \
		"$(grep '^# HELP ' <<<"$doc" | awk '{ print $3 }' | sort | uniq -d)"
	assert_eq "$what: each family's samples come together" "" \
		"$(families "$doc" | uniq | sort | uniq -d)"
	assert_eq "$what: every family with samples has its TYPE line" "" \
		"$(comm -23 <(families "$doc" | sort -u) \
			<(grep '^# TYPE ' <<<"$doc" | awk '{ print $3 }' | sort -u))"
}

# states DOC: "starting running pausing paused stopping stopped failed" counts.
states()
{
	local st out=''
	for st in starting running pausing paused stopping stopped failed; do
		out+="$(sample "$1" "mallafs_services{state=\"$st\"}") "
	done
	printf '%s' "${out% }"
}

mfs_mount -o allow_other,events=16 --config="$INI"
M=$MNT/metrics
S=$MNT/services

# ---- the file ----
assert_ls "$MNT" config events metrics registry services
assert_eq "metrics is a read-only file for all" "regular file 444 0 0" \
	"$(stat -c '%F %a %u %g' "$M" 2>&1)"

# ---- what happens, then what the file says of it ----
# A service only root may look into: alice's, mode 0700.
assert_ok mkdir "$S/secret"
assert_ok mkdir "$S/secret/plugins/metrics"
assert_ok chown "$A:$A" "$S/secret"
assert_ok chmod 0700 "$S/secret"
assert_ok bash -c "echo s > '$S/secret/store/s'"

# api: two puts, a get, a delete, a refusal (rename of a missing key).
assert_ok bash -c "echo one > '$S/api/store/k1'"
assert_ok bash -c "echo two > '$S/api/store/k2'"
assert_eq "api: k1 reads back" one "$(cat "$S/api/store/k1")"
assert_ok rm "$S/api/store/k2"
# web: a new on_start command takes over with a restart.
assert_ok bash -c "echo /usr/bin/true > '$S/web/config/exec/on_start'"
assert_eq "web restarted once" 1 "$(status_field "$S/web" restarts)"
assert_eq "broken failed to start" failed "$(status_field "$S/broken" state)"
assert_eq "held is paused" paused "$(status_field "$S/held" state)"

# Registrations: a name and a pool member, held by a live process.
mfs_spawn holder sleep 600
assert_ok bash -c "echo $holder > '$MNT/registry/worker'"
assert_ok mkdir "$MNT/registry/pool"
assert_ok bash -c "echo v > '$MNT/registry/pool/$holder'"

doc=$(cat "$M")
check_format "as root" "$doc"
version=$("$MALLAFS" --version | head -n 1 | cut -d' ' -f2)
assert_eq "mallafs_build_info names the version ($version)" 1 \
	"$(sample "$doc" "mallafs_build_info{version=\"$version\"}")"
start=$(sample "$doc" mallafs_start_time_seconds)
now=$(date +%s)
assert_true "mallafs_start_time_seconds ($start) is the daemon's start, a moment ago ($now)" \
	awk -v s="$start" -v n="$now" 'BEGIN { exit !(s > n - 120 && s <= n + 1) }'
assert_eq "services by state, every state, 0 included (root sees all six)" \
	"0 3 0 1 0 1 1" "$(states "$doc")"
assert_eq "restarts: web's one" 1 "$(sample "$doc" 'mallafs_service_restarts_total{service="web"}')"
assert_eq "restarts: api's none" 0 "$(sample "$doc" 'mallafs_service_restarts_total{service="api"}')"
assert_eq "restarts: every service has its sample" 6 \
	"$(grep -c '^mallafs_service_restarts_total{' <<<"$doc")"
assert_eq "registrations: one name" 1 "$(sample "$doc" 'mallafs_registrations{kind="name"}')"
assert_eq "registrations: one pool member" 1 \
	"$(sample "$doc" 'mallafs_registrations{kind="member"}')"
assert_eq "one pool" 1 "$(sample "$doc" mallafs_registry_pools)"
assert_eq "no event lost yet by the feed" 0 \
	"$(sample "$doc" 'mallafs_events_dropped_total{stage="feed"}')"
assert_eq "none by the notifier" 0 \
	"$(sample "$doc" 'mallafs_events_dropped_total{stage="notifier"}')"

# api's counters are its own file's, line for line, under the node's headers.
own=$(grep -v '^#' "$S/api/metrics")
doc=$(cat "$M")
assert_eq "api's metrics file has 12 samples" 12 "$(wc -l <<<"$own")"
assert_eq "the root's metrics has each of them" "$own" "$(grep -F -x -f <(printf '%s\n' "$own") <<<"$doc")"
assert_eq "api: 2 puts" 2 "$(sample "$doc" 'mallafs_store_puts_total{service="api"}')"
assert_eq "api: 1 delete" 1 "$(sample "$doc" 'mallafs_store_deletes_total{service="api"}')"
assert_eq "api: 1 key" 1 "$(sample "$doc" 'mallafs_store_keys{service="api"}')"
assert_eq "web has the plugin: its series are there" 0 \
	"$(sample "$doc" 'mallafs_store_puts_total{service="web"}')"
assert_eq "secret's too, for root" 1 "$(sample "$doc" 'mallafs_store_puts_total{service="secret"}')"
assert_eq "services without the plugin have no store series" "" \
	"$(grep -E '^mallafs_store_[a-z_]+\{service="(batch|held|broken)"' <<<"$doc")"
assert_eq "each store family is there once, with its 3 services" \
	"3 3 3 3 3 3 3 3 3 3 3 3" \
	"$(for f in gets hits misses read_bytes puts written_bytes creates truncates deletes renames refusals; do
		printf '%s ' "$(grep -c "^mallafs_store_${f}_total{" <<<"$doc")"
	done; grep -c '^mallafs_store_keys{' <<<"$doc")"
assert_eq "one HELP for mallafs_store_puts_total" 1 \
	"$(grep -c '^# HELP mallafs_store_puts_total ' <<<"$doc")"
assert_size "$M"

# ---- events lost ----
# An events reader whose 40 events the ring (16) no longer keeps.
exec {F}<"$MNT/events" || mfs_bail "open events"
for ((i = 0; i < 40; i++)); do echo "$i" >>"$S/api/store/feed"; done
line=$(timeout 10 bash -c 'IFS= read -r l && printf "%s" "$l"' <&"$F")
exec {F}<&-
assert_match "the reader is told of the overflow" '^[0-9]+ overflow$' "$line"
doc=$(cat "$M")
total=$(sample "$doc" mallafs_events_total)
assert_eq "events lost: every event from the overflow's to the newest" \
	$((total + 1 - ${line%% *})) "$(sample "$doc" 'mallafs_events_dropped_total{stage="feed"}')"
assert_true "at least the 40 writes ($total events in all)" test $((total + 1 - ${line%% *})) -ge 40

# ---- read-only ----
assert_errno EACCES open "$M" w
assert_errno EACCES open "$M" rw
assert_errno EACCES truncate "$M" 0
assert_fails_with EACCES bash -c "echo x > '$M'"
assert_errno EPERM unlink "$M"
assert_errno 'EPERM|EXDEV' rename "$M" "$MNT/metrics2"
assert_eq "the file is still there, whole" "$doc" "$(cat "$M")"

# ---- other users ----
PROBE=$MFS_TMP/fsprobe
cp "$FSPROBE" "$PROBE" && chmod 0755 "$PROBE" || mfs_bail "copy fsprobe"
bdoc=$(mfs_as "$B" cat "$M" 2>&1)
check_format "as $B" "$bdoc"
assert_eq "$B: secret (alice's, 0700) is not counted" "0 2 0 1 0 1 1" "$(states "$bdoc")"
assert_eq "$B: nothing of secret shows" "" "$(grep 'service="secret"' <<<"$bdoc")"
assert_eq "$B: api's series show (0755): 2 puts and 40 more" 42 \
	"$(sample "$bdoc" 'mallafs_store_puts_total{service="api"}')"
assert_eq "$B: the node's own series are everyone's" 1 \
	"$(sample "$bdoc" 'mallafs_registrations{kind="name"}')"
size=$(mfs_as "$B" "$PROBE" stat-size "$M" 2>&1)
assert_eq "$B: st_size is what $B reads" "$(printf '%s' "$bdoc" | wc -c)" $((size - 1))
assert_ne "$B reads less than root" "$(wc -c <<<"$doc")" "$(wc -c <<<"$bdoc")"
adoc=$(mfs_as "$A" cat "$M" 2>&1)
check_format "as $A" "$adoc"
assert_eq "$A sees their own secret" 1 "$(sample "$adoc" 'mallafs_store_puts_total{service="secret"}')"
assert_eq "$A: counted" "0 3 0 1 0 1 1" "$(states "$adoc")"
# The store series follow services/NAME/metrics's own mode: without it, a
# service still counts (its status is readable) but shows no store series.
assert_ok chmod 0600 "$S/api/metrics"
bdoc=$(mfs_as "$B" cat "$M" 2>&1)
assert_eq "$B: api's metrics file unreadable: no store series of api" "" \
	"$(grep '^mallafs_store_.*service="api"' <<<"$bdoc")"
assert_eq "$B: api still counted and restarts shown (status readable)" 0 \
	"$(sample "$bdoc" 'mallafs_service_restarts_total{service="api"}')"
assert_errno EACCES open "$M" w
assert_ok mfs_as "$B" test -r "$M"
got=$(mfs_as "$B" "$PROBE" errno open "$M" w 2>&1)
mfs_expect_errno EACCES "$got" "$B: open(metrics, w)"

# ---- while services come and go ----
# Every read is one whole document, while services with the plugin are
# made, written and removed beside it for 1.5 s.
churn=$MFS_TMP/churn.sh
cat >"$churn" <<'EOF'
S=$1 end=$(($(date +%s%N) / 1000000 + 1500)) i=0
while (($(date +%s%N) / 1000000 < end)); do
	mkdir "$S/churn$i" && mkdir "$S/churn$i/plugins/metrics" && echo x >"$S/churn$i/store/k"
	((i >= 3)) && rmdir "$S/churn$((i - 3))"
	i=$((i + 1))
done
for d in "$S"/churn*; do rmdir "$d"; done
EOF
mfs_spawn churner bash "$churn" "$S"
reads=0 bad=0 last_bad=''
while mfs_alive "$churner"; do
	d=$(cat "$M")
	reads=$((reads + 1))
	if [[ $(head -n 1 <<<"$d") != "# HELP mallafs_build_info "* ||
		$(tail -n 1 <<<"$d") != "mallafs_store_keys{"* ]]; then
		bad=$((bad + 1))
		last_bad=$d
	fi
done
wait "$churner"
assert_eq "$reads reads while services came and went: each one whole" 0 "$bad"
((bad == 0)) || fail "a read cut short" "${last_bad:0:2000}"
check_format "the last read while services came and went" "$d"
assert_ls "$S" api batch broken held secret web

# ---- the textfile collector example (contrib/prometheus) ----
TEXTFILE=$(dirname "${BASH_SOURCE[0]}")/../../contrib/prometheus/mallafs-textfile.sh
TF=$MFS_TMP/textfile
mkdir -p "$TF" || mfs_bail "mkdir $TF"
assert_ok sh "$TEXTFILE" "$MNT" "$TF"
assert_ls "$TF" mallafs.prom
assert_eq "mallafs.prom: 0644, for node_exporter's user" 644 "$(stat -c %a "$TF/mallafs.prom")"
assert_eq "mallafs.prom: promtool accepts it" "" \
	"$(promtool check metrics <"$TF/mallafs.prom" 2>&1)"
assert_eq "mallafs.prom has the node's series" 1 \
	"$(sample "$(cat "$TF/mallafs.prom")" 'mallafs_registrations{kind="name"}')"
assert_ok sh "$TEXTFILE" "$MNT" "$TF"
assert_ls "$TF" mallafs.prom

mfs_kill_child "$holder"
mfs_unmount

# Not mounted: the stale copy goes, and the script says so.
out=$(sh "$TEXTFILE" "$MNT" "$TF" 2>&1)
assert_eq "textfile script without the mount: exit status 1" 1 "$?"
assert_match "it says why" "cannot read .*/metrics: .*mallafs.prom removed" "$out"
assert_ls "$TF"

# ---- a read-only mount, with no service at all ----
mfs_mount -o ro
assert_errno EROFS open "$MNT/metrics" w
assert_errno EROFS truncate "$MNT/metrics" 0
doc=$(cat "$MNT/metrics")
check_format "no service, on a read-only mount" "$doc"
assert_eq "no service: every state 0" "0 0 0 0 0 0 0" "$(states "$doc")"
assert_eq "no service: no per-service family" "" "$(grep 'service=' <<<"$doc")"
assert_size "$MNT/metrics"
mfs_unmount

mfs_done
