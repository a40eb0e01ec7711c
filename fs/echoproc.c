/* SPDX-License-Identifier: MIT */
/* The echo process: a child that does the notifier's I/O on the mount
 * (open and write, create, mkdir, unlink, rmdir), one request at a time,
 * over a socket pair.
 *
 * Why a process: a thread of the daemon blocked in a request on its own
 * mount can keep a killed daemon from ever closing /dev/fuse (the kernel
 * waits for that request's answer, which only the dead daemon could give),
 * and the mount hangs for good. The child holds no /dev/fuse descriptor:
 * when the daemon dies, the connection closes, the child's request fails,
 * and the child, which dies with its parent (PR_SET_PDEATHSIG), goes too.
 * The notifier waits on the socket only, which a kill always ends.
 *
 * A dead daemon's connection can still be held open: the notifier thread
 * may sit, unkillable, in a cache invalidation that waits for a folder's
 * lock, held by a process whose request only the dead daemon would have
 * answered. So when the daemon dies, the child aborts the connection
 * itself, through the connection's abort file in the FUSE control
 * filesystem (/sys/fs/fuse/connections/N/abort), opened before the fork:
 * every waiter wakes, the daemon's last thread exits, and `fusermount3 -u`
 * clears the mount. The file is held open, not named again later: a
 * connection that is gone leaves it answering ENOTCONN, so no other
 * filesystem's connection, which may get the same number, is ever aborted.
 *
 * The child is forked from a process that runs threads, so until it exits
 * it calls only async-signal-safe functions, on memory of its own stack. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "echoproc.h"
#include "util.h"

struct msg {
	int op; /* enum mfs_echo_op */
	char path[PATH_MAX];
};

struct mfs_echoproc {
	int sock;
	pid_t pid;
};

#define CHILD_SOCK 3
#define CHILD_ABORT 4 /* the connection's abort file, when fusectl is mounted */

static _Noreturn void abort_and_exit(bool can_abort)
{
	if (can_abort && write(CHILD_ABORT, "1", 1) < 0) {
		/* gone already: nothing left to free */
	}
	_exit(0);
}

/* The connection's number is its superblock's minor device number, which
 * /proc/self/mountinfo tells (no stat of the mount: the request loop does
 * not run yet). */
static void find_ctl(const char *mountpoint, char *ctl, size_t len)
{
	ctl[0] = '\0';
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	char *line = NULL;
	size_t cap = 0;
	unsigned maj, min;
	char mnt[PATH_MAX + 1];
	while (getline(&line, &cap, f) > 0) {
		if (sscanf(line, "%*u %*u %u:%u %*s %4096s", &maj, &min, mnt) == 3 &&
		    strcmp(mnt, mountpoint) == 0)
			snprintf(ctl, len, "/sys/fs/fuse/connections/%u/abort", min);
	}
	free(line);
	fclose(f);
}

static int child_do(int op, const char *path)
{
	int fd, r = 0;
	switch (op) {
	case MFS_ECHO_OP_TOUCH:
		fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return errno;
		if (write(fd, "\n", 1) < 0)
			r = errno;
		close(fd);
		return r;
	case MFS_ECHO_OP_CREATE:
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0)
			return errno;
		close(fd);
		return 0;
	case MFS_ECHO_OP_MKDIR:
		return mkdir(path, 0755) < 0 ? errno : 0;
	case MFS_ECHO_OP_UNLINK:
		return unlink(path) < 0 ? errno : 0;
	case MFS_ECHO_OP_RMDIR:
		return rmdir(path) < 0 ? errno : 0;
	}
	return EINVAL;
}

/* Whether the pending parent-death signal came from the daemon (its
 * exiting thread sends it), not from anyone else. */
static bool parent_died(int sfd, pid_t parent)
{
	struct signalfd_siginfo si;
	while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		if ((pid_t)si.ssi_pid == parent)
			return true;
	return false;
}

static _Noreturn void child_main(int sock, int abort_fd, pid_t parent)
{
	/* Told when the daemon dies (its thread that forked, main(), exits
	 * with it), through a signalfd: getppid() cannot tell while another
	 * thread of the dying daemon lives, and a signal handler may run late
	 * under a sanitizer. Never outlives a parent already gone. */
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_SETMASK, &usr1, NULL);
	prctl(PR_SET_PDEATHSIG, SIGUSR1);
	/* Every descriptor goes but the socket and the abort file: /dev/fuse
	 * first of all. Both are moved out of the way of their slots first. */
	sock = fcntl(sock, F_DUPFD, CHILD_ABORT + 1);
	abort_fd = abort_fd >= 0 ? fcntl(abort_fd, F_DUPFD, CHILD_ABORT + 1) : -1;
	if (sock < 0 || dup2(sock, CHILD_SOCK) < 0)
		_exit(1);
	bool can_abort = abort_fd >= 0 && dup2(abort_fd, CHILD_ABORT) == CHILD_ABORT;
	close_range(0, CHILD_SOCK - 1, 0);
	close_range(can_abort ? CHILD_ABORT + 1 : CHILD_SOCK + 1, ~0U, 0);
	if (getppid() != parent)
		abort_and_exit(can_abort);
	int sfd = signalfd(-1, &usr1, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0)
		_exit(1);
	/* A terminal's ^C and hangup are the daemon's to handle; SIGTERM,
	 * which libfuse's handler would only note, ends the child. */
	struct sigaction ign = {.sa_handler = SIG_IGN}, dfl = {.sa_handler = SIG_DFL};
	sigaction(SIGINT, &ign, NULL);
	sigaction(SIGHUP, &ign, NULL);
	sigaction(SIGPIPE, &ign, NULL);
	sigaction(SIGTERM, &dfl, NULL);

	struct msg m;
	for (;;) {
		struct pollfd p[2] = {{.fd = CHILD_SOCK, .events = POLLIN},
		                      {.fd = sfd, .events = POLLIN}};
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			_exit(1);
		if ((p[1].revents & POLLIN) && parent_died(sfd, parent))
			abort_and_exit(can_abort);
		if (!p[0].revents)
			continue;
		ssize_t n = recv(CHILD_SOCK, &m, sizeof(m), MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= (ssize_t)offsetof(struct msg, path)) {
			/* The daemon closed its end, or is gone. */
			if (getppid() != parent)
				abort_and_exit(can_abort);
			_exit(0);
		}
		m.path[(size_t)n - offsetof(struct msg, path) - 1] = '\0';
		int r = child_do(m.op, m.path);
		while (send(CHILD_SOCK, &r, sizeof(r), MSG_NOSIGNAL) < 0 && errno == EINTR)
			;
	}
}

int mfs_echoproc_start(const char *mountpoint, struct mfs_echoproc **ret)
{
	int sv[2];
	struct mfs_echoproc *ep = calloc(1, sizeof(*ep));
	if (!ep)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		int e = errno;
		free(ep);
		return -e;
	}
	char ctl[64];
	find_ctl(mountpoint, ctl, sizeof(ctl));
	int abort_fd = ctl[0] ? open(ctl, O_WRONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
	if (abort_fd < 0)
		mu_log(MU_LOG_WARNING,
		       "the FUSE control filesystem is not mounted on /sys/fs/fuse/connections: "
		       "if mallafs is killed, a process waiting on %s may hang until the "
		       "connection is aborted there",
		       mountpoint);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		if (abort_fd >= 0)
			close(abort_fd);
		free(ep);
		return -e;
	}
	if (pid == 0)
		child_main(sv[1], abort_fd, parent);
	close(sv[1]);
	if (abort_fd >= 0)
		close(abort_fd);
	ep->sock = sv[0];
	ep->pid = pid;
	*ret = ep;
	return 0;
}

pid_t mfs_echoproc_pid(const struct mfs_echoproc *ep)
{
	return ep ? ep->pid : -1;
}

int mfs_echoproc_do(struct mfs_echoproc *ep, enum mfs_echo_op op, const char *path)
{
	struct msg m;
	size_t len = strlen(path);
	if (len >= sizeof(m.path))
		return -ENAMETOOLONG;
	m.op = op;
	memcpy(m.path, path, len + 1);
	ssize_t n;
	do {
		n = send(ep->sock, &m, offsetof(struct msg, path) + len + 1, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	int r;
	do {
		n = recv(ep->sock, &r, sizeof(r), 0);
	} while (n < 0 && errno == EINTR);
	if (n != sizeof(r))
		return n < 0 ? -errno : -EPIPE; /* the child is gone */
	return -r;
}

void mfs_echoproc_kill(struct mfs_echoproc *ep)
{
	if (ep)
		kill(ep->pid, SIGKILL); /* unreaped until stop: the pid is still its */
}

void mfs_echoproc_stop(struct mfs_echoproc *ep)
{
	if (!ep)
		return;
	/* At its next receive the child sees the end, and exits. */
	close(ep->sock);
	while (waitpid(ep->pid, NULL, 0) < 0 && errno == EINTR)
		;
	free(ep);
}
