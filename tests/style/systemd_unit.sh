#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The installed unit (contrib/systemd/mallafs.service.in, as meson configures
# it) is one systemd accepts: `systemd-analyze verify` says nothing about it,
# with the built daemon in place of the installed one (verify checks that
# ExecStart's command exists) and the man page not looked up (it may not be
# installed yet). It says what the README and the man page promise. And
# verify does catch a broken unit here (a misspelt value), or this test
# would prove nothing.
#   systemd_unit.sh UNIT BINDIR MALLAFS
set -u
unit=${1:?usage: systemd_unit.sh UNIT BINDIR MALLAFS} bindir=${2:?} mallafs=${3:?}
passed=0 failed=0
pass()
{
	passed=$((passed + 1))
	echo "ok   - $1"
}
fail()
{
	failed=$((failed + 1))
	echo "FAIL - $1"
	shift
	printf '%s\n' "$@" | sed 's/^/       | /'
}
finish()
{
	echo "$passed passed, $failed failed"
	((failed == 0))
	exit
}
if ! command -v systemd-analyze >/dev/null; then
	fail "systemd-analyze is not installed (package systemd; contrib/quickstart.sh installs it)"
	finish
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mallafs-unit.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# verify FILE: systemd-analyze's complaints about FILE (nothing when fine).
verify()
{
	local out rc
	out=$(systemd-analyze verify --man=no "$1" 2>&1)
	rc=$?
	printf '%s' "$out"
	((rc == 0)) || printf '\n(exit status %s)' "$rc"
}

# has LINE: the unit holds exactly this line.
has()
{
	if grep -qxF -- "$1" "$unit"; then
		pass "$1"
	else
		fail "the unit says $1" "$(grep -E "^${1%%=*}=" "$unit")"
	fi
}

start="ExecStart=$bindir/mallafs "
line=$(grep "^ExecStart=" "$unit")
if [[ $line == "$start"* ]]; then
	pass "ExecStart= runs the installed $bindir/mallafs"
else
	fail "ExecStart= runs the installed $bindir/mallafs" "$line"
fi
sed "s|^$start|ExecStart=$mallafs |" "$unit" >"$tmp/mallafs.service"
out=$(verify "$tmp/mallafs.service")
if [[ -z $out ]]; then
	pass "systemd-analyze verify: no complaint"
else
	fail "systemd-analyze verify: no complaint" "$out"
fi

has "Type=notify"
has "NotifyAccess=main"
has "ExecReload=/bin/kill -HUP \$MAINPID"
has "KillMode=mixed"
has "RuntimeDirectory=mallafs"
has "StateDirectory=mallafs"
has "LimitNOFILE=1048576"
has "Documentation=man:mallafs(8)"
has "Restart=on-failure"
has "ExecStopPost=-/usr/bin/fusermount3 -u -z /run/mallafs"
has "WantedBy=multi-user.target"
for want in " -f " " --config=" "/mallafs/mallafs.ini " " --state=/var/lib/mallafs/state.db " \
	" -o allow_other " " /run/mallafs"; do
	if [[ "$line " == *"$want"* ]]; then
		pass "ExecStart= has '$want'"
	else
		fail "ExecStart= has '$want'" "$line"
	fi
done
if ! grep -q '@[A-Z]*@' "$unit"; then
	pass "meson substituted every @VARIABLE@"
else
	fail "meson substituted every @VARIABLE@" "$(grep '@[A-Z]*@' "$unit")"
fi

sed 's/^KillMode=mixed$/KillMode=mixd/' "$tmp/mallafs.service" >"$tmp/broken.service"
out=$(verify "$tmp/broken.service")
if [[ $out == *mixd* ]]; then
	pass "systemd-analyze verify catches a broken unit (KillMode=mixd)"
else
	fail "systemd-analyze verify catches a broken unit (KillMode=mixd)" "${out:-(nothing said)}"
fi
finish
