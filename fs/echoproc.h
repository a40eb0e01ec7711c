/* SPDX-License-Identifier: MIT */
/* The echo process (echoproc.c): the notifier's I/O on the mount, done by
 * a child that holds no /dev/fuse descriptor. Used by one thread at a time. */
#ifndef MALLAFS_FS_ECHOPROC_H
#define MALLAFS_FS_ECHOPROC_H

#include <sys/types.h>

enum mfs_echo_op {
	MFS_ECHO_OP_TOUCH,  /* open for writing, write one byte, close: IN_MODIFY, IN_CLOSE_WRITE */
	MFS_ECHO_OP_CREATE, /* open(O_CREAT | O_EXCL), close: IN_CREATE */
	MFS_ECHO_OP_MKDIR,
	MFS_ECHO_OP_UNLINK,
	MFS_ECHO_OP_RMDIR,
};

struct mfs_echoproc;

/* Forks the child, for the mount at mountpoint (which it aborts if the
 * daemon dies). 0 or -errno. */
int mfs_echoproc_start(const char *mountpoint, struct mfs_echoproc **ret);
/* The pid its requests carry, -1 for NULL. */
pid_t mfs_echoproc_pid(const struct mfs_echoproc *ep);
/* Does op on the absolute path and waits for the child's answer: 0 or -errno
 * (-EPIPE when the child is gone). */
int mfs_echoproc_do(struct mfs_echoproc *ep, enum mfs_echo_op op, const char *path);
/* Kills the child at once, so that an echo blocked on the mount ends
 * (-EPIPE): at shutdown, when nobody serves the mount any more. The
 * structure stays for mfs_echoproc_stop. Accepts NULL. */
void mfs_echoproc_kill(struct mfs_echoproc *ep);
/* Ends the child and waits for it; accepts NULL. */
void mfs_echoproc_stop(struct mfs_echoproc *ep);

#endif
