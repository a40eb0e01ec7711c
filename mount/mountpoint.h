/* SPDX-License-Identifier: MIT */
#ifndef MALLAFS_MOUNT_MOUNTPOINT_H
#define MALLAFS_MOUNT_MOUNTPOINT_H

/* Checks the mountpoint GIVEN before anything is created or mounted
 * (mountpoint.c): 0 with its absolute path in *ret (free it), or -1 once the
 * reason is printed on stderr (the command then exits 1). A stale mallafs
 * mount there is unmounted lazily first, with a log line. */
int mmnt_check(const char *prog, const char *given, char **ret);

#endif
