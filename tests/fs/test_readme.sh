#!/bin/bash
# SPDX-License-Identifier: MIT
# The README's shell sessions are true: every one of them is replayed, in
# order, against a mount of the example tree (contrib/example.ini, with
# -o allow_other), as root and as the users alice and bob the sessions
# name, and each command must print what the README says it prints (times,
# dates and numbers of three digits or more aside). readme_replay.sh does
# the replaying; `readme_replay.sh rewrite README.md MOUNTPOINT` prints the
# README with the outputs of today.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ $(id -u) -ne 0 ]]; then
	echo "SKIP - $MFS_NAME needs root (it makes the users alice and bob)" >&2
	MFS_FINISHED=1
	exit 77
fi
for u in alice bob; do
	id -u "$u" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$u" ||
		mfs_bail "useradd $u"
	mkdir -p "/home/$u" && chown "$u:" "/home/$u"
done
chmod o+x "$MFS_TMP" || mfs_bail "chmod o+x $MFS_TMP"
# What earlier runs of the sessions left behind.
rm -f /var/lib/mallafs/api.store /var/lib/mallafs/api.store-wal /var/lib/mallafs/api.store-shm \
	/var/lib/mallafs/api.store.v1 /tmp/blob /tmp/worker.pid /tmp/hook.out /tmp/bad.ini /tmp/seen /tmp/ev \
	/etc/batch.store /home/alice/batch.store
pkill -u alice sleep 2>/dev/null
export PATH="$(dirname "$MALLAFS"):$PATH"

mfs_mount -o allow_other --config="$SRC/contrib/example.ini"
out=$("$SRC/tests/fs/readme_replay.sh" check "$SRC/README.md" "$MNT" 2>&1)
rc=$?
printf '%s\n' "$out" | grep -v '^ok'
summary=$(tail -n 1 <<<"$out")
if ((rc == 0)); then
	pass "the README's sessions replay as written (${summary#\# })"
else
	fail "the README's sessions replay as written" "${summary#\# }"
fi

# The processes the sessions started.
pkill -u alice sleep 2>/dev/null
[[ ! -s /tmp/worker.pid ]] || kill "$(cat /tmp/worker.pid)" 2>/dev/null
mfs_unmount
mfs_done
