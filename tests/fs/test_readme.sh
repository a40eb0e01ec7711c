#!/bin/bash
# SPDX-License-Identifier: MIT
# The README's shell sessions are true: every one of them is replayed, in
# order, on a fresh mount of the example tree made as `contrib/quickstart.sh
# run` makes it (contrib/example.ini, -o allow_other), and each command
# must print what the README says it prints (times, dates and numbers of
# three digits or more aside). readme_replay.sh does the replaying; its top
# says how sessions are found and what the markers before them mean.
#
# The only set-up is what the markers state: the users alice and bob
# (useradd, with a home), and the build's mallafs first on root's PATH,
# standing for the one `quickstart.sh run` installs. Nothing a session needs
# is made or removed behind its back, so the sessions must also clean up
# after themselves: once they are done, no file outside the mount they
# name is left, and no process they started runs.
#
# `readme_replay.sh rewrite README.md MOUNTPOINT` prints the README with the
# outputs of today.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REPLAY=$SRC/tests/fs/readme_replay.sh
for u in alice bob; do
	id -u "$u" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$u" ||
		mfs_bail "useradd $u"
	mkdir -p "/home/$u" && chown "$u:" "/home/$u"
done
# The sessions use fixed paths (/tmp/m2, /var/lib/mallafs/api.store, ...):
# two replays on one machine (two build trees) take turns.
exec {lock}>/run/lock/mallafs-test-readme.lock || mfs_bail "cannot open /run/lock/mallafs-test-readme.lock"
flock -w 100 "$lock" || mfs_bail "another replay of the README held /run/lock/mallafs-test-readme.lock for 100 s"

# The mount is the quick start's: same file, same options.
if grep -qE '^[[:space:]]*exec mallafs -f -o allow_other --config="\$here/contrib/example.ini" "\$mnt"$' \
	"$SRC/contrib/quickstart.sh"; then
	pass "quickstart.sh run mounts the example tree with -o allow_other, as this test does"
else
	fail "quickstart.sh run mounts the example tree with -o allow_other, as this test does" \
		"$(grep -n 'exec .*mallafs' "$SRC/contrib/quickstart.sh")"
fi

# The processes the commands start carry this in their environment (and
# only they: it is not exported here).
tag="$MFS_NAME.$$.$RANDOM"
tagged()
{
	grep -lsz "^MALLAFS_README_REPLAY=$tag\$" /proc/[0-9]*/environ | cut -d/ -f3
}

mfs_mount -o allow_other --config="$SRC/contrib/example.ini"
MALLAFS_README_REPLAY=$tag "$REPLAY" check "$SRC/README.md" "$MNT"
rc=$?
if ((rc == 0)); then
	pass "the README's sessions replay as written"
else
	fail "the README's sessions replay as written"
fi

# What the sessions leave behind. A daemon a session started goes once it
# is unmounted: give it a moment.
left=''
for _ in $(seq 50); do
	left=$(tagged)
	[[ -n $left ]] || break
	sleep 0.1
done
if [[ -z $left ]]; then
	pass "the sessions leave no process running"
else
	# shellcheck disable=SC2086
	fail "the sessions leave no process running" "$(ps -o pid=,user=,args= -p ${left//$'\n'/,})"
	# shellcheck disable=SC2086
	kill -9 $left 2>/dev/null
fi
files=()
while IFS= read -r p; do
	[[ -d $p || ! (-e $p || -L $p) ]] || files+=("$p")
done < <("$REPLAY" paths "$SRC/README.md" | sort -u)
if ((${#files[@]} == 0)); then
	pass "the sessions leave none of the files they name outside the mount"
else
	fail "the sessions leave none of the files they name outside the mount" "${files[@]}"
fi

# The replay itself: a session that drifts fails, a skipped one is reported
# with its reason, a marker astray is a fault.
cat >"$MFS_TMP/drift.md" <<'EOF'
```
$ cat services/api/chain | head -1
trace
```

<!-- replay: skip: needs etcd -->
```
$ etcdctl get /mallafs
```

```
$ echo one
two
```

<!-- replay: a marker with no session after it -->

```
$ echo three
three
```
EOF
out=$(MALLAFS_README_REPLAY=$tag "$REPLAY" check "$MFS_TMP/drift.md" "$MNT" 2>&1)
rc=$?
want=$'ok   - README session 1 (line 1)
skip - README session 2 (line 7): needs etcd
FAIL - README session 3 (line 11): 1 command(s) differ
       | root$ echo one
       |   1c1
       |   < two
       |   ---
       |   > one
FAIL - README line 16: a marker must be the line right before the fence of a session
ok   - README session 4 (line 18)
# 4 sessions: 3 replayed, 1 skipped; 3 commands, 1 differ; 1 marker fault(s)
# skipped: session 2 (line 7): needs etcd'
if ((rc != 0)) && [[ $out == "$want" ]]; then
	pass "the replay fails a session that drifts, reports skipped ones with their reason"
else
	fail "the replay fails a session that drifts, reports skipped ones with their reason" \
		"exit status $rc" "$(diff <(echo "$want") <(echo "$out"))"
fi

mfs_unmount
mfs_done
