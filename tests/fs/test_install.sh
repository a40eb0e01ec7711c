#!/bin/bash
# SPDX-License-Identifier: MIT
# mallafs as the system runs it (issue 14, README "The command"): installed
# by `meson install`, mounted by mount(8) through Debian's mount.fuse3, from
# the command line and from an fstab line.
#
# The build is installed with --destdir into a scratch folder, and the test
# runs in a mount namespace of its own where that folder's PREFIX is
# bind-mounted over the real PREFIX (/usr/local by default): every installed
# file is where it would be, the daemon's compiled-in plugin folder
# included, and nothing outside the namespace sees it. mount(8) runs its
# helpers without PATH, so mount.fuse3's /bin/sh looks `mallafs` up in the
# shell's default PATH (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:
# /sbin:/bin): that is what finds BINDIR/mallafs here, as on a real system.

if [[ -z ${MFS_MOUNTNS:-} ]]; then
	exec unshare --mount --propagation private env MFS_MOUNTNS=1 bash "$0" "$@"
fi
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mfs_need mount.fuse3 fuse3
mfs_need pkg-config pkg-config

BUILD=${MALLAFS_BUILD_DIR:-$(dirname "$(dirname "$MALLAFS")")}
DEST=$MFS_TMP/dest
[[ -d $BUILD/meson-private ]] || mfs_bail "$BUILD is no meson build folder (set MALLAFS_BUILD_DIR)"

# The install layout meson was configured with.
read -r PREFIX BINDIR LIBDIR DATADIR < <(meson introspect "$BUILD" --buildoptions |
	python3 -c 'import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(o["prefix"], *(o[k] if o[k].startswith("/") else o["prefix"] + "/" + o[k]
                     for k in ("bindir", "libdir", "datadir")))')
[[ -n $DATADIR ]] || mfs_bail "meson introspect $BUILD --buildoptions: no prefix, bindir, libdir, datadir"
case $PREFIX in
/ | /usr)
	mfs_bail "prefix $PREFIX: this test binds the installed prefix over the real one," \
		"which it cannot do for $PREFIX (configure with the default /usr/local)"
	;;
esac
[[ -d $PREFIX ]] || mfs_bail "prefix $PREFIX is no folder here: nothing to bind the installed one over"

if ! out=$(meson install -C "$BUILD" --no-rebuild --destdir "$DEST" 2>&1); then
	mfs_bail "meson install --destdir" "$(tail -n 10 <<<"$out")"
fi
pass "meson install --destdir DEST"
mount --bind "$DEST$PREFIX" "$PREFIX" || mfs_bail "mount --bind DEST$PREFIX $PREFIX"
pass "DEST$PREFIX bound over $PREFIX in this mount namespace"

# The daemons mount(8) starts send stderr to /dev/null once mounted: a
# sanitizer's report at their exit goes to files here instead.
for v in ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS; do
	export "$v=${!v:+${!v}:}log_path=$MFS_TMP/sanitizer"
done

PLUGINDIR=$LIBDIR/mallafs/plugins
DOCDIR=$DATADIR/doc/mallafs
EXAMPLE=$DOCDIR/examples/example.ini

# == what is installed where =====================================================

assert_eq "mount.fuse3's shell finds mallafs in $BINDIR (PATH unset, as mount(8) runs it)" \
	"$BINDIR/mallafs" "$(env -i /bin/sh -c 'command -v mallafs')"
assert_exists "$PLUGINDIR/readonly.so"
assert_exists "$EXAMPLE"
assert_true "the installed example is contrib/example.ini" \
	cmp "$EXAMPLE" "$(dirname "$0")/../../contrib/example.ini"
assert_exists "$DOCDIR/LICENSE"
assert_exists "$DOCDIR/README.md"
assert_eq "pkg-config --variable=plugindir mallafs-plugin" "$PLUGINDIR" \
	"$(PKG_CONFIG_PATH=$LIBDIR/pkgconfig pkg-config --variable=plugindir mallafs-plugin 2>&1)"
assert_match "mallafs --help names the same default plugin directory" \
	"\(default: $PLUGINDIR\)" "$("$BINDIR/mallafs" --help 2>&1)"

# == mount(8) ======================================================================

MNT=$MFS_TMP/mnt-install
mkdir -p "$MNT"

# The daemon mount(8) started, in the background: its PID, from /proc.
daemon_pid()
{
	local p
	for p in /proc/[0-9]*; do
		[[ $(readlink "$p/exe" 2>/dev/null) == "$BINDIR/mallafs" ]] || continue
		if tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -qxF "$MNT"; then
			echo "${p#/proc/}"
			return 0
		fi
	done
	return 1
}

# mounted_by_mount WHAT: the tree is there, the example's, with the readonly
# plugin from the compiled-in folder; then umount, and the daemon exits.
mounted_by_mount()
{
	local what=$1 pid
	assert_true "$what: $MNT is mounted" mfs_mounted "$MNT"
	assert_eq "$what: the mount's type" fuse.mallafs \
		"$(awk -v m="$MNT" '$5 == m { for (i = 7; $i != "-"; i++); print $(i + 1) }' /proc/self/mountinfo)"
	pid=$(daemon_pid) || fail "$what: a $BINDIR/mallafs process serves $MNT"
	mfs_bounded 5 cat "$MNT/services/api/status" >"$MFS_TMP/status.out" 2>&1
	assert_match "$what: cat services/api/status" '^state: running' "$(cat "$MFS_TMP/status.out")"
	mfs_bounded 5 ls "$MNT/services" >"$MFS_TMP/ls.out" 2>&1
	assert_eq "$what: ls services" $'api\nbatch\nsessions' "$(cat "$MFS_TMP/ls.out")"
	assert_match "$what: allow_other reached the kernel" 'allow_other' \
		"$(awk -v m="$MNT" '$5 == m' /proc/self/mountinfo)"
	# No --plugin-dir: the compiled-in folder.
	mfs_bounded 5 mkdir "$MNT/services/batch/plugins/readonly" >"$MFS_TMP/mkdir.out" 2>&1
	assert_eq "$what: mkdir plugins/readonly finds it in $PLUGINDIR" '' \
		"$(cat "$MFS_TMP/mkdir.out")"
	mfs_bounded 5 cat "$MNT/services/batch/chain" >"$MFS_TMP/chain.out" 2>&1
	assert_match "$what: the chain has readonly" '^readonly' "$(cat "$MFS_TMP/chain.out")"
	assert_ok umount "$MNT"
	assert_true "$what: nothing is mounted any more" eval '! mfs_mounted "$MNT"'
	if [[ -n $pid ]]; then
		assert_true "$what: the daemon exits once unmounted" \
			mfs_poll 10000 eval '! mfs_alive "$pid"'
	fi
}

out=$(mount -t fuse.mallafs mallafs "$MNT" -o "config=$EXAMPLE,allow_other" 2>&1)
assert_eq "mount -t fuse.mallafs mallafs MNT -o config=EXAMPLE,allow_other" "0 " "$? $out"
mounted_by_mount "mount -t"

# == an fstab line ===================================================================

FSTAB=$MFS_TMP/fstab
printf '# a comment\nmallafs %s fuse.mallafs config=%s,allow_other,nofail,_netdev,x-systemd.after=network-online.target 0 0\n' \
	"$MNT" "$EXAMPLE" >"$FSTAB"
out=$(mount --fstab "$FSTAB" "$MNT" 2>&1)
assert_eq "mount --fstab FILE MNT (config=,allow_other,nofail,_netdev,x-systemd.after=)" "0 " "$? $out"
mounted_by_mount "fstab"

# A bad bootstrap file: mount fails with the daemon's FILE:LINE message,
# and nothing is mounted.
printf '[services.x\n' >"$MFS_TMP/bad.ini"
out=$(mount -t fuse.mallafs mallafs "$MNT" -o "config=$MFS_TMP/bad.ini" 2>&1)
rc=$?
assert_ne "mount with a bad bootstrap file fails" 0 "$rc"
assert_match "and says FILE:LINE" "bad.ini:1" "$out"
assert_true "nothing is mounted" eval '! mfs_mounted "$MNT"'

for f in "$MFS_TMP"/sanitizer*; do
	[[ -e $f ]] || continue
	fail "a sanitizer reported: $f" "$(head -n 30 "$f")"
done

mfs_done
