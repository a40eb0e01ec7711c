/* SPDX-License-Identifier: MIT */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Older libc headers may lack the name; the number is the same on every
 * architecture that has the call. */
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* A pidfd becomes readable when its process has exited (zombie or reaped). */
bool mproc_exited(int pidfd)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	int r;
	do
		r = poll(&p, 1, 0);
	while (r < 0 && errno == EINTR);
	return r > 0 && p.revents != 0;
}

/* Reads all of a small /proc file (up to len - 1 bytes) into buf,
 * NUL-terminated. -ESRCH when the process is not there or goes while read. */
static int read_small(const char *path, char *buf, size_t len, size_t *ret_len)
{
	size_t n = 0;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH ? -ESRCH : -errno;
	while (n < len - 1) {
		ssize_t k = read(fd, buf + n, len - 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = errno == ESRCH ? -ESRCH : -errno;
			break;
		}
		if (k == 0)
			break;
		n += (size_t)k;
	}
	close(fd);
	buf[n] = '\0';
	*ret_len = n;
	return r;
}

/* The owner is the effective uid, the one the kernel checks for signals
 * and ptrace of the process. Reads /proc once; exits are watched on the
 * pidfd, never by reading /proc again. */
static int read_owner(pid_t pid, uid_t *ret_uid)
{
	char path[64], buf[4096];
	size_t len;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	r = read_small(path, buf, sizeof(buf), &len);
	if (r < 0)
		return r;

	/* The kernel escapes newlines in Name:, so these only match line starts. */
	const char *state = strstr(buf, "\nState:");
	const char *uids = strstr(buf, "\nUid:");
	if (!state || !uids)
		return -EIO;
	state += strlen("\nState:");
	state += strspn(state, " \t");
	if (*state == 'Z' || *state == 'X')
		return -ESRCH;
	uids += strlen("\nUid:");
	char *end;
	errno = 0;
	strtoul(uids, &end, 10); /* the real uid */
	if (errno || end == uids)
		return -EIO;
	const char *euid = end;
	unsigned long v = strtoul(euid, &end, 10);
	if (errno || end == euid || v > UINT_MAX)
		return -EIO;
	*ret_uid = (uid_t)v;
	return 0;
}

int mproc_open(pid_t pid, int *ret_fd, uid_t *ret_uid)
{
	uid_t uid = 0;
	int fd, r;

	fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		/* Kernels answer EINVAL or ENOENT for a TID that is not a process. */
		return errno == ESRCH || errno == EINVAL || errno == ENOENT ? -ESRCH : -errno;
	r = read_owner(pid, &uid);
	if (r < 0)
		goto fail;
	/* Checked after /proc: still alive now means what we read was this
	 * process's, not a successor's that reused the PID. */
	if (mproc_exited(fd)) {
		r = -ESRCH;
		goto fail;
	}
	*ret_fd = fd;
	*ret_uid = uid;
	return 0;
fail:
	close(fd);
	return r;
}

/* Fields of /proc/PID/stat after the command, which ends at the LAST ')'
 * (the command itself may hold spaces and parentheses): field 3 (the
 * state) is the first of them, the start time (field 22) the twentieth. */
#define STAT_STARTTIME_AFTER_COMM 20

int mproc_starttime(pid_t pid, uint64_t *ret)
{
	/* pid and a command of at most 64 bytes, then 50 numbers of at most
	 * 20 digits: some 1.2 KiB at most. A file filling the buffer was not
	 * understood. */
	char path[64], buf[2048];
	size_t len;
	int r;

	if (pid <= 0)
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	r = read_small(path, buf, sizeof(buf), &len);
	if (r < 0)
		return r;
	if (len == 0 || len == sizeof(buf) - 1 || memchr(buf, '\0', len))
		return -EIO;
	const char *p = strrchr(buf, ')');
	if (!p)
		return -EIO;
	p++;
	for (int field = 1; field <= STAT_STARTTIME_AFTER_COMM; field++) {
		if (*p != ' ')
			return -EIO;
		p++;
		const char *start = p;
		uint64_t v = 0;
		/* The state is a letter; the fields before the start time may
		 * be negative numbers (priority, nice): only the start time
		 * itself must be digits. */
		while (*p && *p != ' ' && *p != '\n') {
			if (field == STAT_STARTTIME_AFTER_COMM) {
				uint64_t d = (uint64_t)(*p - '0');
				if (*p < '0' || *p > '9' || v > (UINT64_MAX - d) / 10)
					return -EIO;
				v = v * 10 + d;
			}
			p++;
		}
		if (p == start)
			return -EIO;
		if (field == STAT_STARTTIME_AFTER_COMM) {
			*ret = v;
			return 0;
		}
	}
	return -EIO;
}
