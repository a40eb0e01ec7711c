#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""dirlist: folder listings through getdents64 with a small buffer, for the
mount tests (a shell tool reads a folder in 32 KiB calls and cannot change
anything between two of them).

    dirlist.py churn DIR BUF STABLE CHURN ROUNDS
        Lists DIR with getdents64 calls of BUF bytes. DIR holds the folders
        STABLE (a file of names, one a line) for the whole listing; between
        two calls it removes ROUNDS of the folders CHURN names (rmdir) and
        makes as many new ones (mkdir), so entries come and go while the
        listing goes on. Every stable name must come exactly once, and no
        name twice unless it was made again meanwhile; and the listing must
        end: within as many calls as there were entries at its start (a
        listing that returns what was made after it started, at the end,
        never ends). Prints a summary.
    dirlist.py cost PID DIR BUF REPEAT
        Lists DIR REPEAT times with calls of BUF bytes and prints
        "ENTRIES CALLS NS": the entries seen, the calls made and the CPU
        time process PID (the daemon) spent meanwhile, in ns, from its
        threads' /proc schedstat: what a loaded machine does not change.

Exit status 0 when the listing is right, 1 when not (the reason on stderr),
2 on a usage error.
"""
import ctypes
import os
import struct
import sys

SYS_GETDENTS64 = 217  # x86_64
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def getdents(fd, buf):
    n = libc.syscall(SYS_GETDENTS64, fd, buf, len(buf))
    if n < 0:
        raise OSError(ctypes.get_errno(), "getdents64")
    names = []
    off = 0
    while off < n:
        _ino, _doff, reclen, _typ = struct.unpack_from("<QqHB", buf, off)
        name = bytes(buf[off + 19:off + reclen]).split(b"\0", 1)[0]
        names.append(name.decode())
        off += reclen
    return names


def cpu_ns(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # a thread that ended meanwhile
    return total


def churn(d, bufsize, stable_file, churn_file, rounds):
    with open(stable_file) as f:
        stable = set(f.read().split())
    with open(churn_file) as f:
        present = f.read().split()
    made = set()
    seq = 0
    seen = {}
    buf = ctypes.create_string_buffer(bufsize)
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    calls = 0
    limit = len(stable) + len(present) + 2
    while True:
        names = getdents(fd, buf)
        calls += 1
        if not names:
            break
        if calls > limit:
            print(f"the listing did not end after {limit} calls, {seq} made meanwhile",
                  file=sys.stderr)
            return 1
        for n in names:
            seen[n] = seen.get(n, 0) + 1
        # Entries come and go between two calls: the oldest churn folders
        # go, new ones come (and take the positions freed).
        for _ in range(rounds):
            if present:
                os.rmdir(os.path.join(d, present.pop(0)))
            name = f"churn-new{seq}"
            seq += 1
            os.mkdir(os.path.join(d, name))
            made.add(name)
            present.append(name)
    os.close(fd)
    bad = []
    for n in sorted(stable):
        if seen.get(n, 0) != 1:
            bad.append(f"{n} came {seen.get(n, 0)} times")
    for n, c in sorted(seen.items()):
        if c > 1 and n not in stable and n not in made and n not in (".", ".."):
            bad.append(f"{n} came {c} times")
    print(f"{calls} calls, {len(seen)} names, {len(stable)} stable, {seq} made meanwhile")
    if bad:
        print("\n".join(bad[:20]), file=sys.stderr)
        return 1
    return 0


def cost(pid, d, bufsize, repeat):
    buf = ctypes.create_string_buffer(bufsize)
    entries = calls = 0
    before = cpu_ns(pid)
    for _ in range(repeat):
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        while True:
            names = getdents(fd, buf)
            calls += 1
            if not names:
                break
            entries += len(names)
        os.close(fd)
    print(entries, calls, cpu_ns(pid) - before)
    return 0


def main(argv):
    if len(argv) == 7 and argv[1] == "churn":
        return churn(argv[2], int(argv[3]), argv[4], argv[5], int(argv[6]))
    if len(argv) == 6 and argv[1] == "cost":
        return cost(int(argv[2]), argv[3], int(argv[4]), int(argv[5]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
