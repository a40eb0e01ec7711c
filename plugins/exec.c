/* exec: shell commands as hooks of a service's life.
 *
 *   validate    merge phase: the proposed configuration on stdin; a non-zero
 *               exit rejects the change (EINVAL) with the first line of
 *               stderr as the reason. The command used is the one in the
 *               proposed configuration, so a new validate checks its own
 *               installation and a removed one no longer applies; a bad
 *               validate can therefore never lock the configuration.
 *               It runs only when the proposed configuration differs from
 *               the committed one: adding or removing other plugins does not
 *               ask it again about a configuration it already accepted.
 *   on_update   update phase: the new configuration on stdin; exit 0 applies
 *               it, 75 (EX_TEMPFAIL) asks for a restart, anything else fails
 *               the change, which is rolled back (EIO).
 *   on_start    as the plugin starts, the committed configuration on stdin;
 *               a failure fails the start (the service becomes failed).
 *   on_stop     as the plugin stops, the configuration it last ran with on
 *               stdin; its outcome is only logged.
 *
 * Each runs as `/bin/sh -c COMMAND` in a process group of its own, with the
 * daemon's environment plus MALLAFS_SERVICE, MALLAFS_MOUNT and MALLAFS_HOOK.
 * Its stdout is logged at info level, line by line; the first non-empty line
 * of its stderr is the reason given for a failure and the other lines are
 * logged as warnings. Past timeout_ms the whole group is killed and the hook
 * counts as failed.
 *
 * A hook blocks only the thread that runs it, which holds nothing but its
 * own service's reconfiguration lock (the core's op_lock): other services,
 * and readers and writers of this service's store, go on meanwhile. */
#include "builtin.h"
#include "plugin_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* Output kept from each of a hook's stdout and stderr; the rest is read and
 * dropped, so a chatty hook never blocks on a full pipe. */
#define EXEC_OUTPUT_CAP (64 * 1024)
#define EXEC_TIMEOUT_MAX 3600000UL
/* The exit status by which on_update asks for a restart (sysexits' EX_TEMPFAIL). */
#define EXEC_EXIT_RESTART 75
/* Without pidfds, how often a hook that closed its pipes is checked for exit. */
#define EXEC_POLL_TICK_MS 10

/* clang-format off */
static const struct mallafs_setting exec_settings[] = {
	{.key = "validate", .def = "", .restart = 1},
	{.key = "on_update", .def = "", .restart = 1},
	{.key = "on_start", .def = "", .restart = 1},
	{.key = "on_stop", .def = "", .restart = 1},
	{.key = "timeout_ms", .def = "5000"},
	{0},
};
/* clang-format on */

/* The commands whose change needs a restart, in the order they are reported. */
static const char *const exec_commands[] = {"validate", "on_update", "on_start", "on_stop"};

struct exec_state {
	struct mallafs_svc *svc;
	const struct mallafs_plugin *self;
	/* What stop needs, from the configuration the plugin runs with: stop
	 * is handed no configuration. */
	char *on_stop;
	char *ini;
	size_t ini_len;
	unsigned long timeout_ms;
};

/* A capped capture of one of a hook's output streams. */
struct capture {
	char *data;
	size_t len;
	bool truncated;
};

enum hook_end {
	HOOK_EXITED,    /* status holds the exit status */
	HOOK_SIGNALED,  /* status holds the signal */
	HOOK_TIMED_OUT, /* killed by us */
	HOOK_LOST,      /* gone, but someone else reaped it */
	HOOK_NOT_RUN,   /* status holds the errno */
};

struct hook_result {
	enum hook_end end;
	int status;
	struct capture out, err;
};

static void hook_result_free(struct hook_result *res)
{
	free(res->out.data);
	free(res->err.data);
}

/* ---- settings ---- */

/* From 1 to EXEC_TIMEOUT_MAX ms. Every fault is -EINVAL: the callers only
 * tell success from failure. */
static int parse_timeout(const char *s, unsigned long *ret)
{
	uint64_t v;
	if (pu_parse_uint(s, EXEC_TIMEOUT_MAX, &v) < 0 || v == 0)
		return -EINVAL;
	*ret = (unsigned long)v;
	return 0;
}

/* A command that is empty or blank means "no hook". */
static const char *command_of(const struct mallafs_cfg *cfg, const struct exec_state *x,
                              const char *key)
{
	const char *cmd = mallafs_setting(cfg, x->self, key);
	if (!cmd)
		return NULL;
	for (const char *p = cmd; *p; p++)
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			return cmd;
	return NULL;
}

static unsigned long timeout_of(const struct mallafs_cfg *cfg, const struct exec_state *x)
{
	unsigned long t = 0;
	/* The merge phase let only valid values in; a default is the fallback
	 * should a configuration somehow skip it. */
	if (parse_timeout(mallafs_setting(cfg, x->self, "timeout_ms"), &t) < 0)
		t = 5000;
	return t;
}

/* ---- running a hook ---- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

static bool env_is_ours(const char *entry)
{
	static const char *const ours[] = {"MALLAFS_SERVICE=", "MALLAFS_MOUNT=", "MALLAFS_HOOK="};
	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
		if (strncmp(entry, ours[i], strlen(ours[i])) == 0)
			return true;
	return false;
}

static void env_free(char **envp, size_t nours)
{
	if (!envp)
		return;
	/* Our own entries come first; the rest are environ's, not ours to free. */
	for (size_t i = 0; i < nours; i++)
		free(envp[i]);
	free(envp);
}

/* The daemon's environment with MALLAFS_SERVICE, MALLAFS_MOUNT and
 * MALLAFS_HOOK set (replacing any the daemon inherited). */
static int env_build(const struct exec_state *x, const char *hook, char ***ret)
{
	const char *mount = mallafs_svc_mountpoint(x->svc);
	size_t n = 0;
	for (char **e = environ; e && *e; e++)
		n++;
	char **envp = calloc(n + 4, sizeof(*envp));
	if (!envp)
		return -ENOMEM;
	if (asprintf(&envp[0], "MALLAFS_SERVICE=%s", mallafs_svc_name(x->svc)) < 0)
		envp[0] = NULL;
	if (envp[0] && asprintf(&envp[1], "MALLAFS_MOUNT=%s", mount ? mount : "") < 0)
		envp[1] = NULL;
	if (envp[1] && asprintf(&envp[2], "MALLAFS_HOOK=%s", hook) < 0)
		envp[2] = NULL;
	if (!envp[2]) {
		env_free(envp, 3);
		return -ENOMEM;
	}
	size_t k = 3;
	for (char **e = environ; e && *e && k < n + 3; e++)
		if (!env_is_ours(*e))
			envp[k++] = *e;
	envp[k] = NULL;
	*ret = envp;
	return 0;
}

/* Starts `sh -c cmd` in a new process group with the given pipe ends as its
 * stdin, stdout and stderr and nothing else open. The child starts with the
 * default disposition for every signal and none blocked: the daemon ignores
 * SIGPIPE, and an ignored signal would stay ignored across exec. */
static int spawn_hook(const char *cmd, char **envp, int in_fd, int out_fd, int err_fd,
                      pid_t *ret_pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t all, none;
	int r;

	r = posix_spawn_file_actions_init(&fa);
	if (r != 0)
		return -r;
	r = posix_spawnattr_init(&attr);
	if (r != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return -r;
	}
	sigfillset(&all);
	sigemptyset(&none);
	/* dup2 clears FD_CLOEXEC on the copies; the originals (all above 2,
	 * all close-on-exec) vanish at exec. */
	r = posix_spawn_file_actions_adddup2(&fa, in_fd, STDIN_FILENO);
	if (r == 0)
		r = posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
	if (r == 0)
		r = posix_spawn_file_actions_adddup2(&fa, err_fd, STDERR_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
	/* Descriptors someone opened without O_CLOEXEC must not leak into
	 * (and be held open by) the hook. */
	if (r == 0)
		r = posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
#endif
	if (r == 0)
		r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
		                                            POSIX_SPAWN_SETSIGDEF);
	if (r == 0)
		r = posix_spawnattr_setpgroup(&attr, 0);
	if (r == 0)
		r = posix_spawnattr_setsigmask(&attr, &none);
	if (r == 0)
		r = posix_spawnattr_setsigdefault(&attr, &all);
	if (r == 0) {
		char *argv[] = {(char *)"sh", (char *)"-c", (char *)cmd, NULL};
		r = posix_spawn(ret_pid, "/bin/sh", &fa, &attr, argv, envp);
	}
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return -r;
}

static int pidfd_of(pid_t pid)
{
#ifdef SYS_pidfd_open
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd >= 0) {
		/* pidfd_open gives O_CLOEXEC by definition; nothing to add. */
		return fd;
	}
#endif
	return -1;
}

/* Reads what fd has now into cap. Returns 1 at end of file, 0 otherwise. */
static int drain(int fd, struct capture *cap)
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

static void reap(pid_t pid, int *ret_status)
{
	while (waitpid(pid, ret_status, 0) < 0 && errno == EINTR)
		;
}

/* The exchange with a started hook: feeds it input, captures its output and
 * waits for its exit, at most timeout_ms. Always reaps it. Sets *ret_epipe
 * when a write found the hook's stdin closed. */
static void exchange(pid_t pid, int in_fd, int out_fd, int err_fd, const char *input,
                     size_t input_len, unsigned long timeout_ms, struct hook_result *res,
                     bool *ret_epipe)
{
	int pidfd = pidfd_of(pid);
	int64_t deadline = now_ms() + (int64_t)timeout_ms;
	size_t off = 0;
	int status = 0;
	bool exited = false;

	if (input_len == 0)
		close_fd(&in_fd);
	for (;;) {
		struct pollfd pfd[4];
		int nfd = 0, i_in = -1, i_out = -1, i_err = -1, i_pid = -1;

		if (in_fd >= 0) {
			i_in = nfd;
			pfd[nfd++] = (struct pollfd){.fd = in_fd, .events = POLLOUT};
		}
		if (out_fd >= 0) {
			i_out = nfd;
			pfd[nfd++] = (struct pollfd){.fd = out_fd, .events = POLLIN};
		}
		if (err_fd >= 0) {
			i_err = nfd;
			pfd[nfd++] = (struct pollfd){.fd = err_fd, .events = POLLIN};
		}
		if (pidfd >= 0) {
			i_pid = nfd;
			pfd[nfd++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
		}

		int64_t left = deadline - now_ms();
		if (left <= 0) {
			/* The whole group: the shell and whatever it started. */
			kill(-pid, SIGKILL);
			reap(pid, &status);
			res->end = HOOK_TIMED_OUT;
			break;
		}
		int wait_ms = left > INT32_MAX ? INT32_MAX : (int)left;
		/* Without a pidfd, the exit is only seen by asking. */
		if (pidfd < 0 && wait_ms > EXEC_POLL_TICK_MS)
			wait_ms = EXEC_POLL_TICK_MS;
		int n = poll(pfd, (nfds_t)nfd, wait_ms);
		/* EINTR, or a failure the next round may not have: the
		 * deadline still holds. */
		if (n < 0)
			n = 0;
		if (n > 0 && i_in >= 0 && pfd[i_in].revents) {
			/* POLLERR alone means the reader is gone: the write
			 * below then fails with EPIPE. */
			size_t chunk = input_len - off;
			ssize_t w = write(in_fd, input + off, chunk);
			if (w > 0) {
				off += (size_t)w;
			} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				if (errno == EPIPE)
					*ret_epipe = true;
				/* The hook does not want (the rest of) its
				 * input; that is its business. */
				off = input_len;
			}
			if (off == input_len)
				close_fd(&in_fd);
		}
		if (n > 0 && i_out >= 0 && pfd[i_out].revents && drain(out_fd, &res->out))
			close_fd(&out_fd);
		if (n > 0 && i_err >= 0 && pfd[i_err].revents && drain(err_fd, &res->err))
			close_fd(&err_fd);

		if (pidfd < 0 || (n > 0 && pfd[i_pid].revents)) {
			pid_t w = waitpid(pid, &status, WNOHANG);
			if (w < 0 && errno == ECHILD) {
				/* Reaped behind our back (SIGCHLD set to
				 * SIG_IGN reaps automatically): the status is
				 * gone, so this cannot count as a success. */
				res->end = HOOK_LOST;
				break;
			}
			exited = w == pid;
		}
		if (exited) {
			/* What it wrote before exiting is in the pipes now; a
			 * background child it left holding them is not waited
			 * for. */
			if (out_fd >= 0)
				drain(out_fd, &res->out);
			if (err_fd >= 0)
				drain(err_fd, &res->err);
			if (WIFSIGNALED(status)) {
				res->end = HOOK_SIGNALED;
				res->status = WTERMSIG(status);
			} else {
				res->end = HOOK_EXITED;
				res->status = WEXITSTATUS(status);
			}
			break;
		}
	}
	close_fd(&in_fd);
	close_fd(&out_fd);
	close_fd(&err_fd);
	close_fd(&pidfd);
}

/* Runs one hook to its end. res is always filled (HOOK_NOT_RUN when it could
 * not start); the caller frees it. */
static void hook_run(const struct exec_state *x, const char *hook, const char *cmd,
                     const char *input, size_t input_len, unsigned long timeout_ms,
                     struct hook_result *res)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
	char **envp = NULL;
	sigset_t pipe_set, old_mask, pending;
	bool epipe = false, was_pending;
	pid_t pid;
	int r;

	memset(res, 0, sizeof(*res));
	res->end = HOOK_NOT_RUN;

	/* A write to a hook that closed its stdin raises SIGPIPE in this
	 * thread; the daemon ignores it, but a program embedding the core
	 * might not. Blocked here, it stays pending and is taken back below,
	 * unless one was already pending that is not ours to take. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE) == 1;

	r = env_build(x, hook, &envp);
	if (r == 0)
		r = pipe_pair(in);
	if (r == 0)
		r = pipe_pair(out);
	if (r == 0)
		r = pipe_pair(err);
	if (r == 0)
		r = spawn_hook(cmd, envp, in[0], out[1], err[1], &pid);
	/* The child's ends are the child's now. */
	close_fd(&in[0]);
	close_fd(&out[1]);
	close_fd(&err[1]);
	if (r == 0) {
		r = set_nonblock(in[1]);
		if (r == 0)
			r = set_nonblock(out[0]);
		if (r == 0)
			r = set_nonblock(err[0]);
		if (r < 0) {
			/* Blocking pipes could hang us past the timeout. */
			int st;
			kill(-pid, SIGKILL);
			reap(pid, &st);
		}
	}
	if (r == 0) {
		mallafs_svc_log(x->svc, LOG_DEBUG, "exec: %s: running (pid %ld)", hook, (long)pid);
		exchange(pid, in[1], out[0], err[0], input, input_len, timeout_ms, res, &epipe);
		/* exchange closed them. */
		in[1] = out[0] = err[0] = -1;
	} else {
		res->end = HOOK_NOT_RUN;
		res->status = -r;
	}
	close_fd(&in[1]);
	close_fd(&out[0]);
	close_fd(&err[0]);
	env_free(envp, 3);

	if (epipe && !was_pending) {
		struct timespec zero = {0, 0};
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* Cuts a capture into NUL-terminated lines in place, trailing blanks and CRs
 * turned into NULs too, so walking it with next_line() yields each line's
 * text and skips the empty ones. */
static void split_lines(struct capture *cap)
{
	for (size_t i = 0; i <= cap->len; i++) {
		if (i < cap->len && cap->data[i] != '\n')
			continue;
		cap->data[i] = '\0';
		for (size_t j = i; j-- > 0 && is_blank(cap->data[j]);)
			cap->data[j] = '\0';
	}
}

/* The next non-empty line at or after *pos, or NULL. */
static const char *next_line(const struct capture *cap, size_t *pos)
{
	while (cap->data && *pos < cap->len) {
		const char *line = cap->data + *pos;
		*pos += strlen(line) + 1;
		if (*line)
			return line;
	}
	return NULL;
}

/* Logs a hook's output: stdout at info level, stderr as warnings, except
 * the line skip (the one already given as the reason). */
static void log_output(const struct exec_state *x, const char *hook, const struct hook_result *res,
                       const char *skip)
{
	const char *line;
	size_t pos = 0;
	while ((line = next_line(&res->out, &pos)))
		mallafs_svc_log(x->svc, LOG_INFO, "exec: %s: %s", hook, line);
	if (res->out.truncated)
		mallafs_svc_log(x->svc, LOG_INFO, "exec: %s: (stdout past %d bytes dropped)", hook,
		                EXEC_OUTPUT_CAP);
	pos = 0;
	while ((line = next_line(&res->err, &pos)))
		if (line != skip)
			mallafs_svc_log(x->svc, LOG_WARNING, "exec: %s: %s", hook, line);
	if (res->err.truncated)
		mallafs_svc_log(x->svc, LOG_WARNING, "exec: %s: (stderr past %d bytes dropped)",
		                hook, EXEC_OUTPUT_CAP);
}

/* Runs a hook to its end and logs its output. Returns its exit status
 * (0-255), or -1 when it timed out, died of a signal or could not run. For
 * anything but a 0 exit, why gets the reason: the first non-empty line of
 * its stderr (then *ret_said is set), or else what happened. A timeout is
 * always reported as such: a hung hook's last words are likely progress
 * noise, the timeout is the news. */
static int hook_call(const struct exec_state *x, const char *hook, const char *cmd,
                     const char *input, size_t input_len, unsigned long timeout_ms,
                     struct mallafs_reason *why, bool *ret_said)
{
	struct hook_result res;
	const char *first = NULL;
	int64_t t0 = now_ms();
	int status = -1;
	size_t pos = 0;

	hook_run(x, hook, cmd, input, input_len, timeout_ms, &res);
	if (res.err.data) {
		split_lines(&res.err);
		first = next_line(&res.err, &pos);
	}
	if (res.out.data)
		split_lines(&res.out);

	struct mallafs_reason what = {{0}};
	switch (res.end) {
	case HOOK_EXITED:
		status = res.status;
		mallafs_reason_set(&what, "%s exited with status %d", hook, res.status);
		break;
	case HOOK_SIGNALED:
		mallafs_reason_set(&what, "%s was killed by signal %d (%s)", hook, res.status,
		                   strsignal(res.status));
		break;
	case HOOK_TIMED_OUT:
		mallafs_reason_set(&what, "%s timed out after %lu ms", hook, timeout_ms);
		first = NULL;
		break;
	case HOOK_LOST:
		mallafs_reason_set(&what, "%s: its exit status was lost (is SIGCHLD ignored?)",
		                   hook);
		break;
	case HOOK_NOT_RUN:
		mallafs_reason_set(&what, "%s could not run: %s", hook, strerror(res.status));
		first = NULL;
		break;
	}
	bool said = status != 0 && first != NULL;
	if (said)
		mallafs_reason_set(&what, "%s", first + strspn(first, " \t"));
	if (status != 0 && why)
		*why = what;
	if (ret_said)
		*ret_said = said;
	log_output(x, hook, &res, said ? first : NULL);
	if (status == 0)
		mallafs_svc_log(x->svc, LOG_DEBUG, "exec: %s: done in %lld ms", hook,
		                (long long)(now_ms() - t0));
	else
		mallafs_svc_log(x->svc, LOG_DEBUG, "exec: %s: failed in %lld ms: %s", hook,
		                (long long)(now_ms() - t0), what.text);
	hook_result_free(&res);
	return status;
}

/* ---- callbacks ---- */

static int exec_init(struct mallafs_svc *svc, const struct mallafs_plugin *self, void **ret_state)
{
	struct exec_state *x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->svc = svc;
	x->self = self;
	x->timeout_ms = 5000;
	*ret_state = x;
	return 0;
}

static void exec_fini(void *state)
{
	struct exec_state *x = state;
	if (!x)
		return;
	free(x->on_stop);
	free(x->ini);
	free(x);
}

static int exec_merge(void *state, const struct mallafs_cfg *old, const struct mallafs_cfg *update,
                      struct mallafs_cfg *merged, struct mallafs_reason *why)
{
	struct exec_state *x = state;
	const char *t = mallafs_setting(merged, x->self, "timeout_ms");
	unsigned long timeout_ms;
	char *old_ini = NULL, *new_ini = NULL;
	size_t old_len = 0, new_len = 0;
	int r;

	if (parse_timeout(t, &timeout_ms) < 0) {
		mallafs_reason_set(why, "timeout_ms must be an integer from 1 to %lu, not '%s'",
		                   EXEC_TIMEOUT_MAX, t ? t : "");
		return -EINVAL;
	}
	const char *cmd = command_of(merged, x, "validate");
	if (!cmd)
		return 0;
	r = mallafs_cfg_render(merged, &new_ini, &new_len);
	if (r == 0)
		r = mallafs_cfg_render(old, &old_ini, &old_len);
	if (r < 0) {
		mallafs_reason_set(why, "out of memory");
		goto out;
	}
	/* Nothing would change: nothing to validate. */
	if (old_len == new_len && memcmp(old_ini, new_ini, new_len) == 0)
		goto out;
	if (hook_call(x, "validate", cmd, new_ini, new_len, timeout_ms, why, NULL) != 0)
		r = -EINVAL;
out:
	free(old_ini);
	free(new_ini);
	return r;
}

static bool same(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static enum mallafs_update exec_updated(void *state, const struct mallafs_cfg *old,
                                        const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	struct exec_state *x = state;
	char *ini = NULL;
	size_t len = 0;

	/* A new command takes over with a restart: on_stop of the old
	 * configuration, then on_start of the new one. on_update is not run:
	 * on_start gets the new configuration anyway. */
	for (size_t i = 0; i < sizeof(exec_commands) / sizeof(exec_commands[0]); i++) {
		const char *k = exec_commands[i];
		if (!same(mallafs_setting(old, x->self, k), mallafs_setting(cfg, x->self, k))) {
			mallafs_reason_set(why, "%s changed", k);
			return MALLAFS_UPDATE_RESTART;
		}
	}

	unsigned long timeout_ms = timeout_of(cfg, x);
	if (mallafs_cfg_render(cfg, &ini, &len) < 0) {
		mallafs_reason_set(why, "out of memory");
		return MALLAFS_UPDATE_ERROR;
	}

	enum mallafs_update u = MALLAFS_UPDATE_OK;
	const char *cmd = command_of(cfg, x, "on_update");
	bool said = false;
	int status = cmd ? hook_call(x, "on_update", cmd, ini, len, timeout_ms, why, &said) : 0;
	if (status == EXEC_EXIT_RESTART) {
		u = MALLAFS_UPDATE_RESTART;
		if (!said)
			mallafs_reason_set(why, "on_update asked for a restart");
	} else if (status != 0) {
		u = MALLAFS_UPDATE_ERROR;
	}
	if (u == MALLAFS_UPDATE_ERROR) {
		/* The change is rolled back: keep running as before. */
		free(ini);
		return u;
	}
	x->timeout_ms = timeout_ms;
	free(x->ini);
	x->ini = ini;
	x->ini_len = len;
	return u;
}

static int exec_start(void *state, const struct mallafs_cfg *cfg, struct mallafs_reason *why)
{
	struct exec_state *x = state;
	char *ini = NULL, *on_stop = NULL;
	size_t len = 0;
	const char *stop_cmd = command_of(cfg, x, "on_stop");

	if (mallafs_cfg_render(cfg, &ini, &len) < 0 ||
	    (stop_cmd && !(on_stop = strdup(stop_cmd)))) {
		free(ini);
		mallafs_reason_set(why, "out of memory");
		return -ENOMEM;
	}
	free(x->ini);
	free(x->on_stop);
	x->ini = ini;
	x->ini_len = len;
	x->on_stop = on_stop;
	x->timeout_ms = timeout_of(cfg, x);

	const char *cmd = command_of(cfg, x, "on_start");
	if (cmd && hook_call(x, "on_start", cmd, x->ini, x->ini_len, x->timeout_ms, why, NULL) != 0)
		return -EIO;
	return 0;
}

static void exec_stop(void *state)
{
	struct exec_state *x = state;
	struct mallafs_reason why = {{0}};
	if (!x->on_stop)
		return;
	if (hook_call(x, "on_stop", x->on_stop, x->ini, x->ini_len, x->timeout_ms, &why, NULL) != 0)
		mallafs_svc_log(x->svc, LOG_WARNING, "exec: %s", why.text);
}

/* clang-format off */
const struct mallafs_plugin mallafs_plugin_exec = {
	MALLAFS_PLUGIN_INIT,
	.name = "exec",
	.settings = exec_settings,
	.init = exec_init,
	.fini = exec_fini,
	.start = exec_start,
	.stop = exec_stop,
	.config_merge = exec_merge,
	.updated = exec_updated,
};
/* clang-format on */
