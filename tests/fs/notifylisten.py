#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""notifylisten: what systemd's side of the notify protocol sees, for the
mount tests (test_sdnotify.sh).

    notifylisten.py SOCKET MOUNTPOINT OUT

Binds an AF_UNIX datagram socket at SOCKET (a path, or @NAME for an
abstract one, as $NOTIFY_SOCKET names them) with SO_PASSCRED, writes
"bound" to OUT, then one line per datagram received:

    PID MOUNTED SERVICES MESSAGE

PID is the sender's, from its credentials; MOUNTED is 1 when MOUNTPOINT is
in the mount table as the datagram arrives, else 0; SERVICES is 1 when
MOUNTPOINT/services is a folder then (the tree answers), else 0, checked
for READY=1 only ("-" for any other message: a stopping daemon answers
nothing); MESSAGE is
the datagram with each newline as "|". Ends after 60 s without a datagram
or when killed."""
import os
import socket
import struct
import sys


def mounted(mnt):
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == mnt for line in f)


def main():
    path, mnt, out = sys.argv[1:4]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    s.bind("\0" + path[1:] if path.startswith("@") else path)
    s.settimeout(60)
    with open(out, "w", buffering=1) as f:
        f.write("bound\n")
        while True:
            try:
                msg, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(12))
            except socket.timeout:
                return
            # Checked first, as close to the arrival as can be.
            m = mounted(mnt)
            # Only for READY=1: while the daemon stops, nothing answers.
            svc = "-"
            if b"READY=1\n" in msg:
                svc = int(m and os.path.isdir(os.path.join(mnt, "services")))
            pid = 0
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", data[:12])[0]
            text = msg.decode(errors="replace").replace("\n", "|")
            f.write(f"{pid} {int(m)} {svc} {text}\n")


main()
