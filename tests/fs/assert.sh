# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# The mount tests' assertions, sourced by lib.sh (which defines pass, fail,
# mfs_show, mfs_rel and the daemon's state they read): each checks one thing
# through system calls or the shell tools and reports it with pass or fail.

# assert_eq WHAT EXPECTED ACTUAL
assert_eq()
{
	if [[ $2 == "$3" ]]; then
		pass "$1"
	else
		fail "$1" "expected: $(mfs_show "$2")" "actual:   $(mfs_show "$3")"
	fi
}

# assert_ne WHAT UNEXPECTED ACTUAL
assert_ne()
{
	if [[ $2 != "$3" ]]; then
		pass "$1"
	else
		fail "$1" "unexpected: $(mfs_show "$3")"
	fi
}

# assert_match WHAT EXTENDED_REGEX ACTUAL
assert_match()
{
	if [[ $3 =~ $2 ]]; then
		pass "$1"
	else
		fail "$1" "expected to match: $2" "actual: $(mfs_show "$3")"
	fi
}

# assert_ok CMD...: CMD exits 0.
assert_ok()
{
	local out rc
	out=$("$@" 2>&1)
	rc=$?
	if ((rc == 0)); then
		pass "$(mfs_cmdline "$@")"
	else
		fail "$(mfs_cmdline "$@") succeeds" "exit status $rc" "${out//"$MNT"/MNT}"
	fi
}

# assert_true WHAT CMD...: the same with a message of its own.
assert_true()
{
	local what=$1 out rc
	shift
	out=$("$@" 2>&1)
	rc=$?
	if ((rc == 0)); then
		pass "$what"
	else
		fail "$what" "$(mfs_cmdline "$@"): exit status $rc" "${out//"$MNT"/MNT}"
	fi
}

mfs_cmdline()
{
	local a s=''
	for a in "$@"; do
		a=$(mfs_rel "$a")
		if [[ -n $MNT ]]; then
			a=${a//"$MNT"/MNT}
		fi
		if ((${#a} > 70)); then
			a="${a:0:67}..."
		fi
		if [[ $a =~ [[:space:]] || -z $a ]]; then
			a="'$a'"
		fi
		s+="${s:+ }$a"
	done
	printf '%s' "$s"
}

# assert_fails_with ERRNO[|ERRNO...] CMD...: CMD (a shell tool) exits
# non-zero and its stderr shows strerror() of one of the errnos. For sh -c
# commands, MNT in the message stands for the mountpoint.
assert_fails_with()
{
	local errnos=$1 out rc e msg ok=0
	local -a list
	shift
	out=$("$@" 2>&1)
	rc=$?
	if ((rc != 0)); then
		IFS='|' read -r -a list <<<"$errnos"
		for e in "${list[@]}"; do
			msg=$("$FSPROBE" strerror "$e") || mfs_bail "test bug: unknown errno $e"
			if [[ $out == *"$msg"* ]]; then
				ok=1
			fi
		done
	fi
	local what
	what="$(mfs_cmdline "$@") fails with $errnos"
	what=${what//"$MNT"/MNT}
	if ((ok)); then
		pass "$what"
	else
		fail "$what" "exit status $rc" "${out//"$MNT"/MNT}"
	fi
}

# assert_errno ERRNO[|ERRNO...]|OK OP PATH [ARG...]: one system call through
# fsprobe (see fsprobe.c for the operations) gives that errno.
assert_errno()
{
	local want=$1 got
	shift
	got=$("$FSPROBE" errno "$@" 2>&1)
	mfs_expect_errno "$want" "$got" "$(mfs_cmdline "$@")"
}

# assert_write ERRNO[|ERRNO...]|OK PATH DATA: one write() of DATA on an fd
# opened as `>` opens (O_WRONLY|O_CREAT|O_TRUNC); the write itself (not the
# open) gives that errno.
assert_write()
{
	local want=$1 path=$2 data=$3 got
	got=$("$FSPROBE" write "$path" "$data" 2>&1)
	mfs_expect_errno "$want" "$got" "write($(mfs_rel "$path"), $(mfs_show "$data"))"
}

mfs_expect_errno()
{
	local want=$1 got=$2 what=$3 e
	local -a list
	IFS='|' read -r -a list <<<"$want"
	for e in "${list[@]}"; do
		if [[ $got == "$e" ]]; then
			pass "$what -> $got"
			return 0
		fi
	done
	fail "$what -> $want" "got: $got"
}

# assert_file PATH EXPECTED: the file's bytes are exactly EXPECTED (command
# substitution would drop trailing newlines, so this compares with cmp).
assert_file()
{
	local path=$1 want=$2 what
	what="$(mfs_rel "$path") reads $(mfs_show "$want")"
	if cmp -s <(printf '%s' "$want") "$path"; then
		pass "$what"
	else
		fail "$what" "actual (od -c):" "$(od -c "$path" 2>&1 | head -n 8)"
	fi
}

# assert_same FILE_A FILE_B: same bytes.
assert_same()
{
	local out
	if out=$(cmp "$1" "$2" 2>&1); then
		pass "$(mfs_rel "$2") has the same bytes as $(mfs_rel "$1")"
	else
		fail "$(mfs_rel "$2") has the same bytes as $(mfs_rel "$1")" "${out//"$MNT"/MNT}"
	fi
}

# assert_stat_is ERRNO|OK WHAT PATH: stat(PATH) gives that.
assert_stat_is()
{
	local got
	got=$("$FSPROBE" errno stat "$3")
	if [[ $got == "$1" ]]; then
		pass "$2"
	else
		fail "$2" "stat: $got"
	fi
}

assert_exists()
{
	assert_stat_is OK "$(mfs_rel "$1") exists" "$1"
}

assert_absent()
{
	assert_stat_is ENOENT "$(mfs_rel "$1") does not exist" "$1"
}

# assert_ls DIR [NAME...]: `ls -A DIR` lists exactly these names (any order).
assert_ls()
{
	local dir=$1 want got
	shift
	want=$(printf '%s\n' "$@" | LC_ALL=C sort)
	if (($# == 0)); then
		want=''
	fi
	got=$(ls -A "$dir" 2>&1 | LC_ALL=C sort)
	if [[ $got == "$want" ]]; then
		pass "ls $(mfs_rel "$dir"): ${*:-(empty)}"
	else
		fail "ls $(mfs_rel "$dir"): ${*:-(empty)}" "got: $(printf '%s' "$got" | tr '\n' ' ')"
	fi
}

# assert_size PATH: st_size equals the number of bytes a read gives.
assert_size()
{
	local path=$1 size bytes
	size=$("$FSPROBE" stat-size "$path" 2>&1)
	bytes=$(wc -c <"$path" 2>&1)
	if [[ $size == "$bytes" ]]; then
		pass "$(mfs_rel "$path"): st_size $size is the number of bytes read"
	else
		fail "$(mfs_rel "$path"): st_size is the number of bytes read" \
			"st_size: $size, bytes read: $bytes"
	fi
}

# assert_responsive PATH SECS: the daemon still answers: `cat PATH` ends
# within SECS seconds (without ever blocking the test) and succeeds.
assert_responsive()
{
	local path=$1 secs=$2 out=$MFS_TMP/responsive.out t0 rc
	local what="the daemon answers: cat $(mfs_rel "$path") within ${secs}s"
	t0=$(mfs_now_ms)
	mfs_bounded "$secs" cat "$path" >"$out" 2>&1
	rc=$?
	if ((rc == 0)); then
		pass "$what (in $(($(mfs_now_ms) - t0)) ms)"
	elif ((rc == 124)); then
		fail "$what" "no answer after ${secs}s"
	else
		fail "$what" "exit status $rc" "$(head -n 5 "$out")"
	fi
}

# status_field SERVICE_DIR FIELD: the value of one line of status.
status_field()
{
	sed -n "s/^$2: //p" "$1/status"
}

# assert_error_changed WHAT SERVICE_DIR BEFORE: last_error is set and differs
# from BEFORE (a refused operation puts its reason there).
assert_error_changed()
{
	local le
	le=$(status_field "$2" last_error)
	if [[ $le != - && $le != "$3" ]]; then
		pass "$1: last_error gives a reason"
	else
		fail "$1: last_error gives a reason" "last_error: $(mfs_show "$le")"
	fi
}

# assert_reason WHAT SERVICE_DIR TEXT: last_error is "TIMESTAMP REASON" with
# TEXT in the reason, and the daemon log holds TEXT too (in the lines it got
# since the previous check).
REASON_LOG=''
REASON_MARK=0
assert_reason()
{
	local what=$1 svc=$2 text=$3 le
	le=$(status_field "$svc" last_error)
	if [[ $le =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z\  && $le == *"$text"* ]]; then
		pass "$what: last_error gives the reason ($text)"
	else
		fail "$what: last_error gives the reason" "expected: TIMESTAMP ...$text..." \
			"actual:   $(mfs_show "$le")"
	fi
	# Only the log lines since the previous check count.
	if [[ $REASON_LOG != "$MFS_LOG" ]]; then
		REASON_LOG=$MFS_LOG
		REASON_MARK=0
	fi
	# Not grep -q: with pipefail, tail killed by SIGPIPE when grep stops
	# at the first match would read as not found.
	if tail -n +$((REASON_MARK + 1)) "$MFS_LOG" | grep -F -- "$text" >/dev/null; then
		pass "$what: the daemon log gives the reason"
	else
		fail "$what: the daemon log gives the reason ($text)" \
			"$(tail -n +$((REASON_MARK + 1)) "$MFS_LOG" | tail -n 5)"
	fi
	REASON_MARK=$(wc -l <"$MFS_LOG")
}
