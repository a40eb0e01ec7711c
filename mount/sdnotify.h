/* SPDX-License-Identifier: MIT */
/* The daemon as a systemd service: readiness and status through the notify
 * protocol (sd_notify(3): one AF_UNIX datagram of NAME=VALUE lines to the
 * socket $NOTIFY_SOCKET names, a path or, after an '@', an abstract name),
 * and log priorities the journal understands (sd-daemon(3): a "<N>" before
 * each line, when stderr is the journal's stream, $JOURNAL_STREAM).
 *
 * Without $NOTIFY_SOCKET every msd_ call below does nothing. The address is
 * read once by msd_init, then never changes: msd_ready, msd_status,
 * msd_reloading and msd_stopping may be called from any thread, at any time
 * after it, and never block (a full or absent listener loses the message,
 * as with sd_notify). */
#ifndef MALLAFS_MOUNT_SDNOTIFY_H
#define MALLAFS_MOUNT_SDNOTIFY_H

#include <stdbool.h>
#include <stddef.h>

struct mrt;

/* Call first in main(), before any thread or child process: reads and
 * removes $NOTIFY_SOCKET from the environment (nothing the daemon runs,
 * fusermount3 or an exec hook, may speak for it), notes the PID (a later
 * msd_ready from another PID, the background child, adds MAINPID=), and,
 * when stderr is the journal's stream, makes every line written to stderr
 * carry a priority: mu_log's lines their level, any other line (the
 * command's refusals) <3>, an error. Returns true in that last case. */
bool msd_init(void);

/* READY=1 and STATUS=status (and MAINPID= from the background child):
 * the tree is mounted and serves requests, or is again after a reload. */
void msd_ready(const char *status);
/* STATUS= alone: a line for `systemctl status`. */
void msd_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* RELOADING=1 with MONOTONIC_USEC= (systemd 253 and later want both; older
 * ones ignore the second); msd_ready ends the reload. */
void msd_reloading(void);
/* STOPPING=1: the daemon unmounts and stops every service. */
void msd_stopping(void);

/* The one-line summary STATUS= carries: "mounted on MOUNTPOINT: N services,
 * M apps", in buf (always NUL-terminated). It takes the runtime's lock and
 * the node configuration's, one after the other: call it holding neither. */
void msd_summary(struct mrt *rt, const char *mountpoint, char *buf, size_t len);

#endif
