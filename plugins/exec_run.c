/* SPDX-License-Identifier: MIT */
/* exec: the daemon's side of running one hook.
 *
 * The hook is forked with every signal blocked (exec_child.c sets up its
 * side), then fed its input and drained of its output through non-blocking
 * pipes in one poll loop, which also watches for its exit (a pidfd; without
 * one, as under valgrind, a waitid every EXEC_POLL_TICK_MS) and for the
 * child's report of a failure before exec.
 *
 * The timeout: once timeout_ms has passed, the hook's process group (its
 * shell and whatever it started) gets SIGTERM; a group not gone
 * EXEC_KILL_GRACE_MS later gets SIGKILL. The shell is left unreaped (a
 * zombie) while its group may still be signalled, so that the group's id
 * cannot be reused by a stranger in the meantime; members left after the
 * shell exited are found in /proc. A hook that ends in time is reaped at
 * once; a background child it leaves holding its output pipes is not
 * waited for. */
#include "exec_run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* Without pidfds, how often a hook is checked for exit. */
#define EXEC_POLL_TICK_MS 10
/* How often a terminated group is looked for in /proc once its shell is
 * gone (a scan of every process: not too often). */
#define EXEC_GROUP_TICK_MS 50

int64_t exec_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void exec_result_free(struct exec_result *res)
{
	free(res->out.data);
	free(res->err.data);
}

/* ---- pipes ---- */

/* Moves fd above 0..2, so the child's dup2 onto stdin/stdout/stderr never
 * lands on another of the pipes (a daemon may run with those closed). */
static int fd_above_stdio(int fd)
{
	if (fd > STDERR_FILENO)
		return fd;
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
	int e = errno;
	close(fd);
	errno = e;
	return nfd;
}

static int pipe_pair(int p[2])
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	p[0] = fd_above_stdio(p[0]);
	p[1] = fd_above_stdio(p[1]);
	if (p[0] < 0 || p[1] < 0) {
		int e = errno;
		if (p[0] >= 0)
			close(p[0]);
		if (p[1] >= 0)
			close(p[1]);
		return -e;
	}
	return 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static int pidfd_of(pid_t pid)
{
#ifdef SYS_pidfd_open
	/* pidfd_open gives O_CLOEXEC by definition. */
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd >= 0)
		return fd;
#endif
	return -1;
}

/* Reads what fd has now into cap. Returns 1 at end of file, 0 otherwise. */
static int drain(int fd, struct exec_capture *cap)
{
	char buf[16384];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n == 0)
			return 1;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* EAGAIN: nothing more now. Anything else: treat as
			 * the end, the hook's exit still decides the result. */
			return errno == EAGAIN ? 0 : 1;
		}
		size_t room = EXEC_OUTPUT_CAP - cap->len;
		size_t keep = (size_t)n < room ? (size_t)n : room;
		if (keep > 0) {
			if (!cap->data) {
				cap->data = malloc(EXEC_OUTPUT_CAP + 1);
				if (!cap->data) {
					cap->truncated = true;
					continue;
				}
			}
			memcpy(cap->data + cap->len, buf, keep);
			cap->len += keep;
			cap->data[cap->len] = '\0';
		}
		if (keep < (size_t)n)
			cap->truncated = true;
	}
}

/* ---- the process group ---- */

/* To the hook's process group; before the child has made its session (the
 * group does not exist yet) to the child alone, which is ours and unreaped,
 * so the pid is still its. */
static void signal_group(pid_t pid, int sig)
{
	if (kill(-pid, sig) < 0 && errno == ESRCH)
		kill(pid, sig);
}

/* Whether a live process other than the leader is in process group pgid.
 * When /proc cannot be read, assumes so: the group then gets its SIGKILL. */
static bool group_has_others(pid_t pgid)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	bool found = false;
	if (!d)
		return true;
	while (!found && (de = readdir(d))) {
		char path[300], buf[512];
		if (de->d_name[0] < '1' || de->d_name[0] > '9' || atol(de->d_name) == (long)pgid)
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		/* pid (comm) state ppid pgrp ...; comm may hold anything. */
		char *p = strrchr(buf, ')');
		char st;
		int ppid;
		long pgrp;
		if (p && sscanf(p + 1, " %c %d %ld", &st, &ppid, &pgrp) == 3 &&
		    pgrp == (long)pgid && st != 'Z' && st != 'X')
			found = true;
	}
	closedir(d);
	return found;
}

/* ---- the exchange ---- */

struct run {
	struct mallafs_svc *svc;
	const char *hook;
	pid_t pid;
	int pidfd, in_fd, out_fd, err_fd, report_fd;
	const char *input;
	size_t input_len, off;
	struct exec_report report;
	size_t report_len;
	bool epipe;
	struct exec_result *res;
};

static void feed(struct run *r)
{
	/* POLLERR alone means the reader is gone: the write then fails with
	 * EPIPE. */
	ssize_t w = write(r->in_fd, r->input + r->off, r->input_len - r->off);
	if (w > 0) {
		r->off += (size_t)w;
	} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
		if (errno == EPIPE)
			r->epipe = true;
		/* The hook does not want (the rest of) its input; that is its
		 * business. */
		r->off = r->input_len;
	}
	if (r->off == r->input_len)
		close_fd(&r->in_fd);
}

/* The child's report, should it have failed before exec: one write of a few
 * bytes to a pipe, so read whole. End of file means the exec happened. */
static void read_report(struct run *r)
{
	for (;;) {
		char *p = (char *)&r->report + r->report_len;
		ssize_t n = read(r->report_fd, p, sizeof(r->report) - r->report_len);
		if (n > 0) {
			r->report_len += (size_t)n;
			if (r->report_len < sizeof(r->report))
				continue;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && errno == EAGAIN) {
			return;
		} else if (r->report_len < sizeof(r->report)) {
			r->report_len = 0;
		}
		close_fd(&r->report_fd);
		return;
	}
}

/* Whether the hook's shell has exited, left unreaped. Sets *lost when it
 * was reaped behind our back (SIGCHLD set to SIG_IGN reaps automatically). */
static bool has_exited(pid_t pid, bool *lost)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
		*lost = errno == ECHILD;
		return *lost;
	}
	return si.si_pid == pid;
}

/* Feeds the hook its input, captures its output and waits for its end, at
 * most timeout_ms before the group is terminated. Always reaps the hook
 * (unless someone else did) and closes the pipes. */
static void exchange(struct run *r, unsigned long timeout_ms)
{
	struct exec_result *res = r->res;
	int64_t deadline = exec_now_ms() + (int64_t)timeout_ms, kill_at = 0;
	bool exited = false, lost = false, timed_out = false, killed = false;
	int status = 0;

	if (r->input_len == 0)
		close_fd(&r->in_fd);
	for (;;) {
		struct pollfd pfd[5];
		int nfd = 0, i_in = -1, i_out = -1, i_err = -1, i_rep = -1, i_pid = -1;
		int64_t now = exec_now_ms();

		if (!timed_out && !exited && now >= deadline) {
			timed_out = true;
			kill_at = now + EXEC_KILL_GRACE_MS;
			close_fd(&r->in_fd);
			signal_group(r->pid, SIGTERM);
			mallafs_svc_log(r->svc, LOG_DEBUG,
			                "exec: %s: timed out after %lu ms: SIGTERM to its "
			                "process group",
			                r->hook, timeout_ms);
		}
		if (timed_out && now >= kill_at) {
			signal_group(r->pid, SIGKILL);
			killed = true;
			break;
		}
		/* Ended in time; or terminated, and nothing of it left. */
		if (exited && (!timed_out || !group_has_others(r->pid)))
			break;

		if (r->in_fd >= 0) {
			i_in = nfd;
			pfd[nfd++] = (struct pollfd){.fd = r->in_fd, .events = POLLOUT};
		}
		if (r->out_fd >= 0) {
			i_out = nfd;
			pfd[nfd++] = (struct pollfd){.fd = r->out_fd, .events = POLLIN};
		}
		if (r->err_fd >= 0) {
			i_err = nfd;
			pfd[nfd++] = (struct pollfd){.fd = r->err_fd, .events = POLLIN};
		}
		if (r->report_fd >= 0) {
			i_rep = nfd;
			pfd[nfd++] = (struct pollfd){.fd = r->report_fd, .events = POLLIN};
		}
		if (r->pidfd >= 0 && !exited) {
			i_pid = nfd;
			pfd[nfd++] = (struct pollfd){.fd = r->pidfd, .events = POLLIN};
		}

		int64_t left = (timed_out ? kill_at : deadline) - now;
		int wait_ms = left > INT32_MAX ? INT32_MAX : (int)left;
		/* Without a pidfd the exit is only seen by asking; once the
		 * shell is gone, the rest of its group only by looking. */
		if (exited && wait_ms > EXEC_GROUP_TICK_MS)
			wait_ms = EXEC_GROUP_TICK_MS;
		else if (!exited && i_pid < 0 && wait_ms > EXEC_POLL_TICK_MS)
			wait_ms = EXEC_POLL_TICK_MS;
		int n = poll(pfd, (nfds_t)nfd, wait_ms);
		/* EINTR, or a failure the next round may not have: the
		 * deadline still holds. */
		if (n < 0)
			n = 0;
		if (n > 0 && i_in >= 0 && pfd[i_in].revents)
			feed(r);
		if (n > 0 && i_out >= 0 && pfd[i_out].revents && drain(r->out_fd, &res->out))
			close_fd(&r->out_fd);
		if (n > 0 && i_err >= 0 && pfd[i_err].revents && drain(r->err_fd, &res->err))
			close_fd(&r->err_fd);
		if (n > 0 && i_rep >= 0 && pfd[i_rep].revents)
			read_report(r);
		if (!exited && (i_pid < 0 || (n > 0 && pfd[i_pid].revents)))
			exited = has_exited(r->pid, &lost);
		if (lost)
			break;
	}

	if (!lost) {
		while (waitpid(r->pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	/* What it wrote before exiting is in the pipes now; a background
	 * child it left holding them is not waited for. */
	if (r->out_fd >= 0)
		drain(r->out_fd, &res->out);
	if (r->err_fd >= 0)
		drain(r->err_fd, &res->err);
	if (r->report_fd >= 0)
		read_report(r);

	if (r->report_len == sizeof(r->report)) {
		res->end = EXEC_NOT_RUN;
		res->status = r->report.err;
	} else if (lost) {
		res->end = EXEC_LOST;
	} else if (timed_out) {
		res->end = EXEC_TIMED_OUT;
		if (killed)
			snprintf(res->detail, sizeof(res->detail),
			         "its process group outlived SIGTERM by %d ms: SIGKILL",
			         EXEC_KILL_GRACE_MS);
		else
			snprintf(res->detail, sizeof(res->detail),
			         "its process group ended on SIGTERM");
	} else if (WIFSIGNALED(status)) {
		res->end = EXEC_SIGNALED;
		res->status = WTERMSIG(status);
	} else {
		res->end = EXEC_EXITED;
		res->status = WEXITSTATUS(status);
	}
	close_fd(&r->in_fd);
	close_fd(&r->out_fd);
	close_fd(&r->err_fd);
	close_fd(&r->report_fd);
	close_fd(&r->pidfd);
}

/* ---- starting ---- */

/* Forks the child with every signal blocked: until it has put back the
 * default handling, a signal must not run one of the daemon's handlers in
 * it. Returns the pid or -errno. */
static pid_t spawn(const struct exec_cred *cred, int in_fd, int out_fd, int err_fd, int report_fd)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid_t pid = fork();
	if (pid == 0)
		exec_child(cred, in_fd, out_fd, err_fd, report_fd);
	int e = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return pid < 0 ? -e : pid;
}

static int start(struct run *r, const struct exec_cred *cred)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, rep[2] = {-1, -1};
	int ret = pipe_pair(in);
	if (ret == 0)
		ret = pipe_pair(out);
	if (ret == 0)
		ret = pipe_pair(err);
	if (ret == 0)
		ret = pipe_pair(rep);
	if (ret == 0) {
		pid_t pid = spawn(cred, in[0], out[1], err[1], rep[1]);
		if (pid < 0)
			ret = (int)pid;
		else
			r->pid = pid;
	}
	/* The child's ends are the child's now. */
	close_fd(&in[0]);
	close_fd(&out[1]);
	close_fd(&err[1]);
	close_fd(&rep[1]);
	r->in_fd = in[1];
	r->out_fd = out[0];
	r->err_fd = err[0];
	r->report_fd = rep[0];
	if (ret < 0)
		return ret;
	r->pidfd = pidfd_of(r->pid);
	ret = set_nonblock(r->in_fd);
	if (ret == 0)
		ret = set_nonblock(r->out_fd);
	if (ret == 0)
		ret = set_nonblock(r->err_fd);
	if (ret == 0)
		ret = set_nonblock(r->report_fd);
	if (ret < 0) {
		/* Blocking pipes could hang us past the timeout. */
		int st;
		signal_group(r->pid, SIGKILL);
		while (waitpid(r->pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	return ret;
}

void exec_run(struct mallafs_svc *svc, const char *hook, const char *cmd, const char *input,
              size_t input_len, unsigned long timeout_ms, struct exec_result *res)
{
	struct run r = {.svc = svc,
	                .hook = hook,
	                .pid = -1,
	                .pidfd = -1,
	                .in_fd = -1,
	                .out_fd = -1,
	                .err_fd = -1,
	                .report_fd = -1,
	                .input = input,
	                .input_len = input_len,
	                .res = res};
	struct exec_cred cred;
	sigset_t pipe_set, old_mask, pending;
	bool was_pending;

	memset(res, 0, sizeof(*res));
	res->end = EXEC_NOT_RUN;

	/* A write to a hook that closed its stdin raises SIGPIPE in this
	 * thread; the daemon ignores it, but a program embedding the core
	 * might not. Blocked here, it stays pending and is taken back below,
	 * unless one was already pending that is not ours to take. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE) == 1;

	int ret = exec_cred_get(svc, hook, cmd, &cred, res->detail, sizeof(res->detail));
	if (ret == 0) {
		ret = start(&r, &cred);
		if (ret < 0)
			snprintf(res->detail, sizeof(res->detail), "%s", strerror(-ret));
	}
	if (ret == 0) {
		mallafs_svc_log(svc, LOG_DEBUG, "exec: %s: running as uid %lu gid %lu (pid %ld)",
		                hook, (unsigned long)cred.uid, (unsigned long)cred.gid,
		                (long)r.pid);
		exchange(&r, timeout_ms);
		if (res->end == EXEC_NOT_RUN)
			exec_report_text(&r.report, &cred, res->detail, sizeof(res->detail));
	} else {
		res->status = -ret;
	}
	close_fd(&r.in_fd);
	close_fd(&r.out_fd);
	close_fd(&r.err_fd);
	close_fd(&r.report_fd);
	close_fd(&r.pidfd);
	exec_cred_free(&cred);

	if (r.epipe && !was_pending) {
		struct timespec zero = {0, 0};
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
}
