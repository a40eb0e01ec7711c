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

/* The owner is the effective uid, the one the kernel checks for signals
 * and ptrace of the process. Reads /proc once; exits are watched on the
 * pidfd, never by reading /proc again. */
static int read_owner(pid_t pid, uid_t *ret_uid)
{
	char path[64], buf[4096];
	size_t len = 0;
	int fd, r = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH ? -ESRCH : -errno;
	while (len < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* The process went away while we read. */
			r = errno == ESRCH ? -ESRCH : -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';

	/* The kernel escapes newlines in Name:, so these only match line starts. */
	const char *state = strstr(buf, "\nState:");
	const char *uids = strstr(buf, "\nUid:");
	if (!state || !uids) {
		r = -EIO;
		goto out;
	}
	state += strlen("\nState:");
	state += strspn(state, " \t");
	if (*state == 'Z' || *state == 'X') {
		r = -ESRCH;
		goto out;
	}
	uids += strlen("\nUid:");
	char *end;
	errno = 0;
	strtoul(uids, &end, 10); /* the real uid */
	if (errno || end == uids) {
		r = -EIO;
		goto out;
	}
	const char *euid = end;
	unsigned long v = strtoul(euid, &end, 10);
	if (errno || end == euid || v > UINT_MAX) {
		r = -EIO;
		goto out;
	}
	*ret_uid = (uid_t)v;
out:
	close(fd);
	return r;
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
