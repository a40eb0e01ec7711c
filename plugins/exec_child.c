/* SPDX-License-Identifier: MIT */
/* exec: who a hook runs as, and its process from fork to exec.
 *
 * A hook runs with its service's owner's rights, never the daemon's: the
 * owner's uid and gid (read when the hook starts: a chown of the service
 * applies to the next hook), the supplementary groups the group database
 * gives that user, and nothing else of the daemon's: a clean environment,
 * "/" as its folder, umask 022, default signal handling, no descriptor but
 * its stdin, stdout and stderr, and a session of its own (so no controlling
 * terminal to type into, and a process group that the timeout ends whole).
 *
 * Everything that may allocate or load NSS modules (the passwd and group
 * lookups, the environment) is done before the fork, in the daemon's
 * thread. Between fork and exec the child is a copy of a threaded process
 * and makes async-signal-safe calls only; the ids change with raw system
 * calls, which act on the calling thread alone, rather than glibc's
 * wrappers, which would try to reach the daemon's other threads. The ids
 * are read back before exec: a hook whose switch did not take exits with
 * status 127 and a report; it never runs as root by mistake. */
#include "exec_run.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "plugin_util.h"

/* 32-bit architectures that once had 16-bit ids name the 32-bit calls so. */
#ifdef SYS_setresuid32
#define SYS_SETGROUPS SYS_setgroups32
#define SYS_GETGROUPS SYS_getgroups32
#define SYS_SETRESGID SYS_setresgid32
#define SYS_SETRESUID SYS_setresuid32
#define SYS_GETRESGID SYS_getresgid32
#define SYS_GETRESUID SYS_getresuid32
#else
#define SYS_SETGROUPS SYS_setgroups
#define SYS_GETGROUPS SYS_getgroups
#define SYS_SETRESGID SYS_setresgid
#define SYS_SETRESUID SYS_setresuid
#define SYS_GETRESGID SYS_getresgid
#define SYS_GETRESUID SYS_getresuid
#endif

/* Where the one-by-one fallback for close_range stops, whatever the
 * descriptor limit says. */
#define EXEC_FD_LIMIT_MAX (1 << 20)

/* ---- before the fork ---- */

static int env_build(struct mallafs_svc *svc, const char *hook, const char *home,
                     struct exec_cred *cred)
{
	const char *mount = mallafs_svc_mountpoint(svc);
	char **envp = calloc(6, sizeof(*envp));
	if (!envp)
		return -ENOMEM;
	cred->envp = envp;
	if (asprintf(&envp[0], "PATH=%s", EXEC_PATH) < 0)
		envp[0] = NULL;
	if (envp[0] && asprintf(&envp[1], "HOME=%s", home) < 0)
		envp[1] = NULL;
	if (envp[1] && asprintf(&envp[2], "MALLAFS_SERVICE=%s", mallafs_svc_name(svc)) < 0)
		envp[2] = NULL;
	if (envp[2] && asprintf(&envp[3], "MALLAFS_MOUNT=%s", mount ? mount : "") < 0)
		envp[3] = NULL;
	if (envp[3] && asprintf(&envp[4], "MALLAFS_HOOK=%s", hook) < 0)
		envp[4] = NULL;
	return envp[4] ? 0 : -ENOMEM;
}

static int fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur > EXEC_FD_LIMIT_MAX)
		return EXEC_FD_LIMIT_MAX;
	return (int)rl.rlim_cur;
}

int exec_cred_get(struct mallafs_svc *svc, const char *hook, const char *cmd,
                  struct exec_cred *cred, char *detail, size_t n)
{
	char *home = NULL;
	uid_t uid, euid = geteuid();
	gid_t gid, egid = getegid();
	int r;

	memset(cred, 0, sizeof(*cred));
	cred->cmd = cmd;
	cred->fd_limit = fd_limit();
	mallafs_svc_owner(svc, &uid, &gid);
	cred->uid = uid;
	cred->gid = gid;
	/* To the id calls, -1 means "leave as it is": the daemon's. */
	if (uid == (uid_t)-1 || gid == (gid_t)-1) {
		snprintf(detail, n, "the service's owner (uid %ld gid %ld) is not a user",
		         (long)(int)uid, (long)(int)gid);
		return -EINVAL;
	}
	if (euid != 0 && (uid != euid || gid != egid)) {
		snprintf(detail, n,
		         "the daemon runs as uid %lu gid %lu, not root, and cannot switch to the "
		         "service's owner, uid %lu gid %lu",
		         (unsigned long)euid, (unsigned long)egid, (unsigned long)uid,
		         (unsigned long)gid);
		return -EPERM;
	}
	/* A daemon that is not root runs its own services' hooks as it is. */
	cred->change = euid == 0;

	/* The groups only where the child switches to them. */
	r = pu_user_lookup(uid, gid, cred->change ? &cred->groups : NULL, &cred->ngroups, &home);
	if (r == -E2BIG) {
		snprintf(detail, n, "cannot list the groups of uid %lu: %s", (unsigned long)uid,
		         strerror(-r));
		goto out;
	}
	if (r < 0) {
		snprintf(detail, n, "cannot look up uid %lu: %s", (unsigned long)uid, strerror(-r));
		goto out;
	}
	r = env_build(svc, hook, home, cred);
	if (r < 0)
		snprintf(detail, n, "%s", strerror(-r));
out:
	free(home);
	if (r < 0)
		exec_cred_free(cred);
	return r < 0 ? r : 0;
}

void exec_cred_free(struct exec_cred *cred)
{
	for (char **e = cred->envp; e && *e; e++)
		free(*e);
	free(cred->envp);
	free(cred->groups);
	cred->envp = NULL;
	cred->groups = NULL;
	cred->ngroups = 0;
}

void exec_report_text(const struct exec_report *rep, const struct exec_cred *cred, char *buf,
                      size_t n)
{
	const char *why = strerror(rep->err);
	unsigned long uid = (unsigned long)cred->uid, gid = (unsigned long)cred->gid;
	switch (rep->stage) {
	case EXEC_STAGE_SESSION:
		snprintf(buf, n, "cannot start a session: %s", why);
		break;
	case EXEC_STAGE_STDIO:
		snprintf(buf, n, "cannot set up stdin, stdout and stderr: %s", why);
		break;
	case EXEC_STAGE_FDS:
		snprintf(buf, n, "cannot close the daemon's descriptors: %s", why);
		break;
	case EXEC_STAGE_GROUPS:
		snprintf(buf, n, "cannot set the %zu groups of uid %lu: %s", cred->ngroups, uid,
		         why);
		break;
	case EXEC_STAGE_GID:
		snprintf(buf, n, "cannot switch to gid %lu: %s", gid, why);
		break;
	case EXEC_STAGE_UID:
		snprintf(buf, n, "cannot switch to uid %lu: %s", uid, why);
		break;
	case EXEC_STAGE_CHECK:
		snprintf(buf, n, "the switch to uid %lu gid %lu did not take", uid, gid);
		break;
	case EXEC_STAGE_CHDIR:
		snprintf(buf, n, "cannot change to /: %s", why);
		break;
	case EXEC_STAGE_EXEC:
		snprintf(buf, n, "cannot execute /bin/sh: %s", why);
		break;
	default:
		snprintf(buf, n, "failed before exec: %s", why);
		break;
	}
}

/* ---- between fork and exec: async-signal-safe calls only ---- */

_Noreturn static void fail(int report_fd, int stage)
{
	struct exec_report rep = {.stage = stage, .err = errno};
	/* One write of a few bytes to a pipe is whole or nothing; either way
	 * the exit status says the hook did not run. */
	ssize_t w = write(report_fd, &rep, sizeof(rep));
	(void)w;
	_exit(127);
}

static bool ids_are(const struct exec_cred *cred)
{
	uid_t r, e, s;
	gid_t rg, eg, sg;
	if (syscall(SYS_GETRESUID, &r, &e, &s) < 0 || syscall(SYS_GETRESGID, &rg, &eg, &sg) < 0)
		return false;
	if (r != cred->uid || e != cred->uid || s != cred->uid)
		return false;
	if (rg != cred->gid || eg != cred->gid || sg != cred->gid)
		return false;
	return syscall(SYS_GETGROUPS, 0, NULL) == (long)cred->ngroups;
}

static int close_from(int first, int limit)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)first, ~0U, 0) == 0)
		return 0;
	if (errno != ENOSYS)
		return -1;
#endif
	/* Kernels before 5.9. */
	for (int fd = first; fd < limit; fd++)
		close(fd);
	return 0;
}

_Noreturn void exec_child(const struct exec_cred *cred, int in_fd, int out_fd, int err_fd,
                          int report_fd)
{
	struct sigaction dfl;
	sigset_t none;

	/* No terminal to reach, and a process group of its own. */
	if (setsid() < 0)
		fail(report_fd, EXEC_STAGE_SESSION);
	/* The parent blocked every signal around the fork, so none of the
	 * daemon's handlers can run here; they go before the mask does.
	 * Signals the libc keeps for itself refuse, and are reset at exec. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);

	/* All four pipe ends are above 2 (the parent saw to it), so no dup2
	 * below overwrites another before it is copied. */
	if (dup2(in_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
	    dup2(err_fd, STDERR_FILENO) < 0)
		fail(report_fd, EXEC_STAGE_STDIO);
	if (report_fd != STDERR_FILENO + 1) {
		if (dup2(report_fd, STDERR_FILENO + 1) < 0)
			fail(report_fd, EXEC_STAGE_STDIO);
		report_fd = STDERR_FILENO + 1;
	}
	/* Closed by a successful exec: the parent then reads end of file. */
	if (fcntl(report_fd, F_SETFD, FD_CLOEXEC) < 0)
		fail(report_fd, EXEC_STAGE_STDIO);
	if (close_from(report_fd + 1, cred->fd_limit) < 0)
		fail(report_fd, EXEC_STAGE_FDS);

	if (cred->change) {
		if (syscall(SYS_SETGROUPS, cred->ngroups, cred->groups) < 0)
			fail(report_fd, EXEC_STAGE_GROUPS);
		if (syscall(SYS_SETRESGID, cred->gid, cred->gid, cred->gid) < 0)
			fail(report_fd, EXEC_STAGE_GID);
		if (syscall(SYS_SETRESUID, cred->uid, cred->uid, cred->uid) < 0)
			fail(report_fd, EXEC_STAGE_UID);
		if (!ids_are(cred)) {
			errno = EPERM;
			fail(report_fd, EXEC_STAGE_CHECK);
		}
	}
	/* Capabilities a daemon started with as ambient ones would pass to
	 * the hook through exec; older kernels have none to clear. */
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if (chdir("/") < 0)
		fail(report_fd, EXEC_STAGE_CHDIR);
	umask(022);

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	char *argv[] = {(char *)"sh", (char *)"-c", (char *)cred->cmd, NULL};
	execve("/bin/sh", argv, cred->envp);
	fail(report_fd, EXEC_STAGE_EXEC);
}
