/* SPDX-License-Identifier: MIT */
/* Facts about a process that the registry needs: a pidfd on it while it
 * lives, its owner, whether it has exited. Exits are watched on the pidfd,
 * never by reading /proc again, so a PID reused by a later process is never
 * mistaken for the one registered. No state, no locks. */
#ifndef MALLAFS_CORE_PROC_H
#define MALLAFS_CORE_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Opens a pidfd (O_CLOEXEC) on the live process pid and reads its owner,
 * the effective uid. -ESRCH when there is no such process, it is a zombie,
 * or pid names a thread that does not lead its process (no process of that
 * PID exists); -EIO when /proc cannot be understood. */
int mproc_open(pid_t pid, int *ret_fd, uid_t *ret_uid);

/* True once the process of pidfd has exited (zombie or reaped). */
bool mproc_exited(int pidfd);

/* The start time of the process pid (field 22 of /proc/PID/stat, clock
 * ticks after boot): with the PID, what names one process for good.
 * -ESRCH when there is no such process, -EIO when the file cannot be
 * understood. */
int mproc_starttime(pid_t pid, uint64_t *ret);
#endif
