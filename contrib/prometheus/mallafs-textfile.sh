#!/bin/sh
# SPDX-License-Identifier: MIT
# Hands mallafs's own metrics to node_exporter's textfile collector:
#   mallafs-textfile.sh [MOUNTPOINT [DIRECTORY]]
# copies MOUNTPOINT/metrics (default /run/mallafs, where contrib/systemd's
# unit mounts) to DIRECTORY/mallafs.prom (default
# /var/lib/prometheus/node-exporter, the --collector.textfile.directory of
# Debian's prometheus-node-exporter). Run it every 15 s or so: with the
# systemd timer beside it (mallafs-textfile.timer), or from cron, once a
# minute:
#   * * * * * root /usr/local/bin/mallafs-textfile.sh
#
# node_exporter reads every *.prom file of DIRECTORY at each scrape, so a
# file must never be seen half-written: the text goes to a temporary file in
# DIRECTORY itself (its name does not end in .prom, so the collector skips
# it), then mv renames it over mallafs.prom, which rename(2) does in one step
# within one filesystem. Readers see the old copy or the new one.
#
# The document is what its reader may see: run as root (or the mount's
# owner, when every service is theirs) to export every service. When
# MOUNTPOINT/metrics cannot be read (mallafs is not mounted), mallafs.prom
# is removed rather than left to look current, and the exit status is 1:
# alert on absent(mallafs_build_info). node_exporter's own
# node_textfile_mtime_seconds{file="mallafs.prom"} tells the copy's age.
set -eu

mnt=${1:-/run/mallafs}
dir=${2:-/var/lib/prometheus/node-exporter}
out=$dir/mallafs.prom

if [ $# -gt 2 ] || [ ! -d "$dir" ]; then
	echo "usage: $0 [MOUNTPOINT [DIRECTORY]] (DIRECTORY must exist: $dir)" >&2
	exit 2
fi

tmp=$(mktemp "$dir/.mallafs.prom.XXXXXX")
trap 'rm -f "$tmp"' EXIT
if ! cat "$mnt/metrics" >"$tmp"; then
	echo "$0: cannot read $mnt/metrics: $out removed" >&2
	rm -f "$out"
	exit 1
fi
# mktemp made it 0600: node_exporter runs as its own user.
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
